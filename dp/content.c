/* content.c - packages, their manifests and content hash, the client's
 * check of a download against its signed policy (REQ DP-04), and the
 * prestaged content file (REQ DP-03). */
#include "internal.h"

#include <string.h>

G_DEFINE_QUARK(cm-dp-error-quark, cm_dp_error)

struct CmDpManifest {
    char id[CM_DP_ID_MAX + 1];
    GArray *entries; /* CmDpEntry, sorted by name */
    guint64 size;
};

struct CmDpPackage {
    gint refs;
    CmDpManifest *manifest;
    GBytes *manifest_bytes;
    GHashTable *files; /* name -> GBytes */
    guint8 hash[32];
};

gboolean
dp_name_check(const char *s, size_t max, const char *what, GError **error)
{
    size_t len = s ? strnlen(s, max + 1) : 0;

    if (len == 0 || len > max || s[0] == '.')
        goto bad;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isalnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            goto bad;
    return TRUE;
bad:
    g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                "%s must be 1 to %zu letters, digits, '.', '_' or '-', not starting with '.'",
                what, max);
    return FALSE;
}

/* ------------------------------------------------------------ manifests */

static CmDpManifest *
manifest_alloc(void)
{
    CmDpManifest *m = g_new0(CmDpManifest, 1);
    m->entries = g_array_new(FALSE, TRUE, sizeof(CmDpEntry));
    return m;
}

void
cm_dp_manifest_free(CmDpManifest *m)
{
    if (m == NULL)
        return;
    g_array_unref(m->entries);
    g_free(m);
}

const char *
cm_dp_manifest_id(const CmDpManifest *m)
{
    return m->id;
}

size_t
cm_dp_manifest_count(const CmDpManifest *m)
{
    return m->entries->len;
}

const CmDpEntry *
cm_dp_manifest_entry(const CmDpManifest *m, size_t i)
{
    return i < m->entries->len ? &g_array_index(m->entries, CmDpEntry, i) : NULL;
}

guint64
cm_dp_manifest_size(const CmDpManifest *m)
{
    return m->size;
}

const CmDpEntry *
cm_dp_manifest_find(const CmDpManifest *m, const char *name)
{
    guint lo = 0, hi = m->entries->len;

    while (name != NULL && lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const CmDpEntry *e = &g_array_index(m->entries, CmDpEntry, mid);
        int c = strcmp(e->name, name);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static json_t *
manifest_json(const CmDpManifest *m)
{
    json_t *files = json_array();

    for (guint i = 0; i < m->entries->len; i++) {
        const CmDpEntry *e = &g_array_index(m->entries, CmDpEntry, i);
        g_autofree char *hex = cm_enc_hex(e->hash, 32);
        g_autofree char *low = g_ascii_strdown(hex, -1);
        json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "hash", low, "name", e->name,
                                               "size", (json_int_t)e->size));
    }
    return json_pack("{s:o, s:s}", "files", files, "id", m->id);
}

CmDpManifest *
cm_dp_manifest_parse(const guint8 *data, size_t len, GError **error)
{
    g_autoptr(json_t) obj = NULL;
    g_autoptr(CmDpManifest) m = manifest_alloc();
    g_autofree char *again = NULL;
    const json_t *files;
    const char *id;
    GError *e = NULL;
    size_t i;
    json_t *v;

    obj = cm_json_parse(data, len, CM_DP_MANIFEST_MAX, &e);
    if (obj == NULL || (id = cm_json_str(obj, "id", CM_DP_ID_MAX, &e)) == NULL ||
        !dp_name_check(id, CM_DP_ID_MAX, "the content ID", &e) ||
        (files = cm_json_array(obj, "files", CM_DP_MAX_FILES, &e)) == NULL)
        goto fail;
    g_strlcpy(m->id, id, sizeof m->id);
    if (json_array_size(files) == 0) {
        g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID, "a package has at least one file");
        goto fail;
    }
    json_array_foreach(files, i, v)
    {
        CmDpEntry ent;
        const char *name, *hash;
        gint64 size;
        g_autoptr(GBytes) raw = NULL;

        memset(&ent, 0, sizeof ent);
        if (!json_is_object(v) || (name = cm_json_str(v, "name", CM_DP_NAME_MAX, &e)) == NULL ||
            !dp_name_check(name, CM_DP_NAME_MAX, "a file name", &e) ||
            (hash = cm_json_str(v, "hash", 64, &e)) == NULL ||
            !cm_json_int(v, "size", 0, CM_DP_FILE_MAX, &size, &e)) {
            if (e == NULL)
                g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID, "not an object");
            g_prefix_error(&e, "file %zu: ", i);
            goto fail;
        }
        if (strlen(hash) != 64 || (raw = cm_enc_hex_decode(hash, 32, NULL)) == NULL ||
            g_bytes_get_size(raw) != 32) {
            g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                        "file %zu: hash must be a SHA-256 in hex", i);
            goto fail;
        }
        if (i > 0 && strcmp(g_array_index(m->entries, CmDpEntry, i - 1).name, name) >= 0) {
            g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                        "file %zu: files must be sorted by name, each name once", i);
            goto fail;
        }
        g_strlcpy(ent.name, name, sizeof ent.name);
        memcpy(ent.hash, g_bytes_get_data(raw, NULL), 32);
        ent.size = (guint64)size;
        m->size += ent.size;
        g_array_append_val(m->entries, ent);
    }
    /* Only the canonical spelling: compact, sorted keys, lower-case hex,
     * nothing else.  Then the manifest bytes and the package are one. */
    {
        g_autoptr(json_t) canon = manifest_json(m);
        again = cm_json_dump(canon);
    }
    if (strlen(again) != len || memcmp(again, data, len) != 0) {
        g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "not in canonical form (compact JSON, sorted keys, lower-case hex, only "
                    "files and id)");
        goto fail;
    }
    return g_steal_pointer(&m);
fail:
    g_propagate_prefixed_error(error, e, "content manifest: ");
    return NULL;
}

/* ------------------------------------------------------------- packages */

static int
file_cmp(const void *a, const void *b)
{
    return strcmp(((const CmDpFile *)a)->name, ((const CmDpFile *)b)->name);
}

CmDpPackage *
cm_dp_package_new(const char *id, const CmDpFile *files, size_t n, GError **error)
{
    g_autofree CmDpFile *sorted = NULL;
    g_autoptr(json_t) obj = NULL;
    CmDpPackage *p;
    char *text;

    if (!dp_name_check(id, CM_DP_ID_MAX, "the content ID", error))
        return NULL;
    if (n == 0 || n > CM_DP_MAX_FILES || files == NULL) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "a package has 1 to %d files", CM_DP_MAX_FILES);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!dp_name_check(files[i].name, CM_DP_NAME_MAX, "a file name", error))
            return NULL;
        if (files[i].data == NULL) {
            g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID, "file %s has no data",
                        files[i].name);
            return NULL;
        }
    }
    sorted = g_memdup2(files, n * sizeof *files);
    qsort(sorted, n, sizeof *sorted, file_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                        "file %s appears twice in package %s", sorted[i].name, id);
            return NULL;
        }
    }
    p = g_new0(CmDpPackage, 1);
    p->refs = 1;
    p->manifest = manifest_alloc();
    g_strlcpy(p->manifest->id, id, sizeof p->manifest->id);
    p->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                     (GDestroyNotify)g_bytes_unref);
    for (size_t i = 0; i < n; i++) {
        CmDpEntry ent;
        gsize len;
        const void *data = g_bytes_get_data(sorted[i].data, &len);

        memset(&ent, 0, sizeof ent);
        g_strlcpy(ent.name, sorted[i].name, sizeof ent.name);
        ent.size = len;
        cm_hash(CM_HASH_SHA256, data, len, ent.hash);
        p->manifest->size += len;
        g_array_append_val(p->manifest->entries, ent);
        g_hash_table_insert(p->files, g_strdup(sorted[i].name), g_bytes_ref(sorted[i].data));
    }
    obj = manifest_json(p->manifest);
    text = cm_json_dump(obj);
    p->manifest_bytes = g_bytes_new_take(text, strlen(text));
    cm_hash(CM_HASH_SHA256, text, strlen(text), p->hash);
    return p;
}

CmDpPackage *
cm_dp_package_ref(CmDpPackage *p)
{
    g_atomic_int_inc(&p->refs);
    return p;
}

void
cm_dp_package_unref(CmDpPackage *p)
{
    if (p == NULL || !g_atomic_int_dec_and_test(&p->refs))
        return;
    cm_dp_manifest_free(p->manifest);
    g_bytes_unref(p->manifest_bytes);
    g_hash_table_unref(p->files);
    g_free(p);
}

const char *
cm_dp_package_id(const CmDpPackage *p)
{
    return p->manifest->id;
}

const guint8 *
cm_dp_package_hash(const CmDpPackage *p)
{
    return p->hash;
}

char *
cm_dp_package_hash_hex(const CmDpPackage *p)
{
    return cm_enc_hex(p->hash, 32);
}

guint64
cm_dp_package_size(const CmDpPackage *p)
{
    return p->manifest->size;
}

GBytes *
cm_dp_package_manifest(const CmDpPackage *p)
{
    return p->manifest_bytes;
}

GBytes *
cm_dp_package_file(const CmDpPackage *p, const char *name)
{
    return name ? g_hash_table_lookup(p->files, name) : NULL;
}

const CmDpManifest *
cm_dp_package_manifest_parsed(const CmDpPackage *p)
{
    return p->manifest;
}

/* ------------------------------------------------- the client's check */

CmDpManifest *
cm_dp_manifest_verify(const json_t *policy, const guint8 *manifest, size_t len, GError **error)
{
    const json_t *content;
    const char *id, *hash;
    gint64 size;
    g_autoptr(GBytes) want = NULL;
    guint8 got[32];
    g_autoptr(CmDpManifest) m = NULL;

    if (policy == NULL || (content = cm_json_object(policy, "content", error)) == NULL ||
        (id = cm_json_str(content, "id", CM_DP_ID_MAX, error)) == NULL ||
        (hash = cm_json_str(content, "hash", 64, error)) == NULL ||
        !cm_json_int(content, "size", 0, G_MAXINT64, &size, error)) {
        g_prefix_error(error, "policy content: ");
        return NULL;
    }
    if (strlen(hash) != 64 || (want = cm_enc_hex_decode(hash, 32, NULL)) == NULL ||
        g_bytes_get_size(want) != 32) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                    "policy content: hash is not a SHA-256 in hex");
        return NULL;
    }
    /* The hash first: nothing of an unverified manifest is read. */
    cm_hash(CM_HASH_SHA256, manifest, len, got);
    if (memcmp(got, g_bytes_get_data(want, NULL), 32) != 0) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                    "content %s: the manifest does not hash to the content hash of the signed "
                    "policy; discard the download",
                    id);
        return NULL;
    }
    m = cm_dp_manifest_parse(manifest, len, error);
    if (m == NULL)
        return NULL;
    if (strcmp(m->id, id) != 0 || m->size != (guint64)size) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                    "content %s: the manifest is of %s, %" G_GUINT64_FORMAT
                    " bytes; the policy says %" G_GINT64_FORMAT " bytes",
                    id, m->id, m->size, size);
        return NULL;
    }
    return g_steal_pointer(&m);
}

gboolean
cm_dp_file_verify(const CmDpManifest *m, const char *name, const guint8 *data, size_t len,
                  GError **error)
{
    const CmDpEntry *e = cm_dp_manifest_find(m, name);
    guint8 got[32];

    if (e == NULL) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                    "content %s has no file %s", m->id, name ? name : "(none)");
        return FALSE;
    }
    if (e->size != len) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                    "content %s: %s is %zu bytes, the manifest says %" G_GUINT64_FORMAT, m->id,
                    name, len, e->size);
        return FALSE;
    }
    cm_hash(CM_HASH_SHA256, data, len, got);
    if (memcmp(got, e->hash, 32) != 0) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                    "content %s: %s does not hash to what the manifest says; discard it", m->id,
                    name);
        return FALSE;
    }
    return TRUE;
}

gboolean
cm_dp_content_verify(const json_t *policy, const guint8 *manifest, size_t manifest_len,
                     const CmDpFile *files, size_t n_files, GError **error)
{
    g_autoptr(CmDpManifest) m = cm_dp_manifest_verify(policy, manifest, manifest_len, error);
    g_autoptr(GHashTable) seen = NULL;

    if (m == NULL)
        return FALSE;
    seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i < n_files; i++) {
        gsize len = 0;
        const guint8 *data = files[i].data ? g_bytes_get_data(files[i].data, &len) : NULL;
        if (files[i].name == NULL || !g_hash_table_add(seen, (gpointer)files[i].name)) {
            g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                        "content %s: file %s downloaded twice", m->id,
                        files[i].name ? files[i].name : "(none)");
            return FALSE;
        }
        if (!cm_dp_file_verify(m, files[i].name, data, len, error))
            return FALSE;
    }
    if (g_hash_table_size(seen) != m->entries->len) {
        g_set_error(error, CM_DP_ERROR, CM_DP_ERROR_MISMATCH,
                    "content %s: %u of its %u files downloaded", m->id,
                    g_hash_table_size(seen), m->entries->len);
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------ prestaged content */

GBytes *
cm_dp_prestage_file_new(const CmDpPackage *p)
{
    g_autoptr(json_t) obj = NULL;
    json_t *files = json_array();
    char *text;

    for (guint i = 0; i < p->manifest->entries->len; i++) {
        const CmDpEntry *e = &g_array_index(p->manifest->entries, CmDpEntry, i);
        GBytes *b = g_hash_table_lookup(p->files, e->name);
        gsize len;
        const guint8 *data = g_bytes_get_data(b, &len);
        g_autofree char *b64 = cm_enc_b64(data, len);
        json_array_append_new(files, json_pack("{s:s, s:s}", "data", b64, "name", e->name));
    }
    obj = json_pack("{s:o, s:s}", "files", files, "id", p->manifest->id);
    text = cm_json_dump(obj);
    return g_bytes_new_take(text, strlen(text));
}

CmDpPackage *
cm_dp_prestage_file_parse(const guint8 *data, size_t len, GError **error)
{
    g_autoptr(json_t) obj = NULL;
    g_autoptr(GPtrArray) blobs = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_autofree CmDpFile *files = NULL;
    const json_t *arr;
    const char *id;
    GError *e = NULL;
    CmDpPackage *p;
    size_t i;
    json_t *v;

    obj = cm_json_parse(data, len, CM_DP_PRESTAGE_MAX, &e);
    if (obj == NULL || (id = cm_json_str(obj, "id", CM_DP_ID_MAX, &e)) == NULL ||
        (arr = cm_json_array(obj, "files", CM_DP_MAX_FILES, &e)) == NULL)
        goto fail;
    if (json_object_size(obj) != 2) {
        g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID, "unknown fields; expected files, id");
        goto fail;
    }
    files = g_new0(CmDpFile, json_array_size(arr) + 1);
    json_array_foreach(arr, i, v)
    {
        GBytes *b;
        if (!json_is_object(v) || json_object_size(v) != 2 ||
            (files[i].name = cm_json_str(v, "name", CM_DP_NAME_MAX, &e)) == NULL ||
            (b = cm_json_b64(v, "data", CM_DP_PRESTAGE_MAX, &e)) == NULL) {
            if (e == NULL)
                g_set_error(&e, CM_DP_ERROR, CM_DP_ERROR_INVALID,
                            "expected an object of data and name");
            g_prefix_error(&e, "file %zu: ", i);
            goto fail;
        }
        g_ptr_array_add(blobs, b);
        files[i].data = b;
    }
    p = cm_dp_package_new(id, files, json_array_size(arr), &e);
    if (p == NULL)
        goto fail;
    return p;
fail:
    g_propagate_prefixed_error(error, e, "prestaged content file: ");
    return NULL;
}
