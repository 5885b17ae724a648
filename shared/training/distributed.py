"""Process-group setup for torchrun: ranks come from torchrun's variables, never from the operator's ``RANK``.

Under a Kubeflow PyTorchJob the training operator sets ``RANK`` to the *pod* index and passes the rendezvous as
``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``... which torchrun reads. torchrun then starts one worker per
local process and gives each its own ``LOCAL_RANK``, ``WORLD_SIZE`` and a correct global ``RANK`` (overwriting the
pod's). So the trainer must be launched by torchrun; it reads ``LOCAL_RANK``/``WORLD_SIZE``/``TORCHELASTIC_RUN_ID``
and takes its global rank from the initialised process group. A multi-process environment without torchrun's
variables is refused rather than trusted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self) -> torch.device:
        """CUDA device of the local rank when CUDA is present, else the CPU."""
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.barrier()

    def all_reduce_min(self, value: float) -> float:
        if not self.distributed:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return float(tensor.item())


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (the values themselves when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def init_distributed() -> DistEnv:
    """Join the torchrun job (gloo on CPU, NCCL on CUDA); a plain single process when not under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    under_torchrun = "LOCAL_RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ
    if world_size > 1 and not under_torchrun:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but torchrun's LOCAL_RANK/TORCHELASTIC_RUN_ID are missing: launch with "
            "torchrun (a PyTorchJob's RANK is the pod index, not the process rank)"
        )
    if world_size == 1:
        return DistEnv()
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistEnv(rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size())
