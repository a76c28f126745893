/* agent.c - the client agent's state machine (docs/protocol.md).
 *
 *   start --(start window)--> LOCATING: location to a candidate MP (NET-01)
 *     --> TRUSTING: mpcert (checked with the TRK, TRUST-03), siteinfo (TRK on
 *         first use TRUST-04, signing cert TRUST-09, encryption cert, settings)
 *     --> REGISTERING: register, signed with the new key (REG-02)
 *     --> PENDING: regstatus polls until approved
 *     --> ACTIVE: policyassignments every policy_interval, policybody for
 *         what is new (POL-03), inventory and discovery every
 *         inventory_interval (MSG-02 when the site encrypts); required
 *         deployments installed in maintenance windows (POL-04) and, with
 *         automatic client upgrade, clientpackage every upgrade_interval
 *         (POL-05): both in software.c.  State messages for accepted
 *         policies and installs, status messages (unauthenticated, MSG-03)
 *         for refused policies and installs, encrypted client status
 *         self-checks every client_status_interval (DATA-02), and the
 *         client notification channel: opened with notify, then a
 *         keep-alive every keepalive_interval (REG-05).
 *     --> BLOCKED: silent, except for keep-alives on a channel it opened
 *         before, which the MP answers alone, until it disconnects.
 *
 * One request is in flight at a time; its id is remembered and any other
 * id (a late or duplicated answer) is ignored.  The agent has one timer:
 * the step to run when it fires (a retry, the next cycle) or the deadline
 * of the request in flight.  Every exit reports the timer in wake_at.
 *
 * Failures: a transport failure, a 5xx or a malformed answer retries the
 * same step after exponential backoff with full jitter (internal.h); three
 * in a row with one MP move on to the next MP of the list, then to the next
 * candidate, then, after a backoff, the whole service location starts over.
 * 503 honours Retry-After.  Each refusal reason has its own handling in
 * signed_failure(). */
#include "internal.h"

#include <string.h>

/* ------------------------------------------------------------ actions */

static void
send_free(CmAgentSend *s)
{
    if (s == NULL)
        return;
    g_clear_pointer(&s->body, g_bytes_unref);
    g_free(s);
}

void
cm_agent_actions_init(CmAgentActions *a)
{
    a->sends = g_ptr_array_new_with_free_func((GDestroyNotify)send_free);
    a->wake_at = 0;
}

void
cm_agent_actions_clear(CmAgentActions *a)
{
    g_clear_pointer(&a->sends, g_ptr_array_unref);
    a->wake_at = 0;
}

void
cm_agent_send_request(const CmAgentSend *send, CmRequest *req)
{
    gsize len = 0;

    memset(req, 0, sizeof *req);
    req->ep = send->ep;
    req->transport = send->transport;
    g_strlcpy(req->smsid, send->smsid, sizeof req->smsid);
    req->signed_ = send->signed_;
    req->sig_hash = send->sig_hash;
    req->sig_len = MIN(send->sig_len, sizeof req->sig);
    memcpy(req->sig, send->sig, req->sig_len);
    req->body = send->body ? g_bytes_get_data(send->body, &len) : NULL;
    req->body_len = len;
    /* peer stays anonymous: it is what the driver's transport verified. */
}

/* ------------------------------------------------------------ helpers */

static void run_step(CmAgent *agent, CmTime now, CmAgentActions *out);

static void
finish(CmAgent *agent, CmAgentActions *out)
{
    out->wake_at = agent->wake_at;
}

static CmAgentState
state_of(AgentStep step, CmAgentState current)
{
    switch (step) {
    case STEP_LOCATE:
        return CM_AGENT_LOCATING;
    case STEP_MPCERT:
    case STEP_SITEINFO:
        return CM_AGENT_TRUSTING;
    case STEP_REGISTER:
        return CM_AGENT_REGISTERING;
    case STEP_REGSTATUS:
        return CM_AGENT_PENDING;
    case STEP_ACTIVE:
        return CM_AGENT_ACTIVE;
    case STEP_START:
    case STEP_NONE:
    default:
        return current;
    }
}

/* Runs step at time at (now or later). */
static void
later(CmAgent *agent, AgentStep step, CmTime at)
{
    agent->step = step;
    agent->wake_at = at;
    agent->st.state = state_of(step, agent->st.state);
}

static void
go(CmAgent *agent, AgentStep step, CmTime now, CmAgentActions *out)
{
    later(agent, step, now);
    run_step(agent, now, out);
}

static CmTime
backoff_delay(CmAgent *agent, int attempt)
{
    CmTime bound = agent->prof->retry_base, cap = agent->prof->retry_cap;

    for (int i = 1; i < attempt && bound < cap; i++)
        bound *= 2;
    bound = MIN(bound, cap);
    return AGENT_BACKOFF_FLOOR + (CmTime)cm_rng_below(&agent->rng, (guint64)bound);
}

/* One more consecutive failure: the delay before the next try. */
static CmTime
backoff(CmAgent *agent)
{
    agent->fail_count = MIN(agent->fail_count + 1, 64);
    agent->st.retries++;
    return backoff_delay(agent, agent->fail_count);
}

static void
succeeded(CmAgent *agent)
{
    agent->fail_count = 0;
    agent->mp_failures = 0;
}

static AgentMp *
current_mp(CmAgent *agent)
{
    return agent->mp_idx < agent->n_mps ? &agent->mps[agent->mp_idx] : NULL;
}

/* The client notification channel ends (REQ REG-05): the connection to
 * the MP is gone.  An active client opens a new one at its next step; a
 * blocked one does not try (the site refuses it). */
static void
channel_disconnect(CmAgent *agent, const char *why)
{
    if (!agent->st.channel_open)
        return;
    g_debug("%s: notification channel to %s closed: %s", agent->st.smsid, agent->st.channel_mp,
            why);
    agent->st.channel_open = FALSE;
    agent->keepalive_due = 0;
}

/* When the open channel reaches the end of its lifetime; 0: never. */
static CmTime
channel_end(const CmAgent *agent)
{
    return agent->st.channel_open && agent->prof->channel_lifetime > 0
               ? agent->channel_opened_at + agent->prof->channel_lifetime
               : 0;
}

/* Disconnects a channel whose lifetime is over. */
static void
channel_expire(CmAgent *agent, CmTime now)
{
    CmTime end = channel_end(agent);

    if (end > 0 && now >= end)
        channel_disconnect(agent, "its lifetime is over");
}

/* Sends body (borrowed) to mp; signs every request that is not anonymous
 * over its exact bytes (REQ REG-02, MSG-01). */
static void
send_request(CmAgent *agent, CmEndpoint ep, const char *mp, CmTransport transport, json_t *body,
             CmTime now, CmAgentActions *out)
{
    char *text = cm_json_dump(body);
    size_t len = strlen(text);
    CmAgentSend *s = g_new0(CmAgentSend, 1);

    s->id = ++agent->next_id;
    g_strlcpy(s->mp, mp, sizeof s->mp);
    s->transport = transport;
    s->ep = ep;
    s->use_pki = transport == CM_TRANSPORT_HTTPS && agent_have_pki(agent);
    s->body = g_bytes_new_take(text, len);
    if (!cm_ep_is_anonymous(ep)) {
        GError *err = NULL;
        g_autoptr(GBytes) sig = cm_sig_sign(agent->key, agent->prof->sign_hash, text, len, &err);
        if (sig == NULL || g_bytes_get_size(sig) > sizeof s->sig) {
            /* A key the provider cannot use is not something a retry now
             * fixes; back off like any other failure. */
            g_info("%s: cannot sign %s: %s", agent->st.smsid, cm_ep_name(ep),
                   err ? err->message : "signature too long");
            g_clear_error(&err);
            send_free(s);
            later(agent, agent->step, now + backoff(agent));
            return;
        }
        g_strlcpy(s->smsid, agent->st.smsid, sizeof s->smsid);
        s->signed_ = TRUE;
        s->sig_hash = agent->prof->sign_hash;
        s->sig_len = g_bytes_get_size(sig);
        memcpy(s->sig, g_bytes_get_data(sig, NULL), s->sig_len);
    }
    g_ptr_array_add(out->sends, s);
    agent->inflight_id = s->id;
    agent->inflight_ep = ep;
    agent->wake_at = now + AGENT_REQUEST_TIMEOUT;
}

static json_t *
smsid_body(CmAgent *agent)
{
    json_t *o = json_object();
    json_object_set_new(o, "smsid", json_string(agent->st.smsid));
    return o;
}

static void
send_to_mp(CmAgent *agent, CmEndpoint ep, json_t *body, CmTime now, CmAgentActions *out)
{
    AgentMp *m = current_mp(agent);

    g_return_if_fail(m != NULL);
    send_request(agent, ep, m->name, m->transport, body, now, out);
}

/* The reason of a refusal, whatever the driver filled in: the reason, else
 * the body's "reason", else the HTTP status. */
static CmReason
reason_of(const CmResponse *resp)
{
    g_autoptr(json_t) body = NULL;
    const char *name;

    if (resp->reason != CM_REASON_OK)
        return resp->reason < CM_REASON__COUNT ? resp->reason : CM_REASON_INTERNAL;
    if (resp->status == 200)
        return CM_REASON_OK;
    if (resp->body != NULL) {
        gsize len;
        const void *data = g_bytes_get_data(resp->body, &len);
        body = cm_json_parse(data, len, AGENT_RESPONSE_MAX, NULL);
    }
    name = body ? cm_json_opt_str(body, "reason", 64, NULL) : NULL;
    for (int r = 1; name != NULL && r < CM_REASON__COUNT; r++)
        if (strcmp(name, cm_reason_name((CmReason)r)) == 0)
            return (CmReason)r;
    if (resp->status == 503)
        return CM_REASON_BUSY;
    /* Anything else we cannot name is handled as a server fault. */
    return CM_REASON_INTERNAL;
}

/* The JSON of a 200 answer, or NULL (with the reason logged). */
static json_t *
ok_body(CmAgent *agent, const CmResponse *resp)
{
    GError *err = NULL;
    json_t *obj;
    gsize len = 0;
    const void *data;

    if (resp->body == NULL) {
        g_info("%s: %s answered 200 without a body", agent->st.smsid, agent->st.mp);
        return NULL;
    }
    data = g_bytes_get_data(resp->body, &len);
    obj = cm_json_parse(data, len, AGENT_RESPONSE_MAX, &err);
    if (obj == NULL) {
        g_info("%s: malformed answer from %s: %s", agent->st.smsid, agent->st.mp, err->message);
        g_error_free(err);
    }
    return obj;
}

static CmTime
retry_after_of(const CmResponse *resp)
{
    CmTime ra = resp->retry_after;

    if (ra <= 0 && resp->body != NULL) {
        gsize len;
        const void *data = g_bytes_get_data(resp->body, &len);
        g_autoptr(json_t) body = cm_json_parse(data, len, AGENT_RESPONSE_MAX, NULL);
        gint64 s;
        if (body != NULL && json_object_get(body, "retry_after_s") != NULL &&
            cm_json_int(body, "retry_after_s", 0, G_MAXINT32, &s, NULL))
            ra = s * CM_USEC_PER_SEC;
    }
    return MIN(ra, AGENT_RETRY_AFTER_MAX);
}

/* 503: come back after Retry-After (plus up to 10 %), or back off when the
 * server did not say. */
static void
retry_busy(CmAgent *agent, const CmResponse *resp, AgentStep step, CmTime now)
{
    CmTime ra = retry_after_of(resp);

    if (ra > 0) {
        agent->st.retries++;
        later(agent, step, now + ra + (CmTime)cm_rng_below(&agent->rng, (guint64)(ra / 10 + 1)));
    } else {
        later(agent, step, now + backoff(agent));
    }
}

/* ------------------------------------------------------------ location */

static const CmTransport loc_pki[] = {CM_TRANSPORT_HTTPS, CM_TRANSPORT_EHTTP, CM_TRANSPORT_HTTP};
static const CmTransport loc_plain[] = {CM_TRANSPORT_HTTP, CM_TRANSPORT_EHTTP};

static guint
loc_transport_count(const CmAgent *agent)
{
    return agent_have_pki(agent) ? G_N_ELEMENTS(loc_pki) : G_N_ELEMENTS(loc_plain);
}

static CmTransport
loc_transport(const CmAgent *agent, guint i)
{
    return agent_have_pki(agent) ? loc_pki[i] : loc_plain[i];
}

/* Every candidate tried: start over after a backoff.  FAILED when an MP
 * was refused for trust in this round (REQ TRUST-03), else still locating
 * (the MPs were only unreachable). */
static void
locate_exhausted(CmAgent *agent, CmTime now)
{
    agent->cand_idx = 0;
    agent->loc_tr_idx = 0;
    agent_mps_clear(agent);
    agent->mp_idx = 0;
    if (agent->n_candidates == 0) {
        /* No assigned MP, no directory, no DNS: nothing a retry can find. */
        g_info("%s: no management point to locate (no /mp, directory or DNS publishing)",
               agent->st.smsid);
        later(agent, STEP_NONE, 0);
        agent->st.state = CM_AGENT_FAILED;
        return;
    }
    later(agent, STEP_LOCATE, now + backoff(agent));
    agent->st.state = agent->round_refused ? CM_AGENT_FAILED : CM_AGENT_LOCATING;
    agent->round_refused = FALSE;
}

static void
send_location(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = json_object();
    const char *cand;

    if (agent->cand_idx >= agent->n_candidates) {
        locate_exhausted(agent, now);
        return;
    }
    cand = agent->candidates[agent->cand_idx];
    if (agent->site_code[0] != '\0')
        json_object_set_new(body, "site_code", json_string(agent->site_code));
    send_request(agent, CM_EP_LOCATION, cand, loc_transport(agent, agent->loc_tr_idx), body, now,
                 out);
}

static void
next_candidate(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    agent->cand_idx++;
    agent->loc_tr_idx = 0;
    go(agent, STEP_LOCATE, now, out);
}

/* Rank of a transport: the most secure the agent can use first (NET-01). */
static int
transport_rank(CmTransport t)
{
    return t == CM_TRANSPORT_HTTPS ? 0 : t == CM_TRANSPORT_EHTTP ? 1 : 2;
}

static gint
mp_cmp(gconstpointer a, gconstpointer b)
{
    const AgentMp *x = a, *y = b;
    int d = transport_rank(x->transport) - transport_rank(y->transport);

    if (d == 0)
        d = (int)x->internet - (int)y->internet; /* intranet MPs first */
    return d;
}

/* The MP list of a location answer, ordered by preference; FALSE when the
 * answer is malformed or from another site. */
static gboolean
parse_location(CmAgent *agent, const json_t *body, GError **error)
{
    const char *site;
    const json_t *mps;
    char code[4];
    size_t i;
    GArray *list;

    site = cm_json_str(body, "site_code", 3, error);
    if (site == NULL || !cm_id_site_code_check(site, code, error))
        return FALSE;
    if (agent->site_code[0] != '\0' && strcmp(code, agent->site_code) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "the MP list is for site %s, this client belongs to %s", code,
                    agent->site_code);
        return FALSE;
    }
    mps = cm_json_array(body, "mps", 1024, error);
    if (mps == NULL)
        return FALSE;
    list = agent_mp_list_new();
    for (i = 0; i < json_array_size(mps); i++) {
        const json_t *e = json_array_get(mps, i);
        AgentMp m = {0};
        const char *name = json_is_object(e) ? cm_json_str(e, "name", CM_NAME_MAX, NULL) : NULL;
        gboolean http = json_is_true(json_object_get(e, "http"));
        gboolean https = json_is_true(json_object_get(e, "https"));

        if (name == NULL || *name == '\0' || list->len >= AGENT_MAX_MPS)
            continue;
        m.internet = json_is_true(json_object_get(e, "internet"));
        if (agent->prof->on_internet && !m.internet)
            continue; /* not reachable from the internet */
        if (https && agent_have_pki(agent))
            m.transport = CM_TRANSPORT_HTTPS;
        else if (json_is_true(json_object_get(e, "ehttp")))
            m.transport = CM_TRANSPORT_EHTTP;
        else if (http)
            m.transport = CM_TRANSPORT_HTTP;
        else
            continue;                 /* HTTPS only, and this client has no PKI certificate */
        agent_str_set(&m.name, name); /* the list owns it now */
        g_array_append_val(list, m);
    }
    /* g_array_sort is a stable merge sort: the site's order is kept among
     * MPs of the same rank. */
    g_array_sort(list, mp_cmp);
    agent_mps_clear(agent);
    agent->n_mps = list->len;
    /* The list's entries (and their names) are the agent's now. */
    agent->mps = list->len > 0 ? (AgentMp *)(void *)g_array_free(list, FALSE) : NULL;
    if (agent->n_mps == 0)
        g_array_free(list, TRUE);
    agent->mp_idx = 0;
    /* Automatic site assignment takes the site of the first answer (the
     * REG-09 exposure when the TRK is then also taken on first use). */
    if (agent->site_code[0] == '\0')
        memcpy(agent->site_code, code, sizeof code);
    return TRUE;
}

static void start_mp(CmAgent *agent, CmTime now, CmAgentActions *out);

static void
on_location(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = NULL;
    GError *err = NULL;
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;

    if (resp != NULL && reason == CM_REASON_OK) {
        body = ok_body(agent, resp);
        if (body == NULL || !parse_location(agent, body, &err) || agent->n_mps == 0) {
            g_info("%s: no usable MP list from %s: %s", agent->st.smsid,
                   agent->candidates[agent->cand_idx],
                   err ? err->message : "no MP this client can reach");
            g_clear_error(&err);
            next_candidate(agent, now, out);
            return;
        }
        start_mp(agent, now, out);
        return;
    }
    if (reason == CM_REASON_BUSY) {
        retry_busy(agent, resp, STEP_LOCATE, now);
        return;
    }
    if (resp == NULL || reason == CM_REASON_HTTPS_REQUIRED) {
        /* Unreachable over this transport, or refused over it: the next
         * transport of this candidate, then the next candidate. */
        if (++agent->loc_tr_idx < loc_transport_count(agent)) {
            go(agent, STEP_LOCATE, now, out);
            return;
        }
    }
    next_candidate(agent, now, out);
}

/* ------------------------------------------------------------ trust */

static void
start_mp(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    AgentMp *m = current_mp(agent);

    g_clear_pointer(&agent->mp_cert, cm_cert_unref);
    agent->mp_trusted = FALSE;
    agent->mp_failures = 0;
    /* A notification channel is a connection to one MP. */
    channel_disconnect(agent, "the client moves to another management point");
    if (m == NULL) {
        next_candidate(agent, now, out);
        return;
    }
    agent_str_set(&agent->st.mp, m->name);
    agent->st.transport = m->transport;
    if (m->transport == CM_TRANSPORT_HTTPS && agent_have_pki(agent)) {
        /* The driver verified the MP's TLS certificate against the PKI:
         * no TRK needed (REQ TRUST-03, TRUST-07). */
        agent->mp_trusted = TRUE;
        go(agent, STEP_SITEINFO, now, out);
        return;
    }
    go(agent, STEP_MPCERT, now, out);
}

static void
next_mp(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    agent->mp_idx++;
    start_mp(agent, now, out);
}

/* REQ TRUST-03: an MP whose certificate does not chain to the TRK. */
static void
refuse_mp(CmAgent *agent, const char *why, CmTime now, CmAgentActions *out)
{
    g_info("%s: management point %s refused: %s", agent->st.smsid, agent->st.mp, why);
    agent->st.mp_refused++;
    agent->round_refused = TRUE;
    next_mp(agent, now, out);
}

/* A failure to blame on the MP: retry after backoff; after a few in a row,
 * the next MP. */
static void
mp_fault(CmAgent *agent, AgentStep step, CmTime now, CmAgentActions *out)
{
    CmTime delay = backoff(agent);

    if (++agent->mp_failures >= AGENT_MP_MAX_FAILURES && current_mp(agent) != NULL) {
        g_info("%s: %d failures in a row with %s; trying the next management point",
               agent->st.smsid, agent->mp_failures, agent->st.mp);
        /* fail_count keeps growing across MPs, so a site that is down as a
         * whole still sees the clients back off. */
        next_mp(agent, now, out);
        return;
    }
    later(agent, step, now + delay);
}

/* https-required: the agent already uses the most secure transport this MP
 * offers it (Enhanced HTTP over HTTP), so the MP wants one the client cannot
 * do (HTTPS without a PKI certificate): the next MP.  The list is fetched
 * again when it runs out, which is how a site that turned HTTPS-only or
 * Enhanced HTTP is noticed. */
static void
https_required(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_info("%s: %s requires a more secure transport than %s", agent->st.smsid, agent->st.mp,
           cm_transport_name(agent->st.transport));
    next_mp(agent, now, out);
}

static void
anon_failure(CmAgent *agent, const CmResponse *resp, AgentStep step, CmTime now,
             CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;

    if (resp != NULL && reason == CM_REASON_BUSY)
        retry_busy(agent, resp, step, now);
    else if (resp != NULL && reason == CM_REASON_HTTPS_REQUIRED)
        https_required(agent, now, out);
    else if (resp != NULL && reason == CM_REASON_UNKNOWN_ENDPOINT)
        next_mp(agent, now, out);
    else
        mp_fault(agent, step, now, out);
}

static void
on_mpcert(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = NULL;
    g_autoptr(GBytes) der = NULL;
    g_autoptr(CmCert) cert = NULL;
    GError *err = NULL;
    const char *name;

    if (resp == NULL || reason_of(resp) != CM_REASON_OK) {
        anon_failure(agent, resp, STEP_MPCERT, now, out);
        return;
    }
    body = ok_body(agent, resp);
    if (body == NULL || (name = cm_json_str(body, "name", CM_NAME_MAX, &err)) == NULL ||
        (der = cm_json_b64(body, "cert", CM_CERT_MAX_DER, &err)) == NULL ||
        (cert = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &err)) ==
            NULL) {
        if (err != NULL)
            g_info("%s: malformed mpcert from %s: %s", agent->st.smsid, agent->st.mp, err->message);
        g_clear_error(&err);
        mp_fault(agent, STEP_MPCERT, now, out);
        return;
    }
    /* The certificate is public: anyone can serve a genuine MP's.  It must
     * at least name the MP the client is talking to.  Through a CMG entry
     * ("<CMG>/CCM_Proxy_MutualAuth/<role ID>", REQ CMG-10) the MP's host
     * name is not in the URL: the answer must name the certificate's
     * holder, and the trusted root key's signature (below) decides. */
    gboolean via_cmg = strstr(agent->st.mp, "/CCM_Proxy_") != NULL;
    const char *expect = via_cmg ? name : agent->st.mp;
    if (g_ascii_strcasecmp(name, expect) != 0 ||
        g_ascii_strcasecmp(cm_cert_subject_cn(cert), expect) != 0) {
        g_autofree char *why =
            g_strdup_printf("its certificate is for \"%s\"", cm_cert_subject_cn(cert));
        refuse_mp(agent, why, now, out);
        return;
    }
    if (agent->trk != NULL && !cm_cert_check_signed_by(cert, agent->trk, now, &err)) {
        refuse_mp(agent, err->message, now, out);
        g_error_free(err);
        return;
    }
    g_clear_pointer(&agent->mp_cert, cm_cert_unref);
    agent->mp_cert = g_steal_pointer(&cert);
    /* Without a TRK the certificate is checked against the one siteinfo
     * offers, before that TRK is taken. */
    agent->mp_trusted = agent->trk != NULL;
    go(agent, STEP_SITEINFO, now, out);
}

/* What siteinfo gave, checked in full before any of it is taken. */
typedef struct {
    char site_code[4];
    CmKey *trk;
    CmCert *signcert;
    CmCert *enc_cert;
    AgentSiteSettings settings;
} SiteInfo;

static void
siteinfo_clear(SiteInfo *si)
{
    g_clear_pointer(&si->trk, cm_key_unref);
    g_clear_pointer(&si->signcert, cm_cert_unref);
    g_clear_pointer(&si->enc_cert, cm_cert_unref);
}

static CmCert *
opt_cert(const json_t *body, const char *key, GError **error)
{
    g_autoptr(GBytes) der = NULL;

    if (json_object_get(body, key) == NULL || json_is_null(json_object_get(body, key)))
        return NULL;
    der = cm_json_b64(body, key, CM_CERT_MAX_DER, error);
    if (der == NULL)
        return NULL;
    return cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), error);
}

static gboolean
opt_bool(const json_t *obj, const char *key, gboolean *out, GError **error)
{
    return json_object_get(obj, key) == NULL || cm_json_bool(obj, key, out, error);
}

static gboolean
parse_siteinfo(CmAgent *agent, const json_t *body, CmTime now, SiteInfo *si, GError **error)
{
    const char *site, *trk, *comm;
    const json_t *settings;

    site = cm_json_str(body, "site_code", 3, error);
    if (site == NULL || !cm_id_site_code_check(site, si->site_code, error))
        return FALSE;
    trk = cm_json_opt_str(body, "trk", 4096, error);
    if (trk == NULL && error != NULL && *error != NULL)
        return FALSE;
    if (trk != NULL && (si->trk = cm_key_public_from_hex(trk, error)) == NULL)
        return FALSE;
    si->signcert = opt_cert(body, "signing_cert", error);
    if (error != NULL && *error != NULL)
        return FALSE;
    /* REQ TRUST-08: the site server signing certificate is self-signed. */
    if (si->signcert != NULL &&
        (!cm_cert_is_self_signed(si->signcert) || !cm_cert_check_time(si->signcert, now, error))) {
        if (error != NULL && *error == NULL)
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_UNTRUSTED,
                        "the offered site server signing certificate is not self-signed");
        return FALSE;
    }
    si->enc_cert = opt_cert(body, "encryption_cert", error);
    if (error != NULL && *error != NULL)
        return FALSE;

    si->settings = agent->site;
    if (json_object_get(body, "settings") == NULL)
        return TRUE;
    settings = cm_json_object(body, "settings", error);
    if (settings == NULL)
        return FALSE;
    comm = cm_json_opt_str(settings, "communication", 15, error);
    if (error != NULL && *error != NULL)
        return FALSE;
    if (comm != NULL)
        g_strlcpy(si->settings.communication, comm, sizeof si->settings.communication);
    return opt_bool(settings, "require_signing", &si->settings.require_signing, error) &&
           opt_bool(settings, "require_sha256", &si->settings.require_sha256, error) &&
           opt_bool(settings, "encrypt", &si->settings.encrypt, error);
}

static void
resume(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    switch (agent->reg) {
    case REG_APPROVED:
        go(agent, STEP_ACTIVE, now, out);
        break;
    case REG_PENDING:
        go(agent, STEP_REGSTATUS, now, out);
        break;
    case REG_NONE:
    default:
        go(agent, STEP_REGISTER, now, out);
        break;
    }
}

static void
on_siteinfo(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = NULL;
    SiteInfo si = {0};
    GError *err = NULL;
    AgentMp *m = current_mp(agent);
    gboolean via_pki;

    if (resp == NULL || reason_of(resp) != CM_REASON_OK) {
        anon_failure(agent, resp, STEP_SITEINFO, now, out);
        return;
    }
    body = ok_body(agent, resp);
    if (body == NULL || !parse_siteinfo(agent, body, now, &si, &err)) {
        if (err != NULL)
            g_info("%s: malformed siteinfo from %s: %s", agent->st.smsid, agent->st.mp,
                   err->message);
        g_clear_error(&err);
        mp_fault(agent, STEP_SITEINFO, now, out);
        goto out;
    }
    if (agent->site_code[0] != '\0' && strcmp(si.site_code, agent->site_code) != 0) {
        g_info("%s: %s serves site %s, not %s", agent->st.smsid, agent->st.mp, si.site_code,
               agent->site_code);
        next_mp(agent, now, out);
        goto out;
    }
    via_pki = m != NULL && m->transport == CM_TRANSPORT_HTTPS && agent_have_pki(agent);

    if (!agent->mp_trusted) {
        /* Trust on first use (REQ TRUST-04): the TRK the MP offers, if the
         * MP's own certificate is signed with it.  A rogue MP that comes
         * first passes this with its own key: the seed's warning. */
        if (si.trk == NULL || agent->mp_cert == NULL) {
            refuse_mp(agent, "it offers no trusted root key", now, out);
            goto out;
        }
        if (!cm_cert_check_signed_by(agent->mp_cert, si.trk, now, &err)) {
            refuse_mp(agent, err->message, now, out);
            g_clear_error(&err);
            goto out;
        }
    }
    if (agent->signcert == NULL && si.signcert == NULL) {
        g_info("%s: %s offers no site server signing certificate", agent->st.smsid, agent->st.mp);
        mp_fault(agent, STEP_SITEINFO, now, out);
        goto out;
    }

    /* Everything checked: take it. */
    if (agent->site_code[0] == '\0')
        memcpy(agent->site_code, si.site_code, sizeof si.site_code);
    if (agent->trk == NULL && si.trk != NULL) {
        /* Over HTTPS with PKI the MP was authenticated by the PKI, so the key
         * is not taken on trust; otherwise it is (TOFU). */
        agent->trk = g_steal_pointer(&si.trk);
        g_clear_pointer(&agent->trk_hex, g_free); /* made again when asked */
        agent->st.trk_source = via_pki ? CM_SOURCE_PKI : CM_SOURCE_MP;
    } else if (agent->trk == NULL && via_pki) {
        agent->st.trk_source = CM_SOURCE_PKI;
    } else if (si.trk != NULL && !cm_key_public_equal(si.trk, agent->trk)) {
        /* The held key wins: replacing it is an installation decision
         * (REQ TRUST-06), not something an MP can make. */
        g_info("%s: %s offers a different trusted root key; keeping the one held", agent->st.smsid,
               agent->st.mp);
    }
    agent->mp_trusted = TRUE;
    agent->round_refused = FALSE;
    if (agent->signcert == NULL) {
        /* REQ TRUST-09: no trusted source gave it; downloaded from the MP. */
        agent->signcert = g_steal_pointer(&si.signcert);
        agent->st.signcert_source = CM_SOURCE_MP;
    }
    if (si.enc_cert != NULL) {
        g_clear_pointer(&agent->enc_cert, cm_cert_unref);
        agent->enc_cert = g_steal_pointer(&si.enc_cert);
    }
    agent->site = si.settings;
    resume(agent, now, out);
out:
    siteinfo_clear(&si);
}

/* ------------------------------------------------------------ registration */

static void
send_register(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = json_object();
    g_autoptr(GBytes) der = cm_cert_to_der(agent->cert);
    g_autofree char *b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));

    json_object_set_new(body, "smsid", json_string(agent->st.smsid));
    json_object_set_new(body, "hwid", json_string(agent->st.hwid));
    json_object_set_new(body, "name", json_string(agent->name));
    json_object_set_new(body, "domain", json_string(agent->domain));
    json_object_set_new(body, "site_code", json_string(agent->site_code));
    json_object_set_new(body, "cert", json_string(b64));
    json_object_set_new(body, "ksp", json_string(cm_ksp_kind_name(agent->st.ksp)));
    json_object_set_new(body, "media", json_boolean(agent->prof->media));
    json_object_set_new(body, "install_method",
                        json_string(cm_install_method_name(agent->prof->method)));
    if (agent->entra_token != NULL)
        json_object_set_new(body, "entra_token", json_string(agent->entra_token));
    agent->st.registrations++;
    send_to_mp(agent, CM_EP_REGISTER, body, now, out);
}

static void
send_regstatus(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = smsid_body(agent);
    send_to_mp(agent, CM_EP_REGISTER_STATUS, body, now, out);
}

static CmTime keepalive_wake(const CmAgent *agent);

static void
blocked(CmAgent *agent, CmTime now)
{
    /* REQ REG-03: the site rejects it everywhere; the agent stops, but for
     * a client notification channel it opened while it was trusted: the MP
     * answers keep-alives on an open channel without asking the site, so
     * the client keeps it, and keeps sending them, until it disconnects
     * (REQ REG-05). */
    g_info("%s: blocked by the site%s", agent->st.smsid,
           agent->st.channel_open ? "; its notification channel stays open" : "");
    if (agent->st.blocked_at == 0)
        agent->st.blocked_at = now;
    if (agent->st.channel_open)
        later(agent, STEP_KEEPALIVE, keepalive_wake(agent));
    else
        later(agent, STEP_NONE, 0);
    agent->st.state = CM_AGENT_BLOCKED;
}

static void
poll_approval(CmAgent *agent, CmTime now)
{
    agent->reg = REG_PENDING;
    agent->poll_count = MIN(agent->poll_count + 1, 64);
    later(agent, STEP_REGSTATUS, now + backoff_delay(agent, agent->poll_count));
}

static void
renew_cert(CmAgent *agent, CmTime now)
{
    GError *err = NULL;
    CmCert *cert = agent_make_cert(agent, agent->key, now, &err);

    if (cert == NULL) {
        g_info("%s: cannot renew the client certificate: %s", agent->st.smsid, err->message);
        g_error_free(err);
        return;
    }
    cm_cert_unref(agent->cert);
    agent->cert = cert;
}

/* A refusal of a signed request (or a transport failure); step is what to
 * run again. */
static void
signed_failure(CmAgent *agent, CmEndpoint ep, const CmResponse *resp, AgentStep step, CmTime now,
               CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;

    if (resp == NULL) {
        mp_fault(agent, step, now, out);
        return;
    }
    g_debug("%s: %s refused by %s: %s (%s)", agent->st.smsid, cm_ep_name(ep), agent->st.mp,
            cm_reason_name(reason), resp->message ? resp->message : "");
    switch (reason) {
    case CM_REASON_BUSY:
        retry_busy(agent, resp, step, now);
        break;
    case CM_REASON_BLOCKED:
        blocked(agent, now);
        break;
    case CM_REASON_NOT_APPROVED:
        poll_approval(agent, now);
        break;
    case CM_REASON_UNKNOWN_CLIENT:
        /* The site has no record (deleted, or never committed): register. */
        agent->reg = REG_NONE;
        later(agent, STEP_REGISTER, now + backoff(agent));
        break;
    case CM_REASON_BAD_SIGNATURE:
        /* The site holds another certificate for this SMSID (a key upgrade
         * it did not see): register the current one.  For register itself
         * the proof of possession failed, which a retry may fix. */
        agent->reg = REG_NONE;
        later(agent, STEP_REGISTER, now + backoff(agent));
        break;
    case CM_REASON_CERT_EXPIRED:
        renew_cert(agent, now);
        agent->reg = REG_NONE;
        later(agent, STEP_REGISTER, now + backoff(agent));
        break;
    case CM_REASON_HTTPS_REQUIRED:
        https_required(agent, now, out);
        break;
    case CM_REASON_UNKNOWN_ENDPOINT:
        next_mp(agent, now, out);
        break;
    case CM_REASON_SHA1_REFUSED:
        /* A legacy client that cannot sign with SHA-256 (REQ MSG-01) cannot
         * comply: it keeps trying, at the slowest rate. */
        agent->fail_count = 64;
        later(agent, step, now + backoff(agent));
        break;
    case CM_REASON_REVOKED:
        /* Our PKI certificate is on a CRL: stop presenting it and locate
         * again with what remains (Enhanced HTTP or HTTP, where the site
         * allows them). */
        agent->pki_revoked = TRUE;
        agent->cand_idx = 0;
        agent->loc_tr_idx = 0;
        later(agent, STEP_LOCATE, now + backoff(agent));
        break;
    case CM_REASON_CONFLICT:
    case CM_REASON_UNTRUSTED:
    case CM_REASON_UNSIGNED:
    case CM_REASON_FORBIDDEN:
    case CM_REASON_NOT_FOUND:
    case CM_REASON_TOO_LARGE:
        /* The site decided; nothing the client can change right now. */
        later(agent, step, now + backoff(agent));
        break;
    case CM_REASON_BAD_REQUEST:
    case CM_REASON_INTERNAL:
    case CM_REASON_OK:
    default:
        mp_fault(agent, step, now, out);
        break;
    }
}

static void
on_registration(CmAgent *agent, CmEndpoint ep, const CmResponse *resp, CmTime now,
                CmAgentActions *out)
{
    AgentStep step = ep == CM_EP_REGISTER ? STEP_REGISTER : STEP_REGSTATUS;
    g_autoptr(json_t) body = NULL;
    const char *approval, *smsid, *token;
    GError *err = NULL;

    if (resp == NULL || reason_of(resp) != CM_REASON_OK) {
        signed_failure(agent, ep, resp, step, now, out);
        return;
    }
    body = ok_body(agent, resp);
    smsid = body ? cm_json_str(body, "smsid", CM_ID_SMSID_LEN, &err) : NULL;
    approval = smsid ? cm_json_str(body, "approval", 16, &err) : NULL;
    token = approval ? cm_json_opt_str(body, "token", CM_JWT_MAX_LEN, &err) : NULL;
    if (approval == NULL || err != NULL || strcmp(smsid, agent->st.smsid) != 0 ||
        (strcmp(approval, "approved") != 0 && strcmp(approval, "pending") != 0)) {
        g_info("%s: malformed %s answer from %s: %s", agent->st.smsid, cm_ep_name(ep), agent->st.mp,
               err ? err->message : "wrong smsid or approval");
        g_clear_error(&err);
        mp_fault(agent, step, now, out);
        return;
    }
    succeeded(agent);
    if (strcmp(approval, "pending") == 0) {
        poll_approval(agent, now);
        return;
    }
    agent->reg = REG_APPROVED;
    agent->poll_count = 0;
    if (token != NULL) {
        agent_token_free(agent->token);
        agent->token = agent_token_new(token);
    }
    if (agent->st.registered_at == 0)
        agent->st.registered_at = now;
    /* The first client package check at a random point of the first
     * interval, as the product spreads automatic upgrades over days: a
     * site's clients do not all download the client at once. */
    if (agent->prof->auto_upgrade && agent->upgrade_due == 0)
        agent->upgrade_due =
            now + (CmTime)cm_rng_below(&agent->rng, (guint64)agent->prof->upgrade_interval);
    /* Client status likewise (REQ DATA-02): the product runs its health
     * evaluation at a random time of day, not on every client at once. */
    if (agent->prof->client_status_interval > 0 && agent->client_status_due == 0)
        agent->client_status_due =
            now + 1 +
            (CmTime)cm_rng_below(&agent->rng, (guint64)agent->prof->client_status_interval);
    /* Policy at once; inventory at once the first time, else on its cycle
     * (a re-registration does not resend everything). */
    agent->policy_due = now;
    if (agent->inventory_due == 0)
        agent->inventory_due = now;
    go(agent, STEP_ACTIVE, now, out);
}

/* ------------------------------------------------------------ active cycle */

static void
send_policybody(CmAgent *agent, const AgentFetch *f, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = smsid_body(agent);
    json_object_set_new(body, "policy_id", json_string(f->policy_id));
    send_to_mp(agent, CM_EP_POLICY_BODY, body, now, out);
}

/* The inventory or discovery body: plain, or encrypted end to end to the
 * site's encryption certificate (REQ MSG-02). */
static json_t *
report_body(CmAgent *agent, gboolean discovery, GError **error)
{
    const char *key = discovery ? "discovery" : "inventory";
    g_autoptr(json_t) body = smsid_body(agent);
    g_autoptr(json_t) plain = NULL;
    g_autoptr(GBytes) env = NULL;
    g_autofree char *text = NULL;
    g_autofree char *b64 = NULL;

    if (!agent->site.encrypt) {
        json_object_set_new(body, key, agent_report_props(agent, discovery));
        return g_steal_pointer(&body);
    }
    plain = json_object();
    json_object_set_new(plain, key, agent_report_props(agent, discovery));
    text = cm_json_dump(plain);
    env = cm_cms_encrypt(agent->enc_cert, CM_CIPHER_AES256_GCM, text, strlen(text), error);
    if (env == NULL)
        return NULL;
    b64 = cm_enc_b64(g_bytes_get_data(env, NULL), g_bytes_get_size(env));
    json_object_set_new(body, "encrypted", json_string(b64));
    return g_steal_pointer(&body);
}

static void
send_report(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    gboolean disc = agent->discovery_next;
    g_autoptr(json_t) body = NULL;
    GError *err = NULL;

    if (agent->site.encrypt && agent->enc_cert == NULL) {
        /* The site encrypts but we hold no certificate to encrypt to: ask
         * once more, then back off rather than send in the clear. */
        if (!agent->siteinfo_refreshed) {
            agent->siteinfo_refreshed = TRUE;
            go(agent, STEP_SITEINFO, now, out);
        } else {
            later(agent, STEP_ACTIVE, now + backoff(agent));
        }
        return;
    }
    body = report_body(agent, disc, &err);
    if (body == NULL) {
        g_info("%s: cannot encrypt %s: %s", agent->st.smsid, disc ? "discovery" : "inventory",
               err->message);
        g_error_free(err);
        later(agent, STEP_ACTIVE, now + backoff(agent));
        return;
    }
    send_to_mp(agent, disc ? CM_EP_DISCOVERY : CM_EP_INVENTORY, body, now, out);
}

/* ------------------------------------------------------------ messages */

/* How many entries at the head of a message queue the request in flight
 * carries: they are removed by its answer, so a full queue must not drop
 * them. */
static guint
queue_inflight(const CmAgent *agent, CmEndpoint ep)
{
    if (agent->inflight_id == 0 || agent->inflight_ep != ep)
        return 0;
    return ep == CM_EP_STATE ? agent->states_inflight : 1;
}

void
agent_queue_state(CmAgent *agent, const char *topic, int state, CmTime now)
{
    json_t *entry;

    if (g_queue_get_length(&agent->states) >= AGENT_STATES_MAX) {
        /* The oldest waiting state gives way. */
        json_decref(g_queue_pop_nth(&agent->states, queue_inflight(agent, CM_EP_STATE)));
    }
    entry = json_pack("{s:s, s:i, s:I}", "topic", topic, "state", state, "time",
                      (json_int_t)(MAX(now, 0) / CM_USEC_PER_SEC));
    if (entry != NULL)
        g_queue_push_tail(&agent->states, entry);
}

void
agent_queue_status(CmAgent *agent, const char *severity, int message_id, const char *text)
{
    g_autofree char *valid = g_utf8_make_valid(text, -1);
    json_t *msg;

    /* Cut at a character boundary to what the MP keeps: a longer text
     * would have the whole message discarded as malformed. */
    if (strlen(valid) > AGENT_STATUS_TEXT_MAX) {
        char *end = valid + AGENT_STATUS_TEXT_MAX;
        while (end > valid && (*end & 0xc0) == 0x80)
            end--;
        *end = '\0';
    }
    if (g_queue_get_length(&agent->status) >= AGENT_STATUS_MAX)
        json_decref(g_queue_pop_nth(&agent->status, queue_inflight(agent, CM_EP_STATUS)));
    msg = json_pack("{s:s, s:s, s:i, s:s, s:s}", "smsid", agent->st.smsid, "component", "CCMExec",
                    "message_id", message_id, "severity", severity, "text", valid);
    if (msg != NULL)
        g_queue_push_tail(&agent->status, msg);
}

/* REQ MSG-03: a status message carries no signature and no client ID
 * header (the endpoint is anonymous, send_request does not sign it); the
 * MP forwards any well-formed one.  Sent one at a time, oldest first. */
static void
send_status(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    send_to_mp(agent, CM_EP_STATUS, g_queue_peek_head(&agent->status), now, out);
}

/* The oldest waiting states, at most 100 in one signed state message. */
static void
send_states(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = smsid_body(agent);
    json_t *list = json_array();
    guint n = MIN(g_queue_get_length(&agent->states), AGENT_STATES_PER_MSG);

    for (guint i = 0; i < n; i++)
        json_array_append(list, g_queue_peek_nth(&agent->states, i));
    json_object_set_new(body, "states", list);
    agent->states_inflight = n;
    send_to_mp(agent, CM_EP_STATE, body, now, out);
}

/* The self-checks of client status (REQ DATA-02), as the product's client
 * health evaluation names them, read from what the agent knows of itself:
 * "wmi", the repository inventory is read from, passes when the site took
 * the last hardware inventory; "ccmexec", the agent service, when it is
 * keeping up with its policy cycle; "policy" fails when the last policy it
 * downloaded was refused (tampered with, or not what was assigned). */
static json_t *
client_checks(const CmAgent *agent, CmTime now)
{
    gboolean wmi = agent->st.inventories_sent > 0 && !agent->inventory_dropped;
    gboolean ccmexec =
        agent->policy_ok_at > 0 && now - agent->policy_ok_at <= 2 * agent->prof->policy_interval;
    gboolean policy = !agent->policy_refused;

    return json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "name", "wmi", "result",
                     wmi ? "pass" : "fail", "name", "ccmexec", "result", ccmexec ? "pass" : "fail",
                     "name", "policy", "result", policy ? "pass" : "fail");
}

static void
send_client_status(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) plain = json_object();
    g_autoptr(json_t) body = NULL;
    g_autoptr(GBytes) env = NULL;
    g_autofree char *text = NULL;
    g_autofree char *b64 = NULL;
    GError *err = NULL;

    if (agent->enc_cert == NULL) {
        /* Client status only ever goes encrypted to the site (the site
         * refuses it plain): without the certificate, this round is
         * skipped rather than sent in the clear. */
        g_debug("%s: no site encryption certificate; client status skipped", agent->st.smsid);
        agent->client_status_due = now + agent->prof->client_status_interval;
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    json_object_set_new(plain, "checks", client_checks(agent, now));
    text = cm_json_dump(plain);
    env = cm_cms_encrypt(agent->enc_cert, CM_CIPHER_AES256_GCM, text, strlen(text), &err);
    if (env == NULL) {
        g_info("%s: cannot encrypt client status: %s", agent->st.smsid, err->message);
        g_error_free(err);
        agent->client_status_due = now + agent->prof->client_status_interval;
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    b64 = cm_enc_b64(g_bytes_get_data(env, NULL), g_bytes_get_size(env));
    body = smsid_body(agent);
    json_object_set_new(body, "encrypted", json_string(b64));
    send_to_mp(agent, CM_EP_CLIENT_STATUS, body, now, out);
}

/* The opening of the notification channel, or a keep-alive on it: the
 * same signed {"smsid"}; the MP tells them apart by whether it holds a
 * channel for the client (docs/protocol.md, notify). */
static void
send_notify(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = smsid_body(agent);

    if (agent->st.channel_open) {
        agent->st.keepalives_sent++;
        if (agent->st.state == CM_AGENT_BLOCKED)
            agent->st.keepalives_after_block++;
    }
    send_to_mp(agent, CM_EP_NOTIFY, body, now, out);
}

/* The next keep-alive of an open channel, or its end if that comes first. */
static CmTime
keepalive_wake(const CmAgent *agent)
{
    CmTime end = channel_end(agent);

    return end > 0 ? MIN(end, agent->keepalive_due) : agent->keepalive_due;
}

static gboolean
channel_due(const CmAgent *agent, CmTime now)
{
    return agent->prof->keepalive_interval > 0 && now >= agent->keepalive_due;
}

static gboolean
client_status_due(const CmAgent *agent, CmTime now)
{
    return agent->prof->client_status_interval > 0 && agent->client_status_due > 0 &&
           now >= agent->client_status_due;
}

/* A blocked client's only step (REQ REG-05): keep-alives on the channel
 * it holds, until the channel's lifetime ends; then silence for good. */
static void
blocked_keepalive(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    channel_expire(agent, now);
    if (!agent->st.channel_open) {
        later(agent, STEP_NONE, 0);
        return;
    }
    if (now < agent->keepalive_due) {
        later(agent, STEP_KEEPALIVE, keepalive_wake(agent));
        return;
    }
    send_notify(agent, now, out);
}

/* The next thing the active cycle has to do, when nothing is due now. */
static CmTime
active_wake(const CmAgent *agent)
{
    CmTime at = MIN(agent->policy_due, agent->inventory_due);

    if (agent->install_due > 0)
        at = MIN(at, agent->install_due);
    if (agent->prof->auto_upgrade && agent->upgrade_due > 0)
        at = MIN(at, agent->upgrade_due);
    if (agent->prof->client_status_interval > 0 && agent->client_status_due > 0)
        at = MIN(at, agent->client_status_due);
    if (agent->prof->keepalive_interval > 0)
        at = MIN(at, agent->st.channel_open ? keepalive_wake(agent) : agent->keepalive_due);
    return at;
}

static gboolean
upgrade_due(const CmAgent *agent, CmTime now)
{
    return agent->prof->auto_upgrade && agent->upgrade_due > 0 && now >= agent->upgrade_due;
}

static void
active_next(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    /* Installs need no MP: decided first, whatever is sent next. */
    agent_installs_run(agent, now);
    if (now >= cm_cert_not_after(agent->cert) - AGENT_CERT_RENEW) {
        /* Renewed before it expires, and registered again: "same SMSID,
         * new certificate, same hardware ID" keeps the approval. */
        renew_cert(agent, now);
        agent->reg = REG_NONE;
        go(agent, STEP_REGISTER, now, out);
        return;
    }
    channel_expire(agent, now);
    /* Policy first: it decides what the rest reports.  The messages queued
     * by what just happened next, then the channel, then the cycles. */
    if (!g_queue_is_empty(&agent->fetch)) {
        send_policybody(agent, g_queue_peek_head(&agent->fetch), now, out);
    } else if (now >= agent->policy_due) {
        g_autoptr(json_t) body = smsid_body(agent);
        send_to_mp(agent, CM_EP_POLICY_ASSIGNMENTS, body, now, out);
    } else if (!g_queue_is_empty(&agent->status)) {
        send_status(agent, now, out);
    } else if (!g_queue_is_empty(&agent->states)) {
        send_states(agent, now, out);
    } else if (channel_due(agent, now)) {
        send_notify(agent, now, out);
    } else if (upgrade_due(agent, now)) {
        /* Anonymous, no fields, like siteinfo. */
        g_autoptr(json_t) empty = json_object();
        send_to_mp(agent, CM_EP_CLIENT_PACKAGE, empty, now, out);
    } else if (now >= agent->inventory_due) {
        send_report(agent, now, out);
    } else if (client_status_due(agent, now)) {
        send_client_status(agent, now, out);
    } else {
        later(agent, STEP_ACTIVE, active_wake(agent));
    }
}

static gboolean
is_sha256_hex(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return FALSE;
    for (const char *p = s; *p != '\0'; p++)
        if (!g_ascii_isxdigit(*p))
            return FALSE;
    return TRUE;
}

static void
on_assignments(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = NULL;
    g_autoptr(GHashTable) assigned = NULL;
    GQueue fetch = G_QUEUE_INIT;
    const json_t *list;
    GError *err = NULL;
    size_t i;

    if (resp == NULL || reason_of(resp) != CM_REASON_OK) {
        signed_failure(agent, CM_EP_POLICY_ASSIGNMENTS, resp, STEP_ACTIVE, now, out);
        return;
    }
    body = ok_body(agent, resp);
    list = body ? cm_json_array(body, "assignments", AGENT_MAX_ASSIGNMENTS, &err) : NULL;
    if (list == NULL)
        goto bad;
    assigned = g_hash_table_new(g_str_hash, g_str_equal);
    for (i = 0; i < json_array_size(list); i++) {
        const json_t *e = json_array_get(list, i);
        const char *id, *hash;
        gint64 version;
        const AgentPolicy *held;
        AgentFetch *f;

        if (!json_is_object(e)) {
            g_set_error(&err, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "assignment %zu is not an object", i);
            goto bad;
        }
        id = cm_json_str(e, "policy_id", AGENT_POLICY_ID_MAX, &err);
        hash = id ? cm_json_str(e, "hash", 64, &err) : NULL;
        if (hash == NULL || !cm_json_int(e, "version", 0, G_MAXINT64, &version, &err) ||
            !is_sha256_hex(hash))
            goto bad;
        if (g_hash_table_contains(assigned, id))
            continue;
        g_hash_table_add(assigned, (gpointer)id);
        held = agent_policy_find(agent, id);
        if (held != NULL && held->version == version) {
            guint8 digest[32];
            agent_sha256_from_hex(hash, digest);
            if (memcmp(held->hash, digest, sizeof digest) == 0)
                continue;
        }
        if (held != NULL && version < held->version) {
            /* An older version of a policy already held: a replay. */
            g_info("%s: %s offers version %" G_GINT64_FORMAT " of %s, older than the one held",
                   agent->st.smsid, agent->st.mp, version, id);
            continue;
        }
        f = g_new0(AgentFetch, 1);
        f->policy_id = g_strdup(id);
        f->version = version;
        g_strlcpy(f->hash, hash, sizeof f->hash);
        g_queue_push_tail(&fetch, f);
    }
    agent_policy_retain(agent, assigned);
    g_queue_clear_full(&agent->fetch, (GDestroyNotify)agent_fetch_free);
    agent->fetch = fetch;
    succeeded(agent);
    agent->policy_ok_at = now;
    agent->policy_due = now + agent->prof->policy_interval;
    go(agent, STEP_ACTIVE, now, out);
    return;
bad:
    g_info("%s: malformed policyassignments from %s: %s", agent->st.smsid, agent->st.mp,
           err ? err->message : "hash is not a hex SHA-256");
    g_clear_error(&err);
    g_queue_clear_full(&fetch, (GDestroyNotify)agent_fetch_free);
    mp_fault(agent, STEP_ACTIVE, now, out);
}

static void
on_policybody(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = NULL;
    AgentFetch *f = g_queue_peek_head(&agent->fetch);
    GError *err = NULL;
    json_t *policy;

    if (f == NULL) { /* nothing left to fetch: defensive, cannot happen */
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    if (resp != NULL && reason_of(resp) == CM_REASON_NOT_FOUND) {
        /* Withdrawn between the assignments and now. */
        agent_fetch_free(g_queue_pop_head(&agent->fetch));
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    if (resp == NULL || reason_of(resp) != CM_REASON_OK) {
        signed_failure(agent, CM_EP_POLICY_BODY, resp, STEP_ACTIVE, now, out);
        return;
    }
    body = ok_body(agent, resp);
    if (body == NULL) {
        mp_fault(agent, STEP_ACTIVE, now, out);
        return;
    }
    succeeded(agent);
    g_queue_pop_head(&agent->fetch);
    policy = agent_policy_verify(agent, f, body, &err);
    if (policy == NULL) {
        /* REQ POL-03, TRUST-08: tampered in transit or by the MP, or not
         * what was assigned.  Not acted on; fetched again next cycle. */
        g_autofree char *text = g_strdup_printf("Policy %s from %s was refused: %s", f->policy_id,
                                                agent->st.mp, err->message);
        g_info("%s: %s", agent->st.smsid, text);
        g_error_free(err);
        agent->st.policies_refused++;
        agent->policy_refused = TRUE;
        agent_queue_status(agent, "error", AGENT_MSG_POLICY_REFUSED, text);
    } else {
        agent->policy_refused = FALSE;
        agent_policy_accept(agent, f, policy, now);
    }
    agent_fetch_free(f);
    go(agent, STEP_ACTIVE, now, out);
}

/* REQ POL-05: the client package answer, taken on the MP's word
 * (software.c). */
static void
on_clientpackage(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    g_autoptr(json_t) body = NULL;
    GError *err = NULL;
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;
    int upgrades;

    if (resp != NULL && reason == CM_REASON_BUSY) {
        retry_busy(agent, resp, STEP_ACTIVE, now); /* still due: asked again then */
        return;
    }
    /* Whatever the outcome, the next check is an interval away: nothing is
     * urgent about an upgrade, and an MP that publishes no package
     * (not-found), an older one (unknown-endpoint) or a broken one would
     * say the same again at once. */
    agent->upgrade_due = now + agent->prof->upgrade_interval;
    if (resp == NULL) {
        mp_fault(agent, STEP_ACTIVE, now, out); /* the MP is unreachable: that matters */
        return;
    }
    if (reason != CM_REASON_OK) {
        g_debug("%s: no client package from %s: %s", agent->st.smsid, agent->st.mp,
                cm_reason_name(reason));
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    body = ok_body(agent, resp);
    upgrades = agent->st.upgrades_installed;
    if (body == NULL || !agent_client_package(agent, body, &err)) {
        if (err != NULL)
            g_info("%s: malformed client package from %s: %s", agent->st.smsid, agent->st.mp,
                   err->message);
        g_clear_error(&err);
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    succeeded(agent);
    /* The new version's service starts afresh: its notification channel
     * is a new connection (REQ REG-05). */
    if (agent->st.upgrades_installed != upgrades)
        channel_disconnect(agent, "the client was upgraded");
    go(agent, STEP_ACTIVE, now, out);
}

static void
on_report(CmAgent *agent, CmEndpoint ep, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;
    gboolean done = FALSE;

    if (resp != NULL && reason == CM_REASON_OK) {
        succeeded(agent);
        agent->siteinfo_refreshed = FALSE;
        if (ep == CM_EP_INVENTORY) {
            agent->st.inventories_sent++; /* counted when the site committed it */
            agent->inventory_dropped = FALSE;
        }
        done = TRUE;
    } else if (resp != NULL && reason == CM_REASON_TOO_LARGE) {
        /* Resending the same report cannot help: drop it, go on. */
        g_info("%s: %s too large for the site; dropped", agent->st.smsid, cm_ep_name(ep));
        if (ep == CM_EP_INVENTORY)
            agent->inventory_dropped = TRUE;
        done = TRUE;
    } else if (resp != NULL && reason == CM_REASON_FORBIDDEN && !agent->siteinfo_refreshed) {
        /* Most likely the site now requires encryption (plain refused) or
         * has a new encryption certificate: refresh siteinfo, then resend. */
        agent->siteinfo_refreshed = TRUE;
        go(agent, STEP_SITEINFO, now, out);
        return;
    }
    if (!done) {
        signed_failure(agent, ep, resp, STEP_ACTIVE, now, out);
        return;
    }
    if (ep == CM_EP_INVENTORY) {
        agent->discovery_next = TRUE;
    } else {
        agent->discovery_next = FALSE;
        agent->inventory_due = now + agent->prof->inventory_interval;
    }
    go(agent, STEP_ACTIVE, now, out);
}

/* Any answer ends a status message's journey but a busy MP, a transport
 * failure or a fault of the server: a status message the MP discarded as
 * malformed would be discarded again (REQ MSG-03). */
static void
on_status(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;

    if (resp == NULL || reason == CM_REASON_INTERNAL) {
        mp_fault(agent, STEP_ACTIVE, now, out);
        return;
    }
    if (reason == CM_REASON_BUSY) {
        retry_busy(agent, resp, STEP_ACTIVE, now);
        return;
    }
    if (reason == CM_REASON_HTTPS_REQUIRED) {
        https_required(agent, now, out);
        return;
    }
    if (reason == CM_REASON_OK) {
        succeeded(agent);
        agent->st.status_sent++;
    } else {
        g_info("%s: status message refused by %s (%s); dropped", agent->st.smsid, agent->st.mp,
               cm_reason_name(reason));
    }
    json_decref(g_queue_pop_head(&agent->status));
    go(agent, STEP_ACTIVE, now, out);
}

static void
drop_states(CmAgent *agent, guint n)
{
    for (guint i = 0; i < n && !g_queue_is_empty(&agent->states); i++)
        json_decref(g_queue_pop_head(&agent->states));
}

static void
on_state(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;
    guint n = agent->states_inflight;

    agent->states_inflight = 0;
    if (resp != NULL && reason == CM_REASON_OK) {
        succeeded(agent);
        agent->st.states_sent += (int)MIN(n, g_queue_get_length(&agent->states));
        drop_states(agent, n);
    } else if (resp != NULL && (reason == CM_REASON_BAD_REQUEST || reason == CM_REASON_TOO_LARGE)) {
        /* The site will refuse the same states again: drop them. */
        g_info("%s: %u state messages refused by the site (%s); dropped", agent->st.smsid, n,
               cm_reason_name(reason));
        drop_states(agent, n);
    } else {
        signed_failure(agent, CM_EP_STATE, resp, STEP_ACTIVE, now, out);
        return;
    }
    go(agent, STEP_ACTIVE, now, out);
}

static void
on_client_status(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;

    if (resp != NULL && reason == CM_REASON_OK) {
        succeeded(agent);
        agent->siteinfo_refreshed = FALSE;
        agent->st.client_status_sent++;
    } else if (resp != NULL && reason == CM_REASON_FORBIDDEN && !agent->siteinfo_refreshed) {
        /* The site could not decrypt it: most likely a new encryption
         * certificate.  Refresh siteinfo, then send again. */
        agent->siteinfo_refreshed = TRUE;
        go(agent, STEP_SITEINFO, now, out);
        return;
    } else if (resp != NULL && (reason == CM_REASON_FORBIDDEN || reason == CM_REASON_BAD_REQUEST ||
                                reason == CM_REASON_TOO_LARGE)) {
        /* Sending the same again cannot help: this round's results are
         * lost, the next round's checks go on schedule. */
        g_info("%s: client status refused by the site (%s); next round in %" G_GINT64_FORMAT " s",
               agent->st.smsid, cm_reason_name(reason),
               agent->prof->client_status_interval / CM_USEC_PER_SEC);
    } else {
        signed_failure(agent, CM_EP_CLIENT_STATUS, resp, STEP_ACTIVE, now, out);
        return;
    }
    agent->client_status_due = now + agent->prof->client_status_interval;
    go(agent, STEP_ACTIVE, now, out);
}

/* The opening of the channel or a keep-alive (REQ REG-05). */
static void
on_notify(CmAgent *agent, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    CmReason reason = resp ? reason_of(resp) : CM_REASON_INTERNAL;
    gboolean is_blocked = agent->st.state == CM_AGENT_BLOCKED;

    if (resp != NULL && reason == CM_REASON_OK) {
        if (agent->st.channel_open) {
            agent->st.keepalives_answered++;
        } else {
            agent->st.channel_open = TRUE;
            agent->st.channel_opens++;
            agent->channel_opened_at = now;
            agent_str_set(&agent->st.channel_mp, agent->st.mp);
        }
        agent->keepalive_due = now + agent->prof->keepalive_interval;
        if (is_blocked) {
            later(agent, STEP_KEEPALIVE, keepalive_wake(agent));
            return;
        }
        succeeded(agent);
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    if (resp != NULL && reason == CM_REASON_BUSY) {
        /* The connection is still there; the MP is only slow to answer. */
        retry_busy(agent, resp, is_blocked ? STEP_KEEPALIVE : STEP_ACTIVE, now);
        return;
    }
    /* Anything else ends the channel: the connection broke, or the MP no
     * longer holds it and the site refused to open one. */
    channel_disconnect(agent, resp == NULL ? "no answer" : cm_reason_name(reason));
    if (is_blocked) {
        later(agent, STEP_NONE, 0); /* blocked: a new channel would be refused */
        return;
    }
    if (resp != NULL && reason == CM_REASON_UNKNOWN_ENDPOINT) {
        /* An MP without notification channels: the rest of the cycle does
         * not need one, so this is not a reason to leave the MP. */
        agent->keepalive_due = now + agent->prof->keepalive_interval;
        go(agent, STEP_ACTIVE, now, out);
        return;
    }
    signed_failure(agent, CM_EP_NOTIFY, resp, STEP_ACTIVE, now, out);
}

/* ------------------------------------------------------------ dispatch */

static void
run_step(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    switch (agent->step) {
    case STEP_START:
    case STEP_LOCATE:
        agent->st.state = CM_AGENT_LOCATING;
        send_location(agent, now, out);
        break;
    case STEP_MPCERT:
    case STEP_SITEINFO: {
        /* Anonymous, no fields: an empty object, which every JSON parser
         * on the MP side accepts (an empty body would not). */
        g_autoptr(json_t) empty = json_object();
        send_to_mp(agent, agent->step == STEP_MPCERT ? CM_EP_MPCERT : CM_EP_SITEINFO, empty, now,
                   out);
        break;
    }
    case STEP_REGISTER:
        send_register(agent, now, out);
        break;
    case STEP_REGSTATUS:
        send_regstatus(agent, now, out);
        break;
    case STEP_ACTIVE:
        active_next(agent, now, out);
        break;
    case STEP_KEEPALIVE:
        blocked_keepalive(agent, now, out);
        break;
    case STEP_NONE:
    default:
        agent->wake_at = 0;
        break;
    }
}

static void
dispatch(CmAgent *agent, CmEndpoint ep, const CmResponse *resp, CmTime now, CmAgentActions *out)
{
    switch (ep) {
    case CM_EP_LOCATION:
        on_location(agent, resp, now, out);
        break;
    case CM_EP_MPCERT:
        on_mpcert(agent, resp, now, out);
        break;
    case CM_EP_SITEINFO:
        on_siteinfo(agent, resp, now, out);
        break;
    case CM_EP_REGISTER:
    case CM_EP_REGISTER_STATUS:
        on_registration(agent, ep, resp, now, out);
        break;
    case CM_EP_POLICY_ASSIGNMENTS:
        on_assignments(agent, resp, now, out);
        break;
    case CM_EP_POLICY_BODY:
        on_policybody(agent, resp, now, out);
        break;
    case CM_EP_INVENTORY:
    case CM_EP_DISCOVERY:
        on_report(agent, ep, resp, now, out);
        break;
    case CM_EP_CLIENT_PACKAGE:
        on_clientpackage(agent, resp, now, out);
        break;
    case CM_EP_STATUS:
        on_status(agent, resp, now, out);
        break;
    case CM_EP_STATE:
        on_state(agent, resp, now, out);
        break;
    case CM_EP_CLIENT_STATUS:
        on_client_status(agent, resp, now, out);
        break;
    case CM_EP_NOTIFY:
        on_notify(agent, resp, now, out);
        break;
    default:
        go(agent, agent->step, now, out);
        break;
    }
}

void
cm_agent_start(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_return_if_fail(agent != NULL && out != NULL && out->sends != NULL);

    if (!agent->started) {
        CmTime delay = 0;

        agent->started = TRUE;
        /* REQ TRUST-12: a crowd installed (or upgraded) together spreads its
         * first contact over the window instead of arriving at once. */
        if (agent->prof->start_window > 0)
            delay = (CmTime)cm_rng_below(&agent->rng, (guint64)agent->prof->start_window);
        if (delay > 0)
            later(agent, STEP_START, now + delay);
        else
            go(agent, STEP_START, now, out);
    }
    finish(agent, out);
}

void
cm_agent_on_response(CmAgent *agent, guint64 id, const CmResponse *resp, CmTime now,
                     CmAgentActions *out)
{
    CmEndpoint ep;

    g_return_if_fail(agent != NULL && out != NULL && out->sends != NULL);

    if (id == 0 || id != agent->inflight_id) {
        g_debug("%s: answer to request %" G_GUINT64_FORMAT " ignored (not in flight)",
                agent->st.smsid, id);
        finish(agent, out);
        return;
    }
    ep = agent->inflight_ep;
    agent->inflight_id = 0;
    agent->inflight_ep = CM_EP_NONE;
    dispatch(agent, ep, resp, now, out);
    finish(agent, out);
}

void
cm_agent_on_timer(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_return_if_fail(agent != NULL && out != NULL && out->sends != NULL);

    /* A timer that is stale (rescheduled since) or early does nothing. */
    if (agent->wake_at == 0 || now < agent->wake_at) {
        finish(agent, out);
        return;
    }
    if (agent->inflight_id != 0) {
        CmEndpoint ep = agent->inflight_ep;
        g_info("%s: no answer to %s from %s; treated as a transport failure", agent->st.smsid,
               cm_ep_name(ep), agent->st.mp);
        agent->inflight_id = 0;
        agent->inflight_ep = CM_EP_NONE;
        dispatch(agent, ep, NULL, now, out);
    } else {
        run_step(agent, now, out);
    }
    finish(agent, out);
}

void
cm_agent_restart(CmAgent *agent, CmTime now, CmAgentActions *out)
{
    g_return_if_fail(agent != NULL && out != NULL && out->sends != NULL);

    if (!agent->started) {
        finish(agent, out);
        return;
    }
    channel_disconnect(agent, "the agent restarted");
    /* The process that waited for an answer is gone; a late answer to it
     * is ignored. */
    agent->inflight_id = 0;
    agent->inflight_ep = CM_EP_NONE;
    agent->states_inflight = 0;
    if (agent->st.state == CM_AGENT_BLOCKED)
        later(agent, STEP_NONE, 0); /* its channel is gone and would not be given again */
    else if (agent->step != STEP_NONE)
        go(agent, agent->step, now, out); /* what it was doing or waiting to do, now */
    finish(agent, out);
}

/* ------------------------------------------------------------ upgrade */

void
cm_agent_upgrade(CmAgent *agent, int new_tpm_version, CmTime now, CmAgentActions *out)
{
    g_autoptr(CmKsp) ksp = NULL;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(CmCert) cert = NULL;
    GError *err = NULL;
    gboolean reregister;

    g_return_if_fail(agent != NULL && out != NULL && out->sends != NULL);

    /* The same device: the same secret, which only the provider keeps. */
    ksp = cm_ksp_new_same_device(agent->ksp, agent->prof->media ? 0 : new_tpm_version);
    key = cm_ksp_generate(ksp, agent->prof->key_alg, &err);
    if (key != NULL)
        cert = agent_make_cert(agent, key, now, &err);
    if (cert == NULL) {
        g_info("%s: upgrade failed, keeping the current key: %s", agent->st.smsid, err->message);
        g_error_free(err);
        finish(agent, out);
        return;
    }
    /* Same SMSID and hardware ID, new key and certificate (REQ TRUST-12). */
    cm_ksp_free(agent->ksp);
    agent->ksp = g_steal_pointer(&ksp);
    cm_key_unref(agent->key);
    agent->key = g_steal_pointer(&key);
    cm_cert_unref(agent->cert);
    agent->cert = g_steal_pointer(&cert);
    agent->st.ksp = cm_ksp_kind(agent->ksp);
    agent->st.ksp_fell_back = cm_ksp_fell_back(agent->ksp);

    /* With a PKI certificate the client keeps its registration.  Without
     * one it registers the new certificate, at a random point of the start
     * window so that a mass upgrade does not arrive at once.  A client that
     * has not registered yet registers the new certificate when it gets
     * there, as does one that is still establishing trust in an MP (it
     * registers when the trust is established, never with an unverified
     * MP).  A blocked client stays silent. */
    if (agent_have_pki(agent) || agent->st.state == CM_AGENT_BLOCKED)
        reregister = FALSE;
    else if (agent->reg == REG_NONE && agent->st.state != CM_AGENT_REGISTERING)
        reregister = FALSE;
    else if (!agent->mp_trusted ||
             (agent->st.state != CM_AGENT_REGISTERING && agent->st.state != CM_AGENT_PENDING &&
              agent->st.state != CM_AGENT_ACTIVE)) {
        agent->reg = REG_NONE; /* resume() registers after the trust steps */
        reregister = FALSE;
    } else {
        reregister = TRUE;
    }
    if (reregister) {
        CmTime delay = agent->prof->start_window > 0
                           ? (CmTime)cm_rng_below(&agent->rng, (guint64)agent->prof->start_window)
                           : 0;
        agent->reg = REG_NONE;
        agent->inflight_id = 0; /* an answer for the old key is ignored */
        agent->inflight_ep = CM_EP_NONE;
        if (delay > 0)
            later(agent, STEP_REGISTER, now + delay);
        else
            go(agent, STEP_REGISTER, now, out);
    }
    finish(agent, out);
}
