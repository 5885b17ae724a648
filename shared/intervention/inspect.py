"""What the model is being taught: a sample of exported pairs with their step labels, verdicts and provenance.

A pair's numbers say more than its count: how long each side is, what the judge said of each, how similar the chosen
continuation is to the rejected one after the trigger (`shared.intervention.checks.similarity`), whether the rejected
side is itself a refusal, and the step labels of both sides as one letter per step (N neutral, C compliance cue,
U unsafe, T safety trigger; `|` marks the divergence step h). Labels come from a judge run here (the rules judge by
default: fast, no model), not from the judge that built the pairs. Texts stay out unless asked for.

    summary, records = inspect_rows(rows, sample=10, seed=0)
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from shared.intervention.checks import similarity
from shared.intervention.decisions import DEFAULT_REASONING_CLOSE
from shared.judging.base import Judge, Label, TraceInput

_LETTER = {Label.NEUTRAL: "N", Label.COMPLIANCE_CUE: "C", Label.UNSAFE: "U", Label.SAFETY_TRIGGER: "T"}


@dataclass(frozen=True)
class PairView:
    """One pair as `intervene pairs inspect` shows it (no text unless `text` was asked for)."""

    id: str
    kind: str
    dataset: str
    rollout_id: str
    round: int
    trigger_id: str
    divergence_step: int
    prefix_chars: int
    chosen_chars: int
    rejected_chars: int
    judge: str
    verdicts: str
    similarity: float
    rejected_refuses: bool
    chosen_labels: str
    rejected_labels: str
    text: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not (k == "text" and v is None)}


def _split(suffix: str) -> tuple[str, str]:
    reasoning, _, response = suffix.partition(DEFAULT_REASONING_CLOSE)
    return reasoning, response


def _labels(judge: Judge, prompt: str, prefix: str, suffix_reasoning: str, response: str) -> str:
    judgement = judge.judge(TraceInput(prefix + suffix_reasoning, response, prompt, request_harmful=True))
    before = "".join(_LETTER[s.label] for s in judgement.steps if s.start < len(prefix))
    after = "".join(_LETTER[s.label] for s in judgement.steps if s.start >= len(prefix))
    return f"{before}|{after}" if prefix else after


@cache
def _pool_triggers(pool_label: str) -> dict[str, str]:
    """The trigger texts of a pool by id (a pool's label is its built-in name, e.g. `default-v1`); {} if unknown."""
    from shared.intervention.triggers import load_pool

    try:
        return {t.id: t.text for t in load_pool(pool_label).triggers}
    except (ValueError, OSError, KeyError):
        return {}


def _trigger_text(row: dict[str, Any]) -> str:
    pool = str(row.get("trigger_pool_version") or "")
    return _pool_triggers(pool).get(str(row.get("trigger_id") or ""), "") if pool else ""


def view(row: dict[str, Any], judge: Judge, show_text: bool = False) -> PairView:
    """The view of one exported row (the columns `shared.pairs.export.to_row` writes)."""
    from shared.judging.rules import RulesJudge

    chosen, rejected, prefix = str(row["chosen"]), str(row["rejected"]), str(row.get("prefix") or "")
    trigger = _trigger_text(row)
    written = chosen[len(trigger) :] if trigger and chosen.startswith(trigger) else chosen
    chosen_reasoning, chosen_response = _split(chosen)
    rejected_reasoning, rejected_response = _split(rejected)
    prompt = str(row.get("user_prompt") or "")
    verdicts = "/".join(
        str(row.get(column) or "?")[:4]
        for column in (
            "rejected_reasoning_verdict",
            "rejected_response_verdict",
            "chosen_reasoning_verdict",
            "chosen_response_verdict",
        )
    )
    return PairView(
        id=str(row.get("id") or "")[:12],
        kind=str(row.get("kind") or ""),
        dataset=str(row.get("dataset") or ""),
        rollout_id=str(row.get("rollout_id") or "")[:14],
        round=int(row.get("round") or 0),
        trigger_id=str(row.get("trigger_id") or ""),
        divergence_step=int(row.get("divergence_step") or 0),
        prefix_chars=len(prefix),
        chosen_chars=len(chosen),
        rejected_chars=len(rejected),
        judge=f"{row.get('judge_name') or '?'} {row.get('judge_version') or ''}".strip(),
        verdicts=verdicts,
        similarity=round(similarity(written.replace(DEFAULT_REASONING_CLOSE, "\n"), rejected), 3),
        rejected_refuses=RulesJudge().refuses(rejected_response),
        chosen_labels=_labels(judge, prompt, prefix, chosen_reasoning, chosen_response),
        rejected_labels=_labels(judge, prompt, prefix, rejected_reasoning, rejected_response),
        text={"user_prompt": prompt, "prefix": prefix, "chosen": chosen, "rejected": rejected} if show_text else None,
    )


@dataclass(frozen=True)
class Summary:
    """Counts over every row, not just the sample."""

    pairs: int
    by_kind: dict[str, int]
    rollouts: int
    max_pairs_per_rollout: int
    by_trigger: dict[str, int]
    by_round: dict[str, int]


def summarize(rows: list[dict[str, Any]]) -> Summary:
    per_rollout = Counter(str(r.get("rollout_id") or "") for r in rows if r.get("kind") == "harmful")
    return Summary(
        pairs=len(rows),
        by_kind=dict(Counter(str(r.get("kind") or "") for r in rows)),
        rollouts=len(per_rollout),
        max_pairs_per_rollout=max(per_rollout.values(), default=0),
        by_trigger=dict(sorted(Counter(str(r.get("trigger_id") or "-") for r in rows).items())),
        by_round=dict(sorted(Counter(str(r.get("round") or 0) for r in rows).items())),
    )


def inspect_rows(
    rows: list[dict[str, Any]], judge: Judge, sample: int = 10, seed: int = 0, show_text: bool = False
) -> tuple[Summary, list[PairView]]:
    """The summary of all rows and the views of a seeded sample of `sample` of them (0: all)."""
    chosen = rows if sample <= 0 or sample >= len(rows) else random.Random(seed).sample(rows, sample)
    return summarize(rows), [view(row, judge, show_text) for row in chosen]
