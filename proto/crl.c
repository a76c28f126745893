/* crl.c - certificate revocation lists (REQ TRUST-14): issue, parse with
 * bounds, check the issuer's signature and the update times. */
#include "internal.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct CmCrl {
    gint refs;
    X509_CRL *crl;
    CmModelCrl *model; /* a cost-model CRL (model.c): no crl */
};

#define MODEL_PEM "CMLAB MODEL CRL"

static CmCrl *
crl_from_model(const guint8 *der, size_t len, GError **error)
{
    CmModelCrl *m = cm_model_crl_parse(der, len, error);
    CmCrl *crl;

    if (m == NULL)
        return NULL;
    crl = g_new0(CmCrl, 1);
    crl->refs = 1;
    crl->model = m;
    return crl;
}

const CmModelCrl *
cm_crl_model(const CmCrl *crl)
{
    return crl->model;
}

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

static CmCrl *
crl_wrap(X509_CRL *x)
{
    CmCrl *crl = g_new0(CmCrl, 1);
    crl->refs = 1;
    crl->crl = x;
    return crl;
}

CmCrl *
cm_crl_issue(const CmCert *issuer, const CmKey *issuer_key, const CmCrlEntry *entries,
             size_t n_entries, guint64 crl_number, CmTime this_update, CmTime next_update,
             GError **error)
{
    X509_CRL *x = NULL;
    ASN1_TIME *tu = NULL, *nu = NULL;
    ASN1_INTEGER *num = NULL;
    CmCrl *out = NULL;

    if (!cm_key_has_private(issuer_key) ||
        !cm_key_public_equal(issuer_key, cm_cert_public_key(issuer))) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot issue CRL: the key is not the private key of \"%s\"",
                    cm_cert_subject_cn(issuer));
        goto out;
    }
    if (next_update <= this_update) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot issue CRL: next update must come after this update");
        goto out;
    }
    if (cm_key_is_model(issuer_key)) {
        g_autoptr(GBytes) der = cm_model_crl_encode(issuer, issuer_key, entries, n_entries,
                                                    crl_number, this_update, next_update, error);
        if (der != NULL)
            out = crl_from_model(g_bytes_get_data(der, NULL), g_bytes_get_size(der), error);
        goto out;
    }
    x = X509_CRL_new();
    tu = cm_asn1_time_new(this_update);
    nu = cm_asn1_time_new(next_update);
    num = ASN1_INTEGER_new();
    if (x == NULL || tu == NULL || nu == NULL || num == NULL)
        g_error("out of memory");
    if (!X509_CRL_set_version(x, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(x, X509_get_subject_name(cm_cert_x509(issuer))) ||
        !X509_CRL_set1_lastUpdate(x, tu) || !X509_CRL_set1_nextUpdate(x, nu))
        goto crypto_fail;
    for (size_t i = 0; i < n_entries; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *serial = ASN1_INTEGER_new();
        ASN1_TIME *when = cm_asn1_time_new(entries[i].revoked_at);
        gboolean ok = r && serial && when && ASN1_INTEGER_set_uint64(serial, entries[i].serial) &&
                      X509_REVOKED_set_serialNumber(r, serial) &&
                      X509_REVOKED_set_revocationDate(r, when) && X509_CRL_add0_revoked(x, r);
        ASN1_INTEGER_free(serial);
        ASN1_TIME_free(when);
        if (!ok) {
            X509_REVOKED_free(r);
            goto crypto_fail;
        }
    }
    if (!ASN1_INTEGER_set_uint64(num, crl_number) ||
        !X509_CRL_add1_ext_i2d(x, NID_crl_number, num, 0, 0))
        goto crypto_fail;
    X509_CRL_sort(x);
    if (X509_CRL_sign(x, cm_key_evp(issuer_key), cm_md(CM_HASH_SHA256)) <= 0)
        goto crypto_fail;
    out = crl_wrap(x);
    x = NULL;
    goto out;
crypto_fail:
    cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot build CRL");
out:
    X509_CRL_free(x);
    ASN1_TIME_free(tu);
    ASN1_TIME_free(nu);
    ASN1_INTEGER_free(num);
    return out;
}

CmCrl *
cm_crl_ref(CmCrl *crl)
{
    g_atomic_int_inc(&crl->refs);
    return crl;
}

void
cm_crl_unref(CmCrl *crl)
{
    if (crl == NULL || !g_atomic_int_dec_and_test(&crl->refs))
        return;
    X509_CRL_free(crl->crl);
    cm_model_crl_free(crl->model);
    g_free(crl);
}

CmCrl *
cm_crl_from_der(const guint8 *der, size_t len, GError **error)
{
    const unsigned char *p = der;
    X509_CRL *x;

    if (len > CM_CRL_MAX_DER) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "CRL of %zu bytes refused: at most %d", len, CM_CRL_MAX_DER);
        return NULL;
    }
    if (cm_model_is(der, len, CM_MODEL_CRL))
        return crl_from_model(der, len, error);
    x = d2i_X509_CRL(NULL, &p, (long)len);
    if (x == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID, "not a DER X.509 CRL");
        return NULL;
    }
    if (p != der + len) {
        X509_CRL_free(x);
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "CRL has trailing bytes");
        return NULL;
    }
    return crl_wrap(x);
}

CmCrl *
cm_crl_from_pem(const char *pem, size_t len, GError **error)
{
    BIO *bio;
    X509_CRL *x;

    if (len > CM_CRL_MAX_DER * 2) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "CRL PEM of %zu bytes refused: at most %d", len, CM_CRL_MAX_DER * 2);
        return NULL;
    }
    if (cm_model_pem_has(MODEL_PEM, pem, len)) {
        g_autoptr(GBytes) der = cm_model_pem_decode(MODEL_PEM, pem, len, NULL);
        if (der == NULL || !cm_model_is(g_bytes_get_data(der, NULL), g_bytes_get_size(der),
                                        CM_MODEL_CRL)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "malformed cost-model PEM CRL");
            return NULL;
        }
        return crl_from_model(g_bytes_get_data(der, NULL), g_bytes_get_size(der), error);
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    x = bio ? PEM_read_bio_X509_CRL(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (x == NULL) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_INVALID,
                             "no PEM CRL (\"BEGIN X509 CRL\") found");
        return NULL;
    }
    return crl_wrap(x);
}

GBytes *
cm_crl_to_der(const CmCrl *crl)
{
    unsigned char *der = NULL;
    int len;
    GBytes *b;

    if (crl->model != NULL)
        return g_bytes_ref(crl->model->der);
    len = i2d_X509_CRL(crl->crl, &der);
    if (len <= 0)
        g_error("cannot encode a parsed CRL");
    b = g_bytes_new(der, (gsize)len);
    OPENSSL_free(der);
    return b;
}

char *
cm_crl_to_pem(const CmCrl *crl)
{
    BIO *bio;
    char *pem;

    if (crl->model != NULL)
        return cm_model_pem(MODEL_PEM, crl->model->der);
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_X509_CRL(bio, crl->crl))
        g_error("cannot write a CRL to memory");
    pem = cm_bio_to_string(bio);
    BIO_free(bio);
    return pem;
}

X509_CRL *
cm_crl_x509(const CmCrl *crl)
{
    return crl->crl;
}

gboolean
cm_crl_check(const CmCrl *crl, const CmCert *issuer, CmTime now, GError **error)
{
    CmTime this_update, next_update;

    if (crl->model != NULL || cm_cert_model(issuer) != NULL) {
        const CmModelCrl *m = crl->model;
        const CmModelCert *im = cm_cert_model(issuer);
        if (m == NULL || im == NULL || g_strcmp0(m->issuer_cn, im->cn) != 0 ||
            g_strcmp0(m->issuer_o, im->o) != 0 || !cm_model_crl_signed_by(m, im->subject_pub)) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                        "CRL is not signed by \"%s\"", cm_cert_subject_cn(issuer));
            return FALSE;
        }
        this_update = m->this_update;
        next_update = m->next_update;
        goto times;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl->crl), X509_get_subject_name(cm_cert_x509(issuer))) !=
            0 ||
        X509_CRL_verify(crl->crl, cm_key_evp(cm_cert_public_key(issuer))) != 1) {
        cm_openssl_clear();
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                    "CRL is not signed by \"%s\"", cm_cert_subject_cn(issuer));
        return FALSE;
    }
    if (!cm_asn1_time_get(X509_CRL_get0_lastUpdate(crl->crl), &this_update) ||
        X509_CRL_get0_nextUpdate(crl->crl) == NULL ||
        !cm_asn1_time_get(X509_CRL_get0_nextUpdate(crl->crl), &next_update)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "CRL has no usable this/next update times");
        return FALSE;
    }
times:
    if (now < this_update || now > next_update) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_EXPIRED,
                    "CRL of \"%s\" is %s: publish a fresh one", cm_cert_subject_cn(issuer),
                    now < this_update ? "not valid yet" : "past its next update");
        return FALSE;
    }
    return TRUE;
}

gboolean
cm_crl_lists(const CmCrl *crl, const CmCert *cert)
{
    X509_REVOKED *r = NULL;
    int rc;

    if (crl->model != NULL || cm_cert_model(cert) != NULL)
        return crl->model != NULL && cm_cert_model(cert) != NULL &&
               cm_model_crl_lists(crl->model, cm_cert_serial(cert));
    rc = X509_CRL_get0_by_cert(crl->crl, &r, cm_cert_x509(cert));
    /* 1 revoked, 2 removeFromCRL (not revoked), 0 absent */
    return rc == 1;
}

size_t
cm_crl_count(const CmCrl *crl)
{
    STACK_OF(X509_REVOKED) *revoked;

    if (crl->model != NULL)
        return crl->model->n;
    revoked = X509_CRL_get_REVOKED(crl->crl);
    return revoked ? (size_t)sk_X509_REVOKED_num(revoked) : 0;
}
