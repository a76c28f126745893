/* test-model.c - the cost-model crypto stand-in (proto/model.c): cheap, but
 * who holds which key stays exact, so every refusal real crypto makes is
 * made here too. */
#include "testutil.h"

#include <string.h>

#define NOW CM_TEST_NOW
#define DAY CM_USEC_PER_DAY

static const char MSG[] = "{\"PolicyAssignments\":[{\"id\":\"baseline\"}]}";

static CmKey *
model_key(void)
{
    GError *err = NULL;
    CmKey *k;

    cm_crypto_model_set(TRUE);
    k = cm_key_generate(CM_KEY_EC_P256, &err);
    cm_crypto_model_set(FALSE);
    cm_assert_no_error(err);
    return k;
}

static CmCert *
issue(CmCertProfile profile, const char *cn, const CmKey *subject, const CmKey *issuer_key,
      const CmCert *issuer_cert, guint64 serial)
{
    GError *err = NULL;
    CmCertSpec spec = {.profile = profile,
                       .subject_cn = cn,
                       .serial = serial,
                       .not_before = NOW - DAY,
                       .not_after = NOW + 30 * DAY,
                       .subject_key = subject,
                       .issuer_key = issuer_key,
                       .issuer_cert = issuer_cert};
    CmCert *c = cm_cert_issue(&spec, &err);

    cm_assert_no_error(err);
    return c;
}

/* A signature verifies with the signer's public key only, and not once the
 * message or the signature changes. REQ: MSG-01, TRUST-08 */
START_TEST(test_sign_verify)
{
    g_autoptr(CmKey) a = model_key();
    g_autoptr(CmKey) b = model_key();
    g_autoptr(GBytes) der = cm_key_public_der(a);
    g_autoptr(CmKey) a_pub = cm_key_public_from_der(g_bytes_get_data(der, NULL),
                                                    g_bytes_get_size(der), NULL);
    g_autoptr(GBytes) sig = NULL;
    GError *err = NULL;
    guint8 bad[64];
    gsize n;
    char tampered[sizeof MSG];

    ck_assert(cm_key_has_private(a));
    ck_assert(a_pub != NULL && !cm_key_has_private(a_pub));
    ck_assert(cm_key_public_equal(a, a_pub));
    ck_assert(!cm_key_public_equal(a, b));
    ck_assert(memcmp(cm_key_id(a), cm_key_id(a_pub), 32) == 0);
    sig = cm_sig_sign(a, CM_HASH_SHA256, MSG, strlen(MSG), &err);
    cm_assert_no_error(err);
    ck_assert(cm_sig_verify(a_pub, CM_HASH_SHA256, MSG, strlen(MSG), g_bytes_get_data(sig, &n),
                            g_bytes_get_size(sig), &err));
    cm_assert_no_error(err);
    /* signed by another key */
    ck_assert(!cm_sig_verify(b, CM_HASH_SHA256, MSG, strlen(MSG), g_bytes_get_data(sig, NULL),
                             n, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* message altered */
    memcpy(tampered, MSG, sizeof MSG);
    tampered[5] ^= 1;
    ck_assert(!cm_sig_verify(a_pub, CM_HASH_SHA256, tampered, strlen(tampered),
                             g_bytes_get_data(sig, NULL), n, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* signature altered, or checked under another hash */
    memcpy(bad, g_bytes_get_data(sig, NULL), n);
    bad[n - 1] ^= 0x80;
    ck_assert(!cm_sig_verify(a_pub, CM_HASH_SHA256, MSG, strlen(MSG), bad, n, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_sig_verify(a_pub, CM_HASH_SHA1, MSG, strlen(MSG), g_bytes_get_data(sig, NULL),
                             n, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* a public key cannot sign */
    ck_assert(cm_sig_sign(a_pub, CM_HASH_SHA256, MSG, strlen(MSG), &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* Model and real objects never verify each other. REQ: TRUST-08 */
START_TEST(test_no_mixing)
{
    g_autoptr(CmKey) m = model_key();
    g_autoptr(CmKey) r = cm_key_generate(CM_KEY_EC_P256, NULL);
    g_autoptr(GBytes) msig = cm_sig_sign(m, CM_HASH_SHA256, MSG, strlen(MSG), NULL);
    g_autoptr(GBytes) rsig = cm_sig_sign(r, CM_HASH_SHA256, MSG, strlen(MSG), NULL);
    GError *err = NULL;

    ck_assert(!cm_crypto_model());
    ck_assert(msig != NULL && rsig != NULL);
    ck_assert(!cm_sig_verify(r, CM_HASH_SHA256, MSG, strlen(MSG), g_bytes_get_data(msig, NULL),
                             g_bytes_get_size(msig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_sig_verify(m, CM_HASH_SHA256, MSG, strlen(MSG), g_bytes_get_data(rsig, NULL),
                             g_bytes_get_size(rsig), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(!cm_key_public_equal(m, r));
}
END_TEST

/* A certificate checks against the key that issued it and no other; its
 * encoding round-trips through DER and PEM; a self-signed one is found
 * self-signed. REQ: TRUST-02, TRUST-03 */
START_TEST(test_cert_signed_by)
{
    g_autoptr(CmKey) trk = model_key();
    g_autoptr(CmKey) rogue = model_key();
    g_autoptr(CmKey) mpk = model_key();
    g_autoptr(CmCert) mp = NULL, forged = NULL, back = NULL, self = NULL;
    g_autoptr(GBytes) der = NULL;
    g_autofree char *pem = NULL;
    GError *err = NULL;
    CmCertSpec spec = {.profile = CM_CERT_MP,
                       .subject_cn = "mp1.corp.example",
                       .serial = 7,
                       .not_before = NOW - DAY,
                       .not_after = NOW + DAY,
                       .subject_key = mpk,
                       .issuer_key = trk,
                       .issuer_cn = "Site Server Signing"};
    guint8 *bytes;
    gsize n;

    mp = cm_cert_issue(&spec, &err);
    cm_assert_no_error(err);
    ck_assert(cm_cert_check_signed_by(mp, trk, NOW, &err));
    cm_assert_no_error(err);
    ck_assert(!cm_cert_check_signed_by(mp, rogue, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    ck_assert(!cm_cert_check_signed_by(mp, trk, NOW + 2 * DAY, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    ck_assert(!cm_cert_is_self_signed(mp));
    /* the same certificate made by a rogue key does not pass for the TRK's */
    spec.issuer_key = rogue;
    forged = cm_cert_issue(&spec, &err);
    cm_assert_no_error(err);
    ck_assert(!cm_cert_check_signed_by(forged, trk, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* DER and PEM round trips; one altered byte breaks the signature */
    der = cm_cert_to_der(mp);
    back = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &err);
    cm_assert_no_error(err);
    ck_assert_str_eq(cm_cert_subject_cn(back), "mp1.corp.example");
    ck_assert_uint_eq(cm_cert_serial(back), 7);
    ck_assert(memcmp(cm_cert_thumbprint(back), cm_cert_thumbprint(mp), 32) == 0);
    ck_assert(cm_key_public_equal(cm_cert_public_key(back), mpk));
    pem = cm_cert_to_pem(mp);
    g_clear_pointer(&back, cm_cert_unref);
    back = cm_cert_from_pem(pem, strlen(pem), &err);
    cm_assert_no_error(err);
    ck_assert(cm_cert_check_signed_by(back, trk, NOW, &err));
    g_clear_pointer(&back, cm_cert_unref);
    n = g_bytes_get_size(der);
    bytes = g_memdup2(g_bytes_get_data(der, NULL), n);
    bytes[12] ^= 1; /* in the serial */
    back = cm_cert_from_der(bytes, n, &err);
    cm_assert_no_error(err);
    ck_assert(!cm_cert_check_signed_by(back, trk, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    g_free(bytes);
    /* truncated */
    ck_assert(cm_cert_from_der(g_bytes_get_data(der, NULL), n - 1, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    self = issue(CM_CERT_SITE_SIGNING, "Site Server Signing", trk, NULL, NULL, 1);
    ck_assert(cm_cert_is_self_signed(self));
    ck_assert(cm_cert_is_self_issued(self));
}
END_TEST

/* A certificate with every field parses back to the same names and the
 * same bytes, whatever it is parsed from (a copy freed at once, its own
 * DER kept after the certificate is gone); every shorter prefix of it and
 * a trailing byte are refused.  REQ: TRUST-02, TRUST-03 */
START_TEST(test_cert_parse_fields)
{
    g_autoptr(CmKey) ca = model_key();
    g_autoptr(CmKey) leaf = model_key();
    g_autoptr(CmCert) ca_cert = NULL, cert = NULL, back = NULL, self = NULL;
    g_autoptr(GBytes) der = NULL, again = NULL;
    const char *const dns[] = {"mp1.corp.example", "mp1", NULL};
    GError *err = NULL;
    CmCertSpec spec = {.profile = CM_CERT_ROOT_CA,
                       .subject_cn = "Corp CA",
                       .subject_o = "Corp",
                       .serial = 1,
                       .not_before = NOW - DAY,
                       .not_after = NOW + DAY,
                       .subject_key = ca};
    guint8 *copy;
    gsize n;

    ca_cert = cm_cert_issue(&spec, &err);
    cm_assert_no_error(err);
    spec = (CmCertSpec){.profile = CM_CERT_MP,
                        .subject_cn = "mp1.corp.example",
                        .subject_o = "Corp MPs",
                        .dns_names = dns,
                        .crl_url = "http://pki.corp.example/corp.crl",
                        .serial = 2,
                        .not_before = NOW - DAY,
                        .not_after = NOW + DAY,
                        .subject_key = leaf,
                        .issuer_key = ca,
                        .issuer_cert = ca_cert};
    cert = cm_cert_issue(&spec, &err);
    cm_assert_no_error(err);
    der = cm_cert_to_der(cert);
    n = g_bytes_get_size(der);
    copy = g_memdup2(g_bytes_get_data(der, NULL), n);
    back = cm_cert_from_der(copy, n, &err);
    cm_assert_no_error(err);
    memset(copy, 0, n);
    g_free(copy);
    ck_assert_ptr_ne(back, cert); /* the parse cache is off: a parse of its own */
    ck_assert_str_eq(cm_cert_subject_cn(back), "mp1.corp.example");
    ck_assert_uint_eq(cm_cert_serial(back), 2);
    ck_assert(!cm_cert_is_self_issued(back));
    ck_assert(cm_cert_check_signed_by(back, ca, NOW, &err));
    cm_assert_no_error(err);
    again = cm_cert_to_der(back);
    ck_assert(g_bytes_equal(again, der));
    g_clear_pointer(&again, g_bytes_unref);
    g_clear_pointer(&back, cm_cert_unref);
    g_clear_pointer(&cert, cm_cert_unref);
    ck_assert_int_eq(memcmp(g_bytes_get_data(der, NULL), "CMMC", 4), 0);
    for (gsize len = 0; len < n; len++) {
        ck_assert(cm_cert_from_der(g_bytes_get_data(der, NULL), len, &err) == NULL);
        cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    }
    copy = g_malloc(n + 1);
    memcpy(copy, g_bytes_get_data(der, NULL), n);
    copy[n] = 0;
    ck_assert(cm_cert_from_der(copy, n + 1, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    g_free(copy);
    /* Self-issued: the subject's name and organisation are the issuer's. */
    ck_assert(cm_cert_is_self_issued(ca_cert));
    spec = (CmCertSpec){.profile = CM_CERT_CLIENT_SELF_SIGNED,
                        .subject_cn = "GUID:1",
                        .serial = 3,
                        .not_before = NOW - DAY,
                        .not_after = NOW + DAY,
                        .subject_key = leaf};
    self = cm_cert_issue(&spec, &err);
    cm_assert_no_error(err);
    ck_assert(cm_cert_is_self_issued(self));
    ck_assert(cm_cert_is_self_signed(self));
}
END_TEST

/* Chains: a client certificate from the enterprise CA verifies; one from a
 * CA the store does not hold does not; a revoked one is refused with CRL
 * checking on, and without the CRL at all; purposes are kept.
 * REQ: TRUST-14, REG-03 */
START_TEST(test_chain_and_crl)
{
    g_autoptr(CmKey) ca_key = model_key();
    g_autoptr(CmKey) other_key = model_key();
    g_autoptr(CmKey) ck = model_key();
    g_autoptr(CmCert) ca = issue(CM_CERT_ROOT_CA, "Enterprise CA", ca_key, NULL, NULL, 1);
    g_autoptr(CmCert) other = issue(CM_CERT_ROOT_CA, "Enterprise CA", other_key, NULL, NULL, 1);
    g_autoptr(CmCert) client = issue(CM_CERT_CLIENT_AUTH, "pc1", ck, ca_key, ca, 100);
    g_autoptr(CmCert) stranger = issue(CM_CERT_CLIENT_AUTH, "pc2", ck, other_key, other, 101);
    CmCrlEntry revoked = {.serial = 100, .revoked_at = NOW - DAY};
    g_autoptr(CmCrl) crl = NULL, empty = NULL, forged = NULL, back = NULL;
    g_autoptr(GBytes) der = NULL;
    CmTrust *trust = cm_trust_new();
    const CmCert *root = NULL;
    GError *err = NULL;

    ck_assert(cm_trust_add_root(trust, ca, &err));
    ck_assert(cm_trust_verify(trust, client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, &root, &err));
    cm_assert_no_error(err);
    ck_assert(root == ca);
    ck_assert(!cm_trust_verify(trust, client, NULL, NOW, CM_PURPOSE_SERVER_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    /* same issuer name, another key: untrusted */
    ck_assert(!cm_trust_verify(trust, stranger, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    ck_assert(!cm_trust_verify(trust, client, NULL, NOW + 60 * DAY, CM_PURPOSE_ANY, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    /* CRL checking on without a CRL: refused */
    cm_trust_set_crl_check(trust, TRUE);
    ck_assert(!cm_trust_verify(trust, client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* a CRL made by another key does not count */
    forged = cm_crl_issue(other, other_key, NULL, 0, 1, NOW - DAY, NOW + DAY, &err);
    cm_assert_no_error(err);
    ck_assert(!cm_crl_check(forged, ca, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    empty = cm_crl_issue(ca, ca_key, NULL, 0, 1, NOW - DAY, NOW + DAY, &err);
    cm_assert_no_error(err);
    ck_assert(cm_trust_add_crl(trust, empty, &err));
    ck_assert(cm_trust_verify(trust, client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    cm_trust_free(trust);

    crl = cm_crl_issue(ca, ca_key, &revoked, 1, 2, NOW - DAY, NOW + DAY, &err);
    cm_assert_no_error(err);
    der = cm_crl_to_der(crl);
    back = cm_crl_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &err);
    cm_assert_no_error(err);
    ck_assert(cm_crl_check(back, ca, NOW, &err));
    ck_assert(cm_crl_lists(back, client));
    ck_assert(!cm_crl_lists(back, stranger) || cm_cert_serial(stranger) == 100);
    ck_assert_uint_eq(cm_crl_count(back), 1);
    trust = cm_trust_new();
    ck_assert(cm_trust_add_root(trust, ca, &err));
    ck_assert(cm_trust_add_crl(trust, back, &err));
    cm_trust_set_crl_check(trust, TRUE);
    ck_assert(!cm_trust_verify(trust, client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REVOKED);
    cm_trust_set_crl_check(trust, FALSE);
    ck_assert(cm_trust_verify(trust, client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    cm_trust_free(trust);
}
END_TEST

/* An envelope opens with the recipient's private key only, and not once
 * altered. REQ: MSG-02 */
START_TEST(test_envelope)
{
    g_autoptr(CmKey) site = model_key();
    g_autoptr(CmKey) other = model_key();
    g_autoptr(CmCert) enc = issue(CM_CERT_ENCRYPTION, "Site Encryption", site, NULL, NULL, 2);
    g_autoptr(GBytes) env = NULL, plain = NULL;
    GError *err = NULL;
    CmCipher cipher = CM_CIPHER_AES256_CBC;
    guint8 *bytes;
    gsize n;

    env = cm_cms_encrypt(enc, CM_CIPHER_AES256_GCM, MSG, strlen(MSG), &err);
    cm_assert_no_error(err);
    plain = cm_cms_decrypt(enc, site, g_bytes_get_data(env, NULL), g_bytes_get_size(env), 4096,
                           &cipher, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(g_bytes_get_size(plain), strlen(MSG));
    ck_assert(memcmp(g_bytes_get_data(plain, NULL), MSG, strlen(MSG)) == 0);
    ck_assert_int_eq(cipher, CM_CIPHER_AES256_GCM);
    ck_assert(cm_cms_decrypt(enc, other, g_bytes_get_data(env, NULL), g_bytes_get_size(env), 4096,
                             NULL, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    n = g_bytes_get_size(env);
    bytes = g_memdup2(g_bytes_get_data(env, NULL), n);
    bytes[40] ^= 1; /* in the content */
    ck_assert(cm_cms_decrypt(enc, site, bytes, n, 4096, NULL, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    g_free(bytes);
    ck_assert(cm_cms_decrypt(enc, site, g_bytes_get_data(env, NULL), g_bytes_get_size(env), 8,
                             NULL, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

/* A TPM-sealed model key opens on its own machine only; a private key
 * exports and imports as PEM; provider keys do not export. REQ: TRUST-11 */
START_TEST(test_sealing_and_pem)
{
    guint8 s1[32] = {1}, s2[32] = {2};
    CmKsp *mine = cm_ksp_new(2, s1), *theirs = cm_ksp_new(2, s2);
    g_autoptr(CmKey) k = NULL, back = NULL, pk = NULL, exp = model_key();
    g_autoptr(GBytes) blob = NULL;
    g_autofree char *pem = NULL, *pub = NULL;
    GError *err = NULL;

    cm_crypto_model_set(TRUE);
    k = cm_ksp_generate(mine, CM_KEY_EC_P256, &err);
    cm_crypto_model_set(FALSE);
    cm_assert_no_error(err);
    ck_assert(cm_key_private_pem(k, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_NOT_EXPORTABLE);
    blob = cm_ksp_seal(mine, k, &err);
    cm_assert_no_error(err);
    back = cm_ksp_unseal(mine, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(k, back));
    ck_assert(cm_ksp_unseal(theirs, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err) ==
              NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    pem = cm_key_private_pem(exp, &err);
    cm_assert_no_error(err);
    pk = cm_key_private_from_pem(pem, strlen(pem), &err);
    cm_assert_no_error(err);
    ck_assert(cm_key_public_equal(pk, exp));
    {
        g_autoptr(GBytes) sig = cm_sig_sign(pk, CM_HASH_SHA256, MSG, strlen(MSG), &err);
        ck_assert(cm_sig_verify(exp, CM_HASH_SHA256, MSG, strlen(MSG),
                                g_bytes_get_data(sig, NULL), g_bytes_get_size(sig), &err));
    }
    pub = cm_key_public_pem(exp);
    g_clear_pointer(&pk, cm_key_unref);
    pk = cm_key_public_from_pem(pub, strlen(pub), &err);
    cm_assert_no_error(err);
    ck_assert(!cm_key_has_private(pk) && cm_key_public_equal(pk, exp));
    cm_ksp_free(mine);
    cm_ksp_free(theirs);
}
END_TEST

/* Tokens signed with a model key verify with it and no other. REQ: CMG-02 */
START_TEST(test_jwt)
{
    g_autoptr(CmKey) a = model_key();
    g_autoptr(CmKey) b = model_key();
    json_t *claims = cm_jwt_claims_new("issuer", "aud", "sub", NOW, CM_USEC_PER_HOUR, NULL);
    CmJwtCheck check = {.issuer = "issuer", .audience = "aud", .now = NOW};
    g_autofree char *tok = cm_jwt_sign(a, NULL, claims, NULL);
    json_t *ok;
    GError *err = NULL;

    ck_assert(tok != NULL);
    ok = cm_jwt_verify(tok, a, &check, &err);
    cm_assert_no_error(err);
    ck_assert(ok != NULL);
    json_decref(ok);
    ck_assert(cm_jwt_verify(tok, b, &check, &err) == NULL);
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    json_decref(claims);
}
END_TEST

/* Counted as the real operations are, so a run's counts match. */
START_TEST(test_counted)
{
    g_autoptr(CmKey) a = model_key();
    g_autoptr(GBytes) sig = NULL;
    CmCryptoCounters before, after;

    cm_crypto_counters_get(&before);
    sig = cm_sig_sign(a, CM_HASH_SHA256, MSG, strlen(MSG), NULL);
    ck_assert(cm_sig_verify(a, CM_HASH_SHA256, MSG, strlen(MSG), g_bytes_get_data(sig, NULL),
                            g_bytes_get_size(sig), NULL));
    cm_crypto_counters_get(&after);
    ck_assert_uint_eq(after.sign - before.sign, 1);
    ck_assert_uint_eq(after.verify - before.verify, 1);
}
END_TEST

static Suite *
model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");

    tcase_add_test(tc, test_sign_verify);
    tcase_add_test(tc, test_no_mixing);
    tcase_add_test(tc, test_cert_signed_by);
    tcase_add_test(tc, test_cert_parse_fields);
    tcase_add_test(tc, test_chain_and_crl);
    tcase_add_test(tc, test_envelope);
    tcase_add_test(tc, test_sealing_and_pem);
    tcase_add_test(tc, test_jwt);
    tcase_add_test(tc, test_counted);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(model_suite());
}
