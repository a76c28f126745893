/* internal.h - shared inside libcmsite only. */
#ifndef CMSITE_INTERNAL_H
#define CMSITE_INTERNAL_H

#include <sqlite3.h>

#include "cmsite.h"

typedef struct {
    gint64 id;
    char *name;
    GArray *rules; /* CmRule with owned strings */
} SiteCollection;

struct CmSite {
    char code[4];
    char *forest;
    gboolean top_level;
    CmStore *store;
    CmSiteSettings settings;
    guint8 master_key[32];

    CmKey *trk;           /* site exchange key; the TRK when top level */
    CmKey *signing_key;
    CmCert *signing_cert;
    CmKey *enc_key;
    CmCert *enc_cert;
    CmKey *issuing_key;   /* Enhanced HTTP issuing root */
    CmCert *issuing_cert;
    CmTrust *pki_trust;

    GHashTable *client_certs; /* smsid -> CmCert (parsed once) */
    GHashTable *policy_answers; /* policy_id -> SitePolicyAnswer (policy.c) */
    GPtrArray *collections;   /* SiteCollection*, loaded at open */
    CmSiteCounters counters;
    guint64 next_serial;
    GPtrArray *push_accounts;   /* PushAccount* (admin.c) */
    gboolean push_require_kerberos;
};

/* db.c */
gboolean cm_site_db_migrate(CmStore *store, GError **error);
/* Converts a CM_PROTO_ERROR_STORE (or any) error into CM_SITE_ERROR. */
void cm_site_store_error(GError **error, GError *cause);
gboolean cm_site_meta_get(CmSite *site, const char *key, char **out, GError **error);
gboolean cm_site_meta_set(CmSite *site, const char *key, const char *value, GError **error);
guint64 cm_site_serial_next(CmSite *site, GError **error);

/* site.c: inside the caller's transaction, an MP whose certificate is
 * made (signed with the TRK): its role ID, its Enhanced HTTP certificate
 * from the issuing root (*tls_out, may be NULL), its row and the audit
 * entry (detail).  cm_site_add_mp and a child site's MP share it. */
gboolean cm_site_mp_store(CmSite *site, const char *host, gboolean internet, const CmCert *mp_cert,
                          const CmKey *mp_key, const char *detail, CmTime now, CmMpInfo *info_out,
                          CmCert **tls_out, GError **error);

/* admin.c */
gboolean cm_site_audit(CmSite *site, const char *admin, const char *action, const char *target,
                       const char *detail, CmTime now, GError **error);

/* Blocks a live record inside the caller's transaction: its state, its
 * certificate and hardware ID (so the same device cannot return under a
 * new SMSID with either, REQ REG-03/04), and its collection memberships. */
gboolean cm_site_block_in_tx(CmSite *site, const CmClientInfo *info, CmTime now, GError **error);

/* admin.c: the push accounts from the database. */
gboolean cm_site_push_load(CmSite *site, GError **error);

/* register.c */
void cm_site_handle_register(CmSite *site, const CmRequest *req, CmTime now, CmResponse *resp);
void cm_site_registration_reply(CmSite *site, const char *smsid, CmTime now, CmResponse *resp);
CmCert *cm_site_client_cert(CmSite *site, const char *smsid); /* borrowed, cached */

/* collect.c */
gboolean cm_site_collections_load(CmSite *site, GError **error);
void cm_site_collections_free(CmSite *site);
/* Re-evaluates every collection for smsid, whose data rows name it by
 * key (CmClientInfo.key), inside the caller's transaction; state is the
 * client's state as its live record holds it now, which every caller has
 * just read or written. */
gboolean cm_site_collections_evaluate(CmSite *site, const char *smsid, gint64 key,
                                      CmClientState state, GError **error);
/* The same after an approved client's data changed: the collections with
 * rules (All Systems goes by approval alone and already holds it). */
gboolean cm_site_collections_evaluate_rules(CmSite *site, const char *smsid, gint64 key,
                                            GError **error);

/* policy.c */
void cm_site_policy_answer_free(gpointer answer);
/* key: the asking (authenticated) client's key, CmClientInfo.key */
void cm_site_handle_assignments(CmSite *site, gint64 key, CmResponse *resp);
void cm_site_handle_policy_body(CmSite *site, const json_t *body, gint64 key, CmResponse *resp);

/* admin.c: a registered (not obsolete) client's state, the one column
 * every signed message needs, with its record's id and its key
 * (CmClientInfo.key) when id or key is not NULL; FALSE when there is no
 * such client. */
gboolean cm_site_client_state(CmSite *site, const char *smsid, CmClientState *state, gint64 *id,
                              gint64 *key);


/* A statement or a GError-and-return shortcut for the store. */
#define SITE_STMT(site, sql, error) cm_store_stmt((site)->store, (sql), (error))

#endif
