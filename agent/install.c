/* install.c - installing the client: installation properties (REQ CLI-02),
 * where its trust in the site comes from (REQ TRUST-04/05/06/09), its
 * identity key in a key storage provider and its self-signed certificate
 * (REQ TRUST-11/13), and the accessors of an installed agent.
 *
 * Trust sources, most trusted first:
 *   trusted root key:  SMSPublicRootKey / SMSROOTKEYPATH (with SMSSITECODE),
 *                      client push, directory publishing; otherwise the
 *                      first MP (trust on first use) or, over HTTPS with
 *                      PKI, none needed.
 *   signing cert:      SMSSIGNCERT, client push, directory publishing;
 *                      otherwise downloaded from the MP.
 *
 * RESETKEYINFORMATION=TRUE.  Each installation is a new CmAgent, so there is
 * no key held from an earlier installation to drop; the property therefore
 * means "this installation starts with no TRK except the one it is given
 * now": a key given in the same installation (property or push) replaces
 * the old one, as reinstalling with a new key does in the product, and
 * without one the client holds none until directory publishing or its first
 * MP provides it.  cm_agent_trk_hex() is what an operator reads to compare
 * with the site's SMSPublicRootKey (REQ TRUST-06). */
#include "internal.h"

#include <string.h>

G_DEFINE_QUARK(cm - agent - error - quark, cm_agent_error)

/* ------------------------------------------------------------ names */

static const char *const install_methods[] = {
    [CM_INSTALL_MANUAL] = "manual", [CM_INSTALL_PUSH] = "push",   [CM_INSTALL_GPO] = "gpo",
    [CM_INSTALL_SUP] = "sup",       [CM_INSTALL_IMAGE] = "image",
};

const char *
cm_install_method_name(CmInstallMethod m)
{
    return (size_t)m < G_N_ELEMENTS(install_methods) ? install_methods[m] : "manual";
}

gboolean
cm_install_method_parse(const char *s, CmInstallMethod *out, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(install_methods); i++) {
        if (s != NULL && g_ascii_strcasecmp(s, install_methods[i]) == 0) {
            *out = (CmInstallMethod)i;
            return TRUE;
        }
    }
    g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INVALID,
                "unknown installation method \"%s\": use manual, push, gpo, sup or image",
                s ? s : "(none)");
    return FALSE;
}

const char *
cm_trust_source_name(CmTrustSource s)
{
    switch (s) {
    case CM_SOURCE_DIRECTORY:
        return "directory";
    case CM_SOURCE_PUSH:
        return "push";
    case CM_SOURCE_PROPERTY:
        return "property";
    case CM_SOURCE_MP:
        return "mp";
    case CM_SOURCE_PKI:
        return "pki";
    case CM_SOURCE_NONE:
    default:
        return "none";
    }
}

const char *
cm_agent_state_name(CmAgentState s)
{
    static const char *const names[] = {
        [CM_AGENT_INSTALLED] = "installed", [CM_AGENT_LOCATING] = "locating",
        [CM_AGENT_TRUSTING] = "trusting",   [CM_AGENT_REGISTERING] = "registering",
        [CM_AGENT_PENDING] = "pending",     [CM_AGENT_ACTIVE] = "active",
        [CM_AGENT_BLOCKED] = "blocked",     [CM_AGENT_FAILED] = "failed",
    };
    return (size_t)s < G_N_ELEMENTS(names) ? names[s] : "unknown";
}

void
cm_agent_config_default(CmAgentConfig *c)
{
    memset(c, 0, sizeof *c);
    c->method = CM_INSTALL_MANUAL;
    c->key_alg = CM_KEY_EC_P256;
    c->sign_hash = CM_HASH_SHA256;
    c->policy_interval = 60 * CM_USEC_PER_MIN;
    c->inventory_interval = 7 * CM_USEC_PER_DAY;
    c->start_window = 0;
    c->maintenance_start = 0;
    c->maintenance_window = 0; /* no window: installs at any time */
    c->deadline_overrides_window = FALSE;
    c->auto_upgrade = FALSE;
    c->upgrade_interval = CM_USEC_PER_DAY;
    c->client_status_interval = CM_USEC_PER_DAY;  /* REQ DATA-02 */
    c->keepalive_interval = 15 * CM_USEC_PER_MIN; /* REQ REG-05 */
    c->channel_lifetime = 0;                      /* until the agent restarts */
}

/* ------------------------------------------------------------ helpers */

static gboolean
given(const char *s)
{
    return s != NULL && *s != '\0';
}

gboolean
agent_have_pki(const CmAgent *agent)
{
    return agent->prof->usepkicert && agent->pki_cert != NULL && !agent->pki_revoked;
}

static void
set_trk(CmAgent *agent, CmKey *key, CmTrustSource source)
{
    g_clear_pointer(&agent->trk, cm_key_unref);
    g_clear_pointer(&agent->trk_hex, g_free);
    if (key != NULL) {
        agent->trk = cm_key_ref(key);
    }
    agent->st.trk_source = source;
}

/* The text of an SMSROOTKEYPATH file: the key copied from mobileclient.tcf,
 * bare or as the whole "SMSPublicRootKey=<key>" line, with any surrounding
 * white space.  New string. */
static char *
root_key_file_text(const char *contents)
{
    char *s = g_strstrip(g_strdup(contents));
    static const char prefix[] = "SMSPublicRootKey=";

    if (g_ascii_strncasecmp(s, prefix, sizeof prefix - 1) == 0) {
        char *rest = g_strstrip(g_strdup(s + sizeof prefix - 1));
        g_free(s);
        s = rest;
    }
    return s;
}

/* ------------------------------------------------------------ profiles */

static GMutex profiles_lock;
static GHashTable *profiles; /* AgentProfile* (itself the key), while any agent holds one */

/* The value of a profile: its bytes after refs. */
#define PROFILE_VALUE(p) ((const guint8 *)(p) + G_STRUCT_OFFSET(AgentProfile, method))
#define PROFILE_VALUE_LEN (sizeof(AgentProfile) - G_STRUCT_OFFSET(AgentProfile, method))

static guint
profile_hash(gconstpointer p)
{
    const guint8 *b = PROFILE_VALUE(p);
    guint32 h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < PROFILE_VALUE_LEN; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static gboolean
profile_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(PROFILE_VALUE(a), PROFILE_VALUE(b), PROFILE_VALUE_LEN) == 0;
}

const AgentProfile *
agent_profile_intern(const AgentProfile *tmpl)
{
    AgentProfile *p;

    g_mutex_lock(&profiles_lock);
    if (profiles == NULL)
        profiles = g_hash_table_new(profile_hash, profile_equal);
    p = g_hash_table_lookup(profiles, tmpl);
    if (p == NULL) {
        p = g_memdup2(tmpl, sizeof *p);
        p->refs = 0;
        g_hash_table_add(profiles, p);
    }
    p->refs++;
    g_mutex_unlock(&profiles_lock);
    return p;
}

void
agent_profile_release(const AgentProfile *prof)
{
    AgentProfile *p = (AgentProfile *)prof;

    if (p == NULL)
        return;
    g_mutex_lock(&profiles_lock);
    if (--p->refs == 0) {
        g_hash_table_remove(profiles, p);
        g_free(p);
        /* The last agent gone: nothing left for a leak checker to see. */
        if (g_hash_table_size(profiles) == 0)
            g_clear_pointer(&profiles, g_hash_table_unref);
    }
    g_mutex_unlock(&profiles_lock);
}

/* ------------------------------------------------------------ token */

/* A token's parts are kept decoded; the only check they need is that they
 * encode back to the same text (cm_enc_b64url_canonical tells from the
 * text itself, without a GBytes per part). */
AgentToken *
agent_token_new(const char *token)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    g_autofree char *header = NULL;
    AgentToken *t;
    gsize cl = 0, sl = 0, claims_n = 0, sig_n = 0;

    if (dot2 != NULL) {
        claims_n = (size_t)(dot2 - dot1 - 1);
        sig_n = strlen(dot2 + 1);
    }
    if (dot2 == NULL || !cm_enc_b64url_canonical(dot1 + 1, claims_n, &cl) ||
        !cm_enc_b64url_canonical(dot2 + 1, sig_n, &sl)) {
        t = g_new0(AgentToken, 1);
        t->text = g_strdup(token);
        return t;
    }
    t = g_malloc0(sizeof *t + cl + sl);
    header = g_strndup(token, (gsize)(dot1 - token));
    t->header = agent_str_ref(header);
    t->claims_len = cl;
    t->sig_len = sl;
    cm_enc_b64url_decode_into(dot1 + 1, claims_n, t->bin);
    cm_enc_b64url_decode_into(dot2 + 1, sig_n, t->bin + cl);
    return t;
}

void
agent_token_free(AgentToken *t)
{
    if (t == NULL)
        return;
    if (t->header != NULL)
        agent_str_unref(t->header);
    g_free(t->text);
    g_free(t);
}

/* ------------------------------------------------------------ strings */

const char agent_str_empty[] = "";

/* Not GLib's interned GRefStrings: before 2.78 a release to zero races a
 * new intern of the same text in another thread (the daemons run agents
 * on several threads).  Here every count changes under the lock. */
static GMutex strings_lock;
static GHashTable *strings; /* char* (the shared string) -> count */

char *
agent_str_ref(const char *s)
{
    gpointer key = NULL, count = NULL;

    g_mutex_lock(&strings_lock);
    if (strings == NULL)
        strings = g_hash_table_new(g_str_hash, g_str_equal);
    if (!g_hash_table_lookup_extended(strings, s, &key, &count))
        key = g_strdup(s);
    g_hash_table_insert(strings, key, GUINT_TO_POINTER(GPOINTER_TO_UINT(count) + 1));
    g_mutex_unlock(&strings_lock);
    return key;
}

void
agent_str_unref(const char *s)
{
    gpointer key = NULL, count = NULL;

    if (s == NULL || s == agent_str_empty)
        return;
    g_mutex_lock(&strings_lock);
    if (strings != NULL && g_hash_table_lookup_extended(strings, s, &key, &count)) {
        g_assert(key == s);
        if (GPOINTER_TO_UINT(count) > 1) {
            g_hash_table_insert(strings, key, GUINT_TO_POINTER(GPOINTER_TO_UINT(count) - 1));
        } else {
            g_hash_table_remove(strings, key);
            g_free(key);
            /* The last one gone: nothing left for a leak checker to see. */
            if (g_hash_table_size(strings) == 0)
                g_clear_pointer(&strings, g_hash_table_unref);
        }
    }
    g_mutex_unlock(&strings_lock);
}

void
agent_str_set(const char **slot, const char *value)
{
    const char *old = *slot;

    /* The new reference first: value may be the string *slot holds. */
    *slot = value == NULL || *value == '\0' ? agent_str_empty : agent_str_ref(value);
    agent_str_unref(old);
}

void
agent_mp_clear(gpointer mp)
{
    AgentMp *m = mp;

    agent_str_set(&m->name, NULL);
}

void
agent_mps_clear(CmAgent *agent)
{
    for (guint i = 0; i < agent->n_mps; i++)
        agent_mp_clear(&agent->mps[i]);
    g_clear_pointer(&agent->mps, g_free);
    agent->n_mps = 0;
}

GArray *
agent_mp_list_new(void)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(AgentMp));

    g_array_set_clear_func(list, agent_mp_clear);
    return list;
}

static void
add_candidate(CmAgent *agent, const char *name)
{
    if (!given(name) || strlen(name) > CM_NAME_MAX)
        return;
    for (guint i = 0; i < agent->n_candidates; i++)
        if (g_ascii_strcasecmp(agent->candidates[i], name) == 0)
            return;
    agent->candidates = g_renew(char *, agent->candidates, agent->n_candidates + 1);
    agent->candidates[agent->n_candidates++] = agent_str_ref(name);
}

/* ------------------------------------------------------------ properties */

static gboolean
install_properties(CmAgent *agent, const CmAgentConfig *c, GError **error)
{
    g_autofree char *path_key = NULL;
    g_autofree char *prop_key = NULL;
    g_autoptr(CmKey) trk = NULL;
    const char *key_text = NULL;
    const char *key_name = NULL;
    GError *local = NULL;
    const CmDirectoryInfo *dir = c->directory;
    gboolean dir_ok = FALSE;

    if (given(c->smsrootkeypath))
        path_key = root_key_file_text(c->smsrootkeypath);
    if (given(c->smspublicrootkey))
        prop_key = g_strstrip(g_strdup(c->smspublicrootkey));
    if (prop_key != NULL && path_key != NULL && g_ascii_strcasecmp(prop_key, path_key) != 0) {
        g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL,
                    "SMSPublicRootKey and SMSROOTKEYPATH give different trusted root keys; "
                    "give one of them, copied from SMSPublicRootKey= in the site's "
                    "mobileclient.tcf");
        return FALSE;
    }
    if (prop_key != NULL) {
        key_text = prop_key;
        key_name = "SMSPublicRootKey";
    } else if (path_key != NULL) {
        key_text = path_key;
        key_name = "SMSROOTKEYPATH";
    }

    /* REQ TRUST-05: a pre-provisioned key only means something together
     * with the site it belongs to. */
    if (key_text != NULL && !given(c->smssitecode)) {
        g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL,
                    "%s was given without SMSSITECODE: when you pre-provision the trusted "
                    "root key, also give the site code, for example SMSSITECODE=PS1",
                    key_name);
        return FALSE;
    }
    if (given(c->smssitecode) && !cm_id_site_code_check(c->smssitecode, agent->site_code, &local)) {
        g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL, "SMSSITECODE: %s",
                    local->message);
        g_error_free(local);
        return FALSE;
    }
    if (key_text != NULL) {
        trk = cm_key_public_from_hex(key_text, &local);
        if (trk == NULL) {
            g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL,
                        "%s is not a valid trusted root key (%s); copy the whole value of "
                        "SMSPublicRootKey= from the site's mobileclient.tcf",
                        key_name, local->message);
            g_error_free(local);
            return FALSE;
        }
    }
    if (c->smssigncert != NULL && !cm_cert_is_self_signed(c->smssigncert)) {
        g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL,
                    "SMSSIGNCERT \"%s\" is not self-signed; the site server signing "
                    "certificate always is: export it from the site server",
                    cm_cert_subject_cn(c->smssigncert));
        return FALSE;
    }
    if (c->push_signing_cert != NULL && !cm_cert_is_self_signed(c->push_signing_cert)) {
        g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL,
                    "the signing certificate carried by client push is not self-signed");
        return FALSE;
    }
    if (c->resetkeyinformation)
        g_debug("RESETKEYINFORMATION: starting without a held trusted root key%s",
                key_text != NULL || given(c->push_trk_hex) ? "; using the one given now" : "");

    /* Trusted root key: property, then push, then directory (REQ TRUST-04). */
    if (trk != NULL) {
        set_trk(agent, trk, CM_SOURCE_PROPERTY);
    } else if (given(c->push_trk_hex)) {
        g_autoptr(CmKey) push = cm_key_public_from_hex(c->push_trk_hex, &local);
        if (push == NULL) {
            g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INSTALL,
                        "client push carried a malformed trusted root key: %s", local->message);
            g_error_free(local);
            return FALSE;
        }
        set_trk(agent, push, CM_SOURCE_PUSH);
    }

    /* Directory publishing counts only for the client's own site: a site
     * code given at install time wins over what the forest publishes. */
    if (dir != NULL) {
        char code[4];
        if (given(dir->site_code) && cm_id_site_code_check(dir->site_code, code, NULL) &&
            (agent->site_code[0] == '\0' || strcmp(code, agent->site_code) == 0)) {
            dir_ok = TRUE;
            memcpy(agent->site_code, code, sizeof code);
        } else {
            g_debug("directory publishing is for site %s, not this client's %s: ignored",
                    dir->site_code ? dir->site_code : "(none)", agent->site_code);
        }
    }
    if (dir_ok && agent->trk == NULL && given(dir->trk_hex)) {
        g_autoptr(CmKey) dk = cm_key_public_from_hex(dir->trk_hex, &local);
        if (dk != NULL) {
            set_trk(agent, dk, CM_SOURCE_DIRECTORY);
        } else {
            g_info("the trusted root key published to the directory is malformed (%s); "
                   "ignored",
                   local->message);
            g_clear_error(&local);
        }
    }

    /* Site server signing certificate (REQ TRUST-09). */
    if (c->smssigncert != NULL) {
        agent->signcert = cm_cert_ref((CmCert *)c->smssigncert);
        agent->st.signcert_source = CM_SOURCE_PROPERTY;
    } else if (c->push_signing_cert != NULL) {
        agent->signcert = cm_cert_ref((CmCert *)c->push_signing_cert);
        agent->st.signcert_source = CM_SOURCE_PUSH;
    } else if (dir_ok && dir->signing_cert != NULL && cm_cert_is_self_signed(dir->signing_cert)) {
        agent->signcert = cm_cert_ref((CmCert *)dir->signing_cert);
        agent->st.signcert_source = CM_SOURCE_DIRECTORY;
    }

    /* Service location (REQ NET-01): assigned MP, directory, DNS. */
    add_candidate(agent, c->mp);
    if (dir_ok && dir->mps != NULL)
        for (const char *const *m = dir->mps; *m != NULL; m++)
            add_candidate(agent, *m);
    if (c->dns_mps != NULL)
        for (const char *const *m = c->dns_mps; *m != NULL; m++)
            add_candidate(agent, *m);
    return TRUE;
}

/* ------------------------------------------------------------ identity */

CmCert *
agent_make_cert(CmAgent *agent, CmKey *key, CmTime now, GError **error)
{
    CmCertSpec spec = {0};

    spec.profile = CM_CERT_CLIENT_SELF_SIGNED;
    spec.subject_cn = agent->st.smsid;
    /* Random, non-zero, and within 63 bits so that it stays positive
     * wherever a signed 64-bit integer stores it. */
    spec.serial = (cm_rng_u64(&agent->rng) >> 1) | 1;
    spec.not_before = now - AGENT_CERT_BACKDATE;
    spec.not_after = now + AGENT_CERT_LIFETIME;
    spec.subject_key = key;
    spec.hash = CM_HASH_SHA256;
    return cm_cert_issue(&spec, error);
}

static gboolean
install_identity(CmAgent *agent, const CmAgentConfig *c, CmTime now, GError **error)
{
    GError *local = NULL;

    /* Media is not bound to a machine (REQ TRUST-13): software keys. */
    agent->ksp = cm_ksp_new(c->media ? 0 : c->tpm_version, c->device_secret);
    agent->st.ksp = cm_ksp_kind(agent->ksp);
    agent->st.ksp_fell_back = cm_ksp_fell_back(agent->ksp);

    /* The order of draws is fixed (SMSID, hardware ID, serial) so that a
     * seeded stream always gives the same identity. */
    cm_id_smsid_new(&agent->rng, agent->st.smsid);
    if (given(c->hwid)) {
        if (!cm_id_hwid_check(c->hwid, &local)) {
            g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INVALID, "hardware ID: %s",
                        local->message);
            g_error_free(local);
            return FALSE;
        }
        g_strlcpy(agent->st.hwid, c->hwid, sizeof agent->st.hwid);
    } else {
        cm_id_hwid_new(&agent->rng, agent->st.hwid);
    }

    agent->key = cm_ksp_generate(agent->ksp, agent->prof->key_alg, &local);
    if (agent->key == NULL)
        goto fail;
    agent->cert = agent_make_cert(agent, agent->key, now, &local);
    if (agent->cert == NULL)
        goto fail;
    return TRUE;
fail:
    g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INVALID,
                "cannot create the client's identity key and certificate: %s", local->message);
    g_error_free(local);
    return FALSE;
}

CmAgent *
cm_agent_new(const CmAgentConfig *config, const CmRng *rng, CmTime now, GError **error)
{
    CmAgent *agent = NULL, *ret = NULL;
    AgentProfile pr;

    g_return_val_if_fail(config != NULL && rng != NULL, NULL);
    memset(&pr, 0, sizeof pr); /* padding too: profiles compare as bytes */

    agent = g_new0(CmAgent, 1);
    agent->rng = *rng;
    /* Shared strings (agent_str_ref): every client names the same few
     * MPs, deployments and domains. */
    g_queue_init(&agent->fetch);
    g_queue_init(&agent->states);
    g_queue_init(&agent->status);
    agent->st.policy_ids = g_ptr_array_new_with_free_func((GDestroyNotify)agent_str_unref);
    agent->st.state = CM_AGENT_INSTALLED;
    agent->st.mp = agent_str_empty;
    agent->st.upgrade_mp = agent_str_empty;
    agent->st.upgrade_url = agent_str_empty;
    agent->st.upgrade_hash = agent_str_empty;
    agent->st.channel_mp = agent_str_empty;
    agent_str_set(&agent->st.client_version, CM_AGENT_VERSION);

    agent->name = given(config->name) ? g_strdup(config->name) : NULL;
    agent->domain = agent_str_ref(config->domain ? config->domain : "");
    agent->entra_token = given(config->entra_token) ? g_strdup(config->entra_token) : NULL;
    pr.method = config->method;
    pr.usepkicert = config->usepkicert;
    pr.media = config->media;
    if (config->pki_cert != NULL)
        agent->pki_cert = cm_cert_ref((CmCert *)config->pki_cert);
    if (config->pki_key != NULL)
        agent->pki_key = cm_key_ref((CmKey *)config->pki_key);
    pr.key_alg = config->key_alg;
    pr.sign_hash = config->sign_hash;
    pr.retry_base = config->retry_base > 0 ? config->retry_base : AGENT_BACKOFF_BASE;
    pr.retry_cap =
        config->retry_cap > 0 ? MAX(config->retry_cap, pr.retry_base) : AGENT_BACKOFF_CAP;
    pr.on_internet = config->on_internet;
    pr.policy_interval =
        config->policy_interval > 0 ? config->policy_interval : 60 * CM_USEC_PER_MIN;
    pr.inventory_interval =
        config->inventory_interval > 0 ? config->inventory_interval : 7 * CM_USEC_PER_DAY;
    pr.start_window = config->start_window > 0 ? config->start_window : 0;
    /* A window's start is an offset into the day whatever the caller
     * wrote; a window of a day or more never closes. */
    pr.mw_start =
        ((config->maintenance_start % CM_USEC_PER_DAY) + CM_USEC_PER_DAY) % CM_USEC_PER_DAY;
    pr.mw_len = CLAMP(config->maintenance_window, 0, CM_USEC_PER_DAY);
    pr.deadline_overrides_window = config->deadline_overrides_window;
    pr.auto_upgrade = config->auto_upgrade;
    pr.upgrade_interval = config->upgrade_interval > 0 ? config->upgrade_interval : CM_USEC_PER_DAY;
    /* Here 0 (or less) turns the feature off rather than meaning "default". */
    pr.client_status_interval = MAX(config->client_status_interval, 0);
    pr.keepalive_interval = MAX(config->keepalive_interval, 0);
    pr.channel_lifetime = MAX(config->channel_lifetime, 0);
    agent->prof = agent_profile_intern(&pr);
    /* Until siteinfo says otherwise: what a site requires by default. */
    g_strlcpy(agent->site.communication, "http-or-https", sizeof agent->site.communication);
    agent->site.require_signing = TRUE;

    if (!install_properties(agent, config, error))
        goto out;
    if (!install_identity(agent, config, now, error))
        goto out;
    if (agent->name == NULL)
        agent->name = g_strdup_printf("CM-%.8s", agent->st.smsid + 5);
    /* The inventory reports the key storage of the installation (a later
     * cm_agent_upgrade does not change what it says). */
    agent->inv_ksp = agent->st.ksp;
    ret = g_steal_pointer(&agent);
out:
    cm_agent_free(agent);
    return ret;
}

void
cm_agent_free(CmAgent *agent)
{
    if (agent == NULL)
        return;
    g_free(agent->name);
    if (agent->domain != NULL)
        agent_str_unref(agent->domain);
    g_free(agent->entra_token);
    g_clear_pointer(&agent->pki_cert, cm_cert_unref);
    g_clear_pointer(&agent->pki_key, cm_key_unref);
    for (guint i = 0; i < agent->n_candidates; i++)
        agent_str_unref(agent->candidates[i]);
    g_free(agent->candidates);
    g_clear_pointer(&agent->ksp, cm_ksp_free);
    g_clear_pointer(&agent->key, cm_key_unref);
    g_clear_pointer(&agent->cert, cm_cert_unref);
    g_clear_pointer(&agent->trk, cm_key_unref);
    g_free(agent->trk_hex);
    g_clear_pointer(&agent->signcert, cm_cert_unref);
    g_clear_pointer(&agent->enc_cert, cm_cert_unref);
    g_clear_pointer(&agent->mp_cert, cm_cert_unref);
    agent_mps_clear(agent);
    agent_token_free(agent->token);
    g_queue_clear_full(&agent->fetch, (GDestroyNotify)agent_fetch_free);
    g_queue_clear_full(&agent->states, (GDestroyNotify)json_decref);
    g_queue_clear_full(&agent->status, (GDestroyNotify)json_decref);
    for (guint i = 0; agent->st.policy_ids != NULL && i < agent->st.policy_ids->len; i++)
        agent_policy_free(agent->policies[i]);
    g_free(agent->policies);
    g_clear_pointer(&agent->st.policy_ids, g_ptr_array_unref);
    g_clear_pointer(&agent->settings, json_decref);
    g_clear_pointer(&agent->props, g_ptr_array_unref);
    agent_profile_release(agent->prof);
    agent_str_set(&agent->st.mp, NULL);
    agent_str_set(&agent->st.client_version, NULL);
    agent_str_set(&agent->st.upgrade_mp, NULL);
    agent_str_set(&agent->st.upgrade_url, NULL);
    agent_str_set(&agent->st.upgrade_hash, NULL);
    agent_str_set(&agent->st.channel_mp, NULL);
    g_free(agent);
}

/* ------------------------------------------------------------ accessors */

const char *
cm_agent_trk_hex(const CmAgent *agent)
{
    CmAgent *a = (CmAgent *)agent; /* a cache of a value the agent holds */

    /* The canonical form, whatever case or spacing the source used, so that
     * an operator can compare it with the site's character by character.
     * Made when asked: encoding a key costs OpenSSL more than using it. */
    if (a->trk_hex == NULL && a->trk != NULL)
        a->trk_hex = cm_key_public_hex(a->trk);
    return agent->trk_hex;
}

CmTrustSource
cm_agent_trk_source(const CmAgent *agent)
{
    return agent->st.trk_source;
}

CmTrustSource
cm_agent_signcert_source(const CmAgent *agent)
{
    return agent->st.signcert_source;
}

const CmAgentStatus *
cm_agent_status(const CmAgent *agent)
{
    return &agent->st;
}

CmKey *
cm_agent_key(const CmAgent *agent)
{
    return agent->key;
}

CmCert *
cm_agent_cert(const CmAgent *agent)
{
    return agent->cert;
}

const char *
cm_agent_cmg_token(const CmAgent *agent)
{
    AgentToken *t = agent->token;

    if (t == NULL)
        return NULL;
    if (t->text == NULL) {
        /* Made once, on the first need; the agent is not shared. */
        g_autofree char *claims = cm_enc_b64url(t->bin, t->claims_len);
        g_autofree char *sig = cm_enc_b64url(t->bin + t->claims_len, t->sig_len);
        t->text = g_strconcat(t->header, ".", claims, ".", sig, NULL);
    }
    return t->text;
}

const json_t *
cm_agent_policy(const CmAgent *agent, const char *policy_id)
{
    const AgentPolicy *p = agent_policy_find(agent, policy_id);
    return p ? p->policy : NULL;
}

/* ------------------------------------------------------------ reports */

static guint
prop_find(const CmAgent *agent, gboolean discovery, const char *property)
{
    for (guint i = 0; agent->props != NULL && i < agent->props->len; i++) {
        const AgentProp *p = g_ptr_array_index(agent->props, i);
        if (p->discovery == discovery && strcmp(p->key, property) == 0)
            return i;
    }
    return G_MAXUINT;
}

void
agent_prop_forget(CmAgent *agent, gboolean discovery, const char *property)
{
    guint i = prop_find(agent, discovery, property);

    if (i != G_MAXUINT)
        g_ptr_array_remove_index(agent->props, i);
}

/* The driver's value (NULL: it removed the property) replaces what it set
 * before for that property: the list holds one entry a property. */
static void
set_property(CmAgent *agent, gboolean discovery, const char *property, const char *value)
{
    size_t klen, vlen;
    AgentProp *p;

    if (property == NULL || *property == '\0')
        return;
    agent_prop_forget(agent, discovery, property);
    klen = strlen(property);
    vlen = value != NULL ? strlen(value) : 0;
    p = g_malloc(sizeof *p + klen + 1 + (value != NULL ? vlen + 1 : 0));
    p->discovery = discovery;
    memcpy(p->key, property, klen + 1);
    p->value = NULL;
    if (value != NULL) {
        p->value = p->key + klen + 1;
        memcpy(p->value, value, vlen + 1);
    }
    if (agent->props == NULL)
        agent->props = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(agent->props, p);
}

json_t *
agent_report_props(const CmAgent *agent, gboolean discovery)
{
    json_t *obj = json_object();

    if (discovery) {
        json_object_set_new(obj, "name", json_string(agent->name));
        json_object_set_new(obj, "domain", json_string(agent->domain));
    } else {
        /* What every client's hardware inventory reports at least; the
         * driver adds the rest with cm_agent_set_inventory. */
        json_object_set_new(obj, "system.name", json_string(agent->name));
        json_object_set_new(obj, "system.domain", json_string(agent->domain));
        json_object_set_new(obj, "client.version", json_string(agent->st.client_version));
        json_object_set_new(obj, "client.ksp", json_string(cm_ksp_kind_name(agent->inv_ksp)));
    }
    for (guint i = 0; agent->props != NULL && i < agent->props->len; i++) {
        const AgentProp *p = g_ptr_array_index(agent->props, i);
        if (p->discovery != discovery)
            continue;
        if (p->value == NULL)
            json_object_del(obj, p->key);
        else
            json_object_set_new(obj, p->key, json_string(p->value));
    }
    return obj;
}

void
cm_agent_set_inventory(CmAgent *agent, const char *property, const char *value)
{
    set_property(agent, FALSE, property, value);
}

void
cm_agent_set_discovery(CmAgent *agent, const char *property, const char *value)
{
    set_property(agent, TRUE, property, value);
}

CmAgent *
cm_agent_clone(const CmAgent *image, const CmAgentConfig *config, const CmRng *rng, CmTime now,
               GError **error)
{
    CmAgent *clone = NULL, *ret = NULL;
    g_autoptr(GBytes) blob = NULL;
    CmKey *key = NULL;
    GError *local = NULL;

    clone = cm_agent_new(config, rng, now, error);
    if (clone == NULL)
        goto out;
    /* What the disk carries: the SMSID, the certificate, the key storage
     * provider's blob, and the trust the original had gathered. */
    memcpy(clone->st.smsid, image->st.smsid, sizeof clone->st.smsid);
    blob = cm_ksp_seal(image->ksp, image->key, &local);
    if (blob != NULL)
        key = cm_ksp_unseal(clone->ksp, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), NULL);
    g_clear_error(&local);
    cm_cert_unref(clone->cert);
    clone->cert = NULL;
    if (key != NULL) {
        cm_key_unref(clone->key);
        clone->key = key;
        clone->cert = cm_cert_ref(image->cert);
        clone->st.cloned_key = TRUE;
    } else {
        /* The key stayed in the original's TPM: a new certificate for the
         * copied SMSID, with the clone's own new key. */
        clone->cert = agent_make_cert(clone, clone->key, now, &local);
        if (clone->cert == NULL) {
            g_set_error(error, CM_AGENT_ERROR, CM_AGENT_ERROR_INVALID,
                        "clone: cannot make a certificate: %s", local->message);
            g_error_free(local);
            goto out;
        }
    }
    clone->st.cloned = TRUE;
    if (image->trk != NULL) {
        g_clear_pointer(&clone->trk, cm_key_unref);
        g_clear_pointer(&clone->trk_hex, g_free);
        clone->trk = cm_key_ref(image->trk);
        clone->st.trk_source = image->st.trk_source;
    }
    if (image->signcert != NULL) {
        g_clear_pointer(&clone->signcert, cm_cert_unref);
        clone->signcert = cm_cert_ref(image->signcert);
        clone->st.signcert_source = image->st.signcert_source;
    }
    if (image->site_code[0] != '\0')
        memcpy(clone->site_code, image->site_code, sizeof clone->site_code);
    /* The disk carries the client as the image last upgraded it. */
    agent_str_set(&clone->st.client_version, image->st.client_version);
    ret = g_steal_pointer(&clone);
out:
    cm_agent_free(clone);
    return ret;
}
