"""The earth mover's distance (EMD) between equal-size clouds: exact, and PointFlow's approxmatch.

* :func:`emd_exact`: ``(1/N) min_phi sum ||x - phi(x)||`` (Euclidean, not squared) by optimal
  assignment (scipy's Hungarian-type solver).
* :func:`emd_approx`: the "approxmatch" of Fan et al. (CVPR 2017) as PointFlow's CUDA kernel
  runs it, which PointFlow, DPM and LION report; batched torch (CUDA). The numba kernels of
  ``_emd_kernels`` compute the same matching on the CPU for lists of pairs
  (:func:`pointcloud_sivae.metrics.distances.pairwise_emd`), on clouds laid out by
  :func:`kernel_clouds`. It is scale-dependent (fixed annealing levels) and above exact EMD:
  median +28.6 % on 8 real airplane pairs at 2048 points, +12 % to +30 % at 256 points
  (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

EMD_METHODS = ("approx", "exact")
EMD_BACKENDS = ("numba", "torch")


def emd_exact(x, y) -> float:
    """Exact EMD of two equal-size clouds by optimal assignment.

    Args:
        x, y: (N, 3) float arrays.

    Returns:
        ``(1/N) min_phi sum_i ||x_i - y_phi(i)||`` (Euclidean, input units).

    Raises:
        ValueError: the clouds differ in size or shape.

    Source: the EMD of Rubner et al. (2000) as used by Fan et al., CVPR 2017; solved
    with ``scipy.optimize.linear_sum_assignment``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != 3 or y.shape[1] != 3:
        raise ValueError(f"emd_exact needs two (N, 3) clouds, got {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"EMD needs clouds of equal size (a bijection), got {x.shape[0]} and {y.shape[0]} points")
    cost = cdist(x, y)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


# approxmatch.cu (PointFlow, after Fan et al.): ``for (int j = 7; j > -2; j--) level = -powf(4.0f, j)``;
# its ``if (j == -2) level = 0`` branch is never reached, so there is no level 0.
POINTFLOW_LEVELS = tuple(-(4.0**j) for j in range(7, -2, -1))


def emd_approx(xyz1: torch.Tensor, xyz2: torch.Tensor) -> torch.Tensor:
    """PointFlow's approximate EMD of each pair ``(xyz1[p], xyz2[p])`` of equal-size clouds.

    The "approxmatch" of Fan et al. as PointFlow's CUDA kernel runs it: mass 1 on every
    point; at each level ``-4^j``, j = 7 ... -1 (nine levels, no level 0), with
    ``w_kl = exp(level * ||x_k - y_l||^2)``:

    * ``ratioL[k] = remainL[k] / (1e-9 + sum_l w_kl remainR[l])``;
    * ``sumr[l] = remainR[l] * sum_k w_kl ratioL[k]``,
      ``ratioR[l] = min(remainR[l] / (sumr[l] + 1e-9), 1) * remainR[l]``,
      ``remainR[l] = max(0, remainR[l] - sumr[l])``;
    * ``match[k, l] += w_kl ratioL[k] ratioR[l]``, ``remainL[k] = max(0, remainL[k] - sum_l ...)``.

    The cost is ``sum_kl match[k, l] ||x_k - y_l||`` divided by N (PointFlow's
    ``emd_approx``). The matching is not symmetric: swapping the clouds changes the
    value (by up to 3.5 % on real airplane pairs at 2048 points), so the order of the
    arguments is PointFlow's (see :func:`pairwise_emd`).

    Batched torch, float32 in, float32 arithmetic: a few (P, N, N) tensors per call (the
    matrix callers split pairs into chunks that fit). For the CPU, the numba kernel of
    :func:`pairwise_emd` computes the same matching, 10-20x faster.

    Measured against exact EMD (optimal assignment) on real airplanes, in PointFlow's
    frame: median +28.6 % on 8 pairs at 2048 points, +12 % to +30 % at 256 points
    (docs/benchmarks.md); never below exact (up to float32 rounding).

    Args:
        xyz1, xyz2: (P, N, 3) float tensors on one device.

    Returns:
        (P,) float32 tensor: the transport cost divided by N (Euclidean, input units).

    Raises:
        ValueError: the shapes differ or are not (P, N, 3).

    Source: Fan, Su & Guibas, "A Point Set Generation Network", CVPR 2017, as in
    PointFlow (Yang et al., ICCV 2019), ``metrics/pytorch_structural_losses/src/approxmatch.cu``.
    """
    if xyz1.shape != xyz2.shape or xyz1.dim() != 3 or xyz1.shape[-1] != 3:
        raise ValueError(f"emd_approx needs two (P, N, 3) batches of equal size, "
                         f"got {tuple(xyz1.shape)} and {tuple(xyz2.shape)}")
    x, y = xyz1.float(), xyz2.float()
    P, n, _ = x.shape
    d2 = ((y[:, None, :, :] - x[:, :, None, :]) ** 2).sum(-1)  # (P, n, m): [k, l]
    remain_l = torch.ones(P, n, device=x.device)
    remain_r = torch.ones(P, n, device=x.device)
    match = torch.zeros_like(d2)
    for level in POINTFLOW_LEVELS:
        w = torch.exp(level * d2)
        ratio_l = remain_l / (1e-9 + (w * remain_r[:, None, :]).sum(2))
        sumr = (w * ratio_l[:, :, None]).sum(1) * remain_r
        ratio_r = torch.clamp(remain_r / (sumr + 1e-9), max=1.0) * remain_r
        remain_r = torch.clamp(remain_r - sumr, min=0.0)
        w = w * ratio_l[:, :, None] * ratio_r[:, None, :]
        match += w
        remain_l = torch.clamp(remain_l - w.sum(2), min=0.0)
        del w
    return (match * d2.sqrt()).sum((1, 2)) / n


def longest_axis(*sets: np.ndarray) -> int:
    """The coordinate of largest extent over all points of the (M, N, 3) sets: the numba
    approxmatch sorts along it, so its windows of non-zero weights are narrowest."""
    flat = np.concatenate([np.asarray(s).reshape(-1, 3) for s in sets])
    return int(np.argmax(flat.max(0) - flat.min(0)))


def kernel_clouds(clouds: np.ndarray, axis: int) -> np.ndarray:
    """Clouds (M, N, 3) laid out for the numba approxmatch: (M, 3, N) float32, coordinate
    rows ``[axis, the other two]``, each cloud's points sorted along ``axis``."""
    order = [axis] + [c for c in range(3) if c != axis]
    X = np.ascontiguousarray(np.asarray(clouds, np.float32)[:, :, order].transpose(0, 2, 1))
    idx = np.argsort(X[:, 0, :], axis=1, kind="stable")
    return np.ascontiguousarray(np.take_along_axis(X, idx[:, None, :], axis=2))


def resolve_emd_backend(backend: str, device: torch.device) -> str:
    """``auto``: numba on the CPU, torch on CUDA; explicit names are checked.

    Raises:
        ValueError: unknown backend, or numba asked for on a CUDA device.
    """
    if backend == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if backend not in EMD_BACKENDS:
        raise ValueError(f"unknown approxmatch backend {backend!r}; expected 'auto' or one of {EMD_BACKENDS}")
    if backend == "numba" and device.type != "cpu":
        raise ValueError("the numba approxmatch runs on the CPU only; use --device cpu or --emd-backend torch")
    return backend
