/* cli.h - what surrounds the client in the simulator rather than the
 * protocol: its local logs (sim/logs.c, REQ CLI-04) and client push
 * installation accounts (sim/push.c, REQ CLI-01). */
#ifndef CM_SIM_CLI_H
#define CM_SIM_CLI_H

#include "world.h"

/* logs.c: the log-wipe strategy.  Each client keeps a local log of what
 * its agent did; the product lets the Users group read it and the
 * Interactive user write it (seed 001), so an attacker who runs as a
 * low-rights user on a client can erase it, while what the client already
 * sent stays at the site. */
gboolean sim_logs_attacker_start(SimWorld *w, CmScnAttacker *scn, GError **error);
void sim_logs_attacker_report(SimWorld *w, CmScnAttacker *scn);
void sim_logs_free(SimWorld *w);

/* push.c: [push_account]s on their sites, and the stolen-push-account and
 * push-relay strategies, measured by what the account reaches. */
gboolean sim_push_build(SimWorld *w, GError **error);
void sim_push_attacker_report(SimWorld *w, CmScnAttacker *scn);
/* push.<pop>.* metrics: how the site would push to each push population. */
void sim_push_metrics(SimWorld *w);

#endif
