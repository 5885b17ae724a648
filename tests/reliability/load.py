"""Load drivers shared by tests/reliability/test_load.py and bench/load.py: many concurrent SafeRolloutStream
calls against the drill stack, and one big bulk job watched for queue lengths, Redis memory and service RSS.

What they return are measurements; the test asserts on the counts and bounds (never on timings), the benchmark
prints the timings.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from shared.protos.intervene.v1 import common_pb2, intervention_pb2
from shared.queues import ALL_STREAMS
from tests.reliability.drill import PROMPTS, SAMPLING, DrillStack

# A bulk job's rollouts cost almost nothing to generate: the load is the pipeline's own work.
BULK_SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=2, max_response_tokens=1)


@dataclass(frozen=True)
class StreamResult:
    """One SafeRolloutStream call: its final status, how long it took, and whether it ended with a result."""

    code: grpc.StatusCode
    details: str
    seconds: float
    completed: bool


def stream_rollouts(
    stack: DrillStack,
    calls: int,
    concurrency: int,
    deadline_s: float = 300,
    sampling: common_pb2.SamplingParams = SAMPLING,
) -> list[StreamResult]:
    """`calls` SafeRolloutStream calls, `concurrency` at a time, each with a deadline; every one ends somehow."""
    stub = stack.intervention

    def one(index: int) -> StreamResult:
        spec = intervention_pb2.SafeRolloutSpec(
            prompt=common_pb2.Prompt(text=PROMPTS[index % len(PROMPTS)]), sampling=sampling, max_rounds=1
        )
        started = time.perf_counter()
        last = None
        try:
            for event in stub.SafeRolloutStream(
                intervention_pb2.SafeRolloutStreamRequest(spec=spec), timeout=deadline_s
            ):
                last = event
        except grpc.RpcError as error:
            return StreamResult(error.code(), error.details() or "", time.perf_counter() - started, False)
        completed = last is not None and last.WhichOneof("event") == "result"
        return StreamResult(grpc.StatusCode.OK, "", time.perf_counter() - started, completed)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(calls)))


def safe_rollouts(
    stack: DrillStack, calls: int, sampling: common_pb2.SamplingParams, deadline_s: float = 600
) -> list[StreamResult]:
    """`calls` unary SafeRollout calls, one after another (so each measures the service, not its neighbours)."""
    results = []
    for index in range(calls):
        spec = intervention_pb2.SafeRolloutSpec(
            prompt=common_pb2.Prompt(text=PROMPTS[index % len(PROMPTS)]), sampling=sampling, max_rounds=1
        )
        started = time.perf_counter()
        try:
            stack.intervention.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=deadline_s)
        except grpc.RpcError as error:
            results.append(StreamResult(error.code(), error.details() or "", time.perf_counter() - started, False))
            continue
        results.append(StreamResult(grpc.StatusCode.OK, "", time.perf_counter() - started, True))
    return results


def submit_bulk(
    stack: DrillStack, count: int, name: str, sampling: common_pb2.SamplingParams = BULK_SAMPLING, offset: int = 0
) -> str:
    """Queues `count` distinct prompts as one job; returns its id."""
    request = intervention_pb2.SubmitPromptsRequest(
        prompts=[common_pb2.Prompt(text=text) for text in bulk_prompts(count, offset)],
        sampling=sampling,
        max_rounds=1,
        name=name,
    )
    return stack.intervention.SubmitPrompts(request, timeout=300).job_id


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile (0.5 for p50, 0.99 for p99), inclusive method."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


@dataclass
class BulkResult:
    """One bulk job under watch."""

    prompts: int
    seconds: float
    job: common_pb2.Job
    peak_stream_lengths: dict[str, int]
    redis_before: int
    redis_peak: int
    redis_after: int
    rss_before: dict[str, int]
    rss_peak: dict[str, int] = field(default_factory=dict)

    @property
    def prompts_per_s(self) -> float:
        return self.prompts / self.seconds


def bulk_prompts(count: int, offset: int = 0) -> list[str]:
    """`count` distinct harmless prompts."""
    return [f"Kitchen question {offset + i}: how long should bread dough rest?" for i in range(count)]


def bulk_job(stack: DrillStack, count: int, name: str, offset: int = 0) -> BulkResult:
    """Submits `count` prompts as one job and samples queue lengths, Redis memory and RSS until it is done."""
    client = stack.redis(timeout_s=30)
    pids = {name: record.pid for name, record in stack.state.services.items()}
    result = BulkResult(
        prompts=count,
        seconds=0.0,
        job=common_pb2.Job(),
        peak_stream_lengths=dict.fromkeys(ALL_STREAMS, 0),
        redis_before=int(client.info("memory")["used_memory"]),
        redis_peak=0,
        redis_after=0,
        rss_before={service: rss_bytes(pid) for service, pid in pids.items()},
    )
    result.rss_peak = dict(result.rss_before)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            pipe = client.pipeline(transaction=False)
            for stream in ALL_STREAMS:
                pipe.xlen(stream)
            pipe.info("memory")
            *lengths, memory = pipe.execute()
            for stream, length in zip(ALL_STREAMS, lengths, strict=True):
                result.peak_stream_lengths[stream] = max(result.peak_stream_lengths[stream], length)
            result.redis_peak = max(result.redis_peak, int(memory["used_memory"]))
            for service, pid in pids.items():
                result.rss_peak[service] = max(result.rss_peak[service], rss_bytes(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.perf_counter()
    watcher.start()
    job_id = submit_bulk(stack, count, name, offset=offset)
    try:
        stack.wait_until(job_id, lambda job: job.state != common_pb2.JOB_STATE_RUNNING, timeout_s=3600)
    finally:
        result.seconds = time.perf_counter() - started
        done.set()
        watcher.join()
    job = stack.job(job_id)
    assert job is not None
    result.job = job
    result.redis_after = int(client.info("memory")["used_memory"])
    return result


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
