/* cms.c - inventory and state messages encrypted end to end to the site
 * (REQ MSG-02) in a standard envelope: CMS EnvelopedData, or
 * AuthEnvelopedData for AES-GCM, so `openssl cms -decrypt` opens it.
 * EC recipients use ECDH key agreement, RSA recipients key transport. */
#include "internal.h"

#include <string.h>

#include <openssl/cms.h>

const char *
cm_cipher_name(CmCipher c)
{
    switch (c) {
    case CM_CIPHER_AES256_CBC:
        return "aes256-cbc";
    case CM_CIPHER_3DES_CBC:
        return "3des";
    case CM_CIPHER_AES256_GCM:
    default:
        return "aes256-gcm";
    }
}

gboolean
cm_cipher_parse(const char *name, CmCipher *out, GError **error)
{
    static const CmCipher all[] = {CM_CIPHER_AES256_GCM, CM_CIPHER_AES256_CBC, CM_CIPHER_3DES_CBC};

    for (size_t i = 0; i < G_N_ELEMENTS(all); i++) {
        if (name != NULL && g_ascii_strcasecmp(name, cm_cipher_name(all[i])) == 0) {
            *out = all[i];
            return TRUE;
        }
    }
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                "unknown cipher \"%s\": use aes256-gcm, aes256-cbc or 3des",
                name ? name : "(none)");
    return FALSE;
}

static const EVP_CIPHER *
evp_cipher(CmCipher c)
{
    switch (c) {
    case CM_CIPHER_AES256_CBC:
        return EVP_aes_256_cbc();
    case CM_CIPHER_3DES_CBC:
        return EVP_des_ede3_cbc();
    case CM_CIPHER_AES256_GCM:
    default:
        return EVP_aes_256_gcm();
    }
}

static GBytes *
bio_bytes(BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    return g_bytes_new(data, (gsize)len);
}

GBytes *
cm_cms_encrypt(const CmCert *recipient, CmCipher cipher, const void *data, size_t len,
               GError **error)
{
    STACK_OF(X509) *recips = NULL;
    BIO *in = NULL, *out = NULL;
    CMS_ContentInfo *cms = NULL;
    GBytes *result = NULL;

    if (len > CM_CMS_MAX_DER / 2) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "message of %zu bytes is too large to encrypt (at most %d)", len,
                    CM_CMS_MAX_DER / 2);
        goto out;
    }
    if (cm_cert_model(recipient) != NULL) {
        CM_COUNT(cms_encrypt);
        result = cm_model_cms_encrypt(recipient, cipher, data, len, error);
        goto out;
    }
    recips = sk_X509_new_null();
    /* BIO_new_mem_buf() refuses NULL even for no bytes: an empty message
     * given as (NULL, 0) would pass for an allocation failure. */
    in = BIO_new_mem_buf(len > 0 ? data : "", (int)len);
    out = BIO_new(BIO_s_mem());
    if (recips == NULL || in == NULL || out == NULL || !sk_X509_push(recips, cm_cert_x509(recipient)))
        g_error("out of memory");
    CM_COUNT(cms_encrypt);
    cms = CMS_encrypt(recips, in, evp_cipher(cipher), CMS_BINARY);
    if (cms == NULL || !i2d_CMS_bio(out, cms)) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "CMS encryption failed");
        goto out;
    }
    result = bio_bytes(out);
out:
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    sk_X509_free(recips);
    return result;
}

/* Which content cipher an envelope used.  OpenSSL has no getter for the
 * EnvelopedData content-encryption algorithm, so look for the DER of the
 * 3DES algorithm identifier (tag, length and OID; ten bytes that random
 * ciphertext matches with probability 2^-80).  AuthEnvelopedData is GCM. */
static CmCipher
cipher_of(CMS_ContentInfo *cms, const guint8 *der, size_t len)
{
    const ASN1_OBJECT *obj = OBJ_nid2obj(NID_des_ede3_cbc);
    unsigned char tlv[34];
    int n = OBJ_length(obj);

    if (OBJ_obj2nid(CMS_get0_type(cms)) == NID_id_smime_ct_authEnvelopedData)
        return CM_CIPHER_AES256_GCM;
    if (n > 0 && n + 2 <= (int)sizeof tlv) {
        tlv[0] = V_ASN1_OBJECT;
        tlv[1] = (unsigned char)n;
        memcpy(tlv + 2, OBJ_get0_data(obj), (size_t)n);
        for (size_t i = 0; i + (size_t)n + 2 <= len; i++)
            if (memcmp(der + i, tlv, (size_t)n + 2) == 0)
                return CM_CIPHER_3DES_CBC;
    }
    return CM_CIPHER_AES256_CBC;
}

GBytes *
cm_cms_decrypt(const CmCert *recipient, const CmKey *key, const guint8 *der, size_t len,
               size_t max_plain, CmCipher *cipher_out, GError **error)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = NULL;
    BIO *out = NULL;
    GBytes *result = NULL;
    char *data = NULL;
    long plain_len;
    int nid;

    if (len > CM_CMS_MAX_DER) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "encrypted message of %zu bytes refused: at most %d", len, CM_CMS_MAX_DER);
        goto out;
    }
    if (cm_model_is(der, len, CM_MODEL_CMS) || cm_key_is_model(key)) {
        CM_COUNT(cms_decrypt);
        if (!cm_model_is(der, len, CM_MODEL_CMS)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                        "cannot decrypt: not addressed to this key, or altered");
            goto out;
        }
        result = cm_model_cms_decrypt(key, der, len, max_plain, cipher_out, error);
        goto out;
    }
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (cms == NULL || p != der + len) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "not a DER CMS message");
        goto out;
    }
    nid = OBJ_obj2nid(CMS_get0_type(cms));
    if (nid != NID_pkcs7_enveloped && nid != NID_id_smime_ct_authEnvelopedData) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CMS message is %s, not an encrypted envelope", OBJ_nid2sn(nid));
        goto out;
    }
    out = BIO_new(BIO_s_mem());
    if (out == NULL)
        g_error("out of memory");
    CM_COUNT(cms_decrypt);
    if (!CMS_decrypt(cms, cm_key_evp(key), cm_cert_x509(recipient), NULL, out, CMS_BINARY)) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_SIGNATURE,
                             "cannot decrypt: not addressed to this key, or altered");
        goto out;
    }
    plain_len = BIO_get_mem_data(out, &data);
    if (plain_len < 0 || (size_t)plain_len > max_plain) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "decrypted message of %ld bytes refused: at most %zu", plain_len, max_plain);
        goto out;
    }
    if (cipher_out != NULL)
        *cipher_out = cipher_of(cms, der, len);
    result = g_bytes_new(data, (gsize)plain_len);
out:
    CMS_ContentInfo_free(cms);
    BIO_free(out);
    return result;
}
