"""The suffix DPO training run: setup, checks before training, the step loop, checkpoints, the final adapter.

Every check that can fail on bad input (pair source, existing adapter folder, no usable pair, resuming with another
world size) runs before the model is loaded. Run it through `python -m services.trainer` (under torchrun) or
`intervene train`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from shared.config.trainer import TrainerSettings
from shared.datasets import DatasetError
from shared.evaluation.overlap import EvalOverlapError, check_training_pairs, load_prompt_set
from shared.evaluation.training_log import plot_curves
from shared.training import checkpoint as ckpt
from shared.training.data import DataReport, PairRecord, epoch_order, epoch_size, tokenize_records
from shared.training.distributed import DistEnv, all_reduce_sum, init_distributed
from shared.training.logprobs import SuffixScorer, score_batch
from shared.training.loss import suffix_dpo_loss
from shared.training.metrics import MetricsLog
from shared.training.model import (
    LoraTargetError,
    build_model,
    linear_schedule,
    replica_digests,
    resolve_model_path,
    wrap_for_training,
)
from shared.training.packing import pack_pairs
from shared.training.pairsource import PairSourceError, file_shard, store_snapshot, stream_store_shard
from shared.training.prometheus import TrainerMetrics
from shared.training.reference import ReferenceCache, compute_reference, model_fingerprint
from shared.training.tokenize import TokenizedPair

log = logging.getLogger("intervene.trainer")

PREEMPTED_EXIT_CODE = 75
METRIC_NAMES = [
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "nll/chosen",
]


class TrainingInputError(ValueError):
    """Bad input found before training started; the message says what to change."""


@dataclass
class TrainResult:
    """What a finished run produced."""

    adapter_dir: Path | None
    steps: int
    metrics_path: Path
    plot_path: Path | None
    data: dict
    rank: int = 0


def _token(value, file: Path | None) -> str | None:
    if file is not None:
        return file.read_text().strip() or None
    return value.get_secret_value() if value is not None else None


def preflight(settings: TrainerSettings) -> None:
    """The checks that need neither the model nor the network: run by `intervene train` before it launches."""
    target = settings.final_adapter_dir()
    if target.exists():
        raise TrainingInputError(
            f"adapter folder {target} exists: set a new versioned INTERVENE_TRAINER_ADAPTER_NAME (e.g. "
            f"{_next_version(settings.adapter_name)}); adapters are never overwritten"
        )
    if settings.pairs_file is not None and not settings.pairs_file.exists():
        raise TrainingInputError(f"pairs file {settings.pairs_file} does not exist (INTERVENE_TRAINER_PAIRS_FILE)")
    if settings.pairs_file is not None:
        _check_eval_overlap(settings)


def _check_eval_overlap(settings: TrainerSettings, records: list | None = None, env: DistEnv | None = None) -> None:
    """Stop when pairs share prompts with the evaluation sets (unless allowed): the pairs file's, or those of
    `records` (this rank's shard of the pair store), counted over every rank of the job."""
    try:
        if records is None:
            entries = load_prompt_set(str(settings.pairs_file)).entries()
        else:
            entries = [(r.pair_id, r.user_prompt or r.conditioning) for r in records if isinstance(r, PairRecord)]
        notice = check_training_pairs(entries, settings, all_reduce_sum if env is not None else None)
    except (EvalOverlapError, DatasetError) as error:
        raise TrainingInputError(str(error)) from error
    if notice and (env is None or env.rank == 0):
        log.warning(notice)


def _check_before_start(settings: TrainerSettings) -> str:
    """Fail fast on bad input; returns the pair-store snapshot id ('' for a file)."""
    preflight(settings)
    if settings.pairs_file is not None:
        return ""
    try:
        return store_snapshot(
            settings.pair_store,
            _token(settings.pair_store_token, settings.pair_store_token_file),
            settings.pair_store_timeout_s,
        )
    except PairSourceError as error:
        raise TrainingInputError(str(error)) from error


def _next_version(name: str) -> str:
    stem, _, version = name.rpartition("-v")
    return f"{stem}-v{int(version) + 1}" if version.isdigit() else f"{name}-v2"


def _load_records(settings: TrainerSettings, env: DistEnv) -> tuple[list, str]:
    if settings.pairs_file is not None:
        return file_shard(settings.pairs_file, env.rank, env.world_size), ""
    cache = settings.output_dir / "data" / f"shard-{env.rank}-of-{env.world_size}.json"
    token = _token(settings.pair_store_token, settings.pair_store_token_file)
    try:
        return stream_store_shard(settings.pair_store, token, env.rank, env.world_size, cache)
    except PairSourceError as error:
        raise TrainingInputError(str(error)) from error


def run(settings: TrainerSettings) -> TrainResult:
    """Train (or resume) as configured; every rank of a torchrun job calls this."""
    env = init_distributed()
    try:
        return _run(settings, env)
    finally:
        if env.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _run(settings: TrainerSettings, env: DistEnv) -> TrainResult:
    """The recipe: check the input, load the data, build the model, resume or seed, train step by step, save."""
    snapshot = _check_before_start(settings)
    checkpoints = settings.output_dir / "checkpoints"
    resume_from = ckpt.latest_checkpoint(checkpoints)
    model_path = resolve_model_path(settings.model)
    data = _load_data(settings, env, model_path, snapshot)
    model = _build_model(settings, env, model_path, data.total_steps)
    start = 0
    if resume_from is None:
        _seed(settings, env)
    else:
        start = _resume(settings, env, model, resume_from, data.snapshot)
    run = _Run(settings, env, data, model, _open_outputs(settings, env, model, data.total_steps, start), checkpoints)
    model.wrapped.train()
    for step in range(start, data.total_steps):
        _train_step(run, step)
    run.outputs.close()
    return _save(run)


# Setup.


@dataclass
class _Data:
    """This rank's tokenized pairs and the plan of steps over them."""

    pad_token_id: int
    pairs: list[TokenizedPair]
    kinds: list[str]
    report: DataReport
    snapshot: str
    size: int
    """Pairs per epoch, the same on every rank."""
    steps_per_epoch: int
    total_steps: int
    totals: dict[str, int]
    """Pairs read and used over every rank."""


@dataclass
class _Model:
    """The model being trained and what updates it."""

    peft_model: torch.nn.Module
    wrapped: torch.nn.Module
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    fingerprint: str
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager]


@dataclass
class _Outputs:
    """Where a run's numbers go: the reference cache, the metrics file and gauges, the progress bar."""

    refs: ReferenceCache
    metrics_path: Path
    metrics_log: MetricsLog
    gauges: TrainerMetrics | None
    bar: Any
    ref_tokens: int = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.gauges is not None:
            self.gauges.close()
        self.refs.close()


@dataclass
class _Run:
    settings: TrainerSettings
    env: DistEnv
    data: _Data
    model: _Model
    outputs: _Outputs
    checkpoints: Path


def _load_data(settings: TrainerSettings, env: DistEnv, model_path: str, snapshot: str) -> _Data:
    """This rank's shard of pairs, checked for evaluation overlap and tokenized, and the steps they make."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    records, stream_snapshot = _load_records(settings, env)
    if settings.pairs_file is None:
        _check_eval_overlap(settings, records, env)
    pairs, kinds, report = tokenize_records(
        records,
        tokenizer,
        append_eos=settings.append_eos,
        max_prefix_tokens=settings.max_prefix_tokens,
        max_suffix_tokens=settings.max_suffix_tokens,
        alpha=settings.alpha,
        over_refusal_alpha=settings.over_refusal_alpha,
    )
    size, steps_per_epoch, total_steps, totals = _plan_steps(settings, env, kinds, report)
    snapshot = stream_snapshot or snapshot
    return _Data(tokenizer.pad_token_id, pairs, kinds, report, snapshot, size, steps_per_epoch, total_steps, totals)


def _plan_steps(
    settings: TrainerSettings, env: DistEnv, kinds: list[str], report: DataReport
) -> tuple[int, int, int, dict[str, int]]:
    """(pairs per epoch, steps per epoch, total steps, pairs read and used over every rank); a collective call."""
    size = int(env.all_reduce_min(epoch_size(kinds, settings.over_refusal_fraction)))
    per_step = settings.batch_size * settings.grad_accumulation
    steps_per_epoch = size // per_step
    totals = {k: int(v) for k, v in zip(["read", "used"], all_reduce_sum([report.read, report.used]), strict=True)}
    if steps_per_epoch == 0:
        raise TrainingInputError(
            f"not enough usable pairs: {size} per rank after checks (rank {env.rank}: {report.as_dict()}), "
            f"one step needs batch_size*grad_accumulation = {per_step}; add pairs or lower the batch size"
        )
    total_steps = settings.max_steps or settings.epochs * steps_per_epoch
    if env.rank == 0:
        log.info(
            "pairs: %s read, %s used; this rank %s; %d steps (%d per epoch)",
            totals["read"],
            totals["used"],
            report.as_dict(),
            total_steps,
            steps_per_epoch,
        )
    return size, steps_per_epoch, total_steps, totals


def _build_model(settings: TrainerSettings, env: DistEnv, model_path: str, total_steps: int) -> _Model:
    """The LoRA model on this rank's device, wrapped for DDP or FSDP, with its optimizer and schedule."""
    device = env.device()
    bf16 = settings.precision == "bf16" or (settings.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    try:
        peft_model = build_model(settings, model_path, device, torch.bfloat16 if bf16 else torch.float32)
    except LoraTargetError as error:
        raise TrainingInputError(str(error)) from error
    scorer = SuffixScorer(peft_model)
    fingerprint = model_fingerprint(peft_model)
    wrapped = wrap_for_training(scorer, settings, env, device)
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(settings, total_steps))
    return _Model(peft_model, wrapped, trainable, optimizer, scheduler, fingerprint, device, autocast)


def _resume(settings: TrainerSettings, env: DistEnv, model: _Model, folder: Path, snapshot: str) -> int:
    """Loads the checkpoint in `folder` into the model and optimizer; returns the step it was written at."""
    state = ckpt.load_checkpoint(folder, model.wrapped, model.optimizer, model.scheduler, env.rank)
    if state["world_size"] != env.world_size:
        raise TrainingInputError(
            f"checkpoint {folder} was written by {state['world_size']} ranks, this run has "
            f"{env.world_size}: the data shards differ; resume with the same number of processes"
        )
    if state.get("snapshot_id") != snapshot and settings.pairs_file is None:
        log.warning("pair store changed since the checkpoint; the saved shard is used")
    log.info("rank %d resumes from %s at step %d", env.rank, folder, state["step"])
    return state["step"]


def _seed(settings: TrainerSettings, env: DistEnv) -> None:
    """Seeds a fresh run, differently on each rank."""
    seed = settings.seed + 1_000_003 * (env.rank + 1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _open_outputs(settings: TrainerSettings, env: DistEnv, model: _Model, total_steps: int, start: int) -> _Outputs:
    """The reference cache, and on rank 0 the metrics file, the gauges and the progress bar (when asked for)."""
    refs = ReferenceCache(settings.ref_cache_dir or settings.output_dir / "ref-cache", model.fingerprint, env.rank)
    metrics_path = settings.output_dir / "metrics.jsonl"
    metrics_log = MetricsLog(metrics_path if env.rank == 0 else None)
    gauges = TrainerMetrics.serve(settings.metrics_port) if env.rank == 0 and settings.metrics_port else None
    bar = None
    if env.rank == 0 and settings.progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start, desc="suffix DPO", unit="step", file=sys.stderr)
    return _Outputs(refs, metrics_path, metrics_log, gauges, bar)


# Step.


def _train_step(run: _Run, step: int) -> None:
    """One optimizer step over `grad_accumulation` micro-batches, then its metrics, checkpoint and exit point."""
    settings = run.settings
    began = time.perf_counter()
    sums = torch.zeros(len(METRIC_NAMES) + 2, dtype=torch.float64)
    for micro in range(settings.grad_accumulation):
        _micro_step(run, step, micro, sums)
    grad_norm = _apply_gradients(run.model, settings.max_grad_norm)
    totals = all_reduce_sum(sums.tolist())
    elapsed = time.perf_counter() - began
    done = step + 1
    _report_step(run, done, totals, grad_norm, elapsed)
    if done % settings.checkpoint_every == 0 or done == run.data.total_steps:
        _checkpoint(run, done)
    if settings.exit_after_steps is not None and done == settings.exit_after_steps and done < run.data.total_steps:
        log.warning("exit_after_steps=%d reached: exiting as if preempted", done)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(PREEMPTED_EXIT_CODE)


def _micro_step(run: _Run, step: int, micro: int, sums: torch.Tensor) -> None:
    """Forward and backward over one micro-batch (reference log-probs first where the cache lacks them); adds its
    metrics, pair count and tokens to `sums`."""
    settings, model, refs = run.settings, run.model, run.outputs.refs
    chunk = _batch_pairs(run, step, micro)
    missing = refs.missing(chunk)
    if missing:
        packed_missing = pack_pairs(missing, settings.max_row_tokens, run.data.pad_token_id).to(model.device)
        refs.put(missing, *compute_reference(model.wrapped, packed_missing, model.autocast()))
        run.outputs.ref_tokens += packed_missing.real_tokens
    packed = pack_pairs(chunk, settings.max_row_tokens, run.data.pad_token_id).to(model.device)
    ref_chosen, ref_rejected = refs.get(chunk, model.device)
    alpha = torch.tensor([p.alpha for p in chunk], device=model.device)
    last = micro == settings.grad_accumulation - 1
    wrapped = model.wrapped
    if hasattr(wrapped, "set_requires_gradient_sync"):
        wrapped.set_requires_gradient_sync(last)
    sync = contextlib.nullcontext() if last or not hasattr(wrapped, "no_sync") else wrapped.no_sync()
    with sync:
        with model.autocast():
            logps = score_batch(wrapped, packed)
        loss, per_pair = suffix_dpo_loss(
            logps, ref_chosen, ref_rejected, settings.beta, alpha, settings.length_normalize
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss at step {step} on pairs {[p.pair_id for p in chunk]}: lower the learning "
                "rate or check these pairs"
            )
        (loss / settings.grad_accumulation).backward()
    for i, name in enumerate(METRIC_NAMES):
        sums[i] += per_pair[name].double().sum().cpu()
    sums[-2] += len(chunk)
    sums[-1] += packed.real_tokens


def _batch_pairs(run: _Run, step: int, micro: int) -> list[TokenizedPair]:
    """The pairs of one micro-batch: this rank's epoch order, cut at the step and micro-batch."""
    settings, data = run.settings, run.data
    epoch, offset = divmod(step, data.steps_per_epoch)
    order = epoch_order(data.kinds, settings.over_refusal_fraction, settings.seed, epoch, run.env.rank, data.size)
    first = (offset * settings.grad_accumulation + micro) * settings.batch_size
    return [data.pairs[i] for i in order[first : first + settings.batch_size]]


def _apply_gradients(model: _Model, max_grad_norm: float) -> torch.Tensor:
    """Clips the gradients, steps the optimizer and the schedule; returns the norm before clipping."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.trainable, max_grad_norm)
    if hasattr(grad_norm, "full_tensor"):
        grad_norm = grad_norm.full_tensor()
    model.optimizer.step()
    model.scheduler.step()
    model.optimizer.zero_grad(set_to_none=True)
    return grad_norm


# Evaluate: what each step did, as metrics.


def _report_step(run: _Run, done: int, totals: list[float], grad_norm: torch.Tensor, elapsed: float) -> None:
    """Rank 0 writes the step's metrics (every `log_every` steps and the last) and moves the progress bar."""
    settings, outputs = run.settings, run.outputs
    if run.env.rank == 0 and (done % settings.log_every == 0 or done == run.data.total_steps):
        record = _step_record(run, done, totals, grad_norm, elapsed)
        outputs.metrics_log.write(record)
        if outputs.gauges is not None:
            outputs.gauges.record(record)
        if outputs.bar is not None:
            outputs.bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['rewards/accuracies']:.2f}")
    if outputs.bar is not None:
        outputs.bar.update(1)


def _step_record(run: _Run, done: int, totals: list[float], grad_norm: torch.Tensor, elapsed: float) -> dict:
    """The metrics line of a step: the loss terms averaged over every rank's pairs, the gradient, the throughput."""
    n = totals[-2]
    record = {"step": done, "epoch": done / run.data.steps_per_epoch}
    record.update({name: totals[i] / n for i, name in enumerate(METRIC_NAMES)})
    record.update(
        {
            "grad_norm": float(grad_norm),
            "learning_rate": run.model.scheduler.get_last_lr()[0],
            "tokens": int(totals[-1]),
            "tokens_per_s": totals[-1] / elapsed,
            "step_s": elapsed,
            "ref_computed": run.outputs.refs.computed,
            "ref_tokens": run.outputs.ref_tokens,
        }
    )
    return record


# Save.


def _checkpoint(run: _Run, done: int) -> None:
    """A resumable checkpoint after step `done`: weights, optimizer, schedule and where the data stood."""
    data, env = run.data, run.env
    epoch, offset = divmod(done, data.steps_per_epoch)
    state = {
        "world_size": env.world_size,
        "epoch": epoch,
        "step_in_epoch": offset,
        "snapshot_id": data.snapshot,
        "adapter_name": run.settings.adapter_name,
        "fingerprint": run.model.fingerprint,
        "data": data.report.as_dict(),
    }
    model = run.model
    ckpt.save_checkpoint(
        run.checkpoints,
        done,
        model.wrapped,
        model.optimizer,
        model.scheduler,
        state,
        env.rank,
        run.settings.keep_checkpoints,
    )


def _save(run: _Run) -> TrainResult:
    """The final adapter: the replicas checked equal, rank 0 writes it (and its report), every rank waits for it."""
    settings, env = run.settings, run.env
    state = ckpt.trainable_state(run.model.wrapped)
    digests = replica_digests(run.model.peft_model, env) if settings.strategy == "ddp" else []
    if len(set(digests)) > 1:
        raise RuntimeError(f"DDP replicas diverged: adapter digests per rank {digests}")
    adapter_dir = settings.final_adapter_dir()
    plot_path = _publish(run, state, digests, adapter_dir) if env.rank == 0 else None
    env.barrier()
    return TrainResult(
        adapter_dir=adapter_dir,
        steps=run.data.total_steps,
        metrics_path=run.outputs.metrics_path,
        plot_path=plot_path,
        data=run.data.totals,
        rank=env.rank,
    )


def _publish(run: _Run, state: dict, digests: list, adapter_dir: Path) -> Path | None:
    """Rank 0: writes the adapter and the final metrics line, plots the curves and promotes the adapter when asked;
    returns the plot's path (None without one)."""
    settings = run.settings
    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save_adapter(run.model.peft_model, state, adapter_dir)
    run.outputs.metrics_log.write(
        {
            "final": True,
            "adapter": str(adapter_dir),
            "steps": run.data.total_steps,
            "data": run.data.totals,
            "data_rank0": run.data.report.as_dict(),
            "replica_digests": digests,
        }
    )
    plot_path = plot_curves(run.outputs.metrics_path, settings.output_dir / "curves.png") if settings.plot else None
    if settings.promote:
        from shared.training.promote import promote_adapter

        promote_adapter(
            settings.generation_address,
            _token(settings.generation_token, settings.generation_token_file),
            settings.adapter_name,
            adapter_dir,
        )
    return plot_path
