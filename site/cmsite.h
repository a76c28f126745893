/* cmsite.h - the site server library: site database, keys, registration
 * with approval and blocking, collections, deployments and signed policies,
 * client messages, maintenance tasks, forests and trusts.
 *
 * Pure logic over its SQLite store: every call takes the current time, no
 * call opens a socket or reads the clock.  Management points hand it the
 * client requests that need the site (cm_site_handle); administrators act
 * through the cm_site_admin_* calls, each of which lands in the audit trail.
 */
#ifndef CMSITE_H
#define CMSITE_H

#include "cmproto.h"

G_BEGIN_DECLS

#define CM_SITE_ERROR (cm_site_error_quark())
GQuark cm_site_error_quark(void);

typedef enum {
    CM_SITE_ERROR_INVALID,   /* a bad argument or setting */
    CM_SITE_ERROR_NOT_FOUND, /* no such client, collection, deployment */
    CM_SITE_ERROR_STATE,     /* not allowed in the record's state */
    CM_SITE_ERROR_STORE,     /* the database failed */
    CM_SITE_ERROR_REFUSED,   /* refused by a setting or trust rule */
} CmSiteError;

/* ------------------------------------------------------------ settings */

typedef enum {
    CM_COMM_HTTPS_ONLY,
    CM_COMM_HTTP_OR_HTTPS, /* deprecated since 2103 (REQ MSG-05) */
    CM_COMM_EHTTP,         /* Enhanced HTTP */
} CmCommMode;

typedef enum {
    CM_APPROVAL_MANUAL,
    CM_APPROVAL_TRUSTED_DOMAINS, /* default */
    CM_APPROVAL_ALL,
} CmApprovalMode;

/* What the site does when a registration conflicts with a record
 * (REQ REG-06). */
typedef enum {
    CM_CONFLICT_MERGE,      /* default: the new certificate replaces the old */
    CM_CONFLICT_NEW_RECORD, /* a new record; the old one stays */
    CM_CONFLICT_BLOCK,      /* refuse and block until an administrator decides */
} CmConflictMode;

typedef struct {
    CmCommMode communication;
    gboolean require_signing;
    gboolean require_sha256;
    gboolean encrypt;            /* clients encrypt inventory and state (REQ MSG-02) */
    gboolean allow_3des;         /* accept legacy 3DES envelopes */
    CmApprovalMode approval;
    CmConflictMode conflicts;
    gboolean crl_check;          /* check client PKI certificates against CRLs */
    CmKeyAlg key_alg;            /* for the site's own keys */
    int discovery_retention_days; /* 90 (REQ DATA-01) */
    int client_status_retention_days; /* 31 (REQ DATA-02) */
    CmTime client_token_lifetime; /* site-issued client tokens (REQ CMG-12) */
} CmSiteSettings;

void cm_site_settings_default(CmSiteSettings *s);
const char *cm_comm_mode_name(CmCommMode m);   /* "https-only", "http-or-https", "ehttp" */
gboolean cm_comm_mode_parse(const char *s, CmCommMode *out, GError **error);
const char *cm_approval_mode_name(CmApprovalMode m); /* "manual", "trusted-domains", "all" */
gboolean cm_approval_mode_parse(const char *s, CmApprovalMode *out, GError **error);
const char *cm_conflict_mode_name(CmConflictMode m); /* "merge", "new-record", "block" */
gboolean cm_conflict_mode_parse(const char *s, CmConflictMode *out, GError **error);
/* Whether transport t may carry client traffic under mode m. */
gboolean cm_comm_mode_allows(CmCommMode m, CmTransport t);

/* ---------------------------------------------------------------- site */

typedef struct CmSite CmSite;

typedef struct {
    const char *site_code;      /* "PS1" */
    const char *db_path;        /* ":memory:" or a file */
    CmStoreMode db_mode;
    gboolean top_level;         /* a top-level site's exchange key is the TRK */
    const char *forest;         /* the site server's forest, "corp.example" */
    const guint8 *master_key;   /* 32 bytes: encrypts the secrets table (REQ ADM-03) */
    const CmSiteSettings *settings; /* NULL: defaults */
} CmSiteConfig;

/* Creates a site (keys, certificates, schema) when the database is new, or
 * opens an existing one; a database of another site code is refused. */
CmSite *cm_site_open(const CmSiteConfig *config, CmTime now, GError **error);
void cm_site_free(CmSite *site);

const char *cm_site_code(const CmSite *site);
const CmSiteSettings *cm_site_settings(const CmSite *site);
gboolean cm_site_set_settings(CmSite *site, const CmSiteSettings *s, const char *admin,
                              CmTime now, GError **error);

/* The site's trust material (borrowed). */
CmKey *cm_site_trk(const CmSite *site);             /* private: the site exchange key */
CmCert *cm_site_signing_cert(const CmSite *site);   /* always self-signed (REQ TRUST-08) */
CmCert *cm_site_encryption_cert(const CmSite *site);
CmCert *cm_site_issuing_root(const CmSite *site);   /* Enhanced HTTP issuing root (REQ TRUST-10) */
/* The SMSPublicRootKey value an installer takes (REQ TRUST-05), new string. */
char *cm_site_export_trk(const CmSite *site);
CmStore *cm_site_store(CmSite *site);
/* Trust store for client PKI certificates (roots, CRLs, CTL); borrowed. */
CmTrust *cm_site_pki_trust(CmSite *site);
/* Trusts root for client certificates with crl as its current CRL (NULL:
 * none), replacing the previous store: a new CRL supersedes the old one
 * (REQ TRUST-14). */
gboolean cm_site_set_pki(CmSite *site, const CmCert *root, const CmCrl *crl, GError **error);

/* What the site publishes: the siteinfo body MPs serve (public TRK,
 * signing and encryption certificates, client-facing settings) and the MP
 * list of location replies; see docs/protocol.md.  New references. */
json_t *cm_site_siteinfo_json(CmSite *site);
json_t *cm_site_mplist_json(CmSite *site);

/* ---------------------------------------------------------------- roles */

/* A management point of this site: its certificate is signed with the TRK
 * (REQ TRUST-02); with Enhanced HTTP it also gets a TLS certificate from
 * the site's issuing root.  New references in *mp_cert / *tls_cert / *key. */
typedef struct {
    char name[CM_NAME_MAX + 1];
    guint64 role_id;
    gboolean http, https, ehttp;
    gboolean internet; /* internet-facing (REQ NET-08) */
} CmMpInfo;

gboolean cm_site_add_mp(CmSite *site, const char *name, gboolean internet, CmTime now,
                        CmMpInfo *info_out, CmCert **mp_cert, CmCert **tls_cert, CmKey **key,
                        GError **error);
/* The site's MPs (array of CmMpInfo). */
GArray *cm_site_mps(CmSite *site);

/* A TLS certificate for a site system or an administrator, issued from
 * the site's issuing root (the one that issues Enhanced HTTP certificates,
 * REQ TRUST-10), with a new key: profile CM_CERT_SERVER (the site server's
 * own listener; dns_name its host name) or CM_CERT_CLIENT_AUTH (an MP
 * calling the site, an administrator; dns_name NULL).  The lab's daemons
 * authenticate each other with these; cn names the holder. */
gboolean cm_site_issue_system_cert(CmSite *site, CmCertProfile profile, const char *cn,
                                   const char *dns_name, CmTime now, CmCert **cert_out,
                                   CmKey **key_out, GError **error);

/* ------------------------------------------------ forests and domains */

typedef enum {
    CM_TRUST_NONE,
    CM_TRUST_ONE_WAY, /* the first forest trusts the second */
    CM_TRUST_TWO_WAY,
} CmForestTrust;

gboolean cm_site_add_forest(CmSite *site, const char *forest, const char *const *domains,
                            GError **error);
gboolean cm_site_set_trust(CmSite *site, const char *forest_a, const char *forest_b,
                           CmForestTrust trust, GError **error);
/* The forest a domain belongs to (new string), NULL for unknown/workgroup. */
char *cm_site_forest_of(CmSite *site, const char *domain);
/* Whether the site can verify Kerberos authentication of a principal from
 * domain (REQ NET-03): the domain's forest is the site's, or the site's
 * forest trusts it. */
gboolean cm_site_kerberos_verifiable(CmSite *site, const char *domain);

/* ----------------------------------------------- client requests */

/* Handles a client request an MP forwarded (everything but the anonymous
 * endpoints the MP answers itself).  Verifies the signature against the
 * registered key, refuses blocked and unapproved clients, commits what the
 * message carries before answering 200. */
void cm_site_handle(CmSite *site, const CmRequest *req, CmTime now, CmResponse *resp);

/* ----------------------------------------------- administration */

typedef enum {
    CM_CLIENT_PENDING,
    CM_CLIENT_APPROVED,
    CM_CLIENT_BLOCKED,
} CmClientState;

const char *cm_client_state_name(CmClientState s);

typedef struct {
    char smsid[CM_ID_SMSID_LEN + 1];
    char hwid[CM_ID_HWID_LEN + 1];
    char name[CM_NAME_MAX + 1];
    char domain[CM_NAME_MAX + 1];
    CmClientState state;
    CmAuthKind registered_by;
    CmKspKind ksp;
    gboolean media;     /* boot/OS deployment media (REQ TRUST-13) */
    char thumbprint[65];
    CmTime registered_at;
    CmTime last_seen;
    int registrations;  /* times this record (re-)registered */
    gint64 key;         /* what the client's data rows name it by: the id of the
                         * first record its SMSID had (site/db.c migration 7) */
} CmClientInfo;

gboolean cm_site_client(CmSite *site, const char *smsid, CmClientInfo *out, GError **error);
gint64 cm_site_client_count(CmSite *site, int state /* -1 all */);
/* An administrator's view of one client (new): the record, the inventory
 * and discovery properties the site stored (decrypted), its collections. */
json_t *cm_site_client_json(CmSite *site, const char *smsid, GError **error);
/* Up to limit clients in state (-1 all), oldest first: [{smsid, name,
 * state}] (new). */
json_t *cm_site_clients_json(CmSite *site, int state, guint limit, GError **error);

gboolean cm_site_admin_approve(CmSite *site, const char *smsid, const char *admin, CmTime now,
                               GError **error);
gboolean cm_site_admin_block(CmSite *site, const char *smsid, const char *admin, CmTime now,
                             GError **error);
gboolean cm_site_admin_unblock(CmSite *site, const char *smsid, const char *admin, CmTime now,
                               GError **error);

/* Collections: query rules over discovery, inventory and status data
 * (REQ POL-01). Collection 1 is "All Systems" (every approved client). */
typedef enum {
    CM_RULE_DISCOVERY,
    CM_RULE_INVENTORY,
    CM_RULE_STATUS,
} CmRuleSource;

typedef enum {
    CM_OP_EQ,
    CM_OP_NE,
    CM_OP_PREFIX,
    CM_OP_CONTAINS,
} CmRuleOp;

typedef struct {
    CmRuleSource source;
    const char *property; /* "os.caption", "ou", "message_id" */
    CmRuleOp op;
    const char *value;
} CmRule;

#define CM_COLLECTION_ALL_SYSTEMS 1
gboolean cm_rule_parse(const char *text, CmRuleSource *source, char **property, CmRuleOp *op,
                       char **value, GError **error);
gint64 cm_site_admin_create_collection(CmSite *site, const char *name, const CmRule *rules,
                                       size_t n_rules, const char *admin, CmTime now,
                                       GError **error);
gboolean cm_site_in_collection(CmSite *site, gint64 collection, const char *smsid);
/* A collection's ID by name ("All Systems" is 1), or -1. */
gint64 cm_site_collection_id(CmSite *site, const char *name);
gint64 cm_site_collection_size(CmSite *site, gint64 collection);

/* Deployments to collections; each makes a policy signed with the site
 * signing certificate (REQ TRUST-08). */
typedef struct {
    const char *name;
    const char *content_id;
    const guint8 *content_hash; /* SHA-256 of the content (REQ DP-04), 32 bytes */
    gint64 content_size;
    gboolean required;
    CmTime deadline;
    gint64 max_runtime_s;       /* must fit a maintenance window (REQ POL-04) */
    json_t *settings;           /* client settings (REQ POL-06), borrowed, may be NULL */
} CmDeployment;

/* Returns the policy ID ("PS100001"), new string. */
char *cm_site_admin_deploy(CmSite *site, gint64 collection, const CmDeployment *dep,
                           const char *admin, CmTime now, GError **error);

/* Secrets the site holds (push accounts, network access account, app
 * secrets) are sealed under the master key, bound to their name
 * (REQ ADM-03). */
gboolean cm_site_secret_put(CmSite *site, const char *name, const void *data, size_t len,
                            CmTime now, GError **error);
GBytes *cm_site_secret_get(CmSite *site, const char *name, GError **error);

/* A deployment's policy ID by deployment name (new string), or NULL. */
char *cm_site_policy_id(CmSite *site, const char *deployment);
/* The policybody answer for policy_id as the wire carries it to any member
 * (new reference), or NULL: what an attacker who captured it can replay
 * (REQ POL-03). */
json_t *cm_site_policy_capture(CmSite *site, const char *policy_id);

/* Client push (REQ CLI-01).  Push needs an account with local admin rights
 * on every target, so it is the least secure way to install: a stolen push
 * account reaches every computer in its scope.  Several accounts, each
 * scoped to some domains, limit that; requiring Kerberos mutual
 * authentication refuses the NTLM fallback, which an untrusted or
 * workgroup target (or a rogue one) would otherwise get. */
typedef enum {
    CM_PUSH_KERBEROS, /* mutual authentication along a forest trust */
    CM_PUSH_NTLM,     /* the fallback: the target is not verified */
    CM_PUSH_REFUSED,
} CmPushAuth;

/* An account (its password sealed, REQ ADM-03) scoped to domains; NULL or
 * empty: every domain, and workgroup computers. */
gboolean cm_site_add_push_account(CmSite *site, const char *name, const char *password,
                                  const char *const *domains, const char *admin, CmTime now,
                                  GError **error);
/* Refuse the NTLM fallback (require Kerberos mutual authentication);
 * kept in the site database. */
gboolean cm_site_push_require_kerberos(CmSite *site, gboolean on, GError **error);
/* What pushing the client to a computer of domain ("" for a workgroup)
 * does: the account it uses (new string in *account, NULL when none is in
 * scope) and how it authenticates. */
CmPushAuth cm_site_push_to(CmSite *site, const char *domain, char **account);
/* How many of the targets (domains, "" for workgroup) a stolen account
 * would have local admin on. */
guint cm_site_push_reach(CmSite *site, const char *account, const char *const *targets,
                         guint n_targets);

/* Client versions (REQ CLI-03).  The site carries a client version, which
 * a site upgrade raises.  Software-update-based installation installs the
 * version last published to the software update point, not the site's:
 * after an upgrade it must be published again, or new clients get the old
 * one. */
#define CM_SITE_CLIENT_VERSION "5.00.9122.1000"
/* The site's client version (new string). */
char *cm_site_client_version(CmSite *site);
/* A site upgrade to version (audited). */
gboolean cm_site_upgrade(CmSite *site, const char *version, const char *admin, CmTime now,
                         GError **error);
/* Publishes the site's current client version to the software update
 * point (audited). */
gboolean cm_site_publish_client_to_sup(CmSite *site, const char *admin, CmTime now,
                                       GError **error);
/* What a software-update-based install gets (new string), NULL when
 * nothing was ever published. */
char *cm_site_sup_client_version(CmSite *site);

/* The client status history the site holds (REQ DATA-02): rows, and when
 * the oldest was received (0 when none). */
gboolean cm_site_client_status_held(CmSite *site, gint64 *rows, CmTime *oldest);

/* ----------------------------------------------- maintenance */

typedef struct {
    gint64 discovery_deleted;   /* rows */
    gint64 discovery_clients;   /* clients whose aged discovery data went */
    gint64 client_status_deleted;
} CmMaintenanceResult;

/* Runs the maintenance tasks due at now (REQ DATA-01/02). */
gboolean cm_site_maintenance(CmSite *site, CmTime now, CmMaintenanceResult *out,
                             GError **error);

/* ----------------------------------------------- counters */

typedef struct {
    gint64 registrations;         /* registration requests that got an answer */
    gint64 registrations_approved;
    gint64 registrations_pending;
    gint64 registrations_refused;
    gint64 conflicts;
    gint64 messages_accepted;     /* inventory, discovery, state, client status */
    gint64 status_messages;
    gint64 refusals[CM_REASON__COUNT];
    gint64 decryptions;
    gint64 signature_checks;
} CmSiteCounters;

const CmSiteCounters *cm_site_counters(const CmSite *site);

/* ============================================================ administration
 * Role-based administration (REQ ADM-01), site/rbac.c.
 *
 * An administrator holds security roles (what it may do), security scopes
 * (which objects: content, push accounts) and limiting collections (which
 * clients it sees and acts on).  Every cm_site_admin_* call, the settings,
 * upgrade and client push calls check their admin name here; a refused
 * attempt lands in the audit trail like any action.
 *
 * The site is created with a built-in Full Administrator
 * (CM_SITE_BUILTIN_ADMIN), the account that installed it.  Registered
 * administrators are always held to their roles.  A name that is not an
 * administrator is refused once enforcement is on
 * (cm_site_rbac_set_enforced); until then it acts as a Full Administrator,
 * which in-process callers that predate role-based administration (the
 * simulator, the benchmarks) rely on.  The SMS Provider (below) only admits
 * registered administrators, so an authenticated caller is always held to
 * its roles. */

#define CM_SITE_BUILTIN_ADMIN "admin"
#define CM_SCOPE_ALL          "All"     /* every object, whatever its scope */
#define CM_SCOPE_DEFAULT      "Default" /* objects without a scope are in it */
#define CM_ADMIN_MAX_ROLES    8
#define CM_ADMIN_MAX_SCOPES   32
#define CM_ADMIN_MAX_COLLECTIONS 64

typedef enum {
    CM_ADMIN_VIEW,           /* see clients, collections, deployments, the audit trail */
    CM_ADMIN_APPROVE,        /* approve a client */
    CM_ADMIN_BLOCK,          /* block or unblock a client */
    CM_ADMIN_WIPE,           /* send a wipe to a device */
    CM_ADMIN_COLLECTIONS,    /* create collections */
    CM_ADMIN_DEPLOY,         /* deploy content to a collection */
    CM_ADMIN_SETTINGS,       /* site settings (communication, approval, signing) */
    CM_ADMIN_CLIENT_PUSH,    /* client push accounts and their rules */
    CM_ADMIN_CLIENT_UPGRADE, /* site upgrade, automatic client upgrade, SUP publishing */
    CM_ADMIN_HIERARCHY,      /* child sites, forests and trusts, site systems, replication */
    CM_ADMIN_SECURITY,       /* administrators, roles, scopes, provider authentication */
    CM_ADMIN__COUNT,
} CmAdminAction;

typedef enum {
    CM_ROLE_FULL_ADMINISTRATOR,
    CM_ROLE_OPERATIONS_ADMINISTRATOR,     /* everything but security, push and upgrade */
    CM_ROLE_INFRASTRUCTURE_ADMINISTRATOR, /* site, hierarchy, push, upgrade */
    CM_ROLE_APPLICATION_DEPLOYMENT_MANAGER,
    CM_ROLE_READ_ONLY_ANALYST,
    CM_ROLE_SECURITY_ADMINISTRATOR,       /* administrators and provider authentication */
    CM_ROLE__COUNT,
} CmSecurityRole;

const char *cm_admin_action_name(CmAdminAction a); /* "deploy", "client-push" */
const char *cm_security_role_name(CmSecurityRole r); /* "Full Administrator" */
/* Accepts the display name or a short one ("full", "read-only-analyst"). */
gboolean cm_security_role_parse(const char *s, CmSecurityRole *out, GError **error);
gboolean cm_security_role_allows(CmSecurityRole r, CmAdminAction a);

typedef struct {
    const char *name;                  /* 1..128 characters: "CORP\\alice" or "alice" */
    const CmSecurityRole *roles;       /* 1..CM_ADMIN_MAX_ROLES */
    size_t n_roles;
    const char *const *scopes;         /* NULL-terminated; NULL: CM_SCOPE_DEFAULT */
    const gint64 *collections;         /* limiting collections; none: All Systems */
    size_t n_collections;
    const char *principal;             /* Kerberos principal for Windows authentication, optional */
    const char *cert_thumbprint;       /* SHA-256 hex of its certificate, optional */
} CmAdminSpec;

/* Adds or replaces an administrator (CM_ADMIN_SECURITY).  The built-in
 * administrator cannot be replaced or removed, and nobody can give roles
 * they do not hold themselves. */
gboolean cm_site_rbac_add_admin(CmSite *site, const CmAdminSpec *spec, const char *admin,
                                CmTime now, GError **error);
gboolean cm_site_rbac_remove_admin(CmSite *site, const char *name, const char *admin, CmTime now,
                                   GError **error);
gboolean cm_site_rbac_is_admin(CmSite *site, const char *name);
/* Refuse names that are not administrators (kept in the site database). */
gboolean cm_site_rbac_set_enforced(CmSite *site, gboolean on, const char *admin, CmTime now,
                                   GError **error);
gboolean cm_site_rbac_enforced(CmSite *site);
/* Puts an object ("content", content ID) in a security scope. */
gboolean cm_site_rbac_set_object_scope(CmSite *site, const char *kind, const char *object,
                                       const char *scope, const char *admin, CmTime now,
                                       GError **error);

/* Whether admin may take action; collection (0: none) must be one of its
 * limiting collections or inside one.  A refusal is audited and set as
 * CM_SITE_ERROR_REFUSED. */
gboolean cm_site_authorize(CmSite *site, const char *admin, CmAdminAction action,
                           gint64 collection, CmTime now, GError **error);
/* The same for an action on a client: the client must be in one of the
 * administrator's limiting collections (a limit of All Systems also covers
 * pending and blocked clients, which are in no collection). */
gboolean cm_site_authorize_client(CmSite *site, const char *admin, CmAdminAction action,
                                  const char *smsid, CmTime now, GError **error);
/* The same for an object with security scopes (deploying content). */
gboolean cm_site_authorize_object(CmSite *site, const char *admin, CmAdminAction action,
                                  const char *kind, const char *object, gint64 collection,
                                  CmTime now, GError **error);
/* What an administrator sees: the SMSIDs of the live clients inside its
 * limiting collections (new array of strings), NULL with error when it may
 * not view at all (audited). */
GPtrArray *cm_site_admin_visible_clients(CmSite *site, const char *admin, CmTime now,
                                         GError **error);
/* Requires Kerberos for client push, audited (CM_ADMIN_CLIENT_PUSH). */
gboolean cm_site_admin_push_require_kerberos(CmSite *site, gboolean on, const char *admin,
                                             CmTime now, GError **error);

/* The audit trail: each entry carries the hash of the one before and the
 * site keeps the newest hash (the head), which an operator may also keep
 * elsewhere.  Verification walks the chain and names the first entry that
 * was altered, deleted, inserted, or a truncated tail. */
typedef enum {
    CM_AUDIT_OK,
    CM_AUDIT_ALTERED,   /* an entry's content does not give its hash */
    CM_AUDIT_DELETED,   /* an entry before bad_id is missing */
    CM_AUDIT_INSERTED,  /* bad_id is not part of the chain its successor names */
    CM_AUDIT_TRUNCATED, /* entries after the last one are missing (head mismatch) */
} CmAuditVerdict;

typedef struct {
    CmAuditVerdict verdict;
    gint64 entries;   /* entries walked */
    gint64 bad_id;    /* first bad entry's id (0 when OK) */
    char head[65];    /* hash of the newest entry */
    char message[256];
} CmAuditReport;

const char *cm_audit_verdict_name(CmAuditVerdict v);
/* expect_head: a head kept elsewhere (NULL: the one the site keeps).
 * Returns FALSE only when the database cannot be read; tampering is a
 * verdict in out. */
gboolean cm_site_audit_verify(CmSite *site, const char *expect_head, CmAuditReport *out,
                              GError **error);
/* The newest entry's hash (new string, "" when the trail is empty). */
char *cm_site_audit_head(CmSite *site);

/* ============================================================ SMS Provider
 * site/provider.c: the minimum authentication level of every administrative
 * caller, hierarchy-wide (REQ ADM-02).  Windows authentication is a password
 * or a Kerberos principal the transport verified (GSSAPI); certificate
 * authentication a PKI client certificate that chains to the site's trusted
 * roots; two-factor a certificate or Kerberos plus a time-based one-time
 * code (RFC 6238, HMAC-SHA1, 30 s, 6 digits) for the Windows Hello level. */

typedef enum {
    CM_PROVIDER_AUTH_WINDOWS,
    CM_PROVIDER_AUTH_CERTIFICATE,
    CM_PROVIDER_AUTH_TWO_FACTOR,
} CmProviderAuth;

const char *cm_provider_auth_name(CmProviderAuth a); /* "windows", "certificate", "two-factor" */
gboolean cm_provider_auth_parse(const char *s, CmProviderAuth *out, GError **error);

/* RFC 6238 TOTP of key at unix_seconds: digest "SHA1", "SHA256" or
 * "SHA512", step in seconds, 6 to 10 digits, written to out (NUL-ended). */
#define CM_TOTP_MAX_KEY 64
gboolean cm_totp(const char *digest, const guint8 *key, size_t key_len, gint64 unix_seconds,
                 guint step, guint digits, char out[11], GError **error);

/* The hierarchy-wide level: set at the top-level site only
 * (CM_ADMIN_SECURITY, audited), replicated to every child.  Refused when the
 * acting administrator could not sign in at the new level itself; the
 * audit entry names the administrators who could not either. */
gboolean cm_site_provider_set_level(CmSite *site, CmProviderAuth level, const char *admin,
                                    CmTime now, GError **error);
CmProviderAuth cm_site_provider_level(CmSite *site);

/* An administrator's password (PBKDF2-HMAC-SHA256, salt from rng) and
 * one-time-code secret (sealed, REQ ADM-03); each needs CM_ADMIN_SECURITY
 * or to be the administrator's own. */
gboolean cm_site_admin_set_password(CmSite *site, const char *name, const char *password,
                                    CmRng *rng, const char *admin, CmTime now, GError **error);
gboolean cm_site_admin_enroll_totp(CmSite *site, const char *name, const guint8 *secret,
                                   size_t len, const char *admin, CmTime now, GError **error);

/* An administrator's Kerberos principal and certificate thumbprint (NULL
 * leaves one as it is, "" clears it); the built-in administrator's too, so
 * that it can sign in at the certificate and two-factor levels. */
gboolean cm_site_admin_set_identity(CmSite *site, const char *name, const char *principal,
                                    const char *cert_thumbprint, const char *admin, CmTime now,
                                    GError **error);

/* What a caller presents; fields it does not have are NULL. */
typedef struct {
    const char *admin;
    const char *password;
    const char *kerberos_principal; /* verified by the transport, "alice@CORP.EXAMPLE" */
    const CmCert *cert;             /* the TLS client certificate */
    const char *totp;               /* the current one-time code */
    /* The roots administrators' certificates chain to; NULL: the site's
     * PKI trust.  The lab issues them from the site's issuing root. */
    CmTrust *cert_trust;
} CmProviderLogin;

/* Admits a registered administrator that reaches the hierarchy's level;
 * *achieved (may be NULL) is the strongest level its factors make.  A
 * factor presented but wrong refuses the login; a one-time code is accepted
 * once (one step of clock skew either way).  Audited either way. */
gboolean cm_site_provider_login(CmSite *site, const CmProviderLogin *login, CmTime now,
                                CmProviderAuth *achieved, GError **error);

/* ============================================================ hierarchy
 * site/hierarchy.c: a central administration site with primary and
 * secondary child sites (REQ NET-05, TRUST-02), intersite replication,
 * site systems in other forests (REQ NET-06), publishing to forests
 * (REQ NET-07). */

typedef enum {
    CM_REPL_DATABASE, /* database replication: global data down, site data up */
    CM_REPL_FILE,     /* file-based transfer: content, MP certificates */
} CmReplChannel;

typedef enum {
    CM_REPL_GLOBAL, /* to every site of the hierarchy */
    CM_REPL_SITE,   /* site data: up to the parent (and on to the top) */
} CmReplScope;

typedef enum {
    CM_LINK_PARENT,
    CM_LINK_CHILD,
} CmReplLinkRole;

typedef enum {
    CM_SITE_KIND_CENTRAL,   /* central administration site: primaries below it */
    CM_SITE_KIND_PRIMARY,   /* a standalone (top-level) or child primary site */
    CM_SITE_KIND_SECONDARY, /* below a primary */
} CmSiteKind;

const char *cm_site_kind_name(CmSiteKind k); /* "central", "primary", "secondary" */

typedef struct {
    CmSiteKind kind;
    gboolean joined;  /* a child site that took its parent's grant */
    char parent[4];   /* "" at the top */
    char top[4];      /* the top-level site's code (its own at the top) */
} CmHierarchyInfo;

gboolean cm_site_hierarchy_info(CmSite *site, CmHierarchyInfo *out, GError **error);

/* Joining a child site, as JSON a daemon carries (bounded on parsing):
 * 1. the child's request: code, kind, forest, server, public exchange key;
 * 2. the parent admits it (CM_ADMIN_HIERARCHY, audited, a refusal too): a
 *    primary goes below the top-level site, which becomes the central
 *    site; a secondary below a primary.  A child in another forest needs a
 *    two-way forest trust between the forests (REQ NET-05).  install_account
 *    installs the site and carries file-based transfers.  The grant names
 *    the parent's exchange key and the hierarchy's trusted root key, and the
 *    parent queues the global data it holds for the new child;
 * 3. the child takes the grant. */
json_t *cm_site_hierarchy_join_request(CmSite *child, CmSiteKind kind, const char *server,
                                       GError **error);
json_t *cm_site_hierarchy_add_child(CmSite *parent, const json_t *request,
                                    const char *install_account, const char *admin, CmTime now,
                                    GError **error);
gboolean cm_site_hierarchy_join(CmSite *child, const json_t *grant, CmTime now, GError **error);
/* The trusted root key this site's clients get (REQ TRUST-02): the
 * top-level site's exchange key, public hex (new string).  The siteinfo the
 * MPs serve and cm_site_export_trk carry it. */
char *cm_site_hierarchy_trk_hex(CmSite *site);
/* Whether site may sign its own MP certificates: a joined child may not
 * (it has no TRK private key); CM_SITE_ERROR_REFUSED says what to do. */
gboolean cm_site_hierarchy_may_self_sign_mp(CmSite *site, GError **error);

/* A child site's management point (REQ TRUST-02): the child asks (request
 * JSON: site, MP name, public key), the top-level site signs the MP
 * certificate with the TRK for a site of its hierarchy (answer JSON), the
 * child installs the MP with it (and its own Enhanced HTTP TLS certificate).
 * Either travels by file-based transfer or any channel. */
json_t *cm_site_hierarchy_mp_request(CmSite *child, const char *mp_name, const CmKey *mp_key,
                                     GError **error);
json_t *cm_site_hierarchy_sign_mp(CmSite *top, const json_t *request, CmTime now,
                                  GError **error);
gboolean cm_site_hierarchy_add_mp(CmSite *child, const json_t *answer, const CmKey *mp_key,
                                  gboolean internet, CmTime now, CmMpInfo *info_out,
                                  CmCert **mp_cert, CmCert **tls_cert, GError **error);

/* Replication.  Each link (parent or child) has an outgoing queue with
 * sequence numbers.  A batch carries queued items from one sequence on,
 * the highest sequence the sender applied from the receiver (its
 * acknowledgment), and a signature with the sender's exchange key.  The
 * receiver verifies it against the key it recorded at joining, skips items
 * it has (a resent batch changes nothing), refuses a batch that starts
 * after a gap, applies the rest in one transaction and passes global data
 * on to its other links and site data up to its parent. */
#define CM_REPL_BATCH_MAX (1024 * 1024)
#define CM_REPL_ITEMS_MAX 1000
#define CM_REPL_VALUE_MAX (64 * 1024)

/* Queues data of this site (value an object; NULL deletes). */
gboolean cm_site_repl_publish(CmSite *site, CmReplScope scope, CmReplChannel channel,
                              const char *kind, const char *key, const json_t *value,
                              CmTime now, GError **error);
/* The replicated value this site holds (new reference), NULL when none. */
json_t *cm_site_repl_get(CmSite *site, const char *kind, const char *key);
/* A batch for peer of at most max_items unacknowledged items (new bytes;
 * an empty batch still carries the acknowledgment). */
GBytes *cm_site_repl_batch(CmSite *site, const char *peer, guint max_items, CmTime now,
                           GError **error);

typedef struct {
    char from[4];
    gint64 first, last; /* the batch's sequence range (0 when empty) */
    guint applied;
    guint skipped;      /* already had them */
} CmReplApplied;

gboolean cm_site_repl_apply(CmSite *site, const void *data, size_t len, CmTime now,
                            CmReplApplied *out, GError **error);

typedef struct {
    CmReplLinkRole role;
    gint64 queued;        /* the last sequence queued for the peer */
    gint64 acked;         /* the last the peer acknowledged */
    gint64 backlog;       /* queued - acked: items the peer has not confirmed */
    CmTime oldest_unacked; /* when the oldest of them was queued (0: none) */
    gint64 received;      /* the last sequence applied from the peer */
    CmTime received_at;
} CmReplLinkStatus;

gboolean cm_site_repl_link_status(CmSite *site, const char *peer, CmReplLinkStatus *out,
                                  GError **error);
/* The peers of this site's replication links, its parent and children
 * (new array of site codes, sorted), for a daemon that reports on them. */
GPtrArray *cm_site_repl_peers(CmSite *site, GError **error);

/* Forests and trusts as audited administrative actions (CM_ADMIN_HIERARCHY). */
gboolean cm_site_admin_add_forest(CmSite *site, const char *forest, const char *const *domains,
                                  const char *admin, CmTime now, GError **error);
gboolean cm_site_admin_set_trust(CmSite *site, const char *forest_a, const char *forest_b,
                                 CmForestTrust trust, const char *admin, CmTime now,
                                 GError **error);

/* Site systems in other forests (REQ NET-06). */
typedef enum {
    CM_SYSTEM_MP,
    CM_SYSTEM_DP,
    CM_SYSTEM_ENROLLMENT_POINT,
    CM_SYSTEM_SUP,
    CM_SYSTEM_REPORTING_POINT,
    CM_SYSTEM_ENDPOINT_PROTECTION_POINT,
    CM_SYSTEM_STATE_MIGRATION_POINT,
    CM_SYSTEM_ASSET_INTELLIGENCE_POINT,
    CM_SYSTEM__COUNT,
} CmSystemRole;

const char *cm_system_role_name(CmSystemRole r); /* "management-point" */
/* The roles that read the site database directly (seed 004). */
gboolean cm_system_role_needs_db(CmSystemRole r);

typedef struct {
    const char *server;          /* FQDN */
    const char *forest;          /* its forest (a known one) */
    CmSystemRole role;
    gboolean site_initiates;     /* "Require the site server to initiate connections" */
    const char *install_account; /* site system installation account */
    const char *db_account;      /* the role's database connection account */
} CmSiteSystemSpec;

/* Installs a site system role (CM_ADMIN_HIERARCHY, audited).  In a forest
 * the site's does not trust both ways, the site needs an installation
 * account, must initiate the connections itself, and a role that reads the
 * database needs a connection account; otherwise the site uses computer
 * accounts. */
gboolean cm_site_admin_add_site_system(CmSite *site, const CmSiteSystemSpec *spec,
                                       const char *admin, CmTime now, GError **error);

typedef enum {
    CM_CONN_INSTALL,  /* installing and configuring the role */
    CM_CONN_DATA,     /* file and status transfer between site server and system */
    CM_CONN_DATABASE, /* the role reading the site database */
} CmConnPurpose;

typedef struct {
    gboolean allowed;
    char account[CM_NAME_MAX + 1]; /* the account the connection uses */
    char reason[256];
} CmConnDecision;

/* Who may open a connection to whom: from_site_server TRUE for the site
 * server (or its SQL server) opening one to the system, FALSE for the
 * system opening one inward.  NOT_FOUND for an unknown site system. */
gboolean cm_site_connection(CmSite *site, const char *server, CmSystemRole role,
                            gboolean from_site_server, CmConnPurpose purpose, CmConnDecision *out,
                            GError **error);

/* Publishing site information to forests (REQ NET-07), audited
 * (CM_ADMIN_HIERARCHY).  A client of domain finds the site's MP list in its
 * forest's directory when the site publishes there (new reference), or NULL:
 * it falls back to DNS or its assigned MP. */
gboolean cm_site_admin_publish_to_forest(CmSite *site, const char *forest, gboolean on,
                                         const char *admin, CmTime now, GError **error);
json_t *cm_site_directory_lookup(CmSite *site, const char *client_domain);

/* ============================================================ wipe
 * site/wipe.c (REQ DATA-03): a wipe acknowledgment means the message was
 * sent (for a device managed through the Exchange Server connector: that
 * Exchange received it), never that the device acted.  The site keeps the
 * two apart, and a device heard from after the acknowledgment is evidence
 * that it did not wipe. */

typedef enum {
    CM_WIPE_DIRECT,   /* to the device over the client notification channel */
    CM_WIPE_EXCHANGE, /* through the Exchange Server connector */
} CmWipeVia;

typedef enum {
    CM_WIPE_QUEUED,       /* requested, not yet handed on */
    CM_WIPE_ACKNOWLEDGED, /* sent (or received by Exchange): nothing more is known */
} CmWipeState;

typedef struct {
    gint64 id;
    char smsid[CM_ID_SMSID_LEN + 1];
    CmWipeVia via;
    CmWipeState state;
    CmTime requested, acknowledged;
    gboolean device_confirmed;   /* always FALSE: nothing confirms a wipe */
    gboolean seen_after_ack;     /* the device talked to the site after the acknowledgment */
    char meaning[160];           /* what the acknowledgment verified, in words */
} CmWipeStatus;

/* Requests a wipe (CM_ADMIN_WIPE on the client, audited); returns its ID or
 * -1. */
gint64 cm_site_admin_wipe(CmSite *site, const char *smsid, CmWipeVia via, const char *admin,
                          CmTime now, GError **error);
/* The carrier reports the message handed on (the notification sent, or
 * Exchange's receipt): the acknowledgment. */
gboolean cm_site_wipe_acknowledge(CmSite *site, gint64 id, CmTime now, GError **error);
gboolean cm_site_wipe_status(CmSite *site, gint64 id, CmWipeStatus *out, GError **error);

/* ============================================================ CMG tokens
 * site/cmgtoken.c: bulk registration tokens for the cloud management
 * gateway (REQ CMG-12), the JWT cmg/ verifies (kid and iss the site code,
 * aud "cmg", kind "bulk", a random jti), signed with the site server
 * signing key.  Issuing and blocking need CM_ADMIN_HIERARCHY (site
 * systems) and are audited; the blocked IDs are kept in the database for
 * the gateway. */
#define CM_SITE_CMG_TOKEN_ID_LEN          32
#define CM_SITE_CMG_BULK_LIFETIME_DEFAULT (3 * CM_USEC_PER_DAY)
#define CM_SITE_CMG_BULK_LIFETIME_MAX     (7 * CM_USEC_PER_DAY)

/* lifetime 0: 3 days; over 7 days is refused.  jti_out (may be NULL)
 * receives the ID that blocking names. */
char *cm_site_cmg_bulk_token(CmSite *site, const char *admin, CmTime lifetime, CmTime now,
                             CmRng *rng, char jti_out[CM_SITE_CMG_TOKEN_ID_LEN + 1],
                             GError **error);
gboolean cm_site_cmg_block_token(CmSite *site, const char *admin, const char *jti, CmTime now,
                                 GError **error);
/* The blocked token IDs, one a line (new string, "" when none). */
char *cm_site_cmg_blocked_tokens(CmSite *site, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmSite, cm_site_free)

G_END_DECLS

#endif
