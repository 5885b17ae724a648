"""Prefix-shared packed log-probs equal the naive full-sequence ones (fp32, 1e-5), with gradients."""

from __future__ import annotations

import pytest
import torch

from shared.training.logprobs import SuffixScorer, naive_suffix_logps, naive_token_logps, score_batch
from shared.training.packing import assign_rows, pack_pairs
from tests.shared.training.conftest import random_pairs


@pytest.mark.parametrize("max_row_tokens", [1, 64, 4096])
def test_packed_equals_naive(tiny_model, max_row_tokens):
    pairs = random_pairs(7)
    batch = pack_pairs(pairs, max_row_tokens=max_row_tokens, pad_token_id=0)
    with torch.no_grad():
        scorer = SuffixScorer(tiny_model)
        token_logps = scorer(
            batch.input_ids, batch.position_ids, batch.attention_mask, batch.source_index, batch.target_ids
        )
        ours = score_batch(scorer, batch)
        naive = naive_token_logps(tiny_model, pairs)
    for i, (chosen, rejected) in enumerate(naive):
        torch.testing.assert_close(token_logps[batch.owner == 2 * i], chosen, atol=1e-5, rtol=0)
        torch.testing.assert_close(token_logps[batch.owner == 2 * i + 1], rejected, atol=1e-5, rtol=0)
    # Sums of ~30 log-probs near -6 differ from each other only by fp32 rounding of the sum itself.
    torch.testing.assert_close(ours.chosen, torch.stack([c.sum() for c, _ in naive]), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(ours.rejected, torch.stack([r.sum() for _, r in naive]), atol=1e-5, rtol=1e-6)
    assert ours.chosen_tokens.tolist() == [len(p.chosen_ids) for p in pairs]
    assert ours.rejected_tokens.tolist() == [len(p.rejected_ids) for p in pairs]


def test_packed_gradients_equal_naive(tiny_model):
    pairs = random_pairs(4, seed=1)
    batch = pack_pairs(pairs, max_row_tokens=80, pad_token_id=0)
    params = [p for p in tiny_model.parameters() if p.requires_grad]

    def grads(fn):
        tiny_model.zero_grad()
        fn().backward()
        return [p.grad.clone() for p in params]

    ours = grads(lambda: (lambda s: (s.chosen - 2 * s.rejected).sum())(score_batch(SuffixScorer(tiny_model), batch)))
    naive = grads(lambda: (lambda c, r: (c - 2 * r).sum())(*naive_suffix_logps(tiny_model, pairs)))
    for a, b in zip(ours, naive, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    tiny_model.zero_grad()


def test_rows_respect_budget_and_padding_is_small():
    lengths = [50, 10, 30, 70, 20, 40, 60]
    rows = assign_rows(lengths, 100)
    assert sorted(i for row in rows for i in row) == list(range(7))
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 3
    pairs = random_pairs(16, seed=3)
    batch = pack_pairs(pairs, max_row_tokens=256, pad_token_id=0)
    naive_padded = 2 * len(pairs) * max(len(p.prefix_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs)
    assert batch.padded_tokens < naive_padded
    assert batch.real_tokens == sum(p.tokens for p in pairs)
