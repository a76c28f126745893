/* sig.c - detached signatures over the exact message bytes.
 *
 * ECDSA signatures are DER (as `openssl dgst -sign` writes them), RSA uses
 * PKCS#1 v1.5 as the product does, so stock tools check what cmlab signs.
 * The message is hashed here and the digest signed with a context the key
 * keeps prepared (see cm_key_take_ctx), which is what keeps these wrappers
 * within a few percent of raw OpenSSL. */
#include "internal.h"

#include <string.h>

#include <openssl/evp.h>

GBytes *
cm_sig_sign(const CmKey *key, CmHashAlg hash, const void *data, size_t len, GError **error)
{
    EVP_PKEY_CTX *ctx = NULL;
    guint8 dgst[EVP_MAX_MD_SIZE];
    size_t dgst_len;
    guint8 sig[CM_SIG_MAX];
    size_t sig_len = sizeof sig;
    GBytes *out = NULL;

    if (!cm_key_has_private(key)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot sign with a public key");
        goto out;
    }
    CM_COUNT(sign);
    if (cm_key_is_model(key)) {
        guint8 m[4 + CM_MODEL_ID];
        memcpy(m, CM_MODEL_SIG, 4);
        cm_model_tag(cm_key_model_pub(key), (guint8)(CM_MODEL_DOMAIN_SIG + hash), data, len, m + 4);
        out = g_bytes_new(m, sizeof m);
        goto out;
    }
    dgst_len = cm_hash(hash, data, len, dgst);
    ctx = cm_key_take_ctx(key, TRUE, hash);
    if (ctx == NULL || EVP_PKEY_sign(ctx, sig, &sig_len, dgst, dgst_len) != 1) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "signing failed");
        goto out;
    }
    out = g_bytes_new(sig, sig_len);
out:
    if (ctx != NULL)
        cm_key_give_ctx(key, TRUE, hash, ctx);
    return out;
}

gboolean
cm_sig_verify(const CmKey *key, CmHashAlg hash, const void *data, size_t len, const guint8 *sig,
              size_t sig_len, GError **error)
{
    EVP_PKEY_CTX *ctx = NULL;
    guint8 dgst[EVP_MAX_MD_SIZE];
    size_t dgst_len;
    gboolean ok = FALSE;

    if (sig_len == 0 || sig_len > CM_SIG_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                    "signature of %zu bytes refused: expected 1 to %d", sig_len, CM_SIG_MAX);
        goto out;
    }
    CM_COUNT(verify);
    if (cm_key_is_model(key)) {
        if (sig_len != 4 + CM_MODEL_ID || !cm_model_is(sig, sig_len, CM_MODEL_SIG) ||
            !cm_model_tag_ok(cm_key_model_pub(key), (guint8)(CM_MODEL_DOMAIN_SIG + hash), data,
                             len, sig + 4)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                        "%s signature does not verify with the signer's key "
                        "(message altered, or signed by another key)",
                        cm_hash_alg_name(hash));
            goto out;
        }
        ok = TRUE;
        goto out;
    }
    dgst_len = cm_hash(hash, data, len, dgst);
    ctx = cm_key_take_ctx(key, FALSE, hash);
    if (ctx == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot start verification");
        goto out;
    }
    if (EVP_PKEY_verify(ctx, sig, sig_len, dgst, dgst_len) != 1) {
        /* 0 is a wrong signature, <0 a malformed one: both are refusals. */
        cm_openssl_clear();
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                    "%s signature does not verify with the signer's key "
                    "(message altered, or signed by another key)",
                    cm_hash_alg_name(hash));
        goto out;
    }
    ok = TRUE;
out:
    if (ctx != NULL)
        cm_key_give_ctx(key, FALSE, hash, ctx);
    return ok;
}
