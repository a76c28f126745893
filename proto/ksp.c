/* ksp.c - key storage providers (REQ TRUST-11).
 *
 * The product keeps a client's self-signed identity key in a hardware-bound
 * key storage provider (a TPM of version 2.0 or later), non-exportable; on a
 * known-vulnerable TPM (older than 2.0) it falls back to a software provider,
 * whose keys are non-exportable too.
 *
 * cmlab models the difference that matters for security: where the key can
 * be used.  A TPM provider seals the key under a secret that never leaves the
 * chip (here device_secret, AES-256-GCM), so a sealed blob copied with a disk
 * image does not open on another machine.  A software provider's blob opens
 * anywhere the disk goes, which is why cloned images with software keys
 * impersonate each other (REQ REG-06). */
#include "internal.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

struct CmKsp {
    CmKspKind kind;
    gboolean fell_back;
    guint8 secret[32];
};

/* Blob layout: 4-byte magic, then for TPM: 12-byte nonce, ciphertext,
 * 16-byte tag; for software: the PKCS#8 DER. */
#define MAGIC_SOFT "CMK1"
#define MAGIC_TPM  "CMT1"
#define NONCE_LEN  12
#define TAG_LEN    16
#define BLOB_MAX   (8 * 1024)

CmKsp *
cm_ksp_new(int tpm_version_major, const guint8 device_secret[32])
{
    CmKsp *ksp = g_new0(CmKsp, 1);

    if (tpm_version_major >= 2) {
        ksp->kind = CM_KSP_TPM2;
    } else {
        ksp->kind = CM_KSP_SOFTWARE;
        ksp->fell_back = tpm_version_major == 1;
    }
    if (device_secret != NULL)
        memcpy(ksp->secret, device_secret, sizeof ksp->secret);
    return ksp;
}

CmKsp *
cm_ksp_new_same_device(const CmKsp *ksp, int tpm_version_major)
{
    return cm_ksp_new(tpm_version_major, ksp->secret);
}

void
cm_ksp_free(CmKsp *ksp)
{
    if (ksp == NULL)
        return;
    OPENSSL_cleanse(ksp->secret, sizeof ksp->secret);
    g_free(ksp);
}

CmKspKind
cm_ksp_kind(const CmKsp *ksp)
{
    return ksp->kind;
}

const char *
cm_ksp_kind_name(CmKspKind kind)
{
    return kind == CM_KSP_TPM2 ? "tpm2" : "software";
}

gboolean
cm_ksp_fell_back(const CmKsp *ksp)
{
    return ksp->fell_back;
}

CmKey *
cm_ksp_generate(CmKsp *ksp, CmKeyAlg alg, GError **error)
{
    EVP_PKEY *pkey;

    CM_COUNT(keygen);
    if (cm_crypto_model()) {
        guint8 secret[CM_MODEL_ID], pub[CM_MODEL_ID];
        (void)ksp;
        cm_model_new_secret(secret);
        cm_model_pub_of(secret, pub);
        return cm_key_model_new(alg, secret, pub, CM_KEY_WRAP_PRIVATE);
    }
    if (alg == CM_KEY_RSA_2048)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (pkey == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "key generation failed");
        return NULL;
    }
    return cm_key_wrap(pkey, CM_KEY_WRAP_PRIVATE, error);
}

/* AES-256-GCM one shot; encrypt when enc, else decrypt and check the tag. */
static gboolean
gcm(const guint8 key[32], const guint8 *nonce, const char *aad, const guint8 *in, size_t len,
    guint8 *out, guint8 *tag, gboolean enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    gboolean ok = FALSE;

    if (ctx == NULL ||
        EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto out;
    if (aad != NULL && EVP_CipherUpdate(ctx, NULL, &n, (const guint8 *)aad, (int)strlen(aad)) != 1)
        goto out;
    if (EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1 ||
        EVP_CipherFinal_ex(ctx, out + n, &fin) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    ok = TRUE;
out:
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* Blob: nonce, ciphertext, tag. */
GBytes *
cm_aead_seal(const guint8 key[32], const void *data, size_t len, const char *aad, GError **error)
{
    size_t blob_len = NONCE_LEN + len + TAG_LEN;
    guint8 *blob;

    if (len > CM_AEAD_MAX) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "secret of %zu bytes is over %d", len, CM_AEAD_MAX);
        return NULL;
    }
    blob = g_malloc(blob_len);
    if (RAND_bytes(blob, NONCE_LEN) != 1 ||
        !gcm(key, blob, aad, data, len, blob + NONCE_LEN, blob + NONCE_LEN + len, TRUE)) {
        g_free(blob);
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "sealing failed");
        return NULL;
    }
    return g_bytes_new_take(blob, blob_len);
}

GBytes *
cm_aead_open(const guint8 key[32], const guint8 *blob, size_t len, const char *aad, GError **error)
{
    size_t plain_len;
    guint8 *plain;
    guint8 tag[TAG_LEN];

    if (len < NONCE_LEN + TAG_LEN || len > CM_AEAD_MAX + NONCE_LEN + TAG_LEN) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "sealed blob of %zu bytes has the wrong size", len);
        return NULL;
    }
    plain_len = len - NONCE_LEN - TAG_LEN;
    plain = g_malloc(plain_len + 1);
    memcpy(tag, blob + len - TAG_LEN, TAG_LEN);
    if (!gcm(key, blob, aad, blob + NONCE_LEN, plain_len, plain, tag, FALSE)) {
        cm_openssl_clear();
        OPENSSL_cleanse(plain, plain_len);
        g_free(plain);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "sealed blob does not open with this key (another key, or altered)");
        return NULL;
    }
    return g_bytes_new_take(plain, plain_len);
}

GBytes *
cm_ksp_seal(CmKsp *ksp, const CmKey *key, GError **error)
{
    unsigned char *der = NULL;
    int len;
    guint8 *blob = NULL;
    size_t blob_len = 0;
    GBytes *out = NULL;

    if (!cm_key_has_private(key)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "only a private key can be sealed");
        goto out;
    }
    if (cm_key_is_model(key)) {
        g_autoptr(GBytes) m = cm_key_model_private_der(key);
        len = (int)g_bytes_get_size(m);
        der = OPENSSL_memdup(g_bytes_get_data(m, NULL), (size_t)len);
    } else {
        len = i2d_PrivateKey(cm_key_evp(key), &der);
    }
    if (len <= 0 || der == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot encode private key");
        goto out;
    }
    if (ksp->kind == CM_KSP_SOFTWARE) {
        blob_len = 4 + (size_t)len;
        blob = g_malloc(blob_len);
        memcpy(blob, MAGIC_SOFT, 4);
        memcpy(blob + 4, der, (size_t)len);
    } else {
        g_autoptr(GBytes) sealed = cm_aead_seal(ksp->secret, der, (size_t)len, MAGIC_TPM, error);
        gsize slen;
        const guint8 *sp;
        if (sealed == NULL)
            goto out;
        sp = g_bytes_get_data(sealed, &slen);
        blob_len = 4 + slen;
        blob = g_malloc(blob_len);
        memcpy(blob, MAGIC_TPM, 4);
        memcpy(blob + 4, sp, slen);
    }
    out = g_bytes_new_take(blob, blob_len);
    blob = NULL;
out:
    if (blob != NULL) {
        OPENSSL_cleanse(blob, blob_len);
        g_free(blob);
    }
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)len);
    return out;
}

CmKey *
cm_ksp_unseal(CmKsp *ksp, const guint8 *blob, size_t len, GError **error)
{
    const unsigned char *p;
    guint8 *plain = NULL;
    size_t plain_len = 0;
    EVP_PKEY *pkey;
    CmKey *key = NULL;

    if (len > BLOB_MAX || len < 4) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "sealed key blob of %zu bytes is not a cmlab key blob", len);
        goto out;
    }
    if (memcmp(blob, MAGIC_SOFT, 4) == 0) {
        if (ksp->kind != CM_KSP_SOFTWARE) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                        "blob was sealed by a software provider; this device uses its TPM");
            goto out;
        }
        plain_len = len - 4;
        plain = g_memdup2(blob + 4, plain_len);
    } else if (memcmp(blob, MAGIC_TPM, 4) == 0) {
        if (ksp->kind != CM_KSP_TPM2 || len < 4 + NONCE_LEN + TAG_LEN + 1) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                        "blob is bound to a TPM that this device does not have");
            goto out;
        }
        GBytes *opened = cm_aead_open(ksp->secret, blob + 4, len - 4, MAGIC_TPM, NULL);
        if (opened == NULL) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                        "key is bound to another machine's TPM and cannot be used here");
            goto out;
        }
        /* Take the buffer rather than copy it: the copy left the private key
         * in freed memory, where only plain is wiped. */
        plain = g_bytes_unref_to_data(opened, &plain_len);
    } else {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "sealed key blob has an unknown format");
        goto out;
    }
    p = plain;
    CM_COUNT(key_parse);
    if (cm_model_is(plain, plain_len, CM_MODEL_KEY_PRIV)) {
        key = cm_key_model_private_from_der(plain, plain_len, CM_KEY_WRAP_PRIVATE, error);
        goto out;
    }
    pkey = d2i_AutoPrivateKey(NULL, &p, (long)plain_len);
    if (pkey == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "sealed key is corrupt");
        goto out;
    }
    if (p != plain + plain_len) {
        EVP_PKEY_free(pkey);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "sealed key is corrupt: %zu bytes after the key",
                    (size_t)(plain + plain_len - p));
        goto out;
    }
    key = cm_key_wrap(pkey, CM_KEY_WRAP_PRIVATE, error);
out:
    if (plain != NULL) {
        OPENSSL_cleanse(plain, plain_len);
        g_free(plain);
    }
    return key;
}
