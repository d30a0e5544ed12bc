"""Helpers shared by the benchmark scripts: timing, the matrix-multiply peak, real clouds."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (device-synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def matmul_peak(device, repeats: int = 5) -> float:
    """Median float32 ``mm`` rate in GFLOP/s (4096^2 on the CPU, 8192^2 on a GPU)."""
    n = 4096 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device)
    return 2 * n**3 / statistics.median(timed(lambda: a @ a, repeats, device)) / 1e9


def real_clouds(source: Path, count: int, num_points: int) -> np.ndarray:
    """``count`` real airplane clouds (ShapeNetPart), each of the 121 shapes resampled with new seeds
    as often as needed; (count, num_points, 3) float32."""
    from shapenet_prep import shapenetpart
    from shapenet_prep.common import Sampling

    refs = shapenetpart.list_shapes(source, "02691156")
    return np.stack([shapenetpart.load(refs[k % len(refs)], Sampling(num_points, seed=k // len(refs)))[0]
                     for k in range(count)]).astype(np.float32)
