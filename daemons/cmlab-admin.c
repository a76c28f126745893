/* cmlab-admin - the command-line client of the site's administrative API.
 *
 *   cmlab-admin --site DIR COMMAND [ARGS]
 *
 * Authenticates with the administrator certificate cmlab-site init wrote
 * (DIR/admin.pem, DIR/admin.key), finds the site through DIR/site.addr and
 * prints the site's JSON answer.  Exit status: 0 done, 1 refused (the
 * reason is printed), 2 usage or connection errors. */
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SITE_HOST "site.cmlab.test"

static char *opt_site;
static char *opt_cert;
static char *opt_key;
static gboolean opt_required;
static gint64 opt_deadline;
static gint64 opt_runtime;
static gint64 opt_size;
static char *opt_content_id;
static char *opt_settings_json;
static char *opt_otp;

static GOptionEntry entries[] = {
    {"site", 's', 0, G_OPTION_ARG_FILENAME, &opt_site, "The site's state folder", "DIR"},
    {"cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_cert,
     "Administrator certificate (default DIR/admin.pem)", "FILE"},
    {"key", 0, 0, G_OPTION_ARG_FILENAME, &opt_key, "Its key (default DIR/admin.key)", "FILE"},
    {"otp", 0, 0, G_OPTION_ARG_STRING, &opt_otp,
     "A one-time code, when the site requires two factors", "CODE"},
    {"required", 0, 0, G_OPTION_ARG_NONE, &opt_required, "deploy: a required deployment", NULL},
    {"deadline", 0, 0, G_OPTION_ARG_INT64, &opt_deadline, "deploy: deadline (Unix time)", "T"},
    {"max-runtime", 0, 0, G_OPTION_ARG_INT64, &opt_runtime, "deploy: maximum run time (s)", "S"},
    {"content-size", 0, 0, G_OPTION_ARG_INT64, &opt_size, "deploy: content size (bytes)", "N"},
    {"content-id", 0, 0, G_OPTION_ARG_STRING, &opt_content_id, "deploy: content ID", "ID"},
    {"client-settings", 0, 0, G_OPTION_ARG_STRING, &opt_settings_json,
     "deploy: client settings (a JSON object)", "JSON"},
    {NULL}};

static const char summary[] =
    "Commands:\n"
    "  site                          the site, its settings, client counts and MPs\n"
    "  trk                           the public trusted root key (SMSPublicRootKey)\n"
    "  audit                         verify the audit trail's hash chain\n"
    "  hierarchy                     the site's place in the hierarchy, its replication links\n"
    "  clients [pending|approved|blocked]\n"
    "  client SMSID                  a client's record, inventory and collections\n"
    "  approve|block|unblock SMSID\n"
    "  collection NAME [RULE...]     e.g. 'inventory.ou = Finance'\n"
    "  deploy COLLECTION NAME HASH   HASH: hex SHA-256 of the content\n"
    "  set KEY=VALUE...              communication, approval, conflicts, require_signing,\n"
    "                                require_sha256, encrypt, allow_3des, crl_check\n"
    "  crl FILE                      replace the PKI CRL (PEM)";

static json_t *
settings_body(int argc, char **argv, GError **error)
{
    json_t *o = json_object();

    for (int i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        g_autofree char *k = NULL;
        if (eq == NULL || eq == argv[i]) {
            g_set_error(error, CM_DAEMON_ERROR, 0, "\"%s\": expected KEY=VALUE", argv[i]);
            json_decref(o);
            return NULL;
        }
        k = g_strndup(argv[i], (gsize)(eq - argv[i]));
        if (strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "false") == 0)
            json_object_set_new(o, k, json_boolean(strcmp(eq + 1, "true") == 0));
        else
            json_object_set_new(o, k, json_string(eq + 1));
    }
    return o;
}

/* The method, path and body of a command; FALSE for bad usage. */
static gboolean
command(int argc, char **argv, const char **method, char **path, json_t **body, GError **error)
{
    const char *cmd = argv[0];

    *method = "GET";
    *body = NULL;
    if (strcmp(cmd, "site") == 0 || strcmp(cmd, "trk") == 0 || strcmp(cmd, "audit") == 0 ||
        strcmp(cmd, "hierarchy") == 0) {
        *path = g_strconcat(CM_ADMIN_API_PREFIX, cmd, NULL);
        return argc == 1;
    }
    if (strcmp(cmd, "clients") == 0 && argc <= 2) {
        *path = argc == 2 ? g_strconcat(CM_ADMIN_API_PREFIX, "clients/", argv[1], NULL)
                          : g_strdup(CM_ADMIN_API_PREFIX "clients");
        return TRUE;
    }
    if (strcmp(cmd, "client") == 0 && argc == 2) {
        *path = g_strconcat(CM_ADMIN_API_PREFIX, "client/", argv[1], NULL);
        return TRUE;
    }
    *method = "POST";
    if ((strcmp(cmd, "approve") == 0 || strcmp(cmd, "block") == 0 || strcmp(cmd, "unblock") == 0) &&
        argc == 2) {
        *path = g_strconcat(CM_ADMIN_API_PREFIX, cmd, NULL);
        *body = json_pack("{s:s}", "smsid", argv[1]);
        return TRUE;
    }
    if (strcmp(cmd, "collection") == 0 && argc >= 2) {
        json_t *rules = json_array();
        for (int i = 2; i < argc; i++)
            json_array_append_new(rules, json_string(argv[i]));
        *path = g_strdup(CM_ADMIN_API_PREFIX "collection");
        *body = json_pack("{s:s, s:o}", "name", argv[1], "rules", rules);
        return TRUE;
    }
    if (strcmp(cmd, "deploy") == 0 && argc == 4) {
        *path = g_strdup(CM_ADMIN_API_PREFIX "deploy");
        *body = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "collection", argv[1], "name",
                          argv[2], "content_hash", argv[3], "content_id",
                          opt_content_id ? opt_content_id : argv[2], "required", opt_required,
                          "deadline", (json_int_t)opt_deadline, "max_runtime",
                          (json_int_t)opt_runtime, "content_size", (json_int_t)opt_size);
        if (opt_settings_json != NULL) {
            json_t *s = cm_json_parse(opt_settings_json, strlen(opt_settings_json),
                                      CM_JSON_DEFAULT_MAX, error);
            if (s == NULL)
                return FALSE;
            json_object_set_new(*body, "settings", s);
        }
        return TRUE;
    }
    if (strcmp(cmd, "set") == 0 && argc >= 2) {
        *path = g_strdup(CM_ADMIN_API_PREFIX "settings");
        *body = settings_body(argc - 1, argv + 1, error);
        return *body != NULL;
    }
    if (strcmp(cmd, "crl") == 0 && argc == 2) {
        g_autofree char *pem = cm_daemon_read_file(argv[1], 4 * 1024 * 1024, NULL, error);
        if (pem == NULL)
            return FALSE;
        *path = g_strdup(CM_ADMIN_API_PREFIX "crl");
        *body = json_pack("{s:s}", "crl", pem);
        return TRUE;
    }
    g_set_error(error, CM_DAEMON_ERROR, 0, "unknown command or wrong arguments: %s", cmd);
    return FALSE;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("COMMAND [ARGS] - administer a cmlab site");
    GError *error = NULL;
    g_autoptr(CmCert) cert = NULL, root = NULL;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *addr_path = NULL, *addr = NULL, *url = NULL, *connect = NULL, *path = NULL;
    g_autofree char *root_path = NULL, *cert_path = NULL, *key_path = NULL, *text = NULL;
    g_autoptr(json_t) body = NULL, answer = NULL;
    const char *method, *colon;
    const CmCert *roots[1];
    const char *connect_to[2] = {NULL, NULL};
    g_autofree char *otp_header = NULL;
    const char *headers[2] = {NULL, NULL};
    CmNetHttpcConfig hc = {0};
    CmNetHttpRequest req = {0};
    CmNetHttpResponse resp = {0};
    int rc = 2;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, summary);
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc < 2 || opt_site == NULL) {
        fprintf(stderr, "cmlab-admin: %s (see --help)\n",
                error ? error->message : "give --site DIR and a command");
        g_clear_error(&error);
        return 2;
    }
    cm_net_init();
    if (!command(argc - 1, argv + 1, &method, &path, &body, &error))
        goto out;
    addr_path = g_build_filename(opt_site, "site.addr", NULL);
    root_path = g_build_filename(opt_site, "issuing-root.pem", NULL);
    cert_path = opt_cert ? g_strdup(opt_cert) : g_build_filename(opt_site, "admin.pem", NULL);
    key_path = opt_key ? g_strdup(opt_key) : g_build_filename(opt_site, "admin.key", NULL);
    if (!g_key_file_load_from_file(kf, addr_path, G_KEY_FILE_NONE, &error) ||
        (addr = g_key_file_get_string(kf, "listen", "https", &error)) == NULL)
        goto out;
    if ((colon = strrchr(addr, ':')) == NULL) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "%s: bad address \"%s\"", addr_path, addr);
        goto out;
    }
    if ((root = cm_daemon_load_cert(root_path, &error)) == NULL ||
        (cert = cm_daemon_load_cert(cert_path, &error)) == NULL ||
        (key = cm_daemon_load_key(key_path, &error)) == NULL)
        goto out;
    url = g_strdup_printf("https://%s:%s%s", SITE_HOST, colon + 1, path);
    connect = g_strdup_printf("%s:%s:%.*s:%s", SITE_HOST, colon + 1, (int)(colon - addr), addr,
                              colon + 1);
    connect_to[0] = connect;
    roots[0] = root;
    hc.client_cert = cert;
    hc.client_key = key;
    hc.ca_certs = roots;
    hc.n_ca_certs = 1;
    hc.connect_to = connect_to;
    if (body != NULL) {
        text = cm_json_dump(body);
        req.body = text;
        req.body_len = strlen(text);
    }
    req.method = method;
    req.url = url;
    if (opt_otp != NULL) {
        otp_header = g_strdup_printf("CCM-Admin-OTP: %s", opt_otp);
        headers[0] = otp_header;
        req.headers = headers;
    }
    if (!cm_net_http_fetch(&hc, &req, &resp, &error))
        goto out;
    answer = cm_json_parse(g_bytes_get_data(resp.body, NULL), g_bytes_get_size(resp.body),
                           16 * 1024 * 1024, NULL);
    if (answer != NULL) {
        g_autofree char *pretty = json_dumps(answer, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", pretty);
    } else {
        printf("%.*s\n", (int)g_bytes_get_size(resp.body),
               (const char *)g_bytes_get_data(resp.body, NULL));
    }
    rc = resp.status == 200 ? 0 : 1;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-admin: %s\n", error->message);
        g_error_free(error);
    }
    cm_net_http_response_clear(&resp);
    return rc;
}
