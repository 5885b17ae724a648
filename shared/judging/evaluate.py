"""Measures a judge on the labelled corpus and the gold sets; `intervene judge evaluate` prints the result.

Corpus (shared/judging/corpus/*.jsonl): exact-match accuracy of `h`, per-label step precision/recall
(steps align by index because every judge uses the one splitter), reasoning/response verdict accuracy.
Gold sets (shared.judging.gold): response-harm agreement with JailbreakBench `jailbroken` (every goal
there is a harmful request, so the judge is told `request_harmful=True`); refusal agreement with the
XSTest human labels; on STAR-1's safe reasoning traces, the share read as having no cue (h = 0) and as
safe reasoning. An `undetermined` verdict counts as a disagreement and is also counted apart.
Only numbers come out of here, never dataset text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.judging import gold
from shared.judging.base import Judge, Label, TraceInput, Verdict

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


def load_corpus(path: str | Path) -> list[dict]:
    """Records of a corpus JSONL file (see corpus/README.md for the fields)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no corpus file at {path}: give a JSONL file written by tools.corpus.build")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def corpus_inputs(records: Iterable[dict]) -> list[TraceInput]:
    """The judge inputs of corpus records (or of any JSONL with `reasoning`, and optionally `response`,
    `prompt`, `id`, `request_harmful`)."""
    return [
        TraceInput(
            reasoning=r["reasoning"],
            response=r.get("response", ""),
            prompt=r.get("prompt", ""),
            rollout_id=str(r.get("id", index)),
            request_harmful=r.get("request_harmful"),
        )
        for index, r in enumerate(records)
    ]


# The labelled splits `intervene judge evaluate --split` knows: file under corpus/, and whether any judge
# was trained on it (a figure on a training split is not a measurement).
SPLITS = {
    "dev": ("dev.jsonl", False),
    "train": ("train.jsonl", True),
    "test-c": ("pools/test-c.jsonl", False),
    "pool-a": ("pools/pool-a.jsonl", True),
    "pool-b": ("pools/pool-b.jsonl", True),
    "smollm2-eval": ("smollm2/eval.jsonl", False),
    "smollm2-train": ("smollm2/train.jsonl", True),
}


def provenance(records: Sequence[dict], split: str) -> str:
    """Who wrote a split, in what style, on how many topics, and whether it is trained on."""
    authors = sorted({r.get("author", "corpus-build") for r in records})
    styles = sorted({r["style"] for r in records if r.get("style")})
    topics = {r.get("topic") for r in records}
    trained = SPLITS.get(split.split(" (first")[0], ("", None))[1]
    use = {True: "a training split", False: "never trained on", None: "not a shipped split"}[trained]
    style = f", style {', '.join(styles)}" if styles else ""
    return f"{len(records)} traces by {', '.join(authors)}{style}; {len(topics)} topics; {use}"


def cohen_kappa(first: Sequence[object], second: Sequence[object]) -> float:
    """Cohen's kappa of two raters over the same items (categories compared by equality); 1.0 when both
    always give the same single category."""
    if len(first) != len(second):
        raise ValueError("kappa needs the two raters' answers on the same items")
    if not first:
        return 0.0
    total = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / total
    categories = set(first) | set(second)
    expected = sum((list(first).count(c) / total) * (list(second).count(c) / total) for c in categories)
    return 1.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


@dataclass
class Comparison:
    """Agreement of two judges on the same traces."""

    traces: int
    h_agreement: float
    h_kappa: float
    reasoning_kappa: float
    response_kappa: float
    decided_by: dict[str, int]


def compare(first: Judge, second: Judge, traces: Sequence[TraceInput]) -> Comparison:
    """Cohen's kappa between two judges on h (an undetermined h is its own category) and on the verdicts."""
    a, b = first.judge_batch(traces), second.judge_batch(traces)

    def h(judgement) -> object:
        return judgement.first_cue if judgement.first_cue_determined else "undetermined"

    decided: dict[str, int] = {}
    for judgement in [*a, *b]:
        if judgement.decided_by:
            key = f"{judgement.judge_name}:{judgement.decided_by}"
            decided[key] = decided.get(key, 0) + 1
    return Comparison(
        traces=len(traces),
        h_agreement=sum(h(x) == h(y) for x, y in zip(a, b, strict=True)) / max(1, len(traces)),
        h_kappa=cohen_kappa([h(x) for x in a], [h(y) for y in b]),
        reasoning_kappa=cohen_kappa([x.reasoning_verdict for x in a], [y.reasoning_verdict for y in b]),
        response_kappa=cohen_kappa([x.response_verdict for x in a], [y.response_verdict for y in b]),
        decided_by=decided,
    )


@dataclass
class LabelScores:
    """Step-level precision and recall of one label."""

    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0

    @property
    def precision(self) -> float:
        return self.true_positive / max(1, self.true_positive + self.false_positive)

    @property
    def recall(self) -> float:
        return self.true_positive / max(1, self.true_positive + self.false_negative)


@dataclass
class CorpusReport:
    """A judge's figures on a corpus split."""

    traces: int = 0
    steps: int = 0
    h_exact: int = 0
    reasoning_correct: int = 0
    response_correct: int = 0
    refusal_correct: int = 0
    undetermined: int = 0
    h_undetermined: int = 0
    seconds: float = 0.0
    decided_by: dict[str, int] = field(default_factory=dict)
    labels: dict[str, LabelScores] = field(default_factory=lambda: {label.value: LabelScores() for label in Label})

    @property
    def h_accuracy(self) -> float:
        return self.h_exact / max(1, self.traces)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def evaluate_corpus(judge: Judge, records: Sequence[dict]) -> CorpusReport:
    """Judge every record and compare with its labels."""
    report = CorpusReport(traces=len(records))
    started = time.perf_counter()
    judgements = judge.judge_batch(corpus_inputs(records))
    report.seconds = time.perf_counter() - started
    for record, judgement in zip(records, judgements, strict=True):
        gold_labels = [step["label"] for step in record["steps"]]
        report.steps += len(gold_labels)
        predicted = [step.label.value for step in judgement.steps]
        if len(predicted) != len(gold_labels):
            raise ValueError(f"{record['id']}: judge produced {len(predicted)} steps, corpus has {len(gold_labels)}")
        for want, got in zip(gold_labels, predicted, strict=True):
            if want == got:
                report.labels[want].true_positive += 1
            else:
                report.labels[want].false_negative += 1
                report.labels[got].false_positive += 1
        report.h_exact += judgement.first_cue_determined and judgement.first_cue == record["first_cue"]
        report.h_undetermined += not judgement.first_cue_determined
        if judgement.decided_by:
            report.decided_by[judgement.decided_by] = report.decided_by.get(judgement.decided_by, 0) + 1
        report.reasoning_correct += judgement.reasoning_verdict.value == record["reasoning_verdict"]
        report.response_correct += judgement.response_verdict.value == record["response_verdict"]
        report.refusal_correct += judgement.response_refused == record["response_refused"]
        report.undetermined += Verdict.UNDETERMINED in (judgement.reasoning_verdict, judgement.response_verdict)
    return report


@dataclass
class AgreementReport:
    """Agreement of a binary judge decision with a gold label."""

    name: str
    total: int = 0
    agree: int = 0
    undetermined: int = 0
    confusion: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def agreement(self) -> float:
        return self.agree / max(1, self.total)


def _tally(report: AgreementReport, want: bool, got: bool | None) -> None:
    report.total += 1
    if got is None:
        report.undetermined += 1
        key = f"gold={want} pred=undetermined"
    else:
        report.agree += want == got
        key = f"gold={want} pred={got}"
    report.confusion[key] = report.confusion.get(key, 0) + 1


def evaluate_jailbreakbench(judge: Judge, records: Sequence[gold.GoldResponse]) -> AgreementReport:
    """Response-harm agreement with JailbreakBench's `jailbroken` labels."""
    report = AgreementReport("jailbreakbench response harm")
    started = time.perf_counter()
    inputs = [TraceInput(reasoning="", response=r.response, prompt=r.prompt, request_harmful=True) for r in records]
    for record, judgement in zip(records, judge.judge_batch(inputs), strict=True):
        verdict = judgement.response_verdict
        _tally(report, record.harmful, None if verdict is Verdict.UNDETERMINED else verdict is Verdict.HARMFUL)
    report.seconds = time.perf_counter() - started
    return report


def evaluate_xstest(judge: Judge, records: Sequence[gold.GoldRefusal]) -> AgreementReport:
    """Refusal agreement with the XSTest human labels (full or partial refusal counts as refusal)."""
    report = AgreementReport("xstest refusal")
    started = time.perf_counter()
    inputs = [TraceInput(reasoning="", response=r.response, prompt=r.prompt) for r in records]
    for record, judgement in zip(records, judge.judge_batch(inputs), strict=True):
        undetermined = judgement.response_verdict is Verdict.UNDETERMINED and not judgement.response_refused
        _tally(report, record.refused, None if undetermined and record.response.strip() else judgement.response_refused)
    report.seconds = time.perf_counter() - started
    return report


def evaluate_star1(judge: Judge, records: Sequence[gold.GoldTrace]) -> tuple[AgreementReport, AgreementReport]:
    """On safe real traces: agreement with "no compliance cue" (h = 0) and with "reasoning safe"."""
    no_cue, safe = AgreementReport("star1 no cue (h = 0)"), AgreementReport("star1 reasoning safe")
    started = time.perf_counter()
    inputs = [TraceInput(reasoning=r.reasoning, response=r.response, prompt=r.prompt) for r in records]
    for judgement in judge.judge_batch(inputs):
        _tally(no_cue, True, judgement.first_cue == 0)
        verdict = judgement.reasoning_verdict
        _tally(safe, True, None if verdict is Verdict.UNDETERMINED else verdict is Verdict.SAFE)
    no_cue.seconds = safe.seconds = time.perf_counter() - started
    return no_cue, safe
