#!/usr/bin/env bash
# Builds the Docker image and runs it end to end with podman (no Docker engine needed):
#   1. a debian:bookworm-slim base image made offline with mmdebstrap from this machine's apt
#      sources (once, ~1 minute, cached in $RECURRENT_PODMAN_DIR), imported into podman;
#   2. `podman build` of the repository's Dockerfile (a full Release build inside: ~4-5 minutes
#      on 2 cores);
#   3. the image run with its ports mapped to loopback; waits for its HEALTHCHECK to report
#      healthy; trains a tiny model, predicts and scrapes /metrics through the mapped ports from
#      the host's CLI (build/bin/recurrent);
#   4. `podman stop` (SIGTERM to recurrentd as PID 1) and a check that it exited 0.
# Run as root from the repository root after scripts/build.sh: bash scripts/docker_e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${RECURRENT_PODMAN_DIR:-/var/tmp/recurrent-podman}
image=${RECURRENT_IMAGE:-recurrent:latest}
cli=build/bin/recurrent
name=recurrent-e2e-$$
mkdir -p "$W"
[[ -x $cli ]] || { echo "docker_e2e: build the CLI first (scripts/build.sh)" >&2; exit 1; }
command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null ||
  apt-get install -y -qq podman runc mmdebstrap >/dev/null
# vfs storage and runc work in this VM (no overlay, no crun); lower ulimits for rootful podman.
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\n' \
  >"$W/containers.conf"
printf '[storage]\ndriver = "vfs"\nrunroot = "%s/run"\ngraphroot = "%s/storage"\n' "$W" "$W" >"$W/storage.conf"
export CONTAINERS_CONF=$W/containers.conf CONTAINERS_STORAGE_CONF=$W/storage.conf

step() { printf '\n== %s\n' "$*"; }
elapsed() { echo "$(($(date +%s) - $1)) s"; }

if ! podman image exists debian:bookworm-slim; then
  step "base image: mmdebstrap bookworm (minbase) -> debian:bookworm-slim"
  [[ -s $W/base.tar ]] || TMPDIR=$W mmdebstrap --quiet --variant=minbase bookworm "$W/base.tar"
  podman import -q "$W/base.tar" debian:bookworm-slim >/dev/null
fi

step "podman build -t $image ."
start=$(date +%s)
podman build --pull=never --format docker -t "$image" . >"$W/build.log" 2>&1 || {
  tail -40 "$W/build.log"
  exit 1
}
echo "built in $(elapsed "$start"); image size: $(podman image inspect "$image" --format '{{.Size}}') bytes"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
metrics_port=$(free_port)
step "podman run (gRPC on 127.0.0.1:$grpc_port, metrics on 127.0.0.1:$metrics_port)"
podman run -d --name "$name" -p "127.0.0.1:$grpc_port:50051" -p "127.0.0.1:$metrics_port:9464" \
  "$image" --drain_seconds=1 --shutdown_grace_seconds=5 >/dev/null
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT

# Without systemd, podman runs a HEALTHCHECK when asked: ask until it reports healthy.
start=$(date +%s)
health=starting
for _ in $(seq 60); do
  podman healthcheck run "$name" >/dev/null 2>&1 || true
  health=$(podman inspect "$name" --format '{{.State.Health.Status}}' 2>/dev/null || echo unknown)
  [[ $health == healthy ]] && break
  sleep 1
done
echo "HEALTHCHECK: $health after $(elapsed "$start")"
[[ $health == healthy ]] || { podman logs "$name"; exit 1; }
[[ $(podman inspect "$name" --format '{{.Config.User}}') == 10001:10001 ]] || {
  echo "docker_e2e: the container does not run as 10001:10001" >&2
  exit 1
}

step "train, predict and scrape through the mapped ports from the host"
export RECURRENT_SERVER=127.0.0.1:$grpc_port
"$cli" train --name tiny --generator adding --sequences 256 --length 8 --hidden 8 --epochs 2 --watch
printf '0.1,0\n0.5,1\n0.3,0\n' | "$cli" predict --model tiny
"$cli" models list
metrics=$(/usr/bin/python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$metrics_port/metrics').read().decode())")
grep -q 'recurrent_requests_total{code="OK",rpc="Predict"} 1' <<<"$metrics" || {
  echo "docker_e2e: /metrics lacks the Predict call" >&2
  exit 1
}
echo "/metrics counts the Predict call"

step "podman stop (SIGTERM to recurrentd, PID 1)"
start=$(date +%s)
podman stop -t 30 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
podman logs "$name" 2>&1 | tail -4
echo "exit code $code after $(elapsed "$start")"
[[ $code == 0 ]] || exit 1
echo "docker_e2e: PASS"
