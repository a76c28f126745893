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
repl_enqueue(CmSite *site, const char *peer, CmReplChannel channel, const char *kind,
             const char *key, const char *origin, const char *value, CmTime now, GError **error)
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
                   "INSERT INTO repl_out(peer, seq, channel, kind, key, origin, value, at)"
                   " VALUES (?,?,?,?,?,?,?,?)",
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
repl_keep(CmSite *site, CmReplChannel channel, const char *kind, const char *key,
          const char *origin, const char *value, CmTime now, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site,
                                 "INSERT OR REPLACE INTO repl_data(kind, key, origin, channel,"
                                 " value, at) VALUES (?,?,?,?,?,?)",
                                 &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)channel);
    sqlite3_bind_text(st, 5, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
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

    if (!repl_keep(site, channel, kind, key, origin, value, now, error))
        return FALSE;
    peers = repl_peers(site, scope == CM_REPL_GLOBAL ? -1 : CM_LINK_PARENT, from_peer, error);
    if (peers == NULL)
        return FALSE;
    for (guint i = 0; i < peers->len; i++)
        if (!repl_enqueue(site, g_ptr_array_index(peers, i), channel, kind, key, origin, value,
                          now, error))
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
