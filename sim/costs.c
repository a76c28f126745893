/* costs.c - what each request costs a server, in virtual time.
 *
 * The defaults were measured by `cmlab-sim calibrate` on the reference
 * machine (docs/benchmarks.md): the wall time of the real cm_mp_handle and
 * cm_site_handle calls per endpoint, averaged over a few hundred clients'
 * lifecycles.  They are compiled in so that a scenario gives the same report
 * on every machine; `calibrate` writes a cost file for this machine, which
 * `--costs FILE` uses instead, and a scenario's [costs] group overrides
 * single entries (to model a slower product site, say). */
#include "world.h"

#include <string.h>

#include "cmsim.h"

void
sim_costs_default(SimCosts *c)
{
    memset(c, 0, sizeof *c);
    /* MP: anonymous answers are cheap; the rest is transport checks and
     * forwarding (the site does the work). */
    for (int ep = 1; ep < CM_EP__COUNT; ep++)
        c->mp[ep] = 15;
    c->mp[CM_EP_LOCATION] = 20;
    c->mp[CM_EP_MPCERT] = 15;
    c->mp[CM_EP_SITEINFO] = 25;
    c->mp[CM_EP_STATUS] = 20;
    /* site: measured on the reference machine (P-256, SQLite in memory) */
    c->site[CM_EP_REGISTER] = 390;
    c->site[CM_EP_REGISTER_STATUS] = 110;
    c->site[CM_EP_POLICY_ASSIGNMENTS] = 70;
    c->site[CM_EP_POLICY_BODY] = 70;
    c->site[CM_EP_INVENTORY] = 180;
    c->site[CM_EP_DISCOVERY] = 160;
    c->site[CM_EP_STATE] = 80;
    c->site[CM_EP_CLIENT_STATUS] = 150;
    c->site[CM_EP_NOTIFY] = 60;
    c->site[CM_EP_STATUS] = 40;
    c->site_refusal = 60;
    c->mp_refusal = 10;
    /* CMG (sim/cmg.c): cm_cmg_handle verifies the client's certificate
     * chain (a P-256 verify) or its token (a JWT verify the first time,
     * then the gateway's cache), filters the URL and picks the connection
     * point; with CRL checking a PKI client's certificate is also looked
     * up in the CRL, whose signature is verified.  Measured on the
     * reference machine over the cmg-crl and cmg-round-robin scenarios at
     * full size (P-256): 60-85 us for PKI, 6 us for tokens (mostly cache
     * hits), 160 us for PKI with the CRL check.  The connection point's
     * cm_cmgcp_route takes about 1 us; the rest of cp.forward is relaying
     * the request, taken as the MP's relay (15 us). */
    c->cmg_pki = 75;
    c->cmg_token = 10;
    c->cmg_crl = 90;
    c->cp_forward = 15;
}

static gboolean
cost_slot(SimCosts *c, const char *key, CmTime **slot, GError **error)
{
    const char *dot = strchr(key, '.');
    CmEndpoint ep;

    {
        static const char *const names[] = {"cmg.pki", "cmg.token", "cmg.crl", "cp.forward"};
        CmTime *slots[] = {&c->cmg_pki, &c->cmg_token, &c->cmg_crl, &c->cp_forward};
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
            if (strcmp(key, names[i]) == 0) {
                *slot = slots[i];
                return TRUE;
            }
        }
    }
    if (dot != NULL && strcmp(dot + 1, "refusal") == 0) {
        if (strncmp(key, "site.", 5) == 0)
            *slot = &c->site_refusal;
        else if (strncmp(key, "mp.", 3) == 0)
            *slot = &c->mp_refusal;
        else
            goto bad;
        return TRUE;
    }
    if (dot == NULL || (ep = cm_ep_from_name(dot + 1)) == CM_EP_NONE)
        goto bad;
    if (strncmp(key, "site.", 5) == 0)
        *slot = &c->site[ep];
    else if (strncmp(key, "mp.", 3) == 0)
        *slot = &c->mp[ep];
    else
        goto bad;
    return TRUE;
bad:
    g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                "cost \"%s\": expected site.<endpoint>, mp.<endpoint>, site.refusal, "
                "mp.refusal, cmg.pki, cmg.token, cmg.crl or cp.forward",
                key);
    return FALSE;
}

gboolean
sim_costs_apply(SimCosts *c, GHashTable *overrides, GError **error)
{
    GHashTableIter it;
    gpointer k, v;

    if (overrides == NULL)
        return TRUE;
    g_hash_table_iter_init(&it, overrides);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        CmTime *slot;
        if (!cost_slot(c, k, &slot, error))
            return FALSE;
        *slot = *(CmTime *)v;
    }
    return TRUE;
}

gboolean
sim_costs_load(SimCosts *c, const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) keys = NULL;

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, error))
        return FALSE;
    keys = g_key_file_get_keys(kf, "costs", NULL, error);
    if (keys == NULL) {
        g_prefix_error(error, "%s: ", path);
        return FALSE;
    }
    for (gsize i = 0; keys[i] != NULL; i++) {
        g_autofree char *v = g_key_file_get_string(kf, "costs", keys[i], NULL);
        CmTime *slot, t;
        if (!cost_slot(c, keys[i], &slot, error) || !cm_scn_parse_duration(v, &t, error)) {
            g_prefix_error(error, "%s: [costs] %s: ", path, keys[i]);
            return FALSE;
        }
        *slot = t;
    }
    return TRUE;
}

char *
sim_costs_to_keyfile(const SimCosts *c)
{
    GString *s = g_string_new("# cmlab-sim calibrate: service costs measured on this machine\n"
                              "# (use with cmlab-sim --costs FILE)\n[costs]\n");

    for (int ep = 1; ep < CM_EP__COUNT; ep++)
        g_string_append_printf(s, "mp.%s = %" G_GINT64_FORMAT "us\n", cm_ep_name(ep), c->mp[ep]);
    g_string_append_printf(s, "mp.refusal = %" G_GINT64_FORMAT "us\n", c->mp_refusal);
    for (int ep = 1; ep < CM_EP__COUNT; ep++)
        if (!cm_ep_is_anonymous(ep) || ep == CM_EP_STATUS)
            g_string_append_printf(s, "site.%s = %" G_GINT64_FORMAT "us\n", cm_ep_name(ep),
                                   c->site[ep]);
    g_string_append_printf(s, "site.refusal = %" G_GINT64_FORMAT "us\n", c->site_refusal);
    g_string_append_printf(s, "cmg.pki = %" G_GINT64_FORMAT "us\n", c->cmg_pki);
    g_string_append_printf(s, "cmg.token = %" G_GINT64_FORMAT "us\n", c->cmg_token);
    g_string_append_printf(s, "cmg.crl = %" G_GINT64_FORMAT "us\n", c->cmg_crl);
    g_string_append_printf(s, "cp.forward = %" G_GINT64_FORMAT "us\n", c->cp_forward);
    return g_string_free(s, FALSE);
}
