/* test-cmg.c - the cloud management gateway and its connection point. */
#include <string.h>

#include "roles.h"
#include "cmcmg.h"

#define NOW     CM_TEST_NOW
#define SEC     CM_USEC_PER_SEC
#define MINUTE  CM_USEC_PER_MIN
#define DAY     CM_USEC_PER_DAY
#define ROLE_ID G_GUINT64_CONSTANT(72057594037927937)
#define CMG     "cmg.contoso.com"
#define ENTRA_ISS "https://login.example/11111111-2222-3333-4444-555555555555/v2.0"
#define ENTRA_AUD "api://cmg-server-app"

/* Keys and certificates every test shares, made once. */
static struct {
    CmKey *site_key, *other_key, *ca_key, *ca_b_key, *leaf_key, *entra_key;
    CmCert *site_cert;           /* PS1 site server signing certificate */
    CmCert *root, *root_b;       /* Contoso and Fabrikam roots */
    CmCert *client, *client_b;   /* PKI clients under each */
    CmCert *revoked, *expired;   /* under Contoso */
    CmCert *cmg_cert;            /* the CMG's server certificate */
    CmCert *cp_cert[2];          /* the connection points' certificates */
    CmCrl *crl;                  /* Contoso's, listing "revoked" */
    char cp_id[2][CM_CMG_CONNECTION_ID_LEN + 1];
} F;

static CmCert *
issue(CmCertProfile profile, const char *cn, guint64 serial, CmTime nb, CmTime na, CmKey *subject,
      CmKey *issuer_key, CmCert *issuer)
{
    GError *e = NULL;
    CmCertSpec spec = {.profile = profile,
                       .subject_cn = cn,
                       .serial = serial,
                       .not_before = nb,
                       .not_after = na,
                       .subject_key = subject,
                       .issuer_key = issuer_key,
                       .issuer_cert = issuer,
                       .crl_url = "http://crl.contoso.example/root.crl"};
    CmCert *c = cm_cert_issue(&spec, &e);

    if (c == NULL)
        g_error("issuing %s: %s", cn, e->message);
    return c;
}

static CmKey *
key(void)
{
    GError *e = NULL;
    CmKey *k = cm_key_generate(CM_KEY_EC_P256, &e);

    if (k == NULL)
        g_error("key: %s", e->message);
    return k;
}

static void
fixture_make(void)
{
    GError *e = NULL;
    CmRng rng;
    CmCrlEntry entry = {.serial = 11, .revoked_at = NOW - DAY};

    F.site_key = key();
    F.other_key = key();
    F.ca_key = key();
    F.ca_b_key = key();
    F.leaf_key = key();
    F.entra_key = key();
    F.site_cert = issue(CM_CERT_SITE_SIGNING, "PS1 Site Server Signing", 1, NOW - DAY,
                        NOW + 3650 * DAY, F.site_key, NULL, NULL);
    F.root = issue(CM_CERT_ROOT_CA, "Contoso Root", 1, NOW - DAY, NOW + 3650 * DAY, F.ca_key,
                   NULL, NULL);
    F.root_b = issue(CM_CERT_ROOT_CA, "Fabrikam Root", 1, NOW - DAY, NOW + 3650 * DAY,
                     F.ca_b_key, NULL, NULL);
    F.client = issue(CM_CERT_CLIENT_AUTH, "pc1.contoso.example", 10, NOW - DAY, NOW + 365 * DAY,
                     F.leaf_key, F.ca_key, F.root);
    F.client_b = issue(CM_CERT_CLIENT_AUTH, "pc9.fabrikam.example", 10, NOW - DAY,
                       NOW + 365 * DAY, F.leaf_key, F.ca_b_key, F.root_b);
    F.revoked = issue(CM_CERT_CLIENT_AUTH, "stolen.contoso.example", 11, NOW - DAY,
                      NOW + 365 * DAY, F.leaf_key, F.ca_key, F.root);
    F.expired = issue(CM_CERT_CLIENT_AUTH, "old.contoso.example", 12, NOW - 400 * DAY,
                      NOW - DAY, F.leaf_key, F.ca_key, F.root);
    F.cmg_cert = issue(CM_CERT_SERVER, CMG, 20, NOW - DAY, NOW + 365 * DAY, F.leaf_key, F.ca_key,
                       F.root);
    F.cp_cert[0] = issue(CM_CERT_CLIENT_AUTH, "cp1.corp.example", 21, NOW - DAY, NOW + 365 * DAY,
                         F.leaf_key, F.ca_key, F.root);
    F.cp_cert[1] = issue(CM_CERT_CLIENT_AUTH, "cp2.corp.example", 22, NOW - DAY, NOW + 365 * DAY,
                         F.leaf_key, F.ca_key, F.root);
    F.crl = cm_crl_issue(F.root, F.ca_key, &entry, 1, 1, NOW - DAY, NOW + 7 * DAY, &e);
    if (F.crl == NULL)
        g_error("CRL: %s", e->message);
    cm_rng_init_seeded(&rng, 42, 1);
    cm_cmg_connection_id_new(&rng, F.cp_id[0]);
    cm_cmg_connection_id_new(&rng, F.cp_id[1]);
}

/* ------------------------------------------------------------ helpers */

static CmCmgMappings *
mappings(void)
{
    GError *e = NULL;
    CmCmgMappings *m = cm_cmg_mappings_new(CMG, &e);

    cm_assert_no_error(e);
    ck_assert(cm_cmg_mappings_add_mp(m, "PS1", ROLE_ID, "mp1.corp.example", &e));
    cm_assert_no_error(e);
    return m;
}

static GBytes *
cp_body(int i)
{
    char *s = g_strdup_printf("{\"connection_id\":\"%s\",\"site_code\":\"PS1\"}", F.cp_id[i]);
    return g_bytes_new_take(s, strlen(s));
}

static gboolean
hello(CmCmg *cmg, int i, const CmCert *cert, CmTime now, CmResponse *resp)
{
    g_autoptr(GBytes) b = cp_body(i);

    return cm_cmg_cp_hello(cmg, cert, g_bytes_get_data(b, NULL), g_bytes_get_size(b), now, resp);
}

/* Both connection points say hello again at now (their checks, which a
 * real connection point sends every minute, are not simulated here). */
static void
reconnect_all(CmCmg *cmg, CmTime now)
{
    for (int i = 0; i < 2; i++) {
        CmResponse resp = {0};
        ck_assert(hello(cmg, i, F.cp_cert[i], now, &resp));
        cm_response_clear(&resp);
    }
}

typedef struct {
    gboolean crl_check;
    guint instance;
    gboolean entra;
    CmTlsVersion tls_min;
} GwOpts;

/* A gateway for site PS1 trusting both roots, with the MP's mappings and
 * both connection points registered and connected at NOW. */
static CmCmg *
gateway(const GwOpts *o)
{
    GError *e = NULL;
    const CmCert *roots[] = {F.root, F.root_b};
    CmCmgSite site = {.site_code = "PS1", .signing_cert = F.site_cert};
    CmCmgEntra entra = {.issuer = ENTRA_ISS, .audience = ENTRA_AUD, .tenant = "contoso",
                        .key = F.entra_key};
    CmCmgConfig c = {.name = CMG,
                     .instance = o ? o->instance : 0,
                     .tls_min = o ? o->tls_min : 0,
                     .sites = &site,
                     .n_sites = 1,
                     .roots = roots,
                     .n_roots = 2,
                     .crl_check = o && o->crl_check,
                     .entra = o && o->entra ? &entra : NULL};
    g_autoptr(CmCmgMappings) m = mappings();
    CmCmg *cmg = cm_cmg_new(&c, &e);

    cm_assert_no_error(e);
    cm_cmg_set_mappings(cmg, m);
    for (int i = 0; i < 2; i++) {
        g_autofree char *name = g_strdup_printf("cp%d.corp.example", i + 1);
        CmCmgCpInfo info = {.connection_id = F.cp_id[i], .site_code = "PS1", .name = name,
                            .cert = F.cp_cert[i]};
        CmResponse resp = {0};
        ck_assert(cm_cmg_add_connection_point(cmg, &info, &e));
        cm_assert_no_error(e);
        ck_assert(hello(cmg, i, F.cp_cert[i], NOW, &resp));
        cm_response_clear(&resp);
    }
    return cmg;
}

static char *
path_of(CmCmgAuth auth, CmEndpoint ep, char **query)
{
    char *path = NULL;

    ck_assert(cm_cmg_client_path(auth, ROLE_ID, ep, &path, query));
    return path;
}

/* A request to ep with a PKI certificate (or, when cert is NULL, token). */
static CmCmgAction
ask(CmCmg *cmg, CmEndpoint ep, const CmCert *cert, const char *token, size_t len, CmTime now,
    CmCmgVerdict *v)
{
    g_autofree char *query = NULL;
    g_autofree char *path = path_of(cert ? CM_CMG_AUTH_MUTUAL : CM_CMG_AUTH_SERVER, ep, &query);
    CmCmgRequest req = {.path = path, .query = query, .content_length = len, .tls = CM_TLS_1_2,
                        .client_cert = cert, .token = token};

    return cm_cmg_handle(cmg, &req, now, v);
}

static void
expect(const CmCmgVerdict *v, CmCmgAction action, CmReason reason)
{
    ck_assert_msg(v->action == action && v->resp.reason == reason,
                  "expected action %d %s, got %d %s (%d): %s", action, cm_reason_name(reason),
                  v->action, cm_reason_name(v->resp.reason), v->resp.status,
                  v->resp.message ? v->resp.message : "");
}

static void
expect_refused(const CmCmgVerdict *v, CmReason reason, int status)
{
    expect(v, CM_CMG_REFUSE, reason);
    ck_assert_int_eq(v->resp.status, status);
}

/* ------------------------------------------------ CMG-01: mutual authentication */

/* The gateway accepts a connection point only with the certificate
 * registered for its connection ID.  REQ: CMG-01 */
START_TEST(test_cp_authenticates_to_gateway)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    CmResponse resp = {0};
    g_autoptr(json_t) ans = NULL;

    ck_assert(hello(cmg, 0, F.cp_cert[0], NOW, &resp));
    ans = test_response_json(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(ans, "connection_id")), F.cp_id[0]);
    ck_assert_str_eq(json_string_value(json_object_get(ans, "cmg")), CMG);
    ck_assert_int_eq(json_integer_value(json_object_get(ans, "instance")), 0);
    cm_response_clear(&resp);
    /* Another registered connection point's certificate. */
    ck_assert(!hello(cmg, 0, F.cp_cert[1], NOW, &resp));
    ck_assert_int_eq(resp.reason, CM_REASON_UNTRUSTED);
    cm_response_clear(&resp);
    /* A certificate from a trusted root, but not the registered one. */
    ck_assert(!hello(cmg, 0, F.client, NOW, &resp));
    ck_assert_int_eq(resp.reason, CM_REASON_UNTRUSTED);
    cm_response_clear(&resp);
    ck_assert(!hello(cmg, 0, NULL, NOW, &resp));
    ck_assert_int_eq(resp.reason, CM_REASON_UNTRUSTED);
    cm_response_clear(&resp);
    /* The registered certificate after it expired. */
    ck_assert(!hello(cmg, 0, F.cp_cert[0], NOW + 400 * DAY, &resp));
    ck_assert_int_eq(resp.reason, CM_REASON_CERT_EXPIRED);
    cm_response_clear(&resp);
    /* An unknown connection ID, another site, malformed hellos. */
    {
        static const char *const bad[] = {
            "{\"connection_id\":\"00000000-0000-4000-8000-000000000000\",\"site_code\":\"PS1\"}",
            NULL, /* right ID, site PS2 */
            "{\"connection_id\":\"nope\",\"site_code\":\"PS1\"}",
            "{\"site_code\":\"PS1\"}",
            "[]",
            "",
        };
        const CmReason want[] = {CM_REASON_UNTRUSTED, CM_REASON_UNTRUSTED,
                                 CM_REASON_BAD_REQUEST, CM_REASON_BAD_REQUEST,
                                 CM_REASON_BAD_REQUEST, CM_REASON_BAD_REQUEST};
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            g_autofree char *other = g_strdup_printf(
                "{\"connection_id\":\"%s\",\"site_code\":\"PS2\"}", F.cp_id[0]);
            const char *b = bad[i] ? bad[i] : other;
            ck_assert(!cm_cmg_cp_hello(cmg, F.cp_cert[0], (const guint8 *)b, strlen(b), NOW,
                                       &resp));
            ck_assert_msg(resp.reason == want[i], "hello %zu: %s", i, resp.message);
            cm_response_clear(&resp);
        }
    }
    ck_assert_int_eq(cm_cmg_counters(cmg)->cp_refused, 10);
}
END_TEST

/* The connection point accepts the gateway only with the pinned
 * certificate and an answer that echoes its connection ID.  REQ: CMG-01 */
START_TEST(test_gateway_authenticates_to_cp)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    g_autoptr(CmCmgMappings) m = mappings();
    CmCmgcpConfig cc = {.connection_id = F.cp_id[0], .site_code = "PS1",
                        .name = "cp1.corp.example", .cmg_name = CMG, .instances = 1,
                        .cmg_cert = F.cmg_cert, .mappings = m};
    g_autoptr(CmCmgcp) cp = NULL;
    CmCmgcpActions a;
    CmCmgcpAction *act;
    CmResponse resp = {0}, forged = {0};
    GError *e = NULL;

    cp = cm_cmgcp_new(&cc, &e);
    cm_assert_no_error(e);
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_start(cp, NOW, &a);
    act = g_ptr_array_index(a.actions, 0);
    ck_assert_int_eq(act->kind, CM_CMGCP_HELLO);
    ck_assert(cm_cmg_cp_hello(cmg, F.cp_cert[0], g_bytes_get_data(act->body, NULL),
                              g_bytes_get_size(act->body), NOW, &resp));
    /* A man in the middle with another certificate from the same CA. */
    cm_cmgcp_on_answer(cp, act->id, F.client, &resp, NOW, &a);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 0);
    ck_assert_int_eq(cm_cmgcp_status(cp)->auth_failures, 1);
    cm_cmgcp_actions_clear(&a);

    /* The next round sends a hello again; an answer echoing another
     * connection ID is refused even from the right certificate. */
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_on_timer(cp, NOW + MINUTE, &a);
    act = g_ptr_array_index(a.actions, 0);
    ck_assert_int_eq(act->kind, CM_CMGCP_HELLO);
    {
        g_autoptr(json_t) obj = json_pack("{s:s, s:s, s:i}", "cmg", CMG, "connection_id",
                                          F.cp_id[1], "instance", 0);
        cm_response_ok(&forged, obj);
    }
    cm_cmgcp_on_answer(cp, act->id, F.cmg_cert, &forged, NOW + MINUTE, &a);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 0);
    ck_assert_int_eq(cm_cmgcp_status(cp)->auth_failures, 2);
    cm_cmgcp_actions_clear(&a);

    /* The genuine answer from the pinned certificate. */
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_on_timer(cp, NOW + 2 * MINUTE, &a);
    act = g_ptr_array_index(a.actions, 0);
    cm_cmgcp_on_answer(cp, act->id, F.cmg_cert, &resp, NOW + 2 * MINUTE, &a);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 1);
    ck_assert_int_eq(cm_cmgcp_status(cp)->state[0], CM_CMGCP_UP);
    cm_cmgcp_actions_clear(&a);
    cm_response_clear(&resp);
    cm_response_clear(&forged);
}
END_TEST

/* ------------------------------------------------ CMG-08: the connection point */

typedef struct {
    CmCmg *inst[2];
    gboolean down[2];
    int hellos, checks, closes, status, traffic;
    json_t *last_traffic, *last_status;
} Cloud;

/* Carries the connection point's actions to the gateway instances, as a
 * driver would, and feeds back the answers. */
static void
drive(Cloud *cl, CmCmgcp *cp, CmCmgcpActions *a, CmTime now)
{
    for (guint k = 0; k < a->actions->len; k++) {
        CmCmgcpAction *act = g_ptr_array_index(a->actions, k);
        CmResponse resp = {0};
        gboolean up = !cl->down[act->instance];
        const guint8 *b = act->body ? g_bytes_get_data(act->body, NULL) : NULL;
        size_t n = act->body ? g_bytes_get_size(act->body) : 0;

        switch (act->kind) {
        case CM_CMGCP_HELLO:
            cl->hellos++;
            if (up)
                cm_cmg_cp_hello(cl->inst[act->instance], F.cp_cert[0], b, n, now, &resp);
            cm_cmgcp_on_answer(cp, act->id, up ? F.cmg_cert : NULL, up ? &resp : NULL, now, a);
            break;
        case CM_CMGCP_CHECK:
            cl->checks++;
            if (up)
                cm_cmg_cp_check(cl->inst[act->instance], F.cp_cert[0], b, n, now, &resp);
            cm_cmgcp_on_answer(cp, act->id, NULL, up ? &resp : NULL, now, a);
            break;
        case CM_CMGCP_CLOSE:
            cl->closes++;
            cm_cmg_cp_disconnect(cl->inst[act->instance], F.cp_id[0]);
            break;
        case CM_CMGCP_REPORT_STATUS:
            cl->status++;
            json_decref(cl->last_status);
            cl->last_status = cm_json_parse(b, n, 65536, NULL);
            break;
        case CM_CMGCP_REPORT_TRAFFIC:
            cl->traffic++;
            json_decref(cl->last_traffic);
            cl->last_traffic = cm_json_parse(b, n, 65536, NULL);
            break;
        }
        cm_response_clear(&resp);
    }
}

/* Runs the connection point's timers up to until. */
static void
run_until(Cloud *cl, CmCmgcp *cp, CmTime *wake, CmTime until)
{
    while (*wake != 0 && *wake <= until) {
        CmCmgcpActions a;
        CmTime at = *wake;
        cm_cmgcp_actions_init(&a);
        cm_cmgcp_on_timer(cp, at, &a);
        drive(cl, cp, &a, at);
        *wake = a.wake_at;
        ck_assert_int_gt(*wake, at);
        cm_cmgcp_actions_clear(&a);
    }
}

/* A connection to every instance, checked every minute, reconnected after
 * a failure; status reported on change, traffic per endpoint every five
 * minutes.  REQ: CMG-08 */
START_TEST(test_cp_keeps_connections)
{
    GwOpts o0 = {0}, o1 = {.instance = 1};
    Cloud cl = {.inst = {gateway(&o0), gateway(&o1)}};
    g_autoptr(CmCmgMappings) m = mappings();
    CmCmgcpConfig cc = {.connection_id = F.cp_id[0], .site_code = "PS1",
                        .name = "cp1.corp.example", .cmg_name = CMG, .instances = 2,
                        .cmg_cert = F.cmg_cert, .mappings = m};
    g_autoptr(CmCmgcp) cp = cm_cmgcp_new(&cc, NULL);
    CmCmgcpActions a;
    CmTime wake;
    CmCmgRoute route;
    GError *e = NULL;
    const json_t *eps;

    /* Both gateways start without cp1 connected. */
    for (int i = 0; i < 2; i++)
        cm_cmg_cp_disconnect(cl.inst[i], F.cp_id[0]);
    ck_assert_ptr_nonnull(cp);
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_start(cp, NOW, &a);
    drive(&cl, cp, &a, NOW);
    ck_assert_int_eq(cl.hellos, 2);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 2);
    ck_assert_int_eq(a.wake_at, NOW + MINUTE);
    ck_assert_uint_eq(cm_cmg_cp_live(cl.inst[0], "PS1", NOW), 2);
    ck_assert_uint_eq(cm_cmg_cp_live(cl.inst[1], "PS1", NOW), 2);
    wake = a.wake_at;
    cm_cmgcp_actions_clear(&a);

    /* Checks every minute keep the gateway's side alive past its timeout;
     * cp2, which connected at NOW and never checked, is gone. */
    run_until(&cl, cp, &wake, NOW + 4 * MINUTE);
    ck_assert_int_eq(cl.checks, 8);
    ck_assert_uint_eq(cm_cmg_cp_live(cl.inst[0], "PS1", NOW + 4 * MINUTE + 100 * SEC), 1);
    ck_assert_uint_eq(cm_cmg_cp_live(cl.inst[1], "PS1", NOW + 4 * MINUTE + 100 * SEC), 1);

    /* Traffic, counted per published endpoint, reported at five minutes. */
    for (int i = 0; i < 3; i++) {
        g_autofree char *q = NULL;
        g_autofree char *p = path_of(CM_CMG_AUTH_MUTUAL, CM_EP_POLICY_BODY, &q);
        ck_assert(cm_cmgcp_route(cp, p, q, 100, &route, &e));
        cm_assert_no_error(e);
        cm_cmgcp_routed(cp, &route, 1000, 200);
    }
    {
        g_autofree char *q = NULL;
        g_autofree char *p = path_of(CM_CMG_AUTH_MUTUAL, CM_EP_INVENTORY, &q);
        ck_assert(cm_cmgcp_route(cp, p, q, 5000, &route, &e));
        cm_cmgcp_routed(cp, &route, 20, 403);
    }
    run_until(&cl, cp, &wake, NOW + 5 * MINUTE);
    ck_assert_int_eq(cl.traffic, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(cl.last_traffic, "period_end")) -
                         json_integer_value(json_object_get(cl.last_traffic, "period_start")),
                     300);
    eps = json_object_get(cl.last_traffic, "endpoints");
    ck_assert_uint_eq(json_array_size(eps), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(eps, 0), "endpoint")),
                     "CCM_System");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(eps, 0), "requests")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(eps, 0), "bytes_in")), 300);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(eps, 0), "bytes_out")),
                     3000);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(eps, 1), "endpoint")),
                     "CCM_Incoming");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(eps, 1), "errors")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(cl.last_status, "health")), "ok");

    /* Instance 1 fails: its check goes unanswered, the connection point
     * closes and reconnects at once, then every minute. */
    cl.down[1] = TRUE;
    run_until(&cl, cp, &wake, NOW + 6 * MINUTE);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 1);
    ck_assert_int_eq(cm_cmgcp_status(cp)->state[1], CM_CMGCP_DOWN);
    ck_assert_int_ge(cm_cmgcp_status(cp)->check_failures, 1);
    ck_assert_str_eq(json_string_value(json_object_get(cl.last_status, "health")), "degraded");
    {
        int hellos = cl.hellos;
        run_until(&cl, cp, &wake, NOW + 8 * MINUTE);
        ck_assert_int_eq(cl.hellos, hellos + 2); /* one a minute */
    }
    /* It comes back: reconnected within a minute. */
    cl.down[1] = FALSE;
    run_until(&cl, cp, &wake, NOW + 9 * MINUTE);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 2);
    ck_assert_str_eq(json_string_value(json_object_get(cl.last_status, "health")), "ok");
    ck_assert_uint_eq(cm_cmg_cp_live(cl.inst[1], "PS1", NOW + 9 * MINUTE), 1);
    /* A second traffic report at ten minutes, empty this time. */
    run_until(&cl, cp, &wake, NOW + 10 * MINUTE);
    ck_assert_int_eq(cl.traffic, 2);
    ck_assert_uint_eq(json_array_size(json_object_get(cl.last_traffic, "endpoints")), 0);

    /* The driver sees a connection drop: reconnected at once. */
    cm_cmgcp_actions_init(&a);
    cm_cmgcp_on_disconnect(cp, 0, NOW + 10 * MINUTE + SEC, &a);
    ck_assert_uint_eq(a.actions->len, 2); /* the hello, and the status: one instance down */
    ck_assert_int_eq(((CmCmgcpAction *)g_ptr_array_index(a.actions, 0))->kind, CM_CMGCP_HELLO);
    ck_assert_int_eq(((CmCmgcpAction *)g_ptr_array_index(a.actions, 1))->kind,
                     CM_CMGCP_REPORT_STATUS);
    drive(&cl, cp, &a, NOW + 10 * MINUTE + SEC);
    ck_assert_int_eq(cm_cmgcp_status(cp)->up, 2);
    cm_cmgcp_actions_clear(&a);

    json_decref(cl.last_traffic);
    json_decref(cl.last_status);
    cm_cmg_free(cl.inst[0]);
    cm_cmg_free(cl.inst[1]);
}
END_TEST

/* The gateway forgets a connection point that stopped checking in, and
 * asks it to reconnect.  REQ: CMG-08 */
START_TEST(test_gateway_times_out_cp)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    CmResponse resp = {0};
    g_autoptr(GBytes) b = cp_body(0);

    ck_assert_uint_eq(cm_cmg_cp_live(cmg, "PS1", NOW + CM_CMG_CP_TIMEOUT), 2);
    ck_assert_uint_eq(cm_cmg_cp_live(cmg, "PS1", NOW + CM_CMG_CP_TIMEOUT + 1), 0);
    ck_assert(!cm_cmg_cp_check(cmg, F.cp_cert[0], g_bytes_get_data(b, NULL), g_bytes_get_size(b),
                               NOW + CM_CMG_CP_TIMEOUT + 1, &resp));
    ck_assert_int_eq(resp.reason, CM_REASON_CONFLICT);
    cm_response_clear(&resp);
    ck_assert(hello(cmg, 0, F.cp_cert[0], NOW + 3 * MINUTE, &resp));
    cm_response_clear(&resp);
    ck_assert_uint_eq(cm_cmg_cp_live(cmg, "PS1", NOW + 3 * MINUTE), 1);
}
END_TEST

/* ------------------------------------------------ CMG-02: PKI clients */

/* A PKI client certificate that chains to an uploaded root is forwarded,
 * with its identity for the MP.  REQ: CMG-02 */
START_TEST(test_pki_client)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    CmCmgVerdict v = {0};

    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 100, NOW, &v), CM_CMG_FORWARD);
    ck_assert_int_eq(v.ep, CM_EP_POLICY_BODY);
    ck_assert_int_eq(v.peer.kind, CM_AUTH_PKI);
    ck_assert_ptr_eq(v.peer.client_cert, F.client);
    ck_assert_str_eq(v.peer.principal, "pc1.contoso.example");
    ck_assert_str_eq(v.site_code, "PS1");
    ck_assert(v.role_id == ROLE_ID);
    ck_assert(strcmp(v.connection_id, F.cp_id[0]) == 0 || strcmp(v.connection_id, F.cp_id[1]) == 0);

    /* A certificate of no uploaded root, an expired one, none at all. */
    {
        g_autoptr(CmCert) stray = issue(CM_CERT_CLIENT_SELF_SIGNED, "stray", 5, NOW - DAY,
                                        NOW + DAY, F.leaf_key, NULL, NULL);
        ask(cmg, CM_EP_POLICY_BODY, stray, NULL, 100, NOW, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    }
    ask(cmg, CM_EP_POLICY_BODY, F.expired, NULL, 100, NOW, &v);
    expect_refused(&v, CM_REASON_CERT_EXPIRED, 403);
    {
        g_autofree char *q = NULL;
        g_autofree char *p = path_of(CM_CMG_AUTH_MUTUAL, CM_EP_POLICY_BODY, &q);
        CmCmgRequest req = {.path = p, .query = q, .tls = CM_TLS_1_2};
        cm_cmg_handle(cmg, &req, NOW, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    }
    ck_assert_int_eq(cm_cmg_counters(cmg)->forwarded, 1);
    ck_assert_int_eq(cm_cmg_counters(cmg)->by_auth[CM_AUTH_PKI], 1);
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* Entra ID device tokens of the configured tenant.  REQ: CMG-02 */
START_TEST(test_entra_token)
{
    GwOpts o = {.entra = TRUE};
    g_autoptr(CmCmg) cmg = gateway(&o);
    g_autoptr(CmCmg) no_entra = gateway(NULL);
    CmCmgVerdict v = {0};
    GError *e = NULL;
    g_autoptr(json_t) claims = cm_jwt_claims_new(ENTRA_ISS, ENTRA_AUD, "device-4711", NOW,
                                                 DAY, NULL);
    g_autoptr(json_t) wrong = cm_jwt_claims_new(ENTRA_ISS, "api://another-app", "device-4711",
                                                NOW, DAY, NULL);
    g_autofree char *token = cm_jwt_sign(F.entra_key, "entra-key-1", claims, &e);
    g_autofree char *other_aud = cm_jwt_sign(F.entra_key, "entra-key-1", wrong, &e);
    g_autofree char *other_key = cm_jwt_sign(F.other_key, "entra-key-1", claims, &e);

    cm_assert_no_error(e);
    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, token, 10, NOW, &v),
                     CM_CMG_FORWARD);
    ck_assert_int_eq(v.peer.kind, CM_AUTH_ENTRA);
    ck_assert_str_eq(v.peer.principal, "device-4711");
    ck_assert_str_eq(v.peer.domain, "contoso");
    ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, other_aud, 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, other_key, 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, token, 10, NOW + 2 * DAY, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ask(no_entra, CM_EP_POLICY_ASSIGNMENTS, NULL, token, 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, "not.a.token", 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-03: revocation */

static char *
bulk_token(CmKey *key, CmTime lifetime, char jti[CM_CMG_TOKEN_ID_LEN + 1])
{
    GError *e = NULL;
    CmRng rng;
    char *t;

    cm_rng_init_seeded(&rng, 7, (guint64)lifetime);
    t = cm_cmg_bulk_token_issue(key, "PS1", lifetime, NOW, &rng, jti, &e);
    cm_assert_no_error(e);
    return t;
}


/* With CRL checking on, a revoked certificate is refused; without a
 * reachable CRL every PKI client is dropped and retries; tokens do not
 * care.  REQ: CMG-03 */
START_TEST(test_crl_check)
{
    GwOpts on = {.crl_check = TRUE};
    g_autoptr(CmCmg) cmg = gateway(&on);
    g_autoptr(CmCmg) off = gateway(NULL);
    CmCmgVerdict v = {0};
    GError *e = NULL;
    g_autofree char *bulk = bulk_token(F.site_key, 0, NULL);

    /* Misconfigured: checking on, the CRL unreachable.  The connection is
     * dropped, so the client retries; each retry costs the same again. */
    for (int retry = 0; retry < 3; retry++) {
        ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v), CM_CMG_DROP);
        ck_assert_ptr_nonnull(strstr(v.resp.message, "revocation status"));
    }
    ck_assert_int_eq(cm_cmg_counters(cmg)->dropped, 3);
    /* A certificate that is bad anyway is refused, not dropped. */
    ask(cmg, CM_EP_POLICY_BODY, F.expired, NULL, 10, NOW, &v);
    expect_refused(&v, CM_REASON_CERT_EXPIRED, 403);
    /* Token clients are not affected by the CRL setting. */
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, bulk, 10, NOW, &v), CM_CMG_FORWARD);

    /* The CRL published where the CMG reaches it. */
    ck_assert(cm_cmg_add_crl(cmg, F.crl, &e));
    cm_assert_no_error(e);
    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v), CM_CMG_FORWARD);
    ask(cmg, CM_EP_POLICY_BODY, F.revoked, NULL, 10, NOW, &v);
    expect_refused(&v, CM_REASON_REVOKED, 403);
    /* A stale CRL is no CRL: the status is unknown again. */
    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW + 8 * DAY, &v),
                     CM_CMG_DROP);

    /* Checking off: the CRL is not consulted, the revoked one gets in. */
    ck_assert(cm_cmg_add_crl(off, F.crl, &e));
    ck_assert_int_eq(ask(off, CM_EP_POLICY_BODY, F.revoked, NULL, 10, NOW, &v), CM_CMG_FORWARD);
    cm_cmg_set_crl_check(off, TRUE);
    ask(off, CM_EP_POLICY_BODY, F.revoked, NULL, 10, NOW, &v);
    expect_refused(&v, CM_REASON_REVOKED, 403);
    cm_cmg_clear_crls(off);
    ck_assert_int_eq(ask(off, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v), CM_CMG_DROP);
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-04: CTL */

/* Without a CTL any uploaded root's clients get through; the site's CTL
 * limits it to the roots it lists.  REQ: CMG-04 */
START_TEST(test_ctl)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    g_autoptr(CmCtl) ctl = cm_ctl_new();
    CmCmgVerdict v = {0};
    GError *e = NULL;

    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client_b, NULL, 10, NOW, &v), CM_CMG_FORWARD);
    cm_ctl_add(ctl, F.root);
    ck_assert(cm_cmg_set_ctl(cmg, ctl, &e));
    cm_assert_no_error(e);
    ask(cmg, CM_EP_POLICY_BODY, F.client_b, NULL, 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ck_assert_ptr_nonnull(strstr(v.resp.message, "certificate trust list"));
    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v), CM_CMG_FORWARD);
    /* The broad CTL again. */
    {
        g_autoptr(CmCtl) any = cm_ctl_new_any();
        ck_assert(cm_cmg_set_ctl(cmg, any, &e));
        ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client_b, NULL, 10, NOW, &v),
                         CM_CMG_FORWARD);
    }
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-05: URL filtering */

static CmCmgAction
ask_path(CmCmg *cmg, const char *path, const char *query, CmCmgVerdict *v)
{
    CmCmgRequest req = {.path = path, .query = query, .content_length = 10, .tls = CM_TLS_1_2,
                        .client_cert = F.client};

    return cm_cmg_handle(cmg, &req, NOW, v);
}

/* Only paths under published mappings that name an MP endpoint are
 * forwarded.  REQ: CMG-05 */
START_TEST(test_url_filter)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    CmCmgVerdict v = {0};
    static const struct {
        const char *path, *query;
    } refused[] = {
        {"/CCM_Proxy_MutualAuth/72057594037927938/CCM_System/request/policybody", ""},
        {"/CCM_Proxy_MutualAuth/72057594037927937/CCM_Secret/request/policybody", ""},
        {"/CCM_Proxy_MutualAuth/72057594037927937/CCM_System/../SMS_MP/.sms_aut", "MPLIST"},
        {"/CCM_Proxy_MutualAuth/72057594037927937/CCM_System/request/%2e%2e/x", ""},
        {"/CCM_Proxy_MutualAuth/72057594037927937/CCM_System/request/secret", ""},
        {"/CCM_Proxy_MutualAuth/72057594037927937/SMS_MP/.sms_aut", "ALLSECRETS"},
        {"/CCM_Proxy_MutualAuth/72057594037927937/CCM_System", ""},
        {"/CCM_Proxy_MutualAuth/72057594037927937/CCM_Incoming/inventory", "x=1"},
        {"/sms_mp/.sms_aut", "MPLIST"},
        {"/", ""},
        {"https://evil.example/CCM_Proxy_MutualAuth/72057594037927937/CCM_System/request/"
         "policybody",
         ""},
    };
    char *path = NULL, *query = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        ask_path(cmg, refused[i].path, refused[i].query, &v);
        ck_assert_msg(v.action == CM_CMG_REFUSE && v.resp.reason == CM_REASON_UNKNOWN_ENDPOINT &&
                          v.resp.status == 404,
                      "%s?%s: %d %s", refused[i].path, refused[i].query, v.action,
                      v.resp.message);
    }
    ck_assert_int_eq(cm_cmg_counters(cmg)->refusals[CM_REASON_UNKNOWN_ENDPOINT],
                     (gint64)G_N_ELEMENTS(refused));
    /* Published, in IIS's case-insensitive spelling. */
    ck_assert_int_eq(ask_path(cmg,
                              "/ccm_proxy_mutualauth/72057594037927937/sms_mp/.SMS_AUT",
                              "mplist", &v),
                     CM_CMG_FORWARD);
    ck_assert_int_eq(v.ep, CM_EP_LOCATION);
    /* The notification channel is not carried. */
    ck_assert(!cm_cmg_client_path(CM_CMG_AUTH_MUTUAL, ROLE_ID, CM_EP_NOTIFY, &path, &query));
    /* An unauthenticated client learns nothing about the mappings. */
    {
        CmCmgRequest req = {.path = "/CCM_Proxy_MutualAuth/1/CCM_Secret", .tls = CM_TLS_1_2};
        cm_cmg_handle(cmg, &req, NOW, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
        req.path = "/nothing";
        cm_cmg_handle(cmg, &req, NOW, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    }
    /* No mappings uploaded yet: nothing is forwarded. */
    cm_cmg_set_mappings(cmg, NULL);
    ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNKNOWN_ENDPOINT, 404);
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-06: content length */

/* Each published endpoint has its content length limit.  REQ: CMG-06 */
START_TEST(test_content_length)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    g_autoptr(CmCmgMappings) m = NULL;
    CmCmgMapping small = {.site_code = "PS1", .role_id = 5, .server = "mp2.corp.example",
                          .endpoint = CM_CMG_EP_CCM_INCOMING, .max_body = 1024};
    CmCmgVerdict v = {0};
    GError *e = NULL;

    ck_assert_uint_eq(cm_cmg_endpoint_body_max(CM_CMG_EP_CCM_SYSTEM), 64 * 1024);
    ck_assert_uint_eq(cm_cmg_endpoint_body_max(CM_CMG_EP_CCM_INCOMING), 256 * 1024);
    ck_assert_uint_eq(cm_cmg_endpoint_body_max(CM_CMG_EP_SMS_MP), 4 * 1024);
    ck_assert_int_eq(ask(cmg, CM_EP_INVENTORY, F.client, NULL, 256 * 1024, NOW, &v),
                     CM_CMG_FORWARD);
    ask(cmg, CM_EP_INVENTORY, F.client, NULL, 256 * 1024 + 1, NOW, &v);
    expect_refused(&v, CM_REASON_TOO_LARGE, 413);
    ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 64 * 1024, NOW, &v),
                     CM_CMG_FORWARD);
    ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 64 * 1024 + 1, NOW, &v);
    expect_refused(&v, CM_REASON_TOO_LARGE, 413);
    ask(cmg, CM_EP_LOCATION, F.client, NULL, 5000, NOW, &v);
    expect_refused(&v, CM_REASON_TOO_LARGE, 413);

    /* A site may publish a tighter limit, never a looser one. */
    m = mappings();
    ck_assert(cm_cmg_mappings_add(m, &small, &e));
    cm_assert_no_error(e);
    small.role_id = 6;
    small.max_body = 256 * 1024 + 1;
    ck_assert(!cm_cmg_mappings_add(m, &small, &e));
    g_clear_error(&e);
    small.max_body = 0;
    ck_assert(!cm_cmg_mappings_add(m, &small, &e));
    g_clear_error(&e);
    cm_cmg_set_mappings(cmg, m);
    {
        CmCmgRequest req = {.path = "/CCM_Proxy_MutualAuth/5/CCM_Incoming/inventory",
                            .content_length = 1025, .tls = CM_TLS_1_2, .client_cert = F.client};
        cm_cmg_handle(cmg, &req, NOW, &v);
        expect_refused(&v, CM_REASON_TOO_LARGE, 413);
        req.content_length = 1024;
        ck_assert_int_eq(cm_cmg_handle(cmg, &req, NOW, &v), CM_CMG_FORWARD);
    }
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-07: round-robin */

/* Requests alternate over the connected connection points of the site;
 * one that is gone gets none.  REQ: CMG-07 */
START_TEST(test_round_robin)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    CmCmgVerdict v = {0};
    int n[2] = {0, 0};
    char last[CM_CMG_CONNECTION_ID_LEN + 1] = "";

    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v),
                         CM_CMG_FORWARD);
        /* Strictly alternating, not just even on average. */
        ck_assert(strcmp(v.connection_id, last) != 0);
        g_strlcpy(last, v.connection_id, sizeof last);
        n[strcmp(v.connection_id, F.cp_id[0]) == 0 ? 0 : 1]++;
    }
    ck_assert_int_eq(n[0], 500);
    ck_assert_int_eq(n[1], 500);
    ck_assert_int_eq(cm_cmg_counters(cmg)->per_cp_forwarded[0], 500);
    ck_assert_int_eq(cm_cmg_counters(cmg)->per_cp_forwarded[1], 500);

    /* cp1 drops: everything goes to cp2. */
    cm_cmg_cp_disconnect(cmg, F.cp_id[0]);
    for (int i = 0; i < 10; i++) {
        ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW, &v);
        ck_assert_str_eq(v.connection_id, F.cp_id[1]);
    }
    /* cp2 stops checking in too: nothing to forward to, the client waits. */
    ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW + CM_CMG_CP_TIMEOUT + SEC, &v);
    expect_refused(&v, CM_REASON_BUSY, 503);
    ck_assert_int_eq(v.resp.retry_after, CM_CMG_CHECK_INTERVAL);
    /* A connection point of another site is never used for PS1. */
    {
        CmCmgCpInfo info = {.connection_id = "5A1C2D3E-0000-4000-8000-000000000009",
                            .site_code = "PS2", .cert = F.cp_cert[0]};
        CmResponse resp = {0};
        const char *b = "{\"connection_id\":\"5A1C2D3E-0000-4000-8000-000000000009\","
                        "\"site_code\":\"PS2\"}";
        ck_assert(cm_cmg_add_connection_point(cmg, &info, NULL));
        ck_assert(cm_cmg_cp_hello(cmg, F.cp_cert[0], (const guint8 *)b, strlen(b), NOW, &resp));
        cm_response_clear(&resp);
        ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW + SEC, &v);
        ck_assert_str_eq(v.connection_id, F.cp_id[1]);
        ask(cmg, CM_EP_POLICY_BODY, F.client, NULL, 10, NOW + SEC, &v);
        ck_assert_str_eq(v.connection_id, F.cp_id[1]);
    }
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-10: mapping form */

/* External URLs, the internet MP list entry and the connection point's
 * forwarding to the internal server.  REQ: CMG-10, CMG-08 */
START_TEST(test_mapping_form)
{
    g_autoptr(CmCmgMappings) m = mappings();
    g_autoptr(CmCmgMappings) back = NULL;
    g_autoptr(GPtrArray) entries = cm_cmg_mappings_mp_entries(m);
    g_autofree char *json = cm_cmg_mappings_to_json(m);
    g_autofree char *json2 = NULL;
    g_autofree char *path = NULL, *query = NULL;
    CmCmgcpConfig cc = {.connection_id = F.cp_id[0], .site_code = "PS1", .cmg_name = CMG,
                        .instances = 1, .cmg_cert = F.cmg_cert, .mappings = m};
    g_autoptr(CmCmgcp) cp = cm_cmgcp_new(&cc, NULL);
    CmCmgRoute r;
    GError *e = NULL;
    CmCmgUrl url;

    ck_assert_uint_eq(cm_cmg_mappings_count(m), 3);
    ck_assert_uint_eq(entries->len, 1);
    ck_assert_str_eq(g_ptr_array_index(entries, 0),
                     "cmg.contoso.com/CCM_Proxy_MutualAuth/72057594037927937");
    ck_assert(cm_cmg_client_path(CM_CMG_AUTH_MUTUAL, ROLE_ID, CM_EP_POLICY_BODY, &path, &query));
    ck_assert_str_eq(path, "/CCM_Proxy_MutualAuth/72057594037927937/CCM_System/request/policybody");
    ck_assert_str_eq(query, "");
    {
        g_autofree char *full = g_strdup_printf("https://" CMG "%s", path);
        g_autofree char *base = cm_cmgurl_build(CMG, CM_CMG_AUTH_MUTUAL, ROLE_ID,
                                                CM_CMG_EP_CCM_SYSTEM);
        ck_assert(g_str_has_prefix(full, base));
        ck_assert_str_eq(base, "https://cmg.contoso.com/CCM_Proxy_MutualAuth/72057594037927937/"
                               "CCM_System");
        ck_assert(cm_cmgurl_parse(full, &url, &e));
        ck_assert_int_eq(cm_cmg_url_endpoint(&url, ""), CM_EP_POLICY_BODY);
    }
    /* The connection point forwards to the internal server's endpoint. */
    ck_assert(cm_cmgcp_route(cp, path, query, 10, &r, &e));
    cm_assert_no_error(e);
    ck_assert_str_eq(r.server, "mp1.corp.example");
    ck_assert_int_eq(r.ep, CM_EP_POLICY_BODY);
    ck_assert_str_eq(r.internal_path, "/ccm_system/request/policybody");
    g_free(path);
    g_free(query);
    ck_assert(cm_cmg_client_path(CM_CMG_AUTH_SERVER, ROLE_ID, CM_EP_REGISTER, &path, &query));
    ck_assert(cm_cmgcp_route(cp, path, query, 10, &r, &e));
    ck_assert_int_eq(r.ep, CM_EP_REGISTER);
    ck_assert(!cm_cmgcp_route(cp, "/CCM_Proxy_MutualAuth/9/CCM_System/request/policybody", "",
                              10, &r, &e));
    g_clear_error(&e);
    ck_assert_int_eq(cm_cmgcp_status(cp)->routed, 2);
    ck_assert_int_eq(cm_cmgcp_status(cp)->unrouted, 1);

    /* The published form round-trips byte for byte. */
    back = cm_cmg_mappings_from_json(json, strlen(json), &e);
    cm_assert_no_error(e);
    json2 = cm_cmg_mappings_to_json(back);
    ck_assert_str_eq(json, json2);
    ck_assert_ptr_nonnull(strstr(json, "\"server\":\"mp1.corp.example\""));
    {
        static const char *const bad[] = {
            "{}",
            "{\"cmg\":\"cmg.contoso.com\"}",
            "{\"cmg\":\"not a name\",\"mappings\":[]}",
            "{\"cmg\":\"cmg.contoso.com\",\"mappings\":[],\"extra\":1}",
            "{\"cmg\":\"cmg.contoso.com\",\"mappings\":[{\"endpoint\":\"CCM_Secret\","
            "\"max_body\":10,\"role_id\":1,\"server\":\"mp1\",\"site_code\":\"PS1\"}]}",
            "{\"cmg\":\"cmg.contoso.com\",\"mappings\":[{\"endpoint\":\"CCM_System\","
            "\"max_body\":10,\"role_id\":0,\"server\":\"mp1\",\"site_code\":\"PS1\"}]}",
            "{\"cmg\":\"cmg.contoso.com\",\"mappings\":[{\"endpoint\":\"CCM_System\","
            "\"max_body\":10,\"role_id\":1,\"server\":\"mp 1\",\"site_code\":\"PS1\"}]}",
            "{\"cmg\":\"cmg.contoso.com\",\"mappings\":[{\"endpoint\":\"CCM_System\","
            "\"max_body\":10,\"role_id\":1,\"server\":\"mp1\",\"site_code\":\"PS1\"},"
            "{\"endpoint\":\"CCM_System\",\"max_body\":10,\"role_id\":1,\"server\":\"mp2\","
            "\"site_code\":\"PS1\"}]}",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            ck_assert_msg(cm_cmg_mappings_from_json(bad[i], strlen(bad[i]), &e) == NULL, "%s",
                          bad[i]);
            ck_assert_ptr_nonnull(e);
            g_clear_error(&e);
        }
    }
}
END_TEST

/* ------------------------------------------------ CMG-11: TLS 1.2 */

/* A gateway is not made to accept TLS below 1.2, and refuses a request
 * that came over an older version.  REQ: CMG-11 */
START_TEST(test_tls_floor)
{
    GwOpts old = {.tls_min = CM_TLS_1_1};
    const CmCert *roots[] = {F.root};
    CmCmgSite site = {.site_code = "PS1", .signing_cert = F.site_cert};
    CmCmgConfig c = {.name = CMG, .tls_min = CM_TLS_1_1, .sites = &site, .n_sites = 1,
                     .roots = roots, .n_roots = 1};
    g_autoptr(CmCmg) cmg = gateway(NULL);
    CmCmgVerdict v = {0};
    GError *e = NULL;
    CmTlsVersion t;
    CmCmgRequest req = {.content_length = 1, .tls = CM_TLS_1_1, .client_cert = F.client};
    g_autofree char *q = NULL;
    g_autofree char *p = path_of(CM_CMG_AUTH_MUTUAL, CM_EP_POLICY_BODY, &q);

    (void)old;
    ck_assert_ptr_null(cm_cmg_new(&c, &e));
    ck_assert(g_error_matches(e, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED));
    ck_assert_ptr_nonnull(strstr(e->message, "TLS 1.2"));
    g_clear_error(&e);
    c.tls_min = CM_TLS_1_0;
    ck_assert_ptr_null(cm_cmg_new(&c, &e));
    g_clear_error(&e);
    c.tls_min = CM_TLS_1_3;
    {
        g_autoptr(CmCmg) strict = cm_cmg_new(&c, &e);
        cm_assert_no_error(e);
        ck_assert_int_eq(cm_cmg_tls_min(strict), CM_TLS_1_3);
    }
    ck_assert_int_eq(cm_cmg_tls_min(cmg), CM_TLS_1_2);
    ck_assert(!cm_cmg_tls_check(CM_TLS_1_1, NULL));
    ck_assert(cm_cmg_tls_check(CM_TLS_1_2, NULL));
    ck_assert(cm_cmg_tls_parse("TLSv1.1", &t, NULL) && t == CM_TLS_1_1);
    ck_assert(cm_cmg_tls_parse("1.3", &t, NULL) && t == CM_TLS_1_3);
    ck_assert(!cm_cmg_tls_parse("SSLv3", &t, NULL));

    req.path = p;
    req.query = q;
    cm_cmg_handle(cmg, &req, NOW, &v);
    expect_refused(&v, CM_REASON_FORBIDDEN, 403);
    req.tls = CM_TLS_1_0;
    cm_cmg_handle(cmg, &req, NOW, &v);
    expect_refused(&v, CM_REASON_FORBIDDEN, 403);
    req.tls = CM_TLS_1_3;
    ck_assert_int_eq(cm_cmg_handle(cmg, &req, NOW, &v), CM_CMG_FORWARD);
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-12: tokens */

/* Bulk registration tokens: 3 days by default, 7 at most, register and
 * nothing else, blockable.  REQ: CMG-12 */
START_TEST(test_bulk_token)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    char jti[CM_CMG_TOKEN_ID_LEN + 1];
    g_autofree char *token = bulk_token(F.site_key, 0, jti);
    g_autofree char *week = bulk_token(F.site_key, 7 * DAY, NULL);
    g_autofree char *forged = bulk_token(F.other_key, 0, NULL);
    CmCmgVerdict v = {0};
    GError *e = NULL;
    CmRng rng;

    /* The issuing rules. */
    {
        CmJwtCheck c = {.issuer = "PS1", .audience = "cmg", .now = NOW};
        g_autoptr(json_t) claims = cm_jwt_verify(token, cm_cert_public_key(F.site_cert), &c, &e);
        cm_assert_no_error(e);
        ck_assert_int_eq(json_integer_value(json_object_get(claims, "exp")) -
                             json_integer_value(json_object_get(claims, "iat")),
                         3 * 24 * 3600);
        ck_assert_str_eq(json_string_value(json_object_get(claims, "jti")), jti);
        ck_assert_str_eq(json_string_value(json_object_get(claims, "kind")), "bulk");
    }
    cm_rng_init_seeded(&rng, 1, 1);
    ck_assert_ptr_null(cm_cmg_bulk_token_issue(F.site_key, "PS1", 7 * DAY + SEC, NOW, &rng,
                                               NULL, &e));
    ck_assert(g_error_matches(e, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED));
    g_clear_error(&e);
    ck_assert_ptr_null(cm_cmg_bulk_token_issue(F.site_key, "PS1", -1, NOW, &rng, NULL, &e));
    g_clear_error(&e);

    /* It registers a device... */
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 1000, NOW, &v), CM_CMG_FORWARD);
    ck_assert_int_eq(v.peer.kind, CM_AUTH_TOKEN);
    ck_assert(g_str_has_prefix(v.peer.principal, "bulk:"));
    ck_assert_str_eq(v.peer.principal + 5, jti);
    ck_assert_int_eq(ask(cmg, CM_EP_LOCATION, NULL, token, 0, NOW, &v), CM_CMG_FORWARD);
    reconnect_all(cmg, NOW + 6 * DAY);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, week, 1000, NOW + 6 * DAY, &v),
                     CM_CMG_FORWARD);
    ck_assert_int_eq(cm_cmg_counters(cmg)->bulk_registrations, 2);
    /* ...and nothing else. */
    ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, token, 10, NOW, &v);
    expect_refused(&v, CM_REASON_FORBIDDEN, 403);
    ask(cmg, CM_EP_INVENTORY, NULL, token, 10, NOW, &v);
    expect_refused(&v, CM_REASON_FORBIDDEN, 403);
    /* Over ServerAuth only: MutualAuth wants a certificate. */
    {
        g_autofree char *q = NULL;
        g_autofree char *p = path_of(CM_CMG_AUTH_MUTUAL, CM_EP_REGISTER, &q);
        CmCmgRequest req = {.path = p, .query = q, .tls = CM_TLS_1_2, .token = token};
        cm_cmg_handle(cmg, &req, NOW, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    }
    /* Expired. */
    ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW + 3 * DAY + 2 * MINUTE, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ck_assert_ptr_nonnull(strstr(v.resp.message, "expired"));
    /* Signed with another key under the site's kid. */
    ask(cmg, CM_EP_REGISTER, NULL, forged, 10, NOW, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    /* Blocked, then unblocked. */
    cm_cmg_block_token(cmg, jti);
    ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW, &v);
    expect_refused(&v, CM_REASON_BLOCKED, 403);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, week, 10, NOW, &v), CM_CMG_FORWARD);
    cm_cmg_unblock_token(cmg, jti);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW, &v), CM_CMG_FORWARD);
    /* A bulk token the site's key signed for 30 days is refused anyway. */
    {
        g_autoptr(json_t) claims = cm_jwt_claims_new("PS1", "cmg", "bulk-registration", NOW,
                                                     30 * DAY, "0123456789abcdef0123456789abcdef");
        g_autofree char *longer = NULL;
        json_object_set_new(claims, "kind", json_string("bulk"));
        longer = cm_jwt_sign(F.site_key, "PS1", claims, &e);
        ask(cmg, CM_EP_REGISTER, NULL, longer, 10, NOW, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    }
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* A token verified once is recalled by its exact bytes, not verified
 * again; its window and the blocked list still decide each request, and
 * other bytes (another signature over the same claims) are verified.
 * REQ: CMG-12 */
START_TEST(test_token_cache)
{
    g_autoptr(CmCmg) cmg = gateway(NULL);
    char jti[CM_CMG_TOKEN_ID_LEN + 1];
    g_autofree char *token = bulk_token(F.site_key, 0, jti);
    g_autofree char *forged = NULL;
    CmCmgVerdict v = {0};
    char principal[CM_NAME_MAX + 1];

    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 100, NOW, &v), CM_CMG_FORWARD);
    g_strlcpy(principal, v.peer.principal, sizeof principal);
    ck_assert_int_eq(cm_cmg_counters(cmg)->token_verifications, 1);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 100, NOW + SEC, &v), CM_CMG_FORWARD);
    ck_assert_int_eq(ask(cmg, CM_EP_LOCATION, NULL, token, 0, NOW + 2 * SEC, &v), CM_CMG_FORWARD);
    ck_assert_int_eq(cm_cmg_counters(cmg)->token_verifications, 1);
    ck_assert_int_eq(cm_cmg_counters(cmg)->token_cache_hits, 2);
    /* The same identity and scope as when it was verified. */
    ck_assert_int_eq(v.peer.kind, CM_AUTH_TOKEN);
    ck_assert_str_eq(v.peer.principal, principal);
    ck_assert_str_eq(v.peer.domain, "PS1");
    ask(cmg, CM_EP_POLICY_ASSIGNMENTS, NULL, token, 10, NOW, &v);
    expect_refused(&v, CM_REASON_FORBIDDEN, 403);
    /* Blocked after it was remembered: refused, and back once unblocked. */
    cm_cmg_block_token(cmg, jti);
    ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW + 3 * SEC, &v);
    expect_refused(&v, CM_REASON_BLOCKED, 403);
    cm_cmg_unblock_token(cmg, jti);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW + 4 * SEC, &v),
                     CM_CMG_FORWARD);
    ck_assert_int_eq(cm_cmg_counters(cmg)->token_verifications, 1);
    /* The same header and claims with another signature: verified, refused. */
    {
        const char *dot = strrchr(token, '.');
        g_autofree char *other = bulk_token(F.other_key, 0, NULL);
        g_autofree char *head = g_strndup(token, (gsize)(dot - token));
        forged = g_strconcat(head, strrchr(other, '.'), NULL);
    }
    ask(cmg, CM_EP_REGISTER, NULL, forged, 10, NOW + 5 * SEC, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ck_assert_int_eq(cm_cmg_counters(cmg)->token_verifications, 2);
    /* Past exp and the leeway the remembered verdict is over. */
    ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW + 3 * DAY + CM_JWT_LEEWAY, &v);
    expect_refused(&v, CM_REASON_UNTRUSTED, 403);
    ck_assert_ptr_nonnull(strstr(v.resp.message, "expired"));
    /* One microsecond earlier it still held. */
    reconnect_all(cmg, NOW + 3 * DAY);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 10, NOW, &v), CM_CMG_FORWARD);
    ck_assert_int_eq(ask(cmg, CM_EP_REGISTER, NULL, token, 10,
                         NOW + 3 * DAY + CM_JWT_LEEWAY - 1, &v),
                     CM_CMG_FORWARD);
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* The client token the site issues at registration opens the CMG for
 * that device only; the device renews it half-way through its life.
 * REQ: CMG-12, CMG-02 */
START_TEST(test_client_token)
{
    CmSiteSettings s;
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(TestClient) c = test_client_new(99, "corp.example");
    g_autoptr(TestClient) other = test_client_new(100, "corp.example");
    g_autoptr(json_t) reg = NULL;
    CmResponse resp = {0};
    CmCmgVerdict v = {0};
    const char *token;
    CmTime renew;
    GError *e = NULL;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    lab = test_lab_new(&s, 1);
    test_client_register(lab, c, &resp);
    reg = test_response_json(&resp);
    cm_response_clear(&resp);
    token = json_string_value(json_object_get(reg, "token"));
    ck_assert_ptr_nonnull(token);
    {
        const CmCert *roots[] = {F.root};
        CmCmgSite site = {.site_code = "PS1", .signing_cert = cm_site_signing_cert(lab->site)};
        CmCmgConfig cfg = {.name = CMG, .sites = &site, .n_sites = 1, .roots = roots,
                           .n_roots = 1};
        g_autoptr(CmCmg) cmg = cm_cmg_new(&cfg, &e);
        g_autoptr(CmCmgMappings) m = mappings();
        g_autofree char *q = NULL;
        g_autofree char *p = path_of(CM_CMG_AUTH_SERVER, CM_EP_POLICY_ASSIGNMENTS, &q);
        CmCmgRequest req = {.path = p, .query = q, .tls = CM_TLS_1_2, .token = token,
                            .smsid = c->smsid};
        CmCmgCpInfo info = {.connection_id = F.cp_id[0], .site_code = "PS1",
                            .cert = F.cp_cert[0]};

        cm_assert_no_error(e);
        cm_cmg_set_mappings(cmg, m);
        ck_assert(cm_cmg_add_connection_point(cmg, &info, NULL));
        ck_assert(hello(cmg, 0, F.cp_cert[0], NOW, &resp));
        cm_response_clear(&resp);
        ck_assert_int_eq(cm_cmg_handle(cmg, &req, NOW, &v), CM_CMG_FORWARD);
        ck_assert_int_eq(v.peer.kind, CM_AUTH_TOKEN);
        ck_assert_str_eq(v.peer.principal, c->smsid);
        ck_assert_str_eq(v.peer.domain, "PS1");
        ck_assert_int_eq(v.ep, CM_EP_POLICY_ASSIGNMENTS);
        /* The request goes on to the MP and the site, which answers it. */
        {
            g_autoptr(json_t) body = json_pack("{s:s}", "smsid", c->smsid);
            c->peer = v.peer;
            test_client_send(lab, c, v.ep, body, &resp);
            ck_assert_int_eq(resp.status, 200);
            cm_response_clear(&resp);
        }
        /* Another device with this token is refused. */
        req.smsid = other->smsid;
        cm_cmg_handle(cmg, &req, NOW, &v);
        expect_refused(&v, CM_REASON_FORBIDDEN, 403);
        /* Renewal half-way; a lapsed token is refused. */
        ck_assert(cm_cmg_token_renew_at(token, cm_cert_public_key(cm_site_signing_cert(lab->site)),
                                        "PS1", NOW, &renew, &e));
        cm_assert_no_error(e);
        ck_assert_int_eq(renew, NOW + s.client_token_lifetime / 2);
        req.smsid = c->smsid;
        cm_cmg_handle(cmg, &req, NOW + s.client_token_lifetime + 2 * MINUTE, &v);
        expect_refused(&v, CM_REASON_UNTRUSTED, 403);
        ck_assert(!cm_cmg_token_renew_at(token,
                                         cm_cert_public_key(cm_site_signing_cert(lab->site)),
                                         "PS1", NOW + s.client_token_lifetime + 2 * MINUTE, &renew,
                                         &e));
        cm_assert_error(&e, CM_PROTO_ERROR_EXPIRED);
        /* A fresh token from regstatus before it lapsed. */
        lab->now = renew;
        {
            g_autoptr(json_t) body = json_pack("{s:s}", "smsid", c->smsid);
            g_autoptr(json_t) ans = NULL;
            const char *fresh;
            CmTime renew2;
            c->peer = (CmPeer){0};
            test_client_send(lab, c, CM_EP_REGISTER_STATUS, body, &resp);
            ans = test_response_json(&resp);
            cm_response_clear(&resp);
            fresh = json_string_value(json_object_get(ans, "token"));
            ck_assert(cm_cmg_token_renew_at(fresh,
                                            cm_cert_public_key(cm_site_signing_cert(lab->site)),
                                            "PS1", renew, &renew2, &e));
            ck_assert_int_gt(renew2, renew);
            req.token = fresh;
            ck_assert(hello(cmg, 0, F.cp_cert[0], NOW + s.client_token_lifetime + 2 * MINUTE,
                            &resp));
            cm_response_clear(&resp);
            ck_assert_int_eq(cm_cmg_handle(cmg, &req, NOW + s.client_token_lifetime + 2 * MINUTE,
                                           &v),
                             CM_CMG_FORWARD);
        }
    }
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* A device registers through the CMG with a bulk registration token and
 * gets the client token it uses from then on.  REQ: CMG-12 */
START_TEST(test_register_through_cmg)
{
    CmSiteSettings s;
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(TestClient) c = test_client_new(7, "");
    CmCmgSite site;
    const CmCert *roots[] = {F.root};
    g_autoptr(CmCmg) cmg = NULL;
    g_autoptr(CmCmgMappings) m = mappings();
    g_autoptr(CmCmgcp) cp = NULL;
    g_autoptr(json_t) reg = NULL;
    CmResponse resp = {0};
    CmCmgVerdict v = {0};
    CmCmgRoute r;
    GError *e = NULL;
    g_autofree char *bulk = NULL;
    g_autofree char *p = NULL, *q = NULL;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    lab = test_lab_new(&s, 1);
    site = (CmCmgSite){.site_code = "PS1", .signing_cert = cm_site_signing_cert(lab->site)};
    {
        CmCmgConfig cfg = {.name = CMG, .sites = &site, .n_sites = 1, .roots = roots,
                           .n_roots = 1};
        CmCmgCpInfo info = {.connection_id = F.cp_id[0], .site_code = "PS1",
                            .cert = F.cp_cert[0]};
        CmCmgcpConfig cc = {.connection_id = F.cp_id[0], .site_code = "PS1", .cmg_name = CMG,
                            .instances = 1, .cmg_cert = F.cmg_cert, .mappings = m};
        cmg = cm_cmg_new(&cfg, &e);
        cm_assert_no_error(e);
        cp = cm_cmgcp_new(&cc, &e);
        cm_assert_no_error(e);
        cm_cmg_set_mappings(cmg, m);
        ck_assert(cm_cmg_add_connection_point(cmg, &info, NULL));
        ck_assert(hello(cmg, 0, F.cp_cert[0], NOW, &resp));
        cm_response_clear(&resp);
    }
    {
        /* The administrator's bulk token.  The site library keeps its
         * signing key to itself, so the fixture's PS1 key signs it and a
         * gateway that knows the fixture's PS1 certificate takes it; the
         * client token below is the lab site's own. */
        g_autoptr(CmCmg) fixture_cmg = gateway(NULL);
        bulk = bulk_token(F.site_key, 0, NULL);
        ck_assert_int_eq(ask(fixture_cmg, CM_EP_REGISTER, NULL, bulk, 100, NOW, &v),
                         CM_CMG_FORWARD);
        /* The connection point takes it to the MP it maps to. */
        ck_assert(cm_cmg_client_path(CM_CMG_AUTH_SERVER, ROLE_ID, CM_EP_REGISTER, &p, &q));
        ck_assert(cm_cmgcp_route(cp, p, q, 100, &r, &e));
        ck_assert_str_eq(r.server, "mp1.corp.example");
        ck_assert_int_eq(r.ep, CM_EP_REGISTER);
        /* The MP and site register the device as the CMG vouched for it. */
        c->peer = v.peer;
        test_client_register(lab, c, &resp);
        reg = test_response_json(&resp);
        ck_assert_str_eq(json_string_value(json_object_get(reg, "approval")), "approved");
        cm_cmgcp_routed(cp, &r, g_bytes_get_size(resp.body), resp.status);
        cm_response_clear(&resp);
    }
    /* From now on the device uses its client token. */
    {
        const char *token = json_string_value(json_object_get(reg, "token"));
        g_autofree char *q2 = NULL;
        g_autofree char *p2 = path_of(CM_CMG_AUTH_SERVER, CM_EP_POLICY_ASSIGNMENTS, &q2);
        CmCmgRequest req = {.path = p2, .query = q2, .tls = CM_TLS_1_2, .token = token,
                            .smsid = c->smsid};
        ck_assert_int_eq(cm_cmg_handle(cmg, &req, NOW, &v), CM_CMG_FORWARD);
        ck_assert_str_eq(v.peer.principal, c->smsid);
    }
    cm_cmg_verdict_clear(&v);
}
END_TEST

/* ------------------------------------------------ CMG-09: keys and secrets */

/* The storage key rotates every 180 days; app secrets are kept sealed and
 * renewable.  REQ: CMG-09 */
START_TEST(test_vault)
{
    CmRng rng;
    g_autoptr(CmCmgVault) v = NULL;
    g_autoptr(CmCmgVault) back = NULL;
    g_autoptr(GBytes) sealed = NULL;
    guint8 master[32], wrong[32], k0[32], k1[32];
    GError *e = NULL;
    CmTime created;
    const char *secret = "s3cr3t-of-the-server-app~XYZ";

    memset(master, 0x11, sizeof master);
    memset(wrong, 0x22, sizeof wrong);
    cm_rng_init_seeded(&rng, 5, 5);
    v = cm_cmg_vault_new(&rng, NOW);
    memcpy(k0, cm_cmg_vault_storage_key(v, &created), 32);
    ck_assert_int_eq(created, NOW);
    ck_assert_int_eq(cm_cmg_vault_next_rotation(v), NOW + 180 * DAY);
    ck_assert(!cm_cmg_vault_tick(v, &rng, NOW + 179 * DAY));
    ck_assert(memcmp(cm_cmg_vault_storage_key(v, NULL), k0, 32) == 0);
    ck_assert(cm_cmg_vault_tick(v, &rng, NOW + 180 * DAY));
    memcpy(k1, cm_cmg_vault_storage_key(v, NULL), 32);
    ck_assert(memcmp(k0, k1, 32) != 0);
    /* The previous key still reads what was written just before. */
    ck_assert(cm_cmg_vault_storage_key_valid(v, k0));
    ck_assert(cm_cmg_vault_storage_key_valid(v, k1));
    ck_assert_int_eq(cm_cmg_vault_next_rotation(v), NOW + 360 * DAY);
    ck_assert(cm_cmg_vault_tick(v, &rng, NOW + 360 * DAY));
    ck_assert(!cm_cmg_vault_storage_key_valid(v, k0));
    ck_assert(cm_cmg_vault_storage_key_valid(v, k1));

    /* App secrets: stored, expire, renewed. */
    ck_assert_ptr_null(cm_cmg_vault_app_secret(v, "server", NOW, &e));
    g_clear_error(&e);
    ck_assert(cm_cmg_vault_set_app_secret(v, "server", secret, NOW + 365 * DAY, NOW, &e));
    cm_assert_no_error(e);
    ck_assert_str_eq(cm_cmg_vault_app_secret(v, "server", NOW, &e), secret);
    ck_assert_ptr_null(cm_cmg_vault_app_secret(v, "server", NOW + 365 * DAY, &e));
    ck_assert(g_error_matches(e, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED));
    ck_assert_ptr_nonnull(strstr(e->message, "renew"));
    g_clear_error(&e);
    ck_assert(cm_cmg_vault_set_app_secret(v, "server", "rotated-by-entra", NOW + 730 * DAY,
                                          NOW + 364 * DAY, &e));
    ck_assert_str_eq(cm_cmg_vault_app_secret(v, "server", NOW + 365 * DAY, &e),
                     "rotated-by-entra");
    ck_assert(!cm_cmg_vault_set_app_secret(v, "web", "x", NOW + DAY, NOW, &e));
    g_clear_error(&e);
    ck_assert(!cm_cmg_vault_set_app_secret(v, "client", "x", NOW - 1, NOW, &e));
    g_clear_error(&e);

    /* Sealed for the site database: no secret in the clear; opens only
     * with the master key; round-trips. */
    sealed = cm_cmg_vault_seal(v, master, &e);
    cm_assert_no_error(e);
    ck_assert_ptr_null(memmem(g_bytes_get_data(sealed, NULL), g_bytes_get_size(sealed),
                              "rotated-by-entra", 16));
    ck_assert_ptr_null(cm_cmg_vault_open(wrong, g_bytes_get_data(sealed, NULL),
                                         g_bytes_get_size(sealed), &e));
    ck_assert_ptr_nonnull(e);
    g_clear_error(&e);
    back = cm_cmg_vault_open(master, g_bytes_get_data(sealed, NULL), g_bytes_get_size(sealed), &e);
    cm_assert_no_error(e);
    ck_assert(memcmp(cm_cmg_vault_storage_key(back, &created), cm_cmg_vault_storage_key(v, NULL),
                     32) == 0);
    ck_assert(cm_cmg_vault_storage_key_valid(back, k1));
    ck_assert_int_eq(created, NOW + 360 * DAY);
    ck_assert_str_eq(cm_cmg_vault_app_secret(back, "server", NOW + 365 * DAY, &e),
                     "rotated-by-entra");
    {
        GBytes *copy = g_bytes_new(g_bytes_get_data(sealed, NULL), g_bytes_get_size(sealed));
        gsize n;
        guint8 *raw = g_bytes_unref_to_data(copy, &n);
        raw[n / 2] ^= 1;
        ck_assert_ptr_null(cm_cmg_vault_open(master, raw, n, &e));
        g_clear_error(&e);
        g_free(raw);
    }
}
END_TEST

/* ------------------------------------------------ NET-08 */

static gboolean
site_trusts(void *ctx, const char *domain)
{
    return cm_site_kerberos_verifiable(ctx, domain);
}

/* An internet MP serves user policies only to users of a forest the site
 * trusts; otherwise computer policies only.  REQ: NET-08 */
START_TEST(test_internet_mp_user_policy)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    const char *fab[] = {"fabrikam.example", NULL};
    const char *wood[] = {"woodgrove.example", NULL};
    CmPeer user = {.kind = CM_AUTH_KERBEROS};
    CmResponse resp = {0};

    ck_assert(cm_site_add_forest(lab->site, "fabrikam.example", fab, NULL));
    ck_assert(cm_site_add_forest(lab->site, "woodgrove.example", wood, NULL));
    ck_assert(cm_site_set_trust(lab->site, "corp.example", "fabrikam.example", CM_TRUST_TWO_WAY,
                                NULL));
    /* Intranet MP: both, whoever the user is. */
    ck_assert_int_eq(cm_cmg_policy_scope(FALSE, "woodgrove.example", site_trusts, lab->site),
                     CM_CMG_POLICY_USER_AND_COMPUTER);
    /* Internet MP: the site's own forest and a trusted one... */
    ck_assert_int_eq(cm_cmg_policy_scope(TRUE, "corp.example", site_trusts, lab->site),
                     CM_CMG_POLICY_USER_AND_COMPUTER);
    ck_assert_int_eq(cm_cmg_policy_scope(TRUE, "fabrikam.example", site_trusts, lab->site),
                     CM_CMG_POLICY_USER_AND_COMPUTER);
    /* ...not an untrusted forest, nor a user without a domain. */
    ck_assert_int_eq(cm_cmg_policy_scope(TRUE, "woodgrove.example", site_trusts, lab->site),
                     CM_CMG_POLICY_COMPUTER_ONLY);
    ck_assert_int_eq(cm_cmg_policy_scope(TRUE, "", site_trusts, lab->site),
                     CM_CMG_POLICY_COMPUTER_ONLY);
    ck_assert_int_eq(cm_cmg_policy_scope(TRUE, "fabrikam.example", NULL, NULL),
                     CM_CMG_POLICY_COMPUTER_ONLY);
    g_strlcpy(user.principal, "alice@WOODGROVE.EXAMPLE", sizeof user.principal);
    g_strlcpy(user.domain, "woodgrove.example", sizeof user.domain);
    ck_assert(!cm_cmg_user_policy_check(TRUE, &user, site_trusts, lab->site, &resp));
    ck_assert_int_eq(resp.reason, CM_REASON_UNTRUSTED);
    ck_assert_ptr_nonnull(strstr(resp.message, "computer policies only"));
    cm_response_clear(&resp);
    ck_assert(cm_cmg_user_policy_check(FALSE, &user, site_trusts, lab->site, &resp));
    /* A trust added later opens user policy. */
    ck_assert(cm_site_set_trust(lab->site, "corp.example", "woodgrove.example",
                                CM_TRUST_ONE_WAY, NULL));
    ck_assert(cm_cmg_user_policy_check(TRUE, &user, site_trusts, lab->site, &resp));
    ck_assert_int_eq(resp.status, 0);
}
END_TEST

static Suite *
cmg_suite(void)
{
    Suite *s = suite_create("cmg");
    TCase *tc = tcase_create("cmg");

    tcase_add_test(tc, test_cp_authenticates_to_gateway);
    tcase_add_test(tc, test_gateway_authenticates_to_cp);
    tcase_add_test(tc, test_cp_keeps_connections);
    tcase_add_test(tc, test_gateway_times_out_cp);
    tcase_add_test(tc, test_pki_client);
    tcase_add_test(tc, test_entra_token);
    tcase_add_test(tc, test_crl_check);
    tcase_add_test(tc, test_ctl);
    tcase_add_test(tc, test_url_filter);
    tcase_add_test(tc, test_content_length);
    tcase_add_test(tc, test_round_robin);
    tcase_add_test(tc, test_mapping_form);
    tcase_add_test(tc, test_tls_floor);
    tcase_add_test(tc, test_bulk_token);
    tcase_add_test(tc, test_token_cache);
    tcase_add_test(tc, test_client_token);
    tcase_add_test(tc, test_register_through_cmg);
    tcase_add_test(tc, test_vault);
    tcase_add_test(tc, test_internet_mp_user_policy);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    fixture_make();
    return cm_test_main(cmg_suite());
}
