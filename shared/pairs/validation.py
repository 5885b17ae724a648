"""Checks a pair before it is stored, naming the offending field and the limit."""

from __future__ import annotations

from dataclasses import dataclass

from shared.pairs.ids import pair_id
from shared.protos.intervene.v1 import common_pb2


@dataclass(frozen=True)
class InvalidPair(ValueError):
    """A pair that cannot be stored; `field` is its path in the request, e.g. `pairs[3].chosen`."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def validate_pair(pair: common_pb2.Pair, field: str, max_field_chars: int) -> None:
    """Raises InvalidPair when `pair` is incomplete, oversized or carries a wrong id."""
    texts = {
        "prompt.text": pair.prompt.text,
        "prompt.system": pair.prompt.system,
        "context": pair.context,
        "prefix": pair.prefix,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
    }
    for name, text in texts.items():
        if len(text) > max_field_chars:
            raise InvalidPair(f"{field}.{name}", f"{len(text)} characters, over the limit of {max_field_chars}")
    for name in ("prompt.text", "context", "chosen", "rejected"):
        if not texts[name].strip():
            raise InvalidPair(f"{field}.{name}", "must not be empty")
    if pair.chosen == pair.rejected:
        raise InvalidPair(f"{field}.chosen", "equals rejected; a pair needs two different suffixes")
    if pair.kind not in (common_pb2.PAIR_KIND_HARMFUL, common_pb2.PAIR_KIND_OVER_REFUSAL):
        raise InvalidPair(f"{field}.kind", f"is {pair.kind}; it must be PAIR_KIND_HARMFUL or PAIR_KIND_OVER_REFUSAL")
    if pair.id and pair.id != pair_id(pair):
        raise InvalidPair(f"{field}.id", "does not match the content hash; leave it empty to have it computed")
