/* scope.c - which policies an internet-facing management point serves
 * (REQ NET-08): user policies only to users of a forest it trusts,
 * computer policies to everyone it serves.
 *
 * The MP library marks internet MPs (CmMpConfig.internet) and the site
 * knows the forests and their trusts (cm_site_kerberos_verifiable); this
 * is the rule between them, so that whichever role answers user policy
 * (the MP, or the site behind it) applies the same one. */
#include "internal.h"

CmCmgPolicyScope
cm_cmg_policy_scope(gboolean mp_internet, const char *user_domain, CmCmgForestTrusted trusted,
                    void *ctx)
{
    if (!mp_internet)
        return CM_CMG_POLICY_USER_AND_COMPUTER;
    /* Without a trust the MP cannot authenticate the user against the
     * forest: it serves the computer only. */
    if (user_domain == NULL || *user_domain == '\0' || trusted == NULL ||
        !trusted(ctx, user_domain))
        return CM_CMG_POLICY_COMPUTER_ONLY;
    return CM_CMG_POLICY_USER_AND_COMPUTER;
}

gboolean
cm_cmg_user_policy_check(gboolean mp_internet, const CmPeer *user, CmCmgForestTrusted trusted,
                         void *ctx, CmResponse *resp)
{
    const char *domain = user != NULL && user->kind == CM_AUTH_KERBEROS ? user->domain : NULL;

    if (cm_cmg_policy_scope(mp_internet, domain, trusted, ctx) == CM_CMG_POLICY_USER_AND_COMPUTER)
        return TRUE;
    cm_response_refuse(resp, CM_REASON_UNTRUSTED,
                       "this internet-facing management point does not trust the forest of "
                       "%s%s%s; it serves computer policies only",
                       domain && *domain ? "domain " : "a user without a domain",
                       domain ? domain : "", "");
    return FALSE;
}
