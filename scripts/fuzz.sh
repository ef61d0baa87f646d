#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build-fuzz, then for each
# target: replays every committed input once (tests/fuzz/regressions/<target>/ and
# tests/fuzz/corpus/<target>/), and fuzzes for SECONDS_PER_TARGET seconds from a scratch copy of
# the corpus (the committed one is never modified). Exits non-zero if any target crashed, leaked,
# hit a sanitizer report or a timeout, printing the report and where the crashing input was saved.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    default: 60 seconds, every target
#
# Targets: artifact csv snapshot predict_request step_request train_request. A new crash's input
# belongs in tests/fuzz/regressions/<target>/ once its bug is fixed (docs/testing.md, "Fuzzing").
# RECURRENT_FUZZ_FLAGS adds libFuzzer flags to the fuzzing runs (e.g. -use_value_profile=1).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(artifact csv snapshot predict_request step_request train_request)
fi
build_dir=${RECURRENT_FUZZ_BUILD_DIR:-build-fuzz}

# Longest input libFuzzer makes per target: room for the seeds to grow, small enough that each
# input stays fast under ASan.
declare -A max_len=(
  [artifact]=16384 [csv]=4096 [snapshot]=4096
  [predict_request]=4096 [step_request]=4096 [train_request]=4096
)

# The top-level CMakeLists.txt uses ccache when it is installed.
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO='-O1 -gline-tables-only' \
    -DRECURRENT_FUZZ=ON -DRECURRENT_SANITIZE=address,undefined \
    -DRECURRENT_BUILD_TESTS=OFF -DRECURRENT_BUILD_BENCH=OFF
fi
cmake --build "$build_dir" --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=detect_leaks=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# One engine thread per fuzzer, sleeping when idle (docs: OpenMP's spin-wait starves neighbours).
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

scratch=$(mktemp -d "${TMPDIR:-/tmp}/recurrent-fuzz.XXXXXX")
echo "fuzz logs, scratch corpora and crash inputs: $scratch"
failed=()
summary=()
for target in "${targets[@]}"; do
  binary="$build_dir/bin/fuzz_$target"
  # A single allocation over 512 MiB from a few KiB of input is a missing bound (libFuzzer
  # reports it as out-of-memory); the whole process may use 2 GiB.
  flags=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 "-max_len=${max_len[$target]:-4096}")

  # 1. Every committed input, once.
  committed=()
  for dir in "tests/fuzz/regressions/$target" "tests/fuzz/corpus/$target"; do
    [[ -d "$dir" ]] || continue
    while IFS= read -r -d '' file; do committed+=("$file"); done < <(find "$dir" -type f -print0)
  done
  if [[ ${#committed[@]} -gt 0 ]]; then
    if ! "$binary" "${flags[@]}" "${committed[@]}" >"$scratch/$target.replay.log" 2>&1; then
      echo "FAILED: fuzz_$target on a committed input:"
      tail -n 60 "$scratch/$target.replay.log"
      failed+=("$target (replay)")
      continue
    fi
  fi

  # 2. Fuzzing, from a scratch copy of the corpus.
  mkdir -p "$scratch/corpus/$target" "$scratch/crashes/$target"
  if [[ -d "tests/fuzz/corpus/$target" ]]; then
    cp -r "tests/fuzz/corpus/$target/." "$scratch/corpus/$target/"
  fi
  echo "fuzzing $target for ${seconds}s"
  log="$scratch/$target.log"
  # shellcheck disable=SC2086 # word splitting of the extra flags is intended
  if "$binary" "${flags[@]}" ${RECURRENT_FUZZ_FLAGS:-} -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$scratch/crashes/$target/" "$scratch/corpus/$target" >"$log" 2>&1; then
    summary+=("$target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)")
  else
    echo "FAILED: fuzz_$target crashed; the input is in $scratch/crashes/$target/:"
    ls -l "$scratch/crashes/$target/"
    grep -v '^INFO\|^#[0-9]' "$log" | tail -n 60
    failed+=("$target")
  fi
done

echo
echo "Summary (executions, coverage):"
for line in "${summary[@]}"; do echo "  $line"; done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED targets: ${failed[*]}"
  exit 1
fi
echo "All ${#targets[@]} targets passed."
