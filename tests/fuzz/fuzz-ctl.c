/* fuzz-ctl.c - certificate trust list JSON over any input.  Properties:
 *  - a refusal always carries a CM_PROTO_ERROR;
 *  - an accepted CTL serializes to JSON that parses back to a CTL that
 *    serializes to the very same bytes, with the same count and "any". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    CmCtl *ctl = cm_ctl_from_json((const char *)data, size, &error);
    CmCtl *again;
    char *json, *json2;

    if (ctl == NULL) {
        if (error == NULL || error->domain != CM_PROTO_ERROR)
            abort();
        g_error_free(error);
        return 0;
    }
    if (error != NULL)
        abort();
    json = cm_ctl_to_json(ctl);
    again = cm_ctl_from_json(json, strlen(json), &error);
    if (again == NULL)
        abort();
    json2 = cm_ctl_to_json(again);
    if (strcmp(json, json2) != 0 || cm_ctl_count(again) != cm_ctl_count(ctl) ||
        cm_ctl_is_any(again) != cm_ctl_is_any(ctl))
        abort();
    g_free(json);
    g_free(json2);
    cm_ctl_free(again);
    cm_ctl_free(ctl);
    return 0;
}
