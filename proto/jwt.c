/* jwt.c - compact JWS tokens (RFC 7515, RFC 7519): ES256 and RS256.
 *
 * These are the modelled Entra ID tokens, the CMG client tokens, the bulk
 * registration tokens (REQ CMG-12) and the DP content access tokens.
 *
 * Verification trusts nothing in the token before its signature holds,
 * except the header, which it needs to find the signature's form: the
 * algorithm comes from the key, and a header naming another one ("none",
 * or RS256 presented to an EC key, the classic algorithm confusion) is
 * refused rather than followed.  ES256 signatures travel as r||s (64 bytes)
 * as RFC 7518 says, and are converted to and from the DER form that
 * cm_sig_sign and cm_sig_verify (and `openssl dgst`) use. */
#include "internal.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>

/* Half of an ES256 signature: one P-256 scalar. */
#define ES256_HALF 32
#define JWT_KID_MAX 256
/* NumericDate bound, 9999-12-31T23:59:59Z: keeps seconds * 10^6 in 64 bits. */
#define JWT_TIME_MAX G_GINT64_CONSTANT(253402300799)
/* Longest untrusted text quoted back in an error message. */
#define JWT_QUOTE_MAX 64

typedef struct {
    const char *header;
    size_t header_len;
    const char *payload;
    size_t payload_len;
    const char *sig;
    size_t sig_len;
} JwtParts;

static const char *
jwt_alg_for_key(const CmKey *key)
{
    return cm_key_alg(key) == CM_KEY_RSA_2048 ? "RS256" : "ES256";
}

/* Untrusted text for an error message: escaped, cut, quoted (new string). */
static char *
jwt_quote(const char *s)
{
    size_t len = strnlen(s, JWT_QUOTE_MAX + 1);
    gboolean cut = len > JWT_QUOTE_MAX;
    g_autofree char *head = g_strndup(s, cut ? JWT_QUOTE_MAX : len);
    g_autofree char *esc = g_strescape(head, NULL);

    return g_strdup_printf("\"%s\"%s", esc, cut ? "..." : "");
}

/* Seconds from microseconds, rounding down. */
static gint64
usec_to_sec(CmTime t)
{
    return t / CM_USEC_PER_SEC - (t % CM_USEC_PER_SEC < 0 ? 1 : 0);
}

/* A time for an error message (new string). */
static char *
jwt_time_str(CmTime t)
{
    gint64 sec = usec_to_sec(t);
    GDateTime *dt = g_date_time_new_from_unix_utc(sec);
    char *s;

    if (dt == NULL)
        return g_strdup_printf("%" G_GINT64_FORMAT " s after the epoch", sec);
    s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
    g_date_time_unref(dt);
    return s;
}

/* Splits a token into its three parts, checking its size. */
static gboolean
jwt_split(const char *token, JwtParts *p, GError **error)
{
    const char *dot1, *dot2;
    size_t len;

    if (token == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "no token given");
        return FALSE;
    }
    len = strnlen(token, CM_JWT_MAX_LEN + 1);
    if (len > CM_JWT_MAX_LEN) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "token is longer than %d bytes", CM_JWT_MAX_LEN);
        return FALSE;
    }
    dot1 = memchr(token, '.', len);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token is not a compact JWS: expected three base64url parts "
                    "(header.payload.signature) separated by '.'");
        return FALSE;
    }
    p->header = token;
    p->header_len = (size_t)(dot1 - token);
    p->payload = dot1 + 1;
    p->payload_len = (size_t)(dot2 - p->payload);
    p->sig = dot2 + 1;
    p->sig_len = len - (size_t)(p->sig - token);
    return TRUE;
}

/* Decodes one base64url part holding a JSON object (what: "header"...). */
static json_t *
jwt_part_json(const char *part, size_t len, const char *what, GError **error)
{
    GBytes *bytes;
    json_t *obj;
    gsize n;
    const void *data;

    bytes = cm_enc_b64url_decode(part, len, CM_JWT_MAX_LEN, error);
    if (bytes == NULL) {
        g_prefix_error(error, "token %s: ", what);
        return NULL;
    }
    data = g_bytes_get_data(bytes, &n);
    obj = cm_json_parse(data, n, CM_JWT_MAX_LEN, error);
    g_bytes_unref(bytes);
    if (obj == NULL)
        g_prefix_error(error, "token %s: ", what);
    return obj;
}

/* DER ECDSA-Sig-Value -> r||s. */
static gboolean
es256_der_to_raw(GBytes *der, guint8 out[2 * ES256_HALF], GError **error)
{
    gsize len;
    const unsigned char *start = g_bytes_get_data(der, &len);
    const unsigned char *p = start;
    ECDSA_SIG *sig = NULL;
    const BIGNUM *r, *s;
    gboolean ok = FALSE;

    sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (sig == NULL || p != start + len) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO,
                             "cannot read the ECDSA signature to put it in the token");
        goto out;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, ES256_HALF) != ES256_HALF ||
        BN_bn2binpad(s, out + ES256_HALF, ES256_HALF) != ES256_HALF) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO,
                             "ECDSA signature does not fit ES256 (is the key P-256?)");
        goto out;
    }
    ok = TRUE;
out:
    ECDSA_SIG_free(sig);
    return ok;
}

/* r||s -> DER ECDSA-Sig-Value. */
static GBytes *
es256_raw_to_der(const guint8 *raw, GError **error)
{
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    GBytes *out = NULL;
    int n;

    sig = ECDSA_SIG_new();
    r = BN_bin2bn(raw, ES256_HALF, NULL);
    s = BN_bin2bn(raw + ES256_HALF, ES256_HALF, NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot read the ES256 signature");
        goto out;
    }
    r = s = NULL; /* sig owns them now */
    n = i2d_ECDSA_SIG(sig, &der);
    if (n <= 0) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot encode the ES256 signature");
        goto out;
    }
    out = g_bytes_new(der, (gsize)n);
out:
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return out;
}

/* Whether v, at nesting level depth, is what cm_json_parse reads back
 * from its dump: no deeper than CM_JSON_MAX_DEPTH, no NUL in a string or a
 * key (jansson writes it as \u0000, which the parser refuses). */
static gboolean
claims_fit(const json_t *v, int depth, GError **error)
{
    if ((json_is_object(v) || json_is_array(v)) && depth > CM_JSON_MAX_DEPTH) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token claims: JSON body nests deeper than %d levels", CM_JSON_MAX_DEPTH);
        return FALSE;
    }
    if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token claims: a string holds a NUL character");
        return FALSE;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!claims_fit(json_array_get(v, i), depth + 1, error))
                return FALSE;
    } else if (json_is_object(v)) {
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if (strlen(json_object_iter_key(it)) != json_object_iter_key_len(it)) {
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "token claims: a key holds a NUL character");
                return FALSE;
            }
            if (!claims_fit(json_object_iter_value(it), depth + 1, error))
                return FALSE;
        }
    }
    return TRUE;
}

char *
cm_jwt_sign(const CmKey *key, const char *kid, json_t *claims, GError **error)
{
    json_t *header = NULL;
    const json_t *exp;
    char *header_json = NULL, *claims_json = NULL;
    char *h64 = NULL, *c64 = NULL, *s64 = NULL, *input = NULL;
    GBytes *sig = NULL;
    guint8 raw[2 * ES256_HALF];
    char *token = NULL;

    if (key == NULL || !json_is_object(claims)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "a token needs a signing key and a JSON object of claims");
        goto out;
    }
    /* cm_jwt_verify requires exp; a token without it could never be used. */
    exp = json_object_get(claims, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) < 0 ||
        json_integer_value(exp) > JWT_TIME_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token claims need \"exp\" in seconds since the epoch, before the year "
                    "10000; build them with cm_jwt_claims_new");
        goto out;
    }
    if (kid != NULL &&
        (strnlen(kid, JWT_KID_MAX + 1) > JWT_KID_MAX || !g_utf8_validate(kid, -1, NULL))) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token key ID must be UTF-8 text of at most %d bytes", JWT_KID_MAX);
        goto out;
    }
    header = json_object();
    json_object_set_new(header, "alg", json_string(jwt_alg_for_key(key)));
    json_object_set_new(header, "typ", json_string("JWT"));
    if (kid != NULL)
        json_object_set_new(header, "kid", json_string(kid));
    header_json = cm_json_dump(header);
    claims_json = cm_json_dump(claims);
    if (header_json == NULL || claims_json == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token claims cannot be written as JSON (a string that is not UTF-8?)");
        goto out;
    }
    /* Refuse now what cm_jwt_verify would refuse later: the size, and in
     * the tree itself (not a parse of its dump, which cost more than the
     * rest of the signing in the simulator) nesting and NUL characters. */
    if (strlen(claims_json) > CM_JWT_MAX_LEN) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "token claims: JSON body is %zu bytes, over the limit of %d bytes",
                    strlen(claims_json), CM_JWT_MAX_LEN);
        goto out;
    }
    if (!claims_fit(claims, 1, error))
        goto out;
    h64 = cm_enc_b64url((const guint8 *)header_json, strlen(header_json));
    c64 = cm_enc_b64url((const guint8 *)claims_json, strlen(claims_json));
    input = g_strconcat(h64, ".", c64, NULL);
    sig = cm_sig_sign(key, CM_HASH_SHA256, input, strlen(input), error);
    if (sig == NULL) {
        g_prefix_error(error, "cannot sign the token: ");
        goto out;
    }
    if (cm_key_is_model(key)) {
        /* cost-model signatures travel as they are */
        gsize n;
        const guint8 *d = g_bytes_get_data(sig, &n);
        s64 = cm_enc_b64url(d, n);
    } else if (cm_key_alg(key) == CM_KEY_EC_P256) {
        if (!es256_der_to_raw(sig, raw, error))
            goto out;
        s64 = cm_enc_b64url(raw, sizeof raw);
    } else {
        gsize n;
        const guint8 *d = g_bytes_get_data(sig, &n);
        s64 = cm_enc_b64url(d, n);
    }
    token = g_strconcat(input, ".", s64, NULL);
    if (strlen(token) > CM_JWT_MAX_LEN) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "token would be %zu bytes, over the limit of %d; carry fewer claims",
                    strlen(token), CM_JWT_MAX_LEN);
        g_clear_pointer(&token, g_free);
        goto out;
    }
out:
    json_decref(header);
    g_free(header_json);
    g_free(claims_json);
    g_free(h64);
    g_free(c64);
    g_free(s64);
    g_free(input);
    if (sig != NULL)
        g_bytes_unref(sig);
    return token;
}

/* Checks the header against the key: alg, typ, crit. */
static gboolean
jwt_check_header(const json_t *header, const CmKey *key, GError **error)
{
    const char *want = jwt_alg_for_key(key);
    const json_t *alg = json_object_get(header, "alg");
    const json_t *typ = json_object_get(header, "typ");

    if (!json_is_string(alg)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token header has no \"alg\" string");
        return FALSE;
    }
    if (strcmp(json_string_value(alg), want) != 0) {
        g_autofree char *q = jwt_quote(json_string_value(alg));
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "token algorithm %s refused: the verifying key (%s) accepts %s only", q,
                    cm_key_alg_name(cm_key_alg(key)), want);
        return FALSE;
    }
    if (typ != NULL &&
        (!json_is_string(typ) || g_ascii_strcasecmp(json_string_value(typ), "JWT") != 0)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token header \"typ\" must be \"JWT\" when present");
        return FALSE;
    }
    /* RFC 7515 4.1.11: extensions marked critical must be understood, and
     * this verifier understands none. */
    if (json_object_get(header, "crit") != NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "token header lists critical extensions (\"crit\"), which are not "
                    "supported");
        return FALSE;
    }
    return TRUE;
}

/* Checks the signature part over header.payload. */
static gboolean
jwt_check_signature(const char *token, const JwtParts *p, const CmKey *key, GError **error)
{
    GBytes *sig = NULL, *der = NULL;
    GError *local = NULL;
    const guint8 *data;
    gsize n;
    gboolean ok = FALSE;

    sig = cm_enc_b64url_decode(p->sig, p->sig_len, CM_SIG_MAX, &local);
    if (sig == NULL) {
        /* An oversized signature part is as malformed as a bad character. */
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "token signature: %s",
                    local->message);
        g_error_free(local);
        goto out;
    }
    data = g_bytes_get_data(sig, &n);
    if (cm_key_is_model(key)) {
        /* cm_sig_verify checks a cost-model signature's form */
    } else if (cm_key_alg(key) == CM_KEY_EC_P256) {
        if (n != 2 * ES256_HALF) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                        "token ES256 signature is %zu bytes; it must be %d (r||s)", (size_t)n,
                        2 * ES256_HALF);
            goto out;
        }
        der = es256_raw_to_der(data, error);
        if (der == NULL)
            goto out;
        data = g_bytes_get_data(der, &n);
    } else if (n != (gsize)EVP_PKEY_get_size(cm_key_evp(key))) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                    "token RS256 signature is %zu bytes; the key's signatures are %d", (size_t)n,
                    EVP_PKEY_get_size(cm_key_evp(key)));
        goto out;
    }
    if (!cm_sig_verify(key, CM_HASH_SHA256, token, p->header_len + 1 + p->payload_len, data, n,
                       error)) {
        g_prefix_error(error, "token: ");
        goto out;
    }
    ok = TRUE;
out:
    if (sig != NULL)
        g_bytes_unref(sig);
    if (der != NULL)
        g_bytes_unref(der);
    return ok;
}

/* Does aud (a string or an array of strings) name audience? */
static gboolean
jwt_check_audience(const json_t *claims, const char *audience, GError **error)
{
    const json_t *aud = json_object_get(claims, "aud");
    size_t i;
    const json_t *v;

    if (json_is_string(aud)) {
        if (strcmp(json_string_value(aud), audience) == 0)
            return TRUE;
        g_autofree char *q = jwt_quote(json_string_value(aud));
        g_autofree char *w = jwt_quote(audience);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "token is meant for audience %s, not for %s", q, w);
        return FALSE;
    }
    if (!json_is_array(aud)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token claim \"aud\" is %s; expected a string or an array of strings",
                    aud == NULL ? "missing" : "of the wrong type");
        return FALSE;
    }
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "token claim \"aud\" has an item that is not a string");
            return FALSE;
        }
    }
    json_array_foreach(aud, i, v)
    {
        if (strcmp(json_string_value(v), audience) == 0)
            return TRUE;
    }
    g_autofree char *w = jwt_quote(audience);
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                "token audiences (%zu) do not include %s", json_array_size(aud), w);
    return FALSE;
}

/* iss, aud, exp, nbf and iat. */
static gboolean
jwt_check_claims(const json_t *claims, const CmJwtCheck *check, GError **error)
{
    const char *iss;
    gint64 exp, nbf, iat;
    CmTime exp_us, nbf_us;

    iss = cm_json_str(claims, "iss", CM_JWT_MAX_LEN, error);
    if (iss == NULL) {
        g_prefix_error(error, "token claims: ");
        return FALSE;
    }
    if (strcmp(iss, check->issuer) != 0) {
        g_autofree char *q = jwt_quote(iss);
        g_autofree char *w = jwt_quote(check->issuer);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "token was issued by %s, not by the expected issuer %s", q, w);
        return FALSE;
    }
    if (!jwt_check_audience(claims, check->audience, error))
        return FALSE;
    if (!cm_json_int(claims, "exp", 0, JWT_TIME_MAX, &exp, error)) {
        g_prefix_error(error, "token claims: ");
        return FALSE;
    }
    nbf = 0;
    if (json_object_get(claims, "nbf") != NULL &&
        !cm_json_int(claims, "nbf", 0, JWT_TIME_MAX, &nbf, error)) {
        g_prefix_error(error, "token claims: ");
        return FALSE;
    }
    if (json_object_get(claims, "iat") != NULL &&
        !cm_json_int(claims, "iat", 0, JWT_TIME_MAX, &iat, error)) {
        g_prefix_error(error, "token claims: ");
        return FALSE;
    }
    /* RFC 7519: valid while now < exp and from nbf on; the leeway absorbs
     * clock skew between issuer and verifier.  No overflow: both times are
     * at most JWT_TIME_MAX seconds. */
    exp_us = exp * CM_USEC_PER_SEC;
    nbf_us = nbf * CM_USEC_PER_SEC;
    if (check->now >= exp_us + CM_JWT_LEEWAY) {
        g_autofree char *t = jwt_time_str(exp_us);
        g_autofree char *n = jwt_time_str(check->now);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED,
                    "token expired at %s (now %s); get a new token", t, n);
        return FALSE;
    }
    if (check->now < nbf_us - CM_JWT_LEEWAY) {
        g_autofree char *t = jwt_time_str(nbf_us);
        g_autofree char *n = jwt_time_str(check->now);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED,
                    "token is not valid before %s (now %s); check the clocks of issuer and "
                    "verifier",
                    t, n);
        return FALSE;
    }
    return TRUE;
}

json_t *
cm_jwt_verify(const char *token, const CmKey *key, const CmJwtCheck *check, GError **error)
{
    JwtParts parts;
    json_t *header = NULL, *claims = NULL, *result = NULL;

    if (key == NULL || check == NULL || check->issuer == NULL || check->audience == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "a token is verified with a key, an expected issuer and an expected "
                    "audience");
        goto out;
    }
    if (!jwt_split(token, &parts, error))
        goto out;
    header = jwt_part_json(parts.header, parts.header_len, "header", error);
    if (header == NULL || !jwt_check_header(header, key, error))
        goto out;
    if (!jwt_check_signature(token, &parts, key, error))
        goto out;
    claims = jwt_part_json(parts.payload, parts.payload_len, "claims", error);
    if (claims == NULL || !jwt_check_claims(claims, check, error))
        goto out;
    result = g_steal_pointer(&claims);
out:
    json_decref(header);
    json_decref(claims);
    return result;
}

char *
cm_jwt_peek_kid(const char *token, GError **error)
{
    JwtParts parts;
    json_t *header = NULL;
    const json_t *kid;
    char *out = NULL;

    if (!jwt_split(token, &parts, error))
        goto out;
    header = jwt_part_json(parts.header, parts.header_len, "header", error);
    if (header == NULL)
        goto out;
    kid = json_object_get(header, "kid");
    if (kid == NULL)
        goto out;
    if (!json_is_string(kid) || json_string_length(kid) > JWT_KID_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "token header \"kid\" must be a string of at most %d bytes", JWT_KID_MAX);
        goto out;
    }
    out = g_strdup(json_string_value(kid));
out:
    json_decref(header);
    return out;
}

/* Sets key to the string s unless s is NULL; FALSE when s is not UTF-8. */
static gboolean
claims_set_str(json_t *claims, const char *key, const char *s)
{
    return s == NULL || json_object_set_new(claims, key, json_string(s)) == 0;
}

/* NULL strings are left out.  Returns NULL (no claims) when a string is not
 * UTF-8 or lifetime is negative or runs past the year 9999. */
json_t *
cm_jwt_claims_new(const char *iss, const char *aud, const char *sub, CmTime iat, CmTime lifetime,
                  const char *jti)
{
    json_t *claims;
    gint64 iat_s, exp_s;

    if (iat < 0 || lifetime < 0 || iat > JWT_TIME_MAX * CM_USEC_PER_SEC ||
        lifetime > JWT_TIME_MAX * CM_USEC_PER_SEC - iat)
        return NULL;
    iat_s = usec_to_sec(iat);
    exp_s = usec_to_sec(iat + lifetime);
    claims = json_object();
    if (!claims_set_str(claims, "iss", iss) || !claims_set_str(claims, "aud", aud) ||
        !claims_set_str(claims, "sub", sub) || !claims_set_str(claims, "jti", jti)) {
        json_decref(claims);
        return NULL;
    }
    json_object_set_new(claims, "iat", json_integer(iat_s));
    json_object_set_new(claims, "nbf", json_integer(iat_s));
    json_object_set_new(claims, "exp", json_integer(exp_s));
    return claims;
}
