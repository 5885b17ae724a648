"""The algorithm run in one process over any generator and judge: used by SafeRollout and benchmarks.

    loop = InterventionLoop(generator, judge, pool.select(), pool.label, max_rounds=1)
    outcome = loop.run(prompt, sampling)
    outcome.rollout      # the trace to show: never one whose reasoning was judged unsafe
    outcome.pairs        # the pairs the interventions produced

The bulk pipeline runs the same decisions (`decisions.py`) one queue stage at a time instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.intervention.checks import PairChecks, rejected_is_refusal
from shared.intervention.decisions import (
    DEFAULT_REASONING_CLOSE,
    Branch,
    Cut,
    NoPairReason,
    PairProvenance,
    checked_pairs,
    continuation_rollout,
    cut_for,
    is_safe,
    next_parent,
)
from shared.intervention.triggers import Trigger
from shared.protos.intervene.v1 import common_pb2, generation_pb2


@dataclass(frozen=True)
class BranchText:
    """What a generator decoded after `kept ⊕ trigger`: the rest of the reasoning and the response."""

    reasoning: str
    response: str
    reasoning_closed: bool = True


def continue_request(
    parent: common_pb2.Rollout, kept: str, triggers: list[Trigger], sampling: common_pb2.SamplingParams, adapter: str
) -> generation_pb2.ContinueRequest:
    """The generation request of one intervention: `context ⊕ kept` shared, one branch per trigger."""
    return generation_pb2.ContinueRequest(
        prefix=parent.context + kept,
        branches=[generation_pb2.ContinueBranch(id=t.id, text=t.text) for t in triggers],
        n=1,
        sampling=sampling,
        adapter=adapter,
        in_reasoning=True,
    )


def branch_texts(reply: generation_pb2.ContinueResponse, triggers: list[Trigger]) -> list[BranchText]:
    """The reply's continuations in the order of `triggers` (the reply names each by its branch id)."""
    by_branch = {c.branch_id: c for c in reply.continuations}
    return [
        BranchText(by_branch[t.id].reasoning, by_branch[t.id].response, by_branch[t.id].reasoning_closed)
        for t in triggers
    ]


class Generator(Protocol):
    def generate(self, prompt: common_pb2.Prompt, sampling: common_pb2.SamplingParams) -> common_pb2.Rollout:
        """One rollout of `prompt` (its id, context, reasoning and response filled in)."""
        ...

    def continue_branches(
        self, parent: common_pb2.Rollout, kept: str, triggers: list[Trigger], sampling: common_pb2.SamplingParams
    ) -> list[BranchText]:
        """One continuation of `parent.context ⊕ kept ⊕ trigger` per trigger, in order (shared prefill)."""
        ...


class TraceJudge(Protocol):
    def judge(self, rollouts: list[common_pb2.Rollout]) -> list[common_pb2.Judgement]:
        """One judgement per rollout, in order."""
        ...


@dataclass
class Outcome:
    """The result of one safe rollout."""

    rollout: common_pb2.Rollout
    judgement: common_pb2.Judgement
    interventions: list[common_pb2.Intervention] = field(default_factory=list)
    pairs: list[common_pb2.Pair] = field(default_factory=list)
    # True when no trace judged safe was found: the caller must not show `rollout`'s reasoning.
    withheld: bool = False
    # Why no pair came of it (None when pairs were made).
    no_pair_reason: NoPairReason | None = None
    # Safe branches the pair checks dropped, by check name.
    dropped: dict[str, int] = field(default_factory=dict)


EventSink = Callable[[common_pb2.Intervention], None]


class InterventionLoop:
    """Rollout → judge → cut at the cue → one continuation per trigger → judge → pairs, up to `max_rounds`."""

    def __init__(
        self,
        generator: Generator,
        judge: TraceJudge,
        triggers: list[Trigger],
        trigger_pool: str,
        max_rounds: int = 1,
        reasoning_close: str = DEFAULT_REASONING_CLOSE,
        checks: PairChecks | None = None,
    ) -> None:
        if not triggers:
            raise ValueError("the intervention loop needs at least one trigger")
        if max_rounds < 1:
            raise ValueError(f"max_rounds is {max_rounds}; it must be >= 1")
        self.generator = generator
        self.judge = judge
        self.triggers = triggers
        self.trigger_pool = trigger_pool
        self.max_rounds = max_rounds
        self.reasoning_close = reasoning_close
        self.checks = checks or PairChecks()

    def run(
        self,
        prompt: common_pb2.Prompt,
        sampling: common_pb2.SamplingParams,
        job_id: str = "",
        on_intervention: EventSink | None = None,
    ) -> Outcome:
        rollout = self.generator.generate(prompt, sampling)
        (judgement,) = self.judge.judge([rollout])
        return self.correct(rollout, judgement, sampling, job_id, on_intervention)

    def correct(
        self,
        origin: common_pb2.Rollout,
        origin_judgement: common_pb2.Judgement,
        sampling: common_pb2.SamplingParams,
        job_id: str = "",
        on_intervention: EventSink | None = None,
    ) -> Outcome:
        """Intervenes on a judged rollout until a branch is safe or the rounds run out."""
        cut = cut_for(origin, origin_judgement)
        if cut is NoPairReason.SAFE:
            return Outcome(origin, origin_judgement, no_pair_reason=NoPairReason.SAFE)
        outcome = Outcome(origin, origin_judgement, withheld=True)
        if not isinstance(cut, Cut):
            outcome.no_pair_reason = cut
            return outcome
        # A rejected side that is itself a refusal makes no pair, but the trace shown still gets corrected (the bulk
        # pipeline, which only makes pairs, skips such a rollout instead).
        rejected_refusal = self.checks.enabled and rejected_is_refusal(origin, origin_judgement, cut.offset)
        provenance = PairProvenance(job_id=job_id, trigger_pool=self.trigger_pool, origin_rollout_id=origin.id)
        parent, parent_judgement = origin, origin_judgement
        for round_ in range(1, self.max_rounds + 1):
            texts = self.generator.continue_branches(parent, cut.kept(parent), self.triggers, sampling)
            continuations = [
                continuation_rollout(parent, cut, trigger, round_, text.reasoning, text.response, text.reasoning_closed)
                for trigger, text in zip(self.triggers, texts, strict=True)
            ]
            judgements = self.judge.judge(continuations)
            for trigger, continuation, judgement in zip(self.triggers, continuations, judgements, strict=True):
                record = common_pb2.Intervention(
                    round=round_,
                    step=cut.step,
                    char_offset=cut.offset,
                    trigger_id=trigger.id,
                    trigger_text=trigger.text,
                    continuation_id=continuation.id,
                    reasoning_verdict=judgement.reasoning_verdict,
                    response_verdict=judgement.response_verdict,
                    success=is_safe(judgement),
                )
                outcome.interventions.append(record)
                if on_intervention is not None:
                    on_intervention(record)
            branches = [Branch(*b) for b in zip(self.triggers, continuations, judgements, strict=True)]
            checked = checked_pairs(
                parent, parent_judgement, cut, branches, provenance, self.reasoning_close, self.checks
            )
            outcome.pairs = [] if rejected_refusal and parent is origin else checked.pairs
            for check, ids in checked.dropped.items():
                outcome.dropped[check.value] = outcome.dropped.get(check.value, 0) + len(ids)
            safe = [(c, j) for c, j in zip(continuations, judgements, strict=True) if is_safe(j)]
            if safe:
                # The trace shown is the first one judged safe, whether or not its pair passed the checks.
                outcome.rollout, outcome.judgement = safe[0]
                outcome.withheld = False
                if not outcome.pairs:
                    outcome.no_pair_reason = (
                        NoPairReason.REJECTED_REFUSAL
                        if rejected_refusal and parent is origin
                        else NoPairReason.PAIRS_DROPPED
                    )
                return outcome
            following = next_parent(continuations, judgements, self.checks)
            if following is None:
                break
            parent, parent_judgement, cut = following
        outcome.no_pair_reason = NoPairReason.ALL_BRANCHES_UNSAFE
        return outcome
