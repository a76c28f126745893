/* site-daemon.h - the state of a running cmlab-site, shared by its
 * files: the daemon (cmlab-site.c) and the administrative API
 * (site-admin.c). */
#ifndef CM_SITE_DAEMON_H
#define CM_SITE_DAEMON_H

#include "daemon.h"

#include "cmsite.h"

typedef struct {
    CmSite *site;
    GMutex lock; /* held around every call into the site library */
    char *dir;
    char **admins;        /* (unused since administrators live in the site database) */
    CmTrust *admin_trust; /* the issuing root: administrators' certificates chain to it */
    CmCert *pki_root;     /* enterprise root for PKI clients, or NULL */
    CmCrl *pki_crl;
    CmNetMetrics *metrics;
    CmNetCounter *forwarded;
    CmNetCounter *registrations[CM_REASON__COUNT];
} SiteDaemon;

/* The CmNetHandler of CM_ADMIN_API_PREFIX; user_data is the SiteDaemon. */
gboolean cm_site_admin_api(CmNetCall *call, const CmRequest *req, CmResponse *resp,
                           void *user_data);

#endif
