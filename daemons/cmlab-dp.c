/* cmlab-dp - the distribution point daemon, and its content commands.
 *
 *   cmlab-dp add-content --dir DPDIR --id ID FILE...
 *   cmlab-dp prestage    --dir DPDIR FILE          (a prestaged content file)
 *   cmlab-dp serve       --dir DPDIR [--verbose]
 *
 * DPDIR comes from `cmlab-site add-dp`.  Content lives in
 * DPDIR/content/<ID>/ as its files; the DP library makes the package (its
 * manifest and content hash) from them when the daemon starts, so a file
 * changed on disk changes the hash, and a client holding the signed
 * policy's hash refuses it (REQ DP-04).  add-content prints the content
 * hash and size a deployment needs (`cmlab-admin deploy ... HASH
 * --content-id ID --content-size N`).
 *
 * The daemon serves GET /SMS_DP_SMSPKG$/<ID> (the manifest) and
 * /SMS_DP_SMSPKG$/<ID>/<file> over HTTP and HTTPS, each request
 * authenticated per seed 004's table by the DP library (REQ DP-01):
 * anonymous when allowed, a PKI client certificate over HTTPS, a content
 * access token (Authorization: Bearer) over HTTPS or Enhanced HTTP, and
 * with [dp] keytab = FILE (the DP's HTTP/<name> key) Windows-integrated
 * authentication: Kerberos (Authorization: Negotiate, net/gss.c) as a
 * computer account (NAME$) or a network_access_accounts entry. */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdp.h"

#define DP_PREFIX "/SMS_DP_SMSPKG$/"
#define FILE_MAX (256 * 1024 * 1024)

typedef struct {
    CmDp *dp;
    GMutex lock;
    char *content_dir;
} DpDaemon;

static char *opt_dir;
static char *opt_id;
static gboolean opt_verbose;

static GOptionEntry entries[] = {
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir, "The DP's folder (cmlab-site add-dp)",
     "DPDIR"},
    {"id", 0, 0, G_OPTION_ARG_STRING, &opt_id, "add-content: the content ID", "ID"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Debug logging", NULL},
    {NULL}};

/* The package in dir (its files), or NULL. */
static CmDpPackage *
package_load(const char *id, const char *dir, GError **error)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, error);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) files = g_array_new(FALSE, TRUE, sizeof(CmDpFile));
    CmDpPackage *pkg = NULL;
    const char *name;

    if (d == NULL)
        return NULL;
    while ((name = g_dir_read_name(d)) != NULL)
        g_ptr_array_add(names, g_strdup(name));
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);
        size_t len = 0;
        char *data = cm_daemon_read_file(path, FILE_MAX, &len, error);
        CmDpFile f = {.name = names->pdata[i]};
        if (data == NULL)
            goto out;
        f.data = g_bytes_new_take(data, len);
        g_array_append_val(files, f);
    }
    pkg = cm_dp_package_new(id, (CmDpFile *)files->data, files->len, error);
out:
    for (guint i = 0; i < files->len; i++)
        g_bytes_unref(g_array_index(files, CmDpFile, i).data);
    return pkg;
}

static int
cmd_add_content(int argc, char **argv)
{
    GError *error = NULL;
    g_autofree char *dir = NULL;
    g_autoptr(CmDpPackage) pkg = NULL;
    g_autofree char *hash = NULL;
    int rc = 1;

    if (opt_id == NULL || argc < 1) {
        fprintf(stderr, "cmlab-dp add-content: give --id ID and the files\n");
        return 2;
    }
    dir = g_build_filename(opt_dir, "content", opt_id, NULL);
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", dir, g_strerror(errno));
        goto out;
    }
    for (int i = 0; i < argc; i++) {
        size_t len = 0;
        g_autofree char *data = cm_daemon_read_file(argv[i], FILE_MAX, &len, &error);
        g_autofree char *base = g_path_get_basename(argv[i]);
        g_autofree char *dst = g_build_filename(dir, base, NULL);
        if (data == NULL || !cm_daemon_write_file(dst, data, len, 0644, &error))
            goto out;
    }
    pkg = package_load(opt_id, dir, &error);
    if (pkg == NULL)
        goto out;
    hash = cm_dp_package_hash_hex(pkg);
    printf("content %s: hash %s size %" G_GUINT64_FORMAT "\n", opt_id, hash,
           cm_dp_package_size(pkg));
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-dp add-content: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

/* ------------------------------------------------------------ serve */

/* Content placed in the content folder after the start (a transfer that
 * completed, add-content) is loaded at its first request.  The ID must be
 * a plain name: no '/', nothing starting with '.', so that no request
 * reaches outside the content folder. */
static void
content_arrived(DpDaemon *d, const char *path)
{
    const char *id = path + strlen(DP_PREFIX);
    size_t n = strcspn(id, "/");
    g_autofree char *name = g_strndup(id, n);
    g_autofree char *dir = NULL;
    CmDpPackage *pkg;

    if (n == 0 || n > CM_DP_ID_MAX || name[0] == '.' ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n ||
        cm_dp_content_get(d->dp, name) != NULL)
        return;
    dir = g_build_filename(d->content_dir, name, NULL);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
        return;
    pkg = package_load(name, dir, NULL);
    if (pkg != NULL) {
        cm_dp_content_add(d->dp, pkg, CM_DP_SOURCE_TRANSFER);
        cm_dp_package_unref(pkg);
    }
}

static gboolean
on_content(CmNetCall *call, const CmRequest *in, CmResponse *resp, void *user_data)
{
    DpDaemon *d = user_data;
    CmDpRequest req = {0};
    const char *auth = cm_net_call_header(call, "Authorization");

    req.path = cm_net_call_path(call);
    req.transport = in->transport;
    req.peer = in->peer; /* the verified TLS client certificate, if any */
    if (auth != NULL && g_str_has_prefix(auth, "Bearer ") && req.peer.kind == CM_AUTH_ANONYMOUS) {
        req.peer.kind = CM_AUTH_TOKEN;
        req.peer.token = auth + 7;
    }
    if (strcmp(cm_net_call_method(call), "GET") != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "a distribution point serves GET only");
        return TRUE;
    }
    g_mutex_lock(&d->lock);
    content_arrived(d, req.path);
    cm_dp_handle(d->dp, &req, cm_net_wall_now(), resp);
    g_mutex_unlock(&d->lock);
    g_debug("GET %s (%s): %d", req.path, cm_auth_name(req.peer.kind), resp->status);
    return TRUE;
}

/* Everything else: not a DP path. */
static gboolean
on_endpoint(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    (void)call;
    (void)user_data;
    cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT,
                       "a distribution point serves " DP_PREFIX " only, not %s",
                       cm_ep_name(req->ep));
    return TRUE;
}

static int
health_route(const char *path, GString *body, const char **content_type, void *user_data)
{
    (void)path;
    (void)content_type;
    (void)user_data;
    g_string_append(body, "ok\n");
    return 200;
}

static gboolean
load_content(CmDp *dp, const char *root, GError **error)
{
    g_autoptr(GDir) d = NULL;
    const char *id;

    if (!g_file_test(root, G_FILE_TEST_IS_DIR))
        return TRUE;
    d = g_dir_open(root, 0, error);
    if (d == NULL)
        return FALSE;
    while ((id = g_dir_read_name(d)) != NULL) {
        g_autofree char *dir = g_build_filename(root, id, NULL);
        CmDpPackage *pkg = package_load(id, dir, error);
        if (pkg == NULL)
            return FALSE;
        cm_dp_content_add(dp, pkg, CM_DP_SOURCE_TRANSFER);
        cm_dp_package_unref(pkg);
    }
    return TRUE;
}

static int
cmd_serve(void)
{
    GError *error = NULL;
    DpDaemon d = {0};
    CmNetHttpdConfig hc = {0};
    CmDpConfig dc = {0};
    g_autofree char *conf_path = g_build_filename(opt_dir, "dp.conf", NULL);
    g_autofree char *content = g_build_filename(opt_dir, "content", NULL);
    g_autofree char *name = NULL, *code = NULL, *p_cert = NULL, *p_key = NULL, *p_root = NULL;
    g_autofree char *p_keytab = NULL;
    g_auto(GStrv) naa = NULL;
    g_autoptr(CmNetConfig) cfg = NULL;
    g_autoptr(CmNetHttpd) httpd = NULL;
    g_autoptr(CmCert) tls = NULL, signing = NULL, pki_root = NULL;
    g_autoptr(CmKey) tls_key = NULL;
    g_autoptr(CmTrust) trust = NULL;
    g_autoptr(CmNetMetrics) metrics = cm_net_metrics_new();
    gboolean https = FALSE, anonymous = FALSE;
    guint n_packages;
    int rc = 1;

    g_mutex_init(&d.lock);
    d.content_dir = content;
    cfg = cm_net_config_load(conf_path, &error);
    if (cfg == NULL || !cm_net_config_string(cfg, "dp", "name", NULL, &name, &error) ||
        !cm_net_config_string(cfg, "dp", "site_code", NULL, &code, &error) ||
        !cm_net_config_bool(cfg, "dp", "https", FALSE, &https, &error) ||
        !cm_net_config_bool(cfg, "dp", "allow_anonymous", FALSE, &anonymous, &error) ||
        !cm_net_config_strings(cfg, "dp", "network_access_accounts", &naa, &error) ||
        !cm_net_config_path(cfg, "dp", "tls_cert", "tls.pem", &p_cert, &error) ||
        !cm_net_config_path(cfg, "dp", "tls_key", "tls.key", &p_key, &error) ||
        (cm_net_config_has(cfg, "dp", "pki_root") &&
         !cm_net_config_path(cfg, "dp", "pki_root", NULL, &p_root, &error)) ||
        (cm_net_config_has(cfg, "dp", "keytab") &&
         !cm_net_config_path(cfg, "dp", "keytab", NULL, &p_keytab, &error)) ||
        !cm_net_config_httpd(cfg, "listen", &hc, &error))
        goto out;
    {
        g_autofree char *p = g_build_filename(opt_dir, "site-signing.pem", NULL);
        if ((tls = cm_daemon_load_cert(p_cert, &error)) == NULL ||
            (tls_key = cm_daemon_load_key(p_key, &error)) == NULL ||
            (signing = cm_daemon_load_cert(p, &error)) == NULL)
            goto out;
    }
    if (p_root != NULL) {
        trust = cm_trust_new();
        if ((pki_root = cm_daemon_load_cert(p_root, &error)) == NULL ||
            !cm_trust_add_root(trust, pki_root, &error))
            goto out;
    }
    dc.name = name;
    dc.site_code = code;
    dc.https = https;
    dc.allow_anonymous = anonymous;
    dc.network_access_accounts = (const char *const *)naa;
    dc.site_signing_cert = signing;
    dc.pki_trust = trust;
    d.dp = cm_dp_new(&dc, &error);
    if (d.dp == NULL || !load_content(d.dp, content, &error))
        goto out;
    hc.http = TRUE;
    hc.https = TRUE;
    hc.server_cert = tls;
    hc.server_key = tls_key;
    hc.tls_transport = https ? CM_TRANSPORT_HTTPS : CM_TRANSPORT_EHTTP;
    if (trust != NULL) {
        hc.client_cert = CM_NET_CLIENT_CERT_OPTIONAL;
        hc.client_trust = trust;
    }
    hc.handler = on_endpoint;
    hc.handler_data = &d;
    hc.keytab = p_keytab; /* Kerberos (SPNEGO) when set */
    hc.metrics = metrics;
    /* Counted before the workers start: from then on d.dp is theirs, under d.lock. */
    n_packages = cm_dp_content_count(d.dp);
    httpd = cm_net_httpd_new(&hc, &error);
    if (httpd == NULL || !cm_net_httpd_add_api(httpd, DP_PREFIX, on_content, &d, &error) ||
        !cm_net_httpd_add_route(httpd, "/metrics", cm_net_metrics_route, metrics, &error) ||
        !cm_net_httpd_add_route(httpd, "/health", health_route, NULL, &error) ||
        !cm_net_httpd_start(httpd, &error) ||
        !cm_daemon_write_addr(opt_dir, "dp", hc.address ? hc.address : "127.0.0.1",
                              cm_net_httpd_http_port(httpd), cm_net_httpd_https_port(httpd),
                              &error))
        goto out;
    g_message("DP %s serving %u packages on http://%s:%u and https://%s:%u (%s)", name, n_packages,
              hc.address ? hc.address : "127.0.0.1", cm_net_httpd_http_port(httpd),
              hc.address ? hc.address : "127.0.0.1", cm_net_httpd_https_port(httpd),
              https ? "HTTPS DP" : "HTTP DP");
    g_message("signal %d: stopping", cm_net_wait_for_signal());
    rc = 0;
out:
    if (error != NULL) {
        g_critical("cmlab-dp: %s", error->message);
        g_error_free(error);
    }
    g_clear_pointer(&httpd, cm_net_httpd_free);
    cm_dp_free(d.dp);
    g_mutex_clear(&d.lock);
    return rc;
}

static int
cmd_prestage(int argc, char **argv)
{
    GError *error = NULL;
    size_t len = 0;
    g_autofree char *data = NULL, *dir = NULL, *hash = NULL;
    g_autoptr(CmDpPackage) pkg = NULL;
    int rc = 1;

    if (argc != 1) {
        fprintf(stderr, "cmlab-dp prestage: give one prestaged content file\n");
        return 2;
    }
    data = cm_daemon_read_file(argv[0], CM_DP_PRESTAGE_MAX, &len, &error);
    if (data == NULL || (pkg = cm_dp_prestage_file_parse((guint8 *)data, len, &error)) == NULL)
        goto out;
    /* Extracted to disk; the site's distribution decides whether it matches
     * (REQ DP-03): the daemon serves it under the hash it has. */
    dir = g_build_filename(opt_dir, "content", cm_dp_package_id(pkg), NULL);
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "cannot create %s", dir);
        goto out;
    }
    {
        const CmDpManifest *m = cm_dp_package_manifest_parsed(pkg);
        for (size_t i = 0; i < cm_dp_manifest_count(m); i++) {
            const CmDpEntry *e = cm_dp_manifest_entry(m, i);
            GBytes *b = cm_dp_package_file(pkg, e->name);
            g_autofree char *dst = g_build_filename(dir, e->name, NULL);
            if (!cm_daemon_write_file(dst, g_bytes_get_data(b, NULL), g_bytes_get_size(b), 0644,
                                      &error))
                goto out;
        }
    }
    hash = cm_dp_package_hash_hex(pkg);
    printf("prestaged %s: hash %s\n", cm_dp_package_id(pkg), hash);
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-dp prestage: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND - the cmlab distribution point");
    GError *error = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx,
                                 "Commands:\n"
                                 "  add-content --id ID FILE...  place content, print its hash\n"
                                 "  prestage FILE                extract a prestaged content file\n"
                                 "  serve                        run the distribution point");
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc < 2 || opt_dir == NULL) {
        fprintf(stderr, "cmlab-dp: %s (see --help)\n",
                error ? error->message : "give a command and --dir DPDIR");
        g_clear_error(&error);
        return 2;
    }
    cm_net_init();
    cm_daemon_log_init("cmlab-dp", opt_verbose);
    if (strcmp(argv[1], "add-content") == 0)
        return cmd_add_content(argc - 2, argv + 2);
    if (strcmp(argv[1], "prestage") == 0)
        return cmd_prestage(argc - 2, argv + 2);
    if (strcmp(argv[1], "serve") == 0 && argc == 2)
        return cmd_serve();
    fprintf(stderr, "cmlab-dp: unknown command \"%s\" (see --help)\n", argv[1]);
    return 2;
}
