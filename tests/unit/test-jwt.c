/* test-jwt.c - compact JWS tokens: signing, verification and every way a
 * token is refused. */
#include "testutil.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>

#define ISS "https://site.contoso.com/PS1"
#define AUD "https://cmg.contoso.com"
#define NOW_S (CM_TEST_NOW / CM_USEC_PER_SEC)

/* Generated once per test case in the parent, before Check forks. */
static CmKey *ec_key;
static CmKey *ec_key2;
static CmKey *rsa_key;

static void
keys_setup(void)
{
    GError *error = NULL;

    ec_key = cm_key_generate(CM_KEY_EC_P256, &error);
    ec_key2 = cm_key_generate(CM_KEY_EC_P256, &error);
    rsa_key = cm_key_generate(CM_KEY_RSA_2048, &error);
    ck_assert_msg(error == NULL, "key generation: %s", error ? error->message : "");
}

static void
keys_teardown(void)
{
    g_clear_pointer(&ec_key, cm_key_unref);
    g_clear_pointer(&ec_key2, cm_key_unref);
    g_clear_pointer(&rsa_key, cm_key_unref);
}

static CmJwtCheck
check_at(CmTime now)
{
    CmJwtCheck c = {.issuer = ISS, .audience = AUD, .now = now};
    return c;
}

static json_t *
std_claims(void)
{
    return cm_jwt_claims_new(ISS, AUD, "GUID:5A1C2D3E-0000-4000-8000-000000000001", CM_TEST_NOW,
                             CM_USEC_PER_HOUR, "jti-1");
}

static char *
b64url_str(const char *s)
{
    return cm_enc_b64url((const guint8 *)s, strlen(s));
}

/* A token over any header and payload text, signed by key the way a
 * correct issuer would: independent of cm_jwt_sign, so that tests can
 * build tokens it refuses to make. */
static char *
make_token(const CmKey *key, const char *header, const char *payload)
{
    GError *error = NULL;
    g_autofree char *h = b64url_str(header);
    g_autofree char *p = b64url_str(payload);
    g_autofree char *input = g_strconcat(h, ".", p, NULL);
    g_autofree char *s64 = NULL;
    GBytes *sig = cm_sig_sign(key, CM_HASH_SHA256, input, strlen(input), &error);
    gsize n;
    const guint8 *d;

    cm_assert_no_error(error);
    d = g_bytes_get_data(sig, &n);
    if (cm_key_alg(key) == CM_KEY_EC_P256) {
        guint8 raw[64];
        const unsigned char *q = d;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)n);
        const BIGNUM *r, *s;

        ck_assert_ptr_nonnull(es);
        ECDSA_SIG_get0(es, &r, &s);
        ck_assert_int_eq(BN_bn2binpad(r, raw, 32), 32);
        ck_assert_int_eq(BN_bn2binpad(s, raw + 32, 32), 32);
        ECDSA_SIG_free(es);
        s64 = cm_enc_b64url(raw, sizeof raw);
    } else {
        s64 = cm_enc_b64url(d, n);
    }
    g_bytes_unref(sig);
    return g_strconcat(input, ".", s64, NULL);
}

/* The claims text of std_claims() with changes, for make_token. */
static char *
claims_text(const char *extra_key, json_t *extra_value, const char *drop_key)
{
    json_t *c = std_claims();
    char *s;

    if (drop_key != NULL)
        json_object_del(c, drop_key);
    if (extra_key != NULL)
        json_object_set_new(c, extra_key, extra_value);
    s = cm_json_dump(c);
    json_decref(c);
    return s;
}

/* Verifies token with key at CM_TEST_NOW; expects refusal with code. */
static void
expect_refused(const char *token, const CmKey *key, int code)
{
    GError *error = NULL;
    CmJwtCheck c = check_at(CM_TEST_NOW);
    json_t *claims = cm_jwt_verify(token, key, &c, &error);

    ck_assert_msg(claims == NULL, "token accepted: %.200s", token);
    ck_assert_msg(error != NULL && g_error_matches(error, CM_PROTO_ERROR, code),
                  "expected code %d, got %s", code, error ? error->message : "no error");
    ck_assert(g_utf8_validate(error->message, -1, NULL));
    g_clear_error(&error);
}

static json_t *
expect_valid(const char *token, const CmKey *key, CmTime now)
{
    GError *error = NULL;
    CmJwtCheck c = check_at(now);
    json_t *claims = cm_jwt_verify(token, key, &c, &error);

    cm_assert_no_error(error);
    ck_assert_ptr_nonnull(claims);
    return claims;
}

/* Token with one of its three parts replaced. */
static char *
replace_part(const char *token, int part, const char *text)
{
    char **parts = g_strsplit(token, ".", -1);
    char *out;

    ck_assert_uint_eq(g_strv_length(parts), 3);
    g_free(parts[part]);
    parts[part] = g_strdup(text);
    out = g_strjoinv(".", parts);
    g_strfreev(parts);
    return out;
}

static GBytes *
decode_part(const char *token, int part)
{
    GError *error = NULL;
    char **parts = g_strsplit(token, ".", -1);
    GBytes *b = cm_enc_b64url_decode(parts[part], strlen(parts[part]), CM_JWT_MAX_LEN, &error);

    cm_assert_no_error(error);
    g_strfreev(parts);
    return b;
}

/* ------------------------------------------------------- good tokens */

START_TEST(test_claims_new)
{
    json_t *c =
        cm_jwt_claims_new(ISS, AUD, "sub-1", CM_TEST_NOW + 999999, 90 * CM_USEC_PER_SEC, "jti-1");
    char *s;

    ck_assert_ptr_nonnull(c);
    s = cm_json_dump(c);
    /* Seconds, rounded down; nbf is the issue time. */
    ck_assert_str_eq(s, "{\"aud\":\"https://cmg.contoso.com\",\"exp\":1767225690,"
                        "\"iat\":1767225600,\"iss\":\"https://site.contoso.com/PS1\","
                        "\"jti\":\"jti-1\",\"nbf\":1767225600,\"sub\":\"sub-1\"}");
    g_free(s);
    json_decref(c);

    /* NULL strings are left out. */
    c = cm_jwt_claims_new(ISS, AUD, NULL, CM_TEST_NOW, CM_USEC_PER_SEC, NULL);
    ck_assert_ptr_null(json_object_get(c, "sub"));
    ck_assert_ptr_null(json_object_get(c, "jti"));
    json_decref(c);

    ck_assert_ptr_null(cm_jwt_claims_new(ISS, AUD, NULL, CM_TEST_NOW, -1, NULL));
    ck_assert_ptr_null(cm_jwt_claims_new(ISS, AUD, NULL, -1, CM_USEC_PER_SEC, NULL));
    ck_assert_ptr_null(cm_jwt_claims_new(ISS, AUD, NULL, CM_TEST_NOW, G_MAXINT64, NULL));
    ck_assert_ptr_null(cm_jwt_claims_new("\xff", AUD, NULL, CM_TEST_NOW, 1, NULL));
}
END_TEST

START_TEST(test_es256_roundtrip)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, "site-key-1", claims, &error);
    json_t *got;
    GBytes *header, *sig;
    char *kid;

    cm_assert_no_error(error);
    ck_assert_ptr_nonnull(token);
    ck_assert_uint_le(strlen(token), CM_JWT_MAX_LEN);

    header = decode_part(token, 0);
    ck_assert_uint_eq(g_bytes_get_size(header), strlen("{\"alg\":\"ES256\",\"kid\":\"site-key-1\","
                                                       "\"typ\":\"JWT\"}"));
    ck_assert_mem_eq(g_bytes_get_data(header, NULL),
                     "{\"alg\":\"ES256\",\"kid\":\"site-key-1\",\"typ\":\"JWT\"}",
                     g_bytes_get_size(header));
    /* r||s, not DER. */
    sig = decode_part(token, 2);
    ck_assert_uint_eq(g_bytes_get_size(sig), 64);

    got = expect_valid(token, ec_key, CM_TEST_NOW);
    ck_assert(json_equal(got, claims));
    json_decref(got);

    kid = cm_jwt_peek_kid(token, &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(kid, "site-key-1");
    g_free(kid);

    g_bytes_unref(header);
    g_bytes_unref(sig);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_rs256_roundtrip)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(rsa_key, NULL, claims, &error);
    json_t *got;
    GBytes *header, *sig;
    char *kid;

    cm_assert_no_error(error);
    header = decode_part(token, 0);
    ck_assert_mem_eq(g_bytes_get_data(header, NULL), "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                     g_bytes_get_size(header));
    sig = decode_part(token, 2);
    ck_assert_uint_eq(g_bytes_get_size(sig), 256);

    got = expect_valid(token, rsa_key, CM_TEST_NOW);
    ck_assert(json_equal(got, claims));
    json_decref(got);

    /* No kid: NULL without an error. */
    kid = cm_jwt_peek_kid(token, &error);
    cm_assert_no_error(error);
    ck_assert_ptr_null(kid);

    g_bytes_unref(header);
    g_bytes_unref(sig);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_public_key_verifies)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);
    GBytes *der = cm_key_public_der(ec_key);
    CmKey *pub = cm_key_public_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &error);
    json_t *got;

    cm_assert_no_error(error);
    got = expect_valid(token, pub, CM_TEST_NOW);
    json_decref(got);
    /* And a public key cannot sign. */
    ck_assert_ptr_null(cm_jwt_sign(pub, NULL, claims, &error));
    ck_assert_ptr_nonnull(error);
    g_clear_error(&error);

    cm_key_unref(pub);
    g_bytes_unref(der);
    g_free(token);
    json_decref(claims);
}
END_TEST

/* `openssl dgst` checks the signature of a token cm_jwt_sign made: the
 * JWS signing input, and for ES256 the r||s turned back into DER. */
static void
openssl_check(const CmKey *key)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(key, NULL, claims, &error);
    char *dir = cm_test_tmpdir();
    char *pem = cm_key_public_pem(key);
    GBytes *sig;
    const char *input_end;
    char *pem_path, *input_path, *sig_path, *out = NULL;
    guint8 *der = NULL;
    int der_len;

    cm_assert_no_error(error);
    sig = decode_part(token, 2);
    input_end = strrchr(token, '.');
    if (cm_key_alg(key) == CM_KEY_EC_P256) {
        const guint8 *raw = g_bytes_get_data(sig, NULL);
        ECDSA_SIG *es = ECDSA_SIG_new();
        ck_assert_int_eq(
            ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)), 1);
        der_len = i2d_ECDSA_SIG(es, &der);
        ck_assert_int_gt(der_len, 0);
        ECDSA_SIG_free(es);
    } else {
        der_len = (int)g_bytes_get_size(sig);
        der = OPENSSL_memdup(g_bytes_get_data(sig, NULL), (size_t)der_len);
    }
    pem_path = cm_test_write(dir, "pub.pem", pem, strlen(pem));
    input_path = cm_test_write(dir, "input", token, (size_t)(input_end - token));
    sig_path = cm_test_write(dir, "sig", der, (size_t)der_len);
    {
        const char *argv[] = {cm_test_openssl(), "dgst",   "-sha256",  "-verify", pem_path,
                              "-signature",      sig_path, input_path, NULL};
        ck_assert_int_eq(cm_test_run(argv, &out, NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "Verified OK"));
    }
    g_free(out);
    g_free(pem_path);
    g_free(input_path);
    g_free(sig_path);
    OPENSSL_free(der);
    g_bytes_unref(sig);
    g_free(pem);
    cm_test_rmdir(dir);
    g_free(dir);
    g_free(token);
    json_decref(claims);
}

START_TEST(test_openssl_verifies)
{
    openssl_check(ec_key);
    openssl_check(rsa_key);
}
END_TEST

/* RFC 7515 appendix A.3: an ES256 token from another implementation. */
START_TEST(test_rfc7515_es256)
{
    static const char token[] =
        "eyJhbGciOiJFUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ"
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    static const char x64[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    static const char y64[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    /* SubjectPublicKeyInfo of a P-256 key, up to the uncompressed point. */
    static const guint8 spki_prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
    GError *error = NULL;
    GBytes *x = cm_enc_b64url_decode(x64, strlen(x64), 32, &error);
    GBytes *y = cm_enc_b64url_decode(y64, strlen(y64), 32, &error);
    guint8 der[sizeof spki_prefix + 64];
    CmKey *pub;
    json_t *claims;
    CmJwtCheck c = {.issuer = "joe",
                    .audience = "anyone",
                    .now = G_GINT64_CONSTANT(1300819000) * CM_USEC_PER_SEC};

    cm_assert_no_error(error);
    memcpy(der, spki_prefix, sizeof spki_prefix);
    memcpy(der + sizeof spki_prefix, g_bytes_get_data(x, NULL), 32);
    memcpy(der + sizeof spki_prefix + 32, g_bytes_get_data(y, NULL), 32);
    pub = cm_key_public_from_der(der, sizeof der, &error);
    cm_assert_no_error(error);

    /* The signature verifies; the token then fails only for its missing
     * audience, which cmlab requires. */
    claims = cm_jwt_verify(token, pub, &c, &error);
    ck_assert_ptr_null(claims);
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "aud") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);

    /* One bit off in the signature, and it does not. */
    {
        char *bad = g_strdup(token);
        bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
        ck_assert_ptr_null(cm_jwt_verify(bad, pub, &c, &error));
        cm_assert_error(&error, CM_PROTO_ERROR_SIGNATURE);
        g_free(bad);
    }
    cm_key_unref(pub);
    g_bytes_unref(x);
    g_bytes_unref(y);
}
END_TEST

START_TEST(test_header_options)
{
    g_autofree char *payload = claims_text(NULL, NULL, NULL);
    json_t *got;

    /* typ is optional and case-insensitive; unknown header fields pass. */
    {
        g_autofree char *t = make_token(ec_key, "{\"alg\":\"ES256\"}", payload);
        got = expect_valid(t, ec_key, CM_TEST_NOW);
        json_decref(got);
    }
    {
        g_autofree char *t = make_token(ec_key, "{\"alg\":\"ES256\",\"typ\":\"jwt\"}", payload);
        got = expect_valid(t, ec_key, CM_TEST_NOW);
        json_decref(got);
    }
    {
        g_autofree char *t =
            make_token(ec_key, "{\"alg\":\"ES256\",\"x5t\":\"abc\",\"kid\":\"k\"}", payload);
        got = expect_valid(t, ec_key, CM_TEST_NOW);
        json_decref(got);
    }
}
END_TEST

START_TEST(test_audience_array)
{
    json_t *got;
    g_autofree char *in =
        claims_text("aud", json_pack("[s,s]", "https://other.example", AUD), NULL);
    g_autofree char *t = make_token(ec_key, "{\"alg\":\"ES256\",\"typ\":\"JWT\"}", in);

    got = expect_valid(t, ec_key, CM_TEST_NOW);
    json_decref(got);
}
END_TEST

START_TEST(test_leeway)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);
    CmTime exp = CM_TEST_NOW + CM_USEC_PER_HOUR;
    json_t *got;

    cm_assert_no_error(error);
    /* Within CM_JWT_LEEWAY of either end is still valid. */
    got = expect_valid(token, ec_key, exp + CM_JWT_LEEWAY - 1);
    json_decref(got);
    got = expect_valid(token, ec_key, CM_TEST_NOW - CM_JWT_LEEWAY);
    json_decref(got);
    g_free(token);
    json_decref(claims);
}
END_TEST

/* ----------------------------------------------- tokens for CMG-12 */

START_TEST(test_bulk_registration_token)
{
    /* REQ: CMG-12 */
    /* A bulk registration token the administrator creates for internet
     * devices: signed by the site, good for many devices until it expires. */
    GError *error = NULL;
    json_t *claims = cm_jwt_claims_new(ISS, AUD, "bulk-registration", CM_TEST_NOW,
                                       30 * CM_USEC_PER_DAY, "bulk-1");
    char *token = cm_jwt_sign(ec_key, "PS1-site-signing", claims, &error);
    CmJwtCheck c = check_at(CM_TEST_NOW + 29 * CM_USEC_PER_DAY);
    json_t *got;

    cm_assert_no_error(error);
    for (int device = 0; device < 3; device++) {
        got = cm_jwt_verify(token, ec_key, &c, &error);
        cm_assert_no_error(error);
        ck_assert_str_eq(json_string_value(json_object_get(got, "sub")), "bulk-registration");
        json_decref(got);
    }
    c.now = CM_TEST_NOW + 31 * CM_USEC_PER_DAY;
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_EXPIRED);
    /* Another site's key does not make one. */
    c.now = CM_TEST_NOW;
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key2, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_SIGNATURE);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_device_token)
{
    /* REQ: CMG-12 */
    /* The token the site issues to a device registered on the internal
     * network names the device (its SMSID) and is bound to the CMG. */
    GError *error = NULL;
    const char *smsid = "GUID:5A1C2D3E-0000-4000-8000-000000000001";
    json_t *claims = cm_jwt_claims_new(ISS, AUD, smsid, CM_TEST_NOW, 7 * CM_USEC_PER_DAY, NULL);
    char *token = cm_jwt_sign(rsa_key, NULL, claims, &error);
    CmJwtCheck c = check_at(CM_TEST_NOW + CM_USEC_PER_DAY);
    json_t *got;

    cm_assert_no_error(error);
    got = cm_jwt_verify(token, rsa_key, &c, &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(cm_json_str(got, "sub", CM_ID_SMSID_LEN, &error), smsid);
    json_decref(got);
    /* Not for another audience. */
    c.audience = "https://dp.contoso.com";
    ck_assert_ptr_null(cm_jwt_verify(token, rsa_key, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_REFUSED);
    g_free(token);
    json_decref(claims);
}
END_TEST

/* ------------------------------------------------------- rejections */

START_TEST(test_tampered)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, "k1", claims, &error);
    char *forged;

    cm_assert_no_error(error);
    /* Another subject in the payload. */
    json_object_set_new(claims, "sub", json_string("GUID:00000000-0000-4000-8000-000000000666"));
    {
        g_autofree char *text = cm_json_dump(claims);
        g_autofree char *p = b64url_str(text);
        forged = replace_part(token, 1, p);
        expect_refused(forged, ec_key, CM_PROTO_ERROR_SIGNATURE);
        g_free(forged);
    }
    /* Another kid in the header. */
    {
        g_autofree char *h = b64url_str("{\"alg\":\"ES256\",\"kid\":\"k2\",\"typ\":\"JWT\"}");
        forged = replace_part(token, 0, h);
        expect_refused(forged, ec_key, CM_PROTO_ERROR_SIGNATURE);
        g_free(forged);
    }
    /* Every signature character changed in turn. */
    {
        char *sig = strrchr(token, '.') + 1;
        for (size_t i = 0; i < strlen(sig); i += 7) {
            char saved = sig[i];
            sig[i] = saved == 'A' ? 'Q' : 'A';
            expect_refused(token, ec_key, CM_PROTO_ERROR_SIGNATURE);
            sig[i] = saved;
        }
    }
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_wrong_key)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);

    cm_assert_no_error(error);
    expect_refused(token, ec_key2, CM_PROTO_ERROR_SIGNATURE);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_alg_none)
{
    g_autofree char *payload = claims_text(NULL, NULL, NULL);
    g_autofree char *p = b64url_str(payload);
    static const char *const headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
                                          "{\"alg\":\"NONE\",\"typ\":\"JWT\"}"};

    for (size_t i = 0; i < G_N_ELEMENTS(headers); i++) {
        g_autofree char *h = b64url_str(headers[i]);
        g_autofree char *t = g_strconcat(h, ".", p, ".", NULL);
        g_autofree char *t2 = g_strconcat(h, ".", p, ".AAAA", NULL);
        expect_refused(t, ec_key, CM_PROTO_ERROR_REFUSED);
        expect_refused(t, rsa_key, CM_PROTO_ERROR_REFUSED);
        expect_refused(t2, ec_key, CM_PROTO_ERROR_REFUSED);
    }
}
END_TEST

START_TEST(test_alg_confusion)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *rs = cm_jwt_sign(rsa_key, NULL, claims, &error);
    char *es = cm_jwt_sign(ec_key, NULL, claims, &error);
    g_autofree char *payload = claims_text(NULL, NULL, NULL);

    cm_assert_no_error(error);
    /* RS256 presented to an EC key, ES256 to an RSA key. */
    expect_refused(rs, ec_key, CM_PROTO_ERROR_REFUSED);
    expect_refused(es, rsa_key, CM_PROTO_ERROR_REFUSED);
    /* An ES256 header over an RSA signature. */
    {
        g_autofree char *h = b64url_str("{\"alg\":\"ES256\",\"typ\":\"JWT\"}");
        g_autofree char *t = replace_part(rs, 0, h);
        expect_refused(t, ec_key, CM_PROTO_ERROR_SIGNATURE);
    }
    /* HMAC keyed with the public key, the classic confusion, and others. */
    {
        static const char *const algs[] = {"HS256", "ES384", "ES512",  "PS256",
                                           "RS512", "es256", "ES256 ", ""};
        for (size_t i = 0; i < G_N_ELEMENTS(algs); i++) {
            g_autofree char *hdr = g_strdup_printf("{\"alg\":\"%s\"}", algs[i]);
            g_autofree char *t = make_token(ec_key, hdr, payload);
            expect_refused(t, ec_key, CM_PROTO_ERROR_REFUSED);
        }
    }
    g_free(rs);
    g_free(es);
    json_decref(claims);
}
END_TEST

START_TEST(test_expired)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);
    CmTime exp = CM_TEST_NOW + CM_USEC_PER_HOUR;
    CmJwtCheck c = check_at(exp + CM_JWT_LEEWAY);

    cm_assert_no_error(error);
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "expired at 2026-01-01T01:00:00Z") != NULL, "%s",
                  error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_EXPIRED);
    c.now = exp + CM_USEC_PER_DAY;
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_EXPIRED);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_not_yet_valid)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);
    CmJwtCheck c = check_at(CM_TEST_NOW - CM_JWT_LEEWAY - 1);

    cm_assert_no_error(error);
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "not valid before") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_EXPIRED);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_wrong_issuer_audience)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);
    CmJwtCheck c = check_at(CM_TEST_NOW);

    cm_assert_no_error(error);
    c.issuer = "https://site.contoso.com/PS2";
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_REFUSED);
    c.issuer = ISS;
    c.audience = "https://cmg.contoso.co";
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_REFUSED);
    c.audience = NULL;
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, &c, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_verify(token, ec_key, NULL, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_bad_claims)
{
    static const char *const hdr = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
    struct {
        const char *key;
        json_t *value;
        const char *drop;
        int code;
    } cases[] = {
        {NULL, NULL, "exp", CM_PROTO_ERROR_INVALID},
        {"exp", json_string("1767229200"), NULL, CM_PROTO_ERROR_INVALID},
        {"exp", json_real(1767229200.5), NULL, CM_PROTO_ERROR_INVALID},
        {"exp", json_integer(-1), NULL, CM_PROTO_ERROR_INVALID},
        {"exp", json_integer(G_MAXINT64), NULL, CM_PROTO_ERROR_INVALID},
        {"nbf", json_string("now"), NULL, CM_PROTO_ERROR_INVALID},
        {"nbf", json_integer(NOW_S + 3600), NULL, CM_PROTO_ERROR_EXPIRED},
        {"iat", json_true(), NULL, CM_PROTO_ERROR_INVALID},
        {NULL, NULL, "iss", CM_PROTO_ERROR_INVALID},
        {"iss", json_integer(1), NULL, CM_PROTO_ERROR_INVALID},
        {"iss", json_string("https://evil.example"), NULL, CM_PROTO_ERROR_REFUSED},
        {NULL, NULL, "aud", CM_PROTO_ERROR_INVALID},
        {"aud", json_integer(1), NULL, CM_PROTO_ERROR_INVALID},
        {"aud", json_pack("[s]", "https://other.example"), NULL, CM_PROTO_ERROR_REFUSED},
        {"aud", json_array(), NULL, CM_PROTO_ERROR_REFUSED},
        {"aud", json_pack("[i,s]", 1, AUD), NULL, CM_PROTO_ERROR_INVALID},
        {"aud", json_string(AUD "/"), NULL, CM_PROTO_ERROR_REFUSED},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *payload = claims_text(cases[i].key, cases[i].value, cases[i].drop);
        g_autofree char *t = make_token(ec_key, hdr, payload);
        expect_refused(t, ec_key, cases[i].code);
    }
    /* A payload that is not an object, duplicates a claim, or is no JSON. */
    {
        static const char *const bad[] = {
            "[1]",
            "{\"iss\":\"" ISS "\",\"iss\":\"x\",\"aud\":\"" AUD "\",\"exp\":1767229200}",
            "{\"iss\":",
            "",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            g_autofree char *t = make_token(ec_key, hdr, bad[i]);
            expect_refused(t, ec_key, CM_PROTO_ERROR_INVALID);
        }
    }
}
END_TEST

START_TEST(test_bad_header)
{
    g_autofree char *payload = claims_text(NULL, NULL, NULL);
    static const struct {
        const char *header;
        int code;
    } cases[] = {
        {"{}", CM_PROTO_ERROR_INVALID},
        {"{\"alg\":1}", CM_PROTO_ERROR_INVALID},
        {"{\"alg\":null}", CM_PROTO_ERROR_INVALID},
        {"[\"ES256\"]", CM_PROTO_ERROR_INVALID},
        {"{\"alg\":\"ES256\",\"alg\":\"none\"}", CM_PROTO_ERROR_INVALID},
        {"{\"alg\":\"ES256\",\"typ\":\"JWE\"}", CM_PROTO_ERROR_INVALID},
        {"{\"alg\":\"ES256\",\"typ\":1}", CM_PROTO_ERROR_INVALID},
        {"{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", CM_PROTO_ERROR_REFUSED},
        {"{\"alg\":\"ES256\"", CM_PROTO_ERROR_INVALID},
        {"", CM_PROTO_ERROR_INVALID},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *t = make_token(ec_key, cases[i].header, payload);
        expect_refused(t, ec_key, cases[i].code);
    }
}
END_TEST

START_TEST(test_malformed)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(ec_key, NULL, claims, &error);
    char **parts = g_strsplit(token, ".", -1);
    static const char *const bad[] = {"",    ".",       "..",   "...",     "a",
                                      "a.b", "a.b.c.d", "a..c", "!!.!!.!!"};

    cm_assert_no_error(error);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        expect_refused(bad[i], ec_key, CM_PROTO_ERROR_INVALID);
    expect_refused(NULL, ec_key, CM_PROTO_ERROR_INVALID);
    {
        /* Four and five parts (a JWE has five). */
        g_autofree char *t4 = g_strconcat(token, ".", parts[2], NULL);
        g_autofree char *t5 = g_strconcat(token, ".", parts[1], ".", parts[2], NULL);
        expect_refused(t4, ec_key, CM_PROTO_ERROR_INVALID);
        expect_refused(t5, ec_key, CM_PROTO_ERROR_INVALID);
    }
    {
        /* Padding, whitespace and the standard alphabet are not base64url. */
        g_autofree char *padded = g_strconcat(parts[0], "=.", parts[1], ".", parts[2], NULL);
        g_autofree char *spaced = g_strconcat(" ", token, NULL);
        g_autofree char *nl = g_strconcat(token, "\n", NULL);
        g_autofree char *plus = g_strdup(token);
        expect_refused(padded, ec_key, CM_PROTO_ERROR_INVALID);
        expect_refused(spaced, ec_key, CM_PROTO_ERROR_INVALID);
        expect_refused(nl, ec_key, CM_PROTO_ERROR_INVALID);
        for (char *c = strrchr(plus, '.'); *c != '\0'; c++) {
            if (*c == '-' || *c == '_')
                *c = *c == '-' ? '+' : '/';
        }
        if (strcmp(plus, token) != 0)
            expect_refused(plus, ec_key, CM_PROTO_ERROR_INVALID);
    }
    {
        /* Signature of the wrong size: 63, 65 and 0 bytes, all zero. */
        static const guint8 zero[65] = {0};
        static const size_t sizes[] = {63, 65, 64};
        for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
            g_autofree char *s = cm_enc_b64url(zero, sizes[i]);
            g_autofree char *t = replace_part(token, 2, s);
            expect_refused(t, ec_key, CM_PROTO_ERROR_SIGNATURE);
        }
    }
    {
        /* An oversized signature part. */
        g_autofree char *big = g_strnfill(1000, 'A');
        g_autofree char *t = replace_part(token, 2, big);
        expect_refused(t, ec_key, CM_PROTO_ERROR_INVALID);
    }
    g_strfreev(parts);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_rs256_bad_signature)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token = cm_jwt_sign(rsa_key, NULL, claims, &error);
    GBytes *sig = decode_part(token, 2);
    g_autofree char *short_sig = cm_enc_b64url(g_bytes_get_data(sig, NULL), 255);
    g_autofree char *t = replace_part(token, 2, short_sig);

    cm_assert_no_error(error);
    expect_refused(t, rsa_key, CM_PROTO_ERROR_SIGNATURE);
    {
        guint8 flipped[256];
        g_autofree char *s64 = NULL;
        g_autofree char *t2 = NULL;
        memcpy(flipped, g_bytes_get_data(sig, NULL), 256);
        flipped[100] ^= 1;
        s64 = cm_enc_b64url(flipped, 256);
        t2 = replace_part(token, 2, s64);
        expect_refused(t2, rsa_key, CM_PROTO_ERROR_SIGNATURE);
    }
    g_bytes_unref(sig);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_too_long)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    char *token;
    g_autofree char *pad = g_strnfill(CM_JWT_MAX_LEN, 'x');
    GString *s;

    /* cm_jwt_sign refuses to make what cm_jwt_verify would refuse. */
    json_object_set_new(claims, "pad", json_string(pad));
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, claims, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
    json_decref(claims);

    claims = std_claims();
    token = cm_jwt_sign(ec_key, NULL, claims, &error);
    cm_assert_no_error(error);
    s = g_string_new(token);
    while (s->len <= CM_JWT_MAX_LEN)
        g_string_append_c(s, 'A');
    expect_refused(s->str, ec_key, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_jwt_peek_kid(s->str, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
    g_string_free(s, TRUE);
    g_free(token);
    json_decref(claims);
}
END_TEST

START_TEST(test_sign_refuses)
{
    GError *error = NULL;
    json_t *claims = std_claims();
    json_t *no_exp = std_claims();
    json_t *arr = json_array();
    g_autofree char *long_kid = g_strnfill(300, 'k');
    json_t *deep = std_claims();
    json_t *inner = json_object();

    json_object_del(no_exp, "exp");
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, no_exp, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    json_object_set_new(no_exp, "exp", json_integer(-1));
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, no_exp, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    json_object_set_new(no_exp, "exp", json_integer(G_GINT64_CONSTANT(253402300800)));
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, no_exp, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    json_object_set_new(no_exp, "exp", json_string("1767229200"));
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, no_exp, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, arr, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, NULL, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_sign(NULL, NULL, claims, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_sign(ec_key, long_kid, claims, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_sign(ec_key, "\xff", claims, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    /* Nesting the verifier would refuse. */
    json_object_set_new(deep, "x", inner);
    for (int i = 0; i < CM_JSON_MAX_DEPTH; i++) {
        json_t *next = json_object();
        json_object_set_new(inner, "x", next);
        inner = next;
    }
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, deep, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    /* A NUL in a claim's string or key: the verifier's parser refuses
     * \u0000. */
    json_object_set_new(claims, "nul", json_stringn("a\0b", 3));
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, claims, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    json_object_del(claims, "nul");
    json_object_setn_new(claims, "k\0ey", 4, json_true());
    ck_assert_ptr_null(cm_jwt_sign(ec_key, NULL, claims, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    json_object_deln(claims, "k\0ey", 4);
    {
        /* The deepest nesting the verifier reads back is signed, and reads back. */
        json_t *ok = std_claims();
        json_t *at = json_object();
        char *token;
        json_t *back;
        json_object_set_new(ok, "x", at);
        /* levels 1 (the claims) and 2 (x), then an array and an object a
         * step: 16 in all */
        for (int level = 2; level < CM_JSON_MAX_DEPTH; level += 2) {
            json_t *next = json_array();
            json_object_set_new(at, "x", next);
            at = json_object();
            json_array_append_new(next, at);
        }
        token = cm_jwt_sign(ec_key, NULL, ok, &error);
        cm_assert_no_error(error);
        ck_assert_ptr_nonnull(token);
        back = expect_valid(token, ec_key, CM_TEST_NOW);
        ck_assert(json_equal(back, ok));
        json_decref(back);
        g_free(token);
        json_decref(ok);
    }

    json_decref(claims);
    json_decref(no_exp);
    json_decref(arr);
    json_decref(deep);
}
END_TEST

START_TEST(test_peek_kid)
{
    GError *error = NULL;
    g_autofree char *payload = claims_text(NULL, NULL, NULL);
    g_autofree char *t1 = make_token(ec_key, "{\"alg\":\"ES256\",\"kid\":1}", payload);
    g_autofree char *t2 = make_token(ec_key, "{\"alg\":\"none\",\"kid\":\"x\"}", payload);
    char *kid;

    ck_assert_ptr_null(cm_jwt_peek_kid(t1, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    /* Peeking checks nothing but the form. */
    kid = cm_jwt_peek_kid(t2, &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(kid, "x");
    g_free(kid);
    ck_assert_ptr_null(cm_jwt_peek_kid("a.b", &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_peek_kid("!.b.c", &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_jwt_peek_kid(NULL, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
}
END_TEST

static Suite *
jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("jwt");

    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_test(tc, test_claims_new);
    tcase_add_test(tc, test_es256_roundtrip);
    tcase_add_test(tc, test_rs256_roundtrip);
    tcase_add_test(tc, test_public_key_verifies);
    tcase_add_test(tc, test_openssl_verifies);
    tcase_add_test(tc, test_rfc7515_es256);
    tcase_add_test(tc, test_header_options);
    tcase_add_test(tc, test_audience_array);
    tcase_add_test(tc, test_leeway);
    tcase_add_test(tc, test_bulk_registration_token);
    tcase_add_test(tc, test_device_token);
    tcase_add_test(tc, test_tampered);
    tcase_add_test(tc, test_wrong_key);
    tcase_add_test(tc, test_alg_none);
    tcase_add_test(tc, test_alg_confusion);
    tcase_add_test(tc, test_expired);
    tcase_add_test(tc, test_not_yet_valid);
    tcase_add_test(tc, test_wrong_issuer_audience);
    tcase_add_test(tc, test_bad_claims);
    tcase_add_test(tc, test_bad_header);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_rs256_bad_signature);
    tcase_add_test(tc, test_too_long);
    tcase_add_test(tc, test_sign_refuses);
    tcase_add_test(tc, test_peek_kid);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(jwt_suite());
}
