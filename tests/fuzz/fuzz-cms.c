/* fuzz-cms.c - cm_cms_decrypt over any input, for an EC (key agreement)
 * and an RSA (key transport) recipient.  The recipients' keys are fixed
 * test keys and their certificates are issued once, the same way every
 * run, so that corpus envelopes addressed to them reach the decryption and
 * not only the parser.  Properties:
 *  - a refusal always carries a CM_PROTO_ERROR;
 *  - an accepted envelope gives at most max_plain bytes and names a
 *    cipher; an AES-GCM one opens the same way a second time.  (A CBC
 *    envelope whose RSA-encrypted key does not decrypt is opened with a
 *    random key, OpenSSL's defence against padding oracles, so its result
 *    may differ from run to run: about one in 256 passes the padding
 *    check with garbage.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

#define MAX_PLAIN (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Test keys only: they protect nothing. */
static const char EC_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSgsMWHzanv8iE/ww\n"
    "kl7Ndkt7uwi8y8qX1PjZLZ280GWhRANCAAR9J2AVTslZigwaOrASQVM3NcrTB+vh\n"
    "wMbTvenT6JwwzyFJB7bVUg/nz0FsFUUlb2idaDv8VjaGQkqNYlLIryv1\n"
    "-----END PRIVATE KEY-----\n";

static const char RSA_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDcGy746Qhz+E29\n"
    "mvPlVsda9dZ03S4a3+pyfue0laHWO31CdKjQMcCOc6Q6E0eJoNhI/9RolZcdb9UX\n"
    "r46Mxdyic6AC8Vx59i5jKPl8H7CbErhc6Y+jxxv5D8i0JNiSH8TBpBwY2hAsI8nt\n"
    "LFGWC7NlaPXiMyCeFj9Aa1rZuY2F3SIAxxT00d540T9JfOQGCOhnB7I27zKb1ytX\n"
    "Rs/xrXUkurI3ToJeL07DTX8xizZUNGw9nEd4JlR+m5se1Yfvpb3KG4rX2Lo8xN9F\n"
    "FKtEYphXIX6SkfqPzj88zTo9PZQpjDKwCED1ked5Bt0IVWpMFz+XeaCo597sny7q\n"
    "4zZJkjYXAgMBAAECggEACzE0q8KJw//h0BzjfwtxGq56h7nBgOtW7BiI5rVfI9ol\n"
    "je4JsYB+JqA5vxxA3H450Uh1ABZvNzd7EffC22SqSfZwMgYc6jS6+h7YxNeFrvT+\n"
    "O/dCbxUOVpVXYtWmz5Ne+WvDY/4eqWfueilxQpx4tFTof+aSp4dBEyECXyTgzegv\n"
    "EMx/Kblcg35mzFwAUVTcJWrI9l0h2eXirixE2VVZooL7HqOihEBdDxgQzFGJftfO\n"
    "YmsLaaGpE+rCSettZ+qeFE7AToWInBhDOArpUN9eL2Yk5oj237yslhdVxKkriHfi\n"
    "2VshR8kfV4psLJygKWuEKMcIhm1zupeR9OLxKF+orQKBgQDuQ/RdHC5XpH9Nxk9q\n"
    "3fzsntYFtzaa5sg5wmNmLFvgGORWgg9wn36eU8pUXBiZpErKZPhntndVDKYt4ijv\n"
    "aGQ6iZp3VoVDEQHRB4VaQsRzRYr3z24AlnbAMD86AAcB1D4Awq9C+VGX0KX+g7Vj\n"
    "cWaeBfMDK+U3pgypI0wCQIkvkwKBgQDsfTZHXbARf8l9dPtCINm+19UALpe8Ytf5\n"
    "OHqNozIWukjsipeXa0YUJnKe/kouWHgdRwjngHVeCsO/Tfr2/VNCHXMCbiwCPgQs\n"
    "mVlI9PeE/tGdpAAvijgXPvRCEtBPc5QTfPZ2BZebPDwr6SiNSMvvK/TALNntXqut\n"
    "WEmS9acJ7QKBgBRWZJNWBnagqeUfmkPK8v3XiPkv7E9Ih6q2dvmPq7/zH/pqW5sH\n"
    "Yi1thYWx3r+ukFu6RqHDp2fxDnY4KbpVtMhyWmb5UaKp3vfSpoVP0ajtNLF2WTNf\n"
    "pH8/HwZ6Xh6/2RMDiyYyVc6ZlrGk2GTGlzXB2D5bDtOzLr15L9G5ZHxVAoGAeVmC\n"
    "6bn0Z/ZXkQ3fBD7RHPGpdc9ywxNBWbwWful4AVuTofU39lXwftR/yoAX1pJFCFj0\n"
    "A77R+vCxI1BDcEvrVijAZEXeRURHZg9GVn6FKHSNYUPPaJWXVK5ULjdzNuHK4Pkl\n"
    "isgx1FFjWvDogx8QrmiyzY32QaxrkaaVElkFXr0CgYEAui+5BA4xjFTAIbYjcOTN\n"
    "0Y2tVZC6GxompmnVarAGvVb2glSDvJxBV5d7cJS6hda7b7G90xql0g+mYVCbiUvF\n"
    "6PcJxBddxueU4krYUDOVVmsF4TaESv6sL+2FxJNg6cdjEz46paqP+FOOqqoCZqAD\n"
    "HoYhrMHWE4F72yOrr8xmnf8=\n"
    "-----END PRIVATE KEY-----\n";

typedef struct {
    CmKey *key;
    CmCert *cert;
} Recipient;

static Recipient recipients[2];

/* The certificate a corpus envelope is addressed to: issuer name and
 * serial are what CMS matches a recipient by. */
static CmCert *
recipient_cert(CmKey *key, const char *cn, guint64 serial)
{
    CmCertSpec spec = {0};
    CmCert *cert;

    spec.profile = CM_CERT_ENCRYPTION;
    spec.subject_cn = cn;
    spec.serial = serial;
    spec.not_before = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    spec.not_after = spec.not_before + 3650 * CM_USEC_PER_DAY;
    spec.subject_key = key;
    cert = cm_cert_issue(&spec, NULL);
    if (cert == NULL)
        abort();
    return cert;
}

static gpointer
fuzz_cms_init(gpointer unused)
{
    (void)unused;
    recipients[0].key = cm_key_private_from_pem(EC_KEY_PEM, strlen(EC_KEY_PEM), NULL);
    recipients[1].key = cm_key_private_from_pem(RSA_KEY_PEM, strlen(RSA_KEY_PEM), NULL);
    if (recipients[0].key == NULL || recipients[1].key == NULL)
        abort();
    recipients[0].cert = recipient_cert(recipients[0].key, "cmlab fuzz recipient (EC)", 1);
    recipients[1].cert = recipient_cert(recipients[1].key, "cmlab fuzz recipient (RSA)", 2);
    return NULL;
}

static void
fuzz_decrypt(const Recipient *r, const uint8_t *data, size_t size)
{
    GError *error = NULL;
    CmCipher cipher = (CmCipher)-1;
    GBytes *plain = cm_cms_decrypt(r->cert, r->key, data, size, MAX_PLAIN, &cipher, &error);

    if (plain == NULL) {
        if (error == NULL || error->domain != CM_PROTO_ERROR)
            abort();
        g_error_free(error);
        return;
    }
    if (error != NULL || g_bytes_get_size(plain) > MAX_PLAIN ||
        (cipher != CM_CIPHER_AES256_GCM && cipher != CM_CIPHER_AES256_CBC &&
         cipher != CM_CIPHER_3DES_CBC))
        abort();
    if (cipher == CM_CIPHER_AES256_GCM) {
        GBytes *again = cm_cms_decrypt(r->cert, r->key, data, size, MAX_PLAIN, NULL, NULL);
        if (again == NULL || !g_bytes_equal(plain, again))
            abort();
        g_bytes_unref(again);
    }
    g_bytes_unref(plain);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GOnce once = G_ONCE_INIT;

    g_once(&once, fuzz_cms_init, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(recipients); i++)
        fuzz_decrypt(&recipients[i], data, size);
    return 0;
}
