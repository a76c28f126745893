/* tokens.c - bulk registration tokens and client token renewal
 * (REQ CMG-12).
 *
 * Both kinds are JWTs the site signs with its site server signing key, kid
 * and iss the site code, aud "cmg": the gateway finds the site by the kid
 * and verifies with that site's signing certificate.  A client token
 * (site/register.c issues it at registration) names its device in "sub" and
 * carries kind "client"; a bulk registration token carries kind "bulk" and
 * a random jti an administrator can block. */
#include "internal.h"

#include <string.h>

char *
cm_cmg_bulk_token_issue(const CmKey *site_signing_key, const char *site_code, CmTime lifetime,
                        CmTime now, CmRng *rng, char jti_out[CM_CMG_TOKEN_ID_LEN + 1],
                        GError **error)
{
    char code[4];
    guint8 raw[CM_CMG_TOKEN_ID_LEN / 2];
    g_autofree char *hex = NULL, *jti = NULL;
    g_autoptr(json_t) claims = NULL;
    char *token;

    if (site_signing_key == NULL || !cm_key_has_private(site_signing_key)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a bulk registration token is signed with the site server signing key");
        return NULL;
    }
    if (!cmg_site_code(site_code, code, "bulk registration token", error))
        return NULL;
    if (lifetime == 0)
        lifetime = CM_CMG_BULK_LIFETIME_DEFAULT;
    if (lifetime < 0 || lifetime > CM_CMG_BULK_LIFETIME_MAX) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED,
                    "a bulk registration token lives at most 7 days (3 by default); asked for "
                    "%" G_GINT64_FORMAT " s",
                    lifetime / CM_USEC_PER_SEC);
        return NULL;
    }
    cm_rng_bytes(rng, raw, sizeof raw);
    hex = cm_enc_hex(raw, sizeof raw);
    jti = g_ascii_strdown(hex, -1);
    claims = cm_jwt_claims_new(code, CMG_TOKEN_AUDIENCE, "bulk-registration", now, lifetime, jti);
    if (claims == NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "cannot make token claims at this time");
        return NULL;
    }
    json_object_set_new(claims, "kind", json_string("bulk"));
    token = cm_jwt_sign(site_signing_key, code, claims, error);
    if (token != NULL && jti_out != NULL)
        g_strlcpy(jti_out, jti, CM_CMG_TOKEN_ID_LEN + 1);
    return token;
}

gboolean
cm_cmg_token_renew_at(const char *token, const CmKey *site_signing_key, const char *site_code,
                      CmTime now, CmTime *renew_at, GError **error)
{
    CmJwtCheck check = {.issuer = site_code, .audience = CMG_TOKEN_AUDIENCE, .now = now};
    g_autoptr(json_t) claims = NULL;
    gint64 iat, exp;

    claims = cm_jwt_verify(token, site_signing_key, &check, error);
    if (claims == NULL)
        return FALSE;
    if (!cm_json_int(claims, "iat", 0, G_MAXINT64 / CM_USEC_PER_SEC, &iat, error) ||
        !cm_json_int(claims, "exp", 0, G_MAXINT64 / CM_USEC_PER_SEC, &exp, error))
        return FALSE;
    if (exp < iat) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "token expires before it was issued");
        return FALSE;
    }
    *renew_at = iat * CM_USEC_PER_SEC + (exp - iat) * CM_USEC_PER_SEC / 2;
    return TRUE;
}
