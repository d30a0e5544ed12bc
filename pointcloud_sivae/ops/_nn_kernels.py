"""The numba CPU kernels of the Chamfer distance (internal; see ``chamfer.py`` and ``distances.py``).

* :func:`nearest_both`: nearest-neighbour indices both ways, for the training loss
  (the distances are recomputed from them with autograd);
* :func:`chamfer_rows`: Chamfer distances of listed pairs, for the metric matrices
  (the same loop without the argmin, which it does not need).

The query points sit in SIMD lanes: for each candidate point ``j`` the inner loop over
queries ``i`` updates ``best[i]`` (and ``arg[i]``) element-wise, which LLVM vectorises
with masked selects; a per-query reduction over ``j`` would not vectorise. Clouds are
coordinate-major, (B, 3, N), so each coordinate is a contiguous vector. The
distances are differences squared (no ``|x|^2 + |y|^2 - 2 x.y`` cancellation).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # open3d ships an old TBB

_INF = np.float32(np.inf)


@njit(fastmath=True, cache=True, inline="always")
def _sq_dist(ax, ay, az, i, px, py, pz):  # pragma: no cover - compiled
    """|a_i - p|^2 for a given as coordinate rows (inlined into the loops below)."""
    dx = ax[i] - px
    dy = ay[i] - py
    dz = az[i] - pz
    return dx * dx + dy * dy + dz * dz


@njit(fastmath=True, cache=True)
def _nearest(ax, ay, az, bx, by, bz, best, arg):  # pragma: no cover - compiled
    n = ax.shape[0]
    for i in range(n):
        best[i] = _INF
        arg[i] = 0
    for j in range(bx.shape[0]):
        px, py, pz = bx[j], by[j], bz[j]
        for i in range(n):
            d = _sq_dist(ax, ay, az, i, px, py, pz)
            if d < best[i]:
                best[i] = d
                arg[i] = j


@njit(parallel=True, fastmath=True, cache=True)
def nearest_both(X, Y, idx_xy, idx_yx):  # pragma: no cover - compiled
    """idx_xy[b, i] = argmin_j |X[b,:,i] - Y[b,:,j]|^2 and idx_yx the converse; X (B, 3, N), Y (B, 3, M)."""
    nb = X.shape[0]
    for task in prange(2 * nb):
        b = task // 2
        if task % 2 == 0:
            best = np.empty(X.shape[2], dtype=np.float32)
            _nearest(X[b, 0], X[b, 1], X[b, 2], Y[b, 0], Y[b, 1], Y[b, 2], best, idx_xy[b])
        else:
            best = np.empty(Y.shape[2], dtype=np.float32)
            _nearest(Y[b, 0], Y[b, 1], Y[b, 2], X[b, 0], X[b, 1], X[b, 2], best, idx_yx[b])


@njit(fastmath=True, cache=True)
def _sum_nearest_sq(ax, ay, az, bx, by, bz, best):  # pragma: no cover - compiled
    """sum_i min_j |a_i - b_j|^2: :func:`_nearest`'s loop without the argmin."""
    n = ax.shape[0]
    for i in range(n):
        best[i] = _INF
    for j in range(bx.shape[0]):
        px, py, pz = bx[j], by[j], bz[j]
        for i in range(n):
            best[i] = min(best[i], _sq_dist(ax, ay, az, i, px, py, pz))
    total = 0.0
    for i in range(n):
        total += best[i]
    return total


@njit(parallel=True, fastmath=True, cache=True)
def chamfer_rows(A, B, rows, cols, out):  # pragma: no cover - compiled
    """out[k] = CD(A[rows[k]], B[cols[k]]) (mean convention) for every listed pair; A (P, 3, N), B (Q, 3, M)."""
    n = A.shape[2]
    m = B.shape[2]
    for k in prange(rows.shape[0]):
        best_a = np.empty(n, dtype=np.float32)
        best_b = np.empty(m, dtype=np.float32)
        a = A[rows[k]]
        b = B[cols[k]]
        out[k] = (_sum_nearest_sq(a[0], a[1], a[2], b[0], b[1], b[2], best_a) / n
                  + _sum_nearest_sq(b[0], b[1], b[2], a[0], a[1], a[2], best_b) / m)
