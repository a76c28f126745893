#!/bin/sh
# The scenario suite at a size that finishes quickly: every scenarios/*.scn
# runs with cmlab-sim --scale (0.05 unless the file says "# check-scale: X")
# and must hold all its expectations.  Each file states the full size it was
# designed for in its [scenario] full_size.
#
# Each scenario then runs again in the cost-model crypto mode (--crypto
# model), which must keep every outcome: the same exit status, and the
# same JSON report apart from the mode it names.  Transfer times come from
# nominal message sizes and every refusal of real crypto is made by the
# stand-in (tests/unit/test-model.c), so nothing else may differ; a
# difference means an attack that real crypto stops got through the model
# (or the reverse).
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
    continue
  fi
  start=$(date +%s)
  "$sim" --scale "$scale" --no-progress --crypto model -o "$out/$name.model" "$scn" \
    > "$out/$name.model.txt" 2>&1
  mrc=$?
  if [ "$mrc" -eq 0 ] && grep -q '"crypto": "model"' "$out/$name.model/report.json" &&
     sed 's/"crypto": "model"/"crypto": "real"/' "$out/$name.model/report.json" |
       cmp -s - "$out/$name/report.json"; then
    pass=$((pass + 1)); verdict=PASS
  else
    fail=$((fail + 1)); verdict=FAIL
  fi
  echo "$verdict: $name in the cost-model crypto mode, same outcome ($(( $(date +%s) - start ))s)"
  if [ "$verdict" = FAIL ]; then
    grep -E 'FAIL|cmlab-sim:' "$out/$name.model.txt" | head -20
    diff "$out/$name/report.json" "$out/$name.model/report.json" | head -20
  fi
done
echo "scenarios: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
