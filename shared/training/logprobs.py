"""Suffix log-probs on packed, prefix-shared batches, and the naive full-sequence computation they must equal.

`SuffixScorer` wraps a causal LM (plain or peft) as one module, so DDP/FSDP can wrap the scorer and see every call.
It runs the backbone once over the packed rows and applies the LM head only at the positions that predict a
suffix token, in checkpointed chunks: the ``(tokens, vocab)`` logits never exist for the prefix and only one chunk
of them exists at a time.

    .venv/bin/pytest tests/shared/training/test_logprobs.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from shared.training.loss import SuffixLogps
from shared.training.packing import PackedBatch
from shared.training.tokenize import TokenizedPair

LM_HEAD_CHUNK = 512


def causal_lm_of(model: nn.Module) -> nn.Module:
    """The transformers causal LM inside `model` (a peft model's base model, LoRA layers included)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _chunk_logps(hidden: torch.Tensor, targets: torch.Tensor, head: nn.Module) -> torch.Tensor:
    logits = head(hidden).float()
    return logits.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)


class SuffixScorer(nn.Module):
    """Per-token log-probs of the suffix tokens of a `PackedBatch`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        source_index: torch.Tensor,
        target_ids: torch.Tensor,
    ) -> torch.Tensor:
        lm = causal_lm_of(self.model)
        backbone = lm.base_model
        hidden = backbone(
            input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        hidden = hidden.reshape(-1, hidden.size(-1)).index_select(0, source_index)
        head = lm.get_output_embeddings()
        pieces = []
        for start in range(0, hidden.size(0), LM_HEAD_CHUNK):
            h, t = hidden[start : start + LM_HEAD_CHUNK], target_ids[start : start + LM_HEAD_CHUNK]
            if torch.is_grad_enabled() and h.requires_grad:
                pieces.append(checkpoint(_chunk_logps, h, t, head, use_reentrant=False))
            else:
                pieces.append(_chunk_logps(h, t, head))
        return torch.cat(pieces)


def score_batch(scorer: nn.Module, batch: PackedBatch) -> SuffixLogps:
    """Summed suffix log-probs per pair (`scorer` is a `SuffixScorer`, possibly wrapped by DDP/FSDP)."""
    token_logps = scorer(
        batch.input_ids, batch.position_ids, batch.attention_mask, batch.source_index, batch.target_ids
    )
    sums = torch.zeros(2 * batch.num_pairs, dtype=token_logps.dtype, device=token_logps.device)
    sums = sums.index_add(0, batch.owner, token_logps)
    counts = torch.bincount(batch.owner, minlength=2 * batch.num_pairs)
    return SuffixLogps(chosen=sums[0::2], rejected=sums[1::2], chosen_tokens=counts[0::2], rejected_tokens=counts[1::2])


def naive_token_logps(model: nn.Module, pairs: list[TokenizedPair]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-token suffix log-probs (chosen, rejected) of each pair from two plain full sequences (prefix + suffix):
    no sharing, no packing, no padding. The reference our packed path is tested against."""
    out = []
    device = next(model.parameters()).device
    for pair in pairs:
        both = []
        for suffix in (pair.chosen_ids, pair.rejected_ids):
            ids = torch.tensor([pair.prefix_ids + suffix], device=device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            logps = logits.log_softmax(-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
            both.append(logps[len(pair.prefix_ids) - 1 :])
        out.append((both[0], both[1]))
    return out


def naive_suffix_logps(model: nn.Module, pairs: list[TokenizedPair]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed suffix log-probs per pair from `naive_token_logps`."""
    per_token = naive_token_logps(model, pairs)
    return torch.stack([c.sum() for c, _ in per_token]), torch.stack([r.sum() for _, r in per_token])
