"""The results page of `intervene reproduce`: the command, machine, wall times, pair counts, the table, the plots and
what did not work, as Markdown (docs/results.md is one such page, pasted from a measured run).

    (out_dir / "results.md").write_text(render_results(run_info))
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

from shared.evaluation.report import render_markdown


def machine() -> dict[str, Any]:
    """Where the run happened: OS, Python, CPU count, accelerator and the load average."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["accelerator"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    except ImportError:  # a core install without torch never gets this far, but the page must still render
        info["accelerator"] = "unknown"
    return info


@dataclass
class RunInfo:
    """What the page reports (every figure comes from the run's own files)."""

    command: str
    machine: dict[str, Any]
    seconds: dict[str, float]
    config: dict[str, Any]
    jobs: list[dict[str, Any]]
    pairs: dict[str, Any]
    decontamination: dict[str, Any]
    evaluation: dict[str, Any] | None
    plots: list[str]
    judges: dict[str, str]
    problems: list[str] = field(default_factory=list)
    # The bars of `shared.evaluation.targets`, one line each ("met: ..." or "**missed**: ...").
    targets: list[str] = field(default_factory=list)
    # Wall time of the invocation that wrote the page (the stages' times add up every invocation's share).
    invocation_seconds: float = 0.0


def _n(record: dict[str, Any], key: str) -> int:
    """An int64 of a job in protobuf JSON (written as a string)."""
    return int(record.get(key, 0) or 0)


def _job_lines(job: dict[str, Any]) -> list[str]:
    rounds = ", ".join(f"round {_n(r, 'round')}: {_n(r, 'succeeded')}/{_n(r, 'tried')}" for r in job.get("rounds", []))
    lines = [
        f"- **{job.get('name', '')}**: {_n(job, 'prompts')} prompts, {_n(job, 'rolloutsGenerated')} rollouts, "
        f"{_n(job, 'rolloutsUnsafe')} unsafe, {_n(job, 'interventionsTried')} intervened, "
        f"{_n(job, 'continuationsGenerated')} continuations, {_n(job, 'pairsCreated')} pairs"
        + (f"; made safe by round (rollouts made safe / intervened on): {rounds}" if rounds else ""),
    ]
    if job.get("noPairReasons"):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(job["noPairReasons"].items()))
        lines.append(f"  - no pair, by reason: {reasons}")
    if job.get("pairsDropped"):
        lines.append(
            "  - safe branches dropped by the pair checks: "
            + ", ".join(f"{k} {v}" for k, v in sorted(job["pairsDropped"].items()))
        )
    return lines


def render_results(info: RunInfo) -> str:
    """The results page."""
    total = sum(info.seconds.values())
    m = info.machine
    lines = [
        "# Results: Intervened Preference Optimization on the embedded default",
        "",
        "## Command",
        "",
        "```bash",
        info.command,
        "```",
        "",
        "## Machine and wall time",
        "",
        f"- {m.get('platform')}, Python {m.get('python')}, {m.get('cpus')} CPUs, accelerator: {m.get('accelerator')}, "
        f"torch {m.get('torch', '?')}; load average at the end {m.get('load_average')}",
        "- wall time: "
        + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in info.seconds.items())
        + f"; total {total:.0f} s ({total / 60:.1f} min) over every invocation; the last one took "
        f"{info.invocation_seconds:.0f} s",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in info.config.items()),
        "",
        "## Judges",
        "",
        *(f"- {role}: {text}" for role, text in info.judges.items()),
        "",
        "## Training data",
        "",
        f"- decontamination: {info.decontamination.get('dropped', 0)} of {info.decontamination.get('prompts', 0)} "
        f"training prompts dropped for overlapping an evaluation set ({info.decontamination.get('by_set') or 'none'}); "
        f"the trainer's own check on the pairs: {info.decontamination.get('trainer_check', 'not run')}",
    ]
    for job in info.jobs:
        lines += _job_lines(job)
    pairs = info.pairs
    harmful_prompts = next((_n(j, "prompts") for j in info.jobs if "over-refusal" not in j.get("name", "")), 0)
    generations = pairs.get("generations", 0)
    per_prompt = generations / harmful_prompts if harmful_prompts else 0.0
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(pairs.get("by_kind", {}).items())) or "none"
    lines += [
        f"- pairs: {pairs.get('total', 0)} ({kinds}), from {pairs.get('rollouts', 0)} rollouts, "
        f"at most {pairs.get('max_per_rollout', 0)} per rollout",
        f"- harmful pairs by round: {pairs.get('by_round') or 'none'}; by trigger: {pairs.get('by_trigger') or 'none'}",
        f"- generations per harmful prompt: {per_prompt:.2f} (rollouts + continuations over {harmful_prompts} prompts; "
        "the paper: at most 14)",
        "",
        "## Evaluation (base vs adapter, held out)",
        "",
    ]
    if info.evaluation is None:
        lines.append("not run")
    else:
        lines.append(render_markdown(info.evaluation).split("\n", 1)[1].strip())
    lines += ["", "## Plots", ""]
    lines += [f"![{os.path.basename(plot)}]({plot})" for plot in info.plots] or ["none"]
    lines += ["", "## Targets", ""]
    lines += [f"- {target}" for target in info.targets] or ["- not checked (no evaluation)"]
    lines += ["", "## What did not work", ""]
    lines += [f"- {problem}" for problem in info.problems] or ["- nothing recorded by the run"]
    return "\n".join(lines) + "\n"
