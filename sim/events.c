/* events.c - the scenario's timeline: what administrators and time do to
 * the world (upgrades, blocking, approvals, revocations, publishing,
 * collections, deployments, an MP taken over, settings, maintenance). */
#include "software.h"
#include "hierarchy.h"
#include "content.h"
#include "cmdp.h"

#include <string.h>

#define ADMIN "scenario"

static SimSite *
event_site(SimWorld *w, CmScnEvent *ev)
{
    SimSite *s = sim_world_site(w, ev->site);
    return s != NULL ? s : sim_world_site(w, NULL);
}

/* The clients of a population an event touches: the first fraction of
 * them, in order (deterministic, and the same clients every variant). */
static guint
event_count(SimPop *p, CmScnEvent *ev)
{
    double f = ev->fraction > 0 ? ev->fraction : 1.0;
    return (guint)MIN((double)p->count, (double)p->count * f + 0.5);
}

static void
ev_upgrade_one(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    SimClient *c = &w->clients[arg];
    CmAgentActions act;
    const CmAgentStatus *st;

    (void)e;
    if (c->agent == NULL)
        return;
    st = cm_agent_status(c->agent);
    /* Clients without PKI re-register after the hardware-bound upgrade
     * (REQ TRUST-12); with PKI they only make a new self-signed
     * certificate. */
    if (c->pki_cert == NULL && !c->needs_reg && st->state == CM_AGENT_ACTIVE) {
        c->needs_reg = TRUE;
        c->need_since = cm_sim_now(w->engine);
        w->regs_needed++;
    }
    cm_agent_actions_init(&act);
    cm_agent_upgrade(c->agent, 2, sim_now(w), &act);
    sim_client_actions(w, c, &act);
    cm_agent_actions_clear(&act);
}

static void
do_upgrade(SimWorld *w, CmScnEvent *ev)
{
    SimPop *p = sim_world_pop(w, ev->target);
    guint n = event_count(p, ev);
    CmRng rng;

    cm_rng_init_seeded(&rng, w->scn->seed, cm_rng_stream_id(ev->name));
    for (guint i = 0; i < n; i++) {
        CmTime at = cm_sim_now(w->engine) +
                    (ev->randomize_over > 0 ? (CmTime)cm_rng_below(&rng, (guint64)ev->randomize_over)
                                            : 0);
        cm_sim_at(w->engine, at, ev_upgrade_one, w, p->first + i);
    }
}

static void
do_block(SimWorld *w, CmScnEvent *ev, gboolean block)
{
    SimPop *p = sim_world_pop(w, ev->target);
    SimSite *site = event_site(w, ev);
    guint n = event_count(p, ev), done = 0;

    for (guint i = 0; i < n; i++) {
        SimClient *c = &w->clients[p->first + i];
        const char *smsid = cm_agent_status(c->agent)->smsid;
        gboolean ok = block ? cm_site_admin_block(site->site, smsid, ADMIN, sim_now(w), NULL)
                            : cm_site_admin_unblock(site->site, smsid, ADMIN, sim_now(w), NULL);
        done += ok;
    }
    cm_run_set_metric(w->run, block ? "admin.blocked" : "admin.unblocked", done);
}

static void
do_approve(SimWorld *w, CmScnEvent *ev)
{
    SimPop *p = sim_world_pop(w, ev->target);
    SimSite *site = event_site(w, ev);
    guint n = event_count(p, ev), done = 0;

    for (guint i = 0; i < n; i++) {
        SimClient *c = &w->clients[p->first + i];
        CmClientInfo info;
        const char *smsid = cm_agent_status(c->agent)->smsid;
        if (cm_site_client(site->site, smsid, &info, NULL) && info.state == CM_CLIENT_PENDING)
            done += cm_site_admin_approve(site->site, smsid, ADMIN, sim_now(w), NULL);
    }
    cm_run_set_metric(w->run, "admin.approved", done);
}

/* Revokes the PKI certificates of a population and publishes a new CRL to
 * every site (REQ TRUST-14). */
static void
do_revoke(SimWorld *w, CmScnEvent *ev)
{
    SimPop *p = sim_world_pop(w, ev->target);
    guint n = event_count(p, ev);

    for (guint i = 0; i < n; i++) {
        SimClient *c = &w->clients[p->first + i];
        CmCrlEntry e = {.revoked_at = sim_now(w)};
        if (c->pki_cert == NULL || c->revoked)
            continue;
        e.serial = cm_cert_serial(c->pki_cert);
        g_array_append_val(w->revoked, e);
        c->revoked = TRUE;
    }
    cm_crl_unref(w->crl);
    w->crl = cm_crl_issue(w->ca_cert, w->ca_key, (CmCrlEntry *)w->revoked->data, w->revoked->len,
                          w->revoked->len + 1, sim_now(w) - CM_USEC_PER_HOUR,
                          sim_now(w) + 30 * CM_USEC_PER_DAY, NULL);
    for (guint i = 0; w->crl != NULL && i < w->sites->len; i++) {
        SimSite *s = g_ptr_array_index(w->sites, i);
        (void)cm_site_set_pki(s->site, w->ca_cert, w->crl, NULL);
    }
    cm_run_set_metric(w->run, "admin.revoked", w->revoked->len);
}

static void
do_publish(SimWorld *w, CmScnEvent *ev)
{
    SimSite *site = event_site(w, ev);
    guint n = site->scn->publish_to ? g_strv_length(site->scn->publish_to) : 0;

    /* Clients installed from now on in that forest find the site in their
     * global catalog (REQ NET-07). */
    site->scn->publish_to = g_renew(char *, site->scn->publish_to, n + 2);
    site->scn->publish_to[n] = g_strdup(ev->target);
    site->scn->publish_to[n + 1] = NULL;
}

static gint64
collection_id(SimSite *site, const char *name)
{
    return name == NULL ? CM_COLLECTION_ALL_SYSTEMS : cm_site_collection_id(site->site, name);
}

static void
do_create_collection(SimWorld *w, CmScnEvent *ev)
{
    SimSite *site = event_site(w, ev);
    guint n = ev->rules ? g_strv_length(ev->rules) : 0;
    g_autofree CmRule *rules = g_new0(CmRule, MAX(n, 1));
    GError *error = NULL;

    for (guint i = 0; i < n; i++) {
        char *prop = NULL, *value = NULL;
        if (!cm_rule_parse(ev->rules[i], &rules[i].source, &prop, &rules[i].op, &value, NULL))
            continue; /* checked when the scenario loaded */
        rules[i].property = prop;
        rules[i].value = value;
    }
    if (cm_site_admin_create_collection(site->site, ev->collection ? ev->collection : ev->target,
                                        rules, n, ADMIN, sim_now(w),
                                        &error) < 0) {
        g_warning("event %s: %s", ev->name, error->message);
        g_error_free(error);
    }
    for (guint i = 0; i < n; i++) {
        g_free((char *)rules[i].property);
        g_free((char *)rules[i].value);
    }
}

static void
do_deploy(SimWorld *w, CmScnEvent *ev)
{
    SimSite *site = event_site(w, ev);
    gint64 coll = collection_id(site, ev->collection ? ev->collection : ev->target);
    guint8 hash[32];
    g_autofree char *id = NULL;
    CmDeployment dep = {.name = ev->name, .content_id = ev->name, .content_hash = hash,
                        .content_size = 1 << 20, .required = ev->required,
                        .max_runtime_s = ev->max_runtime / CM_USEC_PER_SEC};
    GError *error = NULL;    cm_hash(CM_HASH_SHA256, ev->name, strlen(ev->name), hash);
    if (ev->content != NULL && sim_content_package(w, ev->content) != NULL) {
        /* A [content] package: its real content hash and size, which the
         * clients of a DP check what they download against (REQ DP-04). */
        CmDpPackage *pkg = sim_content_package(w, ev->content);
        memcpy(hash, cm_dp_package_hash(pkg), sizeof hash);
        dep.content_id = ev->content;
        dep.content_size = (gint64)cm_dp_package_size(pkg);
    }
id = cm_site_admin_deploy(site->site, coll, &dep, ADMIN, sim_now(w), &error);
    if (id == NULL) {
        g_warning("event %s: %s", ev->name, error->message);
        g_error_free(error);
    } else {
        sim_hierarchy_deployed(w, site, ev, id); /* on to the sites below, if any */
    }
}

static void
do_set(SimWorld *w, CmScnEvent *ev)
{
    SimSite *site = event_site(w, ev);
    CmSiteSettings s = *cm_site_settings(site->site);

    for (guint i = 0; ev->settings != NULL && ev->settings[i] != NULL; i++) {
        g_auto(GStrv) kv = g_strsplit(ev->settings[i], "=", 2);
        g_autofree char *k = g_strstrip(g_strdup(kv[0]));
        g_autofree char *v = kv[1] ? g_strstrip(g_strdup(kv[1])) : g_strdup("");
        if (strcmp(k, "communication") == 0)
            (void)cm_comm_mode_parse(v, &s.communication, NULL);
        else if (strcmp(k, "approval") == 0)
            (void)cm_approval_mode_parse(v, &s.approval, NULL);
        else if (strcmp(k, "conflicts") == 0)
            (void)cm_conflict_mode_parse(v, &s.conflicts, NULL);
        else if (strcmp(k, "require_signing") == 0)
            s.require_signing = strcmp(v, "true") == 0;
        else if (strcmp(k, "require_sha256") == 0)
            s.require_sha256 = strcmp(v, "true") == 0;
        else if (strcmp(k, "encrypt") == 0)
            s.encrypt = strcmp(v, "true") == 0;
        else if (strcmp(k, "crl_check") == 0)
            s.crl_check = strcmp(v, "true") == 0;
        else if (strcmp(k, "allow_3des") == 0)
            s.allow_3des = strcmp(v, "true") == 0;
        else if (strcmp(k, "discovery_retention") == 0 || strcmp(k, "client_status_retention") == 0 ||
                 strcmp(k, "client_token_lifetime") == 0) {
            CmTime t = 0;
            if (!cm_scn_parse_duration(v, &t, NULL))
                continue; /* checked when the scenario loaded */
            if (strcmp(k, "discovery_retention") == 0)
                s.discovery_retention_days = (int)MAX(1, t / CM_USEC_PER_DAY);
            else if (strcmp(k, "client_status_retention") == 0)
                s.client_status_retention_days = (int)MAX(1, t / CM_USEC_PER_DAY);
            else
                s.client_token_lifetime = t;
        }
        /* key_alg: the site's keys exist already; cm_site_set_settings
         * keeps the algorithm they were made with. */
    }
    (void)cm_site_set_settings(site->site, &s, ADMIN, sim_now(w), NULL);
    sim_world_refresh_mps(w, site);
}

static void
do_maintenance(SimWorld *w, CmScnEvent *ev)
{
    SimSite *site = event_site(w, ev);
    CmMaintenanceResult r = {0};

    if (cm_site_maintenance(site->site, sim_now(w), &r, NULL)) {
        gint64 records = cm_site_client_count(site->site, -1);
        cm_run_set_metric(w->run, "maintenance.discovery_deleted", (double)r.discovery_deleted);
        /* The share of clients whose data went holds at any --scale. */
        cm_run_set_metric(w->run, "maintenance.discovery_clients_ratio",
                          records > 0 ? (double)r.discovery_clients / (double)records : 0);
        cm_run_set_metric(w->run, "maintenance.client_status_deleted",
                          (double)r.client_status_deleted);
    }
}

static void
ev_event(CmSimEngine *e, void *ctx, guint64 arg)
{
    SimWorld *w = ctx;
    CmScnEvent *ev = g_ptr_array_index(w->scn->events, arg);

    (void)e;
    switch (ev->action) {
    case CM_SCN_ACT_UPGRADE_CLIENT:
        do_upgrade(w, ev);
        break;
    case CM_SCN_ACT_BLOCK:
        do_block(w, ev, TRUE);
        break;
    case CM_SCN_ACT_UNBLOCK:
        do_block(w, ev, FALSE);
        break;
    case CM_SCN_ACT_APPROVE:
        do_approve(w, ev);
        break;
    case CM_SCN_ACT_REVOKE:
        do_revoke(w, ev);
        break;
    case CM_SCN_ACT_PUBLISH:
        do_publish(w, ev);
        break;
    case CM_SCN_ACT_CREATE_COLLECTION:
        do_create_collection(w, ev);
        break;
    case CM_SCN_ACT_DEPLOY:
        do_deploy(w, ev);
        break;
    case CM_SCN_ACT_TAKE_OVER_MP: {
        SimMp *m = sim_world_mp(w, ev->target);
        if (m != NULL) {
            m->compromised = TRUE;
            /* Whoever controls an MP decides what automatic client upgrade
             * installs from it (REQ POL-05). */
            sim_upgrade_take_over(w, m);
        }
        break;
    }
    case CM_SCN_ACT_SET:
        do_set(w, ev);
        break;
    case CM_SCN_ACT_MAINTENANCE:
        do_maintenance(w, ev);
        break;
    case CM_SCN_ACT_LINK_DOWN:
    case CM_SCN_ACT_LINK_UP:
        sim_hierarchy_link(w, ev->target, ev->action == CM_SCN_ACT_LINK_UP);
        break;
    case CM_SCN_ACT_DISTRIBUTE:
        sim_content_distribute(w, ev);
        break;
    case CM_SCN_ACT_FAIL_CP:
    case CM_SCN_ACT_RECOVER_CP:
        sim_cmg_event(w, ev);
        break;
    }
}

gboolean
sim_events_schedule(SimWorld *w, GError **error)
{
    for (guint i = 0; i < w->scn->events->len; i++) {
        CmScnEvent *ev = g_ptr_array_index(w->scn->events, i);
        if ((ev->action == CM_SCN_ACT_UPGRADE_CLIENT || ev->action == CM_SCN_ACT_BLOCK ||
             ev->action == CM_SCN_ACT_UNBLOCK || ev->action == CM_SCN_ACT_APPROVE ||
             ev->action == CM_SCN_ACT_REVOKE) &&
            sim_world_pop(w, ev->target) == NULL) {
            g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                        "[event %s] target: no population \"%s\"", ev->name,
                        ev->target ? ev->target : "");
            return FALSE;
        }
        cm_sim_at(w->engine, ev->at, ev_event, w, i);
    }
    return TRUE;
}
