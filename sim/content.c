/* content.c - content distribution to distribution points in virtual time
 * (REQ DP-02, DP-03).
 *
 * Each [dp] is a real CmDp (dp/), and the site's transfers to it a real
 * CmDpTransfer: the DP library decides how many bytes the DP's rate limit
 * and schedule let through between two calls, and when to call again.
 * This file only calls it at those times (and at every sample, to chart
 * the rate), and measures what went out independently of it: bytes per
 * sample window (the peak rate, against the limit) and bytes sent in an
 * hour that the scenario's own schedule closes (which must stay 0).
 *
 * The limit is the DP's rate_limit, or without one the bandwidth of the
 * site server's link to the DP's segment, whichever is lower.  Transfers
 * to different DPs do not share a link's bandwidth (each DP's limit is its
 * own, as the product sets them; contention on a shared WAN link is not
 * modelled).  Content arrives one link latency after its last byte left.
 *
 * Packages: each [content] is a real package (manifest, content hash) of
 * small stand-in files, so that cm_dp_distribute compares real hashes and
 * a prestaged DP imports a real prestaged content file; the transfer is
 * charged the content's nominal size. */
#include "content.h"

#include <stdarg.h>
#include <string.h>

#include "cmdp.h"

/* cm_dp_transfer_new takes at most this many bytes a second (32 Gbps). */
#define RATE_MAX_BYTES G_GUINT64_CONSTANT(4000000000)

typedef struct {
    CmScnContent *scn;
    CmTime distributed_at; /* virtual time since the start */
    CmTime available_at;   /* -1: not yet */
    guint64 remaining;     /* nominal bytes still to send */
    guint64 bytes;         /* sent for it */
    gboolean prestaged;    /* accepted as prestaged content, no transfer */
} Delivery;

typedef struct {
    CmScnDp *scn;
    guint index;
    SimSite *site;
    CmDp *dp;
    CmDpTransfer *xfer;
    CmTime latency;         /* site server to the DP, one way */
    guint seg;              /* the DP's segment */
    double limit_bps;       /* what the transfer may use, bits a second */
    GHashTable *deliveries; /* content ID -> Delivery* */
    GQueue inflight;        /* Delivery*, in the transfer's order */
    guint64 bytes_sent, bytes_outside;
    guint64 window_bytes; /* sent in the current sample window */
    double peak_bps;
    CmTime last_run; /* virtual: the start of the next interval the transfer accounts */
    CmTime wake_at;  /* virtual: the pending wake-up, 0: none */
    guint32 wake_gen;
} SimDp;

/* A deploy event with content, and its clients' downloads (REQ DP-04). */
typedef struct {
    CmScnEvent *ev;
    CmScnContent *scn;
    char *policy_id; /* the policy the deploy made, once it did */
    guint8 *state;   /* per client: DL_* */
    CmTime *seen;    /* per client: when it was first seen holding the policy, -1: not yet */
    guint64 started, verified, mismatch, refused, unreachable;
    CmTime wait_max; /* policy held to content verified, the longest */
    double wait_sum;
} Download;

enum { DL_NONE, DL_RUNNING, DL_VERIFIED, DL_MISMATCH, DL_REFUSED, DL_UNREACHABLE };

#define DL_SWEEP CM_USEC_PER_MIN /* how often clients look for content to download */

struct SimContent {
    GPtrArray *dps;       /* SimDp* */
    GHashTable *pkgs;     /* content ID -> CmDpPackage* */
    GHashTable *tampered; /* content ID -> CmDpPackage*: the altered copy a tampered DP serves */
    GPtrArray *downloads; /* Download* */
};

static SimContent *
content_of(SimWorld *w)
{
    return w->content;
}

/* Whether the scenario's schedule lets transfers run in that hour of the
 * day: the check the measurement uses, apart from the library's. */
static gboolean
hour_open(const CmScnDp *scn, guint hour)
{
    if (scn->hours_start == scn->hours_end)
        return TRUE;
    if (scn->hours_start < scn->hours_end)
        return hour >= scn->hours_start && hour < scn->hours_end;
    return hour >= scn->hours_start || hour < scn->hours_end;
}

static guint
hour_of_day(CmTime t)
{
    return (guint)((t / CM_USEC_PER_HOUR) % 24);
}

static CmDpPackage *
package_build(SimWorld *w, CmScnContent *scn, const char *salt, GError **error)
{
    g_autofree CmDpFile *files = g_new0(CmDpFile, scn->files);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    CmDpPackage *pkg;

    /* Stand-in bytes that differ per content, file and seed: distinct
     * packages have distinct hashes. */
    for (guint i = 0; i < scn->files; i++) {
        char *name = g_strdup_printf("file%u.bin", i + 1);
        g_autofree char *data =
            g_strdup_printf("%s/%s/%" G_GUINT64_FORMAT "%s", scn->name, name, w->scn->seed, salt);
        g_ptr_array_add(names, name);
        files[i].name = name;
        files[i].data = g_bytes_new(data, strlen(data));
    }
    pkg = cm_dp_package_new(scn->name, files, scn->files, error);
    for (guint i = 0; i < scn->files; i++)
        g_bytes_unref(files[i].data);
    return pkg;
}

/* What a tampered DP serves once it holds content: files an attacker
 * altered in place, under the same content ID (its manifest follows the
 * files, so it no longer matches the hash in the signed policy). */
static void
tamper(SimContent *sc, SimDp *d, CmScnContent *scn)
{
    if (d->scn->tampered)
        cm_dp_content_add(d->dp, g_hash_table_lookup(sc->tampered, scn->name),
                          CM_DP_SOURCE_TRANSFER);
}

static void
delivery_free(gpointer p)
{
    g_free(p);
}

static gboolean
dp_build(SimWorld *w, SimContent *sc, CmScnDp *scn, GError **error)
{
    SimDp *d = g_new0(SimDp, 1);
    CmDpConfig config = {.name = scn->name, .site_code = scn->site, .prestaged = scn->prestaged};
    CmDpSchedule sched;
    guint a, b;
    double link_bps, bps;
    guint64 bytes_per_sec;

    d->scn = scn;
    d->index = sc->dps->len;
    d->deliveries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, delivery_free);
    g_queue_init(&d->inflight);
    g_ptr_array_add(sc->dps, d);
    d->site = sim_world_site(w, scn->site);
    a = d->site->seg;
    b = sim_world_seg(w, scn->segment);
    if (w->latency[a * w->n_segs + b] < 0) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "[dp %s] segment: the site server of %s (segment %s) cannot reach segment %s; "
                    "expected a [link] from it",
                    scn->name, scn->site, d->site->scn->segment, scn->segment);
        return FALSE;
    }
    d->latency = w->latency[a * w->n_segs + b];
    d->seg = b;
    link_bps = w->bandwidth[a * w->n_segs + b];
    bps = scn->rate_limit_bps > 0 ? MIN(scn->rate_limit_bps, link_bps) : link_bps;
    bytes_per_sec = (guint64)MIN(bps / 8.0, (double)RATE_MAX_BYTES);
    bytes_per_sec = MAX(bytes_per_sec, 1);
    d->limit_bps = (double)bytes_per_sec * 8.0;
    cm_dp_schedule_default(&sched, bytes_per_sec);
    if (scn->hours_start != scn->hours_end)
        cm_dp_schedule_limit(&sched, scn->hours_end, scn->hours_start, 0); /* closed outside */
    d->dp = cm_dp_new(&config, error);
    if (d->dp == NULL)
        return FALSE;
    d->xfer = cm_dp_transfer_new(&sched, sim_now(w), error);
    if (d->xfer == NULL)
        return FALSE;
    /* Content placed by hand before the run: the prestaged content file
     * an administrator extracts on the DP (REQ DP-03). */
    for (char **c = scn->prestaged_content; c != NULL && *c != NULL; c++) {
        CmDpPackage *pkg = g_hash_table_lookup(sc->pkgs, *c);
        g_autoptr(GBytes) file = cm_dp_prestage_file_new(pkg);
        if (!cm_dp_prestage_import(d->dp, g_bytes_get_data(file, NULL), g_bytes_get_size(file),
                                   error))
            return FALSE;
    }
    return TRUE;
}

gboolean
sim_content_build(SimWorld *w, GError **error)
{
    SimContent *sc;

    if (w->scn->dps->len == 0 && w->scn->contents->len == 0)
        return TRUE;
    sc = g_new0(SimContent, 1);
    sc->dps = g_ptr_array_new();
    sc->pkgs =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)cm_dp_package_unref);
    sc->tampered =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)cm_dp_package_unref);
    sc->downloads = g_ptr_array_new();
    w->content = sc;
    for (guint i = 0; i < w->scn->contents->len; i++) {
        CmScnContent *c = g_ptr_array_index(w->scn->contents, i);
        CmDpPackage *pkg = package_build(w, c, "", error);
        if (pkg == NULL)
            return FALSE;
        g_hash_table_insert(sc->pkgs, c->name, pkg);
        pkg = package_build(w, c, "/altered", error);
        if (pkg == NULL)
            return FALSE;
        g_hash_table_insert(sc->tampered, c->name, pkg);
    }
    for (guint i = 0; i < w->scn->dps->len; i++)
        if (!dp_build(w, sc, g_ptr_array_index(w->scn->dps, i), error))
            return FALSE;
    return TRUE;
}

/* ------------------------------------------------------- transfers */

static void dp_run(SimWorld *w, SimDp *d);

static void
ev_wake(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimDp *d = g_ptr_array_index(content_of(w)->dps, (guint)(arg >> 32));

    (void)e;
    if ((guint32)arg != d->wake_gen)
        return; /* replaced by a later wake-up */
    d->wake_at = 0;
    dp_run(w, d);
}

/* The last byte is on the DP one latency after it left. */
static void
ev_arrived(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimContent *sc = content_of(w);
    SimDp *d = g_ptr_array_index(sc->dps, (guint)(arg >> 32));
    CmScnContent *scn = g_ptr_array_index(w->scn->contents, (guint)(arg & 0xffffffffu));
    Delivery *dl = g_hash_table_lookup(d->deliveries, scn->name);

    dl->available_at = cm_sim_now(e);
    cm_dp_content_add(d->dp, g_hash_table_lookup(sc->pkgs, scn->name), CM_DP_SOURCE_TRANSFER);
    tamper(sc, d, scn);
}

static guint
content_index(SimWorld *w, const CmScnContent *scn)
{
    guint i;

    for (i = 0; i < w->scn->contents->len; i++)
        if (g_ptr_array_index(w->scn->contents, i) == scn)
            break;
    return i;
}

/* Brings d's transfer to now: what went out since the last call, what
 * completed, and the next wake-up the library asks for. */
static void
dp_run(SimWorld *w, SimDp *d)
{
    CmTime now = cm_sim_now(w->engine);
    CmDpTransferTick tick;
    guint64 left;

    cm_dp_transfer_tick_init(&tick);
    cm_dp_transfer_run(d->xfer, sim_now(w), &tick);
    if (tick.bytes > 0) {
        d->bytes_sent += tick.bytes;
        d->window_bytes += tick.bytes;
        /* The library wakes at every hour boundary while it sends, so an
         * interval with bytes lies within the hour it starts in. */
        if (!hour_open(d->scn, hour_of_day(d->last_run)))
            d->bytes_outside += tick.bytes;
        left = tick.bytes;
        for (GList *l = d->inflight.head; l != NULL && left > 0; l = l->next) {
            Delivery *dl = l->data;
            guint64 take = MIN(left, dl->remaining);
            dl->remaining -= take;
            dl->bytes += take;
            left -= take;
        }
    }
    for (guint i = 0; i < tick.completed->len; i++) {
        Delivery *dl = g_queue_pop_head(&d->inflight);
        g_warn_if_fail(dl != NULL &&
                       strcmp(dl->scn->name, g_ptr_array_index(tick.completed, i)) == 0);
        if (dl == NULL)
            continue;
        cm_sim_at(w->engine, now + d->latency, ev_arrived, w,
                  ((guint64)d->index << 32) | content_index(w, dl->scn));
    }
    d->last_run = now;
    if (tick.wake_at > 0 && tick.wake_at - w->epoch != d->wake_at) {
        d->wake_at = MAX(tick.wake_at - w->epoch, now);
        d->wake_gen++;
        cm_sim_at(w->engine, d->wake_at, ev_wake, w, ((guint64)d->index << 32) | d->wake_gen);
    }
    cm_dp_transfer_tick_clear(&tick);
}

static void
ev_sample(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimContent *sc = content_of(w);
    double secs = (double)w->scn->sample / 1e6;

    (void)arg;
    for (guint i = 0; i < sc->dps->len; i++) {
        SimDp *d = g_ptr_array_index(sc->dps, i);
        g_autofree char *name = g_strdup_printf("dp.%s.rate", d->scn->name);
        double bps;
        dp_run(w, d);
        bps = (double)d->window_bytes * 8.0 / secs;
        d->peak_bps = MAX(d->peak_bps, bps);
        cm_series_append(cm_run_series(w->run, name, "bits per second"), bps);
        d->window_bytes = 0;
    }
    if (cm_sim_now(e) + w->scn->sample <= w->scn->duration)
        cm_sim_at(e, cm_sim_now(e) + w->scn->sample, ev_sample, w, 0);
}

static CmScnContent *
content_named(SimWorld *w, const char *id)
{
    for (guint i = 0; i < w->scn->contents->len; i++) {
        CmScnContent *c = g_ptr_array_index(w->scn->contents, i);
        if (strcmp(c->name, id) == 0)
            return c;
    }
    return NULL;
}

CmDpPackage *
sim_content_package(SimWorld *w, const char *id)
{
    return content_of(w) != NULL ? g_hash_table_lookup(content_of(w)->pkgs, id) : NULL;
}

static SimDp *
dp_named(SimContent *sc, const char *name)
{
    for (guint i = 0; i < sc->dps->len; i++) {
        SimDp *d = g_ptr_array_index(sc->dps, i);
        if (strcmp(d->scn->name, name) == 0)
            return d;
    }
    return NULL;
}

/* ------------------------------------------------------- downloads (DP-04) */

/* One GET to the DP as the client: its computer account over Windows-
 * integrated authentication when it is a domain member, else anonymous
 * (which a DP that does not allow it refuses, REQ DP-01).  The body, or
 * NULL when the DP refused or has nothing. */
static GBytes *
dp_get(SimWorld *w, SimDp *d, SimPop *p, guint k, const char *path)
{
    CmDpRequest req = {.path = path, .transport = CM_TRANSPORT_HTTP};
    CmResponse resp = {0};
    GBytes *body = NULL;

    if (p->scn->domain != NULL && *p->scn->domain != '\0') {
        g_autofree char *realm = g_ascii_strup(p->scn->domain, -1);
        req.peer.kind = CM_AUTH_KERBEROS;
        g_snprintf(req.peer.principal, sizeof req.peer.principal, "%s-%u$@%s", p->scn->name, k,
                   realm);
        g_strlcpy(req.peer.domain, realm, sizeof req.peer.domain);
    }
    cm_dp_handle(d->dp, &req, sim_now(w), &resp);
    if (resp.status == 200 && resp.body != NULL)
        body = g_bytes_ref(resp.body);
    cm_response_clear(&resp);
    return body;
}

/* The download is on the client: the manifest against the content of its
 * verified policy, then every file against the manifest (cm_dp_*_verify,
 * REQ DP-04). */
static void
ev_downloaded(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimContent *sc = content_of(w);
    Download *dl = g_ptr_array_index(sc->downloads, (guint)(arg >> 32));
    guint idx = (guint)(arg & 0xffffffffu);
    SimClient *c = &w->clients[idx];
    SimPop *p = g_ptr_array_index(w->pops, c->pop);
    SimDp *d = dp_named(sc, p->scn->dp);
    guint k = idx - p->first;
    const json_t *policy = cm_agent_policy(c->agent, dl->policy_id);
    g_autofree char *mpath = g_strdup_printf("/SMS_DP_SMSPKG$/%s", dl->scn->name);
    g_autoptr(GBytes) manifest = dp_get(w, d, p, k, mpath);
    g_autoptr(CmDpManifest) m = NULL;
    g_autoptr(GPtrArray) bodies = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_autofree CmDpFile *files = NULL;
    gboolean ok = TRUE;
    CmTime wait;

    if (manifest == NULL || policy == NULL) {
        dl->state[idx] = DL_REFUSED;
        dl->refused++;
        return;
    }
    m = cm_dp_manifest_verify(policy, g_bytes_get_data(manifest, NULL), g_bytes_get_size(manifest),
                              NULL);
    if (m != NULL) {
        files = g_new0(CmDpFile, MAX(cm_dp_manifest_count(m), 1));
        for (size_t i = 0; ok && i < cm_dp_manifest_count(m); i++) {
            const CmDpEntry *ent = cm_dp_manifest_entry(m, i);
            g_autofree char *fpath = g_strdup_printf("%s/%s", mpath, ent->name);
            GBytes *body = dp_get(w, d, p, k, fpath);
            ok = body != NULL;
            if (body != NULL)
                g_ptr_array_add(bodies, body);
            files[i].name = ent->name;
            files[i].data = body;
        }
    }
    if (m == NULL || !ok ||
        !cm_dp_content_verify(policy, g_bytes_get_data(manifest, NULL), g_bytes_get_size(manifest),
                              files, cm_dp_manifest_count(m), NULL)) {
        /* The client refuses content that does not match its policy. */
        dl->state[idx] = DL_MISMATCH;
        dl->mismatch++;
        return;
    }
    dl->state[idx] = DL_VERIFIED;
    dl->verified++;
    wait = cm_sim_now(e) - dl->seen[idx];
    dl->wait_max = MAX(dl->wait_max, wait);
    dl->wait_sum += (double)wait / 1e6;
}

/* Every minute, each client of a population with a DP that holds the
 * deployment's policy and finds the content on its DP starts the
 * download: the whole package at its nominal size over the network from
 * the DP's segment to the client's (each download on its own; no
 * contention at the DP is modelled). */
static void
ev_sweep(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimContent *sc = content_of(w);
    CmTime now = cm_sim_now(e);

    (void)arg;
    for (guint k = 0; k < sc->downloads->len; k++) {
        Download *dl = g_ptr_array_index(sc->downloads, k);
        if (dl->policy_id == NULL) {
            SimSite *site = sim_world_site(w, dl->ev->site);
            dl->policy_id = cm_site_policy_id(site->site, dl->ev->name);
            if (dl->policy_id == NULL)
                continue; /* not deployed yet */
        }
        for (guint i = 0; i < w->pops->len; i++) {
            SimPop *p = g_ptr_array_index(w->pops, i);
            SimDp *d = p->scn->dp != NULL ? dp_named(sc, p->scn->dp) : NULL;
            gboolean there = d != NULL && cm_dp_content_get(d->dp, dl->scn->name) != NULL;
            for (guint c = p->first; d != NULL && c < p->first + p->count; c++) {
                CmTime delay;
                if (dl->state[c] != DL_NONE || w->clients[c].attacker ||
                    cm_agent_policy(w->clients[c].agent, dl->policy_id) == NULL)
                    continue;
                if (dl->seen[c] < 0)
                    dl->seen[c] = now;
                if (!there)
                    continue;
                delay = sim_net_delay(w, d->seg, w->clients[c].seg, (gsize)dl->scn->size);
                if (delay < 0) {
                    dl->state[c] = DL_UNREACHABLE;
                    dl->unreachable++;
                    continue;
                }
                dl->state[c] = DL_RUNNING;
                dl->started++;
                cm_sim_at(e, now + delay, ev_downloaded, w, ((guint64)k << 32) | c);
            }
        }
    }
    if (now + DL_SWEEP <= w->scn->duration)
        cm_sim_at(e, now + DL_SWEEP, ev_sweep, w, 0);
}

static void
download_metrics(SimWorld *w, Download *dl)
{
    const char *ev = dl->ev->name;

    sim_metric_setf(w, (double)dl->started, "content.%s.downloads", ev);
    sim_metric_setf(w, (double)dl->verified, "content.%s.verified", ev);
    sim_metric_setf(w, (double)dl->mismatch, "content.%s.rejected", ev);
    sim_metric_setf(w, (double)dl->refused, "content.%s.dp_refused", ev);
    sim_metric_setf(w, (double)dl->unreachable, "content.%s.unreachable", ev);
    sim_metric_setf(w, dl->started ? (double)dl->verified / (double)dl->started : 0,
                    "content.%s.verified_ratio", ev);
    sim_metric_setf(w, dl->started ? (double)dl->mismatch / (double)dl->started : 0,
                    "content.%s.rejected_ratio", ev);
    sim_metric_setf(w, (double)dl->wait_max / 1e6, "content.%s.wait.max", ev);
    sim_metric_setf(w, dl->verified ? dl->wait_sum / (double)dl->verified : 0,
                    "content.%s.wait.mean", ev);
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        guint verified = 0, rejected = 0;
        if (p->scn->dp == NULL)
            continue;
        for (guint c = p->first; c < p->first + p->count; c++) {
            verified += dl->state[c] == DL_VERIFIED;
            rejected += dl->state[c] == DL_MISMATCH;
        }
        sim_metric_setf(w, p->count ? (double)verified / p->count : 0,
                        "pop.%s.content.%s.verified_ratio", p->scn->name, ev);
        sim_metric_setf(w, p->count ? (double)rejected / p->count : 0,
                        "pop.%s.content.%s.rejected_ratio", p->scn->name, ev);
    }
}

void
sim_content_distribute(SimWorld *w, CmScnEvent *ev)
{
    SimContent *sc = content_of(w);
    CmDpPackage *pkg = g_hash_table_lookup(sc->pkgs, ev->content);
    CmScnContent *scn = NULL;
    CmTime now = cm_sim_now(w->engine);

    for (guint i = 0; i < w->scn->contents->len; i++)
        if (strcmp(((CmScnContent *)g_ptr_array_index(w->scn->contents, i))->name, ev->content) ==
            0)
            scn = g_ptr_array_index(w->scn->contents, i);
    for (guint i = 0; i < sc->dps->len; i++) {
        SimDp *d = g_ptr_array_index(sc->dps, i);
        Delivery *dl;
        GError *error = NULL;
        if (strcmp(d->scn->site, ev->site) != 0 ||
            (ev->dps != NULL && !g_strv_contains((const char *const *)ev->dps, d->scn->name)))
            continue;
        if (g_hash_table_contains(d->deliveries, ev->content))
            continue; /* on its way, or there already */
        dl = g_new0(Delivery, 1);
        dl->scn = scn;
        dl->distributed_at = now;
        dl->available_at = -1;
        g_hash_table_insert(d->deliveries, scn->name, dl);
        switch (
            cm_dp_distribute(d->dp, scn->name, cm_dp_package_hash(pkg), cm_dp_package_size(pkg))) {
        case CM_DP_DISTRIBUTE_PRESTAGED:
            dl->prestaged = TRUE;
            dl->available_at = now;
            tamper(sc, d, scn);
            break;
        case CM_DP_DISTRIBUTE_PRESENT:
            dl->available_at = now;
            break;
        case CM_DP_DISTRIBUTE_TRANSFER:
            dp_run(w, d); /* account for what went before, at the old queue */
            if (!cm_dp_transfer_add(d->xfer, scn->name, scn->size, sim_now(w), &error)) {
                g_warning("event %s: %s", ev->name, error->message);
                g_error_free(error);
                break;
            }
            dl->remaining = scn->size;
            g_queue_push_tail(&d->inflight, dl);
            dp_run(w, d);
            break;
        }
    }
}

/* ------------------------------------------------------- metrics */

void
sim_content_finish(SimWorld *w)
{
    SimContent *sc = content_of(w);
    guint64 pairs = 0, available = 0, prestaged = 0, bytes = 0, outside = 0;
    double max_time = 0, max_ratio = 0;

    if (sc == NULL)
        return;
    for (guint i = 0; i < sc->dps->len; i++) {
        SimDp *d = g_ptr_array_index(sc->dps, i);
        const char *dn = d->scn->name;
        double ratio;

        dp_run(w, d); /* up to the end */
        ratio = d->limit_bps > 0 ? d->peak_bps / d->limit_bps : 0;
        sim_metric_setf(w, (double)d->bytes_sent, "dp.%s.bytes_sent", dn);
        sim_metric_setf(w, (double)d->bytes_outside, "dp.%s.bytes_outside_window", dn);
        sim_metric_setf(w, d->peak_bps, "dp.%s.peak_rate", dn);
        sim_metric_setf(w, d->limit_bps, "dp.%s.rate_limit", dn);
        sim_metric_setf(w, ratio, "dp.%s.peak_rate_ratio", dn);
        sim_metric_setf(w, (double)cm_dp_counters(d->dp)->prestaged_accepted,
                        "dp.%s.prestaged_accepted", dn);
        sim_metric_setf(w, (double)cm_dp_counters(d->dp)->transfers_needed, "dp.%s.transfers", dn);
        bytes += d->bytes_sent;
        outside += d->bytes_outside;
        max_ratio = MAX(max_ratio, ratio);
        for (guint k = 0; k < w->scn->contents->len; k++) {
            CmScnContent *c = g_ptr_array_index(w->scn->contents, k);
            Delivery *dl = g_hash_table_lookup(d->deliveries, c->name);
            if (dl == NULL)
                continue;
            pairs++;
            prestaged += dl->prestaged;
            sim_metric_setf(w, (double)dl->bytes, "dp.%s.content.%s.bytes_sent", dn, c->name);
            sim_metric_setf(w, dl->prestaged, "dp.%s.content.%s.prestaged", dn, c->name);
            sim_metric_setf(w, dl->available_at >= 0, "dp.%s.content.%s.available", dn, c->name);
            if (dl->available_at < 0)
                continue;
            available++;
            sim_metric_setf(w, (double)dl->available_at / 1e6, "dp.%s.content.%s.available_at", dn,
                            c->name);
            sim_metric_setf(w, (double)(dl->available_at - dl->distributed_at) / 1e6,
                            "dp.%s.content.%s.transfer_time", dn, c->name);
            max_time = MAX(max_time, (double)(dl->available_at - dl->distributed_at) / 1e6);
        }
    }
    cm_run_set_metric(w->run, "content.distributions", (double)pairs);
    cm_run_set_metric(w->run, "content.available", (double)available);
    cm_run_set_metric(w->run, "content.available_ratio", pairs ? (double)available / pairs : 0);
    cm_run_set_metric(w->run, "content.prestaged_accepted", (double)prestaged);
    cm_run_set_metric(w->run, "content.transfer_time.max", max_time);
    cm_run_set_metric(w->run, "content.bytes_sent", (double)bytes);
    cm_run_set_metric(w->run, "content.bytes_outside_window", (double)outside);
    cm_run_set_metric(w->run, "content.peak_rate_ratio.max", max_ratio);
    for (guint i = 0; i < sc->downloads->len; i++)
        download_metrics(w, g_ptr_array_index(sc->downloads, i));
}

void
sim_content_free(SimWorld *w)
{
    SimContent *sc = content_of(w);

    if (sc == NULL)
        return;
    for (guint i = 0; i < sc->dps->len; i++) {
        SimDp *d = g_ptr_array_index(sc->dps, i);
        g_queue_clear(&d->inflight);
        g_hash_table_unref(d->deliveries);
        cm_dp_transfer_free(d->xfer);
        cm_dp_free(d->dp);
        g_free(d);
    }
    for (guint i = 0; i < sc->downloads->len; i++) {
        Download *dl = g_ptr_array_index(sc->downloads, i);
        g_free(dl->policy_id);
        g_free(dl->state);
        g_free(dl->seen);
        g_free(dl);
    }
    g_ptr_array_unref(sc->downloads);
    g_ptr_array_unref(sc->dps);
    g_hash_table_unref(sc->pkgs);
    g_hash_table_unref(sc->tampered);
    g_free(sc);
    w->content = NULL;
}

void
sim_content_start(SimWorld *w)
{
    SimContent *sc = content_of(w);
    gboolean clients = FALSE;

    if (sc == NULL || sc->dps->len == 0)
        return;
    cm_sim_at(w->engine, w->scn->sample, ev_sample, w, 0);
    for (guint i = 0; i < w->pops->len; i++)
        clients |= ((SimPop *)g_ptr_array_index(w->pops, i))->scn->dp != NULL;
    for (guint i = 0; clients && i < w->scn->events->len; i++) {
        CmScnEvent *ev = g_ptr_array_index(w->scn->events, i);
        Download *dl;
        if (ev->action != CM_SCN_ACT_DEPLOY || ev->content == NULL)
            continue;
        dl = g_new0(Download, 1);
        dl->ev = ev;
        dl->scn = content_named(w, ev->content);
        dl->state = g_new0(guint8, MAX(w->n_clients, 1));
        dl->seen = g_new(CmTime, MAX(w->n_clients, 1));
        for (guint k = 0; k < w->n_clients; k++)
            dl->seen[k] = -1;
        g_ptr_array_add(sc->downloads, dl);
    }
    if (sc->downloads->len > 0)
        cm_sim_at(w->engine, DL_SWEEP, ev_sweep, w, 0);
}
