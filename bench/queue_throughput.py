"""Work-queue throughput: entries/s through shared.queues against a bare redis-py loop, same Redis, same run.

Both sides move the same `RolloutRequested` messages (serialized and parsed with protobuf on both
sides) in batches of `--batch`: produce all N, then consume and ack all N. The bare loop is what a
careful hand-written consumer does with redis-py's default pipeline (MULTI/EXEC): the XADDs of a
batch in one pipeline, XREADGROUP with COUNT, and the XACK of a batch in the same pipeline as the
next read. The library adds the cap check, type checks, dead-lettering and deleting acked entries (so
the stream length is outstanding work) on top, and runs each batch as one Lua call.

Redis runs with AOF and `appendfsync always` (the project's setting: an acknowledged write survives
kill -9); one extra run with `appendfsync everysec` is printed for context. Each side runs `--repeats`
times, alternating, and the median is reported.

    .venv/bin/python bench/queue_throughput.py              # N=20000, batches of 100
    .venv/bin/python bench/queue_throughput.py --n 200000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from shared.config.base import QueueSettings
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import Delivery, Worker, WorkQueue
from tools.redis_process import RedisProcess

TARGET_RATE = 10_000
TARGET_RATIO = 0.8


class _FsyncRedis(RedisProcess):
    """A RedisProcess whose appendfsync policy can be chosen (the project always uses `always`)."""

    def __init__(self, data_dir: Path, appendfsync: str) -> None:
        super().__init__(data_dir=data_dir)
        self.appendfsync = appendfsync

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--appendfsync") + 1] = self.appendfsync
        return args


def messages(n: int) -> list[queue_pb2.RolloutRequested]:
    """N requests of a realistic size (a ~300-character prompt, sampling parameters, ids)."""
    text = "Explain, step by step, how a lighthouse keeper would plan maintenance for the coming winter. " * 3
    return [
        queue_pb2.RolloutRequested(
            job_id="job-bench",
            rollout_id=f"rollout-{i:08d}",
            prompt=common_pb2.Prompt(id=f"p{i}", text=text, dataset="bench"),
            sampling=common_pb2.SamplingParams(temperature=0.6, top_p=0.95, max_reasoning_tokens=512),
            sample_index=i % 4,
        )
        for i in range(n)
    ]


def run_library(client: redis.Redis, stream: str, batch: list, size: int) -> tuple[float, float]:
    """Seconds to produce and to consume+ack every message through WorkQueue and Worker."""
    settings = QueueSettings(max_length=max(len(batch), 100_000), batch_size=size, block_ms=100)
    queue = WorkQueue(client, stream, queue_pb2.RolloutRequested, settings)
    queue.ensure_group("bench")
    start = time.perf_counter()
    for i in range(0, len(batch), size):
        queue.produce_many(batch[i : i + size])
    produced = time.perf_counter()

    stop = threading.Event()
    seen = 0

    def handle(deliveries: Sequence[Delivery[queue_pb2.RolloutRequested]]) -> None:
        nonlocal seen
        seen += len(deliveries)
        if seen >= len(batch):
            stop.set()

    Worker(queue, "bench", "c1", batch_handler=handle).run(stop)
    consumed = time.perf_counter()
    assert client.xlen(stream) == 0, "every acked entry should have been deleted"
    return produced - start, consumed - produced


def run_bare(client: redis.Redis, stream: str, batch: list, size: int) -> tuple[float, float]:
    """Seconds to produce and to consume+ack every message with bare redis-py calls."""
    client.xgroup_create(stream, "bench", id="0", mkstream=True)
    type_name = queue_pb2.RolloutRequested.DESCRIPTOR.full_name.encode()
    start = time.perf_counter()
    for i in range(0, len(batch), size):
        pipe = client.pipeline()
        for message in batch[i : i + size]:
            pipe.xadd(stream, {b"body": message.SerializeToString(), b"type": type_name})
        pipe.execute()
    produced = time.perf_counter()

    seen = 0
    to_ack: list[bytes] = []
    while seen < len(batch):
        pipe = client.pipeline()
        if to_ack:
            pipe.xack(stream, "bench", *to_ack)
        pipe.xreadgroup("bench", "c1", {stream: ">"}, count=size, block=100)
        reply = pipe.execute()[-1]
        entries = reply[0][1] if reply else []
        for _, fields in entries:
            queue_pb2.RolloutRequested.FromString(fields[b"body"])
        seen += len(entries)
        to_ack = [entry_id for entry_id, _ in entries]
    client.xack(stream, "bench", *to_ack)
    consumed = time.perf_counter()
    return produced - start, consumed - produced


def measure(url: str, n: int, size: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """Median (produce, consume, end-to-end) entries/s of each side."""
    client = redis.Redis.from_url(url)
    batch = messages(n)
    runs: dict[str, list[tuple[float, float]]] = {"library": [], "bare": []}
    sides: dict[str, Callable[[redis.Redis, str, list, int], tuple[float, float]]] = {
        "bare": run_bare,
        "library": run_library,
    }
    for repeat in range(repeats):
        for name, side in sides.items():
            stream = f"bench.{name}.{repeat}"
            runs[name].append(side(client, stream, batch, size))
            client.delete(stream)
    return {
        name: (
            n / statistics.median(p for p, _ in timings),
            n / statistics.median(c for _, c in timings),
            n / statistics.median(p + c for p, c in timings),
        )
        for name, timings in runs.items()
    }


def report(label: str, rates: dict[str, tuple[float, float, float]]) -> float:
    """Prints both sides and the ratio; returns the library's end-to-end rate."""
    lib, bare = rates["library"], rates["bare"]
    print(f"[{label}]")
    for name, (produce, consume, total) in rates.items():
        print(f"  {name:8s} produce {produce:9,.0f}/s  consume+ack {consume:9,.0f}/s  end-to-end {total:9,.0f}/s")
    print(
        f"  ratio library/bare: produce {lib[0] / bare[0]:.2f}  consume+ack {lib[1] / bare[1]:.2f}  "
        f"end-to-end {lib[2] / bare[2]:.2f}"
    )
    return lib[2] / bare[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="entries per run (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="entries per produce call and per read (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side; the median is reported (default 3)")
    parser.add_argument("--no-everysec", action="store_true", help="skip the appendfsync everysec context run")
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes share this machine)")
    print(
        f"N={args.n} batch={args.batch} repeats={args.repeats} message=RolloutRequested "
        f"({messages(1)[0].ByteSize()} bytes)"
    )
    policies = ["always"] if args.no_everysec else ["always", "everysec"]
    results = {}
    for policy in policies:
        with tempfile.TemporaryDirectory(prefix="queue-bench-") as data_dir:
            server = _FsyncRedis(Path(data_dir), policy).start()
            try:
                rates = measure(server.url, args.n, args.batch, args.repeats)
            finally:
                server.stop()
        label = f"appendfsync {policy}" + (" (project setting)" if policy == "always" else " (context only)")
        results[policy] = (rates["library"][2], report(label, rates))
    rate, ratio = results["always"]
    verdict = "met" if rate >= TARGET_RATE and ratio >= TARGET_RATIO else "NOT met"
    print(
        f"targets (appendfsync always): >= {TARGET_RATE:,} entries/s and >= {TARGET_RATIO} of bare: {verdict} "
        f"({rate:,.0f}/s, {ratio:.2f})"
    )


if __name__ == "__main__":
    main()
