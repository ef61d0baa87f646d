#!/usr/bin/python3
"""The recurrentd Python client, end to end: train, wait, predict, stream, import from PyTorch.

    scripts/gen_python_stubs.sh build/python
    build/bin/recurrentd --port 50051 &
    /usr/bin/python3 client/python/example.py --server 127.0.0.1:50051 --stubs build/python

1. trains a small LSTM on the built-in adding problem (each step is [value, marker]; the target
   is the sum of the two marked values) for a few seconds, following the job's progress;
2. predicts a few hand-made sequences and prints them next to the true sums;
3. streams one sequence step by step through StepPredict (the server keeps the state), whose
   last output equals the Predict answer for the whole sequence;
4. when PyTorch is installed: builds an nn.LSTM + nn.Linear, imports its weights as a new model
   and checks that the server's Predict equals PyTorch's forward pass (within 1e-5).

Exits 1 with a message if any check fails.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STUBS = os.path.join(HERE, "..", "..", "build", "python")
TOLERANCE = 1e-5  # float32 rounding between two implementations of the same network


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="recurrentd host:port")
    parser.add_argument("--stubs", default=os.environ.get("RECURRENT_PY_STUBS", DEFAULT_STUBS),
                        help="directory of the generated stubs (scripts/gen_python_stubs.sh)")
    parser.add_argument("--model", default="example-adder",
                        help="registry name of the trained model")
    parser.add_argument("--skip-torch", action="store_true", help="skip the PyTorch import step")
    return parser.parse_args()


def adding_sequence(values: list[float], marked: tuple[int, int]) -> list[list[float]]:
    """An adding-problem input: [value, 1 if marked else 0] per step."""
    return [[value, 1.0 if t in marked else 0.0] for t, value in enumerate(values)]


def train_adder(client, name: str):
    """Trains an LSTM on 2048 generated adding-problem sequences of 10 steps (about a second
    on one core); returns the finished Job."""
    from recurrent_client import model_pb2, service_pb2

    spec = model_pb2.ModelSpec(
        cell=model_pb2.CELL_TYPE_LSTM, input_size=2, hidden_size=16, num_layers=1,
        head=model_pb2.HEAD_MODE_LAST_STEP, output_size=1, loss=model_pb2.LOSS_TYPE_MSE)
    data = service_pb2.DataSource(generator=service_pb2.GeneratorSpec(
        seed=7, adding_problem=service_pb2.AddingProblemSpec(sequences=2048, length=10)))
    options = service_pb2.TrainingOptions(seed=1, batch_size=32, max_epochs=20, learning_rate=0.01,
                                          validation_split=0.1, time_budget_seconds=30)
    job_id = client.train(name, spec, data, options, labels={"example": "adding_problem"})
    print(f"submitted job {job_id}")
    return client.wait(job_id)


def torch_import_parity(client, name: str) -> float:
    """Imports a random PyTorch LSTM and returns the largest |server - torch| output difference."""
    import torch
    from recurrent_client.torch_import import artifact_from_torch, torch_forward

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(input_size=3, hidden_size=8, num_layers=2, batch_first=True)
    head = torch.nn.Linear(8, 2)
    info = client.import_artifact(name, artifact_from_torch(lstm, head, head_mode="per_step"),
                                  labels={"source": "pytorch"})
    print(f"imported {info.name} v{info.version} ({info.size_bytes} bytes)")
    rng = random.Random(1)
    sequences = [[[rng.uniform(-1, 1) for _ in range(3)] for _ in range(steps)]
                 for steps in (5, 12)]
    served = client.predict(name, sequences).outputs
    expected = torch_forward(lstm, head, sequences, head_mode="per_step")
    return max(abs(a - b) for s, e in zip(served, expected) for row_s, row_e in zip(s, e)
               for a, b in zip(row_s, row_e))


def main() -> int:
    args = parse_args()
    sys.path.insert(0, os.path.abspath(args.stubs))
    sys.path.insert(0, HERE)
    from recurrent_client import Client, Opened, StepResult, model_ref

    with Client.connect(args.server) as client:
        job = train_adder(client, args.model)
        model = model_ref(args.model, version=job.model_version)

        sequences = [
            adding_sequence([0.5, 0.1, 0.9, 0.3, 0.2, 0.7, 0.4, 0.8, 0.6, 0.0], (0, 7)),  # 1.3
            adding_sequence([0.2, 0.6, 0.1, 0.4, 0.9, 0.3, 0.5, 0.2, 0.8, 0.1], (2, 5)),  # 0.4
            adding_sequence([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.9], (1, 9)),  # 1.7
        ]
        truths = [1.3, 0.4, 1.7]
        prediction = client.predict(model, sequences)
        print(f"Predict on {prediction.model_name} v{prediction.model_version}:")
        for truth, output in zip(truths, prediction.outputs):
            print(f"  sum {truth:.2f}  predicted {output[0][0]:.3f}")

        print("StepPredict, one step per message (the output after each step):")
        last = None
        for event in client.stream(model, sequences[0]):
            if isinstance(event, Opened):
                print(f"  opened {event.model_name} v{event.model_version}")
            elif isinstance(event, StepResult):
                last = event.values[0]
                print(f"  step {event.index}: {last:.4f}")
        if last is None or abs(last - prediction.outputs[0][0][0]) > TOLERANCE:
            print(f"error: the stream's last output {last} differs from Predict's "
                  f"{prediction.outputs[0][0][0]}", file=sys.stderr)
            return 1

        if args.skip_torch:
            return 0
        try:
            importlib.import_module("torch")
        except ImportError:
            print("PyTorch is not installed: skipping the nn.LSTM import")
            return 0
        difference = torch_import_parity(client, f"{args.model}-torch")
        print(f"imported nn.LSTM: largest |server - torch| difference {difference:.2e}")
        if difference > TOLERANCE:
            print(f"error: the imported model differs from PyTorch by {difference} > {TOLERANCE}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
