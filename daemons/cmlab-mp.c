/* cmlab-mp - the management point daemon.
 *
 *   cmlab-mp --dir MPDIR [--verbose]
 *
 * Reads MPDIR/mp.conf (written by cmlab-site add-mp), fetches its site's
 * configuration (published information, MP list, PKI roots and CRL), then
 * serves clients over HTTP and HTTPS: with the site-issued certificate in
 * Enhanced HTTP mode, with an enterprise server certificate (and client
 * certificates checked against the PKI roots) otherwise.  The MP library
 * answers the anonymous endpoints and keep-alives itself; everything else
 * goes to the site over mutual TLS, and the client gets the site's answer
 * (docs/lab.md).
 *
 * Windows-integrated authentication: with [mp] keytab = FILE (the MP's
 * HTTP/<name> key, scripts/lab-kdc principal), requests carrying
 * "Authorization: Negotiate" are authenticated with Kerberos (net/gss.c)
 * and the principal and realm go to the site in CCM-Forwarded-*.
 *
 * CMG: with a [cmg_listen] section (cmlab-site add-connection-point adds
 * it) a second HTTPS listener takes connection points only: mutual TLS with
 * a certificate from the site's issuing root whose thumbprint is one of
 * the connection points the site registered (its configuration's
 * "cmg_connection_points").  There, and only there, the CCM-Forwarded-*
 * headers the connection point sends (the identity the CMG established:
 * PKI certificate, client or bulk token, Entra device) become the
 * request's peer, so the site decides approval from the real client.  Its
 * address goes to MPDIR/mp-cmg.addr.
 *
 * Threads: the server's workers call the MP library under one lock (it is
 * cheap; the site does the signature checks and the commits), and each
 * worker has its own HTTPS client to the site on its own loop, so a
 * forwarded request never leaves the thread that received it. */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmmp.h"

#include <event2/event.h>

#define MPCONFIG_MAX (1024 * 1024)
#define SITE_WAIT_US (30 * CM_USEC_PER_SEC)
#define SITE_BUSY_RETRY (10 * CM_USEC_PER_SEC)
/* Forwards waiting for the site.  A storm arrives faster than the site
 * commits, so the queue must hold a burst of several seconds of the site's
 * work (about 1,000 to 2,000 requests/s here), yet drain well inside
 * SITE_WAIT_US so that what waits is not then timed out.  At 512 a
 * 3,000-client storm got 4,131 answers of 503 and took 2.5 times as long:
 * each one idles its client for MP_BUSY_RETRY.  Each waiting forward holds
 * its request (a few KiB). */
#define MAX_PENDING 8192
#define MP_BUSY_RETRY (5 * CM_USEC_PER_SEC)
/* A notification channel lives as long as its connection (REQ REG-05)
 * and idles between keep-alives (15 min by default): the MP's idle timeout
 * must be longer than the clients' keep-alive interval. */
#define MP_IDLE_TIMEOUT (20 * CM_USEC_PER_MIN)
/* Connections from each worker to the site: the site commits one request
 * at a time, so a few keep it busy; more would only cost TLS handshakes. */
#define SITE_CONNECTIONS 16

typedef struct {
    CmMp *mp;
    GMutex lock;
    char *name;
    char *dir;
    /* Where the site is.  A site restarted on a new ephemeral port is
     * found again through its .addr file: site_gen counts the moves, and a
     * worker whose client was made for an older generation makes a new
     * one (under lock, read by the workers). */
    char *site_host;
    char *addr_file; /* NULL: a fixed site_address */
    char *site_addr;
    char *site_url; /* https://site_host:port */
    char *connect_to[2];
    guint site_gen;
    CmNetHttpcConfig site_client; /* how to reach the site */
    const CmCert *site_roots[1];
    GPtrArray *clients;     /* CmNetHttpc per worker */
    guint *client_gen;      /* the site_gen each worker's client was made for */
    GPtrArray *cmg_clients; /* the same for the connection point listener's workers */
    guint *cmg_client_gen;
    CmNetMetrics *metrics;
    CmNetGauge *channels;
    CmNetCounter *keepalives;
    CmNetCounter *site_failures;
    /* A bounded queue, as the simulator models one: past max_pending
     * forwards waiting for the site, clients get 503 with Retry-After at
     * once rather than a slow timeout (REQ TRUST-12's storm drains by the
     * clients' backoff). */
    gint pending_forwards;
    gint64 max_pending;
    CmNetCounter *busy;
    CmNetGauge *pending_gauge;
    GHashTable *cmg_cps; /* thumbprint hex of the registered connection points (under lock) */
    /* refresh thread */
    /* The loop its fetches run on, made once at start: libevent exits the
     * process when it cannot make a loop's signal pipe, and a storm past
     * the open-file limit would make the next refresh do just that. */
    struct event_base *refresh_base;
    CmDaemonTicker *refresher;
    CmTime refresh;
} MpDaemon;

typedef struct {
    MpDaemon *d;
    CmNetCall *call;
    /* Through a connection point: the request with the CMG's peer (its
     * body and strings borrowed from the call), and the client
     * certificate that peer holds. */
    CmRequest cmg_req;
    CmCert *cmg_cert;
    gboolean via_cmg;
} Forward;

static void
forward_free(Forward *f)
{
    if (f->cmg_cert != NULL)
        cm_cert_unref(f->cmg_cert);
    g_free(f);
}

typedef struct {
    MpDaemon *d;
    char smsid[CM_ID_SMSID_LEN + 1];
} Channel;

static char *opt_dir;
static gboolean opt_verbose;

static GOptionEntry entries[] = {
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir, "The MP's state folder (cmlab-site add-mp)",
     "MPDIR"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Debug logging", NULL},
    {NULL}};

/* ------------------------------------------------------- site calls */

/* The site's HTTPS address from its .addr file, or NULL. */
static char *
read_addr_file(const char *path)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
        return NULL;
    return g_key_file_get_string(kf, "listen", "https", NULL);
}

/* Points the MP at the site at addr ("HOST:PORT"), under d->lock. */
static gboolean
set_site(MpDaemon *d, const char *addr, GError **error)
{
    const char *colon = strrchr(addr, ':');

    if (colon == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "site address \"%s\": expected HOST:PORT", addr);
        return FALSE;
    }
    g_free(d->site_addr);
    g_free(d->site_url);
    g_free(d->connect_to[0]);
    d->site_addr = g_strdup(addr);
    d->site_url = g_strdup_printf("https://%s:%s", d->site_host, colon + 1);
    d->connect_to[0] = g_strdup_printf("%s:%s:%.*s:%s", d->site_host, colon + 1,
                                       (int)(colon - addr), addr, colon + 1);
    d->site_client.connect_to = (const char *const *)d->connect_to;
    d->site_gen++;
    return TRUE;
}

/* Reads where the site listens: an address given in the configuration,
 * or the site's .addr file (waiting for it while the site starts). */
static char *
site_address(MpDaemon *d, CmNetConfig *cfg, GError **error)
{
    char *addr = NULL;
    gint64 deadline = g_get_monotonic_time() + SITE_WAIT_US;

    if (cm_net_config_has(cfg, "mp", "site_address"))
        return cm_net_config_string(cfg, "mp", "site_address", NULL, &addr, error) ? addr : NULL;
    if (!cm_net_config_path(cfg, "mp", "site_addr_file", NULL, &d->addr_file, error))
        return NULL;
    while ((addr = read_addr_file(d->addr_file)) == NULL) {
        if (g_get_monotonic_time() > deadline) {
            g_set_error(error, CM_DAEMON_ERROR, 0,
                        "%s: no site listening after %d s (is cmlab-site serve running?)",
                        d->addr_file, (int)(SITE_WAIT_US / CM_USEC_PER_SEC));
            return NULL;
        }
        g_usleep(100000);
    }
    return addr;
}

static json_t *
fetch_mpconfig(MpDaemon *d, GError **error)
{
    g_autofree char *url = NULL, *connect = NULL;
    const char *connect_to[2] = {NULL, NULL};
    CmNetHttpcConfig hc;
    CmNetHttpRequest req = {.method = "GET"};
    CmNetHttpResponse resp = {0};
    g_autoptr(CmNetHttpc) client = NULL;
    json_t *o = NULL;

    g_mutex_lock(&d->lock);
    url = g_strconcat(d->site_url, CM_SITE_API_MPCONFIG, NULL);
    connect = g_strdup(d->connect_to[0]);
    hc = d->site_client;
    g_mutex_unlock(&d->lock);
    connect_to[0] = connect;
    hc.connect_to = connect_to;
    req.url = url;
    if ((client = cm_net_httpc_new(d->refresh_base, &hc, error)) == NULL ||
        !cm_net_httpc_fetch(client, &req, &resp, error))
        goto out;
    if (resp.status != 200) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "site answered %d to %s: %.*s", resp.status, url,
                    (int)MIN(g_bytes_get_size(resp.body), 200),
                    (const char *)g_bytes_get_data(resp.body, NULL));
        goto out;
    }
    o = cm_json_parse(g_bytes_get_data(resp.body, NULL), g_bytes_get_size(resp.body), MPCONFIG_MAX,
                      error);
out:
    cm_net_http_response_clear(&resp);
    return o;
}

static void
forward_done(CmNetHttpResponse *hresp, void *user_data)
{
    Forward *f = user_data;
    MpDaemon *d = f->d;
    const CmRequest *req = f->via_cmg ? &f->cmg_req : cm_net_call_request(f->call);
    CmResponse resp = {0};
    GError *error = NULL;

    cm_net_gauge_set(d->pending_gauge, g_atomic_int_add(&d->pending_forwards, -1) - 1);
    if (!cm_net_http_response_to_cm(hresp, &resp, &error)) {
        /* The site is down or slow: the client retries later, as it would
         * against a busy MP. */
        cm_net_counter_inc(d->site_failures);
        g_warning("forwarding %s for %s: %s", cm_ep_name(req->ep), req->smsid, error->message);
        cm_response_refuse(&resp, CM_REASON_BUSY, "the site is not reachable; retry later");
        resp.retry_after = SITE_BUSY_RETRY;
        g_error_free(error);
    }
    g_mutex_lock(&d->lock);
    cm_mp_forwarded(d->mp, req, &resp, cm_net_wall_now());
    g_mutex_unlock(&d->lock);
    cm_net_call_reply(f->call, &resp);
    forward_free(f);
}

/* ----------------------------------------------------------- serving */

static void
channel_closed(gpointer data)
{
    Channel *ch = data;

    g_mutex_lock(&ch->d->lock);
    cm_mp_channel_close(ch->d->mp, ch->smsid);
    g_mutex_unlock(&ch->d->lock);
    g_free(ch);
}

/* A client request, directly (on_request) or through a connection point
 * (on_cmg_request: f_cmg holds the request with the CMG's peer). */
static gboolean
serve(MpDaemon *d, CmNetCall *call, const CmRequest *req, Forward *f_cmg, CmResponse *resp)
{
    CmMpVerdict verdict;
    CmNetHttpc *client;
    GPtrArray *clients;
    guint *gens;
    Forward *f;
    GError *error = NULL;
    g_auto(GStrv) headers = NULL;
    g_autofree char *url = NULL;
    CmNetHttpRequest hreq = {0};
    gint64 keepalives;
    guint worker;

    g_mutex_lock(&d->lock);
    keepalives = cm_mp_counters(d->mp)->keepalives;
    verdict = cm_mp_handle(d->mp, req, cm_net_wall_now(), resp);
    keepalives = cm_mp_counters(d->mp)->keepalives - keepalives;
    cm_net_gauge_set(d->channels, cm_mp_channel_count(d->mp));
    g_mutex_unlock(&d->lock);
    if (keepalives > 0)
        cm_net_counter_add(d->keepalives, (guint64)keepalives);
    if (req->ep == CM_EP_NOTIFY && f_cmg == NULL && cm_net_call_get_conn_data(call) == NULL) {
        /* The channel lives as long as this connection (REQ REG-05). */
        Channel *ch = g_new0(Channel, 1);
        ch->d = d;
        g_strlcpy(ch->smsid, req->smsid, sizeof ch->smsid);
        cm_net_call_set_conn_data(call, ch, channel_closed);
    }
    if (verdict == CM_MP_ANSWERED) {
        if (f_cmg != NULL)
            forward_free(f_cmg);
        return TRUE;
    }

    if (g_atomic_int_get(&d->pending_forwards) >= d->max_pending) {
        if (f_cmg != NULL)
            forward_free(f_cmg);
        cm_net_counter_inc(d->busy);
        cm_response_refuse(resp, CM_REASON_BUSY,
                           "%" G_GINT64_FORMAT " requests wait for the site already; retry later",
                           d->max_pending);
        resp->retry_after = MP_BUSY_RETRY;
        return TRUE;
    }
    worker = cm_net_call_worker(call);
    clients = f_cmg != NULL ? d->cmg_clients : d->clients;
    gens = f_cmg != NULL ? d->cmg_client_gen : d->client_gen;
    g_mutex_lock(&d->lock);
    if (gens[worker] != d->site_gen) {
        /* The site moved: a client for its new address (requests still in
         * flight on the old one complete as cancelled: 503, retry). */
        CmNetHttpc *fresh = cm_net_httpc_new(cm_net_call_base(call), &d->site_client, &error);
        if (fresh != NULL) {
            CmNetHttpc *old = clients->pdata[worker];
            clients->pdata[worker] = fresh;
            gens[worker] = d->site_gen;
            g_mutex_unlock(&d->lock);
            cm_net_httpc_free(old);
            g_mutex_lock(&d->lock);
        }
        g_clear_error(&error);
    }
    client = g_ptr_array_index(clients, worker);
    url = g_strconcat(d->site_url, cm_ep_path(req->ep), NULL);
    g_mutex_unlock(&d->lock);
    headers = cm_daemon_forward_headers(req);
    hreq.method = cm_net_call_method(call);
    hreq.url = url;
    hreq.headers = (const char *const *)headers;
    hreq.msg = req;
    f = f_cmg != NULL ? f_cmg : g_new0(Forward, 1);
    f->d = d;
    f->call = call;
    cm_net_gauge_set(d->pending_gauge, g_atomic_int_add(&d->pending_forwards, 1) + 1);
    if (!cm_net_httpc_send(client, &hreq, forward_done, f, &error)) {
        g_atomic_int_add(&d->pending_forwards, -1);
        forward_free(f);
        cm_response_refuse(resp, CM_REASON_INTERNAL, "cannot forward to the site: %s",
                           error->message);
        g_error_free(error);
        return TRUE;
    }
    return FALSE;
}

static gboolean
on_request(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    return serve(user_data, call, req, NULL, resp);
}

/* The connection point listener (REQ CMG-01, REG-02): the TLS layer took
 * a certificate from the site's issuing root; it must be a connection
 * point the site registered, and then the identity the CMG established
 * is the request's peer.  The transport stays this listener's. */
static gboolean
on_cmg_request(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    MpDaemon *d = user_data;
    const CmCert *peer = cm_net_call_peer_cert(call);
    g_autofree char *tp = peer ? cm_cert_thumbprint_hex(peer) : NULL;
    Forward *f;
    GError *error = NULL;
    gboolean known;

    g_mutex_lock(&d->lock);
    known = tp != NULL && g_hash_table_contains(d->cmg_cps, tp);
    g_mutex_unlock(&d->lock);
    if (!known) {
        cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                           "this listener takes the site's registered connection points only");
        return TRUE;
    }
    f = g_new0(Forward, 1);
    f->via_cmg = TRUE;
    f->cmg_req = *req;
    if (!cm_daemon_forward_parse(call, &f->cmg_req, &f->cmg_cert, &error)) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "connection point: %s", error->message);
        g_error_free(error);
        forward_free(f);
        return TRUE;
    }
    f->cmg_req.transport = req->transport;
    return serve(d, call, &f->cmg_req, f, resp);
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

/* The connection points the site registered (under lock). */
static void
cmg_cps_update(MpDaemon *d, const json_t *conf)
{
    const json_t *cps = json_object_get(conf, "cmg_connection_points");
    size_t i;
    json_t *cp;

    g_hash_table_remove_all(d->cmg_cps);
    json_array_foreach(cps, i, cp)
    {
        const char *tp = json_string_value(json_object_get(cp, "thumbprint"));
        if (tp != NULL && strlen(tp) == 64)
            g_hash_table_add(d->cmg_cps, g_ascii_strup(tp, -1));
    }
}

/* Applies a site configuration to the MP library. */
static gboolean
apply_mpconfig(MpDaemon *d, const json_t *conf, GError **error)
{
    const json_t *info = cm_json_object(conf, "siteinfo", error);
    const json_t *list = info ? cm_json_object(conf, "mplist", error) : NULL;
    gboolean ok;

    if (list == NULL)
        return FALSE;
    g_mutex_lock(&d->lock);
    ok = cm_mp_update_site(d->mp, info, list, error);
    if (ok)
        cmg_cps_update(d, conf);
    g_mutex_unlock(&d->lock);
    return ok;
}

/* Polls the site for configuration changes (settings, MPs); on the
 * refresher's thread. */
static void
refresh(void *data)
{
    MpDaemon *d = data;
    GError *error = NULL;
    g_autoptr(json_t) conf = fetch_mpconfig(d, &error);

    if (conf == NULL || !apply_mpconfig(d, conf, &error)) {
        g_autofree char *addr = d->addr_file ? read_addr_file(d->addr_file) : NULL;
        g_warning("site configuration refresh: %s", error->message);
        g_clear_error(&error);
        g_mutex_lock(&d->lock);
        if (addr != NULL && strcmp(addr, d->site_addr) != 0 && set_site(d, addr, &error))
            g_message("the site moved to %s", addr);
        g_mutex_unlock(&d->lock);
        g_clear_error(&error);
    }
}

static char *
path_in(const char *dir, const char *name)
{
    return g_build_filename(dir, name, NULL);
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("- the cmlab management point");
    GError *error = NULL;
    MpDaemon d = {0};
    CmNetHttpdConfig hc = {0}, cc = {0};
    gboolean cmg_listen = FALSE;
    g_autofree char *conf_path = NULL, *site_host = NULL, *addr = NULL, *name = NULL;
    g_autofree char *p_pki_cert = NULL, *p_pki_key = NULL, *p_keytab = NULL;
    g_autoptr(CmNetConfig) cfg = NULL;
    g_autoptr(CmNetHttpd) httpd = NULL, cmghttpd = NULL;
    g_autoptr(CmTrust) cmg_trust = NULL;
    g_autoptr(CmCert) mp_cert = NULL, ehttp = NULL, client = NULL, site_root = NULL;
    g_autoptr(CmCert) pki_cert = NULL, pki_root = NULL;
    g_autoptr(CmKey) key = NULL, client_key = NULL, pki_key = NULL;
    g_autoptr(CmCrl) pki_crl = NULL;
    g_autoptr(CmTrust) client_trust = NULL;
    g_autoptr(json_t) conf = NULL;
    g_autoptr(CmNetMetrics) metrics = cm_net_metrics_new();
    gint64 role_id = 0, site_connections = SITE_CONNECTIONS;
    gboolean internet = FALSE, ehttp_mode;
    const char *comm;
    int rc = 1;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Serves clients on loopback; MPDIR comes from "
                                      "`cmlab-site add-mp`.  Stops on SIGTERM or SIGINT.");
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || opt_dir == NULL || argc != 1) {
        fprintf(stderr, "cmlab-mp: %s (see --help)\n", error ? error->message : "give --dir MPDIR");
        g_clear_error(&error);
        return 2;
    }
    cm_net_init();
    cm_daemon_log_init("cmlab-mp", opt_verbose);
    g_mutex_init(&d.lock);
    d.dir = opt_dir;
    d.metrics = metrics;
    d.clients = g_ptr_array_new_with_free_func((GDestroyNotify)cm_net_httpc_free);
    d.cmg_clients = g_ptr_array_new_with_free_func((GDestroyNotify)cm_net_httpc_free);
    d.cmg_cps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    conf_path = path_in(opt_dir, "mp.conf");
    cfg = cm_net_config_load(conf_path, &error);
    if (cfg == NULL || !cm_net_config_string(cfg, "mp", "name", NULL, &name, &error) ||
        !cm_net_config_int(cfg, "mp", "role_id", 0, 1, G_MAXINT64, &role_id, &error) ||
        !cm_net_config_bool(cfg, "mp", "internet", FALSE, &internet, &error) ||
        !cm_net_config_string(cfg, "mp", "site_host", NULL, &site_host, &error) ||
        !cm_net_config_duration(cfg, "mp", "refresh", 30 * CM_USEC_PER_SEC, CM_USEC_PER_SEC / 10,
                                CM_USEC_PER_DAY, &d.refresh, &error) ||
        (cm_net_config_has(cfg, "mp", "pki_cert") &&
         (!cm_net_config_path(cfg, "mp", "pki_cert", NULL, &p_pki_cert, &error) ||
          !cm_net_config_path(cfg, "mp", "pki_key", NULL, &p_pki_key, &error))) ||
        !cm_net_config_int(cfg, "mp", "site_connections", SITE_CONNECTIONS, 1, 1024,
                           &site_connections, &error) ||
        !cm_net_config_int(cfg, "mp", "max_pending", MAX_PENDING, 1, 1000000, &d.max_pending,
                           &error) ||
        (cm_net_config_has(cfg, "mp", "keytab") &&
         !cm_net_config_path(cfg, "mp", "keytab", NULL, &p_keytab, &error)) ||
        !cm_net_config_httpd(cfg, "listen", &hc, &error) ||
        ((cmg_listen = cm_net_config_has(cfg, "cmg_listen", "https_port")) &&
         !cm_net_config_httpd(cfg, "cmg_listen", &cc, &error)))
        goto out;
    if (!cm_net_config_has(cfg, "listen", "idle_timeout"))
        hc.idle_timeout_ms = MP_IDLE_TIMEOUT / 1000;
    d.name = name;
    {
        g_autofree char *p1 = path_in(opt_dir, "mp-cert.pem"), *p2 = path_in(opt_dir, "mp.key");
        g_autofree char *p3 = path_in(opt_dir, "ehttp.pem");
        g_autofree char *p4 = path_in(opt_dir, "site-client.pem");
        g_autofree char *p5 = path_in(opt_dir, "site-client.key");
        g_autofree char *p6 = path_in(opt_dir, "site-root.pem");
        if ((mp_cert = cm_daemon_load_cert(p1, &error)) == NULL ||
            (key = cm_daemon_load_key(p2, &error)) == NULL ||
            (ehttp = cm_daemon_load_cert(p3, &error)) == NULL ||
            (client = cm_daemon_load_cert(p4, &error)) == NULL ||
            (client_key = cm_daemon_load_key(p5, &error)) == NULL ||
            (site_root = cm_daemon_load_cert(p6, &error)) == NULL)
            goto out;
    }
    if (p_pki_cert != NULL && ((pki_cert = cm_daemon_load_cert(p_pki_cert, &error)) == NULL ||
                               (pki_key = cm_daemon_load_key(p_pki_key, &error)) == NULL))
        goto out;

    /* The site: its name in its certificate, its address from the lab. */
    d.site_host = site_host;
    d.site_roots[0] = site_root;
    d.site_client.client_cert = client;
    d.site_client.client_key = client_key;
    d.site_client.ca_certs = d.site_roots;
    d.site_client.n_ca_certs = 1;
    d.site_client.max_response_size = MPCONFIG_MAX;
    d.site_client.max_host_connections = (long)site_connections;
    /* ...and keeps them: libcurl's default cache closed some after each
     * burst (a TLS handshake with the site for the next; hundreds of
     * sockets in TIME-WAIT per second under scripts/bench-cmg status). */
    d.site_client.max_connections = (long)site_connections + 4;
    addr = site_address(&d, cfg, &error);
    if (addr == NULL || !set_site(&d, addr, &error))
        goto out;
    d.refresh_base = cm_net_event_base_new();
    conf = fetch_mpconfig(&d, &error);
    if (conf == NULL)
        goto out;
    {
        CmMpConfig mc = {.name = name,
                         .role_id = (guint64)role_id,
                         .internet = internet,
                         .mp_cert = mp_cert,
                         .siteinfo = json_object_get(conf, "siteinfo"),
                         .mplist = json_object_get(conf, "mplist")};
        d.mp = cm_mp_new(&mc, &error);
        if (d.mp == NULL)
            goto out;
    }
    cmg_cps_update(&d, conf);

    /* The TLS listener: the site-issued certificate in Enhanced HTTP mode
     * (REQ TRUST-10), otherwise the enterprise PKI server certificate with
     * client certificates checked against the site's PKI roots and CRL. */
    comm = json_string_value(json_object_get(
        json_object_get(json_object_get(conf, "siteinfo"), "settings"), "communication"));
    ehttp_mode = comm != NULL && strcmp(comm, "ehttp") == 0;
    hc.http = TRUE;
    hc.https = TRUE;
    hc.handler = on_request;
    hc.handler_data = &d;
    hc.metrics = metrics;
    hc.keytab = p_keytab; /* Kerberos (SPNEGO) when set */
    if (ehttp_mode || pki_cert == NULL) {
        hc.server_cert = ehttp;
        hc.server_key = key;
        hc.tls_transport = ehttp_mode ? CM_TRANSPORT_EHTTP : CM_TRANSPORT_HTTPS;
        if (!ehttp_mode)
            g_warning("no [mp] pki_cert: HTTPS uses the site-issued certificate, which PKI "
                      "clients do not trust");
    } else {
        hc.server_cert = pki_cert;
        hc.server_key = pki_key;
        hc.tls_transport = CM_TRANSPORT_HTTPS;
    }
    if (!ehttp_mode && json_object_get(conf, "pki_root") != NULL) {
        const char *pem = json_string_value(json_object_get(conf, "pki_root"));
        const char *crl_pem = json_string_value(json_object_get(conf, "pki_crl"));
        client_trust = cm_trust_new();
        if (pem == NULL || (pki_root = cm_cert_from_pem(pem, strlen(pem), &error)) == NULL ||
            !cm_trust_add_root(client_trust, pki_root, &error))
            goto out;
        if (crl_pem != NULL &&
            ((pki_crl = cm_crl_from_pem(crl_pem, strlen(crl_pem), &error)) == NULL ||
             !cm_trust_add_crl(client_trust, pki_crl, &error)))
            goto out;
        cm_trust_set_crl_check(client_trust, pki_crl != NULL);
        hc.client_cert = CM_NET_CLIENT_CERT_OPTIONAL;
        hc.client_trust = client_trust;
    }
    d.channels = cm_net_metrics_gauge(metrics, "cm_mp_notification_channels",
                                      "Open client notification channels", NULL);
    d.keepalives = cm_net_metrics_counter(metrics, "cm_mp_keepalives_total",
                                          "Keep-alives answered on open channels", NULL);
    d.busy =
        cm_net_metrics_counter(metrics, "cm_mp_busy_total",
                               "Requests answered 503 because max_pending forwards waited", NULL);
    d.pending_gauge = cm_net_metrics_gauge(metrics, "cm_mp_pending_forwards",
                                           "Forwarded requests waiting for the site", NULL);
    d.site_failures = cm_net_metrics_counter(metrics, "cm_mp_site_failures_total",
                                             "Forwarded requests the site did not answer", NULL);
    if (!cm_net_raise_fd_limit(65536, NULL, NULL))
        g_message("open-file limit below 65536: fewer notification channels fit");
    httpd = cm_net_httpd_new(&hc, &error);
    if (httpd == NULL)
        goto out;
    d.client_gen = g_new0(guint, cm_net_httpd_n_workers(httpd));
    for (guint i = 0; i < cm_net_httpd_n_workers(httpd); i++) {
        CmNetHttpc *c =
            cm_net_httpc_new(cm_net_httpd_worker_base(httpd, i), &d.site_client, &error);
        if (c == NULL)
            goto out;
        g_ptr_array_add(d.clients, c);
        d.client_gen[i] = d.site_gen;
    }
    if (cmg_listen) {
        /* Connection points only: their certificates come from the site's
         * issuing root, and on_cmg_request checks the registration. */
        cmg_trust = cm_trust_new();
        if (!cm_trust_add_root(cmg_trust, site_root, &error))
            goto out;
        cc.https = TRUE;
        cc.http = FALSE;
        cc.server_cert = hc.server_cert;
        cc.server_key = hc.server_key;
        cc.tls_transport = hc.tls_transport;
        cc.client_cert = CM_NET_CLIENT_CERT_REQUIRED;
        cc.client_trust = cmg_trust;
        cc.handler = on_cmg_request;
        cc.handler_data = &d;
        if ((cmghttpd = cm_net_httpd_new(&cc, &error)) == NULL)
            goto out;
        d.cmg_client_gen = g_new0(guint, cm_net_httpd_n_workers(cmghttpd));
        for (guint i = 0; i < cm_net_httpd_n_workers(cmghttpd); i++) {
            CmNetHttpc *c =
                cm_net_httpc_new(cm_net_httpd_worker_base(cmghttpd, i), &d.site_client, &error);
            if (c == NULL)
                goto out;
            g_ptr_array_add(d.cmg_clients, c);
            d.cmg_client_gen[i] = d.site_gen;
        }
        /* Written before mp.addr: whoever waits for mp.addr finds it. */
        if (!cm_net_httpd_start(cmghttpd, &error) ||
            !cm_daemon_write_addr(opt_dir, "mp-cmg", cc.address ? cc.address : "127.0.0.1", 0,
                                  cm_net_httpd_https_port(cmghttpd), &error))
            goto out;
        g_message("connection points on https://%s:%u (%u registered)",
                  cc.address ? cc.address : "127.0.0.1", cm_net_httpd_https_port(cmghttpd),
                  g_hash_table_size(d.cmg_cps));
    }
    if (!cm_net_httpd_add_route(httpd, "/metrics", cm_net_metrics_route, metrics, &error) ||
        !cm_net_httpd_add_route(httpd, "/health", health_route, NULL, &error) ||
        !cm_net_httpd_start(httpd, &error) ||
        !cm_daemon_write_addr(opt_dir, "mp", hc.address ? hc.address : "127.0.0.1",
                              cm_net_httpd_http_port(httpd), cm_net_httpd_https_port(httpd),
                              &error))
        goto out;
    d.refresher = cm_daemon_ticker_start("mp-refresh", d.refresh, refresh, &d);
    g_message("MP %s serving http://%s:%u and https://%s:%u (%s, %u workers); site %s", name,
              hc.address ? hc.address : "127.0.0.1", cm_net_httpd_http_port(httpd),
              hc.address ? hc.address : "127.0.0.1", cm_net_httpd_https_port(httpd),
              cm_transport_name(hc.tls_transport), cm_net_httpd_n_workers(httpd), d.site_url);
    {
        int sig = cm_net_wait_for_signal();
        g_message("signal %d: stopping", sig);
    }
    rc = 0;
out:
    if (error != NULL) {
        g_critical("cmlab-mp: %s", error->message);
        g_error_free(error);
    }
    cm_daemon_ticker_stop(d.refresher);
    if (httpd != NULL)
        cm_net_httpd_stop(httpd);
    if (cmghttpd != NULL)
        cm_net_httpd_stop(cmghttpd);
    /* Pending forwards complete (cancelled) before the server goes. */
    g_ptr_array_unref(d.clients);
    g_ptr_array_unref(d.cmg_clients);
    g_clear_pointer(&httpd, cm_net_httpd_free);
    g_clear_pointer(&cmghttpd, cm_net_httpd_free);
    g_hash_table_unref(d.cmg_cps);
    g_free(d.cmg_client_gen);
    cm_mp_free(d.mp);
    if (d.refresh_base != NULL)
        event_base_free(d.refresh_base);
    g_free(d.site_url);
    g_free(d.site_addr);
    g_free(d.addr_file);
    g_free(d.client_gen);
    g_free(d.connect_to[0]);
    g_mutex_clear(&d.lock);
    return rc;
}
