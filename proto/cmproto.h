/* cmproto.h - libcmproto, the protocol library every cmlab role links.
 *
 * Identifiers, errors, time and randomness passed in by the caller, keys and
 * key storage providers, X.509 certificates, CRLs and certificate trust lists,
 * detached message signatures, CMS envelopes, JWT tokens, CMG URL mappings,
 * the JSON codec and the SQLite store helpers.
 *
 * Nothing here opens a socket, reads the wall clock or sleeps: time is a
 * CmTime handed in, randomness a CmRng handed in.  Key generation and ECDSA
 * nonces use OpenSSL's DRBG (seeded by the OS), which is the one exception:
 * real keys need real entropy.
 *
 * Ownership: a function whose name contains _new, _issue, _generate, _parse,
 * _from_ or _dup returns a new reference the caller owns; "(borrowed)" marks
 * a pointer that lives as long as its owner.  Every failure sets a GError in
 * the CM_PROTO_ERROR domain whose message says what was wrong and what to do.
 */
#ifndef CMPROTO_H
#define CMPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

G_BEGIN_DECLS

/* ------------------------------------------------------------------ errors */

#define CM_PROTO_ERROR (cm_proto_error_quark())
GQuark cm_proto_error_quark(void);

typedef enum {
    CM_PROTO_ERROR_INVALID,        /* malformed input */
    CM_PROTO_ERROR_TOO_LARGE,      /* input over its size bound */
    CM_PROTO_ERROR_CRYPTO,         /* OpenSSL refused an operation */
    CM_PROTO_ERROR_SIGNATURE,      /* a signature does not verify */
    CM_PROTO_ERROR_UNTRUSTED,      /* no chain to a trusted root or to the TRK */
    CM_PROTO_ERROR_EXPIRED,        /* outside the validity period (expired or not yet valid) */
    CM_PROTO_ERROR_REVOKED,        /* listed on a CRL */
    CM_PROTO_ERROR_NOT_EXPORTABLE, /* a key storage provider refuses to export a private key */
    CM_PROTO_ERROR_REFUSED,        /* refused by a setting: SHA-1 under require-SHA-256, root outside the CTL */
    CM_PROTO_ERROR_STORE,          /* the SQLite store failed */
    CM_PROTO_ERROR_NOT_FOUND,
} CmProtoError;

/* ------------------------------------------------------------ time, rng */

/* Time is microseconds since the Unix epoch, always passed in. */
typedef int64_t CmTime;
#define CM_USEC_PER_SEC  G_GINT64_CONSTANT(1000000)
#define CM_USEC_PER_MIN  (60 * CM_USEC_PER_SEC)
#define CM_USEC_PER_HOUR (60 * CM_USEC_PER_MIN)
#define CM_USEC_PER_DAY  (24 * CM_USEC_PER_HOUR)

/* A clock, for drivers: the daemons' wall clock lives in net/, the
 * simulator's virtual clock in sim/.  Role code never holds one; it is
 * handed the time of each call. */
typedef struct {
    CmTime (*now)(void *ctx);
    void *ctx;
} CmClock;

/* Random numbers.  Seeded generators are xoshiro256**; each entity of a
 * simulation gets its own stream from (seed, stream id), so the numbers one
 * entity draws never depend on what other entities drew before it.  The OS
 * generator reads OpenSSL's DRBG and is for the daemons. */
typedef struct {
    guint64 s[4];
    gboolean os;
} CmRng;

void cm_rng_init_seeded(CmRng *rng, guint64 seed, guint64 stream);
void cm_rng_init_os(CmRng *rng);
guint64 cm_rng_u64(CmRng *rng);
/* Uniform in [0, bound), without modulo bias; bound 0 returns 0. */
guint64 cm_rng_below(CmRng *rng, guint64 bound);
/* Uniform in [0, 1). */
double cm_rng_double(CmRng *rng);
void cm_rng_bytes(CmRng *rng, void *out, size_t len);
/* A stream id from a name, for per-entity streams ("client/12345"). */
guint64 cm_rng_stream_id(const char *name);

/* ------------------------------------------------------------ encodings */

char *cm_enc_hex(const guint8 *data, size_t len);                     /* uppercase */
GBytes *cm_enc_hex_decode(const char *hex, size_t max_len, GError **error);
char *cm_enc_b64url(const guint8 *data, size_t len);                  /* no padding */
GBytes *cm_enc_b64url_decode(const char *s, size_t len, size_t max_len, GError **error);
/* Whether s[0..len) is base64url as cm_enc_b64url writes it (no padding,
 * no stray bits), so that decoding and encoding again give the same text;
 * *out_len is then its decoded length.  With cm_enc_b64url_decode_into,
 * for callers that keep many decoded values and want no GBytes each. */
gboolean cm_enc_b64url_canonical(const char *s, size_t len, gsize *out_len);
/* Decodes what cm_enc_b64url_canonical accepted into out[0..*out_len). */
void cm_enc_b64url_decode_into(const char *s, size_t len, guint8 *out);
char *cm_enc_b64(const guint8 *data, size_t len);
GBytes *cm_enc_b64_decode(const char *s, size_t len, size_t max_len, GError **error);

/* --------------------------------------------------------- identifiers */

/* Site code: three characters, A-Z and 0-9, not a reserved device name
 * (AUX, CON, NUL, PRN, SMS).  Lower case is accepted and upper-cased into
 * out (4 bytes). */
gboolean cm_id_site_code_check(const char *code, char out[4], GError **error);

/* SMSID: "GUID:" followed by a canonical upper-case GUID. */
#define CM_ID_SMSID_LEN 41
void cm_id_smsid_new(CmRng *rng, char out[CM_ID_SMSID_LEN + 1]);
gboolean cm_id_smsid_check(const char *smsid, GError **error);

/* Hardware ID: "2:" followed by 40 upper-case hex digits (a SHA-1 of the
 * machine's hardware properties). */
#define CM_ID_HWID_LEN 42
void cm_id_hwid_new(CmRng *rng, char out[CM_ID_HWID_LEN + 1]);
gboolean cm_id_hwid_check(const char *hwid, GError **error);

/* Management point role ID: a positive 64-bit decimal number. */
gboolean cm_id_role_id_parse(const char *s, guint64 *out, GError **error);

/* ------------------------------------------------------------ counters */

/* How many of each costly operation this process performed, so that a
 * benchmark can time the same work alone and the simulator can charge it.
 * Relaxed atomic counters: cheap, and exact once the threads are done. */
typedef struct {
    guint64 keygen;
    guint64 sign;
    guint64 verify;
    guint64 cert_issue;
    guint64 cert_parse;
    guint64 key_parse; /* DER/PEM keys */
    guint64 cms_encrypt;
    guint64 cms_decrypt;
} CmCryptoCounters;

void cm_crypto_counters_get(CmCryptoCounters *out);
void cm_crypto_counters_reset(void);

/* A process-wide cache of parsed certificates and public keys by their
 * exact bytes: equal bytes share one immutable parsed object.  For the
 * simulator, where thousands of clients parse the same site certificates;
 * off by default (the counters above count only real parses). */
void cm_parse_cache_enable(gboolean on);
/* The same for JSON objects a role keeps once it has checked the bytes
 * (the agent's verified policies, which every client of a collection
 * receives byte for byte): a hit is a new reference to the object parsed
 * from equal bytes, NULL on a miss or when the cache is off.  A shared
 * object is never changed: put it only when no holder will modify it. */
json_t *cm_parse_cache_json(GBytes *bytes);
void cm_parse_cache_json_put(GBytes *bytes, json_t *obj);

/* The cost-model crypto mode of the simulator (`crypto = model`): while on,
 * key generation makes model keys, and everything made from them
 * (signatures, certificates, CRLs, envelopes) uses a cheap keyed stand-in
 * for the arithmetic that keeps who holds which key exact (proto/model.c).
 * Model and real objects never verify each other.  Off by default. */
void cm_crypto_model_set(gboolean on);
gboolean cm_crypto_model(void);

/* ------------------------------------------------------------- hashes */

typedef enum {
    CM_HASH_SHA256,
    CM_HASH_SHA1, /* legacy; a site can refuse it (REQ MSG-01) */
} CmHashAlg;

const char *cm_hash_alg_name(CmHashAlg alg); /* "sha256", "sha1" */
gboolean cm_hash_alg_parse(const char *name, CmHashAlg *out, GError **error);
/* out must hold 32 bytes (SHA-256) or 20 (SHA-1); returns the length. */
size_t cm_hash(CmHashAlg alg, const void *data, size_t len, guint8 *out);
/* Refuses SHA-1 when SHA-256 is required, with a message that says so. */
gboolean cm_hash_alg_allowed(CmHashAlg alg, gboolean require_sha256, GError **error);

/* ---------------------------------------------------------------- keys */

typedef enum {
    CM_KEY_EC_P256, /* default */
    CM_KEY_RSA_2048,
} CmKeyAlg;

const char *cm_key_alg_name(CmKeyAlg alg); /* "p256", "rsa2048" */
gboolean cm_key_alg_parse(const char *name, CmKeyAlg *out, GError **error);

/* A parsed key, public or private, reference counted.  Parse once and keep
 * it: OpenSSL spends more on parsing a DER key than on a verification. */
typedef struct CmKey CmKey;

CmKey *cm_key_generate(CmKeyAlg alg, GError **error); /* exportable */
CmKey *cm_key_ref(CmKey *key);
void cm_key_unref(CmKey *key);
CmKeyAlg cm_key_alg(const CmKey *key);
gboolean cm_key_has_private(const CmKey *key);
gboolean cm_key_is_exportable(const CmKey *key);
EVP_PKEY *cm_key_evp(const CmKey *key); /* (borrowed) */
/* SHA-256 over the DER SubjectPublicKeyInfo (borrowed, 32 bytes). */
const guint8 *cm_key_id(const CmKey *key);
gboolean cm_key_public_equal(const CmKey *a, const CmKey *b);

/* SubjectPublicKeyInfo, DER, PEM, and the hex form of SMSPublicRootKey. */
GBytes *cm_key_public_der(const CmKey *key);
char *cm_key_public_pem(const CmKey *key);
char *cm_key_public_hex(const CmKey *key);
CmKey *cm_key_public_from_der(const guint8 *der, size_t len, GError **error);
CmKey *cm_key_public_from_pem(const char *pem, size_t len, GError **error);
CmKey *cm_key_public_from_hex(const char *hex, GError **error);
/* PKCS#8 PEM; fails with NOT_EXPORTABLE for keys held by a provider. */
char *cm_key_private_pem(const CmKey *key, GError **error);
CmKey *cm_key_private_from_pem(const char *pem, size_t len, GError **error);

/* Key storage providers (REQ TRUST-11).  A device with a TPM of version 2.0
 * or later gets the hardware-bound provider; an older TPM is known
 * vulnerable, and the device falls back to the software provider, as does a
 * device without a TPM.  Keys of both providers are non-exportable.
 *
 * Sealing stands for how a provider keeps a key on disk: the hardware-bound
 * provider wraps it under a secret that never leaves the TPM (AES-256-GCM
 * under device_secret), so a copy of the disk (a cloned image) cannot use it
 * on another machine; the software provider's blob travels with the disk. */
typedef enum {
    CM_KSP_SOFTWARE,
    CM_KSP_TPM2,
} CmKspKind;

typedef struct CmKsp CmKsp;

/* tpm_version_major: 0 for no TPM, 1 for TPM 1.2, 2 for TPM 2.0. */
CmKsp *cm_ksp_new(int tpm_version_major, const guint8 device_secret[32]);
/* A provider for another TPM version on the device of ksp (its secret), so
 * that the caller need not keep a copy of the secret. */
CmKsp *cm_ksp_new_same_device(const CmKsp *ksp, int tpm_version_major);
void cm_ksp_free(CmKsp *ksp);
CmKspKind cm_ksp_kind(const CmKsp *ksp);
const char *cm_ksp_kind_name(CmKspKind kind); /* "software", "tpm2" */
/* TRUE when a TPM was present but too old, so the provider is software. */
gboolean cm_ksp_fell_back(const CmKsp *ksp);
CmKey *cm_ksp_generate(CmKsp *ksp, CmKeyAlg alg, GError **error);
GBytes *cm_ksp_seal(CmKsp *ksp, const CmKey *key, GError **error);
CmKey *cm_ksp_unseal(CmKsp *ksp, const guint8 *blob, size_t len, GError **error);

/* Authenticated encryption of small secrets under a 32-byte key
 * (AES-256-GCM, random nonce; aad binds the blob to its purpose): how the
 * site keeps its private keys and secrets at rest (REQ ADM-03). */
#define CM_AEAD_MAX (1024 * 1024)
GBytes *cm_aead_seal(const guint8 key[32], const void *data, size_t len, const char *aad,
                     GError **error);
GBytes *cm_aead_open(const guint8 key[32], const guint8 *blob, size_t len, const char *aad,
                     GError **error);

/* -------------------------------------------------------- certificates */

typedef enum {
    /* Client identity, always self-signed: digitalSignature and
     * keyEncipherment, clientAuth. */
    CM_CERT_CLIENT_SELF_SIGNED,
    /* Site server signing certificate, always self-signed (REQ TRUST-08). */
    CM_CERT_SITE_SIGNING,
    /* A root CA: the enterprise test CA, the site's Enhanced HTTP issuing
     * root; keyCertSign and cRLSign. */
    CM_CERT_ROOT_CA,
    CM_CERT_INTERMEDIATE_CA,
    /* Management point certificate signed with the trusted root key
     * (REQ TRUST-02): digitalSignature, serverAuth. */
    CM_CERT_MP,
    /* TLS server: digitalSignature and keyEncipherment, serverAuth,
     * subjectAltName DNS names. */
    CM_CERT_SERVER,
    /* PKI client authentication, issued by a CA: clientAuth. */
    CM_CERT_CLIENT_AUTH,
    /* Encryption certificate of the site (recipient of inventory). */
    CM_CERT_ENCRYPTION,
} CmCertProfile;

typedef struct CmCert CmCert;

typedef struct {
    CmCertProfile profile;
    const char *subject_cn;
    const char *subject_o;              /* optional */
    const char *const *dns_names;       /* optional, NULL-terminated */
    guint64 serial;                     /* non-zero; unique per issuer */
    CmTime not_before;
    CmTime not_after;
    const CmKey *subject_key;           /* its public half goes in the certificate */
    const CmKey *issuer_key;            /* private; NULL: self-signed with subject_key */
    const CmCert *issuer_cert;          /* NULL: self-signed, or issuer_cn with issuer_key */
    const char *issuer_cn;              /* issuer name when signing with a bare key (the TRK) */
    const char *crl_url;                /* optional CRL distribution point */
    CmHashAlg hash;                     /* signature hash; SHA-256 unless asked */
} CmCertSpec;

CmCert *cm_cert_issue(const CmCertSpec *spec, GError **error);
CmCert *cm_cert_ref(CmCert *cert);
void cm_cert_unref(CmCert *cert);
/* Parsing is bounded (CM_CERT_MAX_DER bytes) and caches the public key,
 * the thumbprint and the validity period. */
#define CM_CERT_MAX_DER (16 * 1024)
CmCert *cm_cert_from_der(const guint8 *der, size_t len, GError **error);
CmCert *cm_cert_from_pem(const char *pem, size_t len, GError **error);
/* Takes one reference on x509. */
CmCert *cm_cert_from_x509(X509 *x509, GError **error);
GBytes *cm_cert_to_der(const CmCert *cert);
char *cm_cert_to_pem(const CmCert *cert);
X509 *cm_cert_x509(const CmCert *cert);               /* (borrowed) */
CmKey *cm_cert_public_key(const CmCert *cert);        /* (borrowed) */
const guint8 *cm_cert_thumbprint(const CmCert *cert); /* SHA-256 of the DER (borrowed, 32 bytes) */
char *cm_cert_thumbprint_hex(const CmCert *cert);
const char *cm_cert_subject_cn(const CmCert *cert);  /* (borrowed), "" when absent */
guint64 cm_cert_serial(const CmCert *cert);           /* 0 when it does not fit 64 bits */
CmTime cm_cert_not_before(const CmCert *cert);
CmTime cm_cert_not_after(const CmCert *cert);
gboolean cm_cert_is_self_signed(const CmCert *cert);
/* Issuer and subject names are the same: no signature check (cheap). */
gboolean cm_cert_is_self_issued(const CmCert *cert);
/* EXPIRED when now is outside the validity period (either side). */
gboolean cm_cert_check_time(const CmCert *cert, CmTime now, GError **error);
/* The trusted-root-key check (REQ TRUST-03): cert's signature verifies with
 * the bare public key issuer and now lies within its validity. */
gboolean cm_cert_check_signed_by(const CmCert *cert, const CmKey *issuer, CmTime now,
                                 GError **error);
/* Names of the certificate's signature hash ("sha256", "sha1"). */
CmHashAlg cm_cert_hash(const CmCert *cert);
/* Every certificate of a PEM bundle, in order (new GPtrArray of CmCert). */
GPtrArray *cm_cert_bundle_from_pem(const char *pem, size_t len, size_t max_certs, GError **error);

/* ------------------------------------------------------------- CRLs */

typedef struct CmCrl CmCrl;

typedef struct {
    guint64 serial;
    CmTime revoked_at;
} CmCrlEntry;

#define CM_CRL_MAX_DER (4 * 1024 * 1024)
CmCrl *cm_crl_issue(const CmCert *issuer, const CmKey *issuer_key, const CmCrlEntry *entries,
                    size_t n_entries, guint64 crl_number, CmTime this_update, CmTime next_update,
                    GError **error);
CmCrl *cm_crl_ref(CmCrl *crl);
void cm_crl_unref(CmCrl *crl);
CmCrl *cm_crl_from_der(const guint8 *der, size_t len, GError **error);
CmCrl *cm_crl_from_pem(const char *pem, size_t len, GError **error);
GBytes *cm_crl_to_der(const CmCrl *crl);
char *cm_crl_to_pem(const CmCrl *crl);
X509_CRL *cm_crl_x509(const CmCrl *crl); /* (borrowed) */
/* Signature by issuer, and this/next update against now. */
gboolean cm_crl_check(const CmCrl *crl, const CmCert *issuer, CmTime now, GError **error);
gboolean cm_crl_lists(const CmCrl *crl, const CmCert *cert);
size_t cm_crl_count(const CmCrl *crl);

/* ------------------------------------- certificate trust lists (CTL) */

/* The roots allowed to issue client certificates (REQ CMG-04), by SHA-256
 * thumbprint.  An empty CTL allows none; cm_ctl_new_any() allows every
 * trusted root (the broad CTL the seeds warn about). */
typedef struct CmCtl CmCtl;

CmCtl *cm_ctl_new(void);
CmCtl *cm_ctl_new_any(void);
void cm_ctl_free(CmCtl *ctl);
void cm_ctl_add(CmCtl *ctl, const CmCert *root);
gboolean cm_ctl_allows(const CmCtl *ctl, const CmCert *root);
gboolean cm_ctl_is_any(const CmCtl *ctl);
size_t cm_ctl_count(const CmCtl *ctl);
/* JSON: {"any":false,"roots":["<hex thumbprint>",...]}; bounded. */
char *cm_ctl_to_json(const CmCtl *ctl);
CmCtl *cm_ctl_from_json(const char *json, size_t len, GError **error);

/* ------------------------------------------------- chain verification */

/* A trust store built once and reused for many verifications: roots,
 * intermediates, CRLs, CRL checking on or off, and an optional CTL. */
typedef struct CmTrust CmTrust;

CmTrust *cm_trust_new(void);
void cm_trust_free(CmTrust *trust);
gboolean cm_trust_add_root(CmTrust *trust, const CmCert *root, GError **error);
gboolean cm_trust_add_intermediate(CmTrust *trust, const CmCert *cert, GError **error);
gboolean cm_trust_add_crl(CmTrust *trust, const CmCrl *crl, GError **error);
void cm_trust_set_crl_check(CmTrust *trust, gboolean on);
/* Takes ownership of ctl; NULL removes it (then every root is allowed). */
void cm_trust_set_ctl(CmTrust *trust, CmCtl *ctl);
size_t cm_trust_root_count(const CmTrust *trust);

typedef enum {
    CM_PURPOSE_ANY,
    CM_PURPOSE_CLIENT_AUTH,
    CM_PURPOSE_SERVER_AUTH,
} CmPurpose;

/* Verifies leaf (with extra untrusted certificates from the peer, may be
 * NULL) at time now.  Errors: UNTRUSTED (no chain), EXPIRED, REVOKED (CRL
 * checking on), REFUSED (the root is outside the CTL, or wrong purpose).
 * On success and when root_out is given, sets it to the root the chain
 * ended at (borrowed from the trust store). */
gboolean cm_trust_verify(CmTrust *trust, const CmCert *leaf, GPtrArray *untrusted, CmTime now,
                         CmPurpose purpose, const CmCert **root_out, GError **error);
/* The X509_STORE behind it, for a TLS context of the daemons (borrowed). */
X509_STORE *cm_trust_x509_store(CmTrust *trust);

/* ---------------------------------------------------------- signatures */

/* Detached signatures over the exact message bytes: ECDSA (DER) or RSA
 * PKCS#1 v1.5, so that `openssl dgst -<hash> -verify` checks them. */
#define CM_SIG_MAX 512
GBytes *cm_sig_sign(const CmKey *key, CmHashAlg hash, const void *data, size_t len,
                    GError **error);
gboolean cm_sig_verify(const CmKey *key, CmHashAlg hash, const void *data, size_t len,
                       const guint8 *sig, size_t sig_len, GError **error);

/* --------------------------------------------------------------- CMS */

/* Inventory and state messages encrypted end to end to the site
 * (REQ MSG-02): CMS EnvelopedData (AuthEnvelopedData for GCM), DER. */
typedef enum {
    CM_CIPHER_AES256_GCM, /* default, an AEAD */
    CM_CIPHER_AES256_CBC,
    CM_CIPHER_3DES_CBC,   /* legacy, as the seeds name it */
} CmCipher;

const char *cm_cipher_name(CmCipher c); /* "aes256-gcm", "aes256-cbc", "3des" */
gboolean cm_cipher_parse(const char *name, CmCipher *out, GError **error);

#define CM_CMS_MAX_DER (8 * 1024 * 1024)
GBytes *cm_cms_encrypt(const CmCert *recipient, CmCipher cipher, const void *data, size_t len,
                       GError **error);
/* Decrypts with the recipient's private key; refuses envelopes over
 * CM_CMS_MAX_DER and plaintexts over max_plain.  cipher_out may be NULL. */
GBytes *cm_cms_decrypt(const CmCert *recipient, const CmKey *key, const guint8 *der, size_t len,
                       size_t max_plain, CmCipher *cipher_out, GError **error);

/* --------------------------------------------------------------- JWT */

/* Compact JWS tokens, ES256 (P-256 keys) or RS256 (RSA keys): the modelled
 * Entra ID device and user tokens, CMG client tokens, bulk registration
 * tokens and DP content access tokens.  Verification never trusts the
 * token's "alg": it must match the key's algorithm ("none" is refused). */
#define CM_JWT_MAX_LEN (16 * 1024)
#define CM_JWT_LEEWAY  (60 * CM_USEC_PER_SEC)

/* claims is borrowed; iat/nbf/exp must already be in it (seconds).  kid
 * may be NULL. */
char *cm_jwt_sign(const CmKey *key, const char *kid, json_t *claims, GError **error);

typedef struct {
    const char *issuer;   /* required match of "iss" */
    const char *audience; /* required match of "aud" (string or array) */
    CmTime now;
} CmJwtCheck;

/* Returns the claims (new reference) when the signature, iss, aud, exp and
 * nbf (with CM_JWT_LEEWAY) hold; EXPIRED for exp/nbf, SIGNATURE for a bad
 * signature, INVALID for a malformed token, REFUSED for iss/aud/alg. */
json_t *cm_jwt_verify(const char *token, const CmKey *key, const CmJwtCheck *check,
                      GError **error);
/* The header's "kid" without verifying anything (new string or NULL). */
char *cm_jwt_peek_kid(const char *token, GError **error);
/* Claims for a token: iss, aud, sub, iat, nbf, exp (seconds), jti. */
json_t *cm_jwt_claims_new(const char *iss, const char *aud, const char *sub, CmTime iat,
                          CmTime lifetime, const char *jti);

/* -------------------------------------------------- CMG URL mappings */

/* https://<CMG name>/CCM_Proxy_MutualAuth/<MP role ID>/<endpoint>[/rest]
 * (REQ CMG-10); token clients use CCM_Proxy_ServerAuth. */
typedef enum {
    CM_CMG_EP_CCM_SYSTEM,   /* "CCM_System" */
    CM_CMG_EP_CCM_INCOMING, /* "CCM_Incoming" */
    CM_CMG_EP_SMS_MP,       /* "SMS_MP" */
} CmCmgEndpoint;

typedef enum {
    CM_CMG_AUTH_MUTUAL, /* "CCM_Proxy_MutualAuth" */
    CM_CMG_AUTH_SERVER, /* "CCM_Proxy_ServerAuth" */
} CmCmgAuth;

#define CM_CMG_NAME_MAX 253
#define CM_CMG_URL_MAX  2048

typedef struct {
    char cmg_name[CM_CMG_NAME_MAX + 1]; /* host, lower case */
    CmCmgAuth auth;
    guint64 role_id;
    CmCmgEndpoint endpoint;
    char rest[CM_CMG_URL_MAX]; /* path after the endpoint, "" or "/..." */
} CmCmgUrl;

const char *cm_cmgurl_endpoint_name(CmCmgEndpoint ep);
char *cm_cmgurl_build(const char *cmg_name, CmCmgAuth auth, guint64 role_id, CmCmgEndpoint ep);
/* Accepts a full https URL or an absolute path ("/CCM_Proxy_...", then
 * cmg_name is ""). Endpoint and proxy names match case-insensitively, as IIS
 * does; anything else is INVALID. */
gboolean cm_cmgurl_parse(const char *url, CmCmgUrl *out, GError **error);
/* The client's internet MP list entry: "<CMG name>/CCM_Proxy_MutualAuth/<id>". */
char *cm_cmgurl_mp_entry(const char *cmg_name, guint64 role_id);
gboolean cm_cmgurl_mp_entry_parse(const char *entry, char name_out[CM_CMG_NAME_MAX + 1],
                                  guint64 *role_id_out, GError **error);

/* -------------------------------------------------------------- JSON */

/* Every message body is JSON, parsed with bounds: at most max_len bytes,
 * nesting at most CM_JSON_MAX_DEPTH, no duplicate keys, valid UTF-8, an
 * object at the top.  Field names are listed in docs/protocol.md. */
#define CM_JSON_MAX_DEPTH 16
#define CM_JSON_DEFAULT_MAX (64 * 1024)

json_t *cm_json_parse(const void *data, size_t len, size_t max_len, GError **error);
/* Compact, keys sorted: the same object always gives the same bytes. */
char *cm_json_dump(const json_t *obj);
/* Required fields: INVALID naming the field when absent, of the wrong type,
 * or out of bounds.  Returned strings are borrowed from obj. */
const char *cm_json_str(const json_t *obj, const char *key, size_t max_len, GError **error);
const char *cm_json_opt_str(const json_t *obj, const char *key, size_t max_len, GError **error);
gboolean cm_json_int(const json_t *obj, const char *key, gint64 min, gint64 max, gint64 *out,
                     GError **error);
gboolean cm_json_bool(const json_t *obj, const char *key, gboolean *out, GError **error);
/* A base64 string field decoded, at most max_len decoded bytes. */
GBytes *cm_json_b64(const json_t *obj, const char *key, size_t max_len, GError **error);
const json_t *cm_json_array(const json_t *obj, const char *key, size_t max_items,
                            GError **error);
const json_t *cm_json_object(const json_t *obj, const char *key, GError **error);

/* ------------------------------------------------------------- store */

/* SQLite helpers.  Only proto/store.c and site/ include sqlite3.h; everyone
 * else sees the handle as opaque. */
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct sqlite3 sqlite3;
typedef struct CmStore CmStore;

typedef enum {
    CM_STORE_MEMORY,  /* ":memory:" for the simulator and tests */
    CM_STORE_DURABLE, /* a file in WAL mode with synchronous=FULL */
    CM_STORE_FAST,    /* a file in WAL mode with synchronous=NORMAL */
} CmStoreMode;

CmStore *cm_store_open(const char *path, CmStoreMode mode, GError **error);
void cm_store_close(CmStore *store);
sqlite3 *cm_store_db(CmStore *store); /* (borrowed) */
/* Runs migrations[user_version..] each in its own transaction and bumps
 * user_version; a database newer than the code is refused. */
gboolean cm_store_migrate(CmStore *store, const char *const *migrations, size_t n,
                          GError **error);
gboolean cm_store_exec(CmStore *store, const char *sql, GError **error);
/* From now on every statement needs guard held (by any thread): a use
 * with it free is refused with an error and a critical log line.  NULL
 * lifts the check.  For a connection threads share under one lock. */
void cm_store_set_guard(CmStore *store, GMutex *guard);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. rollback never fails the caller. */
gboolean cm_store_begin(CmStore *store, GError **error);
gboolean cm_store_commit(CmStore *store, GError **error);
void cm_store_rollback(CmStore *store);
/* A cached prepared statement for sql, reset and with bindings cleared
 * (borrowed: valid until the store closes). */
sqlite3_stmt *cm_store_stmt(CmStore *store, const char *sql, GError **error);
/* Steps stmt to SQLITE_DONE (TRUE) and resets it; any other result is an
 * error with SQLite's message. */
gboolean cm_store_step_done(CmStore *store, sqlite3_stmt *stmt, GError **error);
/* Steps once: TRUE with *row set when a row came, TRUE with *row FALSE when
 * done, FALSE on error. */
gboolean cm_store_step_row(CmStore *store, sqlite3_stmt *stmt, gboolean *row, GError **error);
gint64 cm_store_last_rowid(CmStore *store);
int cm_store_changes(CmStore *store);

/* ----------------------------------------------------------- messages */

/* What a client or a site system asks of a role, as the role sees it: the
 * transport and the authentication the transport observed, the message
 * headers cmlab reads, and the body.  The daemons fill it from HTTP, the
 * simulator directly.  Field names and every endpoint are in
 * docs/protocol.md. */

typedef enum {
    CM_EP_NONE = 0,
    /* anonymous */
    CM_EP_LOCATION,       /* MP list (REQ NET-01/02) */
    CM_EP_MPCERT,         /* the MP's certificate, signed with the TRK */
    CM_EP_SITEINFO,       /* public TRK, site signing cert, encryption cert */
    CM_EP_CLIENT_PACKAGE, /* where to download the client */
    /* registration (signed with the client's new key: proof of possession) */
    CM_EP_REGISTER,
    CM_EP_REGISTER_STATUS,
    /* signed client requests */
    CM_EP_POLICY_ASSIGNMENTS,
    CM_EP_POLICY_BODY,
    CM_EP_INVENTORY,
    CM_EP_DISCOVERY,
    CM_EP_STATE,
    CM_EP_CLIENT_STATUS,
    CM_EP_NOTIFY,         /* client notification channel keep-alive */
    /* unauthenticated by design (REQ MSG-03) */
    CM_EP_STATUS,
    CM_EP__COUNT
} CmEndpoint;

const char *cm_ep_name(CmEndpoint ep);  /* "location", "register", ... */
const char *cm_ep_path(CmEndpoint ep);  /* "/sms_mp/.sms_aut?MPLIST", "/ccm_system/request/register" */
/* Endpoint from an HTTP path (with query); CM_EP_NONE when unknown. */
CmEndpoint cm_ep_from_path(const char *path);
CmEndpoint cm_ep_from_name(const char *name);
gboolean cm_ep_is_anonymous(CmEndpoint ep);
/* The largest body the endpoint accepts (docs/protocol.md). */
size_t cm_ep_body_max(CmEndpoint ep);

typedef enum {
    CM_TRANSPORT_HTTP,
    CM_TRANSPORT_HTTPS, /* TLS with a PKI server certificate */
    CM_TRANSPORT_EHTTP, /* Enhanced HTTP: TLS with a site-issued certificate */
} CmTransport;

const char *cm_transport_name(CmTransport t); /* "http", "https", "ehttp" */
gboolean cm_transport_parse(const char *name, CmTransport *out, GError **error);

/* What the transport authenticated (REQ REG-02, NET-02). */
typedef enum {
    CM_AUTH_ANONYMOUS,
    CM_AUTH_KERBEROS, /* Windows-integrated: principal and realm/domain */
    CM_AUTH_PKI,      /* TLS client certificate, verified by the transport */
    CM_AUTH_ENTRA,    /* Entra ID device token, verified by the receiving role */
    CM_AUTH_TOKEN,    /* site-issued client or bulk registration token (CMG) */
} CmAuthKind;

const char *cm_auth_name(CmAuthKind k);

#define CM_NAME_MAX 255

typedef struct {
    CmAuthKind kind;
    char principal[CM_NAME_MAX + 1]; /* "HOST1$@CORP.EXAMPLE", PKI subject CN, device id */
    char domain[CM_NAME_MAX + 1];    /* Kerberos realm or domain, Entra tenant */
    const CmCert *client_cert;       /* PKI: the verified TLS client certificate (borrowed) */
    const char *token;               /* Entra / CMG token as presented (borrowed) */
} CmPeer;

/* Headers cmlab reads; sizes bounded by the parsers in msg.c. */
#define CM_HDR_CLIENT_ID "CCM-ClientID"
#define CM_HDR_SIGNATURE "CCM-Signature" /* "<hash> <base64 signature>" */
#define CM_HDR_MAX       1024

typedef struct {
    CmEndpoint ep;
    CmTransport transport;
    CmPeer peer;
    char smsid[CM_ID_SMSID_LEN + 1]; /* "" when absent */
    gboolean signed_;                /* a signature header came */
    CmHashAlg sig_hash;
    guint8 sig[CM_SIG_MAX];
    size_t sig_len;
    const guint8 *body; /* borrowed */
    size_t body_len;
} CmRequest;

/* Parses a CCM-Signature header value into req (bounded, strict). */
gboolean cm_msg_parse_signature(const char *value, CmRequest *req, GError **error);
/* Formats "<hash> <base64>" (new string). */
char *cm_msg_format_signature(CmHashAlg hash, const guint8 *sig, size_t len);
/* Signs body with key into req (sig fields). */
gboolean cm_msg_sign(CmRequest *req, const CmKey *key, CmHashAlg hash, GError **error);

/* Machine-readable refusal reasons; every refusal also has a message. */
typedef enum {
    CM_REASON_OK = 0,
    CM_REASON_BAD_REQUEST,      /* 400 malformed */
    CM_REASON_TOO_LARGE,        /* 413 */
    CM_REASON_UNKNOWN_ENDPOINT, /* 404 */
    CM_REASON_HTTPS_REQUIRED,   /* 403 the site is HTTPS-only or Enhanced HTTP */
    CM_REASON_UNSIGNED,         /* 403 the site requires signing */
    CM_REASON_SHA1_REFUSED,     /* 403 the site requires SHA-256 */
    CM_REASON_BAD_SIGNATURE,    /* 403 */
    CM_REASON_UNKNOWN_CLIENT,   /* 403 not registered */
    CM_REASON_NOT_APPROVED,     /* 403 registered, approval pending */
    CM_REASON_BLOCKED,          /* 403 (REQ REG-03) */
    CM_REASON_CERT_EXPIRED,     /* 403 */
    CM_REASON_UNTRUSTED,        /* 403 certificate chain or token refused */
    CM_REASON_REVOKED,          /* 403 */
    CM_REASON_CONFLICT,         /* 409 conflicting record refused */
    CM_REASON_NOT_FOUND,        /* 404 e.g. unknown policy */
    CM_REASON_FORBIDDEN,        /* 403 other authorization refusals */
    CM_REASON_BUSY,             /* 503 with Retry-After */
    CM_REASON_INTERNAL,         /* 500 */
    CM_REASON__COUNT
} CmReason;

const char *cm_reason_name(CmReason r); /* "blocked", "sha1-refused", ... */
int cm_reason_status(CmReason r);       /* HTTP status */
CmReason cm_reason_from_error(const GError *error);

typedef struct {
    int status;
    CmReason reason;
    char *message;      /* human-readable (owned) */
    GBytes *body;       /* JSON (owned), NULL for none */
    CmTime retry_after; /* for 503, else 0 */
} CmResponse;

void cm_response_clear(CmResponse *resp);
/* A 200 with a JSON body made from obj (borrowed). */
void cm_response_ok(CmResponse *resp, const json_t *obj);
/* A 200 with body, JSON its maker already wrote (a new reference is
 * taken): for answers that are the same bytes every time. */
void cm_response_ok_bytes(CmResponse *resp, GBytes *body);
/* 200 with a constant body (static text, not copied), for the answers
 * that are the same bytes every time, written as cm_json_dump would. */
#define CM_REPLY_ACCEPTED "{\"accepted\":true}"
#define CM_REPLY_OPEN     "{\"open\":true}"
void cm_response_ok_const(CmResponse *resp, const char *json);
/* A refusal: status from reason, printf-style message. */
void cm_response_refuse(CmResponse *resp, CmReason reason, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* The JSON an HTTP driver sends for a refusal: {"reason":..,"message":..}. */
char *cm_response_error_json(const CmResponse *resp);

/* ------------------------------------------------ g_autoptr support */

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmKey, cm_key_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmKsp, cm_ksp_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCert, cm_cert_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCrl, cm_crl_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmCtl, cm_ctl_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmTrust, cm_trust_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CmStore, cm_store_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_t, json_decref)

G_END_DECLS

#endif /* CMPROTO_H */
