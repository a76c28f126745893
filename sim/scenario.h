/* scenario.h - a scenario file, parsed and checked (sim/scenario.c).
 *
 * A scenario is a GLib key file (docs/scenarios.md is the reference).  The
 * loader refuses a bad file before anything runs, naming the file, group,
 * key and what was expected.  Variants expand one file into several
 * CmScenario values, one per combination, each with its variant values
 * substituted wherever ${variant.NAME} appeared.
 *
 * Every string below is owned by the CmScenario; every time is CmTime
 * (microseconds of virtual time from the start of the run). */
#ifndef CM_SIM_SCENARIO_H
#define CM_SIM_SCENARIO_H

#include "cmproto.h"
#include "cmagent.h"
#include "cmsite.h"
#include "cmcmg.h"

G_BEGIN_DECLS

#define CM_SCENARIO_ERROR (cm_scenario_error_quark())
GQuark cm_scenario_error_quark(void);

typedef enum {
    CM_SCENARIO_ERROR_PARSE,   /* not a key file */
    CM_SCENARIO_ERROR_INVALID, /* a group or key holds something unusable */
} CmScenarioError;

/* [segment NAME]: a network segment (a forest's LAN, the perimeter, the
 * internet).  Links between segments come from [link A B]; two segments
 * without a link cannot reach each other.  A segment always reaches itself
 * with its own latency and bandwidth. */
typedef struct {
    char *name;
    CmTime latency;          /* one way, inside the segment */
    double bandwidth_bps;    /* bits per second */
} CmScnSegment;

/* [link A B]: A and B reach each other (both ways unless one_way). */
typedef struct {
    char *a, *b;
    CmTime latency;
    double bandwidth_bps;
    gboolean one_way;        /* only A may open connections to B (REQ NET-06/09) */
} CmScnLink;

/* [forest NAME] */
typedef struct {
    char *name;
    char **domains;          /* NULL-terminated; the forest root is implied */
} CmScnForest;

/* [trust A B] kind = two-way | one-way (A trusts B) | none */
typedef struct {
    char *a, *b;
    CmForestTrust kind;
} CmScnTrust;

/* [site CODE] */
typedef struct {
    char *code;
    gboolean top_level;
    char *forest;
    char *segment;
    CmSiteSettings settings;
    char **publish_to;       /* forests with directory publishing (REQ NET-07), NULL-terminated */
    int workers;             /* site server worker pool */
    int queue_limit;
    /* Hierarchy (sim/hierarchy.c): a child site joins parent at set-up
     * (REQ NET-05) and replicates with it every repl_interval. */
    char *parent;            /* parent site code, NULL: none (top-level or standalone) */
    CmSiteKind kind;         /* primary or secondary, with parent */
    CmTime repl_interval;    /* database replication with the parent */
    int repl_batch;          /* items per batch at most */
    gboolean push_require_kerberos; /* client push: no NTLM fallback (REQ CLI-01) */
} CmScnSite;

/* [mp NAME] */
typedef struct {
    char *name;              /* host name, e.g. mp1.corp.example */
    char *site;
    char *segment;
    gboolean internet;
    int workers;
    int queue_limit;
} CmScnMp;

typedef enum {
    CM_SCN_SOURCE_NONE,      /* nothing: trust on first use */
    CM_SCN_SOURCE_DIRECTORY,
    CM_SCN_SOURCE_PUSH,
    CM_SCN_SOURCE_PROPERTY,
} CmScnTrustSource;

/* [population NAME]: count virtual clients alike. */
typedef struct {
    char *name;
    guint64 count;
    char *segment;
    char *forest;            /* NULL: workgroup */
    char *domain;            /* "" for workgroup; defaults to the forest */
    char *site_code;         /* SMSSITECODE, may be NULL */
    CmScnTrustSource trk;    /* how the TRK arrives */
    CmScnTrustSource signcert;
    int tpm_version;         /* key_storage: tpm2 -> 2, tpm1 -> 1, software -> 0 */
    gboolean pki;            /* has a PKI client certificate */
    gboolean kerberos;       /* registers with Windows-integrated auth (domain members) */
    CmInstallMethod install;
    char *mp;                /* assigned MP, may be NULL */
    CmTime start;            /* first contact at start + uniform(0, start_window) */
    CmTime start_window;
    CmTime policy_interval;
    CmTime inventory_interval;
    CmKeyAlg key_alg;
    GHashTable *inventory;   /* property -> value (strings), reported by every client */
    gboolean media;          /* OS deployment media, not hardware bound (REQ TRUST-13) */
    CmTime maintenance_start;  /* daily maintenance window: offset into each day */
    CmTime maintenance_window; /* its length; 0: no window, installs any time (REQ POL-04) */
    gboolean auto_upgrade;     /* automatic client upgrade (REQ POL-05) */
    CmTime client_status_interval; /* encrypted self-checks; 0: none (REQ DATA-02) */
    CmTime keepalive_interval;     /* notification channel keep-alives; 0: no channel (REQ REG-05) */
    CmTime channel_lifetime;       /* the channel disconnects after it; 0: never */
    /* Internet clients through a cloud management gateway (sim/cmg.c) */
    char *cmg;                     /* the [cmg] they reach the site through, NULL: none */
    gboolean cmg_token;            /* pre-authenticate with a token, not the PKI certificate */
    char *dp;                /* the DP it downloads content from (REQ DP-04), may be NULL */
} CmScnPopulation;

#define CM_SCN_CONTENT_MAX (G_GUINT64_CONSTANT(1) << 43) /* 8 TiB, what a DP transfer takes */
#define CM_SCN_CONTENT_ID_MAX 128                         /* CM_DP_ID_MAX */
#define CM_SCN_CONTENT_FILES_MAX 1024                     /* CM_DP_MAX_FILES */

/* [content NAME]: a package the site distributes (sim/content.c).  Its
 * files are small stand-ins with a real manifest and content hash; the
 * network is charged the nominal size. */
typedef struct {
    char *name;              /* the content ID */
    guint64 size;            /* nominal bytes */
    guint files;
} CmScnContent;

/* [dp NAME]: a distribution point and the site's transfers to it
 * (REQ DP-02/03, sim/content.c). */
typedef struct {
    char *name;
    char *site;
    char *segment;
    gboolean prestaged;       /* takes content placed by hand (REQ DP-03) */
    char **prestaged_content; /* [content] names placed by hand, NULL-terminated */
    double rate_limit_bps;    /* 0: none, the link's bandwidth */
    guint hours_start, hours_end; /* transfers from start to end (hours of the day, end
                                   * exclusive, wrapping midnight); 0-24: all day */
    gboolean tampered;        /* serves altered files under the same content ID (REQ DP-04) */
} CmScnDp;

/* [push_account NAME]: a client push installation account of a site
 * (REQ CLI-01, sim/push.c). */
typedef struct {
    char *name;
    char *site;
    char **domains;           /* its scope, NULL-terminated; NULL: every domain and workgroup */
} CmScnPushAccount;

typedef enum {
    CM_SCN_ACT_UPGRADE_CLIENT, /* target population; randomize_over (REQ TRUST-12) */
    CM_SCN_ACT_BLOCK,          /* target population; fraction */
    CM_SCN_ACT_UNBLOCK,
    CM_SCN_ACT_APPROVE,        /* approve pending clients of a population */
    CM_SCN_ACT_REVOKE,         /* revoke PKI certificates of a population (REQ TRUST-14) */
    CM_SCN_ACT_PUBLISH,        /* site publishes to forest (REQ NET-07) */
    CM_SCN_ACT_DEPLOY,         /* deploy to collection */
    CM_SCN_ACT_CREATE_COLLECTION,
    CM_SCN_ACT_TAKE_OVER_MP,   /* an attacker controls an MP from now on */
    CM_SCN_ACT_SET,            /* change site settings */
    CM_SCN_ACT_MAINTENANCE,    /* run the site's maintenance tasks */
    CM_SCN_ACT_LINK_DOWN,      /* target child site: its replication link to its parent fails */
    CM_SCN_ACT_LINK_UP,        /* ... and comes back */
    CM_SCN_ACT_DISTRIBUTE,     /* content to distribution points (REQ DP-02/03) */
    CM_SCN_ACT_FAIL_CP,        /* target connection point: its host fails (REQ CMG-08) */
    CM_SCN_ACT_RECOVER_CP,     /* ... and comes back, reconnecting */
} CmScnAction;

/* [event NAME] */
typedef struct {
    char *name;
    CmTime at;
    CmScnAction action;
    char *target;            /* population, MP, collection or forest by name */
    char *site;              /* for site actions; defaults to the only site */
    CmTime randomize_over;
    double fraction;         /* share of the target population, 1.0 default */
    /* deploy */
    char *collection;
    gboolean required;
    CmTime max_runtime;
    /* create-collection: rules as in cm_rule_parse, NULL-terminated */
    char **rules;
    /* set: key = value pairs of site settings, NULL-terminated */
    char **settings;
    /* distribute: a [content] to [dp]s (NULL: every DP of the site) */
    char *content;
    char **dps;
} CmScnEvent;

typedef enum {
    CM_SCN_ATK_ROGUE_MP,          /* serves its own TRK to trust-on-first-use clients */
    CM_SCN_ATK_COMPROMISED_MP,    /* alters policies it serves (REQ TRUST-09, POL-03) */
    CM_SCN_ATK_STATUS_FLOOD,      /* bogus status messages at rate (REQ MSG-03/04) */
    CM_SCN_ATK_BOGUS_STATUS,      /* status messages naming victims */
    CM_SCN_ATK_FALSE_INVENTORY,   /* registered clients that lie in inventory (REQ POL-02) */
    CM_SCN_ATK_BLOCKED_REJOIN,    /* blocked clients return with new cert and hwid (REQ REG-04) */
    CM_SCN_ATK_CLONED_IMAGE,      /* clones sharing SMSID and key (REQ REG-06) */
    CM_SCN_ATK_ENROLLMENT_FLOOD,  /* certificate enrollment requests at rate (REQ REG-08) */
    CM_SCN_ATK_POLICY_REPLAY,     /* replays a signed policy to other clients (REQ POL-03) */
    CM_SCN_ATK_ROGUE_UPGRADE,     /* serves a client upgrade package (REQ POL-05) */
    CM_SCN_ATK_MOBILE_ENROLLMENT, /* computers enroll as phones, register as PKI (REQ REG-07) */
    CM_SCN_ATK_LOG_WIPE,          /* a low-rights user erases client logs (REQ CLI-04) */
    CM_SCN_ATK_STOLEN_PUSH_ACCOUNT, /* a client push account stolen (REQ CLI-01) */
    CM_SCN_ATK_PUSH_RELAY,        /* a rogue push target relays the NTLM fallback (REQ CLI-01) */
} CmScnStrategy;

/* [attacker NAME] */
typedef struct {
    char *name;
    CmScnStrategy strategy;
    CmTime start;
    CmTime stop;             /* 0: until the end */
    char *segment;
    char *target;            /* population or MP or collection, per strategy */
    guint64 count;           /* attacking devices, or clones */
    double rate;             /* messages per second, for floods */
    char *mp;                /* the MP it impersonates or controls */
    GHashTable *params;      /* strategy-specific key -> value strings */
} CmScnAttacker;

typedef enum {
    CM_CMP_LT, CM_CMP_LE, CM_CMP_GT, CM_CMP_GE, CM_CMP_EQ, CM_CMP_NE,
} CmCmp;

/* [expect]: NAME = METRIC OP NUMBER [when VARIANT = VALUE] */
typedef struct {
    char *name;
    char *metric;            /* e.g. registrations.completed_ratio, site.backlog.max */
    CmCmp op;
    double value;
    char *when_variant;      /* NULL: every variant */
    char *when_value;
    char *text;              /* the expression as written */
} CmScnExpect;

/* [cmg NAME]: a cloud management gateway, one or more VM instances
 * deciding every internet client request with the real cm_cmg_handle
 * (sim/cmg.c; REQ CMG-02..08). */
typedef struct {
    char *name;              /* the service name, e.g. cmg.contoso.example */
    char *site;              /* the site it serves */
    char *segment;           /* where its instances run (the internet, a cloud region) */
    int instances;           /* VM instances, each with its own workers and queue */
    int workers;             /* per instance */
    int queue_limit;         /* per instance */
    CmTlsVersion tls_min;    /* TLS floor, 1.2 at least (REQ CMG-11) */
    gboolean crl_check;      /* verify client certificate revocation (REQ CMG-03) */
    gboolean crl_published;  /* the CRL is published where the gateway reaches it */
} CmScnCmg;

/* [connection_point NAME]: a CMG connection point at the site, forwarding
 * to the MPs whose CMG traffic is enabled. */
typedef struct {
    char *name;              /* host name */
    char *cmg;
    char *site;              /* the cmg's site */
    char *segment;
    char **mps;              /* the MPs it publishes, NULL-terminated */
    int workers;
    int queue_limit;
} CmScnConnectionPoint;

typedef struct {
    char *path;              /* the file it came from */
    char *name;
    char *description;       /* "" when unsaid */
    guint64 seed;
    CmTime duration;
    CmTime sample;           /* metric sampling interval; default duration / 240 */
    gboolean model_crypto;   /* crypto = model: the cost-model mode */
    char *full_size;         /* what the scenario was designed for, as written; "" when unsaid */
    GHashTable *variant;     /* this variant's NAME -> value ("" maps for none) */
    char *variant_label;     /* "window=2h" or "" */

    GPtrArray *segments;     /* CmScnSegment* */
    GPtrArray *links;        /* CmScnLink* */
    GPtrArray *forests;      /* CmScnForest* */
    GPtrArray *trusts;       /* CmScnTrust* */
    GPtrArray *sites;        /* CmScnSite* */
    GPtrArray *mps;          /* CmScnMp* */
    GPtrArray *populations;  /* CmScnPopulation* */
    GPtrArray *events;       /* CmScnEvent*, sorted by time */
    GPtrArray *attackers;    /* CmScnAttacker* */
    GPtrArray *expects;      /* CmScnExpect* */
    GHashTable *costs;       /* "site.register" -> CmTime* overrides */
    GPtrArray *contents;     /* CmScnContent* */
    GPtrArray *dps;          /* CmScnDp* */
    GPtrArray *cmgs;         /* CmScnCmg* */
    GPtrArray *cps;          /* CmScnConnectionPoint* */
    GPtrArray *push_accounts; /* CmScnPushAccount* */
} CmScenario;

/* What the loader accepts, so that memory stays bounded whatever the file. */
#define CM_SCENARIO_MAX_BYTES (1024 * 1024)              /* a scenario file */
#define CM_SCENARIO_MAX_DEVICES G_GUINT64_CONSTANT(100000000) /* clients + attackers, scaled */
#define CM_SCENARIO_MAX_VARIANTS 64                      /* combinations of [variant] values */

/* Loads path and expands its variants: a new array of CmScenario* (one
 * element when the file has no [variant]), in the order of the cartesian
 * product with the first [variant] key varying slowest.  scale multiplies
 * population and attacker counts (rounding up, at least 1) for quick runs.
 * A file that cannot be read fails in G_FILE_ERROR. */
GPtrArray *cm_scenario_load(const char *path, double scale, GError **error);
/* The same from memory: name stands for the file in messages and in
 * CmScenario.path (the fuzz target and the tests call this). */
GPtrArray *cm_scenario_load_data(const char *name, const char *data, gsize len, double scale,
                                 GError **error);
void cm_scenario_free(CmScenario *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmScenario, cm_scenario_free)

/* Parses "90s", "2ms", "500us", "10m", "1h", "7d", "1.5h", "0" into *out
 * (a bare number must be 0; negative, fractional microseconds and overflow
 * are refused). */
gboolean cm_scn_parse_duration(const char *text, CmTime *out, GError **error);
const char *cm_scn_strategy_name(CmScnStrategy s);
const char *cm_scn_action_name(CmScnAction a);
gboolean cm_scn_compare(CmCmp op, double have, double want);
const char *cm_scn_cmp_name(CmCmp op);

G_END_DECLS

#endif
