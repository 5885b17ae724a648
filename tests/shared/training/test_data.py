"""Reading, validating, tokenising and ordering pairs: TRL's token boundary, counted skips, the over-refusal mix."""

from __future__ import annotations

from collections import Counter

import pytest

from shared.training.data import (
    HARMFUL,
    OVER_REFUSAL,
    PairRecord,
    epoch_order,
    epoch_size,
    record_from_row,
    tokenize_records,
)
from shared.training.tokenize import PairTokenError, tokenize_pair


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shared.models.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def test_boundary_follows_the_joint_tokenisation(tokenizer):
    # "Hello wor" + "ld" would merge across the boundary: the merged token belongs to the suffixes.
    pair = tokenize_pair(tokenizer, "p", "Hello wor", "ld peace", "ld war")
    full = tokenizer(text="Hello world peace" + tokenizer.eos_token)["input_ids"]
    assert pair.prefix_ids + pair.chosen_ids == full
    assert pair.chosen_ids[-1] == tokenizer.eos_token_id
    assert pair.boundary_merged


def test_suffix_truncation_and_long_prefix(tokenizer):
    pair = tokenize_pair(tokenizer, "p", "Hi.", " one two three four five", " six seven eight", max_suffix_tokens=2)
    assert len(pair.chosen_ids) == 2 and len(pair.rejected_ids) == 2 and pair.truncated
    with pytest.raises(PairTokenError) as error:
        tokenize_pair(tokenizer, "p", "word " * 50, " a", " b", max_prefix_tokens=10)
    assert error.value.reason == "prefix_too_long"


def test_rows_are_validated_and_skips_counted(tokenizer):
    good = {"id": "g", "prompt": "ctx pre", "context": "ctx ", "prefix": "pre", "chosen": " yes", "rejected": " no"}
    rows = [
        good,
        {**good, "id": "g"},
        {**good, "id": "m", "prompt": "other"},
        {**good, "id": "e", "rejected": ""},
        {**good, "id": "k", "kind": "PAIR_KIND_OVER_REFUSAL"},
        {"id": "n", "chosen": "a", "rejected": "b"},
    ]
    records = []
    for i, row in enumerate(rows):
        try:
            records.append(record_from_row(row, i))
        except PairTokenError as error:
            records.append(error)
    pairs, kinds, report = tokenize_records(
        records,
        tokenizer,
        append_eos=True,
        max_prefix_tokens=100,
        max_suffix_tokens=100,
        alpha=0.0,
        over_refusal_alpha=0.2,
    )
    assert [p.pair_id for p in pairs] == ["g", "k"]
    assert kinds == [HARMFUL, OVER_REFUSAL]
    assert [p.alpha for p in pairs] == [0.0, 0.2]
    assert report.skipped == Counter(duplicate_id=1, prefix_mismatch=1, empty_suffix=1, missing_prompt=1)
    assert report.read == 6 and report.used == 2


def test_epoch_order_mixes_over_refusal_at_the_requested_share_and_is_deterministic():
    kinds = [HARMFUL] * 30 + [OVER_REFUSAL] * 4
    size = epoch_size(kinds, 0.25)
    assert size == 40
    order = epoch_order(kinds, 0.25, seed=1, epoch=0, rank=0, size=size)
    assert sum(kinds[i] == OVER_REFUSAL for i in order) == 10
    assert order == epoch_order(kinds, 0.25, seed=1, epoch=0, rank=0, size=size)
    assert order != epoch_order(kinds, 0.25, seed=1, epoch=1, rank=0, size=size)
    assert sorted(epoch_order(kinds, None, seed=1, epoch=0, rank=0, size=34)) == list(range(34))


def test_proto_pairs_are_read_as_context_plus_prefix():
    from shared.protos.intervene.v1 import common_pb2
    from shared.training.data import record_from_proto

    pair = common_pb2.Pair(
        id="x", context="c ", prefix="p", chosen=" a", rejected=" b", kind=common_pb2.PAIR_KIND_OVER_REFUSAL
    )
    assert record_from_proto(pair) == PairRecord("x", OVER_REFUSAL, "c p", " a", " b")
