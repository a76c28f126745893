/* test-json.c - the bounded JSON codec, its field getters, and the hex,
 * base64url and base64 encodings. */
#include "testutil.h"

#include <string.h>

/* ------------------------------------------------------------ helpers */

static json_t *
parse_str(const char *s, GError **error)
{
    return cm_json_parse(s, strlen(s), CM_JSON_DEFAULT_MAX, error);
}

static void
assert_bytes(GBytes *b, const void *want, size_t want_len)
{
    gsize n;
    const void *d;

    ck_assert_ptr_nonnull(b);
    d = g_bytes_get_data(b, &n);
    ck_assert_uint_eq(n, want_len);
    if (want_len > 0)
        ck_assert_mem_eq(d, want, want_len);
}

/* Asserts the error is INVALID and its message contains needle. */
static void
assert_invalid_msg(GError **error, const char *needle)
{
    ck_assert_ptr_nonnull(*error);
    ck_assert_msg(strstr((*error)->message, needle) != NULL, "message \"%s\" lacks \"%s\"",
                  (*error)->message, needle);
    cm_assert_error(error, CM_PROTO_ERROR_INVALID);
}

/* A string of depth nested arrays inside a top-level object. */
static char *
nested(int depth)
{
    GString *s = g_string_new("{\"a\":");
    for (int i = 1; i < depth; i++)
        g_string_append_c(s, '[');
    g_string_append(s, "1");
    for (int i = 1; i < depth; i++)
        g_string_append_c(s, ']');
    g_string_append_c(s, '}');
    return g_string_free(s, FALSE);
}

/* ----------------------------------------------------------- hex */

START_TEST(test_hex_encode)
{
    static const guint8 data[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    char *s = cm_enc_hex(data, sizeof data);

    ck_assert_str_eq(s, "0001ABCDEFFF");
    g_free(s);
    s = cm_enc_hex(NULL, 0);
    ck_assert_str_eq(s, "");
    g_free(s);
}
END_TEST

START_TEST(test_hex_decode)
{
    static const guint8 want[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    GError *error = NULL;
    GBytes *b;

    /* Either case decodes. */
    b = cm_enc_hex_decode("0001abCDefFF", sizeof want, &error);
    cm_assert_no_error(error);
    assert_bytes(b, want, sizeof want);
    g_bytes_unref(b);

    b = cm_enc_hex_decode("", 0, &error);
    cm_assert_no_error(error);
    assert_bytes(b, NULL, 0);
    g_bytes_unref(b);
}
END_TEST

START_TEST(test_hex_decode_rejects)
{
    GError *error = NULL;

    ck_assert_ptr_null(cm_enc_hex_decode("ABC", 10, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_enc_hex_decode("AG", 10, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_enc_hex_decode("A ", 10, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_enc_hex_decode("0x00", 10, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_enc_hex_decode(NULL, 10, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    /* Three bytes against a bound of two, even or odd digit counts. */
    ck_assert_ptr_null(cm_enc_hex_decode("AABBCC", 2, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_enc_hex_decode("AABBC", 2, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_enc_hex_decode("AA", 0, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

/* ----------------------------------------------------- base64url */

/* RFC 4648 section 10 test vectors. */
static const struct {
    const char *plain, *b64, *b64url;
} vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

START_TEST(test_b64_vectors)
{
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(vectors); i++) {
        const char *p = vectors[i].plain;
        char *s;
        GBytes *b;

        s = cm_enc_b64((const guint8 *)p, strlen(p));
        ck_assert_str_eq(s, vectors[i].b64);
        g_free(s);
        s = cm_enc_b64url((const guint8 *)p, strlen(p));
        ck_assert_str_eq(s, vectors[i].b64url);
        g_free(s);

        b = cm_enc_b64_decode(vectors[i].b64, strlen(vectors[i].b64), 16, &error);
        cm_assert_no_error(error);
        assert_bytes(b, p, strlen(p));
        g_bytes_unref(b);
        b = cm_enc_b64url_decode(vectors[i].b64url, strlen(vectors[i].b64url), 16, &error);
        cm_assert_no_error(error);
        assert_bytes(b, p, strlen(p));
        g_bytes_unref(b);
    }
}
END_TEST

START_TEST(test_b64url_alphabet)
{
    static const guint8 data[] = {0xfb, 0xff, 0xbf};
    GError *error = NULL;
    char *s = cm_enc_b64url(data, sizeof data);
    char *std = cm_enc_b64(data, sizeof data);
    GBytes *b;

    ck_assert_str_eq(s, "-_-_");
    ck_assert_str_eq(std, "+/+/");
    b = cm_enc_b64url_decode(s, strlen(s), sizeof data, &error);
    cm_assert_no_error(error);
    assert_bytes(b, data, sizeof data);
    g_bytes_unref(b);
    b = cm_enc_b64_decode(std, strlen(std), sizeof data, &error);
    cm_assert_no_error(error);
    assert_bytes(b, data, sizeof data);
    g_bytes_unref(b);
    g_free(s);
    g_free(std);
}
END_TEST

START_TEST(test_b64url_decode_length_not_nul)
{
    GError *error = NULL;
    /* The decoder reads exactly len bytes: a JWT part is followed by '.'. */
    GBytes *b = cm_enc_b64url_decode("Zm9v.Zm9v", 4, 3, &error);

    cm_assert_no_error(error);
    assert_bytes(b, "foo", 3);
    g_bytes_unref(b);
}
END_TEST

START_TEST(test_b64url_decode_rejects)
{
    static const char *const bad[] = {
        "Zg==",  /* padded */
        "Zg=",   /* padded */
        "Zm9vY", /* length 1 mod 4 */
        "Zm+v",  /* standard alphabet */
        "Zm/v",  /* standard alphabet */
        "Zm9 v", /* space */
        "Zm9\n", /* newline */
        "Zh",    /* non-canonical: stray bits in the last character */
        "Zm9",   /* non-canonical */
        "Zm\x80v",
    };
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GBytes *b = cm_enc_b64url_decode(bad[i], strlen(bad[i]), 100, &error);
        ck_assert_msg(b == NULL, "\"%s\" was accepted", bad[i]);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    /* An embedded NUL inside len is a bad character, not an end. */
    ck_assert_ptr_null(cm_enc_b64url_decode("Zm\0v", 4, 100, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_enc_b64url_decode("Zm9vYmFy", 8, 5, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_enc_b64url_decode("Zm9vYg", 6, 3, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_b64_decode_rejects)
{
    static const char *const bad[] = {
        "Zg",       /* unpadded */
        "Zg=",      /* short padding */
        "Z===",     /* too much padding */
        "====",     /* only padding */
        "=Zg=",     /* padding first */
        "Zg==Zg==", /* padding inside */
        "Zm-v",     /* url alphabet */
        "Zm_v",     /* url alphabet */
        "Zm9v\n",   /* newline */
        "Zm9 ",     /* space */
        "Zh==",     /* non-canonical */
        "Zm9=",     /* non-canonical */
    };
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GBytes *b = cm_enc_b64_decode(bad[i], strlen(bad[i]), 100, &error);
        ck_assert_msg(b == NULL, "\"%s\" was accepted", bad[i]);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    ck_assert_ptr_null(cm_enc_b64_decode("Zm9vYmFy", 8, 5, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
    ck_assert_ptr_null(cm_enc_b64_decode("Zm9vYg==", 8, 3, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_enc_roundtrip)
{
    GError *error = NULL;

    for (size_t len = 0; len < 200; len++) {
        guint8 data[200];
        char *h, *u, *s;
        GBytes *b;

        /* Every byte value, in varying positions. */
        for (size_t i = 0; i < len; i++)
            data[i] = (guint8)(i * 131 + len * 17 + 7);
        h = cm_enc_hex(data, len);
        u = cm_enc_b64url(data, len);
        s = cm_enc_b64(data, len);

        b = cm_enc_hex_decode(h, len, &error);
        cm_assert_no_error(error);
        assert_bytes(b, data, len);
        g_bytes_unref(b);
        b = cm_enc_b64url_decode(u, strlen(u), len, &error);
        cm_assert_no_error(error);
        assert_bytes(b, data, len);
        g_bytes_unref(b);
        b = cm_enc_b64_decode(s, strlen(s), len, &error);
        cm_assert_no_error(error);
        assert_bytes(b, data, len);
        g_bytes_unref(b);
        /* One byte less of room is too little. */
        if (len > 0) {
            ck_assert_ptr_null(cm_enc_b64url_decode(u, strlen(u), len - 1, &error));
            cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
            ck_assert_ptr_null(cm_enc_b64_decode(s, strlen(s), len - 1, &error));
            cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
            ck_assert_ptr_null(cm_enc_hex_decode(h, len - 1, &error));
            cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
        }
        g_free(h);
        g_free(u);
        g_free(s);
    }
}
END_TEST

/* --------------------------------------------------------- parsing */

START_TEST(test_parse_and_dump)
{
    GError *error = NULL;
    json_t *obj = parse_str(
        " {\"b\": 1, \"a\": [true, null, \"x\"], \"c\": {\"z\": 2, \"y\": 1.5}}\n", &error);
    char *s;

    cm_assert_no_error(error);
    ck_assert(json_is_object(obj));
    s = cm_json_dump(obj);
    /* Compact and sorted, at every level. */
    ck_assert_str_eq(s, "{\"a\":[true,null,\"x\"],\"b\":1,\"c\":{\"y\":1.5,\"z\":2}}");
    g_free(s);
    json_decref(obj);
}
END_TEST

START_TEST(test_dump_is_stable)
{
    GError *error = NULL;
    json_t *a = parse_str("{\"x\":1,\"y\":\"\xc3\xa9\",\"z\":[1,2]}", &error);
    json_t *b = json_pack("{s:[i,i],s:s,s:i}", "z", 1, 2, "y", "\xc3\xa9", "x", 1);
    char *sa, *sb;

    cm_assert_no_error(error);
    sa = cm_json_dump(a);
    sb = cm_json_dump(b);
    ck_assert_str_eq(sa, sb);
    ck_assert_str_eq(sa, "{\"x\":1,\"y\":\"\xc3\xa9\",\"z\":[1,2]}");
    g_free(sa);
    g_free(sb);
    json_decref(a);
    json_decref(b);
    ck_assert_ptr_null(cm_json_dump(NULL));
}
END_TEST

START_TEST(test_parse_size_bound)
{
    GError *error = NULL;
    const char *s = "{\"a\":\"0123456789\"}";
    size_t n = strlen(s);
    json_t *obj;

    obj = cm_json_parse(s, n, n, &error);
    cm_assert_no_error(error);
    json_decref(obj);
    ck_assert_ptr_null(cm_json_parse(s, n, n - 1, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_parse_malformed)
{
    static const char *const bad[] = {
        "{\"a\":}",      "{\"a\":1",       "{\"a\":1}x",      "{'a':1}",
        "{a:1}",         "{\"a\":1,}",     "{\"a\":01}",      "{\"a\":.5}",
        "{\"a\":NaN}",   "\xef\xbb\xbf{}", "{\"a\":\"\t\"}",  "{\"a\":99999999999999999999}",
        "{\"a\":1e400}", "{} {}",          "{\"a\":\"\\x\"}", " ",
    };
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        json_t *obj = parse_str(bad[i], &error);
        ck_assert_msg(obj == NULL, "\"%s\" was accepted", bad[i]);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    ck_assert_ptr_null(cm_json_parse("", 0, 100, &error));
    assert_invalid_msg(&error, "empty");
    ck_assert_ptr_null(cm_json_parse(NULL, 0, 100, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
}
END_TEST

START_TEST(test_parse_nul)
{
    GError *error = NULL;
    static const char raw[] = "{\"a\":\"b\0c\"}";

    /* A raw NUL byte, and the escaped one that would cut a C string. */
    ck_assert_ptr_null(cm_json_parse(raw, sizeof raw - 1, 100, &error));
    assert_invalid_msg(&error, "NUL");
    ck_assert_ptr_null(cm_json_parse("{}", 3, 100, &error));
    assert_invalid_msg(&error, "NUL");
    ck_assert_ptr_null(parse_str("{\"a\":\"b\\u0000c\"}", &error));
    assert_invalid_msg(&error, "NUL");
    ck_assert_ptr_null(parse_str("{\"a\\u0000\":1}", &error));
    assert_invalid_msg(&error, "NUL");
}
END_TEST

START_TEST(test_parse_utf8)
{
    static const char *const bad[] = {
        "{\"a\":\"\xff\"}",         /* not UTF-8 at all */
        "{\"a\":\"\xc0\xaf\"}",     /* overlong '/' */
        "{\"a\":\"\xed\xa0\x80\"}", /* encoded surrogate */
        "{\"a\":\"\xe2\x82\"}",     /* truncated sequence */
        "{\"\xfe\":1}",             /* in a key */
    };
    GError *error = NULL;
    json_t *obj;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_ptr_null(parse_str(bad[i], &error));
        assert_invalid_msg(&error, "UTF-8");
    }
    /* A lone surrogate escape is no character either. */
    ck_assert_ptr_null(parse_str("{\"a\":\"\\ud800\"}", &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    /* Valid multi-byte text and escapes pass. */
    obj = parse_str("{\"a\":\"\xe2\x82\xac \\u20ac \\ud83d\\ude00\"}", &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(json_string_value(json_object_get(obj, "a")),
                     "\xe2\x82\xac \xe2\x82\xac \xf0\x9f\x98\x80");
    json_decref(obj);
}
END_TEST

START_TEST(test_parse_duplicate_keys)
{
    GError *error = NULL;
    json_t *obj;

    ck_assert_ptr_null(parse_str("{\"a\":1,\"a\":2}", &error));
    assert_invalid_msg(&error, "duplicate key");
    ck_assert_ptr_null(parse_str("{\"x\":{\"a\":1,\"b\":2,\"a\":1}}", &error));
    assert_invalid_msg(&error, "duplicate key");
    /* The same key after an escape is the same key. */
    ck_assert_ptr_null(parse_str("{\"a\":1,\"\\u0061\":2}", &error));
    assert_invalid_msg(&error, "duplicate key");
    /* The same key in sibling objects is fine. */
    obj = parse_str("{\"x\":{\"a\":1},\"y\":{\"a\":1}}", &error);
    cm_assert_no_error(error);
    json_decref(obj);
}
END_TEST

START_TEST(test_parse_depth)
{
    GError *error = NULL;
    char *ok = nested(CM_JSON_MAX_DEPTH);
    char *deep = nested(CM_JSON_MAX_DEPTH + 1);
    char *very = nested(100000);
    json_t *obj;

    obj = parse_str(ok, &error);
    cm_assert_no_error(error);
    json_decref(obj);
    ck_assert_ptr_null(parse_str(deep, &error));
    assert_invalid_msg(&error, "deeper");
    ck_assert_ptr_null(cm_json_parse(very, strlen(very), strlen(very), &error));
    assert_invalid_msg(&error, "deeper");
    /* Brackets inside strings, even after escaped quotes, do not nest. */
    obj = parse_str("{\"a\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{\\\\\"}", &error);
    cm_assert_no_error(error);
    json_decref(obj);
    g_free(ok);
    g_free(deep);
    g_free(very);
}
END_TEST

START_TEST(test_parse_top_level)
{
    static const char *const bad[] = {"[]",   "[{\"a\":1}]", "\"x\"", "1",
                                      "-2.5", "null",        "true",  "false"};
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_ptr_null(parse_str(bad[i], &error));
        assert_invalid_msg(&error, "must be an object");
    }
}
END_TEST

/* --------------------------------------------------------- getters */

static const char *const fields_json =
    "{\"smsid\":\"GUID:5A1C2D3E-0000-4000-8000-000000000001\",\"name\":\"pc1\",\"n\":42,"
    "\"neg\":-7,\"real\":1.5,\"yes\":true,\"no\":false,\"nul\":null,"
    "\"blob\":\"Zm9vYmFy\",\"badblob\":\"Zm9v!\",\"list\":[1,2,3],\"obj\":{\"k\":1}}";

static json_t *
fields(void)
{
    GError *error = NULL;
    json_t *obj = parse_str(fields_json, &error);

    cm_assert_no_error(error);
    return obj;
}

START_TEST(test_get_str)
{
    GError *error = NULL;
    json_t *obj = fields();
    const char *s;

    s = cm_json_str(obj, "smsid", CM_ID_SMSID_LEN, &error);
    cm_assert_no_error(error);
    ck_assert_str_eq(s, "GUID:5A1C2D3E-0000-4000-8000-000000000001");

    ck_assert_ptr_null(cm_json_str(obj, "smsid", 40, &error));
    assert_invalid_msg(&error, "field \"smsid\": expected a string of at most 40 bytes");
    ck_assert_ptr_null(cm_json_str(obj, "missing", 10, &error));
    assert_invalid_msg(&error, "field \"missing\" is missing");
    ck_assert_ptr_null(cm_json_str(obj, "n", 10, &error));
    assert_invalid_msg(&error, "field \"n\": expected a string of at most 10 bytes");
    ck_assert_ptr_null(cm_json_str(obj, "nul", 10, &error));
    assert_invalid_msg(&error, "field \"nul\"");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_str_message)
{
    GError *error = NULL;
    json_t *obj = json_pack("{s:i}", "smsid", 5);

    ck_assert_ptr_null(cm_json_str(obj, "smsid", CM_ID_SMSID_LEN, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_str_eq(error->message,
                     "field \"smsid\": expected a string of at most 41 bytes, got an integer");
    g_clear_error(&error);
    json_decref(obj);
}
END_TEST

START_TEST(test_get_str_embedded_nul)
{
    GError *error = NULL;
    json_t *obj = json_object();

    /* Built in code, not parsed: the getter still refuses a cut string. */
    json_object_set_new(obj, "s", json_stringn("a\0b", 3));
    ck_assert_ptr_null(cm_json_str(obj, "s", 10, &error));
    assert_invalid_msg(&error, "NUL");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_opt_str)
{
    GError *error = NULL;
    json_t *obj = fields();

    ck_assert_str_eq(cm_json_opt_str(obj, "name", 10, &error), "pc1");
    cm_assert_no_error(error);
    ck_assert_ptr_null(cm_json_opt_str(obj, "missing", 10, &error));
    cm_assert_no_error(error);
    ck_assert_ptr_null(cm_json_opt_str(obj, "nul", 10, &error));
    cm_assert_no_error(error);
    ck_assert_ptr_null(cm_json_opt_str(obj, "n", 10, &error));
    assert_invalid_msg(&error, "field \"n\"");
    ck_assert_ptr_null(cm_json_opt_str(obj, "name", 2, &error));
    assert_invalid_msg(&error, "at most 2 bytes");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_int)
{
    GError *error = NULL;
    json_t *obj = fields();
    gint64 v = 0;

    ck_assert(cm_json_int(obj, "n", 0, 100, &v, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(v, 42);
    /* Both bounds are inclusive. */
    ck_assert(cm_json_int(obj, "n", 42, 42, &v, &error));
    ck_assert(cm_json_int(obj, "neg", -7, 0, &v, &error));
    ck_assert_int_eq(v, -7);
    cm_assert_no_error(error);

    v = 99;
    ck_assert(!cm_json_int(obj, "n", 0, 41, &v, &error));
    assert_invalid_msg(&error, "field \"n\": expected an integer from 0 to 41, got 42");
    ck_assert_int_eq(v, 99);
    ck_assert(!cm_json_int(obj, "neg", 0, 10, &v, &error));
    assert_invalid_msg(&error, "field \"neg\"");
    ck_assert(!cm_json_int(obj, "real", 0, 10, &v, &error));
    assert_invalid_msg(&error, "got a real number");
    ck_assert(!cm_json_int(obj, "name", 0, 10, &v, &error));
    assert_invalid_msg(&error, "got a string");
    ck_assert(!cm_json_int(obj, "yes", 0, 10, &v, &error));
    assert_invalid_msg(&error, "field \"yes\"");
    ck_assert(!cm_json_int(obj, "missing", 0, 10, &v, &error));
    assert_invalid_msg(&error, "field \"missing\" is missing");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_bool)
{
    GError *error = NULL;
    json_t *obj = fields();
    gboolean b = FALSE;

    ck_assert(cm_json_bool(obj, "yes", &b, &error));
    ck_assert(b);
    ck_assert(cm_json_bool(obj, "no", &b, &error));
    ck_assert(!b);
    cm_assert_no_error(error);
    ck_assert(!cm_json_bool(obj, "n", &b, &error));
    assert_invalid_msg(&error, "field \"n\": expected true or false");
    ck_assert(!cm_json_bool(obj, "nul", &b, &error));
    assert_invalid_msg(&error, "field \"nul\"");
    ck_assert(!cm_json_bool(obj, "missing", &b, &error));
    assert_invalid_msg(&error, "field \"missing\" is missing");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_b64)
{
    GError *error = NULL;
    json_t *obj = fields();
    GBytes *b;

    b = cm_json_b64(obj, "blob", 6, &error);
    cm_assert_no_error(error);
    assert_bytes(b, "foobar", 6);
    g_bytes_unref(b);
    /* Out of bounds is INVALID naming the field, as for other fields. */
    ck_assert_ptr_null(cm_json_b64(obj, "blob", 5, &error));
    assert_invalid_msg(&error, "field \"blob\"");
    ck_assert_ptr_null(cm_json_b64(obj, "badblob", 100, &error));
    assert_invalid_msg(&error, "field \"badblob\"");
    ck_assert_ptr_null(cm_json_b64(obj, "n", 100, &error));
    assert_invalid_msg(&error, "field \"n\"");
    ck_assert_ptr_null(cm_json_b64(obj, "missing", 100, &error));
    assert_invalid_msg(&error, "field \"missing\" is missing");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_array_object)
{
    GError *error = NULL;
    json_t *obj = fields();
    const json_t *v;

    v = cm_json_array(obj, "list", 3, &error);
    cm_assert_no_error(error);
    ck_assert_uint_eq(json_array_size(v), 3);
    ck_assert_ptr_null(cm_json_array(obj, "list", 2, &error));
    assert_invalid_msg(&error, "field \"list\": expected an array of at most 2 items, got 3");
    ck_assert_ptr_null(cm_json_array(obj, "obj", 2, &error));
    assert_invalid_msg(&error, "got an object");
    ck_assert_ptr_null(cm_json_array(obj, "missing", 2, &error));
    assert_invalid_msg(&error, "field \"missing\" is missing");

    v = cm_json_object(obj, "obj", &error);
    cm_assert_no_error(error);
    ck_assert(json_is_object(v));
    ck_assert_ptr_null(cm_json_object(obj, "list", &error));
    assert_invalid_msg(&error, "field \"list\": expected an object, got an array");
    ck_assert_ptr_null(cm_json_object(obj, "missing", &error));
    assert_invalid_msg(&error, "field \"missing\" is missing");
    json_decref(obj);
}
END_TEST

START_TEST(test_get_from_non_object)
{
    GError *error = NULL;
    json_t *arr = json_array();
    gint64 v;

    ck_assert_ptr_null(cm_json_str(arr, "a", 10, &error));
    assert_invalid_msg(&error, "field \"a\"");
    ck_assert_ptr_null(cm_json_opt_str(arr, "a", 10, &error));
    assert_invalid_msg(&error, "field \"a\"");
    ck_assert(!cm_json_int(NULL, "a", 0, 1, &v, &error));
    assert_invalid_msg(&error, "field \"a\"");
    json_decref(arr);
}
END_TEST

static Suite *
json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("enc");

    tcase_add_test(tc, test_hex_encode);
    tcase_add_test(tc, test_hex_decode);
    tcase_add_test(tc, test_hex_decode_rejects);
    tcase_add_test(tc, test_b64_vectors);
    tcase_add_test(tc, test_b64url_alphabet);
    tcase_add_test(tc, test_b64url_decode_length_not_nul);
    tcase_add_test(tc, test_b64url_decode_rejects);
    tcase_add_test(tc, test_b64_decode_rejects);
    tcase_add_test(tc, test_enc_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_and_dump);
    tcase_add_test(tc, test_dump_is_stable);
    tcase_add_test(tc, test_parse_size_bound);
    tcase_add_test(tc, test_parse_malformed);
    tcase_add_test(tc, test_parse_nul);
    tcase_add_test(tc, test_parse_utf8);
    tcase_add_test(tc, test_parse_duplicate_keys);
    tcase_add_test(tc, test_parse_depth);
    tcase_add_test(tc, test_parse_top_level);
    suite_add_tcase(s, tc);

    tc = tcase_create("fields");
    tcase_add_test(tc, test_get_str);
    tcase_add_test(tc, test_get_str_message);
    tcase_add_test(tc, test_get_str_embedded_nul);
    tcase_add_test(tc, test_get_opt_str);
    tcase_add_test(tc, test_get_int);
    tcase_add_test(tc, test_get_bool);
    tcase_add_test(tc, test_get_b64);
    tcase_add_test(tc, test_get_array_object);
    tcase_add_test(tc, test_get_from_non_object);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(json_suite());
}
