/* httpc.c - the HTTP client of the daemons and the agent: libcurl's multi
 * interface driven by a libevent loop (curl tells which sockets to watch
 * and when to wake; the loop tells curl what happened).
 *
 * TLS identity.  The client certificate and its key reach OpenSSL through
 * CURLOPT_SSL_CTX_FUNCTION as an X509 and an EVP_PKEY, not as PEM blobs
 * (CURLOPT_SSLKEY_BLOB): a key held by a key storage provider cannot be
 * exported at all, and a PEM copy of any private key would be one more
 * place for it to leak.  The roots go the same way, as one X509_STORE of
 * the parsed certificates made once per client and shared by its
 * connections (a PEM blob, CAINFO_BLOB, would be parsed again for every
 * connection, and a load generator's agents each make one); the system's
 * CA file and path are switched off, so that only the given roots count.
 *
 * One identity per client, one multi handle (and so one connection cache)
 * per client: libcurl cannot see the certificate we set in the callback
 * when it decides to reuse a connection, so sharing a cache between
 * identities could send one agent's request over another's connection. */
#include "internal.h"

#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_RESPONSE (8 * 1024 * 1024)
#define MAX_RESPONSE_HEADERS (64 * 1024)

struct CmNetHttpc {
    struct event_base *base;
    gboolean own_base;
    CURLM *multi;
    struct event *timer;
    CmNetHttpcConfig cfg; /* scalars; the pointers below are owned copies */
    CmCert *client_cert;
    CmKey *client_key;
    X509_STORE *roots; /* NULL: no roots given */
    struct curl_slist *connect_to;
    GHashTable *transfers; /* in flight, with those waiting */
    /* With max_host_connections, at most that many transfers are in
     * libcurl's hands and the rest wait here, in order: libcurl keeps its
     * own waiting transfers on lists that every removal walks, and an MP
     * in a storm holds thousands of forwards (curl_multi_remove_handle
     * took a tenth of its time). */
    GQueue waiting;
    guint admitted;
    gboolean freeing;
};

typedef struct {
    CmNetHttpc *c;
    CURL *easy;
    struct curl_slist *headers;
    GByteArray *body;
    GHashTable *resp_headers;
    size_t header_bytes;
    gboolean too_large;
    gint64 t0;
    gboolean admitted; /* in libcurl's hands */
    char *what;        /* "POST https://..." for messages */
    CmNetHttpcDone done;
    void *user_data;
    char errbuf[CURL_ERROR_SIZE];
} Transfer;

typedef struct {
    struct event *ev;
} SockWatch;

/* ---------------------------------------------------------- transfers */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    Transfer *t = arg;
    size_t len = size * n;

    if (t->body->len + len > t->c->cfg.max_response_size) {
        t->too_large = TRUE;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    g_byte_array_append(t->body, (const guint8 *)data, (guint)len);
    return len;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
    Transfer *t = arg;
    size_t len = size * n;
    const char *colon;
    char *name, *value;

    t->header_bytes += len;
    if (t->header_bytes > MAX_RESPONSE_HEADERS) {
        t->too_large = TRUE;
        return 0;
    }
    /* A new status line (after 100 Continue, or a redirect we do not
     * follow) starts a new set of headers. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        g_hash_table_remove_all(t->resp_headers);
        return len;
    }
    colon = memchr(data, ':', len);
    if (colon == NULL || colon == data)
        return len;
    name = g_ascii_strdown(data, colon - data);
    value = g_strstrip(g_strndup(colon + 1, len - (size_t)(colon + 1 - data)));
    g_hash_table_replace(t->resp_headers, name, value);
    return len;
}

static CmTime
parse_retry_after(const char *v)
{
    guint64 secs;
    time_t when;

    if (v == NULL || *v == '\0')
        return 0;
    if (g_ascii_string_to_unsigned(v, 10, 0, 7 * 24 * 3600, &secs, NULL))
        return (CmTime)secs * CM_USEC_PER_SEC;
    /* The HTTP-date form. */
    when = curl_getdate(v, NULL);
    if (when <= 0)
        return 0;
    return MAX((CmTime)when * CM_USEC_PER_SEC - cm_net_wall_now(), 0);
}

static CmNetError
error_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return CM_NET_ERROR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return CM_NET_ERROR_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
        return CM_NET_ERROR_TLS;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
        return CM_NET_ERROR_PROTOCOL;
    default:
        return CM_NET_ERROR_FAILED;
    }
}

static void
transfer_free(Transfer *t)
{
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    if (t->body != NULL)
        g_byte_array_unref(t->body);
    if (t->resp_headers != NULL)
        g_hash_table_unref(t->resp_headers);
    g_free(t->what);
    g_free(t);
}

/* Completes t (removed from the multi handle) with rc, calls back, frees. */
static void
transfer_done(Transfer *t, CURLcode rc, gboolean cancelled)
{
    CmNetHttpResponse resp = {0};
    long status = 0;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    resp.elapsed = g_get_monotonic_time() - t->t0;
    if (cancelled) {
        g_set_error(&resp.error, CM_NET_ERROR, CM_NET_ERROR_CANCELLED,
                    "%s: cancelled (the client was freed)", t->what);
    } else if (t->too_large) {
        g_set_error(&resp.error, CM_NET_ERROR, CM_NET_ERROR_TOO_LARGE,
                    "%s: the response is over %zu bytes of body or %d of headers", t->what,
                    t->c->cfg.max_response_size, MAX_RESPONSE_HEADERS);
    } else if (rc != CURLE_OK) {
        CmNetError code = error_code(rc);
        /* With TLS 1.3 the server checks a client certificate after the
         * client finished its handshake: the refusal arrives as an alert
         * on the first read. */
        if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) && strstr(t->errbuf, " alert "))
            code = CM_NET_ERROR_TLS;
        g_set_error(&resp.error, CM_NET_ERROR, code, "%s: %s", t->what,
                    t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
    } else {
        resp.status = (int)status;
        resp.body = g_byte_array_free_to_bytes(g_steal_pointer(&t->body));
        resp.headers = g_steal_pointer(&t->resp_headers);
        resp.retry_after = parse_retry_after(g_hash_table_lookup(resp.headers, "retry-after"));
    }
    g_hash_table_remove(t->c->transfers, t);
    if (t->done != NULL)
        t->done(&resp, t->user_data);
    cm_net_http_response_clear(&resp);
    transfer_free(t);
}

/* Hands t to libcurl with what is left of its time (it may have waited). */
static gboolean
admit(Transfer *t)
{
    CmNetHttpc *c = t->c;
    gint64 left_ms = (gint64)c->cfg.timeout_ms - (g_get_monotonic_time() - t->t0) / 1000;

    if (left_ms <= 0) {
        g_strlcpy(t->errbuf, "timed out waiting for a connection", sizeof t->errbuf);
        transfer_done(t, CURLE_OPERATION_TIMEDOUT, FALSE);
        return TRUE;
    }
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)left_ms);
    if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK)
        return FALSE;
    t->admitted = TRUE;
    c->admitted++;
    return TRUE;
}

static void
admit_waiting(CmNetHttpc *c)
{
    Transfer *t;

    while (!c->freeing && c->admitted < (guint)c->cfg.max_host_connections &&
           (t = g_queue_pop_head(&c->waiting)) != NULL)
        if (!admit(t)) {
            g_strlcpy(t->errbuf, "libcurl refused the request", sizeof t->errbuf);
            transfer_done(t, CURLE_FAILED_INIT, FALSE);
        }
}

static void
check_done(CmNetHttpc *c)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        Transfer *t = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
        curl_multi_remove_handle(c->multi, easy);
        t->admitted = FALSE;
        c->admitted--;
        transfer_done(t, rc, FALSE);
    }
    admit_waiting(c);
}

/* ------------------------------------------------- libcurl <-> libevent */

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    CmNetHttpc *c = arg;
    int flags = 0, running = 0;

    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    /* No timer clean-up here when nothing runs: a completion callback in
     * check_done may have started the next request, whose "act now" timer
     * libcurl has just set.  libcurl removes its timer itself (-1). */
    curl_multi_socket_action(c->multi, fd, flags, &running);
    check_done(c);
}

static int
on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    CmNetHttpc *c = userp;
    SockWatch *w = socketp;
    short kind;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            event_free(w->ev);
            g_free(w);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
           ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (w == NULL) {
        w = g_new0(SockWatch, 1);
        curl_multi_assign(c->multi, s, w);
    } else {
        event_free(w->ev);
    }
    w->ev = event_new(c->base, s, kind, on_socket_event, c);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0)
        return -1;
    return 0;
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    CmNetHttpc *c = arg;
    int running = 0;

    (void)fd;
    (void)what;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    CmNetHttpc *c = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    /* Zero means "act now": from the loop, never from inside libcurl. */
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return evtimer_add(c->timer, &tv);
}

/* The identity goes straight into the connection's SSL_CTX (see top). */
static CURLcode
on_ssl_ctx(CURL *easy, void *sslctx, void *arg)
{
    CmNetHttpc *c = arg;
    SSL_CTX *ctx = sslctx;

    (void)easy;
    if (c->roots != NULL && !c->cfg.insecure)
        SSL_CTX_set1_cert_store(ctx, c->roots);
    if (c->client_cert != NULL &&
        (SSL_CTX_use_certificate(ctx, cm_cert_x509(c->client_cert)) != 1 ||
         SSL_CTX_use_PrivateKey(ctx, cm_key_evp(c->client_key)) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1))
        return CURLE_SSL_CERTPROBLEM;
    return CURLE_OK;
}

/* -------------------------------------------------------------- client */

/* Frees the identity, roots and names c holds, and c. */
static void
httpc_release(CmNetHttpc *c)
{
    if (c->client_cert != NULL)
        cm_cert_unref(c->client_cert);
    if (c->client_key != NULL)
        cm_key_unref(c->client_key);
    X509_STORE_free(c->roots);
    curl_slist_free_all(c->connect_to);
    g_free(c);
}

CmNetHttpc *
cm_net_httpc_new(struct event_base *base, const CmNetHttpcConfig *config, GError **error)
{
    CmNetHttpc *c;

    cm_net_init();
    if ((config->client_cert == NULL) != (config->client_key == NULL) ||
        (config->client_key != NULL && !cm_key_has_private(config->client_key))) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "a client certificate needs its private key (give both or neither)");
        return NULL;
    }
    c = g_new0(CmNetHttpc, 1);
    c->cfg = *config;
    if (c->cfg.connect_timeout_ms == 0)
        c->cfg.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (c->cfg.timeout_ms == 0)
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (c->cfg.max_response_size == 0)
        c->cfg.max_response_size = DEFAULT_MAX_RESPONSE;
    if (config->client_cert != NULL) {
        c->client_cert = cm_cert_ref((CmCert *)config->client_cert);
        c->client_key = cm_key_ref((CmKey *)config->client_key);
    }
    if (config->n_ca_certs > 0) {
        if ((c->roots = X509_STORE_new()) == NULL)
            g_error("out of memory");
        for (size_t i = 0; i < config->n_ca_certs; i++)
            if (X509_STORE_add_cert(c->roots, cm_cert_x509(config->ca_certs[i])) != 1)
                ERR_clear_error(); /* the same root twice: once is enough */
    }
    for (size_t i = 0; config->connect_to != NULL && config->connect_to[i] != NULL; i++)
        c->connect_to = curl_slist_append(c->connect_to, config->connect_to[i]);
    c->cfg.client_cert = NULL;
    c->cfg.client_key = NULL;
    c->cfg.ca_certs = NULL;
    c->cfg.connect_to = NULL;

    c->own_base = base == NULL;
    c->base = base ? base : cm_net_event_base_try_new();
    c->multi = c->base != NULL ? curl_multi_init() : NULL;
    if (c->base == NULL || c->multi == NULL) {
        /* Out of descriptors (epoll, libcurl's wake-up pair): a clear
         * error, the caller goes on without this client. */
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED,
                    "cannot make an HTTP client: %s (out of open files?)", g_strerror(errno));
        if (c->own_base && c->base != NULL)
            event_base_free(c->base);
        httpc_release(c);
        return NULL;
    }
    c->timer = evtimer_new(c->base, on_timeout, c);
    if (c->timer == NULL)
        g_error("out of memory");
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    if (c->cfg.max_host_connections > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c->cfg.max_host_connections);
    if (c->cfg.max_connections > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, c->cfg.max_connections);
    c->transfers = g_hash_table_new(g_direct_hash, g_direct_equal);
    return c;
}

void
cm_net_httpc_free(CmNetHttpc *c)
{
    GHashTableIter it;
    gpointer key;

    if (c == NULL)
        return;
    c->freeing = TRUE;
    /* Every request still in flight gets its callback, so that whoever
     * waits on it (a call the server holds) can let go. */
    for (Transfer *t; (t = g_queue_pop_head(&c->waiting)) != NULL;)
        transfer_done(t, CURLE_ABORTED_BY_CALLBACK, TRUE);
    for (;;) {
        Transfer *t;
        g_hash_table_iter_init(&it, c->transfers);
        if (!g_hash_table_iter_next(&it, &key, NULL))
            break;
        t = key;
        curl_multi_remove_handle(c->multi, t->easy);
        t->admitted = FALSE;
        c->admitted--;
        transfer_done(t, CURLE_ABORTED_BY_CALLBACK, TRUE);
    }
    curl_multi_cleanup(c->multi);
    event_free(c->timer);
    if (c->own_base)
        event_base_free(c->base);
    g_hash_table_unref(c->transfers);
    httpc_release(c);
}

guint
cm_net_httpc_in_flight(const CmNetHttpc *c)
{
    return g_hash_table_size(c->transfers);
}

static gboolean
header_ok(const char *h)
{
    return h != NULL && strpbrk(h, "\r\n") == NULL;
}

static gboolean
add_header(Transfer *t, const char *line, GError **error)
{
    if (!header_ok(line) || strchr(line, ':') == NULL) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "%s: header \"%.64s\" must be one \"Name: value\" line", t->what,
                    line ? line : "");
        return FALSE;
    }
    t->headers = curl_slist_append(t->headers, line);
    return TRUE;
}

static gboolean
transfer_setup(Transfer *t, const CmNetHttpRequest *req, GError **error)
{
    CmNetHttpc *c = t->c;
    CURL *e = t->easy;
    const void *body = req->body;
    size_t body_len = req->body_len;
    const CmRequest *msg = req->msg;
    gboolean has_body;
    const char *method;
    long ssl_version;

    if (body == NULL && msg != NULL) {
        body = msg->body;
        body_len = msg->body_len;
    }
    has_body = body != NULL || msg != NULL;
    method = req->method ? req->method : (has_body ? "POST" : "GET");

    if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "%s: not a usable URL", t->what);
        return FALSE;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Only what the protocol uses; never a proxy from the environment:
     * the lab's traffic stays on loopback and goes where it is sent. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (req->close_after)
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    ssl_version =
        c->cfg.tls_min == CM_NET_TLS_1_3 ? CURL_SSLVERSION_TLSv1_3 : CURL_SSLVERSION_TLSv1_2;
    curl_easy_setopt(e, CURLOPT_SSLVERSION, ssl_version);
    if (c->cfg.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (c->roots != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    if (c->client_cert != NULL || (c->roots != NULL && !c->cfg.insecure)) {
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, c);
    }
    if (c->connect_to != NULL)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
    if (c->cfg.max_idle_s > 0)
        curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)c->cfg.max_idle_s);
    if (c->cfg.negotiate) {
        /* SPNEGO with the process's Kerberos credential cache (KRB5CCNAME):
         * the empty user name asks libcurl for the cached identity, and
         * Negotiate alone makes it send the token with the first request.
         * Without a ticket for the server libcurl goes on without
         * authentication, which is what a client from an untrusted
         * realm does. */
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE);
        curl_easy_setopt(e, CURLOPT_USERPWD, ":");
    }

    /* Headers: no "Expect: 100-continue" round trip for larger bodies. */
    t->headers = curl_slist_append(t->headers, "Expect:");
    if (has_body) {
        g_autofree char *ct = g_strdup_printf(
            "Content-Type: %s", req->content_type ? req->content_type : "application/json");
        if (!add_header(t, ct, error))
            return FALSE;
    }
    if (msg != NULL && msg->smsid[0] != '\0') {
        g_autofree char *h = g_strdup_printf("%s: %s", CM_HDR_CLIENT_ID, msg->smsid);
        if (!add_header(t, h, error))
            return FALSE;
    }
    if (msg != NULL && msg->signed_) {
        g_autofree char *sig = cm_msg_format_signature(msg->sig_hash, msg->sig, msg->sig_len);
        g_autofree char *h = g_strdup_printf("%s: %s", CM_HDR_SIGNATURE, sig);
        if (!add_header(t, h, error))
            return FALSE;
    }
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
        if (!add_header(t, req->headers[i], error))
            return FALSE;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    if (strcmp(method, "GET") == 0 && !has_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0) {
            if (!header_ok(method) || strchr(method, ' ') != NULL) {
                g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "%s: bad method", t->what);
                return FALSE;
            }
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        }
        if (has_body || strcmp(method, "POST") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            /* libcurl keeps its own copy: the caller's buffer may go. */
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
        }
    }
    return TRUE;
}

gboolean
cm_net_httpc_send(CmNetHttpc *c, const CmNetHttpRequest *req, CmNetHttpcDone done, void *user_data,
                  GError **error)
{
    Transfer *t;

    if (c->freeing || req->url == NULL) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "a request needs a URL and a client that is not being freed");
        return FALSE;
    }
    t = g_new0(Transfer, 1);
    t->c = c;
    t->done = done;
    t->user_data = user_data;
    t->t0 = g_get_monotonic_time();
    t->body = g_byte_array_new();
    t->resp_headers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    t->what = g_strdup_printf(
        "%s %s", req->method ? req->method : (req->body || req->msg ? "POST" : "GET"), req->url);
    t->easy = curl_easy_init();
    if (t->easy == NULL)
        g_error("out of memory");
    if (!transfer_setup(t, req, error)) {
        transfer_free(t);
        return FALSE;
    }
    g_hash_table_add(c->transfers, t);
    if (c->cfg.max_host_connections > 0 && c->admitted >= (guint)c->cfg.max_host_connections) {
        g_queue_push_tail(&c->waiting, t);
        return TRUE;
    }
    if (!admit(t)) {
        g_hash_table_remove(c->transfers, t);
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED, "%s: libcurl refused the request",
                    t->what);
        transfer_free(t);
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------ blocking */

typedef struct {
    gboolean done;
    CmNetHttpResponse *out;
} Fetch;

static void
fetch_done(CmNetHttpResponse *resp, void *data)
{
    Fetch *f = data;

    *f->out = *resp;
    memset(resp, 0, sizeof *resp);
    f->done = TRUE;
}

gboolean
cm_net_httpc_fetch(CmNetHttpc *c, const CmNetHttpRequest *req, CmNetHttpResponse *out,
                   GError **error)
{
    Fetch f = {FALSE, out};

    memset(out, 0, sizeof *out);
    if (!cm_net_httpc_send(c, req, fetch_done, &f, error))
        return FALSE;
    while (!f.done)
        event_base_loop(c->base, EVLOOP_ONCE);
    if (out->error != NULL) {
        g_propagate_error(error, g_error_copy(out->error));
        return FALSE;
    }
    return TRUE;
}

gboolean
cm_net_http_fetch(const CmNetHttpcConfig *config, const CmNetHttpRequest *req,
                  CmNetHttpResponse *out, GError **error)
{
    g_autoptr(CmNetHttpc) c = cm_net_httpc_new(NULL, config, error);

    if (c == NULL)
        return FALSE;
    return cm_net_httpc_fetch(c, req, out, error);
}

/* ----------------------------------------------------------- responses */

void
cm_net_http_response_clear(CmNetHttpResponse *resp)
{
    g_clear_pointer(&resp->body, g_bytes_unref);
    g_clear_pointer(&resp->headers, g_hash_table_unref);
    g_clear_error(&resp->error);
    memset(resp, 0, sizeof *resp);
}

const char *
cm_net_http_response_header(const CmNetHttpResponse *resp, const char *name)
{
    g_autofree char *lower = NULL;

    if (resp->headers == NULL || name == NULL)
        return NULL;
    lower = g_ascii_strdown(name, -1);
    return g_hash_table_lookup(resp->headers, lower);
}

CmReason
cm_net_reason_from_name(const char *name)
{
    for (int r = 0; name != NULL && r < CM_REASON__COUNT; r++)
        if (strcmp(name, cm_reason_name((CmReason)r)) == 0)
            return (CmReason)r;
    return CM_REASON_INTERNAL;
}

static CmReason
reason_from_status(int status)
{
    switch (status) {
    case 400:
        return CM_REASON_BAD_REQUEST;
    case 404:
        return CM_REASON_NOT_FOUND;
    case 409:
        return CM_REASON_CONFLICT;
    case 413:
        return CM_REASON_TOO_LARGE;
    case 503:
        return CM_REASON_BUSY;
    default:
        return status >= 400 && status < 500 ? CM_REASON_FORBIDDEN : CM_REASON_INTERNAL;
    }
}

gboolean
cm_net_http_response_to_cm(const CmNetHttpResponse *hresp, CmResponse *out, GError **error)
{
    g_autoptr(json_t) obj = NULL;
    gsize len = 0;
    const void *data = hresp->body ? g_bytes_get_data(hresp->body, &len) : NULL;

    cm_response_clear(out);
    if (hresp->error != NULL || hresp->status == 0) {
        if (hresp->error != NULL)
            g_propagate_error(error, g_error_copy(hresp->error));
        else
            g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_PROTOCOL, "no response");
        return FALSE;
    }
    out->status = hresp->status;
    out->retry_after = hresp->retry_after;
    if (hresp->status >= 300 && hresp->status < 400) {
        /* Redirects are never followed: an MP that sends one is broken. */
        out->reason = CM_REASON_INTERNAL;
        out->message =
            g_strdup_printf("unexpected redirect (HTTP %d) from the server", hresp->status);
        return TRUE;
    }
    if (hresp->status < 300) {
        out->reason = CM_REASON_OK;
        if (len > 0)
            out->body = g_bytes_ref(hresp->body);
        return TRUE;
    }
    /* A refusal: {"reason", "message"} from cmlab, anything else (an error
     * page of the HTTP layer) by its status. */
    obj = len ? cm_json_parse(data, len, CM_JSON_DEFAULT_MAX, NULL) : NULL;
    if (obj != NULL && json_is_string(json_object_get(obj, "reason"))) {
        const json_t *msg = json_object_get(obj, "message");
        out->reason = cm_net_reason_from_name(json_string_value(json_object_get(obj, "reason")));
        out->message = g_strdup(json_is_string(msg) ? json_string_value(msg) : "");
    } else {
        out->reason = reason_from_status(hresp->status);
        out->message = g_strdup_printf("HTTP %d from the server", hresp->status);
    }
    return TRUE;
}
