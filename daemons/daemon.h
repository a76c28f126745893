/* daemon.h - what the daemons and the admin client share: structured
 * logging, files written whole and with the right mode, PEM certificates
 * and keys on disk, the "where do I listen" file, and the forwarding
 * headers an MP adds when it hands a client's request to the site.
 *
 * The daemons live in daemons/ rather than in their role folders so that
 * every file under a role folder stays free of I/O (tests/check-no-io.sh
 * checks folders). */
#ifndef CM_DAEMON_H
#define CM_DAEMON_H

#include "cmnet.h"

G_BEGIN_DECLS

#define CM_DAEMON_ERROR (cm_daemon_error_quark())
GQuark cm_daemon_error_quark(void);

/* Logs go to stderr as one logfmt line each ("ts=... prog=cmlab-mp
 * level=info msg=\"...\""), debug only with verbose.  Never log a key. */
void cm_daemon_log_init(const char *prog, gboolean verbose);

/* Writes data to path whole (temporary file, fsync, rename), with mode
 * (0600 for private keys, 0644 otherwise). */
gboolean cm_daemon_write_file(const char *path, const void *data, size_t len, int mode,
                              GError **error);
/* Reads a whole file of at most max bytes (new, NUL-terminated). */
char *cm_daemon_read_file(const char *path, size_t max, size_t *len_out, GError **error);

/* PEM files.  Private keys are written 0600 and refused on reading when
 * group or others may read them. */
gboolean cm_daemon_save_cert(const char *path, const CmCert *cert, GError **error);
gboolean cm_daemon_save_key(const char *path, const CmKey *key, GError **error);
CmCert *cm_daemon_load_cert(const char *path, GError **error);
CmKey *cm_daemon_load_key(const char *path, GError **error);
/* Every certificate of a PEM bundle (new array of CmCert). */
GPtrArray *cm_daemon_load_certs(const char *path, GError **error);
CmCrl *cm_daemon_load_crl(const char *path, GError **error);

/* Writes dir/<name>.addr, a key file saying where a daemon listens:
 *   [listen]
 *   http = 127.0.0.1:PORT
 *   https = 127.0.0.1:PORT
 *   pid = PID
 * so that scripts and tests that started it with ephemeral ports find it. */
gboolean cm_daemon_write_addr(const char *dir, const char *name, const char *address,
                              guint16 http_port, guint16 https_port, GError **error);

/* The headers an MP adds to a client request it forwards to the site
 * (docs/protocol.md, "MP to site"): how the client reached the MP and what
 * the transport authenticated.  The site believes them only from a
 * connection authenticated with an MP's certificate. */
#define CM_HDR_FWD_TRANSPORT "CCM-Forwarded-Transport" /* http, https, ehttp */
#define CM_HDR_FWD_AUTH "CCM-Forwarded-Auth"           /* cm_auth_name */
#define CM_HDR_FWD_CERT "CCM-Forwarded-Cert"           /* base64 DER client certificate */
#define CM_HDR_FWD_PRINCIPAL "CCM-Forwarded-Principal"
#define CM_HDR_FWD_DOMAIN "CCM-Forwarded-Domain"

/* The headers for req (new strv, NULL-terminated). */
char **cm_daemon_forward_headers(const CmRequest *req);
/* Rebuilds what the MP saw from the forwarded headers into req (its
 * transport and peer); *cert_out holds the client certificate the peer
 * borrows.  FALSE with a message for a malformed header. */
gboolean cm_daemon_forward_parse(CmNetCall *call, CmRequest *req, CmCert **cert_out,
                                 GError **error);

/* The site API paths beside the protocol endpoints. */
#define CM_SITE_API_PREFIX "/site/"
#define CM_SITE_API_MPCONFIG "/site/mpconfig"
#define CM_ADMIN_API_PREFIX "/admin/"

/* A response with a JSON body from a CmResponse-like refusal or object. */
void cm_daemon_reply_json(CmResponse *resp, json_t *obj /* stolen */);

/* A background thread that runs fn(data) every interval_us until stopped
 * (an MP's configuration refresh, a gateway's expiry and reloads). */
typedef struct CmDaemonTicker CmDaemonTicker;
CmDaemonTicker *cm_daemon_ticker_start(const char *name, gint64 interval_us, void (*fn)(void *data),
                                       void *data);
/* Wakes it, waits for a run in progress to end, frees it; NULL is fine. */
void cm_daemon_ticker_stop(CmDaemonTicker *t);

G_END_DECLS

#endif
