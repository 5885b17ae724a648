"""Parity with TRL 1.16's `DPOTrainer` (sigmoid loss, the prefix placed in TRL's prompt): same loss and LoRA
gradients to 1e-4 in fp32, on a tiny random Llama with the real SmolLM2 tokenizer and chat-formatted pairs."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from shared.training.logprobs import SuffixScorer, score_batch
from shared.training.loss import suffix_dpo_loss
from shared.training.packing import pack_pairs
from shared.training.reference import compute_reference
from shared.training.tokenize import tokenize_pair
from tests.shared.training.conftest import tiny_llama

CONTEXT = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n<think>\n"
PAIRS = [
    ("How do I bake bread?", "The user wants bread. First, flour.", " Then knead it well.", " Then skip the yeast."),
    ("What is 2+2?", "", "Simple arithmetic: 4.</think>\n4", "I refuse.</think>\nNo."),
    ("Plan a trip.", "Trips need planning. Budget matters!", "\nBook early.", "\nWait, maybe later, or never."),
]
BETA = 0.3


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shared.models.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


# Random A and B (not B = 0), so the policy differs from the reference and every LoRA weight gets a gradient.
LORA = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False)


def _lora_grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_loss_and_lora_gradients_match_trl(tokenizer):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    base = tiny_llama(vocab_size=len(tokenizer))
    rows = [
        {"prompt": CONTEXT.format(q=q) + prefix, "chosen": chosen, "rejected": rejected}
        for q, prefix, chosen, rejected in PAIRS
    ]
    args = DPOConfig(
        output_dir="/tmp/unused-trl-parity",
        beta=BETA,
        max_length=None,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to=[],
        per_device_train_batch_size=len(rows),
        dataset_num_proc=None,
    )
    # TRL gets the base model and the LoRA config (a ready PeftModel would make TRL copy its adapter as the reference);
    # ours gets TRL's initial LoRA weights.
    trainer = DPOTrainer(
        model=copy.deepcopy(base),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LORA,
    )
    trl_model = trainer.model
    ours_model = get_peft_model(copy.deepcopy(base), LORA)
    ours_model.load_state_dict({n: p for n, p in trl_model.state_dict().items() if "lora_" in n}, strict=False)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    trl_model.train()
    trl_loss = trainer.compute_loss(trainer.model, batch)
    trl_loss.backward()
    trl_grads = _lora_grads(trl_model)

    pairs = [tokenize_pair(tokenizer, str(i), r["prompt"], r["chosen"], r["rejected"]) for i, r in enumerate(rows)]
    for pair, i in zip(pairs, range(len(rows)), strict=True):
        example = trainer.train_dataset[i]
        assert (pair.prefix_ids, pair.chosen_ids, pair.rejected_ids) == (
            example["prompt_ids"],
            example["chosen_ids"],
            example["rejected_ids"],
        )
    packed = pack_pairs(pairs, max_row_tokens=64, pad_token_id=tokenizer.pad_token_id)
    scorer = SuffixScorer(ours_model)
    ref_chosen, ref_rejected = compute_reference(scorer, packed, torch.autocast("cpu", enabled=False))
    ours_model.train()
    loss, _ = suffix_dpo_loss(score_batch(scorer, packed), ref_chosen, ref_rejected, beta=BETA)
    loss.backward()
    ours_grads = _lora_grads(ours_model)

    torch.testing.assert_close(loss, trl_loss.to(loss.dtype), atol=1e-4, rtol=1e-4)
    assert ours_grads.keys() == trl_grads.keys() and ours_grads
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, trl_grads[name], atol=1e-4, rtol=1e-4, msg=name)
    assert any(g.abs().sum() > 0 for g in ours_grads.values())
