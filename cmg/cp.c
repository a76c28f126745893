/* cp.c - the CMG connection point (REQ CMG-01, CMG-08, CMG-10).
 *
 * A state machine without I/O.  It keeps one connection to every VM
 * instance of the CMG: a hello opens it (the CMG checks the connection
 * point's certificate and connection ID; the connection point checks the
 * CMG's pinned certificate and that the answer echoes its connection ID,
 * the CMG's name and the instance), a check every minute keeps it, and a
 * failed check or a dropped connection is reconnected at once, then every
 * minute until it is back.  Every five minutes it reports the traffic of
 * each published endpoint and its connection status; the status also goes
 * out whenever the number of connected instances changes. */
#include "internal.h"

#include <string.h>

typedef struct {
    CmCmgcpConnState state;
    guint64 pending_id; /* 0: nothing in flight */
    CmCmgcpActionKind pending_kind;
    CmTime since;       /* state entered */
    CmTime last_ok;
} Instance;

typedef struct {
    guint64 role_id;
    CmCmgEndpoint endpoint;
    gint64 requests, bytes_in, bytes_out, errors;
} Traffic;

struct CmCmgcp {
    char id[CM_CMG_CONNECTION_ID_LEN + 1];
    char site[4];
    char name[CM_NAME_MAX + 1];
    char cmg_name[CM_CMG_NAME_MAX + 1];
    CmCert *cmg_cert;
    CmCmgMappings *mappings;
    Instance inst[CM_CMG_MAX_INSTANCES];
    guint64 next_id;
    gboolean started;
    CmTime next_check;
    CmTime next_report;
    CmTime period_start;
    GArray *traffic; /* Traffic */
    guint reported_up; /* connected instances in the last status report */
    CmCmgcpStatus status;
};

const char *
cm_cmgcp_action_name(CmCmgcpActionKind k)
{
    switch (k) {
    case CM_CMGCP_HELLO:
        return "hello";
    case CM_CMGCP_CHECK:
        return "check";
    case CM_CMGCP_CLOSE:
        return "close";
    case CM_CMGCP_REPORT_STATUS:
        return "report-status";
    case CM_CMGCP_REPORT_TRAFFIC:
        return "report-traffic";
    }
    return "unknown";
}

const char *
cm_cmgcp_conn_state_name(CmCmgcpConnState s)
{
    switch (s) {
    case CM_CMGCP_DOWN:
        return "down";
    case CM_CMGCP_CONNECTING:
        return "connecting";
    case CM_CMGCP_UP:
        return "up";
    }
    return "unknown";
}

static void
action_free(CmCmgcpAction *a)
{
    if (a == NULL)
        return;
    if (a->body != NULL)
        g_bytes_unref(a->body);
    g_free(a);
}

void
cm_cmgcp_actions_init(CmCmgcpActions *a)
{
    a->actions = g_ptr_array_new_with_free_func((GDestroyNotify)action_free);
    a->wake_at = 0;
}

void
cm_cmgcp_actions_clear(CmCmgcpActions *a)
{
    if (a->actions != NULL)
        g_ptr_array_unref(a->actions);
    a->actions = NULL;
    a->wake_at = 0;
}

CmCmgcp *
cm_cmgcp_new(const CmCmgcpConfig *config, GError **error)
{
    g_autofree CmCmgcp *cp = g_new0(CmCmgcp, 1);
    CmCmgMappings *probe;

    if (!cm_cmg_connection_id_check(config->connection_id, error) ||
        !cmg_site_code(config->site_code, cp->site, "connection point", error))
        return NULL;
    if (config->instances == 0 || config->instances > CM_CMG_MAX_INSTANCES) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "a CMG has 1 to %d VM instances, not %u", CM_CMG_MAX_INSTANCES,
                    config->instances);
        return NULL;
    }
    if (config->cmg_cert == NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the connection point authenticates the CMG by its server certificate: "
                    "none given");
        return NULL;
    }
    /* The CMG name in the mapping's spelling (lower case, checked). */
    probe = cm_cmg_mappings_new(config->cmg_name, error);
    if (probe == NULL)
        return NULL;
    g_strlcpy(cp->cmg_name, cm_cmg_mappings_name(probe), sizeof cp->cmg_name);
    cm_cmg_mappings_unref(probe);
    g_strlcpy(cp->id, config->connection_id, sizeof cp->id);
    g_strlcpy(cp->name, config->name ? config->name : "", sizeof cp->name);
    cp->cmg_cert = cm_cert_ref((CmCert *)config->cmg_cert);
    cp->traffic = g_array_new(FALSE, TRUE, sizeof(Traffic));
    cp->status.instances = config->instances;
    cm_cmgcp_set_mappings(cp, config->mappings);
    return g_steal_pointer(&cp);
}

void
cm_cmgcp_free(CmCmgcp *cp)
{
    if (cp == NULL)
        return;
    cm_cert_unref(cp->cmg_cert);
    cm_cmg_mappings_unref(cp->mappings);
    g_array_unref(cp->traffic);
    g_free(cp);
}

void
cm_cmgcp_set_mappings(CmCmgcp *cp, CmCmgMappings *m)
{
    if (m != NULL)
        cm_cmg_mappings_ref(m);
    cm_cmg_mappings_unref(cp->mappings);
    cp->mappings = m;
}

const CmCmgcpStatus *
cm_cmgcp_status(const CmCmgcp *cp)
{
    return &cp->status;
}

static void
push(CmCmgcpActions *out, CmCmgcpActionKind kind, guint instance, guint64 id, json_t *body)
{
    CmCmgcpAction *a = g_new0(CmCmgcpAction, 1);

    a->kind = kind;
    a->instance = instance;
    a->id = id;
    if (body != NULL) {
        char *text = cm_json_dump(body);
        a->body = g_bytes_new_take(text, strlen(text));
        json_decref(body);
    }
    g_ptr_array_add(out->actions, a);
}

static void
set_state(CmCmgcp *cp, guint i, CmCmgcpConnState s, CmTime now)
{
    if (cp->inst[i].state == s)
        return;
    if (cp->inst[i].state == CM_CMGCP_UP)
        cp->status.up--;
    if (s == CM_CMGCP_UP)
        cp->status.up++;
    cp->inst[i].state = s;
    cp->status.state[i] = s;
    cp->inst[i].since = now;
}

static void
send_msg(CmCmgcp *cp, guint i, CmCmgcpActionKind kind, CmTime now, CmCmgcpActions *out)
{
    guint64 id = ++cp->next_id;

    cp->inst[i].pending_id = id;
    cp->inst[i].pending_kind = kind;
    if (kind == CM_CMGCP_HELLO) {
        cp->status.hellos++;
        set_state(cp, i, CM_CMGCP_CONNECTING, now);
    } else {
        cp->status.checks++;
    }
    push(out, kind, i, id,
         json_pack("{s:s, s:s}", "connection_id", cp->id, "site_code", cp->site));
}

/* A connection that failed: closed, and a hello sent at once. */
static void
reconnect(CmCmgcp *cp, guint i, CmTime now, CmCmgcpActions *out)
{
    push(out, CM_CMGCP_CLOSE, i, 0, NULL);
    set_state(cp, i, CM_CMGCP_DOWN, now);
    cp->status.reconnects++;
    send_msg(cp, i, CM_CMGCP_HELLO, now, out);
}

static void
report_status(CmCmgcp *cp, CmTime now, CmCmgcpActions *out)
{
    json_t *arr = json_array();
    guint n = cp->status.instances;

    for (guint i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:i, s:s, s:I}", "instance", (int)i, "state",
                                             cm_cmgcp_conn_state_name(cp->inst[i].state),
                                             "since", (json_int_t)(cp->inst[i].since / CM_USEC_PER_SEC)));
    push(out, CM_CMGCP_REPORT_STATUS, 0, 0,
         json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:i, s:s}", "connection_id", cp->id,
                   "site_code", cp->site, "name", cp->name, "cmg", cp->cmg_name, "time",
                   (json_int_t)(now / CM_USEC_PER_SEC), "instances", arr, "up",
                   (int)cp->status.up, "health",
                   cp->status.up == n ? "ok" : cp->status.up == 0 ? "down" : "degraded"));
    cp->reported_up = cp->status.up;
    cp->status.status_reports++;
}

static void
report_traffic(CmCmgcp *cp, CmTime now, CmCmgcpActions *out)
{
    json_t *arr = json_array();

    for (guint i = 0; i < cp->traffic->len; i++) {
        const Traffic *t = &g_array_index(cp->traffic, Traffic, i);
        json_array_append_new(arr, json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}", "role_id",
                                             (json_int_t)t->role_id, "endpoint",
                                             cm_cmgurl_endpoint_name(t->endpoint), "requests",
                                             (json_int_t)t->requests, "bytes_in",
                                             (json_int_t)t->bytes_in, "bytes_out",
                                             (json_int_t)t->bytes_out, "errors",
                                             (json_int_t)t->errors));
    }
    push(out, CM_CMGCP_REPORT_TRAFFIC, 0, 0,
         json_pack("{s:s, s:s, s:I, s:I, s:o}", "connection_id", cp->id, "site_code", cp->site,
                   "period_start", (json_int_t)(cp->period_start / CM_USEC_PER_SEC),
                   "period_end", (json_int_t)(now / CM_USEC_PER_SEC), "endpoints", arr));
    g_array_set_size(cp->traffic, 0);
    cp->period_start = now;
    cp->status.traffic_reports++;
}

static void
finish(CmCmgcp *cp, CmTime now, CmCmgcpActions *out)
{
    if (cp->status.up != cp->reported_up)
        report_status(cp, now, out);
    out->wake_at = MIN(cp->next_check, cp->next_report);
}

void
cm_cmgcp_start(CmCmgcp *cp, CmTime now, CmCmgcpActions *out)
{
    if (cp->started) {
        out->wake_at = MIN(cp->next_check, cp->next_report);
        return;
    }
    cp->started = TRUE;
    for (guint i = 0; i < cp->status.instances; i++) {
        cp->inst[i].since = now;
        send_msg(cp, i, CM_CMGCP_HELLO, now, out);
    }
    cp->next_check = now + CM_CMG_CHECK_INTERVAL;
    cp->next_report = now + CM_CMGCP_REPORT_INTERVAL;
    cp->period_start = now;
    report_status(cp, now, out);
    finish(cp, now, out);
}

/* The CMG's hello answer: from the pinned certificate, echoing us. */
static gboolean
hello_answer_ok(CmCmgcp *cp, guint i, const CmCert *server_cert, const CmResponse *resp)
{
    g_autoptr(json_t) obj = NULL;
    const char *cmg, *id;
    gint64 inst;

    if (server_cert == NULL ||
        memcmp(cm_cert_thumbprint(server_cert), cm_cert_thumbprint(cp->cmg_cert), 32) != 0)
        return FALSE;
    if (resp->body == NULL)
        return FALSE;
    obj = cm_json_parse(g_bytes_get_data(resp->body, NULL), g_bytes_get_size(resp->body), 1024,
                        NULL);
    return obj != NULL && (cmg = cm_json_str(obj, "cmg", CM_CMG_NAME_MAX, NULL)) != NULL &&
           (id = cm_json_str(obj, "connection_id", CM_CMG_CONNECTION_ID_LEN, NULL)) != NULL &&
           cm_json_int(obj, "instance", 0, CM_CMG_MAX_INSTANCES - 1, &inst, NULL) &&
           strcmp(cmg, cp->cmg_name) == 0 && strcmp(id, cp->id) == 0 && (guint)inst == i;
}

void
cm_cmgcp_on_answer(CmCmgcp *cp, guint64 id, const CmCert *server_cert, const CmResponse *resp,
                   CmTime now, CmCmgcpActions *out)
{
    guint i;

    for (i = 0; i < cp->status.instances; i++)
        if (id != 0 && cp->inst[i].pending_id == id)
            break;
    if (i == cp->status.instances) {
        /* A late answer to something already given up on. */
        finish(cp, now, out);
        return;
    }
    cp->inst[i].pending_id = 0;
    if (cp->inst[i].pending_kind == CM_CMGCP_HELLO) {
        if (resp != NULL && resp->status == 200 && hello_answer_ok(cp, i, server_cert, resp)) {
            set_state(cp, i, CM_CMGCP_UP, now);
            cp->inst[i].last_ok = now;
        } else {
            /* Either side's authentication failed, or the instance is not
             * there: closed, and tried again at the next check round. */
            if (resp != NULL)
                cp->status.auth_failures++;
            push(out, CM_CMGCP_CLOSE, i, 0, NULL);
            set_state(cp, i, CM_CMGCP_DOWN, now);
        }
    } else if (resp != NULL && resp->status == 200) {
        cp->inst[i].last_ok = now;
    } else {
        cp->status.check_failures++;
        reconnect(cp, i, now, out);
    }
    finish(cp, now, out);
}

void
cm_cmgcp_on_timer(CmCmgcp *cp, CmTime now, CmCmgcpActions *out)
{
    if (!cp->started) {
        cm_cmgcp_start(cp, now, out);
        return;
    }
    if (now >= cp->next_check) {
        for (guint i = 0; i < cp->status.instances; i++) {
            Instance *in = &cp->inst[i];
            if (in->pending_id != 0) {
                /* Unanswered for a whole minute: that connection is gone. */
                if (in->pending_kind == CM_CMGCP_CHECK)
                    cp->status.check_failures++;
                in->pending_id = 0;
                reconnect(cp, i, now, out);
            } else if (in->state == CM_CMGCP_UP) {
                send_msg(cp, i, CM_CMGCP_CHECK, now, out);
            } else {
                cp->status.reconnects++;
                send_msg(cp, i, CM_CMGCP_HELLO, now, out);
            }
        }
        while (cp->next_check <= now)
            cp->next_check += CM_CMG_CHECK_INTERVAL;
    }
    if (now >= cp->next_report) {
        report_traffic(cp, now, out);
        report_status(cp, now, out);
        while (cp->next_report <= now)
            cp->next_report += CM_CMGCP_REPORT_INTERVAL;
    }
    finish(cp, now, out);
}

void
cm_cmgcp_on_disconnect(CmCmgcp *cp, guint instance, CmTime now, CmCmgcpActions *out)
{
    if (instance < cp->status.instances && cp->started) {
        cp->inst[instance].pending_id = 0;
        set_state(cp, instance, CM_CMGCP_DOWN, now);
        cp->status.reconnects++;
        send_msg(cp, instance, CM_CMGCP_HELLO, now, out);
    }
    finish(cp, now, out);
}

static Traffic *
traffic_entry(CmCmgcp *cp, guint64 role_id, CmCmgEndpoint ep)
{
    Traffic t = {.role_id = role_id, .endpoint = ep};
    guint i;

    for (i = 0; i < cp->traffic->len; i++) {
        Traffic *x = &g_array_index(cp->traffic, Traffic, i);
        if (x->role_id == role_id && x->endpoint == ep)
            return x;
        if (x->role_id > role_id || (x->role_id == role_id && x->endpoint > ep))
            break;
    }
    g_array_insert_val(cp->traffic, i, t);
    return &g_array_index(cp->traffic, Traffic, i);
}

gboolean
cm_cmgcp_route(CmCmgcp *cp, const char *path, const char *query, size_t bytes_in,
               CmCmgRoute *out, GError **error)
{
    CmCmgUrl url;
    const CmCmgMapping *map;
    CmEndpoint ep;
    Traffic *t;

    memset(out, 0, sizeof *out);
    if (!cm_cmgurl_parse(path, &url, error)) {
        cp->status.unrouted++;
        return FALSE;
    }
    map = cp->mappings ? cm_cmg_mappings_find(cp->mappings, url.role_id, url.endpoint) : NULL;
    ep = cm_cmg_url_endpoint(&url, query);
    if (map == NULL || ep == CM_EP_NONE || strcmp(map->site_code, cp->site) != 0) {
        cp->status.unrouted++;
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "connection point %s holds no mapping for %s", cp->id, path);
        return FALSE;
    }
    g_strlcpy(out->server, map->server, sizeof out->server);
    out->ep = ep;
    out->internal_path = cm_ep_path(ep);
    out->role_id = map->role_id;
    out->cmg_endpoint = map->endpoint;
    t = traffic_entry(cp, map->role_id, map->endpoint);
    t->requests++;
    t->bytes_in += (gint64)MIN(bytes_in, (size_t)G_MAXINT32);
    cp->status.routed++;
    return TRUE;
}

void
cm_cmgcp_routed(CmCmgcp *cp, const CmCmgRoute *route, size_t bytes_out, int status)
{
    Traffic *t = traffic_entry(cp, route->role_id, route->cmg_endpoint);

    t->bytes_out += (gint64)MIN(bytes_out, (size_t)G_MAXINT32);
    if (status >= 400)
        t->errors++;
}
