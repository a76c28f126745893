/* site-cmg.h - the site's side of the CMG in the lab (site-cmg.c):
 * provisioning a gateway and its connection points, the internet MP list
 * entries, and the blocked bulk registration tokens handed to the
 * gateway. */
#ifndef CM_SITE_CMG_H
#define CM_SITE_CMG_H

#include "site-daemon.h"

#include "cmcmg.h"

/* Options of add-cmg and add-connection-point (an option group). */
extern GOptionEntry cm_site_cmg_entries[];

/* add-cmg / add-connection-point with the site open; returns the exit
 * status (1 with a message on stderr). */
int cm_site_cmg_command(const char *cmd, CmSite *site, const char *dir, const char *name,
                        const char *out);
/* Appends the CMG's internet MP entries (REQ CMG-10) to an MP list
 * ({"site_code":…, "mps":[…]}) when the site in dir has a CMG. */
void cm_site_cmg_mplist(const char *dir, json_t *mplist);
/* Adds "cmg_connection_points" to an MP's configuration: the connection
 * points the site registered ({"id", "name", "thumbprint"}), whose
 * certificates the MPs accept on their connection point listener. */
void cm_site_cmg_mpconfig(const char *dir, json_t *mpconfig);
/* Writes the blocked token IDs where the site's gateway reads them. */
gboolean cm_site_cmg_push_blocked(SiteDaemon *d, GError **error);

#endif
