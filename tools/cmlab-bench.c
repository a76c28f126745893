/* cmlab-bench - libcmproto's costs beside raw OpenSSL, measured in the same
 * run.
 *
 * The machines cmlab runs on are shared and noisy, so every figure is paired
 * with a reference measured in the same process: raw and wrapped operations
 * run in alternating rounds and each side keeps its best round.  The ratio
 * column is what docs/benchmarks.md quotes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "cmproto.h"
#include "cmagent.h"
#include "cmmp.h"
#include "cmsim.h"
#include "engine.h"
#include "cmsite.h"

static double opt_seconds = 0.25;
static int opt_rounds = 5;
static char *opt_only;
static int opt_lifecycle = 300;
static int opt_pending = 100000;

typedef struct {
    const char *name;
    /* Runs one operation; returns FALSE on failure. */
    gboolean (*raw)(void *ctx);
    gboolean (*ours)(void *ctx);
    void *ctx;
} Bench;

typedef struct {
    CmKey *key;        /* private */
    CmKey *pub;        /* public half, parsed once */
    EVP_PKEY_CTX *sctx; /* raw: sign ctx reused, as `openssl speed` does */
    EVP_PKEY_CTX *vctx;
    guint8 msg[256];
    guint8 sig[CM_SIG_MAX];
    size_t sig_len;
    GBytes *pub_der;
    CmKeyAlg alg;
    CmCert *cert;      /* for issue/parse benches */
    GBytes *cert_der;
    guint64 serial;
} Ctx;

static double
now_s(void)
{
    return (double)g_get_monotonic_time() / 1e6;
}

/* Ops per second of fn over about opt_seconds. */
static double
rate(gboolean (*fn)(void *), void *ctx)
{
    double start = now_s(), elapsed;
    long n = 0;

    do {
        for (int i = 0; i < 16; i++) {
            if (!fn(ctx)) {
                fprintf(stderr, "cmlab-bench: an operation failed\n");
                exit(2);
            }
        }
        n += 16;
        elapsed = now_s() - start;
    } while (elapsed < opt_seconds);
    return (double)n / elapsed;
}

static void
run(const Bench *b)
{
    double best_raw = 0, best_ours = 0;

    if (opt_only != NULL && strstr(b->name, opt_only) == NULL)
        return;
    for (int r = 0; r < opt_rounds; r++) {
        double a = rate(b->raw, b->ctx);
        double o = rate(b->ours, b->ctx);
        best_raw = MAX(best_raw, a);
        best_ours = MAX(best_ours, o);
    }
    printf("%-28s %12.0f %12.0f %9.1f%%\n", b->name, best_raw, best_ours,
           (best_raw / best_ours - 1.0) * 100.0);
    fflush(stdout);
}

/* ---------------------------------------------------------------- sign */

static gboolean
raw_sign(void *p)
{
    Ctx *c = p;
    guint8 dgst[32], sig[CM_SIG_MAX];
    size_t len = sizeof sig;

    /* Hash, then sign the digest with a context prepared once. */
    cm_hash(CM_HASH_SHA256, c->msg, sizeof c->msg, dgst);
    return EVP_PKEY_sign(c->sctx, sig, &len, dgst, sizeof dgst) == 1;
}

static gboolean
ours_sign(void *p)
{
    Ctx *c = p;
    GBytes *sig = cm_sig_sign(c->key, CM_HASH_SHA256, c->msg, sizeof c->msg, NULL);
    g_bytes_unref(sig);
    return sig != NULL;
}

static gboolean
raw_verify(void *p)
{
    Ctx *c = p;
    guint8 dgst[32];

    cm_hash(CM_HASH_SHA256, c->msg, sizeof c->msg, dgst);
    return EVP_PKEY_verify(c->vctx, c->sig, c->sig_len, dgst, sizeof dgst) == 1;
}

static gboolean
ours_verify(void *p)
{
    Ctx *c = p;
    return cm_sig_verify(c->pub, CM_HASH_SHA256, c->msg, sizeof c->msg, c->sig, c->sig_len, NULL);
}

/* Parsing the signer's key on every verification, as a naive caller would:
 * this is the cost our parse-once API avoids. */
static gboolean
ours_parse_verify(void *p)
{
    Ctx *c = p;
    gsize len;
    const guint8 *der = g_bytes_get_data(c->pub_der, &len);
    CmKey *k = cm_key_public_from_der(der, len, NULL);
    gboolean ok = k && cm_sig_verify(k, CM_HASH_SHA256, c->msg, sizeof c->msg, c->sig,
                                     c->sig_len, NULL);
    cm_key_unref(k);
    return ok;
}

/* -------------------------------------------------------------- keygen */

static gboolean
raw_keygen(void *p)
{
    Ctx *c = p;
    EVP_PKEY *k = c->alg == CM_KEY_RSA_2048 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                            : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY_free(k);
    return k != NULL;
}

static gboolean
ours_keygen(void *p)
{
    Ctx *c = p;
    CmKey *k = cm_key_generate(c->alg, NULL);
    cm_key_unref(k);
    return k != NULL;
}

/* ---------------------------------------------------------- cert issue */

/* The same self-signed client certificate built with OpenSSL directly. */
static gboolean
raw_issue(void *p)
{
    Ctx *c = p;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509V3_CTX v3;
    static const struct {
        int nid;
        const char *value;
    } exts[] = {{NID_basic_constraints, "critical,CA:FALSE"},
                {NID_key_usage, "critical,digitalSignature,keyAgreement"},
                {NID_ext_key_usage, "clientAuth"},
                {NID_subject_key_identifier, "hash"}};
    gboolean ok;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), ++c->serial);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"GUID:bench", -1,
                               -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, cm_key_evp(c->key));
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(exts); i++) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    ok = X509_sign(x, cm_key_evp(c->key), EVP_sha256()) > 0;
    X509_NAME_free(name);
    X509_free(x);
    return ok;
}

static gboolean
ours_issue(void *p)
{
    Ctx *c = p;
    CmTime t = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    CmCertSpec spec = {
        .profile = CM_CERT_CLIENT_SELF_SIGNED,
        .subject_cn = "GUID:bench",
        .serial = ++c->serial,
        .not_before = t,
        .not_after = t + 365 * CM_USEC_PER_DAY,
        .subject_key = c->key,
    };
    CmCert *cert = cm_cert_issue(&spec, NULL);
    cm_cert_unref(cert);
    return cert != NULL;
}

/* ---------------------------------------------------------- cert parse */

static gboolean
raw_cert_parse(void *p)
{
    Ctx *c = p;
    gsize len;
    const unsigned char *der = g_bytes_get_data(c->cert_der, &len);
    X509 *x = d2i_X509(NULL, &der, (long)len);
    EVP_PKEY *k = x ? X509_get_pubkey(x) : NULL;
    gboolean ok = k != NULL;
    EVP_PKEY_free(k);
    X509_free(x);
    return ok;
}

static gboolean
ours_cert_parse(void *p)
{
    Ctx *c = p;
    gsize len;
    const guint8 *der = g_bytes_get_data(c->cert_der, &len);
    CmCert *cert = cm_cert_from_der(der, len, NULL);
    cm_cert_unref(cert);
    return cert != NULL;
}

static void
ctx_init(Ctx *c, CmKeyAlg alg)
{
    GBytes *sig;
    CmTime t = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_SELF_SIGNED,
                       .subject_cn = "GUID:bench",
                       .serial = 1,
                       .not_before = t,
                       .not_after = t + CM_USEC_PER_DAY};

    memset(c, 0, sizeof *c);
    c->alg = alg;
    c->key = cm_key_generate(alg, NULL);
    c->pub_der = cm_key_public_der(c->key);
    c->pub = cm_key_public_from_der(g_bytes_get_data(c->pub_der, NULL),
                                    g_bytes_get_size(c->pub_der), NULL);
    for (size_t i = 0; i < sizeof c->msg; i++)
        c->msg[i] = (guint8)i;
    sig = cm_sig_sign(c->key, CM_HASH_SHA256, c->msg, sizeof c->msg, NULL);
    c->sig_len = g_bytes_get_size(sig);
    memcpy(c->sig, g_bytes_get_data(sig, NULL), c->sig_len);
    g_bytes_unref(sig);
    c->sctx = EVP_PKEY_CTX_new_from_pkey(NULL, cm_key_evp(c->key), NULL);
    c->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, cm_key_evp(c->pub), NULL);
    if (c->sctx == NULL || c->vctx == NULL || EVP_PKEY_sign_init(c->sctx) != 1 ||
        EVP_PKEY_verify_init(c->vctx) != 1 ||
        EVP_PKEY_CTX_set_signature_md(c->sctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_signature_md(c->vctx, EVP_sha256()) != 1) {
        fprintf(stderr, "cmlab-bench: cannot set up raw contexts\n");
        exit(2);
    }
    spec.subject_key = c->key;
    c->cert = cm_cert_issue(&spec, NULL);
    c->cert_der = cm_cert_to_der(c->cert);
}

static void
ctx_clear(Ctx *c)
{
    EVP_PKEY_CTX_free(c->sctx);
    EVP_PKEY_CTX_free(c->vctx);
    cm_key_unref(c->key);
    cm_key_unref(c->pub);
    g_bytes_unref(c->pub_der);
    cm_cert_unref(c->cert);
    g_bytes_unref(c->cert_der);
}


/* ------------------------------------------------------------ engine */

/* The reference: a textbook binary heap of (time, sequence) pairs. */
typedef struct {
    CmTime t;
    guint64 seq;
} RawEv;

typedef struct {
    RawEv *h;
    gsize n;
    guint64 seq;
    CmRng rng;
} RawHeap;

static void
raw_push(RawHeap *q, CmTime t)
{
    RawEv ev = {t, q->seq++};
    gsize i = q->n++;

    while (i > 0) {
        gsize p = (i - 1) / 2;
        if (q->h[p].t < ev.t || (q->h[p].t == ev.t && q->h[p].seq < ev.seq))
            break;
        q->h[i] = q->h[p];
        i = p;
    }
    q->h[i] = ev;
}

static RawEv
raw_pop(RawHeap *q)
{
    RawEv top = q->h[0], last = q->h[--q->n];
    gsize i = 0;

    for (;;) {
        gsize c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n &&
            (q->h[c + 1].t < q->h[c].t || (q->h[c + 1].t == q->h[c].t && q->h[c + 1].seq < q->h[c].seq)))
            c++;
        if (last.t < q->h[c].t || (last.t == q->h[c].t && last.seq < q->h[c].seq))
            break;
        q->h[i] = q->h[c];
        i = c;
    }
    q->h[i] = last;
    return top;
}

/* Hold model: each event schedules one successor a random time ahead, so
 * the number pending stays constant. */
static double
raw_heap_rate(double seconds)
{
    RawHeap q = {.h = g_new(RawEv, opt_pending + 1)};
    double start, elapsed;
    long n = 0;

    cm_rng_init_seeded(&q.rng, 1, 1);
    for (int i = 0; i < opt_pending; i++)
        raw_push(&q, (CmTime)cm_rng_below(&q.rng, 1000000));
    start = now_s();
    do {
        for (int i = 0; i < 4096; i++) {
            RawEv ev = raw_pop(&q);
            raw_push(&q, ev.t + 1 + (CmTime)cm_rng_below(&q.rng, 1000000));
        }
        n += 4096;
        elapsed = now_s() - start;
    } while (elapsed < seconds);
    g_free(q.h);
    return n / elapsed;
}

static void
null_event(CmSimEngine *e, void *ctx, guint64 arg)
{
    CmRng *rng = ctx;
    (void)arg;
    cm_sim_at(e, cm_sim_now(e) + 1 + (CmTime)cm_rng_below(rng, 1000000), null_event, ctx, 0);
}

static double
engine_rate(double seconds)
{
    CmSimEngine *e = cm_sim_engine_new();
    CmRng rng;
    double start, elapsed;
    guint64 before;
    CmTime horizon = 0;

    cm_rng_init_seeded(&rng, 1, 1);
    for (int i = 0; i < opt_pending; i++)
        cm_sim_at(e, (CmTime)cm_rng_below(&rng, 1000000), null_event, &rng, 0);
    start = now_s();
    before = cm_sim_events(e);
    do {
        /* about 4096 events per slice at this density */
        horizon += (CmTime)(4096.0 * 500000.0 / opt_pending);
        cm_sim_run_until(e, horizon);
        elapsed = now_s() - start;
    } while (elapsed < seconds);
    {
        double r = (double)(cm_sim_events(e) - before) / elapsed;
        if (cm_sim_pending(e) != (gsize)opt_pending) {
            fprintf(stderr, "cmlab-bench: engine lost events\n");
            exit(2);
        }
        cm_sim_engine_free(e);
        return r;
    }
}

static void
run_engine(void)
{
    double raw = 0, ours = 0;

    for (int r = 0; r < opt_rounds; r++) {
        raw = MAX(raw, raw_heap_rate(opt_seconds * 2));
        ours = MAX(ours, engine_rate(opt_seconds * 2));
    }
    printf("\nengine: null events (hold model) with %d pending\n", opt_pending);
    printf("%-36s %12.0f events/s\n", "raw binary heap of (time, seq)", raw);
    printf("%-36s %12.0f events/s   (target >= 2,000,000)\n", "cmlab engine (4-ary heap, handlers)",
           ours);
}

/* ------------------------------------------------------------ lifecycle */

/* A site with one MP in memory; requests go MP -> site as function calls. */
typedef struct {
    CmSite *site;
    CmMp *mp;
    char mp_name[CM_NAME_MAX + 1];
} BenchLab;

static gboolean
bench_deliver(void *ctx, const CmAgentSend *send, CmRequest *req, CmResponse *resp, CmTime now)
{
    BenchLab *lab = ctx;

    if (g_ascii_strcasecmp(send->mp, lab->mp_name) != 0)
        return FALSE;
    if (cm_mp_handle(lab->mp, req, now, resp) == CM_MP_FORWARD) {
        cm_site_handle(lab->site, req, now, resp);
        cm_mp_forwarded(lab->mp, req, resp, now);
    }
    return TRUE;
}

static void
die(const char *what, GError *error)
{
    fprintf(stderr, "cmlab-bench: %s: %s\n", what, error ? error->message : "failed");
    exit(2);
}

static BenchLab *
bench_lab_new(CmTime now)
{
    static guint8 master[32] = {1};
    BenchLab *lab = g_new0(BenchLab, 1);
    CmSiteSettings s;
    CmSiteConfig config = {.site_code = "PS1", .db_path = ":memory:", .db_mode = CM_STORE_MEMORY,
                           .top_level = TRUE, .forest = "corp.example", .master_key = master,
                           .settings = &s};
    CmMpInfo info;
    CmCert *mp_cert = NULL, *tls = NULL;
    CmKey *mp_key = NULL;
    GError *error = NULL;
    guint8 hash[32] = {0};
    CmDeployment dep = {.name = "Baseline", .content_id = "KB5000001", .content_hash = hash,
                        .content_size = 1 << 20, .required = TRUE, .max_runtime_s = 3600};
    g_autofree char *policy = NULL;
    json_t *siteinfo, *list;

    cm_site_settings_default(&s);
    s.approval = CM_APPROVAL_ALL;
    s.encrypt = TRUE;
    s.communication = CM_COMM_EHTTP;
    lab->site = cm_site_open(&config, now, &error);
    if (lab->site == NULL ||
        !cm_site_add_mp(lab->site, "mp1.corp.example", FALSE, now, &info, &mp_cert, &tls, &mp_key,
                        &error))
        die("site", error);
    g_strlcpy(lab->mp_name, info.name, sizeof lab->mp_name);
    siteinfo = cm_site_siteinfo_json(lab->site);
    list = cm_site_mplist_json(lab->site);
    lab->mp = cm_mp_new(&(CmMpConfig){.name = info.name, .role_id = info.role_id,
                                      .mp_cert = mp_cert, .siteinfo = siteinfo, .mplist = list},
                        &error);
    if (lab->mp == NULL)
        die("mp", error);
    policy = cm_site_admin_deploy(lab->site, CM_COLLECTION_ALL_SYSTEMS, &dep, "bench", now, &error);
    if (policy == NULL)
        die("deploy", error);
    json_decref(siteinfo);
    json_decref(list);
    cm_cert_unref(mp_cert);
    cm_cert_unref(tls);
    cm_key_unref(mp_key);
    return lab;
}

static void
bench_lab_free(BenchLab *lab)
{
    cm_mp_free(lab->mp);
    cm_site_free(lab->site);
    g_free(lab);
}

/* The crypto of a lifecycle, timed alone with the same library calls. */
typedef struct {
    CmKey *key, *pub;
    CmCert *cert;
    GBytes *cert_der;
    GBytes *pub_der;
    GBytes *sig;
    CmCert *enc_cert;
    CmKey *enc_key;
    GBytes *envelope;
    guint8 msg[512];
    guint64 serial;
} CryptoCtx;

static gboolean
c_keygen(void *p)
{
    CmKey *k = cm_key_generate(CM_KEY_EC_P256, NULL);
    (void)p;
    cm_key_unref(k);
    return k != NULL;
}

static gboolean
c_sign(void *p)
{
    CryptoCtx *c = p;
    GBytes *sig = cm_sig_sign(c->key, CM_HASH_SHA256, c->msg, sizeof c->msg, NULL);
    g_bytes_unref(sig);
    return sig != NULL;
}

static gboolean
c_verify(void *p)
{
    CryptoCtx *c = p;
    return cm_sig_verify(c->pub, CM_HASH_SHA256, c->msg, sizeof c->msg,
                         g_bytes_get_data(c->sig, NULL), g_bytes_get_size(c->sig), NULL);
}

static gboolean
c_issue(void *p)
{
    CryptoCtx *c = p;
    CmTime t = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_SELF_SIGNED, .subject_cn = "GUID:bench",
                       .serial = ++c->serial, .not_before = t, .not_after = t + CM_USEC_PER_DAY,
                       .subject_key = c->key};
    CmCert *cert = cm_cert_issue(&spec, NULL);
    cm_cert_unref(cert);
    return cert != NULL;
}

static gboolean
c_parse(void *p)
{
    CryptoCtx *c = p;
    CmCert *cert = cm_cert_from_der(g_bytes_get_data(c->cert_der, NULL),
                                    g_bytes_get_size(c->cert_der), NULL);
    cm_cert_unref(cert);
    return cert != NULL;
}

static gboolean
c_key_parse(void *p)
{
    CryptoCtx *c = p;
    CmKey *k = cm_key_public_from_der(g_bytes_get_data(c->pub_der, NULL),
                                      g_bytes_get_size(c->pub_der), NULL);
    cm_key_unref(k);
    return k != NULL;
}

static gboolean
c_encrypt(void *p)
{
    CryptoCtx *c = p;
    GBytes *env = cm_cms_encrypt(c->enc_cert, CM_CIPHER_AES256_GCM, c->msg, sizeof c->msg, NULL);
    g_bytes_unref(env);
    return env != NULL;
}

static gboolean
c_decrypt(void *p)
{
    CryptoCtx *c = p;
    GBytes *plain = cm_cms_decrypt(c->enc_cert, c->enc_key, g_bytes_get_data(c->envelope, NULL),
                                   g_bytes_get_size(c->envelope), 1 << 20, NULL, NULL);
    g_bytes_unref(plain);
    return plain != NULL;
}

static void
crypto_ctx_init(CryptoCtx *c)
{
    CmTime t = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    CmCertSpec spec = {.profile = CM_CERT_CLIENT_SELF_SIGNED, .subject_cn = "GUID:bench",
                       .serial = 1, .not_before = t, .not_after = t + CM_USEC_PER_DAY};

    memset(c, 0, sizeof *c);
    c->key = cm_key_generate(CM_KEY_EC_P256, NULL);
    c->enc_key = cm_key_generate(CM_KEY_EC_P256, NULL);
    spec.subject_key = c->key;
    c->cert = cm_cert_issue(&spec, NULL);
    if (c->key == NULL || c->enc_key == NULL || c->cert == NULL)
        die("crypto setup", NULL);
    /* Verification with a key parsed from a certificate, as the site does. */
    c->pub = cm_key_ref(cm_cert_public_key(c->cert));
    c->cert_der = cm_cert_to_der(c->cert);
    c->pub_der = cm_key_public_der(c->key);
    c->sig = cm_sig_sign(c->key, CM_HASH_SHA256, c->msg, sizeof c->msg, NULL);
    spec.profile = CM_CERT_ENCRYPTION;
    spec.subject_key = c->enc_key;
    spec.serial = 2;
    c->enc_cert = cm_cert_issue(&spec, NULL);
    c->envelope = cm_cms_encrypt(c->enc_cert, CM_CIPHER_AES256_GCM, c->msg, sizeof c->msg, NULL);
    if (c->key == NULL || c->cert == NULL || c->sig == NULL || c->envelope == NULL)
        die("crypto setup", NULL);
}

static void
crypto_ctx_clear(CryptoCtx *c)
{
    cm_key_unref(c->key);
    cm_key_unref(c->pub);
    cm_cert_unref(c->cert);
    g_bytes_unref(c->cert_der);
    g_bytes_unref(c->pub_der);
    g_bytes_unref(c->sig);
    cm_cert_unref(c->enc_cert);
    cm_key_unref(c->enc_key);
    g_bytes_unref(c->envelope);
}

/* One client's whole lifecycle in memory against the real role code, beside
 * the same cryptographic operations timed alone (issue: role libraries). */
static void
run_lifecycle(int n)
{
    CmTime t0 = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    BenchLab *lab = bench_lab_new(t0);
    g_autofree char *trk = cm_site_export_trk(lab->site);
    CmCryptoCounters before, after;
    double start, wall, alone = 0;
    int active = 0;
    CryptoCtx cc;
    struct {
        const char *name;
        guint64 count;
        gboolean (*fn)(void *);
    } ops[8];

    cm_crypto_counters_get(&before);
    start = now_s();
    for (int i = 0; i < n; i++) {
        CmAgentConfig c;
        CmRng rng;
        GError *error = NULL;
        CmAgent *agent;
        CmTime now = t0;
        g_autofree char *name = g_strdup_printf("PC%05d", i);

        cm_agent_config_default(&c);
        c.name = name;
        c.smssitecode = "PS1";
        c.smspublicrootkey = trk;
        c.mp = lab->mp_name;
        c.tpm_version = 2;
        cm_rng_init_seeded(&rng, 42, (guint64)i);
        agent = cm_agent_new(&c, &rng, now, &error);
        if (agent == NULL)
            die("agent", error);
        cm_sim_run_agent(agent, &now, t0 + 10 * CM_USEC_PER_MIN, 1000, bench_deliver, lab);
        active += cm_agent_status(agent)->state == CM_AGENT_ACTIVE &&
                  cm_agent_status(agent)->inventories_sent > 0 &&
                  cm_agent_status(agent)->policies_accepted == 1;
        cm_agent_free(agent);
    }
    wall = now_s() - start;
    cm_crypto_counters_get(&after);
    if (active != n) {
        fprintf(stderr, "cmlab-bench: only %d of %d clients completed the lifecycle\n", active, n);
        exit(1);
    }

    crypto_ctx_init(&cc);
    ops[0] = (typeof(ops[0])){"keygen", after.keygen - before.keygen, c_keygen};
    ops[1] = (typeof(ops[0])){"sign", after.sign - before.sign, c_sign};
    ops[2] = (typeof(ops[0])){"verify", after.verify - before.verify, c_verify};
    ops[3] = (typeof(ops[0])){"cert issue", after.cert_issue - before.cert_issue, c_issue};
    ops[4] = (typeof(ops[0])){"cert parse", after.cert_parse - before.cert_parse, c_parse};
    ops[5] = (typeof(ops[0])){"cms encrypt", after.cms_encrypt - before.cms_encrypt, c_encrypt};
    ops[6] = (typeof(ops[0])){"cms decrypt", after.cms_decrypt - before.cms_decrypt, c_decrypt};
    ops[7] = (typeof(ops[0])){"key parse", after.key_parse - before.key_parse, c_key_parse};
    printf("\nlifecycle: %d clients in memory: locate, MP checked against the TRK, register\n"
           "(approved), policy fetched and verified, inventory encrypted to the site\n",
           n);
    printf("%-14s %10s %12s %14s\n", "operation", "per client", "op/s alone", "us per client");
    for (size_t i = 0; i < G_N_ELEMENTS(ops); i++) {
        double r = 0;
        for (int round = 0; round < opt_rounds; round++)
            r = MAX(r, rate(ops[i].fn, &cc));
        double per_client = (double)ops[i].count / n;
        alone += per_client / r;
        printf("%-14s %10.2f %12.0f %14.1f\n", ops[i].name, per_client, r, per_client / r * 1e6);
    }
    printf("lifecycle wall time per client  %8.1f us\n", wall / n * 1e6);
    printf("its crypto alone per client     %8.1f us\n", alone * 1e6);
    printf("ratio lifecycle / crypto        %8.2f   (target <= 1.5)\n", wall / n / alone);
    crypto_ctx_clear(&cc);
    bench_lab_free(lab);
}

int
main(int argc, char **argv)
{
    GOptionEntry entries[] = {
        {"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &opt_seconds, "Seconds per round (0.25)", "S"},
        {"rounds", 'r', 0, G_OPTION_ARG_INT, &opt_rounds, "Alternating rounds per pair (5)", "N"},
        {"only", 'o', 0, G_OPTION_ARG_STRING, &opt_only, "Run only benches whose name has TEXT",
         "TEXT"},
        {"lifecycle", 'l', 0, G_OPTION_ARG_INT, &opt_lifecycle,
         "Clients for the lifecycle bench (300; 0 skips it)", "N"},
        {"pending", 'p', 0, G_OPTION_ARG_INT, &opt_pending,
         "Pending events for the engine bench (100000)", "N"},
        {NULL}};
    GOptionContext *octx = g_option_context_new("- libcmproto beside raw OpenSSL");
    GError *error = NULL;
    Ctx ec, rsa;

    g_option_context_add_main_entries(octx, entries, NULL);
    g_option_context_set_description(
        octx, "Each row: the raw OpenSSL rate and ours (operations per second, best of the\n"
              "alternating rounds) and how much more ours costs per operation.\n"
              "'raw' sign/verify is EVP_PKEY_sign/verify on a SHA-256 digest with a context\n"
              "prepared once, as `openssl speed` measures; 'parse+verify' shows what\n"
              "parsing the signer's DER key on every check would cost instead.");
    if (!g_option_context_parse(octx, &argc, &argv, &error)) {
        fprintf(stderr, "cmlab-bench: %s\n", error->message);
        return 2;
    }
    g_option_context_free(octx);
    if (opt_seconds <= 0 || opt_rounds < 1) {
        fprintf(stderr, "cmlab-bench: --seconds and --rounds must be positive\n");
        return 2;
    }

    ctx_init(&ec, CM_KEY_EC_P256);
    ctx_init(&rsa, CM_KEY_RSA_2048);
    printf("cmlab-bench: %s, %d rounds of %.2fs per side\n", OpenSSL_version(OPENSSL_VERSION),
           opt_rounds, opt_seconds);
    printf("%-28s %12s %12s %10s\n", "operation", "raw op/s", "cmlab op/s", "overhead");
    {
        const Bench benches[] = {
            {"p256 sign", raw_sign, ours_sign, &ec},
            {"p256 verify", raw_verify, ours_verify, &ec},
            {"p256 parse+verify", raw_verify, ours_parse_verify, &ec},
            {"p256 keygen", raw_keygen, ours_keygen, &ec},
            {"p256 cert issue", raw_issue, ours_issue, &ec},
            {"p256 cert parse", raw_cert_parse, ours_cert_parse, &ec},
            {"rsa2048 sign", raw_sign, ours_sign, &rsa},
            {"rsa2048 verify", raw_verify, ours_verify, &rsa},
            {"rsa2048 parse+verify", raw_verify, ours_parse_verify, &rsa},
            {"rsa2048 cert issue", raw_issue, ours_issue, &rsa},
        };
        for (size_t i = 0; i < G_N_ELEMENTS(benches); i++)
            run(&benches[i]);
    }
    if (opt_only == NULL || strstr("rsa2048 keygen", opt_only) != NULL) {
        /* RSA key generation is slow and its time varies a lot per key:
         * one longer round each. */
        double saved = opt_seconds;
        int rounds = opt_rounds;
        opt_seconds = MAX(saved, 2.0);
        opt_rounds = 1;
        run(&(Bench){"rsa2048 keygen", raw_keygen, ours_keygen, &rsa});
        opt_seconds = saved;
        opt_rounds = rounds;
    }
    ctx_clear(&ec);
    ctx_clear(&rsa);
    if (opt_only == NULL || strstr("engine", opt_only) != NULL)
        run_engine();
    if (opt_lifecycle > 0 && (opt_only == NULL || strstr("lifecycle", opt_only) != NULL))
        run_lifecycle(opt_lifecycle);
    g_free(opt_only);
    return 0;
}
