/* installs.c - required deployments and maintenance windows in the
 * simulator (REQ POL-04).
 *
 * A population's maintenance_start and maintenance_window are its clients'
 * daily window (sim_client_config gives them to the agent); a deploy
 * event's max_runtime is in the policy the site signs.  The agent decides
 * when to install: inside a window with enough time left for the maximum
 * run time, never in a window shorter than it.  This file counts the
 * outcome, per required deployment a client holds:
 *
 *   installs.done / .pending        installed / not (yet)
 *   installs.done_ratio             done / (done + pending)
 *   installs.pending_ratio          pending / (done + pending)
 *   installs.unfit / .unfit_ratio   pending for good: no window fits
 *
 * and the same per population as pop.<name>.installs_*.  Ratios hold at
 * any --scale; with nothing deployed they are 0 (nothing measured), so an
 * expectation cannot pass on clients that never got the policy. */
#include "software.h"

#include <stdarg.h>

typedef struct {
    guint64 done, pending, unfit;
} InstallCount;

static double
share(guint64 part, const InstallCount *n)
{
    guint64 whole = n->done + n->pending;
    return whole > 0 ? (double)part / (double)whole : 0;
}

/* Sets PREFIX.done ... with PREFIX "installs" or "pop.<name>.installs". */
static void
install_metrics(SimWorld *w, const char *prefix, const InstallCount *n)
{
    const char *sep = g_str_has_prefix(prefix, "pop.") ? "_" : ".";

    sim_metric_setf(w, (double)n->done, "%s%sdone", prefix, sep);
    sim_metric_setf(w, (double)n->pending, "%s%spending", prefix, sep);
    sim_metric_setf(w, (double)n->unfit, "%s%sunfit", prefix, sep);
    sim_metric_setf(w, share(n->done, n), "%s%sdone_ratio", prefix, sep);
    sim_metric_setf(w, share(n->pending, n), "%s%spending_ratio", prefix, sep);
    sim_metric_setf(w, share(n->unfit, n), "%s%sunfit_ratio", prefix, sep);
}

void
sim_software_metrics(SimWorld *w)
{
    InstallCount all = {0};

    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        InstallCount n = {0};
        g_autofree char *prefix = g_strdup_printf("pop.%s.installs", p->scn->name);
        for (guint k = 0; k < p->count; k++) {
            const SimClient *c = &w->clients[p->first + k];
            const CmAgentStatus *st;
            if (c->agent == NULL || c->attacker)
                continue;
            st = cm_agent_status(c->agent);
            n.done += (guint64)st->installs_done;
            n.pending += (guint64)st->installs_pending;
            n.unfit += (guint64)st->installs_unfit;
        }
        all.done += n.done;
        all.pending += n.pending;
        all.unfit += n.unfit;
        install_metrics(w, prefix, &n);
    }
    install_metrics(w, "installs", &all);
    sim_upgrade_metrics(w);
}
