/* test-net.c - libcmnet on loopback: the HTTP/HTTPS server with its limits,
 * timeouts and mutual TLS (trusted root, foreign root, root outside the
 * CTL, revoked certificate), the libcurl client, /metrics, configuration,
 * and the stock tools (curl, openssl s_client) against the server.
 *
 * Everything listens on 127.0.0.1 with ephemeral ports; timeouts are short
 * so that the suite takes seconds. */
#include "testutil.h"

#include "cmnet.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define DAY CM_USEC_PER_DAY

/* ------------------------------------------------------------ PKI */

static CmKey *ca_key, *srv_key, *cli_key, *rev_key, *ca2_key, *cli2_key, *ca3_key, *cli3_key;
static CmCert *ca_cert, *srv_cert, *cli_cert, *rev_cert, *ca2_cert, *cli2_cert, *ca3_cert,
    *cli3_cert;
static CmTrust *trust;

static CmKey *
gen_key(void)
{
    GError *err = NULL;
    CmKey *k = cm_key_generate(CM_KEY_EC_P256, &err);
    g_assert_no_error(err);
    return k;
}

static CmCert *
issue(CmCertProfile profile, const char *cn, guint64 serial, const CmKey *key,
      const CmKey *issuer_key, const CmCert *issuer_cert)
{
    static const char *const localhost[] = {"localhost", NULL};
    CmTime now = g_get_real_time();
    CmCertSpec spec = {0};
    GError *err = NULL;
    CmCert *cert;

    spec.profile = profile;
    spec.subject_cn = cn;
    spec.serial = serial;
    spec.not_before = now - DAY;
    spec.not_after = now + 30 * DAY;
    spec.subject_key = key;
    spec.issuer_key = issuer_key;
    spec.issuer_cert = issuer_cert;
    spec.hash = CM_HASH_SHA256;
    if (profile == CM_CERT_SERVER)
        spec.dns_names = localhost;
    cert = cm_cert_issue(&spec, &err);
    g_assert_no_error(err);
    return cert;
}

static CmCrl *
crl_of(const CmCert *issuer, const CmKey *key, const CmCrlEntry *entries, size_t n)
{
    CmTime now = g_get_real_time();
    GError *err = NULL;
    CmCrl *crl = cm_crl_issue(issuer, key, entries, n, 1, now - DAY, now + 7 * DAY, &err);
    g_assert_no_error(err);
    return crl;
}

static void
pki_setup(void)
{
    GError *err = NULL;
    CmCrlEntry revoked = {11, g_get_real_time() - CM_USEC_PER_HOUR};
    g_autoptr(CmCrl) crl = NULL;
    g_autoptr(CmCrl) crl3 = NULL;
    CmCtl *ctl;

    ca_key = gen_key();
    srv_key = gen_key();
    cli_key = gen_key();
    rev_key = gen_key();
    ca2_key = gen_key();
    cli2_key = gen_key();
    ca3_key = gen_key();
    cli3_key = gen_key();
    ca_cert = issue(CM_CERT_ROOT_CA, "cmlab test enterprise CA", 1, ca_key, NULL, NULL);
    srv_cert = issue(CM_CERT_SERVER, "localhost", 2, srv_key, ca_key, ca_cert);
    cli_cert = issue(CM_CERT_CLIENT_AUTH, "PC001", 10, cli_key, ca_key, ca_cert);
    rev_cert = issue(CM_CERT_CLIENT_AUTH, "PC-REVOKED", 11, rev_key, ca_key, ca_cert);
    ca2_cert = issue(CM_CERT_ROOT_CA, "some other CA", 1, ca2_key, NULL, NULL);
    cli2_cert = issue(CM_CERT_CLIENT_AUTH, "PC-FOREIGN", 10, cli2_key, ca2_key, ca2_cert);
    ca3_cert = issue(CM_CERT_ROOT_CA, "trusted root outside the CTL", 1, ca3_key, NULL, NULL);
    cli3_cert = issue(CM_CERT_CLIENT_AUTH, "PC-OUTSIDE-CTL", 10, cli3_key, ca3_key, ca3_cert);

    crl = crl_of(ca_cert, ca_key, &revoked, 1);
    crl3 = crl_of(ca3_cert, ca3_key, NULL, 0);
    trust = cm_trust_new();
    cm_trust_add_root(trust, ca_cert, &err);
    g_assert_no_error(err);
    cm_trust_add_root(trust, ca3_cert, &err);
    g_assert_no_error(err);
    cm_trust_add_crl(trust, crl, &err);
    g_assert_no_error(err);
    cm_trust_add_crl(trust, crl3, &err);
    g_assert_no_error(err);
    cm_trust_set_crl_check(trust, TRUE);
    ctl = cm_ctl_new();
    cm_ctl_add(ctl, ca_cert);
    cm_trust_set_ctl(trust, ctl);
}

static void
pki_teardown(void)
{
    CmKey **keys[] = {&ca_key,  &srv_key,  &cli_key, &rev_key,
                      &ca2_key, &cli2_key, &ca3_key, &cli3_key};
    CmCert **certs[] = {&ca_cert,  &srv_cert,  &cli_cert, &rev_cert,
                        &ca2_cert, &cli2_cert, &ca3_cert, &cli3_cert};

    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        g_clear_pointer(keys[i], cm_key_unref);
    for (size_t i = 0; i < G_N_ELEMENTS(certs); i++)
        g_clear_pointer(certs[i], cm_cert_unref);
    g_clear_pointer(&trust, cm_trust_free);
}

/* --------------------------------------------------------- the handler */

static gint conn_data_freed;
static gint calls_kept;

static void
conn_data_free(gpointer data)
{
    g_free(data);
    g_atomic_int_inc(&conn_data_freed);
}

static gpointer
reply_later(gpointer data)
{
    CmNetCall *call = data;
    CmResponse resp = {0};
    g_autoptr(json_t) o = json_pack("{s:s}", "answered", "later");

    g_usleep(20 * 1000);
    cm_response_ok(&resp, o);
    cm_net_call_reply(call, &resp);
    return NULL;
}

/* Echoes what the server made of the request; a few endpoints do more:
 * status answers 503 busy, policybody answers from another thread, notify
 * keeps data on its connection. */
static gboolean
echo_handler(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    g_autoptr(json_t) o = json_object();

    (void)user_data;
    if (req->ep == CM_EP_STATUS) {
        cm_response_refuse(resp, CM_REASON_BUSY, "queue full");
        resp->retry_after = 7 * CM_USEC_PER_SEC;
        return TRUE;
    }
    if (req->ep == CM_EP_POLICY_BODY) {
        g_thread_unref(g_thread_new("reply-later", reply_later, call));
        return FALSE;
    }
    if (req->ep == CM_EP_CLIENT_PACKAGE) {
        /* Never answered: the server drops it at free. */
        g_atomic_int_inc(&calls_kept);
        return FALSE;
    }
    if (req->ep == CM_EP_NOTIFY) {
        const char *seen = cm_net_call_get_conn_data(call);
        json_object_set_new(o, "channel", json_string(seen ? seen : "new"));
        if (seen == NULL)
            cm_net_call_set_conn_data(call, g_strdup("open"), conn_data_free);
    }
    json_object_set_new(o, "ep", json_string(cm_ep_name(req->ep)));
    json_object_set_new(o, "transport", json_string(cm_transport_name(req->transport)));
    json_object_set_new(o, "auth", json_string(cm_auth_name(req->peer.kind)));
    json_object_set_new(o, "principal", json_string(req->peer.principal));
    json_object_set_new(o, "smsid", json_string(req->smsid));
    json_object_set_new(o, "signed", json_boolean(req->signed_));
    json_object_set_new(o, "sig_hash", json_string(cm_hash_alg_name(req->sig_hash)));
    json_object_set_new(o, "sig_len", json_integer((json_int_t)req->sig_len));
    json_object_set_new(o, "body_len", json_integer((json_int_t)req->body_len));
    json_object_set_new(o, "method", json_string(cm_net_call_method(call)));
    json_object_set_new(o, "peer_addr", json_string(cm_net_call_peer_address(call)));
    cm_response_ok(resp, o);
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

/* ------------------------------------------------------------ servers */

static CmNetHttpdConfig
server_config(gboolean http, gboolean https)
{
    CmNetHttpdConfig cfg = {0};

    cfg.address = "127.0.0.1";
    cfg.http = http;
    cfg.https = https;
    cfg.server_cert = srv_cert;
    cfg.server_key = srv_key;
    cfg.workers = 2;
    cfg.handler = echo_handler;
    return cfg;
}

static CmNetHttpd *
start(const CmNetHttpdConfig *cfg)
{
    GError *err = NULL;
    CmNetHttpd *h = cm_net_httpd_new(cfg, &err);

    cm_assert_no_error(err);
    cm_net_httpd_start(h, &err);
    cm_assert_no_error(err);
    return h;
}

static char *
http_url(CmNetHttpd *h, const char *path)
{
    return g_strdup_printf("http://127.0.0.1:%u%s", cm_net_httpd_http_port(h), path);
}

/* HTTPS by name, as a client checks it, with the name mapped to
 * 127.0.0.1 by the client (no resolver involved). */
static char *
https_url(CmNetHttpd *h, const char *path)
{
    return g_strdup_printf("https://localhost:%u%s", cm_net_httpd_https_port(h), path);
}

typedef struct {
    CmNetHttpcConfig cfg;
    const CmCert *cas[1];
    char *connect_to[2];
} Client;

static void
client_init(Client *c, CmNetHttpd *h, const CmCert *cert, const CmKey *key)
{
    memset(c, 0, sizeof *c);
    c->cas[0] = ca_cert;
    c->cfg.ca_certs = c->cas;
    c->cfg.n_ca_certs = 1;
    c->cfg.client_cert = cert;
    c->cfg.client_key = key;
    c->cfg.timeout_ms = 10000;
    if (h != NULL && cm_net_httpd_https_port(h) != 0) {
        c->connect_to[0] = g_strdup_printf("localhost:%u:127.0.0.1:%u", cm_net_httpd_https_port(h),
                                           cm_net_httpd_https_port(h));
        c->cfg.connect_to = (const char *const *)c->connect_to;
    }
}

static void
client_clear(Client *c)
{
    g_free(c->connect_to[0]);
}

/* A request; the response (status 0 and error set when none came). */
static CmNetHttpResponse
fetch(const Client *c, const char *method, const char *url, const CmRequest *msg, const char *body,
      size_t body_len, const char *const *headers)
{
    CmNetHttpRequest req = {0};
    CmNetHttpResponse resp = {0};
    GError *err = NULL;

    req.method = method;
    req.url = url;
    req.msg = msg;
    req.body = body;
    req.body_len = body_len;
    req.headers = headers;
    if (!cm_net_http_fetch(&c->cfg, &req, &resp, &err)) {
        ck_assert_msg(resp.status == 0, "failed with status %d", resp.status);
        ck_assert_ptr_nonnull(resp.error);
    }
    g_clear_error(&err);
    return resp;
}

static json_t *
body_json(const CmNetHttpResponse *resp)
{
    GError *err = NULL;
    gsize len = 0;
    const void *data;
    json_t *o;

    ck_assert_ptr_nonnull(resp->body);
    data = g_bytes_get_data(resp->body, &len);
    o = cm_json_parse(data, len, CM_JSON_DEFAULT_MAX, &err);
    ck_assert_msg(o != NULL, "body is not JSON (%s): %.*s", err ? err->message : "",
                  (int)MIN(len, 200), (const char *)data);
    return o;
}

static const char *
jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    ck_assert_msg(s != NULL, "no string \"%s\"", key);
    return s;
}

static void
assert_refusal(const CmNetHttpResponse *resp, int status, const char *reason)
{
    g_autoptr(json_t) o = NULL;

    ck_assert_msg(resp->status == status, "status %d, wanted %d (%s)", resp->status, status,
                  resp->error ? resp->error->message : "");
    o = body_json(resp);
    ck_assert_str_eq(jstr(o, "reason"), reason);
    ck_assert(strlen(jstr(o, "message")) > 0);
}

/* A signed protocol message from cli_key. */
static void
signed_msg(CmRequest *msg, const char *body)
{
    GError *err = NULL;

    memset(msg, 0, sizeof *msg);
    g_strlcpy(msg->smsid, "GUID:12345678-1234-1234-1234-123456789ABC", sizeof msg->smsid);
    msg->body = (const guint8 *)body;
    msg->body_len = strlen(body);
    cm_msg_sign(msg, cli_key, CM_HASH_SHA256, &err);
    g_assert_no_error(err);
}

/* ------------------------------------------------------- round trips */

/* An API handler: echoes its path, a header and the certificate holder. */
static gboolean
api_handler(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    g_autoptr(json_t) o = json_object();
    const char *hdr = cm_net_call_header(call, "X-Test");
    const CmCert *peer = cm_net_call_peer_cert(call);

    ck_assert_ptr_eq(user_data, &calls_kept);
    json_object_set_new(o, "path", json_string(cm_net_call_path(call)));
    json_object_set_new(o, "header", json_string(hdr ? hdr : ""));
    json_object_set_new(o, "peer", json_string(peer ? cm_cert_subject_cn(peer) : ""));
    json_object_set_new(o, "ep", json_string(cm_ep_name(req->ep)));
    json_object_set_new(o, "body_len", json_integer((json_int_t)req->body_len));
    cm_response_ok(resp, o);
    return TRUE;
}

/* An API prefix takes every path under it, with headers, body and the
 * verified client certificate; protocol endpoints and other paths are
 * untouched, and a prefix is refused once taken. */
START_TEST(test_api_routes)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetHttpd) h = NULL;
    g_autofree char *url = NULL, *ep_url = NULL, *other = NULL;
    const char *const hdrs[] = {"X-Test: yes", NULL};
    CmNetHttpResponse resp;
    GError *err = NULL;
    Client c;

    cfg.client_cert = CM_NET_CLIENT_CERT_REQUIRED;
    cfg.client_trust = trust;
    cfg.max_body_size = 4096;
    h = cm_net_httpd_new(&cfg, &err);
    cm_assert_no_error(err);
    ck_assert(!cm_net_httpd_add_api(h, "/admin", api_handler, &calls_kept, &err));
    g_clear_error(&err);
    ck_assert(cm_net_httpd_add_api(h, "/admin/", api_handler, &calls_kept, &err));
    ck_assert(!cm_net_httpd_add_api(h, "/admin/", api_handler, &calls_kept, &err));
    g_clear_error(&err);
    ck_assert(cm_net_httpd_start(h, &err));
    cm_assert_no_error(err);

    client_init(&c, h, cli_cert, cli_key);
    url = https_url(h, "/admin/clients/approve?x=1");
    resp = fetch(&c, "POST", url, NULL, "{}", 2, hdrs);
    ck_assert_int_eq(resp.status, 200);
    {
        g_autoptr(json_t) o = body_json(&resp);
        ck_assert_str_eq(jstr(o, "path"), "/admin/clients/approve");
        ck_assert_str_eq(jstr(o, "header"), "yes");
        ck_assert_str_eq(jstr(o, "peer"), "PC001");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "body_len")), 2);
    }
    cm_net_http_response_clear(&resp);
    /* over the server's body bound: 413 before the handler */
    {
        g_autofree char *big = g_strnfill(5000, 'x');
        resp = fetch(&c, "POST", url, NULL, big, 5000, NULL);
        ck_assert_int_eq(resp.status, 413);
        cm_net_http_response_clear(&resp);
    }
    /* endpoints still go to the protocol handler */
    ep_url = https_url(h, "/sms_mp/.sms_aut?MPLIST");
    resp = fetch(&c, "GET", ep_url, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    {
        g_autoptr(json_t) o = body_json(&resp);
        ck_assert_str_eq(jstr(o, "ep"), "location");
    }
    cm_net_http_response_clear(&resp);
    other = https_url(h, "/adminx");
    resp = fetch(&c, "GET", other, NULL, NULL, 0, NULL);
    assert_refusal(&resp, 404, "unknown-endpoint");
    cm_net_http_response_clear(&resp);
    client_clear(&c);
    /* without a client certificate the API is refused like the endpoints */
    client_init(&c, h, NULL, NULL);
    resp = fetch(&c, "GET", url, NULL, NULL, 0, NULL);
    ck_assert_int_ne(resp.status, 200);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

START_TEST(test_http_roundtrip)
{
    CmNetHttpdConfig cfg = server_config(TRUE, FALSE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *location = http_url(h, "/sms_mp/.sms_aut?MPLIST");
    g_autofree char *reg = http_url(h, "/ccm_system_windowsauth/request/register");
    const char *body = "{\"smsid\":\"GUID:12345678-1234-1234-1234-123456789ABC\"}";
    CmNetHttpResponse resp;
    CmRequest msg;
    Client c;
    json_t *o;

    ck_assert_uint_ne(cm_net_httpd_http_port(h), 0);
    ck_assert_uint_eq(cm_net_httpd_https_port(h), 0);
    ck_assert_uint_eq(cm_net_httpd_n_workers(h), 2);
    /* A second server on a port in use fails, rather than sharing it. */
    {
        CmNetHttpdConfig again = cfg;
        GError *err = NULL;
        again.http_port = cm_net_httpd_http_port(h);
        ck_assert_ptr_null(cm_net_httpd_new(&again, &err));
        ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_BIND));
        g_clear_error(&err);
    }
    client_init(&c, h, NULL, NULL);
    resp = fetch(&c, NULL, location, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(cm_net_http_response_header(&resp, "Content-Type"), "application/json");
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "ep"), "location");
    ck_assert_str_eq(jstr(o, "transport"), "http");
    ck_assert_str_eq(jstr(o, "auth"), "anonymous");
    ck_assert_str_eq(jstr(o, "method"), "GET");
    ck_assert_str_eq(jstr(o, "peer_addr"), "127.0.0.1");
    ck_assert(json_is_false(json_object_get(o, "signed")));
    json_decref(o);
    cm_net_http_response_clear(&resp);

    /* Case-insensitive paths, as IIS. */
    g_free(location);
    location = http_url(h, "/SMS_MP/.sms_aut?MPLIST");
    resp = fetch(&c, NULL, location, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    cm_net_http_response_clear(&resp);

    signed_msg(&msg, body);
    resp = fetch(&c, NULL, reg, &msg, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "ep"), "register");
    ck_assert_str_eq(jstr(o, "method"), "POST");
    ck_assert_str_eq(jstr(o, "smsid"), msg.smsid);
    ck_assert(json_is_true(json_object_get(o, "signed")));
    ck_assert_str_eq(jstr(o, "sig_hash"), "sha256");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "sig_len")), (json_int_t)msg.sig_len);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "body_len")), (json_int_t)strlen(body));
    json_decref(o);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

START_TEST(test_https_roundtrip)
{
    CmNetHttpdConfig cfg = server_config(TRUE, TRUE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *url = https_url(h, "/sms_mp/.sms_aut?MPLIST");
    g_autofree char *ip_url = NULL;
    CmNetHttpResponse resp;
    Client c;
    json_t *o;

    ck_assert_uint_ne(cm_net_httpd_https_port(h), 0);
    ck_assert_uint_ne(cm_net_httpd_https_port(h), cm_net_httpd_http_port(h));
    client_init(&c, h, NULL, NULL);
    resp = fetch(&c, "POST", url, NULL, "{\"site_code\":\"PS1\"}", 19, NULL);
    ck_assert_msg(resp.status == 200, "status %d: %s", resp.status,
                  resp.error ? resp.error->message : "");
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "transport"), "https");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "body_len")), 19);
    json_decref(o);
    cm_net_http_response_clear(&resp);

    /* Without the enterprise root the server is not trusted... */
    c.cfg.n_ca_certs = 0;
    c.cfg.ca_certs = NULL;
    resp = fetch(&c, NULL, url, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 0);
    ck_assert(g_error_matches(resp.error, CM_NET_ERROR, CM_NET_ERROR_TLS));
    cm_net_http_response_clear(&resp);
    /* ...nor under a name its certificate does not carry. */
    c.cas[0] = ca_cert;
    c.cfg.ca_certs = c.cas;
    c.cfg.n_ca_certs = 1;
    ip_url =
        g_strdup_printf("https://127.0.0.1:%u/sms_mp/.sms_aut?MPLIST", cm_net_httpd_https_port(h));
    resp = fetch(&c, NULL, ip_url, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 0);
    ck_assert(g_error_matches(resp.error, CM_NET_ERROR, CM_NET_ERROR_TLS));
    cm_net_http_response_clear(&resp);
    /* An insecure client (an attack tool) takes anything. */
    c.cfg.insecure = TRUE;
    resp = fetch(&c, NULL, ip_url, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

START_TEST(test_ehttp_transport)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetHttpd) h = NULL;
    g_autofree char *url = NULL;
    CmNetHttpResponse resp;
    Client c;
    json_t *o;

    cfg.tls_transport = CM_TRANSPORT_EHTTP;
    cfg.tls_min = CM_NET_TLS_1_3;
    h = start(&cfg);
    url = https_url(h, "/sms_mp/.sms_aut?SITEINFO");
    client_init(&c, h, NULL, NULL);
    c.cfg.tls_min = CM_NET_TLS_1_3;
    resp = fetch(&c, NULL, url, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "transport"), "ehttp");
    ck_assert_str_eq(jstr(o, "ep"), "siteinfo");
    json_decref(o);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

/* --------------------------------------------------------- mutual TLS */

/* A bare OpenSSL client limited to max_version (and willing to speak
 * TLS 1.1, which OpenSSL's default security level forbids); returns the
 * negotiated version, or 0 with the reason code of the failure.  With
 * TLS 1.2 a refused client certificate fails the handshake itself (with
 * 1.3 the refusal comes after the client finished). */
static int
raw_tls_connect(guint16 port, int max_version, const CmCert *cert, const CmKey *key, int *reason)
{
    struct sockaddr_in sa = {0};
    struct timeval tv = {5, 0};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int version = 0;

    *reason = 0;
    ck_assert(ctx != NULL && fd >= 0);
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    if (cert != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate(ctx, cm_cert_x509(cert)), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, cm_key_evp(key)), 1);
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1)
        version = SSL_version(ssl);
    else
        *reason = ERR_GET_REASON(ERR_peek_last_error());
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return version;
}

static CmNetHttpResponse
mtls_fetch(CmNetHttpd *h, const CmCert *cert, const CmKey *key)
{
    g_autofree char *url = https_url(h, "/ccm_system/request/policyassignments");
    CmNetHttpResponse resp;
    Client c;

    client_init(&c, h, cert, key);
    resp = fetch(&c, "POST", url, NULL, "{}", 2, NULL);
    client_clear(&c);
    return resp;
}

START_TEST(test_mtls_required)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetMetrics) metrics = cm_net_metrics_new();
    g_autoptr(CmNetHttpd) h = NULL;
    g_autofree char *text = NULL;
    CmNetHttpResponse resp;
    guint16 port;
    int reason;
    json_t *o;

    cfg.client_cert = CM_NET_CLIENT_CERT_REQUIRED;
    cfg.client_trust = trust;
    cfg.metrics = metrics;
    h = start(&cfg);

    /* From the trusted root, in the CTL, not revoked. */
    resp = mtls_fetch(h, cli_cert, cli_key);
    ck_assert_msg(resp.status == 200, "status %d: %s", resp.status,
                  resp.error ? resp.error->message : "");
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "auth"), "pki");
    ck_assert_str_eq(jstr(o, "principal"), "PC001");
    json_decref(o);
    cm_net_http_response_clear(&resp);

    /* From a root the server does not trust: the handshake fails. */
    resp = mtls_fetch(h, cli2_cert, cli2_key);
    ck_assert_int_eq(resp.status, 0);
    ck_assert_ptr_nonnull(resp.error);
    cm_net_http_response_clear(&resp);

    /* From a trusted root outside the CTL: the request is refused. */
    resp = mtls_fetch(h, cli3_cert, cli3_key);
    assert_refusal(&resp, 403, "untrusted");
    o = body_json(&resp);
    ck_assert_msg(strstr(jstr(o, "message"), "CTL") != NULL, "%s", jstr(o, "message"));
    json_decref(o);
    cm_net_http_response_clear(&resp);

    /* Revoked, with CRL checking on: the handshake fails. */
    resp = mtls_fetch(h, rev_cert, rev_key);
    ck_assert_int_eq(resp.status, 0);
    ck_assert_ptr_nonnull(resp.error);
    cm_net_http_response_clear(&resp);

    /* No certificate at all. */
    resp = mtls_fetch(h, NULL, NULL);
    ck_assert_int_eq(resp.status, 0);
    cm_net_http_response_clear(&resp);

    /* At TLS 1.2 each refusal is the handshake's, with its alert. */
    port = cm_net_httpd_https_port(h);
    ck_assert_int_eq(raw_tls_connect(port, TLS1_2_VERSION, cli_cert, cli_key, &reason),
                     TLS1_2_VERSION);
    ck_assert_int_eq(raw_tls_connect(port, TLS1_2_VERSION, cli2_cert, cli2_key, &reason), 0);
    ck_assert_int_eq(reason, SSL_R_TLSV1_ALERT_UNKNOWN_CA);
    ck_assert_int_eq(raw_tls_connect(port, TLS1_2_VERSION, rev_cert, rev_key, &reason), 0);
    ck_assert_int_eq(reason, SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED);
    ck_assert_int_eq(raw_tls_connect(port, TLS1_2_VERSION, NULL, NULL, &reason), 0);
    ck_assert_int_eq(reason, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE);
    /* The CTL is not the handshake's business: the request is refused. */
    ck_assert_int_eq(raw_tls_connect(port, TLS1_2_VERSION, cli3_cert, cli3_key, &reason),
                     TLS1_2_VERSION);

    text = cm_net_metrics_render(metrics);
    ck_assert_msg(strstr(text, "cm_tls_handshake_failures_total{alert=\"unknown CA\"}") != NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "cm_tls_handshake_failures_total{alert=\"certificate revoked\"}") !=
                      NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "cm_http_requests_total{endpoint=\"policyassignments\","
                               "outcome=\"untrusted\"} 1") != NULL,
                  "%s", text);
}
END_TEST

START_TEST(test_mtls_optional)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetHttpd) h = NULL;
    CmNetHttpResponse resp;
    json_t *o;

    cfg.client_cert = CM_NET_CLIENT_CERT_OPTIONAL;
    cfg.client_trust = trust;
    h = start(&cfg);

    resp = mtls_fetch(h, NULL, NULL);
    ck_assert_int_eq(resp.status, 200);
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "auth"), "anonymous");
    json_decref(o);
    cm_net_http_response_clear(&resp);

    resp = mtls_fetch(h, cli_cert, cli_key);
    ck_assert_int_eq(resp.status, 200);
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "auth"), "pki");
    json_decref(o);
    cm_net_http_response_clear(&resp);

    /* A certificate that is sent is checked, optional or not. */
    resp = mtls_fetch(h, rev_cert, rev_key);
    ck_assert_int_eq(resp.status, 0);
    cm_net_http_response_clear(&resp);
    resp = mtls_fetch(h, cli3_cert, cli3_key);
    assert_refusal(&resp, 403, "untrusted");
    cm_net_http_response_clear(&resp);
}
END_TEST

/* -------------------------------------------------------- TLS versions */

START_TEST(test_tls_versions)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetHttpd) h12 = start(&cfg);
    g_autoptr(CmNetHttpd) h13 = NULL;
    int reason;

    cfg.tls_min = CM_NET_TLS_1_3;
    h13 = start(&cfg);

    /* Minimum 1.2: TLS 1.1 refused by the server's alert, 1.2 and 1.3 fine. */
    ck_assert_int_eq(
        raw_tls_connect(cm_net_httpd_https_port(h12), TLS1_1_VERSION, NULL, NULL, &reason), 0);
    ck_assert_int_eq(reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    ck_assert_int_eq(
        raw_tls_connect(cm_net_httpd_https_port(h12), TLS1_2_VERSION, NULL, NULL, &reason),
        TLS1_2_VERSION);
    ck_assert_int_eq(
        raw_tls_connect(cm_net_httpd_https_port(h12), TLS1_3_VERSION, NULL, NULL, &reason),
        TLS1_3_VERSION);
    /* Minimum 1.3: TLS 1.2 refused. */
    ck_assert_int_eq(
        raw_tls_connect(cm_net_httpd_https_port(h13), TLS1_2_VERSION, NULL, NULL, &reason), 0);
    ck_assert_int_eq(reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    ck_assert_int_eq(
        raw_tls_connect(cm_net_httpd_https_port(h13), TLS1_3_VERSION, NULL, NULL, &reason),
        TLS1_3_VERSION);
}
END_TEST

/* ------------------------------------------------------- bad requests */

START_TEST(test_bad_requests)
{
    CmNetHttpdConfig cfg = server_config(TRUE, FALSE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *location = http_url(h, "/sms_mp/.sms_aut?MPLIST");
    g_autofree char *inventory = http_url(h, "/ccm_incoming/inventory");
    g_autofree char *unknown = http_url(h, "/ccm_system/request/nosuchthing");
    g_autofree char *big = g_malloc(300 * 1024);
    const char *bad_sig[] = {"CCM-Signature: sha256 !!!not-base64!!!", NULL};
    const char *bad_alg[] = {"CCM-Signature: md5 AAAA", NULL};
    const char *bad_id[] = {"CCM-ClientID: GUID:not-a-guid", NULL};
    const char *twice[] = {"CCM-Signature: sha256 AAAA", "CCM-Signature: sha256 AAAA", NULL};
    CmNetHttpResponse resp;
    Client c;

    memset(big, ' ', 300 * 1024);
    client_init(&c, h, NULL, NULL);

    /* Over the endpoint's bound (4 KiB for location): 413 with a reason. */
    resp = fetch(&c, "POST", location, NULL, big, 5000, NULL);
    assert_refusal(&resp, 413, "too-large");
    cm_net_http_response_clear(&resp);
    /* Over every bound: evhttp's own 413, and the connection closed. */
    resp = fetch(&c, "POST", inventory, NULL, big, 300 * 1024, NULL);
    ck_assert_int_eq(resp.status, 413);
    cm_net_http_response_clear(&resp);

    resp = fetch(&c, "POST", inventory, NULL, "{}", 2, bad_sig);
    assert_refusal(&resp, 400, "bad-request");
    cm_net_http_response_clear(&resp);
    resp = fetch(&c, "POST", inventory, NULL, "{}", 2, bad_alg);
    assert_refusal(&resp, 400, "bad-request");
    cm_net_http_response_clear(&resp);
    resp = fetch(&c, "POST", inventory, NULL, "{}", 2, bad_id);
    assert_refusal(&resp, 400, "bad-request");
    cm_net_http_response_clear(&resp);
    resp = fetch(&c, "POST", inventory, NULL, "{}", 2, twice);
    assert_refusal(&resp, 400, "bad-request");
    cm_net_http_response_clear(&resp);

    resp = fetch(&c, NULL, unknown, NULL, NULL, 0, NULL);
    assert_refusal(&resp, 404, "unknown-endpoint");
    cm_net_http_response_clear(&resp);

    /* Headers over max_header_size (8 KiB). */
    {
        g_autofree char *filler = g_strnfill(9000, 'a');
        g_autofree char *line = g_strdup_printf("X-Filler: %s", filler);
        const char *big_header[] = {line, NULL};
        resp = fetch(&c, NULL, location, NULL, NULL, 0, big_header);
        ck_assert_msg(resp.status == 413 || resp.status == 400, "status %d", resp.status);
        cm_net_http_response_clear(&resp);
    }

    /* Methods other than GET and POST are not served. */
    resp = fetch(&c, "DELETE", location, NULL, NULL, 0, NULL);
    ck_assert_int_ge(resp.status, 400);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

START_TEST(test_retry_after)
{
    CmNetHttpdConfig cfg = server_config(TRUE, FALSE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *url = http_url(h, "/ccm_incoming/status");
    CmNetHttpResponse resp;
    CmResponse cm = {0};
    GError *err = NULL;
    Client c;

    client_init(&c, h, NULL, NULL);
    resp = fetch(&c, NULL, url, NULL, "{}", 2, NULL);
    assert_refusal(&resp, 503, "busy");
    ck_assert_str_eq(cm_net_http_response_header(&resp, "retry-after"), "7");
    ck_assert_int_eq(resp.retry_after, 7 * CM_USEC_PER_SEC);
    ck_assert(cm_net_http_response_to_cm(&resp, &cm, &err));
    g_assert_no_error(err);
    ck_assert_int_eq(cm.status, 503);
    ck_assert_int_eq(cm.reason, CM_REASON_BUSY);
    ck_assert_str_eq(cm.message, "queue full");
    ck_assert_int_eq(cm.retry_after, 7 * CM_USEC_PER_SEC);
    cm_response_clear(&cm);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

START_TEST(test_client_errors)
{
    CmNetHttpdConfig cfg = server_config(TRUE, FALSE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *hang = http_url(h, "/sms_mp/.sms_aut?CLIENTPACKAGE");
    CmNetHttpResponse resp;
    CmResponse cm = {0};
    GError *err = NULL;
    gint64 t0;
    Client c;

    client_init(&c, h, NULL, NULL);
    /* A server that never answers: the request's timeout. */
    c.cfg.timeout_ms = 300;
    t0 = g_get_monotonic_time();
    resp = fetch(&c, NULL, hang, NULL, "{}", 2, NULL);
    ck_assert(g_error_matches(resp.error, CM_NET_ERROR, CM_NET_ERROR_TIMEOUT));
    ck_assert(g_get_monotonic_time() - t0 < 3 * CM_USEC_PER_SEC);
    ck_assert(!cm_net_http_response_to_cm(&resp, &cm, &err));
    ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_TIMEOUT));
    g_clear_error(&err);
    cm_net_http_response_clear(&resp);
    /* Nobody listening. */
    resp = fetch(&c, NULL, "http://127.0.0.1:1/sms_mp/.sms_aut?MPLIST", NULL, NULL, 0, NULL);
    ck_assert(g_error_matches(resp.error, CM_NET_ERROR, CM_NET_ERROR_CONNECT));
    cm_net_http_response_clear(&resp);
    /* A response over the client's bound. */
    c.cfg.timeout_ms = 10000;
    c.cfg.max_response_size = 16;
    g_free(hang);
    hang = http_url(h, "/sms_mp/.sms_aut?MPLIST");
    resp = fetch(&c, NULL, hang, NULL, NULL, 0, NULL);
    ck_assert(g_error_matches(resp.error, CM_NET_ERROR, CM_NET_ERROR_TOO_LARGE));
    cm_net_http_response_clear(&resp);
    /* Requests that cannot be made. */
    {
        const char *injected[] = {"X-A: b\r\nX-Evil: 1", NULL};
        CmNetHttpRequest req = {0};
        req.url = hang;
        req.headers = injected;
        ck_assert(!cm_net_http_fetch(&c.cfg, &req, &resp, &err));
        ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_CONFIG));
        g_clear_error(&err);
    }
    client_clear(&c);
}
END_TEST

/* ------------------------------------------------------------ timeouts */

static int
tcp_connect(guint16 port)
{
    struct sockaddr_in sa = {0};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void
send_all(int fd, const char *s)
{
    size_t len = strlen(s);
    ck_assert_int_eq(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Seconds until the server closes fd (reading and dropping what comes). */
static double
seconds_until_closed(int fd)
{
    gint64 t0 = g_get_monotonic_time();
    char buf[512];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", g_strerror(errno));
    return (double)(g_get_monotonic_time() - t0) / 1e6;
}

/* Reads one response with a Content-Length body; returns its status. */
static int
read_response(int fd)
{
    GString *in = g_string_new(NULL);
    char buf[1024];
    const char *end, *cl;
    size_t want;
    int status;

    while ((end = strstr(in->str, "\r\n\r\n")) == NULL) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        ck_assert_msg(n > 0, "connection closed before the response");
        g_string_append_len(in, buf, n);
    }
    ck_assert(sscanf(in->str, "HTTP/1.1 %d", &status) == 1);
    cl = strstr(in->str, "Content-Length: ");
    ck_assert_ptr_nonnull(cl);
    want = (size_t)(end + 4 - in->str) + strtoul(cl + 16, NULL, 10);
    while (in->len < want) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        ck_assert(n > 0);
        g_string_append_len(in, buf, n);
    }
    g_string_free(in, TRUE);
    return status;
}

START_TEST(test_slow_client)
{
    CmNetHttpdConfig cfg = server_config(TRUE, TRUE);
    g_autoptr(CmNetHttpd) h = NULL;
    const char *request = "GET /sms_mp/.sms_aut?MPLIST HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    double t;
    int fd;

    cfg.read_timeout_ms = 1000;
    cfg.idle_timeout_ms = 2500;
    h = start(&cfg);

    /* Half a request line, then nothing: closed by the read timeout. */
    fd = tcp_connect(cm_net_httpd_http_port(h));
    send_all(fd, "GET /sms_mp/.sms_aut?MPL");
    t = seconds_until_closed(fd);
    close(fd);
    ck_assert_msg(t > 0.8 && t < 2.2, "closed after %.2f s", t);

    /* The headers, a byte every half second: still bounded per gap... */
    fd = tcp_connect(cm_net_httpd_http_port(h));
    send_all(fd, "GET /sms_mp/.sms_aut?MPLIST HTTP/1.1\r\n");
    g_usleep(500 * 1000);
    send_all(fd, "Host: 127.0.0.1\r\n");
    t = seconds_until_closed(fd);
    close(fd);
    ck_assert_msg(t > 0.8 && t < 2.2, "closed after %.2f s", t);

    /* A TLS client that never says hello. */
    fd = tcp_connect(cm_net_httpd_https_port(h));
    t = seconds_until_closed(fd);
    close(fd);
    ck_assert_msg(t > 0.8 && t < 2.2, "closed after %.2f s", t);

    /* Keep-alive: an idle wait longer than the read timeout is fine (the
     * idle timeout applies), one longer than the idle timeout is not. */
    fd = tcp_connect(cm_net_httpd_http_port(h));
    send_all(fd, request);
    ck_assert_int_eq(read_response(fd), 200);
    g_usleep(1500 * 1000);
    send_all(fd, request);
    ck_assert_int_eq(read_response(fd), 200);
    t = seconds_until_closed(fd);
    close(fd);
    ck_assert_msg(t > 2.1 && t < 4.0, "idle connection closed after %.2f s", t);
}
END_TEST

/* -------------------------------------------- async replies, connection data */

typedef struct {
    int done;
    int ok;
} Counts;

static void
count_done(CmNetHttpResponse *resp, void *data)
{
    Counts *counts = data;
    counts->done++;
    if (resp->status == 200)
        counts->ok++;
}

START_TEST(test_async)
{
    CmNetHttpdConfig cfg = server_config(TRUE, TRUE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *later = https_url(h, "/ccm_system/request/policybody");
    g_autofree char *location = https_url(h, "/sms_mp/.sms_aut?MPLIST");
    struct event_base *base = cm_net_event_base_new();
    CmNetHttpc *hc;
    CmNetHttpRequest req = {0};
    CmNetHttpResponse resp;
    Counts counts = {0};
    GError *err = NULL;
    json_t *o;
    Client c;

    client_init(&c, h, NULL, NULL);
    /* Answered from another thread. */
    resp = fetch(&c, NULL, later, NULL, "{}", 2, NULL);
    ck_assert_int_eq(resp.status, 200);
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "answered"), "later");
    json_decref(o);
    cm_net_http_response_clear(&resp);

    /* Fifty requests in flight on one loop, over at most four connections. */
    c.cfg.max_host_connections = 4;
    hc = cm_net_httpc_new(base, &c.cfg, &err);
    cm_assert_no_error(err);
    for (int i = 0; i < 50; i++) {
        req.url = i % 5 == 0 ? later : location;
        req.body = "{}";
        req.body_len = 2;
        ck_assert(cm_net_httpc_send(hc, &req, count_done, &counts, &err));
    }
    ck_assert_uint_eq(cm_net_httpc_in_flight(hc), 50);
    while (counts.done < 50)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(counts.ok, 50);
    ck_assert_uint_eq(cm_net_httpc_in_flight(hc), 0);

    /* Freeing the client cancels what is in flight, with a callback: the
     * four in libcurl's hands and the six still waiting for a connection. */
    for (int i = 0; i < 10; i++)
        ck_assert(cm_net_httpc_send(hc, &req, count_done, &counts, &err));
    ck_assert_uint_eq(cm_net_httpc_in_flight(hc), 10);
    cm_net_httpc_free(hc);
    ck_assert_int_eq(counts.done, 60);
    ck_assert_int_eq(counts.ok, 50);
    event_base_free(base);
    client_clear(&c);
}
END_TEST

/* A request started from the completion of the previous one, as an agent
 * does (one request in flight, the next decided by the answer): every link
 * of the chain completes, over plain HTTP and over TLS. */
typedef struct {
    CmNetHttpc *hc;
    const char *url;
    int left;
    int ok;
} Chain;

static void
chain_done(CmNetHttpResponse *resp, void *data)
{
    Chain *ch = data;
    CmNetHttpRequest req = {.url = ch->url};

    ch->ok += resp->status == 200;
    if (--ch->left > 0)
        ck_assert(cm_net_httpc_send(ch->hc, &req, chain_done, ch, NULL));
}

START_TEST(test_chained_requests)
{
    CmNetHttpdConfig cfg = server_config(TRUE, TRUE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *plain = http_url(h, "/sms_mp/.sms_aut?MPLIST");
    g_autofree char *tls = https_url(h, "/sms_mp/.sms_aut?MPLIST");
    struct event_base *base = cm_net_event_base_new();
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    GError *err = NULL;
    Client c;

    client_init(&c, h, NULL, NULL);
    for (int round = 0; round < 2; round++) {
        Chain ch = {.url = round == 0 ? plain : tls, .left = 5};
        CmNetHttpRequest req = {.url = ch.url};
        ch.hc = cm_net_httpc_new(base, &c.cfg, &err);
        cm_assert_no_error(err);
        ck_assert(cm_net_httpc_send(ch.hc, &req, chain_done, &ch, &err));
        while (ch.left > 0 && g_get_monotonic_time() < deadline)
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(1000);
        ck_assert_msg(ch.left == 0, "chain stalled with %d requests left", ch.left);
        ck_assert_int_eq(ch.ok, 5);
        cm_net_httpc_free(ch.hc);
    }
    event_base_free(base);
    client_clear(&c);
}
END_TEST

START_TEST(test_conn_data)
{
    CmNetHttpdConfig cfg = server_config(TRUE, FALSE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *url = http_url(h, "/bgb/notify");
    CmNetHttpRequest req = {0};
    CmNetHttpResponse resp;
    GError *err = NULL;
    CmNetHttpc *hc;
    gint64 deadline;
    json_t *o;
    Client c;

    client_init(&c, h, NULL, NULL);
    hc = cm_net_httpc_new(NULL, &c.cfg, &err);
    cm_assert_no_error(err);
    req.url = url;
    req.body = "{}";
    req.body_len = 2;
    /* Two requests on one keep-alive connection share its data. */
    ck_assert(cm_net_httpc_fetch(hc, &req, &resp, &err));
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "channel"), "new");
    json_decref(o);
    cm_net_http_response_clear(&resp);
    ck_assert(cm_net_httpc_fetch(hc, &req, &resp, &err));
    o = body_json(&resp);
    ck_assert_str_eq(jstr(o, "channel"), "open");
    json_decref(o);
    cm_net_http_response_clear(&resp);
    ck_assert_int_eq(g_atomic_int_get(&conn_data_freed), 0);

    /* The client goes, its connection closes, the data is released. */
    cm_net_httpc_free(hc);
    deadline = g_get_monotonic_time() + 3 * CM_USEC_PER_SEC;
    while (g_atomic_int_get(&conn_data_freed) == 0 && g_get_monotonic_time() < deadline)
        g_usleep(10 * 1000);
    ck_assert_int_eq(g_atomic_int_get(&conn_data_freed), 1);
    client_clear(&c);
}
END_TEST

START_TEST(test_shutdown)
{
    CmNetHttpdConfig cfg = server_config(TRUE, TRUE);
    CmNetHttpd *h = start(&cfg);
    g_autofree char *hang = https_url(h, "/sms_mp/.sms_aut?CLIENTPACKAGE");
    g_autofree char *notify = https_url(h, "/bgb/notify");
    struct event_base *base = cm_net_event_base_new();
    CmNetHttpRequest req = {0};
    CmNetHttpResponse resp;
    Counts counts = {0};
    GError *err = NULL;
    CmNetHttpc *hc, *keep;
    gint64 deadline;
    Client c;
    int fd;

    /* At free: a keep-alive connection with data attached, a half-sent
     * request, and a call the handler never answers. */
    client_init(&c, h, NULL, NULL);
    keep = cm_net_httpc_new(NULL, &c.cfg, &err);
    cm_assert_no_error(err);
    req.url = notify;
    ck_assert(cm_net_httpc_fetch(keep, &req, &resp, &err));
    ck_assert_int_eq(resp.status, 200);
    cm_net_http_response_clear(&resp);
    fd = tcp_connect(cm_net_httpd_http_port(h));
    send_all(fd, "POST /ccm_incoming/state HTTP/1.1\r\nContent-Length: 10\r\n\r\n{");
    hc = cm_net_httpc_new(base, &c.cfg, &err);
    cm_assert_no_error(err);
    req.url = hang;
    ck_assert(cm_net_httpc_send(hc, &req, count_done, &counts, &err));
    deadline = g_get_monotonic_time() + 5 * CM_USEC_PER_SEC;
    while (g_atomic_int_get(&calls_kept) == 0 && g_get_monotonic_time() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(g_atomic_int_get(&calls_kept), 1);

    cm_net_httpd_stop(h);
    cm_net_httpd_stop(h);
    cm_net_httpd_free(h);
    ck_assert_int_eq(g_atomic_int_get(&conn_data_freed), 1);
    /* The waiting client learns that the connection went. */
    while (counts.done == 0)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(counts.ok, 0);
    ck_assert_int_eq(seconds_until_closed(fd) < 1.0, TRUE);
    close(fd);
    cm_net_httpc_free(hc);
    cm_net_httpc_free(keep);
    event_base_free(base);
    client_clear(&c);
}
END_TEST

static gpointer
send_term(gpointer data)
{
    (void)data;
    g_usleep(200 * 1000);
    kill(getpid(), SIGTERM);
    return NULL;
}

START_TEST(test_wait_for_signal)
{
    GThread *t = g_thread_new("term", send_term, NULL);

    ck_assert_int_eq(cm_net_wait_for_signal(), SIGTERM);
    g_thread_join(t);
}
END_TEST

/* ------------------------------------------------------------- metrics */

START_TEST(test_metrics_route)
{
    CmNetHttpdConfig cfg = server_config(TRUE, FALSE);
    g_autoptr(CmNetMetrics) metrics = cm_net_metrics_new();
    g_autoptr(CmNetHttpd) h = NULL;
    g_autofree char *location = NULL;
    g_autofree char *murl = NULL;
    g_autofree char *hurl = NULL;
    g_autofree char *text = NULL;
    CmNetHttpResponse resp;
    GError *err = NULL;
    Client c;

    cfg.metrics = metrics;
    h = cm_net_httpd_new(&cfg, &err);
    cm_assert_no_error(err);
    ck_assert(cm_net_httpd_add_route(h, "/metrics", cm_net_metrics_route, metrics, &err));
    ck_assert(cm_net_httpd_add_route(h, "/health", health_route, NULL, &err));
    /* Endpoint paths and repeats are refused. */
    ck_assert(!cm_net_httpd_add_route(h, "/health", health_route, NULL, &err));
    g_clear_error(&err);
    ck_assert(!cm_net_httpd_add_route(h, "/bgb/notify", health_route, NULL, &err));
    g_clear_error(&err);
    ck_assert(cm_net_httpd_start(h, &err));

    location = http_url(h, "/sms_mp/.sms_aut?MPLIST");
    murl = http_url(h, "/metrics");
    hurl = http_url(h, "/health");
    client_init(&c, h, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        resp = fetch(&c, NULL, location, NULL, NULL, 0, NULL);
        ck_assert_int_eq(resp.status, 200);
        cm_net_http_response_clear(&resp);
    }
    resp = fetch(&c, NULL, hurl, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(g_bytes_get_size(resp.body), 3);
    cm_net_http_response_clear(&resp);

    resp = fetch(&c, NULL, murl, NULL, NULL, 0, NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(cm_net_http_response_header(&resp, "content-type"),
                     "text/plain; version=0.0.4; charset=utf-8");
    text = g_strndup(g_bytes_get_data(resp.body, NULL), g_bytes_get_size(resp.body));
    ck_assert_msg(strstr(text, "# TYPE cm_http_requests_total counter\n") != NULL, "%s", text);
    ck_assert_msg(
        strstr(text, "cm_http_requests_total{endpoint=\"location\",outcome=\"ok\"} 2\n") != NULL,
        "%s", text);
    ck_assert_msg(strstr(text, "# TYPE cm_http_request_duration_seconds histogram\n") != NULL, "%s",
                  text);
    ck_assert_msg(strstr(text, "cm_http_request_duration_seconds_bucket{endpoint=\"location\","
                               "le=\"+Inf\"} 2\n") != NULL,
                  "%s", text);
    ck_assert_msg(
        strstr(text, "cm_http_request_duration_seconds_count{endpoint=\"location\"} 2\n") != NULL,
        "%s", text);
    ck_assert_msg(strstr(text, "cm_http_connections_total{listener=\"http\"}") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "cm_http_pending_calls 0\n") != NULL, "%s", text);
    cm_net_http_response_clear(&resp);
    client_clear(&c);
}
END_TEST

START_TEST(test_metrics_registry)
{
    g_autoptr(CmNetMetrics) m = cm_net_metrics_new();
    static const double bounds[] = {0.1, 1};
    const char *a[] = {"endpoint", "register", "outcome", "ok", NULL};
    const char *odd[] = {"path", "a\"b\\c\nd", NULL};
    CmNetCounter *c1, *c2;
    CmNetGauge *g;
    CmNetHistogram *hist;
    g_autofree char *text = NULL;
    const char *want = "# HELP cm_depth Queue depth\n"
                       "# TYPE cm_depth gauge\n"
                       "cm_depth -3\n"
                       "# HELP cm_latency_seconds Latency\n"
                       "# TYPE cm_latency_seconds histogram\n"
                       "cm_latency_seconds_bucket{le=\"0.1\"} 1\n"
                       "cm_latency_seconds_bucket{le=\"1\"} 2\n"
                       "cm_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                       "cm_latency_seconds_sum 5.55\n"
                       "cm_latency_seconds_count 3\n"
                       "# HELP cm_requests_total Requests with \\\\ and \\n\n"
                       "# TYPE cm_requests_total counter\n"
                       "cm_requests_total{endpoint=\"register\",outcome=\"ok\"} 3\n"
                       "cm_requests_total{path=\"a\\\"b\\\\c\\nd\"} 1\n";

    c1 = cm_net_metrics_counter(m, "cm_requests_total", "Requests with \\ and \n", a);
    c2 = cm_net_metrics_counter(m, "cm_requests_total", "ignored", a);
    ck_assert_ptr_eq(c1, c2);
    cm_net_counter_add(c1, 2);
    cm_net_counter_inc(c2);
    cm_net_counter_inc(cm_net_metrics_counter(m, "cm_requests_total", NULL, odd));
    ck_assert_uint_eq(cm_net_counter_get(c1), 3);
    g = cm_net_metrics_gauge(m, "cm_depth", "Queue depth", NULL);
    cm_net_gauge_set(g, 2);
    cm_net_gauge_add(g, -5);
    ck_assert_int_eq(cm_net_gauge_get(g), -3);
    hist = cm_net_metrics_histogram(m, "cm_latency_seconds", "Latency", NULL, bounds, 2);
    cm_net_histogram_observe(hist, 0.05);
    cm_net_histogram_observe(hist, 0.5);
    cm_net_histogram_observe(hist, 5);
    ck_assert_uint_eq(cm_net_histogram_count(hist), 3);
    text = cm_net_metrics_render(m);
    ck_assert_str_eq(text, want);
}
END_TEST

static gpointer
hammer(gpointer data)
{
    CmNetMetrics *m = data;
    const char *labels[] = {"worker", "any", NULL};

    for (int i = 0; i < 10000; i++) {
        cm_net_counter_inc(cm_net_metrics_counter(m, "cm_hits_total", "Hits", labels));
        cm_net_histogram_observe(cm_net_metrics_histogram(m, "cm_t", "T", NULL, NULL, 0), 0.001);
    }
    return NULL;
}

START_TEST(test_metrics_threads)
{
    g_autoptr(CmNetMetrics) m = cm_net_metrics_new();
    const char *labels[] = {"worker", "any", NULL};
    GThread *threads[4];

    for (int i = 0; i < 4; i++)
        threads[i] = g_thread_new("hammer", hammer, m);
    for (int i = 0; i < 4; i++)
        g_thread_join(threads[i]);
    ck_assert_uint_eq(cm_net_counter_get(cm_net_metrics_counter(m, "cm_hits_total", "", labels)),
                      40000);
    ck_assert_uint_eq(
        cm_net_histogram_count(cm_net_metrics_histogram(m, "cm_t", "", NULL, NULL, 0)), 40000);
}
END_TEST

/* ------------------------------------------------------- configuration */

START_TEST(test_config)
{
    const char *text = "[http]\n"
                       "address = 127.0.0.1\n"
                       "https_port = 0\n"
                       "tls_min = 1.3\n"
                       "client_cert = required\n"
                       "read_timeout = 250ms\n"
                       "idle_timeout = 2m\n"
                       "max_body_size = 64KiB\n"
                       "workers = 3\n"
                       "[site]\n"
                       "db = site.db\n"
                       "code = PS1\n"
                       "mps = mp1 ; mp2\n"
                       "enabled = yes\n"
                       "bad_int = 12x\n"
                       "bad_time = ten\n"
                       "mode = sideways\n"
                       "typo_key = 1\n";
    const char *const site_keys[] = {"db",      "code",     "mps",  "enabled",
                                     "bad_int", "bad_time", "mode", NULL};
    const char *const modes[] = {"manual", "trusted-domains", "all", NULL};
    g_autoptr(CmNetConfig) cfg = NULL;
    CmNetHttpdConfig hc = {0};
    g_autofree char *code = NULL;
    g_autofree char *db = NULL;
    g_auto(GStrv) mps = NULL;
    GError *err = NULL;
    gboolean b;
    gint64 n;
    CmTime t;
    int choice;

    cfg = cm_net_config_new_from_data(text, -1, "test.conf", &err);
    cm_assert_no_error(err);
    ck_assert(cm_net_config_httpd(cfg, "http", &hc, &err));
    cm_assert_no_error(err);
    ck_assert_str_eq(hc.address, "127.0.0.1");
    ck_assert(!hc.http && hc.https);
    ck_assert_int_eq(hc.tls_min, CM_NET_TLS_1_3);
    ck_assert_int_eq(hc.client_cert, CM_NET_CLIENT_CERT_REQUIRED);
    ck_assert_uint_eq(hc.read_timeout_ms, 250);
    ck_assert_uint_eq(hc.idle_timeout_ms, 120000);
    ck_assert_uint_eq(hc.max_body_size, 65536);
    ck_assert_uint_eq(hc.max_header_size, 8192);
    ck_assert_uint_eq(hc.workers, 3);
    ck_assert(cm_net_config_check_keys(cfg, "http", cm_net_config_httpd_keys, &err));

    ck_assert(cm_net_config_string(cfg, "site", "code", NULL, &code, &err));
    ck_assert_str_eq(code, "PS1");
    ck_assert(cm_net_config_path(cfg, "site", "db", NULL, &db, &err));
    ck_assert(g_path_is_absolute(db) && g_str_has_suffix(db, "/site.db"));
    ck_assert(cm_net_config_strings(cfg, "site", "mps", &mps, &err));
    ck_assert_uint_eq(g_strv_length(mps), 2);
    ck_assert_str_eq(mps[1], "mp2");
    ck_assert(cm_net_config_bool(cfg, "site", "enabled", FALSE, &b, &err) && b);
    ck_assert(cm_net_config_int(cfg, "site", "absent", 42, 0, 100, &n, &err) && n == 42);

    /* Errors name the file, the group, the key and what was expected. */
    ck_assert(!cm_net_config_int(cfg, "site", "bad_int", 0, 0, 100, &n, &err));
    ck_assert_str_eq(
        err->message,
        "test.conf: [site] bad_int: expected a whole number from 0 to 100, got \"12x\"");
    g_clear_error(&err);
    ck_assert(!cm_net_config_duration(cfg, "site", "bad_time", 0, 0, CM_USEC_PER_HOUR, &t, &err));
    ck_assert(g_str_has_prefix(err->message, "test.conf: [site] bad_time: expected a duration"));
    g_clear_error(&err);
    ck_assert(!cm_net_config_choice(cfg, "site", "mode", modes, 0, &choice, &err));
    ck_assert_str_eq(err->message, "test.conf: [site] mode: expected one of manual, "
                                   "trusted-domains, all, got \"sideways\"");
    g_clear_error(&err);
    ck_assert(!cm_net_config_string(cfg, "site", "missing", NULL, &code, &err));
    ck_assert(g_str_has_prefix(err->message, "test.conf: [site] missing: required"));
    g_clear_error(&err);
    ck_assert(!cm_net_config_check_keys(cfg, "site", site_keys, &err));
    ck_assert(g_str_has_prefix(err->message, "test.conf: [site] typo_key: unknown key"));
    g_clear_error(&err);
    ck_assert(!cm_net_config_check_groups(cfg, (const char *const[]){"http", NULL}, &err));
    ck_assert(g_str_has_prefix(err->message, "test.conf: unknown group [site]"));
    g_clear_error(&err);

    /* A syntax error and a missing file. */
    ck_assert_ptr_null(cm_net_config_new_from_data("[x\n", -1, "broken.conf", &err));
    ck_assert(g_str_has_prefix(err->message, "broken.conf: "));
    g_clear_error(&err);
    ck_assert_ptr_null(cm_net_config_load("/nonexistent/cmlab.conf", &err));
    ck_assert(g_str_has_prefix(err->message, "/nonexistent/cmlab.conf: "));
    g_clear_error(&err);

    /* Non-loopback addresses are refused unless allowed. */
    hc.address = "192.0.2.1";
    hc.handler = echo_handler;
    ck_assert_ptr_null(cm_net_httpd_new(&hc, &err));
    ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_CONFIG));
    g_clear_error(&err);
    {
        guint64 got = 0;
        ck_assert(cm_net_raise_fd_limit(256, &got, &err));
        ck_assert_uint_ge(got, 256);
        ck_assert(!cm_net_raise_fd_limit(G_MAXUINT64, &got, &err));
        g_clear_error(&err);
    }
    ck_assert_int_eq(cm_net_wall_clock()->now(NULL) / CM_USEC_PER_SEC,
                     g_get_real_time() / CM_USEC_PER_SEC);
}
END_TEST

/* --------------------------------------------------------- stock tools */

static int
run_shell(const char *cmd, char **out)
{
    const char *argv[] = {"sh", "-c", cmd, NULL};
    return cm_test_run(argv, out, NULL);
}

START_TEST(test_stock_tools)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autoptr(CmNetHttpd) hm = NULL;
    g_autofree char *cmd = NULL;
    g_autofree char *out = NULL;
    g_autofree char *out2 = NULL;
    g_autofree char *out3 = NULL;
    int rc;

    if (run_shell("command -v curl >/dev/null", NULL) != 0) {
        g_printerr("curl not installed: skipping its part\n");
    } else {
        cmd = g_strdup_printf("curl --noproxy '*' -sk --max-time 5 -o /dev/null -w '%%{http_code}' "
                              "'https://127.0.0.1:%u/sms_mp/.sms_aut?MPLIST'",
                              cm_net_httpd_https_port(h));
        rc = run_shell(cmd, &out);
        ck_assert_msg(rc == 0, "curl exited %d", rc);
        ck_assert_str_eq(out, "200");
        g_free(cmd);
        cmd = g_strdup_printf("curl --noproxy '*' -sk --max-time 5 -w '%%{http_code}' "
                              "'https://127.0.0.1:%u/ccm_system/request/nothing'",
                              cm_net_httpd_https_port(h));
        rc = run_shell(cmd, &out2);
        ck_assert_msg(rc == 0 && g_str_has_suffix(out2, "404") &&
                          strstr(out2, "\"reason\":\"unknown-endpoint\"") != NULL,
                      "curl: %s", out2);
    }

    /* TLS 1.1 (allowed on the client by security level 0) is refused. */
    g_free(cmd);
    cmd = g_strdup_printf("%s s_client -connect 127.0.0.1:%u -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' "
                          "</dev/null 2>&1",
                          cm_test_openssl(), cm_net_httpd_https_port(h));
    rc = run_shell(cmd, &out3);
    ck_assert_msg(rc != 0, "s_client -tls1_1 succeeded: %s", out3);
    ck_assert_msg(strstr(out3, "alert protocol version") != NULL ||
                      strstr(out3, "unsupported protocol") != NULL,
                  "%s", out3);
    g_clear_pointer(&out3, g_free);

    /* Mutual TLS: the server names the roots it accepts, and the handshake
     * fails without a client certificate. */
    cfg.client_cert = CM_NET_CLIENT_CERT_REQUIRED;
    cfg.client_trust = trust;
    hm = start(&cfg);
    g_free(cmd);
    cmd = g_strdup_printf("%s s_client -connect 127.0.0.1:%u -tls1_2 </dev/null 2>&1",
                          cm_test_openssl(), cm_net_httpd_https_port(hm));
    rc = run_shell(cmd, &out3);
    ck_assert_msg(rc != 0, "s_client without a certificate succeeded: %s", out3);
    ck_assert_msg(strstr(out3, "Acceptable client certificate CA names") != NULL &&
                      strstr(out3, "cmlab test enterprise CA") != NULL,
                  "%s", out3);
}
END_TEST

/* ---------------------------------------------------------- throughput */

/* Not a benchmark (that is wrk against a daemon, docs/benchmarks.md): a
 * rough figure that the loop is not pathologically slow. */
START_TEST(test_throughput)
{
    CmNetHttpdConfig cfg = server_config(FALSE, TRUE);
    g_autoptr(CmNetHttpd) h = start(&cfg);
    g_autofree char *url = https_url(h, "/sms_mp/.sms_aut?MPLIST");
    struct event_base *base = cm_net_event_base_new();
    CmNetHttpRequest req = {0};
    Counts counts = {0};
    GError *err = NULL;
    CmNetHttpc *hc;
    gint64 t0;
    const int n = 2000;
    Client c;

    client_init(&c, h, NULL, NULL);
    c.cfg.max_host_connections = 8;
    hc = cm_net_httpc_new(base, &c.cfg, &err);
    cm_assert_no_error(err);
    req.url = url;
    t0 = g_get_monotonic_time();
    for (int i = 0; i < n; i++)
        ck_assert(cm_net_httpc_send(hc, &req, count_done, &counts, &err));
    while (counts.done < n)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(counts.ok, n);
    g_printerr("test-net: %d HTTPS keep-alive requests over 8 connections in %.2f s: %.0f/s "
               "(client and server in one process)\n",
               n, (double)(g_get_monotonic_time() - t0) / 1e6,
               n / ((double)(g_get_monotonic_time() - t0) / 1e6));
    cm_net_httpc_free(hc);
    event_base_free(base);
    client_clear(&c);
}
END_TEST

static Suite *
net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc;

    tc = tcase_create("server");
    tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_http_roundtrip);
    tcase_add_test(tc, test_https_roundtrip);
    tcase_add_test(tc, test_api_routes);
    tcase_add_test(tc, test_ehttp_transport);
    tcase_add_test(tc, test_mtls_required);
    tcase_add_test(tc, test_mtls_optional);
    tcase_add_test(tc, test_tls_versions);
    tcase_add_test(tc, test_bad_requests);
    tcase_add_test(tc, test_retry_after);
    tcase_add_test(tc, test_client_errors);
    tcase_add_test(tc, test_slow_client);
    tcase_add_test(tc, test_async);
    tcase_add_test(tc, test_chained_requests);
    tcase_add_test(tc, test_conn_data);
    tcase_add_test(tc, test_shutdown);
    tcase_add_test(tc, test_wait_for_signal);
    tcase_add_test(tc, test_metrics_route);
    tcase_add_test(tc, test_stock_tools);
    tcase_add_test(tc, test_throughput);
    suite_add_tcase(s, tc);

    tc = tcase_create("metrics");
    tcase_add_test(tc, test_metrics_registry);
    tcase_add_test(tc, test_metrics_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
    tcase_add_test(tc, test_config);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(net_suite());
}
