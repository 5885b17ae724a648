"""Runs an evaluation: every benchmark's prompts through the base model and each adapter, then judge or answer check.

Generation goes through a `generate` callable with the generation API's shape (a list of `GenerateRequest`s in,
their `GenerateResponse`s out): an in-process back end's `generate` (the default: `create_backend(...)`) or a running
generation service's stub (`remote_generate`). Prompts are sorted by length before they are batched, so a batch of
short questions is not padded to a jailbreak template's length. Each prompt gets one sample.

    backend = create_backend(GenerationSettings(auth_disabled=True, consume_queue=False))
    backend.load_adapter("policy-v1", "runs/trainer/adapters/policy-v1")
    run = run_evaluation(backend.generate, make_judge("classifier"), benchmarks, ["policy-v1"], RunOptions(sampling))

Texts (prompts, reasoning, responses) stay in memory and reach the report only with `include_text`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from shared.evaluation.aggregate import Kind, Outcome, judged_outcomes
from shared.evaluation.benchmarks import Benchmark, EvalItem
from shared.judging.base import Judge, TraceInput
from shared.protos.intervene.v1 import common_pb2, generation_pb2

BASE = "base"

Generate = Callable[[Sequence[generation_pb2.GenerateRequest]], Sequence[generation_pb2.GenerateResponse]]


@dataclass(frozen=True)
class RunOptions:
    """How the prompts are decoded and what the results keep."""

    sampling: common_pb2.SamplingParams
    batch_size: int = 32
    include_text: bool = False
    progress: bool = True


@dataclass
class ItemResult:
    """One prompt's outcome on each metric of its benchmark, and what led to it (verdicts, tokens, answers)."""

    id: str
    outcomes: dict[str, Outcome]
    details: dict[str, Any]


@dataclass
class BenchmarkRun:
    """A benchmark's items and, per model label, their results in the same order."""

    benchmark: Benchmark
    results: dict[str, list[ItemResult]] = field(default_factory=dict)


@dataclass
class EvaluationRun:
    """Everything an evaluation measured, before aggregation."""

    model: str
    models: list[str]
    judge_name: str
    judge_version: str
    benchmarks: list[BenchmarkRun]
    seconds: float
    # The judge of the compliance and refusal sets when it is not `judge` (a grader that does not detect refusal).
    refusal_judge_name: str = ""
    refusal_judge_version: str = ""


def run_evaluation(
    generate: Generate,
    judge: Judge | None,
    benchmarks: Sequence[Benchmark],
    adapters: Sequence[str],
    options: RunOptions,
    refusal_judge: Judge | None = None,
) -> EvaluationRun:
    """Decode every benchmark with the base model (label `base`) and each adapter, and score the outputs.

    `judge` may be None only when no benchmark needs one (reasoning sets alone). `refusal_judge` scores the compliance
    and refusal sets instead of `judge` (needed when `judge` does not detect refusals).
    """
    if judge is None and any(b.spec.kind.judged for b in benchmarks):
        raise ValueError("a judge is needed: the harm, compliance and refusal benchmarks are scored by one")
    refusals = refusal_judge or judge
    if (
        refusals is not None
        and not refusals.detects_refusal
        and any(b.spec.kind.judged and b.spec.kind is not Kind.HARM for b in benchmarks)
    ):
        raise ValueError(
            f"the {refusals.name} judge does not say whether a response refuses, which the compliance and refusal "
            "benchmarks measure: give a refusal judge that does (--refusal-judge), or leave those benchmarks out"
        )
    started = time.monotonic()
    runs = [BenchmarkRun(benchmark) for benchmark in benchmarks]
    models = [BASE, *adapters]
    model_name = ""
    for label, adapter in zip(models, ["", *adapters], strict=True):
        rollouts = _decode(generate, runs, adapter, label, options)
        model_name = model_name or next((r.model for rs in rollouts for r in rs), "")
        for run, benchmark_rollouts in zip(runs, rollouts, strict=True):
            scorer = judge if run.benchmark.spec.kind is Kind.HARM else refusals
            run.results[label] = _score(run.benchmark, benchmark_rollouts, scorer, options.include_text)
    return EvaluationRun(
        model=model_name,
        models=models,
        judge_name=judge.name if judge else "",
        judge_version=judge.version if judge else "",
        benchmarks=runs,
        seconds=time.monotonic() - started,
        refusal_judge_name=refusal_judge.name if refusal_judge else "",
        refusal_judge_version=refusal_judge.version if refusal_judge else "",
    )


def _decode(
    generate: Generate, runs: list[BenchmarkRun], adapter: str, label: str, options: RunOptions
) -> list[list[common_pb2.Rollout]]:
    """One rollout per item of every benchmark, decoded in length-sorted batches; results in benchmark order."""
    positions = [(b, i) for b, run in enumerate(runs) for i in range(len(run.benchmark.items))]
    positions.sort(key=lambda p: len(runs[p[0]].benchmark.items[p[1]].prompt.text))
    out: list[list[common_pb2.Rollout | None]] = [[None] * len(run.benchmark.items) for run in runs]
    with tqdm(
        total=len(positions), desc=f"{label:<12}", unit="prompt", file=sys.stderr, disable=not options.progress
    ) as bar:
        for start in range(0, len(positions), options.batch_size):
            chunk = positions[start : start + options.batch_size]
            request = generation_pb2.GenerateRequest(
                prompts=[runs[b].benchmark.items[i].prompt for b, i in chunk],
                n=1,
                sampling=options.sampling,
                adapter=adapter,
            )
            [reply] = generate([request])
            for (b, i), rollout in zip(chunk, reply.rollouts, strict=True):
                out[b][i] = rollout
            bar.update(len(chunk))
    return [[rollout for rollout in rollouts if rollout is not None] for rollouts in out]


def _score(
    benchmark: Benchmark, rollouts: list[common_pb2.Rollout], judge: Judge | None, include_text: bool
) -> list[ItemResult]:
    kind = benchmark.spec.kind
    items = benchmark.items
    if kind.judged:
        assert judge is not None
        traces = [
            TraceInput(
                r.reasoning, r.response, item.prompt.text, item.prompt.id, request_harmful=kind is not Kind.COMPLIANCE
            )
            for item, r in zip(items, rollouts, strict=True)
        ]
        judgements = judge.judge_batch(traces)
        results = [
            ItemResult(
                item.prompt.id,
                judged_outcomes(kind, judgement),
                {
                    "reasoning_verdict": judgement.reasoning_verdict.value,
                    "response_verdict": judgement.response_verdict.value,
                    "response_refused": judgement.response_refused,
                    "first_cue": judgement.first_cue,
                },
            )
            for item, judgement in zip(items, judgements, strict=True)
        ]
    else:
        results = [_checked_answer(kind, item, rollout) for item, rollout in zip(items, rollouts, strict=True)]
    for result, item, rollout in zip(results, items, rollouts, strict=True):
        result.details.update(_rollout_details(item, rollout, include_text))
    return results


def _checked_answer(kind: Kind, item: EvalItem, rollout: common_pb2.Rollout) -> ItemResult:
    """Accuracy of one reasoning-set answer: the final answer of the response, checked against the reference."""
    from shared.evaluation.answers import answers_match, extract_answer

    answer_kind = "gsm8k" if kind is Kind.GSM8K else "math"
    predicted = extract_answer(rollout.response, answer_kind)
    correct = (
        predicted is not None and item.reference is not None and answers_match(predicted, item.reference, answer_kind)
    )
    return ItemResult(
        item.prompt.id, {"accuracy": correct}, {"predicted": predicted, "reference": item.reference, "correct": correct}
    )


def _rollout_details(item: EvalItem, rollout: common_pb2.Rollout, include_text: bool) -> dict[str, Any]:
    details: dict[str, Any] = {
        "reasoning_tokens": rollout.reasoning_tokens,
        "response_tokens": rollout.response_tokens,
        "reasoning_closed": rollout.reasoning_closed,
        "finish_reason": rollout.finish_reason,
    }
    if item.prompt.template:
        details["template"] = item.prompt.template
    if include_text:
        details.update(prompt=item.prompt.text, reasoning=rollout.reasoning, response=rollout.response)
    return details


def remote_generate(channel: Any, timeout: float) -> Generate:
    """A `generate` callable over a running generation service (its adapters are named, already loaded there)."""
    from shared.protos.intervene.v1 import generation_pb2_grpc

    stub = generation_pb2_grpc.GenerationServiceStub(channel)

    def generate(requests: Sequence[generation_pb2.GenerateRequest]) -> list[generation_pb2.GenerateResponse]:
        return [stub.Generate(request, timeout=timeout) for request in requests]

    return generate
