#!/usr/bin/env bash
# tests/lab/admin.sh - administration of a running site: administrators
# signed in by the SMS Provider with their certificates, held to their
# security roles; refusals audited (add-admin is an offline command of
# whoever holds the site's files, acting as the built-in administrator); the audit trail's hash chain catching
# an altered or deleted entry.
#
#   REQ: ADM-01   roles decide what each administrator may do; refusals audited
#   REQ: ADM-02   the provider signs administrators in (certificate level)
. "$(dirname "$0")/common.sh"

lab_up admin ehttp all
db=$lab/site/site.db
as() { # administrator command...
  local who=$1; shift
  "$bin/cmlab-admin" --site "$lab/site" --cert "$work/admins/$who.pem" --key "$work/admins/$who.key" "$@"
}
audit_actions() { sqlite3 "$db" "SELECT action FROM audit WHERE admin = '$1' ORDER BY id"; }

agents_start agent 1
wait_status agent "a[0]['state'] == 'active'" 30
smsid=$(json "d[0]['smsid']" <"$lab/agent.json")
"$bin/cmlab-site" add-admin --dir "$lab/site" --name analyst --role read-only-analyst \
  --out "$work/admins" >/dev/null || fail "add-admin analyst"
"$bin/cmlab-site" add-admin --dir "$lab/site" --name deployer --role application-deployment-manager \
  --out "$work/admins" >/dev/null || fail "add-admin deployer"
HASH=$(printf 'admin test content' | sha256sum | cut -d' ' -f1)

as analyst site >/dev/null || fail "the analyst cannot view the site"
as analyst client "$smsid" | grep -q '"approved"' || fail "the analyst cannot view a client"
ok "ADM-01: a read-only analyst signs in with its certificate and sees the site and its clients"
if as analyst deploy "All Systems" Payload "$HASH" >"$work/out" 2>&1; then
  fail "the analyst deployed: $(cat "$work/out")"
fi
grep -q '"forbidden"' "$work/out" || fail "analyst deploy: $(cat "$work/out")"
audit_actions analyst | grep -q "refused:deploy" || fail "the refused deployment is not audited: $(audit_actions analyst)"
ok "ADM-01: the analyst's deployment is refused (403) and the refusal is in the audit trail"
if as analyst block "$smsid" >/dev/null 2>&1; then fail "the analyst blocked a client"; fi
ok "ADM-01: the analyst cannot block a client"
as deployer deploy "All Systems" Payload "$HASH" >/dev/null || fail "the deployment manager cannot deploy"
if as deployer block "$smsid" >/dev/null 2>&1; then fail "the deployment manager blocked a client"; fi
if as deployer set approval=manual >/dev/null 2>&1; then fail "the deployment manager changed settings"; fi
ok "ADM-01: an application deployment manager deploys, and may neither block nor change settings"
as analyst audit | grep -q '"verdict": "ok"' || fail "audit not intact: $(as analyst audit)"
n=$(sqlite3 "$db" "SELECT count(*) FROM audit")
ok "the audit trail verifies ($n entries, each chained by hash to the one before)"
victim=$(sqlite3 "$db" "SELECT id FROM audit WHERE action = 'refused:deploy' LIMIT 1")
sqlite3 "$db" "UPDATE audit SET detail = 'nothing happened' WHERE id = $victim"
out=$("$bin/cmlab-site" verify-audit --dir "$lab/site" 2>&1) && fail "an altered entry went unnoticed: $out"
echo "$out" | grep -q altered || fail "verify-audit: $out"
as analyst audit | grep -q '"verdict": "altered"' || fail "the API does not report the alteration"
ok "an altered audit entry is detected: $out"
agents_stop agent
lab_down

# A deleted entry, on a fresh trail.
lab_up admin2 ehttp all
db=$lab/site/site.db
"$bin/cmlab-admin" --site "$lab/site" set encrypt=true >/dev/null
"$bin/cmlab-admin" --site "$lab/site" set encrypt=false >/dev/null
"$bin/cmlab-site" verify-audit --dir "$lab/site" >/dev/null || fail "fresh trail does not verify"
middle=$(sqlite3 "$db" "SELECT id FROM audit WHERE action = 'settings' LIMIT 1")
sqlite3 "$db" "DELETE FROM audit WHERE id = $middle"
out=$("$bin/cmlab-site" verify-audit --dir "$lab/site" 2>&1) && fail "a deleted entry went unnoticed: $out"
ok "a deleted audit entry is detected: $out"
lab_down
echo "admin: $checks checks passed"
