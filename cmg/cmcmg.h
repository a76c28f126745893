/* cmcmg.h - the cloud management gateway (CMG) and its connection point.
 *
 * Pure logic, like the other role libraries: no socket, no clock, no file.
 *
 * The gateway (CmCmg, one per VM instance of the service) is handed each
 * client request as the TLS layer saw it (path, query, declared content
 * length, negotiated TLS version, the client certificate or bearer token)
 * and returns a verdict: forward to this connection point, refuse with this
 * reason and HTTP status, or drop the connection.  It pre-authenticates
 * every client (PKI certificate against the roots uploaded to it and the
 * site's CTL, optional CRL check; or a token: Entra ID device token, site
 * client token, bulk registration token), filters URLs against the
 * published mappings, checks content length per published endpoint and
 * spreads requests round-robin over the connection points of the site
 * (REQ CMG-02..07, CMG-12).  Connection points authenticate to it with
 * their certificate and connection ID (REQ CMG-01).
 *
 * The connection point (CmCmgcp) is a state machine like the agent: fed
 * with time, answers and timer expiries, it returns actions (connect to
 * instance i, check instance i, report status, report traffic) and when to
 * wake it.  It keeps a connection to every instance, checks each every
 * minute, reconnects, and reports traffic per endpoint every five minutes
 * (REQ CMG-08).  It maps the external URL of a forwarded request to the
 * internal server (REQ CMG-10).
 *
 * Also here: bulk registration tokens and client token renewal (CMG-12),
 * the storage key and app secret vault (CMG-09), the TLS 1.2 floor
 * (CMG-11) and the internet MP's user policy rule (NET-08).
 *
 * Ownership: _new/_issue/_from_/_to_ return what the caller owns;
 * "(borrowed)" pointers live as long as their owner.  Errors are GErrors in
 * CM_CMG_ERROR, or CM_PROTO_ERROR passed up from libcmproto.
 */
#ifndef CMCMG_H
#define CMCMG_H

#include "cmproto.h"

G_BEGIN_DECLS

#define CM_CMG_ERROR (cm_cmg_error_quark())
GQuark cm_cmg_error_quark(void);

typedef enum {
    CM_CMG_ERROR_INVALID, /* a bad argument, setting or message */
    CM_CMG_ERROR_REFUSED, /* refused by a rule (TLS below 1.2, lifetime over 7 days) */
} CmCmgError;

/* ------------------------------------------------------------- TLS */

/* TLS protocol versions, for the floor the gateway enforces (REQ CMG-11). */
typedef enum {
    CM_TLS_1_0 = 10,
    CM_TLS_1_1 = 11,
    CM_TLS_1_2 = 12,
    CM_TLS_1_3 = 13,
} CmTlsVersion;

#define CM_CMG_TLS_MIN CM_TLS_1_2

const char *cm_cmg_tls_name(CmTlsVersion v); /* "1.2" */
/* "1.0" "1.1" "1.2" "1.3" (also "TLSv1.2"). */
gboolean cm_cmg_tls_parse(const char *s, CmTlsVersion *out, GError **error);
/* REFUSED unless min is TLS 1.2 or later: a gateway configured to accept
 * TLS 1.1 is refused at creation, not discovered by a scanner. */
gboolean cm_cmg_tls_check(CmTlsVersion min, GError **error);

/* ------------------------------------------------------ URL mappings */

/* One published mapping (REQ CMG-05/10): the external URL
 * https://<CMG>/CCM_Proxy_MutualAuth/<role id>/<endpoint>
 * (or CCM_Proxy_ServerAuth) of a management point's
 * endpoint, the internal server the connection point forwards it to, and
 * the largest body the endpoint takes (REQ CMG-06). */
typedef struct {
    char site_code[4];
    guint64 role_id;
    char server[CM_NAME_MAX + 1]; /* internal host, "mp1.corp.example" */
    CmCmgEndpoint endpoint;
    size_t max_body;
} CmCmgMapping;

#define CM_CMG_MAX_MAPPINGS 4096
#define CM_CMG_MAPPINGS_JSON_MAX (CM_CMG_MAX_MAPPINGS * 256 + 512)

/* The largest body of the MP endpoints published under ep: CCM_System
 * 64 KiB (registration), CCM_Incoming 256 KiB (inventory), SMS_MP 4 KiB. */
size_t cm_cmg_endpoint_body_max(CmCmgEndpoint ep);

/* The set of mappings the site uploads to the gateway and replicates to the
 * connection points.  Reference counted; not changed once shared. */
typedef struct CmCmgMappings CmCmgMappings;

CmCmgMappings *cm_cmg_mappings_new(const char *cmg_name, GError **error);
CmCmgMappings *cm_cmg_mappings_ref(CmCmgMappings *m);
void cm_cmg_mappings_unref(CmCmgMappings *m);
/* Adds one mapping; a second mapping of the same (role ID, endpoint), a
 * max_body of 0 or over the endpoint's bound, a bad site code or server
 * name is refused. */
gboolean cm_cmg_mappings_add(CmCmgMappings *m, const CmCmgMapping *mapping, GError **error);
/* What enabling CMG traffic on an MP publishes: CCM_System, CCM_Incoming
 * and SMS_MP with their default bounds. */
gboolean cm_cmg_mappings_add_mp(CmCmgMappings *m, const char *site_code, guint64 role_id,
                                const char *server, GError **error);
const char *cm_cmg_mappings_name(const CmCmgMappings *m); /* the CMG name, lower case */
size_t cm_cmg_mappings_count(const CmCmgMappings *m);
const CmCmgMapping *cm_cmg_mappings_get(const CmCmgMappings *m, size_t i);
const CmCmgMapping *cm_cmg_mappings_find(const CmCmgMappings *m, guint64 role_id,
                                         CmCmgEndpoint ep);
/* {"cmg":"cmg.contoso.com","mappings":[{"endpoint":"CCM_System",
 * "max_body":65536,"role_id":72057594037927937,"server":"mp1.corp.example",
 * "site_code":"PS1"}]}; bounded (CM_CMG_MAPPINGS_JSON_MAX), strict. */
char *cm_cmg_mappings_to_json(const CmCmgMappings *m);
CmCmgMappings *cm_cmg_mappings_from_json(const char *json, size_t len, GError **error);
/* The internet MP list entries (REQ CMG-10): "<CMG>/CCM_Proxy_MutualAuth/<id>"
 * for every MP with all three endpoints published (new array of strings,
 * ordered by role ID). */
GPtrArray *cm_cmg_mappings_mp_entries(const CmCmgMappings *m);

/* Where a client sends ep through the CMG: the path
 * "/CCM_Proxy_MutualAuth/<id>/CCM_System/request/policybody" and the query
 * ("MPLIST", or "" for none), new strings.  FALSE for an endpoint the CMG
 * does not carry (the notification channel). */
gboolean cm_cmg_client_path(CmCmgAuth auth, guint64 role_id, CmEndpoint ep, char **path,
                            char **query);

/* A request's MP endpoint from its parsed CMG URL and query: CM_EP_NONE
 * when nothing the MP serves lives there. */
CmEndpoint cm_cmg_url_endpoint(const CmCmgUrl *url, const char *query);

/* ----------------------------------------------------------- tokens */

/* Bulk registration tokens (REQ CMG-12): created by an administrator for
 * internet devices that never join the intranet; a JWT signed with the
 * site server signing key (kid and iss the site code, aud "cmg", kind
 * "bulk", a random jti the administrator can block).  They register a
 * device and nothing else. */
#define CM_CMG_BULK_LIFETIME_DEFAULT (3 * CM_USEC_PER_DAY)
#define CM_CMG_BULK_LIFETIME_MAX     (7 * CM_USEC_PER_DAY)
#define CM_CMG_TOKEN_ID_LEN          32 /* hex characters of a jti */
/* A token verified once is recalled by its exact bytes until its exp (with
 * the JWT leeway), the blocked list consulted each time: at most this many
 * tokens of at most this length are remembered. */
#define CM_CMG_TOKEN_CACHE_MAX       4096
#define CM_CMG_TOKEN_CACHE_TOKEN_MAX 4096

/* lifetime 0: the default; over 7 days is REFUSED.  jti_out (may be NULL)
 * receives the token's ID, which blocking names. */
char *cm_cmg_bulk_token_issue(const CmKey *site_signing_key, const char *site_code,
                              CmTime lifetime, CmTime now, CmRng *rng,
                              char jti_out[CM_CMG_TOKEN_ID_LEN + 1], GError **error);

/* When a client should renew its site-issued client token (the register /
 * regstatus answer's "token"): half-way through its lifetime, so that a
 * device that comes online at least that often never holds a lapsed one.
 * Verifies the token with the site signing key first (EXPIRED once it
 * lapsed: the device must then register again, with a bulk token or on the
 * intranet). */
gboolean cm_cmg_token_renew_at(const char *token, const CmKey *site_signing_key,
                               const char *site_code, CmTime now, CmTime *renew_at,
                               GError **error);

/* ---------------------------------------------------------- gateway */

/* A site the gateway serves: its code and the site server signing
 * certificate whose key signs client and bulk registration tokens. */
typedef struct {
    const char *site_code;
    const CmCert *signing_cert;
} CmCmgSite;

/* The Entra ID tenant whose device tokens the gateway accepts. */
typedef struct {
    const char *issuer;   /* "https://login.example/<tenant>/v2.0" */
    const char *audience; /* the CMG server app's ID */
    const char *tenant;   /* reported as the peer's domain */
    const CmKey *key;     /* the tenant's token signing key (public) */
} CmCmgEntra;

#define CM_CMG_MAX_INSTANCES 16
#define CM_CMG_MAX_SITES     16
#define CM_CMG_MAX_ROOTS     64
#define CM_CMG_MAX_CPS       32

typedef struct {
    const char *name;             /* service name, "cmg.contoso.com" */
    guint instance;               /* this VM instance, 0-based */
    CmTlsVersion tls_min;         /* 0: TLS 1.2; below 1.2 refused (REQ CMG-11) */
    const CmCmgSite *sites;       /* 1..CM_CMG_MAX_SITES */
    size_t n_sites;
    const CmCert *const *roots;   /* trusted root certificates uploaded (REQ CMG-02) */
    size_t n_roots;
    const CmCert *const *intermediates; /* issuing CAs the clients may not send */
    size_t n_intermediates;
    gboolean crl_check;           /* verify client certificate revocation (REQ CMG-03) */
    const CmCmgEntra *entra;      /* NULL: no Entra ID tokens */
} CmCmgConfig;

typedef struct CmCmg CmCmg;

/* Refuses a configuration without a name, sites or with TLS below 1.2. */
CmCmg *cm_cmg_new(const CmCmgConfig *config, GError **error);
void cm_cmg_free(CmCmg *cmg);
const char *cm_cmg_name(const CmCmg *cmg);
guint cm_cmg_instance(const CmCmg *cmg);
CmTlsVersion cm_cmg_tls_min(const CmCmg *cmg);

/* The site's published mappings (a reference is kept). */
void cm_cmg_set_mappings(CmCmg *cmg, CmCmgMappings *m);
/* The site's certificate trust list (copied; NULL: every uploaded root is
 * accepted, the broad CTL the seeds warn about; REQ CMG-04). */
gboolean cm_cmg_set_ctl(CmCmg *cmg, const CmCtl *ctl, GError **error);
/* A CRL the gateway fetched from the published distribution point.  With
 * CRL checking on and no current CRL for an issuer (the distribution point
 * is unreachable, or it is not published at all) the revocation status is
 * unknown: the gateway drops the connection and the client retries
 * (REQ CMG-03). */
gboolean cm_cmg_add_crl(CmCmg *cmg, const CmCrl *crl, GError **error);
void cm_cmg_clear_crls(CmCmg *cmg);
void cm_cmg_set_crl_check(CmCmg *cmg, gboolean on);
/* Blocking a bulk registration token by its jti (REQ CMG-12). */
void cm_cmg_block_token(CmCmg *cmg, const char *jti);
void cm_cmg_unblock_token(CmCmg *cmg, const char *jti);

/* ----------------------------------------- connection points (gateway side) */

/* Connection IDs: a canonical upper-case GUID, without "GUID:". */
#define CM_CMG_CONNECTION_ID_LEN 36
void cm_cmg_connection_id_new(CmRng *rng, char out[CM_CMG_CONNECTION_ID_LEN + 1]);
gboolean cm_cmg_connection_id_check(const char *id, GError **error);

/* A connection point the site registered with the gateway: its connection
 * ID, site and client authentication certificate (REQ CMG-01). */
typedef struct {
    const char *connection_id;
    const char *site_code;
    const char *name; /* host name, for status */
    const CmCert *cert;
} CmCmgCpInfo;

gboolean cm_cmg_add_connection_point(CmCmg *cmg, const CmCmgCpInfo *info, GError **error);
gboolean cm_cmg_remove_connection_point(CmCmg *cmg, const char *connection_id);

/* A connection point opening a connection: peer_cert is the certificate it
 * presented in TLS, body its hello {"connection_id":"…","site_code":"PS1"}.
 * Accepted (200 with {"cmg":…,"connection_id":…,"instance":n,
 * "check_interval_s":60}) only when the ID is registered for that site and
 * the certificate is the one registered with it and within its validity;
 * else 403 untrusted / cert-expired, 400 for a malformed hello. */
gboolean cm_cmg_cp_hello(CmCmg *cmg, const CmCert *peer_cert, const guint8 *body, size_t len,
                         CmTime now, CmResponse *resp);
/* The check a connection point sends every minute on an open connection
 * (the same body); 409 conflict when that connection is not open here, so
 * that the connection point reconnects. */
gboolean cm_cmg_cp_check(CmCmg *cmg, const CmCert *peer_cert, const guint8 *body, size_t len,
                         CmTime now, CmResponse *resp);
/* The driver saw the connection drop. */
void cm_cmg_cp_disconnect(CmCmg *cmg, const char *connection_id);
/* A connection not checked for this long is taken for dead. */
#define CM_CMG_CHECK_INTERVAL (60 * CM_USEC_PER_SEC)
#define CM_CMG_CP_TIMEOUT     (150 * CM_USEC_PER_SEC)
/* Connection points of site_code the gateway would forward to at now. */
guint cm_cmg_cp_live(const CmCmg *cmg, const char *site_code, CmTime now);

/* -------------------------------------------------- client requests */

/* A client request as the TLS layer hands it over. */
typedef struct {
    const char *path;           /* the HTTP path, without the query */
    const char *query;          /* after '?', NULL or "" for none */
    size_t content_length;      /* declared body length */
    CmTlsVersion tls;           /* negotiated version; 0 is taken as TLS 1.2 */
    const CmCert *client_cert;  /* TLS client certificate, NULL: none */
    GPtrArray *client_chain;    /* CmCert the client sent with it, may be NULL */
    const char *token;          /* "Authorization: Bearer" token, NULL: none */
    const char *smsid;          /* CCM-ClientID header, NULL or "": none */
} CmCmgRequest;

typedef enum {
    CM_CMG_FORWARD, /* send it to the connection point named in the verdict */
    CM_CMG_REFUSE,  /* answer with verdict.resp */
    /* Close the connection without an answer, as IIS fails the handshake
     * when it cannot learn a certificate's revocation status: the client
     * sees a transport failure and retries (REQ CMG-03).  verdict.resp says
     * why, for logs and for a driver that must answer something. */
    CM_CMG_DROP,
} CmCmgAction;

typedef struct {
    CmCmgAction action;
    /* FORWARD */
    char connection_id[CM_CMG_CONNECTION_ID_LEN + 1];
    char site_code[4];
    guint64 role_id;
    CmCmgEndpoint cmg_endpoint;
    CmEndpoint ep;   /* the MP endpoint the request names */
    CmPeer peer;     /* the identity the gateway established, for the MP:
                      * PKI (client_cert borrowed from the request, principal
                      * its CN), ENTRA (device ID, tenant), TOKEN (the SMSID of
                      * a client token, "bulk:<jti>" for a bulk token; domain
                      * the site code; token borrowed from the request) */
    /* REFUSE, DROP */
    CmResponse resp; /* owned: cm_cmg_verdict_clear */
} CmCmgVerdict;

void cm_cmg_verdict_clear(CmCmgVerdict *v);
/* Decides what becomes of req at now (v is cleared first).  Order:
 * TLS floor, pre-authentication (certificate or token), URL filter,
 * content length, the token's scope, the connection point. */
CmCmgAction cm_cmg_handle(CmCmg *cmg, const CmCmgRequest *req, CmTime now, CmCmgVerdict *v);

typedef struct {
    gint64 requests;
    gint64 forwarded;
    gint64 dropped;                   /* revocation status unknown (REQ CMG-03) */
    gint64 refusals[CM_REASON__COUNT];
    gint64 by_auth[CM_AUTH_TOKEN + 1]; /* forwarded, by how the client authenticated */
    gint64 bulk_registrations;        /* forwarded with a bulk registration token */
    gint64 per_cp_forwarded[CM_CMG_MAX_CPS]; /* by registration order of the connection points */
    gint64 cp_hellos, cp_refused, cp_checks;
    gint64 token_verifications; /* tokens whose signature was checked */
    gint64 token_cache_hits;    /* tokens recalled from an earlier check */
} CmCmgCounters;

const CmCmgCounters *cm_cmg_counters(const CmCmg *cmg);

/* ------------------------------------------------ connection point */

typedef struct {
    const char *connection_id;
    const char *site_code;
    const char *name;            /* its host name */
    const char *cmg_name;        /* the CMG service name */
    guint instances;             /* VM instances of the CMG, 1..CM_CMG_MAX_INSTANCES */
    const CmCert *cmg_cert;      /* the CMG's server certificate (pinned) */
    CmCmgMappings *mappings;     /* replicated from the site (a reference is kept) */
} CmCmgcpConfig;

typedef struct CmCmgcp CmCmgcp;

CmCmgcp *cm_cmgcp_new(const CmCmgcpConfig *config, GError **error);
void cm_cmgcp_free(CmCmgcp *cp);
void cm_cmgcp_set_mappings(CmCmgcp *cp, CmCmgMappings *m);

typedef enum {
    CM_CMGCP_HELLO,          /* open a TLS connection to instance, send body */
    CM_CMGCP_CHECK,          /* send body on the open connection to instance */
    CM_CMGCP_CLOSE,          /* close the connection to instance */
    CM_CMGCP_REPORT_STATUS,  /* send body to the site: connection status */
    CM_CMGCP_REPORT_TRAFFIC, /* send body to the site: traffic per endpoint */
} CmCmgcpActionKind;

const char *cm_cmgcp_action_name(CmCmgcpActionKind k);

typedef struct {
    CmCmgcpActionKind kind;
    guint instance;
    guint64 id;   /* HELLO, CHECK: echo it with the answer */
    GBytes *body; /* owned, JSON */
} CmCmgcpAction;

typedef struct {
    GPtrArray *actions; /* CmCmgcpAction*, owned */
    CmTime wake_at;     /* 0: no timer wanted */
} CmCmgcpActions;

void cm_cmgcp_actions_init(CmCmgcpActions *a);
void cm_cmgcp_actions_clear(CmCmgcpActions *a);

/* Starts: a hello to every instance. */
void cm_cmgcp_start(CmCmgcp *cp, CmTime now, CmCmgcpActions *out);
/* The answer to a HELLO or CHECK: server_cert is the certificate the TLS
 * layer saw (HELLO only; NULL for a CHECK), resp NULL for a transport
 * failure.  A hello is accepted only from the pinned certificate, echoing
 * this connection point's ID, the CMG's name and the instance asked. */
void cm_cmgcp_on_answer(CmCmgcp *cp, guint64 id, const CmCert *server_cert,
                        const CmResponse *resp, CmTime now, CmCmgcpActions *out);
void cm_cmgcp_on_timer(CmCmgcp *cp, CmTime now, CmCmgcpActions *out);
/* The driver saw the connection to instance drop. */
void cm_cmgcp_on_disconnect(CmCmgcp *cp, guint instance, CmTime now, CmCmgcpActions *out);

/* Where a request the gateway forwarded goes (REQ CMG-08/10). */
typedef struct {
    char server[CM_NAME_MAX + 1]; /* internal server */
    CmEndpoint ep;
    const char *internal_path;    /* the MP path with its query, cm_ep_path(ep) (static) */
    guint64 role_id;
    CmCmgEndpoint cmg_endpoint;
} CmCmgRoute;

/* Maps the external path and query to the internal server, counting the
 * request for the traffic report; FALSE (not counted) when no mapping
 * this connection point holds serves it. */
gboolean cm_cmgcp_route(CmCmgcp *cp, const char *path, const char *query, size_t bytes_in,
                        CmCmgRoute *out, GError **error);
/* The internal server's answer came back: bytes_out are counted. */
void cm_cmgcp_routed(CmCmgcp *cp, const CmCmgRoute *route, size_t bytes_out, int status);

#define CM_CMGCP_REPORT_INTERVAL (5 * CM_USEC_PER_MIN)

typedef enum {
    CM_CMGCP_DOWN,
    CM_CMGCP_CONNECTING,
    CM_CMGCP_UP,
} CmCmgcpConnState;

const char *cm_cmgcp_conn_state_name(CmCmgcpConnState s);

typedef struct {
    CmCmgcpConnState state[CM_CMG_MAX_INSTANCES];
    guint instances;
    guint up;                /* instances connected */
    gint64 hellos, checks, check_failures, reconnects, auth_failures;
    gint64 status_reports, traffic_reports;
    gint64 routed, unrouted;
} CmCmgcpStatus;

const CmCmgcpStatus *cm_cmgcp_status(const CmCmgcp *cp);

/* ------------------------------------------------ storage key, app secrets */

/* What the site keeps for a CMG (REQ CMG-09): the storage account key,
 * rotated automatically every 180 days (the previous key stays valid until
 * the next rotation, so that blobs written just before it still read), and
 * the secrets of the Entra ID apps (server and client), renewable when
 * Entra ID rotates them.  The whole vault is kept sealed under the site's
 * master key (AES-256-GCM); nothing of it is ever logged. */
#define CM_CMG_STORAGE_KEY_ROTATION (180 * CM_USEC_PER_DAY)
#define CM_CMG_APP_SECRET_MAX       1024

typedef struct CmCmgVault CmCmgVault;

CmCmgVault *cm_cmg_vault_new(CmRng *rng, CmTime now);
void cm_cmg_vault_free(CmCmgVault *v);
/* The current storage key (32 bytes, borrowed) and since when. */
const guint8 *cm_cmg_vault_storage_key(const CmCmgVault *v, CmTime *created);
/* Whether key is the current or previous storage key. */
gboolean cm_cmg_vault_storage_key_valid(const CmCmgVault *v, const guint8 key[32]);
CmTime cm_cmg_vault_next_rotation(const CmCmgVault *v);
/* Rotates the storage key when it is due at now: TRUE when it did. */
gboolean cm_cmg_vault_tick(CmCmgVault *v, CmRng *rng, CmTime now);
/* Stores (or renews) an app secret: app is "server" or "client". */
gboolean cm_cmg_vault_set_app_secret(CmCmgVault *v, const char *app, const char *secret,
                                     CmTime expires, CmTime now, GError **error);
/* The app's secret (borrowed) when it is stored and not expired at now;
 * NULL with an error saying to renew it otherwise. */
const char *cm_cmg_vault_app_secret(const CmCmgVault *v, const char *app, CmTime now,
                                    GError **error);
/* Sealed under master_key for the site database, and back. */
GBytes *cm_cmg_vault_seal(const CmCmgVault *v, const guint8 master_key[32], GError **error);
CmCmgVault *cm_cmg_vault_open(const guint8 master_key[32], const guint8 *blob, size_t len,
                              GError **error);
/* The plaintext form inside the seal (for the fuzz target). */
CmCmgVault *cm_cmg_vault_from_json(const char *json, size_t len, GError **error);

/* ------------------------------------------------ internet MP user policy */

/* Whether the forest of a user's domain is trusted by the forest of the
 * management point (the site's cm_site_kerberos_verifiable fits). */
typedef gboolean (*CmCmgForestTrusted)(void *ctx, const char *user_domain);

typedef enum {
    CM_CMG_POLICY_COMPUTER_ONLY,
    CM_CMG_POLICY_USER_AND_COMPUTER,
} CmCmgPolicyScope;

/* Which policies an MP serves a user of user_domain (REQ NET-08): an
 * intranet MP both; an internet-facing MP user policies only when the
 * user's forest is trusted, else computer policies only.  A user without a
 * domain (a workgroup or cloud-only account) gets computer policies only
 * from an internet MP. */
CmCmgPolicyScope cm_cmg_policy_scope(gboolean mp_internet, const char *user_domain,
                                     CmCmgForestTrusted trusted, void *ctx);
/* The refusal an MP answers a user policy request with when the scope is
 * computer only: 403 untrusted naming the domain.  TRUE (resp untouched)
 * when user policy may be served. */
gboolean cm_cmg_user_policy_check(gboolean mp_internet, const CmPeer *user,
                                  CmCmgForestTrusted trusted, void *ctx, CmResponse *resp);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCmg, cm_cmg_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCmgcp, cm_cmgcp_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCmgMappings, cm_cmg_mappings_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCmgVault, cm_cmg_vault_free)

G_END_DECLS

#endif
