/* test-gss.c - SPNEGO/Kerberos acceptance (net/gss.c) and its hook in the
 * HTTP server, without a KDC: the keytab checks, and every way a Negotiate
 * header is refused (malformed: 400, not a token Kerberos accepts: 403)
 * with the peer left as it was.  Tickets from real KDCs, cross-realm
 * trusts, replays and forged tickets are tests/lab/kerberos.sh. */
#include "testutil.h"

#include "cmnet.h"
#include "gss.h"

#include <string.h>

static char *tmp;

static void
be16(GByteArray *b, guint v)
{
    guint8 x[2] = {(guint8)(v >> 8), (guint8)v};
    g_byte_array_append(b, x, 2);
}

static void
be32(GByteArray *b, guint32 v)
{
    guint8 x[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
    g_byte_array_append(b, x, 4);
}

static void
counted(GByteArray *b, const void *data, guint len)
{
    be16(b, len);
    g_byte_array_append(b, data, len);
}

/* An MIT keytab (format 0x0502) with one AES-256 key for
 * HTTP/mp1.corp.example@CORP.EXAMPLE, as kadmin ktadd writes it. */
static char *
write_keytab(void)
{
    g_autoptr(GByteArray) e = g_byte_array_new();
    g_autoptr(GByteArray) f = g_byte_array_new();
    guint8 key[32];
    CmRng rng;
    char *path;

    cm_rng_init_os(&rng);
    cm_rng_bytes(&rng, key, sizeof key);
    be16(e, 2);                     /* components */
    counted(e, "CORP.EXAMPLE", 12); /* realm */
    counted(e, "HTTP", 4);          /* HTTP/mp1.corp.example */
    counted(e, "mp1.corp.example", 16);
    be32(e, 3);                               /* KRB5_NT_SRV_HST */
    be32(e, 1767225600);                      /* timestamp */
    g_byte_array_append(e, (guint8[]){2}, 1); /* kvno */
    be16(e, 18);                              /* aes256-cts-hmac-sha1-96 */
    counted(e, key, sizeof key);
    be32(e, 2); /* kvno */
    be16(f, 0x0502);
    be32(f, e->len);
    g_byte_array_append(f, e->data, e->len);
    path = cm_test_write(tmp, "http.keytab", f->data, f->len);
    memset(key, 0, sizeof key);
    return path;
}

static void
setup(void)
{
    /* Nothing from /etc: acceptance needs no profile. */
    g_setenv("KRB5_CONFIG", "/dev/null", TRUE);
    g_setenv("KRB5RCACHETYPE", "none", TRUE);
    tmp = cm_test_tmpdir();
}

static void
teardown(void)
{
    cm_test_rmdir(tmp);
    g_free(tmp);
}

static gboolean
auth_handler(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    json_t *o = json_pack("{s:s, s:s}", "auth", cm_auth_name(req->peer.kind), "principal",
                          req->peer.principal);
    (void)call;
    (void)user_data;
    cm_response_ok(resp, o);
    json_decref(o);
    return TRUE;
}

/* REQ: NET-03 */
START_TEST(test_keytab)
{
    g_autofree char *missing = g_build_filename(tmp, "none.keytab", NULL);
    g_autofree char *kt = write_keytab();
    CmNetHttpdConfig cfg = {.http = TRUE, .workers = 1, .keytab = missing, .handler = auth_handler};
    GError *err = NULL;
    CmNetGss *g;

    ck_assert_ptr_null(cm_net_gss_new(missing, &err));
    ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "none.keytab"));
    g_clear_error(&err);
    ck_assert_ptr_null(cm_net_gss_new(NULL, &err));
    ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_CONFIG));
    g_clear_error(&err);

    g = cm_net_gss_new(kt, &err);
    cm_assert_no_error(err);
    ck_assert_ptr_nonnull(g);
    cm_net_gss_free(g);

    /* A server configured with a keytab it cannot use does not start. */
    ck_assert_ptr_null(cm_net_httpd_new(&cfg, &err));
    ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_CONFIG));
    g_clear_error(&err);
}
END_TEST

/* REQ: NET-03 */
START_TEST(test_refusals)
{
    g_autofree char *kt = write_keytab();
    GError *err = NULL;
    CmNetGss *g = cm_net_gss_new(kt, &err);
    g_autofree char *big = NULL;
    guint8 junk[600];
    CmRng rng;
    const char *malformed[] = {
        "Negotiate",          "Negotiate ",         "Negotiate !!!!",
        "Negotiate YQ",       "Negotiate YQ==YQ==", "Negotiate Y===",
        "Basic dXNlcjpwdw==", "NegotiateYIIB",      "Negotiate YII B",
    };

    cm_assert_no_error(err);
    for (size_t i = 0; i < G_N_ELEMENTS(malformed); i++) {
        CmPeer peer = {.kind = CM_AUTH_ANONYMOUS};
        char *reply = (char *)"unset";
        ck_assert_msg(!cm_net_gss_accept(g, malformed[i], &peer, &reply, &err), "%s", malformed[i]);
        ck_assert_msg(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_PROTOCOL), "%s: %s",
                      malformed[i], err->message);
        g_clear_error(&err);
        ck_assert_ptr_null(reply);
        ck_assert_int_eq(peer.kind, CM_AUTH_ANONYMOUS);
        ck_assert_str_eq(peer.principal, "");
    }
    /* Over the bound. */
    big = g_strnfill(64 * 1024, 'A');
    {
        g_autofree char *h = g_strconcat("Negotiate ", big, NULL);
        CmPeer peer = {0};
        char *reply = NULL;
        ck_assert(!cm_net_gss_accept(g, h, &peer, &reply, &err));
        ck_assert(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_PROTOCOL));
        g_clear_error(&err);
    }
    /* Well-formed base64 that is no token, and a SPNEGO-looking prefix
     * followed by junk: the Kerberos library refuses both. */
    cm_rng_init_os(&rng);
    cm_rng_bytes(&rng, junk, sizeof junk);
    for (int i = 0; i < 2; i++) {
        g_autofree char *b64 = NULL, *h = NULL;
        CmPeer peer = {0};
        char *reply = NULL;
        if (i == 1)
            memcpy(junk, "\x60\x82\x02\x50\x06\x06\x2b\x06\x01\x05\x05\x02", 12);
        b64 = g_base64_encode(junk, sizeof junk);
        h = g_strconcat("negotiate  ", b64, " ", NULL);
        ck_assert(!cm_net_gss_accept(g, h, &peer, &reply, &err));
        ck_assert_msg(g_error_matches(err, CM_NET_ERROR, CM_NET_ERROR_FAILED), "%s", err->message);
        ck_assert_ptr_nonnull(strstr(err->message, "Kerberos authentication refused"));
        g_clear_error(&err);
        ck_assert_ptr_null(reply);
        ck_assert_int_eq(peer.kind, CM_AUTH_ANONYMOUS);
    }
    cm_net_gss_free(g);
}
END_TEST

static int
fetch(guint16 port, const char *authorization, char **body)
{
    g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/sms_mp/.sms_aut?MPLIST", port);
    g_autofree char *h = authorization ? g_strconcat("Authorization: ", authorization, NULL) : NULL;
    const char *headers[] = {h, NULL};
    CmNetHttpcConfig hc = {.timeout_ms = 5000};
    CmNetHttpRequest req = {.url = url, .headers = h ? headers : NULL};
    CmNetHttpResponse resp = {0};
    GError *err = NULL;
    int status;
    gsize len;
    const char *data;

    ck_assert(cm_net_http_fetch(&hc, &req, &resp, &err));
    cm_assert_no_error(err);
    status = resp.status;
    data = g_bytes_get_data(resp.body, &len);
    *body = g_strndup(data, len);
    cm_net_http_response_clear(&resp);
    return status;
}

/* REQ: NET-03 */
START_TEST(test_httpd_hook)
{
    g_autofree char *kt = write_keytab();
    CmNetHttpdConfig cfg = {.http = TRUE, .workers = 1, .keytab = kt, .handler = auth_handler};
    GError *err = NULL;
    g_autoptr(CmNetHttpd) h = cm_net_httpd_new(&cfg, &err);
    guint8 junk[300];
    g_autofree char *garbage = NULL, *b64 = NULL;
    char *body = NULL;
    guint16 port;
    CmRng rng;

    cm_assert_no_error(err);
    ck_assert(cm_net_httpd_start(h, &err));
    port = cm_net_httpd_http_port(h);
    cm_rng_init_os(&rng);
    cm_rng_bytes(&rng, junk, sizeof junk);
    b64 = g_base64_encode(junk, sizeof junk);
    garbage = g_strconcat("Negotiate ", b64, NULL);

    /* No Authorization: anonymous, the MP and the site decide. */
    ck_assert_int_eq(fetch(port, NULL, &body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"anonymous\""));
    g_free(body);
    /* Other schemes are the handler's (a DP's Bearer token). */
    ck_assert_int_eq(fetch(port, "Bearer abc.def.ghi", &body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"anonymous\""));
    g_free(body);
    ck_assert_int_eq(fetch(port, "Negotiate %%%", &body), 400);
    ck_assert_ptr_nonnull(strstr(body, "bad-request"));
    g_free(body);
    ck_assert_int_eq(fetch(port, garbage, &body), 403);
    ck_assert_ptr_nonnull(strstr(body, "\"untrusted\""));
    ck_assert_ptr_nonnull(strstr(body, "Kerberos authentication refused"));
    g_free(body);
    cm_net_httpd_stop(h);
}
END_TEST

static Suite *
gss_suite(void)
{
    Suite *s = suite_create("gss");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_keytab);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_httpd_hook);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(gss_suite());
}
