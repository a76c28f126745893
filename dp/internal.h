/* internal.h - shared inside libcmdp only. */
#ifndef DP_INTERNAL_H
#define DP_INTERNAL_H

#include "cmdp.h"

/* The audience of content access tokens. */
#define DP_TOKEN_AUDIENCE "dp"

/* Content IDs and file names: 1 to max of [A-Za-z0-9._-], not starting
 * with '.', so that no name is a path. */
gboolean dp_name_check(const char *s, size_t max, const char *what, GError **error);

#endif
