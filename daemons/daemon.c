/* daemon.c - logging, files and forwarding headers for the daemons. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEM_MAX (256 * 1024)

G_DEFINE_QUARK(cm - daemon - error - quark, cm_daemon_error)

/* ------------------------------------------------------------ logging */

static char *log_prog;
static gboolean log_verbose;

static void
logfmt_value(GString *out, const char *v)
{
    g_string_append_c(out, '"');
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            g_string_append_c(out, '\\');
        if (*v == '\n')
            g_string_append(out, "\\n");
        else
            g_string_append_c(out, *v);
    }
    g_string_append_c(out, '"');
}

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *ts = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");
    GString *line = g_string_new(NULL);
    const char *lvl = "info";

    (void)user_data;
    if ((level & G_LOG_LEVEL_DEBUG) && !log_verbose) {
        g_string_free(line, TRUE);
        return G_LOG_WRITER_HANDLED;
    }
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        lvl = "error";
    else if (level & G_LOG_LEVEL_WARNING)
        lvl = "warning";
    else if (level & G_LOG_LEVEL_DEBUG)
        lvl = "debug";
    g_string_append_printf(line, "ts=%s.%03dZ prog=%s level=%s", ts,
                           g_date_time_get_microsecond(now) / 1000, log_prog ? log_prog : "cmlab",
                           lvl);
    for (gsize i = 0; i < n_fields; i++) {
        if (strcmp(fields[i].key, "MESSAGE") == 0) {
            g_string_append(line, " msg=");
            logfmt_value(line, fields[i].value);
        }
    }
    g_string_append_c(line, '\n');
    fputs(line->str, stderr);
    g_string_free(line, TRUE);
    return G_LOG_WRITER_HANDLED;
}

void
cm_daemon_log_init(const char *prog, gboolean verbose)
{
    g_free(log_prog);
    log_prog = g_strdup(prog);
    log_verbose = verbose;
    g_log_set_writer_func(log_writer, NULL, NULL);
}

/* -------------------------------------------------------------- files */

gboolean
cm_daemon_write_file(const char *path, const void *data, size_t len, int mode, GError **error)
{
    g_autofree char *tmp = g_strdup_printf("%s.tmp.%d", path, (int)getpid());
    const guint8 *p = data;
    size_t done = 0;
    int fd, saved;

    /* Created with the final mode: a key never exists readable by others,
     * not even for a moment. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        goto fail;
    if (fchmod(fd, mode) != 0)
        goto fail_fd;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_fd;
        done += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto fail_fd;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        fd = -1;
        goto fail;
    }
    return TRUE;
fail_fd:
    saved = errno;
    close(fd);
    errno = saved;
fail:
    saved = errno;
    unlink(tmp);
    g_set_error(error, CM_DAEMON_ERROR, 0, "cannot write %s: %s", path, g_strerror(saved));
    return FALSE;
}

char *
cm_daemon_read_file(const char *path, size_t max, size_t *len_out, GError **error)
{
    char *data = NULL;
    gsize len = 0;
    struct stat st;

    if (stat(path, &st) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "cannot read %s: %s", path, g_strerror(errno));
        return NULL;
    }
    if ((size_t)st.st_size > max) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s is %lld bytes, more than the %zu allowed", path,
                    (long long)st.st_size, max);
        return NULL;
    }
    if (!g_file_get_contents(path, &data, &len, error))
        return NULL;
    if (len_out != NULL)
        *len_out = len;
    return data;
}

gboolean
cm_daemon_save_cert(const char *path, const CmCert *cert, GError **error)
{
    g_autofree char *pem = cm_cert_to_pem(cert);
    return cm_daemon_write_file(path, pem, strlen(pem), 0644, error);
}

gboolean
cm_daemon_save_key(const char *path, const CmKey *key, GError **error)
{
    g_autofree char *pem = cm_key_private_pem(key, error);
    gboolean ok;

    if (pem == NULL)
        return FALSE;
    ok = cm_daemon_write_file(path, pem, strlen(pem), 0600, error);
    /* The PEM is a copy of the private key: wipe it before it is freed. */
    memset(pem, 0, strlen(pem));
    return ok;
}

CmCert *
cm_daemon_load_cert(const char *path, GError **error)
{
    size_t len = 0;
    g_autofree char *pem = cm_daemon_read_file(path, PEM_MAX, &len, error);
    GError *cause = NULL;
    CmCert *cert;

    if (pem == NULL)
        return NULL;
    cert = cm_cert_from_pem(pem, len, &cause);
    if (cert == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: %s", path, cause->message);
        g_error_free(cause);
    }
    return cert;
}

GPtrArray *
cm_daemon_load_certs(const char *path, GError **error)
{
    size_t len = 0;
    g_autofree char *pem = cm_daemon_read_file(path, PEM_MAX, &len, error);
    GError *cause = NULL;
    GPtrArray *certs;

    if (pem == NULL)
        return NULL;
    certs = cm_cert_bundle_from_pem(pem, len, 64, &cause);
    if (certs == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: %s", path, cause->message);
        g_error_free(cause);
    }
    return certs;
}

CmKey *
cm_daemon_load_key(const char *path, GError **error)
{
    struct stat st;
    size_t len = 0;
    char *pem = NULL;
    GError *cause = NULL;
    CmKey *key = NULL;

    if (stat(path, &st) == 0 && (st.st_mode & 0077) != 0) {
        g_set_error(error, CM_DAEMON_ERROR, 0,
                    "%s may be read by others (mode %03o): a private key must be mode 0600 "
                    "(chmod 600 %s)",
                    path, (unsigned)(st.st_mode & 0777), path);
        return NULL;
    }
    pem = cm_daemon_read_file(path, PEM_MAX, &len, error);
    if (pem == NULL)
        return NULL;
    key = cm_key_private_from_pem(pem, len, &cause);
    if (key == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: %s", path, cause->message);
        g_error_free(cause);
    }
    memset(pem, 0, len);
    g_free(pem);
    return key;
}

CmCrl *
cm_daemon_load_crl(const char *path, GError **error)
{
    size_t len = 0;
    g_autofree char *pem = cm_daemon_read_file(path, 16 * 1024 * 1024, &len, error);
    GError *cause = NULL;
    CmCrl *crl;

    if (pem == NULL)
        return NULL;
    crl = cm_crl_from_pem(pem, len, &cause);
    if (crl == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: %s", path, cause->message);
        g_error_free(cause);
    }
    return crl;
}

gboolean
cm_daemon_write_addr(const char *dir, const char *name, const char *address, guint16 http_port,
                     guint16 https_port, GError **error)
{
    g_autofree char *path = g_strdup_printf("%s/%s.addr", dir, name);
    GString *s = g_string_new("[listen]\n");
    gboolean ok;

    if (http_port != 0)
        g_string_append_printf(s, "http = %s:%u\n", address, http_port);
    if (https_port != 0)
        g_string_append_printf(s, "https = %s:%u\n", address, https_port);
    g_string_append_printf(s, "pid = %d\n", (int)getpid());
    ok = cm_daemon_write_file(path, s->str, s->len, 0644, error);
    g_string_free(s, TRUE);
    return ok;
}

/* ------------------------------------------------------- forwarding */

char **
cm_daemon_forward_headers(const CmRequest *req)
{
    GPtrArray *h = g_ptr_array_new();

    g_ptr_array_add(
        h, g_strdup_printf("%s: %s", CM_HDR_FWD_TRANSPORT, cm_transport_name(req->transport)));
    g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_AUTH, cm_auth_name(req->peer.kind)));
    if (req->peer.client_cert != NULL) {
        g_autoptr(GBytes) der = cm_cert_to_der(req->peer.client_cert);
        g_autofree char *b64 = cm_enc_b64(g_bytes_get_data(der, NULL), g_bytes_get_size(der));
        g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_CERT, b64));
    }
    if (req->peer.principal[0] != '\0')
        g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_PRINCIPAL, req->peer.principal));
    if (req->peer.domain[0] != '\0')
        g_ptr_array_add(h, g_strdup_printf("%s: %s", CM_HDR_FWD_DOMAIN, req->peer.domain));
    g_ptr_array_add(h, NULL);
    return (char **)g_ptr_array_free(h, FALSE);
}

static gboolean
auth_parse(const char *s, CmAuthKind *out)
{
    for (int k = CM_AUTH_ANONYMOUS; k <= CM_AUTH_TOKEN; k++) {
        if (strcmp(s, cm_auth_name((CmAuthKind)k)) == 0) {
            *out = (CmAuthKind)k;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean
cm_daemon_forward_parse(CmNetCall *call, CmRequest *req, CmCert **cert_out, GError **error)
{
    const char *transport = cm_net_call_header(call, CM_HDR_FWD_TRANSPORT);
    const char *auth = cm_net_call_header(call, CM_HDR_FWD_AUTH);
    const char *cert = cm_net_call_header(call, CM_HDR_FWD_CERT);
    const char *principal = cm_net_call_header(call, CM_HDR_FWD_PRINCIPAL);
    const char *domain = cm_net_call_header(call, CM_HDR_FWD_DOMAIN);
    GError *cause = NULL;

    *cert_out = NULL;
    memset(&req->peer, 0, sizeof req->peer);
    if (transport == NULL || !cm_transport_parse(transport, &req->transport, &cause)) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: expected http, https or ehttp",
                    CM_HDR_FWD_TRANSPORT);
        g_clear_error(&cause);
        return FALSE;
    }
    if (auth == NULL || !auth_parse(auth, &req->peer.kind)) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "%s: expected an authentication kind",
                    CM_HDR_FWD_AUTH);
        return FALSE;
    }
    if ((principal && strlen(principal) > CM_NAME_MAX) ||
        (domain && strlen(domain) > CM_NAME_MAX)) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "forwarded principal or domain over %d characters",
                    CM_NAME_MAX);
        return FALSE;
    }
    g_strlcpy(req->peer.principal, principal ? principal : "", sizeof req->peer.principal);
    g_strlcpy(req->peer.domain, domain ? domain : "", sizeof req->peer.domain);
    if (cert != NULL) {
        g_autoptr(GBytes) der = cm_enc_b64_decode(cert, strlen(cert), CM_CERT_MAX_DER, &cause);
        if (der == NULL || (*cert_out = cm_cert_from_der(g_bytes_get_data(der, NULL),
                                                         g_bytes_get_size(der), &cause)) == NULL) {
            g_set_error(error, CM_DAEMON_ERROR, 0, "%s: %s", CM_HDR_FWD_CERT,
                        cause ? cause->message : "not base64");
            g_clear_error(&cause);
            return FALSE;
        }
        req->peer.client_cert = *cert_out;
    }
    if (req->peer.kind == CM_AUTH_PKI && req->peer.client_cert == NULL) {
        g_set_error(error, CM_DAEMON_ERROR, 0, "PKI authentication forwarded without %s",
                    CM_HDR_FWD_CERT);
        return FALSE;
    }
    return TRUE;
}

void
cm_daemon_reply_json(CmResponse *resp, json_t *obj)
{
    cm_response_ok(resp, obj);
    json_decref(obj);
}

/* ------------------------------------------------------------- ticker */

struct CmDaemonTicker {
    GThread *thread;
    GMutex lock;
    GCond cond;
    gboolean stopping;
    gint64 interval_us;
    void (*fn)(void *data);
    void *data;
};

static gpointer
ticker_main(gpointer arg)
{
    CmDaemonTicker *t = arg;

    g_mutex_lock(&t->lock);
    for (;;) {
        gint64 until = g_get_monotonic_time() + t->interval_us;
        while (!t->stopping && g_cond_wait_until(&t->cond, &t->lock, until))
            ;
        if (t->stopping)
            break;
        g_mutex_unlock(&t->lock);
        t->fn(t->data);
        g_mutex_lock(&t->lock);
    }
    g_mutex_unlock(&t->lock);
    return NULL;
}

CmDaemonTicker *
cm_daemon_ticker_start(const char *name, gint64 interval_us, void (*fn)(void *data), void *data)
{
    CmDaemonTicker *t = g_new0(CmDaemonTicker, 1);

    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    t->interval_us = interval_us;
    t->fn = fn;
    t->data = data;
    t->thread = g_thread_new(name, ticker_main, t);
    return t;
}

void
cm_daemon_ticker_stop(CmDaemonTicker *t)
{
    if (t == NULL)
        return;
    g_mutex_lock(&t->lock);
    t->stopping = TRUE;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);
    g_thread_join(t->thread);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
    g_free(t);
}
