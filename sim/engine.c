/* engine.c - the event queue: a 4-ary min-heap of events kept by value.
 *
 * A 4-ary heap is shallower than a binary one (log4 n levels), and its four
 * children share a cache line or two, so a pop touches fewer lines: with
 * 100,000 pending events that is 9 levels instead of 17. */
#include "engine.h"

#include <string.h>

typedef struct {
    CmTime t;
    guint64 seq;
    CmSimFn fn;
    void *ctx;
    guint64 arg;
} Event;

struct CmSimEngine {
    Event *heap;
    gsize n;
    gsize cap;
    guint64 seq;
    guint64 events;
    CmTime now;
    gboolean stop;
    CmSimGuardFn guard;
    void *guard_data;
};

static inline gboolean
before(const Event *a, const Event *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

CmSimEngine *
cm_sim_engine_new(void)
{
    CmSimEngine *e = g_new0(CmSimEngine, 1);

    e->cap = 1024;
    e->heap = g_new(Event, e->cap);
    return e;
}

void
cm_sim_engine_free(CmSimEngine *engine)
{
    if (engine == NULL)
        return;
    g_free(engine->heap);
    g_free(engine);
}

void
cm_sim_at(CmSimEngine *e, CmTime t, CmSimFn fn, void *ctx, guint64 arg)
{
    Event ev = {.t = t < e->now ? e->now : t, .seq = e->seq++, .fn = fn, .ctx = ctx, .arg = arg};
    gsize i;

    if (e->n == e->cap) {
        e->cap *= 2;
        e->heap = g_renew(Event, e->heap, e->cap);
    }
    /* Sift up: move parents down until ev's place is found. */
    i = e->n++;
    while (i > 0) {
        gsize parent = (i - 1) / 4;
        if (!before(&ev, &e->heap[parent]))
            break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = ev;
}

/* Removes the first event into *out. */
static void
pop(CmSimEngine *e, Event *out)
{
    Event last;
    gsize i = 0, n;

    *out = e->heap[0];
    n = --e->n;
    if (n == 0)
        return;
    last = e->heap[n];
    /* Sift down: move the smallest child up until last fits. */
    for (;;) {
        gsize c = 4 * i + 1, best, end;
        if (c >= n)
            break;
        best = c;
        end = MIN(c + 4, n);
        for (gsize k = c + 1; k < end; k++)
            if (before(&e->heap[k], &e->heap[best]))
                best = k;
        if (!before(&e->heap[best], &last))
            break;
        e->heap[i] = e->heap[best];
        i = best;
    }
    e->heap[i] = last;
}

CmTime
cm_sim_now(const CmSimEngine *engine)
{
    return engine->now;
}

gsize
cm_sim_pending(const CmSimEngine *engine)
{
    return engine->n;
}

guint64
cm_sim_events(const CmSimEngine *engine)
{
    return engine->events;
}

void
cm_sim_stop(CmSimEngine *engine)
{
    engine->stop = TRUE;
}

void
cm_sim_set_guard(CmSimEngine *e, CmSimGuardFn guard, void *data)
{
    e->guard = guard;
    e->guard_data = data;
}

gboolean
cm_sim_run_until(CmSimEngine *e, CmTime end)
{
    Event ev;

    e->stop = FALSE;
    while (e->n > 0 && e->heap[0].t <= end) {
        pop(e, &ev);
        e->now = ev.t;
        e->events++;
        if (e->guard != NULL)
            e->guard(e->guard_data, ev.fn);
        ev.fn(e, ev.ctx, ev.arg);
        if (e->stop)
            return TRUE;
    }
    if (e->n == 0) {
        if (e->now < end)
            e->now = end;
        return FALSE;
    }
    e->now = end;
    return TRUE;
}
