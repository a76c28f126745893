/* enroll.c - the certificate enrollment point and the issuing CA behind it
 * (REQ REG-07, REG-08).
 *
 * Mobile devices and Mac computers enroll: they send a certificate request
 * to the enrollment point, which checks that the user may enroll and asks
 * the enterprise CA to issue a client authentication certificate.  The
 * product neither limits how many certificates one device may request nor,
 * by default, who may enroll; both are settings here so that a scenario can
 * show the attack and the defence side by side.
 *
 * The server is a SimServer like the MPs' and sites' (the same workers,
 * bound and counters), but its jobs carry enrollment requests rather than
 * protocol messages, so the few lines that move a job through it live here
 * rather than in traffic.c.  Its queue is a GQueue of EnrollJob, not the
 * SimJob ring: a SimJob weighs 1.2 KB and a flood queues tens of thousands
 * of requests; server.len mirrors the queue's length so that
 * sim_server_backlog and the counters work as for any server. */
#include "enroll.h"

#include <string.h>

/* Nominal message sizes (see traffic.c): a PKCS#10 request with the user's
 * credentials, and the issued certificate with its chain. */
#define ENROLL_REQUEST_BYTES 2500
#define ENROLL_RESPONSE_BYTES 2000

typedef struct {
    GList link;  /* in SimEnroll.outstanding */
    GList qlink; /* in SimEnroll.waiting while queued */
    SimEnrollRequest rq;
    char *user;
    CmTime sent_at;
    SimEnrollResult result;
    CmCert *cert;
} EnrollJob;

/* ------------------------------------------------------------- settings */

static gboolean
is_enroll_strategy(CmScnStrategy s)
{
    return s == CM_SCN_ATK_ENROLLMENT_FLOOD || s == CM_SCN_ATK_MOBILE_ENROLLMENT;
}

/* The value of key over every enrollment attacker: NULL when none sets it;
 * an error when two set it differently. */
static gboolean
shared_param(SimWorld *w, const char *key, const char **value, const char **owner, GError **error)
{
    *value = NULL;
    *owner = NULL;
    for (guint i = 0; i < w->scn->attackers->len; i++) {
        CmScnAttacker *a = g_ptr_array_index(w->scn->attackers, i);
        const char *v =
            is_enroll_strategy(a->strategy) ? g_hash_table_lookup(a->params, key) : NULL;
        if (v == NULL)
            continue;
        if (*value != NULL && strcmp(*value, v) != 0) {
            g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                        "[attacker %s] %s: the enrollment point is shared, and [attacker %s] "
                        "sets it to \"%s\"; got \"%s\"",
                        a->name, key, *owner, *value, v);
            return FALSE;
        }
        *value = v;
        *owner = a->name;
    }
    return TRUE;
}

static gboolean
param_count(SimWorld *w, const char *key, guint64 min, guint64 max, guint64 *out, GError **error)
{
    const char *v, *owner;
    GError *local = NULL;

    if (!shared_param(w, key, &v, &owner, error))
        return FALSE;
    if (v == NULL)
        return TRUE;
    if (!g_ascii_string_to_unsigned(v, 10, min, max, out, &local)) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "[attacker %s] %s: expected a whole number from %" G_GUINT64_FORMAT
                    " to %" G_GUINT64_FORMAT ", got \"%s\"",
                    owner, key, min, max, v);
        g_error_free(local);
        return FALSE;
    }
    return TRUE;
}

static gboolean
param_duration(SimWorld *w, const char *key, CmTime *out, GError **error)
{
    const char *v, *owner;
    CmTime t;

    if (!shared_param(w, key, &v, &owner, error))
        return FALSE;
    if (v == NULL)
        return TRUE;
    if (!cm_scn_parse_duration(v, &t, NULL) || t > CM_USEC_PER_HOUR) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "[attacker %s] %s: expected a duration up to 1h, such as 2ms or 100us, got "
                    "\"%s\"",
                    owner, key, v);
        return FALSE;
    }
    *out = t;
    return TRUE;
}

gboolean
sim_enroll_settings_load(SimWorld *w, SimEnrollSettings *set, GError **error)
{
    const char *users, *owner;
    guint64 limit = 0, workers = 1, queue = 100000, real = SIM_ENROLL_REAL_MAX;

    memset(set, 0, sizeof *set);
    /* An enterprise issuing CA signing in software and logging each
     * certificate to its database: a few hundred a second. */
    set->issue_cost = 2 * 1000;
    set->refusal_cost = 100;
    if (!param_count(w, "per_device_limit", 0, 1000000, &limit, error) ||
        !param_count(w, "ca_workers", 1, 1024, &workers, error) ||
        !param_count(w, "ca_queue_limit", 1, 10000000, &queue, error) ||
        !param_count(w, "real_certs", 0, 10000000, &real, error) ||
        !param_duration(w, "issue_cost", &set->issue_cost, error) ||
        !param_duration(w, "refusal_cost", &set->refusal_cost, error) ||
        !shared_param(w, "allowed_users", &users, &owner, error))
        return FALSE;
    set->per_device_limit = (guint)limit;
    set->workers = (int)workers;
    set->queue_limit = (guint)queue;
    set->real_max = real;
    if (users != NULL && strcmp(users, "any") != 0) {
        /* A list of users, as in the scenario file's lists. */
        g_auto(GStrv) items = g_strsplit(users, ",", -1);
        GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
        for (char **p = items; *p != NULL; p++) {
            char *u = g_strstrip(*p);
            if (*u == '\0') {
                g_ptr_array_free(list, TRUE);
                g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                            "[attacker %s] allowed_users: expected \"any\" or a list of user "
                            "names without empty items, got \"%s\"",
                            owner, users);
                return FALSE;
            }
            g_ptr_array_add(list, g_strdup(u));
        }
        g_ptr_array_add(list, NULL);
        /* Hands over the strings too: freeing the segment frees no element. */
        set->allowed_users = (char **)g_ptr_array_free(list, FALSE);
    }
    return TRUE;
}

void
sim_enroll_settings_clear(SimEnrollSettings *set)
{
    g_strfreev(set->allowed_users);
    set->allowed_users = NULL;
}

/* ------------------------------------------------------------- the server */

static void
queue_push(SimEnroll *e, EnrollJob *j)
{
    j->qlink.data = j;
    g_queue_push_tail_link(&e->waiting, &j->qlink);
    e->server.len = e->waiting.length;
    e->server.max_len = MAX(e->server.max_len, e->server.len);
}

static EnrollJob *
queue_pop(SimEnroll *e)
{
    GList *l = g_queue_pop_head_link(&e->waiting);

    e->server.len = e->waiting.length;
    return l->data;
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

static void
job_free(EnrollJob *j)
{
    cm_key_unref(j->rq.subject_key);
    cm_cert_unref(j->cert);
    g_free(j->user);
    g_free(j);
}

static void
ev_answer(CmSimEngine *eng, void *ctx, guint64 arg)
{
    SimEnroll *e = ctx;
    EnrollJob *j = GSIZE_TO_POINTER(arg);
    SimEnrollAnswer ans = {.result = j->result,
                           .tag = j->rq.tag,
                           .latency = cm_sim_now(eng) - j->sent_at,
                           .cert = j->cert};

    g_queue_unlink(&e->outstanding, &j->link);
    if (j->rq.done != NULL)
        j->rq.done(e->world, j->rq.ctx, &ans);
    job_free(j);
}

static void
reply(SimEnroll *e, EnrollJob *j)
{
    SimWorld *w = e->world;
    CmTime d = sim_net_delay(w, e->seg, j->rq.seg, ENROLL_RESPONSE_BYTES);

    cm_sim_at(w->engine, cm_sim_now(w->engine) + MAX(d, 0), ev_answer, e, GPOINTER_TO_SIZE(j));
}

static gboolean
user_allowed(SimEnroll *e, const char *user)
{
    return e->set.allowed_users == NULL ||
           g_strv_contains((const char *const *)e->set.allowed_users, user);
}

/* A worker takes the request: the checks decide what the work is.  The
 * grant counts from here, so that two workers cannot both take a device
 * past its limit. */
static void ev_done(CmSimEngine *eng, void *ctx, guint64 arg);

static void
start_service(SimEnroll *e, EnrollJob *j)
{
    SimWorld *w = e->world;
    CmTime cost = e->set.refusal_cost;

    if (!user_allowed(e, j->user)) {
        j->result = SIM_ENROLL_USER_REFUSED;
    } else {
        guint64 *key = NULL;
        gpointer have = NULL;
        guint granted = 0;
        if (g_hash_table_lookup_extended(e->granted, &j->rq.device, NULL, &have))
            granted = GPOINTER_TO_UINT(have);
        if (e->set.per_device_limit > 0 && granted >= e->set.per_device_limit) {
            j->result = SIM_ENROLL_LIMIT_REFUSED;
        } else {
            j->result = SIM_ENROLL_ISSUED;
            cost = e->set.issue_cost;
            key = g_new(guint64, 1);
            *key = j->rq.device;
            g_hash_table_replace(e->granted, key, GUINT_TO_POINTER(granted + 1));
        }
    }
    cm_sim_at(w->engine, cm_sim_now(w->engine) + cost, ev_done, e, GPOINTER_TO_SIZE(j));
}

static void
ev_arrive(CmSimEngine *eng, void *ctx, guint64 arg)
{
    SimEnroll *e = ctx;
    EnrollJob *j = GSIZE_TO_POINTER(arg);
    SimServer *s = &e->server;

    if (s->busy < s->workers) {
        s->busy++;
        start_service(e, j);
    } else if (s->len < s->queue_limit) {
        queue_push(e, j);
    } else {
        s->overloaded++;
        j->result = SIM_ENROLL_BUSY;
        reply(e, j);
        return;
    }
    backlog_changed(s, cm_sim_now(eng));
}

/* The enterprise CA signs a client authentication certificate for the
 * request's key.  Only the certificates someone keeps are kept: a flood's
 * would otherwise fill memory. */
static void
issue(SimEnroll *e, EnrollJob *j)
{
    SimWorld *w = e->world;
    guint64 serial = ++w->ca_serial;
    g_autofree char *cn = NULL;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_AUTH,
                       .serial = serial,
                       .not_before = sim_now(w) - CM_USEC_PER_HOUR,
                       .not_after = sim_now(w) + 365 * CM_USEC_PER_DAY,
                       .subject_key = j->rq.subject_key,
                       .issuer_key = w->ca_key,
                       .issuer_cert = w->ca_cert};
    GError *error = NULL;
    CmCert *cert;

    e->issued++;
    if (!j->rq.keep && e->issued_real >= e->set.real_max)
        return; /* counted by the cost model only */
    cn = g_strdup_printf("%s (enrolled device %" G_GUINT64_FORMAT ")", j->user, j->rq.device);
    spec.subject_cn = cn;
    cert = cm_cert_issue(&spec, &error);
    if (cert == NULL) {
        /* A CA that cannot sign is a fault of the run, not of the request. */
        g_warning("enrollment point: cannot issue a certificate: %s", error->message);
        g_error_free(error);
        return;
    }
    e->issued_real++;
    if (j->rq.keep)
        j->cert = cert;
    else
        cm_cert_unref(cert);
}

static void
ev_done(CmSimEngine *eng, void *ctx, guint64 arg)
{
    SimEnroll *e = ctx;
    EnrollJob *j = GSIZE_TO_POINTER(arg);
    SimServer *s = &e->server;

    s->served++;
    switch (j->result) {
    case SIM_ENROLL_ISSUED:
        issue(e, j);
        break;
    case SIM_ENROLL_USER_REFUSED:
        e->user_refused++;
        break;
    case SIM_ENROLL_LIMIT_REFUSED:
        e->limit_refused++;
        break;
    default:
        break;
    }
    reply(e, j);
    if (s->len > 0)
        start_service(e, queue_pop(e));
    else
        s->busy--;
    backlog_changed(s, cm_sim_now(eng));
}

void
sim_enroll_submit(SimEnroll *e, const SimEnrollRequest *rq)
{
    SimWorld *w = e->world;
    EnrollJob *j = g_new0(EnrollJob, 1);
    CmTime now = cm_sim_now(w->engine);
    CmTime d = sim_net_delay(w, rq->seg, e->seg, ENROLL_REQUEST_BYTES);

    j->rq = *rq;
    j->user = g_strdup(rq->user ? rq->user : "");
    j->rq.user = j->user;
    j->rq.subject_key = rq->subject_key ? cm_key_ref(rq->subject_key) : NULL;
    j->sent_at = now;
    j->link.data = j;
    g_queue_push_tail_link(&e->outstanding, &j->link);
    e->requests++;
    if (d < 0) {
        /* No route to the enrollment point: the connection times out. */
        j->result = SIM_ENROLL_UNREACHABLE;
        cm_sim_at(w->engine, now + w->connect_timeout, ev_answer, e, GPOINTER_TO_SIZE(j));
        return;
    }
    cm_sim_at(w->engine, now + d, ev_arrive, e, GPOINTER_TO_SIZE(j));
}

/* ------------------------------------------------------------- metrics */

static void
ev_sample(CmSimEngine *eng, void *ctx, guint64 arg)
{
    SimEnroll *e = ctx;
    SimWorld *w = e->world;

    (void)arg;
    g_array_append_val(cm_run_series(w->run, "ca.backlog", "requests")->values,
                       (double){sim_server_backlog(&e->server)});
    /* The same instants as metrics.c samples the other servers. */
    if (cm_sim_now(eng) + w->scn->sample <= w->scn->duration)
        cm_sim_at(eng, cm_sim_now(eng) + w->scn->sample, ev_sample, e, 0);
}

static void
set(SimEnroll *e, const char *name, double v)
{
    cm_run_set_metric(e->world->run, name, v);
}

void
sim_enroll_report(SimEnroll *e)
{
    SimServer *s = &e->server;
    CmTime end = cm_sim_now(e->world->engine);
    gboolean drained = s->busy_since < 0;
    CmTime drain = drained ? s->longest_busy : MAX(s->longest_busy, end - s->busy_since);

    set(e, "ca.backlog.max", s->max_backlog);
    set(e, "ca.queue.max", s->max_len);
    set(e, "ca.backlog.drain_time", (double)drain / 1e6);
    set(e, "ca.backlog.drained", drained ? 1 : 0);
    set(e, "ca.served", (double)s->served);
    set(e, "ca.overloaded", (double)s->overloaded);
    set(e, "ca.requests", (double)e->requests);
    set(e, "ca.issued", (double)e->issued);
    set(e, "ca.issued_real", (double)e->issued_real);
    set(e, "ca.refused_user", (double)e->user_refused);
    set(e, "ca.refused_limit", (double)e->limit_refused);
}

/* ------------------------------------------------------------- life */

SimEnroll *
sim_enroll_new(SimWorld *w, SimEnrollSettings *set)
{
    SimEnroll *e = g_new0(SimEnroll, 1);
    SimSite *site = sim_world_site(w, NULL);

    e->world = w;
    e->set = *set;
    memset(set, 0, sizeof *set);
    e->seg = site != NULL ? site->seg : 0;
    sim_server_init(&e->server, "enrollment point", e->set.workers, e->set.queue_limit);
    e->granted = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    g_queue_init(&e->outstanding);
    g_queue_init(&e->waiting);
    cm_sim_at(w->engine, w->scn->sample, ev_sample, e, 0);
    return e;
}

void
sim_enroll_free(SimEnroll *e)
{
    GList *l;

    if (e == NULL)
        return;
    /* Requests still on their way, queued or in service at the end: every
     * one is in outstanding.  The ring holds none of them. */
    while ((l = g_queue_peek_head_link(&e->outstanding)) != NULL) {
        g_queue_unlink(&e->outstanding, l);
        job_free(l->data);
    }
    g_queue_init(&e->waiting);
    e->server.len = 0;
    sim_server_clear(&e->server);
    g_hash_table_unref(e->granted);
    sim_enroll_settings_clear(&e->set);
    g_free(e);
}
