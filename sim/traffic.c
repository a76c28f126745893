/* traffic.c - requests on their way: a client's agent sends, the network
 * carries the bytes, the MP's workers take it from their queue and run the
 * real MP code, a forwarded request crosses to the site and its queue, the
 * real site code answers, and the answer travels back to the agent.
 *
 * A full queue answers 503 with Retry-After at once, as IIS does when its
 * request queue is full; agents honour it.  Role code runs at the end of
 * its service time, so what it commits lands at the virtual time the work
 * would finish. */
#include "world.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------- histograms */

#define HIST_BASE_US 10.0
#define HIST_STEPS 16.0 /* buckets per doubling */

void
sim_hist_add(SimHist *h, CmTime latency)
{
    double us = latency < 1 ? 1 : (double)latency;
    int b = us <= HIST_BASE_US ? 0 : (int)(log2(us / HIST_BASE_US) * HIST_STEPS) + 1;

    h->counts[MIN(b, SIM_HIST_BUCKETS - 1)]++;
    h->n++;
}

double
sim_hist_quantile(const SimHist *h, double p)
{
    guint64 want, seen = 0;

    if (h->n == 0)
        return 0;
    want = (guint64)ceil(p * (double)h->n);
    if (want == 0)
        want = 1;
    for (int b = 0; b < SIM_HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= want) {
            /* The bucket's upper edge, in seconds. */
            double us = b == 0 ? HIST_BASE_US : HIST_BASE_US * exp2((double)b / HIST_STEPS);
            return us / 1e6;
        }
    }
    return HIST_BASE_US * exp2(SIM_HIST_BUCKETS / HIST_STEPS) / 1e6;
}

/* ------------------------------------------------------------- servers */

void
sim_server_init(SimServer *s, const char *name, int workers, guint limit)
{
    memset(s, 0, sizeof *s);
    s->name = g_strdup(name);
    s->workers = MAX(workers, 1);
    s->queue_limit = limit;
    s->ring_cap = 64;
    s->ring = g_new(SimJob *, s->ring_cap);
    s->retry_after = 60 * CM_USEC_PER_SEC;
    s->busy_since = -1;
}

void
sim_server_clear(SimServer *s)
{
    /* Jobs still queued at the end of a run belong to no one else. */
    for (guint i = 0; i < s->len; i++)
        sim_job_free(s->ring[(s->head + i) % s->ring_cap]);
    g_free(s->ring);
    g_free(s->name);
}

guint
sim_server_backlog(const SimServer *s)
{
    return s->len + (guint)s->busy;
}

static void
ring_push(SimServer *s, SimJob *job)
{
    if (s->len == s->ring_cap) {
        SimJob **bigger = g_new(SimJob *, s->ring_cap * 2);
        for (guint i = 0; i < s->len; i++)
            bigger[i] = s->ring[(s->head + i) % s->ring_cap];
        g_free(s->ring);
        s->ring = bigger;
        s->head = 0;
        s->ring_cap *= 2;
    }
    s->ring[(s->head + s->len++) % s->ring_cap] = job;
    s->max_len = MAX(s->max_len, s->len);
}

static SimJob *
ring_pop(SimServer *s)
{
    SimJob *job = s->ring[s->head];

    s->head = (s->head + 1) % s->ring_cap;
    s->len--;
    return job;
}

static void
backlog_changed(SimServer *s, CmTime now)
{
    guint b = sim_server_backlog(s);

    s->max_backlog = MAX(s->max_backlog, b);
    if (b > 0 && s->busy_since < 0) {
        s->busy_since = now;
    } else if (b == 0 && s->busy_since >= 0) {
        s->longest_busy = MAX(s->longest_busy, now - s->busy_since);
        s->busy_since = -1;
    }
}

/* ------------------------------------------------------------- jobs */

void
sim_job_free(SimJob *job)
{
    if (job == NULL)
        return;
    if (job->send != NULL) {
        g_bytes_unref(job->send->body);
        g_free(job->send);
    }
    if (job->body != NULL)
        g_bytes_unref(job->body);
    sim_cmg_hop_free(job->cmg_hop);
    cm_response_clear(&job->resp);
    g_free(job);
}

/* Message sizes for transfer times.  Not the bytes actually sent: those
 * vary with ECDSA signature lengths (DER, 70 to 72 bytes) and so with the
 * OpenSSL random generator, and a byte more could move an event across a
 * microsecond and change the run.  These nominal sizes (HTTP headers
 * included) are close to what each message weighs. */
static gsize
nominal_size(CmEndpoint ep, gboolean response)
{
    switch (ep) {
    case CM_EP_REGISTER:
        return response ? 1200 : 2000;
    case CM_EP_SITEINFO:
        return response ? 2200 : 400;
    case CM_EP_MPCERT:
        return response ? 1300 : 400;
    case CM_EP_POLICY_BODY:
        return response ? 2000 : 700;
    case CM_EP_INVENTORY:
    case CM_EP_DISCOVERY:
        return response ? 450 : 3000;
    case CM_EP_CLIENT_STATUS:
        return response ? 450 : 1500;
    default:
        return response ? 700 : 700;
    }
}

static void ev_client_response(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_mp_arrive(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_mp_done(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_site_arrive(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_site_done(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_mp_relay(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_client_timer(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_transport_failed(CmSimEngine *e, void *ctx, guint64 arg);
static void site_hand_over(SimWorld *w, SimJob *job);
static void site_wait(SimWorld *w, SimJob *job);

static void
reply_to_client(SimWorld *w, SimJob *job, guint client_seg)
{
    CmTime d;

    if (job->cmg_hop != NULL) {
        sim_cmg_reply(w, job); /* back through the connection point and the gateway */
        return;
    }
    d = sim_net_delay(w, job->mp->seg, client_seg, nominal_size(job->req.ep, TRUE));
    cm_sim_at(w->engine, cm_sim_now(w->engine) + MAX(d, 0), ev_client_response, w,
              GPOINTER_TO_SIZE(job));
}

static void
overload_answer(SimServer *s, CmResponse *resp)
{
    cm_response_refuse(resp, CM_REASON_BUSY, "%s is busy: its request queue is full (%u)", s->name,
                       s->queue_limit);
    resp->retry_after = s->retry_after;
}

/* A job reaches a server: a free worker takes it, or it waits, or the full
 * queue turns it away.  Returns FALSE when turned away. */
static gboolean
server_arrive(SimWorld *w, SimServer *s, SimJob *job, CmTime cost, CmSimFn done)
{
    CmTime now = cm_sim_now(w->engine);

    if (s->busy < s->workers) {
        s->busy++;
        cm_sim_at(w->engine, now + cost, done, w, GPOINTER_TO_SIZE(job));
    } else if (s->len < s->queue_limit) {
        ring_push(s, job);
    } else {
        s->overloaded++;
        w->busy_answers++;
        return FALSE;
    }
    backlog_changed(s, now);
    return TRUE;
}

/* A worker finished: it takes the next job, if any. */
static void
server_next(SimWorld *w, SimServer *s, CmTime (*cost_of)(SimWorld *, SimJob *), CmSimFn done)
{
    CmTime now = cm_sim_now(w->engine);

    if (s->len > 0) {
        SimJob *next = ring_pop(s);
        cm_sim_at(w->engine, now + cost_of(w, next), done, w, GPOINTER_TO_SIZE(next));
    } else {
        s->busy--;
    }
    backlog_changed(s, now);
}

static CmTime
mp_cost(SimWorld *w, SimJob *job)
{
    return w->costs.mp[job->req.ep < CM_EP__COUNT ? job->req.ep : 0];
}

static CmTime
site_cost(SimWorld *w, SimJob *job)
{
    return w->costs.site[job->req.ep < CM_EP__COUNT ? job->req.ep : 0];
}

/* ------------------------------------------------------------- the path */

static guint
origin_seg(SimJob *job)
{
    return job->seg;
}

static void
ev_mp_arrive(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimMp *mp = job->mp;

    (void)e;
    /* Over HTTPS the client checks the MP's server certificate against the
     * enterprise PKI; a rogue MP has none (REQ TRUST-07). */
    if (job->req.transport == CM_TRANSPORT_HTTPS && mp->rogue) {
        cm_response_refuse(&job->resp, CM_REASON_UNTRUSTED,
                           "TLS handshake: the server certificate does not chain to the PKI");
        job->resp.status = 0;
        reply_to_client(w, job, origin_seg(job));
        return;
    }
    /* A PKI client's TLS handshake checks its certificate against the
     * site's trust store, CRL included (REQ TRUST-14, REG-04). */
    if (job->req.peer.kind == CM_AUTH_PKI && job->req.peer.client_cert != NULL) {
        GError *error = NULL;
        if (!cm_trust_verify(cm_site_pki_trust(mp->site->site), job->req.peer.client_cert, NULL,
                             sim_now(w), CM_PURPOSE_CLIENT_AUTH, NULL, &error)) {
            cm_response_refuse(&job->resp, cm_reason_from_error(error), "TLS handshake: %s",
                               error->message);
            g_error_free(error);
            job->resp.status = 0; /* a failed handshake is a transport failure */
            reply_to_client(w, job, origin_seg(job));
            return;
        }
    }
    if (!server_arrive(w, &mp->server, job, mp_cost(w, job), ev_mp_done)) {
        overload_answer(&mp->server, &job->resp);
        reply_to_client(w, job, origin_seg(job));
    }
}

static void
ev_mp_done(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimMp *mp = job->mp;

    (void)e;
    mp->server.served++;
    mp->server.served_ep[job->req.ep]++;
    if (cm_mp_handle(mp->mp, &job->req, sim_now(w), &job->resp) == CM_MP_FORWARD) {
        CmTime d = sim_net_delay(w, mp->seg, mp->site->seg, nominal_size(job->req.ep, FALSE));
        cm_sim_at(w->engine, cm_sim_now(w->engine) + MAX(d, 0), ev_site_arrive, w,
                  GPOINTER_TO_SIZE(job));
    } else {
        if (mp->compromised)
            sim_mp_tamper(w, mp, job);
        reply_to_client(w, job, origin_seg(job));
    }
    server_next(w, &mp->server, mp_cost, ev_mp_done);
}

static void
ev_site_arrive(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimSite *site = job->mp->site;

    (void)e;
    if (!server_arrive(w, &site->server, job, site_cost(w, job), ev_site_done)) {
        CmTime d = sim_net_delay(w, site->seg, job->mp->seg, nominal_size(job->req.ep, TRUE));
        overload_answer(&site->server, &job->resp);
        cm_sim_at(w->engine, cm_sim_now(w->engine) + MAX(d, 0), ev_mp_relay, w,
                  GPOINTER_TO_SIZE(job));
    }
}

static void
ev_site_done(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    SimSite *site = job->mp->site;
    CmTime d;

    (void)e;
    site->server.served++;
    site->server.served_ep[job->req.ep]++;
    if (w->site_worker != NULL)
        site_hand_over(w, job);
    else
        cm_site_handle(site->site, &job->req, sim_now(w), &job->resp);
    d = sim_net_delay(w, site->seg, job->mp->seg, nominal_size(job->req.ep, TRUE));
    cm_sim_at(w->engine, cm_sim_now(w->engine) + MAX(d, 0), ev_mp_relay, w, GPOINTER_TO_SIZE(job));
    server_next(w, &site->server, site_cost, ev_site_done);
}

static void
ev_mp_relay(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);

    (void)e;
    site_wait(w, job);
    cm_mp_forwarded(job->mp->mp, &job->req, &job->resp, sim_now(w));
    if (job->mp->compromised)
        sim_mp_tamper(w, job->mp, job);
    reply_to_client(w, job, origin_seg(job));
}

static void
ev_client_response(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimJob *job = GSIZE_TO_POINTER(arg);
    CmTime now = cm_sim_now(e);
    CmAgentActions act;
    SimClient *c = job->client;
    gboolean transport_ok = job->resp.status != 0;

    sim_hist_add(&w->lat[job->req.ep], now - job->sent_at);
    sim_hist_add(&w->lat_window[job->req.ep], now - job->sent_at);
    if (job->kind == JOB_ATTACK) {
        /* An attacker may look at the site to judge its outcome. */
        sim_site_sync(w);
        if (job->on_done != NULL)
            job->on_done(w, job);
        sim_job_free(job);
        return;
    }
    if (!transport_ok)
        w->transport_failures++;
    cm_agent_actions_init(&act);
    cm_agent_on_response(c->agent, job->send_id, transport_ok ? &job->resp : NULL, sim_now(w),
                         &act);
    sim_job_free(job);
    sim_client_actions(w, c, &act);
    cm_agent_actions_clear(&act);
}

static void
ev_transport_failed(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimJob *job = GSIZE_TO_POINTER(arg);

    job->resp.status = 0;
    ev_client_response(e, ctx, arg);
}

void
sim_job_send(SimWorld *w, SimJob *job, guint seg)
{
    CmTime d;
    gsize bytes = nominal_size(job->req.ep, FALSE);

    job->sent_at = cm_sim_now(w->engine);
    job->seg = seg;
    w->sent[job->req.ep]++;
    w->sent_window[job->req.ep]++;
    d = job->mp != NULL ? sim_net_delay(w, seg, job->mp->seg, bytes) : -1;
    if (d < 0) {
        /* No route, or no such host: the connection times out. */
        cm_sim_at(w->engine, job->sent_at + w->connect_timeout, ev_transport_failed, w,
                  GPOINTER_TO_SIZE(job));
        return;
    }
    cm_sim_at(w->engine, job->sent_at + d, ev_mp_arrive, w, GPOINTER_TO_SIZE(job));
}

/* ------------------------------------------------ for other paths (cmg.c) */

gboolean
sim_server_take(SimWorld *w, SimServer *s, SimJob *job, CmTime cost, CmSimFn done)
{
    return server_arrive(w, s, job, cost, done);
}

void
sim_server_done(SimWorld *w, SimServer *s, CmTime (*cost_of)(SimWorld *, SimJob *), CmSimFn done)
{
    server_next(w, s, cost_of, done);
}

void
sim_server_busy(SimServer *s, CmResponse *resp)
{
    overload_answer(s, resp);
}

void
sim_mp_take(SimWorld *w, SimJob *job)
{
    if (!server_arrive(w, &job->mp->server, job, mp_cost(w, job), ev_mp_done)) {
        overload_answer(&job->mp->server, &job->resp);
        reply_to_client(w, job, origin_seg(job));
    }
}

void
sim_job_answer(SimWorld *w, SimJob *job, CmTime at)
{
    cm_sim_at(w->engine, MAX(at, cm_sim_now(w->engine)), ev_client_response, w,
              GPOINTER_TO_SIZE(job));
}

gsize
sim_nominal_size(CmEndpoint ep, gboolean response)
{
    return nominal_size(ep, response);
}

/* ------------------------------------------------------------- clients */

static void
ev_client_timer(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimClient *c = ctx;
    SimWorld *w = c->world;
    guint32 gen = (guint32)arg;
    CmAgentActions act;

    (void)e;
    if (gen != c->timer_gen || c->agent == NULL)
        return; /* replaced by an earlier timer */
    c->timer_pending = 0;
    if (c->timer_at == 0)
        return; /* no timer wanted any more */
    if (c->timer_at > cm_sim_now(e)) {
        /* Moved later while this one waited: wait again. */
        c->timer_pending = c->timer_at;
        cm_sim_at(w->engine, c->timer_at, ev_client_timer, c, c->timer_gen);
        return;
    }
    c->timer_at = 0;
    cm_agent_actions_init(&act);
    cm_agent_on_timer(c->agent, sim_now(w), &act);
    sim_client_actions(w, c, &act);
    cm_agent_actions_clear(&act);
}

void
sim_client_actions(SimWorld *w, SimClient *c, CmAgentActions *act)
{
    const CmAgentStatus *st = cm_agent_status(c->agent);
    SimPop *p = g_ptr_array_index(w->pops, c->pop);

    /* Every change of an agent's state passes here (its start, timers,
     * answers, upgrades): keep the count of active clients.  Attackers'
     * extra devices are not in the population array and not counted. */
    if (c >= w->clients && c < w->clients + w->n_clients &&
        c->active != (st->state == CM_AGENT_ACTIVE)) {
        c->active = !c->active;
        w->n_active = c->active ? w->n_active + 1 : w->n_active - 1;
    }
    /* A notification channel the agent dropped is closed on its MP, as a
     * TCP connection would be: reopening must reach the site again. */
    if (c->channel_open && !st->channel_open) {
        SimMp *mp = c->channel_mp;
        if (mp != NULL)
            cm_mp_channel_close(mp->mp, st->smsid);
    }
    if (st->channel_open && (!c->channel_open || c->channel_mp == NULL ||
                             g_ascii_strcasecmp(c->channel_mp->scn->name, st->channel_mp) != 0))
        c->channel_mp = sim_world_mp(w, st->channel_mp);
    c->channel_open = st->channel_open;

    /* Registration completes when the agent first turns active after it
     * needed to register. */
    if (c->needs_reg && st->state == CM_AGENT_ACTIVE) {
        CmTime now = cm_sim_now(w->engine);
        w->regs_completed++;
        w->reg_latency_sum += now - c->need_since;
        c->needs_reg = FALSE;
    }
    for (guint i = 0; i < act->sends->len; i++) {
        CmAgentSend *send = g_ptr_array_index(act->sends, i);
        SimJob *job = g_new0(SimJob, 1);
        job->kind = JOB_AGENT;
        job->client = c;
        job->send_id = send->id;
        job->send = send;
        act->sends->pdata[i] = NULL; /* the job owns it now */
        cm_agent_send_request(send, &job->req);
        if (p->scn->cmg != NULL && sim_cmg_send(w, p, c, job))
            continue; /* an internet client: through its CMG */
        job->mp = sim_world_mp(w, send->mp);
        job->mp = sim_upgrade_route(w, c, send, job->mp);
        /* The transport's authentication: Kerberos for domain members that
         * register, the PKI certificate in TLS. */
        if (send->use_pki && c->pki_cert != NULL) {
            job->req.peer.kind = CM_AUTH_PKI;
            job->req.peer.client_cert = c->pki_cert;
        } else if (send->ep == CM_EP_REGISTER && p->scn->kerberos && p->scn->domain != NULL &&
                   p->scn->domain[0] != '\0') {
            g_autofree char *realm = g_ascii_strup(p->scn->domain, -1);
            job->req.peer.kind = CM_AUTH_KERBEROS;
            g_strlcpy(job->req.peer.domain, p->scn->domain, sizeof job->req.peer.domain);
            /* The computer account's ticket: the name sim_client_install
             * gave the client. */
            g_snprintf(job->req.peer.principal, sizeof job->req.peer.principal, "%.10s%06u$@%s",
                       p->scn->name, (guint)(c - w->clients) - p->first, realm);
        }
        sim_job_send(w, job, c->seg);
    }
    g_ptr_array_set_size(act->sends, 0);
    /* The agent moves its timer with every request (its deadline for the
     * answer) and every answer.  An event already queued at or before the
     * new time is kept and re-queued when it fires; only an earlier time
     * queues a new one.  Queuing one per move left millions of dead events
     * in the heap at a million clients, each pushed and popped. */
    if (act->wake_at == 0) {
        c->timer_at = 0; /* a queued event finds nothing to do */
    } else if (act->wake_at != w->epoch + c->timer_at) {
        c->timer_at = act->wake_at - w->epoch;
        if (c->timer_pending == 0 || c->timer_pending > c->timer_at) {
            c->timer_gen++; /* a later queued one must not fire */
            c->timer_pending = c->timer_at;
            cm_sim_at(w->engine, c->timer_at, ev_client_timer, c, c->timer_gen);
        }
    }
}

void
sim_client_start(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimClient *c = &w->clients[arg];
    CmAgentActions act;

    (void)e;
    if (c->agent == NULL)
        return;
    cm_agent_actions_init(&act);
    cm_agent_start(c->agent, sim_now(w), &act);
    sim_client_actions(w, c, &act);
    cm_agent_actions_clear(&act);
}

/* ------------------------------------------------------ the site worker */

struct SimSiteWorker {
    GThread *thread;
    GMutex lock;
    GCond work;   /* the worker waits for jobs */
    GCond done;   /* the loop waits for a job, or for all of them */
    GQueue queue; /* SimJob*, in the order the loop handed them over */
    guint64 handed, finished;
    gint queued; /* queue.length, readable without the lock */
    gboolean worker_idle, loop_waiting, quit;
};

/* Either side spins this many rounds before it sleeps: a request is handled
 * in tens of microseconds, a sleep and wake-up cost a few each. */
#define SITE_SPIN 100

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static gpointer
site_worker_main(gpointer data)
{
    SimSiteWorker *sw = data;

    g_mutex_lock(&sw->lock);
    for (;;) {
        SimJob *job;
        if (sw->queue.length == 0 && !sw->quit) {
            g_mutex_unlock(&sw->lock);
            for (int i = 0; i < SITE_SPIN && g_atomic_int_get(&sw->queued) == 0; i++)
                cpu_relax();
            g_mutex_lock(&sw->lock);
        }
        while (sw->queue.length == 0 && !sw->quit) {
            sw->worker_idle = TRUE;
            g_cond_wait(&sw->work, &sw->lock);
        }
        sw->worker_idle = FALSE;
        if (sw->queue.length == 0)
            break;
        job = g_queue_pop_head(&sw->queue);
        g_atomic_int_add(&sw->queued, -1);
        g_mutex_unlock(&sw->lock);
        cm_site_handle(job->mp->site->site, &job->req, job->site_at, &job->resp);
        g_mutex_lock(&sw->lock);
        g_atomic_int_set(&job->site_done, TRUE);
        sw->finished++;
        if (sw->loop_waiting)
            g_cond_broadcast(&sw->done);
    }
    g_mutex_unlock(&sw->lock);
    return NULL;
}

/* Events that touch only agents, MPs and the jobs in flight: the rest wait
 * for the worker first. */
static void
site_guard(void *data, CmSimFn fn)
{
    if (fn == ev_mp_arrive || fn == ev_mp_done || fn == ev_site_arrive || fn == ev_site_done ||
        fn == ev_mp_relay || fn == ev_client_response || fn == ev_client_timer ||
        fn == ev_transport_failed || fn == sim_client_start)
        return;
    sim_site_sync(data);
}

void
sim_site_worker_start(SimWorld *w)
{
    SimSiteWorker *sw;

    /* Off unless CMLAB_SIM_SITE_THREAD=1: measured on an idle machine it
     * gained nothing and cost CPU (docs/benchmarks.md).  The loop may run
     * ahead of the worker by one network delay only, and in the lifecycle
     * benchmarks that window holds almost no other work, so the loop waits
     * at nearly every answer and pays the hand-over besides.  Kept for
     * scenarios dense enough to fill the window; the reports are the same
     * either way (tests/scenario/determinism.sh). */
    if (w->site_worker != NULL || g_get_num_processors() < 2 ||
        g_strcmp0(g_getenv("CMLAB_SIM_SITE_THREAD"), "1") != 0)
        return;
    sw = g_new0(SimSiteWorker, 1);
    g_mutex_init(&sw->lock);
    g_cond_init(&sw->work);
    g_cond_init(&sw->done);
    g_queue_init(&sw->queue);
    sw->thread = g_thread_new("cmlab-site", site_worker_main, sw);
    w->site_worker = sw;
    cm_sim_set_guard(w->engine, site_guard, w);
}

void
sim_site_sync(SimWorld *w)
{
    SimSiteWorker *sw = w->site_worker;

    if (sw == NULL)
        return;
    g_mutex_lock(&sw->lock);
    sw->loop_waiting = TRUE;
    while (sw->finished < sw->handed)
        g_cond_wait(&sw->done, &sw->lock);
    sw->loop_waiting = FALSE;
    g_mutex_unlock(&sw->lock);
}

void
sim_site_worker_stop(SimWorld *w)
{
    SimSiteWorker *sw = w->site_worker;

    if (sw == NULL)
        return;
    sim_site_sync(w);
    g_mutex_lock(&sw->lock);
    sw->quit = TRUE;
    g_cond_signal(&sw->work);
    g_mutex_unlock(&sw->lock);
    g_thread_join(sw->thread);
    cm_sim_set_guard(w->engine, NULL, NULL);
    g_mutex_clear(&sw->lock);
    g_cond_clear(&sw->work);
    g_cond_clear(&sw->done);
    g_free(sw);
    w->site_worker = NULL;
}

static void
site_hand_over(SimWorld *w, SimJob *job)
{
    SimSiteWorker *sw = w->site_worker;

    job->site_at = sim_now(w);
    job->site_queued = TRUE;
    job->site_done = FALSE;
    g_mutex_lock(&sw->lock);
    g_queue_push_tail(&sw->queue, job);
    g_atomic_int_add(&sw->queued, 1);
    sw->handed++;
    if (sw->worker_idle)
        g_cond_signal(&sw->work);
    g_mutex_unlock(&sw->lock);
}

/* The site's answer to job, once the worker has it. */
static void
site_wait(SimWorld *w, SimJob *job)
{
    SimSiteWorker *sw = w->site_worker;

    if (!job->site_queued)
        return;
    for (int i = 0; i < SITE_SPIN && !g_atomic_int_get(&job->site_done); i++)
        cpu_relax();
    g_mutex_lock(&sw->lock);
    sw->loop_waiting = TRUE;
    while (!job->site_done)
        g_cond_wait(&sw->done, &sw->lock);
    sw->loop_waiting = FALSE;
    g_mutex_unlock(&sw->lock);
    job->site_queued = FALSE;
}
