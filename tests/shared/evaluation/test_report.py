"""The report: JSON document, Markdown table, judge warning and plots, from a hand-built evaluation run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.evaluation.aggregate import Bootstrap, Kind
from shared.evaluation.benchmarks import Benchmark, BenchmarkSpec, EvalItem
from shared.evaluation.outputs import write_report
from shared.evaluation.report import JudgeRef, ReportContext, build_document, judge_warnings, render_markdown
from shared.evaluation.runner import BenchmarkRun, EvaluationRun, ItemResult
from shared.protos.intervene.v1 import common_pb2

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JUDGE = JudgeRef("classifier", "classifier-v1-abc")


def _items(prefix: str, count: int) -> list[EvalItem]:
    return [EvalItem(common_pb2.Prompt(id=f"{prefix}{i}", text=f"prompt {i}")) for i in range(count)]


def _harm(reasoning: list[bool | None], response: list[bool | None]) -> list[ItemResult]:
    return [
        ItemResult(f"h{i}", {"reasoning_harmful": r, "response_harmful": y}, {"reasoning_verdict": "x"})
        for i, (r, y) in enumerate(zip(reasoning, response, strict=True))
    ]


def _accuracy(correct: list[bool]) -> list[ItemResult]:
    return [ItemResult(f"g{i}", {"accuracy": c}, {"predicted": "5", "reference": "5"}) for i, c in enumerate(correct)]


def make_run() -> EvaluationRun:
    harm = Benchmark(BenchmarkSpec("jbb", Kind.HARM, "jbb"), _items("h", 4))
    math = Benchmark(BenchmarkSpec("gsm8k", Kind.GSM8K, "gsm8k", answer_column="answer"), _items("g", 3))
    return EvaluationRun(
        model="SmolLM2-135M-Instruct",
        models=["base", "policy-v1"],
        judge_name=JUDGE.name,
        judge_version=JUDGE.version,
        benchmarks=[
            BenchmarkRun(
                harm,
                {
                    "base": _harm([True, True, True, False], [True, None, False, False]),
                    "policy-v1": _harm([False, True, False, False], [False, False, False, False]),
                },
            ),
            BenchmarkRun(math, {"base": _accuracy([True, False, False]), "policy-v1": _accuracy([True, True, False])}),
        ],
        seconds=12.3,
    )


def context(**overrides: object) -> ReportContext:
    values: dict[str, object] = {
        "judge_backend": "classifier",
        "sampling": {"temperature": 0.0, "top_p": 1.0, "max_reasoning_tokens": 64, "max_response_tokens": 32},
        "sample": {"limit": 4, "seed": 0},
        "bootstrap": Bootstrap(resamples=1000, seed=0),
        "adapters": {"policy-v1": "runs/adapters/policy-v1"},
    }
    values.update(overrides)
    return ReportContext(**values)


def test_document_holds_rates_intervals_differences_and_per_item_verdicts() -> None:
    document = build_document(make_run(), context())
    jbb = document["benchmarks"]["jbb"]
    assert document["judge"] == {"backend": "classifier", "name": "classifier", "version": "classifier-v1-abc"}
    assert jbb["metrics"]["base"]["reasoning_harmful"]["value"] == pytest.approx(0.75)
    assert jbb["metrics"]["policy-v1"]["reasoning_harmful"]["value"] == pytest.approx(0.25)
    # worst policy: the undetermined response counts as harmful
    assert jbb["metrics"]["base"]["response_harmful"]["value"] == pytest.approx(0.5)
    assert jbb["metrics"]["base"]["response_harmful"]["undetermined"] == 1
    assert jbb["differences"]["policy-v1"]["reasoning_harmful"]["value"] == pytest.approx(-0.5)
    gsm8k = document["benchmarks"]["gsm8k"]
    assert gsm8k["differences"]["policy-v1"]["accuracy"]["value"] == pytest.approx(1 / 3)
    first = jbb["results"]["base"][0]
    assert first == {"id": "h0", "reasoning_harmful": True, "response_harmful": True, "reasoning_verdict": "x"}
    assert document["warnings"] == []
    json.dumps(document)  # serialisable as it is


def test_exclude_policy_changes_the_rate_not_the_count() -> None:
    document = build_document(make_run(), context(policy="exclude"))
    summary = document["benchmarks"]["jbb"]["metrics"]["base"]["response_harmful"]
    assert summary["value"] == pytest.approx(1 / 3) and summary["n"] == 3 and summary["items"] == 4


def test_markdown_table_names_the_judge_and_has_a_column_per_model_and_difference() -> None:
    text = render_markdown(build_document(make_run(), context()))
    assert "judge: **classifier classifier-v1-abc**" in text
    assert "| benchmark | metric | n | base | policy-v1 | Δ policy-v1 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| jbb | reasoning harm"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "4"
    assert cells[3].startswith("75.0% [") and cells[4].startswith("25.0% [")
    assert cells[5].startswith("-50.0 [")
    assert "u1" in next(line for line in text.splitlines() if line.startswith("| jbb | response harm"))
    assert "| gsm8k | accuracy ↑ | 3 |" in text


def test_warns_when_the_judge_that_built_the_pairs_scores_the_evaluation() -> None:
    same = context(pairs_judges=(JudgeRef("classifier", "classifier-v1-abc"),), pairs_source="pairs.jsonl")
    document = build_document(make_run(), same)
    assert len(document["warnings"]) == 1 and "also built the training pairs of pairs.jsonl" in document["warnings"][0]
    assert "**warning:**" in render_markdown(document)
    other = judge_warnings(JUDGE, (JudgeRef("rules", "rules-v1"),), "pairs.jsonl")
    assert other == []
    older = judge_warnings(JUDGE, (JudgeRef("classifier", "classifier-v0"),), "p")
    assert "version classifier-v0" in older[0]


def test_report_folder_has_json_markdown_and_plots(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        "\n".join(
            json.dumps({"step": step, "loss": 0.7 - 0.05 * step, "rewards/accuracies": 0.5, "tokens_per_s": 10.0})
            for step in range(1, 5)
        )
        + "\n"
    )
    job = common_pb2.Job(
        id="j-1", name="demo", rounds=[common_pb2.RoundStats(round=1, tried=6, succeeded=2)], prompts=4
    )
    document = build_document(make_run(), context())
    files = write_report(document, tmp_path / "report", job=job, training_log=metrics)
    names = sorted(path.name for path in files.plots)
    assert names == ["benign.png", "harm.png", "success-by-round.png", "training-curves.png"]
    for path in files.plots:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000
    written = json.loads(files.json.read_text())
    assert written["plots"] == [path.name for path in files.plots]
    assert written["intervention_rounds"] == [{"round": 1, "tried": 6, "succeeded": 2}]
    assert written["training"]["steps"] == 4 and written["training"]["last_loss"] == pytest.approx(0.5)
    assert files.markdown.read_text().startswith("## Evaluation of SmolLM2-135M-Instruct")


def test_plots_are_skipped_when_no_benchmark_has_their_metrics(tmp_path: Path) -> None:
    run = make_run()
    run.benchmarks = run.benchmarks[1:]  # gsm8k only: nothing harmful to plot
    files = write_report(build_document(run, context()), tmp_path)
    assert [path.name for path in files.plots] == ["benign.png"]
