/* test-hierarchy.c - a hierarchy of sites (site/hierarchy.c): child sites
 * and forest trusts, the trusted root key of the top-level site, intersite
 * replication, site systems in untrusted forests, publishing to forests. */
#include <string.h>

#include <sqlite3.h>

#include "cmsim.h"
#include "roles.h"

#define ADMIN CM_SITE_BUILTIN_ADMIN

static const guint8 master_key[32] = {9, 9, 9};

static CmSite *
site_new_with(const char *code, const char *forest, gboolean top, const CmSiteSettings *settings)
{
    CmSiteConfig config = {.site_code = code, .db_path = ":memory:", .db_mode = CM_STORE_MEMORY,
                           .top_level = top, .forest = forest, .master_key = master_key,
                           .settings = settings};
    GError *error = NULL;
    CmSite *site = cm_site_open(&config, CM_TEST_NOW, &error);

    cm_assert_no_error(error);
    return site;
}

static CmSite *
site_new(const char *code, const char *forest, gboolean top)
{
    return site_new_with(code, forest, top, NULL);
}

static void
forests(CmSite *site, const char *other, CmForestTrust trust)
{
    ck_assert(cm_site_admin_add_forest(site, other, NULL, ADMIN, CM_TEST_NOW, NULL));
    ck_assert(cm_site_admin_set_trust(site, "corp.example", other, trust, ADMIN, CM_TEST_NOW,
                                      NULL));
}

/* Joins child below parent; asserts it works. */
static void
join(CmSite *parent, CmSite *child, CmSiteKind kind)
{
    GError *error = NULL;
    g_autoptr(json_t) req = cm_site_hierarchy_join_request(child, kind, "server.example", &error);
    g_autoptr(json_t) grant = NULL;

    cm_assert_no_error(error);
    grant = cm_site_hierarchy_add_child(parent, req, "CORP\\siteinstall", ADMIN, CM_TEST_NOW,
                                        &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_hierarchy_join(child, grant, CM_TEST_NOW, &error));
    cm_assert_no_error(error);
}

static void
assert_refused(GError **error)
{
    ck_assert_msg(*error != NULL, "expected a refusal");
    ck_assert_msg(g_error_matches(*error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED), "got %d: %s",
                  (*error)->code, (*error)->message);
    g_clear_error(error);
}

/* One batch from a to b; returns the items b applied. */
static guint
pump(CmSite *a, CmSite *b, CmTime now)
{
    GError *error = NULL;
    g_autoptr(GBytes) batch = cm_site_repl_batch(a, cm_site_code(b), 1000, now, &error);
    CmReplApplied r;

    cm_assert_no_error(error);
    ck_assert(cm_site_repl_apply(b, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch), now,
                                 &r, &error));
    cm_assert_no_error(error);
    return r.applied;
}

/* Both ways until quiet (the second leg carries the acknowledgment). */
static void
sync_link(CmSite *a, CmSite *b, CmTime now)
{
    for (int i = 0; i < 4; i++)
        if (pump(a, b, now) + pump(b, a, now) == 0)
            break;
}

static int
audit_count(CmSite *site, const char *action)
{
    sqlite3_stmt *st = cm_store_stmt(cm_site_store(site),
                                     "SELECT count(*) FROM audit WHERE action = ?", NULL);
    int n;

    sqlite3_bind_text(st, 1, action, -1, SQLITE_TRANSIENT);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return n;
}

/* ------------------------------------------------------------ joining */

/* A child site in a remote forest only with a two-way forest trust; the
 * refusal is audited.  REQ: NET-05 */
START_TEST(test_child_forest_trust)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) p2 = site_new("P02", "partner.example", FALSE);
    g_autoptr(CmSite) p3 = site_new("P03", "fabrikam.example", FALSE);
    g_autoptr(json_t) req2 = cm_site_hierarchy_join_request(p2, CM_SITE_KIND_PRIMARY, "ps2", NULL);
    g_autoptr(json_t) req3 = cm_site_hierarchy_join_request(p3, CM_SITE_KIND_PRIMARY, "ps3", NULL);
    CmHierarchyInfo info;
    GError *error = NULL;

    join(cas, p1, CM_SITE_KIND_PRIMARY); /* same forest */
    ck_assert(cm_site_hierarchy_info(cas, &info, NULL));
    ck_assert_int_eq(info.kind, CM_SITE_KIND_CENTRAL);
    ck_assert(cm_site_hierarchy_info(p1, &info, NULL));
    ck_assert(info.joined);
    ck_assert_str_eq(info.parent, "CAS");
    ck_assert_str_eq(info.top, "CAS");
    /* partner.example: unknown, then one-way, then two-way */
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, req2, "CORP\\siteinstall", ADMIN,
                                                   CM_TEST_NOW, &error));
    assert_refused(&error);
    forests(cas, "partner.example", CM_TRUST_ONE_WAY);
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, req2, "CORP\\siteinstall", ADMIN,
                                                   CM_TEST_NOW, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "two-way forest trust"));
    assert_refused(&error);
    ck_assert_int_eq(audit_count(cas, "refused:add-child-site"), 2);
    ck_assert(cm_site_admin_set_trust(cas, "corp.example", "partner.example", CM_TRUST_TWO_WAY,
                                      ADMIN, CM_TEST_NOW, NULL));
    {
        g_autoptr(json_t) grant = cm_site_hierarchy_add_child(cas, req2, "CORP\\siteinstall",
                                                              ADMIN, CM_TEST_NOW, &error);
        cm_assert_no_error(error);
        ck_assert(cm_site_hierarchy_join(p2, grant, CM_TEST_NOW, &error));
        cm_assert_no_error(error);
    }
    /* a trust set to none afterwards: no new child from there */
    forests(cas, "fabrikam.example", CM_TRUST_NONE);
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, req3, "CORP\\siteinstall", ADMIN,
                                                   CM_TEST_NOW, &error));
    assert_refused(&error);
    ck_assert_int_eq(audit_count(cas, "add-child-site"), 2);
}
END_TEST

/* A secondary in a remote forest below its primary, the same rule.
 * REQ: NET-05 */
START_TEST(test_secondary_forest_trust)
{
    g_autoptr(CmSite) ps = site_new("PS1", "corp.example", TRUE); /* standalone primary */
    g_autoptr(CmSite) s1 = site_new("S01", "branch.example", FALSE);
    g_autoptr(json_t) req = cm_site_hierarchy_join_request(s1, CM_SITE_KIND_SECONDARY, "ss1",
                                                           NULL);
    GError *error = NULL;

    forests(ps, "branch.example", CM_TRUST_NONE);
    ck_assert_ptr_null(cm_site_hierarchy_add_child(ps, req, "CORP\\siteinstall", ADMIN,
                                                   CM_TEST_NOW, &error));
    assert_refused(&error);
    ck_assert(cm_site_admin_set_trust(ps, "corp.example", "branch.example", CM_TRUST_TWO_WAY,
                                      ADMIN, CM_TEST_NOW, NULL));
    join(ps, s1, CM_SITE_KIND_SECONDARY);
}
END_TEST

/* Primaries below the central site, secondaries below primaries, codes
 * unique, a top-level site joins nobody, only hierarchy roles add sites,
 * a malformed request changes nothing.  REQ: NET-05, ADM-01 */
START_TEST(test_kind_rules)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) p2 = site_new("P02", "corp.example", FALSE);
    g_autoptr(CmSite) s1 = site_new("S01", "corp.example", FALSE);
    g_autoptr(CmSite) dup = site_new("P01", "corp.example", FALSE);
    g_autoptr(json_t) sreq = cm_site_hierarchy_join_request(s1, CM_SITE_KIND_SECONDARY, "s", NULL);
    g_autoptr(json_t) preq = cm_site_hierarchy_join_request(p2, CM_SITE_KIND_PRIMARY, "p", NULL);
    g_autoptr(json_t) dreq = cm_site_hierarchy_join_request(dup, CM_SITE_KIND_PRIMARY, "d", NULL);
    CmSecurityRole analyst = CM_ROLE_READ_ONLY_ANALYST;
    CmAdminSpec spec = {.name = "ana", .roles = &analyst, .n_roles = 1};
    GError *error = NULL;

    ck_assert_ptr_null(cm_site_hierarchy_join_request(cas, CM_SITE_KIND_PRIMARY, "x", &error));
    assert_refused(&error);
    join(cas, p1, CM_SITE_KIND_PRIMARY);
    /* a secondary below the central site */
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, sreq, "acct", ADMIN, CM_TEST_NOW, &error));
    assert_refused(&error);
    /* a primary below a child primary */
    ck_assert_ptr_null(cm_site_hierarchy_add_child(p1, preq, "acct", ADMIN, CM_TEST_NOW, &error));
    assert_refused(&error);
    /* the same code twice */
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, dreq, "acct", ADMIN, CM_TEST_NOW, &error));
    assert_refused(&error);
    /* an analyst adds no site */
    ck_assert(cm_site_rbac_add_admin(cas, &spec, ADMIN, CM_TEST_NOW, NULL));
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, preq, "acct", "ana", CM_TEST_NOW, &error));
    assert_refused(&error);
    /* no installation account, a bad request */
    ck_assert_ptr_null(cm_site_hierarchy_add_child(cas, preq, "", ADMIN, CM_TEST_NOW, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    {
        g_autoptr(json_t) bad = json_deep_copy(preq);
        json_object_set_new(bad, "exchange_key", json_string("00zz"));
        ck_assert_ptr_null(
            cm_site_hierarchy_add_child(cas, bad, "acct", ADMIN, CM_TEST_NOW, &error));
        ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
        g_clear_error(&error);
        json_object_set_new(bad, "kind", json_string("central"));
        ck_assert_ptr_null(
            cm_site_hierarchy_add_child(cas, bad, "acct", ADMIN, CM_TEST_NOW, &error));
        g_clear_error(&error);
    }
    /* the secondary goes below the primary */
    join(p1, s1, CM_SITE_KIND_SECONDARY);
    /* a grant for another site is refused */
    {
        g_autoptr(json_t) grant =
            cm_site_hierarchy_add_child(cas, preq, "acct", ADMIN, CM_TEST_NOW, &error);
        cm_assert_no_error(error);
        ck_assert(!cm_site_hierarchy_join(s1, grant, CM_TEST_NOW, &error));
        assert_refused(&error);
    }
}
END_TEST

/* --------------------------------------------------------------- TRK */

/* Installs an MP at child with a certificate from the top-level site. */
static CmCert *
child_mp_info(CmSite *top, CmSite *child, const char *name, CmMpInfo *info_out)
{
    GError *error = NULL;
    g_autoptr(CmKey) key = cm_key_generate(CM_KEY_EC_P256, &error);
    g_autoptr(json_t) req = cm_site_hierarchy_mp_request(child, name, key, &error);
    g_autoptr(json_t) ans = NULL;
    g_autoptr(CmCert) tls = NULL;
    CmCert *cert = NULL;
    CmMpInfo info;

    cm_assert_no_error(error);
    ans = cm_site_hierarchy_sign_mp(top, req, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_hierarchy_add_mp(child, ans, key, FALSE, CM_TEST_NOW, &info, &cert, &tls,
                                       &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(info.name, name);
    if (info_out != NULL)
        *info_out = info;
    return cert;
}

static CmCert *
child_mp(CmSite *top, CmSite *child, const char *name, CmKey **key_out)
{
    g_assert(key_out == NULL);
    return child_mp_info(top, child, name, NULL);
}

/* The top-level site's exchange key is the trusted root key of every site:
 * MPs of a child primary and of a secondary below it are signed with it,
 * their siteinfo carries it, and a client holding it accepts their MPs
 * (the check the agent makes).  REQ: TRUST-02, TRUST-03 */
START_TEST(test_hierarchy_trk)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) s1 = site_new("S01", "corp.example", FALSE);
    g_autofree char *trk_hex = cm_site_export_trk(cas);
    g_autoptr(CmKey) trk = cm_key_public_from_hex(trk_hex, NULL);
    g_autofree char *p1_hex = cm_key_public_hex(cm_site_trk(p1));
    g_autoptr(CmKey) p1_own = cm_key_public_from_hex(p1_hex, NULL);
    g_autoptr(CmCert) p1_mp = NULL, s1_mp = NULL;
    g_autoptr(CmKey) k = cm_key_generate(CM_KEY_EC_P256, NULL);
    g_autoptr(json_t) sreq = NULL;
    GError *error = NULL;

    join(cas, p1, CM_SITE_KIND_PRIMARY);
    join(p1, s1, CM_SITE_KIND_SECONDARY);
    /* children do not sign their own MP certificates */
    ck_assert(!cm_site_add_mp(p1, "mp1.corp.example", FALSE, CM_TEST_NOW, NULL, NULL, NULL, NULL,
                              &error));
    assert_refused(&error);
    p1_mp = child_mp(cas, p1, "mp1.p01.corp.example", NULL);
    /* the secondary is unknown at the top until P01's data replicates */
    sreq = cm_site_hierarchy_mp_request(s1, "mp1.s01.corp.example", k, NULL);
    ck_assert_ptr_null(cm_site_hierarchy_sign_mp(cas, sreq, CM_TEST_NOW, &error));
    assert_refused(&error);
    ck_assert_ptr_null(cm_site_hierarchy_sign_mp(p1, sreq, CM_TEST_NOW, &error));
    assert_refused(&error); /* P01 has no TRK private key */
    sync_link(p1, cas, CM_TEST_NOW);
    s1_mp = child_mp(cas, s1, "mp1.s01.corp.example", NULL);
    /* a client holding the TRK accepts both; the child's own key signs neither */
    ck_assert(cm_cert_check_signed_by(p1_mp, trk, CM_TEST_NOW, NULL));
    ck_assert(cm_cert_check_signed_by(s1_mp, trk, CM_TEST_NOW, NULL));
    ck_assert(!cm_cert_check_signed_by(p1_mp, p1_own, CM_TEST_NOW, NULL));
    /* what the children publish is the top-level key */
    {
        g_autofree char *p1_trk = cm_site_export_trk(p1), *s1_trk = cm_site_export_trk(s1);
        g_autoptr(json_t) info = cm_site_siteinfo_json(s1);
        ck_assert_str_eq(p1_trk, trk_hex);
        ck_assert_str_eq(s1_trk, trk_hex);
        ck_assert_str_eq(json_string_value(json_object_get(info, "trk")), trk_hex);
    }
    {
        g_autoptr(GArray) mps = cm_site_mps(s1);
        ck_assert_uint_eq(mps->len, 1);
    }
}
END_TEST

static gboolean
lab_deliver(void *ctx, const CmAgentSend *send, CmRequest *req, CmResponse *resp, CmTime now)
{
    TestLab *lab = ctx;

    if (g_ascii_strcasecmp(send->mp, lab->mp_info[0].name) != 0)
        return FALSE;
    lab->now = now;
    test_lab_deliver(lab, 0, req, resp);
    return TRUE;
}

static CmAgent *
secondary_agent(TestLab *lab, const char *trk_hex, guint64 seed, CmTime *now)
{
    CmAgentConfig c;
    CmRng rng;
    GError *error = NULL;
    CmAgent *agent;

    cm_agent_config_default(&c);
    c.name = "BR001";
    c.smssitecode = "S01";
    c.smspublicrootkey = trk_hex;
    c.mp = lab->mp_info[0].name;
    cm_rng_init_seeded(&rng, seed, 7);
    agent = cm_agent_new(&c, &rng, *now, &error);
    cm_assert_no_error(error);
    cm_sim_run_agent(agent, now, *now + CM_USEC_PER_HOUR, 20000, lab_deliver, lab);
    return agent;
}

/* The real agent, pre-provisioned with the central site's TRK, registers
 * through a secondary site's MP and goes active; one given the secondary's
 * own exchange key as its TRK refuses that MP.
 * REQ: TRUST-02, TRUST-03, TRUST-05 */
START_TEST(test_client_of_secondary)
{
    CmSiteSettings s;
    g_autoptr(CmSite) cas = NULL;
    g_autoptr(CmSite) p1 = NULL;
    g_autofree char *cas_trk = NULL, *own = NULL;
    g_autoptr(json_t) info = NULL, list = NULL;
    g_autoptr(CmAgent) good = NULL, wrong = NULL;
    TestLab *lab = g_new0(TestLab, 1);
    CmTime now = CM_TEST_NOW;
    GError *error = NULL;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    s.communication = CM_COMM_EHTTP;
    cas = site_new_with("CAS", "corp.example", TRUE, &s);
    p1 = site_new_with("P01", "corp.example", FALSE, &s);
    lab->site = site_new_with("S01", "corp.example", FALSE, &s);
    lab->now = now;
    join(cas, p1, CM_SITE_KIND_PRIMARY);
    join(p1, lab->site, CM_SITE_KIND_SECONDARY);
    sync_link(p1, cas, now);
    lab->mp_certs[0] = child_mp_info(cas, lab->site, "mp1.s01.corp.example", &lab->mp_info[0]);
    info = cm_site_siteinfo_json(lab->site);
    list = cm_site_mplist_json(lab->site);
    lab->mps[0] = cm_mp_new(&(CmMpConfig){.name = lab->mp_info[0].name,
                                          .role_id = lab->mp_info[0].role_id,
                                          .mp_cert = lab->mp_certs[0],
                                          .siteinfo = info,
                                          .mplist = list},
                            &error);
    cm_assert_no_error(error);
    lab->n_mps = 1;
    cas_trk = cm_site_export_trk(cas);
    good = secondary_agent(lab, cas_trk, 1, &now);
    ck_assert_str_eq(cm_agent_state_name(cm_agent_status(good)->state), "active");
    own = cm_key_public_hex(cm_site_trk(lab->site));
    wrong = secondary_agent(lab, own, 2, &now);
    ck_assert_int_ne(cm_agent_status(wrong)->state, CM_AGENT_ACTIVE);
    ck_assert_int_eq(cm_site_client_count(lab->site, CM_CLIENT_APPROVED), 1);
    test_lab_free(lab);
}
END_TEST

/* An MP certificate not signed with the hierarchy's TRK, or for another
 * key or site, is not installed.  REQ: TRUST-02 */
START_TEST(test_child_mp_forged)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) rogue = site_new("XYZ", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmKey) key = cm_key_generate(CM_KEY_EC_P256, NULL);
    g_autoptr(CmKey) other = cm_key_generate(CM_KEY_EC_P256, NULL);
    g_autoptr(json_t) req = NULL, ans = NULL, forged = NULL;
    GError *error = NULL;

    join(cas, p1, CM_SITE_KIND_PRIMARY);
    req = cm_site_hierarchy_mp_request(p1, "mp1.corp.example", key, NULL);
    /* another top-level site signs for a site code it knows as its own */
    json_object_set_new(req, "site_code", json_string("XYZ"));
    forged = cm_site_hierarchy_sign_mp(rogue, req, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    json_object_set_new(forged, "site_code", json_string("P01"));
    ck_assert(!cm_site_hierarchy_add_mp(p1, forged, key, FALSE, CM_TEST_NOW, NULL, NULL, NULL,
                                        &error));
    assert_refused(&error);
    json_object_set_new(req, "site_code", json_string("P01"));
    ans = cm_site_hierarchy_sign_mp(cas, req, CM_TEST_NOW, &error);
    cm_assert_no_error(error);
    ck_assert(!cm_site_hierarchy_add_mp(p1, ans, other, FALSE, CM_TEST_NOW, NULL, NULL, NULL,
                                        &error));
    assert_refused(&error);
    {
        g_autoptr(GArray) mps = cm_site_mps(p1);
        ck_assert_uint_eq(mps->len, 0);
    }
    ck_assert(cm_site_hierarchy_add_mp(p1, ans, key, FALSE, CM_TEST_NOW, NULL, NULL, NULL,
                                       &error));
    cm_assert_no_error(error);
}
END_TEST

/* -------------------------------------------------------- replication */

/* A site lists its replication links, parent and children, for the
 * daemon's status; a site outside any hierarchy has none.  REQ: NET-05 */
START_TEST(test_repl_peers)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) p2 = site_new("P02", "corp.example", FALSE);
    g_autoptr(CmSite) s1 = site_new("S01", "corp.example", FALSE);
    g_autoptr(GPtrArray) none = NULL, top = NULL, mid = NULL;
    GError *error = NULL;

    none = cm_site_repl_peers(cas, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(none->len, 0);
    join(cas, p2, CM_SITE_KIND_PRIMARY);
    join(cas, p1, CM_SITE_KIND_PRIMARY);
    join(p1, s1, CM_SITE_KIND_SECONDARY);
    top = cm_site_repl_peers(cas, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(top->len, 2);
    ck_assert_str_eq(g_ptr_array_index(top, 0), "P01");
    ck_assert_str_eq(g_ptr_array_index(top, 1), "P02");
    mid = cm_site_repl_peers(p1, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(mid->len, 2);
    ck_assert_str_eq(g_ptr_array_index(mid, 0), "CAS");
    ck_assert_str_eq(g_ptr_array_index(mid, 1), "S01");
}
END_TEST

/* Global data (administrators, the provider level) flows down the tree and
 * site data up; sequence numbers show the backlog and its age; a resent
 * batch changes nothing.  REQ: NET-05, ADM-01, ADM-02 */
START_TEST(test_replication)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) s1 = site_new("S01", "corp.example", FALSE);
    CmSecurityRole analyst = CM_ROLE_READ_ONLY_ANALYST;
    CmAdminSpec spec = {.name = "ana", .roles = &analyst, .n_roles = 1};
    CmTime t = CM_TEST_NOW;
    CmReplLinkStatus st;
    g_autoptr(GBytes) batch = NULL;
    CmReplApplied r;
    GError *error = NULL;

    /* ana exists before P01 joins: the snapshot carries her */
    ck_assert(cm_site_rbac_add_admin(cas, &spec, ADMIN, t, NULL));
    join(cas, p1, CM_SITE_KIND_PRIMARY);
    join(p1, s1, CM_SITE_KIND_SECONDARY);
    ck_assert(!cm_site_rbac_is_admin(p1, "ana"));
    ck_assert(cm_site_repl_link_status(cas, "P01", &st, NULL));
    ck_assert_int_eq(st.role, CM_LINK_CHILD);
    ck_assert_int_ge(st.backlog, 2); /* ana, and P01's own site record */
    ck_assert_int_eq(st.oldest_unacked, t);
    /* a later change queues behind */
    t += CM_USEC_PER_MIN;
    /* the built-in administrator has no certificate: it cannot raise the level */
    ck_assert(!cm_site_provider_set_level(cas, CM_PROVIDER_AUTH_CERTIFICATE, ADMIN, t, &error));
    assert_refused(&error);
    {
        CmSecurityRole full = CM_ROLE_FULL_ADMINISTRATOR;
        CmAdminSpec carol = {.name = "carol", .roles = &full, .n_roles = 1,
                             .cert_thumbprint = "AB"};
        ck_assert(cm_site_rbac_add_admin(cas, &carol, ADMIN, t, NULL));
        ck_assert(cm_site_provider_set_level(cas, CM_PROVIDER_AUTH_CERTIFICATE, "carol", t,
                                             &error));
        cm_assert_no_error(error);
    }
    ck_assert(cm_site_repl_link_status(cas, "P01", &st, NULL));
    ck_assert_int_ge(st.backlog, 4);
    /* the child's provider level is the hierarchy's, not settable there */
    ck_assert(!cm_site_provider_set_level(p1, CM_PROVIDER_AUTH_WINDOWS, ADMIN, t, &error));
    assert_refused(&error);
    ck_assert_int_eq(cm_site_provider_level(p1), CM_PROVIDER_AUTH_WINDOWS); /* lag */
    /* one batch down */
    t += CM_USEC_PER_MIN;
    batch = cm_site_repl_batch(cas, "P01", 1000, t, &error);
    cm_assert_no_error(error);
    ck_assert(cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch), t,
                                 &r, &error));
    cm_assert_no_error(error);
    ck_assert_uint_eq(r.applied, st.backlog);
    ck_assert(cm_site_rbac_is_admin(p1, "ana"));
    ck_assert(cm_site_rbac_is_admin(p1, "carol"));
    ck_assert_int_eq(cm_site_provider_level(p1), CM_PROVIDER_AUTH_CERTIFICATE);
    /* the same batch again (a resend) applies nothing */
    ck_assert(cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch), t,
                                 &r, &error));
    ck_assert_uint_eq(r.applied, 0);
    ck_assert_uint_eq(r.skipped, st.backlog);
    /* the parent still waits for the acknowledgment, then prunes */
    ck_assert(cm_site_repl_link_status(cas, "P01", &st, NULL));
    ck_assert_int_gt(st.backlog, 0);
    pump(p1, cas, t);
    ck_assert(cm_site_repl_link_status(cas, "P01", &st, NULL));
    ck_assert_int_eq(st.backlog, 0);
    ck_assert_int_eq(st.oldest_unacked, 0);
    /* P01 passes it on to S01 */
    ck_assert(!cm_site_rbac_is_admin(s1, "carol"));
    sync_link(p1, s1, t);
    ck_assert(cm_site_rbac_is_admin(s1, "carol"));
    ck_assert_int_eq(cm_site_provider_level(s1), CM_PROVIDER_AUTH_CERTIFICATE);
    /* an administrator removed at the top goes everywhere */
    ck_assert(cm_site_rbac_remove_admin(cas, "ana", ADMIN, t, NULL));
    sync_link(cas, p1, t);
    sync_link(p1, s1, t);
    ck_assert(!cm_site_rbac_is_admin(s1, "ana"));
    /* site data goes up, two hops */
    {
        g_autoptr(json_t) v = json_pack("{s:i}", "clients", 1234);
        g_autoptr(json_t) got = NULL;
        ck_assert(cm_site_repl_publish(s1, CM_REPL_SITE, CM_REPL_DATABASE, "client-count", "S01",
                                       v, t, NULL));
        sync_link(s1, p1, t);
        sync_link(p1, cas, t);
        got = cm_site_repl_get(cas, "client-count", "S01");
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(json_integer_value(json_object_get(got, "clients")), 1234);
    }
    /* content by file-based transfer goes down */
    {
        g_autoptr(json_t) v = json_pack("{s:s, s:i}", "sha256", "00ff", "size", 10);
        g_autoptr(json_t) got = NULL;
        ck_assert(cm_site_repl_publish(cas, CM_REPL_GLOBAL, CM_REPL_FILE, "content", "PKG001", v,
                                       t, NULL));
        sync_link(cas, p1, t);
        sync_link(p1, s1, t);
        got = cm_site_repl_get(s1, "content", "PKG001");
        ck_assert_ptr_nonnull(got);
    }
    ck_assert_int_ge(audit_count(s1, "replicate"), 2);
    /* reserved kinds go through their own calls */
    ck_assert(!cm_site_repl_publish(cas, CM_REPL_GLOBAL, CM_REPL_DATABASE, "admin", "x",
                                    NULL, t, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
}
END_TEST

/* A site restored from an old backup sees the gap and is told where to
 * resend from; a tampered batch, one for another site and one from a site
 * without a link are refused and change nothing.  REQ: NET-05 */
START_TEST(test_replication_refusals)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) p2 = site_new("P02", "corp.example", FALSE);
    g_autoptr(CmSite) stranger = site_new("ZZZ", "corp.example", TRUE);
    g_autoptr(GBytes) batch = NULL;
    g_autoptr(json_t) v = json_pack("{s:i}", "n", 1);
    CmReplApplied r;
    GError *error = NULL;

    join(cas, p1, CM_SITE_KIND_PRIMARY);
    join(cas, p2, CM_SITE_KIND_PRIMARY);
    sync_link(cas, p1, CM_TEST_NOW);
    ck_assert(cm_site_repl_publish(cas, CM_REPL_GLOBAL, CM_REPL_DATABASE, "setting", "a", v,
                                   CM_TEST_NOW, NULL));
    /* tampered: a changed value no longer verifies */
    batch = cm_site_repl_batch(cas, "P01", 1000, CM_TEST_NOW, &error);
    {
        g_autofree char *text = g_strndup(g_bytes_get_data(batch, NULL), g_bytes_get_size(batch));
        char *p = strstr(text, "\"n\":1");
        ck_assert_ptr_nonnull(p);
        p[4] = '7';
        ck_assert(!cm_site_repl_apply(p1, text, strlen(text), CM_TEST_NOW, &r, &error));
        assert_refused(&error);
        ck_assert_ptr_null(cm_site_repl_get(p1, "setting", "a"));
    }
    /* meant for P02 */
    ck_assert(!cm_site_repl_apply(p2, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                  CM_TEST_NOW, &r, &error));
    assert_refused(&error);
    /* from a site P01 has no link with */
    {
        g_autoptr(GBytes) b = cm_site_repl_batch(stranger, "P01", 10, CM_TEST_NOW, &error);
        ck_assert_ptr_null(b); /* the stranger has no link either */
        ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND));
        g_clear_error(&error);
    }
    /* garbage */
    ck_assert(!cm_site_repl_apply(p1, "{\"v\":1}", 7, CM_TEST_NOW, &r, &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID));
    g_clear_error(&error);
    ck_assert(!cm_site_repl_apply(p1, "\xff\xfe", 2, CM_TEST_NOW, &r, &error));
    g_clear_error(&error);
    /* P01 is restored from a backup taken before it applied anything: */
    ck_assert(cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                 CM_TEST_NOW, &r, NULL));
    pump(p1, cas, CM_TEST_NOW); /* CAS prunes what P01 acknowledged */
    ck_assert(cm_site_repl_publish(cas, CM_REPL_GLOBAL, CM_REPL_DATABASE, "setting", "b", v,
                                   CM_TEST_NOW, NULL));
    ck_assert_int_eq(sqlite3_exec(cm_store_db(cm_site_store(p1)),
                                  "UPDATE repl_links SET last_in = 0", NULL, NULL, NULL),
                     SQLITE_OK);
    g_clear_pointer(&batch, g_bytes_unref);
    batch = cm_site_repl_batch(cas, "P01", 1000, CM_TEST_NOW, NULL);
    ck_assert(!cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                  CM_TEST_NOW, &r, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "gap"));
    ck_assert_ptr_nonnull(strstr(error->message, "resend from 1"));
    assert_refused(&error);
    ck_assert_ptr_null(cm_site_repl_get(p1, "setting", "b"));
}
END_TEST

/* A child cannot send the provider level up, nor a parent site data down,
 * nor a secondary an administrator.  REQ: NET-05, ADM-02, ADM-01 */
START_TEST(test_replication_direction)
{
    g_autoptr(CmSite) cas = site_new("CAS", "corp.example", TRUE);
    g_autoptr(CmSite) p1 = site_new("P01", "corp.example", FALSE);
    g_autoptr(CmSite) s1 = site_new("S01", "corp.example", FALSE);
    g_autoptr(json_t) v = json_pack("{s:i}", "n", 1);
    g_autoptr(GBytes) batch = NULL;
    CmReplApplied r;
    GError *error = NULL;

    join(cas, p1, CM_SITE_KIND_PRIMARY);
    sync_link(cas, p1, CM_TEST_NOW);
    /* site data published at the top stays there: it has no parent */
    ck_assert(cm_site_repl_publish(cas, CM_REPL_SITE, CM_REPL_DATABASE, "x", "y", v, CM_TEST_NOW,
                                   NULL));
    batch = cm_site_repl_batch(cas, "P01", 10, CM_TEST_NOW, NULL);
    ck_assert(cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                 CM_TEST_NOW, &r, &error));
    ck_assert_uint_eq(r.applied, 0);
    /* site data that a parent sends down anyway (by hand) is refused */
    ck_assert_int_eq(
        sqlite3_exec(cm_store_db(cm_site_store(cas)),
                     "INSERT INTO repl_out(peer, seq, channel, kind, key, origin, value, at, scope)"
                     " SELECT 'P01', next_seq, 0, 'x', 'y', 'CAS', '{\"n\":1}', 0, 1"
                     " FROM repl_links WHERE peer = 'P01';"
                     "UPDATE repl_links SET next_seq = next_seq + 1 WHERE peer = 'P01';",
                     NULL, NULL, NULL),
        SQLITE_OK);
    g_clear_pointer(&batch, g_bytes_unref);
    batch = cm_site_repl_batch(cas, "P01", 10, CM_TEST_NOW, NULL);
    ck_assert(!cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                  CM_TEST_NOW, &r, &error));
    assert_refused(&error);
    ck_assert_ptr_null(cm_site_repl_get(p1, "x", "y"));
    /* a child (compromised) queues a provider level for its parent by hand */
    ck_assert_int_eq(
        sqlite3_exec(cm_store_db(cm_site_store(p1)),
                     "INSERT INTO repl_out(peer, seq, channel, kind, key, origin, value, at, scope)"
                     " SELECT 'CAS', next_seq, 0, 'provider-auth', 'level', 'P01',"
                     " '{\"level\":\"windows\"}', 0, 0 FROM repl_links WHERE peer = 'CAS';"
                     "UPDATE repl_links SET next_seq = next_seq + 1 WHERE peer = 'CAS';",
                     NULL, NULL, NULL),
        SQLITE_OK);
    g_clear_pointer(&batch, g_bytes_unref);
    batch = cm_site_repl_batch(p1, "CAS", 10, CM_TEST_NOW, NULL);
    ck_assert(!cm_site_repl_apply(cas, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                  CM_TEST_NOW, &r, &error));
    assert_refused(&error);
    /* a (compromised) secondary sends up a Full Administrator */
    join(p1, s1, CM_SITE_KIND_SECONDARY);
    ck_assert_int_eq(
        sqlite3_exec(cm_store_db(cm_site_store(s1)),
                     "INSERT INTO repl_out(peer, seq, channel, kind, key, origin, value, at, scope)"
                     " SELECT 'P01', next_seq, 0, 'admin', 'eve', 'S01',"
                     " '{\"name\":\"eve\",\"roles\":[\"full\"],\"scopes\":[\"All\"],"
                     "\"collections\":[1]}', 0, 0 FROM repl_links WHERE peer = 'P01';"
                     "UPDATE repl_links SET next_seq = next_seq + 1 WHERE peer = 'P01';",
                     NULL, NULL, NULL),
        SQLITE_OK);
    g_clear_pointer(&batch, g_bytes_unref);
    batch = cm_site_repl_batch(s1, "P01", 10, CM_TEST_NOW, NULL);
    ck_assert(!cm_site_repl_apply(p1, g_bytes_get_data(batch, NULL), g_bytes_get_size(batch),
                                  CM_TEST_NOW, &r, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "no SMS Provider"));
    assert_refused(&error);
    ck_assert(!cm_site_rbac_is_admin(p1, "eve"));
}
END_TEST

/* -------------------------------------------------------- site systems */

/* Site systems in an untrusted forest: an installation account, the site
 * server initiating every data connection, and a connection account for the
 * roles that read the database.  REQ: NET-06 */
START_TEST(test_untrusted_site_systems)
{
    g_autoptr(CmSite) ps = site_new("PS1", "corp.example", TRUE);
    CmSiteSystemSpec spec = {.server = "MP1.DMZ.example", .forest = "dmz.example",
                             .role = CM_SYSTEM_MP};
    CmConnDecision d;
    GError *error = NULL;

    forests(ps, "dmz.example", CM_TRUST_NONE);
    ck_assert(!cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "installation account"));
    assert_refused(&error);
    spec.install_account = "DMZ\\cm-install";
    ck_assert(!cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "initiate"));
    assert_refused(&error);
    spec.site_initiates = TRUE;
    ck_assert(!cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "connection account"));
    assert_refused(&error);
    spec.db_account = "CORP\\mp-db";
    ck_assert(cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    cm_assert_no_error(error);
    /* a DP there needs no connection account */
    spec.role = CM_SYSTEM_DP;
    spec.db_account = NULL;
    spec.server = "dp1.dmz.example";
    ck_assert(cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(audit_count(ps, "refused:add-site-system"), 3);

    /* the untrusted MP never opens a data connection inward */
    ck_assert(cm_site_connection(ps, "mp1.dmz.example", CM_SYSTEM_MP, FALSE, CM_CONN_DATA, &d,
                                 NULL));
    ck_assert(!d.allowed);
    ck_assert_ptr_nonnull(strstr(d.reason, "pulls"));
    /* the site server pulls from it with the installation account */
    ck_assert(cm_site_connection(ps, "mp1.dmz.example", CM_SYSTEM_MP, TRUE, CM_CONN_DATA, &d,
                                 NULL));
    ck_assert(d.allowed);
    ck_assert_str_eq(d.account, "DMZ\\cm-install");
    ck_assert(cm_site_connection(ps, "mp1.dmz.example", CM_SYSTEM_MP, TRUE, CM_CONN_INSTALL, &d,
                                 NULL));
    ck_assert_str_eq(d.account, "DMZ\\cm-install");
    ck_assert(cm_site_connection(ps, "mp1.dmz.example", CM_SYSTEM_MP, FALSE, CM_CONN_INSTALL, &d,
                                 NULL));
    ck_assert(!d.allowed);
    /* it reads the database with the connection account */
    ck_assert(cm_site_connection(ps, "mp1.dmz.example", CM_SYSTEM_MP, FALSE, CM_CONN_DATABASE,
                                 &d, NULL));
    ck_assert(d.allowed);
    ck_assert_str_eq(d.account, "CORP\\mp-db");
    /* the DP does not read the database at all */
    ck_assert(cm_site_connection(ps, "dp1.dmz.example", CM_SYSTEM_DP, FALSE, CM_CONN_DATABASE, &d,
                                 NULL));
    ck_assert(!d.allowed);
    ck_assert(!cm_site_connection(ps, "nope.dmz.example", CM_SYSTEM_DP, TRUE, CM_CONN_DATA, &d,
                                  &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND));
    g_clear_error(&error);
    for (int r = 0; r < CM_SYSTEM__COUNT; r++)
        ck_assert(cm_system_role_needs_db(r) == (r != CM_SYSTEM_DP && r != CM_SYSTEM_SUP));
}
END_TEST

/* In the site's forest or a two-way trusted one, computer accounts do
 * everything and the system may send inward.  REQ: NET-06 */
START_TEST(test_trusted_site_systems)
{
    g_autoptr(CmSite) ps = site_new("PS1", "corp.example", TRUE);
    CmSiteSystemSpec spec = {.server = "mp2.partner.example", .forest = "partner.example",
                             .role = CM_SYSTEM_MP};
    CmConnDecision d;
    GError *error = NULL;

    forests(ps, "partner.example", CM_TRUST_TWO_WAY);
    ck_assert(cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    cm_assert_no_error(error);
    ck_assert(cm_site_connection(ps, "mp2.partner.example", CM_SYSTEM_MP, FALSE, CM_CONN_DATA, &d,
                                 NULL));
    ck_assert(d.allowed);
    ck_assert_ptr_nonnull(strstr(d.account, "mp2.partner.example$"));
    ck_assert(cm_site_connection(ps, "mp2.partner.example", CM_SYSTEM_MP, FALSE,
                                 CM_CONN_DATABASE, &d, NULL));
    ck_assert(d.allowed);
    ck_assert_ptr_nonnull(strstr(d.account, "computer account"));
    ck_assert(cm_site_connection(ps, "mp2.partner.example", CM_SYSTEM_MP, TRUE, CM_CONN_INSTALL,
                                 &d, NULL));
    ck_assert_ptr_nonnull(strstr(d.account, "site server"));
    /* an unknown forest is refused */
    spec.forest = "nowhere.example";
    ck_assert(!cm_site_admin_add_site_system(ps, &spec, ADMIN, CM_TEST_NOW, &error));
    assert_refused(&error);
}
END_TEST

/* ---------------------------------------------------------- publishing */

/* Clients in a forest find the site's MPs (and its TRK) in their directory
 * only when the site publishes there; others fall back.  REQ: NET-07 */
START_TEST(test_publish_to_forest)
{
    g_autoptr(CmSite) ps = site_new("PS1", "corp.example", TRUE);
    g_autoptr(json_t) found = NULL;
    g_autofree char *trk = NULL;
    GError *error = NULL;

    forests(ps, "partner.example", CM_TRUST_NONE);
    ck_assert_ptr_null(cm_site_directory_lookup(ps, "eu.partner.example"));
    ck_assert(cm_site_admin_publish_to_forest(ps, "partner.example", TRUE, ADMIN, CM_TEST_NOW,
                                              &error));
    cm_assert_no_error(error);
    found = cm_site_directory_lookup(ps, "eu.partner.example");
    ck_assert_ptr_nonnull(found);
    trk = cm_site_export_trk(ps);
    ck_assert_str_eq(json_string_value(json_object_get(found, "trk")), trk);
    ck_assert_str_eq(json_string_value(json_object_get(found, "site_code")), "PS1");
    ck_assert_ptr_null(cm_site_directory_lookup(ps, "corp.example")); /* not published there */
    ck_assert_ptr_null(cm_site_directory_lookup(ps, ""));             /* workgroup */
    ck_assert(!cm_site_admin_publish_to_forest(ps, "nowhere.example", TRUE, ADMIN, CM_TEST_NOW,
                                               &error));
    ck_assert(g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND));
    g_clear_error(&error);
    ck_assert(cm_site_admin_publish_to_forest(ps, "partner.example", FALSE, ADMIN, CM_TEST_NOW,
                                              NULL));
    ck_assert_ptr_null(cm_site_directory_lookup(ps, "eu.partner.example"));
    ck_assert_int_eq(audit_count(ps, "publish-to-forest"), 1);
    ck_assert_int_eq(audit_count(ps, "unpublish-from-forest"), 1);
}
END_TEST

static Suite *
hierarchy_suite(void)
{
    Suite *s = suite_create("hierarchy");
    TCase *tc = tcase_create("hierarchy");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_child_forest_trust);
    tcase_add_test(tc, test_secondary_forest_trust);
    tcase_add_test(tc, test_kind_rules);
    tcase_add_test(tc, test_hierarchy_trk);
    tcase_add_test(tc, test_child_mp_forged);
    tcase_add_test(tc, test_client_of_secondary);
    tcase_add_test(tc, test_repl_peers);
    tcase_add_test(tc, test_replication);
    tcase_add_test(tc, test_replication_refusals);
    tcase_add_test(tc, test_replication_direction);
    tcase_add_test(tc, test_untrusted_site_systems);
    tcase_add_test(tc, test_trusted_site_systems);
    tcase_add_test(tc, test_publish_to_forest);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(hierarchy_suite());
}
