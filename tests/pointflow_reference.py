"""Slow references that follow PointFlow's code step by step, for the tests only.

* :func:`approxmatch_cost`: a transcription of the loops of PointFlow's CUDA kernels
  ``approxmatchkernel`` and ``matchcostkernel`` (``metrics/pytorch_structural_losses/
  src/approxmatch.cu``) in numpy float32. Each CUDA thread's sequential loop becomes a
  sequential float32 accumulation (``np.add.accumulate``), and the block's final tree
  reduction over 512 threads is replayed in the kernel's order. What cannot be
  replayed: ``__expf`` (a hardware approximation; ``np.exp`` here) and any FMA
  contraction nvcc applies, so results agree to float32 rounding, not bit for bit.
* :func:`pointflow_jsd`: PointFlow's ``jsd_between_point_cloud_sets`` (from
  latent_3d_points): a float32 28^3 grid clipped to the ball of radius 0.5, sklearn's
  ``NearestNeighbors(n_neighbors=1)`` per cloud, counts per cell, scipy ``entropy``.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
THREADS = 512  # approxmatch<<<32, 512>>>, matchcost<<<32, 512>>>
MATCHCOST_BLOCK = 256  # const int Block = 256 in matchcostkernel


def _seq_sum(terms: np.ndarray, start) -> np.ndarray:
    """Sequential float32 sum over the last axis, from ``start``: one CUDA thread's ``s += t`` loop."""
    start = np.broadcast_to(np.asarray(start, F32), terms.shape[:-1])[..., None]
    return np.add.accumulate(np.concatenate([start, terms.astype(F32)], axis=-1), axis=-1, dtype=F32)[..., -1]


def approxmatch(xyz1: np.ndarray, xyz2: np.ndarray) -> np.ndarray:
    """``match`` (m, n) of approxmatchkernel for one pair: match[l, k] links xyz2[l] and xyz1[k]."""
    xyz1, xyz2 = xyz1.astype(F32), xyz2.astype(F32)
    n, m = len(xyz1), len(xyz2)
    multi_l, multi_r = (F32(1), F32(n // m)) if n >= m else (F32(m // n), F32(1))
    match = np.zeros((m, n), F32)
    remain_l = np.full(n, multi_l, F32)
    remain_r = np.full(m, multi_r, F32)
    # the kernel's d, per (k, l): (x2-x1)*(x2-x1)+(y2-y1)*(y2-y1)+(z2-z1)*(z2-z1), left to right
    diff = xyz2[None, :, :] - xyz1[:, None, :]  # [k, l, c]
    d2 = (diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]) + diff[..., 2] * diff[..., 2]
    for j in range(7, -2, -1):  # for (int j=7;j>-2;j--)
        level = -F32(4.0) ** F32(j)
        if j == -2:
            level = F32(0)  # never reached: the loop stops at j = -1
        # thread k: suml = 1e-9f; for l: suml += __expf(level*d) * remainR[l]; ratioL[k] = remainL[k] / suml
        w = np.exp(level * d2) * remain_r[None, :]
        ratio_l = remain_l / _seq_sum(w, 1e-9)
        # thread l: sumr = 0; for k: sumr += __expf(level*d) * ratioL[k]; sumr *= remainR[l]; ...
        w = np.exp(level * d2.T) * ratio_l[None, :]  # [l, k]
        sumr = _seq_sum(w, 0.0) * remain_r
        consumption = np.minimum(remain_r / (sumr + F32(1e-9)), F32(1.0))
        ratio_r = consumption * remain_r
        remain_r = np.maximum(F32(0.0), remain_r - sumr)
        # thread k: for l: w = __expf(level*d) * rl * ratioR[l]; match[l*n+k] += w; suml += w
        w = (np.exp(level * d2) * ratio_l[:, None]) * ratio_r[None, :]  # [k, l]
        match += w.T
        remain_l = np.maximum(F32(0.0), remain_l - _seq_sum(w, 0.0))
    return match


def matchcost(xyz1: np.ndarray, xyz2: np.ndarray, match: np.ndarray) -> F32:
    """matchcostkernel for one pair: thread t sums ``match * sqrtf(d)`` over blocks of 256
    points of xyz2, its points j = t, t + 512, ... of xyz1 and the block's points; then
    the 512 partial sums are reduced pairwise as the kernel does."""
    xyz1, xyz2 = xyz1.astype(F32), xyz2.astype(F32)
    n, m = len(xyz1), len(xyz2)
    allsum = np.zeros(THREADS, F32)
    for t in range(min(THREADS, n)):
        subsum = F32(0)
        for k0 in range(0, m, MATCHCOST_BLOCK):
            ks = np.arange(k0, min(m, k0 + MATCHCOST_BLOCK))
            for j in range(t, n, THREADS):
                v = xyz2[ks] - xyz1[j]
                d = np.sqrt((v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2])
                subsum = _seq_sum(match[ks, j] * d, subsum)
        allsum[t] = subsum
    step = 1
    while step < THREADS:  # for (j=1; j<blockDim.x; j<<=1) if ((t&j)==0 && t+j<blockDim.x) allsum[t]+=allsum[t+j]
        t = np.arange(THREADS)
        active = ((t & step) == 0) & (t + step < THREADS)
        allsum[t[active]] = allsum[t[active]] + allsum[t[active] + step]
        step <<= 1
    return allsum[0]


def approxmatch_cost(xyz1: np.ndarray, xyz2: np.ndarray) -> float:
    """PointFlow's ``emd_approx`` of one pair: ``match_cost(xyz1, xyz2) / N``."""
    return float(matchcost(xyz1, xyz2, approxmatch(xyz1, xyz2)) / F32(len(xyz1)))


def pointflow_grid(resolution: int = 28) -> np.ndarray:
    """``unit_cube_grid_point_cloud(resolution, clip_sphere=True)``: float32 centres ``i * spacing - 0.5``."""
    grid = np.ndarray((resolution, resolution, resolution, 3), np.float32)
    spacing = 1.0 / float(resolution - 1)
    for i in range(resolution):
        for j in range(resolution):
            for k in range(resolution):
                grid[i, j, k] = (i * spacing - 0.5, j * spacing - 0.5, k * spacing - 0.5)
    grid = grid.reshape(-1, 3)
    return grid[np.linalg.norm(grid, axis=1) <= 0.5]


def pointflow_counts(clouds: np.ndarray, resolution: int = 28) -> np.ndarray:
    """``entropy_of_occupancy_grid(...)[1]``: points per cell, one ``kneighbors`` call per cloud."""
    from sklearn.neighbors import NearestNeighbors

    grid = pointflow_grid(resolution)
    counters = np.zeros(len(grid))
    nn = NearestNeighbors(n_neighbors=1).fit(grid)
    for pc in clouds:
        _, indices = nn.kneighbors(pc)
        for i in np.squeeze(indices):
            counters[i] += 1
    return counters


def pointflow_jsd(sample: np.ndarray, reference: np.ndarray, resolution: int = 28) -> float:
    """``jsd_between_point_cloud_sets``: entropy of the mean minus the mean of the entropies, base 2."""
    from scipy.stats import entropy

    p, q = pointflow_counts(sample, resolution), pointflow_counts(reference, resolution)
    p, q = p / np.sum(p), q / np.sum(q)
    return float(entropy((p + q) / 2.0, base=2) - (entropy(p, base=2) + entropy(q, base=2)) / 2.0)
