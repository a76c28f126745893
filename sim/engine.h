/* engine.h - the discrete-event engine: one queue of events ordered by
 * (virtual time, sequence), virtual time in microseconds.  Events at the
 * same time run in the order they were scheduled, so a run depends only on
 * the scenario and the seed. */
#ifndef CM_SIM_ENGINE_H
#define CM_SIM_ENGINE_H

#include "cmproto.h"

G_BEGIN_DECLS

typedef struct CmSimEngine CmSimEngine;

/* An event's action: ctx and arg as scheduled. */
typedef void (*CmSimFn)(CmSimEngine *engine, void *ctx, guint64 arg);

CmSimEngine *cm_sim_engine_new(void);
void cm_sim_engine_free(CmSimEngine *engine);
/* Schedules fn at t (not before now: earlier times run now). */
void cm_sim_at(CmSimEngine *engine, CmTime t, CmSimFn fn, void *ctx, guint64 arg);
CmTime cm_sim_now(const CmSimEngine *engine);
gsize cm_sim_pending(const CmSimEngine *engine);
guint64 cm_sim_events(const CmSimEngine *engine);
/* Runs events up to and including time end; returns FALSE when the queue
 * ran dry before end.  Afterwards now is end (or the last event's time). */
gboolean cm_sim_run_until(CmSimEngine *engine, CmTime end);
/* Asks a running cm_sim_run_until to return after the current event. */
void cm_sim_stop(CmSimEngine *engine);
/* Calls guard(data, fn) before each event's fn runs (NULL: none). */
typedef void (*CmSimGuardFn)(void *data, CmSimFn fn);
void cm_sim_set_guard(CmSimEngine *engine, CmSimGuardFn guard, void *data);

G_END_DECLS

#endif
