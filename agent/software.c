/* software.c - what the client installs on its own: the required
 * deployments of its accepted policies, held to its maintenance windows
 * (REQ POL-04), and newer versions of itself by automatic client upgrade
 * (REQ POL-05).
 *
 * Maintenance windows.  A required deployment installs at its deadline (at
 * once when it has none), and only when its maximum run time fits in what
 * is left of a maintenance window, as the product decides: an install that
 * could overrun the window is not started, and waits for the next window.
 * A window shorter than the run time therefore never comes, and the update
 * stays uninstalled: the seed's warning that a window too small leaves
 * clients without critical updates.  Past its deadline the deployment
 * still waits, unless the client was configured to let deadlines override
 * windows.  "Installing" here is the decision to run the install at that
 * time; fetching the content and checking its hash is the distribution
 * point's part (DP-04).
 *
 * Automatic client upgrade.  The client asks its management point for the
 * client package (docs/protocol.md, clientpackage) and installs a version
 * newer than its own.  The answer is anonymous and nothing in it is signed
 * by the site: the client takes the version, the download location and
 * even the hash to check the download against on that MP's word.  An MP
 * an attacker controls upgrades every client that asks it to whatever the
 * attacker likes; that is the seed's "automatic client upgrade doesn't
 * verify the management point", kept as the product has it. */
#include "internal.h"

#include <string.h>

/* Bounds on what a signed policy may state, so that times cannot overflow. */
#define DEPLOY_MAX_RUNTIME_S (3650 * G_GINT64_CONSTANT(86400))
#define DEPLOY_MAX_DEADLINE_S (G_MAXINT64 / CM_USEC_PER_SEC / 2)

/* ------------------------------------------------------------ windows */

CmTime
cm_maintenance_fit(CmTime t, CmTime window_start, CmTime window_len, CmTime max_runtime)
{
    const CmTime day = CM_USEC_PER_DAY;
    CmTime midnight, start;

    if (window_len <= 0 || window_len >= day)
        return t; /* no window, or one that never closes */
    if (max_runtime < 0)
        max_runtime = 0;
    if (max_runtime > window_len)
        return -1; /* no window will ever be long enough */
    start = ((window_start % day) + day) % day;
    midnight = t - (((t % day) + day) % day);
    /* The window that opened yesterday may still be open (it crosses
     * midnight), today's may be open or still to come, tomorrow's is
     * always to come. */
    for (int k = -1; k <= 1; k++) {
        CmTime open = midnight + k * day + start;
        CmTime close = open + window_len;
        if (t < open)
            return open;
        if (t < close && t + max_runtime <= close)
            return t;
    }
    return midnight + day + start; /* not reached: tomorrow's is after t */
}

/* ------------------------------------------------------------ deployments */

const char *
cm_deploy_state_name(CmDeployState s)
{
    switch (s) {
    case CM_DEPLOY_PENDING:
        return "pending";
    case CM_DEPLOY_INSTALLED:
        return "installed";
    case CM_DEPLOY_NONE:
    default:
        return "none";
    }
}

/* A whole number of seconds in [0, max] from the policy, or 0 when absent
 * or unusable: the policy verified, so a bad value is the site's bug, and
 * the deployment is then taken at its plainest (no deadline, no stated run
 * time) rather than dropped. */
static CmTime
policy_seconds(const json_t *policy, const char *key, gint64 max)
{
    const json_t *v = json_object_get(policy, key);
    json_int_t s;

    if (!json_is_integer(v))
        return 0;
    s = json_integer_value(v);
    if (s <= 0)
        return 0;
    return (CmTime)MIN(s, max) * CM_USEC_PER_SEC;
}

void
agent_deploy_read(AgentPolicy *p, const AgentPolicy *old)
{
    p->required = json_is_true(json_object_get(p->policy, "required"));
    p->deadline = policy_seconds(p->policy, "deadline", DEPLOY_MAX_DEADLINE_S);
    p->max_runtime = policy_seconds(p->policy, "max_runtime_s", DEPLOY_MAX_RUNTIME_S);
    p->installed_at = 0;
    /* A new version of a deployment whose content did not change (a new
     * deadline, other settings) is not installed again. */
    if (old != NULL && old->installed_at != 0 && p->required &&
        json_equal(json_object_get(old->policy, "content"), json_object_get(p->policy, "content")))
        p->installed_at = old->installed_at;
}

/* When p may be installed, at or after now; -1 with *unfit when no
 * maintenance window is long enough for it. */
static CmTime
install_time(const CmAgent *agent, const AgentPolicy *p, CmTime now, gboolean *unfit)
{
    CmTime from = MAX(now, p->deadline);
    CmTime at;

    *unfit = FALSE;
    if (agent->prof->deadline_overrides_window)
        return from; /* explicitly allowed: the deadline wins over the windows */
    at = cm_maintenance_fit(from, agent->prof->mw_start, agent->prof->mw_len, p->max_runtime);
    *unfit = at < 0;
    return at;
}

void
agent_installs_run(CmAgent *agent, CmTime now)
{
    CmTime next = 0;
    int done = 0, pending = 0, unfit = 0;

    if (!agent->installs_dirty && (agent->install_due == 0 || now < agent->install_due))
        return;
    agent->installs_dirty = FALSE;
    /* In the order the policies were accepted, so that two deployments due
     * together install in a stable order. */
    for (guint i = 0; i < agent->st.policy_ids->len; i++) {
        const char *id = g_ptr_array_index(agent->st.policy_ids, i);
        AgentPolicy *p = agent->policies[i];
        gboolean never;
        CmTime at;

        if (p == NULL || !p->required)
            continue;
        if (p->installed_at != 0) {
            done++;
            continue;
        }
        at = install_time(agent, p, now, &never);
        if (at == now) {
            g_autofree char *text = NULL;
            const char *content;
            p->installed_at = now;
            done++;
            g_info("%s: installing %s (maximum run time %" G_GINT64_FORMAT " s)", agent->st.smsid,
                   id, p->max_runtime / CM_USEC_PER_SEC);
            /* Reported twice, as the product does: a state message the
             * site's deployment status counts (signed), and a status
             * message for whoever reads the component's log (not). */
            agent_queue_state(agent, id, AGENT_STATE_INSTALLED, now);
            content =
                json_string_value(json_object_get(json_object_get(p->policy, "content"), "id"));
            text = content != NULL ? g_strdup_printf("%.64s of policy %s installed.", content, id)
                                   : g_strdup_printf("The deployment of policy %s installed.", id);
            agent_queue_status(agent, "info", AGENT_MSG_INSTALLED, text);
            continue;
        }
        pending++;
        if (never) {
            unfit++;
            g_debug("%s: %s needs %" G_GINT64_FORMAT
                    " s; the maintenance window is %" G_GINT64_FORMAT " s: it will not install",
                    agent->st.smsid, id, p->max_runtime / CM_USEC_PER_SEC,
                    agent->prof->mw_len / CM_USEC_PER_SEC);
            continue;
        }
        next = next == 0 ? at : MIN(next, at);
    }
    agent->install_due = next;
    agent->st.installs_done = done;
    agent->st.installs_pending = pending;
    agent->st.installs_unfit = unfit;
}

CmDeployState
cm_agent_deployment(const CmAgent *agent, const char *policy_id, CmTime *installed_at)
{
    const AgentPolicy *p = agent_policy_find(agent, policy_id);

    if (installed_at != NULL)
        *installed_at = p != NULL && p->required ? p->installed_at : 0;
    if (p == NULL || !p->required)
        return CM_DEPLOY_NONE;
    return p->installed_at != 0 ? CM_DEPLOY_INSTALLED : CM_DEPLOY_PENDING;
}

/* ------------------------------------------------------------ client upgrade */

#define VERSION_PARTS 4

static gboolean
version_parse(const char *s, guint64 parts[VERSION_PARTS])
{
    int n = 0;

    memset(parts, 0, VERSION_PARTS * sizeof parts[0]);
    if (s == NULL)
        return FALSE;
    for (;;) {
        int digits = 0;
        guint64 v = 0;
        while (g_ascii_isdigit(*s) && digits < 10) {
            v = v * 10 + (guint64)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 9 || n >= VERSION_PARTS)
            return FALSE;
        parts[n++] = v;
        if (*s == '\0')
            return TRUE;
        if (*s++ != '.')
            return FALSE;
    }
}

gboolean
cm_client_version_cmp(const char *a, const char *b, int *out)
{
    guint64 pa[VERSION_PARTS], pb[VERSION_PARTS];

    if (!version_parse(a, pa) || !version_parse(b, pb))
        return FALSE;
    *out = 0;
    for (int i = 0; i < VERSION_PARTS && *out == 0; i++)
        *out = pa[i] < pb[i] ? -1 : pa[i] > pb[i] ? 1 : 0;
    return TRUE;
}

static gboolean
is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return FALSE;
    for (; *s != '\0'; s++)
        if (!g_ascii_isxdigit(*s))
            return FALSE;
    return TRUE;
}

gboolean
agent_client_package(CmAgent *agent, const json_t *body, GError **error)
{
    const char *version, *url, *hash;
    char lower[65];
    int cmp;

    version = cm_json_str(body, "version", AGENT_VERSION_MAX, error);
    url = version ? cm_json_str(body, "url", AGENT_URL_MAX, error) : NULL;
    hash = url ? cm_json_str(body, "hash", 64, error) : NULL;
    if (hash == NULL)
        return FALSE;
    if (!cm_client_version_cmp(version, agent->st.client_version, &cmp)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID, "\"%s\" is not a client version",
                    version);
        return FALSE;
    }
    if (*url == '\0' || !is_hex64(hash)) {
        g_set_error(error, CM_PROTO_ERROR, CM_PROTO_ERROR_INVALID,
                    "a client package needs a download location and a hex SHA-256");
        return FALSE;
    }
    agent->st.upgrade_checks++;
    if (cmp <= 0)
        return TRUE; /* nothing newer: a downgrade is never installed */

    /* REQ POL-05: nothing here is checked against the site.  The hash
     * would only prove the download matches what the same MP announced;
     * no signature, no TRK, no check that the download location is a
     * management point of the site.  Kept so: it is the product's gap. */
    g_info("%s: upgrading the client from %s to %s, from %s as %s told it", agent->st.smsid,
           agent->st.client_version, version, url, agent->st.mp);
    for (size_t i = 0; i < sizeof lower - 1; i++)
        lower[i] = g_ascii_tolower(hash[i]);
    lower[sizeof lower - 1] = '\0';
    agent_str_set(&agent->st.client_version, version);
    agent_str_set(&agent->st.upgrade_mp, agent->st.mp);
    agent_str_set(&agent->st.upgrade_url, url);
    agent_str_set(&agent->st.upgrade_hash, lower);
    agent->st.upgrades_installed++;
    /* The inventory reports the version running now, whatever the driver
     * had set. */
    agent_prop_forget(agent, FALSE, "client.version");
    return TRUE;
}
