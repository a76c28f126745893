/* cmlab-agent - real client agents over HTTP and HTTPS, one or many.
 *
 *   cmlab-agent --lab DIR [--count N] [--domain D] [--pki] [--until STATE]
 *
 * Each agent is the agent library with its own keys (a modelled TPM 2.0
 * seals them), its own certificates and its own connections: one HTTP
 * client each, so that no connection made with one agent's identity
 * carries another's requests.  --count N runs N of them in one process,
 * spread over --threads event loops, as a load generator.
 *
 * The agents install with the real installation properties: the site code
 * and SMSPublicRootKey (from DIR/site/trk.hex unless --no-trk), an
 * assigned MP (/mp:, round robin over the lab's MPs), and with --pki a
 * client authentication certificate from the lab's enterprise CA
 * (DIR/ca), as autoenrollment would give them.
 *
 * --kerberos: Windows-integrated authentication.  Every request offers
 * SPNEGO/Kerberos (libcurl Negotiate) with the credential cache KRB5CCNAME
 * names, which holds the computer account's ticket (LAB00000$@REALM, kinit
 * -k from its keytab, scripts/lab-kdc principal); an MP with a keytab
 * authenticates it and the site approves the registration automatically
 * when the realm's forest is trusted (approval trusted-domains, --domain
 * the realm's DNS name).  Without a ticket for the MP (an untrusted realm)
 * libcurl goes on unauthenticated and the agent waits for manual approval.
 *
 * --status FILE is rewritten every half second with each agent's state;
 * --until active|pending|blocked|inventory|policy ends the run (exit 0)
 * once every agent got there, or exit 1 at --timeout. */
#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cmagent.h"
#include "cmcmg.h"
#include "cmdp.h"

#define STATUS_EVERY_US (500 * 1000)
#define MAX_AGENTS 100000
#define MAX_MPS 16

typedef struct Lab Lab;
typedef struct Worker Worker;

typedef struct {
    Worker *w;
    guint index;
    CmAgent *agent;
    CmNetHttpc *http;
    struct event *timer;
    CmTime started;
    CmTime active_at;
    CmAgentSend *held; /* --prepare: its registration, waiting for the start */
    gboolean quiet;    /* --prepare: got to --until, sends nothing more */
    /* Content downloads (REQ DP-04), the driver's part: the agent library
     * accepts and verifies policies; the driver fetches the content they
     * name from a DP and checks it with the DP library against the
     * agent's verified policy (below, "content"). */
    GHashTable *content_seen; /* policy IDs looked at */
    char *dl_policy;          /* the policy whose content is downloading */
    CmDpManifest *dl_manifest;
    size_t dl_next;
    int content_ok, content_refused, content_failed;
} LabAgent;

struct Worker {
    Lab *lab;
    guint index;
    struct event_base *base;
    struct event *stop_ev;
    struct event *go_ev; /* --prepare: send the held registrations */
    GThread *thread;
    GMutex lock; /* held while the worker calls into its agents */
    GPtrArray *agents;
    gboolean stopping; /* cancelled requests no longer reach the agents */
};

typedef struct {
    char *name;
    char *address;
    guint http_port;
    guint https_port;
} LabMp;

struct Lab {
    GPtrArray *mps; /* LabMp* */
    GPtrArray *dps; /* LabMp* (name and ports) of the lab's DPs */
    gboolean dp_https;
    char **connect_to;
    char *site_code;
    char *trk;
    GPtrArray *roots;   /* CmCert* */
    CmCert *ca;         /* enterprise CA, for --pki */
    char **cmg_entries; /* --cmg: the CMG's internet MP entries (REQ CMG-10) */
    guint cmg_port;     /* its client listener */
    CmKey *ca_key;
    Worker *workers;
    guint n_workers;
    gint ready;     /* --prepare: agents with their registration held */
    gint gate_open; /* --prepare: the clock started */
};

typedef struct {
    LabAgent *a;
    guint64 id;
} Pending;

static char *opt_lab;
static int opt_count = 1;
static int opt_threads = 2;
static char *opt_domain;
static gboolean opt_pki;
static gboolean opt_no_trk;
static char *opt_until;
static char *opt_status;
static char *opt_timeout = "60s";
static char *opt_policy = "60s";
static char *opt_inventory = "10m";
static char *opt_keepalive = "15m";
static char *opt_retry = "2s";
static char *opt_retry_cap = "1h";
static char *opt_window = "0s";
static char **opt_inventory_props;
static gboolean opt_stay;
static gboolean opt_prepare;
static gboolean opt_wait_start;
static int opt_first;
static gboolean opt_verbose;
static gboolean opt_kerberos;
static gboolean opt_cmg;
static char *opt_bulk_token;

static GOptionEntry entries[] = {
    {"lab", 'l', 0, G_OPTION_ARG_FILENAME, &opt_lab, "The lab folder (scripts/lab up)", "DIR"},
    {"count", 'n', 0, G_OPTION_ARG_INT, &opt_count, "Agents to run (1)", "N"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Event loops to spread them over (2)", "T"},
    {"domain", 0, 0, G_OPTION_ARG_STRING, &opt_domain, "The agents' domain (none: workgroup)",
     "DOMAIN"},
    {"pki", 0, 0, G_OPTION_ARG_NONE, &opt_pki,
     "Enroll a PKI client certificate from DIR/ca and use it (UsePKICert)", NULL},
    {"kerberos", 0, 0, G_OPTION_ARG_NONE, &opt_kerberos,
     "Windows-integrated authentication: Kerberos (SPNEGO) with the ticket cache KRB5CCNAME names",
     NULL},
    {"no-trk", 0, 0, G_OPTION_ARG_NONE, &opt_no_trk,
     "Install without SMSPublicRootKey (trust on first use)", NULL},
    {"until", 'u', 0, G_OPTION_ARG_STRING, &opt_until,
     "Stop when every agent is: pending, active, blocked, inventory (sent one), policy (accepted "
     "one)",
     "STATE"},
    {"timeout", 0, 0, G_OPTION_ARG_STRING, &opt_timeout, "Give up --until after (60s)", "TIME"},
    {"prepare", 0, 0, G_OPTION_ARG_NONE, &opt_prepare,
     "Registration benchmark: run every agent up to its signed registration request (located, "
     "MP checked, connected) and hold it; start the clock when all are held and send them at "
     "once; an agent that got to --until sends nothing more",
     NULL},
    {"wait-start", 0, 0, G_OPTION_ARG_NONE, &opt_wait_start,
     "Once the agents are made, print \"ready\" and wait for SIGUSR1 to start them (several "
     "processes started together: one process holds fewer agents than its open-file limit)",
     NULL},
    {"first-index", 0, 0, G_OPTION_ARG_INT, &opt_first,
     "Number the agents from this index (their names LABnnnnn; for several processes)", "N"},
    {"stay", 0, 0, G_OPTION_ARG_NONE, &opt_stay,
     "Once --until is reached, print the summary and keep the agents running (their channels "
     "open) until SIGTERM or SIGINT",
     NULL},
    {"status", 's', 0, G_OPTION_ARG_FILENAME, &opt_status, "Write each agent's state here (JSON)",
     "FILE"},
    {"policy-interval", 0, 0, G_OPTION_ARG_STRING, &opt_policy, "Policy cycle (60s)", "TIME"},
    {"inventory-interval", 0, 0, G_OPTION_ARG_STRING, &opt_inventory, "Inventory cycle (10m)",
     "TIME"},
    {"keepalive-interval", 0, 0, G_OPTION_ARG_STRING, &opt_keepalive,
     "Notification keep-alives (15m; 0 for no channel)", "TIME"},
    {"retry-base", 0, 0, G_OPTION_ARG_STRING, &opt_retry, "Retry and poll backoff base (2s)",
     "TIME"},
    {"retry-cap", 0, 0, G_OPTION_ARG_STRING, &opt_retry_cap,
     "Longest retry and poll backoff (1h; at least the base)", "TIME"},
    {"start-window", 0, 0, G_OPTION_ARG_STRING, &opt_window,
     "Spread first contacts over this window (0s)", "TIME"},
    {"cmg", 0, 0, G_OPTION_ARG_NONE, &opt_cmg,
     "The agents are on the internet: they reach the site through the lab's CMG (DIR/cmg)", NULL},
    {"bulk-token", 0, 0, G_OPTION_ARG_STRING, &opt_bulk_token,
     "--cmg without --pki: the bulk registration token shown until the site issues the client "
     "its own",
     "TOKEN"},
    {"inventory", 'i', 0, G_OPTION_ARG_STRING_ARRAY, &opt_inventory_props,
     "Report inventory property KEY=VALUE (repeatable)", "KEY=VALUE"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Debug logging", NULL},
    {NULL}};

/* ------------------------------------------------------------ timing */

static CmTime
parse_time(const char *s, const char *what)
{
    g_autofree char *data = g_strdup_printf("[t]\nv = %s\n", s);
    g_autoptr(CmNetConfig) cfg = cm_net_config_new_from_data(data, -1, what, NULL);
    CmTime t = -1;
    GError *error = NULL;

    if (cfg == NULL ||
        !cm_net_config_duration(cfg, "t", "v", 0, 0, 365 * CM_USEC_PER_DAY, &t, &error)) {
        fprintf(stderr, "cmlab-agent: --%s: expected a duration such as 10s, got \"%s\"\n", what,
                s);
        g_clear_error(&error);
        exit(2);
    }
    return t;
}

/* ----------------------------------------------------------- driving */

static void run_actions(LabAgent *a, CmAgentActions *act);
static void content_next(LabAgent *a);

static const LabMp *
find_mp(Lab *lab, const char *name)
{
    for (guint i = 0; i < lab->mps->len; i++) {
        const LabMp *m = g_ptr_array_index(lab->mps, i);
        if (g_ascii_strcasecmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

static void
on_response(CmNetHttpResponse *hresp, void *user_data)
{
    Pending *p = user_data;
    LabAgent *a = p->a;
    CmAgentActions act;
    CmResponse resp = {0};
    gboolean got;

    if (a->w->stopping) {
        g_free(p);
        return;
    }
    got = cm_net_http_response_to_cm(hresp, &resp, NULL);
    g_debug("agent %u: answer %d %s%s%s", a->index, hresp->status, cm_reason_name(resp.reason),
            hresp->error ? ": " : "", hresp->error ? hresp->error->message : "");
    cm_agent_actions_init(&act);
    g_mutex_lock(&a->w->lock);
    cm_agent_on_response(a->agent, p->id, got ? &resp : NULL, cm_net_wall_now(), &act);
    run_actions(a, &act);
    g_mutex_unlock(&a->w->lock);
    cm_agent_actions_clear(&act);
    cm_response_clear(&resp);
    g_free(p);
}

/* A send to a CMG entry "<CMG>/CCM_Proxy_MutualAuth/<role ID>" (REQ
 * CMG-10): HTTPS to the gateway, the endpoint under the published folder;
 * with the PKI certificate in TLS (mutual auth), or a bearer token: the
 * client token once the site issued one, the bulk token before (REQ
 * CMG-12).  FALSE when it cannot be sent (the notification channel is not
 * carried).  Agents with a PKI certificate always use mutual auth. */
static gboolean
send_cmg(LabAgent *a, const CmAgentSend *send)
{
    Lab *lab = a->w->lab;
    const char *slash = strchr(send->mp, '/'), *last = strrchr(send->mp, '/');
    CmCmgAuth auth = opt_pki ? CM_CMG_AUTH_MUTUAL : CM_CMG_AUTH_SERVER;
    const char *token =
        cm_agent_cmg_token(a->agent) ? cm_agent_cmg_token(a->agent) : opt_bulk_token;
    g_autofree char *host = NULL, *path = NULL, *query = NULL, *url = NULL, *bearer = NULL;
    const char *headers[2] = {NULL, NULL};
    CmNetHttpRequest hreq = {0};
    CmRequest req;
    Pending *p;
    GError *error = NULL;

    if (slash == NULL || lab->cmg_port == 0 ||
        !cm_cmg_client_path(auth, g_ascii_strtoull(last + 1, NULL, 10), send->ep, &path, &query))
        return FALSE;
    host = g_strndup(send->mp, (gsize)(slash - send->mp));
    url =
        g_strdup_printf("https://%s:%u%s%s%s", host, lab->cmg_port, path, *query ? "?" : "", query);
    if (auth == CM_CMG_AUTH_SERVER && token != NULL) {
        bearer = g_strconcat("Authorization: Bearer ", token, NULL);
        headers[0] = bearer;
    }
    cm_agent_send_request(send, &req);
    hreq.url = url;
    hreq.msg = &req;
    hreq.headers = headers;
    p = g_new0(Pending, 1);
    p->a = a;
    p->id = send->id;
    if (cm_net_httpc_send(a->http, &hreq, on_response, p, &error))
        return TRUE;
    g_free(p);
    g_debug("agent %u: %s", a->index, error->message);
    g_error_free(error);
    return FALSE;
}

/* Whether one agent got to the --until state. */
static gboolean
agent_reached(const CmAgentStatus *st)
{
    if (opt_until == NULL)
        return FALSE;
    if (strcmp(opt_until, "pending") == 0)
        return st->state == CM_AGENT_PENDING || st->state == CM_AGENT_ACTIVE;
    if (strcmp(opt_until, "active") == 0)
        return st->state == CM_AGENT_ACTIVE;
    if (strcmp(opt_until, "blocked") == 0)
        return st->state == CM_AGENT_BLOCKED;
    if (strcmp(opt_until, "inventory") == 0)
        return st->inventories_sent > 0;
    if (strcmp(opt_until, "policy") == 0)
        return st->policies_accepted > 0;
    return FALSE;
}

static void
send_one(LabAgent *a, const CmAgentSend *send)
{
    Lab *lab = a->w->lab;
    const LabMp *mp = find_mp(lab, send->mp);
    CmNetHttpRequest hreq = {0};
    CmRequest req;
    g_autofree char *url = NULL;
    Pending *p;
    GError *error = NULL;
    CmAgentActions act;

    if (opt_prepare && a->quiet)
        return;
    if (opt_prepare && send->ep == CM_EP_REGISTER && !g_atomic_int_get(&lab->gate_open) &&
        a->held == NULL) {
        a->held = g_new(CmAgentSend, 1);
        *a->held = *send;
        if (send->body != NULL)
            g_bytes_ref(send->body);
        g_atomic_int_inc(&lab->ready);
        return;
    }
    if (strstr(send->mp, "/CCM_Proxy_") != NULL) {
        if (send_cmg(a, send))
            return;
    } else if (mp != NULL) {
        gboolean tls = send->transport != CM_TRANSPORT_HTTP;
        url = g_strdup_printf("%s://%s:%u%s", tls ? "https" : "http", mp->name,
                              tls ? mp->https_port : mp->http_port, cm_ep_path(send->ep));
        cm_agent_send_request(send, &req);
        hreq.url = url;
        hreq.msg = &req;
        /* The first location request goes over plain HTTP (and is refused
         * when the site wants HTTPS): its connection closes at once, so an
         * MP holds one connection per client. */
        hreq.close_after = !tls && send->ep == CM_EP_LOCATION;
        p = g_new0(Pending, 1);
        p->a = a;
        p->id = send->id;
        if (cm_net_httpc_send(a->http, &hreq, on_response, p, &error))
            return;
        g_free(p);
        g_debug("agent %u: %s", a->index, error->message);
        g_clear_error(&error);
    }
    /* No such MP in the lab, or a request that cannot be made: the agent
     * sees a transport failure and moves on, as it would. */
    cm_agent_actions_init(&act);
    cm_agent_on_response(a->agent, send->id, NULL, cm_net_wall_now(), &act);
    run_actions(a, &act);
    cm_agent_actions_clear(&act);
}

static void
run_actions(LabAgent *a, CmAgentActions *act)
{
    const CmAgentStatus *st = cm_agent_status(a->agent);

    if (opt_prepare && agent_reached(st))
        a->quiet = TRUE;
    for (guint i = 0; i < act->sends->len; i++) {
        const CmAgentSend *send = g_ptr_array_index(act->sends, i);
        g_debug("agent %u: %s to %s over %s", a->index, cm_ep_name(send->ep), send->mp,
                cm_transport_name(send->transport));
        send_one(a, send);
    }
    if (act->wake_at > 0) {
        CmTime delay = MAX(act->wake_at - cm_net_wall_now(), 0);
        struct timeval tv = {.tv_sec = delay / CM_USEC_PER_SEC, .tv_usec = delay % CM_USEC_PER_SEC};
        evtimer_add(a->timer, &tv);
    }
    st = cm_agent_status(a->agent);
    if (st->state == CM_AGENT_ACTIVE && a->active_at == 0)
        a->active_at = cm_net_wall_now();
    if (a->dl_policy == NULL)
        content_next(a);
}

/* ----------------------------------------------------------- content */

static void
content_done(LabAgent *a, int *counter, const char *why)
{
    (*counter)++;
    if (why != NULL)
        g_message("agent %u: content of %s: %s", a->index, a->dl_policy, why);
    g_clear_pointer(&a->dl_policy, g_free);
    g_clear_pointer(&a->dl_manifest, cm_dp_manifest_free);
    a->dl_next = 0;
}

static char *
content_url(LabAgent *a, const char *content_id, const char *file)
{
    Lab *lab = a->w->lab;
    const LabMp *dp = g_ptr_array_index(lab->dps, a->index % lab->dps->len);

    return g_strdup_printf("%s://%s:%u/SMS_DP_SMSPKG$/%s%s%s", lab->dp_https ? "https" : "http",
                           dp->name, lab->dp_https ? dp->https_port : dp->http_port, content_id,
                           file ? "/" : "", file ? file : "");
}

static void
on_content(CmNetHttpResponse *hresp, void *user_data)
{
    LabAgent *a = user_data;
    const json_t *policy;
    const guint8 *data;
    gsize len = 0;
    GError *error = NULL;

    if (a->w->stopping)
        return;
    g_mutex_lock(&a->w->lock);
    if (hresp->status != 200) {
        g_autofree char *why =
            g_strdup_printf("the DP answered %d%s%s", hresp->status, hresp->error ? ": " : "",
                            hresp->error ? hresp->error->message : "");
        content_done(a, &a->content_failed, why);
        goto next;
    }
    data = g_bytes_get_data(hresp->body, &len);
    policy = cm_agent_policy(a->agent, a->dl_policy);
    if (a->dl_manifest == NULL) {
        /* The manifest first: its hash must be the signed policy's. */
        a->dl_manifest = cm_dp_manifest_verify(policy, data, len, &error);
    } else {
        const CmDpEntry *e = cm_dp_manifest_entry(a->dl_manifest, a->dl_next);
        if (cm_dp_file_verify(a->dl_manifest, e->name, data, len, &error))
            a->dl_next++;
    }
    if (error != NULL) {
        content_done(a, &a->content_refused, error->message);
        g_error_free(error);
    } else if (a->dl_next == cm_dp_manifest_count(a->dl_manifest)) {
        content_done(a, &a->content_ok, NULL);
    }
next:
    content_next(a);
    g_mutex_unlock(&a->w->lock);
}

/* Starts or continues a download; under the worker's lock. */
static void
content_next(LabAgent *a)
{
    const CmAgentStatus *st = cm_agent_status(a->agent);
    const char *cid = NULL;
    g_autofree char *url = NULL;
    CmNetHttpRequest req = {.method = "GET"};
    GError *error = NULL;

    if (a->w->lab->dps->len == 0)
        return;
    if (a->dl_policy == NULL) {
        for (guint i = 0; st->policy_ids != NULL && i < st->policy_ids->len; i++) {
            const char *id = g_ptr_array_index(st->policy_ids, i);
            const json_t *content;
            if (g_hash_table_contains(a->content_seen, id))
                continue;
            g_hash_table_add(a->content_seen, g_strdup(id));
            content = json_object_get(cm_agent_policy(a->agent, id), "content");
            if (json_is_object(content) && json_is_string(json_object_get(content, "id"))) {
                a->dl_policy = g_strdup(id);
                break;
            }
        }
        if (a->dl_policy == NULL)
            return;
    }
    cid = json_string_value(
        json_object_get(json_object_get(cm_agent_policy(a->agent, a->dl_policy), "content"), "id"));
    url = content_url(
        a, cid, a->dl_manifest ? cm_dp_manifest_entry(a->dl_manifest, a->dl_next)->name : NULL);
    req.url = url;
    if (!cm_net_httpc_send(a->http, &req, on_content, a, &error)) {
        content_done(a, &a->content_failed, error->message);
        g_error_free(error);
    }
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    LabAgent *a = arg;
    CmAgentActions act;

    (void)fd;
    (void)what;
    cm_agent_actions_init(&act);
    g_mutex_lock(&a->w->lock);
    cm_agent_on_timer(a->agent, cm_net_wall_now(), &act);
    run_actions(a, &act);
    g_mutex_unlock(&a->w->lock);
    cm_agent_actions_clear(&act);
}

static void
on_start(evutil_socket_t fd, short what, void *arg)
{
    Worker *w = arg;

    (void)fd;
    (void)what;
    for (guint i = 0; i < w->agents->len; i++) {
        LabAgent *a = g_ptr_array_index(w->agents, i);
        CmAgentActions act;
        cm_agent_actions_init(&act);
        g_mutex_lock(&w->lock);
        a->started = cm_net_wall_now();
        cm_agent_start(a->agent, a->started, &act);
        run_actions(a, &act);
        g_mutex_unlock(&w->lock);
        cm_agent_actions_clear(&act);
    }
}

/* --prepare: the clock started; every held registration goes now. */
static void
on_go(evutil_socket_t fd, short what, void *arg)
{
    Worker *w = arg;

    (void)fd;
    (void)what;
    g_mutex_lock(&w->lock);
    for (guint i = 0; i < w->agents->len; i++) {
        LabAgent *a = g_ptr_array_index(w->agents, i);
        CmAgentSend *send = g_steal_pointer(&a->held);
        if (send == NULL)
            continue;
        a->started = cm_net_wall_now();
        send_one(a, send);
        if (send->body != NULL)
            g_bytes_unref(send->body);
        g_free(send);
    }
    g_mutex_unlock(&w->lock);
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    Worker *w = arg;

    (void)fd;
    (void)what;
    w->stopping = TRUE;
    event_base_loopbreak(w->base);
}

static gpointer
worker_main(gpointer data)
{
    Worker *w = data;

    event_base_dispatch(w->base);
    return NULL;
}

/* ------------------------------------------------------------ set-up */

static CmCert *
enroll_pki(Lab *lab, const char *name, CmKey **key_out, GError **error)
{
    CmTime now = cm_net_wall_now();
    g_autoptr(CmKey) key = cm_key_generate(CM_KEY_EC_P256, error);
    CmRng rng;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_AUTH,
                       .subject_cn = name,
                       .not_before = now - CM_USEC_PER_HOUR,
                       .not_after = now + 365 * CM_USEC_PER_DAY,
                       .issuer_key = lab->ca_key,
                       .issuer_cert = lab->ca};
    CmCert *cert;

    if (key == NULL)
        return NULL;
    /* Serials from the OS generator: many agents enroll at once, and a CRL
     * revokes by serial. */
    cm_rng_init_os(&rng);
    spec.serial = (cm_rng_u64(&rng) >> 2) | 0x100000;
    spec.subject_key = key;
    cert = cm_cert_issue(&spec, error);
    if (cert != NULL)
        *key_out = g_steal_pointer(&key);
    return cert;
}

static LabAgent *
agent_new(Lab *lab, Worker *w, guint index, GError **error)
{
    LabAgent *a = g_new0(LabAgent, 1);
    CmAgentConfig c;
    CmRng rng;
    guint8 secret[32];
    g_autofree char *name = g_strdup_printf("LAB%05u", index);
    g_autoptr(CmCert) pki = NULL;
    g_autoptr(CmKey) pki_key = NULL;
    g_autofree const char **dns = g_new0(const char *, lab->mps->len + 1);
    const LabMp *assigned = g_ptr_array_index(lab->mps, index % lab->mps->len);
    CmNetHttpcConfig hc = {0};

    a->w = w;
    a->index = index;
    cm_rng_init_os(&rng);
    cm_rng_bytes(&rng, secret, sizeof secret);
    for (guint i = 0; i < lab->mps->len; i++)
        dns[i] = ((LabMp *)g_ptr_array_index(lab->mps, i))->name;
    cm_agent_config_default(&c);
    c.smssitecode = lab->site_code;
    c.smspublicrootkey = opt_no_trk ? NULL : lab->trk;
    c.mp = assigned->name;
    c.dns_mps = dns;
    if (lab->cmg_entries != NULL) {
        /* On the internet: the CMG is all it can reach, and it does not
         * carry the notification channel. */
        c.mp = lab->cmg_entries[index % g_strv_length(lab->cmg_entries)];
        c.dns_mps = NULL;
        c.on_internet = TRUE;
    }
    c.name = name;
    c.domain = opt_domain;
    c.tpm_version = 2;
    c.device_secret = secret;
    c.policy_interval = parse_time(opt_policy, "policy-interval");
    c.inventory_interval = parse_time(opt_inventory, "inventory-interval");
    c.keepalive_interval = parse_time(opt_keepalive, "keepalive-interval");
    c.retry_base = parse_time(opt_retry, "retry-base");
    c.retry_cap = parse_time(opt_retry_cap, "retry-cap");
    c.start_window = parse_time(opt_window, "start-window");
    if (lab->cmg_entries != NULL)
        c.keepalive_interval = 0;
    if (opt_pki) {
        g_autofree char *cn = g_strdup_printf("%s.%s", name, opt_domain ? opt_domain : "lab");
        pki = enroll_pki(lab, cn, &pki_key, error);
        if (pki == NULL)
            goto fail;
        c.pki_cert = pki;
        c.pki_key = pki_key;
        c.usepkicert = TRUE;
    }
    a->agent = cm_agent_new(&c, &rng, cm_net_wall_now(), error);
    memset(secret, 0, sizeof secret);
    if (a->agent == NULL)
        goto fail;
    for (char **kv = opt_inventory_props; kv != NULL && *kv != NULL; kv++) {
        const char *eq = strchr(*kv, '=');
        g_autofree char *k = eq ? g_strndup(*kv, (gsize)(eq - *kv)) : NULL;
        if (k != NULL)
            cm_agent_set_inventory(a->agent, k, eq + 1);
    }
    /* One identity per client: the agent's PKI certificate when it has
     * one; its self-signed certificate never goes in TLS. */
    hc.client_cert = pki;
    hc.client_key = pki_key;
    hc.ca_certs = (const CmCert *const *)lab->roots->pdata;
    hc.n_ca_certs = lab->roots->len;
    hc.connect_to = (const char *const *)lab->connect_to;
    /* In a storm the MP's accept queue and handshakes take a while: a
     * client that gave up early would only come back and add to it. */
    hc.connect_timeout_ms = 30000;
    hc.timeout_ms = 60000;
    hc.negotiate = opt_kerberos;
    /* One connection per agent: the plain HTTP one of its first location
     * request closes once the agent moved to HTTPS, so an MP holds one
     * connection (the notification channel) per client. */
    hc.max_connections = 1;
    /* ... and it stays open between keep-alives, however far apart. */
    hc.max_idle_s = (guint)MIN(c.keepalive_interval / CM_USEC_PER_SEC * 2 + 60, 7 * 86400);
    a->http = cm_net_httpc_new(w->base, &hc, error);
    if (a->http == NULL)
        goto fail;
    a->timer = evtimer_new(w->base, on_timer, a);
    a->content_seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return a;
fail:
    cm_agent_free(a->agent);
    g_free(a);
    return NULL;
}

static void
agent_free(LabAgent *a)
{
    cm_net_httpc_free(a->http);
    event_free(a->timer);
    if (a->content_seen != NULL)
        g_hash_table_unref(a->content_seen);
    g_free(a->dl_policy);
    if (a->held != NULL) {
        if (a->held->body != NULL)
            g_bytes_unref(a->held->body);
        g_free(a->held);
    }
    if (a->dl_manifest != NULL)
        cm_dp_manifest_free(a->dl_manifest);
    cm_agent_free(a->agent);
    g_free(a);
}

/* An MP's or DP's name and ports (kind "mp" or "dp": its .conf and .addr). */
static gboolean
load_server(Lab *lab, const char *dir, const char *kind, GPtrArray *into, GError **error)
{
    g_autofree char *conf_name = g_strdup_printf("%s.conf", kind);
    g_autofree char *addr_name = g_strdup_printf("%s.addr", kind);
    g_autofree char *conf = g_build_filename(dir, conf_name, NULL);
    g_autofree char *addr = g_build_filename(dir, addr_name, NULL);
    g_autoptr(GKeyFile) kc = g_key_file_new(), ka = g_key_file_new();
    g_autofree char *http = NULL, *https = NULL;
    LabMp *m;
    const char *c1, *c2;

    if (!g_key_file_load_from_file(kc, conf, G_KEY_FILE_NONE, error) ||
        !g_key_file_load_from_file(ka, addr, G_KEY_FILE_NONE, error) ||
        (http = g_key_file_get_string(ka, "listen", "http", error)) == NULL ||
        (https = g_key_file_get_string(ka, "listen", "https", error)) == NULL)
        return FALSE;
    c1 = strrchr(http, ':');
    c2 = strrchr(https, ':');
    if (c1 == NULL || c2 == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: expected ADDRESS:PORT", addr);
        return FALSE;
    }
    m = g_new0(LabMp, 1);
    m->name = g_key_file_get_string(kc, kind, "name", error);
    if (m->name == NULL) {
        g_free(m);
        return FALSE;
    }
    m->address = g_strndup(http, (gsize)(c1 - http));
    m->http_port = (guint)atoi(c1 + 1);
    m->https_port = (guint)atoi(c2 + 1);
    if (strcmp(kind, "dp") == 0)
        lab->dp_https = g_key_file_get_boolean(kc, "dp", "https", NULL);
    g_ptr_array_add(into, m);
    return TRUE;
}

static void
mp_free(gpointer data)
{
    LabMp *m = data;
    g_free(m->name);
    g_free(m->address);
    g_free(m);
}

static gboolean
load_lab(Lab *lab, GError **error)
{
    g_autoptr(GDir) dir = g_dir_open(opt_lab, 0, error);
    g_autofree char *trk = g_build_filename(opt_lab, "site", "trk.hex", NULL);
    g_autofree char *sconf = g_build_filename(opt_lab, "site", "site.conf", NULL);
    g_autofree char *root = g_build_filename(opt_lab, "site", "issuing-root.pem", NULL);
    g_autofree char *ca = g_build_filename(opt_lab, "ca", "ca.pem", NULL);
    g_autofree char *ca_key = g_build_filename(opt_lab, "ca", "ca.key", NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GPtrArray) connect = g_ptr_array_new();
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *entry;
    CmCert *cert;

    if (dir == NULL)
        return FALSE;
    while ((entry = g_dir_read_name(dir)) != NULL)
        if (g_str_has_prefix(entry, "mp") || g_str_has_prefix(entry, "dp"))
            g_ptr_array_add(names, g_strdup(entry));
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < names->len && lab->mps->len + lab->dps->len < 2 * MAX_MPS; i++) {
        const char *e = g_ptr_array_index(names, i);
        g_autofree char *d = g_build_filename(opt_lab, e, NULL);
        gboolean mp = g_str_has_prefix(e, "mp");
        if (g_file_test(d, G_FILE_TEST_IS_DIR) &&
            !load_server(lab, d, mp ? "mp" : "dp", mp ? lab->mps : lab->dps, error))
            return FALSE;
    }
    if (lab->mps->len == 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: no MP folders (mp*/) with mp.addr", opt_lab);
        return FALSE;
    }
    if (!g_key_file_load_from_file(kf, sconf, G_KEY_FILE_NONE, error) ||
        (lab->site_code = g_key_file_get_string(kf, "site", "code", error)) == NULL ||
        (lab->trk = cm_daemon_read_file(trk, 4096, NULL, error)) == NULL)
        return FALSE;
    g_strstrip(lab->trk);
    if ((cert = cm_daemon_load_cert(root, error)) == NULL)
        return FALSE;
    g_ptr_array_add(lab->roots, cert);
    if (g_file_test(ca, G_FILE_TEST_EXISTS)) {
        if ((lab->ca = cm_daemon_load_cert(ca, error)) == NULL)
            return FALSE;
        g_ptr_array_add(lab->roots, cm_cert_ref(lab->ca));
        if (opt_pki && (lab->ca_key = cm_daemon_load_key(ca_key, error)) == NULL)
            return FALSE;
    } else if (opt_pki) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "--pki: %s has no enterprise CA (ca/)", opt_lab);
        return FALSE;
    }
    /* MP names resolve to their loopback addresses without DNS, and TLS
     * still checks the names in the certificates. */
    for (guint i = 0; i < lab->mps->len + lab->dps->len; i++) {
        const LabMp *m = i < lab->mps->len ? g_ptr_array_index(lab->mps, i)
                                           : g_ptr_array_index(lab->dps, i - lab->mps->len);
        g_ptr_array_add(connect, g_strdup_printf("%s:%u:%s:%u", m->name, m->http_port, m->address,
                                                 m->http_port));
        g_ptr_array_add(connect, g_strdup_printf("%s:%u:%s:%u", m->name, m->https_port, m->address,
                                                 m->https_port));
    }
    if (opt_cmg) {
        /* The gateway's name resolves to its loopback listener too. */
        g_autofree char *scmg = g_build_filename(opt_lab, "site", "cmg.conf", NULL);
        g_autofree char *caddr = g_build_filename(opt_lab, "cmg", "cmg.addr", NULL);
        g_autoptr(GKeyFile) kc = g_key_file_new(), ka = g_key_file_new();
        g_autofree char *name = NULL, *https = NULL;
        const char *colon;
        if (!g_key_file_load_from_file(kc, scmg, G_KEY_FILE_NONE, error) ||
            !g_key_file_load_from_file(ka, caddr, G_KEY_FILE_NONE, error) ||
            (name = g_key_file_get_string(kc, "cmg", "name", error)) == NULL ||
            (lab->cmg_entries = g_key_file_get_string_list(kc, "cmg", "entries", NULL, error)) ==
                NULL ||
            (https = g_key_file_get_string(ka, "listen", "https", error)) == NULL)
            return FALSE;
        colon = strrchr(https, ':');
        if (colon == NULL || g_strv_length(lab->cmg_entries) == 0) {
            g_set_error(error, CM_DAEMON_ERROR, 0, "%s: expected ADDRESS:PORT and entries", caddr);
            return FALSE;
        }
        lab->cmg_port = (guint)atoi(colon + 1);
        g_ptr_array_add(connect, g_strdup_printf("%s:%u:%.*s:%u", name, lab->cmg_port,
                                                 (int)(colon - https), https, lab->cmg_port));
    }
    g_ptr_array_add(connect, NULL);
    lab->connect_to = (char **)g_ptr_array_free(g_steal_pointer(&connect), FALSE);
    return TRUE;
}

/* ------------------------------------------------------------ status */

typedef struct {
    guint by_state[CM_AGENT_FAILED + 1];
    guint with_inventory;
    guint with_policy;
    gint64 registrations, retries, policies, inventories, keepalives, refused;
    gint64 content_ok, content_refused;
    double active_secs_sum;
    guint active_n;
    CmTime last_active; /* when the last agent became active (wall clock) */
} Totals;

/* When the clock started (after the agents were made, and with --prepare
 * once every registration was ready). */
static CmTime run_t0;

/* Reads every agent under its worker's lock; writes the status file when
 * asked. */
static void
collect(Lab *lab, Totals *t, const char *status_path)
{
    json_t *list = status_path ? json_array() : NULL;

    memset(t, 0, sizeof *t);
    for (guint w = 0; w < lab->n_workers; w++) {
        Worker *wk = &lab->workers[w];
        g_mutex_lock(&wk->lock);
        for (guint i = 0; i < wk->agents->len; i++) {
            LabAgent *a = g_ptr_array_index(wk->agents, i);
            const CmAgentStatus *st = cm_agent_status(a->agent);
            t->by_state[st->state]++;
            t->with_inventory += st->inventories_sent > 0;
            t->with_policy += st->policies_accepted > 0;
            t->registrations += st->registrations;
            t->retries += st->retries;
            t->policies += st->policies_accepted;
            t->refused += st->policies_refused;
            t->inventories += st->inventories_sent;
            t->keepalives += st->keepalives_sent;
            if (a->active_at > 0) {
                t->active_secs_sum += (double)(a->active_at - a->started) / 1e6;
                t->active_n++;
                t->last_active = MAX(t->last_active, a->active_at);
            }
            if (list != NULL)
                json_array_append_new(
                    list, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:b}",
                                    "index", (int)a->index, "smsid", st->smsid, "state",
                                    cm_agent_state_name(st->state), "mp", st->mp, "transport",
                                    cm_transport_name(st->transport), "trk_source",
                                    cm_trust_source_name(st->trk_source), "registrations",
                                    st->registrations, "policies_accepted", st->policies_accepted,
                                    "policies_refused", st->policies_refused, "inventories_sent",
                                    st->inventories_sent, "keepalives_answered",
                                    st->keepalives_answered, "channel_open", st->channel_open));
            if (list != NULL) {
                json_t *o = json_array_get(list, json_array_size(list) - 1);
                json_object_set_new(o, "content_verified", json_integer(a->content_ok));
                json_object_set_new(o, "content_refused", json_integer(a->content_refused));
                json_object_set_new(o, "content_failed", json_integer(a->content_failed));
            }
            t->content_ok += a->content_ok;
            t->content_refused += a->content_refused;
        }
        g_mutex_unlock(&wk->lock);
    }
    if (list != NULL) {
        g_autofree char *text = json_dumps(list, JSON_INDENT(1));
        GError *error = NULL;
        if (!cm_daemon_write_file(status_path, text, strlen(text), 0644, &error)) {
            g_warning("%s", error->message);
            g_error_free(error);
        }
        json_decref(list);
    }
}

static gboolean
reached(const Totals *t, guint n)
{
    if (opt_until == NULL)
        return FALSE;
    if (strcmp(opt_until, "pending") == 0)
        return t->by_state[CM_AGENT_PENDING] + t->by_state[CM_AGENT_ACTIVE] == n;
    if (strcmp(opt_until, "active") == 0)
        return t->by_state[CM_AGENT_ACTIVE] == n;
    if (strcmp(opt_until, "blocked") == 0)
        return t->by_state[CM_AGENT_BLOCKED] == n;
    if (strcmp(opt_until, "inventory") == 0)
        return t->with_inventory == n;
    if (strcmp(opt_until, "policy") == 0)
        return t->with_policy == n;
    return FALSE;
}

static void
print_summary(const Totals *t, guint n, double secs)
{
    printf("cmlab-agent: %u agents after %.1f s:", n, secs);
    for (int s = 0; s <= CM_AGENT_FAILED; s++)
        if (t->by_state[s] > 0)
            printf(" %s %u", cm_agent_state_name((CmAgentState)s), t->by_state[s]);
    printf("\n  registrations %" G_GINT64_FORMAT ", retries %" G_GINT64_FORMAT
           ", policies accepted %" G_GINT64_FORMAT " refused %" G_GINT64_FORMAT
           ", inventories %" G_GINT64_FORMAT ", keep-alives %" G_GINT64_FORMAT "\n",
           t->registrations, t->retries, t->policies, t->refused, t->inventories, t->keepalives);
    if (t->content_ok + t->content_refused > 0)
        printf("  content verified %" G_GINT64_FORMAT ", refused %" G_GINT64_FORMAT "\n",
               t->content_ok, t->content_refused);
    if (t->active_n > 0)
        printf("  time to active: mean %.2f s over %u agents; the last active %.3f s after the "
               "start\n",
               t->active_secs_sum / t->active_n, t->active_n,
               (double)(t->last_active - run_t0) / 1e6);
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("- real cmlab client agents");
    GError *error = NULL;
    Lab lab = {0};
    Totals t;
    CmTime timeout, t0;
    gboolean done = FALSE, until_reached = FALSE;
    int rc = 2;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Installs --count agents against the lab in --lab and "
                                      "runs them until SIGTERM, SIGINT or --until.");
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || opt_lab == NULL || argc != 1 ||
        opt_count < 1 || opt_count > MAX_AGENTS || opt_threads < 1 || opt_threads > 64 ||
        opt_first < 0 || opt_first > 10 * MAX_AGENTS) {
        fprintf(stderr, "cmlab-agent: %s (see --help)\n",
                error ? error->message
                      : "give --lab DIR, --count 1 to 100000 and --threads 1 to 64");
        g_clear_error(&error);
        return 2;
    }
    if (opt_until != NULL && !g_strv_contains((const char *const[]){"pending", "active", "blocked",
                                                                    "inventory", "policy", NULL},
                                              opt_until)) {
        fprintf(stderr, "cmlab-agent: --until: expected pending, active, blocked, inventory or "
                        "policy\n");
        return 2;
    }
    timeout = parse_time(opt_timeout, "timeout");
    cm_net_init();
    cm_daemon_log_init("cmlab-agent", opt_verbose);
    /* A load generator: its agents all parse the same MP certificate, site
     * signing certificate and trusted root key, and each of those parses
     * costs more than the signature checks made with them (OpenSSL 3.0's
     * decoders).  Equal bytes share one parsed object, as in the simulator;
     * every agent still makes each check itself.  A single agent parses
     * what it receives, as a client does. */
    if (opt_count > 1)
        cm_parse_cache_enable(TRUE);
    lab.mps = g_ptr_array_new_with_free_func(mp_free);
    lab.dps = g_ptr_array_new_with_free_func(mp_free);
    lab.roots = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    if (!load_lab(&lab, &error))
        goto out;
    /* Per agent: its connection, one more while it moves from HTTP to
     * HTTPS, and libcurl's wake-up socket pair of its multi handle. */
    {
        guint64 want = (guint64)opt_count * 4 + 256, got = 0;
        if (!cm_net_raise_fd_limit(want, &got, &error)) {
            g_warning("%s: some of the %d agents will fail to connect", error->message, opt_count);
            g_clear_error(&error);
        }
    }
    /* SIGTERM and SIGINT stop the run like --until does; blocked before
     * any thread starts so that only the main thread takes them. */
    {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    lab.n_workers = (guint)MIN(opt_threads, opt_count);
    lab.workers = g_new0(Worker, lab.n_workers);
    for (guint w = 0; w < lab.n_workers; w++) {
        Worker *wk = &lab.workers[w];
        wk->lab = &lab;
        wk->index = w;
        wk->base = cm_net_event_base_new();
        wk->agents = g_ptr_array_new_with_free_func((GDestroyNotify)agent_free);
        wk->stop_ev = event_new(wk->base, -1, 0, on_stop, wk);
        wk->go_ev = event_new(wk->base, -1, 0, on_go, wk);
        g_mutex_init(&wk->lock);
    }
    for (guint i = 0; i < (guint)opt_count; i++) {
        Worker *wk = &lab.workers[i % lab.n_workers];
        LabAgent *a = agent_new(&lab, wk, (guint)opt_first + i, &error);
        if (a == NULL)
            goto out;
        g_ptr_array_add(wk->agents, a);
    }
    if (opt_wait_start) {
        sigset_t set;
        int sig = 0;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGUSR1);
        printf("cmlab-agent: %d agents ready\n", opt_count);
        fflush(stdout);
        if (sigwait(&set, &sig) != 0 || sig != SIGUSR1) {
            rc = 0;
            goto out;
        }
    }
    t0 = cm_net_wall_now();
    run_t0 = t0;
    for (guint w = 0; w < lab.n_workers; w++) {
        Worker *wk = &lab.workers[w];
        event_base_once(wk->base, -1, EV_TIMEOUT, on_start, wk, NULL);
        wk->thread = g_thread_new("agents", worker_main, wk);
    }
    g_message("%d agents started against %u MPs", opt_count, lab.mps->len);
    if (opt_prepare) {
        /* The clock starts once every registration is signed and waiting
         * on a connection to its MP. */
        while (g_atomic_int_get(&lab.ready) < opt_count && cm_net_wall_now() - t0 < timeout)
            g_usleep(20000);
        printf("cmlab-agent: %d of %d registrations ready after %.1f s; sending them\n",
               g_atomic_int_get(&lab.ready), opt_count, (double)(cm_net_wall_now() - t0) / 1e6);
        fflush(stdout);
        t0 = cm_net_wall_now();
        run_t0 = t0;
        g_atomic_int_set(&lab.gate_open, 1);
        for (guint w = 0; w < lab.n_workers; w++)
            event_active(lab.workers[w].go_ev, EV_TIMEOUT, 0);
    }
    {
        sigset_t set;
        struct timespec ts = {0, STATUS_EVERY_US * 1000};
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        while (!done) {
            int sig = sigtimedwait(&set, NULL, &ts);
            collect(&lab, &t, opt_status);
            if (sig == SIGTERM || sig == SIGINT) {
                rc = 0;
                done = TRUE;
            } else if (!until_reached && reached(&t, (guint)opt_count)) {
                rc = 0;
                until_reached = TRUE;
                done = !opt_stay;
                if (opt_stay) {
                    /* A benchmark times the run to here, then measures the
                     * daemons with every agent still connected. */
                    print_summary(&t, (guint)opt_count, (double)(cm_net_wall_now() - t0) / 1e6);
                    fflush(stdout);
                }
            } else if (opt_until != NULL && !until_reached && cm_net_wall_now() - t0 > timeout) {
                g_warning("--until %s: not every agent got there in %s", opt_until, opt_timeout);
                rc = 1;
                done = TRUE;
            }
        }
    }
    for (guint w = 0; w < lab.n_workers; w++) {
        event_active(lab.workers[w].stop_ev, EV_TIMEOUT, 0);
        g_thread_join(lab.workers[w].thread);
        lab.workers[w].thread = NULL;
    }
    collect(&lab, &t, opt_status);
    print_summary(&t, (guint)opt_count, (double)(cm_net_wall_now() - t0) / 1e6);
out:
    if (error != NULL) {
        g_critical("cmlab-agent: %s", error->message);
        g_error_free(error);
        rc = 2;
    }
    for (guint w = 0; lab.workers != NULL && w < lab.n_workers; w++) {
        Worker *wk = &lab.workers[w];
        if (wk->thread != NULL) {
            event_active(wk->stop_ev, EV_TIMEOUT, 0);
            g_thread_join(wk->thread);
        }
        wk->stopping = TRUE;
        g_ptr_array_unref(wk->agents);
        event_free(wk->stop_ev);
        event_free(wk->go_ev);
        event_base_free(wk->base);
        g_mutex_clear(&wk->lock);
    }
    g_free(lab.workers);
    g_ptr_array_unref(lab.mps);
    g_ptr_array_unref(lab.dps);
    g_ptr_array_unref(lab.roots);
    g_strfreev(lab.connect_to);
    g_strfreev(lab.cmg_entries);
    g_free(lab.site_code);
    g_free(lab.trk);
    cm_cert_unref(lab.ca);
    cm_key_unref(lab.ca_key);
    cm_parse_cache_enable(FALSE); /* frees what it holds (leak checks) */
    return rc;
}
