#!/usr/bin/env bash
# The soak test (tests/soak/soak.py): recurrentd under mixed traffic (training jobs, Predict, 200
# StepPredict streams opening and closing, bad requests) for 30 minutes by default, every output
# checked against a solo run and the server's RSS sampled every minute; fails on an unexpected
# error, a wrong output, or an RSS slope over the limit. Needs a build (scripts/build.sh): the
# binary and the Python stubs in ${RECURRENT_BUILD_DIR:-build}.
#
#   scripts/soak.sh [--minutes N] [--json summary.json] [other tests/soak/soak.py options]
#
# The client runs under `nice` so that the server gets the CPU it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${RECURRENT_BUILD_DIR:-build}
export RECURRENTD_PATH=${RECURRENTD_PATH:-$build/bin/recurrentd}
export RECURRENT_PY_STUBS=${RECURRENT_PY_STUBS:-$build/python}
if [[ ! -x "$RECURRENTD_PATH" || ! -d "$RECURRENT_PY_STUBS/recurrent" ]]; then
  echo "soak: no $RECURRENTD_PATH or no stubs in $RECURRENT_PY_STUBS; run scripts/build.sh first" >&2
  exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec nice -n 10 /usr/bin/python3 tests/soak/soak.py "$@"
