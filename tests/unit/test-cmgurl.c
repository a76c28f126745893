/* test-cmgurl.c - CMG URL mappings and internet management point list
 * entries. */
#include "testutil.h"

#include <string.h>

#define ROLE_ID G_GUINT64_CONSTANT(72057594037927939)
#define MAPPING "https://cmg.contoso.com/CCM_Proxy_MutualAuth/72057594037927939/CCM_System"

/* Parses url, which must be refused with code; out must stay as it was. */
static void
expect_refused(const char *url, int code)
{
    GError *error = NULL;
    CmCmgUrl out;

    memset(&out, 0x5a, sizeof out);
    ck_assert_msg(!cm_cmgurl_parse(url, &out, &error), "\"%s\" was accepted", url);
    ck_assert_msg(error != NULL && g_error_matches(error, CM_PROTO_ERROR, code),
                  "\"%s\": expected code %d, got %s", url, code,
                  error != NULL ? error->message : "no error");
    ck_assert_msg(g_utf8_validate(error->message, -1, NULL), "message is not UTF-8");
    g_clear_error(&error);
    for (size_t i = 0; i < sizeof out; i++)
        ck_assert_uint_eq(((guint8 *)&out)[i], 0x5a);
}

START_TEST(test_build)
{
    /* REQ: CMG-10 */
    char *url =
        cm_cmgurl_build("cmg.contoso.com", CM_CMG_AUTH_MUTUAL, ROLE_ID, CM_CMG_EP_CCM_SYSTEM);

    ck_assert_str_eq(url, MAPPING);
    g_free(url);
    url = cm_cmgurl_build("CMG.Contoso.COM", CM_CMG_AUTH_SERVER, 1, CM_CMG_EP_CCM_INCOMING);
    ck_assert_str_eq(url, "https://cmg.contoso.com/CCM_Proxy_ServerAuth/1/CCM_Incoming");
    g_free(url);
    url = cm_cmgurl_build("cmg.contoso.com", CM_CMG_AUTH_MUTUAL, G_MAXUINT64, CM_CMG_EP_SMS_MP);
    ck_assert_str_eq(url,
                     "https://cmg.contoso.com/CCM_Proxy_MutualAuth/18446744073709551615/SMS_MP");
    g_free(url);
}
END_TEST

START_TEST(test_build_refuses)
{
    ck_assert_ptr_null(
        cm_cmgurl_build("cmg.contoso.com", CM_CMG_AUTH_MUTUAL, 0, CM_CMG_EP_CCM_SYSTEM));
    ck_assert_ptr_null(cm_cmgurl_build("", CM_CMG_AUTH_MUTUAL, 1, CM_CMG_EP_CCM_SYSTEM));
    ck_assert_ptr_null(cm_cmgurl_build(NULL, CM_CMG_AUTH_MUTUAL, 1, CM_CMG_EP_CCM_SYSTEM));
    ck_assert_ptr_null(
        cm_cmgurl_build("cmg.contoso.com/x", CM_CMG_AUTH_MUTUAL, 1, CM_CMG_EP_CCM_SYSTEM));
    ck_assert_ptr_null(cm_cmgurl_build("cmg.contoso.com", (CmCmgAuth)7, 1, CM_CMG_EP_CCM_SYSTEM));
    ck_assert_ptr_null(cm_cmgurl_build("cmg.contoso.com", CM_CMG_AUTH_MUTUAL, 1, (CmCmgEndpoint)9));
}
END_TEST

START_TEST(test_endpoint_names)
{
    /* REQ: CMG-10 */
    ck_assert_str_eq(cm_cmgurl_endpoint_name(CM_CMG_EP_CCM_SYSTEM), "CCM_System");
    ck_assert_str_eq(cm_cmgurl_endpoint_name(CM_CMG_EP_CCM_INCOMING), "CCM_Incoming");
    ck_assert_str_eq(cm_cmgurl_endpoint_name(CM_CMG_EP_SMS_MP), "SMS_MP");
    ck_assert_str_eq(cm_cmgurl_endpoint_name((CmCmgEndpoint)42), "unknown");
}
END_TEST

START_TEST(test_parse_mapping)
{
    /* REQ: CMG-10 */
    GError *error = NULL;
    CmCmgUrl u;

    ck_assert(cm_cmgurl_parse(MAPPING, &u, &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(u.cmg_name, "cmg.contoso.com");
    ck_assert_int_eq(u.auth, CM_CMG_AUTH_MUTUAL);
    ck_assert(u.role_id == ROLE_ID);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_CCM_SYSTEM);
    ck_assert_str_eq(u.rest, "");

    ck_assert(cm_cmgurl_parse("https://cmg.contoso.com/CCM_Proxy_ServerAuth/5/CCM_Incoming/"
                              "request/a-b_c.d~e%20f",
                              &u, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(u.auth, CM_CMG_AUTH_SERVER);
    ck_assert(u.role_id == 5);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_CCM_INCOMING);
    ck_assert_str_eq(u.rest, "/request/a-b_c.d~e%20f");

    /* A trailing slash is kept in rest. */
    ck_assert(
        cm_cmgurl_parse("https://cmg.contoso.com/CCM_Proxy_MutualAuth/5/SMS_MP/", &u, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_SMS_MP);
    ck_assert_str_eq(u.rest, "/");
}
END_TEST

START_TEST(test_parse_case_insensitive)
{
    /* REQ: CMG-10 */
    GError *error = NULL;
    CmCmgUrl u;

    /* Proxy and endpoint names match as IIS matches them; the host is
     * lower-cased; rest keeps its case. */
    ck_assert(cm_cmgurl_parse("HTTPS://CMG.Contoso.COM/ccm_proxy_mutualauth/7/ccm_system/Req", &u,
                              &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(u.cmg_name, "cmg.contoso.com");
    ck_assert_int_eq(u.auth, CM_CMG_AUTH_MUTUAL);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_CCM_SYSTEM);
    ck_assert_str_eq(u.rest, "/Req");
    ck_assert(cm_cmgurl_parse("/CCM_PROXY_SERVERAUTH/7/sms_mp", &u, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(u.auth, CM_CMG_AUTH_SERVER);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_SMS_MP);
    ck_assert(cm_cmgurl_parse("/CCM_Proxy_MutualAuth/7/CCM_INCOMING", &u, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_CCM_INCOMING);
}
END_TEST

START_TEST(test_parse_path_form)
{
    /* REQ: CMG-10 */
    GError *error = NULL;
    CmCmgUrl u;

    ck_assert(
        cm_cmgurl_parse("/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut", &u, &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(u.cmg_name, "");
    ck_assert(u.role_id == ROLE_ID);
    ck_assert_int_eq(u.endpoint, CM_CMG_EP_SMS_MP);
    ck_assert_str_eq(u.rest, "/.sms_aut");
}
END_TEST

START_TEST(test_roundtrip)
{
    /* REQ: CMG-10 */
    static const char *const names[] = {"cmg.contoso.com", "a", "x-1.cloudapp.net",
                                        "GraniteFalls.CLOUDAPP.NET", "127.0.0.1"};
    static const guint64 ids[] = {1, 42, G_GUINT64_CONSTANT(72057594037927939), G_MAXUINT64};
    GError *error = NULL;

    for (size_t n = 0; n < G_N_ELEMENTS(names); n++) {
        g_autofree char *lower = g_ascii_strdown(names[n], -1);
        for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
            for (int a = CM_CMG_AUTH_MUTUAL; a <= CM_CMG_AUTH_SERVER; a++) {
                for (int e = CM_CMG_EP_CCM_SYSTEM; e <= CM_CMG_EP_SMS_MP; e++) {
                    char *url = cm_cmgurl_build(names[n], a, ids[i], e);
                    CmCmgUrl u;

                    ck_assert_ptr_nonnull(url);
                    ck_assert_msg(cm_cmgurl_parse(url, &u, &error), "%s: %s", url,
                                  error ? error->message : "");
                    ck_assert_str_eq(u.cmg_name, lower);
                    ck_assert_int_eq(u.auth, a);
                    ck_assert(u.role_id == ids[i]);
                    ck_assert_int_eq(u.endpoint, e);
                    ck_assert_str_eq(u.rest, "");
                    g_free(url);
                }
            }
        }
    }
}
END_TEST

START_TEST(test_parse_refuses_scheme_host)
{
    char label64[80], long_name[300];

    expect_refused("http://cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("ftp://cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System", CM_PROTO_ERROR_INVALID);
    expect_refused("//cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System", CM_PROTO_ERROR_INVALID);
    expect_refused("https:/cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("", CM_PROTO_ERROR_INVALID);
    expect_refused(NULL, CM_PROTO_ERROR_INVALID);
    expect_refused("https://", CM_PROTO_ERROR_INVALID);
    expect_refused("https:///CCM_Proxy_MutualAuth/1/CCM_System", CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg.contoso.com", CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg.contoso.com/", CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg.contoso.com:443/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://user@cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg.contoso.com?x", CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg_1.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg..contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://.cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg.contoso.com./CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://-cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg-.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);
    expect_refused("https://[::1]/CCM_Proxy_MutualAuth/1/CCM_System", CM_PROTO_ERROR_INVALID);
    expect_refused("https://cmg\xc3\xa9.com/CCM_Proxy_MutualAuth/1/CCM_System",
                   CM_PROTO_ERROR_INVALID);

    /* A 64-character label is one too many; a 253-character name fits,
     * 254 does not. */
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".com");
    {
        g_autofree char *url =
            g_strdup_printf("https://%s/CCM_Proxy_MutualAuth/1/CCM_System", label64);
        expect_refused(url, CM_PROTO_ERROR_INVALID);
    }
    for (size_t i = 0; i < 253; i++)
        long_name[i] = (i % 2 == 0) ? 'a' : '.';
    long_name[253] = '\0';
    {
        GError *error = NULL;
        CmCmgUrl u;
        g_autofree char *ok =
            g_strdup_printf("https://%s/CCM_Proxy_MutualAuth/1/CCM_System", long_name);
        g_autofree char *bad = NULL;

        ck_assert(cm_cmgurl_parse(ok, &u, &error));
        cm_assert_no_error(error);
        ck_assert_uint_eq(strlen(u.cmg_name), 253);
        long_name[253] = 'a';
        long_name[254] = '\0';
        bad = g_strdup_printf("https://%s/CCM_Proxy_MutualAuth/1/CCM_System", long_name);
        expect_refused(bad, CM_PROTO_ERROR_INVALID);
    }
}
END_TEST

START_TEST(test_parse_refuses_mapping)
{
    /* REQ: CMG-10 */
    /* Only the published proxies, role IDs and the three endpoints. */
    static const char *const bad[] = {
        "/CCM_Proxy_Other/1/CCM_System",
        "/CCM_Proxy_MutualAuthX/1/CCM_System",
        "/CCM_Proxy_Mutual/1/CCM_System",
        "/CCM_Proxy_MutualAuth/0/CCM_System",
        "/CCM_Proxy_MutualAuth/01/CCM_System",
        "/CCM_Proxy_MutualAuth/-1/CCM_System",
        "/CCM_Proxy_MutualAuth/+1/CCM_System",
        "/CCM_Proxy_MutualAuth/1a/CCM_System",
        "/CCM_Proxy_MutualAuth/18446744073709551616/CCM_System",
        "/CCM_Proxy_MutualAuth//CCM_System",
        "/CCM_Proxy_MutualAuth/1",
        "/CCM_Proxy_MutualAuth/1/",
        "/CCM_Proxy_MutualAuth",
        "/",
        "/CCM_Proxy_MutualAuth/1/CCM_Other",
        "/CCM_Proxy_MutualAuth/1/CCM_SystemX",
        "/CCM_Proxy_MutualAuth/1/CCM_Syste",
        "/CCM_Proxy_MutualAuth/1/SMS_MPX/x",
        "/CCM_Proxy_MutualAuth/1/SMS_DP",
        "/CCM_System",
        "/1/CCM_System",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        expect_refused(bad[i], CM_PROTO_ERROR_INVALID);
}
END_TEST

START_TEST(test_parse_refuses_path_tricks)
{
    /* Anything that could make the path behind the filter differ from the
     * path the filter saw, or give one path two spellings. */
    static const char *const bad[] = {
        "/CCM_Proxy_MutualAuth/1/CCM_System/../../SMS_DP/x",
        "/CCM_Proxy_MutualAuth/1/CCM_System/..",
        "/CCM_Proxy_MutualAuth/1/CCM_System/./x",
        "/CCM_Proxy_MutualAuth/1/CCM_System/.",
        "/CCM_Proxy_MutualAuth/1/../1/CCM_System",
        "/CCM_Proxy_MutualAuth/1/CCM_System//x",
        "//CCM_Proxy_MutualAuth/1/CCM_System",
        "/CCM_Proxy_MutualAuth/1/CCM_System?x=1",
        "/CCM_Proxy_MutualAuth/1/CCM_System/x?",
        "/CCM_Proxy_MutualAuth/1/CCM_System#frag",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%2Fb",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%2fb",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%5Cb",
        "/CCM_Proxy_MutualAuth/1/CCM_System/%2E%2E/x",
        "/CCM_Proxy_MutualAuth/1/CCM_System/%2e",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%252Fb",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%00b",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%zzb",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%2",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a%",
        "/CCM_Proxy_MutualAuth%2F1/CCM_System",
        "/CCM_Proxy_MutualAuth/1/CCM_System\\..\\x",
        "/CCM_Proxy_MutualAuth\\1\\CCM_System",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a b",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a\tb",
        "/CCM_Proxy_MutualAuth/1/CCM_System/a\r\nHost: evil",
        "/CCM_Proxy_MutualAuth/1/CCM_System/\x7f",
        "/CCM_Proxy_MutualAuth/1/CCM_System/caf\xc3\xa9",
        "/CCM_Proxy_MutualAuth/1/CCM_System/\xff",
        "https://cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System/../x",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        expect_refused(bad[i], CM_PROTO_ERROR_INVALID);
}
END_TEST

START_TEST(test_parse_length_bound)
{
    GError *error = NULL;
    CmCmgUrl u;
    const char *prefix = "/CCM_Proxy_MutualAuth/1/CCM_System/";
    GString *s = g_string_new(prefix);

    /* CM_CMG_URL_MAX characters fit, one more is TOO_LARGE. */
    while (s->len < CM_CMG_URL_MAX)
        g_string_append_c(s, 'x');
    ck_assert(cm_cmgurl_parse(s->str, &u, &error));
    cm_assert_no_error(error);
    ck_assert_uint_eq(strlen(u.rest), CM_CMG_URL_MAX - strlen(prefix) + 1);
    g_string_append_c(s, 'x');
    expect_refused(s->str, CM_PROTO_ERROR_TOO_LARGE);
    g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_mp_entry)
{
    /* REQ: CMG-10 */
    GError *error = NULL;
    char name[CM_CMG_NAME_MAX + 1];
    guint64 id = 0;
    char *entry = cm_cmgurl_mp_entry("CMG.contoso.com", ROLE_ID);

    ck_assert_str_eq(entry, "cmg.contoso.com/CCM_Proxy_MutualAuth/72057594037927939");
    ck_assert(cm_cmgurl_mp_entry_parse(entry, name, &id, &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(name, "cmg.contoso.com");
    ck_assert(id == ROLE_ID);
    g_free(entry);

    /* As the client keeps it, any case. */
    ck_assert(cm_cmgurl_mp_entry_parse("GraniteFalls.CLOUDAPP.NET/ccm_proxy_mutualauth/1", name,
                                       &id, &error));
    cm_assert_no_error(error);
    ck_assert_str_eq(name, "granitefalls.cloudapp.net");
    ck_assert(id == 1);

    ck_assert_ptr_null(cm_cmgurl_mp_entry("cmg.contoso.com", 0));
    ck_assert_ptr_null(cm_cmgurl_mp_entry("bad name", 1));
    ck_assert_ptr_null(cm_cmgurl_mp_entry(NULL, 1));
}
END_TEST

START_TEST(test_mp_entry_refuses)
{
    /* REQ: CMG-10 */
    static const char *const bad[] = {
        "cmg.contoso.com/CCM_Proxy_ServerAuth/1",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/1/",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/1/CCM_System",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/",
        "cmg.contoso.com/CCM_Proxy_MutualAuth",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/0",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/007",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/x",
        "cmg.contoso.com/CCM_Proxy_MutualAuth/18446744073709551616",
        "cmg.contoso.com",
        "cmg.contoso.com/",
        "/CCM_Proxy_MutualAuth/1",
        "https://cmg.contoso.com/CCM_Proxy_MutualAuth/1",
        "cmg.contoso.com:443/CCM_Proxy_MutualAuth/1",
        "cmg_x.contoso.com/CCM_Proxy_MutualAuth/1",
        "",
    };
    GError *error = NULL;
    char name[CM_CMG_NAME_MAX + 1];
    guint64 id = 99;

    strcpy(name, "unchanged");
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!cm_cmgurl_mp_entry_parse(bad[i], name, &id, &error), "\"%s\" accepted",
                      bad[i]);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    ck_assert(!cm_cmgurl_mp_entry_parse(NULL, name, &id, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_str_eq(name, "unchanged");
    ck_assert(id == 99);
    {
        GString *s = g_string_new("cmg.contoso.com/CCM_Proxy_MutualAuth/");
        while (s->len <= CM_CMG_URL_MAX)
            g_string_append_c(s, '1');
        ck_assert(!cm_cmgurl_mp_entry_parse(s->str, name, &id, &error));
        cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
        g_string_free(s, TRUE);
    }
}
END_TEST

static Suite *
cmgurl_suite(void)
{
    Suite *s = suite_create("cmgurl");
    TCase *tc = tcase_create("mapping");

    tcase_add_test(tc, test_build);
    tcase_add_test(tc, test_build_refuses);
    tcase_add_test(tc, test_endpoint_names);
    tcase_add_test(tc, test_parse_mapping);
    tcase_add_test(tc, test_parse_case_insensitive);
    tcase_add_test(tc, test_parse_path_form);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_parse_refuses_scheme_host);
    tcase_add_test(tc, test_parse_refuses_mapping);
    tcase_add_test(tc, test_parse_refuses_path_tricks);
    tcase_add_test(tc, test_parse_length_bound);
    suite_add_tcase(s, tc);

    tc = tcase_create("mp-entry");
    tcase_add_test(tc, test_mp_entry);
    tcase_add_test(tc, test_mp_entry_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(cmgurl_suite());
}
