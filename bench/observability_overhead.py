"""What the observability instrumentation costs with tracing off (the default), against the same work without it.

    .venv/bin/python bench/observability_overhead.py              # 20000 queue entries, best of 7

Per queue entry, a consumer now runs its handler inside `run_observed` (the outcome counters) and `current` (the
entry's ids on log lines); a producer stamps each message before serializing it. The baseline is the same loop
without them: the handler called directly, the message serialized directly. Both run in this process on the same
`RolloutRequested` bodies; the handler does nothing, so the figures are the instrumentation alone, an upper bound
on its share of real handling. For that share, the script also times the library's own consume+ack of the same
entries from a real Redis (AOF, appendfsync always: the project's setting) and prints the instrumentation's added
time as a fraction of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from shared.config.base import QueueSettings
from shared.observability import tracing
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import ROLLOUT_REQUESTED, WorkQueue
from shared.queues.codec import Delivery
from shared.queues.handling import run_handler
from shared.queues.tracing import run_observed, stamp
from tools.redis_process import RedisProcess


def best_of(repeats: int, work: Callable[[], None]) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def redis_consume_us(messages: list, batch: int) -> float:
    """Microseconds per entry of WorkQueue consume+ack (instrumented, as shipped) from a real Redis."""
    with tempfile.TemporaryDirectory() as data_dir:
        server = RedisProcess(Path(data_dir)).start()
        try:
            queue = WorkQueue(
                redis.Redis.from_url(server.url),
                ROLLOUT_REQUESTED,
                settings=QueueSettings(batch_size=batch, block_ms=10, max_length=len(messages) + 1),
            )
            queue.ensure_group("bench")
            for start in range(0, len(messages), batch):
                queue.produce_many(messages[start : start + batch])
            started = time.perf_counter()
            while queue.consume("bench", "c", lambda delivery: None, block_ms=0).handled:
                pass
            return (time.perf_counter() - started) / len(messages) * 1e6
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="queue entries per run (default 20000)")
    parser.add_argument("--repeats", type=int, default=7, help="runs of each side; the best is reported (default 7)")
    args = parser.parse_args()
    assert not tracing.configure("bench"), "unset the OTEL_* variables: this measures tracing off"
    messages = [
        queue_pb2.RolloutRequested(job_id="j-1", rollout_id=f"r-{i}", prompt=common_pb2.Prompt(text="x" * 200))
        for i in range(args.n)
    ]
    deliveries = [Delivery(f"{i}-0", message, 1) for i, message in enumerate(messages)]

    def handler(delivery: Delivery) -> None:
        pass

    def bare_consume() -> None:
        succeeded = []
        for delivery in deliveries:
            handler(delivery)
            succeeded.append(delivery.entry_id)

    def instrumented_consume() -> None:
        run_observed("rollout.requested", "bench", deliveries, lambda batch: run_handler(batch, handler))

    def bare_produce() -> None:
        for message in messages:
            message.SerializeToString()

    def instrumented_produce() -> None:
        for message in messages:
            stamp("rollout.requested", message)
            message.SerializeToString()

    print(f"N={args.n} best of {args.repeats}, tracing off")
    added = 0.0
    for name, bare, instrumented in (
        ("consume (per entry)", bare_consume, instrumented_consume),
        ("produce (per entry)", bare_produce, instrumented_produce),
    ):
        base = best_of(args.repeats, bare) / args.n * 1e6
        with_it = best_of(args.repeats, instrumented) / args.n * 1e6
        added += with_it - base
        print(f"  {name}: bare {base:.2f} us, instrumented {with_it:.2f} us, +{with_it - base:.2f} us")
    real = redis_consume_us(messages, 100)
    print(f"  the library's consume+ack through Redis: {real:.1f} us per entry")
    print(f"  ratio added / consume+ack: {added / real:.3f} (the instrumentation's share of moving one entry)")


if __name__ == "__main__":
    main()
