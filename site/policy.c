/* policy.c - deployments to collections and the policies they make, each
 * signed with the site server signing certificate (REQ TRUST-08).  A policy
 * names its collection, never a client: a signed policy replayed to another
 * client still verifies, the residual risk of REQ POL-03. */
#include "internal.h"

#include <string.h>

char *
cm_site_admin_deploy(CmSite *site, gint64 collection, const CmDeployment *dep, const char *admin,
                     CmTime now, GError **error)
{
    GError *cause = NULL;
    g_autoptr(json_t) policy = NULL;
    g_autofree char *policy_id = NULL, *bytes = NULL, *hash_hex = NULL, *content_hex = NULL;
    g_autoptr(GBytes) sig = NULL;
    guint8 hash[32];
    sqlite3_stmt *st;
    gint64 n = 0;
    gboolean row = FALSE, found = FALSE;

    if (dep == NULL || dep->name == NULL || *dep->name == '\0' || strlen(dep->name) > 128 ||
        dep->content_id == NULL || *dep->content_id == '\0' || strlen(dep->content_id) > 128 ||
        dep->content_hash == NULL || dep->content_size < 0 || dep->max_runtime_s < 0) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "a deployment needs a name, a content ID and the content's SHA-256");
        return NULL;
    }
    for (guint i = 0; i < site->collections->len; i++)
        found |= ((SiteCollection *)g_ptr_array_index(site->collections, i))->id == collection;
    if (!found) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_NOT_FOUND, "no collection %" G_GINT64_FORMAT,
                    collection);
        return NULL;
    }
    if (!cm_site_authorize_object(site, admin, CM_ADMIN_DEPLOY, "content", dep->content_id,
                                  collection, now, error)) /* rbac.c */
        return NULL;
    if (!cm_store_begin(site->store, &cause))
        goto store_fail;
    st = SITE_STMT(site, "SELECT count(*) FROM policies", &cause);
    if (st == NULL || !cm_store_step_row(site->store, st, &row, &cause))
        goto store_fail_tx;
    n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    /* Policy IDs read like the product's package IDs: site code + number. */
    policy_id = g_strdup_printf("%s%05" G_GINT64_FORMAT, site->code, n + 1);
    content_hex = cm_enc_hex(dep->content_hash, 32);
    policy = json_pack("{s:s, s:i, s:s, s:I, s:s, s:I, s:{s:s, s:s, s:I}, s:b, s:I, s:I}",
                       "policy_id", policy_id, "version", 1, "site_code", site->code,
                       "collection_id", (json_int_t)collection, "deployment", dep->name, "issued",
                       (json_int_t)(now / CM_USEC_PER_SEC), "content", "id", dep->content_id,
                       "hash", content_hex, "size", (json_int_t)dep->content_size, "required",
                       dep->required, "deadline", (json_int_t)(dep->deadline / CM_USEC_PER_SEC),
                       "max_runtime_s", (json_int_t)dep->max_runtime_s);
    if (policy == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID,
                    "deployment fields are not valid UTF-8");
        goto fail_tx;
    }
    if (dep->settings != NULL)
        json_object_set(policy, "settings", dep->settings);
    bytes = cm_json_dump(policy);
    cm_hash(CM_HASH_SHA256, bytes, strlen(bytes), hash);
    hash_hex = cm_enc_hex(hash, sizeof hash);
    sig = cm_sig_sign(site->signing_key, CM_HASH_SHA256, bytes, strlen(bytes), &cause);
    if (sig == NULL) {
        g_set_error(error, CM_SITE_ERROR, CM_SITE_ERROR_INVALID, "cannot sign policy: %s",
                    cause->message);
        g_clear_error(&cause);
        goto fail_tx;
    }
    st = SITE_STMT(site,
                   "INSERT INTO policies(policy_id, version, collection_id, body, signature, hash,"
                   " created) VALUES (?,?,?,?,?,?,?)",
                   &cause);
    if (st == NULL)
        goto store_fail_tx;
    sqlite3_bind_text(st, 1, policy_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, 1);
    sqlite3_bind_int64(st, 3, collection);
    sqlite3_bind_blob(st, 4, bytes, (int)strlen(bytes), SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, g_bytes_get_data(sig, NULL), (int)g_bytes_get_size(sig),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 6, hash_hex, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail_tx;
    st = SITE_STMT(site,
                   "INSERT INTO deployments(name, collection_id, policy_id, created) VALUES (?,?,?,?)",
                   &cause);
    if (st == NULL)
        goto store_fail_tx;
    sqlite3_bind_text(st, 1, dep->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, collection);
    sqlite3_bind_text(st, 3, policy_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    if (!cm_store_step_done(site->store, st, &cause))
        goto store_fail_tx;
    if (!cm_site_audit(site, admin, "deploy", policy_id, dep->name, now, error))
        goto fail_tx;
    if (!cm_store_commit(site->store, &cause))
        goto store_fail_tx;
    return g_steal_pointer(&policy_id);
store_fail_tx:
    cm_site_store_error(error, cause);
fail_tx:
    cm_store_rollback(site->store);
    return NULL;
store_fail:
    cm_site_store_error(error, cause);
    return NULL;
}

/* Orders assignment entries by policy ID, as SQLite's BINARY collation
 * would (byte by byte). */
static gint
assignment_cmp(gconstpointer a, gconstpointer b)
{
    const char *pa = json_string_value(json_object_get(*(json_t *const *)a, "policy_id"));
    const char *pb = json_string_value(json_object_get(*(json_t *const *)b, "policy_id"));

    return strcmp(pa, pb);
}

void
cm_site_handle_assignments(CmSite *site, gint64 key, CmResponse *resp)
{
    GError *cause = NULL;
    /* One row per (membership, deployment): the policies come out once each
     * and in order after the sort below.  DISTINCT and ORDER BY in SQL
     * would build two temporary B-trees for the one or two rows a client
     * has, which cost more than the join. */
    sqlite3_stmt *st = SITE_STMT(site,
                                 "SELECT p.policy_id, p.version, p.hash FROM members m"
                                 " JOIN deployments d ON d.collection_id = m.collection_id"
                                 " JOIN policies p ON p.policy_id = d.policy_id"
                                 " WHERE m.client = ?",
                                 &cause);
    g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    g_autoptr(json_t) list = json_array();
    gboolean row = TRUE;

    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, key);
    while (cm_store_step_row(site->store, st, &row, &cause) && row) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        gboolean seen = FALSE;
        /* policy_id is the policies' key: a repeat is the same entry. */
        for (guint i = 0; i < entries->len && !seen; i++)
            seen = strcmp(json_string_value(json_object_get(entries->pdata[i], "policy_id")),
                          id) == 0;
        if (!seen)
            g_ptr_array_add(entries, json_pack("{s:s, s:i, s:s}", "policy_id", id, "version",
                                               sqlite3_column_int(st, 1), "hash",
                                               (const char *)sqlite3_column_text(st, 2)));
    }
    if (cause != NULL)
        goto fail;
    g_ptr_array_sort(entries, assignment_cmp);
    for (guint i = 0; i < entries->len; i++)
        json_array_append(list, entries->pdata[i]);
    {
        g_autoptr(json_t) obj = json_pack("{s:O}", "assignments", list);
        cm_response_ok(resp, obj);
    }
    return;
fail:
    cm_response_refuse(resp, CM_REASON_INTERNAL, "policy assignments: %s", cause->message);
    g_error_free(cause);
}

/* The policybody answer from a row of (version, body, signature): the
 * policy bytes as sent and the site signing certificate's signature. */
static json_t *
policy_answer(const char *policy_id, sqlite3_stmt *st)
{
    g_autofree char *b64 =
        cm_enc_b64(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
    g_autofree char *sig = cm_msg_format_signature(CM_HASH_SHA256, sqlite3_column_blob(st, 2),
                                                   (size_t)sqlite3_column_bytes(st, 2));

    return json_pack("{s:s, s:i, s:s, s:s}", "policy_id", policy_id, "version",
                     sqlite3_column_int(st, 0), "policy", b64, "signature", sig);
}

/* A policybody answer kept written: policies never change once made, but
 * the row it was made from is compared each time all the same. */
typedef struct {
    int version;
    GBytes *policy;
    GBytes *signature;
    GBytes *answer;
} SitePolicyAnswer;

void
cm_site_policy_answer_free(gpointer p)
{
    SitePolicyAnswer *a = p;

    g_bytes_unref(a->policy);
    g_bytes_unref(a->signature);
    if (a->answer != NULL)
        g_bytes_unref(a->answer);
    g_free(a);
}

static gboolean
bytes_equal_blob(GBytes *b, const void *blob, int len)
{
    gsize n;
    const void *d = g_bytes_get_data(b, &n);

    return len >= 0 && n == (gsize)len && (n == 0 || memcmp(d, blob, n) == 0);
}

/* The answer for the row st holds (version, body, signature), written once
 * per policy; borrowed from the site's cache.  NULL when it cannot be
 * written, as cm_response_ok would give no body. */
static GBytes *
policy_answer_bytes(CmSite *site, const char *policy_id, sqlite3_stmt *st)
{
    SitePolicyAnswer *a = g_hash_table_lookup(site->policy_answers, policy_id);
    const void *body = sqlite3_column_blob(st, 1);
    int body_len = sqlite3_column_bytes(st, 1);
    const void *sig = sqlite3_column_blob(st, 2);
    int sig_len = sqlite3_column_bytes(st, 2);
    g_autoptr(json_t) obj = NULL;
    char *json;

    if (a != NULL && a->version == sqlite3_column_int(st, 0) &&
        bytes_equal_blob(a->policy, body, body_len) &&
        bytes_equal_blob(a->signature, sig, sig_len))
        return a->answer;
    a = g_new0(SitePolicyAnswer, 1);
    a->version = sqlite3_column_int(st, 0);
    a->policy = g_bytes_new(body, (gsize)MAX(body_len, 0));
    a->signature = g_bytes_new(sig, (gsize)MAX(sig_len, 0));
    obj = policy_answer(policy_id, st);
    json = cm_json_dump(obj);
    a->answer = json != NULL ? g_bytes_new_take(json, strlen(json)) : NULL;
    g_hash_table_replace(site->policy_answers, g_strdup(policy_id), a);
    return a->answer;
}

void
cm_site_handle_policy_body(CmSite *site, const json_t *body, gint64 key, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    const char *policy_id = cm_json_str(body, "policy_id", 32, &e);
    const char *smsid = cm_json_str(body, "smsid", CM_ID_SMSID_LEN, &e);
    sqlite3_stmt *st;
    gboolean row = FALSE;

    if (policy_id == NULL || smsid == NULL) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "policy body: %s", e->message);
        return;
    }
    /* Only a policy assigned to the asking client is served. */
    st = SITE_STMT(site,
                   "SELECT p.version, p.body, p.signature FROM policies p"
                   " JOIN deployments d ON d.policy_id = p.policy_id"
                   " JOIN members m ON m.collection_id = d.collection_id"
                   " WHERE p.policy_id = ? AND m.client = ? LIMIT 1",
                   &e);
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, policy_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, key); /* the body's smsid is the signer's (handle.c) */
    if (!cm_store_step_row(site->store, st, &row, &e))
        goto fail;
    if (!row) {
        cm_response_refuse(resp, CM_REASON_NOT_FOUND, "no policy %s assigned to %s", policy_id,
                           smsid);
        return;
    }
    cm_response_ok_bytes(resp, policy_answer_bytes(site, policy_id, st));
    sqlite3_reset(st);
    return;
fail:
    cm_response_refuse(resp, CM_REASON_INTERNAL, "policy body: %s", e ? e->message : "");
}

char *
cm_site_policy_id(CmSite *site, const char *deployment)
{
    sqlite3_stmt *st = SITE_STMT(site, "SELECT policy_id FROM deployments WHERE name = ?", NULL);
    gboolean row = FALSE;
    char *id = NULL;

    if (st == NULL || deployment == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, deployment, -1, SQLITE_STATIC);
    if (cm_store_step_row(site->store, st, &row, NULL) && row) {
        id = g_strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
    }
    return id;
}

json_t *
cm_site_policy_capture(CmSite *site, const char *policy_id)
{
    sqlite3_stmt *st = SITE_STMT(
        site, "SELECT version, body, signature FROM policies WHERE policy_id = ?", NULL);
    gboolean row = FALSE;
    json_t *obj = NULL;

    if (st == NULL || policy_id == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, policy_id, -1, SQLITE_STATIC);
    if (cm_store_step_row(site->store, st, &row, NULL) && row) {
        obj = policy_answer(policy_id, st);
        sqlite3_reset(st);
    }
    return obj;
}
