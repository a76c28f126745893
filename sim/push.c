/* push.c - client push installation accounts (REQ CLI-01).
 *
 * Client push needs an account with local admin rights on every target,
 * which makes it the least secure way to install the client: whoever
 * holds a push account holds local admin on every computer in its scope.
 * Each [push_account] is added to its site with cm_site_add_push_account
 * (password sealed under the site's master key), scoped to domains or to
 * everything; the site's push_require_kerberos refuses the NTLM fallback.
 * The site library decides everything below (cm_site_push_to,
 * cm_site_push_reach); this file only asks it about the scenario's
 * clients.
 *
 * The targets are the clients of the populations installed by push
 * (install = push), each in its population's domain ("" for a workgroup).
 * Two strategies, measured by what the account they end with reaches:
 *
 *   stolen-push-account  the attacker has `account` (taken from an admin's
 *                        workstation, say): it reaches every target in
 *                        that account's scope
 *   push-relay           the attacker answers as a push target of `domain`
 *                        (a workgroup computer when unset) and waits for
 *                        the site to push to it: when the site cannot use
 *                        Kerberos mutual authentication there and may fall
 *                        back to NTLM, the attacker relays the account the
 *                        site authenticated with and reaches its scope;
 *                        with Kerberos, or with the fallback refused, it
 *                        gets nothing
 *
 * Reach is the account's local admin rights at the end of the run, not a
 * simulated lateral movement: no traffic of the attacker's is modelled. */
#include "cli.h"

#include <string.h>

#define ADMIN "scenario"

gboolean
sim_push_build(SimWorld *w, GError **error)
{
    for (guint i = 0; i < w->scn->push_accounts->len; i++) {
        CmScnPushAccount *a = g_ptr_array_index(w->scn->push_accounts, i);
        SimSite *site = sim_world_site(w, a->site);
        guint8 raw[16];
        g_autofree char *password = NULL;
        /* A password of its own per account, from the run's stream: the
         * site seals it (REQ ADM-03); nothing here reads it back. */
        cm_rng_bytes(&w->rng, raw, sizeof raw);
        password = cm_enc_hex(raw, sizeof raw);
        if (!cm_site_add_push_account(site->site, a->name, password,
                                      (const char *const *)a->domains, ADMIN, sim_now(w), error))
            return FALSE;
    }
    for (guint i = 0; i < w->sites->len; i++) {
        SimSite *site = g_ptr_array_index(w->sites, i);
        if (site->scn->push_require_kerberos &&
            !cm_site_push_require_kerberos(site->site, TRUE, error))
            return FALSE;
    }
    return TRUE;
}

static SimSite *
pop_site(SimWorld *w, SimPop *p)
{
    SimSite *s = sim_world_site(w, p->scn->site_code);
    return s != NULL ? s : sim_world_site(w, NULL);
}

static const char *
pop_domain(SimPop *p)
{
    return p->scn->domain != NULL ? p->scn->domain : "";
}

/* Targets (clients of push populations) and how many of them account has
 * local admin on. */
static void
reach(SimWorld *w, SimSite *site, const char *account, guint *targets, guint *reached)
{
    *targets = 0;
    *reached = 0;
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        const char *d = pop_domain(p);
        if (p->scn->install != CM_INSTALL_PUSH)
            continue;
        *targets += p->count;
        if (account != NULL && cm_site_push_reach(site->site, account, &d, 1) == 1)
            *reached += p->count;
    }
}

static void
figure(SimWorld *w, CmOutcome *o, CmScnAttacker *scn, const char *name, double value)
{
    g_autofree char *metric = g_strdup_printf("attack.%s.%s", scn->name, name);

    cm_outcome_set_figure(o, name, value);
    cm_run_set_metric(w->run, metric, value);
}

static const char *
auth_name(CmPushAuth a)
{
    return a == CM_PUSH_KERBEROS ? "Kerberos mutual authentication"
           : a == CM_PUSH_NTLM   ? "NTLM (the fallback)"
                                 : "refused";
}

void
sim_push_attacker_report(SimWorld *w, CmScnAttacker *scn)
{
    SimSite *site = sim_world_site(w, NULL);
    g_autofree char *account = NULL, *sentence = NULL;
    guint targets, reached;
    gboolean captured = FALSE;
    CmPushAuth auth = CM_PUSH_REFUSED;
    CmOutcome *o;

    if (scn->strategy == CM_SCN_ATK_STOLEN_PUSH_ACCOUNT) {
        const char *name = g_hash_table_lookup(scn->params, "account");
        for (guint i = 0; i < w->scn->push_accounts->len; i++) {
            CmScnPushAccount *a = g_ptr_array_index(w->scn->push_accounts, i);
            if (strcmp(a->name, name) == 0)
                site = sim_world_site(w, a->site);
        }
        account = g_strdup(name);
        captured = TRUE;
        reach(w, site, account, &targets, &reached);
        sentence = g_strdup_printf("the stolen push account %s has local admin on %u of %u "
                                   "push-installed clients",
                                   account, reached, targets);
    } else {
        const char *domain = g_hash_table_lookup(scn->params, "domain");
        auth = cm_site_push_to(site->site, domain != NULL ? domain : "", &account);
        captured = auth == CM_PUSH_NTLM;
        reach(w, site, captured ? account : NULL, &targets, &reached);
        if (captured)
            sentence = g_strdup_printf(
                "the site pushed to the rogue target (%s) with %s; relayed, the account has local "
                "admin on %u of %u push-installed clients",
                domain != NULL ? domain : "workgroup", account, reached, targets);
        else
            sentence = g_strdup_printf("the site's push to the rogue target (%s): %s; nothing to "
                                       "relay, 0 of %u push-installed clients reached",
                                       domain != NULL ? domain : "workgroup",
                                       account != NULL ? auth_name(auth)
                                                       : "refused (no account in scope, or "
                                                         "Kerberos required)",
                                       targets);
    }
    o = cm_run_add_outcome(w->run, scn->name, cm_scn_strategy_name(scn->strategy), reached > 0,
                           sentence);
    figure(w, o, scn, "targets", targets);
    figure(w, o, scn, "reach", reached);
    figure(w, o, scn, "reach_ratio", targets ? (double)reached / targets : 0);
    figure(w, o, scn, "captured", captured);
    if (scn->strategy == CM_SCN_ATK_PUSH_RELAY)
        figure(w, o, scn, "ntlm", auth == CM_PUSH_NTLM);
}

void
sim_push_metrics(SimWorld *w)
{
    if (w->scn->push_accounts->len == 0)
        return;
    for (guint i = 0; i < w->pops->len; i++) {
        SimPop *p = g_ptr_array_index(w->pops, i);
        g_autofree char *account = NULL, *k = NULL, *n = NULL, *r = NULL;
        CmPushAuth auth;
        if (p->scn->install != CM_INSTALL_PUSH)
            continue;
        auth = cm_site_push_to(pop_site(w, p)->site, pop_domain(p), &account);
        k = g_strdup_printf("push.%s.kerberos", p->scn->name);
        n = g_strdup_printf("push.%s.ntlm", p->scn->name);
        r = g_strdup_printf("push.%s.refused", p->scn->name);
        cm_run_set_metric(w->run, k, auth == CM_PUSH_KERBEROS);
        cm_run_set_metric(w->run, n, auth == CM_PUSH_NTLM);
        cm_run_set_metric(w->run, r, auth == CM_PUSH_REFUSED);
    }
}
