/* hier-internal.h - shared inside libcmsite between the administration,
 * provider and hierarchy modules (rbac.c, provider.c, hierarchy.c). */
#ifndef CMSITE_HIER_INTERNAL_H
#define CMSITE_HIER_INTERNAL_H

#include "internal.h"

/* rbac.c: an audit entry in its own transaction when the caller has none
 * (a refusal is audited before any transaction starts). */
gboolean cm_site_audit_now(CmSite *site, const char *admin, const char *action,
                           const char *target, const char *detail, CmTime now, GError **error);
/* rbac.c: an administrator as the JSON that replication carries (new
 * reference), NULL when there is no such administrator. */
json_t *cm_site_rbac_admin_json(CmSite *site, const char *name);
/* rbac.c: applies a replicated administrator (NULL value: removed) inside
 * the caller's transaction. */
gboolean cm_site_rbac_apply(CmSite *site, const char *name, const json_t *value, GError **error);

/* hierarchy.c: queues global data for every replication link but the one
 * it came from (from_peer, NULL when it originates here), inside the
 * caller's transaction, and keeps it in repl_data. */
gboolean cm_site_repl_queue_global(CmSite *site, const char *kind, const char *key,
                                   const json_t *value, const char *origin,
                                   const char *from_peer, CmTime now, GError **error);

/* provider.c: applies the replicated hierarchy-wide provider level inside
 * the caller's transaction. */
gboolean cm_site_provider_apply(CmSite *site, const json_t *value, GError **error);

#endif
