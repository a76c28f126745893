#!/usr/bin/env bash
# tests/lab/dp.sh - distribution points in the lab: content placed on a
# DP, deployed with its content hash in the signed policy, downloaded by
# real agents that check every byte against that hash; tampered content
# refused; the DP's authentication per mode.
#
#   REQ: DP-04   the client checks content against the hash of its signed policy
#   REQ: DP-01   anonymous on an HTTP DP when allowed; PKI on an HTTPS DP, anonymous refused
. "$(dirname "$0")/common.sh"

dp_url() { # dp-dir scheme path
  local host
  host=$(sed -n 's/^name = //p' "$1/dp.conf")
  echo "$2://$host:$(port "$1/dp.addr" "$2")$3"
}
curl_dp() { # dp-dir curl args...
  local d=$1 host; shift
  host=$(sed -n 's/^name = //p' "$d/dp.conf")
  curl -s --max-time 10 --connect-to "$host:$(port "$d/dp.addr" http):127.0.0.1:$(port "$d/dp.addr" http)" \
    --connect-to "$host:$(port "$d/dp.addr" https):127.0.0.1:$(port "$d/dp.addr" https)" "$@"
}
# Places content on the DP and deploys it to All Systems: id file
place_and_deploy() {
  local out hash size
  out=$("$bin/cmlab-dp" add-content --dir "$lab/dp1" --id "$1" "$2") || fail "add-content $1"
  hash=$(echo "$out" | sed -n 's/.* hash \([0-9A-F]*\) size .*/\1/p')
  size=$(echo "$out" | sed -n 's/.* size \([0-9]*\)$/\1/p')
  admin deploy "All Systems" "$1" "$hash" --content-id "$1" --content-size "$size" >/dev/null ||
    fail "deploy $1"
}

echo "# An HTTP distribution point (Enhanced HTTP site), anonymous access allowed"
lab_up dp ehttp all --dps 1
head -c 100000 /dev/urandom >"$work/setup.exe"
place_and_deploy APP1 "$work/setup.exe"
agents_start agent 2
wait_status agent "all(x['content_verified'] >= 1 for x in a)" 30
ok "DP-04: two agents downloaded APP1 and checked it against their signed policy"
code=$(curl_dp "$lab/dp1" -o "$work/manifest" -w '%{http_code}' "$(dp_url "$lab/dp1" http '/SMS_DP_SMSPKG$/APP1')")
[ "$code" = 200 ] && grep -q '"setup.exe"' "$work/manifest" || fail "anonymous manifest: $code"
ok "DP-01: curl gets the manifest anonymously from an HTTP DP that allows it"
code=$(curl_dp "$lab/dp1" --path-as-is -o /dev/null -w '%{http_code}' \
  "$(dp_url "$lab/dp1" http '/SMS_DP_SMSPKG$/../dp.conf')")
[ "$code" = 400 ] || [ "$code" = 404 ] || fail "a path out of the content folder answered $code"
ok "a path out of the content folder is refused ($code)"

# Content tampered with on the DP after its hash went into the policy.
printf 'original' >"$work/tool.exe"
place_and_deploy APP2 "$work/tool.exe"
printf 'tampered' >"$lab/dp1/content/APP2/tool.exe"
wait_status agent "all(x['content_refused'] >= 1 for x in a)" 30
[ "$(json "sum(x['content_verified'] for x in d)" <"$lab/agent.json")" = 2 ] ||
  fail "tampered content counted as verified"
ok "DP-04: content changed on the DP is refused by every agent (the manifest no longer hashes to the policy's hash)"
agents_stop agent
lab_down

echo "# An HTTPS distribution point (PKI site): PKI client certificates only"
lab_up dppki pki trusted-domains --dps 1
printf 'pki content' >"$work/pki.exe"
place_and_deploy APP3 "$work/pki.exe"
agents_start agent 2 --pki
wait_status agent "all(x['content_verified'] >= 1 for x in a)" 30
ok "DP-01, DP-04: agents with PKI certificates downloaded and verified content over HTTPS"
code=$(curl_dp "$lab/dp1" --cacert "$lab/ca/ca.pem" -o "$work/body" -w '%{http_code}' \
  "$(dp_url "$lab/dp1" https '/SMS_DP_SMSPKG$/APP3')")
[ "$code" = 403 ] || fail "anonymous access to an HTTPS DP answered $code"
ok "DP-01: anonymous access to an HTTPS DP is refused (403 $(json "d['reason']" <"$work/body"))"
agents_stop agent
lab_down
echo "dp: $checks checks passed"
