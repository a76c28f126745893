/* fuzz-cmg.c - the parsers of libcmcmg over any input.  The first byte
 * picks the parser ('0' + n), the rest is its input:
 *   0  URL mappings JSON: a refusal carries an error; an accepted set
 *      serializes to JSON that parses back to the very same bytes;
 *   1  the vault's plaintext JSON: a refusal carries an error; an accepted
 *      vault seals and opens back to a vault that seals to the same keys;
 *   2  a connection point's hello/check body at a gateway: never accepted
 *      (no connection point is registered), always a refusal with a reason;
 *   3  a client request path ("path?query") at a gateway: an
 *      unauthenticated request is always refused untrusted, an authenticated
 *      one is forwarded only to a published endpoint within its bound. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmcmg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW (G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC)

static CmCmg *gw;
static CmCert *client;

static CmCert *
issue(CmCertProfile p, const char *cn, CmKey *k, CmKey *ik, CmCert *ic)
{
    CmCertSpec s = {.profile = p, .subject_cn = cn, .serial = 1, .not_before = NOW - CM_USEC_PER_DAY,
                    .not_after = NOW + CM_USEC_PER_DAY, .subject_key = k, .issuer_key = ik,
                    .issuer_cert = ic};
    CmCert *c = cm_cert_issue(&s, NULL);

    if (c == NULL)
        abort();
    return c;
}

static void
setup(void)
{
    CmKey *k = cm_key_generate(CM_KEY_EC_P256, NULL);
    CmCert *site = issue(CM_CERT_SITE_SIGNING, "PS1", k, NULL, NULL);
    CmCert *root = issue(CM_CERT_ROOT_CA, "Root", k, NULL, NULL);
    const CmCert *roots[] = {root};
    CmCmgSite s = {.site_code = "PS1", .signing_cert = site};
    CmCmgConfig c = {.name = "cmg.contoso.com", .sites = &s, .n_sites = 1, .roots = roots,
                     .n_roots = 1};
    CmCmgMappings *m = cm_cmg_mappings_new("cmg.contoso.com", NULL);
    CmCmgCpInfo cp = {.connection_id = "5A1C2D3E-0000-4000-8000-000000000001",
                      .site_code = "PS1", .cert = root};
    CmResponse r = {0};
    const char *hello = "{\"connection_id\":\"5A1C2D3E-0000-4000-8000-000000000001\","
                        "\"site_code\":\"PS1\"}";

    gw = cm_cmg_new(&c, NULL);
    if (gw == NULL || m == NULL || !cm_cmg_mappings_add_mp(m, "PS1", 1, "mp1.corp.example", NULL) ||
        !cm_cmg_add_connection_point(gw, &cp, NULL) ||
        !cm_cmg_cp_hello(gw, root, (const guint8 *)hello, strlen(hello), NOW, &r))
        abort();
    cm_response_clear(&r);
    cm_cmg_set_mappings(gw, m);
    cm_cmg_mappings_unref(m);
    client = issue(CM_CERT_CLIENT_AUTH, "pc1", k, k, root);
    cm_cert_unref(site);
    cm_cert_unref(root);
    cm_key_unref(k);
}

static void
mappings(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    CmCmgMappings *m = cm_cmg_mappings_from_json((const char *)data, size, &error);
    CmCmgMappings *again;
    char *json, *json2;

    if (m == NULL) {
        if (error == NULL)
            abort();
        g_error_free(error);
        return;
    }
    json = cm_cmg_mappings_to_json(m);
    again = cm_cmg_mappings_from_json(json, strlen(json), NULL);
    if (again == NULL)
        abort();
    json2 = cm_cmg_mappings_to_json(again);
    if (strcmp(json, json2) != 0 || cm_cmg_mappings_count(m) != cm_cmg_mappings_count(again))
        abort();
    g_ptr_array_unref(cm_cmg_mappings_mp_entries(m));
    g_free(json);
    g_free(json2);
    cm_cmg_mappings_unref(again);
    cm_cmg_mappings_unref(m);
}

static void
vault(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    static const guint8 master[32] = {1};
    CmCmgVault *v = cm_cmg_vault_from_json((const char *)data, size, &error);
    CmCmgVault *back;
    GBytes *sealed;

    if (v == NULL) {
        if (error == NULL)
            abort();
        g_error_free(error);
        return;
    }
    sealed = cm_cmg_vault_seal(v, master, NULL);
    if (sealed == NULL)
        abort();
    back = cm_cmg_vault_open(master, g_bytes_get_data(sealed, NULL), g_bytes_get_size(sealed),
                             NULL);
    if (back == NULL ||
        memcmp(cm_cmg_vault_storage_key(v, NULL), cm_cmg_vault_storage_key(back, NULL), 32) != 0)
        abort();
    g_bytes_unref(sealed);
    cm_cmg_vault_free(back);
    cm_cmg_vault_free(v);
}

static void
cp_message(const uint8_t *data, size_t size)
{
    CmResponse r = {0};

    /* The registered certificate is the root; this one is not it. */
    if (cm_cmg_cp_hello(gw, client, data, size, NOW, &r) || r.status < 400)
        abort();
    cm_response_clear(&r);
    if (cm_cmg_cp_check(gw, client, data, size, NOW, &r) || r.status < 400)
        abort();
    cm_response_clear(&r);
}

static void
request(const uint8_t *data, size_t size)
{
    char *text = g_strndup((const char *)data, size);
    char *q = strchr(text, '?');
    CmCmgRequest req = {.path = text, .tls = CM_TLS_1_2, .content_length = size};
    CmCmgVerdict v = {0};

    if (q != NULL)
        *q++ = '\0';
    req.query = q;
    if (cm_cmg_handle(gw, &req, NOW, &v) != CM_CMG_REFUSE || v.resp.reason != CM_REASON_UNTRUSTED)
        abort();
    req.client_cert = client;
    if (cm_cmg_handle(gw, &req, NOW, &v) == CM_CMG_FORWARD) {
        if (v.ep == CM_EP_NONE || v.ep == CM_EP_NOTIFY || size > cm_ep_body_max(CM_EP_INVENTORY))
            abort();
    } else if (v.resp.status < 400) {
        abort();
    }
    cm_cmg_verdict_clear(&v);
    g_free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (gw == NULL)
        setup();
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        mappings(data + 1, size - 1);
        break;
    case 1:
        vault(data + 1, size - 1);
        break;
    case 2:
        cp_message(data + 1, size - 1);
        break;
    default:
        request(data + 1, size - 1);
    }
    return 0;
}
