#!/usr/bin/env bash
# tests/lab/lab.sh - the daemons over real HTTP, HTTPS and Enhanced HTTP on
# loopback, with real agents, curl and openssl s_client as outside clients.
#
# Each part brings a lab up in a temporary folder with ephemeral ports
# (scripts/lab up --test-timings), runs, and brings it down; everything is
# bounded in time.  A part prints "ok - ..." per check and the script exits
# non-zero at the first failed check, with the daemons' logs.
#
#   REQ: TRUST-01 TRUST-07 TRUST-10 MSG-05   the three transports
#   REQ: REG-01 REG-02 REG-03                registration, approval, blocking
#   REQ: MSG-01 MSG-02 MSG-03 POL-01 POL-02  signed requests, encrypted inventory, policy
#   REQ: TRUST-08                            policies signed by the site
. "$(dirname "$0")/common.sh"

HASH=$(printf 'cmlab lab test content' | sha256sum | cut -d' ' -f1)

# ------------------------------------------------------ Enhanced HTTP
echo "# Enhanced HTTP, manual approval"
lab_up ehttp ehttp manual
admin set encrypt=true >/dev/null || fail "admin set encrypt=true"
sleep 1.5 # the MPs pick the setting up within their refresh
agents_start agent 1 -i "os.caption=Windows 11"
wait_status agent "a[0]['state'] == 'pending'" 20
smsid=$(json "d[0]['smsid']" <"$lab/agent.json")
[ "$(json "d[0]['transport']" <"$lab/agent.json")" = ehttp ] || fail "agent not on Enhanced HTTP"
admin clients pending | grep -q "$smsid" || fail "site does not list $smsid as pending"
ok "ehttp: registration waits for manual approval"
admin approve "$smsid" >/dev/null || fail "approve"
wait_status agent "a[0]['state'] == 'active'" 20
ok "ehttp: approved by the administrator, the agent goes active"
admin deploy "All Systems" LabApp "$HASH" --content-size 22 >/dev/null || fail "deploy"
wait_status agent "a[0]['policies_accepted'] >= 1 and a[0]['inventories_sent'] >= 1" 20
ok "ehttp: the agent got and verified the signed policy"
view=$(admin client "$smsid")
[ "$(echo "$view" | json "d['inventory'].get('os.caption')")" = "Windows 11" ] ||
  fail "inventory not at the site: $view"
ok "ehttp: the encrypted inventory reached the site, decrypted"

# Outside clients against an Enhanced HTTP MP.
mp=$lab/mp1
root=$lab/site/issuing-root.pem
out=$(curl_mp "$mp" --cacert "$root" "$(mp_url "$mp" https '/sms_mp/.sms_aut?MPLIST')")
echo "$out" | grep -q '"mp1.corp.example"' || fail "curl location: $out"
ok "curl: anonymous location reply over Enhanced HTTP"
code=$(curl_mp "$mp" -o /dev/null -w '%{http_code}' "$(mp_url "$mp" http '/sms_mp/.sms_aut?MPLIST')")
[ "$code" = 403 ] || fail "HTTP in Enhanced HTTP mode answered $code"
ok "curl: plain HTTP refused in Enhanced HTTP mode ($code)"
code=$(curl_mp "$mp" --cacert "$root" -o "$work/body" -w '%{http_code}' -X POST -d '{}' \
  -H "CCM-ClientID: $smsid" "$(mp_url "$mp" https /ccm_system/request/policyassignments)")
[ "$code" = 403 ] || fail "unsigned request answered $code: $(cat "$work/body")"
ok "curl: a signed endpoint without a signature is refused ($code $(json "d['reason']" <"$work/body"))"
code=$(curl_mp "$mp" --cacert "$root" -o "$work/body" -w '%{http_code}' -X POST -d '{}' \
  -H "CCM-ClientID: $smsid" -H "CCM-Signature: sha256 $(head -c 64 /dev/urandom | base64 -w0)" \
  "$(mp_url "$mp" https /ccm_system/request/policyassignments)")
[ "$code" = 403 ] && grep -q signature "$work/body" || fail "bad signature answered $code: $(cat "$work/body")"
ok "curl: a bad signature is refused ($code $(json "d['reason']" <"$work/body"))"
head -c 300000 /dev/zero | tr '\0' 'x' >"$work/big"
code=$(curl_mp "$mp" --cacert "$root" -o "$work/body" -w '%{http_code}' -X POST --data-binary @"$work/big" \
  "$(mp_url "$mp" https /ccm_system_windowsauth/request/register)")
[ "$code" = 413 ] || fail "oversized body answered $code"
ok "curl: an oversized body is refused (413)"
code=$(curl_mp "$mp" --cacert "$root" -o "$work/body" -w '%{http_code}' -X POST -d '{"component": ' \
  "$(mp_url "$mp" https /ccm_incoming/status)")
[ "$code" = 400 ] || fail "malformed JSON answered $code: $(cat "$work/body")"
ok "curl: malformed JSON is refused (400 $(json "d['reason']" <"$work/body"))"
code=$(curl_mp "$mp" --cacert "$root" -o "$work/body" -w '%{http_code}' "$(mp_url "$mp" https /no/such/endpoint)")
[ "$code" = 404 ] || fail "unknown endpoint answered $code"
ok "curl: an unknown endpoint is 404"
before=$(admin site | json "d['clients']['approved']")
code=$(curl_mp "$mp" --cacert "$root" -o /dev/null -w '%{http_code}' -X POST -d '{"smsid": "x"}' \
  -H "CCM-ClientID: GUID:00000000-0000-0000-0000-000000000001" -H "CCM-Signature: sha256 AAAA" \
  "$(mp_url "$mp" https /ccm_system_windowsauth/request/register)")
after=$(admin site | json "d['clients']['approved']")
[ "$code" != 200 ] && [ "$before" = "$after" ] || fail "a bad registration changed the site ($code)"
ok "a refused registration changes nothing ($code; approved clients $before -> $after)"
# A client that sends half a request line and stalls: the MP closes the
# connection after its read timeout (2 s in --test-timings).
t0=$(date +%s%N)
python3 - "$(port "$mp/mp.addr" http)" <<'EOF' || fail "slow client not cut off"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /sms_mp/.sms_aut?MPL")
t = time.time()
data = s.recv(100)
sys.exit(0 if data == b"" and time.time() - t < 6 else 1)
EOF
ok "a client that sends headers too slowly is cut off after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
if "$OPENSSL" s_client -connect "127.0.0.1:$(port "$mp/mp.addr" https)" -tls1_1 </dev/null >"$work/s" 2>&1 &&
   grep -q "BEGIN CERTIFICATE\|Cipher is [A-Z]" "$work/s"; then
  fail "TLS 1.1 handshake accepted: $(head -5 "$work/s")"
fi
ok "openssl s_client: TLS 1.1 refused by the MP"
if "$OPENSSL" s_client -connect "127.0.0.1:$(port "$lab/site/site.addr" https)" -tls1_2 \
    -CAfile "$root" </dev/null >"$work/s" 2>&1 && ! grep -qi "alert\|error" "$work/s"; then
  fail "site accepted a TLS client without a certificate: $(tail -5 "$work/s")"
fi
ok "openssl s_client: the site demands a client certificate"
code=$(curl -s --max-time 10 -o "$work/body" -w '%{http_code}' --cacert "$root" \
  --cert "$lab/mp1/site-client.pem" --key "$lab/mp1/site-client.key" \
  --connect-to "site.cmlab.test:$(port "$lab/site/site.addr" https):127.0.0.1:$(port "$lab/site/site.addr" https)" \
  "https://site.cmlab.test:$(port "$lab/site/site.addr" https)/admin/site")
[ "$code" = 403 ] || fail "an MP's certificate reached the administrative API ($code)"
ok "the administrative API refuses an MP's certificate (403)"

metrics=$(curl_mp "$mp" "$(mp_url "$mp" http /metrics)")
echo "$metrics" | grep -q '^cm_http_requests_total{endpoint="register",outcome="ok"}' ||
  fail "MP /metrics has no registration count: $(echo "$metrics" | head -5)"
health=$(curl_mp "$mp" "$(mp_url "$mp" http /health)")
[ "$health" = ok ] || fail "MP /health: $health"
site_metrics=$(curl -s --max-time 10 --cacert "$root" --cert "$lab/site/admin.pem" --key "$lab/site/admin.key" \
  --connect-to "site.cmlab.test:$(port "$lab/site/site.addr" https):127.0.0.1:$(port "$lab/site/site.addr" https)" \
  "https://site.cmlab.test:$(port "$lab/site/site.addr" https)/metrics")
echo "$site_metrics" | grep -q '^cm_site_registrations_total{result="ok"} [1-9]' ||
  fail "site /metrics has no registrations by result: $(echo "$site_metrics" | grep registr | head -3)"
ok "/metrics (Prometheus text) counts requests by endpoint and outcome, and registrations by result; /health answers"

admin block "$smsid" >/dev/null || fail "block"
wait_status agent "a[0]['state'] == 'blocked'" 20
ok "ehttp: blocked by the administrator, the agent is refused and stops"
for d in "$lab"/mp*; do
  code=$(curl_mp "$d" --cacert "$root" -o "$work/body" -w '%{http_code}' -X POST -d '{}' \
    -H "CCM-ClientID: $smsid" -H "CCM-Signature: sha256 AAAA" \
    "$(mp_url "$d" https /ccm_system/request/policyassignments)")
  [ "$code" = 403 ] && [ "$(json "d['reason']" <"$work/body")" = blocked ] ||
    fail "blocked client answered $code at $d: $(cat "$work/body")"
done
ok "ehttp: a blocked client is refused at every MP"
agents_stop agent
lab_down

# --------------------------------------------------------- HTTPS (PKI)
echo "# HTTPS with PKI client certificates, approval of trusted clients"
lab_up pki pki trusted-domains
agents_start agent 3 --pki
wait_status agent "all(x['state'] == 'active' and x['transport'] == 'https' for x in a)" 30
ok "pki: three agents with PKI certificates registered over HTTPS and were approved"
smsid=$(json "d[0]['smsid']" <"$lab/agent.json")
[ "$(admin client "$smsid" | json "d['registered_by']")" = pki ] || fail "not registered by PKI"
ok "pki: the site recorded PKI as what authenticated the registration"
mp=$lab/mp1
root=$lab/ca/ca.pem
out=$(curl_mp "$mp" --cacert "$root" "$(mp_url "$mp" https '/sms_mp/.sms_aut?MPLIST')")
echo "$out" | grep -q '"mp1.corp.example"' || fail "curl location over PKI HTTPS: $out"
ok "curl: anonymous location over HTTPS with the enterprise CA's server certificate"
"$bin/cmlab-ca" init --dir "$work/rogue-ca" >/dev/null
"$bin/cmlab-ca" issue --dir "$work/rogue-ca" --client --cn rogue --out "$work/rogue" >/dev/null
code=$(curl_mp "$mp" --cacert "$root" --cert "$work/rogue.pem" --key "$work/rogue.key" -o /dev/null \
  -w '%{http_code}' "$(mp_url "$mp" https '/sms_mp/.sms_aut?MPLIST')" || true)
[ "$code" != 200 ] || fail "a client certificate from an unknown CA was accepted"
ok "pki: a client certificate from another CA is refused (${code:-handshake failed})"
agents_stop agent
lab_down

# ------------------------------------------------------ HTTP or HTTPS
echo "# HTTP or HTTPS (deprecated), automatic approval"
lab_up http http all
agents_start agent 2
wait_status agent "all(x['state'] == 'active' and x['inventories_sent'] >= 1 for x in a)" 30
ok "http: agents registered and sent inventory over plain HTTP"
out=$(curl_mp "$lab/mp1" "$(mp_url "$lab/mp1" http '/sms_mp/.sms_aut?MPLIST')")
echo "$out" | grep -q '"mp1.corp.example"' || fail "curl location over HTTP: $out"
ok "curl: anonymous location reply over plain HTTP"
agents_stop agent
lab_down

echo "lab: $checks checks passed"
