"""Load: 100 concurrent SafeRolloutStream calls all end with their result, and a bulk job far bigger than the
rollout window flows through queues that never hold more than the window, with memory that does not grow with
the number of prompts beyond the job's own records.

CI runs the bulk job with 3,000 prompts (against a 300-prompt job for the memory comparison) on a window of 256;
`bench/load.py` runs 50,000. The figures are printed (run with -s); only counts and bounds are asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shared.protos.intervene.v1 import common_pb2
from shared.queues import ALL_STREAMS
from tests.reliability.drill import DrillStack, start_drill_stack
from tests.reliability.load import bulk_job, percentile, stream_rollouts
from tools.stack import local

pytestmark = pytest.mark.slow

WINDOW = 256
# A consumer acknowledges a handled batch with its next read, so a stream may hold one batch beyond the window.
BATCH = 32
STREAMS = 100
SMALL, LARGE = 300, 3000


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_folder: Path) -> Iterator[DrillStack]:
    folder = tmp_path_factory.mktemp("load-stack")
    overrides = {"INTERVENE_QUEUE_BATCH_SIZE": str(BATCH), "INTERVENE_ROLLOUT_WINDOW": str(WINDOW)}
    stack = start_drill_stack(folder, tiny_model_folder, overrides)
    try:
        yield stack
    finally:
        local.down(folder)


def test_100_concurrent_safe_rollout_streams_all_end_with_a_result(load_stack: DrillStack) -> None:
    results = stream_rollouts(load_stack, calls=STREAMS, concurrency=STREAMS)
    latencies = [r.seconds for r in results]
    print(
        f"{STREAMS} concurrent SafeRolloutStream: p50 {percentile(latencies, 0.5):.2f}s "
        f"p99 {percentile(latencies, 0.99):.2f}s, {STREAMS / max(latencies):.1f} streams/s"
    )
    failures = [(r.code.name, r.details) for r in results if r.code != grpc.StatusCode.OK]
    assert not failures, failures
    assert all(r.completed for r in results), "every stream ends with its result event"


def test_bulk_job_memory_is_bounded_by_the_window(load_stack: DrillStack) -> None:
    small = bulk_job(load_stack, SMALL, "load-small")
    large = bulk_job(load_stack, LARGE, "load-large", offset=SMALL)
    for run in (small, large):
        job = run.job
        peaks = {stream: length for stream, length in run.peak_stream_lengths.items() if length}
        rss = {service: round((run.rss_peak[service] - run.rss_before[service]) / 1e6, 1) for service in run.rss_peak}
        print(
            f"bulk job of {run.prompts} prompts: {run.prompts_per_s:.0f} prompts/s, peak stream lengths {peaks}, "
            f"Redis +{(run.redis_peak - run.redis_before) / 1e6:.1f} MB at peak, "
            f"+{(run.redis_after - run.redis_before) / 1e6:.1f} MB kept, RSS growth {rss} MB"
        )
        assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.failed_items == 0
        assert job.rollouts_requested == job.rollouts_judged == run.prompts
        for stream in ALL_STREAMS:
            assert run.peak_stream_lengths[stream] <= WINDOW + BATCH, (stream, run.peak_stream_lengths[stream])
    grown = (large.redis_peak - large.redis_before) - (small.redis_peak - small.redis_before)
    per_prompt = grown / (LARGE - SMALL)
    print(f"Redis peak growth per extra prompt: {per_prompt:.0f} bytes")
