# recurrentd and the recurrent CLI in a small Debian 12 image.
#
#   podman build --format docker -t recurrent:latest .     (or: docker build -t recurrent:latest .)
#   podman run -p 50051:50051 -p 9464:9464 -v recurrent-data:/data recurrent:latest
#
# Extra arguments after the image name are recurrentd flags (e.g. --role=serving). The build
# stage installs the project's own build dependencies (scripts/install-deps.sh --build-only), so
# image and development machine cannot drift; the runtime package list below is checked against
# what the built binaries link (tests/deploy/docker_files_test.py). scripts/docker_e2e.sh builds
# and runs this image end to end.

FROM debian:bookworm-slim AS build
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRECURRENT_BUILD_TESTS=OFF \
        -DRECURRENT_BUILD_BENCH=OFF \
    && cmake --build build --target recurrentd recurrent --parallel \
    && strip build/bin/recurrentd build/bin/recurrent

FROM debian:bookworm-slim
# runtime-packages-begin (one per line; exactly what the binaries link, checked by a test)
RUN apt-get update && apt-get install -y --no-install-recommends \
        libabsl20220623 \
        libc-ares2 \
        libcivetweb1 \
        libdnnl2 \
        libgomp1 \
        libgrpc++1.51 \
        libgrpc29 \
        libprometheus-cpp-core1.0 \
        libprometheus-cpp-pull1.0 \
        libprotobuf32 \
        libre2-9 \
        libssl3 \
        libstdc++6 \
        ocl-icd-libopencl1 \
        zlib1g \
    && rm -rf /var/lib/apt/lists/*
# runtime-packages-end
RUN groupadd --system --gid 10001 recurrent \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin recurrent \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /src/build/bin/recurrentd /src/build/bin/recurrent /usr/local/bin/
USER 10001:10001
VOLUME ["/data"]
# gRPC, Prometheus /metrics
EXPOSE 50051 9464
# oneDNN's OpenMP threads sleep instead of spinning when idle: training and serving share cores.
ENV OMP_WAIT_POLICY=PASSIVE
# The gRPC health service, through the CLI (exit 0 only when SERVING; NOT_SERVING while draining).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/recurrent", "--server", "127.0.0.1:50051", "health", "--timeout", "3"]
STOPSIGNAL SIGTERM
# Exec form: recurrentd is PID 1 and gets SIGTERM itself (it drains, checkpoints, exits 0).
ENTRYPOINT ["/usr/local/bin/recurrentd", "--listen_address=0.0.0.0", "--metrics_address=0.0.0.0", "--data_dir=/data"]
