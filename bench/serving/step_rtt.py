#!/usr/bin/python3
"""A rough single-stream StepPredict round-trip timer (a sanity figure, not the benchmark: the
real load generator is bench/serving's C++ one).

    /usr/bin/python3 bench/serving/step_rtt.py --target=127.0.0.1:50061 [--steps=2000]

Opens one stream on model --model (default "bench"), sends --warmup single-step messages, then
--steps more, each waiting for its answer (grpc.aio client, one message in flight), and prints
the round-trip percentiles in microseconds. The client's own Python overhead is part of the
figure, so it is an upper bound on what a C++ client would see.
"""

import argparse
import asyncio
import os
import random
import sys
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


async def run(args, grpc, pb, service_pb2_grpc):
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = service_pb2_grpc.InferenceServiceStub(channel)
        call = stub.StepPredict()
        await call.write(pb.StepRequest(open=pb.OpenSession(model=pb.ModelRef(name=args.model))))
        opened = (await call.read()).opened
        rng = random.Random(3)
        requests = [pb.StepRequest(step=pb.StepInput(
            steps=1, values=[rng.uniform(-1, 1) for _ in range(opened.input_size)]))
            for _ in range(64)]
        times = []
        for i in range(args.warmup + args.steps):
            start = time.perf_counter()
            await call.write(requests[i % len(requests)])
            await call.read()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        await call.done_writing()
        if await call.read() is not grpc.aio.EOF:
            raise RuntimeError("the server sent more than one answer per step")
        if await call.code() != grpc.StatusCode.OK:
            raise RuntimeError(f"the stream ended with {await call.code()}")
    times.sort()
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1e6  # noqa: E731
    print(f"{args.target}: {len(times)} single-step round trips: p50 {pct(0.5):.0f} us, "
          f"p90 {pct(0.9):.0f} us, p99 {pct(0.99):.0f} us, mean "
          f"{sum(times) / len(times) * 1e6:.0f} us")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", default="bench")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--stubs", default=os.path.join(REPO_ROOT, "build", "python"))
    args = parser.parse_args()
    sys.path[:0] = [args.stubs, os.path.join(REPO_ROOT, "client", "python")]
    import grpc
    from recurrent_client._stubs import service_pb2 as pb, service_pb2_grpc
    asyncio.run(run(args, grpc, pb, service_pb2_grpc))


if __name__ == "__main__":
    main()
