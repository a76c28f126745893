/* parsecache.c - an opt-in cache of parsed certificates, public keys and
 * JSON objects, keyed by the exact bytes they were parsed from.
 *
 * In a simulation thousands of clients parse the same MP certificate, the
 * same site signing certificate and the same trusted root key; parsing is
 * the costliest thing OpenSSL 3.0 does with them.  Parsed objects are
 * immutable (their lazy caches are thread-safe), so equal bytes may share
 * one.  Off by default: the daemons parse what they receive, as clients do. */
#include "internal.h"

#define CACHE_MAX_ENTRIES 2000000
/* JSON objects are few (a policy per collection and version) and larger. */
#define CACHE_MAX_JSON 65536

static GMutex lock;
static gboolean enabled;
static GHashTable *certs; /* GBytes -> CmCert */
static GHashTable *keys;  /* GBytes -> CmKey */
static GHashTable *jsons; /* GBytes -> json_t */

void
cm_parse_cache_enable(gboolean on)
{
    g_mutex_lock(&lock);
    enabled = on;
    if (on && certs == NULL) {
        certs = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                      (GDestroyNotify)cm_cert_unref);
        keys = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                     (GDestroyNotify)cm_key_unref);
        jsons = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                      (GDestroyNotify)json_decref);
    } else if (!on) {
        g_clear_pointer(&certs, g_hash_table_unref);
        g_clear_pointer(&keys, g_hash_table_unref);
        g_clear_pointer(&jsons, g_hash_table_unref);
    }
    g_mutex_unlock(&lock);
}

static gpointer
lookup(GHashTable *table, const guint8 *der, size_t len)
{
    gpointer hit = NULL;

    if (!enabled)
        return NULL;
    g_mutex_lock(&lock);
    if (table != NULL) {
        GBytes *k = g_bytes_new_static(der, len);
        hit = g_hash_table_lookup(table, k);
        g_bytes_unref(k);
    }
    g_mutex_unlock(&lock);
    return hit;
}

static void
put(GHashTable *table, const guint8 *der, size_t len, gpointer value)
{
    if (!enabled)
        return;
    g_mutex_lock(&lock);
    if (table != NULL)
        g_hash_table_replace(table, g_bytes_new(der, len), value);
    g_mutex_unlock(&lock);
}

CmCert *
cm_parse_cache_cert(const guint8 *der, size_t len)
{
    CmCert *c = lookup(certs, der, len);
    return c ? cm_cert_ref(c) : NULL;
}

void
cm_parse_cache_cert_put(const guint8 *der, size_t len, CmCert *cert)
{
    if (enabled && certs != NULL && g_hash_table_size(certs) < CACHE_MAX_ENTRIES)
        put(certs, der, len, cm_cert_ref(cert));
}

/* The same with der itself as the key (no copy): a certificate that keeps
 * its DER shares it with the cache. */
void
cm_parse_cache_cert_put_bytes(GBytes *der, CmCert *cert)
{
    if (!enabled)
        return;
    g_mutex_lock(&lock);
    if (certs != NULL && g_hash_table_size(certs) < CACHE_MAX_ENTRIES)
        g_hash_table_replace(certs, g_bytes_ref(der), cm_cert_ref(cert));
    g_mutex_unlock(&lock);
}

CmKey *
cm_parse_cache_key(const guint8 *der, size_t len)
{
    CmKey *k = lookup(keys, der, len);
    return k ? cm_key_ref(k) : NULL;
}

void
cm_parse_cache_key_put(const guint8 *der, size_t len, CmKey *key)
{
    if (enabled && keys != NULL && g_hash_table_size(keys) < CACHE_MAX_ENTRIES)
        put(keys, der, len, cm_key_ref(key));
}

/* jansson's reference counts are atomic and its readers (json_object_get,
 * json_dumps, json_equal) change nothing, so threads may share an object
 * that nobody modifies. */
json_t *
cm_parse_cache_json(GBytes *bytes)
{
    json_t *hit = NULL;

    if (!enabled)
        return NULL;
    g_mutex_lock(&lock);
    if (jsons != NULL)
        hit = json_incref(g_hash_table_lookup(jsons, bytes));
    g_mutex_unlock(&lock);
    return hit;
}

void
cm_parse_cache_json_put(GBytes *bytes, json_t *obj)
{
    if (!enabled)
        return;
    g_mutex_lock(&lock);
    if (jsons != NULL && g_hash_table_size(jsons) < CACHE_MAX_JSON)
        g_hash_table_replace(jsons, g_bytes_ref(bytes), json_incref(obj));
    g_mutex_unlock(&lock);
}
