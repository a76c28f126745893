/* wipe.c - wipe requests and their acknowledgment (REQ DATA-03).  The
 * product acknowledges a wipe once it sent the message (or, through the
 * Exchange Server connector, once Exchange received it); it never learns
 * whether the device acted.  So the status keeps "acknowledged" apart from
 * "wiped", which it never claims, and a device that is heard from after the
 * acknowledgment shows it did not wipe (or came back). */
#include "hier-internal.h"

#include <string.h>

gint64
cm_site_admin_wipe(CmSite *site, const char *smsid, CmWipeVia via, const char *admin, CmTime now,
                   GError **error)
{
    GError *cause = NULL;
    CmClientInfo info;
    sqlite3_stmt *st;
    gint64 id = -1;

    if ((unsigned)via > CM_WIPE_EXCHANGE || smsid == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a wipe needs a client and a way to send it");
        return -1;
    }
    if (!cm_site_authorize_client(site, admin, CM_ADMIN_WIPE, smsid, now, error) ||
        !cm_site_client(site, smsid, &info, error))
        return -1;
    if (!cm_store_begin(site->store, &cause))
        goto store_fail;
    st = SITE_STMT(site,
                   "INSERT INTO wipes(smsid, via, state, requested, admin) VALUES (?,?,?,?,?)",
                   &cause);
    if (st == NULL)
        goto store_fail_tx;
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)via);
    sqlite3_bind_int(st, 3, CM_WIPE_QUEUED);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_text(st, 5, admin, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail_tx;
    id = cm_store_last_rowid(site->store);
    if (!cm_site_audit(site, admin, "wipe", smsid,
                       via == CM_WIPE_EXCHANGE ? "via the Exchange Server connector"
                                               : "to the device",
                       now, error))
        goto fail_tx;
    if (!cm_store_commit(site->store, &cause))
        goto store_fail_tx;
    return id;
store_fail_tx:
    cm_site_store_error(error, cause);
fail_tx:
    cm_store_rollback(site->store);
    return -1;
store_fail:
    cm_site_store_error(error, cause);
    return -1;
}

gboolean
cm_site_wipe_acknowledge(CmSite *site, gint64 id, CmTime now, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site,
                                 "UPDATE wipes SET state = ?, acked = ? WHERE id = ? AND state = ?",
                                 &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_int(st, 1, CM_WIPE_ACKNOWLEDGED);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_int(st, 4, CM_WIPE_QUEUED);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    if (cm_store_changes(site->store) == 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_STATE,
                    "no wipe %" G_GINT64_FORMAT " waiting to be sent", id);
        return FALSE;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_wipe_status(CmSite *site, gint64 id, CmWipeStatus *out, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site,
                                 "SELECT w.smsid, w.via, w.state, w.requested, w.acked,"
                                 " coalesce(c.last_seen, 0) FROM wipes w LEFT JOIN clients c"
                                 " ON c.smsid = w.smsid AND c.obsolete = 0 WHERE w.id = ?",
                                 &cause);
    gboolean row = FALSE;
    CmTime last_seen;

    memset(out, 0, sizeof *out);
    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, id);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no wipe %" G_GINT64_FORMAT,
                    id);
        return FALSE;
    }
    out->id = id;
    g_strlcpy(out->smsid, (const char *)sqlite3_column_text(st, 0), sizeof out->smsid);
    out->via = (CmWipeVia)sqlite3_column_int(st, 1);
    out->state = (CmWipeState)sqlite3_column_int(st, 2);
    out->requested = sqlite3_column_int64(st, 3);
    out->acknowledged = sqlite3_column_int64(st, 4);
    last_seen = sqlite3_column_int64(st, 5);
    sqlite3_reset(st);
    out->device_confirmed = FALSE; /* nothing in the protocol confirms it */
    out->seen_after_ack = out->state == CM_WIPE_ACKNOWLEDGED && last_seen > out->acknowledged;
    g_strlcpy(out->meaning,
              out->state == CM_WIPE_QUEUED ? "not sent yet"
              : out->via == CM_WIPE_EXCHANGE
                  ? "Exchange received the wipe command; the device may not have acted"
                  : "the wipe message was sent; the device may not have acted",
              sizeof out->meaning);
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}
