"""Numba CPU kernels for PointFlow's approxmatch EMD (internal; use ``pointcloud_sivae.metrics.distances``).

The matching is the one of PointFlow's CUDA kernel (``approxmatch.cu``, see
:func:`pointcloud_sivae.metrics.distances.emd_approx`), computed without its ``n x m`` match matrix.
Per level the kernel needs two passes over the weights ``exp(level * d^2)``: one for
``ratioL`` (row sums against ``remainR``) and the column demands ``sumr``, one for the
matched mass and transport cost of each row. Consecutive levels differ by a factor 4,
so the weights of a level are those of the next, coarser one to the 4th power. Sweep
``i`` over the rows of xyz1 therefore computes one ``exp`` per weight and both
finishes level ``i - 1`` (with ``e^4``) and starts level ``i`` (with ``e``). The cost
is added level by level (the CUDA kernel adds ``match`` over levels first and costs it
at the end: the same sum in another order).

* :func:`approxmatch_rows`: one order (xyz1 onto xyz2) of every listed pair;
* :func:`approxmatch_both_rows`: both orders of pairs of one set (the self-matrices),
  from one pass: the weights are symmetric, the reverse matching's row sums are column
  sums here and its column step is row-local (0.66x the time of two passes).

The weights use a vectorisable ``exp``: Cody-Waite reduction ``t = n ln2 + r`` and the
Cephes ``expf`` polynomial for ``e^r`` (about 1 ulp), ``2^n`` built from its exponent
bits by an LLVM bitcast. Like the CUDA ``__expf`` (``ex2.approx.ftz``), results below
about ``2^-125`` flush to 0 (no denormals), so at the fine levels a pair further apart
than ``sqrt(88 / |level|)`` along the sort axis gives exactly 0: each row visits only
the window of points of xyz2 within that distance along the axis of largest spread
(both clouds are sorted along it; sums are order-independent up to float32 rounding).

Sums over a row run in float32 SIMD lanes; the cost of each row and level is added in
float64. Clouds are coordinate-major, (M, 3, N), so each coordinate is a contiguous
vector. Measured: 25 ms per 2048-point pair on one core of the dev CPU, 8.7 ms per
order with both orders on 2 cores (``bench/bench_eval.py``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # open3d ships an old TBB

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # 355/512: n * _LN2_HI is exact for |n| <= 2^14
_LN2_LO = np.float32(-2.12194440e-4)
_T_MIN = np.float32(-88.0)  # exp(-88) < 2^-126: flushed to 0, as __expf does
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_P0 = np.float32(1.9875691500e-4)  # Cephes expf minimax coefficients for e^r, |r| <= ln2 / 2
_P1 = np.float32(1.3981999507e-3)
_P2 = np.float32(8.3334519073e-3)
_P3 = np.float32(4.1665795894e-2)
_P4 = np.float32(1.6666665459e-1)
_P5 = np.float32(5.0000001201e-1)
_EPS = np.float32(1e-9)
_ZERO = np.float32(0.0)
_POW4_MIN = np.float32(2.0**-31)  # e^4 >= 2^-124 above it
_CUTOFF = 88.0  # |level| * d^2 beyond which every weight is exactly 0


_EXP_FLAGS = {"nnan", "ninf", "nsz", "contract", "afn", "arcp"}  # no "reassoc": it would fold t - n*hi - n*lo


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret an int32 as the float32 with those bits (LLVM ``bitcast``; vectorises)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(fastmath=_EXP_FLAGS, cache=True, inline="always")
def _exp(t):  # pragma: no cover - compiled
    """exp(t) for t <= 0 in float32 (about 1 ulp); 0 below 2^-125 (no denormals)."""
    t = max(t, _T_MIN)
    n = np.floor(t * _LOG2E + _HALF)
    r = (t - n * _LN2_HI) - n * _LN2_LO
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    k = np.int32(n) + np.int32(127)
    return (p * r * r + r + _ONE) * _float_from_bits(np.int32(k << 23) if k > 1 else np.int32(0))


@njit(fastmath=_EXP_FLAGS, cache=True)
def _exp_inplace(e):  # pragma: no cover - compiled
    for l in range(e.shape[0]):
        e[l] = _exp(e[l])


@njit(cache=True)
def _bisect(sorted_values, value, strict):  # pragma: no cover - compiled
    """Smallest i with sorted_values[i] >= value (> value if ``strict``), len if none
    (numba's searchsorted was slower here)."""
    lo = 0
    hi = sorted_values.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_values[mid] < value or (strict and sorted_values[mid] == value):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(fastmath=_EXP_FLAGS, cache=True)
def _row_weights(level, x, y, z, bx, by, bz, d2, e):  # pragma: no cover - compiled
    """d2[l] = |b_l - p|^2 and e[l] = exp(level * d2[l]) for every l of the (window of the) cloud b."""
    for l in range(bx.shape[0]):
        dx = bx[l] - x
        dy = by[l] - y
        dz = bz[l] - z
        q = dx * dx + dy * dy + dz * dz
        d2[l] = q
        e[l] = _exp(level * q)


@njit(fastmath=True, cache=True)
def _window(sorted_coord, centre, radius):  # pragma: no cover - compiled
    return _bisect(sorted_coord, centre - radius, False), _bisect(sorted_coord, centre + radius, True)


@njit(fastmath=True, cache=True, inline="always")
def _fill(arrays, value):  # pragma: no cover - compiled
    """Every array of the tuple ``arrays`` set to ``value``."""
    for x in arrays:
        x[:] = value


@njit(fastmath=True, cache=True, inline="always")
def _sweep_level(levels, i):  # pragma: no cover - compiled
    """Sweep ``i`` of ``len(levels) + 1``: whether it starts level ``i`` and finishes level
    ``i - 1``, the level whose weights its rows compute, and that level's window radius."""
    start = i < levels.shape[0]
    finish = i > 0
    level = levels[i] if start else levels[i - 1]
    return start, finish, level, np.float32(np.sqrt(_CUTOFF / -level))


@njit(fastmath=True, cache=True, inline="always")
def _row_window(level, radius, x, y, z, bx, by, bz, d2, e):  # pragma: no cover - compiled
    """The window ``[lo, hi)`` of b's points within ``radius`` of the row's point along the sort
    axis, with their squared distances ``d2`` and weights ``e`` written to the front."""
    lo, hi = _window(bx, x, radius)
    _row_weights(level, x, y, z, bx[lo:hi], by[lo:hi], bz[lo:hi], d2, e)
    return lo, hi


@njit(fastmath=True, cache=True)
def _finish_columns(sumr, remain_r, ratio_r):  # pragma: no cover - compiled
    """The kernel's second step: ratioR from the column demands, then remainR."""
    for l in range(sumr.shape[0]):
        s = sumr[l] * remain_r[l]
        consumption = min(remain_r[l] / (s + _EPS), _ONE)
        ratio_r[l] = consumption * remain_r[l]
        remain_r[l] = max(_ZERO, remain_r[l] - s)
        sumr[l] = _ZERO


@njit(fastmath=True, cache=True, inline="always")
def _pow4(g):  # pragma: no cover - compiled
    """g^4, the weight of the level 4x finer; 0 where it would underflow (no denormals)."""
    f = g * g if g > _POW4_MIN else _ZERO
    return f * f


@njit(fastmath=True, cache=True)
def _finish_row(e, d2, rr):  # pragma: no cover - compiled
    """Matched mass sum_l e_l rr_l and transport cost sum_l e_l rr_l sqrt(d2_l) of one row."""
    mass = _ZERO
    moved = _ZERO
    for l in range(rr.shape[0]):
        f = e[l] * rr[l]
        mass += f
        moved += f * np.sqrt(d2[l])
    return mass, moved


@njit(fastmath=True, cache=True)
def _start_row(e, rem):  # pragma: no cover - compiled
    """The row sum ``1e-9 + sum_l e_l rem_l`` of ratioL (the kernel's ``suml``)."""
    suml = _EPS
    for l in range(rem.shape[0]):
        suml += e[l] * rem[l]
    return suml


@njit(fastmath=True, cache=True)
def _approxmatch_pair(a, b, levels, remain_l, remain_r, ratio_l, ratio_r, sumr, d2, e, dist):  # pragma: no cover
    """Transport cost (not divided by n) of PointFlow's approxmatch of a (3, n) onto b (3, m), n == m.

    Both clouds are sorted along their first coordinate row; ``levels`` decrease in
    magnitude by exactly 4 (``-4^j``). Sweep ``i`` over the rows of a finishes level
    ``i - 1`` (matched mass, cost) and starts level ``i`` (ratioL, column sums) with one
    ``exp``: the weights of level ``i - 1`` are those of level ``i`` to the 4th power.
    Loops over a window run over slices from 0, so numba's negative-index checks do not
    block vectorisation.
    """
    n = a.shape[1]
    ax, ay, az = a[0], a[1], a[2]
    bx, by, bz = b[0], b[1], b[2]
    _fill((remain_l, remain_r), _ONE)
    sumr[:] = _ZERO
    cost = 0.0
    for i in range(levels.shape[0] + 1):
        start, finish, level, radius = _sweep_level(levels, i)
        for k in range(n):
            lo, hi = _row_window(level, radius, ax[k], ay[k], az[k], bx, by, bz, d2, e)
            if start and finish:
                # _finish_row with the weights e^4 (the level 4x finer) and the next level's row sum
                mass, moved, suml, _ = _both_reductions(e, d2, dist, ratio_r[lo:hi], remain_r[lo:hi], ratio_r[lo:hi],
                                                        True)
            elif finish:  # the last sweep: level i - 1 = the last level, weights e itself
                mass, moved = _finish_row(e, d2, ratio_r[lo:hi])
            else:
                suml = _start_row(e, remain_r[lo:hi])
            if finish:  # level i - 1: matched mass and cost of row k
                rl = ratio_l[k]
                remain_l[k] = max(_ZERO, remain_l[k] - rl * mass)
                cost += float(rl) * float(moved)
            if start:  # level i: ratioL[k] (from remainL[k] just updated), its share of every column's demand
                rl = remain_l[k] / suml
                ratio_l[k] = rl
                col = sumr[lo:hi]
                for l in range(hi - lo):
                    col[l] += e[l] * rl
        if start:
            _finish_columns(sumr, remain_r, ratio_r)
    return cost


@njit(parallel=True, fastmath=True, cache=True)
def approxmatch_rows(X1, X2, rows, cols, levels, out):  # pragma: no cover - compiled
    """out[k] = approxmatch cost / n of xyz1 = X1[rows[k]] onto xyz2 = X2[cols[k]].

    X1, X2: (P, 3, n) and (Q, 3, n) float32, every cloud sorted along its first
    coordinate row (the same axis for all). levels: float32 ``-4^j``, j decreasing.
    """
    n = X1.shape[2]
    m = X2.shape[2]
    for k in prange(rows.shape[0]):
        remain_l = np.empty(n, np.float32)
        ratio_l = np.empty(n, np.float32)
        remain_r = np.empty(m, np.float32)
        ratio_r = np.empty(m, np.float32)
        sumr = np.empty(m, np.float32)
        d2 = np.empty(m, np.float32)
        e = np.empty(m, np.float32)
        dist = np.empty(m, np.float32)
        out[k] = _approxmatch_pair(X1[rows[k]], X2[cols[k]], levels, remain_l, remain_r, ratio_l, ratio_r, sumr,
                                   d2, e, dist) / n


@njit(fastmath=True, cache=True)
def _both_reductions(e, d2, dist, ratio_r_f, remain_r_f, ratio_l_g, pow4):  # pragma: no cover - compiled
    """Row sums of one row for both orders: the forward matching's matched mass, cost and
    ``suml``, and the reverse matching's column demand; ``dist`` keeps the row's distances."""
    mass = _ZERO
    moved = _ZERO
    suml = _EPS
    s_g = _ZERO
    for l in range(ratio_r_f.shape[0]):
        g = e[l]
        suml += g * remain_r_f[l]
        f = _pow4(g) if pow4 else g
        dd = np.sqrt(d2[l])
        dist[l] = dd
        w = f * ratio_r_f[l]
        mass += w
        moved += w * dd
        s_g += f * ratio_l_g[l]
    return mass, moved, suml, s_g


@njit(fastmath=True, cache=True)
def _col_updates(e, dist, sumr_f, rl_f, mass_g, moved_g, rr_g, suml_g, rem_g, pow4, start, finish):  # pragma: no cover
    """Column sums fed by one row: the forward demand, and the reverse matching's ``suml``,
    matched mass and cost (its rows are the columns here)."""
    for l in range(sumr_f.shape[0]):
        g = e[l]
        if start:
            sumr_f[l] += g * rl_f
            suml_g[l] += g * rem_g
        if finish:
            w = (_pow4(g) if pow4 else g) * rr_g
            mass_g[l] += w
            moved_g[l] += w * dist[l]


@njit(fastmath=True, cache=True)
def _approxmatch_both(a, b, levels, rl_f, rml_f, rmr_f, rr_f, sumr_f, rl_g, rml_g, rmr_g, mass_g, moved_g, suml_g,
                      d2, e, dist):  # pragma: no cover - compiled
    """Both orders of one pair at once: costs (not divided by n) of a onto b (forward, ``_f``)
    and of b onto a (reverse, ``_g``), n == m.

    The weights are symmetric, so one ``exp`` per weight serves both. The reverse
    matching's row steps are column sums here, and its column step is row-local:
    sweep ``i`` over the rows of a does the forward sweep of :func:`_approxmatch_pair` and,
    for the reverse matching, the demand and matched mass of level ``i - 1`` and the
    row sums of level ``i``.
    """
    n = a.shape[1]
    m = b.shape[1]
    ax, ay, az = a[0], a[1], a[2]
    bx, by, bz = b[0], b[1], b[2]
    _fill((rml_f, rmr_g, rmr_f, rml_g), _ONE)
    _fill((sumr_f, rl_g, mass_g, moved_g, suml_g), _ZERO)
    cost_f = 0.0
    cost_g = 0.0
    for i in range(levels.shape[0] + 1):
        start, finish, level, radius = _sweep_level(levels, i)
        pow4 = start and finish
        for k in range(n):
            lo, hi = _row_window(level, radius, ax[k], ay[k], az[k], bx, by, bz, d2, e)
            mass, moved, suml, s_g = _both_reductions(e, d2, dist, rr_f[lo:hi], rmr_f[lo:hi], rl_g[lo:hi], pow4)
            rr_gk = _ZERO
            if finish:
                rl = rl_f[k]
                rml_f[k] = max(_ZERO, rml_f[k] - rl * mass)
                cost_f += float(rl) * float(moved)
                s = s_g * rmr_g[k]  # G's column demand of its point k (level i - 1)
                consumption = min(rmr_g[k] / (s + _EPS), _ONE)
                rr_gk = consumption * rmr_g[k]
                rmr_g[k] = max(_ZERO, rmr_g[k] - s)
            rl_fk = _ZERO
            if start:
                rl_fk = rml_f[k] / suml
                rl_f[k] = rl_fk
            _col_updates(e, dist, sumr_f[lo:hi], rl_fk, mass_g[lo:hi], moved_g[lo:hi], rr_gk, suml_g[lo:hi],
                         rmr_g[k], pow4, start, finish)
        if start:
            _finish_columns(sumr_f, rmr_f, rr_f)
        for l in range(m):  # G's rows are b's points
            if finish:
                r = rl_g[l]
                rml_g[l] = max(_ZERO, rml_g[l] - r * mass_g[l])
                cost_g += float(r) * float(moved_g[l])
            if start:
                rl_g[l] = rml_g[l] / (_EPS + suml_g[l])
            mass_g[l] = _ZERO
            moved_g[l] = _ZERO
            suml_g[l] = _ZERO
    return cost_f, cost_g


@njit(parallel=True, fastmath=True, cache=True)
def approxmatch_both_rows(X, rows, cols, levels, out_f, out_g):  # pragma: no cover - compiled
    """out_f[k] = approxmatch / n of X[rows[k]] onto X[cols[k]], out_g[k] of X[cols[k]] onto
    X[rows[k]]: both orders of each listed pair of one set (see :func:`approxmatch_rows`)."""
    n = X.shape[2]
    for k in prange(rows.shape[0]):
        rl_f = np.empty(n, np.float32); rml_f = np.empty(n, np.float32); rmr_g = np.empty(n, np.float32)
        rmr_f = np.empty(n, np.float32); rr_f = np.empty(n, np.float32); sumr_f = np.empty(n, np.float32)
        rl_g = np.empty(n, np.float32); rml_g = np.empty(n, np.float32); mass_g = np.empty(n, np.float32)
        moved_g = np.empty(n, np.float32); suml_g = np.empty(n, np.float32)
        d2 = np.empty(n, np.float32); e = np.empty(n, np.float32); dist = np.empty(n, np.float32)
        cf, cg = _approxmatch_both(X[rows[k]], X[cols[k]], levels, rl_f, rml_f, rmr_f, rr_f, sumr_f, rl_g, rml_g,
                                   rmr_g, mass_g, moved_g, suml_g, d2, e, dist)
        out_f[k] = cf / n
        out_g[k] = cg / n


def exp_flushed(t: np.ndarray) -> np.ndarray:
    """The kernel's ``exp`` of each entry of ``t`` (float32, <= 0), for tests: 0 below 2^-126."""
    e = np.array(t, dtype=np.float32).ravel()
    _exp_inplace(e)
    return e.reshape(np.shape(t))
