/* test-key.c - keys (generation, encodings) and key storage providers. */
#include "testutil.h"

#include <string.h>

#include <openssl/pem.h>
#include <openssl/ui.h>

static const guint8 SECRET_A[32] = {
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};
static const guint8 SECRET_B[32] = {
    0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a,
    0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a};

/* One key of each algorithm, generated once for the whole run (RSA key
 * generation under the sanitizers is slow); tests that need fresh keys make
 * their own. */
static CmKey *ec_key;
static CmKey *rsa_key;

static void
keys_setup(void)
{
    GError *err = NULL;

    ec_key = cm_key_generate(CM_KEY_EC_P256, &err);
    g_assert_no_error(err);
    rsa_key = cm_key_generate(CM_KEY_RSA_2048, &err);
    g_assert_no_error(err);
}

static void
keys_teardown(void)
{
    g_clear_pointer(&ec_key, cm_key_unref);
    g_clear_pointer(&rsa_key, cm_key_unref);
}

static CmKey *
key_of(int i)
{
    return i == 0 ? ec_key : rsa_key;
}

/* ------------------------------------------------------------ names */

START_TEST(test_alg_names)
{
    GError *err = NULL;
    CmKeyAlg alg;

    ck_assert_str_eq(cm_key_alg_name(CM_KEY_EC_P256), "p256");
    ck_assert_str_eq(cm_key_alg_name(CM_KEY_RSA_2048), "rsa2048");
    ck_assert(cm_key_alg_parse("p256", &alg, &err));
    cm_assert_no_error(err);
    ck_assert_int_eq(alg, CM_KEY_EC_P256);
    ck_assert(cm_key_alg_parse("RSA2048", &alg, &err));
    cm_assert_no_error(err);
    ck_assert_int_eq(alg, CM_KEY_RSA_2048);
    ck_assert(!cm_key_alg_parse("ed25519", &alg, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert(!cm_key_alg_parse(NULL, &alg, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* ------------------------------------------------------- generation */

START_TEST(test_generate)
{
    CmKey *key = key_of(_i);
    EVP_PKEY *pkey = cm_key_evp(key);

    ck_assert_int_eq(cm_key_alg(key), _i == 0 ? CM_KEY_EC_P256 : CM_KEY_RSA_2048);
    ck_assert(cm_key_has_private(key));
    ck_assert(cm_key_is_exportable(key));
    ck_assert(EVP_PKEY_is_a(pkey, _i == 0 ? "EC" : "RSA"));
    ck_assert_int_eq(EVP_PKEY_get_bits(pkey), _i == 0 ? 256 : 2048);
}
END_TEST

START_TEST(test_key_id_stable)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autoptr(GBytes) der = cm_key_public_der(key);
    g_autoptr(CmKey) pub =
        cm_key_public_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &err);
    g_autoptr(CmKey) other = cm_key_generate(CM_KEY_EC_P256, &err);
    guint8 expect[32];

    cm_assert_no_error(err);
    /* The key ID is the SHA-256 of the DER SubjectPublicKeyInfo, and the
     * same for the private key and its public half however it was parsed. */
    ck_assert_uint_eq(
        cm_hash(CM_HASH_SHA256, g_bytes_get_data(der, NULL), g_bytes_get_size(der), expect), 32);
    ck_assert_mem_eq(cm_key_id(key), expect, 32);
    ck_assert_mem_eq(cm_key_id(pub), expect, 32);
    ck_assert_mem_eq(cm_key_id(key), cm_key_id(key), 32);
    ck_assert(cm_key_public_equal(key, pub));
    ck_assert(!cm_key_public_equal(key, other));
    ck_assert(memcmp(cm_key_id(key), cm_key_id(other), 32) != 0);
}
END_TEST

START_TEST(test_ref_unref)
{
    CmKey *key = cm_key_ref(ec_key);

    ck_assert_ptr_eq(key, ec_key);
    cm_key_unref(key);
    cm_key_unref(NULL);
    ck_assert(cm_key_has_private(ec_key));
}
END_TEST

/* ------------------------------------------------ public encodings */

START_TEST(test_public_der_round_trip)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autoptr(GBytes) der = cm_key_public_der(key);
    g_autoptr(CmKey) pub =
        cm_key_public_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &err);
    g_autoptr(GBytes) der2 = NULL;

    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(pub);
    ck_assert(!cm_key_has_private(pub));
    ck_assert_int_eq(cm_key_alg(pub), cm_key_alg(key));
    der2 = cm_key_public_der(pub);
    ck_assert(g_bytes_equal(der, der2));
}
END_TEST

START_TEST(test_public_pem_round_trip)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autofree char *pem = cm_key_public_pem(key);
    g_autoptr(CmKey) pub = NULL;
    g_autofree char *pem2 = NULL;

    ck_assert(g_str_has_prefix(pem, "-----BEGIN PUBLIC KEY-----\n"));
    pub = cm_key_public_from_pem(pem, strlen(pem), &err);
    cm_assert_no_error(err);
    ck_assert(!cm_key_has_private(pub));
    ck_assert(cm_key_public_equal(key, pub));
    pem2 = cm_key_public_pem(pub);
    ck_assert_str_eq(pem, pem2);
}
END_TEST

/* REQ: TRUST-05 */
START_TEST(test_public_hex_round_trip)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autofree char *hex = cm_key_public_hex(key);
    g_autofree char *lower = g_ascii_strdown(hex, -1);
    g_autoptr(GBytes) der = cm_key_public_der(key);
    g_autoptr(CmKey) pub = NULL;
    g_autoptr(CmKey) pub2 = NULL;

    /* SMSPublicRootKey: the DER SubjectPublicKeyInfo in upper-case hex. */
    ck_assert_uint_eq(strlen(hex), 2 * g_bytes_get_size(der));
    for (const char *c = hex; *c; c++)
        ck_assert(g_ascii_isdigit(*c) || (*c >= 'A' && *c <= 'F'));
    pub = cm_key_public_from_hex(hex, &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(key, pub));
    ck_assert(!cm_key_has_private(pub));
    /* A key typed in lower case is the same key. */
    pub2 = cm_key_public_from_hex(lower, &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(key, pub2));
}
END_TEST

/* REQ: TRUST-05 */
START_TEST(test_public_hex_malformed)
{
    GError *err = NULL;
    g_autofree char *hex = cm_key_public_hex(ec_key);
    g_autofree char *odd = g_strndup(hex, strlen(hex) - 1);
    g_autofree char *short_ = g_strndup(hex, strlen(hex) - 2);
    g_autofree char *trailing = g_strconcat(hex, "00", NULL);
    g_autofree char *bad = g_strdup(hex);
    g_autofree char *huge = g_strnfill(2 * 9000, 'A');

    bad[10] = 'G';
    ck_assert_ptr_null(cm_key_public_from_hex("", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_hex(odd, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_hex(short_, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_hex(trailing, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_hex(bad, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_hex("not hex at all", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_hex(huge, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_public_der_malformed)
{
    GError *err = NULL;
    g_autoptr(GBytes) der = cm_key_public_der(rsa_key);
    gsize len;
    const guint8 *p = g_bytes_get_data(der, &len);
    g_autofree guint8 *trailing = g_malloc(len + 1);
    g_autofree guint8 *big = g_malloc0(9000);
    static const guint8 garbage[] = {0x30, 0x03, 0x02, 0x01, 0x05};

    memcpy(trailing, p, len);
    trailing[len] = 0x00;
    ck_assert_ptr_null(cm_key_public_from_der(trailing, len + 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_der(p, len - 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_der(p, 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_der(garbage, sizeof garbage, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_der(big, 9000, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_public_pem_malformed)
{
    GError *err = NULL;
    g_autofree char *pem = cm_key_public_pem(ec_key);
    g_autofree char *priv = cm_key_private_pem(ec_key, &err);
    g_autofree char *broken = g_strdup(pem);
    g_autofree char *big = g_strnfill(17 * 1024, 'A');
    static const char empty[] = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n";

    cm_assert_no_error(err);
    broken[40] = '*';
    ck_assert_ptr_null(cm_key_public_from_pem(broken, strlen(broken), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_pem(pem, 40, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_pem(empty, strlen(empty), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_pem("", 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    /* A private key PEM is not a public key PEM. */
    ck_assert_ptr_null(cm_key_public_from_pem(priv, strlen(priv), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_public_from_pem(big, strlen(big), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_unsupported_key_type)
{
    GError *err = NULL;
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    unsigned char *der = NULL;
    int len;

    ck_assert_ptr_nonnull(ed);
    ck_assert_ptr_nonnull(p384);
    len = i2d_PUBKEY(ed, &der);
    ck_assert_int_gt(len, 0);
    ck_assert_ptr_null(cm_key_public_from_der(der, (size_t)len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    OPENSSL_free(der);
    der = NULL;
    len = i2d_PUBKEY(p384, &der);
    ck_assert_int_gt(len, 0);
    ck_assert_ptr_null(cm_key_public_from_der(der, (size_t)len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    OPENSSL_free(der);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(p384);
}
END_TEST

/* ------------------------------------------------------ private PEM */

START_TEST(test_private_pem_round_trip)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autofree char *pem = cm_key_private_pem(key, &err);
    g_autoptr(CmKey) back = NULL;

    cm_assert_no_error(err);
    ck_assert(g_str_has_prefix(pem, "-----BEGIN PRIVATE KEY-----\n"));
    back = cm_key_private_from_pem(pem, strlen(pem), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_has_private(back));
    ck_assert(cm_key_is_exportable(back));
    ck_assert_int_eq(cm_key_alg(back), cm_key_alg(key));
    ck_assert(cm_key_public_equal(key, back));
    ck_assert_int_eq(EVP_PKEY_eq(cm_key_evp(key), cm_key_evp(back)), 1);
}
END_TEST

START_TEST(test_private_pem_refusals)
{
    GError *err = NULL;
    g_autofree char *pub_pem = cm_key_public_pem(ec_key);
    g_autoptr(CmKey) pub = cm_key_public_from_pem(pub_pem, strlen(pub_pem), &err);
    g_autofree char *priv = NULL;
    g_autofree char *big = g_strnfill(17 * 1024, 'A');

    cm_assert_no_error(err);
    /* A public key has no private half to export. */
    ck_assert_ptr_null(cm_key_private_pem(pub, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    /* A public key PEM is not a private key. */
    ck_assert_ptr_null(cm_key_private_from_pem(pub_pem, strlen(pub_pem), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_private_from_pem("garbage", 7, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_key_private_from_pem(big, strlen(big), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    priv = cm_key_private_pem(ec_key, &err);
    cm_assert_no_error(err);
    ck_assert_ptr_null(cm_key_private_from_pem(priv, strlen(priv) / 2, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* A UI method standing in for the terminal: it answers every prompt with
 * the right pass phrase and counts the prompts. */
static int ui_prompts;

static int
ui_reader(UI *ui, UI_STRING *uis)
{
    ui_prompts++;
    if (UI_get_string_type(uis) == UIT_PROMPT || UI_get_string_type(uis) == UIT_VERIFY)
        return UI_set_result(ui, uis, "secret") == 0 ? 1 : 0;
    return 1;
}

/* An encrypted private key is refused at once: parsing must never stop to
 * ask for a pass phrase on a terminal (a daemon would hang there). */
START_TEST(test_private_pem_encrypted_refused)
{
    GError *err = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    UI_METHOD *ui = UI_create_method("test terminal");
    char *data = NULL;
    long len;

    UI_method_set_reader(ui, ui_reader);
    UI_set_default_method(ui);
    ck_assert(PEM_write_bio_PKCS8PrivateKey(bio, cm_key_evp(ec_key), EVP_aes_256_cbc(), NULL, 0,
                                            NULL, (void *)"secret"));
    len = BIO_get_mem_data(bio, &data);
    ui_prompts = 0;
    ck_assert_ptr_null(cm_key_private_from_pem(data, (size_t)len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_int_eq(ui_prompts, 0);
    UI_set_default_method(UI_OpenSSL());
    UI_destroy_method(ui);
    BIO_free(bio);
}
END_TEST

/* The key ID is the hash of the DER encoding, even when the key came in a
 * BER encoding that OpenSSL tolerates (a long-form length). REQ: TRUST-05 */
START_TEST(test_key_id_from_ber)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autoptr(GBytes) der = cm_key_public_der(key);
    gsize len;
    const guint8 *p = g_bytes_get_data(der, &len);
    g_autofree guint8 *ber = g_malloc(len + 2);
    g_autofree char *hex = NULL;
    g_autoptr(CmKey) parsed = NULL;
    g_autoptr(CmKey) from_hex = NULL;
    size_t ber_len;

    /* Outer SEQUENCE length re-encoded one byte longer than DER allows. */
    if (p[1] < 0x80) {
        ber[0] = 0x30;
        ber[1] = 0x81;
        ber[2] = p[1];
        memcpy(ber + 3, p + 2, len - 2);
        ber_len = len + 1;
    } else {
        ck_assert_int_eq(p[1], 0x82);
        ber[0] = 0x30;
        ber[1] = 0x83;
        ber[2] = 0x00;
        memcpy(ber + 3, p + 2, len - 2);
        ber_len = len + 1;
    }
    parsed = cm_key_public_from_der(ber, ber_len, &err);
    if (parsed == NULL) {
        /* Refusing BER outright is fine too. */
        cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
        return;
    }
    cm_assert_no_error(err);
    ck_assert_mem_eq(cm_key_id(parsed), cm_key_id(key), 32);
    ck_assert(cm_key_public_equal(parsed, key));
    hex = cm_enc_hex(ber, ber_len);
    from_hex = cm_key_public_from_hex(hex, &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(from_hex, key));
}
END_TEST

/* -------------------------------------------- key storage providers */

/* REQ: TRUST-11 */
START_TEST(test_ksp_kinds)
{
    g_autoptr(CmKsp) tpm2 = cm_ksp_new(2, SECRET_A);
    g_autoptr(CmKsp) tpm3 = cm_ksp_new(3, SECRET_A);
    g_autoptr(CmKsp) tpm12 = cm_ksp_new(1, SECRET_A);
    g_autoptr(CmKsp) none = cm_ksp_new(0, NULL);

    /* TPM 2.0 or later: the hardware-bound provider. */
    ck_assert_int_eq(cm_ksp_kind(tpm2), CM_KSP_TPM2);
    ck_assert(!cm_ksp_fell_back(tpm2));
    ck_assert_int_eq(cm_ksp_kind(tpm3), CM_KSP_TPM2);
    ck_assert(!cm_ksp_fell_back(tpm3));
    /* TPM 1.2 is known vulnerable: software, and it says it fell back. */
    ck_assert_int_eq(cm_ksp_kind(tpm12), CM_KSP_SOFTWARE);
    ck_assert(cm_ksp_fell_back(tpm12));
    /* No TPM: software, which is no fallback. */
    ck_assert_int_eq(cm_ksp_kind(none), CM_KSP_SOFTWARE);
    ck_assert(!cm_ksp_fell_back(none));
    ck_assert_str_eq(cm_ksp_kind_name(CM_KSP_TPM2), "tpm2");
    ck_assert_str_eq(cm_ksp_kind_name(CM_KSP_SOFTWARE), "software");
    cm_ksp_free(NULL);
}
END_TEST

/* REQ: TRUST-11 */
START_TEST(test_ksp_not_exportable)
{
    static const int versions[] = {2, 1, 0};
    GError *err = NULL;
    g_autoptr(CmKsp) ksp = cm_ksp_new(versions[_i % 3], SECRET_A);
    CmKeyAlg alg = _i < 3 ? CM_KEY_EC_P256 : CM_KEY_RSA_2048;
    g_autoptr(CmKey) key = cm_ksp_generate(ksp, alg, &err);
    g_autoptr(GBytes) sealed = NULL;
    g_autoptr(CmKey) back = NULL;
    g_autofree char *pub = NULL;

    cm_assert_no_error(err);
    ck_assert_int_eq(cm_key_alg(key), alg);
    ck_assert(cm_key_has_private(key));
    ck_assert(!cm_key_is_exportable(key));
    ck_assert_ptr_null(cm_key_private_pem(key, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_NOT_EXPORTABLE);
    /* The public half is still public. */
    pub = cm_key_public_pem(key);
    ck_assert(g_str_has_prefix(pub, "-----BEGIN PUBLIC KEY-----"));
    /* A key that comes back from the provider's storage stays non-exportable. */
    sealed = cm_ksp_seal(ksp, key, &err);
    cm_assert_no_error(err);
    back = cm_ksp_unseal(ksp, g_bytes_get_data(sealed, NULL), g_bytes_get_size(sealed), &err);
    cm_assert_no_error(err);
    ck_assert(!cm_key_is_exportable(back));
    ck_assert_ptr_null(cm_key_private_pem(back, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_NOT_EXPORTABLE);
}
END_TEST

/* REQ: TRUST-11 */
START_TEST(test_ksp_seal_round_trip)
{
    GError *err = NULL;
    g_autoptr(CmKsp) ksp = cm_ksp_new(_i == 0 ? 2 : 0, SECRET_A);
    g_autoptr(CmKsp) same_device = cm_ksp_new(_i == 0 ? 2 : 0, SECRET_A);
    g_autoptr(CmKey) key = cm_ksp_generate(ksp, CM_KEY_EC_P256, &err);
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(CmKey) back = NULL;
    g_autoptr(CmKey) back2 = NULL;
    unsigned char *pkcs = NULL;
    int pkcs_len;

    cm_assert_no_error(err);
    blob = cm_ksp_seal(ksp, key, &err);
    cm_assert_no_error(err);
    back = cm_ksp_unseal(ksp, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_has_private(back));
    ck_assert(cm_key_public_equal(key, back));
    ck_assert_int_eq(EVP_PKEY_eq(cm_key_evp(key), cm_key_evp(back)), 1);
    /* The same device after a restart (a new provider, same secret). */
    back2 = cm_ksp_unseal(same_device, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(key, back2));

    /* The TPM blob does not carry the key in the clear; the software one
     * does, which is the point of the model. */
    pkcs_len = i2d_PrivateKey(cm_key_evp(key), &pkcs);
    ck_assert_int_gt(pkcs_len, 0);
    if (_i == 0)
        ck_assert_ptr_null(
            memmem(g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), pkcs, (size_t)pkcs_len));
    else
        ck_assert_ptr_nonnull(
            memmem(g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), pkcs, (size_t)pkcs_len));
    OPENSSL_clear_free(pkcs, (size_t)pkcs_len);
}
END_TEST

/* The cloned-image case: a disk copied to another machine. REQ: TRUST-11 */
START_TEST(test_ksp_cloned_image)
{
    GError *err = NULL;
    g_autoptr(CmKsp) tpm_a = cm_ksp_new(2, SECRET_A);
    g_autoptr(CmKsp) tpm_b = cm_ksp_new(2, SECRET_B);
    g_autoptr(CmKsp) soft_a = cm_ksp_new(0, SECRET_A);
    g_autoptr(CmKsp) soft_b = cm_ksp_new(1, SECRET_B);
    g_autoptr(CmKey) tkey = cm_ksp_generate(tpm_a, CM_KEY_EC_P256, &err);
    g_autoptr(CmKey) skey = cm_ksp_generate(soft_a, CM_KEY_EC_P256, &err);
    g_autoptr(GBytes) tblob = NULL;
    g_autoptr(GBytes) sblob = NULL;
    g_autoptr(CmKey) sback = NULL;

    cm_assert_no_error(err);
    tblob = cm_ksp_seal(tpm_a, tkey, &err);
    cm_assert_no_error(err);
    sblob = cm_ksp_seal(soft_a, skey, &err);
    cm_assert_no_error(err);

    /* The TPM-bound key does not open on another machine's TPM... */
    ck_assert_ptr_null(
        cm_ksp_unseal(tpm_b, g_bytes_get_data(tblob, NULL), g_bytes_get_size(tblob), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    /* ...nor on a machine without a TPM. */
    ck_assert_ptr_null(
        cm_ksp_unseal(soft_b, g_bytes_get_data(tblob, NULL), g_bytes_get_size(tblob), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    /* The software key travels with the disk. */
    sback = cm_ksp_unseal(soft_b, g_bytes_get_data(sblob, NULL), g_bytes_get_size(sblob), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(skey, sback));
    /* A TPM device does not take a software blob as its own. */
    ck_assert_ptr_null(
        cm_ksp_unseal(tpm_a, g_bytes_get_data(sblob, NULL), g_bytes_get_size(sblob), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
}
END_TEST

/* A provider made for another TPM version of the same device (a mass
 * upgrade to the TPM) is bound to that device's secret: a key its TPM
 * sealed opens on the device's own TPM and on no other.  REQ: TRUST-11,
 * TRUST-12 */
START_TEST(test_ksp_same_device)
{
    GError *err = NULL;
    g_autoptr(CmKsp) soft_a = cm_ksp_new(1, SECRET_A);
    g_autoptr(CmKsp) tpm_a = cm_ksp_new_same_device(soft_a, 2);
    g_autoptr(CmKsp) tpm_a2 = cm_ksp_new(2, SECRET_A);
    g_autoptr(CmKsp) tpm_b = cm_ksp_new(2, SECRET_B);
    g_autoptr(CmKey) key = NULL;
    g_autoptr(CmKey) back = NULL;
    g_autoptr(GBytes) blob = NULL;

    ck_assert_int_eq(cm_ksp_kind(soft_a), CM_KSP_SOFTWARE);
    ck_assert_int_eq(cm_ksp_kind(tpm_a), CM_KSP_TPM2);
    ck_assert(!cm_ksp_fell_back(tpm_a));
    key = cm_ksp_generate(tpm_a, CM_KEY_EC_P256, &err);
    cm_assert_no_error(err);
    blob = cm_ksp_seal(tpm_a, key, &err);
    cm_assert_no_error(err);
    back = cm_ksp_unseal(tpm_a2, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(key, back));
    ck_assert_ptr_null(
        cm_ksp_unseal(tpm_b, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
}
END_TEST

/* REQ: TRUST-11 */
START_TEST(test_ksp_bad_blobs)
{
    GError *err = NULL;
    gboolean tpm = _i == 0;
    g_autoptr(CmKsp) ksp = cm_ksp_new(tpm ? 2 : 0, SECRET_A);
    g_autoptr(CmKey) key = cm_ksp_generate(ksp, CM_KEY_EC_P256, &err);
    g_autoptr(GBytes) blob = NULL;
    gsize len;
    const guint8 *p;
    g_autofree guint8 *copy = NULL;
    g_autofree guint8 *big = NULL;
    g_autofree char *pub_pem = NULL;
    g_autoptr(CmKey) pub = NULL;

    cm_assert_no_error(err);
    blob = cm_ksp_seal(ksp, key, &err);
    cm_assert_no_error(err);
    p = g_bytes_get_data(blob, &len);
    copy = g_memdup2(p, len);

    /* Empty and shorter than the magic. */
    ck_assert_ptr_null(cm_ksp_unseal(ksp, p, 0, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    ck_assert_ptr_null(cm_ksp_unseal(ksp, p, 3, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    /* Only the magic, and a few bytes more. */
    ck_assert_ptr_null(cm_ksp_unseal(ksp, p, 4, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    ck_assert_ptr_null(cm_ksp_unseal(ksp, p, 20, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    /* Truncated by one byte. */
    ck_assert_ptr_null(cm_ksp_unseal(ksp, p, len - 1, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    /* Unknown magic. */
    copy[0] ^= 0x20;
    ck_assert_ptr_null(cm_ksp_unseal(ksp, copy, len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    copy[0] ^= 0x20;
    if (tpm) {
        /* Any flipped bit of nonce, ciphertext or tag fails the GCM tag. */
        static const size_t at[] = {4, 4 + 12, 40, 0};
        for (size_t i = 0; i < G_N_ELEMENTS(at); i++) {
            size_t off = at[i] ? at[i] : len - 1;
            copy[off] ^= 0x01;
            ck_assert_ptr_null(cm_ksp_unseal(ksp, copy, len, &err));
            cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
            copy[off] ^= 0x01;
        }
    } else {
        /* A structurally broken DER (the outer SEQUENCE tag). */
        copy[4] = 0x04;
        ck_assert_ptr_null(cm_ksp_unseal(ksp, copy, len, &err));
        cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
        copy[4] = p[4];
    }
    /* The untouched copy still opens. */
    {
        g_autoptr(CmKey) ok = cm_ksp_unseal(ksp, copy, len, &err);
        cm_assert_no_error(err);
        ck_assert(cm_key_public_equal(ok, key));
    }
    /* A byte appended. */
    {
        g_autofree guint8 *longer = g_malloc(len + 1);
        memcpy(longer, p, len);
        longer[len] = 0x00;
        ck_assert_ptr_null(cm_ksp_unseal(ksp, longer, len + 1, &err));
        ck_assert_ptr_nonnull(err);
        g_clear_error(&err);
    }
    /* Oversized. */
    big = g_malloc0(9 * 1024);
    memcpy(big, p, len);
    ck_assert_ptr_null(cm_ksp_unseal(ksp, big, 9 * 1024, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);

    /* Only a private key can be sealed. */
    pub_pem = cm_key_public_pem(key);
    pub = cm_key_public_from_pem(pub_pem, strlen(pub_pem), &err);
    cm_assert_no_error(err);
    ck_assert_ptr_null(cm_ksp_seal(ksp, pub, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* REQ: TRUST-11 */
START_TEST(test_ksp_seal_is_randomized)
{
    GError *err = NULL;
    g_autoptr(CmKsp) ksp = cm_ksp_new(2, SECRET_A);
    g_autoptr(CmKey) key = cm_ksp_generate(ksp, CM_KEY_EC_P256, &err);
    g_autoptr(GBytes) a = NULL;
    g_autoptr(GBytes) b = NULL;

    cm_assert_no_error(err);
    a = cm_ksp_seal(ksp, key, &err);
    cm_assert_no_error(err);
    b = cm_ksp_seal(ksp, key, &err);
    cm_assert_no_error(err);
    /* A fresh nonce for every seal: two seals of one key differ. */
    ck_assert(!g_bytes_equal(a, b));
}
END_TEST

/* Secrets at rest: AES-256-GCM with a purpose bound in as AAD. */
START_TEST(test_aead)
{
    static const char secret[] = "network access account password";
    GError *err = NULL;
    g_autoptr(GBytes) blob = cm_aead_seal(SECRET_A, secret, sizeof secret, "naa", &err);
    g_autoptr(GBytes) blob2 = NULL;
    g_autoptr(GBytes) plain = NULL;
    g_autoptr(GBytes) empty = NULL;
    g_autoptr(GBytes) empty_plain = NULL;
    gsize len;
    g_autofree guint8 *copy = NULL;
    g_autofree guint8 *big = NULL;

    cm_assert_no_error(err);
    copy = g_memdup2(g_bytes_get_data(blob, &len), g_bytes_get_size(blob));
    ck_assert_uint_eq(len, 12 + sizeof secret + 16);
    ck_assert_ptr_null(memmem(copy, len, "password", 8));
    plain = cm_aead_open(SECRET_A, copy, len, "naa", &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(plain), sizeof secret);
    ck_assert_mem_eq(g_bytes_get_data(plain, NULL), secret, sizeof secret);
    /* A fresh nonce each time. */
    blob2 = cm_aead_seal(SECRET_A, secret, sizeof secret, "naa", &err);
    cm_assert_no_error(err);
    ck_assert(!g_bytes_equal(blob, blob2));

    /* Another key, another purpose, or any byte changed: refused. */
    ck_assert_ptr_null(cm_aead_open(SECRET_B, copy, len, "naa", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    ck_assert_ptr_null(cm_aead_open(SECRET_A, copy, len, "push", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    ck_assert_ptr_null(cm_aead_open(SECRET_A, copy, len, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    for (gsize i = 0; i < len; i += 5) {
        copy[i] ^= 0x80;
        ck_assert_ptr_null(cm_aead_open(SECRET_A, copy, len, "naa", &err));
        cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
        copy[i] ^= 0x80;
    }
    ck_assert_ptr_null(cm_aead_open(SECRET_A, copy, len - 1, "naa", &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    ck_assert_ptr_null(cm_aead_open(SECRET_A, copy, 27, "naa", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_aead_open(SECRET_A, copy, 0, "naa", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);

    /* Empty secrets round-trip; oversized ones are refused. */
    empty = cm_aead_seal(SECRET_A, "", 0, "naa", &err);
    cm_assert_no_error(err);
    empty_plain =
        cm_aead_open(SECRET_A, g_bytes_get_data(empty, NULL), g_bytes_get_size(empty), "naa", &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(empty_plain), 0);
    big = g_malloc0(CM_AEAD_MAX + 1);
    ck_assert_ptr_null(cm_aead_seal(SECRET_A, big, CM_AEAD_MAX + 1, "naa", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_aead_open(SECRET_A, big, CM_AEAD_MAX + 12 + 16 + 1, "naa", &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

static Suite *
key_suite(void)
{
    Suite *s = suite_create("key");
    TCase *tc = tcase_create("key");

    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_test(tc, test_alg_names);
    tcase_add_loop_test(tc, test_generate, 0, 2);
    tcase_add_loop_test(tc, test_key_id_stable, 0, 2);
    tcase_add_test(tc, test_ref_unref);
    tcase_add_loop_test(tc, test_public_der_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_public_pem_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_public_hex_round_trip, 0, 2);
    tcase_add_test(tc, test_public_hex_malformed);
    tcase_add_test(tc, test_public_der_malformed);
    tcase_add_test(tc, test_public_pem_malformed);
    tcase_add_test(tc, test_unsupported_key_type);
    tcase_add_loop_test(tc, test_private_pem_round_trip, 0, 2);
    tcase_add_test(tc, test_private_pem_refusals);
    tcase_add_test(tc, test_private_pem_encrypted_refused);
    tcase_add_loop_test(tc, test_key_id_from_ber, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("ksp");
    tcase_add_test(tc, test_ksp_kinds);
    tcase_add_loop_test(tc, test_ksp_not_exportable, 0, 6);
    tcase_add_loop_test(tc, test_ksp_seal_round_trip, 0, 2);
    tcase_add_test(tc, test_ksp_cloned_image);
    tcase_add_test(tc, test_ksp_same_device);
    tcase_add_loop_test(tc, test_ksp_bad_blobs, 0, 2);
    tcase_add_test(tc, test_ksp_seal_is_randomized);
    tcase_add_test(tc, test_aead);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(key_suite());
}
