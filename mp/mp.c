/* mp.c - the management point: anonymous answers, the site's transport and
 * signing rules, the notification channels, and forwarding to the site. */
#include "cmmp.h"

#include <string.h>

G_DEFINE_QUARK(cm - mp - error - quark, cm_mp_error)

struct CmMp {
    char *name;
    guint64 role_id;
    gboolean internet;
    CmCert *mp_cert;
    /* The anonymous answers, written once: they are the same bytes for
     * every client until the site's information changes. */
    GBytes *siteinfo;
    GBytes *mplist;
    GBytes *mpcert_reply;
    GBytes *package_reply; /* clientpackage answer; NULL: none published */
    /* the site's rules, read from siteinfo */
    char comm[16];
    gboolean require_signing;
    gboolean require_sha256;
    GHashTable *channels; /* smsid -> open since (CmTime*) */
    CmMpCounters counters;
};

static gboolean
read_settings(CmMp *mp, const json_t *siteinfo, GError **error)
{
    g_autoptr(GError) e = NULL;
    const json_t *s = cm_json_object(siteinfo, "settings", &e);
    const char *comm;
    gboolean sign, sha256;

    if (s == NULL || (comm = cm_json_str(s, "communication", 15, &e)) == NULL ||
        !cm_json_bool(s, "require_signing", &sign, &e) ||
        !cm_json_bool(s, "require_sha256", &sha256, &e)) {
        g_set_error(error, CM_MP_ERROR, 0, "site information: %s", e ? e->message : "no settings");
        return FALSE;
    }
    g_strlcpy(mp->comm, comm, sizeof mp->comm);
    mp->require_signing = sign;
    mp->require_sha256 = sha256;
    return TRUE;
}

/* An answer's body as cm_response_ok would write it; NULL (no body) when
 * obj cannot be written, as there. */
static GBytes *
reply_bytes(const json_t *obj)
{
    char *json = cm_json_dump(obj);

    return json != NULL ? g_bytes_new_take(json, strlen(json)) : NULL;
}

gboolean
cm_mp_update_site(CmMp *mp, const json_t *siteinfo, const json_t *mplist, GError **error)
{
    if (siteinfo == NULL || mplist == NULL || !json_is_object(siteinfo) ||
        !json_is_object(mplist)) {
        g_set_error(error, CM_MP_ERROR, 0, "the MP needs the site's information and MP list");
        return FALSE;
    }
    if (!read_settings(mp, siteinfo, error))
        return FALSE;
    g_clear_pointer(&mp->siteinfo, g_bytes_unref);
    g_clear_pointer(&mp->mplist, g_bytes_unref);
    mp->siteinfo = reply_bytes(siteinfo);
    mp->mplist = reply_bytes(mplist);
    return TRUE;
}

/* The same bounds the agent reads a package with. */
static gboolean
package_check(const CmMpClientPackage *p, GError **error)
{
    const char *why = NULL;
    int dots = 0, digits = 0;

    if (p->version == NULL || *p->version == '\0' || strlen(p->version) > 31)
        why = "a version of at most 31 characters";
    for (const char *c = p->version; why == NULL && *c != '\0'; c++) {
        if (*c == '.' && digits > 0 && ++dots < 4)
            digits = 0;
        else if (!g_ascii_isdigit(*c) || ++digits > 9)
            why = "a version of 1 to 4 dot-separated numbers, as 5.00.9122.1000";
    }
    if (why == NULL && digits == 0)
        why = "a version of 1 to 4 dot-separated numbers, as 5.00.9122.1000";
    if (why == NULL && (p->url == NULL || *p->url == '\0' || strlen(p->url) > 255))
        why = "a download location of 1 to 255 characters";
    if (why == NULL && (p->hash == NULL || strlen(p->hash) != 64))
        why = "the package's SHA-256 in hex";
    for (const char *c = p->hash; why == NULL && *c != '\0'; c++)
        if (!g_ascii_isxdigit(*c))
            why = "the package's SHA-256 in hex";
    if (why != NULL) {
        g_set_error(error, CM_MP_ERROR, 0, "client package: expected %s", why);
        return FALSE;
    }
    return TRUE;
}

gboolean
cm_mp_set_client_package(CmMp *mp, const CmMpClientPackage *package, GError **error)
{
    g_autofree char *hash = NULL;
    g_autoptr(json_t) reply = NULL;

    if (package == NULL) {
        g_clear_pointer(&mp->package_reply, g_bytes_unref);
        return TRUE;
    }
    if (!package_check(package, error))
        return FALSE;
    hash = g_ascii_strdown(package->hash, -1);
    g_clear_pointer(&mp->package_reply, g_bytes_unref);
    reply = json_pack("{s:s, s:s, s:s}", "version", package->version, "url", package->url, "hash",
                      hash);
    if (reply == NULL)
        return FALSE;
    mp->package_reply = reply_bytes(reply);
    return TRUE;
}

CmMp *
cm_mp_new(const CmMpConfig *config, GError **error)
{
    CmMp *mp;
    g_autoptr(GBytes) der = NULL;
    g_autofree char *b64 = NULL;
    g_autoptr(json_t) mpcert = NULL;

    if (config->name == NULL || *config->name == '\0' || config->mp_cert == NULL) {
        g_set_error(error, CM_MP_ERROR, 0, "an MP needs a name and its TRK-signed certificate");
        return NULL;
    }
    mp = g_new0(CmMp, 1);
    mp->name = g_strdup(config->name);
    mp->role_id = config->role_id;
    mp->internet = config->internet;
    mp->mp_cert = cm_cert_ref((CmCert *)config->mp_cert);
    mp->channels = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    der = cm_cert_to_der(config->mp_cert);
    b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
    mpcert = json_pack("{s:s, s:s}", "name", mp->name, "cert", b64);
    mp->mpcert_reply = reply_bytes(mpcert);
    if (!cm_mp_update_site(mp, config->siteinfo, config->mplist, error) ||
        !cm_mp_set_client_package(mp, config->client_package, error)) {
        cm_mp_free(mp);
        return NULL;
    }
    return mp;
}

void
cm_mp_free(CmMp *mp)
{
    if (mp == NULL)
        return;
    g_free(mp->name);
    cm_cert_unref(mp->mp_cert);
    g_clear_pointer(&mp->siteinfo, g_bytes_unref);
    g_clear_pointer(&mp->mplist, g_bytes_unref);
    g_clear_pointer(&mp->mpcert_reply, g_bytes_unref);
    g_clear_pointer(&mp->package_reply, g_bytes_unref);
    g_hash_table_unref(mp->channels);
    g_free(mp);
}

const char *
cm_mp_name(const CmMp *mp)
{
    return mp->name;
}

const CmMpCounters *
cm_mp_counters(const CmMp *mp)
{
    return &mp->counters;
}

static gboolean
transport_allowed(const CmMp *mp, CmTransport t)
{
    if (strcmp(mp->comm, "http-or-https") == 0)
        return TRUE;
    if (strcmp(mp->comm, "ehttp") == 0)
        return t != CM_TRANSPORT_HTTP;
    return t == CM_TRANSPORT_HTTPS;
}

/* A status message is accepted from anyone (REQ MSG-03); the MP only throws
 * away what is not a well-formed status message. */
static gboolean
status_well_formed(const CmRequest *req, GError **error)
{
    g_autoptr(json_t) body =
        cm_json_parse(req->body, req->body_len, cm_ep_body_max(CM_EP_STATUS), error);
    gint64 id;

    return body != NULL && cm_json_str(body, "component", 64, error) != NULL &&
           cm_json_int(body, "message_id", 0, 99999, &id, error) &&
           cm_json_str(body, "severity", 16, error) != NULL &&
           cm_json_str(body, "text", 1024, error) != NULL;
}

static CmMpVerdict
answer(CmMp *mp, CmResponse *resp)
{
    mp->counters.answered++;
    if (resp->reason < CM_REASON__COUNT)
        mp->counters.refusals[resp->reason]++;
    return CM_MP_ANSWERED;
}

CmMpVerdict
cm_mp_handle(CmMp *mp, const CmRequest *req, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;

    (void)now;
    cm_response_clear(resp);
    if (req->ep == CM_EP_NONE || req->ep >= CM_EP__COUNT) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT, "no such endpoint on this MP");
        return answer(mp, resp);
    }
    mp->counters.requests[req->ep]++;
    if (!transport_allowed(mp, req->transport)) {
        cm_response_refuse(resp, CM_REASON_HTTPS_REQUIRED,
                           "this site accepts %s client communication only, not %s",
                           strcmp(mp->comm, "ehttp") == 0 ? "HTTPS or Enhanced HTTP" : "HTTPS",
                           cm_transport_name(req->transport));
        return answer(mp, resp);
    }
    if (req->body_len > cm_ep_body_max(req->ep)) {
        cm_response_refuse(resp, CM_REASON_TOO_LARGE, "%s body of %zu bytes is over %zu",
                           cm_ep_name(req->ep), req->body_len, cm_ep_body_max(req->ep));
        return answer(mp, resp);
    }
    switch (req->ep) {
    case CM_EP_LOCATION:
        cm_response_ok_bytes(resp, mp->mplist);
        return answer(mp, resp);
    case CM_EP_MPCERT:
        cm_response_ok_bytes(resp, mp->mpcert_reply);
        return answer(mp, resp);
    case CM_EP_SITEINFO:
        cm_response_ok_bytes(resp, mp->siteinfo);
        return answer(mp, resp);
    case CM_EP_CLIENT_PACKAGE:
        /* Anonymous and unsigned, as in the product: the client cannot tell
         * this package from one an attacker put here (REQ POL-05). */
        if (mp->package_reply == NULL)
            cm_response_refuse(resp, CM_REASON_NOT_FOUND,
                               "no client package is published to this management point");
        else
            cm_response_ok_bytes(resp, mp->package_reply);
        return answer(mp, resp);
    case CM_EP_STATUS:
        if (!status_well_formed(req, &e)) {
            mp->counters.status_discarded++;
            cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "status message discarded: %s",
                               e->message);
            return answer(mp, resp);
        }
        mp->counters.forwarded++;
        return CM_MP_FORWARD;
    default:
        break;
    }
    /* Signed client requests. */
    if (req->smsid[0] == '\0' || !cm_id_smsid_check(req->smsid, NULL)) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST,
                           "a %s header with the client's SMSID is "
                           "required",
                           CM_HDR_CLIENT_ID);
        return answer(mp, resp);
    }
    if (!req->signed_ && (mp->require_signing || req->ep == CM_EP_REGISTER)) {
        cm_response_refuse(resp, CM_REASON_UNSIGNED,
                           "this site requires signed client messages: add a %s header",
                           CM_HDR_SIGNATURE);
        return answer(mp, resp);
    }
    if (req->signed_ && !cm_hash_alg_allowed(req->sig_hash, mp->require_sha256, &e)) {
        cm_response_refuse(resp, CM_REASON_SHA1_REFUSED, "%s", e->message);
        return answer(mp, resp);
    }
    if (req->ep == CM_EP_NOTIFY && g_hash_table_contains(mp->channels, req->smsid)) {
        /* A keep-alive on an open channel: answered here, without asking the
         * site, so blocking a client does not close its channel
         * (REQ REG-05). */
        mp->counters.keepalives++;
        cm_response_ok_const(resp, CM_REPLY_OPEN);
        return answer(mp, resp);
    }
    mp->counters.forwarded++;
    return CM_MP_FORWARD;
}

void
cm_mp_forwarded(CmMp *mp, const CmRequest *req, const CmResponse *site_resp, CmTime now)
{
    if (site_resp->reason < CM_REASON__COUNT)
        mp->counters.refusals[site_resp->reason]++;
    if (req->ep == CM_EP_NOTIFY && site_resp->status == 200)
        g_hash_table_replace(mp->channels, g_strdup(req->smsid), g_memdup2(&now, sizeof now));
}

void
cm_mp_channel_close(CmMp *mp, const char *smsid)
{
    g_hash_table_remove(mp->channels, smsid);
}

guint
cm_mp_channel_count(const CmMp *mp)
{
    return g_hash_table_size(mp->channels);
}
