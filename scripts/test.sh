#!/usr/bin/env bash
# The README's test command (.ci/run runs it): installs dependencies, builds, and runs every test.
#   Stage 1: the Release build and the whole suite (ctest), the 2-minute soak included.
#   Stage 2: a clang build with AddressSanitizer + UBSan (and libFuzzer's coverage): the whole
#            suite again under them, then every fuzz target replays its corpus and regressions and
#            fuzzes for RECURRENT_FUZZ_SECONDS (default 30) seconds.
#   Stage 3: the concurrency tests (tests/sanitizers/tsan_tests.txt) under ThreadSanitizer.
# RECURRENT_SANITIZERS=0 runs stage 1 only (a quick local run). Extra arguments go to stage 1's
# ctest. docs/testing.md says what each stage covers and what it costs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# oneDNN runs on OpenMP: use the machine's cores, and let idle threads sleep instead of
# spinning so parallel test processes do not starve each other.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
stage() { echo "=== $(date -u +%H:%M:%S) $*"; }
stage "stage 1: the suite (Release)"
ctest --test-dir "${RECURRENT_BUILD_DIR:-build}" --output-on-failure --timeout 600 "$@"
[[ "${RECURRENT_SANITIZERS:-1}" == 0 ]] && exit 0

# Stage 2. Clang, because only clang has libFuzzer (one instrumented build serves the suite and
# the fuzzers) and because it compiles this code base about three times faster than GCC at the
# same settings; -O1 with line tables is what the sanitizers need for fast, readable reports.
# Any report fails its test (halt_on_error for UBSan, leak checking on). The only suppression is
# a third-party leak (tests/sanitizers/lsan.supp). Left out: the Dockerfile check (it compares the
# release binaries' libraries with the image's) and the soak (stage 1 runs it); the SIGKILL test
# runs 5 of its 20 kill points (stage 1 runs all 20).
stage "stage 2: build with AddressSanitizer + UBSan (clang)"
if [[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
CC=clang-14 CXX=clang++-14 RECURRENT_BUILD_DIR=build-asan scripts/build.sh \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  -DRECURRENT_SANITIZE=address,undefined -DRECURRENT_FUZZ=ON -DRECURRENT_BUILD_BENCH=OFF
stage "stage 2: the suite under AddressSanitizer + UBSan"
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 RECURRENT_FAULT_RUNS=5 \
  ctest --test-dir build-asan --output-on-failure --timeout 900 \
  -E 'deploy_docker_files_test|soak_test'
stage "stage 2: fuzzing"
# No per-input timer in CI (-timeout=0): once in hours of fuzzing, ASan reported a nested fault in
# libFuzzer's SIGALRM handler that interrupted oneDNN's JIT code (docs/testing.md, "Fuzzing").
# `timeout` bounds the whole run instead.
RECURRENT_FUZZ_BUILD_DIR=build-asan RECURRENT_FUZZ_FLAGS=-timeout=0 \
  timeout 1200 scripts/fuzz.sh "${RECURRENT_FUZZ_SECONDS:-30}"

# Stage 3: ThreadSanitizer, GCC (clang cannot hide its sanitizer from protobuf's headers, see the
# top-level CMakeLists.txt), with no suppressions at all.
stage "stage 3: ThreadSanitizer"
mapfile -t tsan_tests < <(grep -v '^#' tests/sanitizers/tsan_tests.txt | grep .)
if [[ ! -f build-tsan/CMakeCache.txt ]]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DRECURRENT_SANITIZE=thread \
    -DRECURRENT_BUILD_BENCH=OFF
fi
cmake --build build-tsan --parallel "$(nproc)" --target "${tsan_tests[@]}"
for test in "${tsan_tests[@]}"; do
  echo "ThreadSanitizer: $test"
  TSAN_OPTIONS=halt_on_error=1 build-tsan/bin/"$test" --gtest_brief=1
done
stage "all stages passed"
