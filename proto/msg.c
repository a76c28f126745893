/* msg.c - the message frame every role shares: endpoints and their paths,
 * transports, the signature header, refusal reasons and responses. */
#include "internal.h"

#include <stdarg.h>
#include <string.h>

#define KIB 1024
static const struct {
    const char *name;
    const char *path;
    gboolean anonymous;
    size_t body_max;
} endpoints[CM_EP__COUNT] = {
    [CM_EP_NONE] = {"none", "", FALSE, 0},
    [CM_EP_LOCATION] = {"location", "/sms_mp/.sms_aut?MPLIST", TRUE, 4 * KIB},
    [CM_EP_MPCERT] = {"mpcert", "/sms_mp/.sms_aut?MPCERT", TRUE, 4 * KIB},
    [CM_EP_SITEINFO] = {"siteinfo", "/sms_mp/.sms_aut?SITEINFO", TRUE, 4 * KIB},
    [CM_EP_CLIENT_PACKAGE] = {"clientpackage", "/sms_mp/.sms_aut?CLIENTPACKAGE", TRUE, 4 * KIB},
    [CM_EP_REGISTER] = {"register", "/ccm_system_windowsauth/request/register", FALSE, 64 * KIB},
    [CM_EP_REGISTER_STATUS] = {"regstatus", "/ccm_system/request/regstatus", FALSE, 4 * KIB},
    [CM_EP_POLICY_ASSIGNMENTS] = {"policyassignments", "/ccm_system/request/policyassignments",
                                  FALSE, 4 * KIB},
    [CM_EP_POLICY_BODY] = {"policybody", "/ccm_system/request/policybody", FALSE, 4 * KIB},
    [CM_EP_INVENTORY] = {"inventory", "/ccm_incoming/inventory", FALSE, 256 * KIB},
    [CM_EP_DISCOVERY] = {"discovery", "/ccm_incoming/discovery", FALSE, 64 * KIB},
    [CM_EP_STATE] = {"state", "/ccm_incoming/state", FALSE, 64 * KIB},
    [CM_EP_CLIENT_STATUS] = {"clientstatus", "/ccm_incoming/clientstatus", FALSE, 64 * KIB},
    [CM_EP_NOTIFY] = {"notify", "/bgb/notify", FALSE, 4 * KIB},
    [CM_EP_STATUS] = {"status", "/ccm_incoming/status", TRUE, 8 * KIB},
};

size_t
cm_ep_body_max(CmEndpoint ep)
{
    return ep < CM_EP__COUNT ? endpoints[ep].body_max : 0;
}

const char *
cm_ep_name(CmEndpoint ep)
{
    return ep < CM_EP__COUNT ? endpoints[ep].name : "none";
}

const char *
cm_ep_path(CmEndpoint ep)
{
    return ep < CM_EP__COUNT ? endpoints[ep].path : "";
}

gboolean
cm_ep_is_anonymous(CmEndpoint ep)
{
    return ep < CM_EP__COUNT && endpoints[ep].anonymous;
}

CmEndpoint
cm_ep_from_path(const char *path)
{
    /* Paths match case-insensitively, as IIS does. */
    for (int ep = 1; ep < CM_EP__COUNT; ep++)
        if (path != NULL && g_ascii_strcasecmp(path, endpoints[ep].path) == 0)
            return (CmEndpoint)ep;
    return CM_EP_NONE;
}

CmEndpoint
cm_ep_from_name(const char *name)
{
    for (int ep = 1; ep < CM_EP__COUNT; ep++)
        if (name != NULL && strcmp(name, endpoints[ep].name) == 0)
            return (CmEndpoint)ep;
    return CM_EP_NONE;
}

const char *
cm_transport_name(CmTransport t)
{
    switch (t) {
    case CM_TRANSPORT_HTTPS:
        return "https";
    case CM_TRANSPORT_EHTTP:
        return "ehttp";
    case CM_TRANSPORT_HTTP:
    default:
        return "http";
    }
}

gboolean
cm_transport_parse(const char *name, CmTransport *out, GError **error)
{
    static const CmTransport all[] = {CM_TRANSPORT_HTTP, CM_TRANSPORT_HTTPS, CM_TRANSPORT_EHTTP};

    for (size_t i = 0; i < G_N_ELEMENTS(all); i++) {
        if (name != NULL && g_ascii_strcasecmp(name, cm_transport_name(all[i])) == 0) {
            *out = all[i];
            return TRUE;
        }
    }
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                "unknown transport \"%s\": use http, https or ehttp", name ? name : "(none)");
    return FALSE;
}

const char *
cm_auth_name(CmAuthKind k)
{
    switch (k) {
    case CM_AUTH_KERBEROS:
        return "kerberos";
    case CM_AUTH_PKI:
        return "pki";
    case CM_AUTH_ENTRA:
        return "entra";
    case CM_AUTH_TOKEN:
        return "token";
    case CM_AUTH_ANONYMOUS:
    default:
        return "anonymous";
    }
}

/* ------------------------------------------------------------ signature */

gboolean
cm_msg_parse_signature(const char *value, CmRequest *req, GError **error)
{
    const char *space;
    char alg[16];
    g_autoptr(GBytes) sig = NULL;
    size_t vlen;

    vlen = value ? strnlen(value, CM_HDR_MAX + 1) : 0;
    if (vlen == 0 || vlen > CM_HDR_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "%s header must be 1 to %d bytes", CM_HDR_SIGNATURE, CM_HDR_MAX);
        return FALSE;
    }
    space = memchr(value, ' ', vlen);
    if (space == NULL || space == value || (size_t)(space - value) >= sizeof alg) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "%s header must be \"<sha256|sha1> <base64 signature>\"", CM_HDR_SIGNATURE);
        return FALSE;
    }
    memcpy(alg, value, (size_t)(space - value));
    alg[space - value] = '\0';
    if (!cm_hash_alg_parse(alg, &req->sig_hash, error))
        return FALSE;
    sig = cm_enc_b64_decode(space + 1, vlen - (size_t)(space - value) - 1, CM_SIG_MAX, error);
    if (sig == NULL) {
        g_prefix_error(error, "%s header: ", CM_HDR_SIGNATURE);
        return FALSE;
    }
    if (g_bytes_get_size(sig) == 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "%s header: empty signature",
                    CM_HDR_SIGNATURE);
        return FALSE;
    }
    req->sig_len = g_bytes_get_size(sig);
    memcpy(req->sig, g_bytes_get_data(sig, NULL), req->sig_len);
    req->signed_ = TRUE;
    return TRUE;
}

char *
cm_msg_format_signature(CmHashAlg hash, const guint8 *sig, size_t len)
{
    g_autofree char *b64 = cm_enc_b64(sig, len);
    return g_strdup_printf("%s %s", cm_hash_alg_name(hash), b64);
}

gboolean
cm_msg_sign(CmRequest *req, const CmKey *key, CmHashAlg hash, GError **error)
{
    g_autoptr(GBytes) sig = cm_sig_sign(key, hash, req->body, req->body_len, error);

    if (sig == NULL)
        return FALSE;
    req->sig_len = g_bytes_get_size(sig);
    memcpy(req->sig, g_bytes_get_data(sig, NULL), req->sig_len);
    req->sig_hash = hash;
    req->signed_ = TRUE;
    return TRUE;
}

/* -------------------------------------------------------------- reasons */

static const struct {
    const char *name;
    int status;
} reasons[CM_REASON__COUNT] = {
    [CM_REASON_OK] = {"ok", 200},
    [CM_REASON_BAD_REQUEST] = {"bad-request", 400},
    [CM_REASON_TOO_LARGE] = {"too-large", 413},
    [CM_REASON_UNKNOWN_ENDPOINT] = {"unknown-endpoint", 404},
    [CM_REASON_HTTPS_REQUIRED] = {"https-required", 403},
    [CM_REASON_UNSIGNED] = {"unsigned", 403},
    [CM_REASON_SHA1_REFUSED] = {"sha1-refused", 403},
    [CM_REASON_BAD_SIGNATURE] = {"bad-signature", 403},
    [CM_REASON_UNKNOWN_CLIENT] = {"unknown-client", 403},
    [CM_REASON_NOT_APPROVED] = {"not-approved", 403},
    [CM_REASON_BLOCKED] = {"blocked", 403},
    [CM_REASON_CERT_EXPIRED] = {"cert-expired", 403},
    [CM_REASON_UNTRUSTED] = {"untrusted", 403},
    [CM_REASON_REVOKED] = {"revoked", 403},
    [CM_REASON_CONFLICT] = {"conflict", 409},
    [CM_REASON_NOT_FOUND] = {"not-found", 404},
    [CM_REASON_FORBIDDEN] = {"forbidden", 403},
    [CM_REASON_BUSY] = {"busy", 503},
    [CM_REASON_INTERNAL] = {"internal", 500},
};

const char *
cm_reason_name(CmReason r)
{
    return r < CM_REASON__COUNT ? reasons[r].name : "internal";
}

int
cm_reason_status(CmReason r)
{
    return r < CM_REASON__COUNT ? reasons[r].status : 500;
}

CmReason
cm_reason_from_error(const GError *error)
{
    if (error == NULL)
        return CM_REASON_OK;
    if (error->domain != CM_PROTO_ERROR)
        return CM_REASON_INTERNAL;
    switch ((CmProtoError)error->code) {
    case CM_PROTO_ERROR_INVALID:
        return CM_REASON_BAD_REQUEST;
    case CM_PROTO_ERROR_TOO_LARGE:
        return CM_REASON_TOO_LARGE;
    case CM_PROTO_ERROR_SIGNATURE:
        return CM_REASON_BAD_SIGNATURE;
    case CM_PROTO_ERROR_UNTRUSTED:
        return CM_REASON_UNTRUSTED;
    case CM_PROTO_ERROR_EXPIRED:
        return CM_REASON_CERT_EXPIRED;
    case CM_PROTO_ERROR_REVOKED:
        return CM_REASON_REVOKED;
    case CM_PROTO_ERROR_REFUSED:
    case CM_PROTO_ERROR_NOT_EXPORTABLE:
        return CM_REASON_FORBIDDEN;
    case CM_PROTO_ERROR_NOT_FOUND:
        return CM_REASON_NOT_FOUND;
    case CM_PROTO_ERROR_CRYPTO:
    case CM_PROTO_ERROR_STORE:
    default:
        return CM_REASON_INTERNAL;
    }
}

void
cm_response_clear(CmResponse *resp)
{
    g_clear_pointer(&resp->message, g_free);
    g_clear_pointer(&resp->body, g_bytes_unref);
    memset(resp, 0, sizeof *resp);
}

void
cm_response_ok(CmResponse *resp, const json_t *obj)
{
    char *json = obj ? cm_json_dump(obj) : NULL;

    cm_response_clear(resp);
    resp->status = 200;
    resp->reason = CM_REASON_OK;
    if (json != NULL)
        resp->body = g_bytes_new_take(json, strlen(json));
}

void
cm_response_ok_bytes(CmResponse *resp, GBytes *body)
{
    cm_response_clear(resp);
    resp->status = 200;
    resp->reason = CM_REASON_OK;
    resp->body = body != NULL ? g_bytes_ref(body) : NULL;
}

void
cm_response_ok_const(CmResponse *resp, const char *json)
{
    g_autoptr(GBytes) body = g_bytes_new_static(json, strlen(json));

    cm_response_ok_bytes(resp, body);
}

void
cm_response_refuse(CmResponse *resp, CmReason reason, const char *fmt, ...)
{
    va_list ap;

    cm_response_clear(resp);
    resp->reason = reason;
    resp->status = cm_reason_status(reason);
    va_start(ap, fmt);
    resp->message = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

char *
cm_response_error_json(const CmResponse *resp)
{
    g_autoptr(json_t) obj = json_object();

    json_object_set_new(obj, "reason", json_string(cm_reason_name(resp->reason)));
    json_object_set_new(obj, "message", json_string(resp->message ? resp->message : ""));
    if (resp->retry_after > 0)
        json_object_set_new(obj, "retry_after_s",
                            json_integer(resp->retry_after / CM_USEC_PER_SEC));
    return cm_json_dump(obj);
}
