#!/usr/bin/env bash
# clang-tidy (the checked-in .clang-tidy) over every source file of core/, server/ and client/,
# using build/'s compile commands (scripts/build.sh first: the protobuf headers are generated
# there). Exits non-zero on any finding. About 10 minutes of CPU: not part of scripts/test.sh.
#   scripts/tidy.sh [FILE_REGEX]    default: every file under core/, server/ and client/
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${RECURRENT_BUILD_DIR:-build}
[[ -f "$build_dir/compile_commands.json" ]] || scripts/build.sh
run-clang-tidy-14 -clang-tidy-binary clang-tidy-14 -p "$build_dir" -j "$(nproc)" -quiet \
  "${1:-^$PWD/(core|server|client)/}"
