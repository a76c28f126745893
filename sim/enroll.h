/* enroll.h - the certificate enrollment point and the issuing CA behind it
 * (REQ REG-07, REG-08), internal to sim/.
 *
 * One per world, built by the first attacker that enrolls (sim/attack.c).
 * It is a server like an MP or a site: a pool of workers in front of a
 * bounded FIFO queue.  A worker checks the request (is the user allowed to
 * enroll, has the device had its certificates) and either refuses it at the
 * refusal cost or has the enterprise CA issue an X.509 client
 * authentication certificate at the issue cost. */
#ifndef CM_SIM_ENROLL_H
#define CM_SIM_ENROLL_H

#include "world.h"

/* Real X.509 certificates signed per run unless real_certs says otherwise;
 * past this, issuance is counted by the cost model only (the CA's time is
 * charged all the same).  Bounds the wall time of a flood of hundreds of
 * thousands of requests.  A request that keeps its certificate always gets
 * a real one. */
#define SIM_ENROLL_REAL_MAX 10000

typedef struct {
    char **allowed_users;   /* NULL-terminated; NULL: any user may enroll */
    guint per_device_limit; /* certificates one device may get; 0: no limit (the product) */
    CmTime issue_cost;      /* a worker's time to check and issue */
    CmTime refusal_cost;    /* a worker's time to check and refuse */
    int workers;
    guint queue_limit;
    guint64 real_max;       /* real certificates per run; the rest by the cost model */
} SimEnrollSettings;

typedef enum {
    SIM_ENROLL_ISSUED,
    SIM_ENROLL_USER_REFUSED,  /* the user is not allowed to enroll (REQ REG-07) */
    SIM_ENROLL_LIMIT_REFUSED, /* the device had its certificates (REQ REG-08) */
    SIM_ENROLL_BUSY,          /* the queue was full: 503 */
    SIM_ENROLL_UNREACHABLE,   /* no route from the requester: the connection timed out */
} SimEnrollResult;

typedef struct {
    SimEnrollResult result;
    guint64 tag;              /* as in the request */
    CmTime latency;           /* request sent to answer received */
    CmCert *cert;             /* borrowed; set only when the request asked to keep it */
} SimEnrollAnswer;

typedef void (*SimEnrollDone)(SimWorld *w, void *ctx, const SimEnrollAnswer *answer);

typedef struct {
    guint64 device;           /* the device identity the per-device limit counts */
    const char *user;         /* the user who enrolls */
    guint seg;                /* the requester's segment */
    CmKey *subject_key;       /* the key pair the certificate is for (referenced) */
    gboolean keep;            /* hand the certificate to done */
    SimEnrollDone done;       /* called when the answer arrives, if before the end */
    void *ctx;
    guint64 tag;
} SimEnrollRequest;

typedef struct {
    SimWorld *world;
    SimEnrollSettings set;
    SimServer server;
    guint seg;                /* the site server's segment: in the intranet */
    GHashTable *granted;      /* device (guint64*) -> certificates granted (guint) */
    GQueue outstanding;       /* every request not yet answered, to free at the end */
    GQueue waiting;           /* requests queued for a worker (server.len mirrors it) */
    /* counters */
    guint64 requests, issued, issued_real, user_refused, limit_refused;
} SimEnroll;

/* Reads the enrollment point's settings from the parameters of every
 * enrollment attacker of the scenario (docs/scenarios.md): a key may be
 * given on any of them, and must not be given two different values. */
gboolean sim_enroll_settings_load(SimWorld *w, SimEnrollSettings *set, GError **error);
void sim_enroll_settings_clear(SimEnrollSettings *set);

/* Takes set's contents. */
SimEnroll *sim_enroll_new(SimWorld *w, SimEnrollSettings *set);
void sim_enroll_submit(SimEnroll *e, const SimEnrollRequest *rq);
/* The ca.* metrics. */
void sim_enroll_report(SimEnroll *e);
void sim_enroll_free(SimEnroll *e);

#endif
