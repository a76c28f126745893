#!/usr/bin/env bash
# tests/lab/crash.sh - crash safety: kill -9 the site daemon in the middle
# of a registration storm, restart it, and find every registration it
# acknowledged, each record whole.
#
# An agent moves out of "registering" only on the site's 200, which the
# site sends after its transaction committed (synchronous=FULL); so the
# agents that are pending or active when the site dies hold exactly the
# acknowledgements.  After the restart each of them must be in the site's
# database with its certificate, and every record there must read back.
#
#   REQ: REG-02 (registration is acknowledged only once it is stored)
. "$(dirname "$0")/common.sh"

storm=${CMLAB_CRASH_AGENTS:-300}
lab_up crash ehttp all
agents_start storm "$storm" --start-window 4s --keepalive-interval 0 --threads 2
wait_status storm "sum(x['state'] in ('pending', 'active') for x in a) >= 10" 60
site_pid=$(cat "$lab/site/site.pid")
kill -KILL "$site_pid"
wait "$site_pid" 2>/dev/null || true
ok "site killed with SIGKILL in the middle of a storm of $storm agents"
agents_stop storm
acked=$(json "' '.join(x['smsid'] for x in d if x['state'] in ('pending', 'active'))" <"$lab/storm.json")
n_acked=$(echo "$acked" | wc -w)
[ "$n_acked" -gt 0 ] || fail "no registration was acknowledged before the kill"

# Restart the site on its database; its MPs reconnect through the .addr file.
rm -f "$lab/site/site.addr"
"$bin/cmlab-site" serve --dir "$lab/site" >>"$lab/site/site.log" 2>&1 &
echo $! >"$lab/site/site.pid"
for _ in $(seq 1 100); do [ -s "$lab/site/site.addr" ] && break; sleep 0.1; done
[ -s "$lab/site/site.addr" ] || fail "the site did not restart"
ok "site restarted on the same database"

admin clients >"$work/clients.json" || fail "admin clients after the restart"
missing=$(python3 - "$work/clients.json" $acked <<'EOF'
import json, sys
have = {c["smsid"] for c in json.load(open(sys.argv[1]))}
print(" ".join(s for s in sys.argv[2:] if s not in have))
EOF
)
[ -z "$missing" ] || fail "acknowledged registrations lost: $missing"
total=$(json "len(d)" <"$work/clients.json")
ok "all $n_acked acknowledged registrations survived ($total records in the database)"
for s in $(json "' '.join(c['smsid'] for c in d)" <"$work/clients.json"); do
  admin client "$s" >"$work/one.json" || fail "record $s does not read back"
  python3 -c "
import json, re, sys
d = json.load(open('$work/one.json'))
ok = re.fullmatch('[0-9A-F]{64}', d['thumbprint']) and d['hwid'] and d['name'] and d['state'] == 'approved'
sys.exit(0 if ok else 1)" || fail "record $s is incomplete: $(cat "$work/one.json")"
done
ok "every record reads back whole (certificate thumbprint, hardware ID, name, state)"

# The storm resumes against the restarted site: the agents that were cut
# off register now.
agents_start after 5
wait_status after "all(x['state'] == 'active' for x in a)" 60
ok "new registrations go through after the restart"
agents_stop after
lab_down
echo "crash: $checks checks passed"
