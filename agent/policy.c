/* policy.c - the client's side of policy (REQ POL-03, POL-06, TRUST-08):
 * a policy is acted on only when the site server signing certificate the
 * client holds verifies its exact bytes, the bytes hash to what the
 * assignment announced, and the policy names this site and the version
 * that was assigned.
 *
 * What a verified policy deploys is installed by software.c, held to the
 * maintenance windows (POL-04).  Not here yet (the distribution point
 * work): downloading the content and checking it against the policy's
 * content hash (DP-04); the verified policy object is kept
 * (cm_agent_policy) for that code to read "content". */
#include "internal.h"

#include <string.h>

void
agent_fetch_free(AgentFetch *f)
{
    if (f == NULL)
        return;
    g_free(f->policy_id);
    g_free(f);
}

void
agent_policy_free(AgentPolicy *p)
{
    if (p == NULL)
        return;
    json_decref(p->policy);
    g_free(p);
}

json_t *
agent_policy_verify(CmAgent *agent, const AgentFetch *fetch, const json_t *resp, GError **error)
{
    g_autoptr(GBytes) bytes = NULL;
    g_autoptr(json_t) policy = NULL;
    g_autofree char *hex = NULL;
    CmRequest sig = {0};
    const char *id, *sig_text, *site;
    const guint8 *data;
    gsize len;
    gint64 version;
    guint8 digest[32];

    id = cm_json_str(resp, "policy_id", AGENT_POLICY_ID_MAX, error);
    if (id == NULL)
        return NULL;
    if (strcmp(id, fetch->policy_id) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "asked for policy %s, the MP answered with %s", fetch->policy_id, id);
        return NULL;
    }
    bytes = cm_json_b64(resp, "policy", AGENT_POLICY_MAX, error);
    if (bytes == NULL)
        return NULL;
    sig_text = cm_json_str(resp, "signature", CM_HDR_MAX, error);
    if (sig_text == NULL || !cm_msg_parse_signature(sig_text, &sig, error))
        return NULL;
    data = g_bytes_get_data(bytes, &len);

    /* The signature first: nothing of an unverified policy is read. */
    if (agent->signcert == NULL) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_UNTRUSTED,
                    "no site server signing certificate to verify policy %s with", id);
        return NULL;
    }
    if (!cm_hash_alg_allowed(sig.sig_hash, agent->site.require_sha256, error))
        return NULL;
    if (!cm_sig_verify(cm_cert_public_key(agent->signcert), sig.sig_hash, data, len, sig.sig,
                       sig.sig_len, error)) {
        g_prefix_error(error, "policy %s: ", id);
        return NULL;
    }
    cm_hash(CM_HASH_SHA256, data, len, digest);
    hex = cm_enc_hex(digest, sizeof digest);
    if (g_ascii_strcasecmp(hex, fetch->hash) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_SIGNATURE,
                    "policy %s does not hash to what its assignment announced", id);
        return NULL;
    }

    /* The bytes are the site's, as the assignment announced them: the
     * clients of a collection all hold the same policy, so with the parse
     * cache on (the simulator) they share one parsed object, which no one
     * changes (AgentPolicy, cm_agent_policy).  What follows checks it
     * against this client's fetch and site all the same. */
    policy = cm_parse_cache_json(bytes);
    if (policy == NULL) {
        policy = cm_json_parse(data, len, AGENT_POLICY_MAX, error);
        if (policy == NULL)
            return NULL;
        cm_parse_cache_json_put(bytes, policy);
    }
    id = cm_json_str(policy, "policy_id", AGENT_POLICY_ID_MAX, error);
    if (id == NULL || !cm_json_int(policy, "version", 0, G_MAXINT64, &version, error))
        return NULL;
    site = cm_json_str(policy, "site_code", 3, error);
    if (site == NULL)
        return NULL;
    /* A genuine policy of another policy ID, version or site is a replay,
     * not what was assigned to this client. */
    if (strcmp(id, fetch->policy_id) != 0 || version != fetch->version ||
        g_ascii_strcasecmp(site, agent->site_code) != 0) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_REFUSED,
                    "signed policy is %s version %" G_GINT64_FORMAT " of site %s; expected %s "
                    "version %" G_GINT64_FORMAT " of site %s",
                    id, version, site, fetch->policy_id, fetch->version, agent->site_code);
        return NULL;
    }
    if (json_object_get(policy, "settings") != NULL &&
        cm_json_object(policy, "settings", error) == NULL)
        return NULL;
    return g_steal_pointer(&policy);
}

/* Settings are merged in the order the policies were first accepted; a
 * later policy's value for the same setting wins (REQ POL-06).  The
 * settings of a single policy are its own object (read only, perhaps
 * shared with other clients), a merge of several a new one. */
static void
merge_settings(CmAgent *agent)
{
    json_t *merged = NULL;
    json_t *only = NULL;

    for (guint i = 0; i < agent->st.policy_ids->len; i++) {
        const AgentPolicy *p = agent->policies[i];
        json_t *s = json_object_get(p->policy, "settings");
        if (!json_is_object(s))
            continue;
        if (only == NULL && merged == NULL) {
            only = s;
            continue;
        }
        if (merged == NULL) {
            merged = json_object();
            json_object_update(merged, only);
        }
        json_object_update(merged, s);
    }
    if (merged == NULL && only != NULL)
        merged = json_incref(only);
    g_clear_pointer(&agent->settings, json_decref);
    agent->settings = merged;
    agent->st.settings = merged;
}

static guint
policy_index(const CmAgent *agent, const char *policy_id)
{
    for (guint i = 0; policy_id != NULL && i < agent->st.policy_ids->len; i++)
        if (strcmp(g_ptr_array_index(agent->st.policy_ids, i), policy_id) == 0)
            return i;
    return G_MAXUINT;
}

void
agent_sha256_from_hex(const char *hex, guint8 out[32])
{
    for (int i = 0; i < 32; i++)
        out[i] =
            (guint8)(g_ascii_xdigit_value(hex[2 * i]) << 4 | g_ascii_xdigit_value(hex[2 * i + 1]));
}

AgentPolicy *
agent_policy_find(const CmAgent *agent, const char *policy_id)
{
    guint i = policy_index(agent, policy_id);

    return i != G_MAXUINT ? agent->policies[i] : NULL;
}

void
agent_policy_accept(CmAgent *agent, const AgentFetch *fetch, json_t *policy, CmTime now)
{
    AgentPolicy *p = g_new0(AgentPolicy, 1);
    guint i = policy_index(agent, fetch->policy_id);

    p->version = fetch->version;
    agent_sha256_from_hex(fetch->hash, p->hash);
    p->policy = policy;
    if (i == G_MAXUINT) {
        i = agent->st.policy_ids->len;
        agent_deploy_read(p, NULL);
        g_ptr_array_add(agent->st.policy_ids, agent_str_ref(fetch->policy_id));
        agent->policies = g_renew(AgentPolicy *, agent->policies, i + 1);
        agent->policies[i] = p;
    } else {
        agent_deploy_read(p, agent->policies[i]);
        agent_policy_free(agent->policies[i]);
        agent->policies[i] = p;
    }
    agent->st.policies_accepted++;
    agent->installs_dirty = TRUE;
    merge_settings(agent);
    /* The site learns which clients took the deployment (docs/protocol.md,
     * state): accepted now, installed when software.c installs it. */
    agent_queue_state(agent, fetch->policy_id, AGENT_STATE_ACCEPTED, now);
}

void
agent_policy_retain(CmAgent *agent, GHashTable *assigned)
{
    gboolean changed = FALSE;

    for (guint i = agent->st.policy_ids->len; i > 0; i--) {
        const char *id = g_ptr_array_index(agent->st.policy_ids, i - 1);
        if (g_hash_table_contains(assigned, id))
            continue;
        /* The deployment is gone: so is what it set. */
        agent_policy_free(agent->policies[i - 1]);
        memmove(&agent->policies[i - 1], &agent->policies[i],
                (agent->st.policy_ids->len - i) * sizeof *agent->policies);
        g_ptr_array_remove_index(agent->st.policy_ids, i - 1);
        changed = TRUE;
    }
    if (changed) {
        merge_settings(agent);
        agent->installs_dirty = TRUE;
    }
}
