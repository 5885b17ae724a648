"""Fixtures of the reliability drills: the tiny model, one drill stack per session and its undisturbed baseline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.models.tiny import tiny_model
from shared.protos.intervene.v1 import common_pb2
from tests.reliability.drill import PROMPTS, Baseline, DrillStack, start_drill_stack
from tools.stack import local


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def drill_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_folder: Path) -> Iterator[DrillStack]:
    folder = tmp_path_factory.mktemp("drill-stack")
    stack = start_drill_stack(folder, tiny_model_folder)
    try:
        yield stack
    finally:
        local.down(folder)


@pytest.fixture(scope="session")
def baseline(drill_stack: DrillStack) -> Baseline:
    """One undisturbed job: what every disturbed job must reproduce."""
    job = drill_stack.run_job("undisturbed")
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.failed_items == 0
    assert job.rollouts_judged == job.rollouts_requested == len(PROMPTS)
    ids = drill_stack.pair_ids(job.id)
    assert job.pairs_created == len(ids) > 0, "the planted cues must yield pairs, or the comparisons prove nothing"
    drill_stack.produced |= ids
    return Baseline(job, frozenset(ids))
