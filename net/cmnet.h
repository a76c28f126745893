/* cmnet.h - libcmnet, the I/O drivers the daemons share.
 *
 * An HTTP/1.1 server (libevent evhttp, OpenSSL bufferevents) that turns
 * requests into CmRequest and writes CmResponse, an HTTP client (libcurl's
 * multi interface on a libevent loop) with client certificates and trusted
 * roots from memory, a Prometheus text-format metrics registry, GLib key
 * file configuration with typed getters, and the wall clock.
 *
 * The role libraries never include this header: they stay without I/O and
 * are driven by the daemons (through this library) or by the simulator.
 *
 * Ownership follows libcmproto: _new returns an object the caller frees;
 * "(borrowed)" marks a pointer that lives as long as its owner.  Every
 * failure sets a GError in the CM_NET_ERROR domain whose message says what
 * was wrong and what to do about it.  Private keys are never written to a
 * log, an error message or a buffer: they go to OpenSSL as EVP_PKEY.
 */
#ifndef CMNET_H
#define CMNET_H

#include "cmproto.h"

G_BEGIN_DECLS

struct event_base;

/* ------------------------------------------------------------- errors */

#define CM_NET_ERROR (cm_net_error_quark())
GQuark cm_net_error_quark(void);

typedef enum {
    CM_NET_ERROR_FAILED,    /* anything else */
    CM_NET_ERROR_CONFIG,    /* a setting or configuration file is wrong */
    CM_NET_ERROR_BIND,      /* cannot listen on the address */
    CM_NET_ERROR_TLS,       /* TLS setup failed, or a handshake was refused */
    CM_NET_ERROR_CONNECT,   /* no connection to the server */
    CM_NET_ERROR_TIMEOUT,   /* a request took longer than its timeout */
    CM_NET_ERROR_TOO_LARGE, /* a response over its bound */
    CM_NET_ERROR_PROTOCOL,  /* a malformed HTTP exchange */
    CM_NET_ERROR_CANCELLED, /* the client was freed with the request in flight */
} CmNetError;

/* Process-wide set-up, done once and implied by every constructor here:
 * libevent's pthread locking, libcurl's global state, and SIGPIPE ignored
 * (a peer that closes its socket must not kill a daemon). */
void cm_net_init(void);

/* A new event loop tuned for the drivers (epoll changes batched per turn);
 * for daemons that run clients on loops of their own. */
struct event_base *cm_net_event_base_new(void);
/* The same, or NULL when the process is out of descriptors. */
struct event_base *cm_net_event_base_try_new(void);

/* Raises the open-file limit towards want (an MP holds 25,000 connections);
 * FALSE when the hard limit is lower, with *got (may be NULL) what it is. */
gboolean cm_net_raise_fd_limit(guint64 want, guint64 *got, GError **error);

/* ------------------------------------------------------------ clock */

/* The wall clock (g_get_real_time) for the daemons; the simulator has its
 * own virtual clock. */
CmTime cm_net_wall_now(void);
const CmClock *cm_net_wall_clock(void); /* (borrowed, static) */

/* ------------------------------------------------------------- TLS */

typedef enum {
    CM_NET_TLS_1_2, /* default minimum */
    CM_NET_TLS_1_3,
} CmNetTlsVersion;

const char *cm_net_tls_version_name(CmNetTlsVersion v); /* "1.2", "1.3" */
gboolean cm_net_tls_version_parse(const char *s, CmNetTlsVersion *out, GError **error);

/* Whether a TLS listener asks clients for a certificate. */
typedef enum {
    CM_NET_CLIENT_CERT_NONE,
    CM_NET_CLIENT_CERT_OPTIONAL, /* asked; a client may send none (then anonymous), but
                                  * one that is sent must verify */
    CM_NET_CLIENT_CERT_REQUIRED, /* the handshake fails without one */
} CmNetClientCertMode;

const char *
cm_net_client_cert_mode_name(CmNetClientCertMode m); /* "none", "optional", "required" */
gboolean cm_net_client_cert_mode_parse(const char *s, CmNetClientCertMode *out, GError **error);

/* ---------------------------------------------------------- metrics */

/* A Prometheus registry (text exposition format 0.0.4).  Metrics are
 * created once by name and labels and then updated lock-free from any
 * thread; the handles live as long as the registry.  labels is NULL or a
 * NULL-terminated list of name, value pairs: {"endpoint", "location", NULL}.
 * Asking again for the same name and labels returns the same metric; a name
 * reused with another type is a programming error (g_critical, NULL). */
typedef struct CmNetMetrics CmNetMetrics;
typedef struct CmNetMetric CmNetCounter;
typedef struct CmNetMetric CmNetGauge;
typedef struct CmNetMetric CmNetHistogram;

CmNetMetrics *cm_net_metrics_new(void);
void cm_net_metrics_free(CmNetMetrics *m);

CmNetCounter *cm_net_metrics_counter(CmNetMetrics *m, const char *name, const char *help,
                                     const char *const *labels);
void cm_net_counter_add(CmNetCounter *c, guint64 n); /* NULL is a no-op */
#define cm_net_counter_inc(c) cm_net_counter_add((c), 1)
guint64 cm_net_counter_get(const CmNetCounter *c);

CmNetGauge *cm_net_metrics_gauge(CmNetMetrics *m, const char *name, const char *help,
                                 const char *const *labels);
void cm_net_gauge_set(CmNetGauge *g, gint64 v);
void cm_net_gauge_add(CmNetGauge *g, gint64 delta);
gint64 cm_net_gauge_get(const CmNetGauge *g);

/* bounds: ascending upper bounds (+Inf is implied); NULL gives latency
 * buckets in seconds from 100 us to 10 s. */
CmNetHistogram *cm_net_metrics_histogram(CmNetMetrics *m, const char *name, const char *help,
                                         const char *const *labels, const double *bounds,
                                         size_t n_bounds);
void cm_net_histogram_observe(CmNetHistogram *h, double v);
guint64 cm_net_histogram_count(const CmNetHistogram *h);

/* The whole registry in the text format, families sorted by name (new). */
char *cm_net_metrics_render(CmNetMetrics *m);
/* A CmNetRouteFunc serving cm_net_metrics_render; user_data is the registry. */
int cm_net_metrics_route(const char *path, GString *body, const char **content_type,
                         void *user_data);

/* ------------------------------------------------------- HTTP server */

/* One request in the server's hands, from the moment the handler gets it
 * until cm_net_call_reply (or the handler's TRUE return) answers it. */
typedef struct CmNetCall CmNetCall;

/* The handler of the protocol endpoints (docs/protocol.md).  req is filled
 * from HTTP: the endpoint from the path, the transport of the listener, the
 * peer from the verified TLS client certificate, CCM-ClientID and
 * CCM-Signature (already parsed; a malformed one never reaches the handler:
 * 400), the body within cm_ep_body_max (413 otherwise).  Unknown paths are
 * answered 404 before any handler runs.
 *
 * Return TRUE with resp filled to answer now.  Return FALSE to answer later
 * with cm_net_call_reply (from any thread); until then call and req stay
 * valid.  Runs on a worker thread: several run at once. */
typedef gboolean (*CmNetHandler)(CmNetCall *call, const CmRequest *req, CmResponse *resp,
                                 void *user_data);

/* A plain route ("/metrics", "/health"): append the body, set the content
 * type (a static string; "text/plain; charset=utf-8" when left NULL) and
 * return the HTTP status.  Runs on a worker thread. */
typedef int (*CmNetRouteFunc)(const char *path, GString *body, const char **content_type,
                              void *user_data);

typedef struct {
    /* Where to listen.  Only loopback addresses (127.0.0.0/8, ::1) unless
     * allow_non_loopback: the lab runs attack tools against itself. */
    const char *address; /* NULL: "127.0.0.1" */
    gboolean allow_non_loopback;
    gboolean http;     /* serve plain HTTP on http_port */
    guint16 http_port; /* 0: an ephemeral port (see cm_net_httpd_http_port) */
    gboolean https;    /* serve TLS on https_port */
    guint16 https_port;

    /* TLS listener. */
    const CmCert *server_cert; /* required with https */
    const CmKey *server_key;   /* its private key */
    GPtrArray *server_chain;   /* optional CmCert intermediates sent after the leaf */
    CmNetTlsVersion tls_min;   /* default 1.2 */
    CmTransport tls_transport; /* what req->transport says for TLS: HTTPS (default, 0 maps
                                * to it) or EHTTP (a site-issued server certificate) */
    CmNetClientCertMode client_cert;
    /* The roots, CRLs and CTL client certificates are checked against
     * (borrowed; must outlive the server and not change while it runs).
     * The handshake checks the chain (and CRLs when the trust store checks
     * them) with cm_trust_x509_store; requests then check the certificate
     * again with cm_trust_verify (once per connection, redone each minute),
     * which applies the CTL and the clock, and are refused with 403 when it
     * fails. */
    CmTrust *client_trust;
    const CmClock *clock; /* for that check; NULL: the wall clock */
    /* SPNEGO/Kerberos, RFC 4559 (net/gss.c): with a keytab holding the
     * server's HTTP/<host> keys, a request with "Authorization: Negotiate
     * <token>" is accepted in one round trip and req->peer becomes
     * CM_AUTH_KERBEROS (principal "NAME$@REALM", domain the realm in lower
     * case) unless a TLS client certificate was verified; a malformed
     * header is refused with 400, a token Kerberos refuses (forged,
     * replayed, for another service) with 403; no header: anonymous.
     * NULL: Negotiate headers are ignored. */
    const char *keytab;

    /* Limits (0: the default). */
    size_t max_header_size; /* request line and headers; default 8 KiB */
    size_t max_body_size;   /* any body; default the largest endpoint bound (256 KiB) */
    guint read_timeout_ms;  /* TLS handshake, and between bytes of a request; default 10 s */
    guint idle_timeout_ms;  /* keep-alive wait for the next request; default 60 s */
    guint workers;          /* worker threads; default one per core */

    CmNetHandler handler; /* required */
    void *handler_data;
    CmNetMetrics *metrics; /* optional: request counts and latencies (borrowed) */
} CmNetHttpdConfig;

typedef struct CmNetHttpd CmNetHttpd;

/* Creates the listening sockets (so ports are known at once) and the TLS
 * context; nothing is served until cm_net_httpd_start. */
CmNetHttpd *cm_net_httpd_new(const CmNetHttpdConfig *config, GError **error);
/* Adds a plain route (exact path, query ignored); before start. */
gboolean cm_net_httpd_add_route(CmNetHttpd *httpd, const char *path, CmNetRouteFunc fn,
                                void *user_data, GError **error);
/* Adds an API: every request whose path starts with prefix (which ends
 * in '/', e.g. "/admin/") goes to handler as a call, like a protocol
 * endpoint but with req->ep CM_EP_NONE, the body bounded by
 * max_body_size, and the client certificate checked as for endpoints;
 * cm_net_call_path and cm_net_call_header tell the handler the rest.
 * Before start.  The site daemon serves its MPs and administrators so. */
gboolean cm_net_httpd_add_api(CmNetHttpd *httpd, const char *prefix, CmNetHandler handler,
                              void *user_data, GError **error);
/* Starts the worker threads. */
gboolean cm_net_httpd_start(CmNetHttpd *httpd, GError **error);
/* Stops accepting and breaks the workers' loops, then joins them; safe to
 * call from any thread but a worker, and more than once.  Calls still
 * pending stay valid until cm_net_httpd_free: answer them before it (the
 * answers are dropped; cancel what they wait for, e.g. free the clients).
 * Free drops the calls left, which must not be touched afterwards. */
void cm_net_httpd_stop(CmNetHttpd *httpd);
/* Stops if needed and frees everything, connections included. */
void cm_net_httpd_free(CmNetHttpd *httpd);

guint16 cm_net_httpd_http_port(const CmNetHttpd *httpd);  /* 0 when not serving HTTP */
guint16 cm_net_httpd_https_port(const CmNetHttpd *httpd); /* 0 when not serving HTTPS */
guint cm_net_httpd_n_workers(const CmNetHttpd *httpd);
/* A worker's event loop, so that a daemon can create per-worker clients
 * (cm_net_httpc_new) on it before start; use them only from handlers. */
struct event_base *cm_net_httpd_worker_base(CmNetHttpd *httpd, guint worker);

/* Answers a call the handler kept (returned FALSE for); takes resp's
 * contents and clears it.  From any thread; the write happens on the
 * call's worker.  Frees the call. */
void cm_net_call_reply(CmNetCall *call, CmResponse *resp);
const CmRequest *cm_net_call_request(const CmNetCall *call);
const char *cm_net_call_method(const CmNetCall *call);       /* "GET", "POST" */
const char *cm_net_call_peer_address(const CmNetCall *call); /* "127.0.0.1", "" when gone */
guint cm_net_call_worker(const CmNetCall *call);
/* An API call's path without the query (NULL for protocol endpoints). */
const char *cm_net_call_path(const CmNetCall *call);
/* The request's query (after '?', undecoded), NULL when none or when the
 * connection is gone.  From the worker thread only.  The CMG gateway
 * filters "SMS_MP/.sms_aut?MPLIST" by it. */
const char *cm_net_call_query(const CmNetCall *call);
/* A request header (the first of repeats), NULL when absent or when the
 * connection is gone.  From the worker thread only. */
const char *cm_net_call_header(const CmNetCall *call, const char *name);
/* The verified TLS client certificate, NULL when none (borrowed; lives as
 * long as the call). */
const CmCert *cm_net_call_peer_cert(const CmNetCall *call);
struct event_base *cm_net_call_base(const CmNetCall *call);
/* Data kept with the call's connection: destroy runs (on the worker) when
 * the connection closes or the server is freed, or at once when the
 * connection is already gone.  Replaces (and destroys) earlier data.  From
 * the worker thread only.  For example the MP closes a client's
 * notification channel when its connection goes. */
void cm_net_call_set_conn_data(CmNetCall *call, gpointer data, GDestroyNotify destroy);
gpointer cm_net_call_get_conn_data(CmNetCall *call);

/* Blocks the calling thread until SIGTERM or SIGINT arrives and returns
 * the signal, for a daemon's main thread (the workers block both). */
int cm_net_wait_for_signal(void);

/* ------------------------------------------------------- HTTP client */

typedef struct {
    /* TLS client certificate and its private key (optional; both or
     * neither).  The key goes to OpenSSL as is, so keys held by a key
     * storage provider work, and no PEM copy of it ever exists. */
    const CmCert *client_cert;
    const CmKey *client_key;
    /* Roots a server certificate must chain to (PEM in memory, libcurl's
     * CAINFO_BLOB); none: the system's store.  The host name is checked
     * against the certificate unless insecure. */
    const CmCert *const *ca_certs;
    size_t n_ca_certs;
    gboolean insecure; /* no server certificate check at all (attack tools) */
    CmNetTlsVersion tls_min;
    /* "HOST:PORT:CONNECT-HOST:CONNECT-PORT" entries (libcurl CONNECT_TO):
     * the lab maps MP host names to 127.0.0.1 without touching DNS. */
    const char *const *connect_to;
    guint connect_timeout_ms;  /* default 5 s */
    guint timeout_ms;          /* whole request; default 30 s */
    size_t max_response_size;  /* body bound; default 8 MiB */
    long max_host_connections; /* 0: libcurl's default (no limit) */
    /* Connections kept open for reuse (CURLMOPT_MAXCONNECTS); 0: libcurl's
     * default.  An agent keeps 1: its plain HTTP connection goes once it
     * moved to HTTPS, so 25,000 agents hold 25,000 connections, not 50,000. */
    long max_connections;
    /* A kept connection idle longer than this is not reused but closed
     * (CURLOPT_MAXAGE_CONN); 0: libcurl's default, 118 s.  An agent's
     * notification channel idles a whole keep-alive interval. */
    guint max_idle_s;
    /* Windows-integrated authentication: SPNEGO/Kerberos (libcurl
     * CURLAUTH_NEGOTIATE) with the credential cache KRB5CCNAME names, for
     * the server's HTTP/<host> principal. */
    gboolean negotiate;
} CmNetHttpcConfig;

typedef struct {
    const char *method; /* NULL: POST when there is a body (or msg), else GET */
    const char *url;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated */
    const void *body;
    size_t body_len;
    const char *content_type; /* NULL: application/json when there is a body */
    /* Optional protocol message: its CCM-ClientID, CCM-Signature
     * (cm_msg_format_signature) and, unless body is set, its body. */
    const CmRequest *msg;
    /* Close the connection once answered instead of keeping it for the
     * next request (CURLOPT_FORBID_REUSE): an agent's plain HTTP location
     * request, refused in HTTPS-only modes, would otherwise hold a second
     * connection to its MP. */
    gboolean close_after;
} CmNetHttpRequest;

typedef struct {
    int status;          /* HTTP status; 0 when no response came (error set) */
    GBytes *body;        /* never NULL after a response */
    GHashTable *headers; /* lower-case name -> value (the last of repeats) */
    CmTime retry_after;  /* Retry-After in microseconds, 0 when absent */
    CmTime elapsed;      /* from send to completion */
    GError *error;       /* transport failure: connect, TLS, timeout, size */
} CmNetHttpResponse;

void cm_net_http_response_clear(CmNetHttpResponse *resp);
const char *cm_net_http_response_header(const CmNetHttpResponse *resp, const char *name);
/* The protocol view of a response: status, JSON body, and for a refusal
 * the reason and message of its JSON (or, for a body that is not a
 * refusal, a reason from the status).  FALSE (error copied) when no
 * response came. */
gboolean cm_net_http_response_to_cm(const CmNetHttpResponse *hresp, CmResponse *out,
                                    GError **error);
/* The reason whose cm_reason_name is name; CM_REASON_INTERNAL when none. */
CmReason cm_net_reason_from_name(const char *name);

typedef struct CmNetHttpc CmNetHttpc;

/* Called once per request on the client's loop; resp is borrowed for the
 * call (steal the body with g_steal_pointer(&resp->body) if needed). */
typedef void (*CmNetHttpcDone)(CmNetHttpResponse *resp, void *user_data);

/* A client with one identity (client certificate) and its own connection
 * cache, on base (NULL: its own loop, for cm_net_httpc_fetch).  Use it from
 * the thread that runs base.  One identity per client is deliberate:
 * connections made with one agent's certificate are never reused for
 * another's. */
CmNetHttpc *cm_net_httpc_new(struct event_base *base, const CmNetHttpcConfig *config,
                             GError **error);
/* Requests in flight complete with CM_NET_ERROR_CANCELLED first.  Not from
 * inside one of this client's callbacks. */
void cm_net_httpc_free(CmNetHttpc *c);
/* Starts a request; done runs later on the loop, also for failures.  FALSE
 * only for a request that cannot be made (bad URL or header). */
gboolean cm_net_httpc_send(CmNetHttpc *c, const CmNetHttpRequest *req, CmNetHttpcDone done,
                           void *user_data, GError **error);
guint cm_net_httpc_in_flight(const CmNetHttpc *c);
/* Blocking: runs the client's loop until this request completes (the loop
 * must not be running elsewhere).  Keeps connections for the next call.
 * TRUE when a response came, whatever its status. */
gboolean cm_net_httpc_fetch(CmNetHttpc *c, const CmNetHttpRequest *req, CmNetHttpResponse *out,
                            GError **error);
/* One request with a throw-away client, for tools and tests. */
gboolean cm_net_http_fetch(const CmNetHttpcConfig *config, const CmNetHttpRequest *req,
                           CmNetHttpResponse *out, GError **error);

/* ---------------------------------------------------- configuration */

/* A GLib key file with typed getters whose errors name the file, group
 * and key: "mp.conf: [http] read_timeout: expected a duration such as
 * 10s or 500ms, got \"ten\"".  An absent key gives the default; getters
 * whose default is a pointer take NULL as "required". */
typedef struct CmNetConfig CmNetConfig;

CmNetConfig *cm_net_config_load(const char *path, GError **error);
/* name is what errors call it ("test.conf"); relative paths resolve
 * against the current directory. */
CmNetConfig *cm_net_config_new_from_data(const char *data, gssize len, const char *name,
                                         GError **error);
void cm_net_config_free(CmNetConfig *cfg);
const char *cm_net_config_name(const CmNetConfig *cfg);
GKeyFile *cm_net_config_keyfile(CmNetConfig *cfg); /* (borrowed) */
gboolean cm_net_config_has(const CmNetConfig *cfg, const char *group, const char *key);

gboolean cm_net_config_string(const CmNetConfig *cfg, const char *group, const char *key,
                              const char *def, char **out, GError **error);
gboolean cm_net_config_int(const CmNetConfig *cfg, const char *group, const char *key, gint64 def,
                           gint64 min, gint64 max, gint64 *out, GError **error);
gboolean cm_net_config_bool(const CmNetConfig *cfg, const char *group, const char *key,
                            gboolean def, gboolean *out, GError **error);
/* "250ms", "10s", "5m", "2h", "1d"; a bare number is seconds. */
gboolean cm_net_config_duration(const CmNetConfig *cfg, const char *group, const char *key,
                                CmTime def, CmTime min, CmTime max, CmTime *out, GError **error);
/* "512", "64KiB", "8MiB", "1GiB" (bytes). */
gboolean cm_net_config_size(const CmNetConfig *cfg, const char *group, const char *key, guint64 def,
                            guint64 min, guint64 max, guint64 *out, GError **error);
/* One of choices (NULL-terminated); *out is its index. */
gboolean cm_net_config_choice(const CmNetConfig *cfg, const char *group, const char *key,
                              const char *const *choices, int def, int *out, GError **error);
/* A file name, relative to the configuration file's folder (new). */
gboolean cm_net_config_path(const CmNetConfig *cfg, const char *group, const char *key,
                            const char *def, char **out, GError **error);
/* A ';'-separated list (new strv, empty when absent). */
gboolean cm_net_config_strings(const CmNetConfig *cfg, const char *group, const char *key,
                               char ***out, GError **error);
/* Refuses keys of group not in known (typos), and groups not in known. */
gboolean cm_net_config_check_keys(const CmNetConfig *cfg, const char *group,
                                  const char *const *known, GError **error);
gboolean cm_net_config_check_groups(const CmNetConfig *cfg, const char *const *known,
                                    GError **error);
/* The listener settings of a group into config (certificates, trust and
 * handler are the daemon's): address, http_port, https_port (a listener
 * for each port given, 0 for an ephemeral one), tls_min ("1.2", "1.3"),
 * client_cert ("none", "optional", "required"), max_header_size,
 * max_body_size, read_timeout, idle_timeout, workers.  config->address is
 * borrowed from cfg. */
extern const char *const cm_net_config_httpd_keys[];
gboolean cm_net_config_httpd(const CmNetConfig *cfg, const char *group, CmNetHttpdConfig *config,
                             GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmNetMetrics, cm_net_metrics_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmNetHttpd, cm_net_httpd_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmNetHttpc, cm_net_httpc_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmNetConfig, cm_net_config_free)

G_END_DECLS

#endif /* CMNET_H */
