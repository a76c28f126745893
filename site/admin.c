/* admin.c - administrative actions on clients, the audit trail they leave,
 * and the secrets the site keeps sealed (REQ ADM-03). */
#include "internal.h"

#include <string.h>

const char *
cm_client_state_name(CmClientState s)
{
    switch (s) {
    case CM_CLIENT_APPROVED:
        return "approved";
    case CM_CLIENT_BLOCKED:
        return "blocked";
    case CM_CLIENT_PENDING:
    default:
        return "pending";
    }
}

/* ---------------------------------------------------------------- audit */

/* Each entry carries the hash of the one before, so a deleted or altered
 * entry breaks the chain (verified by the hierarchy issue's audit command). */
gboolean
cm_site_audit(CmSite *site, const char *admin, const char *action, const char *target,
              const char *detail, CmTime now, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    g_autofree char *prev = NULL, *line = NULL, *hash_hex = NULL;
    guint8 hash[32];
    gboolean row = FALSE;

    st = SITE_STMT(site, "SELECT hash FROM audit ORDER BY id DESC LIMIT 1", &cause);
    if (st == NULL || !cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    prev = g_strdup(row ? (const char *)sqlite3_column_text(st, 0) : "");
    if (row)
        sqlite3_reset(st);
    line = g_strdup_printf("%s\n%" G_GINT64_FORMAT "\n%s\n%s\n%s\n%s", prev, now, admin, action,
                           target, detail);
    cm_hash(CM_HASH_SHA256, line, strlen(line), hash);
    hash_hex = cm_enc_hex(hash, sizeof hash);
    st = SITE_STMT(site,
                   "INSERT INTO audit(at, admin, action, target, detail, prev_hash, hash)"
                   " VALUES (?,?,?,?,?,?,?)",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, admin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, prev, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, hash_hex, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    /* The head lets verification see a truncated tail (rbac.c). */
    return cm_site_meta_set(site, "audit_head", hash_hex, error);
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* -------------------------------------------------------------- secrets */

gboolean
cm_site_secret_put(CmSite *site, const char *name, const void *data, size_t len, CmTime now,
                   GError **error)
{
    GError *cause = NULL;
    g_autoptr(GBytes) sealed = cm_aead_seal(site->master_key, data, len, name, &cause);
    sqlite3_stmt *st;

    if (sealed == NULL)
        goto fail;
    st = SITE_STMT(site, "INSERT OR REPLACE INTO secrets(name, sealed, updated) VALUES (?,?,?)",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, g_bytes_get_data(sealed, NULL), (int)g_bytes_get_size(sealed),
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

GBytes *
cm_site_secret_get(CmSite *site, const char *name, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, "SELECT sealed FROM secrets WHERE name = ?", &cause);
    gboolean row = FALSE;
    GBytes *plain;

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no secret \"%s\"", name);
        return NULL;
    }
    /* The name is the associated data: a blob moved to another name fails. */
    plain = cm_aead_open(site->master_key, sqlite3_column_blob(st, 0),
                         (size_t)sqlite3_column_bytes(st, 0), name, &cause);
    sqlite3_reset(st);
    if (plain == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED, "secret \"%s\": %s", name,
                    cause->message);
        g_error_free(cause);
    }
    return plain;
fail:
    cm_site_store_error(error, cause);
    return NULL;
}

/* -------------------------------------------------------------- clients */

gboolean
cm_site_client(CmSite *site, const char *smsid, CmClientInfo *out, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st =
        SITE_STMT(site,
                  "SELECT smsid, hwid, name, domain, state, registered_by, ksp, media, thumbprint,"
                  " registered_at, last_seen, registrations, coalesce(first_id, id) FROM clients"
                  " WHERE smsid = ? AND obsolete = 0",
                  &cause);
    gboolean row = FALSE;

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no client %s", smsid);
        return FALSE;
    }
    memset(out, 0, sizeof *out);
    g_strlcpy(out->smsid, (const char *)sqlite3_column_text(st, 0), sizeof out->smsid);
    g_strlcpy(out->hwid, (const char *)sqlite3_column_text(st, 1), sizeof out->hwid);
    g_strlcpy(out->name, (const char *)sqlite3_column_text(st, 2), sizeof out->name);
    g_strlcpy(out->domain, (const char *)sqlite3_column_text(st, 3), sizeof out->domain);
    out->state = (CmClientState)sqlite3_column_int(st, 4);
    out->registered_by = (CmAuthKind)sqlite3_column_int(st, 5);
    out->ksp = (CmKspKind)sqlite3_column_int(st, 6);
    out->media = sqlite3_column_int(st, 7) != 0;
    g_strlcpy(out->thumbprint, (const char *)sqlite3_column_text(st, 8), sizeof out->thumbprint);
    out->registered_at = sqlite3_column_int64(st, 9);
    out->last_seen = sqlite3_column_int64(st, 10);
    out->registrations = sqlite3_column_int(st, 11);
    out->key = sqlite3_column_int64(st, 12);
    sqlite3_reset(st);
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_client_state(CmSite *site, const char *smsid, CmClientState *state, gint64 *id, gint64 *key)
{
    sqlite3_stmt *st = SITE_STMT(
        site,
        "SELECT state, id, coalesce(first_id, id) FROM clients WHERE smsid = ? AND obsolete = 0",
        NULL);
    gboolean row = FALSE;

    if (st == NULL)
        return FALSE;
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, NULL) || !row)
        return FALSE;
    *state = (CmClientState)sqlite3_column_int(st, 0);
    if (id != NULL)
        *id = sqlite3_column_int64(st, 1);
    if (key != NULL)
        *key = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    return TRUE;
}

gint64
cm_site_client_count(CmSite *site, int state)
{
    sqlite3_stmt *st = SITE_STMT(
        site, "SELECT count(*) FROM clients WHERE obsolete = 0 AND (?1 < 0 OR state = ?1)", NULL);
    gboolean row = FALSE;
    gint64 n = -1;

    if (st == NULL)
        return -1;
    sqlite3_bind_int(st, 1, state);
    if (cm_store_step_row(site->store, st, &row, NULL) && row) {
        n = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    return n;
}

gboolean
cm_site_block_in_tx(CmSite *site, const CmClientInfo *info, CmTime now, GError **error)
{
    GError *cause = NULL;
    const char *kinds[] = {"thumbprint", "hwid"};
    const char *values[] = {info->thumbprint, info->hwid};
    sqlite3_stmt *st;

    st = SITE_STMT(site, "UPDATE clients SET state = ? WHERE smsid = ? AND obsolete = 0", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_int(st, 1, CM_CLIENT_BLOCKED);
    sqlite3_bind_text(st, 2, info->smsid, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    for (int i = 0; i < 2; i++) {
        st = SITE_STMT(site,
                       "INSERT OR REPLACE INTO blocked(kind, value, smsid, at) VALUES (?,?,?,?)",
                       &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, kinds[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, values[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, info->smsid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    /* A blocked client leaves every collection (no policy reaches it). */
    st = SITE_STMT(site, "DELETE FROM members WHERE client = ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, info->key);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Moves a live record to state; blocking goes through cm_site_block_in_tx.
 * Runs inside its own transaction and audits. */
static gboolean
client_set_state(CmSite *site, const char *smsid, CmClientState state, const char *admin,
                 const char *action, CmTime now, GError **error)
{
    GError *cause = NULL;
    CmClientInfo info;
    sqlite3_stmt *st;

    if (!cm_site_authorize_client(site, admin, state == CM_CLIENT_APPROVED ? CM_ADMIN_APPROVE
                                                                           : CM_ADMIN_BLOCK,
                                  smsid, now, error)) /* rbac.c */
        return FALSE;
    if (!cm_store_begin(site->store, &cause))
        goto store_fail;
    if (!cm_site_client(site, smsid, &info, error))
        goto fail;
    if (state == CM_CLIENT_APPROVED && info.state == CM_CLIENT_BLOCKED) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_STATE,
                    "client %s is blocked: unblock it before approving", smsid);
        goto fail;
    }
    st = SITE_STMT(site, "UPDATE clients SET state = ? WHERE smsid = ? AND obsolete = 0", &cause);
    if (st == NULL)
        goto store_fail_tx;
    sqlite3_bind_int(st, 1, state);
    sqlite3_bind_text(st, 2, smsid, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail_tx;
    if (state == CM_CLIENT_BLOCKED) {
        if (!cm_site_block_in_tx(site, &info, now, error))
            goto fail;
    } else {
        st = SITE_STMT(site, "DELETE FROM blocked WHERE smsid = ?", &cause);
        if (st == NULL)
            goto store_fail_tx;
        sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto store_fail_tx;
        if (state == CM_CLIENT_APPROVED &&
            !cm_site_collections_evaluate(site, smsid, info.key, CM_CLIENT_APPROVED, error))
            goto fail;
    }
    if (!cm_site_audit(site, admin, action, smsid, cm_client_state_name(state), now, error))
        goto fail;
    if (!cm_store_commit(site->store, &cause))
        goto store_fail_tx;
    return TRUE;
store_fail_tx:
store_fail:
    cm_site_store_error(error, cause);
fail:
    cm_store_rollback(site->store);
    return FALSE;
}

gboolean
cm_site_admin_approve(CmSite *site, const char *smsid, const char *admin, CmTime now,
                      GError **error)
{
    return client_set_state(site, smsid, CM_CLIENT_APPROVED, admin, "approve", now, error);
}

gboolean
cm_site_admin_block(CmSite *site, const char *smsid, const char *admin, CmTime now,
                    GError **error)
{
    return client_set_state(site, smsid, CM_CLIENT_BLOCKED, admin, "block", now, error);
}

gboolean
cm_site_admin_unblock(CmSite *site, const char *smsid, const char *admin, CmTime now,
                      GError **error)
{
    /* Unblocked clients return to pending: approval is decided again. */
    return client_set_state(site, smsid, CM_CLIENT_PENDING, admin, "unblock", now, error);
}

/* -------------------------------------------------------- client versions */

char *
cm_site_client_version(CmSite *site)
{
    char *v = NULL;

    if (!cm_site_meta_get(site, "client_version", &v, NULL) || v == NULL)
        return g_strdup(CM_SITE_CLIENT_VERSION);
    return v;
}

char *
cm_site_sup_client_version(CmSite *site)
{
    char *v = NULL;

    (void)cm_site_meta_get(site, "sup_client_version", &v, NULL);
    return v;
}

/* Sets a meta value in its own transaction with an audit entry. */
static gboolean
meta_change(CmSite *site, const char *key, const char *value, const char *admin,
            const char *action, CmTime now, GError **error)
{
    GError *cause = NULL;

    if (!cm_site_authorize(site, admin, CM_ADMIN_CLIENT_UPGRADE, 0, now, error)) /* rbac.c */
        return FALSE;
    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    if (!cm_site_meta_set(site, key, value, error) ||
        !cm_site_audit(site, admin, action, site->code, value, now, error) ||
        !cm_store_commit(site->store, &cause)) {
        if (cause != NULL)
            cm_site_store_error(error, cause);
        cm_store_rollback(site->store);
        return FALSE;
    }
    return TRUE;
}

gboolean
cm_site_upgrade(CmSite *site, const char *version, const char *admin, CmTime now,
                GError **error)
{
    if (version == NULL || *version == '\0' || strlen(version) > 32 ||
        strspn(version, "0123456789.") != strlen(version)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "client version \"%s\": expected digits and dots, such as 5.00.9128.1000",
                    version ? version : "");
        return FALSE;
    }
    return meta_change(site, "client_version", version, admin, "upgrade-site", now, error);
}

gboolean
cm_site_publish_client_to_sup(CmSite *site, const char *admin, CmTime now, GError **error)
{
    g_autofree char *version = cm_site_client_version(site);

    return meta_change(site, "sup_client_version", version, admin, "publish-client-to-sup", now,
                       error);
}

/* ------------------------------------------------------------ client push */

typedef struct {
    char *name;
    char **domains; /* NULL: everything */
} PushAccount;

static void
push_account_free(gpointer p)
{
    PushAccount *a = p;
    g_free(a->name);
    g_strfreev(a->domains);
    g_free(a);
}

static gboolean
in_scope(CmSite *site, const PushAccount *a, const char *domain)
{
    if (a->domains == NULL)
        return TRUE;
    for (guint i = 0; a->domains[i] != NULL; i++) {
        size_t n = strlen(a->domains[i]), d = strlen(domain);
        /* the domain or a child of it */
        if (g_ascii_strcasecmp(domain, a->domains[i]) == 0 ||
            (d > n && domain[d - n - 1] == '.' &&
             g_ascii_strcasecmp(domain + d - n, a->domains[i]) == 0))
            return TRUE;
    }
    (void)site;
    return FALSE;
}

gboolean
cm_site_add_push_account(CmSite *site, const char *name, const char *password,
                         const char *const *domains, const char *admin, CmTime now,
                         GError **error)
{
    g_autofree char *secret_name = NULL, *detail = NULL;
    PushAccount *a;

    if (name == NULL || *name == '\0' || strlen(name) > 128 || password == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a push account needs a name (1 to 128 characters) and a password");
        return FALSE;
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_CLIENT_PUSH, 0, now, error)) /* rbac.c */
        return FALSE;
    secret_name = g_strdup_printf("push-account:%s", name);
    detail = domains && domains[0] ? g_strjoinv(",", (char **)domains) : g_strdup("(all)");
    {
        GError *cause = NULL;
        sqlite3_stmt *st;
        if (!cm_store_begin(site->store, &cause)) {
            cm_site_store_error(error, cause);
            return FALSE;
        }
        st = SITE_STMT(site, "INSERT INTO push_accounts(name, domains) VALUES (?, ?)", &cause);
        if (st != NULL) {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, domains && domains[0] ? detail : "", -1, SQLITE_STATIC);
        }
        if (st == NULL || !cm_store_step_done(site->store, st, &cause)) {
            cm_site_store_error(error, cause);
            cm_store_rollback(site->store);
            return FALSE;
        }
        if (!cm_site_secret_put(site, secret_name, password, strlen(password), now, error) ||
            !cm_site_audit(site, admin, "add-push-account", name, detail, now, error) ||
            !cm_store_commit(site->store, &cause)) {
            if (cause != NULL)
                cm_site_store_error(error, cause);
            cm_store_rollback(site->store);
            return FALSE;
        }
    }
    if (site->push_accounts == NULL)
        site->push_accounts = g_ptr_array_new_with_free_func(push_account_free);
    a = g_new0(PushAccount, 1);
    a->name = g_strdup(name);
    a->domains = domains && domains[0] ? g_strdupv((char **)domains) : NULL;
    g_ptr_array_add(site->push_accounts, a);
    return TRUE;
}

gboolean
cm_site_push_require_kerberos(CmSite *site, gboolean on, GError **error)
{
    if (!cm_site_meta_set(site, "push_require_kerberos", on ? "1" : "0", error))
        return FALSE;
    site->push_require_kerberos = on;
    return TRUE;
}

CmPushAuth
cm_site_push_to(CmSite *site, const char *domain, char **account)
{
    const char *d = domain ? domain : "";

    *account = NULL;
    /* The first account whose scope covers the target; the product tries
     * accounts in order until one works. */
    for (guint i = 0; site->push_accounts != NULL && i < site->push_accounts->len; i++) {
        PushAccount *a = g_ptr_array_index(site->push_accounts, i);
        if (in_scope(site, a, d)) {
            *account = g_strdup(a->name);
            break;
        }
    }
    if (*account == NULL)
        return CM_PUSH_REFUSED;
    if (*d != '\0' && cm_site_kerberos_verifiable(site, d))
        return CM_PUSH_KERBEROS;
    if (site->push_require_kerberos) {
        g_clear_pointer(account, g_free);
        return CM_PUSH_REFUSED;
    }
    return CM_PUSH_NTLM;
}

guint
cm_site_push_reach(CmSite *site, const char *account, const char *const *targets,
                   guint n_targets)
{
    PushAccount *a = NULL;
    guint n = 0;

    for (guint i = 0; site->push_accounts != NULL && i < site->push_accounts->len; i++) {
        PushAccount *p = g_ptr_array_index(site->push_accounts, i);
        if (g_strcmp0(p->name, account) == 0)
            a = p;
    }
    for (guint i = 0; a != NULL && i < n_targets; i++)
        n += in_scope(site, a, targets[i] ? targets[i] : "");
    return n;
}

gboolean
cm_site_push_load(CmSite *site, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, "SELECT name, domains FROM push_accounts ORDER BY id", &cause);
    gboolean row = TRUE;

    if (st == NULL)
        goto fail;
    {
        g_autofree char *req = NULL;
        if (!cm_site_meta_get(site, "push_require_kerberos", &req, error))
            return FALSE;
        site->push_require_kerberos = req != NULL && strcmp(req, "1") == 0;
    }
    if (site->push_accounts == NULL)
        site->push_accounts = g_ptr_array_new_with_free_func(push_account_free);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        PushAccount *a = g_new0(PushAccount, 1);
        const char *d = (const char *)sqlite3_column_text(st, 1);
        a->name = g_strdup((const char *)sqlite3_column_text(st, 0));
        a->domains = d != NULL && *d != '\0' ? g_strsplit(d, ",", -1) : NULL;
        g_ptr_array_add(site->push_accounts, a);
    }
    if (cause != NULL)
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}
