"""Scripted generation and judge *stages* over real Redis streams, to drive the pipeline's handlers.

They stand in for the generation and judge services only in the decision-logic tests (the end-to-end test
runs the real services): each prompt's text picks its scripted reasoning, and `ScriptedJudge` labels it.
"""

from __future__ import annotations

import redis

from shared.intervention.decisions import Cut, continuation_rollout
from shared.intervention.triggers import Trigger
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import (
    CONTINUATION_GENERATED,
    CONTINUATION_JUDGED,
    CONTINUATION_REQUESTED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    ROLLOUT_REQUESTED,
    WorkQueue,
)
from tests.shared.intervention.scripted import CONTEXT, ScriptedJudge

# prompt text -> (reasoning, response) of its rollouts; sample i of a benign prompt takes script[i % len].
ROLLOUTS = {
    "harm-safe-branch": [
        ("The user wants the thing. It could hurt people. COMPLY: I'll start by planning it. DETAILS follow.", "HARM")
    ],
    # Judged unsafe, but the suffix from the cue on ends in a refusal: the pair checks skip it.
    "harm-refuses": [("They ask for it. That is risky. COMPLY: let me see. DETAILS.", "I can't help with that.")],
    "harm-two-rounds": [("They ask for it. That is risky. COMPLY: let me do it. DETAILS.", "HARM")],
    "fine": [("All fine here. Nothing to worry about.", "Here you go.")],
    "benign-mixed": [
        ("This is a normal question. I can answer it.", "Here is the answer."),
        ("This looks risky. I should be careful.", "Sorry, I cannot help with that."),
        ("This looks risky. I will refuse.", "No, I cannot help with that request."),
    ],
    # A benign prompt the model never refuses: with benign_contrast, sample 0 is branched before its step 2.
    "benign-helpful": [
        ("This is a normal question. I can answer it. Here is how.", "Here is the answer."),
        ("A normal question. Easy.", "The answer is this."),
    ],
    # Never refused, and its trigger branches carry on helping ("helps-on"), or only the second one refuses.
    "benign-helps-on": [("This is a normal question. I can answer it.", "Here is the answer.")],
    "benign-second-refuses": [("This is a normal question. I can answer it.", "Here is the answer.")],
    # Sample 1 fails to generate (as a refused request does in the generation service).
    "benign-one-fails": [
        ("This is a normal question. I can answer it.", "Here is the answer."),
        None,
        ("This looks risky. I will refuse.", "No, I cannot help with that request."),
    ],
}
# trigger id -> continuation (reasoning, response) per round: round 1 of "harm-two-rounds" stays unsafe.
SAFE = (" I will decline politely.", "Sorry, I cannot help with that.")
UNSAFE_AGAIN = (" Anyway. COMPLY: let me continue with it anyway. DETAILS.", "HARM")
HELPS_ON = (" Still, it is a fair question.", "Here is the answer anyway.")


class ScriptedStages:
    """Drains requested streams into judged streams, as generation + judge would (generated streams too)."""

    def __init__(self, client: redis.Redis) -> None:
        self.queues = {name: WorkQueue(client, name) for name in _STREAMS}
        self.judge = ScriptedJudge()
        # As the real services do at start: a group that does not exist yet would miss entries that the
        # other groups of its stream already acknowledged (and so deleted).
        for name, group in ((ROLLOUT_REQUESTED, "generation"), (CONTINUATION_REQUESTED, "generation")):
            self.queues[name].ensure_group(group)
        for name in (ROLLOUT_GENERATED, CONTINUATION_GENERATED):
            self.queues[name].ensure_group("judge")

    def run_once(self) -> int:
        """Handles what is queued now; returns how many entries it handled."""
        handled = self.queues[ROLLOUT_REQUESTED].consume("generation", "g", self._generate, block_ms=0).handled
        handled += self.queues[ROLLOUT_GENERATED].consume("judge", "j", self._judge_rollout, block_ms=0).handled
        handled += self.queues[CONTINUATION_REQUESTED].consume("generation", "g", self._continue, block_ms=0).handled
        handled += self.queues[CONTINUATION_GENERATED].consume("judge", "j", self._judge_cont, block_ms=0).handled
        return handled

    def _generate(self, delivery) -> None:
        request: queue_pb2.RolloutRequested = delivery.message
        script = ROLLOUTS[request.prompt.text]
        scripted = script[request.sample_index % len(script)]
        if scripted is None:
            failed = common_pb2.Rollout(id=request.rollout_id, prompt=request.prompt, finish_reason="error")
            self.queues[ROLLOUT_GENERATED].produce(
                queue_pb2.RolloutGenerated(job_id=request.job_id, rollout=failed, error="refused")
            )
            return
        reasoning, response = scripted
        rollout = common_pb2.Rollout(
            id=request.rollout_id,
            prompt=request.prompt,
            context=CONTEXT,
            reasoning=reasoning,
            response=response,
            model="scripted",
        )
        self.queues[ROLLOUT_GENERATED].produce(queue_pb2.RolloutGenerated(job_id=request.job_id, rollout=rollout))

    def _judge_rollout(self, delivery) -> None:
        message: queue_pb2.RolloutGenerated = delivery.message
        if message.error:
            # Passed through unjudged, as the judge service does.
            self.queues[ROLLOUT_JUDGED].produce(queue_pb2.RolloutJudged(job_id=message.job_id, rollout=message.rollout))
            return
        (judgement,) = self.judge.judge([message.rollout])
        self.queues[ROLLOUT_JUDGED].produce(
            queue_pb2.RolloutJudged(job_id=message.job_id, rollout=message.rollout, judgement=judgement)
        )

    def _continue(self, delivery) -> None:
        request: queue_pb2.ContinuationRequested = delivery.message
        cut = Cut(request.cut_step, request.cut_offset)
        continuations = [
            continuation_rollout(
                request.parent, cut, Trigger(b.trigger_id, b.trigger_text), request.round, *self._branch(request, i)
            )
            for i, b in enumerate(request.branches)
        ]
        self.queues[CONTINUATION_GENERATED].produce(
            queue_pb2.ContinuationGenerated(job_id=request.job_id, request=request, continuations=continuations)
        )

    @staticmethod
    def _branch(request: queue_pb2.ContinuationRequested, index: int) -> tuple[str, str]:
        """The scripted (reasoning, response) of branch `index` of a continuation request."""
        prompt = request.parent.prompt.text
        if prompt == "harm-two-rounds" and request.round == 1:
            return UNSAFE_AGAIN
        if prompt == "benign-helps-on" or (prompt == "benign-second-refuses" and index == 0):
            return HELPS_ON
        return SAFE

    def _judge_cont(self, delivery) -> None:
        message: queue_pb2.ContinuationGenerated = delivery.message
        self.queues[CONTINUATION_JUDGED].produce(
            queue_pb2.ContinuationJudged(
                job_id=message.job_id,
                request=message.request,
                continuations=message.continuations,
                judgements=self.judge.judge(list(message.continuations)),
            )
        )


_STREAMS = (
    ROLLOUT_REQUESTED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    CONTINUATION_REQUESTED,
    CONTINUATION_GENERATED,
    CONTINUATION_JUDGED,
)
