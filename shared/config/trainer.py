"""Settings of the suffix DPO trainer (`INTERVENE_TRAINER_*`), the entrypoint a PyTorchJob runs.

The paper leaves beta, the learning rate, epochs, LoRA and lengths open (DESIGN §1, "Unknowns"); the defaults below are
ours and each description says why. The trainer is a gRPC *client* (of the pair store and generation), not a server,
so these settings do not extend `ServiceSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The held-out sets (StrongREJECT, JailbreakBench, HarmBench test, XSTest) that the trained model is evaluated on.
DEFAULT_EVAL_SETS = ["strongreject", "jbb", "harmbench-test", "xstest-safe", "xstest-unsafe"]


class TrainerSettings(BaseSettings):
    """Every hyperparameter and path of one training run."""

    model_config = SettingsConfigDict(env_prefix="INTERVENE_TRAINER_", extra="ignore")

    # Model
    model: str = Field(
        "embedded",
        description="Base model: a local transformers folder or a hub id; 'embedded' is the bundled SmolLM2-135M.",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Compute precision: 'auto' is bf16 autocast on CUDA and fp32 on the CPU."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, about 30% slower)."
    )
    # Pairs
    pairs_file: Path | None = Field(
        None,
        description="Exported pairs: JSONL or Parquet with TRL's prompt/chosen/rejected plus id/kind/context/prefix.",
    )
    pair_store: str | None = Field(
        None, description="Pair store address host:port; each rank streams ExportPairs(shard=rank, num_shards=world)."
    )
    pair_store_token: SecretStr | None = Field(None, description="Read-scope bearer token of the pair store.")
    pair_store_token_file: Path | None = Field(None, description="File holding the pair store's read-scope token.")
    pair_store_timeout_s: float = Field(10.0, gt=0, description="Deadline of the pair store's Stats check at startup.")
    over_refusal_fraction: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="Share of over-refusal pairs in each epoch (sampled with repetition when too few); "
        "unset keeps the source's own mix.",
    )
    alpha: float = Field(0.0, ge=0, description="alpha of the NLL term on harmful pairs (the paper uses 0).")
    over_refusal_alpha: float = Field(0.2, ge=0, description="alpha of the NLL term on over-refusal pairs (0.2).")
    append_eos: bool = Field(True, description="End each suffix with the EOS token, as TRL does for text pairs.")
    max_prefix_tokens: int = Field(
        2048, ge=1, description="Pairs whose conditioning (context + prefix) is longer are dropped and counted."
    )
    max_suffix_tokens: int = Field(
        1024, ge=1, description="Longer suffixes keep their first tokens (counted as truncated)."
    )
    max_row_tokens: int = Field(
        2048,
        ge=16,
        description="Token budget of one packed row; pairs of a batch share rows up to it (attention cost grows with "
        "the square of a row's length, so rows much longer than one pair waste compute on masked-out blocks).",
    )
    eval_sets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EVAL_SETS),
        description="Data sets or files the trained model will be evaluated on: pairs whose user prompt overlaps one "
        "(same text, or half the word 8-grams of the shorter prompt) stop training. Default sets missing from the "
        "data folder are skipped with a warning; sets named here must exist; [] turns the check off.",
    )
    allow_eval_overlap: bool = Field(
        False, description="Train on pairs that overlap eval_sets anyway (their count is logged) instead of stopping."
    )
    # Loss
    beta: float = Field(0.1, gt=0, description="DPO beta (TRL's default; the paper does not give it).")
    length_normalize: bool = Field(False, description="Use per-token mean log-probs instead of sums.")
    # Optimisation
    learning_rate: float = Field(
        5e-5, gt=0, description="AdamW peak learning rate (LoRA needs more than TRL's full-model 1e-6)."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps; then linear decay to 0 at the last step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    epochs: int = Field(1, ge=1, description="Passes over the pairs (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    batch_size: int = Field(4, ge=1, description="Pairs per rank per micro-batch.")
    grad_accumulation: int = Field(4, ge=1, description="Micro-batches per optimizer step.")
    seed: int = Field(0, description="Seed of LoRA init, data order and dropout; every rank derives its own from it.")
    # LoRA
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        description="Module names LoRA wraps (Llama/Qwen attention and MLP projections by default).",
    )
    # Distribution
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="DDP (replicated) or FSDP (sharded, large models).")
    # Outputs
    output_dir: Path = Field(Path("runs/trainer"), description="Checkpoints, metrics, plot and adapters go here.")
    adapter_name: str = Field(
        "policy-v1",
        pattern=r"^[a-z0-9][a-z0-9-]*-v[0-9]+$",
        description="Versioned name of the final adapter (name-vN); an existing folder of that name is refused.",
    )
    adapters_dir: Path | None = Field(
        None, description="Where the final adapter folder goes (default output_dir/adapters)."
    )
    ref_cache_dir: Path | None = Field(
        None, description="On-disk cache of reference log-probs (default output_dir/ref-cache)."
    )
    checkpoint_every: int = Field(50, ge=1, description="Write a resumable checkpoint every N optimizer steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept (older ones are deleted).")
    log_every: int = Field(1, ge=1, description="Write a metrics line every N optimizer steps.")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of rank 0's Prometheus /metrics endpoint (loss, rewards, tokens/s) while training; 0: off.",
    )
    progress: bool = Field(True, description="Show a tqdm progress bar on rank 0.")
    plot: bool = Field(True, description="Write curves.png (loss, rewards, margins, accuracy) at the end.")
    exit_after_steps: int | None = Field(
        None,
        ge=1,
        description="Preemption drill: exit with status 75 after this many steps, without the final adapter.",
    )
    # Promotion
    promote: bool = Field(False, description="After training, call LoadAdapter on the generation service.")
    generation_address: str = Field("127.0.0.1:50051", description="Generation service address for --promote.")
    generation_token: SecretStr | None = Field(None, description="Bearer token of the generation service.")
    generation_token_file: Path | None = Field(None, description="File holding the generation service's token.")

    @model_validator(mode="after")
    def _one_pair_source(self) -> TrainerSettings:
        if (self.pairs_file is None) == (self.pair_store is None):
            raise ValueError(
                "set exactly one pair source: INTERVENE_TRAINER_PAIRS_FILE (exported JSONL/Parquet) "
                "or INTERVENE_TRAINER_PAIR_STORE (host:port)"
            )
        return self

    def final_adapter_dir(self) -> Path:
        """The PEFT folder the final adapter is written to."""
        return (self.adapters_dir or self.output_dir / "adapters") / self.adapter_name
