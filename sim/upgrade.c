/* upgrade.c - automatic client upgrade in the simulator (REQ POL-05).
 *
 * Every MP publishes the site's production client package: the site's
 * client version (cm_site_client_version), the one its clients run, so a
 * genuine MP upgrades no one until the site is upgraded.  The attacker's
 * package is a newer version with its own content hash, downloaded from a
 * host of its own.  It reaches clients two ways:
 *
 *   take-over-mp (event)   the MP it controls publishes the attacker's
 *                          package instead; every client that asks that MP
 *                          installs it, whatever trust it holds in the
 *                          site (a TRK, a signing certificate from a
 *                          trusted source, PKI): nothing of the package is
 *                          signed by the site.
 *   rogue-upgrade          its own upgrade source, on the path of its
 *   (attacker strategy)    target clients to their MP (DNS or ARP
 *                          spoofing): it answers their client package
 *                          downloads and nothing else.  Only plain HTTP
 *                          lands: over HTTPS and Enhanced HTTP the MP's
 *                          server certificate is checked and a host that
 *                          is not the MP fails the handshake, so those
 *                          downloads are left on their way.
 *
 * What each client installed is its agent's status (upgrade_hash): a
 * package that is not the site's is the attacker's. */
#include "software.h"

#include <stdarg.h>
#include <string.h>

/* Newer than any genuine client: the attacker's. */
#define ROGUE_VERSION "5.00.9999.1000"
#define TAKE_OVER_HOST "upgrade.attacker.example"
#define CCMSETUP_PATH "/CCM_Client/ccmsetup.exe"

/* The lower-case hex SHA-256 of what stands for a package's content. */
static void
package_hash(const char *content, char out[65])
{
    guint8 h[32];
    g_autofree char *hex = NULL;

    cm_hash(CM_HASH_SHA256, content, strlen(content), h);
    hex = cm_enc_hex(h, sizeof h);
    for (int i = 0; i < 64; i++)
        out[i] = g_ascii_tolower(hex[i]);
    out[64] = '\0';
}

/* What stands for the content of the site's client of that version. */
static char *
genuine_content(const char *version)
{
    return g_strdup_printf("cmlab client %s", version);
}

static void
set_package(SimMp *m, const char *version, const char *host, const char *content)
{
    g_autofree char *url = g_strdup_printf("http://%s" CCMSETUP_PATH, host);
    char hash[65];
    CmMpClientPackage pkg = {.version = version, .url = url, .hash = hash};
    GError *error = NULL;

    package_hash(content, hash);
    if (!cm_mp_set_client_package(m->mp, &pkg, &error)) {
        g_warning("%s: %s", m->scn->name, error->message); /* a bug here, not in a scenario */
        g_error_free(error);
    }
}

void
sim_upgrade_publish(SimWorld *w, SimMp *m)
{
    g_autofree char *version = cm_site_client_version(m->site->site);
    g_autofree char *content = genuine_content(version);

    (void)w;
    set_package(m, version, m->scn->name, content);
}

void
sim_upgrade_take_over(SimWorld *w, SimMp *m)
{
    (void)w;
    set_package(m, ROGUE_VERSION, TAKE_OVER_HOST, "take-over-mp payload");
}

/* ------------------------------------------------------- rogue-upgrade */

/* The attacker's upgrade source.  The world frees its MPs with g_free on
 * the SimMp, so the block starts with it and carries its scenario entry. */
typedef struct {
    SimMp m;
    CmScnMp scn; /* strings borrowed from the CmScnAttacker */
} UpgradeSource;

static void
attacker_content(const CmScnAttacker *scn, char hash[65])
{
    g_autofree char *content = g_strdup_printf("rogue-upgrade payload of %s", scn->name);
    package_hash(content, hash);
}

gboolean
sim_upgrade_attacker_start(SimWorld *w, CmScnAttacker *scn, GError **error)
{
    SimSite *site = sim_world_site(w, NULL);
    UpgradeSource *src = g_new0(UpgradeSource, 1);
    CmCertSpec spec = {.profile = CM_CERT_MP,
                       .subject_cn = scn->mp,
                       .serial = 668,
                       .not_before = sim_now(w) - CM_USEC_PER_DAY,
                       .not_after = sim_now(w) + 365 * CM_USEC_PER_DAY,
                       .issuer_cn = "Trusted Root Key (attacker)"};
    g_autoptr(CmKey) key = NULL;
    g_autoptr(json_t) siteinfo = cm_site_siteinfo_json(site->site);
    g_autoptr(json_t) list = cm_site_mplist_json(site->site);
    g_autofree char *url = g_strdup_printf("http://%s" CCMSETUP_PATH, scn->mp);
    char hash[65];
    CmMpClientPackage pkg = {.version = ROGUE_VERSION, .url = url, .hash = hash};

    src->scn.name = scn->mp;
    src->scn.segment = scn->segment;
    src->scn.workers = 8;
    src->scn.queue_limit = 100000;
    src->m.scn = &src->scn;
    src->m.site = site; /* it speaks for no site; this keeps the world's lookups safe */
    src->m.seg = sim_world_seg(w, scn->segment);
    src->m.rogue = TRUE;
    sim_server_init(&src->m.server, scn->mp, src->scn.workers, (guint)src->scn.queue_limit);
    /* From here the world owns it, whatever fails below. */
    g_ptr_array_add(w->mps, &src->m);

    key = cm_key_generate(CM_KEY_EC_P256, error);
    if (key == NULL)
        return FALSE;
    spec.subject_key = key;
    spec.issuer_key = key;
    src->m.cert = cm_cert_issue(&spec, error);
    if (src->m.cert == NULL)
        return FALSE;
    attacker_content(scn, hash);
    src->m.mp = cm_mp_new(&(CmMpConfig){.name = scn->mp,
                                        .mp_cert = src->m.cert,
                                        .siteinfo = siteinfo,
                                        .mplist = list,
                                        .client_package = &pkg},
                          error);
    return src->m.mp != NULL;
}

static gboolean
in_target(SimWorld *w, const CmScnAttacker *scn, const SimClient *c)
{
    const SimPop *p = g_ptr_array_index(w->pops, c->pop);
    return scn->target == NULL || strcmp(p->scn->name, scn->target) == 0;
}

SimMp *
sim_upgrade_route(SimWorld *w, SimClient *c, const CmAgentSend *send, SimMp *mp)
{
    CmTime now = cm_sim_now(w->engine);

    if (send->ep != CM_EP_CLIENT_PACKAGE || send->transport != CM_TRANSPORT_HTTP || c->attacker)
        return mp;
    for (guint i = 0; i < w->scn->attackers->len; i++) {
        CmScnAttacker *a = g_ptr_array_index(w->scn->attackers, i);
        SimMp *src;
        if (a->strategy != CM_SCN_ATK_ROGUE_UPGRADE || now < a->start ||
            (a->stop > 0 && now >= a->stop) || !in_target(w, a, c))
            continue;
        src = sim_world_mp(w, a->mp);
        if (src != NULL && src->mp != NULL)
            return src;
    }
    return mp;
}

void
sim_upgrade_attacker_report(SimWorld *w, CmScnAttacker *scn)
{
    SimMp *src = sim_world_mp(w, scn->mp);
    guint total = 0, upgraded = 0, asked = 0;
    char hash[65];
    g_autofree char *sentence = NULL;
    CmOutcome *o;
    gint64 served = src != NULL && src->mp != NULL
                        ? cm_mp_counters(src->mp)->requests[CM_EP_CLIENT_PACKAGE]
                        : 0;
    struct {
        const char *name;
        double value;
    } figures[5];

    attacker_content(scn, hash);
    for (guint i = 0; i < w->n_clients; i++) {
        const SimClient *c = &w->clients[i];
        const CmAgentStatus *st;
        if (c->agent == NULL || c->attacker || !in_target(w, scn, c))
            continue;
        st = cm_agent_status(c->agent);
        total++;
        asked += st->upgrade_checks > 0;
        upgraded += strcmp(st->upgrade_hash, hash) == 0;
    }
    sentence = g_strdup_printf("%u of %u clients installed the attacker's client %s from %s; "
                               "%u asked for a client package",
                               upgraded, total, ROGUE_VERSION, scn->mp, asked);
    o = cm_run_add_outcome(w->run, scn->name, cm_scn_strategy_name(scn->strategy), upgraded > 0,
                           sentence);
    figures[0].name = "clients", figures[0].value = total;
    figures[1].name = "asked", figures[1].value = asked;
    figures[2].name = "upgraded", figures[2].value = upgraded;
    figures[3].name = "upgraded_ratio", figures[3].value = total ? (double)upgraded / total : 0;
    figures[4].name = "served", figures[4].value = (double)served;
    for (size_t i = 0; i < G_N_ELEMENTS(figures); i++) {
        /* Also a metric "attack.<attacker>.<figure>", as every strategy's. */
        g_autofree char *metric = g_strdup_printf("attack.%s.%s", scn->name, figures[i].name);
        cm_outcome_set_figure(o, figures[i].name, figures[i].value);
        cm_run_set_metric(w->run, metric, figures[i].value);
    }
}

/* ------------------------------------------------------- metrics */

typedef struct {
    guint clients, checked, upgraded, rogue;
    guint64 checks;
} UpgradeCount;

static void
count_client(UpgradeCount *n, const CmAgentStatus *st)
{
    n->clients++;
    n->checks += (guint64)st->upgrade_checks;
    n->checked += st->upgrade_checks > 0;
    if (st->upgrades_installed > 0) {
        g_autofree char *content = genuine_content(st->client_version);
        char genuine[65];
        /* Anything but the site's own client of that version is the
         * attacker's. */
        package_hash(content, genuine);
        n->upgraded++;
        n->rogue += strcmp(st->upgrade_hash, genuine) != 0;
    }
}

static double
ratio(guint part, guint whole)
{
    return whole > 0 ? (double)part / whole : 0;
}

void
sim_upgrade_metrics(SimWorld *w)
{
    UpgradeCount all = {0};

    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        UpgradeCount n = {0};
        for (guint k = 0; k < p->count; k++) {
            const SimClient *c = &w->clients[p->first + k];
            if (c->agent == NULL || c->attacker)
                continue;
            count_client(&n, cm_agent_status(c->agent));
        }
        all.clients += n.clients;
        all.checks += n.checks;
        all.checked += n.checked;
        all.upgraded += n.upgraded;
        all.rogue += n.rogue;
        sim_metric_setf(w, ratio(n.checked, n.clients), "pop.%s.upgrade_checked_ratio",
                        p->scn->name);
        sim_metric_setf(w, ratio(n.upgraded, n.clients), "pop.%s.upgraded_ratio", p->scn->name);
        sim_metric_setf(w, ratio(n.rogue, n.clients), "pop.%s.rogue_upgrade_ratio", p->scn->name);
    }
    sim_metric_setf(w, (double)all.checks, "upgrades.checks");
    sim_metric_setf(w, all.checked, "upgrades.checked");
    sim_metric_setf(w, all.upgraded, "upgrades.installed");
    sim_metric_setf(w, ratio(all.upgraded, all.clients), "upgrades.installed_ratio");
    sim_metric_setf(w, all.rogue, "upgrades.rogue");
    sim_metric_setf(w, ratio(all.rogue, all.clients), "upgrades.rogue_ratio");
}
