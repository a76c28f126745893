/* ids.c - identifiers: site codes, SMSIDs, hardware IDs, MP role IDs.
 *
 * Every checker takes untrusted text (a request field, a URL path segment,
 * a configuration value) and either accepts it in its one canonical form or
 * refuses it with a message that shows what arrived and what was expected. */
#include "internal.h"

#include <string.h>

#define SMSID_PREFIX "GUID:"
#define SMSID_PREFIX_LEN 5
#define HWID_PREFIX "2:"
#define HWID_PREFIX_LEN 2
#define HWID_HEX_LEN 40
/* Enough of a bad input to recognise it in a message, not enough to flood
 * a log with an attacker's megabyte. */
#define QUOTE_MAX 64

static const char *const reserved_site_codes[] = {"AUX", "CON", "NUL", "PRN", "SMS"};

static const char hex_upper[] = "0123456789ABCDEF";

/* The input as it can safely appear in an error message: escaped (so the
 * message stays valid UTF-8 and on one line), bounded, and quoted. */
static char *
quote_input(const char *s)
{
    size_t len = strnlen(s, QUOTE_MAX + 1);
    gboolean cut = len > QUOTE_MAX;
    char *head = g_strndup(s, cut ? QUOTE_MAX : len);
    char *esc = g_strescape(head, NULL);
    char *out = g_strdup_printf("\"%s\"%s", esc, cut ? "..." : "");

    g_free(esc);
    g_free(head);
    return out;
}

/* The quoted input for a refusal, made at the first one: the checks run on
 * every message, and quoting up front cost more than the check. */
static const char *
quoted(char **q, const char *s)
{
    if (*q == NULL)
        *q = quote_input(s);
    return *q;
}

static gboolean
is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static gboolean
is_lower_hex(char c)
{
    return c >= 'a' && c <= 'f';
}

/* ------------------------------------------------------------ site code */

gboolean
cm_id_site_code_check(const char *code, char out[4], GError **error)
{
    char up[4];
    char *q = NULL;
    gboolean ok = FALSE;
    size_t len;

    if (code == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "no site code given; a site code is three characters A-Z or 0-9, such as "
                    "\"PS1\"");
        return FALSE;
    }
    len = strnlen(code, 4);
    if (len != 3) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "site code %s has %s characters; a site code is exactly three characters "
                    "A-Z or 0-9, such as \"PS1\"",
                    quoted(&q, code),
                    len > 3 ? "more than three" : (len == 0 ? "no" : "fewer than three"));
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        char c = code[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "site code %s has a character other than A-Z or 0-9 at position %d; "
                        "choose a code such as \"PS1\"",
                        quoted(&q, code), i + 1);
            goto out;
        }
        up[i] = c;
    }
    up[3] = '\0';
    /* Configuration Manager refuses these because Windows reserves them as
     * device names, and the site code becomes part of share and path names. */
    for (size_t i = 0; i < G_N_ELEMENTS(reserved_site_codes); i++) {
        if (strcmp(up, reserved_site_codes[i]) == 0) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "site code %s is reserved (AUX, CON, NUL, PRN and SMS cannot be site "
                        "codes); choose another three-character code",
                        quoted(&q, code));
            goto out;
        }
    }
    if (out != NULL)
        memcpy(out, up, sizeof up);
    ok = TRUE;
out:
    g_free(q);
    return ok;
}

/* -------------------------------------------------------------- SMSID */

void
cm_id_smsid_new(CmRng *rng, char out[CM_ID_SMSID_LEN + 1])
{
    /* Byte offsets of the dashes in the 36-character GUID text. */
    static const int group_end[] = {4, 6, 8, 10};
    guint8 b[16];
    char *p = out;
    int g = 0;

    g_return_if_fail(rng != NULL && out != NULL);
    cm_rng_bytes(rng, b, sizeof b);
    /* RFC 4122 random GUID: version 4, variant 10xx, as Windows makes them. */
    b[6] = (guint8)((b[6] & 0x0F) | 0x40);
    b[8] = (guint8)((b[8] & 0x3F) | 0x80);

    memcpy(p, SMSID_PREFIX, SMSID_PREFIX_LEN);
    p += SMSID_PREFIX_LEN;
    for (int i = 0; i < 16; i++) {
        if (g < (int)G_N_ELEMENTS(group_end) && i == group_end[g]) {
            *p++ = '-';
            g++;
        }
        *p++ = hex_upper[b[i] >> 4];
        *p++ = hex_upper[b[i] & 0x0F];
    }
    *p = '\0';
}

gboolean
cm_id_smsid_check(const char *smsid, GError **error)
{
    const char *guid;
    char *q = NULL;
    gboolean ok = FALSE;
    size_t len;

    if (smsid == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "no SMSID given; an SMSID is \"GUID:\" followed by an upper-case GUID "
                    "(GUID:XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)");
        return FALSE;
    }
    if (strncmp(smsid, SMSID_PREFIX, SMSID_PREFIX_LEN) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "SMSID %s does not start with \"GUID:\"; an SMSID is \"GUID:\" followed "
                    "by an upper-case GUID (GUID:XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)",
                    quoted(&q, smsid));
        goto out;
    }
    len = strnlen(smsid, CM_ID_SMSID_LEN + 1);
    if (len != CM_ID_SMSID_LEN) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "SMSID %s is %s; it must be \"GUID:\" and 36 characters "
                    "(GUID:XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)",
                    quoted(&q, smsid), len > CM_ID_SMSID_LEN ? "too long" : "too short");
        goto out;
    }
    guid = smsid + SMSID_PREFIX_LEN;
    for (int i = 0; i < 36; i++) {
        gboolean dash_here = i == 8 || i == 13 || i == 18 || i == 23;
        char c = guid[i];

        if (dash_here && c != '-') {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "SMSID %s lacks a dash at GUID position %d; the GUID must be grouped "
                        "8-4-4-4-12 (GUID:XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)",
                        quoted(&q, smsid), i + 1);
            goto out;
        }
        if (dash_here)
            continue;
        if (is_lower_hex(c)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "SMSID %s has lower-case hex digits; SMSIDs are upper case",
                        quoted(&q, smsid));
            goto out;
        }
        if (!is_upper_hex(c)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "SMSID %s has a character other than 0-9 or A-F at GUID position %d",
                        quoted(&q, smsid), i + 1);
            goto out;
        }
    }
    ok = TRUE;
out:
    g_free(q);
    return ok;
}

/* -------------------------------------------------------- hardware ID */

void
cm_id_hwid_new(CmRng *rng, char out[CM_ID_HWID_LEN + 1])
{
    guint8 b[HWID_HEX_LEN / 2];
    char *p = out;

    g_return_if_fail(rng != NULL && out != NULL);
    /* A real hardware ID hashes machine properties; a simulated machine
     * has none, and 160 random bits are indistinguishable from a SHA-1. */
    cm_rng_bytes(rng, b, sizeof b);
    memcpy(p, HWID_PREFIX, HWID_PREFIX_LEN);
    p += HWID_PREFIX_LEN;
    for (size_t i = 0; i < sizeof b; i++) {
        *p++ = hex_upper[b[i] >> 4];
        *p++ = hex_upper[b[i] & 0x0F];
    }
    *p = '\0';
}

gboolean
cm_id_hwid_check(const char *hwid, GError **error)
{
    char *q = NULL;
    gboolean ok = FALSE;
    size_t len;

    if (hwid == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "no hardware ID given; a hardware ID is \"2:\" followed by 40 upper-case "
                    "hex digits");
        return FALSE;
    }
    if (strncmp(hwid, HWID_PREFIX, HWID_PREFIX_LEN) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "hardware ID %s does not start with \"2:\"; a hardware ID is \"2:\" "
                    "followed by 40 upper-case hex digits",
                    quoted(&q, hwid));
        goto out;
    }
    len = strnlen(hwid, CM_ID_HWID_LEN + 1);
    if (len != CM_ID_HWID_LEN) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "hardware ID %s is %s; it must be \"2:\" followed by exactly 40 hex digits",
                    quoted(&q, hwid), len > CM_ID_HWID_LEN ? "too long" : "too short");
        goto out;
    }
    for (int i = HWID_PREFIX_LEN; i < CM_ID_HWID_LEN; i++) {
        if (is_lower_hex(hwid[i])) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "hardware ID %s has lower-case hex digits; hardware IDs are upper case",
                        quoted(&q, hwid));
            goto out;
        }
        if (!is_upper_hex(hwid[i])) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "hardware ID %s has a character other than 0-9 or A-F at position %d",
                        quoted(&q, hwid), i + 1);
            goto out;
        }
    }
    ok = TRUE;
out:
    g_free(q);
    return ok;
}

/* ------------------------------------------------------- MP role ID */

gboolean
cm_id_role_id_parse(const char *s, guint64 *out, GError **error)
{
    guint64 v = 0;
    char *q = NULL;
    gboolean ok = FALSE;

    if (s == NULL || *s == '\0') {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "no management point role ID given; it is a positive decimal number such "
                    "as 72057594037927939");
        return FALSE;
    }
    /* One spelling per ID: a leading zero would let "007" and "7" name the
     * same MP in URLs and lists that are compared as text. */
    if (s[0] == '0') {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "management point role ID %s %s; it is a positive decimal number without "
                    "leading zeros",
                    quoted(&q, s), s[1] == '\0' ? "is zero" : "has a leading zero");
        goto out;
    }
    for (const char *p = s; *p != '\0'; p++) {
        guint d;

        if (*p < '0' || *p > '9') {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "management point role ID %s has a character other than 0-9 at "
                        "position %d; it is a positive decimal number without sign or spaces",
                        quoted(&q, s), (int)MIN(p - s + 1, G_MAXINT));
            goto out;
        }
        d = (guint)(*p - '0');
        if (v > (G_MAXUINT64 - d) / 10) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "management point role ID %s does not fit in 64 bits (the largest is "
                        "%" G_GUINT64_FORMAT ")",
                        quoted(&q, s), G_MAXUINT64);
            goto out;
        }
        v = v * 10 + d;
    }
    if (out != NULL)
        *out = v;
    ok = TRUE;
out:
    g_free(q);
    return ok;
}
