/* mappings.c - the URL mappings the site publishes to the CMG and replicates
 * to its connection points (REQ CMG-05, CMG-06, CMG-10), and where each MP
 * endpoint lives under them.
 *
 * A mapping publishes one endpoint folder of one management point
 * (CCM_System, CCM_Incoming, SMS_MP).  The gateway knows the MP's endpoint
 * list too, so a path under a published folder that names no MP endpoint is
 * refused at the edge rather than by the MP: nothing cmlab does not serve
 * reaches the intranet through the CMG. */
#include "internal.h"

#include <string.h>

G_DEFINE_QUARK(cm-cmg-error-quark, cm_cmg_error)

struct CmCmgMappings {
    gint refs;
    char name[CM_CMG_NAME_MAX + 1];
    GArray *items; /* CmCmgMapping, ordered by (role ID, endpoint) */
};

/* Where each MP endpoint lives under the published folders.  Registration
 * is published under CCM_System: the Windows-authenticated folder the
 * intranet uses is of no use from the internet, where the CMG has already
 * authenticated the client.  The notification channel is not carried. */
static const struct {
    CmEndpoint ep;
    CmCmgEndpoint folder;
    const char *rest;
    const char *query;
} ep_table[] = {
    {CM_EP_LOCATION, CM_CMG_EP_SMS_MP, "/.sms_aut", "MPLIST"},
    {CM_EP_MPCERT, CM_CMG_EP_SMS_MP, "/.sms_aut", "MPCERT"},
    {CM_EP_SITEINFO, CM_CMG_EP_SMS_MP, "/.sms_aut", "SITEINFO"},
    {CM_EP_CLIENT_PACKAGE, CM_CMG_EP_SMS_MP, "/.sms_aut", "CLIENTPACKAGE"},
    {CM_EP_REGISTER, CM_CMG_EP_CCM_SYSTEM, "/request/register", ""},
    {CM_EP_REGISTER_STATUS, CM_CMG_EP_CCM_SYSTEM, "/request/regstatus", ""},
    {CM_EP_POLICY_ASSIGNMENTS, CM_CMG_EP_CCM_SYSTEM, "/request/policyassignments", ""},
    {CM_EP_POLICY_BODY, CM_CMG_EP_CCM_SYSTEM, "/request/policybody", ""},
    {CM_EP_INVENTORY, CM_CMG_EP_CCM_INCOMING, "/inventory", ""},
    {CM_EP_DISCOVERY, CM_CMG_EP_CCM_INCOMING, "/discovery", ""},
    {CM_EP_STATE, CM_CMG_EP_CCM_INCOMING, "/state", ""},
    {CM_EP_CLIENT_STATUS, CM_CMG_EP_CCM_INCOMING, "/clientstatus", ""},
    {CM_EP_STATUS, CM_CMG_EP_CCM_INCOMING, "/status", ""},
};

static const char *const folder_names[] = {"CCM_System", "CCM_Incoming", "SMS_MP"};

size_t
cm_cmg_endpoint_body_max(CmCmgEndpoint ep)
{
    size_t max = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(ep_table); i++)
        if (ep_table[i].folder == ep)
            max = MAX(max, cm_ep_body_max(ep_table[i].ep));
    return max;
}

CmEndpoint
cm_cmg_url_endpoint(const CmCmgUrl *url, const char *query)
{
    if (query == NULL)
        query = "";
    /* IIS matches paths and these query words case-insensitively. */
    for (size_t i = 0; i < G_N_ELEMENTS(ep_table); i++)
        if (ep_table[i].folder == url->endpoint &&
            g_ascii_strcasecmp(ep_table[i].rest, url->rest) == 0 &&
            g_ascii_strcasecmp(ep_table[i].query, query) == 0)
            return ep_table[i].ep;
    return CM_EP_NONE;
}

gboolean
cm_cmg_client_path(CmCmgAuth auth, guint64 role_id, CmEndpoint ep, char **path, char **query)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ep_table); i++) {
        if (ep_table[i].ep != ep)
            continue;
        *path = g_strdup_printf("/%s/%" G_GUINT64_FORMAT "/%s%s",
                                auth == CM_CMG_AUTH_SERVER ? "CCM_Proxy_ServerAuth"
                                                           : "CCM_Proxy_MutualAuth",
                                role_id, cm_cmgurl_endpoint_name(ep_table[i].folder),
                                ep_table[i].rest);
        *query = g_strdup(ep_table[i].query);
        return TRUE;
    }
    return FALSE;
}

gboolean
cmg_site_code(const char *s, char out[4], const char *what, GError **error)
{
    g_autoptr(GError) e = NULL;

    if (s == NULL || !cm_id_site_code_check(s, out, &e)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "%s: %s", what,
                    e ? e->message : "a site code is required");
        return FALSE;
    }
    return TRUE;
}

gboolean
cmg_host_check(const char *s, const char *what, GError **error)
{
    size_t len = s ? strnlen(s, CM_NAME_MAX + 1) : 0;
    size_t label = 0;

    if (len == 0 || len > CM_NAME_MAX)
        goto bad;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : '.';
        if (c == '.') {
            if (label == 0)
                goto bad;
            label = 0;
        } else if ((g_ascii_isalnum(c) || c == '-') && ++label <= 63) {
            continue;
        } else {
            goto bad;
        }
    }
    return TRUE;
bad:
    g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                "%s must be a DNS host name of 1 to %d characters (letters, digits, '-', '.')",
                what, CM_NAME_MAX);
    return FALSE;
}

CmCmgMappings *
cm_cmg_mappings_new(const char *cmg_name, GError **error)
{
    CmCmgMappings *m;
    g_autofree char *url = NULL;
    CmCmgUrl parsed;

    /* The CMG name must make a valid mapping URL: let the URL module judge. */
    url = cmg_name ? cm_cmgurl_build(cmg_name, CM_CMG_AUTH_MUTUAL, 1, CM_CMG_EP_CCM_SYSTEM)
                   : NULL;
    if (url == NULL || !cm_cmgurl_parse(url, &parsed, NULL)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the CMG name must be a DNS name such as cmg.contoso.com");
        return NULL;
    }
    m = g_new0(CmCmgMappings, 1);
    m->refs = 1;
    g_strlcpy(m->name, parsed.cmg_name, sizeof m->name);
    m->items = g_array_new(FALSE, TRUE, sizeof(CmCmgMapping));
    return m;
}

CmCmgMappings *
cm_cmg_mappings_ref(CmCmgMappings *m)
{
    g_atomic_int_inc(&m->refs);
    return m;
}

void
cm_cmg_mappings_unref(CmCmgMappings *m)
{
    if (m == NULL || !g_atomic_int_dec_and_test(&m->refs))
        return;
    g_array_unref(m->items);
    g_free(m);
}

const char *
cm_cmg_mappings_name(const CmCmgMappings *m)
{
    return m->name;
}

size_t
cm_cmg_mappings_count(const CmCmgMappings *m)
{
    return m->items->len;
}

const CmCmgMapping *
cm_cmg_mappings_get(const CmCmgMappings *m, size_t i)
{
    return i < m->items->len ? &g_array_index(m->items, CmCmgMapping, i) : NULL;
}

static int
mapping_cmp(const CmCmgMapping *a, guint64 role_id, CmCmgEndpoint ep)
{
    if (a->role_id != role_id)
        return a->role_id < role_id ? -1 : 1;
    return (int)a->endpoint - (int)ep;
}

/* Index of the first mapping not below (role_id, ep). */
static guint
lower_bound(const CmCmgMappings *m, guint64 role_id, CmCmgEndpoint ep)
{
    guint lo = 0, hi = m->items->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        if (mapping_cmp(&g_array_index(m->items, CmCmgMapping, mid), role_id, ep) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const CmCmgMapping *
cm_cmg_mappings_find(const CmCmgMappings *m, guint64 role_id, CmCmgEndpoint ep)
{
    guint i = lower_bound(m, role_id, ep);

    if (i < m->items->len && mapping_cmp(&g_array_index(m->items, CmCmgMapping, i), role_id, ep) == 0)
        return &g_array_index(m->items, CmCmgMapping, i);
    return NULL;
}

gboolean
cm_cmg_mappings_add(CmCmgMappings *m, const CmCmgMapping *mapping, GError **error)
{
    CmCmgMapping copy;
    size_t bound;
    guint at;

    memset(&copy, 0, sizeof copy);
    if ((unsigned)mapping->endpoint >= G_N_ELEMENTS(folder_names)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a mapping publishes CCM_System, CCM_Incoming or SMS_MP");
        return FALSE;
    }
    if (mapping->role_id == 0 || mapping->role_id > G_MAXINT64) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a mapping needs the MP's role ID (1 to %" G_GINT64_FORMAT ")", G_MAXINT64);
        return FALSE;
    }
    if (!cmg_site_code(mapping->site_code, copy.site_code, "mapping site code", error) ||
        !cmg_host_check(mapping->server, "the mapping's internal server", error))
        return FALSE;
    bound = cm_cmg_endpoint_body_max(mapping->endpoint);
    if (mapping->max_body == 0 || mapping->max_body > bound) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the content length limit of %s must be 1 to %zu bytes, not %zu",
                    folder_names[mapping->endpoint], bound, mapping->max_body);
        return FALSE;
    }
    if (m->items->len >= CM_CMG_MAX_MAPPINGS) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "more than %d mappings",
                    CM_CMG_MAX_MAPPINGS);
        return FALSE;
    }
    if (cm_cmg_mappings_find(m, mapping->role_id, mapping->endpoint) != NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "%s of MP %" G_GUINT64_FORMAT " is already published",
                    folder_names[mapping->endpoint], mapping->role_id);
        return FALSE;
    }
    copy.role_id = mapping->role_id;
    copy.endpoint = mapping->endpoint;
    copy.max_body = mapping->max_body;
    /* Host names compare case-insensitively: keep one spelling. */
    for (size_t i = 0; mapping->server[i] != '\0'; i++)
        copy.server[i] = g_ascii_tolower(mapping->server[i]);
    at = lower_bound(m, copy.role_id, copy.endpoint);
    g_array_insert_val(m->items, at, copy);
    return TRUE;
}

gboolean
cm_cmg_mappings_add_mp(CmCmgMappings *m, const char *site_code, guint64 role_id,
                       const char *server, GError **error)
{
    for (int ep = 0; ep < (int)G_N_ELEMENTS(folder_names); ep++) {
        CmCmgMapping map = {.role_id = role_id, .endpoint = (CmCmgEndpoint)ep};
        if (server == NULL || strlen(server) > CM_NAME_MAX) {
            g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "the MP's host name is required (at most %d characters)", CM_NAME_MAX);
            return FALSE;
        }
        g_strlcpy(map.site_code, site_code ? site_code : "", sizeof map.site_code);
        if (site_code != NULL && strlen(site_code) != 3) {
            g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "mapping site code: three characters expected");
            return FALSE;
        }
        g_strlcpy(map.server, server, sizeof map.server);
        map.max_body = cm_cmg_endpoint_body_max(map.endpoint);
        if (!cm_cmg_mappings_add(m, &map, error))
            return FALSE;
    }
    return TRUE;
}

char *
cm_cmg_mappings_to_json(const CmCmgMappings *m)
{
    g_autoptr(json_t) obj = json_object();
    json_t *arr = json_array();

    for (guint i = 0; i < m->items->len; i++) {
        const CmCmgMapping *x = &g_array_index(m->items, CmCmgMapping, i);
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:s, s:s}", "endpoint",
                                             folder_names[x->endpoint], "max_body",
                                             (json_int_t)x->max_body, "role_id",
                                             (json_int_t)x->role_id, "server", x->server,
                                             "site_code", x->site_code));
    }
    json_object_set_new(obj, "cmg", json_string(m->name));
    json_object_set_new(obj, "mappings", arr);
    return cm_json_dump(obj);
}

static gboolean
folder_parse(const char *s, CmCmgEndpoint *out)
{
    for (int i = 0; i < (int)G_N_ELEMENTS(folder_names); i++) {
        if (strcmp(s, folder_names[i]) == 0) {
            *out = (CmCmgEndpoint)i;
            return TRUE;
        }
    }
    return FALSE;
}

CmCmgMappings *
cm_cmg_mappings_from_json(const char *json, size_t len, GError **error)
{
    g_autoptr(json_t) obj = NULL;
    g_autoptr(CmCmgMappings) m = NULL;
    const json_t *arr;
    const char *name;
    GError *e = NULL;
    size_t i;
    json_t *v;

    obj = cm_json_parse(json, len, CM_CMG_MAPPINGS_JSON_MAX, &e);
    if (obj == NULL || (name = cm_json_str(obj, "cmg", CM_CMG_NAME_MAX, &e)) == NULL ||
        (arr = cm_json_array(obj, "mappings", CM_CMG_MAX_MAPPINGS, &e)) == NULL)
        goto fail;
    if (json_object_size(obj) != 2) {
        g_set_error(&e, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "unknown fields; expected only \"cmg\" and \"mappings\"");
        goto fail;
    }
    m = cm_cmg_mappings_new(name, &e);
    if (m == NULL)
        goto fail;
    json_array_foreach(arr, i, v)
    {
        CmCmgMapping map;
        const char *ep, *server, *site;
        gint64 role_id, max_body;

        memset(&map, 0, sizeof map);
        if (!json_is_object(v) || json_object_size(v) != 5 ||
            (ep = cm_json_str(v, "endpoint", 16, &e)) == NULL ||
            !cm_json_int(v, "max_body", 1, G_MAXINT32, &max_body, &e) ||
            !cm_json_int(v, "role_id", 1, G_MAXINT64, &role_id, &e) ||
            (server = cm_json_str(v, "server", CM_NAME_MAX, &e)) == NULL ||
            (site = cm_json_str(v, "site_code", 3, &e)) == NULL) {
            if (e == NULL)
                g_set_error(&e, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                            "expected an object of endpoint, max_body, role_id, server, "
                            "site_code");
            g_prefix_error(&e, "mapping %zu: ", i);
            goto fail;
        }
        if (!folder_parse(ep, &map.endpoint)) {
            g_set_error(&e, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "mapping %zu: endpoint must be CCM_System, CCM_Incoming or SMS_MP", i);
            goto fail;
        }
        map.role_id = (guint64)role_id;
        map.max_body = (size_t)max_body;
        g_strlcpy(map.server, server, sizeof map.server);
        g_strlcpy(map.site_code, site, sizeof map.site_code);
        if (!cm_cmg_mappings_add(m, &map, &e)) {
            g_prefix_error(&e, "mapping %zu: ", i);
            goto fail;
        }
    }
    return g_steal_pointer(&m);
fail:
    g_propagate_prefixed_error(error, e, "CMG URL mappings: ");
    return NULL;
}

GPtrArray *
cm_cmg_mappings_mp_entries(const CmCmgMappings *m)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < m->items->len;) {
        guint64 id = g_array_index(m->items, CmCmgMapping, i).role_id;
        guint n = 0;
        for (; i < m->items->len && g_array_index(m->items, CmCmgMapping, i).role_id == id; i++)
            n++;
        /* The items are sorted and unique per (role ID, endpoint). */
        if (n == G_N_ELEMENTS(folder_names))
            g_ptr_array_add(out, cm_cmgurl_mp_entry(m->name, id));
    }
    return out;
}
