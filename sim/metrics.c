/* metrics.c - what a run measured: series sampled every `sample` of virtual
 * time, the scalar metrics at the end, and the scenario's expectations
 * checked against them.  Metric names are listed in docs/report-schema.md. */
#include "world.h"
#include "hierarchy.h"
#include "content.h"
#include "cli.h"

#include <stdarg.h>
#include <string.h>

/* The endpoints whose rate and latency are worth a chart. */
static const CmEndpoint charted[] = {CM_EP_REGISTER, CM_EP_POLICY_ASSIGNMENTS, CM_EP_INVENTORY,
                                     CM_EP_STATUS};

static gboolean
is_real_site(SimWorld *w, SimSite *s)
{
    for (guint i = 0; i < w->scn->sites->len; i++)
        if (g_ptr_array_index(w->scn->sites, i) == s->scn)
            return TRUE;
    return FALSE;
}

static void
ev_sample(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    double secs = (double)w->scn->sample / 1e6;

    (void)arg;
    w->samples++;
    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        g_autofree char *name = g_strdup_printf("site.%s.backlog", s->scn->code);
        if (!is_real_site(w, s))
            continue;
        g_array_append_val(cm_run_series(w->run, name, "requests")->values,
                           (double){sim_server_backlog(&s->server)});
    }
    for (guint i = 0; i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        g_autofree char *name = g_strdup_printf("mp.%s.queue", m->scn->name);
        if (m->rogue)
            continue;
        g_array_append_val(cm_run_series(w->run, name, "requests")->values,
                           (double){sim_server_backlog(&m->server)});
    }
    for (size_t k = 0; k < G_N_ELEMENTS(charted); k++) {
        CmEndpoint ep = charted[k];
        g_autofree char *rate = g_strdup_printf("rate.%s", cm_ep_name(ep));
        g_autofree char *lat = g_strdup_printf("latency.%s.p95", cm_ep_name(ep));
        g_array_append_val(cm_run_series(w->run, rate, "per second")->values,
                           (double){(double)w->sent_window[ep] / secs});
        g_array_append_val(cm_run_series(w->run, lat, "seconds")->values,
                           (double){sim_hist_quantile(&w->lat_window[ep], 0.95)});
    }
    g_array_append_val(cm_run_series(w->run, "clients.active", "clients")->values,
                       (double){w->n_active});
    sim_cmg_sample(w);
    memset(w->sent_window, 0, sizeof w->sent_window);
    memset(w->lat_window, 0, sizeof w->lat_window);
    if (cm_sim_now(e) + w->scn->sample <= w->scn->duration)
        cm_sim_at(e, cm_sim_now(e) + w->scn->sample, ev_sample, w, 0);
}

void
sim_metrics_start(SimWorld *w)
{
    cm_sim_at(w->engine, w->scn->sample, ev_sample, w, 0);
}

static void
set(SimWorld *w, const char *name, double v)
{
    cm_run_set_metric(w->run, name, v);
}

void
sim_metric_setf(SimWorld *w, double v, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *name = NULL;

    va_start(ap, fmt);
    name = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    cm_run_set_metric(w->run, name, v);
}

static void
server_metrics(SimWorld *w, const char *prefix, SimServer *s, guint *max_backlog, double *drain_s)
{
    CmTime end = cm_sim_now(w->engine);
    gboolean drained = s->busy_since < 0;
    CmTime drain = drained ? s->longest_busy : MAX(s->longest_busy, end - s->busy_since);

    sim_metric_setf(w, (double)s->max_backlog, "%s.backlog.max", prefix);
    sim_metric_setf(w, (double)s->max_len, "%s.queue.max", prefix);
    sim_metric_setf(w, (double)s->served, "%s.served", prefix);
    sim_metric_setf(w, (double)s->overloaded, "%s.overloaded", prefix);
    sim_metric_setf(w, drained ? 1 : 0, "%s.backlog.drained", prefix);
    sim_metric_setf(w, (double)drain / 1e6, "%s.backlog.drain_time", prefix);
    if (max_backlog != NULL)
        *max_backlog = MAX(*max_backlog, s->max_backlog);
    if (drain_s != NULL)
        *drain_s = MAX(*drain_s, (double)drain / 1e6);
}

/* The client status history a site holds at the end (REQ DATA-02): rows,
 * and the age of the oldest in seconds (0 when none).  Read from the
 * site's store: retention is what the site kept, not what clients sent. */
static void
client_status_held(SimWorld *w, SimSite *s, gint64 *rows, double *oldest_age)
{
    CmTime oldest = 0;

    *oldest_age = 0;
    if (cm_site_client_status_held(s->site, rows, &oldest) && *rows > 0)
        *oldest_age = (double)(sim_now(w) - oldest) / 1e6;
}

static void
check_expectations(SimWorld *w)
{
    for (guint i = 0; i < w->scn->expects->len; i++) {
        CmScnExpect *x = g_ptr_array_index(w->scn->expects, i);
        CmExpectResult *r = g_new0(CmExpectResult, 1);
        const char *have =
            x->when_variant ? g_hash_table_lookup(w->scn->variant, x->when_variant) : NULL;

        r->name = g_strdup(x->name);
        r->text = g_strdup(x->text);
        r->applies = x->when_variant == NULL || g_strcmp0(have, x->when_value) == 0;
        r->known = cm_run_metric(w->run, x->metric, &r->value);
        r->passed = !r->applies || (r->known && cm_scn_compare(x->op, r->value, x->value));
        g_ptr_array_add(w->run->expects, r);
    }
}

void
sim_metrics_finish(SimWorld *w)
{
    guint total = 0, active = 0, pending = 0, blocked = 0, failed = 0, all_active = 0;
    guint64 pol_ok = 0, pol_bad = 0, mp_refused = 0;
    guint64 states = 0, status = 0, client_status = 0, ka_sent = 0, ka_answered = 0, channels = 0;
    guint site_backlog_max = 0, mp_queue_max = 0;
    double drain = 0;
    CmCryptoCounters cc;
    gint64 refusals[CM_REASON__COUNT] = {0};

    sim_hierarchy_finish(w); /* replication and visibility, before the expectations */
    for (guint i = 0; i < w->n_clients; i++) {
        const CmAgentStatus *st;
        if (w->clients[i].agent == NULL)
            continue;
        st = cm_agent_status(w->clients[i].agent);
        all_active += st->state == CM_AGENT_ACTIVE;
        if (w->clients[i].attacker)
            continue;
        total++;
        active += st->state == CM_AGENT_ACTIVE;
        pending += st->state == CM_AGENT_PENDING;
        blocked += st->state == CM_AGENT_BLOCKED;
        failed += st->state == CM_AGENT_FAILED;
        pol_ok += (guint64)st->policies_accepted;
        pol_bad += (guint64)st->policies_refused;
        mp_refused += (guint64)st->mp_refused;
        states += (guint64)st->states_sent;
        status += (guint64)st->status_sent;
        client_status += (guint64)st->client_status_sent;
        ka_sent += (guint64)st->keepalives_sent;
        ka_answered += (guint64)st->keepalives_answered;
        channels += st->channel_open ? 1 : 0;
    }
    /* The samples' count of active clients (sim_client_actions) must agree
     * with the agents: a state change that bypassed it would chart a wrong
     * curve while every figure below stayed right. */
    if (all_active != w->n_active)
        g_error("active clients counted %u, agents say %u: an agent's state changed "
                "outside sim_client_actions",
                w->n_active, all_active);
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        guint counts[CM_AGENT_FAILED + 1] = {0};
        guint64 after_block = 0, open = 0;
        for (guint k = 0; k < p->count; k++) {
            SimClient *c = &w->clients[p->first + k];
            if (c->agent != NULL) {
                const CmAgentStatus *st = cm_agent_status(c->agent);
                counts[st->state]++;
                after_block += (guint64)st->keepalives_after_block;
                open += st->channel_open ? 1 : 0;
            }
        }
        /* REQ REG-05: what blocked clients kept sending on their open
         * notification channels, and who holds a channel at the end. */
        sim_metric_setf(w, (double)after_block, "pop.%s.keepalives_after_block", p->scn->name);
        sim_metric_setf(w, p->count ? (double)open / p->count : 0, "pop.%s.channels_open_ratio",
                        p->scn->name);
        sim_metric_setf(w, p->count, "pop.%s.clients", p->scn->name);
        sim_metric_setf(w, counts[CM_AGENT_ACTIVE], "pop.%s.active", p->scn->name);
        sim_metric_setf(w, counts[CM_AGENT_PENDING], "pop.%s.pending", p->scn->name);
        sim_metric_setf(w, counts[CM_AGENT_BLOCKED], "pop.%s.blocked", p->scn->name);
        sim_metric_setf(w, counts[CM_AGENT_FAILED], "pop.%s.failed", p->scn->name);
        /* Ratios hold whatever --scale a run used. */
        sim_metric_setf(w, p->count ? (double)counts[CM_AGENT_ACTIVE] / p->count : 0,
                        "pop.%s.active_ratio", p->scn->name);
        sim_metric_setf(w, p->count ? (double)counts[CM_AGENT_PENDING] / p->count : 0,
                        "pop.%s.pending_ratio", p->scn->name);
        sim_metric_setf(w, p->count ? (double)counts[CM_AGENT_BLOCKED] / p->count : 0,
                        "pop.%s.blocked_ratio", p->scn->name);
    }
    set(w, "clients.total", total);
    set(w, "clients.active", active);
    set(w, "clients.active_ratio", total ? (double)active / total : 0);
    set(w, "clients.pending", pending);
    set(w, "clients.blocked", blocked);
    set(w, "clients.failed", failed);
    set(w, "policies.accepted", (double)pol_ok);
    set(w, "policies.refused", (double)pol_bad);
    set(w, "clients.mp_refused", (double)mp_refused);
    set(w, "states.sent", (double)states);
    set(w, "status.sent", (double)status);
    set(w, "client_status.sent", (double)client_status);
    set(w, "keepalives.sent", (double)ka_sent);
    set(w, "keepalives.answered", (double)ka_answered);
    set(w, "keepalives.answered_ratio", ka_sent ? (double)ka_answered / (double)ka_sent : 1.0);
    set(w, "channels.open", (double)channels);
    set(w, "registrations.needed", (double)w->regs_needed);
    set(w, "registrations.completed", (double)w->regs_completed);
    set(w, "registrations.completed_ratio",
        w->regs_needed ? (double)w->regs_completed / (double)w->regs_needed : 1.0);
    set(w, "registrations.mean_time",
        w->regs_completed ? (double)w->reg_latency_sum / 1e6 / (double)w->regs_completed : 0);

    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        g_autofree char *prefix = g_strdup_printf("site.%s", s->scn->code);
        const CmSiteCounters *sc = cm_site_counters(s->site);
        if (!is_real_site(w, s))
            continue;
        server_metrics(w, prefix, &s->server, &site_backlog_max, &drain);
        sim_metric_setf(w, (double)sc->registrations, "%s.registrations", prefix);
        sim_metric_setf(w, (double)sc->conflicts, "%s.conflicts", prefix);
        sim_metric_setf(w, (double)sc->status_messages, "%s.status_messages", prefix);
        sim_metric_setf(w, (double)sc->messages_accepted, "%s.messages_accepted", prefix);
        {
            gint64 records = cm_site_client_count(s->site, -1);
            gint64 blocked_records = cm_site_client_count(s->site, CM_CLIENT_BLOCKED);
            sim_metric_setf(w, (double)records, "%s.records", prefix);
            sim_metric_setf(w, (double)blocked_records, "%s.records.blocked", prefix);
            sim_metric_setf(w, records > 0 ? (double)blocked_records / (double)records : 0,
                            "%s.records.blocked_ratio", prefix);
        }
        {
            gint64 rows;
            double oldest;
            client_status_held(w, s, &rows, &oldest);
            sim_metric_setf(w, (double)rows, "%s.client_status.rows", prefix);
            sim_metric_setf(w, oldest, "%s.client_status.oldest_age", prefix);
        }
    }
    set(w, "site.backlog.max", site_backlog_max);
    set(w, "site.backlog.max_ratio", total ? (double)site_backlog_max / total : 0);
    set(w, "site.backlog.drain_time", drain);
    for (guint i = 0; i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        g_autofree char *prefix = g_strdup_printf("mp.%s", m->scn->name);
        const CmMpCounters *mc = cm_mp_counters(m->mp);
        if (m->rogue)
            continue;
        server_metrics(w, prefix, &m->server, NULL, NULL);
        mp_queue_max = MAX(mp_queue_max, m->server.max_len);
        /* What clients were told: the MP counts its own refusals and the
         * site's answers it relayed. */
        for (int r = 1; r < CM_REASON__COUNT; r++)
            refusals[r] += mc->refusals[r];
        sim_metric_setf(w, (double)mc->status_discarded, "%s.status_discarded", prefix);
    }
    set(w, "mp.queue.max", mp_queue_max);
    for (int r = 1; r < CM_REASON__COUNT; r++)
        if (refusals[r] > 0)
            sim_metric_setf(w, (double)refusals[r], "refusals.%s", cm_reason_name(r));
    set(w, "answers.busy", (double)w->busy_answers);
    set(w, "transport.failures", (double)w->transport_failures);
    for (int ep = 1; ep < CM_EP__COUNT; ep++) {
        if (w->sent[ep] == 0)
            continue;
        sim_metric_setf(w, (double)w->sent[ep], "requests.%s", cm_ep_name(ep));
        sim_metric_setf(w, sim_hist_quantile(&w->lat[ep], 0.50), "latency.%s.p50", cm_ep_name(ep));
        sim_metric_setf(w, sim_hist_quantile(&w->lat[ep], 0.95), "latency.%s.p95", cm_ep_name(ep));
        sim_metric_setf(w, sim_hist_quantile(&w->lat[ep], 0.99), "latency.%s.p99", cm_ep_name(ep));
    }
    cm_crypto_counters_get(&cc);
    set(w, "crypto.keygen", (double)cc.keygen);
    set(w, "crypto.sign", (double)cc.sign);
    set(w, "crypto.verify", (double)cc.verify);
    set(w, "crypto.cert_issue", (double)cc.cert_issue);
    set(w, "crypto.cert_parse", (double)cc.cert_parse);
    set(w, "crypto.key_parse", (double)cc.key_parse);
    set(w, "crypto.cms_encrypt", (double)cc.cms_encrypt);
    set(w, "crypto.cms_decrypt", (double)cc.cms_decrypt);
    sim_software_metrics(w);
    sim_content_finish(w);
    sim_push_metrics(w);
    sim_attackers_report(w);
    sim_cmg_metrics(w);
    check_expectations(w);
}
