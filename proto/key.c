/* key.c - parsed keys, kept parsed.
 *
 * A CmKey wraps an EVP_PKEY with what cmlab needs to know about it: its
 * algorithm, whether a key storage provider holds it (then the private half
 * is never exported), and its key ID, the SHA-256 of its public key.  Keys
 * are parsed once and shared by reference: in OpenSSL 3.0 decoding a DER key
 * costs more than the verification it is for. */
#include "internal.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/pem.h>

struct CmKey {
    gint refs;
    CmKeyAlg alg;
    gboolean has_private;
    gboolean exportable;
    gboolean model; /* which half of u */
    /* SHA-256 of the DER public key, computed on first use: encoding a key
     * costs OpenSSL 3.0 more than generating a P-256 one. */
    gsize id_done;
    guint8 id[32];
    /* A union: each of a million simulated clients holds two model keys. */
    union {
        struct {
            EVP_PKEY *pkey;
            /* Prepared EVP_PKEY_CTXs, [sign/verify][hash]: preparing one
             * costs about as much as 15% of a P-256 signature in OpenSSL
             * 3.0.  Taken and given back atomically, so a key shared by
             * threads stays safe. */
            EVP_PKEY_CTX *ctx_cache[2][2];
        } r;
        /* A cost-model key (model.c) has no EVP_PKEY: a secret (all zero
         * for a public key) and its public half. */
        struct {
            guint8 secret[CM_MODEL_ID];
            guint8 pub[CM_MODEL_ID];
        } m;
    } u;
};

#define KEY_MAX_DER (8 * 1024)
#define KEY_MAX_PEM (16 * 1024)

/* Given to OpenSSL's PEM readers in place of their default, which asks for a
 * pass phrase on the terminal when a PEM block says it is encrypted: cmlab
 * keeps no encrypted PEM, and parsing must never wait for a person. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

const char *
cm_key_alg_name(CmKeyAlg alg)
{
    return alg == CM_KEY_RSA_2048 ? "rsa2048" : "p256";
}

gboolean
cm_key_alg_parse(const char *name, CmKeyAlg *out, GError **error)
{
    if (name != NULL && (g_ascii_strcasecmp(name, "p256") == 0 ||
                         g_ascii_strcasecmp(name, "ecdsa-p256") == 0)) {
        *out = CM_KEY_EC_P256;
        return TRUE;
    }
    if (name != NULL && (g_ascii_strcasecmp(name, "rsa2048") == 0 ||
                         g_ascii_strcasecmp(name, "rsa") == 0)) {
        *out = CM_KEY_RSA_2048;
        return TRUE;
    }
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                "unknown key algorithm \"%s\": use p256 or rsa2048", name ? name : "(none)");
    return FALSE;
}

static gboolean
key_classify(EVP_PKEY *pkey, CmKeyAlg *alg, GError **error)
{
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = "";
        size_t glen = 0;
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof group, &glen) ||
            strcmp(group, "prime256v1") != 0) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "EC key on curve \"%s\" refused: cmlab uses P-256", group);
            return FALSE;
        }
        *alg = CM_KEY_EC_P256;
        return TRUE;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < 2048 || bits > 4096) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "RSA key of %d bits refused: use 2048 to 4096 bits", bits);
            return FALSE;
        }
        *alg = CM_KEY_RSA_2048;
        return TRUE;
    }
    g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                "key type %s refused: cmlab uses EC P-256 or RSA keys",
                EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "unknown");
    return FALSE;
}

CmKey *
cm_key_wrap(EVP_PKEY *pkey, unsigned flags, GError **error)
{
    CmKey *key;
    CmKeyAlg alg;

    if (!key_classify(pkey, &alg, error)) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key = g_new0(CmKey, 1);
    key->refs = 1;
    key->alg = alg;
    key->has_private = (flags & CM_KEY_WRAP_PRIVATE) != 0;
    key->exportable = (flags & CM_KEY_WRAP_EXPORTABLE) != 0;
    key->u.r.pkey = pkey; /* owned by key now */
    return key;
}

CmKey *
cm_key_model_new(CmKeyAlg alg, const guint8 *secret, const guint8 pub[CM_MODEL_ID],
                 unsigned flags)
{
    CmKey *key = g_new0(CmKey, 1);

    key->refs = 1;
    key->alg = alg;
    key->model = TRUE;
    key->has_private = secret != NULL && (flags & CM_KEY_WRAP_PRIVATE) != 0;
    key->exportable = key->has_private && (flags & CM_KEY_WRAP_EXPORTABLE) != 0;
    if (key->has_private)
        memcpy(key->u.m.secret, secret, CM_MODEL_ID);
    memcpy(key->u.m.pub, pub, CM_MODEL_ID);
    return key;
}

gboolean
cm_key_is_model(const CmKey *key)
{
    return key->model;
}

const guint8 *
cm_key_model_pub(const CmKey *key)
{
    static const guint8 none[CM_MODEL_ID];

    return key->model ? key->u.m.pub : none; /* a real key has no model half */
}

const guint8 *
cm_key_model_secret(const CmKey *key)
{
    return key->model && key->has_private ? key->u.m.secret : NULL;
}

/* A model key's encodings: magic, algorithm, then the public half or the
 * secret. */
static GBytes *
model_der(const char *magic, CmKeyAlg alg, const guint8 id[CM_MODEL_ID])
{
    guint8 b[5 + CM_MODEL_ID];

    memcpy(b, magic, 4);
    b[4] = (guint8)alg;
    memcpy(b + 5, id, CM_MODEL_ID);
    return g_bytes_new(b, sizeof b);
}

GBytes *
cm_key_model_private_der(const CmKey *key)
{
    g_return_val_if_fail(key->model, NULL);
    return model_der(CM_MODEL_KEY_PRIV, key->alg, key->u.m.secret);
}

CmKey *
cm_key_model_private_from_der(const guint8 *der, size_t len, unsigned flags, GError **error)
{
    guint8 pub[CM_MODEL_ID];

    if (len != 5 + CM_MODEL_ID || !cm_model_is(der, len, CM_MODEL_KEY_PRIV) ||
        der[4] > CM_KEY_RSA_2048) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "not a cost-model private key");
        return NULL;
    }
    cm_model_pub_of(der + 5, pub);
    return cm_key_model_new((CmKeyAlg)der[4], der + 5, pub, flags | CM_KEY_WRAP_PRIVATE);
}

static CmKey *
model_public_from_der(const guint8 *der, size_t len, GError **error)
{
    if (len != 5 + CM_MODEL_ID || der[4] > CM_KEY_RSA_2048) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "not a cost-model public key");
        return NULL;
    }
    return cm_key_model_new((CmKeyAlg)der[4], NULL, der + 5, CM_KEY_WRAP_PUBLIC);
}

CmKey *
cm_key_generate(CmKeyAlg alg, GError **error)
{
    EVP_PKEY *pkey;

    CM_COUNT(keygen);
    if (cm_crypto_model()) {
        guint8 secret[CM_MODEL_ID], pub[CM_MODEL_ID];
        cm_model_new_secret(secret);
        cm_model_pub_of(secret, pub);
        return cm_key_model_new(alg, secret, pub,
                                CM_KEY_WRAP_PRIVATE | CM_KEY_WRAP_EXPORTABLE);
    }
    if (alg == CM_KEY_RSA_2048)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (pkey == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "key generation failed");
        return NULL;
    }
    return cm_key_wrap(pkey, CM_KEY_WRAP_PRIVATE | CM_KEY_WRAP_EXPORTABLE, error);
}

CmKey *
cm_key_ref(CmKey *key)
{
    g_atomic_int_inc(&key->refs);
    return key;
}

void
cm_key_unref(CmKey *key)
{
    if (key == NULL || !g_atomic_int_dec_and_test(&key->refs))
        return;
    if (!key->model) {
        for (int op = 0; op < 2; op++)
            for (int h = 0; h < 2; h++)
                EVP_PKEY_CTX_free(key->u.r.ctx_cache[op][h]);
        EVP_PKEY_free(key->u.r.pkey);
    } else {
        OPENSSL_cleanse(key->u.m.secret, sizeof key->u.m.secret);
    }
    g_free(key);
}

CmKeyAlg
cm_key_alg(const CmKey *key)
{
    return key->alg;
}

gboolean
cm_key_has_private(const CmKey *key)
{
    return key->has_private;
}

gboolean
cm_key_is_exportable(const CmKey *key)
{
    return key->exportable;
}

EVP_PKEY *
cm_key_evp(const CmKey *key)
{
    return key->model ? NULL : key->u.r.pkey;
}

const guint8 *
cm_key_id(const CmKey *key)
{
    CmKey *k = (CmKey *)key; /* a cache, not part of the key's value */

    if (g_once_init_enter(&k->id_done)) {
        g_autoptr(GBytes) der = cm_key_public_der(key);
        gsize len;
        const guint8 *p = g_bytes_get_data(der, &len);
        cm_hash(CM_HASH_SHA256, p, len, k->id);
        g_once_init_leave(&k->id_done, 1);
    }
    return key->id;
}

gboolean
cm_key_public_equal(const CmKey *a, const CmKey *b)
{
    /* Compares the key material; encoding both to hash them costs more. */
    int eq;

    if (a->model || b->model)
        return a == b || (a->model && b->model && a->alg == b->alg &&
                          memcmp(a->u.m.pub, b->u.m.pub, CM_MODEL_ID) == 0);
    eq = a == b ? 1 : EVP_PKEY_eq(a->u.r.pkey, b->u.r.pkey);

    cm_openssl_clear();
    return eq == 1;
}

GBytes *
cm_key_public_der(const CmKey *key)
{
    unsigned char *der = NULL;
    int len;
    GBytes *b;

    if (key->model)
        return model_der(CM_MODEL_KEY_PUB, key->alg, key->u.m.pub);
    len = i2d_PUBKEY(key->u.r.pkey, &der);
    if (len <= 0)
        g_error("cannot encode a parsed public key"); /* allocation failure only */
    b = g_bytes_new(der, (gsize)len);
    OPENSSL_free(der);
    return b;
}

char *
cm_key_public_pem(const CmKey *key)
{
    BIO *bio;
    char *pem;

    if (key->model) {
        g_autoptr(GBytes) der = cm_key_public_der(key);
        return cm_model_pem("CMLAB MODEL PUBLIC KEY", der);
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_PUBKEY(bio, key->u.r.pkey))
        g_error("cannot write a public key to memory");
    pem = cm_bio_to_string(bio);
    BIO_free(bio);
    return pem;
}

char *
cm_key_public_hex(const CmKey *key)
{
    g_autoptr(GBytes) der = cm_key_public_der(key);
    gsize len;
    const guint8 *p = g_bytes_get_data(der, &len);
    return cm_enc_hex(p, len);
}

CmKey *
cm_key_public_from_der(const guint8 *der, size_t len, GError **error)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey;

    if (len > KEY_MAX_DER) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "public key of %zu bytes refused: at most %d", len, KEY_MAX_DER);
        return NULL;
    }
    {
        CmKey *hit = cm_parse_cache_key(der, len);
        if (hit != NULL)
            return hit;
    }
    CM_COUNT(key_parse);
    if (cm_model_is(der, len, CM_MODEL_KEY_PUB)) {
        CmKey *key = model_public_from_der(der, len, error);
        if (key != NULL)
            cm_parse_cache_key_put(der, len, key);
        return key;
    }
    pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (pkey == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID,
                             "not a DER SubjectPublicKeyInfo");
        return NULL;
    }
    if (p != der + len) {
        EVP_PKEY_free(pkey);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "public key has %zu trailing bytes", (size_t)(der + len - p));
        return NULL;
    }
    /* Not the hash of der: OpenSSL also takes BER (long-form lengths), and
     * the key ID is the hash of the DER encoding, computed on first use. */
    {
        CmKey *key = cm_key_wrap(pkey, CM_KEY_WRAP_PUBLIC, error);
        if (key != NULL)
            cm_parse_cache_key_put(der, len, key);
        return key;
    }
}

/* A public-only CmKey for key: key itself when it has no private half, else
 * one sharing its EVP_PKEY with has_private FALSE, so cmlab neither signs
 * nor exports with it.  What X509_get_pubkey gave for a certificate issued
 * with X509_set_pubkey, without making a second key: in OpenSSL 3.0 making
 * one (a new EC group, a key manager) costs a tenth of issuing. */
CmKey *
cm_key_public_view(const CmKey *key)
{
    CmKey *view;

    if (!key->has_private)
        return cm_key_ref((CmKey *)key);
    if (key->model)
        return cm_key_model_new(key->alg, NULL, key->u.m.pub, CM_KEY_WRAP_PUBLIC);
    view = g_new0(CmKey, 1);
    view->refs = 1;
    view->alg = key->alg;
    if (!EVP_PKEY_up_ref(key->u.r.pkey))
        g_error("cannot take a reference to a key");
    view->u.r.pkey = key->u.r.pkey;
    return view;
}

CmKey *
cm_key_public_from_pem(const char *pem, size_t len, GError **error)
{
    BIO *bio;
    EVP_PKEY *pkey;

    if (len > KEY_MAX_PEM) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "public key PEM of %zu bytes refused: at most %d", len, KEY_MAX_PEM);
        return NULL;
    }
    if (cm_model_pem_has("CMLAB MODEL PUBLIC KEY", pem, len)) {
        g_autoptr(GBytes) der = cm_model_pem_decode("CMLAB MODEL PUBLIC KEY", pem, len, NULL);
        gsize n;
        const guint8 *d = der != NULL ? g_bytes_get_data(der, &n) : NULL;
        if (d == NULL || !cm_model_is(d, n, CM_MODEL_KEY_PUB)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "malformed cost-model public key PEM");
            return NULL;
        }
        CM_COUNT(key_parse);
        return model_public_from_der(d, n, error);
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    CM_COUNT(key_parse);
    pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID,
                             "no PEM public key (\"BEGIN PUBLIC KEY\") found");
        return NULL;
    }
    return cm_key_wrap(pkey, CM_KEY_WRAP_PUBLIC, error);
}

CmKey *
cm_key_public_from_hex(const char *hex, GError **error)
{
    g_autoptr(GBytes) der = NULL;
    gsize len;
    const guint8 *p;
    CmKey *key;

    der = cm_enc_hex_decode(hex, KEY_MAX_DER, error);
    if (der == NULL) {
        g_prefix_error(error, "SMSPublicRootKey: ");
        return NULL;
    }
    p = g_bytes_get_data(der, &len);
    key = cm_key_public_from_der(p, len, error);
    if (key == NULL)
        g_prefix_error(error, "SMSPublicRootKey: ");
    return key;
}

char *
cm_key_private_pem(const CmKey *key, GError **error)
{
    BIO *bio;
    char *pem;

    if (!key->has_private) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "this key has no private half to export");
        return NULL;
    }
    if (!key->exportable) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_NOT_EXPORTABLE,
                    "private key is held by a key storage provider and is not exportable");
        return NULL;
    }
    if (key->model) {
        g_autoptr(GBytes) der = cm_key_model_private_der(key);
        return cm_model_pem("CMLAB MODEL PRIVATE KEY", der);
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_PrivateKey(bio, key->u.r.pkey, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot write private key");
        return NULL;
    }
    pem = cm_bio_to_string(bio);
    BIO_free(bio);
    return pem;
}

CmKey *
cm_key_private_from_pem(const char *pem, size_t len, GError **error)
{
    BIO *bio;
    EVP_PKEY *pkey;

    if (len > KEY_MAX_PEM) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "private key PEM of %zu bytes refused: at most %d", len, KEY_MAX_PEM);
        return NULL;
    }
    if (cm_model_pem_has("CMLAB MODEL PRIVATE KEY", pem, len)) {
        g_autoptr(GBytes) der = cm_model_pem_decode("CMLAB MODEL PRIVATE KEY", pem, len, NULL);
        CM_COUNT(key_parse);
        if (der == NULL) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "malformed cost-model private key PEM");
            return NULL;
        }
        return cm_key_model_private_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der),
                                             CM_KEY_WRAP_EXPORTABLE, error);
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    CM_COUNT(key_parse);
    pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID,
                             "no unencrypted PEM private key found");
        return NULL;
    }
    return cm_key_wrap(pkey, CM_KEY_WRAP_PRIVATE | CM_KEY_WRAP_EXPORTABLE, error);
}

EVP_PKEY_CTX *
cm_key_take_ctx(const CmKey *key, gboolean sign, CmHashAlg hash)
{
    CmKey *k = (CmKey *)key; /* the cache is not part of the key's value */
    EVP_PKEY_CTX *ctx;

    if (key->model)
        return NULL;
    ctx = g_atomic_pointer_exchange(&k->u.r.ctx_cache[sign ? 0 : 1][hash], NULL);
    if (ctx != NULL)
        return ctx;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->u.r.pkey, NULL);
    if (ctx == NULL || (sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, cm_md(hash)) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void
cm_key_give_ctx(const CmKey *key, gboolean sign, CmHashAlg hash, EVP_PKEY_CTX *ctx)
{
    CmKey *k = (CmKey *)key;

    if (key->model) { /* never made one (cm_key_take_ctx) */
        EVP_PKEY_CTX_free(ctx);
        return;
    }
    if (!g_atomic_pointer_compare_and_exchange(&k->u.r.ctx_cache[sign ? 0 : 1][hash], NULL, ctx))
        EVP_PKEY_CTX_free(ctx); /* another thread gave one back first */
}
