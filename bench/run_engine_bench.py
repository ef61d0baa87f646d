#!/usr/bin/python3
"""Runs the engine benchmark beside PyTorch 1.13 and prints the comparison and the targets.

    /usr/bin/python3 bench/run_engine_bench.py            # builds build-bench/ if needed
    /usr/bin/python3 bench/run_engine_bench.py --quick    # shorter timings, for trying it out

What it does (docs/benchmarks.md has the results and how to read them):
  1. builds bin/engine_bench in --build-dir (cmake + ninja, only that target);
  2. --rounds times (default 3): for 1 and 2 threads, runs bench/engine_bench.cc and
     bench/torch_bench.py, each in its own process (OMP_NUM_THREADS set per process,
     torch.set_num_threads too, no OMP_WAIT_POLICY; the engine uses its default adaptive thread
     count, between 1 and OMP_NUM_THREADS); per case the round with the lowest median is kept,
     for the engine and PyTorch alike, because interference (other processes, the VM's
     neighbours) only ever slows a run down. The engine's float32 cases run at both thread
     counts; its bfloat16 cases (`_bf16`) at 1 thread, shape (b) at 2 threads too;
  3. runs the shape (b) LSTM inference and training, the 1-stream LSTM step and (engine only)
     shape (b) bf16 LSTM inference again beside one busy-loop process, with default OpenMP
     settings: the engine's default (adaptive, at most 2 threads) long enough for its thread
     tuner to settle (every call timed; call 0, the first calls and the steady state reported
     apart), then for comparison the engine fixed at 2 threads (the old behaviour), the engine
     at 1 thread, and PyTorch at 2 and 1 threads;
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
import ctypes
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_PYTHON = "/usr/bin/python3"  # Debian's, the one that sees python3-torch

CELLS = ("lstm", "gru")
SHAPE_CASES = [f"{kind}_{shape}_{cell}" for shape in "ab" for cell in CELLS
               for kind in ("infer", "train")]
STEP_CASES = [f"step_{n}_{cell}" for cell in CELLS for n in (1, 64)]
# bfloat16 engine cases ("_bf16"): all at 1 thread, shape (b) at 2 threads as well. PyTorch runs
# float32 only: the bf16 targets compare with its float32 throughput.
BF16_CASES = [c + "_bf16" for c in SHAPE_CASES + STEP_CASES]
BF16_2T_CASES = [c + "_bf16" for c in SHAPE_CASES if "_b_" in c]
THREADS = (1, 2)
TORCH_CASES = ["sgemm", "sgemm_numpy"] + SHAPE_CASES + STEP_CASES


def engine_cases(threads):
    return (["sgemm"] + SHAPE_CASES + STEP_CASES +
            (BF16_CASES if threads == 1 else BF16_2T_CASES))


VERBOSE_CASES = ["infer_b_lstm", "train_b_lstm", "infer_b_gru", "step_1_lstm", "step_64_lstm",
                 "infer_b_lstm_bf16", "train_b_lstm_bf16", "step_1_lstm_bf16"]
# The busy neighbour: one process spinning on one core, pinned to nothing.
BUSY_LOOP = [TORCH_PYTHON, "-c", "while True: pass"]
# Contention cases: two throughput cases, the latency case, and bf16 inference (brgemm).
CONTENTION_CASES = ["infer_b_lstm", "train_b_lstm", "step_1_lstm"]
CONTENTION_BF16_CASES = ["infer_b_lstm_bf16"]
# (label, impl, OMP_NUM_THREADS, engine --fixed_threads (0 = adaptive), seconds per case beside
# the busy process as a fraction of --contention-seconds, cases). No OMP_WAIT_POLICY /
# GOMP_SPINCOUNT: the engine's goal is to degrade gracefully with default OpenMP settings.
CONTENTION_SETTINGS = [
    ("engine default (adaptive, OMP_NUM_THREADS=2)", "engine", 2, 0, 1.0,
     CONTENTION_CASES + CONTENTION_BF16_CASES),
    ("engine fixed 2 threads (no tuner)", "engine", 2, 2, 0.5, CONTENTION_CASES),
    ("engine OMP_NUM_THREADS=1", "engine", 1, 0, 0.4, CONTENTION_CASES + CONTENTION_BF16_CASES),
    ("PyTorch default (2 threads)", "torch", 2, 0, 0.5, CONTENTION_CASES),
    ("PyTorch 1 thread", "torch", 1, 0, 0.4, CONTENTION_CASES),
]
MAIN_CONTENTION_SETTING = CONTENTION_SETTINGS[0][0]
# "No collapse": beside one busy process, a run may take at most this many times its quiet
# 1-thread time (steady-state MEAN time per call, i.e. throughput: rare stalled calls count). Beside a process that occupies one of the 2 cores the best
# anyone can expect is one free core, i.e. the quiet 1-thread time; 1.25x leaves room for the VM's
# noise and the tuner's occasional probes. The ratio to the quiet 2-thread time is reported too.
COLLAPSE_FACTOR = 1.25
FIRST_CALLS = 5  # calls 1..5 (call 0 builds the primitives) are reported as "first calls"

# The targets of the issue.
STEP_LATENCY_RATIO = 0.4  # engine single-step latency <= 0.4x PyTorch's (1 thread)
THROUGHPUT_RATIO = 1.8  # engine throughput >= 1.8x PyTorch's at shape (a) and the batched step
PEAK_SHARE = 0.85  # shape (b) training at >= 85% of the sgemm peak (1 thread)
THREAD_SCALING = 1.8  # 2 threads >= 1.8x the 1-thread throughput at shape (b)
BF16_RATIO = 2.0  # engine bf16 throughput >= 2x PyTorch's float32 at shape (b) (1 thread)


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


def die_with_parent():
    """preexec_fn of every child: SIGKILL it when this driver dies (PR_SET_PDEATHSIG), so that
    an interrupted run leaves no busy loop or benchmark behind."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def run_process(cmd, env, timeout, background=None):
    """Runs one benchmark process. Returns (JSON records, other stdout lines, timed_out).

    When `background` is a list, appends the average number of CPUs that other processes kept
    busy while this one ran: the noise a "quiet" measurement suffered.
    """
    start_wall, start_busy, start_ours = time.time(), busy_cpu_seconds(), children_cpu_seconds()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=die_with_parent)
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


def timing_flags(args, contention_seconds=None):
    if contention_seconds is not None:
        # Every call timed from the first one (the engine marks each, with its thread count), for
        # at least `contention_seconds` and 10 calls; a cap bounds pathological slowdowns.
        return ["--warmup_iters=0", "--warmup_seconds=0", "--min_iters=10",
                f"--min_seconds={contention_seconds:g}", "--max_iters=100000000",
                f"--max_seconds={max(2 * contention_seconds, 30):g}"]
    return ["--warmup_iters=2", f"--warmup_seconds={args.warmup_seconds}",
            f"--min_iters={args.min_iters}", f"--min_seconds={args.min_seconds}",
            "--max_seconds=120"]


def call_times(lines, case):
    """(seconds, engine threads) of every timed call, in order, from --markers output."""
    calls = []
    for line in lines:
        if line.startswith("bench_time,"):
            fields = line.split(",")
            if fields[1] == case:
                calls.append((float(fields[3]), int(fields[4]) if len(fields) > 4 else 0))
    return calls


def phases(calls):
    """Splits a contention run's calls: call 0, calls 1..FIRST_CALLS, and the steady state =
    the calls that started in the second half of the run's (summed) time."""
    total, elapsed, steady = sum(t for t, _ in calls), 0.0, []
    for seconds, threads in calls:
        if elapsed >= total / 2:
            steady.append((seconds, threads))
        elapsed += seconds
    return {"call0": calls[0][0] if calls else None,
            "first": [c for c in calls[1:1 + FIRST_CALLS]],
            "steady": steady or calls[-1:], "calls": len(calls), "total": total}


def thread_mix(calls):
    counts = {}
    for _, threads in calls:
        counts[threads] = counts.get(threads, 0) + 1
    return ", ".join(f"{n}T x{counts[n]}" for n in sorted(counts)) or "n/a"


def engine_cmd(args, cases, flags):
    return ([os.path.join(args.build_dir, "bin", "engine_bench"), "--cases=" + ",".join(cases)] +
            flags)


def torch_cmd(cases, flags):
    return [TORCH_PYTHON, os.path.join(ROOT, "bench", "torch_bench.py"),
            "--cases=" + ",".join(cases)] + flags


class BusyNeighbour:
    """A busy-loop process running beside the benchmark while the `with` block runs."""

    def __enter__(self):
        self.proc = subprocess.Popen(BUSY_LOOP, preexec_fn=die_with_parent)
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
    parser.add_argument("--contention-seconds", dest="contention_seconds", type=float,
                        default=20.0,
                        help="seconds the engine's default setting runs each shape (b) case "
                        "beside the busy process (the step case and the comparison settings "
                        "get a fraction of it)")
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--skip-verbose", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.min_seconds, args.min_iters, args.warmup_seconds, args.rounds = 0.3, 3, 0.1, 1
        args.contention_seconds = 8.0
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
                cmd = (engine_cmd(args, engine_cases(threads), timing_flags(args))
                       if impl == "engine" else torch_cmd(TORCH_CASES, timing_flags(args)))
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
    contention = []  # one dict per (setting, case)
    if not args.skip_contention:
        for label, impl, threads, fixed, share, cases in CONTENTION_SETTINGS:
            flags_extra = [f"--fixed_threads={fixed}"] if fixed else []
            if fixed:  # the quiet reference with this setting (the rounds ran adaptive)
                log(f"{label}, quiet ...")
                records, _, _ = run_process(
                    engine_cmd(args, cases, timing_flags(args) + flags_extra),
                    bench_env(threads), timeout=600)
                all_records += [dict(r, setting=label) for r in records]
                quiet = by_case(records)
            else:
                quiet = results[(impl, threads)]
            for case in cases:
                # The step case needs less time to settle: its tuner probes every 32 calls.
                seconds = args.contention_seconds * share * (0.5 if case.startswith("step")
                                                             else 1.0)
                log(f"{label}, {case} beside a busy process ({seconds:.0f} s) ...")
                flags = timing_flags(args, contention_seconds=seconds)
                cmd = (engine_cmd(args, [case], flags + flags_extra + ["--markers"])
                       if impl == "engine" else torch_cmd([case], flags + ["--markers"]))
                others = []  # CPUs used by other processes, the busy loop included (~1.0)
                with BusyNeighbour():
                    records, other, timed_out = run_process(
                        cmd, bench_env(threads), timeout=4 * seconds + 120, background=others)
                busy = by_case(records).get(case)
                all_records += [dict(r, setting=label + " +busy") for r in records]
                row = {"label": label, "impl": impl, "threads": threads, "case": case,
                       "quiet": quiet[case], "busy": busy, "timed_out": timed_out,
                       "phases": None, "others": others[0] if others else None}
                calls = call_times(other, case)
                if calls:
                    row["phases"] = phases(calls)
                    steady = [t for t, _ in row["phases"]["steady"]]
                    all_records.append({
                        "impl": impl, "case": case, "setting": label + " +busy",
                        "n_calls": len(calls), "call0_s": calls[0][0],
                        "first_calls": row["phases"]["first"],
                        "steady_median_s": statistics.median(steady),
                        "steady_mean_s": statistics.fmean(steady),
                        "steady_threads": thread_mix(row["phases"]["steady"]),
                        "other_cpus": row["others"],
                        # every call's (seconds, threads), unless there are very many (steps)
                        "calls": calls if len(calls) <= 5000 else None})
                contention.append(row)

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
    log(f"engine: oneDNN {infos[('engine', 1)]['onednn']} (OpenMP), default adaptive thread "
        f"count; {args.rounds} quiet round(s), per case the round with the lowest median")
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
    log("## float32: engine vs PyTorch (median time per call; speedup = PyTorch time / engine "
        "time; engine threads = the thread count the engine's last timed call ran on)")
    log("")
    log("| case | threads | engine | PyTorch | speedup | engine GFLOP/s | % of sgemm peak | "
        "PyTorch GFLOP/s | PyTorch % of peak | engine threads |")
    log("|---|---|---|---|---|---|---|---|---|---|")
    for case in SHAPE_CASES + STEP_CASES:
        for threads in THREADS:
            e = results[("engine", threads)][case]
            t = results[("torch", threads)][case]
            log(f"| {case} | {threads} | {fmt_time(e['median_s'])} | {fmt_time(t['median_s'])} | "
                f"{t['median_s'] / e['median_s']:.2f}x | {e['gflops']:.1f} | "
                f"{100 * e['gflops'] / peaks[threads]:.1f}% | {t['gflops']:.1f} | "
                f"{100 * t['gflops'] / peaks[threads]:.1f}% | {e.get('engine_threads', '?')} |")

    log("")
    log("## bfloat16 engine vs float32 (engine and PyTorch; median time per call)")
    log("")
    log("rel. error = ||out_bf16 - out_f32|| / ||out_f32|| of the network's outputs on the "
        "case's inputs, same weights (forward pass).")
    log("")
    log("| case | threads | engine bf16 | engine f32 | bf16 speedup over f32 | PyTorch f32 | "
        "bf16 vs PyTorch f32 | bf16 GFLOP/s | rel. error vs f32 | engine threads |")
    log("|---|---|---|---|---|---|---|---|---|---|")
    for case in SHAPE_CASES + STEP_CASES:
        for threads in THREADS:
            b = results[("engine", threads)].get(case + "_bf16")
            if b is None:
                continue
            e = results[("engine", threads)][case]
            t = results[("torch", threads)][case]
            log(f"| {case}_bf16 | {threads} | {fmt_time(b['median_s'])} | "
                f"{fmt_time(e['median_s'])} | {e['median_s'] / b['median_s']:.2f}x | "
                f"{fmt_time(t['median_s'])} | {t['median_s'] / b['median_s']:.2f}x | "
                f"{b['gflops']:.1f} | {b.get('rel_error_vs_f32', float('nan')):.2e} | "
                f"{b.get('engine_threads', '?')} |")
    log("")
    log("bf16 accuracy cost in the trainer's quality results: measured by the quality suite, "
        "`bench/run_quality.py --bf16` (docs/benchmarks.md, \"bf16 accuracy cost on trained "
        "models\"), not by this benchmark.")

    log("")
    log("## Thread scaling (throughput at 2 threads / at 1 thread)")
    log("")
    log("| case | engine 1T | engine 2T | engine scaling | PyTorch 1T | PyTorch 2T | "
        "PyTorch scaling |")
    log("|---|---|---|---|---|---|---|")
    scaling = {}
    for case in ["sgemm"] + SHAPE_CASES + STEP_CASES + BF16_2T_CASES:
        e1, e2 = (results[("engine", n)][case] for n in THREADS)
        scaling[case] = e1["median_s"] / e2["median_s"]
        base = case.replace("_bf16", "")
        if base == case:
            t1, t2 = (results[("torch", n)][case] for n in THREADS)
            torch_cells = (f"{fmt_time(t1['median_s'])} | {fmt_time(t2['median_s'])} | "
                           f"{t1['median_s'] / t2['median_s']:.2f}x")
        else:
            torch_cells = "- | - | -"
        log(f"| {case} | {fmt_time(e1['median_s'])} | {fmt_time(e2['median_s'])} | "
            f"{scaling[case]:.2f}x | {torch_cells} |")

    no_collapse = {}
    if contention:
        log("")
        log("## Contention: beside one busy-loop process (2 CPUs, default OpenMP settings)")
        log("")
        log("Every call is timed. call 0 builds the primitives (engine) or warms up (PyTorch); "
            f"first = median of calls 1-{FIRST_CALLS} (threads they ran on); steady = the calls "
            "that started in the second half of the run; its mean is the time per call a "
            "stream of calls gets (throughput; it includes stalls and the tuner's probes), its "
            "median the typical call. vs quiet 1T / 2T = steady MEAN / the same "
            "implementation's quiet 1-thread / 2-thread median (quiet rounds). Collapse = "
            f"steady mean more than {COLLAPSE_FACTOR:.2f}x the quiet 1-thread time: beside a "
            "process that takes one of the two cores, one core's worth is the most a run can "
            "expect, and a 2-thread run should not end up below it. Engine threads: the "
            "thread count each call ran on (the tuner's choice). other CPUs = CPUs used by "
            "other processes during the run, the busy loop included: 0.7-1.0 when only the "
            "busy loop competed.")
        log("")
        log("| setting | case | quiet (same setting) | call 0 | first calls | steady median | "
            "steady mean | calls (steady: threads) | vs quiet 1T | vs quiet 2T | verdict | "
            "other CPUs |")
        log("|---|---|---|---|---|---|---|---|---|---|---|---|")
        disturbed = False
        for row in contention:
            impl, case, ph = row["impl"], row["case"], row["phases"]
            quiet1 = results[(impl, 1)][case]["median_s"]
            quiet2 = results[(impl, 2)][case]["median_s"]
            if ph is None:
                log(f"| {row['label']} | {case} | {fmt_time(row['quiet']['median_s'])} | "
                    f"no timed call (timed out) | | | | | | | COLLAPSE | |")
                no_collapse[(row["label"], case)] = (False, None, None)
                continue
            steady = [t for t, _ in ph["steady"]]
            steady_median, steady_mean = statistics.median(steady), statistics.fmean(steady)
            first = [t for t, _ in ph["first"]]
            first_text = (f"{fmt_time(statistics.median(first))} ({thread_mix(ph['first'])})"
                          if first else "n/a")
            ratio1, ratio2 = steady_mean / quiet1, steady_mean / quiet2
            ok = ratio1 <= COLLAPSE_FACTOR and not row["timed_out"]
            no_collapse[(row["label"], case)] = (ok, ratio1, ratio2)
            log(f"| {row['label']} | {case} | {fmt_time(row['quiet']['median_s'])} | "
                f"{fmt_time(ph['call0'])} | {first_text} | {fmt_time(steady_median)} | "
                f"{fmt_time(steady_mean)} | {ph['calls']} ({thread_mix(ph['steady'])}) | "
                f"{ratio1:.2f}x | {ratio2:.2f}x | {'ok' if ok else 'COLLAPSE'} | "
                f"{'n/a' if row['others'] is None else format(row['others'], '.2f')} |")
            disturbed = disturbed or (row["others"] or 0.0) > 1.15
        if disturbed:
            log("")
            log("WARNING: other processes besides the busy loop competed (other CPUs > 1.15); "
                "those rows do not measure one busy neighbour. Rerun on a quiet machine.")

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
    e2, t2 = results[("engine", 2)], results[("torch", 2)]
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
    for case in [f"{k}_b_{c}" for c in CELLS for k in ("train", "infer")]:
        ratio = t1[case]["median_s"] / e1[case + "_bf16"]["median_s"]
        ratio2 = t2[case]["median_s"] / e2[case + "_bf16"]["median_s"]
        error = e1[case + "_bf16"].get("rel_error_vs_f32", float("nan"))
        lines.append((f"bf16 1T throughput {case}_bf16 vs PyTorch float32 = {ratio:.3f}x "
                      f"(target >= {BF16_RATIO}x; at 2 threads {ratio2:.2f}x; output rel. error "
                      f"vs f32 {error:.1e})", ratio >= BF16_RATIO))
    for (label, case), (ok, ratio1, ratio2) in no_collapse.items():
        if label == MAIN_CONTENTION_SETTING:
            detail = (f"{ratio1:.2f}x the quiet 1-thread time, {ratio2:.2f}x the quiet 2-thread "
                      "time" if ratio1 is not None else "timed out")
            lines.append((f"no collapse beside one busy process, engine default (adaptive, "
                          f"OMP_NUM_THREADS=2), {case}: steady-state mean {detail} (target <= "
                          f"{COLLAPSE_FACTOR:.2f}x quiet 1T)", ok))
    for text, ok in lines:
        log(f"{verdict(ok)}  {text}")
    log("n/a   bf16 accuracy cost in the trainer's quality results: measured by "
        "`bench/run_quality.py --bf16`, not by this benchmark")
    log("")
    log(f"raw results: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
