"""Pair validation names the field and the limit."""

from __future__ import annotations

import pytest

from shared.pairs.ids import pair_id
from shared.pairs.validation import InvalidPair, validate_pair
from shared.protos.intervene.v1 import common_pb2
from tests.shared.pairs.factories import make_pair


def test_valid_pair_passes() -> None:
    validate_pair(make_pair(1), "pairs[0]", max_field_chars=1000)


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda p: setattr(p, "chosen", ""), "pairs[0].chosen", "empty"),
        (lambda p: setattr(p, "context", "  "), "pairs[0].context", "empty"),
        (lambda p: setattr(p, "rejected", "x" * 2000), "pairs[0].rejected", "limit of 1000"),
        (lambda p: setattr(p, "chosen", p.rejected), "pairs[0].chosen", "equals rejected"),
        (lambda p: setattr(p, "kind", common_pb2.PAIR_KIND_UNSPECIFIED), "pairs[0].kind", "PAIR_KIND_HARMFUL"),
        (lambda p: setattr(p, "id", "f" * 64), "pairs[0].id", "content hash"),
    ],
)
def test_invalid_pairs_name_field(mutate, field: str, words: str) -> None:
    pair = make_pair(1)
    mutate(pair)
    with pytest.raises(InvalidPair) as error:
        validate_pair(pair, "pairs[0]", max_field_chars=1000)
    assert error.value.field == field and words in str(error.value)


def test_id_is_content_hash_and_order_sensitive() -> None:
    pair = make_pair(1)
    moved = make_pair(1)
    moved.prefix, moved.chosen = pair.prefix + "W", pair.chosen.removeprefix("W")
    assert pair_id(pair) == pair_id(make_pair(1)) and pair_id(pair) != pair_id(moved)
