"""Training on several processes with torch.distributed (``torchrun --nproc-per-node N -m clarec run``
or ``clarec run --nproc N``).

Each process (rank) loads the same data and builds the same model (same seed); the
:class:`~clarec.train.loop.Trainer` wraps the model's loss in ``DistributedDataParallel``, every rank
draws the same global batch and trains on its own slice of it (:func:`shard`), DDP averages the
gradients, so a step sees the whole global batch, as one process with the same ``batch_size`` would
— except for a contrastive term whose negatives come from the batch and that a model computes on its
own slice (``cl4srec``'s and ``duorec``'s views, ``alpharec``'s in-batch negatives): there a rank's
negatives are its slice's. ``two-tower`` and the graph models gather the other ranks' vectors; the
sequential models weigh each rank's mean next-item loss by its share of the batch's targets.
Validation runs on rank 0 and its figure is broadcast, so every rank takes the same early-stopping
decision; rank 0 alone writes files and evaluates. gloo for CPU tensors, NCCL for a model trained on
the ranks' GPUs (``device: cuda`` / ``auto``);
several machines join through torchrun's rendezvous (``--nnodes``, ``--rdzv-endpoint``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from clarec.errors import ConfigError


def launched() -> bool:
    """Whether this process was started by torchrun as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> None:
    """Join the process group torchrun described in the environment (once; gloo on CPU, NCCL on GPUs)."""
    if not launched() or dist.is_initialized():
        return
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise ConfigError(f"WORLD_SIZE is set but {key} is not: start distributed runs with torchrun")
    # gloo carries CPU tensors (the CPU models, broadcast decisions), NCCL a GPU model's gradients
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0, or a single process: the one that validates, evaluates and writes files."""
    return rank() == 0


def broadcast_float(value: float | None) -> float | None:
    """Rank 0's ``value`` on every rank (``None`` travels as NaN and comes back as ``None``)."""
    if world_size() == 1:
        return value
    t = torch.tensor([np.nan if value is None else float(value)], dtype=torch.float64)
    dist.broadcast(t, src=0)
    out = float(t.item())
    return None if np.isnan(out) else out


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object: a trial's settings, a decision) on every rank."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks (each rank's training loss → the loss of the global batch)."""
    if world_size() == 1:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def slice_bounds(size: int, parts: int | None = None) -> np.ndarray:
    """Where each of ``parts`` (default: the ranks) contiguous slices of a batch of ``size`` rows
    starts, and the last ends: slice ``r`` is rows ``bounds[r]:bounds[r + 1]``, near-equal shares."""
    return np.linspace(0, size, (parts or world_size()) + 1).round().astype(int)


def gather_rows(local: torch.Tensor, bounds: np.ndarray) -> torch.Tensor:
    """Every rank's rows, in rank order, with gradients: rank ``r`` holds rows
    ``bounds[r]:bounds[r + 1]`` of a batch; the gradient of each row flows back to the rank that made
    it (summed over the ranks that use it)."""
    from torch.distributed.nn.functional import all_gather

    sizes = np.diff(bounds)
    width = int(sizes.max())
    pad = width - len(local)
    padded = torch.cat([local, local.new_zeros((pad, *local.shape[1:]))]) if pad else local
    parts = all_gather(padded.contiguous())
    return torch.cat([part[: int(n)] for part, n in zip(parts, sizes, strict=True)])


def shard(batch: Any, index: int, parts: int) -> Any:
    """Slice ``index`` of ``parts`` of a batch: every tensor or array (inside tuples, lists and dicts
    too) whose first axis has the batch's length is cut as :func:`slice_bounds` cuts it; anything
    else (a scalar, a shared table of another length) is passed whole."""
    size = batch_length(batch)
    if size is None:
        return batch
    bounds = slice_bounds(size, parts)
    lo, hi = int(bounds[index]), int(bounds[index + 1])

    def cut(x: Any) -> Any:
        if isinstance(x, torch.Tensor | np.ndarray) and x.ndim and len(x) == size:
            return x[lo:hi]
        if isinstance(x, tuple | list):
            return type(x)(cut(v) for v in x)
        if isinstance(x, Mapping):
            return {k: cut(v) for k, v in x.items()}
        return x

    return cut(batch)


def batch_length(batch: Any) -> int | None:
    """The length of the first axis of the first tensor or array in ``batch`` (``None``: none)."""
    if isinstance(batch, torch.Tensor | np.ndarray):
        return len(batch) if batch.ndim else None
    values = (
        batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, tuple | list) else ()
    )
    for v in values:
        n = batch_length(v)
        if n is not None:
            return n
    return None
