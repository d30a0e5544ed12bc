"""Data-parallel training across processes with ``torch.distributed`` (``torchrun``).

    torchrun --nproc_per_node=K -m pointcloud_sivae.train --category airplane ...

Every process holds the whole (small) training set and the same seeded permutation;
each global batch of ``batch_size`` shapes is split into K contiguous shards, one per
process. The step is the single-process step on the shard, with three changes that
make the K-process run compute the single-process update (up to float rounding):

* **BatchNorm statistics** are those of the whole global batch: per-channel sums and
  sums of squares are all-reduced (:func:`sync_batch_norm`, differentiable);
* **noise** (prior samples and reparameterisation ``eps``) is drawn for the global
  batch from a generator seeded by (seed, step) and each process takes its rows;
* **gradients**: each process back-propagates its shard's loss times the shard's share
  of the global batch, and the gradients are summed over processes (one flattened
  all-reduce per optimiser step): every loss is a batch mean, so this is the gradient
  of the global batch, including the paths through the shared BatchNorm statistics.

This is DistributedDataParallel's algorithm written out: the introspective step
calls the encoder up to three times before one backward and back-propagates through a
frozen network in the decoder step, which the ``DistributedDataParallel`` wrapper's
one-forward-one-backward reducer does not support. Rank 0 alone logs, validates and
writes checkpoints; a checkpoint resumes with any number of processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_name: str) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Uses NCCL when the device is CUDA, gloo otherwise. Without ``WORLD_SIZE`` (or with
    1) nothing is initialised and a single-process context is returned.

    Returns:
        The rank, world size and local rank.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device_name == "auto" or device_name.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def leave(finished: bool = True) -> None:
    """Leave the process group: after a barrier when every process finished its work (no process
    tears its gloo threads down while another still talks to it), at once after an error."""
    if not dist.is_initialized():
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def shard_rows(n: int, ctx: DistContext) -> slice:
    """The contiguous rows of a global batch of ``n`` that this process takes."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (1 if ctx.rank < extra else 0))


def sum_gradients(module: nn.Module, ctx: DistContext) -> None:
    """``grad <- sum over processes of grad`` for every parameter with a gradient (one all-reduce).

    Each process back-propagates its shard's loss times its share of the global batch,
    so the sum is the gradient of the global batch mean."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_tensor(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum over processes of ``t`` (``t`` itself in one process)."""
    if ctx.enabled:
        t = t.clone()
        dist.all_reduce(t)
    return t


def reduce_weighted(values: torch.Tensor, weight: float, ctx: DistContext) -> torch.Tensor:
    """``sum over processes of weight * values`` (logging: batch means of the global batch)."""
    if not ctx.enabled:
        return values
    out = values * weight
    dist.all_reduce(out)
    return out


def sync_batch_norm(bn: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
    """Training-mode BatchNorm of (rows, C) ``h`` with statistics over the rows of all processes.

    Differentiable (the all-reduce's backward all-reduces the gradients). Running
    statistics are updated as ``nn.BatchNorm1d`` updates them (unbiased variance,
    ``momentum``; ``momentum = 0`` leaves them unchanged).
    """
    import torch.distributed.nn.functional as dist_fn

    stats = torch.cat([h.sum(0), h.pow(2).sum(0), h.new_full((1,), float(h.shape[0]))])
    stats = dist_fn.all_reduce(stats)
    c = h.shape[1]
    count = stats[2 * c]
    mean = stats[:c] / count
    var = (stats[c: 2 * c] / count - mean.pow(2)).clamp_min(0.0)
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            if m:
                bn.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                bn.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1), alpha=m)
    return (h - mean) * torch.rsqrt(var + bn.eps) * bn.weight + bn.bias
