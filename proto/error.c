/* error.c - the CM_PROTO_ERROR domain and OpenSSL error conversion. */
#include "internal.h"

#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>

G_DEFINE_QUARK(cm-proto-error-quark, cm_proto_error)

char *
cm_bio_to_string(BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);

    return g_strndup(data, len > 0 ? (gsize)len : 0);
}

void
cm_openssl_clear(void)
{
    ERR_clear_error();
}

void
cm_set_openssl_error(GError **error, CmProtoError code, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256];

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof reason);
    else
        g_strlcpy(reason, "no detail from OpenSSL", sizeof reason);
    ERR_clear_error();
    g_set_error(error, CM_PROTO_ERROR, code, "%s: %s", what, reason);
}

CmCryptoCounters cm_crypto_counters_;

void
cm_crypto_counters_get(CmCryptoCounters *out)
{
    out->keygen = __atomic_load_n(&cm_crypto_counters_.keygen, __ATOMIC_RELAXED);
    out->sign = __atomic_load_n(&cm_crypto_counters_.sign, __ATOMIC_RELAXED);
    out->verify = __atomic_load_n(&cm_crypto_counters_.verify, __ATOMIC_RELAXED);
    out->cert_issue = __atomic_load_n(&cm_crypto_counters_.cert_issue, __ATOMIC_RELAXED);
    out->cert_parse = __atomic_load_n(&cm_crypto_counters_.cert_parse, __ATOMIC_RELAXED);
    out->key_parse = __atomic_load_n(&cm_crypto_counters_.key_parse, __ATOMIC_RELAXED);
    out->cms_encrypt = __atomic_load_n(&cm_crypto_counters_.cms_encrypt, __ATOMIC_RELAXED);
    out->cms_decrypt = __atomic_load_n(&cm_crypto_counters_.cms_decrypt, __ATOMIC_RELAXED);
}

void
cm_crypto_counters_reset(void)
{
    memset(&cm_crypto_counters_, 0, sizeof cm_crypto_counters_);
}
