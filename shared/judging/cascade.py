"""The `cascade` judge: the fast classifier decides the traces it is sure of, the llm judge the rest.

The classifier reads every trace (about a millisecond a step on one core); its confidence in h
(`classifier.confidence`: the least sure of "step h is a cue" and "no earlier step from the 2nd is one")
is compared with `threshold`. Traces at or above it keep the classifier's judgement; the others go, in
one batch, to the llm judge when one is configured. Every judgement records who decided in
`decided_by` ("classifier" or "llm"); without an llm judge the cascade is the classifier alone, and says
so in its version.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.judging.base import Judge, Judgement, TraceInput
from shared.judging.classifier import ClassifierJudge, confidence


class CascadeJudge(Judge):
    """Classifier first; uncertain traces to the llm judge (see the module docstring)."""

    name = "cascade"

    def __init__(self, fast: ClassifierJudge, slow: Judge | None, threshold: float = 0.8) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"cascade threshold must be between 0 and 1, not {threshold}")
        self.fast = fast
        self.slow = slow
        self.threshold = threshold
        self.version = f"{fast.version}>{slow.version if slow else 'none'}@{threshold:g}"

    def judge(self, trace: TraceInput) -> Judgement:
        return self.judge_batch([trace])[0]

    def judge_batch(self, traces: Sequence[TraceInput]) -> list[Judgement]:
        probabilities = self.fast.step_probabilities(traces)
        results: list[Judgement] = []
        unsure: list[int] = []
        for index, (trace, rows) in enumerate(zip(traces, probabilities, strict=True)):
            judgement = self.fast.decode(trace, rows)
            if self.slow is not None and confidence(rows, judgement.first_cue) < self.threshold:
                unsure.append(index)
            results.append(judgement)
        if unsure:
            for index, judgement in zip(unsure, self.slow.judge_batch([traces[i] for i in unsure]), strict=True):
                results[index] = judgement
        for judgement in results:
            judgement.decided_by = judgement.judge_name
            judgement.judge_name, judgement.judge_version = self.name, self.version
        return results

    def close(self) -> None:
        self.fast.close()
        if self.slow is not None:
            self.slow.close()
