/* test-roles.c - role-pair tests: the real client agent, management point
 * and site server, in memory.  The runner carries each request the agent
 * wants to the MP it names, lets the MP forward to its site, and attaches
 * the transport authentication a real transport would have verified. */
#include <string.h>

#include <sqlite3.h>

#include "cmsim.h"
#include "roles.h"

/* ------------------------------------------------------------ runner */

typedef struct {
    TestLab *labs[2];  /* the MP names of both labs must differ */
    gboolean kerberos; /* the client's domain authenticates with Kerberos */
    const char *domain;
    const char *principal; /* the ticket's: the computer account NAME$@REALM */
    /* a compromised MP: flips a byte of every policy it serves */
    gboolean tamper_policies;
} Net;

static gboolean
find_mp(Net *net, const char *name, TestLab **lab, guint *idx)
{
    for (guint l = 0; l < G_N_ELEMENTS(net->labs) && net->labs[l] != NULL; l++)
        for (guint i = 0; i < net->labs[l]->n_mps; i++)
            if (g_ascii_strcasecmp(net->labs[l]->mp_info[i].name, name) == 0) {
                *lab = net->labs[l];
                *idx = i;
                return TRUE;
            }
    return FALSE;
}

static void
tamper(CmResponse *resp)
{
    g_autoptr(json_t) obj = cm_json_parse(g_bytes_get_data(resp->body, NULL),
                                          g_bytes_get_size(resp->body), 1 << 20, NULL);
    g_autoptr(GBytes) policy = cm_json_b64(obj, "policy", 1 << 16, NULL);
    g_autofree guint8 *bytes = g_memdup2(g_bytes_get_data(policy, NULL), g_bytes_get_size(policy));
    g_autofree char *b64 = NULL, *dump = NULL;

    /* "required":true -> "required":fals... any flipped byte will do */
    bytes[g_bytes_get_size(policy) / 2] ^= 0x01;
    b64 = cm_enc_b64(bytes, g_bytes_get_size(policy));
    json_object_set_new(obj, "policy", json_string(b64));
    dump = cm_json_dump(obj);
    g_bytes_unref(resp->body);
    resp->body = g_bytes_new(dump, strlen(dump));
}

static gboolean
net_deliver(void *ctx, const CmAgentSend *send, CmRequest *req, CmResponse *resp, CmTime now)
{
    Net *net = ctx;
    TestLab *lab;
    guint i;

    if (net->kerberos && send->ep == CM_EP_REGISTER) {
        req->peer.kind = CM_AUTH_KERBEROS;
        g_strlcpy(req->peer.domain, net->domain, sizeof req->peer.domain);
        g_strlcpy(req->peer.principal, net->principal ? net->principal : "",
                  sizeof req->peer.principal);
    }
    if (!find_mp(net, send->mp, &lab, &i))
        return FALSE;
    lab->now = now;
    test_lab_deliver(lab, i, req, resp);
    if (net->tamper_policies && send->ep == CM_EP_POLICY_BODY && resp->status == 200)
        tamper(resp);
    return TRUE;
}

/* Runs the agent until it wants no timer before until. */
static void
run_agent(Net *net, CmAgent *agent, CmTime *now, CmTime until)
{
    cm_sim_run_agent(agent, now, until, 20000, net_deliver, net);
}

static CmAgent *
agent_new(const CmAgentConfig *config, guint64 seed, CmTime now)
{
    CmRng rng;
    GError *error = NULL;
    CmAgent *agent;

    cm_rng_init_seeded(&rng, seed, 7);
    agent = cm_agent_new(config, &rng, now, &error);
    cm_assert_no_error(error);
    return agent;
}

static CmSiteSettings
lab_settings(CmApprovalMode approval, gboolean encrypt)
{
    CmSiteSettings s;
    cm_site_settings_default(&s);
    s.approval = approval;
    s.encrypt = encrypt;
    s.communication = CM_COMM_EHTTP;
    return s;
}

/* The key a client's data rows name it by (site/db.c migration 7). */
#define CLIENT_KEY "(SELECT coalesce(first_id, id) FROM clients WHERE smsid = ? AND obsolete = 0)"

static gint64
inventory_rows(TestLab *lab, const char *smsid)
{
    sqlite3_stmt *st =
        cm_store_stmt(cm_site_store(lab->site),
                      "SELECT count(*) FROM inventory WHERE client = " CLIENT_KEY, NULL);
    gint64 n;
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_TRANSIENT);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

/* One count(*) of the site's database for smsid. */
static gint64
site_count(TestLab *lab, const char *sql, const char *smsid)
{
    sqlite3_stmt *st = cm_store_stmt(cm_site_store(lab->site), sql, NULL);
    gint64 n;

    ck_assert_ptr_nonnull(st);
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_TRANSIENT);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

static void
deploy(TestLab *lab, const char *name)
{
    guint8 hash[32];
    CmDeployment dep = {.name = name,
                        .content_id = "KB5000001",
                        .content_hash = hash,
                        .content_size = 1 << 20,
                        .required = TRUE,
                        .max_runtime_s = 3600};
    g_autofree char *id = NULL;

    memset(hash, 0xab, sizeof hash);
    id = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "admin", lab->now, NULL);
    ck_assert_ptr_nonnull(id);
}

/* ------------------------------------------------------------ tests */

/* A domain client with the TRK from directory publishing: locates its MP,
 * checks it against the TRK, registers with Kerberos (approved), verifies
 * the site-signed policy, sends encrypted inventory the site decrypts.
 * REQ: REG-02, TRUST-03, TRUST-08, POL-01, MSG-02, NET-01, NET-07 */
START_TEST(test_lifecycle)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_TRUSTED_DOMAINS, TRUE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 2);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    const char *mps[] = {lab->mp_info[0].name, lab->mp_info[1].name, NULL};
    CmDirectoryInfo dir = {.site_code = "PS1",
                           .trk_hex = trk,
                           .signing_cert = cm_site_signing_cert(lab->site),
                           .mps = mps};
    CmAgentConfig c;
    Net net = {.labs = {lab},
               .kerberos = TRUE,
               .domain = "corp.example",
               .principal = "PC001$@CORP.EXAMPLE"};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;
    const CmAgentStatus *st;

    deploy(lab, "Baseline");
    cm_agent_config_default(&c);
    c.name = "PC001";
    c.domain = "corp.example";
    c.tpm_version = 2;
    c.directory = &dir;
    agent = agent_new(&c, 1, now);
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR / 2);
    st = cm_agent_status(agent);
    ck_assert_str_eq(cm_agent_state_name(st->state), "active");
    ck_assert_int_eq(st->trk_source, CM_SOURCE_DIRECTORY);
    ck_assert_int_eq(st->signcert_source, CM_SOURCE_DIRECTORY);
    ck_assert_int_eq(st->transport, CM_TRANSPORT_EHTTP);
    ck_assert_int_eq(st->ksp, CM_KSP_TPM2);
    ck_assert_int_eq(st->policies_accepted, 1);
    ck_assert_int_eq(st->policies_refused, 0);
    ck_assert_int_ge(st->inventories_sent, 1);
    ck_assert_int_gt(inventory_rows(lab, st->smsid), 0);
    ck_assert_int_ge(cm_site_counters(lab->site)->decryptions, 1);
    {
        CmClientInfo info;
        ck_assert(cm_site_client(lab->site, st->smsid, &info, NULL));
        ck_assert_int_eq(info.state, CM_CLIENT_APPROVED);
        ck_assert_int_eq(info.registered_by, CM_AUTH_KERBEROS);
        ck_assert_int_eq(info.ksp, CM_KSP_TPM2);
    }
}
END_TEST

/* Manual approval: pending until an administrator approves, then active on
 * the next poll.  REQ: REG-01 */
START_TEST(test_manual_approval)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_MANUAL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    Net net = {.labs = {lab}};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;

    cm_agent_config_default(&c);
    c.name = "WG01"; /* a workgroup computer, assigned MP, key by property (NET-04) */
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.mp = lab->mp_info[0].name;
    agent = agent_new(&c, 2, now);
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR);
    ck_assert_int_eq(cm_agent_status(agent)->state, CM_AGENT_PENDING);
    ck_assert_int_eq(cm_agent_status(agent)->trk_source, CM_SOURCE_PROPERTY);
    ck_assert(cm_site_admin_approve(lab->site, cm_agent_status(agent)->smsid, "admin", now, NULL));
    run_agent(&net, agent, &now, now + 6 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(cm_agent_status(agent)->state, CM_AGENT_ACTIVE);
}
END_TEST

/* Blocked while active: the next cycle is refused and the agent stops.
 * REQ: REG-03 */
START_TEST(test_blocked_agent)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    Net net = {.labs = {lab}};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;
    gint64 refused_before;

    cm_agent_config_default(&c);
    c.name = "PC002";
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.mp = lab->mp_info[0].name;
    agent = agent_new(&c, 3, now);
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR / 2);
    ck_assert_int_eq(cm_agent_status(agent)->state, CM_AGENT_ACTIVE);
    ck_assert(cm_site_admin_block(lab->site, cm_agent_status(agent)->smsid, "admin", now, NULL));
    refused_before = cm_site_counters(lab->site)->refusals[CM_REASON_BLOCKED];
    run_agent(&net, agent, &now, now + 3 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(cm_agent_status(agent)->state, CM_AGENT_BLOCKED);
    ck_assert_int_gt(cm_site_counters(lab->site)->refusals[CM_REASON_BLOCKED], refused_before);
}
END_TEST

/* A rogue MP: refused by a client that holds the TRK, trusted by one that
 * takes the TRK on first use.  REQ: TRUST-03, TRUST-04, REG-09 */
START_TEST(test_rogue_mp)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autoptr(TestLab) rogue = test_lab_new(&s, 0);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    CmTime now = lab->now;
    GError *error = NULL;

    /* The rogue runs its own "site" (its own TRK) and an MP with another
     * name, which a DNS record points clients at. */
    {
        CmKey *key = NULL;
        CmCert *tls = NULL;
        g_autoptr(json_t) info = NULL, list = NULL;
        ck_assert(cm_site_add_mp(rogue->site, "mp9.corp.example", FALSE, now, &rogue->mp_info[0],
                                 &rogue->mp_certs[0], &tls, &key, &error));
        cm_assert_no_error(error);
        info = cm_site_siteinfo_json(rogue->site);
        list = cm_site_mplist_json(rogue->site);
        rogue->mps[0] = cm_mp_new(&(CmMpConfig){.name = rogue->mp_info[0].name,
                                                .role_id = rogue->mp_info[0].role_id,
                                                .mp_cert = rogue->mp_certs[0],
                                                .siteinfo = info,
                                                .mplist = list},
                                  &error);
        cm_assert_no_error(error);
        rogue->n_mps = 1;
        cm_key_unref(key);
        cm_cert_unref(tls);
    }
    {
        /* pre-provisioned TRK: the rogue MP is refused */
        Net net = {.labs = {lab, rogue}};
        const char *dns[] = {"mp9.corp.example", NULL};
        g_autoptr(CmAgent) agent = NULL;
        cm_agent_config_default(&c);
        c.name = "PC003";
        c.smssitecode = "PS1";
        c.smspublicrootkey = trk;
        c.dns_mps = dns;
        agent = agent_new(&c, 4, now);
        run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR);
        ck_assert_int_ge(cm_agent_status(agent)->mp_refused, 1);
        ck_assert_int_ne(cm_agent_status(agent)->state, CM_AGENT_ACTIVE);
        ck_assert_int_eq(cm_site_client_count(rogue->site, -1), 0);
    }
    {
        /* no TRK: the first MP's TRK is taken on trust, and it is the rogue's */
        Net net = {.labs = {lab, rogue}};
        const char *dns[] = {"mp9.corp.example", NULL};
        g_autoptr(CmAgent) agent = NULL;
        cm_agent_config_default(&c);
        c.name = "PC004";
        c.dns_mps = dns;
        agent = agent_new(&c, 5, now);
        run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR);
        ck_assert_int_eq(cm_agent_status(agent)->trk_source, CM_SOURCE_MP);
        ck_assert_int_eq(cm_agent_status(agent)->state, CM_AGENT_ACTIVE);
        ck_assert_int_eq(cm_site_client_count(rogue->site, -1), 1);
        ck_assert_int_eq(cm_site_client_count(lab->site, -1), 0);
    }
}
END_TEST

/* A compromised MP alters the policies it serves: the signature check
 * refuses them.  REQ: POL-03, TRUST-08 */
START_TEST(test_tampered_policy)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    Net net = {.labs = {lab}, .tamper_policies = TRUE};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;

    deploy(lab, "Baseline");
    cm_agent_config_default(&c);
    c.name = "PC005";
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.smssigncert = cm_site_signing_cert(lab->site);
    c.mp = lab->mp_info[0].name;
    agent = agent_new(&c, 6, now);
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR / 2);
    ck_assert_int_eq(cm_agent_status(agent)->signcert_source, CM_SOURCE_PROPERTY);
    ck_assert_int_ge(cm_agent_status(agent)->policies_refused, 1);
    ck_assert_int_eq(cm_agent_status(agent)->policies_accepted, 0);
}
END_TEST

/* A client without a PKI certificate cannot talk to an HTTPS-only site:
 * that path refuses to work without PKI.  REQ: MSG-05, TRUST-01 */
START_TEST(test_https_only_site)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = NULL;
    g_autofree char *trk = NULL;
    CmAgentConfig c;
    Net net = {0};
    CmTime now;
    g_autoptr(CmAgent) agent = NULL;

    s.communication = CM_COMM_HTTPS_ONLY;
    lab = test_lab_new(&s, 1);
    net.labs[0] = lab;
    now = lab->now;
    trk = cm_site_export_trk(lab->site);
    cm_agent_config_default(&c);
    c.name = "PC006";
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.mp = lab->mp_info[0].name;
    agent = agent_new(&c, 7, now); /* no PKI certificate: HTTP or Enhanced HTTP only */
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR);
    ck_assert_int_ne(cm_agent_status(agent)->state, CM_AGENT_ACTIVE);
    ck_assert_int_gt(cm_mp_counters(lab->mps[0])->refusals[CM_REASON_HTTPS_REQUIRED], 0);
    ck_assert_int_eq(cm_site_client_count(lab->site, -1), 0);
}
END_TEST

/* The hardware-bound upgrade of a client without PKI re-registers it with a
 * new certificate under the same SMSID.  REQ: TRUST-12, TRUST-11 */
START_TEST(test_upgrade_reregisters)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    Net net = {.labs = {lab}};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;
    CmClientInfo before, after;
    CmAgentActions act;

    cm_agent_config_default(&c);
    c.name = "PC007";
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.mp = lab->mp_info[0].name;
    c.tpm_version = 1; /* vulnerable: software keys until the upgrade */
    c.start_window = CM_USEC_PER_HOUR;
    agent = agent_new(&c, 8, now);
    run_agent(&net, agent, &now, now + 2 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(cm_agent_status(agent)->ksp, CM_KSP_SOFTWARE);
    ck_assert(cm_agent_status(agent)->ksp_fell_back);
    ck_assert(cm_site_client(lab->site, cm_agent_status(agent)->smsid, &before, NULL));
    cm_agent_actions_init(&act);
    cm_agent_upgrade(agent, 2, now, &act);
    cm_agent_actions_clear(&act);
    run_agent(&net, agent, &now, now + 3 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(cm_agent_status(agent)->ksp, CM_KSP_TPM2);
    ck_assert(cm_site_client(lab->site, cm_agent_status(agent)->smsid, &after, NULL));
    ck_assert_str_ne(before.thumbprint, after.thumbprint);
    ck_assert_int_eq(after.ksp, CM_KSP_TPM2);
    ck_assert_int_eq(after.registrations, before.registrations + 1);
    ck_assert_int_eq(cm_agent_status(agent)->state, CM_AGENT_ACTIVE);
}
END_TEST

/* What an active client reports besides inventory, through the real MP
 * and site: signed state messages for the accepted and installed
 * deployment, unauthenticated status messages (one for the install, one
 * for a policy an MP tampered with), and daily client status the site
 * decrypts and keeps.  REQ: MSG-03, DATA-02, MSG-01 */
START_TEST(test_client_messages)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    Net net = {.labs = {lab}};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;
    const CmAgentStatus *st;
    gint64 decryptions;

    deploy(lab, "Baseline");
    cm_agent_config_default(&c);
    c.name = "PC008";
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.mp = lab->mp_info[0].name;
    agent = agent_new(&c, 9, now);
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR / 2);
    st = cm_agent_status(agent);
    ck_assert_int_eq(st->state, CM_AGENT_ACTIVE);
    ck_assert_int_eq(st->installs_done, 1);
    ck_assert_int_eq(st->states_sent, 2);
    ck_assert_int_eq(site_count(lab,
                                "SELECT count(*) FROM state_messages WHERE client = " CLIENT_KEY,
                                st->smsid),
                     2);
    ck_assert_int_eq(st->status_sent, 1);
    ck_assert_int_eq(site_count(lab,
                                "SELECT count(*) FROM status_messages WHERE smsid = ? AND "
                                "message_id = 10009 AND severity = 'info'",
                                st->smsid),
                     1);
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->status_discarded, 0);

    /* Client status: a round a day, encrypted; the site keeps the checks. */
    decryptions = cm_site_counters(lab->site)->decryptions;
    run_agent(&net, agent, &now, lab->now + 2 * CM_USEC_PER_DAY + CM_USEC_PER_HOUR);
    ck_assert_int_eq(st->state, CM_AGENT_ACTIVE);
    ck_assert_int_eq(st->client_status_sent, 2);
    ck_assert_int_eq(cm_site_counters(lab->site)->decryptions, decryptions + 2);
    ck_assert_int_eq(
        site_count(lab, "SELECT count(*) FROM client_status WHERE client = " CLIENT_KEY, st->smsid),
        6);
    ck_assert_int_eq(site_count(lab,
                                "SELECT count(*) FROM client_status WHERE client = " CLIENT_KEY
                                " AND "
                                "result = 'pass'",
                                st->smsid),
                     6);
    /* The notification channel is open and kept alive by the MP alone. */
    ck_assert(st->channel_open);
    ck_assert_int_eq(cm_mp_channel_count(lab->mps[0]), 1);
    ck_assert_int_gt(st->keepalives_answered, 100);
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->keepalives, st->keepalives_answered);

    /* A tampered policy: refused, and reported in a status message the MP
     * takes without authentication. */
    {
        Net bad = {.labs = {lab}, .tamper_policies = TRUE};
        g_autoptr(CmAgent) victim = NULL;
        c.name = "PC009";
        c.smssigncert = cm_site_signing_cert(lab->site);
        now = lab->now;
        victim = agent_new(&c, 10, now);
        run_agent(&bad, victim, &now, now + CM_USEC_PER_HOUR / 2);
        ck_assert_int_eq(cm_agent_status(victim)->policies_refused, 1);
        ck_assert_int_eq(site_count(lab,
                                    "SELECT count(*) FROM status_messages WHERE smsid = ? AND "
                                    "message_id = 10006 AND severity = 'error'",
                                    cm_agent_status(victim)->smsid),
                         1);
    }
}
END_TEST

/* A client blocked after it opened its notification channel keeps it: the
 * MP answers its keep-alives without asking the site, while the site
 * refuses everything else.  Once it disconnects it is silent, and the site
 * would refuse it a new channel.  REQ: REG-05, REG-03 */
START_TEST(test_blocked_keeps_channel)
{
    CmSiteSettings s = lab_settings(CM_APPROVAL_ALL, FALSE);
    g_autoptr(TestLab) lab = test_lab_new(&s, 1);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmAgentConfig c;
    Net net = {.labs = {lab}};
    CmTime now = lab->now;
    g_autoptr(CmAgent) agent = NULL;
    const CmAgentStatus *st;
    gint64 keepalives, notify_requests;
    CmAgentActions act;

    cm_agent_config_default(&c);
    c.name = "PC010";
    c.smssitecode = "PS1";
    c.smspublicrootkey = trk;
    c.mp = lab->mp_info[0].name;
    agent = agent_new(&c, 11, now);
    run_agent(&net, agent, &now, now + CM_USEC_PER_HOUR / 2);
    st = cm_agent_status(agent);
    ck_assert_int_eq(st->state, CM_AGENT_ACTIVE);
    ck_assert(st->channel_open);
    ck_assert_int_eq(cm_mp_channel_count(lab->mps[0]), 1);

    ck_assert(cm_site_admin_block(lab->site, st->smsid, "admin", now, NULL));
    keepalives = cm_mp_counters(lab->mps[0])->keepalives;
    run_agent(&net, agent, &now, lab->now + 4 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(st->state, CM_AGENT_BLOCKED);
    ck_assert_int_gt(cm_site_counters(lab->site)->refusals[CM_REASON_BLOCKED], 0);
    ck_assert(st->channel_open);
    ck_assert_int_ge(st->keepalives_after_block, 8);
    ck_assert_int_eq(st->keepalives_answered, st->keepalives_sent);
    ck_assert_int_gt(cm_mp_counters(lab->mps[0])->keepalives, keepalives + 8);

    /* The agent restarts: the driver closes the MP's side of the channel.
     * The blocked client does not ask for a new one... */
    cm_agent_actions_init(&act);
    cm_agent_restart(agent, now, &act);
    ck_assert_int_eq(act.sends->len, 0);
    ck_assert_int_eq(act.wake_at, 0);
    cm_agent_actions_clear(&act);
    ck_assert(!st->channel_open);
    ck_assert_str_eq(st->channel_mp, lab->mp_info[0].name); /* the MP whose side to close */
    cm_mp_channel_close(lab->mps[0], st->smsid);
    notify_requests = cm_mp_counters(lab->mps[0])->requests[CM_EP_NOTIFY];
    run_agent(&net, agent, &now, lab->now + 8 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->requests[CM_EP_NOTIFY], notify_requests);
    ck_assert_int_eq(cm_mp_channel_count(lab->mps[0]), 0);
    /* ... which the site would refuse. */
    {
        CmAgentSend send = {0};
        CmRequest req;
        CmResponse resp = {0};
        g_autofree char *text = g_strdup_printf("{\"smsid\":\"%s\"}", st->smsid);
        g_autoptr(GBytes) sig =
            cm_sig_sign(cm_agent_key(agent), CM_HASH_SHA256, text, strlen(text), NULL);
        send.ep = CM_EP_NOTIFY;
        send.transport = st->transport;
        g_strlcpy(send.smsid, st->smsid, sizeof send.smsid);
        send.signed_ = TRUE;
        send.sig_hash = CM_HASH_SHA256;
        send.sig_len = g_bytes_get_size(sig);
        memcpy(send.sig, g_bytes_get_data(sig, NULL), send.sig_len);
        send.body = g_bytes_new_static(text, strlen(text));
        cm_agent_send_request(&send, &req);
        test_lab_deliver(lab, 0, &req, &resp);
        ck_assert_int_eq(resp.reason, CM_REASON_BLOCKED);
        cm_response_clear(&resp);
        g_bytes_unref(send.body);
    }
}
END_TEST

static Suite *
roles_suite(void)
{
    Suite *s = suite_create("roles");
    TCase *tc = tcase_create("roles");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lifecycle);
    tcase_add_test(tc, test_manual_approval);
    tcase_add_test(tc, test_blocked_agent);
    tcase_add_test(tc, test_rogue_mp);
    tcase_add_test(tc, test_tampered_policy);
    tcase_add_test(tc, test_https_only_site);
    tcase_add_test(tc, test_upgrade_reregisters);
    tcase_add_test(tc, test_client_messages);
    tcase_add_test(tc, test_blocked_keeps_channel);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(roles_suite());
}
