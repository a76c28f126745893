/* fuzz-cmgurl.c - CMG URL mappings and MP list entries over one input, with
 * the properties the URL filter relies on:
 *  - an accepted URL has one spelling up to case: rebuilding it from what
 *    was parsed gives the input back, ignoring ASCII case, and parses to
 *    the same fields;
 *  - rest is "" or starts with '/', the host is lower case, the role ID
 *    positive;
 *  - the same for MP list entries;
 *  - a CMG name that cm_cmgurl_build accepts parses back from its URL;
 *  - a refusal carries a short, valid UTF-8 message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

#define MESSAGE_MAX 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const auth_names[] = {"CCM_Proxy_MutualAuth", "CCM_Proxy_ServerAuth"};

static void
check_refusal(GError *error)
{
    if (error == NULL || error->domain != CM_PROTO_ERROR)
        abort();
    if (error->code != CM_PROTO_ERROR_INVALID && error->code != CM_PROTO_ERROR_TOO_LARGE)
        abort();
    if (strlen(error->message) > MESSAGE_MAX || !g_utf8_validate(error->message, -1, NULL))
        abort();
    g_error_free(error);
}

static gboolean
url_equal(const CmCmgUrl *a, const CmCmgUrl *b)
{
    return strcmp(a->cmg_name, b->cmg_name) == 0 && a->auth == b->auth &&
           a->role_id == b->role_id && a->endpoint == b->endpoint && strcmp(a->rest, b->rest) == 0;
}

static void
fuzz_parse(const char *s)
{
    GError *error = NULL;
    CmCmgUrl u, again;
    char *rebuilt;

    if (!cm_cmgurl_parse(s, &u, &error)) {
        check_refusal(error);
        return;
    }
    if (error != NULL || u.role_id == 0 ||
        (u.auth != CM_CMG_AUTH_MUTUAL && u.auth != CM_CMG_AUTH_SERVER))
        abort();
    if (u.rest[0] != '\0' && u.rest[0] != '/')
        abort();
    for (const char *p = u.cmg_name; *p != '\0'; p++) {
        if (g_ascii_isupper(*p))
            abort();
    }
    if (u.cmg_name[0] != '\0') {
        char *base = cm_cmgurl_build(u.cmg_name, u.auth, u.role_id, u.endpoint);
        if (base == NULL)
            abort();
        rebuilt = g_strconcat(base, u.rest, NULL);
        g_free(base);
    } else {
        rebuilt = g_strdup_printf("/%s/%" G_GUINT64_FORMAT "/%s%s", auth_names[u.auth], u.role_id,
                                  cm_cmgurl_endpoint_name(u.endpoint), u.rest);
    }
    if (g_ascii_strcasecmp(rebuilt, s) != 0)
        abort();
    if (!cm_cmgurl_parse(rebuilt, &again, NULL) || !url_equal(&u, &again))
        abort();
    g_free(rebuilt);
}

static void
fuzz_mp_entry(const char *s)
{
    GError *error = NULL;
    char name[CM_CMG_NAME_MAX + 1], name2[CM_CMG_NAME_MAX + 1];
    guint64 id, id2;
    char *entry;

    if (!cm_cmgurl_mp_entry_parse(s, name, &id, &error)) {
        check_refusal(error);
        return;
    }
    if (error != NULL || id == 0)
        abort();
    entry = cm_cmgurl_mp_entry(name, id);
    if (entry == NULL || g_ascii_strcasecmp(entry, s) != 0)
        abort();
    if (!cm_cmgurl_mp_entry_parse(entry, name2, &id2, NULL) || strcmp(name, name2) != 0 ||
        id != id2)
        abort();
    g_free(entry);
}

static void
fuzz_build(const char *s)
{
    char *url = cm_cmgurl_build(s, CM_CMG_AUTH_SERVER, 1, CM_CMG_EP_SMS_MP);
    CmCmgUrl u;

    if (url == NULL)
        return;
    if (!cm_cmgurl_parse(url, &u, NULL) || g_ascii_strcasecmp(u.cmg_name, s) != 0 ||
        u.auth != CM_CMG_AUTH_SERVER || u.role_id != 1 || u.endpoint != CM_CMG_EP_SMS_MP ||
        u.rest[0] != '\0')
        abort();
    g_free(url);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* URLs and entries are C strings: the input up to its first NUL. */
    char *s = g_strndup((const char *)data, size);

    fuzz_parse(s);
    fuzz_mp_entry(s);
    fuzz_build(s);
    g_free(s);
    return 0;
}
