/* config.c - daemon configuration as GLib key files, with typed getters
 * whose errors say which file, group and key, what was expected and what
 * was found, so that a user can fix the line without reading code. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

struct CmNetConfig {
    GKeyFile *kf;
    char *name;         /* for messages: the path as given */
    char *dir;          /* relative paths in the file resolve here */
    GPtrArray *strings; /* strings handed out as borrowed (cm_net_config_httpd) */
};

static CmNetConfig *
config_new(const char *name, const char *dir)
{
    CmNetConfig *cfg = g_new0(CmNetConfig, 1);

    cfg->kf = g_key_file_new();
    cfg->name = g_strdup(name);
    cfg->dir = g_strdup(dir);
    cfg->strings = g_ptr_array_new_with_free_func(g_free);
    return cfg;
}

CmNetConfig *
cm_net_config_load(const char *path, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(path);
    CmNetConfig *cfg = config_new(path, dir);
    GError *local = NULL;

    if (!g_key_file_load_from_file(cfg->kf, path, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "%s: %s", path, local->message);
        g_error_free(local);
        cm_net_config_free(cfg);
        return NULL;
    }
    return cfg;
}

CmNetConfig *
cm_net_config_new_from_data(const char *data, gssize len, const char *name, GError **error)
{
    g_autofree char *cwd = g_get_current_dir();
    CmNetConfig *cfg = config_new(name ? name : "(configuration)", cwd);
    GError *local = NULL;

    if (!g_key_file_load_from_data(cfg->kf, data, len < 0 ? strlen(data) : (gsize)len,
                                   G_KEY_FILE_NONE, &local)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "%s: %s", cfg->name, local->message);
        g_error_free(local);
        cm_net_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void
cm_net_config_free(CmNetConfig *cfg)
{
    if (cfg == NULL)
        return;
    g_key_file_unref(cfg->kf);
    g_ptr_array_unref(cfg->strings);
    g_free(cfg->name);
    g_free(cfg->dir);
    g_free(cfg);
}

const char *
cm_net_config_name(const CmNetConfig *cfg)
{
    return cfg->name;
}

GKeyFile *
cm_net_config_keyfile(CmNetConfig *cfg)
{
    return cfg->kf;
}

gboolean
cm_net_config_has(const CmNetConfig *cfg, const char *group, const char *key)
{
    return g_key_file_has_key(cfg->kf, group, key, NULL);
}

static void G_GNUC_PRINTF(5, 6) bad_value(GError **error, const CmNetConfig *cfg, const char *group,
                                          const char *key, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "%s: [%s] %s: %s", cfg->name, group, key,
                what);
}

/* The raw value (new, trimmed), NULL when absent. */
static char *
raw_value(const CmNetConfig *cfg, const char *group, const char *key)
{
    char *v = g_key_file_get_value(cfg->kf, group, key, NULL);
    return v ? g_strstrip(v) : NULL;
}

gboolean
cm_net_config_string(const CmNetConfig *cfg, const char *group, const char *key, const char *def,
                     char **out, GError **error)
{
    GError *local = NULL;
    char *v;

    if (!cm_net_config_has(cfg, group, key)) {
        if (def == NULL) {
            bad_value(error, cfg, group, key, "required, but missing: add \"%s = ...\" to [%s]",
                      key, group);
            return FALSE;
        }
        *out = g_strdup(def);
        return TRUE;
    }
    v = g_key_file_get_string(cfg->kf, group, key, &local);
    if (v == NULL) {
        bad_value(error, cfg, group, key, "expected a string: %s", local->message);
        g_error_free(local);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

gboolean
cm_net_config_int(const CmNetConfig *cfg, const char *group, const char *key, gint64 def,
                  gint64 min, gint64 max, gint64 *out, GError **error)
{
    g_autofree char *v = raw_value(cfg, group, key);
    gint64 n;
    char *end;

    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    errno = 0;
    n = g_ascii_strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
        bad_value(error, cfg, group, key,
                  "expected a whole number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                  ", got \"%s\"",
                  min, max, v);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

gboolean
cm_net_config_bool(const CmNetConfig *cfg, const char *group, const char *key, gboolean def,
                   gboolean *out, GError **error)
{
    g_autofree char *v = raw_value(cfg, group, key);

    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if (g_ascii_strcasecmp(v, "true") == 0 || g_ascii_strcasecmp(v, "yes") == 0 ||
        strcmp(v, "1") == 0) {
        *out = TRUE;
        return TRUE;
    }
    if (g_ascii_strcasecmp(v, "false") == 0 || g_ascii_strcasecmp(v, "no") == 0 ||
        strcmp(v, "0") == 0) {
        *out = FALSE;
        return TRUE;
    }
    bad_value(error, cfg, group, key, "expected true or false, got \"%s\"", v);
    return FALSE;
}

/* A decimal number with an optional unit from units (factor 1 when the
 * unit is empty); FALSE when malformed or out of range of guint64. */
typedef struct {
    const char *unit;
    guint64 factor;
} Unit;

static gboolean
parse_with_unit(const char *v, const Unit *units, size_t n_units, guint64 *out)
{
    guint64 n;
    char *end;

    if (!g_ascii_isdigit(*v))
        return FALSE;
    errno = 0;
    n = g_ascii_strtoull(v, &end, 10);
    if (errno != 0)
        return FALSE;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < n_units; i++) {
        if (g_ascii_strcasecmp(end, units[i].unit) == 0) {
            if (n > G_MAXUINT64 / units[i].factor)
                return FALSE;
            *out = n * units[i].factor;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean
cm_net_config_duration(const CmNetConfig *cfg, const char *group, const char *key, CmTime def,
                       CmTime min, CmTime max, CmTime *out, GError **error)
{
    static const Unit units[] = {
        {"", CM_USEC_PER_SEC},
        {"us", 1},
        {"ms", 1000},
        {"s", CM_USEC_PER_SEC},
        {"m", CM_USEC_PER_MIN},
        {"min", CM_USEC_PER_MIN},
        {"h", CM_USEC_PER_HOUR},
        {"d", CM_USEC_PER_DAY},
    };
    g_autofree char *v = raw_value(cfg, group, key);
    guint64 us;

    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if (!parse_with_unit(v, units, G_N_ELEMENTS(units), &us) || us > (guint64)G_MAXINT64 ||
        (CmTime)us < min || (CmTime)us > max) {
        bad_value(error, cfg, group, key,
                  "expected a duration such as 10s or 500ms (from %" G_GINT64_FORMAT
                  " ms to %" G_GINT64_FORMAT " ms), got \"%s\"",
                  min / 1000, max / 1000, v);
        return FALSE;
    }
    *out = (CmTime)us;
    return TRUE;
}

gboolean
cm_net_config_size(const CmNetConfig *cfg, const char *group, const char *key, guint64 def,
                   guint64 min, guint64 max, guint64 *out, GError **error)
{
    static const Unit units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024},
    };
    g_autofree char *v = raw_value(cfg, group, key);
    guint64 n;

    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    if (!parse_with_unit(v, units, G_N_ELEMENTS(units), &n) || n < min || n > max) {
        bad_value(error, cfg, group, key,
                  "expected a size such as 4096, 64KiB or 8MiB (from %" G_GUINT64_FORMAT
                  " to %" G_GUINT64_FORMAT " bytes), got \"%s\"",
                  min, max, v);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

gboolean
cm_net_config_choice(const CmNetConfig *cfg, const char *group, const char *key,
                     const char *const *choices, int def, int *out, GError **error)
{
    g_autofree char *v = raw_value(cfg, group, key);
    g_autofree char *list = NULL;

    if (v == NULL) {
        *out = def;
        return TRUE;
    }
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return TRUE;
        }
    }
    list = g_strjoinv(", ", (char **)choices);
    bad_value(error, cfg, group, key, "expected one of %s, got \"%s\"", list, v);
    return FALSE;
}

gboolean
cm_net_config_path(const CmNetConfig *cfg, const char *group, const char *key, const char *def,
                   char **out, GError **error)
{
    g_autofree char *v = NULL;

    if (!cm_net_config_string(cfg, group, key, def, &v, error))
        return FALSE;
    if (*v == '\0') {
        bad_value(error, cfg, group, key, "expected a file name, got an empty value");
        return FALSE;
    }
    *out = g_path_is_absolute(v) ? g_steal_pointer(&v) : g_build_filename(cfg->dir, v, NULL);
    return TRUE;
}

gboolean
cm_net_config_strings(const CmNetConfig *cfg, const char *group, const char *key, char ***out,
                      GError **error)
{
    GError *local = NULL;
    char **v;

    if (!cm_net_config_has(cfg, group, key)) {
        *out = g_new0(char *, 1);
        return TRUE;
    }
    v = g_key_file_get_string_list(cfg->kf, group, key, NULL, &local);
    if (v == NULL) {
        bad_value(error, cfg, group, key, "expected a list separated by ';': %s", local->message);
        g_error_free(local);
        return FALSE;
    }
    for (char **p = v; *p != NULL; p++)
        g_strstrip(*p);
    *out = v;
    return TRUE;
}

gboolean
cm_net_config_check_keys(const CmNetConfig *cfg, const char *group, const char *const *known,
                         GError **error)
{
    g_auto(GStrv) keys = g_key_file_get_keys(cfg->kf, group, NULL, NULL);

    for (size_t i = 0; keys != NULL && keys[i] != NULL; i++) {
        if (!g_strv_contains(known, keys[i])) {
            g_autofree char *list = g_strjoinv(", ", (char **)known);
            bad_value(error, cfg, group, keys[i], "unknown key (a typo?); [%s] knows %s", group,
                      list);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
cm_net_config_check_groups(const CmNetConfig *cfg, const char *const *known, GError **error)
{
    g_auto(GStrv) groups = g_key_file_get_groups(cfg->kf, NULL);

    for (size_t i = 0; groups[i] != NULL; i++) {
        if (!g_strv_contains(known, groups[i])) {
            g_autofree char *list = g_strjoinv("], [", (char **)known);
            g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                        "%s: unknown group [%s] (a typo?); the file may have [%s]", cfg->name,
                        groups[i], list);
            return FALSE;
        }
    }
    return TRUE;
}

const char *const cm_net_config_httpd_keys[] = {
    "address",       "http_port",    "https_port",   "tls_min", "client_cert", "max_header_size",
    "max_body_size", "read_timeout", "idle_timeout", "workers", NULL,
};

gboolean
cm_net_config_httpd(const CmNetConfig *cfg, const char *group, CmNetHttpdConfig *config,
                    GError **error)
{
    static const char *const tls_versions[] = {"1.2", "1.3", NULL};
    static const char *const cert_modes[] = {"none", "optional", "required", NULL};
    char *address = NULL;
    gint64 n;
    guint64 size;
    CmTime t;
    int choice;

    if (!cm_net_config_string(cfg, group, "address", "127.0.0.1", &address, error))
        return FALSE;
    /* Borrowed by config: kept as long as cfg. */
    g_ptr_array_add(cfg->strings, address);
    config->address = address;

    config->http = cm_net_config_has(cfg, group, "http_port");
    if (!cm_net_config_int(cfg, group, "http_port", 0, 0, 65535, &n, error))
        return FALSE;
    config->http_port = (guint16)n;
    config->https = cm_net_config_has(cfg, group, "https_port");
    if (!cm_net_config_int(cfg, group, "https_port", 0, 0, 65535, &n, error))
        return FALSE;
    config->https_port = (guint16)n;
    if (!config->http && !config->https) {
        bad_value(error, cfg, group, "http_port",
                  "neither http_port nor https_port is set: add at least one (0 picks a free "
                  "port)");
        return FALSE;
    }

    if (!cm_net_config_choice(cfg, group, "tls_min", tls_versions, CM_NET_TLS_1_2, &choice, error))
        return FALSE;
    config->tls_min = (CmNetTlsVersion)choice;
    if (!cm_net_config_choice(cfg, group, "client_cert", cert_modes, CM_NET_CLIENT_CERT_NONE,
                              &choice, error))
        return FALSE;
    config->client_cert = (CmNetClientCertMode)choice;

    if (!cm_net_config_size(cfg, group, "max_header_size", 8 * 1024, 1024, 1024 * 1024, &size,
                            error))
        return FALSE;
    config->max_header_size = size;
    if (!cm_net_config_size(cfg, group, "max_body_size", 256 * 1024, 1024, 64 * 1024 * 1024, &size,
                            error))
        return FALSE;
    config->max_body_size = size;
    if (!cm_net_config_duration(cfg, group, "read_timeout", 10 * CM_USEC_PER_SEC, 1000,
                                CM_USEC_PER_HOUR, &t, error))
        return FALSE;
    config->read_timeout_ms = (guint)(t / 1000);
    if (!cm_net_config_duration(cfg, group, "idle_timeout", 60 * CM_USEC_PER_SEC, 1000,
                                CM_USEC_PER_DAY, &t, error))
        return FALSE;
    config->idle_timeout_ms = (guint)(t / 1000);
    if (!cm_net_config_int(cfg, group, "workers", 0, 0, 1024, &n, error))
        return FALSE;
    config->workers = (guint)n;
    return TRUE;
}
