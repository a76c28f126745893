/* world.c - building the simulated world from a scenario: the network of
 * segments, the sites with their real databases and MPs, the enterprise CA
 * behind PKI clients, and the populations of virtual clients, each running
 * the real agent with its own keys and its own random stream. */
#include "world.h"
#include "hierarchy.h"
#include "content.h"
#include "cli.h"

#include <string.h>

/* The roles see virtual time 0 as 2026-01-01T00:00:00Z. */
#define SIM_EPOCH (G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC)

SimSite *
sim_world_site(SimWorld *w, const char *code)
{
    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        if (code == NULL || g_ascii_strcasecmp(s->scn->code, code) == 0)
            return s;
    }
    return NULL;
}

SimMp *
sim_world_mp(SimWorld *w, const char *name)
{
    for (guint i = 0; name != NULL && i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        if (g_ascii_strcasecmp(m->scn->name, name) == 0)
            return m;
    }
    return NULL;
}

SimPop *
sim_world_pop(SimWorld *w, const char *name)
{
    for (guint i = 0; name != NULL && i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        if (strcmp(p->scn->name, name) == 0)
            return p;
    }
    return NULL;
}

guint
sim_world_seg(SimWorld *w, const char *name)
{
    for (guint i = 0; name != NULL && i < w->scn->segments->len; i++)
        if (strcmp(((CmScnSegment *)g_ptr_array_index(w->scn->segments, i))->name, name) == 0)
            return i;
    return 0;
}

/* ------------------------------------------------------------- network */

static void
network_build(SimWorld *w)
{
    guint n = w->scn->segments->len;

    w->n_segs = n;
    w->latency = g_new(CmTime, (gsize)n * n);
    w->bandwidth = g_new0(double, (gsize)n *n);
    for (guint i = 0; i < n * n; i++)
        w->latency[i] = -1;
    for (guint i = 0; i < n; i++) {
        CmScnSegment *s = g_ptr_array_index(w->scn->segments, i);
        w->latency[i * n + i] = s->latency;
        w->bandwidth[i * n + i] = s->bandwidth_bps;
    }
    for (guint i = 0; i < w->scn->links->len; i++) {
        CmScnLink *l = g_ptr_array_index(w->scn->links, i);
        guint a = sim_world_seg(w, l->a), b = sim_world_seg(w, l->b);
        w->latency[a * n + b] = l->latency;
        w->bandwidth[a * n + b] = l->bandwidth_bps;
        if (!l->one_way) {
            w->latency[b * n + a] = l->latency;
            w->bandwidth[b * n + a] = l->bandwidth_bps;
        }
    }
    w->connect_timeout = 21 * CM_USEC_PER_SEC; /* Windows' TCP connect gives up after ~21 s */
}

CmTime
sim_net_delay(SimWorld *w, guint a, guint b, gsize bytes)
{
    CmTime lat = w->latency[a * w->n_segs + b];
    double bw = w->bandwidth[a * w->n_segs + b];

    if (lat < 0)
        return -1;
    return lat + (bw > 0 ? (CmTime)((double)bytes * 8.0 * 1e6 / bw) : 0);
}

/* ------------------------------------------------------------- sites */

static gboolean
site_build(SimWorld *w, CmScnSite *scn, GError **error)
{
    SimSite *s = g_new0(SimSite, 1);
    CmSiteConfig config = {.site_code = scn->code,
                           .db_path = ":memory:",
                           .db_mode = CM_STORE_MEMORY,
                           .top_level = scn->top_level,
                           .forest = scn->forest,
                           .master_key = w->master_key,
                           .settings = &scn->settings};

    s->scn = scn;
    s->seg = sim_world_seg(w, scn->segment);
    sim_server_init(&s->server, scn->code, scn->workers, (guint)scn->queue_limit);
    g_ptr_array_add(w->sites, s);
    s->site = cm_site_open(&config, sim_now(w), error);
    if (s->site == NULL)
        return FALSE;
    for (guint i = 0; i < w->scn->forests->len; i++) {
        CmScnForest *f = g_ptr_array_index(w->scn->forests, i);
        if (!cm_site_add_forest(s->site, f->name, (const char *const *)f->domains, error))
            return FALSE;
    }
    for (guint i = 0; i < w->scn->trusts->len; i++) {
        CmScnTrust *t = g_ptr_array_index(w->scn->trusts, i);
        if (!cm_site_set_trust(s->site, t->a, t->b, t->kind, error))
            return FALSE;
    }
    if (!cm_site_set_pki(s->site, w->ca_cert, w->crl, error))
        return FALSE;
    return TRUE;
}

SimMp *
sim_world_add_mp(SimWorld *w, CmScnMp *scn, SimSite *site, GError **error)
{
    SimMp *m = g_new0(SimMp, 1);
    CmMpInfo info;
    g_autoptr(json_t) siteinfo = NULL, list = NULL;

    m->scn = scn;
    m->site = site;
    m->seg = sim_world_seg(w, scn->segment);
    sim_server_init(&m->server, scn->name, scn->workers, (guint)scn->queue_limit);
    g_ptr_array_add(w->mps, m);
    if (!sim_hierarchy_site_add_mp(w, site, scn, &info, &m->cert, error))
        return NULL;
    siteinfo = cm_site_siteinfo_json(site->site);
    list = cm_site_mplist_json(site->site);
    sim_cmg_mplist(w, site, list);
    m->mp = cm_mp_new(&(CmMpConfig){.name = info.name,
                                    .role_id = info.role_id,
                                    .internet = scn->internet,
                                    .mp_cert = m->cert,
                                    .siteinfo = siteinfo,
                                    .mplist = list},
                      error);
    if (m->mp != NULL)
        sim_upgrade_publish(w, m);
    return m->mp != NULL ? m : NULL;
}

void
sim_world_refresh_mps(SimWorld *w, SimSite *site)
{
    g_autoptr(json_t) siteinfo = cm_site_siteinfo_json(site->site);
    g_autoptr(json_t) list = cm_site_mplist_json(site->site);

    sim_cmg_mplist(w, site, list);
    for (guint i = 0; i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        if (m->site == site)
            (void)cm_mp_update_site(m->mp, siteinfo, list, NULL);
    }
}

/* ------------------------------------------------------------- PKI */

static gboolean
ca_build(SimWorld *w, GError **error)
{
    CmCertSpec spec = {.profile = CM_CERT_ROOT_CA,
                       .subject_cn = "Enterprise Test Root CA",
                       .subject_o = "cmlab",
                       .serial = ++w->ca_serial,
                       .not_before = sim_now(w) - CM_USEC_PER_DAY,
                       .not_after = sim_now(w) + 10 * 365 * CM_USEC_PER_DAY};

    w->ca_key = cm_key_generate(CM_KEY_EC_P256, error);
    if (w->ca_key == NULL)
        return FALSE;
    spec.subject_key = w->ca_key;
    w->ca_cert = cm_cert_issue(&spec, error);
    if (w->ca_cert == NULL)
        return FALSE;
    w->revoked = g_array_new(FALSE, FALSE, sizeof(CmCrlEntry));
    /* An empty CRL from the start: with CRL checking on, no CRL at all
     * would refuse every certificate. */
    w->crl = cm_crl_issue(w->ca_cert, w->ca_key, NULL, 0, 1, sim_now(w) - CM_USEC_PER_HOUR,
                          sim_now(w) + 365 * CM_USEC_PER_DAY, error);
    return w->crl != NULL;
}

/* Client certificates take serials by client index, not from a counter:
 * clients are installed on several threads. */
#define CLIENT_SERIAL_BASE G_GUINT64_CONSTANT(0x100000)

gboolean
sim_world_issue_cert(SimWorld *w, CmCertProfile profile, const char *cn, guint64 serial,
                     CmKey **key, CmCert **cert, GError **error)
{
    CmCertSpec spec = {.profile = profile,
                       .subject_cn = cn,
                       .serial = serial,
                       .not_before = sim_now(w) - CM_USEC_PER_DAY,
                       .not_after = sim_now(w) + 365 * CM_USEC_PER_DAY,
                       .issuer_key = w->ca_key,
                       .issuer_cert = w->ca_cert};

    *key = cm_key_generate(CM_KEY_EC_P256, error);
    if (*key == NULL)
        return FALSE;
    spec.subject_key = *key;
    *cert = cm_cert_issue(&spec, error);
    return *cert != NULL;
}

/* ------------------------------------------------------------- clients */

static gboolean
pop_build(SimWorld *w, CmScnPopulation *scn, guint first, GError **error)
{
    SimPop *p = g_new0(SimPop, 1);
    SimSite *site = sim_world_site(w, scn->site_code);
    GPtrArray *dns = g_ptr_array_new();

    p->scn = scn;
    p->first = first;
    p->count = (guint)scn->count;
    g_ptr_array_add(w->pops, p);
    if (site == NULL)
        site = sim_world_site(w, NULL);
    p->trk_hex = cm_site_export_trk(site->site);
    /* Directory publishing: only in a forest the site publishes to. */
    if (scn->forest != NULL && site->scn->publish_to != NULL &&
        g_strv_contains((const char *const *)site->scn->publish_to, scn->forest)) {
        GPtrArray *mps = g_ptr_array_new();
        for (guint i = 0; i < w->mps->len; i++) {
            SimMp *m = g_ptr_array_index(w->mps, i);
            if (m->site == site && !m->rogue)
                g_ptr_array_add(mps, m->scn->name);
        }
        g_ptr_array_add(mps, NULL);
        p->dir.site_code = site->scn->code;
        p->dir.trk_hex = p->trk_hex;
        p->dir.signing_cert = cm_site_signing_cert(site->site);
        p->dir.mps = (const char *const *)g_ptr_array_free(mps, FALSE);
        p->dir_ok = TRUE;
    }
    /* DNS publishing: the site's MPs, after any rogue MP an attacker's
     * spoofed records put first. */
    {
        g_autofree char **rogue = sim_attackers_dns(w, scn->name);
        for (guint i = 0; rogue[i] != NULL; i++)
            g_ptr_array_add(dns, rogue[i]);
    }
    for (guint i = 0; i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        if (m->site == site && !m->rogue)
            g_ptr_array_add(dns, m->scn->name);
    }
    g_ptr_array_add(dns, NULL);
    p->dns = (char **)g_ptr_array_free(dns, FALSE);
    (void)error;
    return TRUE;
}

/* The agent configuration a client of p installs with. */
void
sim_client_config(SimWorld *w, SimPop *p, SimClient *c, CmAgentConfig *cfg, guint8 secret[32])
{
    CmScnPopulation *scn = p->scn;
    SimSite *site = sim_world_site(w, scn->site_code);

    if (site == NULL)
        site = sim_world_site(w, NULL);
    cm_agent_config_default(cfg);
    cfg->smssitecode = scn->site_code;
    cfg->domain = scn->domain;
    cfg->tpm_version = scn->tpm_version;
    cfg->media = scn->media;
    cfg->device_secret = secret;
    cfg->method = scn->install;
    cfg->key_alg = scn->key_alg;
    cfg->mp = scn->mp;
    cfg->policy_interval = scn->policy_interval;
    cfg->inventory_interval = scn->inventory_interval;
    cfg->start_window = 0;                           /* the world spreads first contacts itself */
    cfg->maintenance_start = scn->maintenance_start; /* REQ POL-04 */
    cfg->maintenance_window = scn->maintenance_window;
    cfg->auto_upgrade = scn->auto_upgrade;                     /* REQ POL-05 */
    cfg->client_status_interval = scn->client_status_interval; /* REQ DATA-02 */
    cfg->keepalive_interval = scn->keepalive_interval;         /* REQ REG-05 */
    cfg->channel_lifetime = scn->channel_lifetime;
    cfg->dns_mps = (const char *const *)p->dns;
    if (p->dir_ok &&
        (scn->trk == CM_SCN_SOURCE_DIRECTORY || scn->signcert == CM_SCN_SOURCE_DIRECTORY))
        cfg->directory = &p->dir;
    if (scn->trk == CM_SCN_SOURCE_PROPERTY)
        cfg->smspublicrootkey = p->trk_hex;
    if (scn->signcert == CM_SCN_SOURCE_PROPERTY)
        cfg->smssigncert = cm_site_signing_cert(site->site);
    if (scn->trk == CM_SCN_SOURCE_PUSH || scn->install == CM_INSTALL_PUSH) {
        cfg->method = CM_INSTALL_PUSH;
        cfg->push_trk_hex = p->trk_hex;
        cfg->push_signing_cert = cm_site_signing_cert(site->site);
    }
    if (c->pki_cert != NULL) {
        cfg->pki_cert = c->pki_cert;
        cfg->pki_key = c->pki_key;
        cfg->usepkicert = TRUE;
    }
    if (p->scn->cmg != NULL)
        sim_cmg_client_config(w, p, c, cfg);
}

gboolean
sim_client_install(SimWorld *w, SimPop *p, SimClient *c, guint index, GError **error)
{
    CmAgentConfig cfg;
    CmRng rng;
    guint8 secret[32];
    g_autofree char *name = g_strdup_printf("%.10s%06u", p->scn->name, index - p->first);

    /* Each client draws from its own stream: what one client does never
     * depends on how many numbers another drew. */
    cm_rng_init_seeded(&rng, w->scn->seed, G_GUINT64_CONSTANT(0x100000000) + index);
    cm_rng_bytes(&rng, secret, sizeof secret);
    if (p->scn->pki && c->pki_cert == NULL &&
        !sim_world_issue_cert(w, CM_CERT_CLIENT_AUTH, name, CLIENT_SERIAL_BASE + index, &c->pki_key,
                              &c->pki_cert, error))
        return FALSE;
    sim_client_config(w, p, c, &cfg, secret);
    cfg.name = name;
    cm_agent_free(c->agent);
    c->agent = cm_agent_new(&cfg, &rng, sim_now(w), error);
    if (c->agent == NULL)
        return FALSE;
    if (p->scn->inventory != NULL) {
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, p->scn->inventory);
        while (g_hash_table_iter_next(&it, &k, &v))
            cm_agent_set_inventory(c->agent, k, v);
    }
    return TRUE;
}

/* Installing a client (key generation, a self-signed certificate, a PKI
 * certificate) is the costliest part of building a world and each install
 * is independent: the agents draw from their own streams.  So installs run
 * on every core; the events they lead to are scheduled afterwards, in
 * client order, on this thread. */
typedef struct {
    SimWorld *w;
    guint from, to;
    GError *error;
} InstallJob;

static void
install_range(gpointer data, gpointer user)
{
    InstallJob *job = data;

    (void)user;
    for (guint idx = job->from; idx < job->to && job->error == NULL; idx++) {
        SimClient *c = &job->w->clients[idx];
        SimPop *p = g_ptr_array_index(job->w->pops, c->pop);
        if (c->agent != NULL)
            continue; /* a population's first, installed beforehand */
        (void)sim_client_install(job->w, p, c, idx, &job->error);
    }
}

static gboolean
install_all(SimWorld *w, GError **error)
{
    guint threads = MAX(1, MIN(g_get_num_processors(), 8));
    guint chunk = MAX(64, w->n_clients / (threads * 8) + 1);
    GThreadPool *pool;
    GPtrArray *jobs = g_ptr_array_new_with_free_func(g_free);
    gboolean ok = TRUE;

    /* Each population's first client installs here first: it parses what
     * its population shares (the TRK, say), so the parse cache holds it
     * before the threads start.  Otherwise two threads could both miss and
     * both parse, and the run's crypto counts would depend on timing. */
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        if (p->count > 0 && !sim_client_install(w, p, &w->clients[p->first], p->first, error)) {
            g_ptr_array_unref(jobs);
            return FALSE;
        }
    }
    pool = g_thread_pool_new(install_range, NULL, (gint)threads, TRUE, NULL);
    for (guint from = 0; from < w->n_clients; from += chunk) {
        InstallJob *job = g_new0(InstallJob, 1);
        job->w = w;
        job->from = from;
        job->to = MIN(w->n_clients, from + chunk);
        g_ptr_array_add(jobs, job);
        g_thread_pool_push(pool, job, NULL);
    }
    g_thread_pool_free(pool, FALSE, TRUE); /* waits for every job */
    for (guint i = 0; i < jobs->len; i++) {
        InstallJob *job = g_ptr_array_index(jobs, i);
        if (job->error != NULL && ok) {
            g_propagate_error(error, job->error);
            job->error = NULL;
            ok = FALSE;
        }
        g_clear_error(&job->error);
    }
    g_ptr_array_unref(jobs);
    return ok;
}

static gboolean
clients_build(SimWorld *w, GError **error)
{
    guint total = 0, idx = 0;

    for (guint i = 0; i < w->scn->populations->len; i++)
        total += (guint)((CmScnPopulation *)g_ptr_array_index(w->scn->populations, i))->count;
    w->clients = g_new0(SimClient, total);
    w->n_clients = total;
    for (guint i = 0; i < w->scn->populations->len; i++) {
        CmScnPopulation *scn = g_ptr_array_index(w->scn->populations, i);
        SimPop *p;
        if (!pop_build(w, scn, idx, error))
            return FALSE;
        p = g_ptr_array_index(w->pops, w->pops->len - 1);
        for (guint k = 0; k < p->count; k++, idx++) {
            SimClient *c = &w->clients[idx];
            c->world = w;
            c->pop = i;
            c->seg = sim_world_seg(w, scn->segment);
        }
    }
    if (!install_all(w, error))
        return FALSE;
    /* Boot media (REQ TRUST-13): every device of a media population boots
     * from the same media and talks with its one site-issued, not
     * hardware-bound identity. */
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        if (!p->scn->media || p->count < 2)
            continue;
        for (guint k = 1; k < p->count; k++) {
            SimClient *c = &w->clients[p->first + k];
            CmAgentConfig cfg;
            CmRng rng;
            guint8 secret[32];
            CmAgent *clone;
            cm_rng_init_seeded(&rng, w->scn->seed, G_GUINT64_CONSTANT(0x500000000) + p->first + k);
            cm_rng_bytes(&rng, secret, sizeof secret);
            sim_client_config(w, p, c, &cfg, secret);
            clone = cm_agent_clone(w->clients[p->first].agent, &cfg, &rng, sim_now(w), error);
            if (clone == NULL)
                return FALSE;
            cm_agent_free(c->agent);
            c->agent = clone;
        }
    }
    for (idx = 0; idx < w->n_clients; idx++) {
        SimClient *c = &w->clients[idx];
        CmScnPopulation *scn = ((SimPop *)g_ptr_array_index(w->pops, c->pop))->scn;
        CmRng start_rng;
        CmTime at;
        /* First contact at start + uniform(0, start_window), drawn from a
         * stream of its own so installs stay independent. */
        cm_rng_init_seeded(&start_rng, w->scn->seed, G_GUINT64_CONSTANT(0x200000000) + idx);
        at = scn->start + (scn->start_window > 0
                               ? (CmTime)cm_rng_below(&start_rng, (guint64)scn->start_window)
                               : 0);
        c->needs_reg = TRUE;
        c->need_since = at;
        w->regs_needed++;
        cm_sim_at(w->engine, at, sim_client_start, w, idx);
    }
    return TRUE;
}

/* ------------------------------------------------------------- world */

SimWorld *
sim_world_new(CmScenario *scn, const SimCosts *costs, GError **error)
{
    SimWorld *w = g_new0(SimWorld, 1);

    w->scn = scn;
    w->engine = cm_sim_engine_new();
    w->costs = *costs;
    w->epoch = SIM_EPOCH;
    w->run = cm_run_new();
    w->sites = g_ptr_array_new();
    w->mps = g_ptr_array_new();
    w->pops = g_ptr_array_new();
    w->attackers = g_ptr_array_new();
    cm_rng_init_seeded(&w->rng, scn->seed, 1);
    cm_rng_bytes(&w->rng, w->master_key, sizeof w->master_key);
    if (!sim_costs_apply(&w->costs, scn->costs, error))
        goto fail;
    network_build(w);
    if (!ca_build(w, error))
        goto fail;
    for (guint i = 0; i < scn->sites->len; i++)
        if (!site_build(w, g_ptr_array_index(scn->sites, i), error))
            goto fail;
    if (!sim_hierarchy_build(w, error))
        goto fail;
    for (guint i = 0; i < scn->mps->len; i++) {
        CmScnMp *m = g_ptr_array_index(scn->mps, i);
        if (sim_world_add_mp(w, m, sim_world_site(w, m->site), error) == NULL)
            goto fail;
    }
    if (!sim_content_build(w, error) || !sim_push_build(w, error))
        goto fail;
    if (!sim_cmg_build(w, error))
        goto fail;
    if (!sim_attackers_start(w, error) || !clients_build(w, error) ||
        !sim_events_schedule(w, error))
        goto fail;
    sim_metrics_start(w);
    sim_hierarchy_start(w);
    sim_content_start(w);
    sim_site_worker_start(w);
    return w;
fail:
    sim_world_free(w);
    return NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#define SIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_SANITIZED 1
#endif
#endif

void
sim_world_leave(SimWorld *w)
{
#ifdef SIM_SANITIZED
    sim_world_free(w);
#else
    /* Kept reachable, so that valgrind counts it as still in use rather
     * than lost. */
    static SimWorld *left;

    sim_site_worker_stop(w);
    left = w;
    (void)left;
#endif
}

void
sim_world_free(SimWorld *w)
{
    if (w == NULL)
        return;
    sim_site_worker_stop(w);
    sim_cmg_free(w);
    sim_attackers_free(w);
    sim_hierarchy_free(w);
    sim_content_free(w);
    for (guint i = 0; i < w->n_clients; i++) {
        cm_agent_free(w->clients[i].agent);
        cm_cert_unref(w->clients[i].pki_cert);
        cm_key_unref(w->clients[i].pki_key);
    }
    g_free(w->clients);
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        g_free(p->trk_hex);
        g_free((gpointer)p->dir.mps);
        g_free(p->dns);
        g_free(p);
    }
    for (guint i = 0; i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        cm_mp_free(m->mp);
        cm_cert_unref(m->cert);
        sim_server_clear(&m->server);
        g_free(m);
    }
    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        cm_site_free(s->site);
        sim_server_clear(&s->server);
        g_free(s);
    }
    g_ptr_array_unref(w->sites);
    g_ptr_array_unref(w->mps);
    g_ptr_array_unref(w->pops);
    g_ptr_array_unref(w->attackers);
    cm_key_unref(w->ca_key);
    cm_cert_unref(w->ca_cert);
    cm_crl_unref(w->crl);
    if (w->revoked != NULL)
        g_array_unref(w->revoked);
    g_free(w->latency);
    g_free(w->bandwidth);
    cm_sim_engine_free(w->engine);
    cm_run_free(w->run);
    g_free(w);
}
