/* world.h - the simulated world (internal to sim/): segments, servers with
 * worker pools and bounded queues, virtual clients running the real agent,
 * and the jobs that carry a request from a client to an MP, on to the site
 * and back.  Everything here runs on the engine's virtual time. */
#ifndef CM_SIM_WORLD_H
#define CM_SIM_WORLD_H

#include "cmagent.h"
#include "cmmp.h"
#include "cmsite.h"
#include "engine.h"
#include "report.h"
#include "scenario.h"

typedef struct SimWorld SimWorld;
typedef struct SimJob SimJob;
typedef struct SimLogs SimLogs;

/* Service costs in virtual time, per role and endpoint (sim/costs.c). */
typedef struct {
    CmTime site[CM_EP__COUNT];
    CmTime mp[CM_EP__COUNT];
    CmTime site_refusal; /* a request the site refuses early (blocked, unsigned) */
    CmTime mp_refusal;
    CmTime cmg_pki;    /* a CMG instance deciding a PKI client's request (sim/cmg.c) */
    CmTime cmg_token;  /* ... a token client's */
    CmTime cmg_crl;    /* ... added for a PKI client when it checks revocation */
    CmTime cp_forward; /* a connection point routing one to its MP */
} SimCosts;

void sim_costs_default(SimCosts *c);
/* Applies "site.register = 2ms" style overrides. */
gboolean sim_costs_apply(SimCosts *c, GHashTable *overrides, GError **error);
gboolean sim_costs_load(SimCosts *c, const char *path, GError **error);
char *sim_costs_to_keyfile(const SimCosts *c);

/* A server: a pool of workers in front of a FIFO queue with a bound; past
 * the bound it answers 503 with Retry-After. */
typedef struct {
    char *name;
    int workers;
    int busy;
    guint queue_limit;
    SimJob **ring; /* the queue, a ring buffer */
    guint ring_cap, head, len;
    guint max_len;
    guint max_backlog; /* queued + in service, at its highest */
    CmTime retry_after;
    /* metrics */
    guint64 served, overloaded;
    guint64 served_ep[CM_EP__COUNT];
    /* Busy periods: from the backlog leaving 0 to its return to 0.  The
     * longest is a storm's time to drain. */
    CmTime busy_since; /* start of the current busy period, -1 when idle */
    CmTime longest_busy;
} SimServer;

typedef struct {
    CmScnSite *scn;
    CmSite *site;
    SimServer server;
    guint seg;
} SimSite;

typedef struct {
    CmScnMp *scn;
    CmMp *mp;
    SimSite *site;
    SimServer server;
    guint seg;
    CmCert *cert;
    gboolean compromised; /* alters what it serves (take-over-mp, compromised-mp) */
    gboolean rogue;       /* belongs to an attacker's own site */
} SimMp;

/* One per client of a million: pointers and times first, then the small
 * fields, so that nothing is padding. */
typedef struct {
    SimWorld *world;
    CmAgent *agent;
    CmTime timer_at;      /* when the agent wants its timer; 0: never */
    CmTime timer_pending; /* the queued timer event of timer_gen; 0: none */
    CmTime need_since;    /* needs_reg since */
    SimMp *channel_mp;    /* the MP holding its notification channel */
    CmCert *pki_cert;
    CmKey *pki_key;
    guint32 pop; /* index into world->pops */
    guint32 seg;
    guint32 timer_gen;
    guint8 needs_reg;    /* it has to (re-)register, since need_since */
    guint8 counted;      /* registration completion counted */
    guint8 attacker;     /* run by an attacker strategy */
    guint8 revoked;      /* its PKI certificate is on the CRL */
    guint8 channel_open; /* its notification channel, as last seen */
    guint8 active;       /* its agent active, as last seen: counted in n_active */
} SimClient;

typedef struct {
    CmScnPopulation *scn;
    guint first, count; /* clients[first .. first+count) */
    CmDirectoryInfo dir;
    gboolean dir_ok;
    char *trk_hex;
    char **dns; /* MP names by DNS publishing, NULL-terminated */
} SimPop;

typedef enum {
    JOB_AGENT,  /* a request of a client's agent */
    JOB_ATTACK, /* a request an attacker made up */
} SimJobKind;

struct SimJob {
    SimJobKind kind;
    SimClient *client;
    guint64 send_id;
    CmAgentSend *send; /* owned: keeps the body alive */
    GBytes *body;      /* attacker jobs: owned body */
    CmRequest req;
    CmResponse resp;
    SimMp *mp;
    CmTime sent_at;
    guint seg;                                 /* the sender's segment */
    void (*on_done)(SimWorld *w, SimJob *job); /* attacker jobs */
    void *attack;                              /* the attacker's state */
    /* Handed to the site worker (traffic.c): the time it is handled at,
     * and whether it is done (read under the worker's lock). */
    CmTime site_at;
    gboolean site_queued;
    gint site_done;
    struct SimCmgHop *cmg_hop; /* on its way through a CMG (cmg.c), NULL: direct */
};

typedef struct SimSiteWorker SimSiteWorker;

/* Per-endpoint latency histograms: log-spaced buckets of 1/16 octave from
 * 10 us, so percentiles come out within about 4%. */
#define SIM_HIST_BUCKETS 512
typedef struct {
    guint32 counts[SIM_HIST_BUCKETS];
    guint64 n;
} SimHist;

void sim_hist_add(SimHist *h, CmTime latency);
/* The p-quantile (0..1) in seconds, 0 when empty. */
double sim_hist_quantile(const SimHist *h, double p);

struct SimWorld {
    CmScenario *scn;
    CmSimEngine *engine;
    SimCosts costs;
    CmRun *run;
    CmRng rng; /* the world's own decisions (events, attackers) */
    guint8 master_key[32];
    CmTime epoch; /* virtual time 0 as a CmTime the roles see */

    /* network: segments x segments */
    guint n_segs;
    CmTime *latency; /* [a * n + b], -1 unreachable */
    double *bandwidth;
    CmTime connect_timeout;

    GPtrArray *sites; /* SimSite* */
    GPtrArray *mps;   /* SimMp* */
    GPtrArray *pops;  /* SimPop* */
    SimClient *clients;
    guint n_clients;
    GPtrArray *attackers; /* attacker state (sim/attack.c) */

    /* PKI: an enterprise test CA issuing client certificates */
    CmKey *ca_key;
    CmCert *ca_cert;
    GArray *revoked; /* CmCrlEntry */
    CmCrl *crl;
    guint64 ca_serial;

    /* metrics */
    SimHist lat[CM_EP__COUNT];
    SimHist lat_window[CM_EP__COUNT]; /* the current sample window */
    guint64 sent[CM_EP__COUNT];
    guint64 sent_window[CM_EP__COUNT];
    guint64 transport_failures;
    guint64 busy_answers;
    guint64 regs_needed, regs_completed;
    /* Clients of the population array whose agent is active, kept as they
     * change (sim_client_actions): a sample reads it instead of walking a
     * million agents, each a cache miss. */
    guint n_active;
    CmTime reg_latency_sum;
    guint64 policies_malicious_accepted;
    guint64 status_flood_sent;
    guint samples;
    gboolean progress;
    double wall_start;
    SimSiteWorker *site_worker; /* NULL: sites handled inline */
    struct SimHierarchy *hier;  /* child sites and replication (hierarchy.c), NULL: none */
    struct SimContent *content; /* DPs and content distribution (content.c), NULL: none */
    GPtrArray *cmgs;            /* struct SimCmg* (cmg.c) */
    struct SimLogs *logs;       /* client logs a log-wipe attacker erases (logs.c), NULL: none */
};

/* metrics.c: sets the report metric named by the format. */
void sim_metric_setf(SimWorld *w, double v, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* world.c */
SimWorld *sim_world_new(CmScenario *scn, const SimCosts *costs, GError **error);
/* The process is about to exit: stops the world's threads and leaves its
 * memory to the operating system (frees it whole in sanitizer builds). */
void sim_world_leave(SimWorld *w);
void sim_world_free(SimWorld *w);
SimSite *sim_world_site(SimWorld *w, const char *code);
SimMp *sim_world_mp(SimWorld *w, const char *name);
SimPop *sim_world_pop(SimWorld *w, const char *name);
guint sim_world_seg(SimWorld *w, const char *name);
/* Adds an MP to its site: a real certificate signed with the site's TRK. */
SimMp *sim_world_add_mp(SimWorld *w, CmScnMp *scn, SimSite *site, GError **error);
/* A P-256 key and a certificate for it from the world's enterprise test CA,
 * valid from a day ago for a year. */
gboolean sim_world_issue_cert(SimWorld *w, CmCertProfile profile, const char *cn, guint64 serial,
                              CmKey **key, CmCert **cert, GError **error);
/* Every MP of site learns the site's current information. */
void sim_world_refresh_mps(SimWorld *w, SimSite *site);
/* The agent configuration a client of p installs with. */
void sim_client_config(SimWorld *w, SimPop *p, SimClient *c, CmAgentConfig *cfg, guint8 secret[32]);
/* (Re)installs client index of p: its PKI certificate when it has one, and
 * a new agent. */
gboolean sim_client_install(SimWorld *w, SimPop *p, SimClient *c, guint index, GError **error);
/* Virtual time as the roles see it. */
static inline CmTime
sim_now(SimWorld *w)
{
    return w->epoch + cm_sim_now(w->engine);
}

/* traffic.c */
/* Hands a client's agent actions to the world: sends and its timer. */
void sim_client_actions(SimWorld *w, SimClient *c, CmAgentActions *act);
void sim_client_start(CmSimEngine *e, void *ctx, guint64 arg);
/* Sends an attacker's job from segment seg to job->mp. */
void sim_job_send(SimWorld *w, SimJob *job, guint seg);
void sim_job_free(SimJob *job);
/* One-way delay of bytes from segment a to b; -1 when unreachable. */
CmTime sim_net_delay(SimWorld *w, guint a, guint b, gsize bytes);
/* The site worker (opt-in, CMLAB_SIM_SITE_THREAD=1; it did not pay in the
 * benchmarks, docs/benchmarks.md): cm_site_handle of every site runs on a
 * second thread,
 * in the order the event loop reaches the requests, while the loop goes on
 * with agents and MPs; an answer is waited for when it reaches the MP, and
 * anything else that looks at or changes a site first waits for the worker
 * to catch up (sim_site_sync, run by an engine guard before every event
 * that is not plain client/MP traffic).  The sites see exactly the calls
 * of a one-thread run, in the same order, so reports do not change. */
void sim_site_worker_start(SimWorld *w);
void sim_site_worker_stop(SimWorld *w);
void sim_site_sync(SimWorld *w);
void sim_server_init(SimServer *s, const char *name, int workers, guint limit);
void sim_server_clear(SimServer *s);
guint sim_server_backlog(const SimServer *s);
/* For other paths through the world (cmg.c): a job reaches server s and
 * is served after cost (FALSE: the full queue turned it away); a worker
 * that finished takes the next job; the 503 a full queue answers. */
gboolean sim_server_take(SimWorld *w, SimServer *s, SimJob *job, CmTime cost, CmSimFn done);
void sim_server_done(SimWorld *w, SimServer *s, CmTime (*cost_of)(SimWorld *, SimJob *),
                     CmSimFn done);
void sim_server_busy(SimServer *s, CmResponse *resp);
/* A forwarded job reaches its MP (job->mp) past any client TLS check. */
void sim_mp_take(SimWorld *w, SimJob *job);
/* The client gets job->resp at virtual time at (status 0: a transport
 * failure). */
void sim_job_answer(SimWorld *w, SimJob *job, CmTime at);
/* The nominal size of a message to or from ep, headers included. */
gsize sim_nominal_size(CmEndpoint ep, gboolean response);

/* events.c */
gboolean sim_events_schedule(SimWorld *w, GError **error);

/* attack.c */
gboolean sim_attackers_start(SimWorld *w, GError **error);
void sim_attackers_report(SimWorld *w);
/* The rogue MPs a population's DNS answers name first (DNS spoofing), a
 * new NULL-terminated array of borrowed names. */
char **sim_attackers_dns(SimWorld *w, const char *population);
void sim_attackers_free(SimWorld *w);
/* Lets a compromised MP alter a response before it leaves (attack.c). */
void sim_mp_tamper(SimWorld *w, SimMp *mp, SimJob *job);

/* cmg.c: cloud management gateways and their connection points */
gboolean sim_cmg_build(SimWorld *w, GError **error);
void sim_cmg_free(SimWorld *w);
/* Adds the CMG entries of site's gateways to an MP list (cm_site_mplist_json). */
void sim_cmg_mplist(SimWorld *w, SimSite *site, json_t *list);
void sim_cmg_client_config(SimWorld *w, SimPop *p, SimClient *c, CmAgentConfig *cfg);
/* Sends job through its population's CMG; FALSE when send->mp is no CMG entry. */
gboolean sim_cmg_send(SimWorld *w, SimPop *p, SimClient *c, SimJob *job);
/* The MP answered a job that came through a CMG: back the same way. */
void sim_cmg_reply(SimWorld *w, SimJob *job);
void sim_cmg_hop_free(struct SimCmgHop *hop);
void sim_cmg_event(SimWorld *w, CmScnEvent *ev);
void sim_cmg_sample(SimWorld *w);
void sim_cmg_metrics(SimWorld *w);

/* metrics.c */
void sim_metrics_start(SimWorld *w);
void sim_metrics_finish(SimWorld *w);

#include "software.h"

#endif
