/* test-msg.c - the shared message frame: endpoints, the signature header,
 * reasons and responses. */
#include <string.h>

#include "testutil.h"

START_TEST(test_endpoints)
{
    for (int ep = 1; ep < CM_EP__COUNT; ep++) {
        ck_assert_int_eq(cm_ep_from_path(cm_ep_path((CmEndpoint)ep)), ep);
        ck_assert_int_eq(cm_ep_from_name(cm_ep_name((CmEndpoint)ep)), ep);
        ck_assert_uint_gt(cm_ep_body_max((CmEndpoint)ep), 0);
    }
    /* IIS matches paths case-insensitively */
    ck_assert_int_eq(cm_ep_from_path("/SMS_MP/.sms_aut?MPLIST"), CM_EP_LOCATION);
    ck_assert_int_eq(cm_ep_from_path("/ccm_system/request/../register"), CM_EP_NONE);
    ck_assert_int_eq(cm_ep_from_path(NULL), CM_EP_NONE);
    ck_assert(cm_ep_is_anonymous(CM_EP_STATUS));
    ck_assert(!cm_ep_is_anonymous(CM_EP_INVENTORY));
}
END_TEST

START_TEST(test_signature_header)
{
    g_autoptr(CmKey) key = cm_key_generate(CM_KEY_EC_P256, NULL);
    CmRequest req = {0}, parsed = {0};
    GError *error = NULL;
    g_autofree char *hdr = NULL;

    req.body = (const guint8 *)"{\"a\":1}";
    req.body_len = 7;
    ck_assert(cm_msg_sign(&req, key, CM_HASH_SHA256, &error));
    hdr = cm_msg_format_signature(req.sig_hash, req.sig, req.sig_len);
    ck_assert(g_str_has_prefix(hdr, "sha256 "));
    ck_assert(cm_msg_parse_signature(hdr, &parsed, &error));
    cm_assert_no_error(error);
    ck_assert_uint_eq(parsed.sig_len, req.sig_len);
    ck_assert_mem_eq(parsed.sig, req.sig, req.sig_len);
    ck_assert(cm_sig_verify(key, parsed.sig_hash, req.body, req.body_len, parsed.sig,
                            parsed.sig_len, &error));
    /* malformed headers */
    {
        const char *bad[] = {"",         "sha256",      "sha256 ",   " AAAA",
                             "md5 AAAA", "sha256 !!!!", "sha256AAAA"};
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            CmRequest r = {0};
            ck_assert_msg(!cm_msg_parse_signature(bad[i], &r, &error), "accepted \"%s\"", bad[i]);
            ck_assert_ptr_nonnull(error);
            g_clear_error(&error);
            ck_assert(!r.signed_);
        }
    }
    /* oversized */
    {
        g_autofree char *big = g_strnfill(CM_HDR_MAX + 10, 'A');
        CmRequest r = {0};
        memcpy(big, "sha256 ", 7);
        ck_assert(!cm_msg_parse_signature(big, &r, &error));
        g_clear_error(&error);
    }
}
END_TEST

/* The constant answers are the bytes cm_response_ok would write for the
 * same objects, so a client cannot tell them apart. */
START_TEST(test_const_replies)
{
    const char *consts[] = {CM_REPLY_ACCEPTED, CM_REPLY_OPEN};
    const char *keys[] = {"accepted", "open"};

    for (size_t i = 0; i < G_N_ELEMENTS(consts); i++) {
        CmResponse a = {0}, b = {0};
        g_autoptr(json_t) obj = json_pack("{s:b}", keys[i], 1);
        cm_response_ok_const(&a, consts[i]);
        cm_response_ok(&b, obj);
        ck_assert_int_eq(a.status, 200);
        ck_assert(g_bytes_equal(a.body, b.body));
        cm_response_clear(&a);
        cm_response_clear(&b);
    }
}
END_TEST

START_TEST(test_reasons)
{
    CmResponse resp = {0};
    g_autofree char *json = NULL;
    g_autoptr(json_t) obj = NULL;
    GError *e = g_error_new(CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE, "x");

    ck_assert_int_eq(cm_reason_from_error(e), CM_REASON_TOO_LARGE);
    g_error_free(e);
    for (int r = 0; r < CM_REASON__COUNT; r++)
        ck_assert_int_ge(cm_reason_status((CmReason)r), 200);
    cm_response_refuse(&resp, CM_REASON_BLOCKED, "client %s is blocked", "X");
    ck_assert_int_eq(resp.status, 403);
    json = cm_response_error_json(&resp);
    obj = cm_json_parse(json, strlen(json), 4096, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(obj, "reason")), "blocked");
    ck_assert_str_eq(json_string_value(json_object_get(obj, "message")), "client X is blocked");
    cm_response_clear(&resp);
}
END_TEST

static Suite *
msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tcase_create("msg");

    tcase_add_test(tc, test_endpoints);
    tcase_add_test(tc, test_signature_header);
    tcase_add_test(tc, test_reasons);
    tcase_add_test(tc, test_const_replies);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(msg_suite());
}
