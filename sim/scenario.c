/* scenario.c - the scenario file loader (docs/scenarios.md is the reference).
 *
 * A scenario file is untrusted input that decides what a long run does, so
 * the loader refuses anything it cannot use before anything runs, and says
 * where: "file: [group] key: expected ..., got ...".  A typo must never
 * silently do nothing, which is why unknown groups and keys are errors and
 * why the loader looks at the raw lines for what GLib would quietly merge
 * (a group written twice) or hide (a key with a [locale] suffix).
 *
 * The steps, each stopping at the first problem:
 *   1. a bounded read, UTF-8 text, GLib key file syntax, the line scan;
 *   2. every group classified by its first word ([site CODE], [link A B]);
 *   3. [variant] read and every ${variant.NAME} checked against it;
 *   4. per combination of variant values: the values substituted into a
 *      fresh key file, which is parsed kind by kind in dependency order
 *      (segments and forests before the sites that name them, populations
 *      before the events that target them), so that each reference is
 *      checked where it is read and the message names that key. */
#include "scenario.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

GQuark
cm_scenario_error_quark(void)
{
    return g_quark_from_static_string("cm-scenario-error-quark");
}

/* Bounds beyond the header's: each keeps a run or its report finite. */
#define MAX_DURATION (3650 * CM_USEC_PER_DAY) /* ten years of virtual time */
#define MAX_SAMPLES 100000                    /* report points per series */
#define MAX_NAME 255                          /* CM_NAME_MAX */
#define MAX_EXPANDED (32 * 1024 * 1024)       /* all variants substituted */
#define MAX_WORKERS 1024
#define MAX_QUEUE 10000000
#define MAX_COST CM_USEC_PER_HOUR
#define MAX_RATE 1e9 /* messages per second */
#define ALL_SYSTEMS "All Systems"

/* ------------------------------------------------------------ names */

static const char *const action_names[] = {
    [CM_SCN_ACT_UPGRADE_CLIENT] = "upgrade-client",
    [CM_SCN_ACT_BLOCK] = "block",
    [CM_SCN_ACT_UNBLOCK] = "unblock",
    [CM_SCN_ACT_APPROVE] = "approve",
    [CM_SCN_ACT_REVOKE] = "revoke",
    [CM_SCN_ACT_PUBLISH] = "publish",
    [CM_SCN_ACT_DEPLOY] = "deploy",
    [CM_SCN_ACT_CREATE_COLLECTION] = "create-collection",
    [CM_SCN_ACT_TAKE_OVER_MP] = "take-over-mp",
    [CM_SCN_ACT_SET] = "set",
    [CM_SCN_ACT_MAINTENANCE] = "maintenance",
    [CM_SCN_ACT_LINK_DOWN] = "link-down",
    [CM_SCN_ACT_LINK_UP] = "link-up",
    [CM_SCN_ACT_DISTRIBUTE] = "distribute",
    [CM_SCN_ACT_FAIL_CP] = "fail-connection-point",
    [CM_SCN_ACT_RECOVER_CP] = "recover-connection-point",
};

static const char *const strategy_names[] = {
    [CM_SCN_ATK_ROGUE_MP] = "rogue-mp",
    [CM_SCN_ATK_COMPROMISED_MP] = "compromised-mp",
    [CM_SCN_ATK_STATUS_FLOOD] = "status-flood",
    [CM_SCN_ATK_BOGUS_STATUS] = "bogus-status",
    [CM_SCN_ATK_FALSE_INVENTORY] = "false-inventory",
    [CM_SCN_ATK_BLOCKED_REJOIN] = "blocked-rejoin",
    [CM_SCN_ATK_CLONED_IMAGE] = "cloned-image",
    [CM_SCN_ATK_ENROLLMENT_FLOOD] = "enrollment-flood",
    [CM_SCN_ATK_POLICY_REPLAY] = "policy-replay",
    [CM_SCN_ATK_ROGUE_UPGRADE] = "rogue-upgrade",
    [CM_SCN_ATK_MOBILE_ENROLLMENT] = "mobile-enrollment",
    [CM_SCN_ATK_LOG_WIPE] = "log-wipe",
    [CM_SCN_ATK_STOLEN_PUSH_ACCOUNT] = "stolen-push-account",
    [CM_SCN_ATK_PUSH_RELAY] = "push-relay",
};

static const char *const cmp_names[] = {
    [CM_CMP_LT] = "<",  [CM_CMP_LE] = "<=", [CM_CMP_GT] = ">",
    [CM_CMP_GE] = ">=", [CM_CMP_EQ] = "==", [CM_CMP_NE] = "!=",
};

static const char *const source_names[] = {
    [CM_SCN_SOURCE_NONE] = "none",
    [CM_SCN_SOURCE_DIRECTORY] = "directory",
    [CM_SCN_SOURCE_PUSH] = "push",
    [CM_SCN_SOURCE_PROPERTY] = "property",
};

/* key_storage: the TPM version is 2 - index. */
static const char *const storage_names[] = {"tpm2", "tpm1", "software"};
static const char *const trust_names[] = {
    [CM_TRUST_NONE] = "none", [CM_TRUST_ONE_WAY] = "one-way", [CM_TRUST_TWO_WAY] = "two-way"};
static const char *const crypto_names[] = {"real", "model"};
static const char *const bool_names[] = {"false", "true"};

const char *
cm_scn_action_name(CmScnAction a)
{
    return (size_t)a < G_N_ELEMENTS(action_names) ? action_names[a] : "unknown";
}

const char *
cm_scn_strategy_name(CmScnStrategy s)
{
    return (size_t)s < G_N_ELEMENTS(strategy_names) ? strategy_names[s] : "unknown";
}

const char *
cm_scn_cmp_name(CmCmp op)
{
    return (size_t)op < G_N_ELEMENTS(cmp_names) ? cmp_names[op] : "?";
}

gboolean
cm_scn_compare(CmCmp op, double have, double want)
{
    /* A metric that came out as NaN answers no question: it fails. */
    if (isnan(have) || isnan(want))
        return FALSE;
    switch (op) {
    case CM_CMP_LT:
        return have < want;
    case CM_CMP_LE:
        return have <= want;
    case CM_CMP_GT:
        return have > want;
    case CM_CMP_GE:
        return have >= want;
    case CM_CMP_EQ:
        return have == want;
    case CM_CMP_NE:
        return have != want;
    }
    return FALSE;
}

/* ------------------------------------------------------------ freeing */

static void
segment_free(CmScnSegment *x)
{
    g_free(x->name);
    g_free(x);
}

static void
link_free(CmScnLink *x)
{
    g_free(x->a);
    g_free(x->b);
    g_free(x);
}

static void
forest_free(CmScnForest *x)
{
    g_free(x->name);
    g_strfreev(x->domains);
    g_free(x);
}

static void
trust_free(CmScnTrust *x)
{
    g_free(x->a);
    g_free(x->b);
    g_free(x);
}

static void
site_free(CmScnSite *x)
{
    g_free(x->code);
    g_free(x->forest);
    g_free(x->segment);
    g_strfreev(x->publish_to);
    g_free(x->parent);
    g_free(x);
}

static void
mp_free(CmScnMp *x)
{
    g_free(x->name);
    g_free(x->site);
    g_free(x->segment);
    g_free(x);
}

static void
cmg_free(CmScnCmg *x)
{
    g_free(x->name);
    g_free(x->site);
    g_free(x->segment);
    g_free(x);
}

static void
cp_free(CmScnConnectionPoint *x)
{
    g_free(x->name);
    g_free(x->cmg);
    g_free(x->site);
    g_free(x->segment);
    g_strfreev(x->mps);
    g_free(x);
}

static void
population_free(CmScnPopulation *x)
{
    g_free(x->name);
    g_free(x->segment);
    g_free(x->forest);
    g_free(x->domain);
    g_free(x->site_code);
    g_free(x->mp);
    g_free(x->cmg);
    g_free(x->dp);
    if (x->inventory != NULL)
        g_hash_table_unref(x->inventory);
    g_free(x);
}

static void
event_free(CmScnEvent *x)
{
    g_free(x->name);
    g_free(x->target);
    g_free(x->site);
    g_free(x->collection);
    g_strfreev(x->rules);
    g_strfreev(x->settings);
    g_free(x->content);
    g_strfreev(x->dps);
    g_free(x);
}

static void
push_account_free(CmScnPushAccount *x)
{
    g_free(x->name);
    g_free(x->site);
    g_strfreev(x->domains);
    g_free(x);
}

static void
content_free(CmScnContent *x)
{
    g_free(x->name);
    g_free(x);
}

static void
dp_free(CmScnDp *x)
{
    g_free(x->name);
    g_free(x->site);
    g_free(x->segment);
    g_strfreev(x->prestaged_content);
    g_free(x);
}

static void
attacker_free(CmScnAttacker *x)
{
    g_free(x->name);
    g_free(x->segment);
    g_free(x->target);
    g_free(x->mp);
    if (x->params != NULL)
        g_hash_table_unref(x->params);
    g_free(x);
}

static void
expect_free(CmScnExpect *x)
{
    g_free(x->name);
    g_free(x->metric);
    g_free(x->when_variant);
    g_free(x->when_value);
    g_free(x->text);
    g_free(x);
}

void
cm_scenario_free(CmScenario *s)
{
    if (s == NULL)
        return;
    g_free(s->path);
    g_free(s->name);
    g_free(s->description);
    g_free(s->full_size);
    g_free(s->variant_label);
    g_clear_pointer(&s->variant, g_hash_table_unref);
    g_clear_pointer(&s->segments, g_ptr_array_unref);
    g_clear_pointer(&s->links, g_ptr_array_unref);
    g_clear_pointer(&s->forests, g_ptr_array_unref);
    g_clear_pointer(&s->trusts, g_ptr_array_unref);
    g_clear_pointer(&s->sites, g_ptr_array_unref);
    g_clear_pointer(&s->mps, g_ptr_array_unref);
    g_clear_pointer(&s->populations, g_ptr_array_unref);
    g_clear_pointer(&s->events, g_ptr_array_unref);
    g_clear_pointer(&s->attackers, g_ptr_array_unref);
    g_clear_pointer(&s->expects, g_ptr_array_unref);
    g_clear_pointer(&s->costs, g_hash_table_unref);
    g_clear_pointer(&s->contents, g_ptr_array_unref);
    g_clear_pointer(&s->dps, g_ptr_array_unref);
    g_clear_pointer(&s->cmgs, g_ptr_array_unref);
    g_clear_pointer(&s->cps, g_ptr_array_unref);
    g_clear_pointer(&s->push_accounts, g_ptr_array_unref);
    g_free(s);
}

static CmScenario *
scenario_new(const char *path)
{
    CmScenario *s = g_new0(CmScenario, 1);

    s->path = g_strdup(path);
    s->variant = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    s->segments = g_ptr_array_new_with_free_func((GDestroyNotify)segment_free);
    s->links = g_ptr_array_new_with_free_func((GDestroyNotify)link_free);
    s->forests = g_ptr_array_new_with_free_func((GDestroyNotify)forest_free);
    s->trusts = g_ptr_array_new_with_free_func((GDestroyNotify)trust_free);
    s->sites = g_ptr_array_new_with_free_func((GDestroyNotify)site_free);
    s->mps = g_ptr_array_new_with_free_func((GDestroyNotify)mp_free);
    s->populations = g_ptr_array_new_with_free_func((GDestroyNotify)population_free);
    s->events = g_ptr_array_new_with_free_func((GDestroyNotify)event_free);
    s->attackers = g_ptr_array_new_with_free_func((GDestroyNotify)attacker_free);
    s->expects = g_ptr_array_new_with_free_func((GDestroyNotify)expect_free);
    s->costs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    s->contents = g_ptr_array_new_with_free_func((GDestroyNotify)content_free);
    s->dps = g_ptr_array_new_with_free_func((GDestroyNotify)dp_free);
    s->cmgs = g_ptr_array_new_with_free_func((GDestroyNotify)cmg_free);
    s->cps = g_ptr_array_new_with_free_func((GDestroyNotify)cp_free);
    s->push_accounts = g_ptr_array_new_with_free_func((GDestroyNotify)push_account_free);
    return s;
}

/* ------------------------------------------------------------ groups */

typedef enum {
    G_SCENARIO,
    G_SITE,
    G_MP,
    G_SEGMENT,
    G_LINK,
    G_FOREST,
    G_TRUST,
    G_POPULATION,
    G_EVENT,
    G_ATTACKER,
    G_VARIANT,
    G_EXPECT,
    G_COSTS,
    G_CONTENT,
    G_DP,
    G_CMG,
    G_CONNECTION_POINT,
    G_PUSH_ACCOUNT,
    G__COUNT
} GroupKind;

static const struct {
    const char *word;
    int args;
    const char *form;
} group_kinds[G__COUNT] = {
    [G_SCENARIO] = {"scenario", 0, "[scenario]"},
    [G_SITE] = {"site", 1, "[site CODE]"},
    [G_MP] = {"mp", 1, "[mp NAME]"},
    [G_SEGMENT] = {"segment", 1, "[segment NAME]"},
    [G_LINK] = {"link", 2, "[link SEGMENT SEGMENT]"},
    [G_FOREST] = {"forest", 1, "[forest NAME]"},
    [G_TRUST] = {"trust", 2, "[trust FOREST FOREST]"},
    [G_POPULATION] = {"population", 1, "[population NAME]"},
    [G_EVENT] = {"event", 1, "[event NAME]"},
    [G_ATTACKER] = {"attacker", 1, "[attacker NAME]"},
    [G_VARIANT] = {"variant", 0, "[variant]"},
    [G_EXPECT] = {"expect", 0, "[expect]"},
    [G_COSTS] = {"costs", 0, "[costs]"},
    [G_CONTENT] = {"content", 1, "[content NAME]"},
    [G_DP] = {"dp", 1, "[dp NAME]"},
    [G_CMG] = {"cmg", 1, "[cmg NAME]"},
    [G_CONNECTION_POINT] = {"connection_point", 1, "[connection_point NAME]"},
    [G_PUSH_ACCOUNT] = {"push_account", 1, "[push_account NAME]"},
};

typedef struct {
    GPtrArray *names;  /* char*, in file order */
    GPtrArray *values; /* GStrv per name */
    guint combinations;
} Variants;

/* What one combination's parse needs; the lookup tables map names to the
 * objects the scenario owns, so references resolve without a scan. */
typedef struct {
    const char *file;
    const char *label; /* the variant label, "" without variants */
    /* Messages name the combination when it can matter: after the first
     * combination parsed cleanly, or for a value that had a reference. */
    gboolean label_always;
    GHashTable *substituted; /* "title\nkey" of values with ${variant.NAME} */
    const Variants *vars;
    double scale;
    GKeyFile *kf;
    CmScenario *s;
    GHashTable *segments, *forests, *domains, *sites, *mps, *populations, *events;
    GHashTable *attackers, *links, *trusts;
    GHashTable *contents, *dps, *push_accounts;
    GHashTable *cmgs, *cps;       /* [cmg], [connection_point] */
    GHashTable *collections;      /* "SITE\nname" -> the create-collection event */
    GHashTable *collection_names; /* name -> the same, on whichever site */
    guint64 devices;              /* clients and attacking devices so far, scaled */
    CmScnSite *top;               /* the site that said top_level = true */
    gboolean top_said;            /* some site set top_level (true or false) */
} Loader;

typedef struct {
    Loader *ld;
    const char *title; /* as written between the brackets */
    GroupKind kind;
    char **args; /* the names after the first word */
} Group;

/* Appends v to a message the user reads: quoted, control characters and
 * bytes that are not UTF-8 escaped (cm_scn_parse_duration takes any
 * string), cut at 60 characters. */
static void
append_quoted(GString *m, const char *v)
{
    glong n = 0;
    const char *p = v;

    g_string_append_c(m, '"');
    while (*p != '\0') {
        gunichar u = g_utf8_get_char_validated(p, -1);
        guchar c = (guchar)*p;
        if (n++ == 60) {
            g_string_append(m, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            g_string_append_printf(m, "\\%c", c);
        } else if (c < 0x20 || c == 0x7f || u == (gunichar)-1 || u == (gunichar)-2) {
            g_string_append_printf(m, "\\x%02x", c);
        } else {
            g_string_append_unichar(m, u);
            p = g_utf8_next_char(p);
            continue;
        }
        p++;
    }
    g_string_append_c(m, '"');
}

static char *
quote(const char *v)
{
    GString *m = g_string_new(NULL);
    append_quoted(m, v != NULL ? v : "");
    return g_string_free(m, FALSE);
}

static void set_error_va(GError **error, int code, const Loader *ld, const char *title,
                         const char *key, const char *fmt, va_list ap) G_GNUC_PRINTF(6, 0);
static gboolean fail(const Group *g, const char *key, GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
static gboolean fail_file(const Loader *ld, GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static void
set_error_va(GError **error, int code, const Loader *ld, const char *title, const char *key,
             const char *fmt, va_list ap)
{
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    GString *m = g_string_new(ld->file);
    gboolean label = *ld->label != '\0' && ld->label_always;

    g_string_append(m, ": ");
    if (title != NULL) {
        g_string_append_printf(m, "[%s]", title);
        if (key != NULL)
            g_string_append_printf(m, " %s", key);
        g_string_append(m, ": ");
    }
    g_string_append(m, msg);
    if (!label && *ld->label != '\0' && title != NULL && key != NULL && ld->substituted != NULL) {
        g_autofree char *k = g_strconcat(title, "\n", key, NULL);
        label = g_hash_table_contains(ld->substituted, k);
    }
    if (label)
        g_string_append_printf(m, " (in variant %s)", ld->label);
    g_set_error_literal(error, CM_SCENARIO_ERROR, code, m->str);
    g_string_free(m, TRUE);
}

/* Fails with "file: [group] key: message"; key may be NULL.  Returns FALSE
 * so that callers can return it. */
static gboolean
fail(const Group *g, const char *key, GError **error, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_error_va(error, CM_SCENARIO_ERROR_INVALID, g->ld, g->title, key, fmt, ap);
    va_end(ap);
    return FALSE;
}

/* Fails with "file: message", for what belongs to no one group. */
static gboolean
fail_file(const Loader *ld, GError **error, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_error_va(error, CM_SCENARIO_ERROR_INVALID, ld, NULL, NULL, fmt, ap);
    va_end(ap);
    return FALSE;
}

/* "a, b or c" */
static char *
name_list(const char *const *names, size_t n)
{
    GString *m = g_string_new(NULL);

    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL)
            continue;
        if (m->len > 0)
            g_string_append(m, i + 1 == n ? " or " : ", ");
        g_string_append(m, names[i]);
    }
    return g_string_free(m, FALSE);
}

static int
enum_match(const char *const *names, size_t n, const char *v)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] != NULL && strcmp(names[i], v) == 0)
            return (int)i;
    return -1;
}

/* Levenshtein distance, capped: only to suggest a key for a typo. */
static guint
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    guint row[64], prev;

    if (la >= G_N_ELEMENTS(row) || lb >= G_N_ELEMENTS(row))
        return G_MAXUINT;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (guint)j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (guint)i;
        for (size_t j = 1; j <= lb; j++) {
            guint cur = row[j];
            guint best = MIN(row[j] + 1, row[j - 1] + 1);
            row[j] = MIN(best, prev + (a[i - 1] == b[j - 1] ? 0 : 1));
            prev = cur;
        }
    }
    return row[lb];
}

/* Names of entities: host-name-like, so that they fit report keys, file
 * names and references without quoting. */
static gboolean
name_ok(const char *v)
{
    size_t n = 0;

    for (const char *p = v; *p != '\0'; p++, n++)
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_')
            return FALSE;
    return n > 0 && n <= MAX_NAME;
}

#define NAME_RULE "1 to 255 letters, digits, '.', '-' or '_'"

/* ------------------------------------------------------------ scalars */

/* A plain decimal number: [+-]digits[.digits][e[+-]digits], nothing else
 * (no hex, no inf, no nan, which strtod would take).  Returns the end or
 * NULL. */
static const char *
scan_number(const char *s, gboolean sign_ok, double *out)
{
    const char *p = s;
    size_t digits = 0;
    char buf[64];

    if (sign_ok && (*p == '-' || *p == '+'))
        p++;
    while (g_ascii_isdigit(*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (g_ascii_isdigit(*p))
            p++, digits++;
    }
    if (digits == 0)
        return NULL;
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        if (*q == '-' || *q == '+')
            q++;
        if (g_ascii_isdigit(*q)) {
            while (g_ascii_isdigit(*q))
                q++;
            p = q;
        }
    }
    if ((size_t)(p - s) >= sizeof buf)
        return NULL;
    memcpy(buf, s, (size_t)(p - s));
    buf[p - s] = '\0';
    *out = g_ascii_strtod(buf, NULL);
    return isfinite(*out) ? p : NULL;
}

static const struct {
    const char *unit;
    CmTime usec;
} duration_units[] = {
    {"us", 1},
    {"ms", 1000},
    {"s", CM_USEC_PER_SEC},
    {"m", CM_USEC_PER_MIN},
    {"h", CM_USEC_PER_HOUR},
    {"d", CM_USEC_PER_DAY},
};

static gboolean
duration_unit(const char *u, CmTime *usec)
{
    for (size_t i = 0; i < G_N_ELEMENTS(duration_units); i++) {
        if (strcmp(u, duration_units[i].unit) == 0) {
            *usec = duration_units[i].usec;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean
cm_scn_parse_duration(const char *text, CmTime *out, GError **error)
{
    g_autofree char *q = quote(text);
    const char *p = text, *end;
    guint64 whole = 0, frac = 0, scale = 1;
    CmTime unit = 0;
    size_t digits = 0, frac_digits = 0;

    /* Integer arithmetic throughout: "1.1h" is exactly 3960 s, which a
     * double would not promise. */
    if (text == NULL)
        goto bad;
    while (g_ascii_isspace(*p))
        p++;
    if (*p == '-') {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "expected a duration of 0 or more, got %s", q);
        return FALSE;
    }
    for (; g_ascii_isdigit(*p); p++, digits++) {
        guint d = (guint)(*p - '0');
        if (whole > (G_MAXUINT64 - d) / 10)
            goto overflow;
        whole = whole * 10 + d;
    }
    if (*p == '.') {
        for (p++; g_ascii_isdigit(*p); p++, digits++) {
            /* Six decimals reach a microsecond of a second; more would
             * overflow frac * unit below. */
            if (++frac_digits > 6)
                goto bad;
            frac = frac * 10 + (guint64)(*p - '0');
            scale *= 10;
        }
    }
    if (digits == 0)
        goto bad;
    while (g_ascii_isspace(*p))
        p++;
    end = p + strlen(p);
    while (end > p && g_ascii_isspace(end[-1]))
        end--;
    if (end == p) {
        /* A bare number is ambiguous, except zero. */
        if (whole != 0 || frac != 0)
            goto bad;
        *out = 0;
        return TRUE;
    }
    {
        g_autofree char *u = g_strndup(p, (gsize)(end - p));
        if (!duration_unit(u, &unit))
            goto bad;
    }
    if (whole > (guint64)G_MAXINT64 / (guint64)unit)
        goto overflow;
    if ((frac * (guint64)unit) % scale != 0) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                    "expected a whole number of microseconds, got %s", q);
        return FALSE;
    }
    if (whole * (guint64)unit > (guint64)G_MAXINT64 - frac * (guint64)unit / scale)
        goto overflow;
    *out = (CmTime)(whole * (guint64)unit + frac * (guint64)unit / scale);
    return TRUE;
overflow:
    g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID, "duration %s is too large", q);
    return FALSE;
bad:
    g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_INVALID,
                "expected a duration such as 90s, 500ms, 10m, 2h or 7d (units us, ms, s, m, h, "
                "d), got %s",
                q);
    return FALSE;
}

/* The largest unit that states t exactly: "90s", "2h", "1500us". */
static char *
format_duration(CmTime t)
{
    for (size_t i = G_N_ELEMENTS(duration_units); i-- > 0;)
        if (t != 0 && t % duration_units[i].usec == 0)
            return g_strdup_printf("%" G_GINT64_FORMAT "%s", t / duration_units[i].usec,
                                   duration_units[i].unit);
    return g_strdup("0");
}

static gboolean
parse_bandwidth(const char *v, double *out)
{
    static const struct {
        const char *unit;
        double bps;
    } units[] = {{"bps", 1},    {"kbps", 1e3}, {"Kbps", 1e3},
                 {"Mbps", 1e6}, {"Gbps", 1e9}, {"Tbps", 1e12}};
    double n;
    const char *p = scan_number(v, FALSE, &n);

    if (p == NULL)
        return FALSE;
    while (g_ascii_isspace(*p))
        p++;
    for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            *out = n * units[i].bps;
            return *out > 0 && isfinite(*out);
        }
    }
    return FALSE;
}

static gboolean
parse_uint(const char *v, guint64 *out)
{
    guint64 n = 0;

    if (*v == '\0')
        return FALSE;
    for (; *v != '\0'; v++) {
        guint d = (guint)(*v - '0');
        if (!g_ascii_isdigit(*v) || n > (G_MAXUINT64 - d) / 10)
            return FALSE;
        n = n * 10 + d;
    }
    *out = n;
    return TRUE;
}

/* ------------------------------------------------------------ values */

static gboolean
has_key(const Group *g, const char *key)
{
    return g_key_file_has_key(g->ld->kf, g->title, key, NULL);
}

/* The value of key with escapes resolved and spaces trimmed, or NULL when
 * the key is absent. */
static gboolean
get_raw(const Group *g, const char *key, char **out, GError **error)
{
    GError *cause = NULL;
    char *v;

    *out = NULL;
    if (!has_key(g, key))
        return TRUE;
    v = g_key_file_get_string(g->ld->kf, g->title, key, &cause);
    if (v == NULL) {
        fail(g, key, error, "%s", cause->message);
        g_error_free(cause);
        return FALSE;
    }
    g_strstrip(v);
    for (const char *p = v; *p != '\0'; p++) {
        if ((guchar)*p < 0x20 || *p == 0x7f) {
            g_free(v);
            return fail(g, key, error, "holds a control character; a value is one line of text");
        }
    }
    *out = v;
    return TRUE;
}

static gboolean
get_text(const Group *g, const char *key, const char *def, char **out, GError **error)
{
    if (!get_raw(g, key, out, error))
        return FALSE;
    if (*out == NULL)
        *out = g_strdup(def);
    return TRUE;
}

/* A reference or a new name: NULL when absent. */
static gboolean
get_name(const Group *g, const char *key, char **out, GError **error)
{
    g_autofree char *q = NULL;

    if (!get_raw(g, key, out, error))
        return FALSE;
    if (*out == NULL || name_ok(*out))
        return TRUE;
    q = quote(*out);
    g_clear_pointer(out, g_free);
    return fail(g, key, error, "expected a name of " NAME_RULE ", got %s", q);
}

static gboolean
get_enum(const Group *g, const char *key, const char *const *names, size_t n, int def, int *out,
         GError **error)
{
    g_autofree char *v = NULL, *all = NULL, *q = NULL;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if ((*out = enum_match(names, n, v)) >= 0)
        return TRUE;
    all = name_list(names, n);
    q = quote(v);
    return fail(g, key, error, "expected %s, got %s", all, q);
}

static gboolean
get_bool(const Group *g, const char *key, gboolean def, gboolean *out, GError **error)
{
    g_autofree char *v = NULL, *q = NULL;
    int i;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if ((i = enum_match(bool_names, G_N_ELEMENTS(bool_names), v)) >= 0) {
        *out = i == 1;
        return TRUE;
    }
    q = quote(v);
    return fail(g, key, error, "expected true or false, got %s", q);
}

static gboolean
get_uint(const Group *g, const char *key, guint64 def, guint64 lo, guint64 hi, guint64 *out,
         GError **error)
{
    g_autofree char *v = NULL, *q = NULL;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if (parse_uint(v, out) && *out >= lo && *out <= hi)
        return TRUE;
    q = quote(v);
    return fail(g, key, error,
                "expected a whole number from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                ", got %s",
                lo, hi, q);
}

static gboolean
get_int(const Group *g, const char *key, int def, int lo, int hi, int *out, GError **error)
{
    guint64 v;

    if (!get_uint(g, key, (guint64)def, (guint64)lo, (guint64)hi, &v, error))
        return FALSE;
    *out = (int)v;
    return TRUE;
}

/* A number in [lo, hi], or (lo, hi] when lo_open. */
static gboolean
get_double(const Group *g, const char *key, double def, double lo, gboolean lo_open, double hi,
           double *out, GError **error)
{
    g_autofree char *v = NULL, *q = NULL;
    const char *end;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    end = scan_number(v, TRUE, out);
    if (end != NULL && *end == '\0' && (lo_open ? *out > lo : *out >= lo) && *out <= hi)
        return TRUE;
    q = quote(v);
    return fail(g, key, error, "expected a number %s %g and at most %g, got %s",
                lo_open ? "above" : "of at least", lo, hi, q);
}

/* A duration in [lo, hi]. */
static gboolean
get_duration(const Group *g, const char *key, CmTime def, CmTime lo, CmTime hi, CmTime *out,
             GError **error)
{
    g_autofree char *v = NULL;
    GError *cause = NULL;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if (!cm_scn_parse_duration(v, out, &cause)) {
        fail(g, key, error, "%s", cause->message);
        g_error_free(cause);
        return FALSE;
    }
    if (*out < lo || *out > hi) {
        g_autofree char *l = format_duration(lo), *h = format_duration(hi), *q = quote(v);
        return fail(g, key, error, "expected a duration from %s to %s, got %s", l, h, q);
    }
    return TRUE;
}

static gboolean
get_bandwidth(const Group *g, const char *key, double def, double *out, GError **error)
{
    g_autofree char *v = NULL, *q = NULL;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if (parse_bandwidth(v, out))
        return TRUE;
    q = quote(v);
    return fail(g, key, error,
                "expected a bandwidth above 0 such as 10kbps, 100Mbps or 1Gbps (units bps, kbps, "
                "Mbps, Gbps, Tbps), got %s",
                q);
}

/* Splits "a, b, c" (an empty value is an empty list). */
static gboolean
split_list(const char *v, char ***out, char **why)
{
    g_auto(GStrv) parts = NULL;

    *out = NULL;
    if (*v == '\0') {
        *out = g_new0(char *, 1);
        return TRUE;
    }
    parts = g_strsplit(v, ",", -1);
    for (char **p = parts; *p != NULL; p++) {
        g_strstrip(*p);
        if (**p == '\0') {
            *why = g_strdup("an empty item in the list (two commas in a row, or a comma at "
                            "an end)");
            return FALSE;
        }
    }
    *out = g_steal_pointer(&parts);
    return TRUE;
}

/* A comma-separated list: an empty GStrv when the key is absent. */
static gboolean
get_list(const Group *g, const char *key, char ***out, GError **error)
{
    g_autofree char *v = NULL, *why = NULL;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (split_list(v != NULL ? v : "", out, &why))
        return TRUE;
    return fail(g, key, error, "%s", why);
}

/* The group's keys in file order; empty for a group without keys (which
 * the expanded key file does not hold at all). */
static char **
group_keys(const Group *g)
{
    char **keys = g_key_file_get_keys(g->ld->kf, g->title, NULL, NULL);
    return keys != NULL ? keys : g_new0(char *, 1);
}

/* Every key of the group must be in keys (NULL-terminated), or start with
 * prefix when prefix is not NULL. */
static gboolean
check_keys(const Group *g, const char *const *keys, const char *prefix, GError **error)
{
    g_auto(GStrv) have = group_keys(g);

    for (char **k = have; k != NULL && *k != NULL; k++) {
        gboolean ok = g_strv_contains(keys, *k);
        g_autofree char *all = NULL;
        const char *best = NULL;
        guint best_d = 3;

        if (ok || (prefix != NULL && g_str_has_prefix(*k, prefix) && (*k)[strlen(prefix)] != '\0'))
            continue;
        for (const char *const *c = keys; *c != NULL; c++) {
            guint d = edit_distance(*k, *c);
            if (d < best_d) {
                best_d = d;
                best = *c;
            }
        }
        if (best != NULL)
            return fail(g, *k, error, "unknown key; did you mean %s?", best);
        all = name_list(keys, g_strv_length((char **)keys));
        return fail(g, *k, error, "unknown key; expected %s%s%s%s", all,
                    prefix != NULL ? ", or " : "", prefix != NULL ? prefix : "",
                    prefix != NULL ? "<name>" : "");
    }
    return TRUE;
}

/* Looks a name up in a table of what was declared, failing with what the
 * key should have named. */
static gpointer
lookup(const Group *g, const char *key, GHashTable *table, const char *what, const char *name,
       GError **error)
{
    gpointer found = g_hash_table_lookup(table, name);

    if (found != NULL)
        return found;
    fail(g, key, error, "no [%s %s] is declared", what, name);
    return NULL;
}

/* The one entity of a kind, as the default of a reference; fails when
 * there are none or several. */
static gpointer
only_one(const Group *g, const char *key, GPtrArray *all, const char *what, GError **error)
{
    if (all->len == 1)
        return g_ptr_array_index(all, 0);
    if (all->len == 0)
        fail(g, key, error, "missing, and there is no [%s] to default to", what);
    else
        fail(g, key, error, "missing; %u [%s] groups are declared, so name one", all->len, what);
    return NULL;
}

static gboolean
get_site_ref(const Group *g, const char *key, CmScnSite **out, GError **error)
{
    g_autofree char *v = NULL;
    GError *cause = NULL;
    char code[4];

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL)
        return (*out = only_one(g, key, g->ld->s->sites, "site", error)) != NULL;
    if (!cm_id_site_code_check(v, code, &cause)) {
        fail(g, key, error, "%s", cause->message);
        g_error_free(cause);
        return FALSE;
    }
    return (*out = lookup(g, key, g->ld->sites, "site", code, error)) != NULL;
}

/* A segment reference; def is used when the key is absent (NULL: the only
 * segment). */
static gboolean
get_segment_ref(const Group *g, const char *key, const char *def, char **out, GError **error)
{
    g_autofree char *v = NULL;
    CmScnSegment *seg;

    if (!get_name(g, key, &v, error))
        return FALSE;
    if (v == NULL && def != NULL) {
        *out = g_strdup(def);
        return TRUE;
    }
    seg = v != NULL ? lookup(g, key, g->ld->segments, "segment", v, error)
                    : only_one(g, key, g->ld->s->segments, "segment", error);
    if (seg == NULL)
        return FALSE;
    *out = g_strdup(seg->name);
    return TRUE;
}

/* Registers a new entity name in table, refusing a second one. */
static gboolean
declare(const Group *g, GHashTable *table, const char *what, const char *name, gpointer obj,
        GError **error)
{
    if (g_hash_table_contains(table, name))
        return fail(g, NULL, error, "a second [%s %s]; each %s is declared once", what, name, what);
    g_hash_table_insert(table, g_strdup(name), obj);
    return TRUE;
}

static gboolean
check_name_arg(const Group *g, const char *v, GError **error)
{
    g_autofree char *q = NULL;

    if (name_ok(v))
        return TRUE;
    q = quote(v);
    return fail(g, NULL, error, "expected a name of " NAME_RULE ", got %s", q);
}

/* How many devices a count stands for at this scale: rounded up, at least
 * one.  The tolerance keeps 25000 x 0.01 at 250, not 251. */
static guint64
scaled(double scale, guint64 count)
{
    double v = (double)count * scale;
    double r = nearbyint(v);

    if (fabs(v - r) <= 1e-9 * MAX(1.0, v))
        v = r;
    else
        v = ceil(v);
    if (v < 1)
        return 1;
    if (v > (double)CM_SCENARIO_MAX_DEVICES)
        return CM_SCENARIO_MAX_DEVICES + 1;
    return (guint64)v;
}

static gboolean
get_count(const Group *g, const char *key, gboolean required, guint64 *out, GError **error)
{
    Loader *ld = g->ld;
    guint64 n;

    if (required && !has_key(g, key))
        return fail(g, key, error, "missing; expected the number of devices");
    if (!get_uint(g, key, 1, 1, CM_SCENARIO_MAX_DEVICES, &n, error))
        return FALSE;
    *out = scaled(ld->scale, n);
    if (*out > CM_SCENARIO_MAX_DEVICES - ld->devices)
        return fail(g, key, error,
                    "the scenario would hold more than %" G_GUINT64_FORMAT
                    " clients and attacking devices (after scale %g)",
                    CM_SCENARIO_MAX_DEVICES, ld->scale);
    ld->devices += *out;
    return TRUE;
}

/* ------------------------------------------------------------ site settings */

static const char *const setting_keys[] = {"communication",
                                           "approval",
                                           "conflicts",
                                           "key_alg",
                                           "require_signing",
                                           "require_sha256",
                                           "encrypt",
                                           "allow_3des",
                                           "crl_check",
                                           "discovery_retention",
                                           "client_status_retention",
                                           "client_token_lifetime",
                                           NULL};

/* Applies one site setting; returns -1 for a key that is no setting, 0
 * with *why for a bad value, 1 when applied. */
static int
setting_apply(CmSiteSettings *st, const char *key, const char *v, char **why)
{
    g_autofree char *q = quote(v);
    const char *names[8];
    size_t n = 0;
    int b;

    if (strcmp(key, "communication") == 0) {
        for (n = 0; n <= CM_COMM_EHTTP; n++)
            names[n] = cm_comm_mode_name((CmCommMode)n);
        if (cm_comm_mode_parse(v, &st->communication, NULL))
            return 1;
    } else if (strcmp(key, "approval") == 0) {
        for (n = 0; n <= CM_APPROVAL_ALL; n++)
            names[n] = cm_approval_mode_name((CmApprovalMode)n);
        if (cm_approval_mode_parse(v, &st->approval, NULL))
            return 1;
    } else if (strcmp(key, "conflicts") == 0) {
        for (n = 0; n <= CM_CONFLICT_BLOCK; n++)
            names[n] = cm_conflict_mode_name((CmConflictMode)n);
        if (cm_conflict_mode_parse(v, &st->conflicts, NULL))
            return 1;
    } else if (strcmp(key, "key_alg") == 0) {
        names[n++] = cm_key_alg_name(CM_KEY_EC_P256);
        names[n++] = cm_key_alg_name(CM_KEY_RSA_2048);
        if (cm_key_alg_parse(v, &st->key_alg, NULL))
            return 1;
    } else if (g_strv_contains(setting_keys, key) && g_str_has_suffix(key, "_retention")) {
        CmTime t;
        if (cm_scn_parse_duration(v, &t, NULL) && t >= CM_USEC_PER_DAY && t <= MAX_DURATION &&
            t % CM_USEC_PER_DAY == 0) {
            int days = (int)(t / CM_USEC_PER_DAY);
            if (strcmp(key, "discovery_retention") == 0)
                st->discovery_retention_days = days;
            else
                st->client_status_retention_days = days;
            return 1;
        }
        *why = g_strdup_printf("expected whole days from 1d to 3650d, such as 90d, got %s", q);
        return 0;
    } else if (strcmp(key, "client_token_lifetime") == 0) {
        CmTime t;
        if (cm_scn_parse_duration(v, &t, NULL) && t >= CM_USEC_PER_SEC && t <= MAX_DURATION) {
            st->client_token_lifetime = t;
            return 1;
        }
        *why = g_strdup_printf("expected a duration from 1s to 3650d, such as 30d, got %s", q);
        return 0;
    } else if (g_strv_contains(setting_keys, key)) {
        if ((b = enum_match(bool_names, 2, v)) >= 0) {
            gboolean on = b == 1;
            if (strcmp(key, "require_signing") == 0)
                st->require_signing = on;
            else if (strcmp(key, "require_sha256") == 0)
                st->require_sha256 = on;
            else if (strcmp(key, "encrypt") == 0)
                st->encrypt = on;
            else if (strcmp(key, "allow_3des") == 0)
                st->allow_3des = on;
            else
                st->crl_check = on;
            return 1;
        }
        names[n++] = "true";
        names[n++] = "false";
    } else {
        return -1;
    }
    {
        g_autofree char *all = name_list(names, n);
        *why = g_strdup_printf("expected %s, got %s", all, q);
    }
    return 0;
}

/* ------------------------------------------------------------ [scenario] */

static gboolean
parse_scenario(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"name",   "description", "seed",      "duration",
                                       "sample", "crypto",      "full_size", NULL};
    CmScenario *s = ld->s;
    g_autofree char *base = NULL;
    int crypto;
    CmTime def_sample;

    if (!check_keys(g, keys, NULL, error))
        return FALSE;
    if (!get_name(g, "name", &s->name, error))
        return FALSE;
    if (s->name == NULL) {
        /* The file's name without ".scn": what a user would call it. */
        base = g_path_get_basename(ld->file);
        if (g_str_has_suffix(base, ".scn"))
            base[strlen(base) - 4] = '\0';
        s->name = g_strdup(base);
    }
    if (!get_text(g, "description", "", &s->description, error) ||
        !get_text(g, "full_size", "", &s->full_size, error) ||
        !get_uint(g, "seed", 1, 0, G_MAXUINT64, &s->seed, error))
        return FALSE;
    if (!has_key(g, "duration"))
        return fail(g, "duration", error, "missing; expected how long the run lasts, such as 6h");
    if (!get_duration(g, "duration", 0, CM_USEC_PER_SEC, MAX_DURATION, &s->duration, error))
        return FALSE;
    def_sample = MIN(MAX(s->duration / 240, CM_USEC_PER_SEC), s->duration);
    if (!get_duration(g, "sample", def_sample, 1, s->duration, &s->sample, error))
        return FALSE;
    if (s->duration / s->sample > MAX_SAMPLES) {
        g_autofree char *least = format_duration((s->duration + MAX_SAMPLES - 1) / MAX_SAMPLES);
        return fail(g, "sample", error,
                    "too small: a run has at most %d samples, so at least %s for this duration",
                    MAX_SAMPLES, least);
    }
    if (!get_enum(g, "crypto", crypto_names, G_N_ELEMENTS(crypto_names), 0, &crypto, error))
        return FALSE;
    s->model_crypto = crypto == 1;
    return TRUE;
}

/* ------------------------------------------------------------ topology */

static gboolean
parse_segment(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"latency", "bandwidth", NULL};
    CmScnSegment *seg;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    seg = g_new0(CmScnSegment, 1);
    seg->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->segments, seg);
    if (!declare(g, ld->segments, "segment", seg->name, seg, error))
        return FALSE;
    return get_duration(g, "latency", CM_USEC_PER_SEC / 1000, 0, CM_USEC_PER_HOUR, &seg->latency,
                        error) &&
           get_bandwidth(g, "bandwidth", 1e9, &seg->bandwidth_bps, error);
}

/* Two groups about the same pair of names, in either order. */
static gboolean
declare_pair(const Group *g, GHashTable *table, const char *a, const char *b, GError **error)
{
    g_autofree char *k =
        strcmp(a, b) < 0 ? g_strconcat(a, "\n", b, NULL) : g_strconcat(b, "\n", a, NULL);

    if (strcmp(a, b) == 0)
        return fail(g, NULL, error, "names %s twice; expected two different names", a);
    if (g_hash_table_contains(table, k))
        return fail(g, NULL, error, "%s and %s are already paired by another [%s] group", a, b,
                    group_kinds[g->kind].word);
    g_hash_table_add(table, g_steal_pointer(&k));
    return TRUE;
}

static gboolean
parse_link(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"latency", "bandwidth", "one_way", NULL};
    CmScnLink *ln;

    if (!check_keys(g, keys, NULL, error))
        return FALSE;
    for (int i = 0; i < 2; i++)
        if (!check_name_arg(g, g->args[i], error) ||
            lookup(g, NULL, ld->segments, "segment", g->args[i], error) == NULL)
            return FALSE;
    if (!declare_pair(g, ld->links, g->args[0], g->args[1], error))
        return FALSE;
    ln = g_new0(CmScnLink, 1);
    ln->a = g_strdup(g->args[0]);
    ln->b = g_strdup(g->args[1]);
    g_ptr_array_add(ld->s->links, ln);
    return get_duration(g, "latency", 10 * CM_USEC_PER_SEC / 1000, 0, CM_USEC_PER_HOUR,
                        &ln->latency, error) &&
           get_bandwidth(g, "bandwidth", 100e6, &ln->bandwidth_bps, error) &&
           get_bool(g, "one_way", FALSE, &ln->one_way, error);
}

static gboolean
parse_forest(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"domains", NULL};
    CmScnForest *f;
    const char *other;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    f = g_new0(CmScnForest, 1);
    f->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->forests, f);
    if (!declare(g, ld->forests, "forest", f->name, f, error))
        return FALSE;
    /* A domain belongs to one forest; the forest root is its first. */
    other = g_hash_table_lookup(ld->domains, f->name);
    if (other != NULL && strcmp(other, f->name) != 0)
        return fail(g, NULL, error, "%s is already a domain of forest %s", f->name, other);
    g_hash_table_insert(ld->domains, g_strdup(f->name), f->name);
    if (!get_list(g, "domains", &f->domains, error))
        return FALSE;
    for (char **d = f->domains; *d != NULL; d++) {
        g_autofree char *q = NULL;
        if (!name_ok(*d)) {
            q = quote(*d);
            return fail(g, "domains", error, "expected domain names of " NAME_RULE ", got %s", q);
        }
        other = g_hash_table_lookup(ld->domains, *d);
        if (other != NULL && strcmp(other, f->name) != 0)
            return fail(g, "domains", error, "%s is already a domain of forest %s", *d, other);
        g_hash_table_insert(ld->domains, g_strdup(*d), f->name);
    }
    return TRUE;
}

static gboolean
parse_trust(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"kind", NULL};
    CmScnTrust *t;
    int kind;

    if (!check_keys(g, keys, NULL, error))
        return FALSE;
    for (int i = 0; i < 2; i++)
        if (!check_name_arg(g, g->args[i], error) ||
            lookup(g, NULL, ld->forests, "forest", g->args[i], error) == NULL)
            return FALSE;
    if (!declare_pair(g, ld->trusts, g->args[0], g->args[1], error))
        return FALSE;
    if (!get_enum(g, "kind", trust_names, G_N_ELEMENTS(trust_names), CM_TRUST_TWO_WAY, &kind,
                  error))
        return FALSE;
    t = g_new0(CmScnTrust, 1);
    t->a = g_strdup(g->args[0]);
    t->b = g_strdup(g->args[1]);
    t->kind = (CmForestTrust)kind;
    g_ptr_array_add(ld->s->trusts, t);
    return TRUE;
}

static gboolean
get_forest_ref(const Group *g, const char *key, char **out, GError **error)
{
    g_autofree char *v = NULL;
    CmScnForest *f;

    *out = NULL;
    if (!get_name(g, key, &v, error))
        return FALSE;
    if (v == NULL)
        return TRUE;
    if ((f = lookup(g, key, g->ld->forests, "forest", v, error)) == NULL)
        return FALSE;
    *out = g_strdup(f->name);
    return TRUE;
}

static gboolean
parse_site(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"top_level",
                                       "segment",
                                       "forest",
                                       "publish_to",
                                       "workers",
                                       "queue_limit",
                                       "communication",
                                       "approval",
                                       "conflicts",
                                       "key_alg",
                                       "require_signing",
                                       "require_sha256",
                                       "encrypt",
                                       "allow_3des",
                                       "crl_check",
                                       "discovery_retention",
                                       "client_status_retention",
                                       "client_token_lifetime",
                                       "parent",
                                       "kind",
                                       "replication_interval",
                                       "replication_batch",
                                       "push_require_kerberos",
                                       NULL};
    static const char *const kind_names[] = {"central", "primary", "secondary"};
    int kind = CM_SITE_KIND_PRIMARY;
    CmScnSite *site;
    GError *cause = NULL;
    char code[4];

    if (!cm_id_site_code_check(g->args[0], code, &cause)) {
        fail(g, NULL, error, "%s", cause->message);
        g_error_free(cause);
        return FALSE;
    }
    if (!check_keys(g, keys, NULL, error))
        return FALSE;
    site = g_new0(CmScnSite, 1);
    site->code = g_strdup(code);
    g_ptr_array_add(ld->s->sites, site);
    if (!declare(g, ld->sites, "site", site->code, site, error))
        return FALSE;
    cm_site_settings_default(&site->settings);
    for (const char *const *k = setting_keys; *k != NULL; k++) {
        g_autofree char *v = NULL, *why = NULL;
        if (!get_raw(g, *k, &v, error))
            return FALSE;
        if (v != NULL && setting_apply(&site->settings, *k, v, &why) != 1)
            return fail(g, *k, error, "%s", why);
    }
    if (!get_bool(g, "top_level", FALSE, &site->top_level, error) ||
        !get_int(g, "workers", 4, 1, MAX_WORKERS, &site->workers, error) ||
        !get_int(g, "queue_limit", 10000, 1, MAX_QUEUE, &site->queue_limit, error) ||
        !get_segment_ref(g, "segment", NULL, &site->segment, error) ||
        !get_list(g, "publish_to", &site->publish_to, error) ||
        !get_raw(g, "parent", &site->parent, error) ||
        !get_enum(g, "kind", kind_names, G_N_ELEMENTS(kind_names), CM_SITE_KIND_PRIMARY, &kind,
                  error) ||
        !get_duration(g, "replication_interval", 5 * CM_USEC_PER_MIN, CM_USEC_PER_SEC,
                      MAX_DURATION, &site->repl_interval, error) ||
        !get_int(g, "replication_batch", 1000, 1, CM_REPL_ITEMS_MAX, &site->repl_batch, error) ||
        !get_bool(g, "push_require_kerberos", FALSE, &site->push_require_kerberos, error))
        return FALSE;
    site->kind = (CmSiteKind)kind;
    if (site->parent == NULL) {
        static const char *const child_keys[] = {"kind", "replication_interval",
                                                 "replication_batch", NULL};
        for (const char *const *k = child_keys; *k != NULL; k++)
            if (has_key(g, *k))
                return fail(g, *k, error, "only for a child site; set parent = CODE too");
    } else {
        char pcode[4];
        if (!cm_id_site_code_check(site->parent, pcode, &cause)) {
            fail(g, "parent", error, "%s", cause->message);
            g_error_free(cause);
            return FALSE;
        }
        g_free(site->parent);
        site->parent = g_strdup(pcode);
        if (strcmp(pcode, site->code) == 0)
            return fail(g, "parent", error, "a site cannot be its own parent");
        if (site->kind == CM_SITE_KIND_CENTRAL)
            return fail(g, "kind", error,
                        "expected primary or secondary; the central site is the top-level "
                        "site with children, not a child");
    }
    if (has_key(g, "top_level"))
        ld->top_said = TRUE;
    if (site->top_level) {
        if (ld->top != NULL)
            return fail(g, "top_level", error,
                        "site %s is already the top-level site; a hierarchy has one",
                        ld->top->code);
        ld->top = site;
    }
    if (has_key(g, "forest")) {
        if (!get_forest_ref(g, "forest", &site->forest, error))
            return FALSE;
    } else if (ld->s->forests->len == 1) {
        site->forest = g_strdup(((CmScnForest *)g_ptr_array_index(ld->s->forests, 0))->name);
    } else if (ld->s->forests->len > 1) {
        return fail(g, "forest", error,
                    "missing; %u [forest] groups are declared, so name the site server's",
                    ld->s->forests->len);
    }
    for (char **f = site->publish_to; *f != NULL; f++)
        if (lookup(g, "publish_to", ld->forests, "forest", *f, error) == NULL)
            return FALSE;
    return TRUE;
}

static gboolean
parse_mp(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"site",    "segment",     "internet",
                                       "workers", "queue_limit", NULL};
    CmScnMp *mp;
    CmScnSite *site;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    mp = g_new0(CmScnMp, 1);
    mp->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->mps, mp);
    if (!declare(g, ld->mps, "mp", mp->name, mp, error) || !get_site_ref(g, "site", &site, error))
        return FALSE;
    mp->site = g_strdup(site->code);
    return get_segment_ref(g, "segment", site->segment, &mp->segment, error) &&
           get_bool(g, "internet", FALSE, &mp->internet, error) &&
           get_int(g, "workers", 8, 1, MAX_WORKERS, &mp->workers, error) &&
           get_int(g, "queue_limit", 5000, 1, MAX_QUEUE, &mp->queue_limit, error);
}

/* ------------------------------------------------------------ [cmg], [connection_point] */

#define MAX_CMG_INSTANCES 16 /* CM_CMG_MAX_INSTANCES */

static gboolean
parse_cmg(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"site",      "segment",       "instances",
                                       "workers",   "queue_limit",   "tls_min",
                                       "crl_check", "crl_published", NULL};
    CmScnCmg *c;
    CmScnSite *site;
    g_autofree char *entry = NULL, *v = NULL;
    GError *cause = NULL;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    /* The service name goes into every client's internet MP list entry:
     * it must be a host name (REQ CMG-10). */
    entry = cm_cmgurl_mp_entry(g->args[0], 1);
    if (entry == NULL)
        return fail(g, NULL, error,
                    "expected a host name for the CMG, such as cmg.contoso.example");
    c = g_new0(CmScnCmg, 1);
    c->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->cmgs, c);
    if (!declare(g, ld->cmgs, "cmg", c->name, c, error) || !get_site_ref(g, "site", &site, error))
        return FALSE;
    c->site = g_strdup(site->code);
    if (!get_segment_ref(g, "segment", site->segment, &c->segment, error) ||
        !get_int(g, "instances", 2, 1, MAX_CMG_INSTANCES, &c->instances, error) ||
        !get_int(g, "workers", 16, 1, MAX_WORKERS, &c->workers, error) ||
        !get_int(g, "queue_limit", 5000, 1, MAX_QUEUE, &c->queue_limit, error) ||
        !get_bool(g, "crl_check", FALSE, &c->crl_check, error) ||
        !get_bool(g, "crl_published", TRUE, &c->crl_published, error) ||
        !get_raw(g, "tls_min", &v, error))
        return FALSE;
    c->tls_min = CM_TLS_1_2;
    if (v != NULL &&
        (!cm_cmg_tls_parse(v, &c->tls_min, &cause) || !cm_cmg_tls_check(c->tls_min, &cause))) {
        fail(g, "tls_min", error, "%s", cause->message);
        g_error_free(cause);
        return FALSE;
    }
    return TRUE;
}

static gboolean
parse_connection_point(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"cmg", "segment", "mps", "workers", "queue_limit", NULL};
    CmScnConnectionPoint *cp;
    CmScnCmg *cmg;
    CmScnSite *site;
    g_autofree char *v = NULL;
    guint n = 0;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    cp = g_new0(CmScnConnectionPoint, 1);
    cp->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->cps, cp);
    if (!declare(g, ld->cps, "connection_point", cp->name, cp, error) ||
        !get_name(g, "cmg", &v, error))
        return FALSE;
    cmg = v != NULL ? lookup(g, "cmg", ld->cmgs, "cmg", v, error)
                    : only_one(g, "cmg", ld->s->cmgs, "cmg", error);
    if (cmg == NULL)
        return FALSE;
    for (guint i = 0; i < ld->s->cps->len; i++)
        n += g_strcmp0(((CmScnConnectionPoint *)g_ptr_array_index(ld->s->cps, i))->cmg,
                       cmg->name) == 0;
    if (n >= CM_CMG_MAX_CPS)
        return fail(g, "cmg", error, "a CMG takes at most %d connection points", CM_CMG_MAX_CPS);
    cp->cmg = g_strdup(cmg->name);
    cp->site = g_strdup(cmg->site);
    site = g_hash_table_lookup(ld->sites, cmg->site);
    if (!get_segment_ref(g, "segment", site->segment, &cp->segment, error) ||
        !get_int(g, "workers", 8, 1, MAX_WORKERS, &cp->workers, error) ||
        !get_int(g, "queue_limit", 5000, 1, MAX_QUEUE, &cp->queue_limit, error) ||
        !get_list(g, "mps", &cp->mps, error))
        return FALSE;
    /* By default every MP of the site has its CMG traffic enabled. */
    if (cp->mps[0] == NULL) {
        GPtrArray *all = g_ptr_array_new();
        for (guint i = 0; i < ld->s->mps->len; i++) {
            CmScnMp *mp = g_ptr_array_index(ld->s->mps, i);
            if (strcmp(mp->site, cmg->site) == 0)
                g_ptr_array_add(all, g_strdup(mp->name));
        }
        if (all->len == 0) {
            g_ptr_array_unref(all);
            return fail(g, "mps", error, "site %s has no [mp] to forward to", cmg->site);
        }
        g_ptr_array_add(all, NULL);
        g_strfreev(cp->mps);
        cp->mps = (char **)g_ptr_array_free(all, FALSE);
    }
    for (char **m = cp->mps; *m != NULL; m++) {
        CmScnMp *mp = lookup(g, "mps", ld->mps, "mp", *m, error);
        if (mp == NULL)
            return FALSE;
        if (strcmp(mp->site, cmg->site) != 0)
            return fail(g, "mps", error,
                        "%s belongs to site %s; CMG %s serves site %s and forwards to its MPs only",
                        *m, mp->site, cmg->name, cmg->site);
    }
    return TRUE;
}

/* The DP a population downloads content from (REQ DP-04): one of its
 * site's. */
static gboolean
population_dp(const Group *g, CmScnPopulation *p, GError **error)
{
    CmScnDp *dp;

    if (!get_name(g, "dp", &p->dp, error))
        return FALSE;
    if (p->dp == NULL)
        return TRUE;
    if ((dp = lookup(g, "dp", g->ld->dps, "dp", p->dp, error)) == NULL)
        return FALSE;
    if (p->site_code != NULL && strcmp(p->site_code, dp->site) != 0)
        return fail(g, "dp", error, "%s is a DP of site %s, and this population belongs to %s",
                    dp->name, dp->site, p->site_code);
    return TRUE;
}

/* A population of internet clients that reach their site through a CMG. */
static gboolean
population_cmg(const Group *g, CmScnPopulation *p, GError **error)
{
    static const char *const auth_names[] = {"pki", "token"};
    CmScnCmg *cmg;
    gboolean has_cp = FALSE;
    int auth;

    if (!get_name(g, "cmg", &p->cmg, error))
        return FALSE;
    if (p->cmg == NULL) {
        if (has_key(g, "cmg_auth"))
            return fail(g, "cmg_auth", error, "only for clients of a CMG; set cmg as well");
        return TRUE;
    }
    if ((cmg = lookup(g, "cmg", g->ld->cmgs, "cmg", p->cmg, error)) == NULL)
        return FALSE;
    for (guint i = 0; i < g->ld->s->cps->len && !has_cp; i++)
        has_cp = strcmp(((CmScnConnectionPoint *)g_ptr_array_index(g->ld->s->cps, i))->cmg,
                        cmg->name) == 0;
    if (!has_cp)
        return fail(g, "cmg", error,
                    "CMG %s has no [connection_point]: its clients could reach nothing", cmg->name);
    if (p->site_code != NULL && strcmp(p->site_code, cmg->site) != 0)
        return fail(g, "cmg", error, "CMG %s serves site %s, and this population belongs to %s",
                    cmg->name, cmg->site, p->site_code);
    if (!get_enum(g, "cmg_auth", auth_names, G_N_ELEMENTS(auth_names), p->pki ? 0 : 1, &auth,
                  error))
        return FALSE;
    if (auth == 0 && !p->pki)
        return fail(g, "cmg_auth", error,
                    "pki needs pki = true: the population has no client certificate to show");
    p->cmg_token = auth == 1;
    /* The gateway does not carry the notification channel. */
    if (has_key(g, "keepalive_interval") && p->keepalive_interval > 0)
        return fail(g, "keepalive_interval", error,
                    "a CMG does not carry the notification channel; set 0 or leave it out");
    p->keepalive_interval = 0;
    return TRUE;
}

/* ------------------------------------------------------------ [population] */

static gboolean
get_source(const Group *g, const char *key, CmScnTrustSource def, CmScnTrustSource *out,
           GError **error)
{
    g_autofree char *v = NULL, *q = NULL;
    int i;

    if (!get_raw(g, key, &v, error))
        return FALSE;
    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    /* signcert = mp says it outright: the client takes it from the MP. */
    if (strcmp(key, "signcert") == 0 && strcmp(v, "mp") == 0) {
        g_free(v);
        v = g_strdup("none");
    }
    if ((i = enum_match(source_names, G_N_ELEMENTS(source_names), v)) >= 0) {
        *out = (CmScnTrustSource)i;
        return TRUE;
    }
    q = quote(v);
    return fail(g, key, error, "expected directory, push, property%s or none, got %s",
                strcmp(key, "signcert") == 0 ? ", mp" : "", q);
}

static gboolean
parse_population(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"count",
                                       "segment",
                                       "forest",
                                       "workgroup",
                                       "domain",
                                       "site_code",
                                       "trk",
                                       "signcert",
                                       "key_storage",
                                       "pki",
                                       "kerberos",
                                       "install",
                                       "mp",
                                       "start",
                                       "start_window",
                                       "policy_interval",
                                       "inventory_interval",
                                       "key_alg",
                                       "media",
                                       "maintenance_start",
                                       "maintenance_window",
                                       "auto_upgrade",
                                       "client_status_interval",
                                       "keepalive_interval",
                                       "channel_lifetime",
                                       "cmg",
                                       "cmg_auth",
                                       "dp",
                                       NULL};
    CmScenario *s = ld->s;
    CmScnPopulation *p;
    g_autofree char *v = NULL;
    g_auto(GStrv) have = NULL;
    gboolean workgroup;
    int storage;
    GError *cause = NULL;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, "inventory.", error))
        return FALSE;
    p = g_new0(CmScnPopulation, 1);
    p->name = g_strdup(g->args[0]);
    p->inventory = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_ptr_array_add(s->populations, p);
    if (!declare(g, ld->populations, "population", p->name, p, error) ||
        !get_count(g, "count", TRUE, &p->count, error) ||
        !get_segment_ref(g, "segment", NULL, &p->segment, error) ||
        !get_bool(g, "workgroup", FALSE, &workgroup, error) ||
        !get_forest_ref(g, "forest", &p->forest, error))
        return FALSE;

    /* Forest and domain: a workgroup has neither; otherwise the forest
     * defaults to the only one, and no forest at all means workgroup. */
    if (workgroup && p->forest != NULL)
        return fail(g, "forest", error,
                    "a workgroup population has no forest; remove forest or "
                    "workgroup = true");
    if (!workgroup && p->forest == NULL) {
        if (s->forests->len == 1)
            p->forest = g_strdup(((CmScnForest *)g_ptr_array_index(s->forests, 0))->name);
        else if (s->forests->len > 1)
            return fail(g, "forest", error,
                        "missing; %u [forest] groups are declared, so name one, or set "
                        "workgroup = true",
                        s->forests->len);
        else
            workgroup = TRUE;
    }
    if (!get_raw(g, "domain", &v, error))
        return FALSE;
    if (workgroup) {
        if (v != NULL && *v != '\0')
            return fail(g, "domain", error, "a workgroup population has no domain");
        p->domain = g_strdup("");
    } else if (v == NULL) {
        p->domain = g_strdup(p->forest);
    } else {
        const char *of = g_hash_table_lookup(ld->domains, v);
        g_autofree char *q = quote(v);
        if (of == NULL || strcmp(of, p->forest) != 0)
            return fail(g, "domain", error, "%s is not a domain of forest %s (see its domains)", q,
                        p->forest);
        p->domain = g_steal_pointer(&v);
    }
    g_clear_pointer(&v, g_free);

    if (!get_raw(g, "site_code", &v, error))
        return FALSE;
    if (v != NULL) {
        char code[4];
        if (!cm_id_site_code_check(v, code, &cause)) {
            fail(g, "site_code", error, "%s", cause->message);
            g_error_free(cause);
            return FALSE;
        }
        if (lookup(g, "site_code", ld->sites, "site", code, error) == NULL)
            return FALSE;
        p->site_code = g_strdup(code);
    }
    g_clear_pointer(&v, g_free);

    {
        const char *names[CM_INSTALL_IMAGE + 1];
        g_autofree char *all = NULL;
        for (int i = 0; i <= CM_INSTALL_IMAGE; i++)
            names[i] = cm_install_method_name((CmInstallMethod)i);
        all = name_list(names, G_N_ELEMENTS(names));
        if (!get_raw(g, "install", &v, error))
            return FALSE;
        p->install = CM_INSTALL_MANUAL;
        if (v != NULL && !cm_install_method_parse(v, &p->install, NULL)) {
            g_autofree char *q = quote(v);
            return fail(g, "install", error, "expected %s, got %s", all, q);
        }
        g_clear_pointer(&v, g_free);
    }
    /* A push installation carries the TRK and the signing certificate. */
    {
        CmScnTrustSource def =
            p->install == CM_INSTALL_PUSH ? CM_SCN_SOURCE_PUSH : CM_SCN_SOURCE_NONE;
        if (!get_source(g, "trk", def, &p->trk, error) ||
            !get_source(g, "signcert", def, &p->signcert, error))
            return FALSE;
    }
    if ((p->trk == CM_SCN_SOURCE_PUSH || p->signcert == CM_SCN_SOURCE_PUSH) &&
        p->install != CM_INSTALL_PUSH)
        return fail(g, p->trk == CM_SCN_SOURCE_PUSH ? "trk" : "signcert", error,
                    "push needs install = push: only a client push installation carries it");
    if ((p->trk == CM_SCN_SOURCE_DIRECTORY || p->signcert == CM_SCN_SOURCE_DIRECTORY) && workgroup)
        return fail(g, p->trk == CM_SCN_SOURCE_DIRECTORY ? "trk" : "signcert", error,
                    "directory publishing needs a forest, and this population is a workgroup");

    if (!get_enum(g, "key_storage", storage_names, G_N_ELEMENTS(storage_names), 0, &storage, error))
        return FALSE;
    p->tpm_version = 2 - storage;
    if (!get_bool(g, "pki", FALSE, &p->pki, error) ||
        !get_bool(g, "kerberos", !workgroup, &p->kerberos, error) ||
        !get_bool(g, "media", FALSE, &p->media, error) ||
        !get_bool(g, "auto_upgrade", FALSE, &p->auto_upgrade, error))
        return FALSE;
    if (workgroup && p->kerberos)
        return fail(g, "kerberos", error,
                    "a workgroup computer has no domain account to authenticate with");

    if (!get_name(g, "mp", &v, error))
        return FALSE;
    if (v != NULL) {
        if (lookup(g, "mp", ld->mps, "mp", v, error) == NULL)
            return FALSE;
        p->mp = g_steal_pointer(&v);
    }

    if (!get_duration(g, "start", 0, 0, s->duration, &p->start, error) ||
        !get_duration(g, "start_window", 0, 0, MAX_DURATION, &p->start_window, error) ||
        !get_duration(g, "policy_interval", CM_USEC_PER_HOUR, CM_USEC_PER_SEC, MAX_DURATION,
                      &p->policy_interval, error) ||
        !get_duration(g, "inventory_interval", 7 * CM_USEC_PER_DAY, CM_USEC_PER_SEC, MAX_DURATION,
                      &p->inventory_interval, error) ||
        !get_duration(g, "maintenance_start", 0, 0, CM_USEC_PER_DAY - 1, &p->maintenance_start,
                      error) ||
        !get_duration(g, "maintenance_window", 0, 0, CM_USEC_PER_DAY, &p->maintenance_window,
                      error) ||
        !get_duration(g, "client_status_interval", CM_USEC_PER_DAY, 0, MAX_DURATION,
                      &p->client_status_interval, error) ||
        !get_duration(g, "keepalive_interval", 15 * CM_USEC_PER_MIN, 0, MAX_DURATION,
                      &p->keepalive_interval, error) ||
        !get_duration(g, "channel_lifetime", 0, 0, MAX_DURATION, &p->channel_lifetime, error))
        return FALSE;
    /* 0 turns these off; anything else below a second would have every
     * client send without pause. */
    if (p->client_status_interval > 0 && p->client_status_interval < CM_USEC_PER_SEC)
        return fail(g, "client_status_interval", error, "expected 0 (none) or at least 1s");
    if (p->keepalive_interval > 0 && p->keepalive_interval < CM_USEC_PER_SEC)
        return fail(g, "keepalive_interval", error, "expected 0 (no channel) or at least 1s");

    if (!get_raw(g, "key_alg", &v, error))
        return FALSE;
    p->key_alg = CM_KEY_EC_P256;
    if (v != NULL && !cm_key_alg_parse(v, &p->key_alg, NULL)) {
        g_autofree char *q = quote(v);
        return fail(g, "key_alg", error, "expected p256 or rsa2048, got %s", q);
    }
    g_clear_pointer(&v, g_free);

    if (!population_dp(g, p, error) || !population_cmg(g, p, error))
        return FALSE;

    have = group_keys(g);
    for (char **k = have; k != NULL && *k != NULL; k++) {
        const char *prop = *k + strlen("inventory.");
        if (!g_str_has_prefix(*k, "inventory."))
            continue;
        if (!name_ok(prop))
            return fail(g, *k, error, "expected an inventory property name of " NAME_RULE);
        if (!get_raw(g, *k, &v, error))
            return FALSE;
        g_hash_table_insert(p->inventory, g_strdup(prop), g_steal_pointer(&v));
    }
    return TRUE;
}

/* ------------------------------------------------- [content] and [dp] */

/* "2GB", "1.5GiB", "700MB", "4096B": decimal (kB, MB, GB, TB) and binary
 * (KiB, MiB, GiB, TiB) units, whole bytes in the end. */
static gboolean
parse_size(const char *v, guint64 *out)
{
    static const struct {
        const char *unit;
        double bytes;
    } units[] = {{"B", 1},         {"kB", 1e3},          {"KB", 1e3},
                 {"MB", 1e6},      {"GB", 1e9},          {"TB", 1e12},
                 {"KiB", 1024.0},  {"MiB", 1048576.0},   {"GiB", 1073741824.0},
                 {"TiB", 1099511627776.0}};
    double n;
    const char *p = scan_number(v, FALSE, &n);

    if (p == NULL)
        return FALSE;
    while (g_ascii_isspace(*p))
        p++;
    for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            double b = n * units[i].bytes;
            if (!(b >= 1 && b <= (double)CM_SCN_CONTENT_MAX) || b != floor(b))
                return FALSE;
            *out = (guint64)b;
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean
parse_content(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"size", "files", NULL};
    CmScnContent *c;
    g_autofree char *v = NULL, *q = NULL;
    guint64 files;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    if (strlen(g->args[0]) > CM_SCN_CONTENT_ID_MAX)
        return fail(g, NULL, error, "a content ID has at most %d characters",
                    CM_SCN_CONTENT_ID_MAX);
    c = g_new0(CmScnContent, 1);
    c->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->contents, c);
    if (!declare(g, ld->contents, "content", c->name, c, error))
        return FALSE;
    if (!get_raw(g, "size", &v, error))
        return FALSE;
    if (v == NULL)
        return fail(g, "size", error, "missing; expected the package size, such as 2GB");
    if (!parse_size(v, &c->size)) {
        q = quote(v);
        return fail(g, "size", error,
                    "expected a whole number of bytes from 1B to 8TiB, such as 700MB, 2GB or "
                    "1.5GiB (units B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), got %s",
                    q);
    }
    if (!get_uint(g, "files", 1, 1, CM_SCN_CONTENT_FILES_MAX, &files, error))
        return FALSE;
    c->files = (guint)files;
    return TRUE;
}

/* "22-06": from 22:00 to 06:00; "0-24" is all day. */
static gboolean
parse_hours(const char *v, guint *start, guint *end)
{
    guint64 a, b;
    g_auto(GStrv) parts = g_strsplit(v, "-", -1);

    if (g_strv_length(parts) != 2)
        return FALSE;
    g_strstrip(parts[0]);
    g_strstrip(parts[1]);
    if (!parse_uint(parts[0], &a) || !parse_uint(parts[1], &b) || a > 23 || b > 24 ||
        (a == b) || (b == 24 && a != 0))
        return FALSE;
    *start = (guint)a;
    *end = (guint)(b % 24);
    return TRUE;
}

static gboolean
parse_dp(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"site",  "segment",  "prestaged", "prestaged_content",
                                       "rate_limit", "hours", "tampered", NULL};
    CmScnDp *dp;
    CmScnSite *site;
    g_autofree char *v = NULL, *q = NULL;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    dp = g_new0(CmScnDp, 1);
    dp->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->dps, dp);
    if (!declare(g, ld->dps, "dp", dp->name, dp, error))
        return FALSE;
    if (!get_site_ref(g, "site", &site, error))
        return FALSE;
    dp->site = g_strdup(site->code);
    if (!get_segment_ref(g, "segment", site->segment, &dp->segment, error) ||
        !get_bool(g, "prestaged", FALSE, &dp->prestaged, error) ||
        !get_bool(g, "tampered", FALSE, &dp->tampered, error))
        return FALSE;
    if (!get_list(g, "prestaged_content", &dp->prestaged_content, error))
        return FALSE;
    if (dp->prestaged_content[0] != NULL && !dp->prestaged)
        return fail(g, "prestaged_content", error,
                    "only a prestaged DP takes content placed by hand; set prestaged = true");
    for (char **c = dp->prestaged_content; *c != NULL; c++)
        if (lookup(g, "prestaged_content", ld->contents, "content", *c, error) == NULL)
            return FALSE;
    if (!get_raw(g, "rate_limit", &v, error))
        return FALSE;
    if (v != NULL && strcmp(v, "none") != 0 && !parse_bandwidth(v, &dp->rate_limit_bps)) {
        q = quote(v);
        return fail(g, "rate_limit", error,
                    "expected none or a bandwidth above 0 such as 10Mbps (units bps, kbps, Mbps, "
                    "Gbps, Tbps), got %s",
                    q);
    }
    if (dp->rate_limit_bps > 0 && dp->rate_limit_bps < 8)
        return fail(g, "rate_limit", error, "below one byte a second; expected at least 8bps");
    g_clear_pointer(&v, g_free);
    dp->hours_start = 0;
    dp->hours_end = 0;
    if (!get_raw(g, "hours", &v, error))
        return FALSE;
    if (v != NULL && !parse_hours(v, &dp->hours_start, &dp->hours_end)) {
        g_clear_pointer(&q, g_free);
        q = quote(v);
        return fail(g, "hours", error,
                    "expected the hours transfers may run, START-END in whole hours of the day "
                    "(END exclusive, wrapping midnight), such as 22-06, or 0-24 for all day; got %s",
                    q);
    }
    return TRUE;
}

/* The distribute event: a declared [content] to DPs of the event's site. */
static gboolean
parse_distribute(const Group *g, CmScnEvent *ev, GError **error)
{
    Loader *ld = g->ld;
    guint n = 0;

    if (!get_name(g, "content", &ev->content, error))
        return FALSE;
    if (ev->content == NULL)
        return fail(g, "content", error, "missing; expected the name of a [content]");
    if (lookup(g, "content", ld->contents, "content", ev->content, error) == NULL)
        return FALSE;
    if (has_key(g, "dps")) {
        if (!get_list(g, "dps", &ev->dps, error))
            return FALSE;
        if (ev->dps[0] == NULL)
            return fail(g, "dps", error, "empty; expected the names of [dp] groups");
    }
    for (char **d = ev->dps; d != NULL && *d != NULL; d++) {
        CmScnDp *dp = lookup(g, "dps", ld->dps, "dp", *d, error);
        if (dp == NULL)
            return FALSE;
        if (strcmp(dp->site, ev->site) != 0)
            return fail(g, "dps", error, "%s belongs to site %s; site %s distributes to its own DPs",
                        *d, dp->site, ev->site);
    }
    for (guint i = 0; i < ld->s->dps->len; i++)
        n += strcmp(((CmScnDp *)g_ptr_array_index(ld->s->dps, i))->site, ev->site) == 0;
    if (n == 0)
        return fail(g, "content", error, "site %s has no [dp] to distribute to", ev->site);
    return TRUE;
}

/* ------------------------------------------------------ [push_account] */

/* A client push account and its scope: domains (each a declared domain,
 * with its children) or "all", every domain and workgroup computers. */
static gboolean
parse_push_account(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {"site", "domains", NULL};
    CmScnPushAccount *a;
    CmScnSite *site;
    g_auto(GStrv) domains = NULL;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    if (strlen(g->args[0]) > 128)
        return fail(g, NULL, error, "a push account name has at most 128 characters");
    a = g_new0(CmScnPushAccount, 1);
    a->name = g_strdup(g->args[0]);
    g_ptr_array_add(ld->s->push_accounts, a);
    if (!declare(g, ld->push_accounts, "push_account", a->name, a, error))
        return FALSE;
    if (!get_site_ref(g, "site", &site, error))
        return FALSE;
    a->site = g_strdup(site->code);
    if (!get_list(g, "domains", &domains, error))
        return FALSE;
    if (domains[0] == NULL)
        return fail(g, "domains", error,
                    "missing; expected the domains it has local admin in, or all");
    if (g_strv_length(domains) == 1 && strcmp(domains[0], "all") == 0)
        return TRUE; /* NULL: everything */
    for (char **d = domains; *d != NULL; d++)
        if (strcmp(*d, "all") == 0)
            return fail(g, "domains", error, "all stands alone; expected all or a list of domains");
        else if (lookup(g, "domains", ld->domains, "forest or domain", *d, error) == NULL)
            return FALSE;
    a->domains = g_steal_pointer(&domains);
    return TRUE;
}

/* ------------------------------------------------------------ [event] */

typedef enum {
    TGT_NONE,
    TGT_POPULATION,
    TGT_MP,
    TGT_FOREST,
    TGT_SITE,
    TGT_CP,
} TargetKind;

static const char *const target_kinds[] = {[TGT_NONE] = "nothing", [TGT_POPULATION] = "population",
                                           [TGT_MP] = "mp",        [TGT_FOREST] = "forest",
                                           [TGT_SITE] = "site",    [TGT_CP] = "connection_point"};

/* What each action reads beyond at and action. */
static const struct {
    TargetKind target;
    gboolean at_site; /* acts at a site: site names it, default the only site */
    const char *const keys[6];
} action_specs[] = {
    [CM_SCN_ACT_UPGRADE_CLIENT] = {TGT_POPULATION, FALSE, {"target", "fraction", "randomize_over"}},
    [CM_SCN_ACT_BLOCK] = {TGT_POPULATION, FALSE, {"target", "fraction"}},
    [CM_SCN_ACT_UNBLOCK] = {TGT_POPULATION, FALSE, {"target", "fraction"}},
    [CM_SCN_ACT_APPROVE] = {TGT_POPULATION, FALSE, {"target", "fraction"}},
    [CM_SCN_ACT_REVOKE] = {TGT_POPULATION, FALSE, {"target", "fraction"}},
    [CM_SCN_ACT_PUBLISH] = {TGT_FOREST, TRUE, {"target", "site"}},
    [CM_SCN_ACT_DEPLOY] = {TGT_NONE, TRUE, {"site", "collection", "required", "max_runtime",
                                            "content"}},
    [CM_SCN_ACT_CREATE_COLLECTION] = {TGT_NONE, TRUE, {"site", "collection", "rules"}},
    [CM_SCN_ACT_TAKE_OVER_MP] = {TGT_MP, FALSE, {"target"}},
    [CM_SCN_ACT_SET] = {TGT_NONE, TRUE, {"site", "settings"}},
    [CM_SCN_ACT_MAINTENANCE] = {TGT_NONE, TRUE, {"site"}},
    [CM_SCN_ACT_LINK_DOWN] = {TGT_SITE, FALSE, {"target"}},
    [CM_SCN_ACT_LINK_UP] = {TGT_SITE, FALSE, {"target"}},
    [CM_SCN_ACT_DISTRIBUTE] = {TGT_NONE, TRUE, {"site", "content", "dps"}},
    [CM_SCN_ACT_FAIL_CP] = {TGT_CP, FALSE, {"target"}},
    [CM_SCN_ACT_RECOVER_CP] = {TGT_CP, FALSE, {"target"}},
};

/* Collection names may hold spaces ("All Systems"), not commas. */
static gboolean
collection_name_ok(const char *v)
{
    size_t n = strlen(v);
    return n > 0 && n <= MAX_NAME && strchr(v, ',') == NULL;
}

static char *
collection_key(const char *site, const char *name)
{
    return g_strconcat(site, "\n", name, NULL);
}

static gboolean
get_target(const Group *g, TargetKind kind, char **out, GError **error)
{
    Loader *ld = g->ld;
    g_autofree char *v = NULL;
    GHashTable *table = kind == TGT_POPULATION ? ld->populations
                        : kind == TGT_MP       ? ld->mps
                        : kind == TGT_SITE     ? ld->sites
                        : kind == TGT_CP       ? ld->cps
                                               : ld->forests;

    if (!get_name(g, "target", &v, error))
        return FALSE;
    if (v == NULL)
        return fail(g, "target", error, "missing; expected the name of a [%s]", target_kinds[kind]);
    if (kind == TGT_SITE) {
        GError *cause = NULL;
        char code[4];
        if (!cm_id_site_code_check(v, code, &cause)) {
            fail(g, "target", error, "%s", cause->message);
            g_error_free(cause);
            return FALSE;
        }
        g_free(v);
        v = g_strdup(code);
    }
    if (lookup(g, "target", table, target_kinds[kind], v, error) == NULL)
        return FALSE;
    *out = g_steal_pointer(&v);
    return TRUE;
}

static gboolean
parse_settings_list(const Group *g, CmScnEvent *ev, GError **error)
{
    g_auto(GStrv) items = NULL;
    CmSiteSettings scratch;
    GPtrArray *norm = g_ptr_array_new_with_free_func(g_free);
    gboolean ok = FALSE;

    cm_site_settings_default(&scratch);
    if (!get_list(g, "settings", &items, error))
        goto out;
    if (items[0] == NULL) {
        fail(g, "settings", error, "missing; expected KEY = VALUE, ... of site settings");
        goto out;
    }
    for (char **it = items; *it != NULL; it++) {
        g_autofree char *key = NULL, *why = NULL, *q = NULL;
        const char *eq = strchr(*it, '=');
        const char *val;
        int r;

        q = quote(*it);
        if (eq == NULL) {
            fail(g, "settings", error, "expected KEY = VALUE, got %s", q);
            goto out;
        }
        key = g_strstrip(g_strndup(*it, (gsize)(eq - *it)));
        val = eq + 1;
        while (g_ascii_isspace(*val))
            val++;
        r = setting_apply(&scratch, key, val, &why);
        if (r < 0) {
            g_autofree char *all = name_list(setting_keys, g_strv_length((char **)setting_keys));
            fail(g, "settings", error, "%s is no site setting; expected %s", q, all);
            goto out;
        }
        if (r == 0) {
            fail(g, "settings", error, "%s: %s", key, why);
            goto out;
        }
        g_ptr_array_add(norm, g_strdup_printf("%s=%s", key, val));
    }
    g_ptr_array_add(norm, NULL);
    ev->settings = (char **)g_ptr_array_free(g_steal_pointer(&norm), FALSE);
    ok = TRUE;
out:
    if (norm != NULL)
        g_ptr_array_unref(norm);
    return ok;
}

static gboolean
parse_rules(const Group *g, CmScnEvent *ev, GError **error)
{
    if (!get_list(g, "rules", &ev->rules, error))
        return FALSE;
    if (ev->rules[0] == NULL)
        return fail(g, "rules", error,
                    "missing; expected rules such as inventory.os.caption = Windows 11");
    for (char **r = ev->rules; *r != NULL; r++) {
        CmRuleSource src;
        CmRuleOp op;
        char *prop = NULL, *val = NULL;
        GError *cause = NULL;
        if (!cm_rule_parse(*r, &src, &prop, &op, &val, &cause)) {
            fail(g, "rules", error, "%s", cause->message);
            g_error_free(cause);
            return FALSE;
        }
        g_free(prop);
        g_free(val);
    }
    return TRUE;
}

static gboolean
parse_event(Loader *ld, const Group *g, GError **error)
{
    static const char *const keys[] = {
        "at",         "action",   "target",      "site",  "randomize_over", "fraction",
        "collection", "required", "max_runtime", "rules", "settings",       "content",
        "dps",        NULL};
    CmScnEvent *ev;
    int action;
    g_auto(GStrv) have = NULL;

    if (!check_name_arg(g, g->args[0], error) || !check_keys(g, keys, NULL, error))
        return FALSE;
    ev = g_new0(CmScnEvent, 1);
    ev->name = g_strdup(g->args[0]);
    ev->fraction = 1.0;
    g_ptr_array_add(ld->s->events, ev);
    if (!declare(g, ld->events, "event", ev->name, ev, error))
        return FALSE;
    if (!has_key(g, "at"))
        return fail(g, "at", error, "missing; expected when it happens, such as 1h");
    if (!get_duration(g, "at", 0, 0, ld->s->duration, &ev->at, error))
        return FALSE;
    if (!has_key(g, "action")) {
        g_autofree char *all = name_list(action_names, G_N_ELEMENTS(action_names));
        return fail(g, "action", error, "missing; expected %s", all);
    }
    if (!get_enum(g, "action", action_names, G_N_ELEMENTS(action_names), 0, &action, error))
        return FALSE;
    ev->action = (CmScnAction)action;

    /* A key the action does not read would silently do nothing. */
    have = group_keys(g);
    for (char **k = have; *k != NULL; k++) {
        const char *const *takes = action_specs[action].keys;
        if (strcmp(*k, "at") == 0 || strcmp(*k, "action") == 0 || g_strv_contains(takes, *k))
            continue;
        {
            g_autofree char *all = name_list(takes, g_strv_length((char **)takes));
            return fail(g, *k, error, "not used by action %s%s%s", action_names[action],
                        *all ? "; it takes " : "", all);
        }
    }

    if (action_specs[action].target != TGT_NONE &&
        !get_target(g, action_specs[action].target, &ev->target, error))
        return FALSE;
    if (action_specs[action].at_site) {
        CmScnSite *site;
        if (!get_site_ref(g, "site", &site, error))
            return FALSE;
        ev->site = g_strdup(site->code);
    }
    if (!get_double(g, "fraction", 1.0, 0, TRUE, 1.0, &ev->fraction, error) ||
        !get_duration(g, "randomize_over", 0, 0, MAX_DURATION, &ev->randomize_over, error) ||
        !get_bool(g, "required", TRUE, &ev->required, error) ||
        !get_duration(g, "max_runtime", 0, 0, MAX_DURATION, &ev->max_runtime, error))
        return FALSE;

    /* revoke on a population without PKI is allowed: with pki as a
     * variant, the same timeline serves both sides and does nothing there. */
    switch (ev->action) {
    case CM_SCN_ACT_DEPLOY:
    case CM_SCN_ACT_CREATE_COLLECTION: {
        g_autofree char *q = NULL;
        if (!get_raw(g, "collection", &ev->collection, error))
            return FALSE;
        if (ev->action == CM_SCN_ACT_DEPLOY &&
            (!get_name(g, "content", &ev->content, error) ||
             (ev->content != NULL &&
              lookup(g, "content", ld->contents, "content", ev->content, error) == NULL)))
            return FALSE;
        if (ev->collection == NULL && ev->action == CM_SCN_ACT_DEPLOY)
            return fail(g, "collection", error,
                        "missing; expected \"" ALL_SYSTEMS "\" or a collection that a "
                        "create-collection event makes");
        if (ev->collection == NULL)
            ev->collection = g_strdup(ev->name);
        if (!collection_name_ok(ev->collection)) {
            q = quote(ev->collection);
            return fail(g, "collection", error,
                        "expected a collection name of 1 to 255 characters without commas, got %s",
                        q);
        }
        if (ev->action == CM_SCN_ACT_CREATE_COLLECTION) {
            g_autofree char *k = collection_key(ev->site, ev->collection);
            if (strcmp(ev->collection, ALL_SYSTEMS) == 0 ||
                g_hash_table_contains(ld->collections, k))
                return fail(g, "collection", error, "site %s already has a collection named %s",
                            ev->site, ev->collection);
            g_hash_table_insert(ld->collections, g_steal_pointer(&k), ev);
            g_hash_table_insert(ld->collection_names, g_strdup(ev->collection), ev);
            if (!parse_rules(g, ev, error))
                return FALSE;
        }
        break;
    }
    case CM_SCN_ACT_SET:
        if (!parse_settings_list(g, ev, error))
            return FALSE;
        break;
    case CM_SCN_ACT_DISTRIBUTE:
        if (!parse_distribute(g, ev, error))
            return FALSE;
        break;
    default:
        break;
    }
    return TRUE;
}

static gint
event_cmp(gconstpointer a, gconstpointer b)
{
    const CmScnEvent *x = *(const CmScnEvent *const *)a, *y = *(const CmScnEvent *const *)b;
    return x->at < y->at ? -1 : x->at > y->at ? 1 : 0;
}

/* Sorts the timeline (g_ptr_array_sort is stable: events at the same time
 * keep the file's order) and checks each deployment against the
 * collections that exist when it happens. */
static gboolean
events_finish(Loader *ld, GError **error)
{
    g_autoptr(GHashTable) made = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    g_ptr_array_sort(ld->s->events, event_cmp);
    for (guint i = 0; i < ld->s->events->len; i++) {
        CmScnEvent *ev = g_ptr_array_index(ld->s->events, i);
        g_autofree char *k = NULL, *title = NULL;
        Group g = {.ld = ld, .kind = G_EVENT};

        if (ev->collection == NULL)
            continue;
        k = collection_key(ev->site, ev->collection);
        if (ev->action == CM_SCN_ACT_CREATE_COLLECTION) {
            g_hash_table_add(made, g_steal_pointer(&k));
            continue;
        }
        if (strcmp(ev->collection, ALL_SYSTEMS) == 0 || g_hash_table_contains(made, k))
            continue;
        title = g_strdup_printf("event %s", ev->name);
        g.title = title;
        if (g_hash_table_contains(ld->collections, k))
            return fail(&g, "collection", error,
                        "collection %s is created only after this event; create it earlier",
                        ev->collection);
        return fail(&g, "collection", error,
                    "no create-collection event makes collection %s at site %s; expected one, "
                    "or \"" ALL_SYSTEMS "\"",
                    ev->collection, ev->site);
    }
    return TRUE;
}

/* ------------------------------------------------------------ [attacker] */

typedef enum {
    MP_NONE,   /* its devices are clients of their population's MP, or of none */
    MP_OWN,    /* the host name of its own, rogue MP: a new name */
    MP_NEEDED, /* the declared MP it abuses: defaults to the only one */
} MpUse;

/* What each strategy reads.  sim/attack.c is the consumer: these follow
 * what it does with target, mp and its parameters. */
static const struct {
    gboolean target; /* target names a population */
    gboolean target_required;
    MpUse mp;
    gboolean rate_required;
} strategy_specs[] = {
    [CM_SCN_ATK_ROGUE_MP] = {TRUE, TRUE, MP_OWN, FALSE},
    [CM_SCN_ATK_COMPROMISED_MP] = {TRUE, FALSE, MP_NEEDED, FALSE},
    [CM_SCN_ATK_STATUS_FLOOD] = {FALSE, FALSE, MP_NEEDED, TRUE},
    [CM_SCN_ATK_BOGUS_STATUS] = {TRUE, TRUE, MP_NEEDED, FALSE},
    [CM_SCN_ATK_FALSE_INVENTORY] = {TRUE, TRUE, MP_NONE, FALSE},
    [CM_SCN_ATK_BLOCKED_REJOIN] = {TRUE, TRUE, MP_NONE, FALSE},
    [CM_SCN_ATK_CLONED_IMAGE] = {TRUE, TRUE, MP_NONE, FALSE},
    [CM_SCN_ATK_ENROLLMENT_FLOOD] = {FALSE, FALSE, MP_NONE, TRUE},
    [CM_SCN_ATK_POLICY_REPLAY] = {TRUE, FALSE, MP_NEEDED, FALSE},
    [CM_SCN_ATK_ROGUE_UPGRADE] = {TRUE, FALSE, MP_OWN, FALSE},
    [CM_SCN_ATK_MOBILE_ENROLLMENT] = {TRUE, TRUE, MP_NONE, FALSE},
    [CM_SCN_ATK_LOG_WIPE] = {TRUE, TRUE, MP_NONE, FALSE},
    [CM_SCN_ATK_STOLEN_PUSH_ACCOUNT] = {FALSE, FALSE, MP_NONE, FALSE},
    [CM_SCN_ATK_PUSH_RELAY] = {FALSE, FALSE, MP_NONE, FALSE},
};

/* Whether any site has or will have a collection of that name. */
static gboolean
collection_known(Loader *ld, const char *name)
{
    return strcmp(name, ALL_SYSTEMS) == 0 || g_hash_table_contains(ld->collection_names, name);
}

static gboolean
attacker_mp(const Group *g, CmScnAttacker *a, GError **error)
{
    Loader *ld = g->ld;
    const char *what = strategy_names[a->strategy];
    g_autofree char *v = NULL;

    if (!get_name(g, "mp", &v, error))
        return FALSE;
    switch (strategy_specs[a->strategy].mp) {
    case MP_NONE:
        if (v != NULL)
            return fail(g, "mp", error,
                        "not used by strategy %s (its devices use their population's MP)", what);
        return TRUE;
    case MP_OWN:
        if (v == NULL)
            return fail(g, "mp", error,
                        "missing; %s needs the host name of its own MP, such as "
                        "evil.corp.example",
                        what);
        if (g_hash_table_contains(ld->mps, v))
            return fail(g, "mp", error,
                        "%s is a declared [mp]; name the rogue MP with a host name of its own", v);
        break;
    case MP_NEEDED:
        if (v == NULL) {
            CmScnMp *mp = only_one(g, "mp", ld->s->mps, "mp", error);
            if (mp == NULL)
                return FALSE;
            v = g_strdup(mp->name);
        } else if (lookup(g, "mp", ld->mps, "mp", v, error) == NULL) {
            return FALSE;
        }
        break;
    }
    a->mp = g_steal_pointer(&v);
    return TRUE;
}

/* The parameters the simulator reads that name something. */
/* The parameters of log-wipe, stolen-push-account and push-relay, checked
 * here so that a bad one stops the file before anything runs. */
static gboolean
strategy_params(const Group *g, CmScnAttacker *a, GError **error)
{
    static const char *const acls[] = {"users-write", "admins-only"};
    const char *v;
    g_autofree char *q = NULL;

    switch (a->strategy) {
    case CM_SCN_ATK_LOG_WIPE: {
        double f;
        const char *end;
        if ((v = g_hash_table_lookup(a->params, "fraction")) != NULL &&
            ((end = scan_number(v, FALSE, &f)) == NULL || *end != '\0' || f <= 0 || f > 1)) {
            q = quote(v);
            return fail(g, "fraction", error, "expected a number above 0, at most 1, got %s", q);
        }
        if ((v = g_hash_table_lookup(a->params, "log_acl")) != NULL &&
            enum_match(acls, G_N_ELEMENTS(acls), v) < 0) {
            q = quote(v);
            return fail(g, "log_acl", error, "expected users-write or admins-only, got %s", q);
        }
        if (g_hash_table_lookup(a->params, "collection") == NULL)
            return fail(g, "collection", error,
                        "missing; log-wipe needs the collection of the status messages that show "
                        "the clients' activity at the site");
        break;
    }
    case CM_SCN_ATK_STOLEN_PUSH_ACCOUNT:
        if ((v = g_hash_table_lookup(a->params, "account")) == NULL)
            return fail(g, "account", error, "missing; expected the [push_account] stolen");
        if (lookup(g, "account", g->ld->push_accounts, "push_account", v, error) == NULL)
            return FALSE;
        break;
    case CM_SCN_ATK_PUSH_RELAY:
        if ((v = g_hash_table_lookup(a->params, "domain")) != NULL &&
            lookup(g, "domain", g->ld->domains, "forest or domain", v, error) == NULL)
            return FALSE;
        if (g->ld->s->push_accounts->len == 0)
            return fail(g, "strategy", error,
                        "push-relay waits for the site to push to it; declare a [push_account]");
        break;
    default:
        break;
    }
    return TRUE;
}

static gboolean
attacker_params(const Group *g, CmScnAttacker *a, GError **error)
{
    const char *coll = g_hash_table_lookup(a->params, "collection");
    const char *dep = g_hash_table_lookup(a->params, "deployment");

    if (coll != NULL && !collection_known(g->ld, coll)) {
        g_autofree char *q = quote(coll);
        return fail(g, "collection", error,
                    "no create-collection event makes collection %s; expected one, or "
                    "\"" ALL_SYSTEMS "\"",
                    q);
    }
    if (!strategy_params(g, a, error))
        return FALSE;
    if (dep != NULL) {
        CmScnEvent *ev = g_hash_table_lookup(g->ld->events, dep);
        if (ev == NULL || ev->action != CM_SCN_ACT_DEPLOY) {
            g_autofree char *q = quote(dep);
            return fail(g, "deployment", error, "expected the name of a deploy [event], got %s", q);
        }
    }
    return TRUE;
}

static gboolean
parse_attacker(Loader *ld, const Group *g, GError **error)
{
    static const char *const known[] = {"strategy", "start", "stop", "segment", "target",
                                        "count",    "rate",  "mp",   NULL};
    CmScnAttacker *a;
    int strategy;
    g_auto(GStrv) have = NULL;
    g_autofree char *v = NULL;

    if (!check_name_arg(g, g->args[0], error))
        return FALSE;
    a = g_new0(CmScnAttacker, 1);
    a->name = g_strdup(g->args[0]);
    a->params = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_ptr_array_add(ld->s->attackers, a);
    if (!declare(g, ld->attackers, "attacker", a->name, a, error))
        return FALSE;
    if (!has_key(g, "strategy")) {
        g_autofree char *all = name_list(strategy_names, G_N_ELEMENTS(strategy_names));
        return fail(g, "strategy", error, "missing; expected %s", all);
    }
    if (!get_enum(g, "strategy", strategy_names, G_N_ELEMENTS(strategy_names), 0, &strategy, error))
        return FALSE;
    a->strategy = (CmScnStrategy)strategy;

    if (!get_duration(g, "start", 0, 0, ld->s->duration, &a->start, error) ||
        !get_duration(g, "stop", 0, 0, ld->s->duration, &a->stop, error))
        return FALSE;
    if (a->stop != 0 && a->stop <= a->start)
        return fail(g, "stop", error, "expected a time after start, or 0 for the end of the run");
    if (!get_segment_ref(g, "segment", NULL, &a->segment, error) ||
        !get_count(g, "count", FALSE, &a->count, error))
        return FALSE;
    if (strategy_specs[strategy].rate_required && !has_key(g, "rate"))
        return fail(g, "rate", error, "missing; %s needs messages per second, such as 100",
                    strategy_names[strategy]);
    if (!get_double(g, "rate", 0, 0, FALSE, MAX_RATE, &a->rate, error))
        return FALSE;
    if (strategy_specs[strategy].rate_required && a->rate <= 0)
        return fail(g, "rate", error, "expected a rate above 0 for %s", strategy_names[strategy]);

    /* target: a population, where the strategy has one */
    if (!get_name(g, "target", &v, error))
        return FALSE;
    if (!strategy_specs[strategy].target && v != NULL)
        return fail(g, "target", error, "not used by strategy %s", strategy_names[strategy]);
    if (v == NULL && strategy_specs[strategy].target_required)
        return fail(g, "target", error, "missing; %s needs the [population] it works on",
                    strategy_names[strategy]);
    if (v != NULL && lookup(g, "target", ld->populations, "population", v, error) == NULL)
        return FALSE;
    a->target = g_steal_pointer(&v);
    if (!attacker_mp(g, a, error))
        return FALSE;

    /* Everything else is the strategy's own (docs/scenarios.md). */
    have = group_keys(g);
    for (char **k = have; *k != NULL; k++) {
        if (g_strv_contains(known, *k))
            continue;
        if (!name_ok(*k))
            return fail(g, *k, error, "expected a parameter name of " NAME_RULE);
        if (!get_raw(g, *k, &v, error))
            return FALSE;
        g_hash_table_insert(a->params, g_strdup(*k), g_steal_pointer(&v));
    }
    return attacker_params(g, a, error);
}

/* ------------------------------------------------------------ [expect] */

#define EXPECT_FORM "\"METRIC OP NUMBER [when VARIANT = VALUE]\" with OP one of < <= > >= == !="

static gboolean
parse_expectation(const Group *g, const char *key, const char *text, CmScnExpect *x, GError **error)
{
    const Variants *vars = g->ld->vars;
    g_autofree char *q = quote(text), *metric = NULL;
    const char *p = text, *num_end, *rest;
    double value;
    int op = -1;

    /* METRIC */
    while (*p != '\0' && strchr("<>=!", *p) == NULL)
        p++;
    metric = g_strstrip(g_strndup(text, (gsize)(p - text)));
    if (*p == '\0' || *metric == '\0')
        return fail(g, key, error, "expected " EXPECT_FORM ", got %s", q);
    if (!name_ok(metric))
        return fail(g, key, error, "expected a metric name of " NAME_RULE ", got %s", q);
    /* OP: the two-character operators first */
    for (int i = 0; i < (int)G_N_ELEMENTS(cmp_names); i++) {
        size_t n = strlen(cmp_names[i]);
        if (strncmp(p, cmp_names[i], n) == 0 && (op < 0 || n > strlen(cmp_names[op])))
            op = i;
    }
    if (op < 0)
        return fail(g, key, error, "expected " EXPECT_FORM " (write == for equality), got %s", q);
    p += strlen(cmp_names[op]);
    while (g_ascii_isspace(*p))
        p++;
    /* NUMBER, with a duration unit (compared in seconds) or a percent */
    num_end = scan_number(p, TRUE, &value);
    if (num_end == NULL)
        return fail(g, key, error, "expected a number after %s, got %s", cmp_names[op], q);
    rest = num_end;
    while (*rest != '\0' && !g_ascii_isspace(*rest))
        rest++;
    if (rest > num_end) {
        g_autofree char *suffix = g_strndup(num_end, (gsize)(rest - num_end));
        CmTime unit;
        if (strcmp(suffix, "%") == 0)
            value /= 100;
        else if (duration_unit(suffix, &unit))
            value = value * (double)unit / (double)CM_USEC_PER_SEC;
        else
            return fail(g, key, error,
                        "expected a plain number, a percentage (99.9%%) or a duration (30m, "
                        "compared in seconds) after %s, got %s",
                        cmp_names[op], q);
    }
    while (g_ascii_isspace(*rest))
        rest++;
    x->metric = g_steal_pointer(&metric);
    x->op = (CmCmp)op;
    x->value = value;
    if (*rest == '\0')
        return TRUE;

    /* when VARIANT = VALUE */
    if (!g_str_has_prefix(rest, "when") || !g_ascii_isspace(rest[4]))
        return fail(g, key, error,
                    "expected \"when VARIANT = VALUE\" or nothing after the number, "
                    "got %s",
                    q);
    {
        const char *w = rest + 4, *eq = strchr(w, '=');
        g_autofree char *name = NULL, *val = NULL;
        guint i;
        if (eq == NULL)
            return fail(g, key, error, "expected \"when VARIANT = VALUE\", got %s", q);
        name = g_strstrip(g_strndup(w, (gsize)(eq - w)));
        val = g_strstrip(g_strdup(eq + 1));
        for (i = 0; i < vars->names->len; i++)
            if (strcmp(g_ptr_array_index(vars->names, i), name) == 0)
                break;
        if (i == vars->names->len) {
            g_autofree char *qn = quote(name);
            g_autofree char *all =
                name_list((const char *const *)vars->names->pdata, vars->names->len);
            if (vars->names->len == 0)
                return fail(g, key, error, "when names variant %s, but the file has no [variant]",
                            qn);
            return fail(g, key, error, "when names variant %s, but [variant] declares %s", qn, all);
        }
        {
            char **values = g_ptr_array_index(vars->values, i);
            if (!g_strv_contains((const char *const *)values, val)) {
                g_autofree char *qv = quote(val);
                g_autofree char *all =
                    name_list((const char *const *)values, g_strv_length(values));
                return fail(g, key, error, "variant %s has no value %s; its values are %s", name,
                            qv, all);
            }
        }
        x->when_variant = g_steal_pointer(&name);
        x->when_value = g_steal_pointer(&val);
    }
    return TRUE;
}

static gboolean
parse_expect(Loader *ld, const Group *g, GError **error)
{
    g_auto(GStrv) keys = group_keys(g);

    for (char **k = keys; k != NULL && *k != NULL; k++) {
        CmScnExpect *x;
        g_autofree char *v = NULL;

        if (!name_ok(*k))
            return fail(g, *k, error,
                        "expected NAME = " EXPECT_FORM ", where NAME is " NAME_RULE
                        " (write: completed = registrations.completed_ratio >= 0.999)");
        if (!get_raw(g, *k, &v, error))
            return FALSE;
        x = g_new0(CmScnExpect, 1);
        x->name = g_strdup(*k);
        x->text = g_strdup(v);
        g_ptr_array_add(ld->s->expects, x);
        if (!parse_expectation(g, *k, v, x, error))
            return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------ [costs] */

static gboolean
parse_costs(Loader *ld, const Group *g, GError **error)
{
    g_auto(GStrv) keys = group_keys(g);

    for (char **k = keys; k != NULL && *k != NULL; k++) {
        const char *dot = strchr(*k, '.');
        g_autofree char *role = dot != NULL ? g_strndup(*k, (gsize)(dot - *k)) : NULL;
        CmTime t;

        /* "refusal": what answering a refused request costs (sim/costs.c);
         * cmg.pki, cmg.token, cmg.crl and cp.forward: the CMG's and its
         * connection points' */
        gboolean cmg_key = strcmp(*k, "cmg.pki") == 0 || strcmp(*k, "cmg.token") == 0 ||
                           strcmp(*k, "cmg.crl") == 0 || strcmp(*k, "cp.forward") == 0;

        if (!cmg_key &&
            (role == NULL || (strcmp(role, "site") != 0 && strcmp(role, "mp") != 0) ||
             (cm_ep_from_name(dot + 1) == CM_EP_NONE && strcmp(dot + 1, "refusal") != 0))) {
            const char *eps[CM_EP__COUNT];
            g_autofree char *all = NULL;
            for (int e = 1; e < CM_EP__COUNT; e++)
                eps[e - 1] = cm_ep_name((CmEndpoint)e);
            eps[CM_EP__COUNT - 1] = "refusal";
            all = name_list(eps, CM_EP__COUNT);
            return fail(g, *k, error,
                        "expected a key ROLE.ENDPOINT with ROLE site or mp and "
                        "ENDPOINT one of %s; or cmg.pki, cmg.token, cmg.crl, cp.forward",
                        all);
        }
        if (!get_duration(g, *k, 0, 0, MAX_COST, &t, error))
            return FALSE;
        {
            CmTime *cost = g_new(CmTime, 1);
            *cost = t;
            g_hash_table_insert(ld->s->costs, g_strdup(*k), cost);
        }
    }
    return TRUE;
}

/* ------------------------------------------------------------ the whole file */

/* Classifies a group title; args (new) are the names after the word. */
static gboolean
classify(Loader *ld, const char *title, GroupKind *kind, char ***args, GError **error)
{
    g_auto(GStrv) words = g_strsplit_set(title, " \t", -1);
    GPtrArray *w = g_ptr_array_new();
    Group g = {.ld = ld, .title = title};
    int k;

    for (char **p = words; *p != NULL; p++)
        if (**p != '\0')
            g_ptr_array_add(w, *p);
    for (k = 0; k < G__COUNT; k++)
        if (w->len > 0 && strcmp(g_ptr_array_index(w, 0), group_kinds[k].word) == 0)
            break;
    if (k == G__COUNT) {
        const char *all[G__COUNT];
        g_autofree char *list = NULL;
        for (int i = 0; i < G__COUNT; i++)
            all[i] = group_kinds[i].word;
        list = name_list(all, G__COUNT);
        g_ptr_array_unref(w);
        return fail(&g, NULL, error, "unknown group; expected %s", list);
    }
    if ((int)w->len - 1 != group_kinds[k].args) {
        g_ptr_array_unref(w);
        return fail(&g, NULL, error, "expected %s", group_kinds[k].form);
    }
    *kind = (GroupKind)k;
    *args = g_new0(char *, w->len);
    for (guint i = 1; i < w->len; i++)
        (*args)[i - 1] = g_strdup(g_ptr_array_index(w, i));
    g_ptr_array_unref(w);
    return TRUE;
}

/* What GLib would merge or hide: a group written twice (it merges them), a
 * key set twice (the last wins) and keys with a [locale] suffix (not
 * listed).  GLib has parsed the text already, so the lines are well
 * formed: groups, key = value lines, comments and blank lines. */
static gboolean
scan_lines(const Loader *ld, const char *data, gsize len, GError **error)
{
    g_autoptr(GHashTable) groups =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
    GHashTable *keys = NULL;
    g_autofree char *title = NULL;
    const char *p = data, *end = data + len;
    guint line = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        g_autofree char *text = NULL;
        Group g = {.ld = (Loader *)ld};

        line++;
        while (p < e && g_ascii_isspace(*p))
            p++;
        if (e > p && e[-1] == '\r')
            e--;
        text = g_strndup(p, (gsize)(e - p));
        p = nl != NULL ? nl + 1 : end;
        if (*text == '\0' || *text == '#')
            continue;
        if (*text == '[') {
            char *bracket = strrchr(text, ']');
            g_free(title);
            title = g_strndup(text + 1, bracket != NULL ? (gsize)(bracket - text - 1) : 0);
            keys = g_hash_table_lookup(groups, title);
            g.title = title;
            if (keys != NULL)
                return fail(&g, NULL, error, "the group appears twice (again on line %u)", line);
            keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            g_hash_table_insert(groups, g_strdup(title), keys);
            continue;
        }
        if (keys != NULL) {
            char *eq = strchr(text, '=');
            g.title = title;
            if (eq == NULL)
                continue;
            *eq = '\0';
            g_strchomp(text);
            if (strchr(text, '[') != NULL)
                return fail(&g, text, error,
                            "a key with a [locale] suffix (line %u); scenario keys have none",
                            line);
            if (g_hash_table_contains(keys, text))
                return fail(&g, text, error, "set twice (again on line %u)", line);
            g_hash_table_add(keys, g_strdup(text));
        }
    }
    return TRUE;
}

static void
variants_clear(Variants *v)
{
    g_clear_pointer(&v->names, g_ptr_array_unref);
    g_clear_pointer(&v->values, g_ptr_array_unref);
}

/* Reads [variant]: each key a dimension, each value a comma list. */
static gboolean
variants_read(Loader *ld, const char *title, Variants *vars, GError **error)
{
    g_auto(GStrv) keys = NULL;
    Group g = {.ld = ld, .title = title, .kind = G_VARIANT};
    guint64 product = 1;
    GString *dims = g_string_new(NULL);
    gboolean ok = FALSE;

    vars->names = g_ptr_array_new_with_free_func(g_free);
    vars->values = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    vars->combinations = 1;
    if (title == NULL) {
        ok = TRUE;
        goto out;
    }
    keys = g_key_file_get_keys(ld->kf, title, NULL, NULL);
    for (char **k = keys; k != NULL && *k != NULL; k++) {
        char **values = NULL;
        if (!name_ok(*k)) {
            fail(&g, *k, error, "expected a variant name of " NAME_RULE);
            goto out;
        }
        if (!get_list(&g, *k, &values, error))
            goto out;
        g_ptr_array_add(vars->names, g_strdup(*k));
        g_ptr_array_add(vars->values, values);
        if (values[0] == NULL) {
            fail(&g, *k, error, "expected one or more values separated by commas");
            goto out;
        }
        for (char **v = values; *v != NULL; v++) {
            g_autofree char *q = quote(*v);
            /* Substituted as written into other values: keep them plain. */
            if (strlen(*v) > MAX_NAME || strchr(*v, '\\') != NULL || strstr(*v, "${") != NULL) {
                fail(&g, *k, error,
                     "expected values of at most 255 characters without \\ or ${, got %s", q);
                goto out;
            }
            for (char **w = values; w < v; w++) {
                if (strcmp(*w, *v) == 0) {
                    fail(&g, *k, error, "the value %s is listed twice", q);
                    goto out;
                }
            }
        }
        product = MIN(product * g_strv_length(values), G_GUINT64_CONSTANT(1) << 40);
        g_string_append_printf(dims, "%s%s (%u)", dims->len ? " x " : "", *k,
                               g_strv_length(values));
    }
    if (product > CM_SCENARIO_MAX_VARIANTS) {
        fail(&g, NULL, error, "too many combinations: %s = %" G_GUINT64_FORMAT ", at most %d",
             dims->str, product, CM_SCENARIO_MAX_VARIANTS);
        goto out;
    }
    vars->combinations = (guint)product;
    ok = TRUE;
out:
    g_string_free(dims, TRUE);
    return ok;
}

/* Substitutes ${variant.NAME} in a raw value; pick[i] is the value index of
 * variant i, or NULL to check the references only.  Returns a new string,
 * or NULL with an error naming the group and key. */
static char *
substitute(const Group *g, const char *key, const char *raw, const Variants *vars,
           const guint *pick, GError **error)
{
    GString *out = g_string_new(NULL);
    const char *p = raw;

    for (;;) {
        const char *ref = strstr(p, "${"), *brace, *name;
        guint i;

        if (ref == NULL) {
            g_string_append(out, p);
            break;
        }
        g_string_append_len(out, p, ref - p);
        brace = strchr(ref, '}');
        if (!g_str_has_prefix(ref, "${variant.") || brace == NULL) {
            fail(g, key, error,
                 "expected ${variant.NAME} after ${ (\"${\" starts a variant "
                 "reference)");
            goto bad;
        }
        name = ref + strlen("${variant.");
        for (i = 0; i < vars->names->len; i++) {
            const char *n = g_ptr_array_index(vars->names, i);
            if (strlen(n) == (size_t)(brace - name) && strncmp(n, name, strlen(n)) == 0)
                break;
        }
        if (i == vars->names->len) {
            g_autofree char *ref_text = g_strndup(ref, (gsize)(brace - ref + 1));
            g_autofree char *qr = quote(ref_text);
            fail(g, key, error, "%s names no variant; %s", qr,
                 vars->names->len ? "see [variant] for the declared ones"
                                  : "the file has no [variant]");
            goto bad;
        }
        if (pick != NULL)
            g_string_append(out, ((char **)g_ptr_array_index(vars->values, i))[pick[i]]);
        p = brace + 1;
    }
    return g_string_free(out, FALSE);
bad:
    g_string_free(out, TRUE);
    return NULL;
}

/* A fresh key file with this combination's values in every value but the
 * [variant] group's; *total counts the bytes for the expansion bound. */
static GKeyFile *
expand(Loader *ld, char **titles, const GroupKind *kinds, const Variants *vars, const guint *pick,
       GHashTable *substituted, gsize *total, GError **error)
{
    GKeyFile *out = g_key_file_new();

    for (guint gi = 0; titles[gi] != NULL; gi++) {
        g_auto(GStrv) keys = NULL;
        Group g = {.ld = ld, .title = titles[gi], .kind = kinds[gi]};

        if (kinds[gi] == G_VARIANT)
            continue;
        keys = g_key_file_get_keys(ld->kf, titles[gi], NULL, NULL);
        for (char **k = keys; k != NULL && *k != NULL; k++) {
            g_autofree char *raw = g_key_file_get_value(ld->kf, titles[gi], *k, NULL);
            g_autofree char *v = substitute(&g, *k, raw != NULL ? raw : "", vars, pick, error);
            if (v == NULL)
                goto fail;
            if (substituted != NULL && raw != NULL && strstr(raw, "${") != NULL)
                g_hash_table_add(substituted, g_strconcat(titles[gi], "\n", *k, NULL));
            *total += strlen(v) + strlen(*k) + 4;
            if (*total > MAX_EXPANDED) {
                fail_file(ld, error,
                          "substituting the variants makes more than %d MiB of scenario text; "
                          "use fewer variants or a smaller file",
                          MAX_EXPANDED >> 20);
                goto fail;
            }
            g_key_file_set_value(out, titles[gi], *k, v);
        }
    }
    return out;
fail:
    g_key_file_free(out);
    return NULL;
}

typedef gboolean (*ParseFn)(Loader *ld, const Group *g, GError **error);

/* Kinds in dependency order: what a group names is parsed before it. */
static const struct {
    GroupKind kind;
    ParseFn parse;
} parse_order[] = {
    {G_SCENARIO, parse_scenario},
    {G_SEGMENT, parse_segment},
    {G_FOREST, parse_forest},
    {G_LINK, parse_link},
    {G_TRUST, parse_trust},
    {G_SITE, parse_site},
    {G_MP, parse_mp},
    {G_CMG, parse_cmg},
    {G_CONNECTION_POINT, parse_connection_point},
    {G_CONTENT, parse_content},
    {G_DP, parse_dp},
    {G_POPULATION, parse_population},
    {G_PUSH_ACCOUNT, parse_push_account},
    {G_EVENT, parse_event},
    {G_ATTACKER, parse_attacker},
    {G_EXPECT, parse_expect},
    {G_COSTS, parse_costs},
};

/* The hierarchy as a whole: parents exist, the top-level site is the
 * root, primaries sit below it and secondaries below primaries (what the
 * site library admits, REQ NET-05), and a link event names a child. */
static gboolean
check_hierarchy(Loader *ld, GError **error)
{
    for (guint i = 0; i < ld->s->sites->len; i++) {
        CmScnSite *site = g_ptr_array_index(ld->s->sites, i), *parent;
        g_autofree char *title = g_strdup_printf("site %s", site->code);
        Group g = {.ld = ld, .kind = G_SITE, .title = title};
        if (site->parent == NULL)
            continue;
        if (site->top_level)
            return fail(&g, "parent", error, "the top-level site has no parent");
        if ((parent = lookup(&g, "parent", ld->sites, "site", site->parent, error)) == NULL)
            return FALSE;
        if (parent->top_level && site->kind != CM_SITE_KIND_PRIMARY)
            return fail(&g, "kind", error,
                        "below the top-level site %s a child is a primary site; a secondary "
                        "goes below a primary",
                        parent->code);
        if (!parent->top_level && parent->parent != NULL && parent->kind == CM_SITE_KIND_PRIMARY &&
            site->kind != CM_SITE_KIND_SECONDARY)
            return fail(&g, "kind", error,
                        "below the child primary %s a child is a secondary (set kind = "
                        "secondary); a primary goes below the top-level site",
                        parent->code);
        if (!parent->top_level &&
            (parent->parent == NULL || parent->kind != CM_SITE_KIND_PRIMARY))
            return fail(&g, "parent", error,
                        "a child of %s would be a secondary below a child primary; %s is not one "
                        "(primaries go below the top-level site, secondaries below primaries)",
                        parent->code, parent->code);
    }
    for (guint i = 0; i < ld->s->events->len; i++) {
        CmScnEvent *ev = g_ptr_array_index(ld->s->events, i);
        CmScnSite *site;
        g_autofree char *title = NULL;
        Group g = {.ld = ld, .kind = G_EVENT};
        if (ev->action != CM_SCN_ACT_LINK_DOWN && ev->action != CM_SCN_ACT_LINK_UP)
            continue;
        site = g_hash_table_lookup(ld->sites, ev->target);
        title = g_strdup_printf("event %s", ev->name);
        g.title = title;
        if (site == NULL || site->parent == NULL)
            return fail(&g, "target", error,
                        "site %s has no parent; expected a child site, whose link to its parent "
                        "goes down",
                        ev->target);
    }
    return TRUE;
}

/* Directory publishing that no site does would silently leave the
 * population to trust on first use. */
static gboolean
check_publishing(Loader *ld, GError **error)
{
    g_autoptr(GHashTable) published = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint j = 0; j < ld->s->sites->len; j++) {
        CmScnSite *site = g_ptr_array_index(ld->s->sites, j);
        for (char **f = site->publish_to; *f != NULL; f++)
            g_hash_table_add(published, *f);
    }
    for (guint j = 0; j < ld->s->events->len; j++) {
        CmScnEvent *ev = g_ptr_array_index(ld->s->events, j);
        if (ev->action == CM_SCN_ACT_PUBLISH)
            g_hash_table_add(published, ev->target);
    }
    for (guint i = 0; i < ld->s->populations->len; i++) {
        CmScnPopulation *p = g_ptr_array_index(ld->s->populations, i);
        g_autofree char *title = NULL;
        Group g = {.ld = ld, .kind = G_POPULATION};

        if (p->trk != CM_SCN_SOURCE_DIRECTORY && p->signcert != CM_SCN_SOURCE_DIRECTORY)
            continue;
        if (g_hash_table_contains(published, p->forest))
            continue;
        title = g_strdup_printf("population %s", p->name);
        g.title = title;
        return fail(&g, p->trk == CM_SCN_SOURCE_DIRECTORY ? "trk" : "signcert", error,
                    "directory publishing, but no site publishes to forest %s (add it to a "
                    "site's publish_to, or a publish event)",
                    p->forest);
    }
    return TRUE;
}

static CmScenario *
build(Loader *ld, char **titles, const GroupKind *kinds, char ***args, GError **error)
{
    CmScenario *s = ld->s;
    gboolean have_scenario = FALSE;

    for (size_t o = 0; o < G_N_ELEMENTS(parse_order); o++) {
        for (guint gi = 0; titles[gi] != NULL; gi++) {
            Group g = {.ld = ld, .title = titles[gi], .kind = kinds[gi], .args = args[gi]};
            if (kinds[gi] != parse_order[o].kind)
                continue;
            if (kinds[gi] == G_SCENARIO)
                have_scenario = TRUE;
            if (!parse_order[o].parse(ld, &g, error))
                return NULL;
        }
        if (parse_order[o].kind == G_SCENARIO && !have_scenario) {
            fail_file(ld, error, "no [scenario] group; expected one with at least duration");
            return NULL;
        }
    }
    if (s->sites->len == 0) {
        fail_file(ld, error, "no [site CODE] group; a scenario needs at least one site");
        return NULL;
    }
    if (ld->top == NULL) {
        if (s->sites->len > 1 || ld->top_said) {
            fail_file(ld, error, "no top-level site; set top_level = true on one [site]");
            return NULL;
        }
        ((CmScnSite *)g_ptr_array_index(s->sites, 0))->top_level = TRUE;
    }
    if (!check_hierarchy(ld, error))
        return NULL;
    if (s->populations->len == 0) {
        fail_file(ld, error,
                  "no [population NAME] group; a scenario needs at least one population");
        return NULL;
    }
    if (!events_finish(ld, error) || !check_publishing(ld, error))
        return NULL;
    return s;
}

static void
loader_init(Loader *ld, const char *file, const char *label, GKeyFile *kf, double scale)
{
    memset(ld, 0, sizeof *ld);
    ld->file = file;
    ld->label = label;
    ld->kf = kf;
    ld->scale = scale;
#define TABLE() g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL)
    ld->segments = TABLE();
    ld->forests = TABLE();
    ld->domains = TABLE();
    ld->sites = TABLE();
    ld->mps = TABLE();
    ld->populations = TABLE();
    ld->events = TABLE();
    ld->attackers = TABLE();
    ld->collections = TABLE();
    ld->collection_names = TABLE();
    ld->links = TABLE();
    ld->trusts = TABLE();
    ld->contents = TABLE();
    ld->dps = TABLE();
    ld->cmgs = TABLE();
    ld->cps = TABLE();
    ld->push_accounts = TABLE();
    ld->substituted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
#undef TABLE
}

static void
loader_clear(Loader *ld)
{
    GHashTable **tables[] = {
        &ld->segments,    &ld->forests,     &ld->domains,         &ld->sites,       &ld->mps,
        &ld->populations, &ld->events,      &ld->attackers,       &ld->collections, &ld->links,
        &ld->trusts,      &ld->substituted, &ld->collection_names,
        &ld->contents,    &ld->dps,         &ld->cmgs,            &ld->cps,
        &ld->push_accounts};
    for (size_t i = 0; i < G_N_ELEMENTS(tables); i++)
        g_clear_pointer(tables[i], g_hash_table_unref);
    cm_scenario_free(ld->s);
    ld->s = NULL;
}

/* One combination of variant values (pick[i] is the value index of variant
 * i) as a new CmScenario, or NULL with an error. */
static CmScenario *
combination(Loader *top, char **titles, const GroupKind *kinds, char ***args, const guint *pick,
            guint index, gsize *total, GError **error)
{
    const Variants *vars = top->vars;
    GString *label = g_string_new(NULL);
    GKeyFile *sub = NULL;
    CmScenario *s = NULL;
    Loader ld;

    for (guint i = 0; i < vars->names->len; i++)
        g_string_append_printf(label, "%s%s=%s", i ? "," : "",
                               (char *)g_ptr_array_index(vars->names, i),
                               ((char **)g_ptr_array_index(vars->values, i))[pick[i]]);
    loader_init(&ld, top->file, label->str, NULL, top->scale);
    ld.vars = vars;
    ld.label_always = index > 0;
    ld.s = scenario_new(top->file);
    if ((sub = expand(top, titles, kinds, vars, pick, ld.substituted, total, error)) == NULL)
        goto out;
    ld.kf = sub;
    if (build(&ld, titles, kinds, args, error) == NULL)
        goto out;
    for (guint i = 0; i < vars->names->len; i++)
        g_hash_table_insert(ld.s->variant, g_strdup(g_ptr_array_index(vars->names, i)),
                            g_strdup(((char **)g_ptr_array_index(vars->values, i))[pick[i]]));
    ld.s->variant_label = g_strdup(label->str);
    s = g_steal_pointer(&ld.s);
out:
    loader_clear(&ld);
    if (sub != NULL)
        g_key_file_free(sub);
    g_string_free(label, TRUE);
    return s;
}

GPtrArray *
cm_scenario_load_data(const char *name, const char *data, gsize len, double scale, GError **error)
{
    g_autoptr(GKeyFile) kf = NULL;
    g_auto(GStrv) titles = NULL;
    GroupKind *kinds = NULL;
    char ***args = NULL;
    Variants vars = {0};
    Loader top;
    GPtrArray *all = NULL, *result = NULL;
    GError *cause = NULL;
    const char *vtitle = NULL;
    guint *pick = NULL;
    gsize n = 0, total = 0;

    loader_init(&top, name, "", NULL, scale);
    if (data == NULL) {
        data = "";
        len = 0;
    }
    if (len > CM_SCENARIO_MAX_BYTES) {
        fail_file(&top, error, "the file is larger than 1 MiB, the most a scenario may be");
        goto out;
    }
    if (memchr(data, '\0', len) != NULL || !g_utf8_validate_len(data, len, NULL)) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_PARSE,
                    "%s: not a scenario file: expected UTF-8 text", name);
        goto out;
    }
    if (!(scale > 0) || !isfinite(scale) || scale > 1e6) {
        fail_file(&top, error, "scale %g: expected a number above 0 and at most 1e6", scale);
        goto out;
    }
    kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &cause)) {
        g_set_error(error, CM_SCENARIO_ERROR, CM_SCENARIO_ERROR_PARSE,
                    "%s: not a scenario file: %s", name, cause->message);
        g_error_free(cause);
        goto out;
    }
    top.kf = kf;
    if (!scan_lines(&top, data, len, error))
        goto out;

    titles = g_key_file_get_groups(kf, &n);
    kinds = g_new0(GroupKind, n + 1);
    args = g_new0(char **, n + 1);
    for (gsize i = 0; i < n; i++) {
        if (!classify(&top, titles[i], &kinds[i], &args[i], error))
            goto out;
        if (kinds[i] == G_VARIANT)
            vtitle = titles[i];
    }
    if (!variants_read(&top, vtitle, &vars, error))
        goto out;
    top.vars = &vars;
    /* Every reference checked once, before any combination is built, so
     * that the message does not depend on which combination came first. */
    {
        GKeyFile *checked = expand(&top, titles, kinds, &vars, NULL, NULL, &total, error);
        if (checked == NULL)
            goto out;
        g_key_file_free(checked);
        total = 0;
    }

    all = g_ptr_array_new_with_free_func((GDestroyNotify)cm_scenario_free);
    pick = g_new0(guint, vars.names->len + 1);
    for (guint c = 0; c < vars.combinations; c++) {
        guint rest = c;
        CmScenario *s;

        /* Mixed radix, the last variant fastest: the first key varies
         * slowest, as nested loops in the file's order would. */
        for (guint i = vars.names->len; i-- > 0;) {
            guint nv = g_strv_length(g_ptr_array_index(vars.values, i));
            pick[i] = rest % nv;
            rest /= nv;
        }
        if ((s = combination(&top, titles, kinds, args, pick, c, &total, error)) == NULL)
            goto out;
        g_ptr_array_add(all, s);
    }
    result = g_steal_pointer(&all);
out:
    if (args != NULL)
        for (gsize i = 0; i < n; i++)
            g_strfreev(args[i]);
    g_free(args);
    g_free(kinds);
    g_free(pick);
    variants_clear(&vars);
    loader_clear(&top);
    if (all != NULL)
        g_ptr_array_unref(all);
    return result;
}

/* Reads at most the bound plus one byte, so that neither a huge file nor
 * an endless one (a FIFO, /dev/zero) is read whole before being refused. */
static char *
read_bounded(const char *path, gsize *len, GError **error)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    int err;

    if (f == NULL) {
        err = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: cannot open: %s", path,
                    g_strerror(err));
        return NULL;
    }
    buf = g_malloc(CM_SCENARIO_MAX_BYTES + 2);
    *len = fread(buf, 1, CM_SCENARIO_MAX_BYTES + 1, f);
    if (ferror(f)) {
        err = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: cannot read: %s", path,
                    g_strerror(err));
        g_free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

GPtrArray *
cm_scenario_load(const char *path, double scale, GError **error)
{
    gsize len = 0;
    g_autofree char *data = read_bounded(path, &len, error);

    if (data == NULL)
        return NULL;
    return cm_scenario_load_data(path, data, len, scale, error);
}
