"""A scripted generator and judge: test doubles for the decision logic only (not the services).

The judge labels real sentence steps (the project's one splitter): a step with "COMPLY" is a compliance
cue; reasoning is harmful when any step says "COMPLY" or "DETAILS"; a response is harmful when it says
"HARM" and refuses when it says "cannot help".
"""

from __future__ import annotations

from collections import deque

from shared.intervention.loop import BranchText
from shared.intervention.triggers import Trigger
from shared.judging.steps import split
from shared.protos.intervene.v1 import common_pb2

CONTEXT = "<|im_start|>user\nplease do the thing<|im_end|>\n<|im_start|>assistant\n<think>\n"


class ScriptedGenerator:
    def __init__(self, reasoning: str, response: str, branch_rounds: list[dict[str, BranchText]]) -> None:
        self.reasoning, self.response = reasoning, response
        self.rounds = deque(branch_rounds)
        self.calls: list[tuple[str, str, list[str]]] = []

    def generate(self, prompt: common_pb2.Prompt, sampling: common_pb2.SamplingParams) -> common_pb2.Rollout:
        return common_pb2.Rollout(
            id="r-origin",
            prompt=prompt,
            context=CONTEXT,
            reasoning=self.reasoning,
            response=self.response,
            model="scripted",
        )

    def continue_branches(self, parent, kept: str, triggers: list[Trigger], sampling) -> list[BranchText]:
        self.calls.append((parent.id, kept, [t.id for t in triggers]))
        script = self.rounds.popleft()
        return [script[t.id] for t in triggers]


class ScriptedJudge:
    name, version = "scripted", "1"

    def judge(self, rollouts: list[common_pb2.Rollout]) -> list[common_pb2.Judgement]:
        return [self._one(rollout) for rollout in rollouts]

    def _one(self, rollout: common_pb2.Rollout) -> common_pb2.Judgement:
        steps = []
        for index, (start, end) in enumerate(split(rollout.reasoning), start=1):
            text = rollout.reasoning[start:end]
            label = common_pb2.STEP_LABEL_COMPLIANCE_CUE if "COMPLY" in text else common_pb2.STEP_LABEL_NEUTRAL
            steps.append(common_pb2.Step(index=index, start=start, end=end, label=label))
        cues = [s.index for s in steps[1:] if s.label == common_pb2.STEP_LABEL_COMPLIANCE_CUE]
        harmful_reasoning = "COMPLY" in rollout.reasoning or "DETAILS" in rollout.reasoning
        return common_pb2.Judgement(
            rollout_id=rollout.id,
            steps=steps,
            first_cue=cues[0] if cues else 0,
            reasoning_verdict=common_pb2.VERDICT_HARMFUL if harmful_reasoning else common_pb2.VERDICT_SAFE,
            response_verdict=common_pb2.VERDICT_HARMFUL if "HARM" in rollout.response else common_pb2.VERDICT_SAFE,
            response_refused="cannot help" in rollout.response,
            judge_name=self.name,
            judge_version=self.version,
        )
