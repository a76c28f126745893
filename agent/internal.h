/* internal.h - what the files of libcmagent share; not part of the API. */
#ifndef CMAGENT_INTERNAL_H
#define CMAGENT_INTERNAL_H

#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "cmagent"
#endif

#include "cmagent.h"

/* ------------------------------------------------------------ timing */

/* Exponential backoff with full jitter (Brooker, "Exponential Backoff And
 * Jitter"): the n-th consecutive failure waits 1 s plus a uniform draw in
 * [0, min(CAP, BASE * 2^(n-1))).  Full jitter spreads a crowd of clients
 * that failed together (an MP restart, a site outage) over the whole
 * window instead of bringing them back in waves; the 1 s floor keeps a
 * failing client from retrying in the same instant. */
#define AGENT_BACKOFF_BASE    (30 * CM_USEC_PER_SEC)
#define AGENT_BACKOFF_CAP     CM_USEC_PER_HOUR
#define AGENT_BACKOFF_FLOOR   CM_USEC_PER_SEC
/* A Retry-After is honoured, plus up to 10 % so that a crowd told the same
 * value does not come back in the same second; values above a day are cut
 * to a day so that a rogue or broken MP cannot silence a client for good. */
#define AGENT_RETRY_AFTER_MAX CM_USEC_PER_DAY
/* The agent's own deadline for a request the driver never answered; the
 * drivers time out far earlier (and report resp == NULL), this only keeps a
 * lost response from stalling the agent. */
#define AGENT_REQUEST_TIMEOUT (10 * CM_USEC_PER_MIN)
/* Consecutive failures (transport, 5xx, malformed answers) before the
 * agent moves on to the next MP of its list. */
#define AGENT_MP_MAX_FAILURES 3
/* Client identity certificate: valid a year from an hour ago (a little
 * clock skew between client and site must not make a fresh certificate
 * "not yet valid"); renewed, and re-registered, 30 days before expiry. */
#define AGENT_CERT_LIFETIME   (365 * CM_USEC_PER_DAY)
#define AGENT_CERT_BACKDATE   CM_USEC_PER_HOUR
#define AGENT_CERT_RENEW      (30 * CM_USEC_PER_DAY)

/* ------------------------------------------------------------ bounds */

#define AGENT_RESPONSE_MAX    (512 * 1024) /* any JSON answer */
#define AGENT_POLICY_MAX      (256 * 1024) /* decoded policy bytes */
#define AGENT_MAX_MPS         64           /* entries kept from a location reply */
#define AGENT_MAX_ASSIGNMENTS 4096
#define AGENT_POLICY_ID_MAX   64
/* Messages queued for the active cycle: at most 100 states in one state
 * message (the site's bound); a client out of touch for long keeps at most
 * AGENT_STATES_MAX states and AGENT_STATUS_MAX status messages, the
 * oldest giving way, so that memory stays bounded. */
#define AGENT_STATES_PER_MSG  100
#define AGENT_STATES_MAX      1000
#define AGENT_STATUS_MAX      100
#define AGENT_STATUS_TEXT_MAX 1024 /* what the MP accepts as "text" */
/* A client package answer's version and download location. */
#define AGENT_VERSION_MAX     31
#define AGENT_URL_MAX         255

/* ------------------------------------------------------------ messages */

/* State message values (docs/protocol.md, state). */
#define AGENT_STATE_ACCEPTED  1 /* the policy was verified and accepted */
#define AGENT_STATE_INSTALLED 2 /* its required deployment installed */
/* Status message IDs, component CCMExec, as the product's software
 * distribution client numbers them: 10006 "failed" (here: a policy was
 * refused), 10009 "completed successfully" (a deployment installed). */
#define AGENT_MSG_POLICY_REFUSED 10006
#define AGENT_MSG_INSTALLED      10009

/* ------------------------------------------------------------ state */

/* What the agent does when its timer fires (or right away). */
typedef enum {
    STEP_NONE,     /* nothing: blocked, or failed without candidates */
    STEP_START,    /* first contact, after the start window */
    STEP_LOCATE,   /* location request to a candidate */
    STEP_MPCERT,   /* the chosen MP's certificate */
    STEP_SITEINFO, /* TRK (first use), signing and encryption certs, settings */
    STEP_REGISTER,
    STEP_REGSTATUS,
    STEP_ACTIVE, /* the policy / inventory cycle decides */
    STEP_KEEPALIVE, /* blocked, with a notification channel open: keep-alives only (REG-05) */
} AgentStep;

typedef enum {
    REG_NONE,    /* not registered (or must register again) */
    REG_PENDING, /* registered, approval pending */
    REG_APPROVED,
} AgentReg;

/* An MP from a location reply, with the transport the agent will use. */
typedef struct {
    const char *name; /* a shared string (agent_str_set) */
    CmTransport transport; /* the most secure it offers that the agent can use */
    gboolean internet;
} AgentMp;

/* The 32 bytes of a 64-digit hex SHA-256 (checked by the caller). */
void agent_sha256_from_hex(const char *hex, guint8 out[32]);

/* A policy to download: from the assignments. */
typedef struct {
    char *policy_id;
    gint64 version;
    char hash[65]; /* lower-case hex SHA-256 of the policy bytes */
} AgentFetch;

/* An accepted policy. */
typedef struct {
    gint64 version;
    guint8 hash[32]; /* SHA-256 of the policy bytes */
    json_t *policy; /* the verified policy object */
    /* its deployment (REQ POL-04), read from the verified policy */
    gboolean required;
    CmTime deadline;     /* 0: none, as soon as possible */
    CmTime max_runtime;  /* 0: not stated */
    CmTime installed_at; /* when its install started; 0: not installed */
} AgentPolicy;

/* An inventory or discovery property the driver set (or removed: value
 * NULL), one allocation. */
typedef struct {
    gboolean discovery;
    char *value; /* points into key's allocation, after the key; NULL: removed */
    char key[];
} AgentProp;

/* The site's client token (REQ CMG-12): a JWT of some 330 characters that
 * only a client behind a CMG shows.  Kept as its header part, shared (the
 * same for every client of a site), and its claims and signature decoded,
 * a third smaller; made into text again when asked for (text).  A token
 * whose parts do not encode back to the same text is kept as text. */
typedef struct {
    char *header; /* a shared string; NULL: text is the token as it came */
    char *text;   /* the token as text once asked for */
    gsize claims_len, sig_len;
    guint8 bin[]; /* the claims, then the signature */
} AgentToken;

/* Site settings learned from siteinfo. */
typedef struct {
    char communication[16]; /* "https-only", "http-or-https", "ehttp" */
    gboolean require_signing;
    gboolean require_sha256;
    gboolean encrypt;
} AgentSiteSettings;

/* The installation properties and timing that never change after
 * cm_agent_new: the same for every client a driver installs alike, so
 * held once (agent_profile_intern) instead of in each of a million agents. */
typedef struct {
    gint refs; /* under the intern table's lock; not part of the value */
    CmInstallMethod method;
    gboolean usepkicert;
    gboolean media;
    CmKeyAlg key_alg;
    CmHashAlg sign_hash;
    gboolean on_internet; /* internet-facing MPs only */
    gboolean deadline_overrides_window;
    gboolean auto_upgrade; /* REQ POL-05 */
    CmTime policy_interval;
    CmTime retry_base;
    CmTime retry_cap;
    CmTime inventory_interval;
    CmTime start_window;
    CmTime mw_start; /* maintenance window (REQ POL-04), normalised */
    CmTime mw_len;
    CmTime upgrade_interval;
    CmTime client_status_interval; /* REQ DATA-02; 0: no self-checks */
    CmTime keepalive_interval;     /* REQ REG-05; 0: no notification channel */
    CmTime channel_lifetime;       /* 0: the channel lasts until a restart */
} AgentProfile;

struct CmAgent {
    /* installation properties and the device (copied) */
    char *name;
    char *domain; /* a shared string (agent_str_ref) */
    char *entra_token;
    const AgentProfile *prof; /* shared (agent_profile_intern) */
    CmCert *pki_cert;
    CmKey *pki_key;
    gboolean pki_revoked; /* the site said our PKI certificate is revoked */
    char site_code[4];     /* "" until known */
    /* MPs to ask for the MP list (NET-01), shared strings.  Plain arrays
     * here and below: a GArray or GPtrArray header costs more than a few
     * entries. */
    char **candidates;
    guint n_candidates;

    CmRng rng;
    CmAgentStatus st;

    /* identity (REQ TRUST-11) */
    CmKsp *ksp;
    CmKey *key;
    CmCert *cert;

    /* trust in the site */
    CmKey *trk;
    char *trk_hex;
    CmCert *signcert;
    CmCert *enc_cert;
    CmCert *mp_cert;     /* the current MP's certificate */
    gboolean mp_trusted; /* its certificate verified with the TRK, or PKI */
    AgentSiteSettings site;
    gboolean siteinfo_refreshed; /* one refresh per inventory refusal */

    /* service location */
    guint cand_idx;
    guint loc_tr_idx;
    guint n_mps;
    AgentMp *mps; /* the MP list, most preferred first */
    guint mp_idx;
    gboolean round_refused; /* an MP was refused for trust since the last round */

    /* flow */
    gboolean started;
    AgentStep step;
    CmTime wake_at;
    guint64 next_id;
    guint64 inflight_id; /* 0: nothing in flight */
    CmEndpoint inflight_ep;
    int fail_count;  /* consecutive failures: the backoff exponent */
    int mp_failures; /* consecutive failures with the current MP */
    int poll_count;  /* approval polls */
    AgentReg reg;
    gboolean installs_dirty; /* software.c: the policies changed since it last looked */
    AgentToken *token; /* the site's client token, when approval gave one */

    /* active cycle */
    CmTime policy_due;
    CmTime inventory_due;
    gboolean discovery_next;
    /* Inventory and discovery are built when sent (agent_report_props):
     * what the agent reports of itself, then what the driver set. */
    CmKspKind inv_ksp;    /* the key storage the client was installed with */
    GPtrArray *props;     /* AgentProp*, the driver's properties; NULL: none */
    GQueue fetch;         /* AgentFetch* */
    /* AgentPolicy*, index for index with st.policy_ids: a client holds a
     * few policies, and an array costs a tenth of a hash table. */
    AgentPolicy **policies;
    json_t *settings;     /* merged "settings" of the accepted policies */

    /* software (software.c) */
    CmTime install_due;      /* the next install decision; 0: none scheduled */
    CmTime upgrade_due;      /* the next client package check; 0: not scheduled yet */

    /* messages (agent.c) */
    GQueue states;           /* json_t*: state entries the site has not accepted yet */
    guint states_inflight;   /* how many of them the state message in flight carries */
    GQueue status;           /* json_t*: status message bodies the MP has not taken yet */
    CmTime client_status_due; /* the next self-checks; 0: not scheduled yet */
    CmTime policy_ok_at;     /* the last policy assignments answered */
    gboolean policy_refused; /* the last policy downloaded was refused */
    gboolean inventory_dropped; /* the last inventory was too large for the site */
    CmTime channel_opened_at;
    CmTime keepalive_due;    /* the next keep-alive; channel closed: the next opening */
};

/* install.c */
/* The shared profile equal to tmpl (zero-filled, then set): a new
 * reference; released with agent_profile_release. */
const AgentProfile *agent_profile_intern(const AgentProfile *tmpl);
void agent_profile_release(const AgentProfile *prof);
/* Shared strings for the status's MP names, URLs and versions and for the
 * MP list: a million clients hold the same few.  Counted, and freed
 * with their last holder, so that what a rogue MP sends cannot
 * grow the intern table beyond what the agents hold now.  An unset field
 * is agent_str_empty. */
extern const char agent_str_empty[];
/* A new reference to the shared string equal to s, and its release
 * (NULL and agent_str_empty are ignored). */
char *agent_str_ref(const char *s);
void agent_str_unref(const char *s);
/* *slot becomes value ("" and NULL: agent_str_empty), the old one released. */
void agent_str_set(const char **slot, const char *value);
/* Releases the MP list entry's name (the GArray's clear function). */
void agent_mp_clear(gpointer mp);
GArray *agent_mp_list_new(void);
/* Drops the MP list. */
void agent_mps_clear(CmAgent *agent);
/* The inventory (discovery FALSE) or discovery properties to send: new
 * object. */
json_t *agent_report_props(const CmAgent *agent, gboolean discovery);
/* Forgets what the driver set for an inventory or discovery property, so
 * that the agent's own value is reported. */
void agent_prop_forget(CmAgent *agent, gboolean discovery, const char *property);
gboolean agent_have_pki(const CmAgent *agent);
AgentToken *agent_token_new(const char *token);
void agent_token_free(AgentToken *t);
/* A new self-signed identity certificate for key (SMSID as CN). */
CmCert *agent_make_cert(CmAgent *agent, CmKey *key, CmTime now, GError **error);

/* policy.c */
/* Verifies a policybody answer for fetch: signature with the held site
 * signing certificate (TRUST-08), hash from the assignment, and the policy's
 * own policy_id, version and site code.  Returns the policy object (new
 * reference) or NULL with the reason. */
json_t *agent_policy_verify(CmAgent *agent, const AgentFetch *fetch, const json_t *resp,
                            GError **error);
void agent_policy_accept(CmAgent *agent, const AgentFetch *fetch, json_t *policy, CmTime now);
/* The accepted policy policy_id (may be NULL), or NULL. */
AgentPolicy *agent_policy_find(const CmAgent *agent, const char *policy_id);
/* Drops accepted policies that are no longer assigned. */
void agent_policy_retain(CmAgent *agent, GHashTable *assigned);
void agent_fetch_free(AgentFetch *f);
void agent_policy_free(AgentPolicy *p);

/* agent.c: messages the active cycle sends next */
/* A state message for topic (a policy ID). */
void agent_queue_state(CmAgent *agent, const char *topic, int state, CmTime now);
/* A status message (unauthenticated, REQ MSG-03); text is cut to what the
 * MP accepts. */
void agent_queue_status(CmAgent *agent, const char *severity, int message_id, const char *text);

/* software.c */
/* Reads the deployment of a newly accepted policy; keeps the install of the
 * version it replaces (old, may be NULL) when the content is the same. */
void agent_deploy_read(AgentPolicy *p, const AgentPolicy *old);
/* Installs what is due at now and schedules the rest (install_due), when
 * the policies changed or a scheduled install came due. */
void agent_installs_run(CmAgent *agent, CmTime now);
/* A client package answer (body of a 200) from the current MP: installs a
 * newer version.  FALSE with the reason when the answer is malformed. */
gboolean agent_client_package(CmAgent *agent, const json_t *body, GError **error);

#endif
