"""The loop's `Generator` and `TraceJudge` over in-process back ends: no services, no queues.

    generator = BackendGenerator(create_backend(GenerationSettings(auth_disabled=True)))
    judge = BackendJudge(RulesJudge())
    outcome = InterventionLoop(generator, judge, load_pool().select(), "default-v1").run(prompt, sampling)

Used by `bench/pipeline_overhead.py` as the baseline the services are measured against, and by anyone who
wants the algorithm in a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.intervention.ids import rollout_id
from shared.intervention.loop import BranchText, branch_texts, continue_request
from shared.intervention.triggers import Trigger
from shared.judging.base import Judge, TraceInput
from shared.protos.intervene.v1 import common_pb2, generation_pb2


class BackendGenerator:
    """A `Generator` over a `shared.generation` back end (the same code the generation service runs)."""

    def __init__(self, backend: Any, adapter: str = "", call_id: str = "local") -> None:
        self.backend = backend
        self.adapter = adapter
        self.call_id = call_id

    def generate_many(
        self, prompts: Sequence[common_pb2.Prompt], sampling: common_pb2.SamplingParams
    ) -> list[common_pb2.Rollout]:
        """One rollout per prompt, decoded as one batch."""
        [reply] = self.backend.generate(
            [generation_pb2.GenerateRequest(prompts=list(prompts), n=1, sampling=sampling, adapter=self.adapter)]
        )
        rollouts = list(reply.rollouts)
        for prompt, rollout in zip(prompts, rollouts, strict=True):
            rollout.id = rollout_id(self.call_id, prompt.id, 0)
        return rollouts

    def generate(self, prompt: common_pb2.Prompt, sampling: common_pb2.SamplingParams) -> common_pb2.Rollout:
        return self.generate_many([prompt], sampling)[0]

    def continue_branches(
        self, parent: common_pb2.Rollout, kept: str, triggers: list[Trigger], sampling: common_pb2.SamplingParams
    ) -> list[BranchText]:
        [reply] = self.backend.continue_branches([continue_request(parent, kept, triggers, sampling, self.adapter)])
        return branch_texts(reply, triggers)


class BackendJudge:
    """A `TraceJudge` over a `shared.judging` judge (the same code the judge service runs)."""

    def __init__(self, judge: Judge) -> None:
        self.inner = judge

    def judge(self, rollouts: list[common_pb2.Rollout]) -> list[common_pb2.Judgement]:
        traces = [TraceInput(r.reasoning, r.response, r.prompt.text, r.id) for r in rollouts]
        return [judgement.to_proto() for judgement in self.inner.judge_batch(traces)]
