#!/usr/bin/env bash
# Generates the Python gRPC stubs of recurrent.v1 (and of grpc.health.v1) for the example client
# in client/python/. Generated code is never committed: run this after every proto change.
#
#   scripts/gen_python_stubs.sh [OUT_DIR]     # default: build/python
#
# Layout of OUT_DIR:
#   recurrent/v1/{model,service,...}_pb2.py, _pb2.pyi, _pb2_grpc.py   (import recurrent.v1.*)
#   health_pb2.py, health_pb2_grpc.py                                  (grpc.health.v1, top level)
# health.proto is generated at the top level on purpose: as grpc/health/v1/ it would create a
# `grpc` package in OUT_DIR that shadows the real grpcio package.
#
# Needs Debian's protobuf-compiler, protobuf-compiler-grpc (grpc_python_plugin) and grpc-proto.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-${repo_root}/build/python}"
protoc="${PROTOC:-protoc}"
plugin="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}"
health_dir=/usr/share/grpc-proto/grpc/health/v1

for tool in "${protoc}" "${plugin}"; do
  if ! command -v "${tool}" >/dev/null; then
    echo "gen_python_stubs: ${tool} not found" \
      "(install protobuf-compiler and protobuf-compiler-grpc)" >&2
    exit 1
  fi
done
if [[ ! -f "${health_dir}/health.proto" ]]; then
  echo "gen_python_stubs: ${health_dir}/health.proto not found (install grpc-proto)" >&2
  exit 1
fi

mkdir -p "${out_dir}"
# Stale modules from a removed .proto would still import: start from an empty tree.
rm -rf "${out_dir}/recurrent" "${out_dir}"/health_pb2*.py "${out_dir}"/health_pb2*.pyi

generate() {
  "${protoc}" --python_out="${out_dir}" --pyi_out="${out_dir}" --grpc_python_out="${out_dir}" \
    --plugin=protoc-gen-grpc_python="${plugin}" "$@"
}
generate -I"${repo_root}/proto" "${repo_root}"/proto/recurrent/v1/*.proto
generate -I"${health_dir}" "${health_dir}/health.proto"
echo "gen_python_stubs: wrote stubs to ${out_dir}"
