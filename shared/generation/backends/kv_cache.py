"""The KV cache of a continuously batched decode: one layer's keys and values for every row of the running batch.

Why its own layout: rows join and leave the running batch at almost every step when many calls decode together,
and re-building the batch's cache each time (concatenating, or index-selecting the rows that stay) copied every
row's keys and values — on the embedded model, a third of a decode step's time per join or leave. Here each layer
keeps its rows in buffers with spare rows and columns:

    buffer[row, head, column, dim]; the batch is rows [0, rows) and columns [start, end)

Every row's next token is written at column `end`, in place. A row that leaves has its slot filled by a row from
the end of the batch (only the moved rows are copied); rows that join are written into spare rows, right-aligned
at `end`. A buffer is reallocated — the one copy of the rows that stay — only when it runs out of rows or columns,
and then to at least twice what ran short, so joins and leaves cost what moves, not what stays. Columns a view
starts to include (it widens to the left when a longer row joins) are zeroed first: masked keys still enter the
attention product, and stale values from rows that left could be anything.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class BatchLayer(DynamicLayer):
    """One layer's cache for the rows of a batch (see the module docstring); `keys`/`values` are views."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: int, start: int, end: int) -> None:
        super().__init__()
        self._keys, self._values = keys, values
        self._rows, self._start, self._end = rows, start, end
        self.device, self.dtype, self.is_initialized = keys.device, keys.dtype, True
        self._expose()

    @classmethod
    def allocate(cls, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> BatchLayer:
        """A layer holding `keys`/`values` ([rows, heads, length, dim]) with room for `capacity` columns in all."""
        rows, heads, length, _ = keys.shape
        columns = max(capacity, length)
        key_buffer = keys.new_empty(rows, heads, columns, keys.shape[-1])
        value_buffer = values.new_empty(rows, heads, columns, values.shape[-1])
        key_buffer[:, :, :length] = keys
        value_buffer[:, :, :length] = values
        return cls(key_buffer, value_buffer, rows, 0, length)

    @property
    def length(self) -> int:
        """Columns of the batch (the widest row's tokens so far)."""
        return self._end - self._start

    @property
    def spare(self) -> int:
        """Columns left after `end` before the buffer must grow."""
        return self._keys.shape[2] - self._end

    def absorb(self, other: BatchLayer) -> None:
        """Append the rows of `other` after this layer's rows, right-aligned at this layer's end column."""
        width = other.length
        widen = max(0, width - self.length)
        self._reserve(self._rows + other._rows, widen, 0)  # columns to decode into grow when they run out
        if widen:
            self._zero(slice(0, self._rows), self._start - widen, self._start)
            self._start -= widen
        first, last = self._rows, self._rows + other._rows
        self._zero(slice(first, last), self._start, self._end - width)
        for mine, theirs in ((self._keys, other._keys), (self._values, other._values)):
            mine[first:last, :, self._end - width : self._end] = theirs[: other._rows, :, other._start : other._end]
        self._rows = last
        self._expose()

    def keep(self, order: list[int], drop_columns: int) -> None:
        """Keep the rows `order` names, in that order, where `order[slot]` is either `slot` (the row stays where it
        is) or a row from beyond the kept ones (moved into a slot a leaving row freed); drop the view's first
        `drop_columns` columns."""
        moves = [(slot, row) for slot, row in enumerate(order) if row != slot]
        if moves:
            target = torch.tensor([slot for slot, _ in moves], device=self._keys.device)
            source = torch.tensor([row for _, row in moves], device=self._keys.device)
            for buffer in (self._keys, self._values):
                buffer[target, :, self._start : self._end] = buffer[source, :, self._start : self._end]
        self._rows = len(order)
        self._start += drop_columns
        if self._rows * 4 <= self._keys.shape[0] and self._keys.shape[0] > 8:
            self._reallocate(max(2 * self._rows, 1), 0, self.spare)  # most rows left: give the memory back
        self._expose()

    def take(self, rows: torch.Tensor, drop_columns: int) -> BatchLayer:
        """A new layer with copies of `rows` (this one unchanged), without the view's first `drop_columns` columns."""
        start = self._start + drop_columns
        keys = self._keys[rows, :, start : self._end]
        values = self._values[rows, :, start : self._end]
        return BatchLayer.allocate(keys, values, self._end - start + self.spare)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Write the new tokens' keys and values at the end of every row (in place; grows the columns if needed)."""
        count = key_states.shape[-2]
        if count > self.spare:
            self._reserve(self._rows, 0, count)
        self._keys[: self._rows, :, self._end : self._end + count] = key_states
        self._values[: self._rows, :, self._end : self._end + count] = value_states
        self._end += count
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def _reserve(self, rows: int, before: int, after: int) -> None:
        """Room for `rows` rows, `before` columns before the start and `after` after the end; what runs short
        grows to at least twice its size (the columns: the buffer's), in one copy of the rows."""
        capacity_rows = self._keys.shape[0]
        if rows <= capacity_rows and before <= self._start and after <= self.spare:
            return
        self._reallocate(
            capacity_rows if rows <= capacity_rows else max(rows, 2 * capacity_rows),
            before if before <= self._start else 2 * before,
            self.spare if after <= self.spare else max(after, self._keys.shape[2]),
        )

    def _reallocate(self, rows: int, before: int, after: int) -> None:
        """New buffers of `rows` rows and `before` + length + `after` columns, holding this layer's rows."""
        length = self.length
        for name in ("_keys", "_values"):
            old = getattr(self, name)
            new = old.new_empty(rows, old.shape[1], before + length + after, old.shape[3])
            new[: self._rows, :, before : before + length] = old[: self._rows, :, self._start : self._end]
            setattr(self, name, new)
        self._start, self._end = before, before + length

    def _zero(self, rows: slice, start: int, end: int) -> None:
        if end > start:
            self._keys[rows, :, start:end] = 0
            self._values[rows, :, start:end] = 0

    def _expose(self) -> None:
        self.keys = self._keys[: self._rows, :, self._start : self._end]
        self.values = self._values[: self._rows, :, self._start : self._end]
