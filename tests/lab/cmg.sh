#!/usr/bin/env bash
# tests/lab/cmg.sh - the cloud management gateway over real TLS: cmlab-cmg
# gateway and connection point in a lab (scripts/lab up --cmg), internet
# agents registering through it, and the refusals the gateway owes, seen
# from outside with curl, openssl s_client and sslscan.
#
#   REQ: CMG-01                  the connection point connects out, by certificate and ID
#   REQ: CMG-02 CMG-12           PKI client certificates, bulk and client tokens
#   REQ: CMG-03 CMG-04           revoked certificates with CRL checking, the CTL
#   REQ: CMG-05 CMG-06           the URL filter, body limits per endpoint
#   REQ: CMG-08 CMG-10           connection point status reports, URL mappings (one
#                                connection point: round robin, CMG-07, is the unit tests')
#   REQ: CMG-11                  TLS 1.2 at least (openssl s_client, sslscan)
#   REQ: REG-02                  the identity the gateway established reaches the site
#                                through the connection point: with approval
#                                trusted-domains a PKI client is approved by its
#                                certificate, a bulk-token device waits for approval
. "$(dirname "$0")/common.sh"

HASH=$(printf 'cmlab cmg test content' | sha256sum | cut -d' ' -f1)
CMG=cmg.cmlab.test

echo "# CMG: a gateway and a connection point in front of an Enhanced HTTP site (approval trusted-domains)"
lab=$work/cmg
"$top_srcdir/scripts/lab" up --dir "$lab" --mode ehttp --approval trusted-domains --test-timings --cmg \
  >/dev/null || fail "lab up --cmg"
cmg_port=$(port "$lab/cmg/cmg.addr" https)
site_port=$(port "$lab/site/site.addr" https)
role=$(sed -n 's/^entries = //p' "$lab/site/cmg.conf" | cut -d';' -f1 | sed 's|.*/||')
[ -n "$role" ] || fail "no CMG entries in site/cmg.conf"
base="https://$CMG:$cmg_port"
curl_cmg() {
  curl -s --max-time 10 --connect-to "$CMG:$cmg_port:127.0.0.1:$cmg_port" --cacert "$lab/ca/ca.pem" "$@"
}
admin_api() { # path [curl args]
  local path=$1; shift
  curl -s --max-time 10 --cert "$lab/site/admin.pem" --key "$lab/site/admin.key" \
    --cacert "$lab/site/issuing-root.pem" --connect-to "site.cmlab.test:$site_port:127.0.0.1:$site_port" \
    "https://site.cmlab.test:$site_port/admin/$path" "$@"
}
cmg_fail() {
  for log in "$lab"/cmg/cmg.log "$lab"/cp1/cp.log; do
    [ -e "$log" ] && { echo "--- $log" >&2; tail -15 "$log" >&2; }
  done
  fail "$@"
}

for _ in $(seq 1 50); do grep -q "connected" "$lab/cmg/cmg.log" && break; sleep 0.2; done
grep -q "connection point .* connected" "$lab/cmg/cmg.log" || cmg_fail "the connection point did not connect"
for _ in $(seq 1 50); do [ -s "$lab/cp1/status.json" ] && break; sleep 0.2; done
json "d['up']" <"$lab/cp1/status.json" | grep -qx 1 || cmg_fail "status: $(cat "$lab/cp1/status.json")"
ok "CMG-01/08: the connection point connected out with its certificate and connection ID, status up"

# A token that lives one second, checked at the end: the gateway, like any
# JWT verifier here, allows 60 s of clock skew (CM_JWT_LEEWAY).
admin_api cmg/token -d '{"lifetime": 1}' >"$work/tok1" || cmg_fail "token call"
short=$(json "d['token']" <"$work/tok1")
short_at=$(date +%s)

# --------------------------------------------------- bulk token agents
admin_api cmg/token -d '{}' >"$work/tok" || cmg_fail "token call"
token=$(json "d['token']" <"$work/tok") || cmg_fail "no token: $(cat "$work/tok")"
jti=$(json "d['jti']" <"$work/tok")
admin deploy "All Systems" CmgApp "$HASH" --content-size 22 >/dev/null || fail "deploy"
agents_start bulk 2 --cmg --bulk-token "$token"
# The site sees the token the gateway verified (CCM-Forwarded-Auth from the
# connection point, believed by the MP on its connection point listener):
# a bulk token is no approval method (REQ REG-02), so the devices wait.
wait_status bulk "all(x['state'] == 'pending' and x['smsid'] for x in a)" 40
for s in $(json "' '.join(x['smsid'] for x in d)" <"$lab/bulk.json"); do
  view=$(admin client "$s") || cmg_fail "admin client $s"
  [ "$(echo "$view" | json "d['registered_by']")" = token ] ||
    cmg_fail "a bulk-token registration through the CMG recorded as: $view"
  [ "$(echo "$view" | json "d['state']")" = pending ] || cmg_fail "bulk device not pending: $view"
done
ok "REG-02: bulk-token devices registered through the CMG are recorded as token registrations and wait for approval (trusted-domains)"
for s in $(json "' '.join(x['smsid'] for x in d)" <"$lab/bulk.json"); do
  admin approve "$s" >/dev/null || fail "approve $s"
done
wait_status bulk "all(x['state'] == 'active' and x['policies_accepted'] >= 1 and '/CCM_Proxy_MutualAuth/' in x['mp'] for x in a)" 40
ok "CMG-12: once approved, the internet agents (bulk token, then their client token) got the signed policy through cmlab-cmg"
agents_stop bulk

# ------------------------------------------------------ PKI agents
agents_start pki 2 --cmg --pki
wait_status pki "all(x['state'] == 'active' and x['policies_accepted'] >= 1 and x['transport'] == 'https' for x in a)" 40
for s in $(json "' '.join(x['smsid'] for x in d)" <"$lab/pki.json"); do
  view=$(admin client "$s") || cmg_fail "admin client $s"
  [ "$(echo "$view" | json "d['registered_by']")" = pki ] ||
    cmg_fail "a PKI registration through the CMG recorded as: $view"
done
ok "CMG-02/REG-02: internet agents with PKI certificates registered through cmlab-cmg (mutual TLS), were approved by their certificate under trusted-domains, and got policy"
agents_stop pki

# The MP believes forwarded identities from registered connection points
# only: a client of its connection point listener with another
# certificate of the issuing root (the site's administrator) is refused,
# and no certificate at all fails the handshake.
mpc=$(sed -n 's/^https = //p' "$lab/mp1/mp-cmg.addr")
[ -n "$mpc" ] || cmg_fail "no mp-cmg.addr"
code=$(curl -s --max-time 10 -o "$work/body" -w '%{http_code}' -k --cert "$lab/site/admin.pem" \
  --key "$lab/site/admin.key" -H "CCM-Forwarded-Transport: https" -H "CCM-Forwarded-Auth: kerberos" \
  -H "CCM-Forwarded-Principal: HOST\$@CORP.EXAMPLE" "https://$mpc/sms_mp/.sms_aut?MPLIST")
[ "$code" = 403 ] || cmg_fail "the MP's connection point listener took another certificate: $code $(cat "$work/body")"
if curl -s --max-time 10 -o /dev/null -k "https://$mpc/sms_mp/.sms_aut?MPLIST"; then
  cmg_fail "the MP's connection point listener took a client without a certificate"
fi
ok "REG-02: the MP takes forwarded identities only from a connection point the site registered (403 for another site certificate, no handshake without one)"
grep -q '"requests"' "$lab/cp1/traffic.json" 2>/dev/null || true

# ------------------------------------------------------ refusals
mpl="$base/CCM_Proxy_ServerAuth/$role/SMS_MP/.sms_aut?MPLIST"
out=$(curl_cmg -H "Authorization: Bearer $token" "$mpl")
echo "$out" | grep -q "CCM_Proxy_MutualAuth/$role" || cmg_fail "MP list through the CMG: $out"
ok "CMG-10: the MP list through the gateway names the CMG entry <CMG>/CCM_Proxy_MutualAuth/<role ID>"
# A burst of 48 requests at once over the connection point's 8 polls (4 per
# worker): those that find every poll out queue at the gateway and go in
# batches ({"requests": [...]}, answers back together); every one must be
# answered.
seq 48 | xargs -P 48 -I{} curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' \
  --connect-to "$CMG:$cmg_port:127.0.0.1:$cmg_port" --cacert "$lab/ca/ca.pem" \
  -H "Authorization: Bearer $token" "$mpl" >"$work/burst"
n200=$(grep -c '^200$' "$work/burst" || true)
[ "$n200" = 48 ] || cmg_fail "a burst through the CMG: $n200 of 48 answered 200: $(sort "$work/burst" | uniq -c)"
cpl=$(port "$lab/cmg/cmg-cp.addr" https)
batches=$(curl -s --max-time 10 --cert "$lab/cp1/cp.pem" --key "$lab/cp1/cp.key" -k \
  "https://127.0.0.1:$cpl/metrics" | grep '^cm_cmg_poll_batch_size_bucket' | tr '\n' ' ')
ok "cmg: 48 concurrent requests over 8 polls all answered (poll batches: ${batches:-none})"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token" \
  "$base/CCM_Proxy_ServerAuth/$role/CCM_Other/anything")
[ "$code" = 404 ] || cmg_fail "a path outside the mappings answered $code: $(cat "$work/body")"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token" \
  "$base/CCM_Proxy_ServerAuth/999/SMS_MP/.sms_aut?MPLIST")
[ "$code" = 404 ] || cmg_fail "an unpublished role ID answered $code: $(cat "$work/body")"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token" \
  "$base/ccm_system/request/register" -d '{}')
[ "$code" = 404 ] || cmg_fail "an MP path outside the folders answered $code: $(cat "$work/body")"
ok "CMG-05: paths outside the published mappings are refused (404)"
head -c 70000 /dev/zero | tr '\0' 'x' >"$work/big"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token" \
  --data-binary @"$work/big" "$base/CCM_Proxy_ServerAuth/$role/CCM_System/request/register")
[ "$code" = 413 ] || cmg_fail "a 70 KB registration answered $code: $(cat "$work/body")"
ok "CMG-06: a body over CCM_System's 64 KiB limit is refused (413)"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' "$mpl")
[ "$code" = 403 ] || cmg_fail "no token answered $code"
ok "CMG-02: a request with neither certificate nor token is refused ($code)"

# A certificate from the second CA: uploaded to the gateway, outside the CTL.
"$bin/cmlab-ca" issue --dir "$lab/ca2" --client --cn outsider.lab --out "$work/outsider" >/dev/null
mal="$base/CCM_Proxy_MutualAuth/$role/SMS_MP/.sms_aut?MPLIST"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' --cert "$work/outsider.pem" --key "$work/outsider.key" "$mal")
[ "$code" = 403 ] && grep -qi "untrusted" "$work/body" || cmg_fail "a root outside the CTL answered $code: $(cat "$work/body")"
ok "CMG-04: a client certificate from a root outside the CTL is refused ($code $(json "d['reason']" <"$work/body"))"
"$bin/cmlab-ca" issue --dir "$lab/ca" --client --cn good.lab --out "$work/good" >"$work/issued"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' --cert "$work/good.pem" --key "$work/good.key" "$mal")
[ "$code" = 200 ] || cmg_fail "a good certificate answered $code: $(cat "$work/body")"
serial=$(sed -n 's/.*(serial \([0-9]*\)).*/\1/p' "$work/issued")
"$bin/cmlab-ca" revoke --dir "$lab/ca" --serial "$serial" >/dev/null || fail "revoke"
sleep 2.5 # the gateway fetches the CRL again every second in --test-timings
code=$(curl_cmg -o "$work/body" -w '%{http_code}' --cert "$work/good.pem" --key "$work/good.key" "$mal")
[ "$code" = 403 ] && grep -q revoked "$work/body" || cmg_fail "a revoked certificate answered $code: $(cat "$work/body")"
ok "CMG-03: with CRL checking on, the same certificate once revoked is refused ($code revoked)"

# Tokens: an expired one, a blocked one.
left=$((short_at + 63 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
code=$(curl_cmg -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $short" "$mpl")
[ "$code" = 403 ] || cmg_fail "an expired token answered $code: $(cat "$work/body")"
ok "CMG-12: an expired bulk token is refused ($code $(json "d['reason']" <"$work/body"))"
code=$(admin_api cmg/token -o "$work/body" -w '%{http_code}' -d '{"lifetime": 864000}')
[ "$code" = 403 ] || cmg_fail "a 10-day token answered $code: $(cat "$work/body")"
ok "CMG-12: a bulk token of more than 7 days is refused by the site ($code)"
admin_api cmg/block -d "{\"jti\": \"$jti\"}" | grep -q blocked || cmg_fail "block call"
sleep 2.5 # the gateway reads the blocked IDs every second in --test-timings
code=$(curl_cmg -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token" "$mpl")
[ "$code" = 403 ] && grep -q blocked "$work/body" || cmg_fail "a blocked token answered $code: $(cat "$work/body")"
ok "CMG-12: a blocked bulk token is refused ($code blocked)"

# TLS: 1.1 refused by the handshake, and an outside scanner agrees.
if echo | "$OPENSSL" s_client -connect "127.0.0.1:$cmg_port" -tls1_1 -servername "$CMG" \
  >"$work/s11" 2>&1; then
  cmg_fail "TLS 1.1 handshake accepted: $(tail -5 "$work/s11")"
fi
ok "CMG-11: openssl s_client -tls1_1 is refused by the gateway"
if command -v sslscan >/dev/null; then
  sslscan --no-colour --no-fallback --no-renegotiation --no-compression --no-heartbleed \
    --no-groups --no-ciphersuites --no-check-certificate "127.0.0.1:$cmg_port" >"$work/scan" 2>&1 ||
    cmg_fail "sslscan failed: $(tail -5 "$work/scan")"
  for p in SSLv2 SSLv3 TLSv1.0 TLSv1.1; do
    grep -Eq "^$p +disabled" "$work/scan" || cmg_fail "sslscan: $p not disabled: $(grep -E '^(SSL|TLS)v' "$work/scan")"
  done
  grep -Eq "^TLSv1.2 +enabled" "$work/scan" || cmg_fail "sslscan: TLS 1.2 not enabled"
  ok "CMG-11: sslscan finds no protocol below TLS 1.2 on the gateway ($(grep -E '^TLSv1.[23] +enabled' "$work/scan" | awk '{print $1}' | tr '\n' ' '))"
else
  echo "ok - # SKIP sslscan not installed (scripts/deps installs it)"
fi

"$top_srcdir/scripts/lab" down --dir "$lab" >/dev/null
if grep -l "Sanitizer\|runtime error" "$lab"/site/site.log "$lab"/mp*/mp.log "$lab"/cmg/cmg.log \
  "$lab"/cp1/cp.log "$lab"/*.log 2>/dev/null; then
  fail "a daemon reported a sanitizer error"
fi
grep -q "forwarded=" "$lab/cmg/cmg.log" || fail "the gateway did not stop cleanly"
ok "cmg: the gateway, connection point and site stopped cleanly on SIGTERM"
lab=
echo "# $checks checks passed"
