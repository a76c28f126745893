/* fuzz-ids.c - every identifier checker over one input, with the
 * properties the rest of cmlab relies on:
 *  - an accepted site code upper-cases to a code that is accepted again
 *    and equals the input up to case;
 *  - an accepted role ID prints back to exactly the input (one spelling
 *    per ID, so IDs compare as text);
 *  - an accepted SMSID or hardware ID has its fixed length;
 *  - a refusal carries a short, valid UTF-8 message.
 * The input also seeds a generator whose SMSIDs and hardware IDs must pass
 * their own checkers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

#define MESSAGE_MAX 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_refusal(GError *error)
{
    if (error == NULL)
        abort(); /* a FALSE without a GError */
    if (!g_error_matches(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID))
        abort();
    if (strlen(error->message) > MESSAGE_MAX || !g_utf8_validate(error->message, -1, NULL))
        abort();
}

static void
fuzz_site_code(const char *s)
{
    GError *error = NULL;
    char out[4], again[4];

    if (!cm_id_site_code_check(s, out, &error)) {
        check_refusal(error);
        g_error_free(error);
        return;
    }
    if (error != NULL || strlen(out) != 3 || g_ascii_strcasecmp(out, s) != 0)
        abort();
    if (!cm_id_site_code_check(out, again, NULL) || strcmp(out, again) != 0)
        abort();
}

static void
fuzz_smsid(const char *s)
{
    GError *error = NULL;

    if (!cm_id_smsid_check(s, &error)) {
        check_refusal(error);
        g_error_free(error);
        return;
    }
    if (strlen(s) != CM_ID_SMSID_LEN)
        abort();
}

static void
fuzz_hwid(const char *s)
{
    GError *error = NULL;

    if (!cm_id_hwid_check(s, &error)) {
        check_refusal(error);
        g_error_free(error);
        return;
    }
    if (strlen(s) != CM_ID_HWID_LEN)
        abort();
}

static void
fuzz_role_id(const char *s)
{
    GError *error = NULL;
    guint64 v = 0;
    char *back;

    if (!cm_id_role_id_parse(s, &v, &error)) {
        check_refusal(error);
        g_error_free(error);
        return;
    }
    back = g_strdup_printf("%" G_GUINT64_FORMAT, v);
    if (v == 0 || strcmp(back, s) != 0)
        abort();
    g_free(back);
}

static void
fuzz_generated(const uint8_t *data, size_t size)
{
    guint64 seed = 0, stream = 0;
    char smsid[CM_ID_SMSID_LEN + 1], hwid[CM_ID_HWID_LEN + 1];
    CmRng rng;

    memcpy(&seed, data, MIN(size, sizeof seed));
    if (size > sizeof seed)
        memcpy(&stream, data + sizeof seed, MIN(size - sizeof seed, sizeof stream));
    cm_rng_init_seeded(&rng, seed, stream);
    cm_id_smsid_new(&rng, smsid);
    cm_id_hwid_new(&rng, hwid);
    if (!cm_id_smsid_check(smsid, NULL) || !cm_id_hwid_check(hwid, NULL))
        abort();
    if (cm_rng_below(&rng, seed | 1) >= (seed | 1))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The checkers take C strings: the input up to its first NUL. */
    char *s = g_malloc(size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    fuzz_site_code(s);
    fuzz_smsid(s);
    fuzz_hwid(s);
    fuzz_role_id(s);
    fuzz_generated(data, size);
    g_free(s);
    return 0;
}
