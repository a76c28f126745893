/* net.c - what every part of libcmnet shares: the error domain, the
 * process-wide set-up, the wall clock and TLS setting names. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

G_DEFINE_QUARK(cm - net - error - quark, cm_net_error)

/* libevent's own warnings (accept failures, bad sockets) go to the
 * structured log rather than straight to stderr. */
static void
libevent_log(int severity, const char *msg)
{
    GLogLevelFlags level = G_LOG_LEVEL_DEBUG;

    if (severity == EVENT_LOG_MSG)
        level = G_LOG_LEVEL_INFO;
    else if (severity >= EVENT_LOG_WARN)
        level = G_LOG_LEVEL_MESSAGE;
    g_log_structured(G_LOG_DOMAIN, level, "MESSAGE", "libevent: %s", msg);
}

void
cm_net_init(void)
{
    static gsize done = 0;

    if (g_once_init_enter(&done)) {
        /* Locking first: every event_base made after this one can be
         * woken from other threads (replies, stop). */
        if (evthread_use_pthreads() != 0)
            g_error("libevent has no pthread support: install libevent_pthreads");
        event_set_log_callback(libevent_log);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            g_error("libcurl failed to initialise");
        /* A write to a socket the peer closed raises SIGPIPE, whose default
         * action ends the process: a daemon must get EPIPE instead. */
        signal(SIGPIPE, SIG_IGN);
        g_once_init_leave(&done, 1);
    }
}

struct event_base *
cm_net_event_base_try_new(void)
{
    struct event_config *cfg;
    struct event_base *base;

    cm_net_init();
    cfg = event_config_new();
    if (cfg == NULL)
        g_error("out of memory");
    /* epoll changes batched per loop turn: evhttp turns reading off and
     * writing on for every answer, and back, which otherwise costs two
     * epoll_ctl calls per request (a third of the HTTPS request rate).  The
     * changelist's one caveat, descriptors shared by dup(), does not arise
     * here. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base; /* NULL: out of descriptors (epoll, its wake-up pipe) */
}

struct event_base *
cm_net_event_base_new(void)
{
    struct event_base *base = cm_net_event_base_try_new();

    if (base == NULL)
        g_error("cannot make an event loop: %s", g_strerror(errno));
    return base;
}

gboolean
cm_net_raise_fd_limit(guint64 want, guint64 *got, GError **error)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED, "cannot read the file limit: %s",
                    g_strerror(errno));
        return FALSE;
    }
    if (rl.rlim_max < want) {
        /* A privileged process (root, CAP_SYS_RESOURCE) may raise the hard
         * limit too, up to fs.nr_open; otherwise this fails and the soft
         * limit goes as far as the hard one. */
        struct rlimit more = {.rlim_cur = rl.rlim_cur, .rlim_max = (rlim_t)want};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            rl = more;
    }
    if (rl.rlim_cur < want) {
        rl.rlim_cur = MIN((rlim_t)want, rl.rlim_max);
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED,
                        "cannot raise the file limit to %" G_GUINT64_FORMAT ": %s", want,
                        g_strerror(errno));
            return FALSE;
        }
    }
    if (got != NULL)
        *got = rl.rlim_cur;
    if (rl.rlim_cur < want) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED,
                    "at most %" G_GUINT64_FORMAT
                    " open files (the hard limit), not %" G_GUINT64_FORMAT
                    ": raise it with ulimit -Hn or LimitNOFILE",
                    (guint64)rl.rlim_cur, want);
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------ clock */

CmTime
cm_net_wall_now(void)
{
    return g_get_real_time();
}

static CmTime
wall_now(void *ctx)
{
    (void)ctx;
    return g_get_real_time();
}

const CmClock *
cm_net_wall_clock(void)
{
    static const CmClock clock = {wall_now, NULL};
    return &clock;
}

/* -------------------------------------------------------------- TLS */

const char *
cm_net_tls_version_name(CmNetTlsVersion v)
{
    return v == CM_NET_TLS_1_3 ? "1.3" : "1.2";
}

gboolean
cm_net_tls_version_parse(const char *s, CmNetTlsVersion *out, GError **error)
{
    if (g_strcmp0(s, "1.2") == 0) {
        *out = CM_NET_TLS_1_2;
        return TRUE;
    }
    if (g_strcmp0(s, "1.3") == 0) {
        *out = CM_NET_TLS_1_3;
        return TRUE;
    }
    g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                "unknown TLS version \"%s\": use 1.2 or 1.3 (older versions are not offered)",
                s ? s : "");
    return FALSE;
}

int
cm_net_tls_version_ossl(CmNetTlsVersion v)
{
    return v == CM_NET_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

static const char *const client_cert_modes[] = {"none", "optional", "required"};

const char *
cm_net_client_cert_mode_name(CmNetClientCertMode m)
{
    return (size_t)m < G_N_ELEMENTS(client_cert_modes) ? client_cert_modes[m] : "none";
}

gboolean
cm_net_client_cert_mode_parse(const char *s, CmNetClientCertMode *out, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(client_cert_modes); i++) {
        if (g_strcmp0(s, client_cert_modes[i]) == 0) {
            *out = (CmNetClientCertMode)i;
            return TRUE;
        }
    }
    g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                "unknown client certificate mode \"%s\": use none, optional or required",
                s ? s : "");
    return FALSE;
}

char *
cm_net_openssl_errors(void)
{
    GString *s = g_string_new(NULL);
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        g_string_append_printf(s, "%s%s", s->len ? "; " : "", buf);
    }
    if (s->len == 0)
        g_string_append(s, "no detail from OpenSSL");
    return g_string_free(s, FALSE);
}

void
cm_net_set_tls_error(GError **error, const char *what)
{
    g_autofree char *detail = cm_net_openssl_errors();
    g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_TLS, "%s: %s", what, detail);
}
