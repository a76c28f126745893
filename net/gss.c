/* gss.c - SPNEGO/Kerberos acceptance for the HTTP server (RFC 4559), the
 * lab's Windows-integrated authentication.
 *
 * A listener configured with a keytab accepts "Authorization: Negotiate
 * <base64 token>" with gss_accept_sec_context: the token carries a Kerberos
 * service ticket for the server's HTTP/<host> principal (its key is in the
 * keytab), which only the client's KDC, or its KDC through a cross-realm
 * key standing for a forest trust, could have issued.  The authenticated
 * client principal ("LAB00001$@CORP.EXAMPLE", a computer account) becomes
 * req->peer: CM_AUTH_KERBEROS with the realm as a DNS domain
 * ("corp.example"); the site then decides whether it trusts that domain's
 * forest (REQ NET-03, REG-01).
 *
 * One round trip per request, as HTTP SPNEGO with Kerberos does: the
 * context lives for the one call and is deleted before the answer; a token
 * that would need another leg (NTLM, or a SPNEGO mechanism list without an
 * optimistic Kerberos token) is refused.  Replays are caught by the Kerberos
 * library's replay cache (KRB5RCACHEDIR / KRB5RCACHETYPE choose where).
 *
 * The acceptor credential is acquired once from the keytab (nothing in
 * /etc is consulted for it) and shared by the workers; MIT's GSS-API
 * locks what it shares. */
#include "internal.h"
#include "gss.h"

#include <string.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

/* A Kerberos AP-REQ in SPNEGO is a few KiB (a PAC makes Windows' larger);
 * the server's header bound (8 KiB by default) is the real limit. */
#define TOKEN_B64_MAX (48 * 1024)

struct CmNetGss {
    gss_cred_id_t cred;
    char *keytab;
};

/* The GSS-API's own words for major and minor status. */
static char *
gss_message(OM_uint32 major, OM_uint32 minor)
{
    GString *s = g_string_new(NULL);
    OM_uint32 ctx = 0, maj, min;
    gss_buffer_desc buf;

    do {
        maj = gss_display_status(&min, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &buf);
        if (GSS_ERROR(maj))
            break;
        g_string_append_printf(s, "%s%.*s", s->len ? "; " : "", (int)buf.length,
                               (const char *)buf.value);
        gss_release_buffer(&min, &buf);
    } while (ctx != 0);
    ctx = 0;
    if (minor != 0) {
        do {
            maj = gss_display_status(&min, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &buf);
            if (GSS_ERROR(maj))
                break;
            g_string_append_printf(s, ": %.*s", (int)buf.length, (const char *)buf.value);
            gss_release_buffer(&min, &buf);
        } while (ctx != 0);
    }
    return g_string_free(s, FALSE);
}

CmNetGss *
cm_net_gss_new(const char *keytab, GError **error)
{
    CmNetGss *g = NULL;
    gss_key_value_element_desc el = {.key = "keytab"};
    gss_key_value_set_desc store = {.count = 1, .elements = &el};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 major, minor;
    g_autofree char *abs = NULL;

    if (keytab == NULL || *keytab == '\0') {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "no keytab for Kerberos");
        return NULL;
    }
    if (!g_file_test(keytab, G_FILE_TEST_IS_REGULAR)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG,
                    "keytab %s: no such file (export the HTTP/<host> principal with kadmin "
                    "ktadd, e.g. scripts/lab-kdc principal)",
                    keytab);
        return NULL;
    }
    abs = g_canonicalize_filename(keytab, NULL);
    el.value = abs;
    /* Any principal in the keytab may be the target: the MP's HTTP/<host>. */
    major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                  GSS_C_ACCEPT, &store, &cred, NULL, NULL);
    if (GSS_ERROR(major)) {
        g_autofree char *msg = gss_message(major, minor);
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_CONFIG, "keytab %s: %s", keytab, msg);
        return NULL;
    }
    g = g_new0(CmNetGss, 1);
    g->cred = cred;
    g->keytab = g_steal_pointer(&abs);
    return g;
}

void
cm_net_gss_free(CmNetGss *g)
{
    OM_uint32 minor;

    if (g == NULL)
        return;
    if (g->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &g->cred);
    g_free(g->keytab);
    g_free(g);
}

/* Strict base64 (the alphabet, padding only at the end, whole quads):
 * g_base64_decode would skip anything else silently. */
static gboolean
base64_strict(const char *s, size_t len)
{
    size_t pad = 0;

    if (len == 0 || len % 4 != 0)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=') {
            if (++pad > 2)
                return FALSE;
        } else if (pad > 0 || !(g_ascii_isalnum(c) || c == '+' || c == '/')) {
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
cm_net_gss_accept(CmNetGss *g, const char *authorization, CmPeer *peer, char **reply,
                  GError **error)
{
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER, name = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    OM_uint32 major, minor, flags = 0;
    const char *b64;
    char *at;
    g_autofree char *full = NULL;
    size_t len;
    guchar *token = NULL;
    gsize token_len = 0;
    gboolean ok = FALSE;

    *reply = NULL;
    /* "Negotiate" is case-insensitive (RFC 7235 auth-scheme), one space
     * or more before the token. */
    if (authorization == NULL || g_ascii_strncasecmp(authorization, "Negotiate", 9) != 0 ||
        (authorization[9] != ' ' && authorization[9] != '\t')) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_PROTOCOL,
                    "Authorization: expected \"Negotiate <base64 token>\"");
        goto out;
    }
    for (b64 = authorization + 9; *b64 == ' ' || *b64 == '\t'; b64++)
        ;
    len = strlen(b64);
    while (len > 0 && (b64[len - 1] == ' ' || b64[len - 1] == '\t'))
        len--;
    if (len > TOKEN_B64_MAX || !base64_strict(b64, len)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_PROTOCOL,
                    "Authorization: the Negotiate token is not base64 of at most %d characters",
                    TOKEN_B64_MAX);
        goto out;
    }
    {
        g_autofree char *copy = g_strndup(b64, len);
        token = g_base64_decode(copy, &token_len);
    }
    in.value = token;
    in.length = token_len;
    major = gss_accept_sec_context(&minor, &ctx, g->cred, &in, GSS_C_NO_CHANNEL_BINDINGS, &src,
                                   &mech, &out, &flags, NULL, NULL);
    if (GSS_ERROR(major)) {
        g_autofree char *msg = gss_message(major, minor);
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED, "Kerberos authentication refused: %s",
                    msg);
        goto out;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED,
                    "Kerberos authentication refused: the token needs another round trip "
                    "(only Kerberos in one leg is accepted, not NTLM)");
        goto out;
    }
    if (mech == GSS_C_NO_OID || !gss_oid_equal(mech, gss_mech_krb5)) {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED,
                    "Kerberos authentication refused: the negotiated mechanism is not Kerberos");
        goto out;
    }
    major = gss_display_name(&minor, src, &name, NULL);
    if (GSS_ERROR(major)) {
        g_autofree char *msg = gss_message(major, minor);
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED, "Kerberos client name: %s", msg);
        goto out;
    }
    /* "NAME$@REALM": the realm is the domain (Active Directory's DNS
     * domain in upper case).  The last '@' starts the realm (an enterprise
     * name may hold another). */
    full = g_strndup(name.value, name.length);
    at = strrchr(full, '@');
    if (strlen(full) != name.length || name.length > CM_NAME_MAX || at == NULL || at == full ||
        at[1] == '\0') {
        g_set_error(error, CM_NET_ERROR, CM_NET_ERROR_FAILED,
                    "Kerberos client name \"%.128s\": expected NAME@REALM of at most %d characters",
                    full, CM_NAME_MAX);
        goto out;
    }
    g_strlcpy(peer->principal, full, sizeof peer->principal);
    {
        g_autofree char *realm = g_ascii_strdown(at + 1, -1);
        g_strlcpy(peer->domain, realm, sizeof peer->domain);
    }
    peer->kind = CM_AUTH_KERBEROS;
    peer->client_cert = NULL;
    /* The mutual-authentication token (AP-REP), for WWW-Authenticate. */
    if (out.length > 0)
        *reply = g_base64_encode(out.value, out.length);
    ok = TRUE;
out:
    gss_release_buffer(&minor, &out);
    gss_release_buffer(&minor, &name);
    if (src != GSS_C_NO_NAME)
        gss_release_name(&minor, &src);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    if (token != NULL) {
        memset(token, 0, token_len);
        g_free(token);
    }
    return ok;
}
