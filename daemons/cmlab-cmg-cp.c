/* cmlab-cmg-cp.c - the CMG connection point daemon: cmlab-cmg
 * connection-point --dir CPDIR.
 *
 * It runs inside the intranet and opens every connection itself: mutual
 * TLS to the gateway's connection point listener with its certificate from
 * the site's issuing root, the gateway's certificate pinned (the only
 * trust anchor its TLS client gets).  The library (CmCmgcp) decides the
 * hellos and checks; the driver adds the long polls: --polls outstanding
 * POST /cmg/cp/poll per worker, each answered by the gateway with a batch
 * of client requests, each of which goes to the MP the published mapping
 * names (REQ CMG-10); their answers ride back together on the next poll.
 *
 * Threads: a control loop (hello, check, reports) and --workers poll loops,
 * each with its own clients; the library is called under one lock. */
#include "cmlab-cmg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define CP_MAX_MPS 64
#define CP_RETRY_US (500 * 1000)

typedef struct Cp Cp;
typedef struct CpWorker CpWorker;

/* One outstanding poll and the batch of requests it brought. */
typedef struct {
    CpWorker *w;
    guint slot;
    struct event *retry;
    json_t *answers; /* what the next poll carries (array) */
    guint pending;   /* requests of the batch still at their MPs */
} Slot;

/* A request of a batch on its way to its MP. */
typedef struct {
    Slot *s;
    guint64 rid;
    CmCmgRoute route;
} Job;

struct CpWorker {
    Cp *cp;
    guint index;
    struct event_base *base;
    struct event *stop_ev;
    struct event *start_ev;
    GThread *thread;
    CmNetHttpc *gw;  /* to the gateway, mutual TLS */
    CmNetHttpc *mps; /* to the MPs */
    GPtrArray *slots;
    gboolean stopping;
};

struct Cp {
    CmCmgcp *lib;
    GMutex lock;
    char *dir;
    char *id;
    char *gw_url; /* https://cmg-name:port */
    char *connect_to[2];
    CmNetHttpcConfig gw_client;
    const CmCert *pinned[1];
    CmCert *cmg_cert;
    CmNetHttpcConfig mp_client;
    char **mp_names;
    char **mp_connect; /* connect_to entries for the MPs */
    char **mp_urls;    /* https://name:port, index as mp_names */
    guint polls;
    gboolean stopping;
    /* control loop */
    struct event_base *base;
    struct event *stop_ev;
    struct event *timer;
    CmNetHttpc *control;
    GThread *thread;
    CpWorker *workers;
    guint n_workers;
};

typedef struct {
    Cp *cp;
    guint64 id;
    gboolean hello;
} Ctl;

static void slot_poll(Slot *s);

/* --------------------------------------------------------- control */

static void control_run(Cp *cp, CmCmgcpActions *act);

static void
on_control(CmNetHttpResponse *hresp, void *user_data)
{
    Ctl *c = user_data;
    Cp *cp = c->cp;
    CmResponse resp = {0};
    CmCmgcpActions act;
    gboolean got;

    if (cp->stopping) {
        g_free(c);
        return;
    }
    got = cm_net_http_response_to_cm(hresp, &resp, NULL);
    if (!got)
        g_message("%s to the gateway failed: %s", c->hello ? "hello" : "check",
                  hresp->error ? hresp->error->message : "no answer");
    cm_cmgcp_actions_init(&act);
    g_mutex_lock(&cp->lock);
    /* The TLS client trusts the pinned certificate only: a hello answered
     * at all came from it. */
    cm_cmgcp_on_answer(cp->lib, c->id, got && c->hello ? cp->cmg_cert : NULL, got ? &resp : NULL,
                       cm_net_wall_now(), &act);
    g_mutex_unlock(&cp->lock);
    control_run(cp, &act);
    cm_cmgcp_actions_clear(&act);
    cm_response_clear(&resp);
    g_free(c);
}

static void
report(Cp *cp, const char *name, GBytes *body)
{
    g_autofree char *path = g_build_filename(cp->dir, name, NULL);
    GError *error = NULL;

    /* The site's console view: the lab keeps the latest report in the
     * connection point's folder. */
    if (!cm_daemon_write_file(path, g_bytes_get_data(body, NULL), g_bytes_get_size(body), 0644,
                              &error)) {
        g_warning("%s: %s", path, error->message);
        g_error_free(error);
    }
}

static void
control_run(Cp *cp, CmCmgcpActions *act)
{
    for (guint i = 0; i < act->actions->len; i++) {
        CmCmgcpAction *a = g_ptr_array_index(act->actions, i);
        g_debug("connection point action %s instance %u", cm_cmgcp_action_name(a->kind),
                a->instance);
        switch (a->kind) {
        case CM_CMGCP_HELLO:
        case CM_CMGCP_CHECK: {
            g_autofree char *url = g_strconcat(
                cp->gw_url, a->kind == CM_CMGCP_HELLO ? CM_CMGD_HELLO : CM_CMGD_CHECK, NULL);
            g_autofree char *hdr = g_strdup_printf(CM_CMGD_HDR_CONNECTION ": %s", cp->id);
            const char *headers[] = {hdr, NULL};
            CmNetHttpRequest req = {.method = "POST", .url = url, .headers = headers};
            Ctl *c = g_new0(Ctl, 1);
            GError *error = NULL;
            gsize len;
            req.body = g_bytes_get_data(a->body, &len);
            req.body_len = len;
            c->cp = cp;
            c->id = a->id;
            c->hello = a->kind == CM_CMGCP_HELLO;
            if (!cm_net_httpc_send(cp->control, &req, on_control, c, &error)) {
                g_warning("cannot send to the gateway: %s", error->message);
                g_error_free(error);
                g_free(c);
            }
            break;
        }
        case CM_CMGCP_CLOSE:
            break; /* the next hello makes a new connection if need be */
        case CM_CMGCP_REPORT_STATUS:
            g_message("status: %.*s", (int)MIN(g_bytes_get_size(a->body), 300),
                      (const char *)g_bytes_get_data(a->body, NULL));
            report(cp, "status.json", a->body);
            break;
        case CM_CMGCP_REPORT_TRAFFIC:
            report(cp, "traffic.json", a->body);
            break;
        }
    }
    if (act->wake_at > 0) {
        CmTime delay = MAX(act->wake_at - cm_net_wall_now(), 0);
        struct timeval tv = {.tv_sec = delay / CM_USEC_PER_SEC, .tv_usec = delay % CM_USEC_PER_SEC};
        evtimer_add(cp->timer, &tv);
    }
}

static void
on_control_timer(evutil_socket_t fd, short what, void *arg)
{
    Cp *cp = arg;
    CmCmgcpActions act;

    (void)fd;
    (void)what;
    cm_cmgcp_actions_init(&act);
    g_mutex_lock(&cp->lock);
    cm_cmgcp_on_timer(cp->lib, cm_net_wall_now(), &act);
    g_mutex_unlock(&cp->lock);
    control_run(cp, &act);
    cm_cmgcp_actions_clear(&act);
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static gpointer
control_main(gpointer data)
{
    Cp *cp = data;
    CmCmgcpActions act;

    cm_cmgcp_actions_init(&act);
    g_mutex_lock(&cp->lock);
    cm_cmgcp_start(cp->lib, cm_net_wall_now(), &act);
    g_mutex_unlock(&cp->lock);
    control_run(cp, &act);
    cm_cmgcp_actions_clear(&act);
    event_base_dispatch(cp->base);
    return NULL;
}

/* ------------------------------------------------------------ polls */

static void
slot_retry_later(Slot *s)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = CP_RETRY_US};

    evtimer_add(s->retry, &tv);
}

static void
slot_answer(Slot *s, guint64 rid, int status, const char *reason, CmTime retry_after, GBytes *body)
{
    json_t *a =
        json_pack("{s:I, s:i, s:s, s:I}", "rid", (json_int_t)rid, "status", status, "reason",
                  reason ? reason : "", "retry_ms", (json_int_t)(retry_after / 1000));

    if (body != NULL && g_bytes_get_size(body) > 0) {
        gsize len;
        const guint8 *p = g_bytes_get_data(body, &len);
        g_autofree char *b64 = cm_enc_b64(p, len);
        json_object_set_new(a, "body", json_string(b64));
    }
    json_array_append_new(s->answers, a);
}

/* One request of the batch is done: the batch's answers go with the next
 * poll once the last is. */
static void
job_done(Job *j)
{
    Slot *s = j->s;

    g_free(j);
    if (--s->pending == 0)
        slot_poll(s);
}

static void
on_mp_answer(CmNetHttpResponse *hresp, void *user_data)
{
    Job *j = user_data;
    Slot *s = j->s;
    Cp *cp = s->w->cp;
    CmResponse resp = {0};

    if (s->w->stopping) {
        g_free(j);
        return;
    }
    if (!cm_net_http_response_to_cm(hresp, &resp, NULL)) {
        /* The MP is down: the client retries, as against a busy MP. */
        g_autofree char *msg = g_strdup_printf(
            "{\"reason\":\"busy\",\"message\":\"the management point is not reachable\"}");
        g_autoptr(GBytes) b = g_bytes_new(msg, strlen(msg));
        slot_answer(s, j->rid, 503, "busy", 10 * CM_USEC_PER_SEC, b);
    } else {
        slot_answer(s, j->rid, hresp->status, cm_reason_name(resp.reason), hresp->retry_after,
                    hresp->body);
    }
    g_mutex_lock(&cp->lock);
    cm_cmgcp_routed(cp->lib, &j->route, hresp->body ? g_bytes_get_size(hresp->body) : 0,
                    hresp->status);
    g_mutex_unlock(&cp->lock);
    cm_response_clear(&resp);
    job_done(j);
}

static const char *
mp_url(Cp *cp, const char *server)
{
    for (guint i = 0; cp->mp_names[i] != NULL; i++)
        if (g_ascii_strcasecmp(cp->mp_names[i], server) == 0)
            return cp->mp_urls[i];
    return NULL;
}

static void
refuse_here(Slot *s, guint64 rid, CmReason reason, const char *message)
{
    CmResponse r = {0};
    g_autofree char *json = NULL;
    g_autoptr(GBytes) b = NULL;

    cm_response_refuse(&r, reason, "%s", message);
    json = cm_response_error_json(&r);
    b = g_bytes_new(json, strlen(json));
    slot_answer(s, rid, r.status, cm_reason_name(reason), r.retry_after, b);
    cm_response_clear(&r);
}

/* The identity the gateway established, for the MP: the CCM-Forwarded-*
 * headers an MP itself sends the site (daemon.h).  The MP believes them
 * only on its connection point listener, from the certificate of a
 * connection point the site registered; the transport it reports is its
 * own listener's. */
/* A value that fits on one header line, no longer than a CmPeer field. */
static gboolean
header_safe(const char *v)
{
    size_t n = 0;

    for (const char *p = v; *p != '\0'; p++, n++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return FALSE;
    return n <= CM_NAME_MAX;
}

static char **
forward_headers(const json_t *peer)
{
    GPtrArray *h = g_ptr_array_new();
    const char *auth = json_string_value(json_object_get(peer, "auth"));
    const char *principal = json_string_value(json_object_get(peer, "principal"));
    const char *domain = json_string_value(json_object_get(peer, "domain"));
    const char *cert = json_string_value(json_object_get(peer, "cert"));

    /* What cannot be said on a header line is not said: the client then
     * reaches the MP as an anonymous one. */
    if ((principal != NULL && !header_safe(principal)) || (domain != NULL && !header_safe(domain)))
        auth = NULL, principal = NULL, domain = NULL, cert = NULL;
    g_ptr_array_add(h, g_strdup_printf("%s: https", CM_HDR_FWD_TRANSPORT));
    g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_AUTH,
                                       auth ? auth : cm_auth_name(CM_AUTH_ANONYMOUS)));
    if (cert != NULL && *cert != '\0')
        g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_CERT, cert));
    if (principal != NULL && *principal != '\0')
        g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_PRINCIPAL, principal));
    if (domain != NULL && *domain != '\0')
        g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_DOMAIN, domain));
    g_ptr_array_add(h, NULL);
    return (char **)g_ptr_array_free(h, FALSE);
}

/* A client request the gateway handed over: to its MP (the slot's pending
 * count holds it), or answered here. */
static void
slot_forward(Slot *s, const json_t *m)
{
    Cp *cp = s->w->cp;
    json_int_t rid = json_integer_value(json_object_get(m, "rid"));
    const char *method = json_string_value(json_object_get(m, "method"));
    const char *path = json_string_value(json_object_get(m, "path"));
    const char *query = json_string_value(json_object_get(m, "query"));
    const char *smsid = json_string_value(json_object_get(m, "smsid"));
    const char *sig = json_string_value(json_object_get(m, "signature"));
    const char *b64 = json_string_value(json_object_get(m, "body"));
    g_autoptr(GBytes) body = NULL;
    g_autofree char *url = NULL;
    g_auto(GStrv) fwd = NULL;
    CmNetHttpRequest hreq = {0};
    CmRequest req = {0};
    GError *error = NULL;
    const char *base;
    gboolean routed;
    Job *j = NULL;

    if (path == NULL || method == NULL || rid <= 0) {
        refuse_here(s, (guint64)rid, CM_REASON_BAD_REQUEST, "malformed forwarded request");
        return;
    }
    if (b64 != NULL &&
        (body = cm_enc_b64_decode(b64, strlen(b64), CM_CMGD_CHANNEL_BODY_MAX, &error)) == NULL)
        goto refuse;
    j = g_new0(Job, 1);
    j->s = s;
    j->rid = (guint64)rid;
    g_mutex_lock(&cp->lock);
    routed =
        cm_cmgcp_route(cp->lib, path, query, body ? g_bytes_get_size(body) : 0, &j->route, &error);
    g_mutex_unlock(&cp->lock);
    if (!routed)
        goto refuse;
    base = mp_url(cp, j->route.server);
    if (base == NULL) {
        refuse_here(s, (guint64)rid, CM_REASON_BUSY, "this connection point cannot reach that MP");
        g_free(j);
        return;
    }
    if (smsid != NULL && *smsid != '\0')
        g_strlcpy(req.smsid, smsid, sizeof req.smsid);
    if (sig != NULL && !cm_msg_parse_signature(sig, &req, &error))
        goto refuse;
    req.ep = j->route.ep;
    if (body != NULL)
        req.body = g_bytes_get_data(body, &req.body_len);
    url = g_strconcat(base, j->route.internal_path, NULL);
    fwd = forward_headers(json_object_get(m, "peer"));
    hreq.headers = (const char *const *)fwd;
    hreq.method = method;
    hreq.url = url;
    hreq.msg = &req;
    hreq.body = req.body;
    hreq.body_len = req.body_len;
    s->pending++;
    if (cm_net_httpc_send(s->w->mps, &hreq, on_mp_answer, j, &error))
        return;
    s->pending--;
refuse:
    g_free(j);
    refuse_here(s, (guint64)rid, CM_REASON_BAD_REQUEST, error ? error->message : "refused");
    g_clear_error(&error);
}

static void
on_poll(CmNetHttpResponse *hresp, void *user_data)
{
    Slot *s = user_data;
    g_autoptr(json_t) m = NULL;

    if (s->w->stopping)
        return;
    /* What the poll carried is delivered, or lost with a gateway that is
     * gone (which then answers those clients busy). */
    json_array_clear(s->answers);
    if (hresp->status != 200 || hresp->body == NULL) {
        /* Not connected yet, refused, or the gateway is gone. */
        g_debug("poll: %d %s", hresp->status, hresp->error ? hresp->error->message : "");
        slot_retry_later(s);
        return;
    }
    m = cm_json_parse(g_bytes_get_data(hresp->body, NULL), g_bytes_get_size(hresp->body),
                      CM_CMGD_CHANNEL_BODY_MAX, NULL);
    if (json_is_array(json_object_get(m, "requests"))) {
        size_t i;
        json_t *one;
        /* Held until every request of the batch is sent, so that one
         * answered at once does not poll before the others went. */
        s->pending++;
        json_array_foreach(json_object_get(m, "requests"), i, one)
        {
            if (i >= CM_CMGD_BATCH_MAX) {
                g_warning("a poll carried more than %d requests; the rest dropped",
                          CM_CMGD_BATCH_MAX);
                break;
            }
            slot_forward(s, one);
        }
        if (--s->pending > 0)
            return;
    }
    slot_poll(s);
}

static void
slot_poll(Slot *s)
{
    Cp *cp = s->w->cp;
    g_autofree char *url = g_strconcat(cp->gw_url, CM_CMGD_POLL, NULL);
    g_autofree char *h0 = g_strdup_printf(CM_CMGD_HDR_CONNECTION ": %s", cp->id);
    g_autofree char *answers = NULL;
    const char *headers[2] = {h0, NULL};
    CmNetHttpRequest req = {.method = "POST", .url = url, .headers = headers};
    GError *error = NULL;

    if (s->w->stopping)
        return;
    if (json_array_size(s->answers) > 0) {
        g_autoptr(json_t) o = json_pack("{s:O}", "answers", s->answers);
        answers = json_dumps(o, JSON_COMPACT);
        req.body = answers;
        req.body_len = strlen(answers);
    }
    if (!cm_net_httpc_send(s->w->gw, &req, on_poll, s, &error)) {
        g_warning("poll: %s", error->message);
        g_error_free(error);
        slot_retry_later(s);
    }
}

static void
on_slot_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    slot_poll(arg);
}

static void
on_worker_start(evutil_socket_t fd, short what, void *arg)
{
    CpWorker *w = arg;

    (void)fd;
    (void)what;
    for (guint i = 0; i < w->slots->len; i++)
        slot_poll(g_ptr_array_index(w->slots, i));
}

static gpointer
worker_main(gpointer data)
{
    CpWorker *w = data;

    event_base_dispatch(w->base);
    return NULL;
}

static void
on_worker_stop(evutil_socket_t fd, short what, void *arg)
{
    CpWorker *w = arg;

    (void)fd;
    (void)what;
    w->stopping = TRUE;
    event_base_loopbreak(w->base);
}

static void
slot_free(gpointer data)
{
    Slot *s = data;

    if (s->retry != NULL)
        event_free(s->retry);
    json_decref(s->answers);
    g_free(s);
}

/* ------------------------------------------------------------- main */

/* Waits (30 s at most) for a daemon's .addr file and returns its HTTPS
 * address. */
static char *
wait_addr(const char *file, const char *key, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + 30 * CM_USEC_PER_SEC;
    char *addr;

    while ((addr = cm_cmgd_read_addr(file, key)) == NULL) {
        if (g_get_monotonic_time() > deadline) {
            g_set_error(error, CM_DAEMON_ERROR, 0, "%s: nothing listening after 30 s", file);
            return NULL;
        }
        g_usleep(100000);
    }
    return addr;
}

static char *
connect_entry(const char *host, const char *addr, char **url)
{
    const char *colon = strrchr(addr, ':');

    if (colon == NULL)
        return NULL;
    *url = g_strdup_printf("https://%s:%s", host, colon + 1);
    return g_strdup_printf("%s:%s:%.*s:%s", host, colon + 1, (int)(colon - addr), addr, colon + 1);
}

int
cm_cmgd_cp_main(const char *dir, gboolean verbose)
{
    GError *error = NULL;
    Cp cp = {0};
    g_autofree char *conf_path = NULL, *site_code = NULL, *name = NULL, *cmg_name = NULL;
    g_autofree char *gw_addr_file = NULL, *gw_addr = NULL, *mappings_json = NULL;
    g_auto(GStrv) mp_addr_files = NULL, mp_ca_files = NULL;
    g_autoptr(CmNetConfig) cfg = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(CmCmgMappings) mappings = NULL;
    g_autoptr(GPtrArray) mp_cas = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    gint64 polls = 4, workers = 2;
    int rc = 1;
    guint n_mps;

    cm_net_init();
    cm_daemon_log_init("cmlab-cmg", verbose);
    g_mutex_init(&cp.lock);
    cp.dir = (char *)dir;
    conf_path = g_build_filename(dir, "cp.conf", NULL);
    cfg = cm_net_config_load(conf_path, &error);
    if (cfg == NULL || !cm_net_config_string(cfg, "cp", "connection_id", NULL, &cp.id, &error) ||
        !cm_net_config_string(cfg, "cp", "site_code", NULL, &site_code, &error) ||
        !cm_net_config_string(cfg, "cp", "name", NULL, &name, &error) ||
        !cm_net_config_string(cfg, "cp", "cmg_name", NULL, &cmg_name, &error) ||
        !cm_net_config_path(cfg, "cp", "cmg_addr_file", NULL, &gw_addr_file, &error) ||
        !cm_net_config_int(cfg, "cp", "polls", 4, 1, 1024, &polls, &error) ||
        !cm_net_config_int(cfg, "cp", "workers", 2, 1, 64, &workers, &error) ||
        !cm_net_config_strings(cfg, "cp", "mps", &cp.mp_names, &error) ||
        !cm_net_config_strings(cfg, "cp", "mp_addr_files", &mp_addr_files, &error) ||
        !cm_net_config_strings(cfg, "cp", "mp_ca", &mp_ca_files, &error))
        goto out;
    n_mps = g_strv_length(cp.mp_names);
    if (n_mps == 0 || n_mps > CP_MAX_MPS || g_strv_length(mp_addr_files) != n_mps) {
        g_set_error(&error, CM_DAEMON_ERROR, 0,
                    "%s: [cp] mps and mp_addr_files must name the same 1..%d MPs", conf_path,
                    CP_MAX_MPS);
        goto out;
    }
    {
        g_autofree char *p1 = g_build_filename(dir, "cp.pem", NULL);
        g_autofree char *p2 = g_build_filename(dir, "cp.key", NULL);
        g_autofree char *p3 = g_build_filename(dir, "cmg.pem", NULL);
        g_autofree char *p4 = g_build_filename(dir, "mappings.json", NULL);
        if ((cert = cm_daemon_load_cert(p1, &error)) == NULL ||
            (key = cm_daemon_load_key(p2, &error)) == NULL ||
            (cp.cmg_cert = cm_daemon_load_cert(p3, &error)) == NULL ||
            (mappings_json = cm_daemon_read_file(p4, CM_CMG_MAPPINGS_JSON_MAX, NULL, &error)) ==
                NULL ||
            (mappings = cm_cmg_mappings_from_json(mappings_json, strlen(mappings_json), &error)) ==
                NULL)
            goto out;
    }
    for (char **f = mp_ca_files; *f != NULL; f++) {
        CmCert *c = cm_daemon_load_cert(*f, &error);
        if (c == NULL)
            goto out;
        g_ptr_array_add(mp_cas, c);
    }
    {
        CmCmgcpConfig cc = {.connection_id = cp.id,
                            .site_code = site_code,
                            .name = name,
                            .cmg_name = cmg_name,
                            .instances = 1,
                            .cmg_cert = cp.cmg_cert,
                            .mappings = mappings};
        cp.lib = cm_cmgcp_new(&cc, &error);
        if (cp.lib == NULL)
            goto out;
    }
    /* Where the gateway's connection point listener and the MPs are. */
    gw_addr = wait_addr(gw_addr_file, "https", &error);
    if (gw_addr == NULL)
        goto out;
    cp.connect_to[0] = connect_entry(cmg_name, gw_addr, &cp.gw_url);
    cp.mp_connect = g_new0(char *, n_mps + 1);
    cp.mp_urls = g_new0(char *, n_mps + 1);
    for (guint i = 0; i < n_mps; i++) {
        g_autofree char *a = wait_addr(mp_addr_files[i], "https", &error);
        if (a == NULL)
            goto out;
        cp.mp_connect[i] = connect_entry(cp.mp_names[i], a, &cp.mp_urls[i]);
    }
    if (cp.connect_to[0] == NULL) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "%s: expected HOST:PORT", gw_addr_file);
        goto out;
    }
    cp.pinned[0] = cp.cmg_cert;
    cp.gw_client.client_cert = cert;
    cp.gw_client.client_key = key;
    cp.gw_client.ca_certs = cp.pinned;
    cp.gw_client.n_ca_certs = 1;
    cp.gw_client.connect_to = (const char *const *)cp.connect_to;
    cp.gw_client.timeout_ms = 60000;
    cp.gw_client.max_response_size = CM_CMGD_CHANNEL_BODY_MAX;
    /* Its certificate from the issuing root, shown to the MPs too: an MP
     * takes the identity the gateway established only from a connection
     * point the site registered. */
    cp.mp_client.client_cert = cert;
    cp.mp_client.client_key = key;
    cp.mp_client.ca_certs = (const CmCert *const *)mp_cas->pdata;
    cp.mp_client.n_ca_certs = mp_cas->len;
    cp.mp_client.connect_to = (const char *const *)cp.mp_connect;
    cp.mp_client.timeout_ms = 30000;
    cp.mp_client.max_response_size = CM_CMGD_ANSWER_MAX;
    cp.polls = (guint)polls;
    /* Every poll and every request to an MP keeps its connection: without
     * a cache as large as what may be in flight (each poll may bring a
     * batch), libcurl closes connections between bursts and each request
     * pays a TLS handshake. */
    cp.gw_client.max_connections = (long)polls + 4;
    cp.mp_client.max_connections = (long)polls * CM_CMGD_BATCH_MAX + 4;

    cp.base = cm_net_event_base_new();
    cp.timer = evtimer_new(cp.base, on_control_timer, &cp);
    cp.stop_ev = event_new(cp.base, -1, 0, on_stop, cp.base);
    if ((cp.control = cm_net_httpc_new(cp.base, &cp.gw_client, &error)) == NULL)
        goto out;
    cp.n_workers = (guint)workers;
    cp.workers = g_new0(CpWorker, cp.n_workers);
    for (guint i = 0; i < cp.n_workers; i++) {
        CpWorker *w = &cp.workers[i];
        w->cp = &cp;
        w->index = i;
        w->base = cm_net_event_base_new();
        w->stop_ev = event_new(w->base, -1, 0, on_worker_stop, w);
        w->start_ev = event_new(w->base, -1, 0, on_worker_start, w);
        w->slots = g_ptr_array_new_with_free_func(slot_free);
        if ((w->gw = cm_net_httpc_new(w->base, &cp.gw_client, &error)) == NULL ||
            (w->mps = cm_net_httpc_new(w->base, &cp.mp_client, &error)) == NULL)
            goto out;
        for (guint j = 0; j < cp.polls; j++) {
            Slot *s = g_new0(Slot, 1);
            s->w = w;
            s->slot = j;
            s->retry = evtimer_new(w->base, on_slot_retry, s);
            s->answers = json_array();
            g_ptr_array_add(w->slots, s);
        }
    }
    cp.thread = g_thread_new("cp-control", control_main, &cp);
    for (guint i = 0; i < cp.n_workers; i++) {
        CpWorker *w = &cp.workers[i];
        /* The polls start after the first hello had time to land; one
         * refused before that retries shortly. */
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        event_add(w->start_ev, &tv);
        w->thread = g_thread_new("cp-worker", worker_main, w);
    }
    g_message("connection point %s (%s) for %s: gateway %s, %u MPs, %u workers x %u polls", cp.id,
              name, cmg_name, cp.gw_url, n_mps, cp.n_workers, cp.polls);
    {
        g_autofree char *pidline = g_strdup_printf("[cp]\npid = %d\n", (int)getpid());
        g_autofree char *p = g_build_filename(dir, "cp.addr", NULL);
        if (!cm_daemon_write_file(p, pidline, strlen(pidline), 0644, &error))
            goto out;
    }
    {
        int sig = cm_net_wait_for_signal();
        g_message("signal %d: stopping", sig);
    }
    rc = 0;
out:
    if (error != NULL) {
        g_critical("cmlab-cmg connection-point: %s", error->message);
        g_error_free(error);
    }
    for (guint i = 0; i < cp.n_workers; i++) {
        CpWorker *w = &cp.workers[i];
        if (w->thread != NULL) {
            event_active(w->stop_ev, 0, 0);
            g_thread_join(w->thread);
        }
    }
    if (cp.thread != NULL) {
        event_active(cp.stop_ev, 0, 0);
        g_thread_join(cp.thread);
    }
    cp.stopping = TRUE;
    for (guint i = 0; i < cp.n_workers; i++) {
        CpWorker *w = &cp.workers[i];
        w->stopping = TRUE;
        if (w->gw != NULL)
            cm_net_httpc_free(w->gw);
        if (w->mps != NULL)
            cm_net_httpc_free(w->mps);
        if (w->slots != NULL)
            g_ptr_array_unref(w->slots);
        if (w->stop_ev != NULL)
            event_free(w->stop_ev);
        if (w->start_ev != NULL)
            event_free(w->start_ev);
        if (w->base != NULL)
            event_base_free(w->base);
    }
    g_free(cp.workers);
    if (cp.control != NULL)
        cm_net_httpc_free(cp.control);
    if (cp.timer != NULL)
        event_free(cp.timer);
    if (cp.stop_ev != NULL)
        event_free(cp.stop_ev);
    if (cp.base != NULL)
        event_base_free(cp.base);
    if (cp.lib != NULL) {
        const CmCmgcpStatus *st = cm_cmgcp_status(cp.lib);
        g_message("hellos=%" G_GINT64_FORMAT " checks=%" G_GINT64_FORMAT
                  " reconnects=%" G_GINT64_FORMAT " routed=%" G_GINT64_FORMAT
                  " unrouted=%" G_GINT64_FORMAT,
                  st->hellos, st->checks, st->reconnects, st->routed, st->unrouted);
        cm_cmgcp_free(cp.lib);
    }
    if (cp.cmg_cert != NULL)
        cm_cert_unref(cp.cmg_cert);
    g_free(cp.id);
    g_free(cp.gw_url);
    g_free(cp.connect_to[0]);
    g_strfreev(cp.mp_names);
    g_strfreev(cp.mp_connect);
    g_strfreev(cp.mp_urls);
    g_mutex_clear(&cp.lock);
    return rc;
}
