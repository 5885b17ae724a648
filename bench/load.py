"""Load on the local stack: concurrent SafeRolloutStream calls, SafeRollout latency beside a bulk job, big bulk jobs.

    .venv/bin/python bench/load.py                                   # embedded model: 100 streams, a 64-prompt job
    .venv/bin/python bench/load.py --streams 32 --baseline-calls 4 --interactive-calls 4    # smaller, 2 shared cores
    .venv/bin/python bench/load.py --model tiny --memory-small 5000 --memory-large 50000   # the queues' memory

The stack is the fault drills' (tests/reliability/drill.py): Redis with AOF (`appendfsync always`), the four
services as processes, the judge with the shipped rules plus planted cues, so safe rollouts are cut and continued.
Generation runs the transformers back end on the embedded SmolLM2 (`--model embedded`, the default) or on
`shared.models.tiny` (`--model tiny`: the figures then measure the services, queues and Redis, not a model).

Streams: `--baseline-calls` SafeRolloutStream calls one at a time (the baseline), then `--streams` calls all at
once (`--reasoning-tokens` + `--response-tokens`, greedy, one round of triggers); it prints the throughput and
p50/p99 latency of each and the ratios (the generation scheduler batches concurrent calls: the target is a
throughput ratio of 4 or more). Priority: `--interactive-calls` unary SafeRollout calls one after another on the
idle stack, then the same calls while a bulk job of `--bulk` prompts with the same budgets runs; it prints p50/p99
of each and the p50 ratio (target: within 2x; the scheduler serves interactive calls first and pauses bulk rows
beyond INTERVENE_BULK_BATCH_SHARE of the batch). Memory (only with `--memory-small`/`--memory-large` > 0): a small
(baseline) and a large bulk job of 2+1 tokens per rollout; prompts/s of each and their ratio, the longest any stream
got (bounded by the rollout window plus one batch), Redis memory at peak and kept, and each service's RSS growth.
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

from shared.models.embedded import embedded_model_dir  # noqa: E402
from shared.models.tiny import tiny_model  # noqa: E402
from shared.protos.intervene.v1 import common_pb2  # noqa: E402
from tests.reliability.drill import TRIGGERS_PER_ROLLOUT, DrillStack, start_drill_stack  # noqa: E402
from tests.reliability.load import (  # noqa: E402
    BulkResult,
    StreamResult,
    bulk_job,
    percentile,
    safe_rollouts,
    stream_rollouts,
    submit_bulk,
)
from tools.stack import local  # noqa: E402


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


def latency_line(label: str, results: list[StreamResult]) -> float:
    latencies = [r.seconds for r in results]
    ok = sum(r.completed for r in results)
    p50 = percentile(latencies, 0.5)
    print(f"  {label:<36} p50 {p50:6.2f}s   p99 {percentile(latencies, 0.99):6.2f}s   completed {ok}/{len(results)}")
    return p50


def streams(stack: DrillStack, args: argparse.Namespace, sampling: common_pb2.SamplingParams) -> None:
    print(
        f"SafeRolloutStream ({args.model} model, greedy, up to {args.reasoning_tokens}+{args.response_tokens} tokens, "
        f"{TRIGGERS_PER_ROLLOUT} triggers):"
    )
    started = time.perf_counter()
    alone = stream_rollouts(stack, calls=args.baseline_calls, concurrency=1, deadline_s=3600, sampling=sampling)
    sequential = stream_line("one at a time (baseline)", alone, time.perf_counter() - started)
    started = time.perf_counter()
    together = stream_rollouts(stack, calls=args.streams, concurrency=args.streams, deadline_s=3600, sampling=sampling)
    concurrent = stream_line(f"{args.streams} concurrent", together, time.perf_counter() - started)
    p50 = percentile([r.seconds for r in together], 0.5) / percentile([r.seconds for r in alone], 0.5)
    print(f"  ratio concurrent / baseline: throughput x{concurrent / sequential:.2f}, p50 latency x{p50:.1f}")


def priority(stack: DrillStack, args: argparse.Namespace, sampling: common_pb2.SamplingParams) -> None:
    print(f"SafeRollout, {args.interactive_calls} calls one after another, idle and beside a {args.bulk}-prompt job:")
    idle = latency_line("idle stack (baseline)", safe_rollouts(stack, args.interactive_calls, sampling, 3600))
    job_id = submit_bulk(stack, args.bulk, "bench-priority", sampling, offset=10**6)
    # The bulk job's rollouts reach generation through two queues: measure once generation holds some of them.
    queued = min(args.bulk, args.window)
    stack.wait_until(job_id, lambda job: job.rollouts_requested >= queued, timeout_s=600)
    time.sleep(args.bulk_head_start)
    busy_results = safe_rollouts(stack, args.interactive_calls, sampling, 3600)
    job = stack.job(job_id)
    running = job is not None and job.state == common_pb2.JOB_STATE_RUNNING
    busy = latency_line("beside the bulk job", busy_results)
    generated = job.rollouts_generated if job else 0
    print(
        f"  ratio beside bulk / idle: p50 x{busy / idle:.2f}   (bulk job still running at the end: {running}; "
        f"{generated}/{args.bulk} of its rollouts generated by then)"
    )


def memory(stack: DrillStack, args: argparse.Namespace) -> None:
    print(f"bulk jobs (window {args.window}, batch 32, 2+1 tokens per rollout):")
    small = bulk_job(stack, args.memory_small, "bench-small")
    bulk_line(small)
    large = bulk_job(stack, args.memory_large, "bench-large", offset=args.memory_small)
    bulk_line(large)
    grown = (large.redis_peak - large.redis_before) - (small.redis_peak - small.redis_before)
    print(
        f"  ratio large / small: throughput x{large.prompts_per_s / small.prompts_per_s:.2f}; Redis peak grows "
        f"{grown / (args.memory_large - args.memory_small):.0f} bytes per extra prompt"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["embedded", "tiny"], default="embedded", help="generation's model")
    parser.add_argument("--streams", type=int, default=100, help="concurrent SafeRolloutStream calls")
    parser.add_argument("--baseline-calls", type=int, default=10, help="SafeRolloutStream calls one at a time")
    parser.add_argument("--reasoning-tokens", type=int, default=64, help="reasoning budget of every call")
    parser.add_argument("--response-tokens", type=int, default=32, help="response budget of every call")
    parser.add_argument("--interactive-calls", type=int, default=8, help="SafeRollout calls, idle and beside bulk")
    parser.add_argument("--bulk", type=int, default=64, help="prompts of the bulk job beside the SafeRollout calls")
    parser.add_argument(
        "--bulk-head-start", type=float, default=5.0, help="seconds the bulk job runs before the calls start"
    )
    parser.add_argument("--max-batch", type=int, default=64, help="INTERVENE_MAX_BATCH_SEQUENCES")
    parser.add_argument("--memory-small", type=int, default=0, help="prompts of the baseline memory job (0: skip)")
    parser.add_argument("--memory-large", type=int, default=0, help="prompts of the big memory job")
    parser.add_argument("--window", type=int, default=1024, help="INTERVENE_ROLLOUT_WINDOW")
    args = parser.parse_args()
    print(f"load: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    sampling = common_pb2.SamplingParams(
        temperature=0.0, max_reasoning_tokens=args.reasoning_tokens, max_response_tokens=args.response_tokens
    )
    with tempfile.TemporaryDirectory(prefix="intervene-load-") as tmp:
        folder = Path(tmp)
        model = tiny_model(folder / "tiny-model") if args.model == "tiny" else embedded_model_dir()
        overrides = {
            "INTERVENE_QUEUE_BATCH_SIZE": "32",
            "INTERVENE_ROLLOUT_WINDOW": str(args.window),
            "INTERVENE_MAX_BATCH_SEQUENCES": str(args.max_batch),
            # Every open stream holds a server thread in intervention and in generation.
            "INTERVENE_MAX_WORKERS": str(args.streams + 16),
            "INTERVENE_PEER_TIMEOUT_SECONDS": "1800",
        }
        if args.model == "embedded":
            overrides["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
        stack = start_drill_stack(folder / "stack", Path(model), overrides)
        try:
            stream_rollouts(stack, calls=2, concurrency=2, sampling=sampling)  # warm-up, not timed
            if args.streams:
                streams(stack, args, sampling)
            if args.interactive_calls:
                priority(stack, args, sampling)
            if args.memory_small and args.memory_large:
                memory(stack, args)
        finally:
            local.down(folder / "stack")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
