#!/usr/bin/python3
"""Checks of the monitoring files: deploy/prometheus, deploy/grafana and deploy/compose.yaml.

Offline: promtool checks the scrape configuration (the compose job, and the commented
Kubernetes job uncommented), the alert rules and their unit tests (alerts_test.yml); yamllint
(strict, with the repository's .yamllint) checks every YAML file under deploy/; the dashboard,
the Grafana provisioning, the compose file and the ServiceMonitor are cross-checked with each
other and with deploy/k8s.

Live: a real recurrentd on free loopback ports gets a little traffic from the CLI (a training
job, Predict, a StepPredict stream, a request for a missing model, a job that fails and a long
job left running), and a real Prometheus scrapes it every second with the repository's scrape
job and alert rules. Every metric that the dashboard or the alerts use must be exposed; every
dashboard query must return series (the key ones numbers); every alert expression must evaluate;
the failed job must fire RecurrentdTrainingJobsFailed and nothing else may fire; after SIGTERM
recurrentd exits 0 and RecurrentdDown goes pending. docs/monitoring.md describes all of it.

Environment (set by tests/deploy/CMakeLists.txt): RECURRENT_SOURCE_DIR (repository root),
RECURRENTD_PATH and RECURRENT_CLI_PATH (the built binaries).
"""
import copy
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

SOURCE_DIR = Path(os.environ.get("RECURRENT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
DEPLOY_DIR = SOURCE_DIR / "deploy"
PROMETHEUS_DIR = DEPLOY_DIR / "prometheus"
GRAFANA_DIR = DEPLOY_DIR / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "recurrent.json"
COMPOSE = DEPLOY_DIR / "compose.yaml"
DOCS = SOURCE_DIR / "docs" / "monitoring.md"
RECURRENTD = os.environ.get("RECURRENTD_PATH", str(SOURCE_DIR / "build" / "bin" / "recurrentd"))
CLI = os.environ.get("RECURRENT_CLI_PATH", str(SOURCE_DIR / "build" / "bin" / "recurrent"))

JOB = "recurrentd"  # the scrape job's name, which the alerts and the dashboard select on
METRICS_PORT = 9464  # recurrentd's default --metrics_port, the container's metrics port
SEVERITIES = {"critical", "warning", "info"}
# Grafana's variables in the dashboard's queries, and what stands in for them against the test's
# Prometheus: every instance, and a rate window that holds a few of its 1 s scrapes.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "${instance}": ".*",
                     "$instance": ".*"}
# Dashboard panels whose queries must return numbers (not only series) once there was traffic.
KEY_PANELS = ["Request rate by RPC", "Latency p50 / p95 / p99 by RPC (unary)", "Active streams",
              "Jobs by state", "Model cache bytes"]

STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
RECURRENT_NAME = re.compile(r"(?<![A-Za-z0-9_:])recurrent_[A-Za-z0-9_:]+")


# ---------------------------------------------------------------------------------------------
# Helpers


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def run(args, timeout=60, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def free_ports(count):
    """`count` distinct free TCP ports on loopback (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(predicate, timeout, what):
    """Calls predicate() until it returns a true value (returned), or raises after timeout s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, ValueError, KeyError) as error:  # not up yet
            last_error = error
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8")


def metric_names(expr):
    """The recurrent_* metric names a PromQL expression uses (string literals left out)."""
    return set(RECURRENT_NAME.findall(STRING_LITERAL.sub('""', expr)))


def family_of(name, types):
    """The exposed family that provides the series `name`, or None.

    A counter or gauge provides its own name; a histogram provides name_bucket, name_sum and
    name_count (not its bare name), a summary name_sum and name_count.
    """
    if name in types:
        return name if types[name] not in ("histogram", "summary") else None
    for suffix, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                          ("_count", ("histogram", "summary"))):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in kinds:
            return base
    return None


def parse_exposition(text):
    """(family -> type, set of sample names with at least one sample) of a /metrics page."""
    types, samples = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return types, samples


def dashboard_panels(dashboard):
    """Every panel that is not a row, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_queries(dashboard):
    """(where, expression) for every panel target and every query variable of the dashboard."""
    queries = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            queries.append((f'panel "{panel["title"]}" {target["refId"]}', target.get("expr", "")))
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            query = variable["query"]
            queries.append((f'variable "{variable["name"]}"',
                            query["query"] if isinstance(query, dict) else query))
    return queries


def alert_rules():
    return [rule for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
            for rule in group["rules"]]


def with_grafana_variables(expr):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def kubernetes_scrape_jobs():
    """The Kubernetes scrape job that prometheus.yml carries commented out, uncommented.

    The convention (stated in prometheus.yml): the lines between "# BEGIN kubernetes" and
    "# END kubernetes" are the job's YAML with one "#" put in front.
    """
    lines = (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8").splitlines()
    begin, end = lines.index("# BEGIN kubernetes"), lines.index("# END kubernetes")
    block = [line[1:] for line in lines[begin + 1:end]]
    assert all(line.startswith("#") for line in lines[begin + 1:end]), "every line commented"
    return yaml.safe_load("\n".join(block))


def kubernetes_pods():
    """(pod name, labels, {port name: port}, phase) of one pod of each Deployment in deploy/k8s.

    Asserts that each one has a container port named "metrics" on 9464; a synthetic pod stands in
    when deploy/k8s has no Deployment.
    """
    pods = []
    for path in sorted((DEPLOY_DIR / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "Deployment":
                template = doc["spec"]["template"]
                ports = {p.get("name", ""): p["containerPort"]
                         for c in template["spec"]["containers"] for p in c.get("ports", [])}
                assert ports.get("metrics") == METRICS_PORT, f"{path.name}: no metrics port"
                pods.append((doc["metadata"]["name"] + "-0", template["metadata"]["labels"], ports,
                             "Running"))
    return pods or [("recurrent-0", {"app.kubernetes.io/name": "recurrent"},
                     {"grpc": 50051, "metrics": METRICS_PORT}, "Running")]


# ---------------------------------------------------------------------------------------------
# Offline checks


class PrometheusFilesTest(unittest.TestCase):
    def promtool(self, *args, cwd=None):
        result = run(["promtool", *args], cwd=cwd)
        self.assertEqual(result.returncode, 0,
                         f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result

    def test_prometheus_config_passes_promtool_check_config(self):
        result = self.promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
        self.assertIn("1 rule files found", result.stdout)

    def test_compose_scrape_job_targets_the_recurrentd_service(self):
        config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        self.assertEqual(list(jobs), [JOB])
        targets = [t for sc in jobs[JOB]["static_configs"] for t in sc["targets"]]
        self.assertEqual(targets, [f"recurrentd:{METRICS_PORT}"])
        self.assertEqual(config["rule_files"], ["alerts.yml"])

    def test_kubernetes_scrape_job_keeps_the_metrics_port_of_every_pod_of_deploy_k8s(self):
        (job,) = kubernetes_scrape_jobs()
        self.assertEqual(job["job_name"], JOB)
        (sd,) = job.pop("kubernetes_sd_configs")
        self.assertEqual(sd["role"], "pod")
        self.assertEqual(sd["selectors"],
                         [{"role": "pod", "label": "app.kubernetes.io/name=recurrent"}])
        # Debian's Prometheus is built without Kubernetes discovery, so the discovery is played
        # by static targets that carry the labels it would attach: one per container port of a
        # pod of each Deployment, plus pods that must be dropped. promtool then runs the job's
        # relabeling on them.
        pods = kubernetes_pods() + [
            ("other-0", {"app.kubernetes.io/name": "other"}, {"metrics": 9464}, "Running"),
            ("recurrent-pending-0", {"app.kubernetes.io/name": "recurrent"}, {"metrics": 9464},
             "Pending")]
        job["static_configs"] = [
            {"targets": [f"10.0.0.{i}:{port}"],
             "labels": {"__meta_kubernetes_namespace": "recurrent",
                        "__meta_kubernetes_pod_name": name,
                        "__meta_kubernetes_pod_phase": phase,
                        "__meta_kubernetes_pod_container_port_name": port_name,
                        **{"__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", k): v
                           for k, v in labels.items()}}}
            for i, (name, labels, ports, phase) in enumerate(pods, start=1)
            for port_name, port in ports.items()]
        config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
        config["scrape_configs"] = [job]
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp)
            path = Path(tmp) / "prometheus.yml"
            path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            self.promtool("check", "config", str(path))
            # promtool waits the whole --timeout (busy) even when static targets are there at once.
            targets = json.loads(self.promtool("check", "service-discovery", "--timeout=1s",
                                               str(path), JOB).stdout)
        kept = sorted((t["labels"]["instance"], t["labels"]["__address__"].split(":")[1],
                       t["labels"].get("component"), t["labels"]["pod"], t["labels"]["namespace"],
                       t["labels"]["job"]) for t in targets if t["labels"])
        expected = sorted((name, str(METRICS_PORT), labels.get("app.kubernetes.io/component"), name,
                           "recurrent", JOB) for name, labels, _, _ in kubernetes_pods())
        self.assertEqual(kept, expected)

    def test_alert_rules_pass_promtool_check_rules(self):
        self.promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))

    def test_alert_unit_tests_pass_promtool_test_rules(self):
        self.promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)

    def test_alert_unit_tests_fire_the_main_alerts_and_check_one_that_must_not(self):
        tests = load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
        checks = [check for test in tests for check in test["alert_rule_test"]]
        fired = {check["alertname"] for check in checks if check.get("exp_alerts")}
        for alert in ["RecurrentdHighErrorRate", "RecurrentdJobQueueSaturated", "RecurrentdDown",
                      "RecurrentdHighLatency", "RecurrentdTrainingJobsFailed"]:
            self.assertIn(alert, fired)
        self.assertTrue(any(check.get("exp_alerts") == [] for check in checks))

    def test_every_alert_has_severity_summary_and_a_runbook_in_the_docs(self):
        docs = DOCS.read_text(encoding="utf-8")
        headings = set(re.findall(r"^#+ (\S+)\s*$", docs, flags=re.MULTILINE))
        for rule in alert_rules():
            with self.subTest(alert=rule.get("alert")):
                self.assertIn("alert", rule)
                self.assertIn(rule.get("labels", {}).get("severity"), SEVERITIES)
                annotations = rule.get("annotations", {})
                self.assertTrue(annotations.get("summary"))
                self.assertIn("Runbook:", annotations.get("description", ""))
                self.assertIn(f"docs/monitoring.md#{rule['alert'].lower()}",
                              annotations["description"])
                self.assertIn(rule["alert"], headings, "docs/monitoring.md: a heading per alert")

    def test_servicemonitor_selects_the_metrics_service_of_deploy_k8s(self):
        monitor = load_yaml(PROMETHEUS_DIR / "servicemonitor.yaml")
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(monitor["kind"], "ServiceMonitor")
        selector = monitor["spec"]["selector"]["matchLabels"]
        self.assertEqual(selector, {"app.kubernetes.io/name": "recurrent",
                                    "app.kubernetes.io/component": "metrics"})
        endpoints = monitor["spec"]["endpoints"]
        self.assertEqual([e["port"] for e in endpoints], ["metrics"])
        self.assertIn({"targetLabel": "job", "replacement": JOB}, endpoints[0]["relabelings"])
        service_file = DEPLOY_DIR / "k8s" / "service.yaml"
        if not service_file.exists():
            self.skipTest("no deploy/k8s/service.yaml to cross-check")
        services = [doc for doc in yaml.safe_load_all(service_file.read_text(encoding="utf-8"))
                    if doc and doc.get("kind") == "Service"
                    and selector.items() <= doc["metadata"].get("labels", {}).items()]
        self.assertEqual(len(services), 1, "exactly one Service carries the selected labels")
        ports = {p.get("name"): p["port"] for p in services[0]["spec"]["ports"]}
        self.assertEqual(ports.get("metrics"), METRICS_PORT)


class YamlLintTest(unittest.TestCase):
    def test_every_yaml_file_under_deploy_passes_yamllint_strict(self):
        config = SOURCE_DIR / ".yamllint"
        files = sorted(p for p in DEPLOY_DIR.rglob("*") if p.suffix in (".yml", ".yaml"))
        self.assertGreaterEqual(len(files), 7)
        result = run(["yamllint", "-s", "-f", "parsable", "-c", str(config), str(config),
                      *map(str, files)])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class GrafanaFilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    def test_dashboard_has_datasource_and_instance_variables(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        instance = variables["instance"]
        self.assertEqual(instance["type"], "query")
        self.assertEqual(instance["datasource"]["uid"], "${datasource}")
        self.assertTrue(instance["includeAll"] and instance["multi"])
        self.assertGreaterEqual(self.dashboard["schemaVersion"], 36)
        self.assertTrue(self.dashboard["uid"])

    def test_every_panel_queries_the_datasource_variable_for_the_selected_instances(self):
        panels = list(dashboard_panels(self.dashboard))
        self.assertGreaterEqual(len(panels), 15)
        ids = [p["id"] for p in self.dashboard["panels"]]
        ids += [p["id"] for row in self.dashboard["panels"] for p in row.get("panels", [])]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        for panel in panels:
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel["datasource"],
                                 {"type": "prometheus", "uid": "${datasource}"})
                self.assertLessEqual(panel["gridPos"]["x"] + panel["gridPos"]["w"], 24)
                self.assertTrue(panel["targets"])
                for target in panel["targets"]:
                    self.assertEqual(target["datasource"]["uid"], "${datasource}")
                    self.assertTrue(target["expr"].strip())
                    self.assertIn('instance=~"$instance"', target["expr"])

    def test_dashboard_covers_the_required_metrics(self):
        used = set()
        for _, expr in dashboard_queries(self.dashboard):
            used |= metric_names(expr)
        for name in ["recurrent_requests_total", "recurrent_request_duration_seconds_bucket",
                     "recurrent_active_streams", "recurrent_step_batch_size_sum",
                     "recurrent_step_batch_size_count", "recurrent_step_batch_size_bucket",
                     "recurrent_step_duration_seconds_bucket", "recurrent_job_queue_depth",
                     "recurrent_job_queue_capacity", "recurrent_jobs", "recurrent_running_job_loss",
                     "recurrent_running_job_sequences_per_second", "recurrent_model_cache_bytes",
                     "recurrent_model_cache_models", "recurrent_model_cache_hits_total",
                     "recurrent_model_cache_misses_total", "recurrent_model_cache_evictions_total",
                     "recurrent_process_cpu_seconds_total",
                     "recurrent_process_resident_memory_bytes", "recurrent_build_info"]:
            self.assertIn(name, used)

    def test_provisioning_loads_the_dashboard_from_prometheus_of_the_compose_stack(self):
        datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml")
        (source,) = datasources["datasources"]
        self.assertEqual((source["type"], source["uid"], source["url"]),
                         ("prometheus", "prometheus", "http://prometheus:9090"))
        providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "recurrent.yaml")
        (provider,) = providers["providers"]
        self.assertEqual(provider["type"], "file")
        self.assertEqual(provider["options"]["path"], "/var/lib/grafana/dashboards")
        default = next(v for v in self.dashboard["templating"]["list"] if v["name"] == "datasource")
        self.assertEqual(default["current"]["value"], source["uid"])


class ComposeFileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load_yaml(COMPOSE)
        cls.services = cls.compose["services"]

    def mounts(self, service):
        """container path -> (host path resolved from deploy/, options) of bind mounts."""
        result = {}
        for volume in self.services[service].get("volumes", []):
            source, target, *options = volume.split(":")
            if source.startswith("."):
                result[target] = ((DEPLOY_DIR / source).resolve(), options)
        return result

    def test_recurrentd_is_built_from_the_repository_and_published_on_loopback(self):
        service = self.services["recurrentd"]
        self.assertEqual(service["image"], "recurrent:latest")
        self.assertEqual((DEPLOY_DIR / service["build"]["context"]).resolve(), SOURCE_DIR.resolve())
        self.assertTrue((SOURCE_DIR / service["build"].get("dockerfile", "Dockerfile")).exists())
        self.assertIn("--drain_seconds=2", service["command"])
        self.assertEqual(sorted(service["ports"]), ["127.0.0.1:50051:50051",
                                                    f"127.0.0.1:{METRICS_PORT}:{METRICS_PORT}"])
        self.assertIn("recurrent-data:/data", service["volumes"])
        self.assertIn("recurrent-data", self.compose["volumes"])
        self.assertEqual(service["stop_grace_period"], "30s")

    def test_prometheus_mounts_the_config_that_scrapes_the_recurrentd_service(self):
        service = self.services["prometheus"]
        self.assertTrue(service["image"].startswith("prom/prometheus:"))
        mounts = self.mounts("prometheus")
        self.assertEqual(mounts["/etc/prometheus"], (PROMETHEUS_DIR.resolve(), ["ro"]))
        self.assertIn("--config.file=/etc/prometheus/prometheus.yml", service["command"])
        self.assertIn("127.0.0.1:9090:9090", service["ports"])
        # The static target is the compose service's name and its container metrics port.
        config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
        host, port = config["scrape_configs"][0]["static_configs"][0]["targets"][0].split(":")
        self.assertIn(host, self.services)
        self.assertEqual(int(port), METRICS_PORT)

    def test_grafana_mounts_provisioning_and_dashboards_and_lets_viewers_in(self):
        service = self.services["grafana"]
        self.assertTrue(service["image"].startswith("grafana/grafana"))
        mounts = self.mounts("grafana")
        self.assertEqual(mounts["/etc/grafana/provisioning"],
                         ((GRAFANA_DIR / "provisioning").resolve(), ["ro"]))
        self.assertEqual(mounts["/var/lib/grafana/dashboards"],
                         ((GRAFANA_DIR / "dashboards").resolve(), ["ro"]))
        self.assertEqual(service["environment"]["GF_AUTH_ANONYMOUS_ENABLED"], "true")
        self.assertEqual(service["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"], "Viewer")
        self.assertIn("127.0.0.1:3000:3000", service["ports"])

    @unittest.skipUnless(shutil.which("docker-compose"), "docker-compose (Debian's) not installed")
    def test_compose_file_passes_docker_compose_config(self):
        result = run(["docker-compose", "-f", str(COMPOSE), "config", "--quiet"])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


# ---------------------------------------------------------------------------------------------
# Live: recurrentd, the CLI and Prometheus


class LiveStackTest(unittest.TestCase):
    """Gathers everything first (setUpClass ends with both processes stopped), then checks it."""

    @classmethod
    def setUpClass(cls):
        cls.started = time.monotonic()
        cls.tmp = tempfile.TemporaryDirectory(prefix="monitoring_test.")
        cls.dir = Path(cls.tmp.name)
        cls.server = cls.prometheus = cls.server_log = cls.prometheus_log = None
        cls.grpc_port, cls.metrics_port, cls.web_port = free_ports(3)
        cls.instance = f"127.0.0.1:{cls.metrics_port}"
        cls.api = f"http://127.0.0.1:{cls.web_port}/api/v1"
        try:
            cls.start_recurrentd()
            cls.start_prometheus()
            cls.drive_traffic_and_gather()
            cls.stop_recurrentd()
        except BaseException:
            cls.kill_all()
            cls.print_logs()
            cls.tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.kill_all()
        print(f"\nLiveStackTest: {time.monotonic() - cls.started:.1f} s")
        cls.tmp.cleanup()

    # -- the processes

    @classmethod
    def start_recurrentd(cls):
        cls.server_log = open(cls.dir / "recurrentd.log", "w")
        cls.server = subprocess.Popen(
            [RECURRENTD, f"--port={cls.grpc_port}", f"--metrics_port={cls.metrics_port}",
             f"--data_dir={cls.dir / 'data'}", "--shutdown_grace_seconds=5"],
            stdout=cls.server_log, stderr=subprocess.STDOUT)
        wait_for(lambda: http_get(f"http://{cls.instance}/metrics"), 20, "recurrentd's /metrics")
        wait_for(lambda: cls.cli("health").returncode == 0, 20, "recurrentd SERVING")

    @classmethod
    def start_prometheus(cls):
        """Prometheus with the repository's scrape job (aimed at the test's server, every 1 s)."""
        repo_config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
        job = copy.deepcopy(next(j for j in repo_config["scrape_configs"] if j["job_name"] == JOB))
        job["static_configs"] = [{"targets": [cls.instance]}]
        job.update(scrape_interval="1s", scrape_timeout="1s")
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")], "scrape_configs": [job]}
        config_path = cls.dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        cls.prometheus_log = open(cls.dir / "prometheus.log", "w")
        cls.prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config_path}",
             f"--storage.tsdb.path={cls.dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{cls.web_port}", "--log.level=warn"],
            stdout=cls.prometheus_log, stderr=subprocess.STDOUT)
        wait_for(lambda: cls.query(f'up{{job="{JOB}"}} == 1')[1], 30, "a first successful scrape")

    @classmethod
    def stop_recurrentd(cls):
        cls.server.send_signal(signal.SIGTERM)
        try:
            cls.server_exit_code = cls.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.server_exit_code = "still running 20 s after SIGTERM"
        # The next scrapes fail: up == 0 makes RecurrentdDown pending (it fires after 1 minute).
        try:
            cls.down_alert = wait_for(lambda: cls.alerts("RecurrentdDown"), 10, "RecurrentdDown")
        except TimeoutError:
            cls.down_alert = []
        cls.prometheus.send_signal(signal.SIGTERM)
        cls.prometheus.wait(timeout=20)

    @classmethod
    def kill_all(cls):
        for process in (cls.server, cls.prometheus):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        for log in (cls.server_log, cls.prometheus_log):
            if log is not None:
                log.close()

    @classmethod
    def print_logs(cls):
        for name in ("recurrentd.log", "prometheus.log"):
            path = cls.dir / name
            if path.exists():
                print(f"--- {name} (last lines)\n" + "\n".join(path.read_text().splitlines()[-30:]))

    # -- clients

    @classmethod
    def cli(cls, *args, stdin=None):
        return run([CLI, "--server", f"127.0.0.1:{cls.grpc_port}", *args], input=stdin)

    @classmethod
    def cli_ok(cls, *args, stdin=None, expect=0):
        result = cls.cli(*args, stdin=stdin)
        if result.returncode != expect:
            raise AssertionError(f"recurrent {' '.join(args)} exited {result.returncode}, "
                                 f"not {expect}:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    @classmethod
    def query(cls, expr):
        """(status, result) of an instant query; status is "success" or the error."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        try:
            with urllib.request.urlopen(f"{cls.api}/query", data=data, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # 400: the expression does not parse or run
            body = json.load(error)
        if body["status"] != "success":
            return f'{body.get("errorType")}: {body.get("error")}', []
        return "success", body["data"]["result"]

    @classmethod
    def alerts(cls, name=None, state=None):
        with urllib.request.urlopen(f"{cls.api}/alerts", timeout=5) as response:
            alerts = json.load(response)["data"]["alerts"]
        return [a for a in alerts if (name is None or a["labels"]["alertname"] == name)
                and (state is None or a["state"] == state)]

    # -- the scenario

    @classmethod
    def drive_traffic_and_gather(cls):
        rows = "0.1,0\n0.5,1\n"
        # Round 1 creates the series (Prometheus has already scraped the idle server once).
        cls.cli_ok("train", "--name", "m", "--generator", "adding", "--sequences", "128",
                   "--length", "6", "--epochs", "2", "--watch")
        cls.cli_ok("predict", "--model", "m", stdin=rows)
        cls.cli_ok("stream", "--model", "m", stdin=rows + "0.9,0\n")
        cls.cli_ok("predict", "--model", "missing", stdin=rows, expect=1)  # NOT_FOUND
        # A job that fails while it runs (too short a series for one window): the failed count
        # goes 0 -> 1 between two scrapes, which fires RecurrentdTrainingJobsFailed at once.
        cls.cli_ok("train", "--name", "short", "--generator", "sines", "--series-length", "10",
                   "--window", "32", "--epochs", "1", "--watch", expect=1)
        # A long job, left running so that the per-job gauges have series (cancelled below).
        long_job = json.loads(cls.cli_ok(
            "--json", "train", "--name", "long", "--generator", "adding", "--sequences", "20000",
            "--length", "50", "--epochs", "100", "--time-budget", "60"))["job_id"]
        # The failed job came after every request of round 1: once a scrape has seen it, every
        # series of round 1 exists, and round 2 makes the next scrape see them increase.
        wait_for(lambda: cls.query('recurrent_jobs{state="failed"} == 1')[1], 10,
                 "a scrape after the first round")
        # Round 2 increases the counters, so that rates and quantiles are numbers.
        cls.cli_ok("predict", "--model", "m", stdin=rows)
        cls.cli_ok("stream", "--model", "m", stdin=rows)
        wait_for(lambda: cls.query('rate(recurrent_requests_total{rpc="StepPredict"}[1m]) > 0')[1]
                 and cls.query("recurrent_running_job_loss")[1]
                 and cls.alerts("RecurrentdTrainingJobsFailed", "firing"), 20,
                 "the second round's scrape, the running job and the failed-job alert")
        wait_for(cls.rules_evaluated, 10, "every rule evaluated")

        cls.exposition = http_get(f"http://{cls.instance}/metrics")
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        cls.dashboard_results = {}
        for panel in dashboard_panels(dashboard):
            for target in panel["targets"]:
                expr = with_grafana_variables(target["expr"])
                cls.dashboard_results[(panel["title"], target["refId"])] = (expr, cls.query(expr))
        with urllib.request.urlopen(f"{cls.api}/label/instance/values?" + urllib.parse.urlencode(
                {"match[]": f'recurrent_build_info{{job="{JOB}"}}'}), timeout=5) as response:
            cls.instance_values = json.load(response)["data"]
        cls.alert_results = {rule["alert"]: cls.query(rule["expr"]) for rule in alert_rules()}
        cls.firing = cls.alerts(state="firing")
        cls.cli_ok("jobs", "cancel", long_job)

    @classmethod
    def rule_groups(cls):
        with urllib.request.urlopen(f"{cls.api}/rules", timeout=5) as response:
            return json.load(response)["data"]["groups"]

    @classmethod
    def rules_evaluated(cls):
        cls.rules = [rule for group in cls.rule_groups() for rule in group["rules"]]
        return cls.rules and all(rule["health"] != "unknown" for rule in cls.rules)

    # -- the checks

    def test_every_metric_in_the_dashboard_and_the_alerts_is_exposed_with_samples(self):
        types, samples = parse_exposition(self.exposition)
        uses = [(where, expr) for where, expr in dashboard_queries(
            json.loads(DASHBOARD.read_text(encoding="utf-8")))]
        uses += [(f'alert {rule["alert"]}', rule["expr"]) for rule in alert_rules()]
        missing = [f"{name} ({where})" for where, expr in uses
                   for name in sorted(metric_names(expr))
                   if family_of(name, types) is None or name not in samples]
        self.assertGreater(len(uses), 20)
        self.assertEqual(missing, [], "used but not exposed by recurrentd (or without samples)")

    def test_every_exposed_recurrent_family_is_on_the_dashboard_or_in_an_alert(self):
        types, _ = parse_exposition(self.exposition)
        exprs = [expr for _, expr in dashboard_queries(
            json.loads(DASHBOARD.read_text(encoding="utf-8")))] + [r["expr"] for r in alert_rules()]
        shown = {family_of(name, types) for expr in exprs for name in metric_names(expr)}
        exposed = {name for name in types if name.startswith("recurrent_")}
        self.assertGreaterEqual(len(exposed), 20)
        self.assertEqual(sorted(exposed - shown), [], "add these to the dashboard")

    def test_exposition_passes_promtool_check_metrics(self):
        result = run(["promtool", "check", "metrics"], input=self.exposition)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_dashboard_query_returns_series(self):
        self.assertGreaterEqual(len(self.dashboard_results), 20)
        for (title, ref), (expr, (status, result)) in self.dashboard_results.items():
            with self.subTest(panel=title, ref=ref):
                self.assertEqual(status, "success", expr)
                self.assertTrue(result, f"no series: {expr}")
        self.assertEqual(self.instance_values, [self.instance])

    def test_key_dashboard_queries_return_numbers(self):
        for title in KEY_PANELS:
            results = [r for (t, _), r in self.dashboard_results.items() if t == title]
            self.assertTrue(results, f'no panel "{title}"')
            for expr, (_, result) in results:
                with self.subTest(panel=title, expr=expr):
                    values = [float(series["value"][1]) for series in result]
                    self.assertTrue(any(math.isfinite(v) for v in values), f"{expr}: {result}")
        (_, (_, rates)), = [r for (t, ref), r in self.dashboard_results.items()
                            if t == "Request rate by RPC"]
        by_rpc = {series["metric"]["rpc"]: float(series["value"][1]) for series in rates}
        self.assertGreater(by_rpc.get("Predict", 0), 0)
        self.assertGreater(by_rpc.get("StepPredict", 0), 0)

    def test_every_alert_expression_evaluates(self):
        self.assertEqual(set(self.alert_results), {rule["alert"] for rule in alert_rules()})
        for alert, (status, _) in self.alert_results.items():
            with self.subTest(alert=alert):
                self.assertEqual(status, "success")

    def test_prometheus_loaded_and_evaluated_every_rule(self):
        names = {rule["name"] for rule in self.rules}
        self.assertEqual(names, {rule["alert"] for rule in alert_rules()})
        for rule in self.rules:
            with self.subTest(alert=rule["name"]):
                self.assertEqual((rule["health"], rule.get("lastError", "")), ("ok", ""))

    def test_a_failed_training_job_fires_its_alert_and_nothing_else_fires(self):
        fired = [(a["labels"]["alertname"], a["labels"].get("instance"), a["labels"].get("state"))
                 for a in self.firing]
        self.assertEqual(fired, [("RecurrentdTrainingJobsFailed", self.instance, "failed")])

    def test_sigterm_stops_recurrentd_with_exit_code_0(self):
        self.assertEqual(self.server_exit_code, 0)

    def test_a_stopped_server_makes_recurrentd_down_pending(self):
        self.assertEqual([(a["labels"]["instance"], a["labels"]["job"], a["state"])
                          for a in self.down_alert], [(self.instance, JOB, "pending")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
