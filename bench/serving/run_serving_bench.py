#!/usr/bin/env python3
"""Serving speed, side by side in one run (issue 7): recurrentd against the floor (a C++ gRPC echo
server with the same messages, bench/serving/echo_server.cc) and the alternative (a Python
grpc.aio server around PyTorch's nn.LSTM on OpenBLAS, bench/serving/torch_server.py), all driven by
the same closed-loop C++ load generator (bench/serving/serving_load.cc).

Model: LSTM, 2 layers, H=256, input 8, output 1 (bench/serving/make_model.py), the same weights in
every server. Loads: StepPredict with 1, 16, 64 and 256 streams (one timestep per message, each
stream waits for its prediction), and Predict with 4 callers of 8 sequences x 50 steps. Also:
recurrentd with step batching off (--step_max_batch=1), and the engine's in-process step time.

    /usr/bin/python3 bench/serving/run_serving_bench.py [--duration 10] [--out FILE.jsonl]

Prints every run as a JSON line, then the table of ratios with their targets.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(REPO, "build", "bin")
PY = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Server:
    def __init__(self, name, argv, port, env=None):
        self.name, self.port = name, port
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env=env)
        wait_port(port)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load(server, mode, concurrency, args, label):
    argv = [os.path.join(BIN, "serving_load"), f"--server=127.0.0.1:{server.port}", f"--mode={mode}",
            "--model=bench", f"--warmup_s={args.warmup}", f"--duration_s={args.duration}",
            f"--server_pid={server.process.pid}", f"--label={label}"]
    argv += [f"--streams={concurrency}"] if mode == "step" else [
        f"--clients={concurrency}", "--sequences=8", "--steps=50"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 120)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    result = json.loads(line)
    result["server"] = server.name
    if out.returncode != 0:
        result["failed"] = out.stderr[-500:]
    print(json.dumps(result), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--streams", default="1,16,64,256")
    parser.add_argument("--out", default="")
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    stream_counts = [int(n) for n in args.streams.split(",")]
    work = tempfile.mkdtemp(prefix="serving-bench-")
    artifact = os.path.join(work, "bench.rcnt")
    subprocess.run([PY, os.path.join(REPO, "bench", "serving", "make_model.py"), artifact], check=True)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")

    results = []
    engine = subprocess.run([os.path.join(BIN, "serving_load"), "--mode=engine",
                             f"--artifact={artifact}", "--duration_s=3", "--warmup_s=1",
                             "--label=engine"], capture_output=True, text=True, env=env, check=True)
    engine_result = json.loads(engine.stdout.strip().splitlines()[-1])
    engine_result["server"] = "engine"
    print(json.dumps(engine_result), flush=True)
    results.append(engine_result)

    def recurrentd(name, extra):
        port = free_port()
        data = os.path.join(work, name)
        server = Server(name, [os.path.join(BIN, "recurrentd"), f"--port={port}", "--metrics_port=0",
                               f"--data_dir={data}",
                               # one load generator opens up to 256 streams
                               "--max_streams_per_client=0"] + extra, port, env)
        subprocess.run([os.path.join(BIN, "recurrent"), "--server", f"127.0.0.1:{port}", "models",
                        "import", "bench", artifact], check=True, stdout=subprocess.DEVNULL)
        return server

    servers = []
    try:
        servers.append(recurrentd("recurrentd", []))
        servers.append(recurrentd("recurrentd-nobatch", ["--step_max_batch=1"]))
        port = free_port()
        servers.append(Server("echo", [os.path.join(BIN, "echo_server"), f"--port={port}"], port))
        if not args.skip_torch:
            port = free_port()
            servers.append(Server("python-torch", [PY, os.path.join(REPO, "bench", "serving",
                                                                    "torch_server.py"),
                                                   f"--port={port}", f"--artifact={artifact}",
                                                   "--threads=1",
                                                   f"--stubs={os.path.join(REPO, 'build', 'python')}"],
                                  port, env))
        for server in servers:
            for n in stream_counts:
                if server.name == "recurrentd-nobatch" and n not in (64,):
                    continue
                results.append(load(server, "step", n, args, f"{server.name} step x{n}"))
            if server.name != "recurrentd-nobatch":
                results.append(load(server, "predict", 4, args, f"{server.name} predict x4"))
    finally:
        for server in servers:
            server.stop()
    if args.out:
        with open(args.out, "w") as f:
            for result in results:
                f.write(json.dumps(result) + "\n")
    summarize(results, engine_result)


def summarize(results, engine):
    def find(server, mode, n):
        for r in results:
            if r.get("server") == server and r.get("mode") == mode and r.get("concurrency") == n:
                return r
        return None

    rows = []

    def check(name, value, target, passed):
        rows.append((name, value, target, "PASS" if passed else "MISS"))

    ours1, echo1, torch1 = find("recurrentd", "step", 1), find("echo", "step", 1), find(
        "python-torch", "step", 1)
    if ours1 and echo1:
        floor = echo1["p50_us"] + engine["p50_us"] + 20
        check("StepPredict 1 stream p50 vs echo p50 + engine step + 20 us",
              f"{ours1['p50_us']:.0f} us vs {floor:.0f} us", "<= 1.0x", ours1["p50_us"] <= floor)
    if ours1 and torch1:
        ratio = ours1["p50_us"] / torch1["p50_us"]
        check("StepPredict 1 stream p50 / Python's", f"{ratio:.2f}x", "<= 0.35x", ratio <= 0.35)
    ours64, echo64, torch64, nobatch64 = (find("recurrentd", "step", 64), find("echo", "step", 64),
                                          find("python-torch", "step", 64),
                                          find("recurrentd-nobatch", "step", 64))
    if ours64 and torch64:
        ratio = ours64["throughput"] / torch64["throughput"]
        check("64 streams throughput / Python's", f"{ratio:.1f}x", ">= 5x", ratio >= 5)
    if ours64 and echo64:
        ratio = ours64["throughput"] / echo64["throughput"]
        check("64 streams throughput / echo's", f"{ratio:.2f}", ">= 0.60", ratio >= 0.6)
    if ours64 and nobatch64:
        ratio = ours64["throughput"] / nobatch64["throughput"]
        check("64 streams throughput / batching off", f"{ratio:.1f}x", ">= 3x", ratio >= 3)
    ours_p, torch_p = find("recurrentd", "predict", 4), find("python-torch", "predict", 4)
    if ours_p and torch_p:
        ratio = ours_p["throughput"] / torch_p["throughput"]
        check("Predict throughput / Python's", f"{ratio:.1f}x", ">= 3x", ratio >= 3)

    print("\n| server | load | throughput/s | p50 us | p90 us | p99 us | server CPU us/req |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.get('server')} | {r.get('mode')} x{r.get('concurrency')} | "
              f"{r.get('throughput', 0):.0f} | {r.get('p50_us', 0):.0f} | {r.get('p90_us', 0):.0f} | "
              f"{r.get('p99_us', 0):.0f} | {r.get('server_cpu_us_per_request', 0):.0f} |")
    print("\n| check | measured | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    misses = [row[0] for row in rows if row[3] == "MISS"]
    print(f"\n{len(rows) - len(misses)}/{len(rows)} targets met" +
          (f"; missed: {'; '.join(misses)}" if misses else ""))


if __name__ == "__main__":
    sys.exit(main())
