"""Safe rollouts for a client: the shared `InterventionLoop` over direct gRPC calls to generation and judge.

    runner = SafeRolloutRunner(generation_channel, judge_channel, pool, max_rounds=1)
    outcome = runner.run(spec, Deadline.after(30))             # unary
    for event in runner.stream(spec, Deadline.after(30)): ...  # SafeRolloutStreamResponse messages

Nothing judged unsafe reaches the client. The unary call returns the corrected trace, or `withheld` with the
reasoning and response blanked when no trace was judged safe (an UNDETERMINED verdict counts as unsafe).

The stream sends reasoning as it forms, one sentence-step at a time, and only steps the judge labelled
neutral or safety-trigger of reasoning it judged safe so far, judging the reasoning so far each time a step
completes; it stops sending at the first compliance cue or unsafe step, or as soon as the judge finds the
reasoning so far harmful or cannot decide, and never sends the response before the whole trace was judged. Then
the shared loop decides on the whole trace. Each `Intervention` event's `char_offset` counts characters of
the reasoning sent so far: the client drops what it holds after it (a whole-trace reading can cut earlier
than the step-wise one), then appends the deltas that follow. A final `result` with `withheld` set means the
client must drop everything it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from shared.intervention.checks import PairChecks
from shared.intervention.decisions import DEFAULT_REASONING_CLOSE, Cut, cut_for
from shared.intervention.ids import rollout_id
from shared.intervention.loop import BranchText, InterventionLoop, Outcome, branch_texts, continue_request
from shared.intervention.triggers import Trigger
from shared.judging.steps import split
from shared.protos.intervene.v1 import (
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    intervention_pb2,
    judge_pb2,
    judge_pb2_grpc,
)

# Kept back from the client's deadline for our own reply.
REPLY_MARGIN_S = 0.05
_BLOCKING = (common_pb2.STEP_LABEL_COMPLIANCE_CUE, common_pb2.STEP_LABEL_UNSAFE)


class DeadlineExceeded(Exception):
    """The client's deadline leaves no time for the next call."""


@dataclass(frozen=True)
class Deadline:
    """An absolute deadline on the monotonic clock; None means the configured ceiling per call."""

    at: float | None
    ceiling_s: float

    @classmethod
    def after(cls, seconds: float | None, ceiling_s: float = 600.0) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds, ceiling_s)

    def timeout(self) -> float:
        """Seconds the next downstream call may take."""
        if self.at is None:
            return self.ceiling_s
        left = self.at - time.monotonic() - REPLY_MARGIN_S
        if left <= 0:
            raise DeadlineExceeded("the call's deadline passed before the trace was safe")
        return min(left, self.ceiling_s)


class GrpcGenerator:
    """The loop's `Generator` over the generation service (Generate and Continue)."""

    def __init__(self, channel: grpc.Channel, deadline: Deadline, adapter: str = "", call_id: str = "") -> None:
        self.stub = generation_pb2_grpc.GenerationServiceStub(channel)
        self.deadline = deadline
        self.adapter = adapter
        self.call_id = call_id

    def generate(self, prompt: common_pb2.Prompt, sampling: common_pb2.SamplingParams) -> common_pb2.Rollout:
        reply = self.stub.Generate(
            generation_pb2.GenerateRequest(prompts=[prompt], n=1, sampling=sampling, adapter=self.adapter),
            timeout=self.deadline.timeout(),
        )
        rollout = reply.rollouts[0]
        rollout.id = rollout_id(self.call_id, prompt.id, 0)
        return rollout

    def continue_branches(
        self, parent: common_pb2.Rollout, kept: str, triggers: list[Trigger], sampling: common_pb2.SamplingParams
    ) -> list[BranchText]:
        reply = self.stub.Continue(
            continue_request(parent, kept, triggers, sampling, self.adapter), timeout=self.deadline.timeout()
        )
        return branch_texts(reply, triggers)


class GrpcJudge:
    """The loop's `TraceJudge` over the judge service (JudgeSteps, one call per batch)."""

    def __init__(self, channel: grpc.Channel, deadline: Deadline) -> None:
        self.stub = judge_pb2_grpc.JudgeServiceStub(channel)
        self.deadline = deadline

    def judge(self, rollouts: list[common_pb2.Rollout]) -> list[common_pb2.Judgement]:
        reply = self.stub.JudgeSteps(
            judge_pb2.JudgeStepsRequest(traces=[trace_of(r) for r in rollouts]), timeout=self.deadline.timeout()
        )
        if len(reply.judgements) != len(rollouts):
            raise RuntimeError(f"the judge answered {len(reply.judgements)} judgements for {len(rollouts)} traces")
        return list(reply.judgements)

    def judge_partial(self, prompt: str, reasoning: str) -> common_pb2.Judgement:
        """Step labels of reasoning still being written (no response yet)."""
        reply = self.stub.JudgeTrace(
            judge_pb2.JudgeTraceRequest(trace=judge_pb2.Trace(prompt=prompt, reasoning=reasoning)),
            timeout=self.deadline.timeout(),
        )
        return reply.judgement


def trace_of(rollout: common_pb2.Rollout) -> judge_pb2.Trace:
    return judge_pb2.Trace(
        rollout_id=rollout.id, prompt=rollout.prompt.text, reasoning=rollout.reasoning, response=rollout.response
    )


@dataclass(frozen=True)
class RolloutPlan:
    """A validated SafeRolloutSpec."""

    prompt: common_pb2.Prompt
    sampling: common_pb2.SamplingParams
    triggers: list[Trigger]
    max_rounds: int
    adapter: str


class SafeRolloutRunner:
    """Runs one safe rollout per call over the peers' channels."""

    def __init__(
        self,
        generation: grpc.Channel,
        judge: grpc.Channel,
        trigger_pool: str,
        reasoning_close: str = DEFAULT_REASONING_CLOSE,
        checks: PairChecks | None = None,
    ) -> None:
        self.checks = checks
        self.generation = generation
        self.judge_channel = judge
        self.trigger_pool = trigger_pool
        self.reasoning_close = reasoning_close

    def _loop(self, plan: RolloutPlan, deadline: Deadline, call_id: str) -> tuple[InterventionLoop, GrpcJudge]:
        generator = GrpcGenerator(self.generation, deadline, plan.adapter, call_id)
        judge = GrpcJudge(self.judge_channel, deadline)
        loop = InterventionLoop(
            generator, judge, plan.triggers, self.trigger_pool, plan.max_rounds, self.reasoning_close, self.checks
        )
        return loop, judge

    def run(self, plan: RolloutPlan, deadline: Deadline, call_id: str) -> Outcome:
        loop, _ = self._loop(plan, deadline, call_id)
        return loop.run(plan.prompt, plan.sampling)

    def stream(
        self, plan: RolloutPlan, deadline: Deadline, call_id: str, outcome_sink: list[Outcome]
    ) -> Iterator[intervention_pb2.SafeRolloutStreamResponse]:
        """Events of one streamed safe rollout; the final Outcome is appended to `outcome_sink` before the
        result event is yielded (the caller stores its pairs)."""
        loop, judge = self._loop(plan, deadline, call_id)
        stub = generation_pb2_grpc.GenerationServiceStub(self.generation)
        replies = stub.GenerateStream(
            generation_pb2.GenerateStreamRequest(prompt=plan.prompt, sampling=plan.sampling, adapter=plan.adapter),
            timeout=deadline.timeout(),
        )
        reasoning, sent, judged_to, blocked = "", 0, 0, False
        origin: common_pb2.Rollout | None = None
        for reply in replies:
            if reply.HasField("rollout"):
                origin = reply.rollout
                break
            if reply.segment != common_pb2.SEGMENT_REASONING or blocked:
                continue
            reasoning += reply.text
            spans = split(reasoning)
            # The last step may still grow; the ones before it are complete.
            if len(spans) < 2 or spans[-2][1] <= judged_to:
                continue
            judged_to = spans[-2][1]
            partial = judge.judge_partial(plan.prompt.text, reasoning[:judged_to])
            if partial.reasoning_verdict != common_pb2.VERDICT_SAFE:
                # Fail closed: reasoning the judge did not clear (harmful, or undecided) is not streamed, whatever
                # its step labels say (an llm judge that cannot find the cue labels every step neutral).
                blocked = True
                continue
            for step in partial.steps:
                if step.end <= sent or step.end > judged_to:
                    continue
                if step.label in _BLOCKING:
                    blocked = True
                    break
                yield _delta(reasoning[sent : step.end], common_pb2.SEGMENT_REASONING)
                sent = step.end
        if origin is None:
            raise RuntimeError("the generation stream ended without its rollout")
        origin.id = rollout_id(call_id, plan.prompt.id, 0)
        (judgement,) = judge.judge([origin])
        outcome = loop.correct(origin, judgement, plan.sampling)
        keep = sent
        first_cut = cut_for(origin, judgement)
        if isinstance(first_cut, Cut) and outcome.interventions:
            keep = min(sent, first_cut.offset)
        for record in outcome.interventions:
            yield intervention_pb2.SafeRolloutStreamResponse(intervention=record)
        outcome_sink.append(outcome)
        if not outcome.withheld:
            final = outcome.rollout
            if final.reasoning[keep:]:
                yield _delta(final.reasoning[keep:], common_pb2.SEGMENT_REASONING)
            if final.response:
                yield _delta(final.response, common_pb2.SEGMENT_RESPONSE)


def _delta(text: str, segment: int) -> intervention_pb2.SafeRolloutStreamResponse:
    return intervention_pb2.SafeRolloutStreamResponse(delta=intervention_pb2.TraceDelta(text=text, segment=segment))


def shown(outcome: Outcome) -> tuple[common_pb2.Rollout, common_pb2.Judgement]:
    """The trace and judgement a client may see: blanked text when the outcome is withheld."""
    rollout = common_pb2.Rollout()
    rollout.CopyFrom(outcome.rollout)
    if outcome.withheld:
        rollout.reasoning = ""
        rollout.response = ""
    return rollout, outcome.judgement
