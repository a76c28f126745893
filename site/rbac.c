/* rbac.c - role-based administration (REQ ADM-01): security roles decide
 * what an administrator may do, security scopes which objects it may use,
 * limiting collections which clients it sees and acts on.  Every check that
 * refuses lands in the audit trail, and the trail's hash chain is verified
 * here.
 *
 * Administrators are global data: a change made at one site replicates to
 * the rest of the hierarchy (hierarchy.c), so each site decides with its own
 * copy and no site has to ask another. */
#include "hier-internal.h"

#include <string.h>

#define ADMIN_NAME_MAX  128
#define SCOPE_NAME_MAX  64
#define REFUSAL_MAX     256

/* -------------------------------------------------------------- names */

static const char *const action_names[CM_ADMIN__COUNT] = {
    "view",     "approve",  "block",          "wipe",      "collections", "deploy",
    "settings", "client-push", "client-upgrade", "hierarchy", "security",
};

static const struct {
    const char *display;
    const char *shortname;
    guint32 actions;
} roles[CM_ROLE__COUNT] = {
#define A(x) (1u << (CM_ADMIN_##x))
    {"Full Administrator", "full", (1u << CM_ADMIN__COUNT) - 1},
    /* The product's Operations Administrator has everything but security;
     * here push and upgrade stay with the high roles too (seed 000). */
    {"Operations Administrator", "operations",
     A(VIEW) | A(APPROVE) | A(BLOCK) | A(WIPE) | A(COLLECTIONS) | A(DEPLOY)},
    {"Infrastructure Administrator", "infrastructure",
     A(VIEW) | A(APPROVE) | A(BLOCK) | A(SETTINGS) | A(CLIENT_PUSH) | A(CLIENT_UPGRADE) |
         A(HIERARCHY)},
    {"Application Deployment Manager", "application-deployment-manager", A(VIEW) | A(DEPLOY)},
    {"Read-only Analyst", "read-only-analyst", A(VIEW)},
    {"Security Administrator", "security", A(VIEW) | A(SECURITY)},
#undef A
};

const char *
cm_admin_action_name(CmAdminAction a)
{
    return (unsigned)a < CM_ADMIN__COUNT ? action_names[a] : "unknown";
}

const char *
cm_security_role_name(CmSecurityRole r)
{
    return (unsigned)r < CM_ROLE__COUNT ? roles[r].display : "unknown";
}

gboolean
cm_security_role_parse(const char *s, CmSecurityRole *out, GError **error)
{
    for (int i = 0; s != NULL && i < CM_ROLE__COUNT; i++) {
        if (g_ascii_strcasecmp(s, roles[i].display) == 0 ||
            g_ascii_strcasecmp(s, roles[i].shortname) == 0) {
            *out = (CmSecurityRole)i;
            return TRUE;
        }
    }
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                "unknown security role \"%s\": use full, operations, infrastructure, "
                "application-deployment-manager, read-only-analyst or security",
                s ? s : "(none)");
    return FALSE;
}

gboolean
cm_security_role_allows(CmSecurityRole r, CmAdminAction a)
{
    return (unsigned)r < CM_ROLE__COUNT && (unsigned)a < CM_ADMIN__COUNT &&
           (roles[r].actions & (1u << a)) != 0;
}

/* -------------------------------------------------------------- records */

typedef struct {
    gboolean known;
    gboolean builtin;
    guint32 actions;
    guint32 roles;       /* bit per CmSecurityRole */
    GPtrArray *scopes;   /* char* */
    GArray *collections; /* gint64 */
} AdminRecord;

static void
record_clear(AdminRecord *r)
{
    if (r->scopes != NULL)
        g_ptr_array_unref(r->scopes);
    if (r->collections != NULL)
        g_array_unref(r->collections);
    memset(r, 0, sizeof *r);
}

static gboolean
record_load(CmSite *site, const char *name, AdminRecord *r, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE;

    memset(r, 0, sizeof *r);
    r->scopes = g_ptr_array_new_with_free_func(g_free);
    r->collections = g_array_new(FALSE, FALSE, sizeof(gint64));
    st = SITE_STMT(site, "SELECT builtin FROM admins WHERE name = ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row)
        return TRUE;
    r->known = TRUE;
    r->builtin = sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    st = SITE_STMT(site, "SELECT role FROM admin_roles WHERE admin = ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        int role = sqlite3_column_int(st, 0);
        if (role >= 0 && role < CM_ROLE__COUNT) {
            r->roles |= 1u << role;
            r->actions |= roles[role].actions;
        }
    }
    if (cause != NULL)
        goto fail;
    st = SITE_STMT(site, "SELECT scope FROM admin_scopes WHERE admin = ? ORDER BY scope", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while (cm_store_step_row(site->store, st, &row, &cause) && row)
        g_ptr_array_add(r->scopes, g_strdup((const char *)sqlite3_column_text(st, 0)));
    if (cause != NULL)
        goto fail;
    st = SITE_STMT(site,
                   "SELECT collection_id FROM admin_collections WHERE admin = ? ORDER BY 1",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        gint64 id = sqlite3_column_int64(st, 0);
        g_array_append_val(r->collections, id);
    }
    if (cause != NULL)
        goto fail;
    return TRUE;
fail:
    record_clear(r);
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
record_has_scope(const AdminRecord *r, const char *scope)
{
    for (guint i = 0; i < r->scopes->len; i++)
        if (strcmp(g_ptr_array_index(r->scopes, i), scope) == 0)
            return TRUE;
    return FALSE;
}

static gboolean
record_limit_all(const AdminRecord *r)
{
    for (guint i = 0; i < r->collections->len; i++)
        if (g_array_index(r->collections, gint64, i) == CM_COLLECTION_ALL_SYSTEMS)
            return TRUE;
    return FALSE;
}

static char *
record_roles_text(const AdminRecord *r)
{
    g_autoptr(GString) s = g_string_new(NULL);

    for (int i = 0; i < CM_ROLE__COUNT; i++)
        if (r->roles & (1u << i))
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", roles[i].display);
    return g_strdup(s->len ? s->str : "no role");
}

/* ---------------------------------------------------------------- audit */

gboolean
cm_site_audit_now(CmSite *site, const char *admin, const char *action, const char *target,
                  const char *detail, CmTime now, GError **error)
{
    GError *cause = NULL;
    gboolean own_tx = sqlite3_get_autocommit(cm_store_db(site->store)) != 0;

    if (own_tx && !cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    if (!cm_site_audit(site, admin, action, target, detail, now, error)) {
        if (own_tx)
            cm_store_rollback(site->store);
        return FALSE;
    }
    if (own_tx && !cm_store_commit(site->store, &cause)) {
        cm_site_store_error(error, cause);
        cm_store_rollback(site->store);
        return FALSE;
    }
    return TRUE;
}

/* Audits the refusal and sets the error the caller returns. */
static void
refuse(CmSite *site, const char *admin, CmAdminAction action, const char *target, CmTime now,
       GError **error, const char *fmt, ...) G_GNUC_PRINTF(7, 8);

static void
refuse(CmSite *site, const char *admin, CmAdminAction action, const char *target, CmTime now,
       GError **error, const char *fmt, ...)
{
    char reason[REFUSAL_MAX];
    g_autofree char *what = g_strdup_printf("refused:%s", cm_admin_action_name(action));
    GError *audit_error = NULL;
    va_list ap;

    va_start(ap, fmt);
    g_vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    /* A refusal the trail cannot record is still a refusal; the error says
     * both. */
    if (!cm_site_audit_now(site, admin && *admin ? admin : "(none)", what,
                           target ? target : site->code, reason, now, &audit_error)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED, "%s (and not audited: %s)",
                    reason, audit_error->message);
        g_error_free(audit_error);
        return;
    }
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED, "%s", reason);
}

/* --------------------------------------------------------- authorization */

static gboolean
client_in_limits(CmSite *site, const AdminRecord *r, const char *smsid, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;

    for (guint i = 0; i < r->collections->len; i++) {
        gboolean row = FALSE;
        st = SITE_STMT(site,
                       "SELECT 1 FROM members WHERE collection_id = ? AND client ="
                       " (SELECT coalesce(first_id, id) FROM clients"
                       " WHERE smsid = ? AND obsolete = 0)",
                       &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_int64(st, 1, g_array_index(r->collections, gint64, i));
        sqlite3_bind_text(st, 2, smsid, -1, SQLITE_STATIC);
        if (!cm_store_step_row(site->store, st, &row, &cause))
            goto fail;
        if (row) {
            sqlite3_reset(st);
            return TRUE;
        }
    }
    return FALSE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Whether one of the object's scopes (CM_SCOPE_DEFAULT when it has none)
 * is one of the administrator's. */
static gboolean
object_in_scopes(CmSite *site, const AdminRecord *r, const char *kind, const char *object,
                 gboolean *ok, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE, any = FALSE;

    *ok = record_has_scope(r, CM_SCOPE_ALL);
    if (*ok)
        return TRUE;
    st = SITE_STMT(site, "SELECT scope FROM object_scopes WHERE kind = ? AND object = ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        any = TRUE;
        if (record_has_scope(r, (const char *)sqlite3_column_text(st, 0))) {
            *ok = TRUE;
            sqlite3_reset(st);
            return TRUE;
        }
    }
    if (cause != NULL)
        goto fail;
    if (!any)
        *ok = record_has_scope(r, CM_SCOPE_DEFAULT);
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
authorize(CmSite *site, const char *admin, CmAdminAction action, gint64 collection,
          const char *smsid, const char *kind, const char *object, CmTime now, GError **error)
{
    AdminRecord r;
    g_autofree char *target = NULL, *role_text = NULL;
    gboolean ok = FALSE;
    GError *local = NULL;

    target = smsid      ? g_strdup(smsid)
             : object   ? g_strdup_printf("%s:%s", kind, object)
             : collection ? g_strdup_printf("collection:%" G_GINT64_FORMAT, collection)
                          : g_strdup(site->code);
    if ((unsigned)action >= CM_ADMIN__COUNT) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "unknown administrative action");
        return FALSE;
    }
    if (admin == NULL || *admin == '\0' || strlen(admin) > ADMIN_NAME_MAX) {
        refuse(site, admin, action, target, now, error,
               "%s on %s: no administrator named (1 to %d characters)",
               cm_admin_action_name(action), target, ADMIN_NAME_MAX);
        return FALSE;
    }
    if (!record_load(site, admin, &r, error))
        return FALSE;
    if (!r.known) {
        record_clear(&r);
        if (!cm_site_rbac_enforced(site))
            return TRUE; /* see cmsite.h: unenforced, a name acts as Full Administrator */
        refuse(site, admin, action, target, now, error,
               "\"%s\" is not an administrator of site %s", admin, site->code);
        return FALSE;
    }
    role_text = record_roles_text(&r);
    if ((r.actions & (1u << action)) == 0) {
        refuse(site, admin, action, target, now, error,
               "\"%s\" (%s) may not %s: no security role of theirs allows it", admin, role_text,
               cm_admin_action_name(action));
        goto out;
    }
    if (collection != 0 && !record_limit_all(&r)) {
        gboolean in = FALSE;
        for (guint i = 0; i < r.collections->len; i++)
            in |= g_array_index(r.collections, gint64, i) == collection;
        if (!in) {
            refuse(site, admin, action, target, now, error,
                   "\"%s\" may not %s on collection %" G_GINT64_FORMAT
                   ": outside their limiting collections",
                   admin, cm_admin_action_name(action), collection);
            goto out;
        }
    }
    if (smsid != NULL && !record_limit_all(&r)) {
        gboolean in = client_in_limits(site, &r, smsid, &local);
        if (local != NULL) {
            g_propagate_error(error, local);
            goto out;
        }
        if (!in) {
            refuse(site, admin, action, target, now, error,
                   "\"%s\" may not %s client %s: it is outside their limiting collections",
                   admin, cm_admin_action_name(action), smsid);
            goto out;
        }
    }
    if (object != NULL) {
        gboolean in = FALSE;
        if (!object_in_scopes(site, &r, kind, object, &in, error))
            goto out;
        if (!in) {
            refuse(site, admin, action, target, now, error,
                   "\"%s\" may not %s %s \"%s\": it is outside their security scopes", admin,
                   cm_admin_action_name(action), kind, object);
            goto out;
        }
    }
    ok = TRUE;
out:
    record_clear(&r);
    return ok;
}

gboolean
cm_site_authorize(CmSite *site, const char *admin, CmAdminAction action, gint64 collection,
                  CmTime now, GError **error)
{
    return authorize(site, admin, action, collection, NULL, NULL, NULL, now, error);
}

gboolean
cm_site_authorize_client(CmSite *site, const char *admin, CmAdminAction action, const char *smsid,
                         CmTime now, GError **error)
{
    return authorize(site, admin, action, 0, smsid ? smsid : "", NULL, NULL, now, error);
}

gboolean
cm_site_authorize_object(CmSite *site, const char *admin, CmAdminAction action, const char *kind,
                         const char *object, gint64 collection, CmTime now, GError **error)
{
    return authorize(site, admin, action, collection, NULL, kind ? kind : "object",
                     object ? object : "", now, error);
}

gboolean
cm_site_rbac_enforced(CmSite *site)
{
    g_autofree char *v = NULL;

    /* A database that cannot be read enforces. */
    if (!cm_site_meta_get(site, "rbac_enforced", &v, NULL))
        return TRUE;
    return v != NULL && strcmp(v, "1") == 0;
}

gboolean
cm_site_rbac_is_admin(CmSite *site, const char *name)
{
    AdminRecord r;
    gboolean known;

    if (name == NULL || !record_load(site, name, &r, NULL))
        return FALSE;
    known = r.known;
    record_clear(&r);
    return known;
}

/* ------------------------------------------------------- administrators */

json_t *
cm_site_rbac_admin_json(CmSite *site, const char *name)
{
    AdminRecord r;
    json_t *obj = NULL, *rl, *sc, *co;
    sqlite3_stmt *st;
    gboolean row = FALSE;

    if (!record_load(site, name, &r, NULL))
        return NULL;
    if (!r.known)
        goto out;
    rl = json_array();
    sc = json_array();
    co = json_array();
    for (int i = 0; i < CM_ROLE__COUNT; i++)
        if (r.roles & (1u << i))
            json_array_append_new(rl, json_string(roles[i].shortname));
    for (guint i = 0; i < r.scopes->len; i++)
        json_array_append_new(sc, json_string(g_ptr_array_index(r.scopes, i)));
    for (guint i = 0; i < r.collections->len; i++)
        json_array_append_new(co, json_integer(g_array_index(r.collections, gint64, i)));
    obj = json_pack("{s:s, s:o, s:o, s:o}", "name", name, "roles", rl, "scopes", sc,
                    "collections", co);
    st = SITE_STMT(site, "SELECT principal, cert_thumbprint FROM admins WHERE name = ?", NULL);
    if (st != NULL) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (cm_store_step_row(site->store, st, &row, NULL) && row) {
            if (sqlite3_column_type(st, 0) != SQLITE_NULL)
                json_object_set_new(obj, "principal",
                                    json_string((const char *)sqlite3_column_text(st, 0)));
            if (sqlite3_column_type(st, 1) != SQLITE_NULL)
                json_object_set_new(obj, "cert",
                                    json_string((const char *)sqlite3_column_text(st, 1)));
            sqlite3_reset(st);
        }
    }
out:
    record_clear(&r);
    return obj;
}

/* Writes an administrator's rows (inside the caller's transaction); the
 * spec was checked. */
static gboolean
admin_write(CmSite *site, const CmAdminSpec *spec, CmTime now, GError **error)
{
    GError *cause = NULL;
    static const char *const clear[] = {
        "DELETE FROM admin_roles WHERE admin = ?",
        "DELETE FROM admin_scopes WHERE admin = ?",
        "DELETE FROM admin_collections WHERE admin = ?",
    };
    sqlite3_stmt *st;

    for (size_t i = 0; i < G_N_ELEMENTS(clear); i++) {
        st = SITE_STMT(site, clear[i], &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    /* Keeps the password and one-time-code state of an existing record. */
    st = SITE_STMT(site,
                   "INSERT INTO admins(name, principal, cert_thumbprint, created) VALUES (?1,?2,?3,?4)"
                   " ON CONFLICT(name) DO UPDATE SET principal = ?2, cert_thumbprint = ?3",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
    if (spec->principal != NULL && *spec->principal != '\0')
        sqlite3_bind_text(st, 2, spec->principal, -1, SQLITE_STATIC);
    if (spec->cert_thumbprint != NULL && *spec->cert_thumbprint != '\0')
        sqlite3_bind_text(st, 3, spec->cert_thumbprint, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    for (size_t i = 0; i < spec->n_roles; i++) {
        st = SITE_STMT(site, "INSERT OR IGNORE INTO admin_roles(admin, role) VALUES (?, ?)",
                       &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)spec->roles[i]);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    for (size_t i = 0; spec->scopes == NULL || spec->scopes[i] != NULL; i++) {
        st = SITE_STMT(site, "INSERT OR IGNORE INTO admin_scopes(admin, scope) VALUES (?, ?)",
                       &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, spec->scopes ? spec->scopes[i] : CM_SCOPE_DEFAULT, -1,
                          SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
        if (spec->scopes == NULL)
            break;
    }
    for (size_t i = 0; i < MAX(spec->n_collections, 1); i++) {
        st = SITE_STMT(site,
                       "INSERT OR IGNORE INTO admin_collections(admin, collection_id) VALUES (?, ?)",
                       &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2,
                           spec->n_collections ? spec->collections[i] : CM_COLLECTION_ALL_SYSTEMS);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
spec_check(CmSite *site, const CmAdminSpec *spec, GError **error)
{
    size_t n_scopes = 0;

    if (spec == NULL || spec->name == NULL || *spec->name == '\0' ||
        strlen(spec->name) > ADMIN_NAME_MAX || !g_utf8_validate(spec->name, -1, NULL)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "an administrator needs a name of 1 to %d characters", ADMIN_NAME_MAX);
        return FALSE;
    }
    if (spec->n_roles == 0 || spec->n_roles > CM_ADMIN_MAX_ROLES || spec->roles == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "administrator \"%s\" needs 1 to %d security roles", spec->name,
                    CM_ADMIN_MAX_ROLES);
        return FALSE;
    }
    for (size_t i = 0; i < spec->n_roles; i++) {
        if ((unsigned)spec->roles[i] >= CM_ROLE__COUNT) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                        "administrator \"%s\": security role %zu is unknown", spec->name, i + 1);
            return FALSE;
        }
    }
    for (; spec->scopes != NULL && spec->scopes[n_scopes] != NULL; n_scopes++) {
        const char *s = spec->scopes[n_scopes];
        if (*s == '\0' || strlen(s) > SCOPE_NAME_MAX || !g_utf8_validate(s, -1, NULL) ||
            n_scopes >= CM_ADMIN_MAX_SCOPES) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                        "administrator \"%s\": at most %d security scopes of 1 to %d characters",
                        spec->name, CM_ADMIN_MAX_SCOPES, SCOPE_NAME_MAX);
            return FALSE;
        }
    }
    if (spec->n_collections > CM_ADMIN_MAX_COLLECTIONS ||
        (spec->n_collections > 0 && spec->collections == NULL)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "administrator \"%s\": at most %d limiting collections", spec->name,
                    CM_ADMIN_MAX_COLLECTIONS);
        return FALSE;
    }
    for (size_t i = 0; i < spec->n_collections; i++) {
        gboolean found = FALSE;
        for (guint j = 0; j < site->collections->len; j++)
            found |= ((SiteCollection *)g_ptr_array_index(site->collections, j))->id ==
                     spec->collections[i];
        if (!found) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                        "administrator \"%s\": no collection %" G_GINT64_FORMAT, spec->name,
                        spec->collections[i]);
            return FALSE;
        }
    }
    if ((spec->principal && strlen(spec->principal) > CM_NAME_MAX) ||
        (spec->cert_thumbprint && strlen(spec->cert_thumbprint) > 64)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "administrator \"%s\": principal or certificate thumbprint too long",
                    spec->name);
        return FALSE;
    }
    return TRUE;
}

/* Commits the open transaction or rolls it back; error set on failure. */
static gboolean
tx_end(CmSite *site, gboolean ok, GError **error)
{
    GError *cause = NULL;

    if (ok && cm_store_commit(site->store, &cause))
        return TRUE;
    if (cause != NULL)
        cm_site_store_error(error, cause);
    cm_store_rollback(site->store);
    return FALSE;
}

static gboolean
tx_begin(CmSite *site, GError **error)
{
    GError *cause = NULL;

    if (cm_store_begin(site->store, &cause))
        return TRUE;
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_rbac_add_admin(CmSite *site, const CmAdminSpec *spec, const char *admin, CmTime now,
                       GError **error)
{
    AdminRecord granter, existing;
    g_autoptr(json_t) value = NULL;
    g_autofree char *detail = NULL;
    gboolean ok = FALSE;

    if (!spec_check(site, spec, error))
        return FALSE;
    if (!cm_site_authorize(site, admin, CM_ADMIN_SECURITY, 0, now, error))
        return FALSE;
    if (!record_load(site, spec->name, &existing, error))
        return FALSE;
    if (existing.builtin) {
        record_clear(&existing);
        refuse(site, admin, CM_ADMIN_SECURITY, spec->name, now, error,
               "the built-in administrator \"%s\" cannot be changed", spec->name);
        return FALSE;
    }
    record_clear(&existing);
    /* Nobody hands out a role they do not hold (a Security Administrator
     * cannot make a Full Administrator). */
    if (!record_load(site, admin, &granter, error))
        return FALSE;
    for (size_t i = 0; granter.known && i < spec->n_roles; i++) {
        if (!(granter.roles & (1u << CM_ROLE_FULL_ADMINISTRATOR)) &&
            !(granter.roles & (1u << spec->roles[i]))) {
            refuse(site, admin, CM_ADMIN_SECURITY, spec->name, now, error,
                   "\"%s\" may not grant %s: they do not hold it", admin,
                   cm_security_role_name(spec->roles[i]));
            record_clear(&granter);
            return FALSE;
        }
    }
    record_clear(&granter);
    if (!tx_begin(site, error))
        return FALSE;
    if (!admin_write(site, spec, now, error))
        goto out;
    value = cm_site_rbac_admin_json(site, spec->name);
    detail = value ? cm_json_dump(value) : g_strdup("");
    ok = cm_site_audit(site, admin, "add-admin", spec->name, detail, now, error) &&
         cm_site_repl_queue_global(site, "admin", spec->name, value, site->code, NULL, now,
                                   error);
out:
    return tx_end(site, ok, error);
}

static gboolean
admin_delete(CmSite *site, const char *name, GError **error)
{
    GError *cause = NULL;
    static const char *const sql[] = {
        "DELETE FROM admin_roles WHERE admin = ?",
        "DELETE FROM admin_scopes WHERE admin = ?",
        "DELETE FROM admin_collections WHERE admin = ?",
        "DELETE FROM admins WHERE name = ? AND builtin = 0",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(sql); i++) {
        sqlite3_stmt *st = SITE_STMT(site, sql[i], &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_rbac_remove_admin(CmSite *site, const char *name, const char *admin, CmTime now,
                          GError **error)
{
    AdminRecord r;
    gboolean builtin, ok;

    if (!cm_site_authorize(site, admin, CM_ADMIN_SECURITY, 0, now, error))
        return FALSE;
    if (name == NULL || !record_load(site, name, &r, error))
        return name == NULL ? (g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                                           "no administrator named"),
                               FALSE)
                            : FALSE;
    builtin = r.builtin;
    if (!r.known) {
        record_clear(&r);
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no administrator \"%s\"",
                    name);
        return FALSE;
    }
    record_clear(&r);
    if (builtin) {
        refuse(site, admin, CM_ADMIN_SECURITY, name, now, error,
               "the built-in administrator \"%s\" cannot be removed", name);
        return FALSE;
    }
    if (!tx_begin(site, error))
        return FALSE;
    ok = admin_delete(site, name, error) &&
         cm_site_audit(site, admin, "remove-admin", name, "", now, error) &&
         cm_site_repl_queue_global(site, "admin", name, NULL, site->code, NULL, now, error);
    return tx_end(site, ok, error);
}

gboolean
cm_site_rbac_apply(CmSite *site, const char *name, const json_t *value, GError **error)
{
    CmSecurityRole rl[CM_ADMIN_MAX_ROLES];
    const char *scopes[CM_ADMIN_MAX_SCOPES + 1] = {NULL};
    gint64 colls[CM_ADMIN_MAX_COLLECTIONS];
    CmAdminSpec spec = {.name = name, .roles = rl, .scopes = scopes, .collections = colls};
    const json_t *a;
    GError *local = NULL;
    size_t i;
    json_t *v;

    if (name == NULL || *name == '\0' || strlen(name) > ADMIN_NAME_MAX)
        goto bad;
    if (strcmp(name, CM_SITE_BUILTIN_ADMIN) == 0)
        return TRUE; /* each site keeps its own installer */
    if (value == NULL)
        return admin_delete(site, name, error);
    if ((a = cm_json_array(value, "roles", CM_ADMIN_MAX_ROLES, &local)) == NULL)
        goto bad;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || !cm_security_role_parse(json_string_value(v), &rl[i], NULL))
            goto bad;
        spec.n_roles++;
    }
    if ((a = cm_json_array(value, "scopes", CM_ADMIN_MAX_SCOPES, &local)) == NULL)
        goto bad;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            goto bad;
        scopes[i] = json_string_value(v);
    }
    if ((a = cm_json_array(value, "collections", CM_ADMIN_MAX_COLLECTIONS, &local)) == NULL)
        goto bad;
    json_array_foreach(a, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            goto bad;
        colls[spec.n_collections++] = json_integer_value(v);
    }
    if (scopes[0] == NULL)
        spec.scopes = NULL;
    spec.principal = cm_json_opt_str(value, "principal", CM_NAME_MAX, &local);
    spec.cert_thumbprint = cm_json_opt_str(value, "cert", 64, &local);
    if (local != NULL)
        goto bad;
    /* Limiting collections this site does not have yet limit to nothing
     * here rather than failing the batch: keep only known ones, and never
     * widen to All Systems by dropping them all. */
    {
        size_t kept = 0;
        for (size_t k = 0; k < spec.n_collections; k++) {
            gboolean found = FALSE;
            for (guint j = 0; j < site->collections->len; j++)
                found |= ((SiteCollection *)g_ptr_array_index(site->collections, j))->id ==
                         colls[k];
            if (found)
                colls[kept++] = colls[k];
        }
        if (spec.n_collections > 0 && kept == 0)
            spec.n_roles = 0; /* sees nothing: write no role */
        spec.n_collections = kept;
    }
    if (spec.n_roles == 0) {
        if (!admin_delete(site, name, error))
            return FALSE;
        return TRUE;
    }
    if (!spec_check(site, &spec, error))
        return FALSE;
    return admin_write(site, &spec, 0, error);
bad:
    g_clear_error(&local);
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                "replicated administrator \"%s\" is malformed", name ? name : "");
    return FALSE;
}

gboolean
cm_site_rbac_set_enforced(CmSite *site, gboolean on, const char *admin, CmTime now,
                          GError **error)
{
    gboolean ok;

    if (!cm_site_authorize(site, admin, CM_ADMIN_SECURITY, 0, now, error))
        return FALSE;
    if (!tx_begin(site, error))
        return FALSE;
    ok = cm_site_meta_set(site, "rbac_enforced", on ? "1" : "0", error) &&
         cm_site_audit(site, admin, "rbac-enforce", site->code, on ? "on" : "off", now, error);
    return tx_end(site, ok, error);
}

gboolean
cm_site_rbac_set_object_scope(CmSite *site, const char *kind, const char *object,
                              const char *scope, const char *admin, CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autofree char *target = NULL;
    sqlite3_stmt *st;
    gboolean ok = FALSE;

    if (kind == NULL || object == NULL || scope == NULL || *kind == '\0' || *object == '\0' ||
        *scope == '\0' || strlen(kind) > 32 || strlen(object) > 128 ||
        strlen(scope) > SCOPE_NAME_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a security scope assignment needs a kind, an object and a scope name");
        return FALSE;
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_SECURITY, 0, now, error))
        return FALSE;
    target = g_strdup_printf("%s:%s", kind, object);
    if (!tx_begin(site, error))
        return FALSE;
    st = SITE_STMT(site, "INSERT OR IGNORE INTO object_scopes(kind, object, scope) VALUES (?,?,?)",
                   &cause);
    if (st != NULL) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, scope, -1, SQLITE_STATIC);
    }
    if (st == NULL || !cm_store_step_done(site->store, st, &cause)) {
        cm_site_store_error(error, cause);
        goto out;
    }
    ok = cm_site_audit(site, admin, "set-scope", target, scope, now, error);
out:
    return tx_end(site, ok, error);
}

GPtrArray *
cm_site_admin_visible_clients(CmSite *site, const char *admin, CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    AdminRecord r;
    sqlite3_stmt *st;
    gboolean row = FALSE, all;

    if (!cm_site_authorize(site, admin, CM_ADMIN_VIEW, 0, now, error))
        return NULL;
    if (!record_load(site, admin, &r, error))
        return NULL;
    all = !r.known || record_limit_all(&r);
    if (all) {
        st = SITE_STMT(site, "SELECT smsid FROM clients WHERE obsolete = 0 ORDER BY smsid",
                       &cause);
        while (st != NULL && cm_store_step_row(site->store, st, &row, &cause) && row)
            g_ptr_array_add(out, g_strdup((const char *)sqlite3_column_text(st, 0)));
    } else {
        for (guint i = 0; cause == NULL && i < r.collections->len; i++) {
            /* A key is the id of its SMSID's first record. */
            st = SITE_STMT(site,
                           "SELECT c.smsid FROM members m JOIN clients c ON c.id = m.client"
                           " WHERE m.collection_id = ? ORDER BY 1",
                           &cause);
            if (st == NULL)
                break;
            sqlite3_bind_int64(st, 1, g_array_index(r.collections, gint64, i));
            while (cm_store_step_row(site->store, st, &row, &cause) && row) {
                const char *s = (const char *)sqlite3_column_text(st, 0);
                if (!g_hash_table_contains(seen, s)) {
                    char *copy = g_strdup(s);
                    g_hash_table_add(seen, copy);
                    g_ptr_array_add(out, copy);
                }
            }
        }
    }
    record_clear(&r);
    if (cause != NULL) {
        cm_site_store_error(error, cause);
        return NULL;
    }
    return g_steal_pointer(&out);
}

gboolean
cm_site_admin_push_require_kerberos(CmSite *site, gboolean on, const char *admin, CmTime now,
                                    GError **error)
{
    gboolean was = site->push_require_kerberos, ok;

    if (!cm_site_authorize(site, admin, CM_ADMIN_CLIENT_PUSH, 0, now, error))
        return FALSE;
    if (!tx_begin(site, error))
        return FALSE;
    ok = cm_site_push_require_kerberos(site, on, error) &&
         cm_site_audit(site, admin, "push-require-kerberos", site->code, on ? "on" : "off", now,
                       error);
    if (!tx_end(site, ok, error)) {
        site->push_require_kerberos = was;
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------ audit verification */

const char *
cm_audit_verdict_name(CmAuditVerdict v)
{
    static const char *const names[] = {"ok", "altered", "deleted", "inserted", "truncated"};
    return (unsigned)v < G_N_ELEMENTS(names) ? names[v] : "unknown";
}

char *
cm_site_audit_head(CmSite *site)
{
    sqlite3_stmt *st = SITE_STMT(site, "SELECT hash FROM audit ORDER BY id DESC LIMIT 1", NULL);
    gboolean row = FALSE;
    char *head;

    if (st == NULL || !cm_store_step_row(site->store, st, &row, NULL) || !row)
        return g_strdup("");
    head = g_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return head;
}

static void
report(CmAuditReport *out, CmAuditVerdict v, gint64 id, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static void
report(CmAuditReport *out, CmAuditVerdict v, gint64 id, const char *fmt, ...)
{
    va_list ap;

    out->verdict = v;
    out->bad_id = id;
    va_start(ap, fmt);
    g_vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
}

gboolean
cm_site_audit_verify(CmSite *site, const char *expect_head, CmAuditReport *out, GError **error)
{
    GError *cause = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *kept_head = NULL;
    char last[65] = "";
    gint64 last_id = 0;
    sqlite3_stmt *st;
    gboolean row = FALSE;

    memset(out, 0, sizeof *out);
    st = SITE_STMT(site,
                   "SELECT id, at, admin, action, target, detail, prev_hash, hash FROM audit"
                   " ORDER BY id",
                   &cause);
    if (st == NULL)
        goto fail;
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        gint64 id = sqlite3_column_int64(st, 0);
        const char *prev = (const char *)sqlite3_column_text(st, 6);
        const char *hash = (const char *)sqlite3_column_text(st, 7);
        g_autofree char *line = NULL, *want = NULL;
        guint8 h[32];

        line = g_strdup_printf("%s\n%" G_GINT64_FORMAT "\n%s\n%s\n%s\n%s", prev ? prev : "",
                               (gint64)sqlite3_column_int64(st, 1),
                               (const char *)sqlite3_column_text(st, 2),
                               (const char *)sqlite3_column_text(st, 3),
                               (const char *)sqlite3_column_text(st, 4),
                               (const char *)sqlite3_column_text(st, 5));
        cm_hash(CM_HASH_SHA256, line, strlen(line), h);
        want = cm_enc_hex(h, sizeof h);
        out->entries++;
        if (hash == NULL || strcmp(want, hash) != 0) {
            report(out, CM_AUDIT_ALTERED, id,
                   "entry %" G_GINT64_FORMAT " was altered: its content does not give its hash",
                   id);
            break;
        }
        if (prev == NULL || strcmp(prev, last) != 0) {
            /* The entry names a predecessor: one we walked earlier means the
             * entries after that one were inserted; one never seen means
             * its real predecessor was deleted. */
            gpointer k = prev ? g_hash_table_lookup(seen, prev) : NULL;
            if (k != NULL) {
                gint64 after = GPOINTER_TO_SIZE(k) ? (gint64)GPOINTER_TO_SIZE(k) : 0;
                report(out, CM_AUDIT_INSERTED, after + 1,
                       "entries after %" G_GINT64_FORMAT " and before %" G_GINT64_FORMAT
                       " were inserted: entry %" G_GINT64_FORMAT " follows %" G_GINT64_FORMAT,
                       after, id, id, after);
            } else if (*last == '\0' && *prev != '\0') {
                report(out, CM_AUDIT_DELETED, id,
                       "the first entries were deleted: entry %" G_GINT64_FORMAT
                       " follows one that is gone",
                       id);
            } else {
                report(out, CM_AUDIT_DELETED, id,
                       "an entry between %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT
                       " was deleted (or altered with its hash recomputed)",
                       last_id, id);
            }
            break;
        }
        g_hash_table_insert(seen, g_strdup(hash), GSIZE_TO_POINTER((gsize)id));
        g_strlcpy(last, hash, sizeof last);
        last_id = id;
    }
    if (out->verdict != CM_AUDIT_OK) {
        sqlite3_reset(st);
        return TRUE;
    }
    if (cause != NULL)
        goto fail;
    g_strlcpy(out->head, last, sizeof out->head);
    if (expect_head == NULL) {
        if (!cm_site_meta_get(site, "audit_head", &kept_head, error))
            return FALSE;
        expect_head = kept_head; /* NULL: a trail older than the head */
    }
    if (expect_head != NULL && strcmp(expect_head, last) != 0) {
        gpointer k = g_hash_table_lookup(seen, expect_head);
        if (k != NULL)
            report(out, CM_AUDIT_INSERTED, (gint64)GPOINTER_TO_SIZE(k) + 1,
                   "entries after %" G_GINT64_FORMAT " (the recorded head) were appended",
                   (gint64)GPOINTER_TO_SIZE(k));
        else
            report(out, CM_AUDIT_TRUNCATED, last_id + 1,
                   "entries after %" G_GINT64_FORMAT " were deleted: the recorded head is not "
                   "in the trail",
                   last_id);
        return TRUE;
    }
    g_snprintf(out->message, sizeof out->message,
               "%" G_GINT64_FORMAT " entries chained, head %.16s", out->entries, last);
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}
