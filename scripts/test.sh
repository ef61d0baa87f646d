#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test with ctest.
# With RECURRENT_SANITIZERS=1 it then builds again with AddressSanitizer + UBSan and runs the whole
# suite under them, and the concurrency tests under ThreadSanitizer. (Those two stages take about
# 30 more minutes on a fresh 2-core machine, over CI's budget, so CI runs stage 1.) Extra
# arguments go to the first ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# oneDNN runs on OpenMP: use the machine's cores, and let idle threads sleep instead of
# spinning so parallel test processes do not starve each other.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --test-dir "${RECURRENT_BUILD_DIR:-build}" --output-on-failure --timeout 600 "$@"

# Stage 2: the whole suite under AddressSanitizer + UBSan (any report fails its test). The only
# suppression is a third-party leak (tests/sanitizers/lsan.supp). The Dockerfile check is left
# out: it compares the release binaries' libraries with the image's.
if [[ "${RECURRENT_SANITIZERS:-0}" == 1 ]]; then
  RECURRENT_BUILD_DIR=build-asan scripts/build.sh -DRECURRENT_SANITIZE=address,undefined \
    -DRECURRENT_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 900 -E deploy_docker_files_test
fi

# Stage 3: the concurrency tests (tests/sanitizers/tsan_tests.txt) under ThreadSanitizer, with no
# suppressions at all.
if [[ "${RECURRENT_SANITIZERS:-0}" == 1 ]]; then
  mapfile -t tsan_tests < <(grep -v '^#' tests/sanitizers/tsan_tests.txt | grep .)
  if [[ ! -f build-tsan/CMakeCache.txt ]]; then
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECURRENT_SANITIZE=thread \
      -DRECURRENT_BUILD_BENCH=OFF
  fi
  cmake --build build-tsan --parallel "$(nproc)" --target "${tsan_tests[@]}"
  for test in "${tsan_tests[@]}"; do
    echo "ThreadSanitizer: $test"
    TSAN_OPTIONS=halt_on_error=1 build-tsan/bin/"$test" --gtest_brief=1
  done
fi
