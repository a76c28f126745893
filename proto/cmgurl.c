/* cmgurl.c - CMG URL mappings (REQ CMG-10).
 *
 *   https://<CMG name>/CCM_Proxy_MutualAuth/<MP role ID>/<endpoint>[/rest]
 *
 * The CMG forwards only published mappings (REQ CMG-05), so the parser is the
 * URL filter's first line: a path it accepts has one spelling.  Proxy and
 * endpoint names match case-insensitively, as IIS does; everything that
 * could make two spellings of one path, or make the path behind the filter
 * differ from the one the filter saw, is refused: "." and ".." segments,
 * empty segments, backslashes, percent-encoded '/', '\\', '.', '%' and NUL.
 * A query string or fragment is refused too: HTTP servers hand the path and
 * the query separately, and only the path is a mapping.  A port is refused:
 * the mapping names a CMG, which listens on 443. */
#include "internal.h"

#include <string.h>

static const char *const endpoint_names[] = {
    [CM_CMG_EP_CCM_SYSTEM] = "CCM_System",
    [CM_CMG_EP_CCM_INCOMING] = "CCM_Incoming",
    [CM_CMG_EP_SMS_MP] = "SMS_MP",
};

static const char *const auth_names[] = {
    [CM_CMG_AUTH_MUTUAL] = "CCM_Proxy_MutualAuth",
    [CM_CMG_AUTH_SERVER] = "CCM_Proxy_ServerAuth",
};

const char *
cm_cmgurl_endpoint_name(CmCmgEndpoint ep)
{
    if ((unsigned)ep >= G_N_ELEMENTS(endpoint_names))
        return "unknown";
    return endpoint_names[ep];
}

/* Does s[0..len) equal name, ignoring ASCII case? */
static gboolean
segment_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && g_ascii_strncasecmp(s, name, len) == 0;
}

/* Validates name[0..len) as a DNS host name and writes it lower-cased. */
static gboolean
cmg_name_check(const char *name, size_t len, char out[CM_CMG_NAME_MAX + 1], GError **error)
{
    size_t label = 0;

    if (len == 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CMG name is empty; expected a DNS name such as cmg.example.com");
        return FALSE;
    }
    if (len > CM_CMG_NAME_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CMG name is %zu characters long; a DNS name has at most %d", len,
                    CM_CMG_NAME_MAX);
        return FALSE;
    }
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? name[i] : '.';
        if (c == '.') {
            if (label == 0) {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "CMG name has an empty label (offset %zu); write the DNS name "
                            "without leading, trailing or doubled dots",
                            i);
                return FALSE;
            }
            if (name[i - 1] == '-') {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "CMG name has a label that ends with '-' (offset %zu)", i - 1);
                return FALSE;
            }
            if (i < len)
                out[i] = '.';
            label = 0;
            continue;
        }
        if (!g_ascii_isalnum(c) && c != '-') {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG name has a character not allowed in a DNS name (0x%02X) at "
                        "offset %zu; use letters, digits, '-' and '.'",
                        (unsigned)(unsigned char)c, i);
            return FALSE;
        }
        if (c == '-' && label == 0) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG name has a label that starts with '-' (offset %zu)", i);
            return FALSE;
        }
        if (++label > 63) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG name has a label longer than 63 characters (offset %zu)", i);
            return FALSE;
        }
        out[i] = g_ascii_tolower(c);
    }
    out[len] = '\0';
    return TRUE;
}

/* A management point role ID from s[0..len), by cm_id_role_id_parse, so
 * that URLs, lists and configuration agree on one spelling. */
static gboolean
role_id_parse(const char *s, size_t len, guint64 *out, GError **error)
{
    g_autofree char *id = g_strndup(s, len);

    return cm_id_role_id_parse(id, out, error);
}

/* Checks the characters and segments of a path (starting with '/'); see the
 * top of the file for what is refused and why.  base is the path's offset in
 * the URL, for the messages. */
static gboolean
path_check(const char *path, size_t len, size_t base, GError **error)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '?' || c == '#') {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG URL has a %s at offset %zu; pass the path without it",
                        c == '?' ? "query string" : "fragment", base + i);
            return FALSE;
        }
        if (c == '\\') {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG URL has a backslash at offset %zu; use '/' between segments",
                        base + i);
            return FALSE;
        }
        if (c <= 0x20 || c >= 0x7f) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG URL has a character that must be percent-encoded (0x%02X) at "
                        "offset %zu",
                        (unsigned)c, base + i);
            return FALSE;
        }
        if (c == '%') {
            int hi = i + 2 < len ? g_ascii_xdigit_value(path[i + 1]) : -1;
            int lo = i + 2 < len ? g_ascii_xdigit_value(path[i + 2]) : -1;
            int v;
            if (hi < 0 || lo < 0) {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "CMG URL has a '%%' not followed by two hex digits at offset %zu",
                            base + i);
                return FALSE;
            }
            v = hi << 4 | lo;
            if (v == '/' || v == '\\' || v == '.' || v == '%' || v == 0) {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "CMG URL has an encoded %s (%%%02X) at offset %zu; such escapes "
                            "could hide a different path from the URL filter",
                            v == '/'    ? "slash"
                            : v == '\\' ? "backslash"
                            : v == '.'  ? "dot"
                            : v == '%'  ? "percent sign"
                                        : "NUL",
                            (unsigned)v, base + i);
                return FALSE;
            }
        }
        if (c == '/') {
            /* The segment that starts after this slash. */
            size_t end = i + 1;
            while (end < len && path[end] != '/')
                end++;
            if (end == i + 1 && end < len) {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "CMG URL has an empty path segment ('//') at offset %zu", base + i);
                return FALSE;
            }
            if ((end - i - 1 == 1 && path[i + 1] == '.') ||
                (end - i - 1 == 2 && path[i + 1] == '.' && path[i + 2] == '.')) {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "CMG URL has a '.' or '..' path segment at offset %zu", base + i + 1);
                return FALSE;
            }
        }
    }
    return TRUE;
}

/* Parses "/<proxy>/<role id>/<endpoint>[/rest]" into out (cmg_name untouched). */
static gboolean
path_parse(const char *path, size_t len, size_t base, CmCmgUrl *out, GError **error)
{
    const char *seg[3];
    size_t seg_len[3];
    size_t pos = 0;
    size_t i;

    if (!path_check(path, len, base, error))
        return FALSE;
    for (i = 0; i < 3; i++) {
        if (pos >= len || path[pos] != '/') {
            static const char *const missing[] = {"proxy name (CCM_Proxy_MutualAuth)",
                                                  "management point role ID", "endpoint"};
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG URL has no %s; expected /CCM_Proxy_MutualAuth/<MP role "
                        "ID>/CCM_System",
                        missing[i]);
            return FALSE;
        }
        seg[i] = path + pos + 1;
        seg_len[i] = strcspn(seg[i], "/");
        if (seg_len[i] > len - pos - 1)
            seg_len[i] = len - pos - 1;
        pos += 1 + seg_len[i];
    }
    if (segment_is(seg[0], seg_len[0], auth_names[CM_CMG_AUTH_MUTUAL])) {
        out->auth = CM_CMG_AUTH_MUTUAL;
    } else if (segment_is(seg[0], seg_len[0], auth_names[CM_CMG_AUTH_SERVER])) {
        out->auth = CM_CMG_AUTH_SERVER;
    } else {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CMG URL names proxy \"%.*s\"; expected CCM_Proxy_MutualAuth or "
                    "CCM_Proxy_ServerAuth",
                    (int)MIN(seg_len[0], 64), seg[0]);
        return FALSE;
    }
    if (!role_id_parse(seg[1], seg_len[1], &out->role_id, error)) {
        g_prefix_error(error, "CMG URL: ");
        return FALSE;
    }
    for (i = 0; i < G_N_ELEMENTS(endpoint_names); i++) {
        if (segment_is(seg[2], seg_len[2], endpoint_names[i]))
            break;
    }
    if (i == G_N_ELEMENTS(endpoint_names)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CMG URL names endpoint \"%.*s\", which is not published; expected "
                    "CCM_System, CCM_Incoming or SMS_MP",
                    (int)MIN(seg_len[2], 64), seg[2]);
        return FALSE;
    }
    out->endpoint = (CmCmgEndpoint)i;
    /* The rest is shorter than the URL, which is at most CM_CMG_URL_MAX. */
    g_assert(len - pos < sizeof out->rest);
    memcpy(out->rest, path + pos, len - pos);
    out->rest[len - pos] = '\0';
    return TRUE;
}

char *
cm_cmgurl_build(const char *cmg_name, CmCmgAuth auth, guint64 role_id, CmCmgEndpoint ep)
{
    char name[CM_CMG_NAME_MAX + 1];

    /* Without a GError to report in, an invalid argument is a programming
     * error the caller sees as NULL. */
    if (cmg_name == NULL || (unsigned)auth >= G_N_ELEMENTS(auth_names) ||
        (unsigned)ep >= G_N_ELEMENTS(endpoint_names) || role_id == 0 ||
        !cmg_name_check(cmg_name, strnlen(cmg_name, CM_CMG_NAME_MAX + 1), name, NULL))
        return NULL;
    return g_strdup_printf("https://%s/%s/%" G_GUINT64_FORMAT "/%s", name, auth_names[auth],
                           role_id, endpoint_names[ep]);
}

gboolean
cm_cmgurl_parse(const char *url, CmCmgUrl *out, GError **error)
{
    static const char scheme[] = "https://";
    CmCmgUrl tmp;
    size_t len;
    const char *path;

    if (url == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "no CMG URL given");
        return FALSE;
    }
    len = strnlen(url, CM_CMG_URL_MAX + 1);
    if (len > CM_CMG_URL_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "CMG URL is longer than %d characters", CM_CMG_URL_MAX);
        return FALSE;
    }
    memset(&tmp, 0, sizeof tmp);
    if (url[0] == '/') {
        path = url;
    } else if (g_ascii_strncasecmp(url, scheme, sizeof scheme - 1) == 0) {
        const char *host = url + sizeof scheme - 1;
        size_t host_len = strcspn(host, "/?#");
        if (memchr(host, '@', host_len) != NULL) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG URL has user information before the host; remove it");
            return FALSE;
        }
        if (memchr(host, ':', host_len) != NULL) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CMG URL has a port; a CMG listens on 443, so the URL names none");
            return FALSE;
        }
        if (!cmg_name_check(host, host_len, tmp.cmg_name, error)) {
            g_prefix_error(error, "CMG URL: ");
            return FALSE;
        }
        path = host + host_len;
        if (*path != '/' && *path != '\0') {
            /* '?' or '#' right after the host: let path_check say so. */
            if (!path_check(path, len - (size_t)(path - url), (size_t)(path - url), error))
                return FALSE;
        }
    } else {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CMG URL must start with https:// (the CMG serves HTTPS only) or with "
                    "'/' for a path");
        return FALSE;
    }
    if (!path_parse(path, len - (size_t)(path - url), (size_t)(path - url), &tmp, error))
        return FALSE;
    *out = tmp;
    return TRUE;
}

char *
cm_cmgurl_mp_entry(const char *cmg_name, guint64 role_id)
{
    char name[CM_CMG_NAME_MAX + 1];

    if (cmg_name == NULL || role_id == 0 ||
        !cmg_name_check(cmg_name, strnlen(cmg_name, CM_CMG_NAME_MAX + 1), name, NULL))
        return NULL;
    return g_strdup_printf("%s/%s/%" G_GUINT64_FORMAT, name, auth_names[CM_CMG_AUTH_MUTUAL],
                           role_id);
}

gboolean
cm_cmgurl_mp_entry_parse(const char *entry, char name_out[CM_CMG_NAME_MAX + 1],
                         guint64 *role_id_out, GError **error)
{
    char name[CM_CMG_NAME_MAX + 1];
    const char *proxy, *id;
    size_t len, name_len, proxy_len;
    guint64 role_id;

    if (entry == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "no management point list entry given");
        return FALSE;
    }
    len = strnlen(entry, CM_CMG_URL_MAX + 1);
    if (len > CM_CMG_URL_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "management point list entry is longer than %d characters", CM_CMG_URL_MAX);
        return FALSE;
    }
    name_len = strcspn(entry, "/");
    if (name_len == len) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "management point list entry has no '/'; expected "
                    "<CMG name>/CCM_Proxy_MutualAuth/<MP role ID>");
        return FALSE;
    }
    if (!cmg_name_check(entry, name_len, name, error)) {
        g_prefix_error(error, "management point list entry: ");
        return FALSE;
    }
    proxy = entry + name_len + 1;
    proxy_len = strcspn(proxy, "/");
    if (!segment_is(proxy, proxy_len, auth_names[CM_CMG_AUTH_MUTUAL]) || proxy[proxy_len] != '/') {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "management point list entry must read <CMG name>/CCM_Proxy_MutualAuth/<MP "
                    "role ID>");
        return FALSE;
    }
    id = proxy + proxy_len + 1;
    if (!role_id_parse(id, strlen(id), &role_id, error)) {
        g_prefix_error(error, "management point list entry: ");
        return FALSE;
    }
    memcpy(name_out, name, name_len + 1);
    *role_id_out = role_id;
    return TRUE;
}
