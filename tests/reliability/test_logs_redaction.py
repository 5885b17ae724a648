"""Logs never carry prompt, reasoning or pair text unless INTERVENE_LOG_TEXT says so; error replies never echo it.

A canary string rides in every prompt through all four services (in this process, real gRPC, real Redis, the
tiny model; queue workers on), over safe rollouts (unary and streamed), a bulk job, the pair store's readers,
and requests that fail validation. Everything the processes log at DEBUG (the service log configuration of
`run_service`) and anything written to stdout/stderr is captured. The canary, the reasoning the model wrote and
the text of every pair must appear nowhere in it. Then the same with INTERVENE_LOG_TEXT=true and DEBUG: the
canary and pair text do appear, which shows that the capture sees what the services log.

Pairs come from the reliability drills' planted compliance cue (tests/reliability/drill.py): the rules judge also
labels, as a cue, the second step the tiny model writes for each prompt, so interventions and pairs happen.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from shared.judging.steps import split
from shared.pairs.ids import pair_id
from shared.protos.intervene.v1 import (
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    intervention_pb2,
    intervention_pb2_grpc,
    judge_pb2,
    judge_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
    queue_pb2,
)
from shared.queues import PAIR_CREATED, WorkQueue
from shared.queues.names import errors_key
from shared.rpc.logs import configure_logging
from tests.reliability.drill import planted_patterns
from tests.reliability.security_fixtures import READ_TOKEN, TOKEN, Services, start_services, wait_until_serving
from tools.redis_process import RedisProcess

pytestmark = pytest.mark.slow

CANARY = "zq-canary-violet-harbor-4417"
PROMPTS = [f"{CANARY}: how do I bake bread at home?", f"{CANARY}: why is the sky blue?"]
SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=40, max_response_tokens=6)
MIN_TEXT = 24
"""Texts at least this long are looked for in the logs (shorter word salad could match by chance)."""


@pytest.fixture(scope="module")
def cue_patterns(
    tmp_path_factory: pytest.TempPathFactory, redis_process: RedisProcess, tiny_model_folder: Path
) -> Path:
    """The shipped rules plus the second step the tiny model writes for each prompt, as a compliance cue."""
    services = start_services(redis_process.url, tiny_model_folder)
    try:
        wait_until_serving(services)
        stub = generation_pb2_grpc.GenerationServiceStub(services.channel("GenerationService", TOKEN))
        prompts = [common_pb2.Prompt(text=text) for text in PROMPTS]
        request = generation_pb2.GenerateRequest(prompts=prompts, sampling=SAMPLING)
        cues = []
        for rollout in stub.Generate(request, timeout=60).rollouts:
            steps = split(rollout.reasoning)
            assert len(steps) >= 2, "the tiny model wrote one step: no cue to plant"
            cues.append(rollout.reasoning[slice(*steps[1])].strip())
    finally:
        services.stop()
    return planted_patterns(tmp_path_factory.mktemp("rules"), cues)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def serve(redis_url: str, model: Path, patterns: Path, log_text: bool) -> Services:
    redis.Redis.from_url(redis_url).flushall()
    services = start_services(
        redis_url,
        model,
        consume_queue=True,
        common={"log_level": "DEBUG", "log_text": log_text, "log_format": "json"},
        judge={"judge_rules_patterns": str(patterns)},
    )
    configure_logging(services.servers["PairStoreService"].settings)
    wait_until_serving(services)
    return services


def exercise(services: Services, redis_url: str) -> list[str]:
    """Every path text takes through the services; returns the texts that came back (reasoning, pairs)."""
    intervention = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
    texts: list[str] = []
    spec = intervention_pb2.SafeRolloutSpec(prompt=common_pb2.Prompt(text=PROMPTS[0]), sampling=SAMPLING)
    reply = intervention.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=60)
    assert reply.interventions and reply.pair_ids, "the planted cue was cut and pairs were made"
    texts += [reply.rollout.reasoning, reply.rollout.response]
    spec = intervention_pb2.SafeRolloutSpec(prompt=common_pb2.Prompt(text=PROMPTS[1]), sampling=SAMPLING)
    events = list(intervention.SafeRolloutStream(intervention_pb2.SafeRolloutStreamRequest(spec=spec), timeout=60))
    texts += [events[-1].result.rollout.reasoning, *(event.delta.text for event in events)]

    job_id = intervention.SubmitPrompts(
        intervention_pb2.SubmitPromptsRequest(
            prompts=[common_pb2.Prompt(text=text) for text in PROMPTS], sampling=SAMPLING, name="canary"
        ),
        timeout=60,
    ).job_id
    for update in intervention.WatchJob(intervention_pb2.WatchJobRequest(job_id=job_id), timeout=120):
        job = update.job
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.pairs_created > 0, job

    reader = pairstore_pb2_grpc.PairStoreServiceStub(services.channel("PairStoreService", READ_TOKEN))
    pairs = [reply.pair for reply in reader.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=60)]
    # Pair ids are content hashes: the job's pairs are the safe rollouts' again (same prompts, greedy decoding).
    assert pairs and {pair.id for pair in pairs} >= set(reply.pair_ids)
    reader.ListPairs(pairstore_pb2.ListPairsRequest(), timeout=60)
    reader.GetPair(pairstore_pb2.GetPairRequest(id=pairs[0].id), timeout=60)
    for pair in pairs:
        assert CANARY in pair.prompt.text
        texts += [pair.prefix, pair.chosen, pair.rejected, pair.context]

    refused = refused_requests(services)
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in refused), refused
    assert not [details for _, details in refused if CANARY in details], "an error reply echoes the request text"
    # A queued pair the store's consumer must refuse: the failure is recorded, the text stays out of the log.
    client = redis.Redis.from_url(redis_url)
    poison = common_pb2.Pair(prompt=common_pb2.Prompt(text=PROMPTS[0]), context="c", chosen=CANARY, rejected=CANARY)
    WorkQueue(client, PAIR_CREATED).produce(queue_pb2.PairCreated(pair=poison))
    deadline = time.monotonic() + 30
    while not client.hlen(errors_key(PAIR_CREATED)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.hlen(errors_key(PAIR_CREATED)), "the pair store's consumer took the poison"
    return [text.strip() for text in texts if len(text.strip()) >= MIN_TEXT]


def refused_requests(services: Services) -> list[tuple[grpc.StatusCode, str]]:
    """Requests carrying the canary that fail validation: (code, details) of each."""
    long_prompt = common_pb2.Prompt(text=f"{CANARY} " * 3000)
    bad_pair = common_pb2.Pair(prompt=common_pb2.Prompt(text=CANARY), context=CANARY, chosen=CANARY, rejected=CANARY)
    bad_pair.kind = common_pb2.PAIR_KIND_HARMFUL
    bad_pair.id = pair_id(bad_pair)
    calls = [
        lambda: intervention_pb2_grpc.InterventionServiceStub(
            services.channel("InterventionService", TOKEN)
        ).SafeRollout(
            intervention_pb2.SafeRolloutRequest(spec=intervention_pb2.SafeRolloutSpec(prompt=long_prompt)), timeout=30
        ),
        lambda: intervention_pb2_grpc.InterventionServiceStub(
            services.channel("InterventionService", TOKEN)
        ).SubmitPrompts(intervention_pb2.SubmitPromptsRequest(prompts=[long_prompt]), timeout=30),
        lambda: judge_pb2_grpc.JudgeServiceStub(services.channel("JudgeService", TOKEN)).JudgeTrace(
            judge_pb2.JudgeTraceRequest(trace=judge_pb2.Trace(prompt=CANARY, reasoning=CANARY * 10_000)), timeout=30
        ),
        lambda: pairstore_pb2_grpc.PairStoreServiceStub(services.channel("PairStoreService", TOKEN)).PutPairs(
            pairstore_pb2.PutPairsRequest(pairs=[bad_pair]), timeout=30
        ),
        lambda: generation_pb2_grpc.GenerationServiceStub(services.channel("GenerationService", TOKEN)).Generate(
            generation_pb2.GenerateRequest(prompts=[long_prompt]), timeout=30
        ),
    ]
    results = []
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        results.append((error.value.code(), error.value.details()))
    return results


def run_and_capture(
    redis_process: RedisProcess,
    tiny_model_folder: Path,
    cue_patterns: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    log_text: bool,
) -> tuple[list[str], str]:
    """Exercises the services at DEBUG level; returns the texts they returned and everything they logged."""
    caplog.set_level(logging.DEBUG)
    services = serve(redis_process.url, tiny_model_folder, cue_patterns, log_text=log_text)
    try:
        texts = exercise(services, redis_process.url)
    finally:
        services.stop()
    captured = capfd.readouterr()
    return texts, captured.out + captured.err + caplog.text


def test_logs_hold_no_request_text_by_default(
    redis_process: RedisProcess,
    tiny_model_folder: Path,
    cue_patterns: Path,
    restore_logging: None,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts, logs = run_and_capture(redis_process, tiny_model_folder, cue_patterns, capfd, caplog, log_text=False)
    assert '"level": "DEBUG"' in logs and "intervene.v1.InterventionService" in logs, "the capture saw the logs"
    assert CANARY not in logs
    assert texts, "the services returned reasoning and pairs to look for"
    leaked = [text[:60] for text in texts if text in logs or json.dumps(text, ensure_ascii=False)[1:-1] in logs]
    assert not leaked, f"{len(leaked)} texts of reasoning or pairs are in the logs"


def test_log_text_puts_request_and_pair_text_in_debug_logs(
    redis_process: RedisProcess,
    tiny_model_folder: Path,
    cue_patterns: Path,
    restore_logging: None,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts, logs = run_and_capture(redis_process, tiny_model_folder, cue_patterns, capfd, caplog, log_text=True)
    assert "INTERVENE_LOG_TEXT is on" in logs
    assert CANARY in logs
    assert any(text in logs for text in texts), "pair or reasoning text is logged when asked for"
