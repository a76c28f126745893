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
CmKey *cm_key_public_view(const CmKey *key);

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
void cm_parse_cache_cert_put_bytes(GBytes *der, CmCert *cert);
CmKey *cm_parse_cache_key(const guint8 *der, size_t len);
void cm_parse_cache_key_put(const guint8 *der, size_t len, CmKey *key);

/* model.c: the cost-model crypto stand-in (cm_crypto_model_set).  Model
 * keys are 16-byte secrets with a keyed one-way public half; signatures,
 * certificate, CRL and envelope tags are keyed hashes over a domain byte,
 * the signer's (recipient's) public half and the bytes. */
#define CM_MODEL_ID 16
#define CM_MODEL_DOMAIN_SIG  1 /* + CmHashAlg */
#define CM_MODEL_DOMAIN_CERT 8
#define CM_MODEL_DOMAIN_CRL  9
#define CM_MODEL_DOMAIN_CMS  10
void cm_model_new_secret(guint8 secret[CM_MODEL_ID]);
void cm_model_pub_of(const guint8 secret[CM_MODEL_ID], guint8 pub[CM_MODEL_ID]);
void cm_model_tag(const guint8 pub[CM_MODEL_ID], guint8 domain, const void *data, size_t len,
                  guint8 tag[CM_MODEL_ID]);
gboolean cm_model_tag_ok(const guint8 pub[CM_MODEL_ID], guint8 domain, const void *data,
                         size_t len, const guint8 *tag);
/* Do these bytes start with the 4-byte magic of a model encoding? */
gboolean cm_model_is(const void *der, size_t len, const char magic[4]);
#define CM_MODEL_KEY_PUB  "CMMK"
#define CM_MODEL_KEY_PRIV "CMMP"
#define CM_MODEL_SIG      "CMMS"
#define CM_MODEL_CERT     "CMMC"
#define CM_MODEL_CRL      "CMMR"
#define CM_MODEL_CMS      "CMME"
char *cm_model_pem(const char *label, GBytes *der);
/* The first block with label, or NULL; *next (optional) after its end. */
GBytes *cm_model_pem_decode(const char *label, const char *pem, size_t len, const char **next);
gboolean cm_model_pem_has(const char *label, const char *pem, size_t len);

/* key.c: model keys (secret NULL for a public key). */
CmKey *cm_key_model_new(CmKeyAlg alg, const guint8 *secret, const guint8 pub[CM_MODEL_ID],
                        unsigned flags);
gboolean cm_key_is_model(const CmKey *key);
const guint8 *cm_key_model_pub(const CmKey *key);
const guint8 *cm_key_model_secret(const CmKey *key); /* NULL without the private half */
GBytes *cm_key_model_private_der(const CmKey *key);
CmKey *cm_key_model_private_from_der(const guint8 *der, size_t len, unsigned flags,
                                     GError **error);

typedef struct {
    GBytes *der;
    guint8 profile, hash, key_alg;
    guint64 serial;
    CmTime not_before, not_after;
    guint8 subject_pub[CM_MODEL_ID], issuer_pub[CM_MODEL_ID];
    char *cn, *o, *issuer_cn, *issuer_o, *crl_url;
    char **dns;
    size_t tbs_len; /* bytes before the tag */
} CmModelCert;
/* issuer_cn/o: the issuer's name as the certificate will carry it. */
GBytes *cm_model_cert_encode(const CmCertSpec *spec, const char *issuer_cn, const char *issuer_o,
                             GError **error);
CmModelCert *cm_model_cert_parse(const guint8 *der, size_t len, GError **error);
void cm_model_cert_free(CmModelCert *m);
gboolean cm_model_cert_signed_by(const CmModelCert *m, const guint8 pub[CM_MODEL_ID]);
const CmModelCert *cm_cert_model(const CmCert *cert); /* NULL for a real one */

typedef struct {
    GBytes *der;
    char *issuer_cn, *issuer_o;
    guint8 issuer_pub[CM_MODEL_ID];
    guint64 number;
    CmTime this_update, next_update;
    guint64 *serials; /* sorted */
    size_t n;
    size_t tbs_len;
} CmModelCrl;
GBytes *cm_model_crl_encode(const CmCert *issuer, const CmKey *issuer_key,
                            const CmCrlEntry *entries, size_t n, guint64 number,
                            CmTime this_update, CmTime next_update, GError **error);
CmModelCrl *cm_model_crl_parse(const guint8 *der, size_t len, GError **error);
void cm_model_crl_free(CmModelCrl *m);
gboolean cm_model_crl_signed_by(const CmModelCrl *m, const guint8 pub[CM_MODEL_ID]);
gboolean cm_model_crl_lists(const CmModelCrl *m, guint64 serial);
const CmModelCrl *cm_crl_model(const CmCrl *crl); /* NULL for a real one */

GBytes *cm_model_cms_encrypt(const CmCert *recipient, CmCipher cipher, const void *data,
                             size_t len, GError **error);
GBytes *cm_model_cms_decrypt(const CmKey *key, const guint8 *der, size_t len, size_t max_plain,
                             CmCipher *cipher_out, GError **error);

/* Builds and checks the chain of a model leaf; the root it ended at
 * (borrowed from roots), or NULL with error. */
const CmCert *cm_model_trust_verify(GPtrArray *roots, GPtrArray *intermediates,
                                    GPtrArray *untrusted, GPtrArray *crls, gboolean crl_check,
                                    const CmCert *leaf, CmTime now, CmPurpose purpose,
                                    GError **error);
const CmCert *cm_model_root_of(GPtrArray *roots, const CmCert *cert);

#endif
