#!/bin/sh
# The scenario suite at a size that finishes quickly: every scenarios/*.scn
# runs with cmlab-sim --scale (0.05 unless the file says "# check-scale: X")
# and must hold all its expectations.  Each file states the full size it was
# designed for in its [scenario] full_size.
set -u
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${top_builddir:-.}
sim="$build/cmlab-sim"
out=$(mktemp -d "${TMPDIR:-/tmp}/cmlab-suite.XXXXXX")
trap 'rm -rf "$out"' EXIT
[ -x "$sim" ] || { echo "suite: no $sim" >&2; exit 99; }
pass=0 fail=0
for scn in "$top"/scenarios/*.scn; do
  name=$(basename "$scn" .scn)
  scale=$(sed -n 's/^# check-scale: *\([0-9.]*\).*/\1/p' "$scn" | head -1)
  scale=${scale:-0.05}
  start=$(date +%s)
  if "$sim" --scale "$scale" --no-progress -o "$out/$name" "$scn" > "$out/$name.txt" 2>&1; then
    pass=$((pass + 1)); verdict=PASS
  else
    fail=$((fail + 1)); verdict=FAIL
  fi
  echo "$verdict: $name (scale $scale, $(( $(date +%s) - start ))s)"
  if [ "$verdict" = FAIL ]; then
    grep -E 'FAIL|cmlab-sim:' "$out/$name.txt" | head -20
  fi
done
echo "scenarios: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
