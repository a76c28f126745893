/* httpd.c - the HTTP/1.1 server of the daemons: libevent's evhttp over
 * plain sockets and OpenSSL bufferevents, turning requests into CmRequest
 * and CmResponse into answers (docs/protocol.md).
 *
 * Threads.  One worker per core, each with its own event_base and evhttp
 * and its own listening socket bound to the same port with SO_REUSEPORT:
 * the kernel spreads connections over the workers, no lock or hand-off is
 * shared between them, and a connection stays on the worker that accepted
 * it.  (The other design, one listener dispatching to workers, costs a
 * hand-off per connection and a shared accept queue.)  Everything a worker
 * owns is touched only on its thread, except the reply queue through which
 * other threads answer calls.
 *
 * Timeouts.  libevent 2.1 has one inactivity timeout per connection.  The
 * server uses it as the read timeout (TLS handshake, request line, headers,
 * body: no gap between bytes longer than read_timeout) and switches the
 * connection's read timeout to idle_timeout while it waits for the next
 * keep-alive request, back to read_timeout on the first byte of it.  A
 * client that trickles one header byte just inside the read timeout is
 * bounded only by max_header_size times read_timeout: keep both small.
 *
 * Client certificates.  The handshake verifies the chain against the trust
 * store's X509_STORE (roots, and CRLs when the store checks them); the first
 * request of a connection then verifies the certificate again with
 * cm_trust_verify, which applies the certificate trust list and the
 * configured clock, and refuses the request with 403 when it fails.  The
 * verdict is kept for the connection (and redone after a minute), since a
 * chain verification costs a signature check. */
#include "internal.h"
#include "gss.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#define DEFAULT_ADDRESS "127.0.0.1"
#define DEFAULT_MAX_HEADER (8 * 1024)
#define DEFAULT_READ_TIMEOUT_MS 10000
#define DEFAULT_IDLE_TIMEOUT_MS 60000
/* A registration storm opens thousands of connections at once; a short
 * accept queue drops their SYNs and the clients' retransmits (1 s, 3 s)
 * run into their connect timeouts.  The kernel caps it at somaxconn. */
#define LISTEN_BACKLOG 8192
#define PEER_RECHECK_US (60 * CM_USEC_PER_SEC)
/* Out of file descriptors (a storm larger than the open-file limit), the
 * listener stops accepting for this long: the pending connection stays in
 * the accept queue, so libevent would report it again at once and spin
 * (it did: both workers at 100% and ten million log lines in 30 s). */
#define ACCEPT_PAUSE_MS 250
#define ACCEPT_LOG_EVERY_US (10 * CM_USEC_PER_SEC)
/* Descriptors held back (open on /dev/null) while clients may take the
 * rest.  When accept() runs out they are given up, so that the process can
 * still open what serving its clients needs (an MP's connections to its
 * site, its configuration refresh), and listening resumes only once they
 * are held again: without them an MP whose clients took every descriptor
 * could forward none of their requests, and none ever finished. */
#define FD_RESERVE 64
#define PATH_IN_MESSAGE_MAX 128

typedef struct Worker Worker;

typedef struct {
    Worker *worker;
    gboolean tls;
    CmTransport transport;
    struct evhttp *http;
    struct evconnlistener *lev;
    struct event *resume; /* re-enables lev after an accept pause */
} Listener;

/* The libevent listener's error callback gets the evhttp, not ours. */
static GMutex listeners_lock;
static GHashTable *listeners;   /* struct evhttp * -> Listener * */
static int reserve[FD_RESERVE]; /* under listeners_lock */
static guint reserve_held;

/* Under listeners_lock: holds the reserve again; whether all of it is. */
static gboolean
reserve_fill(void)
{
    while (reserve_held < FD_RESERVE) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return FALSE;
        reserve[reserve_held++] = fd;
    }
    return TRUE;
}

/* Under listeners_lock. */
static void
reserve_release(void)
{
    while (reserve_held > 0)
        close(reserve[--reserve_held]);
}

/* The reserve was given up: until it is held again every listener pauses,
 * not only the one that ran out (the others, on other workers, would
 * accept into the descriptors it freed). */
static gint reserve_out;

/* In l's thread, on each connection it accepts. */
static void
listener_check_reserve(Listener *l)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

    if (!g_atomic_int_get(&reserve_out) || l->lev == NULL)
        return;
    evconnlistener_disable(l->lev);
    if (!evtimer_pending(l->resume, NULL))
        evtimer_add(l->resume, &tv);
}

/* What the server keeps per connection, made on demand (a TLS client
 * certificate to remember, or data a handler attaches). */
typedef struct {
    Worker *worker;
    struct bufferevent *bev; /* tells an entry left by a connection that is gone */
    X509 *peer_x509;         /* the certificate checked (own reference) */
    CmCert *peer;            /* verified, or NULL */
    GError *peer_error;      /* why not */
    gint64 checked_at;       /* monotonic */
    gpointer data;
    GDestroyNotify destroy;
} Conn;

struct Worker {
    CmNetHttpd *httpd;
    guint index;
    struct event_base *base;
    Listener plain;
    Listener tls;
    GThread *thread;
    GHashTable *conns;   /* evhttp_connection -> Conn */
    GHashTable *pending; /* calls the handler kept */
    struct event *stop_ev;
    struct event *reply_ev;
    GMutex reply_lock;
    GQueue replies; /* calls answered from other threads */
    gboolean closing;
    struct timeval read_tv;
    struct timeval idle_tv;
};

/* A plain route (fn, exact path) or an API route (handler, every path
 * under the prefix path). */
typedef struct {
    char *path;
    CmNetRouteFunc fn;
    CmNetHandler handler;
    void *data;
} Route;

struct CmNetHttpd {
    CmNetHttpdConfig cfg; /* pointers borrowed from the caller */
    char *address;
    const CmClock *clock;
    SSL_CTX *ssl_ctx;
    Worker *workers;
    guint n_workers;
    GPtrArray *routes;
    guint16 http_port;
    guint16 https_port;
    gboolean started;
    gboolean stopped;
    CmNetGss *gss; /* Kerberos acceptor (gss.c), NULL without a keytab */
    /* Metrics, resolved once and cached (NULL without a registry). */
    CmNetCounter *requests[CM_EP__COUNT][CM_REASON__COUNT];
    CmNetHistogram *latency[CM_EP__COUNT];
    CmNetCounter *accepted[2]; /* plain, tls */
    CmNetGauge *pending_gauge;
};

struct CmNetCall {
    Worker *worker;
    struct evhttp_request *hreq;
    char *path; /* API calls: the path, without the query */
    CmRequest req;
    CmCert *peer_cert; /* the call's own reference: the connection may go first */
    CmResponse resp;   /* carried from another thread */
    gint64 t0;
    const char *method;
    char peer_addr[64];
};

/* The worker whose loop runs on this thread, if any. */
static _Thread_local Worker *current_worker;

/* ------------------------------------------------------------ metrics */

static void
count_request(CmNetHttpd *h, CmEndpoint ep, CmReason reason, gint64 t0)
{
    CmNetMetrics *m = h->cfg.metrics;
    CmNetCounter *c;
    CmNetHistogram *hist;

    if (m == NULL || ep >= CM_EP__COUNT || reason >= CM_REASON__COUNT)
        return;
    /* Racing workers may both resolve a metric: the registry returns the
     * same one, so either store is right. */
    c = __atomic_load_n(&h->requests[ep][reason], __ATOMIC_ACQUIRE);
    if (c == NULL) {
        const char *labels[] = {"endpoint", cm_ep_name(ep), "outcome", cm_reason_name(reason),
                                NULL};
        c = cm_net_metrics_counter(m, "cm_http_requests_total",
                                   "Requests answered, by endpoint and outcome", labels);
        __atomic_store_n(&h->requests[ep][reason], c, __ATOMIC_RELEASE);
    }
    cm_net_counter_inc(c);
    hist = __atomic_load_n(&h->latency[ep], __ATOMIC_ACQUIRE);
    if (hist == NULL) {
        const char *labels[] = {"endpoint", cm_ep_name(ep), NULL};
        hist = cm_net_metrics_histogram(m, "cm_http_request_duration_seconds",
                                        "Time from the complete request to the answer, by "
                                        "endpoint",
                                        labels, NULL, 0);
        __atomic_store_n(&h->latency[ep], hist, __ATOMIC_RELEASE);
    }
    cm_net_histogram_observe(hist, (double)(g_get_monotonic_time() - t0) / 1e6);
}

/* Fatal TLS alerts the server sends are failed handshakes (protocol
 * version, unknown CA, revoked, no certificate), counted by alert. */
static void
tls_info_cb(const SSL *ssl, int where, int ret)
{
    CmNetHttpd *h;

    if (!(where & SSL_CB_ALERT) || !(where & SSL_CB_WRITE) || (ret >> 8) != SSL3_AL_FATAL)
        return;
    h = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (h != NULL && h->cfg.metrics != NULL) {
        const char *labels[] = {"alert", SSL_alert_desc_string_long(ret), NULL};
        cm_net_counter_inc(cm_net_metrics_counter(h->cfg.metrics, "cm_tls_handshake_failures_total",
                                                  "Fatal TLS alerts sent, by alert", labels));
    }
}

/* ---------------------------------------------------------- connections */

static void
conn_free(Conn *conn)
{
    if (conn->destroy != NULL)
        conn->destroy(conn->data);
    if (conn->peer_x509 != NULL)
        X509_free(conn->peer_x509);
    if (conn->peer != NULL)
        cm_cert_unref(conn->peer);
    g_clear_error(&conn->peer_error);
    g_free(conn);
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
    Worker *w = arg;
    g_hash_table_remove(w->conns, evcon);
}

static Conn *
conn_get(Worker *w, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    Conn *conn = g_hash_table_lookup(w->conns, evcon);

    /* A connection whose close went unnoticed left an entry that a new
     * connection at the same address must not inherit. */
    if (conn != NULL && conn->bev != bev) {
        g_hash_table_remove(w->conns, evcon);
        conn = NULL;
    }
    if (conn == NULL) {
        conn = g_new0(Conn, 1);
        conn->worker = w;
        conn->bev = bev;
        g_hash_table_insert(w->conns, evcon, conn);
        evhttp_connection_set_closecb(evcon, conn_closed, w);
    }
    return conn;
}

/* The first byte of a request ends the keep-alive wait: from here on, gaps
 * between bytes are bounded by the read timeout. */
static void
input_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    Worker *w = current_worker;

    (void)buf;
    if (w != NULL && info->n_added > 0 && info->orig_size == 0)
        bufferevent_set_timeouts(arg, &w->read_tv, &w->read_tv);
}

static void
watch_input(struct bufferevent *bev)
{
    if (evbuffer_add_cb(bufferevent_get_input(bev), input_added, bev) == NULL)
        g_error("out of memory");
}

static struct bufferevent *
bev_plain(struct event_base *base, void *arg)
{
    Listener *l = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    listener_check_reserve(l);
    /* evhttp would make a bufferevent of its own if this returned NULL;
     * for the TLS listener that would be plain HTTP, so never return it. */
    if (bev == NULL)
        g_error("out of memory");
    watch_input(bev);
    cm_net_counter_inc(l->worker->httpd->accepted[0]);
    return bev;
}

static struct bufferevent *
bev_tls(struct event_base *base, void *arg)
{
    Listener *l = arg;
    SSL *ssl = SSL_new(l->worker->httpd->ssl_ctx);
    struct bufferevent *bev;

    listener_check_reserve(l);
    if (ssl == NULL)
        g_error("out of memory");
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        g_error("out of memory");
    /* A client that closes without close_notify has still sent a complete
     * request; its answer just has nowhere to go. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    watch_input(bev);
    cm_net_counter_inc(l->worker->httpd->accepted[1]);
    return bev;
}

/* --------------------------------------------------------- answers */

static void
free_string_ref(const void *data, size_t len, void *extra)
{
    (void)len;
    (void)extra;
    g_free((void *)data);
}

static void
free_bytes_ref(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    g_bytes_unref(extra);
}

/* Before the answer goes out: the connection now waits for its next
 * request, for up to the idle timeout; the answer itself must drain within
 * the read timeout. */
static void
connection_to_idle(Worker *w, struct evhttp_request *hreq)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(hreq);

    if (evcon != NULL)
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(evcon), &w->idle_tv,
                                 &w->read_tv);
}

static void
send_response(Worker *w, struct evhttp_request *hreq, CmResponse *resp)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(hreq);
    struct evbuffer *out = evhttp_request_get_output_buffer(hreq);

    if (resp->status < 100 || resp->status > 599)
        cm_response_refuse(resp, CM_REASON_INTERNAL,
                           "the server's handler gave no answer (status %d)", resp->status);
    if (resp->reason != CM_REASON_OK) {
        char *json = cm_response_error_json(resp);
        evbuffer_add_reference(out, json, strlen(json), free_string_ref, NULL);
    } else if (resp->body != NULL) {
        gsize len;
        const void *data = g_bytes_get_data(resp->body, &len);
        evbuffer_add_reference(out, data, len, free_bytes_ref, g_bytes_ref(resp->body));
    }
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    if (resp->retry_after > 0 || resp->status == 503) {
        char secs[24];
        gint64 s = (resp->retry_after + CM_USEC_PER_SEC - 1) / CM_USEC_PER_SEC;
        g_snprintf(secs, sizeof secs, "%" G_GINT64_FORMAT, MAX(s, 1));
        evhttp_add_header(headers, "Retry-After", secs);
    }
    connection_to_idle(w, hreq);
    evhttp_send_reply(hreq, resp->status, NULL, NULL);
}

/* A request evhttp still holds but nobody will answer: free it only when
 * its connection is gone (otherwise the connection frees it). */
static void
drop_request(struct evhttp_request *hreq)
{
    if (hreq != NULL && evhttp_request_get_connection(hreq) == NULL)
        evhttp_request_free(hreq);
}

static void
call_finish(CmNetCall *call, CmResponse *resp)
{
    Worker *w = call->worker;
    CmNetHttpd *h = w->httpd;

    if (g_hash_table_remove(w->pending, call))
        cm_net_gauge_add(h->pending_gauge, -1);
    if (call->hreq != NULL) {
        if (w->closing)
            drop_request(call->hreq);
        else
            send_response(w, call->hreq, resp);
    }
    count_request(h, call->req.ep, resp->reason, call->t0);
    cm_response_clear(resp);
    cm_response_clear(&call->resp);
    if (call->peer_cert != NULL)
        cm_cert_unref(call->peer_cert);
    g_free(call->path);
    g_free(call);
}

static void
reply_cb(evutil_socket_t fd, short what, void *arg)
{
    Worker *w = arg;
    CmNetCall *call;

    (void)fd;
    (void)what;
    for (;;) {
        g_mutex_lock(&w->reply_lock);
        call = g_queue_pop_head(&w->replies);
        g_mutex_unlock(&w->reply_lock);
        if (call == NULL)
            break;
        call_finish(call, &call->resp);
    }
}

void
cm_net_call_reply(CmNetCall *call, CmResponse *resp)
{
    Worker *w = call->worker;

    if (current_worker == w) {
        call_finish(call, resp);
        return;
    }
    /* Another thread: hand the answer to the worker, which alone may touch
     * the connection. */
    call->resp = *resp;
    memset(resp, 0, sizeof *resp);
    g_mutex_lock(&w->reply_lock);
    g_queue_push_tail(&w->replies, call);
    g_mutex_unlock(&w->reply_lock);
    event_active(w->reply_ev, EV_TIMEOUT, 0);
}

const CmRequest *
cm_net_call_request(const CmNetCall *call)
{
    return &call->req;
}

const char *
cm_net_call_method(const CmNetCall *call)
{
    return call->method;
}

const char *
cm_net_call_peer_address(const CmNetCall *call)
{
    return call->peer_addr;
}

guint
cm_net_call_worker(const CmNetCall *call)
{
    return call->worker->index;
}

struct event_base *
cm_net_call_base(const CmNetCall *call)
{
    return call->worker->base;
}

void
cm_net_call_set_conn_data(CmNetCall *call, gpointer data, GDestroyNotify destroy)
{
    struct evhttp_connection *evcon = call->hreq ? evhttp_request_get_connection(call->hreq) : NULL;
    Conn *conn;

    if (evcon == NULL) {
        if (destroy != NULL)
            destroy(data);
        return;
    }
    conn = conn_get(call->worker, evcon);
    if (conn->destroy != NULL)
        conn->destroy(conn->data);
    conn->data = data;
    conn->destroy = destroy;
}

gpointer
cm_net_call_get_conn_data(CmNetCall *call)
{
    struct evhttp_connection *evcon = call->hreq ? evhttp_request_get_connection(call->hreq) : NULL;
    Conn *conn = evcon ? g_hash_table_lookup(call->worker->conns, evcon) : NULL;

    if (conn == NULL || conn->bev != evhttp_connection_get_bufferevent(evcon))
        return NULL;
    return conn->data;
}

/* ------------------------------------------------------------ requests */

static CmReason
peer_refusal(const GError *error)
{
    if (g_error_matches(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REVOKED))
        return CM_REASON_REVOKED;
    if (g_error_matches(error, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED))
        return CM_REASON_CERT_EXPIRED;
    /* No chain, a root outside the CTL, the wrong purpose. */
    return CM_REASON_UNTRUSTED;
}

static void
conn_check_peer(CmNetHttpd *h, Conn *conn, SSL *ssl, X509 *x509)
{
    STACK_OF(X509) *sk = SSL_get_peer_cert_chain(ssl);
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    GError *err = NULL;
    CmCert *cert;

    g_clear_pointer(&conn->peer, cm_cert_unref);
    g_clear_error(&conn->peer_error);
    if (conn->peer_x509 != NULL)
        X509_free(conn->peer_x509);
    X509_up_ref(x509);
    conn->peer_x509 = x509;
    conn->checked_at = g_get_monotonic_time();

    cert = cm_cert_from_x509(x509, &err);
    if (cert != NULL) {
        /* What else the client sent may help build the chain (never as an
         * anchor: cm_trust_verify treats it as untrusted). */
        for (int i = 0; sk != NULL && i < sk_X509_num(sk); i++) {
            X509 *x = sk_X509_value(sk, i);
            CmCert *c;
            if (X509_cmp(x, x509) == 0 || (c = cm_cert_from_x509(x, NULL)) == NULL)
                continue;
            g_ptr_array_add(chain, c);
        }
        if (cm_trust_verify(h->cfg.client_trust, cert, chain, h->clock->now(h->clock->ctx),
                            CM_PURPOSE_CLIENT_AUTH, NULL, &err))
            conn->peer = cm_cert_ref(cert);
        cm_cert_unref(cert);
    }
    conn->peer_error = err;
}

static gboolean
call_peer(CmNetCall *call, struct evhttp_connection *evcon, CmResponse *resp)
{
    Worker *w = call->worker;
    CmNetHttpd *h = w->httpd;
    SSL *ssl = bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon));
    CmPeer *peer = &call->req.peer;
    X509 *x509;
    Conn *conn;

    if (ssl == NULL || h->cfg.client_cert == CM_NET_CLIENT_CERT_NONE)
        return TRUE;
    x509 = SSL_get0_peer_certificate(ssl);
    if (x509 == NULL) {
        if (h->cfg.client_cert != CM_NET_CLIENT_CERT_REQUIRED)
            return TRUE;
        cm_response_refuse(resp, CM_REASON_UNTRUSTED,
                           "this endpoint requires a TLS client certificate");
        return FALSE;
    }
    conn = conn_get(w, evcon);
    if (conn->peer_x509 != x509 || g_get_monotonic_time() - conn->checked_at > PEER_RECHECK_US)
        conn_check_peer(h, conn, ssl, x509);
    if (conn->peer_error != NULL) {
        cm_response_refuse(resp, peer_refusal(conn->peer_error),
                           "TLS client certificate refused: %s", conn->peer_error->message);
        return FALSE;
    }
    call->peer_cert = cm_cert_ref(conn->peer);
    peer->kind = CM_AUTH_PKI;
    g_strlcpy(peer->principal, cm_cert_subject_cn(call->peer_cert), sizeof peer->principal);
    peer->client_cert = call->peer_cert;
    return TRUE;
}

/* SPNEGO/Kerberos on a server with a keytab (gss.c): "Authorization:
 * Negotiate" authenticates the request, a bad token is refused, no header
 * leaves it anonymous (the MP and the site decide).  Other schemes (a DP's
 * Bearer token) are the handler's.  A verified TLS client certificate stays
 * the peer: it is the stronger identity. */
static gboolean
call_negotiate(CmNetCall *call, CmResponse *resp)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(call->hreq);
    const char *auth = evhttp_find_header(in, "Authorization");
    g_autofree char *reply = NULL;
    CmPeer peer = {0};
    GError *err = NULL;

    if (auth == NULL || g_ascii_strncasecmp(auth, "Negotiate", 9) != 0)
        return TRUE;
    if (!cm_net_gss_accept(call->worker->httpd->gss, auth, &peer, &reply, &err)) {
        cm_response_refuse(
            resp, err->code == CM_NET_ERROR_PROTOCOL ? CM_REASON_BAD_REQUEST : CM_REASON_UNTRUSTED,
            "%s", err->message);
        g_error_free(err);
        return FALSE;
    }
    if (reply != NULL) {
        g_autofree char *v = g_strconcat("Negotiate ", reply, NULL);
        evhttp_add_header(evhttp_request_get_output_headers(call->hreq), "WWW-Authenticate", v);
    }
    if (call->req.peer.kind == CM_AUTH_ANONYMOUS)
        call->req.peer = peer;
    return TRUE;
}

/* Fills the call's CmRequest from HTTP; FALSE with resp set to the
 * refusal when the request never reaches the handler. */
static gboolean
call_prepare(CmNetCall *call, const Listener *l, const Route *api, CmResponse *resp)
{
    struct evhttp_request *hreq = call->hreq;
    struct evhttp_connection *evcon = evhttp_request_get_connection(hreq);
    const char *uri = evhttp_request_get_uri(hreq);
    struct evbuffer *in = evhttp_request_get_input_buffer(hreq);
    size_t body_len = evbuffer_get_length(in);
    CmRequest *req = &call->req;
    const char *client_id = NULL;
    const char *signature = NULL;
    int n_client_id = 0, n_signature = 0;
    struct evkeyval *kv;
    GError *err = NULL;

    req->transport = l->transport;
    req->ep = api != NULL ? CM_EP_NONE : cm_ep_from_path(uri);
    if (req->ep == CM_EP_NONE && api == NULL) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT,
                           "no endpoint at \"%.*s\": docs/protocol.md lists the paths",
                           PATH_IN_MESSAGE_MAX, uri ? uri : "");
        return FALSE;
    }
    if (evcon != NULL && l->tls && !call_peer(call, evcon, resp))
        return FALSE;
    if (l->worker->httpd->gss != NULL && !call_negotiate(call, resp))
        return FALSE;
    if (api != NULL && body_len > l->worker->httpd->cfg.max_body_size) {
        cm_response_refuse(resp, CM_REASON_TOO_LARGE, "%s takes at most %zu bytes of body, not %zu",
                           api->path, l->worker->httpd->cfg.max_body_size, body_len);
        return FALSE;
    }
    if (api == NULL && body_len > cm_ep_body_max(req->ep)) {
        cm_response_refuse(resp, CM_REASON_TOO_LARGE,
                           "the %s endpoint takes at most %zu bytes of body, not %zu",
                           cm_ep_name(req->ep), cm_ep_body_max(req->ep), body_len);
        return FALSE;
    }
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(hreq), next)
    {
        if (g_ascii_strcasecmp(kv->key, CM_HDR_CLIENT_ID) == 0) {
            client_id = kv->value;
            n_client_id++;
        } else if (g_ascii_strcasecmp(kv->key, CM_HDR_SIGNATURE) == 0) {
            signature = kv->value;
            n_signature++;
        }
    }
    if (n_client_id > 1 || n_signature > 1) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "send %s and %s at most once each",
                           CM_HDR_CLIENT_ID, CM_HDR_SIGNATURE);
        return FALSE;
    }
    if (client_id != NULL) {
        if (!cm_id_smsid_check(client_id, &err)) {
            cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "%s header: %s", CM_HDR_CLIENT_ID,
                               err->message);
            g_error_free(err);
            return FALSE;
        }
        g_strlcpy(req->smsid, client_id, sizeof req->smsid);
    }
    if (signature != NULL && !cm_msg_parse_signature(signature, req, &err)) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "%s", err->message);
        g_error_free(err);
        return FALSE;
    }
    req->body = body_len ? evbuffer_pullup(in, -1) : NULL;
    req->body_len = body_len;
    return TRUE;
}

static const Route *
find_route(const CmNetHttpd *h, const char *path)
{
    for (guint i = 0; path != NULL && i < h->routes->len; i++) {
        const Route *r = g_ptr_array_index(h->routes, i);
        if (r->handler != NULL ? g_str_has_prefix(path, r->path) : strcmp(r->path, path) == 0)
            return r;
    }
    return NULL;
}

static void
serve_route(Worker *w, struct evhttp_request *hreq, const Route *route, const char *path)
{
    GString *body = g_string_new(NULL);
    const char *content_type = NULL;
    int status = route->fn(path, body, &content_type, route->data);
    gsize len = body->len;

    evhttp_add_header(evhttp_request_get_output_headers(hreq), "Content-Type",
                      content_type ? content_type : "text/plain; charset=utf-8");
    evbuffer_add_reference(evhttp_request_get_output_buffer(hreq), g_string_free(body, FALSE), len,
                           free_string_ref, NULL);
    connection_to_idle(w, hreq);
    evhttp_send_reply(hreq, status >= 100 && status <= 599 ? status : 500, NULL, NULL);
}

static void
on_request(struct evhttp_request *hreq, void *arg)
{
    Listener *l = arg;
    Worker *w = l->worker;
    CmNetHttpd *h = w->httpd;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hreq);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evhttp_connection *evcon = evhttp_request_get_connection(hreq);
    const Route *route = find_route(h, path);
    const Route *api = route != NULL && route->handler != NULL ? route : NULL;
    CmNetHandler handler = api != NULL ? api->handler : h->cfg.handler;
    void *handler_data = api != NULL ? api->data : h->cfg.handler_data;
    CmResponse resp = {0};
    CmNetCall *call;

    if (route != NULL && api == NULL) {
        serve_route(w, hreq, route, path);
        return;
    }
    call = g_new0(CmNetCall, 1);
    call->worker = w;
    call->hreq = hreq;
    call->t0 = g_get_monotonic_time();
    call->method = evhttp_request_get_command(hreq) == EVHTTP_REQ_POST ? "POST" : "GET";
    if (api != NULL)
        call->path = g_strdup(path);
    if (evcon != NULL) {
        char *address = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(evcon, &address, &port);
        g_strlcpy(call->peer_addr, address ? address : "", sizeof call->peer_addr);
    }
    if (!call_prepare(call, l, api, &resp)) {
        call_finish(call, &resp);
        return;
    }
    g_hash_table_add(w->pending, call);
    cm_net_gauge_add(h->pending_gauge, 1);
    /* FALSE: the handler answers (or has answered) with cm_net_call_reply;
     * call may be gone already. */
    if (handler(call, &call->req, &resp, handler_data))
        call_finish(call, &resp);
}

/* ------------------------------------------------------------ sockets */

static gboolean
parse_address(const char *address, gboolean allow_non_loopback, struct sockaddr_storage *ss,
              socklen_t *len, GError **error)
{
    struct addrinfo hints = {0};
    struct addrinfo *ai = NULL;
    gboolean loopback = FALSE;
    int rc;

    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(address, NULL, &hints, &ai);
    if (rc != 0 || ai == NULL || ai->ai_addrlen > sizeof *ss) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "listen address \"%s\" is not a numeric IPv4 or IPv6 address: use 127.0.0.1 "
                    "or ::1",
                    address);
        if (ai != NULL)
            freeaddrinfo(ai);
        return FALSE;
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET)
        loopback = (ntohl(((struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    else if (ss->ss_family == AF_INET6)
        loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ss)->sin6_addr);
    if (!loopback && !allow_non_loopback) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "listen address \"%s\" is not a loopback address: the lab serves 127.0.0.1 "
                    "or ::1 only",
                    address);
        return FALSE;
    }
    return TRUE;
}

static void
set_port(struct sockaddr_storage *ss, guint16 port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static guint16
get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* SO_REUSEPORT would let a second daemon started on the same port share
 * it silently (splitting the traffic); a bind without it first tells
 * whether anyone listens there. */
static gboolean
port_free(const char *address, const struct sockaddr_storage *ss, socklen_t len, guint16 port,
          GError **error)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    gboolean ok;

    if (fd < 0) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND, "cannot make a socket: %s",
                    g_strerror(errno));
        return FALSE;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ok = bind(fd, (const struct sockaddr *)ss, len) == 0;
    if (!ok)
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND,
                    "cannot listen on %s port %u: %s (is another program using the port? port 0 "
                    "picks a free one)",
                    address, port, g_strerror(errno));
    close(fd);
    return ok;
}

/* A listening socket on address:port shared with the other workers
 * (SO_REUSEPORT); with port 0, the kernel's choice is written back.  first
 * is the first socket on this port. */
static int
listen_socket(const char *address, struct sockaddr_storage *ss, socklen_t len, guint16 *port,
              gboolean first, GError **error)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;

    if (fd < 0) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND, "cannot make a socket: %s",
                    g_strerror(errno));
        return -1;
    }
    set_port(ss, *port);
    if (*port != 0 && first && !port_free(address, ss, len, *port, error))
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        /* Accepted sockets inherit it: an answer goes out as the header
         * and body records, and Nagle would hold the second until the
         * client's delayed ACK (40 ms per request). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND, "cannot set socket options: %s",
                    g_strerror(errno));
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)ss, len) != 0) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND,
                    "cannot listen on %s port %u: %s (is another program using the port? port 0 "
                    "picks a free one)",
                    address, *port, g_strerror(errno));
        goto fail;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND, "cannot listen on %s port %u: %s",
                    address, *port, g_strerror(errno));
        goto fail;
    }
    *port = get_port(&bound);
    return fd;
fail:
    close(fd);
    return -1;
}

/* ---------------------------------------------------------------- TLS */

static gboolean
tls_context(CmNetHttpd *h, GError **error)
{
    const CmNetHttpdConfig *cfg = &h->cfg;
    SSL_CTX *ctx;
    gboolean ok = FALSE;

    if (cfg->server_cert == NULL || cfg->server_key == NULL ||
        !cm_key_has_private(cfg->server_key)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "HTTPS needs a server certificate and its private key");
        return FALSE;
    }
    if (cfg->client_cert != CM_NET_CLIENT_CERT_NONE && cfg->client_trust == NULL) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "client certificates are %s but no trust store (roots, CRLs, CTL) is set",
                    cm_net_client_cert_mode_name(cfg->client_cert));
        return FALSE;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        cm_net_set_tls_error(error, "cannot make a TLS context");
        return FALSE;
    }
    h->ssl_ctx = ctx;
    if (!SSL_CTX_set_min_proto_version(ctx, cm_net_tls_version_ossl(cfg->tls_min))) {
        cm_net_set_tls_error(error, "cannot set the minimum TLS version");
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* Idle keep-alive connections give their TLS buffers back: an MP holds
     * thousands of notification channels. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate(ctx, cm_cert_x509(cfg->server_cert)) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, cm_key_evp(cfg->server_key)) != 1) {
        cm_net_set_tls_error(error, "cannot use the server certificate and key");
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "the server key is not the key of certificate \"%s\"",
                    cm_cert_subject_cn(cfg->server_cert));
        goto out;
    }
    for (guint i = 0; cfg->server_chain != NULL && i < cfg->server_chain->len; i++) {
        if (SSL_CTX_add1_chain_cert(ctx, cm_cert_x509(g_ptr_array_index(cfg->server_chain, i))) !=
            1) {
            cm_net_set_tls_error(error, "cannot add a chain certificate");
            goto out;
        }
    }
    /* Required with client certificates, or resumed sessions fail. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"cmlab", 5);
    if (cfg->client_cert != CM_NET_CLIENT_CERT_NONE) {
        X509_STORE *store = cm_trust_x509_store(cfg->client_trust);
        STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
        STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
        int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;

        if (cfg->client_cert == CM_NET_CLIENT_CERT_REQUIRED)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set1_cert_store(ctx, store);
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_verify_depth(ctx, 4);
        SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        /* Tell clients which roots count, so that one holding several
         * certificates offers the right one. */
        for (int i = 0; names != NULL && i < sk_X509_OBJECT_num(objs); i++) {
            X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
            X509_NAME *name = x ? X509_NAME_dup(X509_get_subject_name(x)) : NULL;
            if (name != NULL)
                sk_X509_NAME_push(names, name);
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_app_data(ctx, h);
    SSL_CTX_set_info_callback(ctx, tls_info_cb);
    ok = TRUE;
out:
    return ok;
}

/* ------------------------------------------------------------- workers */

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    Worker *w = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(w->base);
}

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    Listener *l = arg;
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    gboolean held;

    (void)fd;
    (void)what;
    g_mutex_lock(&listeners_lock);
    held = reserve_fill();
    if (held)
        g_atomic_int_set(&reserve_out, 0);
    g_mutex_unlock(&listeners_lock);
    if (held)
        evconnlistener_enable(l->lev);
    else
        evtimer_add(l->resume, &tv); /* clients still hold too many */
}

/* accept() failed for a reason other than a retry (libevent handles
 * those): out of descriptors or memory.  Pause, say so now and then. */
static void
on_accept_error(struct evconnlistener *lev, void *ctx)
{
    static gint64 logged_at;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    gint64 now = g_get_monotonic_time();
    gboolean say;
    Listener *l;

    g_mutex_lock(&listeners_lock);
    l = listeners != NULL ? g_hash_table_lookup(listeners, ctx) : NULL;
    say = logged_at == 0 || now - logged_at >= ACCEPT_LOG_EVERY_US;
    if (say)
        logged_at = now;
    if (err == EMFILE || err == ENFILE) {
        reserve_release();
        g_atomic_int_set(&reserve_out, 1);
    }
    g_mutex_unlock(&listeners_lock);
    evconnlistener_disable(lev);
    if (l != NULL)
        evtimer_add(l->resume, &tv);
    if (say) {
        g_warning("cannot accept connections: %s; pausing new connections %d ms at a time "
                  "(raise the open-file limit for more clients)",
                  evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
    }
}

static gboolean
listener_init(Listener *l, Worker *w, gboolean tls, int fd, GError **error)
{
    const CmNetHttpdConfig *cfg = &w->httpd->cfg;
    struct evhttp_bound_socket *handle;

    l->worker = w;
    l->tls = tls;
    l->transport = tls ? cfg->tls_transport : CM_TRANSPORT_HTTP;
    l->http = evhttp_new(w->base);
    if (l->http == NULL)
        g_error("out of memory");
    evhttp_set_max_headers_size(l->http, (ev_ssize_t)cfg->max_header_size);
    evhttp_set_max_body_size(l->http, (ev_ssize_t)cfg->max_body_size);
    evhttp_set_timeout_tv(l->http, &w->read_tv);
    evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    /* An over-long body is read and dropped before the 413, so that the
     * client sees the answer rather than a reset connection. */
    evhttp_set_flags(l->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_bevcb(l->http, tls ? bev_tls : bev_plain, l);
    evhttp_set_gencb(l->http, on_request, l);
    handle = evhttp_accept_socket_with_handle(l->http, fd);
    if (handle == NULL) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_BIND,
                    "cannot accept connections on the listening socket: %s", g_strerror(errno));
        close(fd);
        return FALSE;
    }
    l->lev = evhttp_bound_socket_get_listener(handle);
    l->resume = evtimer_new(w->base, on_accept_resume, l);
    if (l->resume == NULL)
        g_error("out of memory");
    g_mutex_lock(&listeners_lock);
    if (listeners == NULL)
        listeners = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_insert(listeners, l->http, l);
    (void)reserve_fill(); /* a process near its limit at start just holds less */
    g_mutex_unlock(&listeners_lock);
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    return TRUE;
}

static void
listener_clear(Listener *l)
{
    if (l->http == NULL)
        return;
    g_mutex_lock(&listeners_lock);
    if (listeners != NULL)
        g_hash_table_remove(listeners, l->http);
    if (listeners != NULL && g_hash_table_size(listeners) == 0)
        reserve_release(); /* the last listener is gone */
    g_mutex_unlock(&listeners_lock);
    if (l->resume != NULL)
        event_free(l->resume);
    l->resume = NULL;
    evhttp_free(l->http);
    l->http = NULL;
}

static gboolean
worker_init(Worker *w, CmNetHttpd *h, guint index, int plain_fd, int tls_fd, GError **error)
{
    w->httpd = h;
    w->index = index;
    w->read_tv.tv_sec = h->cfg.read_timeout_ms / 1000;
    w->read_tv.tv_usec = (h->cfg.read_timeout_ms % 1000) * 1000;
    w->idle_tv.tv_sec = h->cfg.idle_timeout_ms / 1000;
    w->idle_tv.tv_usec = (h->cfg.idle_timeout_ms % 1000) * 1000;
    w->conns =
        g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)conn_free);
    w->pending = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_mutex_init(&w->reply_lock);
    g_queue_init(&w->replies);
    w->base = cm_net_event_base_new();
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->reply_ev = event_new(w->base, -1, 0, reply_cb, w);
    if (w->stop_ev == NULL || w->reply_ev == NULL)
        g_error("out of memory");
    if (plain_fd >= 0 && !listener_init(&w->plain, w, FALSE, plain_fd, error)) {
        if (tls_fd >= 0)
            close(tls_fd);
        return FALSE;
    }
    if (tls_fd >= 0 && !listener_init(&w->tls, w, TRUE, tls_fd, error))
        return FALSE;
    return TRUE;
}

static void
worker_clear(Worker *w)
{
    GHashTableIter it;
    gpointer key;

    if (w->base == NULL)
        return;
    /* Answers other threads gave after the loop stopped go nowhere. */
    w->closing = TRUE;
    reply_cb(-1, 0, w);
    /* Calls nobody answered: the contract says the owner answers them before
     * free, so what is left is dropped. */
    g_hash_table_iter_init(&it, w->pending);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        CmNetCall *call = key;
        g_hash_table_iter_remove(&it);
        drop_request(call->hreq);
        cm_response_clear(&call->resp);
        if (call->peer_cert != NULL)
            cm_cert_unref(call->peer_cert);
        g_free(call);
    }
    /* Freeing the servers frees their connections, whose close callbacks
     * release what the connections held. */
    listener_clear(&w->plain);
    listener_clear(&w->tls);
    /* A bufferevent freed above is finalised by its loop (libevent defers
     * it); one more turn runs those finalisers, or the connections still
     * open at shutdown would keep their SSL objects. */
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    event_free(w->stop_ev);
    event_free(w->reply_ev);
    g_hash_table_unref(w->conns);
    g_hash_table_unref(w->pending);
    event_base_free(w->base);
    g_mutex_clear(&w->reply_lock);
    w->base = NULL;
}

static gpointer
worker_main(gpointer data)
{
    Worker *w = data;
    sigset_t set;

    /* Termination signals are for the main thread (cm_net_wait_for_signal). */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    current_worker = w;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    current_worker = NULL;
    return NULL;
}

/* -------------------------------------------------------------- server */

static void
route_free(gpointer data)
{
    Route *r = data;
    g_free(r->path);
    g_free(r);
}

CmNetHttpd *
cm_net_httpd_new(const CmNetHttpdConfig *config, GError **error)
{
    CmNetHttpd *h = g_new0(CmNetHttpd, 1);
    struct sockaddr_storage ss;
    socklen_t ss_len;
    int *plain_fds = NULL, *tls_fds = NULL;
    guint n_ready = 0;
    gboolean ok = FALSE;

    cm_net_init();
    h->cfg = *config;
    h->routes = g_ptr_array_new_with_free_func(route_free);
    h->address = g_strdup(config->address ? config->address : DEFAULT_ADDRESS);
    h->cfg.address = h->address;
    h->clock = config->clock ? config->clock : cm_net_wall_clock();
    if (h->cfg.tls_transport == CM_TRANSPORT_HTTP)
        h->cfg.tls_transport = CM_TRANSPORT_HTTPS;
    if (h->cfg.max_header_size == 0)
        h->cfg.max_header_size = DEFAULT_MAX_HEADER;
    if (h->cfg.max_body_size == 0)
        for (int ep = 1; ep < CM_EP__COUNT; ep++)
            h->cfg.max_body_size = MAX(h->cfg.max_body_size, cm_ep_body_max((CmEndpoint)ep));
    if (h->cfg.read_timeout_ms == 0)
        h->cfg.read_timeout_ms = DEFAULT_READ_TIMEOUT_MS;
    if (h->cfg.idle_timeout_ms == 0)
        h->cfg.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    h->n_workers = config->workers ? config->workers : MAX(g_get_num_processors(), 1);

    if (config->handler == NULL) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "the server needs a handler");
        goto out;
    }
    if (!config->http && !config->https) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "the server serves neither HTTP nor HTTPS: turn one on");
        goto out;
    }
    if (config->keytab != NULL && (h->gss = cm_net_gss_new(config->keytab, error)) == NULL)
        goto out;
    if (!parse_address(h->address, config->allow_non_loopback, &ss, &ss_len, error))
        goto out;
    if (config->https && !tls_context(h, error))
        goto out;
    if (config->metrics != NULL) {
        const char *plain[] = {"listener", "http", NULL};
        const char *tls[] = {"listener", "https", NULL};
        h->accepted[0] = cm_net_metrics_counter(config->metrics, "cm_http_connections_total",
                                                "Connections accepted, by listener", plain);
        h->accepted[1] = cm_net_metrics_counter(config->metrics, "cm_http_connections_total",
                                                "Connections accepted, by listener", tls);
        h->pending_gauge =
            cm_net_metrics_gauge(config->metrics, "cm_http_pending_calls",
                                 "Requests handed to the handler and not yet answered", NULL);
    }

    /* All sockets first, so that a port in use fails before any thread. */
    plain_fds = g_new(int, h->n_workers);
    tls_fds = g_new(int, h->n_workers);
    for (guint i = 0; i < h->n_workers; i++)
        plain_fds[i] = tls_fds[i] = -1;
    h->http_port = config->http_port;
    h->https_port = config->https_port;
    for (guint i = 0; i < h->n_workers; i++) {
        if (config->http && (plain_fds[i] = listen_socket(h->address, &ss, ss_len, &h->http_port,
                                                          i == 0, error)) < 0)
            goto out;
        if (config->https && (tls_fds[i] = listen_socket(h->address, &ss, ss_len, &h->https_port,
                                                         i == 0, error)) < 0)
            goto out;
    }
    h->workers = g_new0(Worker, h->n_workers);
    for (n_ready = 0; n_ready < h->n_workers; n_ready++) {
        /* worker_init owns (and closes on failure) its sockets. */
        int p = plain_fds[n_ready], t = tls_fds[n_ready];
        plain_fds[n_ready] = tls_fds[n_ready] = -1;
        if (!worker_init(&h->workers[n_ready], h, n_ready, p, t, error)) {
            n_ready++;
            goto out;
        }
    }
    ok = TRUE;
out:
    for (guint i = 0; plain_fds != NULL && i < h->n_workers; i++) {
        if (plain_fds[i] >= 0)
            close(plain_fds[i]);
        if (tls_fds[i] >= 0)
            close(tls_fds[i]);
    }
    g_free(plain_fds);
    g_free(tls_fds);
    if (!ok) {
        for (guint i = 0; i < n_ready; i++)
            worker_clear(&h->workers[i]);
        g_free(h->workers);
        h->workers = NULL;
        h->n_workers = 0;
        cm_net_httpd_free(h);
        return NULL;
    }
    return h;
}

static void
route_add(CmNetHttpd *h, const char *path, CmNetRouteFunc fn, CmNetHandler handler, void *data)
{
    Route *r = g_new0(Route, 1);

    r->path = g_strdup(path);
    r->fn = fn;
    r->handler = handler;
    r->data = data;
    g_ptr_array_add(h->routes, r);
}

gboolean
cm_net_httpd_add_route(CmNetHttpd *h, const char *path, CmNetRouteFunc fn, void *user_data,
                       GError **error)
{
    if (h->started || path == NULL || path[0] != '/' || fn == NULL || find_route(h, path) != NULL ||
        cm_ep_from_path(path) != CM_EP_NONE) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "cannot add route \"%s\": give an absolute path that is not an endpoint or "
                    "another route, before the server starts",
                    path ? path : "");
        return FALSE;
    }
    route_add(h, path, fn, NULL, user_data);
    return TRUE;
}

gboolean
cm_net_httpd_add_api(CmNetHttpd *h, const char *prefix, CmNetHandler handler, void *user_data,
                     GError **error)
{
    if (h->started || prefix == NULL || prefix[0] != '/' || !g_str_has_suffix(prefix, "/") ||
        handler == NULL || find_route(h, prefix) != NULL) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "cannot add API \"%s\": give an absolute path ending in / that no other "
                    "route serves, before the server starts",
                    prefix ? prefix : "");
        return FALSE;
    }
    route_add(h, prefix, NULL, handler, user_data);
    return TRUE;
}

const char *
cm_net_call_path(const CmNetCall *call)
{
    return call->path;
}

const char *
cm_net_call_query(const CmNetCall *call)
{
    const struct evhttp_uri *uri = call->hreq ? evhttp_request_get_evhttp_uri(call->hreq) : NULL;

    return uri != NULL ? evhttp_uri_get_query(uri) : NULL;
}

const char *
cm_net_call_header(const CmNetCall *call, const char *name)
{
    if (call->hreq == NULL)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(call->hreq), name);
}

const CmCert *
cm_net_call_peer_cert(const CmNetCall *call)
{
    return call->peer_cert;
}

gboolean
cm_net_httpd_start(CmNetHttpd *h, GError **error)
{
    if (h->started) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED, "the server was started already");
        return FALSE;
    }
    h->started = TRUE;
    for (guint i = 0; i < h->n_workers; i++) {
        char name[16];
        g_snprintf(name, sizeof name, "cm-httpd-%u", i);
        h->workers[i].thread = g_thread_try_new(name, worker_main, &h->workers[i], error);
        if (h->workers[i].thread == NULL) {
            g_prefix_error(error, "cannot start worker %u: ", i);
            cm_net_httpd_stop(h);
            return FALSE;
        }
    }
    return TRUE;
}

void
cm_net_httpd_stop(CmNetHttpd *h)
{
    if (h == NULL || !h->started || h->stopped)
        return;
    h->stopped = TRUE;
    /* An activated event rather than event_base_loopbreak: a break sent
     * before a worker entered its loop would be forgotten. */
    for (guint i = 0; i < h->n_workers; i++)
        if (h->workers[i].thread != NULL)
            event_active(h->workers[i].stop_ev, EV_TIMEOUT, 0);
    for (guint i = 0; i < h->n_workers; i++)
        if (h->workers[i].thread != NULL)
            g_thread_join(g_steal_pointer(&h->workers[i].thread));
}

void
cm_net_httpd_free(CmNetHttpd *h)
{
    if (h == NULL)
        return;
    cm_net_httpd_stop(h);
    for (guint i = 0; i < h->n_workers; i++)
        worker_clear(&h->workers[i]);
    g_free(h->workers);
    if (h->ssl_ctx != NULL)
        SSL_CTX_free(h->ssl_ctx);
    g_ptr_array_unref(h->routes);
    cm_net_gss_free(h->gss);
    g_free(h->address);
    g_free(h);
}

guint16
cm_net_httpd_http_port(const CmNetHttpd *h)
{
    return h->cfg.http ? h->http_port : 0;
}

guint16
cm_net_httpd_https_port(const CmNetHttpd *h)
{
    return h->cfg.https ? h->https_port : 0;
}

guint
cm_net_httpd_n_workers(const CmNetHttpd *h)
{
    return h->n_workers;
}

struct event_base *
cm_net_httpd_worker_base(CmNetHttpd *h, guint worker)
{
    return worker < h->n_workers ? h->workers[worker].base : NULL;
}

/* ------------------------------------------------------------- signals */

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    int *got = arg;

    (void)what;
    *got = (int)sig;
    /* The loop ends once no event is left. */
}

int
cm_net_wait_for_signal(void)
{
    struct event_base *base;
    struct event *term, *intr;
    int got = 0;

    base = cm_net_event_base_new();
    term = evsignal_new(base, SIGTERM, signal_cb, &got);
    intr = evsignal_new(base, SIGINT, signal_cb, &got);
    if (term == NULL || intr == NULL || event_add(term, NULL) != 0 || event_add(intr, NULL) != 0)
        g_error("cannot watch SIGTERM and SIGINT");
    while (got == 0)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(term);
    event_free(intr);
    event_base_free(base);
    return got;
}
