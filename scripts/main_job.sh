#!/usr/bin/env bash
# The main job, on a built tree: starts recurrentd on local defaults, trains an LSTM forecaster
# on the built-in Mackey-Glass series through the CLI (with a progress bar), points the
# `production` alias at it, streams the held-out continuation of the series through it step by
# step, prints how close the forecasts are (RMSE and a plot), and stops the server cleanly.
#
# Environment: RECURRENT_PORT (default 50051), RECURRENT_DATA_DIR (default ./recurrent-data),
# RECURRENT_EPOCHS (default 40), RECURRENT_BIN_DIR (default build/bin), RECURRENT_WORK_DIR (the
# held-out data, forecasts and server log; default build/main-job).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RECURRENT_BIN_DIR:-build/bin}
port=${RECURRENT_PORT:-50051}
data_dir=${RECURRENT_DATA_DIR:-recurrent-data}
epochs=${RECURRENT_EPOCHS:-40}
work=${RECURRENT_WORK_DIR:-build/main-job}
export RECURRENT_SERVER=localhost:$port
series=6000  # training samples; the held-out data continues the series after them
mkdir -p "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if "$bin/recurrent" health >/dev/null 2>&1; then
  echo "main job: a server already answers on $RECURRENT_SERVER; stop it or set RECURRENT_PORT" >&2
  exit 1
fi

step "1/5 starting recurrentd on $RECURRENT_SERVER (data in $data_dir, log in $work/recurrentd.log)"
"$bin/recurrentd" --port="$port" --data_dir="$data_dir" 2>"$work/recurrentd.log" &
server=$!
trap 'kill -9 $server 2>/dev/null || true' EXIT
for _ in $(seq 150); do
  "$bin/recurrent" health >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$work/recurrentd.log" >&2; exit 1; }
  sleep 0.2
done
"$bin/recurrent" health

step "2/5 training an LSTM forecaster on Mackey-Glass ($series samples, windows of 400 steps)"
# Per-step targets over long windows with truncated BPTT: the model learns to forecast the next
# value at every step, which is what a stream asks of it.
"$bin/recurrent" train --name mackey-glass --generator mackey-glass --series-length $series \
  --window 400 --stride 20 --per-step --cell lstm --hidden 64 --tbptt 50 --epochs "$epochs" \
  --normalize --validation-split 0.1 --label purpose=main-job --watch

step "3/5 pointing mackey-glass@production at the new version"
"$bin/recurrent" models alias mackey-glass production latest
"$bin/recurrent" models list

step "4/5 streaming the held-out series (samples $series..$((series + 599))) one step at a time"
"$bin/recurrent" data mackey-glass --from $series --length 600 >"$work/heldout.csv"
"$bin/recurrent" stream --model mackey-glass@production "$work/heldout.csv" --target x --skip 50 \
  --plot >"$work/predictions.csv"
echo "forecasts in $work/predictions.csv"

step "5/5 stopping recurrentd (SIGTERM)"
kill -TERM $server
status=0
wait $server || status=$?
trap - EXIT
if ((status != 0)); then
  echo "main job: recurrentd exited with $status" >&2
  exit 1
fi
echo "recurrentd stopped cleanly. Next: README.md, section 'Using the service'."
