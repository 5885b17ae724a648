"""The results page renders from a job's protobuf JSON (int64 counts come as strings) and an evaluation document."""

from __future__ import annotations

from google.protobuf import json_format

from shared.evaluation.results import RunInfo, render_results
from shared.protos.intervene.v1 import common_pb2


def test_the_page_has_every_section_and_the_generation_count() -> None:
    job = common_pb2.Job(
        name="reproduce star1",
        prompts=4,
        rollouts_generated=4,
        rollouts_unsafe=3,
        interventions_tried=2,
        continuations_generated=12,
        pairs_created=2,
        rounds=[common_pb2.RoundStats(round=1, tried=2, succeeded=2)],
        pairs_dropped={"over_cap": 3},
    )
    info = RunInfo(
        command="intervene reproduce --limit 4",
        machine={"platform": "Linux", "python": "3.11", "cpus": 2, "accelerator": "none (CPU)", "load_average": [1]},
        seconds={"pairs": 60.0, "train": 30.0, "eval": 30.0},
        config={"limit": 4},
        jobs=[json_format.MessageToDict(job)],
        pairs={"total": 2, "by_kind": {"harmful": 2}, "rollouts": 2, "max_per_rollout": 1, "generations": 16},
        decontamination={"prompts": 5, "dropped": 1, "by_set": {"harmbench-test": 1}},
        evaluation=None,
        plots=[],
        judges={"pairs built by": "classifier"},
        problems=["xstest-safe compliance (base): 1 of 2 undetermined"],
        targets=["**missed**: xstest-safe compliance falls by <= 10 points: 99.0% -> 5.0% (-94.0 points)"],
    )
    page = render_results(info)
    assert "total 120 s (2.0 min) over every invocation" in page
    assert "4 prompts, 4 rollouts, 3 unsafe, 2 intervened, 12 continuations, 2 pairs" in page
    assert "round 1: 2/2" in page and "over_cap 3" in page
    assert "generations per harmful prompt: 4.00" in page
    assert "1 of 5 training prompts dropped" in page and "- xstest-safe compliance" in page
    targets = page.split("## Targets")[1].split("## What did not work")[0]
    assert "- **missed**: xstest-safe compliance falls by <= 10 points" in targets
