/* ctl.c - the certificate trust list: which roots may issue client
 * certificates (REQ CMG-04).  A broad CTL (any trusted root) lets any
 * certificate from any trusted root register, which the seeds warn about. */
#include "internal.h"

#include <string.h>

struct CmCtl {
    gboolean any;
    GHashTable *roots; /* hex thumbprint -> itself */
};

#define CTL_MAX_ROOTS 1024
#define CTL_MAX_JSON  (CTL_MAX_ROOTS * 80 + 64)

static CmCtl *
ctl_alloc(gboolean any)
{
    CmCtl *ctl = g_new0(CmCtl, 1);
    ctl->any = any;
    ctl->roots = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return ctl;
}

CmCtl *
cm_ctl_new(void)
{
    return ctl_alloc(FALSE);
}

CmCtl *
cm_ctl_new_any(void)
{
    return ctl_alloc(TRUE);
}

void
cm_ctl_free(CmCtl *ctl)
{
    if (ctl == NULL)
        return;
    g_hash_table_unref(ctl->roots);
    g_free(ctl);
}

void
cm_ctl_add(CmCtl *ctl, const CmCert *root)
{
    char *hex = cm_cert_thumbprint_hex(root);
    g_hash_table_add(ctl->roots, hex);
}

gboolean
cm_ctl_allows(const CmCtl *ctl, const CmCert *root)
{
    g_autofree char *hex = NULL;

    if (ctl->any)
        return TRUE;
    hex = cm_cert_thumbprint_hex(root);
    return g_hash_table_contains(ctl->roots, hex);
}

gboolean
cm_ctl_is_any(const CmCtl *ctl)
{
    return ctl->any;
}

size_t
cm_ctl_count(const CmCtl *ctl)
{
    return g_hash_table_size(ctl->roots);
}


char *
cm_ctl_to_json(const CmCtl *ctl)
{
    g_autoptr(json_t) obj = json_object();
    json_t *arr = json_array();
    GList *keys = g_hash_table_get_keys(ctl->roots);

    /* Sorted, so that the same CTL always serializes the same way. */
    keys = g_list_sort(keys, (GCompareFunc)strcmp);
    for (GList *l = keys; l != NULL; l = l->next)
        json_array_append_new(arr, json_string(l->data));
    g_list_free(keys);
    json_object_set_new(obj, "any", json_boolean(ctl->any));
    json_object_set_new(obj, "roots", arr);
    return cm_json_dump(obj);
}

CmCtl *
cm_ctl_from_json(const char *json, size_t len, GError **error)
{
    g_autoptr(json_t) obj = NULL;
    const json_t *roots;
    gboolean any;
    CmCtl *ctl = NULL;
    size_t i;
    json_t *v;

    obj = cm_json_parse(json, len, CTL_MAX_JSON, error);
    if (obj == NULL || !cm_json_bool(obj, "any", &any, error))
        goto fail;
    roots = cm_json_array(obj, "roots", CTL_MAX_ROOTS, error);
    if (roots == NULL)
        goto fail;
    ctl = ctl_alloc(any);
    json_array_foreach(roots, i, v)
    {
        const char *hex = json_string_value(v);
        g_autoptr(GBytes) raw = NULL;
        if (hex == NULL || strlen(hex) != 64 ||
            (raw = cm_enc_hex_decode(hex, 32, NULL)) == NULL) {
            g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                        "CTL root %zu is not a SHA-256 thumbprint (64 hex digits)", i);
            goto fail;
        }
        g_hash_table_add(ctl->roots, g_ascii_strup(hex, -1));
    }
    return ctl;
fail:
    g_prefix_error(error, "certificate trust list: ");
    cm_ctl_free(ctl);
    return NULL;
}
