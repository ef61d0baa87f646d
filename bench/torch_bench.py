#!/usr/bin/python3
"""PyTorch side of the engine benchmark: the cases of bench/engine_bench.cc, one JSON per line.

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py --cases=sgemm,train_b_lstm

Run it with Debian's /usr/bin/python3 (python3-torch 1.13). It refuses to run (exit 2) unless
PyTorch's BLAS is OpenBLAS: Debian's torch loads whatever libblas.so.3 the alternatives system
points at, and the netlib reference BLAS is 10-30x slower, so a comparison with it means nothing.

Cases (keep in sync with bench/engine_bench.cc):
  sgemm, sgemm_numpy          torch.mm / numpy.matmul of float32 2048x2048 matrices (OpenBLAS)
  {infer,train}_{a,b}_{cell}  nn.LSTM / nn.GRU (batch_first) + nn.Linear(H, 1) on every step;
                              train = zero_grad(set_to_none=True), forward, head, mse_loss,
                              backward (no optimizer step); infer = the same forward under
                              torch.inference_mode()
  step_{1,64}_{cell}          the model called on a [N, 1, I] input with the carried (h, c), then
                              the head, under torch.inference_mode()
FLOPs: as in engine_bench.cc, 2*N*G*H*(I_l+H) per step, layer and direction; training = 3x.
"""

import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# name: (N, T, I, H, L, O). Keep in sync with bench/engine_bench.cc.
SHAPES = {
    "a": (32, 100, 32, 128, 1, 1),
    "b": (64, 50, 128, 512, 2, 1),
}
STEP_SHAPE = (None, 1, 8, 256, 2, 1)  # N comes from the case name
GATES = {"lstm": 4, "gru": 3}


def emit(record):
    print(json.dumps(record), flush=True)


def blas_libraries():
    """Shared objects mapped into this process that look like a BLAS or LAPACK."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and any(k in fields[5] for k in ("blas", "lapack")):
                paths.add(fields[5])
    return sorted(paths)


def check_blas():
    """Returns a description of PyTorch's BLAS; exits loudly unless it is OpenBLAS."""
    a = torch.randn(256, 256)
    (a @ a).sum().item()  # make sure the BLAS is loaded
    libs = blas_libraries()
    openblas = [p for p in libs if "openblas" in os.path.basename(p) or "/openblas" in p]
    reference = [p for p in libs if "/blas/" in p or "/lapack/" in p]
    info = {"impl": "torch", "info": True, "torch": torch.__version__, "numpy": np.__version__,
            "blas_libraries": libs}
    config = torch.__config__.show()
    info["torch_config_blas"] = [l.strip() for l in config.splitlines() if "BLAS" in l]
    if openblas:
        lib = ctypes.CDLL(next(p for p in openblas if "libopenblas" in p))
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        info["openblas_config"] = lib.openblas_get_config().decode()
        info["openblas_core"] = lib.openblas_get_corename().decode()
        info["openblas_threads"] = lib.openblas_get_num_threads()
    if reference or not openblas:
        info["error"] = ("PyTorch is NOT using OpenBLAS (mapped: %s). Install libopenblas0-openmp "
                         "(update-alternatives libblas.so.3-x86_64-linux-gnu): a comparison with "
                         "the reference BLAS is meaningless." % libs)
        emit(info)
        print("FATAL: " + info["error"], file=sys.stderr)
        sys.exit(2)
    return info


def forward_flops(cell, n, i, h, layers, steps):
    flops = 0
    for layer in range(layers):
        width = i if layer == 0 else h
        flops += 2 * n * GATES[cell] * h * (width + h)
    return float(flops * steps)


def time_iterations(body, args):
    """Warm-up, then time each iteration; same rules as engine_bench.cc's TimeIterations."""
    start = time.perf_counter()
    i = 0
    while i < args.warmup_iters or time.perf_counter() - start < args.warmup_seconds:
        body()
        i += 1
        if time.perf_counter() - start > args.max_seconds / 4:
            break
    seconds = []
    timed_start = time.perf_counter()
    while True:
        done = len(seconds)
        if done >= args.max_iters:
            break
        if done >= args.min_iters and time.perf_counter() - timed_start >= args.min_seconds:
            break
        if done >= 1 and time.perf_counter() - start >= args.max_seconds:
            break
        t0 = time.perf_counter()
        body()
        seconds.append(time.perf_counter() - t0)
        if args.markers:
            print(f"bench_time,{args.current_case},{done},{seconds[-1]:.9g},"
                  f"{torch.get_num_threads()}")
    return sorted(seconds)


def percentile(sorted_seconds, p):
    """The same nearest-rank rule as engine_bench.cc's Timing::Percentile."""
    index = int(p * (len(sorted_seconds) - 1) + 0.5)
    return sorted_seconds[min(index, len(sorted_seconds) - 1)]


def parse_case(name):
    if name in ("sgemm", "sgemm_numpy"):
        return "sgemm", "", (2048, 1, 2048, 2048, 0, 0)
    kind, size, cell = name.split("_")
    if cell not in GATES:
        raise ValueError(name)
    if kind in ("infer", "train"):
        return kind, cell, SHAPES[size]
    if kind == "step":
        return kind, cell, (int(size),) + STEP_SHAPE[1:]
    raise ValueError(name)


def make_body(name, kind, cell, dims):
    n, t, i, h, layers, o = dims
    if name == "sgemm":
        a, b = torch.randn(n, i), torch.randn(i, h)
        c = torch.empty(n, h)
        return lambda: torch.mm(a, b, out=c), 2.0 * n * i * h
    if name == "sgemm_numpy":
        a = np.random.rand(n, i).astype(np.float32)
        b = np.random.rand(i, h).astype(np.float32)
        c = np.empty((n, h), dtype=np.float32)
        return lambda: np.matmul(a, b, out=c), 2.0 * n * i * h

    torch.manual_seed(7)
    rnn_class = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    rnn = rnn_class(i, h, layers, batch_first=True)
    head = torch.nn.Linear(h, o)
    if kind == "step":
        x = torch.rand(n, 1, i) * 2 - 1
        zeros = torch.zeros(layers, n, h)
        state = [(zeros, zeros.clone()) if cell == "lstm" else zeros]

        def step():
            with torch.inference_mode():
                out, state[0] = rnn(x, state[0])
                return head(out)
        return step, forward_flops(cell, n, i, h, layers, 1)

    x = torch.rand(n, t, i) * 2 - 1
    if kind == "infer":
        def infer():
            with torch.inference_mode():
                out, _ = rnn(x)
                return head(out)
        return infer, forward_flops(cell, n, i, h, layers, t)

    target = torch.rand(n, t, o) * 2 - 1
    params = list(rnn.parameters()) + list(head.parameters())

    def train():
        for p in params:
            p.grad = None  # zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss = F.mse_loss(head(out), target)
        loss.backward()
        return loss
    return train, 3.0 * forward_flops(cell, n, i, h, layers, t)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="sgemm,infer_a_lstm,train_a_lstm,infer_b_lstm,"
                        "train_b_lstm,step_1_lstm,step_64_lstm")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads; 0 = OMP_NUM_THREADS (required then)")
    parser.add_argument("--warmup_iters", type=int, default=2)
    parser.add_argument("--warmup_seconds", type=float, default=0.3)
    parser.add_argument("--min_iters", type=int, default=5)
    parser.add_argument("--min_seconds", type=float, default=1.0)
    parser.add_argument("--max_iters", type=int, default=20000)
    parser.add_argument("--max_seconds", type=float, default=60.0)
    parser.add_argument("--markers", action="store_true",
                        help="print 'bench_time,<case>,<iteration>,<seconds>,<threads>' after "
                        "every timed iteration (as engine_bench --markers does)")
    args = parser.parse_args()

    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0"))
    if threads < 1:
        sys.exit("set --threads or OMP_NUM_THREADS: the comparison needs an explicit thread count")
    torch.set_num_threads(threads)
    info = check_blas()
    info.update(threads=torch.get_num_threads(),
                OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", ""),
                OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", ""),
                GOMP_SPINCOUNT=os.environ.get("GOMP_SPINCOUNT", ""),
                mkldnn_enabled=torch.backends.mkldnn.enabled)
    emit(info)

    for name in [c for c in args.cases.split(",") if c]:
        kind, cell, dims = parse_case(name)
        body, flops = make_body(name, kind, cell, dims)
        args.current_case = name
        seconds = time_iterations(body, args)
        median = percentile(seconds, 0.5)
        n, t, i, h, layers, o = dims
        emit({"impl": "torch", "case": name, "kind": kind, "cell": cell, "N": n, "T": t, "I": i,
              "H": h, "L": layers, "O": o, "threads": torch.get_num_threads(),
              "iters": len(seconds), "median_s": median, "min_s": seconds[0],
              "p90_s": percentile(seconds, 0.9),
              "flops": flops, "gflops": flops / median / 1e9})


if __name__ == "__main__":
    main()
