#!/usr/bin/python3
"""Offline checks of the Kubernetes manifests in deploy/k8s.

No API server is needed. The manifests are parsed and cross-checked (selectors, ports, probes,
volumes, security settings, image, shutdown timing), every flag they pass is checked against the
real recurrentd (`--helpfull`), and each Deployment's command line (image entrypoint + the
ConfigMap's flags file + container args) is started for real on loopback: it must answer the
gRPC health check SERVING, refuse the other role's RPCs, report NOT_SERVING while draining after
SIGTERM, and exit 0 within terminationGracePeriodSeconds. yamllint runs on every file, and
`kubectl kustomize` renders the kustomization (and the structural checks run on its output)
when kubectl is installed.

Environment (set by tests/deploy/CMakeLists.txt): RECURRENT_SOURCE_DIR (repository root),
RECURRENTD_PATH (the built server).
"""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

import yaml

SOURCE_DIR = Path(os.environ.get("RECURRENT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
K8S_DIR = SOURCE_DIR / "deploy" / "k8s"
RECURRENTD = os.environ.get("RECURRENTD_PATH", str(SOURCE_DIR / "build" / "bin" / "recurrentd"))

# The image's ENTRYPOINT as the Dockerfile is specified to have it; when the Dockerfile exists
# and has an exec-form ENTRYPOINT, that one is used instead (and checked).
DEFAULT_ENTRYPOINT = ["/usr/local/bin/recurrentd", "--listen_address=0.0.0.0",
                      "--metrics_address=0.0.0.0", "--data_dir=/data"]
IMAGE_UID = 10001  # the image's non-root user and group
FLAGS_CONFIGMAP = "recurrentd-flags"
NAMESPACE = "recurrent"
COMMON_LABELS = {"app.kubernetes.io/name": "recurrent", "app.kubernetes.io/part-of": "recurrent"}
EXAMPLE_SUFFIX = ".yaml.example"

# Minimal required fields per kind, as dotted paths.
REQUIRED_FIELDS = {
    "Namespace": [],
    "ConfigMap": ["data"],
    "PersistentVolumeClaim": ["spec.accessModes", "spec.resources.requests.storage"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
    "Service": ["spec.selector", "spec.ports"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef.kind", "spec.scaleTargetRef.name",
                                "spec.maxReplicas", "spec.metrics"],
}
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1", "Service": "v1",
    "Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
}


# ---------------------------------------------------------------------------------------------
# Loading


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def kustomization():
    docs = load_yaml_docs(K8S_DIR / "kustomization.yaml")
    assert len(docs) == 1, "kustomization.yaml must hold one document"
    return docs[0]


def raw_objects():
    """Every object of the files listed in kustomization.yaml's resources, in order."""
    objects = []
    for resource in kustomization().get("resources", []):
        objects.extend(load_yaml_docs(K8S_DIR / resource))
    return objects


def get_path(obj, dotted):
    value = obj
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def find(objects, kind, name):
    for o in objects:
        if o.get("kind") == kind and get_path(o, "metadata.name") == name:
            return o
    return None


def name_of(obj):
    return f"{obj.get('kind')}/{get_path(obj, 'metadata.name')}"


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def only_container(deployment):
    containers = get_path(deployment, "spec.template.spec.containers") or []
    assert len(containers) == 1, f"{name_of(deployment)}: expected one container"
    return containers[0]


# ---------------------------------------------------------------------------------------------
# recurrentd's flags

_HELPFULL = None


def helpfull_flags():
    """{flag name: default as printed} from `recurrentd --helpfull`."""
    global _HELPFULL
    if _HELPFULL is None:
        result = subprocess.run([RECURRENTD, "--helpfull"], capture_output=True, text=True,
                                timeout=30, check=False)
        text = result.stdout + result.stderr
        flags = {}
        # "    --name (help text that may wrap over lines); default: value;"
        for match in re.finditer(r"^\s+--([A-Za-z_][A-Za-z0-9_]*) \((.*?)\);\s+default: (.*?);$",
                                 text, re.MULTILINE | re.DOTALL):
            flags[match.group(1)] = match.group(3).strip().strip('"')
        assert "port" in flags and "role" in flags and "flagfile" in flags, (
            f"could not parse `{RECURRENTD} --helpfull`:\n{text[:2000]}")
        _HELPFULL = flags
    return _HELPFULL


def parse_flag(arg):
    """'--name=value' -> (name, value); '--name' -> (name, None)."""
    assert arg.startswith("--"), f"not a flag: {arg!r}"
    name, sep, value = arg[2:].partition("=")
    return name, (value if sep else None)


def flags_file_lines(text):
    """The flag lines of an absl flags file (blank lines and # comments skipped)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


def flags_file(objects):
    """(mount key, text) of the ConfigMap's flags file."""
    configmap = find(objects, "ConfigMap", FLAGS_CONFIGMAP)
    assert configmap is not None, f"no ConfigMap {FLAGS_CONFIGMAP}"
    data = configmap.get("data") or {}
    assert "recurrentd.flags" in data, f"ConfigMap {FLAGS_CONFIGMAP} lacks recurrentd.flags"
    return data["recurrentd.flags"]


def dockerfile_entrypoint():
    """The Dockerfile's exec-form ENTRYPOINT, or DEFAULT_ENTRYPOINT when there is none yet."""
    dockerfile = SOURCE_DIR / "Dockerfile"
    if not dockerfile.exists():
        return DEFAULT_ENTRYPOINT, False
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    matches = re.findall(r"^\s*ENTRYPOINT\s+(\[.*\])\s*$", text, re.MULTILINE)
    if not matches:
        return DEFAULT_ENTRYPOINT, False
    return json.loads(matches[-1]), True  # the last ENTRYPOINT (of the final stage) counts


def flagfile_paths(deployment, objects):
    """{in-container path: ConfigMap key text} for every ConfigMap key the pod mounts."""
    pod = get_path(deployment, "spec.template.spec")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    paths = {}
    for mount in only_container(deployment).get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "configMap" not in volume:
            continue
        configmap = find(objects, "ConfigMap", volume["configMap"]["name"])
        for key, text in ((configmap or {}).get("data") or {}).items():
            paths[f"{mount['mountPath'].rstrip('/')}/{key}"] = text
    return paths


def effective_args(deployment, objects):
    """The server's argv after the binary: entrypoint flags, then container args with each
    --flagfile expanded in place (absl applies flags in order; a later one wins)."""
    entrypoint, _ = dockerfile_entrypoint()
    container = only_container(deployment)
    command = container.get("command")
    argv = list(command[1:]) if command else list(entrypoint[1:])
    argv += list(container.get("args", []))
    files = flagfile_paths(deployment, objects)
    expanded = []
    for arg in argv:
        name, value = parse_flag(arg)
        if name == "flagfile":
            assert value in files, (
                f"{name_of(deployment)}: --flagfile={value} is not a mounted ConfigMap key "
                f"(mounted: {sorted(files)})")
            expanded += flags_file_lines(files[value])
        else:
            expanded.append(arg)
    return expanded


def effective_flag(deployment, objects, flag):
    value = helpfull_flags()[flag]
    for arg in effective_args(deployment, objects):
        name, given = parse_flag(arg)
        if name == flag:
            value = given
    return value


# ---------------------------------------------------------------------------------------------
# Structural checks: each returns a list of problems, and runs on the raw manifests and on
# kustomize's rendering alike.


def check_required_fields(objects):
    problems = []
    for o in objects:
        kind = o.get("kind")
        if not o.get("apiVersion") or not kind or not get_path(o, "metadata.name"):
            problems.append(f"object without apiVersion/kind/metadata.name: {str(o)[:200]}")
            continue
        if kind not in REQUIRED_FIELDS:
            problems.append(f"{name_of(o)}: kind not expected here")
            continue
        if o["apiVersion"] != API_VERSIONS[kind]:
            problems.append(
                f"{name_of(o)}: apiVersion {o['apiVersion']}, want {API_VERSIONS[kind]}")
        for field in REQUIRED_FIELDS[kind]:
            if get_path(o, field) in (None, "", [], {}):
                problems.append(f"{name_of(o)}: missing {field}")
    names = [(o.get("kind"), get_path(o, "metadata.name")) for o in objects]
    for key in set(names):
        if names.count(key) > 1:
            problems.append(f"{key[0]}/{key[1]} defined {names.count(key)} times")
    return problems


def check_deployments(objects):
    problems = []
    for d in by_kind(objects, "Deployment"):
        selector = get_path(d, "spec.selector.matchLabels") or {}
        labels = get_path(d, "spec.template.metadata.labels") or {}
        if not selects(selector, labels):
            problems.append(f"{name_of(d)}: selector {selector} does not match template {labels}")
        for other in by_kind(objects, "Deployment"):
            if other is not d and selects(selector,
                                          get_path(other, "spec.template.metadata.labels") or {}):
                problems.append(f"{name_of(d)}: selector also matches {name_of(other)}'s pods")
        pod = get_path(d, "spec.template.spec")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod.get("containers", []):
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{name_of(d)}: volumeMount {mount['name']} has no volume")
        for v in volumes.values():
            claim = get_path(v, "persistentVolumeClaim.claimName")
            if claim and find(objects, "PersistentVolumeClaim", claim) is None:
                problems.append(f"{name_of(d)}: no PersistentVolumeClaim {claim}")
            configmap = get_path(v, "configMap.name")
            if configmap and find(objects, "ConfigMap", configmap) is None:
                problems.append(f"{name_of(d)}: no ConfigMap {configmap}")
    return problems


def container_ports(deployment):
    return {p.get("name"): p["containerPort"] for p in only_container(deployment).get("ports", [])}


def check_services(objects):
    problems = []
    deployments = by_kind(objects, "Deployment")
    for s in by_kind(objects, "Service"):
        selector = get_path(s, "spec.selector") or {}
        targets = [d for d in deployments
                   if selects(selector, get_path(d, "spec.template.metadata.labels") or {})]
        if not targets:
            problems.append(f"{name_of(s)}: selector {selector} matches no Deployment's pods")
        for port in get_path(s, "spec.ports") or []:
            target = port.get("targetPort", port.get("port"))
            for d in targets:
                ports = container_ports(d)
                if target not in (ports if isinstance(target, str) else ports.values()):
                    problems.append(f"{name_of(s)}: targetPort {target} is not a container port "
                                    f"of {name_of(d)} ({ports})")
    return problems


def check_pdbs_and_hpas(objects):
    problems = []
    deployments = by_kind(objects, "Deployment")
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        selector = get_path(pdb, "spec.selector.matchLabels")
        targets = [d for d in deployments
                   if selects(selector, get_path(d, "spec.template.metadata.labels") or {})]
        if not targets:
            problems.append(f"{name_of(pdb)}: selects no Deployment's pods")
        for d in targets:
            min_available = get_path(pdb, "spec.minAvailable")
            if isinstance(min_available, int) and min_available >= get_path(d, "spec.replicas"):
                problems.append(f"{name_of(pdb)}: minAvailable {min_available} would block every "
                                f"eviction of {name_of(d)}")
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        ref = get_path(hpa, "spec.scaleTargetRef")
        target = find(objects, ref.get("kind"), ref.get("name"))
        if target is None or ref.get("apiVersion") != target.get("apiVersion"):
            problems.append(f"{name_of(hpa)}: scaleTargetRef {ref} is not an object here")
            continue
        if not 1 <= get_path(hpa, "spec.minReplicas") <= get_path(hpa, "spec.maxReplicas"):
            problems.append(f"{name_of(hpa)}: minReplicas/maxReplicas out of order")
        for metric in get_path(hpa, "spec.metrics"):
            if get_path(metric, "resource.name") == "cpu" and not get_path(
                    only_container(target), "resources.requests.cpu"):
                problems.append(f"{name_of(hpa)}: CPU utilization needs a CPU request")
    return problems


def check_labels_and_namespace(objects, rendered):
    """Every object carries the common labels (and, rendered, the namespace)."""
    problems = []
    for o in objects:
        labels = get_path(o, "metadata.labels") or {}
        if not selects(COMMON_LABELS, labels):
            problems.append(f"{name_of(o)}: lacks the common labels {COMMON_LABELS}")
        if o["kind"] == "Deployment" and not selects(
                COMMON_LABELS, get_path(o, "spec.template.metadata.labels") or {}):
            problems.append(f"{name_of(o)}: pod template lacks the common labels")
        if rendered and o["kind"] != "Namespace" and get_path(o, "metadata.namespace") != NAMESPACE:
            problems.append(f"{name_of(o)}: namespace is not {NAMESPACE}")
    return problems


STRUCTURAL_CHECKS = [check_required_fields, check_deployments, check_services,
                     check_pdbs_and_hpas]


# ---------------------------------------------------------------------------------------------
# The server, started as a Deployment would start it


class Server:
    """recurrentd run with a Deployment's effective flags, on loopback and temporary paths."""

    def __init__(self, deployment, objects, data_dir, flags_dir):
        self.name = name_of(deployment)
        entrypoint, _ = dockerfile_entrypoint()
        container = only_container(deployment)
        argv = list(container.get("command", entrypoint)[1:]) + list(container.get("args", []))
        files = flagfile_paths(deployment, objects)
        args = []
        for arg in argv:
            name, value = parse_flag(arg)
            if name == "flagfile" and value in files:
                # The ConfigMap key, written out as the kubelet would mount it.
                local = Path(flags_dir) / value.strip("/").replace("/", "_")
                local.write_text(files[value], encoding="utf-8")
                arg = f"--flagfile={local}"
            args.append(arg)
        # Loopback, any free port, no metrics endpoint, a temporary data directory: last wins.
        args += ["--listen_address=127.0.0.1", "--port=0", "--metrics_port=0",
                 f"--data_dir={data_dir}"]
        self.argv = [RECURRENTD] + args
        self.log = []
        self.port = None
        self._listening = threading.Event()
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.log.append(line)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                self._listening.set()

    def wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._listening.wait(0.1):
                return True
            if self.process.poll() is not None:
                self._reader.join(2)
                return False
        return False

    def output(self):
        return "".join(self.log)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
        self.process.stderr.close()


def grpc_call(port, method, request=b"", timeout=5.0):
    """A raw unary call; returns (status code name, response bytes)."""
    import grpc  # Debian's python3-grpcio
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out
        try:
            return "OK", call(request, timeout=timeout)
        except grpc.RpcError as error:
            return error.code().name, b""


HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# grpc.health.v1.HealthCheckResponse{status}: field 1, varint. Service "" is an empty request,
# exactly what the kubelet's native gRPC probe sends.
HEALTH_SERVING = b"\x08\x01"
HEALTH_NOT_SERVING = b"\x08\x02"


def have_grpc():
    """Debian's python3-grpcio; without it the server check only sees the listen and exit."""
    return importlib.util.find_spec("grpc") is not None


# ---------------------------------------------------------------------------------------------


class K8sManifestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.objects = raw_objects()
        cls.serving = find(cls.objects, "Deployment", "recurrent-serving")
        cls.trainer = find(cls.objects, "Deployment", "recurrent-trainer")
        cls.deployments = by_kind(cls.objects, "Deployment")

    def assertNoProblems(self, problems):
        self.assertEqual([], problems, "\n" + "\n".join(problems))

    # --- files ---

    def test_every_file_parses_and_every_manifest_is_in_the_kustomization(self):
        resources = kustomization().get("resources", [])
        self.assertTrue(resources)
        for resource in resources:
            self.assertTrue((K8S_DIR / resource).is_file(), f"resource {resource} missing")
        files = sorted(p.name for p in K8S_DIR.iterdir() if p.is_file())
        for name in files:
            if name.endswith((".yaml", ".yml", EXAMPLE_SUFFIX)):
                self.assertTrue(load_yaml_docs(K8S_DIR / name), f"{name} holds no document")
            if name.endswith((".yaml", ".yml")) and name != "kustomization.yaml":
                self.assertIn(name, resources, f"{name} is not listed in kustomization.yaml")
        self.assertEqual(NAMESPACE, kustomization().get("namespace"))
        self.assertTrue(selects(COMMON_LABELS, kustomization()["labels"][0]["pairs"]))

    def test_the_expected_objects_exist(self):
        for kind, name in [("Namespace", NAMESPACE), ("ConfigMap", FLAGS_CONFIGMAP),
                           ("PersistentVolumeClaim", "recurrent-data"),
                           ("Deployment", "recurrent-serving"), ("Deployment", "recurrent-trainer"),
                           ("Service", "recurrent"), ("Service", "recurrent-trainer"),
                           ("Service", "recurrent-metrics"),
                           ("PodDisruptionBudget", "recurrent-serving"),
                           ("HorizontalPodAutoscaler", "recurrent-serving")]:
            self.assertIsNotNone(find(self.objects, kind, name), f"{kind}/{name} missing")

    def test_structure_selectors_and_references_are_consistent(self):
        for check in STRUCTURAL_CHECKS:
            self.assertNoProblems(check(self.objects))
        self.assertNoProblems(check_labels_and_namespace(self.objects, rendered=False))

    # --- roles, replicas, strategies, services ---

    def test_serving_scales_out_and_the_trainer_is_single_and_recreated(self):
        def component(deployment):
            return get_path(deployment, "spec.template.metadata.labels").get(
                "app.kubernetes.io/component")
        self.assertEqual("serving", component(self.serving))
        self.assertEqual("trainer", component(self.trainer))
        self.assertEqual("serving", effective_flag(self.serving, self.objects, "role"))
        self.assertEqual("training", effective_flag(self.trainer, self.objects, "role"))
        self.assertEqual(2, get_path(self.serving, "spec.replicas"))
        self.assertEqual("RollingUpdate", get_path(self.serving, "spec.strategy.type"))
        self.assertEqual(0, get_path(self.serving, "spec.strategy.rollingUpdate.maxUnavailable"))
        self.assertEqual(1, get_path(self.trainer, "spec.replicas"))
        self.assertEqual("Recreate", get_path(self.trainer, "spec.strategy.type"))

    def test_services_route_each_role_to_its_pods(self):
        def targets(service):
            selector = get_path(find(self.objects, "Service", service), "spec.selector")
            return {get_path(d, "metadata.name") for d in self.deployments
                    if selects(selector, get_path(d, "spec.template.metadata.labels"))}
        self.assertEqual({"recurrent-serving"}, targets("recurrent"))
        self.assertEqual({"recurrent-trainer"}, targets("recurrent-trainer"))
        self.assertEqual({"recurrent-serving", "recurrent-trainer"}, targets("recurrent-metrics"))
        for service in ("recurrent", "recurrent-trainer"):
            ports = get_path(find(self.objects, "Service", service), "spec.ports")
            self.assertEqual([("grpc", 50051)], [(p["name"], p["port"]) for p in ports])
        metrics = find(self.objects, "Service", "recurrent-metrics")
        self.assertEqual("None", get_path(metrics, "spec.clusterIP"))
        self.assertEqual("metrics", get_path(metrics, "metadata.labels")[
            "app.kubernetes.io/component"])
        self.assertEqual([("metrics", 9464)],
                         [(p["name"], p["port"]) for p in get_path(metrics, "spec.ports")])

    def test_pdb_hpa_and_pvc(self):
        pdb = find(self.objects, "PodDisruptionBudget", "recurrent-serving")
        self.assertEqual(1, get_path(pdb, "spec.minAvailable"))
        hpa = find(self.objects, "HorizontalPodAutoscaler", "recurrent-serving")
        self.assertEqual("recurrent-serving", get_path(hpa, "spec.scaleTargetRef.name"))
        self.assertEqual((2, 10), (get_path(hpa, "spec.minReplicas"),
                                   get_path(hpa, "spec.maxReplicas")))
        self.assertEqual([70], [get_path(m, "resource.target.averageUtilization")
                                for m in get_path(hpa, "spec.metrics")])
        self.assertIsNotNone(get_path(hpa, "spec.behavior.scaleDown.stabilizationWindowSeconds"))
        pvc = find(self.objects, "PersistentVolumeClaim", "recurrent-data")
        self.assertEqual(["ReadWriteMany"], get_path(pvc, "spec.accessModes"))

    def test_custom_metrics_example_targets_active_streams(self):
        docs = load_yaml_docs(K8S_DIR / f"hpa-custom-metrics{EXAMPLE_SUFFIX}")
        hpa = find(docs, "HorizontalPodAutoscaler", "recurrent-serving")
        self.assertIsNotNone(hpa)
        self.assertNoProblems(check_pdbs_and_hpas(
            [hpa] + by_kind(self.objects, "Deployment")))
        pods = [m for m in get_path(hpa, "spec.metrics") if m.get("type") == "Pods"]
        self.assertEqual(["recurrent_active_streams"],
                         [get_path(m, "pods.metric.name") for m in pods])
        self.assertEqual("AverageValue", get_path(pods[0], "pods.target.type"))
        adapter = "\n".join(str(d.get("data")) for d in by_kind(docs, "ConfigMap"))
        self.assertIn("recurrent_active_streams", adapter)
        self.assertIn("recurrent_job_queue_depth", adapter)

    # --- ports and probes ---

    def test_probes_and_ports_match_the_servers_flags(self):
        for d in self.deployments:
            ports = container_ports(d)
            grpc_port = int(effective_flag(d, self.objects, "port"))
            metrics_port = int(effective_flag(d, self.objects, "metrics_port"))
            self.assertEqual(50051, grpc_port)
            self.assertEqual(grpc_port, ports.get("grpc"), f"{name_of(d)}: grpc containerPort")
            self.assertEqual(metrics_port, ports.get("metrics"),
                             f"{name_of(d)}: metrics containerPort")
            # The server must listen beyond loopback for the kubelet's probes and the Services.
            self.assertEqual("0.0.0.0", effective_flag(d, self.objects, "listen_address"))
            self.assertEqual("0.0.0.0", effective_flag(d, self.objects, "metrics_address"))
            container = only_container(d)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = container.get(probe)
                self.assertIsNotNone(spec, f"{name_of(d)}: no {probe}")
                port = get_path(spec, "grpc.port")
                self.assertIn(port, ports.values(), f"{name_of(d)}: {probe} port {port} is "
                              f"not a containerPort {ports}")
                self.assertEqual(grpc_port, port, f"{name_of(d)}: {probe} is not on --port")
                self.assertIn(get_path(spec, "grpc.service"), (None, ""),
                              f"{name_of(d)}: {probe}: the server answers for service \"\"")
                for field in ("periodSeconds", "failureThreshold", "timeoutSeconds"):
                    self.assertGreater(spec.get(field, 0), 0, f"{name_of(d)}: {probe}.{field}")
            # Readiness must notice NOT_SERVING within the drain, before calls are refused.
            readiness = container["readinessProbe"]
            drain = int(effective_flag(d, self.objects, "drain_seconds"))
            self.assertLessEqual(readiness["periodSeconds"] * readiness["failureThreshold"],
                                 drain, f"{name_of(d)}: readiness slower than --drain_seconds")
            liveness = container["livenessProbe"]
            self.assertGreaterEqual(liveness["periodSeconds"] * liveness["failureThreshold"],
                                    readiness["periodSeconds"] * readiness["failureThreshold"])

    # --- flags ---

    def test_every_flag_given_is_a_real_recurrentd_flag(self):
        known = helpfull_flags()
        text = flags_file(self.objects)
        for line in flags_file_lines(text):
            self.assertRegex(line, r"^--[a-z_0-9]+=\S+$", f"flags file line {line!r}")
            self.assertTrue(parse_flag(line)[0] in known, f"flags file: unknown flag {line}")
        for d in self.deployments:
            container = only_container(d)
            for arg in container.get("args", []) + container.get("command", [])[1:]:
                self.assertTrue(parse_flag(arg)[0] in known, f"{name_of(d)}: unknown flag {arg}")
            for arg in effective_args(d, self.objects):
                self.assertTrue(parse_flag(arg)[0] in known, f"{name_of(d)}: unknown flag {arg}")

    def test_both_roles_share_one_flags_file(self):
        for d in self.deployments:
            args = only_container(d).get("args", [])
            self.assertEqual(["--flagfile=/etc/recurrentd/recurrentd.flags"],
                             [a for a in args if a.startswith("--flagfile")])
            self.assertIn("/etc/recurrentd/recurrentd.flags", flagfile_paths(d, self.objects))

    def test_image_entrypoint_data_dir_is_the_mounted_volume(self):
        entrypoint, from_dockerfile = dockerfile_entrypoint()
        self.assertEqual("/usr/local/bin/recurrentd", entrypoint[0])
        for arg in entrypoint[1:]:
            self.assertTrue(parse_flag(arg)[0] in helpfull_flags(),
                            f"ENTRYPOINT ({'Dockerfile' if from_dockerfile else 'default'}): {arg}")
        dockerfile = SOURCE_DIR / "Dockerfile"
        if dockerfile.exists():  # a numeric USER uid[:gid] must be the pods' runAsUser/Group
            users = re.findall(r"^\s*USER\s+(\d+)(?::(\d+))?\s*$",
                               dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
            for uid, gid in users[-1:]:
                self.assertEqual(IMAGE_UID, int(uid), "Dockerfile USER")
                self.assertEqual(IMAGE_UID, int(gid or uid), "Dockerfile USER group")
        for d in self.deployments:
            data_dir = effective_flag(d, self.objects, "data_dir")
            mounts = {m["mountPath"]: m["name"] for m in only_container(d)["volumeMounts"]}
            self.assertIn(data_dir, mounts, f"{name_of(d)}: --data_dir {data_dir} not mounted")
            volume = [v for v in get_path(d, "spec.template.spec.volumes")
                      if v["name"] == mounts[data_dir]][0]
            self.assertEqual("recurrent-data", get_path(volume, "persistentVolumeClaim.claimName"))
            self.assertIn("/tmp", mounts)
            tmp = [v for v in get_path(d, "spec.template.spec.volumes")
                   if v["name"] == mounts["/tmp"]][0]
            self.assertIn("emptyDir", tmp)

    # --- image, security, shutdown, resources ---

    def test_image_is_the_same_everywhere_and_retaggable(self):
        images = {only_container(d)["image"] for d in self.deployments}
        self.assertEqual({"recurrent:latest"}, images)
        names = [i["name"] for i in kustomization().get("images", [])]
        self.assertIn("recurrent", names)
        for image in images:
            self.assertIn(image.split("@")[0].rsplit(":", 1)[0], names)

    def test_security_context(self):
        for d in self.deployments:
            pod = get_path(d, "spec.template.spec.securityContext") or {}
            self.assertIs(True, pod.get("runAsNonRoot"), name_of(d))
            self.assertEqual(IMAGE_UID, pod.get("runAsUser"), name_of(d))
            self.assertEqual(IMAGE_UID, pod.get("runAsGroup"), name_of(d))
            self.assertEqual(IMAGE_UID, pod.get("fsGroup"), name_of(d))
            self.assertEqual("RuntimeDefault", get_path(pod, "seccompProfile.type"), name_of(d))
            container = only_container(d).get("securityContext") or {}
            self.assertIs(True, container.get("readOnlyRootFilesystem"), name_of(d))
            self.assertIs(False, container.get("allowPrivilegeEscalation"), name_of(d))
            self.assertEqual(["ALL"], get_path(container, "capabilities.drop"), name_of(d))
            self.assertNotIn("privileged", container)
            self.assertNotIn("add", container.get("capabilities", {}))

    def test_termination_grace_outlasts_drain_plus_shutdown_grace(self):
        for d in self.deployments:
            drain = int(effective_flag(d, self.objects, "drain_seconds"))
            grace = int(effective_flag(d, self.objects, "shutdown_grace_seconds"))
            self.assertGreater(drain, 0, f"{name_of(d)}: no drain behind a Service")
            period = get_path(d, "spec.template.spec.terminationGracePeriodSeconds")
            self.assertIsNotNone(period, f"{name_of(d)}: terminationGracePeriodSeconds")
            self.assertGreater(period, drain + grace, name_of(d))

    def test_resources_and_openmp_settings(self):
        def cpu(quantity):
            text = str(quantity)
            return float(text[:-1]) / 1000 if text.endswith("m") else float(text)

        def memory(quantity):
            units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6,
                     "G": 1e9}
            match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
            return float(match.group(1)) * units.get(match.group(2), 1)

        for d in self.deployments:
            container = only_container(d)
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    self.assertIn(resource, resources.get(kind, {}),
                                  f"{name_of(d)}: {kind}.{resource}")
            self.assertLessEqual(cpu(resources["requests"]["cpu"]),
                                 cpu(resources["limits"]["cpu"]))
            self.assertLessEqual(memory(resources["requests"]["memory"]),
                                 memory(resources["limits"]["memory"]))
            env = {e["name"]: e for e in container.get("env", [])}
            self.assertEqual("PASSIVE", env.get("OMP_WAIT_POLICY", {}).get("value"), name_of(d))
            # OpenMP threads must fit the CPU limit, or they are throttled.
            limit = cpu(resources["limits"]["cpu"])
            role = effective_flag(d, self.objects, "role")
            if role in ("training", "all"):
                threads = (int(effective_flag(d, self.objects, "training_workers")) *
                           int(effective_flag(d, self.objects, "training_threads")))
                self.assertLessEqual(threads, limit, f"{name_of(d)}: training threads > CPUs")
            if role in ("serving", "all"):
                threads = int(effective_flag(d, self.objects, "inference_threads"))
                self.assertLessEqual(threads, limit, f"{name_of(d)}: inference threads > CPUs")
            if role == "serving":
                cache = int(effective_flag(d, self.objects, "model_cache_bytes"))
                self.assertLess(cache, memory(resources["limits"]["memory"]),
                                f"{name_of(d)}: --model_cache_bytes >= memory limit")

    # --- tools ---

    def test_yamllint(self):
        yamllint = shutil.which("yamllint")
        if yamllint is None:
            self.skipTest("yamllint is not installed")
        repo_config = SOURCE_DIR / ".yamllint"
        if repo_config.exists():  # the repository's rules (docs/monitoring.md: `yamllint -s .`)
            config = ["-c", str(repo_config)]
        else:  # yamllint's defaults, with room for commented Kubernetes specs
            config = ["-d", "{extends: default, rules: {line-length: {max: 100}, "
                            "document-start: disable}}"]
        files = sorted(str(p) for p in K8S_DIR.iterdir()
                       if p.name.endswith((".yaml", ".yml", EXAMPLE_SUFFIX)))
        result = subprocess.run([yamllint, "--strict", "-f", "parsable"] + config + files,
                                capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)

    def test_kubectl_kustomize_renders_consistent_objects(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed")
        result = subprocess.run([kubectl, "kustomize", str(K8S_DIR)], capture_output=True,
                                text=True, timeout=120, check=False)
        self.assertEqual(0, result.returncode, result.stderr)
        rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
        self.assertEqual(sorted(name_of(o) for o in self.objects),
                         sorted(name_of(o) for o in rendered))
        for check in STRUCTURAL_CHECKS:
            self.assertNoProblems(check(rendered))
        self.assertNoProblems(check_labels_and_namespace(rendered, rendered=True))
        entry = [i for i in kustomization()["images"] if i["name"] == "recurrent"][0]
        want = f"{entry.get('newName', 'recurrent')}:{entry.get('newTag', 'latest')}"
        for d in by_kind(rendered, "Deployment"):
            self.assertEqual(want, only_container(d)["image"])

    # --- the server itself ---

    def test_each_deployment_command_line_starts_serves_its_role_and_drains(self):
        """Both Deployments' flags, on one shared data directory as on the RWX volume."""
        self.assertTrue(os.access(RECURRENTD, os.X_OK), f"no server at {RECURRENTD}")
        with tempfile.TemporaryDirectory(prefix="k8s_test_") as tmp:
            data_dir = Path(tmp) / "data"
            servers = []
            try:
                for d in (self.serving, self.trainer):
                    servers.append(Server(d, self.objects, data_dir, tmp))
                for s in servers:
                    self.assertTrue(s.wait_listening(30),
                                    f"{s.name} did not start: {s.argv}\n{s.output()}")
                serving, trainer = servers
                if have_grpc():
                    for s in servers:
                        self.assertEqual(("OK", HEALTH_SERVING), grpc_call(s.port, HEALTH_CHECK),
                                         s.name)
                    # Each refuses the other role's RPCs (so the --role flags are right).
                    list_jobs = "/recurrent.v1.TrainingService/ListJobs"
                    predict = "/recurrent.v1.InferenceService/Predict"
                    self.assertEqual("FAILED_PRECONDITION", grpc_call(serving.port, list_jobs)[0])
                    self.assertEqual("OK", grpc_call(trainer.port, list_jobs)[0])
                    self.assertEqual("FAILED_PRECONDITION", grpc_call(trainer.port, predict)[0])
                    self.assertNotEqual("FAILED_PRECONDITION",
                                        grpc_call(serving.port, predict)[0])
                started = time.monotonic()
                for s in servers:
                    s.process.send_signal(signal.SIGTERM)
                if have_grpc():
                    time.sleep(0.5)
                    for s in servers:  # what a readiness probe sees while draining
                        self.assertEqual(("OK", HEALTH_NOT_SERVING),
                                         grpc_call(s.port, HEALTH_CHECK), s.name)
                for s, d in zip(servers, (self.serving, self.trainer)):
                    period = get_path(d, "spec.template.spec.terminationGracePeriodSeconds")
                    remaining = period - (time.monotonic() - started)
                    try:
                        code = s.process.wait(max(remaining, 0.1))
                    except subprocess.TimeoutExpired:
                        self.fail(f"{s.name} still running after terminationGracePeriodSeconds "
                                  f"{period}:\n{s.output()}")
                    s._reader.join(5)
                    self.assertEqual(0, code, f"{s.name} exit code\n{s.output()}")
                    self.assertIn("recurrentd: stopped", s.output())
            finally:
                for s in servers:
                    s.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
