"""recurrent_client: a small Python client for recurrentd (package recurrent.v1).

    from recurrent_client import Client
    with Client.connect("127.0.0.1:50051") as client:
        job_id = client.train("adder", spec, data, options)
        client.wait(job_id)
        print(client.predict("adder", [[[0.5, 1.0], [0.2, 0.0], [0.3, 1.0]]]).outputs)

Needs the generated stubs on sys.path (scripts/gen_python_stubs.sh; see _stubs.py); their message
modules are re-exported as `recurrent_client.model_pb2` and `recurrent_client.service_pb2`.
`recurrent_client.artifact` reads and writes model artifact files; `recurrent_client.torch_import`
(needs torch, imported only on request) turns PyTorch networks into artifacts.
"""

from recurrent_client._stubs import model_pb2, service_pb2
from recurrent_client.artifact import ArtifactError, crc32c, decode_artifact, encode_artifact
from recurrent_client.client import (
    Client,
    JobFailedError,
    Opened,
    Prediction,
    Snapshot,
    StepResult,
    StreamEvent,
    describe_job,
    model_ref,
)

__all__ = [
    "ArtifactError",
    "Client",
    "JobFailedError",
    "Opened",
    "Prediction",
    "Snapshot",
    "StepResult",
    "StreamEvent",
    "crc32c",
    "decode_artifact",
    "describe_job",
    "encode_artifact",
    "model_pb2",
    "model_ref",
    "service_pb2",
]
