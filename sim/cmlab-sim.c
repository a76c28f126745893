/* cmlab-sim - runs scenario files against the real role libraries in
 * virtual time, prints a summary, writes JSON and HTML reports, and exits
 * 0 when every expectation held, 1 when some failed, 2 when a scenario
 * could not run. */
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmsim.h"

static char *opt_out;
static char *opt_costs;
static double opt_scale = 1.0;
static gboolean opt_quiet;
static gboolean opt_no_progress;
static gboolean opt_verbose;
static int opt_calibrate_clients = 300;
static char *opt_crypto;

static gboolean
write_report(const char *dir, const char *name, const char *data, GError **error)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    return g_file_set_contents(path, data, -1, error);
}

static int
run_file(const char *path, gboolean last)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) variants = cm_scenario_load(path, opt_scale, &error);
    g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func((GDestroyNotify)cm_run_free);
    CmSimOptions options = {.costs_path = opt_costs, .progress = !opt_no_progress && !opt_quiet};
    g_autofree char *dir = NULL, *json = NULL, *html = NULL;
    int failed = 0;

    if (variants == NULL) {
        fprintf(stderr, "cmlab-sim: %s\n", error->message);
        g_error_free(error);
        return 2;
    }
    for (guint i = 0; opt_crypto != NULL && i < variants->len; i++)
        ((CmScenario *)g_ptr_array_index(variants, i))->model_crypto =
            strcmp(opt_crypto, "model") == 0;
    for (guint i = 0; i < variants->len; i++) {
        CmRun *run;
        options.exiting = last && i + 1 == variants->len;
        run = cm_sim_run_scenario(g_ptr_array_index(variants, i), &options, &error);
        if (run == NULL) {
            fprintf(stderr, "cmlab-sim: %s: %s\n", path, error->message);
            g_error_free(error);
            return 2;
        }
        g_ptr_array_add(runs, run);
        for (guint k = 0; k < run->expects->len; k++)
            failed += !((CmExpectResult *)g_ptr_array_index(run->expects, k))->passed;
    }
    if (!opt_quiet && opt_verbose)
        cm_report_summary_full(stdout, runs, isatty(STDOUT_FILENO));
    else if (!opt_quiet)
        cm_report_summary(stdout, runs, isatty(STDOUT_FILENO));
    dir = opt_out
              ? g_strdup(opt_out)
              : g_build_filename("reports", ((CmRun *)g_ptr_array_index(runs, 0))->scenario, NULL);
    json = cm_report_json(runs);
    html = cm_report_html(runs);
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        fprintf(stderr, "cmlab-sim: cannot create %s: %s\n", dir, g_strerror(errno));
        return 2;
    }
    if (!write_report(dir, "report.json", json, &error) ||
        !write_report(dir, "report.html", html, &error)) {
        fprintf(stderr, "cmlab-sim: %s\n", error->message);
        g_error_free(error);
        return 2;
    }
    if (!opt_quiet)
        printf("reports: %s/report.html and %s/report.json\n", dir, dir);
    return failed > 0 ? 1 : 0;
}

static int
calibrate(void)
{
    GError *error = NULL;
    g_autofree char *costs = cm_sim_calibrate(opt_calibrate_clients, &error);

    if (costs == NULL) {
        fprintf(stderr, "cmlab-sim calibrate: %s\n", error->message);
        g_error_free(error);
        return 2;
    }
    fputs(costs, stdout);
    return 0;
}

/* glibc keeps up to 7 freed blocks of each size per thread for reuse
 * (tcache); OpenSSL allocates and frees far more at once for each
 * signature, and the overflow goes through malloc's slow paths.  With 200
 * the real-crypto lifecycle takes 7% less CPU and the simulator's own
 * share on top of crypto falls from 39% to 26% (20,000 clients), for 1%
 * more memory.  glibc reads the setting only from the environment at
 * start, so the simulator runs itself again with it once; a setting the
 * user gave is kept, and sanitizer builds (their own allocator) skip it. */
#define SIM_TCACHE_TUNABLE "glibc.malloc.tcache_count=200"

/* glibc also gives memory back to the system as soon as 128 KiB are free
 * at the top of a heap, and asks for it again in 128 KiB steps: a run
 * whose clients come and go in waves paid for that in system calls and
 * page faults, about 4% of the real-crypto lifecycle's CPU (20,000
 * clients; the share on top of crypto, sampled, 27% -> 23%).  What was
 * used stays mapped until exit: the peak resident size is unchanged at
 * 100,000 and 1,000,000 clients, and 10% higher at 20,000. */
#define SIM_HEAP_TOP_PAD (64 << 20)
#define SIM_HEAP_TRIM_THRESHOLD (256 << 20)

static void
tune_malloc(char **argv)
{
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    const char *tunables = g_getenv("GLIBC_TUNABLES");
    g_autofree char *value = NULL;

    (void)mallopt(M_TOP_PAD, SIM_HEAP_TOP_PAD);
    (void)mallopt(M_TRIM_THRESHOLD, SIM_HEAP_TRIM_THRESHOLD);
    if (tunables != NULL && strstr(tunables, "glibc.malloc.tcache_count") != NULL)
        return; /* set: by the user, or by our first start */
    /* Under valgrind (its preload library is in LD_PRELOAD), /proc/self/exe
     * is valgrind's tool, which refuses to be run directly, and valgrind
     * replaces malloc anyway. */
    if (g_getenv("LD_PRELOAD") != NULL && strstr(g_getenv("LD_PRELOAD"), "vgpreload") != NULL)
        return;
    value = tunables != NULL && *tunables != '\0'
                ? g_strconcat(tunables, ":", SIM_TCACHE_TUNABLE, NULL)
                : g_strdup(SIM_TCACHE_TUNABLE);
    if (!g_setenv("GLIBC_TUNABLES", value, TRUE))
        return;
    execv("/proc/self/exe", argv);
    /* No /proc: run as we are, with the default. */
    if (tunables != NULL)
        g_setenv("GLIBC_TUNABLES", tunables, TRUE);
    else
        g_unsetenv("GLIBC_TUNABLES");
#else
    (void)argv;
#endif
}

int
main(int argc, char **argv)
{
    GOptionEntry entries[] = {
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out,
         "Write report.json and report.html to DIR (default reports/<scenario>)", "DIR"},
        {"scale", 's', 0, G_OPTION_ARG_DOUBLE, &opt_scale,
         "Multiply population and attacker counts by X (quick runs)", "X"},
        {"costs", 'c', 0, G_OPTION_ARG_FILENAME, &opt_costs,
         "Service costs from FILE (made by `cmlab-sim calibrate`)", "FILE"},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "No summary, no progress line", NULL},
        {"no-progress", 0, 0, G_OPTION_ARG_NONE, &opt_no_progress, "No progress line", NULL},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
         "List every metric in the summary (the reports always have them all)", NULL},
        {"crypto", 0, 0, G_OPTION_ARG_STRING, &opt_crypto,
         "real or model: override the scenario's [scenario] crypto (model: the cost-model "
         "stand-in for millions of clients)",
         "MODE"},
        {"clients", 0, 0, G_OPTION_ARG_INT, &opt_calibrate_clients,
         "Clients to time for calibrate (300)", "N"},
        {NULL}};
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("SCENARIO.scn... | calibrate - the cmlab simulator");
    GError *error = NULL;
    int rc = 0;

    tune_malloc(argv);
    (void)cm_sim_count_crypto_allocations();
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx, "Runs each scenario file (every variant of it) in virtual time against the real\n"
             "agent, MP and site libraries, prints a summary and writes the reports.\n"
             "Exit status: 0 every expectation held, 1 some failed, 2 a scenario could not run.\n"
             "The format is in docs/scenarios.md; the report schema in docs/report-schema.md.");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "cmlab-sim: %s\n", error->message);
        return 2;
    }
    if (argc < 2) {
        fprintf(stderr, "cmlab-sim: name a scenario file (see --help)\n");
        return 2;
    }
    if (opt_scale <= 0 || opt_scale > 100) {
        fprintf(stderr, "cmlab-sim: --scale must be in (0, 100]\n");
        return 2;
    }
    if (opt_crypto != NULL && strcmp(opt_crypto, "real") != 0 && strcmp(opt_crypto, "model") != 0) {
        fprintf(stderr, "cmlab-sim: --crypto must be real or model, not \"%s\"\n", opt_crypto);
        return 2;
    }
    if (strcmp(argv[1], "calibrate") == 0)
        return calibrate();
    for (int i = 1; i < argc; i++) {
        int file_rc = run_file(argv[i], i + 1 == argc); /* not inside MAX(): it evaluates twice */
        rc = MAX(rc, file_rc);
    }
    return rc;
}
