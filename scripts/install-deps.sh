#!/usr/bin/env bash
# Installs every Debian 12 package the project needs to build, test and benchmark
# (`--build-only`: only what building the binaries needs, for the Docker image).
# Idempotent: apt-get skips what is already installed. Must run as root (or with sudo present).
set -euo pipefail

# What building recurrentd and recurrent needs (the Dockerfile's build stage installs exactly this
# list, with `--build-only`).
build_packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # libraries
  libdnnl-dev ocl-icd-opencl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  # grpc.health.v1 (health.proto) for the CLI's `health` and the tests
  grpc-proto
)
# What a developer's machine and CI need beside it.
dev_packages=(
  ccache
  # Python example client (client/python) and its test (pulls in python3-protobuf)
  python3-grpcio
  # deployment checks (tests/deploy): promtool and a real Prometheus, yamllint, YAML in Python
  prometheus yamllint python3-yaml
  # certificates made at test time for the TLS tests (tests/e2e/security_test.cc)
  openssl
  # the sanitizer and fuzzing build (clang: libFuzzer; omp.h for -fopenmp=libgomp) and
  # clang-tidy (scripts/tidy.sh)
  clang-14 libclang-rt-14-dev libomp-14-dev clang-tidy-14
  # llvm-symbolizer: file and line in sanitizer reports
  llvm-14
)
packages=("${build_packages[@]}")
if [[ "${1:-}" != "--build-only" ]]; then packages+=("${dev_packages[@]}"); fi
# PyTorch (with OpenBLAS, so comparisons are fair) for the fixture generator and benchmarks only:
# never a runtime or test dependency.
if [[ "${RECURRENT_WITH_TORCH:-0}" == 1 ]]; then
  packages+=(python3-torch libopenblas0-openmp)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
