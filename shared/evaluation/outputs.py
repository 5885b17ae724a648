"""Writes an evaluation's report folder: eval.json, eval.md and the PNG plots.

Plots: `harm.png` (reasoning and response harm per benchmark, base vs each adapter, with intervals),
`benign.png` (XSTest compliance/refusal and reasoning accuracy), `success-by-round.png` when a job's counts are
given, `training-curves.png` when a trainer's metrics.jsonl is given. The JSON lists the plots it comes with.

    files = write_report(document, Path("runs/eval"), job=job, training_log=Path("runs/trainer/metrics.jsonl"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.evaluation.plots import BENIGN_METRICS, HARM_METRICS, plot_rates, plot_success_by_round
from shared.evaluation.report import render_markdown, write_json
from shared.evaluation.training_log import plot_curves, read_metrics
from shared.protos.intervene.v1 import common_pb2


@dataclass(frozen=True)
class ReportFiles:
    """Paths of what `write_report` wrote."""

    json: Path
    markdown: Path
    plots: list[Path] = field(default_factory=list)


def write_report(
    document: dict[str, Any],
    out_dir: Path,
    *,
    job: common_pb2.Job | None = None,
    training_log: Path | None = None,
) -> ReportFiles:
    """Write the plots, then the JSON (which names them, and carries the job's rounds and the training summary)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [
        plot_rates(document, HARM_METRICS, out_dir / "harm.png", "harmful ratio"),
        plot_rates(document, BENIGN_METRICS, out_dir / "benign.png", "over-refusal and reasoning"),
    ]
    if job is not None:
        plots.append(plot_success_by_round(job, out_dir / "success-by-round.png"))
        document["intervention_rounds"] = [
            {"round": r.round, "tried": r.tried, "succeeded": r.succeeded} for r in job.rounds
        ]
    if training_log is not None:
        plots.append(plot_curves(training_log, out_dir / "training-curves.png"))
        document["training"] = training_summary(training_log)
    written = [path for path in plots if path is not None]
    document["plots"] = [path.name for path in written]
    json_path = write_json(document, out_dir / "eval.json")
    markdown_path = out_dir / "eval.md"
    markdown_path.write_text(render_markdown(document), encoding="utf-8")
    return ReportFiles(json_path, markdown_path, written)


def training_summary(metrics_path: Path) -> dict[str, Any]:
    """Steps, first and last loss and reward accuracy of a trainer's metrics.jsonl."""
    steps = [r for r in read_metrics(metrics_path) if "step" in r and "loss" in r]
    summary: dict[str, Any] = {"log": str(metrics_path), "steps": steps[-1]["step"] if steps else 0}
    if steps:
        summary.update(
            first_loss=steps[0]["loss"],
            last_loss=steps[-1]["loss"],
            last_reward_accuracy=steps[-1].get("rewards/accuracies"),
        )
    return summary
