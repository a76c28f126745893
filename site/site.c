/* site.c - creating and opening a site: its keys and certificates, its
 * settings, its management points, and what it publishes about itself. */
#include "internal.h"

#include <string.h>

G_DEFINE_QUARK(cm-site-error-quark, cm_site_error)

/* The product's site signing and exchange material lives for years. */
#define SITE_CERT_LIFETIME (20 * 365 * CM_USEC_PER_DAY)
#define MP_CERT_LIFETIME   (5 * 365 * CM_USEC_PER_DAY)
/* MP role IDs start where the product's do. */
#define FIRST_ROLE_ID G_GUINT64_CONSTANT(72057594037927937)

/* ------------------------------------------------------------ settings */

void
cm_site_settings_default(CmSiteSettings *s)
{
    memset(s, 0, sizeof *s);
    s->communication = CM_COMM_HTTPS_ONLY;
    s->require_signing = TRUE;
    s->require_sha256 = TRUE;
    s->encrypt = FALSE;
    s->allow_3des = FALSE;
    s->approval = CM_APPROVAL_TRUSTED_DOMAINS;
    s->conflicts = CM_CONFLICT_MERGE;
    s->crl_check = FALSE;
    s->key_alg = CM_KEY_EC_P256;
    s->discovery_retention_days = 90;
    s->client_status_retention_days = 31;
    s->client_token_lifetime = 30 * CM_USEC_PER_DAY;
}

static gboolean
enum_parse(const char *const *names, size_t n, const char *what, const char *s, int *out,
           GError **error)
{
    g_autoptr(GString) all = g_string_new(NULL);

    for (size_t i = 0; i < n; i++) {
        if (s != NULL && strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return TRUE;
        }
        g_string_append_printf(all, "%s%s", i ? ", " : "", names[i]);
    }
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "unknown %s \"%s\": use %s", what,
                s ? s : "(none)", all->str);
    return FALSE;
}

static const char *const comm_names[] = {"https-only", "http-or-https", "ehttp"};
static const char *const approval_names[] = {"manual", "trusted-domains", "all"};
static const char *const conflict_names[] = {"merge", "new-record", "block"};

const char *
cm_comm_mode_name(CmCommMode m)
{
    return (size_t)m < G_N_ELEMENTS(comm_names) ? comm_names[m] : "unknown";
}

gboolean
cm_comm_mode_parse(const char *s, CmCommMode *out, GError **error)
{
    int v;
    if (!enum_parse(comm_names, G_N_ELEMENTS(comm_names), "communication mode", s, &v, error))
        return FALSE;
    *out = (CmCommMode)v;
    return TRUE;
}

const char *
cm_approval_mode_name(CmApprovalMode m)
{
    return (size_t)m < G_N_ELEMENTS(approval_names) ? approval_names[m] : "unknown";
}

gboolean
cm_approval_mode_parse(const char *s, CmApprovalMode *out, GError **error)
{
    int v;
    if (!enum_parse(approval_names, G_N_ELEMENTS(approval_names), "approval mode", s, &v, error))
        return FALSE;
    *out = (CmApprovalMode)v;
    return TRUE;
}

const char *
cm_conflict_mode_name(CmConflictMode m)
{
    return (size_t)m < G_N_ELEMENTS(conflict_names) ? conflict_names[m] : "unknown";
}

gboolean
cm_conflict_mode_parse(const char *s, CmConflictMode *out, GError **error)
{
    int v;
    if (!enum_parse(conflict_names, G_N_ELEMENTS(conflict_names), "conflicting-record mode", s,
                    &v, error))
        return FALSE;
    *out = (CmConflictMode)v;
    return TRUE;
}

gboolean
cm_comm_mode_allows(CmCommMode m, CmTransport t)
{
    switch (m) {
    case CM_COMM_HTTP_OR_HTTPS:
        return TRUE;
    case CM_COMM_EHTTP:
        /* Enhanced HTTP: site systems serve HTTPS with site-issued
         * certificates; PKI HTTPS clients are still served. */
        return t != CM_TRANSPORT_HTTP;
    case CM_COMM_HTTPS_ONLY:
    default:
        return t == CM_TRANSPORT_HTTPS;
    }
}

static gboolean
settings_save(CmSite *site, GError **error)
{
    const CmSiteSettings *s = &site->settings;
    GError *cause = NULL;
    sqlite3_stmt *st;
    struct {
        const char *key;
        gint64 value;
    } kv[] = {
        {"communication", s->communication},
        {"require_signing", s->require_signing},
        {"require_sha256", s->require_sha256},
        {"encrypt", s->encrypt},
        {"allow_3des", s->allow_3des},
        {"approval", s->approval},
        {"conflicts", s->conflicts},
        {"crl_check", s->crl_check},
        {"key_alg", s->key_alg},
        {"discovery_retention_days", s->discovery_retention_days},
        {"client_status_retention_days", s->client_status_retention_days},
        {"client_token_lifetime", s->client_token_lifetime},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(kv); i++) {
        char buf[32];
        st = SITE_STMT(site, "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", &cause);
        if (st == NULL)
            goto fail;
        g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, kv[i].value);
        sqlite3_bind_text(st, 1, kv[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, buf, -1, SQLITE_TRANSIENT);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
settings_load(CmSite *site, GError **error)
{
    CmSiteSettings *s = &site->settings;
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, "SELECT key, value FROM settings", &cause);
    gboolean row = TRUE;

    if (st == NULL)
        goto fail;
    cm_site_settings_default(s);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        gint64 v = sqlite3_column_int64(st, 1);
        if (strcmp(k, "communication") == 0)
            s->communication = (CmCommMode)v;
        else if (strcmp(k, "require_signing") == 0)
            s->require_signing = v != 0;
        else if (strcmp(k, "require_sha256") == 0)
            s->require_sha256 = v != 0;
        else if (strcmp(k, "encrypt") == 0)
            s->encrypt = v != 0;
        else if (strcmp(k, "allow_3des") == 0)
            s->allow_3des = v != 0;
        else if (strcmp(k, "approval") == 0)
            s->approval = (CmApprovalMode)v;
        else if (strcmp(k, "conflicts") == 0)
            s->conflicts = (CmConflictMode)v;
        else if (strcmp(k, "crl_check") == 0)
            s->crl_check = v != 0;
        else if (strcmp(k, "key_alg") == 0)
            s->key_alg = (CmKeyAlg)v;
        else if (strcmp(k, "discovery_retention_days") == 0)
            s->discovery_retention_days = (int)v;
        else if (strcmp(k, "client_status_retention_days") == 0)
            s->client_status_retention_days = (int)v;
        else if (strcmp(k, "client_token_lifetime") == 0)
            s->client_token_lifetime = v;
    }
    if (cause != NULL)
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
settings_check(const CmSiteSettings *s, GError **error)
{
    if (s->discovery_retention_days < 1 || s->client_status_retention_days < 1 ||
        s->client_token_lifetime <= 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "retention periods and the client token lifetime must be positive");
        return FALSE;
    }
    if ((unsigned)s->communication > CM_COMM_EHTTP || (unsigned)s->approval > CM_APPROVAL_ALL ||
        (unsigned)s->conflicts > CM_CONFLICT_BLOCK) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "a site setting is out of range");
        return FALSE;
    }
    return TRUE;
}

const CmSiteSettings *
cm_site_settings(const CmSite *site)
{
    return &site->settings;
}

gboolean
cm_site_set_settings(CmSite *site, const CmSiteSettings *s, const char *admin, CmTime now,
                     GError **error)
{
    GError *cause = NULL;
    CmSiteSettings old = site->settings;
    g_autofree char *detail = NULL;

    if (!settings_check(s, error) ||
        !cm_site_authorize(site, admin, CM_ADMIN_SETTINGS, 0, now, error)) /* rbac.c */
        return FALSE;
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    site->settings = *s;
    site->settings.key_alg = old.key_alg; /* keys exist already */
    detail = g_strdup_printf("communication=%s approval=%s signing=%d sha256=%d encrypt=%d "
                             "conflicts=%s crl=%d",
                             cm_comm_mode_name(s->communication),
                             cm_approval_mode_name(s->approval), s->require_signing,
                             s->require_sha256, s->encrypt, cm_conflict_mode_name(s->conflicts),
                             s->crl_check);
    if (!settings_save(site, error) ||
        !cm_site_audit(site, admin, "settings", site->code, detail, now, error) ||
        !cm_store_commit(site->store, &cause)) {
        if (cause != NULL)
            cm_site_store_error(error, cause);
        cm_store_rollback(site->store);
        site->settings = old;
        return FALSE;
    }
    cm_trust_set_crl_check(site->pki_trust, s->crl_check);
    return TRUE;
}

/* ---------------------------------------------------------------- keys */

static CmCert *
site_issue(CmSite *site, CmCertProfile profile, const char *cn, const char *const *dns,
           const CmKey *subject, const CmKey *issuer_key, const CmCert *issuer,
           const char *issuer_cn, CmTime now, CmTime lifetime, GError **error)
{
    GError *cause = NULL;
    guint64 serial = cm_site_serial_next(site, error);
    CmCertSpec spec = {.profile = profile,
                       .subject_cn = cn,
                       .subject_o = site->code,
                       .dns_names = dns,
                       .serial = serial,
                       .not_before = now - CM_USEC_PER_HOUR, /* tolerate clock skew */
                       .not_after = now + lifetime,
                       .subject_key = subject,
                       .issuer_key = issuer_key,
                       .issuer_cert = issuer,
                       .issuer_cn = issuer_cn};
    CmCert *cert;

    if (serial == 0)
        return NULL;
    cert = cm_cert_issue(&spec, &cause);
    if (cert == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "cannot issue \"%s\": %s", cn,
                    cause->message);
        g_error_free(cause);
    }
    return cert;
}

static gboolean
key_save(CmSite *site, const char *name, const CmKey *key, const CmCert *cert, GError **error)
{
    GError *cause = NULL;
    g_autoptr(CmKsp) sealer = cm_ksp_new(2, site->master_key);
    g_autoptr(GBytes) sealed = cm_ksp_seal(sealer, key, &cause);
    g_autoptr(GBytes) der = cert ? cm_cert_to_der(cert) : NULL;
    sqlite3_stmt *st;

    if (sealed == NULL)
        goto fail;
    st = SITE_STMT(site, "INSERT INTO site_keys(name, sealed, cert) VALUES (?, ?, ?)", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, g_bytes_get_data(sealed, NULL), (int)g_bytes_get_size(sealed),
                      SQLITE_STATIC);
    if (der != NULL)
        sqlite3_bind_blob(st, 3, g_bytes_get_data(der, NULL), (int)g_bytes_get_size(der),
                          SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
key_load(CmSite *site, const char *name, CmKey **key, CmCert **cert, GError **error)
{
    GError *cause = NULL;
    g_autoptr(CmKsp) sealer = cm_ksp_new(2, site->master_key);
    sqlite3_stmt *st = SITE_STMT(site, "SELECT sealed, cert FROM site_keys WHERE name = ?", &cause);
    gboolean row = FALSE;

    if (st == NULL)
        goto store_fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto store_fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                    "site database has no \"%s\" key: it is damaged or not a cmlab site", name);
        return FALSE;
    }
    *key = cm_ksp_unseal(sealer, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                         &cause);
    if (*key == NULL) {
        sqlite3_reset(st);
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "cannot open the site's \"%s\" key with this master key: %s", name,
                    cause->message);
        g_error_free(cause);
        return FALSE;
    }
    if (cert != NULL) {
        *cert = cm_cert_from_der(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                                 &cause);
        if (*cert == NULL) {
            sqlite3_reset(st);
            g_clear_pointer(key, cm_key_unref);
            cm_site_store_error(error, cause);
            return FALSE;
        }
    }
    sqlite3_reset(st);
    return TRUE;
store_fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Generates the site's keys and certificates (inside the open transaction). */
static gboolean
site_create(CmSite *site, const CmSiteConfig *config, CmTime now, GError **error)
{
    GError *cause = NULL;
    CmKeyAlg alg = site->settings.key_alg;
    g_autofree char *signing_cn = g_strdup_printf("Site Server Signing Certificate %s", site->code);
    g_autofree char *enc_cn = g_strdup_printf("Site Encryption Certificate %s", site->code);
    g_autofree char *root_cn = g_strdup_printf("Enhanced HTTP Issuing Root %s", site->code);

    if (!cm_site_meta_set(site, "site_code", site->code, error) ||
        !cm_site_meta_set(site, "forest", site->forest, error) ||
        !cm_site_meta_set(site, "top_level", site->top_level ? "1" : "0", error) ||
        !cm_site_meta_set(site, "created", "1", error) || !settings_save(site, error))
        return FALSE;
    site->trk = cm_key_generate(alg, &cause);
    site->signing_key = cm_key_generate(alg, &cause);
    site->enc_key = cm_key_generate(alg, &cause);
    site->issuing_key = cm_key_generate(alg, &cause);
    if (cause != NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "key generation: %s",
                    cause->message);
        g_error_free(cause);
        return FALSE;
    }
    site->signing_cert = site_issue(site, CM_CERT_SITE_SIGNING, signing_cn, NULL,
                                    site->signing_key, NULL, NULL, NULL, now, SITE_CERT_LIFETIME,
                                    error);
    if (site->signing_cert == NULL)
        return FALSE;
    site->enc_cert = site_issue(site, CM_CERT_ENCRYPTION, enc_cn, NULL, site->enc_key, NULL, NULL,
                                NULL, now, SITE_CERT_LIFETIME, error);
    if (site->enc_cert == NULL)
        return FALSE;
    site->issuing_cert = site_issue(site, CM_CERT_ROOT_CA, root_cn, NULL, site->issuing_key, NULL,
                                    NULL, NULL, now, SITE_CERT_LIFETIME, error);
    if (site->issuing_cert == NULL)
        return FALSE;
    (void)config;
    return key_save(site, "exchange", site->trk, NULL, error) &&
           key_save(site, "signing", site->signing_key, site->signing_cert, error) &&
           key_save(site, "encryption", site->enc_key, site->enc_cert, error) &&
           key_save(site, "issuing", site->issuing_key, site->issuing_cert, error) &&
           cm_site_add_forest(site, site->forest, NULL, error) &&
           cm_site_audit(site, "system", "create-site", site->code, "keys and certificates created",
                         now, error);
}

static gboolean
site_load(CmSite *site, GError **error)
{
    g_autofree char *code = NULL, *forest = NULL, *top = NULL;

    if (!cm_site_meta_get(site, "site_code", &code, error) ||
        !cm_site_meta_get(site, "forest", &forest, error) ||
        !cm_site_meta_get(site, "top_level", &top, error))
        return FALSE;
    if (code == NULL || strcmp(code, site->code) != 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "this database belongs to site %s, not %s", code ? code : "(none)",
                    site->code);
        return FALSE;
    }
    g_free(site->forest);
    site->forest = g_steal_pointer(&forest);
    site->top_level = top != NULL && strcmp(top, "1") == 0;
    return settings_load(site, error) && key_load(site, "exchange", &site->trk, NULL, error) &&
           key_load(site, "signing", &site->signing_key, &site->signing_cert, error) &&
           key_load(site, "encryption", &site->enc_key, &site->enc_cert, error) &&
           key_load(site, "issuing", &site->issuing_key, &site->issuing_cert, error);
}

CmSite *
cm_site_open(const CmSiteConfig *config, CmTime now, GError **error)
{
    GError *cause = NULL;
    CmSite *site = g_new0(CmSite, 1);
    g_autofree char *created = NULL;
    gboolean in_tx = FALSE;

    if (!cm_id_site_code_check(config->site_code, site->code, &cause) ||
        config->master_key == NULL || config->forest == NULL || *config->forest == '\0') {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "cannot open site: %s",
                    cause ? cause->message : "a master key and the site's forest are required");
        g_clear_error(&cause);
        goto fail;
    }
    memcpy(site->master_key, config->master_key, sizeof site->master_key);
    site->forest = g_ascii_strdown(config->forest, -1);
    site->top_level = config->top_level;
    if (config->settings != NULL) {
        if (!settings_check(config->settings, error))
            goto fail;
        site->settings = *config->settings;
    } else {
        cm_site_settings_default(&site->settings);
    }
    site->client_certs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                               (GDestroyNotify)cm_cert_unref);
    site->policy_answers =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, cm_site_policy_answer_free);
    site->pki_trust = cm_trust_new();
    site->store = cm_store_open(config->db_path ? config->db_path : ":memory:",
                                config->db_mode, &cause);
    if (site->store == NULL || !cm_site_db_migrate(site->store, &cause))
        goto store_fail;
    if (!cm_store_begin(site->store, &cause))
        goto store_fail;
    in_tx = TRUE;
    if (!cm_site_meta_get(site, "created", &created, error))
        goto fail;
    if (created == NULL ? !site_create(site, config, now, error) : !site_load(site, error))
        goto fail;
    if (!cm_store_commit(site->store, &cause))
        goto store_fail;
    in_tx = FALSE;
    if (!cm_site_collections_load(site, error) || !cm_site_push_load(site, error))
        goto fail;
    cm_trust_set_crl_check(site->pki_trust, site->settings.crl_check);
    return site;
store_fail:
    cm_site_store_error(error, cause);
fail:
    if (in_tx)
        cm_store_rollback(site->store);
    cm_site_free(site);
    return NULL;
}

void
cm_site_free(CmSite *site)
{
    if (site == NULL)
        return;
    cm_site_collections_free(site);
    if (site->push_accounts != NULL)
        g_ptr_array_unref(site->push_accounts);
    if (site->client_certs != NULL)
        g_hash_table_unref(site->client_certs);
    if (site->policy_answers != NULL)
        g_hash_table_unref(site->policy_answers);
    cm_trust_free(site->pki_trust);
    cm_key_unref(site->trk);
    cm_key_unref(site->signing_key);
    cm_cert_unref(site->signing_cert);
    cm_key_unref(site->enc_key);
    cm_cert_unref(site->enc_cert);
    cm_key_unref(site->issuing_key);
    cm_cert_unref(site->issuing_cert);
    cm_store_close(site->store);
    g_free(site->forest);
    OPENSSL_cleanse(site->master_key, sizeof site->master_key);
    g_free(site);
}

const char *
cm_site_code(const CmSite *site)
{
    return site->code;
}

CmKey *
cm_site_trk(const CmSite *site)
{
    return site->trk;
}

CmCert *
cm_site_signing_cert(const CmSite *site)
{
    return site->signing_cert;
}

CmCert *
cm_site_encryption_cert(const CmSite *site)
{
    return site->enc_cert;
}

CmCert *
cm_site_issuing_root(const CmSite *site)
{
    return site->issuing_cert;
}

char *
cm_site_export_trk(const CmSite *site)
{
    /* A child site's clients get the top-level site's key (hierarchy.c). */
    return cm_site_hierarchy_trk_hex((CmSite *)site);
}

CmStore *
cm_site_store(CmSite *site)
{
    return site->store;
}

CmTrust *
cm_site_pki_trust(CmSite *site)
{
    return site->pki_trust;
}

gboolean
cm_site_set_pki(CmSite *site, const CmCert *root, const CmCrl *crl, GError **error)
{
    GError *cause = NULL;
    CmTrust *trust = cm_trust_new();

    if (!cm_trust_add_root(trust, root, &cause) ||
        (crl != NULL && !cm_trust_add_crl(trust, crl, &cause))) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "PKI trust: %s", cause->message);
        g_error_free(cause);
        cm_trust_free(trust);
        return FALSE;
    }
    cm_trust_set_crl_check(trust, site->settings.crl_check);
    cm_trust_free(site->pki_trust);
    site->pki_trust = trust;
    return TRUE;
}

const CmSiteCounters *
cm_site_counters(const CmSite *site)
{
    return &site->counters;
}

/* ------------------------------------------------------ management points */

gboolean
cm_site_mp_store(CmSite *site, const char *host, gboolean internet, const CmCert *mp_cert,
                 const CmKey *mp_key, const char *detail, CmTime now, CmMpInfo *info_out,
                 CmCert **tls_out, GError **error)
{
    GError *cause = NULL;
    const char *dns[2] = {host, NULL};
    g_autoptr(CmCert) tls = NULL;
    g_autoptr(GBytes) der = cm_cert_to_der(mp_cert), tls_der = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE;
    guint64 role_id;

    st = SITE_STMT(site, "SELECT count(*) FROM mps", &cause);
    if (st == NULL || !cm_store_step_row(site->store, st, &row, &cause))
        goto store_fail;
    role_id = FIRST_ROLE_ID + (guint64)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    /* Its TLS certificate for Enhanced HTTP comes from the site's issuing
     * root (REQ TRUST-10). */
    tls = site_issue(site, CM_CERT_SERVER, host, dns, mp_key, site->issuing_key,
                     site->issuing_cert, NULL, now, MP_CERT_LIFETIME, error);
    if (tls == NULL)
        return FALSE;
    tls_der = cm_cert_to_der(tls);
    st = SITE_STMT(site,
                   "INSERT INTO mps(name, role_id, internet, cert, tls_cert) VALUES (?,?,?,?,?)",
                   &cause);
    if (st == NULL)
        goto store_fail;
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)role_id);
    sqlite3_bind_int(st, 3, internet ? 1 : 0);
    sqlite3_bind_blob(st, 4, g_bytes_get_data(der, NULL), (int)g_bytes_get_size(der),
                      SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, g_bytes_get_data(tls_der, NULL), (int)g_bytes_get_size(tls_der),
                      SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail;
    if (!cm_site_audit(site, "system", "add-mp", host, detail, now, error))
        return FALSE;
    if (info_out != NULL) {
        memset(info_out, 0, sizeof *info_out);
        g_strlcpy(info_out->name, host, sizeof info_out->name);
        info_out->role_id = role_id;
        info_out->internet = internet;
        info_out->https = TRUE;
        info_out->ehttp = site->settings.communication == CM_COMM_EHTTP;
        info_out->http = site->settings.communication == CM_COMM_HTTP_OR_HTTPS;
    }
    if (tls_out != NULL)
        *tls_out = g_steal_pointer(&tls);
    return TRUE;
store_fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_add_mp(CmSite *site, const char *name, gboolean internet, CmTime now,
               CmMpInfo *info_out, CmCert **mp_cert, CmCert **tls_cert, CmKey **key,
               GError **error)
{
    GError *cause = NULL;
    g_autoptr(CmKey) mp_key = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autofree char *trk_cn = g_strdup_printf("Trusted Root Key %s", site->code);
    g_autofree char *host = NULL;
    const char *dns[2] = {NULL, NULL};

    if (name == NULL || *name == '\0' || strlen(name) > CM_NAME_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a management point needs a host name of 1 to %d characters", CM_NAME_MAX);
        return FALSE;
    }
    if (!cm_site_hierarchy_may_self_sign_mp(site, error)) /* hierarchy.c */
        return FALSE;
    host = g_ascii_strdown(name, -1);
    dns[0] = host;
    if (!cm_store_begin(site->store, &cause))
        goto store_fail;
    mp_key = cm_key_generate(site->settings.key_alg, &cause);
    if (mp_key == NULL)
        goto store_fail_tx;
    /* The MP certificate is signed with the trusted root key (REQ
     * TRUST-02); clients holding the TRK can tell our MPs from others. */
    cert = site_issue(site, CM_CERT_MP, host, dns, mp_key, site->trk, NULL, trk_cn, now,
                      MP_CERT_LIFETIME, error);
    if (cert == NULL ||
        !cm_site_mp_store(site, host, internet, cert, mp_key, internet ? "internet" : "intranet",
                          now, info_out, tls_cert, error))
        goto fail_tx;
    if (!cm_store_commit(site->store, &cause)) {
        if (tls_cert != NULL)
            g_clear_pointer(tls_cert, cm_cert_unref);
        goto store_fail_tx;
    }
    if (mp_cert != NULL)
        *mp_cert = g_steal_pointer(&cert);
    if (key != NULL)
        *key = g_steal_pointer(&mp_key);
    return TRUE;
store_fail_tx:
    cm_site_store_error(error, cause);
fail_tx:
    cm_store_rollback(site->store);
    return FALSE;
store_fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_issue_system_cert(CmSite *site, CmCertProfile profile, const char *cn,
                          const char *dns_name, CmTime now, CmCert **cert_out, CmKey **key_out,
                          GError **error)
{
    GError *cause = NULL;
    g_autoptr(CmKey) key = NULL;
    CmCert *cert = NULL;
    const char *dns[2] = {dns_name, NULL};

    if (profile != CM_CERT_SERVER && profile != CM_CERT_CLIENT_AUTH) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "the issuing root gives site systems server or client "
                    "authentication certificates only");
        return FALSE;
    }
    if (cn == NULL || *cn == '\0' || strlen(cn) > CM_NAME_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a certificate holder needs a name of 1 to %d characters", CM_NAME_MAX);
        return FALSE;
    }
    key = cm_key_generate(site->settings.key_alg, &cause);
    if (key == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "key for \"%s\": %s", cn,
                    cause->message);
        g_error_free(cause);
        return FALSE;
    }
    cert = site_issue(site, profile, cn, dns_name ? dns : NULL, key, site->issuing_key,
                      site->issuing_cert, NULL, now, MP_CERT_LIFETIME, error);
    if (cert == NULL)
        return FALSE;
    *cert_out = cert;
    *key_out = g_steal_pointer(&key);
    return TRUE;
}

GArray *
cm_site_mps(CmSite *site)
{
    GArray *mps = g_array_new(FALSE, TRUE, sizeof(CmMpInfo));
    sqlite3_stmt *st = SITE_STMT(site, "SELECT name, role_id, internet FROM mps ORDER BY role_id",
                                 NULL);
    gboolean row = TRUE;

    while (st != NULL && cm_store_step_row(site->store, st, &row, NULL) && row) {
        CmMpInfo info = {0};
        g_strlcpy(info.name, (const char *)sqlite3_column_text(st, 0), sizeof info.name);
        info.role_id = (guint64)sqlite3_column_int64(st, 1);
        info.internet = sqlite3_column_int(st, 2) != 0;
        info.https = TRUE;
        info.ehttp = site->settings.communication == CM_COMM_EHTTP;
        info.http = site->settings.communication == CM_COMM_HTTP_OR_HTTPS;
        g_array_append_val(mps, info);
    }
    return mps;
}

/* ------------------------------------------------------ published info */

json_t *
cm_site_siteinfo_json(CmSite *site)
{
    g_autofree char *trk = cm_site_hierarchy_trk_hex(site); /* REQ TRUST-02 */
    g_autoptr(GBytes) sign = cm_cert_to_der(site->signing_cert);
    g_autoptr(GBytes) enc = cm_cert_to_der(site->enc_cert);
    g_autofree char *sign_b64 = cm_enc_b64(g_bytes_get_data(sign, NULL), g_bytes_get_size(sign));
    g_autofree char *enc_b64 = cm_enc_b64(g_bytes_get_data(enc, NULL), g_bytes_get_size(enc));
    const CmSiteSettings *s = &site->settings;

    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:b, s:b, s:b, s:s}}", "site_code", site->code,
                     "trk", trk, "signing_cert", sign_b64, "encryption_cert", enc_b64, "settings",
                     "communication", cm_comm_mode_name(s->communication), "require_signing",
                     s->require_signing, "require_sha256", s->require_sha256, "encrypt",
                     s->encrypt, "approval", cm_approval_mode_name(s->approval));
}

json_t *
cm_site_mplist_json(CmSite *site)
{
    g_autoptr(GArray) mps = cm_site_mps(site);
    json_t *list = json_array();

    for (guint i = 0; i < mps->len; i++) {
        const CmMpInfo *m = &g_array_index(mps, CmMpInfo, i);
        json_array_append_new(list, json_pack("{s:s, s:I, s:b, s:b, s:b, s:b}", "name", m->name,
                                              "role_id", (json_int_t)m->role_id, "http", m->http,
                                              "https", m->https, "ehttp", m->ehttp, "internet",
                                              m->internet));
    }
    return json_pack("{s:s, s:o}", "site_code", site->code, "mps", list);
}
