/* fuzz-hierarchy - what sites of a hierarchy send each other
 * (site/hierarchy.c): replication batches, child-site requests and grants,
 * MP certificate requests and answers.
 *
 * The first byte chooses the parser; the rest is the JSON.  A batch goes in
 * twice: as it came (stopped at the signature, mostly) and re-signed with
 * the parent's exchange key after setting its addresses, so that the item
 * checks behind the signature are reached.  Whatever comes in is an answer
 * or an error, and nothing crashes or leaks. */
#include <stdint.h>
#include <string.h>

#include "cmsite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW (G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC)

static CmSite *cas, *p1;
static CmKey *mp_key;

static CmSite *
site_new(const char *code, gboolean top)
{
    static const guint8 master[32] = {5};
    CmSiteConfig config = {.site_code = code, .db_path = ":memory:", .db_mode = CM_STORE_MEMORY,
                           .top_level = top, .forest = "corp.example", .master_key = master};
    CmSite *site = cm_site_open(&config, NOW, NULL);

    g_assert(site != NULL);
    return site;
}

static void
setup(void)
{
    json_t *req, *grant;

    cas = site_new("CAS", TRUE);
    p1 = site_new("P01", FALSE);
    req = cm_site_hierarchy_join_request(p1, CM_SITE_KIND_PRIMARY, "ps1.corp.example", NULL);
    grant = cm_site_hierarchy_add_child(cas, req, "CORP\\install", CM_SITE_BUILTIN_ADMIN, NOW,
                                        NULL);
    g_assert(grant != NULL && cm_site_hierarchy_join(p1, grant, NOW, NULL));
    json_decref(req);
    json_decref(grant);
    mp_key = cm_key_generate(CM_KEY_EC_P256, NULL);
}

static void
resigned(json_t *obj)
{
    GBytes *sig;
    char *bytes, *b64;
    CmReplApplied r;
    GError *error = NULL;

    json_object_set_new(obj, "from", json_string("CAS"));
    json_object_set_new(obj, "to", json_string("P01"));
    json_object_del(obj, "sig");
    bytes = cm_json_dump(obj);
    sig = cm_sig_sign(cm_site_trk(cas), CM_HASH_SHA256, bytes, strlen(bytes), NULL);
    g_free(bytes);
    b64 = cm_enc_b64(g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
    json_object_set_new(obj, "sig", json_string(b64));
    bytes = cm_json_dump(obj);
    if (!cm_site_repl_apply(p1, bytes, strlen(bytes), NOW, &r, &error))
        g_assert(error != NULL && error->domain == CM_SITE_ERROR);
    g_clear_error(&error);
    g_free(bytes);
    g_free(b64);
    g_bytes_unref(sig);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *obj, *out = NULL;
    CmReplApplied r;
    GError *error = NULL;

    if (cas == NULL)
        setup();
    if (size < 1)
        return 0;
    if (data[0] % 5 == 0) {
        if (!cm_site_repl_apply(p1, data + 1, size - 1, NOW, &r, &error))
            g_assert(error != NULL);
        g_clear_error(&error);
    }
    obj = cm_json_parse(data + 1, size - 1, CM_REPL_BATCH_MAX, NULL);
    if (obj == NULL)
        return 0;
    switch (data[0] % 5) {
    case 0:
        resigned(obj);
        break;
    case 1:
        out = cm_site_hierarchy_add_child(cas, obj, "CORP\\install", CM_SITE_BUILTIN_ADMIN, NOW,
                                          &error);
        break;
    case 2:
        if (!cm_site_hierarchy_join(p1, obj, NOW, &error))
            g_assert(error != NULL);
        break;
    case 3:
        out = cm_site_hierarchy_sign_mp(cas, obj, NOW, &error);
        break;
    default:
        if (!cm_site_hierarchy_add_mp(p1, obj, mp_key, FALSE, NOW, NULL, NULL, NULL, &error))
            g_assert(error != NULL);
        break;
    }
    g_assert(out != NULL || error != NULL || data[0] % 5 == 0 || data[0] % 5 == 2 ||
             data[0] % 5 == 4);
    g_clear_error(&error);
    json_decref(out);
    json_decref(obj);
    return 0;
}
