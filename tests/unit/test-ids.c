/* test-ids.c - seeded and OS random generators, and the identifier checkers
 * (site codes, SMSIDs, hardware IDs, MP role IDs). */
#include "testutil.h"

#include <string.h>

#define N_DRAWS 100000

/* ------------------------------------------------------------------ rng */

/* xoshiro256** as published by Blackman and Vigna, to compare against. */
static guint64
ref_rotl(guint64 x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static guint64
ref_xoshiro(guint64 s[4])
{
    guint64 result = ref_rotl(s[1] * 5, 7) * 9;
    guint64 t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

START_TEST(test_rng_matches_reference)
{
    CmRng rng = {.s = {1, 2, 3, 4}, .os = FALSE};
    guint64 ref[4] = {1, 2, 3, 4};

    /* The first output of xoshiro256** from {1,2,3,4} is rotl(10,7)*9. */
    ck_assert_uint_eq(cm_rng_u64(&rng), 11520);
    (void)ref_xoshiro(ref);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(cm_rng_u64(&rng), ref_xoshiro(ref));
}
END_TEST

START_TEST(test_rng_same_seed_same_sequence)
{
    CmRng a, b;

    cm_rng_init_seeded(&a, 42, cm_rng_stream_id("client/1"));
    cm_rng_init_seeded(&b, 42, cm_rng_stream_id("client/1"));
    for (int i = 0; i < 10000; i++)
        ck_assert_uint_eq(cm_rng_u64(&a), cm_rng_u64(&b));
}
END_TEST

/* A scenario replayed with the same seed must give the same report on
 * every build: pin the first outputs so a change to seeding shows. */
START_TEST(test_rng_sequence_is_pinned)
{
    CmRng rng;
    guint64 first[3];

    cm_rng_init_seeded(&rng, 1, 0);
    for (int i = 0; i < 3; i++)
        first[i] = cm_rng_u64(&rng);
    ck_assert_uint_eq(first[0], G_GUINT64_CONSTANT(0x22C02D20EEDBB304));
    ck_assert_uint_eq(first[1], G_GUINT64_CONSTANT(0xE2D56E763B99CFFC));
    ck_assert_uint_eq(first[2], G_GUINT64_CONSTANT(0x4BDF9B1596F370A4));
    ck_assert_uint_eq(cm_rng_stream_id("client/12345"), G_GUINT64_CONSTANT(0x342D12A8C0F2B9D4));
}
END_TEST

START_TEST(test_rng_streams_differ)
{
    GHashTable *seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);

    /* Streams of one seed, and one stream under neighbouring seeds, all
     * start differently: 2000 first outputs, no repeats. */
    for (guint64 i = 0; i < 1000; i++) {
        CmRng a, b;
        gint64 *va = g_new(gint64, 1), *vb = g_new(gint64, 1);

        cm_rng_init_seeded(&a, 7, i);
        cm_rng_init_seeded(&b, 1000 + i, 7);
        *va = (gint64)cm_rng_u64(&a);
        *vb = (gint64)cm_rng_u64(&b);
        ck_assert_msg(g_hash_table_add(seen, va), "stream %" G_GUINT64_FORMAT " repeats", i);
        ck_assert_msg(g_hash_table_add(seen, vb), "seed %" G_GUINT64_FORMAT " repeats", 1000 + i);
    }
    g_hash_table_destroy(seen);
}
END_TEST

START_TEST(test_rng_streams_uncorrelated)
{
    CmRng a, b;
    int equal_bits = 0;

    /* Neighbouring streams: about half the bits agree between the outputs
     * drawn side by side (64000 bits; 32000 +- 126 is one sigma). */
    cm_rng_init_seeded(&a, 1, 0);
    cm_rng_init_seeded(&b, 1, 1);
    for (int i = 0; i < 1000; i++)
        equal_bits += 64 - __builtin_popcountll(cm_rng_u64(&a) ^ cm_rng_u64(&b));
    ck_assert_int_gt(equal_bits, 31000);
    ck_assert_int_lt(equal_bits, 33000);
}
END_TEST

START_TEST(test_rng_stream_id)
{
    ck_assert_uint_eq(cm_rng_stream_id("client/1"), cm_rng_stream_id("client/1"));
    ck_assert_uint_ne(cm_rng_stream_id("client/1"), cm_rng_stream_id("client/2"));
    ck_assert_uint_ne(cm_rng_stream_id("client/1"), cm_rng_stream_id("client/10"));
    ck_assert_uint_ne(cm_rng_stream_id(""), cm_rng_stream_id("a"));
}
END_TEST

START_TEST(test_rng_below_bounds)
{
    static const guint64 bounds[] = {1,
                                     2,
                                     3,
                                     7,
                                     10,
                                     1000,
                                     G_GUINT64_CONSTANT(1) << 32,
                                     (G_GUINT64_CONSTANT(1) << 63) + 1,
                                     G_MAXUINT64};
    CmRng rng;

    cm_rng_init_seeded(&rng, 3, 0);
    ck_assert_uint_eq(cm_rng_below(&rng, 0), 0);
    for (size_t b = 0; b < G_N_ELEMENTS(bounds); b++)
        for (int i = 0; i < 10000; i++)
            ck_assert_uint_lt(cm_rng_below(&rng, bounds[b]), bounds[b]);
}
END_TEST

START_TEST(test_rng_below_uniform)
{
    enum { K = 10 };
    long counts[K] = {0};
    double expected = (double)N_DRAWS / K, chi2 = 0;
    CmRng rng;

    /* The seed is fixed, so this cannot flake; the bound still means
     * something: for 9 degrees of freedom, chi-square exceeds 40 with
     * probability about 1e-5 for a uniform generator. */
    cm_rng_init_seeded(&rng, 2026, cm_rng_stream_id("chi-square"));
    for (int i = 0; i < N_DRAWS; i++)
        counts[cm_rng_below(&rng, K)]++;
    for (int k = 0; k < K; k++)
        chi2 += (counts[k] - expected) * (counts[k] - expected) / expected;
    ck_assert_msg(chi2 < 40.0, "chi-square %.2f over %d buckets", chi2, K);
}
END_TEST

START_TEST(test_rng_below_no_modulo_bias)
{
    /* With bound = 2/3 of 2^64, "u64 % bound" lands in the lower half of
     * the range two times in three; an unbiased draw does so half the time
     * (50000 +- 158 for one sigma). */
    guint64 bound = G_MAXUINT64 / 3 * 2;
    CmRng rng;
    int low = 0;

    cm_rng_init_seeded(&rng, 5, 0);
    for (int i = 0; i < N_DRAWS; i++)
        if (cm_rng_below(&rng, bound) < bound / 2)
            low++;
    ck_assert_int_gt(low, 48500);
    ck_assert_int_lt(low, 51500);
}
END_TEST

START_TEST(test_rng_double)
{
    CmRng rng;
    double sum = 0;

    cm_rng_init_seeded(&rng, 9, 9);
    for (int i = 0; i < N_DRAWS; i++) {
        double d = cm_rng_double(&rng);
        ck_assert(d >= 0.0 && d < 1.0);
        /* 53 bits: every value is a multiple of 2^-53. */
        ck_assert(d * 0x1.0p53 == (double)(guint64)(d * 0x1.0p53));
        sum += d;
    }
    /* Mean 0.5, standard error 0.0009. */
    ck_assert(sum / N_DRAWS > 0.49 && sum / N_DRAWS < 0.51);
}
END_TEST

START_TEST(test_rng_bytes)
{
    CmRng a, b;
    guint8 buf[13];
    guint64 w0, w1;

    cm_rng_init_seeded(&a, 11, 0);
    cm_rng_init_seeded(&b, 11, 0);
    cm_rng_bytes(&a, buf, sizeof buf);
    w0 = cm_rng_u64(&b);
    w1 = cm_rng_u64(&b);
    /* Least significant byte first, whatever the host's byte order. */
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(buf[i], (w0 >> (8 * i)) & 0xFF);
    for (int i = 8; i < 13; i++)
        ck_assert_uint_eq(buf[i], (w1 >> (8 * (i - 8))) & 0xFF);
    cm_rng_bytes(&a, NULL, 0);
}
END_TEST

START_TEST(test_rng_os)
{
    CmRng rng;
    guint8 buf[64], zero[64] = {0};
    guint64 x, y;

    cm_rng_init_os(&rng);
    x = cm_rng_u64(&rng);
    y = cm_rng_u64(&rng);
    ck_assert_uint_ne(x, y); /* 2^-64 */
    cm_rng_bytes(&rng, buf, sizeof buf);
    ck_assert(memcmp(buf, zero, sizeof buf) != 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_lt(cm_rng_below(&rng, 6), 6);
    ck_assert(cm_rng_double(&rng) < 1.0);
}
END_TEST

/* ------------------------------------------------------------ site code */

START_TEST(test_site_code_valid)
{
    static const char *const in[] = {"PS1", "ps1", "A0z", "123", "ZZZ", "CAS"};
    static const char *const want[] = {"PS1", "PS1", "A0Z", "123", "ZZZ", "CAS"};
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(in); i++) {
        char out[4] = "xxx";
        ck_assert_msg(cm_id_site_code_check(in[i], out, &error), "%s refused", in[i]);
        cm_assert_no_error(error);
        ck_assert_str_eq(out, want[i]);
    }
    ck_assert(cm_id_site_code_check("PS1", NULL, NULL));
}
END_TEST

START_TEST(test_site_code_invalid)
{
    static const char *const bad[] = {"",    "P",    "PS",        "PS12",         "P-1", "P 1",
                                      " PS", "PS\n", "P\xc3\xa9", "\xff\xfe\xfd", "P_1", "PS1 "};
    GError *error = NULL;
    char out[4] = "xxx";

    ck_assert(!cm_id_site_code_check(NULL, out, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!cm_id_site_code_check(bad[i], out, &error), "%zu accepted", i);
        ck_assert(g_utf8_validate(error->message, -1, NULL));
        ck_assert_msg(strstr(error->message, "site code") != NULL, "%s", error->message);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    /* A refused code leaves out alone. */
    ck_assert_str_eq(out, "xxx");
}
END_TEST

START_TEST(test_site_code_reserved)
{
    static const char *const reserved[] = {"AUX", "CON", "NUL", "PRN", "SMS", "sms", "Con"};
    GError *error = NULL;
    char out[4];

    for (size_t i = 0; i < G_N_ELEMENTS(reserved); i++) {
        ck_assert_msg(!cm_id_site_code_check(reserved[i], out, &error), "%s accepted", reserved[i]);
        ck_assert_msg(strstr(error->message, "reserved") != NULL, "%s", error->message);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
}
END_TEST

/* ---------------------------------------------------------------- SMSID */

START_TEST(test_smsid_new)
{
    GError *error = NULL;
    CmRng rng, again;
    char id[CM_ID_SMSID_LEN + 1], id2[CM_ID_SMSID_LEN + 1];

    cm_rng_init_seeded(&rng, 1, cm_rng_stream_id("smsid"));
    cm_rng_init_seeded(&again, 1, cm_rng_stream_id("smsid"));
    for (int i = 0; i < 1000; i++) {
        cm_id_smsid_new(&rng, id);
        cm_id_smsid_new(&again, id2);
        ck_assert_str_eq(id, id2);
        ck_assert_uint_eq(strlen(id), CM_ID_SMSID_LEN);
        ck_assert_msg(cm_id_smsid_check(id, &error), "%s", error ? error->message : "");
        /* Version 4, RFC 4122 variant. */
        ck_assert_int_eq(id[5 + 14], '4');
        ck_assert_ptr_nonnull(strchr("89AB", id[5 + 19]));
    }
    cm_rng_init_os(&rng);
    cm_id_smsid_new(&rng, id);
    ck_assert(cm_id_smsid_check(id, NULL));
    ck_assert(cm_id_smsid_check("GUID:00000000-0000-0000-0000-000000000000", NULL));
}
END_TEST

START_TEST(test_smsid_invalid)
{
    static const char *const bad[] = {
        "",
        "GUID:",
        "GUID:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7",   /* short */
        "GUID:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7B0", /* long */
        "guid:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7B",  /* prefix case */
        "GUID:2b3e5c4a-8f6d-4e21-9a7b-1c0d3e5f6a7b",  /* lower-case hex */
        "GUID:2B3E5C4A8F6D-4E21-9A7B-1C0D3E5F6A7B-",  /* dash moved */
        "GUID:{2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7}", /* braces */
        "GUID:2B3E5C4G-8F6D-4E21-9A7B-1C0D3E5F6A7B",  /* not hex */
        "GUID:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7\n", /* newline */
        "2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7B",       /* no prefix */
        " GUID:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7B", /* leading space */
        "GUID:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7\xc3",
    };
    GError *error = NULL;

    ck_assert(cm_id_smsid_check("GUID:2B3E5C4A-8F6D-4E21-9A7B-1C0D3E5F6A7B", &error));
    cm_assert_no_error(error);
    ck_assert(!cm_id_smsid_check(NULL, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!cm_id_smsid_check(bad[i], &error), "%zu accepted", i);
        ck_assert(g_utf8_validate(error->message, -1, NULL));
        ck_assert_msg(strstr(error->message, "SMSID") != NULL, "%s", error->message);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    ck_assert(!cm_id_smsid_check("GUID:2b3e5c4a-8f6d-4e21-9a7b-1c0d3e5f6a7b", &error));
    ck_assert_msg(strstr(error->message, "upper case") != NULL, "%s", error->message);
    g_clear_error(&error);
}
END_TEST

/* ---------------------------------------------------------- hardware ID */

START_TEST(test_hwid_new)
{
    GError *error = NULL;
    CmRng rng;
    char id[CM_ID_HWID_LEN + 1], prev[CM_ID_HWID_LEN + 1] = "";

    cm_rng_init_seeded(&rng, 1, cm_rng_stream_id("hwid"));
    for (int i = 0; i < 1000; i++) {
        cm_id_hwid_new(&rng, id);
        ck_assert_uint_eq(strlen(id), CM_ID_HWID_LEN);
        ck_assert_msg(cm_id_hwid_check(id, &error), "%s", error ? error->message : "");
        ck_assert_str_ne(id, prev);
        memcpy(prev, id, sizeof id);
    }
}
END_TEST

START_TEST(test_hwid_invalid)
{
    static const char *const bad[] = {
        "",
        "2:",
        "2:0123456789ABCDEF0123456789ABCDEF0123456",   /* 39 digits */
        "2:0123456789ABCDEF0123456789ABCDEF012345678", /* 41 digits */
        "1:0123456789ABCDEF0123456789ABCDEF01234567",  /* version */
        "2:0123456789abcdef0123456789abcdef01234567",  /* lower case */
        "2:0123456789ABCDEF0123456789ABCDEF0123456G",  /* not hex */
        "2-0123456789ABCDEF0123456789ABCDEF01234567",
        "0123456789ABCDEF0123456789ABCDEF01234567",
        "2:0123456789ABCDEF0123456789ABCDEF0123456 ",
    };
    GError *error = NULL;

    ck_assert(cm_id_hwid_check("2:0123456789ABCDEF0123456789ABCDEF01234567", &error));
    cm_assert_no_error(error);
    ck_assert(!cm_id_hwid_check(NULL, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!cm_id_hwid_check(bad[i], &error), "%zu accepted", i);
        ck_assert_msg(strstr(error->message, "hardware ID") != NULL, "%s", error->message);
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
}
END_TEST

/* ------------------------------------------------------------ role ID */

START_TEST(test_role_id_valid)
{
    static const struct {
        const char *in;
        guint64 want;
    } ok[] = {
        {"1", 1},
        {"72057594037927939", G_GUINT64_CONSTANT(72057594037927939)},
        {"18446744073709551615", G_MAXUINT64},
    };
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        guint64 v = 0;
        ck_assert_msg(cm_id_role_id_parse(ok[i].in, &v, &error), "%s", ok[i].in);
        cm_assert_no_error(error);
        ck_assert_uint_eq(v, ok[i].want);
    }
}
END_TEST

START_TEST(test_role_id_invalid)
{
    static const char *const bad[] = {"",
                                      "0",
                                      "00",
                                      "007",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1\n",
                                      "12a",
                                      "0x10",
                                      "1e3",
                                      "1.0",
                                      "\xef\xbc\x91",
                                      "18446744073709551616",
                                      "99999999999999999999",
                                      "184467440737095516150"};
    GError *error = NULL;
    guint64 v = 77;

    ck_assert(!cm_id_role_id_parse(NULL, &v, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!cm_id_role_id_parse(bad[i], &v, &error), "\"%s\" accepted", bad[i]);
        ck_assert(g_utf8_validate(error->message, -1, NULL));
        cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    }
    ck_assert_uint_eq(v, 77);
    ck_assert(!cm_id_role_id_parse("18446744073709551616", &v, &error));
    ck_assert_msg(strstr(error->message, "64 bits") != NULL, "%s", error->message);
    g_clear_error(&error);
}
END_TEST

START_TEST(test_messages_bounded)
{
    /* A megabyte of attacker input gives a short message, not a copy. */
    size_t len = 1 << 20;
    char *big = g_malloc(len + 1);
    GError *error = NULL;
    char out[4];
    guint64 v;

    memset(big, '7', len);
    big[len] = '\0';
    ck_assert(!cm_id_site_code_check(big, out, &error));
    ck_assert_uint_lt(strlen(error->message), 400);
    g_clear_error(&error);
    ck_assert(!cm_id_role_id_parse(big, &v, &error));
    ck_assert_uint_lt(strlen(error->message), 400);
    g_clear_error(&error);
    memcpy(big, "GUID:", 5);
    ck_assert(!cm_id_smsid_check(big, &error));
    ck_assert_uint_lt(strlen(error->message), 400);
    g_clear_error(&error);
    memcpy(big, "2:", 2);
    ck_assert(!cm_id_hwid_check(big, &error));
    ck_assert_uint_lt(strlen(error->message), 400);
    g_clear_error(&error);
    g_free(big);
}
END_TEST

static Suite *
ids_suite(void)
{
    Suite *s = suite_create("ids");
    TCase *rng = tcase_create("rng");
    TCase *ids = tcase_create("ids");

    tcase_add_test(rng, test_rng_matches_reference);
    tcase_add_test(rng, test_rng_same_seed_same_sequence);
    tcase_add_test(rng, test_rng_sequence_is_pinned);
    tcase_add_test(rng, test_rng_streams_differ);
    tcase_add_test(rng, test_rng_streams_uncorrelated);
    tcase_add_test(rng, test_rng_stream_id);
    tcase_add_test(rng, test_rng_below_bounds);
    tcase_add_test(rng, test_rng_below_uniform);
    tcase_add_test(rng, test_rng_below_no_modulo_bias);
    tcase_add_test(rng, test_rng_double);
    tcase_add_test(rng, test_rng_bytes);
    tcase_add_test(rng, test_rng_os);
    suite_add_tcase(s, rng);

    tcase_add_test(ids, test_site_code_valid);
    tcase_add_test(ids, test_site_code_invalid);
    tcase_add_test(ids, test_site_code_reserved);
    tcase_add_test(ids, test_smsid_new);
    tcase_add_test(ids, test_smsid_invalid);
    tcase_add_test(ids, test_hwid_new);
    tcase_add_test(ids, test_hwid_invalid);
    tcase_add_test(ids, test_role_id_valid);
    tcase_add_test(ids, test_role_id_invalid);
    tcase_add_test(ids, test_messages_bounded);
    suite_add_tcase(s, ids);
    return s;
}

int
main(void)
{
    return cm_test_main(ids_suite());
}
