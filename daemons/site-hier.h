/* site-hier.h - the hierarchy in the lab (site-hier.c): joining a child
 * site to its parent, a child's management points signed with the
 * top-level site's trusted root key, and intersite replication over HTTPS
 * (docs/lab.md, "Hierarchy"). */
#ifndef CM_SITE_HIER_H
#define CM_SITE_HIER_H

#include "site-daemon.h"

/* The parent's route for its children's replication batches. */
#define CM_SITE_API_REPLICATE "/site/replicate"

/* Options of join and add-mp (an option group). */
extern GOptionEntry cm_site_hier_entries[];

/* cmlab-site.c: a site folder opened as its commands open it (site.conf,
 * master key; with forests the [forests] trusts too); *code (may be NULL)
 * its site code. */
CmSite *cm_site_daemon_open(const char *dir, gboolean forests, char **code, GError **error);

/* `cmlab-site join --dir CHILD --parent-dir PARENT --kind K`: the exit
 * status (1 with the reason on stderr, the child unchanged). */
int cm_site_hier_join(const char *dir);

/* add-mp: a joined child's MP certificate signed by the top-level site's
 * TRK (--top-dir or the recorded parent chain), otherwise the site's own
 * cm_site_add_mp.  New references in *mp_cert, *tls, *key. */
gboolean cm_site_hier_add_mp(CmSite *site, const char *dir, const char *name, gboolean internet,
                             CmTime now, CmMpInfo *info, CmCert **mp_cert, CmCert **tls,
                             CmKey **key, GError **error);

/* serve: a joined child starts its replication thread ([hierarchy] of
 * site.conf); nothing for a site without a parent.  Stop before the site
 * is freed. */
gboolean cm_site_hier_start(SiteDaemon *d, CmNetConfig *cfg, GError **error);
void cm_site_hier_stop(void);

/* POST /site/replicate at the parent (a CmNetHandler's body). */
gboolean cm_site_hier_replicate_api(CmNetCall *call, const CmRequest *req, CmResponse *resp,
                                    SiteDaemon *d);

/* GET /admin/hierarchy (under d->lock). */
json_t *cm_site_hier_status_json(SiteDaemon *d, GError **error);

#endif
