"""Overlap between prompt sets, so that the sets a model is evaluated on stay out of the data it is trained on.

Two prompts overlap when their normalised texts are equal (lower-cased, punctuation removed, whitespace collapsed:
the method the public sets' own overlap tables use), or when at least `threshold` of the word
n-grams of the shorter one appear in the other. Measuring on the shorter prompt also finds an evaluation prompt
inside a jailbreak template or inside a chat-formatted pair prompt. A prompt of fewer than n words has no n-gram and
is compared exactly. Every exact overlap is also an n-gram overlap.

    result = find_overlap(load_prompt_set("advbench"), load_prompt_set("strongreject"))
    result.exact, result.near, result.matches            # 25 exact, ...; ids only, never text

The trainer runs `find_pair_overlaps` + `enforce_no_overlap` on its pairs before training (`intervene train
--allow-eval-overlap` keeps them); `intervene data overlap` (tools/cli/data.py) prints the same figures.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shared.datasets import DATASETS, DatasetError, load_prompts, read_rows

if TYPE_CHECKING:
    from shared.config.trainer import TrainerSettings

log = logging.getLogger("intervene.evaluation")

DEFAULT_NGRAM = 8
DEFAULT_THRESHOLD = 0.5
PAIR_SUFFIXES = (".jsonl", ".json", ".parquet")
_NOT_WORD = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class PromptSet:
    """The ids and texts of one data set (or of the user prompts of a pairs file)."""

    name: str
    ids: tuple[str, ...]
    texts: tuple[str, ...] = field(repr=False)  # harmful requests: kept out of reprs, logs and test reports

    def __len__(self) -> int:
        return len(self.ids)

    def entries(self) -> list[tuple[str, str]]:
        """(id, text) of every prompt."""
        return list(zip(self.ids, self.texts, strict=True))


@dataclass(frozen=True)
class Match:
    """One prompt of the evaluation set that overlaps the training set."""

    id: str
    method: str  # "exact" or "ngram"
    score: float  # share of the shorter prompt's n-grams found in the other (1.0 for exact)
    train_ids: tuple[str, ...]
    text: str = field(repr=False)


@dataclass
class SetOverlap:
    """How one evaluation set overlaps one training set."""

    train: str
    train_size: int
    eval: str
    eval_size: int
    ngram: int
    threshold: float
    matches: list[Match] = field(default_factory=list)

    @property
    def exact(self) -> int:
        return sum(match.method == "exact" for match in self.matches)

    @property
    def near(self) -> int:
        """Overlaps found by n-grams, exact ones included."""
        return len(self.matches)

    def as_dict(self, show_text: bool = False) -> dict:
        return {
            "eval": self.eval,
            "prompts": self.eval_size,
            "exact": self.exact,
            "ngram": self.near,
            "matches": [
                {
                    "id": match.id,
                    "method": match.method,
                    "score": round(match.score, 4),
                    "train_ids": list(match.train_ids),
                    **({"text": match.text} if show_text else {}),
                }
                for match in self.matches
            ],
        }


def normalize_text(text: str) -> str:
    """Lower-cased, punctuation removed, whitespace collapsed."""
    return " ".join(_NOT_WORD.sub("", text.lower()).split())


def word_ngrams(normalized: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of a normalised text (none when it has fewer than n words)."""
    words = normalized.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class OverlapIndex:
    """Exact keys and n-gram postings of one prompt set, to look the prompts of another set up in."""

    def __init__(self, entries: Iterable[tuple[str, str]], ngram: int = DEFAULT_NGRAM) -> None:
        if ngram < 1:
            raise ValueError(f"ngram must be at least 1, not {ngram}")
        self.ngram = ngram
        by_key: dict[str, list[str]] = defaultdict(list)
        for identifier, text in entries:
            by_key[normalize_text(text)].append(identifier)
        self._keys = list(by_key)
        self._ids = [tuple(by_key[key]) for key in self._keys]
        self._exact = {key: index for index, key in enumerate(self._keys)}
        self._sizes = []
        self._postings: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, key in enumerate(self._keys):
            grams = word_ngrams(key, ngram)
            self._sizes.append(len(grams))
            for gram in grams:
                self._postings[gram].append(index)

    def lookup(self, text: str, threshold: float = DEFAULT_THRESHOLD) -> tuple[str, float, tuple[str, ...]] | None:
        """(method, score, ids of the indexed prompts it overlaps) for `text`, or None when it overlaps none."""
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        key = normalize_text(text)
        if key in self._exact:
            return "exact", 1.0, self._ids[self._exact[key]]
        grams = word_ngrams(key, self.ngram)
        shared = Counter(index for gram in grams for index in self._postings.get(gram, ()))
        hits = []
        for index, count in shared.items():
            score = count / min(len(grams), self._sizes[index])
            if score >= threshold:
                hits.append((score, index))
        if not hits:
            return None
        ids = tuple(identifier for _, index in sorted(hits, key=lambda hit: hit[1]) for identifier in self._ids[index])
        return "ngram", max(score for score, _ in hits), ids


def load_prompt_set(name_or_path: str, data_dir: Path | str | None = None) -> PromptSet:
    """A named data set, a CSV/JSONL/JSON prompt file, or the user prompts of an exported pairs file.

    Pairs files (TRL's prompt/chosen/rejected, JSONL or Parquet) are compared on `user_prompt` when the export has
    it, else on `prompt`, whose chat template and reasoning prefix only the n-gram test sees through. Raises
    DatasetError for an unknown name or an unreadable file.
    """
    path = Path(name_or_path)
    if name_or_path not in DATASETS and path.suffix.lower() in PAIR_SUFFIXES and path.is_file():
        rows = _read_pair_rows(path)
        if rows and {"chosen", "rejected"} <= rows[0].keys():
            ids, texts = [], []
            for index, row in enumerate(rows):
                text = str(row.get("user_prompt") or row.get("prompt") or "").strip()
                if text:
                    ids.append(str(row.get("id") or f"row-{index}"))
                    texts.append(text)
            return PromptSet(path.stem, tuple(ids), tuple(texts))
    prompts = load_prompts(name_or_path, data_dir=data_dir)
    name = name_or_path if name_or_path in DATASETS or name_or_path.startswith("hf:") else path.stem
    return PromptSet(name, tuple(p.id for p in prompts), tuple(p.text for p in prompts))


def _read_pair_rows(path: Path) -> list[dict]:
    if path.suffix.lower() != ".parquet":
        return read_rows(path)
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as error:
        raise DatasetError("dataset", f"cannot read {path} as Parquet: {error}") from None


def find_overlap(
    train: PromptSet, evaluation: PromptSet, ngram: int = DEFAULT_NGRAM, threshold: float = DEFAULT_THRESHOLD
) -> SetOverlap:
    """The prompts of `evaluation` that overlap a prompt of `train`."""
    index = OverlapIndex(train.entries(), ngram)
    result = SetOverlap(train.name, len(train), evaluation.name, len(evaluation), ngram, threshold)
    for identifier, text in evaluation.entries():
        found = index.lookup(text, threshold)
        if found is not None:
            result.matches.append(Match(identifier, *found, text=text))
    return result


class EvalOverlapError(ValueError):
    """Training pairs share prompts with evaluation sets (or a named evaluation set cannot be read)."""


@dataclass
class PairOverlapReport:
    """How many pairs share their prompt with each evaluation set that could be read."""

    checked: int
    per_set: dict[str, int]
    missing: list[str] = field(default_factory=list)
    overlapping: int = 0

    def combined(self, reduce: Callable[[list[float]], list[float]]) -> PairOverlapReport:
        """The report with its counts passed through `reduce` (an all-reduce sum over the ranks of a job)."""
        counts = [int(value) for value in reduce([self.checked, self.overlapping, *self.per_set.values()])]
        return PairOverlapReport(counts[0], dict(zip(self.per_set, counts[2:], strict=True)), self.missing, counts[1])

    def summary(self) -> str:
        found = ", ".join(f"{name}: {count}" for name, count in self.per_set.items() if count)
        return f"{self.overlapping} of {self.checked} pairs share their prompt with evaluation sets ({found})"


def find_pair_overlaps(
    prompts: Sequence[tuple[str, str]],
    eval_sets: Sequence[str],
    *,
    required: bool = False,
    data_dir: Path | str | None = None,
    ngram: int = DEFAULT_NGRAM,
    threshold: float = DEFAULT_THRESHOLD,
) -> PairOverlapReport:
    """Count the (pair id, user prompt) entries that overlap each of `eval_sets`.

    A set that cannot be read is skipped with a warning (a missing data folder must not stop training on the
    embedded default), unless `required`, when it raises EvalOverlapError.
    """
    report = PairOverlapReport(checked=len(prompts), per_set={})
    flagged: set[int] = set()
    for name in eval_sets:
        try:
            evaluation = load_prompt_set(name, data_dir)
        except DatasetError as error:
            if required:
                raise EvalOverlapError(f"evaluation set {name!r} cannot be read: {error.message}") from None
            log.warning("evaluation set %s skipped in the overlap check: %s", name, error.message)
            report.missing.append(name)
            continue
        index = OverlapIndex(evaluation.entries(), ngram)
        verdicts: dict[str, bool] = {}
        count = 0
        for position, (_, text) in enumerate(prompts):
            key = normalize_text(text)
            if key not in verdicts:
                verdicts[key] = index.lookup(text, threshold) is not None
            if verdicts[key]:
                count += 1
                flagged.add(position)
        report.per_set[name] = count
    report.overlapping = len(flagged)
    return report


def enforce_no_overlap(report: PairOverlapReport, allow: bool) -> str | None:
    """Raise EvalOverlapError when pairs overlap and `allow` is off; return the line to log when they are allowed."""
    if report.overlapping == 0:
        return None
    if allow:
        return f"{report.summary()}; kept because allow_eval_overlap is set"
    sets = " ".join(name for name, count in report.per_set.items() if count)
    raise EvalOverlapError(
        f"{report.summary()} (exact, or >= {DEFAULT_THRESHOLD:g} of the shorter prompt's word {DEFAULT_NGRAM}-grams): "
        f"a model trained on them is not evaluated on held-out prompts. List them with `intervene data overlap "
        f"PAIRS_FILE {sets}` and drop them, or train anyway with --allow-eval-overlap "
        "(INTERVENE_TRAINER_ALLOW_EVAL_OVERLAP=true)"
    )


def check_training_pairs(
    prompts: Sequence[tuple[str, str]],
    settings: TrainerSettings,
    reduce: Callable[[list[float]], list[float]] | None = None,
) -> str | None:
    """The trainer's check of its (pair id, user prompt) entries against `settings.eval_sets`: raises
    EvalOverlapError unless `settings.allow_eval_overlap`; returns the line to log when overlaps are kept.

    Sets named explicitly in the settings must be readable; the default ones are skipped when their data is missing.
    `reduce` sums the counts over the ranks of a job whose ranks each check their own shard.
    """
    report = find_pair_overlaps(prompts, settings.eval_sets, required="eval_sets" in settings.model_fields_set)
    if reduce is not None:
        report = report.combined(reduce)
    return enforce_no_overlap(report, settings.allow_eval_overlap)
