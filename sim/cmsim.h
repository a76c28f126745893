/* cmsim.h - drivers that run the role libraries without a network.
 *
 * cm_sim_run_agent is the smallest driver there is: one agent, requests
 * delivered at once by a callback, timers fired in order.  Tests and the
 * lifecycle benchmark use it; the discrete-event simulator adds queues,
 * latency and many agents on top of the same role calls. */
#ifndef CMSIM_H
#define CMSIM_H

#include "cmproto.h"
#include "cmagent.h"
#include "report.h"
#include "scenario.h"

G_BEGIN_DECLS

/* Delivers one request the agent wants sent; fills resp and returns TRUE,
 * or returns FALSE for a transport failure (no such host, refused). */
typedef gboolean (*CmSimDeliverFn)(void *ctx, const CmAgentSend *send, CmRequest *req,
                                   CmResponse *resp, CmTime now);

/* Starts the agent (or fires its timer when already started) at *now and
 * runs it until it wants no timer before until or max_steps actions pass;
 * *now advances to each timer it fires.  Returns the number of requests
 * delivered. */
guint cm_sim_run_agent(CmAgent *agent, CmTime *now, CmTime until, guint max_steps,
                       CmSimDeliverFn deliver, void *ctx);

/* ------------------------------------------------------- the simulator */

typedef struct {
    const char *costs_path; /* a cost file from `cmlab-sim calibrate`, or NULL */
    gboolean progress;      /* a progress line on stderr */
    /* The process exits after this run: its world (a million agents, the
     * site's database) is left to the operating system instead of freed
     * piece by piece, which costs seconds.  Builds with AddressSanitizer
     * free it all the same, so that the leak checker sees every byte. */
    gboolean exiting;
} CmSimOptions;

/* Runs one variant of a scenario (scenario.h) and returns what it measured
 * (report.h); NULL with error when the scenario cannot run. */
CmRun *cm_sim_run_scenario(CmScenario *scenario, const CmSimOptions *options, GError **error);
/* Routes OpenSSL's allocations through counting wrappers (of malloc,
 * realloc and free), so that the sampled crypto share can include the
 * allocator time they cause.  Call before anything uses OpenSSL; FALSE
 * when too late (the share is then without them). */
gboolean cm_sim_count_crypto_allocations(void);

/* Times the real MP and site calls per endpoint over clients lifecycles
 * and returns a cost file (new string). */
char *cm_sim_calibrate(int clients, GError **error);

G_END_DECLS

#endif
