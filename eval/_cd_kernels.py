"""Numba CPU kernel for matrices of Chamfer distances (internal; use ``eval.distances``).

For a pair of clouds the sum over ``a`` of ``min_b ||a - b||^2`` is computed with the
query points in SIMD lanes: the inner loop is an element-wise ``best[i] = min(best[i],
d_ij)``, which LLVM vectorises (a min-reduction over ``j`` would not be). Clouds are
stored coordinate-major, (M, 3, N), so each coordinate is a contiguous vector.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

# open3d installs an older TBB that numba would probe (and warn about) first
numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]

_INF = np.float32(np.inf)


@njit(fastmath=True, cache=True)
def _sum_nearest_sq(ax, ay, az, bx, by, bz, best):  # pragma: no cover - compiled
    n = ax.shape[0]
    for i in range(n):
        best[i] = _INF
    for j in range(bx.shape[0]):
        px = bx[j]
        py = by[j]
        pz = bz[j]
        for i in range(n):
            dx = ax[i] - px
            dy = ay[i] - py
            dz = az[i] - pz
            best[i] = min(best[i], dx * dx + dy * dy + dz * dz)
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
