#!/usr/bin/python3
"""Generates the torch.optim parity fixtures for tests/core/{optimizer,lr_schedule,grad_clip}_test.

Regenerate (Debian's python3, the one that sees python3-torch; `python3` on PATH does not):
    /usr/bin/python3 scripts/gen_optim_fixtures.py            # writes tests/core/fixtures/optim/
    /usr/bin/python3 scripts/gen_optim_fixtures.py --out DIR  # somewhere else
Generation is deterministic (torch.manual_seed per case, one thread): rerunning on the same
PyTorch build and CPU capability rewrites identical files.

Why the CPU capability matters: PyTorch's AVX2/AVX512 kernels evaluate `add(x, alpha=a)` and
`addcmul` with a fused multiply-add (one rounding), its DEFAULT (no-SIMD) kernels do not. The C++
optimizer reproduces the fused kernels (std::fma), so the fixtures must come from a fused build;
the script refuses to run under ATEN_CPU_CAPABILITY=default.

All three formats are line based, whitespace separated; '#' lines are comments, blank lines are
ignored. Float32 tensors are written with 9 significant digits (round-trips float32), doubles
(learning rates, losses, norms) with 17 (round-trips double). Keep in sync with the parsers in
the three test files.

optimizer_<config>.txt: one optimizer configuration stepped 5 times with a changing lr.
    optimizer_fixture v1                             first non-comment line, exactly
    option <OptimizerOptions field> <value>          kind is sgd|adam|adamw|rmsprop, bools 0|1
    param <name> <rank> <dims...> <values...>        the initial parameter
    step <k> <lr>                                    k = 1, 2, ...: the lr passed to step k
    grad <name> <values...>                          the gradient of step k (shape of the param)
    expect <name> <values...>                        the parameter after step k

schedule_<kind>.txt: a learning-rate schedule stepped once per epoch.
    schedule_fixture v1
    option <LrScheduleOptions field> <value>         plus `base_lr`; kind is step|cosine|plateau
    epoch <e> <lr> <loss>                            the lr in effect during epoch e (0-based),
                                                     then the loss reported at its end

clip_<case>.txt: one call of clip_grad_norm_ or clip_grad_value_ on a few gradients.
    clip_fixture v1
    mode norm|value
    threshold <max_norm or clip_value>
    grad <name> <rank> <dims...> <values...>         the gradient before clipping
    norm <total_norm>                                norm mode only: PyTorch's float32 norm
    expect <name> <values...>                        the gradient after clipping
"""

import argparse
import os

import torch

OPTIMIZER_HEADER = "optimizer_fixture v1"
SCHEDULE_HEADER = "schedule_fixture v1"
CLIP_HEADER = "clip_fixture v1"

# Odd shapes on purpose: 12 elements run PyTorch's 8-wide vector loop and its scalar tail.
PARAM_SHAPES = [("weight", [3, 4]), ("bias", [5])]
NUM_STEPS = 5

# name -> (kind, OptimizerOptions fields, lr of each step). Fields left out take the C++ default.
OPTIMIZER_CASES = {
    "sgd": ("sgd", {}, [0.1, 0.05, 0.2, 0.125, 0.03]),
    "sgd_momentum_dampening": ("sgd", {"momentum": 0.9, "dampening": 0.3},
                               [0.1, 0.05, 0.2, 0.125, 0.03]),
    "sgd_nesterov": ("sgd", {"momentum": 0.8, "nesterov": True}, [0.1, 0.05, 0.2, 0.125, 0.03]),
    "sgd_weight_decay": ("sgd", {"momentum": 0.5, "weight_decay": 0.07},
                         [0.1, 0.05, 0.2, 0.125, 0.03]),
    "adam": ("adam", {}, [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
    "adam_weight_decay": ("adam", {"beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6,
                                   "weight_decay": 0.1}, [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
    "adam_amsgrad": ("adam", {"amsgrad": True, "beta2": 0.9}, [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
    "adamw": ("adamw", {"weight_decay": 0.01}, [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
    "adamw_amsgrad": ("adamw", {"weight_decay": 0.3, "amsgrad": True, "beta2": 0.9},
                      [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
    "rmsprop": ("rmsprop", {}, [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
    "rmsprop_centered_momentum": ("rmsprop", {"rmsprop_alpha": 0.9, "rmsprop_centered": True,
                                              "momentum": 0.7, "epsilon": 1e-6,
                                              "weight_decay": 0.05},
                                  [1e-2, 3e-3, 2e-2, 7e-3, 1e-3]),
}

# The C++ defaults (core/optimizer.h); written out in full so a fixture is self-describing.
OPTION_DEFAULTS = {
    "momentum": 0.0, "dampening": 0.0, "nesterov": False, "beta1": 0.9, "beta2": 0.999,
    "epsilon": 1e-8, "rmsprop_alpha": 0.99, "rmsprop_centered": False, "weight_decay": 0.0,
    "amsgrad": False,
}


def f32(values):
  return " ".join("%.9g" % v for v in values)


def f64(value):
  return "%.17g" % value


def make_torch_optimizer(kind, o, params):
  lr = 1.0  # overwritten before every step
  if kind == "sgd":
    return torch.optim.SGD(params, lr=lr, momentum=o["momentum"], dampening=o["dampening"],
                           nesterov=o["nesterov"], weight_decay=o["weight_decay"], foreach=False)
  if kind == "adam":
    return torch.optim.Adam(params, lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["epsilon"],
                            weight_decay=o["weight_decay"], amsgrad=o["amsgrad"], foreach=False)
  if kind == "adamw":
    return torch.optim.AdamW(params, lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["epsilon"],
                             weight_decay=o["weight_decay"], amsgrad=o["amsgrad"],
                             foreach=False)
  if kind == "rmsprop":
    return torch.optim.RMSprop(params, lr=lr, alpha=o["rmsprop_alpha"], eps=o["epsilon"],
                               weight_decay=o["weight_decay"], momentum=o["momentum"],
                               centered=o["rmsprop_centered"], foreach=False)
  raise ValueError(kind)


def optimizer_fixture(name, seed):
  kind, overrides, lrs = OPTIMIZER_CASES[name]
  options = dict(OPTION_DEFAULTS, **overrides)
  torch.manual_seed(seed)
  params = [torch.randn(shape) for _, shape in PARAM_SHAPES]
  for p in params:
    p.requires_grad_(True)
  # Gradients of mixed magnitude, one exact zero (Adam's 0 / eps path).
  grads = [[torch.randn(shape) * (0.1 + step) for _, shape in PARAM_SHAPES]
           for step in range(NUM_STEPS)]
  grads[0][1][2] = 0.0
  optimizer = make_torch_optimizer(kind, options, params)

  lines = [f"# {name}: torch.optim ({torch.__version__}, foreach=False), float32",
           OPTIMIZER_HEADER, f"option kind {kind}"]
  for key, value in options.items():
    lines.append(f"option {key} {int(value) if isinstance(value, bool) else f64(value)}")
  for (pname, shape), p in zip(PARAM_SHAPES, params):
    dims = " ".join(str(d) for d in shape)
    lines.append(f"param {pname} {len(shape)} {dims} {f32(p.detach().flatten().tolist())}")
  for step, lr in enumerate(lrs):
    for group in optimizer.param_groups:
      group["lr"] = lr
    for p, g in zip(params, grads[step]):
      p.grad = g.clone()
    optimizer.step()
    lines.append(f"step {step + 1} {f64(lr)}")
    for (pname, _), g in zip(PARAM_SHAPES, grads[step]):
      lines.append(f"grad {pname} {f32(g.flatten().tolist())}")
    for (pname, _), p in zip(PARAM_SHAPES, params):
      lines.append(f"expect {pname} {f32(p.detach().flatten().tolist())}")
  return "\n".join(lines) + "\n"


NUM_EPOCHS = 30
BASE_LR = 0.1
# Falls, stalls (improvements below the 1% threshold count as bad epochs), falls again, stalls
# long enough to reach min_lr.
PLATEAU_LOSSES = [
    1.0, 0.8, 0.7, 0.695, 0.699, 0.70, 0.69, 0.60, 0.61, 0.62, 0.605, 0.603, 0.5, 0.45, 0.449,
    0.4485, 0.45, 0.46, 0.447, 0.447, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38, 0.39,
]
SCHEDULE_CASES = {
    "step": {"step_size": 4, "gamma": 0.7},
    "cosine": {"t_max": 12, "eta_min": 0.003},  # 30 epochs: past T_max, into the restart
    "plateau": {"factor": 0.5, "patience": 2, "threshold": 0.01, "cooldown": 1, "min_lr": 0.004},
}


def schedule_fixture(kind):
  options = SCHEDULE_CASES[kind]
  param = torch.zeros(1, requires_grad=True)
  optimizer = torch.optim.SGD([param], lr=BASE_LR)
  if kind == "step":
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=options["step_size"],
                                                gamma=options["gamma"])
  elif kind == "cosine":
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options["t_max"],
                                                           eta_min=options["eta_min"])
  else:
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=options["factor"], patience=options["patience"],
        threshold=options["threshold"], threshold_mode="rel", cooldown=options["cooldown"],
        min_lr=options["min_lr"])
  lines = [f"# {kind}: torch.optim.lr_scheduler ({torch.__version__}), stepped once per epoch",
           SCHEDULE_HEADER, f"option kind {kind}", f"option base_lr {f64(BASE_LR)}"]
  for key, value in options.items():
    lines.append(f"option {key} {value if isinstance(value, int) else f64(value)}")
  for epoch in range(NUM_EPOCHS):
    lr = optimizer.param_groups[0]["lr"]
    loss = PLATEAU_LOSSES[epoch]
    lines.append(f"epoch {epoch} {f64(lr)} {f64(loss)}")
    optimizer.step()  # keeps PyTorch's "scheduler before optimizer" warning quiet
    if kind == "plateau":
      scheduler.step(loss)
    else:
      scheduler.step()
  return "\n".join(lines) + "\n"


CLIP_CASES = {
    "norm_above": ("norm", 1.5),  # total norm ~5: scaled down
    "norm_below": ("norm", 50.0),  # left alone (PyTorch multiplies by 1.0)
    "value": ("value", 0.75),
}


def clip_fixture(name, seed):
  mode, threshold = CLIP_CASES[name]
  torch.manual_seed(seed)
  params = [torch.zeros(shape, requires_grad=True) for _, shape in PARAM_SHAPES]
  for p in params:
    p.grad = torch.randn(p.shape)
  lines = [f"# clip_{name}: torch.nn.utils ({torch.__version__})", CLIP_HEADER, f"mode {mode}",
           f"threshold {f64(threshold)}"]
  for (pname, shape), p in zip(PARAM_SHAPES, params):
    dims = " ".join(str(d) for d in shape)
    lines.append(f"grad {pname} {len(shape)} {dims} {f32(p.grad.flatten().tolist())}")
  if mode == "norm":
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm=threshold)
    lines.append(f"norm {f64(norm.item())}")
  else:
    torch.nn.utils.clip_grad_value_(params, clip_value=threshold)
  for (pname, _), p in zip(PARAM_SHAPES, params):
    lines.append(f"expect {pname} {f32(p.grad.flatten().tolist())}")
  return "\n".join(lines) + "\n"


def cpu_capability():
  for line in torch.__config__.show().splitlines():
    if "CPU capability usage:" in line:
      return line.split(":", 1)[1].strip()
  return "unknown"


def main():
  repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  default_out = os.path.join(repo_root, "tests", "core", "fixtures", "optim")
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=default_out, help="output directory")
  args = parser.parse_args()
  capability = cpu_capability()
  if not capability.startswith("AVX"):
    raise SystemExit(f"CPU capability {capability}: the fixtures need PyTorch's fused "
                     "(AVX2/AVX512) kernels; unset ATEN_CPU_CAPABILITY")
  torch.set_num_threads(1)
  os.makedirs(args.out, exist_ok=True)
  files = {}
  for seed, name in enumerate(OPTIMIZER_CASES):
    files[f"optimizer_{name}.txt"] = optimizer_fixture(name, seed=100 + seed)
  for kind in SCHEDULE_CASES:
    files[f"schedule_{kind}.txt"] = schedule_fixture(kind)
  for seed, name in enumerate(CLIP_CASES):
    files[f"clip_{name}.txt"] = clip_fixture(name, seed=200 + seed)
  total = 0
  for file_name, text in files.items():
    with open(os.path.join(args.out, file_name), "w") as f:
      f.write(text)
    total += len(text)
  print(f"{len(files)} fixtures in {args.out}, {total} bytes (CPU capability {capability})")


if __name__ == "__main__":
  main()
