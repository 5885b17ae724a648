"""Load on the local stack with the tiny random-weight model: concurrent SafeRolloutStream calls and a big bulk job.

    .venv/bin/python bench/load.py                          # 100 streams; bulk jobs of 5,000 and 50,000 prompts
    .venv/bin/python bench/load.py --streams 20 --small 500 --large 5000     # quick

The stack is the fault drills' (tests/reliability/drill.py): Redis with AOF (`appendfsync always`), the four
services as processes, generation on `shared.models.tiny` (so the figures measure the services, queues and Redis,
not a model), the judge with the shipped rules plus planted cues, so safe rollouts are cut and continued.

Streams: the same `--streams` SafeRolloutStream calls first one at a time (the baseline), then all at once; it
prints throughput and p50/p99 latency of each and the ratios. Bulk: a `--small` job (the baseline) and a `--large`
one, each generating 2+1 tokens per rollout; it prints prompts/s of each and their ratio (1.0: throughput does not
fall with size), the longest any stream got (bounded by the rollout window plus one batch, whatever the job's
size), Redis memory at peak and kept, and the growth of each service's RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.models.tiny import tiny_model  # noqa: E402
from shared.stack import local  # noqa: E402
from tests.reliability.drill import start_drill_stack  # noqa: E402
from tests.reliability.load import BulkResult, StreamResult, bulk_job, percentile, stream_rollouts  # noqa: E402


def stream_line(label: str, results: list[StreamResult], wall_s: float) -> float:
    latencies = [r.seconds for r in results]
    ok = sum(r.completed for r in results)
    rate = len(results) / wall_s
    print(
        f"  {label:<28} {rate:7.2f} streams/s   p50 {percentile(latencies, 0.5):6.2f}s   "
        f"p99 {percentile(latencies, 0.99):6.2f}s   completed {ok}/{len(results)}"
    )
    return rate


def bulk_line(run: BulkResult) -> None:
    peak = max(run.peak_stream_lengths.values())
    rss = ", ".join(f"{s} {(run.rss_peak[s] - run.rss_before[s]) / 1e6:+.0f}" for s in run.rss_peak)
    at_peak, kept = (run.redis_peak - run.redis_before) / 1e6, (run.redis_after - run.redis_before) / 1e6
    print(
        f"  {run.prompts:>7} prompts  {run.prompts_per_s:7.1f} prompts/s  longest stream {peak:5d}  "
        f"Redis +{at_peak:6.1f} MB peak, +{kept:6.1f} MB kept  RSS MB: {rss}   failed {run.job.failed_items}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=100, help="SafeRolloutStream calls (and the concurrency)")
    parser.add_argument("--small", type=int, default=5000, help="prompts of the baseline bulk job")
    parser.add_argument("--large", type=int, default=50_000, help="prompts of the big bulk job")
    parser.add_argument("--window", type=int, default=1024, help="INTERVENE_ROLLOUT_WINDOW")
    args = parser.parse_args()
    print(f"load: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="intervene-load-") as tmp:
        folder = Path(tmp)
        model = tiny_model(folder / "tiny-model")
        overrides = {"INTERVENE_QUEUE_BATCH_SIZE": "32", "INTERVENE_ROLLOUT_WINDOW": str(args.window)}
        stack = start_drill_stack(folder / "stack", model, overrides)
        try:
            stream_rollouts(stack, calls=4, concurrency=4)  # warm-up, not timed
            print(f"SafeRolloutStream, {args.streams} calls (tiny model, greedy, up to 40+6 tokens, 3 triggers):")
            timed = []
            for concurrency in (1, args.streams):
                started = time.perf_counter()
                results = stream_rollouts(stack, calls=args.streams, concurrency=concurrency)
                timed.append((concurrency, results, time.perf_counter() - started))
            sequential = stream_line("one at a time (baseline)", timed[0][1], timed[0][2])
            concurrent = stream_line(f"{args.streams} concurrent", timed[1][1], timed[1][2])
            p50 = percentile([r.seconds for r in timed[1][1]], 0.5) / percentile([r.seconds for r in timed[0][1]], 0.5)
            print(f"  ratio concurrent / baseline: throughput x{concurrent / sequential:.2f}, p50 latency x{p50:.1f}")
            print(f"bulk jobs (window {args.window}, batch 32, 2+1 tokens per rollout):")
            small = bulk_job(stack, args.small, "bench-small")
            bulk_line(small)
            large = bulk_job(stack, args.large, "bench-large", offset=args.small)
            bulk_line(large)
            grown = (large.redis_peak - large.redis_before) - (small.redis_peak - small.redis_before)
            print(
                f"  ratio large / small: throughput x{large.prompts_per_s / small.prompts_per_s:.2f}; Redis peak grows "
                f"{grown / (args.large - args.small):.0f} bytes per extra prompt"
            )
        finally:
            local.down(folder / "stack")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
