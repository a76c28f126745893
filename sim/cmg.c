/* cmg.c - cloud management gateways and their connection points in the
 * simulated world (REQ CMG-02, CMG-03, CMG-05, CMG-07, CMG-08, NET-09).
 *
 * A [cmg] is one or more VM instances, each a real CmCmg (cmg/) with its
 * own workers and queue; a [connection_point] is a real CmCmgcp at the
 * site.  An internet client's request goes client -> gateway instance (the
 * Azure load balancer: by client) -> cm_cmg_handle decides (forward to the
 * connection point its round robin picked, refuse, or drop the connection)
 * -> the connection point (its workers and queue, cm_cmgcp_route maps the
 * URL to the MP) -> the MP -> the site, and the answer back the same way.
 * Every hop is charged the network delay between the segments (nominal
 * message sizes, as traffic.c) and each server its service cost.
 *
 * The connection point's own traffic (hello, the check every minute, its
 * status and traffic reports) is exchanged at the instant its state
 * machine asks for it: a minute-scale protocol gains nothing from a few
 * milliseconds.  A failed connection point sends nothing; the gateway
 * keeps forwarding to it until its checks lapse (CM_CMG_CP_TIMEOUT), and
 * those requests are lost in flight: the gateway answers them 503 after
 * its answer timeout and the clients retry.  A recovered one says hello
 * to every instance again and is back in the round robin at once.
 *
 * The CRL (REQ CMG-03): with crl_check on the gateway needs a current CRL
 * for the client certificate's issuer.  crl_published = false leaves it
 * without one, so every PKI client's handshake fails (DROP) and the client
 * retries: that retry traffic is counted, requests and bytes.  Token
 * clients do not care. */
#include "world.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* The gateway gives up on a forwarded request its connection point never
 * answered after this, and answers 503 (the lab's CM_CMGD_ANSWER_US). */
#define CMG_ANSWER_TIMEOUT (60 * CM_USEC_PER_SEC)
/* A TLS handshake with a client certificate: the server's chain one way,
 * the client's certificate the other, about this many bytes in all.  A
 * dropped connection (revocation status unknown) costs this each time. */
#define CMG_HANDSHAKE_BYTES 4000

typedef struct SimCmg SimCmg;

typedef struct {
    CmScnConnectionPoint *scn;
    SimCmg *cmg;
    guint index; /* its registration order at the gateway (per_cp_forwarded) */
    char id[CM_CMG_CONNECTION_ID_LEN + 1];
    CmKey *key;
    CmCert *cert;
    CmCmgcp *lib;
    SimServer server;
    guint seg;
    gboolean down;
    guint32 gen; /* failures so far: a job taken before one is lost */
    guint32 timer_gen;
    CmTime down_since;
    gboolean lapsed; /* the gateway stopped routing to it since it failed */
    /* metrics */
    guint64 forwarded;        /* the gateway's round robin picked it */
    guint64 forwarded_all_up; /* ... while every connection point of the CMG was up */
    guint64 forwarded_down;   /* ... while it was down: lost in flight */
    guint64 forwarded_lapsed; /* ... while down, after its checks lapsed */
    guint64 outage_forwards;  /* the CMG's forwards while it was down past the lapse */
    guint64 window;           /* ... in the current sample window */
    guint64 served;           /* answers it carried back */
    guint64 failures, recoveries;
    guint64 status_reports, traffic_reports;
    CmTime lapse_max; /* the longest time from a failure to the gateway stopping */
    gboolean recovered;
    guint64 at_recovery, cmg_at_recovery; /* forwarded counts at its last recovery */
} SimCp;

struct SimCmg {
    SimWorld *world;
    CmScnCmg *scn;
    SimSite *site;
    guint seg;
    guint n_inst;
    CmCmg *inst[CM_CMG_MAX_INSTANCES];
    SimServer server[CM_CMG_MAX_INSTANCES];
    guint live_last[CM_CMG_MAX_INSTANCES];
    CmKey *key;
    CmCert *cert; /* its server certificate, pinned by the connection points */
    CmCmgMappings *mappings;
    GPtrArray *entries;         /* char*: the internet MP list entries, by role ID */
    GPtrArray *entry_mps;       /* char*: the MP of each entry */
    GPtrArray *unpublished;     /* char*: the entries of the site's other MPs */
    GPtrArray *unpublished_mps; /* char*: their MPs */
    GPtrArray *cps;             /* SimCp* */
    GHashTable *bulk;           /* population name -> bulk registration token */
    CmCrl *crl;                 /* the CRL last loaded */
    /* metrics */
    guint64 requests, forwarded, dropped, lost, busy;
    guint64 refusals[CM_REASON__COUNT];
    guint64 crl_retries, crl_retry_bytes;
    guint64 retry_requests, retry_bytes;
    guint64 egress_bytes;
    guint64 live_changes;
    guint64 window;
};

typedef struct SimCmgHop {
    SimCmg *cmg;
    guint instance;
    SimCp *cp;
    guint32 cp_gen;
    CmTime forwarded_at;
    char *path, *query, *token;
    gboolean pki;
    CmCmgRoute route;
} SimCmgHop;

/* ------------------------------------------------------------- helpers */

static SimCmg *
cmg_find(SimWorld *w, const char *name)
{
    for (guint i = 0; w->cmgs != NULL && name != NULL && i < w->cmgs->len; i++) {
        SimCmg *g = g_ptr_array_index(w->cmgs, i);
        if (g_ascii_strcasecmp(g->scn->name, name) == 0)
            return g;
    }
    return NULL;
}

static SimCp *
cp_find(SimWorld *w, const char *name)
{
    for (guint i = 0; w->cmgs != NULL && i < w->cmgs->len; i++) {
        SimCmg *g = g_ptr_array_index(w->cmgs, i);
        for (guint k = 0; k < g->cps->len; k++) {
            SimCp *cp = g_ptr_array_index(g->cps, k);
            if (strcmp(cp->scn->name, name) == 0)
                return cp;
        }
    }
    return NULL;
}

static gboolean
any_down(const SimCmg *g)
{
    for (guint k = 0; k < g->cps->len; k++)
        if (((SimCp *)g_ptr_array_index(g->cps, k))->down)
            return TRUE;
    return FALSE;
}

/* Data between a connection point and the gateway flows over connections
 * the connection point opened, outbound (REQ NET-09): its segment must
 * reach the gateway's. */
static CmTime
cp_delay(SimWorld *w, SimCp *cp, gsize bytes)
{
    return sim_net_delay(w, cp->seg, cp->cmg->seg, bytes);
}

void
sim_cmg_hop_free(SimCmgHop *hop)
{
    if (hop == NULL)
        return;
    g_free(hop->path);
    g_free(hop->query);
    g_free(hop->token);
    g_free(hop);
}

/* ------------------------------------------------------ connection points */

static void ev_cp_timer(CmSimEngine *e, void *ctx, guint64 arg);

/* Carries the connection point's actions to the gateway instances and
 * feeds back their answers, as the lab's connection point does. */
static void
cp_drive(SimWorld *w, SimCp *cp, CmCmgcpActions *a)
{
    CmTime now = sim_now(w);
    gboolean reach = cp_delay(w, cp, 0) >= 0;

    for (guint k = 0; k < a->actions->len; k++) {
        CmCmgcpAction *act = g_ptr_array_index(a->actions, k);
        CmCmg *inst = act->instance < cp->cmg->n_inst ? cp->cmg->inst[act->instance] : NULL;
        const guint8 *b = act->body != NULL ? g_bytes_get_data(act->body, NULL) : NULL;
        size_t n = act->body != NULL ? g_bytes_get_size(act->body) : 0;
        CmResponse resp = {0};
        gboolean up = reach && inst != NULL;

        switch (act->kind) {
        case CM_CMGCP_HELLO:
            if (up)
                cm_cmg_cp_hello(inst, cp->cert, b, n, now, &resp);
            cm_cmgcp_on_answer(cp->lib, act->id, up ? cp->cmg->cert : NULL, up ? &resp : NULL, now,
                               a);
            break;
        case CM_CMGCP_CHECK:
            if (up)
                cm_cmg_cp_check(inst, cp->cert, b, n, now, &resp);
            cm_cmgcp_on_answer(cp->lib, act->id, NULL, up ? &resp : NULL, now, a);
            break;
        case CM_CMGCP_CLOSE:
            if (inst != NULL)
                cm_cmg_cp_disconnect(inst, cp->id);
            break;
        case CM_CMGCP_REPORT_STATUS:
            cp->status_reports++;
            break;
        case CM_CMGCP_REPORT_TRAFFIC:
            cp->traffic_reports++;
            break;
        }
        cm_response_clear(&resp);
    }
    cp->timer_gen++;
    if (a->wake_at > 0)
        cm_sim_at(w->engine, MAX(a->wake_at - w->epoch, cm_sim_now(w->engine)), ev_cp_timer, cp,
                  cp->timer_gen);
}

static void
ev_cp_timer(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimCp *cp = ctx;
    SimWorld *w = cp->cmg->world;
    CmCmgcpActions a;

    (void)e;
    if ((guint32)arg != cp->timer_gen || cp->down)
        return; /* replaced by a later timer, or its host is down */
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_on_timer(cp->lib, sim_now(w), &a);
    cp_drive(w, cp, &a);
    cm_cmgcp_actions_clear(&a);
}

static void
ev_cp_start(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimCp *cp = ctx;
    SimWorld *w = cp->cmg->world;
    CmCmgcpActions a;

    (void)e;
    (void)arg;
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_start(cp->lib, sim_now(w), &a);
    cp_drive(w, cp, &a);
    cm_cmgcp_actions_clear(&a);
}

/* Its host fails: it sends nothing more, and what it holds is lost.  The
 * gateway is not told; it learns when the checks stop (REQ CMG-08). */
static void
cp_fail(SimWorld *w, SimCp *cp)
{
    if (cp->down)
        return;
    cp->down = TRUE;
    cp->gen++;
    cp->timer_gen++;
    cp->lapsed = FALSE;
    cp->down_since = cm_sim_now(w->engine);
    cp->failures++;
}

/* It comes back: the service starts again and connects to every instance. */
static void
cp_recover(SimWorld *w, SimCp *cp)
{
    CmCmgcpActions a;

    if (!cp->down)
        return;
    /* Still routed to when it came back: the whole outage counts. */
    if (!cp->lapsed)
        cp->lapse_max = MAX(cp->lapse_max, cm_sim_now(w->engine) - cp->down_since);
    cp->down = FALSE;
    cp->recoveries++;
    cp->recovered = TRUE;
    cp->at_recovery = cp->forwarded;
    cp->cmg_at_recovery = cp->cmg->forwarded;
    cm_cmgcp_actions_init(&a);
    for (guint i = 0; i < cp->cmg->n_inst; i++)
        cm_cmgcp_on_disconnect(cp->lib, i, sim_now(w), &a);
    cp_drive(w, cp, &a);
    cm_cmgcp_actions_clear(&a);
}

void
sim_cmg_event(SimWorld *w, CmScnEvent *ev)
{
    SimCp *cp = cp_find(w, ev->target);

    if (cp == NULL)
        return;
    if (ev->action == CM_SCN_ACT_FAIL_CP)
        cp_fail(w, cp);
    else if (ev->action == CM_SCN_ACT_RECOVER_CP)
        cp_recover(w, cp);
}

/* What the gateway instances see of the connection points: the changes
 * of their live count, and when a failed one stopped getting requests. */
static void
watch_live(SimWorld *w, SimCmg *g)
{
    CmTime now = sim_now(w);

    for (guint i = 0; i < g->n_inst; i++) {
        guint live = cm_cmg_cp_live(g->inst[i], g->site->scn->code, now);
        if (live != g->live_last[i])
            g->live_changes++;
        g->live_last[i] = live;
    }
    /* A failed connection point is out of the round robin once no
     * instance counts more live ones than are up. */
    {
        guint up = 0;
        for (guint k = 0; k < g->cps->len; k++)
            up += !((SimCp *)g_ptr_array_index(g->cps, k))->down;
        for (guint k = 0; k < g->cps->len; k++) {
            SimCp *cp = g_ptr_array_index(g->cps, k);
            gboolean out = TRUE;
            for (guint i = 0; i < g->n_inst; i++)
                out = out && g->live_last[i] <= up;
            if (cp->down && !cp->lapsed && out) {
                cp->lapsed = TRUE;
                cp->lapse_max = MAX(cp->lapse_max, cm_sim_now(w->engine) - cp->down_since);
            }
        }
    }
}

/* ------------------------------------------------------------- building */

/* The CRL the gateway holds: the enterprise CA's current one when it is
 * published where the gateway reaches it, none otherwise. */
static void
load_crl(SimWorld *w, SimCmg *g)
{
    if (!g->scn->crl_published || g->crl == w->crl || w->crl == NULL)
        return;
    for (guint i = 0; i < g->n_inst; i++) {
        cm_cmg_clear_crls(g->inst[i]);
        (void)cm_cmg_add_crl(g->inst[i], w->crl, NULL);
    }
    if (g->crl != NULL)
        cm_crl_unref(g->crl);
    g->crl = cm_crl_ref(w->crl);
}

/* The CMG's and its connection points' certificates take serials apart
 * from the clients' (world.c). */
#define CMG_SERIAL_BASE G_GUINT64_CONSTANT(0x7000000)

static gboolean
cmg_build_one(SimWorld *w, CmScnCmg *scn, guint index, GError **error)
{
    SimCmg *g = g_new0(SimCmg, 1);
    SimSite *site = sim_world_site(w, scn->site);
    g_autoptr(GArray) mps = NULL;
    const CmCert *roots[1] = {w->ca_cert};
    CmCmgSite cs = {.site_code = scn->site, .signing_cert = cm_site_signing_cert(site->site)};
    CmRng rng;
    guint serial = (guint)index * 64;

    g->world = w;
    g->scn = scn;
    g->site = site;
    g->seg = sim_world_seg(w, scn->segment);
    g->n_inst = (guint)scn->instances;
    g->cps = g_ptr_array_new();
    g->entries = g_ptr_array_new_with_free_func(g_free);
    g->entry_mps = g_ptr_array_new_with_free_func(g_free);
    g->unpublished = g_ptr_array_new_with_free_func(g_free);
    g->unpublished_mps = g_ptr_array_new_with_free_func(g_free);
    g->bulk = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_ptr_array_add(w->cmgs, g);
    cm_rng_init_seeded(&rng, w->scn->seed, cm_rng_stream_id(scn->name));
    if (!sim_world_issue_cert(w, CM_CERT_SERVER, scn->name, CMG_SERIAL_BASE + serial++, &g->key,
                              &g->cert, error))
        return FALSE;

    /* The mappings the site publishes: every MP a connection point of
     * this CMG forwards to has its CMG traffic enabled (REQ CMG-05). */
    if ((g->mappings = cm_cmg_mappings_new(scn->name, error)) == NULL)
        return FALSE;
    mps = cm_site_mps(site->site);
    for (guint i = 0; i < mps->len; i++) {
        const CmMpInfo *m = &g_array_index(mps, CmMpInfo, i);
        gboolean published = FALSE;
        for (guint k = 0; k < w->scn->cps->len && !published; k++) {
            CmScnConnectionPoint *cp = g_ptr_array_index(w->scn->cps, k);
            published = strcmp(cp->cmg, scn->name) == 0 &&
                        g_strv_contains((const char *const *)cp->mps, m->name);
        }
        if (!published) {
            g_ptr_array_add(g->unpublished,
                            cm_cmgurl_mp_entry(cm_cmg_mappings_name(g->mappings), m->role_id));
            g_ptr_array_add(g->unpublished_mps, g_strdup(m->name));
            continue;
        }
        if (!cm_cmg_mappings_add_mp(g->mappings, scn->site, m->role_id, m->name, error))
            return FALSE;
        g_ptr_array_add(g->entries,
                        cm_cmgurl_mp_entry(cm_cmg_mappings_name(g->mappings), m->role_id));
        g_ptr_array_add(g->entry_mps, g_strdup(m->name));
    }

    for (guint i = 0; i < g->n_inst; i++) {
        CmCmgConfig c = {.name = scn->name,
                         .instance = i,
                         .tls_min = scn->tls_min,
                         .sites = &cs,
                         .n_sites = 1,
                         .roots = roots,
                         .n_roots = 1,
                         .crl_check = scn->crl_check};
        char name[32];
        g_snprintf(name, sizeof name, "%s#%u", scn->name, i);
        if ((g->inst[i] = cm_cmg_new(&c, error)) == NULL)
            return FALSE;
        cm_cmg_set_mappings(g->inst[i], g->mappings);
        sim_server_init(&g->server[i], name, scn->workers, (guint)scn->queue_limit);
    }
    load_crl(w, g);

    /* The connection points, registered with every instance (REQ CMG-01). */
    for (guint k = 0; k < w->scn->cps->len; k++) {
        CmScnConnectionPoint *scp = g_ptr_array_index(w->scn->cps, k);
        SimCp *cp;
        CmCmgcpConfig cc;
        if (strcmp(scp->cmg, scn->name) != 0)
            continue;
        cp = g_new0(SimCp, 1);
        cp->scn = scp;
        cp->cmg = g;
        cp->index = g->cps->len;
        cp->seg = sim_world_seg(w, scp->segment);
        sim_server_init(&cp->server, scp->name, scp->workers, (guint)scp->queue_limit);
        g_ptr_array_add(g->cps, cp);
        cm_cmg_connection_id_new(&rng, cp->id);
        if (!sim_world_issue_cert(w, CM_CERT_CLIENT_AUTH, scp->name, CMG_SERIAL_BASE + serial++,
                                  &cp->key, &cp->cert, error))
            return FALSE;
        for (guint i = 0; i < g->n_inst; i++) {
            CmCmgCpInfo info = {.connection_id = cp->id,
                                .site_code = scn->site,
                                .name = scp->name,
                                .cert = cp->cert};
            if (!cm_cmg_add_connection_point(g->inst[i], &info, error))
                return FALSE;
        }
        cc = (CmCmgcpConfig){.connection_id = cp->id,
                             .site_code = scn->site,
                             .name = scp->name,
                             .cmg_name = scn->name,
                             .instances = g->n_inst,
                             .cmg_cert = g->cert,
                             .mappings = g->mappings};
        if ((cp->lib = cm_cmgcp_new(&cc, error)) == NULL)
            return FALSE;
        cm_sim_at(w->engine, 0, ev_cp_start, cp, 0);
    }

    /* A bulk registration token for each token population (REQ CMG-12). */
    for (guint i = 0; i < w->scn->populations->len; i++) {
        CmScnPopulation *p = g_ptr_array_index(w->scn->populations, i);
        char *token;
        if (g_strcmp0(p->cmg, scn->name) != 0 || !p->cmg_token)
            continue;
        token = cm_site_cmg_bulk_token(site->site, "scenario", 0, sim_now(w), &rng, NULL, error);
        if (token == NULL)
            return FALSE;
        g_hash_table_insert(g->bulk, g_strdup(p->name), token);
    }
    return TRUE;
}

gboolean
sim_cmg_build(SimWorld *w, GError **error)
{
    w->cmgs = g_ptr_array_new();
    for (guint i = 0; i < w->scn->cmgs->len; i++) {
        CmScnCmg *scn = g_ptr_array_index(w->scn->cmgs, i);
        if (!cmg_build_one(w, scn, i, error)) {
            g_prefix_error(error, "[cmg %s]: ", scn->name);
            return FALSE;
        }
    }
    /* The MPs hand out the CMG entries in their MP lists from now on. */
    for (guint i = 0; i < w->cmgs->len; i++)
        sim_world_refresh_mps(w, ((SimCmg *)g_ptr_array_index(w->cmgs, i))->site);
    return TRUE;
}

void
sim_cmg_free(SimWorld *w)
{
    for (guint i = 0; w->cmgs != NULL && i < w->cmgs->len; i++) {
        SimCmg *g = g_ptr_array_index(w->cmgs, i);
        for (guint k = 0; k < g->cps->len; k++) {
            SimCp *cp = g_ptr_array_index(g->cps, k);
            sim_server_clear(&cp->server);
            cm_cmgcp_free(cp->lib);
            cm_cert_unref(cp->cert);
            cm_key_unref(cp->key);
            g_free(cp);
        }
        for (guint k = 0; k < g->n_inst; k++) {
            if (g->inst[k] == NULL)
                continue;
            sim_server_clear(&g->server[k]);
            cm_cmg_free(g->inst[k]);
        }
        g_ptr_array_unref(g->cps);
        g_ptr_array_unref(g->entries);
        g_ptr_array_unref(g->entry_mps);
        g_ptr_array_unref(g->unpublished);
        g_ptr_array_unref(g->unpublished_mps);
        g_hash_table_unref(g->bulk);
        if (g->mappings != NULL)
            cm_cmg_mappings_unref(g->mappings);
        if (g->crl != NULL)
            cm_crl_unref(g->crl);
        cm_cert_unref(g->cert);
        cm_key_unref(g->key);
        g_free(g);
    }
    g_clear_pointer(&w->cmgs, g_ptr_array_unref);
}

/* The site adds its CMGs' entries to the MP list, internet-facing, HTTPS
 * for PKI clients and Enhanced HTTP for token clients (as the lab's site
 * does, daemons/site-cmg.c). */
void
sim_cmg_mplist(SimWorld *w, SimSite *site, json_t *list)
{
    json_t *mps = json_object_get(list, "mps");

    for (guint i = 0; w->cmgs != NULL && json_is_array(mps) && i < w->cmgs->len; i++) {
        SimCmg *g = g_ptr_array_index(w->cmgs, i);
        if (g->site != site)
            continue;
        for (guint k = 0; k < g->entries->len; k++) {
            const char *e = g_ptr_array_index(g->entries, k);
            const char *id = strrchr(e, '/');
            json_array_append_new(
                mps, json_pack("{s:s, s:I, s:b, s:b, s:b, s:b}", "name", e, "role_id",
                               (json_int_t)g_ascii_strtoull(id ? id + 1 : "0", NULL, 10), "http",
                               FALSE, "https", TRUE, "ehttp", TRUE, "internet", TRUE));
        }
    }
}

/* An internet client: its MP is a CMG entry, it reaches nothing else.
 * Runs on the install threads: reads only. */
void
sim_cmg_client_config(SimWorld *w, SimPop *p, SimClient *c, CmAgentConfig *cfg)
{
    SimCmg *g = cmg_find(w, p->scn->cmg);

    if (g == NULL)
        return;
    if (g->entries->len > 0)
        cfg->mp = g_ptr_array_index(g->entries, (guint)(c - w->clients) % g->entries->len);
    for (guint k = 0; p->scn->mp != NULL && k < g->entries->len; k++)
        if (g_ascii_strcasecmp(g_ptr_array_index(g->entry_mps, k), p->scn->mp) == 0)
            cfg->mp = g_ptr_array_index(g->entries, k);
    /* An MP whose CMG traffic is not enabled: its entry names nothing the
     * site published, and the gateway's URL filter refuses it (REQ CMG-05). */
    for (guint k = 0; p->scn->mp != NULL && k < g->unpublished->len; k++)
        if (g_ascii_strcasecmp(g_ptr_array_index(g->unpublished_mps, k), p->scn->mp) == 0)
            cfg->mp = g_ptr_array_index(g->unpublished, k);
    cfg->on_internet = TRUE;
    cfg->dns_mps = NULL;
    cfg->directory = NULL;
    cfg->keepalive_interval = 0; /* the CMG does not carry the notification channel */
}

/* ------------------------------------------------------------- the path */

static void ev_gw_arrive(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_gw_done(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_cp_arrive(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_cp_done(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_to_mp(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_cp_back(CmSimEngine *e, void *ctx, guint64 arg);

/* The gateway's answer to the client leaves at time at. */
static void
gw_answer(SimWorld *w, SimJob *job, CmTime at)
{
    SimCmgHop *hop = job->cmg_hop;
    gsize bytes = job->resp.status != 0 ? sim_nominal_size(job->req.ep, TRUE) : 0;
    CmTime d = sim_net_delay(w, hop->cmg->seg, job->seg, bytes);

    hop->cmg->egress_bytes += bytes;
    sim_job_answer(w, job, at + MAX(d, 0));
}

/* A try that failed and that the client will make again: its traffic. */
static void
count_retry(SimCmg *g, gsize bytes)
{
    g->retry_requests++;
    g->retry_bytes += bytes;
}

/* The gateway answers busy: no connection point took it in time. */
static void
gw_busy(SimWorld *w, SimJob *job, CmTime at, const char *why)
{
    SimCmgHop *hop = job->cmg_hop;

    cm_response_clear(&job->resp);
    cm_response_refuse(&job->resp, CM_REASON_BUSY, "%s", why);
    job->resp.retry_after = CM_CMG_CHECK_INTERVAL;
    hop->cmg->busy++;
    w->busy_answers++;
    count_retry(hop->cmg,
                sim_nominal_size(job->req.ep, FALSE) + sim_nominal_size(job->req.ep, TRUE));
    gw_answer(w, job, at);
}

/* The connection point died with the request: the gateway waits out its
 * answer timeout, then answers busy and the client retries. */
static void
lost_in_flight(SimWorld *w, SimJob *job)
{
    SimCmgHop *hop = job->cmg_hop;

    hop->cmg->lost++;
    gw_busy(w, job, hop->forwarded_at + CMG_ANSWER_TIMEOUT,
            "the connection point did not answer; retry later");
}

static gboolean
cp_alive(const SimCmgHop *hop)
{
    return !hop->cp->down && hop->cp->gen == hop->cp_gen;
}

gboolean
sim_cmg_send(SimWorld *w, SimPop *p, SimClient *c, SimJob *job)
{
    char name[CM_CMG_NAME_MAX + 1];
    guint64 role_id;
    SimCmg *g;
    SimCmgHop *hop;
    CmTime now = cm_sim_now(w->engine), d;
    gboolean token = p->scn->cmg_token;

    if (strstr(job->send->mp, "/CCM_Proxy_") == NULL ||
        !cm_cmgurl_mp_entry_parse(job->send->mp, name, &role_id, NULL) ||
        (g = cmg_find(w, name)) == NULL)
        return FALSE; /* not a CMG entry: the network decides (sim_job_send) */
    hop = g_new0(SimCmgHop, 1);
    hop->cmg = g;
    hop->instance = (guint)(c - w->clients) % g->n_inst; /* the load balancer, by client */
    hop->pki = !token;
    job->cmg_hop = hop;
    job->mp = NULL;
    job->sent_at = now;
    job->seg = c->seg;
    w->sent[job->req.ep]++;
    w->sent_window[job->req.ep]++;
    if (token) {
        const char *t = cm_agent_cmg_token(c->agent);
        hop->token = g_strdup(t != NULL ? t : g_hash_table_lookup(g->bulk, p->scn->name));
    }
    d = sim_net_delay(w, c->seg, g->seg, sim_nominal_size(job->req.ep, FALSE));
    if (!cm_cmg_client_path(token ? CM_CMG_AUTH_SERVER : CM_CMG_AUTH_MUTUAL, role_id, job->req.ep,
                            &hop->path, &hop->query) ||
        d < 0) {
        /* Not carried (the notification channel), or no route: the
         * connection fails. */
        job->resp.status = 0;
        sim_job_answer(w, job, now + (d < 0 ? w->connect_timeout : 0));
        return TRUE;
    }
    cm_sim_at(w->engine, now + d, ev_gw_arrive, w, GPOINTER_TO_SIZE(job));
    return TRUE;
}

/* What deciding it costs: the pre-authentication dominates. */
static CmTime
gw_cost(SimWorld *w, SimJob *job)
{
    const SimCmgHop *hop = job->cmg_hop;

    if (!hop->pki)
        return w->costs.cmg_token;
    return w->costs.cmg_pki + (hop->cmg->scn->crl_check ? w->costs.cmg_crl : 0);
}

static CmTime
cp_cost(SimWorld *w, SimJob *job)
{
    (void)job;
    return w->costs.cp_forward;
}

static void
ev_gw_arrive(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimCmgHop *hop = job->cmg_hop;
    SimServer *s = &hop->cmg->server[hop->instance];

    (void)e;
    hop->cmg->requests++;
    if (!sim_server_take(w, s, job, gw_cost(w, job), ev_gw_done)) {
        sim_server_busy(s, &job->resp);
        hop->cmg->busy++;
        count_retry(hop->cmg,
                    sim_nominal_size(job->req.ep, FALSE) + sim_nominal_size(job->req.ep, TRUE));
        gw_answer(w, job, cm_sim_now(w->engine));
    }
}

/* cm_cmg_handle decides: forward to the connection point its round robin
 * picked, refuse, or drop the connection (REQ CMG-02..07). */
static void
ev_gw_done(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimCmgHop *hop = job->cmg_hop;
    SimCmg *g = hop->cmg;
    SimServer *s = &g->server[hop->instance];
    CmTime now = cm_sim_now(w->engine);
    SimClient *c = job->client;
    CmCmgRequest creq = {.path = hop->path,
                         .query = hop->query,
                         .content_length = sim_nominal_size(job->req.ep, FALSE),
                         .tls = CM_TLS_1_2,
                         .client_cert = hop->pki ? c->pki_cert : NULL,
                         .token = hop->token,
                         .smsid = job->req.smsid};
    CmCmgVerdict v = {0};
    CmCmgAction action;

    (void)e;
    s->served++;
    s->served_ep[job->req.ep]++;
    load_crl(w, g);
    action = cm_cmg_handle(g->inst[hop->instance], &creq, sim_now(w), &v);
    watch_live(w, g);
    switch (action) {
    case CM_CMG_FORWARD: {
        SimCp *cp = NULL;
        for (guint k = 0; k < g->cps->len && cp == NULL; k++)
            if (strcmp(((SimCp *)g_ptr_array_index(g->cps, k))->id, v.connection_id) == 0)
                cp = g_ptr_array_index(g->cps, k);
        if (cp == NULL) { /* cannot be: every registered one is ours */
            gw_busy(w, job, now, "no connection point");
            break;
        }
        g->forwarded++;
        g->window++;
        cp->forwarded++;
        cp->window++;
        if (!any_down(g))
            cp->forwarded_all_up++;
        for (guint k = 0; k < g->cps->len; k++) {
            SimCp *o = g_ptr_array_index(g->cps, k);
            if (o->down && now - o->down_since > CM_CMG_CP_TIMEOUT)
                o->outage_forwards++;
        }
        hop->cp = cp;
        hop->cp_gen = cp->gen;
        hop->forwarded_at = now;
        if (cp->down) {
            cp->forwarded_down++;
            if (now - cp->down_since > CM_CMG_CP_TIMEOUT)
                cp->forwarded_lapsed++;
            lost_in_flight(w, job);
            break;
        }
        /* The identity the gateway established travels with the request,
         * as the lab's CCM-Forwarded headers; the MP sees its connection
         * point's HTTPS. */
        job->req.peer = v.peer;
        job->req.transport = CM_TRANSPORT_HTTPS;
        {
            CmTime d = cp_delay(w, cp, sim_nominal_size(job->req.ep, FALSE));
            cm_sim_at(w->engine, now + MAX(d, 0), ev_cp_arrive, w, GPOINTER_TO_SIZE(job));
        }
        break;
    }
    case CM_CMG_REFUSE:
        g->refusals[v.resp.reason < CM_REASON__COUNT ? v.resp.reason : 0]++;
        if (v.resp.reason == CM_REASON_BUSY)
            w->busy_answers++;
        if (v.resp.reason == CM_REASON_BUSY)
            count_retry(g,
                        sim_nominal_size(job->req.ep, FALSE) + sim_nominal_size(job->req.ep, TRUE));
        cm_response_clear(&job->resp);
        job->resp = v.resp;
        memset(&v.resp, 0, sizeof v.resp);
        gw_answer(w, job, now);
        break;
    case CM_CMG_DROP:
        /* The handshake fails: revocation status unknown (REQ CMG-03). */
        g->dropped++;
        g->crl_retries++;
        g->crl_retry_bytes += CMG_HANDSHAKE_BYTES;
        count_retry(g, CMG_HANDSHAKE_BYTES);
        g->egress_bytes += CMG_HANDSHAKE_BYTES / 2;
        cm_response_clear(&job->resp);
        job->resp.status = 0;
        gw_answer(w, job, now);
        break;
    }
    cm_cmg_verdict_clear(&v);
    sim_server_done(w, s, gw_cost, ev_gw_done);
}

static void
ev_cp_arrive(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimCmgHop *hop = job->cmg_hop;

    (void)e;
    if (!cp_alive(hop)) {
        lost_in_flight(w, job);
        return;
    }
    if (!sim_server_take(w, &hop->cp->server, job, cp_cost(w, job), ev_cp_done)) {
        CmTime d = cp_delay(w, hop->cp, sim_nominal_size(job->req.ep, TRUE));
        sim_server_busy(&hop->cp->server, &job->resp);
        hop->cmg->busy++;
        count_retry(hop->cmg,
                    sim_nominal_size(job->req.ep, FALSE) + sim_nominal_size(job->req.ep, TRUE));
        gw_answer(w, job, cm_sim_now(w->engine) + MAX(d, 0));
    }
}

/* The connection point maps the URL to its MP (REQ CMG-08). */
static void
ev_cp_done(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimCmgHop *hop = job->cmg_hop;
    SimCp *cp = hop->cp;
    CmTime now = cm_sim_now(w->engine);
    GError *error = NULL;

    (void)e;
    cp->server.served++;
    cp->server.served_ep[job->req.ep]++;
    if (!cp_alive(hop)) {
        lost_in_flight(w, job);
    } else if (!cm_cmgcp_route(cp->lib, hop->path, hop->query, sim_nominal_size(job->req.ep, FALSE),
                               &hop->route, &error) ||
               (job->mp = sim_world_mp(w, hop->route.server)) == NULL) {
        CmTime d = cp_delay(w, cp, sim_nominal_size(job->req.ep, TRUE));
        cm_response_clear(&job->resp);
        cm_response_refuse(&job->resp, CM_REASON_UNKNOWN_ENDPOINT, "%s",
                           error != NULL ? error->message : "no such MP");
        g_clear_error(&error);
        job->mp = NULL;
        gw_answer(w, job, now + MAX(d, 0));
    } else {
        CmTime d = sim_net_delay(w, cp->seg, job->mp->seg, sim_nominal_size(job->req.ep, FALSE));
        if (d < 0) {
            job->mp = NULL;
            gw_busy(w, job, now + MAX(cp_delay(w, cp, 0), 0),
                    "the connection point cannot reach that MP");
        } else {
            cm_sim_at(w->engine, now + d, ev_to_mp, w, GPOINTER_TO_SIZE(job));
        }
    }
    sim_server_done(w, &cp->server, cp_cost, ev_cp_done);
}

static void
ev_to_mp(CmSimEngine *e, void *ctx, guint64 arg)
{
    (void)e;
    sim_mp_take(ctx, GSIZE_TO_POINTER(arg));
}

void
sim_cmg_reply(SimWorld *w, SimJob *job)
{
    SimCmgHop *hop = job->cmg_hop;
    CmTime d = sim_net_delay(w, job->mp->seg, hop->cp->seg, sim_nominal_size(job->req.ep, TRUE));

    cm_sim_at(w->engine, cm_sim_now(w->engine) + MAX(d, 0), ev_cp_back, w, GPOINTER_TO_SIZE(job));
}

/* The MP's answer reaches the connection point: on to the gateway and the
 * client, counted for the traffic report. */
static void
ev_cp_back(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimCmgHop *hop = job->cmg_hop;
    gsize bytes = sim_nominal_size(job->req.ep, TRUE);
    CmTime d;

    (void)e;
    if (!cp_alive(hop)) {
        lost_in_flight(w, job);
        return;
    }
    cm_cmgcp_routed(hop->cp->lib, &hop->route, bytes, job->resp.status);
    hop->cp->served++;
    d = cp_delay(w, hop->cp, bytes);
    gw_answer(w, job, cm_sim_now(w->engine) + MAX(d, 0));
}

/* ------------------------------------------------------------- metrics */

void
sim_cmg_sample(SimWorld *w)
{
    for (guint i = 0; w->cmgs != NULL && i < w->cmgs->len; i++) {
        SimCmg *g = g_ptr_array_index(w->cmgs, i);
        g_autofree char *live = g_strdup_printf("cmg.%s.cp_live", g->scn->name);
        guint min_live = G_MAXUINT;

        watch_live(w, g);
        for (guint k = 0; k < g->n_inst; k++)
            min_live = MIN(min_live, g->live_last[k]);
        cm_series_append(cm_run_series(w->run, live, "connection points"), (double)min_live);
        for (guint k = 0; k < g->cps->len; k++) {
            SimCp *cp = g_ptr_array_index(g->cps, k);
            g_autofree char *name = g_strdup_printf("cmg.%s.share.%s", g->scn->name, cp->scn->name);
            cm_series_append(cm_run_series(w->run, name, "ratio"),
                             g->window ? (double)cp->window / (double)g->window : 0);
            cp->window = 0;
        }
        g->window = 0;
    }
}

/* The largest departure from an even share, relative to it: 0.05 means
 * some connection point got 5% more or less than 1/n of the requests. */
static double
share_deviation(const guint64 *counts, guint n)
{
    guint64 total = 0;
    double worst = 0;

    for (guint k = 0; k < n; k++)
        total += counts[k];
    if (total == 0)
        return -1;
    for (guint k = 0; k < n; k++)
        worst = MAX(worst, fabs((double)counts[k] * n / (double)total - 1.0));
    return worst;
}

void
sim_cmg_metrics(SimWorld *w)
{
    guint64 sum[16] = {0};
    guint64 refusals[CM_REASON__COUNT] = {0};
    double dev_max = -1, outage_max = -1, recovered_min = -1, lapse_max = 0;
    guint64 failures = 0, recoveries = 0;
    enum { REQ, FWD, DROP, LOST, BUSY, CRL, CRLB, RETRY, RETRYB, EGRESS, LIVE, FPKI, FTOKEN };

    if (w->cmgs == NULL || w->cmgs->len == 0)
        return;
    for (guint i = 0; i < w->cmgs->len; i++) {
        SimCmg *g = g_ptr_array_index(w->cmgs, i);
        const char *gn = g->scn->name;
        guint64 all_up[CM_CMG_MAX_CPS] = {0};
        guint64 pki = 0, token = 0, bulk = 0, verif = 0, hits = 0, refused = 0;
        guint backlog = 0, queue = 0;
        guint64 served = 0, overloaded = 0;
        double dev;

        watch_live(w, g);
        for (guint k = 0; k < g->n_inst; k++) {
            const CmCmgCounters *cc = cm_cmg_counters(g->inst[k]);
            pki += (guint64)cc->by_auth[CM_AUTH_PKI];
            token += (guint64)cc->by_auth[CM_AUTH_TOKEN];
            bulk += (guint64)cc->bulk_registrations;
            verif += (guint64)cc->token_verifications;
            hits += (guint64)cc->token_cache_hits;
            backlog = MAX(backlog, g->server[k].max_backlog);
            queue = MAX(queue, g->server[k].max_len);
            served += g->server[k].served;
            overloaded += g->server[k].overloaded;
        }
        sim_metric_setf(w, (double)g->requests, "cmg.%s.requests", gn);
        sim_metric_setf(w, (double)g->forwarded, "cmg.%s.forwarded", gn);
        sim_metric_setf(w, (double)pki, "cmg.%s.forwarded_pki", gn);
        sim_metric_setf(w, (double)token, "cmg.%s.forwarded_token", gn);
        sim_metric_setf(w, (double)bulk, "cmg.%s.bulk_registrations", gn);
        sim_metric_setf(w, (double)verif, "cmg.%s.token_verifications", gn);
        sim_metric_setf(w, (double)hits, "cmg.%s.token_cache_hits", gn);
        sim_metric_setf(w, (double)g->dropped, "cmg.%s.dropped", gn);
        sim_metric_setf(w, (double)g->lost, "cmg.%s.lost_in_flight", gn);
        sim_metric_setf(w, (double)g->busy, "cmg.%s.busy", gn);
        sim_metric_setf(w, (double)g->crl_retries, "cmg.%s.crl_retries", gn);
        sim_metric_setf(w, (double)g->crl_retry_bytes, "cmg.%s.crl_retry_bytes", gn);
        sim_metric_setf(w, (double)g->retry_requests, "cmg.%s.retry_requests", gn);
        sim_metric_setf(w, (double)g->retry_bytes, "cmg.%s.retry_bytes", gn);
        sim_metric_setf(w, (double)g->egress_bytes, "cmg.%s.egress_bytes", gn);
        sim_metric_setf(w, (double)g->live_changes, "cmg.%s.live_changes", gn);
        sim_metric_setf(w, (double)backlog, "cmg.%s.backlog.max", gn);
        sim_metric_setf(w, (double)queue, "cmg.%s.queue.max", gn);
        sim_metric_setf(w, (double)served, "cmg.%s.served", gn);
        sim_metric_setf(w, (double)overloaded, "cmg.%s.overloaded", gn);
        for (int r = 1; r < CM_REASON__COUNT; r++) {
            refused += g->refusals[r];
            refusals[r] += g->refusals[r];
            if (g->refusals[r] > 0)
                sim_metric_setf(w, (double)g->refusals[r], "cmg.%s.refused.%s", gn,
                                cm_reason_name(r));
        }
        sim_metric_setf(w, (double)refused, "cmg.%s.refused", gn);
        sum[REQ] += g->requests;
        sum[FWD] += g->forwarded;
        sum[DROP] += g->dropped;
        sum[LOST] += g->lost;
        sum[BUSY] += g->busy;
        sum[CRL] += g->crl_retries;
        sum[CRLB] += g->crl_retry_bytes;
        sum[RETRY] += g->retry_requests;
        sum[RETRYB] += g->retry_bytes;
        sum[EGRESS] += g->egress_bytes;
        sum[LIVE] += g->live_changes;
        sum[FPKI] += pki;
        sum[FTOKEN] += token;

        for (guint k = 0; k < g->cps->len; k++) {
            SimCp *cp = g_ptr_array_index(g->cps, k);
            const char *cn = cp->scn->name;
            const CmCmgcpStatus *st = cm_cmgcp_status(cp->lib);
            all_up[k] = cp->forwarded_all_up;
            sim_metric_setf(w, (double)cp->forwarded, "cp.%s.forwarded", cn);
            sim_metric_setf(w, g->forwarded ? (double)cp->forwarded / (double)g->forwarded : 0,
                            "cp.%s.share", cn);
            sim_metric_setf(w, (double)cp->served, "cp.%s.served", cn);
            sim_metric_setf(w, (double)cp->forwarded_down, "cp.%s.lost_in_flight", cn);
            sim_metric_setf(w, (double)cp->failures, "cp.%s.failures", cn);
            sim_metric_setf(w, (double)cp->recoveries, "cp.%s.recoveries", cn);
            sim_metric_setf(w, (double)st->up, "cp.%s.instances_up", cn);
            sim_metric_setf(w, (double)st->hellos, "cp.%s.hellos", cn);
            sim_metric_setf(w, (double)st->checks, "cp.%s.checks", cn);
            sim_metric_setf(w, (double)st->check_failures, "cp.%s.check_failures", cn);
            sim_metric_setf(w, (double)st->reconnects, "cp.%s.reconnects", cn);
            sim_metric_setf(w, (double)cp->status_reports, "cp.%s.status_reports", cn);
            sim_metric_setf(w, (double)cp->traffic_reports, "cp.%s.traffic_reports", cn);
            sim_metric_setf(w, (double)st->routed, "cp.%s.routed", cn);
            sim_metric_setf(w, (double)cp->server.max_backlog, "cp.%s.backlog.max", cn);
            sim_metric_setf(w, (double)cp->server.overloaded, "cp.%s.overloaded", cn);
            failures += cp->failures;
            recoveries += cp->recoveries;
            if (cp->down && !cp->lapsed) /* down at the end, still routed to */
                cp->lapse_max = MAX(cp->lapse_max, cm_sim_now(w->engine) - cp->down_since);
            if (cp->failures > 0) {
                double lapse = (double)cp->lapse_max / 1e6;
                sim_metric_setf(w, lapse, "cp.%s.lapse_time", cn);
                lapse_max = MAX(lapse_max, lapse);
            }
            if (cp->outage_forwards > 0) {
                double share = (double)cp->forwarded_lapsed / (double)cp->outage_forwards;
                sim_metric_setf(w, share, "cp.%s.outage_share", cn);
                outage_max = MAX(outage_max, share);
            }
            if (cp->recovered && g->forwarded > cp->cmg_at_recovery) {
                double share = (double)(cp->forwarded - cp->at_recovery) /
                               (double)(g->forwarded - cp->cmg_at_recovery);
                sim_metric_setf(w, share, "cp.%s.recovered_share", cn);
                recovered_min = recovered_min < 0 ? share * g->cps->len
                                                  : MIN(recovered_min, share * g->cps->len);
            }
        }
        dev = share_deviation(all_up, g->cps->len);
        if (dev >= 0) {
            sim_metric_setf(w, dev, "cmg.%s.cp_share_max_deviation", gn);
            dev_max = MAX(dev_max, dev);
        }
    }
    sim_metric_setf(w, (double)sum[REQ], "cmg.requests");
    sim_metric_setf(w, (double)sum[FWD], "cmg.forwarded");
    sim_metric_setf(w, (double)sum[FPKI], "cmg.forwarded_pki");
    sim_metric_setf(w, (double)sum[FTOKEN], "cmg.forwarded_token");
    sim_metric_setf(w, (double)sum[DROP], "cmg.dropped");
    sim_metric_setf(w, (double)sum[LOST], "cmg.lost_in_flight");
    sim_metric_setf(w, (double)sum[BUSY], "cmg.busy");
    sim_metric_setf(w, (double)sum[CRL], "cmg.crl_retries");
    sim_metric_setf(w, (double)sum[CRLB], "cmg.crl_retry_bytes");
    sim_metric_setf(w, (double)sum[RETRY], "cmg.retry_requests");
    sim_metric_setf(w, (double)sum[RETRYB], "cmg.retry_bytes");
    sim_metric_setf(w, (double)sum[EGRESS], "cmg.egress_bytes");
    sim_metric_setf(w, (double)sum[LIVE], "cmg.live_changes");
    sim_metric_setf(w, (double)failures, "cmg.cp_failures");
    sim_metric_setf(w, (double)recoveries, "cmg.cp_recoveries");
    {
        guint64 refused = 0;
        for (int r = 1; r < CM_REASON__COUNT; r++) {
            refused += refusals[r];
            if (refusals[r] > 0)
                sim_metric_setf(w, (double)refusals[r], "cmg.refused.%s", cm_reason_name(r));
        }
        sim_metric_setf(w, (double)refused, "cmg.refused");
    }
    if (dev_max >= 0)
        sim_metric_setf(w, dev_max, "cmg.cp_share_max_deviation");
    if (failures > 0)
        sim_metric_setf(w, lapse_max, "cmg.lapse_time_max");
    if (outage_max >= 0)
        sim_metric_setf(w, outage_max, "cmg.outage_share_max");
    if (recovered_min >= 0)
        sim_metric_setf(w, recovered_min, "cmg.recovered_share_ratio_min");
}
