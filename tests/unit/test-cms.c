/* test-cms.c - messages encrypted end to end to the site in CMS envelopes
 * (REQ MSG-02), with cross-checks against `openssl cms`. */
#include "testutil.h"

#include <string.h>

#include <openssl/cms.h>

#define NOW CM_TEST_NOW
#define DAY CM_USEC_PER_DAY
#define MAX_PLAIN (1024 * 1024)

static const char INVENTORY[] =
    "<Report><ReportBody><Instance Class=\"Win32_OperatingSystem\"><Caption>Windows 11 Enterprise"
    "</Caption><Version>10.0.26100</Version></Instance></ReportBody></Report>";

static const CmCipher ciphers[] = {CM_CIPHER_AES256_GCM, CM_CIPHER_AES256_CBC, CM_CIPHER_3DES_CBC};

/* The site's encryption certificates (EC and RSA) and a stranger's. */
static CmKey *ec_key;
static CmKey *rsa_key;
static CmKey *other_key;
static CmCert *ec_cert;
static CmCert *rsa_cert;
static CmCert *other_cert;

static CmCert *
encryption_cert(const CmKey *key, const char *cn, guint64 serial)
{
    GError *err = NULL;
    CmCertSpec spec = {0};
    CmCert *cert;

    spec.profile = CM_CERT_ENCRYPTION;
    spec.subject_cn = cn;
    spec.serial = serial;
    spec.not_before = NOW - DAY;
    spec.not_after = NOW + 365 * DAY;
    spec.subject_key = key;
    cert = cm_cert_issue(&spec, &err);
    g_assert_no_error(err);
    return cert;
}

static void
keys_setup(void)
{
    GError *err = NULL;

    ec_key = cm_key_generate(CM_KEY_EC_P256, &err);
    rsa_key = cm_key_generate(CM_KEY_RSA_2048, &err);
    other_key = cm_key_generate(CM_KEY_EC_P256, &err);
    g_assert_no_error(err);
    ec_cert = encryption_cert(ec_key, "Site Encryption (EC)", 1);
    rsa_cert = encryption_cert(rsa_key, "Site Encryption (RSA)", 2);
    other_cert = encryption_cert(other_key, "Someone Else", 3);
}

static void
keys_teardown(void)
{
    g_clear_pointer(&ec_cert, cm_cert_unref);
    g_clear_pointer(&rsa_cert, cm_cert_unref);
    g_clear_pointer(&other_cert, cm_cert_unref);
    g_clear_pointer(&ec_key, cm_key_unref);
    g_clear_pointer(&rsa_key, cm_key_unref);
    g_clear_pointer(&other_key, cm_key_unref);
}

static GBytes *
encrypt(const CmCert *to, CmCipher cipher, const void *data, size_t len)
{
    GError *err = NULL;
    GBytes *env = cm_cms_encrypt(to, cipher, data, len, &err);

    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(env);
    return env;
}

/* ------------------------------------------------------------ names */

START_TEST(test_cipher_names)
{
    GError *err = NULL;
    CmCipher c;

    ck_assert_str_eq(cm_cipher_name(CM_CIPHER_AES256_GCM), "aes256-gcm");
    ck_assert_str_eq(cm_cipher_name(CM_CIPHER_AES256_CBC), "aes256-cbc");
    ck_assert_str_eq(cm_cipher_name(CM_CIPHER_3DES_CBC), "3des");
    for (size_t i = 0; i < G_N_ELEMENTS(ciphers); i++) {
        ck_assert(cm_cipher_parse(cm_cipher_name(ciphers[i]), &c, &err));
        cm_assert_no_error(err);
        ck_assert_int_eq(c, ciphers[i]);
    }
    ck_assert(cm_cipher_parse("AES256-GCM", &c, &err));
    ck_assert_int_eq(c, CM_CIPHER_AES256_GCM);
    ck_assert(!cm_cipher_parse("rc4", &c, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert(!cm_cipher_parse(NULL, &c, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* ------------------------------------------------------ round trips */

/* Each cipher with an EC (key agreement) and an RSA (key transport)
 * recipient; cipher_out says which cipher the envelope used.
 * REQ: MSG-02 */
START_TEST(test_round_trip)
{
    GError *err = NULL;
    CmCipher cipher = ciphers[_i / 2];
    gboolean rsa = _i % 2 == 1;
    const CmCert *cert = rsa ? rsa_cert : ec_cert;
    const CmKey *key = rsa ? rsa_key : ec_key;
    g_autoptr(GBytes) env = encrypt(cert, cipher, INVENTORY, strlen(INVENTORY));
    g_autoptr(GBytes) plain = NULL;
    CmCipher used = (CmCipher)-1;
    const unsigned char *p = g_bytes_get_data(env, NULL);
    CMS_ContentInfo *cms;

    /* The envelope is the standard kind, and does not carry the text. */
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)g_bytes_get_size(env));
    ck_assert_ptr_nonnull(cms);
    ck_assert_int_eq(OBJ_obj2nid(CMS_get0_type(cms)), cipher == CM_CIPHER_AES256_GCM
                                                          ? NID_id_smime_ct_authEnvelopedData
                                                          : NID_pkcs7_enveloped);
    CMS_ContentInfo_free(cms);
    ck_assert_ptr_null(
        memmem(g_bytes_get_data(env, NULL), g_bytes_get_size(env), "Windows 11", 10));

    plain = cm_cms_decrypt(cert, key, g_bytes_get_data(env, NULL), g_bytes_get_size(env), MAX_PLAIN,
                           &used, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(plain), strlen(INVENTORY));
    ck_assert_mem_eq(g_bytes_get_data(plain, NULL), INVENTORY, strlen(INVENTORY));
    ck_assert_int_eq(used, cipher);
    /* cipher_out may be NULL. */
    g_bytes_unref(plain);
    plain = cm_cms_decrypt(cert, key, g_bytes_get_data(env, NULL), g_bytes_get_size(env), MAX_PLAIN,
                           NULL, &err);
    cm_assert_no_error(err);
}
END_TEST

/* Sizes around the block size, empty and large. REQ: MSG-02 */
START_TEST(test_sizes)
{
    static const size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 4096, 300 * 1024};
    CmCipher cipher = ciphers[_i];

    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        GError *err = NULL;
        g_autofree guint8 *data = g_malloc(sizes[i] + 1);
        g_autoptr(GBytes) env = NULL;
        g_autoptr(GBytes) plain = NULL;
        CmCipher used;

        for (size_t j = 0; j < sizes[i]; j++)
            data[j] = (guint8)(j * 7 + i);
        env = encrypt(ec_cert, cipher, data, sizes[i]);
        plain = cm_cms_decrypt(ec_cert, ec_key, g_bytes_get_data(env, NULL), g_bytes_get_size(env),
                               MAX_PLAIN, &used, &err);
        cm_assert_no_error(err);
        ck_assert_uint_eq(g_bytes_get_size(plain), sizes[i]);
        if (sizes[i] > 0)
            ck_assert_mem_eq(g_bytes_get_data(plain, NULL), data, sizes[i]);
        ck_assert_int_eq(used, cipher);
    }
}
END_TEST

/* An empty message may come as (NULL, 0). REQ: MSG-02 */
START_TEST(test_empty_null)
{
    GError *err = NULL;
    g_autoptr(GBytes) env = cm_cms_encrypt(ec_cert, CM_CIPHER_AES256_GCM, NULL, 0, &err);
    g_autoptr(GBytes) plain = NULL;

    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(env);
    plain = cm_cms_decrypt(ec_cert, ec_key, g_bytes_get_data(env, NULL), g_bytes_get_size(env),
                           MAX_PLAIN, NULL, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(plain), 0);
}
END_TEST

/* Two envelopes of the same message differ (fresh keys and IVs). */
START_TEST(test_randomized)
{
    g_autoptr(GBytes) a = encrypt(rsa_cert, CM_CIPHER_AES256_GCM, INVENTORY, strlen(INVENTORY));
    g_autoptr(GBytes) b = encrypt(rsa_cert, CM_CIPHER_AES256_GCM, INVENTORY, strlen(INVENTORY));

    ck_assert(!g_bytes_equal(a, b));
}
END_TEST

/* ----------------------------------------------------------- refusals */

/* Only the recipient opens it. REQ: MSG-02 */
START_TEST(test_wrong_recipient)
{
    GError *err = NULL;
    CmCipher cipher = ciphers[_i / 2];
    gboolean rsa = _i % 2 == 1;
    const CmCert *cert = rsa ? rsa_cert : ec_cert;
    const CmKey *key = rsa ? rsa_key : ec_key;
    g_autoptr(GBytes) env = encrypt(cert, cipher, INVENTORY, strlen(INVENTORY));
    const guint8 *p = g_bytes_get_data(env, NULL);
    gsize len = g_bytes_get_size(env);

    /* Another party with its own certificate and key. */
    ck_assert_ptr_null(cm_cms_decrypt(other_cert, other_key, p, len, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* The recipient's certificate with another key.  An RSA-transported
     * key that does not decrypt is replaced by a random one (OpenSSL's
     * defence against padding oracles), so a CBC envelope may then "open"
     * to garbage, about one time in 256; never to the message. */
    {
        g_autoptr(GBytes) plain =
            cm_cms_decrypt(cert, rsa ? ec_key : other_key, p, len, MAX_PLAIN, NULL, &err);
        if (plain == NULL) {
            ck_assert_ptr_nonnull(err);
            g_clear_error(&err);
        } else {
            ck_assert(rsa && cipher != CM_CIPHER_AES256_GCM);
            ck_assert(g_bytes_get_size(plain) != strlen(INVENTORY) ||
                      memcmp(g_bytes_get_data(plain, NULL), INVENTORY, strlen(INVENTORY)) != 0);
        }
    }
    /* The right key with another certificate. */
    ck_assert_ptr_null(cm_cms_decrypt(other_cert, key, p, len, MAX_PLAIN, NULL, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
}
END_TEST

/* AES-GCM authenticates: any byte changed is refused. REQ: MSG-02 */
START_TEST(test_gcm_tampered)
{
    GError *err = NULL;
    const CmCert *cert = _i == 1 ? rsa_cert : ec_cert;
    const CmKey *key = _i == 1 ? rsa_key : ec_key;
    g_autofree char *text = g_strnfill(200, 'Q');
    g_autoptr(GBytes) env = encrypt(cert, CM_CIPHER_AES256_GCM, text, 200);
    gsize len = g_bytes_get_size(env);
    g_autofree guint8 *copy = g_memdup2(g_bytes_get_data(env, NULL), len);
    /* The envelope ends with the ciphertext, then the 16-byte tag in an
     * OCTET STRING (18 bytes). */
    const gsize at[] = {len - 18 - 200 + 5, len - 18 - 100, len - 18 - 1, len - 1, len - 10};

    for (size_t i = 0; i < G_N_ELEMENTS(at); i++) {
        copy[at[i]] ^= 0x01;
        ck_assert_msg(cm_cms_decrypt(cert, key, copy, len, MAX_PLAIN, NULL, &err) == NULL,
                      "flipped byte %zu of %zu accepted", at[i], len);
        ck_assert_ptr_nonnull(err);
        g_clear_error(&err);
        copy[at[i]] ^= 0x01;
    }
    {
        g_autoptr(GBytes) plain = cm_cms_decrypt(cert, key, copy, len, MAX_PLAIN, NULL, &err);
        cm_assert_no_error(err);
        ck_assert_uint_eq(g_bytes_get_size(plain), 200);
    }
}
END_TEST

/* REQ: MSG-02 */
START_TEST(test_max_plain)
{
    GError *err = NULL;
    g_autofree char *text = g_strnfill(1000, 'z');
    g_autoptr(GBytes) env = encrypt(ec_cert, ciphers[_i], text, 1000);
    g_autoptr(GBytes) plain = NULL;
    const guint8 *p = g_bytes_get_data(env, NULL);
    gsize len = g_bytes_get_size(env);

    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, p, len, 999, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, p, len, 0, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    plain = cm_cms_decrypt(ec_cert, ec_key, p, len, 1000, NULL, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(plain), 1000);
}
END_TEST

START_TEST(test_too_large)
{
    GError *err = NULL;
    gsize big = CM_CMS_MAX_DER + 1;
    g_autofree guint8 *data = g_malloc0(big);

    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, data, big, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_cms_encrypt(ec_cert, CM_CIPHER_AES256_GCM, data, big, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

/* REQ: MSG-02 */
START_TEST(test_garbage)
{
    GError *err = NULL;
    g_autoptr(GBytes) env = encrypt(ec_cert, CM_CIPHER_AES256_GCM, INVENTORY, strlen(INVENTORY));
    const guint8 *p = g_bytes_get_data(env, NULL);
    gsize len = g_bytes_get_size(env);
    g_autofree guint8 *trailing = g_malloc(len + 1);
    static const guint8 junk[] = {0x30, 0x80, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x00, 0x00};

    ck_assert_ptr_null(
        cm_cms_decrypt(ec_cert, ec_key, (const guint8 *)"garbage", 7, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, p, 0, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, p, len / 2, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, junk, sizeof junk, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    memcpy(trailing, p, len);
    trailing[len] = 0;
    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, trailing, len + 1, MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

static GBytes *
cms_der(CMS_ContentInfo *cms)
{
    unsigned char *der = NULL;
    int len = i2d_CMS_ContentInfo(cms, &der);
    GBytes *b;

    ck_assert_int_gt(len, 0);
    b = g_bytes_new(der, (gsize)len);
    OPENSSL_free(der);
    return b;
}

/* Well-formed CMS that is no envelope: plain data, signed data. REQ: MSG-02 */
START_TEST(test_not_an_envelope)
{
    GError *err = NULL;
    BIO *in = BIO_new_mem_buf(INVENTORY, (int)strlen(INVENTORY));
    CMS_ContentInfo *data = CMS_data_create(in, CMS_BINARY);
    CMS_ContentInfo *signed_ = NULL;
    g_autoptr(GBytes) data_der = NULL;
    g_autoptr(GBytes) signed_der = NULL;

    ck_assert_ptr_nonnull(data);
    data_der = cms_der(data);
    BIO_free(in);
    in = BIO_new_mem_buf(INVENTORY, (int)strlen(INVENTORY));
    signed_ = CMS_sign(cm_cert_x509(ec_cert), cm_key_evp(ec_key), NULL, in, CMS_BINARY);
    ck_assert_ptr_nonnull(signed_);
    signed_der = cms_der(signed_);

    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, g_bytes_get_data(data_der, NULL),
                                      g_bytes_get_size(data_der), MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cms_decrypt(ec_cert, ec_key, g_bytes_get_data(signed_der, NULL),
                                      g_bytes_get_size(signed_der), MAX_PLAIN, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    CMS_ContentInfo_free(data);
    CMS_ContentInfo_free(signed_);
    BIO_free(in);
}
END_TEST

/* ---------------------------------------------- openssl cross-checks */

/* `openssl cms -decrypt` opens an envelope cmlab made (the default GCM and
 * the legacy 3DES). REQ: MSG-02 */
START_TEST(test_openssl_decrypts)
{
    static const CmCipher which[] = {CM_CIPHER_AES256_GCM, CM_CIPHER_3DES_CBC,
                                     CM_CIPHER_AES256_CBC};
    GError *err = NULL;
    CmCipher cipher = which[_i / 2];
    gboolean rsa = _i % 2 == 1;
    const CmCert *cert = rsa ? rsa_cert : ec_cert;
    const CmKey *key = rsa ? rsa_key : ec_key;
    g_autoptr(GBytes) env = encrypt(cert, cipher, INVENTORY, strlen(INVENTORY));
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *cert_pem = cm_cert_to_pem(cert);
    g_autofree char *key_pem = cm_key_private_pem(key, &err);
    g_autofree char *env_path = NULL;
    g_autofree char *cert_path = NULL;
    g_autofree char *key_path = NULL;
    g_autofree char *out_path = NULL;
    g_autofree char *out = NULL;
    g_autofree char *errout = NULL;
    g_autofree char *plain = NULL;
    gsize plain_len = 0;
    int rc;

    cm_assert_no_error(err);
    env_path = cm_test_write(dir, "env.der", g_bytes_get_data(env, NULL), g_bytes_get_size(env));
    cert_path = cm_test_write(dir, "cert.pem", cert_pem, strlen(cert_pem));
    key_path = cm_test_write(dir, "key.pem", key_pem, strlen(key_pem));
    out_path = g_build_filename(dir, "out.bin", NULL);
    {
        const char *argv[] = {cm_test_openssl(),
                              "cms",
                              "-decrypt",
                              "-inform",
                              "DER",
                              "-in",
                              env_path,
                              "-recip",
                              cert_path,
                              "-inkey",
                              key_path,
                              "-binary",
                              "-out",
                              out_path,
                              NULL};
        rc = cm_test_run(argv, &out, &errout);
        ck_assert_msg(rc == 0, "openssl cms -decrypt failed (%d): %s%s", rc, out, errout);
    }
    ck_assert(g_file_get_contents(out_path, &plain, &plain_len, NULL));
    ck_assert_uint_eq(plain_len, strlen(INVENTORY));
    ck_assert_mem_eq(plain, INVENTORY, plain_len);
    cm_test_rmdir(dir);
}
END_TEST

/* And an envelope `openssl cms -encrypt` made opens here, with the cipher
 * named. REQ: MSG-02 */
START_TEST(test_openssl_encrypts)
{
    static const char *const opts[] = {"-aes-256-gcm", "-des3", "-aes256"};
    static const CmCipher expect[] = {CM_CIPHER_AES256_GCM, CM_CIPHER_3DES_CBC,
                                      CM_CIPHER_AES256_CBC};
    GError *err = NULL;
    gboolean rsa = _i % 2 == 1;
    const CmCert *cert = rsa ? rsa_cert : ec_cert;
    const CmKey *key = rsa ? rsa_key : ec_key;
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *cert_pem = cm_cert_to_pem(cert);
    g_autofree char *msg_path = NULL;
    g_autofree char *cert_path = NULL;
    g_autofree char *env_path = NULL;
    g_autofree char *errout = NULL;
    g_autofree char *env = NULL;
    g_autoptr(GBytes) plain = NULL;
    gsize env_len = 0;
    CmCipher used;
    int rc;

    msg_path = cm_test_write(dir, "msg.txt", INVENTORY, strlen(INVENTORY));
    cert_path = cm_test_write(dir, "cert.pem", cert_pem, strlen(cert_pem));
    env_path = g_build_filename(dir, "env.der", NULL);
    {
        const char *argv[] = {
            cm_test_openssl(), "cms", "-encrypt", "-binary", opts[_i / 2], "-in", msg_path,
            "-outform",        "DER", "-out",     env_path,  cert_path,    NULL};
        rc = cm_test_run(argv, NULL, &errout);
        ck_assert_msg(rc == 0, "openssl cms -encrypt failed (%d): %s", rc, errout);
    }
    ck_assert(g_file_get_contents(env_path, &env, &env_len, NULL));
    plain = cm_cms_decrypt(cert, key, (const guint8 *)env, env_len, MAX_PLAIN, &used, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(plain), strlen(INVENTORY));
    ck_assert_mem_eq(g_bytes_get_data(plain, NULL), INVENTORY, strlen(INVENTORY));
    ck_assert_int_eq(used, expect[_i / 2]);
    cm_test_rmdir(dir);
}
END_TEST

static Suite *
cms_suite(void)
{
    Suite *s = suite_create("cms");
    TCase *tc;

    tc = tcase_create("cms");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_test(tc, test_cipher_names);
    tcase_add_loop_test(tc, test_round_trip, 0, 2 * G_N_ELEMENTS(ciphers));
    tcase_add_loop_test(tc, test_sizes, 0, G_N_ELEMENTS(ciphers));
    tcase_add_test(tc, test_empty_null);
    tcase_add_test(tc, test_randomized);
    tcase_add_loop_test(tc, test_wrong_recipient, 0, 2 * G_N_ELEMENTS(ciphers));
    tcase_add_loop_test(tc, test_gcm_tampered, 0, 2);
    tcase_add_loop_test(tc, test_max_plain, 0, G_N_ELEMENTS(ciphers));
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_garbage);
    tcase_add_test(tc, test_not_an_envelope);
    suite_add_tcase(s, tc);

    tc = tcase_create("openssl");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_loop_test(tc, test_openssl_decrypts, 0, 6);
    tcase_add_loop_test(tc, test_openssl_encrypts, 0, 6);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(cms_suite());
}
