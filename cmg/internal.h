/* internal.h - shared inside libcmcmg only. */
#ifndef CMG_INTERNAL_H
#define CMG_INTERNAL_H

#include "cmcmg.h"

/* The audience of every token the site issues for the CMG. */
#define CMG_TOKEN_AUDIENCE "cmg"

/* A site code from s (3 characters, upper-cased into out), with an error
 * in CM_CMG_ERROR naming what. */
gboolean cmg_site_code(const char *s, char out[4], const char *what, GError **error);
/* A DNS host name of at most CM_NAME_MAX characters: letters, digits, '-'
 * and '.', no empty label. */
gboolean cmg_host_check(const char *s, const char *what, GError **error);

#endif
