/* cmlab-cmg-gw.c - the cloud management gateway daemon (one VM instance of
 * the service): cmlab-cmg gateway --dir CMGDIR.
 *
 * Two HTTPS listeners.  The client listener serves internet clients: TLS
 * 1.2 at least (cm_cmg_tls_min), a client certificate asked for but
 * optional, checked at the TLS layer only against the uploaded roots, and
 * every request decided by cm_cmg_handle (the certificate again with the
 * CTL and the CRLs, or the bearer token; the URL filter, the body limit,
 * round robin over the connection points).  The connection point listener
 * takes the connection points' mutual TLS (certificates from the site's
 * issuing root): hello, check, and the long polls that carry forwarded
 * requests out and the MPs' answers back (cmlab-cmg.h).
 *
 * Threads: both listeners' workers call the library under one lock; a
 * ticker thread expires parked polls and stale requests and re-reads the
 * CRLs, the blocked tokens and the connection points every refresh. */
#include "cmlab-cmg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_TICK_US (250 * 1000)

typedef struct Gateway Gateway;

/* A connection point as the driver sees it: its registered certificate,
 * whether its hello was accepted, its parked polls and the client requests
 * waiting for one. */
typedef struct {
    char id[CM_CMG_CONNECTION_ID_LEN + 1];
    CmCert *cert;
    gboolean up;      /* hello accepted, not disconnected since */
    GQueue polls;     /* Poll* parked */
    GQueue queued;    /* Fwd* waiting for a poll */
    guint poll_conns; /* open connections that carried its polls */
} GwCp;

typedef struct {
    CmNetCall *call;
    CmTime parked;
    gpointer conn; /* the PollConn of its connection */
} Poll;

typedef struct {
    guint64 rid;
    CmNetCall *client;
    char cp[CM_CMG_CONNECTION_ID_LEN + 1];
    CmTime since;
    char *msg; /* the request as the connection point gets it (JSON) */
} Fwd;

/* Kept with a connection that carried polls. */
typedef struct {
    Gateway *g;
    char cp[CM_CMG_CONNECTION_ID_LEN + 1];
} PollConn;

struct Gateway {
    CmCmg *cmg;
    GMutex lock;
    char *dir;
    char *site_code;
    GHashTable *cps;      /* id -> GwCp* */
    GHashTable *inflight; /* rid -> Fwd* handed to a connection point */
    guint64 next_rid;
    gboolean crl_check;
    char **crl_files;
    CmTime refresh;
    CmTime last_refresh;
    CmDaemonTicker *ticker;
    CmNetMetrics *metrics;
    CmNetCounter *forwarded, *refused, *dropped, *expired;
    CmNetHistogram *batch_size;
    CmNetGauge *queued_gauge, *polls_gauge;
};

static void
fwd_free(Fwd *f)
{
    g_free(f->msg);
    g_free(f);
}

static void
gwcp_free(gpointer data)
{
    GwCp *c = data;

    g_queue_clear_full(&c->polls, g_free);
    g_queue_clear_full(&c->queued, (GDestroyNotify)fwd_free);
    if (c->cert != NULL)
        cm_cert_unref(c->cert);
    g_free(c);
}

char *
cm_cmgd_read_addr(const char *path, const char *key)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
        return NULL;
    return g_key_file_get_string(kf, "listen", key, NULL);
}

static char *
path_in(const char *dir, const char *name)
{
    return g_build_filename(dir, name, NULL);
}

/* ------------------------------------------------------- refreshing */

/* The CRLs published for the uploaded roots, fetched again (REQ CMG-03):
 * a file that cannot be read leaves that issuer without a current CRL,
 * which is what makes the library drop its clients. */
static void
reload_crls(Gateway *g)
{
    g_autoptr(GPtrArray) crls = g_ptr_array_new_with_free_func((GDestroyNotify)cm_crl_unref);

    for (char **f = g->crl_files; f != NULL && *f != NULL; f++) {
        GError *error = NULL;
        CmCrl *crl = cm_daemon_load_crl(*f, &error);
        if (crl == NULL) {
            g_warning("CRL %s: %s", *f, error->message);
            g_error_free(error);
            continue;
        }
        g_ptr_array_add(crls, crl);
    }
    g_mutex_lock(&g->lock);
    cm_cmg_clear_crls(g->cmg);
    for (guint i = 0; i < crls->len; i++) {
        GError *error = NULL;
        if (!cm_cmg_add_crl(g->cmg, g_ptr_array_index(crls, i), &error)) {
            g_warning("CRL refused: %s", error->message);
            g_error_free(error);
        }
    }
    g_mutex_unlock(&g->lock);
}

/* Blocked bulk registration tokens: the site writes their IDs, one a
 * line, into CMGDIR/blocked-tokens (the lab's stand-in for the site
 * pushing them to the cloud service). */
static void
reload_blocked(Gateway *g)
{
    g_autofree char *path = path_in(g->dir, "blocked-tokens");
    g_autofree char *data = cm_daemon_read_file(path, 1024 * 1024, NULL, NULL);
    g_auto(GStrv) lines = NULL;

    if (data == NULL)
        return;
    lines = g_strsplit(data, "\n", -1);
    g_mutex_lock(&g->lock);
    for (char **l = lines; *l != NULL; l++) {
        g_strstrip(*l);
        if (strlen(*l) == CM_CMG_TOKEN_ID_LEN)
            cm_cmg_block_token(g->cmg, *l);
    }
    g_mutex_unlock(&g->lock);
}

/* Connection points the site registered: CMGDIR/connection-points/<ID>.pem
 * holds each one's certificate (REQ CMG-01). */
static void
reload_cps(Gateway *g)
{
    g_autofree char *d = path_in(g->dir, "connection-points");
    g_autoptr(GDir) dir = g_dir_open(d, 0, NULL);
    const char *e;

    while (dir != NULL && (e = g_dir_read_name(dir)) != NULL) {
        g_autofree char *id = NULL, *p = NULL;
        g_autoptr(CmCert) cert = NULL;
        GError *error = NULL;
        CmCmgCpInfo info = {0};

        if (!g_str_has_suffix(e, ".pem"))
            continue;
        id = g_strndup(e, strlen(e) - 4);
        g_mutex_lock(&g->lock);
        if (g_hash_table_contains(g->cps, id)) {
            g_mutex_unlock(&g->lock);
            continue;
        }
        g_mutex_unlock(&g->lock);
        p = g_build_filename(d, e, NULL);
        if ((cert = cm_daemon_load_cert(p, &error)) == NULL) {
            g_warning("connection point %s: %s", id, error->message);
            g_error_free(error);
            continue;
        }
        info.connection_id = id;
        info.site_code = g->site_code;
        info.name = cm_cert_subject_cn(cert);
        info.cert = cert;
        g_mutex_lock(&g->lock);
        if (cm_cmg_add_connection_point(g->cmg, &info, &error)) {
            GwCp *c = g_new0(GwCp, 1);
            g_strlcpy(c->id, id, sizeof c->id);
            c->cert = cm_cert_ref(cert);
            g_queue_init(&c->polls);
            g_queue_init(&c->queued);
            g_hash_table_insert(g->cps, g_strdup(id), c);
            g_message("connection point %s (%s) registered", id, info.name);
        } else {
            g_warning("connection point %s refused: %s", id, error->message);
            g_error_free(error);
        }
        g_mutex_unlock(&g->lock);
    }
}

/* ---------------------------------------------------- expiring */

static void
idle_reply(CmNetCall *call)
{
    CmResponse resp = {0};
    g_autoptr(json_t) o = json_pack("{s:b}", "idle", TRUE);

    cm_response_ok(&resp, o);
    cm_net_call_reply(call, &resp);
}

static void
busy_reply(CmNetCall *call, const char *why)
{
    CmResponse resp = {0};

    cm_response_refuse(&resp, CM_REASON_BUSY, "%s", why);
    resp.retry_after = 10 * CM_USEC_PER_SEC;
    cm_net_call_reply(call, &resp);
}

/* Answers what waited too long; the replies go out after the lock. */
static void
expire(Gateway *g, CmTime now)
{
    g_autoptr(GPtrArray) idle = g_ptr_array_new();
    g_autoptr(GPtrArray) late = g_ptr_array_new_with_free_func((GDestroyNotify)fwd_free);
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&g->lock);
    g_hash_table_iter_init(&it, g->cps);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        GwCp *c = v;
        Poll *p;
        Fwd *f;
        while ((p = g_queue_peek_head(&c->polls)) != NULL &&
               now - p->parked > CM_CMGD_POLL_HOLD_US) {
            g_queue_pop_head(&c->polls);
            g_ptr_array_add(idle, p->call);
            g_free(p);
        }
        while ((f = g_queue_peek_head(&c->queued)) != NULL && now - f->since > CM_CMGD_QUEUE_US) {
            g_queue_pop_head(&c->queued);
            g_ptr_array_add(late, f);
        }
    }
    g_hash_table_iter_init(&it, g->inflight);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Fwd *f = v;
        if (now - f->since > CM_CMGD_ANSWER_US) {
            g_hash_table_iter_steal(&it);
            g_ptr_array_add(late, f);
        }
    }
    g_mutex_unlock(&g->lock);
    for (guint i = 0; i < idle->len; i++)
        idle_reply(g_ptr_array_index(idle, i));
    for (guint i = 0; i < late->len; i++) {
        Fwd *f = g_ptr_array_index(late, i);
        cm_net_counter_inc(g->expired);
        busy_reply(f->client, "the connection point did not answer in time; retry later");
    }
}

/* Every GW_TICK_US on the ticker's thread. */
static void
tick(void *data)
{
    Gateway *g = data;
    CmTime now = cm_net_wall_now();

    expire(g, now);
    if (now - g->last_refresh >= g->refresh) {
        g->last_refresh = now;
        reload_crls(g);
        reload_blocked(g);
        reload_cps(g);
    }
}

/* ------------------------------------------------ client requests */

/* The request as the connection point gets it: what the MP needs (the
 * path and query, CCM-ClientID, CCM-Signature, the body) and the identity
 * the gateway established. */
static char *
fwd_message(guint64 rid, CmNetCall *call, const CmRequest *req, const char *path, const char *query,
            const CmCmgVerdict *v)
{
    g_autoptr(json_t) o =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "rid", (json_int_t)rid, "method",
                  cm_net_call_method(call), "path", path, "query", query ? query : "", "smsid",
                  req->smsid, "peer", "auth", cm_auth_name(v->peer.kind), "principal",
                  v->peer.principal, "domain", v->peer.domain);

    /* A PKI client's certificate, which the gateway verified (uploaded
     * roots, CTL, CRLs): the MP passes it to the site as its own PKI
     * clients' (REQ REG-02). */
    if (v->peer.kind == CM_AUTH_PKI && v->peer.client_cert != NULL) {
        g_autoptr(GBytes) der = cm_cert_to_der(v->peer.client_cert);
        g_autofree char *b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
        json_object_set_new(json_object_get(o, "peer"), "cert", json_string(b64));
    }
    if (req->signed_) {
        g_autofree char *sig = cm_msg_format_signature(req->sig_hash, req->sig, req->sig_len);
        json_object_set_new(o, "signature", json_string(sig));
    }
    if (req->body_len > 0) {
        g_autofree char *b64 = cm_enc_b64(req->body, req->body_len);
        json_object_set_new(o, "body", json_string(b64));
    }
    return json_dumps(o, JSON_COMPACT);
}

static void
reply_with_message(CmNetCall *poll, const char *msg)
{
    CmResponse resp = {.status = 200, .reason = CM_REASON_OK};

    resp.body = g_bytes_new(msg, strlen(msg));
    cm_net_call_reply(poll, &resp);
}

static gboolean
on_client(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    Gateway *g = user_data;
    const char *path = cm_net_call_path(call);
    const char *query = cm_net_call_query(call);
    const char *auth = cm_net_call_header(call, "Authorization");
    CmCmgRequest creq = {0};
    CmCmgVerdict v = {0};
    CmCmgAction action;
    CmNetCall *poll = NULL;
    char *msg = NULL;
    GwCp *c;
    Fwd *f;

    creq.path = path;
    creq.query = query;
    creq.content_length = req->body_len;
    /* The listener's floor is cm_cmg_tls_min: nothing older got here. */
    creq.tls = CM_TLS_1_2;
    creq.client_cert = cm_net_call_peer_cert(call);
    if (auth != NULL && g_ascii_strncasecmp(auth, "Bearer ", 7) == 0)
        creq.token = auth + 7;
    creq.smsid = req->smsid;
    g_mutex_lock(&g->lock);
    action = cm_cmg_handle(g->cmg, &creq, cm_net_wall_now(), &v);
    if (action != CM_CMG_FORWARD) {
        g_mutex_unlock(&g->lock);
        /* DROP: IIS would fail the handshake; the server API always
         * answers, so the client gets the verdict's refusal instead. */
        g_debug("%s %s: %s %d %s", action == CM_CMG_DROP ? "drop" : "refuse", path,
                cm_reason_name(v.resp.reason), v.resp.status, v.resp.message ? v.resp.message : "");
        cm_net_counter_inc(action == CM_CMG_DROP ? g->dropped : g->refused);
        *resp = v.resp;
        memset(&v.resp, 0, sizeof v.resp);
        return TRUE;
    }
    c = g_hash_table_lookup(g->cps, v.connection_id);
    if (c == NULL) {
        g_mutex_unlock(&g->lock);
        cm_cmg_verdict_clear(&v);
        cm_response_refuse(resp, CM_REASON_BUSY, "no connection point; retry later");
        return TRUE;
    }
    f = g_new0(Fwd, 1);
    f->rid = ++g->next_rid;
    f->client = call;
    f->since = cm_net_wall_now();
    g_strlcpy(f->cp, c->id, sizeof f->cp);
    f->msg = fwd_message(f->rid, call, req, path, query, &v);
    if (!g_queue_is_empty(&c->polls)) {
        Poll *p = g_queue_pop_head(&c->polls);
        poll = p->call;
        g_free(p);
        g_hash_table_insert(g->inflight, &f->rid, f);
        msg = g_strdup_printf("{\"requests\":[%s]}", f->msg);
        cm_net_histogram_observe(g->batch_size, 1);
    } else {
        g_queue_push_tail(&c->queued, f);
    }
    g_mutex_unlock(&g->lock);
    cm_cmg_verdict_clear(&v);
    cm_net_counter_inc(g->forwarded);
    if (poll != NULL) {
        reply_with_message(poll, msg);
        g_free(msg);
    }
    return FALSE;
}

/* Paths outside the published folders that happen to be MP endpoints:
 * the gateway publishes nothing there (REQ CMG-05). */
static gboolean
on_other(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    (void)call;
    (void)user_data;
    cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT,
                       "the gateway publishes %s only under /CCM_Proxy_MutualAuth/ and "
                       "/CCM_Proxy_ServerAuth/",
                       cm_ep_name(req->ep));
    return TRUE;
}

/* ------------------------------------------------ connection points */

static void
poll_conn_closed(gpointer data)
{
    PollConn *pc = data;
    Gateway *g = pc->g;
    g_autoptr(GPtrArray) gone = g_ptr_array_new();
    GwCp *c;

    g_mutex_lock(&g->lock);
    c = g_hash_table_lookup(g->cps, pc->cp);
    /* Polls parked on this connection can carry nothing any more: they
     * are answered (into the void) so that no request goes to them. */
    for (GList *l = c ? c->polls.head : NULL; l != NULL;) {
        GList *next = l->next;
        Poll *p = l->data;
        if (p->conn == pc) {
            g_ptr_array_add(gone, p->call);
            g_free(p);
            g_queue_delete_link(&c->polls, l);
        }
        l = next;
    }
    /* A connection closing says little: the connection point's HTTP
     * client opens and closes them as it likes.  One that is gone stops
     * polling: what waits for it is answered busy after CM_CMGD_QUEUE_US,
     * and the library stops choosing it once its checks stop (REQ
     * CMG-07/08). */
    if (c != NULL && c->poll_conns > 0)
        c->poll_conns--;
    g_mutex_unlock(&g->lock);
    for (guint i = 0; i < gone->len; i++)
        idle_reply(g_ptr_array_index(gone, i));
    g_free(pc);
}

/* One answer a poll carries back: {"rid", "status", "reason",
 * "retry_ms", "body" (base64)}, to the client that waits for it. */
static void
deliver_answer(Gateway *g, const char *cp, const json_t *a)
{
    json_int_t rid = json_integer_value(json_object_get(a, "rid"));
    json_int_t status = json_integer_value(json_object_get(a, "status"));
    const char *reason = json_string_value(json_object_get(a, "reason"));
    const char *b64 = json_string_value(json_object_get(a, "body"));
    g_autoptr(GBytes) body = NULL;
    CmResponse resp = {0};
    guint64 key = (guint64)rid;
    Fwd *f;

    g_mutex_lock(&g->lock);
    f = g_hash_table_lookup(g->inflight, &key);
    /* Only the connection point the request went to may answer it. */
    if (f != NULL && strcmp(f->cp, cp) != 0)
        f = NULL;
    if (f != NULL)
        g_hash_table_steal(g->inflight, &key);
    g_mutex_unlock(&g->lock);
    if (f == NULL)
        return; /* expired already, or not this connection point's */
    if (b64 != NULL)
        body = cm_enc_b64_decode(b64, strlen(b64), CM_CMGD_CHANNEL_BODY_MAX, NULL);
    if (status < 100 || status > 599 || (b64 != NULL && body == NULL)) {
        cm_response_refuse(&resp, CM_REASON_INTERNAL,
                           "the connection point's answer had no status or a bad body");
    } else if (status == 200) {
        resp.status = 200;
        resp.reason = CM_REASON_OK;
        resp.body = body ? g_bytes_ref(body) : g_bytes_new(NULL, 0);
    } else {
        g_autoptr(json_t) o = body ? cm_json_parse(g_bytes_get_data(body, NULL),
                                                   g_bytes_get_size(body), 64 * 1024, NULL)
                                   : NULL;
        const char *m = o ? json_string_value(json_object_get(o, "message")) : NULL;
        resp.status = (int)status;
        resp.reason = cm_net_reason_from_name(reason ? reason : "");
        resp.message = g_strdup(m ? m : "");
        resp.retry_after = json_integer_value(json_object_get(a, "retry_ms")) * 1000;
    }
    cm_net_call_reply(f->client, &resp);
    fwd_free(f);
}

/* The answers a poll carries back, {"answers": [...]}, each to its
 * client. */
static void
deliver_answers(Gateway *g, const char *cp, const CmRequest *req)
{
    g_autoptr(json_t) o = cm_json_parse(req->body, req->body_len, CM_CMGD_CHANNEL_BODY_MAX, NULL);
    json_t *arr = json_object_get(o, "answers");
    size_t i;
    json_t *a;

    if (!json_is_array(arr) || json_array_size(arr) > CM_CMGD_BATCH_MAX) {
        g_warning("a poll carried answers that are not an array of at most %d; dropped",
                  CM_CMGD_BATCH_MAX);
        return;
    }
    json_array_foreach(arr, i, a) deliver_answer(g, cp, a);
}

/* Under g->lock: up to CM_CMGD_BATCH_MAX queued requests of c, now in
 * flight, as a poll's answer {"requests": [...]}; NULL when none waits. */
static char *
take_batch(Gateway *g, GwCp *c)
{
    GString *out = NULL;
    Fwd *f;
    guint n;

    for (n = 0; n < CM_CMGD_BATCH_MAX && (f = g_queue_pop_head(&c->queued)) != NULL; n++) {
        g_hash_table_insert(g->inflight, &f->rid, f);
        if (out == NULL)
            out = g_string_new("{\"requests\":[");
        else
            g_string_append_c(out, ',');
        g_string_append(out, f->msg);
    }
    if (out == NULL)
        return NULL;
    cm_net_histogram_observe(g->batch_size, n);
    g_string_append(out, "]}");
    return g_string_free(out, FALSE);
}

static gboolean
on_cp(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    Gateway *g = user_data;
    const char *path = cm_net_call_path(call);
    const CmCert *peer = cm_net_call_peer_cert(call);
    const char *id = cm_net_call_header(call, CM_CMGD_HDR_CONNECTION);
    CmTime now = cm_net_wall_now();
    char cpid[CM_CMG_CONNECTION_ID_LEN + 1];
    GwCp *c;
    char *msg = NULL;

    if (strcmp(path, CM_CMGD_HELLO) == 0 || strcmp(path, CM_CMGD_CHECK) == 0) {
        gboolean hello = strcmp(path, CM_CMGD_HELLO) == 0;
        g_mutex_lock(&g->lock);
        if (hello)
            cm_cmg_cp_hello(g->cmg, peer, req->body, req->body_len, now, resp);
        else
            cm_cmg_cp_check(g->cmg, peer, req->body, req->body_len, now, resp);
        if (hello && resp->status == 200 && id != NULL &&
            (c = g_hash_table_lookup(g->cps, id)) != NULL) {
            c->up = TRUE;
            g_message("connection point %s connected", id);
        } else if (hello && resp->status != 200) {
            g_message("connection point hello refused: %d %s", resp->status,
                      resp->message ? resp->message : "");
        }
        g_mutex_unlock(&g->lock);
        return TRUE;
    }
    if (strcmp(path, CM_CMGD_POLL) != 0) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT, "no connection point call at %s",
                           path);
        return TRUE;
    }
    g_mutex_lock(&g->lock);
    c = id ? g_hash_table_lookup(g->cps, id) : NULL;
    /* The poll channel belongs to a connection point that said hello,
     * from the certificate registered with it. */
    if (c == NULL || peer == NULL ||
        memcmp(cm_cert_thumbprint(peer), cm_cert_thumbprint(c->cert), 32) != 0) {
        g_mutex_unlock(&g->lock);
        cm_response_refuse(resp, CM_REASON_UNTRUSTED,
                           "polls come from a registered connection point's certificate");
        return TRUE;
    }
    if (!c->up) {
        g_mutex_unlock(&g->lock);
        cm_response_refuse(resp, CM_REASON_CONFLICT, "say hello first");
        return TRUE;
    }
    if (cm_net_call_get_conn_data(call) == NULL) {
        PollConn *pc = g_new0(PollConn, 1);
        pc->g = g;
        g_strlcpy(pc->cp, c->id, sizeof pc->cp);
        c->poll_conns++;
        cm_net_call_set_conn_data(call, pc, poll_conn_closed);
    }
    g_strlcpy(cpid, c->id, sizeof cpid);
    g_mutex_unlock(&g->lock);
    if (req->body_len > 0)
        deliver_answers(g, cpid, req);
    g_mutex_lock(&g->lock);
    msg = take_batch(g, c);
    if (msg == NULL) {
        Poll *p = g_new0(Poll, 1);
        p->call = call;
        p->parked = now;
        p->conn = cm_net_call_get_conn_data(call);
        g_queue_push_tail(&c->polls, p);
    }
    g_mutex_unlock(&g->lock);
    if (msg == NULL)
        return FALSE;
    resp->status = 200;
    resp->reason = CM_REASON_OK;
    resp->body = g_bytes_new_take(msg, strlen(msg));
    return TRUE;
}

static int
health_route(const char *path, GString *body, const char **content_type, void *user_data)
{
    (void)path;
    (void)content_type;
    (void)user_data;
    g_string_append(body, "ok\n");
    return 200;
}

/* ------------------------------------------------------------ main */

static void
log_counters(Gateway *g)
{
    const CmCmgCounters *k = cm_cmg_counters(g->cmg);
    GString *s = g_string_new(NULL);

    for (int r = 0; r < CM_REASON__COUNT; r++)
        if (k->refusals[r] > 0)
            g_string_append_printf(s, " %s=%" G_GINT64_FORMAT, cm_reason_name((CmReason)r),
                                   k->refusals[r]);
    g_message("requests=%" G_GINT64_FORMAT " forwarded=%" G_GINT64_FORMAT
              " dropped=%" G_GINT64_FORMAT " bulk_registrations=%" G_GINT64_FORMAT
              " cp_hellos=%" G_GINT64_FORMAT " cp_checks=%" G_GINT64_FORMAT " refusals:%s",
              k->requests, k->forwarded, k->dropped, k->bulk_registrations, k->cp_hellos,
              k->cp_checks, s->str);
    g_string_free(s, TRUE);
}

int
cm_cmgd_gateway_main(const char *dir, gboolean verbose)
{
    GError *error = NULL;
    Gateway g = {0};
    CmNetHttpdConfig hc = {0}, cc = {0};
    g_autofree char *conf_path = NULL, *name = NULL, *code = NULL, *p_sign = NULL;
    g_autofree char *p_roots = NULL, *p_ctl = NULL, *mappings_json = NULL;
    g_autoptr(CmNetConfig) cfg = NULL;
    g_autoptr(CmNetHttpd) httpd = NULL, cphttpd = NULL;
    g_autoptr(CmCert) tls = NULL, sign = NULL, site_root = NULL;
    g_autoptr(CmKey) tls_key = NULL;
    g_autoptr(GPtrArray) roots = NULL, ctl_roots = NULL;
    g_autoptr(CmTrust) client_trust = cm_trust_new(), cp_trust = cm_trust_new();
    g_autoptr(CmCmgMappings) mappings = NULL;
    g_autoptr(CmNetMetrics) metrics = cm_net_metrics_new();
    gint64 instance = 0;
    int rc = 1;

    cm_net_init();
    cm_daemon_log_init("cmlab-cmg", verbose);
    g_mutex_init(&g.lock);
    g.dir = (char *)dir;
    g.metrics = metrics;
    g.cps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, gwcp_free);
    g.inflight = g_hash_table_new(g_int64_hash, g_int64_equal);

    conf_path = path_in(dir, "cmg.conf");
    cfg = cm_net_config_load(conf_path, &error);
    if (cfg == NULL || !cm_net_config_string(cfg, "cmg", "name", NULL, &name, &error) ||
        !cm_net_config_int(cfg, "cmg", "instance", 0, 0, CM_CMG_MAX_INSTANCES - 1, &instance,
                           &error) ||
        !cm_net_config_string(cfg, "cmg", "site_code", NULL, &code, &error) ||
        !cm_net_config_path(cfg, "cmg", "site_signing_cert", "site-signing.pem", &p_sign, &error) ||
        !cm_net_config_path(cfg, "cmg", "roots", "roots.pem", &p_roots, &error) ||
        (cm_net_config_has(cfg, "cmg", "ctl") &&
         !cm_net_config_path(cfg, "cmg", "ctl", NULL, &p_ctl, &error)) ||
        !cm_net_config_bool(cfg, "cmg", "crl_check", FALSE, &g.crl_check, &error) ||
        !cm_net_config_strings(cfg, "cmg", "crls", &g.crl_files, &error) ||
        !cm_net_config_duration(cfg, "cmg", "refresh", 30 * CM_USEC_PER_SEC, CM_USEC_PER_SEC / 4,
                                CM_USEC_PER_DAY, &g.refresh, &error) ||
        !cm_net_config_httpd(cfg, "listen", &hc, &error) ||
        !cm_net_config_httpd(cfg, "cp_listen", &cc, &error))
        goto out;
    g.site_code = code;
    {
        g_autofree char *p1 = path_in(dir, "tls.pem"), *p2 = path_in(dir, "tls.key");
        g_autofree char *p3 = path_in(dir, "site-root.pem"), *p4 = path_in(dir, "mappings.json");
        if ((tls = cm_daemon_load_cert(p1, &error)) == NULL ||
            (tls_key = cm_daemon_load_key(p2, &error)) == NULL ||
            (sign = cm_daemon_load_cert(p_sign, &error)) == NULL ||
            (site_root = cm_daemon_load_cert(p3, &error)) == NULL ||
            (roots = cm_daemon_load_certs(p_roots, &error)) == NULL ||
            (p_ctl != NULL && (ctl_roots = cm_daemon_load_certs(p_ctl, &error)) == NULL) ||
            (mappings_json = cm_daemon_read_file(p4, CM_CMG_MAPPINGS_JSON_MAX, NULL, &error)) ==
                NULL ||
            (mappings = cm_cmg_mappings_from_json(mappings_json, strlen(mappings_json), &error)) ==
                NULL)
            goto out;
    }
    {
        CmCmgSite site = {.site_code = code, .signing_cert = sign};
        CmCmgConfig mc = {.name = name,
                          .instance = (guint)instance,
                          .tls_min = CM_CMG_TLS_MIN,
                          .sites = &site,
                          .n_sites = 1,
                          .roots = (const CmCert *const *)roots->pdata,
                          .n_roots = roots->len,
                          .crl_check = g.crl_check};
        g.cmg = cm_cmg_new(&mc, &error);
        if (g.cmg == NULL)
            goto out;
    }
    cm_cmg_set_mappings(g.cmg, mappings);
    if (ctl_roots != NULL) {
        g_autoptr(CmCtl) ctl = cm_ctl_new();
        for (guint i = 0; i < ctl_roots->len; i++)
            cm_ctl_add(ctl, g_ptr_array_index(ctl_roots, i));
        if (!cm_cmg_set_ctl(g.cmg, ctl, &error))
            goto out;
    }
    /* The TLS layer checks a client certificate only against the uploaded
     * roots (an unknown issuer fails the handshake); the CTL, revocation
     * and everything else are the library's decisions, per request. */
    for (guint i = 0; i < roots->len; i++)
        if (!cm_trust_add_root(client_trust, g_ptr_array_index(roots, i), &error))
            goto out;
    if (!cm_trust_add_root(cp_trust, site_root, &error))
        goto out;
    reload_crls(&g);
    reload_blocked(&g);
    reload_cps(&g);
    g.last_refresh = cm_net_wall_now();

    hc.https = TRUE;
    hc.http = FALSE;
    hc.server_cert = tls;
    hc.server_key = tls_key;
    hc.tls_min = cm_cmg_tls_min(g.cmg) >= CM_TLS_1_3 ? CM_NET_TLS_1_3 : CM_NET_TLS_1_2;
    hc.client_cert = CM_NET_CLIENT_CERT_OPTIONAL;
    hc.client_trust = client_trust;
    hc.max_body_size = cm_cmg_endpoint_body_max(CM_CMG_EP_CCM_INCOMING);
    hc.handler = on_other;
    hc.handler_data = &g;
    hc.metrics = metrics;
    cc.https = TRUE;
    cc.http = FALSE;
    cc.server_cert = tls;
    cc.server_key = tls_key;
    cc.client_cert = CM_NET_CLIENT_CERT_REQUIRED;
    cc.client_trust = cp_trust;
    cc.max_body_size = CM_CMGD_CHANNEL_BODY_MAX;
    cc.idle_timeout_ms = cc.idle_timeout_ms ? cc.idle_timeout_ms : 120000;
    cc.handler = on_other;
    cc.handler_data = &g;
    g.forwarded = cm_net_metrics_counter(metrics, "cm_cmg_forwarded_total",
                                         "Client requests handed to a connection point", NULL);
    g.refused = cm_net_metrics_counter(metrics, "cm_cmg_refused_total",
                                       "Client requests the gateway refused", NULL);
    g.dropped = cm_net_metrics_counter(metrics, "cm_cmg_dropped_total",
                                       "Clients whose revocation status was unknown", NULL);
    g.expired =
        cm_net_metrics_counter(metrics, "cm_cmg_expired_total",
                               "Forwarded requests no connection point answered in time", NULL);
    {
        static const double bounds[] = {1, 2, 4, 8, 16};
        g.batch_size = cm_net_metrics_histogram(metrics, "cm_cmg_poll_batch_size",
                                                "Client requests one poll's answer carried", NULL,
                                                bounds, G_N_ELEMENTS(bounds));
    }
    if (!cm_net_raise_fd_limit(65536, NULL, NULL))
        g_message("open-file limit below 65536: fewer concurrent clients fit");
    httpd = cm_net_httpd_new(&hc, &error);
    if (httpd == NULL ||
        !cm_net_httpd_add_api(httpd, "/CCM_Proxy_MutualAuth/", on_client, &g, &error) ||
        !cm_net_httpd_add_api(httpd, "/CCM_Proxy_ServerAuth/", on_client, &g, &error) ||
        !cm_net_httpd_add_api(httpd, "/ccm_proxy_mutualauth/", on_client, &g, &error) ||
        !cm_net_httpd_add_api(httpd, "/ccm_proxy_serverauth/", on_client, &g, &error))
        goto out;
    cphttpd = cm_net_httpd_new(&cc, &error);
    if (cphttpd == NULL || !cm_net_httpd_add_api(cphttpd, CM_CMGD_API_PREFIX, on_cp, &g, &error) ||
        !cm_net_httpd_add_route(cphttpd, "/metrics", cm_net_metrics_route, metrics, &error) ||
        !cm_net_httpd_add_route(cphttpd, "/health", health_route, NULL, &error) ||
        !cm_net_httpd_start(httpd, &error) || !cm_net_httpd_start(cphttpd, &error))
        goto out;
    if (!cm_daemon_write_addr(dir, "cmg-cp", cc.address ? cc.address : "127.0.0.1", 0,
                              cm_net_httpd_https_port(cphttpd), &error) ||
        !cm_daemon_write_addr(dir, "cmg", hc.address ? hc.address : "127.0.0.1", 0,
                              cm_net_httpd_https_port(httpd), &error))
        goto out;
    g.ticker = cm_daemon_ticker_start("cmg-ticker", GW_TICK_US, tick, &g);
    g_message("CMG %s instance %d serving clients on https://%s:%u (TLS %s and later, %u "
              "workers), connection points on https://%s:%u; %u roots, CTL %s, CRL check %s",
              name, (int)instance, hc.address ? hc.address : "127.0.0.1",
              cm_net_httpd_https_port(httpd), cm_cmg_tls_name(cm_cmg_tls_min(g.cmg)),
              cm_net_httpd_n_workers(httpd), cc.address ? cc.address : "127.0.0.1",
              cm_net_httpd_https_port(cphttpd), roots->len, ctl_roots ? "set" : "broad",
              g.crl_check ? "on" : "off");
    {
        int sig = cm_net_wait_for_signal();
        g_message("signal %d: stopping", sig);
    }
    rc = 0;
out:
    if (error != NULL) {
        g_critical("cmlab-cmg gateway: %s", error->message);
        g_error_free(error);
    }
    cm_daemon_ticker_stop(g.ticker);
    if (httpd != NULL)
        cm_net_httpd_stop(httpd);
    if (cphttpd != NULL)
        cm_net_httpd_stop(cphttpd);
    if (g.cmg != NULL)
        log_counters(&g);
    /* Calls still parked are answered (into the void: the servers are
     * stopped) so that the servers can free them. */
    {
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, g.cps);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            GwCp *c = v;
            Poll *p;
            Fwd *f;
            while ((p = g_queue_pop_head(&c->polls)) != NULL) {
                idle_reply(p->call);
                g_free(p);
            }
            while ((f = g_queue_pop_head(&c->queued)) != NULL) {
                busy_reply(f->client, "the gateway is stopping");
                fwd_free(f);
            }
        }
        g_hash_table_iter_init(&it, g.inflight);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            busy_reply(((Fwd *)v)->client, "the gateway is stopping");
            fwd_free(v);
        }
        g_hash_table_remove_all(g.inflight);
    }
    g_clear_pointer(&cphttpd, cm_net_httpd_free);
    g_clear_pointer(&httpd, cm_net_httpd_free);
    g_hash_table_unref(g.cps);
    g_hash_table_unref(g.inflight);
    cm_cmg_free(g.cmg);
    g_strfreev(g.crl_files);
    g_mutex_clear(&g.lock);
    return rc;
}
