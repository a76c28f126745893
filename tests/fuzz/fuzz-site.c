/* fuzz-site - every request body the site and its MP parse.
 *
 * The input is one byte choosing the endpoint and the body.  A site is
 * created once with one approved client; each body goes through the MP and
 * the site twice: signed by that client (so the site's body parsers are
 * reached) and unsigned.  Whatever comes in, the answer is a status with a
 * reason, and nothing crashes or leaks. */
#include <stdint.h>
#include <string.h>

#include "cmmp.h"
#include "cmsite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW (G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC)

static CmSite *site;
static CmMp *mp;
static CmKey *client_key;
static char smsid[CM_ID_SMSID_LEN + 1];

static void
deliver(CmRequest *req)
{
    CmResponse resp = {0};

    if (cm_mp_handle(mp, req, NOW, &resp) == CM_MP_FORWARD) {
        cm_site_handle(site, req, NOW, &resp);
        cm_mp_forwarded(mp, req, &resp, NOW);
    }
    g_assert(resp.status >= 200 && resp.status < 600);
    g_assert(resp.status == 200 || resp.message != NULL);
    cm_response_clear(&resp);
    cm_mp_channel_close(mp, smsid);
}

static void
setup(void)
{
    static guint8 master[32] = {7};
    CmSiteSettings s;
    CmSiteConfig config = {.site_code = "PS1", .db_path = ":memory:", .db_mode = CM_STORE_MEMORY,
                           .top_level = TRUE, .forest = "corp.example", .master_key = master,
                           .settings = &s};
    CmMpInfo info;
    CmCert *mp_cert = NULL, *tls = NULL, *cert;
    CmKey *mp_key = NULL;
    json_t *siteinfo, *list, *body;
    CmRng rng;
    char hwid[CM_ID_HWID_LEN + 1], *bytes, *b64;
    GBytes *der;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_SELF_SIGNED, .serial = 1,
                       .not_before = NOW - CM_USEC_PER_DAY, .not_after = NOW + CM_USEC_PER_DAY};
    CmRequest req = {.ep = CM_EP_REGISTER, .transport = CM_TRANSPORT_HTTPS};

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    s.communication = CM_COMM_HTTP_OR_HTTPS;
    site = cm_site_open(&config, NOW, NULL);
    g_assert(site != NULL);
    g_assert(cm_site_add_mp(site, "mp1.corp.example", FALSE, NOW, &info, &mp_cert, &tls, &mp_key,
                            NULL));
    siteinfo = cm_site_siteinfo_json(site);
    list = cm_site_mplist_json(site);
    mp = cm_mp_new(&(CmMpConfig){.name = info.name, .role_id = info.role_id, .mp_cert = mp_cert,
                                 .siteinfo = siteinfo, .mplist = list},
                   NULL);
    g_assert(mp != NULL);
    json_decref(siteinfo);
    json_decref(list);
    cm_cert_unref(mp_cert);
    cm_cert_unref(tls);
    cm_key_unref(mp_key);

    cm_rng_init_seeded(&rng, 1, 1);
    cm_id_smsid_new(&rng, smsid);
    cm_id_hwid_new(&rng, hwid);
    client_key = cm_key_generate(CM_KEY_EC_P256, NULL);
    spec.subject_cn = smsid;
    spec.subject_key = client_key;
    cert = cm_cert_issue(&spec, NULL);
    der = cm_cert_to_der(cert);
    b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
    body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "smsid", smsid, "hwid", hwid, "name",
                     "PC", "domain", "", "site_code", "PS1", "cert", b64, "ksp", "tpm2");
    bytes = cm_json_dump(body);
    g_strlcpy(req.smsid, smsid, sizeof req.smsid);
    req.body = (const guint8 *)bytes;
    req.body_len = strlen(bytes);
    g_assert(cm_msg_sign(&req, client_key, CM_HASH_SHA256, NULL));
    deliver(&req);
    g_free(bytes);
    g_free(b64);
    json_decref(body);
    g_bytes_unref(der);
    cm_cert_unref(cert);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CmRequest req = {.transport = CM_TRANSPORT_HTTPS};

    if (site == NULL)
        setup();
    if (size < 1)
        return 0;
    req.ep = (CmEndpoint)(1 + data[0] % (CM_EP__COUNT - 1));
    req.body = data + 1;
    req.body_len = size - 1;
    g_strlcpy(req.smsid, smsid, sizeof req.smsid);
    deliver(&req);
    if (cm_msg_sign(&req, client_key, CM_HASH_SHA256, NULL))
        deliver(&req);
    return 0;
}
