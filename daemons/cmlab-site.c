/* cmlab-site - the site server daemon, and the commands that create a site
 * and provision its management points.
 *
 *   cmlab-site init    --dir DIR [--site-code PS1] [--forest F] [--comm MODE]
 *                      [--approval MODE] [--pki-root FILE [--pki-crl FILE]]
 *   cmlab-site add-mp  --dir DIR --name HOST --out MPDIR [--internet]
 *   cmlab-site serve   --dir DIR [--verbose]
 *   cmlab-site export-trk --dir DIR
 *   cmlab-site join    --dir CHILD --parent-dir PARENT --kind primary|secondary
 *                      (a site made with init --child; site-hier.c)
 *
 * The running site serves, over HTTPS with mutual TLS against its issuing
 * root: its MPs' forwarded client requests (the protocol endpoints, with
 * the forwarding headers), /site/mpconfig for MPs, and the administrative
 * API under /admin/ for administrators (docs/lab.md).  Every call into the
 * site library holds one lock: the library is single-threaded, and SQLite
 * commits one writer at a time anyway. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "site-daemon.h"
#include "site-cmg.h"
#include "site-hier.h"

#define SITE_HOST "site.cmlab.test"

static char *opt_dir;
static char *opt_site_code = "PS1";
static char *opt_forest = "corp.example";
static char *opt_comm = "https-only";
static char *opt_approval = "trusted-domains";
static char *opt_pki_root;
static char *opt_pki_crl;
static char *opt_name;
static char *opt_out;
static gboolean opt_internet;
static char **opt_roles;
static char **opt_scopes;
static char **opt_collections;
static gboolean opt_verbose;
static gboolean opt_child;

static GOptionEntry common_entries[] = {
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir, "The site's state folder", "DIR"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Debug logging", NULL},
    {NULL}};
static GOptionEntry init_entries[] = {
    {"site-code", 0, 0, G_OPTION_ARG_STRING, &opt_site_code, "Site code (PS1)", "CODE"},
    {"forest", 0, 0, G_OPTION_ARG_STRING, &opt_forest, "The site server's forest", "FOREST"},
    {"comm", 0, 0, G_OPTION_ARG_STRING, &opt_comm,
     "Client communication: https-only, http-or-https, ehttp", "MODE"},
    {"approval", 0, 0, G_OPTION_ARG_STRING, &opt_approval,
     "Client approval: manual, trusted-domains, all", "MODE"},
    {"pki-root", 0, 0, G_OPTION_ARG_FILENAME, &opt_pki_root,
     "Enterprise root CA whose client certificates the site trusts (PEM)", "FILE"},
    {"pki-crl", 0, 0, G_OPTION_ARG_FILENAME, &opt_pki_crl, "That CA's current CRL (PEM)", "FILE"},
    {"child", 0, 0, G_OPTION_ARG_NONE, &opt_child,
     "A site that will join a parent (cmlab-site join): its exchange key is no trusted root key",
     NULL},
    {NULL}};
static GOptionEntry mp_entries[] = {
    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "The MP's host name", "HOST"},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out, "The MP's state folder to create", "MPDIR"},
    {"internet", 0, 0, G_OPTION_ARG_NONE, &opt_internet, "An internet-facing MP", NULL},
    {"role", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_roles,
     "add-admin: a security role (full, read-only-analyst, application-deployment-manager, "
     "infrastructure-administrator, ...; repeatable)",
     "ROLE"},
    {"scope", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_scopes, "add-admin: a security scope", "SCOPE"},
    {"collection", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_collections,
     "add-admin: a limiting collection (name)", "NAME"},
    {NULL}};

static char *
path_in(const char *dir, const char *name)
{
    return g_build_filename(dir, name, NULL);
}

static gboolean
load_master_key(const char *dir, guint8 key[32], GError **error)
{
    g_autofree char *path = path_in(dir, "master.key");
    struct stat st;
    size_t len = 0;
    char *data;

    if (stat(path, &st) == 0 && (st.st_mode & 0077) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s may be read by others: chmod 600 %s", path,
                    path);
        return FALSE;
    }
    data = cm_daemon_read_file(path, 64, &len, error);
    if (data == NULL)
        return FALSE;
    if (len != 32) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: expected 32 bytes, found %zu", path, len);
        memset(data, 0, len);
        g_free(data);
        return FALSE;
    }
    memcpy(key, data, 32);
    memset(data, 0, len);
    g_free(data);
    return TRUE;
}

static CmSite *
open_site(const char *dir, const char *code, const CmSiteSettings *settings, CmTime now,
          GError **error)
{
    g_autofree char *db = path_in(dir, "site.db");
    guint8 key[32];
    CmSiteConfig config = {.site_code = code,
                           .db_path = db,
                           .db_mode = CM_STORE_DURABLE,
                           .top_level = !opt_child, /* at creation only */
                           .forest = opt_forest,
                           .master_key = key,
                           .settings = settings};
    CmSite *site;

    if (!load_master_key(dir, key, error))
        return NULL;
    site = cm_site_open(&config, now, error);
    memset(key, 0, sizeof key);
    return site;
}

/* Reads DIR/site.conf's [site] group (written by init). */
static CmNetConfig *
load_conf(const char *dir, char **code, GError **error)
{
    g_autofree char *path = path_in(dir, "site.conf");
    CmNetConfig *cfg = cm_net_config_load(path, error);
    g_autofree char *forest = NULL;

    if (cfg == NULL)
        return NULL;
    if (!cm_net_config_string(cfg, "site", "code", NULL, code, error) ||
        !cm_net_config_string(cfg, "site", "forest", "corp.example", &forest, error)) {
        cm_net_config_free(cfg);
        return NULL;
    }
    opt_forest = g_steal_pointer(&forest);
    return cfg;
}

/* The forests the site knows and its trusts with them (REQ NET-03), from
 * site.conf, so that Kerberos principals the MPs authenticated (realm
 * CORP.EXAMPLE is domain corp.example) are judged by the site's forest
 * trusts:
 *
 *   [forests]
 *   partner.example = two-way
 *   extranet.example = one-way       (the site's forest trusts it)
 *   other.example = none
 *   corp.example = emea.corp.example (more domains; the site's own forest)
 *
 * A value is ';'-separated: the trust with the site's forest and any more
 * domains of that forest.  The site's own forest is always known.  Kept in
 * step with the lab's KDCs by tests/lab/kerberos.sh (scripts/lab-kdc
 * --trust). */
static gboolean
load_forests(CmSite *site, CmNetConfig *cfg, GError **error)
{
    GKeyFile *kf = cm_net_config_keyfile(cfg);
    g_auto(GStrv) keys =
        g_key_file_has_group(kf, "forests") ? g_key_file_get_keys(kf, "forests", NULL, NULL) : NULL;

    if (!cm_site_add_forest(site, opt_forest, NULL, error))
        return FALSE;
    for (char **k = keys; k != NULL && *k != NULL; k++) {
        g_auto(GStrv) items = NULL;
        g_autoptr(GPtrArray) domains = g_ptr_array_new();
        int trust = -1;

        if (!cm_net_config_strings(cfg, "forests", *k, &items, error))
            return FALSE;
        for (char **it = items; *it != NULL; it++) {
            if (strcmp(*it, "two-way") == 0)
                trust = CM_TRUST_TWO_WAY;
            else if (strcmp(*it, "one-way") == 0)
                trust = CM_TRUST_ONE_WAY;
            else if (strcmp(*it, "none") == 0)
                trust = CM_TRUST_NONE;
            else if (strchr(*it, '.') != NULL)
                g_ptr_array_add(domains, *it);
            else {
                g_set_error(error, CM_DAEMON_ERROR, 0,
                            "\"%s\" is neither two-way, one-way, none nor a domain", *it);
                goto bad;
            }
        }
        g_ptr_array_add(domains, NULL);
        if (!cm_site_add_forest(site, *k, (const char *const *)domains->pdata, error))
            goto bad;
        if (g_ascii_strcasecmp(*k, opt_forest) != 0 &&
            !cm_site_set_trust(site, opt_forest, *k,
                               trust < 0 ? CM_TRUST_NONE : (CmForestTrust)trust, error))
            goto bad;
        continue;
    bad:
        g_prefix_error(error, "%s: [forests] %s: ", cm_net_config_name(cfg), *k);
        return FALSE;
    }
    return TRUE;
}

/* The site in dir, for the provisioning commands (new). */
static CmSite *
site_of_dir(const char *dir, CmTime now, GError **error)
{
    g_autofree char *code = NULL;
    g_autoptr(CmNetConfig) cfg = load_conf(dir, &code, error);

    return cfg != NULL ? open_site(dir, code, NULL, now, error) : NULL;
}

/* The --out folder, private to its owner (it receives keys). */
static gboolean
make_out_dir(GError **error)
{
    if (g_mkdir_with_parents(opt_out, 0700) == 0)
        return TRUE;
    g_set_error(error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", opt_out, g_strerror(errno));
    return FALSE;
}

/* ------------------------------------------------------------ init */

static int
cmd_init(void)
{
    GError *error = NULL;
    CmSiteSettings settings;
    guint8 key[32];
    char code[4];
    CmRng rng;
    CmTime now = cm_net_wall_now();
    g_autoptr(CmSite) site = NULL;
    g_autoptr(CmCert) tls = NULL, admin = NULL;
    g_autoptr(CmKey) tls_key = NULL, admin_key = NULL;
    g_autofree char *trk = NULL, *conf = NULL;
    g_autofree char *p_master = NULL, *p_conf = NULL;
    int rc = 1;

    cm_site_settings_default(&settings);
    if (!cm_comm_mode_parse(opt_comm, &settings.communication, &error) ||
        !cm_approval_mode_parse(opt_approval, &settings.approval, &error) ||
        !cm_id_site_code_check(opt_site_code, code, &error))
        goto out;
    if (g_mkdir_with_parents(opt_dir, 0700) != 0) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", opt_dir, g_strerror(errno));
        goto out;
    }
    p_master = path_in(opt_dir, "master.key");
    if (g_file_test(p_master, G_FILE_TEST_EXISTS)) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "%s holds a site already", opt_dir);
        goto out;
    }
    /* The master key seals the site's private keys and secrets in its
     * database (REQ ADM-03); in the lab it is a 0600 file beside it. */
    cm_rng_init_os(&rng);
    cm_rng_bytes(&rng, key, sizeof key);
    if (!cm_daemon_write_file(p_master, key, sizeof key, 0600, &error))
        goto out;
    memset(key, 0, sizeof key);
    site = open_site(opt_dir, opt_site_code, &settings, now, &error);
    if (site == NULL)
        goto out;
    /* The site's own listener and the first administrator's certificate
     * come from its issuing root. */
    if (!cm_site_issue_system_cert(site, CM_CERT_SERVER, SITE_HOST, SITE_HOST, now, &tls, &tls_key,
                                   &error) ||
        !cm_site_issue_system_cert(site, CM_CERT_CLIENT_AUTH, "admin", NULL, now, &admin,
                                   &admin_key, &error))
        goto out;
    {
        g_autofree char *p1 = path_in(opt_dir, "tls.pem"), *p2 = path_in(opt_dir, "tls.key");
        g_autofree char *p3 = path_in(opt_dir, "admin.pem"), *p4 = path_in(opt_dir, "admin.key");
        g_autofree char *p5 = path_in(opt_dir, "issuing-root.pem");
        g_autofree char *p6 = path_in(opt_dir, "trk.hex");
        trk = cm_site_export_trk(site);
        if (!cm_daemon_save_cert(p1, tls, &error) || !cm_daemon_save_key(p2, tls_key, &error) ||
            !cm_daemon_save_cert(p3, admin, &error) || !cm_daemon_save_key(p4, admin_key, &error) ||
            !cm_daemon_save_cert(p5, cm_site_issuing_root(site), &error) ||
            !cm_daemon_write_file(p6, trk, strlen(trk), 0644, &error))
            goto out;
    }
    /* The built-in administrator signs in with that certificate, and
     * names that are not registered administrators are refused. */
    {
        g_autofree char *thumb = cm_cert_thumbprint_hex(admin);
        if (!cm_site_admin_set_identity(site, CM_SITE_BUILTIN_ADMIN, NULL, thumb,
                                        CM_SITE_BUILTIN_ADMIN, now, &error) ||
            !cm_site_rbac_set_enforced(site, TRUE, CM_SITE_BUILTIN_ADMIN, now, &error))
            goto out;
    }
    conf = g_strdup_printf("# cmlab-site configuration (written by cmlab-site init)\n"
                           "[site]\ncode = %s\nforest = %s\nadmins = admin\n%s%s%s%s%s%s"
                           "\n[listen]\naddress = 127.0.0.1\nhttps_port = 0\n",
                           opt_site_code, opt_forest, opt_pki_root ? "pki_root = " : "",
                           opt_pki_root ? opt_pki_root : "", opt_pki_root ? "\n" : "",
                           opt_pki_crl ? "pki_crl = " : "", opt_pki_crl ? opt_pki_crl : "",
                           opt_pki_crl ? "\n" : "");
    p_conf = path_in(opt_dir, "site.conf");
    if (!cm_daemon_write_file(p_conf, conf, strlen(conf), 0644, &error))
        goto out;
    printf("site %s created in %s (communication %s, approval %s)\n", opt_site_code, opt_dir,
           opt_comm, opt_approval);
    printf("SMSPublicRootKey: %s\n", trk);
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-site init: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

/* ---------------------------------------------------------- add-mp */

static int
cmd_add_mp(void)
{
    GError *error = NULL;
    CmTime now = cm_net_wall_now();
    g_autofree char *mp_conf = NULL, *site_addr = NULL;
    g_autoptr(CmSite) site = NULL;
    g_autoptr(CmCert) mp_cert = NULL, tls = NULL, client = NULL;
    g_autoptr(CmKey) key = NULL, client_key = NULL;
    CmMpInfo info;
    int rc = 1;

    if (opt_name == NULL || opt_out == NULL) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "give --name HOST and --out MPDIR");
        goto out;
    }
    if ((site = site_of_dir(opt_dir, now, &error)) == NULL || !make_out_dir(&error))
        goto out;
    if (!cm_site_hier_add_mp(site, opt_dir, opt_name, opt_internet, now, &info, &mp_cert, &tls,
                             &key, &error) ||
        !cm_site_issue_system_cert(site, CM_CERT_CLIENT_AUTH, info.name, NULL, now, &client,
                                   &client_key, &error))
        goto out;
    {
        g_autofree char *p1 = path_in(opt_out, "mp-cert.pem"), *p2 = path_in(opt_out, "mp.key");
        g_autofree char *p3 = path_in(opt_out, "ehttp.pem");
        g_autofree char *p4 = path_in(opt_out, "site-client.pem");
        g_autofree char *p5 = path_in(opt_out, "site-client.key");
        g_autofree char *p6 = path_in(opt_out, "site-root.pem");
        if (!cm_daemon_save_cert(p1, mp_cert, &error) || !cm_daemon_save_key(p2, key, &error) ||
            !cm_daemon_save_cert(p3, tls, &error) || !cm_daemon_save_cert(p4, client, &error) ||
            !cm_daemon_save_key(p5, client_key, &error) ||
            !cm_daemon_save_cert(p6, cm_site_issuing_root(site), &error))
            goto out;
    }
    {
        g_autofree char *abs = g_canonicalize_filename(opt_dir, NULL);
        site_addr = g_build_filename(abs, "site.addr", NULL);
    }
    mp_conf = g_strdup_printf("# cmlab-mp configuration (written by cmlab-site add-mp)\n"
                              "[mp]\nname = %s\nrole_id = %" G_GUINT64_FORMAT "\ninternet = %s\n"
                              "site_host = %s\nsite_addr_file = %s\n"
                              "\n[listen]\naddress = 127.0.0.1\nhttp_port = 0\nhttps_port = 0\n",
                              info.name, info.role_id, opt_internet ? "true" : "false", SITE_HOST,
                              site_addr);
    {
        g_autofree char *p = path_in(opt_out, "mp.conf");
        if (!cm_daemon_write_file(p, mp_conf, strlen(mp_conf), 0644, &error))
            goto out;
    }
    printf("MP %s (role %" G_GUINT64_FORMAT ") provisioned in %s\n", info.name, info.role_id,
           opt_out);
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-site add-mp: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

/* A distribution point: its TLS certificate from the issuing root (an
 * Enhanced HTTP DP; the lab gives a PKI-mode DP one from its enterprise CA
 * instead), the site signing certificate that verifies content access
 * tokens, and dp.conf. */
static int
cmd_add_dp(void)
{
    GError *error = NULL;
    CmTime now = cm_net_wall_now();
    g_autofree char *dp_conf = NULL, *host = NULL;
    g_autoptr(CmSite) site = NULL;
    g_autoptr(CmCert) tls = NULL;
    g_autoptr(CmKey) key = NULL;
    int rc = 1;

    if (opt_name == NULL || opt_out == NULL) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "give --name HOST and --out DPDIR");
        goto out;
    }
    host = g_ascii_strdown(opt_name, -1);
    if ((site = site_of_dir(opt_dir, now, &error)) == NULL || !make_out_dir(&error))
        goto out;
    if (!cm_site_issue_system_cert(site, CM_CERT_SERVER, host, host, now, &tls, &key, &error))
        goto out;
    {
        g_autofree char *p1 = path_in(opt_out, "tls.pem"), *p2 = path_in(opt_out, "tls.key");
        g_autofree char *p3 = path_in(opt_out, "site-signing.pem");
        if (!cm_daemon_save_cert(p1, tls, &error) || !cm_daemon_save_key(p2, key, &error) ||
            !cm_daemon_save_cert(p3, cm_site_signing_cert(site), &error))
            goto out;
    }
    dp_conf = g_strdup_printf("# cmlab-dp configuration (written by cmlab-site add-dp)\n"
                              "[dp]\nname = %s\nsite_code = %s\nhttps = false\n"
                              "allow_anonymous = true\n"
                              "\n[listen]\naddress = 127.0.0.1\nhttp_port = 0\nhttps_port = 0\n",
                              host, cm_site_code(site));
    {
        g_autofree char *p = path_in(opt_out, "dp.conf");
        if (!cm_daemon_write_file(p, dp_conf, strlen(dp_conf), 0644, &error))
            goto out;
    }
    printf("DP %s provisioned in %s\n", host, opt_out);
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-site add-dp: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

/* add-cmg and add-connection-point (site-cmg.c), with the site open. */
static int
cmd_cmg(const char *cmd)
{
    GError *error = NULL;
    g_autoptr(CmSite) site = site_of_dir(opt_dir, cm_net_wall_now(), &error);

    if (site == NULL) {
        fprintf(stderr, "cmlab-site %s: %s\n", cmd, error->message);
        g_error_free(error);
        return 1;
    }
    return cm_site_cmg_command(cmd, site, opt_dir, opt_name, opt_out);
}

/* An administrator with roles (REQ ADM-01), registered by the built-in
 * one, and its certificate from the issuing root in OUT/NAME.pem,.key. */
static int
cmd_add_admin(void)
{
    GError *error = NULL;
    CmTime now = cm_net_wall_now();
    g_autofree char *thumb = NULL;
    g_autoptr(CmSite) site = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmKey) key = NULL;
    CmSecurityRole roles[CM_ADMIN_MAX_ROLES];
    gint64 colls[CM_ADMIN_MAX_COLLECTIONS];
    CmAdminSpec spec = {0};
    int rc = 1;

    if (opt_name == NULL || opt_out == NULL || opt_roles == NULL) {
        g_set_error(&error, CM_DAEMON_ERROR, 0, "give --name, --role and --out");
        goto out;
    }
    if ((site = site_of_dir(opt_dir, now, &error)) == NULL)
        goto out;
    for (char **r = opt_roles; *r != NULL && spec.n_roles < CM_ADMIN_MAX_ROLES; r++)
        if (!cm_security_role_parse(*r, &roles[spec.n_roles++], &error))
            goto out;
    for (char **c = opt_collections;
         c != NULL && *c != NULL && spec.n_collections < CM_ADMIN_MAX_COLLECTIONS; c++) {
        colls[spec.n_collections] = cm_site_collection_id(site, *c);
        if (colls[spec.n_collections++] < 0) {
            g_set_error(&error, CM_DAEMON_ERROR, 0, "no collection \"%s\"", *c);
            goto out;
        }
    }
    if (!cm_site_issue_system_cert(site, CM_CERT_CLIENT_AUTH, opt_name, NULL, now, &cert, &key,
                                   &error))
        goto out;
    thumb = cm_cert_thumbprint_hex(cert);
    spec.name = opt_name;
    spec.roles = roles;
    spec.collections = colls;
    spec.scopes = (const char *const *)opt_scopes;
    spec.cert_thumbprint = thumb;
    if (!cm_site_rbac_add_admin(site, &spec, CM_SITE_BUILTIN_ADMIN, now, &error))
        goto out;
    if (!make_out_dir(&error))
        goto out;
    {
        g_autofree char *n1 = g_strconcat(opt_name, ".pem", NULL);
        g_autofree char *n2 = g_strconcat(opt_name, ".key", NULL);
        g_autofree char *p1 = path_in(opt_out, n1), *p2 = path_in(opt_out, n2);
        if (!cm_daemon_save_cert(p1, cert, &error) || !cm_daemon_save_key(p2, key, &error))
            goto out;
        printf("administrator %s: certificate %s, key %s\n", opt_name, p1, p2);
    }
    rc = 0;
out:
    if (error != NULL) {
        fprintf(stderr, "cmlab-site add-admin: %s\n", error->message);
        g_error_free(error);
    }
    return rc;
}

/* Walks the audit trail's hash chain (REQ ADM-01): exit 0 intact, 1
 * tampered (the first bad entry named), 2 unreadable. */
static int
cmd_verify_audit(void)
{
    GError *error = NULL;
    g_autoptr(CmSite) site = site_of_dir(opt_dir, cm_net_wall_now(), &error);
    CmAuditReport r;

    if (site == NULL || !cm_site_audit_verify(site, NULL, &r, &error)) {
        fprintf(stderr, "cmlab-site verify-audit: %s\n", error->message);
        g_error_free(error);
        return 2;
    }
    printf("audit trail: %s, %" G_GINT64_FORMAT " entries%s%s\n", cm_audit_verdict_name(r.verdict),
           r.entries, r.message[0] ? ": " : "", r.message);
    return r.verdict == CM_AUDIT_OK ? 0 : 1;
}

static int
cmd_export_trk(void)
{
    GError *error = NULL;
    g_autofree char *path = path_in(opt_dir, "trk.hex");
    g_autofree char *trk = cm_daemon_read_file(path, 4096, NULL, &error);

    if (trk == NULL) {
        fprintf(stderr, "cmlab-site export-trk: %s\n", error->message);
        g_error_free(error);
        return 1;
    }
    printf("%s\n", trk);
    return 0;
}

/* site-hier.c opens the other sites of a hierarchy as the commands open
 * this one. */
CmSite *
cm_site_daemon_open(const char *dir, gboolean forests, char **code_out, GError **error)
{
    char *forest = opt_forest; /* load_conf sets it for this folder */
    g_autofree char *code = NULL;
    g_autoptr(CmNetConfig) cfg = load_conf(dir, &code, error);
    CmSite *site = cfg ? open_site(dir, code, NULL, cm_net_wall_now(), error) : NULL;

    if (site != NULL && forests && !load_forests(site, cfg, error))
        g_clear_pointer(&site, cm_site_free);
    if (site != NULL && code_out != NULL)
        *code_out = g_steal_pointer(&code);
    if (opt_forest != forest)
        g_free(opt_forest);
    opt_forest = forest;
    return site;
}

/* ------------------------------------------------------------ serve */

/* Whether the peer is one of the site's MPs (its client certificate names
 * it; the TLS layer checked it chains to the issuing root). */
static gboolean
is_mp(SiteDaemon *d, const CmCert *peer)
{
    g_autoptr(GArray) mps = NULL;
    gboolean found = FALSE;

    if (peer == NULL)
        return FALSE;
    mps = cm_site_mps(d->site);
    for (guint i = 0; mps != NULL && i < mps->len && !found; i++)
        found = strcmp(g_array_index(mps, CmMpInfo, i).name, cm_cert_subject_cn(peer)) == 0;
    return found;
}

static void
count_registration(SiteDaemon *d, CmReason reason)
{
    if (d->registrations[reason] == NULL) {
        const char *labels[] = {"result", cm_reason_name(reason), NULL};
        d->registrations[reason] = cm_net_metrics_counter(d->metrics, "cm_site_registrations_total",
                                                          "Registrations by result", labels);
    }
    cm_net_counter_inc(d->registrations[reason]);
}

/* ------------------------------------------------------ group commit
 *
 * A forwarded request that wrote to the database is answered only once its
 * transaction is on disk, as before, but the disk flush is shared: the
 * request's transaction commits with synchronous=NORMAL (written to the
 * WAL, not yet flushed), its answer waits in a batch, and one thread
 * flushes the WAL (fdatasync on our own descriptor of site.db-wal: the
 * flush covers every byte written to the file before it) and then sends
 * every answer of the batch, while the workers go on committing the next
 * batch.  A crash before the flush loses only transactions nobody was
 * told about; SQLite's WAL stays consistent with synchronous=NORMAL.
 * Every other write (the administrative API) keeps synchronous=FULL.
 * Until the WAL file exists, requests commit with FULL and are answered
 * at once. */

typedef struct {
    CmNetCall *call;
    CmResponse resp;
} Held;

typedef struct {
    char *wal_path;
    int wal_fd; /* -1 until the WAL exists; set once, under d->lock */
    GMutex lock;
    GCond cond;
    GArray *batch; /* Held, waiting for the next flush */
    gboolean stopping;
    GThread *thread;
    CmNetHistogram *batch_size;
    CmNetCounter *flushes;
} GroupCommit;

static GroupCommit group = {.wal_fd = -1};

static gpointer
group_main(gpointer data)
{
    GroupCommit *g = data;
    GArray *take = g_array_new(FALSE, FALSE, sizeof(Held));

    g_mutex_lock(&g->lock);
    for (;;) {
        GArray *t;
        int fd;
        gboolean synced;
        while (!g->stopping && g->batch->len == 0)
            g_cond_wait(&g->cond, &g->lock);
        if (g->batch->len == 0)
            break;
        t = g->batch;
        g->batch = take;
        take = t;
        fd = g->wal_fd;
        g_mutex_unlock(&g->lock);
        synced = fdatasync(fd) == 0;
        if (!synced)
            g_warning("flushing %s: %s; %u answers refused", g->wal_path, g_strerror(errno),
                      take->len);
        cm_net_counter_inc(g->flushes);
        cm_net_histogram_observe(g->batch_size, take->len);
        for (guint i = 0; i < take->len; i++) {
            Held *h = &g_array_index(take, Held, i);
            if (!synced) {
                cm_response_clear(&h->resp);
                cm_response_refuse(&h->resp, CM_REASON_BUSY,
                                   "the site could not write its database; retry later");
                h->resp.retry_after = 10 * CM_USEC_PER_SEC;
            }
            cm_net_call_reply(h->call, &h->resp);
        }
        g_array_set_size(take, 0);
        g_mutex_lock(&g->lock);
    }
    g_mutex_unlock(&g->lock);
    g_array_unref(take);
    return NULL;
}

static void
group_start(SiteDaemon *d, const char *dir)
{
    static const double bounds[] = {1, 2, 4, 8, 16, 32, 64, 128};

    group.wal_path = g_build_filename(dir, "site.db-wal", NULL);
    g_mutex_init(&group.lock);
    g_cond_init(&group.cond);
    group.batch = g_array_new(FALSE, FALSE, sizeof(Held));
    group.batch_size = cm_net_metrics_histogram(d->metrics, "cm_site_commit_batch_size",
                                                "Answers released by one WAL flush", NULL, bounds,
                                                G_N_ELEMENTS(bounds));
    group.flushes = cm_net_metrics_counter(d->metrics, "cm_site_commit_flushes_total",
                                           "WAL flushes of the group commit", NULL);
    group.thread = g_thread_new("group-commit", group_main, &group);
}

/* Sends what is waiting and stops the thread; once the server stopped. */
static void
group_stop(void)
{
    if (group.thread == NULL)
        return;
    g_mutex_lock(&group.lock);
    group.stopping = TRUE;
    g_cond_signal(&group.cond);
    g_mutex_unlock(&group.lock);
    g_thread_join(group.thread);
    group.thread = NULL;
    g_array_unref(group.batch);
    if (group.wal_fd >= 0)
        close(group.wal_fd);
    g_free(group.wal_path);
    g_mutex_clear(&group.lock);
    g_cond_clear(&group.cond);
}

/* Under d->lock: whether the next transaction may commit without its own
 * flush (the WAL exists and the group thread will flush it). */
static gboolean
group_ready(void)
{
    if (group.thread == NULL)
        return FALSE;
    if (group.wal_fd < 0) {
        int fd = open(group.wal_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return FALSE;
        g_mutex_lock(&group.lock);
        group.wal_fd = fd;
        g_mutex_unlock(&group.lock);
    }
    return TRUE;
}

static void
set_synchronous(SiteDaemon *d, gboolean full)
{
    GError *error = NULL;

    if (!cm_store_exec(cm_site_store(d->site),
                       full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", &error)) {
        g_warning("%s", error->message);
        g_error_free(error);
    }
}

/* Takes resp: the answer goes once the WAL is flushed. */
static void
group_hold(CmNetCall *call, CmResponse *resp)
{
    Held h = {.call = call, .resp = *resp};

    memset(resp, 0, sizeof *resp);
    g_mutex_lock(&group.lock);
    g_array_append_val(group.batch, h);
    g_cond_signal(&group.cond);
    g_mutex_unlock(&group.lock);
}

/* A client request one of our MPs forwarded. */
static gboolean
on_forwarded(CmNetCall *call, const CmRequest *in, CmResponse *resp, void *user_data)
{
    SiteDaemon *d = user_data;
    CmRequest req = *in;
    g_autoptr(CmCert) client_cert = NULL;
    GError *error = NULL;
    gboolean grouped;

    g_mutex_lock(&d->lock);
    if (!is_mp(d, cm_net_call_peer_cert(call))) {
        g_mutex_unlock(&d->lock);
        cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                           "only the site's management points may forward client requests");
        return TRUE;
    }
    if (!cm_daemon_forward_parse(call, &req, &client_cert, &error)) {
        g_mutex_unlock(&d->lock);
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "%s", error->message);
        g_error_free(error);
        return TRUE;
    }
    grouped = group_ready();
    if (grouped)
        set_synchronous(d, FALSE);
    cm_site_handle(d->site, &req, cm_net_wall_now(), resp);
    if (grouped)
        set_synchronous(d, TRUE);
    if (req.ep == CM_EP_REGISTER)
        count_registration(d, resp->reason);
    g_mutex_unlock(&d->lock);
    cm_net_counter_inc(d->forwarded);
    g_debug("%s %s from %s: %d %s", cm_ep_name(req.ep), req.smsid,
            cm_cert_subject_cn(cm_net_call_peer_cert(call)), resp->status,
            cm_reason_name(resp->reason));
    if (!grouped)
        return TRUE; /* its own commit flushed it */
    /* Held even when this request wrote nothing: it may have read what an
     * earlier, not yet flushed, transaction wrote. */
    group_hold(call, resp);
    return FALSE;
}

/* What an MP needs from its site: the published information and MP list,
 * and the PKI roots and CRL its TLS layer checks client certificates
 * against. */
static gboolean
on_site_api(CmNetCall *call, const CmRequest *req, CmResponse *resp, void *user_data)
{
    SiteDaemon *d = user_data;
    json_t *o;

    if (strcmp(cm_net_call_path(call), CM_SITE_API_REPLICATE) == 0)
        return cm_site_hier_replicate_api(call, req, resp, d);
    if (strcmp(cm_net_call_path(call), CM_SITE_API_MPCONFIG) != 0) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT, "no site API at %s",
                           cm_net_call_path(call));
        return TRUE;
    }
    g_mutex_lock(&d->lock);
    if (!is_mp(d, cm_net_call_peer_cert(call))) {
        g_mutex_unlock(&d->lock);
        cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                           "only the site's MPs read their configuration");
        return TRUE;
    }
    o = json_pack("{s:o, s:o}", "siteinfo", cm_site_siteinfo_json(d->site), "mplist",
                  cm_site_mplist_json(d->site));
    cm_site_cmg_mplist(d->dir, json_object_get(o, "mplist"));
    cm_site_cmg_mpconfig(d->dir, o);
    if (d->pki_root != NULL) {
        g_autofree char *pem = cm_cert_to_pem(d->pki_root);
        json_object_set_new(o, "pki_root", json_string(pem));
    }
    if (d->pki_crl != NULL) {
        g_autofree char *pem = cm_crl_to_pem(d->pki_crl);
        json_object_set_new(o, "pki_crl", json_string(pem));
    }
    g_mutex_unlock(&d->lock);
    cm_daemon_reply_json(resp, o);
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

static int
cmd_serve(void)
{
    GError *error = NULL;
    SiteDaemon d = {0};
    CmNetHttpdConfig hc = {0};
    g_autofree char *code = NULL, *p_root = NULL, *p_crl = NULL;
    g_autoptr(CmNetConfig) cfg = NULL;
    g_autoptr(CmNetHttpd) httpd = NULL;
    g_autoptr(CmCert) tls = NULL;
    g_autoptr(CmKey) tls_key = NULL;
    g_autoptr(CmTrust) trust = cm_trust_new();
    g_autoptr(CmNetMetrics) metrics = cm_net_metrics_new();
    gint64 n_clients;
    int rc = 1, sig;

    g_mutex_init(&d.lock);
    d.dir = opt_dir;
    d.metrics = metrics;
    cfg = load_conf(opt_dir, &code, &error);
    if (cfg == NULL || !cm_net_config_strings(cfg, "site", "admins", &d.admins, &error) ||
        (cm_net_config_has(cfg, "site", "pki_root") &&
         !cm_net_config_path(cfg, "site", "pki_root", NULL, &p_root, &error)) ||
        (cm_net_config_has(cfg, "site", "pki_crl") &&
         !cm_net_config_path(cfg, "site", "pki_crl", NULL, &p_crl, &error)) ||
        !cm_net_config_httpd(cfg, "listen", &hc, &error))
        goto out;
    /* A child's replication batches (site-hier.c) are bounded by the library. */
    hc.max_body_size = MAX(hc.max_body_size, (size_t)CM_REPL_BATCH_MAX);
    d.site = open_site(opt_dir, code, NULL, cm_net_wall_now(), &error);
    if (d.site == NULL || !load_forests(d.site, cfg, &error))
        goto out;
    if (p_root != NULL && (d.pki_root = cm_daemon_load_cert(p_root, &error)) == NULL)
        goto out;
    if (p_crl != NULL && (d.pki_crl = cm_daemon_load_crl(p_crl, &error)) == NULL)
        goto out;
    if (d.pki_root != NULL && !cm_site_set_pki(d.site, d.pki_root, d.pki_crl, &error))
        goto out;
    {
        g_autofree char *p1 = path_in(opt_dir, "tls.pem"), *p2 = path_in(opt_dir, "tls.key");
        if ((tls = cm_daemon_load_cert(p1, &error)) == NULL ||
            (tls_key = cm_daemon_load_key(p2, &error)) == NULL)
            goto out;
    }
    /* MPs and administrators both hold certificates from the issuing root;
     * what each may call is decided by the name in it. */
    if (!cm_trust_add_root(trust, cm_site_issuing_root(d.site), &error))
        goto out;
    hc.https = TRUE;
    hc.http = FALSE;
    hc.server_cert = tls;
    hc.server_key = tls_key;
    hc.client_cert = CM_NET_CLIENT_CERT_REQUIRED;
    hc.client_trust = trust;
    d.admin_trust = trust;
    hc.handler = on_forwarded;
    hc.handler_data = &d;
    hc.metrics = metrics;
    d.forwarded = cm_net_metrics_counter(metrics, "cm_site_forwarded_total",
                                         "Client requests MPs forwarded", NULL);
    /* Counted before the workers and the replication thread start: from
     * then on the database connection is theirs, under d.lock. */
    n_clients = cm_site_client_count(d.site, -1);
    cm_store_set_guard(cm_site_store(d.site), &d.lock);
    httpd = cm_net_httpd_new(&hc, &error);
    if (httpd == NULL ||
        !cm_net_httpd_add_api(httpd, CM_SITE_API_PREFIX, on_site_api, &d, &error) ||
        !cm_net_httpd_add_api(httpd, CM_ADMIN_API_PREFIX, cm_site_admin_api, &d, &error) ||
        !cm_net_httpd_add_route(httpd, "/metrics", cm_net_metrics_route, metrics, &error) ||
        !cm_net_httpd_add_route(httpd, "/health", health_route, NULL, &error) ||
        !cm_net_httpd_start(httpd, &error))
        goto out;
    group_start(&d, opt_dir);
    if (!cm_site_hier_start(&d, cfg, &error))
        goto out;
    if (!cm_daemon_write_addr(opt_dir, "site", hc.address ? hc.address : "127.0.0.1", 0,
                              cm_net_httpd_https_port(httpd), &error))
        goto out;
    g_message("site %s serving on https://%s:%u (%u workers, %" G_GINT64_FORMAT " clients)", code,
              hc.address ? hc.address : "127.0.0.1", cm_net_httpd_https_port(httpd),
              cm_net_httpd_n_workers(httpd), n_clients);
    sig = cm_net_wait_for_signal();
    g_message("signal %d: stopping", sig);
    cm_net_httpd_stop(httpd);
    rc = 0;
out:
    if (error != NULL) {
        g_critical("cmlab-site serve: %s", error->message);
        g_error_free(error);
    }
    if (httpd != NULL)
        cm_net_httpd_stop(httpd);
    /* Answers still waiting for their flush go before the server does. */
    group_stop();
    cm_site_hier_stop();
    g_clear_pointer(&httpd, cm_net_httpd_free);
    if (d.site != NULL)
        cm_store_set_guard(cm_site_store(d.site), NULL);
    cm_site_free(d.site);
    cm_cert_unref(d.pki_root);
    if (d.pki_crl != NULL)
        cm_crl_unref(d.pki_crl);
    g_strfreev(d.admins);
    g_mutex_clear(&d.lock);
    return rc;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = NULL;
    GError *error = NULL;
    const char *cmd;

    ctx = g_option_context_new("COMMAND - the cmlab site server");
    g_option_context_set_summary(
        ctx, "Commands:\n"
             "  init        create a site in --dir\n"
             "  add-mp      provision a management point (--name, --out)\n"
             "  add-dp      provision a distribution point (--name, --out)\n"
             "  add-admin   an administrator with roles (--name, --role, --out)\n"
             "  verify-audit  check the audit trail's hash chain\n"
             "  add-cmg     provision a cloud management gateway (--name, --out, --root)\n"
             "  add-connection-point  provision a CMG connection point (--name, --cmg, --out, "
             "--mp-addr)\n"
             "  join        join a child site (--dir) to its parent (--parent-dir, --kind)\n"
             "  serve       run the site server\n"
             "  export-trk  print the SMSPublicRootKey value");
    g_option_context_add_main_entries(ctx, common_entries, NULL);
    {
        GOptionGroup *g =
            g_option_group_new("init", "init options", "Show init options", NULL, NULL);
        g_option_group_add_entries(g, init_entries);
        g_option_context_add_group(ctx, g);
        g = g_option_group_new("add-mp", "add-mp options", "Show add-mp options", NULL, NULL);
        g_option_group_add_entries(g, mp_entries);
        g_option_context_add_group(ctx, g);
        g = g_option_group_new("cmg", "add-cmg and add-connection-point options",
                               "Show CMG options", NULL, NULL);
        g_option_group_add_entries(g, cm_site_cmg_entries);
        g_option_context_add_group(ctx, g);
        g = g_option_group_new("hierarchy", "join and hierarchy options", "Show hierarchy options",
                               NULL, NULL);
        g_option_group_add_entries(g, cm_site_hier_entries);
        g_option_context_add_group(ctx, g);
    }
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "cmlab-site: %s (see --help)\n", error->message);
        g_error_free(error);
        return 2;
    }
    if (argc != 2 || opt_dir == NULL) {
        fprintf(stderr, "cmlab-site: give one command and --dir DIR (see --help)\n");
        return 2;
    }
    cmd = argv[1];
    cm_net_init();
    cm_daemon_log_init("cmlab-site", opt_verbose);
    if (strcmp(cmd, "init") == 0)
        return cmd_init();
    if (strcmp(cmd, "add-mp") == 0)
        return cmd_add_mp();
    if (strcmp(cmd, "add-dp") == 0)
        return cmd_add_dp();
    if (strcmp(cmd, "add-admin") == 0)
        return cmd_add_admin();
    if (strcmp(cmd, "verify-audit") == 0)
        return cmd_verify_audit();
    if (strcmp(cmd, "add-cmg") == 0 || strcmp(cmd, "add-connection-point") == 0)
        return cmd_cmg(cmd);
    if (strcmp(cmd, "join") == 0)
        return cm_site_hier_join(opt_dir);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve();
    if (strcmp(cmd, "export-trk") == 0)
        return cmd_export_trk();
    fprintf(stderr, "cmlab-site: unknown command \"%s\" (see --help)\n", cmd);
    return 2;
}
