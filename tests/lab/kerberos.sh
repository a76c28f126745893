#!/usr/bin/env bash
# tests/lab/kerberos.sh - Windows-integrated authentication in the lab as
# real Kerberos: one MIT KDC per forest on loopback (scripts/lab-kdc),
# cross-realm keys standing for forest trusts, SPNEGO between the agents
# (libcurl) and the MP and DP (GSS-API, net/gss.c).  The site is in forest
# corp.example with approval trusted-domains; realm PARTNER.EXAMPLE has a
# two-way trust with CORP.EXAMPLE, EXTRANET.EXAMPLE a one-way trust (CORP
# trusts EXTRANET), VENDOR.EXAMPLE the other way (VENDOR trusts CORP, which
# gives VENDOR's computers nothing at CORP), OTHER.EXAMPLE none.
#
#   REQ: REG-01  approval "trusted-domains": Kerberos-authenticated computers of the site's forest and of a trusted forest are approved automatically; others wait for manual approval
#   REQ: NET-03  Kerberos works only along trust: without a cross-realm key no ticket for the MP, and the site judges the realm by its forest trusts
#   REQ: NET-04  a client Kerberos cannot vouch for registers anonymously and waits for manual approval; content through the network access account
. "$(dirname "$0")/common.sh"
kdc=$top_srcdir/scripts/lab-kdc
if ! { [ -x /usr/sbin/krb5kdc ] && [ -x /usr/sbin/kadmin.local ] && command -v kinit >/dev/null; }; then
  echo "SKIP: MIT Kerberos (krb5-kdc, krb5-admin-server, krb5-user) is not installed: scripts/deps"
  exit 77
fi
kdcs=()
stop_kdcs() { for d in "${kdcs[@]}"; do "$kdc" down --dir "$d" >/dev/null 2>&1 || true; done; }
trap 'stop_kdcs; cleanup' EXIT

echo "# A site in corp.example (Enhanced HTTP, approval trusted-domains), KDCs for five realms"
lab_up kerberos ehttp trusted-domains --mps 1 --dps 1
"$top_srcdir/scripts/lab" down --dir "$lab" >/dev/null
kdcs+=("$lab/kdc")
"$kdc" lab --dir "$lab" --realm PARTNER.EXAMPLE --realm EXTRANET.EXAMPLE --realm VENDOR.EXAMPLE \
  --realm OTHER.EXAMPLE --trust CORP.EXAMPLE:PARTNER.EXAMPLE:two-way \
  --trust CORP.EXAMPLE:EXTRANET.EXAMPLE:one-way --trust VENDOR.EXAMPLE:CORP.EXAMPLE:one-way \
  >"$work/kdc.out" 2>&1 || { cat "$work/kdc.out" >&2; fail "scripts/lab-kdc lab"; }
for f in 'partner.example = two-way' 'extranet.example = one-way' 'vendor.example = none' 'other.example = none'; do
  grep -qx "$f" "$lab/site/site.conf" || fail "site.conf has no [forests] line \"$f\" matching the KDCs' trusts"
done
grep -q '^keytab = http.keytab' "$lab/mp1/mp.conf" && grep -q '^keytab = http.keytab' "$lab/dp1/dp.conf" ||
  fail "the MP or DP got no keytab"
[ "$(stat -c %a "$lab/mp1/http.keytab")" = 600 ] || fail "the MP's keytab is readable by others"
# The DP: Windows-integrated authentication only, the network access account.
sed -i 's/^allow_anonymous = true/allow_anonymous = false\nnetwork_access_accounts = svc-naa@corp.example/' "$lab/dp1/dp.conf"
export KRB5_CONFIG=$lab/kdc/krb5.conf
export KRB5RCACHEDIR=$work/rcache
mkdir -p "$KRB5RCACHEDIR"
lab_up kerberos ehttp trusted-domains
ok "five MIT KDCs on loopback, cross-realm keys for a two-way and two one-way trusts; the MP and DP restarted with their HTTP/<host> keytabs"

# Computer accounts NAME$@REALM, each with its keytab and ticket cache.
for r in CORP PARTNER EXTRANET VENDOR OTHER; do
  "$kdc" principal --dir "$lab/kdc" --realm $r.EXAMPLE --name 'LAB00000$' --keytab "$work/$r.keytab" ||
    fail "principal in $r.EXAMPLE"
  KRB5CCNAME=FILE:$work/$r.cc kinit -k -t "$work/$r.keytab" "LAB00000\$@$r.EXAMPLE" || fail "kinit in $r.EXAMPLE"
done
for r in PARTNER EXTRANET; do
  KRB5CCNAME=FILE:$work/$r.cc kvno -q HTTP/mp1.corp.example@CORP.EXAMPLE ||
    fail "a $r computer got no ticket for the MP across the trust"
done
for r in VENDOR OTHER; do
  if KRB5CCNAME=FILE:$work/$r.cc kvno -q HTTP/mp1.corp.example@CORP.EXAMPLE 2>"$work/kvno.err"; then
    fail "a computer of $r.EXAMPLE, which CORP does not trust, got a ticket for the MP"
  fi
  grep -q "krbtgt/CORP.EXAMPLE@$r.EXAMPLE" "$work/kvno.err" || fail "unexpected kvno failure: $(cat "$work/kvno.err")"
done
ok "NET-03: PARTNER (two-way) and EXTRANET (CORP trusts it) computers get tickets for HTTP/mp1.corp.example; VENDOR (trusts CORP, not trusted by it) and OTHER (no trust) computers cannot (no krbtgt/CORP.EXAMPLE@REALM)"

kagent() { # name realm domain
  KRB5CCNAME=FILE:$work/$2.cc agents_start "$1" 1 --kerberos --domain "$3"
}
client_field() { # status-name field
  local smsid
  smsid=$(json "d[0]['smsid']" <"$lab/$1.json")
  admin client "$smsid" | json "d['$2']"
}

kagent corp CORP corp.example
kagent partner PARTNER partner.example
kagent extranet EXTRANET extranet.example
for a in corp partner extranet; do
  wait_status $a "a[0]['state'] == 'active'" 30
  [ "$(client_field $a registered_by)" = kerberos ] || fail "the site did not record the $a registration as Kerberos-authenticated"
done
grep -q "HTTP/mp1.corp.example@CORP.EXAMPLE" "$lab/kdc/CORP.EXAMPLE/kdc.log" || fail "the CORP KDC issued no ticket for the MP"
ok "REG-01: computers of CORP.EXAMPLE and of the trusted PARTNER.EXAMPLE (two-way) and EXTRANET.EXAMPLE (one-way) registered with Kerberos and were approved automatically"

kagent other OTHER other.example
kagent vendor VENDOR vendor.example
# A computer of the untrusted realm claiming the site's domain: Kerberos
# cannot vouch for it either.
kagent spoof OTHER corp.example
wait_status other "a[0]['state'] == 'pending'" 30
wait_status spoof "a[0]['state'] == 'pending'" 30
wait_status vendor "a[0]['state'] == 'pending'" 30
sleep 3 # a few approval polls: still pending
for a in other spoof vendor; do
  [ "$(json "d[0]['state']" <"$lab/$a.json")" = pending ] || fail "the untrusted $a computer left pending without an administrator"
  [ "$(client_field $a registered_by)" = anonymous ] || fail "the $a registration was recorded as authenticated"
done
ok "NET-04: computers of OTHER.EXAMPLE (no trust) and VENDOR.EXAMPLE (untrusted direction) register without Kerberos and wait for manual approval, also when claiming corp.example"
admin approve "$(json "d[0]['smsid']" <"$lab/other.json")" >/dev/null || fail "approve"
wait_status other "a[0]['state'] == 'active'" 30
ok "REG-01: the administrator approves the OTHER.EXAMPLE computer, which goes active"
# A user's ticket of the site's own realm: Kerberos vouches for the sender,
# not for the computer the registration names, so it is not approved.
"$kdc" principal --dir "$lab/kdc" --realm CORP.EXAMPLE --name alice --keytab "$work/alice.keytab" ||
  fail "principal alice"
KRB5CCNAME=FILE:$work/alice.cc kinit -k -t "$work/alice.keytab" alice@CORP.EXAMPLE || fail "kinit alice"
KRB5CCNAME=FILE:$work/alice.cc agents_start user 1 --kerberos --domain corp.example
wait_status user "a[0]['state'] == 'pending'" 30
sleep 3 # a few approval polls: still pending
[ "$(json "d[0]['state']" <"$lab/user.json")" = pending ] || fail "a user's ticket approved a computer record"
ok "REG-01: a registration sent with a user's ticket (alice@CORP.EXAMPLE) instead of the computer account LAB00000\$ waits for manual approval"
for a in corp partner extranet other spoof vendor user; do agents_stop $a; done

# SPNEGO at the MP with curl: a good token, a replayed one, a forged one
# (from a rogue KDC for a realm also named CORP.EXAMPLE), garbage.
root=$lab/site/issuing-root.pem
mplist=$(mp_url "$lab/mp1" https '/sms_mp/.sms_aut?MPLIST')
code=$(KRB5CCNAME=FILE:$work/CORP.cc curl_mp "$lab/mp1" --cacert "$root" --negotiate -u : -v -o "$work/body" \
  -w '%{http_code}' "$mplist" 2>"$work/curl.err")
[ "$code" = 200 ] || fail "MPLIST with Kerberos: $code $(cat "$work/body")"
grep -qi '^< WWW-Authenticate: Negotiate ' "$work/curl.err" || fail "the MP sent no mutual authentication token"
token=$(sed -n 's/^> Authorization: Negotiate //p' "$work/curl.err" | tr -d '\r')
[ -n "$token" ] || fail "curl sent no Negotiate token"
ok "curl --negotiate: the MP accepts the ticket and answers with its mutual authentication token"
code=$(curl_mp "$lab/mp1" --cacert "$root" -H "Authorization: Negotiate $token" -o "$work/body" -w '%{http_code}' "$mplist")
[ "$code" = 403 ] && grep -q 'replay' "$work/body" || fail "a replayed token: $code $(cat "$work/body")"
ok "a replayed Negotiate token is refused (403, the replay cache)"
rogue=$work/rogue
kdcs+=("$rogue")
"$kdc" up --dir "$rogue" --realm CORP.EXAMPLE >/dev/null || fail "rogue KDC"
"$kdc" principal --dir "$rogue" --realm CORP.EXAMPLE --name HTTP/mp1.corp.example --keytab "$work/rogue-mp.keytab" &&
  "$kdc" principal --dir "$rogue" --realm CORP.EXAMPLE --name 'LAB00000$' --keytab "$work/rogue.keytab" ||
  fail "rogue principals"
KRB5_CONFIG=$rogue/krb5.conf KRB5CCNAME=FILE:$work/rogue.cc kinit -k -t "$work/rogue.keytab" 'LAB00000$@CORP.EXAMPLE' ||
  fail "rogue kinit"
code=$(KRB5_CONFIG=$rogue/krb5.conf KRB5CCNAME=FILE:$work/rogue.cc curl_mp "$lab/mp1" --cacert "$root" --negotiate -u : \
  -o "$work/body" -w '%{http_code}' "$mplist")
[ "$code" = 403 ] && grep -q '"untrusted"' "$work/body" && grep -q 'Kerberos' "$work/body" ||
  fail "a forged ticket: $code $(cat "$work/body")"
ok "a ticket forged by a rogue KDC for CORP.EXAMPLE (not the MP's key) is refused (403): $(json "d['message']" <"$work/body" | sed 's/.*: //')"
code=$(curl_mp "$lab/mp1" --cacert "$root" -H "Authorization: Negotiate $(head -c 700 /dev/urandom | base64 -w0)" \
  -o "$work/body" -w '%{http_code}' "$mplist")
[ "$code" = 403 ] || fail "a garbage token: $code $(cat "$work/body")"
code=$(curl_mp "$lab/mp1" --cacert "$root" -H 'Authorization: Negotiate %%not base64%%' -o "$work/body" -w '%{http_code}' "$mplist")
[ "$code" = 400 ] || fail "a malformed token: $code $(cat "$work/body")"
code=$(curl_mp "$lab/mp1" --cacert "$root" -o /dev/null -w '%{http_code}' "$mplist")
[ "$code" = 200 ] || fail "without Authorization: $code"
ok "a garbage token is refused (403), a malformed header (400); no Authorization stays anonymous (200)"

# The DP: the computer account and the network access account by
# Kerberos; anonymous refused.
printf 'kerberos content' >"$work/app.exe"
"$bin/cmlab-dp" add-content --dir "$lab/dp1" --id KAPP "$work/app.exe" >/dev/null || fail "add-content"
"$kdc" principal --dir "$lab/kdc" --realm CORP.EXAMPLE --name svc-naa --keytab "$work/naa.keytab" || fail "NAA principal"
KRB5CCNAME=FILE:$work/naa.cc kinit -k -t "$work/naa.keytab" svc-naa@CORP.EXAMPLE || fail "NAA kinit"
dphost=$(sed -n 's/^name = //p' "$lab/dp1/dp.conf")
dpport=$(port "$lab/dp1/dp.addr" http)
dp_get() { curl -s --max-time 10 --connect-to "$dphost:$dpport:127.0.0.1:$dpport" -o "$work/body" -w '%{http_code}' "$@" \
  "http://$dphost:$dpport/SMS_DP_SMSPKG\$/KAPP"; }
[ "$(dp_get)" = 403 ] || fail "anonymous content access on a DP that refuses it"
code=$(KRB5CCNAME=FILE:$work/naa.cc dp_get --negotiate -u :)
[ "$code" = 200 ] && grep -q app.exe "$work/body" || fail "NAA at the DP: $code $(cat "$work/body")"
code=$(KRB5CCNAME=FILE:$work/CORP.cc dp_get --negotiate -u :)
[ "$code" = 200 ] || fail "computer account at the DP: $code $(cat "$work/body")"
code=$(KRB5CCNAME=FILE:$work/OTHER.cc dp_get --negotiate -u :)
[ "$code" = 403 ] || fail "an OTHER.EXAMPLE computer reached the DP: $code"
ok "NET-04: the DP serves content to the network access account and to a CORP computer account by Kerberos; anonymous and the untrusted computer are refused"

lab_down
stop_kdcs
kdcs=()
echo "1..$checks"
