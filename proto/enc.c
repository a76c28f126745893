/* enc.c - hex, base64url and base64 encodings with bounded, strict decoding.
 *
 * Decoders accept exactly one spelling of each byte string: no whitespace,
 * no missing or extra padding, and no stray bits in the last character.
 * A token or a signature that could be written two ways could be replayed
 * under a second name, so a non-canonical encoding is malformed input.
 * Sizes are checked before anything is allocated. */
#include "internal.h"

#include <string.h>

/* The value of a base64 (url: base64url) character, or -1. */
static int
b64_value(unsigned char c, gboolean url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

gboolean
cm_enc_b64url_canonical(const char *s, size_t len, gsize *out_len)
{
    int last;

    if (len % 4 == 1)
        return FALSE;
    for (size_t i = 0; i < len; i++)
        if (b64_value((unsigned char)s[i], TRUE) < 0)
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
    guint32 acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = acc << 6 | (guint32)b64_value((unsigned char)s[i], TRUE);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *out++ = (guint8)(acc >> bits);
        }
    }
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
    char *s = g_base64_encode(data, len);
    char *w = s;

    for (char *r = s; *r != '\0'; r++) {
        if (*r == '=')
            break;
        *w++ = *r == '+' ? '-' : *r == '/' ? '_' : *r;
    }
    *w = '\0';
    return s;
}

char *
cm_enc_b64(const guint8 *data, size_t len)
{
    return g_base64_encode(data, len);
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
    for (size_t i = 0; i < data_len; i++) {
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

/* Decodes validated standard base64 (padded, len a multiple of 4). */
static GBytes *
b64_decode_checked(const char *s, size_t len, size_t decoded)
{
    gint state = 0;
    guint save = 0;
    /* g_base64_decode_step may write up to 3 bytes per 4 characters. */
    guint8 *out = g_malloc(len / 4 * 3 + 3);
    gsize n = g_base64_decode_step(s, len, out, &state, &save);

    g_assert(n == decoded);
    return g_bytes_new_take(out, n);
}

GBytes *
cm_enc_b64_decode(const char *s, size_t len, size_t max_len, GError **error)
{
    size_t decoded;

    if (!b64_check(s, len, FALSE, max_len, &decoded, error))
        return NULL;
    if (len == 0)
        return g_bytes_new(NULL, 0);
    return b64_decode_checked(s, len, decoded);
}

GBytes *
cm_enc_b64url_decode(const char *s, size_t len, size_t max_len, GError **error)
{
    size_t decoded, padded;
    char *std;
    GBytes *out;

    if (!b64_check(s, len, TRUE, max_len, &decoded, error))
        return NULL;
    if (len == 0)
        return g_bytes_new(NULL, 0);
    /* Translate to the standard alphabet with padding for GLib. */
    padded = (len + 3) / 4 * 4;
    std = g_malloc(padded);
    for (size_t i = 0; i < len; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    memset(std + len, '=', padded - len);
    out = b64_decode_checked(std, padded, decoded);
    g_free(std);
    return out;
}
