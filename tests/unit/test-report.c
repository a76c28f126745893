/* test-report.c - the CmRun container and the three reports: the JSON
 * report's exact fields and values, byte-for-byte determinism, the HTML
 * page's charts and escaping, and the terminal summary's verdict lines. */
#include "report.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ fixture */

#define HOSTILE_NAME "storm <script>alert(1)</script> & co"

static void
add_values(CmRun *run, const char *name, const char *unit, const double *v, guint n)
{
    CmSeries *s = cm_run_series(run, name, unit);

    for (guint i = 0; i < n; i++)
        cm_series_append(s, v[i]);
}

/* One variant of a made-up storm scenario.  second picks the other
 * variant's numbers; reverse inserts metrics and series in the opposite
 * order, which must not change a byte of the reports. */
static CmRun *
make_run(gboolean second, gboolean reverse)
{
    static const double backlog_a[] = {0, 10, 4, 0}, backlog_b[] = {120, 480, 200, 0};
    static const double p50_a[] = {1.5, 2.5, NAN, 1.0}, p50_b[] = {3, 4, 5, 6};
    static const double p95_a[] = {12.25, 30, 8, 2}, p95_b[] = {40, 2500.5, 900, 10};
    static const double rate_a[] = {0.5, 2, 1, 0}, rate_b[] = {0.25, 0.75, 0.5, 0.25};
    struct {
        const char *name;
        double value;
    } metrics[] = {
        {"clients.total", 500},
        {"registrations.completed_ratio", second ? 0.95 : 1.0},
        {"latency.register.p95", second ? 2500.5 : 123.456789},
        {"site.backlog.max", second ? 480 : 10},
        {"big.count", 1000000},
        {"bad.nan", second ? 1 : NAN},
    };
    CmRun *run = cm_run_new();
    CmOutcome *o;

    run->scenario = g_strdup(HOSTILE_NAME);
    run->description = g_strdup("A registration storm.\nTwo windows compared.");
    run->full_size = g_strdup("25000 clients");
    run->variant_label = g_strdup(second ? "window=2h" : "window=0");
    run->seed = 42;
    run->duration = 2 * CM_USEC_PER_HOUR;
    run->sample = 30 * CM_USEC_PER_MIN;
    run->model_crypto = second;

    for (guint k = 0; k < G_N_ELEMENTS(metrics); k++) {
        guint i = reverse ? G_N_ELEMENTS(metrics) - 1 - k : k;
        cm_run_set_metric(run, metrics[i].name, metrics[i].value);
    }
    if (!reverse) {
        add_values(run, "rate.register", "per second", second ? rate_b : rate_a, 4);
        add_values(run, "site.PS1.backlog", "requests", second ? backlog_b : backlog_a, 4);
        add_values(run, "latency.register.p95", "ms", second ? p95_b : p95_a, 4);
        add_values(run, "latency.register.p50", "ms", second ? p50_b : p50_a, 4);
    } else {
        add_values(run, "latency.register.p50", "ms", second ? p50_b : p50_a, 4);
        add_values(run, "latency.register.p95", "ms", second ? p95_b : p95_a, 4);
        add_values(run, "site.PS1.backlog", "requests", second ? backlog_b : backlog_a, 4);
        add_values(run, "rate.register", "per second", second ? rate_b : rate_a, 4);
    }

    o = cm_run_add_outcome(run, "rogue<mp>", "rogue-mp", !second,
                           second ? "0 of 500 clients took the rogue TRK on first use"
                                  : "412 of 500 clients took the rogue TRK on first use");
    if (reverse) {
        cm_outcome_set_figure(o, "targeted", 500);
        cm_outcome_set_figure(o, "clients_fooled", second ? 0 : 412);
    } else {
        cm_outcome_set_figure(o, "clients_fooled", second ? 0 : 412);
        cm_outcome_set_figure(o, "targeted", 500);
    }

    cm_run_add_expect(run, "all_registered", "registrations.completed_ratio >= 0.999", TRUE, TRUE,
                      second ? 0.95 : 1.0, !second);
    cm_run_add_expect(run, "window_only", "site.backlog.max <= 500 when window = 2h", second, TRUE,
                      second ? 480 : 10, TRUE);
    cm_run_add_expect(run, "typo", "nosuch.metric > 0", TRUE, FALSE, 0, FALSE);

    /* Machine figures: the summary shows them, the reports must not. */
    run->wall_seconds = 1.5;
    run->cpu_seconds = 0.8;
    run->crypto_seconds = 0.6;
    run->events = 123456;
    run->peak_rss_kib = 102400;
    return run;
}

static GPtrArray *
make_runs(gboolean reverse)
{
    GPtrArray *runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);

    g_ptr_array_add(runs, make_run(FALSE, reverse));
    g_ptr_array_add(runs, make_run(TRUE, reverse));
    return runs;
}

static guint
count_substr(const char *hay, const char *needle)
{
    guint n = 0;
    size_t len = strlen(needle);

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + len, needle))
        n++;
    return n;
}

#define assert_contains(hay, needle)                                                               \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "missing \"%s\"", (needle))
#define assert_lacks(hay, needle)                                                                  \
    ck_assert_msg(strstr((hay), (needle)) == NULL, "unexpected \"%s\"", (needle))

/* Asserts obj has exactly the keys listed (NULL-terminated). */
static void
assert_keys(json_t *obj, const char *const *keys)
{
    size_t n = 0;

    ck_assert(json_is_object(obj));
    for (; keys[n] != NULL; n++)
        ck_assert_msg(json_object_get(obj, keys[n]) != NULL, "missing key %s", keys[n]);
    ck_assert_uint_eq(json_object_size(obj), n);
}

static json_t *
parse_json(const char *text)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    ck_assert_msg(root != NULL, "report does not parse: %s (line %d)", jerr.text, jerr.line);
    return root;
}

static char *
summary_with(GPtrArray *runs, gboolean color, gboolean full)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    char *out;

    ck_assert_ptr_nonnull(f);
    if (full)
        cm_report_summary_full(f, runs, color);
    else
        cm_report_summary(f, runs, color);
    ck_assert_int_eq(fclose(f), 0);
    out = g_strndup(buf, len);
    free(buf);
    return out;
}

/* The full summary: every metric. */
static char *
summary_of(GPtrArray *runs, gboolean color)
{
    return summary_with(runs, color, TRUE);
}

/* ----------------------------------------------------------- container */

START_TEST(test_run_metrics)
{
    g_autoptr(CmRun) run = cm_run_new();
    double v = -1;

    ck_assert(!cm_run_metric(run, "clients.total", &v));
    ck_assert(v == -1);
    cm_run_set_metric(run, "clients.total", 10);
    cm_run_set_metric(run, "clients.total", 25);
    ck_assert(cm_run_metric(run, "clients.total", &v));
    ck_assert(v == 25);
    ck_assert(cm_run_metric(run, "clients.total", NULL));
    ck_assert_uint_eq(g_hash_table_size(run->metrics), 1);
}
END_TEST

START_TEST(test_run_series_find_or_add)
{
    g_autoptr(CmRun) run = cm_run_new();
    CmSeries *a = cm_run_series(run, "mp.mp1.queue", "requests");
    CmSeries *b = cm_run_series(run, "rate.register", NULL);

    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_eq(cm_run_series(run, "mp.mp1.queue", "ignored"), a);
    ck_assert_str_eq(a->unit, "requests");
    /* A unit given later fills one left out at first. */
    ck_assert_ptr_eq(cm_run_series(run, "rate.register", "per second"), b);
    ck_assert_str_eq(b->unit, "per second");
    cm_series_append(a, 3);
    cm_series_append(a, 4.5);
    ck_assert_uint_eq(a->values->len, 2);
    ck_assert(g_array_index(a->values, double, 1) == 4.5);
    ck_assert_uint_eq(run->series->len, 2);
}
END_TEST

START_TEST(test_run_outcomes_and_expects)
{
    g_autoptr(CmRun) run = cm_run_new();
    CmOutcome *o = cm_run_add_outcome(run, "flood", "status-flood", TRUE, "it worked");
    CmExpectResult *e;

    cm_outcome_set_figure(o, "sent", 10);
    cm_outcome_set_figure(o, "sent", 11);
    ck_assert_uint_eq(g_hash_table_size(o->figures), 1);
    ck_assert(*(double *)g_hash_table_lookup(o->figures, "sent") == 11);
    ck_assert_str_eq(o->strategy, "status-flood");
    ck_assert(o->succeeded);

    ck_assert(cm_run_passed(run)); /* nothing expected, nothing failed */
    e = cm_run_add_expect(run, "ok", "a > 1", TRUE, TRUE, 2, TRUE);
    ck_assert_str_eq(e->text, "a > 1");
    ck_assert(cm_run_passed(run));
    cm_run_add_expect(run, "other", "b > 1", FALSE, TRUE, 0, FALSE);
    ck_assert(cm_run_passed(run)); /* for another variant: counts neither way */
    e = cm_run_add_expect(run, "missing", "c > 1", TRUE, FALSE, 0, TRUE);
    ck_assert(!cm_run_passed(run)); /* an unknown metric fails whatever passed says */
    e->known = TRUE;
    ck_assert(cm_run_passed(run));
    cm_run_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------- JSON */

START_TEST(test_json_fields)
{
    static const char *const top_keys[] = {
        "report",    "schema_version", "scenario", "description",
        "full_size", "passed",         "variants", NULL,
    };
    static const char *const variant_keys[] = {
        "variant", "seed",     "duration_s",   "sample_s", "crypto", "metrics",
        "series",  "outcomes", "expectations", "passed",   NULL,
    };
    static const char *const series_keys[] = {"name", "unit", "values", NULL};
    static const char *const outcome_keys[] = {
        "attacker", "strategy", "succeeded", "outcome", "figures", NULL,
    };
    static const char *const expect_keys[] = {
        "name", "text", "applies", "known", "value", "passed", NULL,
    };
    static const char *const series_order[] = {"latency.register.p50", "latency.register.p95",
                                               "rate.register", "site.PS1.backlog"};
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *text = cm_report_json(runs);
    json_t *root = parse_json(text);
    json_t *variants, *v0, *v1, *m, *series, *s, *e, *o;

    assert_keys(root, top_keys);
    ck_assert_str_eq(json_string_value(json_object_get(root, "report")), "cmlab-sim");
    ck_assert_int_eq(json_integer_value(json_object_get(root, "schema_version")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(root, "scenario")), HOSTILE_NAME);
    ck_assert_str_eq(json_string_value(json_object_get(root, "description")),
                     "A registration storm.\nTwo windows compared.");
    ck_assert_str_eq(json_string_value(json_object_get(root, "full_size")), "25000 clients");
    ck_assert(json_is_false(json_object_get(root, "passed")));

    variants = json_object_get(root, "variants");
    ck_assert_uint_eq(json_array_size(variants), 2);
    v0 = json_array_get(variants, 0);
    v1 = json_array_get(variants, 1);
    assert_keys(v0, variant_keys);
    assert_keys(v1, variant_keys);
    ck_assert_str_eq(json_string_value(json_object_get(v0, "variant")), "window=0");
    ck_assert_str_eq(json_string_value(json_object_get(v1, "variant")), "window=2h");
    ck_assert_int_eq(json_integer_value(json_object_get(v0, "seed")), 42);
    ck_assert(json_is_integer(json_object_get(v0, "duration_s")));
    ck_assert_int_eq(json_integer_value(json_object_get(v0, "duration_s")), 7200);
    ck_assert_int_eq(json_integer_value(json_object_get(v0, "sample_s")), 1800);
    ck_assert_str_eq(json_string_value(json_object_get(v0, "crypto")), "real");
    ck_assert_str_eq(json_string_value(json_object_get(v1, "crypto")), "model");
    ck_assert(json_is_false(json_object_get(v0, "passed")));
    ck_assert(json_is_false(json_object_get(v1, "passed")));

    /* Metrics: an object; integral values as integers, others rounded to
     * six significant digits, NaN as null. */
    m = json_object_get(v0, "metrics");
    ck_assert_uint_eq(json_object_size(m), 6);
    ck_assert(json_is_integer(json_object_get(m, "clients.total")));
    ck_assert_int_eq(json_integer_value(json_object_get(m, "clients.total")), 500);
    ck_assert_int_eq(json_integer_value(json_object_get(m, "big.count")), 1000000);
    ck_assert_int_eq(json_integer_value(json_object_get(m, "registrations.completed_ratio")), 1);
    ck_assert(json_is_real(json_object_get(m, "latency.register.p95")));
    ck_assert_double_eq(json_real_value(json_object_get(m, "latency.register.p95")), 123.457);
    ck_assert(json_is_null(json_object_get(m, "bad.nan")));
    m = json_object_get(v1, "metrics");
    ck_assert_double_eq(json_real_value(json_object_get(m, "registrations.completed_ratio")), 0.95);
    ck_assert_double_eq(json_real_value(json_object_get(m, "latency.register.p95")), 2500.5);

    /* Series: sorted by name whatever the insertion order. */
    series = json_object_get(v0, "series");
    ck_assert_uint_eq(json_array_size(series), 4);
    for (guint i = 0; i < G_N_ELEMENTS(series_order); i++) {
        s = json_array_get(series, i);
        assert_keys(s, series_keys);
        ck_assert_str_eq(json_string_value(json_object_get(s, "name")), series_order[i]);
        ck_assert_uint_eq(json_array_size(json_object_get(s, "values")), 4);
    }
    s = json_array_get(series, 0);
    ck_assert_str_eq(json_string_value(json_object_get(s, "unit")), "ms");
    ck_assert_double_eq(json_real_value(json_array_get(json_object_get(s, "values"), 0)), 1.5);
    ck_assert(json_is_null(json_array_get(json_object_get(s, "values"), 2)));
    s = json_array_get(series, 3);
    ck_assert_str_eq(json_string_value(json_object_get(s, "unit")), "requests");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(s, "values"), 1)), 10);

    /* Outcomes, in insertion order. */
    ck_assert_uint_eq(json_array_size(json_object_get(v0, "outcomes")), 1);
    o = json_array_get(json_object_get(v0, "outcomes"), 0);
    assert_keys(o, outcome_keys);
    ck_assert_str_eq(json_string_value(json_object_get(o, "attacker")), "rogue<mp>");
    ck_assert_str_eq(json_string_value(json_object_get(o, "strategy")), "rogue-mp");
    ck_assert(json_is_true(json_object_get(o, "succeeded")));
    ck_assert_str_eq(json_string_value(json_object_get(o, "outcome")),
                     "412 of 500 clients took the rogue TRK on first use");
    ck_assert_uint_eq(json_object_size(json_object_get(o, "figures")), 2);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(o, "figures"), "clients_fooled")), 412);
    o = json_array_get(json_object_get(v1, "outcomes"), 0);
    ck_assert(json_is_false(json_object_get(o, "succeeded")));

    /* Expectations, in insertion order; passed is null where one does not
     * apply, value null where the metric is unknown. */
    ck_assert_uint_eq(json_array_size(json_object_get(v0, "expectations")), 3);
    e = json_array_get(json_object_get(v0, "expectations"), 0);
    assert_keys(e, expect_keys);
    ck_assert_str_eq(json_string_value(json_object_get(e, "name")), "all_registered");
    ck_assert_str_eq(json_string_value(json_object_get(e, "text")),
                     "registrations.completed_ratio >= 0.999");
    ck_assert(json_is_true(json_object_get(e, "applies")));
    ck_assert(json_is_true(json_object_get(e, "known")));
    ck_assert_int_eq(json_integer_value(json_object_get(e, "value")), 1);
    ck_assert(json_is_true(json_object_get(e, "passed")));
    e = json_array_get(json_object_get(v0, "expectations"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(e, "name")), "window_only");
    ck_assert(json_is_false(json_object_get(e, "applies")));
    ck_assert(json_is_null(json_object_get(e, "passed")));
    e = json_array_get(json_object_get(v0, "expectations"), 2);
    ck_assert_str_eq(json_string_value(json_object_get(e, "name")), "typo");
    ck_assert(json_is_false(json_object_get(e, "known")));
    ck_assert(json_is_null(json_object_get(e, "value")));
    ck_assert(json_is_false(json_object_get(e, "passed")));
    e = json_array_get(json_object_get(v1, "expectations"), 1);
    ck_assert(json_is_true(json_object_get(e, "passed")));
    ck_assert_int_eq(json_integer_value(json_object_get(e, "value")), 480);
    json_decref(root);
}
END_TEST

START_TEST(test_json_text)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *text = cm_report_json(runs);

    /* Six significant digits, as printed; nothing a JSON reader refuses. */
    assert_contains(text, "\"latency.register.p95\": 123.457,");
    assert_contains(text, "\"big.count\": 1000000,");
    assert_lacks(text, "123.456789");
    assert_lacks(text, "NaN");
    assert_lacks(text, ": nan");
    assert_lacks(text, "Infinity");
    /* Machine-dependent figures stay out. */
    assert_lacks(text, "wall");
    assert_lacks(text, "crypto_seconds");
    assert_lacks(text, "events");
    assert_lacks(text, "rss");
    ck_assert(g_str_has_suffix(text, "}\n"));
}
END_TEST

START_TEST(test_json_deterministic)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autoptr(GPtrArray) reversed = make_runs(TRUE);
    g_autofree char *a = cm_report_json(runs);
    g_autofree char *b = cm_report_json(runs);
    g_autofree char *c = cm_report_json(reversed);

    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, c); /* insertion order does not show */

    /* Machine figures do not show either. */
    for (guint i = 0; i < runs->len; i++) {
        CmRun *run = g_ptr_array_index(runs, i);
        run->wall_seconds = 99.0;
        run->crypto_seconds = 12.0;
        run->events = 7;
        run->peak_rss_kib = 1;
    }
    g_autofree char *d = cm_report_json(runs);
    ck_assert_str_eq(a, d);
}
END_TEST

START_TEST(test_json_edge_values)
{
    g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);
    CmRun *run = cm_run_new();
    json_t *root, *v;

    /* Nothing set but a huge seed and strings that are not valid UTF-8. */
    run->seed = G_GUINT64_CONSTANT(18446744073709551615);
    run->scenario = g_strdup("bad\xff name");
    run->sample = 500000;
    cm_run_set_metric(run, "inf", INFINITY);
    cm_run_set_metric(run, "neg.zero", -0.0);
    g_ptr_array_add(runs, run);
    g_autofree char *text = cm_report_json(runs);
    root = parse_json(text);
    ck_assert(json_is_true(json_object_get(root, "passed")));
    ck_assert(g_str_has_prefix(json_string_value(json_object_get(root, "scenario")), "bad"));
    ck_assert_str_eq(json_string_value(json_object_get(root, "description")), "");
    v = json_array_get(json_object_get(root, "variants"), 0);
    /* Above 2^53 a seed is a string: a JSON number would be rounded. */
    ck_assert_str_eq(json_string_value(json_object_get(v, "seed")), "18446744073709551615");
    ck_assert_str_eq(json_string_value(json_object_get(v, "variant")), "");
    ck_assert_double_eq(json_real_value(json_object_get(v, "sample_s")), 0.5);
    ck_assert(json_is_null(json_object_get(json_object_get(v, "metrics"), "inf")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(v, "metrics"), "neg.zero")),
                     0);
    ck_assert_uint_eq(json_array_size(json_object_get(v, "series")), 0);
    json_decref(root);

    /* No runs at all still gives a well-formed report. */
    g_autoptr(GPtrArray) none = g_ptr_array_new();
    g_autofree char *empty = cm_report_json(none);
    root = parse_json(empty);
    ck_assert_uint_eq(json_array_size(json_object_get(root, "variants")), 0);
    json_decref(root);
}
END_TEST

/* ---------------------------------------------------------------- HTML */

START_TEST(test_html_structure)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *html = cm_report_html(runs);

    ck_assert(g_str_has_prefix(html, "<!DOCTYPE html>"));
    ck_assert(g_str_has_suffix(html, "</html>\n"));
    /* Three charts: latency.register.* (two series, two variants), the
     * rate and the backlog; each its own <svg>. */
    ck_assert_uint_eq(count_substr(html, "<svg"), 3);
    ck_assert_uint_eq(count_substr(html, "</svg>"), 3);
    ck_assert_uint_eq(count_substr(html, "<figure>"), 3);
    assert_contains(html, "<figcaption>latency.register.*");
    assert_contains(html, "<figcaption>rate.register");
    assert_contains(html, "<figcaption>site.PS1.backlog");
    /* Lines: 4 series x 2 variants, with a legend entry each. */
    ck_assert_uint_eq(count_substr(html, "<path class=\"ln\""), 8);
    assert_contains(html, ">p95 \xc2\xb7 window=2h</text>");
    /* Virtual time on the x axis: 0, 30m, 1h, 1h30m, 2h. */
    assert_contains(html, "text-anchor=\"middle\">0</text>");
    assert_contains(html, ">30m</text>");
    assert_contains(html, ">1h</text>");
    assert_contains(html, ">1h30m</text>");
    assert_contains(html, ">2h</text>");
    /* y axis of the backlog: 0 to 500 by 100. */
    assert_contains(html, "text-anchor=\"end\">500</text>");
    /* The verdict, the expectations and the matrix. */
    assert_contains(html, "FAILED: 3 of 5 expectations failed");
    assert_contains(html, "<td class=\"pass\"><b>PASS</b> 1</td>");
    assert_contains(html, "<td class=\"fail\"><b>FAIL</b> 0.95</td>");
    assert_contains(html, "<b>FAIL</b> no such metric");
    assert_contains(html, "<td class=\"na\">n/a</td>");
    assert_contains(html, "<th>window=0</th><th>window=2h</th>");
    assert_contains(html, "<td class=\"num\">123.457</td><td class=\"num\">2500.5</td>");
    assert_contains(html, "attack succeeded");
    assert_contains(html, "cost model");
    assert_contains(html, "clients_fooled 412, targeted 500");
    /* Only virtual-time figures. */
    assert_lacks(html, "123456");
    assert_lacks(html, "NaN");
    assert_lacks(html, ">nan<");
    assert_lacks(html, "nan,");
}
END_TEST

START_TEST(test_html_escapes)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *html = NULL;
    CmRun *run = g_ptr_array_index(runs, 0);

    cm_run_add_outcome(run, "x", "y\"z", FALSE, "a 'quoted' <b>bold</b>\x1b[2J sentence");
    html = cm_report_html(runs);
    assert_lacks(html, "<script");
    assert_lacks(html, "<mp>");
    assert_lacks(html, "<b>bold");
    assert_lacks(html, "\x1b");
    assert_contains(html, "<title>cmlab-sim: storm &lt;script&gt;alert(1)&lt;/script&gt; "
                          "&amp; co</title>");
    assert_contains(html, "<h1>storm &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</h1>");
    assert_contains(html, "rogue&lt;mp&gt;");
    assert_contains(html, "y&quot;z");
    assert_contains(html, "a &#39;quoted&#39; &lt;b&gt;bold&lt;/b&gt;?[2J sentence");
}
END_TEST

START_TEST(test_html_self_contained)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *html = cm_report_html(runs);

    assert_lacks(html, "http:");
    assert_lacks(html, "https:");
    assert_lacks(html, "src=");
    assert_lacks(html, "<link");
    assert_lacks(html, "@import");
    assert_lacks(html, "url(");
    assert_lacks(html, "<script");
    assert_contains(html, "<style>");
}
END_TEST

START_TEST(test_html_deterministic)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autoptr(GPtrArray) reversed = make_runs(TRUE);
    g_autofree char *a = cm_report_html(runs);
    g_autofree char *b = cm_report_html(runs);
    g_autofree char *c = cm_report_html(reversed);

    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, c);
}
END_TEST

START_TEST(test_html_long_series)
{
    g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);
    CmRun *run = cm_run_new();
    CmSeries *s;
    g_autofree char *html = NULL;

    /* A day sampled every second: the chart keeps each pixel column's low
     * and high, so the spike survives and the page stays small. */
    run->scenario = g_strdup("long");
    run->duration = CM_USEC_PER_DAY;
    run->sample = CM_USEC_PER_SEC;
    s = cm_run_series(run, "mp.mp1.queue", "requests");
    for (guint i = 0; i < 86400; i++)
        cm_series_append(s, i == 50000 ? 1000.0 : (double)(i % 7));
    g_ptr_array_add(runs, run);
    html = cm_report_html(runs);
    ck_assert_uint_eq(count_substr(html, "<svg"), 1);
    ck_assert_uint_lt(strlen(html), 64 * 1024);
    ck_assert_uint_lt(count_substr(html, " L"), 2 * 640 + 2);
    /* Zero (y = 222) to 1000 (y = 12): the spike reaches the top. */
    assert_contains(html, ",12.0 L");
    assert_contains(html, ">1000</text>");
    assert_contains(html, ">6h</text>");
    assert_contains(html, ">1d</text>");
}
END_TEST

START_TEST(test_html_many_series)
{
    g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);
    CmRun *run = cm_run_new();
    g_autofree char *html = NULL;

    run->duration = CM_USEC_PER_HOUR;
    run->sample = CM_USEC_PER_MIN;
    /* 20 rates share a unit and a prefix: at most 8 lines a chart. */
    for (guint i = 0; i < 20; i++) {
        g_autofree char *name = g_strdup_printf("rate.kind%02u", i);
        CmSeries *s = cm_run_series(run, name, "per second");
        for (guint k = 0; k < 60; k++)
            cm_series_append(s, (double)(i * k) * 1000.0);
    }
    /* Same prefix, other unit: never on the same axis. */
    cm_series_append(cm_run_series(run, "rate.total_bytes", "bytes"), 1);
    g_ptr_array_add(runs, run);
    html = cm_report_html(runs);
    ck_assert_uint_eq(count_substr(html, "<svg"), 4);
    assert_contains(html, "<figcaption>rate.* (1 of 3)");
    assert_contains(html, "<figcaption>rate.* (3 of 3)");
    assert_contains(html, "<figcaption>rate.total_bytes");
    /* Values up to 1.1 million print as 1.2M-style ticks. */
    assert_contains(html, "M</text>");
    assert_contains(html, "PASSED: the scenario states no expectations");
}
END_TEST

START_TEST(test_html_empty)
{
    g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);
    g_autofree char *none = cm_report_html(runs);
    g_autofree char *html = NULL;

    ck_assert(g_str_has_suffix(none, "</html>\n"));
    g_ptr_array_add(runs, cm_run_new());
    html = cm_report_html(runs);
    assert_contains(html, "No series were sampled.");
    assert_contains(html, "No metrics were recorded.");
    assert_contains(html, "The scenario has no attackers.");
    ck_assert_uint_eq(count_substr(html, "<svg"), 0);
}
END_TEST

/* ------------------------------------------------------------- summary */

START_TEST(test_summary_plain)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *out = summary_of(runs, FALSE);

    assert_lacks(out, "\033");
    assert_contains(out, "scenario storm <script>alert(1)</script> & co\n");
    assert_contains(out, "  A registration storm.\n  Two windows compared.\n");
    assert_contains(out, "designed for: 25000 clients");
    assert_contains(out, "window=0: seed 42, 2h of virtual time sampled every 30m, real crypto");
    assert_contains(out, "window=2h: seed 42, 2h of virtual time sampled every 30m, "
                         "cost-model crypto");
    assert_contains(out, "  PASS  all_registered  registrations.completed_ratio >= 0.999  "
                         "(value 1)\n");
    assert_contains(out, "  FAIL  all_registered  registrations.completed_ratio >= 0.999  "
                         "(value 0.95)\n");
    assert_contains(out, "  n/a   window_only     ");
    assert_contains(out, "  FAIL  typo            nosuch.metric > 0  (no such metric)\n");
    /* Every metric, aligned after the longest name. */
    assert_contains(out, "    clients.total                  500\n");
    assert_contains(out, "    registrations.completed_ratio  1\n");
    assert_contains(out, "    bad.nan                        n/a\n");
    assert_contains(out, "rogue<mp> (rogue-mp): attack succeeded: 412 of 500");
    assert_contains(out, "rogue<mp> (rogue-mp): attack failed: 0 of 500");
    assert_contains(out, "      clients_fooled 412, targeted 500\n");
    /* The machine's figures, here only. */
    assert_contains(out, "machine: 1.50 s wall, 123456 events (82304 events/s), "
                         "0.8 s CPU of which crypto 0.6 s (the rest 33.3% on top), "
                         "peak RSS 100.0 MiB (204.80 KiB per client)\n");
    ck_assert(g_str_has_suffix(out, "\nexpectations: 2 passed, 3 failed\n"));
    ck_assert_uint_eq(count_substr(out, "expectations: "), 1);
}
END_TEST

START_TEST(test_summary_color)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *out = NULL;
    CmRun *run = g_ptr_array_index(runs, 0);

    /* A name cannot smuggle escape sequences to the terminal. */
    g_free(run->scenario);
    run->scenario = g_strdup("evil\033[2J\xc2\x9b\x31m"); /* ESC [, then C1 CSI: "1m" */
    out = summary_of(runs, TRUE);
    assert_contains(out, "\033[32mPASS\033[0m");
    assert_contains(out, "\033[31mFAIL\033[0m");
    assert_contains(out, "evil?[2J?1m");
    assert_lacks(out, "\033[2J");
    assert_contains(out, "expectations: 2 passed, 3 failed");

    g_autofree char *plain = summary_of(runs, FALSE);
    assert_lacks(plain, "\033");
}
END_TEST

START_TEST(test_summary_all_pass)
{
    g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);
    CmRun *run = cm_run_new();
    g_autofree char *out = NULL;

    run->scenario = g_strdup("quiet");
    run->duration = 90 * CM_USEC_PER_SEC;
    run->sample = 1500 * 1000;
    cm_run_add_expect(run, "fine", "a > 0", TRUE, TRUE, 1, TRUE);
    g_ptr_array_add(runs, run);
    out = summary_of(runs, FALSE);
    /* No variants: the run is "run"; no wall time measured: no rates. */
    assert_contains(out, "run: seed 0, 1m30s of virtual time sampled every 1.5s, real crypto");
    assert_contains(out, "machine: 0.00 s wall, 0 events, peak RSS 0.0 MiB\n");
    ck_assert(g_str_has_suffix(out, "\nexpectations: 1 passed, 0 failed\n"));
}
END_TEST

/* The short summary keeps the headline metrics and those the expectations
 * name, and leaves out the rest (the reports keep them all). */
START_TEST(test_summary_short)
{
    g_autoptr(GPtrArray) runs = make_runs(FALSE);
    g_autofree char *out = summary_with(runs, FALSE, FALSE);

    ck_assert_ptr_null(strstr(out, "bad.nan"));
    ck_assert_ptr_nonnull(strstr(out, "expectations: "));
    for (guint i = 0; i < runs->len; i++) {
        const CmRun *run = g_ptr_array_index(runs, i);
        for (guint k = 0; k < run->expects->len; k++) {
            const CmExpectResult *e = g_ptr_array_index(run->expects, k);
            ck_assert_ptr_nonnull(strstr(out, e->name));
        }
    }
}
END_TEST

static Suite *
report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc;

    tc = tcase_create("run");
    tcase_add_test(tc, test_run_metrics);
    tcase_add_test(tc, test_run_series_find_or_add);
    tcase_add_test(tc, test_run_outcomes_and_expects);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_test(tc, test_json_fields);
    tcase_add_test(tc, test_json_text);
    tcase_add_test(tc, test_json_deterministic);
    tcase_add_test(tc, test_json_edge_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("html");
    tcase_add_test(tc, test_html_structure);
    tcase_add_test(tc, test_html_escapes);
    tcase_add_test(tc, test_html_self_contained);
    tcase_add_test(tc, test_html_deterministic);
    tcase_add_test(tc, test_html_long_series);
    tcase_add_test(tc, test_html_many_series);
    tcase_add_test(tc, test_html_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("summary");
    tcase_add_test(tc, test_summary_plain);
    tcase_add_test(tc, test_summary_short);
    tcase_add_test(tc, test_summary_color);
    tcase_add_test(tc, test_summary_all_pass);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(report_suite());
}
