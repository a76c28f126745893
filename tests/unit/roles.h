/* roles.h - an in-memory site with its management points for role-pair
 * tests: requests go client -> MP -> site and back as function calls, the
 * way the simulator carries them, with no socket anywhere. */
#ifndef CM_TEST_ROLES_H
#define CM_TEST_ROLES_H

#include "testutil.h"
#include "cmsite.h"
#include "cmmp.h"
#include "cmagent.h"

typedef struct {
    CmSite *site;
    CmMp *mps[4];
    CmMpInfo mp_info[4];
    CmCert *mp_certs[4];
    guint n_mps;
    CmTime now;
    guint8 master_key[32];
} TestLab;

/* A site PS1 in forest corp.example with settings (NULL: defaults) and
 * n_mps management points. */
TestLab *test_lab_new(const CmSiteSettings *settings, guint n_mps);
void test_lab_free(TestLab *lab);
/* Re-reads site information into every MP after a settings change. */
void test_lab_refresh_mps(TestLab *lab);
/* Carries req through MP i (and the site when the MP forwards). */
void test_lab_deliver(TestLab *lab, guint mp, const CmRequest *req, CmResponse *resp);

/* A scripted client: its own key and self-signed certificate, built with
 * libcmproto directly, for tests of the site and MP alone. */
typedef struct {
    char smsid[CM_ID_SMSID_LEN + 1];
    char hwid[CM_ID_HWID_LEN + 1];
    CmKey *key;
    CmCert *cert;
    CmTransport transport;
    CmPeer peer;
    CmHashAlg hash;
    gboolean sign;
    char domain[64];
} TestClient;

TestClient *test_client_new(guint64 seed, const char *domain);
void test_client_free(TestClient *c);
/* A new key and certificate (same SMSID and hardware ID). */
void test_client_rekey(TestClient *c, CmTime now);
/* Sends a JSON body (borrowed) to endpoint ep through MP 0, signed per c. */
void test_client_send(TestLab *lab, TestClient *c, CmEndpoint ep, json_t *body,
                      CmResponse *resp);
/* Registers: builds the register body for c and sends it. */
void test_client_register(TestLab *lab, TestClient *c, CmResponse *resp);
/* The JSON of a 200 response (new reference), failing the test otherwise. */
json_t *test_response_json(const CmResponse *resp);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestLab, test_lab_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestClient, test_client_free)

#endif
