"""Export rows in TRL's prompt/chosen/rejected form, as JSONL and Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shared.pairs.export import to_row, write_pairs
from tests.shared.pairs.factories import make_pair


def test_prompt_is_context_then_shared_prefix() -> None:
    pair = make_pair(3)
    row = to_row(pair)
    assert row["prompt"] == pair.context + pair.prefix
    assert row["prompt"].endswith("<think>\nThe user asks for something. ")
    assert (row["chosen"], row["rejected"], row["kind"]) == (pair.chosen, pair.rejected, "harmful")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_written_rows_round_trip(tmp_path: Path, fmt: str) -> None:
    pairs = [make_pair(i) for i in range(5)]
    path = tmp_path / f"pairs.{fmt}"
    assert write_pairs(pairs, path, fmt) == 5
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        rows = pq.read_table(path).to_pylist()
    assert rows == [to_row(p) for p in pairs]
    assert not list(tmp_path.glob("*.partial"))


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use one of jsonl, parquet"):
        write_pairs([], tmp_path / "x", "csv")
