"""A thin, synchronous client for recurrentd's three services.

Every method is one RPC (or one stream) of proto/recurrent/v1/service.proto; the request and
response messages are the generated ones, so nothing here hides a field of the API. Server errors
surface as ``grpc.RpcError`` with the server's status code and message, e.g. ``NOT_FOUND`` for an
unknown model or ``INVALID_ARGUMENT`` for a malformed request.

Tensors: an input sequence is a list of timesteps, each a list of ``input_size`` floats; an
output sequence is a list of rows, each a list of ``output_size`` floats (one row per step for a
per-step head, a single row for a last-step head).

A Client is safe to share between threads (gRPC channels are); close it when done.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc

from recurrent_client._stubs import model_pb2, service_pb2, service_pb2_grpc

# A model as the API names it: a name (its newest version), or a full ModelRef (version or alias).
ModelLike = Union[str, service_pb2.ModelRef]

# The server's default --max_message_bytes; gRPC's own default (4 MiB) is smaller.
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20

_TERMINAL_STATES = (
    service_pb2.JOB_STATE_SUCCEEDED,
    service_pb2.JOB_STATE_FAILED,
    service_pb2.JOB_STATE_CANCELLED,
)


def model_ref(name: str, *, version: Optional[int] = None,
              alias: Optional[str] = None) -> service_pb2.ModelRef:
    """A ModelRef for `name` at `version` or `alias` (at most one); with neither, the newest."""
    if version is not None and alias is not None:
        raise ValueError("give a version or an alias, not both")
    ref = service_pb2.ModelRef(name=name)
    if version is not None:
        ref.version = version
    elif alias is not None:
        ref.alias = alias
    return ref


def _as_ref(model: ModelLike) -> service_pb2.ModelRef:
    return model_ref(model) if isinstance(model, str) else model


def _flatten_steps(steps: Sequence[Sequence[float]], what: str) -> list[float]:
    """[steps][input_size] -> row-major floats; every step must have the same width."""
    if len(steps) == 0:
        raise ValueError(f"{what} has no timesteps")
    width = len(steps[0])
    values: list[float] = []
    for t, step in enumerate(steps):
        if len(step) != width:
            raise ValueError(f"{what} step {t} has {len(step)} values, step 0 has {width}")
        values.extend(float(v) for v in step)
    return values


def _rows(values: Sequence[float], rows: int) -> list[list[float]]:
    """Row-major floats -> `rows` lists of equal width."""
    if rows <= 0 or len(values) % rows != 0:
        raise ValueError(f"cannot split {len(values)} values into {rows} rows")
    width = len(values) // rows
    return [list(values[r * width:(r + 1) * width]) for r in range(rows)]


def job_state_name(state: int) -> str:
    """"RUNNING" for JOB_STATE_RUNNING, and so on."""
    return service_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


def describe_job(job: service_pb2.Job) -> str:
    """One human-readable progress line for `job`, as wait() prints it."""
    head = f"job {job.id} ({job.model_name}): {job_state_name(job.state)}"
    progress = job.progress
    if job.state == service_pb2.JOB_STATE_RUNNING and progress.max_epochs == 0:
        return f"{head}, starting"
    if job.state == service_pb2.JOB_STATE_RUNNING:
        parts = [f"epoch {progress.epoch}/{progress.max_epochs}", f"step {progress.step}",
                 f"train_loss {progress.train_loss:.4g}"]
        if progress.HasField("validation_loss"):
            parts.append(f"validation_loss {progress.validation_loss:.4g}")
        parts.append(f"{progress.sequences_per_second:.0f} seq/s")
        parts.append(f"eta {progress.eta_seconds:.1f} s")
        return f"{head} " + ", ".join(parts)
    if job.state == service_pb2.JOB_STATE_SUCCEEDED:
        return (f"{head} -> {job.model_name} v{job.model_version} ({job.stop_reason}, "
                f"{progress.step} steps, train_loss {progress.train_loss:.4g}, "
                f"{progress.elapsed_seconds:.1f} s)")
    if job.state == service_pb2.JOB_STATE_FAILED:
        return f"{head}: {job.error}"
    return head


class JobFailedError(RuntimeError):
    """A training job ended FAILED or CANCELLED; `job` is its final state."""

    def __init__(self, job: service_pb2.Job):
        detail = f": {job.error}" if job.error else ""
        super().__init__(f"job {job.id} ended {job_state_name(job.state)}{detail}")
        self.job = job


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A Predict answer: `outputs[i]` belongs to input sequence i, as [rows][output_size]."""

    model_name: str
    model_version: int
    outputs: list[list[list[float]]]


@dataclasses.dataclass(frozen=True)
class Opened:
    """First event of a stream: the session is open on this (pinned) model version."""

    model_name: str
    model_version: int
    input_size: int
    output_size: int
    steps_taken: int  # > 0 when resumed from a snapshot


@dataclasses.dataclass(frozen=True)
class StepResult:
    """The head's output after one timestep. `index` counts the session's steps from 0,
    including the steps taken before a snapshot it resumed from."""

    index: int
    values: list[float]  # [output_size]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The session's recurrent state, opaque and checksummed: pass `data` as `resume_from`."""

    data: bytes


StreamEvent = Union[Opened, StepResult, Snapshot]


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds "authorization: Bearer TOKEN" to every call (plaintext channels included, where
    grpc's call credentials are refused)."""

    def __init__(self, token: str):
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or []) + [self._metadata]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class Client:
    """recurrentd's TrainingService, InferenceService and ModelService over one channel."""

    def __init__(self, channel: grpc.Channel, *, timeout: Optional[float] = 30.0):
        """Uses `channel` (the Client closes it in close()). `timeout` (seconds) is the deadline
        of every unary call; None for none. wait() and stream() have no deadline."""
        self._channel = channel
        self._timeout = timeout
        self._training = service_pb2_grpc.TrainingServiceStub(channel)
        self._inference = service_pb2_grpc.InferenceServiceStub(channel)
        self._models = service_pb2_grpc.ModelServiceStub(channel)

    @classmethod
    def connect(cls, target: str, *, timeout: Optional[float] = 30.0,
                max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                token: Optional[str] = None, tls: bool = False,
                tls_ca_file: Optional[str] = None, tls_cert_file: Optional[str] = None,
                tls_key_file: Optional[str] = None) -> "Client":
        """A client on a new channel to `target` ("host:port"), made lazily by the first call.

        Plaintext unless `tls` or a `tls_*` file is given: then TLS, verifying the server against
        `tls_ca_file` (else the system's CAs), with a client certificate for mutual TLS
        (`tls_cert_file` + `tls_key_file`). `token` is sent as "authorization: Bearer TOKEN" on
        every call (for a server started with --auth_tokens_file)."""
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        if tls or tls_ca_file or tls_cert_file:
            if bool(tls_cert_file) != bool(tls_key_file):
                raise ValueError("mutual TLS needs both tls_cert_file and tls_key_file")

            def read(path: Optional[str]) -> Optional[bytes]:
                if not path:
                    return None
                with open(path, "rb") as f:
                    return f.read()

            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(tls_ca_file), private_key=read(tls_key_file),
                certificate_chain=read(tls_cert_file))
            channel = grpc.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        if token:
            channel = grpc.intercept_channel(channel, _BearerToken(token))
        return cls(channel, timeout=timeout)

    def close(self) -> None:
        """Closes the channel; open streams end with CANCELLED."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- TrainingService

    def train(self, model_name: str, spec: model_pb2.ModelSpec, data: service_pb2.DataSource,
              options: Optional[service_pb2.TrainingOptions] = None, *,
              validation: Optional[service_pb2.DataSource] = None,
              labels: Optional[Mapping[str, str]] = None) -> str:
        """Submits a training job; returns its id at once. The trained model is registered as a
        new version of `model_name` when the job succeeds (see wait())."""
        request = service_pb2.TrainRequest(model_name=model_name, spec=spec, data=data,
                                           options=options, validation=validation,
                                           labels=labels or {})
        return self._training.Train(request, timeout=self._timeout).job_id

    def get_job(self, job_id: str) -> service_pb2.Job:
        return self._training.GetJob(service_pb2.GetJobRequest(job_id=job_id),
                                     timeout=self._timeout)

    def wait(self, job_id: str, *, report: Optional[Callable[[str], None]] = print,
             timeout: Optional[float] = None, check: bool = True) -> service_pb2.Job:
        """Follows the job with WatchJob until it ends and returns its final state.

        Every event that changes the job's state or step is passed to `report` as one line
        (describe_job); None reports nothing. `timeout` (seconds) bounds the whole wait
        (DEADLINE_EXCEEDED past it). With `check`, a job that ended FAILED or CANCELLED raises
        JobFailedError.
        """
        events = self._training.WatchJob(service_pb2.WatchJobRequest(job_id=job_id),
                                         timeout=timeout)
        last: Optional[service_pb2.Job] = None
        reported = None
        for event in events:
            last = event.job
            key = (last.state, last.progress.step)
            if report is not None and key != reported:
                report(describe_job(last))
                reported = key
        if last is None or last.state not in _TERMINAL_STATES:
            # The server ends the stream only once the job has ended; anything else is a bug.
            raise RuntimeError(f"WatchJob for job {job_id} ended before the job did")
        if check and last.state != service_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailedError(last)
        return last

    # ---- InferenceService

    def predict(self, model: ModelLike,
                sequences: Sequence[Sequence[Sequence[float]]]) -> Prediction:
        """Runs whole sequences through the model (one Predict call).

        `sequences[i]` is [steps][input_size]; sequences may differ in length. Returns one output
        per sequence, in order: [steps][output_size] for a per-step head, [1][output_size] for a
        last-step head, in the data's units (logits for a cross-entropy model).
        """
        request = service_pb2.PredictRequest(model=_as_ref(model))
        for i, steps in enumerate(sequences):
            request.sequences.add(steps=len(steps), values=_flatten_steps(steps, f"sequence {i}"))
        response = self._inference.Predict(request, timeout=self._timeout)
        return Prediction(
            model_name=response.model_name,
            model_version=response.model_version,
            outputs=[_rows(out.values, out.steps) for out in response.outputs],
        )

    def stream(self, model: ModelLike, steps: Iterable[Sequence[float]], *,
               snapshot: bool = False, resume_from: bytes = b"") -> Iterator[StreamEvent]:
        """Steps one sequence through a StepPredict session, one timestep per message.

        Yields Opened first, then one StepResult per element of `steps` (each [input_size]
        floats), and, with `snapshot`, a final Snapshot of the state after the last step. The
        server keeps the recurrent state between messages, so StepResult k equals what Predict
        returns for step k of the whole sequence (per-step head), or for the sequence cut after
        step k (last-step head), up to float rounding. `resume_from` (a Snapshot's data)
        continues an earlier session. `steps` is consumed lazily, so it may be a live source.
        Leaving the loop early cancels the stream.
        """

        def requests() -> Iterator[service_pb2.StepRequest]:
            yield service_pb2.StepRequest(
                open=service_pb2.OpenSession(model=_as_ref(model), resume_from=resume_from))
            for step in steps:
                yield service_pb2.StepRequest(
                    step=service_pb2.StepInput(steps=1, values=[float(v) for v in step]))
            if snapshot:
                yield service_pb2.StepRequest(snapshot=True)

        call = self._inference.StepPredict(requests())
        try:
            index = 0
            for response in call:
                kind = response.WhichOneof("kind")
                if kind == "opened":
                    opened = response.opened
                    index = opened.steps_taken
                    yield Opened(opened.model_name, opened.model_version, opened.input_size,
                                 opened.output_size, opened.steps_taken)
                elif kind == "output":
                    for row in _rows(response.output.values, response.output.steps):
                        yield StepResult(index, row)
                        index += 1
                elif kind == "snapshot":
                    yield Snapshot(response.snapshot.data)
                else:
                    raise RuntimeError(f"unexpected StepPredict response: {kind}")
        finally:
            call.cancel()  # a no-op once the stream has ended; frees it if the caller stopped early

    # ---- ModelService

    def list_models(self, *, timeout: Optional[float] = None) -> list[service_pb2.ModelSummary]:
        """Every registered model. `timeout` overrides the client's deadline for this call."""
        response = self._models.ListModels(service_pb2.ListModelsRequest(),
                                           timeout=self._timeout if timeout is None else timeout)
        return list(response.models)

    def get_model(self, name: str) -> service_pb2.ModelInfo:
        return self._models.GetModel(service_pb2.GetModelRequest(name=name), timeout=self._timeout)

    def set_alias(self, name: str, alias: str, version: int) -> service_pb2.ModelInfo:
        request = service_pb2.SetAliasRequest(name=name, alias=alias, version=version)
        return self._models.SetAlias(request, timeout=self._timeout)

    def import_artifact(self, name: str, artifact: bytes, *,
                        labels: Optional[Mapping[str, str]] = None) -> service_pb2.ModelVersionInfo:
        """Registers artifact file bytes (see recurrent_client.artifact and torch_import) as a new
        version of `name`. INVALID_ARGUMENT when the bytes are damaged or do not fit their spec."""
        request = service_pb2.ImportModelRequest(name=name, artifact=artifact, labels=labels or {})
        return self._models.ImportModel(request, timeout=self._timeout)

    def export_artifact(self, model: ModelLike) -> tuple[int, bytes]:
        """The version number and artifact file bytes of `model` (decode with
        recurrent_client.artifact.decode_artifact)."""
        response = self._models.ExportModel(service_pb2.ExportModelRequest(model=_as_ref(model)),
                                            timeout=self._timeout)
        return response.version, response.artifact
