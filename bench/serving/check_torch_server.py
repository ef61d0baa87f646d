#!/usr/bin/python3
"""Checks that bench/serving/torch_server.py computes what recurrentd computes.

    /usr/bin/python3 bench/serving/check_torch_server.py [--artifact=PATH] [--tolerance=1e-4]

Starts recurrentd ($RECURRENTD_PATH, default build/bin/recurrentd) on free ports with a temporary
--data_dir and imports the artifact there as "bench" (ModelService.ImportModel), starts
torch_server.py on the same artifact, then sends both servers the same random inputs:
  * Predict: 2 sequences x 20 steps;
  * StepPredict: one stream of 20 single-step messages, then a reset and one 5-step message;
  * a stream whose first message is a step: both must answer INVALID_ARGUMENT.
Prints the largest absolute difference per part; exits 1 when any is over --tolerance (or a
contract check fails), 0 otherwise. Both servers get SIGTERM at the end and must exit cleanly.
Without --artifact it writes the benchmark model (make_model.py) to the temporary directory.
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PYTHON = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(grpc, address, process, timeout_s=60.0):
    """Returns a channel to `address` once it accepts connections; fails if `process` exits."""
    channel = grpc.insecure_channel(address)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {address} exited with {process.returncode}")
        try:
            grpc.channel_ready_future(channel).result(timeout=0.5)
            return channel
        except grpc.FutureTimeoutError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{address} not ready after {timeout_s} s")


def wait_line(process, needle, timeout_s=120.0):
    """Reads `process`'s stdout until a line containing `needle`."""
    deadline = time.monotonic() + timeout_s
    for line in process.stdout:
        if needle in line:
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"the server never printed {needle!r} (exit code {process.poll()})")


def stop(process, name, timeout_s=30.0):
    """SIGTERM, then the exit code (SIGKILL and a failure after `timeout_s`)."""
    if process.poll() is None:
        process.terminate()
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print(f"FAIL: {name} did not exit within {timeout_s} s of SIGTERM")
        return False
    if code != 0:
        print(f"FAIL: {name} exited with {code} after SIGTERM")
        return False
    return True


def max_diff(a, b):
    if len(a) != len(b):
        raise AssertionError(f"output sizes differ: {len(a)} vs {len(b)}")
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def run_stream(stub, pb, requests):
    """Sends `requests` on one StepPredict stream; returns the responses (one per request)."""
    return list(stub.StepPredict(iter(requests)))


def stream_status(grpc, stub, requests):
    """The status code a StepPredict stream of `requests` ends with."""
    try:
        list(stub.StepPredict(iter(requests)))
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", help="model artifact (default: make_model.py's, fresh)")
    parser.add_argument("--stubs", default=os.path.join(REPO_ROOT, "build", "python"))
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.path[:0] = [args.stubs, os.path.join(REPO_ROOT, "client", "python")]
    import grpc
    from recurrent_client._stubs import service_pb2 as pb, service_pb2_grpc

    recurrentd = os.environ.get("RECURRENTD_PATH", os.path.join(REPO_ROOT, "build", "bin",
                                                                "recurrentd"))
    temp = tempfile.mkdtemp(prefix="check_torch_server.")
    processes = []
    ok = True
    try:
        artifact_path = args.artifact
        if artifact_path is None:
            artifact_path = os.path.join(temp, "bench.artifact")
            subprocess.run([PYTHON, os.path.join(HERE, "make_model.py"), artifact_path,
                            "--stubs", args.stubs], check=True, stdout=subprocess.DEVNULL)
        with open(artifact_path, "rb") as f:
            artifact = f.read()

        ours_port, torch_port = free_port(), free_port()
        ours = subprocess.Popen(
            [recurrentd, f"--port={ours_port}", f"--data_dir={os.path.join(temp, 'data')}",
             "--metrics_port=0", "--shutdown_grace_seconds=5"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(temp, "recurrentd.log"), "w"))
        processes.append(("recurrentd", ours))
        theirs = subprocess.Popen(
            [PYTHON, os.path.join(HERE, "torch_server.py"), f"--port={torch_port}",
             f"--artifact={artifact_path}", f"--stubs={args.stubs}", "--model_name=bench"],
            stdout=subprocess.PIPE, text=True,
            stderr=open(os.path.join(temp, "torch_server.log"), "w"))
        processes.append(("torch_server.py", theirs))

        ours_channel = wait_ready(grpc, f"127.0.0.1:{ours_port}", ours)
        imported = service_pb2_grpc.ModelServiceStub(ours_channel).ImportModel(
            pb.ImportModelRequest(name="bench", artifact=artifact), timeout=60)
        wait_line(theirs, "listening on")
        torch_channel = grpc.insecure_channel(f"127.0.0.1:{torch_port}")
        stubs = {"recurrentd": service_pb2_grpc.InferenceServiceStub(ours_channel),
                 "torch": service_pb2_grpc.InferenceServiceStub(torch_channel)}
        spec = imported.spec
        i_size, o_size = spec.input_size, spec.output_size
        print(f"recurrentd imported bench version {imported.version}: {spec.num_layers}-layer "
              f"cell {spec.cell}, I={i_size} H={spec.hidden_size} O={o_size}")

        rng = random.Random(args.seed)

        def rand(n):
            return [rng.uniform(-2.0, 2.0) for _ in range(n)]

        ref = pb.ModelRef(name="bench")

        # Predict: 2 sequences x 20 steps.
        request = pb.PredictRequest(model=ref, sequences=[
            pb.InputSequence(steps=20, values=rand(20 * i_size)) for _ in range(2)])
        answers = {name: stub.Predict(request, timeout=60) for name, stub in stubs.items()}
        diff = 0.0
        for a, b in zip(answers["recurrentd"].outputs, answers["torch"].outputs):
            if a.steps != b.steps:
                print(f"FAIL: Predict output steps differ: {a.steps} vs {b.steps}")
                ok = False
            diff = max(diff, max_diff(a.values, b.values))
        if len(answers["recurrentd"].outputs) != 2 or len(answers["torch"].outputs) != 2:
            print("FAIL: Predict did not return 2 outputs on both servers")
            ok = False
        values = [v for out in answers["recurrentd"].outputs for v in out.values]
        print(f"Predict (2 x 20 steps): max |difference| = {diff:.3g} "
              f"(outputs in [{min(values):.4f}, {max(values):.4f}])")
        ok &= diff <= args.tolerance

        # StepPredict: 20 single steps, then reset and one 5-step message.
        requests = [pb.StepRequest(open=pb.OpenSession(model=ref))]
        requests += [pb.StepRequest(step=pb.StepInput(steps=1, values=rand(i_size)))
                     for _ in range(20)]
        requests += [pb.StepRequest(reset=True),
                     pb.StepRequest(step=pb.StepInput(steps=5, values=rand(5 * i_size)))]
        answers = {name: run_stream(stub, pb, requests) for name, stub in stubs.items()}
        for name, responses in answers.items():
            opened = responses[0].opened
            if (responses[0].WhichOneof("kind") != "opened" or opened.model_name != "bench"
                    or opened.model_version != 1 or opened.input_size != i_size
                    or opened.output_size != o_size or opened.steps_taken != 0):
                print(f"FAIL: {name} answered open with {responses[0]}")
                ok = False
            if len(responses) != len(requests) or not responses[21].reset_done:
                print(f"FAIL: {name} gave {len(responses)} responses (want {len(requests)}) or "
                      "no reset_done")
                ok = False
        step_diff = 0.0
        for t in range(1, 21):
            a, b = answers["recurrentd"][t].output, answers["torch"][t].output
            if a.steps != 1 or b.steps != 1 or len(a.values) != o_size:
                print(f"FAIL: step {t}: outputs of {a.steps} and {b.steps} steps")
                ok = False
            step_diff = max(step_diff, max_diff(a.values, b.values))
        print(f"StepPredict (20 single steps): max |difference| = {step_diff:.3g}")
        ok &= step_diff <= args.tolerance
        a, b = answers["recurrentd"][22].output, answers["torch"][22].output
        reset_diff = max_diff(a.values, b.values) if a.steps == b.steps == 5 else float("inf")
        print(f"StepPredict (reset, then one 5-step message): max |difference| = "
              f"{reset_diff:.3g}")
        ok &= reset_diff <= args.tolerance

        # A stream that does not start with `open`.
        bad = [pb.StepRequest(step=pb.StepInput(steps=1, values=rand(i_size)))]
        codes = {name: stream_status(grpc, stub, bad) for name, stub in stubs.items()}
        print(f"step before open: {', '.join(f'{n} {c.name}' for n, c in codes.items())}")
        ok &= all(c == grpc.StatusCode.INVALID_ARGUMENT for c in codes.values())

        ours_channel.close()
        torch_channel.close()
    except Exception as error:  # report, then still stop the servers
        print(f"FAIL: {type(error).__name__}: {error}")
        ok = False
    finally:
        for name, process in processes:
            ok &= stop(process, name)
        if not ok:
            for log in ("recurrentd.log", "torch_server.log"):
                path = os.path.join(temp, log)
                if os.path.exists(path):
                    print(f"--- {log} (last lines)")
                    print("".join(open(path).readlines()[-20:]), end="")
        shutil.rmtree(temp, ignore_errors=True)
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
