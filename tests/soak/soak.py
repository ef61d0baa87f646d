#!/usr/bin/python3
"""Soak test: recurrentd under long mixed traffic, watching its memory.

Starts build/bin/recurrentd on free ports with a temporary --data_dir, trains a reference model
(LSTM 2x16, per-step head, Mackey-Glass) and records its "solo" outputs for a few fixed input
sequences (StepPredict alone on the server, and Predict of one sequence). Then, for --minutes:

  - `--streams` stream slots (200), each opening a StepPredict stream, stepping a random prefix
    of one of the fixed sequences one step per message (waiting for each reply), checking every
    output against the solo run, closing, and reopening. Some streams snapshot, close and resume
    from the snapshot on a new stream; some reset mid-way and start another sequence; some are
    cancelled on purpose (mid-step or between steps: CANCELLED, expected); a few run on the
    newest version of the churn model (below);
  - Predict loops: batches of random prefixes, checked against the solo Predict outputs;
  - a training loop: every 20-30 s a small job on the churn model ("soak-churn", GRU); each new
    version gets its own reference outputs, the alias "stable" moves to it, and old versions are
    deleted (never one a stream still uses, never the reference model), so the disk stays
    bounded;
  - bad requests (unknown model, bad sizes, garbage snapshot, ...) that must fail with their one
    expected code: NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION;
  - every sample period the server's RSS, threads and open fds (/proc/PID).

Fails (exit 1) on any unexpected RPC error, any output mismatch, an RSS slope over the second half
of the run above --max-rss-slope (KiB/min), streams left open on the server, or a non-zero exit
of the server on SIGTERM. Prints a summary and writes it as JSON to --json.

Memory. The slope is the least-squares fit of RSS over the second half of the traffic; divided by
the streams opened per minute it bounds a per-stream leak (bytes per stream opened). Three bounded
effects would otherwise pass for a leak in a short run, and are handled as follows:
  - the engine's per-shape plans and oneDNN's primitive cache fill as Predict meets new shapes:
    a warm-up before the traffic Predicts every shape the Predict loops can send;
  - glibc gives each thread its own malloc arena (up to 8 per core), and each grows to its own
    high-water mark over minutes: runs under 5 minutes set MALLOC_ARENA_MAX=2 for the server
    (--malloc-arena-max), which leaves a real leak just as visible; long runs keep glibc's
    default, as deployed;
  - job records are kept by design (a few KiB per training job).
Thresholds: 1024 KiB/min for long runs (a leak of one LSTM stream state, 256 bytes, per stream at
~13000 streams/min would be ~3300 KiB/min); 4096 KiB/min for short runs.

By hand (scripts/soak.sh wraps this):
    RECURRENTD_PATH=build/bin/recurrentd RECURRENT_PY_STUBS=build/python \\
        nice /usr/bin/python3 tests/soak/soak.py --minutes 2 --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECURRENTD_PATH = os.environ.get("RECURRENTD_PATH",
                                 os.path.join(REPO_ROOT, "build", "bin", "recurrentd"))
STUBS_DIR = os.environ.get("RECURRENT_PY_STUBS", os.path.join(REPO_ROOT, "build", "python"))
sys.path.insert(0, STUBS_DIR)

import grpc  # noqa: E402
from grpc import StatusCode  # noqa: E402

from recurrent.v1 import model_pb2, service_pb2, service_pb2_grpc  # noqa: E402

REF_MODEL = "soak-ref"
CHURN_MODEL = "soak-churn"
CHURN_KEEP = 3            # newest churn versions kept (plus any a stream still uses)
SEQ_COUNT = 8             # fixed input sequences
SEQ_LEN = 60              # their length; streams and Predict use prefixes of them
CHURN_REF_SEQS = 4        # sequences with reference outputs on each churn version
CALL_TIMEOUT = 120.0      # deadline of every call: a hang becomes DEADLINE_EXCEEDED, a failure

P = service_pb2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def f32(x: float) -> float:
    """x rounded to float32, as the wire carries it."""
    return struct.unpack("f", struct.pack("f", x))[0]


def fixed_sequences(seed: int) -> list[list[float]]:
    """SEQ_COUNT deterministic inputs (input_size 1) in the Mackey-Glass range (about 0.4-1.3)."""
    rng = random.Random(seed)
    out = []
    for _ in range(SEQ_COUNT):
        a, b = rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.6)
        pa, pb = rng.uniform(0, 6.3), rng.uniform(0, 6.3)
        out.append([f32(0.9 + 0.25 * math.sin(a * t + pa) + 0.1 * math.sin(b * t + pb)
                        + rng.gauss(0, 0.02)) for t in range(SEQ_LEN)])
    return out


# ------------------------------------------------------------------------------------------------
# The server process


class Server:
    def __init__(self, binary: str, work_dir: str, max_streams: int, malloc_arena_max: int = 0):
        self.port = free_port()
        self.metrics_port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log_path = os.path.join(work_dir, "recurrentd.log")
        self.args = [binary, f"--data_dir={os.path.join(work_dir, 'data')}",
                     f"--port={self.port}", f"--metrics_port={self.metrics_port}",
                     f"--max_streams={max_streams}", "--shutdown_grace_seconds=5",
                     "--checkpoint_interval_seconds=5"]
        env = dict(os.environ)
        if malloc_arena_max > 0:
            env["MALLOC_ARENA_MAX"] = str(malloc_arena_max)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env)
        self.pid = self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(collections.deque(f, maxlen=lines))
        except OSError as error:
            return f"(no log: {error})"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"recurrentd exited with {self.process.returncode} at start")
            with grpc.insecure_channel(self.target) as channel:  # fresh: no backoff state
                try:
                    service_pb2_grpc.ModelServiceStub(channel).ListModels(
                        P.ListModelsRequest(), timeout=1.0)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"recurrentd did not answer within {timeout} s")

    def sample(self) -> dict:
        """RSS (KiB), threads, open fds and CPU seconds of the server process."""
        rss = threads = None
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return {"rss_kib": rss, "threads": threads, "fds": fds, "cpu_s": round(cpu_s, 1)}

    def metric(self, name: str) -> float | None:
        """One unlabelled value from the Prometheus endpoint (None if absent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{}"):
                    return float(line.split()[-1])
        return None

    def stop(self, timeout: float = 60.0) -> int:
        self.died_before_stop = self.process.poll() is not None
        if not self.died_before_stop:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self._log.close()
                return -9
        self._log.close()
        return self.process.returncode


# ------------------------------------------------------------------------------------------------
# Bookkeeping


class Failure(Exception):
    """An unexpected outcome (wrong output, wrong status); counted, never fatal to the run."""


class Stats:
    def __init__(self, tolerance: float):
        self.tolerance = tolerance
        self.c = collections.Counter()         # event counters
        self.expected = collections.Counter()  # expected error codes
        self.expected_by_case = collections.Counter()
        self.unexpected: list[str] = []        # descriptions (first 50 kept)
        self.unexpected_count = 0
        self.mismatches: list[str] = []
        self.mismatch_count = 0
        # Largest differences seen against the references: [abs, rel], and values compared.
        self.diff = {"stream": [0.0, 0.0], "predict": [0.0, 0.0]}
        self.compared = collections.Counter()
        self.inexact = collections.Counter()   # values not bit-equal to the reference

    def fail(self, what: str) -> None:
        self.unexpected_count += 1
        if len(self.unexpected) < 50:
            self.unexpected.append(what)
        print(f"UNEXPECTED: {what}", file=sys.stderr, flush=True)

    def mismatch(self, what: str) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < 50:
            self.mismatches.append(what)
        print(f"MISMATCH: {what}", file=sys.stderr, flush=True)

    def expect(self, code: StatusCode, case: str) -> None:
        self.expected[code.name] += 1
        self.expected_by_case[f"{case}: {code.name}"] += 1

    def check(self, kind: str, got, want, where: str) -> bool:
        """Compares value lists; within |d| <= tol * max(1, |want|). Records the worst diffs."""
        self.compared[kind] += len(want)
        if len(got) != len(want):
            self.mismatch(f"{where}: {len(got)} values, expected {len(want)}")
            return False
        if got == want:
            return True
        ok = True
        worst = self.diff[kind]
        for g, w in zip(got, want):
            if g == w:
                continue
            self.inexact[kind] += 1
            d = abs(g - w)
            rel = d / max(abs(w), 1e-30)
            worst[0] = max(worst[0], d)
            worst[1] = max(worst[1], rel)
            if not d <= self.tolerance * max(1.0, abs(w)):
                ok = False
        if not ok:
            self.mismatch(f"{where}: got {list(got)[:6]}..., expected {list(want)[:6]}...")
        return ok


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / var


# ------------------------------------------------------------------------------------------------
# The soak


def identity(x):
    return x


class Soak:
    def __init__(self, args, server: Server):
        self.args = args
        self.server = server
        self.stats = Stats(args.tolerance)
        self.rng = random.Random(args.seed)
        self.seqs = fixed_sequences(args.seed)
        self.stop = asyncio.Event()
        # Pre-serialized step messages: step_bytes[i][t] feeds value t of sequence i.
        self.step_bytes = [[P.StepRequest(step=P.StepInput(steps=1, values=[x]))
                            .SerializeToString() for x in seq] for seq in self.seqs]
        self.ref_version = 0
        self.ref_stream: list[list[tuple]] = []   # [seq][t] -> output row (tuple)
        self.ref_predict: list[list[tuple]] = []
        self.output_size = 0
        # Churn model versions usable by streams: version -> (stream refs, predict refs).
        self.churn_refs: dict[int, tuple[list, list]] = {}
        self.churn_in_use: collections.Counter = collections.Counter()
        self.churn_pending_delete: set[int] = set()
        self.churn_versions_created = 0
        self.churn_versions_deleted = 0
        self.samples: list[dict] = []
        self.t0 = 0.0
        self.open_now = 0
        self.open_max = 0
        self.train_seconds: list[float] = []

    # ---- channels and calls

    def make_channels(self) -> None:
        # A local subchannel pool each: one TCP connection per channel (with the global pool,
        # channels to one target share a connection).
        options = [("grpc.max_send_message_length", 64 << 20),
                   ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.use_local_subchannel_pool", 1)]
        # Streams spread over a few connections (HTTP/2 streams per connection are bounded by
        # flow control and the server's settings), plus one for everything else.
        self.stream_channels = [grpc.aio.insecure_channel(self.server.target, options=options)
                                for _ in range(4)]
        self.channel = grpc.aio.insecure_channel(self.server.target, options=options)
        self.step_calls = [c.stream_stream("/recurrent.v1.InferenceService/StepPredict",
                                           request_serializer=identity,
                                           response_deserializer=P.StepResponse.FromString)
                           for c in self.stream_channels]
        self.inference = service_pb2_grpc.InferenceServiceStub(self.channel)
        self.training = service_pb2_grpc.TrainingServiceStub(self.channel)
        self.models = service_pb2_grpc.ModelServiceStub(self.channel)

    async def close_channels(self) -> None:
        for c in self.stream_channels + [self.channel]:
            await c.close()

    def open_call(self, slot: int):
        return self.step_calls[slot % len(self.step_calls)](timeout=CALL_TIMEOUT)

    async def open_stream(self, slot: int, ref: P.ModelRef | None = None,
                          resume_from: bytes = b""):
        call = self.open_call(slot)
        c = self.stats.c
        c["streams_opened"] += 1
        self.open_now = c["streams_opened"] - c["streams_ended"]
        self.open_max = max(self.open_max, self.open_now)
        try:
            req = P.StepRequest(open=P.OpenSession(model=ref, resume_from=resume_from))
            await call.write(req.SerializeToString())
            resp = await call.read()
            if resp is grpc.aio.EOF or resp.WhichOneof("kind") != "opened":
                await self.finish_unexpected(call, "open")
                raise Failure("stream did not open")
        except BaseException:
            c["streams_ended"] += 1
            call.cancel()
            raise
        return call, resp.opened

    async def finish_unexpected(self, call, what: str) -> None:
        code = await call.code()
        self.stats.fail(f"StepPredict {what}: {code.name} {await call.details()!r}")

    async def close_stream(self, call, where: str) -> None:
        """Half-closes and expects the server's OK."""
        await call.done_writing()
        resp = await call.read()
        if resp is not grpc.aio.EOF:
            self.stats.fail(f"{where}: a response after half-close: {resp}")
        code = await call.code()
        if code != StatusCode.OK:
            self.stats.fail(f"{where}: closed with {code.name} {await call.details()!r}")
        else:
            self.stats.c["streams_completed"] += 1

    async def step(self, call, seq: int, t: int, want: tuple, where: str) -> bool:
        await call.write(self.step_bytes[seq][t])
        resp = await call.read()
        if resp is grpc.aio.EOF or resp.WhichOneof("kind") != "output":
            code = await call.code()
            self.stats.fail(f"{where} step {t}: {code.name} {await call.details()!r}")
            raise Failure("step failed")
        self.stats.c["steps_verified"] += 1
        return self.stats.check("stream", tuple(resp.output.values), want, f"{where} step {t}")

    async def steps(self, call, refs, seq: int, times: range, where: str) -> None:
        """Steps `seq` at `times` on `call`, checking each output against refs[seq][t]."""
        for t in times:
            await self.step(call, seq, t, refs[seq][t], where)

    @contextlib.asynccontextmanager
    async def stream(self, slot: int, ref: P.ModelRef | None = None, resume_from: bytes = b""):
        """An open StepPredict call and its `opened` reply; on exit the stream counts as ended and
        the call is cancelled (a no-op once it has finished)."""
        call, opened = await self.open_stream(slot, ref, resume_from)
        try:
            yield call, opened
        finally:
            self.stats.c["streams_ended"] += 1
            call.cancel()

    # ---- stream slots

    def pick_churn(self) -> int | None:
        if not self.churn_refs:
            return None
        return max(self.churn_refs)

    async def stream_slot(self, slot: int) -> None:
        rng = random.Random(self.args.seed * 1000 + slot)
        await asyncio.sleep(rng.uniform(0, 2.0))  # spread the first opens
        while not self.stop.is_set():
            r = rng.random()
            failures = self.stats.unexpected_count
            try:
                if r < 0.08:
                    await self.stream_snapshot_resume(slot, rng)
                elif r < 0.14:
                    await self.stream_reset(slot, rng)
                elif r < 0.20:
                    await self.stream_cancel(slot, rng)
                elif r < 0.25 and self.churn_refs:
                    await self.stream_churn(slot, rng)
                else:
                    await self.stream_plain(slot, rng)
            except Failure:
                pass
            except grpc.aio.AioRpcError as error:
                self.stats.fail(f"slot {slot}: {error.code().name} {error.details()!r}")
            except Exception as error:  # e.g. writing to a call that already ended
                self.stats.fail(f"slot {slot}: {type(error).__name__}: {error}")
            if self.stats.unexpected_count != failures:
                await asyncio.sleep(1.0)  # no tight loop of failures (e.g. the server died)
            self.open_now = self.stats.c["streams_opened"] - self.stats.c["streams_ended"]

    def ref_model(self, rng: random.Random) -> P.ModelRef:
        r = rng.random()
        if r < 0.5:
            return P.ModelRef(name=REF_MODEL, version=self.ref_version)
        if r < 0.75:
            return P.ModelRef(name=REF_MODEL, alias="production")
        return P.ModelRef(name=REF_MODEL)

    async def stream_plain(self, slot: int, rng: random.Random) -> None:
        seq, length = rng.randrange(SEQ_COUNT), rng.randint(5, SEQ_LEN)
        where = f"slot {slot} plain seq {seq}"
        async with self.stream(slot, self.ref_model(rng)) as (call, opened):
            if opened.steps_taken != 0 or opened.output_size != self.output_size:
                self.stats.mismatch(f"{where}: opened {opened}")
            await self.steps(call, self.ref_stream, seq, range(length), where)
            await self.close_stream(call, where)
        self.stats.c["streams_plain"] += 1

    async def stream_churn(self, slot: int, rng: random.Random) -> None:
        version = self.pick_churn()
        self.churn_in_use[version] += 1
        try:
            seq, length = rng.randrange(CHURN_REF_SEQS), rng.randint(5, SEQ_LEN)
            where = f"slot {slot} churn v{version} seq {seq}"
            async with self.stream(slot, P.ModelRef(name=CHURN_MODEL, version=version)) as (
                    call, opened):
                if opened.model_version != version:
                    self.stats.mismatch(f"{where}: opened version {opened.model_version}")
                await self.steps(call, self.churn_refs[version][0], seq, range(length), where)
                await self.close_stream(call, where)
        finally:
            self.churn_in_use[version] -= 1
        self.stats.c["streams_churn"] += 1

    async def request_on_stream(self, call, request: P.StepRequest, kind: str, where: str):
        """Sends a control message (snapshot, reset) and returns its reply of `kind`."""
        await call.write(request.SerializeToString())
        resp = await call.read()
        if resp is grpc.aio.EOF or resp.WhichOneof("kind") != kind:
            await self.finish_unexpected(call, f"{where} {kind}")
            raise Failure(f"no {kind}")
        return resp

    async def stream_snapshot_resume(self, slot: int, rng: random.Random) -> None:
        seq, length = rng.randrange(SEQ_COUNT), rng.randint(5, SEQ_LEN)
        cut = rng.randint(1, length - 1)
        where = f"slot {slot} snapshot seq {seq} cut {cut}"
        async with self.stream(slot, self.ref_model(rng)) as (call, _):
            await self.steps(call, self.ref_stream, seq, range(cut), where)
            resp = await self.request_on_stream(call, P.StepRequest(snapshot=True), "snapshot",
                                                where)
            data = resp.snapshot.data
            await self.close_stream(call, where)
        async with self.stream(slot, None, resume_from=data) as (call, opened):
            if (opened.steps_taken != cut or opened.model_version != self.ref_version
                    or opened.model_name != REF_MODEL):
                self.stats.mismatch(f"{where}: resumed as {opened}")
            await self.steps(call, self.ref_stream, seq, range(cut, length), where + " resumed")
            await self.close_stream(call, where)
        self.stats.c["streams_resumed"] += 1

    async def stream_reset(self, slot: int, rng: random.Random) -> None:
        seq, seq2 = rng.randrange(SEQ_COUNT), rng.randrange(SEQ_COUNT)
        cut, length = rng.randint(1, 30), rng.randint(5, SEQ_LEN)
        where = f"slot {slot} reset seq {seq} cut {cut} then seq {seq2}"
        async with self.stream(slot, self.ref_model(rng)) as (call, _):
            await self.steps(call, self.ref_stream, seq, range(cut), where)
            await self.request_on_stream(call, P.StepRequest(reset=True), "reset_done", where)
            await self.steps(call, self.ref_stream, seq2, range(length), where + " after reset")
            await self.close_stream(call, where)
        self.stats.c["streams_reset"] += 1

    async def stream_cancel(self, slot: int, rng: random.Random) -> None:
        seq, cut = rng.randrange(SEQ_COUNT), rng.randint(0, 40)
        in_flight = rng.random() < 0.5  # cancel with a step sent and its answer not read
        where = f"slot {slot} cancel seq {seq} after {cut}"
        async with self.stream(slot, self.ref_model(rng)) as (call, _):
            await self.steps(call, self.ref_stream, seq, range(cut), where)
            if in_flight:
                await call.write(self.step_bytes[seq][cut])
            call.cancel()
            code = await call.code()
            if code == StatusCode.CANCELLED:
                self.stats.expect(code, "stream cancelled by the client")
                self.stats.c["streams_cancelled"] += 1
            else:
                self.stats.fail(f"{where}: cancelled stream ended {code.name}")

    # ---- Predict

    async def predict_loop(self, worker: int) -> None:
        rng = random.Random(self.args.seed * 7919 + worker)
        while not self.stop.is_set():
            churn = (self.pick_churn() if rng.random() < self.args.churn_predict_share
                     else None)
            if churn is not None:
                self.churn_in_use[churn] += 1
            try:
                count = rng.randint(1, 16)
                picks = []
                request = P.PredictRequest()
                if churn is None:
                    request.model.CopyFrom(self.ref_model(rng))
                    refs = self.ref_predict
                    nseq = SEQ_COUNT
                else:
                    request.model.CopyFrom(P.ModelRef(name=CHURN_MODEL, version=churn))
                    refs = self.churn_refs[churn][1]
                    nseq = CHURN_REF_SEQS
                for _ in range(count):
                    seq, length = rng.randrange(nseq), rng.randint(1, SEQ_LEN)
                    picks.append((seq, length))
                    request.sequences.add(steps=length, values=self.seqs[seq][:length])
                response = await self.inference.Predict(request, timeout=CALL_TIMEOUT)
                self.stats.c["predict_calls"] += 1
                if len(response.outputs) != count:
                    self.stats.mismatch(f"Predict: {len(response.outputs)} outputs for {count}")
                    continue
                for (seq, length), out in zip(picks, response.outputs):
                    want = tuple(v for row in refs[seq][:length] for v in row)
                    self.stats.check("predict", tuple(out.values), want,
                                     f"Predict {request.model.name} seq {seq} len {length}")
                    self.stats.c["predict_sequences_verified"] += 1
            except grpc.aio.AioRpcError as error:
                self.stats.fail(f"Predict: {error.code().name} {error.details()!r}")
            finally:
                if churn is not None:
                    self.churn_in_use[churn] -= 1
            await asyncio.sleep(rng.uniform(0, 0.05))

    # ---- training, references, versions

    async def wait_job(self, job_id: str) -> P.Job:
        last = None
        async for event in self.training.WatchJob(P.WatchJobRequest(job_id=job_id),
                                                  timeout=600):
            last = event.job
        return last

    async def solo_references(self, ref: P.ModelRef, nseq: int,
                              predict: bool = True) -> tuple[list, list]:
        """Per fixed sequence: outputs of one StepPredict stream over the whole sequence (the only
        stream on that model version), and (with `predict`) of Predict with that sequence
        alone."""
        stream_refs, predict_refs = [], []
        for seq in range(nseq):
            call = self.step_calls[0](timeout=CALL_TIMEOUT)
            await call.write(P.StepRequest(open=P.OpenSession(model=ref)).SerializeToString())
            opened = (await call.read()).opened
            o = opened.output_size
            rows = []
            for t in range(SEQ_LEN):
                await call.write(self.step_bytes[seq][t])
                rows.append(tuple((await call.read()).output.values))
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            assert await call.code() == StatusCode.OK
            stream_refs.append(rows)
            if not predict:
                continue
            response = await self.inference.Predict(
                P.PredictRequest(model=ref, sequences=[P.InputSequence(
                    steps=SEQ_LEN, values=self.seqs[seq])]), timeout=CALL_TIMEOUT)
            values = list(response.outputs[0].values)
            predict_refs.append([tuple(values[t * o:(t + 1) * o]) for t in range(SEQ_LEN)])
        return stream_refs, predict_refs

    def train_request(self, model: str, rng: random.Random, *, reference: bool) -> P.TrainRequest:
        if reference:
            spec = model_pb2.ModelSpec(cell=model_pb2.CELL_TYPE_LSTM, input_size=1,
                                       hidden_size=16, num_layers=2,
                                       head=model_pb2.HEAD_MODE_PER_STEP, output_size=1,
                                       loss=model_pb2.LOSS_TYPE_MSE)
            series, epochs = 1200, 3
        else:
            spec = model_pb2.ModelSpec(cell=model_pb2.CELL_TYPE_GRU, input_size=1,
                                       hidden_size=8, num_layers=1,
                                       head=model_pb2.HEAD_MODE_PER_STEP, output_size=1,
                                       loss=model_pb2.LOSS_TYPE_MSE)
            series, epochs = 500, 2
        data = P.DataSource(generator=P.GeneratorSpec(
            seed=rng.randrange(1 << 30), mackey_glass=P.MackeyGlassSpec(
                series_length=series,
                window=P.WindowSpec(window=30, stride=5, per_step_targets=True))))
        options = P.TrainingOptions(seed=rng.randrange(1 << 30), batch_size=16,
                                    max_epochs=epochs, learning_rate=0.01,
                                    normalize_inputs=True, normalize_targets=True)
        return P.TrainRequest(model_name=model, spec=spec, data=data, options=options,
                              labels={"soak": "1"})

    async def train(self, request: P.TrainRequest) -> P.Job:
        started = time.monotonic()
        job_id = (await self.training.Train(request, timeout=CALL_TIMEOUT)).job_id
        job = await self.wait_job(job_id)
        self.train_seconds.append(time.monotonic() - started)
        if job is None or job.state != P.JOB_STATE_SUCCEEDED:
            raise Failure(f"job {job_id} ended {job and P.JobState.Name(job.state)}: "
                          f"{job and job.error}")
        return job

    async def setup(self) -> None:
        job = await self.train(self.train_request(REF_MODEL, self.rng, reference=True))
        self.ref_version = job.model_version
        await self.models.SetAlias(P.SetAliasRequest(name=REF_MODEL, alias="production",
                                                     version=self.ref_version),
                                   timeout=CALL_TIMEOUT)
        self.ref_stream, self.ref_predict = await self.solo_references(
            P.ModelRef(name=REF_MODEL, version=self.ref_version), SEQ_COUNT)
        self.output_size = len(self.ref_stream[0][0])
        # Stream and Predict are two code paths (batched Step vs whole-sequence Forward): how
        # far apart are they?
        worst = 0.0
        equal = 0
        for s_rows, p_rows in zip(self.ref_stream, self.ref_predict):
            for a, b in zip(s_rows, p_rows):
                equal += a == b
                worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
                if not all(abs(x - y) <= self.args.tolerance * max(1.0, abs(y))
                           for x, y in zip(a, b)):
                    self.stats.mismatch(f"solo stream vs solo Predict: {a} vs {b}")
        self.stream_vs_predict = {"max_abs_diff": worst, "rows_bit_equal": equal,
                                  "rows": SEQ_COUNT * SEQ_LEN}

    async def warm_up(self) -> None:
        """Predict once on every (batch, length) shape the Predict loops can send: the engine
        caches plans per shape (bounded, core/network.cc) and oneDNN its primitives (bounded,
        1024), and without this the caches would fill during the measured run and look like a
        slow leak. Request k holds k sequences of each length 1..SEQ_LEN, so its Forward calls
        are [k, T] for every T. Two sweeps run at once, like the two Predict loops, so that the
        server's pool holds two warmed-up networks; one more runs the churn model's shapes
        through a training job first."""
        async def sweep():
            for k in range(1, 17):
                request = P.PredictRequest(model=P.ModelRef(name=REF_MODEL,
                                                            version=self.ref_version))
                for length in range(1, SEQ_LEN + 1):
                    for j in range(k):
                        request.sequences.add(steps=length,
                                              values=self.seqs[j % SEQ_COUNT][:length])
                await self.inference.Predict(request, timeout=CALL_TIMEOUT)
        await asyncio.gather(sweep(), sweep())

    async def training_loop(self) -> None:
        rng = random.Random(self.args.seed + 17)
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), rng.uniform(20, 30))
                return
            except asyncio.TimeoutError:
                pass
            try:
                job = await self.train(self.train_request(CHURN_MODEL, rng, reference=False))
                self.stats.c["train_jobs"] += 1
                version = job.model_version
                self.churn_versions_created += 1
                ref = P.ModelRef(name=CHURN_MODEL, version=version)
                self.churn_refs[version] = await self.solo_references(
                    ref, CHURN_REF_SEQS, predict=self.args.churn_predict_share > 0)
                await self.models.SetAlias(P.SetAliasRequest(
                    name=CHURN_MODEL, alias="stable", version=version), timeout=CALL_TIMEOUT)
                await self.expect_error(
                    StatusCode.FAILED_PRECONDITION, "delete an aliased version",
                    self.models.DeleteModelVersion(P.DeleteModelVersionRequest(
                        name=CHURN_MODEL, version=version), timeout=CALL_TIMEOUT))
                await self.prune_churn()
            except Failure as failure:
                self.stats.fail(f"training loop: {failure}")
            except grpc.aio.AioRpcError as error:
                self.stats.fail(f"training loop: {error.code().name} {error.details()!r}")

    async def prune_churn(self) -> None:
        """Deletes churn versions beyond the newest CHURN_KEEP that no stream or Predict uses."""
        for version in sorted(self.churn_refs)[:-CHURN_KEEP]:
            del self.churn_refs[version]  # no new user picks it from now on
            self.churn_pending_delete.add(version)
        for version in sorted(self.churn_pending_delete):
            if self.churn_in_use[version] > 0:
                continue  # a stream still runs on it: next time
            await self.models.DeleteModelVersion(P.DeleteModelVersionRequest(
                name=CHURN_MODEL, version=version), timeout=CALL_TIMEOUT)
            self.churn_pending_delete.discard(version)
            del self.churn_in_use[version]
            self.churn_versions_deleted += 1
            await self.expect_error(
                StatusCode.NOT_FOUND, "Predict on a deleted version",
                self.inference.Predict(P.PredictRequest(
                    model=P.ModelRef(name=CHURN_MODEL, version=version),
                    sequences=[P.InputSequence(steps=1, values=[0.5])]), timeout=CALL_TIMEOUT))

    # ---- bad requests

    async def expect_error(self, code: StatusCode, case: str, awaitable) -> None:
        try:
            result = await awaitable
        except grpc.aio.AioRpcError as error:
            if error.code() == code:
                self.stats.expect(code, case)
            else:
                self.stats.fail(f"{case}: {error.code().name} {error.details()!r}, "
                                f"expected {code.name}")
            return
        self.stats.fail(f"{case}: succeeded ({str(result)[:80]!r}), expected {code.name}")

    async def bad_stream(self, messages: list[P.StepRequest], code: StatusCode,
                         case: str) -> None:
        """Sends `messages` on a new stream, reading one response after each, and expects the
        stream to end with `code` by the last one."""
        call = self.step_calls[0](timeout=CALL_TIMEOUT)
        try:
            for message in messages:
                await call.write(message.SerializeToString())
                if await call.read() is grpc.aio.EOF:
                    break
        except grpc.aio.AioRpcError:
            pass  # the status is read below
        except asyncio.InvalidStateError:
            pass  # writing after the call ended
        got = await call.code()
        if got == code:
            self.stats.expect(code, case)
        else:
            self.stats.fail(f"{case}: stream ended {got.name} {await call.details()!r}, "
                            f"expected {code.name}")

    async def bad_requests_loop(self) -> None:
        rng = random.Random(self.args.seed + 31)
        ref = P.ModelRef(name=REF_MODEL, version=self.ref_version)
        step = P.StepRequest(step=P.StepInput(steps=1, values=[0.5]))
        open_ref = P.StepRequest(open=P.OpenSession(model=ref))
        NF, IA = StatusCode.NOT_FOUND, StatusCode.INVALID_ARGUMENT
        bad_spec = self.train_request(CHURN_MODEL, rng, reference=False)
        bad_spec.spec.hidden_size = 0
        cases = [
            lambda: self.expect_error(NF, "Predict unknown model", self.inference.Predict(
                P.PredictRequest(model=P.ModelRef(name="no-such-model"), sequences=[
                    P.InputSequence(steps=1, values=[0.5])]), timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(NF, "Predict unknown version", self.inference.Predict(
                P.PredictRequest(model=P.ModelRef(name=REF_MODEL, version=999999), sequences=[
                    P.InputSequence(steps=1, values=[0.5])]), timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(IA, "Predict wrong value count", self.inference.Predict(
                P.PredictRequest(model=ref, sequences=[
                    P.InputSequence(steps=3, values=[0.5, 0.5])]), timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(IA, "Predict zero steps", self.inference.Predict(
                P.PredictRequest(model=ref, sequences=[P.InputSequence(steps=0)]),
                timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(IA, "Predict NaN input", self.inference.Predict(
                P.PredictRequest(model=ref, sequences=[
                    P.InputSequence(steps=1, values=[float("nan")])]), timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(IA, "Predict no sequences", self.inference.Predict(
                P.PredictRequest(model=ref), timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(IA, "Train hidden_size 0", self.training.Train(
                bad_spec, timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(NF, "GetJob unknown id", self.training.GetJob(
                P.GetJobRequest(job_id="no-such-job"), timeout=CALL_TIMEOUT)),
            lambda: self.expect_error(NF, "GetModel unknown", self.models.GetModel(
                P.GetModelRequest(name="no-such-model"), timeout=CALL_TIMEOUT)),
            lambda: self.bad_stream([P.StepRequest(open=P.OpenSession(
                model=P.ModelRef(name="no-such-model")))], NF, "StepPredict unknown model"),
            lambda: self.bad_stream([step], IA, "StepPredict step before open"),
            lambda: self.bad_stream([open_ref, P.StepRequest(step=P.StepInput(
                steps=1, values=[0.5, 0.5]))], IA, "StepPredict wrong value count"),
            lambda: self.bad_stream([open_ref, P.StepRequest(step=P.StepInput(
                steps=5000, values=[0.5]))], IA, "StepPredict steps over the limit"),
            lambda: self.bad_stream([open_ref, step, open_ref], IA, "StepPredict open twice"),
            lambda: self.bad_stream([P.StepRequest(open=P.OpenSession(
                resume_from=b"garbage snapshot"))], IA, "StepPredict garbage snapshot"),
        ]
        order = list(range(len(cases)))
        while not self.stop.is_set():
            rng.shuffle(order)
            for index in order:
                if self.stop.is_set():
                    return
                await cases[index]()
                self.stats.c["bad_requests"] += 1
                try:
                    await asyncio.wait_for(self.stop.wait(), rng.uniform(0.5, 2.0))
                except asyncio.TimeoutError:
                    pass

    # ---- sampling

    async def sampler(self, period: float) -> None:
        next_at = self.t0
        while True:
            elapsed = time.monotonic() - self.t0
            if self.server.process.poll() is not None:
                self.stats.fail(f"recurrentd died (exit code {self.server.process.returncode})")
                self.stop.set()
                return
            s = self.server.sample()
            s["t_s"] = round(elapsed, 1)
            s["streams_opened"] = self.stats.c["streams_opened"]
            s["steps"] = self.stats.c["steps_verified"]
            self.samples.append(s)
            print(f"[{elapsed:7.1f} s] rss {s['rss_kib'] / 1024:7.1f} MiB  threads {s['threads']:3d}"
                  f"  fds {s['fds']:3d}  streams {s['streams_opened']:7d}  steps {s['steps']:9d}"
                  f"  predicts {self.stats.c['predict_calls']:6d}"
                  f"  jobs {self.stats.c['train_jobs']:3d}  open {self.open_now:3d}"
                  f"  unexpected {self.stats.unexpected_count} mismatches "
                  f"{self.stats.mismatch_count}", flush=True)
            next_at += period
            try:
                await asyncio.wait_for(self.stop.wait(), max(0.0, next_at - time.monotonic()))
                return
            except asyncio.TimeoutError:
                pass

    # ---- the run

    async def run(self) -> dict:
        self.make_channels()
        print(f"training the reference model {REF_MODEL} ...", flush=True)
        setup_started = time.monotonic()
        await self.setup()
        print(f"reference model v{self.ref_version} trained and its solo outputs recorded in "
              f"{time.monotonic() - setup_started:.1f} s; solo stream vs solo Predict: "
              f"{self.stream_vs_predict}", flush=True)
        if not self.args.no_warm_up:
            warm_started = time.monotonic()
            await self.warm_up()
            print(f"warm-up (Predict on every shape) took {time.monotonic() - warm_started:.1f} s",
                  flush=True)
        start_sample = self.server.sample()
        duration = self.args.minutes * 60.0
        period = self.args.sample_seconds or min(60.0, max(5.0, duration / 12))
        self.t0 = time.monotonic()
        kinds = set(self.args.traffic.split(","))
        tasks = []
        if "streams" in kinds:
            tasks += [asyncio.create_task(self.stream_slot(i)) for i in range(self.args.streams)]
        if "predict" in kinds:
            tasks += [asyncio.create_task(self.predict_loop(i)) for i in range(2)]
        if "train" in kinds:
            tasks.append(asyncio.create_task(self.training_loop()))
        if "bad" in kinds:
            tasks.append(asyncio.create_task(self.bad_requests_loop()))
        sampler = asyncio.create_task(self.sampler(period))
        try:
            await asyncio.wait_for(self.stop.wait(), duration)  # set early if the server dies
        except asyncio.TimeoutError:
            pass
        self.stop.set()
        traffic_seconds = time.monotonic() - self.t0
        await sampler
        # Streams end their current sequence; the training loop its current job.
        done, pending = await asyncio.wait(tasks, timeout=180)
        for task in pending:
            self.stats.fail(f"a traffic task did not stop within 180 s: {task}")
            task.cancel()
        for task in done:
            if task.exception() is not None:
                self.stats.fail(f"a traffic task crashed: {task.exception()!r}")
        await self.close_channels()
        wind_down = time.monotonic() - self.t0 - traffic_seconds

        # The server must have freed every stream.
        open_streams = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.server.process.poll() is None:
            try:
                open_streams = self.server.metric("recurrent_active_streams")
            except OSError as error:
                open_streams = f"unknown ({error})"
            if open_streams == 0:
                break
            await asyncio.sleep(0.2)
        if open_streams != 0:
            self.stats.fail(f"recurrent_active_streams is {open_streams} after all streams ended")
        try:
            end_sample = self.server.sample()
        except OSError:  # the server is gone
            end_sample = {"rss_kib": None, "threads": None, "fds": None, "cpu_s": None}

        # RSS slope over the second half of the traffic period.
        half = [(s["t_s"], s["rss_kib"]) for s in self.samples if s["t_s"] >= traffic_seconds / 2]
        slope = slope_per_minute(half)
        whole = slope_per_minute([(s["t_s"], s["rss_kib"]) for s in self.samples])
        streams_per_min = self.stats.c["streams_opened"] / (traffic_seconds / 60)
        steps_per_s = self.stats.c["steps_verified"] / traffic_seconds
        rss_ok = self.args.no_rss_limit or (slope is not None
                                            and slope <= self.args.max_rss_slope)
        c = self.stats.c
        summary = {
            "minutes": self.args.minutes,
            "traffic_seconds": round(traffic_seconds, 1),
            "wind_down_seconds": round(wind_down, 1),
            "stream_slots": self.args.streams,
            "streams": {
                "opened": c["streams_opened"],
                "completed": c["streams_completed"],
                "cancelled": c["streams_cancelled"],
                "plain": c["streams_plain"],
                "snapshot_resumed": c["streams_resumed"],
                "reset": c["streams_reset"],
                "on_churn_model": c["streams_churn"],
                "max_open_by_client": self.open_max,
                "per_minute": round(streams_per_min, 1),
            },
            "steps_verified": c["steps_verified"],
            "steps_per_second": round(steps_per_s, 1),
            "predict_calls": c["predict_calls"],
            "predict_sequences_verified": c["predict_sequences_verified"],
            "train_jobs": c["train_jobs"],
            "train_job_seconds": [round(x, 1) for x in self.train_seconds],
            "churn_versions_created": self.churn_versions_created,
            "churn_versions_deleted": self.churn_versions_deleted,
            "bad_requests": c["bad_requests"],
            "expected_errors": dict(self.stats.expected),
            "expected_errors_by_case": dict(sorted(self.stats.expected_by_case.items())),
            "unexpected_errors": self.stats.unexpected_count,
            "unexpected_error_examples": self.stats.unexpected,
            "mismatches": self.stats.mismatch_count,
            "mismatch_examples": self.stats.mismatches,
            "tolerance_relative": self.args.tolerance,
            "values_compared": dict(self.stats.compared),
            "values_not_bit_equal": dict(self.stats.inexact),
            "max_abs_diff": {k: v[0] for k, v in self.stats.diff.items()},
            "max_rel_diff": {k: v[1] for k, v in self.stats.diff.items()},
            "solo_stream_vs_solo_predict": self.stream_vs_predict,
            "sample_seconds": period,
            "rss_samples": self.samples,
            "rss_slope_kib_per_min_second_half": None if slope is None else round(slope, 1),
            "rss_slope_kib_per_min_whole_run": None if whole is None else round(whole, 1),
            "rss_slope_bytes_per_stream_opened": (
                None if slope is None or streams_per_min == 0
                else round(slope * 1024 / streams_per_min, 2)),
            "max_rss_slope_kib_per_min": self.args.max_rss_slope,
            "malloc_arena_max": self.args.malloc_arena_max or "glibc default",
            "rss_slope_ok": rss_ok,
            "server_open_streams_at_end": open_streams,
            "start": start_sample,
            "end": end_sample,
        }
        return summary


def print_summary(s: dict) -> None:
    st = s["streams"]
    rss = [x["rss_kib"] for x in s["rss_samples"]]
    print("\n==== soak summary ====")
    print(f"duration            {s['traffic_seconds']:.0f} s of traffic "
          f"(+{s['wind_down_seconds']:.0f} s wind-down), {s['stream_slots']} stream slots")
    print(f"streams             opened {st['opened']}, completed {st['completed']}, "
          f"cancelled {st['cancelled']} (plain {st['plain']}, snapshot+resume "
          f"{st['snapshot_resumed']}, reset {st['reset']}, churn model {st['on_churn_model']}); "
          f"{st['per_minute']:.0f}/min, at most {st['max_open_by_client']} open")
    print(f"steps verified      {s['steps_verified']} ({s['steps_per_second']:.0f}/s)")
    print(f"predicts            {s['predict_calls']} calls, "
          f"{s['predict_sequences_verified']} sequences verified")
    print(f"train jobs          {s['train_jobs']} (churn versions created "
          f"{s['churn_versions_created']}, deleted {s['churn_versions_deleted']})")
    print(f"expected errors     {s['expected_errors']}")
    print(f"unexpected errors   {s['unexpected_errors']}")
    for e in s["unexpected_error_examples"][:10]:
        print(f"    {e}")
    print(f"mismatches          {s['mismatches']} (tolerance {s['tolerance_relative']:g} relative; "
          f"max |diff| stream {s['max_abs_diff']['stream']:.3g}, "
          f"predict {s['max_abs_diff']['predict']:.3g}; not bit-equal: "
          f"{s['values_not_bit_equal']} of {s['values_compared']})")
    for e in s["mismatch_examples"][:10]:
        print(f"    {e}")
    print(f"solo stream/Predict {s['solo_stream_vs_solo_predict']}")
    print(f"RSS samples (MiB)   every {s['sample_seconds']:.0f} s: "
          + " ".join(f"{r / 1024:.1f}" for r in rss))
    print(f"RSS slope           {s['rss_slope_kib_per_min_second_half']} KiB/min over the second "
          f"half (limit {s['max_rss_slope_kib_per_min']}; whole run "
          f"{s['rss_slope_kib_per_min_whole_run']}); = "
          f"{s['rss_slope_bytes_per_stream_opened']} bytes per stream opened")
    print(f"MALLOC_ARENA_MAX    {s['malloc_arena_max']}")
    print(f"fds                 {s['start']['fds']} -> {s['end']['fds']}")
    print(f"threads             {s['start']['threads']} -> {s['end']['threads']}")
    print(f"RSS start/end       {s['start']['rss_kib'] / 1024:.1f} -> "
          f"{(s['end']['rss_kib'] or 0) / 1024:.1f} MiB (after traffic)")
    print(f"server exit code    {s.get('server_exit_code')}")
    print(f"result              {'PASS' if s['passed'] else 'FAIL: ' + '; '.join(s['failures'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="minutes of traffic (default 30)")
    parser.add_argument("--streams", type=int, default=200, help="concurrent stream slots")
    parser.add_argument("--json", help="write the summary as JSON here")
    parser.add_argument("--max-rss-slope", type=float, default=None,
                        help="KiB/min over the second half (default: 1024; 4096 for runs "
                             "under 5 minutes, whose second half is still warming up)")
    parser.add_argument("--malloc-arena-max", type=int, default=None,
                        help="MALLOC_ARENA_MAX for the server (default: glibc's own, 8 per core; "
                             "2 for runs under 5 minutes, see the module docstring)")
    parser.add_argument("--no-rss-limit", action="store_true",
                        help="report the RSS slope but do not fail on it (sanitizer builds)")
    parser.add_argument("--sample-seconds", type=float, default=0,
                        help="RSS sample period (default: duration/12 within [5, 60] s)")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="|got - solo| <= tolerance * max(1, |solo|)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn-predict-share", type=float, default=0.1,
                        help="share of Predict calls on the churn model (0: none at all)")
    parser.add_argument("--traffic", default="streams,predict,train,bad",
                        help="which traffic to run (comma-separated; to narrow down a leak)")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="skip the Predict shape warm-up before the traffic")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.max_rss_slope is None:
        args.max_rss_slope = 4096.0 if args.minutes < 5 else 1024.0
    if args.malloc_arena_max is None:
        args.malloc_arena_max = 2 if args.minutes < 5 else 0
    if not os.access(RECURRENTD_PATH, os.X_OK):
        print(f"no recurrentd at RECURRENTD_PATH={RECURRENTD_PATH}: build it first",
              file=sys.stderr)
        return 2

    work_dir = tempfile.mkdtemp(prefix="recurrent-soak-")
    server = Server(RECURRENTD_PATH, work_dir, max_streams=2 * args.streams + 50,
                    malloc_arena_max=args.malloc_arena_max)
    print(f"recurrentd pid {server.pid} on {server.target}, data and log in {work_dir}",
          flush=True)
    summary = None
    failures = []
    try:
        server.wait_ready()
        soak = Soak(args, server)
        summary = asyncio.run(soak.run())
    except Exception as error:  # setup failed, or the server died
        import traceback
        traceback.print_exc()
        failures.append(f"{type(error).__name__}: {error}")
    code = server.stop()
    if summary is None:
        summary = {"failures": failures}
    summary["server_exit_code"] = code
    if server.died_before_stop:
        failures.append(f"recurrentd died during the run (exit code {code})")
    elif code != 0:
        failures.append(f"recurrentd exited with {code} after SIGTERM, expected 0")
    if "unexpected_errors" in summary:
        if summary["unexpected_errors"]:
            failures.append(f"{summary['unexpected_errors']} unexpected errors")
        if summary["mismatches"]:
            failures.append(f"{summary['mismatches']} mismatches")
        if not summary["rss_slope_ok"]:
            failures.append(f"RSS slope {summary['rss_slope_kib_per_min_second_half']} KiB/min "
                            f"over the limit {args.max_rss_slope}")
        if summary["streams"]["opened"] == 0 or summary["steps_verified"] == 0:
            failures.append("no traffic")
    summary["failures"] = failures
    summary["passed"] = not failures
    if "streams" in summary:
        print_summary(summary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if failures:
        print(f"\nFAIL: {'; '.join(failures)}\n---- recurrentd log (tail) ----\n"
              f"{server.log_tail()}", file=sys.stderr)
    if args.keep or failures:
        print(f"kept {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
