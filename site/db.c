/* db.c - the site database schema and its small helpers. */
#include "internal.h"

#include <string.h>

/* Each entry is one migration; never edit a released one, add another. */
static const char *const migrations[] = {
    /* 1: the site */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE site_keys(name TEXT PRIMARY KEY, sealed BLOB NOT NULL, cert BLOB);"
    "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE mps(name TEXT PRIMARY KEY, role_id INTEGER NOT NULL UNIQUE,"
    "  internet INTEGER NOT NULL, cert BLOB NOT NULL, tls_cert BLOB);"
    "CREATE TABLE forests(name TEXT PRIMARY KEY);"
    "CREATE TABLE domains(name TEXT PRIMARY KEY, forest TEXT NOT NULL REFERENCES forests(name));"
    "CREATE TABLE trusts(a TEXT NOT NULL, b TEXT NOT NULL, kind INTEGER NOT NULL,"
    "  PRIMARY KEY(a, b));"
    /* clients: one live record per SMSID; superseded ones are kept, obsolete */
    "CREATE TABLE clients(id INTEGER PRIMARY KEY, smsid TEXT NOT NULL, hwid TEXT NOT NULL,"
    "  name TEXT NOT NULL, domain TEXT NOT NULL, state INTEGER NOT NULL,"
    "  registered_by INTEGER NOT NULL, ksp INTEGER NOT NULL, media INTEGER NOT NULL,"
    "  cert BLOB NOT NULL, thumbprint TEXT NOT NULL, registered_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL, registrations INTEGER NOT NULL DEFAULT 1,"
    "  obsolete INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX clients_smsid ON clients(smsid) WHERE obsolete = 0;"
    "CREATE INDEX clients_hwid ON clients(hwid);"
    "CREATE INDEX clients_thumbprint ON clients(thumbprint);"
    "CREATE TABLE blocked(kind TEXT NOT NULL, value TEXT NOT NULL, smsid TEXT,"
    "  at INTEGER NOT NULL, PRIMARY KEY(kind, value));"
    "CREATE TABLE discovery(smsid TEXT NOT NULL, property TEXT NOT NULL, value TEXT NOT NULL,"
    "  updated INTEGER NOT NULL, PRIMARY KEY(smsid, property)) WITHOUT ROWID;"
    "CREATE INDEX discovery_updated ON discovery(updated);"
    "CREATE TABLE inventory(smsid TEXT NOT NULL, property TEXT NOT NULL, value TEXT NOT NULL,"
    "  updated INTEGER NOT NULL, PRIMARY KEY(smsid, property)) WITHOUT ROWID;"
    "CREATE TABLE status_messages(id INTEGER PRIMARY KEY, smsid TEXT, component TEXT NOT NULL,"
    "  message_id INTEGER NOT NULL, severity TEXT NOT NULL, text TEXT NOT NULL,"
    "  received INTEGER NOT NULL, via TEXT NOT NULL);"
    "CREATE INDEX status_smsid ON status_messages(smsid);"
    "CREATE TABLE state_messages(id INTEGER PRIMARY KEY, smsid TEXT NOT NULL,"
    "  topic TEXT NOT NULL, state INTEGER NOT NULL, time INTEGER NOT NULL,"
    "  received INTEGER NOT NULL);"
    "CREATE TABLE client_status(id INTEGER PRIMARY KEY, smsid TEXT NOT NULL,"
    "  check_name TEXT NOT NULL, result TEXT NOT NULL, received INTEGER NOT NULL);"
    "CREATE INDEX client_status_received ON client_status(received);"
    "CREATE TABLE collections(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE rules(id INTEGER PRIMARY KEY, collection_id INTEGER NOT NULL"
    "  REFERENCES collections(id), source INTEGER NOT NULL, property TEXT NOT NULL,"
    "  op INTEGER NOT NULL, value TEXT NOT NULL);"
    "CREATE TABLE members(collection_id INTEGER NOT NULL, smsid TEXT NOT NULL,"
    "  PRIMARY KEY(collection_id, smsid)) WITHOUT ROWID;"
    "CREATE INDEX members_smsid ON members(smsid);"
    "CREATE TABLE policies(policy_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    "  collection_id INTEGER NOT NULL, body BLOB NOT NULL, signature BLOB NOT NULL,"
    "  hash TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE deployments(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    "  collection_id INTEGER NOT NULL REFERENCES collections(id),"
    "  policy_id TEXT NOT NULL REFERENCES policies(policy_id), created INTEGER NOT NULL);"
    "CREATE INDEX deployments_collection ON deployments(collection_id);"
    "CREATE TABLE secrets(name TEXT PRIMARY KEY, sealed BLOB NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, admin TEXT NOT NULL,"
    "  action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "INSERT INTO collections(id, name, created) VALUES (1, 'All Systems', 0);",
    /* 2: client push accounts and their scopes (passwords are sealed
     * secrets named push-account:<name>) */
    "CREATE TABLE push_accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  domains TEXT NOT NULL);",
    /* 3: role-based administration (REQ ADM-01) with the built-in Full
     * Administrator, SMS Provider credentials (REQ ADM-02), the hierarchy
     * and its replication links (REQ NET-05, TRUST-02), site systems in
     * other forests (REQ NET-06) and publishing to forests (REQ NET-07).
     * Roles are CmSecurityRole values; collection 1 is All Systems. */
    "CREATE TABLE admins(name TEXT PRIMARY KEY, builtin INTEGER NOT NULL DEFAULT 0,"
    "  principal TEXT, cert_thumbprint TEXT, password TEXT,"
    "  totp_step INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);"
    "CREATE TABLE admin_roles(admin TEXT NOT NULL, role INTEGER NOT NULL,"
    "  PRIMARY KEY(admin, role)) WITHOUT ROWID;"
    "CREATE TABLE admin_scopes(admin TEXT NOT NULL, scope TEXT NOT NULL,"
    "  PRIMARY KEY(admin, scope)) WITHOUT ROWID;"
    "CREATE TABLE admin_collections(admin TEXT NOT NULL, collection_id INTEGER NOT NULL,"
    "  PRIMARY KEY(admin, collection_id)) WITHOUT ROWID;"
    "CREATE TABLE object_scopes(kind TEXT NOT NULL, object TEXT NOT NULL, scope TEXT NOT NULL,"
    "  PRIMARY KEY(kind, object, scope)) WITHOUT ROWID;"
    "INSERT INTO admins(name, builtin, created) VALUES ('admin', 1, 0);"
    "INSERT INTO admin_roles(admin, role) VALUES ('admin', 0);"
    "INSERT INTO admin_scopes(admin, scope) VALUES ('admin', 'All');"
    "INSERT INTO admin_collections(admin, collection_id) VALUES ('admin', 1);"
    "CREATE TABLE hier_sites(code TEXT PRIMARY KEY, parent TEXT, kind INTEGER NOT NULL,"
    "  forest TEXT NOT NULL, exchange_key TEXT NOT NULL, server TEXT NOT NULL,"
    "  install_account TEXT NOT NULL, added INTEGER NOT NULL);"
    "CREATE TABLE repl_links(peer TEXT PRIMARY KEY, role INTEGER NOT NULL,"
    "  peer_key TEXT NOT NULL, next_seq INTEGER NOT NULL DEFAULT 1,"
    "  acked INTEGER NOT NULL DEFAULT 0, last_in INTEGER NOT NULL DEFAULT 0,"
    "  last_in_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE repl_out(peer TEXT NOT NULL, seq INTEGER NOT NULL, channel INTEGER NOT NULL,"
    "  kind TEXT NOT NULL, key TEXT NOT NULL, origin TEXT NOT NULL, value TEXT NOT NULL,"
    "  at INTEGER NOT NULL, PRIMARY KEY(peer, seq)) WITHOUT ROWID;"
    "CREATE TABLE repl_data(kind TEXT NOT NULL, key TEXT NOT NULL, origin TEXT NOT NULL,"
    "  channel INTEGER NOT NULL, value TEXT NOT NULL, at INTEGER NOT NULL,"
    "  PRIMARY KEY(kind, key)) WITHOUT ROWID;"
    "CREATE TABLE site_systems(server TEXT NOT NULL, role INTEGER NOT NULL,"
    "  forest TEXT NOT NULL, site_initiates INTEGER NOT NULL, install_account TEXT,"
    "  db_account TEXT, PRIMARY KEY(server, role));"
    "CREATE TABLE forest_publish(forest TEXT PRIMARY KEY);",
    /* 4: replicated items carry their scope (CmReplScope): global data
     * floods the hierarchy, site data goes up; a new child gets the global
     * data its parent holds. */
    "ALTER TABLE repl_out ADD COLUMN scope INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE repl_data ADD COLUMN scope INTEGER NOT NULL DEFAULT 0;",
    /* 5: wipe requests and what their acknowledgment means (REQ DATA-03) */
    "CREATE TABLE wipes(id INTEGER PRIMARY KEY, smsid TEXT NOT NULL, via INTEGER NOT NULL,"
    "  state INTEGER NOT NULL, requested INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0,"
    "  admin TEXT NOT NULL);",
    /* 6: no statement looks a client record up by hardware ID or
     * thumbprint (blocked ones are found in the blocked table), so these
     * two indexes only cost every registration two more B-tree inserts and
     * each client some 150 bytes. */
    "DROP INDEX clients_hwid;"
    "DROP INDEX clients_thumbprint;",
    /* 7: the rows of a client's own data (inventory, discovery, state
     * messages, client status checks and collection memberships) name
     * their client by an integer key instead of its SMSID, which each row
     * and index entry held as 41 bytes of text (about 650 of the 1,585
     * bytes a client took at 20,000 clients).  The key is the id of the
     * first record the SMSID had: a record that supersedes an obsolete one
     * keeps it in first_id (NULL on a first record), so the rows stay with
     * the SMSID across new records as they did when keyed by it.  Status
     * messages keep the SMSID: they are unauthenticated and may name a
     * client the site never registered (REQ MSG-03).  Rows of an SMSID
     * without any record are not carried over; none can exist, as only a
     * registered client's signed messages are stored. */
    "ALTER TABLE clients ADD COLUMN first_id INTEGER;"
    "CREATE TEMP TABLE m7_keys(smsid TEXT PRIMARY KEY, key INTEGER NOT NULL);"
    "INSERT INTO m7_keys(smsid, key) SELECT smsid, min(id) FROM clients GROUP BY smsid;"
    "UPDATE clients SET first_id = (SELECT key FROM m7_keys k WHERE k.smsid = clients.smsid)"
    "  WHERE id <> (SELECT key FROM m7_keys k WHERE k.smsid = clients.smsid);"
    "CREATE TABLE discovery_7(client INTEGER NOT NULL, property TEXT NOT NULL,"
    "  value TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(client, property)) WITHOUT ROWID;"
    "INSERT INTO discovery_7(client, property, value, updated)"
    "  SELECT k.key, d.property, d.value, d.updated FROM discovery d JOIN m7_keys k USING(smsid);"
    "DROP TABLE discovery;"
    "ALTER TABLE discovery_7 RENAME TO discovery;"
    "CREATE INDEX discovery_updated ON discovery(updated);"
    "CREATE TABLE inventory_7(client INTEGER NOT NULL, property TEXT NOT NULL,"
    "  value TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(client, property)) WITHOUT ROWID;"
    "INSERT INTO inventory_7(client, property, value, updated)"
    "  SELECT k.key, i.property, i.value, i.updated FROM inventory i JOIN m7_keys k USING(smsid);"
    "DROP TABLE inventory;"
    "ALTER TABLE inventory_7 RENAME TO inventory;"
    "CREATE TABLE state_messages_7(id INTEGER PRIMARY KEY, client INTEGER NOT NULL,"
    "  topic TEXT NOT NULL, state INTEGER NOT NULL, time INTEGER NOT NULL,"
    "  received INTEGER NOT NULL);"
    "INSERT INTO state_messages_7(id, client, topic, state, time, received)"
    "  SELECT s.id, k.key, s.topic, s.state, s.time, s.received"
    "  FROM state_messages s JOIN m7_keys k USING(smsid);"
    "DROP TABLE state_messages;"
    "ALTER TABLE state_messages_7 RENAME TO state_messages;"
    "CREATE TABLE client_status_7(id INTEGER PRIMARY KEY, client INTEGER NOT NULL,"
    "  check_name TEXT NOT NULL, result TEXT NOT NULL, received INTEGER NOT NULL);"
    "INSERT INTO client_status_7(id, client, check_name, result, received)"
    "  SELECT s.id, k.key, s.check_name, s.result, s.received"
    "  FROM client_status s JOIN m7_keys k USING(smsid);"
    "DROP TABLE client_status;"
    "ALTER TABLE client_status_7 RENAME TO client_status;"
    "CREATE INDEX client_status_received ON client_status(received);"
    "CREATE TABLE members_7(collection_id INTEGER NOT NULL, client INTEGER NOT NULL,"
    "  PRIMARY KEY(collection_id, client)) WITHOUT ROWID;"
    "INSERT INTO members_7(collection_id, client)"
    "  SELECT m.collection_id, k.key FROM members m JOIN m7_keys k USING(smsid);"
    "DROP TABLE members;"
    "ALTER TABLE members_7 RENAME TO members;"
    "CREATE INDEX members_client ON members(client);"
    "DROP TABLE m7_keys;",
};

gboolean
cm_site_db_migrate(CmStore *store, GError **error)
{
    GError *cause = NULL;

    if (!cm_store_migrate(store, migrations, G_N_ELEMENTS(migrations), &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    return TRUE;
}

void
cm_site_store_error(GError **error, GError *cause)
{
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_STORE, "site database: %s",
                cause ? cause->message : "unknown failure");
    g_clear_error(&cause);
}

gboolean
cm_site_meta_get(CmSite *site, const char *key, char **out, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, "SELECT value FROM meta WHERE key = ?", &cause);
    gboolean row = FALSE;

    *out = NULL;
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (row) {
        *out = g_strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_site_meta_set(CmSite *site, const char *key, const char *value, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st =
        SITE_STMT(site, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

guint64
cm_site_serial_next(CmSite *site, GError **error)
{
    g_autofree char *v = NULL;
    char buf[32];
    guint64 serial;

    /* Serials come from a counter in the database, so a restarted site
     * never issues one twice. */
    if (!cm_site_meta_get(site, "next_serial", &v, error))
        return 0;
    serial = v ? g_ascii_strtoull(v, NULL, 10) : 1;
    g_snprintf(buf, sizeof buf, "%" G_GUINT64_FORMAT, serial + 1);
    if (!cm_site_meta_set(site, "next_serial", buf, error))
        return 0;
    return serial;
}
