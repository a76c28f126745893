/* cmgtoken.c - bulk registration tokens for the cloud management gateway
 * (REQ CMG-12): issued by an administrator, signed with the site server
 * signing key, blockable by their ID.
 *
 * The token is the one cmg/ verifies (cm_cmg_bulk_token_issue makes the
 * same): a JWT with kid and iss the site code, aud "cmg", sub
 * "bulk-registration", kind "bulk" and a random jti.  libcmsite links
 * before libcmcmg, so it is made here with proto's cm_jwt_* directly.  The
 * blocked IDs are kept in the site's meta table (one a line), each change
 * audited. */
#include "internal.h"

#include <string.h>

#define CMG_AUDIENCE "cmg"
#define CMG_BLOCKED_KEY "cmg_blocked_tokens"
#define CMG_BLOCKED_MAX 10000

static gboolean
jti_check(const char *jti, GError **error)
{
    size_t n = jti ? strlen(jti) : 0;

    for (size_t i = 0; i < n; i++)
        if (!g_ascii_isxdigit(jti[i]) || g_ascii_isupper(jti[i]))
            n = 0;
    if (n != CM_SITE_CMG_TOKEN_ID_LEN) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a bulk registration token ID is %d lower-case hex characters",
                    CM_SITE_CMG_TOKEN_ID_LEN);
        return FALSE;
    }
    return TRUE;
}

char *
cm_site_cmg_bulk_token(CmSite *site, const char *admin, CmTime lifetime, CmTime now, CmRng *rng,
                       char jti_out[CM_SITE_CMG_TOKEN_ID_LEN + 1], GError **error)
{
    guint8 raw[CM_SITE_CMG_TOKEN_ID_LEN / 2];
    g_autofree char *hex = NULL, *jti = NULL, *detail = NULL;
    g_autoptr(json_t) claims = NULL;
    char *token = NULL;

    if (!cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error))
        return NULL;
    if (lifetime == 0)
        lifetime = CM_SITE_CMG_BULK_LIFETIME_DEFAULT;
    if (lifetime < 0 || lifetime > CM_SITE_CMG_BULK_LIFETIME_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "a bulk registration token lives at most 7 days (3 by default); asked for "
                    "%" G_GINT64_FORMAT " s",
                    lifetime / CM_USEC_PER_SEC);
        return NULL;
    }
    cm_rng_bytes(rng, raw, sizeof raw);
    hex = cm_enc_hex(raw, sizeof raw);
    jti = g_ascii_strdown(hex, -1);
    claims = cm_jwt_claims_new(site->code, CMG_AUDIENCE, "bulk-registration", now, lifetime, jti);
    if (claims == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "cannot make token claims at this time");
        return NULL;
    }
    json_object_set_new(claims, "kind", json_string("bulk"));
    detail = g_strdup_printf("lifetime %" G_GINT64_FORMAT " s", lifetime / CM_USEC_PER_SEC);
    /* Audited before it is handed out: a token nobody can account for
     * must not exist. */
    if (!cm_site_audit(site, admin, "cmg-bulk-token", jti, detail, now, error))
        return NULL;
    token = cm_jwt_sign(site->signing_key, site->code, claims, error);
    if (token != NULL && jti_out != NULL)
        g_strlcpy(jti_out, jti, CM_SITE_CMG_TOKEN_ID_LEN + 1);
    return token;
}

char *
cm_site_cmg_blocked_tokens(CmSite *site, GError **error)
{
    char *v = NULL;

    if (!cm_site_meta_get(site, CMG_BLOCKED_KEY, &v, error))
        return NULL;
    return v != NULL ? v : g_strdup("");
}

gboolean
cm_site_cmg_block_token(CmSite *site, const char *admin, const char *jti, CmTime now,
                        GError **error)
{
    g_autofree char *list = NULL, *next = NULL;
    GError *cause = NULL;
    g_auto(GStrv) lines = NULL;

    if (!jti_check(jti, error) ||
        !cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error) ||
        (list = cm_site_cmg_blocked_tokens(site, error)) == NULL)
        return FALSE;
    lines = g_strsplit(list, "\n", -1);
    if (g_strv_contains((const char *const *)lines, jti))
        return TRUE; /* blocked already: nothing changes */
    if (g_strv_length(lines) >= CMG_BLOCKED_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "%d blocked tokens at most: the oldest have expired anyway (7 days)",
                    CMG_BLOCKED_MAX);
        return FALSE;
    }
    next = *list ? g_strconcat(list, "\n", jti, NULL) : g_strdup(jti);
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    if (!cm_site_meta_set(site, CMG_BLOCKED_KEY, next, error) ||
        !cm_site_audit(site, admin, "cmg-block-token", jti, "blocked", now, error) ||
        !cm_store_commit(site->store, &cause)) {
        if (cause != NULL)
            cm_site_store_error(error, cause);
        cm_store_rollback(site->store);
        return FALSE;
    }
    return TRUE;
}
