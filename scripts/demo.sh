#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and runs the main job.
# For now the main job is the engine demo: train an LSTM forecaster on built-in data, stream
# held-out data through it step by step, save and reload the model artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p build/demo
exec build/bin/recurrent-demo build/demo/model.rcnt
