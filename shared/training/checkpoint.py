"""Resumable checkpoints with atomic writes, and the final PEFT adapter folder.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` holding the trainable weights and the optimizer state (full,
unsharded, from `torch.distributed.checkpoint.state_dict`, so DDP, FSDP and a single process read each other's),
the scheduler, one RNG file per rank and ``state.json`` (step, data position, pair-store snapshot id, world size).
It is written into a hidden staging folder, fsynced and renamed, and only then named in the ``latest`` file
(replaced atomically): a crash at any point leaves the previous checkpoint as the one a restart resumes from.
The run folder must be shared by every node (a ReadWriteMany volume on Kubernetes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

_SAVE_OPTIONS = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
_LOAD_OPTIONS = StateDictOptions(full_state_dict=True, ignore_frozen_params=True, strict=False)
LATEST = "latest"


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomic(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with staging.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def rng_state() -> dict:
    """Every random generator's state on this rank."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict,
    rank: int,
    keep: int,
) -> Path:
    """Write the checkpoint of `step` (a collective call: every rank must call it)."""
    final = root / f"step-{step:08d}"
    staging = root / f".step-{step:08d}.tmp"
    model_state, optim_state = get_state_dict(model, optimizer, options=_SAVE_OPTIONS)
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier()
    torch.save(rng_state(), staging / f"rng-{rank}.pt")
    _barrier()
    if rank == 0:
        torch.save(model_state, staging / "model.pt")
        torch.save(optim_state, staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        (staging / "state.json").write_text(json.dumps({**state, "step": step}, indent=1))
        _fsync_tree(staging)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _write_atomic(root / LATEST, final.name)
        for old in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The folder named by ``latest``, or None when the run has no checkpoint yet."""
    pointer = root / LATEST
    if not pointer.exists():
        return None
    folder = root / pointer.read_text().strip()
    if not (folder / "state.json").exists():
        raise RuntimeError(f"{pointer} names {folder}, which is not a complete checkpoint: delete {pointer} to restart")
    return folder


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rank: int,
) -> dict:
    """Restore weights, optimizer, scheduler and this rank's RNG; returns ``state.json``."""
    model_state = torch.load(folder / "model.pt", weights_only=False)
    optim_state = torch.load(folder / "optimizer.pt", weights_only=False)
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state, options=_LOAD_OPTIONS)
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    set_rng_state(torch.load(folder / f"rng-{rank}.pt", weights_only=False))
    return json.loads((folder / "state.json").read_text())


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (gathered) trainable weights, keyed as in the unwrapped module (a collective call)."""
    return get_model_state_dict(model, options=_SAVE_OPTIONS)


def save_adapter(peft_model: nn.Module, state: dict[str, torch.Tensor], target: Path, prefix: str = "model.") -> None:
    """Write the final PEFT folder at `target` via a staging folder and a rename; refuses an existing folder."""
    if target.exists():
        raise FileExistsError(f"adapter folder {target} exists: choose a new versioned adapter name")
    staging = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    weights = {k.removeprefix(prefix): v for k, v in state.items()}
    peft_model.save_pretrained(staging, state_dict=weights)
    _fsync_tree(staging)
    os.rename(staging, target)
