"""Static checks of the Dockerfile that need no container engine (scripts/docker_e2e.sh builds and
runs the image for real):

- the runtime stage installs exactly the Debian packages that own the shared libraries the built
  recurrentd and recurrent link (ldd + dpkg -S), so the image cannot miss or carry a library;
- the build stage installs through scripts/install-deps.sh --build-only, the same list a
  developer machine uses;
- the image runs as a non-root user, exposes the gRPC and metrics ports the binaries default to,
  has a HEALTHCHECK through the CLI's `health`, a /data volume, and an exec-form ENTRYPOINT (so
  SIGTERM reaches recurrentd);
- .dockerignore keeps build outputs and VCS data out of the build context.
"""

import os
import re
import subprocess
import unittest

SOURCE = os.environ.get("RECURRENT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
RECURRENTD = os.environ.get("RECURRENTD_PATH", os.path.join(SOURCE, "build", "bin", "recurrentd"))
CLI = os.environ.get("RECURRENT_CLI_PATH", os.path.join(SOURCE, "build", "bin", "recurrent"))
# In every Debian image already (essential or the base of apt itself).
BASE_PACKAGES = {"libc6", "libgcc-s1"}


def read(path):
    with open(os.path.join(SOURCE, path), encoding="utf-8") as f:
        return f.read()


def candidate_paths(library):
    """Where dpkg may have recorded `library` (a path from ldd), across the /lib -> /usr/lib merge."""
    real = os.path.realpath(library)
    paths = [library, real]
    for path in (library, real):
        if path.startswith("/lib/"):
            paths.append("/usr" + path)
    return paths


def linked_packages(binaries):
    """The Debian packages that own the shared libraries `binaries` link (one dpkg -S call)."""
    libraries = set()
    for binary in binaries:
        output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        libraries.update(re.findall(r"=> (/\S+)", output))
    paths = sorted({path for library in libraries for path in candidate_paths(library)})
    # dpkg -S exits non-zero when some path is unowned (the unmerged aliases): read what it found.
    output = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True).stdout
    owner = {}
    for line in output.splitlines():
        package, _, path = line.partition(": ")
        owner[path.strip()] = package.split(":")[0].strip()
    packages = set()
    for library in libraries:
        found = [owner[path] for path in candidate_paths(library) if path in owner]
        if not found:
            raise AssertionError(f"no Debian package owns {library}")
        packages.add(found[0])
    return packages


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dockerfile = read("Dockerfile")
        stages = re.split(r"^FROM ", cls.dockerfile, flags=re.M)
        cls.build_stage, cls.runtime_stage = stages[1], stages[2]

    def test_runtime_packages_are_exactly_what_the_binaries_link(self):
        block = re.search(r"runtime-packages-begin(.*?)runtime-packages-end", self.dockerfile, re.S)
        self.assertIsNotNone(block, "the runtime package list lost its markers")
        listed = set(re.findall(r"^\s+([a-z0-9][a-z0-9.+-]+) \\$", block.group(1), re.M))
        needed = linked_packages([RECURRENTD, CLI]) - BASE_PACKAGES
        self.assertEqual(needed - listed, set(), "libraries the binaries need, missing from the image")
        self.assertEqual(listed - needed, set(), "packages the image installs that nothing links")

    def test_build_stage_uses_the_install_script(self):
        self.assertIn("COPY scripts/install-deps.sh", self.build_stage)
        self.assertRegex(self.build_stage, r"RUN /tmp/install-deps.sh --build-only")
        script = read("scripts/install-deps.sh")
        self.assertIn('"--build-only"', script)
        # The build-only list holds the libraries and compilers (the dev list only adds tools).
        build_list = re.search(r"build_packages=\((.*?)\n\)", script, re.S).group(1)
        for package in ("build-essential", "cmake", "libdnnl-dev", "libgrpc++-dev",
                        "prometheus-cpp-dev", "grpc-proto"):
            self.assertIn(package, build_list)
        self.assertIn("--target recurrentd recurrent", self.build_stage)

    def test_runtime_stage_runs_the_server_properly(self):
        runtime = self.runtime_stage
        self.assertTrue(runtime.startswith("debian:bookworm-slim"), runtime[:40])
        self.assertRegex(runtime, r"\nUSER 10001:10001\n")
        self.assertIn('VOLUME ["/data"]', runtime)
        self.assertRegex(runtime, r"\nEXPOSE 50051 9464\n")
        self.assertRegex(runtime, r"HEALTHCHECK .*\n\s+CMD \[\"/usr/local/bin/recurrent\", \"--server\", "
                         r"\"127.0.0.1:50051\", \"health\"")
        entry = re.search(r"^ENTRYPOINT (\[.*\])$", runtime, re.M)
        self.assertIsNotNone(entry, "ENTRYPOINT must be in exec form so SIGTERM reaches recurrentd")
        self.assertIn('"/usr/local/bin/recurrentd"', entry.group(1))
        self.assertIn('"--listen_address=0.0.0.0"', entry.group(1))
        self.assertIn('"--metrics_address=0.0.0.0"', entry.group(1))
        self.assertIn('"--data_dir=/data"', entry.group(1))

    def test_ports_and_flags_match_the_binaries(self):
        help_text = subprocess.run([RECURRENTD, "--helpfull"], capture_output=True, text=True).stdout
        self.assertRegex(help_text, r"--port \(gRPC port\.\); default: 50051;")
        self.assertRegex(help_text, re.compile(r"--metrics_port \(.*?\);\s+default: 9464;", re.S))
        for flag in ("listen_address", "metrics_address", "data_dir", "drain_seconds", "role"):
            self.assertIn(f"--{flag} ", help_text)

    def test_dockerignore_keeps_outputs_out_of_the_context(self):
        ignored = read(".dockerignore").split()
        for pattern in (".git", "build*/", "bench/results/"):
            self.assertIn(pattern, ignored)


if __name__ == "__main__":
    unittest.main()
