/* cmlab-ca - the lab's enterprise test CA: the PKI that issues server
 * certificates to MPs and client authentication certificates to clients
 * when the site uses HTTPS with PKI (REQ TRUST-07), and the CRL that
 * revokes them (REQ TRUST-14).
 *
 *   cmlab-ca init   --dir CA
 *   cmlab-ca issue  --dir CA --server|--client --cn NAME --out PREFIX
 *   cmlab-ca revoke --dir CA --serial N
 *
 * CA/ca.pem and CA/ca.key (0600) are the root; CA/crl.pem its current
 * CRL; CA/serial the last serial issued; CA/revoked one serial per line. */
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA_LIFETIME (10 * 365 * CM_USEC_PER_DAY)
#define LEAF_LIFETIME (365 * CM_USEC_PER_DAY)
#define CRL_LIFETIME (7 * CM_USEC_PER_DAY)
#define REVOKED_MAX 100000

static char *opt_dir;
static char *opt_cn;
static char *opt_out;
static gboolean opt_server;
static gboolean opt_client;
static gint64 opt_serial;

static GOptionEntry entries[] = {
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir, "The CA's folder", "CA"},
    {"server", 0, 0, G_OPTION_ARG_NONE, &opt_server, "issue: a TLS server certificate", NULL},
    {"client", 0, 0, G_OPTION_ARG_NONE, &opt_client, "issue: a client authentication certificate",
     NULL},
    {"cn", 0, 0, G_OPTION_ARG_STRING, &opt_cn,
     "issue: the holder's name (a host name for --server)", "NAME"},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out, "issue: write PREFIX.pem and PREFIX.key",
     "PREFIX"},
    {"serial", 0, 0, G_OPTION_ARG_INT64, &opt_serial, "revoke: the serial number to revoke", "N"},
    {NULL}};

static char *
ca_path(const char *name)
{
    return g_build_filename(opt_dir, name, NULL);
}

static guint64
next_serial(GError **error)
{
    g_autofree char *path = ca_path("serial");
    g_autofree char *s = cm_daemon_read_file(path, 64, NULL, NULL);
    guint64 n = s ? g_ascii_strtoull(s, NULL, 10) + 1 : 2;
    g_autofree char *out = g_strdup_printf("%" G_GUINT64_FORMAT "\n", n);

    return cm_daemon_write_file(path, out, strlen(out), 0644, error) ? n : 0;
}

/* Issues the CRL from CA/revoked. */
static gboolean
write_crl(const CmCert *ca, const CmKey *key, GError **error)
{
    g_autofree char *rpath = ca_path("revoked"), *cpath = ca_path("crl.pem");
    g_autofree char *list = cm_daemon_read_file(rpath, REVOKED_MAX * 24, NULL, NULL);
    g_auto(GStrv) lines = g_strsplit(list ? list : "", "\n", -1);
    g_autoptr(GArray) revoked = g_array_new(FALSE, TRUE, sizeof(CmCrlEntry));
    CmTime now = cm_net_wall_now();
    g_autoptr(CmCrl) crl = NULL;
    g_autofree char *pem = NULL;
    guint64 number;

    for (guint i = 0; lines[i] != NULL; i++) {
        CmCrlEntry e = {0};
        if (lines[i][0] == '\0')
            continue;
        e.serial = g_ascii_strtoull(lines[i], NULL, 10);
        e.revoked_at = now - CM_USEC_PER_SEC;
        g_array_append_val(revoked, e);
    }
    number = (guint64)(now / CM_USEC_PER_SEC);
    crl = cm_crl_issue(ca, key, (CmCrlEntry *)revoked->data, revoked->len, number,
                       now - CM_USEC_PER_MIN, now + CRL_LIFETIME, error);
    if (crl == NULL)
        return FALSE;
    pem = cm_crl_to_pem(crl);
    return cm_daemon_write_file(cpath, pem, strlen(pem), 0644, error);
}

static int
cmd_init(GError **error)
{
    CmTime now = cm_net_wall_now();
    g_autoptr(CmKey) key = cm_key_generate(CM_KEY_EC_P256, error);
    g_autoptr(CmCert) ca = NULL;
    g_autofree char *cpath = ca_path("ca.pem"), *kpath = ca_path("ca.key");
    CmCertSpec spec = {.profile = CM_CERT_ROOT_CA,
                       .subject_cn = "cmlab test enterprise CA",
                       .subject_o = "cmlab",
                       .serial = 1,
                       .not_before = now - CM_USEC_PER_HOUR,
                       .not_after = now + CA_LIFETIME};

    if (key == NULL)
        return 1;
    if (g_file_test(kpath, G_FILE_TEST_EXISTS)) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s holds a CA already", opt_dir);
        return 1;
    }
    if (g_mkdir_with_parents(opt_dir, 0700) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "cannot create %s", opt_dir);
        return 1;
    }
    spec.subject_key = key;
    ca = cm_cert_issue(&spec, error);
    if (ca == NULL || !cm_daemon_save_key(kpath, key, error) ||
        !cm_daemon_save_cert(cpath, ca, error) || !write_crl(ca, key, error))
        return 1;
    printf("CA created in %s\n", opt_dir);
    return 0;
}

static gboolean
load_ca(CmCert **ca, CmKey **key, GError **error)
{
    g_autofree char *cpath = ca_path("ca.pem"), *kpath = ca_path("ca.key");

    *ca = cm_daemon_load_cert(cpath, error);
    if (*ca == NULL)
        return FALSE;
    *key = cm_daemon_load_key(kpath, error);
    return *key != NULL;
}

static int
cmd_issue(GError **error)
{
    CmTime now = cm_net_wall_now();
    g_autoptr(CmCert) ca = NULL, cert = NULL;
    g_autoptr(CmKey) ca_key = NULL, key = NULL;
    g_autofree char *cpath = NULL, *kpath = NULL;
    const char *dns[] = {opt_cn, NULL};
    CmCertSpec spec = {0};

    if (opt_server == opt_client || opt_cn == NULL || opt_out == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "issue takes --server or --client, --cn and --out");
        return 2;
    }
    if (!load_ca(&ca, &ca_key, error) || (key = cm_key_generate(CM_KEY_EC_P256, error)) == NULL ||
        (spec.serial = next_serial(error)) == 0)
        return 1;
    spec.profile = opt_server ? CM_CERT_SERVER : CM_CERT_CLIENT_AUTH;
    spec.subject_cn = opt_cn;
    spec.dns_names = opt_server ? dns : NULL;
    spec.not_before = now - CM_USEC_PER_HOUR;
    spec.not_after = now + LEAF_LIFETIME;
    spec.subject_key = key;
    spec.issuer_key = ca_key;
    spec.issuer_cert = ca;
    cert = cm_cert_issue(&spec, error);
    cpath = g_strconcat(opt_out, ".pem", NULL);
    kpath = g_strconcat(opt_out, ".key", NULL);
    if (cert == NULL || !cm_daemon_save_key(kpath, key, error) ||
        !cm_daemon_save_cert(cpath, cert, error))
        return 1;
    printf("issued %s certificate %s (serial %" G_GUINT64_FORMAT ") to %s\n",
           opt_server ? "server" : "client", opt_cn, spec.serial, cpath);
    return 0;
}

static int
cmd_revoke(GError **error)
{
    g_autoptr(CmCert) ca = NULL;
    g_autoptr(CmKey) ca_key = NULL;
    g_autofree char *rpath = ca_path("revoked");
    g_autofree char *list = NULL, *line = NULL, *all = NULL;

    if (opt_serial <= 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "revoke takes --serial N");
        return 2;
    }
    if (!load_ca(&ca, &ca_key, error))
        return 1;
    list = cm_daemon_read_file(rpath, REVOKED_MAX * 24, NULL, NULL);
    line = g_strdup_printf("%" G_GINT64_FORMAT "\n", opt_serial);
    all = g_strconcat(list ? list : "", line, NULL);
    if (!cm_daemon_write_file(rpath, all, strlen(all), 0644, error) ||
        !write_crl(ca, ca_key, error))
        return 1;
    printf("revoked serial %" G_GINT64_FORMAT "; new CRL in %s/crl.pem\n", opt_serial, opt_dir);
    return 0;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND - the lab's enterprise test CA");
    GError *error = NULL;
    int rc = 2;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Commands:\n"
                                      "  init    create a root CA and an empty CRL in --dir\n"
                                      "  issue   issue a --server or --client certificate\n"
                                      "  revoke  revoke --serial N and issue a new CRL");
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 2 || opt_dir == NULL) {
        fprintf(stderr, "cmlab-ca: %s (see --help)\n",
                error ? error->message : "give one command and --dir CA");
        g_clear_error(&error);
        return 2;
    }
    if (strcmp(argv[1], "init") == 0)
        rc = cmd_init(&error);
    else if (strcmp(argv[1], "issue") == 0)
        rc = cmd_issue(&error);
    else if (strcmp(argv[1], "revoke") == 0)
        rc = cmd_revoke(&error);
    else
        g_set_error(&error, CM_DAEMON_ERROR, 0, "unknown command \"%s\"", argv[1]);
    if (error != NULL) {
        fprintf(stderr, "cmlab-ca %s: %s\n", argv[1], error->message);
        g_error_free(error);
        if (rc == 0)
            rc = 1;
    }
    return rc;
}
