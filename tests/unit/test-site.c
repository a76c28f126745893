/* test-site.c - the site server library through one MP, with scripted
 * clients built from libcmproto. */
#include <string.h>

#include <sqlite3.h>

#include "roles.h"

static CmSiteSettings
settings_with(CmApprovalMode approval)
{
    CmSiteSettings s;
    cm_site_settings_default(&s);
    s.approval = approval;
    return s;
}

static const char *
approval_of(const CmResponse *resp)
{
    static char buf[32];
    g_autoptr(json_t) obj = test_response_json(resp);
    g_strlcpy(buf, json_string_value(json_object_get(obj, "approval")), sizeof buf);
    return buf;
}

static void
expect_refusal(const CmResponse *resp, CmReason reason)
{
    ck_assert_msg(resp->reason == reason, "expected %s, got %d %s: %s", cm_reason_name(reason),
                  resp->status, cm_reason_name(resp->reason), resp->message ? resp->message : "");
    ck_assert_int_eq(resp->status, cm_reason_status(reason));
    ck_assert_ptr_nonnull(resp->message);
}

static void
register_ok(TestLab *lab, TestClient *c, const char *want)
{
    CmResponse resp = {0};
    test_client_register(lab, c, &resp);
    ck_assert_str_eq(approval_of(&resp), want);
    cm_response_clear(&resp);
}

static json_t *
smsid_body(const TestClient *c)
{
    return json_pack("{s:s}", "smsid", c->smsid);
}

static void
send_inventory(TestLab *lab, TestClient *c, const char *prop, const char *value, CmResponse *resp)
{
    g_autoptr(json_t) body =
        json_pack("{s:s, s:{s:s}}", "smsid", c->smsid, "inventory", prop, value);
    test_client_send(lab, c, CM_EP_INVENTORY, body, resp);
}

/* The "hwid" claim of the client token a registration answer carries
 * (new string). */
static char *
token_hwid(TestLab *lab, const CmResponse *resp)
{
    g_autoptr(json_t) obj = test_response_json(resp);
    g_autoptr(json_t) claims = NULL;
    CmJwtCheck check = {.issuer = "PS1", .audience = "cmg", .now = lab->now};
    GError *error = NULL;

    claims = cm_jwt_verify(json_string_value(json_object_get(obj, "token")),
                           cm_cert_public_key(cm_site_signing_cert(lab->site)), &check, &error);
    cm_assert_no_error(error);
    return g_strdup(json_string_value(json_object_get(claims, "hwid")));
}

/* ------------------------------------------------------------ keys */

/* REQ: TRUST-02, TRUST-05, TRUST-08 */
START_TEST(test_site_keys)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autofree char *hex = cm_site_export_trk(lab->site);
    g_autoptr(CmKey) trk = cm_key_public_from_hex(hex, NULL);
    GError *error = NULL;

    ck_assert_ptr_nonnull(trk);
    /* The MP certificate verifies with the exported public TRK. */
    ck_assert(cm_cert_check_signed_by(lab->mp_certs[0], trk, lab->now, &error));
    cm_assert_no_error(error);
    /* The signing certificate is self-signed, and not by the TRK. */
    ck_assert(cm_cert_is_self_signed(cm_site_signing_cert(lab->site)));
    ck_assert(!cm_key_public_equal(cm_cert_public_key(cm_site_signing_cert(lab->site)), trk));
}
END_TEST

/* Without any PKI, the site makes its own trust for Enhanced HTTP: an
 * issuing root, and TLS server certificates for its MPs that chain to it.
 * REQ: TRUST-10, TRUST-01 */
START_TEST(test_ehttp_certificates)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(CmCert) mp_cert = NULL, tls = NULL;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(CmTrust) trust = cm_trust_new();
    CmMpInfo info;
    GError *error = NULL;

    ck_assert(cm_site_add_mp(lab->site, "mp7.corp.example", FALSE, lab->now, &info, &mp_cert, &tls,
                             &key, &error));
    cm_assert_no_error(error);
    ck_assert(cm_cert_is_self_signed(cm_site_issuing_root(lab->site)));
    ck_assert(cm_trust_add_root(trust, cm_site_issuing_root(lab->site), &error));
    ck_assert(cm_trust_verify(trust, tls, NULL, lab->now, CM_PURPOSE_SERVER_AUTH, NULL, &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(cm_cert_subject_cn(tls), "mp7.corp.example");
    /* the TLS certificate and the MP certificate carry the same key */
    ck_assert(cm_key_public_equal(cm_cert_public_key(tls), cm_cert_public_key(mp_cert)));
    /* and it is not something a client could pass off as a client */
    ck_assert(!cm_trust_verify(trust, tls, NULL, lab->now, CM_PURPOSE_CLIENT_AUTH, NULL, &error));
    g_clear_error(&error);
}
END_TEST

/* Site systems and administrators get TLS certificates from the issuing
 * root, each for its own purpose; other profiles are refused.  REQ: TRUST-10 */
START_TEST(test_system_certificates)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 0);
    g_autoptr(CmCert) server = NULL, client = NULL, bad = NULL;
    g_autoptr(CmKey) server_key = NULL, client_key = NULL, bad_key = NULL;
    g_autoptr(CmTrust) trust = cm_trust_new();
    GError *error = NULL;

    ck_assert(cm_trust_add_root(trust, cm_site_issuing_root(lab->site), &error));
    ck_assert(cm_site_issue_system_cert(lab->site, CM_CERT_SERVER, "site.corp.example",
                                        "site.corp.example", lab->now, &server, &server_key,
                                        &error));
    cm_assert_no_error(error);
    ck_assert(cm_trust_verify(trust, server, NULL, lab->now, CM_PURPOSE_SERVER_AUTH, NULL, &error));
    ck_assert(!cm_trust_verify(trust, server, NULL, lab->now, CM_PURPOSE_CLIENT_AUTH, NULL, NULL));
    ck_assert(cm_site_issue_system_cert(lab->site, CM_CERT_CLIENT_AUTH, "admin", NULL, lab->now,
                                        &client, &client_key, &error));
    ck_assert(cm_trust_verify(trust, client, NULL, lab->now, CM_PURPOSE_CLIENT_AUTH, NULL, &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(cm_cert_subject_cn(client), "admin");
    ck_assert(cm_key_public_equal(cm_cert_public_key(client), client_key));
    ck_assert(!cm_site_issue_system_cert(lab->site, CM_CERT_MP, "mp9.corp.example", NULL, lab->now,
                                         &bad, &bad_key, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    ck_assert_ptr_null(bad);
    ck_assert(!cm_site_issue_system_cert(lab->site, CM_CERT_CLIENT_AUTH, "", NULL, lab->now, &bad,
                                         &bad_key, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
}
END_TEST

/* An administrator sees a client's record and its collections; an
 * unknown SMSID is an error.  REQ: REG-02 */
START_TEST(test_client_views)
{
    CmSiteSettings set;
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(TestClient) c = test_client_new(77, "corp.example");
    g_autoptr(json_t) view = NULL, list = NULL, pending = NULL;
    CmResponse resp = {0};
    GError *error = NULL;

    cm_site_settings_default(&set);
    set.approval = CM_APPROVAL_MANUAL;
    lab = test_lab_new(&set, 1);
    test_client_register(lab, c, &resp);
    cm_response_clear(&resp);
    pending = cm_site_clients_json(lab->site, CM_CLIENT_PENDING, 10, &error);
    cm_assert_no_error(error);
    ck_assert_int_eq(json_array_size(pending), 1);
    ck_assert(cm_site_admin_approve(lab->site, c->smsid, "admin", lab->now, &error));
    view = cm_site_client_json(lab->site, c->smsid, &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(json_string_value(json_object_get(view, "state")), "approved");
    ck_assert_str_eq(json_string_value(json_object_get(view, "smsid")), c->smsid);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(view, "collections"), 0)),
                     "All Systems");
    ck_assert(json_is_object(json_object_get(view, "inventory")));
    list = cm_site_clients_json(lab->site, -1, 10, &error);
    ck_assert_int_eq(json_array_size(list), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "state")),
                     "approved");
    ck_assert_ptr_null(
        cm_site_client_json(lab->site, "GUID:00000000-0000-0000-0000-000000000000", &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND));
    g_clear_error(&error);
}
END_TEST

/* Software-update-based installation gets the version last published, which
 * lags a site upgrade until it is published again.  REQ: CLI-03 */
START_TEST(test_sup_client_version)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autofree char *none = cm_site_sup_client_version(lab->site);
    g_autofree char *v1 = NULL, *after_upgrade = NULL, *after_publish = NULL, *site_v = NULL;
    GError *error = NULL;

    ck_assert_ptr_null(none);
    ck_assert(cm_site_publish_client_to_sup(lab->site, "admin", lab->now, &error));
    v1 = cm_site_sup_client_version(lab->site);
    ck_assert_str_eq(v1, CM_SITE_CLIENT_VERSION);
    ck_assert(cm_site_upgrade(lab->site, "5.00.9128.1000", "admin", lab->now, &error));
    cm_assert_no_error(error);
    site_v = cm_site_client_version(lab->site);
    ck_assert_str_eq(site_v, "5.00.9128.1000");
    after_upgrade = cm_site_sup_client_version(lab->site);
    ck_assert_str_eq(after_upgrade, CM_SITE_CLIENT_VERSION); /* the old one, still */
    ck_assert(cm_site_publish_client_to_sup(lab->site, "admin", lab->now, &error));
    after_publish = cm_site_sup_client_version(lab->site);
    ck_assert_str_eq(after_publish, "5.00.9128.1000");
    ck_assert(!cm_site_upgrade(lab->site, "5.00; DROP TABLE", "admin", lab->now, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
}
END_TEST

/* Client push: what a stolen account reaches, one account against scoped
 * ones; Kerberos along trust, the NTLM fallback, and refusing it.
 * REQ: CLI-01, ADM-03 */
START_TEST(test_client_push)
{
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *path = g_build_filename(dir, "site.db", NULL);
    guint8 mk[32];
    CmSiteConfig config = {.site_code = "PS1",
                           .db_path = path,
                           .db_mode = CM_STORE_DURABLE,
                           .top_level = TRUE,
                           .forest = "corp.example",
                           .master_key = mk};
    const char *targets[] = {"corp.example",
                             "hr.corp.example",
                             "corp.example",
                             "partner.example",
                             "partner.example",
                             "vendor.example",
                             ""};
    const char *corp[] = {"corp.example", NULL};
    const char *partner[] = {"partner.example", NULL};
    GError *error = NULL;
    char *account = NULL;
    CmSite *site;

    memset(mk, 3, sizeof mk);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_add_forest(site, "partner.example", NULL, NULL));
    ck_assert(cm_site_add_forest(site, "vendor.example", NULL, NULL));
    ck_assert(cm_site_set_trust(site, "corp.example", "partner.example", CM_TRUST_TWO_WAY, NULL));
    /* one account for everything: a stolen one reaches every target */
    ck_assert(cm_site_add_push_account(site, "push-all", "S3cret!all", NULL, "admin", CM_TEST_NOW,
                                       &error));
    cm_assert_no_error(error);
    ck_assert_uint_eq(cm_site_push_reach(site, "push-all", targets, G_N_ELEMENTS(targets)), 7);
    /* scoped accounts: each reaches its own domains only */
    ck_assert(cm_site_add_push_account(site, "push-corp", "S3cret!corp", corp, "admin", CM_TEST_NOW,
                                       NULL));
    ck_assert(cm_site_add_push_account(site, "push-partner", "S3cret!partner", partner, "admin",
                                       CM_TEST_NOW, NULL));
    ck_assert_uint_eq(cm_site_push_reach(site, "push-corp", targets, G_N_ELEMENTS(targets)), 3);
    ck_assert_uint_eq(cm_site_push_reach(site, "push-partner", targets, G_N_ELEMENTS(targets)), 2);
    /* authentication: Kerberos along trust, NTLM otherwise */
    ck_assert_int_eq(cm_site_push_to(site, "hr.corp.example", &account), CM_PUSH_KERBEROS);
    g_clear_pointer(&account, g_free);
    ck_assert_int_eq(cm_site_push_to(site, "vendor.example", &account), CM_PUSH_NTLM);
    g_clear_pointer(&account, g_free);
    ck_assert_int_eq(cm_site_push_to(site, "", &account), CM_PUSH_NTLM);
    g_clear_pointer(&account, g_free);
    /* requiring Kerberos mutual authentication refuses the fallback */
    ck_assert(cm_site_push_require_kerberos(site, TRUE, NULL));
    ck_assert_int_eq(cm_site_push_to(site, "vendor.example", &account), CM_PUSH_REFUSED);
    ck_assert_ptr_null(account);
    ck_assert_int_eq(cm_site_push_to(site, "partner.example", &account), CM_PUSH_KERBEROS);
    g_clear_pointer(&account, g_free);
    /* passwords are sealed, and the accounts survive a restart */
    {
        g_autoptr(GBytes) pw = cm_site_secret_get(site, "push-account:push-corp", &error);
        cm_assert_no_error(error);
        ck_assert_mem_eq(g_bytes_get_data(pw, NULL), "S3cret!corp", 11);
    }
    cm_site_free(site);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(cm_site_push_reach(site, "push-corp", targets, G_N_ELEMENTS(targets)), 3);
    ck_assert_uint_eq(cm_site_push_reach(site, "push-all", targets, G_N_ELEMENTS(targets)), 7);
    ck_assert_int_eq(cm_site_push_to(site, "vendor.example", &account), CM_PUSH_REFUSED);
    ck_assert(
        !cm_site_add_push_account(site, "push-corp", "again", NULL, "admin", CM_TEST_NOW, &error));
    g_clear_error(&error);
    cm_site_free(site);
    cm_test_rmdir(dir);
}
END_TEST

/* Reopening a site file keeps its keys; another master key or site code is
 * refused.  REQ: ADM-03 */
START_TEST(test_site_reopen)
{
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *path = g_build_filename(dir, "site.db", NULL);
    guint8 mk[32], other[32];
    GError *error = NULL;
    CmSiteConfig config = {.site_code = "PS1",
                           .db_path = path,
                           .db_mode = CM_STORE_DURABLE,
                           .top_level = TRUE,
                           .forest = "corp.example",
                           .master_key = mk};
    g_autofree char *trk1 = NULL, *trk2 = NULL;
    CmSite *site;

    memset(mk, 1, sizeof mk);
    memset(other, 2, sizeof other);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    trk1 = cm_site_export_trk(site);
    cm_site_free(site);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    trk2 = cm_site_export_trk(site);
    ck_assert_str_eq(trk1, trk2);
    cm_site_free(site);

    config.master_key = other;
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    ck_assert_ptr_null(site);
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED));
    g_clear_error(&error);
    config.master_key = mk;
    config.site_code = "PS2";
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    ck_assert_ptr_null(site);
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED));
    g_clear_error(&error);
    cm_test_rmdir(dir);
}
END_TEST

/* Secrets are sealed at rest: the database never holds the plaintext.
 * REQ: ADM-03 */
START_TEST(test_site_secrets)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    GError *error = NULL;
    const char *secret = "CORP\\push-account:Pa55word!";
    g_autoptr(GBytes) back = NULL;
    sqlite3_stmt *st;

    ck_assert(
        cm_site_secret_put(lab->site, "push-account", secret, strlen(secret), lab->now, &error));
    cm_assert_no_error(error);
    back = cm_site_secret_get(lab->site, "push-account", &error);
    cm_assert_no_error(error);
    ck_assert_mem_eq(g_bytes_get_data(back, NULL), secret, strlen(secret));
    st = cm_store_stmt(cm_site_store(lab->site), "SELECT sealed FROM secrets", NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_ptr_null(
        memmem(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), "Pa55word", 8));
    sqlite3_reset(st);
}
END_TEST

/* ------------------------------------------------------ registration */

/* REQ: REG-01, REG-02, NET-03 */
START_TEST(test_approval_modes)
{
    CmSiteSettings manual = settings_with(CM_APPROVAL_MANUAL);
    CmSiteSettings all = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(TestLab) lab_manual = test_lab_new(&manual, 1);
    g_autoptr(TestLab) lab_all = test_lab_new(&all, 1);
    g_autoptr(TestClient) anon = test_client_new(1, "");
    g_autoptr(TestClient) kerb = test_client_new(2, "corp.example");
    g_autoptr(TestClient) kerb_child = test_client_new(3, "eu.corp.example");
    g_autoptr(TestClient) kerb_untrusted = test_client_new(4, "other.example");
    g_autoptr(TestClient) kerb_trusted = test_client_new(5, "partner.example");
    g_autoptr(TestClient) kerb_m = test_client_new(6, "corp.example");
    g_autoptr(TestClient) anon_all = test_client_new(7, "");

    ck_assert(cm_site_add_forest(lab->site, "other.example", NULL, NULL));
    ck_assert(cm_site_add_forest(lab->site, "partner.example", NULL, NULL));
    ck_assert(
        cm_site_set_trust(lab->site, "corp.example", "partner.example", CM_TRUST_TWO_WAY, NULL));
    kerb->peer.kind = kerb_child->peer.kind = kerb_untrusted->peer.kind = CM_AUTH_KERBEROS;
    kerb_trusted->peer.kind = kerb_m->peer.kind = CM_AUTH_KERBEROS;
    g_strlcpy(kerb->peer.domain, "corp.example", sizeof kerb->peer.domain);
    g_strlcpy(kerb_child->peer.domain, "eu.corp.example", sizeof kerb_child->peer.domain);
    g_strlcpy(kerb_untrusted->peer.domain, "other.example", sizeof kerb_untrusted->peer.domain);
    g_strlcpy(kerb_trusted->peer.domain, "partner.example", sizeof kerb_trusted->peer.domain);
    g_strlcpy(kerb_m->peer.domain, "corp.example", sizeof kerb_m->peer.domain);
    /* Each registers as computer "PC" with its computer account's ticket. */
    g_strlcpy(kerb->peer.principal, "PC$@CORP.EXAMPLE", sizeof kerb->peer.principal);
    g_strlcpy(kerb_child->peer.principal, "pc$@EU.CORP.EXAMPLE", sizeof kerb_child->peer.principal);
    g_strlcpy(kerb_untrusted->peer.principal, "PC$@OTHER.EXAMPLE",
              sizeof kerb_untrusted->peer.principal);
    g_strlcpy(kerb_trusted->peer.principal, "PC$@PARTNER.EXAMPLE",
              sizeof kerb_trusted->peer.principal);
    g_strlcpy(kerb_m->peer.principal, "PC$@CORP.EXAMPLE", sizeof kerb_m->peer.principal);

    /* trusted domains (default): anonymous waits, Kerberos along trust passes */
    register_ok(lab, anon, "pending");
    register_ok(lab, kerb, "approved");
    register_ok(lab, kerb_child, "approved");
    register_ok(lab, kerb_untrusted, "pending");
    register_ok(lab, kerb_trusted, "approved");
    /* A ticket of the trusted domain that is not the computer account of
     * the computer the registration names: a user's, another computer's,
     * a service's, or none at all.  Kerberos vouches for who sent it, not
     * for the record, so each waits for an administrator. */
    {
        static const char *const others[] = {
            "alice@CORP.EXAMPLE", "PC2$@CORP.EXAMPLE", "HTTP/mp1.corp.example@CORP.EXAMPLE",
            "PC$@OTHER.EXAMPLE",  "PC@CORP.EXAMPLE",   ""};
        for (guint i = 0; i < G_N_ELEMENTS(others); i++) {
            g_autoptr(TestClient) impostor = test_client_new(100 + i, "corp.example");
            impostor->peer.kind = CM_AUTH_KERBEROS;
            g_strlcpy(impostor->peer.domain, "corp.example", sizeof impostor->peer.domain);
            g_strlcpy(impostor->peer.principal, others[i], sizeof impostor->peer.principal);
            register_ok(lab, impostor, "pending");
        }
    }
    /* manual: even a verifiable Kerberos client waits */
    register_ok(lab_manual, kerb_m, "pending");
    /* all: even an anonymous one passes */
    register_ok(lab_all, anon_all, "approved");

    /* an administrator approves the anonymous client */
    ck_assert(cm_site_admin_approve(lab->site, anon->smsid, "admin", lab->now, NULL));
    {
        CmResponse resp = {0};
        g_autoptr(json_t) body = smsid_body(anon);
        test_client_send(lab, anon, CM_EP_REGISTER_STATUS, body, &resp);
        ck_assert_str_eq(approval_of(&resp), "approved");
        cm_response_clear(&resp);
    }
}
END_TEST

/* A PKI client certificate the transport verified approves a client even in
 * manual mode.  REQ: REG-01, REG-02 */
START_TEST(test_approval_pki)
{
    CmSiteSettings manual = settings_with(CM_APPROVAL_MANUAL);
    g_autoptr(TestLab) lab = test_lab_new(&manual, 1);
    g_autoptr(TestClient) c = test_client_new(11, "");

    c->peer.kind = CM_AUTH_PKI;
    c->peer.client_cert = c->cert; /* any verified certificate stands for PKI here */
    register_ok(lab, c, "approved");
}
END_TEST

/* Registration must prove possession of the key it registers.  REQ: REG-02 */
START_TEST(test_register_refusals)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(TestClient) c = test_client_new(21, "");
    g_autoptr(TestClient) other = test_client_new(22, "");
    CmResponse resp = {0};

    /* unsigned */
    c->sign = FALSE;
    test_client_register(lab, c, &resp);
    expect_refusal(&resp, CM_REASON_UNSIGNED);
    cm_response_clear(&resp);
    /* signed by another key than the one registered */
    c->sign = TRUE;
    {
        CmKey *mine = c->key;
        c->key = other->key;
        test_client_register(lab, c, &resp);
        c->key = mine;
    }
    expect_refusal(&resp, CM_REASON_BAD_SIGNATURE);
    cm_response_clear(&resp);
    /* SHA-1 under require-SHA-256 */
    c->hash = CM_HASH_SHA1;
    test_client_register(lab, c, &resp);
    expect_refusal(&resp, CM_REASON_SHA1_REFUSED);
    cm_response_clear(&resp);
    c->hash = CM_HASH_SHA256;
    /* a certificate issued by another key, not self-issued */
    {
        g_autoptr(CmKey) other_key = cm_key_generate(CM_KEY_EC_P256, NULL);
        CmCertSpec spec = {.profile = CM_CERT_CLIENT_AUTH,
                           .subject_cn = c->smsid,
                           .serial = 77,
                           .not_before = lab->now - CM_USEC_PER_HOUR,
                           .not_after = lab->now + CM_USEC_PER_DAY,
                           .subject_key = c->key,
                           .issuer_key = other_key,
                           .issuer_cn = "Some CA"};
        CmCert *mine = c->cert;
        c->cert = cm_cert_issue(&spec, NULL);
        ck_assert_ptr_nonnull(c->cert);
        test_client_register(lab, c, &resp);
        expect_refusal(&resp, CM_REASON_BAD_REQUEST);
        cm_response_clear(&resp);
        cm_cert_unref(c->cert);
        c->cert = mine;
    }
    /* an expired certificate */
    lab->now += 2 * 365 * CM_USEC_PER_DAY;
    test_client_register(lab, c, &resp);
    expect_refusal(&resp, CM_REASON_CERT_EXPIRED);
    cm_response_clear(&resp);
    ck_assert_int_eq(cm_site_client_count(lab->site, -1), 0);
}
END_TEST

/* Malformed and oversized bodies get their status and change nothing. */
START_TEST(test_bad_input)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(TestClient) c = test_client_new(31, "");
    CmResponse resp = {0};
    CmRequest req = {.ep = CM_EP_REGISTER, .transport = CM_TRANSPORT_HTTPS};
    g_autofree char *big = g_malloc0(cm_ep_body_max(CM_EP_REGISTER) + 2);

    g_strlcpy(req.smsid, c->smsid, sizeof req.smsid);
    req.body = (const guint8 *)"{\"smsid\": ";
    req.body_len = 10;
    ck_assert(cm_msg_sign(&req, c->key, CM_HASH_SHA256, NULL));
    test_lab_deliver(lab, 0, &req, &resp);
    expect_refusal(&resp, CM_REASON_BAD_REQUEST);
    cm_response_clear(&resp);
    memset(big, 'a', cm_ep_body_max(CM_EP_REGISTER) + 1);
    req.body = (const guint8 *)big;
    req.body_len = strlen(big);
    ck_assert(cm_msg_sign(&req, c->key, CM_HASH_SHA256, NULL));
    test_lab_deliver(lab, 0, &req, &resp);
    expect_refusal(&resp, CM_REASON_TOO_LARGE);
    cm_response_clear(&resp);
    /* a body that is valid JSON but names the wrong site */
    {
        g_autoptr(json_t) body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "smsid", c->smsid,
                                           "hwid", c->hwid, "name", "PC", "domain", "", "site_code",
                                           "XY1", "cert", "AAAA", "ksp", "tpm2");
        test_client_send(lab, c, CM_EP_REGISTER, body, &resp);
        expect_refusal(&resp, CM_REASON_BAD_REQUEST);
        cm_response_clear(&resp);
    }
    ck_assert_int_eq(cm_site_client_count(lab->site, -1), 0);
}
END_TEST

/* A blocked client is refused everywhere, and its certificate and hardware
 * stay blocked under a new SMSID; a new certificate and hardware ID over
 * HTTP get back in.  REQ: REG-03, REG-04 */
START_TEST(test_blocking)
{
    CmSiteSettings all = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&all, 1);
    g_autoptr(TestClient) c = test_client_new(41, "");
    CmResponse resp = {0};
    const CmEndpoint eps[] = {CM_EP_POLICY_ASSIGNMENTS, CM_EP_INVENTORY, CM_EP_STATE,
                              CM_EP_REGISTER_STATUS, CM_EP_NOTIFY};

    register_ok(lab, c, "approved");
    ck_assert(cm_site_in_collection(lab->site, CM_COLLECTION_ALL_SYSTEMS, c->smsid));
    ck_assert(cm_site_admin_block(lab->site, c->smsid, "admin", lab->now, NULL));
    ck_assert(!cm_site_in_collection(lab->site, CM_COLLECTION_ALL_SYSTEMS, c->smsid));
    for (size_t i = 0; i < G_N_ELEMENTS(eps); i++) {
        g_autoptr(json_t) body =
            json_pack("{s:s, s:{s:s}, s:[]}", "smsid", c->smsid, "inventory", "os", "x", "states");
        test_client_send(lab, c, eps[i], body, &resp);
        expect_refusal(&resp, CM_REASON_BLOCKED);
        cm_response_clear(&resp);
    }
    test_client_register(lab, c, &resp);
    expect_refusal(&resp, CM_REASON_BLOCKED);
    cm_response_clear(&resp);

    /* the same hardware under a new SMSID and certificate: still blocked */
    {
        g_autoptr(TestClient) again = test_client_new(42, "");
        g_strlcpy(again->hwid, c->hwid, sizeof again->hwid);
        test_client_register(lab, again, &resp);
        expect_refusal(&resp, CM_REASON_BLOCKED);
        cm_response_clear(&resp);
    }
    /* a new SMSID, certificate and hardware ID: a new client as far as the
     * site can tell */
    {
        g_autoptr(TestClient) rejoin = test_client_new(43, "");
        rejoin->transport = CM_TRANSPORT_HTTP;
        lab->mps[0] = lab->mps[0]; /* through the same MP */
        CmSiteSettings http = all;
        http.communication = CM_COMM_HTTP_OR_HTTPS;
        ck_assert(cm_site_set_settings(lab->site, &http, "admin", lab->now, NULL));
        test_lab_refresh_mps(lab);
        register_ok(lab, rejoin, "approved");
    }
    /* a blocked certificate stays out whatever the rest of the request
     * (its thumbprint on the block list, as a block leaves it) */
    {
        g_autoptr(TestClient) cert_blocked = test_client_new(44, "");
        g_autofree char *tp = cm_cert_thumbprint_hex(cert_blocked->cert);
        sqlite3_stmt *st = cm_store_stmt(cm_site_store(lab->site),
                                         "INSERT INTO blocked(kind, value, smsid, at)"
                                         " VALUES ('thumbprint', ?, NULL, 0)",
                                         NULL);
        ck_assert_ptr_nonnull(st);
        sqlite3_bind_text(st, 1, tp, -1, SQLITE_TRANSIENT);
        ck_assert(cm_store_step_done(cm_site_store(lab->site), st, NULL));
        test_client_register(lab, cert_blocked, &resp);
        expect_refusal(&resp, CM_REASON_BLOCKED);
        cm_response_clear(&resp);
    }
    /* unblocking returns the record to pending */
    ck_assert(cm_site_admin_unblock(lab->site, c->smsid, "admin", lab->now, NULL));
    {
        g_autoptr(json_t) body = smsid_body(c);
        test_client_send(lab, c, CM_EP_REGISTER_STATUS, body, &resp);
        ck_assert_str_eq(approval_of(&resp), "pending");
        cm_response_clear(&resp);
    }
}
END_TEST

/* Conflicting records under each setting.  REQ: REG-06, TRUST-12 */
START_TEST(test_conflicts)
{
    for (int mode = CM_CONFLICT_MERGE; mode <= CM_CONFLICT_BLOCK; mode++) {
        CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
        s.conflicts = (CmConflictMode)mode;
        g_autoptr(TestLab) lab = test_lab_new(&s, 1);
        g_autoptr(TestClient) c = test_client_new(51, "");
        g_autoptr(TestClient) clone = test_client_new(51, "");
        CmResponse resp = {0};
        CmClientInfo info;

        register_ok(lab, c, "approved");
        /* the same client again: a repeat, never a conflict */
        register_ok(lab, c, "approved");
        ck_assert_int_eq(cm_site_counters(lab->site)->conflicts, 0);

        /* a new certificate from the same hardware: the key upgrade */
        test_client_rekey(c, lab->now);
        test_client_register(lab, c, &resp);
        if (mode == CM_CONFLICT_BLOCK) {
            expect_refusal(&resp, CM_REASON_CONFLICT);
            ck_assert(cm_site_client(lab->site, c->smsid, &info, NULL));
            ck_assert_int_eq(info.state, CM_CLIENT_BLOCKED);
            cm_response_clear(&resp);
            continue;
        }
        ck_assert_str_eq(approval_of(&resp), "approved");
        cm_response_clear(&resp);
        /* the new key signs from now on; the old one no longer does */
        {
            send_inventory(lab, c, "os", "Windows 11", &resp);
            ck_assert_int_eq(resp.status, 200);
            cm_response_clear(&resp);
        }
        /* a clone: same SMSID and certificate, other hardware */
        cm_key_unref(clone->key);
        cm_cert_unref(clone->cert);
        clone->key = cm_key_ref(c->key);
        clone->cert = cm_cert_ref(c->cert);
        g_strlcpy(clone->hwid, "2:00000000000000000000000000000000000000AA", sizeof clone->hwid);
        test_client_register(lab, clone, &resp);
        ck_assert_int_eq(resp.status, 200); /* merge: indistinguishable; new-record: replaced */
        ck_assert(cm_site_client(lab->site, c->smsid, &info, NULL));
        if (mode == CM_CONFLICT_MERGE)
            ck_assert_str_eq(info.hwid, c->hwid);
        else
            ck_assert_str_eq(info.hwid, clone->hwid);
        /* the token names the hardware of the record as it now stands */
        {
            g_autofree char *hwid = token_hwid(lab, &resp);
            ck_assert_str_eq(hwid, info.hwid);
        }
        ck_assert_str_eq(approval_of(&resp), "approved");
        cm_response_clear(&resp);
        /* both send inventory as the same client: the site cannot tell them
         * apart, the last one wins */
        send_inventory(lab, c, "owner", "alice", &resp);
        ck_assert_int_eq(resp.status, 200);
        cm_response_clear(&resp);
        send_inventory(lab, clone, "owner", "mallory", &resp);
        ck_assert_int_eq(resp.status, 200);
        cm_response_clear(&resp);
    }
}
END_TEST

/* A record that supersedes an obsolete one (conflicting records: new
 * record) keeps the client's data and memberships: they belong to the
 * SMSID, whichever record is live.  REQ: REG-06, POL-01 */
START_TEST(test_new_record_keeps_data)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(TestClient) c = test_client_new(52, "");
    g_autoptr(TestClient) other = test_client_new(53, "");
    CmRule rule = {CM_RULE_INVENTORY, "role", CM_OP_EQ, "server"};
    CmClientInfo before, after;
    CmResponse resp = {0};
    GError *error = NULL;
    gint64 coll;

    s.conflicts = CM_CONFLICT_NEW_RECORD;
    lab = test_lab_new(&s, 1);
    register_ok(lab, c, "approved");
    register_ok(lab, other, "approved");
    coll =
        cm_site_admin_create_collection(lab->site, "Servers", &rule, 1, "admin", lab->now, &error);
    cm_assert_no_error(error);
    send_inventory(lab, c, "role", "server", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    send_inventory(lab, other, "role", "workstation", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ck_assert(cm_site_in_collection(lab->site, coll, c->smsid));
    ck_assert(cm_site_client(lab->site, c->smsid, &before, NULL));

    /* a new key: under this setting a new record replaces the old one */
    test_client_rekey(c, lab->now);
    register_ok(lab, c, "approved");
    ck_assert_int_eq(cm_site_counters(lab->site)->conflicts, 1);
    ck_assert(cm_site_client(lab->site, c->smsid, &after, NULL));
    ck_assert_str_ne(after.thumbprint, before.thumbprint);
    ck_assert_int_eq(after.key, before.key);
    /* the inventory stayed with the SMSID, and the collection it put the
     * client in still holds it */
    ck_assert(cm_site_in_collection(lab->site, coll, c->smsid));
    ck_assert(!cm_site_in_collection(lab->site, coll, other->smsid));
    {
        g_autoptr(json_t) view = cm_site_client_json(lab->site, c->smsid, &error);
        cm_assert_no_error(error);
        ck_assert_str_eq(
            json_string_value(json_object_get(json_object_get(view, "inventory"), "role")),
            "server");
    }
    /* the new record's data replaces the same rows, not a second set */
    send_inventory(lab, c, "role", "workstation", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ck_assert(!cm_site_in_collection(lab->site, coll, c->smsid));
    {
        sqlite3_stmt *st = cm_store_stmt(cm_site_store(lab->site),
                                         "SELECT count(*) FROM inventory WHERE client = ?", NULL);
        sqlite3_bind_int64(st, 1, after.key);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int64(st, 0), 1);
        sqlite3_reset(st);
    }
    /* still one member of All Systems per client */
    ck_assert_int_eq(cm_site_collection_size(lab->site, CM_COLLECTION_ALL_SYSTEMS), 2);
}
END_TEST

/* A site database of schema 6 (its client data keyed by SMSID text) keeps
 * every row when it opens as schema 7: each SMSID's rows move to the key of
 * its first record, the one an obsolete record left to its successor.
 * REQ: DATA-01, DATA-02, POL-01 */
START_TEST(test_schema7_migration)
{
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *path = g_build_filename(dir, "site.db", NULL);
    guint8 mk[32];
    GError *error = NULL;
    CmSiteConfig config = {.site_code = "PS1",
                           .db_path = path,
                           .db_mode = CM_STORE_DURABLE,
                           .top_level = TRUE,
                           .forest = "corp.example",
                           .master_key = mk};
    const char *a = "GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA";
    const char *b = "GUID:BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB";
    CmClientInfo info;
    CmSite *site;
    sqlite3 *db;

    memset(mk, 1, sizeof mk);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    cm_site_free(site);
    /* Back to what schema 6 had, with the data a lab site holds: A
     * registered twice (record 1 obsolete, record 3 live), B once. */
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(
            db,
            "DROP TABLE discovery; DROP TABLE inventory; DROP TABLE state_messages;"
            "DROP TABLE client_status; DROP TABLE members;"
            "ALTER TABLE clients DROP COLUMN first_id;"
            "CREATE TABLE discovery(smsid TEXT NOT NULL, property TEXT NOT NULL,"
            "  value TEXT NOT NULL, updated INTEGER NOT NULL,"
            "  PRIMARY KEY(smsid, property)) WITHOUT ROWID;"
            "CREATE INDEX discovery_updated ON discovery(updated);"
            "CREATE TABLE inventory(smsid TEXT NOT NULL, property TEXT NOT NULL,"
            "  value TEXT NOT NULL, updated INTEGER NOT NULL,"
            "  PRIMARY KEY(smsid, property)) WITHOUT ROWID;"
            "CREATE TABLE state_messages(id INTEGER PRIMARY KEY, smsid TEXT NOT NULL,"
            "  topic TEXT NOT NULL, state INTEGER NOT NULL, time INTEGER NOT NULL,"
            "  received INTEGER NOT NULL);"
            "CREATE TABLE client_status(id INTEGER PRIMARY KEY, smsid TEXT NOT NULL,"
            "  check_name TEXT NOT NULL, result TEXT NOT NULL, received INTEGER NOT NULL);"
            "CREATE INDEX client_status_received ON client_status(received);"
            "CREATE TABLE members(collection_id INTEGER NOT NULL, smsid TEXT NOT NULL,"
            "  PRIMARY KEY(collection_id, smsid)) WITHOUT ROWID;"
            "CREATE INDEX members_smsid ON members(smsid);"
            "INSERT INTO clients(id, smsid, hwid, name, domain, state, registered_by, ksp,"
            "  media, cert, thumbprint, registered_at, last_seen, obsolete) VALUES"
            "  (1, 'GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA', 'h1', 'PC1', 'corp.example',"
            "   1, 0, 0, 0, x'00', 't1', 0, 0, 1),"
            "  (2, 'GUID:BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB', 'h2', 'PC2', 'corp.example',"
            "   1, 0, 0, 0, x'00', 't2', 0, 0, 0),"
            "  (3, 'GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA', 'h3', 'PC1', 'corp.example',"
            "   1, 0, 0, 0, x'00', 't3', 0, 0, 0);"
            "INSERT INTO inventory VALUES"
            "  ('GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA', 'os', 'Windows 11', 5),"
            "  ('GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA', 'role', 'server', 5),"
            "  ('GUID:BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB', 'os', 'Windows 10', 6);"
            "INSERT INTO discovery VALUES"
            "  ('GUID:BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB', 'ou', 'OU=Desktops', 7);"
            "INSERT INTO state_messages VALUES"
            "  (1, 'GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA', 'install', 1, 2, 3),"
            "  (2, 'GUID:BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB', 'install', 1, 2, 3);"
            "INSERT INTO client_status VALUES"
            "  (1, 'GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA', 'wmi', 'pass', 4);"
            "INSERT INTO members VALUES (1, 'GUID:AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA'),"
            "  (1, 'GUID:BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB');"
            "PRAGMA user_version = 6;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_client(site, a, &info, NULL));
    ck_assert_int_eq(info.key, 1); /* record 3 keeps record 1's key */
    ck_assert_str_eq(info.hwid, "h3");
    ck_assert(cm_site_client(site, b, &info, NULL));
    ck_assert_int_eq(info.key, 2);
    ck_assert(cm_site_in_collection(site, CM_COLLECTION_ALL_SYSTEMS, a));
    ck_assert(cm_site_in_collection(site, CM_COLLECTION_ALL_SYSTEMS, b));
    ck_assert_int_eq(cm_site_collection_size(site, CM_COLLECTION_ALL_SYSTEMS), 2);
    {
        g_autoptr(json_t) va = cm_site_client_json(site, a, &error);
        g_autoptr(json_t) vb = NULL;
        cm_assert_no_error(error);
        vb = cm_site_client_json(site, b, &error);
        cm_assert_no_error(error);
        ck_assert_int_eq(json_object_size(json_object_get(va, "inventory")), 2);
        ck_assert_str_eq(
            json_string_value(json_object_get(json_object_get(va, "inventory"), "role")), "server");
        ck_assert_int_eq(json_object_size(json_object_get(va, "discovery")), 0);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(vb, "inventory"), "os")),
                         "Windows 10");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(vb, "discovery"), "ou")),
                         "OU=Desktops");
    }
    {
        /* every row came over, under its SMSID's key; no SMSID text left */
        static const char *const checks[] = {
            "SELECT count(*) FROM state_messages WHERE client = 1 AND id = 1",
            "SELECT count(*) FROM state_messages WHERE client = 2 AND id = 2",
            "SELECT count(*) FROM client_status WHERE client = 1 AND result = 'pass'",
            "SELECT count(*) FROM clients WHERE id = 3 AND first_id = 1",
            "SELECT count(*) FROM clients WHERE first_id IS NULL AND id IN (1, 2)",
        };
        static const gint64 want[] = {1, 1, 1, 1, 2};
        for (guint i = 0; i < G_N_ELEMENTS(checks); i++) {
            sqlite3_stmt *st = cm_store_stmt(cm_site_store(site), checks[i], NULL);
            ck_assert_ptr_nonnull(st);
            ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
            ck_assert_msg(sqlite3_column_int64(st, 0) == want[i], "%s", checks[i]);
            sqlite3_reset(st);
        }
        ck_assert_ptr_null(cm_store_stmt(cm_site_store(site), "SELECT smsid FROM inventory", NULL));
    }
    cm_site_free(site);
    cm_test_rmdir(dir);
}
END_TEST

/* ------------------------------------------------------ messages */

/* REQ: MSG-01 */
START_TEST(test_signing_rules)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(61, "");
    CmResponse resp = {0};

    register_ok(lab, c, "approved");
    c->sign = FALSE;
    send_inventory(lab, c, "os", "x", &resp);
    expect_refusal(&resp, CM_REASON_UNSIGNED);
    cm_response_clear(&resp);
    c->sign = TRUE;
    c->hash = CM_HASH_SHA1;
    send_inventory(lab, c, "os", "x", &resp);
    expect_refusal(&resp, CM_REASON_SHA1_REFUSED);
    cm_response_clear(&resp);
    /* with the requirements off, both pass */
    s.require_signing = FALSE;
    s.require_sha256 = FALSE;
    ck_assert(cm_site_set_settings(lab->site, &s, "admin", lab->now, NULL));
    test_lab_refresh_mps(lab);
    send_inventory(lab, c, "os", "x", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    c->sign = FALSE;
    send_inventory(lab, c, "os", "y", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    /* a tampered body never passes */
    c->sign = TRUE;
    {
        g_autofree char *bytes =
            g_strdup_printf("{\"smsid\":\"%s\",\"inventory\":{\"os\":\"z\"}}", c->smsid);
        CmRequest req = {.ep = CM_EP_INVENTORY, .transport = CM_TRANSPORT_HTTPS};
        g_strlcpy(req.smsid, c->smsid, sizeof req.smsid);
        req.body = (const guint8 *)bytes;
        req.body_len = strlen(bytes);
        ck_assert(cm_msg_sign(&req, c->key, CM_HASH_SHA256, NULL));
        bytes[strlen(bytes) - 4] = 'Z';
        test_lab_deliver(lab, 0, &req, &resp);
        expect_refusal(&resp, CM_REASON_BAD_SIGNATURE);
        cm_response_clear(&resp);
    }
}
END_TEST

static void
send_encrypted(TestLab *lab, TestClient *c, CmEndpoint ep, const char *plain, CmCipher cipher,
               CmResponse *resp)
{
    g_autoptr(GBytes) env =
        cm_cms_encrypt(cm_site_encryption_cert(lab->site), cipher, plain, strlen(plain), NULL);
    g_autofree char *b64 = cm_enc_b64(g_bytes_get_data(env, NULL), g_bytes_get_size(env));
    g_autoptr(json_t) body = json_pack("{s:s, s:s}", "smsid", c->smsid, "encrypted", b64);
    test_client_send(lab, c, ep, body, resp);
}

/* REQ: MSG-02, DATA-02 */
START_TEST(test_encryption)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(TestClient) c = test_client_new(71, "");
    CmResponse resp = {0};

    s.encrypt = TRUE;
    lab = test_lab_new(&s, 1);
    register_ok(lab, c, "approved");
    send_inventory(lab, c, "os", "plain", &resp);
    expect_refusal(&resp, CM_REASON_FORBIDDEN);
    cm_response_clear(&resp);
    send_encrypted(lab, c, CM_EP_INVENTORY, "{\"inventory\":{\"os\":\"Windows 11\"}}",
                   CM_CIPHER_AES256_GCM, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ck_assert_int_eq(cm_site_counters(lab->site)->decryptions, 1);
    /* legacy 3DES only when the site allows it */
    send_encrypted(lab, c, CM_EP_INVENTORY, "{\"inventory\":{\"os\":\"old\"}}", CM_CIPHER_3DES_CBC,
                   &resp);
    expect_refusal(&resp, CM_REASON_FORBIDDEN);
    cm_response_clear(&resp);
    s.allow_3des = TRUE;
    ck_assert(cm_site_set_settings(lab->site, &s, "admin", lab->now, NULL));
    send_encrypted(lab, c, CM_EP_INVENTORY, "{\"inventory\":{\"os\":\"old\"}}", CM_CIPHER_3DES_CBC,
                   &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    /* client status goes encrypted only */
    {
        g_autoptr(json_t) body = json_pack("{s:s, s:[]}", "smsid", c->smsid, "checks");
        test_client_send(lab, c, CM_EP_CLIENT_STATUS, body, &resp);
        expect_refusal(&resp, CM_REASON_FORBIDDEN);
        cm_response_clear(&resp);
    }
    send_encrypted(lab, c, CM_EP_CLIENT_STATUS,
                   "{\"checks\":[{\"name\":\"wmi\",\"result\":\"pass\"}]}", CM_CIPHER_AES256_GCM,
                   &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
}
END_TEST

/* ------------------------------------------------------ collections */

/* False inventory moves a client into a collection, and it receives that
 * collection's signed policy.  REQ: POL-01, POL-02, TRUST-08 */
START_TEST(test_retargeting)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(81, "");
    CmRule rule = {CM_RULE_INVENTORY, "role", CM_OP_EQ, "domain-controller"};
    guint8 hash[32] = {1};
    CmDeployment dep = {.name = "DC hardening",
                        .content_id = "KB1",
                        .content_hash = hash,
                        .content_size = 10,
                        .required = TRUE};
    gint64 coll;
    g_autofree char *policy_id = NULL;
    CmResponse resp = {0};
    GError *error = NULL;

    register_ok(lab, c, "approved");
    coll = cm_site_admin_create_collection(lab->site, "Domain controllers", &rule, 1, "admin",
                                           lab->now, &error);
    cm_assert_no_error(error);
    policy_id = cm_site_admin_deploy(lab->site, coll, &dep, "admin", lab->now, &error);
    cm_assert_no_error(error);
    ck_assert(!cm_site_in_collection(lab->site, coll, c->smsid));
    {
        g_autoptr(json_t) body = smsid_body(c);
        g_autoptr(json_t) obj = NULL;
        test_client_send(lab, c, CM_EP_POLICY_ASSIGNMENTS, body, &resp);
        obj = test_response_json(&resp);
        ck_assert_int_eq(json_array_size(json_object_get(obj, "assignments")), 0);
        cm_response_clear(&resp);
    }
    /* the client lies about what it is */
    send_inventory(lab, c, "role", "domain-controller", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ck_assert(cm_site_in_collection(lab->site, coll, c->smsid));
    {
        g_autoptr(json_t) body = smsid_body(c);
        g_autoptr(json_t) obj = NULL, pb = NULL;
        g_autoptr(GBytes) policy = NULL;
        CmRequest parsed = {0};
        test_client_send(lab, c, CM_EP_POLICY_ASSIGNMENTS, body, &resp);
        obj = test_response_json(&resp);
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(json_object_get(obj, "assignments"), 0), "policy_id")),
                         policy_id);
        cm_response_clear(&resp);
        json_object_set_new(body, "policy_id", json_string(policy_id));
        test_client_send(lab, c, CM_EP_POLICY_BODY, body, &resp);
        pb = test_response_json(&resp);
        cm_response_clear(&resp);
        /* the policy verifies with the site signing certificate */
        policy = cm_json_b64(pb, "policy", 1 << 16, NULL);
        ck_assert(cm_msg_parse_signature(json_string_value(json_object_get(pb, "signature")),
                                         &parsed, NULL));
        ck_assert(cm_sig_verify(cm_cert_public_key(cm_site_signing_cert(lab->site)),
                                parsed.sig_hash, g_bytes_get_data(policy, NULL),
                                g_bytes_get_size(policy), parsed.sig, parsed.sig_len, NULL));
    }
    /* honest inventory moves it out again */
    send_inventory(lab, c, "role", "workstation", &resp);
    cm_response_clear(&resp);
    ck_assert(!cm_site_in_collection(lab->site, coll, c->smsid));
    /* whatever its data says, an approved client stays in All Systems */
    ck_assert(cm_site_in_collection(lab->site, CM_COLLECTION_ALL_SYSTEMS, c->smsid));
    ck_assert_int_eq(cm_site_collection_size(lab->site, CM_COLLECTION_ALL_SYSTEMS), 1);
}
END_TEST

/* A client's assignments list each policy once, in policy ID order, and a
 * policy's body is served as signed, the same bytes each time; a client
 * outside the collection gets neither.  REQ: POL-01, TRUST-08 */
START_TEST(test_assignments_order)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(82, "");
    g_autoptr(TestClient) other = test_client_new(83, "");
    CmRule rule = {CM_RULE_INVENTORY, "role", CM_OP_EQ, "server"};
    guint8 hash[32] = {2};
    CmDeployment dep = {.content_id = "KB2", .content_hash = hash, .content_size = 10};
    g_autofree char *first = NULL, *second = NULL, *third = NULL;
    g_autoptr(json_t) body = NULL, obj = NULL;
    g_autoptr(GBytes) answer = NULL;
    CmResponse resp = {0};
    GError *error = NULL;
    gint64 servers;
    json_t *list;

    register_ok(lab, c, "approved");
    register_ok(lab, other, "approved");
    servers = cm_site_admin_create_collection(lab->site, "Servers", &rule, 1, "admin", lab->now,
                                              &error);
    cm_assert_no_error(error);
    dep.name = "one";
    first = cm_site_admin_deploy(lab->site, servers, &dep, "admin", lab->now, &error);
    cm_assert_no_error(error);
    dep.name = "two";
    second = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "admin", lab->now,
                                  &error);
    cm_assert_no_error(error);
    dep.name = "three";
    third = cm_site_admin_deploy(lab->site, servers, &dep, "admin", lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_int_lt(strcmp(first, second), 0);
    ck_assert_int_lt(strcmp(second, third), 0);
    send_inventory(lab, c, "role", "server", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);

    body = smsid_body(c);
    test_client_send(lab, c, CM_EP_POLICY_ASSIGNMENTS, body, &resp);
    obj = test_response_json(&resp);
    cm_response_clear(&resp);
    list = json_object_get(obj, "assignments");
    ck_assert_int_eq(json_array_size(list), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "policy_id")), first);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "policy_id")),
                     second);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 2), "policy_id")), third);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(list, 0), "version")), 1);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(json_array_get(list, 0), "hash"))),
                      64);
    g_clear_pointer(&obj, json_decref);
    g_clear_pointer(&body, json_decref);
    body = smsid_body(other);
    test_client_send(lab, other, CM_EP_POLICY_ASSIGNMENTS, body, &resp);
    obj = test_response_json(&resp);
    cm_response_clear(&resp);
    list = json_object_get(obj, "assignments");
    ck_assert_int_eq(json_array_size(list), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "policy_id")),
                     second);

    /* the body: the same bytes on every request */
    g_clear_pointer(&body, json_decref);
    body = json_pack("{s:s, s:s}", "smsid", c->smsid, "policy_id", third);
    test_client_send(lab, c, CM_EP_POLICY_BODY, body, &resp);
    ck_assert_int_eq(resp.status, 200);
    answer = g_bytes_ref(resp.body);
    cm_response_clear(&resp);
    test_client_send(lab, c, CM_EP_POLICY_BODY, body, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert(g_bytes_equal(answer, resp.body));
    cm_response_clear(&resp);
    {
        g_autoptr(json_t) pb = NULL;
        g_autoptr(json_t) policy = NULL;
        g_autoptr(GBytes) bytes = NULL;
        CmResponse r2 = {0};
        r2.status = 200;
        r2.body = answer;
        pb = test_response_json(&r2);
        ck_assert_str_eq(json_string_value(json_object_get(pb, "policy_id")), third);
        bytes = cm_json_b64(pb, "policy", 1 << 16, NULL);
        policy = cm_json_parse(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes), 1 << 16,
                               NULL);
        ck_assert_str_eq(json_string_value(json_object_get(policy, "deployment")), "three");
    }
    /* another policy's body is its own */
    json_object_set_new(body, "policy_id", json_string(first));
    test_client_send(lab, c, CM_EP_POLICY_BODY, body, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert(!g_bytes_equal(answer, resp.body));
    cm_response_clear(&resp);
    /* a client outside the collection is not served it */
    g_clear_pointer(&body, json_decref);
    body = json_pack("{s:s, s:s}", "smsid", other->smsid, "policy_id", third);
    test_client_send(lab, other, CM_EP_POLICY_BODY, body, &resp);
    expect_refusal(&resp, CM_REASON_NOT_FOUND);
    cm_response_clear(&resp);
}
END_TEST

/* Status messages need no authentication, and a bogus one naming a victim
 * moves the victim into a status-query collection.  REQ: MSG-03, MSG-04 */
START_TEST(test_status_messages)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) victim = test_client_new(91, "");
    CmRule rule = {CM_RULE_STATUS, "message_id", CM_OP_EQ, "10006"};
    gint64 coll;
    CmResponse resp = {0};
    g_autofree char *bytes = NULL;
    CmRequest req = {.ep = CM_EP_STATUS, .transport = CM_TRANSPORT_HTTPS};

    register_ok(lab, victim, "approved");
    coll = cm_site_admin_create_collection(lab->site, "Failed installs", &rule, 1, "admin",
                                           lab->now, NULL);
    ck_assert_int_gt(coll, 0);
    /* any device, no signature, no client ID header */
    bytes = g_strdup_printf("{\"smsid\":\"%s\",\"component\":\"CCMExec\",\"message_id\":10006,"
                            "\"severity\":\"error\",\"text\":\"install failed\"}",
                            victim->smsid);
    req.body = (const guint8 *)bytes;
    req.body_len = strlen(bytes);
    test_lab_deliver(lab, 0, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ck_assert(cm_site_in_collection(lab->site, coll, victim->smsid));
    /* malformed ones are discarded at the MP */
    req.body = (const guint8 *)"{\"component\":\"x\"}";
    req.body_len = strlen((const char *)req.body);
    test_lab_deliver(lab, 0, &req, &resp);
    expect_refusal(&resp, CM_REASON_BAD_REQUEST);
    cm_response_clear(&resp);
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->status_discarded, 1);
    ck_assert_int_eq(cm_site_counters(lab->site)->status_messages, 1);
}
END_TEST

/* REQ: DATA-01, DATA-02 */
START_TEST(test_maintenance)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(101, "");
    CmMaintenanceResult r;
    CmResponse resp = {0};

    register_ok(lab, c, "approved");
    {
        g_autoptr(json_t) body =
            json_pack("{s:s, s:{s:s}}", "smsid", c->smsid, "discovery", "ou", "OU=Desktops");
        test_client_send(lab, c, CM_EP_DISCOVERY, body, &resp);
        ck_assert_int_eq(resp.status, 200);
        cm_response_clear(&resp);
    }
    send_encrypted(lab, c, CM_EP_CLIENT_STATUS,
                   "{\"checks\":[{\"name\":\"wmi\",\"result\":\"pass\"}]}", CM_CIPHER_AES256_GCM,
                   &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    /* day 30: nothing is old enough */
    ck_assert(cm_site_maintenance(lab->site, lab->now + 30 * CM_USEC_PER_DAY, &r, NULL));
    ck_assert_int_eq(r.discovery_deleted, 0);
    ck_assert_int_eq(r.client_status_deleted, 0);
    /* day 32: client status history (31 days) goes */
    ck_assert(cm_site_maintenance(lab->site, lab->now + 32 * CM_USEC_PER_DAY, &r, NULL));
    ck_assert_int_eq(r.discovery_deleted, 0);
    ck_assert_int_eq(r.client_status_deleted, 1);
    /* day 91: aged discovery data (90 days) goes */
    ck_assert(cm_site_maintenance(lab->site, lab->now + 91 * CM_USEC_PER_DAY, &r, NULL));
    ck_assert_int_eq(r.discovery_deleted, 1);
    /* configurable */
    s.discovery_retention_days = 7;
    ck_assert(cm_site_set_settings(lab->site, &s, "admin", lab->now, NULL));
    {
        g_autoptr(json_t) body =
            json_pack("{s:s, s:{s:s}}", "smsid", c->smsid, "discovery", "ou", "OU=Laptops");
        test_client_send(lab, c, CM_EP_DISCOVERY, body, &resp);
        cm_response_clear(&resp);
    }
    ck_assert(cm_site_maintenance(lab->site, lab->now + 8 * CM_USEC_PER_DAY, &r, NULL));
    ck_assert_int_eq(r.discovery_deleted, 1);
}
END_TEST

/* REQ: NET-03 */
START_TEST(test_forest_trusts)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    const char *partner_domains[] = {"emea.partner.example", NULL};

    ck_assert(cm_site_add_forest(lab->site, "partner.example", partner_domains, NULL));
    ck_assert(cm_site_add_forest(lab->site, "vendor.example", NULL, NULL));
    ck_assert(cm_site_kerberos_verifiable(lab->site, "corp.example"));
    ck_assert(cm_site_kerberos_verifiable(lab->site, "sales.corp.example"));
    ck_assert(!cm_site_kerberos_verifiable(lab->site, ""));                /* workgroup */
    ck_assert(!cm_site_kerberos_verifiable(lab->site, "partner.example")); /* no trust */
    /* one-way: the partner trusts us, not we them: still no */
    ck_assert(
        cm_site_set_trust(lab->site, "partner.example", "corp.example", CM_TRUST_ONE_WAY, NULL));
    ck_assert(!cm_site_kerberos_verifiable(lab->site, "emea.partner.example"));
    /* one-way the other way: our forest trusts theirs */
    ck_assert(
        cm_site_set_trust(lab->site, "corp.example", "vendor.example", CM_TRUST_ONE_WAY, NULL));
    ck_assert(cm_site_kerberos_verifiable(lab->site, "vendor.example"));
    /* two-way */
    ck_assert(
        cm_site_set_trust(lab->site, "partner.example", "corp.example", CM_TRUST_TWO_WAY, NULL));
    ck_assert(cm_site_kerberos_verifiable(lab->site, "emea.partner.example"));
    ck_assert(cm_site_set_trust(lab->site, "partner.example", "corp.example", CM_TRUST_NONE, NULL));
    ck_assert(!cm_site_kerberos_verifiable(lab->site, "emea.partner.example"));
}
END_TEST

/* An approved registration carries a site-issued client token.  REQ: CMG-12 */
START_TEST(test_client_token)
{
    CmSiteSettings s = settings_with(CM_APPROVAL_ALL);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(111, "");
    CmResponse resp = {0};
    g_autoptr(json_t) obj = NULL, claims = NULL;
    CmJwtCheck check = {.issuer = "PS1", .audience = "cmg"};
    GError *error = NULL;

    test_client_register(lab, c, &resp);
    obj = test_response_json(&resp);
    cm_response_clear(&resp);
    check.now = lab->now;
    claims = cm_jwt_verify(json_string_value(json_object_get(obj, "token")),
                           cm_cert_public_key(cm_site_signing_cert(lab->site)), &check, &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), c->smsid);
    check.now = lab->now + 31 * CM_USEC_PER_DAY;
    ck_assert_ptr_null(cm_jwt_verify(json_string_value(json_object_get(obj, "token")),
                                     cm_cert_public_key(cm_site_signing_cert(lab->site)), &check,
                                     &error));
    cm_assert_error(&error, CM_PROTO_ERROR_EXPIRED);
}
END_TEST

/* The audit trail chains every administrative action. */
START_TEST(test_audit_chain)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(TestClient) c = test_client_new(121, "");
    sqlite3_stmt *st;
    char prev[65] = "";
    int n = 0;

    register_ok(lab, c, "pending");
    ck_assert(cm_site_admin_approve(lab->site, c->smsid, "alice", lab->now, NULL));
    st = cm_store_stmt(cm_site_store(lab->site),
                       "SELECT admin, action, prev_hash, hash FROM audit ORDER BY id", NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 2), prev);
        g_strlcpy(prev, (const char *)sqlite3_column_text(st, 3), sizeof prev);
        n++;
    }
    sqlite3_reset(st);
    ck_assert_int_ge(n, 3); /* create-site, add-mp, approve */
}
END_TEST

static Suite *
site_suite(void)
{
    Suite *s = suite_create("site");
    TCase *tc = tcase_create("site");

    tcase_add_test(tc, test_site_keys);
    tcase_add_test(tc, test_site_reopen);
    tcase_add_test(tc, test_ehttp_certificates);
    tcase_add_test(tc, test_system_certificates);
    tcase_add_test(tc, test_client_views);
    tcase_add_test(tc, test_sup_client_version);
    tcase_add_test(tc, test_client_push);
    tcase_add_test(tc, test_site_secrets);
    tcase_add_test(tc, test_approval_modes);
    tcase_add_test(tc, test_approval_pki);
    tcase_add_test(tc, test_register_refusals);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_blocking);
    tcase_add_test(tc, test_conflicts);
    tcase_add_test(tc, test_new_record_keeps_data);
    tcase_add_test(tc, test_schema7_migration);
    tcase_add_test(tc, test_signing_rules);
    tcase_add_test(tc, test_encryption);
    tcase_add_test(tc, test_retargeting);
    tcase_add_test(tc, test_assignments_order);
    tcase_add_test(tc, test_status_messages);
    tcase_add_test(tc, test_maintenance);
    tcase_add_test(tc, test_forest_trusts);
    tcase_add_test(tc, test_client_token);
    tcase_add_test(tc, test_audit_chain);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(site_suite());
}
