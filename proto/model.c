/* model.c - the cost-model crypto stand-in (the simulator's `crypto = model`).
 *
 * For millions of virtual clients the simulator may replace the arithmetic
 * of keys, signatures, certificates, CRLs and CMS envelopes by a cheap keyed
 * stand-in that keeps who holds which key exact:
 *
 *   - a model key is a 16-byte secret; its public half is a keyed hash of
 *     the secret (one-way without this process's key);
 *   - a signature, a certificate's or a CRL's signature, and an envelope's
 *     integrity tag are SipHash-2-4-128 tags, under a key drawn at random
 *     when the process starts, over a domain byte, the signer's (or the
 *     recipient's) public half and the bytes.
 *
 * The process key never leaves this file, so the only way to make a tag is
 * to call cm_sig_sign with a key that has its private half (or to issue a
 * certificate or CRL with one, or to encrypt to a recipient's certificate,
 * which anyone may do, as with CMS).  Verification recomputes the tag with
 * the public half the verifier holds: a signature by another key, a
 * tampered message, a certificate not issued by the claimed key, an
 * envelope for another recipient or altered on the way all fail, as they
 * do with real crypto.  Tags made in one process mean nothing in another.
 *
 * Model objects are never mixed with real ones: a model key cannot verify a
 * real signature and the reverse, since the encodings differ (they start
 * with "CMM", never with a DER SEQUENCE).  Envelopes are bound to their
 * recipient and checked for alteration but their content is not hidden:
 * nothing in a simulation reads bytes it was not given by the API.
 *
 * cm_crypto_model_set() only decides what key generation makes; everything
 * else follows the objects it is given.  The operation counters count model
 * operations as they count real ones, so a run's counts are the same in
 * both modes and the simulator can charge their calibrated cost. */
#include "internal.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static gint model_on;
static gsize keys_done;
static guint8 k_tag[16], k_pub[16], k_gen[16];
static guint64 gen_counter;

void
cm_crypto_model_set(gboolean on)
{
    g_atomic_int_set(&model_on, on ? 1 : 0);
}

gboolean
cm_crypto_model(void)
{
    return g_atomic_int_get(&model_on) != 0;
}

static void
keys_init(void)
{
    if (g_once_init_enter(&keys_done)) {
        guint8 k[48];
        if (RAND_bytes(k, sizeof k) != 1)
            g_error("cannot draw the model crypto key");
        memcpy(k_tag, k, 16);
        memcpy(k_pub, k + 16, 16);
        memcpy(k_gen, k + 32, 16);
        OPENSSL_cleanse(k, sizeof k);
        g_once_init_leave(&keys_done, 1);
    }
}

/* ------------------------------------------------- SipHash-2-4, 128 bits */

#define ROTL(x, b) (guint64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static guint64
le64(const guint8 *p)
{
    guint64 v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

/* A streaming SipHash-2-4 with 128-bit output (the reference algorithm's
 * "outlen 16" variant), fed in pieces. */
typedef struct {
    guint64 v0, v1, v2, v3;
    guint8 buf[8];
    size_t buffered;
    guint64 total;
} Sip;

static void
sip_init(Sip *s, const guint8 key[16])
{
    guint64 k0 = le64(key), k1 = le64(key + 8);

    s->v0 = G_GUINT64_CONSTANT(0x736f6d6570736575) ^ k0;
    s->v1 = G_GUINT64_CONSTANT(0x646f72616e646f6d) ^ k1 ^ 0xee;
    s->v2 = G_GUINT64_CONSTANT(0x6c7967656e657261) ^ k0;
    s->v3 = G_GUINT64_CONSTANT(0x7465646279746573) ^ k1;
    s->buffered = 0;
    s->total = 0;
}

static void
sip_block(Sip *s, guint64 m)
{
    guint64 v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;

    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    s->v0 = v0, s->v1 = v1, s->v2 = v2, s->v3 = v3;
}

static void
sip_update(Sip *s, const void *data, size_t len)
{
    const guint8 *p = data;

    s->total += len;
    if (s->buffered > 0) {
        size_t take = MIN(len, 8 - s->buffered);
        memcpy(s->buf + s->buffered, p, take);
        s->buffered += take;
        p += take;
        len -= take;
        if (s->buffered < 8)
            return;
        sip_block(s, le64(s->buf));
        s->buffered = 0;
    }
    for (; len >= 8; p += 8, len -= 8)
        sip_block(s, le64(p));
    memcpy(s->buf, p, len);
    s->buffered = len;
}

static void
sip_final(Sip *s, guint8 out[16])
{
    guint64 b = (s->total & 0xff) << 56;
    guint64 v0, v1, v2, v3;

    for (size_t i = 0; i < s->buffered; i++)
        b |= (guint64)s->buf[i] << (8 * i);
    sip_block(s, b);
    v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    v2 ^= 0xee;
    for (int i = 0; i < 4; i++)
        SIPROUND;
    b = GUINT64_TO_LE(v0 ^ v1 ^ v2 ^ v3);
    memcpy(out, &b, 8);
    v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        SIPROUND;
    b = GUINT64_TO_LE(v0 ^ v1 ^ v2 ^ v3);
    memcpy(out + 8, &b, 8);
}

/* ------------------------------------------------------------- keys */

void
cm_model_new_secret(guint8 secret[CM_MODEL_ID])
{
    guint64 n = __atomic_fetch_add(&gen_counter, 1, __ATOMIC_RELAXED);
    Sip s;

    keys_init();
    sip_init(&s, k_gen);
    sip_update(&s, &n, sizeof n);
    sip_final(&s, secret);
}

void
cm_model_pub_of(const guint8 secret[CM_MODEL_ID], guint8 pub[CM_MODEL_ID])
{
    Sip s;

    keys_init();
    sip_init(&s, k_pub);
    sip_update(&s, secret, CM_MODEL_ID);
    sip_final(&s, pub);
}

void
cm_model_tag(const guint8 pub[CM_MODEL_ID], guint8 domain, const void *data, size_t len,
             guint8 tag[CM_MODEL_ID])
{
    Sip s;

    keys_init();
    sip_init(&s, k_tag);
    sip_update(&s, &domain, 1);
    sip_update(&s, pub, CM_MODEL_ID);
    sip_update(&s, data, len);
    sip_final(&s, tag);
}

gboolean
cm_model_tag_ok(const guint8 pub[CM_MODEL_ID], guint8 domain, const void *data, size_t len,
                const guint8 *tag)
{
    guint8 want[CM_MODEL_ID];

    cm_model_tag(pub, domain, data, len, want);
    return CRYPTO_memcmp(want, tag, CM_MODEL_ID) == 0;
}

gboolean
cm_model_is(const void *der, size_t len, const char magic[4])
{
    return der != NULL && len >= 4 && memcmp(der, magic, 4) == 0;
}

/* ------------------------------------------------------------- PEM */

char *
cm_model_pem(const char *label, GBytes *der)
{
    gsize len;
    const guint8 *p = g_bytes_get_data(der, &len);
    g_autofree char *b64 = g_base64_encode(p, len);
    GString *s = g_string_new(NULL);
    size_t n = strlen(b64);

    g_string_append_printf(s, "-----BEGIN %s-----\n", label);
    for (size_t i = 0; i < n; i += 64)
        g_string_append_printf(s, "%.64s\n", b64 + i);
    g_string_append_printf(s, "-----END %s-----\n", label);
    return g_string_free(s, FALSE);
}

GBytes *
cm_model_pem_decode(const char *label, const char *pem, size_t len, const char **next)
{
    g_autofree char *begin = g_strdup_printf("-----BEGIN %s-----", label);
    g_autofree char *end = g_strdup_printf("-----END %s-----", label);
    const char *b = g_strstr_len(pem, (gssize)len, begin), *e;
    g_autofree char *body = NULL;
    guchar *der;
    gsize der_len;

    if (b == NULL)
        return NULL;
    b += strlen(begin);
    e = g_strstr_len(b, (gssize)(pem + len - b), end);
    if (e == NULL)
        return NULL;
    body = g_strndup(b, (gsize)(e - b));
    der = g_base64_decode(g_strstrip(body), &der_len);
    if (next != NULL)
        *next = e + strlen(end);
    return g_bytes_new_take(der, der_len);
}

gboolean
cm_model_pem_has(const char *label, const char *pem, size_t len)
{
    g_autofree char *begin = g_strdup_printf("-----BEGIN %s-----", label);
    return g_strstr_len(pem, (gssize)len, begin) != NULL;
}

/* ------------------------------------------------ a bounded byte writer */

static void
put_u8(GByteArray *b, guint8 v)
{
    g_byte_array_append(b, &v, 1);
}

static void
put_u64(GByteArray *b, guint64 v)
{
    guint64 be = GUINT64_TO_BE(v);
    g_byte_array_append(b, (const guint8 *)&be, 8);
}

static void
put_str(GByteArray *b, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    guint16 be = GUINT16_TO_BE((guint16)MIN(n, 0xffff));

    g_byte_array_append(b, (const guint8 *)&be, 2);
    if (n > 0)
        g_byte_array_append(b, (const guint8 *)s, (guint)MIN(n, 0xffff));
}

typedef struct {
    const guint8 *p, *end;
    gboolean bad;
} Reader;

static const guint8 *
take(Reader *r, size_t n)
{
    const guint8 *p = r->p;

    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = TRUE;
        return NULL;
    }
    r->p += n;
    return p;
}

static guint8
get_u8(Reader *r)
{
    const guint8 *p = take(r, 1);
    return p ? *p : 0;
}

static guint64
get_u64(Reader *r)
{
    const guint8 *p = take(r, 8);
    guint64 v = 0;

    if (p != NULL) {
        memcpy(&v, p, 8);
        v = GUINT64_FROM_BE(v);
    }
    return v;
}

static void
get_id(Reader *r, guint8 out[CM_MODEL_ID])
{
    const guint8 *p = take(r, CM_MODEL_ID);
    if (p != NULL)
        memcpy(out, p, CM_MODEL_ID);
}

/* A string of up to max bytes, without NUL bytes (names and URLs). */
static char *
get_str(Reader *r, size_t max)
{
    const guint8 *p = take(r, 2);
    guint16 n;

    if (p == NULL)
        return NULL;
    n = (guint16)(p[0] << 8 | p[1]);
    if (n > max || (p = take(r, n)) == NULL || memchr(p, 0, n) != NULL) {
        r->bad = TRUE;
        return NULL;
    }
    return g_strndup((const char *)p, n);
}

/* ------------------------------------------------------- certificates */

#define CERT_MAGIC "CMMC"
#define CERT_MAX_DNS 32

/* A parsed certificate is one block: the CmModelCert, its DNS name
 * pointers, its strings and its encoding, owned by m->der (whose free
 * function releases the block).  A million clients each hold one; a block
 * instead of eight allocations saves a third of their bytes, and the parse
 * cache keys the certificate by the same GBytes. */
void
cm_model_cert_free(CmModelCert *m)
{
    if (m != NULL)
        g_bytes_unref(m->der); /* frees m */
}

GBytes *
cm_model_cert_encode(const CmCertSpec *spec, const char *issuer_cn, const char *issuer_o,
                     GError **error)
{
    const CmKey *signer = spec->issuer_key != NULL ? spec->issuer_key : spec->subject_key;
    GByteArray *b;
    guint8 tag[CM_MODEL_ID];
    size_t n_dns = 0;

    if (!cm_key_is_model(spec->subject_key) || !cm_key_is_model(signer) ||
        cm_key_model_secret(signer) == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot issue certificate: cost-model and real keys do not mix");
        return NULL;
    }
    while (spec->dns_names != NULL && spec->dns_names[n_dns] != NULL)
        n_dns++;
    if (n_dns > CERT_MAX_DNS) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot issue certificate: more than %d DNS names", CERT_MAX_DNS);
        return NULL;
    }
    b = g_byte_array_sized_new(160);
    g_byte_array_append(b, (const guint8 *)CERT_MAGIC, 4);
    put_u8(b, 1); /* version */
    put_u8(b, (guint8)spec->profile);
    put_u8(b, (guint8)spec->hash);
    put_u8(b, (guint8)cm_key_alg(spec->subject_key));
    put_u64(b, spec->serial);
    /* whole seconds, as X.509 carries them */
    put_u64(b, (guint64)(spec->not_before / CM_USEC_PER_SEC));
    put_u64(b, (guint64)(spec->not_after / CM_USEC_PER_SEC));
    g_byte_array_append(b, cm_key_model_pub(spec->subject_key), CM_MODEL_ID);
    g_byte_array_append(b, cm_key_model_pub(signer), CM_MODEL_ID);
    put_str(b, spec->subject_cn);
    put_str(b, spec->subject_o);
    put_str(b, issuer_cn);
    put_str(b, issuer_o);
    put_str(b, spec->crl_url);
    put_u8(b, (guint8)n_dns);
    for (size_t i = 0; i < n_dns; i++)
        put_str(b, spec->dns_names[i]);
    cm_model_tag(cm_key_model_pub(signer), CM_MODEL_DOMAIN_CERT, b->data, b->len, tag);
    g_byte_array_append(b, tag, CM_MODEL_ID);
    return g_byte_array_free_to_bytes(b);
}

/* A string field: up to max bytes, without NUL bytes (names and URLs). */
typedef struct {
    const guint8 *p;
    guint16 n;
} Span;

static void
get_span(Reader *r, size_t max, Span *out)
{
    const guint8 *p = take(r, 2);
    guint16 n;

    out->p = NULL;
    out->n = 0;
    if (p == NULL)
        return;
    n = (guint16)(p[0] << 8 | p[1]);
    if (n > max || (p = take(r, n)) == NULL || memchr(p, 0, n) != NULL) {
        r->bad = TRUE;
        return;
    }
    out->p = p;
    out->n = n;
}

/* Copies a span to *at as a C string; the same bytes as prev give prev's
 * string (a self-signed certificate names its subject twice). */
static char *
put_span(char **at, const Span *s, const Span *prev, char *prev_str)
{
    char *str = *at;

    if (prev != NULL && prev->n == s->n && memcmp(prev->p, s->p, s->n) == 0)
        return prev_str;
    memcpy(str, s->p, s->n);
    str[s->n] = '\0';
    *at += (size_t)s->n + 1;
    return str;
}

enum { SPAN_CN, SPAN_O, SPAN_ISSUER_CN, SPAN_ISSUER_O, SPAN_CRL, SPAN_DNS };

CmModelCert *
cm_model_cert_parse(const guint8 *der, size_t len, GError **error)
{
    CmModelCert h = {0}, *m;
    Reader r = {der, der + len, FALSE};
    Span sp[SPAN_DNS + CERT_MAX_DNS];
    static const size_t max[SPAN_DNS] = {64, 256, 256, 256, 2048};
    guint8 n_dns = 0;
    size_t n_spans, strings = 0, head;
    guint8 *block;
    char *at;

    (void)take(&r, 4);
    if (get_u8(&r) != 1)
        r.bad = TRUE;
    h.profile = get_u8(&r);
    h.hash = get_u8(&r);
    h.key_alg = get_u8(&r);
    h.serial = get_u64(&r);
    h.not_before = (CmTime)get_u64(&r) * CM_USEC_PER_SEC;
    h.not_after = (CmTime)get_u64(&r) * CM_USEC_PER_SEC;
    get_id(&r, h.subject_pub);
    get_id(&r, h.issuer_pub);
    for (int i = 0; i < SPAN_DNS; i++)
        get_span(&r, max[i], &sp[i]);
    n_dns = get_u8(&r);
    if (n_dns > CERT_MAX_DNS)
        r.bad = TRUE;
    n_spans = r.bad ? SPAN_DNS : SPAN_DNS + (size_t)n_dns;
    for (size_t i = SPAN_DNS; i < n_spans; i++)
        get_span(&r, 253, &sp[i]);
    h.tbs_len = (size_t)(r.p - der);
    (void)take(&r, CM_MODEL_ID);
    if (r.bad || r.p != r.end || h.profile > CM_CERT_ENCRYPTION || h.hash > CM_HASH_SHA1 ||
        h.key_alg > CM_KEY_RSA_2048) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "not a cost-model certificate (malformed or truncated)");
        return NULL;
    }

    for (size_t i = 0; i < n_spans; i++)
        strings += (size_t)sp[i].n + 1;
    head = sizeof *m + ((size_t)n_dns + 1) * sizeof(char *);
    block = g_malloc(head + strings + len);
    m = (CmModelCert *)block;
    *m = h;
    m->dns = (char **)(block + sizeof *m);
    at = (char *)block + head;
    m->cn = put_span(&at, &sp[SPAN_CN], NULL, NULL);
    m->o = put_span(&at, &sp[SPAN_O], NULL, NULL);
    m->issuer_cn = put_span(&at, &sp[SPAN_ISSUER_CN], &sp[SPAN_CN], m->cn);
    m->issuer_o = put_span(&at, &sp[SPAN_ISSUER_O], &sp[SPAN_O], m->o);
    m->crl_url = put_span(&at, &sp[SPAN_CRL], NULL, NULL);
    for (guint i = 0; i < n_dns; i++)
        m->dns[i] = put_span(&at, &sp[SPAN_DNS + i], NULL, NULL);
    m->dns[n_dns] = NULL;
    memcpy(at, der, len);
    m->der = g_bytes_new_with_free_func(at, len, g_free, block);
    return m;
}

gboolean
cm_model_cert_signed_by(const CmModelCert *m, const guint8 pub[CM_MODEL_ID])
{
    const guint8 *der = g_bytes_get_data(m->der, NULL);
    return cm_model_tag_ok(pub, CM_MODEL_DOMAIN_CERT, der, m->tbs_len, der + m->tbs_len);
}

/* ------------------------------------------------------------- CRLs */

#define CRL_MAGIC "CMMR"
#define CRL_MAX_ENTRIES (1024 * 1024)

void
cm_model_crl_free(CmModelCrl *m)
{
    if (m == NULL)
        return;
    if (m->der != NULL)
        g_bytes_unref(m->der);
    g_free(m->issuer_cn);
    g_free(m->issuer_o);
    g_free(m->serials);
    g_free(m);
}

static int
cmp_u64(const void *a, const void *b)
{
    guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
    return x < y ? -1 : x > y;
}

GBytes *
cm_model_crl_encode(const CmCert *issuer, const CmKey *issuer_key, const CmCrlEntry *entries,
                    size_t n, guint64 number, CmTime this_update, CmTime next_update,
                    GError **error)
{
    const CmModelCert *ic = cm_cert_model(issuer);
    GByteArray *b;
    guint64 *serials;
    guint8 tag[CM_MODEL_ID];

    if (ic == NULL || !cm_key_is_model(issuer_key) || n > CRL_MAX_ENTRIES) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "cannot issue CRL: cost-model and real objects do not mix");
        return NULL;
    }
    serials = g_new(guint64, MAX(n, 1));
    for (size_t i = 0; i < n; i++)
        serials[i] = entries[i].serial;
    qsort(serials, n, sizeof *serials, cmp_u64);
    b = g_byte_array_sized_new((guint)(96 + 8 * n));
    g_byte_array_append(b, (const guint8 *)CRL_MAGIC, 4);
    put_u8(b, 1);
    g_byte_array_append(b, cm_key_model_pub(issuer_key), CM_MODEL_ID);
    put_str(b, cm_cert_subject_cn(issuer));
    put_str(b, ic->o);
    put_u64(b, number);
    put_u64(b, (guint64)(this_update / CM_USEC_PER_SEC));
    put_u64(b, (guint64)(next_update / CM_USEC_PER_SEC));
    put_u64(b, n);
    for (size_t i = 0; i < n; i++)
        put_u64(b, serials[i]);
    g_free(serials);
    cm_model_tag(cm_key_model_pub(issuer_key), CM_MODEL_DOMAIN_CRL, b->data, b->len, tag);
    g_byte_array_append(b, tag, CM_MODEL_ID);
    return g_byte_array_free_to_bytes(b);
}

CmModelCrl *
cm_model_crl_parse(const guint8 *der, size_t len, GError **error)
{
    CmModelCrl *m = g_new0(CmModelCrl, 1);
    Reader r = {der, der + len, FALSE};
    guint64 n;

    (void)take(&r, 4);
    if (get_u8(&r) != 1)
        r.bad = TRUE;
    get_id(&r, m->issuer_pub);
    m->issuer_cn = get_str(&r, 256);
    m->issuer_o = get_str(&r, 256);
    m->number = get_u64(&r);
    m->this_update = (CmTime)get_u64(&r) * CM_USEC_PER_SEC;
    m->next_update = (CmTime)get_u64(&r) * CM_USEC_PER_SEC;
    n = get_u64(&r);
    if (n > CRL_MAX_ENTRIES || n > (guint64)(r.end - r.p) / 8)
        r.bad = TRUE;
    if (!r.bad) {
        m->n = (size_t)n;
        m->serials = g_new(guint64, MAX(m->n, 1));
        for (size_t i = 0; i < m->n; i++)
            m->serials[i] = get_u64(&r);
    }
    m->tbs_len = (size_t)(r.p - der);
    (void)take(&r, CM_MODEL_ID);
    if (r.bad || r.p != r.end) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "not a cost-model CRL (malformed or truncated)");
        cm_model_crl_free(m);
        return NULL;
    }
    m->der = g_bytes_new(der, len);
    return m;
}

gboolean
cm_model_crl_signed_by(const CmModelCrl *m, const guint8 pub[CM_MODEL_ID])
{
    const guint8 *der = g_bytes_get_data(m->der, NULL);
    return cm_model_tag_ok(pub, CM_MODEL_DOMAIN_CRL, der, m->tbs_len, der + m->tbs_len);
}

gboolean
cm_model_crl_lists(const CmModelCrl *m, guint64 serial)
{
    return m->n > 0 && bsearch(&serial, m->serials, m->n, sizeof serial, cmp_u64) != NULL;
}

/* --------------------------------------------------------- envelopes */

#define CMS_MAGIC "CMME"

GBytes *
cm_model_cms_encrypt(const CmCert *recipient, CmCipher cipher, const void *data, size_t len,
                     GError **error)
{
    const guint8 *pub;
    GByteArray *b;
    guint8 tag[CM_MODEL_ID];

    if (cm_cert_model(recipient) == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_CRYPTO,
                    "CMS encryption failed: cost-model and real objects do not mix");
        return NULL;
    }
    pub = cm_key_model_pub(cm_cert_public_key(recipient));
    b = g_byte_array_sized_new((guint)(len + 48));
    g_byte_array_append(b, (const guint8 *)CMS_MAGIC, 4);
    put_u8(b, (guint8)cipher);
    g_byte_array_append(b, pub, CM_MODEL_ID);
    put_u64(b, len);
    if (len > 0)
        g_byte_array_append(b, data, (guint)len);
    cm_model_tag(pub, CM_MODEL_DOMAIN_CMS, b->data, b->len, tag);
    g_byte_array_append(b, tag, CM_MODEL_ID);
    return g_byte_array_free_to_bytes(b);
}

GBytes *
cm_model_cms_decrypt(const CmKey *key, const guint8 *der, size_t len, size_t max_plain,
                     CmCipher *cipher_out, GError **error)
{
    Reader r = {der, der + len, FALSE};
    guint8 cipher, pub[CM_MODEL_ID];
    guint64 n;
    const guint8 *plain;

    (void)take(&r, 4);
    cipher = get_u8(&r);
    get_id(&r, pub);
    n = get_u64(&r);
    plain = n <= (guint64)(r.end - r.p) ? take(&r, (size_t)n) : NULL;
    if (plain == NULL || (size_t)(r.end - r.p) != CM_MODEL_ID || cipher > CM_CIPHER_3DES_CBC) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "not a DER CMS message");
        return NULL;
    }
    if (!cm_key_is_model(key) || cm_key_model_secret(key) == NULL ||
        CRYPTO_memcmp(pub, cm_key_model_pub(key), CM_MODEL_ID) != 0 ||
        !cm_model_tag_ok(pub, CM_MODEL_DOMAIN_CMS, der, len - CM_MODEL_ID, r.p)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                    "cannot decrypt: not addressed to this key, or altered");
        return NULL;
    }
    if (n > max_plain) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_TOO_LARGE,
                    "decrypted message of %zu bytes refused: at most %zu", (size_t)n, max_plain);
        return NULL;
    }
    if (cipher_out != NULL)
        *cipher_out = (CmCipher)cipher;
    return g_bytes_new(plain, (gsize)n);
}

/* --------------------------------------------------- chain verification */

static gboolean
names_equal(const char *cn_a, const char *o_a, const char *cn_b, const char *o_b)
{
    return g_strcmp0(cn_a ? cn_a : "", cn_b ? cn_b : "") == 0 &&
           g_strcmp0(o_a ? o_a : "", o_b ? o_b : "") == 0;
}

static gboolean
is_ca(const CmModelCert *m)
{
    return m->profile == CM_CERT_ROOT_CA || m->profile == CM_CERT_INTERMEDIATE_CA;
}

/* The extended key usage a profile carries (cert.c's profile_of). */
static gboolean
purpose_ok(const CmModelCert *m, CmPurpose purpose)
{
    switch (purpose) {
    case CM_PURPOSE_CLIENT_AUTH:
        return m->profile == CM_CERT_CLIENT_SELF_SIGNED || m->profile == CM_CERT_CLIENT_AUTH ||
               m->profile == CM_CERT_ENCRYPTION || is_ca(m);
    case CM_PURPOSE_SERVER_AUTH:
        return m->profile == CM_CERT_MP || m->profile == CM_CERT_SERVER ||
               m->profile == CM_CERT_ENCRYPTION || is_ca(m);
    case CM_PURPOSE_ANY:
    default:
        return TRUE;
    }
}

static const CmCert *
find_issuer(const CmModelCert *m, GPtrArray *const lists[], size_t n_lists)
{
    for (size_t l = 0; l < n_lists; l++)
        for (guint i = 0; lists[l] != NULL && i < lists[l]->len; i++) {
            const CmCert *c = g_ptr_array_index(lists[l], i);
            const CmModelCert *cm = cm_cert_model(c);
            if (cm != NULL && names_equal(m->issuer_cn, m->issuer_o, cm->cn, cm->o) &&
                memcmp(m->issuer_pub, cm->subject_pub, CM_MODEL_ID) == 0)
                return c;
        }
    return NULL;
}

static void
refuse(GError **error, CmProtoError code, const CmCert *leaf, const char *why, int depth,
       const CmCert *where)
{
    g_set_error(error, CM_PROTO_ERROR, code, "certificate \"%s\" refused: %s (at depth %d, CN=%s)%s",
                cm_cert_subject_cn(leaf), why, depth, cm_cert_subject_cn(where),
                code == CM_PROTO_ERROR_UNTRUSTED && strstr(why, "CRL") != NULL
                    ? "; CRL checking is on, so publish the issuer's CRL or turn checking off"
                    : "");
}

/* Checks the CRL of issuer for cert (CRL checking on). */
static gboolean
crl_ok(GPtrArray *crls, const CmCert *cert, const CmCert *issuer, const CmCert *leaf, int depth,
       CmTime now, GError **error)
{
    const CmModelCert *m = cm_cert_model(cert), *im = cm_cert_model(issuer);

    for (guint i = 0; crls != NULL && i < crls->len; i++) {
        const CmModelCrl *crl = cm_crl_model(g_ptr_array_index(crls, i));
        if (crl == NULL || !names_equal(crl->issuer_cn, crl->issuer_o, im->cn, im->o) ||
            !cm_model_crl_signed_by(crl, im->subject_pub))
            continue;
        if (now < crl->this_update || now > crl->next_update) {
            refuse(error, CM_PROTO_ERROR_EXPIRED, leaf,
                   now < crl->this_update ? "CRL is not yet valid" : "CRL has expired", depth,
                   cert);
            return FALSE;
        }
        if (cm_model_crl_lists(crl, m->serial)) {
            refuse(error, CM_PROTO_ERROR_REVOKED, leaf, "certificate revoked", depth, cert);
            return FALSE;
        }
        return TRUE;
    }
    refuse(error, CM_PROTO_ERROR_UNTRUSTED, leaf, "unable to get certificate CRL", depth, cert);
    return FALSE;
}

const CmCert *
cm_model_trust_verify(GPtrArray *roots, GPtrArray *intermediates, GPtrArray *untrusted,
                      GPtrArray *crls, gboolean crl_check, const CmCert *leaf, CmTime now,
                      CmPurpose purpose, GError **error)
{
    GPtrArray *const issuers[] = {roots, intermediates, untrusted};
    const CmCert *cur = leaf;
    int depth = 0;

    if (!purpose_ok(cm_cert_model(leaf), purpose)) {
        CM_COUNT(verify);
        refuse(error, CM_PROTO_ERROR_REFUSED, leaf, "unsupported certificate purpose", 0, leaf);
        return NULL;
    }
    for (;;) {
        const CmModelCert *m = cm_cert_model(cur);
        const CmCert *issuer;

        if (now < m->not_before || now > m->not_after) {
            CM_COUNT(verify);
            refuse(error, CM_PROTO_ERROR_EXPIRED, leaf,
                   now < m->not_before ? "certificate is not yet valid"
                                       : "certificate has expired",
                   depth, cur);
            return NULL;
        }
        /* A trusted self-signed certificate ends the chain. */
        if (names_equal(m->cn, m->o, m->issuer_cn, m->issuer_o)) {
            const CmCert *root = cm_model_root_of(roots, cur);
            if (root != NULL) {
                if (depth == 0)
                    CM_COUNT(verify);
                return root;
            }
        }
        if (depth >= 8) {
            refuse(error, CM_PROTO_ERROR_UNTRUSTED, leaf, "certificate chain too long", depth,
                   cur);
            return NULL;
        }
        issuer = find_issuer(m, issuers, G_N_ELEMENTS(issuers));
        CM_COUNT(verify);
        if (issuer == NULL) {
            refuse(error, CM_PROTO_ERROR_UNTRUSTED, leaf,
                   names_equal(m->cn, m->o, m->issuer_cn, m->issuer_o)
                       ? "self-signed certificate"
                       : "unable to get local issuer certificate",
                   depth, cur);
            return NULL;
        }
        if (!cm_model_cert_signed_by(m, cm_cert_model(issuer)->subject_pub)) {
            refuse(error, CM_PROTO_ERROR_UNTRUSTED, leaf, "certificate signature failure", depth,
                   cur);
            return NULL;
        }
        if (issuer != cur && !is_ca(cm_cert_model(issuer))) {
            refuse(error, CM_PROTO_ERROR_UNTRUSTED, leaf, "invalid CA certificate", depth + 1,
                   issuer);
            return NULL;
        }
        if (crl_check && issuer != cur && !crl_ok(crls, cur, issuer, leaf, depth, now, error))
            return NULL;
        if (issuer == cur) {
            refuse(error, CM_PROTO_ERROR_UNTRUSTED, leaf, "self-signed certificate", depth, cur);
            return NULL;
        }
        cur = issuer;
        depth++;
    }
}

const CmCert *
cm_model_root_of(GPtrArray *roots, const CmCert *cert)
{
    for (guint i = 0; i < roots->len; i++) {
        const CmCert *r = g_ptr_array_index(roots, i);
        if (cm_cert_model(r) != NULL &&
            g_bytes_equal(cm_cert_model(r)->der, cm_cert_model(cert)->der))
            return r;
    }
    return NULL;
}
