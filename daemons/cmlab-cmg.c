/* cmlab-cmg - the cloud management gateway and its connection point.
 *
 *   cmlab-cmg gateway          --dir CMGDIR [--verbose]
 *   cmlab-cmg connection-point --dir CPDIR  [--verbose]
 *
 * CMGDIR comes from `cmlab-site add-cmg`, CPDIR from `cmlab-site
 * add-connection-point`.  The gateway is internet-facing (cmlab-cmg-gw.c);
 * the connection point runs inside the intranet and opens every
 * connection itself, outbound to the gateway (cmlab-cmg-cp.c).  Both stop
 * cleanly on SIGTERM or SIGINT.  docs/lab.md, "CMG", tells the rest. */
#include "cmlab-cmg.h"

#include <stdio.h>
#include <string.h>

static char *opt_dir;
static gboolean opt_verbose;

static GOptionEntry entries[] = {
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir,
     "The state folder (cmlab-site add-cmg or add-connection-point)", "DIR"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Debug logging", NULL},
    {NULL}};

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("gateway|connection-point");
    GError *error = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(
        ctx, "Commands:\n"
             "  gateway           the internet-facing gateway (one instance), from add-cmg\n"
             "  connection-point  the intranet side, from add-connection-point: it connects out "
             "to the gateway");
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 2 || opt_dir == NULL) {
        fprintf(stderr, "cmlab-cmg: %s (see --help)\n",
                error ? error->message : "give gateway|connection-point and --dir DIR");
        g_clear_error(&error);
        return 2;
    }
    if (strcmp(argv[1], "gateway") == 0)
        return cm_cmgd_gateway_main(opt_dir, opt_verbose);
    if (strcmp(argv[1], "connection-point") == 0)
        return cm_cmgd_cp_main(opt_dir, opt_verbose);
    fprintf(stderr, "cmlab-cmg: unknown command %s (see --help)\n", argv[1]);
    return 2;
}
