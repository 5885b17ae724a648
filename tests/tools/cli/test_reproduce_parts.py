"""The parts of `intervene reproduce` that need no model: decontamination of the training prompts against the
evaluation sets (real data, skipped without it), the evaluation judge it picks, and the run state's guard."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from shared.datasets import DATASETS, load_prompts, resolve_data_dir
from shared.protos.intervene.v1 import common_pb2
from tools.cli.reproduce import DECONTAMINATE_AGAINST, RunState, _eval_judge, decontaminate


def test_decontamination_drops_star1_prompts_that_are_in_harmbench() -> None:
    if not (resolve_data_dir(None) / DATASETS["star1"].path).is_file():
        pytest.skip("needs ../shared/data")
    prompts = load_prompts("star1")
    kept, by_set, missing = decontaminate(prompts, DECONTAMINATE_AGAINST, None)
    assert not missing
    # The data README lists 26 exact STAR-1 overlaps with HarmBench test; n-gram matching finds at least those.
    assert by_set.get("harmbench-test", 0) >= 26
    assert len(kept) == len(prompts) - len({p.id for p in prompts} - {p.id for p in kept})
    assert len(kept) < len(prompts)


def test_decontamination_keeps_unrelated_prompts() -> None:
    prompts = [common_pb2.Prompt(id="x", text="please sort these seven numbers in ascending order for me")]
    kept, by_set, _ = decontaminate(prompts, ("demo-harmful",), None)
    assert kept == prompts and by_set == {}


def test_the_evaluation_judge_is_never_the_pairs_judge_by_default() -> None:
    assert _eval_judge(None, "classifier", None)[0] == "rules"
    assert _eval_judge(None, "rules", None)[0] == "classifier"
    assert "weak" in _eval_judge(None, "classifier", None)[1]
    assert _eval_judge(None, "classifier", "http://h:8000/v1")[0] == "strongreject"
    assert _eval_judge("harmbench", "classifier", "http://h:8000/v1")[0] == "harmbench"


def test_a_run_folder_refuses_other_settings(tmp_path: Path) -> None:
    state = RunState(tmp_path / "run", {"limit": 2}, fresh=False)
    state.finish("pairs", {"pairs": 0}, 1.5)
    assert RunState(tmp_path / "run", {"limit": 2}, fresh=False).done("pairs") == {"pairs": 0}
    with pytest.raises(click.UsageError, match=r"other settings \(limit\)"):
        RunState(tmp_path / "run", {"limit": 3}, fresh=False)
    assert RunState(tmp_path / "run", {"limit": 3}, fresh=True).done("pairs") is None
