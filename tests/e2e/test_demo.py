"""`intervene demo` end to end with tiny budgets: the local stack makes (few or no) pairs, the demo trains when it has
some, evaluates base (and adapter) and ends with the before/after table and the paths of existing plots.

Budgets are tiny and the judge is the rules back end so that the run stays short; the product's default budgets and
the classifier judge are what `make demo` runs. Dataset text never reaches the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.datasets import load_prompts
from tools.cli.main import cli

pytestmark = pytest.mark.slow

TINY = [
    *("--limit", "2", "--benign-samples", "2", "--max-rounds", "1"),
    *("--reasoning-tokens", "8", "--response-tokens", "4"),
    *("--train-steps", "1", "--eval-limit", "2", "--judge", "rules"),
]


def test_demo_runs_the_loop_and_ends_with_the_table_and_the_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERVENE_RUN_DIR", str(tmp_path / "run"))
    result = CliRunner().invoke(cli, ["demo", *TINY])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("stopped: ") for line in lines)  # the stack is down before training
    pairs = int(next(line for line in lines if line.startswith("exported ")).split()[1])
    report = Path(next(line for line in lines if line.startswith("report: ")).split()[1])
    document = json.loads(report.read_text())
    assert document["judge"]["name"] == "rules"
    assert document["models"] == (["base", "demo-policy-v1"] if pairs else ["base"])
    assert all(bench["items"] == 2 for bench in document["benchmarks"].values())
    assert "| benchmark | metric | n | base" in result.stdout
    plots = [Path(line.removeprefix("plot: ")) for line in lines if line.startswith("plot: ")]
    assert {"harm.png", "benign.png", "success-by-round.png"} <= {plot.name for plot in plots}
    assert all(plot.is_file() for plot in plots)
    assert json.loads((tmp_path / "run" / "demo-job.json").read_text())["name"] == "demo demo-harmful"
    for prompt in load_prompts("demo-harmful"):
        assert prompt.text not in result.output
