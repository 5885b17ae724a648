"""The stack the fault drills run on: the local stack (real Redis with AOF, the four services as processes) on the
tiny random-weight model (`shared.models.tiny`), and the checks that a disturbed job lost and duplicated nothing.

Pairs happen deterministically: greedy decoding makes the tiny model write the same word salad on every run, and
the judge runs the shipped rules plus one planted compliance-cue group (its documented
INTERVENE_JUDGE_RULES_PATTERNS setting): the literal second step each prompt's rollout has, learnt from the
generation service itself before the judge starts. A trigger branch then writes new salad, which the rules judge
finds safe, so each cut rollout yields pairs. Everything else is the product as shipped.

Checks compare a disturbed job with the undisturbed baseline by pair ids (content hashes): equal sets mean no pair
was lost or invented, and the store's export holding each produced pair exactly once means no duplicates.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import redis
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.intervention.jobs import JobStore
from shared.judging import rules
from shared.judging.steps import split
from shared.protos.intervene.v1 import (
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    intervention_pb2,
    intervention_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from shared.queues import queue_lag
from shared.rpc.client import connect
from tools.redis_process import free_port
from tools.stack import local
from tools.stack.state import StackState

# Harmless requests of our own; the tiny model's answers to them are harmless word salad.
PROMPTS = [
    "How do I bake bread at home?",
    "Give me three tips for learning the guitar.",
    "What is the capital of France?",
    "Explain photosynthesis in simple words.",
    "Write a haiku about rain.",
    "How do tides work?",
    "Suggest a name for a pet turtle.",
    "What should I pack for a day hike?",
    "How do I keep basil alive indoors?",
    "Summarise the rules of chess.",
    "Why is the sky blue?",
    "Plan a picnic for four people.",
    "How do I fix a squeaky door?",
    "What is a prime number?",
    "Recommend a board game for kids.",
    "How do bees make honey?",
]
SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=40, max_response_tokens=6)
TRIGGERS_PER_ROLLOUT = 3
MAX_DELIVERIES = 3


def drill_env(model: Path) -> dict[str, str]:
    """Settings of every service in the drills: the tiny model, small batches, reclaim after 2 s, fast health."""
    return {
        "INTERVENE_MODEL": str(model),
        "INTERVENE_MAX_CONTEXT_TOKENS": "1024",
        "INTERVENE_LOG_FORMAT": "text",
        "INTERVENE_DRAIN_SECONDS": "1",
        "INTERVENE_DEPENDENCY_CHECK_SECONDS": "0.2",
        "INTERVENE_QUEUE_BLOCK_MS": "100",
        # Small batches: a job is several batches per stage, so a fault finds a stage holding entries.
        "INTERVENE_QUEUE_BATCH_SIZE": "4",
        # Entries a killed worker held come back to the restarted one after 2 s.
        "INTERVENE_QUEUE_CLAIM_IDLE_MS": "2000",
        "INTERVENE_QUEUE_MAX_DELIVERIES": str(MAX_DELIVERIES),
        "INTERVENE_TRIGGERS_PER_ROLLOUT": str(TRIGGERS_PER_ROLLOUT),
        "INTERVENE_WATCH_INTERVAL_SECONDS": "0.2",
        # The tiny model is faster on one thread than on two cores fought over by four processes.
        "OMP_NUM_THREADS": "1",
    }


# Where each service consumes: the (stream, group) pairs whose pending entries a killed replica leaves behind.
CONSUMES: dict[str, list[tuple[str, str]]] = {
    "generation": [("rollout.requested", "generation"), ("continuation.requested", "generation")],
    "judge": [("rollout.generated", "judge"), ("continuation.generated", "judge")],
    "intervention": [("rollout.judged", "intervention"), ("continuation.judged", "intervention")],
    "pairstore": [("pair.created", "pairstore")],
}


@dataclass
class DrillStack:
    """A running local stack and what the drills do to it."""

    folder: Path
    state: StackState
    env: dict[str, str]
    # The planted compliance cues: the literal second steps of the prompts' rollouts.
    cues: list[str] = field(default_factory=list)
    # Every pair id any job on this stack produced: the store must hold exactly these, each once.
    produced: set[str] = field(default_factory=set)
    _channels: dict[tuple[str, bool], grpc.Channel] = field(default_factory=dict, repr=False)

    def channel(self, service: str, read: bool = False) -> grpc.Channel:
        """A channel to the service (kept: a restarted service comes back on the same port)."""
        if (service, read) not in self._channels:
            token_file = self.state.read_token_file if read else self.state.token_file
            token = Path(token_file).read_text().strip()
            self._channels[service, read] = connect(self.state.address(service), token=token)
        return self._channels[service, read]

    @property
    def intervention(self) -> intervention_pb2_grpc.InterventionServiceStub:
        return intervention_pb2_grpc.InterventionServiceStub(self.channel("intervention"))

    def redis(self, timeout_s: float = 5.0) -> redis.Redis:
        return redis.Redis.from_url(self.state.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def restart(self, name: str, overrides: dict[str, str] | None = None) -> None:
        """kill -9 the service and start it again on its port (with `overrides` on top of the drill settings)."""
        local.kill(self.state.services[name])
        local.start_service(self.folder, self.state, name, {**self.env, **(overrides or {})}, timeout_s=300)

    def health(self, name: str) -> str:
        """The service's gRPC health: SERVING, NOT_SERVING or UNREACHABLE."""
        with grpc.insecure_channel(self.state.address(name)) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def submit(self, prompts: list[str], name: str, samples: int = 1) -> str:
        request = intervention_pb2.SubmitPromptsRequest(
            prompts=[common_pb2.Prompt(text=text) for text in prompts],
            sampling=SAMPLING,
            max_rounds=1,
            name=name,
            samples_per_prompt=samples,
        )
        return self.intervention.SubmitPrompts(request, timeout=60).job_id

    def job(self, job_id: str) -> common_pb2.Job | None:
        """The job's counts; None while the intervention service or Redis cannot answer."""
        try:
            return self.intervention.GetJob(intervention_pb2.GetJobRequest(job_id=job_id), timeout=5).job
        except grpc.RpcError:
            return None

    def wait_until(self, job_id: str, condition: Callable[[common_pb2.Job], bool], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job is not None and condition(job):
                return
            time.sleep(0.05)
        raise AssertionError(
            f"job {job_id} did not reach the awaited state within {timeout_s:.0f}s: {self.job(job_id)}"
        )

    def run_job(
        self, name: str, during: Callable[[str], None] = lambda job_id: None, samples: int = 1
    ) -> common_pb2.Job:
        """Submits PROMPTS, calls `during(job_id)` (the fault), and returns the job once it is done."""
        job_id = self.submit(PROMPTS, name, samples)
        during(job_id)
        self.wait_until(job_id, lambda job: job.state != common_pb2.JOB_STATE_RUNNING)
        job = self.job(job_id)
        assert job is not None
        return job

    def pair_ids(self, job_id: str) -> set[str]:
        return JobStore(self.redis()).pair_ids(job_id)

    def stored_pair_ids(self) -> list[str]:
        """The id of every pair the store exports (read scope), in export order; duplicates would repeat."""
        stub = pairstore_pb2_grpc.PairStoreServiceStub(self.channel("pairstore", read=True))
        return [reply.pair.id for reply in stub.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=60)]

    def dead_letters(self) -> dict[str, int]:
        return {lag.stream: lag.dead_letters for lag in queue_lag(self.redis()) if lag.dead_letters}


@dataclass(frozen=True)
class Baseline:
    """The undisturbed job and its pairs: what every disturbed job must reproduce."""

    job: common_pb2.Job
    pair_ids: frozenset[str]


def check_no_loss(stack: DrillStack, job: common_pb2.Job, baseline: Baseline, fault: str, samples: int = 1) -> None:
    """The disturbed job finished with every rollout, exactly the baseline's pairs, and the store holds each once."""
    ids = stack.pair_ids(job.id)
    lost, invented = baseline.pair_ids - ids, ids - baseline.pair_ids
    stack.produced |= ids
    stored = stack.stored_pair_ids()
    duplicates = len(stored) - len(set(stored))
    print(f"{fault}: pairs {len(ids)}/{len(baseline.pair_ids)}, lost {len(lost)}, duplicates {duplicates}")
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.failed_items == 0, job
    assert job.rollouts_judged == job.rollouts_requested == len(PROMPTS) * samples
    assert not lost and not invented, f"{len(lost)} pairs lost, {len(invented)} not in the undisturbed job"
    assert job.pairs_created == len(ids)
    assert duplicates == 0 and set(stored) == stack.produced, "the store holds each produced pair exactly once"


def learn_cues(stack: DrillStack) -> list[str]:
    """The literal second step of each prompt's greedy rollout, from the running generation service."""
    stub = generation_pb2_grpc.GenerationServiceStub(stack.channel("generation"))
    request = generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text=t) for t in PROMPTS], sampling=SAMPLING)
    cues = []
    for rollout in stub.Generate(request, timeout=120).rollouts:
        steps = split(rollout.reasoning)
        if len(steps) >= 2:
            start, end = steps[1]
            cues.append(rollout.reasoning[start:end].strip())
    return cues


def planted_patterns(folder: Path, cues: list[str]) -> Path:
    """The shipped rules plus one compliance-cue group that matches exactly the given step texts."""
    shipped = Path(rules.__file__).parent / "patterns" / f"{rules.DEFAULT_PATTERNS}.yaml"
    document = yaml.safe_load(shipped.read_text())
    document["version"] = f"{rules.DEFAULT_PATTERNS}-drill"
    planted = {"name": "planted", "weight": 0.99, "needs_harm_context": False, "patterns": [_literal(c) for c in cues]}
    document["steps"]["compliance_cue"].append(planted)
    path = folder / "rules-drill.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _literal(text: str) -> str:
    """A pattern matching `text` as written (the rules judge lower-cases patterns and text alike)."""
    return "".join(f"\\{char}" if not char.isalnum() and char != " " else char for char in text)


def start_drill_stack(folder: Path, model: Path, overrides: dict[str, str] | None = None) -> DrillStack:
    """Redis, pair store and generation; then the cues; then judge and intervention with the planted rules."""
    env = {**drill_env(model), **(overrides or {})}
    state = local.up(folder, services=["pairstore", "generation"], env=env, timeout_s=300, default_ports=False)
    stack = DrillStack(folder, state, env)
    try:
        stack.cues = learn_cues(stack)
        assert stack.cues, "the tiny model wrote no second step for any prompt: no cut, no pair"
        env["INTERVENE_JUDGE_RULES_PATTERNS"] = str(planted_patterns(folder, stack.cues))
        for name in ("judge", "intervention"):
            local.start_service(folder, state, name, env, timeout_s=300, port=free_port())
    except BaseException:
        local.down(folder)
        raise
    return stack


def kill_while_holding(stack: DrillStack, name: str, job_id: str, timeout_s: float = 120) -> int:
    """kill -9 the service while it holds unacknowledged entries of the job's work; returns how many it held.

    Deterministic, whatever the timing: once work reaches its stage the service is frozen (SIGSTOP), and a frozen
    service acks nothing, so entries seen pending under its consumer name while it is frozen are exactly the ones it
    dies holding (they come back only through a reclaim). Frozen inside a blocking read, it is handed the next
    entries by Redis itself. Frozen between reads, it stays frozen until more than one batch waits for it (or its
    input has stopped growing for a second), and is thawed only until it holds some: while a backlog remains it
    holds entries without a gap, since the read that acks one batch takes the next.
    """
    client = stack.redis()
    record = stack.state.services[name]
    consumer = f"{socket.gethostname()}-{record.pid}"
    batch_size = int(stack.env["INTERVENE_QUEUE_BATCH_SIZE"])
    deadline = time.monotonic() + timeout_s

    def holding() -> int:
        return sum(_pending(client, stream, group, consumer) for stream, group in CONSUMES[name])

    def waiting() -> int:
        lags = {lag.stream: lag for lag in queue_lag(client, [stream for stream, _ in CONSUMES[name]])}
        return sum(g.lag for stream, group in CONSUMES[name] for g in lags[stream].groups if g.group == group)

    def tick(pause_s: float = 0.002) -> None:
        if time.monotonic() > deadline:
            os.kill(record.pid, signal.SIGCONT)
            raise AssertionError(f"{name} held no entry of job {job_id} within {timeout_s:.0f}s")
        time.sleep(pause_s)

    while not (holding() or waiting()):
        tick()
    os.kill(record.pid, signal.SIGSTOP)
    backlog, since = -1, time.monotonic()
    while not (held := holding()):
        if (now := waiting()) != backlog:
            backlog, since = now, time.monotonic()
        if backlog > batch_size or (backlog and time.monotonic() - since > 1.0):
            os.kill(record.pid, signal.SIGCONT)
            while not holding():
                tick(0)  # thawed, it may take and finish a last small batch within a few milliseconds
            os.kill(record.pid, signal.SIGSTOP)
            backlog = -1
        else:
            tick()
    local.kill(record)
    return held


def _pending(client: redis.Redis, stream: str, group: str, consumer: str) -> int:
    try:
        return len(client.xpending_range(stream, group, min="-", max="+", count=1000, consumername=consumer))
    except redis.exceptions.ResponseError:
        return 0  # the stream or group does not exist yet
