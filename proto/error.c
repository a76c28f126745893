/* error.c - the CM_PROTO_ERROR domain and OpenSSL error conversion. */
#include "internal.h"

#include <openssl/err.h>

G_DEFINE_QUARK(cm-proto-error-quark, cm_proto_error)

void
cm_openssl_clear(void)
{
    ERR_clear_error();
}

void
cm_set_openssl_error(GError **error, CmProtoError code, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256];

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof reason);
    else
        g_strlcpy(reason, "no detail from OpenSSL", sizeof reason);
    ERR_clear_error();
    g_set_error(error, CM_PROTO_ERROR, code, "%s: %s", what, reason);
}
