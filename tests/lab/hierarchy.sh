#!/usr/bin/env bash
# tests/lab/hierarchy.sh - a hierarchy of sites in the lab: a top-level
# site PS1 in corp.example (site.conf [forests]: partner.example two-way,
# other.example none).  A child primary PS2 in partner.example joins it
# (cmlab-site join, while PS1 runs), gets a management point whose
# certificate PS1 signs with its trusted root key, and replicates with PS1
# over HTTPS every second; an agent installed with PS1's SMSPublicRootKey
# registers through PS2's MP; a secondary SS1 joins below PS2 and gets
# what PS1 replicates through it.  A child PS3 in other.example is refused.
#
#   REQ: NET-05    a child site in a remote forest joins only with a two-way forest trust (the refusal audited at the parent, the child unchanged); intersite replication of global data with sequence numbers and a backlog, down to a secondary below the child
#   REQ: TRUST-02  the top-level site's exchange key is the trusted root key of the whole hierarchy: a child's MP is signed with it and the child's clients install with it
. "$(dirname "$0")/common.sh"
child=$work/child
sec=$work/sec
other=$work/other
child_logs() {
  for log in "$child"/site/site.log "$child"/mp*/mp.log; do
    [ -e "$log" ] && { echo "--- $log" >&2; tail -15 "$log" >&2; }
  done
  return 0
}
child_down() {
  for d in "$sec" "$child"; do
    [ -d "$d" ] && "$top_srcdir/scripts/lab" down --dir "$d" >/dev/null 2>&1
  done
  return 0
}
trap 'child_down; cleanup' EXIT
cfail() { child_logs; fail "$@"; }
cadmin() { "$bin/cmlab-admin" --site "$child/site" "$@"; }
# Waits (up to $3 s) until a Python expression over a site's GET /admin/hierarchy holds.
wait_json() { # admin-function expression seconds
  local i
  for i in $(seq 1 $(($3 * 5))); do
    if $1 hierarchy 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  cfail "not ($2) after $3 s: $($1 hierarchy 2>&1 | head -c 800)"
}
# Adds administrator NAME at PS1 and waits (up to SECONDS) until it is in
# the database of the site in DIR; sets took to the seconds it took.
admin_reaches() { # name site-dir seconds
  local i start
  "$bin/cmlab-site" add-admin --dir "$top" --name "$1" --role read-only-analyst --out "$work/admins" \
    >/dev/null || fail "add-admin $1 at PS1"
  start=$(date +%s.%N)
  for i in $(seq 1 $(($3 * 5))); do
    [ "$(sqlite3 "$2/site.db" "SELECT count(*) FROM admins WHERE name = '$1'")" = 1 ] && break
    sleep 0.2
  done
  took=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  [ "$(sqlite3 "$2/site.db" "SELECT count(*) FROM admins WHERE name = '$1'")" = 1 ]
}
link() { # admin-function peer field
  $1 hierarchy | json "[l for l in d['links'] if l['peer'] == '$2'][0]['$3']"
}

echo "# PS1 in corp.example (Enhanced HTTP, one MP), its forest trusts in site.conf"
lab_up hier ehttp all --mps 1
top=$lab/site
printf '\n[forests]\npartner.example = two-way\nother.example = none\n' >>"$top/site.conf"

# --- a child primary in partner.example: two-way trust -------------------
mkdir -p "$child"
"$bin/cmlab-site" init --dir "$child/site" --child --site-code PS2 --forest partner.example \
  --comm ehttp --approval all >"$work/init.out" || fail "init PS2"
own_key=$(sed -n 's/^SMSPublicRootKey: //p' "$work/init.out")
"$bin/cmlab-site" join --dir "$child/site" --parent-dir "$top" --kind primary >"$work/join.out" 2>&1 ||
  fail "PS2 could not join PS1: $(cat "$work/join.out")"
[ "$(stat -c %a "$child/site/parent-client.key")" = 600 ] || fail "the replication key is readable by others"
openssl x509 -in "$child/site/parent-client.pem" -noout -subject -issuer >"$work/cert.out"
grep -q "CN *= *site:PS2" "$work/cert.out" && grep -q "Issuing Root PS1" "$work/cert.out" ||
  fail "PS2's replication certificate: $(cat "$work/cert.out")"
grep -q "^parent_addr_file = .*/site.addr" "$child/site/site.conf" || fail "join did not record where PS1 listens"
ok "NET-05: PS2 in partner.example (two-way trust with corp.example) joins PS1 while PS1 runs: a client certificate site:PS2 from PS1's issuing root (key 0600), PS1's address in site.conf"
[ "$(admin hierarchy | json "d['kind']")" = central ] || fail "PS1 is not the central site: $(admin hierarchy)"
[ "$(link admin PS2 role)" = child ] || fail "the running PS1 does not see PS2: $(admin hierarchy)"
ok "NET-05: the running PS1 sees its new child without a restart (GET /admin/hierarchy: central, link to PS2)"

cmp -s "$top/trk.hex" "$child/site/trk.hex" || fail "PS2's trk.hex is not PS1's trusted root key"
[ "$(cat "$child/site/trk.hex")" != "$own_key" ] || fail "PS2 still hands out its own exchange key"
"$bin/cmlab-site" add-mp --dir "$child/site" --name mp1.partner.example --out "$child/mp1" >/dev/null ||
  fail "add-mp on PS2"
openssl x509 -in "$child/mp1/mp-cert.pem" -noout -issuer | grep -q "Trusted Root Key PS1" ||
  fail "PS2's MP certificate is not signed by PS1's TRK: $(openssl x509 -in "$child/mp1/mp-cert.pem" -noout -issuer)"
sqlite3 "$top/site.db" "SELECT target FROM audit WHERE action = 'sign-mp'" | grep -q "PS2:mp1.partner.example" ||
  fail "PS1's audit trail has no sign-mp for PS2's MP"
ok "TRUST-02: PS2 hands out PS1's trusted root key, and its MP's certificate is signed by PS1's TRK (found up the recorded parent chain; audited at PS1)"

sed -i 's/^interval = 30s$/interval = 1s/' "$child/site/site.conf"
"$top_srcdir/scripts/lab" up --dir "$child" >"$work/child-up.out" 2>&1 || cfail "starting PS2 and its MP: $(cat "$work/child-up.out")"
"$bin/cmlab-agent" --lab "$child" --count 1 --status "$work/agent.json" --until active --timeout 30s \
  --retry-base 1s --retry-cap 5s >"$work/agent.log" 2>&1 || cfail "an agent of PS2 did not become active: $(tail -5 "$work/agent.log")"
[ "$(json "d[0]['mp']" <"$work/agent.json")" = mp1.partner.example ] || cfail "the agent used $(json "d[0]['mp']" <"$work/agent.json")"
smsid=$(json "d[0]['smsid']" <"$work/agent.json")
cadmin client "$smsid" | grep -q '"approved"' || cfail "PS2 does not have the agent approved"
ok "TRUST-02: an agent installed with PS1's SMSPublicRootKey trusts PS2's MP and registers at PS2 ($smsid)"
# The same install with PS2's own exchange key (what it handed out before
# joining): PS2's MP is not signed by it, and the agent does not register.
mkdir -p "$work/own/site"
cp "$child/site/site.conf" "$child/site/issuing-root.pem" "$work/own/site/"
echo "$own_key" >"$work/own/site/trk.hex"
ln -s "$child/mp1" "$work/own/mp1"
if "$bin/cmlab-agent" --lab "$work/own" --count 1 --status "$work/own.json" --until active --timeout 4s \
  --retry-base 1s >"$work/own.log" 2>&1; then
  cfail "an agent installed with PS2's own exchange key registered through PS2's MP"
fi
grep -q "mp1.partner.example refused: .*not signed by the trusted root key" "$work/own.log" &&
  [ "$(json "d[0]['registrations']" <"$work/own.json")" = 0 ] || cfail "own-key agent: $(tail -3 "$work/own.log")"
ok "TRUST-02: an agent installed with PS2's own exchange key instead refuses PS2's MP (not signed by the trusted root key it holds)"

# --- replication over HTTPS ----------------------------------------------
wait_json cadmin "[l for l in d['links'] if l['peer'] == 'PS1'][0]['received'] > 0 and d['replication']['failures'] == 0" 10
admin_reaches analyst "$child/site" 10 || cfail "the administrator added at PS1 did not reach PS2 in 10 s"
ok "NET-05: an administrator added at PS1 (global data) reaches PS2 by HTTPS replication in ${took} s"
wait_json admin "[l for l in d['links'] if l['peer'] == 'PS2'][0]['backlog'] == 0 and [l for l in d['links'] if l['peer'] == 'PS2'][0]['acked'] > 0" 10
wait_json cadmin "[l for l in d['links'] if l['peer'] == 'PS1'][0]['backlog'] == 0" 10
ok "NET-05: the link status shows backlog 0 both ways (PS1 queued $(link admin PS2 queued), PS2 acknowledged $(link admin PS2 acked); lag $(link admin PS2 lag_s) s)"
cadmin hierarchy >"$work/h.json"
[ "$(json "d['parent'] + d['top'] + d['kind']" <"$work/h.json")" = PS1PS1primary ] ||
  cfail "PS2's hierarchy status: $(cat "$work/h.json")"
# A certificate from PS1's issuing root that names no child is refused.
"$bin/cmlab-site" add-admin --dir "$top" --name "site:PS9" --role read-only-analyst --out "$work/admins" >/dev/null 2>&1 || true
if [ -e "$work/admins/site:PS9.pem" ]; then
  cp "$work/admins/site:PS9.pem" "$work/ps9.pem" && cp "$work/admins/site:PS9.key" "$work/ps9.key"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$top/issuing-root.pem" \
    --cert "$work/ps9.pem" --key "$work/ps9.key" \
    --connect-to "site.cmlab.test:$(port "$top/site.addr" https):127.0.0.1:$(port "$top/site.addr" https)" \
    -X POST --data '{"v":1,"from":"PS9"}' "https://site.cmlab.test:$(port "$top/site.addr" https)/site/replicate" || true)
  [ "$code" = 403 ] || fail "a site:PS9 certificate (no child of PS1) replicated: HTTP $code"
  ok "NET-05: /site/replicate refuses a certificate that names no admitted child (403)"
fi

# --- a secondary SS1 below PS2 --------------------------------------------
"$bin/cmlab-site" init --dir "$sec/site" --child --site-code SS1 --forest partner.example \
  --comm ehttp --approval all >/dev/null || cfail "init SS1"
"$bin/cmlab-site" join --dir "$sec/site" --parent-dir "$child/site" --kind secondary \
  >"$work/join-sec.out" 2>&1 || cfail "SS1 could not join PS2: $(cat "$work/join-sec.out")"
cmp -s "$top/trk.hex" "$sec/site/trk.hex" || cfail "SS1 does not hand out PS1's trusted root key"
sed -i 's/^interval = 30s$/interval = 1s/' "$sec/site/site.conf"
"$top_srcdir/scripts/lab" up --dir "$sec" >"$work/sec-up.out" 2>&1 || cfail "starting SS1: $(cat "$work/sec-up.out")"
sadmin() { "$bin/cmlab-admin" --site "$sec/site" "$@"; }
wait_json sadmin "d['kind'] == 'secondary' and d['parent'] == 'PS2' and d['top'] == 'PS1'" 10
admin_reaches auditor "$sec/site" 20 ||
  cfail "the administrator added at PS1 did not reach the secondary SS1 in 20 s: $(sadmin hierarchy 2>&1 | head -c 600)"
ok "NET-05: a secondary SS1 joins below PS2 (parent PS2, top PS1, PS1's trusted root key) and an administrator added at PS1 reaches it through PS2 in ${took} s"
"$top_srcdir/scripts/lab" down --dir "$sec" >/dev/null

# --- a child in other.example: no trust -----------------------------------
"$bin/cmlab-site" init --dir "$other/site" --child --site-code PS3 --forest other.example >/dev/null || fail "init PS3"
before=$(cd "$other/site" && sha256sum site.conf trk.hex && sqlite3 site.db "SELECT count(*) FROM audit; SELECT count(*) FROM meta WHERE key LIKE 'hier%'")
if "$bin/cmlab-site" join --dir "$other/site" --parent-dir "$top" --kind primary >"$work/join3.out" 2>&1; then
  fail "PS3 in other.example joined: $(cat "$work/join3.out")"
fi
grep -q "two-way forest trust" "$work/join3.out" || fail "the refusal does not say why: $(cat "$work/join3.out")"
after=$(cd "$other/site" && sha256sum site.conf trk.hex && sqlite3 site.db "SELECT count(*) FROM audit; SELECT count(*) FROM meta WHERE key LIKE 'hier%'")
[ "$before" = "$after" ] && [ ! -e "$other/site/parent-client.pem" ] || fail "the refused join changed PS3"
[ "$(sqlite3 "$top/site.db" "SELECT count(*) FROM audit WHERE action = 'refused:add-child-site' AND target = 'site:PS3'")" = 1 ] ||
  fail "PS1's audit trail has no refusal for PS3"
admin audit | grep -q '"verdict": "ok"' || fail "PS1's audit trail does not verify"
ok "NET-05: PS3 in other.example (no trust) is refused: $(sed 's/^cmlab-site join: //' "$work/join3.out"); PS3 unchanged, the refusal in PS1's audit trail"

"$top_srcdir/scripts/lab" down --dir "$child" >/dev/null
if grep -l "Sanitizer\|runtime error\|without its lock" "$child"/site/site.log "$child"/mp*/mp.log "$sec"/site/site.log 2>/dev/null; then
  cfail "a daemon of PS2 reported a sanitizer error"
fi
ok "PS2's daemons stopped cleanly on SIGTERM"
lab_down
echo "hierarchy: $checks checks passed"
