"""`intervene data fetch`: copies read from the hub (local folders laid out like hub repositories, read by the real
`datasets` library) are written in the data folder's layout, and the catalog reads them back with the same prompts
as the hub gave, with the hub gone. Also `intervene data list` and fetch's errors. No dataset text is printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner

from shared.datasets import load_prompts
from shared.datasets.hub import forget_unreachable
from tests.shared.datasets.hub_folders import (
    harmbench_hub,
    jbb_hub,
    math500_hub,
    parquet_split,
    point_hub,
    star1_hub,
    strongreject_hub,
    xstest_hub,
)
from tools.cli.main import cli


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    forget_unreachable()
    yield
    forget_unreachable()


def _fields(prompts) -> list[tuple]:
    return [(p.id, p.text, p.dataset, p.benign, dict(p.labels)) for p in prompts]


def test_fetched_copies_read_back_as_the_hub_gave_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    builders = {
        "strongreject": strongreject_hub,  # CSV copy
        "jbb": jbb_hub,  # CSV copy of a config's split, columns renamed
        "harmbench": harmbench_hub,  # three configs in one CSV
        "xstest-safe": xstest_hub,  # CSV shared with xstest-unsafe
        "star1": star1_hub,  # JSON copy keeping lists and mappings
        "math500": math500_hub,  # JSONL copy keeping integers
    }
    for name, build in builders.items():
        point_hub(monkeypatch, name, build(hub / name))
    point_hub(monkeypatch, "xstest-unsafe", hub / "xstest-safe")
    names = [*builders, "xstest-unsafe"]
    empty = tmp_path / "empty"
    from_hub = {name: _fields(load_prompts(name, data_dir=empty)) for name in names}

    out = tmp_path / "copies"
    result = CliRunner().invoke(cli, ["data", "fetch", *names, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"strongreject: 3 rows from {hub / 'strongreject'}:train -> {out / 'strongreject'}" in result.output
    assert (out / "jailbreakbench" / "jbb_behaviors_from_artifacts.csv").is_file()
    assert (out / "star1" / "STAR-1.json").is_file() and (out / "math500" / "test.jsonl").is_file()
    assert "stand-in" not in result.output  # counts and paths, never text

    shutil.rmtree(hub)  # the copies alone must serve every set
    for name in names:
        assert _fields(load_prompts(name, data_dir=out)) == from_hub[name], name
    listed = CliRunner().invoke(cli, ["data", "list", "--data-dir", str(out)])
    assert f"local copy {out / 'strongreject' / 'strongreject_dataset.csv'}" in listed.output
    assert "jbb-benign" in listed.output and "hub JailbreakBench/JBB-Behaviors/behaviors@" in listed.output


def test_hf_sets_are_fetched_to_their_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parquet_split(tmp_path / "acme" / "prompts", "test", [{"id": "a", "text": "first", "n": 1}])
    from_hub = _fields(load_prompts("hf:acme/prompts:test", data_dir=tmp_path / "empty"))
    out = tmp_path / "copies"
    result = CliRunner().invoke(cli, ["data", "fetch", "hf:acme/prompts:test", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "hf" / "acme" / "prompts" / "default" / "test.jsonl").is_file()
    shutil.rmtree(tmp_path / "acme")
    assert _fields(load_prompts("hf:acme/prompts:test", data_dir=out)) == from_hub


def test_fetch_says_what_cannot_be_fetched_and_why(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["data", "fetch", "harmbench-test", "jailbreak-train", "demo-harmful", "gsm8k", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "harmbench-test: 'harmbench-test' cannot be fetched: no hub copy keeps HarmBench's val/test split" in (
        result.output
    )
    assert "jailbreak-train" in result.output and "have no Hugging Face Hub copy" in result.output
    assert "ships with the package" in result.output
    assert "gsm8k: the Hugging Face Hub copy openai/gsm8k/main:test could not be read" in result.output
    assert "unset HF_HUB_OFFLINE" in result.output
    assert not any(tmp_path.rglob("*.csv")) and not any(tmp_path.rglob("*.jsonl"))
