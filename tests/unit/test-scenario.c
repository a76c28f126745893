/* test-scenario.c - the scenario file loader (sim/scenario.c): a full file
 * into the expected values, variants, scale, and one test per class of
 * error, each checking that the message names the file, group and key. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "scenario.h"
#include "cmsim.h"

static char *tmpdir;

static void
setup(void)
{
    tmpdir = cm_test_tmpdir();
}

static void
teardown(void)
{
    cm_test_rmdir(tmpdir);
    g_free(tmpdir);
    tmpdir = NULL;
}

/* Loads text through a real file, as cmlab-sim does. */
static GPtrArray *
load_file(const char *name, const char *text, double scale, GError **error)
{
    g_autofree char *path = cm_test_write(tmpdir, name, text, strlen(text));
    return cm_scenario_load(path, scale, error);
}

static GPtrArray *
load(const char *text, GError **error)
{
    return cm_scenario_load_data("t.scn", text, strlen(text), 1.0, error);
}

/* Asserts that text is refused and that the message holds every one of
 * the NULL-terminated fragments. */
static void
expect_refused_v(const char *text, const char *const *want)
{
    GError *error = NULL;
    GPtrArray *all = load(text, &error);

    ck_assert_msg(all == NULL, "accepted a bad scenario:\n%s", text);
    ck_assert(error != NULL);
    ck_assert(error->domain == CM_SCENARIO_ERROR);
    for (const char *const *w = want; *w != NULL; w++)
        ck_assert_msg(strstr(error->message, *w) != NULL, "message \"%s\" lacks \"%s\"",
                      error->message, *w);
    g_error_free(error);
}

#define expect_refused(text, ...)                                                                  \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__, NULL};                                           \
        expect_refused_v((text), want_);                                                           \
    } while (0)

/* The smallest valid scenario; tests append groups to it. */
#define MINIMAL                                                                                    \
    "[scenario]\nduration = 1h\n"                                                                  \
    "[site PS1]\n"                                                                                 \
    "[segment lan]\n"                                                                              \
    "[population pcs]\ncount = 10\n"

/* ------------------------------------------------------------ a full file */

/* REQ: TRUST-12 */
static const char full_text[] =
    "# every feature once\n"
    "[scenario]\n"
    "name = full\n"
    "description = every feature, parsed\n"
    "seed = 42\n"
    "duration = 6h\n"
    "sample = 30s\n"
    "crypto = model\n"
    "full_size = 25,000 clients\n"
    "\n"
    "[site CAS]\n"
    "top_level = true\n"
    "segment = corp\n"
    "forest = corp.example\n"
    "publish_to = corp.example, lab.example\n"
    "communication = http-or-https\n"
    "approval = manual\n"
    "require_signing = false\n"
    "require_sha256 = false\n"
    "encrypt = true\n"
    "allow_3des = true\n"
    "conflicts = block\n"
    "crl_check = true\n"
    "key_alg = rsa2048\n"
    "discovery_retention = 30d\n"
    "client_status_retention = 168h\n"
    "client_token_lifetime = 2d\n"
    "workers = 6\n"
    "queue_limit = 20000\n"
    "\n"
    "[site ps1]\n"
    "segment = corp\n"
    "forest = corp.example\n"
    "\n"
    "[mp mp1.corp.example]\n"
    "site = PS1\n"
    "workers = 16\n"
    "queue_limit = 100\n"
    "\n"
    "[mp mp2]\n"
    "site = cas\n"
    "segment = dmz\n"
    "internet = true\n"
    "\n"
    "[segment corp]\n"
    "latency = 2ms\n"
    "bandwidth = 10Gbps\n"
    "\n"
    "[segment dmz]\n"
    "\n"
    "[segment internet]\n"
    "latency = 40ms\n"
    "bandwidth = 50Mbps\n"
    "\n"
    "[link corp dmz]\n"
    "latency = 500us\n"
    "bandwidth = 1Gbps\n"
    "\n"
    "[link   internet   dmz ]\n"
    "one_way = true\n"
    "\n"
    "[forest corp.example]\n"
    "domains = corp.example, emea.corp.example\n"
    "\n"
    "[forest lab.example]\n"
    "\n"
    "[trust corp.example lab.example]\n"
    "kind = one-way\n"
    "\n"
    "[population desktops]\n"
    "count = 25000\n"
    "segment = corp\n"
    "forest = corp.example\n"
    "domain = emea.corp.example\n"
    "site_code = ps1\n"
    "trk = directory\n"
    "signcert = property\n"
    "key_storage = tpm1\n"
    "pki = true\n"
    "install = gpo\n"
    "mp = mp1.corp.example\n"
    "start = 5m\n"
    "start_window = 10m\n"
    "policy_interval = 30m\n"
    "inventory_interval = 1d\n"
    "key_alg = rsa2048\n"
    "media = true\n"
    "maintenance_start = 2h\n"
    "maintenance_window = 1h\n"
    "inventory.os.caption = Windows 11 Enterprise\n"
    "inventory.ou = Finance\n"
    "\n"
    "[population laptops]\n"
    "count = 100\n"
    "segment = internet\n"
    "workgroup = true\n"
    "install = push\n"
    "key_storage = software\n"
    "\n"
    "[event late]\n"
    "at = 5h\n"
    "action = maintenance\n"
    "site = CAS\n"
    "\n"
    "[event finance]\n"
    "at = 1h\n"
    "action = create-collection\n"
    "site = CAS\n"
    "collection = Finance PCs\n"
    "rules = inventory.ou = Finance, discovery.name startswith FIN\n"
    "\n"
    "[event upgrade]\n"
    "at = 1h\n"
    "action = upgrade-client\n"
    "target = desktops\n"
    "randomize_over = 2h\n"
    "fraction = 0.5\n"
    "\n"
    "[event patch]\n"
    "at = 2h\n"
    "action = deploy\n"
    "site = CAS\n"
    "collection = Finance PCs\n"
    "required = true\n"
    "max_runtime = 45m\n"
    "\n"
    "[event harden]\n"
    "at = 3h\n"
    "action = set\n"
    "site = cas\n"
    "settings = communication = https-only, approval = trusted-domains\n"
    "\n"
    "[event block]\n"
    "at = 90m\n"
    "action = block\n"
    "target = laptops\n"
    "fraction = 0.1\n"
    "\n"
    "[event revoke]\n"
    "at = 100m\n"
    "action = revoke\n"
    "target = desktops\n"
    "\n"
    "[event publish]\n"
    "at = 0\n"
    "action = publish\n"
    "target = lab.example\n"
    "site = CAS\n"
    "\n"
    "[event takeover]\n"
    "at = 4h\n"
    "action = take-over-mp\n"
    "target = mp2\n"
    "\n"
    "[attacker rogue]\n"
    "strategy = rogue-mp\n"
    "segment = corp\n"
    "start = 10m\n"
    "stop = 2h\n"
    "target = desktops\n"
    "mp = evil.corp.example\n"
    "serve_trk = own\n"
    "\n"
    "[attacker flood]\n"
    "strategy = status-flood\n"
    "segment = internet\n"
    "mp = mp2\n"
    "count = 20\n"
    "rate = 2.5e3\n"
    "\n"
    "[attacker liar]\n"
    "strategy = false-inventory\n"
    "segment = corp\n"
    "target = desktops\n"
    "collection = Finance PCs\n"
    "inventory.ou = Finance\n"
    "\n"
    "[attacker replay]\n"
    "strategy = policy-replay\n"
    "segment = corp\n"
    "mp = mp2\n"
    "deployment = patch\n"
    "\n"
    "[expect]\n"
    "completed = registrations.completed_ratio >= 99.9%\n"
    "backlog = site.backlog.max<=5000\n"
    "drain = site.backlog.drain_time < 30m\n"
    "none = attack.rogue.victims == 0\n"
    "neg = some.delta != -1.5e2\n"
    "\n"
    "[costs]\n"
    "site.register = 2ms\n"
    "mp.location = 150us\n"
    "mp.refusal = 5us\n";

static void *
find(GPtrArray *a, size_t name_offset, const char *name)
{
    for (guint i = 0; i < a->len; i++) {
        char *const *n = (char *const *)((char *)g_ptr_array_index(a, i) + name_offset);
        if (strcmp(*n, name) == 0)
            return g_ptr_array_index(a, i);
    }
    ck_abort_msg("no %s", name);
    return NULL;
}

#define FIND(arr, type, field, name) ((type *)find((arr), offsetof(type, field), (name)))

START_TEST(test_full)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all = load_file("full.scn", full_text, 1.0, &error);
    CmScenario *s;
    CmScnSite *cas, *ps1;
    CmScnMp *mp1, *mp2;
    CmScnSegment *seg;
    CmScnLink *ln;
    CmScnForest *f;
    CmScnTrust *t;
    CmScnPopulation *p;
    CmScnEvent *ev;
    CmScnAttacker *a;
    CmScnExpect *x;
    CmTime *cost;

    cm_assert_no_error(error);
    ck_assert_uint_eq(all->len, 1);
    s = g_ptr_array_index(all, 0);

    ck_assert(g_str_has_suffix(s->path, "full.scn"));
    ck_assert_str_eq(s->name, "full");
    ck_assert_str_eq(s->description, "every feature, parsed");
    ck_assert_uint_eq(s->seed, 42);
    ck_assert_int_eq(s->duration, 6 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(s->sample, 30 * CM_USEC_PER_SEC);
    ck_assert(s->model_crypto);
    ck_assert_str_eq(s->full_size, "25,000 clients");
    ck_assert_str_eq(s->variant_label, "");
    ck_assert_uint_eq(g_hash_table_size(s->variant), 0);

    /* sites: codes upper-cased, settings mapped, defaults kept */
    ck_assert_uint_eq(s->sites->len, 2);
    cas = FIND(s->sites, CmScnSite, code, "CAS");
    ck_assert(cas->top_level);
    ck_assert_str_eq(cas->segment, "corp");
    ck_assert_str_eq(cas->forest, "corp.example");
    ck_assert_uint_eq(g_strv_length(cas->publish_to), 2);
    ck_assert_str_eq(cas->publish_to[1], "lab.example");
    ck_assert_int_eq(cas->settings.communication, CM_COMM_HTTP_OR_HTTPS);
    ck_assert_int_eq(cas->settings.approval, CM_APPROVAL_MANUAL);
    ck_assert(!cas->settings.require_signing);
    ck_assert(!cas->settings.require_sha256);
    ck_assert(cas->settings.encrypt);
    ck_assert(cas->settings.allow_3des);
    ck_assert_int_eq(cas->settings.conflicts, CM_CONFLICT_BLOCK);
    ck_assert(cas->settings.crl_check);
    ck_assert_int_eq(cas->settings.key_alg, CM_KEY_RSA_2048);
    ck_assert_int_eq(cas->settings.discovery_retention_days, 30);
    ck_assert_int_eq(cas->settings.client_status_retention_days, 7);
    ck_assert_int_eq(cas->settings.client_token_lifetime, 2 * CM_USEC_PER_DAY);
    ck_assert_int_eq(cas->workers, 6);
    ck_assert_int_eq(cas->queue_limit, 20000);
    ps1 = FIND(s->sites, CmScnSite, code, "PS1");
    ck_assert(!ps1->top_level);
    ck_assert_int_eq(ps1->workers, 4);
    ck_assert_int_eq(ps1->queue_limit, 10000);
    ck_assert_int_eq(ps1->settings.communication, CM_COMM_HTTPS_ONLY);
    ck_assert_int_eq(ps1->settings.discovery_retention_days, 90);
    ck_assert_uint_eq(g_strv_length(ps1->publish_to), 0);

    /* MPs: the segment defaults to the site's */
    mp1 = FIND(s->mps, CmScnMp, name, "mp1.corp.example");
    ck_assert_str_eq(mp1->site, "PS1");
    ck_assert_str_eq(mp1->segment, "corp");
    ck_assert(!mp1->internet);
    ck_assert_int_eq(mp1->workers, 16);
    ck_assert_int_eq(mp1->queue_limit, 100);
    mp2 = FIND(s->mps, CmScnMp, name, "mp2");
    ck_assert_str_eq(mp2->site, "CAS");
    ck_assert_str_eq(mp2->segment, "dmz");
    ck_assert(mp2->internet);
    ck_assert_int_eq(mp2->workers, 8);
    ck_assert_int_eq(mp2->queue_limit, 5000);

    /* network */
    ck_assert_uint_eq(s->segments->len, 3);
    seg = FIND(s->segments, CmScnSegment, name, "corp");
    ck_assert_int_eq(seg->latency, 2000);
    ck_assert(seg->bandwidth_bps == 10e9);
    seg = FIND(s->segments, CmScnSegment, name, "dmz");
    ck_assert_int_eq(seg->latency, 1000);
    ck_assert(seg->bandwidth_bps == 1e9);
    ck_assert_uint_eq(s->links->len, 2);
    ln = g_ptr_array_index(s->links, 0);
    ck_assert_str_eq(ln->a, "corp");
    ck_assert_str_eq(ln->b, "dmz");
    ck_assert_int_eq(ln->latency, 500);
    ck_assert(!ln->one_way);
    ln = g_ptr_array_index(s->links, 1);
    ck_assert_str_eq(ln->a, "internet");
    ck_assert_str_eq(ln->b, "dmz");
    ck_assert_int_eq(ln->latency, 10000);
    ck_assert(ln->bandwidth_bps == 100e6);
    ck_assert(ln->one_way);

    /* forests and trusts */
    f = FIND(s->forests, CmScnForest, name, "corp.example");
    ck_assert_uint_eq(g_strv_length(f->domains), 2);
    ck_assert_str_eq(f->domains[1], "emea.corp.example");
    f = FIND(s->forests, CmScnForest, name, "lab.example");
    ck_assert_uint_eq(g_strv_length(f->domains), 0);
    t = g_ptr_array_index(s->trusts, 0);
    ck_assert_str_eq(t->a, "corp.example");
    ck_assert_str_eq(t->b, "lab.example");
    ck_assert_int_eq(t->kind, CM_TRUST_ONE_WAY);

    /* populations */
    p = FIND(s->populations, CmScnPopulation, name, "desktops");
    ck_assert_uint_eq(p->count, 25000);
    ck_assert_str_eq(p->segment, "corp");
    ck_assert_str_eq(p->forest, "corp.example");
    ck_assert_str_eq(p->domain, "emea.corp.example");
    ck_assert_str_eq(p->site_code, "PS1");
    ck_assert_int_eq(p->trk, CM_SCN_SOURCE_DIRECTORY);
    ck_assert_int_eq(p->signcert, CM_SCN_SOURCE_PROPERTY);
    ck_assert_int_eq(p->tpm_version, 1);
    ck_assert(p->pki);
    ck_assert(p->kerberos);
    ck_assert_int_eq(p->install, CM_INSTALL_GPO);
    ck_assert_str_eq(p->mp, "mp1.corp.example");
    ck_assert_int_eq(p->start, 5 * CM_USEC_PER_MIN);
    ck_assert_int_eq(p->start_window, 10 * CM_USEC_PER_MIN);
    ck_assert_int_eq(p->policy_interval, 30 * CM_USEC_PER_MIN);
    ck_assert_int_eq(p->inventory_interval, CM_USEC_PER_DAY);
    ck_assert_int_eq(p->key_alg, CM_KEY_RSA_2048);
    ck_assert(p->media);
    ck_assert_int_eq(p->maintenance_start, 2 * CM_USEC_PER_HOUR);
    ck_assert_int_eq(p->maintenance_window, CM_USEC_PER_HOUR);
    ck_assert_uint_eq(g_hash_table_size(p->inventory), 2);
    ck_assert_str_eq(g_hash_table_lookup(p->inventory, "os.caption"), "Windows 11 Enterprise");
    ck_assert_str_eq(g_hash_table_lookup(p->inventory, "ou"), "Finance");

    p = FIND(s->populations, CmScnPopulation, name, "laptops");
    ck_assert_ptr_null(p->forest);
    ck_assert_str_eq(p->domain, "");
    ck_assert(!p->kerberos);
    ck_assert_int_eq(p->install, CM_INSTALL_PUSH);
    ck_assert_int_eq(p->trk, CM_SCN_SOURCE_PUSH); /* push carries the TRK */
    ck_assert_int_eq(p->signcert, CM_SCN_SOURCE_PUSH);
    ck_assert_int_eq(p->tpm_version, 0);
    ck_assert(!p->pki);
    ck_assert_ptr_null(p->mp);
    ck_assert_ptr_null(p->site_code);
    ck_assert_int_eq(p->policy_interval, CM_USEC_PER_HOUR);
    ck_assert_int_eq(p->inventory_interval, 7 * CM_USEC_PER_DAY);
    ck_assert_int_eq(p->key_alg, CM_KEY_EC_P256);
    ck_assert_int_eq(p->maintenance_window, 0);

    /* events: sorted by time, the file's order kept at equal times */
    ck_assert_uint_eq(s->events->len, 9);
    {
        const char *order[] = {"publish", "finance", "upgrade",  "block", "revoke",
                               "patch",   "harden",  "takeover", "late"};
        for (guint i = 0; i < G_N_ELEMENTS(order); i++)
            ck_assert_str_eq(((CmScnEvent *)g_ptr_array_index(s->events, i))->name, order[i]);
    }
    ev = FIND(s->events, CmScnEvent, name, "upgrade");
    ck_assert_int_eq(ev->action, CM_SCN_ACT_UPGRADE_CLIENT);
    ck_assert_str_eq(ev->target, "desktops");
    ck_assert_int_eq(ev->randomize_over, 2 * CM_USEC_PER_HOUR);
    ck_assert(ev->fraction == 0.5);
    ck_assert_ptr_null(ev->site);
    ev = FIND(s->events, CmScnEvent, name, "finance");
    ck_assert_int_eq(ev->action, CM_SCN_ACT_CREATE_COLLECTION);
    ck_assert_str_eq(ev->collection, "Finance PCs");
    ck_assert_str_eq(ev->site, "CAS");
    ck_assert_uint_eq(g_strv_length(ev->rules), 2);
    ck_assert_str_eq(ev->rules[0], "inventory.ou = Finance");
    ck_assert_str_eq(ev->rules[1], "discovery.name startswith FIN");
    ev = FIND(s->events, CmScnEvent, name, "patch");
    ck_assert_int_eq(ev->action, CM_SCN_ACT_DEPLOY);
    ck_assert_str_eq(ev->collection, "Finance PCs");
    ck_assert(ev->required);
    ck_assert_int_eq(ev->max_runtime, 45 * CM_USEC_PER_MIN);
    ev = FIND(s->events, CmScnEvent, name, "harden");
    ck_assert_int_eq(ev->action, CM_SCN_ACT_SET);
    ck_assert_str_eq(ev->site, "CAS");
    ck_assert_uint_eq(g_strv_length(ev->settings), 2);
    ck_assert_str_eq(ev->settings[0], "communication=https-only");
    ck_assert_str_eq(ev->settings[1], "approval=trusted-domains");
    ev = FIND(s->events, CmScnEvent, name, "block");
    ck_assert(fabs(ev->fraction - 0.1) < 1e-12);
    ev = FIND(s->events, CmScnEvent, name, "publish");
    ck_assert_int_eq(ev->at, 0);
    ck_assert_str_eq(ev->target, "lab.example");
    ev = FIND(s->events, CmScnEvent, name, "takeover");
    ck_assert_str_eq(ev->target, "mp2");

    /* attackers: unknown keys are the strategy's parameters */
    a = FIND(s->attackers, CmScnAttacker, name, "rogue");
    ck_assert_int_eq(a->strategy, CM_SCN_ATK_ROGUE_MP);
    ck_assert_int_eq(a->start, 10 * CM_USEC_PER_MIN);
    ck_assert_int_eq(a->stop, 2 * CM_USEC_PER_HOUR);
    ck_assert_str_eq(a->segment, "corp");
    ck_assert_str_eq(a->target, "desktops");
    ck_assert_str_eq(a->mp, "evil.corp.example"); /* its own MP */
    ck_assert_uint_eq(a->count, 1);
    ck_assert_str_eq(g_hash_table_lookup(a->params, "serve_trk"), "own");
    a = FIND(s->attackers, CmScnAttacker, name, "flood");
    ck_assert_int_eq(a->strategy, CM_SCN_ATK_STATUS_FLOOD);
    ck_assert_uint_eq(a->count, 20);
    ck_assert(a->rate == 2500);
    ck_assert_ptr_null(a->target);
    ck_assert_uint_eq(g_hash_table_size(a->params), 0);
    a = FIND(s->attackers, CmScnAttacker, name, "liar");
    ck_assert_str_eq(a->target, "desktops");
    ck_assert_ptr_null(a->mp); /* its devices are clients of their population's MP */
    ck_assert_str_eq(g_hash_table_lookup(a->params, "collection"), "Finance PCs");
    ck_assert_str_eq(g_hash_table_lookup(a->params, "inventory.ou"), "Finance");
    a = FIND(s->attackers, CmScnAttacker, name, "replay");
    ck_assert_ptr_null(a->target);
    ck_assert_str_eq(a->mp, "mp2");
    ck_assert_str_eq(g_hash_table_lookup(a->params, "deployment"), "patch");

    /* expectations: percent as a ratio, durations in seconds */
    ck_assert_uint_eq(s->expects->len, 5);
    x = g_ptr_array_index(s->expects, 0);
    ck_assert_str_eq(x->name, "completed");
    ck_assert_str_eq(x->metric, "registrations.completed_ratio");
    ck_assert_int_eq(x->op, CM_CMP_GE);
    ck_assert(fabs(x->value - 0.999) < 1e-12);
    ck_assert_ptr_null(x->when_variant);
    ck_assert_str_eq(x->text, "registrations.completed_ratio >= 99.9%");
    x = g_ptr_array_index(s->expects, 1);
    ck_assert_str_eq(x->metric, "site.backlog.max");
    ck_assert_int_eq(x->op, CM_CMP_LE);
    ck_assert(x->value == 5000);
    x = g_ptr_array_index(s->expects, 2);
    ck_assert_int_eq(x->op, CM_CMP_LT);
    ck_assert(x->value == 1800);
    x = g_ptr_array_index(s->expects, 3);
    ck_assert_int_eq(x->op, CM_CMP_EQ);
    ck_assert(x->value == 0);
    x = g_ptr_array_index(s->expects, 4);
    ck_assert_int_eq(x->op, CM_CMP_NE);
    ck_assert(x->value == -150);

    /* costs */
    ck_assert_uint_eq(g_hash_table_size(s->costs), 3);
    ck_assert_int_eq(*(CmTime *)g_hash_table_lookup(s->costs, "mp.refusal"), 5);
    cost = g_hash_table_lookup(s->costs, "site.register");
    ck_assert_int_eq(*cost, 2000);
    cost = g_hash_table_lookup(s->costs, "mp.location");
    ck_assert_int_eq(*cost, 150);
}
END_TEST

/* Defaults: one site is the top-level site, the only segment and forest
 * are taken, sample is duration / 240 but at least a second. */
START_TEST(test_defaults)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all = NULL;
    CmScenario *s;
    CmScnSite *site;
    CmScnPopulation *p;
    CmSiteSettings def;

    all = load_file("minimal.scn",
                    MINIMAL "[forest f.example]\n[mp mp1]\n"
                            "[event up]\nat = 1m\naction = upgrade-client\n"
                            "target = pcs\n"
                            "[attacker a]\nstrategy = status-flood\nrate = 5\n",
                    1.0, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(all->len, 1);
    s = g_ptr_array_index(all, 0);
    ck_assert_str_eq(s->name, "minimal"); /* the file's name */
    ck_assert_str_eq(s->description, "");
    ck_assert_str_eq(s->full_size, "");
    ck_assert_uint_eq(s->seed, 1);
    ck_assert_int_eq(s->sample, 15 * CM_USEC_PER_SEC);
    ck_assert(!s->model_crypto);
    site = g_ptr_array_index(s->sites, 0);
    ck_assert(site->top_level);
    ck_assert_str_eq(site->segment, "lan");
    ck_assert_str_eq(site->forest, "f.example");
    cm_site_settings_default(&def);
    ck_assert(memcmp(&site->settings, &def, sizeof def) == 0);
    p = g_ptr_array_index(s->populations, 0);
    ck_assert_str_eq(p->segment, "lan");
    ck_assert_str_eq(p->forest, "f.example");
    ck_assert_str_eq(p->domain, "f.example");
    ck_assert(p->kerberos);
    ck_assert_int_eq(p->trk, CM_SCN_SOURCE_NONE);
    ck_assert_int_eq(p->install, CM_INSTALL_MANUAL);
    ck_assert_int_eq(p->tpm_version, 2);
    ck_assert_str_eq(((CmScnMp *)g_ptr_array_index(s->mps, 0))->segment, "lan");
    ck_assert(((CmScnEvent *)g_ptr_array_index(s->events, 0))->fraction == 1.0);
    /* a flood goes to the only MP */
    ck_assert_str_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 0))->mp, "mp1");
    ck_assert_uint_eq(s->expects->len, 0);
    g_clear_pointer(&all, g_ptr_array_unref);

    /* A short run samples every second, however short; no forest at all
     * makes a workgroup population. */
    all = load("[scenario]\nduration = 2m\n[site PS1]\n[segment lan]\n[population w]\ncount = 1\n",
               &error);
    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    ck_assert_int_eq(s->sample, CM_USEC_PER_SEC);
    ck_assert_str_eq(s->name, "t");
    p = g_ptr_array_index(s->populations, 0);
    ck_assert_ptr_null(p->forest);
    ck_assert_str_eq(p->domain, "");
    ck_assert(!p->kerberos);
    ck_assert_ptr_null(((CmScnSite *)g_ptr_array_index(s->sites, 0))->forest);
}
END_TEST

/* ------------------------------------------------------------ variants */

static const char variant_text[] =
    "[scenario]\nname = v\nduration = 6h\n"
    "[site PS1]\napproval = ${variant.approval}\n"
    "[segment lan]\n"
    "[population pcs]\ncount = 100\n"
    "[event upgrade]\nat = 1h\naction = upgrade-client\ntarget = pcs\n"
    "randomize_over = ${variant.window}\n"
    "[variant]\n"
    "window = 0, 2h\n"
    "approval = manual,all\n"
    "[expect]\n"
    "backlog = site.backlog.max <= 5000 when window = 2h\n"
    "drain = site.backlog.drain_time <= 30m when window=2h\n"
    "ok = registrations.completed_ratio >= 0.999\n";

START_TEST(test_variants)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all = load_file("v.scn", variant_text, 1.0, &error);
    const char *labels[] = {"window=0,approval=manual", "window=0,approval=all",
                            "window=2h,approval=manual", "window=2h,approval=all"};
    const CmTime windows[] = {0, 0, 2 * CM_USEC_PER_HOUR, 2 * CM_USEC_PER_HOUR};
    const CmApprovalMode modes[] = {CM_APPROVAL_MANUAL, CM_APPROVAL_ALL, CM_APPROVAL_MANUAL,
                                    CM_APPROVAL_ALL};

    cm_assert_no_error(error);
    ck_assert_uint_eq(all->len, 4);
    for (guint i = 0; i < 4; i++) {
        CmScenario *s = g_ptr_array_index(all, i);
        CmScnEvent *ev = g_ptr_array_index(s->events, 0);
        CmScnSite *site = g_ptr_array_index(s->sites, 0);
        CmScnExpect *x;

        ck_assert_str_eq(s->variant_label, labels[i]);
        ck_assert_uint_eq(g_hash_table_size(s->variant), 2);
        ck_assert_str_eq(g_hash_table_lookup(s->variant, "window"), i < 2 ? "0" : "2h");
        ck_assert_str_eq(g_hash_table_lookup(s->variant, "approval"), i % 2 ? "all" : "manual");
        ck_assert_int_eq(ev->randomize_over, windows[i]);
        ck_assert_int_eq(site->settings.approval, modes[i]);
        /* every expectation stays in every variant; the report applies
         * "when" */
        ck_assert_uint_eq(s->expects->len, 3);
        x = g_ptr_array_index(s->expects, 0);
        ck_assert_str_eq(x->when_variant, "window");
        ck_assert_str_eq(x->when_value, "2h");
        x = g_ptr_array_index(s->expects, 1);
        ck_assert_str_eq(x->when_value, "2h");
        ck_assert(x->value == 1800);
        x = g_ptr_array_index(s->expects, 2);
        ck_assert_ptr_null(x->when_variant);
        ck_assert_ptr_null(x->when_value);
    }
}
END_TEST

/* An error that only one combination has names that combination. */
START_TEST(test_variant_error_names_combination)
{
    expect_refused(MINIMAL "[event e]\nat = ${variant.at}\naction = maintenance\n"
                           "[variant]\nat = 10m, 2h\n",
                   "t.scn: [event e] at: expected a duration from 0 to 1h, got \"2h\"",
                   "(in variant at=2h)");
    /* An error every combination has is not blamed on the first one. */
    {
        GError *error = NULL;
        const char *text = MINIMAL "[event e]\nat = 2h\naction = maintenance\n"
                                   "[variant]\nx = 1, 2\n";
        ck_assert_ptr_null(load(text, &error));
        ck_assert_str_eq(error->message,
                         "t.scn: [event e] at: expected a duration from 0 to 1h, got \"2h\"");
        g_clear_error(&error);
    }
}
END_TEST

START_TEST(test_variant_limits)
{
    /* 4 x 4 x 5 = 80 combinations */
    expect_refused(MINIMAL "[variant]\na = 1,2,3,4\nb = 1,2,3,4\nc = 1,2,3,4,5\n",
                   "t.scn: [variant]: too many combinations: a (4) x b (4) x c (5) = 80, at most "
                   "64");
    expect_refused(MINIMAL "[variant]\na = 1,,2\n", "[variant] a: an empty item in the list");
    expect_refused(MINIMAL "[variant]\na =\n", "[variant] a: expected one or more values");
    expect_refused(MINIMAL "[variant]\na = 1, 1\n", "[variant] a: the value \"1\" is listed twice");
    expect_refused(MINIMAL "[variant]\na = ${variant.a}\n", "[variant] a: expected values");
    expect_refused(MINIMAL "[population x]\ncount = ${variant.n}\n",
                   "t.scn: [population x] count: \"${variant.n}\" names no variant; the file has "
                   "no [variant]");
    expect_refused(MINIMAL "[population x]\ncount = ${variant.nn}\n[variant]\nn = 1, 2\n",
                   "[population x] count: \"${variant.nn}\" names no variant");
    expect_refused(MINIMAL "[population x]\ncount = ${varient.n}\n[variant]\nn = 1\n",
                   "[population x] count: expected ${variant.NAME}");
    expect_refused(MINIMAL "[population x]\ncount = ${variant.n\n[variant]\nn = 1\n",
                   "[population x] count: expected ${variant.NAME}");
}
END_TEST

START_TEST(test_variant_exactly_64)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all = load(MINIMAL "[population x]\ncount = ${variant.a}${variant.b}\n"
                                            "[variant]\na = 1,2,3,4,5,6,7,8\nb = 1,2,3,4,5,6,7,8\n",
                                    &error);
    CmScenario *last;

    cm_assert_no_error(error);
    ck_assert_uint_eq(all->len, CM_SCENARIO_MAX_VARIANTS);
    last = g_ptr_array_index(all, 63);
    ck_assert_str_eq(last->variant_label, "a=8,b=8");
    ck_assert_uint_eq(((CmScnPopulation *)g_ptr_array_index(last->populations, 1))->count, 88);
}
END_TEST

/* ------------------------------------------------------------ scale */

START_TEST(test_scale)
{
    GError *error = NULL;
    const char *text = "[scenario]\nduration = 1h\n[site PS1]\n[segment lan]\n[mp mp1]\n"
                       "[population big]\ncount = 25000\n"
                       "[population odd]\ncount = 333\n"
                       "[population one]\ncount = 1\n"
                       "[attacker clones]\nstrategy = cloned-image\ntarget = big\ncount = 50\n"
                       "[attacker flood]\nstrategy = enrollment-flood\nrate = 10\n";
    g_autoptr(GPtrArray) all = cm_scenario_load_data("s.scn", text, strlen(text), 0.01, &error);
    CmScenario *s;

    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    /* 250 exactly, not 251 from 25000 x 0.01 in binary floating point */
    ck_assert_uint_eq(((CmScnPopulation *)g_ptr_array_index(s->populations, 0))->count, 250);
    ck_assert_uint_eq(((CmScnPopulation *)g_ptr_array_index(s->populations, 1))->count, 4);
    ck_assert_uint_eq(((CmScnPopulation *)g_ptr_array_index(s->populations, 2))->count, 1);
    ck_assert_uint_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 0))->count, 1);
    ck_assert_uint_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 1))->count, 1);
    ck_assert(((CmScnAttacker *)g_ptr_array_index(s->attackers, 1))->rate == 10);
    g_clear_pointer(&all, g_ptr_array_unref);

    all = cm_scenario_load_data("s.scn", text, strlen(text), 2.0, &error);
    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    ck_assert_uint_eq(((CmScnPopulation *)g_ptr_array_index(s->populations, 0))->count, 50000);
    ck_assert_uint_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 0))->count, 100);
    g_clear_pointer(&all, g_ptr_array_unref);

    /* the device bound applies after scaling */
    all = cm_scenario_load_data("s.scn", text, strlen(text), 5000.0, &error);
    ck_assert_ptr_null(all);
    ck_assert(strstr(error->message, "[population big] count: the scenario would hold more "
                                     "than 100000000") != NULL);
    g_clear_error(&error);
    all = cm_scenario_load_data("s.scn", text, strlen(text), 0.0, &error);
    ck_assert_ptr_null(all);
    ck_assert(strstr(error->message, "s.scn: scale 0: expected a number above 0") != NULL);
    g_clear_error(&error);
    all = cm_scenario_load_data("s.scn", text, strlen(text), NAN, &error);
    ck_assert_ptr_null(all);
    g_clear_error(&error);
}
END_TEST

/* ------------------------------------------------------------ durations */

START_TEST(test_durations)
{
    static const struct {
        const char *text;
        CmTime usec;
    } good[] = {
        {"0", 0},
        {"0.0", 0},
        {"0s", 0},
        {"90s", 90 * CM_USEC_PER_SEC},
        {"2ms", 2000},
        {"500us", 500},
        {"10m", 10 * CM_USEC_PER_MIN},
        {"1h", CM_USEC_PER_HOUR},
        {"7d", 7 * CM_USEC_PER_DAY},
        {"1.5h", 90 * CM_USEC_PER_MIN},
        {".5s", 500000},
        {" 2 h ", 2 * CM_USEC_PER_HOUR},
        {"1.000001s", 1000001},
        {"106751991d", G_GINT64_CONSTANT(106751991) * CM_USEC_PER_DAY},
        {"9223372036854775807us", G_MAXINT64},
    };
    static const char *const bad[] = {
        "",
        "s",
        "-5s",
        "-0",
        "5",
        "1.5",
        "10 minutes",
        "5x",
        "1h30m",
        "0x10s",
        "1e3s",
        "1.0000001s",
        "0.5us",
        "106751992d",
        "9223372036854775808us",
        "99999999999999999999999s",
        "inf",
        "nan",
        "+5s",
        "5s5",
    };
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        CmTime t = -1;
        ck_assert_msg(cm_scn_parse_duration(good[i].text, &t, &error), "refused \"%s\": %s",
                      good[i].text, error ? error->message : "");
        ck_assert_int_eq(t, good[i].usec);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        CmTime t = 0;
        ck_assert_msg(!cm_scn_parse_duration(bad[i], &t, &error), "accepted \"%s\"", bad[i]);
        ck_assert(g_error_matches(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID));
        ck_assert(strlen(error->message) > 10);
        g_clear_error(&error);
    }
    ck_assert(!cm_scn_parse_duration(NULL, &(CmTime){0}, &error));
    g_clear_error(&error);
}
END_TEST

START_TEST(test_helpers)
{
    ck_assert_str_eq(cm_scn_action_name(CM_SCN_ACT_UPGRADE_CLIENT), "upgrade-client");
    ck_assert_str_eq(cm_scn_action_name(CM_SCN_ACT_TAKE_OVER_MP), "take-over-mp");
    ck_assert_str_eq(cm_scn_action_name((CmScnAction)99), "unknown");
    ck_assert_str_eq(cm_scn_strategy_name(CM_SCN_ATK_ROGUE_UPGRADE), "rogue-upgrade");
    ck_assert_str_eq(cm_scn_strategy_name(CM_SCN_ATK_ROGUE_MP), "rogue-mp");
    ck_assert_str_eq(cm_scn_strategy_name((CmScnStrategy)99), "unknown");
    ck_assert_str_eq(cm_scn_cmp_name(CM_CMP_LE), "<=");
    ck_assert_str_eq(cm_scn_cmp_name(CM_CMP_NE), "!=");
    ck_assert(cm_scn_compare(CM_CMP_LT, 1, 2));
    ck_assert(!cm_scn_compare(CM_CMP_LT, 2, 2));
    ck_assert(cm_scn_compare(CM_CMP_LE, 2, 2));
    ck_assert(cm_scn_compare(CM_CMP_GT, 3, 2));
    ck_assert(cm_scn_compare(CM_CMP_GE, 2, 2));
    ck_assert(cm_scn_compare(CM_CMP_EQ, 0.5, 0.5));
    ck_assert(cm_scn_compare(CM_CMP_NE, 0.5, 0.25));
    ck_assert(!cm_scn_compare(CM_CMP_NE, NAN, 1)); /* NaN fails every expectation */
    ck_assert(!cm_scn_compare(CM_CMP_LE, NAN, 1));
    ck_assert(g_quark_to_string(CM_SCENARIO_ERROR) != NULL);
    cm_scenario_free(NULL);
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST(test_error_file)
{
    GError *error = NULL;
    g_autofree char *big = g_malloc0(CM_SCENARIO_MAX_BYTES + 2);
    g_autofree char *path = NULL;
    GPtrArray *all;

    /* not a key file */
    all = load("duration = 1h\n", &error);
    ck_assert_ptr_null(all);
    ck_assert(g_error_matches(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_PARSE));
    ck_assert(g_str_has_prefix(error->message, "t.scn: not a scenario file:"));
    g_clear_error(&error);
    all = cm_scenario_load_data("t.scn", "[scenario]\0x", 12, 1, &error);
    ck_assert_ptr_null(all);
    ck_assert(g_error_matches(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_PARSE));
    g_clear_error(&error);
    all = load("[scenario]\nname = \xff\n", &error);
    ck_assert_ptr_null(all);
    ck_assert(strstr(error->message, "expected UTF-8 text") != NULL);
    g_clear_error(&error);

    /* more than 1 MiB, from memory and from a file */
    memset(big, '#', CM_SCENARIO_MAX_BYTES + 1);
    all = cm_scenario_load_data("big.scn", big, CM_SCENARIO_MAX_BYTES + 1, 1, &error);
    ck_assert_ptr_null(all);
    ck_assert(strstr(error->message, "big.scn: the file is larger than 1 MiB") != NULL);
    g_clear_error(&error);
    all = load_file("big.scn", big, 1, &error);
    ck_assert_ptr_null(all);
    ck_assert(strstr(error->message, "big.scn: the file is larger than 1 MiB") != NULL);
    g_clear_error(&error);

    /* missing file */
    path = g_build_filename(tmpdir, "nothere.scn", NULL);
    all = cm_scenario_load(path, 1, &error);
    ck_assert_ptr_null(all);
    ck_assert(g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT));
    ck_assert(strstr(error->message, "nothere.scn: cannot open") != NULL);
    g_clear_error(&error);
    all = cm_scenario_load(tmpdir, 1, &error); /* a directory */
    ck_assert_ptr_null(all);
    ck_assert(error != NULL && error->domain == G_FILE_ERROR);
    g_clear_error(&error);

    /* a NULL error is allowed */
    ck_assert_ptr_null(load("[scenario]\n", NULL));
}
END_TEST

START_TEST(test_error_structure)
{
    expect_refused("[site PS1]\n[segment lan]\n[population p]\ncount = 1\n",
                   "t.scn: no [scenario] group");
    expect_refused("[scenario]\nduration = 1h\n[segment lan]\n[population p]\ncount = 1\n",
                   "t.scn: no [site CODE] group");
    expect_refused("[scenario]\nduration = 1h\n[site PS1]\n[segment lan]\n",
                   "t.scn: no [population NAME] group");
    expect_refused("[scenario]\n[site PS1]\n[segment lan]\n[population p]\ncount = 1\n",
                   "t.scn: [scenario] duration: missing");
    /* unknown group, wrong arity */
    expect_refused(MINIMAL "[popluation desktops]\ncount = 5\n",
                   "t.scn: [popluation desktops]: unknown group; expected scenario, site, mp, "
                   "segment, link, forest, trust, population, event, attacker, variant, expect");
    expect_refused(MINIMAL "[link lan]\n", "t.scn: [link lan]: expected [link SEGMENT SEGMENT]");
    expect_refused(MINIMAL "[site]\n", "t.scn: [site]: expected [site CODE]");
    expect_refused(MINIMAL "[expect now]\n", "t.scn: [expect now]: expected [expect]");
    /* what GLib would merge or hide */
    expect_refused(MINIMAL "[segment lan]\nlatency = 1ms\n",
                   "t.scn: [segment lan]: the group appears twice (again on line 7)");
    expect_refused(MINIMAL "count = 20\n", "t.scn: [population pcs] count: set twice (again on "
                                           "line 7)");
    expect_refused(MINIMAL "count[de] = 20\n", "t.scn: [population pcs] count[de]: a key with a "
                                               "[locale] suffix");
    /* two groups that name the same thing */
    expect_refused(MINIMAL "[site ps1]\n", "t.scn: [site ps1]: a second [site PS1]");
    expect_refused(MINIMAL "[population  pcs]\ncount = 1\n", "a second [population pcs]");
    expect_refused(MINIMAL "[link lan lan]\n", "[link lan lan]: names lan twice");
    expect_refused(MINIMAL "[segment b]\n[link lan b]\n[link b lan]\n",
                   "[link b lan]: b and lan are already paired by another [link] group");
    expect_refused(MINIMAL "[population bad/name]\ncount = 1\n",
                   "[population bad/name]: expected a name of 1 to 255 letters");
    expect_refused(MINIMAL "[site P-1]\n", "[site P-1]: site code \"P-1\"");
    /* hierarchy */
    expect_refused(MINIMAL "[site PS2]\n", "t.scn: no top-level site; set top_level = true");
    expect_refused("[scenario]\nduration = 1h\n[site PS1]\ntop_level = false\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "no top-level site");
    expect_refused(MINIMAL "[site PS2]\ntop_level = true\n[site PS3]\ntop_level = true\n",
                   "[site PS3] top_level: site PS2 is already the top-level site");
}
END_TEST

/* Distribution points, content and the distribute event: what the loader
 * keeps, and what it refuses before anything runs.  REQ: DP-02, DP-03 */
START_TEST(test_content_groups)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all = NULL;
    CmScenario *s;
    CmScnDp *dp;
    CmScnContent *c;
    CmScnEvent *ev;

    all = load("[scenario]\nduration = 1h\n[site PS1]\nsegment = lan\n[segment lan]\n"
               "[population pcs]\ncount = 10\nsegment = lan\n[segment br]\n[link lan br]\n"
                       "[content KB1]\nsize = 1.5GiB\nfiles = 3\n"
                       "[dp dp1]\nsegment = br\nrate_limit = 10Mbps\nhours = 22-06\n"
                       "[dp dp2]\nprestaged = true\nprestaged_content = KB1\nhours = 0-24\n"
                       "[event go]\nat = 10m\naction = distribute\ncontent = KB1\ndps = dp1\n"
                       "[event dep]\nat = 10m\naction = deploy\ncollection = All Systems\n"
                       "content = KB1\n"
                       "[population branch]\ncount = 1\nsegment = br\ndp = dp1\n"
                       "[dp dp3]\ntampered = true\n",
               &error);
    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    ck_assert_uint_eq(s->contents->len, 1);
    c = g_ptr_array_index(s->contents, 0);
    ck_assert_uint_eq(c->size, G_GUINT64_CONSTANT(1610612736));
    ck_assert_uint_eq(c->files, 3);
    dp = g_ptr_array_index(s->dps, 0);
    ck_assert_str_eq(dp->site, "PS1");
    ck_assert_str_eq(dp->segment, "br");
    ck_assert(dp->rate_limit_bps == 10e6);
    ck_assert_uint_eq(dp->hours_start, 22);
    ck_assert_uint_eq(dp->hours_end, 6);
    ck_assert(!dp->prestaged);
    dp = g_ptr_array_index(s->dps, 1);
    ck_assert_str_eq(dp->segment, "lan"); /* the site server's */
    ck_assert(dp->prestaged);
    ck_assert_str_eq(dp->prestaged_content[0], "KB1");
    ck_assert(dp->rate_limit_bps == 0);
    ck_assert_uint_eq(dp->hours_start, dp->hours_end); /* all day */
    ev = g_ptr_array_index(s->events, 0);
    ck_assert_int_eq(ev->action, CM_SCN_ACT_DISTRIBUTE);
    ck_assert_str_eq(ev->content, "KB1");
    ck_assert_str_eq(ev->dps[0], "dp1");
    ck_assert_ptr_null(ev->dps[1]);
    ev = g_ptr_array_index(s->events, 1);
    ck_assert_int_eq(ev->action, CM_SCN_ACT_DEPLOY);
    ck_assert_str_eq(ev->content, "KB1");
    ck_assert_str_eq(((CmScnPopulation *)g_ptr_array_index(s->populations, 1))->dp, "dp1");
    ck_assert_ptr_null(((CmScnPopulation *)g_ptr_array_index(s->populations, 0))->dp);
    ck_assert(((CmScnDp *)g_ptr_array_index(s->dps, 2))->tampered);
    ck_assert(!((CmScnDp *)g_ptr_array_index(s->dps, 0))->tampered);

#define DPS MINIMAL "[content KB1]\nsize = 1GB\n"
    expect_refused(DPS "[content KB2]\n", "t.scn: [content KB2] size: missing");
    expect_refused(DPS "[content KB2]\nsize = 2GiG\n", "[content KB2] size: expected a whole "
                                                        "number of bytes",
                   "got \"2GiG\"");
    expect_refused(DPS "[content KB2]\nsize = 0.5B\n", "[content KB2] size: expected");
    expect_refused(DPS "[content KB2]\nsize = 9TiB\n", "[content KB2] size: expected");
    expect_refused(DPS "[content KB2]\nsize = 1GB\nfiles = 0\n", "[content KB2] files:");
    expect_refused(DPS "[dp d]\nhours = 22-22\n", "t.scn: [dp d] hours: expected the hours",
                   "got \"22-22\"");
    expect_refused(DPS "[dp d]\nhours = 25-06\n", "[dp d] hours: expected");
    expect_refused(DPS "[dp d]\nhours = 22\n", "[dp d] hours: expected");
    expect_refused(DPS "[dp d]\nrate_limit = fast\n", "[dp d] rate_limit: expected none or a "
                                                       "bandwidth");
    expect_refused(DPS "[dp d]\nprestaged = yes\n", "[dp d] prestaged:");
    expect_refused(DPS "[dp d]\nprestaged_content = KB1\n",
                   "[dp d] prestaged_content: only a prestaged DP");
    expect_refused(DPS "[dp d]\nprestaged = true\nprestaged_content = KB9\n",
                   "[dp d] prestaged_content: no [content KB9]");
    expect_refused(DPS "[dp d]\nsegment = wan\n", "[dp d] segment: no [segment wan]");
    expect_refused(DPS "[dp d]\nspeed = 1\n", "[dp d] speed: unknown key");
    expect_refused(DPS "[dp d]\n[event e]\nat = 1m\naction = distribute\n",
                   "[event e] content: missing");
    expect_refused(DPS "[dp d]\n[event e]\nat = 1m\naction = distribute\ncontent = KB9\n",
                   "[event e] content: no [content KB9]");
    expect_refused(DPS "[dp d]\n[event e]\nat = 1m\naction = distribute\ncontent = KB1\n"
                       "dps = d, x\n",
                   "[event e] dps: no [dp x]");
    expect_refused(DPS "[event e]\nat = 1m\naction = distribute\ncontent = KB1\n",
                   "[event e] content: site PS1 has no [dp]");
    expect_refused(DPS "[dp d]\n[event e]\nat = 1m\naction = distribute\ncontent = KB1\n"
                       "target = pcs\n",
                   "[event e] target: not used by action distribute");
    expect_refused(DPS "[event e]\nat = 1m\naction = deploy\ncollection = All Systems\n"
                       "content = KB9\n",
                   "[event e] content: no [content KB9]");
    expect_refused(DPS "[dp d]\n[population q]\ncount = 1\ndp = x\n",
                   "[population q] dp: no [dp x]");
    expect_refused(DPS "[dp d]\ntampered = 1\n", "[dp d] tampered:");
#undef DPS
}
END_TEST

/* Client push accounts and the strategies that steal or relay one, and the
 * log-wipe strategy: what the loader keeps and refuses.
 * REQ: CLI-01, CLI-04 */
START_TEST(test_push_and_log_groups)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all = NULL;
    CmScenario *s;
    CmScnPushAccount *a;

#define PUSH "[scenario]\nduration = 1h\n[segment lan]\n[forest corp.example]\n"            \
             "domains = emea.corp.example\n[population pcs]\ncount = 10\n[site PS1]\n"
    all = load(PUSH "push_require_kerberos = true\n[push_account all-of-it]\ndomains = all\n"
                    "[push_account emea]\ndomains = emea.corp.example\n"
                    "[attacker t]\nstrategy = stolen-push-account\naccount = emea\n"
                    "[attacker r]\nstrategy = push-relay\ndomain = corp.example\n"
                    "[event e]\nat = 0\naction = create-collection\ncollection = Done\n"
                    "rules = status.message_id = 10009\n"
                    "[attacker w]\nstrategy = log-wipe\ntarget = pcs\nfraction = 0.5\n"
                    "log_acl = admins-only\ncollection = Done\n",
               &error);
    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    ck_assert(((CmScnSite *)g_ptr_array_index(s->sites, 0))->push_require_kerberos);
    ck_assert_uint_eq(s->push_accounts->len, 2);
    a = g_ptr_array_index(s->push_accounts, 0);
    ck_assert_ptr_null(a->domains); /* all */
    ck_assert_str_eq(a->site, "PS1");
    a = g_ptr_array_index(s->push_accounts, 1);
    ck_assert_str_eq(a->domains[0], "emea.corp.example");
    ck_assert_int_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 0))->strategy,
                     CM_SCN_ATK_STOLEN_PUSH_ACCOUNT);
    ck_assert_int_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 1))->strategy,
                     CM_SCN_ATK_PUSH_RELAY);
    ck_assert_int_eq(((CmScnAttacker *)g_ptr_array_index(s->attackers, 2))->strategy,
                     CM_SCN_ATK_LOG_WIPE);

    expect_refused(PUSH "[push_account p]\n", "t.scn: [push_account p] domains: missing");
    expect_refused(PUSH "[push_account p]\ndomains = all, corp.example\n",
                   "[push_account p] domains: all stands alone");
    expect_refused(PUSH "[push_account p]\ndomains = vendor.example\n",
                   "[push_account p] domains: no [forest or domain vendor.example]");
    expect_refused(PUSH "push_require_kerberos = yes\n", "[site PS1] push_require_kerberos:");
    expect_refused(PUSH "[attacker t]\nstrategy = stolen-push-account\n",
                   "[attacker t] account: missing");
    expect_refused(PUSH "[push_account p]\ndomains = all\n"
                        "[attacker t]\nstrategy = stolen-push-account\naccount = q\n",
                   "[attacker t] account: no [push_account q]");
    expect_refused(PUSH "[attacker r]\nstrategy = push-relay\n",
                   "[attacker r] strategy: push-relay waits for the site to push");
    expect_refused(PUSH "[push_account p]\ndomains = all\n"
                        "[attacker r]\nstrategy = push-relay\ndomain = x.example\n",
                   "[attacker r] domain: no [forest or domain x.example]");
    expect_refused(PUSH "[attacker w]\nstrategy = log-wipe\ncollection = All Systems\n",
                   "[attacker w] target: missing");
    expect_refused(PUSH "[attacker w]\nstrategy = log-wipe\ntarget = pcs\n",
                   "[attacker w] collection: missing");
    expect_refused(PUSH "[attacker w]\nstrategy = log-wipe\ntarget = pcs\n"
                        "collection = All Systems\nfraction = 1.5\n",
                   "[attacker w] fraction: expected a number above 0, at most 1, got \"1.5\"");
    expect_refused(PUSH "[attacker w]\nstrategy = log-wipe\ntarget = pcs\n"
                        "collection = All Systems\nlog_acl = everyone\n",
                   "[attacker w] log_acl: expected users-write or admins-only");
#undef PUSH
}
END_TEST

START_TEST(test_error_unknown_key)
{
    expect_refused(MINIMAL "key_storag = tpm2\n",
                   "t.scn: [population pcs] key_storag: unknown key; did you mean key_storage?");
    expect_refused(MINIMAL "[segment x]\ncolour = blue\n",
                   "t.scn: [segment x] colour: unknown key; expected latency or bandwidth");
    expect_refused(MINIMAL "frobnicate = 1\n",
                   "[population pcs] frobnicate: unknown key; expected count",
                   "or inventory.<name>");
    expect_refused("[scenario]\nduration = 1h\nseeds = 3\n[site PS1]\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "t.scn: [scenario] seeds: unknown key; did you mean seed?");
    expect_refused(MINIMAL "inventory. = x\n", "[population pcs] inventory.: unknown key");
    /* a key the action does not read */
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = deploy\ncollection = All Systems\n"
                           "target = pcs\n",
                   "t.scn: [event e] target: not used by action deploy; it takes site, "
                   "collection, required, max_runtime or content");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = maintenance\nfraction = 0.5\n",
                   "[event e] fraction: not used by action maintenance; it takes site");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = take-over-mp\ntarget = pcs\nsite = PS1\n",
                   "[event e] site: not used by action take-over-mp");
    expect_refused(MINIMAL "[attacker a]\nstrategy = enrollment-flood\nrate = 5\ntarget = pcs\n",
                   "[attacker a] target: not used by strategy enrollment-flood");
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = enrollment-flood\nrate = 5\nmp = m\n",
                   "[attacker a] mp: not used by strategy enrollment-flood");
    expect_refused(MINIMAL "[costs]\nsite.regster = 1ms\n",
                   "t.scn: [costs] site.regster: expected a key ROLE.ENDPOINT with ROLE site or mp",
                   "register");
    expect_refused(MINIMAL "[costs]\ndp.register = 1ms\n", "[costs] dp.register: expected a key");
    expect_refused(MINIMAL "[costs]\nregister = 1ms\n", "[costs] register: expected a key");
}
END_TEST

START_TEST(test_error_values)
{
    /* durations */
    expect_refused("[scenario]\nduration = 6 hours\n[site PS1]\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "t.scn: [scenario] duration: expected a duration such as 90s", "\"6 hours\"");
    expect_refused(MINIMAL "start = -5m\n",
                   "t.scn: [population pcs] start: expected a duration of 0 or more, got \"-5m\"");
    expect_refused(MINIMAL "start = 2h\n",
                   "[population pcs] start: expected a duration from 0 to 1h, got \"2h\"");
    expect_refused(MINIMAL "policy_interval = 0\n",
                   "[population pcs] policy_interval: expected a duration from 1s to 3650d");
    expect_refused(MINIMAL "start = 99999999999999999999d\n",
                   "[population pcs] start: duration \"99999999999999999999d\" is too large");
    expect_refused("[scenario]\nduration = 7d\nsample = 1s\n[site PS1]\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "[scenario] sample: too small: a run has at most 100000 samples, so at least "
                   "6048ms");
    /* enums and booleans */
    expect_refused(MINIMAL "key_storage = tmp2\n",
                   "t.scn: [population pcs] key_storage: expected tpm2, tpm1 or software, got "
                   "\"tmp2\"");
    expect_refused(MINIMAL "pki = yes\n", "[population pcs] pki: expected true or false, got "
                                          "\"yes\"");
    expect_refused(MINIMAL "install = floppy\n",
                   "[population pcs] install: expected manual, push, gpo, sup or image, got "
                   "\"floppy\"");
    expect_refused(MINIMAL "trk = dns\n",
                   "[population pcs] trk: expected directory, push, property or none, got \"dns\"");
    expect_refused(MINIMAL "key_alg = ed25519\n",
                   "[population pcs] key_alg: expected p256 or rsa2048, got \"ed25519\"");
    expect_refused("[scenario]\nduration = 1h\ncrypto = fake\n[site PS1]\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "[scenario] crypto: expected real or model, got \"fake\"");
    expect_refused(MINIMAL "[site PS2]\ncommunication = https\n",
                   "t.scn: [site PS2] communication: expected https-only, http-or-https or ehttp, "
                   "got \"https\"");
    expect_refused(MINIMAL "[site PS2]\napproval = auto\n",
                   "[site PS2] approval: expected manual, trusted-domains or all");
    expect_refused(MINIMAL "[site PS2]\nconflicts = ignore\n",
                   "[site PS2] conflicts: expected merge, new-record or block");
    expect_refused(MINIMAL "[site PS2]\ndiscovery_retention = 36h\n",
                   "[site PS2] discovery_retention: expected whole days");
    expect_refused(MINIMAL "[site PS2]\nrequire_signing = 1\n",
                   "[site PS2] require_signing: expected true or false, got \"1\"");
    expect_refused(MINIMAL "[forest f]\n[trust f g]\n", "[trust f g]: no [forest g] is declared");
    expect_refused(MINIMAL "[forest f]\n[forest g]\n[trust f g]\nkind = mutual\n",
                   "[trust f g] kind: expected none, one-way or two-way, got \"mutual\"");
    /* numbers */
    expect_refused(MINIMAL "[site PS2]\nworkers = 0\n",
                   "[site PS2] workers: expected a whole number from 1 to 1024, got \"0\"");
    expect_refused("[scenario]\nduration = 1h\n[site PS1]\n[segment lan]\n[population p]\n"
                   "count = 1e3\n",
                   "[population p] count: expected a whole number from 1 to 100000000, got "
                   "\"1e3\"");
    expect_refused("[scenario]\nduration = 1h\nseed = -1\n[site PS1]\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "[scenario] seed: expected a whole number");
    expect_refused(MINIMAL "[segment x]\nbandwidth = 1GB\n",
                   "[segment x] bandwidth: expected a bandwidth above 0", "got \"1GB\"");
    expect_refused(MINIMAL "[segment x]\nbandwidth = 0Mbps\n", "[segment x] bandwidth:");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = block\ntarget = pcs\nfraction = 0\n",
                   "[event e] fraction: expected a number above 0 and at most 1, got \"0\"");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = block\ntarget = pcs\nfraction = 1.5\n",
                   "[event e] fraction:");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = block\ntarget = pcs\nfraction = nan\n",
                   "[event e] fraction:");
    expect_refused(MINIMAL "[attacker a]\nstrategy = status-flood\nrate = 0\n[mp m]\n",
                   "[attacker a] rate: expected a rate above 0 for status-flood");
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = status-flood\n",
                   "[attacker a] rate: missing");
    expect_refused(MINIMAL "[attacker a]\nstrategy = dos\n",
                   "[attacker a] strategy: expected rogue-mp, compromised-mp, status-flood");
    expect_refused(MINIMAL "[attacker a]\nstrategy = cloned-image\ntarget = pcs\n"
                           "start = 30m\nstop = 10m\n",
                   "[attacker a] stop: expected a time after start");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = reboot\n",
                   "[event e] action: expected upgrade-client, block");
    expect_refused(MINIMAL "[event e]\naction = maintenance\n", "[event e] at: missing");
    expect_refused(MINIMAL "[event e]\nat = 1m\n", "[event e] action: missing; expected");
    /* text */
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = set\nsettings = approval\n",
                   "[event e] settings: expected KEY = VALUE, got \"approval\"");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = set\nsettings = colour = red\n",
                   "[event e] settings: \"colour = red\" is no site setting");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = set\nsettings = approval = some\n",
                   "[event e] settings: approval: expected manual, trusted-domains or all");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = set\n", "[event e] settings: missing");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = create-collection\n"
                           "rules = inventory.ou == x\n",
                   "[event e] rules: collection rule \"inventory.ou == x\"");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = create-collection\n",
                   "[event e] rules: missing");
    expect_refused(MINIMAL "description = a\\nb\n[scenario]\n", "the group appears twice");
    expect_refused("[scenario]\nduration = 1h\ndescription = a\\nb\n[site PS1]\n[segment lan]\n"
                   "[population p]\ncount = 1\n",
                   "[scenario] description: holds a control character");
    expect_refused(MINIMAL "[forest f]\ndomains = a.f, , b.f\n",
                   "[forest f] domains: an empty item in the list");
}
END_TEST

START_TEST(test_error_references)
{
    expect_refused(MINIMAL "[mp m]\nsite = PS9\n", "t.scn: [mp m] site: no [site PS9] is declared");
    expect_refused(MINIMAL "[mp m]\nsegment = dmz\n",
                   "t.scn: [mp m] segment: no [segment dmz] is declared");
    expect_refused(MINIMAL "[link lan dmz]\n", "t.scn: [link lan dmz]: no [segment dmz] is "
                                               "declared");
    expect_refused(MINIMAL "[population q]\ncount = 1\nmp = mp9\n",
                   "[population q] mp: no [mp mp9] is declared");
    expect_refused(MINIMAL "[population q]\ncount = 1\nforest = f\n",
                   "[population q] forest: no [forest f] is declared");
    expect_refused(MINIMAL "[population q]\ncount = 1\nsite_code = PS2\n",
                   "[population q] site_code: no [site PS2] is declared");
    expect_refused(MINIMAL "[forest f]\n[forest g]\n",
                   "[site PS1] forest: missing; 2 [forest] groups are declared, so name the site "
                   "server's");
    expect_refused("[scenario]\nduration = 1h\n[site PS1]\nforest = f\n[segment lan]\n"
                   "[forest f]\n[forest g]\n[population q]\ncount = 1\n",
                   "[population q] forest: missing; 2 [forest] groups are declared, so name one, "
                   "or set workgroup = true");
    expect_refused(MINIMAL "[forest f]\ndomains = a.f\n[population q]\ncount = 1\ndomain = b.f\n",
                   "[population q] domain: \"b.f\" is not a domain of forest f");
    expect_refused(MINIMAL "[forest f]\ndomains = a\n[forest g]\ndomains = a\n",
                   "[forest g] domains: a is already a domain of forest f");
    expect_refused(MINIMAL "[segment x]\n",
                   "[site PS1] segment: missing; 2 [segment] groups are declared, so name one");
    expect_refused("[scenario]\nduration = 1h\n[site PS1]\nsegment = lan\n[segment lan]\n"
                   "[segment x]\n[population q]\ncount = 1\n",
                   "[population q] segment: missing; 2 [segment] groups are declared");
    expect_refused(MINIMAL "[site PS2]\n[mp m]\n", "[mp m] site: missing; 2 [site] groups");
    expect_refused(MINIMAL "[site PS2]\npublish_to = f\n",
                   "[site PS2] publish_to: no [forest f] is declared");
    /* events */
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = block\ntarget = desktops\n",
                   "t.scn: [event e] target: no [population desktops] is declared");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = block\n",
                   "[event e] target: missing; expected the name of a [population]");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = take-over-mp\ntarget = pcs\n",
                   "[event e] target: no [mp pcs] is declared");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = publish\ntarget = f\n",
                   "[event e] target: no [forest f] is declared");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = deploy\ncollection = Finance\n",
                   "t.scn: [event e] collection: no create-collection event makes collection "
                   "Finance at site PS1");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = deploy\ncollection = Finance\n"
                           "[event c]\nat = 2m\naction = create-collection\ncollection = Finance\n"
                           "rules = inventory.ou = Finance\n",
                   "[event e] collection: collection Finance is created only after this event");
    expect_refused(MINIMAL "[event c]\nat = 1m\naction = create-collection\n"
                           "collection = All Systems\nrules = inventory.ou = x\n",
                   "[event c] collection: site PS1 already has a collection named All Systems");
    expect_refused(MINIMAL "[event e]\nat = 1m\naction = maintenance\nsite = PS2\n",
                   "[event e] site: no [site PS2] is declared");
    /* attackers */
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = cloned-image\n",
                   "[attacker a] target: missing; cloned-image needs the [population]");
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = policy-replay\ntarget = x\n",
                   "[attacker a] target: no [population x] is declared");
    expect_refused(MINIMAL "[attacker a]\nstrategy = compromised-mp\n",
                   "[attacker a] mp: missing, and there is no [mp] to default to");
    expect_refused(MINIMAL "[mp m]\n[mp n]\n[attacker a]\nstrategy = compromised-mp\n",
                   "[attacker a] mp: missing; 2 [mp] groups are declared");
    expect_refused(MINIMAL "[attacker a]\nstrategy = false-inventory\ntarget = pcs\n"
                           "collection = HR\n",
                   "[attacker a] collection: no create-collection event makes collection \"HR\"");
    expect_refused(MINIMAL "[attacker a]\nstrategy = false-inventory\n",
                   "[attacker a] target: missing; false-inventory needs the [population]");
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = policy-replay\ndeployment = x\n",
                   "[attacker a] deployment: expected the name of a deploy [event], got \"x\"");
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = cloned-image\ntarget = pcs\n"
                           "mp = m\n",
                   "[attacker a] mp: not used by strategy cloned-image");
    expect_refused(MINIMAL "[attacker a]\nstrategy = rogue-mp\ntarget = pcs\n",
                   "[attacker a] mp: missing; rogue-mp needs the host name of its own MP");
    expect_refused(MINIMAL "[mp m]\n[attacker a]\nstrategy = rogue-mp\ntarget = pcs\nmp = m\n",
                   "[attacker a] mp: m is a declared [mp]");
    expect_refused(MINIMAL "[attacker a]\nstrategy = rogue-mp\nmp = evil\n",
                   "[attacker a] target: missing; rogue-mp needs the [population]");
    expect_refused(MINIMAL "[attacker a]\nstrategy = rogue-mp\nsegment = dmz\n",
                   "[attacker a] segment: no [segment dmz] is declared");
    /* population consistency */
    expect_refused(MINIMAL "[forest f]\n[population q]\ncount = 1\nforest = f\nworkgroup = true\n",
                   "[population q] forest: a workgroup population has no forest");
    expect_refused(MINIMAL "[population q]\ncount = 1\nworkgroup = true\nkerberos = true\n",
                   "[population q] kerberos: a workgroup computer has no domain account");
    expect_refused(MINIMAL "[population q]\ncount = 1\ntrk = push\n",
                   "[population q] trk: push needs install = push");
    expect_refused(MINIMAL "[population q]\ncount = 1\nworkgroup = true\ntrk = directory\n",
                   "[population q] trk: directory publishing needs a forest");
    expect_refused(MINIMAL "[forest f]\n[population q]\ncount = 1\nsigncert = directory\n",
                   "t.scn: [population q] signcert: directory publishing, but no site publishes "
                   "to forest f");
}
END_TEST

/* Directory publishing counts when a publish event does it later. */
START_TEST(test_publish_event_counts)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) all =
        load(MINIMAL "[forest f]\n[population q]\ncount = 1\ntrk = directory\nsigncert = mp\n"
                     "[event pub]\nat = 10m\naction = publish\ntarget = f\n",
             &error);

    cm_assert_no_error(error);
    ck_assert_int_eq(((CmScnPopulation *)g_ptr_array_index(
                          ((CmScenario *)g_ptr_array_index(all, 0))->populations, 1))
                         ->signcert,
                     CM_SCN_SOURCE_NONE);
}
END_TEST

START_TEST(test_error_expect)
{
    expect_refused(MINIMAL "[expect]\nregistrations.completed_ratio >= 0.999\n",
                   "t.scn: [expect] registrations.completed_ratio >: expected NAME = ");
    expect_refused(MINIMAL "[expect]\nok = registrations.completed_ratio\n",
                   "t.scn: [expect] ok: expected \"METRIC OP NUMBER [when VARIANT = VALUE]\"");
    expect_refused(MINIMAL "[expect]\nok = x = 1\n", "[expect] ok: expected",
                   "(write == for "
                   "equality)");
    expect_refused(MINIMAL "[expect]\nok = x => 1\n", "[expect] ok: expected",
                   "(write == for equality)");
    expect_refused(MINIMAL "[expect]\nok = x >= many\n", "[expect] ok: expected a number after >=");
    expect_refused(MINIMAL "[expect]\nok = x >= 5 apples\n",
                   "[expect] ok: expected \"when VARIANT = VALUE\" or nothing after the number");
    expect_refused(MINIMAL "[expect]\nok = x >= 5kg\n",
                   "[expect] ok: expected a plain number, a percentage (99.9%) or a duration");
    expect_refused(MINIMAL "[expect]\nok = bad metric >= 5\n", "[expect] ok: expected a metric "
                                                               "name");
    expect_refused(MINIMAL "[expect]\nok = >= 5\n", "[expect] ok: expected");
    expect_refused(MINIMAL "[expect]\nok = x >= inf\n", "[expect] ok: expected a number");
    expect_refused(MINIMAL "[expect]\nok = x >= 5 when window = 2h\n",
                   "[expect] ok: when names variant \"window\", but the file has no [variant]");
    expect_refused(MINIMAL "[expect]\nok = x >= 5 when windw = 2h\n[variant]\nwindow = 0, 2h\n"
                           "approval = all\n",
                   "[expect] ok: when names variant \"windw\", but [variant] declares window or "
                   "approval");
    expect_refused(MINIMAL "[expect]\nok = x >= 5 when window = 3h\n[variant]\nwindow = 0, 2h\n",
                   "[expect] ok: variant window has no value \"3h\"; its values are 0 or 2h");
    expect_refused(MINIMAL "[expect]\nok = x >= 5 when window\n[variant]\nwindow = 0, 2h\n",
                   "[expect] ok: expected \"when VARIANT = VALUE\"");
}
END_TEST

/* ------------------------------------------------------------ the reference */

/* The examples of docs/scenarios.md stay valid: the first alone, the
 * [variant] and [expect] ones together in a small context, and every other
 * one together, as one scenario. */
/* A hierarchy's shape is checked at load: parents exist, primaries go
 * below the top-level site and secondaries below primaries, child keys
 * need a parent, a link event names a child.  REQ: NET-05 */
START_TEST(test_error_hierarchy)
{
#define HIER "[scenario]\nduration = 1h\n[segment lan]\n[population pcs]\ncount = 1\n" \
             "[site CAS]\ntop_level = true\n"
    GError *error = NULL;
    GPtrArray *all = load(HIER "[site P01]\nparent = cas\nreplication_interval = 1m\n"
                               "[site S01]\nparent = P01\nkind = secondary\n"
                               "[event cut]\nat = 1m\naction = link-down\ntarget = S01\n",
                          &error);
    CmScenario *s;
    CmScnSite *p01, *s01;

    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    p01 = g_ptr_array_index(s->sites, 1);
    s01 = g_ptr_array_index(s->sites, 2);
    ck_assert_str_eq(p01->parent, "CAS");
    ck_assert_int_eq(p01->kind, CM_SITE_KIND_PRIMARY);
    ck_assert_int_eq(p01->repl_interval, CM_USEC_PER_MIN);
    ck_assert_int_eq(s01->kind, CM_SITE_KIND_SECONDARY);
    ck_assert_int_eq(s01->repl_interval, 5 * CM_USEC_PER_MIN);
    ck_assert_int_eq(s01->repl_batch, 1000);
    g_ptr_array_unref(all);
    expect_refused(HIER "[site P01]\nparent = XYZ\n", "[site P01] parent: no [site XYZ]");
    expect_refused(HIER "[site P01]\nparent = P01\n", "cannot be its own parent");
    expect_refused(HIER "[site P01]\nparent = CAS\nkind = secondary\n",
                   "[site P01] kind: below the top-level site CAS a child is a primary");
    expect_refused(HIER "[site P01]\nparent = CAS\n[site P02]\nparent = P01\n",
                   "[site P02] kind: below the child primary P01 a child is a secondary");
    expect_refused(HIER "[site P01]\nparent = CAS\n[site S01]\nparent = P01\nkind = secondary\n"
                        "[site S02]\nparent = S01\nkind = secondary\n",
                   "[site S02] parent: a child of S01");
    expect_refused(HIER "[site PS2]\nreplication_interval = 1m\n",
                   "[site PS2] replication_interval: only for a child site");
    expect_refused(HIER "[site P01]\nparent = CAS\nkind = central\n", "[site P01] kind:");
    expect_refused(HIER "[site P01]\nparent = CAS\n"
                        "[event cut]\nat = 1m\naction = link-down\ntarget = CAS\n",
                   "[event cut] target: site CAS has no parent");
#undef HIER
}
END_TEST

/* A CMG and its connection points: defaults, references resolved, the
 * population that goes through it, the events that fail and recover a
 * connection point; and every bad value refused naming its group and key.
 * REQ: CMG-03, CMG-07, CMG-08 */
START_TEST(test_cmg_groups)
{
#define CMGB "[scenario]\nduration = 6h\n[segment lan]\n[segment cloud]\n[site PS1]\nsegment = lan\n" \
             "[mp mp1]\nsite = PS1\n[mp mp2]\nsite = PS1\n[population pcs]\ncount = 1\nsegment = lan\n"
    GError *error = NULL;
    GPtrArray *all = load(CMGB "[cmg cmg.contoso.example]\nsegment = cloud\ncrl_check = true\n"
                               "crl_published = false\n"
                               "[connection_point cp1]\nmps = mp2\n[connection_point cp2]\n"
                               "[population net]\ncount = 3\nsegment = lan\npki = true\ncmg = cmg.contoso.example\n"
                               "[population tok]\ncount = 3\nsegment = lan\ncmg = cmg.contoso.example\n"
                               "[event f]\nat = 1h\naction = fail-connection-point\ntarget = cp2\n"
                               "[event r]\nat = 2h\naction = recover-connection-point\n"
                               "target = cp2\n",
                          &error);
    CmScenario *s;
    CmScnCmg *c;
    CmScnConnectionPoint *cp1, *cp2;
    CmScnPopulation *net, *tok;
    CmScnEvent *f, *r;

    cm_assert_no_error(error);
    s = g_ptr_array_index(all, 0);
    ck_assert_uint_eq(s->cmgs->len, 1);
    c = g_ptr_array_index(s->cmgs, 0);
    ck_assert_str_eq(c->site, "PS1");
    ck_assert_str_eq(c->segment, "cloud");
    ck_assert_int_eq(c->instances, 2);
    ck_assert_int_eq(c->workers, 16);
    ck_assert_int_eq(c->tls_min, CM_TLS_1_2);
    ck_assert(c->crl_check && !c->crl_published);
    cp1 = g_ptr_array_index(s->cps, 0);
    cp2 = g_ptr_array_index(s->cps, 1);
    ck_assert_str_eq(cp1->cmg, "cmg.contoso.example");
    ck_assert_str_eq(cp1->segment, "lan"); /* the site's */
    ck_assert_uint_eq(g_strv_length(cp1->mps), 1);
    ck_assert_str_eq(cp1->mps[0], "mp2");
    ck_assert_uint_eq(g_strv_length(cp2->mps), 2); /* every MP of the site */
    net = g_ptr_array_index(s->populations, 1);
    tok = g_ptr_array_index(s->populations, 2);
    ck_assert_str_eq(net->cmg, "cmg.contoso.example");
    ck_assert(!net->cmg_token);
    ck_assert(tok->cmg_token); /* no certificate: a token */
    ck_assert_int_eq(net->keepalive_interval, 0); /* the CMG carries no channel */
    f = g_ptr_array_index(s->events, 0);
    r = g_ptr_array_index(s->events, 1);
    ck_assert_int_eq(f->action, CM_SCN_ACT_FAIL_CP);
    ck_assert_int_eq(r->action, CM_SCN_ACT_RECOVER_CP);
    ck_assert_str_eq(r->target, "cp2");
    g_ptr_array_unref(all);

    expect_refused(CMGB "[cmg bad name]\n", "[cmg bad name]");
    expect_refused(CMGB "[cmg g1]\ninstances = 17\n", "[cmg g1] instances:");
    expect_refused(CMGB "[cmg g1]\ntls_min = 1.1\n", "[cmg g1] tls_min:");
    expect_refused(CMGB "[cmg g1]\ncrl_check = maybe\n", "[cmg g1] crl_check:");
    expect_refused(CMGB "[cmg g1]\nsegment = moon\n", "[cmg g1] segment: no [segment moon]");
    expect_refused(CMGB "[cmg g1]\ncolour = blue\n", "[cmg g1] colour:");
    expect_refused(CMGB "[connection_point cp1]\n", "[connection_point cp1] cmg: missing");
    expect_refused(CMGB "[cmg g1]\n[connection_point cp1]\ncmg = g2\n",
                   "[connection_point cp1] cmg: no [cmg g2]");
    expect_refused(CMGB "[cmg g1]\n[connection_point cp1]\nmps = mp9\n",
                   "[connection_point cp1] mps: no [mp mp9]");
    expect_refused(CMGB "[site PS2]\nsegment = lan\n[mp mp3]\nsite = PS2\n[cmg g1]\nsite = PS1\n"
                        "[connection_point cp1]\nmps = mp3\n",
                   "[connection_point cp1] mps: mp3 belongs to site PS2");
    expect_refused(CMGB "[population net]\ncount = 1\nsegment = lan\ncmg = g9\n",
                   "[population net] cmg: no [cmg g9]");
    expect_refused(CMGB "[cmg g1]\n[connection_point c]\n[population net]\ncount = 1\n"
                        "segment = lan\ncmg = g1\ncmg_auth = pki\n",
                   "[population net] cmg_auth: pki needs pki = true");
    expect_refused(CMGB "[cmg g1]\n[population net]\ncount = 1\nsegment = lan\ncmg = g1\n",
                   "[population net] cmg: CMG g1 has no [connection_point]");
    expect_refused(CMGB "[cmg g1]\n[connection_point c]\n[population net]\ncount = 1\n"
                        "segment = lan\ncmg = g1\ncmg_auth = kerberos\n",
                   "[population net] cmg_auth:");
    expect_refused(CMGB "[population net]\ncount = 1\nsegment = lan\ncmg_auth = token\n",
                   "[population net] cmg_auth: only for clients of a CMG");
    expect_refused(CMGB "[cmg g1]\n[connection_point c]\n[population net]\ncount = 1\n"
                        "segment = lan\ncmg = g1\nkeepalive_interval = 15m\n",
                   "[population net] keepalive_interval: a CMG does not carry");
    expect_refused(CMGB "[event f]\nat = 1h\naction = fail-connection-point\ntarget = cp9\n",
                   "[event f] target: no [connection_point cp9]");
    expect_refused(CMGB "[cmg g1]\n[connection_point cp1]\n"
                        "[event f]\nat = 1h\naction = fail-connection-point\n",
                   "[event f] target: missing");
    expect_refused(CMGB "[costs]\ncmg.bogus = 1ms\n", "[costs] cmg.bogus:");
#undef CMGB
}
END_TEST

/* A small world with a CMG, run: each connection point checks every
 * instance every minute and reports its traffic every five minutes; the
 * gateway spreads requests evenly, keeps routing to a failed connection
 * point only until its checks lapse (losing those requests in flight),
 * and gives it its share again once it recovered.  REQ: CMG-07, CMG-08 */
START_TEST(test_cmg_run)
{
    static const char text[] =
        "[scenario]\nduration = 90m\nseed = 5\n"
        "[segment corp]\n[segment net]\nlatency = 20ms\n[segment cloud]\n"
        "[link net cloud]\nlatency = 10ms\n[link corp cloud]\nlatency = 10ms\none_way = true\n"
        "[forest corp.example]\n[site PS1]\nsegment = corp\ncommunication = ehttp\n"
        "[mp mp1]\nsite = PS1\nsegment = corp\n"
        "[cmg gw.example]\nsegment = cloud\n"
        "[connection_point cp1]\n[connection_point cp2]\n"
        "[population net]\ncount = 12\nsegment = net\nworkgroup = true\npki = true\n"
        "site_code = PS1\ntrk = property\ncmg = gw.example\npolicy_interval = 1m\n"
        "[event f]\nat = 30m\naction = fail-connection-point\ntarget = cp2\n"
        "[event r]\nat = 60m\naction = recover-connection-point\ntarget = cp2\n";
    GError *error = NULL;
    GPtrArray *all = load(text, &error);
    g_autoptr(CmRun) run = NULL;
    double v;

    cm_assert_no_error(error);
    run = cm_sim_run_scenario(g_ptr_array_index(all, 0), NULL, &error);
    cm_assert_no_error(error);
#define M(name) (ck_assert_msg(cm_run_metric(run, (name), &v), "no metric %s", (name)), v)
    ck_assert_double_eq(M("pop.net.active_ratio"), 1);
    /* Two instances, a check each a minute: 89 or 90 rounds in 90 minutes. */
    ck_assert_double_ge(M("cp.cp1.checks"), 2 * 89);
    ck_assert_double_le(M("cp.cp1.checks"), 2 * 90);
    ck_assert_double_ge(M("cp.cp1.traffic_reports"), 17);
    ck_assert_double_le(M("cp.cp1.traffic_reports"), 18);
    ck_assert_double_le(M("cmg.cp_share_max_deviation"), 0.05);
    /* The last check came at most a minute before the failure; the gateway
     * gives up 150 s after it. */
    ck_assert_double_ge(M("cp.cp2.lapse_time"), 90);
    ck_assert_double_le(M("cp.cp2.lapse_time"), 150 + 60);
    ck_assert_double_gt(M("cp.cp2.lost_in_flight"), 0);
    ck_assert_double_eq(M("cp.cp2.outage_share"), 0);
    ck_assert_double_ge(M("cp.cp2.recovered_share"), 0.45);
    ck_assert_double_le(M("cp.cp2.recovered_share"), 0.55);
    ck_assert_double_ge(M("cp.cp2.reconnects"), 2); /* both instances again */
    ck_assert_double_eq(M("cmg.lost_in_flight"), M("cp.cp2.lost_in_flight"));
    ck_assert_double_eq(M("cmg.lost_in_flight"), M("cmg.busy"));
#undef M
    g_ptr_array_unref(all);
}
END_TEST

START_TEST(test_docs_examples)
{
    const char *top = g_getenv("top_srcdir");
    g_autofree char *dir = top != NULL ? g_strdup(top) : g_path_get_dirname(__FILE__);
    g_autofree char *path = top != NULL
                                ? g_build_filename(dir, "docs", "scenarios.md", NULL)
                                : g_build_filename(dir, "..", "..", "docs", "scenarios.md", NULL);
    g_autofree char *doc = NULL;
    g_auto(GStrv) parts = NULL;
    GString *rest = g_string_new(NULL);
    GString *vars = g_string_new("[scenario]\nduration = 6h\n[segment lan]\n"
                                 "[forest corp.example]\n[event pub]\nat = 0\n"
                                 "action = publish\ntarget = corp.example\n");
    GError *error = NULL;
    GPtrArray *all;
    guint blocks = 0;

    ck_assert_msg(g_file_get_contents(path, &doc, NULL, &error), "%s", error ? error->message : "");
    parts = g_strsplit(doc, "```ini\n", -1);
    for (char **p = parts + 1; *p != NULL; p++, blocks++) {
        char *end = strstr(*p, "```");
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        if (blocks == 0) {
            all = load(*p, &error);
            cm_assert_no_error(error);
            ck_assert_uint_eq(all->len, 2);
            g_ptr_array_unref(all);
        } else if (strstr(*p, "[variant]") != NULL || strstr(*p, "[expect]") != NULL) {
            g_string_append(vars, *p);
        } else {
            g_string_append(rest, *p);
        }
    }
    ck_assert_uint_ge(blocks, 10);
    all = load(rest->str, &error);
    cm_assert_no_error(error);
    g_ptr_array_unref(all);
    all = load(vars->str, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(all->len, 9);
    g_ptr_array_unref(all);
    g_string_free(rest, TRUE);
    g_string_free(vars, TRUE);
}
END_TEST

/* ------------------------------------------------------------ memory */

/* Every error path frees what it built: the sanitizer build runs the
 * error tests above under LeakSanitizer; this one also loads and frees
 * many variants repeatedly. */
START_TEST(test_no_leaks_repeated)
{
    for (int i = 0; i < 20; i++) {
        GError *error = NULL;
        GPtrArray *all = load_file("v.scn", variant_text, 1.0, &error);
        cm_assert_no_error(error);
        g_ptr_array_unref(all);
        all = load(full_text, &error);
        cm_assert_no_error(error);
        g_ptr_array_unref(all);
    }
}
END_TEST

static Suite *
scenario_suite(void)
{
    Suite *s = suite_create("scenario");
    TCase *ok = tcase_create("valid");
    TCase *bad = tcase_create("errors");

    tcase_add_checked_fixture(ok, setup, teardown);
    tcase_add_test(ok, test_full);
    tcase_add_test(ok, test_defaults);
    tcase_add_test(ok, test_variants);
    tcase_add_test(ok, test_variant_exactly_64);
    tcase_add_test(ok, test_scale);
    tcase_add_test(ok, test_durations);
    tcase_add_test(ok, test_helpers);
    tcase_add_test(ok, test_publish_event_counts);
    tcase_add_test(ok, test_docs_examples);
    tcase_add_test(ok, test_cmg_run);
    tcase_add_test(ok, test_no_leaks_repeated);
    suite_add_tcase(s, ok);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, test_error_file);
    tcase_add_test(bad, test_error_structure);
    tcase_add_test(bad, test_error_unknown_key);
    tcase_add_test(bad, test_error_values);
    tcase_add_test(bad, test_error_references);
    tcase_add_test(bad, test_content_groups);
    tcase_add_test(bad, test_push_and_log_groups);
    tcase_add_test(bad, test_error_hierarchy);
    tcase_add_test(bad, test_cmg_groups);
    tcase_add_test(bad, test_error_expect);
    tcase_add_test(bad, test_variant_error_names_combination);
    tcase_add_test(bad, test_variant_limits);
    suite_add_tcase(s, bad);
    return s;
}

int
main(void)
{
    return cm_test_main(scenario_suite());
}
