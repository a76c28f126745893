/* roles.c - the in-memory lab for role-pair tests. */
#include "roles.h"

#include <string.h>

TestLab *
test_lab_new(const CmSiteSettings *settings, guint n_mps)
{
    TestLab *lab = g_new0(TestLab, 1);
    GError *error = NULL;
    CmSiteConfig config = {.site_code = "PS1",
                           .db_path = ":memory:",
                           .db_mode = CM_STORE_MEMORY,
                           .top_level = TRUE,
                           .forest = "corp.example",
                           .master_key = lab->master_key,
                           .settings = settings};

    memset(lab->master_key, 0x5a, sizeof lab->master_key);
    lab->now = CM_TEST_NOW;
    lab->site = cm_site_open(&config, lab->now, &error);
    cm_assert_no_error(error);
    ck_assert_uint_le(n_mps, G_N_ELEMENTS(lab->mps));
    for (guint i = 0; i < n_mps; i++) {
        g_autofree char *name = g_strdup_printf("mp%u.corp.example", i + 1);
        CmKey *key = NULL;
        CmCert *tls = NULL;
        ck_assert(cm_site_add_mp(lab->site, name, FALSE, lab->now, &lab->mp_info[i],
                                 &lab->mp_certs[i], &tls, &key, &error));
        cm_assert_no_error(error);
        cm_key_unref(key);
        cm_cert_unref(tls);
    }
    lab->n_mps = n_mps;
    for (guint i = 0; i < n_mps; i++) {
        g_autoptr(json_t) info = cm_site_siteinfo_json(lab->site);
        g_autoptr(json_t) list = cm_site_mplist_json(lab->site);
        CmMpConfig mc = {.name = lab->mp_info[i].name,
                         .role_id = lab->mp_info[i].role_id,
                         .mp_cert = lab->mp_certs[i],
                         .siteinfo = info,
                         .mplist = list};
        lab->mps[i] = cm_mp_new(&mc, &error);
        cm_assert_no_error(error);
    }
    return lab;
}

void
test_lab_free(TestLab *lab)
{
    if (lab == NULL)
        return;
    for (guint i = 0; i < lab->n_mps; i++) {
        cm_mp_free(lab->mps[i]);
        cm_cert_unref(lab->mp_certs[i]);
    }
    cm_site_free(lab->site);
    g_free(lab);
}

void
test_lab_refresh_mps(TestLab *lab)
{
    g_autoptr(json_t) info = cm_site_siteinfo_json(lab->site);
    g_autoptr(json_t) list = cm_site_mplist_json(lab->site);

    for (guint i = 0; i < lab->n_mps; i++)
        ck_assert(cm_mp_update_site(lab->mps[i], info, list, NULL));
}

void
test_lab_deliver(TestLab *lab, guint mp, const CmRequest *req, CmResponse *resp)
{
    ck_assert_uint_lt(mp, lab->n_mps);
    if (cm_mp_handle(lab->mps[mp], req, lab->now, resp) == CM_MP_FORWARD) {
        cm_site_handle(lab->site, req, lab->now, resp);
        cm_mp_forwarded(lab->mps[mp], req, resp, lab->now);
    }
}

/* ------------------------------------------------------------ client */

TestClient *
test_client_new(guint64 seed, const char *domain)
{
    TestClient *c = g_new0(TestClient, 1);
    CmRng rng;

    cm_rng_init_seeded(&rng, seed, 1);
    cm_id_smsid_new(&rng, c->smsid);
    cm_id_hwid_new(&rng, c->hwid);
    c->transport = CM_TRANSPORT_HTTPS;
    c->hash = CM_HASH_SHA256;
    c->sign = TRUE;
    g_strlcpy(c->domain, domain ? domain : "", sizeof c->domain);
    test_client_rekey(c, CM_TEST_NOW);
    return c;
}

void
test_client_free(TestClient *c)
{
    if (c == NULL)
        return;
    cm_key_unref(c->key);
    cm_cert_unref(c->cert);
    g_free(c);
}

void
test_client_rekey(TestClient *c, CmTime now)
{
    GError *error = NULL;
    static guint64 serial = 1000;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_SELF_SIGNED,
                       .subject_cn = c->smsid,
                       .serial = ++serial,
                       .not_before = now - CM_USEC_PER_HOUR,
                       .not_after = now + 365 * CM_USEC_PER_DAY};

    cm_key_unref(c->key);
    cm_cert_unref(c->cert);
    c->key = cm_key_generate(CM_KEY_EC_P256, &error);
    cm_assert_no_error(error);
    spec.subject_key = c->key;
    c->cert = cm_cert_issue(&spec, &error);
    cm_assert_no_error(error);
}

void
test_client_send(TestLab *lab, TestClient *c, CmEndpoint ep, json_t *body, CmResponse *resp)
{
    g_autofree char *bytes = cm_json_dump(body);
    CmRequest req = {.ep = ep, .transport = c->transport, .peer = c->peer};

    g_strlcpy(req.smsid, c->smsid, sizeof req.smsid);
    req.body = (const guint8 *)bytes;
    req.body_len = strlen(bytes);
    if (c->sign)
        ck_assert(cm_msg_sign(&req, c->key, c->hash, NULL));
    test_lab_deliver(lab, 0, &req, resp);
}

void
test_client_register(TestLab *lab, TestClient *c, CmResponse *resp)
{
    g_autoptr(GBytes) der = cm_cert_to_der(c->cert);
    g_autofree char *b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
    g_autoptr(json_t) body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "smsid", c->smsid,
                                       "hwid", c->hwid, "name", "PC", "domain", c->domain,
                                       "site_code", "PS1", "cert", b64, "ksp", "tpm2");
    test_client_send(lab, c, CM_EP_REGISTER, body, resp);
}

json_t *
test_response_json(const CmResponse *resp)
{
    json_t *obj;

    ck_assert_msg(resp->status == 200, "expected 200, got %d %s: %s", resp->status,
                  cm_reason_name(resp->reason), resp->message ? resp->message : "");
    ck_assert_ptr_nonnull(resp->body);
    obj = cm_json_parse(g_bytes_get_data(resp->body, NULL), g_bytes_get_size(resp->body),
                        1 << 20, NULL);
    ck_assert_ptr_nonnull(obj);
    return obj;
}

