/* metrics.c - a small Prometheus registry: counters, gauges and
 * histograms by name and labels, rendered in the text exposition format.
 *
 * Creation and rendering take the registry's lock; updates are relaxed
 * atomics on the metric, so a worker thread never waits on another to
 * count a request.  A render may see one update half-done across series
 * (a request counted but its latency not yet), which Prometheus allows. */
#include "internal.h"

#include <math.h>
#include <string.h>

typedef enum {
    KIND_COUNTER,
    KIND_GAUGE,
    KIND_HISTOGRAM,
} Kind;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct CmNetMetric {
    Kind kind;
    char *labels;  /* rendered: name="value",... ("" for none) */
    guint64 value; /* counter; gauge (as gint64 bits) */
    /* histogram */
    const double *bounds; /* the family's */
    size_t n_bounds;
    guint64 *buckets; /* n_bounds + 1 (the last is +Inf), not cumulative */
    guint64 sum_bits; /* a double's bits, updated by compare-and-swap */
};

typedef struct {
    char *name;
    char *help;
    Kind kind;
    double *bounds;
    size_t n_bounds;
    GHashTable *series; /* labels string -> CmNetMetric */
} Family;

struct CmNetMetrics {
    GMutex lock;
    GHashTable *families; /* name -> Family */
};

/* Seconds, from 100 us (a cached answer) to 10 s (a timeout). */
static const double default_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

static void
metric_free(struct CmNetMetric *m)
{
    g_free(m->labels);
    g_free(m->buckets);
    g_free(m);
}

static void
family_free(Family *f)
{
    g_hash_table_unref(f->series);
    g_free(f->name);
    g_free(f->help);
    g_free(f->bounds);
    g_free(f);
}

CmNetMetrics *
cm_net_metrics_new(void)
{
    CmNetMetrics *m = g_new0(CmNetMetrics, 1);

    g_mutex_init(&m->lock);
    m->families = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)family_free);
    return m;
}

void
cm_net_metrics_free(CmNetMetrics *m)
{
    if (m == NULL)
        return;
    g_hash_table_unref(m->families);
    g_mutex_clear(&m->lock);
    g_free(m);
}

static gboolean
name_ok(const char *s, gboolean colon)
{
    if (s == NULL || *s == '\0' || g_ascii_isdigit(*s))
        return FALSE;
    for (; *s; s++)
        if (!g_ascii_isalnum(*s) && *s != '_' && !(colon && *s == ':'))
            return FALSE;
    return TRUE;
}

static void
append_escaped(GString *out, const char *s, gboolean quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            g_string_append(out, "\\\\");
        else if (*s == '\n')
            g_string_append(out, "\\n");
        else if (quote && *s == '"')
            g_string_append(out, "\\\"");
        else
            g_string_append_c(out, *s);
    }
}

/* The canonical label string, or NULL (g_critical) when malformed. */
static char *
labels_render(const char *name, const char *const *labels)
{
    GString *out = g_string_new(NULL);

    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        if (labels[i + 1] == NULL || !name_ok(labels[i], FALSE) || strcmp(labels[i], "le") == 0) {
            g_critical("metric %s: label %zu must be a name (not \"le\") and a value", name, i / 2);
            g_string_free(out, TRUE);
            return NULL;
        }
        g_string_append_printf(out, "%s%s=\"", out->len ? "," : "", labels[i]);
        append_escaped(out, labels[i + 1], TRUE);
        g_string_append_c(out, '"');
    }
    return g_string_free(out, FALSE);
}

static struct CmNetMetric *
metric_get(CmNetMetrics *m, Kind kind, const char *name, const char *help,
           const char *const *labels, const double *bounds, size_t n_bounds)
{
    struct CmNetMetric *metric = NULL;
    Family *f;
    char *key;

    if (m == NULL)
        return NULL;
    if (!name_ok(name, TRUE)) {
        g_critical("metric name \"%s\" is not a Prometheus name", name ? name : "");
        return NULL;
    }
    if ((key = labels_render(name, labels)) == NULL)
        return NULL;
    g_mutex_lock(&m->lock);
    f = g_hash_table_lookup(m->families, name);
    if (f == NULL) {
        f = g_new0(Family, 1);
        f->name = g_strdup(name);
        f->help = g_strdup(help ? help : "");
        f->kind = kind;
        if (kind == KIND_HISTOGRAM) {
            if (bounds == NULL) {
                bounds = default_bounds;
                n_bounds = G_N_ELEMENTS(default_bounds);
            }
            f->bounds = g_memdup2(bounds, n_bounds * sizeof *bounds);
            f->n_bounds = n_bounds;
        }
        f->series =
            g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)metric_free);
        g_hash_table_insert(m->families, f->name, f);
    } else if (f->kind != kind) {
        g_critical("metric %s is a %s, not a %s", name, kind_names[f->kind], kind_names[kind]);
        goto out;
    }
    metric = g_hash_table_lookup(f->series, key);
    if (metric == NULL) {
        metric = g_new0(struct CmNetMetric, 1);
        metric->kind = kind;
        metric->labels = g_steal_pointer(&key);
        if (kind == KIND_HISTOGRAM) {
            metric->bounds = f->bounds;
            metric->n_bounds = f->n_bounds;
            metric->buckets = g_new0(guint64, f->n_bounds + 1);
        }
        g_hash_table_insert(f->series, metric->labels, metric);
    }
out:
    g_mutex_unlock(&m->lock);
    g_free(key);
    return metric;
}

CmNetCounter *
cm_net_metrics_counter(CmNetMetrics *m, const char *name, const char *help,
                       const char *const *labels)
{
    return metric_get(m, KIND_COUNTER, name, help, labels, NULL, 0);
}

void
cm_net_counter_add(CmNetCounter *c, guint64 n)
{
    if (c != NULL)
        __atomic_fetch_add(&c->value, n, __ATOMIC_RELAXED);
}

guint64
cm_net_counter_get(const CmNetCounter *c)
{
    return c ? __atomic_load_n(&c->value, __ATOMIC_RELAXED) : 0;
}

CmNetGauge *
cm_net_metrics_gauge(CmNetMetrics *m, const char *name, const char *help, const char *const *labels)
{
    return metric_get(m, KIND_GAUGE, name, help, labels, NULL, 0);
}

void
cm_net_gauge_set(CmNetGauge *g, gint64 v)
{
    if (g != NULL)
        __atomic_store_n(&g->value, (guint64)v, __ATOMIC_RELAXED);
}

void
cm_net_gauge_add(CmNetGauge *g, gint64 delta)
{
    /* Two's complement: adding the unsigned image subtracts for negatives. */
    if (g != NULL)
        __atomic_fetch_add(&g->value, (guint64)delta, __ATOMIC_RELAXED);
}

gint64
cm_net_gauge_get(const CmNetGauge *g)
{
    return g ? (gint64)__atomic_load_n(&g->value, __ATOMIC_RELAXED) : 0;
}

CmNetHistogram *
cm_net_metrics_histogram(CmNetMetrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds, size_t n_bounds)
{
    for (size_t i = 1; bounds != NULL && i < n_bounds; i++) {
        if (!(bounds[i] > bounds[i - 1])) {
            g_critical("histogram %s: bucket bounds must ascend", name);
            return NULL;
        }
    }
    return metric_get(m, KIND_HISTOGRAM, name, help, labels, bounds, n_bounds);
}

void
cm_net_histogram_observe(CmNetHistogram *h, double v)
{
    size_t i = 0;
    guint64 old, new;
    double sum;

    if (h == NULL || isnan(v))
        return;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    __atomic_fetch_add(&h->buckets[i], 1, __ATOMIC_RELAXED);
    old = __atomic_load_n(&h->sum_bits, __ATOMIC_RELAXED);
    do {
        memcpy(&sum, &old, sizeof sum);
        sum += v;
        memcpy(&new, &sum, sizeof new);
    } while (!__atomic_compare_exchange_n(&h->sum_bits, &old, new, TRUE, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
}

guint64
cm_net_histogram_count(const CmNetHistogram *h)
{
    guint64 n = 0;

    for (size_t i = 0; h != NULL && i <= h->n_bounds; i++)
        n += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
    return n;
}

/* ------------------------------------------------------------ render */

static void
append_double(GString *out, double v)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    if (isinf(v)) {
        g_string_append(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* The shortest form that reads back as v: "0.1", not "0.10000000000000001". */
    g_ascii_formatd(buf, sizeof buf, "%.15g", v);
    if (g_ascii_strtod(buf, NULL) != v)
        g_ascii_formatd(buf, sizeof buf, "%.17g", v);
    g_string_append(out, buf);
}

static void
append_series(GString *out, const char *name, const char *suffix, const char *labels,
              const char *extra)
{
    gboolean any = *labels != '\0' || extra != NULL;

    g_string_append_printf(out, "%s%s", name, suffix);
    if (any) {
        g_string_append_c(out, '{');
        g_string_append(out, labels);
        if (extra != NULL)
            g_string_append_printf(out, "%s%s", *labels ? "," : "", extra);
        g_string_append_c(out, '}');
    }
    g_string_append_c(out, ' ');
}

static void
render_histogram(GString *out, const char *name, const struct CmNetMetric *h)
{
    guint64 cumulative = 0;
    double sum;
    guint64 bits = __atomic_load_n(&h->sum_bits, __ATOMIC_RELAXED);

    for (size_t i = 0; i <= h->n_bounds; i++) {
        GString *le = g_string_new("le=\"");
        cumulative += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
        append_double(le, i < h->n_bounds ? h->bounds[i] : INFINITY);
        g_string_append_c(le, '"');
        append_series(out, name, "_bucket", h->labels, le->str);
        g_string_append_printf(out, "%" G_GUINT64_FORMAT "\n", cumulative);
        g_string_free(le, TRUE);
    }
    memcpy(&sum, &bits, sizeof sum);
    append_series(out, name, "_sum", h->labels, NULL);
    append_double(out, sum);
    g_string_append_c(out, '\n');
    /* The count is the +Inf bucket, so the two always agree. */
    append_series(out, name, "_count", h->labels, NULL);
    g_string_append_printf(out, "%" G_GUINT64_FORMAT "\n", cumulative);
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *
cm_net_metrics_render(CmNetMetrics *m)
{
    GString *out = g_string_new(NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    g_mutex_lock(&m->lock);
    g_hash_table_iter_init(&it, m->families);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(names, key);
    g_ptr_array_sort(names, cmp_str);
    for (guint i = 0; i < names->len; i++) {
        Family *f = g_hash_table_lookup(m->families, g_ptr_array_index(names, i));
        g_autoptr(GPtrArray) series = g_ptr_array_new();

        g_string_append_printf(out, "# HELP %s ", f->name);
        append_escaped(out, f->help, FALSE);
        g_string_append_printf(out, "\n# TYPE %s %s\n", f->name, kind_names[f->kind]);
        g_hash_table_iter_init(&it, f->series);
        while (g_hash_table_iter_next(&it, &key, NULL))
            g_ptr_array_add(series, key);
        g_ptr_array_sort(series, cmp_str);
        for (guint j = 0; j < series->len; j++) {
            const struct CmNetMetric *metric =
                g_hash_table_lookup(f->series, g_ptr_array_index(series, j));
            guint64 v = __atomic_load_n(&metric->value, __ATOMIC_RELAXED);

            switch (metric->kind) {
            case KIND_COUNTER:
                append_series(out, f->name, "", metric->labels, NULL);
                g_string_append_printf(out, "%" G_GUINT64_FORMAT "\n", v);
                break;
            case KIND_GAUGE:
                append_series(out, f->name, "", metric->labels, NULL);
                g_string_append_printf(out, "%" G_GINT64_FORMAT "\n", (gint64)v);
                break;
            case KIND_HISTOGRAM:
                render_histogram(out, f->name, metric);
                break;
            }
        }
    }
    g_mutex_unlock(&m->lock);
    return g_string_free(out, FALSE);
}

int
cm_net_metrics_route(const char *path, GString *body, const char **content_type, void *user_data)
{
    g_autofree char *text = cm_net_metrics_render(user_data);

    (void)path;
    g_string_append(body, text);
    *content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 200;
}
