/* fuzz-dp.c - the parsers of libcmdp over any input.  The first byte picks
 * the parser ('0' + n), the rest is its input:
 *   0  a content manifest: a refusal carries an error; an accepted one is
 *      canonical, so checking it against a policy naming its own hash,
 *      ID and size succeeds;
 *   1  a prestaged content file: a refusal carries an error; an accepted
 *      package writes a prestaged file that parses to the same content hash;
 *   2  a request path at an anonymous HTTP distribution point holding one
 *      package: 200 only for its manifest or one of its files, with exactly
 *      those bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static CmDp *dp;
static CmDpPackage *pkg;

static void
setup(void)
{
    GBytes *a = g_bytes_new_static("MZ setup", 8);
    CmDpFile files[] = {{"setup.exe", a}};
    CmDpConfig c = {.name = "dp1.corp.example", .site_code = "PS1", .allow_anonymous = TRUE};

    pkg = cm_dp_package_new("KB1", files, 1, NULL);
    dp = cm_dp_new(&c, NULL);
    if (pkg == NULL || dp == NULL)
        abort();
    cm_dp_content_add(dp, pkg, CM_DP_SOURCE_TRANSFER);
    g_bytes_unref(a);
}

static void
manifest(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    CmDpManifest *m = cm_dp_manifest_parse(data, size, &error);
    CmDpManifest *again;
    guint8 digest[32];
    char *hex;
    json_t *policy;

    if (m == NULL) {
        if (error == NULL)
            abort();
        g_error_free(error);
        return;
    }
    cm_hash(CM_HASH_SHA256, data, size, digest);
    hex = cm_enc_hex(digest, 32);
    policy = json_pack("{s:{s:s, s:s, s:I}}", "content", "id", cm_dp_manifest_id(m), "hash", hex,
                       "size", (json_int_t)cm_dp_manifest_size(m));
    again = cm_dp_manifest_verify(policy, data, size, NULL);
    if (again == NULL || cm_dp_manifest_count(again) != cm_dp_manifest_count(m))
        abort();
    for (size_t i = 0; i < cm_dp_manifest_count(m); i++)
        if (cm_dp_manifest_find(m, cm_dp_manifest_entry(m, i)->name) != cm_dp_manifest_entry(m, i))
            abort();
    json_decref(policy);
    g_free(hex);
    cm_dp_manifest_free(again);
    cm_dp_manifest_free(m);
}

static void
prestage(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    CmDpPackage *p = cm_dp_prestage_file_parse(data, size, &error);
    CmDpPackage *back;
    GBytes *file;

    if (p == NULL) {
        if (error == NULL)
            abort();
        g_error_free(error);
        return;
    }
    file = cm_dp_prestage_file_new(p);
    back = cm_dp_prestage_file_parse(g_bytes_get_data(file, NULL), g_bytes_get_size(file), NULL);
    if (back == NULL || memcmp(cm_dp_package_hash(p), cm_dp_package_hash(back), 32) != 0)
        abort();
    g_bytes_unref(file);
    cm_dp_package_unref(back);
    cm_dp_package_unref(p);
}

static void
request(const uint8_t *data, size_t size)
{
    char *path = g_strndup((const char *)data, size);
    CmDpRequest req = {.path = path, .transport = CM_TRANSPORT_HTTP};
    CmResponse r = {0};

    cm_dp_handle(dp, &req, 0, &r);
    if (r.status == 200) {
        GBytes *m = cm_dp_package_manifest(pkg);
        GBytes *f = cm_dp_package_file(pkg, "setup.exe");
        if (r.body == NULL || !(g_bytes_equal(r.body, m) || g_bytes_equal(r.body, f)))
            abort();
    } else if (r.status < 400 || r.message == NULL) {
        abort();
    }
    cm_response_clear(&r);
    g_free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dp == NULL)
        setup();
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        manifest(data + 1, size - 1);
        break;
    case 1:
        prestage(data + 1, size - 1);
        break;
    default:
        request(data + 1, size - 1);
    }
    return 0;
}
