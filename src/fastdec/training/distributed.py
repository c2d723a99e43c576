"""Process-group plumbing for ``torchrun``: one process per device, gloo on CPU, NCCL on CUDA.

``torchrun`` (``python -m torch.distributed.run``) starts the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads them. Without
them (a plain ``fastdec train``) everything here is a single process and every collective a no-op.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes states and exports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce(self, values: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Sum (``"sum"``) or maximum (``"max"``) of a tensor over all processes, in place."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return values

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every process."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.broadcast(t, src=0)
        return int(t.item())

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged over processes in backward);
        the module itself for one process."""
        if not self.distributed:
            return module
        return DistributedDataParallel(
            module,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            forward_sync_buffers=False,  # buffers never change in training (synced once, at init)
            find_unused_parameters=True,  # e.g. z_null without CFG dropout, a stage absent from a batch
        )


def is_main_process() -> bool:
    """Whether this is rank 0 of a torchrun launch (or a plain single process): it prints and writes."""
    return _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def select_device(device: Literal["auto", "cpu", "cuda"], local_rank: int = 0) -> torch.device:
    """``train.device`` (its value checked by :func:`fastdec.config.validate`) on this machine:
    ``"auto"`` is CUDA device ``local_rank`` when CUDA is available, else the CPU."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("train.device='cuda' but CUDA is not available on this machine")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s): "
            "start at most that many processes per node"
        )
    return torch.device("cuda", local_rank)


def setup(device: str = "auto") -> Context:
    """Join the process group that torchrun describes (if any) and pick this process's device.

    The backend is NCCL when the device is CUDA, gloo on the CPU. Idempotent: a group that is
    already initialised is reused.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK {rank} is not in [0, WORLD_SIZE={world_size})")
    where = select_device(device, local_rank)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if where.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=where if where.type == "cuda" else None)
    return Context(rank, world_size, local_rank, where)


def teardown(context: Context) -> None:
    """Leave the process group (after a barrier, so no process exits while another still needs it)."""
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of parameters that DDP does not manage (e.g. discriminator heads)
    over all processes; nothing to do in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
