#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and runs the main job
# (scripts/main_job.sh: start recurrentd, train a forecaster, alias it, stream held-out data
# through it, stop the server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec scripts/main_job.sh
