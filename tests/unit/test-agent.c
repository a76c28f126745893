/* test-agent.c - the client agent state machine against hand-made MPs.
 *
 * A fake site (its trusted root key, MP certificates signed with it, the
 * site server signing and encryption certificates) and a rogue one (its own
 * root key, MP certificate and signing key) are made once with libcmproto.
 * FakeMp answers the agent's requests as docs/protocol.md says, checks each
 * signed request against the certificate the agent registered, and can be
 * told to misbehave: refuse an endpoint with a reason, drop it (transport
 * failure), tamper with policy, serve another site's trust material. */
#include "testutil.h"

#include <string.h>

#include "cmagent.h"
/* White box, for what no fake MP can provoke in reasonable time: more
 * queued states than one message carries, a status text over its bound. */
#include "../../agent/internal.h"

#define SITE "PS1"
#define MP1 "mp1.corp.example"
#define MP2 "mp2.corp.example"
#define ROGUE "rogue.example"

static const guint8 SECRET[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* ------------------------------------------------------------ the sites */

typedef struct {
    CmKey *trk; /* the site's trusted root key */
    char *trk_hex;
    CmKey *mp_key;
    CmCert *mp1_cert; /* signed with trk */
    CmCert *mp2_cert;
    CmKey *sign_key; /* site server signing certificate */
    CmCert *sign_cert;
    CmKey *enc_key; /* site encryption certificate */
    CmCert *enc_cert;
    CmKey *rogue_trk;
    char *rogue_trk_hex;
    CmCert *rogue_cert;     /* CN rogue.example, signed with rogue_trk */
    CmCert *rogue_mp1_cert; /* CN mp1.corp.example, signed with rogue_trk */
    CmKey *rogue_sign_key;
    CmCert *rogue_sign_cert;
    CmKey *ca_key; /* enterprise PKI */
    CmCert *ca_cert;
    CmKey *pki_key;
    CmCert *pki_cert; /* client authentication, issued by ca */
} Site;

static Site S;

static CmKey *
gen_key(void)
{
    GError *err = NULL;
    CmKey *k = cm_key_generate(CM_KEY_EC_P256, &err);
    g_assert_no_error(err);
    return k;
}

static CmCert *
issue(CmCertProfile profile, const char *cn, const CmKey *subject, const CmKey *issuer_key,
      const CmCert *issuer_cert, const char *issuer_cn)
{
    static guint64 serial = 100;
    GError *err = NULL;
    CmCertSpec spec = {0};
    CmCert *c;

    spec.profile = profile;
    spec.subject_cn = cn;
    spec.serial = ++serial;
    spec.not_before = CM_TEST_NOW - CM_USEC_PER_DAY;
    spec.not_after = CM_TEST_NOW + 3 * 365 * CM_USEC_PER_DAY;
    spec.subject_key = subject;
    spec.issuer_key = issuer_key;
    spec.issuer_cert = issuer_cert;
    spec.issuer_cn = issuer_cn;
    spec.hash = CM_HASH_SHA256;
    c = cm_cert_issue(&spec, &err);
    g_assert_no_error(err);
    return c;
}

static void
site_setup(void)
{
    S.trk = gen_key();
    S.trk_hex = cm_key_public_hex(S.trk);
    S.mp_key = gen_key();
    S.mp1_cert = issue(CM_CERT_MP, MP1, S.mp_key, S.trk, NULL, "Trusted Root Key " SITE);
    S.mp2_cert = issue(CM_CERT_MP, MP2, S.mp_key, S.trk, NULL, "Trusted Root Key " SITE);
    S.sign_key = gen_key();
    S.sign_cert = issue(CM_CERT_SITE_SIGNING, "Site Server Signing Certificate", S.sign_key, NULL,
                        NULL, NULL);
    S.enc_key = gen_key();
    S.enc_cert = issue(CM_CERT_ENCRYPTION, "Site Encryption " SITE, S.enc_key, NULL, NULL, NULL);
    S.rogue_trk = gen_key();
    S.rogue_trk_hex = cm_key_public_hex(S.rogue_trk);
    S.rogue_cert = issue(CM_CERT_MP, ROGUE, S.mp_key, S.rogue_trk, NULL, "Trusted Root Key " SITE);
    S.rogue_mp1_cert =
        issue(CM_CERT_MP, MP1, S.mp_key, S.rogue_trk, NULL, "Trusted Root Key " SITE);
    S.rogue_sign_key = gen_key();
    S.rogue_sign_cert = issue(CM_CERT_SITE_SIGNING, "Site Server Signing Certificate",
                              S.rogue_sign_key, NULL, NULL, NULL);
    S.ca_key = gen_key();
    S.ca_cert = issue(CM_CERT_ROOT_CA, "Corp Root CA", S.ca_key, NULL, NULL, NULL);
    S.pki_key = gen_key();
    S.pki_cert =
        issue(CM_CERT_CLIENT_AUTH, "PC001.corp.example", S.pki_key, S.ca_key, S.ca_cert, NULL);
}

static void
site_teardown(void)
{
    g_clear_pointer(&S.trk, cm_key_unref);
    g_clear_pointer(&S.trk_hex, g_free);
    g_clear_pointer(&S.mp_key, cm_key_unref);
    g_clear_pointer(&S.mp1_cert, cm_cert_unref);
    g_clear_pointer(&S.mp2_cert, cm_cert_unref);
    g_clear_pointer(&S.sign_key, cm_key_unref);
    g_clear_pointer(&S.sign_cert, cm_cert_unref);
    g_clear_pointer(&S.enc_key, cm_key_unref);
    g_clear_pointer(&S.enc_cert, cm_cert_unref);
    g_clear_pointer(&S.rogue_trk, cm_key_unref);
    g_clear_pointer(&S.rogue_trk_hex, g_free);
    g_clear_pointer(&S.rogue_cert, cm_cert_unref);
    g_clear_pointer(&S.rogue_mp1_cert, cm_cert_unref);
    g_clear_pointer(&S.rogue_sign_key, cm_key_unref);
    g_clear_pointer(&S.rogue_sign_cert, cm_cert_unref);
    g_clear_pointer(&S.ca_key, cm_key_unref);
    g_clear_pointer(&S.ca_cert, cm_cert_unref);
    g_clear_pointer(&S.pki_key, cm_key_unref);
    g_clear_pointer(&S.pki_cert, cm_cert_unref);
}

static gboolean
same_cert(const CmCert *a, const CmCert *b)
{
    return a != NULL && b != NULL && memcmp(cm_cert_thumbprint(a), cm_cert_thumbprint(b), 32) == 0;
}

/* ------------------------------------------------------------ a fake MP */

typedef struct {
    const char *id;
    gint64 version;
    const char *settings; /* JSON object text, or NULL */
    const char *site;     /* NULL: SITE */
    gboolean tamper;      /* the MP changes the bytes after the site signed them */
    gboolean bad_hash;    /* the assignment announces the hash of other bytes */
    const char *deploy;   /* JSON object text merged into the policy (required, deadline, ...) */
} FakePolicy;

typedef struct {
    char name[64];
    const CmCert *cert;       /* what mpcert serves */
    const char *trk_hex;      /* what siteinfo offers */
    const CmCert *sign_cert;  /* what siteinfo offers */
    const CmKey *sign_key;    /* what policies are signed with */
    gboolean encrypt;         /* reported in siteinfo settings */
    gboolean no_enc_cert;     /* siteinfo offers no encryption certificate */
    gboolean require_encrypt; /* plain inventory refused (forbidden) */
    const char *approval;     /* "approved" or "pending" */
    const char *mps_json;     /* location "mps"; NULL: this MP over HTTP */
    const char *token;        /* the client token of an approved registration answer */
    FakePolicy policies[4];
    int n_policies;
    gboolean down;
    /* misbehaviour: refuse (or drop) fail_ep fail_times times */
    CmEndpoint fail_ep;
    CmReason fail_reason;
    gboolean fail_drop;
    int fail_times;
    CmTime fail_retry_after;
    const char *fail_body; /* JSON body of the refusal, or NULL */
    const char *package;   /* clientpackage answer (JSON text); NULL: not-found */
    /* the notification channel: keep-alives on an open channel are answered
     * without the site, as cmmp does (REQ REG-05) */
    gboolean blocked; /* what the site says of the client: opening refused */
    gboolean channel; /* a channel is open for the client */
    /* what it saw */
    CmCert *registered;
    int counts[CM_EP__COUNT];
    int bad_sigs;
    int keepalives;    /* notify answered on an open channel */
    json_t *inventory; /* last inventory body */
    json_t *discovery;
    json_t *states;         /* every state entry received, in order */
    json_t *status;         /* every status message body received, in order */
    json_t *checks;         /* the decrypted checks of the last client status */
    gboolean status_signed; /* a status message came with a signature */
} FakeMp;

static void
fake_init(FakeMp *mp, const char *name, const CmCert *cert)
{
    memset(mp, 0, sizeof *mp);
    g_strlcpy(mp->name, name, sizeof mp->name);
    mp->cert = cert;
    mp->trk_hex = S.trk_hex;
    mp->sign_cert = S.sign_cert;
    mp->sign_key = S.sign_key;
    mp->approval = "approved";
}

static void
fake_rogue(FakeMp *mp, const char *name, const CmCert *cert)
{
    fake_init(mp, name, cert);
    mp->trk_hex = S.rogue_trk_hex;
    mp->sign_cert = S.rogue_sign_cert;
    mp->sign_key = S.rogue_sign_key;
    mp->policies[0] = (FakePolicy){
        .id = "RG100001", .version = 1, .settings = "{\"powershell_execution_policy\":\"bypass\"}"};
    mp->n_policies = 1;
}

static void
fake_clear(FakeMp *mp)
{
    g_clear_pointer(&mp->registered, cm_cert_unref);
    g_clear_pointer(&mp->inventory, json_decref);
    g_clear_pointer(&mp->discovery, json_decref);
    g_clear_pointer(&mp->states, json_decref);
    g_clear_pointer(&mp->status, json_decref);
    g_clear_pointer(&mp->checks, json_decref);
}

static char *
b64_cert(const CmCert *c)
{
    g_autoptr(GBytes) der = cm_cert_to_der(c);
    return cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
}

static void
ok(CmResponse *resp, json_t *obj)
{
    cm_response_ok(resp, obj);
    json_decref(obj);
}

/* The policy bytes as the site signs them, and what the MP serves. */
static void
fake_policy(const FakeMp *mp, const FakePolicy *p, GBytes **bytes_out, char **sig_out,
            char **hash_out)
{
    g_autoptr(json_t) pol = json_object();
    g_autoptr(GBytes) sig = NULL;
    g_autofree char *text = NULL;
    g_autofree char *sig_b64 = NULL;
    GError *err = NULL;
    guint8 digest[32];

    json_object_set_new(pol, "policy_id", json_string(p->id));
    json_object_set_new(pol, "version", json_integer(p->version));
    json_object_set_new(pol, "site_code", json_string(p->site ? p->site : SITE));
    json_object_set_new(pol, "collection_id", json_integer(2));
    json_object_set_new(pol, "deployment", json_string("Baseline"));
    json_object_set_new(pol, "issued", json_integer(1767225600));
    if (p->settings != NULL)
        json_object_set_new(pol, "settings", json_loads(p->settings, 0, NULL));
    if (p->deploy != NULL) {
        json_t *extra = json_loads(p->deploy, 0, NULL);
        ck_assert_ptr_nonnull(extra);
        json_object_update(pol, extra);
        json_decref(extra);
    }
    text = cm_json_dump(pol);
    sig = cm_sig_sign(mp->sign_key, CM_HASH_SHA256, text, strlen(text), &err);
    g_assert_no_error(err);
    sig_b64 = cm_enc_b64(g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
    *sig_out = g_strdup_printf("sha256 %s", sig_b64);
    if (p->tamper) {
        /* The MP grants itself a setting after the site signed the policy,
         * and announces the hash of what it serves. */
        json_object_set_new(pol, "settings",
                            json_pack("{s:s}", "powershell_execution_policy", "bypass"));
        g_free(text);
        text = cm_json_dump(pol);
    }
    cm_hash(CM_HASH_SHA256, text, strlen(text), digest);
    if (p->bad_hash)
        digest[0] ^= 1;
    *hash_out = cm_enc_hex(digest, sizeof digest);
    *bytes_out = g_bytes_new(text, strlen(text));
}

static const FakePolicy *
find_policy(const FakeMp *mp, const char *id)
{
    for (int i = 0; i < mp->n_policies; i++)
        if (strcmp(mp->policies[i].id, id) == 0)
            return &mp->policies[i];
    return NULL;
}

/* Answers send; FALSE for a transport failure. */
static gboolean
fake_respond(FakeMp *mp, const CmAgentSend *s, CmResponse *resp)
{
    g_autoptr(json_t) req = NULL;
    gsize len;
    const char *body = g_bytes_get_data(s->body, &len);

    if (mp->down)
        return FALSE;
    mp->counts[s->ep]++;
    req = cm_json_parse(body, len, 1024 * 1024, NULL);
    ck_assert_msg(req != NULL, "the agent sent a body that is not a JSON object");

    if (s->ep == mp->fail_ep && mp->fail_times > 0) {
        mp->fail_times--;
        if (mp->fail_drop)
            return FALSE;
        cm_response_refuse(resp, mp->fail_reason, "refused by the test");
        resp->retry_after = mp->fail_retry_after;
        if (mp->fail_body != NULL) {
            /* As an HTTP driver might hand it over: status and body only. */
            resp->reason = CM_REASON_OK;
            resp->body = g_bytes_new(mp->fail_body, strlen(mp->fail_body));
        }
        return TRUE;
    }

    if (s->ep == CM_EP_STATUS) {
        /* REQ MSG-03: no authentication; the MP only checks the form. */
        mp->status_signed |= s->signed_ || s->sig_len > 0 || s->smsid[0] != '\0';
        if (mp->status == NULL)
            mp->status = json_array();
        json_array_append(mp->status, req);
        ok(resp, json_pack("{s:b}", "accepted", 1));
        return TRUE;
    }
    if (s->ep == CM_EP_REGISTER) {
        g_autoptr(GBytes) der = cm_json_b64(req, "cert", CM_CERT_MAX_DER, NULL);
        ck_assert(der != NULL);
        g_clear_pointer(&mp->registered, cm_cert_unref);
        mp->registered = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), NULL);
        ck_assert(mp->registered != NULL);
    }
    if (cm_ep_is_anonymous(s->ep)) {
        ck_assert(!s->signed_);
    } else if (!s->signed_ || mp->registered == NULL ||
               !cm_sig_verify(cm_cert_public_key(mp->registered), s->sig_hash, body, len, s->sig,
                              s->sig_len, NULL) ||
               strcmp(s->smsid, cm_cert_subject_cn(mp->registered)) != 0) {
        mp->bad_sigs++;
        cm_response_refuse(resp, CM_REASON_BAD_SIGNATURE, "signature does not verify");
        return TRUE;
    }

    switch (s->ep) {
    case CM_EP_LOCATION: {
        json_t *o = json_object();
        json_object_set_new(o, "site_code", json_string(SITE));
        if (mp->mps_json != NULL)
            json_object_set_new(o, "mps", json_loads(mp->mps_json, 0, NULL));
        else
            json_object_set_new(o, "mps",
                                json_pack("[{s:s,s:I,s:b,s:b,s:b,s:b}]", "name", mp->name,
                                          "role_id", (json_int_t)72057594037927937, "http", 1,
                                          "https", 0, "ehttp", 0, "internet", 0));
        ok(resp, o);
        break;
    }
    case CM_EP_MPCERT: {
        g_autofree char *b64 = b64_cert(mp->cert);
        /* Through a CMG the real MP answers with its own name. */
        ok(resp, json_pack("{s:s,s:s}", "name",
                           strstr(mp->name, "/CCM_Proxy_") ? cm_cert_subject_cn(mp->cert) : mp->name,
                           "cert", b64));
        break;
    }
    case CM_EP_SITEINFO: {
        g_autofree char *sc = b64_cert(mp->sign_cert);
        g_autofree char *ec = b64_cert(S.enc_cert);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:b,s:b,s:b,s:s}}", "site_code", SITE, "trk",
                              mp->trk_hex, "signing_cert", sc, "encryption_cert", ec, "settings",
                              "communication", "http-or-https", "require_signing", 1,
                              "require_sha256", 1, "encrypt", mp->encrypt, "approval", "all");
        if (mp->no_enc_cert)
            json_object_del(o, "encryption_cert");
        ok(resp, o);
        break;
    }
    case CM_EP_REGISTER:
    case CM_EP_REGISTER_STATUS:
    {
        json_t *o = json_pack("{s:s,s:s}", "smsid", s->smsid, "approval", mp->approval);
        if (mp->token != NULL && strcmp(mp->approval, "approved") == 0)
            json_object_set_new(o, "token", json_string(mp->token));
        ok(resp, o);
        break;
    }
    case CM_EP_POLICY_ASSIGNMENTS: {
        json_t *list = json_array();
        for (int i = 0; i < mp->n_policies; i++) {
            g_autoptr(GBytes) bytes = NULL;
            g_autofree char *sig = NULL, *hash = NULL;
            fake_policy(mp, &mp->policies[i], &bytes, &sig, &hash);
            json_array_append_new(list, json_pack("{s:s,s:I,s:s}", "policy_id", mp->policies[i].id,
                                                  "version", (json_int_t)mp->policies[i].version,
                                                  "hash", hash));
        }
        ok(resp, json_pack("{s:o}", "assignments", list));
        break;
    }
    case CM_EP_POLICY_BODY: {
        const FakePolicy *p = find_policy(mp, json_string_value(json_object_get(req, "policy_id")));
        g_autoptr(GBytes) bytes = NULL;
        g_autofree char *sig = NULL, *hash = NULL, *b64 = NULL;
        if (p == NULL) {
            cm_response_refuse(resp, CM_REASON_NOT_FOUND, "no such policy");
            break;
        }
        fake_policy(mp, p, &bytes, &sig, &hash);
        b64 = cm_enc_b64(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
        ok(resp, json_pack("{s:s,s:I,s:s,s:s}", "policy_id", p->id, "version",
                           (json_int_t)p->version, "policy", b64, "signature", sig));
        break;
    }
    case CM_EP_CLIENT_PACKAGE:
        if (mp->package == NULL)
            cm_response_refuse(resp, CM_REASON_NOT_FOUND, "no client package published");
        else
            ok(resp, json_loads(mp->package, 0, NULL));
        break;
    case CM_EP_INVENTORY:
    case CM_EP_DISCOVERY:
        if (mp->require_encrypt && json_object_get(req, "encrypted") == NULL) {
            cm_response_refuse(resp, CM_REASON_FORBIDDEN, "encryption required");
            break;
        }
        if (s->ep == CM_EP_INVENTORY) {
            g_clear_pointer(&mp->inventory, json_decref);
            mp->inventory = json_incref(req);
        } else {
            g_clear_pointer(&mp->discovery, json_decref);
            mp->discovery = json_incref(req);
        }
        ok(resp, json_pack("{s:b}", "accepted", 1));
        break;
    case CM_EP_STATE: {
        const json_t *list = json_object_get(req, "states");
        ck_assert(json_is_array(list));
        ck_assert_int_le(json_array_size(list), 100);
        if (mp->states == NULL)
            mp->states = json_array();
        json_array_extend(mp->states, (json_t *)list);
        ok(resp, json_pack("{s:b}", "accepted", 1));
        break;
    }
    case CM_EP_CLIENT_STATUS: {
        /* Encrypted only (REQ DATA-02): the site decrypts with its key. */
        g_autoptr(GBytes) env = cm_json_b64(req, "encrypted", CM_CMS_MAX_DER, NULL);
        g_autoptr(GBytes) plain = NULL;
        g_autoptr(json_t) inner = NULL;
        if (env == NULL) {
            cm_response_refuse(resp, CM_REASON_FORBIDDEN, "client status must be encrypted");
            break;
        }
        plain = cm_cms_decrypt(S.enc_cert, S.enc_key, g_bytes_get_data(env, NULL),
                               g_bytes_get_size(env), 64 * 1024, NULL, NULL);
        ck_assert_ptr_nonnull(plain);
        inner =
            cm_json_parse(g_bytes_get_data(plain, NULL), g_bytes_get_size(plain), 64 * 1024, NULL);
        ck_assert_ptr_nonnull(inner);
        g_clear_pointer(&mp->checks, json_decref);
        mp->checks = json_incref(json_object_get(inner, "checks"));
        ok(resp, json_pack("{s:b}", "accepted", 1));
        break;
    }
    case CM_EP_NOTIFY:
        if (mp->channel) {
            mp->keepalives++; /* answered here, whatever the site thinks now */
        } else if (mp->blocked) {
            cm_response_refuse(resp, CM_REASON_BLOCKED, "client is blocked");
            break;
        } else {
            mp->channel = TRUE;
        }
        ok(resp, json_pack("{s:b}", "open", 1));
        break;
    default:
        cm_response_refuse(resp, CM_REASON_UNKNOWN_ENDPOINT, "not served by the fake");
        break;
    }
    return TRUE;
}

/* ------------------------------------------------------------ a driver */

typedef struct {
    CmAgent *agent;
    FakeMp *mps[4];
    int n_mps;
    CmTime now;
    CmTime wake_at;
    GQueue pending;  /* CmAgentSend*, owned */
    GPtrArray *sent; /* every send answered, in order (owned) */
    int events;
} Drv;

static void
send_free(CmAgentSend *s)
{
    g_clear_pointer(&s->body, g_bytes_unref);
    g_free(s);
}

static void
drv_init(Drv *d, CmAgent *agent)
{
    memset(d, 0, sizeof *d);
    d->agent = agent;
    d->now = CM_TEST_NOW;
    g_queue_init(&d->pending);
    d->sent = g_ptr_array_new_with_free_func((GDestroyNotify)send_free);
}

static void
drv_add(Drv *d, FakeMp *mp)
{
    d->mps[d->n_mps++] = mp;
}

static void
drv_clear(Drv *d)
{
    g_queue_clear_full(&d->pending, (GDestroyNotify)send_free);
    g_clear_pointer(&d->sent, g_ptr_array_unref);
    cm_agent_free(d->agent);
    for (int i = 0; i < d->n_mps; i++)
        fake_clear(d->mps[i]);
}

/* Takes the actions of one agent call. */
static void
drv_take(Drv *d, CmAgentActions *a)
{
    while (a->sends->len > 0)
        g_queue_push_tail(&d->pending, g_ptr_array_steal_index(a->sends, 0));
    d->wake_at = a->wake_at;
    cm_agent_actions_clear(a);
}

static void
drv_start(Drv *d)
{
    CmAgentActions a;
    cm_agent_actions_init(&a);
    cm_agent_start(d->agent, d->now, &a);
    drv_take(d, &a);
}

static FakeMp *
drv_find(Drv *d, const char *name)
{
    for (int i = 0; i < d->n_mps; i++)
        if (g_ascii_strcasecmp(d->mps[i]->name, name) == 0)
            return d->mps[i];
    return NULL;
}

/* Answers one pending send with resp (NULL: transport failure). */
static void
drv_answer(Drv *d, const CmResponse *resp)
{
    CmAgentSend *s = g_queue_pop_head(&d->pending);
    CmAgentActions a;

    ck_assert(s != NULL);
    cm_agent_actions_init(&a);
    cm_agent_on_response(d->agent, s->id, resp, d->now, &a);
    g_ptr_array_add(d->sent, s);
    drv_take(d, &a);
}

static void
drv_timer(Drv *d)
{
    CmAgentActions a;

    ck_assert(d->wake_at != 0);
    d->now = MAX(d->now, d->wake_at);
    cm_agent_actions_init(&a);
    cm_agent_on_timer(d->agent, d->now, &a);
    drv_take(d, &a);
}

/* One event: the next send answered by its fake MP, else the timer.  FALSE
 * when the agent wants nothing. */
static gboolean
drv_step(Drv *d)
{
    CmAgentSend *s = g_queue_peek_head(&d->pending);

    d->events++;
    if (s != NULL) {
        FakeMp *mp = drv_find(d, s->mp);
        CmResponse resp = {0};
        gboolean answered = mp != NULL && fake_respond(mp, s, &resp);
        drv_answer(d, answered ? &resp : NULL);
        cm_response_clear(&resp);
        return TRUE;
    }
    if (d->wake_at == 0)
        return FALSE;
    drv_timer(d);
    return TRUE;
}

static gboolean
drv_idle(Drv *d)
{
    return g_queue_is_empty(&d->pending) && (d->wake_at == 0 || d->wake_at > d->now);
}

/* Runs until the agent is in state with nothing to do right now. */
static void
drv_run_to(Drv *d, CmAgentState state, int max_events)
{
    for (int i = 0; i < max_events; i++) {
        if (cm_agent_status(d->agent)->state == state && drv_idle(d))
            return;
        if (!drv_step(d))
            break;
    }
    ck_assert_msg(cm_agent_status(d->agent)->state == state && drv_idle(d),
                  "agent is %s, wanted %s (after %d events)",
                  cm_agent_state_name(cm_agent_status(d->agent)->state), cm_agent_state_name(state),
                  d->events);
}

/* Runs until the next send is for ep (not answered). */
static CmAgentSend *
drv_run_until_send(Drv *d, CmEndpoint ep, int max_events)
{
    for (int i = 0; i < max_events; i++) {
        CmAgentSend *s = g_queue_peek_head(&d->pending);
        if (s != NULL && s->ep == ep)
            return s;
        if (!drv_step(d))
            break;
    }
    ck_abort_msg("no %s request came", cm_ep_name(ep));
    return NULL;
}

/* The last answered send for ep, or NULL. */
static CmAgentSend *
drv_last_sent(Drv *d, CmEndpoint ep)
{
    for (guint i = d->sent->len; i > 0; i--) {
        CmAgentSend *s = g_ptr_array_index(d->sent, i - 1);
        if (s->ep == ep)
            return s;
    }
    return NULL;
}

static void
base_config(CmAgentConfig *c)
{
    cm_agent_config_default(c);
    c->mp = MP1;
    c->name = "PC001";
    c->domain = "corp.example";
    c->tpm_version = 2;
    c->device_secret = SECRET;
    /* The notification channel and client status run on timers of their
     * own; the tests of the other cycles time those cycles alone.  Their
     * own tests turn them on. */
    c->keepalive_interval = 0;
    c->client_status_interval = 0;
}

static CmAgent *
new_agent(const CmAgentConfig *c, guint64 seed)
{
    GError *err = NULL;
    CmRng rng;
    CmAgent *a;

    cm_rng_init_seeded(&rng, 7, seed);
    a = cm_agent_new(c, &rng, CM_TEST_NOW, &err);
    cm_assert_no_error(err);
    ck_assert(a != NULL);
    return a;
}

static json_t *
send_json(const CmAgentSend *s)
{
    gsize len;
    const void *data = g_bytes_get_data(s->body, &len);
    json_t *o = cm_json_parse(data, len, 1024 * 1024, NULL);
    ck_assert(o != NULL);
    return o;
}

/* ------------------------------------------------------------ installation */

/* REQ: TRUST-05, CLI-02 */
START_TEST(test_install_key_needs_site_code)
{
    CmAgentConfig c;
    GError *err = NULL;
    CmRng rng;
    CmAgent *a;
    g_autofree char *file = g_strdup_printf("  SMSPublicRootKey=%s\r\n", S.trk_hex);
    g_autofree char *lower = g_ascii_strdown(S.trk_hex, -1);

    cm_rng_init_seeded(&rng, 1, 1);

    base_config(&c);
    c.smspublicrootkey = S.trk_hex;
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    ck_assert(a == NULL);
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL));
    ck_assert_msg(strstr(err->message, "SMSSITECODE") != NULL, "%s", err->message);
    ck_assert_msg(strstr(err->message, "SMSPublicRootKey") != NULL, "%s", err->message);
    g_clear_error(&err);

    base_config(&c);
    c.smsrootkeypath = file;
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    ck_assert(a == NULL);
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL));
    ck_assert_msg(strstr(err->message, "SMSROOTKEYPATH") != NULL, "%s", err->message);
    g_clear_error(&err);

    /* With the site code, from the property and from the file. */
    c.smssitecode = "ps1";
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    cm_assert_no_error(err);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_PROPERTY);
    ck_assert_str_eq(cm_agent_trk_hex(a), S.trk_hex);
    cm_agent_free(a);

    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = lower;
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    cm_assert_no_error(err);
    ck_assert_str_eq(cm_agent_trk_hex(a), S.trk_hex); /* canonical form */
    cm_agent_free(a);

    /* Malformed key, malformed site code, two different keys. */
    c.smspublicrootkey = "3059301306072A8648CE3D0201";
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    ck_assert(a == NULL);
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL));
    g_clear_error(&err);

    c.smspublicrootkey = S.trk_hex;
    c.smssitecode = "PS12";
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    ck_assert(a == NULL);
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL));
    ck_assert_msg(strstr(err->message, "SMSSITECODE") != NULL, "%s", err->message);
    g_clear_error(&err);

    c.smssitecode = SITE;
    c.smsrootkeypath = S.rogue_trk_hex;
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    ck_assert(a == NULL);
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL));
    g_clear_error(&err);

    /* SMSSIGNCERT must be the (self-signed) site server signing cert. */
    base_config(&c);
    c.smssigncert = S.mp1_cert;
    a = cm_agent_new(&c, &rng, CM_TEST_NOW, &err);
    ck_assert(a == NULL);
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL));
    g_clear_error(&err);
}
END_TEST

/* REQ: TRUST-04, TRUST-06 */
START_TEST(test_trk_sources)
{
    CmAgentConfig c;
    CmAgent *a;
    const char *dir_mps[] = {MP2, NULL};
    CmDirectoryInfo dir = {SITE, NULL, NULL, dir_mps};

    /* Property. */
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    a = new_agent(&c, 1);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_PROPERTY);
    ck_assert_int_eq(cm_agent_signcert_source(a), CM_SOURCE_NONE);
    cm_agent_free(a);

    /* Client push carries the TRK and the signing certificate. */
    base_config(&c);
    c.method = CM_INSTALL_PUSH;
    c.push_trk_hex = S.trk_hex;
    c.push_signing_cert = S.sign_cert;
    a = new_agent(&c, 2);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_PUSH);
    ck_assert_str_eq(cm_agent_trk_hex(a), S.trk_hex);
    ck_assert_int_eq(cm_agent_signcert_source(a), CM_SOURCE_PUSH);
    cm_agent_free(a);

    /* Directory publishing. */
    dir.trk_hex = S.trk_hex;
    dir.signing_cert = S.sign_cert;
    base_config(&c);
    c.mp = NULL;
    c.directory = &dir;
    a = new_agent(&c, 3);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_DIRECTORY);
    ck_assert_int_eq(cm_agent_signcert_source(a), CM_SOURCE_DIRECTORY);
    cm_agent_free(a);

    /* ... but not another site's: the install names PS2. */
    c.smssitecode = "PS2";
    a = new_agent(&c, 4);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_NONE);
    ck_assert_ptr_null(cm_agent_trk_hex(a));
    cm_agent_free(a);

    /* RESETKEYINFORMATION: no TRK held unless this install gives one, and a
     * key given now replaces the old one (the operator compares the hex). */
    base_config(&c);
    c.resetkeyinformation = TRUE;
    a = new_agent(&c, 5);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_NONE);
    ck_assert_ptr_null(cm_agent_trk_hex(a));
    cm_agent_free(a);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.rogue_trk_hex;
    a = new_agent(&c, 6);
    ck_assert_int_eq(cm_agent_trk_source(a), CM_SOURCE_PROPERTY);
    ck_assert_str_eq(cm_agent_trk_hex(a), S.rogue_trk_hex);
    ck_assert_str_ne(cm_agent_trk_hex(a), S.trk_hex);
    cm_agent_free(a);

    /* Nothing: taken from the first MP (trust on first use). */
    {
        FakeMp mp1;
        Drv d;

        base_config(&c);
        fake_init(&mp1, MP1, S.mp1_cert);
        drv_init(&d, new_agent(&c, 7));
        drv_add(&d, &mp1);
        ck_assert_int_eq(cm_agent_trk_source(d.agent), CM_SOURCE_NONE);
        drv_start(&d);
        drv_run_to(&d, CM_AGENT_ACTIVE, 100);
        ck_assert_int_eq(cm_agent_trk_source(d.agent), CM_SOURCE_MP);
        ck_assert_str_eq(cm_agent_trk_hex(d.agent), S.trk_hex);
        ck_assert_int_eq(cm_agent_signcert_source(d.agent), CM_SOURCE_MP);
        ck_assert_int_eq(mp1.bad_sigs, 0);
        drv_clear(&d);
    }
}
END_TEST

/* REQ: TRUST-03 */
START_TEST(test_rogue_mp_refused_with_trk)
{
    CmAgentConfig c;
    FakeMp rogue, mp1;
    Drv d;
    const char *dns[] = {MP1, NULL};
    const CmAgentStatus *st;

    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.mp = ROGUE; /* the rogue MP is the first the client reaches */
    c.dns_mps = dns;
    fake_rogue(&rogue, ROGUE, S.rogue_cert);
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 11));
    drv_add(&d, &rogue);
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);

    st = cm_agent_status(d.agent);
    ck_assert_str_eq(st->mp, MP1);
    ck_assert_int_eq(st->mp_refused, 1);
    ck_assert_str_eq(cm_agent_trk_hex(d.agent), S.trk_hex);
    ck_assert_int_eq(cm_agent_trk_source(d.agent), CM_SOURCE_PROPERTY);
    /* The rogue saw no siteinfo request and nothing signed. */
    ck_assert_int_eq(rogue.counts[CM_EP_SITEINFO], 0);
    ck_assert_int_eq(rogue.counts[CM_EP_REGISTER], 0);
    ck_assert_int_eq(st->policies_accepted, 0);
    drv_clear(&d);

    /* A rogue MP that serves a genuine MP's (public) certificate under its
     * own name is refused too, and so is one whose certificate for the
     * right name is signed with another key. */
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.mp = ROGUE;
    c.dns_mps = dns;
    fake_rogue(&rogue, ROGUE, S.mp1_cert);
    fake_init(&mp1, MP1, S.rogue_mp1_cert);
    drv_init(&d, new_agent(&c, 12));
    drv_add(&d, &rogue);
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_FAILED, 100);
    st = cm_agent_status(d.agent);
    ck_assert_int_eq(st->mp_refused, 2);
    ck_assert_int_eq(rogue.counts[CM_EP_REGISTER] + mp1.counts[CM_EP_REGISTER], 0);
    /* It tries again later (backoff), not never. */
    ck_assert(d.wake_at > d.now);
    drv_clear(&d);
}
END_TEST

/* REQ: TRUST-04 */
START_TEST(test_tofu_takes_rogue_trk)
{
    CmAgentConfig c;
    FakeMp rogue, mp1;
    Drv d;
    const char *dns[] = {MP1, NULL};
    const CmAgentStatus *st;

    /* No TRK from anywhere, and the rogue MP answers first: the client
     * takes the rogue's key, signing certificate and policy. */
    base_config(&c);
    c.mp = ROGUE;
    c.dns_mps = dns;
    fake_rogue(&rogue, ROGUE, S.rogue_cert);
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 21));
    drv_add(&d, &rogue);
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    st = cm_agent_status(d.agent);
    ck_assert_str_eq(st->mp, ROGUE);
    ck_assert_int_eq(cm_agent_trk_source(d.agent), CM_SOURCE_MP);
    ck_assert_str_eq(cm_agent_trk_hex(d.agent), S.rogue_trk_hex);
    ck_assert_int_eq(cm_agent_signcert_source(d.agent), CM_SOURCE_MP);
    ck_assert_int_eq(st->policies_accepted, 1);
    ck_assert_str_eq(
        json_string_value(json_object_get(st->settings, "powershell_execution_policy")), "bypass");

    /* And it is locked in: when the rogue goes away, the genuine MP does
     * not chain to the key it now holds. */
    rogue.down = TRUE;
    drv_run_to(&d, CM_AGENT_FAILED, 200);
    ck_assert_int_ge(cm_agent_status(d.agent)->mp_refused, 1);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 0);
    drv_clear(&d);
}
END_TEST

/* REQ: TRUST-09, TRUST-08 */
START_TEST(test_signcert_sources)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;

    /* A compromised MP (genuine certificate, genuine TRK) that serves its
     * own signing certificate and policies signed with its key. */
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.smssigncert = S.sign_cert;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.sign_cert = S.rogue_sign_cert;
    mp1.sign_key = S.rogue_sign_key;
    mp1.policies[0] = (FakePolicy){
        .id = "PS100001", .version = 1, .settings = "{\"bitlocker_suspend_pin\":true}"};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 31));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    st = cm_agent_status(d.agent);
    ck_assert_int_eq(cm_agent_signcert_source(d.agent), CM_SOURCE_PROPERTY);
    ck_assert_int_eq(st->policies_accepted, 0);
    ck_assert_int_eq(st->policies_refused, 1);
    ck_assert_ptr_null(st->settings);
    drv_clear(&d);

    /* Without SMSSIGNCERT the client downloads the MP's certificate and
     * acts on its policy: the TRUST-09 exposure. */
    c.smssigncert = NULL;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.sign_cert = S.rogue_sign_cert;
    mp1.sign_key = S.rogue_sign_key;
    mp1.policies[0] = (FakePolicy){
        .id = "PS100001", .version = 1, .settings = "{\"bitlocker_suspend_pin\":true}"};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 32));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    st = cm_agent_status(d.agent);
    ck_assert_int_eq(cm_agent_signcert_source(d.agent), CM_SOURCE_MP);
    ck_assert_int_eq(st->policies_accepted, 1);
    ck_assert_int_eq(st->policies_refused, 0);
    drv_clear(&d);
}
END_TEST

/* ------------------------------------------------------------ identity */

/* REQ: TRUST-11, TRUST-13 */
START_TEST(test_key_storage)
{
    static const struct {
        int tpm;
        gboolean media;
        CmKspKind kind;
        gboolean fell_back;
        const char *name;
    } cases[] = {
        {2, FALSE, CM_KSP_TPM2, FALSE, "tpm2"},
        {1, FALSE, CM_KSP_SOFTWARE, TRUE, "software"},  /* vulnerable TPM */
        {0, FALSE, CM_KSP_SOFTWARE, FALSE, "software"}, /* no TPM */
        {2, TRUE, CM_KSP_SOFTWARE, FALSE, "software"},  /* media: not hardware bound */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CmAgentConfig c;
        FakeMp mp1;
        Drv d;
        const CmAgentStatus *st;
        GError *err = NULL;
        g_autofree char *pem = NULL;
        g_autoptr(json_t) reg = NULL;

        base_config(&c);
        c.tpm_version = cases[i].tpm;
        c.media = cases[i].media;
        fake_init(&mp1, MP1, S.mp1_cert);
        drv_init(&d, new_agent(&c, 40 + i));
        drv_add(&d, &mp1);
        st = cm_agent_status(d.agent);
        ck_assert_int_eq(st->ksp, cases[i].kind);
        ck_assert_int_eq(st->ksp_fell_back, cases[i].fell_back);
        /* Non-exportable in either provider. */
        pem = cm_key_private_pem(cm_agent_key(d.agent), &err);
        ck_assert_ptr_null(pem);
        cm_assert_error(&err, CM_PROTO_ERROR_NOT_EXPORTABLE);

        drv_start(&d);
        reg = send_json(drv_run_until_send(&d, CM_EP_REGISTER, 50));
        ck_assert_str_eq(json_string_value(json_object_get(reg, "ksp")), cases[i].name);
        ck_assert(json_is_true(json_object_get(reg, "media")) == cases[i].media);
        drv_clear(&d);
    }
}
END_TEST

START_TEST(test_identity)
{
    CmAgentConfig c;
    CmAgent *a, *b;
    const CmAgentStatus *st;
    CmCert *cert;

    base_config(&c);
    a = new_agent(&c, 50);
    st = cm_agent_status(a);
    ck_assert(cm_id_smsid_check(st->smsid, NULL));
    ck_assert(cm_id_hwid_check(st->hwid, NULL));
    cert = cm_agent_cert(a);
    ck_assert(cm_cert_is_self_signed(cert));
    ck_assert_str_eq(cm_cert_subject_cn(cert), st->smsid);
    ck_assert(cm_cert_check_time(cert, CM_TEST_NOW, NULL));
    ck_assert(cm_cert_check_time(cert, CM_TEST_NOW + 300 * CM_USEC_PER_DAY, NULL));
    ck_assert(!cm_cert_check_time(cert, CM_TEST_NOW + 400 * CM_USEC_PER_DAY, NULL));
    ck_assert(cm_key_public_equal(cm_cert_public_key(cert), cm_agent_key(a)));
    ck_assert_int_eq(cm_agent_status(a)->state, CM_AGENT_INSTALLED);

    /* The same stream gives the same identity; another gives another. */
    b = new_agent(&c, 50);
    ck_assert_str_eq(cm_agent_status(b)->smsid, st->smsid);
    ck_assert_str_eq(cm_agent_status(b)->hwid, st->hwid);
    cm_agent_free(b);
    b = new_agent(&c, 51);
    ck_assert_str_ne(cm_agent_status(b)->smsid, st->smsid);
    cm_agent_free(b);

    /* A given hardware ID is kept; a malformed one is refused. */
    c.hwid = "2:00112233445566778899AABBCCDDEEFF00112233";
    b = new_agent(&c, 52);
    ck_assert_str_eq(cm_agent_status(b)->hwid, c.hwid);
    cm_agent_free(b);
    {
        GError *err = NULL;
        CmRng rng;
        cm_rng_init_seeded(&rng, 1, 1);
        c.hwid = "2:XYZ";
        ck_assert_ptr_null(cm_agent_new(&c, &rng, CM_TEST_NOW, &err));
        ck_assert(err != NULL);
        g_clear_error(&err);
    }
    cm_agent_free(a);
}
END_TEST

/* ------------------------------------------------------------ registration */

/* REQ: REG-02 */
START_TEST(test_register_signed)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmAgentSend *s;
    g_autoptr(json_t) body = NULL;
    g_autoptr(GBytes) der = NULL;
    g_autoptr(CmCert) cert = NULL;
    CmRequest req;
    const CmAgentStatus *st;

    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 60));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    s = drv_run_until_send(&d, CM_EP_REGISTER, 50);

    /* Anonymous requests before it carried no identity. */
    for (guint i = 0; i < d.sent->len; i++) {
        CmAgentSend *a = g_ptr_array_index(d.sent, i);
        ck_assert(cm_ep_is_anonymous(a->ep));
        ck_assert(!a->signed_);
        ck_assert_str_eq(a->smsid, "");
    }

    /* Proof of possession: signed over the exact body with the key of the
     * self-signed certificate the body carries. */
    body = send_json(s);
    der = cm_json_b64(body, "cert", CM_CERT_MAX_DER, NULL);
    cert = cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), NULL);
    ck_assert(cert != NULL);
    ck_assert(same_cert(cert, cm_agent_cert(d.agent)));
    ck_assert(cm_cert_is_self_signed(cert));
    ck_assert_str_eq(cm_cert_subject_cn(cert), st->smsid);
    cm_agent_send_request(s, &req);
    ck_assert(req.signed_);
    ck_assert_int_eq(req.sig_hash, CM_HASH_SHA256);
    ck_assert_str_eq(req.smsid, st->smsid);
    ck_assert(cm_sig_verify(cm_cert_public_key(cert), req.sig_hash, req.body, req.body_len, req.sig,
                            req.sig_len, NULL));
    ck_assert_str_eq(json_string_value(json_object_get(body, "smsid")), st->smsid);
    ck_assert_str_eq(json_string_value(json_object_get(body, "hwid")), st->hwid);
    ck_assert_str_eq(json_string_value(json_object_get(body, "site_code")), SITE);
    ck_assert_str_eq(json_string_value(json_object_get(body, "name")), "PC001");
    ck_assert_str_eq(json_string_value(json_object_get(body, "domain")), "corp.example");
    ck_assert_str_eq(json_string_value(json_object_get(body, "install_method")), "manual");
    ck_assert_ptr_null(json_object_get(body, "entra_token"));
    /* Over the wire form too: the header a driver would send parses back. */
    {
        g_autofree char *hdr = cm_msg_format_signature(s->sig_hash, s->sig, s->sig_len);
        CmRequest back = {0};
        ck_assert(cm_msg_parse_signature(hdr, &back, NULL));
        ck_assert_int_eq(back.sig_len, s->sig_len);
    }
    ck_assert_int_eq(st->registrations, 1);

    /* Every later request is signed with the same key: the fake MP checks
     * each against the registered certificate. */
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    ck_assert_int_gt(mp1.counts[CM_EP_POLICY_ASSIGNMENTS], 0);
    ck_assert_int_gt(mp1.counts[CM_EP_INVENTORY], 0);
    ck_assert_int_gt(mp1.counts[CM_EP_DISCOVERY], 0);
    ck_assert_int_eq(st->registered_at, CM_TEST_NOW);
    drv_clear(&d);

    /* A legacy client signs with SHA-1 (and its signatures verify so). */
    c.sign_hash = CM_HASH_SHA1;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 61));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    s = drv_last_sent(&d, CM_EP_POLICY_ASSIGNMENTS);
    ck_assert_int_eq(s->sig_hash, CM_HASH_SHA1);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    drv_clear(&d);
}
END_TEST

START_TEST(test_pending_then_approved)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.approval = "pending";
    drv_init(&d, new_agent(&c, 70));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_PENDING, 50);
    ck_assert_int_eq(st->registered_at, 0);
    /* It polls regstatus, not register again. */
    drv_timer(&d);
    drv_step(&d);
    drv_timer(&d);
    drv_step(&d);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 1);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER_STATUS], 2);
    ck_assert_int_eq(st->state, CM_AGENT_PENDING);

    mp1.approval = "approved";
    drv_run_to(&d, CM_AGENT_ACTIVE, 50);
    ck_assert_int_gt(st->registered_at, CM_TEST_NOW);
    ck_assert_int_eq(st->registrations, 1);
    drv_clear(&d);
}
END_TEST

START_TEST(test_busy_retry_after)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmTime refused_at;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.fail_ep = CM_EP_REGISTER;
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_times = 1;
    mp1.fail_retry_after = 120 * CM_USEC_PER_SEC;
    drv_init(&d, new_agent(&c, 80));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_until_send(&d, CM_EP_REGISTER, 50);
    d.now += 5 * CM_USEC_PER_SEC;
    refused_at = d.now;
    drv_step(&d); /* the 503 */
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_ge(d.wake_at, refused_at + 120 * CM_USEC_PER_SEC);
    ck_assert_int_le(d.wake_at, refused_at + 133 * CM_USEC_PER_SEC);
    /* An early timer does nothing. */
    {
        CmAgentActions a;
        cm_agent_actions_init(&a);
        cm_agent_on_timer(d.agent, refused_at + 60 * CM_USEC_PER_SEC, &a);
        ck_assert_int_eq(a.sends->len, 0);
        ck_assert_int_eq(a.wake_at, d.wake_at);
        cm_agent_actions_clear(&a);
    }
    drv_timer(&d);
    ck_assert_int_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->ep, CM_EP_REGISTER);
    drv_run_to(&d, CM_AGENT_ACTIVE, 50);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 2);
    ck_assert_int_eq(cm_agent_status(d.agent)->retries, 1);
    drv_clear(&d);

    /* The same when only the body says it (an HTTP driver's view). */
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_times = 1;
    mp1.fail_body = "{\"reason\":\"busy\",\"message\":\"queue full\",\"retry_after_s\":300}";
    drv_init(&d, new_agent(&c, 81));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_until_send(&d, CM_EP_POLICY_ASSIGNMENTS, 50);
    refused_at = d.now;
    drv_step(&d);
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_ACTIVE);
    ck_assert_int_ge(d.wake_at, refused_at + 300 * CM_USEC_PER_SEC);
    ck_assert_int_le(d.wake_at, refused_at + 331 * CM_USEC_PER_SEC);
    drv_clear(&d);
}
END_TEST

START_TEST(test_backoff_jitter_bounded)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmTime base = 30 * CM_USEC_PER_SEC, cap = CM_USEC_PER_HOUR, floor = CM_USEC_PER_SEC;
    CmTime delays[24];
    GHashTable *distinct = g_hash_table_new(g_int64_hash, g_int64_equal);
    CmTime late_max = 0;

    /* 503 without Retry-After: the agent backs off on its own. */
    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.fail_ep = CM_EP_REGISTER;
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_times = G_N_ELEMENTS(delays);
    drv_init(&d, new_agent(&c, 90));
    drv_add(&d, &mp1);
    drv_start(&d);
    for (size_t n = 0; n < G_N_ELEMENTS(delays); n++) {
        CmTime bound = MIN(cap, base << MIN(n, 20));
        drv_run_until_send(&d, CM_EP_REGISTER, 50);
        drv_step(&d);
        ck_assert(g_queue_is_empty(&d.pending));
        delays[n] = d.wake_at - d.now;
        ck_assert_int_ge(delays[n], floor);
        ck_assert_msg(delays[n] < floor + bound, "attempt %zu waits %" G_GINT64_FORMAT " us", n + 1,
                      delays[n]);
        g_hash_table_add(distinct, &delays[n]);
        if (n >= G_N_ELEMENTS(delays) - 10)
            late_max = MAX(late_max, delays[n]);
    }
    /* Jitter: no two waits alike; growth: the late ones reach far beyond
     * the first bound, and never beyond the cap. */
    ck_assert_int_eq(g_hash_table_size(distinct), G_N_ELEMENTS(delays));
    ck_assert_int_gt(late_max, 10 * CM_USEC_PER_MIN);
    ck_assert_int_le(late_max, cap + floor);
    ck_assert_int_eq(cm_agent_status(d.agent)->retries, G_N_ELEMENTS(delays));
    /* Success resets it. */
    drv_run_to(&d, CM_AGENT_ACTIVE, 50);
    g_hash_table_unref(distinct);
    drv_clear(&d);
}
END_TEST

START_TEST(test_failover_to_next_mp)
{
    CmAgentConfig c;
    FakeMp mp1, mp2;
    Drv d;

    /* The location list names two MPs; the first stops answering
     * registrations: after three failures the agent moves to the second. */
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":true},{\"name\":\"" MP2 "\",\"http\":true}]";
    mp1.fail_ep = CM_EP_REGISTER;
    mp1.fail_drop = TRUE;
    mp1.fail_times = 100;
    fake_init(&mp2, MP2, S.mp2_cert);
    drv_init(&d, new_agent(&c, 100));
    drv_add(&d, &mp1);
    drv_add(&d, &mp2);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_str_eq(cm_agent_status(d.agent)->mp, MP2);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 3);
    ck_assert_int_eq(mp2.counts[CM_EP_MPCERT], 1);
    ck_assert_int_eq(cm_agent_status(d.agent)->mp_refused, 0);
    drv_clear(&d);
}
END_TEST

START_TEST(test_request_timeout_and_stale_answers)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmAgentSend *s;
    guint64 old_id;
    CmAgentActions a;
    CmResponse resp = {0};

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 110));
    drv_add(&d, &mp1);
    drv_start(&d);
    s = drv_run_until_send(&d, CM_EP_REGISTER, 50);
    old_id = s->id;
    /* The driver loses the request: the agent's own deadline fires. */
    g_queue_pop_head(&d.pending);
    g_ptr_array_add(d.sent, s);
    ck_assert_int_gt(d.wake_at, d.now);
    drv_timer(&d);
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_eq(cm_agent_status(d.agent)->retries, 1);

    /* The late answer is ignored. */
    cm_response_refuse(&resp, CM_REASON_BLOCKED, "late");
    cm_agent_actions_init(&a);
    cm_agent_on_response(d.agent, old_id, &resp, d.now, &a);
    ck_assert_int_eq(a.sends->len, 0);
    cm_agent_actions_clear(&a);
    cm_agent_actions_init(&a);
    cm_agent_on_response(d.agent, 9999, &resp, d.now, &a);
    cm_agent_actions_clear(&a);
    cm_response_clear(&resp);
    ck_assert_int_ne(cm_agent_status(d.agent)->state, CM_AGENT_BLOCKED);
    drv_run_to(&d, CM_AGENT_ACTIVE, 50);
    drv_clear(&d);
}
END_TEST

START_TEST(test_blocked_stops)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmAgentActions a;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.fail_ep = CM_EP_INVENTORY;
    mp1.fail_reason = CM_REASON_BLOCKED;
    mp1.fail_times = 1;
    drv_init(&d, new_agent(&c, 120));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_BLOCKED, 100);
    ck_assert_int_eq(d.wake_at, 0);
    cm_agent_actions_init(&a);
    cm_agent_on_timer(d.agent, d.now + CM_USEC_PER_DAY, &a);
    ck_assert_int_eq(a.sends->len, 0);
    ck_assert_int_eq(a.wake_at, 0);
    cm_agent_actions_clear(&a);
    drv_clear(&d);
}
END_TEST

/* Every refusal reason of a signed request is handled on purpose: the
 * agent ends blocked, or with a timer or a request, never stuck. */
START_TEST(test_every_refusal_reason)
{
    for (int r = CM_REASON_BAD_REQUEST; r < CM_REASON__COUNT; r++) {
        CmAgentConfig c;
        FakeMp mp1;
        Drv d;
        const CmAgentStatus *st;
        CmAgentState want;
        g_autofree char *thumb = NULL;

        base_config(&c);
        fake_init(&mp1, MP1, S.mp1_cert);
        mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
        mp1.fail_reason = (CmReason)r;
        mp1.fail_times = 1;
        drv_init(&d, new_agent(&c, 200 + r));
        drv_add(&d, &mp1);
        st = cm_agent_status(d.agent);
        thumb = cm_cert_thumbprint_hex(cm_agent_cert(d.agent));
        drv_start(&d);
        drv_run_until_send(&d, CM_EP_POLICY_ASSIGNMENTS, 50);
        drv_step(&d);

        switch (r) {
        case CM_REASON_BLOCKED:
            want = CM_AGENT_BLOCKED;
            break;
        case CM_REASON_NOT_APPROVED:
            want = CM_AGENT_PENDING;
            break;
        case CM_REASON_UNKNOWN_CLIENT:
        case CM_REASON_BAD_SIGNATURE:
        case CM_REASON_CERT_EXPIRED:
            want = CM_AGENT_REGISTERING;
            break;
        case CM_REASON_HTTPS_REQUIRED: /* no Enhanced HTTP on offer: next MP */
        case CM_REASON_UNKNOWN_ENDPOINT:
        case CM_REASON_REVOKED:
            want = CM_AGENT_LOCATING;
            break;
        default:
            want = CM_AGENT_ACTIVE;
            break;
        }
        /* Next MP: the list is exhausted at once, relocation backs off. */
        ck_assert_msg(st->state == want, "%s: agent is %s, wanted %s", cm_reason_name((CmReason)r),
                      cm_agent_state_name(st->state), cm_agent_state_name(want));
        if (r == CM_REASON_BLOCKED) {
            ck_assert_int_eq(d.wake_at, 0);
            ck_assert(g_queue_is_empty(&d.pending));
        } else {
            ck_assert_msg(!g_queue_is_empty(&d.pending) || d.wake_at > d.now, "%s: stuck",
                          cm_reason_name((CmReason)r));
            ck_assert(d.wake_at <= d.now + CM_USEC_PER_HOUR + CM_USEC_PER_SEC ||
                      r == CM_REASON_BUSY);
            /* And it recovers once the MP answers again. */
            drv_run_to(&d, CM_AGENT_ACTIVE, 100);
            ck_assert_int_eq(mp1.bad_sigs, 0);
        }
        if (r == CM_REASON_CERT_EXPIRED) {
            g_autofree char *now_thumb = cm_cert_thumbprint_hex(cm_agent_cert(d.agent));
            ck_assert_str_ne(thumb, now_thumb);
            ck_assert_int_eq(st->registrations, 2);
        }
        drv_clear(&d);
    }
}
END_TEST

START_TEST(test_https_required_goes_ehttp)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmAgentSend *s;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":true,\"ehttp\":false}]";
    drv_init(&d, new_agent(&c, 130));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_status(d.agent)->transport, CM_TRANSPORT_HTTP);
    drv_clear(&d);

    /* The site turned HTTPS-only / Enhanced HTTP: HTTP is refused, and
     * this MP offers Enhanced HTTP. */
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":true,\"ehttp\":false}]";
    drv_init(&d, new_agent(&c, 131));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_until_send(&d, CM_EP_POLICY_ASSIGNMENTS, 50);
    mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
    mp1.fail_reason = CM_REASON_HTTPS_REQUIRED;
    mp1.fail_times = 1;
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":true,\"ehttp\":true}]";
    drv_step(&d);
    /* Refused over HTTP, the MP it knows offers nothing better: it moves
     * on, locates again and finds the MP now offers Enhanced HTTP. */
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_LOCATING);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    s = drv_last_sent(&d, CM_EP_POLICY_ASSIGNMENTS);
    ck_assert_int_eq(s->transport, CM_TRANSPORT_EHTTP);
    ck_assert_int_eq(cm_agent_status(d.agent)->transport, CM_TRANSPORT_EHTTP);
    drv_clear(&d);
}
END_TEST

/* ------------------------------------------------------------ service location */

/* REQ: NET-01 */
START_TEST(test_location_prefers_https)
{
    static const char list[] =
        "[{\"name\":\"a.corp.example\",\"http\":true,\"https\":false,\"ehttp\":false},"
        " {\"name\":\"b.corp.example\",\"http\":true,\"https\":false,\"ehttp\":true},"
        " {\"name\":\"i.corp.example\",\"http\":false,\"https\":true,\"internet\":true},"
        " {\"name\":\"c.corp.example\",\"http\":true,\"https\":true,\"ehttp\":false},"
        " {\"name\":\"d.corp.example\",\"http\":false,\"https\":true,\"ehttp\":false}]";
    static const struct {
        gboolean pki;
        const char *mp;
        CmTransport transport;
        CmEndpoint ep;
    } cases[] = {
        {TRUE, "c.corp.example", CM_TRANSPORT_HTTPS, CM_EP_SITEINFO},
        {FALSE, "b.corp.example", CM_TRANSPORT_EHTTP, CM_EP_MPCERT},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CmAgentConfig c;
        FakeMp mp1;
        Drv d;
        CmAgentSend *s;

        base_config(&c);
        c.usepkicert = cases[i].pki;
        c.pki_cert = S.pki_cert;
        c.pki_key = S.pki_key;
        fake_init(&mp1, MP1, S.mp1_cert);
        mp1.mps_json = list;
        drv_init(&d, new_agent(&c, 140 + i));
        drv_add(&d, &mp1);
        drv_start(&d);
        s = g_queue_peek_head(&d.pending);
        ck_assert_int_eq(s->ep, CM_EP_LOCATION);
        ck_assert_str_eq(s->mp, MP1);
        ck_assert_int_eq(s->transport, cases[i].pki ? CM_TRANSPORT_HTTPS : CM_TRANSPORT_HTTP);
        drv_step(&d);
        s = g_queue_peek_head(&d.pending);
        ck_assert_str_eq(s->mp, cases[i].mp);
        ck_assert_int_eq(s->transport, cases[i].transport);
        ck_assert_int_eq(s->ep, cases[i].ep);
        ck_assert(s->use_pki == (cases[i].transport == CM_TRANSPORT_HTTPS));
        drv_clear(&d);
    }

    /* HTTP only when nothing better is offered. */
    {
        CmAgentConfig c;
        FakeMp mp1;
        Drv d;

        base_config(&c);
        fake_init(&mp1, MP1, S.mp1_cert);
        mp1.mps_json = "[{\"name\":\"d.corp.example\",\"https\":true},"
                       " {\"name\":\"a.corp.example\",\"http\":true}]";
        drv_init(&d, new_agent(&c, 150));
        drv_add(&d, &mp1);
        drv_start(&d);
        drv_step(&d);
        ck_assert_str_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->mp, "a.corp.example");
        ck_assert_int_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->transport,
                         CM_TRANSPORT_HTTP);
        drv_clear(&d);
    }
}
END_TEST

/* A device on the internet uses internet-facing MPs only, a CMG's entry
 * among them, and keeps the client token of its approved registration
 * for the gateway.
 * REQ: CMG-10, CMG-12 */
START_TEST(test_location_on_internet)
{
    static const char list[] =
        "[{\"name\":\"b.corp.example\",\"http\":true,\"ehttp\":true},"
        " {\"name\":\"cmg.example.com/CCM_Proxy_MutualAuth/72057594037927937\",\"https\":true,"
        "\"ehttp\":true,\"internet\":true}]";

    for (int internet = 0; internet <= 1; internet++) {
        CmAgentConfig c;
        FakeMp mp1, cmg;
        Drv d;
        CmAgentSend *s;

        base_config(&c);
        c.on_internet = internet;
        fake_init(&mp1, MP1, S.mp1_cert);
        mp1.mps_json = list;
        drv_init(&d, new_agent(&c, 160 + internet));
        drv_add(&d, &mp1);
        drv_start(&d);
        drv_step(&d);
        s = g_queue_peek_head(&d.pending);
        ck_assert_str_eq(s->mp, internet ? "cmg.example.com/CCM_Proxy_MutualAuth/72057594037927937"
                                         : "b.corp.example");
        ck_assert_int_eq(s->transport, CM_TRANSPORT_EHTTP);
        ck_assert_int_eq(s->ep, CM_EP_MPCERT);
        if (internet) {
            /* Through the gateway the MP's certificate names the MP, not
             * the entry; signed with the trusted root key, it is taken. */
            fake_init(&cmg, "cmg.example.com/CCM_Proxy_MutualAuth/72057594037927937", S.mp1_cert);
            drv_add(&d, &cmg);
            drv_run_to(&d, CM_AGENT_ACTIVE, 200);
            ck_assert_int_eq(cm_agent_status(d.agent)->mp_refused, 0);
        }
        drv_clear(&d);
    }

    /* An internet list with no internet MP leaves nothing to use. */
    {
        CmAgentConfig c;
        FakeMp mp1;
        Drv d;

        base_config(&c);
        c.on_internet = TRUE;
        fake_init(&mp1, MP1, S.mp1_cert);
        mp1.mps_json = "[{\"name\":\"b.corp.example\",\"http\":true,\"ehttp\":true}]";
        drv_init(&d, new_agent(&c, 162));
        drv_add(&d, &mp1);
        drv_start(&d);
        drv_step(&d);
        ck_assert(g_queue_is_empty(&d.pending) ||
                  strcmp(((CmAgentSend *)g_queue_peek_head(&d.pending))->mp, "b.corp.example") != 0);
        drv_clear(&d);
    }

    /* The token of the approved registration answer is kept, exactly as
     * the site wrote it: a JWT (kept decoded) and anything else alike. */
    {
        static const char *const tokens[] = {
            "header.claims.signature",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJHVUlEOjEifQ.c2lnbmF0dXJl",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJHVUlEOjEifR.c2lnbmF0dXJl", /* stray bits */
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJHVUlEOjEifQ.c2lnbmF0dXJl.more",
            "eyJhbGciOiJFUzI1NiJ9..",
            "h.YWI.YWJj",   /* 2 bytes in 3 characters */
            "h.YWJ.YWJj",   /* ...with stray bits */
            "h.YWJjZ.YWJj", /* a length base64 never has */
            "h.YW=.YWJj",   /* padding */
            "no-dots",
        };
        for (guint i = 0; i < G_N_ELEMENTS(tokens); i++) {
            CmAgentConfig c;
            FakeMp mp1;
            Drv d;

            base_config(&c);
            fake_init(&mp1, MP1, S.mp1_cert);
            mp1.token = tokens[i];
            drv_init(&d, new_agent(&c, 163));
            drv_add(&d, &mp1);
            ck_assert_ptr_null(cm_agent_cmg_token(d.agent));
            drv_start(&d);
            drv_run_to(&d, CM_AGENT_ACTIVE, 200);
            ck_assert_str_eq(cm_agent_cmg_token(d.agent), tokens[i]);
            ck_assert_ptr_eq(cm_agent_cmg_token(d.agent), cm_agent_cmg_token(d.agent));
            drv_clear(&d);
        }
    }
}
END_TEST

/* REQ: NET-01 */
START_TEST(test_location_sources_in_order)
{
    const char *dir_mps[] = {"dir.corp.example", NULL};
    const char *dns[] = {"dns.corp.example", "dir.corp.example", NULL};
    CmDirectoryInfo dir = {SITE, NULL, NULL, dir_mps};
    CmAgentConfig c;
    Drv d;
    const char *want[] = {"assigned.corp.example", "dir.corp.example", "dns.corp.example"};

    base_config(&c);
    c.mp = "assigned.corp.example";
    c.directory = &dir;
    c.dns_mps = dns;
    drv_init(&d, new_agent(&c, 160));
    drv_start(&d);
    /* None answers: each is asked in turn (over HTTP, then Enhanced HTTP). */
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        for (int t = 0; t < 2; t++) {
            CmAgentSend *s = g_queue_peek_head(&d.pending);
            ck_assert_ptr_nonnull(s);
            ck_assert_int_eq(s->ep, CM_EP_LOCATION);
            ck_assert_str_eq(s->mp, want[i]);
            ck_assert_int_eq(s->transport, t == 0 ? CM_TRANSPORT_HTTP : CM_TRANSPORT_EHTTP);
            drv_step(&d);
        }
    }
    /* Then it starts over after a backoff, still locating. */
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_LOCATING);
    ck_assert_int_gt(d.wake_at, d.now);
    drv_timer(&d);
    ck_assert_str_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->mp, want[0]);
    drv_clear(&d);

    /* No source at all: failed, and nothing to retry. */
    base_config(&c);
    c.mp = NULL;
    drv_init(&d, new_agent(&c, 161));
    drv_start(&d);
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_FAILED);
    ck_assert_int_eq(d.wake_at, 0);
    drv_clear(&d);
}
END_TEST

/* REQ: TRUST-07 */
START_TEST(test_pki_needs_no_trk)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;

    base_config(&c);
    c.usepkicert = TRUE;
    c.pki_cert = S.pki_cert;
    c.pki_key = S.pki_key;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":false,\"https\":true}]";
    drv_init(&d, new_agent(&c, 170));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(mp1.counts[CM_EP_MPCERT], 0);
    ck_assert_int_eq(cm_agent_trk_source(d.agent), CM_SOURCE_PKI);
    for (guint i = 0; i < d.sent->len; i++) {
        CmAgentSend *s = g_ptr_array_index(d.sent, i);
        ck_assert_int_eq(s->transport, CM_TRANSPORT_HTTPS);
        ck_assert(s->use_pki);
    }
    ck_assert_int_eq(mp1.bad_sigs, 0);
    drv_clear(&d);
}
END_TEST

START_TEST(test_start_window)
{
    CmAgentConfig c;
    Drv d;
    CmAgentActions a;
    CmTime first = 0;

    base_config(&c);
    c.start_window = CM_USEC_PER_HOUR;
    drv_init(&d, new_agent(&c, 180));
    drv_start(&d);
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_INSTALLED);
    ck_assert_int_gt(d.wake_at, d.now);
    ck_assert_int_le(d.wake_at, d.now + CM_USEC_PER_HOUR);
    first = d.wake_at;
    /* Starting twice changes nothing. */
    drv_start(&d);
    ck_assert_int_eq(d.wake_at, first);
    cm_agent_actions_init(&a);
    cm_agent_on_timer(d.agent, first - 1, &a);
    ck_assert_int_eq(a.sends->len, 0);
    cm_agent_actions_clear(&a);
    drv_timer(&d);
    ck_assert_int_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->ep, CM_EP_LOCATION);
    drv_clear(&d);

    /* Spread: 50 clients do not all start in the same minute. */
    {
        GHashTable *minutes = g_hash_table_new(g_direct_hash, g_direct_equal);
        for (int i = 0; i < 50; i++) {
            drv_init(&d, new_agent(&c, 1000 + i));
            drv_start(&d);
            g_hash_table_add(minutes,
                             GINT_TO_POINTER((int)((d.wake_at - d.now) / CM_USEC_PER_MIN)));
            drv_clear(&d);
        }
        ck_assert_int_gt(g_hash_table_size(minutes), 25);
        g_hash_table_unref(minutes);
    }
}
END_TEST

/* ------------------------------------------------------------ policy */

/* REQ: POL-03, TRUST-08, POL-06 */
START_TEST(test_policy_verification)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;

    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001",
                                   .version = 1,
                                   .settings = "{\"powershell_execution_policy\":\"allsigned\","
                                               "\"bitlocker_suspend_pin\":false}"};
    mp1.policies[1] = (FakePolicy){.id = "PS100002", .version = 1, .tamper = TRUE};
    mp1.policies[2] = (FakePolicy){.id = "PS100003", .version = 1, .site = "PS2"};
    mp1.policies[3] = (FakePolicy){.id = "PS100004", .version = 1, .bad_hash = TRUE};
    mp1.n_policies = 4;
    drv_init(&d, new_agent(&c, 190));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->policies_accepted, 1);
    ck_assert_int_eq(st->policies_refused, 3);
    ck_assert_int_eq(st->policy_ids->len, 1);
    ck_assert_str_eq(g_ptr_array_index(st->policy_ids, 0), "PS100001");
    ck_assert_ptr_nonnull(cm_agent_policy(d.agent, "PS100001"));
    ck_assert_ptr_null(cm_agent_policy(d.agent, "PS100002"));
    ck_assert_str_eq(
        json_string_value(json_object_get(st->settings, "powershell_execution_policy")),
        "allsigned");

    /* Next cycle: a new version with other settings merges over; the
     * refused ones are tried again (and refused again). */
    mp1.policies[0] = (FakePolicy){
        .id = "PS100001", .version = 2, .settings = "{\"powershell_execution_policy\":\"bypass\"}"};
    drv_timer(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->policies_accepted, 2);
    ck_assert_int_eq(st->policies_refused, 6);
    ck_assert_str_eq(
        json_string_value(json_object_get(st->settings, "powershell_execution_policy")), "bypass");
    ck_assert_ptr_null(json_object_get(st->settings, "bitlocker_suspend_pin"));

    /* An older version is not fetched (a replay), an unchanged one neither. */
    mp1.policies[0].version = 1;
    mp1.n_policies = 1;
    {
        int bodies = mp1.counts[CM_EP_POLICY_BODY];
        drv_timer(&d);
        drv_run_to(&d, CM_AGENT_ACTIVE, 100);
        ck_assert_int_eq(mp1.counts[CM_EP_POLICY_BODY], bodies);
    }

    /* The deployment is removed: its policy and settings go. */
    mp1.n_policies = 0;
    drv_timer(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->policy_ids->len, 0);
    ck_assert_ptr_null(st->settings);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    drv_clear(&d);
}
END_TEST

/* With the parse cache on (the simulator), clients given the same policy
 * bytes share one parsed object, and each still checks the signature
 * itself: the same bytes under a signature the client's signing
 * certificate does not verify are refused though the cache holds them.
 * Merging the settings of several policies leaves the shared objects as
 * they were.  REQ: POL-03, TRUST-08, POL-06 */
START_TEST(test_policy_shared)
{
    CmAgentConfig c;
    FakeMp mp1, mp2, mp3;
    Drv a, b, r;
    const FakePolicy one = {.id = "PS100001",
                            .version = 1,
                            .settings = "{\"powershell_execution_policy\":\"allsigned\"}"};
    const FakePolicy two = {
        .id = "PS100002", .version = 1, .settings = "{\"bitlocker_suspend_pin\":false}"};
    const json_t *pa, *pb;

    cm_parse_cache_enable(TRUE);
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.smssigncert = S.sign_cert;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = one;
    mp1.n_policies = 1;
    drv_init(&a, new_agent(&c, 400));
    drv_add(&a, &mp1);
    drv_start(&a);
    drv_run_to(&a, CM_AGENT_ACTIVE, 100);
    fake_init(&mp2, MP1, S.mp1_cert);
    mp2.policies[0] = one;
    mp2.policies[1] = two;
    mp2.n_policies = 2;
    drv_init(&b, new_agent(&c, 401));
    drv_add(&b, &mp2);
    drv_start(&b);
    drv_run_to(&b, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_status(a.agent)->policies_accepted, 1);
    ck_assert_int_eq(cm_agent_status(b.agent)->policies_accepted, 2);
    pa = cm_agent_policy(a.agent, "PS100001");
    pb = cm_agent_policy(b.agent, "PS100001");
    ck_assert_ptr_nonnull(pa);
    ck_assert_ptr_eq(pa, pb);
    /* A's settings are its one policy's; B's merge both, in a new object. */
    ck_assert_ptr_eq(cm_agent_status(a.agent)->settings, json_object_get(pa, "settings"));
    ck_assert_int_eq(json_object_size(cm_agent_status(b.agent)->settings), 2);
    ck_assert_int_eq(json_object_size(json_object_get(pa, "settings")), 1);
    ck_assert_int_eq(json_object_size(cm_agent_status(a.agent)->settings), 1);

    /* The same bytes signed with another key. */
    fake_init(&mp3, MP1, S.mp1_cert);
    mp3.sign_key = S.rogue_sign_key;
    mp3.policies[0] = one;
    mp3.n_policies = 1;
    drv_init(&r, new_agent(&c, 402));
    drv_add(&r, &mp3);
    drv_start(&r);
    drv_run_to(&r, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_status(r.agent)->policies_accepted, 0);
    ck_assert_int_eq(cm_agent_status(r.agent)->policies_refused, 1);
    ck_assert_ptr_null(cm_agent_policy(r.agent, "PS100001"));
    ck_assert_ptr_null(cm_agent_status(r.agent)->settings);

    /* The first holder goes; the other keeps the object. */
    drv_clear(&a);
    ck_assert_str_eq(
        json_string_value(json_object_get(cm_agent_policy(b.agent, "PS100001"), "policy_id")),
        "PS100001");
    drv_clear(&b);
    drv_clear(&r);
    cm_parse_cache_enable(FALSE);
}
END_TEST

/* ------------------------------------------------------------ inventory */

static json_t *
decrypt_body(const json_t *body)
{
    g_autoptr(GBytes) env = cm_json_b64(body, "encrypted", CM_CMS_MAX_DER, NULL);
    g_autoptr(GBytes) plain = NULL;
    GError *err = NULL;

    ck_assert(env != NULL);
    plain = cm_cms_decrypt(S.enc_cert, S.enc_key, g_bytes_get_data(env, NULL),
                           g_bytes_get_size(env), 1024 * 1024, NULL, &err);
    cm_assert_no_error(err);
    return cm_json_parse(g_bytes_get_data(plain, NULL), g_bytes_get_size(plain), 1024 * 1024, NULL);
}

/* REQ: MSG-02 */
START_TEST(test_inventory_encrypted)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    g_autoptr(json_t) inv = NULL;
    g_autoptr(json_t) disc = NULL;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.encrypt = TRUE;
    mp1.require_encrypt = TRUE;
    drv_init(&d, new_agent(&c, 210));
    drv_add(&d, &mp1);
    cm_agent_set_inventory(d.agent, "os.caption", "Windows 11");
    cm_agent_set_discovery(d.agent, "ou", "OU=Desktops");
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_status(d.agent)->inventories_sent, 1);
    ck_assert_ptr_nonnull(mp1.inventory);
    ck_assert_ptr_null(json_object_get(mp1.inventory, "inventory"));
    ck_assert_str_eq(json_string_value(json_object_get(mp1.inventory, "smsid")),
                     cm_agent_status(d.agent)->smsid);
    inv = decrypt_body(mp1.inventory);
    ck_assert_ptr_null(json_object_get(inv, "smsid"));
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(inv, "inventory"), "os.caption")),
        "Windows 11");
    disc = decrypt_body(mp1.discovery);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(disc, "discovery"), "name")),
                     "PC001");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(disc, "discovery"), "ou")),
                     "OU=Desktops");
    drv_clear(&d);

    /* The site turns encryption on after the client learned it off: the
     * plain report is refused, the client refreshes siteinfo and resends. */
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 211));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_until_send(&d, CM_EP_INVENTORY, 100);
    mp1.encrypt = TRUE;
    mp1.require_encrypt = TRUE;
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(mp1.counts[CM_EP_SITEINFO], 2);
    ck_assert_int_eq(cm_agent_status(d.agent)->inventories_sent, 1);
    ck_assert_ptr_nonnull(json_object_get(mp1.inventory, "encrypted"));
    drv_clear(&d);
}
END_TEST

typedef struct {
    const CmAgentConfig *c;
    guint64 seed;
    int made;
} ChurnArg;

static gpointer
churn(gpointer data)
{
    ChurnArg *a = data;

    for (int i = 0; i < 150; i++) {
        CmRng rng;
        CmAgent *agent;

        cm_rng_init_seeded(&rng, 7, a->seed + (guint64)i);
        agent = cm_agent_new(a->c, &rng, CM_TEST_NOW, NULL);
        if (agent != NULL && strcmp(cm_agent_status(agent)->client_version, CM_AGENT_VERSION) == 0)
            a->made++;
        cm_agent_free(agent);
    }
    return NULL;
}

/* Agents made and freed on several threads at once (as the daemons and
 * the simulator's install do) share their strings and profile safely: the
 * last holder's release never races another thread taking the same
 * string.  REQ: CLI-02 */
START_TEST(test_agents_on_threads)
{
    CmAgentConfig c;
    GThread *threads[4];
    ChurnArg args[4];

    base_config(&c);
    cm_crypto_model_set(TRUE);
    for (int i = 0; i < 4; i++) {
        args[i] = (ChurnArg){.c = &c, .seed = 1000 + (guint64)i * 1000};
        threads[i] = g_thread_new("churn", churn, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_thread_join(threads[i]);
        ck_assert_int_eq(args[i].made, 150);
    }
    cm_crypto_model_set(FALSE);
}
END_TEST

/* What the client reports of itself, and what the driver sets over it: a
 * later value replaces an earlier one, NULL removes the property, its own
 * properties included.  The key storage reported is the one it was
 * installed with.  REQ: CLI-02 */
START_TEST(test_inventory_properties)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmAgentActions a;
    const json_t *inv, *disc;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 225));
    drv_add(&d, &mp1);
    cm_agent_set_inventory(d.agent, "os.caption", "Windows 10");
    cm_agent_set_inventory(d.agent, "os.caption", "Windows 11");
    cm_agent_set_inventory(d.agent, "system.domain", "other.example");
    cm_agent_set_inventory(d.agent, "client.ksp", NULL);
    cm_agent_set_inventory(d.agent, "", "ignored");
    cm_agent_set_inventory(d.agent, NULL, "ignored");
    cm_agent_set_discovery(d.agent, "name", NULL);
    cm_agent_set_discovery(d.agent, "ou", "OU=Desktops");
    cm_agent_set_discovery(d.agent, "os.caption", "discovery's own");
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    inv = json_object_get(mp1.inventory, "inventory");
    disc = json_object_get(mp1.discovery, "discovery");
    ck_assert_int_eq(json_object_size(inv), 4);
    ck_assert_str_eq(json_string_value(json_object_get(inv, "system.name")), "PC001");
    ck_assert_str_eq(json_string_value(json_object_get(inv, "system.domain")), "other.example");
    ck_assert_str_eq(json_string_value(json_object_get(inv, "client.version")), CM_AGENT_VERSION);
    ck_assert_str_eq(json_string_value(json_object_get(inv, "os.caption")), "Windows 11");
    ck_assert_ptr_null(json_object_get(inv, "client.ksp"));
    ck_assert_int_eq(json_object_size(disc), 3);
    ck_assert_ptr_null(json_object_get(disc, "name"));
    ck_assert_str_eq(json_string_value(json_object_get(disc, "domain")), c.domain);
    ck_assert_str_eq(json_string_value(json_object_get(disc, "ou")), "OU=Desktops");
    ck_assert_str_eq(json_string_value(json_object_get(disc, "os.caption")), "discovery's own");
    drv_clear(&d);

    /* A mass upgrade to TPM key storage: the inventory still names the key
     * storage of the installation. */
    fake_init(&mp1, MP1, S.mp1_cert);
    c.tpm_version = 0;
    c.inventory_interval = CM_USEC_PER_DAY;
    drv_init(&d, new_agent(&c, 226));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_status(d.agent)->ksp, CM_KSP_SOFTWARE);
    cm_agent_actions_init(&a);
    cm_agent_upgrade(d.agent, 2, d.now, &a);
    drv_take(&d, &a);
    ck_assert_int_eq(cm_agent_status(d.agent)->ksp, CM_KSP_TPM2);
    for (int i = 0; i < 200 && mp1.counts[CM_EP_INVENTORY] < 2; i++) {
        drv_timer(&d);
        drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    }
    ck_assert_int_eq(mp1.counts[CM_EP_INVENTORY], 2);
    inv = json_object_get(mp1.inventory, "inventory");
    ck_assert_str_eq(json_string_value(json_object_get(inv, "client.ksp")),
                     cm_ksp_kind_name(CM_KSP_SOFTWARE));
    drv_clear(&d);
}
END_TEST

START_TEST(test_inventory_plain_and_cycles)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmTime t0;

    base_config(&c);
    c.policy_interval = 30 * CM_USEC_PER_MIN;
    c.inventory_interval = CM_USEC_PER_DAY;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 220));
    drv_add(&d, &mp1);
    cm_agent_set_inventory(d.agent, "os.caption", "Windows 11");
    cm_agent_set_inventory(d.agent, "gone", "x");
    cm_agent_set_inventory(d.agent, "gone", NULL);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    t0 = d.now;
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(mp1.inventory, "inventory"),
                                                       "os.caption")),
                     "Windows 11");
    ck_assert_ptr_null(json_object_get(json_object_get(mp1.inventory, "inventory"), "gone"));
    /* Policy every 30 minutes, inventory once a day. */
    ck_assert_int_eq(d.wake_at, t0 + 30 * CM_USEC_PER_MIN);
    for (int i = 0; i < 48; i++) {
        drv_timer(&d);
        drv_run_to(&d, CM_AGENT_ACTIVE, 20);
    }
    ck_assert_int_eq(mp1.counts[CM_EP_POLICY_ASSIGNMENTS], 49);
    ck_assert_int_eq(mp1.counts[CM_EP_INVENTORY], 2);
    ck_assert_int_eq(mp1.counts[CM_EP_DISCOVERY], 2);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 1);
    drv_clear(&d);
}
END_TEST

/* ------------------------------------------------------------ upgrade */

/* REQ: TRUST-12 */
START_TEST(test_upgrade)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmAgentActions a;
    const CmAgentStatus *st;
    g_autofree char *before = NULL;
    g_autofree char *after = NULL;
    char smsid[CM_ID_SMSID_LEN + 1], hwid[CM_ID_HWID_LEN + 1];

    /* With PKI: a new self-signed certificate, no re-registration. */
    base_config(&c);
    c.tpm_version = 1;
    c.usepkicert = TRUE;
    c.pki_cert = S.pki_cert;
    c.pki_key = S.pki_key;
    c.start_window = 2 * CM_USEC_PER_HOUR;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":true,\"https\":true}]";
    drv_init(&d, new_agent(&c, 230));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_timer(&d); /* the start window */
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    before = cm_cert_thumbprint_hex(cm_agent_cert(d.agent));
    g_strlcpy(smsid, st->smsid, sizeof smsid);
    ck_assert_int_eq(st->ksp, CM_KSP_SOFTWARE);
    cm_agent_actions_init(&a);
    cm_agent_upgrade(d.agent, 2, d.now, &a);
    drv_take(&d, &a);
    after = cm_cert_thumbprint_hex(cm_agent_cert(d.agent));
    ck_assert_str_ne(before, after);
    ck_assert_str_eq(st->smsid, smsid);
    ck_assert_int_eq(st->ksp, CM_KSP_TPM2);
    ck_assert_int_eq(st->state, CM_AGENT_ACTIVE);
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_eq(st->registrations, 1);
    /* The next request is signed with the new key.  The protocol gives a
     * PKI client no message that tells the site its new certificate, so a
     * site that checks the signature against the old one refuses it
     * (bad-signature), and the client then registers the new one. */
    drv_timer(&d);
    ck_assert_int_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->ep, CM_EP_POLICY_ASSIGNMENTS);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 1);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(mp1.bad_sigs, 1);
    ck_assert_int_eq(mp1.counts[CM_EP_REGISTER], 2);
    drv_clear(&d);
    g_clear_pointer(&before, g_free);
    g_clear_pointer(&after, g_free);

    /* Without PKI: re-registers the new certificate, same SMSID and
     * hardware ID, at a random point of the start window. */
    base_config(&c);
    c.tpm_version = 1;
    c.start_window = 2 * CM_USEC_PER_HOUR;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 231));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_timer(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    g_strlcpy(smsid, st->smsid, sizeof smsid);
    g_strlcpy(hwid, st->hwid, sizeof hwid);
    before = cm_cert_thumbprint_hex(cm_agent_cert(d.agent));
    cm_agent_actions_init(&a);
    cm_agent_upgrade(d.agent, 2, d.now, &a);
    drv_take(&d, &a);
    ck_assert_int_eq(st->state, CM_AGENT_REGISTERING);
    ck_assert_int_eq(st->ksp, CM_KSP_TPM2);
    ck_assert(!st->ksp_fell_back);
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_gt(d.wake_at, d.now);
    ck_assert_int_le(d.wake_at, d.now + 2 * CM_USEC_PER_HOUR);
    drv_timer(&d);
    {
        CmAgentSend *s = g_queue_peek_head(&d.pending);
        g_autoptr(json_t) body = send_json(s);
        g_autoptr(GBytes) der = cm_json_b64(body, "cert", CM_CERT_MAX_DER, NULL);
        g_autoptr(CmCert) cert =
            cm_cert_from_der(g_bytes_get_data(der, NULL), g_bytes_get_size(der), NULL);
        ck_assert_int_eq(s->ep, CM_EP_REGISTER);
        ck_assert(same_cert(cert, cm_agent_cert(d.agent)));
        ck_assert_str_eq(json_string_value(json_object_get(body, "smsid")), smsid);
        ck_assert_str_eq(json_string_value(json_object_get(body, "hwid")), hwid);
        ck_assert_str_eq(json_string_value(json_object_get(body, "ksp")), "tpm2");
    }
    after = cm_cert_thumbprint_hex(cm_agent_cert(d.agent));
    ck_assert_str_ne(before, after);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->registrations, 2);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    drv_clear(&d);

    /* A mass upgrade spreads the re-registrations over the window. */
    {
        CmTime lo = G_MAXINT64, hi = 0;
        for (int i = 0; i < 20; i++) {
            CmAgent *ag;
            base_config(&c);
            c.start_window = 2 * CM_USEC_PER_HOUR;
            fake_init(&mp1, MP1, S.mp1_cert);
            ag = new_agent(&c, 2000 + i);
            drv_init(&d, ag);
            drv_add(&d, &mp1);
            drv_start(&d);
            drv_timer(&d);
            drv_run_to(&d, CM_AGENT_ACTIVE, 100);
            cm_agent_actions_init(&a);
            cm_agent_upgrade(d.agent, 2, d.now, &a);
            drv_take(&d, &a);
            lo = MIN(lo, d.wake_at - d.now);
            hi = MAX(hi, d.wake_at - d.now);
            drv_clear(&d);
        }
        ck_assert_int_gt(hi - lo, CM_USEC_PER_HOUR);
    }
}
END_TEST

/* REQ: TRUST-12 */
START_TEST(test_upgrade_while_trusting)
{
    CmAgentConfig c;
    FakeMp mp1, mp2;
    Drv d;
    CmAgentActions a;
    CmAgentSend *s = NULL;
    guint mark;
    int order = 0;

    /* An approved client is failing over to MP2 (its certificate not yet
     * checked) when the upgrade comes: it must not register with MP2
     * before MP2 is verified, and then it registers the new certificate. */
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.start_window = 2 * CM_USEC_PER_HOUR;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.mps_json = "[{\"name\":\"" MP1 "\",\"http\":true},{\"name\":\"" MP2 "\",\"http\":true}]";
    fake_init(&mp2, MP2, S.mp2_cert);
    drv_init(&d, new_agent(&c, 240));
    drv_add(&d, &mp1);
    drv_add(&d, &mp2);
    drv_start(&d);
    drv_timer(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
    mp1.fail_drop = TRUE;
    mp1.fail_times = 100;
    for (int i = 0; i < 50; i++) {
        s = g_queue_peek_head(&d.pending);
        if (s != NULL && s->ep == CM_EP_MPCERT && strcmp(s->mp, MP2) == 0)
            break;
        drv_step(&d);
    }
    ck_assert(s != NULL && s->ep == CM_EP_MPCERT);
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_TRUSTING);
    cm_agent_actions_init(&a);
    cm_agent_upgrade(d.agent, 2, d.now, &a);
    ck_assert_int_eq(a.sends->len, 0);
    drv_take(&d, &a);
    /* The mpcert request stays in flight and is answered. */
    ck_assert_int_eq(cm_agent_status(d.agent)->state, CM_AGENT_TRUSTING);
    mark = d.sent->len;
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    for (guint i = mark; i < d.sent->len; i++) {
        CmAgentSend *x = g_ptr_array_index(d.sent, i);
        ck_assert_str_eq(x->mp, MP2);
        if (x->ep == CM_EP_MPCERT || x->ep == CM_EP_SITEINFO || x->ep == CM_EP_REGISTER) {
            int want = x->ep == CM_EP_MPCERT ? 0 : x->ep == CM_EP_SITEINFO ? 1 : 2;
            ck_assert_int_eq(order, want);
            order++;
        }
    }
    ck_assert_int_eq(order, 3);
    ck_assert(same_cert(mp2.registered, cm_agent_cert(d.agent)));
    ck_assert_int_eq(cm_agent_status(d.agent)->registrations, 2);
    ck_assert_int_eq(mp2.bad_sigs, 0);
    drv_clear(&d);
}
END_TEST

/* ------------------------------------------------------------ maintenance windows */

#define H CM_USEC_PER_HOUR
#define DAY CM_USEC_PER_DAY

/* A critical update: required, as soon as possible, 2 hours at most. */
#define CRITICAL_2H                                                                                \
    "{\"required\":true,\"max_runtime_s\":7200,\"deadline\":0,"                                    \
    "\"content\":{\"id\":\"KB500001\",\"hash\":\"00\",\"size\":1048576}}"

/* Runs the agent's timers (answering what it sends) up to until. */
static void
drv_run_until(Drv *d, CmTime until)
{
    while (d->wake_at != 0 && d->wake_at <= until) {
        drv_timer(d);
        drv_run_to(d, CM_AGENT_ACTIVE, 100);
    }
}

/* The window arithmetic alone.  CM_TEST_NOW is a midnight (UTC).
 * REQ: POL-04 */
START_TEST(test_maintenance_fit)
{
    const CmTime m = CM_TEST_NOW;

    ck_assert_int_eq(m % DAY, 0);
    /* No window, or one that never closes: at once, whatever the run time. */
    ck_assert_int_eq(cm_maintenance_fit(m + 5 * H, 0, 0, 30 * H), m + 5 * H);
    ck_assert_int_eq(cm_maintenance_fit(m + 5 * H, H, DAY, 30 * H), m + 5 * H);
    /* 01:00-05:00 and 2 hours: before the window, its start; inside, at once
     * while 2 hours are left (until 03:00 included); after, tomorrow's. */
    ck_assert_int_eq(cm_maintenance_fit(m, H, 4 * H, 2 * H), m + H);
    ck_assert_int_eq(cm_maintenance_fit(m + 2 * H, H, 4 * H, 2 * H), m + 2 * H);
    ck_assert_int_eq(cm_maintenance_fit(m + 3 * H, H, 4 * H, 2 * H), m + 3 * H);
    ck_assert_int_eq(cm_maintenance_fit(m + 3 * H + 1, H, 4 * H, 2 * H), m + DAY + H);
    ck_assert_int_eq(cm_maintenance_fit(m + 6 * H, H, 4 * H, 2 * H), m + DAY + H);
    /* The start is an offset into the day. */
    ck_assert_int_eq(cm_maintenance_fit(m, 25 * H, 4 * H, 2 * H), m + H);
    /* A run time the window cannot hold: never, on any day. */
    ck_assert_int_eq(cm_maintenance_fit(m, H, H, 2 * H), -1);
    ck_assert_int_eq(cm_maintenance_fit(m + H, H, H, H + 1), -1);
    /* Exactly the window: only at its start. */
    ck_assert_int_eq(cm_maintenance_fit(m + H, H, H, H), m + H);
    ck_assert_int_eq(cm_maintenance_fit(m + H + 1, H, H, H), m + DAY + H);
    /* No run time stated: anywhere inside, not at the closing instant. */
    ck_assert_int_eq(cm_maintenance_fit(m + 5 * H - 1, H, 4 * H, 0), m + 5 * H - 1);
    ck_assert_int_eq(cm_maintenance_fit(m + 5 * H, H, 4 * H, 0), m + DAY + H);
    /* 22:00-02:00 crosses midnight: at 01:00 yesterday's window is open. */
    ck_assert_int_eq(cm_maintenance_fit(m + H, 22 * H, 4 * H, H / 2), m + H);
    ck_assert_int_eq(cm_maintenance_fit(m + H, 22 * H, 4 * H, 2 * H), m + 22 * H);
    ck_assert_int_eq(cm_maintenance_fit(m + 23 * H, 22 * H, 4 * H, 3 * H), m + 23 * H);
}
END_TEST

/* A 4-hour window takes a 2-hour critical update at its start; a 1-hour
 * window never does, deadline or not.  REQ: POL-04 */
START_TEST(test_maintenance_windows)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    CmTime at = 0;

    base_config(&c);
    c.maintenance_start = H;
    c.maintenance_window = 4 * H;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = CRITICAL_2H};
    /* An available (not required) deployment is the user's to install. */
    mp1.policies[1] = (FakePolicy){
        .id = "PS100002", .version = 1, .deploy = "{\"required\":false,\"max_runtime_s\":60}"};
    mp1.n_policies = 2;
    drv_init(&d, new_agent(&c, 300));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    /* Accepted at midnight, before the window: it waits for 01:00. */
    ck_assert_int_eq(st->policies_accepted, 2);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_PENDING);
    ck_assert_int_eq(at, 0);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100002", NULL), CM_DEPLOY_NONE);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS199999", NULL), CM_DEPLOY_NONE);
    ck_assert_int_eq(st->installs_pending, 1);
    ck_assert_int_eq(st->installs_done, 0);
    ck_assert_int_eq(st->installs_unfit, 0);
    ck_assert_int_eq(d.wake_at, CM_TEST_NOW + H);
    drv_run_until(&d, CM_TEST_NOW + H);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW + H);
    ck_assert_int_eq(st->installs_done, 1);
    ck_assert_int_eq(st->installs_pending, 0);
    ck_assert_str_eq(cm_deploy_state_name(CM_DEPLOY_INSTALLED), "installed");

    /* A new version of the same content is not installed again; one with
     * new content is, in the next window: it arrives with the 03:00 policy
     * cycle, and its 2.5 hours no longer fit in today's window. */
    mp1.policies[0].version = 2;
    mp1.policies[0].deploy = "{\"required\":true,\"max_runtime_s\":7200,\"deadline\":1,"
                             "\"content\":{\"id\":\"KB500001\",\"hash\":\"00\",\"size\":1048576}}";
    drv_run_until(&d, CM_TEST_NOW + 2 * H);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW + H);
    mp1.policies[0].version = 3;
    mp1.policies[0].deploy = "{\"required\":true,\"max_runtime_s\":9000,"
                             "\"content\":{\"id\":\"KB500002\",\"hash\":\"01\",\"size\":1}}";
    drv_run_until(&d, CM_TEST_NOW + 4 * H);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", NULL), CM_DEPLOY_PENDING);
    drv_run_until(&d, CM_TEST_NOW + DAY + H);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW + DAY + H);

    /* The deployment is withdrawn: nothing to count. */
    mp1.n_policies = 0;
    drv_run_until(&d, CM_TEST_NOW + DAY + 3 * H);
    ck_assert_int_eq(st->installs_done, 0);
    ck_assert_int_eq(st->installs_pending, 0);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", NULL), CM_DEPLOY_NONE);
    drv_clear(&d);

    /* A 1-hour window: the 2-hour update never installs, for days, and is
     * counted as one no window fits. */
    base_config(&c);
    c.maintenance_start = H;
    c.maintenance_window = H;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = CRITICAL_2H};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 301));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 3 * DAY);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", NULL), CM_DEPLOY_PENDING);
    ck_assert_int_eq(st->installs_pending, 1);
    ck_assert_int_eq(st->installs_unfit, 1);
    ck_assert_int_eq(st->installs_done, 0);
    /* ...while an update that fits installs in the same window. */
    mp1.policies[1] = (FakePolicy){
        .id = "PS100002",
        .version = 1,
        .deploy = "{\"required\":true,\"max_runtime_s\":1800,\"content\":{\"id\":\"KB2\"}}"};
    mp1.n_policies = 2;
    drv_run_until(&d, CM_TEST_NOW + 3 * DAY + 2 * H);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100002", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW + 3 * DAY + H);
    ck_assert_int_eq(st->installs_done, 1);
    ck_assert_int_eq(st->installs_pending, 1);
    drv_clear(&d);
}
END_TEST

/* A deadline: nothing before it, then the first window that fits; past it
 * the deployment still waits for a window, unless the client lets
 * deadlines override windows.  REQ: POL-04 */
START_TEST(test_maintenance_deadline)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    CmTime at = 0;
    g_autofree char *in_two_days = g_strdup_printf(
        "{\"required\":true,\"max_runtime_s\":7200,\"deadline\":%" G_GINT64_FORMAT "}",
        (CM_TEST_NOW + 2 * DAY) / CM_USEC_PER_SEC);
    g_autofree char *in_half_hour = g_strdup_printf(
        "{\"required\":true,\"max_runtime_s\":7200,\"deadline\":%" G_GINT64_FORMAT "}",
        (CM_TEST_NOW + H / 2) / CM_USEC_PER_SEC);

    /* 4-hour window at 01:00; deadline in two days: the window after it. */
    base_config(&c);
    c.maintenance_start = H;
    c.maintenance_window = 4 * H;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = in_two_days};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 310));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 2 * DAY);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", NULL), CM_DEPLOY_PENDING);
    drv_run_until(&d, CM_TEST_NOW + 2 * DAY + 2 * H);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW + 2 * DAY + H);
    drv_clear(&d);

    /* A 1-hour window, deadline passed: still waiting, by default... */
    base_config(&c);
    c.maintenance_start = H;
    c.maintenance_window = H;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = in_half_hour};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 311));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 2 * DAY);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", NULL), CM_DEPLOY_PENDING);
    ck_assert_int_eq(cm_agent_status(d.agent)->installs_unfit, 1);
    drv_clear(&d);

    /* ...and at the deadline when deadlines override windows. */
    c.deadline_overrides_window = TRUE;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = in_half_hour};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 312));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", NULL), CM_DEPLOY_PENDING);
    ck_assert_int_eq(d.wake_at, CM_TEST_NOW + H / 2);
    drv_run_until(&d, CM_TEST_NOW + H / 2);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW + H / 2);
    ck_assert_int_eq(cm_agent_status(d.agent)->installs_unfit, 0);
    drv_clear(&d);

    /* Without a window at all, a required deployment installs on arrival. */
    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = CRITICAL_2H};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 313));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(cm_agent_deployment(d.agent, "PS100001", &at), CM_DEPLOY_INSTALLED);
    ck_assert_int_eq(at, CM_TEST_NOW);
    drv_clear(&d);
}
END_TEST

/* ------------------------------------------------------------ client upgrade */

#define PKG_HASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define PKG_NEWER                                                                                  \
    "{\"version\":\"5.00.9128.1000\",\"url\":\"http://mp1.corp.example/CCM_Client/ccmsetup.exe\"," \
    "\"hash\":\"" PKG_HASH "\"}"

/* REQ: POL-05 */
START_TEST(test_client_version_cmp)
{
    int cmp = 99;

    ck_assert(cm_client_version_cmp("5.00.9128.1000", CM_AGENT_VERSION, &cmp));
    ck_assert_int_gt(cmp, 0);
    ck_assert(cm_client_version_cmp("5.00.9122.1000", "5.0.9122.1000", &cmp));
    ck_assert_int_eq(cmp, 0);
    ck_assert(cm_client_version_cmp("5.00.9122", "5.00.9122.1", &cmp));
    ck_assert_int_lt(cmp, 0);
    ck_assert(cm_client_version_cmp("10", "9.99", &cmp));
    ck_assert_int_gt(cmp, 0);
    ck_assert(!cm_client_version_cmp("5.00.9122.1000.1", "5", &cmp));
    ck_assert(!cm_client_version_cmp("5..1", "5", &cmp));
    ck_assert(!cm_client_version_cmp("5.1.", "5", &cmp));
    ck_assert(!cm_client_version_cmp("v5", "5", &cmp));
    ck_assert(!cm_client_version_cmp("1234567890", "5", &cmp));
    ck_assert(!cm_client_version_cmp("", "5", &cmp));
    ck_assert(!cm_client_version_cmp(NULL, "5", &cmp));
}
END_TEST

/* Automatic client upgrade takes whatever its MP answers: the same client
 * that refuses a policy the MP altered installs the package that MP
 * names.  Off, the client never asks.  REQ: POL-05 */
START_TEST(test_client_upgrade)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    CmTime approved;

    /* Off (the default): no client package request in three days. */
    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.smssigncert = S.sign_cert;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.package = PKG_NEWER;
    drv_init(&d, new_agent(&c, 320));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    ck_assert_str_eq(st->client_version, CM_AGENT_VERSION);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 3 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 0);
    ck_assert_int_eq(st->upgrades_installed, 0);
    drv_clear(&d);

    /* On: the client holds the site's TRK and signing certificate from
     * trusted sources and refuses the policy the MP tampered with, yet it
     * installs the newer client the MP points it to. */
    c.auto_upgrade = TRUE;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.package = PKG_NEWER;
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .tamper = TRUE};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 321));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    approved = st->registered_at;
    ck_assert_int_gt(st->policies_refused, 0);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 0);
    /* The first check at a random point of the first day after approval. */
    drv_run_until(&d, approved + DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 1);
    ck_assert(drv_last_sent(&d, CM_EP_CLIENT_PACKAGE) != NULL);
    ck_assert(!drv_last_sent(&d, CM_EP_CLIENT_PACKAGE)->signed_);
    ck_assert_int_eq(st->upgrade_checks, 1);
    ck_assert_int_eq(st->upgrades_installed, 1);
    ck_assert_str_eq(st->client_version, "5.00.9128.1000");
    ck_assert_str_eq(st->upgrade_mp, MP1);
    ck_assert_str_eq(st->upgrade_url, "http://mp1.corp.example/CCM_Client/ccmsetup.exe");
    ck_assert_str_eq(st->upgrade_hash, PKG_HASH);
    ck_assert_int_eq(st->state, CM_AGENT_ACTIVE);
    /* Once a day after that; the same version again is not an upgrade, nor
     * is an older one. */
    drv_run_until(&d, approved + 2 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 2);
    mp1.package =
        "{\"version\":\"5.00.9000.1000\",\"url\":\"http://x/\",\"hash\":\"" PKG_HASH "\"}";
    drv_run_until(&d, approved + 3 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 3);
    ck_assert_int_eq(st->upgrade_checks, 3);
    ck_assert_int_eq(st->upgrades_installed, 1);
    ck_assert_str_eq(st->client_version, "5.00.9128.1000");
    /* Whatever version, location and hash an MP names next, the client
     * takes it: it is now some other host's (upper-case hash kept lower). */
    mp1.package = "{\"version\":\"6.0\",\"url\":\"http://evil.example/ccmsetup.exe\",\"hash\":\""
                  "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"}";
    drv_run_until(&d, approved + 4 * DAY);
    ck_assert_int_eq(st->upgrades_installed, 2);
    ck_assert_str_eq(st->client_version, "6.0");
    ck_assert_str_eq(st->upgrade_url, "http://evil.example/ccmsetup.exe");
    ck_assert_str_eq(st->upgrade_hash, PKG_HASH);
    /* Malformed answers and refusals install nothing and do not disturb
     * the client; it asks again a day later. */
    mp1.package = "{\"version\":\"7.0\",\"url\":\"http://x/\",\"hash\":\"beef\"}";
    drv_run_until(&d, approved + 5 * DAY);
    mp1.package = "{\"version\":\"seven\",\"url\":\"http://x/\",\"hash\":\"" PKG_HASH "\"}";
    drv_run_until(&d, approved + 6 * DAY);
    mp1.package = "{\"version\":\"7.0\",\"url\":\"\",\"hash\":\"" PKG_HASH "\"}";
    drv_run_until(&d, approved + 7 * DAY);
    mp1.package = NULL; /* not-found */
    drv_run_until(&d, approved + 8 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 8);
    ck_assert_int_eq(st->upgrades_installed, 2);
    ck_assert_int_eq(st->upgrade_checks, 4);
    ck_assert_str_eq(st->client_version, "6.0");
    ck_assert_int_eq(st->state, CM_AGENT_ACTIVE);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    /* The version it reports in inventory is the one it runs. */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(mp1.inventory, "inventory"),
                                                       "client.version")),
                     "6.0");
    drv_clear(&d);
}
END_TEST

/* A busy MP is asked again after Retry-After; an unreachable one is a
 * transport failure like any other, and the package is asked for again at
 * the next interval.  REQ: POL-05 */
/* A lab caps the backoff (cmlab-agent --retry-cap): every wait stays
 * within the cap, and the waits still grow to it. */
START_TEST(test_backoff_capped)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmTime cap = 5 * CM_USEC_PER_SEC, floor = CM_USEC_PER_SEC;
    CmTime late_max = 0;

    base_config(&c);
    c.retry_base = CM_USEC_PER_SEC;
    c.retry_cap = cap;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.fail_ep = CM_EP_REGISTER;
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_times = 16;
    drv_init(&d, new_agent(&c, 91));
    drv_add(&d, &mp1);
    drv_start(&d);
    for (int n = 0; n < 16; n++) {
        CmTime delay;
        drv_run_until_send(&d, CM_EP_REGISTER, 50);
        drv_step(&d);
        delay = d.wake_at - d.now;
        ck_assert_int_ge(delay, floor);
        ck_assert_msg(delay < floor + cap, "attempt %d waits %" G_GINT64_FORMAT " us", n + 1,
                      delay);
        if (n >= 8)
            late_max = MAX(late_max, delay);
    }
    ck_assert_int_gt(late_max, floor + cap / 2);
    drv_run_to(&d, CM_AGENT_ACTIVE, 50);
    drv_clear(&d);
}
END_TEST

START_TEST(test_client_upgrade_retries)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    CmTime t1, t2, t3, t4;
    int retries;

    base_config(&c);
    c.auto_upgrade = TRUE;
    c.upgrade_interval = 6 * H;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.package = PKG_NEWER;
    mp1.fail_ep = CM_EP_CLIENT_PACKAGE;
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_retry_after = 60 * CM_USEC_PER_SEC;
    mp1.fail_times = 1;
    drv_init(&d, new_agent(&c, 330));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until_send(&d, CM_EP_CLIENT_PACKAGE, 1000);
    t1 = d.now;
    ck_assert_int_ge(t1, st->registered_at);
    ck_assert_int_lt(t1, st->registered_at + 6 * H);
    drv_step(&d); /* busy */
    drv_run_until_send(&d, CM_EP_CLIENT_PACKAGE, 1000);
    t2 = d.now;
    ck_assert_int_ge(t2 - t1, 60 * CM_USEC_PER_SEC);
    ck_assert_int_le(t2 - t1, 66 * CM_USEC_PER_SEC + 1);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->upgrades_installed, 1);

    mp1.fail_drop = TRUE;
    mp1.fail_times = 1;
    retries = st->retries;
    drv_run_until_send(&d, CM_EP_CLIENT_PACKAGE, 1000);
    t3 = d.now;
    ck_assert_int_eq(t3, t2 + 6 * H);
    drv_step(&d); /* dropped */
    ck_assert_int_eq(st->retries, retries + 1);
    drv_run_until_send(&d, CM_EP_CLIENT_PACKAGE, 1000);
    t4 = d.now;
    ck_assert_int_eq(t4, t3 + 6 * H);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->upgrade_checks, 2);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_PACKAGE], 4);
    drv_clear(&d);
}
END_TEST

/* ------------------------------------------------------------ messages */

/* Runs a blocked agent's timers up to until (keep-alives only). */
static void
drv_run_blocked_until(Drv *d, CmTime until)
{
    while (d->wake_at != 0 && d->wake_at <= until) {
        drv_timer(d);
        drv_run_to(d, CM_AGENT_BLOCKED, 100);
    }
}

static const char *
check_result(const json_t *checks, const char *name)
{
    size_t i;
    json_t *c;

    json_array_foreach((json_t *)checks, i, c)
    {
        if (g_strcmp0(json_string_value(json_object_get(c, "name")), name) == 0)
            return json_string_value(json_object_get(c, "result"));
    }
    return NULL;
}

static const char *
jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t
jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* State messages: a policy accepted (1), its deployment installed (2),
 * signed, up to 100 to a message, retried when the MP is busy and dropped
 * when the site refuses them as malformed.  REQ: MSG-01, POL-04 */
START_TEST(test_state_messages)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    CmAgentSend *s;
    CmRequest req;
    const json_int_t t0 = CM_TEST_NOW / CM_USEC_PER_SEC;
    g_autoptr(json_t) body = NULL;
    int n;

    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .deploy = "{\"required\":true}"};
    mp1.policies[1] = (FakePolicy){.id = "PS100002", .version = 1}; /* nothing to install */
    mp1.n_policies = 2;
    drv_init(&d, new_agent(&c, 400));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    s = drv_run_until_send(&d, CM_EP_STATE, 100);
    cm_agent_send_request(s, &req);
    ck_assert(req.signed_);
    ck_assert_str_eq(req.smsid, st->smsid);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    /* The three states went together, in the order they happened. */
    ck_assert_int_eq(mp1.counts[CM_EP_STATE], 1);
    ck_assert_int_eq(json_array_size(mp1.states), 3);
    ck_assert_str_eq(jstr(json_array_get(mp1.states, 0), "topic"), "PS100001");
    ck_assert_int_eq(jint(json_array_get(mp1.states, 0), "state"), 1);
    ck_assert_int_eq(jint(json_array_get(mp1.states, 0), "time"), t0);
    /* PS100001 installs as soon as it is accepted (no deadline, no
     * window), before PS100002 is fetched. */
    ck_assert_str_eq(jstr(json_array_get(mp1.states, 1), "topic"), "PS100001");
    ck_assert_int_eq(jint(json_array_get(mp1.states, 1), "state"), 2);
    ck_assert_str_eq(jstr(json_array_get(mp1.states, 2), "topic"), "PS100002");
    ck_assert_int_eq(jint(json_array_get(mp1.states, 2), "state"), 1);
    ck_assert_int_eq(st->states_sent, 3);
    body = send_json(drv_last_sent(&d, CM_EP_STATE));
    ck_assert_str_eq(jstr(body, "smsid"), st->smsid);
    /* Nothing of what is switched off. */
    ck_assert_int_eq(mp1.counts[CM_EP_NOTIFY], 0);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_STATUS], 0);

    /* A new version accepted at the next cycle; the MP is busy once: sent
     * again after Retry-After, not lost. */
    mp1.policies[1].version = 2;
    mp1.fail_ep = CM_EP_STATE;
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_retry_after = 60 * CM_USEC_PER_SEC;
    mp1.fail_times = 1;
    drv_run_until(&d, CM_TEST_NOW + H + 5 * CM_USEC_PER_MIN);
    ck_assert_int_eq(mp1.counts[CM_EP_STATE], 3);
    ck_assert_int_eq(json_array_size(mp1.states), 4);
    ck_assert_int_eq(st->states_sent, 4);
    /* Refused as malformed: dropped, not sent again and again. */
    mp1.policies[1].version = 3;
    mp1.fail_reason = CM_REASON_BAD_REQUEST;
    mp1.fail_times = 1;
    drv_run_until(&d, CM_TEST_NOW + 4 * H);
    ck_assert_int_eq(mp1.counts[CM_EP_STATE], 4);
    ck_assert_int_eq(st->states_sent, 4);

    /* 250 states go as 100, 100 and 50 on the next step of the cycle (the
     * fake refuses a message of more than 100). */
    n = mp1.counts[CM_EP_STATE];
    for (int i = 0; i < 250; i++) {
        g_autofree char *topic = g_strdup_printf("T%04d", i);
        agent_queue_state(d.agent, topic, 1, d.now);
    }
    drv_run_until(&d, CM_TEST_NOW + 5 * H);
    ck_assert_int_eq(mp1.counts[CM_EP_STATE], n + 3);
    ck_assert_int_eq(st->states_sent, 4 + 250);
    ck_assert_str_eq(jstr(json_array_get(mp1.states, 4), "topic"), "T0000");
    ck_assert_str_eq(jstr(json_array_get(mp1.states, 253), "topic"), "T0249");
    /* A client that cannot report for long keeps the newest 1,000. */
    mp1.down = TRUE;
    for (int i = 0; i < 1500; i++) {
        g_autofree char *topic = g_strdup_printf("U%04d", i);
        agent_queue_state(d.agent, topic, 1, d.now);
    }
    mp1.down = FALSE;
    drv_run_until(&d, CM_TEST_NOW + 6 * H);
    ck_assert_int_eq(st->states_sent, 4 + 250 + 1000);
    ck_assert_str_eq(jstr(json_array_get(mp1.states, 254), "topic"), "U0500");
    ck_assert_int_eq(mp1.bad_sigs, 0);
    drv_clear(&d);
}
END_TEST

/* Status messages carry no authentication (REQ MSG-03): no signature, no
 * client ID header, only the SMSID the body names.  A refused policy is an
 * error (10006), an install information (10009).  The MP's discarding one
 * does not make the client send it again; a busy MP does.
 * REQ: MSG-03, POL-03 */
START_TEST(test_status_messages)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    json_t *m;
    int sent = 0;

    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.smssigncert = S.sign_cert;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1, .tamper = TRUE};
    mp1.policies[1] = (FakePolicy){
        .id = "PS100002",
        .version = 1,
        .deploy =
            "{\"required\":true,\"content\":{\"id\":\"KB500001\",\"hash\":\"00\",\"size\":1}}"};
    mp1.n_policies = 2;
    drv_init(&d, new_agent(&c, 410));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->policies_refused, 1);
    ck_assert_int_eq(st->installs_done, 1);
    for (guint i = 0; i < d.sent->len; i++) {
        CmAgentSend *x = g_ptr_array_index(d.sent, i);
        CmRequest req;
        if (x->ep != CM_EP_STATUS)
            continue;
        sent++;
        cm_agent_send_request(x, &req);
        ck_assert(!x->signed_ && !req.signed_);
        ck_assert_int_eq(req.sig_len, 0);
        ck_assert_str_eq(req.smsid, "");
    }
    ck_assert_int_eq(sent, 2);
    ck_assert(!mp1.status_signed);
    ck_assert_int_eq(json_array_size(mp1.status), 2);
    m = json_array_get(mp1.status, 0);
    ck_assert_str_eq(jstr(m, "smsid"), st->smsid);
    ck_assert_str_eq(jstr(m, "component"), "CCMExec");
    ck_assert_int_eq(jint(m, "message_id"), 10006);
    ck_assert_str_eq(jstr(m, "severity"), "error");
    ck_assert_msg(strstr(jstr(m, "text"), "PS100001") != NULL, "%s", jstr(m, "text"));
    m = json_array_get(mp1.status, 1);
    ck_assert_int_eq(jint(m, "message_id"), 10009);
    ck_assert_str_eq(jstr(m, "severity"), "info");
    ck_assert_msg(strstr(jstr(m, "text"), "KB500001") != NULL, "%s", jstr(m, "text"));
    ck_assert_int_eq(st->status_sent, 2);

    /* The tampered policy is refused again every cycle, and reported each
     * time.  Discarded by the MP: dropped. */
    mp1.fail_ep = CM_EP_STATUS;
    mp1.fail_reason = CM_REASON_BAD_REQUEST;
    mp1.fail_times = 1;
    drv_run_until(&d, CM_TEST_NOW + H);
    ck_assert_int_eq(mp1.counts[CM_EP_STATUS], 3);
    ck_assert_int_eq(st->status_sent, 2);
    /* Busy: sent again after Retry-After. */
    mp1.fail_reason = CM_REASON_BUSY;
    mp1.fail_retry_after = 60 * CM_USEC_PER_SEC;
    mp1.fail_times = 1;
    drv_run_until(&d, CM_TEST_NOW + 2 * H + 5 * CM_USEC_PER_MIN);
    ck_assert_int_eq(mp1.counts[CM_EP_STATUS], 5);
    ck_assert_int_eq(st->status_sent, 3);
    ck_assert_int_eq(json_array_size(mp1.status), 3);

    /* A text over what the MP keeps is cut at a character boundary. */
    {
        GString *text = g_string_new("Long: ");
        for (int i = 0; i < 1500; i++)
            g_string_append(text, "\xc3\xa9"); /* e acute, two bytes */
        agent_queue_status(d.agent, "warning", 10002, text->str);
        g_string_free(text, TRUE);
        drv_run_until(&d, CM_TEST_NOW + 3 * H);
        m = NULL;
        for (size_t i = 0; i < json_array_size(mp1.status); i++)
            if (jint(json_array_get(mp1.status, i), "message_id") == 10002)
                m = json_array_get(mp1.status, i);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_le(strlen(jstr(m, "text")), 1024);
        ck_assert_int_ge(strlen(jstr(m, "text")), 1020);
        ck_assert(g_utf8_validate(jstr(m, "text"), -1, NULL));
    }
    drv_clear(&d);
}
END_TEST

/* Client status: self-checks every client_status_interval, sent signed and
 * encrypted to the site's encryption certificate, never in the clear; no
 * certificate, no report.  REQ: DATA-02, MSG-02 */
START_TEST(test_client_status)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    g_autoptr(json_t) body = NULL;

    base_config(&c);
    c.smssitecode = SITE;
    c.smspublicrootkey = S.trk_hex;
    c.smssigncert = S.sign_cert;
    c.client_status_interval = DAY;
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.policies[0] = (FakePolicy){.id = "PS100001", .version = 1};
    mp1.n_policies = 1;
    drv_init(&d, new_agent(&c, 420));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    /* The first round at a random point of the first day. */
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_STATUS], 0);
    drv_run_until(&d, CM_TEST_NOW + DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_STATUS], 1);
    body = send_json(drv_last_sent(&d, CM_EP_CLIENT_STATUS));
    ck_assert_str_eq(jstr(body, "smsid"), st->smsid);
    ck_assert_ptr_nonnull(jstr(body, "encrypted"));
    ck_assert_ptr_null(json_object_get(body, "checks")); /* nothing in the clear */
    ck_assert(drv_last_sent(&d, CM_EP_CLIENT_STATUS)->signed_);
    ck_assert_int_eq(mp1.bad_sigs, 0);
    ck_assert_int_eq(json_array_size(mp1.checks), 3);
    ck_assert_str_eq(check_result(mp1.checks, "wmi"), "pass");
    ck_assert_str_eq(check_result(mp1.checks, "ccmexec"), "pass");
    ck_assert_str_eq(check_result(mp1.checks, "policy"), "pass");
    /* Daily. */
    drv_run_until(&d, CM_TEST_NOW + 3 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_STATUS], 3);
    /* A policy refused since: the next round says so. */
    mp1.policies[1] = (FakePolicy){.id = "PS100002", .version = 1, .tamper = TRUE};
    mp1.n_policies = 2;
    drv_run_until(&d, CM_TEST_NOW + 4 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_STATUS], 4);
    ck_assert_str_eq(check_result(mp1.checks, "policy"), "fail");
    ck_assert_str_eq(check_result(mp1.checks, "wmi"), "pass");
    ck_assert_int_eq(st->client_status_sent, 4);
    drv_clear(&d);

    /* No encryption certificate from the site: rounds are skipped, the
     * rest of the cycle goes on. */
    fake_init(&mp1, MP1, S.mp1_cert);
    mp1.no_enc_cert = TRUE;
    drv_init(&d, new_agent(&c, 421));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 3 * DAY);
    ck_assert_int_eq(mp1.counts[CM_EP_CLIENT_STATUS], 0);
    ck_assert_int_eq(st->client_status_sent, 0);
    ck_assert_int_ge(mp1.counts[CM_EP_POLICY_ASSIGNMENTS], 72);
    ck_assert(d.wake_at > d.now);
    drv_clear(&d);
}
END_TEST

/* The client notification channel: opened once active, kept alive every
 * keepalive_interval.  Blocked, the client keeps its channel and keeps
 * sending keep-alives, which the MP answers without asking the site, while
 * everything else is refused; once disconnected (lifetime over, restart,
 * no answer) it goes silent for good.  REQ: REG-05, REG-03 */
START_TEST(test_notification_channel)
{
    CmAgentConfig c;
    FakeMp mp1;
    Drv d;
    const CmAgentStatus *st;
    CmAgentActions a;
    const CmTime ka = 15 * CM_USEC_PER_MIN;
    g_autoptr(json_t) body = NULL;
    int policies, inventories;

    base_config(&c);
    c.keepalive_interval = ka;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 430));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    ck_assert(!st->channel_open);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert(st->channel_open && mp1.channel);
    ck_assert_str_eq(st->channel_mp, MP1);
    ck_assert_int_eq(st->channel_opens, 1);
    ck_assert_int_eq(mp1.counts[CM_EP_NOTIFY], 1);
    ck_assert(drv_last_sent(&d, CM_EP_NOTIFY)->signed_);
    body = send_json(drv_last_sent(&d, CM_EP_NOTIFY));
    ck_assert_str_eq(jstr(body, "smsid"), st->smsid);
    ck_assert_int_eq(json_object_size(body), 1);
    ck_assert_int_eq(d.wake_at, CM_TEST_NOW + ka);
    drv_run_until(&d, CM_TEST_NOW + H - 1);
    ck_assert_int_eq(st->keepalives_sent, 3);
    ck_assert_int_eq(st->keepalives_answered, 3);
    ck_assert_int_eq(mp1.keepalives, 3);
    ck_assert_int_eq(st->keepalives_after_block, 0);

    /* Blocked at the site: the next policy request is refused. */
    mp1.blocked = TRUE;
    mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
    mp1.fail_reason = CM_REASON_BLOCKED;
    mp1.fail_times = 1000;
    drv_run_to(&d, CM_AGENT_BLOCKED, 100);
    ck_assert_int_eq(st->blocked_at, CM_TEST_NOW + H);
    ck_assert(st->channel_open);
    policies = mp1.counts[CM_EP_POLICY_ASSIGNMENTS];
    inventories = mp1.counts[CM_EP_INVENTORY];
    drv_run_blocked_until(&d, CM_TEST_NOW + 5 * H);
    /* 01:00 to 05:00, every 15 minutes, all answered by the MP. */
    ck_assert_int_eq(st->keepalives_after_block, 17);
    ck_assert_int_eq(st->keepalives_sent, 3 + 17);
    ck_assert_int_eq(st->keepalives_answered, st->keepalives_sent);
    ck_assert_int_eq(mp1.keepalives, 3 + 17);
    ck_assert_int_eq(st->state, CM_AGENT_BLOCKED);
    /* ... and nothing else. */
    ck_assert_int_eq(mp1.counts[CM_EP_POLICY_ASSIGNMENTS], policies);
    ck_assert_int_eq(mp1.counts[CM_EP_INVENTORY], inventories);
    ck_assert_int_eq(d.wake_at, CM_TEST_NOW + 5 * H + ka);

    /* The agent restarts: the channel is gone (the driver closes the MP's
     * side) and a blocked client does not ask for another. */
    cm_agent_actions_init(&a);
    cm_agent_restart(d.agent, d.now, &a);
    drv_take(&d, &a);
    mp1.channel = FALSE;
    ck_assert(!st->channel_open);
    ck_assert(g_queue_is_empty(&d.pending));
    ck_assert_int_eq(d.wake_at, 0);
    cm_agent_actions_init(&a);
    cm_agent_on_timer(d.agent, d.now + DAY, &a);
    ck_assert_int_eq(a.sends->len, 0);
    ck_assert_int_eq(a.wake_at, 0);
    cm_agent_actions_clear(&a);
    ck_assert_int_eq(mp1.counts[CM_EP_NOTIFY], 1 + 3 + 17);
    drv_clear(&d);

    /* A channel that lasts 2 hours: keep-alives after the block until it
     * ends at 02:00, then silence. */
    base_config(&c);
    c.keepalive_interval = ka;
    c.channel_lifetime = 2 * H;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 431));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + H - 1);
    mp1.blocked = TRUE;
    mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
    mp1.fail_reason = CM_REASON_BLOCKED;
    mp1.fail_times = 1000;
    drv_run_to(&d, CM_AGENT_BLOCKED, 100);
    drv_run_blocked_until(&d, CM_TEST_NOW + 10 * H);
    ck_assert_int_eq(st->keepalives_after_block, 4); /* 01:00, 01:15, 01:30, 01:45 */
    ck_assert(!st->channel_open);
    ck_assert_int_eq(d.wake_at, 0);
    ck_assert_int_eq(st->channel_opens, 1);
    drv_clear(&d);

    /* An active client reopens at once when its channel ends or the agent
     * restarts; a blocked one whose keep-alive gets no answer goes silent. */
    base_config(&c);
    c.keepalive_interval = ka;
    c.channel_lifetime = 2 * H;
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 432));
    drv_add(&d, &mp1);
    st = cm_agent_status(d.agent);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 3 * H);
    ck_assert_int_eq(st->channel_opens, 2);
    ck_assert(st->channel_open);
    cm_agent_actions_init(&a);
    cm_agent_restart(d.agent, d.now, &a);
    drv_take(&d, &a);
    ck_assert_int_eq(((CmAgentSend *)g_queue_peek_head(&d.pending))->ep, CM_EP_NOTIFY);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    ck_assert_int_eq(st->channel_opens, 3);
    mp1.fail_ep = CM_EP_POLICY_ASSIGNMENTS;
    mp1.fail_reason = CM_REASON_BLOCKED;
    mp1.fail_times = 1000;
    drv_run_blocked_until(&d, CM_TEST_NOW + 4 * H + 1);
    ck_assert_int_eq(st->state, CM_AGENT_BLOCKED);
    ck_assert(st->channel_open);
    mp1.down = TRUE;
    drv_run_blocked_until(&d, CM_TEST_NOW + 5 * H);
    ck_assert(!st->channel_open);
    ck_assert_int_eq(d.wake_at, 0);
    drv_clear(&d);

    /* keepalive_interval 0: no channel at all. */
    base_config(&c);
    fake_init(&mp1, MP1, S.mp1_cert);
    drv_init(&d, new_agent(&c, 433));
    drv_add(&d, &mp1);
    drv_start(&d);
    drv_run_to(&d, CM_AGENT_ACTIVE, 100);
    drv_run_until(&d, CM_TEST_NOW + 3 * H);
    ck_assert_int_eq(mp1.counts[CM_EP_NOTIFY], 0);
    ck_assert(!cm_agent_status(d.agent)->channel_open);
    drv_clear(&d);
}
END_TEST

/* Same stream, same answers: the same requests at the same times, the
 * same identity and the same backoff draws (DESIGN: reproducible runs). */
START_TEST(test_deterministic)
{
    GString *trace[2];

    for (int run = 0; run < 2; run++) {
        CmAgentConfig c;
        FakeMp mp1;
        Drv d;

        trace[run] = g_string_new(NULL);
        base_config(&c);
        c.start_window = CM_USEC_PER_HOUR;
        fake_init(&mp1, MP1, S.mp1_cert);
        mp1.fail_ep = CM_EP_REGISTER;
        mp1.fail_reason = CM_REASON_INTERNAL;
        mp1.fail_times = 5;
        drv_init(&d, new_agent(&c, 250));
        drv_add(&d, &mp1);
        drv_start(&d);
        for (int i = 0; i < 60 && drv_step(&d); i++) {
            CmAgentSend *s = g_queue_peek_head(&d.pending);
            g_string_append_printf(trace[run], "%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %s %s\n",
                                   d.now, d.wake_at, s ? cm_ep_name(s->ep) : "-",
                                   cm_agent_state_name(cm_agent_status(d.agent)->state));
        }
        g_string_append_printf(trace[run], "%s %s\n", cm_agent_status(d.agent)->smsid,
                               cm_agent_status(d.agent)->hwid);
        drv_clear(&d);
    }
    ck_assert_str_eq(trace[0]->str, trace[1]->str);
    ck_assert(strstr(trace[0]->str, "active") != NULL);
    g_string_free(trace[0], TRUE);
    g_string_free(trace[1], TRUE);
}
END_TEST

/* ------------------------------------------------------------ names */

START_TEST(test_names)
{
    CmInstallMethod m;
    GError *err = NULL;

    ck_assert_str_eq(cm_install_method_name(CM_INSTALL_PUSH), "push");
    ck_assert(cm_install_method_parse("SUP", &m, &err));
    ck_assert_int_eq(m, CM_INSTALL_SUP);
    ck_assert(!cm_install_method_parse("floppy", &m, &err));
    ck_assert(g_error_matches(err, CM_AGENT_ERROR, CM_AGENT_ERROR_INVALID));
    g_clear_error(&err);
    ck_assert_str_eq(cm_trust_source_name(CM_SOURCE_MP), "mp");
    ck_assert_str_eq(cm_trust_source_name(CM_SOURCE_PKI), "pki");
    ck_assert_str_eq(cm_agent_state_name(CM_AGENT_PENDING), "pending");
    ck_assert_str_eq(cm_agent_state_name(CM_AGENT_FAILED), "failed");
}
END_TEST

static Suite *
agent_suite(void)
{
    Suite *s = suite_create("agent");
    TCase *tc = tcase_create("agent");

    tcase_add_unchecked_fixture(tc, site_setup, site_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_install_key_needs_site_code);
    tcase_add_test(tc, test_trk_sources);
    tcase_add_test(tc, test_rogue_mp_refused_with_trk);
    tcase_add_test(tc, test_tofu_takes_rogue_trk);
    tcase_add_test(tc, test_signcert_sources);
    tcase_add_test(tc, test_key_storage);
    tcase_add_test(tc, test_identity);
    tcase_add_test(tc, test_register_signed);
    tcase_add_test(tc, test_pending_then_approved);
    tcase_add_test(tc, test_busy_retry_after);
    tcase_add_test(tc, test_backoff_jitter_bounded);
    tcase_add_test(tc, test_backoff_capped);
    tcase_add_test(tc, test_failover_to_next_mp);
    tcase_add_test(tc, test_request_timeout_and_stale_answers);
    tcase_add_test(tc, test_blocked_stops);
    tcase_add_test(tc, test_every_refusal_reason);
    tcase_add_test(tc, test_https_required_goes_ehttp);
    tcase_add_test(tc, test_location_prefers_https);
    tcase_add_test(tc, test_location_sources_in_order);
    tcase_add_test(tc, test_location_on_internet);
    tcase_add_test(tc, test_pki_needs_no_trk);
    tcase_add_test(tc, test_start_window);
    tcase_add_test(tc, test_policy_verification);
    tcase_add_test(tc, test_inventory_encrypted);
    tcase_add_test(tc, test_policy_shared);
    tcase_add_test(tc, test_inventory_properties);
    tcase_add_test(tc, test_agents_on_threads);
    tcase_add_test(tc, test_inventory_plain_and_cycles);
    tcase_add_test(tc, test_upgrade);
    tcase_add_test(tc, test_upgrade_while_trusting);
    tcase_add_test(tc, test_maintenance_fit);
    tcase_add_test(tc, test_maintenance_windows);
    tcase_add_test(tc, test_maintenance_deadline);
    tcase_add_test(tc, test_client_version_cmp);
    tcase_add_test(tc, test_client_upgrade);
    tcase_add_test(tc, test_client_upgrade_retries);
    tcase_add_test(tc, test_state_messages);
    tcase_add_test(tc, test_status_messages);
    tcase_add_test(tc, test_client_status);
    tcase_add_test(tc, test_notification_channel);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return cm_test_main(agent_suite());
}
