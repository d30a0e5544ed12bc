"""Numba CPU kernel for nearest-neighbour indices between point clouds (internal; see ``chamfer.py``).

The query points sit in SIMD lanes: for each candidate point ``j`` the inner loop over
queries ``i`` updates ``best[i]``/``arg[i]`` element-wise, which LLVM vectorises with
masked selects; a per-query reduction over ``j`` would not vectorise. Clouds are
coordinate-major, (B, 3, N), so each coordinate is a contiguous vector. The
distances are differences squared (no ``|x|^2 + |y|^2 - 2 x.y`` cancellation).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # open3d ships an old TBB

_INF = np.float32(np.inf)


@njit(fastmath=True, cache=True)
def _nearest(ax, ay, az, bx, by, bz, best, arg):  # pragma: no cover - compiled
    n = ax.shape[0]
    for i in range(n):
        best[i] = _INF
        arg[i] = 0
    for j in range(bx.shape[0]):
        px = bx[j]
        py = by[j]
        pz = bz[j]
        for i in range(n):
            dx = ax[i] - px
            dy = ay[i] - py
            dz = az[i] - pz
            d = dx * dx + dy * dy + dz * dz
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
