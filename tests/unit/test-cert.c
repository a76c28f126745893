/* test-cert.c - certificates (issue, parse, profiles), the trusted-root-key
 * check, chain verification, CRLs and certificate trust lists, with
 * cross-checks against `openssl verify`. */
#include "testutil.h"

#include <string.h>

#include <openssl/pem.h>
#include <openssl/ui.h>
#include <openssl/x509v3.h>

#define NOW CM_TEST_NOW
#define HOUR CM_USEC_PER_HOUR
#define DAY CM_USEC_PER_DAY

/* Keys generated once for the run: EC keys are cheap, the RSA one is not. */
static CmKey *root_key;
static CmKey *inter_key;
static CmKey *leaf_key;
static CmKey *other_key;
static CmKey *rsa_key;

static void
keys_setup(void)
{
    GError *err = NULL;

    root_key = cm_key_generate(CM_KEY_EC_P256, &err);
    inter_key = cm_key_generate(CM_KEY_EC_P256, &err);
    leaf_key = cm_key_generate(CM_KEY_EC_P256, &err);
    other_key = cm_key_generate(CM_KEY_EC_P256, &err);
    rsa_key = cm_key_generate(CM_KEY_RSA_2048, &err);
    g_assert_no_error(err);
}

static void
keys_teardown(void)
{
    g_clear_pointer(&root_key, cm_key_unref);
    g_clear_pointer(&inter_key, cm_key_unref);
    g_clear_pointer(&leaf_key, cm_key_unref);
    g_clear_pointer(&other_key, cm_key_unref);
    g_clear_pointer(&rsa_key, cm_key_unref);
}

/* ----------------------------------------------------------- helpers */

static CmCertSpec
spec_of(CmCertProfile profile, const char *cn, guint64 serial, CmTime nb, CmTime na,
        const CmKey *subject_key, const CmKey *issuer_key, const CmCert *issuer_cert)
{
    CmCertSpec spec = {0};

    spec.profile = profile;
    spec.subject_cn = cn;
    spec.serial = serial;
    spec.not_before = nb;
    spec.not_after = na;
    spec.subject_key = subject_key;
    spec.issuer_key = issuer_key;
    spec.issuer_cert = issuer_cert;
    spec.hash = CM_HASH_SHA256;
    return spec;
}

static CmCert *
issue_spec(const CmCertSpec *spec)
{
    GError *err = NULL;
    CmCert *cert = cm_cert_issue(spec, &err);

    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(cert);
    return cert;
}

static CmCert *
issue(CmCertProfile profile, const char *cn, guint64 serial, CmTime nb, CmTime na,
      const CmKey *subject_key, const CmKey *issuer_key, const CmCert *issuer_cert)
{
    CmCertSpec spec = spec_of(profile, cn, serial, nb, na, subject_key, issuer_key, issuer_cert);

    /* Signed by a bare key (the TRK): the issuer name to write. */
    if (issuer_key != NULL && issuer_cert == NULL)
        spec.issuer_cn = "Site Server Signing Certificate";
    return issue_spec(&spec);
}

/* A PKI around base: root -> intermediate -> client and server leaves. */
typedef struct {
    CmCert *root;
    CmCert *inter;
    CmCert *client;
    CmCert *server;
} Pki;

static void
pki_build(Pki *pki, CmTime base)
{
    static const char *const names[] = {"mp1.contoso.example", "mp1", NULL};
    CmCertSpec spec;

    pki->root = issue(CM_CERT_ROOT_CA, "Contoso Root CA", 1, base - 365 * DAY, base + 3650 * DAY,
                      root_key, NULL, NULL);
    pki->inter = issue(CM_CERT_INTERMEDIATE_CA, "Contoso Issuing CA", 2, base - 300 * DAY,
                       base + 1000 * DAY, inter_key, root_key, pki->root);
    pki->client = issue(CM_CERT_CLIENT_AUTH, "client1.contoso.example", 100, base - DAY,
                        base + 30 * DAY, leaf_key, inter_key, pki->inter);
    spec = spec_of(CM_CERT_SERVER, "mp1.contoso.example", 101, base - DAY, base + 30 * DAY,
                   leaf_key, inter_key, pki->inter);
    spec.dns_names = names;
    pki->server = issue_spec(&spec);
}

static void
pki_clear(Pki *pki)
{
    g_clear_pointer(&pki->root, cm_cert_unref);
    g_clear_pointer(&pki->inter, cm_cert_unref);
    g_clear_pointer(&pki->client, cm_cert_unref);
    g_clear_pointer(&pki->server, cm_cert_unref);
}

static CmCrl *
crl_issue(const CmCert *issuer, const CmKey *key, const guint64 *serials, size_t n, CmTime base,
          CmTime this_update, CmTime next_update)
{
    GError *err = NULL;
    CmCrlEntry entries[8];
    CmCrl *crl;

    ck_assert_uint_le(n, G_N_ELEMENTS(entries));
    for (size_t i = 0; i < n; i++) {
        entries[i].serial = serials[i];
        entries[i].revoked_at = base - 2 * HOUR;
    }
    crl = cm_crl_issue(issuer, key, entries, n, 1, this_update, next_update, &err);
    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(crl);
    return crl;
}

/* A trust store with the PKI's root and intermediate. */
static CmTrust *
trust_of(const Pki *pki)
{
    GError *err = NULL;
    CmTrust *trust = cm_trust_new();

    ck_assert(cm_trust_add_root(trust, pki->root, &err));
    cm_assert_no_error(err);
    ck_assert(cm_trust_add_intermediate(trust, pki->inter, &err));
    cm_assert_no_error(err);
    return trust;
}

/* ------------------------------------------------------------ issue */

typedef struct {
    CmCertProfile profile;
    gboolean ca;
    long pathlen;
    guint32 ku_ec;
    guint32 ku_rsa;
    guint32 xku; /* UINT32_MAX: no extension */
    gboolean self_signed;
} ProfileCase;

#define KU_CA (KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE)
#define KU_EC (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT)
#define KU_RSA (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)

static const ProfileCase profile_cases[] = {
    {CM_CERT_CLIENT_SELF_SIGNED, FALSE, -1, KU_EC, KU_RSA, XKU_SSL_CLIENT, TRUE},
    {CM_CERT_SITE_SIGNING, FALSE, -1, KU_DIGITAL_SIGNATURE, KU_DIGITAL_SIGNATURE, XKU_CODE_SIGN,
     TRUE},
    {CM_CERT_ROOT_CA, TRUE, -1, KU_CA, KU_CA, UINT32_MAX, TRUE},
    {CM_CERT_INTERMEDIATE_CA, TRUE, 0, KU_CA, KU_CA, UINT32_MAX, FALSE},
    {CM_CERT_MP, FALSE, -1, KU_EC, KU_RSA, XKU_SSL_SERVER, FALSE},
    {CM_CERT_SERVER, FALSE, -1, KU_EC, KU_RSA, XKU_SSL_SERVER, FALSE},
    {CM_CERT_CLIENT_AUTH, FALSE, -1, KU_DIGITAL_SIGNATURE, KU_DIGITAL_SIGNATURE, XKU_SSL_CLIENT,
     FALSE},
    {CM_CERT_ENCRYPTION, FALSE, -1, KU_EC, KU_RSA, UINT32_MAX, TRUE},
};

/* Every profile, with an EC and an RSA subject key. */
START_TEST(test_issue_profiles)
{
    const ProfileCase *pc = &profile_cases[_i / 2];
    gboolean rsa = _i % 2 == 1;
    const CmKey *subject = rsa ? rsa_key : leaf_key;
    g_autoptr(CmCert) ca =
        issue(CM_CERT_ROOT_CA, "Issuing Root", 7, NOW - DAY, NOW + 365 * DAY, root_key, NULL, NULL);
    CmCertSpec spec = spec_of(pc->profile, "Subject Name", 0x1234, NOW - HOUR, NOW + 30 * DAY,
                              subject, NULL, NULL);
    g_autoptr(CmCert) cert = NULL;
    X509 *x;

    spec.subject_o = "Contoso";
    if (!pc->self_signed) {
        spec.issuer_key = root_key;
        if (pc->profile == CM_CERT_MP)
            spec.issuer_cn = "Site Server Signing Certificate"; /* the bare TRK */
        else
            spec.issuer_cert = ca;
    }
    cert = issue_spec(&spec);
    x = cm_cert_x509(cert);

    ck_assert_str_eq(cm_cert_subject_cn(cert), "Subject Name");
    ck_assert_uint_eq(cm_cert_serial(cert), 0x1234);
    ck_assert_int_eq(cm_cert_not_before(cert), NOW - HOUR);
    ck_assert_int_eq(cm_cert_not_after(cert), NOW + 30 * DAY);
    ck_assert(cm_key_public_equal(cm_cert_public_key(cert), subject));
    ck_assert(!cm_key_has_private(cm_cert_public_key(cert)));
    ck_assert_int_eq(cm_cert_hash(cert), CM_HASH_SHA256);
    ck_assert_int_eq(X509_get_version(x), X509_VERSION_3);
    ck_assert_int_eq(X509_check_ca(x) != 0, pc->ca);
    ck_assert_int_eq(X509_get_pathlen(x), pc->pathlen);
    ck_assert_uint_eq(X509_get_key_usage(x), rsa ? pc->ku_rsa : pc->ku_ec);
    ck_assert_uint_eq(X509_get_extended_key_usage(x), pc->xku);
    ck_assert_ptr_nonnull(X509_get0_subject_key_id(x));
    ck_assert_int_eq(cm_cert_is_self_signed(cert), pc->self_signed);
    if (pc->self_signed) {
        ck_assert(X509_verify(x, cm_key_evp(subject)) == 1);
    } else {
        /* Signed by the issuer's key, and naming it by its key ID (the CA
         * and the bare TRK here are the same key). */
        ck_assert(X509_verify(x, cm_key_evp(root_key)) == 1);
        ck_assert_ptr_nonnull(X509_get0_authority_key_id(x));
        ck_assert_int_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
                                               X509_get0_subject_key_id(cm_cert_x509(ca))),
                         0);
    }
}
END_TEST

START_TEST(test_issue_san_and_options)
{
    static const char *const names[] = {"mp1.contoso.example", "*.cmg.contoso.example", NULL};
    CmCertSpec spec = spec_of(CM_CERT_SERVER, "mp1.contoso.example", 9, NOW - HOUR, NOW + DAY,
                              leaf_key, NULL, NULL);
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmCert) sha1 = NULL;
    GENERAL_NAMES *san;
    STACK_OF(DIST_POINT) * cdp;

    spec.dns_names = names;
    spec.crl_url = "http://pki.contoso.example/crl/issuing.crl";
    cert = issue_spec(&spec);
    san = X509_get_ext_d2i(cm_cert_x509(cert), NID_subject_alt_name, NULL, NULL);
    ck_assert_ptr_nonnull(san);
    ck_assert_int_eq(sk_GENERAL_NAME_num(san), 2);
    for (int i = 0; i < 2; i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, i);
        ck_assert_int_eq(gn->type, GEN_DNS);
        ck_assert_str_eq((const char *)ASN1_STRING_get0_data(gn->d.dNSName), names[i]);
    }
    GENERAL_NAMES_free(san);
    cdp = X509_get_ext_d2i(cm_cert_x509(cert), NID_crl_distribution_points, NULL, NULL);
    ck_assert_ptr_nonnull(cdp);
    ck_assert_int_eq(sk_DIST_POINT_num(cdp), 1);
    sk_DIST_POINT_pop_free(cdp, DIST_POINT_free);
    ck_assert_int_eq(X509_check_host(cm_cert_x509(cert), "mp1.contoso.example", 0, 0, NULL), 1);
    ck_assert_int_eq(X509_check_host(cm_cert_x509(cert), "evil.example", 0, 0, NULL), 0);

    /* A legacy SHA-1 certificate says so. */
    spec.dns_names = NULL;
    spec.crl_url = NULL;
    spec.hash = CM_HASH_SHA1;
    sha1 = issue_spec(&spec);
    ck_assert_int_eq(cm_cert_hash(sha1), CM_HASH_SHA1);
}
END_TEST

/* Names reach OpenSSL's extension syntax, where a comma starts another
 * entry: a name with one must not smuggle in a second name. */
START_TEST(test_issue_name_injection)
{
    static const char *const comma[] = {"mp1.contoso.example,IP:10.0.0.1", NULL};
    static const char *const section[] = {"@alt_names", NULL};
    static const char *const empty[] = {"", NULL};
    GError *err = NULL;
    CmCertSpec spec =
        spec_of(CM_CERT_SERVER, "mp1", 9, NOW - HOUR, NOW + DAY, leaf_key, NULL, NULL);

    spec.dns_names = comma;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec.dns_names = section;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec.dns_names = empty;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec.dns_names = NULL;
    spec.crl_url = "http://pki.example/a.crl,URI:http://evil.example/b.crl";
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

START_TEST(test_issue_spec_refused)
{
    GError *err = NULL;
    g_autofree char *pub_pem = cm_key_public_pem(leaf_key);
    g_autoptr(CmKey) pub = cm_key_public_from_pem(pub_pem, strlen(pub_pem), &err);
    g_autofree char *long_cn = g_strnfill(65, 'x');
    CmCertSpec good =
        spec_of(CM_CERT_CLIENT_SELF_SIGNED, "client", 5, NOW, NOW + DAY, leaf_key, NULL, NULL);
    CmCertSpec spec;

    cm_assert_no_error(err);
    spec = good;
    spec.subject_cn = NULL;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec = good;
    spec.subject_cn = "";
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec = good;
    spec.subject_cn = long_cn;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec = good;
    spec.serial = 0;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec = good;
    spec.not_after = spec.not_before;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec = good;
    spec.subject_key = NULL;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    /* Self-signed needs the private key; so does an issuer. */
    spec = good;
    spec.subject_key = pub;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    spec = good;
    spec.issuer_key = pub;
    spec.issuer_cn = "issuer";
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    /* Signed by another key, but naming no issuer. */
    spec = good;
    spec.issuer_key = root_key;
    ck_assert_ptr_null(cm_cert_issue(&spec, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
}
END_TEST

/* REQ: TRUST-08 */
START_TEST(test_self_signed)
{
    g_autoptr(CmCert) site = issue(CM_CERT_SITE_SIGNING, "Site Server Signing Certificate", 1,
                                   NOW - DAY, NOW + 365 * DAY, root_key, NULL, NULL);
    g_autoptr(CmCert) client = issue(CM_CERT_CLIENT_SELF_SIGNED, "GUID:client", 2, NOW - DAY,
                                     NOW + 365 * DAY, leaf_key, NULL, NULL);
    g_autoptr(CmCert) rsa_site = issue(CM_CERT_SITE_SIGNING, "Site Server Signing Certificate", 3,
                                       NOW - DAY, NOW + 365 * DAY, rsa_key, NULL, NULL);
    g_autoptr(CmCert) mp =
        issue(CM_CERT_MP, "mp1", 4, NOW - DAY, NOW + 365 * DAY, leaf_key, root_key, NULL);
    X509 *x = cm_cert_x509(site);

    ck_assert(cm_cert_is_self_signed(site));
    ck_assert(cm_cert_is_self_signed(client));
    ck_assert(cm_cert_is_self_signed(rsa_site));
    ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    /* It verifies with its own key (what a client checks policies with). */
    ck_assert_int_eq(X509_verify(x, cm_key_evp(cm_cert_public_key(site))), 1);
    /* A management point certificate is signed by the TRK instead. */
    ck_assert(!cm_cert_is_self_signed(mp));
}
END_TEST

/* A certificate whose name says self-signed but whose signature is another
 * key's is not self-signed. REQ: TRUST-08 */
START_TEST(test_self_signed_by_name_only)
{
    CmCertSpec spec = spec_of(CM_CERT_SITE_SIGNING, "Site Server Signing Certificate", 1, NOW - DAY,
                              NOW + DAY, leaf_key, other_key, NULL);
    g_autoptr(CmCert) fake = NULL;

    spec.issuer_cn = "Site Server Signing Certificate";
    fake = issue_spec(&spec);
    ck_assert(!cm_cert_is_self_signed(fake));
}
END_TEST

/* cm_cert_issue writes a P-256 key's SubjectPublicKeyInfo itself (OpenSSL
 * 3.0's encoder costs more than the rest of issuing): the bytes must be the
 * ones OpenSSL's encoder writes for the key, for EC and RSA keys alike, the
 * certificate must parse back to the same key, verify with it, and be the
 * object a receiver of its bytes gets from the parse cache (the simulator's
 * sites parse their clients' certificates so).  REQ: TRUST-08 */
START_TEST(test_issue_public_key_encoding)
{
    const CmKey *subject = _i == 0 ? leaf_key : rsa_key;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmCert) again = NULL;
    g_autoptr(GBytes) want = cm_key_public_der(subject);
    g_autoptr(GBytes) der = NULL;
    unsigned char *spki = NULL;
    int len;

    cm_parse_cache_enable(TRUE);
    cert = issue(CM_CERT_CLIENT_SELF_SIGNED, "GUID:client", 9, NOW - DAY, NOW + DAY, subject, NULL,
                 NULL);
    /* Its bytes before anything asks for the X509 (which, for P-256, is
     * then made complete, and must encode the same). */
    der = cm_cert_to_der(cert);
    ck_assert(cm_key_public_equal(cm_cert_public_key(cert), subject));
    ck_assert(!cm_key_has_private(cm_cert_public_key(cert)));
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cm_cert_x509(cert)), &spki);
    ck_assert_int_gt(len, 0);
    ck_assert_uint_eq((size_t)len, g_bytes_get_size(want));
    ck_assert_int_eq(memcmp(spki, g_bytes_get_data(want, NULL), (size_t)len), 0);
    OPENSSL_free(spki);
    /* The X509 holds a usable public key, not the subject's private one. */
    ck_assert_ptr_nonnull(X509_get0_pubkey(cm_cert_x509(cert)));
    ck_assert(cm_key_public_equal(cm_cert_public_key(cert), subject));
    ck_assert(cm_cert_is_self_signed(cert));
    ck_assert_int_eq(X509_verify(cm_cert_x509(cert), cm_key_evp(subject)), 1);
    {
        g_autoptr(GBytes) after = cm_cert_to_der(cert);
        unsigned char *x = NULL;
        int xlen = i2d_X509(cm_cert_x509(cert), &x);
        guint8 tp[32];
        ck_assert(g_bytes_equal(der, after));
        ck_assert_uint_eq((size_t)xlen, g_bytes_get_size(der));
        ck_assert_int_eq(memcmp(x, g_bytes_get_data(der, NULL), (size_t)xlen), 0);
        /* The thumbprint (taken from the DER the certificate keeps) is the
         * hash of that encoding. */
        cm_hash(CM_HASH_SHA256, x, (size_t)xlen, tp);
        ck_assert_int_eq(memcmp(tp, cm_cert_thumbprint(cert), 32), 0);
        OPENSSL_free(x);
    }
    again = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), NULL);
    ck_assert_ptr_eq(again, cert);
    cm_parse_cache_enable(FALSE);
}
END_TEST

/* ------------------------------------------ trusted root key (TRK) */

/* A management point certificate signed with the bare TRK, checked with the
 * TRK public key a client holds (in its SMSPublicRootKey hex form).
 * REQ: TRUST-02, TRUST-03 */
START_TEST(test_mp_signed_by_trk)
{
    GError *err = NULL;
    CmKey *trk = _i == 0 ? root_key : rsa_key;
    CmCertSpec spec = spec_of(CM_CERT_MP, "MP1.contoso.example", 42, NOW - DAY, NOW + 365 * DAY,
                              leaf_key, trk, NULL);
    g_autoptr(CmCert) mp = NULL;
    g_autofree char *trk_hex = cm_key_public_hex(trk);
    g_autoptr(CmKey) held = cm_key_public_from_hex(trk_hex, &err);

    cm_assert_no_error(err);
    spec.issuer_cn = "Site Server Signing Certificate";
    mp = issue_spec(&spec);
    ck_assert(!cm_cert_is_self_signed(mp));
    ck_assert(cm_cert_check_signed_by(mp, held, NOW, &err));
    cm_assert_no_error(err);
    /* The same key as parsed from a certificate or the private key. */
    ck_assert(cm_cert_check_signed_by(mp, trk, NOW, &err));
    cm_assert_no_error(err);
    /* Another site's TRK, or the MP's own key: refused. */
    ck_assert(!cm_cert_check_signed_by(mp, other_key, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    ck_assert(!cm_cert_check_signed_by(mp, leaf_key, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    ck_assert(!cm_cert_check_signed_by(mp, _i == 0 ? rsa_key : root_key, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* Signed by the TRK but outside its validity. */
    ck_assert(!cm_cert_check_signed_by(mp, held, NOW + 366 * DAY, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    ck_assert(!cm_cert_check_signed_by(mp, held, NOW - 2 * DAY, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
}
END_TEST

/* A rogue MP presenting a self-signed certificate for its own key is
 * refused. REQ: TRUST-03 */
START_TEST(test_rogue_mp_refused)
{
    GError *err = NULL;
    g_autoptr(CmCert) rogue = issue(CM_CERT_MP, "MP1.contoso.example", 42, NOW - DAY,
                                    NOW + 365 * DAY, other_key, NULL, NULL);
    g_autoptr(CmCert) altered = NULL;
    g_autoptr(CmCert) mp = issue(CM_CERT_MP, "MP1.contoso.example", 43, NOW - DAY, NOW + 365 * DAY,
                                 leaf_key, root_key, NULL);
    g_autoptr(GBytes) der = NULL;
    g_autofree guint8 *copy = NULL;
    gsize len;
    const guint8 *cn;

    ck_assert(!cm_cert_check_signed_by(rogue, root_key, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* The genuine certificate with its subject name altered. */
    der = cm_cert_to_der(mp);
    len = g_bytes_get_size(der);
    copy = g_memdup2(g_bytes_get_data(der, NULL), len);
    cn = memmem(copy, len, "MP1.contoso", 11);
    ck_assert_ptr_nonnull(cn);
    copy[cn - copy] = 'X';
    altered = cm_cert_from_der(copy, len, &err);
    cm_assert_no_error(err);
    ck_assert(!cm_cert_check_signed_by(altered, root_key, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
}
END_TEST

START_TEST(test_check_time)
{
    GError *err = NULL;
    g_autoptr(CmCert) cert =
        issue(CM_CERT_CLIENT_SELF_SIGNED, "client", 1, NOW, NOW + DAY, leaf_key, NULL, NULL);

    ck_assert(cm_cert_check_time(cert, NOW, &err));
    cm_assert_no_error(err);
    ck_assert(cm_cert_check_time(cert, NOW + DAY, &err));
    cm_assert_no_error(err);
    ck_assert(cm_cert_check_time(cert, NOW + HOUR, &err));
    cm_assert_no_error(err);
    /* Not yet valid, expired: both EXPIRED. */
    ck_assert(!cm_cert_check_time(cert, NOW - 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    ck_assert(!cm_cert_check_time(cert, NOW + DAY + CM_USEC_PER_SEC, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    ck_assert(!cm_cert_check_time(cert, NOW + 1000 * DAY, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
}
END_TEST

/* Validity is kept to the second, flooring sub-second times; dates past
 * 2049 are GeneralizedTime. */
START_TEST(test_validity_encoding)
{
    CmTime far = G_GINT64_CONSTANT(4102444800) * CM_USEC_PER_SEC; /* 2100-01-01 */
    g_autoptr(CmCert) cert =
        issue(CM_CERT_ROOT_CA, "root", 1, NOW + 999999, far, root_key, NULL, NULL);

    ck_assert_int_eq(cm_cert_not_before(cert), NOW);
    ck_assert_int_eq(cm_cert_not_after(cert), far);
}
END_TEST

/* ------------------------------------------------- chain verification */

START_TEST(test_chain_client_auth)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;
    const CmCert *root = NULL;

    pki_build(&pki, NOW);
    trust = trust_of(&pki);
    ck_assert_uint_eq(cm_trust_root_count(trust), 1);
    ck_assert(cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, &root, &err));
    cm_assert_no_error(err);
    ck_assert_ptr_eq(root, pki.root);
    ck_assert(cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_ANY, NULL, &err));
    cm_assert_no_error(err);
    /* A client certificate is no server certificate. */
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_SERVER_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    pki_clear(&pki);
}
END_TEST

/* An MP over HTTPS is accepted when its certificate chains to the PKI, and
 * only for server authentication. REQ: TRUST-03 */
START_TEST(test_chain_server_auth)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmTrust) empty = cm_trust_new();
    const CmCert *root = NULL;
    g_autoptr(CmCert) self = issue(CM_CERT_SERVER, "mp1.contoso.example", 5, NOW - DAY, NOW + DAY,
                                   other_key, NULL, NULL);

    pki_build(&pki, NOW);
    trust = trust_of(&pki);
    ck_assert(cm_trust_verify(trust, pki.server, NULL, NOW, CM_PURPOSE_SERVER_AUTH, &root, &err));
    cm_assert_no_error(err);
    ck_assert_ptr_eq(root, pki.root);
    ck_assert(!cm_trust_verify(trust, pki.server, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    /* A self-signed server certificate outside the trust store. */
    ck_assert(!cm_trust_verify(trust, self, NULL, NOW, CM_PURPOSE_SERVER_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* No roots at all. */
    ck_assert(!cm_trust_verify(empty, pki.server, NULL, NOW, CM_PURPOSE_SERVER_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    pki_clear(&pki);
}
END_TEST

START_TEST(test_chain_intermediates)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = cm_trust_new();
    g_autoptr(GPtrArray) peer = g_ptr_array_new();

    pki_build(&pki, NOW);
    ck_assert(cm_trust_add_root(trust, pki.root, &err));
    cm_assert_no_error(err);
    /* Without the intermediate there is no chain... */
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* ...the peer can send it... */
    g_ptr_array_add(peer, pki.inter);
    ck_assert(cm_trust_verify(trust, pki.client, peer, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    /* ...but an intermediate is no trust anchor. */
    ck_assert(!cm_trust_add_root(trust, pki.inter, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_uint_eq(cm_trust_root_count(trust), 1);
    pki_clear(&pki);
}
END_TEST

START_TEST(test_chain_expired)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;

    pki_build(&pki, NOW);
    trust = trust_of(&pki);
    /* The leaf expires after 30 days; before its start it is not valid yet. */
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW + 31 * DAY, CM_PURPOSE_CLIENT_AUTH,
                               NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW - 2 * DAY, CM_PURPOSE_CLIENT_AUTH, NULL,
                               &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    /* The intermediate expires after 1000 days. */
    ck_assert(
        !cm_trust_verify(trust, pki.inter, NULL, NOW + 1001 * DAY, CM_PURPOSE_ANY, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    pki_clear(&pki);
}
END_TEST

/* A leaf from another CA that happens to use the same names does not chain. */
START_TEST(test_chain_impostor_ca)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmCert) fake_inter = NULL;
    g_autoptr(CmCert) fake_leaf = NULL;
    g_autoptr(GPtrArray) peer = g_ptr_array_new();

    pki_build(&pki, NOW);
    trust = cm_trust_new();
    ck_assert(cm_trust_add_root(trust, pki.root, &err));
    fake_inter = issue(CM_CERT_INTERMEDIATE_CA, "Contoso Issuing CA", 2, NOW - DAY, NOW + DAY,
                       inter_key, other_key, pki.root);
    fake_leaf = issue(CM_CERT_CLIENT_AUTH, "client1.contoso.example", 100, NOW - DAY, NOW + DAY,
                      leaf_key, inter_key, fake_inter);
    g_ptr_array_add(peer, fake_inter);
    ck_assert(!cm_trust_verify(trust, fake_leaf, peer, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    pki_clear(&pki);
}
END_TEST

/* -------------------------------------------------------- revocation */

/* REQ: TRUST-14 */
START_TEST(test_revoked_with_crl_check)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmCrl) root_crl = NULL;
    g_autoptr(CmCrl) inter_crl = NULL;
    static const guint64 revoked[] = {100, 555};

    pki_build(&pki, NOW);
    trust = trust_of(&pki);
    root_crl = crl_issue(pki.root, root_key, NULL, 0, NOW, NOW - HOUR, NOW + 7 * DAY);
    inter_crl = crl_issue(pki.inter, inter_key, revoked, 2, NOW, NOW - HOUR, NOW + 7 * DAY);
    ck_assert(cm_trust_add_crl(trust, root_crl, &err));
    ck_assert(cm_trust_add_crl(trust, inter_crl, &err));
    cm_assert_no_error(err);

    /* Checking off: the revoked client certificate still passes. */
    ck_assert(cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    /* Checking on: refused as revoked; the server certificate is not listed. */
    cm_trust_set_crl_check(trust, TRUE);
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REVOKED);
    ck_assert(cm_trust_verify(trust, pki.server, NULL, NOW, CM_PURPOSE_SERVER_AUTH, NULL, &err));
    cm_assert_no_error(err);
    /* And off again. */
    cm_trust_set_crl_check(trust, FALSE);
    ck_assert(cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    pki_clear(&pki);
}
END_TEST

/* The TLS store the daemons use follows the same switch, both ways.
 * REQ: TRUST-14 */
START_TEST(test_crl_check_x509_store)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmCrl) root_crl = NULL;
    g_autoptr(CmCrl) inter_crl = NULL;
    static const guint64 revoked[] = {100};
    X509_STORE *store;
    unsigned long flags;

    pki_build(&pki, NOW);
    trust = trust_of(&pki);
    root_crl = crl_issue(pki.root, root_key, NULL, 0, NOW, NOW - HOUR, NOW + 7 * DAY);
    inter_crl = crl_issue(pki.inter, inter_key, revoked, 1, NOW, NOW - HOUR, NOW + 7 * DAY);
    ck_assert(cm_trust_add_crl(trust, root_crl, &err));
    ck_assert(cm_trust_add_crl(trust, inter_crl, &err));
    cm_assert_no_error(err);

    cm_trust_set_crl_check(trust, TRUE);
    store = cm_trust_x509_store(trust);
    flags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store));
    ck_assert(flags & X509_V_FLAG_CRL_CHECK);
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REVOKED);

    /* Turned off after the store was handed out: verification follows at
     * once, and so does the store. */
    cm_trust_set_crl_check(trust, FALSE);
    ck_assert(cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    store = cm_trust_x509_store(trust);
    flags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store));
    ck_assert(!(flags & (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL)));
    ck_assert(cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    pki_clear(&pki);
}
END_TEST

/* REQ: TRUST-14 */
START_TEST(test_crl_check_without_crl)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmCrl) inter_crl = NULL;

    pki_build(&pki, NOW);
    trust = trust_of(&pki);
    cm_trust_set_crl_check(trust, TRUE);
    /* No CRL at all. */
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err->message, "CRL"));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    /* Checking covers the whole chain: the root's CRL is missing. */
    inter_crl = crl_issue(pki.inter, inter_key, NULL, 0, NOW, NOW - HOUR, NOW + 7 * DAY);
    ck_assert(cm_trust_add_crl(trust, inter_crl, &err));
    ck_assert(!cm_trust_verify(trust, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    pki_clear(&pki);
}
END_TEST

/* A stale CRL, or one signed by the wrong key, does not count.
 * REQ: TRUST-14 */
START_TEST(test_crl_stale_or_forged_in_trust)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmTrust) stale = NULL;
    g_autoptr(CmTrust) forged = NULL;
    g_autoptr(CmCrl) root_crl = NULL;
    g_autoptr(CmCrl) old_crl = NULL;
    g_autoptr(CmCrl) fake_crl = NULL;
    g_autoptr(CmCert) impostor = NULL;

    pki_build(&pki, NOW);
    root_crl = crl_issue(pki.root, root_key, NULL, 0, NOW, NOW - HOUR, NOW + 7 * DAY);
    old_crl = crl_issue(pki.inter, inter_key, NULL, 0, NOW, NOW - 30 * DAY, NOW - 23 * DAY);
    stale = trust_of(&pki);
    cm_trust_set_crl_check(stale, TRUE);
    ck_assert(cm_trust_add_crl(stale, root_crl, &err));
    ck_assert(cm_trust_add_crl(stale, old_crl, &err));
    cm_assert_no_error(err);
    ck_assert(!cm_trust_verify(stale, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);

    /* Same issuer name, another key. */
    impostor = issue(CM_CERT_INTERMEDIATE_CA, "Contoso Issuing CA", 2, NOW - DAY, NOW + DAY,
                     other_key, other_key, pki.root);
    fake_crl = crl_issue(impostor, other_key, NULL, 0, NOW, NOW - HOUR, NOW + 7 * DAY);
    forged = trust_of(&pki);
    cm_trust_set_crl_check(forged, TRUE);
    ck_assert(cm_trust_add_crl(forged, root_crl, &err));
    ck_assert(cm_trust_add_crl(forged, fake_crl, &err));
    cm_assert_no_error(err);
    ck_assert(!cm_trust_verify(forged, pki.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    pki_clear(&pki);
}
END_TEST

/* REQ: TRUST-14 */
START_TEST(test_crl_check)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmCrl) crl = NULL;
    g_autoptr(CmCrl) forged = NULL;
    g_autoptr(CmCert) impostor = NULL;
    static const guint64 revoked[] = {100, 7, 3};

    pki_build(&pki, NOW);
    crl = crl_issue(pki.inter, inter_key, revoked, 3, NOW, NOW - HOUR, NOW + 7 * DAY);
    ck_assert(cm_crl_check(crl, pki.inter, NOW, &err));
    cm_assert_no_error(err);
    ck_assert_uint_eq(cm_crl_count(crl), 3);
    ck_assert(cm_crl_lists(crl, pki.client));
    ck_assert(!cm_crl_lists(crl, pki.server));
    /* Same serial, other issuer: not listed. */
    ck_assert(!cm_crl_lists(crl, pki.inter));

    /* Another CA's certificate is not the signer. */
    ck_assert(!cm_crl_check(crl, pki.root, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    /* Same name, another key: a forged CRL. */
    impostor = issue(CM_CERT_INTERMEDIATE_CA, "Contoso Issuing CA", 2, NOW - DAY, NOW + DAY,
                     other_key, other_key, pki.root);
    forged = crl_issue(impostor, other_key, NULL, 0, NOW, NOW - HOUR, NOW + 7 * DAY);
    ck_assert(!cm_crl_check(forged, pki.inter, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_SIGNATURE);
    ck_assert(cm_crl_check(forged, impostor, NOW, &err));
    cm_assert_no_error(err);

    /* Past its next update, or before its this update. */
    ck_assert(cm_crl_check(crl, pki.inter, NOW + 7 * DAY, &err));
    cm_assert_no_error(err);
    ck_assert(!cm_crl_check(crl, pki.inter, NOW + 7 * DAY + CM_USEC_PER_SEC, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    ck_assert(!cm_crl_check(crl, pki.inter, NOW - 2 * HOUR, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_EXPIRED);
    pki_clear(&pki);
}
END_TEST

START_TEST(test_crl_issue_refused)
{
    GError *err = NULL;
    Pki pki = {0};

    pki_build(&pki, NOW);
    /* The key must be the issuer certificate's private key. */
    ck_assert_ptr_null(cm_crl_issue(pki.inter, root_key, NULL, 0, 1, NOW, NOW + DAY, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(
        cm_crl_issue(pki.inter, cm_cert_public_key(pki.inter), NULL, 0, 1, NOW, NOW + DAY, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_crl_issue(pki.inter, inter_key, NULL, 0, 1, NOW, NOW, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    pki_clear(&pki);
}
END_TEST

START_TEST(test_crl_encodings)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmCrl) crl = NULL;
    g_autoptr(CmCrl) from_der = NULL;
    g_autoptr(CmCrl) from_pem = NULL;
    g_autoptr(CmCrl) ref = NULL;
    g_autoptr(GBytes) der = NULL;
    g_autoptr(GBytes) der2 = NULL;
    g_autofree char *pem = NULL;
    g_autofree guint8 *trailing = NULL;
    g_autofree guint8 *huge = NULL;
    gsize len;
    const guint8 *p;
    static const guint64 revoked[] = {100, 101};

    pki_build(&pki, NOW);
    crl = crl_issue(pki.inter, inter_key, revoked, 2, NOW, NOW - HOUR, NOW + DAY);
    ref = cm_crl_ref(crl);
    ck_assert_ptr_eq(ref, crl);
    ck_assert_ptr_nonnull(cm_crl_x509(crl));
    der = cm_crl_to_der(crl);
    p = g_bytes_get_data(der, &len);
    from_der = cm_crl_from_der(p, len, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(cm_crl_count(from_der), 2);
    ck_assert(cm_crl_check(from_der, pki.inter, NOW, &err));
    cm_assert_no_error(err);
    der2 = cm_crl_to_der(from_der);
    ck_assert(g_bytes_equal(der, der2));
    pem = cm_crl_to_pem(crl);
    ck_assert(g_str_has_prefix(pem, "-----BEGIN X509 CRL-----\n"));
    from_pem = cm_crl_from_pem(pem, strlen(pem), &err);
    cm_assert_no_error(err);
    ck_assert(cm_crl_lists(from_pem, pki.client));

    /* Truncated, trailing bytes, garbage, empty, oversized. */
    ck_assert_ptr_null(cm_crl_from_der(p, len - 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    trailing = g_malloc(len + 1);
    memcpy(trailing, p, len);
    trailing[len] = 0;
    ck_assert_ptr_null(cm_crl_from_der(trailing, len + 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_crl_from_der((const guint8 *)"garbage", 7, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_crl_from_der(p, 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    huge = g_malloc0(CM_CRL_MAX_DER + 1);
    ck_assert_ptr_null(cm_crl_from_der(huge, CM_CRL_MAX_DER + 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_crl_from_pem(pem, strlen(pem) / 2, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_crl_from_pem("-----BEGIN CERTIFICATE-----\n", 28, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    pki_clear(&pki);
}
END_TEST

/* ------------------------------------------------------------ CTL */

/* REQ: CMG-04 */
START_TEST(test_ctl_limits_roots)
{
    GError *err = NULL;
    Pki a = {0};
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmCert) root_b = issue(CM_CERT_ROOT_CA, "Fabrikam Root", 1, NOW - DAY,
                                     NOW + 365 * DAY, other_key, NULL, NULL);
    g_autoptr(CmCert) client_b = issue(CM_CERT_CLIENT_AUTH, "client.fabrikam.example", 2, NOW - DAY,
                                       NOW + DAY, leaf_key, other_key, root_b);
    CmCtl *ctl;
    const CmCert *root = NULL;

    pki_build(&a, NOW);
    trust = trust_of(&a);
    ck_assert(cm_trust_add_root(trust, root_b, &err));
    cm_assert_no_error(err);
    ck_assert_uint_eq(cm_trust_root_count(trust), 2);

    /* Without a CTL both trusted roots count. */
    ck_assert(cm_trust_verify(trust, client_b, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, &root, &err));
    cm_assert_no_error(err);
    ck_assert_ptr_eq(root, root_b);

    /* A CTL naming Contoso's root only: Fabrikam's clients are refused. */
    ctl = cm_ctl_new();
    cm_ctl_add(ctl, a.root);
    ck_assert(cm_ctl_allows(ctl, a.root));
    ck_assert(!cm_ctl_allows(ctl, root_b));
    cm_trust_set_ctl(trust, ctl);
    ck_assert(cm_trust_verify(trust, a.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, &root, &err));
    cm_assert_no_error(err);
    ck_assert_ptr_eq(root, a.root);
    root = NULL;
    ck_assert(!cm_trust_verify(trust, client_b, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, &root, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);
    ck_assert_ptr_null(root);

    /* An empty CTL allows no root. */
    cm_trust_set_ctl(trust, cm_ctl_new());
    ck_assert(!cm_trust_verify(trust, a.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_REFUSED);

    /* The broad CTL allows any trusted root... */
    cm_trust_set_ctl(trust, cm_ctl_new_any());
    ck_assert(cm_trust_verify(trust, client_b, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    ck_assert(cm_trust_verify(trust, a.client, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    /* ...but not an untrusted one. */
    {
        g_autoptr(CmCert) stray = issue(CM_CERT_CLIENT_SELF_SIGNED, "stray", 3, NOW - DAY,
                                        NOW + DAY, leaf_key, NULL, NULL);
        ck_assert(!cm_trust_verify(trust, stray, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
        cm_assert_error(&err, CM_PROTO_ERROR_UNTRUSTED);
    }
    /* NULL removes the CTL. */
    cm_trust_set_ctl(trust, NULL);
    ck_assert(cm_trust_verify(trust, client_b, NULL, NOW, CM_PURPOSE_CLIENT_AUTH, NULL, &err));
    cm_assert_no_error(err);
    pki_clear(&a);
}
END_TEST

/* REQ: CMG-04 */
START_TEST(test_ctl_basics)
{
    g_autoptr(CmCert) r1 = issue(CM_CERT_ROOT_CA, "R1", 1, NOW, NOW + DAY, root_key, NULL, NULL);
    g_autoptr(CmCert) r2 = issue(CM_CERT_ROOT_CA, "R2", 1, NOW, NOW + DAY, other_key, NULL, NULL);
    g_autoptr(CmCtl) ctl = cm_ctl_new();
    g_autoptr(CmCtl) any = cm_ctl_new_any();

    ck_assert(!cm_ctl_is_any(ctl));
    ck_assert_uint_eq(cm_ctl_count(ctl), 0);
    ck_assert(!cm_ctl_allows(ctl, r1));
    cm_ctl_add(ctl, r1);
    cm_ctl_add(ctl, r1); /* twice is once */
    ck_assert_uint_eq(cm_ctl_count(ctl), 1);
    ck_assert(cm_ctl_allows(ctl, r1));
    ck_assert(!cm_ctl_allows(ctl, r2));
    ck_assert(cm_ctl_is_any(any));
    ck_assert(cm_ctl_allows(any, r1));
    ck_assert(cm_ctl_allows(any, r2));
    cm_ctl_free(NULL);
}
END_TEST

/* REQ: CMG-04 */
START_TEST(test_ctl_json_round_trip)
{
    GError *err = NULL;
    g_autoptr(CmCert) r1 = issue(CM_CERT_ROOT_CA, "R1", 1, NOW, NOW + DAY, root_key, NULL, NULL);
    g_autoptr(CmCert) r2 = issue(CM_CERT_ROOT_CA, "R2", 1, NOW, NOW + DAY, other_key, NULL, NULL);
    g_autoptr(CmCert) r3 = issue(CM_CERT_ROOT_CA, "R3", 1, NOW, NOW + DAY, leaf_key, NULL, NULL);
    g_autoptr(CmCtl) ctl = cm_ctl_new();
    g_autoptr(CmCtl) back = NULL;
    g_autoptr(CmCtl) any = cm_ctl_new_any();
    g_autoptr(CmCtl) any_back = NULL;
    g_autoptr(CmCtl) lower_back = NULL;
    g_autofree char *json = NULL;
    g_autofree char *json2 = NULL;
    g_autofree char *any_json = NULL;
    g_autofree char *h1 = cm_cert_thumbprint_hex(r1);
    g_autofree char *h2 = cm_cert_thumbprint_hex(r2);
    g_autofree char *expect = NULL;
    g_autofree char *lower = NULL;

    cm_ctl_add(ctl, r2);
    cm_ctl_add(ctl, r1);
    json = cm_ctl_to_json(ctl);
    /* Compact, sorted: the same CTL always gives the same bytes. */
    expect = strcmp(h1, h2) < 0
                 ? g_strdup_printf("{\"any\":false,\"roots\":[\"%s\",\"%s\"]}", h1, h2)
                 : g_strdup_printf("{\"any\":false,\"roots\":[\"%s\",\"%s\"]}", h2, h1);
    ck_assert_str_eq(json, expect);
    back = cm_ctl_from_json(json, strlen(json), &err);
    cm_assert_no_error(err);
    ck_assert(!cm_ctl_is_any(back));
    ck_assert_uint_eq(cm_ctl_count(back), 2);
    ck_assert(cm_ctl_allows(back, r1));
    ck_assert(cm_ctl_allows(back, r2));
    ck_assert(!cm_ctl_allows(back, r3));
    json2 = cm_ctl_to_json(back);
    ck_assert_str_eq(json, json2);

    any_json = cm_ctl_to_json(any);
    ck_assert_str_eq(any_json, "{\"any\":true,\"roots\":[]}");
    any_back = cm_ctl_from_json(any_json, strlen(any_json), &err);
    cm_assert_no_error(err);
    ck_assert(cm_ctl_is_any(any_back));
    ck_assert(cm_ctl_allows(any_back, r3));

    /* Thumbprints typed in lower case match. */
    lower = g_ascii_strdown(json, -1);
    lower_back = cm_ctl_from_json(lower, strlen(lower), &err);
    cm_assert_no_error(err);
    ck_assert(cm_ctl_allows(lower_back, r1));
}
END_TEST

/* REQ: CMG-04 */
START_TEST(test_ctl_json_malformed)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"any\":false}",
        "{\"roots\":[]}",
        "{\"any\":\"false\",\"roots\":[]}",
        "{\"any\":0,\"roots\":[]}",
        "{\"any\":false,\"roots\":{}}",
        "{\"any\":false,\"roots\":\"AB\"}",
        "{\"any\":false,\"roots\":[1]}",
        "{\"any\":false,\"roots\":[null]}",
        "{\"any\":false,\"roots\":[\"ABCDEF\"]}",
        "{\"any\":false,\"roots\":[\"" /* 63 digits */
        "000000000000000000000000000000000000000000000000000000000000000\"]}",
        "{\"any\":false,\"roots\":[\"" /* 65 digits */
        "00000000000000000000000000000000000000000000000000000000000000000\"]}",
        "{\"any\":false,\"roots\":[\"" /* not hex */
        "000000000000000000000000000000000000000000000000000000000000000G\"]}",
        "{\"any\":false,\"roots\":[\"" /* a space inside */
        "0000000000000000000000000000000 00000000000000000000000000000000\"]}",
        "{\"any\":false,\"any\":true,\"roots\":[]}",
        "{\"any\":false,\"roots\":[]} trailing",
        "{\"any\":false,\"roots\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}",
    };
    GError *err = NULL;
    GString *many = g_string_new("{\"any\":false,\"roots\":[");
    GString *huge = g_string_new("{\"any\":false,\"roots\":[],\"pad\":\"");

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        CmCtl *ctl = cm_ctl_from_json(bad[i], strlen(bad[i]), &err);
        ck_assert_msg(ctl == NULL, "CTL JSON #%zu accepted: %s", i, bad[i]);
        cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    }
    /* More roots than a CTL holds. */
    for (int i = 0; i < 1025; i++)
        g_string_append_printf(many, "%s\"%064X\"", i ? "," : "", i);
    g_string_append(many, "]}");
    ck_assert_ptr_null(cm_ctl_from_json(many->str, many->len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    /* Over the size bound. */
    for (int i = 0; i < 100 * 1024; i++)
        g_string_append_c(huge, 'A');
    g_string_append(huge, "\"}");
    ck_assert_ptr_null(cm_ctl_from_json(huge->str, huge->len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
    g_string_free(many, TRUE);
    g_string_free(huge, TRUE);
}
END_TEST

/* ---------------------------------------------------------- encodings */

START_TEST(test_der_pem_round_trip)
{
    GError *err = NULL;
    CmKey *subject = _i == 0 ? leaf_key : rsa_key;
    g_autoptr(CmCert) cert =
        issue(CM_CERT_CLIENT_SELF_SIGNED, "GUID:1234", 77, NOW, NOW + DAY, subject, NULL, NULL);
    g_autoptr(GBytes) der = cm_cert_to_der(cert);
    g_autofree char *pem = cm_cert_to_pem(cert);
    g_autoptr(CmCert) from_der = NULL;
    g_autoptr(CmCert) from_pem = NULL;
    g_autoptr(GBytes) der2 = NULL;
    g_autofree char *hex = cm_cert_thumbprint_hex(cert);
    guint8 digest[32];
    X509 *x;

    /* The thumbprint is the SHA-256 of the DER. */
    cm_hash(CM_HASH_SHA256, g_bytes_get_data(der, NULL), g_bytes_get_size(der), digest);
    ck_assert_mem_eq(cm_cert_thumbprint(cert), digest, 32);
    ck_assert_uint_eq(strlen(hex), 64);

    from_der = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &err);
    cm_assert_no_error(err);
    ck_assert_mem_eq(cm_cert_thumbprint(from_der), digest, 32);
    ck_assert_str_eq(cm_cert_subject_cn(from_der), "GUID:1234");
    ck_assert_uint_eq(cm_cert_serial(from_der), 77);
    ck_assert_int_eq(cm_cert_not_before(from_der), NOW);
    ck_assert_int_eq(cm_cert_not_after(from_der), NOW + DAY);
    ck_assert(cm_key_public_equal(cm_cert_public_key(from_der), subject));
    der2 = cm_cert_to_der(from_der);
    ck_assert(g_bytes_equal(der, der2));

    ck_assert(g_str_has_prefix(pem, "-----BEGIN CERTIFICATE-----\n"));
    from_pem = cm_cert_from_pem(pem, strlen(pem), &err);
    cm_assert_no_error(err);
    ck_assert_mem_eq(cm_cert_thumbprint(from_pem), digest, 32);

    /* From an X509 the caller keeps. */
    x = X509_dup(cm_cert_x509(cert));
    {
        g_autoptr(CmCert) from_x509 = cm_cert_from_x509(x, &err);
        cm_assert_no_error(err);
        ck_assert_ptr_eq(cm_cert_x509(from_x509), x);
        ck_assert_mem_eq(cm_cert_thumbprint(from_x509), digest, 32);
    }
    X509_free(x); /* still ours: the CmCert took its own reference */
}
END_TEST

/* A certificate that came in a BER encoding OpenSSL tolerates has the
 * thumbprint of its DER, the one cm_cert_to_der() gives and a CTL lists. */
START_TEST(test_thumbprint_from_ber)
{
    GError *err = NULL;
    g_autoptr(CmCert) cert =
        issue(CM_CERT_ROOT_CA, "Root", 1, NOW, NOW + DAY, root_key, NULL, NULL);
    g_autoptr(GBytes) der = cm_cert_to_der(cert);
    gsize len;
    const guint8 *p = g_bytes_get_data(der, &len);
    g_autofree guint8 *ber = g_malloc(len + 1);
    g_autoptr(CmCert) parsed = NULL;
    g_autoptr(CmCtl) ctl = cm_ctl_new();

    /* Outer SEQUENCE: 30 82 hi lo -> 30 83 00 hi lo. */
    ck_assert_int_eq(p[0], 0x30);
    ck_assert_int_eq(p[1], 0x82);
    ber[0] = 0x30;
    ber[1] = 0x83;
    ber[2] = 0x00;
    memcpy(ber + 3, p + 2, len - 2);
    parsed = cm_cert_from_der(ber, len + 1, &err);
    if (parsed == NULL) {
        cm_assert_error(&err, CM_PROTO_ERROR_INVALID); /* refusing BER is fine too */
        return;
    }
    cm_assert_no_error(err);
    ck_assert_mem_eq(cm_cert_thumbprint(parsed), cm_cert_thumbprint(cert), 32);
    cm_ctl_add(ctl, cert);
    ck_assert(cm_ctl_allows(ctl, parsed));
}
END_TEST

START_TEST(test_parse_garbage)
{
    GError *err = NULL;
    g_autoptr(CmCert) cert =
        issue(CM_CERT_CLIENT_SELF_SIGNED, "c", 1, NOW, NOW + DAY, leaf_key, NULL, NULL);
    g_autoptr(GBytes) der = cm_cert_to_der(cert);
    g_autofree char *pem = cm_cert_to_pem(cert);
    gsize len;
    const guint8 *p = g_bytes_get_data(der, &len);
    g_autofree guint8 *trailing = g_malloc(len + 4);
    g_autofree guint8 *huge = g_malloc0(CM_CERT_MAX_DER + 1);
    g_autofree char *huge_pem = g_strnfill(64 * 1024 + 1, 'A');
    g_autofree char *broken_pem = g_strdup(pem);
    g_autofree char *key_pem = cm_key_public_pem(leaf_key);
    g_autofree guint8 *ed_der = NULL;
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    X509 *ed_x509 = X509_new();
    int ed_len;

    memcpy(trailing, p, len);
    memcpy(trailing + len, "\0\0\0\0", 4);
    ck_assert_ptr_null(cm_cert_from_der(trailing, len + 4, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_der(p, len - 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_der(p, 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_der((const guint8 *)"\x30\x03\x02\x01\x01", 5, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_der(huge, CM_CERT_MAX_DER + 1, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);

    ck_assert_ptr_null(cm_cert_from_pem("", 0, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_pem("garbage", 7, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_pem(pem, strlen(pem) - 30, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_pem(key_pem, strlen(key_pem), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    broken_pem[60] = '!';
    ck_assert_ptr_null(cm_cert_from_pem(broken_pem, strlen(broken_pem), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_pem(huge_pem, strlen(huge_pem), &err));
    cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);

    /* A well-formed certificate for a key cmlab does not use. */
    ck_assert_ptr_nonnull(ed);
    X509_set_version(ed_x509, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(ed_x509), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(ed_x509), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"ed", -1, -1, 0);
    X509_set_issuer_name(ed_x509, X509_get_subject_name(ed_x509));
    X509_gmtime_adj(X509_getm_notBefore(ed_x509), 0);
    X509_gmtime_adj(X509_getm_notAfter(ed_x509), 3600);
    X509_set_pubkey(ed_x509, ed);
    ck_assert_int_gt(X509_sign(ed_x509, ed, NULL), 0);
    ed_len = i2d_X509(ed_x509, &ed_der);
    ck_assert_int_gt(ed_len, 0);
    ck_assert_ptr_null(cm_cert_from_der(ed_der, (size_t)ed_len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_from_x509(ed_x509, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    X509_free(ed_x509);
    EVP_PKEY_free(ed);
}
END_TEST

static int ui_prompts;

static int
ui_reader(UI *ui, UI_STRING *uis)
{
    ui_prompts++;
    if (UI_get_string_type(uis) == UIT_PROMPT || UI_get_string_type(uis) == UIT_VERIFY)
        return UI_set_result(ui, uis, "secret") == 0 ? 1 : 0;
    return 1;
}

/* A PEM block that says it is encrypted is refused, never a prompt for a
 * pass phrase on the terminal (a daemon would hang there). */
START_TEST(test_pem_encrypted_refused)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autoptr(CmCrl) crl = NULL;
    UI_METHOD *ui = UI_create_method("test terminal");
    BIO *cert_bio = BIO_new(BIO_s_mem());
    BIO *crl_bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;

    pki_build(&pki, NOW);
    crl = crl_issue(pki.inter, inter_key, NULL, 0, NOW, NOW - HOUR, NOW + DAY);
    UI_method_set_reader(ui, ui_reader);
    UI_set_default_method(ui);
    ck_assert(PEM_ASN1_write_bio((i2d_of_void *)i2d_X509, PEM_STRING_X509, cert_bio,
                                 cm_cert_x509(pki.root), EVP_aes_128_cbc(),
                                 (const unsigned char *)"secret", 6, NULL, NULL));
    ck_assert(PEM_ASN1_write_bio((i2d_of_void *)i2d_X509_CRL, PEM_STRING_X509_CRL, crl_bio,
                                 cm_crl_x509(crl), EVP_aes_128_cbc(),
                                 (const unsigned char *)"secret", 6, NULL, NULL));
    ui_prompts = 0;
    len = BIO_get_mem_data(cert_bio, &data);
    ck_assert_ptr_nonnull(strstr(data, "Proc-Type: 4,ENCRYPTED"));
    ck_assert_ptr_null(cm_cert_from_pem(data, (size_t)len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    len = BIO_get_mem_data(crl_bio, &data);
    ck_assert_ptr_null(cm_crl_from_pem(data, (size_t)len, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_int_eq(ui_prompts, 0);
    UI_set_default_method(UI_OpenSSL());
    UI_destroy_method(ui);
    BIO_free(cert_bio);
    BIO_free(crl_bio);
    pki_clear(&pki);
}
END_TEST

START_TEST(test_bundle)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autofree char *a = NULL;
    g_autofree char *b = NULL;
    g_autofree char *c = NULL;
    g_autofree char *bundle = NULL;
    g_autofree char *with_key = NULL;
    g_autofree char *key_pem = cm_key_public_pem(leaf_key);
    GPtrArray *certs;

    pki_build(&pki, NOW);
    a = cm_cert_to_pem(pki.client);
    b = cm_cert_to_pem(pki.inter);
    c = cm_cert_to_pem(pki.root);
    bundle = g_strconcat("leaf:\n", a, "issuer:\n", b, c, "end\n", NULL);

    certs = cm_cert_bundle_from_pem(bundle, strlen(bundle), 8, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(certs->len, 3);
    ck_assert_mem_eq(cm_cert_thumbprint(g_ptr_array_index(certs, 0)),
                     cm_cert_thumbprint(pki.client), 32);
    ck_assert_mem_eq(cm_cert_thumbprint(g_ptr_array_index(certs, 1)), cm_cert_thumbprint(pki.inter),
                     32);
    ck_assert_mem_eq(cm_cert_thumbprint(g_ptr_array_index(certs, 2)), cm_cert_thumbprint(pki.root),
                     32);
    g_ptr_array_unref(certs);

    /* Exactly max_certs is fine. */
    certs = cm_cert_bundle_from_pem(bundle, strlen(bundle), 3, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(certs->len, 3);
    g_ptr_array_unref(certs);
    /* At most max_certs are read. */
    certs = cm_cert_bundle_from_pem(bundle, strlen(bundle), 2, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(certs->len, 2);
    g_ptr_array_unref(certs);
    /* cm_cert_from_pem takes the first of a bundle. */
    {
        g_autoptr(CmCert) first = cm_cert_from_pem(bundle, strlen(bundle), &err);
        cm_assert_no_error(err);
        ck_assert_mem_eq(cm_cert_thumbprint(first), cm_cert_thumbprint(pki.client), 32);
    }

    /* Other PEM blocks are passed over. */
    with_key = g_strconcat(key_pem, a, NULL);
    certs = cm_cert_bundle_from_pem(with_key, strlen(with_key), 8, &err);
    cm_assert_no_error(err);
    ck_assert_uint_eq(certs->len, 1);
    g_ptr_array_unref(certs);

    /* No certificate, or a size over the bound for max_certs. */
    ck_assert_ptr_null(cm_cert_bundle_from_pem(key_pem, strlen(key_pem), 8, &err));
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_cert_bundle_from_pem(bundle, strlen(bundle), 0, &err));
    ck_assert_ptr_nonnull(err);
    g_clear_error(&err);
    {
        g_autofree char *big = g_strnfill(2 * 64 * 1024 + 1, '\n');
        ck_assert_ptr_null(cm_cert_bundle_from_pem(big, strlen(big), 2, &err));
        cm_assert_error(&err, CM_PROTO_ERROR_TOO_LARGE);
        /* A huge max_certs does not overflow the bound. */
        ck_assert_ptr_null(cm_cert_bundle_from_pem(big, strlen(big), G_MAXSIZE, &err));
        ck_assert_ptr_nonnull(err);
        g_clear_error(&err);
    }
    pki_clear(&pki);
}
END_TEST

/* A corrupted certificate inside a bundle is an error, not the end of the
 * bundle. */
START_TEST(test_bundle_corrupt_member)
{
    GError *err = NULL;
    Pki pki = {0};
    g_autofree char *a = NULL;
    g_autofree char *b = NULL;
    g_autofree char *bundle = NULL;
    GPtrArray *certs;

    pki_build(&pki, NOW);
    a = cm_cert_to_pem(pki.client);
    b = cm_cert_to_pem(pki.inter);
    b[80] = b[80] == 'A' ? 'B' : 'A'; /* flips bits inside the DER */
    b[81] = '*';                      /* not base64 */
    bundle = g_strconcat(a, b, NULL);
    certs = cm_cert_bundle_from_pem(bundle, strlen(bundle), 8, &err);
    ck_assert_ptr_null(certs);
    cm_assert_error(&err, CM_PROTO_ERROR_INVALID);
    pki_clear(&pki);
}
END_TEST

/* -------------------------------------------- openssl cross-checks */

static int
openssl_verify(const char *dir, const char *leaf, const char *crl, char **out)
{
    g_autofree char *root = g_build_filename(dir, "root.pem", NULL);
    g_autofree char *inter = g_build_filename(dir, "inter.pem", NULL);
    g_autofree char *leaf_path = g_build_filename(dir, leaf, NULL);
    g_autofree char *crl_path = crl ? g_build_filename(dir, crl, NULL) : NULL;
    const char *argv[16];
    int n = 0;
    char *o = NULL, *e = NULL;
    int rc;

    argv[n++] = cm_test_openssl();
    argv[n++] = "verify";
    argv[n++] = "-CAfile";
    argv[n++] = root;
    argv[n++] = "-untrusted";
    argv[n++] = inter;
    if (crl != NULL) {
        argv[n++] = "-crl_check";
        argv[n++] = "-CRLfile";
        argv[n++] = crl_path;
    }
    argv[n++] = leaf_path;
    argv[n] = NULL;
    rc = cm_test_run(argv, &o, &e);
    if (out != NULL)
        *out = g_strconcat(o ? o : "", e ? e : "", NULL);
    g_free(o);
    g_free(e);
    return rc;
}

static void
write_pem(const char *dir, const char *name, char *pem)
{
    g_free(cm_test_write(dir, name, pem, strlen(pem)));
    g_free(pem);
}

/* `openssl verify` accepts the chain cmlab issued (the real clock: openssl
 * checks validity against it). */
START_TEST(test_openssl_verify_chain)
{
    CmTime now = g_get_real_time();
    Pki pki = {0};
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *out = NULL;
    int rc;

    pki_build(&pki, now);
    write_pem(dir, "root.pem", cm_cert_to_pem(pki.root));
    write_pem(dir, "inter.pem", cm_cert_to_pem(pki.inter));
    write_pem(dir, "client.pem", cm_cert_to_pem(pki.client));
    write_pem(dir, "server.pem", cm_cert_to_pem(pki.server));
    rc = openssl_verify(dir, "client.pem", NULL, &out);
    ck_assert_msg(rc == 0, "openssl verify failed (%d): %s", rc, out);
    g_clear_pointer(&out, g_free);
    rc = openssl_verify(dir, "server.pem", NULL, &out);
    ck_assert_msg(rc == 0, "openssl verify failed (%d): %s", rc, out);
    g_clear_pointer(&out, g_free);
    /* Without the root it does not. */
    write_pem(dir, "root.pem", cm_cert_to_pem(pki.inter));
    rc = openssl_verify(dir, "client.pem", NULL, &out);
    ck_assert_msg(rc != 0, "openssl verify accepted a chain without its root: %s", out);
    cm_test_rmdir(dir);
    pki_clear(&pki);
}
END_TEST

/* `openssl verify -crl_check` with the issuer's CRL cmlab published rejects
 * the revoked certificate and accepts one that is not listed.
 * REQ: TRUST-14 */
START_TEST(test_openssl_verify_crl)
{
    CmTime now = g_get_real_time();
    Pki pki = {0};
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *out = NULL;
    g_autoptr(CmCrl) crl = NULL;
    static const guint64 revoked[] = {100}; /* the client certificate */
    int rc;

    pki_build(&pki, now);
    crl = crl_issue(pki.inter, inter_key, revoked, 1, now, now - HOUR, now + 7 * DAY);
    write_pem(dir, "root.pem", cm_cert_to_pem(pki.root));
    write_pem(dir, "inter.pem", cm_cert_to_pem(pki.inter));
    write_pem(dir, "client.pem", cm_cert_to_pem(pki.client));
    write_pem(dir, "server.pem", cm_cert_to_pem(pki.server));
    write_pem(dir, "crl.pem", cm_crl_to_pem(crl));
    rc = openssl_verify(dir, "client.pem", "crl.pem", &out);
    ck_assert_msg(rc != 0, "openssl verify accepted a revoked certificate: %s", out);
    ck_assert_msg(strstr(out, "revoked") != NULL, "unexpected openssl output: %s", out);
    g_clear_pointer(&out, g_free);
    rc = openssl_verify(dir, "server.pem", "crl.pem", &out);
    ck_assert_msg(rc == 0, "openssl verify refused a valid certificate (%d): %s", rc, out);
    cm_test_rmdir(dir);
    pki_clear(&pki);
}
END_TEST

static Suite *
cert_suite(void)
{
    Suite *s = suite_create("cert");
    TCase *tc;

    tc = tcase_create("issue");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_loop_test(tc, test_issue_profiles, 0, 2 * G_N_ELEMENTS(profile_cases));
    tcase_add_test(tc, test_issue_san_and_options);
    tcase_add_test(tc, test_issue_name_injection);
    tcase_add_test(tc, test_issue_spec_refused);
    tcase_add_test(tc, test_self_signed);
    tcase_add_test(tc, test_self_signed_by_name_only);
    tcase_add_loop_test(tc, test_issue_public_key_encoding, 0, 2);
    tcase_add_loop_test(tc, test_mp_signed_by_trk, 0, 2);
    tcase_add_test(tc, test_rogue_mp_refused);
    tcase_add_test(tc, test_check_time);
    tcase_add_test(tc, test_validity_encoding);
    suite_add_tcase(s, tc);

    tc = tcase_create("trust");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_test(tc, test_chain_client_auth);
    tcase_add_test(tc, test_chain_server_auth);
    tcase_add_test(tc, test_chain_intermediates);
    tcase_add_test(tc, test_chain_expired);
    tcase_add_test(tc, test_chain_impostor_ca);
    tcase_add_test(tc, test_revoked_with_crl_check);
    tcase_add_test(tc, test_crl_check_x509_store);
    tcase_add_test(tc, test_crl_check_without_crl);
    tcase_add_test(tc, test_crl_stale_or_forged_in_trust);
    tcase_add_test(tc, test_crl_check);
    tcase_add_test(tc, test_crl_issue_refused);
    tcase_add_test(tc, test_crl_encodings);
    suite_add_tcase(s, tc);

    tc = tcase_create("ctl");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_test(tc, test_ctl_limits_roots);
    tcase_add_test(tc, test_ctl_basics);
    tcase_add_test(tc, test_ctl_json_round_trip);
    tcase_add_test(tc, test_ctl_json_malformed);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoding");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_loop_test(tc, test_der_pem_round_trip, 0, 2);
    tcase_add_test(tc, test_thumbprint_from_ber);
    tcase_add_test(tc, test_parse_garbage);
    tcase_add_test(tc, test_pem_encrypted_refused);
    tcase_add_test(tc, test_bundle);
    tcase_add_test(tc, test_bundle_corrupt_member);
    suite_add_tcase(s, tc);

    tc = tcase_create("openssl");
    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_add_test(tc, test_openssl_verify_chain);
    tcase_add_test(tc, test_openssl_verify_crl);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(cert_suite());
}
