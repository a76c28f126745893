/* fuzz-json.c - the bounded JSON parser, the field getters and the three
 * decoders over one input, with the properties the rest of cmlab relies on:
 *  - an accepted body is an object; its dump parses back to an equal object
 *    and dumps to the same bytes (cm_json_dump is canonical);
 *  - cm_json_parse's own scanner and cm_json_dump's own writer agree with
 *    jansson: what the scanner accepts, json_loadb accepts as an equal
 *    value, and the dump is byte for byte json_dumps' output;
 *  - every getter either returns a value or sets an INVALID error, never
 *    both and never neither (cm_json_opt_str may return NULL alone);
 *  - the decoders accept only canonical text: encoding what they decoded
 *    gives back the input (hex up to case);
 *  - a refusal carries a short, valid UTF-8 message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

#define MESSAGE_MAX 1024
#define DECODE_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_refusal(GError *error, gboolean too_large_ok)
{
    if (error == NULL || error->domain != CM_PROTO_ERROR)
        abort();
    if (error->code != CM_PROTO_ERROR_INVALID &&
        !(too_large_ok && error->code == CM_PROTO_ERROR_TOO_LARGE))
        abort();
    if (strlen(error->message) > MESSAGE_MAX || !g_utf8_validate(error->message, -1, NULL))
        abort();
    g_error_free(error);
}

/* Every getter on one member, whatever its type. */
static void
fuzz_getters(const json_t *obj, const char *key)
{
    GError *error = NULL;
    const char *s;
    gint64 n;
    gboolean b;
    GBytes *bytes;
    const json_t *v;

    s = cm_json_str(obj, key, 16, &error);
    if ((s == NULL) == (error == NULL))
        abort();
    if (s != NULL && strlen(s) > 16)
        abort();
    if (error != NULL)
        check_refusal(error, FALSE);
    error = NULL;

    s = cm_json_opt_str(obj, key, 16, &error);
    if (s != NULL && error != NULL)
        abort();
    if (error != NULL)
        check_refusal(error, FALSE);
    error = NULL;

    if (cm_json_int(obj, key, -1000, 1000, &n, &error)) {
        if (error != NULL || n < -1000 || n > 1000)
            abort();
    } else {
        check_refusal(error, FALSE);
        error = NULL;
    }

    if (cm_json_bool(obj, key, &b, &error)) {
        if (error != NULL)
            abort();
    } else {
        check_refusal(error, FALSE);
        error = NULL;
    }

    bytes = cm_json_b64(obj, key, 32, &error);
    if ((bytes == NULL) == (error == NULL))
        abort();
    if (bytes != NULL) {
        if (g_bytes_get_size(bytes) > 32)
            abort();
        g_bytes_unref(bytes);
    } else {
        check_refusal(error, FALSE);
        error = NULL;
    }

    v = cm_json_array(obj, key, 4, &error);
    if ((v == NULL) == (error == NULL))
        abort();
    if (v != NULL && json_array_size(v) > 4)
        abort();
    if (error != NULL)
        check_refusal(error, FALSE);
    error = NULL;

    v = cm_json_object(obj, key, &error);
    if ((v == NULL) == (error == NULL))
        abort();
    if (error != NULL)
        check_refusal(error, FALSE);
}

static void
fuzz_parse(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    json_t *obj, *again, *reference;
    char *dump, *dump2, *reference_dump;
    json_error_t jerr;
    const char *key;
    json_t *value;
    int n = 0;

    obj = cm_json_parse(data, size, CM_JSON_DEFAULT_MAX, &error);
    if (obj == NULL) {
        check_refusal(error, TRUE);
        return;
    }
    if (error != NULL || !json_is_object(obj))
        abort();
    /* The fast paths against jansson itself. */
    reference =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (reference == NULL || !json_equal(obj, reference))
        abort();
    dump = cm_json_dump(obj);
    if (dump == NULL)
        abort();
    reference_dump = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (reference_dump == NULL || strcmp(dump, reference_dump) != 0)
        abort();
    free(reference_dump);
    json_decref(reference);
    /* A dump can be longer than its input ("1e2" -> "100.0"). */
    again = cm_json_parse(dump, strlen(dump), G_MAXSIZE, &error);
    if (again == NULL || !json_equal(obj, again))
        abort();
    dump2 = cm_json_dump(again);
    if (strcmp(dump, dump2) != 0)
        abort();

    json_object_foreach(obj, key, value)
    {
        if (n++ == 8)
            break;
        fuzz_getters(obj, key);
    }
    fuzz_getters(obj, "absent");

    g_free(dump);
    g_free(dump2);
    json_decref(again);
    json_decref(obj);
}

/* encode(data) is want, and decode(want) is data again. */
static void
expect_coded(char *(*encode)(const guint8 *, size_t),
             GBytes *(*decode)(const char *, size_t, size_t, GError **), const char *want,
             const uint8_t *data, size_t size)
{
    char *ours = encode(data, size);
    GBytes *back = decode(want, strlen(want), size, NULL);

    if (strcmp(ours, want) != 0 || back == NULL || g_bytes_get_size(back) != size ||
        (size > 0 && memcmp(g_bytes_get_data(back, NULL), data, size) != 0))
        abort();
    g_bytes_unref(back);
    g_free(ours);
}

static void
fuzz_decoders(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char *str = g_strndup(text, size);
    GError *error = NULL;
    GBytes *bytes;
    char *enc;
    gsize n;
    const guint8 *d;

    /* The encoders write GLib's base64 (url: its alphabet, unpadded), and
     * the decoders read it back to the same bytes. */
    {
        char *glib = g_base64_encode(data, size);
        expect_coded(cm_enc_b64, cm_enc_b64_decode, glib, data, size);
        for (char *c = glib; *c != '\0'; c++)
            *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
        if (strchr(glib, '=') != NULL)
            *strchr(glib, '=') = '\0';
        expect_coded(cm_enc_b64url, cm_enc_b64url_decode, glib, data, size);
        g_free(glib);
    }

    bytes = cm_enc_b64url_decode(text, size, DECODE_MAX, &error);
    /* The allocation-free pair agrees with the decoder. */
    {
        gsize want = 0;
        gboolean canonical = cm_enc_b64url_canonical(text, size, &want);
        if (bytes != NULL) {
            guint8 *buf = g_malloc(want + 1);
            if (!canonical || want != g_bytes_get_size(bytes))
                abort();
            cm_enc_b64url_decode_into(text, size, buf);
            if (want > 0 && memcmp(buf, g_bytes_get_data(bytes, NULL), want) != 0)
                abort();
            g_free(buf);
        } else if (canonical && size <= DECODE_MAX) {
            abort();
        }
    }
    if (bytes != NULL) {
        d = g_bytes_get_data(bytes, &n);
        enc = cm_enc_b64url(d, n);
        if (strlen(enc) != size || memcmp(enc, text, size) != 0)
            abort();
        g_free(enc);
        g_bytes_unref(bytes);
    } else {
        check_refusal(error, TRUE);
        error = NULL;
    }

    bytes = cm_enc_b64_decode(text, size, DECODE_MAX, &error);
    if (bytes != NULL) {
        d = g_bytes_get_data(bytes, &n);
        enc = cm_enc_b64(d, n);
        if (strlen(enc) != size || memcmp(enc, text, size) != 0)
            abort();
        g_free(enc);
        g_bytes_unref(bytes);
    } else {
        check_refusal(error, TRUE);
        error = NULL;
    }

    /* Hex reads a C string: up to the first NUL. */
    bytes = cm_enc_hex_decode(str, DECODE_MAX, &error);
    if (bytes != NULL) {
        d = g_bytes_get_data(bytes, &n);
        enc = cm_enc_hex(d, n);
        if (g_ascii_strcasecmp(enc, str) != 0)
            abort();
        g_free(enc);
        g_bytes_unref(bytes);
    } else {
        check_refusal(error, TRUE);
    }
    g_free(str);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse(data, size);
    fuzz_decoders(data, size);
    return 0;
}
