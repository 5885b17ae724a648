"""A tiny random-weight model for drills where only the mechanics count: fault tests and load benchmarks.

It has the embedded SmolLM2's tokenizer and chat template (so prompts, think blocks and budgets work as with a
real model) but two 64-wide Llama layers of random weights, so a token costs well under a millisecond on a CPU.
Its output head can only write a handful of plain words and a full stop; everything else has a zero row and
never wins, and the end-of-sequence token is among the zeros, so every rollout runs to its token budget. What
it writes is therefore harmless word salad that the sentence splitter cuts into steps, varies with the prompt,
and, under greedy decoding, is the same on every run.

    python -m shared.models.tiny FOLDER      # writes the model folder and prints it
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared.models.embedded import embedded_model_dir

WORDS = ("we", "bake", "bread", "then", "mix", "dough", "rest", "oven")
SEED = 1


def tiny_model(folder: Path, words: tuple[str, ...] = WORDS, seed: int = SEED) -> Path:
    """Writes the tiny model (config, random safetensors, the embedded tokenizer) to `folder`; returns it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    # Each word with its leading space is one token, so a full stop is always followed by whitespace: a step end.
    allowed = sorted({tokenizer.encode(" " + word)[0] for word in words} | {tokenizer.encode(".")[0]})
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # Large random weights give clear margins between the allowed tokens' logits, so greedy decoding does
        # not flip on the rounding differences that batching with other rows brings.
        initializer_range=0.5,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        kept = model.lm_head.weight[allowed].clone()
        model.lm_head.weight.zero_()
        model.lm_head.weight[allowed] = kept
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(tiny_model(Path(sys.argv[1])))
