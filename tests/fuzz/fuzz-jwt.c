/* fuzz-jwt.c - token verification and signing over one input.
 *
 * The input is tried as a token against a P-256 and an RSA key generated
 * once (no input can carry a valid signature by them, so verification must
 * refuse, cleanly), as "<header JSON>\n<claims JSON>" made into a token, and
 * as a JSON claims set that is signed and verified back, with the
 * properties the token users rely on:
 *  - a refusal carries one of the documented codes and a short, valid
 *    UTF-8 message;
 *  - a token cm_jwt_sign made is at most CM_JWT_MAX_LEN bytes, carries the
 *    kid it was given, and never fails verification on its form or its
 *    signature: only on its claims (REFUSED, EXPIRED, INVALID for a claim). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

#define MESSAGE_MAX 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static CmKey *ec_key;
static CmKey *rsa_key;

static void
keys_init(void)
{
    if (ec_key != NULL)
        return;
    ec_key = cm_key_generate(CM_KEY_EC_P256, NULL);
    rsa_key = cm_key_generate(CM_KEY_RSA_2048, NULL);
    if (ec_key == NULL || rsa_key == NULL)
        abort();
}

static void
check_refusal(GError *error)
{
    if (error == NULL || error->domain != CM_PROTO_ERROR)
        abort();
    switch (error->code) {
    case CM_PROTO_ERROR_INVALID:
    case CM_PROTO_ERROR_TOO_LARGE:
    case CM_PROTO_ERROR_SIGNATURE:
    case CM_PROTO_ERROR_EXPIRED:
    case CM_PROTO_ERROR_REFUSED:
        break;
    default:
        abort();
    }
    if (strlen(error->message) > MESSAGE_MAX || !g_utf8_validate(error->message, -1, NULL))
        abort();
    g_error_free(error);
}

static void
fuzz_verify(const char *token, const CmKey *key)
{
    GError *error = NULL;
    CmJwtCheck check = {.issuer = "https://site.contoso.com/PS1",
                        .audience = "https://cmg.contoso.com",
                        .now = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC};
    json_t *claims = cm_jwt_verify(token, key, &check, &error);

    if (claims != NULL) {
        /* Only a forged signature gets here. */
        abort();
    }
    check_refusal(error);
}

static void
fuzz_peek(const char *token)
{
    GError *error = NULL;
    char *kid = cm_jwt_peek_kid(token, &error);

    if (kid != NULL && error != NULL)
        abort();
    if (error != NULL)
        check_refusal(error);
    g_free(kid);
}

/* Signs the input as claims and verifies the token against its own iss,
 * aud and exp. */
static void
fuzz_sign(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    json_t *claims = cm_json_parse(data, size, CM_JWT_MAX_LEN, NULL);
    json_t *back = NULL;
    const json_t *iss, *aud, *exp;
    char *token = NULL, *kid = NULL;
    CmJwtCheck check;

    if (claims == NULL)
        return;
    token = cm_jwt_sign(ec_key, "fuzz-kid", claims, &error);
    if (token == NULL) {
        check_refusal(error);
        goto out;
    }
    if (strlen(token) > CM_JWT_MAX_LEN)
        abort();
    kid = cm_jwt_peek_kid(token, NULL);
    if (kid == NULL || strcmp(kid, "fuzz-kid") != 0)
        abort();
    iss = json_object_get(claims, "iss");
    aud = json_object_get(claims, "aud");
    exp = json_object_get(claims, "exp");
    check.issuer = json_is_string(iss) ? json_string_value(iss) : "";
    check.audience = json_is_string(aud) ? json_string_value(aud) : "";
    /* A second before exp, when that is a time at all. */
    check.now = 0;
    if (json_integer_value(exp) > 0 && json_integer_value(exp) < G_GINT64_CONSTANT(1) << 40)
        check.now = (json_integer_value(exp) - 1) * CM_USEC_PER_SEC;
    back = cm_jwt_verify(token, ec_key, &check, &error);
    if (back != NULL) {
        if (!json_equal(back, claims))
            abort();
    } else {
        /* Form and signature hold: only a claim may be refused. */
        gboolean about_claims =
            error->code == CM_PROTO_ERROR_REFUSED || error->code == CM_PROTO_ERROR_EXPIRED ||
            (error->code == CM_PROTO_ERROR_INVALID && strstr(error->message, "claim") != NULL);
        if (!about_claims)
            abort();
        check_refusal(error);
    }
out:
    json_decref(back);
    json_decref(claims);
    g_free(kid);
    g_free(token);
}

/* The input as "<header JSON>\n<claims JSON>", encoded into a token with a
 * signature of the right size: reaches the header and signature checks
 * that random bytes seldom get past base64url to. */
static void
fuzz_structured(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    guint8 sig[64];
    char *h64, *p64, *s64, *token;

    if (nl == NULL)
        return;
    memset(sig, 0x5a, sizeof sig);
    h64 = cm_enc_b64url(data, (size_t)(nl - data));
    p64 = cm_enc_b64url(nl + 1, size - (size_t)(nl - data) - 1);
    s64 = cm_enc_b64url(sig, sizeof sig);
    token = g_strjoin(".", h64, p64, s64, NULL);
    if (strlen(token) <= CM_JWT_MAX_LEN) {
        fuzz_verify(token, ec_key);
        fuzz_peek(token);
    }
    g_free(token);
    g_free(h64);
    g_free(p64);
    g_free(s64);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = g_strndup((const char *)data, size);

    keys_init();
    fuzz_verify(token, ec_key);
    fuzz_verify(token, rsa_key);
    fuzz_peek(token);
    fuzz_sign(data, size);
    fuzz_structured(data, size);
    g_free(token);
    return 0;
}
