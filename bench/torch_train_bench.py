#!/usr/bin/python3
"""PyTorch side of bench/train_bench.cc: the same training loops, one JSON object per line.

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_train_bench.py --cases adding_gru

PyTorch at its best here: OpenBLAS (checked as in bench/torch_bench.py; exit 2 otherwise), the
whole data set stacked in one tensor, batches taken by indexing with a per-epoch randperm (no
DataLoader), optimizer.zero_grad(set_to_none=True), forward, head, MSE, backward, optional
clip_grad_norm_, Adam step. Iterations per second = steps / wall time after --warmup-steps.
Data values are random with the engine's shapes; they do not change the speed.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_bench import check_blas  # noqa: E402

# case: (cell, hidden, steps T, inputs, head, sequences, clip, lr)
CASES = {
    "adding_gru": ("gru", 64, 100, 2, "last", 3200, 0.0, 1e-3),
    "adding_lstm": ("lstm", 128, 100, 2, "last", 3200, 1.0, 1e-3),
    "mackey_gru": ("gru", 64, 100, 1, "per_step", 780, 0.0, 3e-3),
}


class Model(torch.nn.Module):
    def __init__(self, cell, inputs, hidden):
        super().__init__()
        rnn = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.rnn = rnn(inputs, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x, last):
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :] if last else out)


def run(name, steps, warmup):
    cell, hidden, t, inputs, head, count, clip, lr = CASES[name]
    torch.manual_seed(1)
    x = torch.rand(count, t, inputs)
    y = torch.rand(count, 1) if head == "last" else torch.rand(count, t, 1)
    model = Model(cell, inputs, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch = 32
    step = 0
    begin = None
    while step < steps:
        order = torch.randperm(count)
        for first in range(0, count, batch):
            index = order[first:first + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(model(x[index], head == "last"), y[index])
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            step += 1
            if step == warmup:
                begin = time.perf_counter()
            if step == steps:
                break
    seconds = time.perf_counter() - begin
    print(json.dumps({"impl": "torch", "case": name,
                      "iterations_per_second": (steps - warmup) / seconds,
                      "steps": steps - warmup, "final_loss": loss.item()}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup-steps", dest="warmup", type=int, default=30)
    args = parser.parse_args()
    info = check_blas()
    print(json.dumps(dict(info, impl="torch", info=True, threads=torch.get_num_threads())),
          flush=True)
    if "error" in info:
        return 2
    for name in args.cases.split(","):
        run(name, args.steps, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
