/* collect.c - collections with query rules over discovery, inventory and
 * status data (REQ POL-01).  Membership is re-evaluated for a client each
 * time its data changes, inside the transaction that commits the data, so
 * that false inventory or a bogus status message moves a client the moment
 * it lands (REQ POL-02, MSG-04). */
#include "internal.h"

#include <string.h>

#define RULE_MAX    16
#define PROP_MAX    128
#define VALUE_MAX   1024

static const char *const source_names[] = {"discovery", "inventory", "status"};
static const char *const op_names[] = {"=", "!=", "startswith", "contains"};

static void
collection_free(gpointer p)
{
    SiteCollection *c = p;

    for (guint i = 0; c->rules != NULL && i < c->rules->len; i++) {
        CmRule *r = &g_array_index(c->rules, CmRule, i);
        g_free((char *)r->property);
        g_free((char *)r->value);
    }
    if (c->rules != NULL)
        g_array_unref(c->rules);
    g_free(c->name);
    g_free(c);
}

void
cm_site_collections_free(CmSite *site)
{
    g_clear_pointer(&site->collections, g_ptr_array_unref);
}

gboolean
cm_site_collections_load(CmSite *site, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gboolean row = TRUE;

    cm_site_collections_free(site);
    site->collections = g_ptr_array_new_with_free_func(collection_free);
    st = SITE_STMT(site, "SELECT id, name FROM collections ORDER BY id", &cause);
    if (st == NULL)
        goto fail;
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        SiteCollection *c = g_new0(SiteCollection, 1);
        c->id = sqlite3_column_int64(st, 0);
        c->name = g_strdup((const char *)sqlite3_column_text(st, 1));
        c->rules = g_array_new(FALSE, TRUE, sizeof(CmRule));
        g_ptr_array_add(site->collections, c);
    }
    if (cause != NULL)
        goto fail;
    st = SITE_STMT(site, "SELECT collection_id, source, property, op, value FROM rules ORDER BY id",
                   &cause);
    if (st == NULL)
        goto fail;
    row = TRUE;
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        gint64 id = sqlite3_column_int64(st, 0);
        for (guint i = 0; i < site->collections->len; i++) {
            SiteCollection *c = g_ptr_array_index(site->collections, i);
            if (c->id == id) {
                CmRule r = {.source = (CmRuleSource)sqlite3_column_int(st, 1),
                            .property = g_strdup((const char *)sqlite3_column_text(st, 2)),
                            .op = (CmRuleOp)sqlite3_column_int(st, 3),
                            .value = g_strdup((const char *)sqlite3_column_text(st, 4))};
                g_array_append_val(c->rules, r);
            }
        }
    }
    if (cause != NULL)
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

gboolean
cm_rule_parse(const char *text, CmRuleSource *source, char **property, CmRuleOp *op, char **value,
              GError **error)
{
    g_auto(GStrv) words = NULL;
    const char *dot;
    size_t i;

    /* "<source>.<property> <op> <value...>", e.g. "inventory.os.caption = Windows 11" */
    words = text ? g_strsplit(text, " ", 3) : NULL;
    if (words == NULL || g_strv_length(words) != 3 || (dot = strchr(words[0], '.')) == NULL)
        goto bad;
    for (i = 0; i < G_N_ELEMENTS(source_names); i++)
        if (strncmp(words[0], source_names[i], (size_t)(dot - words[0])) == 0 &&
            strlen(source_names[i]) == (size_t)(dot - words[0]))
            break;
    if (i == G_N_ELEMENTS(source_names))
        goto bad;
    *source = (CmRuleSource)i;
    for (i = 0; i < G_N_ELEMENTS(op_names); i++)
        if (strcmp(words[1], op_names[i]) == 0)
            break;
    if (i == G_N_ELEMENTS(op_names) || dot[1] == '\0' || strlen(dot + 1) > PROP_MAX ||
        strlen(words[2]) > VALUE_MAX)
        goto bad;
    *op = (CmRuleOp)i;
    *property = g_strdup(dot + 1);
    *value = g_strdup(words[2]);
    return TRUE;
bad:
    g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                "collection rule \"%s\": expected \"<discovery|inventory|status>.<property> "
                "<=|!=|startswith|contains> <value>\"",
                text ? text : "");
    return FALSE;
}

static gboolean
value_matches(CmRuleOp op, const char *have, const char *want)
{
    switch (op) {
    case CM_OP_EQ:
        return g_ascii_strcasecmp(have, want) == 0;
    case CM_OP_NE:
        return g_ascii_strcasecmp(have, want) != 0;
    case CM_OP_PREFIX:
        return g_ascii_strncasecmp(have, want, strlen(want)) == 0;
    case CM_OP_CONTAINS:
    default: {
        g_autofree char *h = g_ascii_strdown(have, -1);
        g_autofree char *w = g_ascii_strdown(want, -1);
        return strstr(h, w) != NULL;
    }
    }
}

/* The client's properties for a source: discovery and inventory rows (by
 * its key), or for status, "component", "message_id" and "severity" of
 * every status message it (or someone claiming to be it) sent (by its
 * SMSID). */
static GPtrArray *
client_values(CmSite *site, const char *smsid, gint64 key, CmRuleSource source,
              const char *property, GError **error)
{
    GError *cause = NULL;
    GPtrArray *values = g_ptr_array_new_with_free_func(g_free);
    sqlite3_stmt *st;
    gboolean row = TRUE;

    if (source == CM_RULE_STATUS) {
        const char *sql;
        if (strcmp(property, "message_id") == 0)
            sql = "SELECT DISTINCT CAST(message_id AS TEXT) FROM status_messages WHERE smsid = ?";
        else if (strcmp(property, "component") == 0)
            sql = "SELECT DISTINCT component FROM status_messages WHERE smsid = ?";
        else if (strcmp(property, "severity") == 0)
            sql = "SELECT DISTINCT severity FROM status_messages WHERE smsid = ?";
        else
            return values; /* no such status property: nothing matches */
        st = SITE_STMT(site, sql, &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    } else {
        st = SITE_STMT(site,
                       source == CM_RULE_INVENTORY
                           ? "SELECT value FROM inventory WHERE client = ? AND property = ?"
                           : "SELECT value FROM discovery WHERE client = ? AND property = ?",
                       &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_int64(st, 1, key);
        sqlite3_bind_text(st, 2, property, -1, SQLITE_STATIC);
    }
    while (cm_store_step_row(site->store, st, &row, &cause) && row)
        g_ptr_array_add(values, g_strdup((const char *)sqlite3_column_text(st, 0)));
    if (cause != NULL)
        goto fail;
    return values;
fail:
    g_ptr_array_unref(values);
    cm_site_store_error(error, cause);
    return NULL;
}

static gboolean
rule_holds(CmSite *site, const char *smsid, gint64 key, const CmRule *rule, gboolean *holds,
           GError **error)
{
    g_autoptr(GPtrArray) values =
        client_values(site, smsid, key, rule->source, rule->property, error);

    if (values == NULL)
        return FALSE;
    *holds = FALSE;
    for (guint i = 0; i < values->len && !*holds; i++)
        *holds = value_matches(rule->op, g_ptr_array_index(values, i), rule->value);
    return TRUE;
}

static gboolean
set_member(CmSite *site, gint64 collection, gint64 key, gboolean member, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st =
        SITE_STMT(site,
                  member ? "INSERT OR IGNORE INTO members(collection_id, client)"
                           " VALUES (?, ?)"
                         : "DELETE FROM members WHERE collection_id = ? AND client = ?",
                  &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, collection);
    sqlite3_bind_int64(st, 2, key);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
evaluate(CmSite *site, const char *smsid, gint64 key, CmClientState state,
         gboolean with_all_systems, GError **error)
{
    /* Only approved clients are members: pending and blocked ones receive
     * no policy. */
    gboolean approved = state == CM_CLIENT_APPROVED;

    for (guint i = 0; i < site->collections->len; i++) {
        SiteCollection *c = g_ptr_array_index(site->collections, i);
        gboolean member = approved;
        if (c->id == CM_COLLECTION_ALL_SYSTEMS && !with_all_systems)
            continue;
        /* All Systems has no rules; every other collection needs at least
         * one, and all of them hold (rules are ANDed). */
        if (c->id != CM_COLLECTION_ALL_SYSTEMS && c->rules->len == 0)
            member = FALSE;
        for (guint r = 0; member && r < c->rules->len; r++)
            if (!rule_holds(site, smsid, key, &g_array_index(c->rules, CmRule, r), &member, error))
                return FALSE;
        if (!set_member(site, c->id, key, member, error))
            return FALSE;
    }
    return TRUE;
}

gboolean
cm_site_collections_evaluate(CmSite *site, const char *smsid, gint64 key, CmClientState state,
                             GError **error)
{
    return evaluate(site, smsid, key, state, TRUE, error);
}

gboolean
cm_site_collections_evaluate_rules(CmSite *site, const char *smsid, gint64 key, GError **error)
{
    /* All Systems holds every approved client from the moment it is
     * approved (registration, approval and a new record evaluate it) until
     * it is blocked; the client's data has no part in it. */
    return evaluate(site, smsid, key, CM_CLIENT_APPROVED, FALSE, error);
}

gint64
cm_site_admin_create_collection(CmSite *site, const char *name, const CmRule *rules,
                                size_t n_rules, const char *admin, CmTime now, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st;
    gint64 id;
    g_autoptr(GString) detail = g_string_new(NULL);
    g_autoptr(GPtrArray) clients = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) keys = g_array_new(FALSE, FALSE, sizeof(gint64));
    gboolean row = TRUE;

    if (name == NULL || *name == '\0' || strlen(name) > 128 || n_rules == 0 ||
        n_rules > RULE_MAX) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a collection needs a name (1 to 128 characters) and 1 to %d rules", RULE_MAX);
        return -1;
    }
    for (size_t i = 0; i < n_rules; i++) {
        if ((unsigned)rules[i].source > CM_RULE_STATUS || (unsigned)rules[i].op > CM_OP_CONTAINS ||
            rules[i].property == NULL || rules[i].value == NULL ||
            strlen(rules[i].property) > PROP_MAX || strlen(rules[i].value) > VALUE_MAX) {
            g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                        "collection \"%s\": rule %zu is malformed", name, i + 1);
            return -1;
        }
        g_string_append_printf(detail, "%s%s.%s %s %s", i ? "; " : "",
                               source_names[rules[i].source], rules[i].property,
                               op_names[rules[i].op], rules[i].value);
    }
    if (!cm_site_authorize(site, admin, CM_ADMIN_COLLECTIONS, 0, now, error)) /* rbac.c */
        return -1;
    if (!cm_store_begin(site->store, &cause))
        goto store_fail;
    st = SITE_STMT(site, "INSERT INTO collections(name, created) VALUES (?, ?)", &cause);
    if (st == NULL)
        goto store_fail_tx;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail_tx;
    id = cm_store_last_rowid(site->store);
    for (size_t i = 0; i < n_rules; i++) {
        st = SITE_STMT(site,
                       "INSERT INTO rules(collection_id, source, property, op, value)"
                       " VALUES (?,?,?,?,?)",
                       &cause);
        if (st == NULL)
            goto store_fail_tx;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, rules[i].source);
        sqlite3_bind_text(st, 3, rules[i].property, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, rules[i].op);
        sqlite3_bind_text(st, 5, rules[i].value, -1, SQLITE_STATIC);
        if (!cm_store_step_done(site->store, st, &cause))
            goto store_fail_tx;
    }
    if (!cm_site_audit(site, admin, "create-collection", name, detail->str, now, error) ||
        !cm_site_collections_load(site, error))
        goto fail_tx;
    /* Evaluate the new collection for every approved client. */
    st = SITE_STMT(
        site, "SELECT smsid, coalesce(first_id, id) FROM clients WHERE obsolete = 0 AND state = ?",
        &cause);
    if (st == NULL)
        goto store_fail_tx;
    sqlite3_bind_int(st, 1, CM_CLIENT_APPROVED);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        gint64 key = sqlite3_column_int64(st, 1);
        g_ptr_array_add(clients, g_strdup((const char *)sqlite3_column_text(st, 0)));
        g_array_append_val(keys, key);
    }
    if (cause != NULL)
        goto store_fail_tx;
    for (guint i = 0; i < clients->len; i++)
        if (!cm_site_collections_evaluate(site, g_ptr_array_index(clients, i),
                                          g_array_index(keys, gint64, i), CM_CLIENT_APPROVED,
                                          error))
            goto fail_tx;
    if (!cm_store_commit(site->store, &cause))
        goto store_fail_tx;
    return id;
store_fail_tx:
    cm_site_store_error(error, cause);
fail_tx:
    cm_store_rollback(site->store);
    /* The in-memory list may hold the rolled-back collection. */
    (void)cm_site_collections_load(site, NULL);
    return -1;
store_fail:
    cm_site_store_error(error, cause);
    return -1;
}

gboolean
cm_site_in_collection(CmSite *site, gint64 collection, const char *smsid)
{
    sqlite3_stmt *st = SITE_STMT(site,
                                 "SELECT 1 FROM members WHERE collection_id = ? AND client ="
                                 " (SELECT coalesce(first_id, id) FROM clients"
                                 " WHERE smsid = ? AND obsolete = 0)",
                                 NULL);
    gboolean row = FALSE;

    if (st == NULL)
        return FALSE;
    sqlite3_bind_int64(st, 1, collection);
    sqlite3_bind_text(st, 2, smsid, -1, SQLITE_STATIC);
    if (cm_store_step_row(site->store, st, &row, NULL) && row)
        sqlite3_reset(st);
    return row;
}

gint64
cm_site_collection_size(CmSite *site, gint64 collection)
{
    sqlite3_stmt *st = SITE_STMT(site, "SELECT count(*) FROM members WHERE collection_id = ?", NULL);
    gboolean row = FALSE;
    gint64 n = -1;

    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, collection);
    if (cm_store_step_row(site->store, st, &row, NULL) && row) {
        n = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    return n;
}

gint64
cm_site_collection_id(CmSite *site, const char *name)
{
    for (guint i = 0; name != NULL && i < site->collections->len; i++) {
        SiteCollection *c = g_ptr_array_index(site->collections, i);
        if (g_ascii_strcasecmp(c->name, name) == 0)
            return c->id;
    }
    return -1;
}
