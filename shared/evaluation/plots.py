"""PNG plots of an evaluation and of the loop around it (matplotlib, Agg back end: no display needed).

- `plot_rates`: one panel per metric (reasoning harm, response harm; or compliance, refusal, accuracy), a group of
  bars per benchmark, one bar per model (base, then each adapter), with the bootstrap intervals as error bars.
- `plot_success_by_round`: the share of intervened rollouts made safe in each intervention round of a job.
- Training curves come from `shared.evaluation.training_log.plot_curves`.

Each returns None when there is nothing to draw, or when matplotlib is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.evaluation.report import METRIC_TITLES
from shared.protos.intervene.v1 import common_pb2

HARM_METRICS = ("reasoning_harmful", "response_harmful")
BENIGN_METRICS = ("compliance", "refusal", "accuracy")
_COLOURS = ("#8c8c8c", "#3a7d44", "#2b6cb0", "#c05621", "#6b46c1", "#b83280")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rates(document: dict[str, Any], metrics: tuple[str, ...], path: Path, title: str) -> Path | None:
    """Bars of `metrics` per benchmark and model from an evaluation document, with their intervals."""
    panels = [
        (metric, [name for name, b in document["benchmarks"].items() if metric in b["metrics"][document["models"][0]]])
        for metric in metrics
    ]
    panels = [(metric, names) for metric, names in panels if names]
    plt = _pyplot()
    if not panels or plt is None:
        return None
    models = document["models"]
    width = 0.8 / len(models)
    figure, axes = plt.subplots(
        1, len(panels), figsize=(max(5.0, 1.2 * max(len(n) for _, n in panels) + 2) * len(panels), 4.2), squeeze=False
    )
    for axis, (metric, names) in zip(axes[0], panels, strict=True):
        for index, label in enumerate(models):
            summaries = [document["benchmarks"][name]["metrics"][label][metric] for name in names]
            values = [100 * (s["value"] or 0.0) for s in summaries]
            errors = [
                [100 * ((s["value"] or 0.0) - (s["low"] or 0.0)) for s in summaries],
                [100 * ((s["high"] or 0.0) - (s["value"] or 0.0)) for s in summaries],
            ]
            positions = [x + (index - (len(models) - 1) / 2) * width for x in range(len(names))]
            bars = axis.bar(
                positions, values, width, yerr=errors, capsize=3, label=label, color=_COLOURS[index % len(_COLOURS)]
            )
            axis.bar_label(bars, labels=[f"{value:.0f}%" for value in values], label_type="center", fontsize="small")
        axis.set_xticks(range(len(names)))
        axis.set_xticklabels(names, rotation=20, ha="right")
        axis.set_ylim(0, 105)
        axis.set_ylabel(f"{METRIC_TITLES[metric]} (%)")
        axis.set_title(METRIC_TITLES[metric])
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    judge = document["judge"]
    scorer = f"judge {judge['name']} {judge['version']}" if judge["name"] else "no judge"
    figure.suptitle(f"{title}\n{document['model']}, {scorer}", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_success_by_round(job: common_pb2.Job, path: Path) -> Path | None:
    """A bar chart of the share of tried interventions that made the rollout safe, per round of `job`."""
    plt = _pyplot()
    if plt is None or not job.rounds:
        return None
    rounds = [stats.round for stats in job.rounds]
    shares = [100 * stats.succeeded / stats.tried if stats.tried else 0 for stats in job.rounds]
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar([str(r) for r in rounds], shares, color="#3a7d44")
    axis.set_xlabel("intervention round")
    axis.set_ylabel("rollouts made safe (%)")
    axis.set_ylim(0, 100)
    axis.set_title(f"{job.name or job.id}: success by round")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
