/* gateway.c - the CMG service instance: client pre-authentication
 * (REQ CMG-02/03/04, CMG-12), URL filtering and content length
 * (REQ CMG-05/06), round-robin over the connection points (REQ CMG-07),
 * connection point authentication (REQ CMG-01) and the TLS floor
 * (REQ CMG-11). */
#include "internal.h"

#include <stdarg.h>
#include <string.h>

typedef struct {
    char code[4];
    CmCert *signing_cert;
} Site;

typedef struct {
    char id[CM_CMG_CONNECTION_ID_LEN + 1];
    char site[4];
    char name[CM_NAME_MAX + 1];
    CmCert *cert;
    guint index; /* registration order, for the counters */
    gboolean connected;
    CmTime last_seen;
} Cp;

struct CmCmg {
    char name[CM_CMG_NAME_MAX + 1];
    guint instance;
    CmTlsVersion tls_min;
    GPtrArray *sites;         /* Site* */
    GPtrArray *roots;         /* CmCert */
    GPtrArray *intermediates; /* CmCert */
    GPtrArray *crls;          /* CmCrl */
    CmCtl *ctl;               /* NULL: every uploaded root */
    gboolean crl_check;
    /* Built lazily from the above; one with the CRLs and checking on, one
     * without, which tells "revoked" from "revocation status unknown". */
    CmTrust *trust_crl, *trust_plain;
    /* Entra ID */
    char *entra_issuer, *entra_audience, *entra_tenant;
    CmKey *entra_key;
    CmCmgMappings *mappings;
    GPtrArray *cps;      /* Cp* */
    guint cps_ever;      /* registrations so far, for Cp.index */
    GHashTable *rr;      /* site code -> next position in cps (GUINT_TO_POINTER) */
    GHashTable *blocked; /* jti -> itself */
    GHashTable *tokens;  /* token as presented -> TokenVerdict*: signatures held */
    CmCmgCounters counters;
};

/* A token whose signature and claims held once.  The same bytes verify
 * the same way against the same key (the sites' and Entra's keys are fixed
 * at cm_cmg_new), so only what depends on the clock or can change later is
 * decided again: the validity window (exp and nbf with CM_JWT_LEEWAY,
 * exactly as cm_jwt_verify) and, for a bulk token, the blocked list. */
typedef struct {
    CmTime not_before; /* nbf - leeway (0: no nbf) */
    CmTime not_after;  /* exp + leeway: refused from then on */
    CmAuthKind kind;
    char principal[CM_NAME_MAX + 1];
    char domain[CM_NAME_MAX + 1];
    char site[4];
    gboolean bulk;
    char jti[CM_CMG_TOKEN_ID_LEN + 1]; /* bulk, lower case */
} TokenVerdict;

/* ------------------------------------------------------------- TLS */

const char *
cm_cmg_tls_name(CmTlsVersion v)
{
    switch (v) {
    case CM_TLS_1_0:
        return "1.0";
    case CM_TLS_1_1:
        return "1.1";
    case CM_TLS_1_2:
        return "1.2";
    case CM_TLS_1_3:
        return "1.3";
    }
    return "unknown";
}

gboolean
cm_cmg_tls_parse(const char *s, CmTlsVersion *out, GError **error)
{
    static const CmTlsVersion all[] = {CM_TLS_1_0, CM_TLS_1_1, CM_TLS_1_2, CM_TLS_1_3};
    const char *v = s;

    if (v != NULL && g_ascii_strncasecmp(v, "TLSv", 4) == 0)
        v += 4;
    for (size_t i = 0; v != NULL && i < G_N_ELEMENTS(all); i++) {
        if (strcmp(v, cm_cmg_tls_name(all[i])) == 0) {
            *out = all[i];
            return TRUE;
        }
    }
    g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                "TLS version must be 1.0, 1.1, 1.2 or 1.3 (optionally as TLSv1.2)");
    return FALSE;
}

gboolean
cm_cmg_tls_check(CmTlsVersion min, GError **error)
{
    if (min >= CM_CMG_TLS_MIN && min <= CM_TLS_1_3)
        return TRUE;
    g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED,
                "the CMG enforces TLS 1.2 as the minimum; a minimum of TLS %s is refused",
                cm_cmg_tls_name(min));
    return FALSE;
}

/* ------------------------------------------------------------ setup */

static void
site_free(Site *s)
{
    cm_cert_unref(s->signing_cert);
    g_free(s);
}

static void
cp_free(Cp *cp)
{
    cm_cert_unref(cp->cert);
    g_free(cp);
}

static void
trust_invalidate(CmCmg *cmg)
{
    g_clear_pointer(&cmg->trust_crl, cm_trust_free);
    g_clear_pointer(&cmg->trust_plain, cm_trust_free);
}

static CmCtl *
ctl_copy(const CmCtl *ctl, GError **error)
{
    g_autofree char *json = cm_ctl_to_json(ctl);

    return cm_ctl_from_json(json, strlen(json), error);
}

static CmTrust *
trust_build(CmCmg *cmg, gboolean with_crl, GError **error)
{
    g_autoptr(CmTrust) t = cm_trust_new();

    for (guint i = 0; i < cmg->roots->len; i++)
        if (!cm_trust_add_root(t, g_ptr_array_index(cmg->roots, i), error))
            return NULL;
    for (guint i = 0; i < cmg->intermediates->len; i++)
        if (!cm_trust_add_intermediate(t, g_ptr_array_index(cmg->intermediates, i), error))
            return NULL;
    if (with_crl) {
        for (guint i = 0; i < cmg->crls->len; i++)
            if (!cm_trust_add_crl(t, g_ptr_array_index(cmg->crls, i), error))
                return NULL;
        cm_trust_set_crl_check(t, TRUE);
    }
    if (cmg->ctl != NULL) {
        CmCtl *copy = ctl_copy(cmg->ctl, error);
        if (copy == NULL)
            return NULL;
        cm_trust_set_ctl(t, copy);
    }
    return g_steal_pointer(&t);
}

static gboolean
trust_ready(CmCmg *cmg, GError **error)
{
    if (cmg->trust_plain == NULL && (cmg->trust_plain = trust_build(cmg, FALSE, error)) == NULL)
        return FALSE;
    if (cmg->crl_check && cmg->trust_crl == NULL &&
        (cmg->trust_crl = trust_build(cmg, TRUE, error)) == NULL)
        return FALSE;
    return TRUE;
}

CmCmg *
cm_cmg_new(const CmCmgConfig *config, GError **error)
{
    g_autoptr(CmCmg) cmg = NULL;
    CmCmgUrl parsed;
    g_autofree char *url = NULL;

    cmg = g_new0(CmCmg, 1);
    cmg->sites = g_ptr_array_new_with_free_func((GDestroyNotify)site_free);
    cmg->roots = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    cmg->intermediates = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    cmg->crls = g_ptr_array_new_with_free_func((GDestroyNotify)cm_crl_unref);
    cmg->cps = g_ptr_array_new_with_free_func((GDestroyNotify)cp_free);
    cmg->rr = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    cmg->blocked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    cmg->tokens = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    url = config->name ? cm_cmgurl_build(config->name, CM_CMG_AUTH_MUTUAL, 1,
                                         CM_CMG_EP_CCM_SYSTEM)
                       : NULL;
    if (url == NULL || !cm_cmgurl_parse(url, &parsed, NULL)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the CMG needs its service name, a DNS name such as cmg.contoso.com");
        return NULL;
    }
    g_strlcpy(cmg->name, parsed.cmg_name, sizeof cmg->name);
    if (config->instance >= CM_CMG_MAX_INSTANCES) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "instance %u: a CMG has at most %d VM instances", config->instance,
                    CM_CMG_MAX_INSTANCES);
        return NULL;
    }
    cmg->instance = config->instance;
    cmg->tls_min = config->tls_min ? config->tls_min : CM_CMG_TLS_MIN;
    if (!cm_cmg_tls_check(cmg->tls_min, error))
        return NULL;
    if (config->n_sites == 0 || config->n_sites > CM_CMG_MAX_SITES || config->sites == NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the CMG serves 1 to %d sites, each with its signing certificate",
                    CM_CMG_MAX_SITES);
        return NULL;
    }
    for (size_t i = 0; i < config->n_sites; i++) {
        Site *s = g_new0(Site, 1);
        g_ptr_array_add(cmg->sites, s);
        if (!cmg_site_code(config->sites[i].site_code, s->code, "CMG site", error))
            return NULL;
        if (config->sites[i].signing_cert == NULL) {
            g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "site %s: the site server signing certificate verifies its tokens",
                        s->code);
            return NULL;
        }
        s->signing_cert = cm_cert_ref((CmCert *)config->sites[i].signing_cert);
    }
    if (config->n_roots > CM_CMG_MAX_ROOTS || config->n_intermediates > CM_CMG_MAX_ROOTS) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "at most %d trusted roots and %d intermediates", CM_CMG_MAX_ROOTS,
                    CM_CMG_MAX_ROOTS);
        return NULL;
    }
    for (size_t i = 0; i < config->n_roots; i++) {
        if (!cm_cert_is_self_signed(config->roots[i])) {
            g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "trusted root \"%s\" is not a self-signed root certificate",
                        cm_cert_subject_cn(config->roots[i]));
            return NULL;
        }
        g_ptr_array_add(cmg->roots, cm_cert_ref((CmCert *)config->roots[i]));
    }
    for (size_t i = 0; i < config->n_intermediates; i++)
        g_ptr_array_add(cmg->intermediates, cm_cert_ref((CmCert *)config->intermediates[i]));
    cmg->crl_check = config->crl_check;
    if (config->entra != NULL) {
        const CmCmgEntra *en = config->entra;
        if (en->issuer == NULL || en->audience == NULL || en->key == NULL) {
            g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "Entra ID tokens need the tenant's issuer, the server app's ID and the "
                        "tenant's signing key");
            return NULL;
        }
        cmg->entra_issuer = g_strdup(en->issuer);
        cmg->entra_audience = g_strdup(en->audience);
        cmg->entra_tenant = g_strdup(en->tenant ? en->tenant : en->issuer);
        cmg->entra_key = cm_key_ref((CmKey *)en->key);
    }
    if (!trust_ready(cmg, error))
        return NULL;
    return g_steal_pointer(&cmg);
}

void
cm_cmg_free(CmCmg *cmg)
{
    if (cmg == NULL)
        return;
    g_ptr_array_unref(cmg->sites);
    g_ptr_array_unref(cmg->roots);
    g_ptr_array_unref(cmg->intermediates);
    g_ptr_array_unref(cmg->crls);
    cm_ctl_free(cmg->ctl);
    trust_invalidate(cmg);
    g_free(cmg->entra_issuer);
    g_free(cmg->entra_audience);
    g_free(cmg->entra_tenant);
    if (cmg->entra_key != NULL)
        cm_key_unref(cmg->entra_key);
    cm_cmg_mappings_unref(cmg->mappings);
    g_ptr_array_unref(cmg->cps);
    g_hash_table_unref(cmg->rr);
    g_hash_table_unref(cmg->blocked);
    g_hash_table_unref(cmg->tokens);
    g_free(cmg);
}

const char *
cm_cmg_name(const CmCmg *cmg)
{
    return cmg->name;
}

guint
cm_cmg_instance(const CmCmg *cmg)
{
    return cmg->instance;
}

CmTlsVersion
cm_cmg_tls_min(const CmCmg *cmg)
{
    return cmg->tls_min;
}

const CmCmgCounters *
cm_cmg_counters(const CmCmg *cmg)
{
    return &cmg->counters;
}

void
cm_cmg_set_mappings(CmCmg *cmg, CmCmgMappings *m)
{
    if (m != NULL)
        cm_cmg_mappings_ref(m);
    cm_cmg_mappings_unref(cmg->mappings);
    cmg->mappings = m;
}

gboolean
cm_cmg_set_ctl(CmCmg *cmg, const CmCtl *ctl, GError **error)
{
    CmCtl *copy = NULL;

    if (ctl != NULL && (copy = ctl_copy(ctl, error)) == NULL)
        return FALSE;
    cm_ctl_free(cmg->ctl);
    cmg->ctl = copy;
    trust_invalidate(cmg);
    return trust_ready(cmg, error);
}

gboolean
cm_cmg_add_crl(CmCmg *cmg, const CmCrl *crl, GError **error)
{
    if (cmg->crls->len >= CM_CMG_MAX_ROOTS * 2) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "too many CRLs; clear them first");
        return FALSE;
    }
    g_ptr_array_add(cmg->crls, cm_crl_ref((CmCrl *)crl));
    trust_invalidate(cmg);
    return trust_ready(cmg, error);
}

void
cm_cmg_clear_crls(CmCmg *cmg)
{
    g_ptr_array_set_size(cmg->crls, 0);
    trust_invalidate(cmg);
}

void
cm_cmg_set_crl_check(CmCmg *cmg, gboolean on)
{
    cmg->crl_check = on;
    trust_invalidate(cmg);
}

void
cm_cmg_block_token(CmCmg *cmg, const char *jti)
{
    if (jti != NULL && strlen(jti) <= CM_CMG_TOKEN_ID_LEN)
        g_hash_table_add(cmg->blocked, g_ascii_strdown(jti, -1));
}

void
cm_cmg_unblock_token(CmCmg *cmg, const char *jti)
{
    g_autofree char *low = jti ? g_ascii_strdown(jti, -1) : NULL;

    if (low != NULL)
        g_hash_table_remove(cmg->blocked, low);
}

/* ------------------------------------------------ connection points */

void
cm_cmg_connection_id_new(CmRng *rng, char out[CM_CMG_CONNECTION_ID_LEN + 1])
{
    char smsid[CM_ID_SMSID_LEN + 1];

    cm_id_smsid_new(rng, smsid);
    g_strlcpy(out, smsid + 5, CM_CMG_CONNECTION_ID_LEN + 1); /* after "GUID:" */
}

gboolean
cm_cmg_connection_id_check(const char *id, GError **error)
{
    char smsid[CM_ID_SMSID_LEN + 2];

    if (id == NULL || strlen(id) != CM_CMG_CONNECTION_ID_LEN) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a connection ID is an upper-case GUID of %d characters",
                    CM_CMG_CONNECTION_ID_LEN);
        return FALSE;
    }
    g_snprintf(smsid, sizeof smsid, "GUID:%s", id);
    if (!cm_id_smsid_check(smsid, NULL)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a connection ID is an upper-case GUID such as "
                    "5A1C2D3E-0000-4000-8000-000000000001");
        return FALSE;
    }
    return TRUE;
}

static Cp *
cp_find(const CmCmg *cmg, const char *id)
{
    for (guint i = 0; id != NULL && i < cmg->cps->len; i++) {
        Cp *cp = g_ptr_array_index(cmg->cps, i);
        if (strcmp(cp->id, id) == 0)
            return cp;
    }
    return NULL;
}

gboolean
cm_cmg_add_connection_point(CmCmg *cmg, const CmCmgCpInfo *info, GError **error)
{
    g_autofree Cp *cp = g_new0(Cp, 1);

    if (!cm_cmg_connection_id_check(info->connection_id, error) ||
        !cmg_site_code(info->site_code, cp->site, "connection point", error))
        return FALSE;
    if (info->cert == NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a connection point authenticates with its certificate: none given");
        return FALSE;
    }
    if (cp_find(cmg, info->connection_id) != NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "connection ID %s is already registered", info->connection_id);
        return FALSE;
    }
    if (cmg->cps->len >= CM_CMG_MAX_CPS) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "at most %d connection points per CMG", CM_CMG_MAX_CPS);
        return FALSE;
    }
    g_strlcpy(cp->id, info->connection_id, sizeof cp->id);
    g_strlcpy(cp->name, info->name ? info->name : "", sizeof cp->name);
    cp->cert = cm_cert_ref((CmCert *)info->cert);
    cp->index = cmg->cps_ever++ % CM_CMG_MAX_CPS;
    g_ptr_array_add(cmg->cps, g_steal_pointer(&cp));
    return TRUE;
}

gboolean
cm_cmg_remove_connection_point(CmCmg *cmg, const char *connection_id)
{
    Cp *cp = cp_find(cmg, connection_id);

    return cp != NULL && g_ptr_array_remove(cmg->cps, cp);
}

/* {"connection_id": "...", "site_code": "PS1"}: exactly these. */
static gboolean
cp_message_parse(const guint8 *body, size_t len, char id[CM_CMG_CONNECTION_ID_LEN + 1],
                 char site[4], GError **error)
{
    g_autoptr(json_t) obj = cm_json_parse(body, len, 1024, error);
    const char *i, *s;

    if (obj == NULL || (i = cm_json_str(obj, "connection_id", CM_CMG_CONNECTION_ID_LEN, error)) == NULL ||
        (s = cm_json_str(obj, "site_code", 3, error)) == NULL)
        return FALSE;
    if (json_object_size(obj) != 2) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "unknown fields; expected connection_id and site_code");
        return FALSE;
    }
    if (!cm_cmg_connection_id_check(i, error) || !cmg_site_code(s, site, "site_code", error))
        return FALSE;
    g_strlcpy(id, i, CM_CMG_CONNECTION_ID_LEN + 1);
    return TRUE;
}

/* The checks a hello and a check share: a well-formed message from the
 * registered certificate of a registered connection ID (REQ CMG-01). */
static Cp *
cp_authenticate(CmCmg *cmg, const CmCert *peer_cert, const guint8 *body, size_t len, CmTime now,
                CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    char id[CM_CMG_CONNECTION_ID_LEN + 1], site[4];
    Cp *cp;

    if (!cp_message_parse(body, len, id, site, &e)) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "connection point message: %s",
                           e->message);
        return NULL;
    }
    cp = cp_find(cmg, id);
    if (cp == NULL || strcmp(cp->site, site) != 0) {
        cm_response_refuse(resp, CM_REASON_UNTRUSTED,
                           "connection ID %s is not registered with this CMG for site %s", id,
                           site);
        return NULL;
    }
    if (peer_cert == NULL ||
        memcmp(cm_cert_thumbprint(peer_cert), cm_cert_thumbprint(cp->cert), 32) != 0) {
        cm_response_refuse(resp, CM_REASON_UNTRUSTED,
                           "connection point %s did not present the certificate registered "
                           "with its connection ID",
                           id);
        return NULL;
    }
    if (!cm_cert_check_time(peer_cert, now, &e)) {
        cm_response_refuse(resp, CM_REASON_CERT_EXPIRED, "connection point %s: %s", id,
                           e->message);
        return NULL;
    }
    return cp;
}

static void
cp_answer(CmCmg *cmg, const Cp *cp, CmResponse *resp)
{
    g_autoptr(json_t) obj = json_pack("{s:s, s:s, s:i, s:i}", "cmg", cmg->name, "connection_id",
                                      cp->id, "instance", (int)cmg->instance, "check_interval_s",
                                      (int)(CM_CMG_CHECK_INTERVAL / CM_USEC_PER_SEC));
    cm_response_ok(resp, obj);
}

gboolean
cm_cmg_cp_hello(CmCmg *cmg, const CmCert *peer_cert, const guint8 *body, size_t len, CmTime now,
                CmResponse *resp)
{
    Cp *cp;

    cm_response_clear(resp);
    cmg->counters.cp_hellos++;
    cp = cp_authenticate(cmg, peer_cert, body, len, now, resp);
    if (cp == NULL) {
        cmg->counters.cp_refused++;
        return FALSE;
    }
    cp->connected = TRUE;
    cp->last_seen = now;
    cp_answer(cmg, cp, resp);
    return TRUE;
}

static gboolean
cp_is_live(const Cp *cp, CmTime now)
{
    return cp->connected && now - cp->last_seen <= CM_CMG_CP_TIMEOUT;
}

gboolean
cm_cmg_cp_check(CmCmg *cmg, const CmCert *peer_cert, const guint8 *body, size_t len, CmTime now,
                CmResponse *resp)
{
    Cp *cp;

    cm_response_clear(resp);
    cmg->counters.cp_checks++;
    cp = cp_authenticate(cmg, peer_cert, body, len, now, resp);
    if (cp == NULL) {
        cmg->counters.cp_refused++;
        return FALSE;
    }
    if (!cp_is_live(cp, now)) {
        cp->connected = FALSE;
        cm_response_refuse(resp, CM_REASON_CONFLICT,
                           "connection point %s has no open connection to instance %u; "
                           "send a hello",
                           cp->id, cmg->instance);
        return FALSE;
    }
    cp->last_seen = now;
    cp_answer(cmg, cp, resp);
    return TRUE;
}

void
cm_cmg_cp_disconnect(CmCmg *cmg, const char *connection_id)
{
    Cp *cp = cp_find(cmg, connection_id);

    if (cp != NULL)
        cp->connected = FALSE;
}

guint
cm_cmg_cp_live(const CmCmg *cmg, const char *site_code, CmTime now)
{
    guint n = 0;

    for (guint i = 0; i < cmg->cps->len; i++) {
        const Cp *cp = g_ptr_array_index(cmg->cps, i);
        if (g_ascii_strcasecmp(cp->site, site_code) == 0 && cp_is_live(cp, now))
            n++;
    }
    return n;
}

/* Round-robin (REQ CMG-07): the next live connection point of the site
 * after the one picked last, in registration order. */
static Cp *
cp_pick(CmCmg *cmg, const char *site, CmTime now)
{
    guint n = cmg->cps->len;
    guint start = GPOINTER_TO_UINT(g_hash_table_lookup(cmg->rr, site));

    for (guint k = 0; k < n; k++) {
        guint i = (start + k) % n;
        Cp *cp = g_ptr_array_index(cmg->cps, i);
        if (strcmp(cp->site, site) == 0 && cp_is_live(cp, now)) {
            g_hash_table_replace(cmg->rr, g_strdup(site), GUINT_TO_POINTER((i + 1) % n));
            return cp;
        }
    }
    return NULL;
}

/* -------------------------------------------------- client requests */

void
cm_cmg_verdict_clear(CmCmgVerdict *v)
{
    cm_response_clear(&v->resp);
    memset(v, 0, sizeof *v);
}

static CmCmgAction
refuse(CmCmg *cmg, CmCmgVerdict *v, CmCmgAction action, CmReason reason, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);

static CmCmgAction
refuse(CmCmg *cmg, CmCmgVerdict *v, CmCmgAction action, CmReason reason, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    cm_response_refuse(&v->resp, reason, "%s", msg);
    v->action = action;
    if (action == CM_CMG_DROP)
        cmg->counters.dropped++;
    else
        cmg->counters.refusals[reason]++;
    return action;
}

/* The client's PKI certificate against the uploaded roots, the CTL and,
 * when on, the CRLs (REQ CMG-02/03/04).  FALSE with v decided. */
static gboolean
auth_cert(CmCmg *cmg, const CmCmgRequest *req, CmTime now, CmCmgVerdict *v)
{
    g_autoptr(GError) e = NULL, plain_e = NULL;
    const CmCert *root = NULL;
    CmReason reason;

    if (!trust_ready(cmg, &e)) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_INTERNAL, "client trust store: %s", e->message);
        return FALSE;
    }
    if (cm_trust_verify(cmg->crl_check ? cmg->trust_crl : cmg->trust_plain, req->client_cert,
                        req->client_chain, now, CM_PURPOSE_CLIENT_AUTH, &root, &e))
        goto ok;
    if (cmg->crl_check && (g_error_matches(e, CM_PROTO_ERROR, CM_PROTO_ERROR_UNTRUSTED) ||
                           g_error_matches(e, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED))) {
        /* The chain may be fine and only its revocation status unknown: no
         * CRL, or a stale one, from the distribution point. */
        if (cm_trust_verify(cmg->trust_plain, req->client_cert, req->client_chain, now,
                            CM_PURPOSE_CLIENT_AUTH, &root, &plain_e)) {
            refuse(cmg, v, CM_CMG_DROP, CM_REASON_UNTRUSTED,
                   "revocation status of \"%s\" unknown (%s); CRL checking is on, so publish "
                   "the CRL where the CMG can reach it or turn the check off",
                   cm_cert_subject_cn(req->client_cert), e->message);
            return FALSE;
        }
        g_clear_error(&e);
        e = g_steal_pointer(&plain_e);
    }
    if (g_error_matches(e, CM_PROTO_ERROR, CM_PROTO_ERROR_REVOKED))
        reason = CM_REASON_REVOKED;
    else if (g_error_matches(e, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED))
        reason = CM_REASON_CERT_EXPIRED;
    else
        reason = CM_REASON_UNTRUSTED; /* no chain, root outside the CTL, wrong purpose */
    refuse(cmg, v, CM_CMG_REFUSE, reason, "client certificate refused: %s", e->message);
    return FALSE;
ok:
    v->peer.kind = CM_AUTH_PKI;
    v->peer.client_cert = req->client_cert;
    g_strlcpy(v->peer.principal, cm_cert_subject_cn(req->client_cert), sizeof v->peer.principal);
    g_strlcpy(v->peer.domain, cm_cert_subject_cn(root), sizeof v->peer.domain);
    return TRUE;
}

static const Site *
site_find(const CmCmg *cmg, const char *code)
{
    for (guint i = 0; code != NULL && i < cmg->sites->len; i++) {
        const Site *s = g_ptr_array_index(cmg->sites, i);
        if (g_ascii_strcasecmp(s->code, code) == 0)
            return s;
    }
    return NULL;
}

typedef struct {
    gboolean bulk;
    char site[4]; /* site tokens */
} TokenInfo;

/* A site token's own claims, once its signature held. */
static gboolean
site_token_claims(CmCmg *cmg, const Site *site, const json_t *claims, CmCmgVerdict *v,
                  TokenInfo *ti)
{
    g_autoptr(GError) e = NULL;
    const char *kind = cm_json_str(claims, "kind", 16, &e);
    const char *sub, *jti;
    gint64 iat, exp;

    if (kind == NULL) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED, "site token: %s", e->message);
        return FALSE;
    }
    g_strlcpy(ti->site, site->code, sizeof ti->site);
    v->peer.kind = CM_AUTH_TOKEN;
    g_strlcpy(v->peer.domain, site->code, sizeof v->peer.domain);
    if (strcmp(kind, "client") == 0) {
        sub = cm_json_str(claims, "sub", CM_ID_SMSID_LEN, &e);
        if (sub == NULL || !cm_id_smsid_check(sub, &e)) {
            refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED,
                   "client token does not name a device: %s", e->message);
            return FALSE;
        }
        g_strlcpy(v->peer.principal, sub, sizeof v->peer.principal);
        return TRUE;
    }
    if (strcmp(kind, "bulk") != 0) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED,
               "site token of kind \"%s\": the CMG takes client and bulk registration tokens",
               kind);
        return FALSE;
    }
    jti = cm_json_str(claims, "jti", CM_CMG_TOKEN_ID_LEN, &e);
    if (jti == NULL || !cm_json_int(claims, "iat", 0, G_MAXINT64 / CM_USEC_PER_SEC, &iat, &e) ||
        !cm_json_int(claims, "exp", 0, G_MAXINT64 / CM_USEC_PER_SEC, &exp, &e)) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED, "bulk registration token: %s",
               e->message);
        return FALSE;
    }
    /* The issuing rule, checked again here: a token signed for longer than
     * the product allows is refused whoever signed it. */
    if (exp - iat > CM_CMG_BULK_LIFETIME_MAX / CM_USEC_PER_SEC) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED,
               "bulk registration token %s lives longer than 7 days", jti);
        return FALSE;
    }
    {
        g_autofree char *low = g_ascii_strdown(jti, -1);
        if (g_hash_table_contains(cmg->blocked, low)) {
            refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_BLOCKED,
                   "bulk registration token %s is blocked", low);
            return FALSE;
        }
        g_snprintf(v->peer.principal, sizeof v->peer.principal, "bulk:%s", low);
    }
    ti->bulk = TRUE;
    return TRUE;
}

/* Remembers a token whose signature and claims held (a bounded cache:
 * when full, what expired goes, and if nothing did, everything; a flood of
 * distinct tokens then costs what it cost without the cache). */
static void
token_remember(CmCmg *cmg, const char *token, const json_t *claims, const CmCmgVerdict *v,
               const TokenInfo *ti, CmTime now)
{
    TokenVerdict *tv;
    gint64 exp = 0, nbf = 0;
    const json_t *j;

    if (strlen(token) > CM_CMG_TOKEN_CACHE_TOKEN_MAX)
        return;
    /* cm_jwt_verify held, so exp is an integer in range; nbf when present. */
    if (!json_is_integer((j = json_object_get(claims, "exp"))))
        return;
    exp = json_integer_value(j);
    if (json_is_integer((j = json_object_get(claims, "nbf"))))
        nbf = json_integer_value(j);
    if (g_hash_table_size(cmg->tokens) >= CM_CMG_TOKEN_CACHE_MAX) {
        GHashTableIter it;
        gpointer val;
        g_hash_table_iter_init(&it, cmg->tokens);
        while (g_hash_table_iter_next(&it, NULL, &val))
            if (((TokenVerdict *)val)->not_after <= now)
                g_hash_table_iter_remove(&it);
        if (g_hash_table_size(cmg->tokens) >= CM_CMG_TOKEN_CACHE_MAX)
            g_hash_table_remove_all(cmg->tokens);
    }
    tv = g_new0(TokenVerdict, 1);
    tv->not_after = exp * CM_USEC_PER_SEC + CM_JWT_LEEWAY;
    tv->not_before = nbf > 0 ? nbf * CM_USEC_PER_SEC - CM_JWT_LEEWAY : 0;
    tv->kind = v->peer.kind;
    g_strlcpy(tv->principal, v->peer.principal, sizeof tv->principal);
    g_strlcpy(tv->domain, v->peer.domain, sizeof tv->domain);
    g_strlcpy(tv->site, ti->site, sizeof tv->site);
    tv->bulk = ti->bulk;
    if (ti->bulk && g_str_has_prefix(v->peer.principal, "bulk:"))
        g_strlcpy(tv->jti, v->peer.principal + 5, sizeof tv->jti);
    g_hash_table_replace(cmg->tokens, g_strdup(token), tv);
}

/* The verdict on a token seen before: TRUE with v and ti filled, or
 * refused (blocked); FALSE and *hit unset when it must be verified. */
static gboolean
token_recall(CmCmg *cmg, const CmCmgRequest *req, CmTime now, CmCmgVerdict *v, TokenInfo *ti,
             gboolean *hit)
{
    TokenVerdict *tv = g_hash_table_lookup(cmg->tokens, req->token);

    *hit = FALSE;
    if (tv == NULL)
        return FALSE;
    if (now >= tv->not_after || now < tv->not_before) {
        /* Outside its window: verified again, which refuses it with the
         * reason cm_jwt_verify gives. */
        g_hash_table_remove(cmg->tokens, req->token);
        return FALSE;
    }
    *hit = TRUE;
    cmg->counters.token_cache_hits++;
    if (tv->bulk && g_hash_table_contains(cmg->blocked, tv->jti)) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_BLOCKED, "bulk registration token %s is blocked",
               tv->jti);
        return FALSE;
    }
    v->peer.kind = tv->kind;
    v->peer.token = req->token;
    g_strlcpy(v->peer.principal, tv->principal, sizeof v->peer.principal);
    g_strlcpy(v->peer.domain, tv->domain, sizeof v->peer.domain);
    g_strlcpy(ti->site, tv->site, sizeof ti->site);
    ti->bulk = tv->bulk;
    return TRUE;
}

/* A token: the site's (client or bulk registration), found by its kid, or
 * an Entra ID device token (REQ CMG-02, CMG-12).  A token verified before
 * is recalled instead of verified again (token_recall). */
static gboolean
auth_token(CmCmg *cmg, const CmCmgRequest *req, CmTime now, CmCmgVerdict *v, TokenInfo *ti)
{
    g_autoptr(GError) e = NULL;
    g_autofree char *kid = NULL;
    g_autoptr(json_t) claims = NULL;
    const Site *site;
    const char *sub;
    gboolean hit;

    if (token_recall(cmg, req, now, v, ti, &hit))
        return TRUE;
    if (hit)
        return FALSE; /* refused */
    cmg->counters.token_verifications++;
    kid = cm_jwt_peek_kid(req->token, &e);
    site = site_find(cmg, kid);
    if (e != NULL) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED, "token refused: %s", e->message);
        return FALSE;
    }
    if (site != NULL) {
        CmJwtCheck c = {.issuer = site->code, .audience = CMG_TOKEN_AUDIENCE, .now = now};
        claims = cm_jwt_verify(req->token, cm_cert_public_key(site->signing_cert), &c, &e);
        if (claims == NULL) {
            refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED, "site %s token refused: %s",
                   site->code, e->message);
            return FALSE;
        }
        v->peer.token = req->token;
        if (!site_token_claims(cmg, site, claims, v, ti))
            return FALSE;
        token_remember(cmg, req->token, claims, v, ti, now);
        return TRUE;
    }
    if (cmg->entra_key == NULL) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED,
               "token not signed by a site this CMG serves, and no Entra ID tenant is set");
        return FALSE;
    }
    {
        CmJwtCheck c = {.issuer = cmg->entra_issuer, .audience = cmg->entra_audience, .now = now};
        claims = cm_jwt_verify(req->token, cmg->entra_key, &c, &e);
    }
    if (claims == NULL || (sub = cm_json_str(claims, "sub", CM_NAME_MAX, &e)) == NULL ||
        *sub == '\0') {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED, "Entra ID device token refused: %s",
               e ? e->message : "no device in \"sub\"");
        return FALSE;
    }
    v->peer.kind = CM_AUTH_ENTRA;
    v->peer.token = req->token;
    g_strlcpy(v->peer.principal, sub, sizeof v->peer.principal);
    g_strlcpy(v->peer.domain, cmg->entra_tenant, sizeof v->peer.domain);
    token_remember(cmg, req->token, claims, v, ti, now);
    return TRUE;
}

/* What a bulk registration token opens: the anonymous MP endpoints and
 * registration, nothing that needs a registered client. */
static gboolean
bulk_scope(CmEndpoint ep)
{
    return cm_ep_is_anonymous(ep) || ep == CM_EP_REGISTER || ep == CM_EP_REGISTER_STATUS;
}

CmCmgAction
cm_cmg_handle(CmCmg *cmg, const CmCmgRequest *req, CmTime now, CmCmgVerdict *v)
{
    g_autoptr(GError) url_e = NULL;
    CmTlsVersion tls = req->tls ? req->tls : CM_TLS_1_2;
    TokenInfo ti = {0};
    CmCmgUrl url;
    gboolean url_ok, want_cert;
    const CmCmgMapping *map;
    CmEndpoint ep;
    Cp *cp;

    cm_cmg_verdict_clear(v);
    cmg->counters.requests++;
    /* The handshake enforces the floor; a driver that let an older
     * version through still gets nothing forwarded (REQ CMG-11). */
    if (tls < cmg->tls_min)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_FORBIDDEN,
                      "TLS %s is below this CMG's minimum, TLS %s", cm_cmg_tls_name(tls),
                      cm_cmg_tls_name(cmg->tls_min));

    /* Pre-authentication comes before anything about the URL is said: an
     * unauthenticated client learns nothing of the mappings. */
    url_ok = cm_cmgurl_parse(req->path, &url, &url_e);
    want_cert = url_ok ? url.auth == CM_CMG_AUTH_MUTUAL : req->client_cert != NULL;
    if (want_cert) {
        if (req->client_cert == NULL)
            return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED,
                          "CCM_Proxy_MutualAuth needs a PKI client authentication certificate "
                          "in TLS");
        if (!auth_cert(cmg, req, now, v))
            return v->action;
    } else {
        if (req->token == NULL || *req->token == '\0')
            return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNTRUSTED,
                          "CCM_Proxy_ServerAuth needs a token: an Entra ID device token, the "
                          "client token the site issued, or a bulk registration token");
        if (!auth_token(cmg, req, now, v, &ti))
            return v->action;
    }

    /* URL filtering against the published mappings (REQ CMG-05). */
    if (!url_ok)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNKNOWN_ENDPOINT,
                      "not a published URL mapping: %s", url_e->message);
    if (url.cmg_name[0] != '\0' && strcmp(url.cmg_name, cmg->name) != 0)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNKNOWN_ENDPOINT,
                      "this CMG is %s, not %s", cmg->name, url.cmg_name);
    map = cmg->mappings ? cm_cmg_mappings_find(cmg->mappings, url.role_id, url.endpoint) : NULL;
    if (map == NULL)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNKNOWN_ENDPOINT,
                      "no URL mapping publishes %s of management point %" G_GUINT64_FORMAT,
                      cm_cmgurl_endpoint_name(url.endpoint), url.role_id);
    ep = cm_cmg_url_endpoint(&url, req->query);
    if (ep == CM_EP_NONE)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_UNKNOWN_ENDPOINT,
                      "%s%s%s is under a published mapping but names no management point "
                      "endpoint",
                      req->path, req->query && *req->query ? "?" : "",
                      req->query ? req->query : "");
    /* Content length per published endpoint (REQ CMG-06). */
    if (req->content_length > map->max_body)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_TOO_LARGE,
                      "body of %zu bytes is over the %zu bytes %s of MP %" G_GUINT64_FORMAT
                      " accepts",
                      req->content_length, map->max_body, cm_cmgurl_endpoint_name(map->endpoint),
                      map->role_id);

    /* What a token may reach. */
    if (ti.site[0] != '\0' && strcmp(ti.site, map->site_code) != 0)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_FORBIDDEN,
                      "a token of site %s does not reach management points of site %s", ti.site,
                      map->site_code);
    if (ti.bulk && !bulk_scope(ep))
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_FORBIDDEN,
                      "a bulk registration token only registers a device; %s needs the client "
                      "token the site issues at registration",
                      cm_ep_name(ep));
    if (v->peer.kind == CM_AUTH_TOKEN && !ti.bulk && req->smsid != NULL && *req->smsid != '\0' &&
        strcmp(req->smsid, v->peer.principal) != 0)
        return refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_FORBIDDEN,
                      "the client token was issued to %s, not to %s", v->peer.principal,
                      req->smsid);

    /* A connection point of the MP's site, round-robin (REQ CMG-07). */
    cp = cp_pick(cmg, map->site_code, now);
    if (cp == NULL) {
        refuse(cmg, v, CM_CMG_REFUSE, CM_REASON_BUSY,
               "no connection point of site %s is connected to CMG instance %u", map->site_code,
               cmg->instance);
        v->resp.retry_after = CM_CMG_CHECK_INTERVAL;
        return v->action;
    }
    v->action = CM_CMG_FORWARD;
    g_strlcpy(v->connection_id, cp->id, sizeof v->connection_id);
    g_strlcpy(v->site_code, map->site_code, sizeof v->site_code);
    v->role_id = map->role_id;
    v->cmg_endpoint = map->endpoint;
    v->ep = ep;
    cmg->counters.forwarded++;
    cmg->counters.by_auth[v->peer.kind]++;
    cmg->counters.per_cp_forwarded[cp->index]++;
    if (ti.bulk && ep == CM_EP_REGISTER)
        cmg->counters.bulk_registrations++;
    return CM_CMG_FORWARD;
}
