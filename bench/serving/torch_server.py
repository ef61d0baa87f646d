#!/usr/bin/python3
"""The "Python + PyTorch" baseline of the serving benchmark: what a user would write instead of
recurrentd, in its fastest configuration here (grpc.aio, PyTorch 1.13 on OpenBLAS).

    /usr/bin/python3 bench/serving/torch_server.py --port=50061 --artifact=bench.artifact \
        [--threads=1] [--stubs=build/python] [--model_name=bench]

It serves recurrent.v1.InferenceService (Predict and StepPredict only) for ONE model, loaded
from a model artifact file, with recurrentd's contract for those two RPCs:

  StepPredict  first message `open` (the ModelRef must name --model_name, with version 1 or
               no selector) -> `opened`; then each `step` (steps x input_size floats) ->
               one `output` (steps x output_size floats), the recurrent state kept per stream;
               `reset` zeroes it -> reset_done. resume_from and `snapshot` are UNIMPLEMENTED; a
               malformed message ends the stream with INVALID_ARGUMENT, as in recurrentd.
  Predict      sequences of equal length share one RNN call; one OutputSequence per input, in
               order ([steps, O] for a per-step head, [1, O] for a last-step head);
               return_final_states is honoured.

Sizes are limited like recurrentd's defaults (--max_steps_per_message=1024,
--max_predict_sequences=4096, --max_predict_steps=100000, 64 MiB messages).

Prints "listening on PORT" on stdout once it accepts calls; on SIGTERM (or SIGINT) it stops
taking calls and ends in-flight ones within --grace_seconds.

Run it with Debian's /usr/bin/python3 and `libopenblas0-openmp` installed: it refuses to start
(exit 2) when PyTorch's BLAS is not OpenBLAS, because the netlib reference BLAS that Debian's
PyTorch otherwise loads is 10-30x slower and would make the comparison meaningless.

What was tried for speed (single stream, steps=1, --threads=1, on this project's 2-vCPU VM while
other builds ran, so every figure is rough):
  * StepPredict uses the explicit `await context.read()` / `await context.write()` API, not an
    async-generator handler (`async for request in request_iterator: yield ...`). Six interleaved
    rounds of 2000 round trips (Python aio client): median p50 420 us vs 437 us, a difference
    of the size of the noise, but in its favour.
  * The whole event loop runs inside ONE torch.inference_mode() scope entered in main(), rather
    than a `with torch.inference_mode():` per message. inference_mode is thread-local and every
    coroutine runs on this one thread, so every RPC is covered. Entering and leaving the scope
    costs ~1 us; in the same rounds the per-message form measured a 445 us median p50 (noise
    dominates that difference).
  * No executor hops: the network runs on the event loop thread. One step of this model costs
    ~90 us of LSTM (two layers, two GEMVs each, OpenBLAS); a hop to a thread pool (not measured)
    adds two thread wake-ups per message, and with the GIL needed for the Python parts it could
    not overlap much on two vCPUs anyway.
  * A single-step message's inputs are written into one preallocated [1, 1, I] tensor (through
    its numpy view: 1.8 us) instead of torch.tensor(values) (3.8 us; copying that into a reused
    tensor: 4.5 us). Multi-step messages run as one sequence from torch.tensor(values).
    Outputs go out with tensor.tolist() (0.8 us). nn.LSTM's outputs and new (h, c) are fresh
    tensors each step: nn.LSTM has no out= form.
  * The nn.LSTM module is called as a user would. torch._VF.lstm with the module's flat weights
    (skipping nn.LSTM.forward's Python checks) saves ~5 us of ~90 us: kept out, since the
    baseline is meant to be the code a user would write.
  * The non-finite check is math.isfinite(sum(values)) (0.6 us; a float64 sum of float32 values
    is finite iff every value is) rather than torch.isfinite(x).all() (6 us).
  * Normalization stored in the artifact (none for the benchmark model) is folded into the first
    layer's input weights and into the head once at load time, so it costs nothing per step.
  * Not tried: uvloop (grpc.aio polls through its own completion queue; Debian's python3-uvloop is
    not installed here), and several processes behind SO_REUSEPORT (a different baseline: this one
    is the single-process server a user would write first).
"""

import argparse
import asyncio
import math
import os
import signal
import sys

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# recurrentd's defaults for the same limits (server/main.cc flags); keep in sync.
MAX_STEPS_PER_MESSAGE = 1024
MAX_PREDICT_SEQUENCES = 4096
MAX_PREDICT_STEPS = 100000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="gRPC port on 127.0.0.1")
    parser.add_argument("--artifact", required=True, help="model artifact file to serve")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (intra-op threads, OpenMP/OpenBLAS)")
    parser.add_argument("--stubs", default=os.path.join(REPO_ROOT, "build", "python"),
                        help="directory of the generated Python stubs "
                             "(scripts/gen_python_stubs.sh)")
    parser.add_argument("--model_name", default="bench",
                        help="the name requests must use in their ModelRef")
    parser.add_argument("--listen_address", default="127.0.0.1")
    parser.add_argument("--grace_seconds", type=float, default=5.0,
                        help="on SIGTERM, how long in-flight calls may run before cancellation")
    parser.add_argument("--allow_reference_blas", action="store_true",
                        help="start even when PyTorch's BLAS is not OpenBLAS (not for timings)")
    return parser.parse_args(argv)


ARGS = parse_args()
# OpenMP reads this once, when libgomp is loaded with torch: set it before the import so the
# runtime never starts more threads than asked for. torch.set_num_threads below sets it again.
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
sys.path[:0] = [ARGS.stubs, os.path.join(REPO_ROOT, "client", "python")]

import grpc  # noqa: E402
import numpy  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from recurrent_client.artifact import decode_artifact  # noqa: E402
from recurrent_client._stubs import model_pb2, service_pb2, service_pb2_grpc  # noqa: E402

pb = service_pb2


def uses_openblas():
    """True iff the BLAS mapped into this process (after one matmul) is OpenBLAS."""
    a = torch.ones(64, 64)
    (a @ a).sum().item()
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line or "lapack" in line}
    return any("openblas" in os.path.basename(p) for p in libs) and not any(
        "/blas/" in p or "/lapack/" in p for p in libs)


# ------------------------------------------------------------------------------------------------
# The model


class ServedModel:
    """One artifact's network as PyTorch modules, ready for inference (eval mode, float32, CPU).

    rnn:  nn.LSTM / nn.GRU / nn.RNN with batch_first=True, weights from the artifact.
    head: nn.Linear(D*H, O). Input and target normalization, if the artifact has them, are folded
          into rnn.weight_ih_l0/bias_ih_l0 (and the reverse direction's) and into the head.
    Not thread-safe in any way that matters here: everything runs on the event loop thread.
    """

    _CELLS = {
        model_pb2.CELL_TYPE_LSTM: lambda **kw: nn.LSTM(**kw),
        model_pb2.CELL_TYPE_GRU: lambda **kw: nn.GRU(**kw),
        model_pb2.CELL_TYPE_RNN_TANH: lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
        model_pb2.CELL_TYPE_RNN_RELU: lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    }

    def __init__(self, artifact):
        spec = artifact.spec
        if spec.cell not in self._CELLS:
            raise ValueError(f"unsupported cell type {spec.cell}")
        self.spec = spec
        self.input_size = spec.input_size
        self.output_size = spec.output_size
        self.hidden_size = spec.hidden_size
        self.directions = 2 if spec.bidirectional else 1
        self.state_rows = spec.num_layers * self.directions  # rows of h and c: [L*D, N, H]
        self.is_lstm = spec.cell == model_pb2.CELL_TYPE_LSTM
        self.per_step = spec.head != model_pb2.HEAD_MODE_LAST_STEP

        self.rnn = self._CELLS[spec.cell](
            input_size=spec.input_size, hidden_size=spec.hidden_size,
            num_layers=spec.num_layers, bidirectional=spec.bidirectional, batch_first=True)
        self.head = nn.Linear(self.directions * spec.hidden_size, spec.output_size)
        tensors = {t.name: torch.tensor(list(t.values), dtype=torch.float32).view(*t.shape)
                   for t in artifact.tensors}
        rnn_state = {name: tensors[name] for name in self.rnn.state_dict()}
        self.rnn.load_state_dict(rnn_state)
        self.head.load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
        self._fold_normalization(artifact.normalization)
        self.rnn.eval()
        self.head.eval()
        for p in list(self.rnn.parameters()) + list(self.head.parameters()):
            p.requires_grad_(False)
        # nn.LSTM re-checks that its flat weights are one contiguous buffer on every call;
        # flattening once keeps it on the fast path.
        self.rnn.flatten_parameters()

    @torch.no_grad()
    def _fold_normalization(self, norm):
        # x' = (x - m) / s  =>  W x' + b = (W / s) x + (b - W (m / s)), per layer-0 direction.
        if len(norm.input_mean):
            mean = torch.tensor(list(norm.input_mean))
            std = torch.tensor(list(norm.input_std))
            for suffix in ("_l0", "_l0_reverse")[:self.directions]:
                weight = getattr(self.rnn, "weight_ih" + suffix)
                bias = getattr(self.rnn, "bias_ih" + suffix)
                bias -= weight @ (mean / std)
                weight /= std
        # y = y' * s + m  =>  head (W, b) becomes (s W, s b + m).
        if len(norm.target_mean):
            mean = torch.tensor(list(norm.target_mean))
            std = torch.tensor(list(norm.target_std))
            self.head.weight *= std.unsqueeze(1)
            self.head.bias.mul_(std).add_(mean)

    def zero_state(self, batch=1):
        """A fresh recurrent state for `batch` sequences: (h, c) for LSTM, h otherwise."""
        h = torch.zeros(self.state_rows, batch, self.hidden_size)
        return (h, torch.zeros_like(h)) if self.is_lstm else h


# ------------------------------------------------------------------------------------------------
# The service


class InvalidRequest(Exception):
    """A request that breaks the contract: the RPC ends with INVALID_ARGUMENT and this message."""


def check_values(values, expected, what):
    if len(values) != expected:
        raise InvalidRequest(f"{what} has {len(values)} values; {expected} are needed")
    # A float64 sum of float32 values is finite iff every value is (no overflow is possible
    # below ~1e270 values), so this is an exact test at one C-level pass.
    if not math.isfinite(sum(values)):
        raise InvalidRequest(f"{what} holds a value that is not finite")


class InferenceService(service_pb2_grpc.InferenceServiceServicer):
    def __init__(self, model, model_name):
        self._model = model
        self._name = model_name
        # The input of every single-step message, shared by all streams: each fills it and runs
        # the network on it with no `await` in between, and only this thread runs handlers.
        self._one_step_numpy = numpy.zeros(model.input_size, dtype=numpy.float32)
        self._one_step_input = torch.from_numpy(self._one_step_numpy).view(1, 1, model.input_size)

    def _resolve(self, ref):
        """None if `ref` names the served model, else (code, message) as recurrentd answers for
        a registry holding only version 1 of it, with no aliases."""
        if not ref.name:
            return grpc.StatusCode.INVALID_ARGUMENT, 'invalid name "": the model name is empty'
        if ref.name != self._name:
            return grpc.StatusCode.NOT_FOUND, f'model "{ref.name}" not found'
        which = ref.WhichOneof("selector")
        if which == "version" and ref.version != 1:
            return grpc.StatusCode.NOT_FOUND, f'model "{ref.name}" has no version {ref.version}'
        if which == "alias":
            if ref.alias == "latest":
                return (grpc.StatusCode.INVALID_ARGUMENT,
                        'invalid alias "latest": reserved for the newest version')
            return grpc.StatusCode.NOT_FOUND, f'model "{ref.name}" has no alias "{ref.alias}"'
        return None

    async def Predict(self, request, context):
        problem = self._resolve(request.model)
        if problem is not None:
            await context.abort(*problem)
        model = self._model
        count = len(request.sequences)
        try:
            if count == 0:
                raise InvalidRequest("sequences is empty: send at least one sequence")
            if count > MAX_PREDICT_SEQUENCES:
                raise InvalidRequest(
                    f"{count} sequences, over --max_predict_sequences={MAX_PREDICT_SEQUENCES}")
            by_length = {}
            for i, sequence in enumerate(request.sequences):
                steps = sequence.steps
                if steps < 1 or steps > MAX_PREDICT_STEPS:
                    raise InvalidRequest(f"sequences[{i}].steps is {steps}; it must be in "
                                         f"[1, {MAX_PREDICT_STEPS}]")
                check_values(sequence.values, steps * model.input_size, f"sequences[{i}]")
                by_length.setdefault(steps, []).append(i)
        except InvalidRequest as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

        response = pb.PredictResponse(model_name=self._name, model_version=1)
        outputs = [response.outputs.add() for _ in range(count)]
        states = ([response.final_states.add() for _ in range(count)]
                  if request.return_final_states else None)
        rows = None
        for steps, members in by_length.items():
            n = len(members)
            if n == 1:
                x = torch.tensor(request.sequences[members[0]].values)
            else:
                x = torch.cat([torch.tensor(request.sequences[i].values) for i in members])
            hidden, final = model.rnn(x.view(n, steps, model.input_size))  # [N, T, D*H]
            if not model.per_step:
                hidden = hidden[:, -1:, :]
            y = model.head(hidden)  # [N, rows, O]
            rows = y.shape[1]
            for b, i in enumerate(members):
                outputs[i].steps = rows
                outputs[i].values.extend(y[b].view(-1).tolist())
            if states is not None:
                h, c = final if model.is_lstm else (final, None)
                for b, i in enumerate(members):  # [L*D, N, H] -> this sequence's [L*D, H]
                    states[i].h.extend(h[:, b, :].reshape(-1).tolist())
                    if c is not None:
                        states[i].c.extend(c[:, b, :].reshape(-1).tolist())
        return response

    async def StepPredict(self, request_iterator, context):
        # read()/write() rather than `async for ... yield`: see the module docstring.
        model = self._model
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        if first.WhichOneof("kind") != "open":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the first StepPredict message must be `open` (a model, or a "
                                "snapshot)")
        if first.open.resume_from:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                "resume_from is not supported by the PyTorch baseline server")
        problem = self._resolve(first.open.model)
        if problem is not None:
            await context.abort(*problem)
        if model.directions != 1:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "a bidirectional model needs whole sequences: use Predict, not "
                                "StepPredict")
        await context.write(pb.StepResponse(opened=pb.SessionOpened(
            model_name=self._name, model_version=1, input_size=model.input_size,
            output_size=model.output_size, steps_taken=0)))

        rnn, head, input_size = model.rnn, model.head, model.input_size
        one_step_numpy, one_step_input = self._one_step_numpy, self._one_step_input
        state = model.zero_state()
        read, write = context.read, context.write
        StepResponse, StepOutput = pb.StepResponse, pb.StepOutput
        while True:
            request = await read()
            if request is grpc.aio.EOF:
                return
            kind = request.WhichOneof("kind")
            if kind == "step":
                step = request.step
                steps = step.steps
                values = step.values
                if steps < 1 or steps > MAX_STEPS_PER_MESSAGE:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"step.steps is {steps}; it must be in [1, {MAX_STEPS_PER_MESSAGE}] "
                        "(--max_steps_per_message)")
                if len(values) != steps * input_size or not math.isfinite(sum(values)):
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"step has {len(values)} values ({steps} steps of {input_size} inputs "
                        f"need {steps * input_size}), all finite")
                if steps == 1:
                    one_step_numpy[:] = values  # into the shared [1, 1, I] input, no new tensor
                    x = one_step_input
                else:  # several steps run as one sequence: the same result as one at a time
                    x = torch.tensor(values).view(1, steps, input_size)
                out, state = rnn(x, state)
                await write(StepResponse(output=StepOutput(
                    steps=steps, values=head(out).view(-1).tolist())))
            elif kind == "reset":
                state = model.zero_state()
                await write(StepResponse(reset_done=True))
            elif kind == "snapshot":
                await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                    "snapshots are not supported by the PyTorch baseline server")
            elif kind == "open":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    "the session is already open; `open` is only valid as the "
                                    "first message")
            else:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    "an empty StepPredict message: send step, reset or snapshot")


# ------------------------------------------------------------------------------------------------
# Lifecycle


async def serve(model):
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ])
    service_pb2_grpc.add_InferenceServiceServicer_to_server(
        InferenceService(model, ARGS.model_name), server)
    address = f"{ARGS.listen_address}:{ARGS.port}"
    if server.add_insecure_port(address) == 0:
        print(f"torch_server: cannot listen on {address}", file=sys.stderr)
        sys.exit(1)
    await server.start()

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"listening on {ARGS.port}", flush=True)
    await stopping.wait()
    print("torch_server: stopping", file=sys.stderr, flush=True)
    await server.stop(ARGS.grace_seconds)
    print("torch_server: stopped", file=sys.stderr, flush=True)


def main():
    torch.set_num_threads(ARGS.threads)
    if not uses_openblas() and not ARGS.allow_reference_blas:
        print("torch_server: PyTorch is not using OpenBLAS; install libopenblas0-openmp (the "
              "reference BLAS is 10-30x slower). --allow_reference_blas starts anyway.",
              file=sys.stderr)
        sys.exit(2)
    with open(ARGS.artifact, "rb") as f:
        artifact = decode_artifact(f.read())
    model = ServedModel(artifact)
    # One inference_mode scope for the whole event loop (it is thread-local, and every
    # coroutine runs on this thread): no autograd bookkeeping in any call, and no per-call
    # context manager cost.
    with torch.inference_mode():
        warm = torch.zeros(1, 1, model.input_size)
        model.head(model.rnn(warm, model.zero_state())[0])
        asyncio.run(serve(model))


if __name__ == "__main__":
    main()
