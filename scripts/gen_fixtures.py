#!/usr/bin/python3
"""Generates the PyTorch parity fixtures read by tests/core/pytorch_parity_test.cc.

Each fixture is one small network (nn.RNN / nn.LSTM / nn.GRU with batch_first=True, plus an
nn.Linear head called `head`), run forward and backward once in float32 by PyTorch 1.13; the file
holds everything the C++ engine needs to reproduce the run and every value it must match.

Regenerate (Debian's python3, the one that sees python3-torch; `python3` on PATH does not):
    /usr/bin/python3 scripts/gen_fixtures.py            # writes tests/core/fixtures/*.txt
    /usr/bin/python3 scripts/gen_fixtures.py --out DIR  # somewhere else
Generation is deterministic (one torch.manual_seed per case, one thread), so rerunning on the
same PyTorch build rewrites identical files; another BLAS may change the last bits.

File format, v1 (parsed by tests/testing/fixture.cc; keep the two in sync):
    # recurrent fixture v1                       first line, exactly
    # any other line starting with '#' is a comment; blank lines are ignored
    spec cell=lstm input_size=3 hidden_size=4 num_layers=2 bidirectional=1 head=per_step output_size=2 loss=mse
    scalar <name> <value>                        e.g. `scalar loss 0.123456789`
    <kind> <name> <rank> <dim_0> ... <dim_rank-1>
    <prod(dims) float32 values, row-major, on one line>
    labels <count>
    <count integers on one line>                 cross-entropy only
Kinds: `param` (a state_dict entry: weight_ih_l0, ..., head.weight, head.bias), `grad` (d loss /
d that parameter, same name), `tensor` (everything else). Floats are written with 9 significant
digits, which round-trips float32 exactly.

Tensors (layouts of core/network.h): inputs [N,T,I]; h0, h_n, grad_h0 [L*D,N,H]; for LSTM also
c0, c_n, grad_c0; outputs [N,T,O] (per_step) or [N,O] (last_step); hidden [N,T,D*H] (the top
layer's output); targets (mse only, shaped like outputs). `labels` are the cross-entropy class
indices, row-major over (n, t) for per_step. Scalars: loss (mean mse or mean cross-entropy).
"""

import argparse
import dataclasses
import os

import torch
import torch.nn.functional as F

FORMAT_HEADER = "# recurrent fixture v1"


@dataclasses.dataclass
class Case:
  name: str
  cell: str  # rnn_tanh, rnn_relu, lstm, gru
  input_size: int
  hidden_size: int
  num_layers: int
  bidirectional: bool
  head: str  # per_step, last_step
  output_size: int
  loss: str  # mse, cross_entropy
  batch: int  # N
  steps: int  # T
  seed: int


# Small on purpose: every file stays well under 40 KB.
CASES = [
    Case("rnn_tanh", "rnn_tanh", 3, 4, 1, False, "per_step", 2, "mse", 2, 5, 1),
    # Seeds of the relu cases are picked so that (almost) no unit is dead: a dead unit's gradients
    # are exactly zero and would test nothing.
    Case("rnn_relu", "rnn_relu", 3, 4, 1, False, "per_step", 2, "mse", 2, 5, 24),
    Case("rnn_relu_2layer_bidirectional_ce", "rnn_relu", 3, 3, 2, True, "per_step", 3,
         "cross_entropy", 2, 4, 33),
    Case("lstm", "lstm", 3, 4, 1, False, "per_step", 2, "mse", 2, 5, 3),
    Case("gru", "gru", 3, 4, 1, False, "per_step", 2, "mse", 2, 5, 4),
    Case("lstm_2layer_bidirectional", "lstm", 3, 4, 2, True, "per_step", 2, "mse", 2, 4, 5),
    Case("gru_2layer_bidirectional", "gru", 3, 4, 2, True, "per_step", 2, "mse", 2, 4, 6),
    Case("rnn_tanh_2layer_bidirectional_last_step_ce", "rnn_tanh", 2, 3, 2, True, "last_step", 3,
         "cross_entropy", 3, 4, 7),
    Case("lstm_3layer", "lstm", 2, 3, 3, False, "per_step", 2, "mse", 2, 4, 8),
    Case("gru_3layer_per_step_ce", "gru", 2, 3, 3, False, "per_step", 3, "cross_entropy", 2, 4, 9),
    Case("lstm_t1", "lstm", 3, 4, 1, False, "per_step", 2, "mse", 3, 1, 10),
    Case("gru_2layer_bidirectional_t1_last_step", "gru", 3, 4, 2, True, "last_step", 2, "mse", 2,
         1, 11),
    Case("rnn_tanh_per_step_ce", "rnn_tanh", 3, 4, 1, False, "per_step", 3, "cross_entropy", 2, 5,
         12),
    Case("lstm_last_step_ce", "lstm", 3, 4, 1, False, "last_step", 4, "cross_entropy", 3, 5, 13),
    Case("gru_2layer_bidirectional_last_step_ce", "gru", 3, 4, 2, True, "last_step", 3,
         "cross_entropy", 3, 4, 14),
    Case("rnn_relu_last_step_mse", "rnn_relu", 3, 4, 1, False, "last_step", 2, "mse", 3, 5, 15),
    Case("lstm_2layer_last_step_mse", "lstm", 3, 4, 2, False, "last_step", 1, "mse", 2, 6, 16),
    Case("lstm_tiny", "lstm", 1, 1, 1, False, "per_step", 1, "mse", 2, 6, 17),
    Case("gru_tiny", "gru", 1, 1, 1, False, "per_step", 1, "mse", 2, 6, 18),
    Case("rnn_tanh_tiny_last_step", "rnn_tanh", 1, 1, 1, False, "last_step", 1, "mse", 2, 6, 19),
]


def build_rnn(case):
  kwargs = dict(input_size=case.input_size, hidden_size=case.hidden_size,
                num_layers=case.num_layers, bidirectional=case.bidirectional, batch_first=True)
  if case.cell == "rnn_tanh":
    return torch.nn.RNN(nonlinearity="tanh", **kwargs)
  if case.cell == "rnn_relu":
    return torch.nn.RNN(nonlinearity="relu", **kwargs)
  if case.cell == "lstm":
    return torch.nn.LSTM(**kwargs)
  if case.cell == "gru":
    return torch.nn.GRU(**kwargs)
  raise ValueError(f"unknown cell {case.cell}")


def fmt_float(value):
  return "%.9g" % value


def tensor_record(kind, name, tensor):
  tensor = tensor.detach().to(torch.float32).contiguous()
  dims = list(tensor.shape)
  header = " ".join([kind, name, str(len(dims))] + [str(d) for d in dims])
  values = " ".join(fmt_float(v) for v in tensor.reshape(-1).tolist())
  return f"{header}\n{values}\n"


def run_case(case):
  torch.manual_seed(case.seed)
  rnn = build_rnn(case)
  d = 2 if case.bidirectional else 1
  head = torch.nn.Linear(d * case.hidden_size, case.output_size)
  n, t, h = case.batch, case.steps, case.hidden_size

  inputs = torch.randn(n, t, case.input_size)
  h0 = (0.5 * torch.randn(case.num_layers * d, n, h)).requires_grad_()
  c0 = (0.5 * torch.randn(case.num_layers * d, n, h)).requires_grad_() if case.cell == "lstm" else None

  if case.cell == "lstm":
    hidden, (h_n, c_n) = rnn(inputs, (h0, c0))
  else:
    hidden, h_n = rnn(inputs, h0)
    c_n = None
  outputs = head(hidden) if case.head == "per_step" else head(hidden[:, -1, :])

  targets = labels = None
  if case.loss == "mse":
    targets = torch.randn(outputs.shape)
    loss = F.mse_loss(outputs, targets)
  else:
    labels = torch.randint(0, case.output_size, (outputs.numel() // case.output_size,))
    loss = F.cross_entropy(outputs.reshape(-1, case.output_size), labels)
  loss.backward()

  params = list(rnn.named_parameters()) + [("head." + k, v) for k, v in head.named_parameters()]

  out = [FORMAT_HEADER + "\n"]
  out.append(f"# case {case.name}: seed={case.seed} N={n} T={t}; torch {torch.__version__}\n")
  out.append(f"spec cell={case.cell} input_size={case.input_size} hidden_size={h} "
             f"num_layers={case.num_layers} bidirectional={int(case.bidirectional)} "
             f"head={case.head} output_size={case.output_size} loss={case.loss}\n")
  out.append(f"scalar loss {fmt_float(loss.item())}\n")
  out.append(tensor_record("tensor", "inputs", inputs))
  out.append(tensor_record("tensor", "h0", h0))
  if c0 is not None:
    out.append(tensor_record("tensor", "c0", c0))
  if targets is not None:
    out.append(tensor_record("tensor", "targets", targets))
  if labels is not None:
    out.append(f"labels {labels.numel()}\n{' '.join(str(v) for v in labels.tolist())}\n")
  for name, p in params:
    out.append(tensor_record("param", name, p))
  out.append(tensor_record("tensor", "outputs", outputs))
  out.append(tensor_record("tensor", "hidden", hidden))
  out.append(tensor_record("tensor", "h_n", h_n))
  if c_n is not None:
    out.append(tensor_record("tensor", "c_n", c_n))
  for name, p in params:
    out.append(tensor_record("grad", name, p.grad))
  out.append(tensor_record("tensor", "grad_h0", h0.grad))
  if c0 is not None:
    out.append(tensor_record("tensor", "grad_c0", c0.grad))
  return "".join(out)


def main():
  repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  default_out = os.path.join(repo_root, "tests", "core", "fixtures")
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=default_out, help="output directory")
  args = parser.parse_args()
  torch.set_num_threads(1)
  os.makedirs(args.out, exist_ok=True)
  total = 0
  for case in CASES:
    text = run_case(case)
    path = os.path.join(args.out, case.name + ".txt")
    with open(path, "w") as f:
      f.write(text)
    total += len(text)
    print(f"{path}: {len(text)} bytes")
  print(f"{len(CASES)} fixtures, {total} bytes")


if __name__ == "__main__":
  main()
