"""Deterministic ids for rollouts and continuations, so a redelivered queue entry reproduces the same id."""

from __future__ import annotations

import hashlib


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:32]


def rollout_id(job_id: str, prompt_id: str, sample_index: int) -> str:
    """Id of the `sample_index`-th rollout of a prompt in a job."""
    return "r-" + _digest("rollout", job_id, prompt_id, sample_index)


def continuation_id(parent_id: str, trigger_id: str, round_: int) -> str:
    """Id of the continuation of `parent_id` from a trigger in a round."""
    return "c-" + _digest("continuation", parent_id, trigger_id, round_)
