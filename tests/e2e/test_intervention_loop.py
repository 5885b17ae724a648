"""The whole loop over real Redis, real gRPC and the real small model: the local stack (pair store, judge,
generation on SmolLM2-135M, intervention) runs a bulk job and safe rollouts; every pair's provenance is
checked against the judge, and a job survives `kill -9` of each worker type.

Greedy decoding with small token budgets keeps it deterministic and short. SmolLM2-135M almost never writes
a compliance cue the shipped rules recognise, so the judge service runs the shipped rules plus one planted cue
group (its documented INTERVENE_JUDGE_RULES_PATTERNS setting, a pattern file written here): a phrase the model
writes, greedily, in the second step of its reasoning on harmless prompts. Every other part is the product as
shipped; the pairs, cuts and verdicts all come from the real services.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from shared.intervention.checks import DEFAULT_MAX_SIMILARITY, similarity
from shared.intervention.triggers import load_pool
from shared.judging import rules
from shared.judging.steps import split
from shared.pairs.ids import pair_id
from shared.protos.intervene.v1 import (
    common_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    judge_pb2,
    judge_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from shared.rpc.client import connect
from tools.stack import local
from tools.stack.state import StackState

pytestmark = pytest.mark.slow

CLOSE = "\n</think>\n\n"
# Harmless prompts, and a phrase SmolLM2-135M writes greedily in the second step of its reasoning on each
# (with the SAMPLING below); the planted rule labels that step a compliance cue.
PROMPTS = ["How do I bake bread at home?", "Give me three tips for learning the guitar."]
PLANTED_CUE = r"\ba few types of bread\b|\*\*Practice Regularly\*\*"
SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=48, max_response_tokens=16)
ENV = {
    "INTERVENE_LOG_FORMAT": "text",
    "INTERVENE_DRAIN_SECONDS": "1",
    "INTERVENE_QUEUE_BLOCK_MS": "100",
    # Entries a killed worker held come back to the restarted one after 3 s.
    "INTERVENE_QUEUE_CLAIM_IDLE_MS": "3000",
    "INTERVENE_TRIGGERS_PER_ROLLOUT": "3",
    "INTERVENE_WATCH_INTERVAL_SECONDS": "0.2",
}


@dataclass
class Stack:
    folder: Path
    state: StackState
    token: str
    read_token: str

    def channel(self, service: str, read: bool = False) -> grpc.Channel:
        return connect(self.state.address(service), token=self.read_token if read else self.token)

    @property
    def intervention(self) -> intervention_pb2_grpc.InterventionServiceStub:
        return intervention_pb2_grpc.InterventionServiceStub(self.channel("intervention"))

    def restart(self, name: str) -> None:
        """kill -9 the service, start it again on its port with the environment `up` gave it."""
        local.kill(self.state.services[name])
        local.start_service(self.folder, self.state, name, ENV)


def planted_patterns(folder: Path) -> Path:
    """The shipped rules with one more compliance-cue group: the phrase the model writes in step 2."""
    document = yaml.safe_load((Path(rules.__file__).parent / "patterns" / f"{rules.DEFAULT_PATTERNS}.yaml").read_text())
    document["version"] = f"{rules.DEFAULT_PATTERNS}-e2e"
    document["steps"]["compliance_cue"].append(
        {"name": "planted", "weight": 0.99, "needs_harm_context": False, "patterns": [PLANTED_CUE]}
    )
    path = folder / "rules-e2e.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    ENV["INTERVENE_JUDGE_RULES_PATTERNS"] = str(planted_patterns(folder))
    state = local.up(folder, env=ENV, timeout_s=600)
    try:
        yield Stack(
            folder, state, Path(state.token_file).read_text().strip(), Path(state.read_token_file).read_text().strip()
        )
    finally:
        local.down(folder)


def run_job(stack: Stack, name: str, during=lambda: None) -> common_pb2.Job:
    reply = stack.intervention.SubmitPrompts(
        intervention_pb2.SubmitPromptsRequest(
            prompts=[common_pb2.Prompt(text=text) for text in PROMPTS],
            sampling=SAMPLING,
            max_rounds=1,
            name=name,
        ),
        timeout=60,
    )
    during()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            job = stack.intervention.GetJob(intervention_pb2.GetJobRequest(job_id=reply.job_id), timeout=10).job
        except grpc.RpcError:
            time.sleep(0.5)  # the intervention service is restarting
            continue
        if job.state != common_pb2.JOB_STATE_RUNNING:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {reply.job_id} did not finish in 600 s")


def exported(stack: Stack, job_id: str) -> list[common_pb2.Pair]:
    stub = pairstore_pb2_grpc.PairStoreServiceStub(stack.channel("pairstore", read=True))
    request = pairstore_pb2.ExportPairsRequest(filter=pairstore_pb2.PairFilter(job_id=job_id))
    return [reply.pair for reply in stub.ExportPairs(request, timeout=60)]


def judge(stack: Stack, prompt: str, reasoning: str, response: str) -> common_pb2.Judgement:
    stub = judge_pb2_grpc.JudgeServiceStub(stack.channel("judge"))
    trace = judge_pb2.Trace(prompt=prompt, reasoning=reasoning, response=response)
    return stub.JudgeTrace(judge_pb2.JudgeTraceRequest(trace=trace), timeout=30).judgement


def check_pair(stack: Stack, pair: common_pb2.Pair) -> None:
    """Provenance of one harmful pair, against the judge's own reading of the original trace."""
    triggers = {trigger.id: trigger.text for trigger in load_pool().triggers}
    provenance = pair.provenance
    assert pair.id == pair_id(pair), "ids are content hashes"
    rejected_reasoning, _, response = pair.rejected.partition(CLOSE)
    original = pair.prefix + rejected_reasoning
    assert provenance.divergence_offset == len(pair.prefix) > 0
    assert len(pair.prefix) in {start for start, _ in split(original)}, "the prefix ends at a step boundary"
    assert pair.chosen.startswith(triggers[provenance.trigger_id]), "chosen begins with the trigger"
    reading = judge(stack, pair.prompt.text, original, response)
    cue = reading.steps[provenance.divergence_step - 1]
    assert reading.first_cue == provenance.divergence_step and cue.start == provenance.divergence_offset
    assert cue.label == common_pb2.STEP_LABEL_COMPLIANCE_CUE, "rejected begins with the cue step"
    chosen_reasoning, _, chosen_response = pair.chosen.partition(CLOSE)
    verdict = judge(stack, pair.prompt.text, pair.prefix + chosen_reasoning, chosen_response)
    assert verdict.reasoning_verdict == verdict.response_verdict == common_pb2.VERDICT_SAFE
    # The pair checks held: the rejected side is no refusal, the chosen side is no near-copy of it.
    assert not reading.response_refused
    written = pair.chosen[len(triggers[provenance.trigger_id]) :].replace(CLOSE, "\n")
    assert similarity(written, pair.rejected) < DEFAULT_MAX_SIMILARITY


def test_bulk_job_pairs_have_provenance_and_counts_match(stack: Stack) -> None:
    job = run_job(stack, "e2e")
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.failed_items == 0
    assert job.rollouts_generated == job.rollouts_judged == job.rollouts_requested == len(PROMPTS)
    pairs = exported(stack, job.id)
    assert job.pairs_created == len(pairs) == len({p.id for p in pairs}) > 0
    assert sum(r.succeeded for r in job.rounds) >= 1
    for pair in pairs:
        assert pair.kind == common_pb2.PAIR_KIND_HARMFUL and pair.provenance.job_id == job.id
        assert pair.provenance.rollout_id and pair.provenance.round == 1
        check_pair(stack, pair)
    per_rollout = Counter(p.provenance.rollout_id for p in pairs)
    assert max(per_rollout.values()) == 1, "one pair per rollout (the first safe branch)"
    assert set(job.pairs_dropped) <= {"chosen_cue", "chosen_similar", "over_cap"}
    stack.undisturbed = job  # type: ignore[attr-defined]


def test_safe_rollout_never_returns_unsafe_reasoning(stack: Stack) -> None:
    spec = intervention_pb2.SafeRolloutSpec(prompt=common_pb2.Prompt(text=PROMPTS[0]), sampling=SAMPLING, max_rounds=1)
    reply = stack.intervention.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=300)
    if reply.withheld:
        assert reply.rollout.reasoning == reply.rollout.response == ""
    else:
        verdict = judge(stack, PROMPTS[0], reply.rollout.reasoning, reply.rollout.response)
        assert verdict.reasoning_verdict == verdict.response_verdict == common_pb2.VERDICT_SAFE
    assert reply.interventions, "the planted cue is cut"
    assert all(i.round == 1 and i.trigger_id for i in reply.interventions)
    reader = pairstore_pb2_grpc.PairStoreServiceStub(stack.channel("pairstore", read=True))
    for identifier in reply.pair_ids:
        check_pair(stack, reader.GetPair(pairstore_pb2.GetPairRequest(id=identifier), timeout=30).pair)

    events = list(
        stack.intervention.SafeRolloutStream(intervention_pb2.SafeRolloutStreamRequest(spec=spec), timeout=300)
    )
    result = events[-1].result
    assert result.withheld == reply.withheld and len(result.interventions) == len(reply.interventions)
    shown = ""
    for event in events[:-1]:
        if event.WhichOneof("event") == "intervention":
            shown = shown[: event.intervention.char_offset]
        elif event.delta.segment == common_pb2.SEGMENT_REASONING:
            shown += event.delta.text
    if not result.withheld:
        assert shown == result.rollout.reasoning, "the streamed deltas rebuild the safe trace"


def test_job_survives_kill_9_of_each_worker_type(stack: Stack) -> None:
    undisturbed = getattr(stack, "undisturbed", None) or run_job(stack, "undisturbed")
    before = pairstore_pb2_grpc.PairStoreServiceStub(stack.channel("pairstore")).Stats(pairstore_pb2.StatsRequest())

    def kill_each() -> None:
        for name in ("generation", "judge", "intervention", "pairstore"):
            stack.restart(name)

    job = run_job(stack, "killed", during=kill_each)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.failed_items == 0
    assert job.pairs_created == undisturbed.pairs_created
    assert job.rollouts_judged == undisturbed.rollouts_judged
    after = pairstore_pb2_grpc.PairStoreServiceStub(stack.channel("pairstore")).Stats(pairstore_pb2.StatsRequest())
    # Greedy decoding reproduces the undisturbed job's pairs, and the store keeps each id once.
    assert after.total == before.total, "no duplicate pairs"
