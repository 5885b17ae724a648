"""Reads a trainer's metrics.jsonl (TRL's names plus throughput) and plots its curves, for reports and the trainer.

The trainer writes the file (`shared.training.metrics.MetricsLog`); reading and plotting live here so that the
evaluation report, which shows the curves and a summary, does not import the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

CURVES = ["loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "tokens_per_s"]


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics file (a torn last line is ignored)."""
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_curves(metrics_path: Path, png_path: Path) -> Path | None:
    """Plot loss, reward margins/accuracy, rewards and tokens/s against the step; None when there is nothing."""
    records = [r for r in read_metrics(metrics_path) if "step" in r and "loss" in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    steps = [r["step"] for r in records]
    for axis, name in zip(axes.flat, CURVES, strict=True):
        axis.plot(steps, [r.get(name, float("nan")) for r in records])
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.suptitle("suffix DPO training")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
