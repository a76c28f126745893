/* test-admin.c - role-based administration, the audit trail's verification,
 * the SMS Provider's authentication levels and wipe acknowledgments
 * (site/rbac.c, site/provider.c, site/wipe.c). */
#include <string.h>

#include <sqlite3.h>

#include "roles.h"

static CmSiteSettings
approve_all(void)
{
    CmSiteSettings s;
    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    return s;
}

static void
register_approved(TestLab *lab, TestClient *c)
{
    CmResponse resp = {0};
    test_client_register(lab, c, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
}

static void
send_inventory(TestLab *lab, TestClient *c, const char *prop, const char *value)
{
    g_autoptr(json_t) body =
        json_pack("{s:s, s:{s:s}}", "smsid", c->smsid, "inventory", prop, value);
    CmResponse resp = {0};
    test_client_send(lab, c, CM_EP_INVENTORY, body, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
}

static void
add_admin(TestLab *lab, const char *name, CmSecurityRole role, const char *const *scopes,
          const gint64 *colls, size_t n_colls)
{
    GError *error = NULL;
    CmAdminSpec spec = {.name = name,
                        .roles = &role,
                        .n_roles = 1,
                        .scopes = scopes,
                        .collections = colls,
                        .n_collections = n_colls};

    ck_assert(cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    cm_assert_no_error(error);
}

static void
assert_refused(GError **error)
{
    ck_assert_msg(*error != NULL, "expected a refusal, got success");
    ck_assert_msg(g_error_matches(*error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED),
                  "expected CM_SITE_ERROR_REFUSED, got %d: %s", (*error)->code,
                  (*error)->message);
    g_clear_error(error);
}

/* How many audit entries admin has with action. */
static int
audit_count(TestLab *lab, const char *admin, const char *action)
{
    sqlite3_stmt *st = cm_store_stmt(cm_site_store(lab->site),
                                     "SELECT count(*) FROM audit WHERE admin = ? AND action = ?",
                                     NULL);
    int n;

    sqlite3_bind_text(st, 1, admin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, action, -1, SQLITE_TRANSIENT);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return n;
}

static CmDeployment
deployment(const char *name, const char *content_id)
{
    static const guint8 hash[32] = {1, 2, 3};
    CmDeployment dep = {.name = name, .content_id = content_id, .content_hash = hash,
                        .content_size = 100};
    return dep;
}

static void
exec_sql(TestLab *lab, const char *sql)
{
    ck_assert_int_eq(sqlite3_exec(cm_store_db(cm_site_store(lab->site)), sql, NULL, NULL, NULL),
                     SQLITE_OK);
}

/* ------------------------------------------------------------ roles */

/* The roles' permissions: only the analyst's VIEW for the analyst, and
 * client push and client upgrade only for the high roles.  REQ: ADM-01 */
START_TEST(test_role_permissions)
{
    for (int a = 0; a < CM_ADMIN__COUNT; a++) {
        ck_assert(cm_security_role_allows(CM_ROLE_FULL_ADMINISTRATOR, a));
        ck_assert(cm_security_role_allows(CM_ROLE_READ_ONLY_ANALYST, a) == (a == CM_ADMIN_VIEW));
    }
    for (int r = 0; r < CM_ROLE__COUNT; r++) {
        gboolean high =
            r == CM_ROLE_FULL_ADMINISTRATOR || r == CM_ROLE_INFRASTRUCTURE_ADMINISTRATOR;
        CmSecurityRole back;
        ck_assert(cm_security_role_allows(r, CM_ADMIN_CLIENT_PUSH) == high);
        ck_assert(cm_security_role_allows(r, CM_ADMIN_CLIENT_UPGRADE) == high);
        ck_assert(cm_security_role_parse(cm_security_role_name(r), &back, NULL));
        ck_assert_int_eq(back, r);
    }
    ck_assert(cm_security_role_allows(CM_ROLE_APPLICATION_DEPLOYMENT_MANAGER, CM_ADMIN_DEPLOY));
    ck_assert(!cm_security_role_allows(CM_ROLE_APPLICATION_DEPLOYMENT_MANAGER, CM_ADMIN_APPROVE));
    ck_assert(!cm_security_role_allows(CM_ROLE_OPERATIONS_ADMINISTRATOR, CM_ADMIN_SECURITY));
    ck_assert(!cm_security_role_allows(CM_ROLE__COUNT, CM_ADMIN_VIEW));
    ck_assert(!cm_security_role_parse("root", &(CmSecurityRole){0}, NULL));
}
END_TEST

/* An analyst's attempt to deploy is refused and audited; nothing is
 * deployed.  The built-in Full Administrator deploys.  REQ: ADM-01 */
START_TEST(test_analyst_deploy_refused)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    CmDeployment dep = deployment("Office", "CONTENT1");
    GError *error = NULL;
    g_autofree char *policy = NULL;

    add_admin(lab, "CORP\\bob", CM_ROLE_READ_ONLY_ANALYST, NULL, NULL, 0);
    ck_assert(cm_site_rbac_set_enforced(lab->site, TRUE, CM_SITE_BUILTIN_ADMIN, lab->now, NULL));
    ck_assert_ptr_null(cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep,
                                            "CORP\\bob", lab->now, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "Read-only Analyst"));
    assert_refused(&error);
    ck_assert_int_eq(audit_count(lab, "CORP\\bob", "refused:deploy"), 1);
    ck_assert_ptr_null(cm_site_policy_id(lab->site, "Office"));
    /* the analyst still sees */
    ck_assert(cm_site_authorize(lab->site, "CORP\\bob", CM_ADMIN_VIEW, 0, lab->now, NULL));
    policy = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep,
                                  CM_SITE_BUILTIN_ADMIN, lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_ptr_nonnull(policy);
    ck_assert_int_eq(audit_count(lab, CM_SITE_BUILTIN_ADMIN, "deploy"), 1);
}
END_TEST

/* Client push, site upgrade, SUP publishing and site settings need the
 * high roles; an application deployment manager and an operations
 * administrator are refused, an infrastructure administrator is not.
 * REQ: ADM-01, CLI-01 */
START_TEST(test_high_roles)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    CmSiteSettings s = *cm_site_settings(lab->site);
    GError *error = NULL;
    const char *lows[] = {"dora", "otto"};

    add_admin(lab, "dora", CM_ROLE_APPLICATION_DEPLOYMENT_MANAGER, NULL, NULL, 0);
    add_admin(lab, "otto", CM_ROLE_OPERATIONS_ADMINISTRATOR, NULL, NULL, 0);
    add_admin(lab, "ivy", CM_ROLE_INFRASTRUCTURE_ADMINISTRATOR, NULL, NULL, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(lows); i++) {
        ck_assert(!cm_site_add_push_account(lab->site, "push", "pw", NULL, lows[i], lab->now,
                                            &error));
        assert_refused(&error);
        ck_assert(!cm_site_upgrade(lab->site, "5.00.9128.1000", lows[i], lab->now, &error));
        assert_refused(&error);
        ck_assert(!cm_site_publish_client_to_sup(lab->site, lows[i], lab->now, &error));
        assert_refused(&error);
        ck_assert(!cm_site_set_settings(lab->site, &s, lows[i], lab->now, &error));
        assert_refused(&error);
        ck_assert(!cm_site_admin_push_require_kerberos(lab->site, TRUE, lows[i], lab->now,
                                                       &error));
        assert_refused(&error);
    }
    {
        g_autofree char *v = cm_site_client_version(lab->site);
        ck_assert_str_eq(v, CM_SITE_CLIENT_VERSION); /* nothing changed */
    }
    ck_assert_int_eq(audit_count(lab, "dora", "refused:client-push"), 2);
    ck_assert_int_eq(audit_count(lab, "otto", "refused:client-upgrade"), 2);
    ck_assert(cm_site_add_push_account(lab->site, "push", "pw", NULL, "ivy", lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_upgrade(lab->site, "5.00.9128.1000", "ivy", lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_admin_push_require_kerberos(lab->site, TRUE, "ivy", lab->now, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(audit_count(lab, "ivy", "push-require-kerberos"), 1);
}
END_TEST

/* Limiting collections decide which clients an administrator sees and acts
 * on, and where it may deploy.  REQ: ADM-01 */
START_TEST(test_limiting_collections)
{
    CmSiteSettings s = approve_all();
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) fin = test_client_new(301, "");
    g_autoptr(TestClient) eng = test_client_new(302, "");
    CmRule rule = {.source = CM_RULE_INVENTORY, .property = "dept", .op = CM_OP_EQ,
                   .value = "finance"};
    CmDeployment dep = deployment("Ledger", "CONTENT2");
    g_autoptr(GPtrArray) seen = NULL;
    g_autofree char *policy = NULL;
    GError *error = NULL;
    gint64 coll;

    register_approved(lab, fin);
    register_approved(lab, eng);
    send_inventory(lab, fin, "dept", "finance");
    send_inventory(lab, eng, "dept", "engineering");
    coll = cm_site_admin_create_collection(lab->site, "Finance", &rule, 1, CM_SITE_BUILTIN_ADMIN,
                                           lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_int_gt(coll, 1);
    add_admin(lab, "fay", CM_ROLE_OPERATIONS_ADMINISTRATOR, NULL, &coll, 1);
    seen = cm_site_admin_visible_clients(lab->site, "fay", lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(seen->len, 1);
    ck_assert_str_eq(g_ptr_array_index(seen, 0), fin->smsid);
    g_clear_pointer(&seen, g_ptr_array_unref);
    seen = cm_site_admin_visible_clients(lab->site, CM_SITE_BUILTIN_ADMIN, lab->now, &error);
    ck_assert_uint_eq(seen->len, 2);
    /* acts inside, not outside */
    ck_assert(!cm_site_admin_block(lab->site, eng->smsid, "fay", lab->now, &error));
    assert_refused(&error);
    ck_assert(cm_site_admin_block(lab->site, fin->smsid, "fay", lab->now, &error));
    cm_assert_no_error(error);
    /* a blocked client is in no collection: unblocking needs All Systems */
    ck_assert(!cm_site_admin_unblock(lab->site, fin->smsid, "fay", lab->now, &error));
    assert_refused(&error);
    ck_assert(cm_site_admin_unblock(lab->site, fin->smsid, CM_SITE_BUILTIN_ADMIN, lab->now,
                                    &error));
    ck_assert(cm_site_admin_approve(lab->site, fin->smsid, CM_SITE_BUILTIN_ADMIN, lab->now,
                                    &error));
    cm_assert_no_error(error);
    /* deploys to its collection, not to All Systems */
    ck_assert_ptr_null(
        cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "fay", lab->now, &error));
    assert_refused(&error);
    policy = cm_site_admin_deploy(lab->site, coll, &dep, "fay", lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_ptr_nonnull(policy);
    /* a limit naming a collection that does not exist is refused */
    {
        gint64 bad = 99;
        CmSecurityRole r = CM_ROLE_READ_ONLY_ANALYST;
        CmAdminSpec spec = {.name = "x", .roles = &r, .n_roles = 1, .collections = &bad,
                            .n_collections = 1};
        ck_assert(!cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now,
                                          &error));
        ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND));
        g_clear_error(&error);
    }
}
END_TEST

/* Security scopes decide which content an administrator may deploy.
 * REQ: ADM-01 */
START_TEST(test_security_scopes)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    const char *const finance[] = {"Finance", NULL};
    CmDeployment dep = deployment("Payroll", "PAYROLL1");
    CmDeployment other = deployment("Browser", "BROWSER1");
    g_autofree char *p1 = NULL, *p2 = NULL;
    GError *error = NULL;

    ck_assert(cm_site_rbac_set_object_scope(lab->site, "content", "PAYROLL1", "Finance",
                                            CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    cm_assert_no_error(error);
    add_admin(lab, "dan", CM_ROLE_APPLICATION_DEPLOYMENT_MANAGER, NULL, NULL, 0); /* Default */
    add_admin(lab, "fin", CM_ROLE_APPLICATION_DEPLOYMENT_MANAGER, finance, NULL, 0);
    ck_assert_ptr_null(
        cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "dan", lab->now, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "security scopes"));
    assert_refused(&error);
    p1 = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "fin", lab->now, &error);
    cm_assert_no_error(error);
    /* content without a scope is in Default: dan yes, fin no */
    p2 = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &other, "dan", lab->now,
                              &error);
    cm_assert_no_error(error);
    ck_assert_ptr_null(cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &other, "fin",
                                            lab->now, &error));
    assert_refused(&error);
    /* only security may set scopes */
    ck_assert(!cm_site_rbac_set_object_scope(lab->site, "content", "BROWSER1", "Finance", "fin",
                                             lab->now, &error));
    assert_refused(&error);
}
END_TEST

/* Enforcement: registered administrators are always held to their roles;
 * names that are not administrators pass until enforcement is on, then are
 * refused.  Nobody grants a role they lack; the built-in administrator
 * stays.  REQ: ADM-01 */
START_TEST(test_enforcement)
{
    CmSiteSettings s = approve_all();
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(310, "");
    CmSecurityRole full = CM_ROLE_FULL_ADMINISTRATOR;
    CmAdminSpec spec = {.name = "mallory", .roles = &full, .n_roles = 1};
    GError *error = NULL;

    register_approved(lab, c);
    ck_assert(!cm_site_rbac_enforced(lab->site));
    ck_assert(cm_site_admin_block(lab->site, c->smsid, "scenario", lab->now, &error));
    cm_assert_no_error(error);
    add_admin(lab, "ana", CM_ROLE_READ_ONLY_ANALYST, NULL, NULL, 0);
    ck_assert(!cm_site_admin_unblock(lab->site, c->smsid, "ana", lab->now, &error));
    assert_refused(&error);
    ck_assert(!cm_site_rbac_set_enforced(lab->site, TRUE, "ana", lab->now, &error));
    assert_refused(&error);
    ck_assert(cm_site_rbac_set_enforced(lab->site, TRUE, CM_SITE_BUILTIN_ADMIN, lab->now, NULL));
    ck_assert(cm_site_rbac_enforced(lab->site));
    ck_assert(!cm_site_admin_unblock(lab->site, c->smsid, "scenario", lab->now, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "not an administrator"));
    assert_refused(&error);
    ck_assert(!cm_site_admin_unblock(lab->site, c->smsid, "", lab->now, &error));
    assert_refused(&error);
    ck_assert(!cm_site_admin_unblock(lab->site, c->smsid, NULL, lab->now, &error));
    assert_refused(&error);
    ck_assert_int_eq(audit_count(lab, "scenario", "refused:block"), 1);
    ck_assert_int_eq(audit_count(lab, "(none)", "refused:block"), 2);
    /* a security administrator cannot make a Full Administrator */
    add_admin(lab, "sec", CM_ROLE_SECURITY_ADMINISTRATOR, NULL, NULL, 0);
    ck_assert(!cm_site_rbac_add_admin(lab->site, &spec, "sec", lab->now, &error));
    assert_refused(&error);
    ck_assert(!cm_site_rbac_is_admin(lab->site, "mallory"));
    /* but can make another security administrator, and remove one */
    spec.roles = &(CmSecurityRole){CM_ROLE_SECURITY_ADMINISTRATOR};
    ck_assert(cm_site_rbac_add_admin(lab->site, &spec, "sec", lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_rbac_remove_admin(lab->site, "mallory", "sec", lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(!cm_site_rbac_is_admin(lab->site, "mallory"));
    /* the built-in administrator can be neither replaced nor removed */
    spec.name = CM_SITE_BUILTIN_ADMIN;
    spec.roles = &full;
    ck_assert(!cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    assert_refused(&error);
    ck_assert(!cm_site_rbac_remove_admin(lab->site, CM_SITE_BUILTIN_ADMIN, CM_SITE_BUILTIN_ADMIN,
                                         lab->now, &error));
    assert_refused(&error);
    ck_assert(cm_site_admin_unblock(lab->site, c->smsid, CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    cm_assert_no_error(error);
    /* bad specs */
    spec.name = "";
    ck_assert(!cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    spec.name = "zed";
    spec.n_roles = 0;
    ck_assert(!cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
}
END_TEST

/* The enforcement setting and the administrators live in the site
 * database.  REQ: ADM-01 */
START_TEST(test_rbac_persists)
{
    g_autofree char *dir = cm_test_tmpdir();
    g_autofree char *path = g_build_filename(dir, "site.db", NULL);
    guint8 mk[32];
    CmSiteConfig config = {.site_code = "PS1", .db_path = path, .db_mode = CM_STORE_FAST,
                           .top_level = TRUE, .forest = "corp.example", .master_key = mk};
    CmSecurityRole r = CM_ROLE_READ_ONLY_ANALYST;
    CmAdminSpec spec = {.name = "ana", .roles = &r, .n_roles = 1};
    CmSite *site;
    GError *error = NULL;

    memset(mk, 7, sizeof mk);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_rbac_add_admin(site, &spec, CM_SITE_BUILTIN_ADMIN, CM_TEST_NOW, NULL));
    ck_assert(cm_site_rbac_set_enforced(site, TRUE, CM_SITE_BUILTIN_ADMIN, CM_TEST_NOW, NULL));
    cm_site_free(site);
    site = cm_site_open(&config, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_rbac_enforced(site));
    ck_assert(cm_site_rbac_is_admin(site, "ana"));
    ck_assert(!cm_site_authorize(site, "ana", CM_ADMIN_DEPLOY, 0, CM_TEST_NOW, &error));
    assert_refused(&error);
    cm_site_free(site);
    cm_test_rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------ audit */

/* An untouched trail verifies; the head names its newest entry.
 * REQ: ADM-01, ADM-02 */
START_TEST(test_audit_verify_ok)
{
    CmSiteSettings s = approve_all();
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(320, "");
    CmAuditReport rep;
    g_autofree char *head = NULL;

    register_approved(lab, c);
    ck_assert(cm_site_admin_block(lab->site, c->smsid, CM_SITE_BUILTIN_ADMIN, lab->now, NULL));
    add_admin(lab, "ana", CM_ROLE_READ_ONLY_ANALYST, NULL, NULL, 0);
    ck_assert(!cm_site_authorize(lab->site, "ana", CM_ADMIN_DEPLOY, 0, lab->now, NULL));
    ck_assert(cm_site_audit_verify(lab->site, NULL, &rep, NULL));
    ck_assert_msg(rep.verdict == CM_AUDIT_OK, "%s", rep.message);
    ck_assert_int_ge(rep.entries, 5); /* create-site, add-mp, block, add-admin, refused */
    head = cm_site_audit_head(lab->site);
    ck_assert_str_eq(rep.head, head);
    ck_assert(cm_site_audit_verify(lab->site, head, &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_OK);
}
END_TEST

/* A trail with four administrative actions after creation. */
static TestLab *
audited_lab(void)
{
    TestLab *lab = test_lab_new(NULL, 1);
    for (int i = 0; i < 4; i++) {
        g_autofree char *v = g_strdup_printf("5.00.%d.1000", 9200 + i);
        ck_assert(cm_site_upgrade(lab->site, v, CM_SITE_BUILTIN_ADMIN, lab->now + i, NULL));
    }
    return lab;
}

/* An entry changed in the database is detected and named.  REQ: ADM-01, ADM-02 */
START_TEST(test_audit_altered)
{
    g_autoptr(TestLab) lab = audited_lab();
    CmAuditReport rep;

    exec_sql(lab, "UPDATE audit SET admin = 'someone-else' WHERE id = 4");
    ck_assert(cm_site_audit_verify(lab->site, NULL, &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_ALTERED);
    ck_assert_int_eq(rep.bad_id, 4);
    ck_assert_str_eq(cm_audit_verdict_name(rep.verdict), "altered");
}
END_TEST

/* A deleted entry breaks the chain at its successor.  REQ: ADM-01, ADM-02 */
START_TEST(test_audit_deleted)
{
    g_autoptr(TestLab) lab = audited_lab();
    CmAuditReport rep;

    exec_sql(lab, "DELETE FROM audit WHERE id = 3");
    ck_assert(cm_site_audit_verify(lab->site, NULL, &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_DELETED);
    ck_assert_int_eq(rep.bad_id, 4);
}
END_TEST

/* The first entry deleted, and the newest (tail) deleted: the kept head
 * shows the truncation.  REQ: ADM-01, ADM-02 */
START_TEST(test_audit_truncated)
{
    g_autoptr(TestLab) lab = audited_lab();
    CmAuditReport rep;

    exec_sql(lab, "DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)");
    ck_assert(cm_site_audit_verify(lab->site, NULL, &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_TRUNCATED);
    exec_sql(lab, "DELETE FROM audit WHERE id = 1");
    ck_assert(cm_site_audit_verify(lab->site, NULL, &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_DELETED);
    ck_assert_int_eq(rep.bad_id, 2);
}
END_TEST

/* An entry inserted with a correctly computed hash of its own still does
 * not fit: its successor names the entry before it.  One whose hash was
 * recomputed after altering is caught the same way.  REQ: ADM-01, ADM-02 */
START_TEST(test_audit_inserted)
{
    g_autoptr(TestLab) lab = audited_lab();
    sqlite3_stmt *st;
    CmAuditReport rep;
    g_autofree char *prev = NULL, *line = NULL, *hex = NULL;
    guint8 h[32];

    /* make room: move entries 4.. up by 100, then forge id 4 after 3 */
    exec_sql(lab, "UPDATE audit SET id = id + 100 WHERE id >= 4");
    st = cm_store_stmt(cm_site_store(lab->site), "SELECT hash FROM audit WHERE id = 3", NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    prev = g_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    line = g_strdup_printf("%s\n%d\n%s\n%s\n%s\n%s", prev, 5, "admin", "approve", "X", "");
    cm_hash(CM_HASH_SHA256, line, strlen(line), h);
    hex = cm_enc_hex(h, sizeof h);
    st = cm_store_stmt(cm_site_store(lab->site),
                       "INSERT INTO audit(id, at, admin, action, target, detail, prev_hash, hash)"
                       " VALUES (4, 5, 'admin', 'approve', 'X', '', ?, ?)",
                       NULL);
    sqlite3_bind_text(st, 1, prev, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hex, -1, SQLITE_TRANSIENT);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
    ck_assert(cm_site_audit_verify(lab->site, NULL, &rep, NULL));
    ck_assert_msg(rep.verdict == CM_AUDIT_INSERTED, "%s", rep.message);
    ck_assert_int_eq(rep.bad_id, 4);
}
END_TEST

/* A new entry appended at the end with a valid chain does not match the
 * head kept elsewhere.  REQ: ADM-01, ADM-02 */
START_TEST(test_audit_external_head)
{
    g_autoptr(TestLab) lab = audited_lab();
    g_autofree char *head = cm_site_audit_head(lab->site);
    CmAuditReport rep;

    ck_assert(cm_site_upgrade(lab->site, "5.00.9999.1000", CM_SITE_BUILTIN_ADMIN, lab->now,
                              NULL));
    ck_assert(cm_site_audit_verify(lab->site, head, &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_INSERTED);
    ck_assert(cm_site_audit_verify(lab->site, "00", &rep, NULL));
    ck_assert_int_eq(rep.verdict, CM_AUDIT_TRUNCATED);
}
END_TEST

/* ------------------------------------------------------------ provider */

/* RFC 6238 appendix B test vectors (8 digits; SHA1, SHA256, SHA512).
 * REQ: ADM-02 */
START_TEST(test_totp_rfc6238)
{
    static const struct {
        gint64 t;
        const char *sha1, *sha256, *sha512;
    } v[] = {
        {59, "94287082", "46119246", "90693936"},
        {1111111109, "07081804", "68084774", "25091201"},
        {1111111111, "14050471", "67062674", "99943326"},
        {1234567890, "89005924", "91819424", "93441116"},
        {2000000000, "69279037", "90698825", "38618901"},
        {G_GINT64_CONSTANT(20000000000), "65353130", "77737706", "47863826"},
    };
    const char *k20 = "12345678901234567890";
    const char *k32 = "12345678901234567890123456789012";
    const char *k64 = "1234567890123456789012345678901234567890123456789012345678901234";
    char out[11];
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
        ck_assert(cm_totp("SHA1", (const guint8 *)k20, 20, v[i].t, 30, 8, out, &error));
        ck_assert_str_eq(out, v[i].sha1);
        ck_assert(cm_totp("SHA256", (const guint8 *)k32, 32, v[i].t, 30, 8, out, &error));
        ck_assert_str_eq(out, v[i].sha256);
        ck_assert(cm_totp("SHA512", (const guint8 *)k64, 64, v[i].t, 30, 8, out, &error));
        ck_assert_str_eq(out, v[i].sha512);
    }
    /* 6 digits are the last 6 of the 8 */
    ck_assert(cm_totp("SHA1", (const guint8 *)k20, 20, 59, 30, 6, out, NULL));
    ck_assert_str_eq(out, "287082");
    ck_assert(!cm_totp("MD5", (const guint8 *)k20, 20, 59, 30, 6, out, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    ck_assert(!cm_totp("SHA1", (const guint8 *)k20, 0, 59, 30, 6, out, NULL));
    ck_assert(!cm_totp("SHA1", (const guint8 *)k20, 20, 59, 30, 5, out, NULL));
    ck_assert(!cm_totp("SHA1", (const guint8 *)k20, 20, -1, 30, 6, out, NULL));
}
END_TEST

typedef struct {
    CmKey *ca_key, *alice_key;
    CmCert *ca, *alice_cert, *stranger_cert;
} AdminPki;

static void
admin_pki_free(AdminPki *p)
{
    cm_key_unref(p->ca_key);
    cm_key_unref(p->alice_key);
    cm_cert_unref(p->ca);
    cm_cert_unref(p->alice_cert);
    cm_cert_unref(p->stranger_cert);
}

static CmCert *
issue(CmCertProfile profile, const char *cn, guint64 serial, const CmKey *subject,
      const CmKey *issuer_key, const CmCert *issuer)
{
    CmCertSpec spec = {.profile = profile, .subject_cn = cn, .serial = serial,
                       .not_before = CM_TEST_NOW - CM_USEC_PER_DAY,
                       .not_after = CM_TEST_NOW + 365 * CM_USEC_PER_DAY, .subject_key = subject,
                       .issuer_key = issuer_key, .issuer_cert = issuer};
    GError *error = NULL;
    CmCert *cert = cm_cert_issue(&spec, &error);
    cm_assert_no_error(error);
    return cert;
}

/* alice: Full Administrator with a Kerberos principal, a certificate from
 * the enterprise CA the site trusts, a password and a TOTP secret. */
static void
provider_lab(TestLab *lab, AdminPki *p, const guint8 *secret)
{
    CmSecurityRole full = CM_ROLE_FULL_ADMINISTRATOR;
    g_autofree char *thumb = NULL;
    g_autoptr(CmKey) stranger_ca = cm_key_generate(CM_KEY_EC_P256, NULL);
    g_autoptr(CmCert) stranger_root = NULL;
    CmRng rng;
    GError *error = NULL;

    memset(p, 0, sizeof *p);
    p->ca_key = cm_key_generate(CM_KEY_EC_P256, NULL);
    p->alice_key = cm_key_generate(CM_KEY_EC_P256, NULL);
    p->ca = issue(CM_CERT_ROOT_CA, "Corp Root CA", 1, p->ca_key, NULL, NULL);
    p->alice_cert = issue(CM_CERT_CLIENT_AUTH, "alice", 2, p->alice_key, p->ca_key, p->ca);
    stranger_root = issue(CM_CERT_ROOT_CA, "Other CA", 1, stranger_ca, NULL, NULL);
    p->stranger_cert = issue(CM_CERT_CLIENT_AUTH, "alice", 2, p->alice_key, stranger_ca,
                             stranger_root);
    ck_assert(cm_site_set_pki(lab->site, p->ca, NULL, &error));
    cm_assert_no_error(error);
    thumb = cm_cert_thumbprint_hex(p->alice_cert);
    {
        CmAdminSpec spec = {.name = "alice", .roles = &full, .n_roles = 1,
                            .principal = "alice@CORP.EXAMPLE", .cert_thumbprint = thumb};
        ck_assert(cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now,
                                         &error));
        cm_assert_no_error(error);
    }
    cm_rng_init_seeded(&rng, 42, 7);
    ck_assert(cm_site_admin_set_password(lab->site, "alice", "correct horse", &rng,
                                         CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_admin_enroll_totp(lab->site, "alice", secret, 20, "alice", lab->now,
                                        &error));
    cm_assert_no_error(error);
}

static const char *
code_at(const guint8 *secret, CmTime t)
{
    static char out[11];
    ck_assert(cm_totp("SHA1", secret, 20, t / CM_USEC_PER_SEC, 30, 6, out, NULL));
    return out;
}

static gboolean
login(TestLab *lab, const CmProviderLogin *l, CmTime now, CmProviderAuth *got)
{
    GError *error = NULL;
    gboolean ok = cm_site_provider_login(lab->site, l, now, got, &error);
    if (!ok) {
        ck_assert_msg(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED), "%s",
                      error->message);
        g_clear_error(&error);
    }
    return ok;
}

/* Windows authentication (password or Kerberos along trust), a
 * certificate, two factors: the hierarchy's level decides who gets in.
 * REQ: ADM-02 */
START_TEST(test_provider_levels)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    const guint8 *secret = (const guint8 *)"0123456789abcdefghij";
    AdminPki p;
    CmProviderAuth got = -1;
    CmTime t = lab->now;
    GError *error = NULL;

    provider_lab(lab, &p, secret);
    ck_assert_int_eq(cm_site_provider_level(lab->site), CM_PROVIDER_AUTH_WINDOWS);
    /* windows level: a password, or Kerberos */
    ck_assert(login(lab, &(CmProviderLogin){.admin = "alice", .password = "correct horse"}, t,
                    &got));
    ck_assert_int_eq(got, CM_PROVIDER_AUTH_WINDOWS);
    ck_assert(login(lab, &(CmProviderLogin){.admin = "alice",
                                            .kerberos_principal = "alice@CORP.EXAMPLE"},
                    t, &got));
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .password = "wrong horse"}, t,
                     NULL));
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice",
                                             .kerberos_principal = "alice@EVIL.EXAMPLE"},
                     t, NULL));
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "mallory", .password = "correct horse"}, t,
                     NULL));
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice"}, t, NULL));
    /* a certificate from a CA the site does not trust */
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.stranger_cert}, t,
                     NULL));

    /* certificate level: windows alone no longer enough */
    ck_assert(cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_CERTIFICATE, "alice", t,
                                         &error));
    cm_assert_no_error(error);
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .password = "correct horse"}, t,
                     NULL));
    ck_assert(login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert}, t, &got));
    ck_assert_int_eq(got, CM_PROVIDER_AUTH_CERTIFICATE);

    /* two factors: certificate or Kerberos, plus the one-time code */
    ck_assert(cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_TWO_FACTOR, "alice", t,
                                         &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(cm_site_provider_level(lab->site), CM_PROVIDER_AUTH_TWO_FACTOR);
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert}, t, NULL));
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .password = "correct horse",
                                             .totp = code_at(secret, t)},
                     t, NULL));
    t += 30 * CM_USEC_PER_SEC; /* the code above was used */
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert,
                                             .totp = "000000"},
                     t, NULL));
    ck_assert(login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert,
                                            .totp = code_at(secret, t)},
                    t, &got));
    ck_assert_int_eq(got, CM_PROVIDER_AUTH_TWO_FACTOR);
    /* the same code again is a replay */
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert,
                                             .totp = code_at(secret, t)},
                     t, NULL));
    t += 30 * CM_USEC_PER_SEC;
    ck_assert(login(lab, &(CmProviderLogin){.admin = "alice",
                                            .kerberos_principal = "alice@corp.example",
                                            .totp = code_at(secret, t)},
                    t, &got));
    ck_assert_int_eq(got, CM_PROVIDER_AUTH_TWO_FACTOR);
    /* one step of skew is accepted, two are not */
    t += 60 * CM_USEC_PER_SEC;
    ck_assert(!login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert,
                                             .totp = code_at(secret, t - 60 * CM_USEC_PER_SEC)},
                     t, NULL));
    ck_assert(login(lab, &(CmProviderLogin){.admin = "alice", .cert = p.alice_cert,
                                            .totp = code_at(secret, t - 30 * CM_USEC_PER_SEC)},
                    t, NULL));
    /* every sign-in is audited, refusals too */
    ck_assert_int_eq(audit_count(lab, "alice", "provider-login"), 6);
    ck_assert_int_ge(audit_count(lab, "alice", "refused:provider-login"), 10);
    ck_assert_int_eq(audit_count(lab, "mallory", "refused:provider-login"), 1);
    admin_pki_free(&p);
}
END_TEST

/* Setting the level needs the security action, and nobody can lock
 * themselves out; credentials are one's own or a security
 * administrator's to change.  REQ: ADM-02, ADM-01 */
START_TEST(test_provider_level_rules)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    const guint8 *secret = (const guint8 *)"0123456789abcdefghij";
    AdminPki p;
    CmRng rng;
    GError *error = NULL;

    provider_lab(lab, &p, secret);
    add_admin(lab, "ana", CM_ROLE_READ_ONLY_ANALYST, NULL, NULL, 0);
    ck_assert(!cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_CERTIFICATE, "ana",
                                          lab->now, &error));
    assert_refused(&error);
    /* ana has no certificate: she cannot raise it to a level she fails */
    {
        CmSecurityRole r = CM_ROLE_SECURITY_ADMINISTRATOR;
        CmAdminSpec spec = {.name = "sec", .roles = &r, .n_roles = 1};
        ck_assert(cm_site_rbac_add_admin(lab->site, &spec, CM_SITE_BUILTIN_ADMIN, lab->now, NULL));
    }
    ck_assert(!cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_CERTIFICATE, "sec",
                                          lab->now, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "could not sign in"));
    assert_refused(&error);
    ck_assert_int_eq(cm_site_provider_level(lab->site), CM_PROVIDER_AUTH_WINDOWS);
    /* alice can, and the audit entry names who cannot */
    ck_assert(cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_CERTIFICATE, "alice",
                                         lab->now, NULL));
    {
        sqlite3_stmt *st = cm_store_stmt(
            cm_site_store(lab->site),
            "SELECT detail FROM audit WHERE action = 'provider-auth-level'", NULL);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_ptr_nonnull(strstr((const char *)sqlite3_column_text(st, 0), "ana"));
        sqlite3_reset(st);
    }
    /* ana cannot set alice's password; ana can set her own */
    cm_rng_init_seeded(&rng, 1, 1);
    ck_assert(!cm_site_admin_set_password(lab->site, "alice", "hijacked!", &rng, "ana", lab->now,
                                          &error));
    assert_refused(&error);
    ck_assert(cm_site_admin_set_password(lab->site, "ana", "my own password", &rng, "ana",
                                         lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(!cm_site_admin_set_password(lab->site, "ana", "short", &rng, "ana", lab->now,
                                          &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    ck_assert(!cm_site_admin_enroll_totp(lab->site, "alice", secret, 8, "alice", lab->now,
                                         &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    /* the password is stored hashed, the secret sealed */
    {
        sqlite3_stmt *st = cm_store_stmt(cm_site_store(lab->site),
                                         "SELECT password FROM admins WHERE name = 'alice'", NULL);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert(g_str_has_prefix((const char *)sqlite3_column_text(st, 0), "pbkdf2-sha256$"));
        ck_assert_ptr_null(strstr((const char *)sqlite3_column_text(st, 0), "correct"));
        sqlite3_reset(st);
    }
    admin_pki_free(&p);
}
END_TEST

/* The built-in administrator gets a certificate identity, then signs in at
 * the certificate level and raises the level itself; others cannot change
 * its identity.  REQ: ADM-02, ADM-01 */
START_TEST(test_builtin_identity)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    const guint8 *secret = (const guint8 *)"0123456789abcdefghij";
    g_autofree char *thumb = NULL;
    AdminPki p;
    CmProviderAuth got;
    GError *error = NULL;

    provider_lab(lab, &p, secret);
    add_admin(lab, "ana", CM_ROLE_READ_ONLY_ANALYST, NULL, NULL, 0);
    thumb = cm_cert_thumbprint_hex(p.alice_cert);
    ck_assert(!cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_CERTIFICATE,
                                          CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    assert_refused(&error);
    ck_assert(!cm_site_admin_set_identity(lab->site, CM_SITE_BUILTIN_ADMIN, NULL, thumb, "ana",
                                          lab->now, &error));
    assert_refused(&error);
    ck_assert(!cm_site_admin_set_identity(lab->site, CM_SITE_BUILTIN_ADMIN, NULL, "xyz!",
                                          CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    ck_assert(cm_site_admin_set_identity(lab->site, CM_SITE_BUILTIN_ADMIN, NULL, thumb,
                                         CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_provider_set_level(lab->site, CM_PROVIDER_AUTH_CERTIFICATE,
                                         CM_SITE_BUILTIN_ADMIN, lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(login(lab, &(CmProviderLogin){.admin = CM_SITE_BUILTIN_ADMIN, .cert = p.alice_cert},
                    lab->now, &got));
    ck_assert_int_eq(got, CM_PROVIDER_AUTH_CERTIFICATE);
    /* cleared again, it cannot sign in */
    ck_assert(cm_site_admin_set_identity(lab->site, CM_SITE_BUILTIN_ADMIN, NULL, "",
                                         CM_SITE_BUILTIN_ADMIN, lab->now, NULL));
    ck_assert(!login(lab, &(CmProviderLogin){.admin = CM_SITE_BUILTIN_ADMIN, .cert = p.alice_cert},
                     lab->now, NULL));
    ck_assert_int_eq(audit_count(lab, CM_SITE_BUILTIN_ADMIN, "set-identity"), 2);
    admin_pki_free(&p);
}
END_TEST

/* ------------------------------------------------------------ wipe */

/* A wipe's acknowledgment says the message was sent (or that Exchange
 * received it), never that the device wiped; a device heard from afterwards
 * shows it did not.  Wiping needs the role and the client in the
 * administrator's collections.  REQ: DATA-03, ADM-01 */
START_TEST(test_wipe_acknowledgment)
{
    CmSiteSettings s = approve_all();
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestClient) c = test_client_new(330, "");
    CmWipeStatus st;
    GError *error = NULL;
    gint64 id, ex;

    register_approved(lab, c);
    add_admin(lab, "ana", CM_ROLE_READ_ONLY_ANALYST, NULL, NULL, 0);
    add_admin(lab, "otto", CM_ROLE_OPERATIONS_ADMINISTRATOR, NULL, NULL, 0);
    ck_assert_int_eq(cm_site_admin_wipe(lab->site, c->smsid, CM_WIPE_DIRECT, "ana", lab->now,
                                        &error),
                     -1);
    assert_refused(&error);
    id = cm_site_admin_wipe(lab->site, c->smsid, CM_WIPE_DIRECT, "otto", lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_int_gt(id, 0);
    ck_assert(cm_site_wipe_status(lab->site, id, &st, &error));
    ck_assert_int_eq(st.state, CM_WIPE_QUEUED);
    ck_assert(!st.device_confirmed);
    ck_assert(cm_site_wipe_acknowledge(lab->site, id, lab->now, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_wipe_status(lab->site, id, &st, NULL));
    ck_assert_int_eq(st.state, CM_WIPE_ACKNOWLEDGED);
    ck_assert(!st.device_confirmed); /* acknowledged is not wiped */
    ck_assert_ptr_nonnull(strstr(st.meaning, "sent"));
    ck_assert_ptr_nonnull(strstr(st.meaning, "may not have acted"));
    ck_assert(!st.seen_after_ack);
    ck_assert(!cm_site_wipe_acknowledge(lab->site, id, lab->now, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_STATE));
    g_clear_error(&error);
    /* the "wiped" device reports inventory a minute later */
    lab->now += CM_USEC_PER_MIN;
    send_inventory(lab, c, "os", "still here");
    ck_assert(cm_site_wipe_status(lab->site, id, &st, NULL));
    ck_assert(st.seen_after_ack);
    ck_assert(!st.device_confirmed);
    /* through Exchange: the acknowledgment is Exchange's receipt */
    ex = cm_site_admin_wipe(lab->site, c->smsid, CM_WIPE_EXCHANGE, "otto", lab->now, NULL);
    ck_assert(cm_site_wipe_acknowledge(lab->site, ex, lab->now, NULL));
    ck_assert(cm_site_wipe_status(lab->site, ex, &st, NULL));
    ck_assert_ptr_nonnull(strstr(st.meaning, "Exchange received"));
    ck_assert(!st.device_confirmed);
    ck_assert_int_eq(audit_count(lab, "otto", "wipe"), 2);
    ck_assert(!cm_site_wipe_status(lab->site, 999, &st, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND));
    g_clear_error(&error);
}
END_TEST

static Suite *
admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("rbac");

    tcase_add_test(tc, test_role_permissions);
    tcase_add_test(tc, test_analyst_deploy_refused);
    tcase_add_test(tc, test_high_roles);
    tcase_add_test(tc, test_limiting_collections);
    tcase_add_test(tc, test_security_scopes);
    tcase_add_test(tc, test_enforcement);
    tcase_add_test(tc, test_rbac_persists);
    suite_add_tcase(s, tc);
    tc = tcase_create("audit");
    tcase_add_test(tc, test_audit_verify_ok);
    tcase_add_test(tc, test_audit_altered);
    tcase_add_test(tc, test_audit_deleted);
    tcase_add_test(tc, test_audit_truncated);
    tcase_add_test(tc, test_audit_inserted);
    tcase_add_test(tc, test_audit_external_head);
    suite_add_tcase(s, tc);
    tc = tcase_create("provider");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_totp_rfc6238);
    tcase_add_test(tc, test_provider_levels);
    tcase_add_test(tc, test_provider_level_rules);
    tcase_add_test(tc, test_builtin_identity);
    suite_add_tcase(s, tc);
    tc = tcase_create("wipe");
    tcase_add_test(tc, test_wipe_acknowledgment);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(admin_suite());
}
