"""Data-parallel training across processes with ``torch.distributed`` (``torchrun``).

    torchrun --nproc_per_node=K -m pointcloud_sivae.train --category airplane ...

Every process holds the whole (small) training set and the same seeded permutation;
each global batch of ``batch_size`` shapes is split into K contiguous shards, one per
process. The step is the single-process step on the shard, with three changes that
make the K-process run compute the single-process update (up to float rounding):

* **BatchNorm statistics** are those of the whole global batch: the encoder's BatchNorm
  layers are swapped for :class:`SyncedBatchNorm1d` (same parameters and buffers), whose
  per-channel sums and sums of squares are all-reduced, differentiably;
* **noise** (prior samples and reparameterisation ``eps``) is drawn for the global
  batch from a generator seeded by (seed, step) and each process takes its rows;
* **gradients**: each process back-propagates its shard's loss times the shard's share
  of the global batch, and the gradients are summed over processes in buckets of about
  25 MiB, as ``DistributedDataParallel`` does: every loss is a batch mean, so this is the
  gradient of the global batch, including the paths through the shared BatchNorm statistics.

Why not the library's wrappers: the introspective step runs the encoder three times before
one backward and back-propagates through a frozen network in the decoder step, which the
``DistributedDataParallel`` reducer (one forward, one backward, a fixed set of parameters
that need gradients) does not support; and ``nn.SyncBatchNorm`` refuses CPU tensors (torch
2.13), which the gloo runs on CPU need. Each process takes its share of the CPU cores
(:func:`share_cores`). Rank 0 alone logs, validates and writes checkpoints; a checkpoint
resumes with any number of processes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

from pointcloud_sivae.utils.runtime import die_with_parent

BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket_cap_mb


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

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
        The rank, world size, local rank and the number of processes on this machine.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    use_cuda = torch.cuda.is_available() and (device_name == "auto" or device_name.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local,
                       local_world_size=local_world)


def share_cores(ctx: DistContext) -> int:
    """Give each of the ``local_world_size`` processes on this machine its share of the CPU cores:
    torch's and numba's thread pools get ``cores // local_world_size`` threads (at least 1), so the
    processes do not oversubscribe the cores and spin. Returns the thread count (unchanged in one
    process)."""
    if not ctx.enabled:
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, ctx.local_world_size))
    torch.set_num_threads(threads)
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def leave(finished: bool = True) -> None:
    """Leave the process group: after a barrier when every process finished its work (no process
    tears its gloo threads down while another still talks to it), at once after an error."""
    if not dist.is_initialized():
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def first_rank_first(ctx: DistContext, fn) -> None:
    """``fn()`` on rank 0, then on the other ranks together (in one process: ``fn()``). For work
    that fills an on-disk cache, such as numba compiling its kernels on first use: one process
    writes the cache and the others read it, instead of all compiling and writing at once."""
    if ctx.rank == 0:
        fn()
    if ctx.enabled:
        dist.barrier()
        if ctx.rank != 0:
            fn()


def end_with_launcher() -> None:
    """In a ``torchrun`` worker: end this process when the launcher (its parent, the elastic agent)
    dies, even by SIGKILL (:func:`~pointcloud_sivae.utils.runtime.die_with_parent`); a worker reparented
    to init would otherwise train on, unsupervised. The last checkpoint stays resumable (checkpoints
    are written atomically)."""
    if launched_by_torchrun():
        die_with_parent(os.getppid())


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because another process of the run is gone
    (gloo: "Connection closed by peer", "Connection reset by peer", a broken pipe; torch's DistError)."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Socket Timeout",
                            "connection refused", "Connection refused"))


def launched_by_torchrun() -> bool:
    """Whether this process is a worker that ``torchrun`` (torch.distributed.run) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def exit_worker(code: int) -> NoReturn:
    """End a ``torchrun`` worker after :func:`leave`: flush the standard streams and exit without the
    interpreter's teardown. Gloo's threads can still hold work objects with Python references after
    ``destroy_process_group``; destroying them while the interpreter finalises aborted a rank now and
    then ("terminate called without an active exception", SIGABRT; pytorch/pytorch#179291).
    Everything a run writes is closed before this point."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def shard_rows(n: int, ctx: DistContext) -> slice:
    """The contiguous rows of a global batch of ``n`` that this process takes."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (1 if ctx.rank < extra else 0))


def sum_gradients(module: nn.Module, ctx: DistContext, bucket_bytes: int = BUCKET_BYTES) -> None:
    """``grad <- sum over processes of grad`` for every parameter with a gradient, one all-reduce
    per bucket of about ``bucket_bytes`` (in reverse parameter order, as backward produces them).

    Each process back-propagates its shard's loss times its share of the global batch, so the sum
    is the gradient of the global batch mean."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in reversed(list(module.parameters())) if p.grad is not None]
    bucket, size = [], 0
    for g in grads:
        bucket.append(g)
        size += g.numel() * g.element_size()
        if size >= bucket_bytes:
            _all_reduce_flat(bucket)
            bucket, size = [], 0
    if bucket:
        _all_reduce_flat(bucket)


def _all_reduce_flat(tensors: list[torch.Tensor]) -> None:
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset: offset + t.numel()].view_as(t))
        offset += t.numel()


def sum_tensor(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum over processes of ``t`` (``t`` itself in one process); no gradient."""
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


def reduce_terms(terms: dict[str, torch.Tensor], share: float, ctx: DistContext) -> dict[str, float]:
    """A step's logged terms (scalar tensors of this process's shard) as floats of the global batch:
    ``*_min`` terms the minimum over processes, every other term the mean weighted by each
    process's ``share`` of the batch; one device sync."""
    names = [k for k in terms if not k.endswith("_min")]
    values = reduce_weighted(torch.stack([terms[k].detach().float() for k in names]), share, ctx)
    out = dict(zip(names, values.tolist()))
    mins = [k for k in terms if k.endswith("_min")]
    if mins:  # minima of the global batch, not a weighted mean of the shards' minima
        low = torch.stack([terms[k].detach().float() for k in mins])
        if ctx.enabled:
            dist.all_reduce(low, op=dist.ReduceOp.MIN)
        out.update(zip(mins, low.tolist()))
    return out


class _AllReduceSum(torch.autograd.Function):
    """The sum over processes, differentiable: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class SyncedBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` on (rows, C) input whose training statistics cover the rows of every process.

    Differentiable (the all-reduce's backward all-reduces the gradients). Running statistics are
    updated as ``nn.BatchNorm1d`` updates them (unbiased variance, ``momentum``; ``momentum = 0``
    leaves them unchanged). Outside training, or in one process, it is ``nn.BatchNorm1d``.
    """

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(h)
        stats = torch.cat([h.sum(0), h.pow(2).sum(0), h.new_full((1,), float(h.shape[0]))])
        stats = _AllReduceSum.apply(stats)
        c = h.shape[1]
        count = stats[2 * c]
        mean = stats[:c] / count
        var = (stats[c: 2 * c] / count - mean.pow(2)).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                if m:
                    self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                    self.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1), alpha=m)
        return (h - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def synchronise_batchnorm(module: nn.Module) -> nn.Module:
    """Make every ``nn.BatchNorm1d`` of ``module`` a :class:`SyncedBatchNorm1d`, in place (the same
    parameters and buffers under the same names, so checkpoints do not change); returns ``module``."""
    for m in module.modules():
        if type(m) is nn.BatchNorm1d:
            m.__class__ = SyncedBatchNorm1d
    return module
