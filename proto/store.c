/* store.c - the SQLite store: opening with the right durability, schema
 * migrations, transactions and a cache of prepared statements.
 *
 * A store belongs to one thread at a time (the statement cache is not
 * locked), so connections are opened without SQLite's own mutexes.  Every
 * SQLite failure becomes CM_PROTO_ERROR_STORE carrying sqlite3_errmsg(). */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

/* How long a writer waits for another connection's lock (the daemons'
 * maintenance tasks, an operator's sqlite3 shell) before giving up. */
#define STORE_MEMORY_CACHE_KIB 128
#define STORE_BUSY_TIMEOUT_MS 5000
/* How much of a failing statement an error message repeats. */
#define SQL_QUOTE_MAX 80

/* Slots of the statement cache's front: a power of two above the number
 * of statements a busy caller (the site's message path) keeps using. */
#define STMT_FRONT_SLOTS 128

/* A front slot: the address a caller last asked with, the cached text
 * (owned by stmts) and its statement. */
typedef struct {
    const char *sql_at;
    const char *sql;
    sqlite3_stmt *stmt;
} StmtSlot;

struct CmStore {
    sqlite3 *db;
    char *path;        /* for messages; ":memory:" for memory stores */
    GHashTable *stmts; /* SQL text (owned) -> sqlite3_stmt (finalized on removal) */
    /* Callers mostly pass the same string constant each time: a slot
     * chosen by its address finds the statement with one strcmp instead of
     * hashing the whole text.  The strcmp keeps a reused address (a freed
     * and reallocated string) from finding another text's statement. */
    StmtSlot front[STMT_FRONT_SLOTS];
    /* The lock a multi-threaded caller (a daemon) shares the connection
     * under; NULL when one thread owns it.  See cm_store_set_guard. */
    GMutex *guard;
};

static gsize sqlite_configured;

/* umask() is per process; serialise our own changes to it. */
static GMutex umask_lock;

static void
stmt_free(gpointer stmt)
{
    sqlite3_finalize(stmt);
}

/* The start of a statement's text, on one line, for an error message. */
static char *
sql_excerpt(const char *sql)
{
    GString *s = g_string_new(NULL);
    gboolean space = FALSE;

    for (const char *p = sql != NULL ? sql : ""; *p != '\0' && s->len < SQL_QUOTE_MAX; p++) {
        if (g_ascii_isspace(*p)) {
            space = s->len > 0;
            continue;
        }
        if (space)
            g_string_append_c(s, ' ');
        space = FALSE;
        g_string_append_c(s, *p);
    }
    return g_string_free(s, FALSE);
}

static void set_db_error(GError **error, sqlite3 *db, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
set_db_error(GError **error, sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    char *what;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_STORE, "%s: %s", what,
                db != NULL ? sqlite3_errmsg(db) : "out of memory");
    g_free(what);
}

/* Runs a PRAGMA that answers with one row and returns the first column as
 * text (new string), or NULL with error set. */
static char *
pragma_text(CmStore *store, const char *sql, GError **error)
{
    sqlite3_stmt *stmt = NULL;
    char *value = NULL;
    int rc;

    if (sqlite3_prepare_v2(store->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        set_db_error(error, store->db, "%s on %s failed", sql, store->path);
        goto out;
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        set_db_error(error, store->db, "%s on %s failed", sql, store->path);
        goto out;
    }
    value = g_strdup((const char *)sqlite3_column_text(stmt, 0));
    if (value == NULL)
        value = g_strdup("");
out:
    sqlite3_finalize(stmt);
    return value;
}

static gboolean
exec_plain(CmStore *store, const char *sql, GError **error)
{
    if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        set_db_error(error, store->db, "%s on %s failed", sql, store->path);
        return FALSE;
    }
    return TRUE;
}

static gboolean
configure_file(CmStore *store, CmStoreMode mode, GError **error)
{
    char *journal = NULL;
    gboolean ok = FALSE;

    /* WAL lets readers (reports, the operator's shell) run beside the one
     * writer, and keeps a crash from leaving a torn page. */
    journal = pragma_text(store, "PRAGMA journal_mode=WAL", error);
    if (journal == NULL)
        goto out;
    if (g_ascii_strcasecmp(journal, "wal") != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_STORE,
                    "cannot put database %s in WAL mode (SQLite left it in %s mode); keep the "
                    "database on a local file system",
                    store->path, journal);
        goto out;
    }
    /* FULL syncs the WAL on every commit: the site acknowledges a message
     * only after it is committed, and a power cut must not undo that.
     * NORMAL may lose the last commits on power loss but never corrupts. */
    if (!exec_plain(store,
                    mode == CM_STORE_DURABLE ? "PRAGMA synchronous=FULL"
                                             : "PRAGMA synchronous=NORMAL",
                    error))
        goto out;
    ok = TRUE;
out:
    g_free(journal);
    return ok;
}

CmStore *
cm_store_open(const char *path, CmStoreMode mode, GError **error)
{
    CmStore *store = NULL;
    const char *file;
    gboolean memory = mode == CM_STORE_MEMORY;
    gboolean created = FALSE;
    struct stat st;
    mode_t old_mask = 0;
    gboolean ok = FALSE;
    int rc;

    /* SQLite keeps memory statistics by default, which takes a global
     * mutex around every one of its allocations (some 400 lock and unlock
     * calls per client in the simulator's lifecycle).  cmlab reads none of
     * them.  It must be set before SQLite's first use; if someone else in
     * the process used SQLite first, the call is refused and changes
     * nothing. */
    if (g_once_init_enter(&sqlite_configured)) {
        (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        g_once_init_leave(&sqlite_configured, 1);
    }
    if (mode != CM_STORE_MEMORY && mode != CM_STORE_DURABLE && mode != CM_STORE_FAST) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "unknown store mode %d; use memory, durable or fast", (int)mode);
        return NULL;
    }
    if (!memory && (path == NULL || *path == '\0' || strcmp(path, ":memory:") == 0)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "a durable or fast store needs a database file path; use the memory mode "
                    "for a database that is not kept");
        return NULL;
    }
    /* A memory store lives in SQLite's memdb VFS rather than as a
     * ":memory:" database: the latter keeps every page in an unbounded page
     * cache that each commit walks whole (pcache truncation), so a commit
     * costs time in proportion to the database's size.  The memdb file is
     * private to this connection (no leading '/'). */
    file = memory ? "file:cmstore?vfs=memdb" : path;

    store = g_new0(CmStore, 1);
    store->path = g_strdup(memory ? ":memory:" : file);
    store->stmts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, stmt_free);

    /* The database holds secrets (encrypted, but still): it is created
     * readable by its owner only.  SQLite creates the file inside
     * sqlite3_open_v2 and gives its -wal and -shm files the mode of the
     * database, so a umask around the open covers all three, and the chmod
     * after it covers another thread changing the umask meanwhile. */
    if (!memory) {
        created = stat(file, &st) != 0 && errno == ENOENT;
        g_mutex_lock(&umask_lock);
        old_mask = umask(077);
    }
    rc = sqlite3_open_v2(file, &store->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                             (memory ? SQLITE_OPEN_URI : 0),
                         NULL);
    if (!memory) {
        umask(old_mask);
        g_mutex_unlock(&umask_lock);
    }
    if (rc != SQLITE_OK) {
        set_db_error(error, store->db, "cannot open database %s", file);
        goto out;
    }
    if (created && chmod(file, S_IRUSR | S_IWUSR) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_STORE,
                    "cannot restrict database %s to its owner (mode 0600): %s", file,
                    g_strerror(errno));
        goto out;
    }
    sqlite3_extended_result_codes(store->db, 1);
    /* Defensive mode refuses the schema-corrupting tricks (writable_schema,
     * raw shadow-table writes) that no cmlab code needs. */
    sqlite3_db_config(store->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (sqlite3_busy_timeout(store->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
        set_db_error(error, store->db, "cannot set a busy timeout on %s", file);
        goto out;
    }
    if (!memory && !configure_file(store, mode, error))
        goto out;
    /* Nothing to recover after a crash in memory: no rollback journal
     * beyond what a ROLLBACK needs.  And no size limit but the machine's:
     * memdb stops a database at 1 GiB unless told otherwise, which a site
     * of some 600,000 clients reaches.  The database is private to this
     * connection, so it keeps its lock (EXCLUSIVE): every statement outside
     * a transaction would otherwise take and drop a lock and check the
     * header for changes no one else can make.  (2 KiB pages were measured
     * too: 1% fewer instructions, but no faster and 2% larger.) */
    /* A small page cache: the pages are in memory anyway (a miss copies
     * one), and part of each transaction's cost grows with the cache, not
     * the work: 300,000 clients in the simulator took 3-5% less CPU with
     * 128 KiB than with SQLite's 2 MiB, and a 32 MiB cache took three times
     * as long. */
    if (memory) {
        sqlite3_int64 limit = G_GINT64_CONSTANT(1) << 50;
        if (sqlite3_file_control(store->db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit) != SQLITE_OK ||
            !exec_plain(store, "PRAGMA journal_mode=MEMORY", error) ||
            !exec_plain(store, "PRAGMA locking_mode=EXCLUSIVE", error) ||
            !exec_plain(store, "PRAGMA cache_size=-" G_STRINGIFY(STORE_MEMORY_CACHE_KIB), error)) {
            if (error != NULL && *error == NULL)
                set_db_error(error, store->db, "cannot set up the memory database");
            goto out;
        }
    }
    /* SQLite leaves foreign keys off for compatibility; the site's schema
     * relies on them (a client's records go with the client). */
    if (!exec_plain(store, "PRAGMA foreign_keys=ON", error))
        goto out;
    ok = TRUE;
out:
    if (!ok) {
        cm_store_close(store);
        store = NULL;
    }
    return store;
}

void
cm_store_close(CmStore *store)
{
    if (store == NULL)
        return;
    /* Statements first: a connection with live statements stays open. */
    g_hash_table_destroy(store->stmts);
    sqlite3_close_v2(store->db);
    g_free(store->path);
    g_free(store);
}

sqlite3 *
cm_store_db(CmStore *store)
{
    g_return_val_if_fail(store != NULL, NULL);
    return store->db;
}

static gboolean
get_user_version(CmStore *store, gint64 *out, GError **error)
{
    char *text = pragma_text(store, "PRAGMA user_version", error);

    if (text == NULL)
        return FALSE;
    *out = g_ascii_strtoll(text, NULL, 10);
    g_free(text);
    return TRUE;
}

gboolean
cm_store_migrate(CmStore *store, const char *const *migrations, size_t n, GError **error)
{
    gboolean ok = FALSE;
    gboolean in_tx = FALSE;

    g_return_val_if_fail(store != NULL, FALSE);
    g_return_val_if_fail(migrations != NULL || n == 0, FALSE);
    if (n > G_MAXINT32) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "%zu migrations is more than SQLite's user_version can count", n);
        return FALSE;
    }
    for (;;) {
        gint64 version;
        char *bump;
        gboolean bumped;

        /* The version is read inside the write transaction, so two
         * processes opening the same new database cannot both run a step. */
        if (!cm_store_begin(store, error))
            goto out;
        in_tx = TRUE;
        if (!get_user_version(store, &version, error))
            goto out;
        if (version < 0 || (guint64)version > n) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_STORE,
                        "database %s has schema version %" G_GINT64_FORMAT
                        " but this cmlab knows only versions up to %zu: the database is newer "
                        "than this cmlab; run a newer cmlab or restore a backup made by this one",
                        store->path, version, n);
            goto out;
        }
        if ((size_t)version == n)
            break;
        /* A migration is plain SQL without BEGIN or COMMIT of its own: it
         * runs inside this transaction together with the version bump, so
         * a failure leaves neither half of it behind. */
        if (sqlite3_exec(store->db, migrations[version], NULL, NULL, NULL) != SQLITE_OK) {
            char *excerpt = sql_excerpt(migrations[version]);
            set_db_error(error, store->db,
                         "migration %" G_GINT64_FORMAT " of database %s (\"%s\") failed, so the "
                         "database stays at schema version %" G_GINT64_FORMAT,
                         version + 1, store->path, excerpt, version);
            g_free(excerpt);
            goto out;
        }
        /* PRAGMA user_version takes no bound parameter; the number is ours. */
        bump = g_strdup_printf("PRAGMA user_version=%" G_GINT64_FORMAT, version + 1);
        bumped = exec_plain(store, bump, error);
        g_free(bump);
        if (!bumped || !cm_store_commit(store, error))
            goto out;
        in_tx = FALSE;
    }
    /* Nothing left to run: end the transaction that only read the version. */
    if (!cm_store_commit(store, error))
        goto out;
    in_tx = FALSE;
    ok = TRUE;
out:
    if (in_tx)
        cm_store_rollback(store);
    return ok;
}

void
cm_store_set_guard(CmStore *store, GMutex *guard)
{
    g_return_if_fail(store != NULL);
    store->guard = guard;
}

/* Whether the caller may use the connection: with a guard, someone must
 * hold it.  A trylock that succeeds proves nobody did (it cannot tell
 * which thread holds it, but a use with no lock at all is the mistake
 * this catches, every time rather than when two threads happen to meet:
 * the connection is opened without SQLite's own mutex). */
static gboolean
guard_held(CmStore *store, const char *sql, GError **error)
{
    char *excerpt;

    if (store->guard == NULL || !g_mutex_trylock(store->guard))
        return TRUE;
    g_mutex_unlock(store->guard);
    excerpt = sql_excerpt(sql);
    g_critical("database %s used without its lock (\"%s\"): a bug", store->path, excerpt);
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_STORE,
                "database %s used without its lock (\"%s\")", store->path, excerpt);
    g_free(excerpt);
    return FALSE;
}

gboolean
cm_store_exec(CmStore *store, const char *sql, GError **error)
{
    char *excerpt;

    g_return_val_if_fail(store != NULL && sql != NULL, FALSE);
    if (!guard_held(store, sql, error))
        return FALSE;
    if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return TRUE;
    excerpt = sql_excerpt(sql);
    set_db_error(error, store->db, "SQL \"%s\" on %s failed", excerpt, store->path);
    g_free(excerpt);
    return FALSE;
}

/* Transaction control goes through the statement cache: the simulator
 * opens one transaction per handled message, and preparing BEGIN and
 * COMMIT each time would cost more than running them. */
static gboolean
run_cached(CmStore *store, const char *sql, GError **error)
{
    sqlite3_stmt *stmt = cm_store_stmt(store, sql, error);

    return stmt != NULL && cm_store_step_done(store, stmt, error);
}

gboolean
cm_store_begin(CmStore *store, GError **error)
{
    g_return_val_if_fail(store != NULL, FALSE);
    /* IMMEDIATE takes the write lock now, so a transaction fails (or
     * waits) at its start rather than half-way when it first writes. */
    return run_cached(store, "BEGIN IMMEDIATE", error);
}

gboolean
cm_store_commit(CmStore *store, GError **error)
{
    g_return_val_if_fail(store != NULL, FALSE);
    return run_cached(store, "COMMIT", error);
}

void
cm_store_rollback(CmStore *store)
{
    GError *error = NULL;

    g_return_if_fail(store != NULL);
    /* Some errors (a full disk, an interrupt) make SQLite roll back by
     * itself; a second ROLLBACK would then only report that no
     * transaction is active. */
    if (sqlite3_get_autocommit(store->db))
        return;
    if (!run_cached(store, "ROLLBACK", &error)) {
        g_warning("%s", error->message);
        g_clear_error(&error);
    }
}

sqlite3_stmt *
cm_store_stmt(CmStore *store, const char *sql, GError **error)
{
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    char *excerpt = NULL;
    gboolean ok = FALSE;
    StmtSlot *slot;
    gpointer key, value;
    char *copy;

    g_return_val_if_fail(store != NULL && sql != NULL, NULL);
    if (!guard_held(store, sql, error))
        return NULL;
    slot = &store->front[((guintptr)sql >> 3) % STMT_FRONT_SLOTS];
    if (slot->sql_at == sql && strcmp(slot->sql, sql) == 0) {
        stmt = slot->stmt;
    } else if (g_hash_table_lookup_extended(store->stmts, sql, &key, &value)) {
        stmt = value;
        slot->sql_at = sql;
        slot->sql = key;
        slot->stmt = stmt;
    }
    if (stmt != NULL) {
        /* reset() repeats the error of the statement's last step, which
         * was reported when it happened. */
        (void)sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        return stmt;
    }
    if (sqlite3_prepare_v3(store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail) !=
        SQLITE_OK) {
        excerpt = sql_excerpt(sql);
        set_db_error(error, store->db, "cannot prepare \"%s\" on %s", excerpt, store->path);
        goto out;
    }
    while (tail != NULL && g_ascii_isspace(*tail))
        tail++;
    /* One statement per cache entry: anything after the first would be
     * silently ignored by sqlite3_step(). */
    if (stmt == NULL || (tail != NULL && *tail != '\0')) {
        excerpt = sql_excerpt(sql);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_STORE,
                    "cannot prepare \"%s\" on %s: a cached statement must hold exactly one SQL "
                    "statement",
                    excerpt, store->path);
        goto out;
    }
    copy = g_strdup(sql);
    g_hash_table_insert(store->stmts, copy, stmt);
    slot->sql_at = sql;
    slot->sql = copy;
    slot->stmt = stmt;
    ok = TRUE;
out:
    if (!ok) {
        sqlite3_finalize(stmt);
        stmt = NULL;
    }
    g_free(excerpt);
    return stmt;
}

static void
set_step_error(GError **error, CmStore *store, sqlite3_stmt *stmt)
{
    char *excerpt = sql_excerpt(sqlite3_sql(stmt));

    set_db_error(error, store->db, "\"%s\" on %s failed", excerpt, store->path);
    g_free(excerpt);
}

gboolean
cm_store_step_done(CmStore *store, sqlite3_stmt *stmt, GError **error)
{
    int rc;

    g_return_val_if_fail(store != NULL && stmt != NULL, FALSE);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE)
        set_step_error(error, store, stmt); /* before reset() rewrites the message */
    (void)sqlite3_reset(stmt);
    return rc == SQLITE_DONE;
}

gboolean
cm_store_step_row(CmStore *store, sqlite3_stmt *stmt, gboolean *row, GError **error)
{
    int rc;

    g_return_val_if_fail(store != NULL && stmt != NULL && row != NULL, FALSE);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *row = TRUE;
        return TRUE;
    }
    *row = FALSE;
    if (rc != SQLITE_DONE)
        set_step_error(error, store, stmt);
    /* Resetting at the end releases the read snapshot, which would
     * otherwise keep the WAL from being checkpointed. */
    (void)sqlite3_reset(stmt);
    return rc == SQLITE_DONE;
}

gint64
cm_store_last_rowid(CmStore *store)
{
    g_return_val_if_fail(store != NULL, 0);
    return sqlite3_last_insert_rowid(store->db);
}

int
cm_store_changes(CmStore *store)
{
    g_return_val_if_fail(store != NULL, 0);
    return sqlite3_changes(store->db);
}
