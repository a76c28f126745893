/* sim.c - one run of one scenario variant: build the world, run the engine
 * to the scenario's end (with a progress line for people watching), measure. */
#include "world.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cmsim.h"

/* This thread's CPU time in microseconds: the per-operation costs below are
 * timed in CPU time, not wall time, so other processes on a shared machine
 * do not inflate them. */
static gint64
thread_cpu_usec(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return g_get_monotonic_time();
    return (gint64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What the calibration below times: one of each counted crypto operation
 * on fixed inputs. */
typedef struct {
    CmKey *key;
    const CmCertSpec *spec;
    CmCert *cert;
    GBytes *der, *pub, *sig, *env;
} CryptoKit;

enum {
    OP_KEYGEN,
    OP_SIGN,
    OP_VERIFY,
    OP_CERT_ISSUE,
    OP_CERT_PARSE,
    OP_KEY_PARSE,
    OP_CMS_ENCRYPT,
    OP_CMS_DECRYPT,
    N_OPS
};

static void
crypto_op(const CryptoKit *c, int op)
{
    switch (op) {
    case OP_KEYGEN:
        cm_key_unref(cm_key_generate(CM_KEY_EC_P256, NULL));
        break;
    case OP_SIGN:
        g_bytes_unref(cm_sig_sign(c->key, CM_HASH_SHA256, "x", 1, NULL));
        break;
    case OP_VERIFY:
        cm_sig_verify(c->key, CM_HASH_SHA256, "x", 1, g_bytes_get_data(c->sig, NULL),
                      g_bytes_get_size(c->sig), NULL);
        break;
    case OP_CERT_ISSUE:
        cm_cert_unref(cm_cert_issue(c->spec, NULL));
        break;
    case OP_CERT_PARSE:
        cm_cert_unref(
            cm_cert_from_der(g_bytes_get_data(c->der, NULL), g_bytes_get_size(c->der), NULL));
        break;
    case OP_KEY_PARSE:
        cm_key_unref(
            cm_key_public_from_der(g_bytes_get_data(c->pub, NULL), g_bytes_get_size(c->pub), NULL));
        break;
    case OP_CMS_ENCRYPT:
        g_bytes_unref(cm_cms_encrypt(c->cert, CM_CIPHER_AES256_GCM, "x", 1, NULL));
        break;
    case OP_CMS_DECRYPT:
        g_bytes_unref(cm_cms_decrypt(c->cert, c->key, g_bytes_get_data(c->env, NULL),
                                     g_bytes_get_size(c->env), 1024, NULL, NULL));
        break;
    default:
        g_assert_not_reached();
    }
}

/* CPU costs of the crypto operations on this machine, to say what share
 * of a run's CPU time went to crypto (the terminal summary only: it varies
 * by machine).  Each operation is timed in 5 rounds of 40 calls and the
 * fastest round counts: CPU time still grows when another process on a
 * shared machine takes the caches or the core's other thread, and one
 * such round had put the estimate of crypto a third too high (the rest
 * then looked like 1% of it). */
#define CALIBRATION_ROUNDS 5
#define CALIBRATION_CALLS 40

static double per_op[N_OPS];

/* Times the operations (with the parse cache off: a cached certificate or
 * key is not parsed, and not counted) and keeps each one's lowest cost so
 * far in this process.  Runs at the start and at the end of each run, so
 * that one slow moment of a shared machine does not set the estimate. */
static void
crypto_calibrate(void)
{
    g_autoptr(CmKey) k = cm_key_generate(CM_KEY_EC_P256, NULL);
    CmTime t = G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC;
    CmCertSpec spec = {.profile = CM_CERT_ENCRYPTION,
                       .subject_cn = "calibration",
                       .serial = 1,
                       .not_before = t,
                       .not_after = t + CM_USEC_PER_DAY,
                       .subject_key = k};
    g_autoptr(CmCert) cert = cm_cert_issue(&spec, NULL);
    g_autoptr(GBytes) der = cm_cert_to_der(cert);
    g_autoptr(GBytes) pub = cm_key_public_der(k);
    g_autoptr(GBytes) sig = cm_sig_sign(k, CM_HASH_SHA256, "x", 1, NULL);
    g_autoptr(GBytes) env = cm_cms_encrypt(cert, CM_CIPHER_AES256_GCM, "x", 1, NULL);
    CryptoKit kit = {k, &spec, cert, der, pub, sig, env};

    for (int op = 0; op < N_OPS; op++) {
        gint64 best = G_MAXINT64;
        double best_s;
        /* Warm up: the first calls fetch algorithms and fill caches,
         * which a long run pays once. */
        for (int i = 0; i < 10; i++)
            crypto_op(&kit, op);
        for (int r = 0; r < CALIBRATION_ROUNDS; r++) {
            gint64 t0 = thread_cpu_usec();
            for (int i = 0; i < CALIBRATION_CALLS; i++)
                crypto_op(&kit, op);
            best = MIN(best, thread_cpu_usec() - t0);
        }
        best_s = (double)best / CALIBRATION_CALLS / 1e6;
        if (per_op[op] == 0 || best_s < per_op[op])
            per_op[op] = best_s;
    }
}

/* The CPU time the counted operations cc would take at the calibrated costs. */
static double
crypto_seconds(const CmCryptoCounters *cc)
{
    return cc->keygen * per_op[OP_KEYGEN] + cc->sign * per_op[OP_SIGN] +
           cc->verify * per_op[OP_VERIFY] + cc->cert_issue * per_op[OP_CERT_ISSUE] +
           cc->cert_parse * per_op[OP_CERT_PARSE] + cc->key_parse * per_op[OP_KEY_PARSE] +
           cc->cms_encrypt * per_op[OP_CMS_ENCRYPT] + cc->cms_decrypt * per_op[OP_CMS_DECRYPT];
}

/* ------------------------------------------- crypto's share, sampled */

/* Set while this thread is inside an allocation OpenSSL asked for: the
 * sampler below counts its samples with crypto's.  An executable's own
 * thread-local variable, so the signal handler may read it. */
static __thread volatile sig_atomic_t in_crypto_alloc;

static void *
crypto_malloc(size_t n, const char *file, int line)
{
    void *p;

    (void)file;
    (void)line;
    in_crypto_alloc++;
    p = malloc(n);
    in_crypto_alloc--;
    return p;
}

static void *
crypto_realloc(void *old, size_t n, const char *file, int line)
{
    void *p;

    (void)file;
    (void)line;
    in_crypto_alloc++;
    p = realloc(old, n);
    in_crypto_alloc--;
    return p;
}

static void
crypto_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    in_crypto_alloc++;
    free(p);
    in_crypto_alloc--;
}

gboolean
cm_sim_count_crypto_allocations(void)
{
    return CRYPTO_set_mem_functions(crypto_malloc, crypto_realloc, crypto_free) == 1;
}

/* The counted-operations estimate above times each operation alone, with
 * warm caches; in a run of many clients the same operations cost more.  So
 * the share is also measured in place: a profiling timer interrupts the
 * process every millisecond of CPU time (any thread) and counts whether
 * the interrupted instruction lies in libcrypto's code.  Linux on x86-64
 * only (it reads the program counter from the signal's context). */
#if defined(__linux__) && defined(__x86_64__)
#define SIM_SAMPLER 1
#include <link.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>

#define CODE_RANGES_MAX 8
static uintptr_t code_lo[CODE_RANGES_MAX], code_hi[CODE_RANGES_MAX];
static int n_code;
static volatile gint sampled_all, sampled_crypto, sampled_crypto_alloc;

static int
find_libcrypto(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libcrypto") == NULL)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && n_code < CODE_RANGES_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            code_lo[n_code] = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
            code_hi[n_code] = code_lo[n_code] + ph->p_memsz;
            n_code++;
        }
    }
    return 1;
}

static void
on_sample(int sig, siginfo_t *si, void *ctx)
{
    const ucontext_t *uc = ctx;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];

    (void)sig;
    (void)si;
    g_atomic_int_inc(&sampled_all);
    for (int i = 0; i < n_code; i++)
        if (pc >= code_lo[i] && pc < code_hi[i]) {
            g_atomic_int_inc(&sampled_crypto);
            return;
        }
    if (in_crypto_alloc)
        g_atomic_int_inc(&sampled_crypto_alloc);
}

typedef struct {
    struct sigaction old_action;
    struct itimerval old_timer;
    gboolean on;
} Sampler;

static void
sampler_start(Sampler *s)
{
    struct sigaction sa;
    struct itimerval every = {{0, 1000}, {0, 1000}};

    memset(s, 0, sizeof *s);
    if (n_code == 0)
        dl_iterate_phdr(find_libcrypto, NULL);
    if (n_code == 0)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sample;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    g_atomic_int_set(&sampled_all, 0);
    g_atomic_int_set(&sampled_crypto, 0);
    g_atomic_int_set(&sampled_crypto_alloc, 0);
    if (sigaction(SIGPROF, &sa, &s->old_action) != 0)
        return;
    if (setitimer(ITIMER_PROF, &every, &s->old_timer) != 0) {
        sigaction(SIGPROF, &s->old_action, NULL);
        return;
    }
    s->on = TRUE;
}

/* Stops sampling; the share of samples in libcrypto, or -1, and in
 * *with_alloc that share with the samples in OpenSSL's allocations. */
static double
sampler_stop(Sampler *s, double *with_alloc)
{
    int all, crypto, alloc;

    *with_alloc = -1;
    if (!s->on)
        return -1;
    setitimer(ITIMER_PROF, &s->old_timer, NULL);
    /* A tick may still come (under valgrind, whose timer outlives the
     * setitimer above, it does): the default action would end the process
     * ("Profiling timer expired") before the reports are written.  So the
     * signal stays ignored unless someone else had a handler for it. */
    if (s->old_action.sa_handler == SIG_DFL && !(s->old_action.sa_flags & SA_SIGINFO))
        signal(SIGPROF, SIG_IGN);
    else
        sigaction(SIGPROF, &s->old_action, NULL);
    all = g_atomic_int_get(&sampled_all);
    crypto = g_atomic_int_get(&sampled_crypto);
    alloc = g_atomic_int_get(&sampled_crypto_alloc);
    if (all < 100)
        return -1;
    *with_alloc = (double)(crypto + alloc) / all;
    return (double)crypto / all;
}
#else
typedef struct {
    int unused;
} Sampler;
static void
sampler_start(Sampler *s)
{
    (void)s;
}
static double
sampler_stop(Sampler *s, double *with_alloc)
{
    (void)s;
    *with_alloc = -1;
    return -1;
}
#endif

static double
cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static gsize
peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (gsize)ru.ru_maxrss : 0;
}

static void
progress_line(SimWorld *w, double started, gboolean final)
{
    double wall = (double)g_get_monotonic_time() / 1e6 - started;
    double done = (double)cm_sim_now(w->engine) / (double)w->scn->duration;
    double eta = done > 0.001 ? wall / done - wall : 0;
    g_autofree char *label = g_strdup_printf(
        "%s%s%s", w->scn->name, *w->scn->variant_label ? " " : "", w->scn->variant_label);

    fprintf(stderr, "\r%-40.40s virtual %6.1f%%  %9.0f events/s  %6.1fs elapsed  ETA %5.0fs%s",
            label, done * 100, wall > 0 ? cm_sim_events(w->engine) / wall : 0, wall,
            final ? 0.0 : eta, final ? "\n" : "");
    fflush(stderr);
}

CmRun *
cm_sim_run_scenario(CmScenario *scn, const CmSimOptions *options, GError **error)
{
    SimCosts costs;
    SimWorld *w;
    CmRun *run;
    CmCryptoCounters before, after;
    double started = (double)g_get_monotonic_time() / 1e6, last = started;
    double cpu_started = cpu_seconds();
    Sampler sampler;
    double sampled, sampled_alloc;
    gboolean tty = options != NULL && options->progress && isatty(STDERR_FILENO);

    sim_costs_default(&costs);
    if (options != NULL && options->costs_path != NULL &&
        !sim_costs_load(&costs, options->costs_path, error))
        return NULL;
    /* Measure the real operations' rates now, before the model mode (if
     * any) changes what key generation makes. */
    crypto_calibrate();
    /* Every virtual client parses the same site certificates: share them. */
    cm_parse_cache_enable(TRUE);
    cm_crypto_model_set(scn->model_crypto);
    sampler_start(&sampler);
    cm_crypto_counters_reset();
    cm_crypto_counters_get(&before);
    w = sim_world_new(scn, &costs, error);
    if (w == NULL) {
        (void)sampler_stop(&sampler, &sampled_alloc);
        cm_crypto_model_set(FALSE);
        cm_parse_cache_enable(FALSE);
        return NULL;
    }
    /* Run in slices so the progress line can move. */
    for (CmTime t = 0; t < scn->duration;) {
        t = MIN(scn->duration, t + MAX(scn->duration / 1000, CM_USEC_PER_SEC));
        cm_sim_run_until(w->engine, t);
        if (tty && (double)g_get_monotonic_time() / 1e6 - last > 0.5) {
            last = (double)g_get_monotonic_time() / 1e6;
            progress_line(w, started, FALSE);
        }
    }
    if (tty)
        progress_line(w, started, TRUE);
    sim_site_sync(w);
    sim_metrics_finish(w);
    cm_crypto_counters_get(&after);
    run = w->run;
    w->run = NULL;
    run->scenario = g_strdup(scn->name);
    run->description = g_strdup(scn->description ? scn->description : "");
    run->variant_label = g_strdup(scn->variant_label ? scn->variant_label : "");
    run->full_size = g_strdup(scn->full_size ? scn->full_size : "");
    run->seed = scn->seed;
    run->duration = scn->duration;
    run->sample = scn->sample;
    run->model_crypto = scn->model_crypto;
    run->events = cm_sim_events(w->engine);
    if (options != NULL && options->exiting)
        sim_world_leave(w);
    else
        sim_world_free(w);
    sampled = sampler_stop(&sampler, &sampled_alloc);
    cm_parse_cache_enable(FALSE);
    cm_crypto_model_set(FALSE);
    run->wall_seconds = (double)g_get_monotonic_time() / 1e6 - started;
    run->cpu_seconds = cpu_seconds() - cpu_started;
    {
        CmCryptoCounters d = {
            after.keygen - before.keygen,           after.sign - before.sign,
            after.verify - before.verify,           after.cert_issue - before.cert_issue,
            after.cert_parse - before.cert_parse,   after.key_parse - before.key_parse,
            after.cms_encrypt - before.cms_encrypt, after.cms_decrypt - before.cms_decrypt};
        crypto_calibrate();
        run->crypto_seconds = crypto_seconds(&d);
    }
    run->peak_rss_kib = peak_rss_kib();
    run->crypto_sampled = sampled;
    run->crypto_sampled_alloc = sampled_alloc;
    return run;
}
