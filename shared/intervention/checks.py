"""The checks a candidate pair must pass before it is stored or trained on.

A 96-prompt run on the embedded model made 95 pairs from 30 rollouts and taught the model to refuse benign
requests without making its reasoning safer. Reading the pairs showed three faults, one check each:

* `rejected_refusal` — the rejected side is itself a refusal or a safe turn (the judge called the trace unsafe,
  then put the cue on an apology). Such a rollout is not intervened on at all: the contrast would be refusal
  against refusal. It is a refusal when the rejected response refuses (the judge's `response_refused` or the
  rules judge's refusal patterns) or the cue sentence itself reads as a safety trigger to the rules patterns.
* `chosen_cue` / `chosen_similar` — the chosen side says the trigger and carries on as before. A safe branch is
  dropped when the judge labels a step it wrote after the trigger a compliance cue or unsafe, or when what it
  wrote after the trigger is too similar to the rejected suffix: word-level similarity (difflib's ratio over
  lower-cased word tokens, 1.0 = the same words in the same order) at or above `max_similarity` (default 0.6:
  two samples of one continuation that differ in wording share about 0.3-0.5; a branch that repeats the rejected
  text with a few words changed shares 0.8 and more).
* `over_cap` — six near-identical pairs from one rollout weigh that prompt six times. The paper keeps the first
  safe branch, so by default one pair per rollout (in trigger-pool order); `max_pairs_per_rollout = 0` keeps all.

Every drop is counted per job (`Job.pairs_dropped` by check; `rejected_refusal` also in `no_pair_reasons`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from shared.config.intervention import DEFAULT_MAX_PAIRS_PER_ROLLOUT, DEFAULT_MAX_SIMILARITY
from shared.protos.intervene.v1 import common_pb2

_WORD = re.compile(r"\w+")
_UNSAFE_LABELS = (common_pb2.STEP_LABEL_COMPLIANCE_CUE, common_pb2.STEP_LABEL_UNSAFE)


class Check(StrEnum):
    """A pair check, by the name its drops are counted under."""

    REJECTED_REFUSAL = "rejected_refusal"
    CHOSEN_CUE = "chosen_cue"
    CHOSEN_SIMILAR = "chosen_similar"
    OVER_CAP = "over_cap"


# The checks that drop a safe branch (rejected_refusal acts before any branch is generated).
BRANCH_CHECKS = (Check.CHOSEN_CUE, Check.CHOSEN_SIMILAR, Check.OVER_CAP)


@dataclass(frozen=True)
class PairChecks:
    """What the checks allow; `enabled=False` keeps every pair a judge called safe (the method without checks)."""

    enabled: bool = True
    max_similarity: float = DEFAULT_MAX_SIMILARITY
    max_pairs_per_rollout: int = DEFAULT_MAX_PAIRS_PER_ROLLOUT

    def __post_init__(self) -> None:
        if not 0.0 < self.max_similarity <= 1.0:
            raise ValueError(f"max_similarity is {self.max_similarity}; it must lie in (0, 1], e.g. 0.6")
        if self.max_pairs_per_rollout < 0:
            raise ValueError(f"max_pairs_per_rollout is {self.max_pairs_per_rollout}; give 0 (no cap) or more")


NO_CHECKS = PairChecks(enabled=False, max_pairs_per_rollout=0)


def similarity(first: str, second: str) -> float:
    """Word-level similarity in [0, 1]: difflib's ratio over the lower-cased word tokens of both texts."""
    a, b = _WORD.findall(first.lower()), _WORD.findall(second.lower())
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


@cache
def _rules():
    from shared.judging.rules import RulesJudge

    return RulesJudge()


def rejected_is_refusal(rollout: common_pb2.Rollout, judgement: common_pb2.Judgement, offset: int) -> bool:
    """Whether the suffix cut at `offset` (`z[>=h] ⊕ y`) is itself a refusal or a safe turn (see the docstring)."""
    from shared.judging.base import Label

    if judgement.response_refused or _rules().refuses(rollout.response):
        return True
    cue = next((s for s in judgement.steps if s.start == offset), None)
    if cue is None:
        return False
    label, _, _ = _rules().label_step(rollout.reasoning[cue.start : cue.end], harm_context=True)
    return label is Label.SAFETY_TRIGGER


def chosen_failure(
    continuation: common_pb2.Rollout, judgement: common_pb2.Judgement, rejected: str, checks: PairChecks
) -> Check | None:
    """Why a branch judged safe still makes no pair (`chosen_cue`, `chosen_similar`), or None when it passes.

    `rejected` is the pair's rejected suffix; the branch's own text is what it wrote after the given reasoning and
    trigger (`continuation.given_reasoning_chars`), reasoning and response."""
    if not checks.enabled:
        return None
    given = continuation.given_reasoning_chars
    if any(s.label in _UNSAFE_LABELS and s.end > given for s in judgement.steps):
        return Check.CHOSEN_CUE
    written = continuation.reasoning[given:] + "\n" + continuation.response
    if similarity(written, rejected) >= checks.max_similarity:
        return Check.CHOSEN_SIMILAR
    return None


def capped(pairs: list[common_pb2.Pair], checks: PairChecks) -> tuple[list[common_pb2.Pair], int]:
    """The first `max_pairs_per_rollout` pairs (in trigger-pool order) and how many were dropped."""
    if not checks.enabled or checks.max_pairs_per_rollout == 0:
        return pairs, 0
    keep = pairs[: checks.max_pairs_per_rollout]
    return keep, len(pairs) - len(keep)
