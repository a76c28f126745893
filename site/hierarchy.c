/* hierarchy.c - a hierarchy of sites: a central administration site with
 * primary and secondary child sites, the top-level site's exchange key as
 * the trusted root key of every site (REQ TRUST-02), intersite replication
 * (database replication and file-based transfer) with sequence numbers so
 * that lag and gaps show (REQ NET-05), site systems in other forests
 * (REQ NET-06) and publishing to forests (REQ NET-07).
 *
 * Pure logic: a site produces a replication batch as bytes and another
 * applies them; whoever carries the bytes (the daemon over its intersite
 * channel, the simulator with a delay) is not part of this file. */
#include "hier-internal.h"

#include <string.h>

/* ---------------------------------------------------------- replication */

/* Appends one item to a link's outgoing queue (inside the caller's
 * transaction). */
static gboolean
repl_enqueue(CmSite *site, const char *peer, CmReplScope scope, CmReplChannel channel,
             const char *kind, const char *key, const char *origin, const char *value, CmTime now,
             GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE;
    gint64 seq;

    st = SITE_STMT(site, "SELECT next_seq FROM repl_links WHERE peer = ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                    "site %s has no replication link to %s", site->code, peer);
        return FALSE;
    }
    seq = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    st = SITE_STMT(site,
                   "INSERT INTO repl_out(peer, seq, channel, kind, key, origin, value, at, scope)"
                   " VALUES (?,?,?,?,?,?,?,?,?)",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int(st, 3, (int)channel);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now);
    sqlite3_bind_int(st, 9, (int)scope);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    st = SITE_STMT(site, "UPDATE repl_links SET next_seq = next_seq + 1 WHERE peer = ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* The peers of this site's links with role (-1: any), minus skip. */
static GPtrArray *
repl_peers(CmSite *site, int role, const char *skip, GError **error)
{
    GError *cause = NULL;
    GPtrArray *peers = g_ptr_array_new_with_free_func(g_free);
    sqlite3_stmt *st =
        SITE_STMT(site, "SELECT peer FROM repl_links WHERE ?1 < 0 OR role = ?1 ORDER BY peer",
                  &cause);
    gboolean row = FALSE;

    if (st != NULL) {
        sqlite3_bind_int(st, 1, role);
        while (cm_store_step_row(site->store, st, &row, &cause) && row) {
            const char *p = (const char *)sqlite3_column_text(st, 0);
            if (skip == NULL || strcmp(p, skip) != 0)
                g_ptr_array_add(peers, g_strdup(p));
        }
    }
    if (cause != NULL) {
        cm_site_store_error(error, cause);
        g_ptr_array_unref(peers);
        return NULL;
    }
    return peers;
}

static gboolean
repl_keep(CmSite *site, CmReplScope scope, CmReplChannel channel, const char *kind,
          const char *key, const char *origin, const char *value, CmTime now, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site,
                                 "INSERT OR REPLACE INTO repl_data(kind, key, origin, channel,"
                                 " value, at, scope) VALUES (?,?,?,?,?,?,?)",
                                 &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)channel);
    sqlite3_bind_text(st, 5, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int(st, 7, (int)scope);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Global data floods the tree: every link but the one it came from. */
static gboolean
repl_queue(CmSite *site, CmReplScope scope, CmReplChannel channel, const char *kind,
           const char *key, const char *value, const char *origin, const char *from_peer,
           CmTime now, GError **error)
{
    g_autoptr(GPtrArray) peers = NULL;

    if (!repl_keep(site, scope, channel, kind, key, origin, value, now, error))
        return FALSE;
    peers = repl_peers(site, scope == CM_REPL_GLOBAL ? -1 : CM_LINK_PARENT, from_peer, error);
    if (peers == NULL)
        return FALSE;
    for (guint i = 0; i < peers->len; i++)
        if (!repl_enqueue(site, g_ptr_array_index(peers, i), scope, channel, kind, key, origin,
                          value, now, error))
            return FALSE;
    return TRUE;
}

gboolean
cm_site_repl_queue_global(CmSite *site, const char *kind, const char *key, const json_t *value,
                          const char *origin, const char *from_peer, CmTime now, GError **error)
{
    g_autofree char *text = value ? cm_json_dump(value) : g_strdup("null");

    return repl_queue(site, CM_REPL_GLOBAL, CM_REPL_DATABASE, kind, key, text, origin, from_peer,
                      now, error);
}

/* --------------------------------------------------------------- helpers */

#define SERVER_MAX  CM_NAME_MAX
#define KIND_MAX    64
#define KEY_MAX     256
#define KEYHEX_MAX  4096
#define MP_CERT_LIFETIME (5 * 365 * CM_USEC_PER_DAY)
#define FIRST_ROLE_ID    G_GUINT64_CONSTANT(72057594037927937) /* as site.c */

static gboolean
tx_begin(CmSite *site, GError **error)
{
    GError *cause = NULL;

    if (cm_store_begin(site->store, &cause))
        return TRUE;
    cm_site_store_error(error, cause);
    return FALSE;
}

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

/* A refusal of an administrative action: audited, then the error. */
static void
hier_refuse(CmSite *site, const char *admin, const char *action, const char *target, CmTime now,
            GError **error, const char *fmt, ...) G_GNUC_PRINTF(7, 8);

static void
hier_refuse(CmSite *site, const char *admin, const char *action, const char *target, CmTime now,
            GError **error, const char *fmt, ...)
{
    char reason[320];
    g_autofree char *what = g_strdup_printf("refused:%s", action);
    va_list ap;

    va_start(ap, fmt);
    g_vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    (void)cm_site_audit_now(site, admin && *admin ? admin : "(none)", what, target, reason, now,
                            NULL);
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED, "%s", reason);
}

static const char *const site_kind_names[] = {"central", "primary", "secondary"};

const char *
cm_site_kind_name(CmSiteKind k)
{
    return (unsigned)k < G_N_ELEMENTS(site_kind_names) ? site_kind_names[k] : "unknown";
}

static gboolean
site_kind_parse(const char *s, CmSiteKind *out)
{
    for (size_t i = 0; s != NULL && i < G_N_ELEMENTS(site_kind_names); i++) {
        if (strcmp(s, site_kind_names[i]) == 0) {
            *out = (CmSiteKind)i;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean
cm_site_hierarchy_info(CmSite *site, CmHierarchyInfo *out, GError **error)
{
    g_autofree char *kind = NULL, *parent = NULL, *top = NULL;

    memset(out, 0, sizeof *out);
    if (!cm_site_meta_get(site, "hier_kind", &kind, error) ||
        !cm_site_meta_get(site, "hier_parent", &parent, error) ||
        !cm_site_meta_get(site, "hier_top", &top, error))
        return FALSE;
    if (kind == NULL || !site_kind_parse(kind, &out->kind))
        out->kind = CM_SITE_KIND_PRIMARY;
    out->joined = parent != NULL;
    g_strlcpy(out->parent, parent ? parent : "", sizeof out->parent);
    g_strlcpy(out->top, top ? top : (site->top_level ? site->code : ""), sizeof out->top);
    return TRUE;
}

char *
cm_site_hierarchy_trk_hex(CmSite *site)
{
    char *trk = NULL;

    if (cm_site_meta_get(site, "hier_trk", &trk, NULL) && trk != NULL)
        return trk;
    return cm_key_public_hex(site->trk);
}

gboolean
cm_site_hierarchy_may_self_sign_mp(CmSite *site, GError **error)
{
    CmHierarchyInfo info;

    if (!cm_site_hierarchy_info(site, &info, error))
        return FALSE;
    if (!info.joined)
        return TRUE;
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                "site %s is a child of %s: its management points are signed with the "
                "hierarchy's trusted root key at site %s (cm_site_hierarchy_mp_request)",
                site->code, info.parent, info.top);
    return FALSE;
}

/* Whether forests a and b (lower case) trust each other both ways. */
static gboolean
two_way_trust(CmSite *site, const char *a, const char *b)
{
    sqlite3_stmt *st;
    gboolean row = FALSE;

    if (strcmp(a, b) == 0)
        return TRUE;
    st = SITE_STMT(site,
                   "SELECT 1 FROM trusts WHERE ((a = ?1 AND b = ?2) OR (a = ?2 AND b = ?1))"
                   " AND kind = ?3",
                   NULL);
    if (st == NULL)
        return FALSE;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, CM_TRUST_TWO_WAY);
    if (!cm_store_step_row(site->store, st, &row, NULL))
        return FALSE;
    if (row)
        sqlite3_reset(st);
    return row;
}

static gboolean
name_ok(const char *s, size_t max)
{
    return s != NULL && *s != '\0' && strlen(s) <= max && g_utf8_validate(s, -1, NULL);
}

/* ------------------------------------------------------------- joining */

json_t *
cm_site_hierarchy_join_request(CmSite *child, CmSiteKind kind, const char *server,
                               GError **error)
{
    g_autofree char *key = NULL;

    if (child->top_level) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "site %s is a top-level site: its exchange key is a trusted root key and it "
                    "joins no parent",
                    child->code);
        return NULL;
    }
    if ((kind != CM_SITE_KIND_PRIMARY && kind != CM_SITE_KIND_SECONDARY) ||
        !name_ok(server, SERVER_MAX)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a child site is a primary or a secondary and needs its server's name");
        return NULL;
    }
    key = cm_key_public_hex(child->trk);
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "v", 1, "site_code", child->code, "kind",
                     cm_site_kind_name(kind), "forest", child->forest, "server", server,
                     "exchange_key", key);
}

/* Queues every global item this site holds for a new link. */
static gboolean
queue_snapshot(CmSite *site, const char *peer, CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    sqlite3_stmt *st =
        SITE_STMT(site,
                  "SELECT kind, key, origin, value, channel FROM repl_data WHERE scope = ?"
                  " ORDER BY at, kind, key",
                  &cause);
    gboolean row = FALSE;

    if (st == NULL)
        goto fail;
    sqlite3_bind_int(st, 1, CM_REPL_GLOBAL);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        char **r = g_new0(char *, 6);
        for (int i = 0; i < 5; i++)
            r[i] = g_strdup((const char *)sqlite3_column_text(st, i));
        g_ptr_array_add(rows, r);
    }
    if (cause != NULL)
        goto fail;
    for (guint i = 0; i < rows->len; i++) {
        char **r = g_ptr_array_index(rows, i);
        if (!repl_enqueue(site, peer, CM_REPL_GLOBAL, (CmReplChannel)atoi(r[4]), r[0], r[1], r[2],
                          r[3], now, error))
            return FALSE;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
site_record_store(CmSite *site, const char *code, const char *parent, CmSiteKind kind,
                  const char *forest, const char *key, const char *server, const char *account,
                  CmTime now, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site,
                                 "INSERT OR REPLACE INTO hier_sites(code, parent, kind, forest,"
                                 " exchange_key, server, install_account, added)"
                                 " VALUES (?,?,?,?,?,?,?,?)",
                                 &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, parent, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, (int)kind);
    sqlite3_bind_text(st, 4, forest, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, server, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, account ? account : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
site_known(CmSite *site, const char *code)
{
    sqlite3_stmt *st = SITE_STMT(site, "SELECT 1 FROM hier_sites WHERE code = ?", NULL);
    gboolean row = FALSE;

    if (st == NULL)
        return FALSE;
    sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, NULL))
        return FALSE;
    if (row)
        sqlite3_reset(st);
    return row;
}

json_t *
cm_site_hierarchy_add_child(CmSite *parent, const json_t *request, const char *install_account,
                            const char *admin, CmTime now, GError **error)
{
    GError *local = NULL;
    const char *code_s, *kind_s, *forest_s, *server, *key_hex;
    char code[4];
    g_autofree char *forest = NULL, *target = NULL, *detail = NULL, *own_key = NULL,
                    *trk = NULL;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(json_t) record = NULL;
    CmHierarchyInfo info;
    CmSiteKind kind;
    gint64 v = 0;
    gboolean ok;

    if (request == NULL || !json_is_object(request) ||
        !cm_json_int(request, "v", 1, 1, &v, &local) ||
        (code_s = cm_json_str(request, "site_code", 3, &local)) == NULL ||
        (kind_s = cm_json_str(request, "kind", 16, &local)) == NULL ||
        (forest_s = cm_json_str(request, "forest", CM_NAME_MAX, &local)) == NULL ||
        (server = cm_json_str(request, "server", SERVER_MAX, &local)) == NULL ||
        (key_hex = cm_json_str(request, "exchange_key", KEYHEX_MAX, &local)) == NULL ||
        !cm_id_site_code_check(code_s, code, &local) || !site_kind_parse(kind_s, &kind) ||
        kind == CM_SITE_KIND_CENTRAL || *forest_s == '\0' || *server == '\0' ||
        (key = cm_key_public_from_hex(key_hex, &local)) == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "child site request: %s",
                    local ? local->message : "the kind is primary or secondary");
        g_clear_error(&local);
        return NULL;
    }
    if (!name_ok(install_account, CM_NAME_MAX)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a child site needs the account that installs it and carries file-based "
                    "transfers");
        return NULL;
    }
    target = g_strdup_printf("site:%s", code);
    if (!cm_site_authorize(parent, admin, CM_ADMIN_HIERARCHY, 0, now, error) ||
        !cm_site_hierarchy_info(parent, &info, error))
        return NULL;
    if (kind == CM_SITE_KIND_PRIMARY && !parent->top_level) {
        hier_refuse(parent, admin, "add-child-site", target, now, error,
                    "a child primary site goes below the central administration site, not below "
                    "%s %s",
                    cm_site_kind_name(info.kind), parent->code);
        return NULL;
    }
    if (kind == CM_SITE_KIND_SECONDARY && info.kind != CM_SITE_KIND_PRIMARY) {
        hier_refuse(parent, admin, "add-child-site", target, now, error,
                    "a secondary site goes below a primary site; %s is the %s site", parent->code,
                    cm_site_kind_name(info.kind));
        return NULL;
    }
    if (strcmp(code, parent->code) == 0 || site_known(parent, code)) {
        hier_refuse(parent, admin, "add-child-site", target, now, error,
                    "site code %s is already in the hierarchy", code);
        return NULL;
    }
    forest = g_ascii_strdown(forest_s, -1);
    /* REQ NET-05: a child site in a remote forest only with a two-way
     * forest trust (Kerberos between the site servers). */
    if (!two_way_trust(parent, parent->forest, forest)) {
        hier_refuse(parent, admin, "add-child-site", target, now, error,
                    "site %s is in forest %s, which has no two-way forest trust with %s: a child "
                    "site in a remote forest needs one",
                    code, forest, parent->forest);
        return NULL;
    }
    record = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "code", code, "parent", parent->code,
                       "kind", cm_site_kind_name(kind), "forest", forest, "server", server,
                       "exchange_key", key_hex);
    detail = g_strdup_printf("%s in %s, server %s, installed by %s", cm_site_kind_name(kind),
                             forest, server, install_account);
    if (record == NULL || !tx_begin(parent, error))
        return NULL;
    {
        GError *cause = NULL;
        sqlite3_stmt *st = SITE_STMT(parent,
                                     "INSERT INTO repl_links(peer, role, peer_key) VALUES (?,?,?)",
                                     &cause);
        ok = st != NULL;
        if (ok) {
            sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, CM_LINK_CHILD);
            sqlite3_bind_text(st, 3, key_hex, -1, SQLITE_STATIC);
            ok = cm_store_step_done(parent->store, st, &cause);
        }
        if (!ok)
            cm_site_store_error(error, cause);
    }
    ok = ok &&
         site_record_store(parent, code, parent->code, kind, forest, key_hex, server,
                           install_account, now, error) &&
         (kind != CM_SITE_KIND_PRIMARY ||
          cm_site_meta_set(parent, "hier_kind", cm_site_kind_name(CM_SITE_KIND_CENTRAL), error)) &&
         (!parent->top_level || cm_site_meta_set(parent, "hier_top", parent->code, error)) &&
         queue_snapshot(parent, code, now, error) &&
         cm_site_repl_queue_global(parent, "site", code, record, parent->code, NULL, now, error) &&
         cm_site_audit(parent, admin, "add-child-site", target, detail, now, error);
    if (!tx_end(parent, ok, error))
        return NULL;
    own_key = cm_key_public_hex(parent->trk);
    trk = cm_site_hierarchy_trk_hex(parent);
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "v", 1, "site_code", code, "kind",
                     cm_site_kind_name(kind), "parent", parent->code, "parent_key", own_key, "top",
                     info.top[0] ? info.top : parent->code, "trk", trk);
}

gboolean
cm_site_hierarchy_join(CmSite *child, const json_t *grant, CmTime now, GError **error)
{
    GError *local = NULL;
    const char *code, *kind_s, *parent, *parent_key, *top, *trk;
    char pcode[4], tcode[4];
    g_autoptr(CmKey) pk = NULL, tk = NULL;
    g_autofree char *detail = NULL;
    CmHierarchyInfo info;
    CmSiteKind kind;
    gint64 v = 0;
    gboolean ok;

    if (grant == NULL || !json_is_object(grant) || !cm_json_int(grant, "v", 1, 1, &v, &local) ||
        (code = cm_json_str(grant, "site_code", 3, &local)) == NULL ||
        (kind_s = cm_json_str(grant, "kind", 16, &local)) == NULL ||
        (parent = cm_json_str(grant, "parent", 3, &local)) == NULL ||
        (parent_key = cm_json_str(grant, "parent_key", KEYHEX_MAX, &local)) == NULL ||
        (top = cm_json_str(grant, "top", 3, &local)) == NULL ||
        (trk = cm_json_str(grant, "trk", KEYHEX_MAX, &local)) == NULL ||
        !cm_id_site_code_check(parent, pcode, &local) || !cm_id_site_code_check(top, tcode, &local) ||
        !site_kind_parse(kind_s, &kind) ||
        (pk = cm_key_public_from_hex(parent_key, &local)) == NULL ||
        (tk = cm_key_public_from_hex(trk, &local)) == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "hierarchy grant: %s",
                    local ? local->message : "unknown site kind");
        g_clear_error(&local);
        return FALSE;
    }
    if (strcmp(code, child->code) != 0 || child->top_level) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "the grant is for site %s; this is %s site %s", code,
                    child->top_level ? "top-level" : "child", child->code);
        return FALSE;
    }
    if (!cm_site_hierarchy_info(child, &info, error))
        return FALSE;
    if (info.joined && strcmp(info.parent, pcode) != 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "site %s is already a child of %s", child->code, info.parent);
        return FALSE;
    }
    detail = g_strdup_printf("%s below %s, top %s", kind_s, pcode, tcode);
    if (!tx_begin(child, error))
        return FALSE;
    {
        GError *cause = NULL;
        sqlite3_stmt *st = SITE_STMT(child,
                                     "INSERT INTO repl_links(peer, role, peer_key) VALUES (?1,?2,?3)"
                                     " ON CONFLICT(peer) DO UPDATE SET peer_key = ?3",
                                     &cause);
        ok = st != NULL;
        if (ok) {
            sqlite3_bind_text(st, 1, pcode, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, CM_LINK_PARENT);
            sqlite3_bind_text(st, 3, parent_key, -1, SQLITE_STATIC);
            ok = cm_store_step_done(child->store, st, &cause);
        }
        if (!ok)
            cm_site_store_error(error, cause);
    }
    ok = ok && cm_site_meta_set(child, "hier_parent", pcode, error) &&
         cm_site_meta_set(child, "hier_top", tcode, error) &&
         cm_site_meta_set(child, "hier_trk", trk, error) &&
         cm_site_meta_set(child, "hier_kind", kind_s, error) &&
         cm_site_audit(child, "system", "join-hierarchy", pcode, detail, now, error);
    return tx_end(child, ok, error);
}

/* ------------------------------------------------- child management points */

json_t *
cm_site_hierarchy_mp_request(CmSite *child, const char *mp_name, const CmKey *mp_key,
                             GError **error)
{
    g_autofree char *host = NULL, *key = NULL;

    if (!name_ok(mp_name, CM_NAME_MAX) || mp_key == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a management point needs a host name of 1 to %d characters and a key",
                    CM_NAME_MAX);
        return NULL;
    }
    host = g_ascii_strdown(mp_name, -1);
    key = cm_key_public_hex(mp_key);
    return json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "site_code", child->code, "name", host,
                     "key", key);
}

json_t *
cm_site_hierarchy_sign_mp(CmSite *top, const json_t *request, CmTime now, GError **error)
{
    GError *local = NULL;
    const char *code, *name, *key_hex;
    g_autoptr(CmKey) key = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(GBytes) der = NULL;
    g_autofree char *b64 = NULL, *trk_cn = NULL, *target = NULL;
    CmHierarchyInfo info;
    const char *dns[2] = {NULL, NULL};
    guint64 serial;
    gint64 v = 0;

    if (request == NULL || !json_is_object(request) ||
        !cm_json_int(request, "v", 1, 1, &v, &local) ||
        (code = cm_json_str(request, "site_code", 3, &local)) == NULL ||
        (name = cm_json_str(request, "name", CM_NAME_MAX, &local)) == NULL ||
        (key_hex = cm_json_str(request, "key", KEYHEX_MAX, &local)) == NULL ||
        (key = cm_key_public_from_hex(key_hex, &local)) == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "MP certificate request: %s",
                    local ? local->message : "not an object");
        g_clear_error(&local);
        return NULL;
    }
    if (!cm_site_hierarchy_info(top, &info, error))
        return NULL;
    if (!top->top_level || info.joined) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "only the top-level site holds the trusted root key; %s is not it", top->code);
        return NULL;
    }
    target = g_strdup_printf("%s:%s", code, name);
    if (strcmp(code, top->code) != 0 && !site_known(top, code)) {
        hier_refuse(top, "system", "sign-mp", target, now, error,
                    "site %s is not in this hierarchy (yet: its record replicates from its "
                    "parent)",
                    code);
        return NULL;
    }
    trk_cn = g_strdup_printf("Trusted Root Key %s", top->code);
    dns[0] = name;
    if (!tx_begin(top, error))
        return NULL;
    serial = cm_site_serial_next(top, error);
    if (serial != 0) {
        CmCertSpec spec = {.profile = CM_CERT_MP,
                           .subject_cn = name,
                           .subject_o = code,
                           .dns_names = dns,
                           .serial = serial,
                           .not_before = now - CM_USEC_PER_HOUR,
                           .not_after = now + MP_CERT_LIFETIME,
                           .subject_key = key,
                           .issuer_key = top->trk,
                           .issuer_cn = trk_cn};
        cert = cm_cert_issue(&spec, &local);
        if (cert == NULL) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                        "cannot issue the MP certificate: %s", local->message);
            g_clear_error(&local);
        }
    }
    if (!tx_end(top,
                cert != NULL &&
                    cm_site_audit(top, "system", "sign-mp", target, "signed with the TRK", now,
                                  error),
                error))
        return NULL;
    der = cm_cert_to_der(cert);
    b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
    return json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "site_code", code, "name", name, "cert", b64);
}

gboolean
cm_site_hierarchy_add_mp(CmSite *child, const json_t *answer, const CmKey *mp_key,
                         gboolean internet, CmTime now, CmMpInfo *info_out, CmCert **mp_cert,
                         CmCert **tls_cert, GError **error)
{
    GError *local = NULL;
    const char *code, *name;
    g_autoptr(GBytes) der = NULL;
    g_autoptr(CmCert) cert = NULL;
    g_autoptr(CmKey) trk = NULL;
    g_autofree char *trk_hex = cm_site_hierarchy_trk_hex(child);
    gint64 v = 0;
    gboolean ok;

    if (answer == NULL || mp_key == NULL || !json_is_object(answer) ||
        !cm_json_int(answer, "v", 1, 1, &v, &local) ||
        (code = cm_json_str(answer, "site_code", 3, &local)) == NULL ||
        (name = cm_json_str(answer, "name", CM_NAME_MAX, &local)) == NULL ||
        (der = cm_json_b64(answer, "cert", CM_CERT_MAX_DER, &local)) == NULL ||
        (cert = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &local)) ==
            NULL ||
        (trk = cm_key_public_from_hex(trk_hex, &local)) == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "MP certificate answer: %s",
                    local ? local->message : "no key");
        g_clear_error(&local);
        return FALSE;
    }
    /* The certificate must be for this site's MP and key, and signed with
     * the hierarchy's TRK: what the clients will check (REQ TRUST-03). */
    if (strcmp(code, child->code) != 0 || strcmp(cm_cert_subject_cn(cert), name) != 0 ||
        !cm_key_public_equal(cm_cert_public_key(cert), mp_key) ||
        !cm_cert_check_signed_by(cert, trk, now, &local)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "the MP certificate for %s is not this site's, this key's, or signed with "
                    "the hierarchy's trusted root key%s%s",
                    name, local ? ": " : "", local ? local->message : "");
        g_clear_error(&local);
        return FALSE;
    }
    if (!tx_begin(child, error))
        return FALSE;
    ok = cm_site_mp_store(child, name, internet, cert, mp_key,
                          internet ? "internet, signed by the hierarchy TRK"
                                   : "intranet, signed by the hierarchy TRK",
                          now, info_out, tls_cert, error);
    if (!tx_end(child, ok, error)) {
        if (tls_cert != NULL)
            g_clear_pointer(tls_cert, cm_cert_unref);
        return FALSE;
    }
    if (mp_cert != NULL)
        *mp_cert = g_steal_pointer(&cert);
    return TRUE;
}

/* ---------------------------------------------------------- replication */

static gboolean
kind_reserved(const char *kind)
{
    return strcmp(kind, "admin") == 0 || strcmp(kind, "provider-auth") == 0 ||
           strcmp(kind, "site") == 0;
}

gboolean
cm_site_repl_publish(CmSite *site, CmReplScope scope, CmReplChannel channel, const char *kind,
                     const char *key, const json_t *value, CmTime now, GError **error)
{
    g_autofree char *text = NULL;
    gboolean own_tx, ok;

    if (!name_ok(kind, KIND_MAX) || !name_ok(key, KEY_MAX) || kind_reserved(kind) ||
        (unsigned)scope > CM_REPL_SITE || (unsigned)channel > CM_REPL_FILE ||
        (value != NULL && !json_is_object(value))) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "replicated data needs a kind (not admin, provider-auth or site, which "
                    "their own calls replicate), a key and an object value");
        return FALSE;
    }
    text = value ? cm_json_dump(value) : g_strdup("null");
    if (strlen(text) > CM_REPL_VALUE_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a replicated value is at most %d bytes", CM_REPL_VALUE_MAX);
        return FALSE;
    }
    own_tx = sqlite3_get_autocommit(cm_store_db(site->store)) != 0;
    if (own_tx && !tx_begin(site, error))
        return FALSE;
    ok = repl_queue(site, scope, channel, kind, key, text, site->code, NULL, now, error);
    return own_tx ? tx_end(site, ok, error) : ok;
}

json_t *
cm_site_repl_get(CmSite *site, const char *kind, const char *key)
{
    sqlite3_stmt *st = SITE_STMT(site, "SELECT value FROM repl_data WHERE kind = ? AND key = ?",
                                 NULL);
    gboolean row = FALSE;
    json_t *v = NULL;

    if (st == NULL || kind == NULL || key == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, NULL) || !row)
        return NULL;
    v = cm_json_parse(sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                      CM_REPL_VALUE_MAX, NULL);
    sqlite3_reset(st);
    return v;
}

typedef struct {
    CmReplLinkRole role;
    char *peer_key;
    gint64 next_seq, acked, last_in;
    CmTime last_in_at;
} Link;

static gboolean
link_load(CmSite *site, const char *peer, Link *l, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(
        site, "SELECT role, peer_key, next_seq, acked, last_in, last_in_at FROM repl_links"
              " WHERE peer = ?",
        &cause);
    gboolean row = FALSE;

    memset(l, 0, sizeof *l);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                    "site %s has no replication link with %s", site->code, peer);
        return FALSE;
    }
    l->role = (CmReplLinkRole)sqlite3_column_int(st, 0);
    l->peer_key = g_strdup((const char *)sqlite3_column_text(st, 1));
    l->next_seq = sqlite3_column_int64(st, 2);
    l->acked = sqlite3_column_int64(st, 3);
    l->last_in = sqlite3_column_int64(st, 4);
    l->last_in_at = sqlite3_column_int64(st, 5);
    sqlite3_reset(st);
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

GBytes *
cm_site_repl_batch(CmSite *site, const char *peer, guint max_items, CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autoptr(json_t) batch = NULL;
    g_autofree char *signed_bytes = NULL, *sig_b64 = NULL;
    g_autoptr(GBytes) sig = NULL;
    json_t *items = json_array();
    sqlite3_stmt *st;
    gboolean row = FALSE;
    size_t bytes = 0;
    char *out;
    Link l;

    if (peer == NULL || !link_load(site, peer, &l, error)) {
        json_decref(items);
        if (peer == NULL)
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "no peer named");
        return NULL;
    }
    g_free(l.peer_key);
    max_items = MIN(MAX(max_items, 1), CM_REPL_ITEMS_MAX);
    st = SITE_STMT(site,
                   "SELECT seq, channel, scope, kind, key, origin, value, at FROM repl_out"
                   " WHERE peer = ? AND seq > ? ORDER BY seq LIMIT ?",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, l.acked);
    sqlite3_bind_int(st, 3, (int)max_items);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        const char *text = (const char *)sqlite3_column_text(st, 6);
        size_t len = (size_t)sqlite3_column_bytes(st, 6);
        json_t *value;
        /* A batch stays under its bound; the rest goes in the next. */
        if (json_array_size(items) > 0 && bytes + len + 1024 > CM_REPL_BATCH_MAX / 2) {
            sqlite3_reset(st);
            break;
        }
        bytes += len + 256;
        value = strcmp(text, "null") == 0 ? json_null()
                                          : cm_json_parse(text, len, CM_REPL_VALUE_MAX, NULL);
        if (value == NULL)
            value = json_null(); /* cannot happen: we wrote it */
        json_array_append_new(
            items, json_pack("{s:I, s:i, s:i, s:s, s:s, s:s, s:I, s:o}", "seq",
                             (json_int_t)sqlite3_column_int64(st, 0), "ch",
                             sqlite3_column_int(st, 1), "scope", sqlite3_column_int(st, 2), "kind",
                             (const char *)sqlite3_column_text(st, 3), "key",
                             (const char *)sqlite3_column_text(st, 4), "origin",
                             (const char *)sqlite3_column_text(st, 5), "at",
                             (json_int_t)sqlite3_column_int64(st, 7), "value", value));
    }
    if (cause != NULL)
        goto fail;
    batch = json_pack("{s:i, s:s, s:s, s:I, s:I, s:o}", "v", 1, "from", site->code, "to", peer,
                      "ack", (json_int_t)l.last_in, "sent", (json_int_t)now, "items", items);
    items = NULL;
    signed_bytes = cm_json_dump(batch);
    sig = cm_sig_sign(site->trk, CM_HASH_SHA256, signed_bytes, strlen(signed_bytes), &cause);
    if (sig == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "cannot sign the batch: %s",
                    cause->message);
        g_clear_error(&cause);
        return NULL;
    }
    sig_b64 = cm_enc_b64(g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
    json_object_set_new(batch, "sig", json_string(sig_b64));
    out = cm_json_dump(batch);
    return g_bytes_new_take(out, strlen(out));
fail:
    json_decref(items);
    cm_site_store_error(error, cause);
    return NULL;
}

static gboolean
child_is_secondary(CmSite *site, const char *code)
{
    sqlite3_stmt *st = SITE_STMT(site, "SELECT kind FROM hier_sites WHERE code = ?", NULL);
    gboolean row = FALSE, secondary;

    if (st == NULL)
        return TRUE; /* unreadable: believe nothing */
    sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, NULL))
        return TRUE;
    if (!row)
        return TRUE;
    secondary = sqlite3_column_int(st, 0) == CM_SITE_KIND_SECONDARY;
    sqlite3_reset(st);
    return secondary;
}

/* Applies one replicated item (inside the caller's transaction). */
static gboolean
apply_item(CmSite *site, const char *from, CmReplLinkRole role, CmReplScope scope,
           CmReplChannel channel, const char *kind, const char *key, const char *origin,
           const json_t *value, CmTime now, GError **error)
{
    g_autofree char *text = json_is_null(value) ? g_strdup("null") : cm_json_dump(value);
    const json_t *obj = json_is_object(value) ? value : NULL;

    if (scope == CM_REPL_SITE) {
        /* Site data only goes up. */
        if (role != CM_LINK_CHILD) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                        "site data from %s, which is not a child of %s", from, site->code);
            return FALSE;
        }
        return repl_queue(site, CM_REPL_SITE, channel, kind, key, text, origin, from, now, error);
    }
    if (strcmp(kind, "provider-auth") == 0) {
        /* Hierarchy-wide from the top: a child cannot lower it. */
        if (role != CM_LINK_PARENT) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                        "the provider authentication level comes from the top-level site, not "
                        "from child %s",
                        from);
            return FALSE;
        }
        if (!cm_site_provider_apply(site, obj, error))
            return FALSE;
    } else if (strcmp(kind, "admin") == 0) {
        /* Administrators are made where an SMS Provider is: the central
         * site and primaries.  A secondary has none, so one that sends an
         * administrator up is not to be believed. */
        if (role == CM_LINK_CHILD && child_is_secondary(site, from)) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                        "an administrator from secondary site %s, which has no SMS Provider",
                        from);
            return FALSE;
        }
        if (!cm_site_rbac_apply(site, key, obj, error))
            return FALSE;
    } else if (strcmp(kind, "site") == 0 && obj != NULL && strcmp(key, site->code) != 0) {
        CmSiteKind k = CM_SITE_KIND_PRIMARY;
        const char *p = cm_json_str(obj, "parent", 3, NULL), *f = cm_json_str(obj, "forest", CM_NAME_MAX, NULL),
                   *x = cm_json_str(obj, "exchange_key", KEYHEX_MAX, NULL),
                   *sv = cm_json_str(obj, "server", SERVER_MAX, NULL);
        if (p == NULL || f == NULL || x == NULL || sv == NULL ||
            !site_kind_parse(cm_json_str(obj, "kind", 16, NULL), &k) || strlen(key) != 3) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                        "replicated site record %s is malformed", key);
            return FALSE;
        }
        if (!site_record_store(site, key, p, k, f, x, sv, NULL, now, error))
            return FALSE;
    }
    return repl_queue(site, CM_REPL_GLOBAL, channel, kind, key, text, origin, from, now, error);
}

gboolean
cm_site_repl_apply(CmSite *site, const void *data, size_t len, CmTime now, CmReplApplied *out,
                   GError **error)
{
    GError *local = NULL, *cause = NULL;
    g_autoptr(json_t) batch = NULL, copy = NULL;
    g_autoptr(GBytes) sig = NULL;
    g_autoptr(CmKey) peer_key = NULL;
    g_autofree char *signed_bytes = NULL, *detail = NULL;
    const json_t *items;
    const char *from;
    char code[4];
    gint64 v = 0, ack = 0, first = 0, last = 0;
    Link l = {0};
    sqlite3_stmt *st;
    gboolean ok = FALSE;
    size_t i;
    json_t *it;

    memset(out, 0, sizeof *out);
    batch = cm_json_parse(data, len, CM_REPL_BATCH_MAX, &local);
    if (batch == NULL || !cm_json_int(batch, "v", 1, 1, &v, &local) ||
        (from = cm_json_str(batch, "from", 3, &local)) == NULL ||
        !cm_id_site_code_check(from, code, &local) ||
        cm_json_str(batch, "to", 3, &local) == NULL ||
        (sig = cm_json_b64(batch, "sig", CM_SIG_MAX, &local)) == NULL ||
        (items = cm_json_array(batch, "items", CM_REPL_ITEMS_MAX, &local)) == NULL)
        goto invalid;
    if (strcmp(json_string_value(json_object_get(batch, "to")), site->code) != 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "replication batch for site %s arrived at %s",
                    json_string_value(json_object_get(batch, "to")), site->code);
        return FALSE;
    }
    if (!link_load(site, code, &l, error))
        return FALSE;
    g_strlcpy(out->from, code, sizeof out->from);
    /* The sender's exchange key, as recorded when the link was made. */
    peer_key = cm_key_public_from_hex(l.peer_key, &local);
    copy = json_deep_copy(batch);
    json_object_del(copy, "sig");
    signed_bytes = cm_json_dump(copy);
    if (peer_key == NULL ||
        !cm_sig_verify(peer_key, CM_HASH_SHA256, signed_bytes, strlen(signed_bytes),
                       g_bytes_get_data(sig, NULL), g_bytes_get_size(sig), &local)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "replication batch from %s: the signature does not verify with the site's "
                    "exchange key: %s",
                    code, local ? local->message : "");
        g_clear_error(&local);
        goto out;
    }
    if (!cm_json_int(batch, "ack", 0, l.next_seq - 1, &ack, &local))
        goto invalid;
    /* Every item checked before anything changes. */
    json_array_foreach(items, i, it)
    {
        gint64 seq = 0, ch = 0, scope = 0, at = 0;
        const json_t *value = json_object_get(it, "value");
        if (!json_is_object(it) || !cm_json_int(it, "seq", 1, G_MAXINT64, &seq, &local) ||
            !cm_json_int(it, "ch", 0, CM_REPL_FILE, &ch, &local) ||
            !cm_json_int(it, "scope", 0, CM_REPL_SITE, &scope, &local) ||
            !cm_json_int(it, "at", 0, G_MAXINT64, &at, &local) ||
            !name_ok(cm_json_str(it, "kind", KIND_MAX, &local), KIND_MAX) ||
            !name_ok(cm_json_str(it, "key", KEY_MAX, &local), KEY_MAX) ||
            !name_ok(cm_json_str(it, "origin", 3, &local), 3) ||
            (value == NULL || (!json_is_null(value) && !json_is_object(value))))
            goto invalid;
        if (i == 0)
            first = seq;
        else if (seq != last + 1) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                        "replication batch from %s: sequence %" G_GINT64_FORMAT
                        " follows %" G_GINT64_FORMAT,
                        code, seq, last);
            goto out;
        }
        last = seq;
    }
    out->first = first;
    out->last = last;
    if (first > l.last_in + 1) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_REFUSED,
                    "replication gap from %s: applied up to %" G_GINT64_FORMAT
                    ", the batch starts at %" G_GINT64_FORMAT ": resend from %" G_GINT64_FORMAT,
                    code, l.last_in, first, l.last_in + 1);
        goto out;
    }
    if (!tx_begin(site, error))
        goto out;
    /* The acknowledgment prunes what the peer has. */
    st = SITE_STMT(site, "UPDATE repl_links SET acked = max(acked, ?) WHERE peer = ?", &cause);
    if (st == NULL)
        goto store_fail;
    sqlite3_bind_int64(st, 1, ack);
    sqlite3_bind_text(st, 2, code, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail;
    st = SITE_STMT(site, "DELETE FROM repl_out WHERE peer = ? AND seq <= ?", &cause);
    if (st == NULL)
        goto store_fail;
    sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, MAX(ack, l.acked));
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail;
    json_array_foreach(items, i, it)
    {
        gint64 seq = json_integer_value(json_object_get(it, "seq"));
        if (seq <= l.last_in) {
            out->skipped++;
            continue;
        }
        if (!apply_item(site, code, l.role,
                        (CmReplScope)json_integer_value(json_object_get(it, "scope")),
                        (CmReplChannel)json_integer_value(json_object_get(it, "ch")),
                        json_string_value(json_object_get(it, "kind")),
                        json_string_value(json_object_get(it, "key")),
                        json_string_value(json_object_get(it, "origin")),
                        json_object_get(it, "value"), now, error))
            goto tx_fail;
        out->applied++;
    }
    if (out->applied > 0) {
        st = SITE_STMT(site, "UPDATE repl_links SET last_in = ?, last_in_at = ? WHERE peer = ?",
                       &cause);
        if (st == NULL)
            goto store_fail;
        sqlite3_bind_int64(st, 1, last);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_text(st, 3, code, -1, SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto store_fail;
        detail = g_strdup_printf("sequence %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT
                                 ": %u applied, %u already held",
                                 first, last, out->applied, out->skipped);
        if (!cm_site_audit(site, "system", "replicate", code, detail, now, error))
            goto tx_fail;
    }
    ok = tx_end(site, TRUE, error);
    goto out;
store_fail:
    cm_site_store_error(error, cause);
tx_fail:
    tx_end(site, FALSE, NULL);
    out->applied = 0;
    goto out;
invalid:
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "replication batch: %s",
                local ? local->message : "malformed item");
    g_clear_error(&local);
out:
    g_free(l.peer_key);
    return ok;
}

gboolean
cm_site_repl_link_status(CmSite *site, const char *peer, CmReplLinkStatus *out, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE;
    Link l;

    memset(out, 0, sizeof *out);
    if (peer == NULL || !link_load(site, peer, &l, error))
        return FALSE;
    g_free(l.peer_key);
    out->role = l.role;
    out->queued = l.next_seq - 1;
    out->acked = l.acked;
    out->backlog = out->queued - out->acked;
    out->received = l.last_in;
    out->received_at = l.last_in_at;
    st = SITE_STMT(site, "SELECT min(at) FROM repl_out WHERE peer = ? AND seq > ?", &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, l.acked);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (row) {
        out->oldest_unacked = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

GPtrArray *
cm_site_repl_peers(CmSite *site, GError **error)
{
    return repl_peers(site, -1, NULL, error);
}

/* ------------------------------------------------- forests, site systems */

gboolean
cm_site_admin_add_forest(CmSite *site, const char *forest, const char *const *domains,
                         const char *admin, CmTime now, GError **error)
{
    g_autofree char *detail = domains && domains[0] ? g_strjoinv(",", (char **)domains)
                                                    : g_strdup("");
    gboolean ok;

    if (!cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error) ||
        !tx_begin(site, error))
        return FALSE;
    ok = cm_site_add_forest(site, forest, domains, error) &&
         cm_site_audit(site, admin, "add-forest", forest, detail, now, error);
    return tx_end(site, ok, error);
}

gboolean
cm_site_admin_set_trust(CmSite *site, const char *forest_a, const char *forest_b,
                        CmForestTrust trust, const char *admin, CmTime now, GError **error)
{
    static const char *const names[] = {"none", "one-way", "two-way"};
    g_autofree char *target = NULL;
    gboolean ok;

    if (forest_a == NULL || forest_b == NULL || (unsigned)trust > CM_TRUST_TWO_WAY) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "a trust needs two forests");
        return FALSE;
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error) ||
        !tx_begin(site, error))
        return FALSE;
    target = g_strdup_printf("%s,%s", forest_a, forest_b);
    ok = cm_site_set_trust(site, forest_a, forest_b, trust, error) &&
         cm_site_audit(site, admin, "set-trust", target, names[trust], now, error);
    return tx_end(site, ok, error);
}

static const char *const system_role_names[CM_SYSTEM__COUNT] = {
    "management-point",  "distribution-point",        "enrollment-point",
    "software-update-point", "reporting-services-point", "endpoint-protection-point",
    "state-migration-point", "asset-intelligence-synchronization-point",
};

const char *
cm_system_role_name(CmSystemRole r)
{
    return (unsigned)r < CM_SYSTEM__COUNT ? system_role_names[r] : "unknown";
}

gboolean
cm_system_role_needs_db(CmSystemRole r)
{
    switch (r) {
    case CM_SYSTEM_MP:
    case CM_SYSTEM_ENROLLMENT_POINT:
    case CM_SYSTEM_REPORTING_POINT:
    case CM_SYSTEM_ENDPOINT_PROTECTION_POINT:
    case CM_SYSTEM_STATE_MIGRATION_POINT:
    case CM_SYSTEM_ASSET_INTELLIGENCE_POINT:
        return TRUE;
    default:
        return FALSE;
    }
}

/* A site system's forest counts as trusted when it is the site's or trusts
 * it both ways: Kerberos works in both directions then. */
static gboolean
system_trusted(CmSite *site, const char *forest)
{
    return two_way_trust(site, site->forest, forest);
}

gboolean
cm_site_admin_add_site_system(CmSite *site, const CmSiteSystemSpec *spec, const char *admin,
                              CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autofree char *server = NULL, *forest = NULL, *detail = NULL, *known = NULL;
    sqlite3_stmt *st;
    gboolean trusted, ok;

    if (spec == NULL || !name_ok(spec->server, SERVER_MAX) || !name_ok(spec->forest, CM_NAME_MAX) ||
        (unsigned)spec->role >= CM_SYSTEM__COUNT ||
        (spec->install_account && strlen(spec->install_account) > CM_NAME_MAX) ||
        (spec->db_account && strlen(spec->db_account) > CM_NAME_MAX)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a site system needs a server name, its forest and a role");
        return FALSE;
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error))
        return FALSE;
    server = g_ascii_strdown(spec->server, -1);
    forest = g_ascii_strdown(spec->forest, -1);
    known = cm_site_forest_of(site, forest);
    if (known == NULL) {
        hier_refuse(site, admin, "add-site-system", server, now, error,
                    "forest %s is unknown to site %s: add it first", forest, site->code);
        return FALSE;
    }
    trusted = system_trusted(site, forest);
    if (!trusted) {
        if (!name_ok(spec->install_account, CM_NAME_MAX)) {
            hier_refuse(site, admin, "add-site-system", server, now, error,
                        "%s is in forest %s, which does not trust %s both ways: it needs a site "
                        "system installation account",
                        server, forest, site->forest);
            return FALSE;
        }
        if (!spec->site_initiates) {
            hier_refuse(site, admin, "add-site-system", server, now, error,
                        "%s is in untrusted forest %s: require the site server to initiate "
                        "connections to it",
                        server, forest);
            return FALSE;
        }
        if (cm_system_role_needs_db(spec->role) && !name_ok(spec->db_account, CM_NAME_MAX)) {
            hier_refuse(site, admin, "add-site-system", server, now, error,
                        "the %s on %s reads the site database from untrusted forest %s: it needs "
                        "a connection account",
                        cm_system_role_name(spec->role), server, forest);
            return FALSE;
        }
    }
    detail = g_strdup_printf("%s in %s (%s)%s", cm_system_role_name(spec->role), forest,
                             trusted ? "trusted" : "untrusted",
                             spec->site_initiates ? ", site initiates" : "");
    if (!tx_begin(site, error))
        return FALSE;
    st = SITE_STMT(site,
                   "INSERT OR REPLACE INTO site_systems(server, role, forest, site_initiates,"
                   " install_account, db_account) VALUES (?,?,?,?,?,?)",
                   &cause);
    ok = st != NULL;
    if (ok) {
        sqlite3_bind_text(st, 1, server, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)spec->role);
        sqlite3_bind_text(st, 3, forest, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, spec->site_initiates ? 1 : 0);
        if (spec->install_account != NULL && *spec->install_account != '\0')
            sqlite3_bind_text(st, 5, spec->install_account, -1, SQLITE_STATIC);
        if (spec->db_account != NULL && *spec->db_account != '\0')
            sqlite3_bind_text(st, 6, spec->db_account, -1, SQLITE_STATIC);
        ok = cm_store_step_done(site->store, st, &cause);
    }
    if (!ok)
        cm_site_store_error(error, cause);
    ok = ok && cm_site_audit(site, admin, "add-site-system", server, detail, now, error);
    return tx_end(site, ok, error);
}

static void
decide(CmConnDecision *out, gboolean allowed, const char *account, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static void
decide(CmConnDecision *out, gboolean allowed, const char *account, const char *fmt, ...)
{
    va_list ap;

    out->allowed = allowed;
    g_strlcpy(out->account, allowed && account ? account : "", sizeof out->account);
    va_start(ap, fmt);
    g_vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

gboolean
cm_site_connection(CmSite *site, const char *server, CmSystemRole role, gboolean from_site_server,
                   CmConnPurpose purpose, CmConnDecision *out, GError **error)
{
    GError *cause = NULL;
    g_autofree char *host = NULL, *forest = NULL, *install = NULL, *db = NULL, *computer = NULL,
                    *site_account = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE, initiates, trusted;

    memset(out, 0, sizeof *out);
    if (server == NULL || (unsigned)role >= CM_SYSTEM__COUNT) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "no site system named");
        return FALSE;
    }
    host = g_ascii_strdown(server, -1);
    st = SITE_STMT(site,
                   "SELECT forest, site_initiates, install_account, db_account FROM site_systems"
                   " WHERE server = ? AND role = ?",
                   &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)role);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no %s on %s in site %s",
                    cm_system_role_name(role), host, site->code);
        return FALSE;
    }
    forest = g_strdup((const char *)sqlite3_column_text(st, 0));
    initiates = sqlite3_column_int(st, 1) != 0;
    install = g_strdup((const char *)sqlite3_column_text(st, 2));
    db = g_strdup((const char *)sqlite3_column_text(st, 3));
    sqlite3_reset(st);
    trusted = system_trusted(site, forest);
    computer = g_strdup_printf("%s$ (computer account)", host);
    site_account = g_strdup_printf("site server %s computer account", site->code);
    switch (purpose) {
    case CM_CONN_INSTALL:
        if (!from_site_server)
            decide(out, FALSE, NULL, "the site server installs roles; %s does not connect in "
                                     "to be installed", host);
        else
            decide(out, TRUE, trusted ? site_account : install,
                   trusted ? "trusted forest: the site server's computer account"
                           : "untrusted forest: the site system installation account");
        break;
    case CM_CONN_DATA:
        if (from_site_server)
            decide(out, TRUE, trusted ? site_account : install,
                   initiates ? "the site server initiates, and pulls the system's data"
                             : "the site server pushes to the system");
        else if (initiates)
            decide(out, FALSE, NULL,
                   "the site server initiates connections to %s: it never opens one inward, "
                   "the site pulls from it",
                   host);
        else
            decide(out, TRUE, computer, "a trusted site system sends to the site server");
        break;
    case CM_CONN_DATABASE:
    default:
        if (from_site_server)
            decide(out, FALSE, NULL, "the site database is the site's: roles connect to it");
        else if (!cm_system_role_needs_db(role))
            decide(out, FALSE, NULL, "a %s does not read the site database",
                   cm_system_role_name(role));
        else if (trusted)
            decide(out, TRUE, computer,
                   "trusted forest: the system's computer account in the database role");
        else
            decide(out, TRUE, db,
                   "untrusted forest: the role's connection account (the one connection the "
                   "firewall lets in, to the site's SQL Server)");
        break;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* ------------------------------------------------------------- publishing */

gboolean
cm_site_admin_publish_to_forest(CmSite *site, const char *forest, gboolean on, const char *admin,
                                CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autofree char *f = NULL, *known = NULL;
    sqlite3_stmt *st;
    gboolean ok;

    if (!name_ok(forest, CM_NAME_MAX)) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "no forest named");
        return FALSE;
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_HIERARCHY, 0, now, error))
        return FALSE;
    f = g_ascii_strdown(forest, -1);
    known = cm_site_forest_of(site, f);
    if (known == NULL || strcmp(known, f) != 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND,
                    "forest %s is unknown to site %s: add it first", f, site->code);
        return FALSE;
    }
    if (!tx_begin(site, error))
        return FALSE;
    st = SITE_STMT(site,
                   on ? "INSERT OR IGNORE INTO forest_publish(forest) VALUES (?)"
                      : "DELETE FROM forest_publish WHERE forest = ?",
                   &cause);
    ok = st != NULL;
    if (ok) {
        sqlite3_bind_text(st, 1, f, -1, SQLITE_STATIC);
        ok = cm_store_step_done(site->store, st, &cause);
    }
    if (!ok)
        cm_site_store_error(error, cause);
    ok = ok && cm_site_audit(site, admin, on ? "publish-to-forest" : "unpublish-from-forest", f,
                             "", now, error);
    return tx_end(site, ok, error);
}

json_t *
cm_site_directory_lookup(CmSite *site, const char *client_domain)
{
    g_autofree char *forest = cm_site_forest_of(site, client_domain);
    g_autofree char *trk = NULL;
    sqlite3_stmt *st;
    gboolean row = FALSE;
    json_t *list;

    if (forest == NULL)
        return NULL; /* workgroup or unknown: DNS or the assigned MP */
    st = SITE_STMT(site, "SELECT 1 FROM forest_publish WHERE forest = ?", NULL);
    if (st == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, forest, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, NULL) || !row)
        return NULL;
    sqlite3_reset(st);
    /* The directory holds the site's MPs and its trusted root key, which
     * clients there take from the global catalog (seed 000). */
    list = cm_site_mplist_json(site);
    trk = cm_site_hierarchy_trk_hex(site);
    json_object_set_new(list, "trk", json_string(trk));
    json_object_set_new(list, "forest", json_string(forest));
    return list;
}
