/* site-hier.c - the hierarchy in the lab (docs/lab.md, "Hierarchy"):
 *
 *   cmlab-site join --dir CHILD --parent-dir PARENT --kind primary|secondary
 *   cmlab-site add-mp --dir CHILD ... [--top-dir TOP]   (a joined child)
 *
 * and, in a running child, the replication thread that trades signed
 * batches with its parent over HTTPS (POST /site/replicate), plus the
 * parent's side of that route and GET /admin/hierarchy.
 *
 * Installing a child site is an administrator's offline act with access to
 * both sites' folders, as setup is in the product: the databases are SQLite
 * in WAL mode, so the running parent keeps serving while the command
 * commits to its database, and it reads the new link from there (it caches
 * nothing about its children).  The child's site server then authenticates
 * to its parent with a client certificate from the parent's issuing root
 * named "site:CODE"; the parent believes the name only for a child it
 * admitted, and the batches themselves are signed with the sites' exchange
 * keys recorded at joining (site/hierarchy.c). */
#include "site-hier.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SITE_HOST "site.cmlab.test"
#define PEER_CN_PREFIX "site:"
#define REPL_ITEMS 500
#define CHAIN_MAX 4
#define INSTALL_ACCOUNT "cmlab-install"

static char *opt_parent_dir;
static char *opt_kind;
static char *opt_server;
static char *opt_install_account;
static char *opt_top_dir;

GOptionEntry cm_site_hier_entries[] = {
    {"parent-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_parent_dir, "join: the parent site's folder",
     "DIR"},
    {"kind", 0, 0, G_OPTION_ARG_STRING, &opt_kind, "join: primary or secondary", "KIND"},
    {"server", 0, 0, G_OPTION_ARG_STRING, &opt_server,
     "join: the child site server's name (default site-CODE.FOREST)", "HOST"},
    {"install-account", 0, 0, G_OPTION_ARG_STRING, &opt_install_account,
     "join: the account that installs the child and carries file-based transfers", "ACCOUNT"},
    {"top-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_top_dir,
     "add-mp on a joined child: the top-level site's folder (default: the parent chain)", "DIR"},
    {NULL}};

static char *
path_in(const char *dir, const char *name)
{
    return g_build_filename(dir, name, NULL);
}

/* ------------------------------------------------------------ join */

/* The lines join adds to the child's site.conf. */
static gboolean
conf_append(const char *dir, const char *text, GError **error)
{
    g_autofree char *path = path_in(dir, "site.conf");
    size_t len = 0;
    g_autofree char *old = cm_daemon_read_file(path, 1024 * 1024, &len, error);
    g_autofree char *all = NULL;

    if (old == NULL)
        return FALSE;
    all = g_strconcat(old, len > 0 && old[len - 1] != '\n' ? "\n" : "", text, NULL);
    return cm_daemon_write_file(path, all, strlen(all), 0644, error);
}

static gboolean
has_hierarchy_group(const char *dir)
{
    g_autofree char *path = path_in(dir, "site.conf");
    g_autoptr(GKeyFile) kf = g_key_file_new();

    return g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL) &&
           g_key_file_has_group(kf, "hierarchy");
}

int
cm_site_hier_join(const char *dir)
{
    GError *error = NULL;
    CmTime now = cm_net_wall_now();
    g_autofree char *ccode = NULL, *pcode = NULL, *server = NULL, *abs_parent = NULL;
    g_autofree char *conf = NULL, *trk = NULL, *target = NULL;
    g_autoptr(CmSite) child = NULL, parent = NULL;
    g_autoptr(json_t) request = NULL, grant = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmKey) key = NULL;
    CmHierarchyInfo info;
    CmSiteKind kind;
    int rc = 1;

    if (opt_parent_dir == NULL || opt_kind == NULL) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "give --parent-dir PARENT and --kind KIND");
        goto out;
    }
    if (strcmp(opt_kind, "primary") == 0)
        kind = CM_SITE_KIND_PRIMARY;
    else if (strcmp(opt_kind, "secondary") == 0)
        kind = CM_SITE_KIND_SECONDARY;
    else {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "--kind: primary or secondary, not \"%s\"",
                    opt_kind);
        goto out;
    }
    /* The child first: nothing in it changes before its parent said yes. */
    if ((child = cm_site_daemon_open(dir, FALSE, &ccode, &error)) == NULL ||
        !cm_site_hierarchy_info(child, &info, &error))
        goto out;
    if (info.joined || has_hierarchy_group(dir)) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "site %s in %s has joined a parent already (%s)",
                    ccode, dir, info.parent[0] ? info.parent : "see its site.conf");
        goto out;
    }
    /* The parent with its forest trusts from its site.conf, which decide
     * whether a child in another forest may join (REQ NET-05). */
    if ((parent = cm_site_daemon_open(opt_parent_dir, TRUE, &pcode, &error)) == NULL)
        goto out;
    {
        g_autofree char *lower = g_ascii_strdown(ccode, -1);
        g_autofree char *path = path_in(dir, "site.conf");
        g_autoptr(CmNetConfig) cfg = cm_net_config_load(path, &error);
        g_autofree char *forest = NULL;
        if (cfg == NULL ||
            !cm_net_config_string(cfg, "site", "forest", "corp.example", &forest, &error))
            goto out;
        server = opt_server ? g_strdup(opt_server) : g_strdup_printf("site-%s.%s", lower, forest);
    }
    request = cm_site_hierarchy_join_request(child, kind, server, &error);
    if (request == NULL)
        goto out;
    /* The parent admits it as the built-in administrator, whose files
     * these are; a refusal is in the parent's audit trail. */
    grant = cm_site_hierarchy_add_child(parent, request,
                                        opt_install_account ? opt_install_account : INSTALL_ACCOUNT,
                                        CM_SITE_BUILTIN_ADMIN, now, &error);
    if (grant == NULL) {
        g_prefix_error(&error, "site %s refused %s: ", pcode, ccode);
        goto out;
    }
    /* The child site server's identity towards its parent. */
    target = g_strconcat(PEER_CN_PREFIX, ccode, NULL);
    if (!cm_site_issue_system_cert(parent, CM_CERT_CLIENT_AUTH, target, NULL, now, &cert, &key,
                                   &error) ||
        !cm_site_hierarchy_join(child, grant, now, &error))
        goto out;
    abs_parent = g_canonicalize_filename(opt_parent_dir, NULL);
    trk = cm_site_export_trk(child);
    {
        g_autofree char *p1 = path_in(dir, "parent-client.pem");
        g_autofree char *p2 = path_in(dir, "parent-client.key");
        g_autofree char *p3 = path_in(dir, "parent-root.pem");
        g_autofree char *p4 = path_in(dir, "trk.hex");
        /* trk.hex: installers of this site's clients take the hierarchy's
         * trusted root key now, the top-level site's (REQ TRUST-02). */
        if (!cm_daemon_save_cert(p1, cert, &error) || !cm_daemon_save_key(p2, key, &error) ||
            !cm_daemon_save_cert(p3, cm_site_issuing_root(parent), &error) ||
            !cm_daemon_write_file(p4, trk, strlen(trk), 0644, &error))
            goto out;
    }
    conf = g_strdup_printf("\n# written by cmlab-site join: the parent and how to reach it\n"
                           "[hierarchy]\nparent = %s\nparent_dir = %s\n"
                           "parent_addr_file = %s/site.addr\ninterval = 30s\n",
                           pcode, abs_parent, abs_parent);
    if (!conf_append(dir, conf, &error))
        goto out;
    printf("site %s joined %s as a %s site; top-level site %s\n", ccode, pcode, opt_kind,
           json_string_value(json_object_get(grant, "top")));
    printf("SMSPublicRootKey: %s\n", trk);
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-site join: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

/* ------------------------------------------------------------ add-mp */

/* The top-level site's folder: --top-dir, or up the parent_dir chain
 * that join recorded to the folder whose site code is top. */
static char *
find_top_dir(const char *dir, const char *top, GError **error)
{
    g_autofree char *cur = g_strdup(dir);

    if (opt_top_dir != NULL)
        return g_strdup(opt_top_dir);
    for (int i = 0; i < CHAIN_MAX; i++) {
        g_autofree char *path = path_in(cur, "site.conf");
        g_autoptr(CmNetConfig) cfg = cm_net_config_load(path, error);
        g_autofree char *code = NULL, *next = NULL;
        if (cfg == NULL || !cm_net_config_string(cfg, "site", "code", NULL, &code, error))
            return NULL;
        if (strcmp(code, top) == 0)
            return g_steal_pointer(&cur);
        if (!cm_net_config_string(cfg, "hierarchy", "parent_dir", "", &next, error))
            return NULL;
        if (*next == '\0')
            break;
        g_free(cur);
        cur = g_steal_pointer(&next);
    }
    g_set_error(error, CM_DAEMON_ERROR, 0,
                "the top-level site %s is not up the parent chain of %s: give --top-dir", top, dir);
    return NULL;
}

gboolean
cm_site_hier_add_mp(CmSite *site, const char *dir, const char *name, gboolean internet, CmTime now,
                    CmMpInfo *info, CmCert **mp_cert, CmCert **tls, CmKey **key, GError **error)
{
    CmHierarchyInfo h;
    g_autofree char *top_dir = NULL, *top_code = NULL;
    g_autoptr(CmSite) top = NULL;
    g_autoptr(json_t) request = NULL, answer = NULL;
    g_autoptr(CmKey) k = NULL;
    GError *cause = NULL;

    if (!cm_site_hierarchy_info(site, &h, error))
        return FALSE;
    if (!h.joined)
        return cm_site_add_mp(site, name, internet, now, info, mp_cert, tls, key, error);
    /* A child holds no TRK: the top-level site signs its MP's certificate
     * (REQ TRUST-02), as file-based transfer would carry it. */
    k = cm_key_generate(cm_site_settings(site)->key_alg, &cause);
    if (k == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "MP key: %s", cause->message);
        g_error_free(cause);
        return FALSE;
    }
    if ((top_dir = find_top_dir(dir, h.top, error)) == NULL ||
        (top = cm_site_daemon_open(top_dir, FALSE, &top_code, error)) == NULL)
        return FALSE;
    if (strcmp(top_code, h.top) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s holds site %s, not the top-level site %s",
                    top_dir, top_code, h.top);
        return FALSE;
    }
    if ((request = cm_site_hierarchy_mp_request(site, name, k, error)) == NULL ||
        (answer = cm_site_hierarchy_sign_mp(top, request, now, error)) == NULL ||
        !cm_site_hierarchy_add_mp(site, answer, k, internet, now, info, mp_cert, tls, error))
        return FALSE;
    *key = g_steal_pointer(&k);
    return TRUE;
}

/* ------------------------------------------------------ replication */

typedef struct {
    SiteDaemon *d;
    char parent[4];
    char *addr_file;
    CmCert *cert;
    CmKey *key;
    CmCert *root;
    CmTime interval;
    GMutex lock; /* the fields below */
    GCond cond;
    gboolean stopping;
    guint64 rounds, failures;
    CmTime last_ok;
    char last_error[256];
    GThread *thread;
} Repl;

static Repl *repl;

/* The parent's HTTPS address from its site.addr (it may have moved). */
static char *
parent_addr(Repl *r, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    char *https;

    if (!g_key_file_load_from_file(kf, r->addr_file, G_KEY_FILE_NONE, error) ||
        (https = g_key_file_get_string(kf, "listen", "https", error)) == NULL) {
        g_prefix_error(error, "the parent's address: ");
        return NULL;
    }
    if (strrchr(https, ':') == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: bad address \"%s\"", r->addr_file, https);
        g_free(https);
        return NULL;
    }
    return https;
}

/* One exchange: our batch up, the parent's batch for us back.  *more when
 * either side had more than one batch holds. */
static gboolean
repl_round(Repl *r, CmNetHttpc **client, char **client_addr, gboolean *more, GError **error)
{
    SiteDaemon *d = r->d;
    g_autofree char *addr = parent_addr(r, error);
    g_autofree char *url = NULL;
    g_autoptr(GBytes) batch = NULL;
    CmNetHttpRequest req = {0};
    CmNetHttpResponse resp = {0};
    CmReplLinkStatus st;
    CmReplApplied applied;
    gboolean ok = FALSE;
    const char *colon;

    *more = FALSE;
    if (addr == NULL)
        return FALSE;
    colon = strrchr(addr, ':');
    if (*client == NULL || g_strcmp0(*client_addr, addr) != 0) {
        g_autofree char *connect = g_strdup_printf("%s:%s:%.*s:%s", SITE_HOST, colon + 1,
                                                   (int)(colon - addr), addr, colon + 1);
        const char *connect_to[2] = {connect, NULL};
        const CmCert *roots[1] = {r->root};
        CmNetHttpcConfig hc = {.client_cert = r->cert,
                               .client_key = r->key,
                               .ca_certs = roots,
                               .n_ca_certs = 1,
                               .connect_to = connect_to,
                               .connect_timeout_ms = 2000,
                               .timeout_ms = 10000,
                               .max_response_size = 2 * CM_REPL_BATCH_MAX};
        g_clear_pointer(client, cm_net_httpc_free);
        g_free(*client_addr);
        *client_addr = NULL;
        if ((*client = cm_net_httpc_new(NULL, &hc, error)) == NULL)
            return FALSE;
        *client_addr = g_strdup(addr);
    }
    g_mutex_lock(&d->lock);
    batch = cm_site_repl_batch(d->site, r->parent, REPL_ITEMS, cm_net_wall_now(), error);
    ok = batch != NULL && cm_site_repl_link_status(d->site, r->parent, &st, error);
    g_mutex_unlock(&d->lock);
    if (!ok)
        return FALSE;
    url = g_strdup_printf("https://%s:%s%s", SITE_HOST, colon + 1, CM_SITE_API_REPLICATE);
    req.method = "POST";
    req.url = url;
    req.body = g_bytes_get_data(batch, &req.body_len);
    if (!cm_net_httpc_fetch(*client, &req, &resp, error))
        goto out;
    ok = FALSE;
    if (resp.status != 200) {
        CmResponse cm = {0};
        if (cm_net_http_response_to_cm(&resp, &cm, NULL))
            g_set_error(error, CM_DAEMON_ERROR, 0, "parent %s answered %d %s: %s", r->parent,
                        resp.status, cm_reason_name(cm.reason), cm.message ? cm.message : "");
        else
            g_set_error(error, CM_DAEMON_ERROR, 0, "parent %s answered %d", r->parent, resp.status);
        cm_response_clear(&cm);
        goto out;
    }
    g_mutex_lock(&d->lock);
    ok = cm_site_repl_apply(d->site, g_bytes_get_data(resp.body, NULL), g_bytes_get_size(resp.body),
                            cm_net_wall_now(), &applied, error);
    g_mutex_unlock(&d->lock);
    if (!ok)
        goto out;
    if (applied.applied > 0)
        g_message("replication: %u items from %s applied (sequence %" G_GINT64_FORMAT
                  "..%" G_GINT64_FORMAT ")",
                  applied.applied, r->parent, applied.first, applied.last);
    *more = st.backlog > REPL_ITEMS ||
            (applied.last > 0 && applied.last - applied.first + 1 >= REPL_ITEMS);
out:
    cm_net_http_response_clear(&resp);
    return ok;
}

static gpointer
repl_main(gpointer data)
{
    Repl *r = data;
    CmNetHttpc *client = NULL;
    char *client_addr = NULL;

    g_mutex_lock(&r->lock);
    while (!r->stopping) {
        GError *error = NULL;
        gboolean more = FALSE, ok;
        gint64 until;
        g_mutex_unlock(&r->lock);
        ok = repl_round(r, &client, &client_addr, &more, &error);
        if (!ok) {
            /* A new connection next time: the parent may have restarted. */
            g_clear_pointer(&client, cm_net_httpc_free);
            g_clear_pointer(&client_addr, g_free);
        }
        g_mutex_lock(&r->lock);
        r->rounds++;
        if (ok) {
            r->last_ok = cm_net_wall_now();
            if (r->last_error[0] != '\0')
                g_message("replication with %s works again", r->parent);
            r->last_error[0] = '\0';
        } else {
            r->failures++;
            if (strcmp(r->last_error, error->message) != 0)
                g_warning("replication with %s: %s", r->parent, error->message);
            g_strlcpy(r->last_error, error->message, sizeof r->last_error);
            g_error_free(error);
        }
        if (more)
            continue;
        until = g_get_monotonic_time() + r->interval;
        while (!r->stopping && g_cond_wait_until(&r->cond, &r->lock, until))
            ;
    }
    g_mutex_unlock(&r->lock);
    g_clear_pointer(&client, cm_net_httpc_free);
    g_free(client_addr);
    return NULL;
}

gboolean
cm_site_hier_start(SiteDaemon *d, CmNetConfig *cfg, GError **error)
{
    g_autofree char *parent = NULL, *addr_file = NULL;
    g_autofree char *p1 = path_in(d->dir, "parent-client.pem");
    g_autofree char *p2 = path_in(d->dir, "parent-client.key");
    g_autofree char *p3 = path_in(d->dir, "parent-root.pem");
    CmHierarchyInfo info;
    Repl *r;

    if (!cm_net_config_string(cfg, "hierarchy", "parent", "", &parent, error))
        return FALSE;
    if (*parent == '\0')
        return TRUE;
    g_mutex_lock(&d->lock);
    if (!cm_site_hierarchy_info(d->site, &info, error)) {
        g_mutex_unlock(&d->lock);
        return FALSE;
    }
    g_mutex_unlock(&d->lock);
    if (!info.joined || strcmp(info.parent, parent) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0,
                    "site.conf names parent %s, but the site database %s (cmlab-site join)", parent,
                    info.joined ? "names another" : "has not joined one");
        return FALSE;
    }
    r = g_new0(Repl, 1);
    r->d = d;
    g_strlcpy(r->parent, info.parent, sizeof r->parent);
    if (!cm_net_config_path(cfg, "hierarchy", "parent_addr_file", NULL, &r->addr_file, error) ||
        !cm_net_config_duration(cfg, "hierarchy", "interval", 30 * CM_USEC_PER_SEC,
                                CM_USEC_PER_SEC / 10, CM_USEC_PER_DAY, &r->interval, error) ||
        (r->cert = cm_daemon_load_cert(p1, error)) == NULL ||
        (r->key = cm_daemon_load_key(p2, error)) == NULL ||
        (r->root = cm_daemon_load_cert(p3, error)) == NULL) {
        g_free(r->addr_file);
        cm_cert_unref(r->cert);
        if (r->key != NULL)
            cm_key_unref(r->key);
        g_free(r);
        return FALSE;
    }
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    repl = r;
    r->thread = g_thread_new("replication", repl_main, r);
    g_message("replicating with parent %s every %.1f s", r->parent,
              (double)r->interval / CM_USEC_PER_SEC);
    return TRUE;
}

void
cm_site_hier_stop(void)
{
    Repl *r = repl;

    if (r == NULL)
        return;
    g_mutex_lock(&r->lock);
    r->stopping = TRUE;
    g_cond_signal(&r->cond);
    g_mutex_unlock(&r->lock);
    g_thread_join(r->thread);
    repl = NULL;
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
    g_free(r->addr_file);
    cm_cert_unref(r->cert);
    cm_cert_unref(r->root);
    cm_key_unref(r->key);
    g_free(r);
}

gboolean
cm_site_hier_replicate_api(CmNetCall *call, const CmRequest *req, CmResponse *resp, SiteDaemon *d)
{
    const CmCert *peer = cm_net_call_peer_cert(call);
    const char *cn = peer ? cm_cert_subject_cn(peer) : NULL;
    g_autoptr(json_t) parsed = NULL;
    g_autoptr(GBytes) answer = NULL;
    GError *error = NULL;
    CmReplLinkStatus st;
    CmReplApplied applied;
    const char *code, *from;
    CmTime now = cm_net_wall_now();

    if (strcmp(cm_net_call_method(call), "POST") != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "POST a replication batch");
        return TRUE;
    }
    if (cn == NULL || !g_str_has_prefix(cn, PEER_CN_PREFIX) ||
        strlen(cn) != strlen(PEER_CN_PREFIX) + 3) {
        cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                           "only child site servers replicate (a site:CODE certificate)");
        return TRUE;
    }
    code = cn + strlen(PEER_CN_PREFIX);
    /* The batch says who sent it; it must be the child the certificate
     * names (its signature is checked against that child's key). */
    parsed = cm_json_parse(req->body, req->body_len, CM_REPL_BATCH_MAX, &error);
    from = parsed ? cm_json_str(parsed, "from", 3, &error) : NULL;
    if (from == NULL) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "replication batch: %s", error->message);
        g_error_free(error);
        return TRUE;
    }
    if (strcmp(from, code) != 0) {
        cm_response_refuse(resp, CM_REASON_FORBIDDEN, "%s sent a batch from %s", cn, from);
        return TRUE;
    }
    g_mutex_lock(&d->lock);
    if (!cm_site_repl_link_status(d->site, code, &st, &error) &&
        !g_error_matches(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND)) {
        /* The site could not tell: not the child's fault, and not a "no". */
        g_mutex_unlock(&d->lock);
        cm_response_refuse(resp, CM_REASON_BUSY, "%s", error->message);
        g_warning("replication from %s: %s", code, error->message);
        g_error_free(error);
        return TRUE;
    }
    if (error != NULL || st.role != CM_LINK_CHILD) {
        g_mutex_unlock(&d->lock);
        cm_response_refuse(resp, CM_REASON_FORBIDDEN, "site %s is not a child of %s", code,
                           cm_site_code(d->site));
        g_message("replication: %s refused: not a child", cn);
        g_clear_error(&error);
        return TRUE;
    }
    if (!cm_site_repl_apply(d->site, req->body, req->body_len, now, &applied, &error) ||
        (answer = cm_site_repl_batch(d->site, code, REPL_ITEMS, now, &error)) == NULL) {
        g_mutex_unlock(&d->lock);
        cm_response_refuse(resp, cm_reason_from_error(error), "%s", error->message);
        g_message("replication from %s refused: %s", code, error->message);
        g_error_free(error);
        return TRUE;
    }
    g_mutex_unlock(&d->lock);
    if (applied.applied > 0)
        g_message("replication: %u items from %s applied (sequence %" G_GINT64_FORMAT
                  "..%" G_GINT64_FORMAT ")",
                  applied.applied, code, applied.first, applied.last);
    cm_response_clear(resp);
    resp->status = 200;
    resp->reason = CM_REASON_OK;
    resp->body = g_steal_pointer(&answer);
    return TRUE;
}

json_t *
cm_site_hier_status_json(SiteDaemon *d, GError **error)
{
    CmHierarchyInfo info;
    g_autoptr(GPtrArray) peers = NULL;
    json_t *links, *o;
    CmTime now = cm_net_wall_now();

    if (!cm_site_hierarchy_info(d->site, &info, error) ||
        (peers = cm_site_repl_peers(d->site, error)) == NULL)
        return NULL;
    links = json_array();
    for (guint i = 0; i < peers->len; i++) {
        const char *peer = g_ptr_array_index(peers, i);
        CmReplLinkStatus st;
        double lag;
        if (!cm_site_repl_link_status(d->site, peer, &st, error)) {
            json_decref(links);
            return NULL;
        }
        /* How long the oldest item the peer has not confirmed has waited. */
        lag = st.backlog > 0 && st.oldest_unacked > 0
                  ? (double)(now - st.oldest_unacked) / CM_USEC_PER_SEC
                  : 0.0;
        json_array_append_new(
            links,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "peer", peer, "role",
                      st.role == CM_LINK_PARENT ? "parent" : "child", "queued",
                      (json_int_t)st.queued, "acked", (json_int_t)st.acked, "backlog",
                      (json_int_t)st.backlog, "received", (json_int_t)st.received, "received_at",
                      (json_int_t)(st.received_at / CM_USEC_PER_SEC), "lag_s", lag));
    }
    o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "site", cm_site_code(d->site), "kind",
                  cm_site_kind_name(info.kind), "parent", info.parent, "top", info.top, "links",
                  links);
    if (repl != NULL) {
        g_mutex_lock(&repl->lock);
        json_object_set_new(o, "replication",
                            json_pack("{s:f, s:I, s:I, s:I, s:s}", "interval_s",
                                      (double)repl->interval / CM_USEC_PER_SEC, "rounds",
                                      (json_int_t)repl->rounds, "failures",
                                      (json_int_t)repl->failures, "last_ok",
                                      (json_int_t)(repl->last_ok / CM_USEC_PER_SEC), "last_error",
                                      repl->last_error));
        g_mutex_unlock(&repl->lock);
    }
    return o;
}
