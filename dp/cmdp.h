/* cmdp.h - the distribution point and its content.
 *
 * Pure logic: no socket, no clock, no file.
 *
 * Content is a package: an ID and files.  Its content hash (what a
 * deployment's signed policy carries, "content": {"id", "hash", "size"})
 * is the SHA-256 of the package manifest, the canonical JSON list of its
 * files with each file's size and SHA-256; its size is the sum of the
 * file sizes.  A client downloads the manifest, checks it against the
 * policy, then checks every file against the manifest (REQ DP-04): one
 * hash in the signed policy covers every byte.
 *
 * The DP (CmDp) authenticates each client per the table of seed 004
 * (REQ DP-01) and serves manifests and files.  The site's transfers to a
 * DP obey a bandwidth limit and a schedule (CmDpTransfer, a state machine
 * given the time; REQ DP-02), and a prestaged DP accepts content placed by
 * hand without a transfer (REQ DP-03).
 *
 * Wire form (docs/edge.md):
 *   GET /SMS_DP_SMSPKG$/<content id>          the manifest (JSON)
 *   GET /SMS_DP_SMSPKG$/<content id>/<file>   the file's bytes
 */
#ifndef CMDP_H
#define CMDP_H

#include "cmproto.h"

G_BEGIN_DECLS

#define CM_DP_ERROR (cm_dp_error_quark())
GQuark cm_dp_error_quark(void);

typedef enum {
    CM_DP_ERROR_INVALID,  /* a bad argument or malformed input */
    CM_DP_ERROR_MISMATCH, /* content does not match its hash or size */
    CM_DP_ERROR_NOT_FOUND,
} CmDpError;

/* ------------------------------------------------------------ content */

#define CM_DP_ID_MAX       128 /* content ID: letters, digits, '.', '_', '-' */
#define CM_DP_NAME_MAX     128 /* file name: the same characters */
#define CM_DP_MAX_FILES    1024
#define CM_DP_FILE_MAX     (G_GINT64_CONSTANT(1) << 40)
#define CM_DP_MANIFEST_MAX (CM_DP_MAX_FILES * 256 + 256)

typedef struct {
    const char *name;
    GBytes *data;
} CmDpFile;

/* One file of a manifest. */
typedef struct {
    char name[CM_DP_NAME_MAX + 1];
    guint64 size;
    guint8 hash[32];
} CmDpEntry;

typedef struct CmDpManifest CmDpManifest;

/* {"files":[{"hash":"<hex SHA-256, lower case>","name":"setup.exe","size":123}],
 * "id":"KB500001"}: compact, keys sorted, files sorted by name, names
 * unique.  Parsing accepts only this canonical form, so that one package
 * has exactly one manifest and one content hash. */
CmDpManifest *cm_dp_manifest_parse(const guint8 *data, size_t len, GError **error);
void cm_dp_manifest_free(CmDpManifest *m);
const char *cm_dp_manifest_id(const CmDpManifest *m);
size_t cm_dp_manifest_count(const CmDpManifest *m);
const CmDpEntry *cm_dp_manifest_entry(const CmDpManifest *m, size_t i);
const CmDpEntry *cm_dp_manifest_find(const CmDpManifest *m, const char *name);
guint64 cm_dp_manifest_size(const CmDpManifest *m); /* sum of the file sizes */

/* A package: reference counted, not changed once made. */
typedef struct CmDpPackage CmDpPackage;

/* Files in any order; refused: no files, a bad or repeated name, more
 * than CM_DP_MAX_FILES, a bad content ID. */
CmDpPackage *cm_dp_package_new(const char *id, const CmDpFile *files, size_t n,
                               GError **error);
CmDpPackage *cm_dp_package_ref(CmDpPackage *p);
void cm_dp_package_unref(CmDpPackage *p);
const char *cm_dp_package_id(const CmDpPackage *p);
/* The content hash (32 bytes, borrowed) and its upper-case hex (new). */
const guint8 *cm_dp_package_hash(const CmDpPackage *p);
char *cm_dp_package_hash_hex(const CmDpPackage *p);
guint64 cm_dp_package_size(const CmDpPackage *p);
GBytes *cm_dp_package_manifest(const CmDpPackage *p);  /* borrowed */
GBytes *cm_dp_package_file(const CmDpPackage *p, const char *name); /* borrowed, NULL */
const CmDpManifest *cm_dp_package_manifest_parsed(const CmDpPackage *p);

/* ------------------------------------------- the client's check (DP-04) */

/* The manifest a client downloaded, checked against the content of its
 * verified policy (as cm_agent_policy returns it): the manifest's SHA-256
 * is the policy's content hash, its ID the content ID, its size the
 * content size.  Returns the parsed manifest, or NULL with MISMATCH. */
CmDpManifest *cm_dp_manifest_verify(const json_t *policy, const guint8 *manifest, size_t len,
                                    GError **error);
/* One downloaded file against the verified manifest. */
gboolean cm_dp_file_verify(const CmDpManifest *m, const char *name, const guint8 *data,
                           size_t len, GError **error);
/* The whole download at once: the manifest against the policy, then every
 * file of the manifest present exactly once and matching, nothing else. */
gboolean cm_dp_content_verify(const json_t *policy, const guint8 *manifest, size_t manifest_len,
                              const CmDpFile *files, size_t n_files, GError **error);

/* ------------------------------------------------------- the DP */

typedef struct {
    const char *name;          /* host name */
    const char *site_code;
    gboolean https;            /* an HTTPS DP; else HTTP (and Enhanced HTTP) */
    gboolean allow_anonymous;  /* HTTP DPs only: "anonymous, if allowed" */
    gboolean prestaged;        /* takes content placed by hand (REQ DP-03) */
    /* Network access accounts, "svc-naa@CORP.EXAMPLE" (Kerberos principal
     * form, matched case-insensitively), NULL-terminated; NULL: none. */
    const char *const *network_access_accounts;
    const CmCert *site_signing_cert; /* verifies content access tokens; NULL: none taken */
    CmTrust *pki_trust;        /* client PKI certificates (borrowed); NULL: PKI refused */
} CmDpConfig;

typedef struct CmDp CmDp;

CmDp *cm_dp_new(const CmDpConfig *config, GError **error);
void cm_dp_free(CmDp *dp);
const char *cm_dp_name(const CmDp *dp);
/* Another network access account list (NULL-terminated, copied). */
void cm_dp_set_network_access_accounts(CmDp *dp, const char *const *accounts);

/* How a client authenticated to the DP (REQ DP-01). */
typedef enum {
    CM_DP_AUTH_NONE,      /* refused */
    CM_DP_AUTH_ANONYMOUS, /* HTTP DP that allows it */
    CM_DP_AUTH_COMPUTER,  /* Windows-integrated, computer account ("PC1$@REALM") */
    CM_DP_AUTH_NAA,       /* Windows-integrated, a network access account */
    CM_DP_AUTH_TOKEN,     /* content access token (Enhanced HTTP or HTTPS) */
    CM_DP_AUTH_PKI,       /* PKI client certificate over HTTPS */
    CM_DP_AUTH__COUNT
} CmDpAuth;

const char *cm_dp_auth_name(CmDpAuth a);

typedef struct {
    const char *path;        /* "/SMS_DP_SMSPKG$/KB500001/setup.exe" */
    CmTransport transport;
    /* What the transport verified: KERBEROS principal and realm; PKI
     * client_cert (with client_chain); TOKEN the bearer token presented;
     * ANONYMOUS nothing. */
    CmPeer peer;
    GPtrArray *client_chain; /* CmCert, may be NULL */
} CmDpRequest;

/* The authentication decision alone: the method, or CM_DP_AUTH_NONE with
 * resp set to the refusal. */
CmDpAuth cm_dp_authenticate(CmDp *dp, const CmDpRequest *req, CmTime now, CmResponse *resp);
/* Authenticates, then answers: 200 with the manifest (JSON) or the file's
 * bytes in resp->body (raw, not JSON), 404 not-found, 400 for a malformed
 * path, 403 for an authentication refusal. */
void cm_dp_handle(CmDp *dp, const CmDpRequest *req, CmTime now, CmResponse *resp);

/* Content access tokens: JWTs signed with the site server signing key
 * (kid and iss the site code, aud "dp", kind "content", sub the client's
 * SMSID); lifetime 0 is 8 hours. */
#define CM_DP_TOKEN_LIFETIME_DEFAULT (8 * CM_USEC_PER_HOUR)
char *cm_dp_content_token_issue(const CmKey *site_signing_key, const char *site_code,
                                const char *smsid, CmTime lifetime, CmTime now, GError **error);

/* ------------------------------------------- content on the DP */

typedef enum {
    CM_DP_SOURCE_TRANSFER,  /* sent by the site */
    CM_DP_SOURCE_PRESTAGED, /* placed by hand (REQ DP-03) */
} CmDpSource;

/* Installs a package (a reference is kept), replacing one of the same ID. */
void cm_dp_content_add(CmDp *dp, CmDpPackage *pkg, CmDpSource source);
gboolean cm_dp_content_remove(CmDp *dp, const char *id);
/* The package of that ID on the DP (borrowed) or NULL. */
CmDpPackage *cm_dp_content_get(const CmDp *dp, const char *id);
guint cm_dp_content_count(const CmDp *dp);

/* The prestaged content file an administrator extracts on a prestaged DP:
 * {"files":[{"data":"<base64>","name":"setup.exe"}],"id":"KB500001"},
 * bounded by CM_DP_PRESTAGE_MAX.  The DP takes it as it is; the site's
 * distribution then decides whether it matches (cm_dp_distribute). */
#define CM_DP_PRESTAGE_MAX (64 * 1024 * 1024)
GBytes *cm_dp_prestage_file_new(const CmDpPackage *pkg);
CmDpPackage *cm_dp_prestage_file_parse(const guint8 *data, size_t len, GError **error);
/* Parses and installs as prestaged content; refused on a DP that is not
 * prestaged. */
gboolean cm_dp_prestage_import(CmDp *dp, const guint8 *data, size_t len, GError **error);

typedef enum {
    CM_DP_DISTRIBUTE_TRANSFER,  /* the site must send it (queue it on a CmDpTransfer) */
    CM_DP_DISTRIBUTE_PRESTAGED, /* prestaged content matches: accepted without a transfer */
    CM_DP_DISTRIBUTE_PRESENT,   /* already transferred, same hash: nothing to do */
} CmDpDistribution;

const char *cm_dp_distribution_name(CmDpDistribution d);

/* The site distributes content (ID, hash, size) to this DP (REQ DP-03).  A
 * prestaged DP whose prestaged content matches accepts it without a
 * transfer; prestaged content that does not match is discarded and must
 * be transferred; a DP that is not prestaged always gets a transfer unless
 * it already got this very content from the site. */
CmDpDistribution cm_dp_distribute(CmDp *dp, const char *id, const guint8 hash[32],
                                  guint64 size);

typedef struct {
    gint64 requests;
    gint64 served_manifests, served_files;
    gint64 bytes_served;
    gint64 by_auth[CM_DP_AUTH__COUNT];
    gint64 refusals[CM_REASON__COUNT];
    gint64 prestaged_accepted, prestaged_mismatch, transfers_needed;
} CmDpCounters;

const CmDpCounters *cm_dp_counters(const CmDp *dp);

/* ------------------------------------------- site to DP transfers (DP-02) */

/* The DP's rate limits and schedule, as the product sets them per DP:
 * each UTC hour of the day allows a share of the link's rate (100: the
 * full rate, 0: closed); in pulse mode, blocks of pulse_block bytes go
 * out one every pulse_delay. */
typedef struct {
    guint64 bytes_per_sec;    /* the rate at 100%, > 0 */
    guint8 hour_percent[24];  /* UTC hours; all 0 is refused */
    guint64 pulse_block;      /* 0: continuous */
    CmTime pulse_delay;
} CmDpSchedule;

/* Unlimited (the link's rate every hour). */
void cm_dp_schedule_default(CmDpSchedule *s, guint64 bytes_per_sec);
/* Limited to percent from hour start (inclusive) to hour end
 * (exclusive, wrapping midnight), 100% outside. */
void cm_dp_schedule_limit(CmDpSchedule *s, guint start, guint end, guint8 percent);

typedef struct CmDpTransfer CmDpTransfer;

CmDpTransfer *cm_dp_transfer_new(const CmDpSchedule *schedule, CmTime now, GError **error);
void cm_dp_transfer_free(CmDpTransfer *t);
/* Queues content of size bytes (sent in order, one at a time). */
gboolean cm_dp_transfer_add(CmDpTransfer *t, const char *id, guint64 size, CmTime now,
                            GError **error);

typedef struct {
    guint64 bytes;        /* sent since the previous run */
    GPtrArray *completed; /* content IDs that finished (char*, owned) */
    CmTime wake_at;       /* next completion, schedule change or pulse; 0: idle */
} CmDpTransferTick;

void cm_dp_transfer_tick_init(CmDpTransferTick *t);
void cm_dp_transfer_tick_clear(CmDpTransferTick *t);
/* Advances the transfer to now: what the schedule let through since the
 * last call, what completed, when to call again. */
void cm_dp_transfer_run(CmDpTransfer *t, CmTime now, CmDpTransferTick *out);
guint cm_dp_transfer_queued(const CmDpTransfer *t);
guint64 cm_dp_transfer_sent_total(const CmDpTransfer *t);
/* The rate allowed at t (bytes per second; 0: closed). */
guint64 cm_dp_schedule_rate_at(const CmDpSchedule *s, CmTime t);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmDp, cm_dp_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmDpPackage, cm_dp_package_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmDpManifest, cm_dp_manifest_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmDpTransfer, cm_dp_transfer_free)

G_END_DECLS

#endif
