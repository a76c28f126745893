/* gss.h - SPNEGO/Kerberos acceptance inside libcmnet (gss.c); httpd.c
 * calls it for listeners configured with a keytab. */
#ifndef CMNET_GSS_H
#define CMNET_GSS_H

#include "cmnet.h"

typedef struct CmNetGss CmNetGss;

/* Acquires the acceptor credential from keytab (its HTTP/<host>
 * principals); CM_NET_ERROR_CONFIG when the keytab is missing or holds no
 * usable key. */
CmNetGss *cm_net_gss_new(const char *keytab, GError **error);
void cm_net_gss_free(CmNetGss *g);

/* Accepts the value of an "Authorization: Negotiate <token>" header in one
 * round trip.  TRUE: peer is CM_AUTH_KERBEROS with the client principal and
 * its realm in lower case as domain, *reply the base64 mutual
 * authentication token for "WWW-Authenticate: Negotiate" (new, may be NULL).
 * FALSE: CM_NET_ERROR_PROTOCOL for a malformed header, CM_NET_ERROR_FAILED
 * for a token the Kerberos library refused (bad, forged, replayed, expired,
 * for another service); peer is unchanged. */
gboolean cm_net_gss_accept(CmNetGss *g, const char *authorization, CmPeer *peer, char **reply,
                           GError **error);

#endif
