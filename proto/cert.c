/* cert.c - X.509 certificates: issue with the profiles of the seeds, parse
 * once with bounds, keep what callers ask for (public key, thumbprint,
 * validity) so that no check parses twice. */
#include "internal.h"

#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct CmCert {
    gint refs;
    X509 *x509;
    CmKey *pub;
    /* SHA-256 of the DER encoding, made on first use: re-encoding costs
     * about a third of a parse, and most certificates never need it. */
    gsize thumbprint_done;
    guint8 thumbprint[32];
    /* Whether its own key verifies its signature, found out once: a
     * certificate never changes, and clients of a simulation share one. */
    gsize self_signed_done;
    gboolean self_signed;
    char *cn;
    CmTime not_before;
    CmTime not_after;
    guint64 serial;
    CmModelCert *model; /* a cost-model certificate (model.c): no x509 */
    /* What cm_cert_x509 gives OpenSSL: x509 itself, except for a P-256
     * certificate issued here, whose x509 holds no parsed public key (see
     * set_pubkey) and whose full X509 is parsed from its DER on first need.
     * Most never need it: encodings, names and thumbprints read x509, and
     * pub is the key. */
    gsize full_done;
    X509 *full;
    /* Its DER, kept for such a certificate: its x509 was changed after
     * parsing (signed), so OpenSSL would encode it afresh every time it is
     * sent, stored or its thumbprint taken.  Shared with the parse cache. */
    GBytes *der;
};

#define PEM_MAX (64 * 1024)
#define MODEL_PEM "CMLAB MODEL CERTIFICATE"

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

/* ------------------------------------------------------------- time */

gboolean
cm_asn1_time_get(const ASN1_TIME *t, CmTime *out)
{
    struct tm tm;
    time_t secs;

    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return FALSE;
    secs = timegm(&tm);
    *out = (CmTime)secs * CM_USEC_PER_SEC;
    return TRUE;
}

ASN1_TIME *
cm_asn1_time_new(CmTime t)
{
    /* Floor to the second: certificates carry whole seconds. */
    time_t secs = (time_t)(t >= 0 ? t / CM_USEC_PER_SEC : -((-t + CM_USEC_PER_SEC - 1) / CM_USEC_PER_SEC));
    return ASN1_TIME_set(NULL, secs);
}

static void
format_time(CmTime t, char buf[32])
{
    time_t secs = (time_t)(t / CM_USEC_PER_SEC);
    struct tm tm;

    if (gmtime_r(&secs, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        g_strlcpy(buf, "(unrepresentable time)", 32);
}

/* ------------------------------------------------------------- parse */

/* Wraps x509 (taking a reference) with its public key: pub (taken) if not
 * NULL, for an x509 without a parsed key (cm_cert_issue), else the key in
 * x509. */
static CmCert *
cert_wrap(X509 *x509, CmKey *pub, GError **error)
{
    CmCert *cert = NULL;
    EVP_PKEY *pkey;
    X509_NAME *subject;
    int idx;
    const ASN1_INTEGER *serial;
    uint64_t serial64 = 0;

    cert = g_new0(CmCert, 1);
    cert->refs = 1;
    if (pub != NULL) {
        cert->pub = pub;
    } else {
        cert->full_done = 1; /* x509 is complete */
        pkey = X509_get_pubkey(x509); /* new reference */
        if (pkey == NULL) {
            cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID,
                                 "certificate public key cannot be decoded");
            goto fail;
        }
        cert->pub = cm_key_wrap(pkey, CM_KEY_WRAP_PUBLIC, error);
        if (cert->pub == NULL) {
            g_prefix_error(error, "certificate: ");
            goto fail;
        }
    }
    if (!cm_asn1_time_get(X509_get0_notBefore(x509), &cert->not_before) ||
        !cm_asn1_time_get(X509_get0_notAfter(x509), &cert->not_after)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "certificate validity period cannot be decoded");
        goto fail;
    }
    subject = X509_get_subject_name(x509);
    idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx >= 0) {
        ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, s);
        cert->cn = n >= 0 ? g_strndup((const char *)utf8, (gsize)n) : g_strdup("");
        OPENSSL_free(utf8);
    } else {
        cert->cn = g_strdup("");
    }
    serial = X509_get0_serialNumber(x509);
    if (ASN1_INTEGER_get_uint64(&serial64, serial) == 1)
        cert->serial = serial64;
    cm_openssl_clear(); /* a serial over 64 bits is not an error */
    X509_up_ref(x509);
    cert->x509 = x509;
    goto out;
fail:
    cm_key_unref(cert->pub);
    g_free(cert->cn);
    g_free(cert);
    cert = NULL;
out:
    return cert;
}

/* A cost-model certificate from its encoding (counted by the caller). */
static CmCert *
cert_from_model(const guint8 *der, size_t len, GError **error)
{
    CmModelCert *m = cm_model_cert_parse(der, len, error);
    CmCert *cert;

    if (m == NULL)
        return NULL;
    cert = g_new0(CmCert, 1);
    cert->refs = 1;
    cert->model = m;
    cert->pub = cm_key_model_new((CmKeyAlg)m->key_alg, NULL, m->subject_pub, CM_KEY_WRAP_PUBLIC);
    cert->cn = m->cn; /* borrowed from m */
    cert->not_before = m->not_before;
    cert->not_after = m->not_after;
    cert->serial = m->serial;
    return cert;
}

const CmModelCert *
cm_cert_model(const CmCert *cert)
{
    return cert->model;
}

CmCert *
cm_cert_from_x509(X509 *x509, GError **error)
{
    return cert_wrap(x509, NULL, error);
}

CmCert *
cm_cert_from_der(const guint8 *der, size_t len, GError **error)
{
    const unsigned char *p = der;
    X509 *x509;
    CmCert *cert;

    if (len > CM_CERT_MAX_DER) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "certificate of %zu bytes refused: at most %d", len, CM_CERT_MAX_DER);
        return NULL;
    }
    if ((cert = cm_parse_cache_cert(der, len)) != NULL)
        return cert;
    CM_COUNT(cert_parse);
    if (cm_model_is(der, len, CM_MODEL_CERT)) {
        cert = cert_from_model(der, len, error);
        if (cert != NULL) /* keyed by the encoding it keeps: no copy */
            cm_parse_cache_cert_put_bytes(cert->model->der, cert);
        return cert;
    }
    x509 = d2i_X509(NULL, &p, (long)len);
    if (x509 == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "not a DER X.509 certificate");
        return NULL;
    }
    if (p != der + len) {
        X509_free(x509);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "certificate has %zu trailing bytes", (size_t)(der + len - p));
        return NULL;
    }
    cert = cert_wrap(x509, NULL, error);
    X509_free(x509);
    if (cert != NULL)
        cm_parse_cache_cert_put(der, len, cert);
    return cert;
}

CmCert *
cm_cert_from_pem(const char *pem, size_t len, GError **error)
{
    g_autoptr(GPtrArray) certs = cm_cert_bundle_from_pem(pem, len, 1, error);

    if (certs == NULL)
        return NULL;
    return cm_cert_ref(g_ptr_array_index(certs, 0));
}

GPtrArray *
cm_cert_bundle_from_pem(const char *pem, size_t len, size_t max_certs, GError **error)
{
    GPtrArray *certs = NULL;
    BIO *bio = NULL;
    X509 *x509;
    /* The bound must neither wrap around nor exceed what a BIO takes. */
    size_t max_len =
        max_certs > G_MAXINT / PEM_MAX ? (size_t)G_MAXINT : (size_t)PEM_MAX * MAX(max_certs, 1);

    if (len > max_len) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "PEM of %zu bytes refused: at most %zu", len, max_len);
        goto out;
    }
    if (cm_model_pem_has(MODEL_PEM, pem, len)) {
        const char *at = pem;
        certs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
        while (certs->len < max_certs && cm_model_pem_has(MODEL_PEM, at, (size_t)(pem + len - at))) {
            g_autoptr(GBytes) der =
                cm_model_pem_decode(MODEL_PEM, at, (size_t)(pem + len - at), &at);
            CmCert *cert = NULL;
            CM_COUNT(cert_parse);
            if (der != NULL && cm_model_is(g_bytes_get_data(der, NULL), g_bytes_get_size(der),
                                           CM_MODEL_CERT))
                cert = cert_from_model(g_bytes_get_data(der, NULL), g_bytes_get_size(der), error);
            else
                g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                            "malformed cost-model PEM certificate");
            if (cert == NULL) {
                g_clear_pointer(&certs, g_ptr_array_unref);
                goto out;
            }
            g_ptr_array_add(certs, cert);
        }
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        g_error("out of memory");
    certs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    cm_openssl_clear();
    while (certs->len < max_certs &&
           (x509 = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        CM_COUNT(cert_parse);
        int der_len = i2d_X509(x509, NULL);
        CmCert *cert = NULL;
        if (der_len <= 0 || der_len > CM_CERT_MAX_DER)
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                        "certificate %u of the PEM is over %d bytes", certs->len + 1,
                        CM_CERT_MAX_DER);
        else
            cert = cm_cert_from_x509(x509, error);
        X509_free(x509);
        if (cert == NULL) {
            g_clear_pointer(&certs, g_ptr_array_unref);
            goto out;
        }
        g_ptr_array_add(certs, cert);
    }
    /* The end of the PEM is reported as "no start line"; anything else is a
     * certificate block that does not decode, which must not pass for the
     * end of the bundle. */
    if (certs->len < max_certs && ERR_peek_last_error() != 0 &&
        !(ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_PEM &&
          ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE)) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "malformed PEM certificate");
        g_prefix_error(error, "certificate %u of the PEM: ", certs->len + 1);
        g_clear_pointer(&certs, g_ptr_array_unref);
        goto out;
    }
    cm_openssl_clear();
    if (certs->len == 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "no PEM certificate (\"BEGIN CERTIFICATE\") found");
        g_clear_pointer(&certs, g_ptr_array_unref);
    }
out:
    BIO_free(bio);
    return certs;
}

CmCert *
cm_cert_ref(CmCert *cert)
{
    g_atomic_int_inc(&cert->refs);
    return cert;
}

void
cm_cert_unref(CmCert *cert)
{
    if (cert == NULL || !g_atomic_int_dec_and_test(&cert->refs))
        return;
    X509_free(cert->x509);
    X509_free(cert->full);
    if (cert->der != NULL)
        g_bytes_unref(cert->der);
    cm_key_unref(cert->pub);
    if (cert->model != NULL)
        cm_model_cert_free(cert->model); /* and the cn it lent */
    else
        g_free(cert->cn);
    g_free(cert);
}

GBytes *
cm_cert_to_der(const CmCert *cert)
{
    unsigned char *der = NULL;
    int len;
    GBytes *b;

    if (cert->model != NULL)
        return g_bytes_ref(cert->model->der);
    if (cert->der != NULL)
        return g_bytes_ref(cert->der);
    len = i2d_X509(cert->x509, &der);
    if (len <= 0)
        g_error("cannot encode a parsed certificate");
    b = g_bytes_new(der, (gsize)len);
    OPENSSL_free(der);
    return b;
}

char *
cm_cert_to_pem(const CmCert *cert)
{
    BIO *bio;
    char *pem;

    if (cert->model != NULL)
        return cm_model_pem(MODEL_PEM, cert->model->der);
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_X509(bio, cert->x509))
        g_error("cannot write a certificate to memory");
    pem = cm_bio_to_string(bio);
    BIO_free(bio);
    return pem;
}

X509 *
cm_cert_x509(const CmCert *cert)
{
    CmCert *c = (CmCert *)cert; /* a cache, not part of the value */

    if (c->x509 == NULL)
        return NULL;
    if (g_once_init_enter(&c->full_done)) {
        unsigned char *der = NULL;
        const unsigned char *p;
        int len = i2d_X509(c->x509, &der);
        p = der;
        if (len <= 0 || (c->full = d2i_X509(NULL, &p, len)) == NULL)
            g_error("cannot parse an issued certificate"); /* allocation failure only */
        OPENSSL_free(der);
        g_once_init_leave(&c->full_done, 1);
    }
    return c->full != NULL ? c->full : c->x509;
}

CmKey *
cm_cert_public_key(const CmCert *cert)
{
    return cert->pub;
}

/* The hash of the DER encoding, never of the bytes a certificate was parsed
 * from: OpenSSL also takes BER (long-form lengths, say), and a certificate
 * must have one thumbprint, the one a CTL lists. */
const guint8 *
cm_cert_thumbprint(const CmCert *cert)
{
    CmCert *c = (CmCert *)cert; /* a cache, not part of the value */

    if (g_once_init_enter(&c->thumbprint_done)) {
        unsigned char *der = NULL;
        int len;
        if (c->model != NULL) {
            gsize n;
            const guint8 *d = g_bytes_get_data(c->model->der, &n);
            cm_hash(CM_HASH_SHA256, d, n, c->thumbprint);
            g_once_init_leave(&c->thumbprint_done, 1);
            return cert->thumbprint;
        }
        if (c->der != NULL) {
            gsize n;
            const guint8 *d = g_bytes_get_data(c->der, &n);
            cm_hash(CM_HASH_SHA256, d, n, c->thumbprint);
            g_once_init_leave(&c->thumbprint_done, 1);
            return cert->thumbprint;
        }
        len = i2d_X509(c->x509, &der);
        if (len <= 0)
            g_error("cannot encode a parsed certificate"); /* allocation failure only */
        cm_hash(CM_HASH_SHA256, der, (size_t)len, c->thumbprint);
        OPENSSL_free(der);
        g_once_init_leave(&c->thumbprint_done, 1);
    }
    return cert->thumbprint;
}

char *
cm_cert_thumbprint_hex(const CmCert *cert)
{
    return cm_enc_hex(cm_cert_thumbprint(cert), 32);
}

const char *
cm_cert_subject_cn(const CmCert *cert)
{
    return cert->cn;
}

guint64
cm_cert_serial(const CmCert *cert)
{
    return cert->serial;
}

CmTime
cm_cert_not_before(const CmCert *cert)
{
    return cert->not_before;
}

CmTime
cm_cert_not_after(const CmCert *cert)
{
    return cert->not_after;
}

gboolean
cm_cert_is_self_signed(const CmCert *cert)
{
    CmCert *c = (CmCert *)cert; /* a cache, not part of the value */

    if (g_once_init_enter(&c->self_signed_done)) {
        CM_COUNT(verify);
        if (c->model != NULL)
            c->self_signed = cm_cert_is_self_issued(c) &&
                             cm_model_cert_signed_by(c->model, c->model->subject_pub);
        else
            c->self_signed = X509_self_signed(cm_cert_x509(c), 1) == 1;
        cm_openssl_clear();
        g_once_init_leave(&c->self_signed_done, 1);
    }
    return cert->self_signed;
}

gboolean
cm_cert_is_self_issued(const CmCert *cert)
{
    if (cert->model != NULL)
        return g_strcmp0(cert->model->cn, cert->model->issuer_cn) == 0 &&
               g_strcmp0(cert->model->o, cert->model->issuer_o) == 0;
    return X509_NAME_cmp(X509_get_subject_name(cert->x509), X509_get_issuer_name(cert->x509)) ==
           0;
}

CmHashAlg
cm_cert_hash(const CmCert *cert)
{
    int md_nid = NID_undef;

    if (cert->model != NULL)
        return (CmHashAlg)cert->model->hash;
    if (X509_get_signature_info(cm_cert_x509(cert), &md_nid, NULL, NULL, NULL) &&
        md_nid == NID_sha1)
        return CM_HASH_SHA1;
    return CM_HASH_SHA256;
}

gboolean
cm_cert_check_time(const CmCert *cert, CmTime now, GError **error)
{
    char when[32];

    if (now < cert->not_before) {
        format_time(cert->not_before, when);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED,
                    "certificate \"%s\" is not valid yet: valid from %s", cert->cn, when);
        return FALSE;
    }
    if (now > cert->not_after) {
        format_time(cert->not_after, when);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED,
                    "certificate \"%s\" expired on %s", cert->cn, when);
        return FALSE;
    }
    return TRUE;
}

gboolean
cm_cert_check_signed_by(const CmCert *cert, const CmKey *issuer, CmTime now, GError **error)
{
    gboolean ok;

    CM_COUNT(verify);
    if (cert->model != NULL || cm_key_is_model(issuer))
        ok = cert->model != NULL && cm_key_is_model(issuer) &&
             cm_model_cert_signed_by(cert->model, cm_key_model_pub(issuer));
    else
        ok = X509_verify(cert->x509, cm_key_evp(issuer)) == 1;
    if (!ok) {
        cm_openssl_clear();
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_UNTRUSTED,
                    "certificate \"%s\" is not signed by the expected key "
                    "(for a management point: not signed by the trusted root key this "
                    "client holds)",
                    cert->cn);
        return FALSE;
    }
    return cm_cert_check_time(cert, now, error);
}

/* ------------------------------------------------------------- issue */

typedef struct {
    gboolean ca;
    int pathlen; /* -1 for none */
    const char *key_usage;
    const char *ext_key_usage; /* NULL for none */
} Profile;

static Profile
profile_of(CmCertProfile p, CmKeyAlg alg)
{
    /* keyEncipherment is an RSA notion; EC keys agree keys instead. */
    const char *sign_enc = alg == CM_KEY_RSA_2048 ? "critical,digitalSignature,keyEncipherment"
                                                  : "critical,digitalSignature,keyAgreement";
    switch (p) {
    case CM_CERT_ROOT_CA:
        return (Profile){TRUE, -1, "critical,keyCertSign,cRLSign,digitalSignature", NULL};
    case CM_CERT_INTERMEDIATE_CA:
        return (Profile){TRUE, 0, "critical,keyCertSign,cRLSign,digitalSignature", NULL};
    case CM_CERT_SITE_SIGNING:
        return (Profile){FALSE, -1, "critical,digitalSignature", "codeSigning"};
    case CM_CERT_MP:
    case CM_CERT_SERVER:
        return (Profile){FALSE, -1, sign_enc, "serverAuth"};
    case CM_CERT_CLIENT_AUTH:
        return (Profile){FALSE, -1, "critical,digitalSignature", "clientAuth"};
    case CM_CERT_ENCRYPTION:
        return (Profile){FALSE, -1, sign_enc, NULL};
    case CM_CERT_CLIENT_SELF_SIGNED:
    default:
        return (Profile){FALSE, -1, sign_enc, "clientAuth"};
    }
}

static gboolean
add_ext(X509 *x509, X509V3_CTX *ctx, int nid, const char *value, GError **error)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

    if (ext == NULL || !X509_add_ext(x509, ext, -1)) {
        X509_EXTENSION_free(ext);
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "cannot add certificate extension");
        g_prefix_error(error, "%s=%s: ", OBJ_nid2sn(nid), value);
        return FALSE;
    }
    X509_EXTENSION_free(ext);
    return TRUE;
}

static X509_NAME *
make_name(const char *cn, const char *o, GError **error)
{
    X509_NAME *name = X509_NAME_new();

    if (name == NULL)
        g_error("out of memory");
    if ((o != NULL && !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                                  (const unsigned char *)o, -1, -1, 0)) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0)) {
        X509_NAME_free(name);
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "invalid certificate name");
        return NULL;
    }
    return name;
}

/* DNS names and the CRL URL go into OpenSSL's extension syntax, where a
 * comma starts another entry ("a.example,IP:10.0.0.1") and "@" names a
 * config section: only the characters a host name or URL needs pass. */
static gboolean
dns_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 253)
        return FALSE;
    for (const char *c = name; *c; c++)
        if (!g_ascii_isalnum(*c) && *c != '-' && *c != '.' && *c != '*' && *c != '_')
            return FALSE;
    return TRUE;
}

static gboolean
url_ok(const char *url)
{
    if (*url == '\0' || strlen(url) > 2048)
        return FALSE;
    for (const char *c = url; *c; c++)
        if (!g_ascii_isgraph(*c) || *c == ',')
            return FALSE;
    return TRUE;
}

static gboolean
spec_check(const CmCertSpec *spec, GError **error)
{
    const char *why = NULL;

    if (spec->subject_cn == NULL || *spec->subject_cn == '\0' || strlen(spec->subject_cn) > 64)
        why = "subject_cn must be 1 to 64 characters";
    else if (spec->subject_key == NULL)
        why = "subject_key is required";
    else if (spec->serial == 0)
        why = "serial must be non-zero";
    else if (spec->not_after <= spec->not_before)
        why = "not_after must come after not_before";
    else if (spec->issuer_key == NULL && !cm_key_has_private(spec->subject_key))
        why = "a self-signed certificate needs the subject's private key";
    else if (spec->issuer_key != NULL && !cm_key_has_private(spec->issuer_key))
        why = "issuer_key must be a private key";
    else if (spec->issuer_key != NULL && spec->issuer_cert == NULL && spec->issuer_cn == NULL)
        why = "a certificate signed by another key needs issuer_cert or issuer_cn";
    else if (spec->crl_url != NULL && !url_ok(spec->crl_url))
        why = "crl_url must be a URL without spaces or commas";
    for (size_t i = 0; why == NULL && spec->dns_names != NULL && spec->dns_names[i] != NULL; i++)
        if (!dns_name_ok(spec->dns_names[i]))
            why = "dns_names must be host names (letters, digits, '-', '_', '.', '*')";
    if (why != NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot issue certificate: %s", why);
        return FALSE;
    }
    return TRUE;
}

/* Puts key's public half into the certificate.  X509_set_pubkey costs
 * OpenSSL 3.0 an encoder to write the SubjectPublicKeyInfo and a decoder to
 * read it back (both built afresh for every call; a fifth of a simulated
 * client's CPU time with the site's parse of the same bytes).  For a P-256
 * key the field is two OIDs and the encoded point, which the key gives
 * directly: the same bytes the encoder writes (test-cert.c compares them).
 * The X509 is then left without a parsed key: *pub is key's public view
 * (cm_key_public_view), for the CmCert.  Other keys take OpenSSL's path
 * (*pub NULL). */
static gboolean
set_pubkey(X509 *x509, const CmKey *key, CmKey **pub)
{
    unsigned char *point = NULL;
    size_t len;

    *pub = NULL;
    if (cm_key_alg(key) != CM_KEY_EC_P256)
        return X509_set_pubkey(x509, cm_key_evp(key)) == 1;
    len = EVP_PKEY_get1_encoded_public_key(cm_key_evp(key), &point);
    if (len == 0 || point == NULL)
        return FALSE;
    *pub = cm_key_public_view(key);
    if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x509), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                               V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), point,
                               (int)len) != 1) {
        OPENSSL_free(point);
        g_clear_pointer(pub, cm_key_unref);
        return FALSE;
    }
    return TRUE;
}

/* The certificate x509 encodes, its public key usable for public
 * operations only, put in the parse cache, if on, where receivers of the
 * bytes find it (the simulator's sites parse their clients' certificates
 * so).  With pub (taken; see set_pubkey) x509 is wrapped as it is;
 * without, its DER is parsed as a receiver parses it (uncounted: it is part
 * of issuing). */
static CmCert *
cert_issued(X509 *x509, CmKey *pub, GError **error)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int len = i2d_X509(x509, &der);
    X509 *parsed;
    CmCert *cert = NULL;

    if (len <= 0) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot encode certificate");
        goto out;
    }
    if (pub != NULL) {
        cert = cert_wrap(x509, g_steal_pointer(&pub), error);
        if (cert != NULL)
            cert->der = g_bytes_new(der, (gsize)len);
    } else {
        p = der;
        parsed = d2i_X509(NULL, &p, len);
        if (parsed == NULL) {
            cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot parse issued certificate");
            goto out;
        }
        cert = cert_wrap(parsed, NULL, error);
        X509_free(parsed);
    }
    if (cert != NULL && cert->der != NULL)
        cm_parse_cache_cert_put_bytes(cert->der, cert);
    else if (cert != NULL)
        cm_parse_cache_cert_put(der, (size_t)len, cert);
out:
    cm_key_unref(pub);
    OPENSSL_free(der);
    return cert;
}

CmCert *
cm_cert_issue(const CmCertSpec *spec, GError **error)
{
    X509 *x509 = NULL;
    X509_NAME *subject = NULL, *issuer_name = NULL;
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *nb = NULL, *na = NULL;
    X509V3_CTX ctx;
    const CmKey *signer;
    Profile prof;
    CmCert *cert = NULL;
    CmKey *pub = NULL;
    char value[64];

    if (!spec_check(spec, error))
        goto out;
    CM_COUNT(cert_issue);
    signer = spec->issuer_key != NULL ? spec->issuer_key : spec->subject_key;
    if (cm_key_is_model(spec->subject_key) || cm_key_is_model(signer)) {
        const CmModelCert *im = spec->issuer_cert != NULL ? spec->issuer_cert->model : NULL;
        const char *icn = spec->issuer_cert != NULL ? spec->issuer_cert->cn
                          : spec->issuer_key != NULL ? spec->issuer_cn
                                                     : spec->subject_cn;
        const char *io = spec->issuer_cert != NULL ? (im != NULL ? im->o : NULL)
                         : spec->issuer_key != NULL ? NULL
                                                    : spec->subject_o;
        g_autoptr(GBytes) der = NULL;
        if (spec->issuer_cert != NULL && im == NULL) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "cannot issue certificate: cost-model and real objects do not mix");
            goto out;
        }
        der = cm_model_cert_encode(spec, icn, io, error);
        if (der != NULL)
            cert = cert_from_model(g_bytes_get_data(der, NULL), g_bytes_get_size(der), error);
        /* As a real certificate is (cert_reparse): its receivers find it
         * parsed, so both modes count the same parses.  Keyed by the
         * encoding it keeps: no copy. */
        if (cert != NULL)
            cm_parse_cache_cert_put_bytes(cert->model->der, cert);
        goto out;
    }
    prof = profile_of(spec->profile, cm_key_alg(spec->subject_key));

    x509 = X509_new();
    serial = ASN1_INTEGER_new();
    nb = cm_asn1_time_new(spec->not_before);
    na = cm_asn1_time_new(spec->not_after);
    if (x509 == NULL || serial == NULL || nb == NULL || na == NULL)
        g_error("out of memory");
    subject = make_name(spec->subject_cn, spec->subject_o, error);
    if (subject == NULL)
        goto out;
    if (spec->issuer_cert != NULL)
        issuer_name = X509_NAME_dup(X509_get_subject_name(cm_cert_x509(spec->issuer_cert)));
    else if (spec->issuer_key != NULL)
        issuer_name = make_name(spec->issuer_cn, NULL, error);
    else
        issuer_name = X509_NAME_dup(subject);
    if (issuer_name == NULL)
        goto out;

    if (!X509_set_version(x509, X509_VERSION_3) || !ASN1_INTEGER_set_uint64(serial, spec->serial) ||
        !X509_set_serialNumber(x509, serial) || !X509_set_subject_name(x509, subject) ||
        !X509_set_issuer_name(x509, issuer_name) || !X509_set1_notBefore(x509, nb) ||
        !X509_set1_notAfter(x509, na) || !set_pubkey(x509, spec->subject_key, &pub)) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot fill certificate");
        goto out;
    }

    X509V3_set_ctx(&ctx, spec->issuer_cert ? cm_cert_x509(spec->issuer_cert) : x509, x509, NULL,
                   NULL, 0);
    if (spec->issuer_key != NULL && spec->issuer_cert == NULL)
        X509V3_set_issuer_pkey(&ctx, cm_key_evp(spec->issuer_key));
    if (prof.ca && prof.pathlen >= 0)
        g_snprintf(value, sizeof value, "critical,CA:TRUE,pathlen:%d", prof.pathlen);
    else
        g_strlcpy(value, prof.ca ? "critical,CA:TRUE" : "critical,CA:FALSE", sizeof value);
    if (!add_ext(x509, &ctx, NID_basic_constraints, value, error) ||
        !add_ext(x509, &ctx, NID_key_usage, prof.key_usage, error) ||
        (prof.ext_key_usage != NULL &&
         !add_ext(x509, &ctx, NID_ext_key_usage, prof.ext_key_usage, error)) ||
        !add_ext(x509, &ctx, NID_subject_key_identifier, "hash", error))
        goto out;
    if (spec->issuer_key != NULL &&
        !add_ext(x509, &ctx, NID_authority_key_identifier, "keyid:always", error))
        goto out;
    if (spec->dns_names != NULL && spec->dns_names[0] != NULL) {
        GString *san = g_string_new(NULL);
        gboolean ok;
        for (size_t i = 0; spec->dns_names[i] != NULL; i++)
            g_string_append_printf(san, "%sDNS:%s", i ? "," : "", spec->dns_names[i]);
        ok = add_ext(x509, &ctx, NID_subject_alt_name, san->str, error);
        g_string_free(san, TRUE);
        if (!ok)
            goto out;
    }
    if (spec->crl_url != NULL) {
        g_autofree char *cdp = g_strdup_printf("URI:%s", spec->crl_url);
        if (!add_ext(x509, &ctx, NID_crl_distribution_points, cdp, error))
            goto out;
    }
    if (X509_sign(x509, cm_key_evp(signer), cm_md(spec->hash)) <= 0) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot sign certificate");
        goto out;
    }
    cert = cert_issued(x509, g_steal_pointer(&pub), error);
out:
    cm_key_unref(pub);
    X509_free(x509);
    X509_NAME_free(subject);
    X509_NAME_free(issuer_name);
    ASN1_INTEGER_free(serial);
    ASN1_TIME_free(nb);
    ASN1_TIME_free(na);
    return cert;
}
