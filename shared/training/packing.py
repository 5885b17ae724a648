"""Packs pairs as ``[prefix, chosen, rejected]`` with a prefix-sharing attention mask, several pairs per row.

The shared prefix of a pair is computed once: the chosen tokens attend to the prefix and to earlier chosen tokens,
the rejected tokens to the prefix and to earlier rejected tokens (never to the chosen ones), and the rejected
suffix's position ids restart where the prefix ends, so each suffix sees exactly what it would see in its own
full sequence. Pairs of mixed lengths are packed first-fit-decreasing into rows of at most `max_row_tokens`
tokens (a longer pair gets a row of its own) with a block-diagonal mask, so padding is only the slack of the last
rows, never "every pair padded to the longest". The mask is a 4-D boolean tensor, which transformers passes to the
attention kernel as-is (PyTorch's SDPA flash kernel on the CPU and the efficient kernel on CUDA both take it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shared.training.tokenize import TokenizedPair


@dataclass
class PackedBatch:
    """Model inputs for a list of pairs, plus where each scored suffix token is predicted.

    `source_index[k]` is the flat index (row * width + column) of the hidden state that predicts token
    `target_ids[k]`; `owner[k]` is ``2 * pair + 0`` for a chosen token and ``2 * pair + 1`` for a rejected one,
    with pairs numbered in the order they were given.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    source_index: torch.Tensor
    target_ids: torch.Tensor
    owner: torch.Tensor
    num_pairs: int
    real_tokens: int

    def to(self, device: torch.device | str) -> PackedBatch:
        """The same batch on `device`."""
        return PackedBatch(
            input_ids=self.input_ids.to(device),
            position_ids=self.position_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            source_index=self.source_index.to(device),
            target_ids=self.target_ids.to(device),
            owner=self.owner.to(device),
            num_pairs=self.num_pairs,
            real_tokens=self.real_tokens,
        )

    @property
    def padded_tokens(self) -> int:
        """Tokens the model runs, padding included."""
        return self.input_ids.numel()


def assign_rows(lengths: list[int], max_row_tokens: int) -> list[list[int]]:
    """First-fit-decreasing bin packing: lists of item indices whose lengths sum to at most `max_row_tokens`."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[index] <= free:
                rows[r].append(index)
                room[r] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(max_row_tokens - lengths[index])
    return rows


def pack_pairs(pairs: list[TokenizedPair], max_row_tokens: int, pad_token_id: int) -> PackedBatch:
    """Pack `pairs` into rows (see the module docstring)."""
    if not pairs:
        raise ValueError("pack_pairs needs at least one pair")
    rows = assign_rows([p.tokens for p in pairs], max_row_tokens)
    width = max(sum(pairs[i].tokens for i in row) for row in rows)
    n_rows = len(rows)
    input_ids = torch.full((n_rows, width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    # Padding gets a segment of its own per column, so a pad token attends only to itself (a query row with no
    # allowed key would make SDPA return NaN, which would then poison the backward pass).
    segment = -torch.arange(1, width + 1).repeat(n_rows, 1)
    part = torch.zeros((n_rows, width), dtype=torch.long)
    sources: list[int] = []
    targets: list[int] = []
    owners: list[int] = []
    for r, row in enumerate(rows):
        offset = 0
        for slot, index in enumerate(row):
            pair = pairs[index]
            p, c, n_rej = len(pair.prefix_ids), len(pair.chosen_ids), len(pair.rejected_ids)
            ids = pair.prefix_ids + pair.chosen_ids + pair.rejected_ids
            end = offset + len(ids)
            input_ids[r, offset:end] = torch.tensor(ids)
            position_ids[r, offset : offset + p + c] = torch.arange(p + c)
            position_ids[r, offset + p + c : end] = torch.arange(p, p + n_rej)
            segment[r, offset:end] = slot
            part[r, offset + p : offset + p + c] = 1
            part[r, offset + p + c : end] = 2
            base = r * width + offset
            last_prefix = base + p - 1
            sources += [last_prefix] + [base + p + k for k in range(c - 1)]
            sources += [last_prefix] + [base + p + c + k for k in range(n_rej - 1)]
            targets += pair.chosen_ids + pair.rejected_ids
            owners += [2 * index] * c + [2 * index + 1] * n_rej
            offset = end
    columns = torch.arange(width)
    causal = columns[None, :] <= columns[:, None]
    same_pair = segment[:, :, None] == segment[:, None, :]
    key_visible = (part[:, None, :] == 0) | (part[:, None, :] == part[:, :, None])
    mask = (same_pair & causal[None] & key_visible)[:, None]
    return PackedBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=mask,
        source_index=torch.tensor(sources, dtype=torch.long),
        target_ids=torch.tensor(targets, dtype=torch.long),
        owner=torch.tensor(owners, dtype=torch.long),
        num_pairs=len(pairs),
        real_tokens=sum(p.tokens for p in pairs),
    )
