/* vault.c - what the site keeps for its CMG (REQ CMG-09): the storage
 * account key, rotated every 180 days, and the Entra ID app secrets,
 * renewable, all sealed under the site's master key.
 *
 * The plaintext form (JSON) lives only in memory between cm_cmg_vault_open
 * and the seal; secrets are wiped from memory when replaced or freed. */
#include "internal.h"

#include <string.h>

#include <openssl/crypto.h>

#define VAULT_AAD      "cmlab-cmg-vault-v1"
#define VAULT_JSON_MAX (16 * 1024)
#define KEY_LEN        32

typedef struct {
    char *secret;
    CmTime expires;
    CmTime renewed;
} AppSecret;

struct CmCmgVault {
    guint8 key[KEY_LEN];
    guint8 previous[KEY_LEN];
    gboolean has_previous;
    CmTime created;
    AppSecret apps[2]; /* server, client */
};

static const char *const app_names[] = {"server", "client"};

static int
app_index(const char *app)
{
    for (int i = 0; app != NULL && i < (int)G_N_ELEMENTS(app_names); i++)
        if (strcmp(app, app_names[i]) == 0)
            return i;
    return -1;
}

static void
secret_wipe(char **s)
{
    if (*s != NULL) {
        explicit_bzero(*s, strlen(*s));
        g_free(*s);
        *s = NULL;
    }
}

CmCmgVault *
cm_cmg_vault_new(CmRng *rng, CmTime now)
{
    CmCmgVault *v = g_new0(CmCmgVault, 1);

    cm_rng_bytes(rng, v->key, KEY_LEN);
    v->created = now;
    return v;
}

void
cm_cmg_vault_free(CmCmgVault *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < G_N_ELEMENTS(v->apps); i++)
        secret_wipe(&v->apps[i].secret);
    explicit_bzero(v, sizeof *v);
    g_free(v);
}

const guint8 *
cm_cmg_vault_storage_key(const CmCmgVault *v, CmTime *created)
{
    if (created != NULL)
        *created = v->created;
    return v->key;
}

gboolean
cm_cmg_vault_storage_key_valid(const CmCmgVault *v, const guint8 key[32])
{
    return CRYPTO_memcmp(key, v->key, KEY_LEN) == 0 ||
           (v->has_previous && CRYPTO_memcmp(key, v->previous, KEY_LEN) == 0);
}

CmTime
cm_cmg_vault_next_rotation(const CmCmgVault *v)
{
    return v->created + CM_CMG_STORAGE_KEY_ROTATION;
}

gboolean
cm_cmg_vault_tick(CmCmgVault *v, CmRng *rng, CmTime now)
{
    if (now < cm_cmg_vault_next_rotation(v))
        return FALSE;
    memcpy(v->previous, v->key, KEY_LEN);
    v->has_previous = TRUE;
    cm_rng_bytes(rng, v->key, KEY_LEN);
    v->created = now;
    return TRUE;
}

gboolean
cm_cmg_vault_set_app_secret(CmCmgVault *v, const char *app, const char *secret, CmTime expires,
                            CmTime now, GError **error)
{
    int i = app_index(app);
    size_t len = secret ? strnlen(secret, CM_CMG_APP_SECRET_MAX + 1) : 0;

    if (i < 0) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "app must be \"server\" or \"client\" (the CMG's Entra ID apps)");
        return FALSE;
    }
    if (len == 0 || len > CM_CMG_APP_SECRET_MAX || !g_utf8_validate(secret, (gssize)len, NULL)) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the %s app's secret must be 1 to %d bytes of UTF-8", app_names[i],
                    CM_CMG_APP_SECRET_MAX);
        return FALSE;
    }
    if (expires <= now) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "the %s app's new secret has already expired", app_names[i]);
        return FALSE;
    }
    secret_wipe(&v->apps[i].secret);
    v->apps[i].secret = g_strdup(secret);
    v->apps[i].expires = expires;
    v->apps[i].renewed = now;
    return TRUE;
}

const char *
cm_cmg_vault_app_secret(const CmCmgVault *v, const char *app, CmTime now, GError **error)
{
    int i = app_index(app);

    if (i < 0 || v->apps[i].secret == NULL) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                    "no secret stored for the %s app", app ? app : "(none)");
        return NULL;
    }
    if (now >= v->apps[i].expires) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_REFUSED,
                    "the %s app's secret expired; renew it in Entra ID and store the new one",
                    app_names[i]);
        return NULL;
    }
    return v->apps[i].secret;
}

static json_t *
vault_to_json(const CmCmgVault *v)
{
    g_autofree char *key = cm_enc_b64(v->key, KEY_LEN);
    g_autofree char *prev = v->has_previous ? cm_enc_b64(v->previous, KEY_LEN) : g_strdup("");
    json_t *apps = json_object();
    json_t *obj;

    for (size_t i = 0; i < G_N_ELEMENTS(app_names); i++)
        if (v->apps[i].secret != NULL)
            json_object_set_new(apps, app_names[i],
                                json_pack("{s:s, s:I, s:I}", "secret", v->apps[i].secret,
                                          "expires", (json_int_t)v->apps[i].expires, "renewed",
                                          (json_int_t)v->apps[i].renewed));
    obj = json_pack("{s:s, s:s, s:I, s:o}", "storage_key", key, "previous_key", prev,
                    "storage_created", (json_int_t)v->created, "apps", apps);
    explicit_bzero(key, strlen(key));
    explicit_bzero(prev, strlen(prev));
    return obj;
}

static gboolean
key_field(const json_t *obj, const char *name, gboolean optional, guint8 out[KEY_LEN],
          gboolean *present, GError **error)
{
    const char *s = cm_json_str(obj, name, 64, error);
    g_autoptr(GBytes) raw = NULL;

    if (s == NULL)
        return FALSE;
    if (*s == '\0' && optional) {
        *present = FALSE;
        return TRUE;
    }
    raw = cm_enc_b64_decode(s, strlen(s), KEY_LEN, error);
    if (raw == NULL)
        return FALSE;
    if (g_bytes_get_size(raw) != KEY_LEN) {
        g_set_error(error, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "%s is not a 32-byte key", name);
        return FALSE;
    }
    memcpy(out, g_bytes_get_data(raw, NULL), KEY_LEN);
    *present = TRUE;
    return TRUE;
}

CmCmgVault *
cm_cmg_vault_from_json(const char *json, size_t len, GError **error)
{
    g_autoptr(json_t) obj = NULL;
    g_autoptr(CmCmgVault) v = g_new0(CmCmgVault, 1);
    const json_t *apps;
    GError *e = NULL;
    gboolean present;
    const char *name;
    json_t *val;
    gint64 created;

    obj = cm_json_parse(json, len, VAULT_JSON_MAX, &e);
    if (obj == NULL || !key_field(obj, "storage_key", FALSE, v->key, &present, &e) ||
        !key_field(obj, "previous_key", TRUE, v->previous, &v->has_previous, &e) ||
        !cm_json_int(obj, "storage_created", 0, G_MAXINT64 - CM_CMG_STORAGE_KEY_ROTATION,
                     &created, &e) ||
        (apps = cm_json_object(obj, "apps", &e)) == NULL)
        goto fail;
    if (json_object_size(obj) != 4) {
        g_set_error(&e, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "unknown fields");
        goto fail;
    }
    v->created = created;
    json_object_foreach((json_t *)apps, name, val)
    {
        int i = app_index(name);
        const char *secret;
        gint64 expires, renewed;
        if (i < 0 || !json_is_object(val) || json_object_size(val) != 3) {
            g_set_error(&e, CM_CMG_ERROR, CM_CMG_ERROR_INVALID,
                        "apps: expected \"server\" and \"client\" objects of secret, expires, "
                        "renewed");
            goto fail;
        }
        if ((secret = cm_json_str(val, "secret", CM_CMG_APP_SECRET_MAX, &e)) == NULL ||
            !cm_json_int(val, "expires", 0, G_MAXINT64, &expires, &e) ||
            !cm_json_int(val, "renewed", 0, G_MAXINT64, &renewed, &e))
            goto fail;
        if (*secret == '\0') {
            g_set_error(&e, CM_CMG_ERROR, CM_CMG_ERROR_INVALID, "apps: an empty secret");
            goto fail;
        }
        v->apps[i].secret = g_strdup(secret);
        v->apps[i].expires = expires;
        v->apps[i].renewed = renewed;
    }
    return g_steal_pointer(&v);
fail:
    g_propagate_prefixed_error(error, e, "CMG vault: ");
    return NULL;
}

GBytes *
cm_cmg_vault_seal(const CmCmgVault *v, const guint8 master_key[32], GError **error)
{
    g_autoptr(json_t) obj = vault_to_json(v);
    char *text = cm_json_dump(obj);
    GBytes *blob = cm_aead_seal(master_key, text, strlen(text), VAULT_AAD, error);

    explicit_bzero(text, strlen(text));
    g_free(text);
    return blob;
}

CmCmgVault *
cm_cmg_vault_open(const guint8 master_key[32], const guint8 *blob, size_t len, GError **error)
{
    g_autoptr(GBytes) plain = cm_aead_open(master_key, blob, len, VAULT_AAD, error);
    CmCmgVault *v;
    gsize n;
    const char *text;

    if (plain == NULL)
        return NULL;
    text = g_bytes_get_data(plain, &n);
    v = cm_cmg_vault_from_json(text, n, error);
    explicit_bzero((void *)text, n);
    return v;
}
