#!/usr/bin/python3
"""Runs the trainer's quality suite (bench/quality_suite.cc) on 3 seeds and prints the results.

    /usr/bin/python3 bench/run_quality.py                 # builds build-bench/ if needed
    /usr/bin/python3 bench/run_quality.py --jobs 2 --out /tmp/quality.jsonl
    /usr/bin/python3 bench/run_quality.py --tasks mackey_glass,exploding --seeds 1

Every (task, seed) runs in its own process with OMP_NUM_THREADS=1, --jobs at a time, longest
first. A task passes when at least 2 of its 3 seeds pass. On this 2-core machine the whole suite
takes about an hour (the LSTM adding and copying runs dominate; tasks that must learn stop at the
first evaluation past their threshold). Prints a Markdown table and one PASS/MISS line per task;
exit status 0 when every run completed (whatever the results), 1 when a run failed.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Longest first, so that the pool finishes early.
TASKS = ["copying_lstm", "adding_lstm", "copying_rnn", "adding_gru", "adding_rnn", "mackey_glass",
         "overfitting", "exploding"]


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DRECURRENT_BUILD_TESTS=OFF"], check=True)
    subprocess.run(["cmake", "--build", build_dir, "--target", "quality_suite"], check=True)


def run_one(binary, task, seed, budget_scale, bf16):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.time()
    proc = subprocess.run([binary, f"--task={task}", f"--seed={seed}",
                           f"--budget_scale={budget_scale}", f"--bf16={'true' if bf16 else 'false'}"],
                          capture_output=True, text=True, env=env)
    wall = time.time() - start
    if proc.returncode != 0:
        return {"task": task, "seed": seed, "error": proc.stderr.strip()[-2000:], "wall": wall}
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["wall"] = wall
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--budget-scale", dest="budget_scale", type=float, default=1.0,
                        help="< 1 for a smoke run (results then do not count)")
    parser.add_argument("--bf16", action="store_true",
                        help="train and evaluate in bfloat16 (the opt-in engine precision)")
    parser.add_argument("--out", default=None, help="append raw JSON lines here")
    parser.add_argument("--summarize", default=None,
                        help="print the table for the JSON lines in this file and run nothing")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.summarize:
        with open(args.summarize) as records:
            results = [json.loads(line) for line in records if line.startswith("{")]
        return summarize(results, tasks, seeds)
    if not args.no_build:
        build(args.build_dir)
    binary = os.path.join(args.build_dir, "bin", "quality_suite")
    print(f"# Quality suite ({time.strftime('%Y-%m-%d %H:%M:%S')}), {args.jobs} jobs, "
          f"seeds {seeds}, budget scale {args.budget_scale}, "
          f"precision {'bf16' if args.bf16 else 'f32'}", flush=True)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, binary, t, s, args.budget_scale, args.bf16)
                   for t in tasks for s in seeds]
        for future in concurrent.futures.as_completed(futures):
            record = future.result()
            results.append(record)
            print(json.dumps(record), flush=True)
            if args.out:
                with open(args.out, "a") as out:
                    out.write(json.dumps(record) + "\n")
    return summarize(results, tasks, seeds)


def summarize(results, tasks, seeds):
    failed = [r for r in results if "error" in r]
    print("\n| task | figure | threshold | " + " | ".join(f"seed {s}" for s in seeds) +
          " | crossed at (iterations) | result |")
    print("|---|---|---|" + "---|" * len(seeds) + "---|---|")
    verdicts = []
    for task in tasks:
        runs = {r["seed"]: r for r in results if r["task"] == task}
        ok = [r for r in runs.values() if "error" not in r]
        if not ok:
            continue
        first = ok[0]
        cells = []
        for s in seeds:
            r = runs.get(s)
            if r is None or "error" in r:
                cells.append("error")
            else:
                extra = ""
                if task == "mackey_glass":
                    extra = f", free run {r['free_run_84_nrmse']:.3f} (AR20 {r['ar20_free_run_84_nrmse']:.3f})"
                elif task.startswith("copying"):
                    extra = f", recall {r['recall_accuracy']:.0%}"
                elif task == "exploding":
                    extra = f", clipped finite {r['clipped_finite_iterations']}"
                elif task == "overfitting":
                    extra = (f", unreg. best {r['unregularized_best']:.3f} final "
                             f"{r['unregularized_final']:.3f}")
                value = "n/a" if r["value"] is None else f"{r['value']:.4g}"
                cells.append(f"{value}{extra} {'pass' if r['pass'] else 'miss'}")
        crossed = ", ".join(str(runs[s].get("crossed_at", "-")) for s in seeds
                            if s in runs and "error" not in runs[s])
        passes = sum(1 for r in ok if r["pass"])
        verdict = "PASS" if passes >= min(2, len(seeds)) else "MISS"
        verdicts.append((task, verdict, passes, len(seeds)))
        print(f"| {task} | {first['figure']} | {first['comparison']} {first['threshold']:g} | " +
              " | ".join(cells) + f" | {crossed} | {verdict} ({passes}/{len(seeds)}) |")
    print()
    for task, verdict, passes, total in verdicts:
        print(f"{verdict} {task}: {passes} of {total} seeds pass")
    for r in failed:
        print(f"ERROR {r['task']} seed {r['seed']}: {r['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
