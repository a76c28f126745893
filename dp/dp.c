/* dp.c - the distribution point: client authentication per the table of
 * seed 004 (REQ DP-01), serving manifests and files, content access
 * tokens, and the content the DP holds, transferred or prestaged
 * (REQ DP-03).
 *
 *   DP type  client authentication
 *   HTTP     anonymous, if allowed; Windows-integrated with the computer
 *            account or the network access account; content access token
 *            (Enhanced HTTP)
 *   HTTPS    PKI certificate; Windows-integrated with the computer account
 *            or the network access account; content access token
 *
 * A content access token travels only inside TLS: over plain HTTP it is
 * refused (whoever saw it could replay it). */
#include "internal.h"

#include <stdarg.h>
#include <string.h>

#define DP_PREFIX "/SMS_DP_SMSPKG$/"

typedef struct {
    CmDpPackage *pkg;
    CmDpSource source;
    /* Served to clients: transferred content at once, prestaged content
     * only once the site's distribution found it matches. */
    gboolean accepted;
} Held;

struct CmDp {
    char name[CM_NAME_MAX + 1];
    char site[4];
    gboolean https, allow_anonymous, prestaged;
    GPtrArray *naa; /* lower-case "user@realm" */
    CmCert *signing_cert;
    CmTrust *pki_trust; /* borrowed */
    GHashTable *content; /* id -> Held */
    CmDpCounters counters;
};

const char *
cm_dp_auth_name(CmDpAuth a)
{
    static const char *const names[] = {"none", "anonymous", "computer", "naa", "token", "pki"};

    return (unsigned)a < G_N_ELEMENTS(names) ? names[a] : "unknown";
}

const char *
cm_dp_distribution_name(CmDpDistribution d)
{
    switch (d) {
    case CM_DP_DISTRIBUTE_TRANSFER:
        return "transfer";
    case CM_DP_DISTRIBUTE_PRESTAGED:
        return "prestaged";
    case CM_DP_DISTRIBUTE_PRESENT:
        return "present";
    }
    return "unknown";
}

static void
held_free(Held *h)
{
    cm_dp_package_unref(h->pkg);
    g_free(h);
}

void
cm_dp_set_network_access_accounts(CmDp *dp, const char *const *accounts)
{
    g_ptr_array_set_size(dp->naa, 0);
    for (size_t i = 0; accounts != NULL && accounts[i] != NULL; i++)
        if (*accounts[i] != '\0' && strlen(accounts[i]) <= CM_NAME_MAX)
            g_ptr_array_add(dp->naa, g_ascii_strdown(accounts[i], -1));
}

CmDp *
cm_dp_new(const CmDpConfig *config, GError **error)
{
    g_autoptr(GError) e = NULL;
    CmDp *dp;
    char site[4];

    if (config->name == NULL || *config->name == '\0' || strlen(config->name) > CM_NAME_MAX) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "a distribution point needs its host name (at most %d characters)",
                    CM_NAME_MAX);
        return NULL;
    }
    if (config->site_code == NULL || !cm_id_site_code_check(config->site_code, site, &e)) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID, "distribution point: %s",
                    e ? e->message : "a site code is required");
        return NULL;
    }
    if (config->https && config->allow_anonymous) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "anonymous access is an HTTP distribution point's option; an HTTPS one "
                    "authenticates every client");
        return NULL;
    }
    dp = g_new0(CmDp, 1);
    g_strlcpy(dp->name, config->name, sizeof dp->name);
    memcpy(dp->site, site, sizeof dp->site);
    dp->https = config->https;
    dp->allow_anonymous = config->allow_anonymous;
    dp->prestaged = config->prestaged;
    dp->naa = g_ptr_array_new_with_free_func(g_free);
    cm_dp_set_network_access_accounts(dp, config->network_access_accounts);
    dp->signing_cert = config->site_signing_cert ? cm_cert_ref((CmCert *)config->site_signing_cert)
                                                 : NULL;
    dp->pki_trust = config->pki_trust;
    dp->content = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)held_free);
    return dp;
}

void
cm_dp_free(CmDp *dp)
{
    if (dp == NULL)
        return;
    g_ptr_array_unref(dp->naa);
    cm_cert_unref(dp->signing_cert);
    g_hash_table_unref(dp->content);
    g_free(dp);
}

const char *
cm_dp_name(const CmDp *dp)
{
    return dp->name;
}

const CmDpCounters *
cm_dp_counters(const CmDp *dp)
{
    return &dp->counters;
}

/* ----------------------------------------------------- tokens */

char *
cm_dp_content_token_issue(const CmKey *site_signing_key, const char *site_code, const char *smsid,
                          CmTime lifetime, CmTime now, GError **error)
{
    g_autoptr(json_t) claims = NULL;
    char code[4];

    if (site_signing_key == NULL || site_code == NULL ||
        !cm_id_site_code_check(site_code, code, error) || !cm_id_smsid_check(smsid, error))
        goto bad;
    if (lifetime == 0)
        lifetime = CM_DP_TOKEN_LIFETIME_DEFAULT;
    claims = cm_jwt_claims_new(code, DP_TOKEN_AUDIENCE, smsid, now, lifetime, NULL);
    if (claims == NULL)
        goto bad;
    json_object_set_new(claims, "kind", json_string("content"));
    return cm_jwt_sign(site_signing_key, code, claims, error);
bad:
    if (error != NULL && *error == NULL)
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "a content access token needs the site signing key, the site code, the "
                    "client's SMSID and a lifetime");
    else
        g_prefix_error(error, "content access token: ");
    return NULL;
}

/* ------------------------------------------------ authentication */

static CmDpAuth
auth_refuse(CmDp *dp, CmResponse *resp, CmReason reason, const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static CmDpAuth
auth_refuse(CmDp *dp, CmResponse *resp, CmReason reason, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    cm_response_refuse(resp, reason, "distribution point %s: %s", dp->name, msg);
    return CM_DP_AUTH_NONE;
}

/* Windows-integrated: the computer account ("PC1$") or a network access
 * account; any other account is not in the table. */
static CmDpAuth
auth_windows(CmDp *dp, const CmPeer *peer, CmResponse *resp)
{
    g_autofree char *full = NULL;
    const char *at;
    size_t user_len;

    if (peer->principal[0] == '\0')
        return auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                           "Windows-integrated authentication named no account");
    at = strchr(peer->principal, '@');
    user_len = at ? (size_t)(at - peer->principal) : strlen(peer->principal);
    if (user_len > 1 && peer->principal[user_len - 1] == '$')
        return CM_DP_AUTH_COMPUTER;
    full = at || peer->domain[0] == '\0' ? g_strdup(peer->principal)
                                         : g_strdup_printf("%s@%s", peer->principal, peer->domain);
    for (char *c = full; *c != '\0'; c++)
        *c = g_ascii_tolower(*c);
    for (guint i = 0; i < dp->naa->len; i++)
        if (strcmp(full, g_ptr_array_index(dp->naa, i)) == 0)
            return CM_DP_AUTH_NAA;
    return auth_refuse(dp, resp, CM_REASON_FORBIDDEN,
                       "%s is neither a computer account nor a network access account",
                       peer->principal);
}

static CmDpAuth
auth_token(CmDp *dp, const CmDpRequest *req, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autoptr(json_t) claims = NULL;
    CmJwtCheck check = {.issuer = dp->site, .audience = DP_TOKEN_AUDIENCE, .now = now};
    const char *kind, *sub;

    if (req->transport == CM_TRANSPORT_HTTP)
        return auth_refuse(dp, resp, CM_REASON_HTTPS_REQUIRED,
                           "a content access token is taken over Enhanced HTTP or HTTPS, never "
                           "plain HTTP");
    if (dp->signing_cert == NULL || req->peer.token == NULL)
        return auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                           "no content access token, or no site signing certificate to verify "
                           "one");
    claims = cm_jwt_verify(req->peer.token, cm_cert_public_key(dp->signing_cert), &check, &e);
    if (claims == NULL)
        return auth_refuse(dp, resp, CM_REASON_UNTRUSTED, "content access token refused: %s",
                           e->message);
    kind = cm_json_str(claims, "kind", 16, &e);
    sub = kind ? cm_json_str(claims, "sub", CM_ID_SMSID_LEN, &e) : NULL;
    if (kind == NULL || strcmp(kind, "content") != 0 || sub == NULL ||
        !cm_id_smsid_check(sub, NULL))
        return auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                           "not a content access token of a client");
    return CM_DP_AUTH_TOKEN;
}

static CmDpAuth
auth_pki(CmDp *dp, const CmDpRequest *req, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;

    if (req->peer.client_cert == NULL || dp->pki_trust == NULL)
        return auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                           "no PKI client certificate, or no trusted roots for one");
    if (!cm_trust_verify(dp->pki_trust, req->peer.client_cert, req->client_chain, now,
                         CM_PURPOSE_CLIENT_AUTH, NULL, &e)) {
        CmReason r = g_error_matches(e, CM_PROTO_ERROR, CM_PROTO_ERROR_REVOKED) ? CM_REASON_REVOKED
                     : g_error_matches(e, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED)
                         ? CM_REASON_CERT_EXPIRED
                         : CM_REASON_UNTRUSTED;
        return auth_refuse(dp, resp, r, "%s", e->message);
    }
    return CM_DP_AUTH_PKI;
}

CmDpAuth
cm_dp_authenticate(CmDp *dp, const CmDpRequest *req, CmTime now, CmResponse *resp)
{
    CmDpAuth a;

    /* Each DP listens on its own transport. */
    if (dp->https && req->transport != CM_TRANSPORT_HTTPS)
        a = auth_refuse(dp, resp, CM_REASON_HTTPS_REQUIRED, "this is an HTTPS distribution point");
    else if (!dp->https && req->transport == CM_TRANSPORT_HTTPS)
        a = auth_refuse(dp, resp, CM_REASON_BAD_REQUEST,
                        "this is an HTTP distribution point (Enhanced HTTP for tokens)");
    else {
        switch (req->peer.kind) {
        case CM_AUTH_ANONYMOUS:
            a = dp->allow_anonymous
                    ? CM_DP_AUTH_ANONYMOUS
                    : auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                                  dp->https ? "an HTTPS distribution point authenticates every "
                                              "client"
                                            : "anonymous access is not allowed; authenticate "
                                              "with the computer account, the network access "
                                              "account or a content access token");
            break;
        case CM_AUTH_KERBEROS:
            a = auth_windows(dp, &req->peer, resp);
            break;
        case CM_AUTH_TOKEN:
            a = auth_token(dp, req, now, resp);
            break;
        case CM_AUTH_PKI:
            a = dp->https ? auth_pki(dp, req, now, resp)
                          : auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                                        "PKI client certificates are for HTTPS distribution "
                                        "points");
            break;
        default:
            a = auth_refuse(dp, resp, CM_REASON_UNTRUSTED,
                            "%s is not a way to authenticate to a distribution point",
                            cm_auth_name(req->peer.kind));
        }
    }
    dp->counters.by_auth[a]++;
    if (a == CM_DP_AUTH_NONE)
        dp->counters.refusals[resp->reason]++;
    return a;
}

/* ------------------------------------------------------- serving */

void
cm_dp_handle(CmDp *dp, const CmDpRequest *req, CmTime now, CmResponse *resp)
{
    g_autoptr(GError) e = NULL;
    g_autofree char *id = NULL;
    const char *rest, *slash, *file = NULL;
    const Held *h;
    GBytes *body;

    cm_response_clear(resp);
    dp->counters.requests++;
    if (cm_dp_authenticate(dp, req, now, resp) == CM_DP_AUTH_NONE)
        return;
    if (req->path == NULL || g_ascii_strncasecmp(req->path, DP_PREFIX, strlen(DP_PREFIX)) != 0) {
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT,
                           "content is under " DP_PREFIX "<content ID>[/<file>]");
        goto refused;
    }
    rest = req->path + strlen(DP_PREFIX);
    slash = strchr(rest, '/');
    id = slash ? g_strndup(rest, (size_t)(slash - rest)) : g_strdup(rest);
    if (slash != NULL)
        file = slash + 1;
    if (!dp_name_check(id, CM_DP_ID_MAX, "the content ID", &e) ||
        (file != NULL && !dp_name_check(file, CM_DP_NAME_MAX, "the file name", &e))) {
        cm_response_refuse(resp, CM_REASON_BAD_REQUEST, "%s", e->message);
        goto refused;
    }
    h = g_hash_table_lookup(dp->content, id);
    if (h == NULL || !h->accepted) {
        cm_response_refuse(resp, CM_REASON_NOT_FOUND, "content %s is not on distribution point %s",
                           id, dp->name);
        goto refused;
    }
    if (file == NULL) {
        body = cm_dp_package_manifest(h->pkg);
        dp->counters.served_manifests++;
    } else if ((body = cm_dp_package_file(h->pkg, file)) != NULL) {
        dp->counters.served_files++;
    } else {
        cm_response_refuse(resp, CM_REASON_NOT_FOUND, "content %s has no file %s", id, file);
        goto refused;
    }
    resp->status = 200;
    resp->reason = CM_REASON_OK;
    resp->body = g_bytes_ref(body);
    dp->counters.bytes_served += (gint64)g_bytes_get_size(body);
    return;
refused:
    dp->counters.refusals[resp->reason]++;
}

/* ------------------------------------------------------- content */

void
cm_dp_content_add(CmDp *dp, CmDpPackage *pkg, CmDpSource source)
{
    Held *h = g_new0(Held, 1);

    h->pkg = cm_dp_package_ref(pkg);
    h->source = source;
    h->accepted = source == CM_DP_SOURCE_TRANSFER;
    g_hash_table_replace(dp->content, g_strdup(cm_dp_package_id(pkg)), h);
}

gboolean
cm_dp_content_remove(CmDp *dp, const char *id)
{
    return id != NULL && g_hash_table_remove(dp->content, id);
}

CmDpPackage *
cm_dp_content_get(const CmDp *dp, const char *id)
{
    const Held *h = id ? g_hash_table_lookup(dp->content, id) : NULL;

    return h ? h->pkg : NULL;
}

guint
cm_dp_content_count(const CmDp *dp)
{
    return g_hash_table_size(dp->content);
}

gboolean
cm_dp_prestage_import(CmDp *dp, const guint8 *data, size_t len, GError **error)
{
    g_autoptr(CmDpPackage) pkg = NULL;

    if (!dp->prestaged) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "distribution point %s is not a prestaged distribution point; the site "
                    "transfers its content",
                    dp->name);
        return FALSE;
    }
    pkg = cm_dp_prestage_file_parse(data, len, error);
    if (pkg == NULL)
        return FALSE;
    cm_dp_content_add(dp, pkg, CM_DP_SOURCE_PRESTAGED);
    return TRUE;
}

CmDpDistribution
cm_dp_distribute(CmDp *dp, const char *id, const guint8 hash[32], guint64 size)
{
    Held *h = id ? g_hash_table_lookup(dp->content, id) : NULL;

    if (h != NULL && memcmp(cm_dp_package_hash(h->pkg), hash, 32) == 0 &&
        cm_dp_package_size(h->pkg) == size) {
        if (h->source == CM_DP_SOURCE_PRESTAGED && !h->accepted) {
            h->accepted = TRUE;
            dp->counters.prestaged_accepted++;
            return CM_DP_DISTRIBUTE_PRESTAGED;
        }
        return CM_DP_DISTRIBUTE_PRESENT;
    }
    if (h != NULL && h->source == CM_DP_SOURCE_PRESTAGED) {
        /* Placed by hand but not what the site distributes: never served. */
        dp->counters.prestaged_mismatch++;
        g_hash_table_remove(dp->content, id);
    }
    dp->counters.transfers_needed++;
    return CM_DP_DISTRIBUTE_TRANSFER;
}
