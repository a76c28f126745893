/* calibrate.c - `cmlab-sim calibrate`: the wall time of the real MP and site
 * calls per endpoint on this machine, over many clients' lifecycles, as a
 * cost file for --costs. */
#include "world.h"

#include "cmsim.h"

typedef struct {
    CmSite *site;
    CmMp *mp;
    char mp_name[CM_NAME_MAX + 1];
    double mp_us[CM_EP__COUNT], site_us[CM_EP__COUNT];
    guint64 mp_n[CM_EP__COUNT], site_n[CM_EP__COUNT];
} Calib;

static gboolean
calib_deliver(void *ctx, const CmAgentSend *send, CmRequest *req, CmResponse *resp, CmTime now)
{
    Calib *c = ctx;
    gint64 t0 = g_get_monotonic_time(), t1;
    CmMpVerdict v;

    if (g_ascii_strcasecmp(send->mp, c->mp_name) != 0)
        return FALSE;
    v = cm_mp_handle(c->mp, req, now, resp);
    t1 = g_get_monotonic_time();
    c->mp_us[req->ep] += (double)(t1 - t0);
    c->mp_n[req->ep]++;
    if (v == CM_MP_FORWARD) {
        cm_site_handle(c->site, req, now, resp);
        c->site_us[req->ep] += (double)(g_get_monotonic_time() - t1);
        c->site_n[req->ep]++;
        cm_mp_forwarded(c->mp, req, resp, now);
    }
    return TRUE;
}

char *
cm_sim_calibrate(int clients, GError **error)
{
    static guint8 master[32] = {3};
    CmTime t0 = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    CmSiteSettings s;
    CmSiteConfig config = {.site_code = "PS1", .db_path = ":memory:", .db_mode = CM_STORE_MEMORY,
                           .top_level = TRUE, .forest = "corp.example", .master_key = master,
                           .settings = &s};
    Calib c = {0};
    CmMpInfo info;
    CmCert *mp_cert = NULL, *tls = NULL;
    CmKey *mp_key = NULL;
    g_autoptr(json_t) siteinfo = NULL, list = NULL;
    g_autofree char *trk = NULL;
    guint8 hash[32] = {0};
    CmDeployment dep = {.name = "Baseline", .content_id = "KB1", .content_hash = hash,
                        .content_size = 1, .required = TRUE};
    SimCosts costs;
    char *out = NULL;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    s.communication = CM_COMM_EHTTP;
    c.site = cm_site_open(&config, t0, error);
    if (c.site == NULL || !cm_site_add_mp(c.site, "mp1.corp.example", FALSE, t0, &info, &mp_cert,
                                          &tls, &mp_key, error))
        goto out;
    g_strlcpy(c.mp_name, info.name, sizeof c.mp_name);
    siteinfo = cm_site_siteinfo_json(c.site);
    list = cm_site_mplist_json(c.site);
    c.mp = cm_mp_new(&(CmMpConfig){.name = info.name, .role_id = info.role_id, .mp_cert = mp_cert,
                                   .siteinfo = siteinfo, .mplist = list},
                     error);
    if (c.mp == NULL)
        goto out;
    g_free(cm_site_admin_deploy(c.site, CM_COLLECTION_ALL_SYSTEMS, &dep, "calibrate", t0, NULL));
    trk = cm_site_export_trk(c.site);
    for (int i = 0; i < clients; i++) {
        CmAgentConfig cfg;
        CmRng rng;
        CmTime now = t0;
        g_autofree char *name = g_strdup_printf("CAL%05d", i);
        CmAgent *agent;
        cm_agent_config_default(&cfg);
        cfg.name = name;
        cfg.smssitecode = "PS1";
        cfg.smspublicrootkey = trk;
        cfg.mp = c.mp_name;
        cfg.tpm_version = 2;
        cm_rng_init_seeded(&rng, 99, (guint64)i);
        agent = cm_agent_new(&cfg, &rng, now, error);
        if (agent == NULL)
            goto out;
        /* a day of life: registration, policy, inventory, a few cycles */
        cm_sim_run_agent(agent, &now, t0 + CM_USEC_PER_DAY, 2000, calib_deliver, &c);
        cm_agent_free(agent);
    }
    sim_costs_default(&costs);
    for (int ep = 1; ep < CM_EP__COUNT; ep++) {
        if (c.mp_n[ep] > 0)
            costs.mp[ep] = MAX(1, (CmTime)(c.mp_us[ep] / (double)c.mp_n[ep]));
        if (c.site_n[ep] > 0)
            costs.site[ep] = MAX(1, (CmTime)(c.site_us[ep] / (double)c.site_n[ep]));
    }
    out = sim_costs_to_keyfile(&costs);
out:
    cm_mp_free(c.mp);
    cm_site_free(c.site);
    cm_cert_unref(mp_cert);
    cm_cert_unref(tls);
    cm_key_unref(mp_key);
    return out;
}
