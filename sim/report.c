/* report.c - the CmRun container and the three reports of a simulated
 * scenario: the JSON report (docs/report-schema.md), the self-contained HTML
 * report with SVG charts, and the terminal summary.
 *
 * The JSON and HTML reports are a function of the CmRun contents alone:
 * hash tables are walked in sorted key order, arrays in a fixed order,
 * doubles go through g_ascii_formatd with a fixed format (the locale cannot
 * turn "0.5" into "0,5"), and chart scales are computed with IEEE basic
 * operations only (no log10/pow, whose last bit may differ between C
 * libraries), so the same scenario and seed give the same bytes on any
 * machine.  Figures measured on the host (wall time, event count, RSS) go
 * to the terminal summary only. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- CmRun */

static void
series_free(gpointer p)
{
    CmSeries *s = p;

    if (s == NULL)
        return;
    g_free(s->name);
    g_free(s->unit);
    if (s->values != NULL)
        g_array_unref(s->values);
    g_free(s);
}

static void
outcome_free(gpointer p)
{
    CmOutcome *o = p;

    if (o == NULL)
        return;
    g_free(o->attacker);
    g_free(o->strategy);
    g_free(o->outcome);
    if (o->figures != NULL)
        g_hash_table_unref(o->figures);
    g_free(o);
}

static void
expect_free(gpointer p)
{
    CmExpectResult *e = p;

    if (e == NULL)
        return;
    g_free(e->name);
    g_free(e->text);
    g_free(e);
}

/* name -> double*, both owned by the table. */
static GHashTable *
double_table_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

static void
double_table_set(GHashTable *table, const char *name, double value)
{
    double *v = g_new(double, 1);

    *v = value;
    g_hash_table_replace(table, g_strdup(name), v);
}

CmRun *
cm_run_new(void)
{
    CmRun *run = g_new0(CmRun, 1);

    run->metrics = double_table_new();
    run->series = g_ptr_array_new_with_free_func(series_free);
    run->outcomes = g_ptr_array_new_with_free_func(outcome_free);
    run->expects = g_ptr_array_new_with_free_func(expect_free);
    run->crypto_sampled = -1;
    run->crypto_sampled_alloc = -1;
    return run;
}

void
cm_run_free(CmRun *run)
{
    if (run == NULL)
        return;
    g_free(run->scenario);
    g_free(run->description);
    g_free(run->variant_label);
    g_free(run->full_size);
    g_clear_pointer(&run->metrics, g_hash_table_unref);
    g_clear_pointer(&run->series, g_ptr_array_unref);
    g_clear_pointer(&run->outcomes, g_ptr_array_unref);
    g_clear_pointer(&run->expects, g_ptr_array_unref);
    g_free(run);
}

void
cm_run_set_metric(CmRun *run, const char *name, double value)
{
    g_return_if_fail(run != NULL && name != NULL);
    double_table_set(run->metrics, name, value);
}

gboolean
cm_run_metric(const CmRun *run, const char *name, double *out)
{
    const double *v;

    g_return_val_if_fail(run != NULL && name != NULL, FALSE);
    v = g_hash_table_lookup(run->metrics, name);
    if (v == NULL)
        return FALSE;
    if (out != NULL)
        *out = *v;
    return TRUE;
}

CmSeries *
cm_run_series(CmRun *run, const char *name, const char *unit)
{
    CmSeries *s;

    g_return_val_if_fail(run != NULL && name != NULL, NULL);
    /* A scenario samples some tens of series: a linear scan is cheaper
     * than keeping an index in step with an array callers may append to. */
    for (guint i = 0; i < run->series->len; i++) {
        s = g_ptr_array_index(run->series, i);
        if (strcmp(s->name, name) == 0) {
            if (s->unit == NULL && unit != NULL)
                s->unit = g_strdup(unit);
            return s;
        }
    }
    s = g_new0(CmSeries, 1);
    s->name = g_strdup(name);
    s->unit = g_strdup(unit);
    s->values = g_array_new(FALSE, FALSE, sizeof(double));
    g_ptr_array_add(run->series, s);
    return s;
}

void
cm_series_append(CmSeries *s, double value)
{
    g_return_if_fail(s != NULL && s->values != NULL);
    g_array_append_val(s->values, value);
}

CmOutcome *
cm_run_add_outcome(CmRun *run, const char *attacker, const char *strategy, gboolean succeeded,
                   const char *outcome)
{
    CmOutcome *o;

    g_return_val_if_fail(run != NULL, NULL);
    o = g_new0(CmOutcome, 1);
    o->attacker = g_strdup(attacker);
    o->strategy = g_strdup(strategy);
    o->succeeded = succeeded;
    o->outcome = g_strdup(outcome);
    o->figures = double_table_new();
    g_ptr_array_add(run->outcomes, o);
    return o;
}

void
cm_outcome_set_figure(CmOutcome *o, const char *name, double value)
{
    g_return_if_fail(o != NULL && name != NULL);
    if (o->figures == NULL)
        o->figures = double_table_new();
    double_table_set(o->figures, name, value);
}

CmExpectResult *
cm_run_add_expect(CmRun *run, const char *name, const char *text, gboolean applies, gboolean known,
                  double value, gboolean passed)
{
    CmExpectResult *e;

    g_return_val_if_fail(run != NULL, NULL);
    e = g_new0(CmExpectResult, 1);
    e->name = g_strdup(name);
    e->text = g_strdup(text);
    e->applies = applies;
    e->known = known;
    e->value = value;
    e->passed = passed;
    g_ptr_array_add(run->expects, e);
    return e;
}

/* ------------------------------------------------------ shared helpers */

typedef enum {
    EXPECT_NA, /* names another variant: counts neither way */
    EXPECT_PASS,
    EXPECT_FAIL,
} ExpectState;

/* A missing metric fails even if the caller left passed set: an
 * expectation over a misspelt metric must not hold silently. */
static ExpectState
expect_state(const CmExpectResult *e)
{
    if (!e->applies)
        return EXPECT_NA;
    return e->known && e->passed ? EXPECT_PASS : EXPECT_FAIL;
}

gboolean
cm_run_passed(const CmRun *run)
{
    g_return_val_if_fail(run != NULL, FALSE);
    for (guint i = 0; i < run->expects->len; i++) {
        if (expect_state(g_ptr_array_index(run->expects, i)) == EXPECT_FAIL)
            return FALSE;
    }
    return TRUE;
}

static const char *
nz(const char *s)
{
    return s != NULL ? s : "";
}

/* s as valid UTF-8 without control characters (each becomes '?'; a tab a
 * space; a newline stays when multiline): a scenario file's name or an
 * outcome sentence must not carry terminal escape sequences to the user's
 * terminal nor characters HTML cannot hold (new string). */
static char *
clean_text(const char *s, gboolean multiline)
{
    g_autofree char *valid = g_utf8_make_valid(nz(s), -1);
    GString *out = g_string_sized_new(strlen(valid));

    for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);

        if (c == '\n' && multiline)
            g_string_append_c(out, '\n');
        else if (c == '\t')
            g_string_append_c(out, ' ');
        else if (g_unichar_iscntrl(c))
            g_string_append_c(out, '?');
        else
            g_string_append_len(out, p, g_utf8_next_char(p) - p);
    }
    return g_string_free(out, FALSE);
}

#define NUM_BUF 48

/* A number for people: integral values as integers (a count of 1000000
 * stays 1000000, not 1e+06), others with six significant digits. */
static const char *
fmt_num(char buf[NUM_BUF], double v)
{
    if (isnan(v))
        g_strlcpy(buf, "n/a", NUM_BUF);
    else if (isinf(v))
        g_strlcpy(buf, v > 0 ? "inf" : "-inf", NUM_BUF);
    else if (v == floor(v) && fabs(v) < 1e15)
        g_snprintf(buf, NUM_BUF, "%" G_GINT64_FORMAT, (gint64)v);
    else
        g_ascii_formatd(buf, NUM_BUF, "%.6g", v);
    return buf;
}

/* v with a fixed number of decimals, locale-independent. */
static const char *
fmt_fixed(char buf[NUM_BUF], double v, int decimals)
{
    char format[8];

    g_snprintf(format, sizeof format, "%%.%df", CLAMP(decimals, 0, 9));
    return g_ascii_formatd(buf, NUM_BUF, format, v);
}

/* "0", "250ms", "90s" -> "1m30s", "1h30m", "2d", "1.5s". */
static void
append_duration(GString *out, CmTime t)
{
    guint64 u;

    if (t == 0) {
        g_string_append_c(out, '0');
        return;
    }
    if (t < 0) {
        g_string_append_c(out, '-');
        u = (guint64)0 - (guint64)t;
    } else {
        u = (guint64)t;
    }
    if (u < (guint64)CM_USEC_PER_SEC) {
        if (u % 1000 == 0)
            g_string_append_printf(out, "%" G_GUINT64_FORMAT "ms", u / 1000);
        else
            g_string_append_printf(out, "%" G_GUINT64_FORMAT "us", u);
        return;
    }
    guint64 days = u / CM_USEC_PER_DAY;
    guint64 hours = u % CM_USEC_PER_DAY / CM_USEC_PER_HOUR;
    guint64 mins = u % CM_USEC_PER_HOUR / CM_USEC_PER_MIN;
    guint64 secs = u % CM_USEC_PER_MIN / CM_USEC_PER_SEC;
    guint64 frac = u % CM_USEC_PER_SEC;
    if (days > 0)
        g_string_append_printf(out, "%" G_GUINT64_FORMAT "d", days);
    if (hours > 0)
        g_string_append_printf(out, "%" G_GUINT64_FORMAT "h", hours);
    if (mins > 0)
        g_string_append_printf(out, "%" G_GUINT64_FORMAT "m", mins);
    if (frac > 0) {
        char digits[8];
        int n;

        g_snprintf(digits, sizeof digits, "%06" G_GUINT64_FORMAT, frac);
        for (n = 6; n > 0 && digits[n - 1] == '0'; n--)
            ;
        digits[n] = '\0';
        g_string_append_printf(out, "%" G_GUINT64_FORMAT ".%ss", secs, digits);
    } else if (secs > 0) {
        g_string_append_printf(out, "%" G_GUINT64_FORMAT "s", secs);
    }
}

static char *
duration_str(CmTime t)
{
    GString *s = g_string_new(NULL);

    append_duration(s, t);
    return g_string_free(s, FALSE);
}

static gint
cmp_str_ptr(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The table's keys in byte order (borrowed strings): hash order depends on
 * insertion history, and reports must not. */
static GPtrArray *
sorted_keys(GHashTable *table)
{
    GPtrArray *keys = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    if (table != NULL) {
        g_hash_table_iter_init(&it, table);
        while (g_hash_table_iter_next(&it, &key, NULL))
            g_ptr_array_add(keys, key);
    }
    g_ptr_array_sort(keys, cmp_str_ptr);
    return keys;
}

static double
table_value(GHashTable *table, const char *key)
{
    return *(const double *)g_hash_table_lookup(table, key);
}

static gint
cmp_series(gconstpointer a, gconstpointer b)
{
    const CmSeries *x = *(const CmSeries *const *)a;
    const CmSeries *y = *(const CmSeries *const *)b;
    int c = g_strcmp0(x->name, y->name);

    return c != 0 ? c : g_strcmp0(x->unit, y->unit);
}

/* The run's series by name (borrowed).  g_ptr_array_sort is stable, so
 * even two series of one name keep their insertion order. */
static GPtrArray *
sorted_series(const CmRun *run)
{
    GPtrArray *out = g_ptr_array_sized_new(run->series->len);

    for (guint i = 0; i < run->series->len; i++)
        g_ptr_array_add(out, g_ptr_array_index(run->series, i));
    g_ptr_array_sort(out, cmp_series);
    return out;
}

static const CmSeries *
find_series(const CmRun *run, const char *name)
{
    for (guint i = 0; i < run->series->len; i++) {
        const CmSeries *s = g_ptr_array_index(run->series, i);
        if (g_strcmp0(s->name, name) == 0)
            return s;
    }
    return NULL;
}

static const CmExpectResult *
find_expect(const CmRun *run, const char *name)
{
    for (guint i = 0; i < run->expects->len; i++) {
        const CmExpectResult *e = g_ptr_array_index(run->expects, i);
        if (g_strcmp0(e->name, name) == 0)
            return e;
    }
    return NULL;
}

static void
count_expects(GPtrArray *runs, guint *passed, guint *failed)
{
    *passed = *failed = 0;
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        for (guint i = 0; i < run->expects->len; i++) {
            ExpectState st = expect_state(g_ptr_array_index(run->expects, i));
            if (st == EXPECT_PASS)
                (*passed)++;
            else if (st == EXPECT_FAIL)
                (*failed)++;
        }
    }
}

/* A heading for run i among n: its variant label, or a stand-in when the
 * scenario has no variants (new string). */
static char *
run_title(const CmRun *run, guint i, guint n)
{
    if (run->variant_label != NULL && run->variant_label[0] != '\0')
        return clean_text(run->variant_label, FALSE);
    return n > 1 ? g_strdup_printf("variant %u", i + 1) : g_strdup("run");
}

/* ---------------------------------------------------------------- JSON */

#define REPORT_SCHEMA_VERSION 1

/* Numbers: integral values within 2^53 as JSON integers (every reader
 * holds them exactly), other finite values as reals printed "%.6g" by
 * JSON_REAL_PRECISION(6), NaN and infinities as null (JSON has none). */
static json_t *
num_json(double v)
{
    if (!isfinite(v))
        return json_null();
    if (v == floor(v) && fabs(v) <= 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

/* jansson refuses invalid UTF-8 (json_string returns NULL), and a field
 * silently missing from the report would be worse than a replaced byte. */
static json_t *
str_json(const char *s)
{
    g_autofree char *valid = g_utf8_make_valid(nz(s), -1);

    return json_string(valid);
}

static json_t *
seconds_json(CmTime t)
{
    return num_json((double)t / (double)CM_USEC_PER_SEC);
}

/* Seeds are 64-bit: above 2^53 a JSON number would be rounded by many
 * readers, so those are written as a decimal string. */
static json_t *
seed_json(guint64 seed)
{
    char buf[32];

    if (seed <= G_GUINT64_CONSTANT(9007199254740991))
        return json_integer((json_int_t)seed);
    g_snprintf(buf, sizeof buf, "%" G_GUINT64_FORMAT, seed);
    return json_string(buf);
}

static json_t *
table_json(GHashTable *table)
{
    json_t *obj = json_object();
    g_autoptr(GPtrArray) keys = sorted_keys(table);

    for (guint i = 0; i < keys->len; i++) {
        const char *key = g_ptr_array_index(keys, i);
        g_autofree char *valid = g_utf8_make_valid(key, -1);
        json_object_set_new(obj, valid, num_json(table_value(table, key)));
    }
    return obj;
}

static json_t *
series_json(const CmSeries *s)
{
    json_t *obj = json_object();
    json_t *values = json_array();

    for (guint i = 0; s->values != NULL && i < s->values->len; i++)
        json_array_append_new(values, num_json(g_array_index(s->values, double, i)));
    json_object_set_new(obj, "name", str_json(s->name));
    json_object_set_new(obj, "unit", str_json(s->unit));
    json_object_set_new(obj, "values", values);
    return obj;
}

static json_t *
outcome_json(const CmOutcome *o)
{
    json_t *obj = json_object();

    json_object_set_new(obj, "attacker", str_json(o->attacker));
    json_object_set_new(obj, "strategy", str_json(o->strategy));
    json_object_set_new(obj, "succeeded", json_boolean(o->succeeded));
    json_object_set_new(obj, "outcome", str_json(o->outcome));
    json_object_set_new(obj, "figures", table_json(o->figures));
    return obj;
}

static json_t *
expect_json(const CmExpectResult *e)
{
    json_t *obj = json_object();
    ExpectState st = expect_state(e);

    json_object_set_new(obj, "name", str_json(e->name));
    json_object_set_new(obj, "text", str_json(e->text));
    json_object_set_new(obj, "applies", json_boolean(e->applies));
    json_object_set_new(obj, "known", json_boolean(e->known));
    json_object_set_new(obj, "value", e->known ? num_json(e->value) : json_null());
    json_object_set_new(obj, "passed",
                        st == EXPECT_NA ? json_null() : json_boolean(st == EXPECT_PASS));
    return obj;
}

static json_t *
run_json(const CmRun *run)
{
    json_t *obj = json_object();
    json_t *series = json_array();
    json_t *outcomes = json_array();
    json_t *expects = json_array();
    g_autoptr(GPtrArray) sorted = sorted_series(run);

    for (guint i = 0; i < sorted->len; i++)
        json_array_append_new(series, series_json(g_ptr_array_index(sorted, i)));
    for (guint i = 0; i < run->outcomes->len; i++)
        json_array_append_new(outcomes, outcome_json(g_ptr_array_index(run->outcomes, i)));
    for (guint i = 0; i < run->expects->len; i++)
        json_array_append_new(expects, expect_json(g_ptr_array_index(run->expects, i)));

    json_object_set_new(obj, "variant", str_json(run->variant_label));
    json_object_set_new(obj, "seed", seed_json(run->seed));
    json_object_set_new(obj, "duration_s", seconds_json(run->duration));
    json_object_set_new(obj, "sample_s", seconds_json(run->sample));
    json_object_set_new(obj, "crypto", json_string(run->model_crypto ? "model" : "real"));
    json_object_set_new(obj, "metrics", table_json(run->metrics));
    json_object_set_new(obj, "series", series);
    json_object_set_new(obj, "outcomes", outcomes);
    json_object_set_new(obj, "expectations", expects);
    json_object_set_new(obj, "passed", json_boolean(cm_run_passed(run)));
    return obj;
}

char *
cm_report_json(GPtrArray *runs)
{
    json_t *root = json_object();
    json_t *variants = json_array();
    const CmRun *first;
    gboolean passed = TRUE;
    char *text;
    char *out;

    g_return_val_if_fail(runs != NULL, NULL);
    first = runs->len > 0 ? g_ptr_array_index(runs, 0) : NULL;
    for (guint i = 0; i < runs->len; i++) {
        const CmRun *run = g_ptr_array_index(runs, i);
        json_array_append_new(variants, run_json(run));
        passed = passed && cm_run_passed(run);
    }
    json_object_set_new(root, "report", json_string("cmlab-sim"));
    json_object_set_new(root, "schema_version", json_integer(REPORT_SCHEMA_VERSION));
    json_object_set_new(root, "scenario", str_json(first ? first->scenario : NULL));
    json_object_set_new(root, "description", str_json(first ? first->description : NULL));
    json_object_set_new(root, "full_size", str_json(first ? first->full_size : NULL));
    json_object_set_new(root, "passed", json_boolean(passed));
    json_object_set_new(root, "variants", variants);

    /* Indented so that two reports diff line by line. */
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (text == NULL)
        return NULL;
    /* The caller frees with g_free; jansson allocated with malloc. */
    out = g_strconcat(text, "\n", NULL);
    free(text);
    return out;
}

/* ---------------------------------------------------------------- HTML */

/* Text for an HTML element or a quoted attribute. */
static void
html_text(GString *h, const char *s)
{
    g_autofree char *clean = clean_text(s, TRUE);

    for (const char *p = clean; *p != '\0'; p++) {
        switch (*p) {
        case '&':
            g_string_append(h, "&amp;");
            break;
        case '<':
            g_string_append(h, "&lt;");
            break;
        case '>':
            g_string_append(h, "&gt;");
            break;
        case '"':
            g_string_append(h, "&quot;");
            break;
        case '\'':
            g_string_append(h, "&#39;");
            break;
        default:
            g_string_append_c(h, *p);
        }
    }
}

static void
html_num(GString *h, double v)
{
    char buf[NUM_BUF];

    g_string_append(h, fmt_num(buf, v));
}

static void
html_duration(GString *h, CmTime t)
{
    append_duration(h, t);
}

static const char html_style[] =
    "body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,"
    "sans-serif;color:#1f2328;max-width:1100px;margin:24px auto;padding:0 16px}\n"
    "h1{font-size:24px;margin:0 0 4px}\n"
    "h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}\n"
    ".desc{white-space:pre-line;color:#444;margin:4px 0 12px}\n"
    "table{border-collapse:collapse;margin:8px 0}\n"
    "th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}\n"
    "th{background:#f6f8fa}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}\n"
    ".pass{background:#dafbe1;color:#116329}\n"
    ".fail{background:#ffebe9;color:#a40e26}\n"
    ".na{color:#6e7781}\n"
    ".verdict{display:inline-block;padding:6px 12px;border-radius:4px;font-weight:600}\n"
    "figure{margin:16px 0;break-inside:avoid;page-break-inside:avoid}\n"
    "figcaption{font-weight:600;margin-bottom:4px}\n"
    "svg{max-width:100%;height:auto}\n"
    "svg text{font-size:11px;fill:#333}\n"
    "svg .grid{stroke:#e5e7eb}\n"
    "svg .axis{stroke:#57606a}\n"
    "svg .ln{fill:none;stroke-width:1.6;stroke-linejoin:round}\n"
    "footer{margin-top:32px;color:#6e7781;font-size:12px}\n"
    "@media print{body{margin:0;max-width:none}"
    ".pass,.fail,.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    "h2{break-after:avoid;page-break-after:avoid}}\n";

/* Table header: a first column, then one column per run. */
static void
html_run_header(GString *h, GPtrArray *runs, const char *first, const char *second,
                const char *single)
{
    g_string_append(h, "<tr><th>");
    html_text(h, first);
    g_string_append(h, "</th>");
    if (second != NULL) {
        g_string_append(h, "<th>");
        html_text(h, second);
        g_string_append(h, "</th>");
    }
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        g_autofree char *title = runs->len == 1 && nz(run->variant_label)[0] == '\0'
                                     ? g_strdup(single)
                                     : run_title(run, r, runs->len);
        g_string_append(h, "<th>");
        html_text(h, title);
        g_string_append(h, "</th>");
    }
    g_string_append(h, "</tr>\n");
}

static void
html_what_ran(GString *h, GPtrArray *runs)
{
    g_string_append(h, "<h2>What ran</h2>\n<table>\n");
    html_run_header(h, runs, "", NULL, "run");

    g_string_append(h, "<tr><th>seed</th>");
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        g_string_append_printf(h, "<td class=\"num\">%" G_GUINT64_FORMAT "</td>", run->seed);
    }
    g_string_append(h, "</tr>\n<tr><th>virtual time</th>");
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        g_string_append(h, "<td class=\"num\">");
        html_duration(h, run->duration);
        g_string_append(h, "</td>");
    }
    g_string_append(h, "</tr>\n<tr><th>sampled every</th>");
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        g_string_append(h, "<td class=\"num\">");
        html_duration(h, run->sample);
        g_string_append(h, "</td>");
    }
    g_string_append(h, "</tr>\n<tr><th>crypto</th>");
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        g_string_append_printf(h, "<td>%s</td>", run->model_crypto ? "cost model" : "real");
    }
    g_string_append(h, "</tr>\n<tr><th>expectations</th>");
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        guint pass = 0, fail = 0;
        for (guint i = 0; i < run->expects->len; i++) {
            ExpectState st = expect_state(g_ptr_array_index(run->expects, i));
            pass += st == EXPECT_PASS;
            fail += st == EXPECT_FAIL;
        }
        g_string_append_printf(h, "<td class=\"%s\">%u passed, %u failed</td>",
                               fail > 0 ? "fail" : "pass", pass, fail);
    }
    g_string_append(h, "</tr>\n</table>\n");
}

/* One row per expectation name (in first-seen order), one cell per run:
 * a variant-specific expectation shows n/a where it does not apply. */
static void
html_expectations(GString *h, GPtrArray *runs)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        for (guint i = 0; i < run->expects->len; i++) {
            const CmExpectResult *e = g_ptr_array_index(run->expects, i);
            if (g_hash_table_add(seen, (gpointer)nz(e->name)))
                g_ptr_array_add(names, (gpointer)e);
        }
    }
    g_string_append(h, "<h2>Expectations</h2>\n");
    if (names->len == 0) {
        g_string_append(h, "<p class=\"na\">The scenario states no expectations.</p>\n");
        return;
    }
    g_string_append(h, "<table>\n");
    html_run_header(h, runs, "expectation", "expression", "result");
    for (guint i = 0; i < names->len; i++) {
        const CmExpectResult *proto = g_ptr_array_index(names, i);
        g_string_append(h, "<tr><th>");
        html_text(h, proto->name);
        g_string_append(h, "</th><td><code>");
        html_text(h, proto->text);
        g_string_append(h, "</code></td>");
        for (guint r = 0; r < runs->len; r++) {
            const CmExpectResult *e = find_expect(g_ptr_array_index(runs, r), proto->name);
            ExpectState st = e != NULL ? expect_state(e) : EXPECT_NA;
            if (st == EXPECT_NA) {
                g_string_append(h, "<td class=\"na\">n/a</td>");
                continue;
            }
            g_string_append_printf(h, "<td class=\"%s\"><b>%s</b> ",
                                   st == EXPECT_PASS ? "pass" : "fail",
                                   st == EXPECT_PASS ? "PASS" : "FAIL");
            if (e->known)
                html_num(h, e->value);
            else
                g_string_append(h, "no such metric");
            g_string_append(h, "</td>");
        }
        g_string_append(h, "</tr>\n");
    }
    g_string_append(h, "</table>\n");
}

static void
html_figures(GString *h, GHashTable *figures)
{
    g_autoptr(GPtrArray) keys = sorted_keys(figures);

    for (guint i = 0; i < keys->len; i++) {
        const char *key = g_ptr_array_index(keys, i);
        if (i > 0)
            g_string_append(h, ", ");
        html_text(h, key);
        g_string_append(h, " ");
        html_num(h, table_value(figures, key));
    }
}

static void
html_outcomes(GString *h, GPtrArray *runs)
{
    guint total = 0;

    for (guint r = 0; r < runs->len; r++)
        total += ((const CmRun *)g_ptr_array_index(runs, r))->outcomes->len;
    g_string_append(h, "<h2>Attack outcomes</h2>\n");
    if (total == 0) {
        g_string_append(h, "<p class=\"na\">The scenario has no attackers.</p>\n");
        return;
    }

    /* Several variants: first the attack-by-defence matrix, one row per
     * attacker, one column per variant. */
    if (runs->len > 1) {
        g_autoptr(GPtrArray) rows = g_ptr_array_new();
        g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

        for (guint r = 0; r < runs->len; r++) {
            const CmRun *run = g_ptr_array_index(runs, r);
            for (guint i = 0; i < run->outcomes->len; i++) {
                const CmOutcome *o = g_ptr_array_index(run->outcomes, i);
                if (g_hash_table_add(seen, (gpointer)nz(o->attacker)))
                    g_ptr_array_add(rows, (gpointer)o);
            }
        }
        g_string_append(h, "<table>\n");
        html_run_header(h, runs, "attacker", "strategy", "result");
        for (guint i = 0; i < rows->len; i++) {
            const CmOutcome *proto = g_ptr_array_index(rows, i);
            g_string_append(h, "<tr><th>");
            html_text(h, proto->attacker);
            g_string_append(h, "</th><td>");
            html_text(h, proto->strategy);
            g_string_append(h, "</td>");
            for (guint r = 0; r < runs->len; r++) {
                const CmRun *run = g_ptr_array_index(runs, r);
                const CmOutcome *o = NULL;
                for (guint k = 0; k < run->outcomes->len && o == NULL; k++) {
                    const CmOutcome *c = g_ptr_array_index(run->outcomes, k);
                    if (g_strcmp0(c->attacker, proto->attacker) == 0)
                        o = c;
                }
                if (o == NULL)
                    g_string_append(h, "<td class=\"na\">n/a</td>");
                else if (o->succeeded)
                    g_string_append(h, "<td class=\"fail\">attack succeeded</td>");
                else
                    g_string_append(h, "<td class=\"pass\">attack failed</td>");
            }
            g_string_append(h, "</tr>\n");
        }
        g_string_append(h, "</table>\n");
    }

    g_string_append(h, "<table>\n<tr>");
    if (runs->len > 1)
        g_string_append(h, "<th>variant</th>");
    g_string_append(h, "<th>attacker</th><th>strategy</th><th>result</th><th>outcome</th>"
                       "<th>figures</th></tr>\n");
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        g_autofree char *title = run_title(run, r, runs->len);
        for (guint i = 0; i < run->outcomes->len; i++) {
            const CmOutcome *o = g_ptr_array_index(run->outcomes, i);
            g_string_append(h, "<tr>");
            if (runs->len > 1) {
                g_string_append(h, "<td>");
                html_text(h, title);
                g_string_append(h, "</td>");
            }
            g_string_append(h, "<td>");
            html_text(h, o->attacker);
            g_string_append(h, "</td><td>");
            html_text(h, o->strategy);
            g_string_append(h, o->succeeded ? "</td><td class=\"fail\">succeeded</td><td>"
                                            : "</td><td class=\"pass\">failed</td><td>");
            html_text(h, o->outcome);
            g_string_append(h, "</td><td>");
            html_figures(h, o->figures);
            g_string_append(h, "</td></tr>\n");
        }
    }
    g_string_append(h, "</table>\n");
}

/* Metrics as rows, variants as columns: with variants this is the
 * attack-by-defence matrix. */
static void
html_metrics(GString *h, GPtrArray *runs)
{
    g_autoptr(GHashTable) all = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GPtrArray) names = NULL;

    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, run->metrics);
        while (g_hash_table_iter_next(&it, &key, NULL))
            g_hash_table_add(all, key);
    }
    names = sorted_keys(all);
    g_string_append(h, "<h2>Metrics</h2>\n");
    if (names->len == 0) {
        g_string_append(h, "<p class=\"na\">No metrics were recorded.</p>\n");
        return;
    }
    g_string_append(h, "<table>\n");
    html_run_header(h, runs, "metric", NULL, "value");
    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        g_string_append(h, "<tr><th><code>");
        html_text(h, name);
        g_string_append(h, "</code></th>");
        for (guint r = 0; r < runs->len; r++) {
            double v;
            if (cm_run_metric(g_ptr_array_index(runs, r), name, &v)) {
                g_string_append(h, "<td class=\"num\">");
                html_num(h, v);
                g_string_append(h, "</td>");
            } else {
                g_string_append(h, "<td class=\"na\">&#8212;</td>");
            }
        }
        g_string_append(h, "</tr>\n");
    }
    g_string_append(h, "</table>\n");
}

/* --- charts */

/* More lines than this on one chart stop being readable. */
#define CHART_MAX_LINES 8

#define SVG_W 720
#define PLOT_L 64.0
#define PLOT_R 704.0
#define PLOT_T 12.0
#define PLOT_B 222.0
#define LEGEND_T 256
#define LEGEND_ROW 18
#define LEGEND_COL 320
#define LEGEND_MAX_CHARS 44

/* Okabe-Ito colours (distinguishable with the common colour blindnesses),
 * yellow swapped for grey, which reads on white; dashes tell variants
 * apart where colours tell series apart, and still do in greyscale print. */
static const char *const chart_colors[] = {
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999999",
};
static const char *const chart_dashes[] = {"", "7 4", "2 3", "9 3 2 3"};

typedef struct {
    char *title;  /* "latency.register.*", or the one series' name */
    char *prefix; /* stripped from legend labels when several series share a chart */
    char *unit;
    GPtrArray *names; /* series names (borrowed from the runs) */
} Chart;

static void
chart_free(gpointer p)
{
    Chart *c = p;

    g_free(c->title);
    g_free(c->prefix);
    g_free(c->unit);
    g_ptr_array_unref(c->names);
    g_free(c);
}

typedef struct {
    char *prefix;
    char *unit;
    GPtrArray *names;
} ChartGroup;

static void
group_free(gpointer p)
{
    ChartGroup *g = p;

    g_free(g->prefix);
    g_free(g->unit);
    g_ptr_array_unref(g->names);
    g_free(g);
}

/* Which series share a chart: those with the same name up to the last '.'
 * and the same unit ("latency.register.p50" and ".p95" do; a rate and a
 * queue depth never share an axis), at most CHART_MAX_LINES lines per chart
 * counting one line per series per variant (new array of Chart*). */
static GPtrArray *
plan_charts(GPtrArray *runs)
{
    GPtrArray *charts = g_ptr_array_new_with_free_func(chart_free);
    g_autoptr(GHashTable) units = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GHashTable) by_key = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(group_free);
    g_autoptr(GPtrArray) names = NULL;
    guint per_chart = MAX(1, CHART_MAX_LINES / MAX(runs->len, 1));

    /* The first run that has a series names its unit. */
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        for (guint i = 0; i < run->series->len; i++) {
            const CmSeries *s = g_ptr_array_index(run->series, i);
            if (s->name != NULL && !g_hash_table_contains(units, s->name))
                g_hash_table_insert(units, s->name, (gpointer)nz(s->unit));
        }
    }
    names = sorted_keys(units);
    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        const char *unit = g_hash_table_lookup(units, name);
        const char *dot = strrchr(name, '.');
        g_autofree char *prefix = dot != NULL ? g_strndup(name, dot - name) : g_strdup(name);
        char *key = g_strconcat(prefix, "\n", unit, NULL);
        ChartGroup *g = g_hash_table_lookup(by_key, key);

        if (g == NULL) {
            g = g_new0(ChartGroup, 1);
            g->prefix = g_steal_pointer(&prefix);
            g->unit = g_strdup(unit);
            g->names = g_ptr_array_new();
            g_ptr_array_add(groups, g);
            g_hash_table_insert(by_key, key, g);
        } else {
            g_free(key);
        }
        g_ptr_array_add(g->names, (gpointer)name);
    }

    for (guint i = 0; i < groups->len; i++) {
        const ChartGroup *g = g_ptr_array_index(groups, i);
        guint parts = (g->names->len + per_chart - 1) / per_chart;

        for (guint part = 0; part < parts; part++) {
            Chart *c = g_new0(Chart, 1);
            guint from = part * per_chart;
            guint to = MIN(from + per_chart, g->names->len);

            c->unit = g_strdup(g->unit);
            c->names = g_ptr_array_new();
            for (guint k = from; k < to; k++)
                g_ptr_array_add(c->names, g_ptr_array_index(g->names, k));
            if (c->names->len == 1) {
                c->title = g_strdup(g_ptr_array_index(c->names, 0));
            } else {
                c->prefix = g_strdup(g->prefix);
                c->title = parts > 1
                               ? g_strdup_printf("%s.* (%u of %u)", g->prefix, part + 1, parts)
                               : g_strdup_printf("%s.*", g->prefix);
            }
            g_ptr_array_add(charts, c);
        }
    }
    return charts;
}

/* The smallest of 1, 2, 5 times a power of ten that is >= x.  Plain
 * multiplication and division (correctly rounded everywhere) rather than
 * log10 and pow, so every machine picks the same scale. */
static double
nice_up(double x)
{
    double base = 1.0;

    if (!(x > 1e-300) || !isfinite(x))
        return 1.0;
    while (base * 10.0 <= x)
        base *= 10.0;
    while (base > x)
        base /= 10.0;
    if (x <= base)
        return base;
    if (x <= 2.0 * base)
        return 2.0 * base;
    if (x <= 5.0 * base)
        return 5.0 * base;
    return 10.0 * base;
}

/* A y tick label: from ten thousand up in k, M or G, with as many
 * decimals as the step needs ("0.25" steps need two, "5k" none). */
static void
append_y_label(GString *h, double v, double step, double magnitude)
{
    char buf[NUM_BUF];
    double divisor = 1.0;
    const char *suffix = "";
    int decimals = 0;

    if (magnitude >= 1e9) {
        divisor = 1e9;
        suffix = "G";
    } else if (magnitude >= 1e6) {
        divisor = 1e6;
        suffix = "M";
    } else if (magnitude >= 1e4) {
        divisor = 1e3;
        suffix = "k";
    }
    for (double s = step / divisor; decimals < 9 && s < 0.999999; s *= 10.0)
        decimals++;
    if (fabs(v) < step * 1e-6) {
        g_string_append_c(h, '0'); /* not "-0" from lo + i * step, nor "0.0M" */
        return;
    }
    g_string_append(h, fmt_fixed(buf, v / divisor, decimals));
    g_string_append(h, suffix);
}

/* An SVG coordinate, one decimal. */
static void
append_coord(GString *h, double v)
{
    char buf[NUM_BUF];

    if (fabs(v) < 0.05)
        v = 0.0;
    g_string_append(h, fmt_fixed(buf, v, 1));
}

/* The x tick step: the smallest round duration giving at most 6 steps. */
static CmTime
x_tick_step(CmTime xmax)
{
    /* One time unit per line reads better than one step per line. */
    /* clang-format off */
    static const CmTime steps[] = {
        1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
        CM_USEC_PER_SEC, 2 * CM_USEC_PER_SEC, 5 * CM_USEC_PER_SEC, 10 * CM_USEC_PER_SEC,
        15 * CM_USEC_PER_SEC, 30 * CM_USEC_PER_SEC,
        CM_USEC_PER_MIN, 2 * CM_USEC_PER_MIN, 5 * CM_USEC_PER_MIN, 10 * CM_USEC_PER_MIN,
        15 * CM_USEC_PER_MIN, 30 * CM_USEC_PER_MIN,
        CM_USEC_PER_HOUR, 2 * CM_USEC_PER_HOUR, 3 * CM_USEC_PER_HOUR, 6 * CM_USEC_PER_HOUR,
        12 * CM_USEC_PER_HOUR,
        CM_USEC_PER_DAY, 2 * CM_USEC_PER_DAY, 7 * CM_USEC_PER_DAY, 14 * CM_USEC_PER_DAY,
    };
    /* clang-format on */

    for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
        if (xmax / steps[i] <= 6)
            return steps[i];
    }
    /* Beyond six fortnights: a round number of days. */
    return (CmTime)nice_up((double)(xmax / CM_USEC_PER_DAY) / 6.0) * CM_USEC_PER_DAY;
}

typedef struct {
    double xmax; /* microseconds */
    double lo, hi;
} Scale;

static double
px_x(const Scale *sc, double t)
{
    return PLOT_L + t / sc->xmax * (PLOT_R - PLOT_L);
}

static double
px_y(const Scale *sc, double v)
{
    return PLOT_B - (v - sc->lo) / (sc->hi - sc->lo) * (PLOT_B - PLOT_T);
}

typedef struct {
    GString *d;
    gboolean pen; /* a subpath is open */
} PathBuf;

static void
path_point(PathBuf *p, double x, double y)
{
    if (p->d->len > 0)
        g_string_append_c(p->d, ' ');
    g_string_append_c(p->d, p->pen ? 'L' : 'M');
    append_coord(p->d, x);
    g_string_append_c(p->d, ',');
    append_coord(p->d, y);
    p->pen = TRUE;
}

/* The path of one series, sample i at (i + 1) * sample.  A missing (NaN)
 * sample breaks the line.  A series with more samples than twice the
 * plot's pixel columns keeps each column's lowest and highest value, in
 * their order: peaks stay visible and the page stays small however fine
 * the sampling. */
static char *
series_path(const CmSeries *s, CmTime sample, const Scale *sc)
{
    PathBuf p = {g_string_new(NULL), FALSE};
    guint n = s->values->len;
    gboolean decimate = n > 2 * (guint)(PLOT_R - PLOT_L);
    gboolean have = FALSE;
    int col = -1;
    guint imin = 0, imax = 0;

    for (guint i = 0; i <= n; i++) {
        double v = i < n ? g_array_index(s->values, double, i) : NAN;
        double x = i < n ? px_x(sc, (double)(i + 1) * (double)sample) : 0.0;
        int c = (int)(x - PLOT_L);
        gboolean end = i == n || !isfinite(v);

        if (!decimate) {
            if (end)
                p.pen = FALSE;
            else
                path_point(&p, x, px_y(sc, v));
            continue;
        }
        if (have && (end || c != col)) {
            guint a = MIN(imin, imax), b = MAX(imin, imax);
            path_point(&p, px_x(sc, (double)(a + 1) * (double)sample),
                       px_y(sc, g_array_index(s->values, double, a)));
            if (b != a)
                path_point(&p, px_x(sc, (double)(b + 1) * (double)sample),
                           px_y(sc, g_array_index(s->values, double, b)));
            have = FALSE;
        }
        if (end) {
            p.pen = FALSE;
            continue;
        }
        if (!have) {
            have = TRUE;
            col = c;
            imin = imax = i;
        } else if (v < g_array_index(s->values, double, imin)) {
            imin = i;
        } else if (v > g_array_index(s->values, double, imax)) {
            imax = i;
        }
    }
    return g_string_free(p.d, FALSE);
}

/* Legend text for series si among the chart's, run r among runs (new). */
static char *
line_label(const Chart *c, guint si, GPtrArray *runs, guint r)
{
    const char *name = g_ptr_array_index(c->names, si);
    const CmRun *run = g_ptr_array_index(runs, r);
    g_autofree char *variant = run_title(run, r, runs->len);
    const char *series = name;
    char *label;

    if (c->prefix != NULL && g_str_has_prefix(name, c->prefix) && name[strlen(c->prefix)] == '.')
        series = name + strlen(c->prefix) + 1;
    if (runs->len <= 1)
        label = clean_text(series, FALSE);
    else if (c->names->len == 1)
        label = g_strdup(variant);
    else
        label = g_strdup_printf("%s \xc2\xb7 %s", series, variant); /* middle dot */
    if (g_utf8_strlen(label, -1) > LEGEND_MAX_CHARS) {
        char *cut = g_utf8_substring(label, 0, LEGEND_MAX_CHARS - 1);
        g_free(label);
        label = g_strconcat(cut, "\xe2\x80\xa6", NULL); /* ellipsis */
        g_free(cut);
    }
    return label;
}

static void
line_style(const Chart *c, guint si, GPtrArray *runs, guint r, const char **color,
           const char **dash)
{
    guint k;

    if (c->names->len > 1 && runs->len > 1) {
        *color = chart_colors[si % G_N_ELEMENTS(chart_colors)];
        *dash = chart_dashes[r % G_N_ELEMENTS(chart_dashes)];
        return;
    }
    k = c->names->len > 1 ? si : r;
    *color = chart_colors[k % G_N_ELEMENTS(chart_colors)];
    *dash = chart_dashes[k / G_N_ELEMENTS(chart_colors) % G_N_ELEMENTS(chart_dashes)];
}

static void
svg_stroke(GString *h, const char *color, const char *dash)
{
    g_string_append_printf(h, " stroke=\"%s\"", color);
    if (dash[0] != '\0')
        g_string_append_printf(h, " stroke-dasharray=\"%s\"", dash);
}

static void
html_chart(GString *h, const Chart *c, GPtrArray *runs)
{
    Scale sc = {0.0, 0.0, 0.0};
    gboolean any = FALSE;
    double vmin = 0.0, vmax = 0.0, ystep;
    CmTime xmax = 0, xstep;
    guint lines = c->names->len * runs->len;
    guint rows = (lines + 1) / 2;
    int height = LEGEND_T + (int)rows * LEGEND_ROW + 4;

    /* Scales: x over the longest run, y over every finite value, always
     * with zero in view (counts, rates and latencies start there). */
    for (guint r = 0; r < runs->len; r++) {
        const CmRun *run = g_ptr_array_index(runs, r);
        xmax = MAX(xmax, run->duration);
        for (guint si = 0; si < c->names->len; si++) {
            const CmSeries *s = find_series(run, g_ptr_array_index(c->names, si));
            if (s == NULL || s->values == NULL)
                continue;
            xmax = MAX(xmax, (CmTime)s->values->len * MAX(run->sample, 0));
            for (guint i = 0; i < s->values->len; i++) {
                double v = g_array_index(s->values, double, i);
                if (!isfinite(v))
                    continue;
                vmin = any ? MIN(vmin, v) : v;
                vmax = any ? MAX(vmax, v) : v;
                any = TRUE;
            }
        }
    }
    if (xmax <= 0)
        xmax = CM_USEC_PER_SEC;
    vmin = MIN(vmin, 0.0);
    vmax = MAX(vmax, 0.0);
    if (vmax - vmin <= 0.0 || !isfinite(vmax - vmin))
        vmax = vmin + 1.0;
    ystep = nice_up((vmax - vmin) / 5.0);
    sc.xmax = (double)xmax;
    sc.lo = floor(vmin / ystep) * ystep;
    sc.hi = ceil(vmax / ystep) * ystep;
    if (!(sc.hi > sc.lo)) {
        sc.lo = 0.0;
        sc.hi = 1.0;
        ystep = 0.2;
    }

    g_string_append(h, "<figure>\n<figcaption>");
    html_text(h, c->title);
    if (c->unit[0] != '\0') {
        g_string_append(h, " <span class=\"na\">(");
        html_text(h, c->unit);
        g_string_append(h, ")</span>");
    }
    g_string_append_printf(h,
                           "</figcaption>\n<svg viewBox=\"0 0 %d %d\" width=\"%d\" "
                           "height=\"%d\" role=\"img\" aria-label=\"",
                           SVG_W, height, SVG_W, height);
    html_text(h, c->title);
    g_string_append(h, " over virtual time\">\n<title>");
    html_text(h, c->title);
    g_string_append(h, "</title>\n");

    /* y grid and labels */
    guint yticks = (guint)((sc.hi - sc.lo) / ystep + 0.5);
    double scale_of = MAX(fabs(sc.lo), fabs(sc.hi));
    for (guint i = 0; i <= yticks && i <= 20; i++) {
        double v = sc.lo + (double)i * ystep;
        double y = px_y(&sc, v);
        g_string_append(h, "<line class=\"grid\" x1=\"");
        append_coord(h, PLOT_L);
        g_string_append(h, "\" x2=\"");
        append_coord(h, PLOT_R);
        g_string_append(h, "\" y1=\"");
        append_coord(h, y);
        g_string_append(h, "\" y2=\"");
        append_coord(h, y);
        g_string_append(h, "\"/><text x=\"");
        append_coord(h, PLOT_L - 6);
        g_string_append(h, "\" y=\"");
        append_coord(h, y + 4);
        g_string_append(h, "\" text-anchor=\"end\">");
        append_y_label(h, v, ystep, scale_of);
        g_string_append(h, "</text>\n");
    }

    /* x ticks in virtual time: 0, 30m, 1h, ... */
    xstep = MAX(x_tick_step(xmax), 1);
    for (CmTime t = 0; t <= xmax; t += xstep) {
        double x = px_x(&sc, (double)t);
        g_string_append(h, "<line class=\"axis\" x1=\"");
        append_coord(h, x);
        g_string_append(h, "\" x2=\"");
        append_coord(h, x);
        g_string_append(h, "\" y1=\"");
        append_coord(h, PLOT_B);
        g_string_append(h, "\" y2=\"");
        append_coord(h, PLOT_B + 4);
        g_string_append(h, "\"/><text x=\"");
        append_coord(h, x);
        g_string_append(h, "\" y=\"");
        append_coord(h, PLOT_B + 16);
        g_string_append(h, "\" text-anchor=\"middle\">");
        html_duration(h, t);
        g_string_append(h, "</text>\n");
    }
    g_string_append_printf(h, "<line class=\"axis\" x1=\"64\" x2=\"64\" y1=\"12\" y2=\"222\"/>"
                              "<line class=\"axis\" x1=\"64\" x2=\"704\" y1=\"222\" y2=\"222\"/>\n"
                              "<text x=\"704\" y=\"252\" text-anchor=\"end\">virtual time</text>\n"
                              "<text transform=\"rotate(-90)\" x=\"-117\" y=\"14\" "
                              "text-anchor=\"middle\">");
    html_text(h, c->unit);
    g_string_append(h, "</text>\n");

    /* The lines, then the legend under the plot. */
    guint n = 0;
    for (guint si = 0; si < c->names->len; si++) {
        for (guint r = 0; r < runs->len; r++, n++) {
            const CmRun *run = g_ptr_array_index(runs, r);
            const CmSeries *s = find_series(run, g_ptr_array_index(c->names, si));
            g_autofree char *label = line_label(c, si, runs, r);
            const char *color, *dash;
            int lx = (int)PLOT_L + (int)(n % 2) * LEGEND_COL;
            int ly = LEGEND_T + (int)(n / 2) * LEGEND_ROW + 8;

            line_style(c, si, runs, r, &color, &dash);
            if (s != NULL && s->values != NULL && run->sample > 0) {
                g_autofree char *d = series_path(s, run->sample, &sc);
                if (d[0] != '\0') {
                    g_string_append(h, "<path class=\"ln\"");
                    svg_stroke(h, color, dash);
                    g_string_append_printf(h, " d=\"%s\"><title>", d);
                    html_text(h, label);
                    g_string_append(h, "</title></path>\n");
                }
            }
            g_string_append_printf(h, "<line class=\"ln\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"",
                                   lx, lx + 24, ly - 4, ly - 4);
            svg_stroke(h, color, dash);
            g_string_append_printf(h, "/><text x=\"%d\" y=\"%d\">", lx + 30, ly);
            html_text(h, label);
            if (s == NULL)
                g_string_append(h, " (not sampled)");
            g_string_append(h, "</text>\n");
        }
    }
    g_string_append(h, "</svg>\n</figure>\n");
}

static void
html_charts(GString *h, GPtrArray *runs)
{
    g_autoptr(GPtrArray) charts = plan_charts(runs);

    g_string_append(h, "<h2>Over virtual time</h2>\n");
    if (charts->len == 0) {
        g_string_append(h, "<p class=\"na\">No series were sampled.</p>\n");
        return;
    }
    for (guint i = 0; i < charts->len; i++)
        html_chart(h, g_ptr_array_index(charts, i), runs);
}

char *
cm_report_html(GPtrArray *runs)
{
    GString *h = g_string_sized_new(64 * 1024);
    const CmRun *first;
    guint passed, failed;

    g_return_val_if_fail(runs != NULL, NULL);
    first = runs->len > 0 ? g_ptr_array_index(runs, 0) : NULL;
    count_expects(runs, &passed, &failed);

    g_string_append(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                       "<title>cmlab-sim: ");
    html_text(h, first ? first->scenario : NULL);
    g_string_append_printf(h, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", html_style);
    html_text(h, first ? first->scenario : NULL);
    g_string_append(h, "</h1>\n");
    if (first != NULL && nz(first->description)[0] != '\0') {
        g_string_append(h, "<p class=\"desc\">");
        html_text(h, first->description);
        g_string_append(h, "</p>\n");
    }
    if (first != NULL && nz(first->full_size)[0] != '\0') {
        g_string_append(h, "<p>Designed for: ");
        html_text(h, first->full_size);
        g_string_append(h, "</p>\n");
    }
    if (failed > 0)
        g_string_append_printf(h,
                               "<p class=\"verdict fail\">FAILED: %u of %u expectations "
                               "failed</p>\n",
                               failed, passed + failed);
    else if (passed > 0)
        g_string_append_printf(h,
                               "<p class=\"verdict pass\">PASSED: all %u expectations "
                               "held</p>\n",
                               passed);
    else
        g_string_append(h, "<p class=\"verdict pass\">PASSED: the scenario states no "
                           "expectations</p>\n");

    html_what_ran(h, runs);
    html_expectations(h, runs);
    html_metrics(h, runs);
    html_outcomes(h, runs);
    html_charts(h, runs);

    g_string_append(h, "<footer>cmlab-sim report. Everything on this page follows from the "
                       "scenario and its seed: virtual time only, nothing measured on the "
                       "machine that ran it. The JSON report holds the same figures "
                       "(docs/report-schema.md).</footer>\n</body>\n</html>\n");
    return g_string_free(h, FALSE);
}

/* ------------------------------------------------------------- summary */

/* s padded with spaces to width characters (not bytes). */
static void
put_padded(FILE *out, const char *s, glong width)
{
    fputs(s, out);
    for (glong n = g_utf8_strlen(s, -1); n < width; n++)
        fputc(' ', out);
}

/* The metrics a short summary shows: a few headline figures, and every
 * metric an expectation names. */
static const char *const headline_metrics[] = {"clients.total",
                                               "clients.active_ratio",
                                               "registrations.completed_ratio",
                                               "registrations.mean_time",
                                               "site.backlog.max",
                                               "site.backlog.drain_time",
                                               "answers.busy",
                                               "transport.failures",
                                               "latency.register.p95",
                                               "policies.accepted",
                                               "policies.refused",
                                               "content.available_ratio",
                                               "content.transfer_time.max",
                                               "content.bytes_sent",
                                               NULL};
/* ... and in a run with a CMG (sim/cmg.c) */
static const char *const cmg_headline_metrics[] = {"cmg.forwarded",
                                                   "cmg.refused",
                                                   "cmg.cp_share_max_deviation",
                                                   "cmg.retry_requests",
                                                   "cmg.crl_retries",
                                                   "cmg.lost_in_flight",
                                                   NULL};

static gboolean
metric_shown(const CmRun *run, const char *key, gboolean all)
{
    if (all || g_strv_contains(headline_metrics, key) || g_strv_contains(cmg_headline_metrics, key))
        return TRUE;
    for (guint i = 0; i < run->expects->len; i++) {
        const CmExpectResult *e = g_ptr_array_index(run->expects, i);
        size_t n = strlen(key);
        /* the expectation's text starts with its metric */
        if (e->text != NULL && strncmp(e->text, key, n) == 0 &&
            (e->text[n] == ' ' || e->text[n] == '\0'))
            return TRUE;
    }
    return FALSE;
}

static void
summary_run(FILE *out, const CmRun *run, guint index, guint nruns, gboolean color, gboolean all)
{
    const char *green = color ? "\033[32m" : "";
    const char *red = color ? "\033[31m" : "";
    const char *bold = color ? "\033[1m" : "";
    const char *reset = color ? "\033[0m" : "";
    g_autofree char *title = run_title(run, index, nruns);
    g_autofree char *dur = duration_str(run->duration);
    g_autofree char *sample = duration_str(run->sample);
    g_autoptr(GPtrArray) metrics = sorted_keys(run->metrics);
    char buf[NUM_BUF], buf2[NUM_BUF], buf3[NUM_BUF];
    glong width = 0;
    double clients;

    fprintf(out,
            "\n%s%s%s: seed %" G_GUINT64_FORMAT ", %s of virtual time sampled every %s, "
            "%s crypto\n",
            bold, title, reset, run->seed, dur, sample, run->model_crypto ? "cost-model" : "real");

    /* Expectations, names aligned. */
    for (guint i = 0; i < run->expects->len; i++) {
        const CmExpectResult *e = g_ptr_array_index(run->expects, i);
        g_autofree char *name = clean_text(e->name, FALSE);
        width = MAX(width, g_utf8_strlen(name, -1));
    }
    if (run->expects->len == 0)
        fputs("  expectations: none\n", out);
    for (guint i = 0; i < run->expects->len; i++) {
        const CmExpectResult *e = g_ptr_array_index(run->expects, i);
        g_autofree char *name = clean_text(e->name, FALSE);
        g_autofree char *text = clean_text(e->text, FALSE);
        ExpectState st = expect_state(e);

        if (st == EXPECT_PASS)
            fprintf(out, "  %sPASS%s  ", green, reset);
        else if (st == EXPECT_FAIL)
            fprintf(out, "  %sFAIL%s  ", red, reset);
        else
            fputs("  n/a   ", out);
        put_padded(out, name, width);
        fprintf(out, "  %s", text);
        if (st == EXPECT_NA)
            fputs("  (for another variant)\n", out);
        else if (!e->known)
            fputs("  (no such metric)\n", out);
        else
            fprintf(out, "  (value %s)\n", fmt_num(buf, e->value));
    }

    /* The metrics shown, values aligned after the longest name. */
    for (guint i = metrics->len; i > 0; i--)
        if (!metric_shown(run, g_ptr_array_index(metrics, i - 1), all))
            g_ptr_array_remove_index(metrics, i - 1);
    width = 0;
    for (guint i = 0; i < metrics->len; i++) {
        g_autofree char *name = clean_text(g_ptr_array_index(metrics, i), FALSE);
        width = MAX(width, g_utf8_strlen(name, -1));
    }
    if (metrics->len > 0)
        fputs("  metrics:\n", out);
    for (guint i = 0; i < metrics->len; i++) {
        const char *key = g_ptr_array_index(metrics, i);
        g_autofree char *name = clean_text(key, FALSE);
        fputs("    ", out);
        put_padded(out, name, width);
        fprintf(out, "  %s\n", fmt_num(buf, table_value(run->metrics, key)));
    }

    if (run->outcomes->len > 0)
        fputs("  attacks:\n", out);
    for (guint i = 0; i < run->outcomes->len; i++) {
        const CmOutcome *o = g_ptr_array_index(run->outcomes, i);
        g_autofree char *attacker = clean_text(o->attacker, FALSE);
        g_autofree char *strategy = clean_text(o->strategy, FALSE);
        g_autofree char *outcome = clean_text(o->outcome, FALSE);
        g_autoptr(GPtrArray) keys = sorted_keys(o->figures);

        fprintf(out, "    %s (%s): %s%s%s", attacker, strategy, o->succeeded ? red : green,
                o->succeeded ? "attack succeeded" : "attack failed", reset);
        if (outcome[0] != '\0')
            fprintf(out, ": %s", outcome);
        fputc('\n', out);
        if (keys->len > 0)
            fputs("      ", out);
        for (guint k = 0; k < keys->len; k++) {
            const char *key = g_ptr_array_index(keys, k);
            g_autofree char *fname = clean_text(key, FALSE);
            fprintf(out, "%s%s %s", k > 0 ? ", " : "", fname,
                    fmt_num(buf, table_value(o->figures, key)));
        }
        if (keys->len > 0)
            fputc('\n', out);
    }

    /* This machine's figures: here only, never in the JSON or HTML. */
    fprintf(out, "  machine: %s s wall, %" G_GUINT64_FORMAT " events",
            fmt_fixed(buf, run->wall_seconds, 2), run->events);
    if (run->wall_seconds > 0)
        fprintf(out, " (%s events/s)", fmt_fixed(buf, (double)run->events / run->wall_seconds, 0));
    /* Against CPU time, not wall: installs run on every core, and crypto
     * done in parallel would flatter a share of wall time. */
    if (run->model_crypto && run->cpu_seconds > 0)
        /* The stand-in's own cost is inside the CPU time; the calibrated
         * cost of the same operations is what real crypto would add. */
        fprintf(out, ", %s s CPU with the cost-model crypto (real crypto would add about %s s)",
                fmt_fixed(buf, run->cpu_seconds, 1), fmt_fixed(buf2, run->crypto_seconds, 1));
    else if (run->cpu_seconds > 0 && run->crypto_seconds > 0)
        fprintf(out, ", %s s CPU of which crypto %s s (the rest %s%% on top)",
                fmt_fixed(buf, run->cpu_seconds, 1), fmt_fixed(buf2, run->crypto_seconds, 1),
                fmt_fixed(buf3,
                          100.0 * (run->cpu_seconds - run->crypto_seconds) / run->crypto_seconds,
                          1));
    /* The same split measured in place: CPU-time samples inside OpenSSL. */
    if (!run->model_crypto && run->crypto_sampled > 0)
        fprintf(out, "; sampled: %s%% of the CPU in libcrypto (the rest %s%% on top)",
                fmt_fixed(buf, 100.0 * run->crypto_sampled, 1),
                fmt_fixed(buf2, 100.0 * (1 - run->crypto_sampled) / run->crypto_sampled, 1));
    if (!run->model_crypto && run->crypto_sampled > 0 &&
        run->crypto_sampled_alloc > run->crypto_sampled)
        fprintf(out, ", with the allocations OpenSSL asked for %s%% (the rest %s%% on top)",
                fmt_fixed(buf, 100.0 * run->crypto_sampled_alloc, 1),
                fmt_fixed(buf2, 100.0 * (1 - run->crypto_sampled_alloc) / run->crypto_sampled_alloc,
                          1));
    fprintf(out, ", peak RSS %s MiB", fmt_fixed(buf, (double)run->peak_rss_kib / 1024.0, 1));
    if (cm_run_metric(run, "clients.total", &clients) && clients > 0)
        fprintf(out, " (%s KiB per client)",
                fmt_fixed(buf, (double)run->peak_rss_kib / clients, 2));
    fputc('\n', out);
}

static void
summary(FILE *out, GPtrArray *runs, gboolean color, gboolean all)
{
    const CmRun *first;
    guint passed, failed;

    g_return_if_fail(out != NULL && runs != NULL);
    first = runs->len > 0 ? g_ptr_array_index(runs, 0) : NULL;
    if (first != NULL) {
        g_autofree char *name = clean_text(first->scenario, FALSE);
        g_autofree char *desc = clean_text(first->description, TRUE);
        g_auto(GStrv) lines = g_strsplit(g_strstrip(desc), "\n", -1);

        fprintf(out, "%sscenario %s%s\n", color ? "\033[1m" : "", name, color ? "\033[0m" : "");
        for (guint i = 0; lines[i] != NULL; i++) {
            if (lines[i][0] != '\0')
                fprintf(out, "  %s\n", lines[i]);
        }
        if (nz(first->full_size)[0] != '\0') {
            g_autofree char *full = clean_text(first->full_size, FALSE);
            fprintf(out, "  designed for: %s\n", full);
        }
    }
    for (guint r = 0; r < runs->len; r++)
        summary_run(out, g_ptr_array_index(runs, r), r, runs->len, color, all);

    count_expects(runs, &passed, &failed);
    fprintf(out, "\n%sexpectations: %u passed, %u failed%s\n",
            color ? (failed > 0 ? "\033[31m" : "\033[32m") : "", passed, failed,
            color ? "\033[0m" : "");
}

void
cm_report_summary(FILE *out, GPtrArray *runs, gboolean color)
{
    summary(out, runs, color, FALSE);
}

void
cm_report_summary_full(FILE *out, GPtrArray *runs, gboolean color)
{
    summary(out, runs, color, TRUE);
}
