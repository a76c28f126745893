/* content.h - distribution points and content distribution in the
 * simulator (sim/content.c): the real DP library (dp/cmdp.h) for each
 * [dp], packages for each [content], and the site's transfers to its DPs
 * under each DP's rate limit and schedule in virtual time (REQ DP-02),
 * with prestaged DPs that accept content placed by hand (REQ DP-03). */
#ifndef CM_SIM_CONTENT_H
#define CM_SIM_CONTENT_H

#include "world.h"

typedef struct SimContent SimContent;

/* Makes every [content] package and every [dp] (with its prestaged
 * content placed by hand); fails, naming the [dp], when the site server
 * cannot reach the DP's segment. */
gboolean sim_content_build(SimWorld *w, GError **error);
/* A distribute event: the site offers the content to each DP; a prestaged
 * match is accepted at once, anything else is queued on the DP's transfer. */
/* The first rate sample, as metrics.c samples. */
void sim_content_start(SimWorld *w);
/* The package of a [content] (borrowed), or NULL: its content hash and size
 * go into a deploy event's signed policy (REQ DP-04). */
struct CmDpPackage *sim_content_package(SimWorld *w, const char *id);
void sim_content_distribute(SimWorld *w, CmScnEvent *ev);
/* The dp.* and content.* metrics (docs/report-schema.md). */
void sim_content_finish(SimWorld *w);
void sim_content_free(SimWorld *w);

#endif
