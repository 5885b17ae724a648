"""The model side of a run: the base model with LoRA, its distributed wrapping, the learning-rate schedule, and the
check that DDP replicas stayed identical."""

from __future__ import annotations

import hashlib

import torch
import torch.distributed as dist
from torch import nn

from shared.config.trainer import TrainerSettings
from shared.training.distributed import DistEnv
from shared.training.logprobs import SuffixScorer, causal_lm_of


class LoraTargetError(ValueError):
    """The configured LoRA target modules do not exist in the model."""


def resolve_model_path(model: str) -> str:
    """`model` as transformers takes it; 'embedded' is the bundled SmolLM2 folder."""
    if model == "embedded":
        from shared.models.embedded import embedded_model_dir

        return str(embedded_model_dir())
    return model


def build_model(settings: TrainerSettings, model_path: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, attn_implementation="sdpa")
    # The base model's own dropout would make the policy and the reference see different networks (TRL turns it
    # off too); LoRA's dropout, added below, is the only randomness left.
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    # Same seed on every rank: identical LoRA init everywhere (DDP also broadcasts rank 0's weights).
    torch.manual_seed(settings.seed)
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_targets,
        task_type="CAUSAL_LM",
    )
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as error:
        raise LoraTargetError(f"LoRA targets {settings.lora_targets} do not fit {model_path}: {error}") from error
    return peft_model.to(device)


def wrap_for_training(scorer: SuffixScorer, settings: TrainerSettings, env: DistEnv, device: torch.device) -> nn.Module:
    if not env.distributed:
        return scorer
    if settings.strategy == "fsdp":
        # FSDP2: each decoder layer is its own shard group (gathered only while it runs), the rest (embeddings,
        # norm, tied head) forms the root group. It works on CPU with gloo as well as on CUDA with NCCL.
        from torch.distributed.fsdp import fully_shard

        for layer in causal_lm_of(scorer.model).base_model.layers:
            fully_shard(layer)
        fully_shard(scorer)
        return scorer
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        scorer, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False
    )


def linear_schedule(settings: TrainerSettings, total_steps: int):
    def factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / (settings.warmup_steps + 1)
        remaining = total_steps - settings.warmup_steps
        return max(0.0, (total_steps - step) / remaining) if remaining > 0 else 1.0

    return factor


def replica_digests(peft_model: nn.Module, env: DistEnv) -> list[str]:
    """sha256 of each rank's own copy of the trainable weights (DDP replicas must be bit-identical)."""
    digest = hashlib.sha256()
    for name, param in sorted(peft_model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    mine = digest.hexdigest()[:16]
    if not env.distributed:
        return [mine]
    gathered: list[str | None] = [None] * env.world_size
    dist.all_gather_object(gathered, mine)
    return [str(d) for d in gathered]
