/* hierarchy.h - a hierarchy of sites in the simulator (sim/hierarchy.c):
 * child sites joined through the site library's real join flow at set-up,
 * their MPs signed by the top-level site's TRK, database replication between
 * each child and its parent as events in virtual time over the scenario's
 * links, link outages, and what replication lag means for clients. */
#ifndef CM_SIM_HIERARCHY_H
#define CM_SIM_HIERARCHY_H

#include "world.h"

typedef struct SimHierarchy SimHierarchy;

/* Joins every [site] with a parent, parents first, and brings the
 * hierarchy's databases level before anything else runs.  A refused join
 * (no two-way forest trust, REQ NET-05) fails set-up with the library's
 * reason. */
gboolean sim_hierarchy_build(SimWorld *w, GError **error);
/* Installs an MP at site: cm_site_add_mp for a site of its own, a
 * certificate signed by the top-level site's TRK for a joined child
 * (REQ TRUST-02). */
gboolean sim_hierarchy_site_add_mp(SimWorld *w, SimSite *site, CmScnMp *scn, CmMpInfo *info,
                                   CmCert **cert, GError **error);
/* Starts the replication cycles and the link sampling. */
void sim_hierarchy_start(SimWorld *w);
/* A deploy event made policy_id at site: in a hierarchy it also goes to
 * every site below as global data. */
void sim_hierarchy_deployed(SimWorld *w, SimSite *site, CmScnEvent *ev, const char *policy_id);
/* link-down / link-up of a child site's link to its parent. */
void sim_hierarchy_link(SimWorld *w, const char *child, gboolean up);
void sim_hierarchy_finish(SimWorld *w);
void sim_hierarchy_free(SimWorld *w);

#endif
