#!/usr/bin/env bash
# The README's main job (scripts/main_job.sh) run for real, so it cannot rot: on a free port and
# a fresh data directory, it must exit 0, train, alias, stream, score the held-out forecasts well
# (RMSE under 0.01 on a series of range ~[0.2, 1.4], far better than repeating the last value)
# and stop the server cleanly.
set -euo pipefail
bin_dir=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A free port: one nothing answers on.
for _ in $(seq 20); do
  port=$((20000 + RANDOM % 30000))
  "$bin_dir/recurrent" --server "localhost:$port" health --timeout 1 >/dev/null 2>&1 || break
done
RECURRENT_PORT=$port RECURRENT_DATA_DIR="$work/data" RECURRENT_WORK_DIR="$work/out" \
  RECURRENT_BIN_DIR="$bin_dir" "$repo/scripts/main_job.sh" >"$work/log" 2>&1 || {
  cat "$work/log"
  echo "FAIL: the main job exited non-zero"
  exit 1
}
cat "$work/log"
fail() { echo "FAIL: $*"; exit 1; }
grep -q "succeeded (completed): model mackey-glass version 1" "$work/log" || fail "no trained model"
grep -q "mackey-glass@production -> version 1" "$work/log" || fail "no production alias"
grep -q "recurrentd stopped cleanly" "$work/log" || fail "the server did not stop cleanly"
rmse_line=$(grep "^RMSE" "$work/log") || fail "no RMSE line"
rmse=$(echo "$rmse_line" | awk '{print $2}')
ratio=$(echo "$rmse_line" | sed -E 's/.*, ([0-9.]+)x worse.*/\1/')
awk -v r="$rmse" 'BEGIN { exit !(r < 0.01) }' || fail "RMSE $rmse is not under 0.01"
awk -v q="$ratio" 'BEGIN { exit !(q > 5) }' || fail "only ${ratio}x better than repeating the last value"
[[ $(wc -l <"$work/out/predictions.csv") -eq 600 ]] || fail "expected 600 forecasts"
echo "PASS: main job RMSE $rmse (${ratio}x better than repeating the last value)"
