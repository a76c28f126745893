/* logs.c - client logs and the attacker who erases them (REQ CLI-04).
 *
 * Seed 001: every client log file lets the Users group read it and the
 * Interactive user write it, because software the client installs in a
 * user's context logs with a low-rights account; so an attacker running
 * as a low-rights user on a client can remove what the log says, which an
 * administrator may need for auditing and intrusion detection.
 *
 * The model, kept small: a client's local log holds one line per thing its
 * agent did (registration requests, policies accepted, installs, inventory,
 * state and status messages, client status reports), counted from the
 * agent's own status.  The log-wipe attacker runs as a low-rights user on
 * a share (`fraction`) of its target population from `start`; with the
 * product's ACL (`log_acl = users-write`) it truncates each of their logs,
 * with `admins-only` (not what the product does: the counterfactual) it
 * cannot.  Lines the agent writes afterwards stay.  What the client
 * already sent is elsewhere: the site's record of its status messages
 * (seen through a status-message collection, `collection`) is not on the
 * client and the attacker cannot touch it.
 *
 * The evidence measured is each attacked client's installs before the
 * wipe: whether its local log still shows them, and whether the site still
 * holds the status message the install sent. */
#include "cli.h"

#include <string.h>

typedef struct {
    CmScnAttacker *scn;
    SimPop *pop;        /* the target, once the attack ran */
    double share;       /* fraction */
    guint attacked;     /* the first `attacked` clients of pop */
    gboolean can_write; /* the log's ACL lets a low-rights user write it */
    gboolean wiped;     /* the attack ran */
    guint64 *lines_at;  /* per attacked client: log lines when the attack ran */
    int *installs_at;   /* per attacked client: installs done by then */
    gboolean *erased;   /* per client of pop: its log was truncated */
    guint64 lines_erased;
} LogWipe;

struct SimLogs {
    GPtrArray *wipes; /* LogWipe* */
};

/* The lines a client's local log has had written, from what its agent did. */
static guint64
log_lines(const CmAgentStatus *st)
{
    return (guint64)st->registrations + (guint64)st->policies_accepted +
           (guint64)st->installs_done + (guint64)st->inventories_sent + (guint64)st->states_sent +
           (guint64)st->status_sent + (guint64)st->client_status_sent;
}

/* The population is built after the attackers start: the attacked
 * clients are chosen when the attack runs. */
static void
ev_wipe(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    LogWipe *lw = g_ptr_array_index(w->logs->wipes, (guint)arg);

    (void)e;
    lw->pop = sim_world_pop(w, lw->scn->target);
    /* The first clients of the population, the same ones at any scale. */
    lw->attacked = (guint)MIN((double)lw->pop->count, (double)lw->pop->count * lw->share + 0.5);
    lw->lines_at = g_new0(guint64, MAX(lw->attacked, 1));
    lw->installs_at = g_new0(int, MAX(lw->attacked, 1));
    lw->erased = g_new0(gboolean, MAX(lw->pop->count, 1));
    lw->wiped = TRUE;
    for (guint i = 0; i < lw->attacked; i++) {
        const SimClient *c = &w->clients[lw->pop->first + i];
        const CmAgentStatus *st = cm_agent_status(c->agent);
        lw->lines_at[i] = log_lines(st);
        lw->installs_at[i] = st->installs_done;
        /* A low-rights user can only erase what it may write. */
        if (lw->can_write) {
            lw->erased[i] = TRUE;
            lw->lines_erased += lw->lines_at[i];
        }
    }
}

gboolean
sim_logs_attacker_start(SimWorld *w, CmScnAttacker *scn, GError **error)
{
    LogWipe *lw = g_new0(LogWipe, 1);
    const char *f = g_hash_table_lookup(scn->params, "fraction");
    const char *acl = g_hash_table_lookup(scn->params, "log_acl");

    (void)error; /* the loader checked the parameters */
    if (w->logs == NULL) {
        w->logs = g_new0(SimLogs, 1);
        w->logs->wipes = g_ptr_array_new();
    }
    g_ptr_array_add(w->logs->wipes, lw);
    lw->scn = scn;
    lw->share = f != NULL ? g_ascii_strtod(f, NULL) : 1.0;
    lw->can_write = acl == NULL || strcmp(acl, "users-write") == 0;
    cm_sim_at(w->engine, scn->start, ev_wipe, w, w->logs->wipes->len - 1);
    return TRUE;
}

static LogWipe *
wipe_of(SimWorld *w, CmScnAttacker *scn)
{
    for (guint i = 0; w->logs != NULL && i < w->logs->wipes->len; i++) {
        LogWipe *lw = g_ptr_array_index(w->logs->wipes, i);
        if (lw->scn == scn)
            return lw;
    }
    return NULL;
}

static void
figure(SimWorld *w, CmOutcome *o, CmScnAttacker *scn, const char *name, double value)
{
    g_autofree char *metric = g_strdup_printf("attack.%s.%s", scn->name, name);

    cm_outcome_set_figure(o, name, value);
    cm_run_set_metric(w->run, metric, value);
}

void
sim_logs_attacker_report(SimWorld *w, CmScnAttacker *scn)
{
    LogWipe *lw = wipe_of(w, scn);
    SimSite *site;
    gint64 coll;
    const char *coll_name = g_hash_table_lookup(scn->params, "collection");
    guint erased = 0, evidence = 0, kept = 0, at_site = 0;
    guint others = 0, others_kept = 0, others_at_site = 0;
    g_autofree char *sentence = NULL;
    CmOutcome *o;

    if (lw == NULL || !lw->wiped)
        return;
    site = sim_world_site(w, lw->pop->scn->site_code);
    if (site == NULL)
        site = sim_world_site(w, NULL);
    coll = cm_site_collection_id(site->site, coll_name);
    for (guint i = 0; i < lw->pop->count; i++) {
        const SimClient *c = &w->clients[lw->pop->first + i];
        const CmAgentStatus *st = cm_agent_status(c->agent);
        gboolean held = coll >= 0 && cm_site_in_collection(site->site, coll, st->smsid);
        if (i >= lw->attacked) {
            /* Clients the attacker never ran on. */
            if (st->installs_done > 0) {
                others++;
                others_kept += !lw->erased[i];
                others_at_site += held;
            }
            continue;
        }
        erased += lw->erased[i];
        if (lw->installs_at[i] == 0)
            continue;
        evidence++;
        /* A truncated log holds only what the agent wrote since. */
        kept += !lw->erased[i];
        at_site += held;
    }
    sentence = g_strdup_printf(
        "as a low-rights user on %u clients (log ACL %s), erased %u of their local logs "
        "(%" G_GUINT64_FORMAT
        " lines): %u of %u installs done before are no longer in any client log; the site still "
        "holds the status messages of %u of them",
        lw->attacked, lw->can_write ? "users-write" : "admins-only", erased, lw->lines_erased,
        evidence - kept, evidence, at_site);
    o = cm_run_add_outcome(w->run, scn->name, cm_scn_strategy_name(scn->strategy), evidence > kept,
                           sentence);
    figure(w, o, scn, "clients", lw->attacked);
    figure(w, o, scn, "erased", erased);
    figure(w, o, scn, "erased_ratio", lw->attacked ? (double)erased / lw->attacked : 0);
    figure(w, o, scn, "lines_erased", (double)lw->lines_erased);
    figure(w, o, scn, "installed_before", evidence);
    figure(w, o, scn, "installed_before_ratio", lw->attacked ? (double)evidence / lw->attacked : 0);
    figure(w, o, scn, "evidence_kept_ratio", evidence ? (double)kept / evidence : 0);
    figure(w, o, scn, "site_record_ratio", evidence ? (double)at_site / evidence : 0);
    figure(w, o, scn, "others", others);
    figure(w, o, scn, "others_evidence_ratio", others ? (double)others_kept / others : 0);
    figure(w, o, scn, "others_site_record_ratio", others ? (double)others_at_site / others : 0);
}

void
sim_logs_free(SimWorld *w)
{
    if (w->logs == NULL)
        return;
    for (guint i = 0; i < w->logs->wipes->len; i++) {
        LogWipe *lw = g_ptr_array_index(w->logs->wipes, i);
        g_free(lw->lines_at);
        g_free(lw->installs_at);
        g_free(lw->erased);
        g_free(lw);
    }
    g_ptr_array_unref(w->logs->wipes);
    g_free(w->logs);
    w->logs = NULL;
}
