/* attack.c - attackers: each is a strategy run against the same role code
 * the defenders run, and each ends in one row of the attack outcome table.
 *
 *  rogue-mp        its own "site" (own TRK) and MP, put first in the
 *                  target population's DNS answers (REQ TRUST-03/04, REG-09)
 *  compromised-mp  an MP that serves its own signing certificate and
 *                  re-signed policies (REQ TRUST-09, POL-03)
 *  policy-replay   a compromised MP that hands a captured, genuinely signed
 *                  policy to clients outside its collection (REQ POL-03)
 *  status-flood    unauthenticated status messages at a rate (REQ MSG-03/04)
 *  bogus-status    status messages naming victims (REQ MSG-04)
 *  false-inventory registered clients that lie in inventory (REQ POL-02)
 *  blocked-rejoin  blocked clients return as new devices (REQ REG-04)
 *  cloned-image    clones of a client's disk on other hardware (REQ REG-06)
 *  enrollment-flood
 *                  a rogue device repeats certificate enrollment at a rate,
 *                  against legitimate enrollments at the same issuing CA
 *                  (REQ REG-08)
 *  mobile-enrollment
 *                  computers enroll as mobile devices and register with the
 *                  certificate as PKI clients (REQ REG-07)
 */
#include "world.h"

#include "enroll.h"
#include "cli.h"

#include <string.h>

typedef struct {
    CmScnAttacker *scn;
    guint seg;
    /* rogue-mp */
    SimSite *rogue_site;
    SimMp *rogue_mp;
    /* compromised-mp / policy-replay */
    SimMp *mp;
    CmKey *evil_key;
    CmCert *evil_cert;
    char *evil_cert_b64;
    char *replay_id;        /* the captured policy */
    json_t *replay_answer;
    char *replay_hash;
    /* floods */
    guint64 sent, accepted, refused;
    double carry;           /* fractional messages owed to the next tick */
    /* clones, rejoiners, computers with mobile certificates */
    GPtrArray *extra;       /* SimClient* the attacker runs */
    guint blocked_seen;
    /* enrollment-flood, mobile-enrollment */
    SimWorld *world;
    guint index;            /* in w->attackers: names its devices */
    SimEnroll *enroll;      /* the world's one enrollment point */
    gboolean enroll_owner;  /* this attacker built it: reports and frees it */
    const char *user;       /* who enrolls */
    CmKey *csr_key;         /* the key the flood's requests certify */
    guint64 issued, busy, unreachable, user_refused, limit_refused;
    SimPop *enrollers;      /* legitimate enrollments measured against the flood */
    CmKey *enrollers_key;
    guint64 legit_sent, legit_issued, legit_refused, legit_answered;
    CmTime legit_sum, legit_max;
    SimHist legit_lat;
    GPtrArray *mobile_keys; /* CmKey*, one per computer */
    guint enrolled;
} Attacker;

static Attacker *
attacker_of(SimWorld *w, SimMp *mp)
{
    for (guint i = 0; i < w->attackers->len; i++) {
        Attacker *a = g_ptr_array_index(w->attackers, i);
        if (a->mp == mp)
            return a;
    }
    return NULL;
}

/* An outcome figure, also a metric "attack.<attacker>.<figure>" so that
 * expectations can name it. */
static void
figure(SimWorld *w, CmOutcome *o, const Attacker *a, const char *name, double value)
{
    g_autofree char *metric = g_strdup_printf("attack.%s.%s", a->scn->name, name);

    cm_outcome_set_figure(o, name, value);
    cm_run_set_metric(w->run, metric, value);
}

/* A device the attacker runs (a clone, a reinstall, an enrolled computer):
 * the attacker keeps it, and its agent starts now. */
static void
run_extra(SimWorld *w, Attacker *a, SimClient *n)
{
    CmAgentActions act;

    g_ptr_array_add(a->extra, n);
    cm_agent_actions_init(&act);
    cm_agent_start(n->agent, sim_now(w), &act);
    sim_client_actions(w, n, &act);
    cm_agent_actions_clear(&act);
}

/* A new device the attacker runs, with its own agent (a fresh identity
 * from the stream) and the given PKI identity, if any; started at once.
 * Returns FALSE (and keeps nothing) when the agent cannot install. */
static gboolean
start_device(SimWorld *w, Attacker *a, SimPop *p, guint pop, guint seg, CmCert *pki_cert,
             CmKey *pki_key, gboolean revoked, guint64 stream)
{
    SimClient *n = g_new0(SimClient, 1);
    CmAgentConfig cfg;
    CmRng rng;
    guint8 secret[32];

    *n = (SimClient){.world = w, .pop = pop, .seg = seg, .attacker = TRUE, .revoked = revoked};
    n->pki_cert = pki_cert ? cm_cert_ref(pki_cert) : NULL;
    n->pki_key = pki_key ? cm_key_ref(pki_key) : NULL;
    cm_rng_init_seeded(&rng, w->scn->seed, stream);
    cm_rng_bytes(&rng, secret, sizeof secret);
    sim_client_config(w, p, n, &cfg, secret);
    n->agent = cm_agent_new(&cfg, &rng, sim_now(w), NULL);
    if (n->agent == NULL) {
        cm_cert_unref(n->pki_cert);
        cm_key_unref(n->pki_key);
        g_free(n);
        return FALSE;
    }
    run_extra(w, a, n);
    return TRUE;
}

/* ------------------------------------------------------- rogue MP */

static gboolean
rogue_mp_start(SimWorld *w, Attacker *a, GError **error)
{
    SimSite *real = sim_world_site(w, NULL);
    CmScnSite *site_scn = g_new0(CmScnSite, 1);
    CmScnMp *mp_scn = g_new0(CmScnMp, 1);
    CmSiteConfig config = {.db_path = ":memory:", .db_mode = CM_STORE_MEMORY, .top_level = TRUE};
    guint8 key[32];
    CmSiteSettings s = real->scn->settings;

    /* It claims the real site's code; it has its own keys, so its TRK is
     * not the real one. */
    site_scn->code = g_strdup(real->scn->code);
    site_scn->forest = g_strdup(real->scn->forest);
    site_scn->segment = g_strdup(a->scn->segment);
    site_scn->workers = 4;
    site_scn->queue_limit = 100000;
    s.approval = CM_APPROVAL_ALL; /* it welcomes everyone */
    site_scn->settings = s;
    a->rogue_site = g_new0(SimSite, 1);
    a->rogue_site->scn = site_scn;
    a->rogue_site->seg = a->seg;
    sim_server_init(&a->rogue_site->server, "rogue-site", 4, 100000);
    cm_rng_bytes(&w->rng, key, sizeof key);
    config.site_code = site_scn->code;
    config.forest = site_scn->forest;
    config.master_key = key;
    config.settings = &s;
    a->rogue_site->site = cm_site_open(&config, sim_now(w), error);
    g_ptr_array_add(w->sites, a->rogue_site);
    if (a->rogue_site->site == NULL)
        return FALSE;
    mp_scn->name = g_strdup(a->scn->mp);
    mp_scn->site = g_strdup(site_scn->code);
    mp_scn->segment = g_strdup(a->scn->segment);
    mp_scn->workers = 8;
    mp_scn->queue_limit = 100000;
    a->rogue_mp = sim_world_add_mp(w, mp_scn, a->rogue_site, error);
    if (a->rogue_mp == NULL)
        return FALSE;
    a->rogue_mp->rogue = TRUE;
    return TRUE;
}

static void
rogue_mp_report(SimWorld *w, Attacker *a)
{
    SimPop *p = sim_world_pop(w, a->scn->target);
    guint taken = 0, refused = 0, total = p ? p->count : 0;
    g_autofree char *sentence = NULL;
    CmOutcome *o;

    for (guint i = 0; i < total; i++) {
        const CmAgentStatus *st = cm_agent_status(w->clients[p->first + i].agent);
        if (st->mp_refused > 0)
            refused++;
        if (st->state == CM_AGENT_ACTIVE && g_ascii_strcasecmp(st->mp, a->scn->mp) == 0)
            taken++;
    }
    sentence = g_strdup_printf("%u of %u clients registered with the rogue MP; %u refused it "
                               "(its certificate does not chain to the TRK they hold)",
                               taken, total, refused);
    o = cm_run_add_outcome(w->run, a->scn->name, "rogue-mp", taken > 0, sentence);
    figure(w, o, a, "clients", total);
    figure(w, o, a, "taken", taken);
    figure(w, o, a, "taken_ratio", total ? (double)taken / total : 0);
    figure(w, o, a, "refused", refused);
    figure(w, o, a, "rogue_site_clients", (double)cm_site_client_count(a->rogue_site->site, -1));
}

/* ------------------------------------------------------- compromised MP */

static gboolean
compromised_start(SimWorld *w, Attacker *a, GError **error)
{
    CmCertSpec spec = {.profile = CM_CERT_SITE_SIGNING,
                       .subject_cn = "Site Server Signing Certificate (attacker)",
                       .serial = 666,
                       .not_before = sim_now(w) - CM_USEC_PER_DAY,
                       .not_after = sim_now(w) + 365 * CM_USEC_PER_DAY};
    g_autoptr(GBytes) der = NULL;

    a->mp = sim_world_mp(w, a->scn->mp);
    if (a->mp == NULL) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "[attacker %s] mp: no MP \"%s\"", a->scn->name, a->scn->mp ? a->scn->mp : "");
        return FALSE;
    }
    a->evil_key = cm_key_generate(CM_KEY_EC_P256, error);
    if (a->evil_key == NULL)
        return FALSE;
    spec.subject_key = a->evil_key;
    a->evil_cert = cm_cert_issue(&spec, error);
    if (a->evil_cert == NULL)
        return FALSE;
    der = cm_cert_to_der(a->evil_cert);
    a->evil_cert_b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
    return TRUE;
}

static void
ev_compromise(CmSimEngine *e, void *ctx, guint64 arg)
{
    Attacker *a = GSIZE_TO_POINTER(arg);

    (void)e;
    (void)ctx;
    a->mp->compromised = TRUE;
    if (a->scn->strategy == CM_SCN_ATK_POLICY_REPLAY) {
        /* Capture the signed policy the target clients are not meant to get. */
        const char *dep = g_hash_table_lookup(a->scn->params, "deployment");
        a->replay_id = cm_site_policy_id(a->mp->site->site, dep);
        a->replay_answer = cm_site_policy_capture(a->mp->site->site, a->replay_id);
        if (a->replay_answer != NULL) {
            g_autoptr(GBytes) bytes = cm_json_b64(a->replay_answer, "policy", 1 << 20, NULL);
            guint8 h[32];
            if (bytes != NULL) {
                g_autofree char *upper = NULL;
                cm_hash(CM_HASH_SHA256, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes), h);
                upper = cm_enc_hex(h, 32);
                a->replay_hash = g_ascii_strdown(upper, -1);
            }
        }
    }
}

static void
replace_body(CmResponse *resp, const json_t *obj)
{
    char *dump = cm_json_dump(obj);
    g_bytes_unref(resp->body);
    resp->body = g_bytes_new_take(dump, strlen(dump));
}

/* The attacker's version of a policy: same ID and version, its payload,
 * signed with its own key. */
static json_t *
evil_policy(Attacker *a, const json_t *answer, char hash_out[65])
{
    g_autoptr(GBytes) bytes = cm_json_b64(answer, "policy", 1 << 20, NULL);
    g_autoptr(json_t) policy = NULL;
    g_autofree char *dump = NULL, *b64 = NULL, *sighdr = NULL, *hex = NULL, *upper = NULL;
    g_autoptr(GBytes) sig = NULL;
    guint8 h[32];

    if (bytes == NULL)
        return NULL;
    policy = cm_json_parse(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes), 1 << 20, NULL);
    if (policy == NULL)
        return NULL;
    json_object_set_new(policy, "content",
                        json_pack("{s:s, s:s, s:i}", "id", "ATTACKER-PAYLOAD", "hash",
                                  "0000000000000000000000000000000000000000000000000000000000000000",
                                  "size", 4096));
    dump = cm_json_dump(policy);
    sig = cm_sig_sign(a->evil_key, CM_HASH_SHA256, dump, strlen(dump), NULL);
    cm_hash(CM_HASH_SHA256, dump, strlen(dump), h);
    upper = cm_enc_hex(h, 32);
    hex = g_ascii_strdown(upper, -1);
    if (hash_out != NULL)
        g_strlcpy(hash_out, hex, 65);
    b64 = cm_enc_b64((const guint8 *)dump, strlen(dump));
    sighdr = cm_msg_format_signature(CM_HASH_SHA256, g_bytes_get_data(sig, NULL),
                                     g_bytes_get_size(sig));
    return json_pack("{s:O, s:O, s:s, s:s}", "policy_id", json_object_get(answer, "policy_id"),
                     "version", json_object_get(answer, "version"), "policy", b64, "signature",
                     sighdr);
}

static gboolean
client_in_target(SimWorld *w, Attacker *a, SimJob *job)
{
    SimPop *p = sim_world_pop(w, a->scn->target);

    if (a->scn->target == NULL)
        return TRUE;
    return p != NULL && job->client != NULL && (guint)(job->client - w->clients) >= p->first &&
           (guint)(job->client - w->clients) < p->first + p->count;
}

/* The policy body of a replayed policy: the site refuses to serve it to a
 * non-member, and the compromised MP answers with the captured one. */
static void
replay_fix_refusal(SimWorld *w, Attacker *a, SimJob *job)
{
    g_autoptr(json_t) req = NULL;
    const char *id;

    if (job->req.ep != CM_EP_POLICY_BODY || job->resp.status == 200 || !client_in_target(w, a, job))
        return;
    req = cm_json_parse(job->req.body, job->req.body_len, 1 << 16, NULL);
    id = req ? json_string_value(json_object_get(req, "policy_id")) : NULL;
    if (id != NULL && g_strcmp0(id, a->replay_id) == 0) {
        cm_response_clear(&job->resp);
        cm_response_ok(&job->resp, a->replay_answer);
    }
}

void
sim_mp_tamper(SimWorld *w, SimMp *mp, SimJob *job)
{
    Attacker *a = attacker_of(w, mp);
    g_autoptr(json_t) obj = NULL;

    if (a == NULL)
        return;
    /* It reads the site's policies, which the site worker may be writing. */
    sim_site_sync(w);
    if (a->scn->strategy == CM_SCN_ATK_POLICY_REPLAY && a->replay_answer != NULL)
        replay_fix_refusal(w, a, job);
    if (job->resp.status != 200 || job->resp.body == NULL)
        return;
    obj = cm_json_parse(g_bytes_get_data(job->resp.body, NULL),
                        g_bytes_get_size(job->resp.body), 1 << 20, NULL);
    if (obj == NULL)
        return;
    if (a->scn->strategy == CM_SCN_ATK_COMPROMISED_MP) {
        if (job->req.ep == CM_EP_SITEINFO) {
            /* Clients that download the signing certificate from the MP get
             * the attacker's (REQ TRUST-09). */
            json_object_set_new(obj, "signing_cert", json_string(a->evil_cert_b64));
            replace_body(&job->resp, obj);
        } else if (job->req.ep == CM_EP_POLICY_ASSIGNMENTS) {
            json_t *list = json_object_get(obj, "assignments");
            size_t i;
            json_t *as;
            /* Clients check a policy against the hash its assignment
             * announced, so announce the hashes of the attacker's versions. */
            json_array_foreach(list, i, as)
            {
                const char *id = json_string_value(json_object_get(as, "policy_id"));
                g_autoptr(json_t) real = cm_site_policy_capture(mp->site->site, id);
                char hash[65] = "";
                g_autoptr(json_t) evil = real ? evil_policy(a, real, hash) : NULL;
                if (evil != NULL)
                    json_object_set_new(as, "hash", json_string(hash));
            }
            replace_body(&job->resp, obj);
        } else if (job->req.ep == CM_EP_POLICY_BODY) {
            g_autoptr(json_t) evil = evil_policy(a, obj, NULL);
            if (evil != NULL)
                replace_body(&job->resp, evil);
        }
    } else if (a->scn->strategy == CM_SCN_ATK_POLICY_REPLAY && a->replay_answer != NULL &&
               client_in_target(w, a, job)) {
        if (job->req.ep == CM_EP_POLICY_ASSIGNMENTS) {
            json_t *list = json_object_get(obj, "assignments");
            json_array_append_new(list, json_pack("{s:s, s:O, s:s}", "policy_id", a->replay_id,
                                                  "version",
                                                  json_object_get(a->replay_answer, "version"),
                                                  "hash", a->replay_hash));
            replace_body(&job->resp, obj);
        }
    }
}

static void
compromised_report(SimWorld *w, Attacker *a)
{
    SimPop *p = sim_world_pop(w, a->scn->target);
    guint accepted = 0, refusers = 0, total = 0;
    g_autofree char *sentence = NULL;
    CmOutcome *o;
    gboolean replay = a->scn->strategy == CM_SCN_ATK_POLICY_REPLAY;

    for (guint i = 0; i < w->n_clients; i++) {
        SimClient *c = &w->clients[i];
        const CmAgentStatus *st;
        if (c->attacker || (p != NULL && (i < p->first || i >= p->first + p->count)))
            continue;
        st = cm_agent_status(c->agent);
        total++;
        if (st->policies_refused > 0)
            refusers++;
        for (guint k = 0; k < st->policy_ids->len; k++) {
            const json_t *pol = cm_agent_policy(c->agent, g_ptr_array_index(st->policy_ids, k));
            const char *content = pol ? json_string_value(json_object_get(
                                            json_object_get(pol, "content"), "id"))
                                      : NULL;
            if ((!replay && g_strcmp0(content, "ATTACKER-PAYLOAD") == 0) ||
                (replay && g_strcmp0(g_ptr_array_index(st->policy_ids, k), a->replay_id) == 0)) {
                accepted++;
                break;
            }
        }
    }
    sentence = replay
                   ? g_strdup_printf("%u of %u clients outside the collection accepted the "
                                     "replayed, genuinely signed policy %s",
                                     accepted, total, a->replay_id ? a->replay_id : "(none)")
                   : g_strdup_printf("%u of %u clients accepted a policy the attacker signed; %u "
                                     "refused tampered policies",
                                     accepted, total, refusers);
    o = cm_run_add_outcome(w->run, a->scn->name, cm_scn_strategy_name(a->scn->strategy),
                           accepted > 0, sentence);
    figure(w, o, a, "clients", total);
    figure(w, o, a, "accepted", accepted);
    figure(w, o, a, "accepted_ratio", total ? (double)accepted / total : 0);
    figure(w, o, a, "refused", refusers);
}

/* ------------------------------------------------------- status messages */

static void
status_done(SimWorld *w, SimJob *job)
{
    Attacker *a = job->attack;

    (void)w;
    if (job->resp.status == 200)
        a->accepted++;
    else
        a->refused++;
}

static void
send_status(SimWorld *w, Attacker *a, const char *smsid, gint64 message_id)
{
    SimJob *job = g_new0(SimJob, 1);
    g_autoptr(json_t) body = json_pack("{s:s, s:I, s:s, s:s}", "component", "CCMExec",
                                       "message_id", (json_int_t)message_id, "severity", "error",
                                       "text", "bogus");
    char *dump;

    if (smsid != NULL)
        json_object_set_new(body, "smsid", json_string(smsid));
    dump = cm_json_dump(body);
    job->kind = JOB_ATTACK;
    job->body = g_bytes_new_take(dump, strlen(dump));
    job->req.ep = CM_EP_STATUS;
    job->req.transport = CM_TRANSPORT_HTTPS;
    job->req.body = g_bytes_get_data(job->body, &job->req.body_len);
    job->mp = a->mp;
    job->on_done = status_done;
    job->attack = a;
    a->sent++;
    w->status_flood_sent++;
    sim_job_send(w, job, a->seg);
}

#define FLOOD_TICK (100 * 1000) /* send in 100 ms batches */

static void
ev_flood(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    Attacker *a = GSIZE_TO_POINTER(arg);
    CmTime now = cm_sim_now(e);
    double due = a->scn->rate * FLOOD_TICK / 1e6 + a->carry;
    guint n = (guint)due;
    SimPop *victims = sim_world_pop(w, a->scn->target);
    const char *id = g_hash_table_lookup(a->scn->params, "message_id");
    gint64 message_id = id ? g_ascii_strtoll(id, NULL, 10) : 10006;

    a->carry = due - n;
    for (guint i = 0; i < n; i++) {
        const char *smsid = NULL;
        if (a->scn->strategy == CM_SCN_ATK_BOGUS_STATUS && victims != NULL && victims->count > 0) {
            SimClient *v = &w->clients[victims->first + (guint)(a->sent % victims->count)];
            smsid = cm_agent_status(v->agent)->smsid;
        }
        send_status(w, a, smsid, message_id);
    }
    if (a->scn->stop == 0 || now + FLOOD_TICK < a->scn->stop)
        cm_sim_at(e, now + FLOOD_TICK, ev_flood, w, arg);
}

static void
status_report(SimWorld *w, Attacker *a)
{
    g_autofree char *sentence = NULL;
    CmOutcome *o;
    const char *coll = g_hash_table_lookup(a->scn->params, "collection");
    SimPop *victims = sim_world_pop(w, a->scn->target);
    guint moved = 0;

    if (a->scn->strategy == CM_SCN_ATK_BOGUS_STATUS && coll != NULL && victims != NULL) {
        gint64 id = cm_site_collection_id(a->mp->site->site, coll);
        for (guint i = 0; i < victims->count; i++)
            moved += cm_site_in_collection(a->mp->site->site, id,
                                           cm_agent_status(w->clients[victims->first + i].agent)->smsid);
        sentence = g_strdup_printf("%" G_GUINT64_FORMAT " unauthenticated status messages accepted; "
                                   "%u of %u victims moved into \"%s\"",
                                   a->accepted, moved, victims->count, coll);
    } else {
        sentence = g_strdup_printf("%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                                   " unauthenticated status messages accepted (%" G_GUINT64_FORMAT
                                   " refused or turned away)",
                                   a->accepted, a->sent, a->refused);
    }
    o = cm_run_add_outcome(w->run, a->scn->name, cm_scn_strategy_name(a->scn->strategy),
                           a->accepted > 0, sentence);
    figure(w, o, a, "sent", (double)a->sent);
    figure(w, o, a, "accepted", (double)a->accepted);
    figure(w, o, a, "refused", (double)a->refused);
    if (victims != NULL)
    {
        figure(w, o, a, "victims_moved", moved);
        figure(w, o, a, "victims_moved_ratio", victims->count ? (double)moved / victims->count : 0);
    }
}

/* ------------------------------------------------------- false inventory */

static void
ev_false_inventory(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    Attacker *a = GSIZE_TO_POINTER(arg);
    SimPop *p = sim_world_pop(w, a->scn->target);
    GHashTableIter it;
    gpointer k, v;

    (void)e;
    for (guint i = 0; p != NULL && i < p->count; i++) {
        SimClient *c = &w->clients[p->first + i];
        c->attacker = TRUE;
        g_hash_table_iter_init(&it, a->scn->params);
        while (g_hash_table_iter_next(&it, &k, &v))
            if (g_str_has_prefix(k, "inventory."))
                cm_agent_set_inventory(c->agent, (const char *)k + 10, v);
    }
}

static void
false_inventory_report(SimWorld *w, Attacker *a)
{
    SimPop *p = sim_world_pop(w, a->scn->target);
    const char *coll = g_hash_table_lookup(a->scn->params, "collection");
    SimSite *site = sim_world_site(w, NULL);
    gint64 id = coll ? cm_site_collection_id(site->site, coll) : -1;
    guint joined = 0, got_policy = 0;
    g_autofree char *sentence = NULL;
    CmOutcome *o;

    for (guint i = 0; p != NULL && i < p->count; i++) {
        const CmAgentStatus *st = cm_agent_status(w->clients[p->first + i].agent);
        if (id > 0 && cm_site_in_collection(site->site, id, st->smsid))
            joined++;
        if (st->policies_accepted > 0)
            got_policy++;
    }
    sentence = g_strdup_printf("%u of %u lying clients joined \"%s\"; %u received its "
                               "deployments",
                               joined, p ? p->count : 0, coll ? coll : "", got_policy);
    o = cm_run_add_outcome(w->run, a->scn->name, "false-inventory", joined > 0, sentence);
    figure(w, o, a, "clients", p ? p->count : 0);
    figure(w, o, a, "joined", joined);
    figure(w, o, a, "received_policy", got_policy);
    figure(w, o, a, "joined_ratio", p && p->count ? (double)joined / p->count : 0);
    figure(w, o, a, "received_policy_ratio", p && p->count ? (double)got_policy / p->count : 0);
}

/* ------------------------------------------------------- blocked rejoin */

static void
ev_rejoin(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    Attacker *a = GSIZE_TO_POINTER(arg);
    SimPop *p = sim_world_pop(w, a->scn->target);
    SimSite *site = sim_world_site(w, NULL);

    (void)e;
    for (guint i = 0; p != NULL && i < p->count; i++) {
        SimClient *c = &w->clients[p->first + i];
        CmClientInfo info;
        if (!cm_site_client(site->site, cm_agent_status(c->agent)->smsid, &info, NULL) ||
            info.state != CM_CLIENT_BLOCKED)
            continue;
        a->blocked_seen++;
        /* A reinstall on the same box: a new self-signed certificate,
         * SMSID and (spoofed) hardware ID; the PKI certificate, if any,
         * is still the device's. */
        (void)start_device(w, a, p, c->pop, c->seg, c->pki_cert, c->pki_key, c->revoked,
                           G_GUINT64_CONSTANT(0x300000000) + p->first + i);
    }
}

static void
rejoin_report(SimWorld *w, Attacker *a)
{
    guint back = 0;
    g_autofree char *sentence = NULL;
    CmOutcome *o;

    (void)w;
    for (guint i = 0; i < a->extra->len; i++) {
        SimClient *n = g_ptr_array_index(a->extra, i);
        if (cm_agent_status(n->agent)->state == CM_AGENT_ACTIVE)
            back++;
    }
    sentence = g_strdup_printf("%u of %u blocked clients came back as new devices", back,
                               a->blocked_seen);
    o = cm_run_add_outcome(w->run, a->scn->name, "blocked-rejoin", back > 0, sentence);
    figure(w, o, a, "blocked", a->blocked_seen);
    figure(w, o, a, "rejoined", back);
    figure(w, o, a, "rejoined_ratio", a->blocked_seen ? (double)back / a->blocked_seen : 0);
}

/* ------------------------------------------------------- cloned images */

static void
ev_clone(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    Attacker *a = GSIZE_TO_POINTER(arg);
    SimPop *p = sim_world_pop(w, a->scn->target);
    SimClient *image;

    (void)e;
    if (p == NULL || p->count == 0)
        return;
    image = &w->clients[p->first];
    for (guint64 k = 0; k < a->scn->count; k++) {
        SimClient *n = g_new0(SimClient, 1);
        CmAgentConfig cfg;
        CmRng rng;
        guint8 secret[32];
        *n = (SimClient){.world = w, .pop = image->pop, .seg = image->seg, .attacker = TRUE};
        cm_rng_init_seeded(&rng, w->scn->seed, G_GUINT64_CONSTANT(0x400000000) + k);
        cm_rng_bytes(&rng, secret, sizeof secret); /* another machine's TPM */
        sim_client_config(w, p, n, &cfg, secret);
        n->agent = cm_agent_clone(image->agent, &cfg, &rng, sim_now(w), NULL);
        if (n->agent == NULL) {
            g_free(n);
            continue;
        }
        run_extra(w, a, n);
    }
}

static void
clone_report(SimWorld *w, Attacker *a)
{
    SimPop *p = sim_world_pop(w, a->scn->target);
    guint same_key = 0, active = 0;
    g_autofree char *sentence = NULL;
    CmOutcome *o;
    CmClientInfo info;
    SimSite *site = sim_world_site(w, NULL);
    const char *smsid = p ? cm_agent_status(w->clients[p->first].agent)->smsid : "";
    gboolean record = cm_site_client(site->site, smsid, &info, NULL);

    for (guint i = 0; i < a->extra->len; i++) {
        const CmAgentStatus *st = cm_agent_status(((SimClient *)g_ptr_array_index(a->extra, i))->agent);
        same_key += st->cloned_key;
        active += st->state == CM_AGENT_ACTIVE && st->cloned_key;
    }
    sentence = g_strdup_printf("%u of %u clones sign with the original's key and %u act as it; "
                               "the site sees one record (%d registrations, state %s)",
                               same_key, a->extra->len, active, record ? info.registrations : 0,
                               record ? cm_client_state_name(info.state) : "none");
    o = cm_run_add_outcome(w->run, a->scn->name, "cloned-image", active > 0, sentence);
    figure(w, o, a, "clones", a->extra->len);
    figure(w, o, a, "same_key", same_key);
    figure(w, o, a, "impersonating", active);
    figure(w, o, a, "impersonating_ratio", a->extra->len ? (double)active / a->extra->len : 0);
    figure(w, o, a, "conflicts", (double)cm_site_counters(site->site)->conflicts);
}

/* ------------------------------------------------------- certificate enrollment */

/* An attacker's device k, numbered apart from the clients' indexes (which
 * the legitimate enrollers use) and from other attackers' devices. */
static guint64
attack_device(const Attacker *a, guint64 k)
{
    return ((guint64)(a->index + 1) << 40) | k;
}

static gboolean
scn_population_known(SimWorld *w, const char *name)
{
    for (guint i = 0; i < w->scn->populations->len; i++)
        if (strcmp(((CmScnPopulation *)g_ptr_array_index(w->scn->populations, i))->name, name) == 0)
            return TRUE;
    return FALSE;
}

/* Every enrollment attacker uses the world's one enrollment point; the
 * first builds it from the settings they all give. */
static gboolean
enroll_start(SimWorld *w, Attacker *a, GError **error)
{
    for (guint i = 0; i < w->attackers->len && a->enroll == NULL; i++)
        a->enroll = ((Attacker *)g_ptr_array_index(w->attackers, i))->enroll;
    if (a->enroll == NULL) {
        SimEnrollSettings set;
        if (!sim_enroll_settings_load(w, &set, error))
            return FALSE;
        a->enroll = sim_enroll_new(w, &set);
        a->enroll_owner = TRUE;
    }
    a->user = g_hash_table_lookup(a->scn->params, "user");
    if (a->user == NULL)
        a->user = "mallory";
    return TRUE;
}

static void
flood_done(SimWorld *w, void *ctx, const SimEnrollAnswer *ans)
{
    Attacker *a = ctx;

    (void)w;
    switch (ans->result) {
    case SIM_ENROLL_ISSUED:
        a->issued++;
        break;
    case SIM_ENROLL_USER_REFUSED:
        a->user_refused++;
        break;
    case SIM_ENROLL_LIMIT_REFUSED:
        a->limit_refused++;
        break;
    case SIM_ENROLL_BUSY:
        a->busy++;
        break;
    case SIM_ENROLL_UNREACHABLE:
        a->unreachable++;
        break;
    }
}

/* The rogue user's script: the command-line enrollment again and again,
 * spread round-robin over the attacker's devices. */
static void
ev_enroll_flood(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    Attacker *a = GSIZE_TO_POINTER(arg);
    CmTime now = cm_sim_now(e);
    double due = a->scn->rate * FLOOD_TICK / 1e6 + a->carry;
    guint n = (guint)due;
    guint64 devices = MAX(a->scn->count, 1);

    a->carry = due - n;
    for (guint i = 0; i < n; i++) {
        SimEnrollRequest rq = {.device = attack_device(a, a->sent % devices),
                               .user = a->user,
                               .seg = a->seg,
                               .subject_key = a->csr_key,
                               .done = flood_done,
                               .ctx = a};
        a->sent++;
        sim_enroll_submit(a->enroll, &rq);
    }
    if (a->scn->stop == 0 || now + FLOOD_TICK < a->scn->stop)
        cm_sim_at(e, now + FLOOD_TICK, ev_enroll_flood, w, arg);
}

static void
legit_done(SimWorld *w, void *ctx, const SimEnrollAnswer *ans)
{
    Attacker *a = ctx;

    (void)w;
    a->legit_answered++;
    if (ans->result != SIM_ENROLL_ISSUED) {
        a->legit_refused++;
        return;
    }
    a->legit_issued++;
    a->legit_sum += ans->latency;
    a->legit_max = MAX(a->legit_max, ans->latency);
    sim_hist_add(&a->legit_lat, ans->latency);
}

static void
ev_legit_enroll(CmSimEngine *e, void *ctx, guint64 arg)
{
    Attacker *a = ctx;
    SimWorld *w = a->world;
    SimPop *p = a->enrollers;
    const char *user = g_hash_table_lookup(a->scn->params, "enrollers_user");
    SimEnrollRequest rq = {.device = p->first + arg,
                           .user = user ? user : p->scn->name,
                           .seg = w->clients[p->first + arg].seg,
                           .subject_key = a->enrollers_key,
                           .done = legit_done,
                           .ctx = a};

    (void)e;
    a->legit_sent++;
    sim_enroll_submit(a->enroll, &rq);
}

/* At time 0, when the populations exist: each legitimate device enrolls
 * once, at a time drawn from the attacker's own stream over its
 * population's start window. */
static void
ev_enrollers(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    Attacker *a = GSIZE_TO_POINTER(arg);
    SimPop *p = sim_world_pop(w, g_hash_table_lookup(a->scn->params, "enrollers"));
    CmRng rng;

    if (p == NULL)
        return;
    a->enrollers = p;
    cm_rng_init_seeded(&rng, w->scn->seed, G_GUINT64_CONSTANT(0x600000000) + a->index);
    for (guint i = 0; i < p->count; i++) {
        CmTime at = p->scn->start + (p->scn->start_window > 0
                                         ? (CmTime)cm_rng_below(&rng, (guint64)p->scn->start_window)
                                         : 0);
        cm_sim_at(e, MAX(at, cm_sim_now(e)), ev_legit_enroll, a, i);
    }
}

static gboolean
flood_start(SimWorld *w, Attacker *a, GError **error)
{
    const char *enrollers = g_hash_table_lookup(a->scn->params, "enrollers");

    if (!enroll_start(w, a, error))
        return FALSE;
    if (enrollers != NULL && !scn_population_known(w, enrollers)) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "[attacker %s] enrollers: expected a [population], got \"%s\"", a->scn->name,
                    enrollers);
        return FALSE;
    }
    /* A script repeats one request, so one key pair serves them all; the
     * legitimate devices share another.  The CA's work is the same
     * whichever key it certifies. */
    a->csr_key = cm_key_generate(CM_KEY_EC_P256, error);
    if (a->csr_key == NULL)
        return FALSE;
    cm_sim_at(w->engine, a->scn->start, ev_enroll_flood, w, GPOINTER_TO_SIZE(a));
    if (enrollers != NULL) {
        a->enrollers_key = cm_key_generate(CM_KEY_EC_P256, error);
        if (a->enrollers_key == NULL)
            return FALSE;
        cm_sim_at(w->engine, 0, ev_enrollers, w, GPOINTER_TO_SIZE(a));
    }
    return TRUE;
}

static void
flood_report(SimWorld *w, Attacker *a)
{
    guint64 devices = MAX(a->scn->count, 1);
    guint64 refused = a->user_refused + a->limit_refused;
    guint64 answered = a->issued + refused + a->busy + a->unreachable;
    guint limit = a->enroll->set.per_device_limit;
    g_autofree char *limit_text = limit > 0 ? g_strdup_printf("a limit of %u per device", limit)
                                            : g_strdup("no per-device limit");
    g_autofree char *model_text = NULL, *legit_text = NULL, *sentence = NULL;
    g_autofree char *lost_text =
        a->unreachable > 0
            ? g_strdup_printf(", %" G_GUINT64_FORMAT " never reached it", a->unreachable)
            : NULL;
    double p50 = sim_hist_quantile(&a->legit_lat, 0.50),
           p95 = sim_hist_quantile(&a->legit_lat, 0.95);
    CmOutcome *o;

    if (a->enroll->issued > a->enroll->issued_real)
        model_text =
            g_strdup_printf("; in all the CA signed %" G_GUINT64_FORMAT
                            " real X.509 certificates and counted the other %" G_GUINT64_FORMAT
                            " it granted by its cost model (real_certs)",
                            a->enroll->issued_real, a->enroll->issued - a->enroll->issued_real);
    if (a->enrollers != NULL)
        legit_text = g_strdup_printf("; %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                                     " legitimate enrollments were issued, in %.3g s at the "
                                     "median and %.3g s at p95",
                                     a->legit_issued, a->legit_sent, p50, p95);
    sentence = g_strdup_printf(
        "%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " enrollment requests from %" G_GUINT64_FORMAT
        " rogue device(s) got a certificate (%s; %" G_GUINT64_FORMAT " refused, %" G_GUINT64_FORMAT
        " turned away busy%s); the issuing "
        "CA's backlog peaked at %u requests%s%s",
        a->issued, a->sent, devices, limit_text, refused, a->busy, lost_text ? lost_text : "",
        a->enroll->server.max_backlog, legit_text ? legit_text : "", model_text ? model_text : "");
    o = cm_run_add_outcome(w->run, a->scn->name, "enrollment-flood", a->issued > devices, sentence);
    figure(w, o, a, "devices", (double)devices);
    figure(w, o, a, "requested", (double)a->sent);
    figure(w, o, a, "issued", (double)a->issued);
    figure(w, o, a, "issued_ratio", a->sent ? (double)a->issued / (double)a->sent : 0);
    figure(w, o, a, "issued_per_device", (double)a->issued / (double)devices);
    figure(w, o, a, "refused", (double)refused);
    figure(w, o, a, "refused_user", (double)a->user_refused);
    figure(w, o, a, "refused_limit", (double)a->limit_refused);
    figure(w, o, a, "busy", (double)a->busy);
    figure(w, o, a, "unreachable", (double)a->unreachable);
    figure(w, o, a, "unanswered", (double)(a->sent - answered));
    if (a->enrollers != NULL) {
        figure(w, o, a, "legit_requested", (double)a->legit_sent);
        figure(w, o, a, "legit_issued", (double)a->legit_issued);
        figure(w, o, a, "legit_issued_ratio",
               a->legit_sent ? (double)a->legit_issued / (double)a->legit_sent : 0);
        figure(w, o, a, "legit_latency_p50", p50);
        figure(w, o, a, "legit_latency_p95", p95);
        figure(w, o, a, "legit_latency_max", (double)a->legit_max / 1e6);
        figure(w, o, a, "legit_latency_mean",
               a->legit_issued ? (double)a->legit_sum / 1e6 / (double)a->legit_issued : 0);
    }
}

/* A computer with a mobile device's certificate installs the client with
 * it as its PKI certificate, like one of its target population. */
static void
mobile_register(SimWorld *w, Attacker *a, CmCert *cert, CmKey *key, guint64 k)
{
    SimPop *p = sim_world_pop(w, a->scn->target);
    guint pop = 0;

    if (p == NULL)
        return;
    while (pop < w->pops->len && g_ptr_array_index(w->pops, pop) != p)
        pop++;
    (void)start_device(w, a, p, pop, a->seg, cert, key, FALSE,
                       G_GUINT64_CONSTANT(0x700000000) + ((guint64)a->index << 24) + k);
}

static void
mobile_done(SimWorld *w, void *ctx, const SimEnrollAnswer *ans)
{
    Attacker *a = ctx;

    switch (ans->result) {
    case SIM_ENROLL_ISSUED:
        a->enrolled++;
        if (ans->cert != NULL)
            mobile_register(w, a, ans->cert, g_ptr_array_index(a->mobile_keys, ans->tag), ans->tag);
        break;
    case SIM_ENROLL_USER_REFUSED:
        a->user_refused++;
        break;
    case SIM_ENROLL_LIMIT_REFUSED:
        a->limit_refused++;
        break;
    case SIM_ENROLL_BUSY:
        a->busy++;
        break;
    case SIM_ENROLL_UNREACHABLE:
        a->unreachable++;
        break;
    }
}

/* Each computer asks for a mobile device's certificate: the enrollment
 * point cannot tell a computer from a phone, only the user from another. */
static void
ev_mobile(CmSimEngine *e, void *ctx, guint64 arg)
{
    Attacker *a = GSIZE_TO_POINTER(arg);

    (void)e;
    (void)ctx;
    for (guint64 k = 0; k < a->scn->count; k++) {
        CmKey *key = cm_key_generate(CM_KEY_EC_P256, NULL);
        SimEnrollRequest rq = {.device = attack_device(a, k),
                               .user = a->user,
                               .seg = a->seg,
                               .subject_key = key,
                               .keep = TRUE,
                               .done = mobile_done,
                               .ctx = a,
                               .tag = k};
        if (key == NULL)
            break;
        g_ptr_array_add(a->mobile_keys, key);
        a->sent++;
        sim_enroll_submit(a->enroll, &rq);
    }
}

static gboolean
mobile_start(SimWorld *w, Attacker *a, GError **error)
{
    if (!enroll_start(w, a, error))
        return FALSE;
    a->mobile_keys = g_ptr_array_new_with_free_func((GDestroyNotify)cm_key_unref);
    cm_sim_at(w->engine, a->scn->start, ev_mobile, w, GPOINTER_TO_SIZE(a));
    return TRUE;
}

static void
mobile_report(SimWorld *w, Attacker *a)
{
    SimPop *p = sim_world_pop(w, a->scn->target);
    SimSite *site = p ? sim_world_site(w, p->scn->site_code) : NULL;
    guint registered = 0;
    guint64 computers = a->scn->count;
    guint64 refused = a->user_refused + a->limit_refused;
    g_autofree char *sentence = NULL;
    CmOutcome *o;

    if (site == NULL)
        site = sim_world_site(w, NULL);
    for (guint i = 0; i < a->extra->len; i++) {
        SimClient *n = g_ptr_array_index(a->extra, i);
        const CmAgentStatus *st = cm_agent_status(n->agent);
        CmClientInfo info;
        /* Registered as the site sees it: approved on the strength of the
         * PKI certificate the transport verified. */
        if (st->state == CM_AGENT_ACTIVE && cm_site_client(site->site, st->smsid, &info, NULL) &&
            info.state == CM_CLIENT_APPROVED && info.registered_by == CM_AUTH_PKI)
            registered++;
    }
    sentence = g_strdup_printf(
        "%u of %" G_GUINT64_FORMAT " computers got a mobile-device certificate as user \"%s\" and "
        "%u registered with it as approved PKI clients; %" G_GUINT64_FORMAT
        " refused (%s), %" G_GUINT64_FORMAT " turned away busy or unreachable, %" G_GUINT64_FORMAT
        " unanswered",
        a->enrolled, computers, a->user, registered, refused,
        a->enroll->set.allowed_users == NULL ? "any user may enroll"
                                             : "only allowed users may enroll",
        a->busy + a->unreachable,
        a->sent - MIN(a->sent, a->enrolled + refused + a->busy + a->unreachable));
    o = cm_run_add_outcome(w->run, a->scn->name, "mobile-enrollment", registered > 0, sentence);
    figure(w, o, a, "computers", (double)computers);
    figure(w, o, a, "enrolled", a->enrolled);
    figure(w, o, a, "enrolled_ratio", computers ? (double)a->enrolled / (double)computers : 0);
    figure(w, o, a, "refused", (double)refused);
    figure(w, o, a, "registered_with_mobile_cert", registered);
    figure(w, o, a, "registered_with_mobile_cert_ratio",
           computers ? (double)registered / (double)computers : 0);
}

/* ------------------------------------------------------- wiring */

gboolean
sim_attackers_start(SimWorld *w, GError **error)
{
    for (guint i = 0; i < w->scn->attackers->len; i++) {
        CmScnAttacker *scn = g_ptr_array_index(w->scn->attackers, i);
        Attacker *a = g_new0(Attacker, 1);
        a->scn = scn;
        a->seg = sim_world_seg(w, scn->segment);
        a->extra = g_ptr_array_new();
        a->world = w;
        a->index = i;
        g_ptr_array_add(w->attackers, a);
        switch (scn->strategy) {
        case CM_SCN_ATK_ROGUE_MP:
            if (!rogue_mp_start(w, a, error))
                return FALSE;
            break;
        case CM_SCN_ATK_COMPROMISED_MP:
        case CM_SCN_ATK_POLICY_REPLAY:
            if (!compromised_start(w, a, error))
                return FALSE;
            cm_sim_at(w->engine, scn->start, ev_compromise, w, GPOINTER_TO_SIZE(a));
            break;
        case CM_SCN_ATK_STATUS_FLOOD:
        case CM_SCN_ATK_BOGUS_STATUS:
            a->mp = sim_world_mp(w, scn->mp);
            if (a->mp == NULL)
                a->mp = g_ptr_array_index(w->mps, 0);
            cm_sim_at(w->engine, scn->start, ev_flood, w, GPOINTER_TO_SIZE(a));
            break;
        case CM_SCN_ATK_FALSE_INVENTORY:
            cm_sim_at(w->engine, scn->start, ev_false_inventory, w, GPOINTER_TO_SIZE(a));
            break;
        case CM_SCN_ATK_BLOCKED_REJOIN:
            cm_sim_at(w->engine, scn->start, ev_rejoin, w, GPOINTER_TO_SIZE(a));
            break;
        case CM_SCN_ATK_CLONED_IMAGE:
            cm_sim_at(w->engine, scn->start, ev_clone, w, GPOINTER_TO_SIZE(a));
            break;
        case CM_SCN_ATK_ENROLLMENT_FLOOD:
            if (!flood_start(w, a, error))
                return FALSE;
            break;
        case CM_SCN_ATK_MOBILE_ENROLLMENT:
            if (!mobile_start(w, a, error))
                return FALSE;
            break;
        case CM_SCN_ATK_ROGUE_UPGRADE:
            if (!sim_upgrade_attacker_start(w, scn, error))
                return FALSE;
            break;
        case CM_SCN_ATK_LOG_WIPE:
            if (!sim_logs_attacker_start(w, scn, error))
                return FALSE;
            break;
        case CM_SCN_ATK_STOLEN_PUSH_ACCOUNT:
        case CM_SCN_ATK_PUSH_RELAY:
            break; /* what the account reaches, at the end (push.c) */
        }
    }
    return TRUE;
}

char **
sim_attackers_dns(SimWorld *w, const char *population)
{
    GPtrArray *names = g_ptr_array_new();

    for (guint i = 0; i < w->attackers->len; i++) {
        Attacker *a = g_ptr_array_index(w->attackers, i);
        if (a->rogue_mp != NULL && g_strcmp0(a->scn->target, population) == 0)
            g_ptr_array_add(names, a->rogue_mp->scn->name);
    }
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, FALSE);
}

void
sim_attackers_report(SimWorld *w)
{
    for (guint i = 0; i < w->attackers->len; i++) {
        Attacker *a = g_ptr_array_index(w->attackers, i);
        switch (a->scn->strategy) {
        case CM_SCN_ATK_ROGUE_MP:
            rogue_mp_report(w, a);
            break;
        case CM_SCN_ATK_COMPROMISED_MP:
        case CM_SCN_ATK_POLICY_REPLAY:
            compromised_report(w, a);
            break;
        case CM_SCN_ATK_STATUS_FLOOD:
        case CM_SCN_ATK_BOGUS_STATUS:
            status_report(w, a);
            break;
        case CM_SCN_ATK_FALSE_INVENTORY:
            false_inventory_report(w, a);
            break;
        case CM_SCN_ATK_BLOCKED_REJOIN:
            rejoin_report(w, a);
            break;
        case CM_SCN_ATK_CLONED_IMAGE:
            clone_report(w, a);
            break;
        case CM_SCN_ATK_ENROLLMENT_FLOOD:
            flood_report(w, a);
            break;
        case CM_SCN_ATK_MOBILE_ENROLLMENT:
            mobile_report(w, a);
            break;
        case CM_SCN_ATK_ROGUE_UPGRADE:
            sim_upgrade_attacker_report(w, a->scn);
            break;
        case CM_SCN_ATK_LOG_WIPE:
            sim_logs_attacker_report(w, a->scn);
            break;
        case CM_SCN_ATK_STOLEN_PUSH_ACCOUNT:
        case CM_SCN_ATK_PUSH_RELAY:
            sim_push_attacker_report(w, a->scn);
            break;
        default:
            break;
        }
        if (a->enroll_owner)
            sim_enroll_report(a->enroll);
    }
}

void
sim_attackers_free(SimWorld *w)
{
    for (guint i = 0; w->attackers != NULL && i < w->attackers->len; i++) {
        Attacker *a = g_ptr_array_index(w->attackers, i);
        for (guint k = 0; k < a->extra->len; k++) {
            SimClient *n = g_ptr_array_index(a->extra, k);
            cm_agent_free(n->agent);
            cm_cert_unref(n->pki_cert);
            cm_key_unref(n->pki_key);
            g_free(n);
        }
        g_ptr_array_unref(a->extra);
        if (a->enroll_owner)
            sim_enroll_free(a->enroll);
        cm_key_unref(a->csr_key);
        cm_key_unref(a->enrollers_key);
        if (a->mobile_keys != NULL)
            g_ptr_array_unref(a->mobile_keys);
        cm_key_unref(a->evil_key);
        cm_cert_unref(a->evil_cert);
        g_free(a->evil_cert_b64);
        g_free(a->replay_id);
        g_free(a->replay_hash);
        json_decref(a->replay_answer);
        if (a->rogue_site != NULL) {
            CmScnSite *s = a->rogue_site->scn;
            g_free(s->code);
            g_free(s->forest);
            g_free(s->segment);
            g_free(s);
        }
        if (a->rogue_mp != NULL) {
            CmScnMp *m = a->rogue_mp->scn;
            g_free(m->name);
            g_free(m->site);
            g_free(m->segment);
            g_free(m);
        }
        g_free(a);
    }
    sim_logs_free(w);
}
