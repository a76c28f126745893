/* rng.c - random numbers handed to role code: seeded xoshiro256** streams
 * for the simulator and tests, OpenSSL's DRBG for the daemons.
 *
 * Seeded streams are the reason a simulation is reproducible: every entity
 * draws from its own (seed, stream) generator, so what one client draws
 * never depends on how many numbers another client drew before it. */
#include "internal.h"

#include <string.h>

#include <openssl/rand.h>

/* splitmix64 (Steele, Lea, Flood 2014; Vigna's reference constants): the
 * recommended way to expand a 64-bit seed into xoshiro state, and a good
 * 64-bit finalizer on its own. */
#define SPLITMIX_GAMMA G_GUINT64_CONSTANT(0x9E3779B97F4A7C15)

static inline guint64
splitmix64_mix(guint64 z)
{
    z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline guint64
splitmix64_next(guint64 *x)
{
    *x += SPLITMIX_GAMMA;
    return splitmix64_mix(*x);
}

static inline guint64
rotl64(guint64 x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* Daemons have nothing sensible to do without entropy: a predictable
 * SMSID or nonce is worse than stopping. */
static void
os_bytes(void *out, size_t len)
{
    while (len > 0) {
        int n = len > (size_t)G_MAXINT ? G_MAXINT : (int)len;
        if (RAND_bytes(out, n) != 1)
            g_error("OpenSSL RAND_bytes failed: the OS random generator is unavailable");
        out = (guint8 *)out + n;
        len -= (size_t)n;
    }
}

static G_GNUC_NO_INLINE guint64
os_u64(void)
{
    guint64 v;

    os_bytes(&v, sizeof v);
    return v;
}

void
cm_rng_init_seeded(CmRng *rng, guint64 seed, guint64 stream)
{
    /* The stream id is hashed before it meets the seed so that streams
     * 0, 1, 2... (or seeds 0, 1, 2...) do not land on neighbouring points
     * of one splitmix sequence, and every state word depends on both
     * inputs: xoshiro's first output reads only s[1], so words taken from
     * the seed alone would make all streams of a seed start alike.  For one
     * seed, distinct streams give distinct states (the mix is a bijection). */
    guint64 x = seed ^ splitmix64_mix(stream ^ G_GUINT64_CONSTANT(0x6A09E667F3BCC909));

    g_return_if_fail(rng != NULL);
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64_next(&x);
    /* Four outputs of a bijection on four distinct inputs hold at most one
     * zero, so the all-zero state (xoshiro's fixed point) cannot occur. */
    rng->os = FALSE;
}

void
cm_rng_init_os(CmRng *rng)
{
    g_return_if_fail(rng != NULL);
    memset(rng->s, 0, sizeof rng->s);
    rng->os = TRUE;
}

/* xoshiro256** 1.0 (Blackman and Vigna), called once per simulator event:
 * keep it branch-light and inlinable. */
guint64
cm_rng_u64(CmRng *rng)
{
    guint64 *s = rng->s;
    guint64 result, t;

    if (G_UNLIKELY(rng->os))
        return os_u64();
    result = rotl64(s[1] * 5, 7) * 9;
    t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

guint64
cm_rng_below(CmRng *rng, guint64 bound)
{
    if (bound == 0)
        return 0;
#ifdef __SIZEOF_INT128__
    /* Lemire, "Fast random integer generation in an interval" (2019): one
     * multiplication, and a division only in the rare rejection case. */
    {
        unsigned __int128 m = (unsigned __int128)cm_rng_u64(rng) * bound;
        guint64 low = (guint64)m;

        if (low < bound) {
            guint64 threshold = (0 - bound) % bound; /* 2^64 mod bound */
            while (low < threshold) {
                m = (unsigned __int128)cm_rng_u64(rng) * bound;
                low = (guint64)m;
            }
        }
        return (guint64)(m >> 64);
    }
#else
    /* Plain rejection: accept only draws below the largest multiple of
     * bound that fits, so every residue is equally likely. */
    {
        guint64 threshold = (0 - bound) % bound;
        guint64 r;

        do {
            r = cm_rng_u64(rng);
        } while (r < threshold);
        return r % bound;
    }
#endif
}

double
cm_rng_double(CmRng *rng)
{
    /* The top 53 bits fill a double's mantissa exactly: every value is a
     * multiple of 2^-53 and 1.0 is never returned. */
    return (double)(cm_rng_u64(rng) >> 11) * 0x1.0p-53;
}

void
cm_rng_bytes(CmRng *rng, void *out, size_t len)
{
    guint8 *p = out;

    g_return_if_fail(rng != NULL);
    g_return_if_fail(out != NULL || len == 0);
    if (rng->os) {
        os_bytes(out, len);
        return;
    }
    /* Bytes are taken least significant first, so a seeded stream gives
     * the same bytes on every host whatever its endianness. */
    while (len > 0) {
        guint64 v = cm_rng_u64(rng);
        for (int i = 0; i < 8 && len > 0; i++, len--) {
            *p++ = (guint8)v;
            v >>= 8;
        }
    }
}

guint64
cm_rng_stream_id(const char *name)
{
    /* FNV-1a spreads every byte of the name; the splitmix finalizer then
     * fixes FNV's weak high bits for short names such as "client/7". */
    guint64 h = G_GUINT64_CONSTANT(0xCBF29CE484222325);

    g_return_val_if_fail(name != NULL, 0);
    for (const guint8 *p = (const guint8 *)name; *p != '\0'; p++) {
        h ^= *p;
        h *= G_GUINT64_CONSTANT(0x100000001B3);
    }
    return splitmix64_mix(h);
}
