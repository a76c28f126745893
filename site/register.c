/* register.c - client registration: proof of possession, approval from the
 * authentication the transport observed (REQ REG-01/02), blocking
 * (REQ REG-03/04), conflicting records (REQ REG-06), and the client token
 * a registered device later shows the CMG (REQ CMG-12). */
#include "internal.h"

#include <string.h>

typedef struct {
    const char *smsid;
    const char *hwid;
    const char *name;
    const char *domain;
    const char *site_code;
    CmKspKind ksp;
    gboolean media;
    CmCert *cert; /* owned */
} Registration;

typedef struct {
    gint64 id;
    gint64 key; /* CmClientInfo.key: the id of the SMSID's first record */
    char hwid[CM_ID_HWID_LEN + 1];
    char thumbprint[65];
    CmClientState state;
} Record;

static void
refuse_error(CmResponse *resp, CmReason reason, const GError *e, const char *prefix)
{
    cm_response_refuse(resp, reason, "%s%s", prefix, e ? e->message : "");
}

/* Parses and checks a registration body: its fields, its certificate, and
 * the signature made with that certificate's key. */
static gboolean
parse_registration(CmSite *site, const CmRequest *req, CmTime now, json_t *body, Registration *r,
                   CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autoptr(GBytes) der = NULL;
    const char *ksp;
    gboolean media = FALSE;

    if ((r->smsid = cm_json_str(body, "smsid", CM_ID_SMSID_LEN, &e)) == NULL ||
        !cm_id_smsid_check(r->smsid, &e) ||
        (r->hwid = cm_json_str(body, "hwid", CM_ID_HWID_LEN, &e)) == NULL ||
        !cm_id_hwid_check(r->hwid, &e) || (r->name = cm_json_str(body, "name", 64, &e)) == NULL ||
        (r->domain = cm_json_str(body, "domain", CM_NAME_MAX, &e)) == NULL ||
        (r->site_code = cm_json_str(body, "site_code", 3, &e)) == NULL ||
        (ksp = cm_json_str(body, "ksp", 16, &e)) == NULL ||
        (json_object_get(body, "media") && !cm_json_bool(body, "media", &media, &e)) ||
        (der = cm_json_b64(body, "cert", CM_CERT_MAX_DER, &e)) == NULL) {
        refuse_error(resp, CM_REASON_BAD_REQUEST, e, "registration: ");
        return FALSE;
    }
    r->media = media;
    if (strcmp(ksp, "tpm2") == 0)
        r->ksp = CM_KSP_TPM2;
    else if (strcmp(ksp, "software") == 0)
        r->ksp = CM_KSP_SOFTWARE;
    else {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "registration: field \"ksp\" must be \"tpm2\" or \"software\"");
        return FALSE;
    }
    if (g_ascii_strcasecmp(r->site_code, site->code) != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "registration for site %s sent to site %s: check SMSSITECODE",
                           r->site_code, site->code);
        return FALSE;
    }
    if (strcmp(req->smsid, r->smsid) != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "registration: %s header and body name different clients",
                           CM_HDR_CLIENT_ID);
        return FALSE;
    }
    r->cert = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &e);
    if (r->cert == NULL) {
        refuse_error(resp, CM_REASON_BAD_REQUEST, e, "registration certificate: ");
        return FALSE;
    }
    /* A client certificate is self-issued with the SMSID as its name.  Its
     * self-signature is not checked here: the proof of possession below
     * verifies a signature with the same key over this very request, which
     * is what binds the key to the client; a second verification would add
     * cost, not assurance. */
    if (!cm_cert_is_self_issued(r->cert) || strcmp(cm_cert_subject_cn(r->cert), r->smsid) != 0) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "registration certificate must be self-issued with the SMSID as its "
                           "common name");
        return FALSE;
    }
    if (!cm_cert_check_time(r->cert, now, &e)) {
        refuse_error(resp, CM_REASON_CERT_EXPIRED, e, "");
        return FALSE;
    }
    /* Proof of possession: the request is signed with the key being
     * registered.  Registration is always signed, whatever the setting. */
    if (!req->signed_) {
        cm_response_refuse(resp, CM_REASON_UNSIGNED,
                           "registration must be signed with the key being registered");
        return FALSE;
    }
    if (!cm_hash_alg_allowed(req->sig_hash, site->settings.require_sha256, &e)) {
        refuse_error(resp, CM_REASON_SHA1_REFUSED, e, "");
        return FALSE;
    }
    site->counters.signature_checks++;
    if (!cm_sig_verify(cm_cert_public_key(r->cert), req->sig_hash, req->body, req->body_len,
                       req->sig, req->sig_len, &e)) {
        refuse_error(resp, CM_REASON_BAD_SIGNATURE, e, "registration: ");
        return FALSE;
    }
    return TRUE;
}

/* Whether the certificate (by thumbprint) or the hardware ID is blocked:
 * one statement, two lookups of the primary key. */
static gboolean
is_blocked(CmSite *site, const char *thumbprint, const char *hwid, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(
        site,
        "SELECT EXISTS (SELECT 1 FROM blocked WHERE kind = 'thumbprint' AND value = ?1)"
        " OR EXISTS (SELECT 1 FROM blocked WHERE kind = 'hwid' AND value = ?2)",
        &cause);
    gboolean row = FALSE, blocked;

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, thumbprint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hwid, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (!row)
        return FALSE;
    blocked = sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    return blocked;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
record_find(CmSite *site, const char *smsid, Record *rec, gboolean *found, GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st =
        SITE_STMT(site,
                  "SELECT id, hwid, thumbprint, state, coalesce(first_id, id) FROM clients"
                  " WHERE smsid = ? AND obsolete = 0",
                  &cause);
    gboolean row = FALSE;

    *found = FALSE;
    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, &cause))
        goto fail;
    if (row) {
        rec->id = sqlite3_column_int64(st, 0);
        g_strlcpy(rec->hwid, (const char *)sqlite3_column_text(st, 1), sizeof rec->hwid);
        g_strlcpy(rec->thumbprint, (const char *)sqlite3_column_text(st, 2),
                  sizeof rec->thumbprint);
        rec->state = (CmClientState)sqlite3_column_int(st, 3);
        rec->key = sqlite3_column_int64(st, 4);
        sqlite3_reset(st);
        *found = TRUE;
    }
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

/* Whether a Kerberos principal is the computer account of the computer a
 * registration names: NAME$@REALM, with NAME the first label of the
 * registration's name and REALM its domain.  Users, services and other
 * computers of a trusted domain hold tickets too; none of them may have a
 * record that names another computer approved on its ticket. */
static gboolean
principal_is_computer(const char *principal, const char *name, const char *domain)
{
    const char *at = strrchr(principal, '@');
    size_t host = strcspn(name, ".");

    return at != NULL && host > 0 && (size_t)(at - principal) == host + 1 &&
           principal[host] == '$' && g_ascii_strncasecmp(principal, name, host) == 0 &&
           g_ascii_strcasecmp(at + 1, domain) == 0;
}

/* The approval decision (REQ REG-01/02). */
static CmClientState
decide_approval(CmSite *site, const CmRequest *req, const Registration *r)
{
    const CmPeer *peer = &req->peer;

    if (site->settings.approval == CM_APPROVAL_ALL)
        return CM_CLIENT_APPROVED;
    /* A PKI certificate the transport verified is the client's identity;
     * the product approves such clients whatever the approval mode. */
    if (peer->kind == CM_AUTH_PKI && peer->client_cert != NULL)
        return CM_CLIENT_APPROVED;
    if (site->settings.approval == CM_APPROVAL_TRUSTED_DOMAINS) {
        if (peer->kind == CM_AUTH_KERBEROS && cm_site_kerberos_verifiable(site, peer->domain) &&
            g_ascii_strcasecmp(peer->domain, r->domain) == 0 &&
            principal_is_computer(peer->principal, r->name, r->domain))
            return CM_CLIENT_APPROVED;
        /* Entra ID device tokens are verified by the receiving role before
         * they reach the site, as Kerberos is by the transport. */
        if (peer->kind == CM_AUTH_ENTRA && peer->principal[0] != '\0')
            return CM_CLIENT_APPROVED;
    }
    return CM_CLIENT_PENDING;
}

/* Inserts a live record; first_id is the key of the obsolete record it
 * supersedes (0 for the SMSID's first record, whose key is its own id).
 * Sets *key to the record's key. */
static gboolean
record_insert(CmSite *site, const Registration *r, CmClientState state, CmAuthKind by,
              gint64 first_id, CmTime now, gint64 *key, GError **error)
{
    GError *cause = NULL;
    g_autoptr(GBytes) der = cm_cert_to_der(r->cert);
    g_autofree char *tp = cm_cert_thumbprint_hex(r->cert);
    sqlite3_stmt *st = SITE_STMT(
        site,
        "INSERT INTO clients(smsid, hwid, name, domain, state, registered_by, ksp, media, cert,"
        " thumbprint, registered_at, last_seen, first_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        &cause);

    if (st == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, r->smsid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->hwid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->domain, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, state);
    sqlite3_bind_int(st, 6, by);
    sqlite3_bind_int(st, 7, r->ksp);
    sqlite3_bind_int(st, 8, r->media);
    sqlite3_bind_blob(st, 9, g_bytes_get_data(der, NULL), (int)g_bytes_get_size(der),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 10, tp, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, now);
    sqlite3_bind_int64(st, 12, now);
    if (first_id > 0)
        sqlite3_bind_int64(st, 13, first_id);
    else
        sqlite3_bind_null(st, 13);
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    *key = first_id > 0 ? first_id : cm_store_last_rowid(site->store);
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
record_exec(CmSite *site, const char *sql, gint64 id, const Registration *r, CmTime now,
            GError **error)
{
    GError *cause = NULL;
    sqlite3_stmt *st = SITE_STMT(site, sql, &cause);

    if (st == NULL)
        goto fail;
    /* Parameters by name, so each statement binds what it uses. */
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":id"), id);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":now"), now);
    if (sqlite3_bind_parameter_index(st, ":cert") > 0) {
        g_autoptr(GBytes) der = cm_cert_to_der(r->cert);
        g_autofree char *tp = cm_cert_thumbprint_hex(r->cert);
        sqlite3_bind_blob(st, sqlite3_bind_parameter_index(st, ":cert"),
                          g_bytes_get_data(der, NULL), (int)g_bytes_get_size(der),
                          SQLITE_TRANSIENT);
        sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":tp"), tp, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":ksp"), r->ksp);
    }
    if (!cm_store_step_done(site->store, st, &cause))
        goto fail;
    return TRUE;
fail:
    cm_site_store_error(error, cause);
    return FALSE;
}

static gboolean
block_record(CmSite *site, const char *smsid, CmTime now, GError **error)
{
    CmClientInfo info;

    return cm_site_client(site, smsid, &info, error) &&
           cm_site_block_in_tx(site, &info, now, error);
}

CmCert *
cm_site_client_cert(CmSite *site, const char *smsid)
{
    CmCert *cert = g_hash_table_lookup(site->client_certs, smsid);
    sqlite3_stmt *st;
    gboolean row = FALSE;

    if (cert != NULL)
        return cert;
    /* Parse once, keep parsed: a client's key is used on every message. */
    st = SITE_STMT(site, "SELECT cert FROM clients WHERE smsid = ? AND obsolete = 0", NULL);
    if (st == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, smsid, -1, SQLITE_STATIC);
    if (!cm_store_step_row(site->store, st, &row, NULL) || !row)
        return NULL;
    cert = cm_cert_from_der(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), NULL);
    sqlite3_reset(st);
    if (cert != NULL)
        g_hash_table_insert(site->client_certs, g_strdup(smsid), cert);
    return cert;
}

/* The registration answer for a live record in state with hwid. */
static void
reply_for(CmSite *site, const char *smsid, CmClientState state, const char *hwid, CmTime now,
          CmResponse *resp)
{
    g_autoptr(json_t) obj = NULL;

    if (state == CM_CLIENT_BLOCKED) {
        cm_response_refuse(resp, CM_REASON_BLOCKED, "client %s is blocked", smsid);
        return;
    }
    obj = json_pack("{s:s, s:s}", "smsid", smsid, "approval", cm_client_state_name(state));
    if (state == CM_CLIENT_APPROVED) {
        /* The token a registered device shows the CMG (REQ CMG-12). */
        g_autoptr(json_t) claims = cm_jwt_claims_new(site->code, "cmg", smsid, now,
                                                     site->settings.client_token_lifetime, NULL);
        g_autofree char *token = NULL;
        json_object_set_new(claims, "kind", json_string("client"));
        json_object_set_new(claims, "hwid", json_string(hwid));
        token = cm_jwt_sign(site->signing_key, site->code, claims, NULL);
        if (token != NULL)
            json_object_set_new(obj, "token", json_string(token));
    }
    cm_response_ok(resp, obj);
}

void
cm_site_registration_reply(CmSite *site, const char *smsid, CmTime now, CmResponse *resp)
{
    CmClientInfo info;
    g_autoptr(GError) e = NULL;

    if (!cm_site_client(site, smsid, &info, &e)) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_CLIENT, "%s is not registered", smsid);
        return;
    }
    reply_for(site, smsid, info.state, info.hwid, now, resp);
}

/* Decides, inside the transaction, what a registration does to the
 * records: FALSE on a store failure; TRUE with resp set when it is
 * refused, else with *out the state and hardware ID the live record has
 * now (what the answer and the collections go by). */
static gboolean
apply_registration(CmSite *site, const CmRequest *req, const Registration *r, CmTime now,
                   CmResponse *resp, Record *out, GError **error)
{
    Record rec;
    gboolean found;
    g_autofree char *tp = cm_cert_thumbprint_hex(r->cert);
    CmConflictMode mode = site->settings.conflicts;
    gboolean same_cert, same_hw;
    GError *sub = NULL;

    if (!record_find(site, r->smsid, &rec, &found, error))
        return FALSE;
    if (found && rec.state == CM_CLIENT_BLOCKED) {
        cm_response_refuse(resp, CM_REASON_BLOCKED, "client %s is blocked", r->smsid);
        return TRUE;
    }
    /* A blocked certificate or hardware stays out under any new SMSID; a
     * new certificate and a new hardware ID get through over HTTP, which
     * is the weakness REQ REG-04 measures. */
    if (is_blocked(site, tp, r->hwid, &sub)) {
        cm_response_refuse(resp, CM_REASON_BLOCKED,
                           "this certificate or hardware ID belongs to a blocked client");
        return TRUE;
    }
    if (sub != NULL) {
        g_propagate_error(error, sub);
        return FALSE;
    }
    if (!found) {
        out->state = decide_approval(site, req, r);
        g_strlcpy(out->hwid, r->hwid, sizeof out->hwid);
        return record_insert(site, r, out->state, req->peer.kind, 0, now, &out->key, error);
    }
    same_cert = strcmp(rec.thumbprint, tp) == 0;
    same_hw = strcmp(rec.hwid, r->hwid) == 0;
    /* Unless a new record replaces it, the record keeps its state and
     * hardware ID (a clone keeps the first hardware's). */
    out->state = rec.state;
    out->key = rec.key;
    g_strlcpy(out->hwid, rec.hwid, sizeof out->hwid);
    if (same_cert && same_hw) /* a repeat: nothing changes */
        return record_exec(site,
                           "UPDATE clients SET registrations = registrations + 1, last_seen = :now"
                           " WHERE id = :id",
                           rec.id, r, now, error);
    site->counters.conflicts++;
    switch (mode) {
    case CM_CONFLICT_MERGE:
        if (same_hw) /* new certificate, same hardware: the key upgrade */
            return record_exec(
                       site,
                       "UPDATE clients SET cert = :cert, thumbprint = :tp, ksp = :ksp,"
                       " registrations = registrations + 1, last_seen = :now WHERE id = :id",
                       rec.id, r, now, error) &&
                   (g_hash_table_remove(site->client_certs, r->smsid), TRUE);
        if (same_cert) /* the same certificate from other hardware: a clone */
            return record_exec(site,
                               "UPDATE clients SET registrations = registrations + 1,"
                               " last_seen = :now WHERE id = :id",
                               rec.id, r, now, error);
        cm_response_refuse(resp, CM_REASON_CONFLICT,
                           "%s is registered to other hardware with another certificate; the "
                           "site's conflicting-record setting (merge) cannot merge them",
                           r->smsid);
        return TRUE;
    case CM_CONFLICT_NEW_RECORD:
        if (!record_exec(site, "UPDATE clients SET obsolete = 1 WHERE id = :id", rec.id, r, now,
                         error))
            return FALSE;
        g_hash_table_remove(site->client_certs, r->smsid);
        out->state = decide_approval(site, req, r);
        g_strlcpy(out->hwid, r->hwid, sizeof out->hwid);
        /* The new record keeps the SMSID's key, so the client's data rows
         * and memberships stay with it as they stay with the SMSID. */
        return record_insert(site, r, out->state, req->peer.kind, rec.key, now, &out->key, error);
    case CM_CONFLICT_BLOCK:
    default:
        if (!block_record(site, r->smsid, now, error))
            return FALSE;
        cm_response_refuse(resp, CM_REASON_CONFLICT,
                           "%s conflicts with its existing record; the site blocked it until an "
                           "administrator decides",
                           r->smsid);
        return TRUE;
    }
}

void
cm_site_handle_register(CmSite *site, const CmRequest *req, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autoptr(json_t) body = NULL;
    Registration r = {0};
    Record live = {0};
    gboolean in_tx = FALSE;

    site->counters.registrations++;
    body = cm_json_parse(req->body, req->body_len, cm_ep_body_max(CM_EP_REGISTER), &e);
    if (body == NULL) {
        refuse_error(resp, cm_reason_from_error(e), e, "registration: ");
        goto out;
    }
    if (!parse_registration(site, req, now, body, &r, resp))
        goto out;
    if (!cm_store_begin(site->store, &e))
        goto fail;
    in_tx = TRUE;
    resp->status = 0;
    if (!apply_registration(site, req, &r, now, resp, &live, &e))
        goto fail;
    if (resp->status != 0) { /* refused; a conflict block must still land */
        if (resp->reason == CM_REASON_CONFLICT && !cm_store_commit(site->store, &e))
            goto fail;
        if (resp->reason != CM_REASON_CONFLICT)
            cm_store_rollback(site->store);
        in_tx = FALSE;
        goto out;
    }
    if (!cm_site_collections_evaluate(site, r.smsid, live.key, live.state, &e) ||
        !cm_store_commit(site->store, &e))
        goto fail;
    in_tx = FALSE;
    /* Keep the certificate parsed for the messages that follow; a
     * re-registration replaced whatever was cached. */
    g_hash_table_replace(site->client_certs, g_strdup(r.smsid), cm_cert_ref(r.cert));
    reply_for(site, r.smsid, live.state, live.hwid, now, resp);
    goto out;
fail:
    if (in_tx)
        cm_store_rollback(site->store);
    in_tx = FALSE;
    cm_response_refuse(resp, CM_REASON_INTERNAL, "registration not recorded: %s",
                       e ? e->message : "unknown failure");
out:
    if (resp->reason == CM_REASON_OK && resp->body != NULL) {
        if (live.state == CM_CLIENT_APPROVED)
            site->counters.registrations_approved++;
        else
            site->counters.registrations_pending++;
    } else {
        site->counters.registrations_refused++;
    }
    cm_cert_unref(r.cert);
}
