/* forest.c - forests, domains and trusts (REQ NET-03): which Kerberos
 * authentications the site can verify.  A workgroup computer has no domain
 * and so no Kerberos at all. */
#include "internal.h"

#include <string.h>

gboolean
cm_site_add_forest(CmSite *site, const char *forest, const char *const *domains, GError **error)
{
    GError *cause = NULL;
    g_autofree char *f = NULL;
    sqlite3_stmt *st;

    if (forest == NULL || *forest == '\0' || strlen(forest) > CM_NAME_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a forest needs a DNS name of 1 to %d characters", CM_NAME_MAX);
        return FALSE;
    }
    f = g_ascii_strdown(forest, -1);
    st = SITE_STMT(site, "INSERT OR IGNORE INTO forests(name) VALUES (?)", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, f, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    /* The forest root domain has the forest's name. */
    for (int i = -1; i < 0 || (domains != NULL && domains[i] != NULL); i++) {
        g_autofree char *d = g_ascii_strdown(i < 0 ? f : domains[i], -1);
        st = SITE_STMT(site, "INSERT OR REPLACE INTO domains(name, forest) VALUES (?, ?)", &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, d, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, f, -1, SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_set_trust(CmSite *site, const char *forest_a, const char *forest_b, CmForestTrust trust,
                  GError **error)
{
    GError *cause = NULL;
    g_autofree char *a = g_ascii_strdown(forest_a, -1);
    g_autofree char *b = g_ascii_strdown(forest_b, -1);
    sqlite3_stmt *st;

    st = SITE_STMT(site, "DELETE FROM trusts WHERE (a = ?1 AND b = ?2) OR (a = ?2 AND b = ?1)",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    if (trust == CM_TRUST_NONE)
        return TRUE;
    st = SITE_STMT(site, "INSERT INTO trusts(a, b, kind) VALUES (?, ?, ?)", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, (int)trust);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

char *
cm_site_forest_of(CmSite *site, const char *domain)
{
    g_autofree char *d = NULL;
    const char *p;
    sqlite3_stmt *st;

    if (domain == NULL || *domain == '\0')
        return NULL; /* workgroup */
    d = g_ascii_strdown(domain, -1);
    st = SITE_STMT(site, "SELECT forest FROM domains WHERE name = ?", NULL);
    if (st == NULL)
        return NULL;
    /* A child domain belongs to the forest of the nearest listed parent. */
    for (p = d; p != NULL && *p != '\0'; p = strchr(p, '.') ? strchr(p, '.') + 1 : NULL) {
        gboolean row = FALSE;
        sqlite3_bind_text(st, 1, p, -1, SQLITE_TRANSIENT);
        if (cm_store_step_row(site->store, st, &row, NULL) && row) {
            char *forest = g_strdup((const char *)sqlite3_column_text(st, 0));
            sqlite3_reset(st);
            return forest;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return NULL;
}

gboolean
cm_site_kerberos_verifiable(CmSite *site, const char *domain)
{
    g_autofree char *forest = cm_site_forest_of(site, domain);
    sqlite3_stmt *st;
    gboolean row = FALSE;

    if (forest == NULL)
        return FALSE;
    if (strcmp(forest, site->forest) == 0)
        return TRUE;
    /* Kerberos works along trust: the site's forest must trust the
     * client's (a one-way trust from the site's side, or two-way). */
    st = SITE_STMT(site,
                   "SELECT 1 FROM trusts WHERE (a = ?1 AND b = ?2) OR (a = ?2 AND b = ?1 AND kind = ?3)",
                   NULL);
    if (st == NULL)
        return FALSE;
    sqlite3_bind_text(st, 1, site->forest, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, forest, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, CM_TRUST_TWO_WAY);
    if (!cm_store_step_row(site->store, st, &row, NULL))
        return FALSE;
    sqlite3_reset(st);
    return row;
}
