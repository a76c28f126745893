/* handle.c - client requests the management points forward to the site:
 * who is asking (signature against the registered key, blocked or not,
 * approved or not), then what the message carries, committed before the
 * answer.  Also the maintenance tasks that age that data out. */
#include "internal.h"

#include <string.h>

#define PROPERTIES_MAX 512
#define PROPERTY_NAME_MAX 128
#define PROPERTY_VALUE_MAX 1024
#define STATES_MAX 100
#define CHECKS_MAX 64

static void
refuse_from(CmResponse *resp, const GError *e, const char *what)
{
    cm_response_refuse(resp, cm_reason_from_error(e), "%s: %s", what, e ? e->message : "");
}

/* Who is asking: a registered, unblocked client whose signature verifies.
 * Sets *state, *id (its live record) and *key (CmClientInfo.key); refuses
 * into resp and returns FALSE otherwise. */
static gboolean
authenticate(CmSite *site, const CmRequest *req, CmTime now, CmClientState *state, gint64 *id,
             gint64 *key, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    CmClientState client_state;
    CmCert *cert;

    if (!cm_id_smsid_check(req->smsid, &e)) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "%s header: %s", CM_HDR_CLIENT_ID,
                           e->message);
        return FALSE;
    }
    if (!cm_site_client_state(site, req->smsid, &client_state, id, key)) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_CLIENT,
                           "%s is not registered with site %s: register first", req->smsid,
                           site->code);
        return FALSE;
    }
    if (client_state == CM_CLIENT_BLOCKED) {
        cm_response_refuse(resp, CM_REASON_BLOCKED, "client %s is blocked", req->smsid);
        return FALSE;
    }
    if (!req->signed_) {
        if (site->settings.require_signing) {
            cm_response_refuse(resp, CM_REASON_UNSIGNED,
                               "site %s requires clients to sign what they send", site->code);
            return FALSE;
        }
    } else {
        if (!cm_hash_alg_allowed(req->sig_hash, site->settings.require_sha256, &e)) {
            cm_response_refuse(resp, CM_REASON_SHA1_REFUSED, "%s", e->message);
            return FALSE;
        }
        cert = cm_site_client_cert(site, req->smsid);
        if (cert == NULL) {
            cm_response_refuse(resp, CM_REASON_INTERNAL, "the certificate of %s cannot be read",
                               req->smsid);
            return FALSE;
        }
        if (!cm_cert_check_time(cert, now, &e)) {
            cm_response_refuse(resp, CM_REASON_CERT_EXPIRED, "%s", e->message);
            return FALSE;
        }
        site->counters.signature_checks++;
        if (!cm_sig_verify(cm_cert_public_key(cert), req->sig_hash, req->body, req->body_len,
                           req->sig, req->sig_len, &e)) {
            cm_response_refuse(resp, CM_REASON_BAD_SIGNATURE, "message from %s: %s", req->smsid,
                               e->message);
            return FALSE;
        }
    }
    *state = client_state;
    return TRUE;
}

/* The payload of an inventory-like message: the plain object under key, or
 * the decrypted envelope's (REQ MSG-02); with key NULL, the whole decrypted
 * object (encrypted-only messages).  New reference or NULL with resp. */
static json_t *
message_payload(CmSite *site, const json_t *body, const char *key, size_t max_plain,
                gboolean encrypted_only, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autoptr(GBytes) env = NULL, plain = NULL;
    const json_t *field;
    json_t *inner;
    CmCipher cipher;

    const char *what = key ? key : "client status";

    if (json_object_get(body, "encrypted") == NULL) {
        if (encrypted_only || site->settings.encrypt || key == NULL) {
            cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                               "site %s requires %s to be encrypted to the site", site->code, what);
            return NULL;
        }
        field = cm_json_object(body, key, &e);
        if (field == NULL) {
            refuse_from(resp, e, key);
            return NULL;
        }
        return json_incref((json_t *)field);
    }
    env = cm_json_b64(body, "encrypted", CM_CMS_MAX_DER, &e);
    if (env == NULL) {
        refuse_from(resp, e, what);
        return NULL;
    }
    site->counters.decryptions++;
    plain = cm_cms_decrypt(site->enc_cert, site->enc_key, g_bytes_get_data(env, NULL),
                           g_bytes_get_size(env), max_plain, &cipher, &e);
    if (plain == NULL) {
        refuse_from(resp, e, what);
        return NULL;
    }
    if (cipher == CM_CIPHER_3DES_CBC && !site->settings.allow_3des) {
        cm_response_refuse(resp, CM_REASON_FORBIDDEN,
                           "3DES envelopes are refused: the site does not allow the legacy cipher");
        return NULL;
    }
    inner = cm_json_parse(g_bytes_get_data(plain, NULL), g_bytes_get_size(plain), max_plain, &e);
    if (inner == NULL) {
        refuse_from(resp, e, what);
        return NULL;
    }
    if (key == NULL)
        return inner;
    field = cm_json_object(inner, key, &e);
    if (field == NULL) {
        json_decref(inner);
        refuse_from(resp, e, key);
        return NULL;
    }
    json_incref((json_t *)field);
    json_decref(inner);
    return (json_t *)field;
}

/* Replaces the client's rows of table (inventory or discovery) with props. */
static gboolean
store_properties(CmSite *site, const char *table, gint64 key, const json_t *props, CmTime now,
                 CmResponse *resp, GError **error)
{
    GError *cause = NULL;
    gboolean inv = strcmp(table, "inventory") == 0;
    const char *del =
        inv ? "DELETE FROM inventory WHERE client = ?" : "DELETE FROM discovery WHERE client = ?";
    const char *ins =
        inv ? "INSERT INTO inventory(client, property, value, updated) VALUES (?,?,?,?)"
            : "INSERT INTO discovery(client, property, value, updated) VALUES (?,?,?,?)";
    sqlite3_stmt *st;
    const char *k;
    json_t *v;

    if (json_object_size(props) > PROPERTIES_MAX) {
        cm_response_refuse(resp, CM_REASON_TOO_LARGE, "%s: at most %d properties", table,
                           PROPERTIES_MAX);
        return TRUE;
    }
    /* Validate everything before writing anything. */
    json_object_foreach((json_t *)props, k, v)
    {
        if (strlen(k) == 0 || strlen(k) > PROPERTY_NAME_MAX || !json_is_string(v) ||
            json_string_length(v) > PROPERTY_VALUE_MAX) {
            cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                               "%s: property \"%.64s\" must have a name of 1 to %d bytes and a "
                               "string value of at most %d bytes",
                               table, k, PROPERTY_NAME_MAX, PROPERTY_VALUE_MAX);
            return TRUE;
        }
    }
    st = SITE_STMT(site, del, &cause);
    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, key);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    json_object_foreach((json_t *)props, k, v)
    {
        st = SITE_STMT(site, ins, &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_int64(st, 1, key);
        sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, json_string_value(v), (int)json_string_length(v), SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
store_states(CmSite *site, gint64 key, const json_t *body, CmTime now, CmResponse *resp,
             GError **error)
{
    GError *cause = NULL;
    g_autoptr(GError) e = NULL;
    const json_t *states = cm_json_array(body, "states", STATES_MAX, &e);
    size_t i;
    json_t *s;

    if (states == NULL) {
        refuse_from(resp, e, "state messages");
        return TRUE;
    }
    json_array_foreach(states, i, s)
    {
        gint64 state, t;
        const char *topic;
        if (!json_is_object(s) || (topic = cm_json_str(s, "topic", 128, &e)) == NULL ||
            !cm_json_int(s, "state", 0, G_MAXINT32, &state, &e) ||
            !cm_json_int(s, "time", 0, G_MAXINT64 / CM_USEC_PER_SEC, &t, &e)) {
            cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "state message %zu: %s", i,
                               e ? e->message : "not an object");
            return TRUE;
        }
    }
    json_array_foreach(states, i, s)
    {
        sqlite3_stmt *st = SITE_STMT(
            site,
            "INSERT INTO state_messages(client, topic, state, time, received) VALUES (?,?,?,?,?)",
            &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_int64(st, 1, key);
        sqlite3_bind_text(st, 2, json_string_value(json_object_get(s, "topic")), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(s, "state")));
        sqlite3_bind_int64(st, 4, json_integer_value(json_object_get(s, "time")));
        sqlite3_bind_int64(st, 5, now);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
store_checks(CmSite *site, gint64 key, const json_t *checks, CmTime now, CmResponse *resp,
             GError **error)
{
    GError *cause = NULL;
    size_t i;
    json_t *c;

    if (!json_is_array(checks) || json_array_size(checks) > CHECKS_MAX) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "client status: \"checks\" must be an array of at most %d", CHECKS_MAX);
        return TRUE;
    }
    json_array_foreach(checks, i, c)
    {
        g_autoptr(GError) e = NULL;
        if (!json_is_object(c) || cm_json_str(c, "name", 64, &e) == NULL ||
            cm_json_str(c, "result", 64, &e) == NULL) {
            cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "client status check %zu: %s", i,
                               e ? e->message : "not an object");
            return TRUE;
        }
    }
    json_array_foreach(checks, i, c)
    {
        sqlite3_stmt *st = SITE_STMT(
            site,
            "INSERT INTO client_status(client, check_name, result, received) VALUES (?,?,?,?)",
            &cause);
        if (st == NULL)
            goto fail;
        sqlite3_bind_int64(st, 1, key);
        sqlite3_bind_text(st, 2, json_string_value(json_object_get(c, "name")), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, json_string_value(json_object_get(c, "result")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        if (!cm_store_step_done(site->store, st, &cause))
            goto fail;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Status messages carry no authentication (REQ MSG-03): whatever SMSID a
 * sender names is recorded as named, and collections built on status
 * queries believe it (REQ MSG-04). */
static void
handle_status(CmSite *site, const json_t *body, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    const char *smsid, *component, *severity, *text;
    gint64 message_id;
    sqlite3_stmt *st;
    CmClientState known_state;
    gint64 known_key = 0;
    gboolean known;

    if ((smsid = cm_json_opt_str(body, "smsid", CM_ID_SMSID_LEN, &e), e != NULL) ||
        (smsid != NULL && !cm_id_smsid_check(smsid, &e)) ||
        (component = cm_json_str(body, "component", 64, &e)) == NULL ||
        !cm_json_int(body, "message_id", 0, 99999, &message_id, &e) ||
        (severity = cm_json_str(body, "severity", 16, &e)) == NULL ||
        (text = cm_json_str(body, "text", 1024, &e)) == NULL) {
        refuse_from(resp, e, "status message");
        return;
    }
    if (strcmp(severity, "info") != 0 && strcmp(severity, "warning") != 0 &&
        strcmp(severity, "error") != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "status message: severity must be info, warning or error");
        return;
    }
    if (!cm_store_begin(site->store, &e))
        goto fail;
    st = SITE_STMT(site,
                   "INSERT INTO status_messages(smsid, component, message_id, severity, text,"
                   " received, via) VALUES (?,?,?,?,?,?,?)",
                   &e);
    if (st == NULL)
        goto fail_tx;
    if (smsid != NULL)
        sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, component, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, message_id);
    sqlite3_bind_text(st, 4, severity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_text(st, 7, "mp", -1, SQLITE_STATIC);
    if (!cm_store_step_done(site->store, st, &e))
        goto fail_tx;
    known = smsid != NULL && cm_site_client_state(site, smsid, &known_state, NULL, &known_key);
    if (known && !cm_site_collections_evaluate(site, smsid, known_key, known_state, &e))
        goto fail_tx;
    if (!cm_store_commit(site->store, &e))
        goto fail_tx;
    site->counters.status_messages++;
    cm_response_ok_const(resp, CM_REPLY_ACCEPTED);
    return;
fail_tx:
    cm_store_rollback(site->store);
fail:
    cm_response_refuse(resp, CM_REASON_INTERNAL, "status message not recorded: %s",
                       e ? e->message : "");
}

/* A message from an authenticated, approved client: id is its live
 * record, key what its data rows name it by (CmClientInfo.key). */
static void
handle_message(CmSite *site, const CmRequest *req, gint64 id, gint64 key, const json_t *body,
               CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autoptr(json_t) payload = NULL;
    const char *smsid = req->smsid;
    gboolean ok = TRUE, reevaluate = FALSE;

    switch (req->ep) {
    case CM_EP_INVENTORY:
    case CM_EP_DISCOVERY:
        payload =
            message_payload(site, body, req->ep == CM_EP_INVENTORY ? "inventory" : "discovery",
                            cm_ep_body_max(req->ep), FALSE, resp);
        reevaluate = TRUE;
        break;
    case CM_EP_CLIENT_STATUS:
        payload = message_payload(site, body, NULL, cm_ep_body_max(req->ep), TRUE, resp);
        break;
    default:
        payload = json_incref((json_t *)body);
        break;
    }
    if (payload == NULL)
        return;
    if (!cm_store_begin(site->store, &e))
        goto fail;
    switch (req->ep) {
    case CM_EP_INVENTORY:
        ok = store_properties(site, "inventory", key, payload, now, resp, &e);
        break;
    case CM_EP_DISCOVERY:
        ok = store_properties(site, "discovery", key, payload, now, resp, &e);
        break;
    case CM_EP_STATE:
        ok = store_states(site, key, payload, now, resp, &e);
        break;
    case CM_EP_CLIENT_STATUS:
        ok = store_checks(site, key, json_object_get(payload, "checks"), now, resp, &e);
        break;
    default:
        break;
    }
    if (!ok)
        goto fail_tx;
    if (resp->status != 0) { /* refused while validating: nothing written */
        cm_store_rollback(site->store);
        return;
    }
    if (reevaluate && !cm_site_collections_evaluate_rules(site, smsid, key, &e))
        goto fail_tx;
    {
        sqlite3_stmt *st = SITE_STMT(site, "UPDATE clients SET last_seen = ? WHERE id = ?", &e);
        if (st == NULL)
            goto fail_tx;
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, id);
        if (!cm_store_step_done(site->store, st, &e))
            goto fail_tx;
    }
    if (!cm_store_commit(site->store, &e))
        goto fail_tx;
    site->counters.messages_accepted++;
    cm_response_ok_const(resp, CM_REPLY_ACCEPTED);
    return;
fail_tx:
    cm_store_rollback(site->store);
fail:
    cm_response_refuse(resp, CM_REASON_INTERNAL, "%s not recorded: %s", cm_ep_name(req->ep),
                       e ? e->message : "");
}

void
cm_site_handle(CmSite *site, const CmRequest *req, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autoptr(json_t) body = NULL;
    CmClientState state;
    gint64 id = 0, key = 0;
    const char *body_smsid;

    cm_response_clear(resp);
    if (req->ep == CM_EP_REGISTER) {
        cm_site_handle_register(site, req, now, resp);
        goto out;
    }
    body = cm_json_parse(req->body, req->body_len, cm_ep_body_max(req->ep), &e);
    if (body == NULL) {
        refuse_from(resp, e, cm_ep_name(req->ep));
        goto out;
    }
    if (req->ep == CM_EP_STATUS) {
        handle_status(site, body, now, resp);
        goto out;
    }
    if (!authenticate(site, req, now, &state, &id, &key, resp))
        goto out;
    /* The body names the client too; it must be the one that signed. */
    body_smsid = cm_json_str(body, "smsid", CM_ID_SMSID_LEN, &e);
    if (body_smsid == NULL || strcmp(body_smsid, req->smsid) != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "%s: the body's smsid must match the %s header", cm_ep_name(req->ep),
                           CM_HDR_CLIENT_ID);
        goto out;
    }
    if (req->ep == CM_EP_REGISTER_STATUS) {
        cm_site_registration_reply(site, req->smsid, now, resp);
        goto out;
    }
    if (state != CM_CLIENT_APPROVED) {
        cm_response_refuse(resp, CM_REASON_NOT_APPROVED,
                           "client %s is waiting for approval by an administrator of site %s",
                           req->smsid, site->code);
        goto out;
    }
    switch (req->ep) {
    case CM_EP_POLICY_ASSIGNMENTS:
        cm_site_handle_assignments(site, key, resp);
        break;
    case CM_EP_POLICY_BODY:
        cm_site_handle_policy_body(site, body, key, resp);
        break;
    case CM_EP_INVENTORY:
    case CM_EP_DISCOVERY:
    case CM_EP_STATE:
    case CM_EP_CLIENT_STATUS:
        handle_message(site, req, id, key, body, now, resp);
        break;
    case CM_EP_NOTIFY:
        cm_response_ok_const(resp, CM_REPLY_OPEN);
        break;
    default:
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT,
                           "the site does not serve %s: ask a management point",
                           cm_ep_name(req->ep));
        break;
    }
out:
    if (resp->reason < CM_REASON__COUNT)
        site->counters.refusals[resp->reason]++;
}

/* ----------------------------------------------------------- maintenance */

static gint64
delete_older(CmSite *site, const char *sql, CmTime cutoff, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, sql, &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_int64(st, 1, cutoff);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return cm_store_changes(site->store);
fail:
    cm_site_store_error(error, cause);
    return -1;
}

gboolean
cm_site_maintenance(CmSite *site, CmTime now, CmMaintenanceResult *out, GError **error)
{
    GError *cause = NULL;
    CmMaintenanceResult r = {0};
    CmTime disc_cutoff = now - (CmTime)site->settings.discovery_retention_days * CM_USEC_PER_DAY;
    CmTime status_cutoff =
        now - (CmTime)site->settings.client_status_retention_days * CM_USEC_PER_DAY;

    if (!cm_store_begin(site->store, &cause)) {
        cm_site_store_error(error, cause);
        return FALSE;
    }
    /* Delete Aged Discovery Data (REQ DATA-01), client status history
     * (REQ DATA-02). */
    {
        sqlite3_stmt *st = SITE_STMT(
            site, "SELECT count(DISTINCT client) FROM discovery WHERE updated < ?", &cause);
        gboolean row = FALSE;
        if (st == NULL) {
            cm_site_store_error(error, cause);
            goto fail;
        }
        sqlite3_bind_int64(st, 1, disc_cutoff);
        if (!cm_store_step_row(site->store, st, &row, &cause)) {
            cm_site_store_error(error, cause);
            goto fail;
        }
        r.discovery_clients = row ? sqlite3_column_int64(st, 0) : 0;
        if (row)
            sqlite3_reset(st);
    }
    r.discovery_deleted =
        delete_older(site, "DELETE FROM discovery WHERE updated < ?", disc_cutoff, error);
    if (r.discovery_deleted < 0)
        goto fail;
    r.client_status_deleted =
        delete_older(site, "DELETE FROM client_status WHERE received < ?", status_cutoff, error);
    if (r.client_status_deleted < 0)
        goto fail;
    if (!cm_store_commit(site->store, &cause)) {
        cm_site_store_error(error, cause);
        goto fail;
    }
    if (out != NULL)
        *out = r;
    return TRUE;
fail:
    cm_store_rollback(site->store);
    return FALSE;
}

gboolean
cm_site_client_status_held(CmSite *site, gint64 *rows, CmTime *oldest)
{
    sqlite3_stmt *st =
        SITE_STMT(site, "SELECT count(*), coalesce(min(received), 0) FROM client_status", NULL);
    gboolean row = FALSE;

    *rows = 0;
    *oldest = 0;
    if (st == NULL || !cm_store_step_row(site->store, st, &row, NULL) || !row)
        return FALSE;
    *rows = sqlite3_column_int64(st, 0);
    *oldest = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return TRUE;
}
