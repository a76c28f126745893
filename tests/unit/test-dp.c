/* test-dp.c - the distribution point, content and transfers. */
#include <string.h>

#include "roles.h"
#include "cmdp.h"

#define NOW  CM_TEST_NOW /* 2026-01-01T00:00:00Z, a midnight */
#define SEC  CM_USEC_PER_SEC
#define HOUR CM_USEC_PER_HOUR
#define DAY  CM_USEC_PER_DAY
#define SMSID "GUID:5A1C2D3E-0000-4000-8000-000000000001"

static struct {
    CmKey *site_key, *other_key, *ca_key, *ca_b_key, *leaf_key;
    CmCert *site_cert, *root, *root_b, *client, *client_b, *revoked;
    CmCrl *crl;
} F;

static CmKey *
key(void)
{
    GError *e = NULL;
    CmKey *k = cm_key_generate(CM_KEY_EC_P256, &e);

    if (k == NULL)
        g_error("key: %s", e->message);
    return k;
}

static CmCert *
issue(CmCertProfile profile, const char *cn, guint64 serial, CmKey *subject, CmKey *issuer_key,
      CmCert *issuer)
{
    GError *e = NULL;
    CmCertSpec spec = {.profile = profile, .subject_cn = cn, .serial = serial,
                       .not_before = NOW - DAY, .not_after = NOW + 365 * DAY,
                       .subject_key = subject, .issuer_key = issuer_key, .issuer_cert = issuer};
    CmCert *c = cm_cert_issue(&spec, &e);

    if (c == NULL)
        g_error("issuing %s: %s", cn, e->message);
    return c;
}

static void
fixture_make(void)
{
    GError *e = NULL;
    CmCrlEntry entry = {.serial = 11, .revoked_at = NOW - DAY};

    F.site_key = key();
    F.other_key = key();
    F.ca_key = key();
    F.ca_b_key = key();
    F.leaf_key = key();
    F.site_cert = issue(CM_CERT_SITE_SIGNING, "PS1 Site Server Signing", 1, F.site_key, NULL,
                        NULL);
    F.root = issue(CM_CERT_ROOT_CA, "Contoso Root", 1, F.ca_key, NULL, NULL);
    F.root_b = issue(CM_CERT_ROOT_CA, "Fabrikam Root", 1, F.ca_b_key, NULL, NULL);
    F.client = issue(CM_CERT_CLIENT_AUTH, "pc1.contoso.example", 10, F.leaf_key, F.ca_key,
                     F.root);
    F.client_b = issue(CM_CERT_CLIENT_AUTH, "pc9.fabrikam.example", 10, F.leaf_key, F.ca_b_key,
                       F.root_b);
    F.revoked = issue(CM_CERT_CLIENT_AUTH, "stolen.contoso.example", 11, F.leaf_key, F.ca_key,
                      F.root);
    F.crl = cm_crl_issue(F.root, F.ca_key, &entry, 1, 1, NOW - DAY, NOW + 7 * DAY, &e);
    if (F.crl == NULL)
        g_error("CRL: %s", e->message);
}

/* ------------------------------------------------------------ helpers */

static CmDpPackage *
package(const char *id, const char *a, const char *b)
{
    GError *e = NULL;
    g_autoptr(GBytes) ba = g_bytes_new(a, strlen(a));
    g_autoptr(GBytes) bb = g_bytes_new(b, strlen(b));
    /* Deliberately out of order: the manifest sorts them. */
    CmDpFile files[] = {{"setup.exe", ba}, {"readme.txt", bb}};
    CmDpPackage *p = cm_dp_package_new(id, files, 2, &e);

    cm_assert_no_error(e);
    return p;
}

typedef struct {
    gboolean https, anonymous, prestaged, crl;
} DpOpts;

typedef struct {
    CmDp *dp;
    CmTrust *trust;
} Dp;

static Dp
dp_make(const DpOpts *o)
{
    GError *e = NULL;
    static const char *const naa[] = {"svc-naa@CORP.EXAMPLE", NULL};
    Dp d = {.trust = cm_trust_new()};
    CmDpConfig c = {.name = "dp1.corp.example", .site_code = "PS1", .https = o->https,
                    .allow_anonymous = o->anonymous, .prestaged = o->prestaged,
                    .network_access_accounts = naa, .site_signing_cert = F.site_cert,
                    .pki_trust = d.trust};

    ck_assert(cm_trust_add_root(d.trust, F.root, &e));
    if (o->crl) {
        ck_assert(cm_trust_add_crl(d.trust, F.crl, &e));
        cm_trust_set_crl_check(d.trust, TRUE);
    }
    d.dp = cm_dp_new(&c, &e);
    cm_assert_no_error(e);
    return d;
}

static void
dp_free(Dp *d)
{
    cm_dp_free(d->dp);
    cm_trust_free(d->trust);
}

static CmDpAuth
auth(Dp *d, CmTransport t, CmAuthKind kind, const char *principal, const char *domain,
     const CmCert *cert, const char *token, CmTime now, CmResponse *resp)
{
    CmDpRequest req = {.path = "/SMS_DP_SMSPKG$/KB1", .transport = t};

    req.peer.kind = kind;
    g_strlcpy(req.peer.principal, principal ? principal : "", sizeof req.peer.principal);
    g_strlcpy(req.peer.domain, domain ? domain : "", sizeof req.peer.domain);
    req.peer.client_cert = cert;
    req.peer.token = token;
    cm_response_clear(resp);
    return cm_dp_authenticate(d->dp, &req, now, resp);
}

static char *
content_token(CmKey *k, CmTime lifetime)
{
    GError *e = NULL;
    char *t = cm_dp_content_token_issue(k, "PS1", SMSID, lifetime, NOW, &e);

    cm_assert_no_error(e);
    return t;
}

/* ------------------------------------------------ DP-01 */

/* An HTTP DP: anonymous if allowed, the computer account or the network
 * access account, a content access token over Enhanced HTTP only.
 * REQ: DP-01 */
START_TEST(test_auth_http_dp)
{
    DpOpts o = {.anonymous = TRUE};
    Dp d = dp_make(&o);
    Dp closed;
    CmResponse r = {0};
    g_autofree char *token = content_token(F.site_key, 0);

    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_ANONYMOUS, NULL, NULL, NULL, NULL, NOW,
                          &r),
                     CM_DP_AUTH_ANONYMOUS);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "PC1$@CORP.EXAMPLE",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_COMPUTER);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "svc-naa@corp.example",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_NAA);
    /* The NAA named without its realm, the realm from the transport. */
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "SVC-NAA", "CORP.EXAMPLE",
                          NULL, NULL, NOW, &r),
                     CM_DP_AUTH_NAA);
    /* A user account is neither. */
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "alice@CORP.EXAMPLE",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_FORBIDDEN);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_EHTTP, CM_AUTH_TOKEN, NULL, NULL, NULL, token, NOW,
                          &r),
                     CM_DP_AUTH_TOKEN);
    /* A token over plain HTTP is refused: anyone on the path could reuse it. */
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_TOKEN, NULL, NULL, NULL, token, NOW, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_HTTPS_REQUIRED);
    /* No PKI on an HTTP DP, no Entra ID token, no HTTPS transport. */
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_PKI, NULL, NULL, F.client, NULL, NOW,
                          &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_EHTTP, CM_AUTH_ENTRA, "device", NULL, NULL, token,
                          NOW, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_ANONYMOUS, NULL, NULL, NULL, NULL, NOW,
                          &r),
                     CM_DP_AUTH_NONE);

    /* Anonymous access not allowed. */
    o.anonymous = FALSE;
    closed = dp_make(&o);
    ck_assert_int_eq(auth(&closed, CM_TRANSPORT_HTTP, CM_AUTH_ANONYMOUS, NULL, NULL, NULL, NULL,
                          NOW, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_UNTRUSTED);
    ck_assert_int_eq(auth(&closed, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "PC1$@CORP.EXAMPLE",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_COMPUTER);
    /* The NAA changes: the old one is refused. */
    {
        const char *naa[] = {"naa2@CORP.EXAMPLE", NULL};
        cm_dp_set_network_access_accounts(closed.dp, naa);
        ck_assert_int_eq(auth(&closed, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS,
                              "svc-naa@CORP.EXAMPLE", "corp.example", NULL, NULL, NOW, &r),
                         CM_DP_AUTH_NONE);
        ck_assert_int_eq(auth(&closed, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "naa2@corp.example",
                              "corp.example", NULL, NULL, NOW, &r),
                         CM_DP_AUTH_NAA);
    }
    ck_assert_int_eq(cm_dp_counters(d.dp)->by_auth[CM_DP_AUTH_ANONYMOUS], 1);
    ck_assert_int_eq(cm_dp_counters(d.dp)->by_auth[CM_DP_AUTH_NAA], 2);
    ck_assert_int_eq(cm_dp_counters(d.dp)->by_auth[CM_DP_AUTH_NONE], 5);
    cm_response_clear(&r);
    dp_free(&d);
    dp_free(&closed);
}
END_TEST

/* An HTTPS DP: a PKI certificate, the computer account or the network
 * access account, a content access token; never anonymous.  REQ: DP-01 */
START_TEST(test_auth_https_dp)
{
    DpOpts o = {.https = TRUE, .crl = TRUE};
    Dp d = dp_make(&o);
    CmResponse r = {0};
    GError *e = NULL;
    g_autofree char *token = content_token(F.site_key, 0);
    g_autofree char *forged = content_token(F.other_key, 0);

    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_PKI, NULL, NULL, F.client, NULL, NOW,
                          &r),
                     CM_DP_AUTH_PKI);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_PKI, NULL, NULL, F.client_b, NULL, NOW,
                          &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_UNTRUSTED);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_PKI, NULL, NULL, F.revoked, NULL, NOW,
                          &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_REVOKED);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_PKI, NULL, NULL, F.client, NULL,
                          NOW + 400 * DAY, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_KERBEROS, "PC1$@CORP.EXAMPLE",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_COMPUTER);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_KERBEROS, "svc-naa@CORP.EXAMPLE",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_NAA);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_TOKEN, NULL, NULL, NULL, token, NOW,
                          &r),
                     CM_DP_AUTH_TOKEN);
    /* Tokens: expired, signed by another key, not a content token. */
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_TOKEN, NULL, NULL, NULL, token,
                          NOW + 9 * HOUR, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_UNTRUSTED);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_TOKEN, NULL, NULL, NULL, forged, NOW,
                          &r),
                     CM_DP_AUTH_NONE);
    {
        g_autoptr(json_t) claims = cm_jwt_claims_new("PS1", "cmg", SMSID, NOW, DAY, NULL);
        g_autofree char *cmg_token = NULL;
        json_object_set_new(claims, "kind", json_string("client"));
        cmg_token = cm_jwt_sign(F.site_key, "PS1", claims, &e);
        ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_TOKEN, NULL, NULL, NULL, cmg_token,
                              NOW, &r),
                         CM_DP_AUTH_NONE);
    }
    /* Never anonymous, never over HTTP. */
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTPS, CM_AUTH_ANONYMOUS, NULL, NULL, NULL, NULL, NOW,
                          &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(auth(&d, CM_TRANSPORT_HTTP, CM_AUTH_KERBEROS, "PC1$@CORP.EXAMPLE",
                          "corp.example", NULL, NULL, NOW, &r),
                     CM_DP_AUTH_NONE);
    ck_assert_int_eq(r.reason, CM_REASON_HTTPS_REQUIRED);
    {
        CmDpConfig bad = {.name = "dp", .site_code = "PS1", .https = TRUE,
                          .allow_anonymous = TRUE};
        ck_assert_ptr_null(cm_dp_new(&bad, &e));
        ck_assert_ptr_nonnull(e);
        g_clear_error(&e);
    }
    cm_response_clear(&r);
    dp_free(&d);
}
END_TEST

/* ------------------------------------------------ DP-04 */

/* The content hash of a deployment's signed policy covers the manifest,
 * which covers every file: the client refuses anything else.  REQ: DP-04 */
START_TEST(test_content_hash)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(CmDpPackage) pkg = package("KB500001", "MZ the setup program", "read me");
    g_autoptr(CmDpPackage) evil = package("KB500001", "MZ evil program", "read me");
    g_autoptr(json_t) capture = NULL, policy = NULL;
    g_autoptr(GBytes) bytes = NULL;
    g_autoptr(CmDpManifest) m = NULL;
    g_autofree char *policy_id = NULL, *hex = NULL;
    GBytes *manifest = cm_dp_package_manifest(pkg);
    GBytes *evil_manifest = cm_dp_package_manifest(evil);
    GError *e = NULL;
    guint8 digest[32];
    CmDeployment dep = {.name = "Critical update", .content_id = cm_dp_package_id(pkg),
                        .content_hash = cm_dp_package_hash(pkg),
                        .content_size = (gint64)cm_dp_package_size(pkg), .required = TRUE};

    /* The content hash is the manifest's SHA-256; the manifest is canonical. */
    cm_hash(CM_HASH_SHA256, g_bytes_get_data(manifest, NULL), g_bytes_get_size(manifest), digest);
    ck_assert(memcmp(digest, cm_dp_package_hash(pkg), 32) == 0);
    ck_assert_uint_eq(cm_dp_package_size(pkg), strlen("MZ the setup program") + 7);
    {
        g_autofree char *text = g_strndup(g_bytes_get_data(manifest, NULL),
                                          g_bytes_get_size(manifest));
        g_autofree char *h1 = NULL, *upper = NULL;
        guint8 fh[32];
        cm_hash(CM_HASH_SHA256, "read me", 7, fh);
        upper = cm_enc_hex(fh, 32);
        h1 = g_ascii_strdown(upper, -1);
        ck_assert(g_str_has_prefix(text, "{\"files\":[{\"hash\":\""));
        ck_assert_ptr_nonnull(strstr(text, h1));
        ck_assert(strstr(text, "readme.txt") < strstr(text, "setup.exe")); /* sorted */
    }

    /* The site deploys it; the client holds the verified policy. */
    policy_id = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "admin", NOW, &e);
    cm_assert_no_error(e);
    capture = cm_site_policy_capture(lab->site, policy_id);
    ck_assert_ptr_nonnull(capture);
    bytes = cm_json_b64(capture, "policy", 1 << 20, &e);
    cm_assert_no_error(e);
    policy = cm_json_parse(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes), 1 << 20, &e);
    cm_assert_no_error(e);

    /* The genuine download passes... */
    m = cm_dp_manifest_verify(policy, g_bytes_get_data(manifest, NULL), g_bytes_get_size(manifest),
                              &e);
    cm_assert_no_error(e);
    ck_assert_uint_eq(cm_dp_manifest_count(m), 2);
    ck_assert(cm_dp_file_verify(m, "setup.exe", (const guint8 *)"MZ the setup program", 20, &e));
    cm_assert_no_error(e);
    {
        CmDpFile files[] = {{"setup.exe", cm_dp_package_file(pkg, "setup.exe")},
                            {"readme.txt", cm_dp_package_file(pkg, "readme.txt")}};
        ck_assert(cm_dp_content_verify(policy, g_bytes_get_data(manifest, NULL),
                                       g_bytes_get_size(manifest), files, 2, &e));
        cm_assert_no_error(e);
        /* ...a missing file, a file twice, a swapped file do not. */
        ck_assert(!cm_dp_content_verify(policy, g_bytes_get_data(manifest, NULL),
                                        g_bytes_get_size(manifest), files, 1, &e));
        ck_assert(g_error_matches(e, CM_DP_ERROR, CM_DP_ERROR_MISMATCH));
        g_clear_error(&e);
        files[1] = files[0];
        ck_assert(!cm_dp_content_verify(policy, g_bytes_get_data(manifest, NULL),
                                        g_bytes_get_size(manifest), files, 2, &e));
        g_clear_error(&e);
        files[0].data = cm_dp_package_file(evil, "setup.exe");
        files[1] = (CmDpFile){"readme.txt", cm_dp_package_file(pkg, "readme.txt")};
        ck_assert(!cm_dp_content_verify(policy, g_bytes_get_data(manifest, NULL),
                                        g_bytes_get_size(manifest), files, 2, &e));
        ck_assert(g_error_matches(e, CM_DP_ERROR, CM_DP_ERROR_MISMATCH));
        g_clear_error(&e);
    }
    /* A DP serving another package under the same ID (its own, consistent
     * manifest) is caught at the manifest. */
    ck_assert_ptr_null(cm_dp_manifest_verify(policy, g_bytes_get_data(evil_manifest, NULL),
                                             g_bytes_get_size(evil_manifest), &e));
    ck_assert(g_error_matches(e, CM_DP_ERROR, CM_DP_ERROR_MISMATCH));
    g_clear_error(&e);
    /* A file changed by one byte, or cut short. */
    ck_assert(!cm_dp_file_verify(m, "setup.exe", (const guint8 *)"MZ the setup progran", 20, &e));
    ck_assert(g_error_matches(e, CM_DP_ERROR, CM_DP_ERROR_MISMATCH));
    g_clear_error(&e);
    ck_assert(!cm_dp_file_verify(m, "setup.exe", (const guint8 *)"MZ the setup", 12, &e));
    g_clear_error(&e);
    ck_assert(!cm_dp_file_verify(m, "other.dll", (const guint8 *)"x", 1, &e));
    g_clear_error(&e);
    /* A policy without content, or with a malformed hash. */
    {
        g_autoptr(json_t) none = json_pack("{s:s}", "policy_id", "PS100001");
        g_autoptr(json_t) badhash = json_pack("{s:{s:s, s:s, s:i}}", "content", "id", "KB500001",
                                              "hash", "xyz", "size", 27);
        ck_assert_ptr_null(cm_dp_manifest_verify(none, g_bytes_get_data(manifest, NULL),
                                                 g_bytes_get_size(manifest), &e));
        g_clear_error(&e);
        ck_assert_ptr_null(cm_dp_manifest_verify(badhash, g_bytes_get_data(manifest, NULL),
                                                 g_bytes_get_size(manifest), &e));
        g_clear_error(&e);
    }
    hex = cm_dp_package_hash_hex(pkg);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(policy, "content"), "hash")),
                     hex);
}
END_TEST

/* The DP serves manifests and files of the content it holds.  REQ: DP-01, DP-04 */
START_TEST(test_serve)
{
    DpOpts o = {.anonymous = TRUE};
    Dp d = dp_make(&o);
    g_autoptr(CmDpPackage) pkg = package("KB500001", "MZ the setup program", "read me");
    CmResponse r = {0};
    CmDpRequest req = {.transport = CM_TRANSPORT_HTTP};
    static const struct {
        const char *path;
        CmReason reason;
    } bad[] = {
        {"/SMS_DP_SMSPKG$/KB500002", CM_REASON_NOT_FOUND},
        {"/SMS_DP_SMSPKG$/KB500001/other.dll", CM_REASON_NOT_FOUND},
        {"/SMS_DP_SMSPKG$/KB500001/../../etc/passwd", CM_REASON_BAD_REQUEST},
        {"/SMS_DP_SMSPKG$/KB500001/a/b", CM_REASON_BAD_REQUEST},
        {"/SMS_DP_SMSPKG$/", CM_REASON_BAD_REQUEST},
        {"/SMS_DP_SMSPKG$/.hidden", CM_REASON_BAD_REQUEST},
        {"/etc/passwd", CM_REASON_UNKNOWN_ENDPOINT},
    };

    cm_dp_content_add(d.dp, pkg, CM_DP_SOURCE_TRANSFER);
    req.path = "/SMS_DP_SMSPKG$/KB500001";
    cm_dp_handle(d.dp, &req, NOW, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(g_bytes_equal(r.body, cm_dp_package_manifest(pkg)));
    req.path = "/sms_dp_smspkg$/KB500001/setup.exe";
    cm_dp_handle(d.dp, &req, NOW, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(g_bytes_get_size(r.body), 20);
    ck_assert(memcmp(g_bytes_get_data(r.body, NULL), "MZ the setup program", 20) == 0);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        req.path = bad[i].path;
        cm_dp_handle(d.dp, &req, NOW, &r);
        ck_assert_msg(r.reason == bad[i].reason, "%s: %s", bad[i].path, r.message);
    }
    /* Authentication comes first. */
    req.path = "/SMS_DP_SMSPKG$/KB500001";
    req.peer.kind = CM_AUTH_KERBEROS;
    g_strlcpy(req.peer.principal, "alice@CORP.EXAMPLE", sizeof req.peer.principal);
    cm_dp_handle(d.dp, &req, NOW, &r);
    ck_assert_int_eq(r.reason, CM_REASON_FORBIDDEN);
    ck_assert_int_eq(cm_dp_counters(d.dp)->served_manifests, 1);
    ck_assert_int_eq(cm_dp_counters(d.dp)->served_files, 1);
    ck_assert_int_eq(cm_dp_counters(d.dp)->bytes_served,
                     (gint64)(g_bytes_get_size(cm_dp_package_manifest(pkg)) + 20));
    ck_assert(cm_dp_content_remove(d.dp, "KB500001"));
    ck_assert_uint_eq(cm_dp_content_count(d.dp), 0);
    cm_response_clear(&r);
    dp_free(&d);
}
END_TEST

/* Only the canonical manifest is a manifest.  REQ: DP-04 */
START_TEST(test_manifest_strict)
{
    g_autoptr(CmDpPackage) pkg = package("KB1", "a", "b");
    GBytes *good = cm_dp_package_manifest(pkg);
    g_autofree char *text = g_strndup(g_bytes_get_data(good, NULL), g_bytes_get_size(good));
    g_autofree char *upper = g_ascii_strup(text, -1);
    g_autofree char *spaced = g_strdup_printf(" %s", text);
    static const char *const bad[] = {
        "{\"files\":[],\"id\":\"KB1\"}",
        "{\"files\":[{\"hash\":\"00\",\"name\":\"a\",\"size\":1}],\"id\":\"KB1\"}",
        "{\"files\":[{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"name\":\"../a\",\"size\":1}],\"id\":\"KB1\"}",
        "{\"files\":[{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"name\":\"b\",\"size\":1},{\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"name\":\"a\","
        "\"size\":1}],\"id\":\"KB1\"}",
        "{\"files\":[{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"name\":\"a\",\"size\":1},{\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"name\":\"a\","
        "\"size\":1}],\"id\":\"KB1\"}",
        "{\"files\":[{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"name\":\"a\",\"size\":-1}],\"id\":\"KB1\"}",
        "{\"extra\":1,\"files\":[{\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"name\":\"a\","
        "\"size\":1}],\"id\":\"KB1\"}",
        "{\"files\":[{\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"name\":\"a\",\"size\":1}],\"id\":\"../KB1\"}",
    };
    GError *e = NULL;
    g_autoptr(CmDpManifest) m = cm_dp_manifest_parse(g_bytes_get_data(good, NULL),
                                                     g_bytes_get_size(good), &e);

    cm_assert_no_error(e);
    ck_assert_str_eq(cm_dp_manifest_id(m), "KB1");
    ck_assert_uint_eq(cm_dp_manifest_size(m), 2);
    ck_assert_ptr_nonnull(cm_dp_manifest_find(m, "readme.txt"));
    ck_assert_ptr_null(cm_dp_manifest_find(m, "nope"));
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(cm_dp_manifest_parse((const guint8 *)bad[i], strlen(bad[i]), &e) == NULL,
                      "%s", bad[i]);
        ck_assert_ptr_nonnull(e);
        g_clear_error(&e);
    }
    ck_assert_ptr_null(cm_dp_manifest_parse((const guint8 *)upper, strlen(upper), &e));
    g_clear_error(&e);
    ck_assert_ptr_null(cm_dp_manifest_parse((const guint8 *)spaced, strlen(spaced), &e));
    g_clear_error(&e);
    /* Packages: no files, a bad name, a name twice. */
    {
        g_autoptr(GBytes) b = g_bytes_new("x", 1);
        CmDpFile twice[] = {{"a", b}, {"a", b}};
        CmDpFile slash[] = {{"a/b", b}};
        ck_assert_ptr_null(cm_dp_package_new("KB1", twice, 0, &e));
        g_clear_error(&e);
        ck_assert_ptr_null(cm_dp_package_new("KB1", twice, 2, &e));
        g_clear_error(&e);
        ck_assert_ptr_null(cm_dp_package_new("KB1", slash, 1, &e));
        g_clear_error(&e);
        ck_assert_ptr_null(cm_dp_package_new("", slash, 1, &e));
        g_clear_error(&e);
    }
}
END_TEST

/* ------------------------------------------------ DP-02 */

static guint64
run_to(CmDpTransfer *t, CmTime now, CmTime *wake, GPtrArray *done)
{
    CmDpTransferTick tick;
    guint64 bytes;

    cm_dp_transfer_tick_init(&tick);
    cm_dp_transfer_run(t, now, &tick);
    bytes = tick.bytes;
    *wake = tick.wake_at;
    for (guint i = 0; done != NULL && i < tick.completed->len; i++)
        g_ptr_array_add(done, g_strdup(g_ptr_array_index(tick.completed, i)));
    cm_dp_transfer_tick_clear(&tick);
    return bytes;
}

/* Unlimited: the link's rate, exact to the byte whatever the steps.
 * REQ: DP-02 */
START_TEST(test_transfer_rate)
{
    CmDpSchedule s;
    g_autoptr(CmDpTransfer) t = NULL;
    g_autoptr(GPtrArray) done = g_ptr_array_new_with_free_func(g_free);
    GError *e = NULL;
    CmTime wake;
    guint64 sent = 0;

    cm_dp_schedule_default(&s, 1000000); /* 1 MB/s */
    t = cm_dp_transfer_new(&s, NOW, &e);
    cm_assert_no_error(e);
    ck_assert(cm_dp_transfer_add(t, "KB1", 10000000, NOW, &e));
    ck_assert(cm_dp_transfer_add(t, "KB2", 2500001, NOW, &e));
    ck_assert_int_eq(run_to(t, NOW, &wake, done), 0);
    ck_assert_int_eq(wake, NOW + 10 * SEC);
    /* Odd steps: 333 ms at a time. */
    for (CmTime at = NOW + 333000; at < NOW + 10 * SEC; at += 333000)
        sent += run_to(t, at, &wake, done);
    ck_assert_uint_eq(done->len, 0);
    sent += run_to(t, NOW + 10 * SEC, &wake, done);
    ck_assert_uint_eq(sent, 10000000);
    ck_assert_uint_eq(done->len, 1);
    ck_assert_str_eq(g_ptr_array_index(done, 0), "KB1");
    /* KB2: 2,500,001 bytes at 1 MB/s end 2.500001 s later. */
    ck_assert_int_eq(wake, NOW + 12 * SEC + 500001);
    sent += run_to(t, wake - 1, &wake, done);
    ck_assert_uint_eq(done->len, 1);
    sent += run_to(t, wake, &wake, done);
    ck_assert_uint_eq(done->len, 2);
    ck_assert_uint_eq(sent, 12500001);
    ck_assert_int_eq(wake, 0);
    ck_assert_uint_eq(cm_dp_transfer_sent_total(t), 12500001);
    /* An idle link earns no credit: content queued an hour later starts then. */
    ck_assert(cm_dp_transfer_add(t, "KB3", 1000000, NOW + HOUR, &e));
    ck_assert_int_eq(run_to(t, NOW + HOUR, &wake, done), 0);
    ck_assert_int_eq(wake, NOW + HOUR + SEC);
    ck_assert_int_eq(run_to(t, NOW + HOUR + SEC / 2, &wake, done), 500000);
    /* Refused schedules and transfers. */
    {
        CmDpSchedule closed;
        cm_dp_schedule_default(&closed, 1000);
        memset(closed.hour_percent, 0, sizeof closed.hour_percent);
        ck_assert_ptr_null(cm_dp_transfer_new(&closed, NOW, &e));
        g_clear_error(&e);
        cm_dp_schedule_default(&closed, 0);
        ck_assert_ptr_null(cm_dp_transfer_new(&closed, NOW, &e));
        g_clear_error(&e);
        ck_assert(!cm_dp_transfer_add(t, "KB4", 0, NOW, &e));
        g_clear_error(&e);
        ck_assert(!cm_dp_transfer_add(t, "../KB4", 1, NOW, &e));
        g_clear_error(&e);
    }
}
END_TEST

/* Limited to 10% in business hours, closed at night: the transfer follows
 * the schedule hour by hour.  REQ: DP-02 */
START_TEST(test_transfer_schedule)
{
    CmDpSchedule s;
    g_autoptr(CmDpTransfer) t = NULL;
    g_autoptr(GPtrArray) done = g_ptr_array_new_with_free_func(g_free);
    GError *e = NULL;
    CmTime wake, start = NOW + 8 * HOUR + 30 * 60 * SEC; /* 08:30 */
    guint64 sent;

    cm_dp_schedule_default(&s, 1000);       /* 1,000 B/s on the link */
    cm_dp_schedule_limit(&s, 9, 17, 10);    /* 100 B/s from 09:00 to 17:00 */
    cm_dp_schedule_limit(&s, 22, 6, 0);     /* closed 22:00-06:00 */
    ck_assert_uint_eq(cm_dp_schedule_rate_at(&s, NOW + 12 * HOUR), 100);
    ck_assert_uint_eq(cm_dp_schedule_rate_at(&s, NOW + 23 * HOUR), 0);
    ck_assert_uint_eq(cm_dp_schedule_rate_at(&s, NOW + 7 * HOUR), 1000);
    t = cm_dp_transfer_new(&s, start, &e);
    cm_assert_no_error(e);
    ck_assert(cm_dp_transfer_add(t, "KB1", 2000000, start, &e));
    run_to(t, start, &wake, done);
    ck_assert_int_eq(wake, NOW + 9 * HOUR); /* the rate changes at 09:00 */
    /* 08:30-09:00 at full rate: 1,800,000 bytes. */
    sent = run_to(t, wake, &wake, done);
    ck_assert_uint_eq(sent, 1800000);
    /* The rest, 200,000 bytes at 100 B/s, by 09:33:20. */
    ck_assert_int_eq(wake, NOW + 9 * HOUR + 2000 * SEC);
    sent = run_to(t, NOW + 9 * HOUR + 1000 * SEC, &wake, done);
    ck_assert_uint_eq(sent, 100000);
    sent = run_to(t, wake, &wake, done);
    ck_assert_uint_eq(sent, 100000);
    ck_assert_uint_eq(done->len, 1);

    /* Queued at 23:00 while closed: nothing until 06:00 the next day. */
    ck_assert(cm_dp_transfer_add(t, "KB2", 3600, NOW + 23 * HOUR, &e));
    ck_assert_int_eq(run_to(t, NOW + 23 * HOUR, &wake, done), 0);
    ck_assert_int_eq(wake, NOW + DAY + 6 * HOUR);
    ck_assert_int_eq(run_to(t, NOW + DAY + 5 * HOUR, &wake, done), 0);
    ck_assert_int_eq(run_to(t, NOW + DAY + 6 * HOUR, &wake, done), 0);
    ck_assert_int_eq(wake, NOW + DAY + 6 * HOUR + 3600000);
    ck_assert_int_eq(run_to(t, wake, &wake, done), 3600);
    ck_assert_uint_eq(done->len, 2);
}
END_TEST

/* Pulse mode: one block per pulse, in open hours.  REQ: DP-02 */
START_TEST(test_transfer_pulse)
{
    CmDpSchedule s;
    g_autoptr(CmDpTransfer) t = NULL;
    g_autoptr(GPtrArray) done = g_ptr_array_new_with_free_func(g_free);
    GError *e = NULL;
    CmTime wake;

    cm_dp_schedule_default(&s, 1000000);
    s.pulse_block = 1000;
    s.pulse_delay = 10 * SEC;
    cm_dp_schedule_limit(&s, 1, 2, 0); /* closed 01:00-02:00 */
    t = cm_dp_transfer_new(&s, NOW, &e);
    cm_assert_no_error(e);
    ck_assert(cm_dp_transfer_add(t, "KB1", 3500, NOW, &e));
    ck_assert_int_eq(run_to(t, NOW, &wake, done), 1000);
    ck_assert_int_eq(wake, NOW + 10 * SEC);
    ck_assert_int_eq(run_to(t, NOW + 15 * SEC, &wake, done), 1000);
    ck_assert_int_eq(run_to(t, NOW + 30 * SEC, &wake, done), 1500);
    ck_assert_uint_eq(done->len, 1);
    ck_assert_int_eq(wake, 0);
    /* Queued in the closed hour: the first pulse at 02:00. */
    ck_assert(cm_dp_transfer_add(t, "KB2", 10, NOW + HOUR + 5 * SEC, &e));
    ck_assert_int_eq(run_to(t, NOW + HOUR + 5 * SEC, &wake, done), 0);
    ck_assert_int_eq(wake, NOW + 2 * HOUR);
    ck_assert_int_eq(run_to(t, wake, &wake, done), 10);
    s.pulse_delay = 0;
    ck_assert_ptr_null(cm_dp_transfer_new(&s, NOW, &e));
    g_clear_error(&e);
}
END_TEST

/* ------------------------------------------------ DP-03 */

/* A prestaged DP takes content placed by hand without a transfer, once the
 * site's distribution finds it matches.  REQ: DP-03 */
START_TEST(test_prestaged)
{
    DpOpts o = {.anonymous = TRUE, .prestaged = TRUE};
    DpOpts plain = {.anonymous = TRUE};
    Dp d = dp_make(&o), n = dp_make(&plain);
    g_autoptr(CmDpPackage) pkg = package("KB500001", "MZ the setup program", "read me");
    g_autoptr(CmDpPackage) old = package("KB500001", "MZ last month's program", "read me");
    g_autoptr(GBytes) file = cm_dp_prestage_file_new(pkg);
    g_autoptr(GBytes) old_file = cm_dp_prestage_file_new(old);
    g_autoptr(CmDpPackage) back = NULL;
    CmDpRequest req = {.path = "/SMS_DP_SMSPKG$/KB500001", .transport = CM_TRANSPORT_HTTP};
    CmResponse r = {0};
    GError *e = NULL;

    /* The prestaged content file round-trips to the same content hash. */
    back = cm_dp_prestage_file_parse(g_bytes_get_data(file, NULL), g_bytes_get_size(file), &e);
    cm_assert_no_error(e);
    ck_assert(memcmp(cm_dp_package_hash(back), cm_dp_package_hash(pkg), 32) == 0);

    ck_assert(cm_dp_prestage_import(d.dp, g_bytes_get_data(file, NULL), g_bytes_get_size(file),
                                    &e));
    cm_assert_no_error(e);
    /* Not served before the site distributes it. */
    cm_dp_handle(d.dp, &req, NOW, &r);
    ck_assert_int_eq(r.reason, CM_REASON_NOT_FOUND);
    ck_assert_int_eq(cm_dp_distribute(d.dp, "KB500001", cm_dp_package_hash(pkg),
                                      cm_dp_package_size(pkg)),
                     CM_DP_DISTRIBUTE_PRESTAGED);
    cm_dp_handle(d.dp, &req, NOW, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cm_dp_counters(d.dp)->prestaged_accepted, 1);
    ck_assert_int_eq(cm_dp_counters(d.dp)->transfers_needed, 0);
    ck_assert_int_eq(cm_dp_distribute(d.dp, "KB500001", cm_dp_package_hash(pkg),
                                      cm_dp_package_size(pkg)),
                     CM_DP_DISTRIBUTE_PRESENT);

    /* Last month's content placed by hand: discarded, a transfer needed. */
    cm_dp_content_remove(d.dp, "KB500001");
    ck_assert(cm_dp_prestage_import(d.dp, g_bytes_get_data(old_file, NULL),
                                    g_bytes_get_size(old_file), &e));
    ck_assert_int_eq(cm_dp_distribute(d.dp, "KB500001", cm_dp_package_hash(pkg),
                                      cm_dp_package_size(pkg)),
                     CM_DP_DISTRIBUTE_TRANSFER);
    ck_assert_int_eq(cm_dp_counters(d.dp)->prestaged_mismatch, 1);
    ck_assert_ptr_null(cm_dp_content_get(d.dp, "KB500001"));

    /* A DP that is not prestaged refuses the file and always gets a
     * transfer, until it holds what the site sent. */
    ck_assert(!cm_dp_prestage_import(n.dp, g_bytes_get_data(file, NULL), g_bytes_get_size(file),
                                     &e));
    g_clear_error(&e);
    ck_assert_int_eq(cm_dp_distribute(n.dp, "KB500001", cm_dp_package_hash(pkg),
                                      cm_dp_package_size(pkg)),
                     CM_DP_DISTRIBUTE_TRANSFER);
    cm_dp_content_add(n.dp, pkg, CM_DP_SOURCE_TRANSFER);
    ck_assert_int_eq(cm_dp_distribute(n.dp, "KB500001", cm_dp_package_hash(pkg),
                                      cm_dp_package_size(pkg)),
                     CM_DP_DISTRIBUTE_PRESENT);
    ck_assert_int_eq(cm_dp_distribute(n.dp, "KB500001", cm_dp_package_hash(old),
                                      cm_dp_package_size(old)),
                     CM_DP_DISTRIBUTE_TRANSFER);
    /* Malformed prestaged content files. */
    {
        static const char *const bad[] = {
            "{}",
            "{\"files\":[],\"id\":\"KB1\"}",
            "{\"files\":[{\"data\":\"!!\",\"name\":\"a\"}],\"id\":\"KB1\"}",
            "{\"files\":[{\"data\":\"eA==\",\"name\":\"../a\"}],\"id\":\"KB1\"}",
            "{\"files\":[{\"data\":\"eA==\",\"name\":\"a\"},{\"data\":\"eA==\",\"name\":\"a\"}],"
            "\"id\":\"KB1\"}",
            "{\"files\":[{\"data\":\"eA==\",\"name\":\"a\"}],\"id\":\"KB1\",\"x\":1}",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            ck_assert_msg(!cm_dp_prestage_import(d.dp, (const guint8 *)bad[i], strlen(bad[i]),
                                                 &e),
                          "%s", bad[i]);
            ck_assert_ptr_nonnull(e);
            g_clear_error(&e);
        }
    }
    cm_response_clear(&r);
    dp_free(&d);
    dp_free(&n);
}
END_TEST

static Suite *
dp_suite(void)
{
    Suite *s = suite_create("dp");
    TCase *tc = tcase_create("dp");

    tcase_add_test(tc, test_auth_http_dp);
    tcase_add_test(tc, test_auth_https_dp);
    tcase_add_test(tc, test_content_hash);
    tcase_add_test(tc, test_serve);
    tcase_add_test(tc, test_manifest_strict);
    tcase_add_test(tc, test_transfer_rate);
    tcase_add_test(tc, test_transfer_schedule);
    tcase_add_test(tc, test_transfer_pulse);
    tcase_add_test(tc, test_prestaged);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    fixture_make();
    return cm_test_main(dp_suite());
}
