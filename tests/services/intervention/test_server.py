"""The intervention service over real gRPC and a real redis-server: bulk jobs through its own pipeline
workers (generation and judge played by scripted stages on the real streams), bad input, and SafeRollout's
failure modes. The end-to-end test in tests/e2e runs the real generation, judge and pair store services.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from services.intervention.server import build_spec
from services.pairstore.server import build_spec as build_pairstore
from shared.config.base import QueueSettings
from shared.config.intervention import InterventionSettings
from shared.config.pairstore import PairStoreSettings
from shared.protos.intervene.v1 import (
    common_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server
from tests.shared.intervention.stages import ScriptedStages
from tools.redis_process import free_port

TOKEN = "call-token"


def serve(redis_url: str, **overrides) -> RunningServer:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: peers are down
    settings = InterventionSettings(
        port=0,
        redis_url=redis_url,
        auth_token=TOKEN,
        dependency_check_seconds=0.1,
        generation_address=dead,
        judge_address=dead,
        pairstore_address=None,
        triggers_per_rollout=2,
        **overrides,
    )
    return start_server(build_spec(settings, QueueSettings(block_ms=100, claim_idle_ms=2000)), settings)


@pytest.fixture
def server(redis_url: str) -> Iterator[RunningServer]:
    running = serve(redis_url, max_rounds=2, watch_interval_seconds=0.1)
    yield running
    running.stop(grace=None)


@pytest.fixture
def pairstore(redis_url: str) -> Iterator[RunningServer]:
    """The real pair store: a job is done once it has taken the job's pairs from pair.created."""
    settings = PairStoreSettings(port=0, redis_url=redis_url, auth_disabled=True)
    running = start_server(build_pairstore(settings, QueueSettings(block_ms=100)), settings)
    yield running
    running.stop(grace=None)


def stub(server: RunningServer) -> intervention_pb2_grpc.InterventionServiceStub:
    return intervention_pb2_grpc.InterventionServiceStub(connect(server.address, token=TOKEN))


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


def run_stages(redis_url: str, stop: threading.Event) -> threading.Thread:
    stages = ScriptedStages(redis.Redis.from_url(redis_url))

    def loop() -> None:
        while not stop.is_set():
            if not stages.run_once():
                time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_job_runs_through_the_service_workers(server: RunningServer, pairstore: RunningServer, redis_url: str) -> None:
    client = stub(server)
    reply = client.SubmitPrompts(
        intervention_pb2.SubmitPromptsRequest(
            prompts=[common_pb2.Prompt(text=t) for t in ("harm-safe-branch", "harm-two-rounds", "fine")], name="unit"
        )
    )
    assert reply.prompts == 3 and reply.job_id.startswith("j-")
    stop = threading.Event()
    run_stages(redis_url, stop)
    try:
        updates = list(client.WatchJob(intervention_pb2.WatchJobRequest(job_id=reply.job_id), timeout=60))
    finally:
        stop.set()
    job = updates[-1].job
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.HasField("finished_at")
    # Two safe branches per intervention; the pair checks keep one pair per rollout.
    assert (job.rollouts_judged, job.rollouts_unsafe, job.pairs_created) == (3, 2, 2)
    assert dict(job.pairs_dropped) == {"over_cap": 2}
    assert [(r.round, r.tried, r.succeeded) for r in job.rounds] == [(1, 2, 1), (2, 1, 1)]
    assert client.GetJob(intervention_pb2.GetJobRequest(job_id=reply.job_id)).job == job
    stats = pairstore_pb2_grpc.PairStoreServiceStub(connect(pairstore.address)).Stats(
        pairstore_pb2.StatsRequest(filter=pairstore_pb2.PairFilter(job_id=reply.job_id))
    )
    assert stats.total == job.pairs_created, "done means the pair store holds every pair"


def test_submit_rejects_bad_input(server: RunningServer, tmp_path: Path) -> None:
    client = stub(server)

    def submit(**fields):
        return status_of(lambda: client.SubmitPrompts(intervention_pb2.SubmitPromptsRequest(**fields)))

    assert submit() == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "prompts: is empty and no dataset is named; give prompts or a dataset",
    )
    code, message = submit(prompts=[common_pb2.Prompt(text="  ")])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("prompts[0].text: is empty")
    code, message = submit(prompts=[common_pb2.Prompt(text="x" * 20_000)])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "the limit is 16000" in message
    code, message = submit(dataset="no-such-set")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "neither a known dataset" in message
    template = tmp_path / "template.txt"
    template.write_text("Pretend you are a pirate.")
    code, message = submit(prompts=[common_pb2.Prompt(text="hi")], template_file=str(template))
    assert (
        code == grpc.StatusCode.INVALID_ARGUMENT
        and message.startswith("template_file:")
        and "[INSERT PROMPT HERE]" in message
    )
    code, message = submit(prompts=[common_pb2.Prompt(text="hi")], max_rounds=99)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("max_rounds: is 99")
    code, message = submit(prompts=[common_pb2.Prompt(text="hi")], benign=True, samples_per_prompt=1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("samples_per_prompt")
    code, _ = status_of(lambda: client.GetJob(intervention_pb2.GetJobRequest(job_id="j-missing")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_template_wrapping_and_file_datasets(server: RunningServer, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("question,topic\nfine,a\nfine too,b\n")
    template = tmp_path / "t.txt"
    template.write_text("Story time: [INSERT PROMPT HERE] The end.")
    reply = stub(server).SubmitPrompts(
        intervention_pb2.SubmitPromptsRequest(dataset=str(prompts), text_column="question", template_file=str(template))
    )
    assert reply.prompts == 2


def test_back_pressure_refuses_the_whole_job(redis_url: str) -> None:
    settings = InterventionSettings(port=0, redis_url=redis_url, auth_disabled=True, consume_queue=False)
    running = start_server(build_spec(settings, QueueSettings(max_length=3)), settings)
    try:
        client = intervention_pb2_grpc.InterventionServiceStub(connect(running.address))
        request = intervention_pb2.SubmitPromptsRequest(prompts=[common_pb2.Prompt(text=f"p{i}") for i in range(4)])
        code, message = status_of(lambda: client.SubmitPrompts(request))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "room for 3 entries" in message
        assert redis.Redis.from_url(redis_url).xlen("rollout.requested") == 0, "nothing half-submitted"
    finally:
        running.stop(grace=None)


def test_safe_rollout_bad_input_short_deadline_and_down_peers(server: RunningServer) -> None:
    client = stub(server)

    def call(spec, timeout=30.0):
        return status_of(lambda: client.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=timeout))

    code, message = call(intervention_pb2.SafeRolloutSpec())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("spec.prompt.text: is empty")
    prompt = common_pb2.Prompt(text="hello")
    code, message = call(intervention_pb2.SafeRolloutSpec(prompt=prompt, trigger_ids=["nope"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown trigger ids" in message
    code, message = call(intervention_pb2.SafeRolloutSpec(prompt=prompt), timeout=0.5)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "INTERVENE_MIN_DEADLINE_SECONDS" in message
    code, message = call(intervention_pb2.SafeRolloutSpec(prompt=prompt), timeout=5)
    assert code == grpc.StatusCode.UNAVAILABLE and "nothing returned" in message
    stream = client.SafeRolloutStream(
        intervention_pb2.SafeRolloutStreamRequest(spec=intervention_pb2.SafeRolloutSpec(prompt=prompt)), timeout=5
    )
    code, _ = status_of(lambda: list(stream))
    assert code == grpc.StatusCode.UNAVAILABLE
