/* hierarchy.c - a hierarchy of sites in the simulator: the real join flow
 * at set-up (REQ NET-05), child MPs signed with the top-level site's TRK
 * (REQ TRUST-02), database replication between each child and its parent
 * as events in virtual time, link outages, and when a deployment made at
 * the central site reaches each site and its clients.
 *
 * Replication runs per link (a child and its parent) every
 * replication_interval of the child: the parent's batch for the child
 * travels over the network between their segments (latency, and the
 * bandwidth charged on a nominal size per item, as traffic.c does for
 * requests, so that signature lengths move nothing), the child applies it,
 * and its own batch (its acknowledgment and site data) travels back.  A
 * round carries at most replication_batch items each way; a round still in
 * flight when the next is due makes the next wait for the one after.  While
 * a link is down its rounds fail and both queues grow; the library keeps
 * every item until acknowledged, so they drain after the link returns. */
#include "hierarchy.h"

#include <stdarg.h>
#include <string.h>

#define ADMIN CM_SITE_BUILTIN_ADMIN
#define INSTALL_ACCOUNT "CORP\\siteinstall"
#define BATCH_BYTES 1024            /* nominal: a batch's envelope and signature */
#define ITEM_BYTES 1024             /* nominal: one replicated item */
#define POLL (30 * CM_USEC_PER_SEC) /* how often lag and visibility are looked at */
#define DEPLOY_KIND "deployment"

typedef struct {
    SimSite *child, *parent;
    guint index;
    gboolean down;
    gboolean in_flight;
    GBytes *batch;          /* the batch on its way */
    gint64 published_count; /* the client count the child last sent up */
    guint64 rounds, lost, refused, items_down, items_up;
    gint64 backlog_max;
    CmTime lag_max;
} HLink;

typedef struct {
    CmScnEvent *ev;
    SimSite *origin;
    CmTime at;         /* virtual time of the deployment */
    CmTime *site_at;   /* per site index: when it arrived, -1 not yet */
    char **policy;     /* per site index: the policy ID it made there */
    CmTime *client_at; /* per client: when its agent held the policy, -1 not yet */
} HDeploy;

struct SimHierarchy {
    SimSite *top;
    GPtrArray *links;   /* HLink* */
    GPtrArray *deploys; /* HDeploy* */
    guint joined;
};

static guint
site_index(SimWorld *w, SimSite *s)
{
    for (guint i = 0; i < w->sites->len; i++)
        if (g_ptr_array_index(w->sites, i) == s)
            return i;
    g_assert_not_reached();
}

static guint
depth(SimWorld *w, SimSite *s)
{
    guint d = 0;

    while (s != NULL && s->scn->parent != NULL && d < 8) {
        s = sim_world_site(w, s->scn->parent);
        d++;
    }
    return d;
}

/* One batch from a to b now, applied at once (set-up only). */
static guint
pump_now(SimWorld *w, SimSite *a, SimSite *b, GError **error)
{
    g_autoptr(GBytes) batch =
        cm_site_repl_batch(a->site, b->scn->code, CM_REPL_ITEMS_MAX, sim_now(w), error);
    CmReplApplied r = {0};

    if (batch == NULL || !cm_site_repl_apply(b->site, g_bytes_get_data(batch, NULL),
                                             g_bytes_get_size(batch), sim_now(w), &r, error))
        return G_MAXUINT;
    return r.applied;
}

static gboolean
join(SimWorld *w, SimSite *parent, SimSite *child, GError **error)
{
    GError *cause = NULL;
    g_autoptr(json_t) req = NULL, grant = NULL;
    g_autofree char *server = g_strdup_printf("%s.%s", child->scn->code,
                                              child->scn->forest ? child->scn->forest : "local");

    req = cm_site_hierarchy_join_request(child->site, child->scn->kind, server, &cause);
    if (req != NULL)
        grant = cm_site_hierarchy_add_child(parent->site, req, INSTALL_ACCOUNT, ADMIN, sim_now(w),
                                            &cause);
    if (grant != NULL && cm_site_hierarchy_join(child->site, grant, sim_now(w), &cause))
        return TRUE;
    g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                "[site %s] parent: %s refused the join of %s site %s (forest %s): %s",
                child->scn->code, parent->scn->code, cm_site_kind_name(child->scn->kind),
                child->scn->code, child->scn->forest ? child->scn->forest : "none", cause->message);
    g_error_free(cause);
    return FALSE;
}

gboolean
sim_hierarchy_build(SimWorld *w, GError **error)
{
    SimHierarchy *h;
    guint applied = 1;

    for (guint i = 0; i < w->sites->len; i++)
        if (((SimSite *)g_ptr_array_index(w->sites, i))->scn->parent != NULL)
            break;
        else if (i + 1 == w->sites->len)
            return TRUE; /* no hierarchy */
    h = w->hier = g_new0(SimHierarchy, 1);
    h->links = g_ptr_array_new();
    h->deploys = g_ptr_array_new();
    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        if (s->scn->top_level)
            h->top = s;
    }
    /* Parents first: primaries, then secondaries. */
    for (guint d = 1; d <= 2; d++) {
        for (guint i = 0; i < w->sites->len; i++) {
            SimSite *s = g_ptr_array_index(w->sites, i);
            HLink *l;
            if (s->scn->parent == NULL || depth(w, s) != d)
                continue;
            l = g_new0(HLink, 1);
            l->child = s;
            l->parent = sim_world_site(w, s->scn->parent);
            l->index = h->links->len;
            l->published_count = -1;
            g_ptr_array_add(h->links, l);
            if (!join(w, l->parent, s, error))
                return FALSE;
            h->joined++;
        }
    }
    /* Level the databases before the run: the top-level site learns of the
     * secondaries (it signs their MPs) and every child has the snapshot. */
    for (guint round = 0; round < 8 && applied > 0; round++) {
        applied = 0;
        for (guint i = 0; i < h->links->len; i++) {
            HLink *l = g_ptr_array_index(h->links, i);
            guint a = pump_now(w, l->child, l->parent, error);
            guint b = a == G_MAXUINT ? a : pump_now(w, l->parent, l->child, error);
            if (a == G_MAXUINT || b == G_MAXUINT)
                return FALSE;
            applied += a + b;
        }
    }
    return TRUE;
}

gboolean
sim_hierarchy_site_add_mp(SimWorld *w, SimSite *site, CmScnMp *scn, CmMpInfo *info, CmCert **cert,
                          GError **error)
{
    g_autoptr(CmKey) key = NULL;
    g_autoptr(json_t) req = NULL, ans = NULL;
    CmCert *tls = NULL;
    gboolean ok;

    if (w->hier == NULL || site->scn->parent == NULL) {
        CmKey *k = NULL;
        ok = cm_site_add_mp(site->site, scn->name, scn->internet, sim_now(w), info, cert, &tls, &k,
                            error);
        cm_key_unref(k);
        cm_cert_unref(tls);
        return ok;
    }
    /* A child has no TRK private key: it asks, the top-level site signs. */
    key = cm_key_generate(CM_KEY_EC_P256, error);
    if (key == NULL ||
        (req = cm_site_hierarchy_mp_request(site->site, scn->name, key, error)) == NULL ||
        (ans = cm_site_hierarchy_sign_mp(w->hier->top->site, req, sim_now(w), error)) == NULL)
        return FALSE;
    ok = cm_site_hierarchy_add_mp(site->site, ans, key, scn->internet, sim_now(w), info, cert, &tls,
                                  error);
    cm_cert_unref(tls);
    return ok;
}

/* ------------------------------------------------------------ deployments */

static void
deploy_arrived(SimWorld *w, SimSite *site)
{
    SimHierarchy *h = w->hier;
    guint si = site_index(w, site);

    for (guint i = 0; i < h->deploys->len; i++) {
        HDeploy *d = g_ptr_array_index(h->deploys, i);
        g_autoptr(json_t) v = NULL;
        const char *coll;
        gint64 cid;
        guint8 hash[32];
        CmDeployment dep = {.content_hash = hash, .content_size = 1 << 20};
        GError *error = NULL;

        if (d->site_at[si] >= 0 ||
            (v = cm_site_repl_get(site->site, DEPLOY_KIND, d->ev->name)) == NULL)
            continue;
        d->site_at[si] = cm_sim_now(w->engine);
        /* The site serves it from now: its own policy, signed with its own
         * signing certificate, for the collection of that name there. */
        coll = json_string_value(json_object_get(v, "collection"));
        cid = coll == NULL ? CM_COLLECTION_ALL_SYSTEMS : cm_site_collection_id(site->site, coll);
        if (cid < 0)
            continue; /* no such collection at this site: nothing to serve */
        dep.name = d->ev->name;
        dep.content_id = d->ev->name;
        dep.required = json_is_true(json_object_get(v, "required"));
        dep.max_runtime_s = json_integer_value(json_object_get(v, "max_runtime_s"));
        cm_hash(CM_HASH_SHA256, d->ev->name, strlen(d->ev->name), hash);
        d->policy[si] = cm_site_admin_deploy(site->site, cid, &dep, ADMIN, sim_now(w), &error);
        if (d->policy[si] == NULL) {
            g_warning("hierarchy: deployment %s at %s: %s", d->ev->name, site->scn->code,
                      error->message);
            g_error_free(error);
        }
    }
}

void
sim_hierarchy_deployed(SimWorld *w, SimSite *site, CmScnEvent *ev, const char *policy_id)
{
    SimHierarchy *h = w->hier;
    HDeploy *d;
    g_autoptr(json_t) v = NULL;
    GError *error = NULL;

    if (h == NULL)
        return;
    d = g_new0(HDeploy, 1);
    d->ev = ev;
    d->origin = site;
    d->at = cm_sim_now(w->engine);
    d->site_at = g_new(CmTime, w->sites->len);
    d->policy = g_new0(char *, w->sites->len);
    d->client_at = g_new(CmTime, MAX(1, w->n_clients));
    for (guint i = 0; i < w->sites->len; i++)
        d->site_at[i] = -1;
    for (guint i = 0; i < w->n_clients; i++)
        d->client_at[i] = -1;
    d->site_at[site_index(w, site)] = d->at;
    d->policy[site_index(w, site)] = g_strdup(policy_id);
    g_ptr_array_add(h->deploys, d);
    v = json_pack("{s:s, s:b, s:I}", "collection", ev->collection ? ev->collection : "All Systems",
                  "required", ev->required, "max_runtime_s",
                  (json_int_t)(ev->max_runtime / CM_USEC_PER_SEC));
    if (!cm_site_repl_publish(site->site, CM_REPL_GLOBAL, CM_REPL_DATABASE, DEPLOY_KIND, ev->name,
                              v, sim_now(w), &error)) {
        g_warning("hierarchy: publishing %s: %s", ev->name, error->message);
        g_error_free(error);
    }
}

/* ------------------------------------------------------------ replication */

static CmTime
batch_delay(SimWorld *w, SimSite *from, SimSite *to, gint64 items)
{
    return sim_net_delay(w, from->seg, to->seg, BATCH_BYTES + (gsize)MAX(items, 0) * ITEM_BYTES);
}

static gint64
queued_for(SimSite *from, SimSite *to, int max)
{
    CmReplLinkStatus st;

    if (!cm_site_repl_link_status(from->site, to->scn->code, &st, NULL))
        return 0;
    return MIN(st.backlog, (gint64)max);
}

static void ev_repl_round(CmSimEngine *e, void *ctx, guint64 arg);
static void ev_repl_up(CmSimEngine *e, void *ctx, guint64 arg);

static void
round_lost(HLink *l)
{
    l->lost++;
    l->in_flight = FALSE;
    g_clear_pointer(&l->batch, g_bytes_unref);
}

static guint
apply(SimWorld *w, HLink *l, SimSite *at)
{
    CmReplApplied r = {0};
    GError *error = NULL;

    if (!cm_site_repl_apply(at->site, g_bytes_get_data(l->batch, NULL), g_bytes_get_size(l->batch),
                            sim_now(w), &r, &error)) {
        l->refused++;
        g_error_free(error);
    }
    g_clear_pointer(&l->batch, g_bytes_unref);
    return r.applied;
}

/* The parent's batch reaches the child; the child answers. */
static void
ev_repl_down(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    HLink *l = g_ptr_array_index(w->hier->links, arg);
    gint64 items;
    CmTime delay;

    if (l->down) {
        round_lost(l);
        return;
    }
    l->items_down += apply(w, l, l->child);
    deploy_arrived(w, l->child);
    items = queued_for(l->child, l->parent, l->child->scn->repl_batch);
    l->batch = cm_site_repl_batch(l->child->site, l->parent->scn->code,
                                  (guint)l->child->scn->repl_batch, sim_now(w), NULL);
    delay = batch_delay(w, l->child, l->parent, items);
    if (l->batch == NULL || delay < 0) {
        round_lost(l);
        return;
    }
    cm_sim_at(e, cm_sim_now(e) + delay, ev_repl_up, w, arg);
}

static void
ev_repl_up(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    HLink *l = g_ptr_array_index(w->hier->links, arg);

    (void)e;
    if (l->down) {
        round_lost(l);
        return;
    }
    l->items_up += apply(w, l, l->parent);
    deploy_arrived(w, l->parent);
    l->in_flight = FALSE;
}

static void
ev_repl_round(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    HLink *l = g_ptr_array_index(w->hier->links, arg);
    gint64 items, count;
    CmTime delay, next = cm_sim_now(e) + l->child->scn->repl_interval;

    if (next <= w->scn->duration)
        cm_sim_at(e, next, ev_repl_round, w, arg);
    /* Site data up: the child's client count when it changed, queued
     * whether or not the link is up. */
    count = cm_site_client_count(l->child->site, CM_CLIENT_APPROVED);
    if (count != l->published_count) {
        g_autoptr(json_t) v = json_pack("{s:I}", "clients", (json_int_t)count);
        if (cm_site_repl_publish(l->child->site, CM_REPL_SITE, CM_REPL_DATABASE, "site-status",
                                 l->child->scn->code, v, sim_now(w), NULL))
            l->published_count = count;
    }
    if (l->in_flight)
        return;
    if (l->down) {
        l->lost++;
        return;
    }
    l->rounds++;
    items = queued_for(l->parent, l->child, l->child->scn->repl_batch);
    l->batch = cm_site_repl_batch(l->parent->site, l->child->scn->code,
                                  (guint)l->child->scn->repl_batch, sim_now(w), NULL);
    delay = batch_delay(w, l->parent, l->child, items);
    if (l->batch == NULL || delay < 0) {
        round_lost(l);
        return;
    }
    l->in_flight = TRUE;
    cm_sim_at(e, cm_sim_now(e) + delay, ev_repl_down, w, arg);
}

void
sim_hierarchy_link(SimWorld *w, const char *child, gboolean up)
{
    for (guint i = 0; w->hier != NULL && i < w->hier->links->len; i++) {
        HLink *l = g_ptr_array_index(w->hier->links, i);
        if (g_ascii_strcasecmp(l->child->scn->code, child) == 0)
            l->down = !up;
    }
}

/* ------------------------------------------------------------ metrics */

/* Items not acknowledged either way, and the age of the oldest. */
static void
link_state(SimWorld *w, HLink *l, gint64 *backlog, CmTime *lag)
{
    CmReplLinkStatus a = {0}, b = {0};
    CmTime oldest = 0;

    (void)cm_site_repl_link_status(l->parent->site, l->child->scn->code, &a, NULL);
    (void)cm_site_repl_link_status(l->child->site, l->parent->scn->code, &b, NULL);
    *backlog = MAX(a.backlog, 0) + MAX(b.backlog, 0);
    if (a.oldest_unacked > 0)
        oldest = a.oldest_unacked;
    if (b.oldest_unacked > 0 && (oldest == 0 || b.oldest_unacked < oldest))
        oldest = b.oldest_unacked;
    *lag = oldest > 0 ? MAX(0, sim_now(w) - oldest) : 0;
}

static SimSite *
client_site(SimWorld *w, SimClient *c)
{
    SimPop *p = g_ptr_array_index(w->pops, c->pop);
    SimSite *s = sim_world_site(w, p->scn->site_code);
    return s != NULL ? s : sim_world_site(w, NULL);
}

static void
ev_poll(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimHierarchy *h = w->hier;

    (void)arg;
    for (guint i = 0; i < h->links->len; i++) {
        HLink *l = g_ptr_array_index(h->links, i);
        gint64 backlog;
        CmTime lag;
        link_state(w, l, &backlog, &lag);
        l->backlog_max = MAX(l->backlog_max, backlog);
        l->lag_max = MAX(l->lag_max, lag);
    }
    /* What clients see: the policy their site made from the replica. */
    for (guint i = 0; i < h->deploys->len; i++) {
        HDeploy *d = g_ptr_array_index(h->deploys, i);
        for (guint k = 0; k < w->n_clients; k++) {
            SimClient *c = &w->clients[k];
            const char *pid;
            if (d->client_at[k] >= 0 || c->agent == NULL || c->attacker)
                continue;
            pid = d->policy[site_index(w, client_site(w, c))];
            if (pid != NULL && cm_agent_policy(c->agent, pid) != NULL)
                d->client_at[k] = cm_sim_now(e);
        }
    }
    if (cm_sim_now(e) + POLL <= w->scn->duration)
        cm_sim_at(e, cm_sim_now(e) + POLL, ev_poll, w, 0);
}

static void
ev_sample(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimHierarchy *h = w->hier;

    (void)arg;
    for (guint i = 0; i < h->links->len; i++) {
        HLink *l = g_ptr_array_index(h->links, i);
        g_autofree char *bn = g_strdup_printf("repl.%s.backlog", l->child->scn->code);
        g_autofree char *ln = g_strdup_printf("repl.%s.lag", l->child->scn->code);
        gint64 backlog;
        CmTime lag;
        link_state(w, l, &backlog, &lag);
        l->backlog_max = MAX(l->backlog_max, backlog);
        l->lag_max = MAX(l->lag_max, lag);
        g_array_append_val(cm_run_series(w->run, bn, "items")->values, (double){(double)backlog});
        g_array_append_val(cm_run_series(w->run, ln, "seconds")->values,
                           (double){(double)lag / 1e6});
    }
    if (cm_sim_now(e) + w->scn->sample <= w->scn->duration)
        cm_sim_at(e, cm_sim_now(e) + w->scn->sample, ev_sample, w, 0);
}

void
sim_hierarchy_start(SimWorld *w)
{
    if (w->hier == NULL)
        return;
    for (guint i = 0; i < w->hier->links->len; i++) {
        HLink *l = g_ptr_array_index(w->hier->links, i);
        cm_sim_at(w->engine, l->child->scn->repl_interval, ev_repl_round, w, i);
    }
    cm_sim_at(w->engine, w->scn->sample, ev_sample, w, 0);
    cm_sim_at(w->engine, POLL, ev_poll, w, 0);
}

static void
deploy_metrics(SimWorld *w, HDeploy *d)
{
    const char *name = d->ev->name;
    guint below = 0, reached = 0;
    /* per tier (primary, secondary): sites' max; clients' max, sum, count */
    double site_max[3] = {0}, cl_max[3] = {0}, cl_sum[3] = {0};
    guint cl_n[3] = {0}, cl_seen[3] = {0};

    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        if (s == d->origin || s->scn->parent == NULL)
            continue;
        below++;
        if (d->site_at[i] < 0)
            continue;
        reached++;
        sim_metric_setf(w, (double)(d->site_at[i] - d->at) / 1e6, "visibility.%s.site.%s", name,
                        s->scn->code);
        site_max[s->scn->kind] = MAX(site_max[s->scn->kind], (double)(d->site_at[i] - d->at) / 1e6);
    }
    sim_metric_setf(w, below > 0 ? (double)reached / below : 1, "visibility.%s.sites_ratio", name);
    for (int k = CM_SITE_KIND_PRIMARY; k <= CM_SITE_KIND_SECONDARY; k++)
        sim_metric_setf(w, site_max[k], "visibility.%s.sites.%s.max", name, cm_site_kind_name(k));
    for (guint pi = 0; pi < w->pops->len; pi++) {
        SimPop *p = g_ptr_array_index(w->pops, pi);
        SimSite *s = sim_world_site(w, p->scn->site_code);
        double mn = -1, mx = 0;
        guint seen = 0;
        int k;
        if (s == NULL)
            s = sim_world_site(w, NULL);
        k = s->scn->parent != NULL ? (int)s->scn->kind : CM_SITE_KIND_CENTRAL;
        for (guint c = p->first; c < p->first + p->count; c++) {
            double t;
            if (w->clients[c].attacker)
                continue;
            cl_n[k]++;
            if (d->client_at[c] < 0)
                continue;
            t = (double)(d->client_at[c] - d->at) / 1e6;
            seen++;
            cl_seen[k]++;
            cl_sum[k] += t;
            mx = MAX(mx, t);
            mn = mn < 0 ? t : MIN(mn, t);
        }
        cl_max[k] = MAX(cl_max[k], mx);
        sim_metric_setf(w, p->count > 0 ? (double)seen / p->count : 0, "visibility.%s.pop.%s.ratio",
                        name, p->scn->name);
        if (seen > 0) {
            sim_metric_setf(w, mn, "visibility.%s.pop.%s.min", name, p->scn->name);
            sim_metric_setf(w, mx, "visibility.%s.pop.%s.max", name, p->scn->name);
        }
    }
    {
        guint n = 0, seen = 0;
        for (int k = CM_SITE_KIND_CENTRAL; k <= CM_SITE_KIND_SECONDARY; k++) {
            const char *tier = k == CM_SITE_KIND_CENTRAL ? "top" : cm_site_kind_name(k);
            n += cl_n[k];
            seen += cl_seen[k];
            if (cl_n[k] == 0)
                continue;
            sim_metric_setf(w, cl_max[k], "visibility.%s.clients.%s.max", name, tier);
            sim_metric_setf(w, cl_seen[k] > 0 ? cl_sum[k] / cl_seen[k] : 0,
                            "visibility.%s.clients.%s.mean", name, tier);
            sim_metric_setf(w, (double)cl_seen[k] / cl_n[k], "visibility.%s.clients.%s.ratio", name,
                            tier);
        }
        sim_metric_setf(w, n > 0 ? (double)seen / n : 0, "visibility.%s.clients_ratio", name);
    }
}

void
sim_hierarchy_finish(SimWorld *w)
{
    SimHierarchy *h = w->hier;
    gint64 backlog_max = 0, backlog_final = 0;
    CmTime lag_max = 0;
    guint mps = 0, mps_top = 0, up_ok = 0, pops_top = 0;
    g_autofree char *top_hex = NULL;
    g_autoptr(CmKey) trk = NULL;

    if (h == NULL)
        return;
    for (guint i = 0; i < h->links->len; i++) {
        HLink *l = g_ptr_array_index(h->links, i);
        const char *c = l->child->scn->code;
        gint64 backlog;
        CmTime lag;
        g_autoptr(json_t) st = NULL;
        link_state(w, l, &backlog, &lag);
        l->backlog_max = MAX(l->backlog_max, backlog);
        l->lag_max = MAX(l->lag_max, lag);
        sim_metric_setf(w, (double)l->backlog_max, "repl.%s.backlog.max", c);
        sim_metric_setf(w, (double)backlog, "repl.%s.backlog.final", c);
        sim_metric_setf(w, (double)l->lag_max / 1e6, "repl.%s.lag.max", c);
        sim_metric_setf(w, (double)lag / 1e6, "repl.%s.lag.final", c);
        sim_metric_setf(w, (double)l->rounds, "repl.%s.rounds", c);
        sim_metric_setf(w, (double)l->lost, "repl.%s.lost", c);
        sim_metric_setf(w, (double)l->refused, "repl.%s.refused", c);
        sim_metric_setf(w, (double)l->items_down, "repl.%s.items_down", c);
        sim_metric_setf(w, (double)l->items_up, "repl.%s.items_up", c);
        backlog_max = MAX(backlog_max, l->backlog_max);
        backlog_final += backlog;
        lag_max = MAX(lag_max, l->lag_max);
        /* the child's site data reached the top-level site */
        st = cm_site_repl_get(h->top->site, "site-status", c);
        up_ok += st != NULL;
    }
    sim_metric_setf(w, (double)h->links->len, "repl.links");
    sim_metric_setf(w, (double)backlog_max, "repl.backlog.max");
    sim_metric_setf(w, (double)backlog_final, "repl.backlog.final");
    sim_metric_setf(w, (double)lag_max / 1e6, "repl.lag.max");
    sim_metric_setf(w, (double)h->joined, "hierarchy.sites_joined");
    sim_metric_setf(w, h->links->len > 0 ? (double)up_ok / h->links->len : 1,
                    "hierarchy.site_data_at_top_ratio");
    /* Every MP of the hierarchy carries a certificate the top-level TRK
     * signed, and every population was installed with that key. */
    top_hex = cm_site_export_trk(h->top->site);
    trk = cm_key_public_from_hex(top_hex, NULL);
    for (guint i = 0; i < w->mps->len; i++) {
        SimMp *m = g_ptr_array_index(w->mps, i);
        if (m->rogue)
            continue;
        mps++;
        mps_top += trk != NULL && cm_cert_check_signed_by(m->cert, trk, sim_now(w), NULL);
    }
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        pops_top += g_strcmp0(p->trk_hex, top_hex) == 0;
    }
    sim_metric_setf(w, mps > 0 ? (double)mps_top / mps : 0, "hierarchy.mps_top_signed_ratio");
    sim_metric_setf(w, w->pops->len > 0 ? (double)pops_top / w->pops->len : 0,
                    "hierarchy.pops_top_trk_ratio");
    for (guint i = 0; i < h->deploys->len; i++)
        deploy_metrics(w, g_ptr_array_index(h->deploys, i));
}

void
sim_hierarchy_free(SimWorld *w)
{
    SimHierarchy *h = w->hier;

    if (h == NULL)
        return;
    for (guint i = 0; i < h->links->len; i++) {
        HLink *l = g_ptr_array_index(h->links, i);
        g_clear_pointer(&l->batch, g_bytes_unref);
        g_free(l);
    }
    for (guint i = 0; i < h->deploys->len; i++) {
        HDeploy *d = g_ptr_array_index(h->deploys, i);
        for (guint k = 0; k < w->sites->len; k++)
            g_free(d->policy[k]);
        g_free(d->policy);
        g_free(d->site_at);
        g_free(d->client_at);
        g_free(d);
    }
    g_ptr_array_unref(h->links);
    g_ptr_array_unref(h->deploys);
    g_free(h);
    w->hier = NULL;
}
