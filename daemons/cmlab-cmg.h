/* cmlab-cmg.h - what the two halves of cmlab-cmg share: the gateway
 * (cmlab-cmg-gw.c) and the connection point (cmlab-cmg-cp.c), and the
 * reverse channel between them (docs/lab.md, "CMG").
 *
 * The connection point opens every connection itself, outbound to the
 * gateway's connection point listener (the product's TCP-TLS ports
 * 10140-10155), with mutual TLS: hello and check (the library's CmCmgcp),
 * then several outstanding long polls, POST /cmg/cp/poll.  The gateway
 * answers a poll with the client requests it decided to forward to that
 * connection point; the connection point sends each to the MP the mapping
 * names and posts the MPs' answers with its next poll. */
#ifndef CM_CMGD_H
#define CM_CMGD_H

#include "daemon.h"

#include "cmcmg.h"

#define CM_CMGD_API_PREFIX "/cmg/cp/"
#define CM_CMGD_HELLO "/cmg/cp/hello"
#define CM_CMGD_CHECK "/cmg/cp/check"
#define CM_CMGD_POLL "/cmg/cp/poll"

/* Which connection point a poll or a check comes from. */
#define CM_CMGD_HDR_CONNECTION "CMG-Connection-Id"

/* The reverse channel in batches.  A poll's answer carries {"requests":
 * [...]}, up to CM_CMGD_BATCH_MAX client requests; the connection point
 * sends each to its MP and posts all their answers with its next poll,
 * {"answers": [{"rid", "status", "reason", "retry_ms", "body" (base64)}]}.
 * Under load every poll is out and requests queue at the gateway, so one
 * exchange on the channel carries many; when idle a request goes at once,
 * alone. */
#define CM_CMGD_BATCH_MAX 16
/* An MP answer the connection point relays; a larger one fails as an
 * unreachable MP does (503, retry). */
#define CM_CMGD_ANSWER_MAX (1024 * 1024)
/* A parked poll is answered idle after this, well within every timeout
 * on the way (the connection point's 60 s request timeout, the idle
 * timeout of the listener). */
#define CM_CMGD_POLL_HOLD_US (20 * CM_USEC_PER_SEC)
/* A client request no connection point took within this is answered
 * 503; one taken but not answered within CM_CMGD_ANSWER_US, 504-like 503. */
#define CM_CMGD_QUEUE_US (30 * CM_USEC_PER_SEC)
#define CM_CMGD_ANSWER_US (60 * CM_USEC_PER_SEC)
/* Bodies on the reverse channel: a batch of client bodies (256 KiB at
 * most each, the gateway checked) or of MP answers, in base64 with their
 * envelopes. */
#define CM_CMGD_CHANNEL_BODY_MAX (CM_CMGD_BATCH_MAX * (CM_CMGD_ANSWER_MAX / 3 * 4 + 8192))

int cm_cmgd_gateway_main(const char *dir, gboolean verbose);
int cm_cmgd_cp_main(const char *dir, gboolean verbose);

/* The HTTPS address in a daemon's .addr file ("127.0.0.1:PORT"), or NULL. */
char *cm_cmgd_read_addr(const char *path, const char *key);

#endif
