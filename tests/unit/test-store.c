/* test-store.c - the SQLite store: open modes, migrations, transactions,
 * the statement cache and error messages. */
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

static const char *const migrations[] = {
    "CREATE TABLE client (id INTEGER PRIMARY KEY, smsid TEXT NOT NULL UNIQUE);"
    "INSERT INTO client (smsid) VALUES ('GUID:00000000-0000-0000-0000-000000000001');",
    "CREATE TABLE status (id INTEGER PRIMARY KEY,"
    " client INTEGER NOT NULL REFERENCES client(id), msg TEXT);",
    "ALTER TABLE client ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;",
};

static char *tmpdir;

static void
setup(void)
{
    tmpdir = cm_test_tmpdir();
}

static void
teardown(void)
{
    cm_test_rmdir(tmpdir);
    g_free(tmpdir);
    tmpdir = NULL;
}

static gint64
query_int(CmStore *store, const char *sql)
{
    GError *error = NULL;
    sqlite3_stmt *stmt = cm_store_stmt(store, sql, &error);
    gboolean row = FALSE;
    gint64 v;

    cm_assert_no_error(error);
    ck_assert(cm_store_step_row(store, stmt, &row, &error));
    cm_assert_no_error(error);
    ck_assert_msg(row, "%s gave no row", sql);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return v;
}

static char *
query_text(CmStore *store, const char *sql)
{
    GError *error = NULL;
    sqlite3_stmt *stmt = cm_store_stmt(store, sql, &error);
    gboolean row = FALSE;
    char *v;

    cm_assert_no_error(error);
    ck_assert(cm_store_step_row(store, stmt, &row, &error));
    ck_assert(row);
    v = g_strdup((const char *)sqlite3_column_text(stmt, 0));
    sqlite3_reset(stmt);
    return v;
}

static gboolean
table_exists(CmStore *store, const char *name)
{
    GError *error = NULL;
    sqlite3_stmt *stmt =
        cm_store_stmt(store, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1", &error);
    gboolean row = FALSE;

    cm_assert_no_error(error);
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    ck_assert(cm_store_step_row(store, stmt, &row, &error));
    sqlite3_reset(stmt);
    return row;
}

START_TEST(test_memory_roundtrip)
{
    GError *error = NULL;
    g_autoptr(CmStore) store = cm_store_open(NULL, CM_STORE_MEMORY, &error);
    sqlite3_stmt *stmt;
    gboolean row = TRUE;

    cm_assert_no_error(error);
    ck_assert_ptr_nonnull(cm_store_db(store));
    ck_assert(cm_store_migrate(store, migrations, G_N_ELEMENTS(migrations), &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(query_int(store, "PRAGMA user_version"), 3);

    stmt = cm_store_stmt(store, "INSERT INTO client (smsid) VALUES (?1)", &error);
    cm_assert_no_error(error);
    sqlite3_bind_text(stmt, 1, "GUID:00000000-0000-0000-0000-000000000002", -1, SQLITE_STATIC);
    ck_assert(cm_store_step_done(store, stmt, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(cm_store_last_rowid(store), 2);
    ck_assert_int_eq(cm_store_changes(store), 1);

    ck_assert(cm_store_exec(store, "UPDATE client SET blocked = 1", &error));
    ck_assert_int_eq(cm_store_changes(store), 2);

    stmt = cm_store_stmt(store, "SELECT smsid FROM client WHERE id = 99", &error);
    ck_assert(cm_store_step_row(store, stmt, &row, &error));
    cm_assert_no_error(error);
    ck_assert(!row);

    /* Memory stores are separate databases. */
    {
        g_autoptr(CmStore) other = cm_store_open(":memory:", CM_STORE_MEMORY, &error);
        cm_assert_no_error(error);
        ck_assert(!table_exists(other, "client"));
    }
    cm_store_close(NULL);
}
END_TEST

START_TEST(test_migrations_once)
{
    GError *error = NULL;
    char *path = g_build_filename(tmpdir, "site.db", NULL);
    CmStore *store;

    /* First open: the first two migrations. */
    store = cm_store_open(path, CM_STORE_DURABLE, &error);
    cm_assert_no_error(error);
    ck_assert(cm_store_migrate(store, migrations, 2, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(query_int(store, "PRAGMA user_version"), 2);
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM client"), 1);
    /* Running them again is a no-op. */
    ck_assert(cm_store_migrate(store, migrations, 2, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM client"), 1);
    cm_store_close(store);

    /* Reopen: the seeding INSERT of migration 1 does not run twice, and
     * only the new third migration runs. */
    store = cm_store_open(path, CM_STORE_DURABLE, &error);
    cm_assert_no_error(error);
    ck_assert(cm_store_migrate(store, migrations, 2, &error));
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM client"), 1);
    ck_assert(cm_store_migrate(store, migrations, 3, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(query_int(store, "PRAGMA user_version"), 3);
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM client"), 1);
    ck_assert_int_eq(query_int(store, "SELECT blocked FROM client"), 0);
    /* No transaction is left open behind the migrations. */
    ck_assert(sqlite3_get_autocommit(cm_store_db(store)));
    cm_store_close(store);
    g_free(path);
}
END_TEST

START_TEST(test_newer_database_refused)
{
    GError *error = NULL;
    char *path = g_build_filename(tmpdir, "newer.db", NULL);
    CmStore *store;

    store = cm_store_open(path, CM_STORE_FAST, &error);
    cm_assert_no_error(error);
    ck_assert(cm_store_migrate(store, migrations, 3, &error));
    cm_store_close(store);

    /* An older cmlab (two migrations) must not touch a version-3 database. */
    store = cm_store_open(path, CM_STORE_FAST, &error);
    cm_assert_no_error(error);
    ck_assert(!cm_store_migrate(store, migrations, 2, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "newer than this cmlab") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    ck_assert_int_eq(query_int(store, "PRAGMA user_version"), 3);
    ck_assert(sqlite3_get_autocommit(cm_store_db(store)));
    cm_store_close(store);
    g_free(path);
}
END_TEST

START_TEST(test_failed_migration_rolls_back)
{
    static const char *const broken[] = {
        "CREATE TABLE a (x INTEGER);",
        /* The first statement works, the second does not: neither stays. */
        "CREATE TABLE b (x INTEGER); INSERT INTO nosuch VALUES (1);",
    };
    GError *error = NULL;
    g_autoptr(CmStore) store = cm_store_open(NULL, CM_STORE_MEMORY, &error);

    ck_assert(!cm_store_migrate(store, broken, 2, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "no such table: nosuch") != NULL, "%s", error->message);
    ck_assert_msg(strstr(error->message, "migration 2") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    ck_assert_int_eq(query_int(store, "PRAGMA user_version"), 1);
    ck_assert(table_exists(store, "a"));
    ck_assert(!table_exists(store, "b"));
    ck_assert(sqlite3_get_autocommit(cm_store_db(store)));
}
END_TEST

START_TEST(test_rollback)
{
    GError *error = NULL;
    g_autoptr(CmStore) store = cm_store_open(NULL, CM_STORE_MEMORY, &error);
    sqlite3_stmt *stmt;

    ck_assert(cm_store_migrate(store, migrations, 3, &error));
    ck_assert(cm_store_begin(store, &error));
    cm_assert_no_error(error);
    ck_assert(cm_store_exec(store, "INSERT INTO status (client, msg) VALUES (1, 'a')", &error));
    ck_assert(cm_store_exec(store, "UPDATE client SET blocked = 1", &error));
    /* The third write of the message fails: a status for a client that
     * does not exist (foreign keys are on). */
    stmt = cm_store_stmt(store, "INSERT INTO status (client, msg) VALUES (?1, 'b')", &error);
    sqlite3_bind_int64(stmt, 1, 42);
    ck_assert(!cm_store_step_done(store, stmt, &error));
    ck_assert_msg(strstr(error->message, "FOREIGN KEY constraint failed") != NULL, "%s",
                  error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    cm_store_rollback(store);

    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM status"), 0);
    ck_assert_int_eq(query_int(store, "SELECT blocked FROM client"), 0);
    /* A second rollback, with no transaction open, is harmless. */
    cm_store_rollback(store);

    ck_assert(cm_store_begin(store, &error));
    ck_assert(cm_store_exec(store, "INSERT INTO status (client, msg) VALUES (1, 'c')", &error));
    ck_assert(cm_store_commit(store, &error));
    cm_assert_no_error(error);
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM status"), 1);

    /* COMMIT without BEGIN is an error, with SQLite's words. */
    ck_assert(!cm_store_commit(store, &error));
    ck_assert_msg(strstr(error->message, "no transaction is active") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
}
END_TEST

START_TEST(test_stmt_cache)
{
    GError *error = NULL;
    g_autoptr(CmStore) store = cm_store_open(NULL, CM_STORE_MEMORY, &error);
    sqlite3_stmt *a, *b;
    gboolean row = FALSE;

    ck_assert(cm_store_exec(store,
                            "CREATE TABLE t (x INTEGER);"
                            "INSERT INTO t VALUES (1), (2), (3);",
                            &error));
    a = cm_store_stmt(store, "SELECT x, ?1 FROM t ORDER BY x", &error);
    cm_assert_no_error(error);
    sqlite3_bind_int(a, 1, 99);
    ck_assert(cm_store_step_row(store, a, &row, &error) && row);
    ck_assert(cm_store_step_row(store, a, &row, &error) && row);
    ck_assert_int_eq(sqlite3_column_int(a, 0), 2);
    ck_assert_int_eq(sqlite3_column_int(a, 1), 99);

    /* Handed out again mid-iteration: the same statement, from the first
     * row, with the parameter unbound. */
    b = cm_store_stmt(store, "SELECT x, ?1 FROM t ORDER BY x", &error);
    ck_assert_ptr_eq(a, b);
    ck_assert(!sqlite3_stmt_busy(b));
    ck_assert(cm_store_step_row(store, b, &row, &error) && row);
    ck_assert_int_eq(sqlite3_column_int(b, 0), 1);
    ck_assert_int_eq(sqlite3_column_type(b, 1), SQLITE_NULL);

    /* Another text is another statement. */
    ck_assert_ptr_ne(a, cm_store_stmt(store, "SELECT x FROM t", &error));

    /* The cache goes by the text, not where it lies: the same text in
     * another buffer is the same statement, and a buffer that now holds
     * another text gets that text's statement. */
    {
        char buf[64];
        sqlite3_stmt *c, *d;
        g_strlcpy(buf, "SELECT x FROM t", sizeof buf);
        c = cm_store_stmt(store, buf, &error);
        ck_assert_ptr_nonnull(c);
        ck_assert_ptr_eq(c, cm_store_stmt(store, "SELECT x FROM t", &error));
        g_strlcpy(buf, "SELECT x + 1 FROM t", sizeof buf);
        d = cm_store_stmt(store, buf, &error);
        ck_assert_ptr_nonnull(d);
        ck_assert_ptr_ne(c, d);
        ck_assert_str_eq(sqlite3_sql(d), "SELECT x + 1 FROM t");
        g_strlcpy(buf, "SELECT x FROM t", sizeof buf);
        ck_assert_ptr_eq(c, cm_store_stmt(store, buf, &error));
        cm_assert_no_error(error);
    }

    /* One statement per entry, and an empty text is no statement. */
    ck_assert_ptr_null(cm_store_stmt(store, "SELECT 1; SELECT 2", &error));
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    ck_assert_ptr_null(cm_store_stmt(store, "  -- nothing\n", &error));
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    ck_assert_ptr_nonnull(cm_store_stmt(store, "SELECT 1;  \n", &error));
    cm_assert_no_error(error);
}
END_TEST

START_TEST(test_file_mode_0600)
{
    GError *error = NULL;
    char *path = g_build_filename(tmpdir, "secret.db", NULL);
    char *wal = g_strconcat(path, "-wal", NULL);
    CmStore *store;
    struct stat st;

    store = cm_store_open(path, CM_STORE_DURABLE, &error);
    cm_assert_no_error(error);
    ck_assert(cm_store_migrate(store, migrations, 3, &error));
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0600, "database mode %o", st.st_mode & 0777);
    /* The WAL holds the same secrets before a checkpoint. */
    ck_assert_int_eq(stat(wal, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0600, "WAL mode %o", st.st_mode & 0777);
    cm_store_close(store);
    g_free(wal);
    g_free(path);
}
END_TEST

START_TEST(test_wal_and_pragmas)
{
    static const struct {
        CmStoreMode mode;
        const char *name;
        int synchronous; /* 1 NORMAL, 2 FULL */
    } cases[] = {
        {CM_STORE_DURABLE, "durable.db", 2},
        {CM_STORE_FAST, "fast.db", 1},
    };
    GError *error = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *path = g_build_filename(tmpdir, cases[i].name, NULL);
        CmStore *store = cm_store_open(path, cases[i].mode, &error);
        char *journal;

        cm_assert_no_error(error);
        journal = query_text(store, "PRAGMA journal_mode");
        ck_assert_str_eq(journal, "wal");
        g_free(journal);
        ck_assert_int_eq(query_int(store, "PRAGMA synchronous"), cases[i].synchronous);
        ck_assert_int_eq(query_int(store, "PRAGMA foreign_keys"), 1);
        ck_assert_int_gt(query_int(store, "PRAGMA busy_timeout"), 0);
        cm_store_close(store);
        g_free(path);
    }
    {
        CmStore *store = cm_store_open(NULL, CM_STORE_MEMORY, &error);
        char *text;
        cm_assert_no_error(error);
        ck_assert_int_eq(query_int(store, "PRAGMA foreign_keys"), 1);
        /* a private database: it keeps its lock, and a rollback journal in
         * memory */
        text = query_text(store, "PRAGMA journal_mode");
        ck_assert_str_eq(text, "memory");
        g_free(text);
        text = query_text(store, "PRAGMA locking_mode");
        ck_assert_str_eq(text, "exclusive");
        g_free(text);
        /* and a page cache of 128 KiB, not SQLite's 2 MiB */
        ck_assert_int_eq(query_int(store, "PRAGMA cache_size"), -128);
        cm_store_close(store);
    }
}
END_TEST

START_TEST(test_errors_carry_sqlite_message)
{
    GError *error = NULL;
    g_autoptr(CmStore) store = cm_store_open(NULL, CM_STORE_MEMORY, &error);
    sqlite3_stmt *stmt;

    ck_assert(!cm_store_exec(store, "SELECT * FROM nosuch", &error));
    ck_assert_msg(strstr(error->message, "no such table: nosuch") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);

    ck_assert_ptr_null(cm_store_stmt(store, "SELEKT 1", &error));
    ck_assert_msg(strstr(error->message, "syntax error") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);

    ck_assert(cm_store_exec(store, "CREATE TABLE u (k TEXT PRIMARY KEY)", &error));
    stmt = cm_store_stmt(store, "INSERT INTO u VALUES ('x')", &error);
    ck_assert(cm_store_step_done(store, stmt, &error));
    stmt = cm_store_stmt(store, "INSERT INTO u VALUES ('x')", &error);
    ck_assert(!cm_store_step_done(store, stmt, &error));
    ck_assert_msg(strstr(error->message, "UNIQUE constraint failed: u.k") != NULL, "%s",
                  error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    /* The failed statement was reset and is usable again. */
    ck_assert(!sqlite3_stmt_busy(stmt));

    /* step_done on a statement that returns rows. */
    stmt = cm_store_stmt(store, "SELECT k FROM u", &error);
    ck_assert(!cm_store_step_done(store, stmt, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
}
END_TEST

START_TEST(test_open_errors)
{
    GError *error = NULL;
    char *missing = g_build_filename(tmpdir, "no", "such", "dir.db", NULL);
    char *garbage;
    static const char junk[] = "this is not an SQLite database, but it is long enough to look "
                               "like a header of one...............................";

    ck_assert_ptr_null(cm_store_open(missing, CM_STORE_DURABLE, &error));
    ck_assert_msg(strstr(error->message, "unable to open database file") != NULL, "%s",
                  error->message);
    ck_assert_msg(strstr(error->message, missing) != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);

    garbage = cm_test_write(tmpdir, "garbage.db", junk, sizeof junk);
    ck_assert_ptr_null(cm_store_open(garbage, CM_STORE_FAST, &error));
    ck_assert_msg(strstr(error->message, "file is not a database") != NULL, "%s", error->message);
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);

    /* A file store needs a file. */
    ck_assert_ptr_null(cm_store_open(NULL, CM_STORE_DURABLE, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    ck_assert_ptr_null(cm_store_open(":memory:", CM_STORE_FAST, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_INVALID);
    g_free(garbage);
    g_free(missing);
}
END_TEST

/* The daemons share one connection between threads under a lock: a store with a guard
 * refuses every statement while nobody holds the guard, and serves them
 * while someone does; the refusal says why and changes nothing. */
START_TEST(test_guard)
{
    GError *error = NULL;
    g_autoptr(CmStore) store = cm_store_open(NULL, CM_STORE_MEMORY, &error);
    GMutex lock;

    g_mutex_init(&lock);
    ck_assert(cm_store_exec(store, "CREATE TABLE t (x INTEGER)", &error));
    cm_store_set_guard(store, &lock);
    /* Nobody holds it: refused (and logged as critical), nothing written. */
    ck_assert_ptr_null(cm_store_stmt(store, "INSERT INTO t VALUES (1)", &error));
    ck_assert_msg(error != NULL && strstr(error->message, "without its lock") != NULL, "%s",
                  error ? error->message : "no error");
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    ck_assert(!cm_store_exec(store, "INSERT INTO t VALUES (2)", &error));
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    ck_assert(!cm_store_begin(store, &error));
    cm_assert_error(&error, CM_PROTO_ERROR_STORE);
    /* Held: served. */
    g_mutex_lock(&lock);
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM t"), 0);
    ck_assert(cm_store_exec(store, "INSERT INTO t VALUES (3)", &error));
    cm_assert_no_error(error);
    g_mutex_unlock(&lock);
    /* Lifted: one thread owns it again. */
    cm_store_set_guard(store, NULL);
    ck_assert_int_eq(query_int(store, "SELECT count(*) FROM t"), 1);
    g_mutex_clear(&lock);
}
END_TEST

static Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_memory_roundtrip);
    tcase_add_test(tc, test_migrations_once);
    tcase_add_test(tc, test_newer_database_refused);
    tcase_add_test(tc, test_failed_migration_rolls_back);
    tcase_add_test(tc, test_rollback);
    tcase_add_test(tc, test_stmt_cache);
    tcase_add_test(tc, test_guard);
    tcase_add_test(tc, test_file_mode_0600);
    tcase_add_test(tc, test_wal_and_pragmas);
    tcase_add_test(tc, test_errors_carry_sqlite_message);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(store_suite());
}
