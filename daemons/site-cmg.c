/* site-cmg.c - what the site does for its cloud management gateway in the
 * lab: `cmlab-site add-cmg` and `add-connection-point`, the CMG's entries
 * in the MP list the MPs hand out, and the blocked bulk registration
 * tokens (docs/lab.md, "CMG").
 *
 * In the product the site reaches the cloud service through Azure; in the
 * lab it writes into the gateway's folder instead: the published
 * mappings, the connection points it registered (their certificates), and
 * the blocked token IDs. */
#include "site-cmg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static char **opt_roots;
static char **opt_ctl;
static char **opt_crls;
static gboolean opt_crl_check;
static char *opt_tls_cert;
static char *opt_tls_key;
static char *opt_cmg;
static char **opt_mp_addr;
static char **opt_mp_ca;

GOptionEntry cm_site_cmg_entries[] = {
    {"root", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_roots,
     "add-cmg: a trusted root uploaded to the gateway (PEM; repeat)", "FILE"},
    {"ctl", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_ctl,
     "add-cmg: a root of the site's certificate trust list (repeat; none: every root)", "FILE"},
    {"crl", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_crls,
     "add-cmg: where a root's CRL is published (the gateway re-reads it; repeat)", "FILE"},
    {"crl-check", 0, 0, G_OPTION_ARG_NONE, &opt_crl_check,
     "add-cmg: check client certificates for revocation", NULL},
    {"tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_cert,
     "add-cmg: the gateway's server certificate (default: one from the issuing root)", "FILE"},
    {"tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_key, "add-cmg: its private key", "FILE"},
    {"cmg", 0, 0, G_OPTION_ARG_FILENAME, &opt_cmg,
     "add-connection-point: the gateway's folder (from add-cmg)", "CMGDIR"},
    {"mp-addr", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_mp_addr,
     "add-connection-point: an MP's mp.addr (beside its mp.conf; repeat)", "FILE"},
    {"mp-ca", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_mp_ca,
     "add-connection-point: a root the MPs' HTTPS certificates chain to, besides the issuing "
     "root (repeat)",
     "FILE"},
    {NULL}};

static char *
path_in(const char *dir, const char *name)
{
    return g_build_filename(dir, name, NULL);
}

/* Concatenates PEM files into one bundle, checking each holds a
 * certificate. */
static gboolean
write_bundle(const char *path, char **files, GError **error)
{
    g_autoptr(GString) all = g_string_new(NULL);

    for (char **f = files; f != NULL && *f != NULL; f++) {
        g_autoptr(CmCert) c = cm_daemon_load_cert(*f, error);
        g_autofree char *pem = NULL;
        if (c == NULL)
            return FALSE;
        pem = cm_cert_to_pem(c);
        g_string_append(all, pem);
    }
    return cm_daemon_write_file(path, all->str, all->len, 0644, error);
}

static gboolean
copy_file(const char *from, const char *to, GError **error)
{
    size_t len = 0;
    g_autofree char *data = cm_daemon_read_file(from, 16 * 1024 * 1024, &len, error);

    return data != NULL && cm_daemon_write_file(to, data, len, 0644, error);
}

static int
add_cmg(CmSite *site, const char *dir, const char *name, const char *out, GError **error)
{
    CmTime now = cm_net_wall_now();
    g_autofree char *host = NULL, *conf = NULL, *abs_out = NULL, *json = NULL, *site_conf = NULL;
    g_autofree char *crls = NULL;
    g_autoptr(CmCmgMappings) m = NULL;
    g_autoptr(GArray) mps = NULL;
    g_autoptr(GPtrArray) entries = NULL;
    g_autoptr(GString) list = g_string_new(NULL);
    g_autoptr(CmCert) tls = NULL;
    g_autoptr(CmKey) key = NULL;
    const char *code = cm_site_code(site);

    if (name == NULL || out == NULL || opt_roots == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0,
                    "give --name HOST, --out CMGDIR and at least one --root FILE");
        return 1;
    }
    host = g_ascii_strdown(name, -1);
    /* Enabling CMG traffic on every MP of the site publishes its three
     * folders (REQ CMG-05, CMG-10). */
    if ((m = cm_cmg_mappings_new(host, error)) == NULL)
        return 1;
    mps = cm_site_mps(site);
    for (guint i = 0; mps != NULL && i < mps->len; i++) {
        const CmMpInfo *mp = &g_array_index(mps, CmMpInfo, i);
        if (!cm_cmg_mappings_add_mp(m, code, mp->role_id, mp->name, error))
            return 1;
    }
    if (cm_cmg_mappings_count(m) == 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "the site has no MP to publish (add-mp first)");
        return 1;
    }
    if (g_mkdir_with_parents(out, 0700) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", out, g_strerror(errno));
        return 1;
    }
    {
        g_autofree char *cps = path_in(out, "connection-points");
        if (g_mkdir_with_parents(cps, 0700) != 0) {
            g_set_error(error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", cps, g_strerror(errno));
            return 1;
        }
    }
    if (opt_tls_cert != NULL) {
        if ((tls = cm_daemon_load_cert(opt_tls_cert, error)) == NULL ||
            (key = cm_daemon_load_key(opt_tls_key ? opt_tls_key : "", error)) == NULL)
            return 1;
    } else if (!cm_site_issue_system_cert(site, CM_CERT_SERVER, host, host, now, &tls, &key,
                                          error)) {
        return 1;
    }
    json = cm_cmg_mappings_to_json(m);
    crls = opt_crls ? g_strjoinv(";", opt_crls) : g_strdup("");
    {
        g_autofree char *p1 = path_in(out, "tls.pem"), *p2 = path_in(out, "tls.key");
        g_autofree char *p3 = path_in(out, "site-signing.pem"), *p4 = path_in(out, "site-root.pem");
        g_autofree char *p5 = path_in(out, "roots.pem"), *p6 = path_in(out, "ctl.pem");
        g_autofree char *p7 = path_in(out, "mappings.json");
        if (!cm_daemon_save_cert(p1, tls, error) || !cm_daemon_save_key(p2, key, error) ||
            !cm_daemon_save_cert(p3, cm_site_signing_cert(site), error) ||
            !cm_daemon_save_cert(p4, cm_site_issuing_root(site), error) ||
            !write_bundle(p5, opt_roots, error) ||
            (opt_ctl != NULL && !write_bundle(p6, opt_ctl, error)) ||
            !cm_daemon_write_file(p7, json, strlen(json), 0644, error))
            return 1;
    }
    conf = g_strdup_printf("# cmlab-cmg gateway configuration (written by cmlab-site add-cmg)\n"
                           "[cmg]\nname = %s\ninstance = 0\nsite_code = %s\n"
                           "site_signing_cert = site-signing.pem\nroots = roots.pem\n%s"
                           "crl_check = %s\ncrls = %s\n"
                           "\n[listen]\naddress = 127.0.0.1\nhttps_port = 0\n"
                           "\n[cp_listen]\naddress = 127.0.0.1\nhttps_port = 0\n",
                           host, code, opt_ctl ? "ctl = ctl.pem\n" : "",
                           opt_crl_check ? "true" : "false", crls);
    {
        g_autofree char *p = path_in(out, "cmg.conf");
        if (!cm_daemon_write_file(p, conf, strlen(conf), 0644, error))
            return 1;
    }
    /* The site remembers its CMG: its internet MP entries go into the MP
     * list, blocked tokens into its folder. */
    abs_out = g_canonicalize_filename(out, NULL);
    entries = cm_cmg_mappings_mp_entries(m);
    for (guint i = 0; i < entries->len; i++)
        g_string_append_printf(list, "%s%s", i ? ";" : "", (char *)g_ptr_array_index(entries, i));
    site_conf = g_strdup_printf("# the site's CMG (written by cmlab-site add-cmg)\n"
                                "[cmg]\nname = %s\ndir = %s\nentries = %s\n",
                                host, abs_out, list->str);
    {
        g_autofree char *p = path_in(dir, "cmg.conf");
        if (!cm_daemon_write_file(p, site_conf, strlen(site_conf), 0644, error))
            return 1;
    }
    printf("CMG %s provisioned in %s (%zu mappings, %u roots%s%s)\n", host, out,
           cm_cmg_mappings_count(m), g_strv_length(opt_roots), opt_ctl ? ", CTL set" : "",
           opt_crl_check ? ", CRL check" : "");
    return 0;
}

/* Allows CMG traffic on an MP: a listener for connection points only
 * (mutual TLS with a registered connection point's certificate), where the
 * MP takes the identity the gateway established (cmlab-mp.c, "CMG").  It
 * writes its address into mp-cmg.addr beside mp.addr. */
static gboolean
mp_enable_cmg(const char *mp_conf, GError **error)
{
    size_t len = 0;
    g_autofree char *conf = cm_daemon_read_file(mp_conf, 1024 * 1024, &len, error);
    g_autofree char *more = NULL;

    if (conf == NULL)
        return FALSE;
    if (strstr(conf, "\n[cmg_listen]") != NULL)
        return TRUE;
    more = g_strconcat(conf, len > 0 && conf[len - 1] != '\n' ? "\n" : "",
                       "\n[cmg_listen]\naddress = 127.0.0.1\nhttps_port = 0\n", NULL);
    return cm_daemon_write_file(mp_conf, more, strlen(more), 0644, error);
}

static int
add_cp(CmSite *site, const char *dir, const char *name, const char *out, GError **error)
{
    CmTime now = cm_net_wall_now();
    char id[CM_CMG_CONNECTION_ID_LEN + 1];
    CmRng rng;
    g_autoptr(CmNetConfig) gcfg = NULL;
    g_autofree char *cmg_name = NULL, *conf = NULL, *host = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(GString) names = g_string_new(NULL), addrs = g_string_new(NULL);
    g_autoptr(GString) cas = g_string_new(NULL);

    if (name == NULL || out == NULL || opt_cmg == NULL || opt_mp_addr == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0,
                    "give --name HOST, --cmg CMGDIR, --out CPDIR and --mp-addr FILE per MP");
        return 1;
    }
    host = g_ascii_strdown(name, -1);
    {
        g_autofree char *p = path_in(opt_cmg, "cmg.conf");
        if ((gcfg = cm_net_config_load(p, error)) == NULL ||
            !cm_net_config_string(gcfg, "cmg", "name", NULL, &cmg_name, error))
            return 1;
    }
    /* Each MP by the name in its mp.conf, reached through its .addr. */
    for (char **a = opt_mp_addr; *a != NULL; a++) {
        g_autofree char *d = g_path_get_dirname(*a), *abs = g_canonicalize_filename(*a, NULL);
        g_autofree char *p = path_in(d, "mp.conf"), *mp = NULL;
        g_autoptr(CmNetConfig) mc = cm_net_config_load(p, error);
        if (mc == NULL || !cm_net_config_string(mc, "mp", "name", NULL, &mp, error))
            return 1;
        g_autofree char *abs_dir = g_path_get_dirname(abs);
        g_autofree char *cmg_addr = path_in(abs_dir, "mp-cmg.addr");
        g_string_append_printf(names, "%s%s", a == opt_mp_addr ? "" : ";", mp);
        g_string_append_printf(addrs, "%s%s", a == opt_mp_addr ? "" : ";", cmg_addr);
        if (!mp_enable_cmg(p, error))
            return 1;
    }
    if (g_mkdir_with_parents(out, 0700) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", out, g_strerror(errno));
        return 1;
    }
    cm_rng_init_os(&rng);
    cm_cmg_connection_id_new(&rng, id);
    /* Its client authentication certificate from the issuing root: what it
     * shows the gateway (REQ CMG-01). */
    if (!cm_site_issue_system_cert(site, CM_CERT_CLIENT_AUTH, host, NULL, now, &cert, &key, error))
        return 1;
    {
        g_autofree char *abs = g_canonicalize_filename(out, NULL);
        g_autofree char *root = path_in(abs, "site-root.pem");
        g_string_append(cas, root);
        for (char **c = opt_mp_ca; c != NULL && *c != NULL; c++) {
            g_autofree char *ca = g_canonicalize_filename(*c, NULL);
            g_string_append_printf(cas, ";%s", ca);
        }
    }
    {
        g_autofree char *p1 = path_in(out, "cp.pem"), *p2 = path_in(out, "cp.key");
        g_autofree char *p3 = path_in(out, "cmg.pem"), *p4 = path_in(out, "mappings.json");
        g_autofree char *p5 = path_in(out, "site-root.pem");
        g_autofree char *g1 = path_in(opt_cmg, "tls.pem"), *g2 = path_in(opt_cmg, "mappings.json");
        g_autofree char *reg_name = g_strdup_printf("%s.pem", id);
        g_autofree char *reg_dir = path_in(opt_cmg, "connection-points");
        g_autofree char *reg = path_in(reg_dir, reg_name);
        g_autofree char *site_dir = path_in(dir, "connection-points");
        g_autofree char *site_reg = path_in(site_dir, reg_name);
        if (g_mkdir_with_parents(site_dir, 0700) != 0) {
            g_set_error(error, CM_DAEMON_ERROR, 0, "cannot create %s: %s", site_dir,
                        g_strerror(errno));
            return 1;
        }
        /* The site keeps its connection points too: the MPs learn them
         * from it (cm_site_cmg_mpconfig). */
        if (!cm_daemon_save_cert(site_reg, cert, error) || !cm_daemon_save_cert(p1, cert, error) ||
            !cm_daemon_save_key(p2, key, error) || !copy_file(g1, p3, error) ||
            !copy_file(g2, p4, error) ||
            !cm_daemon_save_cert(p5, cm_site_issuing_root(site), error) ||
            !cm_daemon_save_cert(reg, cert, error))
            return 1;
    }
    {
        g_autofree char *abs_cmg = g_canonicalize_filename(opt_cmg, NULL);
        conf = g_strdup_printf(
            "# cmlab-cmg connection point (written by cmlab-site add-connection-point)\n"
            "[cp]\nconnection_id = %s\nsite_code = %s\nname = %s\ncmg_name = %s\n"
            "cmg_addr_file = %s/cmg-cp.addr\npolls = 4\nworkers = 2\n"
            "mps = %s\nmp_addr_files = %s\nmp_ca = %s\n",
            id, cm_site_code(site), host, cmg_name, abs_cmg, names->str, addrs->str, cas->str);
    }
    {
        g_autofree char *p = path_in(out, "cp.conf");
        if (!cm_daemon_write_file(p, conf, strlen(conf), 0644, error))
            return 1;
    }
    printf("connection point %s (%s) provisioned in %s and registered with %s\n", host, id, out,
           cmg_name);
    return 0;
}

int
cm_site_cmg_command(const char *cmd, CmSite *site, const char *dir, const char *name,
                    const char *out)
{
    GError *error = NULL;
    int rc = strcmp(cmd, "add-cmg") == 0 ? add_cmg(site, dir, name, out, &error)
                                         : add_cp(site, dir, name, out, &error);

    if (rc != 0) {
        fprintf(stderr, "cmlab-site %s: %s\n", cmd, error ? error->message : "failed");
        g_clear_error(&error);
    }
    return rc;
}

void
cm_site_cmg_mplist(const char *dir, json_t *mplist)
{
    g_autofree char *p = path_in(dir, "cmg.conf");
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) entries = NULL;
    json_t *mps = json_object_get(mplist, "mps");

    if (!json_is_array(mps) || !g_key_file_load_from_file(kf, p, G_KEY_FILE_NONE, NULL))
        return;
    entries = g_key_file_get_string_list(kf, "cmg", "entries", NULL, NULL);
    /* The gateway takes HTTPS only; clients with a PKI certificate use it
     * so, token clients check the MP's certificate against the trusted
     * root key as over Enhanced HTTP. */
    for (char **e = entries; e != NULL && *e != NULL; e++) {
        const char *id = strrchr(*e, '/');
        json_array_append_new(
            mps, json_pack("{s:s, s:I, s:b, s:b, s:b, s:b}", "name", *e, "role_id",
                           (json_int_t)g_ascii_strtoull(id ? id + 1 : "0", NULL, 10), "http", FALSE,
                           "https", TRUE, "ehttp", TRUE, "internet", TRUE));
    }
}

gboolean
cm_site_cmg_push_blocked(SiteDaemon *d, GError **error)
{
    g_autofree char *p = path_in(d->dir, "cmg.conf"), *cmg_dir = NULL, *list = NULL;
    g_autofree char *target = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();

    if (!g_key_file_load_from_file(kf, p, G_KEY_FILE_NONE, NULL))
        return TRUE; /* no CMG: nothing to tell */
    cmg_dir = g_key_file_get_string(kf, "cmg", "dir", NULL);
    if (cmg_dir == NULL || (list = cm_site_cmg_blocked_tokens(d->site, error)) == NULL)
        return cmg_dir == NULL;
    target = path_in(cmg_dir, "blocked-tokens");
    return cm_daemon_write_file(target, list, strlen(list), 0644, error);
}

void
cm_site_cmg_mpconfig(const char *dir, json_t *mpconfig)
{
    g_autofree char *d = path_in(dir, "connection-points");
    g_autoptr(GDir) gd = g_dir_open(d, 0, NULL);
    json_t *list = json_array();
    const char *e;

    while (gd != NULL && (e = g_dir_read_name(gd)) != NULL) {
        g_autofree char *p = NULL, *tp = NULL;
        g_autoptr(CmCert) c = NULL;
        GError *error = NULL;

        if (!g_str_has_suffix(e, ".pem") || json_array_size(list) >= CM_CMG_MAX_CPS)
            continue;
        p = path_in(d, e);
        if ((c = cm_daemon_load_cert(p, &error)) == NULL) {
            g_warning("connection point %s: %s", p, error->message);
            g_error_free(error);
            continue;
        }
        tp = cm_cert_thumbprint_hex(c);
        json_array_append_new(list, json_pack("{s:s%, s:s, s:s}", "id", e, strlen(e) - 4, "name",
                                              cm_cert_subject_cn(c), "thumbprint", tp));
    }
    json_object_set_new(mpconfig, "cmg_connection_points", list);
}
