/* test-mp.c - the management point alone and in front of the site. */
#include <string.h>

#include "roles.h"

static void
expect_reason(const CmResponse *resp, CmReason reason)
{
    ck_assert_msg(resp->reason == reason, "expected %s, got %d %s: %s", cm_reason_name(reason),
                  resp->status, cm_reason_name(resp->reason), resp->message ? resp->message : "");
}

static CmMpVerdict
ask(TestLab *lab, CmEndpoint ep, CmTransport t, const char *body, CmResponse *resp)
{
    CmRequest req = {.ep = ep, .transport = t};
    req.body = (const guint8 *)body;
    req.body_len = body ? strlen(body) : 0;
    return cm_mp_handle(lab->mps[0], &req, lab->now, resp);
}

/* Location, the MP certificate and the site information are anonymous and
 * answered by the MP itself.  REQ: NET-01, NET-02 */
START_TEST(test_anonymous)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 2);
    CmResponse resp = {0};
    g_autoptr(json_t) list = NULL, cert = NULL, info = NULL;

    ck_assert_int_eq(ask(lab, CM_EP_LOCATION, CM_TRANSPORT_HTTPS, NULL, &resp), CM_MP_ANSWERED);
    list = test_response_json(&resp);
    ck_assert_int_eq(json_array_size(json_object_get(list, "mps")), 2);
    ck_assert(json_is_true(json_object_get(json_array_get(json_object_get(list, "mps"), 0), "https")));
    cm_response_clear(&resp);
    ck_assert_int_eq(ask(lab, CM_EP_MPCERT, CM_TRANSPORT_HTTPS, NULL, &resp), CM_MP_ANSWERED);
    cert = test_response_json(&resp);
    cm_response_clear(&resp);
    {
        g_autoptr(GBytes) der = cm_json_b64(cert, "cert", CM_CERT_MAX_DER, NULL);
        g_autoptr(CmCert) c = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), NULL);
        ck_assert(cm_cert_check_signed_by(c, cm_site_trk(lab->site), lab->now, NULL));
    }
    ck_assert_int_eq(ask(lab, CM_EP_SITEINFO, CM_TRANSPORT_HTTPS, NULL, &resp), CM_MP_ANSWERED);
    info = test_response_json(&resp);
    cm_response_clear(&resp);
    {
        g_autofree char *trk = cm_site_export_trk(lab->site);
        ck_assert_str_eq(json_string_value(json_object_get(info, "trk")), trk);
    }
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->forwarded, 0);
}
END_TEST

static void
expect_body(const CmResponse *resp, const json_t *obj)
{
    g_autofree char *want = cm_json_dump(obj);

    ck_assert_int_eq(resp->status, 200);
    ck_assert_ptr_nonnull(resp->body);
    ck_assert_uint_eq(g_bytes_get_size(resp->body), strlen(want));
    ck_assert(memcmp(g_bytes_get_data(resp->body, NULL), want, strlen(want)) == 0);
}

/* The anonymous answers are the site's published information as it was
 * last given to the MP, byte for byte, and new information replaces them.
 * REQ: NET-01, NET-02 */
START_TEST(test_anonymous_current)
{
    CmSiteSettings s;
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(json_t) info = NULL, list = NULL;
    g_autoptr(json_t) open = json_pack("{s:b}", "open", 1);
    CmResponse resp = {0};
    GError *error = NULL;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    lab = test_lab_new(&s, 1);
    info = cm_site_siteinfo_json(lab->site);
    list = cm_site_mplist_json(lab->site);

    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_HTTPS, NULL, &resp);
    expect_body(&resp, list);
    cm_response_clear(&resp);
    ask(lab, CM_EP_SITEINFO, CM_TRANSPORT_HTTPS, NULL, &resp);
    expect_body(&resp, info);
    cm_response_clear(&resp);
    /* the same answer every time */
    ask(lab, CM_EP_SITEINFO, CM_TRANSPORT_HTTPS, NULL, &resp);
    expect_body(&resp, info);
    cm_response_clear(&resp);

    json_object_set_new(info, "note", json_string("changed"));
    json_array_clear(json_object_get(list, "mps"));
    ck_assert(cm_mp_update_site(lab->mps[0], info, list, &error));
    cm_assert_no_error(error);
    ask(lab, CM_EP_SITEINFO, CM_TRANSPORT_HTTPS, NULL, &resp);
    expect_body(&resp, info);
    cm_response_clear(&resp);
    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_HTTPS, NULL, &resp);
    expect_body(&resp, list);
    cm_response_clear(&resp);
    /* information the MP cannot use changes nothing */
    ck_assert(!cm_mp_update_site(lab->mps[0], NULL, list, &error));
    g_clear_error(&error);
    ask(lab, CM_EP_SITEINFO, CM_TRANSPORT_HTTPS, NULL, &resp);
    expect_body(&resp, info);
    cm_response_clear(&resp);
    /* the keep-alive answer is the JSON {"open": true} */
    {
        g_autoptr(TestClient) c = test_client_new(7, "");
        g_autoptr(json_t) body = NULL;
        test_client_register(lab, c, &resp);
        ck_assert_int_eq(resp.status, 200);
        cm_response_clear(&resp);
        body = json_pack("{s:s}", "smsid", c->smsid);
        test_client_send(lab, c, CM_EP_NOTIFY, body, &resp); /* the site opens the channel */
        expect_body(&resp, open);
        cm_response_clear(&resp);
        test_client_send(lab, c, CM_EP_NOTIFY, body, &resp); /* the MP keeps it alive */
        expect_body(&resp, open);
        cm_response_clear(&resp);
        ck_assert_int_eq(cm_mp_counters(lab->mps[0])->keepalives, 1);
    }
}
END_TEST

/* HTTP is refused unless the site still allows it (deprecated).
 * REQ: MSG-05 */
START_TEST(test_https_only)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    CmSiteSettings s = *cm_site_settings(lab->site);
    CmResponse resp = {0};

    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_HTTP, NULL, &resp);
    expect_reason(&resp, CM_REASON_HTTPS_REQUIRED);
    cm_response_clear(&resp);
    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_EHTTP, NULL, &resp);
    expect_reason(&resp, CM_REASON_HTTPS_REQUIRED);
    cm_response_clear(&resp);
    s.communication = CM_COMM_EHTTP;
    ck_assert(cm_site_set_settings(lab->site, &s, "admin", lab->now, NULL));
    test_lab_refresh_mps(lab);
    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_EHTTP, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_HTTP, NULL, &resp);
    expect_reason(&resp, CM_REASON_HTTPS_REQUIRED);
    cm_response_clear(&resp);
    s.communication = CM_COMM_HTTP_OR_HTTPS;
    ck_assert(cm_site_set_settings(lab->site, &s, "admin", lab->now, NULL));
    test_lab_refresh_mps(lab);
    ask(lab, CM_EP_LOCATION, CM_TRANSPORT_HTTP, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
}
END_TEST

/* The MP applies the site's signing rules before the site sees anything.
 * REQ: MSG-01 */
START_TEST(test_mp_signing_rules)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    g_autoptr(TestClient) c = test_client_new(7, "");
    CmResponse resp = {0};
    CmRequest req = {.ep = CM_EP_INVENTORY, .transport = CM_TRANSPORT_HTTPS};
    const char *body = "{}";

    req.body = (const guint8 *)body;
    req.body_len = 2;
    /* no client ID */
    ck_assert_int_eq(cm_mp_handle(lab->mps[0], &req, lab->now, &resp), CM_MP_ANSWERED);
    expect_reason(&resp, CM_REASON_BAD_REQUEST);
    cm_response_clear(&resp);
    g_strlcpy(req.smsid, c->smsid, sizeof req.smsid);
    ck_assert_int_eq(cm_mp_handle(lab->mps[0], &req, lab->now, &resp), CM_MP_ANSWERED);
    expect_reason(&resp, CM_REASON_UNSIGNED);
    cm_response_clear(&resp);
    ck_assert(cm_msg_sign(&req, c->key, CM_HASH_SHA1, NULL));
    ck_assert_int_eq(cm_mp_handle(lab->mps[0], &req, lab->now, &resp), CM_MP_ANSWERED);
    expect_reason(&resp, CM_REASON_SHA1_REFUSED);
    cm_response_clear(&resp);
    ck_assert(cm_msg_sign(&req, c->key, CM_HASH_SHA256, NULL));
    ck_assert_int_eq(cm_mp_handle(lab->mps[0], &req, lab->now, &resp), CM_MP_FORWARD);
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->refusals[CM_REASON_UNSIGNED], 1);
}
END_TEST

START_TEST(test_mp_bounds)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    CmResponse resp = {0};
    CmRequest req = {.ep = CM_EP_NONE, .transport = CM_TRANSPORT_HTTPS};
    g_autofree char *big = g_strnfill(cm_ep_body_max(CM_EP_STATUS) + 1, ' ');

    cm_mp_handle(lab->mps[0], &req, lab->now, &resp);
    expect_reason(&resp, CM_REASON_UNKNOWN_ENDPOINT);
    ck_assert_int_eq(resp.status, 404);
    cm_response_clear(&resp);
    ask(lab, CM_EP_STATUS, CM_TRANSPORT_HTTPS, big, &resp);
    expect_reason(&resp, CM_REASON_TOO_LARGE);
    ck_assert_int_eq(resp.status, 413);
    cm_response_clear(&resp);
}
END_TEST

/* A blocked client's open notification channel keeps answering its
 * keep-alives until it disconnects.  REQ: REG-05, REG-03 */
START_TEST(test_notification_channel)
{
    CmSiteSettings s;
    g_autoptr(TestLab) lab = NULL;
    g_autoptr(TestClient) c = test_client_new(9, "");
    CmResponse resp = {0};
    g_autoptr(json_t) body = NULL;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    lab = test_lab_new(&s, 1);
    test_client_register(lab, c, &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    body = json_pack("{s:s}", "smsid", c->smsid);
    test_client_send(lab, c, CM_EP_NOTIFY, body, &resp); /* opens the channel via the site */
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);
    ck_assert_uint_eq(cm_mp_channel_count(lab->mps[0]), 1);
    ck_assert(cm_site_admin_block(lab->site, c->smsid, "admin", lab->now, NULL));
    for (int i = 0; i < 3; i++) {
        test_client_send(lab, c, CM_EP_NOTIFY, body, &resp);
        ck_assert_int_eq(resp.status, 200);
        cm_response_clear(&resp);
    }
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->keepalives, 3);
    /* everything else is refused */
    test_client_send(lab, c, CM_EP_POLICY_ASSIGNMENTS, body, &resp);
    expect_reason(&resp, CM_REASON_BLOCKED);
    cm_response_clear(&resp);
    /* after it disconnects it cannot open a channel again */
    cm_mp_channel_close(lab->mps[0], c->smsid);
    test_client_send(lab, c, CM_EP_NOTIFY, body, &resp);
    expect_reason(&resp, CM_REASON_BLOCKED);
    cm_response_clear(&resp);
}
END_TEST

/* The client package for automatic client upgrade: anonymous, answered by
 * the MP itself, unsigned, and whatever the MP was given, including by
 * whoever controls it.  REQ: POL-05 */
START_TEST(test_client_package)
{
    g_autoptr(TestLab) lab = test_lab_new(NULL, 1);
    CmResponse resp = {0};
    g_autoptr(json_t) pkg = NULL;
    g_autoptr(json_t) info = cm_site_siteinfo_json(lab->site);
    g_autoptr(json_t) list = cm_site_mplist_json(lab->site);
    GError *error = NULL;
    const char *hash = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
    CmMpClientPackage good = {.version = "5.00.9122.1000",
                              .url = "http://mp1.corp.example/CCM_Client/ccmsetup.exe",
                              .hash = hash};
    CmMpClientPackage bad[] = {
        {.version = "5.00.9122.1000.1", .url = "http://x/", .hash = hash},
        {.version = "5..9122", .url = "http://x/", .hash = hash},
        {.version = "5.", .url = "http://x/", .hash = hash},
        {.version = "", .url = "http://x/", .hash = hash},
        {.version = NULL, .url = "http://x/", .hash = hash},
        {.version = "5.0", .url = "", .hash = hash},
        {.version = "5.0", .url = NULL, .hash = hash},
        {.version = "5.0", .url = "http://x/", .hash = "beef"},
        {.version = "5.0", .url = "http://x/", .hash = NULL},
        {.version = "5.0",
         .url = "http://x/",
         .hash = "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
    };

    /* Nothing published: not-found, answered by the MP alone. */
    ck_assert_int_eq(ask(lab, CM_EP_CLIENT_PACKAGE, CM_TRANSPORT_HTTPS, "{}", &resp),
                     CM_MP_ANSWERED);
    expect_reason(&resp, CM_REASON_NOT_FOUND);
    ck_assert_int_eq(resp.status, 404);
    cm_response_clear(&resp);

    ck_assert(cm_mp_set_client_package(lab->mps[0], &good, &error));
    cm_assert_no_error(error);
    /* No client ID, no signature: anyone may ask. */
    ck_assert_int_eq(ask(lab, CM_EP_CLIENT_PACKAGE, CM_TRANSPORT_HTTPS, "{}", &resp),
                     CM_MP_ANSWERED);
    pkg = test_response_json(&resp);
    cm_response_clear(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(pkg, "version")), "5.00.9122.1000");
    ck_assert_str_eq(json_string_value(json_object_get(pkg, "url")), good.url);
    ck_assert_str_eq(json_string_value(json_object_get(pkg, "hash")),
                     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    ck_assert_ptr_null(json_object_get(pkg, "signature"));
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->forwarded, 0);
    ck_assert_int_eq(cm_mp_counters(lab->mps[0])->requests[CM_EP_CLIENT_PACKAGE], 2);

    /* Malformed packages are refused and the published one stays. */
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!cm_mp_set_client_package(lab->mps[0], &bad[i], &error), "package %zu", i);
        ck_assert(g_error_matches(error, CM_MP_ERROR, 0));
        ck_assert_msg(strstr(error->message, "client package") != NULL, "%s", error->message);
        g_clear_error(&error);
    }
    ask(lab, CM_EP_CLIENT_PACKAGE, CM_TRANSPORT_HTTPS, "{}", &resp);
    ck_assert_int_eq(resp.status, 200);
    cm_response_clear(&resp);

    /* The site's transport rules apply as to any request (an HTTPS-only
     * site), and the body bound. */
    ask(lab, CM_EP_CLIENT_PACKAGE, CM_TRANSPORT_HTTP, "{}", &resp);
    expect_reason(&resp, CM_REASON_HTTPS_REQUIRED);
    cm_response_clear(&resp);
    {
        g_autofree char *big = g_strnfill(cm_ep_body_max(CM_EP_CLIENT_PACKAGE) + 1, ' ');
        ask(lab, CM_EP_CLIENT_PACKAGE, CM_TRANSPORT_HTTPS, big, &resp);
        expect_reason(&resp, CM_REASON_TOO_LARGE);
        cm_response_clear(&resp);
    }

    /* Withdrawn. */
    ck_assert(cm_mp_set_client_package(lab->mps[0], NULL, &error));
    ask(lab, CM_EP_CLIENT_PACKAGE, CM_TRANSPORT_HTTPS, "{}", &resp);
    expect_reason(&resp, CM_REASON_NOT_FOUND);
    cm_response_clear(&resp);

    /* Given at creation; a malformed one fails the creation. */
    {
        CmMpConfig mc = {.name = lab->mp_info[0].name,
                         .role_id = lab->mp_info[0].role_id,
                         .mp_cert = lab->mp_certs[0],
                         .siteinfo = info,
                         .mplist = list,
                         .client_package = &good};
        CmMp *mp = cm_mp_new(&mc, &error);
        CmRequest req = {.ep = CM_EP_CLIENT_PACKAGE, .transport = CM_TRANSPORT_HTTPS};
        cm_assert_no_error(error);
        req.body = (const guint8 *)"{}";
        req.body_len = 2;
        ck_assert_int_eq(cm_mp_handle(mp, &req, lab->now, &resp), CM_MP_ANSWERED);
        ck_assert_int_eq(resp.status, 200);
        cm_response_clear(&resp);
        cm_mp_free(mp);
        mc.client_package = &bad[0];
        ck_assert_ptr_null(cm_mp_new(&mc, &error));
        ck_assert(g_error_matches(error, CM_MP_ERROR, 0));
        g_clear_error(&error);
    }
}
END_TEST

static Suite *
mp_suite(void)
{
    Suite *s = suite_create("mp");
    TCase *tc = tcase_create("mp");

    tcase_add_test(tc, test_anonymous);
    tcase_add_test(tc, test_anonymous_current);
    tcase_add_test(tc, test_https_only);
    tcase_add_test(tc, test_mp_signing_rules);
    tcase_add_test(tc, test_mp_bounds);
    tcase_add_test(tc, test_notification_channel);
    tcase_add_test(tc, test_client_package);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(mp_suite());
}
