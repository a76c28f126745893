/* hash.c - the message digests cmlab signs with, fetched once. */
#include "internal.h"

#include <openssl/evp.h>

static EVP_MD *md_sha256;
static EVP_MD *md_sha1;

static gpointer
fetch_digests(gpointer unused)
{
    /* Fetching an EVP_MD walks the provider tables; doing it once instead
     * of per signature is part of keeping our wrappers near raw speed. */
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (md_sha256 == NULL || md_sha1 == NULL)
        g_error("OpenSSL has no SHA-256 or SHA-1 digest");
    return NULL;
}

const EVP_MD *
cm_md(CmHashAlg alg)
{
    static GOnce once = G_ONCE_INIT;

    g_once(&once, fetch_digests, NULL);
    return alg == CM_HASH_SHA1 ? md_sha1 : md_sha256;
}

const char *
cm_hash_alg_name(CmHashAlg alg)
{
    return alg == CM_HASH_SHA1 ? "sha1" : "sha256";
}

gboolean
cm_hash_alg_parse(const char *name, CmHashAlg *out, GError **error)
{
    if (name != NULL && (g_ascii_strcasecmp(name, "sha256") == 0 ||
                         g_ascii_strcasecmp(name, "sha-256") == 0)) {
        *out = CM_HASH_SHA256;
        return TRUE;
    }
    if (name != NULL &&
        (g_ascii_strcasecmp(name, "sha1") == 0 || g_ascii_strcasecmp(name, "sha-1") == 0)) {
        *out = CM_HASH_SHA1;
        return TRUE;
    }
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                "unknown hash algorithm \"%s\": use sha256 (or sha1 for legacy clients)",
                name ? name : "(none)");
    return FALSE;
}

size_t
cm_hash(CmHashAlg alg, const void *data, size_t len, guint8 *out)
{
    unsigned int n = 0;

    if (!EVP_Digest(data, len, out, &n, cm_md(alg), NULL))
        g_error("digest failed"); /* only on allocation failure */
    return n;
}

gboolean
cm_hash_alg_allowed(CmHashAlg alg, gboolean require_sha256, GError **error)
{
    if (alg == CM_HASH_SHA1 && require_sha256) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "SHA-1 signature refused: the site requires SHA-256 "
                    "(upgrade the client or clear the site's require-SHA-256 setting)");
        return FALSE;
    }
    return TRUE;
}
