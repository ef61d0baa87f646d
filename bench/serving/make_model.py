#!/usr/bin/python3
"""Writes the serving benchmark's model artifact, deterministically.

    /usr/bin/python3 bench/serving/make_model.py OUT.artifact [--stubs build/python]

The model: nn.LSTM(input_size=8, hidden_size=256, num_layers=2, batch_first=True) followed by
nn.Linear(256, 1) on every step (per-step head), initialized by PyTorch's default initializers
after torch.manual_seed(7). The same seed and PyTorch version give the same bytes. Both servers
of the benchmark (recurrentd via ModelService.ImportModel, bench/serving/torch_server.py via
--artifact) load this one file, so they compute the same function.
"""

import argparse
import hashlib
import os
import sys

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Keep in sync with the benchmark's description (bench/serving/): the step shape of
# bench/engine_bench.cc's step_{1,64}_lstm cases.
INPUT_SIZE = 8
HIDDEN_SIZE = 256
NUM_LAYERS = 2
OUTPUT_SIZE = 1
SEED = 7


def build_model():
    """The benchmark's (lstm, head), freshly seeded."""
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    lstm = nn.LSTM(input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS,
                   batch_first=True)
    head = nn.Linear(HIDDEN_SIZE, OUTPUT_SIZE)
    return lstm, head


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="where to write the artifact file")
    parser.add_argument("--stubs", default=os.path.join(REPO_ROOT, "build", "python"),
                        help="directory of the generated Python stubs "
                             "(scripts/gen_python_stubs.sh)")
    args = parser.parse_args()
    sys.path[:0] = [args.stubs, os.path.join(REPO_ROOT, "client", "python")]
    from recurrent_client.torch_import import artifact_from_torch

    lstm, head = build_model()
    # artifact_from_torch already returns the framed file bytes (it calls
    # artifact.encode_artifact on the ModelArtifact it builds).
    data = artifact_from_torch(lstm, head, head_mode="per_step", loss="mse",
                               labels={"source": "bench/serving/make_model.py"})
    temp = args.out + ".tmp"
    with open(temp, "wb") as out:
        out.write(data)
    os.replace(temp, args.out)
    print(f"wrote {args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
