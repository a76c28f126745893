#!/usr/bin/env bash
# tests/lab/overload.sh - an MP whose site stops answering keeps a bounded
# queue of forwarded requests: past [mp] max_pending, clients get 503 with
# Retry-After at once (the agents back off and come back), not a timeout.
# The simulator models the same queue.
#
#   REQ: TRUST-12   a storm drains through 503 and the clients' backoff
. "$(dirname "$0")/common.sh"

lab_up overload ehttp all --mps 1
"$top_srcdir/scripts/lab" down --dir "$lab" >/dev/null
sed -i 's/^\[listen\]/max_pending = 2\n\n[listen]/' "$lab/mp1/mp.conf"
"$top_srcdir/scripts/lab" up --dir "$lab" --test-timings >/dev/null || fail "lab restart"
mp=$lab/mp1
root=$lab/site/issuing-root.pem
site_pid=$(cat "$lab/site/site.pid")
kill -STOP "$site_pid"
register() { # n: a forwarded request the frozen site will not answer
  curl_mp "$mp" --cacert "$root" --max-time 30 -o "$work/r$1" -D "$work/h$1" -w '%{http_code}' \
    -X POST -d '{}' -H "CCM-ClientID: GUID:00000000-0000-0000-0000-00000000000$1" \
    -H "CCM-Signature: sha256 AAAA" "$(mp_url "$mp" https /ccm_system_windowsauth/request/register)" \
    >"$work/code$1"
}
register 1 &
p1=$!
register 2 &
p2=$!
sleep 1
t0=$(date +%s%N)
register 3
t=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -CONT "$site_pid"
[ "$(cat "$work/code3")" = 503 ] || fail "a third waiting request got $(cat "$work/code3"): $(cat "$work/r3")"
grep -qi '^retry-after: [1-9]' "$work/h3" || fail "503 without Retry-After: $(cat "$work/h3")"
[ "$t" -lt 3000 ] || fail "the 503 took $t ms"
ok "past max_pending (2) forwards waiting for a frozen site, the MP answers 503 with Retry-After in $t ms"
wait "$p1" "$p2" || true
[ "$(cat "$work/code1")" != 503 ] && [ "$(cat "$work/code2")" != 503 ] ||
  fail "the queued requests were refused: $(cat "$work/code1") $(cat "$work/code2")"
ok "the two queued requests got the site's answer once it resumed ($(cat "$work/code1"), $(cat "$work/code2"))"
curl_mp "$mp" "$(mp_url "$mp" http /metrics)" | grep -q '^cm_mp_busy_total 1$' ||
  fail "cm_mp_busy_total: $(curl_mp "$mp" "$(mp_url "$mp" http /metrics)" | grep busy)"
ok "/metrics counts the 503s (cm_mp_busy_total)"

# Out of file descriptors: more clients than the MP's open-file limit (a
# fresh start, without the tiny queue above).
"$top_srcdir/scripts/lab" down --dir "$lab" >/dev/null
sed -i '/^max_pending = 2$/d' "$lab/mp1/mp.conf"
"$top_srcdir/scripts/lab" up --dir "$lab" --test-timings >/dev/null || fail "lab restart"
mp_pid=$(cat "$mp/mp.pid")
http_port=$(port "$mp/mp.addr" http)
base=$(ls "/proc/$mp_pid/fd" | wc -l)
cpu() { awk '{print $14 + $15}' "/proc/$mp_pid/stat"; }

# 1. The clients it holds still get served: descriptors held in reserve
#    are given up for the MP's own connections to the site.  (Without them
#    every client the MP held waited for a forward it could not make.)
prlimit --pid "$mp_pid" --nofile=$((base + 40)):$((base + 40)) || fail "prlimit"
"$bin/cmlab-agent" --lab "$lab" --count 100 --first-index 500 --until active --timeout 20s \
  >"$work/fd-agents.out" 2>&1 || true
active=$(sed -n 's/.* agents after .*active \([0-9]*\).*/\1/p' "$work/fd-agents.out" | head -1)
[ "${active:-0}" -ge 20 ] || fail "with room for 40 clients, ${active:-0} of 100 agents got active: $(tail -3 "$work/fd-agents.out")"
kill -0 "$mp_pid" || fail "the MP exited"
ok "100 agents against an MP whose open-file limit is 40 above its idle use: $active registered and went active (none did before the reserve), the others wait"

# 2. The MP pauses accepting rather than spinning on accept() (which
#    reported the same pending connection again at once: both workers busy
#    and millions of log lines), and serves again once connections close.
sleep 1 # the agents' connections closed; the limit stays
said=$(grep -c "cannot accept connections" "$mp/mp.log" || true)
c0=$(cpu)
python3 - "$http_port" <<'PY' || fail "could not hold connections"
import socket, sys, time
held = []
for _ in range(160):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", int(sys.argv[1])))
    held.append(s)
time.sleep(3)
PY
ticks=$(( $(cpu) - c0 ))
lines=$(( $(grep -c "cannot accept connections" "$mp/mp.log" || true) - said ))
[ "$ticks" -lt 100 ] || fail "the MP spent $ticks ticks of CPU in 3 s while out of descriptors"
[ "$lines" -le 2 ] || fail "$lines log lines about accept failures in 3 s"
curl_mp "$mp" --max-time 10 "$(mp_url "$mp" http /health)" >/dev/null ||
  fail "the MP did not serve again once the connections closed"
ok "out of descriptors (160 connections, room for 40), the MP paused accepting: $ticks ticks of CPU in 3 s, $lines log line(s), served again after"
lab_down
echo "overload: $checks checks passed"
