/* internal.h - helpers shared inside libcmproto only; not installed, not
 * included by roles. */
#ifndef CMPROTO_INTERNAL_H
#define CMPROTO_INTERNAL_H

#include "cmproto.h"

#include <openssl/asn1.h>

/* Sets error from OpenSSL's error queue (and clears it): "<what>: <reason>". */
void cm_set_openssl_error(GError **error, CmProtoError code, const char *what);
/* Drops whatever OpenSSL left in its error queue. */
void cm_openssl_clear(void);

/* ASN1_TIME <-> CmTime at second precision. */
gboolean cm_asn1_time_get(const ASN1_TIME *t, CmTime *out);
ASN1_TIME *cm_asn1_time_new(CmTime t);

/* The message digest objects, fetched once. */
const EVP_MD *cm_md(CmHashAlg alg);

/* A key wrapping an EVP_PKEY; takes the reference. */
CmKey *cm_key_wrap(EVP_PKEY *pkey, gboolean exportable, GError **error);

#endif
