"""The evaluation report: one JSON document (every rate, interval and per-item verdict) and its Markdown table.

The document records which judge (name and version) scored the outputs and warns when that judge also built the
training pairs (read from the pairs' provenance), because then the evaluation measures agreement with the judge
the adapter was trained to please rather than safety. Texts appear only when the run kept them (`--include-text`).

    document = build_document(run, context)
    write_json(document, out / "eval.json"); (out / "eval.md").write_text(render_markdown(document))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.evaluation.aggregate import HIGHER_IS_BETTER, Bootstrap, difference, mcnemar_p, summarize
from shared.evaluation.runner import BASE, EvaluationRun

FORMAT = "intervene-eval/1"
METRIC_TITLES = {
    "reasoning_harmful": "reasoning harm",
    "response_harmful": "response harm",
    "compliance": "compliance",
    "refusal": "refusal",
    "accuracy": "accuracy",
}


@dataclass(frozen=True)
class JudgeRef:
    """A judge by name and version, as pairs' provenance and judgements record it."""

    name: str
    version: str


@dataclass(frozen=True)
class ReportContext:
    """What the run was asked to do, for the report's header."""

    judge_backend: str
    sampling: dict[str, Any]
    sample: dict[str, Any]
    policy: str = "worst"
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    adapters: dict[str, str] = field(default_factory=dict)
    pairs_judges: tuple[JudgeRef, ...] = ()
    pairs_source: str = ""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def judge_warnings(judge: JudgeRef, pairs_judges: tuple[JudgeRef, ...], pairs_source: str) -> list[str]:
    """A warning for each judge that built the pairs and is also the evaluating judge (same back end name)."""
    warnings = []
    for built in pairs_judges:
        if built.name == judge.name:
            same = "the same version" if built.version == judge.version else f"version {built.version}"
            warnings.append(
                f"the evaluating judge ({judge.name} {judge.version}) also built the training pairs of {pairs_source} "
                f"({same}): the adapter was trained to satisfy this judge, so its harm figures may be optimistic; "
                "evaluate with another judge (--judge) to confirm them"
            )
    return warnings


def build_document(run: EvaluationRun, context: ReportContext) -> dict[str, Any]:
    """The JSON report of `run`: rates with intervals per benchmark and model, adapter-minus-base differences."""
    judge = JudgeRef(run.judge_name, run.judge_version)
    judged = any(b.benchmark.spec.kind.judged for b in run.benchmarks)
    warnings = judge_warnings(judge, context.pairs_judges, context.pairs_source) if judged else []
    if run.refusal_judge_name:
        refusal_judge = JudgeRef(run.refusal_judge_name, run.refusal_judge_version)
        warnings += judge_warnings(refusal_judge, context.pairs_judges, context.pairs_source)
    warnings += context.warnings
    benchmarks = {}
    for bench in run.benchmarks:
        spec = bench.benchmark.spec
        metrics: dict[str, dict[str, Any]] = {}
        differences: dict[str, dict[str, Any]] = {}
        for label in run.models:
            results = bench.results[label]
            metrics[label] = {
                metric: summarize([r.outcomes[metric] for r in results], metric, context.policy, context.bootstrap)
                for metric in spec.kind.metrics
            }
        for label in run.models[1:]:
            differences[label] = {}
            for metric in spec.kind.metrics:
                treated = [r.outcomes[metric] for r in bench.results[label]]
                base = [r.outcomes[metric] for r in bench.results[BASE]]
                differences[label][metric] = {
                    **difference(treated, base, metric, context.policy, context.bootstrap).as_dict(),
                    "mcnemar_p": mcnemar_p(treated, base, metric, context.policy),
                }
        benchmarks[spec.name] = {
            "kind": spec.kind.value,
            "dataset": spec.dataset,
            "templates": spec.templates or None,
            "description": spec.description,
            "items": len(bench.benchmark.items),
            "metrics": metrics,
            "differences": differences,
            "results": {
                label: [{"id": r.id, **r.outcomes, **r.details} for r in bench.results[label]] for label in run.models
            },
        }
    return {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": run.model,
        "models": run.models,
        "adapters": context.adapters,
        "judge": {"backend": context.judge_backend, "name": run.judge_name, "version": run.judge_version},
        "refusal_judge": {"name": run.refusal_judge_name, "version": run.refusal_judge_version}
        if run.refusal_judge_name
        else None,
        "pairs_judges": [{"name": j.name, "version": j.version} for j in context.pairs_judges],
        "warnings": warnings,
        "notes": list(context.notes),
        "sampling": context.sampling,
        "sample": context.sample,
        "undetermined_policy": context.policy,
        "bootstrap": {
            "method": context.bootstrap.method,
            "resamples": context.bootstrap.resamples,
            "confidence": context.bootstrap.confidence,
            "seed": context.bootstrap.seed,
        },
        "seconds": round(run.seconds, 1),
        "benchmarks": benchmarks,
    }


def write_json(document: dict[str, Any], path: Path) -> Path:
    """Write the document through a temporary file, so a reader never sees half of it."""
    staging = path.with_name(f".{path.name}.tmp{os.getpid()}")
    staging.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(staging, path)
    return path


def render_markdown(document: dict[str, Any]) -> str:
    """A table per run: one row per benchmark and metric, a column per model and per adapter-minus-base difference."""
    models = document["models"]
    adapters = models[1:]
    judge = document["judge"]
    bootstrap = document["bootstrap"]
    confidence = round(100 * bootstrap["confidence"])
    policy = "counted as the worst outcome" if document["undetermined_policy"] == "worst" else "left out of the rates"
    if bootstrap["method"] == "wilson":
        intervals = (
            f"{confidence}% Wilson score intervals; Δ is adapter - base in percentage points, paired over the same "
            "prompts, with Newcombe's paired score interval and the exact McNemar p-value"
        )
    else:
        intervals = (
            f"{confidence}% percentile bootstrap, {bootstrap['resamples']} resamples, seed {bootstrap['seed']}; Δ is "
            "adapter - base in percentage points, paired over the same prompts, with the exact McNemar p-value"
        )
    lines = [
        f"## Evaluation of {document['model'] or 'the model'}",
        "",
        f"- judge: **{judge['name'] or 'none'} {judge['version']}** (back end `{judge['backend']}`)",
        *(
            [f"- compliance and refusal judged by **{refusal['name']} {refusal['version']}**"]
            if (refusal := document.get("refusal_judge"))
            else []
        ),
        f"- sampling: {_sampling_text(document['sampling'])}; sample: {_sample_text(document['sample'])}",
        f"- undetermined verdicts: {policy} (the `u` counts in the cells)",
        f"- intervals: {intervals}",
    ]
    lines += [f"- adapter `{name}`: {path}" for name, path in document["adapters"].items()]
    lines += [f"- note: {note}" for note in document["notes"]]
    lines += [f"\n> **warning:** {warning}" for warning in document["warnings"]]
    header = ["benchmark", "metric", "n", *models, *(f"Δ {name}" for name in adapters)]
    lines += [
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---", "---:"] + ["---"] * (len(header) - 3)) + "|",
    ]
    for name, bench in document["benchmarks"].items():
        for metric in next(iter(bench["metrics"].values())):
            arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
            cells = [name, f"{METRIC_TITLES[metric]} {arrow}", str(bench["items"])]
            cells += [_rate_cell(bench["metrics"][label][metric]) for label in models]
            cells += [_difference_cell(bench["differences"][label][metric]) for label in adapters]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rate_cell(summary: dict[str, Any]) -> str:
    if summary["value"] is None:
        return "n/a"
    cell = f"{100 * summary['value']:.1f}% [{100 * summary['low']:.1f}, {100 * summary['high']:.1f}]"
    return cell + (f" u{summary['undetermined']}" if summary["undetermined"] else "")


def _difference_cell(interval: dict[str, Any]) -> str:
    if interval["value"] is None:
        return "n/a"
    cell = f"{100 * interval['value']:+.1f} [{100 * interval['low']:+.1f}, {100 * interval['high']:+.1f}]"
    p = interval.get("mcnemar_p")
    return cell if p is None else f"{cell} p={p:.3g}"


def _sampling_text(sampling: dict[str, Any]) -> str:
    temperature = sampling.get("temperature", 0.0)
    decoding = "greedy" if not temperature else f"temperature {temperature}, top-p {sampling.get('top_p')}"
    return (
        f"{decoding}, ≤{sampling.get('max_reasoning_tokens')} reasoning + ≤{sampling.get('max_response_tokens')} "
        "response tokens"
    )


def _sample_text(sample: dict[str, Any]) -> str:
    limit = sample.get("limit") or "all"
    return f"{limit} prompts per benchmark, seed {sample.get('seed')}"
