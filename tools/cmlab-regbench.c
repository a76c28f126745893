/* cmlab-regbench - the reference for the lab's registration rate: what the
 * site does for a registration, done alone, without HTTP.
 *
 *   cmlab-regbench [--count N] [--dir DIR] [--approval MODE]
 *
 * Creates a fresh durable site database (SQLite in WAL mode with
 * synchronous=FULL, as `cmlab-site init` does) and an MP in memory, runs N
 * agents with the same installation properties cmlab-agent gives them up
 * to their signed registration request (location, MP certificate and site
 * information come from the in-memory MP; nothing is written), keeps those
 * requests, and then times cm_site_handle on them one after the other on
 * one thread: for each, the signature check with the client's key, the
 * certificate and identity checks, the record written and committed in its
 * own durable transaction, and the signed answer.  The agents' key
 * generation and signing happen before the clock starts: in the lab they
 * are the clients' work, not the site's.
 *
 * scripts/bench-lab sets the lab's registrations/s beside this figure
 * (docs/benchmarks.md, "Lab"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "cmproto.h"
#include "cmagent.h"
#include "cmmp.h"
#include "cmsite.h"

static int opt_count = 5000;
static char *opt_dir;
static char *opt_approval = "all";
static gboolean opt_group;

static GOptionEntry entries[] = {
    {"count", 'n', 0, G_OPTION_ARG_INT, &opt_count, "Registrations to time (5000)", "N"},
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir,
     "Where the site database goes (default: a temporary folder, removed after)", "DIR"},
    {"group", 0, 0, G_OPTION_ARG_NONE, &opt_group,
     "Commit without a flush each (synchronous=NORMAL) and flush the WAL once at the end, "
     "inside the timing: the same work without the per-commit flush",
     NULL},
    {"approval", 0, 0, G_OPTION_ARG_STRING, &opt_approval,
     "Client approval: manual, trusted-domains, all (all, as scripts/lab)", "MODE"},
    {NULL}};

typedef struct {
    CmSite *site;
    CmMp *mp;
    char mp_name[CM_NAME_MAX + 1];
    GPtrArray *captured; /* Captured* */
} Prep;

/* A signed registration request kept for the timed part. */
typedef struct {
    CmRequest req;
    GBytes *body;
} Captured;

static void
captured_free(gpointer data)
{
    Captured *c = data;
    g_bytes_unref(c->body);
    g_free(c);
}

static void
die(const char *what, GError *error)
{
    fprintf(stderr, "cmlab-regbench: %s: %s\n", what, error ? error->message : "failed");
    exit(2);
}

/* The anonymous requests before a registration go to the MP; the
 * registration itself is kept and fails in transport for the agent (which
 * then only schedules a retry, never run). */
static gboolean
prep_deliver(Prep *p, const CmAgentSend *send, CmRequest *req, CmResponse *resp, CmTime now)
{
    if (g_ascii_strcasecmp(send->mp, p->mp_name) != 0)
        return FALSE;
    if (req->ep == CM_EP_REGISTER) {
        Captured *c = g_new0(Captured, 1);
        c->body = g_bytes_new(req->body, req->body_len);
        c->req = *req;
        c->req.body = g_bytes_get_data(c->body, &c->req.body_len);
        g_ptr_array_add(p->captured, c);
        return FALSE;
    }
    if (cm_mp_handle(p->mp, req, now, resp) == CM_MP_FORWARD) {
        fprintf(stderr, "cmlab-regbench: the agent sent %s to the site before registering\n",
                cm_ep_name(req->ep));
        exit(2);
    }
    return TRUE;
}

/* Runs one agent from its start until it wants no more sends now. */
static void
prep_agent(Prep *p, CmAgent *agent, CmTime now)
{
    CmAgentActions act;

    cm_agent_actions_init(&act);
    cm_agent_start(agent, now, &act);
    for (guint steps = 0; act.sends->len > 0 && steps < 64; steps++) {
        CmAgentSend *send = g_ptr_array_index(act.sends, 0);
        CmResponse resp = {0};
        CmRequest req;

        cm_agent_send_request(send, &req);
        if (prep_deliver(p, send, &req, &resp, now))
            cm_agent_on_response(agent, send->id, &resp, now, &act);
        else
            cm_agent_on_response(agent, send->id, NULL, now, &act);
        cm_response_clear(&resp);
        g_ptr_array_remove_index(act.sends, 0);
    }
    cm_agent_actions_clear(&act);
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("- the site's registration work alone");
    GError *error = NULL;
    g_autofree char *tmp = NULL, *db = NULL, *trk = NULL;
    guint8 master[32];
    CmSiteSettings s;
    CmRng rng;
    CmMpInfo info;
    CmCert *mp_cert = NULL, *tls = NULL;
    CmKey *mp_key = NULL;
    json_t *siteinfo, *list;
    Prep p = {0};
    CmTime now = g_get_real_time();
    gint64 t0, t1;
    int ok = 0;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Times cm_site_handle on N pre-built signed registration "
                                      "requests against a fresh durable site database, on one "
                                      "thread, without HTTP.");
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 1 || opt_count < 1 ||
        opt_count > 1000000) {
        fprintf(stderr, "cmlab-regbench: %s (see --help)\n",
                error ? error->message : "--count 1 to 1000000");
        return 2;
    }
    cm_site_settings_default(&s);
    s.communication = CM_COMM_EHTTP;
    if (!cm_approval_mode_parse(opt_approval, &s.approval, &error))
        die("--approval", error);
    if (opt_dir == NULL) {
        tmp = g_dir_make_tmp("cmlab-regbench.XXXXXX", &error);
        if (tmp == NULL)
            die("temporary folder", error);
    } else if (g_mkdir_with_parents(opt_dir, 0700) != 0) {
        die(opt_dir, NULL);
    }
    db = g_build_filename(tmp ? tmp : opt_dir, "site.db", NULL);
    if (g_file_test(db, G_FILE_TEST_EXISTS)) {
        fprintf(stderr, "cmlab-regbench: %s exists: the reference needs a fresh database\n", db);
        return 2;
    }
    cm_rng_init_os(&rng);
    cm_rng_bytes(&rng, master, sizeof master);
    {
        CmSiteConfig config = {.site_code = "PS1",
                               .db_path = db,
                               .db_mode = CM_STORE_DURABLE,
                               .top_level = TRUE,
                               .forest = "corp.example",
                               .master_key = master,
                               .settings = &s};
        p.site = cm_site_open(&config, now, &error);
    }
    if (p.site == NULL ||
        !cm_site_add_mp(p.site, "mp1.corp.example", FALSE, now, &info, &mp_cert, &tls, &mp_key,
                        &error))
        die("site", error);
    g_strlcpy(p.mp_name, info.name, sizeof p.mp_name);
    siteinfo = cm_site_siteinfo_json(p.site);
    list = cm_site_mplist_json(p.site);
    p.mp = cm_mp_new(&(CmMpConfig){.name = info.name, .role_id = info.role_id,
                                    .mp_cert = mp_cert, .siteinfo = siteinfo, .mplist = list},
                     &error);
    if (p.mp == NULL)
        die("mp", error);
    json_decref(siteinfo);
    json_decref(list);
    trk = cm_site_export_trk(p.site);
    p.captured = g_ptr_array_new_with_free_func(captured_free);

    /* The clients' side, untimed: what cmlab-agent does for each agent. */
    for (int i = 0; i < opt_count; i++) {
        CmAgentConfig c;
        guint8 secret[32];
        g_autofree char *name = g_strdup_printf("LAB%05d", i);
        const char *dns[] = {p.mp_name, NULL};
        CmAgent *agent;

        cm_rng_bytes(&rng, secret, sizeof secret);
        cm_agent_config_default(&c);
        c.smssitecode = "PS1";
        c.smspublicrootkey = trk;
        c.mp = p.mp_name;
        c.dns_mps = dns;
        c.name = name;
        c.tpm_version = 2;
        c.device_secret = secret;
        agent = cm_agent_new(&c, &rng, now, &error);
        if (agent == NULL)
            die("agent", error);
        prep_agent(&p, agent, now);
        cm_agent_free(agent);
    }
    if (p.captured->len != (guint)opt_count) {
        fprintf(stderr, "cmlab-regbench: %u of %d agents sent a registration\n", p.captured->len,
                opt_count);
        return 2;
    }

    /* The site's side, timed: one registration after the other. */
    if (opt_group && !cm_store_exec(cm_site_store(p.site), "PRAGMA synchronous=NORMAL", &error))
        die("synchronous", error);
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < p.captured->len; i++) {
        Captured *c = g_ptr_array_index(p.captured, i);
        CmResponse resp = {0};
        cm_site_handle(p.site, &c->req, now, &resp);
        ok += resp.status == 200;
        cm_response_clear(&resp);
    }
    if (opt_group) {
        g_autofree char *wal = g_strconcat(db, "-wal", NULL);
        int fd = open(wal, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fdatasync(fd) != 0)
            die(wal, NULL);
        close(fd);
    }
    t1 = g_get_monotonic_time();
    if (ok != opt_count) {
        fprintf(stderr, "cmlab-regbench: only %d of %d registrations were accepted\n", ok,
                opt_count);
        return 1;
    }
    printf("cmlab-regbench: %d registrations in %.3f s: %.0f registrations/s "
           "(cm_site_handle alone, %s)\n",
           opt_count, (double)(t1 - t0) / 1e6, opt_count * 1e6 / (double)(t1 - t0),
           opt_group ? "one WAL flush for all" : "one durable transaction each");
    g_ptr_array_unref(p.captured);
    cm_mp_free(p.mp);
    cm_site_free(p.site);
    cm_cert_unref(mp_cert);
    cm_cert_unref(tls);
    cm_key_unref(mp_key);
    if (tmp != NULL) {
        const char *suffix[] = {"", "-wal", "-shm", "-journal"};
        for (guint i = 0; i < G_N_ELEMENTS(suffix); i++) {
            g_autofree char *f = g_strconcat(db, suffix[i], NULL);
            unlink(f);
        }
        rmdir(tmp);
    }
    return 0;
}
