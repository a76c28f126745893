/* fuzz-sighdr - the CCM-Signature header parser. */
#include <stdint.h>
#include <string.h>

#include "cmproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = g_strndup((const char *)data, size); /* headers are NUL-free text */
    CmRequest req = {0};
    GError *error = NULL;

    if (cm_msg_parse_signature(value, &req, &error)) {
        g_assert(req.signed_ && req.sig_len > 0 && req.sig_len <= CM_SIG_MAX);
        g_free(cm_msg_format_signature(req.sig_hash, req.sig, req.sig_len));
    } else {
        g_assert(error != NULL && !req.signed_);
        g_error_free(error);
    }
    g_free(value);
    return 0;
}
