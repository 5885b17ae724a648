"""Tiny random-weight Llama-shaped models for the trainer's mechanics (no download, loads in milliseconds)."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from shared.training.tokenize import TokenizedPair


def tiny_llama(vocab_size: int = 512, seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer, 64-wide Llama with random weights, in fp32 with SDPA attention."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).eval()


def random_pairs(n: int, vocab_size: int = 512, seed: int = 0) -> list[TokenizedPair]:
    """Pairs of mixed lengths with random token ids."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):

        def ids(lo: int, hi: int) -> list[int]:
            return [rng.randrange(vocab_size) for _ in range(rng.randint(lo, hi))]

        pairs.append(
            TokenizedPair(pair_id=f"p{i}", prefix_ids=ids(1, 40), chosen_ids=ids(1, 30), rejected_ids=ids(1, 30))
        )
    return pairs


@pytest.fixture(scope="session")
def tiny_model() -> LlamaForCausalLM:
    return tiny_llama()
