#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# oneDNN runs on OpenMP: use the machine's cores, and let idle threads sleep instead of
# spinning so parallel test processes do not starve each other.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --test-dir "${RECURRENT_BUILD_DIR:-build}" --output-on-failure --timeout 600 "$@"
