/* json.c - the bounded JSON codec on jansson, and field getters whose errors
 * name the field.
 *
 * Every message body passes through cm_json_parse, so it checks what jansson
 * would accept but the protocol does not: bodies over their bound, NUL
 * bytes, invalid UTF-8 and nesting deeper than CM_JSON_MAX_DEPTH are refused
 * before jansson sees them (jansson's own depth limit is 2048 and recursion
 * that deep costs stack); duplicate keys are refused because two readers
 * could otherwise disagree on which value counts. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Nesting depth of data[0..len), counting containers outside strings, or
 * stopping at the first level over max.  The scan does not validate: a
 * malformed body is left for jansson to describe. */
static gboolean
json_depth_ok(const char *data, size_t len, size_t *offset_out)
{
    gboolean in_string = FALSE;
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = FALSE;
            continue;
        }
        if (c == '"') {
            in_string = TRUE;
        } else if (c == '{' || c == '[') {
            if (++depth > CM_JSON_MAX_DEPTH) {
                *offset_out = i;
                return FALSE;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return TRUE;
}

/* Whether s[0..len) is valid UTF-8 without a NUL byte.  Eight bytes at a
 * time while they are ASCII (most of every message: base64, hex, names),
 * GLib's check from the first byte that is not. */
static gboolean
text_ok(const char *s, size_t len)
{
    const guint64 high = G_GUINT64_CONSTANT(0x8080808080808080);
    const guint64 ones = G_GUINT64_CONSTANT(0x0101010101010101);
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        guint64 w;
        memcpy(&w, s + i, sizeof w);
        if ((w & high) != 0)
            break;
        if (((w - ones) & ~w & high) != 0)
            return FALSE; /* a zero byte */
    }
    for (; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return g_utf8_validate_len(s + i, len - i, NULL); /* refuses a NUL too */
        if (s[i] == '\0')
            return FALSE;
    }
    return TRUE;
}

/* The end of the run from p of bytes a JSON string holds as they are: not
 * a quote, a backslash or a control character.  Eight bytes at a time
 * (the strings are mostly base64), then byte by byte from the word that
 * holds one of them. */
static const char *
plain_run(const char *p, const char *end)
{
    const guint64 ones = G_GUINT64_CONSTANT(0x0101010101010101);
    const guint64 high = G_GUINT64_CONSTANT(0x8080808080808080);

    while (end - p >= 8) {
        guint64 w, quote, backslash, control;
        memcpy(&w, p, sizeof w);
        quote = w ^ (ones * '"');
        backslash = w ^ (ones * '\\');
        /* a zero byte in quote or backslash, a byte below 0x20 in w */
        quote = (quote - ones) & ~quote & high;
        backslash = (backslash - ones) & ~backslash & high;
        control = (w - ones * 0x20) & ~w & high;
        if ((quote | backslash | control) != 0)
            break;
        p += 8;
    }
    while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* ------------------------------------------------------------ fast path
 *
 * jansson reads its input through a per-character stream that checks UTF-8
 * and copies each byte on its own: some 100 instructions a byte, a quarter
 * of the simulator's time in the cost-model mode, where every message is
 * parsed by the real role code.  The scanner below handles the JSON our
 * protocol carries (objects, arrays, strings with the short escapes,
 * integers of up to 18 digits, literals) a run of bytes at a time and
 * builds the same jansson values; anything else (reals, \u escapes, long
 * integers, any syntax error) makes it give up, and jansson parses the
 * body as before, errors and all.  So it may only accept what jansson
 * accepts, with an equal value: fuzz-json checks exactly that against
 * jansson itself.  It runs after the NUL and UTF-8 checks of cm_json_parse
 * and refuses nesting past CM_JSON_MAX_DEPTH on its own, as the depth
 * count before jansson does. */

typedef struct {
    const char *p;
    const char *end;
    GString *buf; /* unescaped string text, reused; made at the first escape */
} JsonScan;

static json_t *scan_value(JsonScan *s, int depth);

static inline void
scan_ws(JsonScan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* A string body after its opening quote: *out and *len point either into
 * the input (no escapes) or into s->buf.  FALSE to give up. */
static gboolean
scan_string(JsonScan *s, const char **out, size_t *len)
{
    const char *start = s->p;
    gboolean escaped = FALSE;

    for (;;) {
        const char *q = s->p;
        unsigned char c;
        q = plain_run(q, s->end);
        if (q >= s->end || (unsigned char)*q < 0x20)
            return FALSE; /* unterminated, or a raw control character */
        if (escaped)
            g_string_append_len(s->buf, s->p, q - s->p);
        s->p = q + 1;
        if (*q == '"')
            break;
        /* a backslash */
        if (!escaped) {
            if (s->buf == NULL)
                s->buf = g_string_sized_new(256);
            g_string_truncate(s->buf, 0);
            g_string_append_len(s->buf, start, q - start);
            escaped = TRUE;
        }
        if (s->p >= s->end)
            return FALSE;
        c = (unsigned char)*s->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            g_string_append_c(s->buf, (char)c);
            break;
        case 'b':
            g_string_append_c(s->buf, '\b');
            break;
        case 'f':
            g_string_append_c(s->buf, '\f');
            break;
        case 'n':
            g_string_append_c(s->buf, '\n');
            break;
        case 'r':
            g_string_append_c(s->buf, '\r');
            break;
        case 't':
            g_string_append_c(s->buf, '\t');
            break;
        default:
            return FALSE; /* \u (surrogates, \u0000) and bad escapes: jansson's */
        }
    }
    if (escaped) {
        *out = s->buf->str;
        *len = s->buf->len;
    } else {
        *out = start;
        *len = (size_t)(s->p - 1 - start);
    }
    return TRUE;
}

/* An integer: -?(0|[1-9][0-9]*), at most 18 digits so that it fits a
 * json_int_t; a fraction or exponent (a real) gives up. */
static json_t *
scan_integer(JsonScan *s)
{
    gboolean neg = FALSE;
    json_int_t v = 0;
    int digits = 0;

    if (*s->p == '-') {
        neg = TRUE;
        s->p++;
    }
    if (s->p >= s->end || !g_ascii_isdigit(*s->p))
        return NULL;
    if (*s->p == '0') {
        s->p++;
        if (s->p < s->end && g_ascii_isdigit(*s->p))
            return NULL; /* a leading zero */
    } else {
        while (s->p < s->end && g_ascii_isdigit(*s->p)) {
            if (++digits > 18)
                return NULL;
            v = v * 10 + (*s->p++ - '0');
        }
    }
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
        return NULL;
    return json_integer(neg ? -v : v);
}

static gboolean
scan_literal(JsonScan *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return FALSE;
    s->p += n;
    return TRUE;
}

static json_t *
scan_object(JsonScan *s, int depth)
{
    json_t *obj = json_object();

    s->p++; /* '{' */
    scan_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return obj;
    }
    for (;;) {
        const char *key;
        size_t key_len;
        char *key_copy = NULL;
        json_t *v;

        if (s->p >= s->end || *s->p != '"')
            goto fail;
        s->p++;
        if (!scan_string(s, &key, &key_len))
            goto fail;
        /* The value may reuse s->buf: keep an unescaped key apart. */
        if (s->buf != NULL && key == s->buf->str)
            key = key_copy = g_strndup(key, key_len);
        if (json_object_getn(obj, key, key_len) != NULL) {
            g_free(key_copy); /* a duplicate: jansson words the refusal */
            goto fail;
        }
        scan_ws(s);
        if (s->p >= s->end || *s->p != ':') {
            g_free(key_copy);
            goto fail;
        }
        s->p++;
        v = scan_value(s, depth);
        if (v == NULL || json_object_setn_new_nocheck(obj, key, key_len, v) != 0) {
            g_free(key_copy);
            goto fail;
        }
        g_free(key_copy);
        scan_ws(s);
        if (s->p >= s->end)
            goto fail;
        if (*s->p == '}') {
            s->p++;
            return obj;
        }
        if (*s->p++ != ',')
            goto fail;
        scan_ws(s);
    }
fail:
    json_decref(obj);
    return NULL;
}

static json_t *
scan_array(JsonScan *s, int depth)
{
    json_t *arr = json_array();

    s->p++; /* '[' */
    scan_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return arr;
    }
    for (;;) {
        json_t *v = scan_value(s, depth);
        if (v == NULL || json_array_append_new(arr, v) != 0)
            goto fail;
        scan_ws(s);
        if (s->p >= s->end)
            goto fail;
        if (*s->p == ']') {
            s->p++;
            return arr;
        }
        if (*s->p++ != ',')
            goto fail;
    }
fail:
    json_decref(arr);
    return NULL;
}

static json_t *
scan_value(JsonScan *s, int depth)
{
    const char *str;
    size_t len;

    scan_ws(s);
    if (s->p >= s->end)
        return NULL;
    switch (*s->p) {
    case '{':
        return depth < CM_JSON_MAX_DEPTH ? scan_object(s, depth + 1) : NULL;
    case '[':
        return depth < CM_JSON_MAX_DEPTH ? scan_array(s, depth + 1) : NULL;
    case '"':
        s->p++;
        return scan_string(s, &str, &len) ? json_stringn_nocheck(str, len) : NULL;
    case 't':
        return scan_literal(s, "true", 4) ? json_true() : NULL;
    case 'f':
        return scan_literal(s, "false", 5) ? json_false() : NULL;
    case 'n':
        return scan_literal(s, "null", 4) ? json_null() : NULL;
    default:
        return *s->p == '-' || g_ascii_isdigit(*s->p) ? scan_integer(s) : NULL;
    }
}

/* The object text[0..len) holds, or NULL when jansson should parse it. */
static json_t *
json_scan(const char *text, size_t len)
{
    JsonScan s = {.p = text, .end = text + len, .buf = NULL};
    json_t *root = NULL;

    scan_ws(&s);
    if (s.p < s.end && *s.p == '{')
        root = scan_value(&s, 0);
    if (root != NULL) {
        scan_ws(&s);
        if (s.p != s.end) { /* trailing text */
            json_decref(root);
            root = NULL;
        }
    }
    if (s.buf != NULL)
        g_string_free(s.buf, TRUE);
    return root;
}

/* jansson's error text quotes the input near the error, cut to its fixed
 * buffer: make it valid UTF-8 without control characters before it goes
 * into a message that may be logged or sent back (new string). */
static char *
json_error_text(const json_error_t *jerr)
{
    char *text = g_utf8_make_valid(jerr->text, strnlen(jerr->text, sizeof jerr->text));

    for (char *p = text; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    return text;
}

json_t *
cm_json_parse(const void *data, size_t len, size_t max_len, GError **error)
{
    const char *text = data;
    const char *nul;
    const char *bad_utf8 = NULL;
    gboolean clean;
    size_t deep_at = 0;
    json_error_t jerr;
    json_t *root;

    if (len > max_len) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "JSON body is %zu bytes, over the limit of %zu bytes", len, max_len);
        return NULL;
    }
    if (text == NULL || len == 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body is empty; expected a JSON object");
        return NULL;
    }
    clean = text_ok(text, len);
    nul = clean ? NULL : memchr(text, '\0', len);
    if (nul != NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body has a NUL byte at offset %zu; JSON text never contains one",
                    (size_t)(nul - text));
        return NULL;
    }
    if (!clean && !g_utf8_validate_len(text, len, &bad_utf8)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body is not valid UTF-8 (offset %zu); encode it as UTF-8",
                    (size_t)(bad_utf8 - text));
        return NULL;
    }
    /* The scanner stops at CM_JSON_MAX_DEPTH itself; the count below is for
     * jansson, whose recursion it bounds, and for the message. */
    root = json_scan(text, len);
    if (root != NULL)
        return root;
    if (!json_depth_ok(text, len, &deep_at)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body nests deeper than %d levels (at offset %zu)", CM_JSON_MAX_DEPTH,
                    deep_at);
        return NULL;
    }
    /* Without JSON_ALLOW_NUL jansson refuses "\u0000", so every string it
     * returns is a C string; JSON_DECODE_ANY lets us name the wrong top
     * level ourselves instead of jansson's "'[' or '{' expected". */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        g_autofree char *why = json_error_text(&jerr);
        switch (json_error_code(&jerr)) {
        case json_error_duplicate_key:
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "JSON body has a duplicate key at line %d, column %d (%s); each key "
                        "may appear once in an object",
                        jerr.line, jerr.column, why);
            break;
        case json_error_null_character:
        case json_error_null_byte_in_key:
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "JSON body has a NUL character (\\u0000) at line %d, column %d; "
                        "strings may not contain one",
                        jerr.line, jerr.column);
            break;
        default:
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "JSON body is malformed at line %d, column %d: %s", jerr.line, jerr.column,
                        why);
            break;
        }
        return NULL;
    }
    if (!json_is_object(root)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body must be an object ({...}) at the top level, not %s",
                    json_is_array(root)    ? "an array"
                    : json_is_string(root) ? "a string"
                    : json_is_number(root) ? "a number"
                    : json_is_null(root)   ? "null"
                                           : "true/false");
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The dump's fast path, byte for byte what json_dumps writes with
 * JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY: jansson escapes each
 * string a character at a time through a callback.  Reals (jansson's own
 * shortest form), strings that are not valid UTF-8 or hold a NUL, and
 * nesting past jansson's own limit give up, and jansson writes the whole
 * value as before.  fuzz-json compares the two on every accepted body. */

#define DUMP_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct {
    const char *key;
    size_t len;
    const json_t *value;
} DumpKey;

/* jansson's order for JSON_SORT_KEYS: bytes, then length. */
static int
dump_key_cmp(const void *a, const void *b)
{
    const DumpKey *k1 = a, *k2 = b;
    int r = memcmp(k1->key, k2->key, MIN(k1->len, k2->len));

    if (r != 0)
        return r;
    return k1->len < k2->len ? -1 : k1->len > k2->len;
}

static gboolean
dump_string(GString *out, const char *str, size_t len)
{
    const char *p = str, *end = str + len;

    if (!text_ok(str, len))
        return FALSE; /* a NUL: jansson's \u0000; invalid UTF-8: jansson's refusal */
    g_string_append_c(out, '"');
    while (p < end) {
        const char *q = p;
        unsigned char c;
        q = plain_run(q, end);
        g_string_append_len(out, p, q - p);
        if (q == end)
            break;
        c = (unsigned char)*q;
        switch (c) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\b':
            g_string_append(out, "\\b");
            break;
        case '\f':
            g_string_append(out, "\\f");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            g_string_append_printf(out, "\\u%04X", (unsigned)c);
            break;
        }
        p = q + 1;
    }
    g_string_append_c(out, '"');
    return TRUE;
}

static gboolean
dump_value(GString *out, const json_t *v, int depth)
{
    if (depth > DUMP_MAX_DEPTH)
        return FALSE;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        DumpKey *keys;
        gboolean ok = TRUE;

        if (n == 0) {
            g_string_append(out, "{}");
            return TRUE;
        }
        keys = g_new(DumpKey, n);
        for (void *it = json_object_iter((json_t *)v); it != NULL && i < n;
             it = json_object_iter_next((json_t *)v, it), i++) {
            keys[i].key = json_object_iter_key(it);
            keys[i].len = json_object_iter_key_len(it);
            keys[i].value = json_object_iter_value(it);
        }
        if (i <= 16) {
            /* The protocol's objects are small: an insertion sort beats
             * qsort's set-up (the order is the same, keys are unique). */
            for (size_t a = 1; a < i; a++) {
                DumpKey k = keys[a];
                size_t b = a;
                for (; b > 0 && dump_key_cmp(&keys[b - 1], &k) > 0; b--)
                    keys[b] = keys[b - 1];
                keys[b] = k;
            }
        } else {
            qsort(keys, i, sizeof *keys, dump_key_cmp);
        }
        g_string_append_c(out, '{');
        for (size_t k = 0; ok && k < i; k++) {
            if (k > 0)
                g_string_append_c(out, ',');
            ok = dump_string(out, keys[k].key, keys[k].len);
            if (ok) {
                g_string_append_c(out, ':');
                ok = dump_value(out, keys[k].value, depth + 1);
            }
        }
        g_string_append_c(out, '}');
        g_free(keys);
        return ok;
    }
    case JSON_ARRAY:
        g_string_append_c(out, '[');
        for (size_t k = 0; k < json_array_size(v); k++) {
            if (k > 0)
                g_string_append_c(out, ',');
            if (!dump_value(out, json_array_get(v, k), depth + 1))
                return FALSE;
        }
        g_string_append_c(out, ']');
        return TRUE;
    case JSON_STRING:
        return dump_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        /* What "%lld" writes, without printf's machinery. */
        json_int_t n = json_integer_value(v);
        guint64 u = n < 0 ? (guint64)0 - (guint64)n : (guint64)n;
        char digits[24];
        size_t at = sizeof digits;
        do {
            digits[--at] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (n < 0)
            digits[--at] = '-';
        g_string_append_len(out, digits + at, (gssize)(sizeof digits - at));
        return TRUE;
    }
    case JSON_TRUE:
        g_string_append(out, "true");
        return TRUE;
    case JSON_FALSE:
        g_string_append(out, "false");
        return TRUE;
    case JSON_NULL:
        g_string_append(out, "null");
        return TRUE;
    case JSON_REAL:
    default:
        return FALSE;
    }
}

char *
cm_json_dump(const json_t *obj)
{
    char *s;
    char *out;
    GString *fast;

    if (obj == NULL)
        return NULL;
    fast = g_string_sized_new(512);
    if (dump_value(fast, obj, 0))
        return g_string_free(fast, FALSE);
    g_string_free(fast, TRUE);
    /* Reals keep jansson's default of 17 significant digits, which reads
     * back as the same double. */
    s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (s == NULL)
        return NULL;
    /* The caller frees with g_free; jansson allocated with malloc. */
    out = g_strdup(s);
    free(s);
    return out;
}

/* "a string", "a number", ... for messages about a value of the wrong type. */
static const char *
json_type_desc(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "true/false";
    case JSON_NULL:
        return "null";
    }
    return "a value of unknown type";
}

/* What a getter expects, put in words only when a message needs them: the
 * getters run for every field of every message, and formatting the words
 * up front was 5% of the simulator's instructions. */
typedef enum {
    WANT_STR, /* a: max bytes */
    WANT_INT, /* a..b */
    WANT_BOOL,
    WANT_B64,   /* a: max bytes */
    WANT_ARRAY, /* a: max items */
    WANT_OBJECT,
} JsonWantKind;

typedef struct {
    JsonWantKind kind;
    gint64 a, b;
} JsonWant;

/* The expectation in words (new string). */
static char *
want_text(const JsonWant *w)
{
    switch (w->kind) {
    case WANT_STR:
        return g_strdup_printf("a string of at most %zu bytes", (size_t)w->a);
    case WANT_INT:
        return g_strdup_printf("an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, w->a,
                               w->b);
    case WANT_BOOL:
        return g_strdup("true or false");
    case WANT_B64:
        return g_strdup_printf("a base64 string of at most %zu bytes", (size_t)w->a);
    case WANT_ARRAY:
        return g_strdup_printf("an array of at most %zu items", (size_t)w->a);
    case WANT_OBJECT:
    default:
        return g_strdup("an object");
    }
}

/* The member key of obj, or NULL with an error "field "key" is missing:
 * expected <want>" when it is absent (and optional is FALSE). */
static const json_t *
json_field(const json_t *obj, const char *key, const JsonWant *want, gboolean optional,
           GError **error)
{
    const json_t *v;

    if (!json_is_object(obj)) {
        g_autofree char *t = want_text(want);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s inside a JSON object, got %s", key, t,
                    obj == NULL ? "nothing" : json_type_desc(obj));
        return NULL;
    }
    v = json_object_get(obj, key);
    if (v == NULL && !optional) {
        g_autofree char *t = want_text(want);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\" is missing: expected %s", key, t);
    }
    return v;
}

/* A wrong type or value: "field "key": expected <want>, got <got>". */
static void
field_error(GError **error, const char *key, const JsonWant *want, const char *got)
{
    g_autofree char *t = want_text(want);

    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "field \"%s\": expected %s, got %s",
                key, t, got);
}

/* Checks that v is a string of at most max_len bytes without NUL. */
static const char *
json_str_check(const json_t *v, const char *key, size_t max_len, GError **error)
{
    const char *s;
    size_t n;

    if (!json_is_string(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected a string of at most %zu bytes, got %s", key, max_len,
                    json_type_desc(v));
        return NULL;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n > max_len) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected a string of at most %zu bytes, got %zu bytes", key,
                    max_len, n);
        return NULL;
    }
    /* Objects built in code (json_stringn) may hold a NUL, and a C string
     * would silently end there. */
    if (strlen(s) != n) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": the string contains a NUL character", key);
        return NULL;
    }
    return s;
}

const char *
cm_json_str(const json_t *obj, const char *key, size_t max_len, GError **error)
{
    JsonWant want = {WANT_STR, (gint64)max_len, 0};
    const json_t *v = json_field(obj, key, &want, FALSE, error);

    if (v == NULL)
        return NULL;
    return json_str_check(v, key, max_len, error);
}

/* Absent or null: NULL without an error. */
const char *
cm_json_opt_str(const json_t *obj, const char *key, size_t max_len, GError **error)
{
    JsonWant want = {WANT_STR, (gint64)max_len, 0};
    const json_t *v;
    GError *local = NULL;

    v = json_field(obj, key, &want, TRUE, &local);
    if (local != NULL) {
        g_propagate_error(error, local);
        return NULL;
    }
    if (v == NULL || json_is_null(v))
        return NULL;
    return json_str_check(v, key, max_len, error);
}

gboolean
cm_json_int(const json_t *obj, const char *key, gint64 min, gint64 max, gint64 *out, GError **error)
{
    JsonWant want = {WANT_INT, min, max};
    const json_t *v = json_field(obj, key, &want, FALSE, error);
    gint64 n;

    if (v == NULL)
        return FALSE;
    if (!json_is_integer(v)) {
        field_error(error, key, &want, json_type_desc(v));
        return FALSE;
    }
    n = (gint64)json_integer_value(v);
    if (n < min || n > max) {
        g_autofree char *got = g_strdup_printf("%" G_GINT64_FORMAT, n);
        field_error(error, key, &want, got);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

gboolean
cm_json_bool(const json_t *obj, const char *key, gboolean *out, GError **error)
{
    JsonWant want = {WANT_BOOL, 0, 0};
    const json_t *v = json_field(obj, key, &want, FALSE, error);

    if (v == NULL)
        return FALSE;
    if (!json_is_boolean(v)) {
        field_error(error, key, &want, json_type_desc(v));
        return FALSE;
    }
    *out = json_is_true(v);
    return TRUE;
}

GBytes *
cm_json_b64(const json_t *obj, const char *key, size_t max_len, GError **error)
{
    JsonWant want = {WANT_B64, (gint64)max_len, 0};
    const json_t *v = json_field(obj, key, &want, FALSE, error);
    GError *local = NULL;
    GBytes *bytes;

    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        field_error(error, key, &want, json_type_desc(v));
        return NULL;
    }
    bytes = cm_enc_b64_decode(json_string_value(v), json_string_length(v), max_len, &local);
    if (bytes == NULL) {
        /* Out of bounds is INVALID here, like every other field error. */
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "field \"%s\": %s", key,
                    local->message);
        g_error_free(local);
        return NULL;
    }
    return bytes;
}

const json_t *
cm_json_array(const json_t *obj, const char *key, size_t max_items, GError **error)
{
    JsonWant want = {WANT_ARRAY, (gint64)max_items, 0};
    const json_t *v = json_field(obj, key, &want, FALSE, error);

    if (v == NULL)
        return NULL;
    if (!json_is_array(v)) {
        field_error(error, key, &want, json_type_desc(v));
        return NULL;
    }
    if (json_array_size(v) > max_items) {
        g_autofree char *got = g_strdup_printf("%zu items", json_array_size(v));
        field_error(error, key, &want, got);
        return NULL;
    }
    return v;
}

const json_t *
cm_json_object(const json_t *obj, const char *key, GError **error)
{
    JsonWant want = {WANT_OBJECT, 0, 0};
    const json_t *v = json_field(obj, key, &want, FALSE, error);

    if (v == NULL)
        return NULL;
    if (!json_is_object(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected an object, got %s", key, json_type_desc(v));
        return NULL;
    }
    return v;
}
