"""Builds valid pairs for tests (benign placeholder text)."""

from __future__ import annotations

from shared.protos.intervene.v1 import common_pb2


def make_pair(index: int, dataset: str = "unit", model: str = "tiny", job_id: str = "job-1") -> common_pb2.Pair:
    return common_pb2.Pair(
        prompt=common_pb2.Prompt(id=f"p{index}", text=f"request number {index}", dataset=dataset),
        context=f"<|im_start|>user\nrequest number {index}<|im_end|>\n<|im_start|>assistant\n<think>\n",
        prefix="The user asks for something. ",
        chosen=f"Wait, I should not help with that. I will decline. {index}",
        rejected=f"I'll start by working out how to do it. {index}",
        kind=common_pb2.PAIR_KIND_HARMFUL,
        provenance=common_pb2.Provenance(rollout_id=f"r{index}", model=model, job_id=job_id, divergence_step=2),
    )
