#!/usr/bin/python3
"""End-to-end training speed: core::Train against the same loop in PyTorch + OpenBLAS.

    /usr/bin/python3 bench/run_train_bench.py            # builds build-bench/ if needed
    /usr/bin/python3 bench/run_train_bench.py --rounds 3 --steps 300

For 1 and 2 threads (OMP_NUM_THREADS, and torch.set_num_threads through it), runs
bench/train_bench.cc and bench/torch_train_bench.py --rounds times each, alternating, keeps each
side's best round per case (interference only slows a run down), and prints iterations per
second, the ratio and the target (>= 1.5x PyTorch). Exit status 2 when PyTorch is not on OpenBLAS.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ["adding_gru", "adding_lstm", "mackey_gru"]
TARGET = 1.5


def run(command, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit(proc.returncode)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    if not args.no_build:
        if not os.path.exists(os.path.join(args.build_dir, "build.ninja")):
            subprocess.run(["cmake", "-S", ROOT, "-B", args.build_dir, "-G", "Ninja",
                            "-DCMAKE_BUILD_TYPE=Release", "-DRECURRENT_BUILD_TESTS=OFF"],
                           check=True)
        subprocess.run(["cmake", "--build", args.build_dir, "--target", "train_bench"], check=True)
    engine = [os.path.join(args.build_dir, "bin", "train_bench"), f"--steps={args.steps}"]
    torch = ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_train_bench.py"),
             "--steps", str(args.steps)]
    print(f"# Training speed ({time.strftime('%Y-%m-%d %H:%M:%S')}), {args.rounds} rounds, "
          f"{args.steps} steps per case", flush=True)
    best = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        for round_index in range(args.rounds):
            for impl, command in (("engine", engine), ("torch", torch)):
                for record in run(command, threads):
                    print(json.dumps(dict(record, threads=threads, round=round_index)),
                          flush=True)
                    if record.get("info"):
                        continue
                    key = (impl, record["case"], threads)
                    best[key] = max(best.get(key, 0.0), record["iterations_per_second"])
    print("\n| case | threads | engine it/s | PyTorch it/s | ratio | target | result |")
    print("|---|---|---|---|---|---|---|")
    lines = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for case in CASES:
            e, t = best[("engine", case, threads)], best[("torch", case, threads)]
            ratio = e / t
            verdict = "PASS" if ratio >= TARGET else "MISS"
            print(f"| {case} | {threads} | {e:.1f} | {t:.1f} | {ratio:.2f}x | >= {TARGET}x | "
                  f"{verdict} |")
            lines.append(f"{verdict} {case} {threads}T: {ratio:.2f}x PyTorch (target {TARGET}x)")
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
