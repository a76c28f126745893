/* cmagent.h - the client agent library: installation properties, service
 * location, trust in the site (trusted root key, signing certificate),
 * registration with retries, policy, inventory, status.
 *
 * A state machine without I/O.  The driver (a daemon, the simulator, a test)
 * calls cm_agent_start, then feeds it responses and timer expiries; each
 * call returns the actions the agent wants: send this request to that MP,
 * wake me at T.  The agent never reads a clock: it is told the time.
 */
#ifndef CMAGENT_H
#define CMAGENT_H

#include "cmproto.h"

G_BEGIN_DECLS

/* The client version cmlab's agent reports (the product's 2309 build). */
#define CM_AGENT_VERSION "5.00.9122.1000"

#define CM_AGENT_ERROR (cm_agent_error_quark())
GQuark cm_agent_error_quark(void);

typedef enum {
    CM_AGENT_ERROR_INSTALL, /* bad installation properties (REQ CLI-02, TRUST-05) */
    CM_AGENT_ERROR_INVALID,
} CmAgentError;

typedef enum {
    CM_INSTALL_MANUAL,
    CM_INSTALL_PUSH,  /* client push: carries the TRK and signing cert (REQ TRUST-04/09) */
    CM_INSTALL_GPO,
    CM_INSTALL_SUP,   /* software-update based */
    CM_INSTALL_IMAGE, /* part of an OS image */
} CmInstallMethod;

const char *cm_install_method_name(CmInstallMethod m);
gboolean cm_install_method_parse(const char *s, CmInstallMethod *out, GError **error);

/* Where the client got a piece of trust (reported, and what the simulator
 * measures for the trust-on-first-use window, REQ TRUST-04/09). */
typedef enum {
    CM_SOURCE_NONE,
    CM_SOURCE_DIRECTORY,   /* directory publishing in the client's forest */
    CM_SOURCE_PUSH,        /* client push installation */
    CM_SOURCE_PROPERTY,    /* SMSPublicRootKey / SMSROOTKEYPATH / SMSSIGNCERT */
    CM_SOURCE_MP,          /* taken from the first MP it talked to (trust on first use) */
    CM_SOURCE_PKI,         /* not needed: HTTPS with PKI (REQ TRUST-07) */
} CmTrustSource;

const char *cm_trust_source_name(CmTrustSource s);

/* What directory publishing shows a client in a forest the site publishes
 * to (REQ NET-07): the site, its TRK, signing certificate and MPs. */
typedef struct {
    const char *site_code;
    const char *trk_hex;       /* SMSPublicRootKey form */
    const CmCert *signing_cert;
    const char *const *mps;    /* NULL-terminated MP names */
} CmDirectoryInfo;

/* Installation properties (REQ CLI-02) and what the device is. */
typedef struct {
    /* properties */
    const char *smssitecode;      /* SMSSITECODE; required with a root key */
    const char *smspublicrootkey; /* SMSPublicRootKey (hex) */
    const char *smsrootkeypath;   /* SMSROOTKEYPATH: the key file's contents (the driver reads the file) */
    const CmCert *smssigncert;    /* SMSSIGNCERT */
    gboolean resetkeyinformation; /* RESETKEYINFORMATION=TRUE */
    gboolean usepkicert;          /* UsePKICert */
    const char *mp;               /* /mp: assigned management point */
    CmInstallMethod method;
    /* push installs carry the site's trust material */
    const char *push_trk_hex;
    const CmCert *push_signing_cert;
    /* the device */
    const char *name;             /* computer name */
    const char *domain;           /* "" or NULL: workgroup */
    const char *hwid;             /* NULL: derived from the rng */
    int tpm_version;              /* 0 none, 1 (vulnerable), 2 */
    const guint8 *device_secret;  /* 32 bytes: the TPM's own secret */
    const CmCert *pki_cert;       /* PKI client authentication certificate, when issued */
    const CmKey *pki_key;
    const char *entra_token;      /* Entra ID device token, when cloud-joined */
    gboolean media;               /* OS deployment media: not hardware bound (REQ TRUST-13) */
    CmKeyAlg key_alg;
    CmHashAlg sign_hash;          /* SHA-256 unless a legacy client */
    /* service location */
    const CmDirectoryInfo *directory; /* NULL: not published to this forest */
    const char *const *dns_mps;   /* MPs found by DNS publishing, NULL-terminated */
    /* timing */
    CmTime policy_interval;       /* 60 min default */
    CmTime inventory_interval;    /* 7 days default */
    CmTime start_window;          /* randomize the first contact over this window (REQ TRUST-12) */
    /* Maintenance windows (REQ POL-04): one window a day, from
     * maintenance_start (an offset into each UTC day) for
     * maintenance_window; a window of 0 means none: installs at any time. */
    CmTime maintenance_start;
    CmTime maintenance_window;
    /* Past its deadline a required deployment installs outside the windows.
     * Off, as in the product, where it is an explicit choice per
     * deployment: a deadline alone does not override a window. */
    gboolean deadline_overrides_window;
    /* Automatic client upgrade (REQ POL-05): the client asks its MP for
     * the client package every upgrade_interval (1 day default, the first
     * time at a random point of the first interval after approval) and
     * installs a newer version. */
    gboolean auto_upgrade;
    CmTime upgrade_interval;
    /* Client status (REQ DATA-02): self-checks every client_status_interval
     * (1 day default, the first at a random point of the first interval
     * after approval; 0: none), their results sent encrypted to the site's
     * encryption certificate. */
    CmTime client_status_interval;
    /* The client notification channel (REQ REG-05): opened once active,
     * kept alive every keepalive_interval (15 min default; 0: no channel)
     * until the agent disconnects, after channel_lifetime (0: never) or
     * when it restarts (cm_agent_restart, a client upgrade). */
    CmTime keepalive_interval;
    CmTime channel_lifetime;
    /* Retries and registration status polls back off exponentially from
     * this bound (30 s default, with full jitter, capped at an hour); a lab
     * that approves by hand shortens it to see results in seconds. */
    CmTime retry_base;
    /* The cap of that backoff (an hour default): a lab test that must see
     * a client recover within its deadline caps it at seconds. */
    CmTime retry_cap;
    /* The device is on the internet (it cannot reach its domain): of an
     * MP list it uses the internet-facing MPs only, a CMG's entries among
     * them (REQ CMG-10), as the product's client does. */
    gboolean on_internet;
} CmAgentConfig;

void cm_agent_config_default(CmAgentConfig *c);

typedef struct CmAgent CmAgent;

/* Installs the client: validates the properties (a root key without a site
 * code is refused, REQ TRUST-05), creates its key in the key storage
 * provider and its self-signed certificate.  rng is the agent's own stream
 * (copied). */
CmAgent *cm_agent_new(const CmAgentConfig *config, const CmRng *rng, CmTime now, GError **error);
void cm_agent_free(CmAgent *agent);
/* A device booted from image's disk (REQ REG-06): config and rng describe
 * the new hardware (its TPM, its secret, a new hardware ID).  The clone
 * keeps the image's SMSID, certificate and held trust (TRK, signing
 * certificate).  The image's key comes along only when its provider's
 * sealed blob opens on the new device: a software key does, so the clone
 * signs as the original; a TPM-bound key does not, and the clone makes a
 * new key and certificate under the copied SMSID.  Like the product's
 * client on new hardware, the clone registers again (its hardware ID
 * changed). */
CmAgent *cm_agent_clone(const CmAgent *image, const CmAgentConfig *config, const CmRng *rng,
                        CmTime now, GError **error);

/* ----------------------------------------------------------- actions */

/* A request the agent wants sent. */
typedef struct {
    guint64 id;              /* echo it back with the response */
    char mp[CM_NAME_MAX + 1];
    CmTransport transport;
    CmEndpoint ep;
    char smsid[CM_ID_SMSID_LEN + 1];
    gboolean signed_;
    CmHashAlg sig_hash;
    guint8 sig[CM_SIG_MAX];
    size_t sig_len;
    GBytes *body;            /* owned */
    gboolean use_pki;        /* present the PKI client certificate in TLS */
} CmAgentSend;

typedef struct {
    GPtrArray *sends;        /* CmAgentSend*, owned */
    CmTime wake_at;          /* 0: no timer wanted; else the agent's next timer */
} CmAgentActions;

void cm_agent_actions_init(CmAgentActions *a);
void cm_agent_actions_clear(CmAgentActions *a);
/* A CmRequest view of a send (borrows from send). */
void cm_agent_send_request(const CmAgentSend *send, CmRequest *req);

void cm_agent_start(CmAgent *agent, CmTime now, CmAgentActions *out);
/* A response to send id; resp NULL when the request failed in transport
 * (timeout, connection refused). */
void cm_agent_on_response(CmAgent *agent, guint64 id, const CmResponse *resp, CmTime now,
                          CmAgentActions *out);
void cm_agent_on_timer(CmAgent *agent, CmTime now, CmAgentActions *out);

/* Operator actions on an installed client (REQ TRUST-06). */
/* The TRK the client holds (hex, borrowed) or NULL. */
const char *cm_agent_trk_hex(const CmAgent *agent);
CmTrustSource cm_agent_trk_source(const CmAgent *agent);
CmTrustSource cm_agent_signcert_source(const CmAgent *agent);
/* Mass upgrade to the hardware-bound key storage (REQ TRUST-12): a client
 * with a PKI certificate makes a new self-signed certificate without
 * re-registering; one without re-registers.  The re-registration starts at
 * a random point of the agent's start_window. */
void cm_agent_upgrade(CmAgent *agent, int new_tpm_version, CmTime now, CmAgentActions *out);
/* The agent's service restarts (a reboot, a repair): the request in flight
 * is lost and the client notification channel disconnects (REQ REG-05).
 * An active client opens a new channel at once; a blocked one stays silent,
 * since the site would refuse it a new channel. */
void cm_agent_restart(CmAgent *agent, CmTime now, CmAgentActions *out);
/* Set inventory/discovery properties the client reports (strings). */
void cm_agent_set_inventory(CmAgent *agent, const char *property, const char *value);
void cm_agent_set_discovery(CmAgent *agent, const char *property, const char *value);

/* ----------------------------------------------------------- state */

typedef enum {
    CM_AGENT_INSTALLED,
    CM_AGENT_LOCATING,
    CM_AGENT_TRUSTING,    /* getting TRK / MP certificate / signing certificate */
    CM_AGENT_REGISTERING,
    CM_AGENT_PENDING,     /* registered, waiting for approval */
    CM_AGENT_ACTIVE,      /* approved: policy and inventory cycles */
    CM_AGENT_BLOCKED,     /* the site refused it as blocked */
    CM_AGENT_FAILED,      /* gave up: no MP it can trust */
} CmAgentState;

const char *cm_agent_state_name(CmAgentState s);

typedef struct {
    CmAgentState state;
    char smsid[CM_ID_SMSID_LEN + 1];
    char hwid[CM_ID_HWID_LEN + 1];
    /* The text fields below are never NULL ("" when unset) and live as
     * long as the agent or until it changes them: shared strings, since a
     * million clients name the same few MPs and URLs. */
    const char *mp;               /* the MP it uses */
    CmTransport transport;
    CmKspKind ksp;
    gboolean ksp_fell_back;
    gboolean cloned;              /* made by cm_agent_clone */
    gboolean cloned_key;          /* ...and signs with the image's own key */
    CmTrustSource trk_source;
    CmTrustSource signcert_source;
    int registrations;            /* registration requests sent */
    int retries;
    int policies_accepted;
    int policies_refused;         /* bad signature or hash mismatch (REQ POL-03) */
    int mp_refused;               /* MPs refused for not chaining to the TRK (REQ TRUST-03) */
    int inventories_sent;
    CmTime registered_at;         /* when approval was seen, 0 if not */
    GPtrArray *policy_ids;        /* accepted policy IDs (char*) */
    const json_t *settings;       /* merged client settings from policies (REQ POL-06), or NULL */
    /* Required deployments of the accepted policies (REQ POL-04). */
    int installs_done;            /* installed */
    int installs_pending;         /* not installed yet (before the deadline, or waiting for a window) */
    int installs_unfit;           /* ...of those, ones no maintenance window is long enough for */
    /* Automatic client upgrade (REQ POL-05). */
    const char *client_version;   /* the version running: CM_AGENT_VERSION until an upgrade */
    int upgrade_checks;           /* client package answers read */
    int upgrades_installed;
    const char *upgrade_mp;       /* the MP the last upgrade's package came from */
    const char *upgrade_url;      /* where that MP said the source files are */
    const char *upgrade_hash;     /* the package hash that MP gave (lower-case hex) */
    /* Messages of the active cycle (docs/protocol.md).  Counted when
     * answered 200, except keepalives_sent. */
    int states_sent;              /* state messages (entries) the site accepted */
    int status_sent;              /* status messages the MP took: unauthenticated (REQ MSG-03) */
    int client_status_sent;       /* encrypted self-check reports the site accepted (REQ DATA-02) */
    /* The client notification channel (REQ REG-05). */
    int keepalives_sent;          /* keep-alives sent on an open channel (not the openings) */
    int keepalives_answered;
    gboolean channel_open;
    const char *channel_mp;       /* the MP holding it; a driver closes that MP's side
                                   * (cm_mp_channel_close) when channel_open falls */
    int channel_opens;            /* channels the site let it open */
    CmTime blocked_at;            /* when the agent learnt it is blocked; 0: not blocked */
    int keepalives_after_block;   /* of keepalives_sent, those sent after blocked_at */
} CmAgentStatus;

/* A view of the agent's state (borrowed fields). */
const CmAgentStatus *cm_agent_status(const CmAgent *agent);
/* The client token the site issued with the last approved registration
 * answer (what the device shows a CMG, REQ CMG-12), borrowed, or NULL. */
const char *cm_agent_cmg_token(const CmAgent *agent);
/* The key and certificate the agent signs with (borrowed). */
CmKey *cm_agent_key(const CmAgent *agent);
CmCert *cm_agent_cert(const CmAgent *agent);
/* An accepted, verified policy (borrowed) or NULL: what the content
 * download (REQ DP-04) and maintenance windows (REQ POL-04) will read. */
const json_t *cm_agent_policy(const CmAgent *agent, const char *policy_id);

/* ----------------------------------------------------------- installs */

/* A required deployment of an accepted policy (REQ POL-04). */
typedef enum {
    CM_DEPLOY_NONE,      /* no such accepted policy, or not a required deployment */
    CM_DEPLOY_PENDING,   /* before its deadline, or waiting for a window that fits */
    CM_DEPLOY_INSTALLED,
} CmDeployState;

const char *cm_deploy_state_name(CmDeployState s);
/* The state of policy_id's deployment; *installed_at (may be NULL) is when
 * its install started, 0 when it has not. */
CmDeployState cm_agent_deployment(const CmAgent *agent, const char *policy_id,
                                  CmTime *installed_at);
/* When an install that runs for at most max_runtime (0: not stated) may
 * start at or after t under a daily maintenance window of length
 * window_len starting window_start into each UTC day: t itself when it
 * fits in what is left of the window t is in, else the start of the next
 * window; -1 when the window is shorter than max_runtime, so that no day
 * will ever do.  A window_len of 0 is no window (t); one of a whole day
 * or more is always open (t). */
CmTime cm_maintenance_fit(CmTime t, CmTime window_start, CmTime window_len, CmTime max_runtime);

/* Compares client versions "5.00.9122.1000" part by part as numbers:
 * <0, 0, >0.  FALSE when either is not a version (1 to 4 dot-separated
 * parts of 1 to 9 digits). */
gboolean cm_client_version_cmp(const char *a, const char *b, int *out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmAgent, cm_agent_free)

G_END_DECLS

#endif
