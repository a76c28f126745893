/* cmlab-selfcheck - creates a site's keys and certificates, exercises each
 * the way the roles will, and prints what it made and what held.
 *
 * This is the main job of the quick start until the simulator exists: a
 * new user sees the trust material of a site (trusted root key, site server
 * signing certificate, management point certificate signed with the TRK,
 * Enhanced HTTP issuing root) and the checks clients make against it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmproto.h"

static char *opt_site = "PS1";
static char *opt_alg = "p256";
static char *opt_out;
static gboolean opt_quiet;

static int n_pass, n_fail;

static void
check(gboolean ok, const char *what, GError **error)
{
    if (ok) {
        n_pass++;
        printf("  [ok]   %s\n", what);
    } else {
        n_fail++;
        printf("  [FAIL] %s%s%s\n", what, error && *error ? ": " : "",
               error && *error ? (*error)->message : "");
    }
    if (error)
        g_clear_error(error);
}

/* A refusal we expect: ok when the operation failed with the given code. */
static void
refused(gboolean succeeded, GError **error, CmProtoError code, const char *what)
{
    gboolean ok = !succeeded && *error != NULL && g_error_matches(*error, CM_PROTO_ERROR, code);
    char line[256];

    g_snprintf(line, sizeof line, "%s -> refused (%s)", what,
               *error ? (*error)->message : "NOT refused");
    if (!ok)
        g_snprintf(line, sizeof line, "%s was not refused as expected", what);
    n_pass += ok;
    n_fail += !ok;
    printf("  %s %s\n", ok ? "[ok]  " : "[FAIL]", line);
    g_clear_error(error);
}

static void
show_cert(const char *role, const CmCert *cert)
{
    g_autofree char *tp = cm_cert_thumbprint_hex(cert);

    if (opt_quiet)
        return;
    printf("  %-34s CN=%s, %s, %s\n  %-34s thumbprint %.16s...\n", role, cm_cert_subject_cn(cert),
           cm_cert_is_self_signed(cert) ? "self-signed" : "issued",
           cm_hash_alg_name(cm_cert_hash(cert)), "", tp);
}

/* Writes a file with the given mode; private keys get 0600. */
static gboolean
write_file(const char *dir, const char *name, const char *data, mode_t mode, GError **error)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    size_t len = strlen(data);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    gboolean ok = FALSE;

    if (fd < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot create %s: %s",
                    path, g_strerror(errno));
        return FALSE;
    }
    if (fchmod(fd, mode) == 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0)
        ok = TRUE;
    else
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot write %s: %s",
                    path, g_strerror(errno));
    close(fd);
    return ok;
}

static CmCert *
issue(CmCertProfile profile, const char *cn, const char *const *dns, guint64 serial, CmTime now,
      const CmKey *subject, const CmKey *issuer_key, const CmCert *issuer_cert,
      const char *issuer_cn)
{
    GError *error = NULL;
    CmCertSpec spec = {.profile = profile,
                       .subject_cn = cn,
                       .dns_names = dns,
                       .serial = serial,
                       .not_before = now - CM_USEC_PER_HOUR,
                       .not_after = now + 365 * CM_USEC_PER_DAY,
                       .subject_key = subject,
                       .issuer_key = issuer_key,
                       .issuer_cert = issuer_cert,
                       .issuer_cn = issuer_cn};
    CmCert *cert = cm_cert_issue(&spec, &error);

    if (cert == NULL) {
        fprintf(stderr, "cmlab-selfcheck: cannot issue %s: %s\n", cn, error->message);
        exit(2);
    }
    return cert;
}

static CmKey *
keygen(CmKeyAlg alg)
{
    GError *error = NULL;
    CmKey *key = cm_key_generate(alg, &error);

    if (key == NULL) {
        fprintf(stderr, "cmlab-selfcheck: %s\n", error->message);
        exit(2);
    }
    return key;
}

int
main(int argc, char **argv)
{
    GOptionEntry entries[] = {
        {"site-code", 's', 0, G_OPTION_ARG_STRING, &opt_site, "Site code (PS1)", "CODE"},
        {"key-alg", 'k', 0, G_OPTION_ARG_STRING, &opt_alg, "Key algorithm: p256 or rsa2048",
         "ALG"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out,
         "Write the certificates (PEM) and keys (PEM, mode 0600) to DIR", "DIR"},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "Print only the checks", NULL},
        {NULL}};
    GOptionContext *octx = g_option_context_new("- create a site's keys and certificates and check them");
    GError *error = NULL;
    char site[4];
    CmKeyAlg alg;
    CmTime now = g_get_real_time();
    guint8 device_secret[32];
    CmRng rng;
    char smsid[CM_ID_SMSID_LEN + 1];

    g_option_context_add_main_entries(octx, entries, NULL);
    if (!g_option_context_parse(octx, &argc, &argv, &error) ||
        !cm_id_site_code_check(opt_site, site, &error) || !cm_key_alg_parse(opt_alg, &alg, &error)) {
        fprintf(stderr, "cmlab-selfcheck: %s\n", error->message);
        return 2;
    }
    g_option_context_free(octx);
    cm_rng_init_os(&rng);

    /* --- the site: trusted root key, signing certificate, MP certificate */
    g_autoptr(CmKey) trk = keygen(alg);
    g_autoptr(CmKey) signing_key = keygen(alg);
    g_autoptr(CmKey) mp_key = keygen(alg);
    g_autoptr(CmKey) issuing_key = keygen(alg);
    g_autoptr(CmKey) enc_key = keygen(alg);
    g_autofree char *site_cn = g_strdup_printf("Site Server Signing Certificate %s", site);
    g_autofree char *trk_cn = g_strdup_printf("Trusted Root Key %s", site);
    g_autofree char *root_cn = g_strdup_printf("Enhanced HTTP Issuing Root %s", site);
    g_autofree char *enc_cn = g_strdup_printf("Site Encryption %s", site);
    const char *mp_dns[] = {"mp1.corp.example", NULL};
    g_autoptr(CmCert) signing = issue(CM_CERT_SITE_SIGNING, site_cn, NULL, 1, now, signing_key,
                                      NULL, NULL, NULL);
    g_autoptr(CmCert) mp = issue(CM_CERT_MP, "mp1.corp.example", mp_dns, 2, now, mp_key, trk,
                                 NULL, trk_cn);
    g_autoptr(CmCert) issuing = issue(CM_CERT_ROOT_CA, root_cn, NULL, 3, now, issuing_key, NULL,
                                      NULL, NULL);
    g_autoptr(CmCert) mp_tls = issue(CM_CERT_SERVER, "mp1.corp.example", mp_dns, 4, now, mp_key,
                                     issuing_key, issuing, NULL);
    g_autoptr(CmCert) enc = issue(CM_CERT_ENCRYPTION, enc_cn, NULL, 5, now, enc_key, NULL, NULL,
                                  NULL);
    g_autofree char *trk_hex = cm_key_public_hex(trk);
    g_autofree char *trk_id = cm_enc_hex(cm_key_id(trk), 8);

    printf("cmlab self-check: site %s, %s keys\n", site, cm_key_alg_name(alg));
    if (!opt_quiet) {
        printf("  %-34s SMSPublicRootKey=%.24s... (%zu hex digits), key id %s\n",
               "trusted root key (site exchange)", trk_hex, strlen(trk_hex), trk_id);
        show_cert("site server signing certificate", signing);
        show_cert("management point certificate", mp);
        show_cert("Enhanced HTTP issuing root", issuing);
        show_cert("MP HTTPS certificate", mp_tls);
        show_cert("site encryption certificate", enc);
    }

    /* --- a client: TPM 2.0 provider, self-signed identity */
    cm_rng_bytes(&rng, device_secret, sizeof device_secret);
    cm_id_smsid_new(&rng, smsid);
    g_autoptr(CmKsp) ksp = cm_ksp_new(2, device_secret);
    g_autoptr(CmKey) client_key = cm_ksp_generate(ksp, alg, &error);
    if (client_key == NULL) {
        fprintf(stderr, "cmlab-selfcheck: %s\n", error->message);
        return 2;
    }
    g_autoptr(CmCert) client = issue(CM_CERT_CLIENT_SELF_SIGNED, smsid, NULL, 1, now, client_key,
                                     NULL, NULL, NULL);
    if (!opt_quiet) {
        printf("  %-34s %s, key in the %s provider\n", "client", smsid,
               cm_ksp_kind_name(cm_ksp_kind(ksp)));
        printf("checks:\n");
    }

    /* --- the checks clients and the site make */
    g_autoptr(CmKey) trk_pub = cm_key_public_from_hex(trk_hex, &error);
    check(trk_pub != NULL && cm_key_public_equal(trk_pub, trk),
          "SMSPublicRootKey export parses back to the trusted root key", &error);
    check(trk_pub && cm_cert_check_signed_by(mp, trk_pub, now, &error),
          "MP certificate chains to the trusted root key (TRUST-02/03)", &error);
    {
        g_autoptr(CmKey) rogue = keygen(alg);
        g_autoptr(CmCert) rogue_mp = issue(CM_CERT_MP, "mp1.corp.example", mp_dns, 9, now, rogue,
                                           rogue, NULL, trk_cn);
        refused(cm_cert_check_signed_by(rogue_mp, trk_pub, now, &error), &error,
                CM_PROTO_ERROR_UNTRUSTED, "rogue MP certificate with the same names");
    }
    check(cm_cert_is_self_signed(signing), "site server signing certificate is self-signed (TRUST-08)",
          NULL);
    {
        const char *policy = "{\"policy\":\"install\",\"hash\":\"AB12\"}";
        g_autoptr(GBytes) sig = cm_sig_sign(signing_key, CM_HASH_SHA256, policy, strlen(policy),
                                            &error);
        gsize slen = 0;
        const guint8 *s = sig ? g_bytes_get_data(sig, &slen) : NULL;
        check(sig && cm_sig_verify(cm_cert_public_key(signing), CM_HASH_SHA256, policy,
                                   strlen(policy), s, slen, &error),
              "policy signed by the site verifies on the client", &error);
        refused(sig && cm_sig_verify(cm_cert_public_key(signing), CM_HASH_SHA256,
                                     "{\"policy\":\"evil\"}", 17, s, slen, &error),
                &error, CM_PROTO_ERROR_SIGNATURE, "tampered policy");
    }
    {
        g_autoptr(CmTrust) trust = cm_trust_new();
        check(cm_trust_add_root(trust, issuing, &error) &&
                  cm_trust_verify(trust, mp_tls, NULL, now, CM_PURPOSE_SERVER_AUTH, NULL, &error),
              "Enhanced HTTP MP certificate chains to the site's issuing root (TRUST-10)", &error);
    }
    {
        char *pem = cm_key_private_pem(client_key, &error);
        refused(pem != NULL, &error, CM_PROTO_ERROR_NOT_EXPORTABLE,
                "export of the client's TPM-held key (TRUST-11)");
        g_free(pem);
    }
    {
        const char *inv = "{\"inventory\":{\"os\":\"Windows 11\"}}";
        g_autoptr(GBytes) env = cm_cms_encrypt(enc, CM_CIPHER_AES256_GCM, inv, strlen(inv), &error);
        CmCipher used = CM_CIPHER_3DES_CBC;
        g_autoptr(GBytes) plain = env ? cm_cms_decrypt(enc, enc_key, g_bytes_get_data(env, NULL),
                                                       g_bytes_get_size(env), 1 << 20, &used,
                                                       &error)
                                      : NULL;
        check(plain && g_bytes_get_size(plain) == strlen(inv) &&
                  memcmp(g_bytes_get_data(plain, NULL), inv, strlen(inv)) == 0 &&
                  used == CM_CIPHER_AES256_GCM,
              "inventory encrypted to the site (AES-256-GCM CMS) decrypts at the site (MSG-02)",
              &error);
    }
    {
        g_autoptr(json_t) claims = cm_jwt_claims_new(site, "cmg", smsid, now, CM_USEC_PER_DAY,
                                                     "t1");
        g_autofree char *tok = cm_jwt_sign(signing_key, "site", claims, &error);
        CmJwtCheck jc = {.issuer = site, .audience = "cmg", .now = now};
        g_autoptr(json_t) got = tok ? cm_jwt_verify(tok, cm_cert_public_key(signing), &jc, &error)
                                    : NULL;
        check(got != NULL, "client token issued by the site verifies (CMG-12)", &error);
        jc.now = now + 2 * CM_USEC_PER_DAY;
        g_autoptr(json_t) late = tok ? cm_jwt_verify(tok, cm_cert_public_key(signing), &jc, &error)
                                     : NULL;
        refused(late != NULL, &error, CM_PROTO_ERROR_EXPIRED, "the same token two days later");
    }
    {
        CmCrlEntry revoked = {.serial = cm_cert_serial(mp_tls), .revoked_at = now};
        g_autoptr(CmCrl) crl = cm_crl_issue(issuing, issuing_key, &revoked, 1, 1, now,
                                            now + 7 * CM_USEC_PER_DAY, &error);
        g_autoptr(CmTrust) trust = cm_trust_new();
        gboolean ok = crl && cm_trust_add_root(trust, issuing, &error) &&
                      cm_trust_add_crl(trust, crl, &error);
        cm_trust_set_crl_check(trust, TRUE);
        refused(ok && cm_trust_verify(trust, mp_tls, NULL, now, CM_PURPOSE_SERVER_AUTH, NULL,
                                      &error),
                &error, CM_PROTO_ERROR_REVOKED, "revoked certificate with CRL checking on (TRUST-14)");
    }

    if (opt_out != NULL) {
        g_autofree char *signing_pem = cm_cert_to_pem(signing);
        g_autofree char *mp_pem = cm_cert_to_pem(mp);
        g_autofree char *issuing_pem = cm_cert_to_pem(issuing);
        g_autofree char *trk_pem = cm_key_public_pem(trk);
        g_autofree char *trk_key = cm_key_private_pem(trk, &error);
        g_autofree char *trk_hex_line = g_strdup_printf("%s\n", trk_hex);
        if (g_mkdir_with_parents(opt_out, 0700) != 0 ||
            !write_file(opt_out, "site-signing.pem", signing_pem, 0644, &error) ||
            !write_file(opt_out, "mp1.pem", mp_pem, 0644, &error) ||
            !write_file(opt_out, "issuing-root.pem", issuing_pem, 0644, &error) ||
            !write_file(opt_out, "trusted-root-key.pub.pem", trk_pem, 0644, &error) ||
            !write_file(opt_out, "SMSPublicRootKey.txt", trk_hex_line, 0644, &error) ||
            !trk_key || !write_file(opt_out, "trusted-root-key.key.pem", trk_key, 0600, &error)) {
            fprintf(stderr, "cmlab-selfcheck: %s\n",
                    error ? error->message : "cannot create the output folder");
            return 2;
        }
        printf("wrote certificates and keys (keys mode 0600) to %s\n", opt_out);
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail == 0 ? 0 : 1;
}
