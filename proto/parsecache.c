/* parsecache.c - an opt-in cache of parsed certificates, public keys and
 * JSON objects, keyed by the exact bytes they were parsed from.
 *
 * In a simulation thousands of clients parse the same MP certificate, the
 * same site signing certificate and the same trusted root key; parsing is
 * the costliest thing OpenSSL 3.0 does with them.  Parsed objects are
 * immutable (their lazy caches are thread-safe), so equal bytes may share
 * one.  Off by default: the daemons parse what they receive, as clients do. */
#include "internal.h"

#include <string.h>

#define CACHE_MAX_ENTRIES 2000000
/* JSON objects are few (a policy per collection and version) and larger. */
#define CACHE_MAX_JSON 65536

static GMutex lock;
static gboolean enabled;
static GHashTable *certs; /* GBytes -> CmCert */
static GHashTable *keys;  /* GBytes -> CmKey */
static GHashTable *jsons; /* GBytes -> json_t */

/* g_bytes_hash reads a byte at a time, and every lookup hashes a whole
 * certificate or policy: eight bytes at a time with a multiply to mix.
 * The table compares the bytes in full, so this only spreads them. */
static guint
bytes_hash(gconstpointer b)
{
    gsize len;
    const guint8 *p = g_bytes_get_data((GBytes *)b, &len);
    guint64 h = 0x9e3779b97f4a7c15u ^ len, w;
    gsize i = 0;

    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    if (i < len)
        memcpy(&w, p + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return (guint)(h ^ h >> 29);
}

void
cm_parse_cache_enable(gboolean on)
{
    g_mutex_lock(&lock);
    enabled = on;
    if (on && certs == NULL) {
        certs = g_hash_table_new_full(bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                      (GDestroyNotify)cm_cert_unref);
        keys = g_hash_table_new_full(bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                     (GDestroyNotify)cm_key_unref);
        jsons = g_hash_table_new_full(bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                      (GDestroyNotify)json_decref);
    } else if (!on) {
        g_clear_pointer(&certs, g_hash_table_unref);
        g_clear_pointer(&keys, g_hash_table_unref);
        g_clear_pointer(&jsons, g_hash_table_unref);
    }
    g_mutex_unlock(&lock);
}

/* Each table holds its own reference to its values: */
typedef gpointer (*RefFn)(gpointer);

static gpointer
ref_cert(gpointer c)
{
    return cm_cert_ref(c);
}

static gpointer
ref_key(gpointer k)
{
    return cm_key_ref(k);
}

static gpointer
ref_json(gpointer j)
{
    return json_incref(j);
}

/* The value for key, with a reference taken under the lock (a table may
 * be cleared on another thread), or NULL. */
static gpointer
lookup(GHashTable **table, GBytes *key, RefFn ref)
{
    gpointer hit = NULL;

    if (!enabled)
        return NULL;
    g_mutex_lock(&lock);
    if (*table != NULL) {
        hit = g_hash_table_lookup(*table, key);
        if (hit != NULL)
            hit = ref(hit);
    }
    g_mutex_unlock(&lock);
    return hit;
}

/* Keeps value under key (both referenced), while the table has room. */
static void
put(GHashTable **table, GBytes *key, guint max, gpointer value, RefFn ref)
{
    if (!enabled)
        return;
    g_mutex_lock(&lock);
    if (*table != NULL && g_hash_table_size(*table) < max)
        g_hash_table_replace(*table, g_bytes_ref(key), ref(value));
    g_mutex_unlock(&lock);
}

/* der as a key: looked up in place, copied when kept. */
static gpointer
lookup_der(GHashTable **table, const guint8 *der, size_t len, RefFn ref)
{
    g_autoptr(GBytes) key = NULL;

    if (!enabled)
        return NULL;
    key = g_bytes_new_static(der, len);
    return lookup(table, key, ref);
}

static void
put_der(GHashTable **table, const guint8 *der, size_t len, gpointer value, RefFn ref)
{
    g_autoptr(GBytes) key = NULL;

    if (!enabled)
        return;
    key = g_bytes_new(der, len);
    put(table, key, CACHE_MAX_ENTRIES, value, ref);
}

CmCert *
cm_parse_cache_cert(const guint8 *der, size_t len)
{
    return lookup_der(&certs, der, len, ref_cert);
}

void
cm_parse_cache_cert_put(const guint8 *der, size_t len, CmCert *cert)
{
    put_der(&certs, der, len, cert, ref_cert);
}

/* The same with der itself as the key (no copy): a certificate that keeps
 * its DER shares it with the cache. */
void
cm_parse_cache_cert_put_bytes(GBytes *der, CmCert *cert)
{
    put(&certs, der, CACHE_MAX_ENTRIES, cert, ref_cert);
}

CmKey *
cm_parse_cache_key(const guint8 *der, size_t len)
{
    return lookup_der(&keys, der, len, ref_key);
}

void
cm_parse_cache_key_put(const guint8 *der, size_t len, CmKey *key)
{
    put_der(&keys, der, len, key, ref_key);
}

/* jansson's reference counts are atomic and its readers (json_object_get,
 * json_dumps, json_equal) change nothing, so threads may share an object
 * that nobody modifies. */
json_t *
cm_parse_cache_json(GBytes *bytes)
{
    return lookup(&jsons, bytes, ref_json);
}

void
cm_parse_cache_json_put(GBytes *bytes, json_t *obj)
{
    put(&jsons, bytes, CACHE_MAX_JSON, obj, ref_json);
}
