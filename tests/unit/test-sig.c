/* test-sig.c - detached message signatures and the hash policy, with
 * cross-checks against `openssl dgst`. */
#include "testutil.h"

#include <string.h>

#include <openssl/ec.h>

static const char MSG[] = "<Report><ReportHeader><Identification><Machine><ClientInstalled>1"
                          "</ClientInstalled></Machine></Identification></ReportHeader></Report>";

static CmKey *ec_key;
static CmKey *ec_key2;
static CmKey *rsa_key;

static void
keys_setup(void)
{
    GError *err = NULL;

    ec_key = cm_key_generate(CM_KEY_EC_P256, &err);
    ec_key2 = cm_key_generate(CM_KEY_EC_P256, &err);
    rsa_key = cm_key_generate(CM_KEY_RSA_2048, &err);
    g_assert_no_error(err);
}

static void
keys_teardown(void)
{
    g_clear_pointer(&ec_key, cm_key_unref);
    g_clear_pointer(&ec_key2, cm_key_unref);
    g_clear_pointer(&rsa_key, cm_key_unref);
}

/* Loop index -> (key, hash): EC/SHA-256, EC/SHA-1, RSA/SHA-256, RSA/SHA-1. */
static CmKey *
key_of(int i)
{
    return i < 2 ? ec_key : rsa_key;
}

static CmHashAlg
hash_of(int i)
{
    return i % 2 == 0 ? CM_HASH_SHA256 : CM_HASH_SHA1;
}

static CmKey *
public_half(const CmKey *key)
{
    GError *err = NULL;
    g_autofree char *pem = cm_key_public_pem(key);
    CmKey *pub = cm_key_public_from_pem(pem, strlen(pem), &err);

    cm_assert_no_error(err);
    return pub;
}

/* ------------------------------------------------------------- hashes */

START_TEST(test_hash)
{
    GError *err = NULL;
    guint8 out[32];
    g_autofree char *hex = NULL;
    CmHashAlg alg;

    ck_assert_uint_eq(cm_hash(CM_HASH_SHA256, "abc", 3, out), 32);
    hex = cm_enc_hex(out, 32);
    ck_assert_str_eq(hex, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
    g_free(hex);
    ck_assert_uint_eq(cm_hash(CM_HASH_SHA1, "abc", 3, out), 20);
    hex = cm_enc_hex(out, 20);
    ck_assert_str_eq(hex, "A9993E364706816ABA3E25717850C26C9CD0D89D");
    g_free(hex);
    ck_assert_uint_eq(cm_hash(CM_HASH_SHA256, "", 0, out), 32);
    hex = cm_enc_hex(out, 32);
    ck_assert_str_eq(hex, "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");

    ck_assert_str_eq(cm_hash_alg_name(CM_HASH_SHA256), "sha256");
    ck_assert_str_eq(cm_hash_alg_name(CM_HASH_SHA1), "sha1");
    ck_assert(cm_hash_alg_parse("SHA-256", &alg, &err));
    ck_assert_int_eq(alg, CM_HASH_SHA256);
    ck_assert(cm_hash_alg_parse("sha1", &alg, &err));
    ck_assert_int_eq(alg, CM_HASH_SHA1);
    cm_assert_no_error(err);
    ck_assert(!cm_hash_alg_parse("md5", &alg, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert(!cm_hash_alg_parse(NULL, &alg, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* REQ: MSG-01 */
START_TEST(test_hash_alg_allowed)
{
    GError *err = NULL;

    /* A site that requires SHA-256 refuses SHA-1 signers, and says why. */
    ck_assert(!cm_hash_alg_allowed(CM_HASH_SHA1, TRUE, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err->message, "SHA-256"));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    /* Otherwise SHA-1 is allowed, and SHA-256 always. */
    ck_assert(cm_hash_alg_allowed(CM_HASH_SHA1, FALSE, &err));
    cm_assert_no_error(err);
    ck_assert(cm_hash_alg_allowed(CM_HASH_SHA256, TRUE, &err));
    cm_assert_no_error(err);
    ck_assert(cm_hash_alg_allowed(CM_HASH_SHA256, FALSE, &err));
    cm_assert_no_error(err);
}
END_TEST

/* --------------------------------------------------------- signatures */

/* REQ: MSG-01 */
START_TEST(test_sign_verify)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    CmHashAlg hash = hash_of(_i);
    g_autoptr(CmKey) pub = public_half(key);
    g_autoptr(GBytes) sig = cm_sig_sign(key, hash, MSG, strlen(MSG), &err);
    gsize len;
    const guint8 *p;

    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(sig);
    p = g_bytes_get_data(sig, &len);
    ck_assert_uint_le(len, CM_SIG_MAX);
    if (key == rsa_key) {
        ck_assert_uint_eq(len, 256);
    } else {
        /* ECDSA: a DER Ecdsa-Sig-Value, as `openssl dgst` writes it. */
        const unsigned char *q = p;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)len);
        ck_assert_ptr_nonnull(es);
        ck_assert_ptr_eq(q, p + len);
        ECDSA_SIG_free(es);
    }
    /* With the public half a receiver holds, and with the signer's key. */
    ck_assert(cm_sig_verify(pub, hash, MSG, strlen(MSG), p, len, &err));
    cm_assert_no_error(err);
    ck_assert(cm_sig_verify(key, hash, MSG, strlen(MSG), p, len, &err));
    cm_assert_no_error(err);
    /* The other hash does not verify it. */
    ck_assert(!cm_sig_verify(pub, hash == CM_HASH_SHA1 ? CM_HASH_SHA256 : CM_HASH_SHA1, MSG,
                             strlen(MSG), p, len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
}
END_TEST

/* REQ: MSG-01 */
START_TEST(test_tampered)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    CmHashAlg hash = hash_of(_i);
    g_autoptr(CmKey) pub = public_half(key);
    g_autoptr(GBytes) sig = cm_sig_sign(key, hash, MSG, strlen(MSG), &err);
    g_autofree char *msg = g_strdup(MSG);
    gsize len;
    g_autofree guint8 *bad = NULL;

    cm_assert_no_error(err);
    bad = g_memdup2(g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
    len = g_bytes_get_size(sig);

    /* One byte of the message changed. */
    msg[30] ^= 0x01;
    ck_assert(!cm_sig_verify(pub, hash, msg, strlen(msg), bad, len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* One byte more or less. */
    ck_assert(!cm_sig_verify(pub, hash, MSG, strlen(MSG) - 1, bad, len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* One bit of the signature, anywhere in it. */
    for (gsize at = 0; at < len; at += len / 7 + 1) {
        bad[at] ^= 0x10;
        ck_assert(!cm_sig_verify(pub, hash, MSG, strlen(MSG), bad, len, &err));
        cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
        bad[at] ^= 0x10;
    }
    bad[len - 1] ^= 0x01;
    ck_assert(!cm_sig_verify(pub, hash, MSG, strlen(MSG), bad, len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    bad[len - 1] ^= 0x01;
    /* Truncated. */
    ck_assert(!cm_sig_verify(pub, hash, MSG, strlen(MSG), bad, len - 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* Restored, it verifies again (the refusals left no state behind). */
    ck_assert(cm_sig_verify(pub, hash, MSG, strlen(MSG), bad, len, &err));
    cm_assert_no_error(err);
}
END_TEST

/* REQ: MSG-01 */
START_TEST(test_wrong_key)
{
    GError *err = NULL;
    g_autoptr(GBytes) ec_sig = cm_sig_sign(ec_key, CM_HASH_SHA256, MSG, strlen(MSG), &err);
    g_autoptr(GBytes) rsa_sig = cm_sig_sign(rsa_key, CM_HASH_SHA256, MSG, strlen(MSG), &err);
    g_autoptr(CmKey) other = public_half(ec_key2);

    cm_assert_no_error(err);
    ck_assert(!cm_sig_verify(other, CM_HASH_SHA256, MSG, strlen(MSG),
                             g_bytes_get_data(ec_sig, NULL), g_bytes_get_size(ec_sig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* A signature of the other algorithm. */
    ck_assert(!cm_sig_verify(rsa_key, CM_HASH_SHA256, MSG, strlen(MSG),
                             g_bytes_get_data(ec_sig, NULL), g_bytes_get_size(ec_sig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_sig_verify(ec_key, CM_HASH_SHA256, MSG, strlen(MSG),
                             g_bytes_get_data(rsa_sig, NULL), g_bytes_get_size(rsa_sig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
}
END_TEST

START_TEST(test_signature_size)
{
    GError *err = NULL;
    guint8 big[CM_SIG_MAX + 1];
    g_autoptr(GBytes) sig = cm_sig_sign(rsa_key, CM_HASH_SHA256, MSG, strlen(MSG), &err);

    cm_assert_no_error(err);
    memset(big, 0x30, sizeof big);
    memcpy(big, g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
    ck_assert(!cm_sig_verify(rsa_key, CM_HASH_SHA256, MSG, strlen(MSG), big, sizeof big, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_sig_verify(ec_key, CM_HASH_SHA256, MSG, strlen(MSG), big, 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_sig_verify(ec_key, CM_HASH_SHA256, MSG, strlen(MSG), NULL, 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* Exactly CM_SIG_MAX is looked at, and refused as not verifying. */
    ck_assert(!cm_sig_verify(ec_key, CM_HASH_SHA256, MSG, strlen(MSG), big, CM_SIG_MAX, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_sig_verify(rsa_key, CM_HASH_SHA256, MSG, strlen(MSG), big, CM_SIG_MAX, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
}
END_TEST

START_TEST(test_public_key_cannot_sign)
{
    GError *err = NULL;
    g_autoptr(CmKey) pub = public_half(key_of(_i * 2));

    ck_assert_ptr_null(cm_sig_sign(pub, CM_HASH_SHA256, MSG, strlen(MSG), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_sig_sign(pub, CM_HASH_SHA1, MSG, strlen(MSG), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* Keys of a key storage provider sign, though they never export.
 * REQ: TRUST-11 */
START_TEST(test_ksp_key_signs)
{
    static const guint8 secret[32] = {1, 2, 3};
    GError *err = NULL;
    g_autoptr(CmKsp) ksp = cm_ksp_new(2, secret);
    g_autoptr(CmKey) key = cm_ksp_generate(ksp, CM_KEY_EC_P256, &err);
    g_autoptr(CmKey) pub = NULL;
    g_autoptr(GBytes) sig = NULL;

    cm_assert_no_error(err);
    pub = public_half(key);
    sig = cm_sig_sign(key, CM_HASH_SHA256, MSG, strlen(MSG), &err);
    cm_assert_no_error(err);
    ck_assert(cm_sig_verify(pub, CM_HASH_SHA256, MSG, strlen(MSG), g_bytes_get_data(sig, NULL),
                            g_bytes_get_size(sig), &err));
    cm_assert_no_error(err);
}
END_TEST

START_TEST(test_empty_and_large_messages)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    g_autoptr(GBytes) empty_sig = cm_sig_sign(key, CM_HASH_SHA256, "", 0, &err);
    gsize big_len = 1024 * 1024;
    g_autofree guint8 *big = g_malloc(big_len);
    g_autoptr(GBytes) big_sig = NULL;

    cm_assert_no_error(err);
    ck_assert(cm_sig_verify(key, CM_HASH_SHA256, "", 0, g_bytes_get_data(empty_sig, NULL),
                            g_bytes_get_size(empty_sig), &err));
    cm_assert_no_error(err);
    ck_assert(!cm_sig_verify(key, CM_HASH_SHA256, "x", 1, g_bytes_get_data(empty_sig, NULL),
                             g_bytes_get_size(empty_sig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    for (gsize i = 0; i < big_len; i++)
        big[i] = (guint8)(i * 31);
    big_sig = cm_sig_sign(key, CM_HASH_SHA256, big, big_len, &err);
    cm_assert_no_error(err);
    ck_assert(cm_sig_verify(key, CM_HASH_SHA256, big, big_len, g_bytes_get_data(big_sig, NULL),
                            g_bytes_get_size(big_sig), &err));
    cm_assert_no_error(err);
    big[big_len / 2] ^= 1;
    ck_assert(!cm_sig_verify(key, CM_HASH_SHA256, big, big_len, g_bytes_get_data(big_sig, NULL),
                             g_bytes_get_size(big_sig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
}
END_TEST

/* One key shared by threads that sign and verify with both hashes at once:
 * the prepared contexts a key keeps must never be used by two at a time. */
typedef struct {
    CmKey *key;
    CmKey *pub;
    int rounds;
    gint *failures;
} SharedKeyJob;

static gpointer
shared_key_worker(gpointer data)
{
    SharedKeyJob *job = data;

    for (int i = 0; i < job->rounds; i++) {
        GError *err = NULL;
        CmHashAlg hash = (i % 2) ? CM_HASH_SHA1 : CM_HASH_SHA256;
        char msg[64];
        GBytes *sig;
        int n = g_snprintf(msg, sizeof msg, "message %d from %p", i, (void *)g_thread_self());

        sig = cm_sig_sign(job->key, hash, msg, (size_t)n, &err);
        if (sig == NULL ||
            !cm_sig_verify(job->pub, hash, msg, (size_t)n, g_bytes_get_data(sig, NULL),
                           g_bytes_get_size(sig), &err) ||
            cm_sig_verify(job->key, hash, msg, (size_t)n - 1, g_bytes_get_data(sig, NULL),
                          g_bytes_get_size(sig), NULL))
            g_atomic_int_inc(job->failures);
        g_clear_error(&err);
        if (sig != NULL)
            g_bytes_unref(sig);
    }
    return NULL;
}

START_TEST(test_shared_key_threads)
{
    gint failures = 0;
    g_autoptr(CmKey) pub = public_half(key_of(_i * 2));
    SharedKeyJob job = {key_of(_i * 2), pub, _i == 0 ? 200 : 40, &failures};
    GThread *threads[4];

    for (size_t t = 0; t < G_N_ELEMENTS(threads); t++)
        threads[t] = g_thread_new("signer", shared_key_worker, &job);
    for (size_t t = 0; t < G_N_ELEMENTS(threads); t++)
        g_thread_join(threads[t]);
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---------------------------------------------- openssl cross-checks */

/* A signature cmlab made verifies with `openssl dgst -verify`, and a
 * tampered message fails there too. REQ: MSG-01 */
START_TEST(test_openssl_dgst_verify)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    CmHashAlg hash = hash_of(_i);
    const char *dgst_opt = hash == CM_HASH_SHA1 ? "-sha1" : "-sha256";
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *pem = cm_key_public_pem(key);
    g_autoptr(GBytes) sig = cm_sig_sign(key, hash, MSG, strlen(MSG), &err);
    g_autofree char *pub_path = NULL;
    g_autofree char *sig_path = NULL;
    g_autofree char *msg_path = NULL;
    g_autofree char *bad_path = NULL;
    g_autofree char *bad = g_strdup(MSG);
    g_autofree char *out = NULL;
    g_autofree char *errout = NULL;
    int rc;

    cm_assert_no_error(err);
    pub_path = cm_test_write(dir, "pub.pem", pem, strlen(pem));
    sig_path = cm_test_write(dir, "sig.bin", g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
    msg_path = cm_test_write(dir, "msg.bin", MSG, strlen(MSG));
    bad[0] = '[';
    bad_path = cm_test_write(dir, "bad.bin", bad, strlen(bad));
    {
        const char *argv[] = {cm_test_openssl(), "dgst",   dgst_opt, "-verify", pub_path,
                              "-signature",      sig_path, msg_path, NULL};
        rc = cm_test_run(argv, &out, &errout);
        ck_assert_msg(rc == 0, "openssl dgst -verify failed (%d): %s%s", rc, out, errout);
        ck_assert_ptr_nonnull(strstr(out, "Verified OK"));
    }
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&errout, g_free);
    {
        const char *argv[] = {cm_test_openssl(), "dgst",   dgst_opt, "-verify", pub_path,
                              "-signature",      sig_path, bad_path, NULL};
        rc = cm_test_run(argv, &out, &errout);
        ck_assert_msg(rc != 0, "openssl dgst -verify accepted a tampered message: %s", out);
    }
    cm_test_rmdir(dir);
}
END_TEST

/* And the other way: `openssl dgst -sign` output verifies here. */
START_TEST(test_openssl_dgst_sign)
{
    GError *err = NULL;
    CmKey *key = key_of(_i);
    CmHashAlg hash = hash_of(_i);
    const char *dgst_opt = hash == CM_HASH_SHA1 ? "-sha1" : "-sha256";
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *pem = cm_key_private_pem(key, &err);
    g_autofree char *key_path = NULL;
    g_autofree char *sig_path = NULL;
    g_autofree char *msg_path = NULL;
    g_autofree char *sig = NULL;
    gsize sig_len = 0;
    int rc;

    cm_assert_no_error(err);
    key_path = cm_test_write(dir, "key.pem", pem, strlen(pem));
    msg_path = cm_test_write(dir, "msg.bin", MSG, strlen(MSG));
    sig_path = g_build_filename(dir, "sig.bin", NULL);
    {
        const char *argv[] = {cm_test_openssl(), "dgst",   dgst_opt, "-sign", key_path, "-out",
                              sig_path,          msg_path, NULL};
        rc = cm_test_run(argv, NULL, NULL);
        ck_assert_int_eq(rc, 0);
    }
    ck_assert(g_file_get_contents(sig_path, &sig, &sig_len, NULL));
    ck_assert(cm_sig_verify(key, hash, MSG, strlen(MSG), (const guint8 *)sig, sig_len, &err));
    cm_assert_no_error(err);
    cm_test_rmdir(dir);
}
END_TEST

static Suite *
sig_suite(void)
{
    Suite *s = suite_create("sig");
    TCase *tc;

    tc = tcase_create("hash");
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_hash_alg_allowed);
    suite_add_tcase(s, tc);

    tc = tcase_create("sig");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_loop_test(tc, test_sign_verify, 0, 4);
    tcase_add_loop_test(tc, test_tampered, 0, 4);
    tcase_add_test(tc, test_wrong_key);
    tcase_add_test(tc, test_signature_size);
    tcase_add_loop_test(tc, test_public_key_cannot_sign, 0, 2);
    tcase_add_test(tc, test_ksp_key_signs);
    tcase_add_loop_test(tc, test_empty_and_large_messages, 0, 4);
    tcase_add_loop_test(tc, test_shared_key_threads, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("openssl");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_loop_test(tc, test_openssl_dgst_verify, 0, 4);
    tcase_add_loop_test(tc, test_openssl_dgst_sign, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(sig_suite());
}
