# tests/lab/common.sh - what the lab tests share: a lab in a temporary
# folder (scripts/lab up --test-timings), the admin client, agents in the
# background with a status file, and checks that print "ok N - ..." or fail
# with the daemons' logs.  Sourced, not run.
set -euo pipefail
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export CMLAB_BIN=$top_builddir/daemons
OPENSSL=${OPENSSL_BIN:-openssl}
bin=$CMLAB_BIN
work=$(mktemp -d "${TMPDIR:-/tmp}/cmlab-lab.XXXXXX")
lab=
checks=0

cleanup() {
  [ -n "$lab" ] && "$top_srcdir/scripts/lab" down --dir "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -n "$lab" ]; then
    for log in "$lab"/site/site.log "$lab"/mp*/mp.log "$lab"/dp*/dp.log "$lab"/*.log; do
      [ -e "$log" ] && { echo "--- $log" >&2; tail -15 "$log" >&2; }
    done
  fi
  exit 1
}
ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }

lab_up() { # name mode approval [scripts/lab options...]
  local name=$1 mode=$2 approval=$3
  shift 3
  lab=$work/$name
  "$top_srcdir/scripts/lab" up --dir "$lab" --mode "$mode" --approval "$approval" --test-timings "$@" >/dev/null ||
    fail "lab up ($mode, $approval)"
}
# Stops the lab; a sanitizer report in any daemon's log fails the test
# (the daemons exit through their clean shutdown on SIGTERM, so leaks show).
lab_down() {
  "$top_srcdir/scripts/lab" down --dir "$lab" >/dev/null
  if grep -l "Sanitizer\|runtime error\|without its lock" "$lab"/site/site.log "$lab"/mp*/mp.log "$lab"/dp*/dp.log "$lab"/*.log 2>/dev/null; then
    fail "a daemon reported a sanitizer error"
  fi
  ok "$(basename "$lab"): the daemons stopped cleanly on SIGTERM"
  lab=
}

addr() { sed -n "s/^$2 = //p" "$1"; }
port() { addr "$1" "$2" | sed 's/.*://'; }
admin() { "$bin/cmlab-admin" --site "$lab/site" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Starts agents in the background: name count extra-options...
agents_start() {
  local name=$1 count=$2; shift 2
  "$bin/cmlab-agent" --lab "$lab" --count "$count" --status "$lab/$name.json" \
    --policy-interval 2s --inventory-interval 3s --retry-base 1s --retry-cap 5s "$@" >"$lab/$name.log" 2>&1 &
  echo $! >"$lab/$name.pid"
}
agents_stop() {
  local pid rc=0
  pid=$(cat "$lab/$1.pid")
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "cmlab-agent exited with $rc after SIGTERM"
}
# Waits (up to $3 s) until a Python expression over the status list holds.
wait_status() { # name expression seconds
  local i
  for i in $(seq 1 $(($3 * 5))); do
    if [ -s "$lab/$1.json" ] && python3 -c "import json,sys; a=json.load(open('$lab/$1.json')); sys.exit(0 if ($2) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  fail "agents $1: not ($2) after $3 s: $(cat "$lab/$1.json" 2>/dev/null | head -c 600)"
}

mp_url() { # mp-dir scheme path
  local d=$1 host
  host=$(sed -n 's/^name = //p' "$d/mp.conf")
  if [ "$2" = http ]; then echo "http://$host:$(port "$d/mp.addr" http)$3"
  else echo "https://$host:$(port "$d/mp.addr" https)$3"; fi
}
curl_mp() { # mp-dir extra curl args... (connects the MP's name to loopback)
  local d=$1 host; shift
  host=$(sed -n 's/^name = //p' "$d/mp.conf")
  curl -s --max-time 10 --connect-to "$host:$(port "$d/mp.addr" http):127.0.0.1:$(port "$d/mp.addr" http)" \
    --connect-to "$host:$(port "$d/mp.addr" https):127.0.0.1:$(port "$d/mp.addr" https)" "$@"
}

