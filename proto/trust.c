/* trust.c - chain verification against a trust store built once: roots,
 * intermediates, CRLs with checking on or off (REQ TRUST-14), and the
 * certificate trust list that limits which roots count (REQ CMG-04).
 * Time is always the caller's, never the wall clock. */
#include "internal.h"

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

struct CmTrust {
    X509_STORE *store;
    GPtrArray *roots;         /* CmCert */
    GPtrArray *intermediates; /* CmCert */
    gboolean crl_check;
    CmCtl *ctl;
    GPtrArray *model_crls;    /* CmCrl of the cost-model mode (model.c) */
};

CmTrust *
cm_trust_new(void)
{
    CmTrust *trust = g_new0(CmTrust, 1);

    trust->store = X509_STORE_new();
    if (trust->store == NULL)
        g_error("out of memory");
    trust->roots = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    trust->intermediates = g_ptr_array_new_with_free_func((GDestroyNotify)cm_cert_unref);
    trust->model_crls = g_ptr_array_new_with_free_func((GDestroyNotify)cm_crl_unref);
    return trust;
}

void
cm_trust_free(CmTrust *trust)
{
    if (trust == NULL)
        return;
    X509_STORE_free(trust->store);
    g_ptr_array_unref(trust->roots);
    g_ptr_array_unref(trust->intermediates);
    g_ptr_array_unref(trust->model_crls);
    cm_ctl_free(trust->ctl);
    g_free(trust);
}

gboolean
cm_trust_add_root(CmTrust *trust, const CmCert *root, GError **error)
{
    if (!cm_cert_is_self_signed(root)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "\"%s\" is not a self-signed root certificate", cm_cert_subject_cn(root));
        return FALSE;
    }
    if (cm_cert_model(root) == NULL && !X509_STORE_add_cert(trust->store, cm_cert_x509(root))) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot add trusted root");
        return FALSE;
    }
    g_ptr_array_add(trust->roots, cm_cert_ref((CmCert *)root));
    return TRUE;
}

gboolean
cm_trust_add_intermediate(CmTrust *trust, const CmCert *cert, GError **error)
{
    (void)error;
    /* Intermediates are offered to chain building as untrusted certificates,
     * so they never act as anchors themselves. */
    g_ptr_array_add(trust->intermediates, cm_cert_ref((CmCert *)cert));
    return TRUE;
}

gboolean
cm_trust_add_crl(CmTrust *trust, const CmCrl *crl, GError **error)
{
    if (cm_crl_model(crl) != NULL) {
        g_ptr_array_add(trust->model_crls, cm_crl_ref((CmCrl *)crl));
        return TRUE;
    }
    if (!X509_STORE_add_crl(trust->store, cm_crl_x509(crl))) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot add CRL");
        return FALSE;
    }
    return TRUE;
}

/* The store's own flags follow the switch both ways: a verification
 * inherits them, and X509_STORE_set_flags() only ever adds flags, so once
 * set they would keep CRL checking on after it was turned off. */
static void
store_sync_crl_flags(CmTrust *trust)
{
    X509_VERIFY_PARAM *param = X509_STORE_get0_param(trust->store);
    const unsigned long crl_flags = X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;

    if (trust->crl_check)
        X509_VERIFY_PARAM_set_flags(param, crl_flags);
    else
        X509_VERIFY_PARAM_clear_flags(param, crl_flags);
}

void
cm_trust_set_crl_check(CmTrust *trust, gboolean on)
{
    trust->crl_check = on;
    store_sync_crl_flags(trust);
}

void
cm_trust_set_ctl(CmTrust *trust, CmCtl *ctl)
{
    cm_ctl_free(trust->ctl);
    trust->ctl = ctl;
}

size_t
cm_trust_root_count(const CmTrust *trust)
{
    return trust->roots->len;
}

X509_STORE *
cm_trust_x509_store(CmTrust *trust)
{
    /* The daemons' TLS contexts verify peers with the same CRL setting. */
    store_sync_crl_flags(trust);
    return trust->store;
}

static const CmCert *
find_root(CmTrust *trust, X509 *x)
{
    for (guint i = 0; i < trust->roots->len; i++) {
        const CmCert *r = g_ptr_array_index(trust->roots, i);
        if (X509_cmp(cm_cert_x509(r), x) == 0)
            return r;
    }
    return NULL;
}

static void
set_verify_error(GError **error, int err, int depth, X509 *where, const CmCert *leaf)
{
    CmProtoError code;
    char name[256] = "";

    if (where != NULL)
        X509_NAME_oneline(X509_get_subject_name(where), name, sizeof name);
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
        code = CM_PROTO_ERROR_EXPIRED;
        break;
    case X509_V_ERR_CERT_REVOKED:
        code = CM_PROTO_ERROR_REVOKED;
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        code = CM_PROTO_ERROR_REFUSED;
        break;
    default:
        code = CM_PROTO_ERROR_UNTRUSTED;
    }
    g_set_error(error, CM_PROTO_ERROR, code, "certificate \"%s\" refused: %s (at depth %d, %s)%s",
                cm_cert_subject_cn(leaf), X509_verify_cert_error_string(err), depth, name,
                err == X509_V_ERR_UNABLE_TO_GET_CRL
                    ? "; CRL checking is on, so publish the issuer's CRL or turn checking off"
                    : "");
}

gboolean
cm_trust_verify(CmTrust *trust, const CmCert *leaf, GPtrArray *untrusted, CmTime now,
                CmPurpose purpose, const CmCert **root_out, GError **error)
{
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *chain_in = NULL;
    STACK_OF(X509) *chain;
    const CmCert *root;
    unsigned long flags = X509_V_FLAG_USE_CHECK_TIME;
    gboolean ok = FALSE;
    int rc;

    if (cm_cert_model(leaf) != NULL) {
        root = cm_model_trust_verify(trust->roots, trust->intermediates, untrusted,
                                     trust->model_crls, trust->crl_check, leaf, now, purpose,
                                     error);
        if (root == NULL)
            goto out;
        goto anchored;
    }
    chain_in = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    if (chain_in == NULL || ctx == NULL)
        g_error("out of memory");
    for (guint i = 0; i < trust->intermediates->len; i++)
        sk_X509_push(chain_in, cm_cert_x509(g_ptr_array_index(trust->intermediates, i)));
    for (guint i = 0; untrusted != NULL && i < untrusted->len; i++)
        sk_X509_push(chain_in, cm_cert_x509(g_ptr_array_index(untrusted, i)));
    if (!X509_STORE_CTX_init(ctx, trust->store, cm_cert_x509(leaf), chain_in)) {
        cm_set_openssl_error(error, CM_PROTO_ERROR_CRYPTO, "cannot start chain verification");
        goto out;
    }
    if (trust->crl_check)
        flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
    X509_STORE_CTX_set_flags(ctx, flags);
    X509_STORE_CTX_set_time(ctx, 0, (time_t)(now / CM_USEC_PER_SEC));
    if (purpose == CM_PURPOSE_CLIENT_AUTH)
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    else if (purpose == CM_PURPOSE_SERVER_AUTH)
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);

    rc = X509_verify_cert(ctx);
    /* One signature checked per certificate below the anchor. */
    for (int n = MAX(sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) - 1, 1); n > 0; n--)
        CM_COUNT(verify);
    if (rc != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        X509 *where = X509_STORE_CTX_get_current_cert(ctx);
        cm_openssl_clear();
        set_verify_error(error, err, depth, where, leaf);
        goto out;
    }
    chain = X509_STORE_CTX_get0_chain(ctx);
    root = find_root(trust, sk_X509_value(chain, sk_X509_num(chain) - 1));
    if (root == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_UNTRUSTED,
                    "certificate \"%s\" chains to a root this trust store does not list",
                    cm_cert_subject_cn(leaf));
        goto out;
    }
anchored:
    if (trust->ctl != NULL && !cm_ctl_allows(trust->ctl, root)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "certificate \"%s\" was issued under root \"%s\", which is not in the "
                    "certificate trust list (CTL)",
                    cm_cert_subject_cn(leaf), cm_cert_subject_cn(root));
        goto out;
    }
    if (root_out != NULL)
        *root_out = root;
    ok = TRUE;
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(chain_in);
    return ok;
}
