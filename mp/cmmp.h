/* cmmp.h - the management point library.
 *
 * Pure logic: it answers the anonymous requests itself (location, its
 * certificate signed with the TRK, the site's public information), applies
 * the site's transport and signing rules to everything else, and hands the
 * rest to the site (CM_MP_FORWARD).  The driver carries forwarded requests
 * to the site (a function call in the simulator, HTTPS in the lab) and
 * tells the MP the outcome with cm_mp_forwarded.
 */
#ifndef CMMP_H
#define CMMP_H

#include "cmproto.h"

G_BEGIN_DECLS

#define CM_MP_ERROR (cm_mp_error_quark())
GQuark cm_mp_error_quark(void);

/* The client installation package an MP directs automatic client upgrade
 * to (REQ POL-05, docs/protocol.md clientpackage).  Nothing of it is
 * signed: clients take it on the MP's word. */
typedef struct {
    const char *version; /* "5.00.9122.1000" */
    const char *url;     /* where the client source files are */
    const char *hash;    /* hex SHA-256 of the package */
} CmMpClientPackage;

typedef struct {
    const char *name;       /* host name, as in the MP certificate */
    guint64 role_id;
    gboolean internet;      /* internet-facing (REQ NET-08) */
    const CmCert *mp_cert;  /* signed with the TRK (REQ TRUST-02) */
    const json_t *siteinfo; /* the site's published information (docs/protocol.md) */
    const json_t *mplist;   /* the site's MP list */
    const CmMpClientPackage *client_package; /* NULL: none published (clientpackage: not-found) */
} CmMpConfig;

typedef struct CmMp CmMp;

CmMp *cm_mp_new(const CmMpConfig *config, GError **error);
void cm_mp_free(CmMp *mp);
/* New site information (settings changed, MPs added). */
gboolean cm_mp_update_site(CmMp *mp, const json_t *siteinfo, const json_t *mplist,
                           GError **error);
/* Publishes another client package (NULL: none).  Whoever controls the MP
 * can do this: clients upgrade to it without checking it (REQ POL-05).
 * FALSE when the package is malformed (a version of 1 to 4 numbers, a
 * location, a hex SHA-256); the MP keeps what it had. */
gboolean cm_mp_set_client_package(CmMp *mp, const CmMpClientPackage *package, GError **error);

typedef enum {
    CM_MP_ANSWERED, /* resp holds the answer */
    CM_MP_FORWARD,  /* send the request to the site, answer with its response */
} CmMpVerdict;

CmMpVerdict cm_mp_handle(CmMp *mp, const CmRequest *req, CmTime now, CmResponse *resp);
/* What the site answered to a forwarded request. */
void cm_mp_forwarded(CmMp *mp, const CmRequest *req, const CmResponse *site_resp, CmTime now);

/* Client notification channels (REQ REG-05): opened by a first notify the
 * site accepted; kept until the client disconnects. */
void cm_mp_channel_close(CmMp *mp, const char *smsid);
guint cm_mp_channel_count(const CmMp *mp);

typedef struct {
    gint64 requests[CM_EP__COUNT];
    gint64 answered;
    gint64 forwarded;
    gint64 refusals[CM_REASON__COUNT];
    gint64 keepalives;       /* answered on open channels without the site */
    gint64 status_discarded; /* malformed status messages (REQ MSG-03) */
} CmMpCounters;

const CmMpCounters *cm_mp_counters(const CmMp *mp);
const char *cm_mp_name(const CmMp *mp);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmMp, cm_mp_free)

G_END_DECLS

#endif
