/* internal.h - helpers shared inside libcmnet only. */
#ifndef CMNET_INTERNAL_H
#define CMNET_INTERNAL_H

#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "cmnet"
#endif

#include "cmnet.h"

/* OpenSSL's error queue as text (and cleared), for messages. */
char *cm_net_openssl_errors(void);
/* Sets error from OpenSSL's error queue: "<what>: <reason>". */
void cm_net_set_tls_error(GError **error, const char *what);
/* The OpenSSL protocol version constant of v (TLS1_2_VERSION, ...). */
int cm_net_tls_version_ossl(CmNetTlsVersion v);

#endif
