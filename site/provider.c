/* provider.c - the SMS Provider's minimum authentication level (REQ ADM-02):
 * every administrative caller signs in with Windows authentication (a
 * password or Kerberos), a certificate, or two factors (a certificate or
 * Kerberos plus a time-based one-time code, RFC 6238).  The level is a
 * hierarchy-wide setting: the top-level site sets it and replication
 * carries it to every child site. */
#include "hier-internal.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define PBKDF2_ITERATIONS 100000
#define PBKDF2_SALT       16
#define PASSWORD_MAX      256
#define TOTP_STEP         30
#define TOTP_DIGITS       6

static const char *const level_names[] = {"windows", "certificate", "two-factor"};

const char *
cm_provider_auth_name(CmProviderAuth a)
{
    return (unsigned)a < G_N_ELEMENTS(level_names) ? level_names[a] : "unknown";
}

gboolean
cm_provider_auth_parse(const char *s, CmProviderAuth *out, GError **error)
{
    for (size_t i = 0; s != NULL && i < G_N_ELEMENTS(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (CmProviderAuth)i;
            return TRUE;
        }
    }
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                "unknown authentication level \"%s\": use windows, certificate or two-factor",
                s ? s : "(none)");
    return FALSE;
}

/* ----------------------------------------------------------------- TOTP */

gboolean
cm_totp(const char *digest, const guint8 *key, size_t key_len, gint64 unix_seconds, guint step,
        guint digits, char out[11], GError **error)
{
    static const guint32 pow10[] = {1,        10,        100,        1000,      10000,
                                    100000,   1000000,   10000000,   100000000, 1000000000};
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    guint8 counter[8], hmac[EVP_MAX_MD_SIZE];
    size_t hmac_len = 0;
    guint64 t;
    guint32 code, offset;
    gboolean ok = FALSE;

    out[0] = '\0';
    if (digest == NULL ||
        (strcmp(digest, "SHA1") != 0 && strcmp(digest, "SHA256") != 0 &&
         strcmp(digest, "SHA512") != 0) ||
        key == NULL || key_len == 0 || key_len > CM_TOTP_MAX_KEY || step == 0 || digits < 6 ||
        digits > 10 || unix_seconds < 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "TOTP needs SHA1, SHA256 or SHA512, a key of 1 to %d bytes, a step and "
                    "6 to 10 digits",
                    CM_TOTP_MAX_KEY);
        return FALSE;
    }
    t = (guint64)unix_seconds / step;
    for (int i = 7; i >= 0; i--, t >>= 8)
        counter[i] = (guint8)(t & 0xff);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
        (ctx = EVP_MAC_CTX_new(mac)) == NULL || !EVP_MAC_init(ctx, key, key_len, params) ||
        !EVP_MAC_update(ctx, counter, sizeof counter) ||
        !EVP_MAC_final(ctx, hmac, &hmac_len, sizeof hmac) || hmac_len < 20) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "TOTP: HMAC-%s failed", digest);
        goto out;
    }
    /* Dynamic truncation (RFC 4226 section 5.3). */
    offset = hmac[hmac_len - 1] & 0x0f;
    code = ((guint32)(hmac[offset] & 0x7f) << 24) | ((guint32)hmac[offset + 1] << 16) |
           ((guint32)hmac[offset + 2] << 8) | hmac[offset + 3];
    if (digits < 10)
        code %= pow10[digits];
    g_snprintf(out, 11, "%0*u", (int)digits, code);
    ok = TRUE;
out:
    OPENSSL_cleanse(hmac, sizeof hmac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/* ---------------------------------------------------------------- level */

CmProviderAuth
cm_site_provider_level(CmSite *site)
{
    g_autofree char *v = NULL;
    CmProviderAuth level = CM_PROVIDER_AUTH_WINDOWS;

    /* An unreadable setting asks for the most. */
    if (!cm_site_meta_get(site, "provider_auth_level", &v, NULL))
        return CM_PROVIDER_AUTH_TWO_FACTOR;
    if (v != NULL && !cm_provider_auth_parse(v, &level, NULL))
        return CM_PROVIDER_AUTH_TWO_FACTOR;
    return level;
}

gboolean
cm_site_provider_apply(CmSite *site, const json_t *value, GError **error)
{
    const char *name = value ? cm_json_str(value, "level", 32, NULL) : NULL;
    CmProviderAuth level;

    if (!cm_provider_auth_parse(name, &level, error))
        return FALSE;
    return cm_site_meta_set(site, "provider_auth_level", cm_provider_auth_name(level), error);
}

typedef struct {
    gboolean known;
    char *principal;
    char *cert;
    char *password;
    gint64 totp_step;
    gboolean has_totp;
} Creds;

static void
creds_clear(Creds *c)
{
    g_free(c->principal);
    g_free(c->cert);
    if (c->password != NULL)
        OPENSSL_cleanse(c->password, strlen(c->password));
    g_free(c->password);
    memset(c, 0, sizeof *c);
}

static gboolean
creds_load(CmSite *site, const char *name, Creds *c, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE;

    memset(c, 0, sizeof *c);
    st = SITE_STMT(site,
                   "SELECT principal, cert_thumbprint, password, totp_step FROM admins"
                   " WHERE name = ?",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row)
        return TRUE;
    c->known = TRUE;
    c->principal = g_strdup((const char *)sqlite3_column_text(st, 0));
    c->cert = g_strdup((const char *)sqlite3_column_text(st, 1));
    c->password = g_strdup((const char *)sqlite3_column_text(st, 2));
    c->totp_step = sqlite3_column_int64(st, 3);
    sqlite3_reset(st);
    {
        g_autofree char *secret = g_strdup_printf("admin-totp:%s", name);
        st = SITE_STMT(site, "SELECT 1 FROM secrets WHERE name = ?", &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, secret, -1, SQLITE_TRANSIENT);
        if (!cm_store_step_row(site->store, st, &row, &cause))
            goto fail;
        c->has_totp = row;
        if (row)
            sqlite3_reset(st);
    }
    return TRUE;
fail:
    creds_clear(c);
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Whether an administrator with these credentials can reach level. */
static gboolean
creds_reach(const Creds *c, CmProviderAuth level)
{
    switch (level) {
    case CM_PROVIDER_AUTH_WINDOWS:
        return c->password != NULL || c->principal != NULL || c->cert != NULL;
    case CM_PROVIDER_AUTH_CERTIFICATE:
        return c->cert != NULL;
    case CM_PROVIDER_AUTH_TWO_FACTOR:
    default:
        return (c->cert != NULL || c->principal != NULL) && c->has_totp;
    }
}

gboolean
cm_site_provider_set_level(CmSite *site, CmProviderAuth level, const char *admin, CmTime now,
                           GError **error)
{
    GError *cause = NULL;
    g_autoptr(GString) unable = g_string_new(NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(json_t) value = NULL;
    g_autofree char *detail = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE, ok;
    Creds mine;

    if ((unsigned)level > CM_PROVIDER_AUTH_TWO_FACTOR) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "unknown authentication level");
        return FALSE;
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_SECURITY, 0, now, error))
        return FALSE;
    if (!site->top_level) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "the SMS Provider authentication level is hierarchy-wide: set it at the "
                    "top-level site, site %s receives it by replication",
                    site->code);
        return FALSE;
    }
    /* Nobody locks themselves out (the product asks to check every
     * administrator first; the others are named in the audit entry). */
    if (!creds_load(site, admin, &mine, error))
        return FALSE;
    if (level > cm_site_provider_level(site) && mine.known && !creds_reach(&mine, level)) {
        creds_clear(&mine);
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "\"%s\" could not sign in at level %s: give them the credentials first",
                    admin, cm_provider_auth_name(level));
        return FALSE;
    }
    creds_clear(&mine);
    st = SITE_STMT(site, "SELECT name FROM admins ORDER BY name", &cause);
    while (st != NULL && cm_store_step_row(site->store, st, &row, &cause) && row)
        g_ptr_array_add(names, g_strdup((const char *)sqlite3_column_text(st, 0)));
    if (cause != NULL) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    for (guint i = 0; i < names->len; i++) {
        Creds c;
        if (!creds_load(site, g_ptr_array_index(names, i), &c, error))
            return FALSE;
        if (!creds_reach(&c, level))
            g_string_append_printf(unable, "%s%s", unable->len ? "," : "",
                                   (char *)g_ptr_array_index(names, i));
        creds_clear(&c);
    }
    detail = g_strdup_printf("%s; cannot sign in: %s", cm_provider_auth_name(level),
                             unable->len ? unable->str : "(none)");
    value = json_pack("{s:s}", "level", cm_provider_auth_name(level));
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    ok = cm_site_meta_set(site, "provider_auth_level", cm_provider_auth_name(level), error) &&
         cm_site_audit(site, admin, "provider-auth-level", site->code, detail, now, error) &&
         cm_site_repl_queue_global(site, "provider-auth", "level", value, site->code, NULL, now,
                                   error);
    if (ok && cm_store_commit(site->store, &cause))
        return TRUE;
    if (cause != NULL)
        cm_site_store_error(error, cause);
    cm_store_rollback(site->store);
    return FALSE;
}

/* ---------------------------------------------------------- credentials */

/* Changing one's own credentials needs no security role. */
static gboolean
may_change_creds(CmSite *site, const char *name, const char *admin, CmTime now, GError **error)
{
    if (name == NULL || !cm_site_rbac_is_admin(site, name)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no administrator \"%s\"",
                    name ? name : "");
        return FALSE;
    }
    if (admin != NULL && strcmp(admin, name) == 0)
        return TRUE;
    return cm_site_authorize(site, admin, CM_ADMIN_SECURITY, 0, now, error);
}

static char *
password_hash(const char *password, const guint8 *salt, size_t salt_len)
{
    guint8 out[32];
    g_autofree char *salt_hex = cm_enc_hex(salt, salt_len);
    g_autofree char *hash_hex = NULL;

    if (!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                           PBKDF2_ITERATIONS, EVP_sha256(), sizeof out, out))
        return NULL;
    hash_hex = cm_enc_hex(out, sizeof out);
    OPENSSL_cleanse(out, sizeof out);
    return g_strdup_printf("pbkdf2-sha256$%d$%s$%s", PBKDF2_ITERATIONS, salt_hex, hash_hex);
}

static gboolean
password_check(const char *stored, const char *password)
{
    g_auto(GStrv) parts = stored ? g_strsplit(stored, "$", 4) : NULL;
    g_autoptr(GBytes) salt = NULL;
    g_autofree char *again = NULL;
    gboolean ok;

    if (parts == NULL || g_strv_length(parts) != 4 || strcmp(parts[0], "pbkdf2-sha256") != 0 ||
        strcmp(parts[1], G_STRINGIFY(PBKDF2_ITERATIONS)) != 0)
        return FALSE;
    salt = cm_enc_hex_decode(parts[2], 64, NULL);
    if (salt == NULL)
        return FALSE;
    again = password_hash(password, g_bytes_get_data(salt, NULL), g_bytes_get_size(salt));
    ok = again != NULL && strlen(again) == strlen(stored) &&
         CRYPTO_memcmp(again, stored, strlen(stored)) == 0;
    return ok;
}

static gboolean
creds_update(CmSite *site, const char *sql, const char *name, const char *text, gint64 num,
             GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, sql, &cause);

    if (st == NULL)
        goto fail;
    if (text != NULL)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, num);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_admin_set_password(CmSite *site, const char *name, const char *password, CmRng *rng,
                           const char *admin, CmTime now, GError **error)
{
    GError *cause = NULL;
    guint8 salt[PBKDF2_SALT];
    g_autofree char *stored = NULL;
    gboolean ok;

    if (password == NULL || strlen(password) < 8 || strlen(password) > PASSWORD_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a password needs 8 to %d characters", PASSWORD_MAX);
        return FALSE;
    }
    if (!may_change_creds(site, name, admin, now, error))
        return FALSE;
    cm_rng_bytes(rng, salt, sizeof salt);
    stored = password_hash(password, salt, sizeof salt);
    if (stored == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "PBKDF2 failed");
        return FALSE;
    }
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    ok = creds_update(site, "UPDATE admins SET password = ?1 WHERE name = ?2", name, stored, 0,
                      error) &&
         cm_site_audit(site, admin, "set-password", name, "", now, error);
    if (ok && cm_store_commit(site->store, &cause))
        return TRUE;
    if (cause != NULL)
        cm_site_store_error(error, cause);
    cm_store_rollback(site->store);
    return FALSE;
}

gboolean
cm_site_admin_enroll_totp(CmSite *site, const char *name, const guint8 *secret, size_t len,
                          const char *admin, CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autofree char *secret_name = NULL;
    gboolean ok;

    if (secret == NULL || len < 16 || len > CM_TOTP_MAX_KEY) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a one-time-code secret needs 16 to %d bytes", CM_TOTP_MAX_KEY);
        return FALSE;
    }
    if (!may_change_creds(site, name, admin, now, error))
        return FALSE;
    secret_name = g_strdup_printf("admin-totp:%s", name);
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    ok = cm_site_secret_put(site, secret_name, secret, len, now, error) &&
         creds_update(site, "UPDATE admins SET totp_step = ?1 WHERE name = ?2", name, NULL, 0,
                      error) &&
         cm_site_audit(site, admin, "enroll-totp", name, "", now, error);
    if (ok && cm_store_commit(site->store, &cause))
        return TRUE;
    if (cause != NULL)
        cm_site_store_error(error, cause);
    cm_store_rollback(site->store);
    return FALSE;
}

gboolean
cm_site_admin_set_identity(CmSite *site, const char *name, const char *principal,
                           const char *cert_thumbprint, const char *admin, CmTime now,
                           GError **error)
{
    GError *cause = NULL;
    g_autofree char *detail = NULL;
    g_autoptr(json_t) value = NULL;
    gboolean ok, builtin = name != NULL && strcmp(name, CM_SITE_BUILTIN_ADMIN) == 0;

    if ((principal != NULL && strlen(principal) > CM_NAME_MAX) ||
        (cert_thumbprint != NULL &&
         (strlen(cert_thumbprint) > 64 ||
          strspn(cert_thumbprint, "0123456789abcdefABCDEF") != strlen(cert_thumbprint)))) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a principal is at most %d characters, a thumbprint at most 64 hex digits",
                    CM_NAME_MAX);
        return FALSE;
    }
    if (!may_change_creds(site, name, admin, now, error))
        return FALSE;
    detail = g_strdup_printf("principal=%s cert=%s", principal ? principal : "(kept)",
                             cert_thumbprint ? cert_thumbprint : "(kept)");
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    ok = (principal == NULL ||
          creds_update(site, "UPDATE admins SET principal = nullif(?1, '') WHERE name = ?2", name,
                       principal, 0, error)) &&
         (cert_thumbprint == NULL ||
          creds_update(site, "UPDATE admins SET cert_thumbprint = nullif(?1, '') WHERE name = ?2",
                       name, cert_thumbprint, 0, error)) &&
         cm_site_audit(site, admin, "set-identity", name, detail, now, error);
    /* Administrators are global data; each site keeps its own installer. */
    if (ok && !builtin) {
        value = cm_site_rbac_admin_json(site, name);
        ok = cm_site_repl_queue_global(site, "admin", name, value, site->code, NULL, now, error);
    }
    if (ok && cm_store_commit(site->store, &cause))
        return TRUE;
    if (cause != NULL)
        cm_site_store_error(error, cause);
    cm_store_rollback(site->store);
    return FALSE;
}

/* ---------------------------------------------------------------- login */

/* The realm of "user@REALM", lower-cased (new string), or NULL. */
static char *
principal_realm(const char *principal)
{
    const char *at = principal ? strrchr(principal, '@') : NULL;
    return at != NULL && at[1] != '\0' ? g_ascii_strdown(at + 1, -1) : NULL;
}

static gboolean
totp_check(CmSite *site, const char *name, const Creds *c, const char *code, CmTime now,
           const char **why, GError **error)
{
    g_autofree char *secret_name = g_strdup_printf("admin-totp:%s", name);
    g_autoptr(GBytes) secret = NULL;
    gint64 t = now / CM_USEC_PER_SEC, step = t / TOTP_STEP;

    *why = NULL;
    if (!c->has_totp) {
        *why = "no one-time-code secret is enrolled";
        return FALSE;
    }
    if (strlen(code) != TOTP_DIGITS || strspn(code, "0123456789") != TOTP_DIGITS) {
        *why = "the one-time code is not 6 digits";
        return FALSE;
    }
    secret = cm_site_secret_get(site, secret_name, error);
    if (secret == NULL)
        return FALSE;
    /* One step either way for clock skew; a step at or before the last
     * accepted one is a replay. */
    for (gint64 s = step - 1; s <= step + 1; s++) {
        char want[11];
        if (s <= c->totp_step || s < 0)
            continue;
        if (!cm_totp("SHA1", g_bytes_get_data(secret, NULL), g_bytes_get_size(secret),
                     s * TOTP_STEP, TOTP_STEP, TOTP_DIGITS, want, error))
            return FALSE;
        if (CRYPTO_memcmp(want, code, TOTP_DIGITS) == 0)
            return creds_update(site, "UPDATE admins SET totp_step = ?1 WHERE name = ?2", name,
                                NULL, s, error) ||
                   (*why = "cannot record the code", FALSE);
    }
    *why = "the one-time code is wrong, expired or already used";
    return FALSE;
}

gboolean
cm_site_provider_login(CmSite *site, const CmProviderLogin *login, CmTime now,
                       CmProviderAuth *achieved, GError **error)
{
    const char *name = login ? login->admin : NULL;
    const char *why = NULL;
    gboolean windows = FALSE, kerberos = FALSE, cert = FALSE, totp = FALSE;
    CmProviderAuth level, required = cm_site_provider_level(site);
    g_autofree char *detail = NULL;
    GError *local = NULL;
    Creds c;

    memset(&c, 0, sizeof c);
    if (name == NULL || *name == '\0' || strlen(name) > 128) {
        why = "no administrator named";
        goto refused;
    }
    if (!creds_load(site, name, &c, error))
        return FALSE;
    if (!c.known) {
        why = "not an administrator";
        goto refused;
    }
    if (login->password != NULL) {
        if (c.password == NULL || !password_check(c.password, login->password)) {
            why = "the password is wrong";
            goto refused;
        }
        windows = TRUE;
    }
    if (login->kerberos_principal != NULL) {
        g_autofree char *realm = principal_realm(login->kerberos_principal);
        if (c.principal == NULL || g_ascii_strcasecmp(c.principal, login->kerberos_principal) != 0) {
            why = "the Kerberos principal is not this administrator's";
            goto refused;
        }
        /* The site verifies Kerberos only along forest trust (REQ NET-03). */
        if (realm == NULL || !cm_site_kerberos_verifiable(site, realm)) {
            why = "the principal's realm is not trusted by the site's forest";
            goto refused;
        }
        windows = kerberos = TRUE;
    }
    if (login->cert != NULL) {
        g_autofree char *thumb = cm_cert_thumbprint_hex(login->cert);
        if (c.cert == NULL || g_ascii_strcasecmp(c.cert, thumb) != 0) {
            why = "the certificate is not this administrator's";
            goto refused;
        }
        if (!cm_trust_verify(login->cert_trust ? login->cert_trust : site->pki_trust, login->cert,
                             NULL, now, CM_PURPOSE_CLIENT_AUTH,
                             NULL, &local)) {
            detail = g_strdup_printf("the certificate does not verify: %s", local->message);
            g_clear_error(&local);
            why = detail;
            goto refused;
        }
        cert = TRUE;
    }
    if (login->totp != NULL) {
        if (!totp_check(site, name, &c, login->totp, now, &why, &local)) {
            if (local != NULL) {
                g_propagate_error(error, local);
                creds_clear(&c);
                return FALSE;
            }
            goto refused;
        }
        totp = TRUE;
    }
    level = (cert || kerberos) && totp ? CM_PROVIDER_AUTH_TWO_FACTOR
            : cert                     ? CM_PROVIDER_AUTH_CERTIFICATE
                                       : CM_PROVIDER_AUTH_WINDOWS;
    if (!windows && !cert) {
        why = "no password, Kerberos principal or certificate was presented";
        goto refused;
    }
    if (level < required) {
        why = required == CM_PROVIDER_AUTH_CERTIFICATE
                  ? "the hierarchy requires certificate authentication"
                  : "the hierarchy requires two factors: a certificate or Kerberos, and a "
                    "one-time code";
        goto refused;
    }
    creds_clear(&c);
    if (achieved != NULL)
        *achieved = level;
    return cm_site_audit_now(site, name, "provider-login", site->code,
                             cm_provider_auth_name(level), now, error);
refused:
    creds_clear(&c);
    {
        GError *audit_error = NULL;
        if (!cm_site_audit_now(site, name && *name ? name : "(none)", "refused:provider-login",
                               site->code, why, now, &audit_error))
            g_clear_error(&audit_error);
    }
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED, "SMS Provider sign-in of \"%s\": %s",
                name ? name : "", why);
    return FALSE;
}
