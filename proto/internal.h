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
/* A memory BIO's contents as a new string; the BIO stays the caller's. */
char *cm_bio_to_string(BIO *bio);

/* ASN1_TIME <-> CmTime at second precision. */
gboolean cm_asn1_time_get(const ASN1_TIME *t, CmTime *out);
ASN1_TIME *cm_asn1_time_new(CmTime t);

/* The message digest objects, fetched once. */
const EVP_MD *cm_md(CmHashAlg alg);

/* A key wrapping an EVP_PKEY; takes the reference.  The caller says what
 * it holds (probing OpenSSL for a private half costs a provider call). */
#define CM_KEY_WRAP_PUBLIC     0u
#define CM_KEY_WRAP_PRIVATE    1u /* has a private half */
#define CM_KEY_WRAP_EXPORTABLE 2u /* and may export it */
CmKey *cm_key_wrap(EVP_PKEY *pkey, unsigned flags, GError **error);

/* A signing or verification context prepared for key and hash, from the
 * key's cache or new; give it back when done.  NULL when OpenSSL refuses
 * (the key cannot sign: no private half). */
EVP_PKEY_CTX *cm_key_take_ctx(const CmKey *key, gboolean sign, CmHashAlg hash);
void cm_key_give_ctx(const CmKey *key, gboolean sign, CmHashAlg hash, EVP_PKEY_CTX *ctx);

/* The process-wide operation counters behind cm_crypto_counters_get. */
extern CmCryptoCounters cm_crypto_counters_;
#define CM_COUNT(field) __atomic_fetch_add(&cm_crypto_counters_.field, 1, __ATOMIC_RELAXED)

/* parsecache.c: a hit is a new reference; put takes its own reference. */
CmCert *cm_parse_cache_cert(const guint8 *der, size_t len);
void cm_parse_cache_cert_put(const guint8 *der, size_t len, CmCert *cert);
CmKey *cm_parse_cache_key(const guint8 *der, size_t len);
void cm_parse_cache_key_put(const guint8 *der, size_t len, CmKey *key);

#endif
