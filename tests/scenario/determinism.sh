#!/bin/sh
# The same scenario and seed give the same reports, byte for byte: two runs
# of scenarios with storms, floods, attackers, variants and a site hierarchy
# replicating over its links, and a CMG whose connection point fails and
# recovers, are compared.
set -u
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
sim="${top_builddir:-.}/cmlab-sim"
out=$(mktemp -d "${TMPDIR:-/tmp}/cmlab-det.XXXXXX")
trap 'rm -rf "$out"' EXIT
[ -x "$sim" ] || { echo "determinism: no $sim" >&2; exit 99; }
rc=0
for name in registration-storm status-messages cloned-image hierarchy cmg-round-robin; do
  for run in 1 2; do
    "$sim" --quiet --scale 0.03 -o "$out/$name.$run" "$top/scenarios/$name.scn" || true
  done
  for f in report.json report.html; do
    if cmp -s "$out/$name.1/$f" "$out/$name.2/$f"; then
      echo "PASS: $name $f identical across runs"
    else
      echo "FAIL: $name $f differs between two runs of the same seed"; rc=1
    fi
  done
  # The sites on a worker thread (opt-in) must not change a byte either.
  CMLAB_SIM_SITE_THREAD=1 "$sim" --quiet --scale 0.03 -o "$out/$name.thread" \
    "$top/scenarios/$name.scn" || true
  if cmp -s "$out/$name.1/report.json" "$out/$name.thread/report.json"; then
    echo "PASS: $name report.json identical with the site worker thread"
  else
    echo "FAIL: $name report.json differs with the site worker thread"; rc=1
  fi
done
exit $rc
