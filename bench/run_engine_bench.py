#!/usr/bin/python3
"""Runs the engine benchmark beside PyTorch 1.13 and prints the comparison and the targets.

    /usr/bin/python3 bench/run_engine_bench.py            # builds build-bench/ if needed
    /usr/bin/python3 bench/run_engine_bench.py --quick    # shorter timings, for trying it out

What it does (docs/benchmarks.md has the results and how to read them):
  1. builds bin/engine_bench in --build-dir (cmake + ninja, only that target);
  2. --rounds times (default 3): for 1 and 2 threads, runs bench/engine_bench.cc and
     bench/torch_bench.py, each in its own process (OMP_NUM_THREADS set per process,
     torch.set_num_threads too, no OMP_WAIT_POLICY); per case the round with the lowest median
     is kept, for the engine and PyTorch alike, because interference (other processes, the VM's
     neighbours) only ever slows a run down;
  3. runs the 2-thread shape (b) LSTM inference and training and the 1-stream LSTM step again
     beside one busy-loop process: default OpenMP settings, OMP_WAIT_POLICY=PASSIVE,
     GOMP_SPINCOUNT=1000 (engine only) and the 1-thread fallback;
  4. runs a few engine cases under ONEDNN_VERBOSE=2 and summarizes, per call, which oneDNN
     implementations ran, how long they took and how many primitives / reorders were made;
  5. prints tables (Markdown) and one PASS/MISS line per target; raw JSON lines go to --out.

Throughput is the inverse of the median time of one call; FLOPs count the RNN's multiply-adds:
per timestep, layer and direction 2*N*G*H*(I_l + H) forward (G = 4 LSTM, 3 GRU; the O = 1 head is
not counted); a training step counts 3x that. The sgemm peak is oneDNN's dnnl_sgemm on
2048^3 float32 at the same thread count, measured in the same run.

Exit status: 0 when the run completed (whatever the targets say), 1 when a benchmark failed,
2 when PyTorch is not on OpenBLAS.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_PYTHON = "/usr/bin/python3"  # Debian's, the one that sees python3-torch

CELLS = ("lstm", "gru")
SHAPE_CASES = [f"{kind}_{shape}_{cell}" for shape in "ab" for cell in CELLS
               for kind in ("infer", "train")]
STEP_CASES = [f"step_{n}_{cell}" for cell in CELLS for n in (1, 64)]
ENGINE_CASES = ["sgemm"] + SHAPE_CASES + STEP_CASES
TORCH_CASES = ["sgemm", "sgemm_numpy"] + SHAPE_CASES + STEP_CASES
# Throughput cases the contention targets apply to, then a latency case for information.
CONTENTION_CASES = ["infer_b_lstm", "train_b_lstm", "step_1_lstm"]
CONTENTION_TARGET_CASES = ("infer_b_lstm", "train_b_lstm")
VERBOSE_CASES = ["infer_b_lstm", "train_b_lstm", "infer_b_gru", "step_1_lstm", "step_64_lstm"]
THREADS = (1, 2)
# The busy neighbour: one process spinning on one core, pinned to nothing.
BUSY_LOOP = [TORCH_PYTHON, "-c", "while True: pass"]
# (label, OMP_NUM_THREADS, extra environment, also run PyTorch). libgomp's spin count: 300000
# by default (sleeping only after that), 0 with OMP_WAIT_POLICY=PASSIVE.
CONTENTION_SETTINGS = [
    ("default", 2, {}, True),
    ("OMP_WAIT_POLICY=PASSIVE", 2, {"OMP_WAIT_POLICY": "PASSIVE"}, True),
    ("GOMP_SPINCOUNT=1000", 2, {"GOMP_SPINCOUNT": "1000"}, False),
    ("OMP_NUM_THREADS=1", 1, {}, True),
]
# "No collapse": beside one busy process a 2-thread run may take at most this many times its
# quiet 2-thread time. A fair share of 2 cores among 3 busy threads alone gives ~1.5x.
COLLAPSE_FACTOR = 2.0

# The targets of the issue.
STEP_LATENCY_RATIO = 0.4  # engine single-step latency <= 0.4x PyTorch's (1 thread)
THROUGHPUT_RATIO = 1.8  # engine throughput >= 1.8x PyTorch's at shape (a) and the batched step
PEAK_SHARE = 0.85  # shape (b) training at >= 85% of the sgemm peak (1 thread)
THREAD_SCALING = 1.8  # 2 threads >= 1.8x the 1-thread throughput at shape (b)


def log(message=""):
    print(message, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def cpu_model():
    model, cpus = "unknown", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return model, cpus


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DRECURRENT_BUILD_TESTS=OFF",
                        "-DRECURRENT_BUILD_BENCH=ON"], check=True)
    subprocess.run(["ninja", "-C", build_dir, "engine_bench"], check=True)


def bench_env(threads, extra=None):
    """The environment of one benchmark process: OpenMP knobs cleared, then set on purpose."""
    env = dict(os.environ)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES",
                 "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_CORETYPE",
                 "ONEDNN_VERBOSE", "DNNL_VERBOSE", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = str(threads)
    env.update(extra or {})
    return env


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent busy since boot (all CPUs, from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(cmd, env, timeout, background=None):
    """Runs one benchmark process. Returns (JSON records, other stdout lines, timed_out).

    When `background` is a list, appends the average number of CPUs that other processes kept
    busy while this one ran: the noise a "quiet" measurement suffered.
    """
    start_wall, start_busy, start_ours = time.time(), busy_cpu_seconds(), children_cpu_seconds()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if background is not None:
            ours = children_cpu_seconds() - start_ours
            background.append(max(0.0, (busy_cpu_seconds() - start_busy - ours) /
                                  (time.time() - start_wall)))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return parse_lines(out)[0], [], True
    records, other = parse_lines(proc.stdout)
    if proc.returncode != 0:
        log(f"\nFAILED (exit {proc.returncode}): {' '.join(cmd)}")
        log(proc.stdout[-4000:])
        log(proc.stderr[-4000:])
        sys.exit(2 if proc.returncode == 2 else 1)
    return records, other, False


def parse_lines(text):
    records, other = [], []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        else:
            other.append(line)
    return records, other


def timing_flags(args, contention=False):
    if contention:
        # Few iterations and a time cap: under contention one call can take 100x longer.
        return ["--warmup_iters=1", "--warmup_seconds=0", "--min_iters=3", "--min_seconds=1",
                f"--max_seconds={args.contention_max_seconds}"]
    return ["--warmup_iters=2", f"--warmup_seconds={args.warmup_seconds}",
            f"--min_iters={args.min_iters}", f"--min_seconds={args.min_seconds}",
            "--max_seconds=120"]


def engine_cmd(args, cases, flags):
    return ([os.path.join(args.build_dir, "bin", "engine_bench"), "--cases=" + ",".join(cases)] +
            flags)


def torch_cmd(cases, flags):
    return [TORCH_PYTHON, os.path.join(ROOT, "bench", "torch_bench.py"),
            "--cases=" + ",".join(cases)] + flags


class BusyNeighbour:
    """A busy-loop process running beside the benchmark while the `with` block runs."""

    def __enter__(self):
        self.proc = subprocess.Popen(BUSY_LOOP)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def by_case(records):
    return {r["case"]: r for r in records if "case" in r}


def fmt_time(seconds):
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def verdict(ok):
    return "PASS" if ok else "MISS"


def summarize_verbose(lines, case):
    """The last timed call: oneDNN executions by primitive/implementation, creations, time."""
    calls = []
    current = None
    for line in lines:
        if line.startswith("bench_marker,"):
            current = {"exec": {}, "hit": 0, "miss": 0, "exec_ms": 0.0, "wall_ms": None}
            calls.append(current)
            continue
        if current is None:
            continue
        if line.startswith("bench_time,"):
            current["wall_ms"] = 1e3 * float(line.split(",")[3])
            continue
        if not line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            continue
        fields = line.split(",")
        if fields[1].startswith("create"):
            current["hit" if "cache_hit" in fields[1] else "miss"] += 1
        elif fields[1] == "exec":
            key = f"{fields[3]}:{fields[4]}:{fields[5]}"
            count, ms = current["exec"].get(key, (0, 0.0))
            current["exec"][key] = (count + 1, ms + float(fields[-1]))
            current["exec_ms"] += float(fields[-1])
    if not calls or calls[-1]["wall_ms"] is None:
        return f"{case}: no verbose output"
    last = calls[-1]
    parts = [f"{key.replace(':undef', '')} x{count} ({ms:.2f} ms)"
             for key, (count, ms) in sorted(last["exec"].items())]
    outside = last["wall_ms"] - last["exec_ms"]
    return (f"{case}: {', '.join(parts)}; primitives created during the call: "
            f"{last['hit']} from the cache, {last['miss']} new; call {last['wall_ms']:.2f} ms, "
            f"of which outside oneDNN primitives {outside:.2f} ms "
            f"({100 * outside / last['wall_ms']:.0f}%; verbose logging inflates small calls)")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--no-build", action="store_true", help="use the existing binary")
    parser.add_argument("--out", default=None,
                        help="raw JSON lines (default: <build-dir>/engine_bench_results.jsonl)")
    parser.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="quiet rounds (each: engine and PyTorch at 1 and 2 threads); per "
                        "case the round with the lowest median counts, for both alike")
    parser.add_argument("--min-seconds", dest="min_seconds", type=float, default=1.0)
    parser.add_argument("--min-iters", dest="min_iters", type=int, default=5)
    parser.add_argument("--warmup-seconds", dest="warmup_seconds", type=float, default=0.3)
    parser.add_argument("--contention-max-seconds", dest="contention_max_seconds", type=float,
                        default=20.0)
    parser.add_argument("--contention-timeout", dest="contention_timeout", type=float,
                        default=90.0)
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--skip-verbose", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.min_seconds, args.min_iters, args.warmup_seconds, args.rounds = 0.3, 3, 0.1, 1
    out_path = args.out or os.path.join(args.build_dir, "engine_bench_results.jsonl")
    started = time.time()

    if not args.no_build:
        build(args.build_dir)
    model, cpus = cpu_model()
    load_start = load_average()
    busy_before = busy_cpu_seconds()
    time.sleep(2.0)
    idle_check = (busy_cpu_seconds() - busy_before) / 2.0
    log(f"# Engine benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')})")
    log(f"machine: {model}, {cpus} CPUs; load average at start {' '.join(load_start)}; "
        f"{idle_check:.2f} CPUs busy in the 2 s before starting")
    if idle_check > 0.2:
        log("WARNING: the machine is not quiet; timings will be noisy.")

    all_records = []
    results = {}  # (impl, threads) -> {case: record with the lowest median over the rounds}
    rounds = {}  # (impl, threads) -> [{case: record} per round]
    infos = {}
    background = {}  # (impl, threads) -> [CPUs other processes kept busy, per round]
    # --- 2. Quiet rounds: engine and PyTorch at 1 and 2 threads, one process each. ---
    for round_index in range(args.rounds):
        for threads in THREADS:
            for impl in ("engine", "torch"):
                log(f"round {round_index + 1}/{args.rounds}: {impl}, {threads} thread(s) ... "
                    f"(load {' '.join(load_average())})")
                cmd = (engine_cmd(args, ENGINE_CASES, timing_flags(args)) if impl == "engine"
                       else torch_cmd(TORCH_CASES, timing_flags(args)))
                records, _, timed_out = run_process(
                    cmd, bench_env(threads), timeout=900,
                    background=background.setdefault((impl, threads), []))
                if timed_out:
                    log(f"FAILED: {impl} at {threads} threads timed out")
                    sys.exit(1)
                all_records += [dict(r, setting="quiet", round=round_index) for r in records]
                infos[(impl, threads)] = next(r for r in records if r.get("info"))
                rounds.setdefault((impl, threads), []).append(by_case(records))
    for key, per_round in rounds.items():
        results[key] = {case: min((r[case] for r in per_round), key=lambda r: r["median_s"])
                        for case in per_round[0]}

    # --- 3. Contention: one busy-loop process beside the benchmark. ---
    contention = {}  # (impl, setting, case) -> (quiet record, busy record or None)
    if not args.skip_contention:
        for label, threads, extra, with_torch in CONTENTION_SETTINGS:
            for impl in ("engine", "torch") if with_torch else ("engine",):
                make = ((lambda cases, flags: engine_cmd(args, cases, flags)) if impl == "engine"
                        else torch_cmd)
                if extra:  # the quiet reference with this setting
                    log(f"{impl}, {label}, quiet ...")
                    records, _, _ = run_process(make(CONTENTION_CASES, timing_flags(args)),
                                                bench_env(threads, extra), timeout=600)
                    all_records += [dict(r, setting=label) for r in records]
                    quiet = by_case(records)
                else:
                    quiet = results[(impl, threads)]
                for case in CONTENTION_CASES:
                    log(f"{impl}, {label}, {case} beside a busy process ...")
                    with BusyNeighbour():
                        records, _, _ = run_process(
                            make([case], timing_flags(args, contention=True)),
                            bench_env(threads, extra), timeout=args.contention_timeout)
                    busy = by_case(records).get(case)
                    all_records += [dict(r, setting=label + " +busy") for r in records]
                    contention[(impl, label, case)] = (quiet[case], busy)

    # --- 4. Which oneDNN implementations ran, per call (engine, 1 thread). ---
    verbose_lines = []
    if not args.skip_verbose:
        for case in VERBOSE_CASES:
            log(f"engine {case} under ONEDNN_VERBOSE=2 ...")
            _, other, _ = run_process(
                engine_cmd(args, [case], ["--markers", "--warmup_iters=1", "--warmup_seconds=0",
                                          "--min_iters=2", "--min_seconds=0"]),
                bench_env(1, {"ONEDNN_VERBOSE": "2"}), timeout=300)
            verbose_lines.append(summarize_verbose(other, case))

    with open(out_path, "w") as f:
        for r in all_records:
            f.write(json.dumps(r) + "\n")
    load_end = load_average()

    # --- 5. Report. ---
    tinfo = infos[("torch", 1)]
    log("")
    log(f"machine: {model}, {cpus} CPUs; load average at start {' '.join(load_start)}, "
        f"at end {' '.join(load_end)}; {idle_check:.2f} CPUs busy just before the start; "
        f"wall time {time.time() - started:.0f} s")
    noise = ", ".join(f"{impl} {threads}T " + "/".join(f"{c:.2f}" for c in values)
                      for (impl, threads), values in background.items())
    log(f"CPUs kept busy by other processes during the quiet rounds (of {cpus}): {noise}")
    if max(max(v) for v in background.values()) > 0.1:
        log("WARNING: other processes competed with the quiet runs; rerun on a quiet machine.")
    log(f"engine: oneDNN {infos[('engine', 1)]['onednn']} (OpenMP); "
        f"{args.rounds} quiet round(s), per case the round with the lowest median")
    log(f"PyTorch {tinfo['torch']}, BLAS: {tinfo.get('openblas_config')} "
        f"(core {tinfo.get('openblas_core')}); mapped: {', '.join(tinfo['blas_libraries'])}")
    log(f"torch.__config__.show(): {'; '.join(tinfo['torch_config_blas'])[:100]} ...")
    log("FLOPs: per timestep, layer and direction 2*N*G*H*(I_l+H) forward, G = 4 (LSTM) / 3 "
        "(GRU), head (O = 1) not counted; training = 3x forward.")
    log("Shapes: a = N32 T100 I32 H128 L1; b = N64 T50 I128 H512 L2; step = I8 H256 L2 with "
        "N = 1 or 64 streams; head output O = 1 (per-step linear head, MSE loss).")

    peaks = {threads: results[("engine", threads)]["sgemm"]["gflops"] for threads in THREADS}
    log("")
    log("## sgemm 2048^3 float32 (GFLOP/s; each quiet round, best in bold)")
    log("")
    log("| threads | oneDNN dnnl_sgemm | torch.mm (OpenBLAS) | numpy (OpenBLAS) |")
    log("|---|---|---|---|")
    for threads in THREADS:
        cells = []
        for impl, case in (("engine", "sgemm"), ("torch", "sgemm"), ("torch", "sgemm_numpy")):
            values = [r[case]["gflops"] for r in rounds[(impl, threads)]]
            cells.append(" / ".join(f"**{v:.1f}**" if v == max(values) else f"{v:.1f}"
                                    for v in values))
        log(f"| {threads} | {' | '.join(cells)} |")

    log("")
    log("## Engine vs PyTorch (median time per call; speedup = PyTorch time / engine time)")
    log("")
    log("| case | threads | engine | PyTorch | speedup | engine GFLOP/s | % of sgemm peak | "
        "PyTorch GFLOP/s | PyTorch % of peak |")
    log("|---|---|---|---|---|---|---|---|---|")
    for case in SHAPE_CASES + STEP_CASES:
        for threads in THREADS:
            e = results[("engine", threads)][case]
            t = results[("torch", threads)][case]
            log(f"| {case} | {threads} | {fmt_time(e['median_s'])} | {fmt_time(t['median_s'])} | "
                f"{t['median_s'] / e['median_s']:.2f}x | {e['gflops']:.1f} | "
                f"{100 * e['gflops'] / peaks[threads]:.1f}% | {t['gflops']:.1f} | "
                f"{100 * t['gflops'] / peaks[threads]:.1f}% |")

    log("")
    log("## Thread scaling (throughput at 2 threads / at 1 thread)")
    log("")
    log("| case | engine 1T | engine 2T | engine scaling | PyTorch 1T | PyTorch 2T | "
        "PyTorch scaling |")
    log("|---|---|---|---|---|---|---|")
    scaling = {}
    for case in ["sgemm"] + SHAPE_CASES + STEP_CASES:
        e1, e2 = (results[("engine", n)][case] for n in THREADS)
        t1, t2 = (results[("torch", n)][case] for n in THREADS)
        scaling[case] = e1["median_s"] / e2["median_s"]
        log(f"| {case} | {fmt_time(e1['median_s'])} | {fmt_time(e2['median_s'])} | "
            f"{scaling[case]:.2f}x | {fmt_time(t1['median_s'])} | {fmt_time(t2['median_s'])} | "
            f"{t1['median_s'] / t2['median_s']:.2f}x |")

    no_collapse = {}
    if contention:
        log("")
        log("## Contention: beside one busy-loop process (2 CPUs)")
        log("")
        log("slowdown = median beside the busy process / quiet median with the same setting; "
            "vs 2T = / quiet default 2-thread median (what a user loses). Collapse = more than "
            f"{COLLAPSE_FACTOR:.1f}x the quiet 2-thread time (2-thread settings only).")
        log("")
        log("| impl | setting | case | quiet | beside busy | slowdown | vs 2T | verdict |")
        log("|---|---|---|---|---|---|---|---|")
        for (impl, label, case), (quiet, busy) in contention.items():
            reference = results[(impl, 2)][case]["median_s"]
            two_threads = next(s[1] for s in CONTENTION_SETTINGS if s[0] == label) == 2
            if busy is None:
                bound = args.contention_timeout / 2
                busy_text = f"> {fmt_time(bound)} (timed out)"
                slow = f"> {bound / quiet['median_s']:.0f}x"
                versus = f"> {bound / reference:.0f}x"
                ok = False
            else:
                busy_text = fmt_time(busy["median_s"])
                slow = f"{busy['median_s'] / quiet['median_s']:.2f}x"
                versus = f"{busy['median_s'] / reference:.2f}x"
                ok = busy["median_s"] <= COLLAPSE_FACTOR * reference
            if two_threads:
                no_collapse[(impl, label, case)] = ok
            state = ("ok" if ok else "COLLAPSE") if two_threads else "(1 thread)"
            log(f"| {impl} | {label} | {case} | {fmt_time(quiet['median_s'])} | {busy_text} | "
                f"{slow} | {versus} | {state} |")
        log("")
        for case in CONTENTION_CASES:
            timed = [(label, contention[("engine", label, case)]) for label, *_ in
                     CONTENTION_SETTINGS]
            best = min(timed, key=lambda x: x[1][1]["median_s"] if x[1][1] else 1e9)
            log(f"engine {case}: fastest beside the busy process with {best[0]}; quiet cost of "
                "each setting vs default 2T: " + ", ".join(
                    f"{label} {q['median_s'] / results[('engine', 2)][case]['median_s']:.2f}x"
                    for label, (q, _) in timed))

    if verbose_lines:
        log("")
        log("## oneDNN implementations per engine call (1 thread, ONEDNN_VERBOSE=2)")
        log("")
        for line in verbose_lines:
            log("- " + line)

    # --- Targets. ---
    log("")
    log("## Targets")
    log("")
    e1, t1 = results[("engine", 1)], results[("torch", 1)]
    lines = []
    for cell in CELLS:
        case = f"step_1_{cell}"
        ratio = e1[case]["median_s"] / t1[case]["median_s"]
        lines.append((f"float32 1T single-step latency {cell}: engine/PyTorch = {ratio:.3f} "
                      f"({fmt_time(e1[case]['median_s'])} vs {fmt_time(t1[case]['median_s'])}; "
                      f"target <= {STEP_LATENCY_RATIO})", ratio <= STEP_LATENCY_RATIO))
    for case in [f"{k}_a_{c}" for c in CELLS for k in ("infer", "train")] + \
            [f"step_64_{c}" for c in CELLS]:
        ratio = t1[case]["median_s"] / e1[case]["median_s"]
        lines.append((f"float32 1T throughput {case}: engine/PyTorch = {ratio:.3f}x "
                      f"(target >= {THROUGHPUT_RATIO}x)", ratio >= THROUGHPUT_RATIO))
    for cell in CELLS:
        case = f"train_b_{cell}"
        share = e1[case]["gflops"] / peaks[1]
        lines.append((f"float32 1T {case} at {100 * share:.1f}% of sgemm peak "
                      f"({e1[case]['gflops']:.1f} of {peaks[1]:.1f} GFLOP/s; target >= "
                      f"{100 * PEAK_SHARE:.0f}%)", share >= PEAK_SHARE))
    for case in [f"{k}_b_{c}" for c in CELLS for k in ("infer", "train")]:
        lines.append((f"2T/1T throughput {case} = {scaling[case]:.3f}x (target >= "
                      f"{THREAD_SCALING}x; sgemm scaled {scaling['sgemm']:.2f}x)",
                      scaling[case] >= THREAD_SCALING))
    for (impl, label, case), ok in no_collapse.items():
        if impl == "engine" and case in CONTENTION_TARGET_CASES:
            lines.append((f"2T no collapse beside a busy process, {case}, {label} (<= "
                          f"{COLLAPSE_FACTOR:.1f}x the quiet default 2-thread time)", ok))
    lines.append(("bf16: not implemented", False))
    for text, ok in lines:
        log(f"{verdict(ok)}  {text}")
    log("")
    log(f"raw results: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
