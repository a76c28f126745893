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
    nul = memchr(text, '\0', len);
    if (nul != NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body has a NUL byte at offset %zu; JSON text never contains one",
                    (size_t)(nul - text));
        return NULL;
    }
    if (!g_utf8_validate_len(text, len, &bad_utf8)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "JSON body is not valid UTF-8 (offset %zu); encode it as UTF-8",
                    (size_t)(bad_utf8 - text));
        return NULL;
    }
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

char *
cm_json_dump(const json_t *obj)
{
    char *s;
    char *out;

    if (obj == NULL)
        return NULL;
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

/* The member key of obj, or NULL with an error "field "key" is missing:
 * expected <want>" when it is absent (and optional is FALSE). */
static const json_t *
json_field(const json_t *obj, const char *key, const char *want, gboolean optional, GError **error)
{
    const json_t *v;

    if (!json_is_object(obj)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s inside a JSON object, got %s", key, want,
                    obj == NULL ? "nothing" : json_type_desc(obj));
        return NULL;
    }
    v = json_object_get(obj, key);
    if (v == NULL && !optional)
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\" is missing: expected %s", key, want);
    return v;
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
    g_autofree char *want = g_strdup_printf("a string of at most %zu bytes", max_len);
    const json_t *v = json_field(obj, key, want, FALSE, error);

    if (v == NULL)
        return NULL;
    return json_str_check(v, key, max_len, error);
}

/* Absent or null: NULL without an error. */
const char *
cm_json_opt_str(const json_t *obj, const char *key, size_t max_len, GError **error)
{
    g_autofree char *want = g_strdup_printf("a string of at most %zu bytes", max_len);
    const json_t *v;
    GError *local = NULL;

    v = json_field(obj, key, want, TRUE, &local);
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
    g_autofree char *want =
        g_strdup_printf("an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, min, max);
    const json_t *v = json_field(obj, key, want, FALSE, error);
    gint64 n;

    if (v == NULL)
        return FALSE;
    if (!json_is_integer(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s, got %s", key, want, json_type_desc(v));
        return FALSE;
    }
    n = (gint64)json_integer_value(v);
    if (n < min || n > max) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s, got %" G_GINT64_FORMAT, key, want, n);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

gboolean
cm_json_bool(const json_t *obj, const char *key, gboolean *out, GError **error)
{
    const json_t *v = json_field(obj, key, "true or false", FALSE, error);

    if (v == NULL)
        return FALSE;
    if (!json_is_boolean(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected true or false, got %s", key, json_type_desc(v));
        return FALSE;
    }
    *out = json_is_true(v);
    return TRUE;
}

GBytes *
cm_json_b64(const json_t *obj, const char *key, size_t max_len, GError **error)
{
    g_autofree char *want = g_strdup_printf("a base64 string of at most %zu bytes", max_len);
    const json_t *v = json_field(obj, key, want, FALSE, error);
    GError *local = NULL;
    GBytes *bytes;

    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s, got %s", key, want, json_type_desc(v));
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
    g_autofree char *want = g_strdup_printf("an array of at most %zu items", max_items);
    const json_t *v = json_field(obj, key, want, FALSE, error);

    if (v == NULL)
        return NULL;
    if (!json_is_array(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s, got %s", key, want, json_type_desc(v));
        return NULL;
    }
    if (json_array_size(v) > max_items) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected %s, got %zu items", key, want, json_array_size(v));
        return NULL;
    }
    return v;
}

const json_t *
cm_json_object(const json_t *obj, const char *key, GError **error)
{
    const json_t *v = json_field(obj, key, "an object", FALSE, error);

    if (v == NULL)
        return NULL;
    if (!json_is_object(v)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "field \"%s\": expected an object, got %s", key, json_type_desc(v));
        return NULL;
    }
    return v;
}
