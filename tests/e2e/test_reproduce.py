"""`intervene reproduce` at a tiny size: stopped after the pairs stage, then run again, it continues from the stored
pairs instead of making them again, trains (when it has pairs), evaluates and writes results.md; a third run decodes
nothing (every evaluation prompt comes from the cache). Dataset text never reaches the output.

Budgets are tiny and the pairs come from the rules judge so that the run stays short; sizes are the lead's to choose.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.datasets import DATASETS, load_prompts, resolve_data_dir
from tools.cli.main import cli

pytestmark = pytest.mark.slow

TINY = [
    *("--limit", "2", "--benign-limit", "1", "--benign-samples", "2"),
    *("--reasoning-tokens", "16", "--response-tokens", "8"),
    *("--train-steps", "1", "--eval-limit", "2", "--judge", "rules"),
    *("--eval-benchmark", "jbb", "--eval-benchmark", "xstest-safe"),
]


def test_reproduce_resumes_and_writes_the_results_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (resolve_data_dir(None) / DATASETS["star1"].path).is_file():
        pytest.skip("needs STAR-1 and the evaluation sets in ../shared/data")
    monkeypatch.setenv("INTERVENE_RUN_DIR", str(tmp_path / "run"))
    out = tmp_path / "run" / "reproduce"
    first = CliRunner().invoke(cli, ["reproduce", *TINY, "--stop-after", "pairs"])
    assert first.exit_code == 0, first.output
    assert "stopped after the pairs stage" in first.output
    state = json.loads((out / "state.json").read_text())
    assert set(state["done"]) == {"pairs"} and len(state["jobs"]) == 2

    second = CliRunner().invoke(cli, ["reproduce", *TINY])
    assert second.exit_code == 0, second.output
    assert "pairs: done in an earlier run" in second.output and "starting the local stack" not in second.output
    results = (out / "results.md").read_text()
    for heading in (
        "## Command",
        "## Machine and wall time",
        "## Training data",
        "## Evaluation",
        "## Targets",
        "## What did not",
    ):
        assert heading in results
    assert "generations per harmful prompt" in results and "| jbb |" in results
    assert "evaluation scored by: classifier" in results  # not the rules judge that built the pairs
    assert "the run takes <= 60 minutes" in results.split("## Targets")[1]  # no adapter here: the time bar only

    third = CliRunner().invoke(cli, ["reproduce", *TINY])
    assert third.exit_code == 0, third.output
    assert ", 0 decoded" in third.output

    other = [("3" if i and TINY[i - 1] == "--eval-limit" else value) for i, value in enumerate(TINY)]
    changed = CliRunner().invoke(cli, ["reproduce", *other])
    assert changed.exit_code != 0 and "holds a run with other settings (eval_limit)" in changed.output
    for prompt in load_prompts("star1", limit=2, seed=0):
        assert prompt.text not in second.output + results
