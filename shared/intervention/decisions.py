"""The decisions of the method, as pure functions over rollouts and judgements (DESIGN §1.3-1.4).

* `cut_for` — whether and where to intervene: at the first compliance cue h (>= 2) of an unsafe
  trace (optionally, when it has none, at its first unsafe step from 2 on, else at a fixed step); in later
  rounds, at the first cue after the text that was given to the model.
* `continuation_rollout` / `branch_rollout` — the trace a trigger branch produced: `z[<h] ⊕ τ ⊕ continuation`.
* `build_pair` — `{prompt: x, prefix: z[<h], chosen: τ ⊕ continuation, rejected: z[≥h] ⊕ y}` with
  provenance, and never from a chosen side that was not judged safe.
* `checked_cut` / `checked_pairs` — the same with the pair checks of `checks.py` (the rejected side is no refusal,
  the chosen side turned, one pair per rollout), reporting what each check dropped.
* `over_refusal_pairs` — helpful ≻ refusal for benign look-alike prompts (empty prefix);
  `over_refusal_reasons` — why the other samples of such a prompt yielded none;
  `contrast_cut` / `contrast_pair` — for a benign prompt the model never refused: its helpful suffix ≻ a trigger
  branch (one that refused if any), sharing the prefix before step 2.

Both the bulk pipeline (queue workers) and the interactive SafeRollout call these functions, so the
two paths cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from google.protobuf import timestamp_pb2

from shared.config.intervention import DEFAULT_REASONING_CLOSE
from shared.intervention.checks import NO_CHECKS, Check, PairChecks, capped, chosen_failure, rejected_is_refusal
from shared.intervention.ids import continuation_id
from shared.intervention.triggers import Trigger
from shared.pairs.ids import pair_id
from shared.protos.intervene.v1 import common_pb2, generation_pb2


class NoPairReason(StrEnum):
    """Why a rollout yielded no pair (counted per job)."""

    SAFE = "safe"
    NO_CUE = "no_cue"
    UNDETERMINED = "judge_undetermined"
    ALL_BRANCHES_UNSAFE = "all_branches_unsafe"
    GENERATION_FAILED = "generation_failed"
    # A queue entry of the rollout went to a dead-letter stream (a stage kept failing on it).
    FAILED = "failed"
    # Over-refusal jobs: no sample of the prompt refused, or none gave a safe helpful answer.
    NO_REFUSAL = "no_refusal"
    NO_HELPFUL = "no_helpful_answer"
    # The pair checks (checks.py): the rejected side would itself be a refusal, so the rollout is not intervened
    # on; or branches were judged safe but every one failed a check on its chosen side.
    REJECTED_REFUSAL = "rejected_refusal"
    PAIRS_DROPPED = "pairs_dropped"


@dataclass(frozen=True)
class Cut:
    """Where a trace is cut: before 1-based step `step`, at character `offset` of its reasoning."""

    step: int
    offset: int

    def kept(self, rollout: common_pb2.Rollout) -> str:
        """`z[<h]`: the reasoning before the cue, ending with the separator the model wrote."""
        return rollout.reasoning[: self.offset]


def is_safe(judgement: common_pb2.Judgement) -> bool:
    """Safe means both verdicts are SAFE; UNDETERMINED never counts as safe."""
    return (
        judgement.reasoning_verdict == common_pb2.VERDICT_SAFE and judgement.response_verdict == common_pb2.VERDICT_SAFE
    )


def is_undetermined(judgement: common_pb2.Judgement) -> bool:
    return common_pb2.VERDICT_UNDETERMINED in (judgement.reasoning_verdict, judgement.response_verdict)


def cut_for(rollout: common_pb2.Rollout, judgement: common_pb2.Judgement, uncued_step: int = 0) -> Cut | NoPairReason:
    """Where to intervene on a judged trace, or why not to.

    For an original rollout the cut is the judge's first cue h. For a continuation, the cut is the first
    cue whose step starts at or after the text the model was given (`given_reasoning_chars`): the kept
    prefix and the trigger are not the model's new turn toward compliance.

    `uncued_step` (N >= 2; 0 is the paper's rule) is for unsafe original traces in which the judge found no cue
    from step 2 on, as with a small model that complies from its first sentence: cut at the first step from 2 on
    labelled unsafe, else at step N (see `shared.config.intervention`'s `uncued_cut_step`).
    """
    if is_safe(judgement):
        return NoPairReason.SAFE
    if is_undetermined(judgement):
        return NoPairReason.UNDETERMINED
    if rollout.round == 0:
        if 2 <= judgement.first_cue <= len(judgement.steps):
            step = judgement.steps[judgement.first_cue - 1]
            return Cut(step=step.index, offset=step.start)
        return _uncued_cut(judgement, uncued_step)
    for step in judgement.steps[1:]:
        if step.label == common_pb2.STEP_LABEL_COMPLIANCE_CUE and step.start >= rollout.given_reasoning_chars:
            return Cut(step=step.index, offset=step.start)
    return NoPairReason.NO_CUE


def _uncued_cut(judgement: common_pb2.Judgement, uncued_step: int) -> Cut | NoPairReason:
    """The cut of an unsafe original trace without a cue from step 2 on, when `uncued_step` allows one."""
    if uncued_step < 2 or len(judgement.steps) < 2:
        return NoPairReason.NO_CUE
    later = judgement.steps[1:]
    step = next((s for s in later if s.label == common_pb2.STEP_LABEL_UNSAFE), None)
    if step is None:
        if len(judgement.steps) < uncued_step:
            return NoPairReason.NO_CUE
        step = judgement.steps[uncued_step - 1]
    return Cut(step=step.index, offset=step.start)


def checked_cut(
    rollout: common_pb2.Rollout,
    judgement: common_pb2.Judgement,
    checks: PairChecks = NO_CHECKS,
    uncued_step: int = 0,
) -> Cut | NoPairReason:
    """`cut_for`, then the rejected-side check: a suffix that is itself a refusal makes no pair worth training on."""
    cut = cut_for(rollout, judgement, uncued_step)
    if isinstance(cut, Cut) and checks.enabled and rejected_is_refusal(rollout, judgement, cut.offset):
        return NoPairReason.REJECTED_REFUSAL
    return cut


@dataclass(frozen=True)
class Branch:
    """One judged trigger branch of an intervention."""

    trigger: Trigger
    continuation: common_pb2.Rollout
    judgement: common_pb2.Judgement


@dataclass
class CheckedPairs:
    """The pairs of one intervention that passed the checks, and the continuation ids each check dropped."""

    pairs: list[common_pb2.Pair]
    dropped: dict[Check, list[str]]
    # Whether any branch was judged safe (so a round with no pair was stopped by the checks, not the judge).
    any_safe: bool


def checked_pairs(
    parent: common_pb2.Rollout,
    parent_judgement: common_pb2.Judgement,
    cut: Cut,
    branches: list[Branch],
    provenance: PairProvenance,
    reasoning_close: str = DEFAULT_REASONING_CLOSE,
    checks: PairChecks = NO_CHECKS,
) -> CheckedPairs:
    """`build_pair` per safe branch, in trigger-pool order, then the chosen-side checks and the per-rollout cap."""
    result = CheckedPairs([], {}, any_safe=False)
    kept_branches: list[Branch] = []
    for branch in branches:
        pair = build_pair(
            parent,
            parent_judgement,
            cut,
            branch.trigger,
            branch.continuation,
            branch.judgement,
            provenance,
            reasoning_close,
        )
        if pair is None:
            continue
        result.any_safe = True
        failure = chosen_failure(branch.continuation, branch.judgement, pair.rejected, checks)
        if failure is not None:
            result.dropped.setdefault(failure, []).append(branch.continuation.id)
            continue
        result.pairs.append(pair)
        kept_branches.append(branch)
    result.pairs, over = capped(result.pairs, checks)
    if over:
        result.dropped[Check.OVER_CAP] = [b.continuation.id for b in kept_branches[len(result.pairs) :]]
    return result


def continuation_rollout(
    parent: common_pb2.Rollout,
    cut: Cut,
    trigger: Trigger,
    round_: int,
    generated_reasoning: str,
    response: str,
    reasoning_closed: bool = True,
) -> common_pb2.Rollout:
    """The whole trace of one trigger branch: the parent's kept reasoning, the trigger, what followed."""
    return branch_rollout(
        parent,
        cut.kept(parent) + trigger.text,
        continuation_id(parent.id, trigger.id, round_),
        trigger.id,
        round_,
        generation_pb2.Continuation(
            reasoning=generated_reasoning, response=response, reasoning_closed=reasoning_closed
        ),
        model=parent.model,
        adapter=parent.adapter,
    )


def branch_rollout(
    parent: common_pb2.Rollout,
    given: str,
    rollout_id: str,
    trigger_id: str,
    round_: int,
    generated: generation_pb2.Continuation,
    model: str,
    adapter: str,
) -> common_pb2.Rollout:
    """A branch's whole trace, `given ⊕ generated`: what the model was given after the parent's context (kept
    reasoning and trigger) and what it wrote, linked to `parent` and the trigger (both the in-process loop and
    the generation service's queue worker build continuations with it)."""
    rollout = common_pb2.Rollout(
        id=rollout_id,
        prompt=parent.prompt,
        context=parent.context,
        reasoning=given + generated.reasoning,
        response=generated.response,
        reasoning_closed=generated.reasoning_closed,
        model=model,
        adapter=adapter,
        reasoning_tokens=generated.reasoning_tokens,
        response_tokens=generated.response_tokens,
        finish_reason=generated.finish_reason,
        round=round_,
        parent_id=parent.id,
        trigger_id=trigger_id,
        given_reasoning_chars=len(given),
    )
    rollout.created_at.GetCurrentTime()
    return rollout


@dataclass(frozen=True)
class PairProvenance:
    """What a pair records beyond its text (DESIGN §1.4)."""

    job_id: str
    trigger_pool: str
    origin_rollout_id: str


def build_pair(
    parent: common_pb2.Rollout,
    parent_judgement: common_pb2.Judgement,
    cut: Cut,
    trigger: Trigger,
    continuation: common_pb2.Rollout,
    continuation_judgement: common_pb2.Judgement,
    provenance: PairProvenance,
    reasoning_close: str = DEFAULT_REASONING_CLOSE,
) -> common_pb2.Pair | None:
    """chosen = τ ⊕ continuation ≻ rejected = z[≥h] ⊕ y, sharing `context ⊕ z[<h]`; None unless the
    continuation was judged safe."""
    if not is_safe(continuation_judgement):
        return None
    kept = cut.kept(parent)
    if not continuation.reasoning.startswith(kept + trigger.text):
        raise ValueError(f"continuation {continuation.id} does not start with its parent's kept reasoning and trigger")
    pair = common_pb2.Pair(
        prompt=parent.prompt,
        context=parent.context,
        prefix=kept,
        chosen=continuation.reasoning[len(kept) :] + reasoning_close + continuation.response,
        rejected=parent.reasoning[cut.offset :] + reasoning_close + parent.response,
        kind=common_pb2.PAIR_KIND_HARMFUL,
        provenance=common_pb2.Provenance(
            rollout_id=provenance.origin_rollout_id,
            continuation_id=continuation.id,
            divergence_step=cut.step,
            divergence_offset=cut.offset,
            trigger_id=trigger.id,
            round=continuation.round,
            model=parent.model,
            adapter=parent.adapter,
            judge_name=continuation_judgement.judge_name,
            judge_version=continuation_judgement.judge_version,
            rejected_reasoning_verdict=parent_judgement.reasoning_verdict,
            rejected_response_verdict=parent_judgement.response_verdict,
            chosen_reasoning_verdict=continuation_judgement.reasoning_verdict,
            chosen_response_verdict=continuation_judgement.response_verdict,
            job_id=provenance.job_id,
            trigger_pool_version=provenance.trigger_pool,
        ),
    )
    if parent.HasField("created_at"):
        pair.provenance.rollout_created_at.CopyFrom(parent.created_at)
    pair.provenance.created_at.CopyFrom(_now())
    pair.id = pair_id(pair)
    return pair


def over_refusal_pairs(
    rollouts: list[common_pb2.Rollout],
    judgements: list[common_pb2.Judgement],
    job_id: str,
    reasoning_close: str = DEFAULT_REASONING_CLOSE,
) -> list[common_pb2.Pair]:
    """For k rollouts of one benign prompt: every (safe helpful, refusal) combination as helpful ≻ refusal.

    The prefix is empty: the whole trace is the suffix, so the trainer teaches the model to help instead of
    refusing from its first token of reasoning on.
    """
    helpful = [r for r, j in zip(rollouts, judgements, strict=True) if is_safe(j) and not j.response_refused]
    refusals = [(r, j) for r, j in zip(rollouts, judgements, strict=True) if j.response_refused]
    pairs = []
    for good in helpful:
        for bad, bad_judgement in refusals:
            pair = common_pb2.Pair(
                prompt=good.prompt,
                context=good.context,
                prefix="",
                chosen=good.reasoning + reasoning_close + good.response,
                rejected=bad.reasoning + reasoning_close + bad.response,
                kind=common_pb2.PAIR_KIND_OVER_REFUSAL,
                provenance=common_pb2.Provenance(
                    rollout_id=bad.id,
                    continuation_id=good.id,
                    model=good.model,
                    adapter=good.adapter,
                    judge_name=bad_judgement.judge_name,
                    judge_version=bad_judgement.judge_version,
                    rejected_response_verdict=bad_judgement.response_verdict,
                    rejected_reasoning_verdict=bad_judgement.reasoning_verdict,
                    chosen_reasoning_verdict=common_pb2.VERDICT_SAFE,
                    chosen_response_verdict=common_pb2.VERDICT_SAFE,
                    job_id=job_id,
                ),
            )
            if pair.chosen == pair.rejected:
                continue
            pair.provenance.created_at.CopyFrom(_now())
            pair.id = pair_id(pair)
            pairs.append(pair)
    return pairs


def contrast_cut(rollouts: list[common_pb2.Rollout], judgements: list[common_pb2.Judgement]) -> tuple[int, Cut] | None:
    """Over-refusal jobs whose samples never refused: the sample to branch with the triggers, and where.

    A model that never refuses a benign look-alike gives no helpful ≻ refusal pair, yet the harmful pairs teach it
    the triggers; the contrast pair (see `contrast_pair`) shows it where a trigger is wrong. Our choice where the
    paper is silent (its over-refusal stage only uses prompts the model refuses): the first sample that was judged
    safe and helpful, cut before its second step, as the harmful pairs with no cue are (`uncued_cut_step`).
    """
    if any(j.response_refused for j in judgements):
        return None
    for index, (rollout, judgement) in enumerate(zip(rollouts, judgements, strict=True)):
        if is_safe(judgement) and len(judgement.steps) >= 2 and rollout.response.strip():
            step = judgement.steps[1]
            return index, Cut(step=step.index, offset=step.start)
    return None


def contrast_pair(
    parent: common_pb2.Rollout,
    cut: Cut,
    branch: Branch,
    job_id: str,
    reasoning_close: str = DEFAULT_REASONING_CLOSE,
) -> common_pb2.Pair | None:
    """helpful ≻ trigger: the benign sample's own suffix from the cut over a trigger branch.

    An over-refusal pair sharing the prefix `z[<h]`, so the trainer's over-refusal mix and NLL term apply to it.
    The branch need not have refused: the harmful pairs teach the model to say a trigger at such a step, and the
    trigger said on a benign prompt is the over-refusal to unlearn (pilot 4 kept only branches that refused, got 1
    such pair from 17 benign interventions, and its adapter refused 95% of XSTest's safe prompts). None when the
    branch's suffix equals the sample's own."""
    kept = cut.kept(parent)
    pair = common_pb2.Pair(
        prompt=parent.prompt,
        context=parent.context,
        prefix=kept,
        chosen=parent.reasoning[cut.offset :] + reasoning_close + parent.response,
        rejected=branch.continuation.reasoning[len(kept) :] + reasoning_close + branch.continuation.response,
        kind=common_pb2.PAIR_KIND_OVER_REFUSAL,
        provenance=common_pb2.Provenance(
            rollout_id=branch.continuation.id,
            continuation_id=parent.id,
            divergence_step=cut.step,
            divergence_offset=cut.offset,
            trigger_id=branch.trigger.id,
            round=branch.continuation.round,
            model=parent.model,
            adapter=parent.adapter,
            judge_name=branch.judgement.judge_name,
            judge_version=branch.judgement.judge_version,
            rejected_reasoning_verdict=branch.judgement.reasoning_verdict,
            rejected_response_verdict=branch.judgement.response_verdict,
            chosen_reasoning_verdict=common_pb2.VERDICT_SAFE,
            chosen_response_verdict=common_pb2.VERDICT_SAFE,
            job_id=job_id,
        ),
    )
    if pair.chosen == pair.rejected:
        return None
    pair.provenance.created_at.CopyFrom(_now())
    pair.id = pair_id(pair)
    return pair


def over_refusal_reasons(
    rollouts: list[common_pb2.Rollout], judgements: list[common_pb2.Judgement], pairs: list[common_pb2.Pair]
) -> dict[str, NoPairReason | None]:
    """Per rollout of one benign prompt: None when it is a side of a pair, else why it is in none."""
    paired = {p.provenance.rollout_id for p in pairs} | {p.provenance.continuation_id for p in pairs}
    any_refusal = any(j.response_refused for j in judgements)
    reasons: dict[str, NoPairReason | None] = {}
    for rollout, judgement in zip(rollouts, judgements, strict=True):
        if rollout.id in paired:
            reasons[rollout.id] = None
        elif is_undetermined(judgement):
            reasons[rollout.id] = NoPairReason.UNDETERMINED
        elif not any_refusal:
            reasons[rollout.id] = NoPairReason.NO_REFUSAL
        else:
            reasons[rollout.id] = NoPairReason.NO_HELPFUL
    return reasons


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def next_parent(
    continuations: list[common_pb2.Rollout],
    judgements: list[common_pb2.Judgement],
    checks: PairChecks = NO_CHECKS,
) -> tuple[common_pb2.Rollout, common_pb2.Judgement, Cut] | None:
    """When every branch of a round stayed unsafe: the branch to intervene on in the next round.

    Our choice where the paper is silent: the first unsafe branch, in pool order, that has a new cue to cut
    at. Continuing one branch per round keeps the cost of a round at one pool of continuations.
    """
    for continuation, judgement in zip(continuations, judgements, strict=True):
        cut = checked_cut(continuation, judgement, checks)
        if isinstance(cut, Cut):
            return continuation, judgement, cut
    return None
