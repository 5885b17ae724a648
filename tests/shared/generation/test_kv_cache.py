"""The running batch's KV cache layer (kv_cache.BatchLayer) against a plain reference: per-row tensors, right-aligned
and left-padded with zeros, rebuilt from scratch after every join, leave and decoded token.

Rows that stay are never copied by a leave or a join that fits (the buffer stays the same memory); the view only
ever shows the batch's rows, each with zeros before its tokens, even where a slot or column held a row that left.
"""

from __future__ import annotations

import torch

from shared.generation.backends.kv_cache import BatchLayer

HEADS, DIM = 2, 3


class Reference:
    """What the layer should hold: each row's real keys (values are the keys negated)."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []  # [heads, length, dim]
        self.width = 0

    def view(self) -> torch.Tensor:
        padded = [torch.nn.functional.pad(row, (0, 0, self.width - row.shape[1], 0)) for row in self.rows]
        return torch.stack(padded)

    def check(self, layer: BatchLayer) -> None:
        assert torch.equal(layer.keys, self.view()) and torch.equal(layer.values, -self.view())
        assert layer.get_seq_length() == self.width


_values = iter(range(1, 10_000))


def _tokens(rows: int, length: int) -> torch.Tensor:
    """Distinct non-zero keys, so that any stale or misplaced entry shows."""
    return torch.tensor([float(next(_values)) for _ in range(rows * HEADS * length * DIM)]).view(
        rows, HEADS, length, DIM
    )


def _new(reference: Reference, rows: int, length: int, capacity: int) -> BatchLayer:
    keys = _tokens(rows, length)
    reference.rows = list(keys)
    reference.width = length
    return BatchLayer.allocate(keys, -keys, capacity)


def _decode(layer: BatchLayer, reference: Reference) -> None:
    keys = _tokens(len(reference.rows), 1)
    layer.update(keys, -keys)
    reference.rows = [torch.cat([row, new], dim=1) for row, new in zip(reference.rows, keys, strict=True)]
    reference.width += 1


def _leave(layer: BatchLayer, reference: Reference, positions: list[int]) -> list[int]:
    """Keep the rows at `positions` as the engine does: later rows move into the freed slots."""
    count = len(positions)
    movers = iter(p for p in positions if p >= count)
    order = [slot if slot in positions else next(movers) for slot in range(count)]
    reference.rows = [reference.rows[p] for p in order]
    drop = reference.width - max(row.shape[1] for row in reference.rows)
    layer.keep(order, drop)
    reference.width -= drop
    return order


def _join(layer: BatchLayer, reference: Reference, rows: int, length: int) -> None:
    other = Reference()
    joining = _new(other, rows, length, length + 4)
    layer.absorb(joining)
    reference.rows += other.rows
    reference.width = max(reference.width, length)


def test_joins_leaves_and_decoding_keep_the_view_exact() -> None:
    reference = Reference()
    layer = _new(reference, rows=3, length=4, capacity=6)
    reference.check(layer)
    for _ in range(3):  # the third outgrows the six columns: the buffer grows
        _decode(layer, reference)
        reference.check(layer)
    _leave(layer, reference, [1, 2])  # row 0 leaves; row 2 moves into its slot
    reference.check(layer)
    _join(layer, reference, rows=2, length=11)  # longer than the batch: the view widens over stale columns
    reference.check(layer)
    _decode(layer, reference)
    _leave(layer, reference, [0, 3])  # the short rows leave, the long rows decide the width
    reference.check(layer)
    _join(layer, reference, rows=3, length=2)  # short rows: zeros before them, in slots rows had left
    reference.check(layer)
    for _ in range(4):
        _decode(layer, reference)
    reference.check(layer)
    taken = layer.take(torch.tensor([1, 3]), drop_columns=0)
    assert torch.equal(taken.keys, reference.view()[[1, 3]]), "take copies the rows"
    reference.check(layer)


def test_a_leave_and_a_join_that_fits_copy_no_row_that_stays() -> None:
    reference = Reference()
    layer = _new(reference, rows=8, length=5, capacity=40)
    buffer = layer._keys.data_ptr()
    staying = layer._keys[1].clone()
    _leave(layer, reference, [1, 2, 3, 4, 5, 6, 7])  # row 7 fills slot 0; rows 1-6 stay where they are
    _join(layer, reference, rows=1, length=3)  # into the spare row, right-aligned
    _decode(layer, reference)
    reference.check(layer)
    assert layer._keys.data_ptr() == buffer, "no reallocation"
    assert torch.equal(layer._keys[1, :, :5], staying[:, :5]), "the staying row's entries were not rewritten"


def test_columns_grow_geometrically_as_rows_decode() -> None:
    reference = Reference()
    layer = _new(reference, rows=2, length=3, capacity=4)
    sizes = set()
    for _ in range(200):
        _decode(layer, reference)
        sizes.add(layer._keys.shape[2])
    reference.check(layer)
    assert len(sizes) <= 7, f"the columns double: {sorted(sizes)}"


def test_rows_grow_geometrically_and_memory_is_given_back_when_most_rows_leave() -> None:
    reference = Reference()
    layer = _new(reference, rows=1, length=3, capacity=8)
    grown = []
    for _ in range(20):
        _join(layer, reference, rows=1, length=3)
        grown.append(layer._keys.shape[0])
    reference.check(layer)
    assert len(set(grown)) <= 6, f"the row capacity doubles: {sorted(set(grown))}"
    _leave(layer, reference, [0, 1])
    reference.check(layer)
    assert layer._keys.shape[0] <= 8, "a batch that shrank to two rows does not keep room for 21"
