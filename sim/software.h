/* software.h - what the simulated clients install on their own (internal
 * to sim/): required deployments held to maintenance windows (REQ POL-04,
 * sim/installs.c) and automatic client upgrade, with the MP an attacker
 * took over or its own upgrade source serving the package (REQ POL-05,
 * sim/upgrade.c).  The agent makes every decision; these files only set it
 * up and count what it did. */
#ifndef CM_SIM_SOFTWARE_H
#define CM_SIM_SOFTWARE_H

#include "world.h"

/* installs.c */
/* The metrics of both (docs/report-schema.md): "installs.*", "upgrades.*"
 * and their per-population forms "pop.<name>.installs_*",
 * "pop.<name>.upgrade*"; called once at the end of a run, before the
 * expectations are checked. */
void sim_software_metrics(SimWorld *w);

/* upgrade.c */
/* An MP publishes its site's production client package, of the site's
 * client version: the one its clients run, so a genuine MP upgrades no
 * one until the site is upgraded. */
void sim_upgrade_publish(SimWorld *w, SimMp *m);
/* The take-over-mp event: the attacker now publishes its own client
 * package on m, a version newer than any client's. */
void sim_upgrade_take_over(SimWorld *w, SimMp *m);
/* The rogue-upgrade strategy: its own upgrade source, an MP at the host
 * name scn->mp (added to w->mps, rogue), which answers the client package
 * downloads of its target population made over plain HTTP. */
gboolean sim_upgrade_attacker_start(SimWorld *w, CmScnAttacker *scn, GError **error);
void sim_upgrade_attacker_report(SimWorld *w, CmScnAttacker *scn);
/* Where a client's request for ep goes: mp, unless a rogue-upgrade
 * attacker sits on the client's path to it (a client package download). */
SimMp *sim_upgrade_route(SimWorld *w, SimClient *c, const CmAgentSend *send, SimMp *mp);
/* The upgrade metrics (sim_software_metrics calls it). */
void sim_upgrade_metrics(SimWorld *w);

#endif
