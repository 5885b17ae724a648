"""Pairs for the trainer: read from an exported file or streamed from the pair store, validated, tokenised,
sharded per rank, mixed with over-refusal pairs, and laid out in a deterministic order per epoch.

The order depends only on (seed, epoch, rank), so a resumed run sees exactly the batches the interrupted run
would have seen. A pair-store shard is saved under the run's folder on first start and read back on resume, so new
pairs arriving in the store do not shift the order of a run in progress.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from shared.training.tokenize import PairTokenError, TokenizedPair, tokenize_pair

HARMFUL = "harmful"
OVER_REFUSAL = "over_refusal"


@dataclass
class PairRecord:
    """One pair as text: the conditioning (context + prefix) and the two suffixes."""

    pair_id: str
    kind: str
    conditioning: str
    chosen: str
    rejected: str
    user_prompt: str = ""  # the user turn before any chat template, for the evaluation-overlap check


@dataclass
class DataReport:
    """What happened to the pairs: counts by reason, shown before training and kept in the metrics."""

    read: int = 0
    used: int = 0
    truncated: int = 0
    boundary_merges: int = 0
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "used": self.used,
            "truncated": self.truncated,
            "boundary_merges": self.boundary_merges,
            "skipped": dict(self.skipped),
        }


def _kind(value: object) -> str:
    text = str(value or "").lower().removeprefix("pair_kind_")
    if text in {"2", "over_refusal", "over-refusal", "overrefusal"}:
        return OVER_REFUSAL
    return HARMFUL


def record_from_row(row: dict, index: int) -> PairRecord:
    """A `PairRecord` from an exported row; raises `PairTokenError` when its fields disagree."""
    pair_id = str(row.get("id") or f"row-{index}")
    context, prefix, prompt = row.get("context"), row.get("prefix"), row.get("prompt")
    if context is not None and prefix is not None:
        conditioning = context + prefix
        if prompt is not None and prompt != conditioning:
            raise PairTokenError(
                "prefix_mismatch", f"pair {pair_id}: prompt is not context + prefix (row {index} of the export)"
            )
    elif prompt is not None:
        conditioning = prompt
    else:
        raise PairTokenError("missing_prompt", f"pair {pair_id}: row {index} has neither prompt nor context/prefix")
    for name in ("chosen", "rejected"):
        if not isinstance(row.get(name), str):
            raise PairTokenError("empty_suffix", f"pair {pair_id}: row {index} has no '{name}' text")
    return PairRecord(
        pair_id, _kind(row.get("kind")), conditioning, row["chosen"], row["rejected"], str(row.get("user_prompt") or "")
    )


def record_from_proto(pair: object) -> PairRecord:
    """A `PairRecord` from a `common_pb2.Pair`."""
    return PairRecord(
        pair_id=pair.id,
        kind=_kind(pair.kind),
        conditioning=pair.context + pair.prefix,
        chosen=pair.chosen,
        rejected=pair.rejected,
        user_prompt=pair.prompt.text,
    )


def read_rows(path: Path) -> list[dict]:
    """Rows of an exported JSONL or Parquet file."""
    if not path.exists():
        raise FileNotFoundError(f"pairs file {path} does not exist: export pairs first (intervene pairs export)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from error
    return rows


def shard_of_file(path: Path, rank: int, world: int) -> list[dict]:
    """This rank's rows of a file: row i belongs to rank i % world (stable across epochs and resumes)."""
    return read_rows(path)[rank::world]


def tokenize_records(
    records: list[PairRecord | PairTokenError],
    tokenizer: PreTrainedTokenizerBase,
    *,
    append_eos: bool,
    max_prefix_tokens: int,
    max_suffix_tokens: int,
    alpha: float,
    over_refusal_alpha: float,
) -> tuple[list[TokenizedPair], list[str], DataReport]:
    """Tokenise records (errors already found while reading are counted as skips). Returns pairs, kinds, report."""
    report = DataReport(read=len(records))
    pairs, kinds = [], []
    seen: set[str] = set()
    for record in records:
        if isinstance(record, PairTokenError):
            report.skipped[record.reason] += 1
            continue
        if record.pair_id in seen:
            report.skipped["duplicate_id"] += 1
            continue
        seen.add(record.pair_id)
        try:
            pair = tokenize_pair(
                tokenizer,
                record.pair_id,
                record.conditioning,
                record.chosen,
                record.rejected,
                append_eos=append_eos,
                max_prefix_tokens=max_prefix_tokens,
                max_suffix_tokens=max_suffix_tokens,
            )
        except PairTokenError as error:
            report.skipped[error.reason] += 1
            continue
        pair.alpha = over_refusal_alpha if record.kind == OVER_REFUSAL else alpha
        report.truncated += pair.truncated
        report.boundary_merges += pair.boundary_merged
        pairs.append(pair)
        kinds.append(record.kind)
    report.used = len(pairs)
    return pairs, kinds, report


def epoch_size(kinds: list[str], over_refusal_fraction: float | None) -> int:
    """Pairs in one epoch of this rank once over-refusal pairs are mixed in at the requested share."""
    if over_refusal_fraction is None:
        return len(kinds)
    harmful = sum(k != OVER_REFUSAL for k in kinds)
    over = len(kinds) - harmful
    if over == 0 or harmful == 0:
        return len(kinds)
    return harmful + round(over_refusal_fraction / (1 - over_refusal_fraction) * harmful)


def epoch_order(
    kinds: list[str], over_refusal_fraction: float | None, seed: int, epoch: int, rank: int, size: int
) -> list[int]:
    """Indices into this rank's pairs for one epoch: mixed, shuffled, cut to `size` (equal on every rank)."""
    rng = random.Random(f"{seed}:{epoch}:{rank}")
    harmful = [i for i, k in enumerate(kinds) if k != OVER_REFUSAL]
    over = [i for i, k in enumerate(kinds) if k == OVER_REFUSAL]
    if over_refusal_fraction is None or not over or not harmful:
        order = list(range(len(kinds)))
    else:
        wanted = round(over_refusal_fraction / (1 - over_refusal_fraction) * len(harmful))
        if wanted <= len(over):
            picked = rng.sample(over, wanted)
        else:
            picked = over * (wanted // len(over)) + rng.sample(over, wanted % len(over))
        order = harmful + picked
    rng.shuffle(order)
    return order[:size]
