/* report.h - what one simulated run produced, and its reports
 * (sim/report.c): the terminal summary, the JSON report (schema in
 * docs/report-schema.md) and the self-contained HTML report with SVG charts.
 *
 * The JSON and HTML reports hold only what the scenario and seed decide:
 * no wall-clock time, no host name, no event rate.  The same scenario and
 * seed give the same reports byte for byte; numbers are printed with a
 * fixed format ("%.6g", integral values as integers) so no platform's float
 * printing can differ.
 *
 * Ownership: a CmRun owns every string, table and array it points to and
 * cm_run_free releases them all.  The strings of a new CmRun are NULL (read
 * as ""); set them with g_strdup.  Elements added to series, outcomes and
 * expects directly must be allocated with g_new0 and their strings with
 * g_strdup, as the helpers below do. */
#ifndef CM_SIM_REPORT_H
#define CM_SIM_REPORT_H

#include <stdio.h>

#include "cmproto.h"

G_BEGIN_DECLS

/* A metric sampled every CmRun.sample of virtual time. */
typedef struct {
    char *name; /* "site.PS1.backlog", "mp.mp1.queue", "rate.register", "latency.register.p95" */
    char *unit; /* "requests", "per second", "ms", "clients" */
    GArray *values; /* double, one per sample, sample i at time (i + 1) * sample */
} CmSeries;

/* One row of the attack outcome table. */
typedef struct {
    char *attacker;      /* the [attacker] name */
    char *strategy;      /* cm_scn_strategy_name */
    gboolean succeeded;  /* did the attack reach its goal */
    char *outcome;       /* one sentence: "412 of 500 clients took the rogue TRK on first use" */
    GHashTable *figures; /* name -> double* (counts behind the sentence) */
} CmOutcome;

typedef struct {
    char *name;
    char *text;       /* the expression as written */
    gboolean applies; /* FALSE when its "when" names another variant */
    gboolean known;   /* FALSE when the metric does not exist: that fails */
    double value;
    gboolean passed;
} CmExpectResult;

typedef struct {
    char *scenario;
    char *description;
    char *variant_label; /* "" without variants */
    guint64 seed;
    CmTime duration;
    CmTime sample;
    gboolean model_crypto;
    char *full_size;
    GHashTable *metrics; /* name -> double*: the scalar results */
    GPtrArray *series;   /* CmSeries* */
    GPtrArray *outcomes; /* CmOutcome* */
    GPtrArray *expects;  /* CmExpectResult* */
    /* Not in the JSON/HTML reports (they vary by machine): */
    double wall_seconds;
    double cpu_seconds;    /* user + system, every thread */
    double crypto_seconds; /* estimated from counted operations and calibrated costs */
    /* Share of the run's CPU-time samples whose program counter was inside
     * libcrypto (OpenSSL's code), measured in place; -1 when not sampled. */
    double crypto_sampled;
    /* The same with the samples taken inside the allocations OpenSSL asked
     * for (cm_sim_count_crypto_allocations); -1 when not sampled. */
    double crypto_sampled_alloc;
    guint64 events;
    gsize peak_rss_kib;
} CmRun;

CmRun *cm_run_new(void);
void cm_run_free(CmRun *run);
void cm_run_set_metric(CmRun *run, const char *name, double value);
/* The metric's value, or FALSE when there is none. */
gboolean cm_run_metric(const CmRun *run, const char *name, double *out);
CmSeries *cm_run_series(CmRun *run, const char *name, const char *unit); /* find or add */
CmOutcome *cm_run_add_outcome(CmRun *run, const char *attacker, const char *strategy,
                              gboolean succeeded, const char *outcome);
void cm_outcome_set_figure(CmOutcome *o, const char *name, double value);
/* Appends one sample to a series. */
void cm_series_append(CmSeries *s, double value);
/* Adds an expectation's result (strings copied); the run owns it. */
CmExpectResult *cm_run_add_expect(CmRun *run, const char *name, const char *text, gboolean applies,
                                  gboolean known, double value, gboolean passed);
/* TRUE when every expectation that applies to the run held (a missing
 * metric fails; one for another variant counts neither way). */
gboolean cm_run_passed(const CmRun *run);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmRun, cm_run_free)

/* Reports over every variant of one scenario file. */
char *cm_report_json(GPtrArray *runs); /* new string */
char *cm_report_html(GPtrArray *runs); /* new string, self-contained */
/* The terminal summary: what ran, each expectation's outcome, key figures,
 * the attack table, and (here only) wall time and event rate. */
void cm_report_summary(FILE *out, GPtrArray *runs, gboolean color);
/* The same with every metric listed, not only the headline ones and those
 * the expectations name. */
void cm_report_summary_full(FILE *out, GPtrArray *runs, gboolean color);

G_END_DECLS

#endif
