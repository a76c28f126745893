/* enc.c - hex, base64url and base64 encodings with bounded, strict decoding.
 *
 * Decoders accept exactly one spelling of each byte string: no whitespace,
 * no missing or extra padding, and no stray bits in the last character.
 * A token or a signature that could be written two ways could be replayed
 * under a second name, so a non-canonical encoding is malformed input.
 * Sizes are checked before anything is allocated. */
#include "internal.h"

#include <string.h>

/* Each character's value in the standard (B64_STD) and url (B64_URL)
 * alphabets, or B64_NONE: one load per character instead of a chain of
 * range checks (the agent and the site read a base64url signature or
 * token in every message). */
#define B64_NONE 0xff
static guint8 b64_std[256], b64_url[256];
static const char b64_std_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const guint8 *
b64_table(gboolean url)
{
    static gsize ready;

    if (g_once_init_enter(&ready)) {
        memset(b64_std, B64_NONE, sizeof b64_std);
        memset(b64_url, B64_NONE, sizeof b64_url);
        for (int i = 0; i < 64; i++) {
            b64_std[(unsigned char)b64_std_chars[i]] = (guint8)i;
            b64_url[(unsigned char)b64_url_chars[i]] = (guint8)i;
        }
        g_once_init_leave(&ready, 1);
    }
    return url ? b64_url : b64_std;
}

/* The value of a base64 (url: base64url) character, or -1. */
static int
b64_value(unsigned char c, gboolean url)
{
    guint8 v = b64_table(url)[c];

    return v == B64_NONE ? -1 : v;
}

/* Whether s[0..len) is all in the alphabet t. */
static gboolean
b64_all_in(const guint8 *t, const char *s, size_t len)
{
    guint8 any = 0;

    /* OR-ing the values finds a B64_NONE without a branch per character. */
    for (size_t i = 0; i < len; i++)
        any |= t[(unsigned char)s[i]];
    return (any & 0xc0) == 0; /* every value is at most 63; B64_NONE is not */
}

/* Decodes len characters of alphabet t (already checked, unpadded) into
 * out: 3 bytes per 4 characters, 1 or 2 for a tail of 2 or 3. */
static void
b64_decode_run(const guint8 *t, const char *s, size_t len, guint8 *out)
{
    size_t i = 0;

    for (; i + 4 <= len; i += 4) {
        guint32 v = (guint32)t[(unsigned char)s[i]] << 18 |
                    (guint32)t[(unsigned char)s[i + 1]] << 12 |
                    (guint32)t[(unsigned char)s[i + 2]] << 6 | t[(unsigned char)s[i + 3]];
        *out++ = (guint8)(v >> 16);
        *out++ = (guint8)(v >> 8);
        *out++ = (guint8)v;
    }
    if (len - i >= 2) {
        guint32 v = (guint32)t[(unsigned char)s[i]] << 18 | (guint32)t[(unsigned char)s[i + 1]]
                                                                << 12;
        if (len - i == 3)
            v |= (guint32)t[(unsigned char)s[i + 2]] << 6;
        *out++ = (guint8)(v >> 16);
        if (len - i == 3)
            *out = (guint8)(v >> 8);
    }
}

/* Encodes data in alphabet chars; '=' padding when pad. */
static char *
b64_encode(const char *chars, const guint8 *data, size_t len, gboolean pad)
{
    char *out = g_malloc(len / 3 * 4 + 5);
    char *w = out;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        guint32 v = (guint32)data[i] << 16 | (guint32)data[i + 1] << 8 | data[i + 2];
        *w++ = chars[v >> 18];
        *w++ = chars[(v >> 12) & 63];
        *w++ = chars[(v >> 6) & 63];
        *w++ = chars[v & 63];
    }
    if (len - i > 0) {
        guint32 v = (guint32)data[i] << 16 | (len - i == 2 ? (guint32)data[i + 1] << 8 : 0);
        *w++ = chars[v >> 18];
        *w++ = chars[(v >> 12) & 63];
        if (len - i == 2)
            *w++ = chars[(v >> 6) & 63];
        else if (pad)
            *w++ = '=';
        if (pad)
            *w++ = '=';
    }
    *w = '\0';
    return out;
}

gboolean
cm_enc_b64url_canonical(const char *s, size_t len, gsize *out_len)
{
    int last;

    if (len % 4 == 1 || !b64_all_in(b64_table(TRUE), s, len))
        return FALSE;
    last = len > 0 ? b64_value((unsigned char)s[len - 1], TRUE) : 0;
    if ((len % 4 == 2 && (last & 0xf) != 0) || (len % 4 == 3 && (last & 0x3) != 0))
        return FALSE;
    *out_len = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    return TRUE;
}

void
cm_enc_b64url_decode_into(const char *s, size_t len, guint8 *out)
{
    b64_decode_run(b64_table(TRUE), s, len, out);
}

char *
cm_enc_hex(const guint8 *data, size_t len)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = g_malloc(len * 2 + 1);

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 0x0f];
    }
    out[len * 2] = '\0';
    return out;
}

GBytes *
cm_enc_hex_decode(const char *hex, size_t max_len, GError **error)
{
    /* Look no further than one character past the bound, so that a huge
     * string costs no more than a small one. */
    size_t limit = max_len <= (PTRDIFF_MAX - 1) / 2 ? max_len * 2 + 1 : (size_t)PTRDIFF_MAX;
    size_t n;
    guint8 *out;

    if (hex == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "no hex string given");
        return NULL;
    }
    n = strnlen(hex, limit);
    if ((n + 1) / 2 > max_len) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "hex string decodes to more than %zu bytes", max_len);
        return NULL;
    }
    if (n % 2 != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "hex string has an odd number of digits (%zu); each byte takes two", n);
        return NULL;
    }
    out = g_malloc(n / 2 + 1);
    for (size_t i = 0; i < n; i += 2) {
        int hi = g_ascii_xdigit_value(hex[i]);
        int lo = g_ascii_xdigit_value(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            size_t at = hi < 0 ? i : i + 1;
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "hex string has a character that is not a hex digit (0x%02X) at "
                        "offset %zu",
                        (unsigned)(unsigned char)hex[at], at);
            g_free(out);
            return NULL;
        }
        out[i / 2] = (guint8)(hi << 4 | lo);
    }
    return g_bytes_new_take(out, n / 2);
}

char *
cm_enc_b64url(const guint8 *data, size_t len)
{
    return b64_encode(b64_url_chars, data, len, FALSE);
}

char *
cm_enc_b64(const guint8 *data, size_t len)
{
    return b64_encode(b64_std_chars, data, len, TRUE);
}

/* Validates s[0..len) as canonical base64 (padded) or base64url (never
 * padded) and returns the decoded length in *out_len. */
static gboolean
b64_check(const char *s, size_t len, gboolean url, size_t max_len, size_t *out_len, GError **error)
{
    const char *what = url ? "base64url" : "base64";
    size_t pad = 0, data_len, rem, decoded;
    int last;

    if (s == NULL && len > 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "no %s string given", what);
        return FALSE;
    }
    if (!url) {
        if (len % 4 != 0) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "base64 text is %zu characters long, not a multiple of 4 (it must be "
                        "padded with '=')",
                        len);
            return FALSE;
        }
        while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
            pad++;
    }
    data_len = len - pad;
    rem = data_len % 4;
    if (url && rem == 1) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "base64url text is %zu characters long, which no byte string encodes to", len);
        return FALSE;
    }
    /* Standard base64 has rem 0 here with pad 0, or rem 3/2 with pad 1/2. */
    decoded = data_len / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
    if (decoded > max_len) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "%s text decodes to %zu bytes, over the limit of %zu", what, decoded, max_len);
        return FALSE;
    }
    /* One pass to accept; on refusal a second says where. */
    for (size_t i = 0, bad = !b64_all_in(b64_table(url), s, data_len); bad && i < data_len; i++) {
        if (b64_value((unsigned char)s[i], url) < 0) {
            if (s[i] == '=')
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            url ? "base64url text must not be padded with '=' (offset %zu)"
                                : "base64 text has '=' before its end (offset %zu)",
                            i);
            else
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "%s text has a character outside its alphabet (0x%02X) at "
                            "offset %zu",
                            what, (unsigned)(unsigned char)s[i], i);
            return FALSE;
        }
    }
    /* The bits of the last character that fall past the final byte must be
     * zero, or two texts would decode to the same bytes. */
    if (rem != 0) {
        last = b64_value((unsigned char)s[data_len - 1], url);
        if ((rem == 2 && (last & 0x0f) != 0) || (rem == 3 && (last & 0x03) != 0)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "%s text is not canonical: its last character carries bits past "
                        "the end of the data",
                        what);
            return FALSE;
        }
    }
    *out_len = decoded;
    return TRUE;
}

GBytes *
cm_enc_b64_decode(const char *s, size_t len, size_t max_len, GError **error)
{
    size_t decoded;
    guint8 *out;

    if (!b64_check(s, len, FALSE, max_len, &decoded, error))
        return NULL;
    if (len == 0)
        return g_bytes_new(NULL, 0);
    out = g_malloc(decoded + 1);
    /* The padding is checked; decode what it pads. */
    while (len > 0 && s[len - 1] == '=')
        len--;
    b64_decode_run(b64_table(FALSE), s, len, out);
    return g_bytes_new_take(out, decoded);
}

GBytes *
cm_enc_b64url_decode(const char *s, size_t len, size_t max_len, GError **error)
{
    size_t decoded;
    guint8 *out;

    if (!b64_check(s, len, TRUE, max_len, &decoded, error))
        return NULL;
    if (len == 0)
        return g_bytes_new(NULL, 0);
    out = g_malloc(decoded + 1);
    b64_decode_run(b64_table(TRUE), s, len, out);
    return g_bytes_new_take(out, decoded);
}
