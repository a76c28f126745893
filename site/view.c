/* view.c - read-only views of a client record for administrators: what
 * the record says, the inventory and discovery data the site decrypted and
 * stored, and the collections the client is in. */
#include "internal.h"

#include <string.h>

#define VIEW_PROPS_MAX 1000

/* Adds property -> value pairs of one table for the client key to obj. */
static gboolean
props_add(CmSite *site, const char *sql, gint64 key, json_t *obj, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, sql, &cause);
    gboolean row = FALSE;
    int n = 0;

    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, key);
    while (n++ < VIEW_PROPS_MAX && cm_store_step_row(site->store, st, &row, &cause) && row)
        json_object_set_new(obj, (const char *)sqlite3_column_text(st, 0),
                            json_string((const char *)sqlite3_column_text(st, 1)));
    sqlite3_reset(st);
    if (cause != NULL)
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

json_t *
cm_site_client_json(CmSite *site, const char *smsid, GError **error)
{
    CmClientInfo info;
    json_t *o = NULL, *inv = NULL, *disc = NULL, *colls = NULL;

    if (!cm_site_client(site, smsid, &info, error))
        return NULL;
    inv = json_object();
    disc = json_object();
    if (!props_add(site, "SELECT property, value FROM inventory WHERE client = ? ORDER BY property",
                   info.key, inv, error) ||
        !props_add(site, "SELECT property, value FROM discovery WHERE client = ? ORDER BY property",
                   info.key, disc, error))
        goto fail;
    colls = json_array();
    for (guint i = 0; i < site->collections->len; i++) {
        const SiteCollection *c = g_ptr_array_index(site->collections, i);
        if (cm_site_in_collection(site, c->id, smsid))
            json_array_append_new(colls, json_string(c->name));
    }
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:i}", "smsid",
                  info.smsid, "hwid", info.hwid, "name", info.name, "domain", info.domain,
                  "state", cm_client_state_name(info.state), "registered_by",
                  cm_auth_name(info.registered_by), "ksp", cm_ksp_kind_name(info.ksp), "media",
                  info.media, "thumbprint", info.thumbprint, "registered_at",
                  (json_int_t)(info.registered_at / CM_USEC_PER_SEC), "last_seen",
                  (json_int_t)(info.last_seen / CM_USEC_PER_SEC), "registrations",
                  info.registrations);
    json_object_set_new(o, "inventory", inv);
    json_object_set_new(o, "discovery", disc);
    json_object_set_new(o, "collections", colls);
    return o;
fail:
    json_decref(inv);
    json_decref(disc);
    return NULL;
}

json_t *
cm_site_clients_json(CmSite *site, int state, guint limit, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site,
                                 "SELECT smsid, name, state FROM clients WHERE obsolete = 0 AND "
                                 "(?1 < 0 OR state = ?1) ORDER BY id LIMIT ?2",
                                 &cause);
    json_t *list = NULL;
    gboolean row = FALSE;

    if (st == NULL)
        goto fail;
    list = json_array();
    sqlite3_bind_int(st, 1, state);
    sqlite3_bind_int64(st, 2, limit);
    while (cm_store_step_row(site->store, st, &row, &cause) && row)
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s}", "smsid", (const char *)sqlite3_column_text(st, 0),
                            "name", (const char *)sqlite3_column_text(st, 1), "state",
                            cm_client_state_name((CmClientState)sqlite3_column_int(st, 2))));
    sqlite3_reset(st);
    if (cause != NULL)
        goto fail;
    return list;
fail:
    json_decref(list);
    cm_site_store_error(error, cause);
    return NULL;
}
