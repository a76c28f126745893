/* fuzz-crl.c - CRL parsing over any input, DER and PEM, then what the trust
 * store does with a CRL: count its entries, look a certificate up, check
 * its signature and times against an issuer made once.  Properties:
 *  - a refusal always carries a CM_PROTO_ERROR;
 *  - an accepted CRL re-encodes to DER that parses to the same count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static CmCert *issuer;

static gpointer
fuzz_crl_init(gpointer unused)
{
    CmCertSpec spec = {0};
    CmKey *issuer_key;

    (void)unused;
    issuer_key = cm_key_generate(CM_KEY_EC_P256, NULL);
    if (issuer_key == NULL)
        abort();
    spec.profile = CM_CERT_ROOT_CA;
    spec.subject_cn = "cmlab fuzz CA";
    spec.serial = 1;
    spec.not_before = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    spec.not_after = spec.not_before + 3650 * CM_USEC_PER_DAY;
    spec.subject_key = issuer_key;
    issuer = cm_cert_issue(&spec, NULL);
    if (issuer == NULL)
        abort();
    cm_key_unref(issuer_key); /* the CRLs are checked, never issued */
    return NULL;
}

static void
check_crl(CmCrl *crl)
{
    GError *error = NULL;
    size_t count = cm_crl_count(crl);
    GBytes *der = cm_crl_to_der(crl);
    char *pem = cm_crl_to_pem(crl);
    CmCrl *again;

    again = cm_crl_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &error);
    if (again == NULL || cm_crl_count(again) != count)
        abort();
    cm_crl_unref(again);
    (void)cm_crl_lists(crl, issuer);
    if (!cm_crl_check(crl, issuer, cm_cert_not_before(issuer), &error)) {
        if (error == NULL || error->domain != CM_PROTO_ERROR)
            abort();
        g_clear_error(&error);
    }
    g_free(pem);
    g_bytes_unref(der);
}

static void
check_refusal(GError *error)
{
    if (error == NULL || error->domain != CM_PROTO_ERROR)
        abort();
    g_error_free(error);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GOnce once = G_ONCE_INIT;
    GError *error = NULL;
    CmCrl *crl;

    g_once(&once, fuzz_crl_init, NULL);
    crl = cm_crl_from_der(data, size, &error);
    if (crl == NULL) {
        check_refusal(error);
        error = NULL;
    } else {
        check_crl(crl);
        cm_crl_unref(crl);
    }
    crl = cm_crl_from_pem((const char *)data, size, &error);
    if (crl == NULL) {
        check_refusal(error);
    } else {
        check_crl(crl);
        cm_crl_unref(crl);
    }
    return 0;
}
