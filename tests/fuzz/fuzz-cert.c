/* fuzz-cert.c - certificate and public key parsing over any input: DER,
 * PEM, a PEM bundle and a DER SubjectPublicKeyInfo.  Properties:
 *  - a refusal always carries a CM_PROTO_ERROR, an acceptance none;
 *  - an accepted certificate's thumbprint is the SHA-256 of its DER, and
 *    parsing that DER again gives the same certificate;
 *  - a bundle never holds more than max_certs certificates;
 *  - an accepted public key's ID survives a DER and a hex round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

#define MAX_CERTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_refusal(GError *error)
{
    if (error == NULL || error->domain != CM_PROTO_ERROR || error->message == NULL)
        abort();
    g_error_free(error);
}

static void
check_cert(const CmCert *cert)
{
    GError *error = NULL;
    GBytes *der = cm_cert_to_der(cert);
    guint8 digest[32];
    CmCert *again;
    char *hex, *pem;

    cm_hash(CM_HASH_SHA256, g_bytes_get_data(der, NULL), g_bytes_get_size(der), digest);
    if (memcmp(digest, cm_cert_thumbprint(cert), 32) != 0)
        abort();
    again = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &error);
    if (again == NULL) {
        /* Over the bound once re-encoded is the only excuse. */
        if (!g_error_matches(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE))
            abort();
        g_error_free(error);
    } else {
        if (memcmp(cm_cert_thumbprint(again), digest, 32) != 0 ||
            cm_cert_serial(again) != cm_cert_serial(cert) ||
            strcmp(cm_cert_subject_cn(again), cm_cert_subject_cn(cert)) != 0)
            abort();
        cm_cert_unref(again);
    }
    hex = cm_cert_thumbprint_hex(cert);
    pem = cm_cert_to_pem(cert);
    (void)cm_cert_is_self_signed(cert);
    (void)cm_cert_hash(cert);
    (void)cm_cert_check_time(cert, cm_cert_not_before(cert), NULL);
    (void)cm_cert_check_signed_by(cert, cm_cert_public_key(cert), cm_cert_not_after(cert), NULL);
    g_free(hex);
    g_free(pem);
    g_bytes_unref(der);
}

static void
check_key(const CmKey *key)
{
    GError *error = NULL;
    GBytes *der = cm_key_public_der(key);
    char *hex = cm_key_public_hex(key);
    char *pem = cm_key_public_pem(key);
    CmKey *from_der, *from_hex;

    from_der = cm_key_public_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), &error);
    from_hex = cm_key_public_from_hex(hex, &error);
    if (from_der == NULL || from_hex == NULL || error != NULL ||
        !cm_key_public_equal(key, from_der) || !cm_key_public_equal(key, from_hex) ||
        cm_key_has_private(from_der) || cm_key_alg(from_der) != cm_key_alg(key))
        abort();
    cm_key_unref(from_der);
    cm_key_unref(from_hex);
    g_free(hex);
    g_free(pem);
    g_bytes_unref(der);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    const char *text = (const char *)data;
    CmCert *cert;
    CmKey *key;
    GPtrArray *bundle;

    cert = cm_cert_from_der(data, size, &error);
    if (cert == NULL) {
        check_refusal(error);
        error = NULL;
    } else {
        if (error != NULL)
            abort();
        check_cert(cert);
        cm_cert_unref(cert);
    }

    cert = cm_cert_from_pem(text, size, &error);
    if (cert == NULL) {
        check_refusal(error);
        error = NULL;
    } else {
        check_cert(cert);
        cm_cert_unref(cert);
    }

    bundle = cm_cert_bundle_from_pem(text, size, MAX_CERTS, &error);
    if (bundle == NULL) {
        check_refusal(error);
        error = NULL;
    } else {
        if (bundle->len == 0 || bundle->len > MAX_CERTS || error != NULL)
            abort();
        for (guint i = 0; i < bundle->len; i++)
            check_cert(g_ptr_array_index(bundle, i));
        g_ptr_array_unref(bundle);
    }

    key = cm_key_public_from_der(data, size, &error);
    if (key == NULL) {
        check_refusal(error);
        error = NULL;
    } else {
        check_key(key);
        cm_key_unref(key);
    }

    key = cm_key_public_from_pem(text, size, &error);
    if (key == NULL) {
        check_refusal(error);
    } else {
        check_key(key);
        cm_key_unref(key);
    }
    return 0;
}
