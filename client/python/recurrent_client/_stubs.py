"""Imports the generated protobuf/gRPC modules of recurrent.v1, with a useful error if missing.

The stubs are generated, never committed: `scripts/gen_python_stubs.sh [OUT_DIR]` writes them to
OUT_DIR (default build/python). Put OUT_DIR on `sys.path` (or `PYTHONPATH`) before importing
`recurrent_client`, or name it in the environment variable RECURRENT_PY_STUBS.
"""

import os
import sys

_stubs_dir = os.environ.get("RECURRENT_PY_STUBS")
if _stubs_dir and _stubs_dir not in sys.path:
    sys.path.insert(0, _stubs_dir)

try:
    from recurrent.v1 import model_pb2, service_pb2, service_pb2_grpc  # noqa: F401
except ImportError as error:
    raise ImportError(
        "recurrent_client needs the generated recurrent.v1 stubs: run "
        "`scripts/gen_python_stubs.sh OUT_DIR`, then put OUT_DIR on sys.path or set "
        f"RECURRENT_PY_STUBS=OUT_DIR (RECURRENT_PY_STUBS is {_stubs_dir!r}); "
        f"the import failed with: {error}"
    ) from error

__all__ = ["model_pb2", "service_pb2", "service_pb2_grpc"]
