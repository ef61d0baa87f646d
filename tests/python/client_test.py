#!/usr/bin/python3
"""End to end: the Python client package (client/python/recurrent_client) against the real
recurrentd.

Starts build/bin/recurrentd on free ports with a temporary --data_dir, trains a model through the
package, predicts, streams (and resumes a stream from a snapshot), round-trips artifacts, imports
PyTorch networks when torch is installed, runs client/python/example.py, and finally stops the
server with SIGTERM and expects exit code 0.

Run by ctest (tests/python/CMakeLists.txt), or by hand:
    RECURRENTD_PATH=build/bin/recurrentd RECURRENT_PY_STUBS=build/python \
        /usr/bin/python3 tests/python/client_test.py
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT_DIR = os.path.join(REPO_ROOT, "client", "python")
RECURRENTD_PATH = os.environ.get("RECURRENTD_PATH",
                                 os.path.join(REPO_ROOT, "build", "bin", "recurrentd"))
STUBS_DIR = os.environ.setdefault("RECURRENT_PY_STUBS", os.path.join(REPO_ROOT, "build", "python"))

sys.path.insert(0, CLIENT_DIR)
import grpc  # noqa: E402

from recurrent_client import (  # noqa: E402
    ArtifactError, Client, Opened, Snapshot, StepResult, crc32c, decode_artifact, model_pb2,
    model_ref, service_pb2)

try:
    import torch
except ImportError:  # PyTorch is optional (RECURRENT_WITH_TORCH=1 in scripts/install-deps.sh)
    torch = None

TOLERANCE = 1e-5  # float32 rounding between two implementations of the same network
ADDING_BASELINE_MSE = 1.0 / 6.0  # always predicting 1 (core/generators.h)
MODEL = "adder"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def adding_sequence(values: list[float], marked: tuple[int, int]) -> list[list[float]]:
    return [[value, 1.0 if t in marked else 0.0] for t, value in enumerate(values)]


def max_difference(a: list[list[float]], b: list[list[float]]) -> float:
    """Largest |a - b| over two [rows][width] lists of the same shape."""
    assert len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b)), (a, b)
    return max(abs(x - y) for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b))


class Server:
    """A recurrentd child process; its output goes to a log file shown when something fails."""

    def __init__(self, data_dir: str, log_path: str, extra_flags: tuple[str, ...] = ()):
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._log_path = log_path
        args = [RECURRENTD_PATH, f"--data_dir={data_dir}", f"--port={self.port}",
                f"--metrics_port={free_port()}", "--shutdown_grace_seconds=2", *extra_flags]
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        with open(self._log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Retries ListModels until it answers. Each attempt uses a fresh channel: a channel whose
        first connection was refused stays in backoff for a while even once the server listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"recurrentd exited with {self._process.returncode}:\n{self.log()}")
            with Client.connect(self.target) as client:
                try:
                    client.list_models(timeout=1.0)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"recurrentd did not answer within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (SIGKILL and -9 if it does not exit within `timeout`)."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode


class ClientTest(unittest.TestCase):
    """One server for the whole class; the model MODEL is trained once in setUpClass."""

    @classmethod
    def setUpClass(cls) -> None:
        if not os.access(RECURRENTD_PATH, os.X_OK):
            raise RuntimeError(
                f"no recurrentd at RECURRENTD_PATH={RECURRENTD_PATH}: build it first")
        cls.temp_dir = tempfile.mkdtemp(prefix="recurrent-python-client-")
        cls.server = Server(os.path.join(cls.temp_dir, "data"),
                            os.path.join(cls.temp_dir, "server.log"))
        try:
            cls.server.wait_ready()
            cls.client = Client.connect(cls.server.target)
            cls.progress_lines = []
            spec = model_pb2.ModelSpec(
                cell=model_pb2.CELL_TYPE_LSTM, input_size=2, hidden_size=16, num_layers=1,
                head=model_pb2.HEAD_MODE_LAST_STEP, output_size=1, loss=model_pb2.LOSS_TYPE_MSE)
            data = service_pb2.DataSource(generator=service_pb2.GeneratorSpec(
                seed=7, adding_problem=service_pb2.AddingProblemSpec(sequences=2048, length=10)))
            options = service_pb2.TrainingOptions(seed=1, batch_size=32, max_epochs=20,
                                                  learning_rate=0.01, validation_split=0.1)
            cls.job_id = cls.client.train(MODEL, spec, data, options, labels={"test": "python"})
            cls.job = cls.client.wait(cls.job_id, report=cls.progress_lines.append, timeout=120)
        except BaseException:
            cls.server.stop(timeout=5)
            print(cls.server.log(), file=sys.stderr)
            shutil.rmtree(cls.temp_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        # Idle connections hold the server's shutdown until its grace period ends: close first.
        cls.client.close()
        code = cls.server.stop()
        log = cls.server.log()
        shutil.rmtree(cls.temp_dir, ignore_errors=True)
        if code != 0:
            raise AssertionError(f"recurrentd exited with {code} after SIGTERM, expected 0:\n{log}")

    def model(self) -> service_pb2.ModelRef:
        return model_ref(MODEL, version=self.job.model_version)

    # ---- training

    def test_training_job_succeeds_and_registers_version_one(self) -> None:
        self.assertEqual(self.job.state, service_pb2.JOB_STATE_SUCCEEDED, self.job.error)
        self.assertEqual(self.job.model_version, 1)
        self.assertEqual(self.job.stop_reason, "completed")
        self.assertEqual(len(self.job.loss_history), 20)
        # Learned, not just ran: far below the MSE of always predicting the expected sum.
        last_epoch = self.job.loss_history[-1]
        self.assertTrue(last_epoch.has_validation_loss)
        self.assertLess(last_epoch.validation_loss, ADDING_BASELINE_MSE / 10)
        self.assertEqual(self.client.get_job(self.job_id).state, service_pb2.JOB_STATE_SUCCEEDED)
        info = self.client.get_model(MODEL)
        self.assertEqual([v.version for v in info.versions], [1])
        self.assertEqual(info.versions[0].training.job_id, self.job_id)
        self.assertEqual(info.versions[0].labels["test"], "python")

    def test_wait_reports_progress_lines_ending_with_success(self) -> None:
        self.assertGreaterEqual(len(self.progress_lines), 1)
        self.assertTrue(all(self.job_id in line for line in self.progress_lines),
                        self.progress_lines)
        self.assertIn(f"SUCCEEDED -> {MODEL} v1", self.progress_lines[-1])

    # ---- inference

    def test_predict_returns_one_sum_per_sequence_close_to_the_truth(self) -> None:
        sequences = [
            adding_sequence([0.5, 0.1, 0.9, 0.3, 0.2, 0.7, 0.4, 0.8, 0.6, 0.0], (0, 7)),
            adding_sequence([0.2, 0.6, 0.1, 0.4, 0.9, 0.3, 0.5, 0.2, 0.8, 0.1], (2, 5)),
            adding_sequence([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.9], (1, 9)),
        ]
        prediction = self.client.predict(self.model(), sequences)
        self.assertEqual((prediction.model_name, prediction.model_version), (MODEL, 1))
        self.assertEqual([len(out) for out in prediction.outputs], [1, 1, 1])  # last-step head
        self.assertEqual([len(out[0]) for out in prediction.outputs], [1, 1, 1])
        for truth, output in zip([1.3, 0.4, 1.7], prediction.outputs):
            self.assertAlmostEqual(output[0][0], truth, delta=0.15)

    def test_stream_outputs_equal_predict_on_every_prefix(self) -> None:
        # A last-step head: after step k the stream's output is the model's answer for the
        # sequence cut after step k.
        sequence = adding_sequence([0.3, 0.8, 0.1, 0.5, 0.9, 0.2, 0.6, 0.4, 0.7, 0.0], (1, 6))
        prefixes = [sequence[:k + 1] for k in range(len(sequence))]
        expected = [out[0] for out in self.client.predict(self.model(), prefixes).outputs]

        events = list(self.client.stream(self.model(), sequence))
        self.assertEqual(events[0], Opened(MODEL, 1, input_size=2, output_size=1, steps_taken=0))
        steps = events[1:]
        self.assertTrue(all(isinstance(event, StepResult) for event in steps), events)
        self.assertEqual([event.index for event in steps], list(range(len(sequence))))
        self.assertLess(max_difference([event.values for event in steps], expected), TOLERANCE)

    def test_stream_resumed_from_a_snapshot_continues_where_it_stopped(self) -> None:
        sequence = adding_sequence([0.4, 0.2, 0.9, 0.1, 0.6, 0.3, 0.8, 0.5, 0.7, 0.2], (3, 8))
        whole = [e.values for e in self.client.stream(self.model(), sequence)
                 if isinstance(e, StepResult)]

        first = list(self.client.stream(self.model(), sequence[:4], snapshot=True))
        self.assertIsInstance(first[-1], Snapshot)
        self.assertGreater(len(first[-1].data), 0)
        resumed = list(self.client.stream(self.model(), sequence[4:], resume_from=first[-1].data))
        self.assertIsInstance(resumed[0], Opened)
        self.assertEqual(resumed[0].steps_taken, 4)
        self.assertEqual([e.index for e in resumed[1:]], list(range(4, 10)))
        self.assertLess(max_difference([e.values for e in resumed[1:]], whole[4:]), TOLERANCE)

    def test_unknown_model_is_not_found(self) -> None:
        with self.assertRaises(grpc.RpcError) as predict_error:
            self.client.predict("no-such-model", [[[0.0, 1.0]]])
        self.assertEqual(predict_error.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-model", predict_error.exception.details())
        with self.assertRaises(grpc.RpcError) as stream_error:
            list(self.client.stream("no-such-model", [[0.0, 1.0]]))
        self.assertEqual(stream_error.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_malformed_predict_input_is_invalid_argument(self) -> None:
        with self.assertRaises(grpc.RpcError) as error:
            self.client.predict(self.model(), [[[0.1, 0.0, 0.5]]])  # 3 inputs, the model takes 2
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # ---- artifacts

    def test_crc32c_matches_known_vectors(self) -> None:
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(crc32c(b""), 0)
        self.assertEqual(crc32c(bytes(32)), 0x8A9136AA)  # RFC 3720 B.4
        self.assertEqual(crc32c(b"\xff" * 32), 0x62A8AB43)
        self.assertEqual(crc32c(b"6789", crc32c(b"12345")), 0xE3069283)

    def test_exported_artifact_decodes_and_reimports_with_equal_predictions(self) -> None:
        version, data = self.client.export_artifact(self.model())
        self.assertEqual(version, 1)
        artifact = decode_artifact(data)  # the server's CRC-32C agrees with ours
        self.assertEqual(artifact.spec.cell, model_pb2.CELL_TYPE_LSTM)
        self.assertEqual([t.name for t in artifact.tensors],
                         ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                          "head.weight", "head.bias"])
        self.assertEqual(list(artifact.tensors[0].shape), [64, 2])  # 4 gates x 16, 2 inputs

        info = self.client.import_artifact("adder-copy", data)
        self.assertEqual((info.name, info.version), ("adder-copy", 1))
        sequences = [adding_sequence([0.1 * t for t in range(8)], (2, 5))]
        original = self.client.predict(self.model(), sequences).outputs[0]
        copy = self.client.predict("adder-copy", sequences).outputs[0]
        self.assertEqual(copy, original)

    def test_damaged_artifact_is_refused_by_client_and_server(self) -> None:
        _, data = self.client.export_artifact(self.model())
        damaged = data[:-1] + bytes([data[-1] ^ 0x01])  # the last byte lies in the checksummed part
        with self.assertRaisesRegex(ArtifactError, "CRC-32C mismatch"):
            decode_artifact(damaged)
        with self.assertRaises(grpc.RpcError) as error:
            self.client.import_artifact("adder-damaged", damaged)
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("CRC-32C mismatch", error.exception.details())

    # ---- PyTorch import

    @unittest.skipIf(torch is None, "PyTorch is not installed (python3-torch)")
    def test_imported_torch_lstm_predicts_and_streams_like_torch(self) -> None:
        from recurrent_client.torch_import import artifact_from_torch, torch_forward

        torch.manual_seed(0)
        lstm = torch.nn.LSTM(input_size=3, hidden_size=8, num_layers=2, batch_first=True)
        head = torch.nn.Linear(8, 2)
        info = self.client.import_artifact("torch-lstm", artifact_from_torch(lstm, head))
        self.assertEqual(info.spec.cell, model_pb2.CELL_TYPE_LSTM)
        self.assertEqual((info.spec.num_layers, info.spec.hidden_size), (2, 8))

        rng = random.Random(3)
        sequences = [[[rng.uniform(-1, 1) for _ in range(3)] for _ in range(steps)]
                     for steps in (5, 12)]
        served = self.client.predict("torch-lstm", sequences).outputs
        expected = torch_forward(lstm, head, sequences)
        self.assertEqual([len(out) for out in served], [5, 12])  # per-step head: a row per step
        for served_one, expected_one in zip(served, expected):
            self.assertLess(max_difference(served_one, expected_one), TOLERANCE)

        # Per-step head: the stream's output after step k is Predict's row k.
        streamed = [e.values for e in self.client.stream("torch-lstm", sequences[1])
                    if isinstance(e, StepResult)]
        self.assertLess(max_difference(streamed, served[1]), TOLERANCE)

        # The server keeps the weights exactly: its export holds the very floats PyTorch has.
        exported = decode_artifact(self.client.export_artifact("torch-lstm")[1])
        tensors = {t.name: list(t.values) for t in exported.tensors}
        self.assertEqual(tensors["weight_hh_l1"], lstm.weight_hh_l1.detach().view(-1).tolist())
        self.assertEqual(tensors["head.bias"], head.bias.detach().tolist())

    @unittest.skipIf(torch is None, "PyTorch is not installed (python3-torch)")
    def test_imported_bidirectional_torch_gru_with_last_step_head_predicts_like_torch(self) -> None:
        from recurrent_client.torch_import import artifact_from_torch, torch_forward

        torch.manual_seed(1)
        gru = torch.nn.GRU(input_size=2, hidden_size=6, num_layers=2, bidirectional=True)
        head = torch.nn.Linear(12, 3)
        self.client.import_artifact(
            "torch-gru", artifact_from_torch(gru, head, head_mode="last_step"))
        rng = random.Random(4)
        sequences = [[[rng.uniform(-1, 1) for _ in range(2)] for _ in range(steps)]
                     for steps in (1, 7)]
        served = self.client.predict("torch-gru", sequences).outputs
        expected = torch_forward(gru, head, sequences, head_mode="last_step")
        self.assertEqual([len(out) for out in served], [1, 1])
        for served_one, expected_one in zip(served, expected):
            self.assertLess(max_difference(served_one, expected_one), TOLERANCE)

    # ---- the example script

    def test_example_script_runs_to_completion(self) -> None:
        command = [sys.executable, os.path.join(CLIENT_DIR, "example.py"), "--server",
                   self.server.target, "--stubs", STUBS_DIR, "--model", "example-adder"]
        if torch is None:
            command.append("--skip-torch")
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0,
                         f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        self.assertIn("SUCCEEDED -> example-adder v1", result.stdout)
        self.assertIn("step 9:", result.stdout)
        if torch is not None:
            self.assertIn("largest |server - torch| difference", result.stdout)


class SecureClientTest(unittest.TestCase):
    """TLS with a client certificate (mutual TLS) and a bearer token, with certificates made now
    by openssl; the server refuses the client without them."""

    def test_mutual_tls_and_token(self) -> None:
        if not os.access(RECURRENTD_PATH, os.X_OK):
            self.skipTest("no recurrentd")
        work = tempfile.mkdtemp(prefix="recurrent-py-tls-")
        try:
            script = (
                "set -e; openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                "-days 1 -subj /CN=ca; for who in server client; do openssl req -newkey rsa:2048 "
                "-nodes -keyout $who.key -out $who.csr -subj /CN=$who; done; "
                "printf 'subjectAltName=IP:127.0.0.1\\n' > ext; "
                "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                "-out server.pem -days 1 -extfile ext; "
                "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                "-out client.pem -days 1")
            subprocess.run(["bash", "-c", script], cwd=work, check=True, capture_output=True)
            with open(os.path.join(work, "tokens"), "w") as f:
                f.write("admin admin-token-0123456789abcdef\n")
            p = lambda name: os.path.join(work, name)  # noqa: E731
            server = Server(p("data"), p("log"), (
                f"--tls_cert_file={p('server.pem')}", f"--tls_key_file={p('server.key')}",
                f"--tls_client_ca_file={p('ca.pem')}", f"--auth_tokens_file={p('tokens')}"))
            try:
                secure = dict(tls_ca_file=p("ca.pem"), tls_cert_file=p("client.pem"),
                              tls_key_file=p("client.key"))
                deadline = time.monotonic() + 30
                while True:
                    with Client.connect(server.target, token="admin-token-0123456789abcdef",
                                        **secure) as client:
                        try:
                            self.assertEqual(list(client.list_models(timeout=2.0)), [])
                            break
                        except grpc.RpcError:
                            if time.monotonic() > deadline:
                                raise
                    time.sleep(0.1)
                with Client.connect(server.target, **secure) as client:  # no token
                    with self.assertRaises(grpc.RpcError) as caught:
                        client.list_models(timeout=5.0)
                    self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
                with Client.connect(server.target, token="admin-token-0123456789abcdef",
                                    tls_ca_file=p("ca.pem")) as client:  # no client certificate
                    with self.assertRaises(grpc.RpcError) as caught:
                        client.list_models(timeout=5.0)
                    self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            finally:
                self.assertEqual(server.stop(), 0)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
