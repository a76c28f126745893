/* site-admin.c - the site's administrative API (docs/lab.md): approve,
 * block and unblock clients, look at them, create collections, deploy,
 * change settings, replace the PKI CRL, export the public TRK.
 *
 * Administrators authenticate with a client certificate from the site's
 * issuing root; the name in it must be a registered administrator whose
 * certificate it is (the SMS Provider's sign-in), and
 * it is the name the site library records in its audit trail.  Bodies are
 * JSON objects, answers are JSON; refusals carry a reason and a message
 * like every other cmlab answer. */
#include "site-daemon.h"
#include "site-cmg.h"
#include "site-hier.h"

#include <string.h>

#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_LIST_MAX 1000
#define ADMIN_RULES_MAX 32

static void
refuse_error(CmResponse *resp, GError *error)
{
    CmReason reason = CM_REASON_BAD_REQUEST;

    if (g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND))
        reason = CM_REASON_NOT_FOUND;
    else if (g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_STORE))
        reason = CM_REASON_INTERNAL;
    else if (g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED))
        reason = CM_REASON_FORBIDDEN;
    cm_response_refuse(resp, reason, "%s", error->message);
    g_error_free(error);
}

static json_t *
settings_json(const CmSiteSettings *s)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b}", "communication",
                     cm_comm_mode_name(s->communication), "approval",
                     cm_approval_mode_name(s->approval), "conflicts",
                     cm_conflict_mode_name(s->conflicts), "require_signing", s->require_signing,
                     "require_sha256", s->require_sha256, "encrypt", s->encrypt, "allow_3des",
                     s->allow_3des, "crl_check", s->crl_check);
}

/* Applies the fields body has to s. */
static gboolean
settings_from_json(const json_t *body, CmSiteSettings *s, GError **error)
{
    const char *v;
    GError *e = NULL;
    static const struct {
        const char *key;
        size_t off;
    } flags[] = {
        {"require_signing", G_STRUCT_OFFSET(CmSiteSettings, require_signing)},
        {"require_sha256", G_STRUCT_OFFSET(CmSiteSettings, require_sha256)},
        {"encrypt", G_STRUCT_OFFSET(CmSiteSettings, encrypt)},
        {"allow_3des", G_STRUCT_OFFSET(CmSiteSettings, allow_3des)},
        {"crl_check", G_STRUCT_OFFSET(CmSiteSettings, crl_check)},
    };
    const char *key;
    json_t *value;

    json_object_foreach((json_t *)body, key, value)
    {
        gboolean known = strcmp(key, "communication") == 0 || strcmp(key, "approval") == 0 ||
                         strcmp(key, "conflicts") == 0;
        for (size_t i = 0; i < G_N_ELEMENTS(flags); i++)
            known = known || strcmp(key, flags[i].key) == 0;
        if (!known) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "no setting \"%s\"", key);
            return FALSE;
        }
    }
    if (((v = cm_json_opt_str(body, "communication", 32, &e)) != NULL &&
         !cm_comm_mode_parse(v, &s->communication, &e)) ||
        ((v = cm_json_opt_str(body, "approval", 32, &e)) != NULL &&
         !cm_approval_mode_parse(v, &s->approval, &e)) ||
        ((v = cm_json_opt_str(body, "conflicts", 32, &e)) != NULL &&
         !cm_conflict_mode_parse(v, &s->conflicts, &e)) ||
        e != NULL) {
        g_propagate_error(error, e);
        return FALSE;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        if (json_object_get(body, flags[i].key) != NULL &&
            !cm_json_bool(body, flags[i].key, G_STRUCT_MEMBER_P(s, flags[i].off), error))
            return FALSE;
    }
    return TRUE;
}

static json_t *
site_json(SiteDaemon *d)
{
    g_autoptr(GArray) mps = cm_site_mps(d->site);
    json_t *list = json_array();

    for (guint i = 0; mps != NULL && i < mps->len; i++) {
        const CmMpInfo *m = &g_array_index(mps, CmMpInfo, i);
        json_array_append_new(list, json_pack("{s:s, s:I, s:b}", "name", m->name, "role_id",
                                              (json_int_t)m->role_id, "internet", m->internet));
    }
    return json_pack("{s:s, s:o, s:{s:I, s:I, s:I}, s:o}", "site_code", cm_site_code(d->site),
                     "settings", settings_json(cm_site_settings(d->site)), "clients", "pending",
                     (json_int_t)cm_site_client_count(d->site, CM_CLIENT_PENDING), "approved",
                     (json_int_t)cm_site_client_count(d->site, CM_CLIENT_APPROVED), "blocked",
                     (json_int_t)cm_site_client_count(d->site, CM_CLIENT_BLOCKED), "mps", list);
}

static gint64
collection_of(SiteDaemon *d, const json_t *body, GError **error)
{
    const char *name = cm_json_str(body, "collection", CM_NAME_MAX, error);
    gint64 id;

    if (name == NULL)
        return -1;
    id = cm_site_collection_id(d->site, name);
    if (id < 0)
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no collection \"%s\"", name);
    return id;
}

static json_t *
create_collection(SiteDaemon *d, const char *admin, const json_t *body, GError **error)
{
    const char *name = cm_json_str(body, "name", CM_NAME_MAX, error);
    const json_t *rules = name ? cm_json_array(body, "rules", ADMIN_RULES_MAX, error) : NULL;
    g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func(g_free);
    CmRule parsed[ADMIN_RULES_MAX];
    size_t n = 0;
    gint64 id;

    if (rules == NULL)
        return NULL;
    for (size_t i = 0; i < json_array_size(rules); i++) {
        const char *text = json_string_value(json_array_get(rules, i));
        char *prop = NULL, *value = NULL;
        if (text == NULL) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "rules: expected strings");
            return NULL;
        }
        if (!cm_rule_parse(text, &parsed[n].source, &prop, &parsed[n].op, &value, error))
            return NULL;
        g_ptr_array_add(strings, prop);
        g_ptr_array_add(strings, value);
        parsed[n].property = prop;
        parsed[n].value = value;
        n++;
    }
    id = cm_site_admin_create_collection(d->site, name, parsed, n, admin, cm_net_wall_now(), error);
    return id < 0 ? NULL : json_pack("{s:s, s:I}", "name", name, "id", (json_int_t)id);
}

static json_t *
deploy(SiteDaemon *d, const char *admin, const json_t *body, GError **error)
{
    CmDeployment dep = {0};
    g_autoptr(GBytes) hash = NULL;
    g_autofree char *policy = NULL;
    const char *hash_hex;
    gint64 collection, deadline = 0, runtime = 0, size = 0;
    gboolean required = FALSE;

    if ((collection = collection_of(d, body, error)) < 0 ||
        (dep.name = cm_json_str(body, "name", CM_NAME_MAX, error)) == NULL ||
        (dep.content_id = cm_json_str(body, "content_id", CM_NAME_MAX, error)) == NULL ||
        (hash_hex = cm_json_str(body, "content_hash", 64, error)) == NULL ||
        (json_object_get(body, "content_size") &&
         !cm_json_int(body, "content_size", 0, G_MAXINT64, &size, error)) ||
        (json_object_get(body, "required") && !cm_json_bool(body, "required", &required, error)) ||
        (json_object_get(body, "deadline") &&
         !cm_json_int(body, "deadline", 0, G_MAXINT32, &deadline, error)) ||
        (json_object_get(body, "max_runtime") &&
         !cm_json_int(body, "max_runtime", 0, 7 * 86400, &runtime, error)))
        return NULL;
    hash = strlen(hash_hex) == 64 ? cm_enc_hex_decode(hash_hex, 32, NULL) : NULL;
    if (hash == NULL || g_bytes_get_size(hash) != 32) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "content_hash: expected the hex SHA-256 of the content (64 digits)");
        return NULL;
    }
    dep.content_hash = g_bytes_get_data(hash, NULL);
    dep.content_size = size;
    dep.required = required;
    dep.deadline = deadline * CM_USEC_PER_SEC;
    dep.max_runtime_s = runtime;
    dep.settings = json_object_get(body, "settings");
    policy = cm_site_admin_deploy(d->site, collection, &dep, admin, cm_net_wall_now(), error);
    return policy ? json_pack("{s:s}", "policy_id", policy) : NULL;
}

/* A new CRL from the enterprise CA (REQ TRUST-14): the site checks client
 * certificates against it from now on, and keeps it for its next start. */
static json_t *
replace_crl(SiteDaemon *d, const json_t *body, GError **error)
{
    const char *pem = cm_json_str(body, "crl", ADMIN_BODY_MAX, error);
    g_autofree char *path = NULL;
    CmCrl *crl;
    GError *cause = NULL;

    if (pem == NULL)
        return NULL;
    if (d->pki_root == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_STATE,
                    "this site trusts no PKI root (cmlab-site init --pki-root)");
        return NULL;
    }
    crl = cm_crl_from_pem(pem, strlen(pem), &cause);
    if (crl == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "crl: %s", cause->message);
        g_error_free(cause);
        return NULL;
    }
    path = g_build_filename(d->dir, "pki-crl.pem", NULL);
    if (!cm_site_set_pki(d->site, d->pki_root, crl, error) ||
        !cm_daemon_write_file(path, pem, strlen(pem), 0644, &cause)) {
        if (cause != NULL) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_STORE, "%s", cause->message);
            g_error_free(cause);
        }
        cm_crl_unref(crl);
        return NULL;
    }
    if (d->pki_crl != NULL)
        cm_crl_unref(d->pki_crl);
    d->pki_crl = crl;
    return json_pack("{s:b}", "replaced", TRUE);
}

static json_t *
client_action(SiteDaemon *d, const char *admin, const char *action, const json_t *body,
              GError **error)
{
    const char *smsid = cm_json_str(body, "smsid", CM_ID_SMSID_LEN, error);
    CmTime now = cm_net_wall_now();
    gboolean ok;

    if (smsid == NULL)
        return NULL;
    if (strcmp(action, "approve") == 0)
        ok = cm_site_admin_approve(d->site, smsid, admin, now, error);
    else if (strcmp(action, "block") == 0)
        ok = cm_site_admin_block(d->site, smsid, admin, now, error);
    else
        ok = cm_site_admin_unblock(d->site, smsid, admin, now, error);
    return ok ? cm_site_client_json(d->site, smsid, error) : NULL;
}

/* CMG bulk registration tokens (REQ CMG-12): cmg/token issues one
 * ({"lifetime": seconds}, 3 days by default, 7 at most), cmg/block blocks
 * one by its ID ({"jti"}) and tells the gateway. */
static json_t *
cmg_call(SiteDaemon *d, const char *admin, const char *op, const json_t *body, GError **error)
{
    CmTime now = cm_net_wall_now();
    GError *cause = NULL;

    if (strcmp(op, "cmg/token") == 0) {
        gint64 lifetime = 0;
        char jti[CM_SITE_CMG_TOKEN_ID_LEN + 1];
        g_autofree char *token = NULL;
        CmRng rng;
        if (json_object_get(body, "lifetime") != NULL &&
            !cm_json_int(body, "lifetime", 1, 365 * 86400, &lifetime, error))
            return NULL;
        cm_rng_init_os(&rng);
        token = cm_site_cmg_bulk_token(d->site, admin, lifetime * CM_USEC_PER_SEC, now, &rng, jti,
                                       error);
        if (token == NULL)
            return NULL;
        return json_pack("{s:s, s:s, s:I}", "token", token, "jti", jti, "expires",
                         (json_int_t)((now + (lifetime ? lifetime * CM_USEC_PER_SEC
                                                       : CM_SITE_CMG_BULK_LIFETIME_DEFAULT)) /
                                      CM_USEC_PER_SEC));
    }
    if (strcmp(op, "cmg/block") == 0) {
        const char *jti = cm_json_str(body, "jti", CM_SITE_CMG_TOKEN_ID_LEN, error);
        if (jti == NULL || !cm_site_cmg_block_token(d->site, admin, jti, now, error))
            return NULL;
        if (!cm_site_cmg_push_blocked(d, &cause)) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_STORE,
                        "blocked, but the gateway was not told: %s", cause->message);
            g_error_free(cause);
            return NULL;
        }
        return json_pack("{s:s}", "blocked", jti);
    }
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                "POST /admin/%s: docs/lab.md lists the administrative API", op);
    return NULL;
}

/* One administrative call, under the site lock. */
static json_t *
dispatch(SiteDaemon *d, const char *admin, const char *method, const char *path, const json_t *body,
         GError **error)
{
    const char *op = path + strlen(CM_ADMIN_API_PREFIX);
    gboolean get = strcmp(method, "GET") == 0;

    if (get && strcmp(op, "audit") == 0) {
        CmAuditReport r;
        if (!cm_site_authorize(d->site, admin, CM_ADMIN_VIEW, 0, cm_net_wall_now(), error) ||
            !cm_site_audit_verify(d->site, NULL, &r, error))
            return NULL;
        return json_pack("{s:s, s:I, s:I, s:s, s:s}", "verdict", cm_audit_verdict_name(r.verdict),
                         "entries", (json_int_t)r.entries, "bad_id", (json_int_t)r.bad_id, "head",
                         r.head, "message", r.message);
    }
    if (get && !cm_site_authorize(d->site, admin, CM_ADMIN_VIEW, 0, cm_net_wall_now(), error))
        return NULL;
    if (get && strcmp(op, "site") == 0)
        return site_json(d);
    if (get && strcmp(op, "trk") == 0) {
        g_autofree char *trk = cm_site_export_trk(d->site);
        return json_pack("{s:s}", "trk", trk);
    }
    if (get && (strcmp(op, "clients") == 0 || g_str_has_prefix(op, "clients/"))) {
        const char *state = op[7] == '/' ? op + 8 : "";
        int s = -1;
        if (strcmp(state, "pending") == 0)
            s = CM_CLIENT_PENDING;
        else if (strcmp(state, "approved") == 0)
            s = CM_CLIENT_APPROVED;
        else if (strcmp(state, "blocked") == 0)
            s = CM_CLIENT_BLOCKED;
        else if (*state != '\0') {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                        "clients/%s: expected pending, approved or blocked", state);
            return NULL;
        }
        return cm_site_clients_json(d->site, s, ADMIN_LIST_MAX, error);
    }
    if (get && g_str_has_prefix(op, "client/"))
        return cm_site_authorize_client(d->site, admin, CM_ADMIN_VIEW, op + 7, cm_net_wall_now(),
                                        error)
                   ? cm_site_client_json(d->site, op + 7, error)
                   : NULL;
    if (get && strcmp(op, "hierarchy") == 0)
        return cm_site_hier_status_json(d, error);
    if (get && strcmp(op, "cmg/blocked") == 0) {
        g_autofree char *list = cm_site_cmg_blocked_tokens(d->site, error);
        g_auto(GStrv) ids = list ? g_strsplit(list, "\n", -1) : NULL;
        json_t *arr = list ? json_array() : NULL;
        for (char **i = ids; i != NULL && *i != NULL; i++)
            if (**i != '\0')
                json_array_append_new(arr, json_string(*i));
        return arr ? json_pack("{s:o}", "blocked", arr) : NULL;
    }
    if (get) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                    "GET %s: docs/lab.md lists the administrative API", path);
        return NULL;
    }
    if (strcmp(op, "approve") == 0 || strcmp(op, "block") == 0 || strcmp(op, "unblock") == 0)
        return client_action(d, admin, op, body, error);
    if (strcmp(op, "collection") == 0)
        return create_collection(d, admin, body, error);
    if (strcmp(op, "deploy") == 0)
        return deploy(d, admin, body, error);
    if (strcmp(op, "settings") == 0) {
        CmSiteSettings s = *cm_site_settings(d->site);
        if (!settings_from_json(body, &s, error) ||
            !cm_site_set_settings(d->site, &s, admin, cm_net_wall_now(), error))
            return NULL;
        return settings_json(cm_site_settings(d->site));
    }
    if (strcmp(op, "crl") == 0)
        return replace_crl(d, body, error);
    if (g_str_has_prefix(op, "cmg/"))
        return cmg_call(d, admin, op, body, error);
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                "POST %s: docs/lab.md lists the administrative API", path);
    return NULL;
}

gboolean
cm_site_admin_api(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    SiteDaemon *d = user_data;
    const CmCert *peer = cm_net_call_peer_cert(call);
    const char *method = cm_net_call_method(call);
    g_autoptr(json_t) body = NULL;
    GError *error = NULL;
    json_t *answer;
    const char *admin;

    if (peer == NULL) {
        cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                           "the administrative API takes administrators' certificates only");
        return TRUE;
    }
    admin = cm_cert_subject_cn(peer);
    /* The SMS Provider signs the caller in (REQ ADM-02): a registered
     * administrator whose certificate it is, at the hierarchy's level (a
     * one-time code in CCM-Admin-OTP for two factors); audited either way.
     * What it may then do is its roles' business (REQ ADM-01). */
    {
        CmProviderLogin login = {.admin = admin,
                                 .cert = peer,
                                 .totp = cm_net_call_header(call, "CCM-Admin-OTP"),
                                 .cert_trust = d->admin_trust};
        gboolean in;
        g_mutex_lock(&d->lock);
        in = cm_site_provider_login(d->site, &login, cm_net_wall_now(), NULL, &error);
        g_mutex_unlock(&d->lock);
        if (!in) {
            cm_response_refuse(resp, CM_REASON_FORBIDDEN, "sign-in refused: %s", error->message);
            g_message("admin %s: sign-in refused: %s", admin, error->message);
            g_error_free(error);
            return TRUE;
        }
    }
    if (strcmp(method, "POST") == 0) {
        body = cm_json_parse(req->body, req->body_len, ADMIN_BODY_MAX, &error);
        if (body == NULL) {
            cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "body: %s", error->message);
            g_error_free(error);
            return TRUE;
        }
    }
    g_mutex_lock(&d->lock);
    answer = dispatch(d, admin, method, cm_net_call_path(call), body, &error);
    g_mutex_unlock(&d->lock);
    if (answer == NULL) {
        refuse_error(resp, error);
        g_message("admin %s: %s %s refused: %s", admin, method, cm_net_call_path(call),
                  resp->message ? resp->message : "");
        return TRUE;
    }
    if (strcmp(method, "POST") == 0)
        g_message("admin %s: %s %s", admin, method, cm_net_call_path(call));
    cm_daemon_reply_json(resp, answer);
    return TRUE;
}
