/* transfer.c - site server to distribution point transfers under the DP's
 * rate limits and schedule (REQ DP-02).
 *
 * A fluid model, exact to the byte: between two runs the transfer sends
 * what the schedule allowed over that time, hour by hour (UTC), carrying
 * the fraction of a byte to the next run so that nothing is lost to
 * rounding.  An idle transfer earns no credit: a package queued at t starts
 * at t.  In pulse mode, one block goes out at each pulse, in open hours
 * only.  Packages go one after another, in the order queued. */
#include "internal.h"

#include <string.h>

#define MICRO G_GUINT64_CONSTANT(1000000)
/* Keeps rate (bytes/s) times an hour (us) inside 64 bits. */
#define RATE_MAX (G_GUINT64_CONSTANT(4000000000))
#define SIZE_MAX_TRANSFER (G_GUINT64_CONSTANT(1) << 43)

typedef struct {
    char *id;
    guint64 remaining;
} Item;

struct CmDpTransfer {
    CmDpSchedule s;
    GQueue queue; /* Item* */
    CmTime last;
    guint64 carry; /* micro-bytes earned but not yet a whole byte */
    CmTime next_pulse;
    guint64 sent_total;
};

void
cm_dp_schedule_default(CmDpSchedule *s, guint64 bytes_per_sec)
{
    memset(s, 0, sizeof *s);
    s->bytes_per_sec = bytes_per_sec;
    memset(s->hour_percent, 100, sizeof s->hour_percent);
}

void
cm_dp_schedule_limit(CmDpSchedule *s, guint start, guint end, guint8 percent)
{
    for (guint h = start % 24; h != end % 24; h = (h + 1) % 24)
        s->hour_percent[h] = MIN(percent, 100);
}

static CmTime
hour_start(CmTime t)
{
    CmTime h = t / CM_USEC_PER_HOUR;

    if (t % CM_USEC_PER_HOUR < 0)
        h--;
    return h * CM_USEC_PER_HOUR;
}

static guint
hour_of_day(CmTime t)
{
    gint64 h = hour_start(t) / CM_USEC_PER_HOUR;

    return (guint)(((h % 24) + 24) % 24);
}

guint64
cm_dp_schedule_rate_at(const CmDpSchedule *s, CmTime t)
{
    return s->bytes_per_sec * s->hour_percent[hour_of_day(t)] / 100;
}

/* The start of the first open hour at or after t. */
static CmTime
next_open(const CmDpSchedule *s, CmTime t)
{
    CmTime h = hour_start(t);

    if (s->hour_percent[hour_of_day(t)] > 0)
        return t;
    for (int i = 1; i <= 24; i++)
        if (s->hour_percent[hour_of_day(h + i * CM_USEC_PER_HOUR)] > 0)
            return h + i * CM_USEC_PER_HOUR;
    return G_MAXINT64; /* never: refused at creation */
}

CmDpTransfer *
cm_dp_transfer_new(const CmDpSchedule *schedule, CmTime now, GError **error)
{
    CmDpTransfer *t;
    gboolean open = FALSE;

    for (int h = 0; h < 24; h++) {
        if (schedule->hour_percent[h] > 100) {
            g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                        "hour %d: a share of 0 to 100 percent", h);
            return NULL;
        }
        open |= schedule->hour_percent[h] > 0;
    }
    if (!open) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "the schedule never opens: content would never reach the DP");
        return NULL;
    }
    if (schedule->bytes_per_sec == 0 || schedule->bytes_per_sec > RATE_MAX) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "the rate must be 1 to %" G_GUINT64_FORMAT " bytes per second", RATE_MAX);
        return NULL;
    }
    if (schedule->pulse_block > 0 && schedule->pulse_delay <= 0) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "pulse mode needs a delay between blocks");
        return NULL;
    }
    t = g_new0(CmDpTransfer, 1);
    t->s = *schedule;
    g_queue_init(&t->queue);
    t->last = now;
    t->next_pulse = now;
    return t;
}

static void
item_free(Item *it)
{
    g_free(it->id);
    g_free(it);
}

void
cm_dp_transfer_free(CmDpTransfer *t)
{
    if (t == NULL)
        return;
    g_queue_clear_full(&t->queue, (GDestroyNotify)item_free);
    g_free(t);
}

gboolean
cm_dp_transfer_add(CmDpTransfer *t, const char *id, guint64 size, CmTime now, GError **error)
{
    Item *it;

    if (!dp_name_check(id, CM_DP_ID_MAX, "the content ID", error))
        return FALSE;
    if (size == 0 || size > SIZE_MAX_TRANSFER) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "content %s: a transfer of 1 to %" G_GUINT64_FORMAT " bytes", id,
                    SIZE_MAX_TRANSFER);
        return FALSE;
    }
    if (g_queue_is_empty(&t->queue)) {
        /* The link was idle: no credit from before. */
        t->last = MAX(t->last, now);
        t->carry = 0;
        t->next_pulse = MAX(t->next_pulse, now);
    }
    it = g_new0(Item, 1);
    it->id = g_strdup(id);
    it->remaining = size;
    g_queue_push_tail(&t->queue, it);
    return TRUE;
}

void
cm_dp_transfer_tick_init(CmDpTransferTick *t)
{
    t->bytes = 0;
    t->completed = g_ptr_array_new_with_free_func(g_free);
    t->wake_at = 0;
}

void
cm_dp_transfer_tick_clear(CmDpTransferTick *t)
{
    if (t->completed != NULL)
        g_ptr_array_unref(t->completed);
    t->completed = NULL;
    t->bytes = 0;
    t->wake_at = 0;
}

/* Sends up to avail bytes from the head of the queue. */
static guint64
send(CmDpTransfer *t, guint64 avail, CmDpTransferTick *out)
{
    guint64 sent = 0;

    while (avail > 0 && !g_queue_is_empty(&t->queue)) {
        Item *it = g_queue_peek_head(&t->queue);
        guint64 take = MIN(avail, it->remaining);
        it->remaining -= take;
        avail -= take;
        sent += take;
        if (it->remaining == 0) {
            g_ptr_array_add(out->completed, g_steal_pointer(&it->id));
            item_free(g_queue_pop_head(&t->queue));
        }
    }
    if (g_queue_is_empty(&t->queue))
        t->carry = 0;
    return sent;
}

static void
run_fluid(CmDpTransfer *t, CmTime now, CmDpTransferTick *out)
{
    CmTime at = t->last;

    while (at < now && !g_queue_is_empty(&t->queue)) {
        CmTime end = MIN(now, hour_start(at) + CM_USEC_PER_HOUR);
        guint64 rate = cm_dp_schedule_rate_at(&t->s, at);
        guint64 micro = rate * (guint64)(end - at) + t->carry;
        t->carry = micro % MICRO;
        out->bytes += send(t, micro / MICRO, out);
        at = end;
    }
}

static void
run_pulse(CmDpTransfer *t, CmTime now, CmDpTransferTick *out)
{
    while (t->next_pulse <= now && !g_queue_is_empty(&t->queue)) {
        CmTime open = next_open(&t->s, t->next_pulse);
        if (open != t->next_pulse) {
            t->next_pulse = open;
            continue;
        }
        out->bytes += send(t, t->s.pulse_block, out);
        t->next_pulse += t->s.pulse_delay;
    }
}

static CmTime
wake(CmDpTransfer *t, CmTime now)
{
    const Item *it;
    guint64 rate;
    CmTime boundary, done;
    double need;

    if (g_queue_is_empty(&t->queue))
        return 0;
    if (t->s.pulse_block > 0)
        return next_open(&t->s, MAX(t->next_pulse, now));
    rate = cm_dp_schedule_rate_at(&t->s, now);
    if (rate == 0)
        return next_open(&t->s, now);
    boundary = hour_start(now) + CM_USEC_PER_HOUR;
    it = g_queue_peek_head(&t->queue);
    /* Microseconds until the head completes at this hour's rate. */
    need = ((double)it->remaining * (double)MICRO - (double)t->carry) / (double)rate;
    if (need >= (double)(boundary - now))
        return boundary;
    done = now + (CmTime)need + ((double)(CmTime)need < need ? 1 : 0);
    return MIN(MAX(done, now + 1), boundary);
}

void
cm_dp_transfer_run(CmDpTransfer *t, CmTime now, CmDpTransferTick *out)
{
    out->bytes = 0;
    g_ptr_array_set_size(out->completed, 0);
    if (t->s.pulse_block > 0)
        run_pulse(t, now, out);
    else if (now > t->last)
        run_fluid(t, now, out);
    t->last = MAX(t->last, now);
    t->sent_total += out->bytes;
    out->wake_at = wake(t, now);
}

guint
cm_dp_transfer_queued(const CmDpTransfer *t)
{
    return g_queue_get_length((GQueue *)&t->queue);
}

guint64
cm_dp_transfer_sent_total(const CmDpTransfer *t)
{
    return t->sent_total;
}
