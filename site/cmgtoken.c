/* cmgtoken.c - bulk registration tokens for the cloud management gateway
 * (REQ CMG-12): issued by an administrator, signed with the site server
 * signing key, blockable by their ID.
 *
 * The token itself is cmg/'s (cm_cmg_bulk_token_issue, which the gateway
 * verifies); the site adds who may ask for one, the audit entry, and the
 * blocked IDs, kept in the site's meta table (one a line), each change
 * audited. */
#include "internal.h"

#include <string.h>

#include "cmcmg.h"

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

G_STATIC_ASSERT(CM_SITE_CMG_TOKEN_ID_LEN == CM_CMG_TOKEN_ID_LEN);
G_STATIC_ASSERT(CM_SITE_CMG_BULK_LIFETIME_MAX == CM_CMG_BULK_LIFETIME_MAX);

char *
cm_site_cmg_bulk_token(CmSite *site, const char *admin, CmTime lifetime, CmTime now, CmRng *rng,
                       char jti_out[CM_SITE_CMG_TOKEN_ID_LEN + 1], GError **error)
{
    char jti[CM_CMG_TOKEN_ID_LEN + 1];
    g_autofree char *detail = NULL;
    GError *cause = NULL;
    char *token = NULL;

    if (!cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error))
        return NULL;
    if (lifetime == 0)
        lifetime = CM_SITE_CMG_BULK_LIFETIME_DEFAULT;
    token = cm_cmg_bulk_token_issue(site->signing_key, site->code, lifetime, now, rng, jti, &cause);
    if (token == NULL) {
        g_set_error(error, CM_SITE_ERROR,
                    g_error_matches(cause, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED)
                        ? CM_SITE_ERROR_REFUSED
                        : CM_SITE_ERROR_INVALID,
                    "%s", cause->message);
        g_error_free(cause);
        return NULL;
    }
    detail = g_strdup_printf("lifetime %" G_GINT64_FORMAT " s", lifetime / CM_USEC_PER_SEC);
    /* Audited before it is handed out: a token nobody can account for
     * must not exist. */
    if (!cm_site_audit(site, admin, "cmg-bulk-token", jti, detail, now, error)) {
        g_free(token);
        return NULL;
    }
    if (jti_out != NULL)
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
