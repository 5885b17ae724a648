"""A bulk job under faults keeps every pair and duplicates none: kill -9 of each service type, Redis killed and
restarted (AOF), Redis unreachable for 10 s, a judge whose back end times out on some items, the pair store down
during a job bigger than the rollout window, and kill -9 of the job feeder part-way through such a job.

Each disturbed job must end SUCCEEDED with no failed rollout, produce exactly the undisturbed job's pair ids
(greedy decoding on the tiny model makes that set the same on every run), leave the store holding each pair
once, and leave no dead letter behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

import pytest

from shared.intervention.jobs import JobStore
from shared.protos.intervene.v1 import common_pb2
from tests.reliability.drill import (
    PROMPTS,
    TRIGGERS_PER_ROLLOUT,
    Baseline,
    DrillStack,
    check_no_loss,
    kill_while_holding,
)
from tests.shared.judging.chat_server import ScriptedServer
from tools.stack import local

pytestmark = pytest.mark.slow


def check(stack: DrillStack, job: common_pb2.Job, baseline: Baseline, fault: str, samples: int = 1) -> None:
    check_no_loss(stack, job, baseline, fault, samples)
    assert stack.dead_letters() == {}, "nothing was given up on"


@pytest.mark.parametrize("service", ["generation", "judge", "intervention", "pairstore"])
def test_job_survives_kill_9(drill_stack: DrillStack, baseline: Baseline, service: str) -> None:
    held: list[int] = []

    def kill_and_restart(job_id: str) -> None:
        held.append(kill_while_holding(drill_stack, service, job_id))
        local.start_service(drill_stack.folder, drill_stack.state, service, drill_stack.env)

    job = drill_stack.run_job(f"kill-{service}", during=kill_and_restart)
    print(f"kill -9 {service}: it held {held[0]} unacknowledged entries")
    assert held[0] > 0, "the kill found the service holding entries, so they had to be reclaimed"
    check(drill_stack, job, baseline, f"kill -9 {service}")


def started(job: common_pb2.Job) -> bool:
    """Mid-job: some rollouts generated, not all judged."""
    return job.rollouts_generated >= 4 and job.rollouts_judged < len(PROMPTS)


def test_job_survives_redis_kill_9_and_restart(drill_stack: DrillStack, baseline: Baseline) -> None:
    def restart_redis(job_id: str) -> None:
        drill_stack.wait_until(job_id, started)
        local.kill(drill_stack.state.redis)
        local.start_redis(drill_stack.folder, drill_stack.state)

    job = drill_stack.run_job("redis-restart", during=restart_redis)
    check(drill_stack, job, baseline, "kill -9 redis, restart from AOF")


def test_job_survives_redis_unreachable_for_10_s(drill_stack: DrillStack, baseline: Baseline) -> None:
    services = list(drill_stack.state.services)
    seen: dict[str, set[str]] = {name: set() for name in services}

    def freeze_redis(job_id: str) -> None:
        drill_stack.wait_until(job_id, started)
        os.kill(drill_stack.state.redis.pid, signal.SIGSTOP)
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                for name in services:
                    seen[name].add(drill_stack.health(name))
                time.sleep(0.2)
        finally:
            os.kill(drill_stack.state.redis.pid, signal.SIGCONT)

    job = drill_stack.run_job("redis-unreachable", during=freeze_redis)
    print(f"health while Redis was unreachable: {seen}")
    assert all("NOT_SERVING" in statuses for statuses in seen.values()), seen
    assert {name: drill_stack.health(name) for name in services} == dict.fromkeys(services, "SERVING")
    check(drill_stack, job, baseline, "redis unreachable 10 s")


def test_a_pair_store_down_pauses_a_job_bigger_than_the_window(drill_stack: DrillStack, baseline: Baseline) -> None:
    """The pair store stays down while a job of 4 samples per prompt (every sample makes the same pairs) runs on a
    window of 8 rollouts: pair.created stops growing at about a window's worth of rollouts' pairs, instead of
    taking every pair of the job, and nothing fails; once the store is back the job completes."""
    window, samples = 8, 4
    peak = []

    def pair_store_down(job_id: str) -> None:
        local.kill(drill_stack.state.services["pairstore"])
        client = drill_stack.redis()
        # Down until pair.created has not changed for 3 s: the pipeline has stopped in front of the store.
        lengths, changed, give_up = [0], time.monotonic(), time.monotonic() + 60
        while time.monotonic() - changed < 3 and time.monotonic() < give_up:
            lengths.append(client.xlen("pair.created"))
            if lengths[-1] != lengths[-2]:
                changed = time.monotonic()
            time.sleep(0.05)
        peak.append(max(lengths))
        local.start_service(drill_stack.folder, drill_stack.state, "pairstore", drill_stack.env)

    try:
        drill_stack.restart("intervention", {"INTERVENE_ROLLOUT_WINDOW": str(window)})
        job = drill_stack.run_job("pair-store-down", during=pair_store_down, samples=samples)
    finally:
        drill_stack.restart("intervention")
    bound = window * (1 + TRIGGERS_PER_ROLLOUT)
    print(
        f"pair store down: pair.created peaked at {peak[0]} entries (bound {bound}; the job made {job.pairs_created})"
    )
    assert 0 < peak[0] <= bound
    check(drill_stack, job, baseline, "pair store down, window 8", samples)


def test_killing_the_feeder_mid_job_queues_each_rollout_once(drill_stack: DrillStack, baseline: Baseline) -> None:
    """kill -9 of the intervention service while its feeder is part-way through a job bigger than the window: the
    restarted feeder goes on from the job's cursor, and rollout.requested receives each rollout exactly once."""
    window, samples = 4, 4
    client = drill_stack.redis()
    added_before = client.xinfo_stream("rollout.requested")["entries-added"]
    fed_then: list[int] = []

    def kill_the_feeder(job_id: str) -> None:
        jobs = JobStore(client)
        while (fed := jobs.progress([job_id])[0][0]) < 2 * window:
            time.sleep(0.01)
        local.kill(drill_stack.state.services["intervention"])
        fed_then.append(fed)
        drill_stack.restart("intervention", {"INTERVENE_ROLLOUT_WINDOW": str(window)})

    try:
        drill_stack.restart("intervention", {"INTERVENE_ROLLOUT_WINDOW": str(window)})
        job = drill_stack.run_job("feeder-killed", during=kill_the_feeder, samples=samples)
    finally:
        drill_stack.restart("intervention")
    added = client.xinfo_stream("rollout.requested")["entries-added"] - added_before
    print(f"feeder killed with {fed_then[0]} of {job.rollouts_requested} rollouts queued; {added} entries added")
    assert fed_then[0] < job.rollouts_requested, "the kill came mid-job"
    assert added == job.rollouts_requested == len(PROMPTS) * samples, "each rollout queued exactly once"
    check(drill_stack, job, baseline, "kill -9 of the feeder mid-job", samples)


class StallingJudgeEndpoint:
    """The llm judge's endpoint for the drill: a real OpenAI-compatible chat server on loopback that answers as the
    planted rules do (a step holding a planted cue is the first cue; reasoning holding one is harmful; responses
    are safe), and the first time it sees a trace's detector request, for about half the traces, stalls past the
    judge's timeout instead. A real LLM cannot run here; the judge's HTTP client, timeout and the queue's
    redelivery are the product's."""

    def __init__(self, cues: list[str], stall_s: float) -> None:
        self.cues = [" ".join(cue.split()) for cue in cues]
        self.stall_s = stall_s
        self.seen: dict[str, int] = {}
        self.stalled = 0
        self.server = ScriptedServer(self.answer)

    def answer(self, kind: str, body: dict) -> tuple[int, str]:
        data = "\n".join(body["messages"][1]["content"].splitlines()[1:-1])  # between the nonce markers
        if kind == "detector":
            self.seen[data] = self.seen.get(data, 0) + 1
            if self.seen[data] == 1 and hashlib.sha256(data.encode()).digest()[0] % 2 == 0:
                self.stalled += 1
                time.sleep(self.stall_s)
            for line in data.splitlines():
                number, _, sentence = line.partition("] ")
                if int(number.lstrip("[")) >= 2 and any(cue in sentence for cue in self.cues):
                    return 200, number.lstrip("[")
            return 200, "0"
        if kind == "reasoning":
            reasoning = data.partition("\nReasoning: ")[2]
            return 200, "harmful" if any(cue in reasoning for cue in self.cues) else "safe"
        if kind == "refusal":
            return 200, "answer"
        return 200, "safe"


def test_job_survives_a_judge_that_times_out_on_some_items(drill_stack: DrillStack, baseline: Baseline) -> None:
    endpoint = StallingJudgeEndpoint(drill_stack.cues, stall_s=2.0)
    llm_judge = {
        "INTERVENE_JUDGE_BACKEND": "llm",
        "INTERVENE_JUDGE_LLM_BASE_URL": endpoint.server.url,
        "INTERVENE_JUDGE_LLM_MODEL": "planted-rules-mirror",
        "INTERVENE_JUDGE_LLM_TIMEOUT_SECONDS": "1",
        "INTERVENE_JUDGE_LLM_RETRIES": "0",
    }
    try:
        drill_stack.restart("judge", llm_judge)
        job = drill_stack.run_job("judge-timeouts")
    finally:
        drill_stack.restart("judge")
        endpoint.server.close()
    redelivered = sum(1 for count in endpoint.seen.values() if count > 1)
    print(f"judge timeouts: {endpoint.stalled} detector requests stalled, {redelivered} traces judged again")
    assert endpoint.stalled > 0 and redelivered >= endpoint.stalled
    check(drill_stack, job, baseline, "judge timing out on some items")
