"""Matrices of distances between sets of point clouds, computed once for all metrics.

* Chamfer distance: squared L2, mean over points, both directions summed
  (PointFlow / latent_3d_points convention, docs/metrics.md); the numba kernel of
  ``pointcloud_sivae.ops._nn_kernels`` on the CPU, :class:`~pointcloud_sivae.ops.chamfer.Chamfer`
  elsewhere.
* EMD (:mod:`pointcloud_sivae.ops.emd`): exact, or PointFlow's approxmatch in the argument
  order of PointFlow's matrices (the numba kernels of ``pointcloud_sivae.ops._emd_kernels`` on
  the CPU, batched torch on CUDA).

Matrices (``|A| x |B|`` float64) are built from a flat list of pairs processed in
chunks, so memory stays bounded. A set against itself computes the upper triangle
for the symmetric distances (Chamfer, exact EMD) and every ordered pair for
approxmatch, which is not symmetric; the diagonal is 0.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from pointcloud_sivae.ops.chamfer import Chamfer, resolve_backend
from pointcloud_sivae.ops.emd import (
    EMD_METHODS,
    POINTFLOW_LEVELS,
    emd_approx,
    emd_exact,
    kernel_clouds,
    longest_axis,
    resolve_emd_backend,
)



def as_clouds(clouds, name: str = "clouds") -> np.ndarray:
    """Validate a set of clouds and return it as a (M, N, 3) float32 numpy array.

    Raises:
        ValueError: wrong shape, an empty set, or non-finite coordinates.
    """
    if isinstance(clouds, torch.Tensor):
        clouds = clouds.detach().cpu().numpy()
    arr = np.asarray(clouds, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (M, N, 3) with M, N > 0, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite coordinates")
    return arr


def _pairs(n_a: int, n_b: int | None):
    if n_b is None:  # symmetric: strict upper triangle
        rows, cols = np.triu_indices(n_a, k=1)
    else:
        rows, cols = np.divmod(np.arange(n_a * n_b), n_b)
    return rows.astype(np.int64), cols.astype(np.int64)


def _ordered_pairs(n: int):
    """Every ordered pair (a, b), a != b."""
    rows, cols = np.nonzero(~np.eye(n, dtype=bool))
    return rows.astype(np.int64), cols.astype(np.int64)


def _fill(values, rows, cols, n_a, n_b):
    out = np.zeros((n_a, n_a if n_b is None else n_b), dtype=np.float64)
    out[rows, cols] = values
    if n_b is None:
        out[cols, rows] = values
    return out


def _chunks(n: int, size: int, desc: str, progress: bool):
    starts = range(0, n, size)
    return tqdm(starts, desc=desc, unit="chunk", disable=not progress or len(starts) < 2, leave=False)


def _chamfer_values(A, other, rows, cols, backend, device, chunk_pairs, progress) -> np.ndarray:
    values = np.empty(len(rows), dtype=np.float64)
    if backend == "numba":
        from pointcloud_sivae.ops._nn_kernels import chamfer_rows

        a_t = np.ascontiguousarray(A.transpose(0, 2, 1))
        b_t = a_t if other is A else np.ascontiguousarray(other.transpose(0, 2, 1))
        for s in _chunks(len(rows), chunk_pairs, "Chamfer", progress):
            chamfer_rows(a_t, b_t, rows[s : s + chunk_pairs], cols[s : s + chunk_pairs], values[s : s + chunk_pairs])
        return values
    a_d = torch.from_numpy(A).to(device)
    b_d = torch.from_numpy(other).to(device)
    chamfer = Chamfer(backend, device, use="matrix")
    step = max(1, min(chunk_pairs, 2**26 // (A.shape[1] * other.shape[1])))
    with torch.no_grad():
        for s in _chunks(len(rows), step, "Chamfer", progress):
            r = torch.from_numpy(rows[s : s + step]).to(device)
            c = torch.from_numpy(cols[s : s + step]).to(device)
            cd = chamfer(a_d[r], b_d[c], point_reduction="mean")
            values[s : s + step] = cd.double().cpu().numpy()
    return values


def pairwise_chamfer(A, B=None, *, backend: str = "auto", device="cpu", chunk_pairs: int = 4096,
                     progress: bool = False) -> np.ndarray:
    """Matrix of Chamfer distances between every cloud of ``A`` and every cloud of ``B``.

    Args:
        A: (P, N, 3) clouds. B: (Q, M, 3) clouds, or None for ``A`` against itself.
        backend: ``auto`` (numba on CPU, torch on CUDA) or a name of
            :data:`pointcloud_sivae.ops.chamfer.BACKENDS` (:func:`~pointcloud_sivae.ops.chamfer.resolve_backend`).
        device: where the torch/keops backends run.
        chunk_pairs: pairs per chunk (bounds memory; the progress bar counts chunks).

    Returns:
        (P, Q) float64 matrix, squared L2, mean over points (PointFlow convention).

    Raises:
        ValueError: bad clouds, unknown backend.
    """
    device = torch.device(device)
    A = as_clouds(A, "A")
    B_ = None if B is None else as_clouds(B, "B")
    backend = resolve_backend(backend, device, use="matrix")
    rows, cols = _pairs(len(A), None if B_ is None else len(B_))
    other = A if B_ is None else B_
    values = _chamfer_values(A, other, rows, cols, backend, device, chunk_pairs, progress)
    return _fill(values, rows, cols, len(A), None if B_ is None else len(B_))


def compile_kernels(chamfer, matrix_backend: str, device="cpu") -> None:
    """Run the training Chamfer op ``chamfer`` and the distance-matrix backend once on four-point
    clouds, so that kernels compiled on first use (numba, KeOps) are compiled and cached now."""
    x = torch.linspace(0.0, 1.0, 24, device=device).reshape(2, 4, 3)
    chamfer(x, x.flip(1))
    pairwise_chamfer(x.cpu().numpy(), backend=matrix_backend, device=device)


def paired_chamfer(A, B, *, backend: str = "auto", device="cpu") -> np.ndarray:
    """Chamfer distance of each pair ``(A[i], B[i])``: (P,) float64, squared L2, mean over points.

    Raises:
        ValueError: bad clouds, different set sizes, unknown backend.
    """
    device = torch.device(device)
    A, B = as_clouds(A, "A"), as_clouds(B, "B")
    if len(A) != len(B):
        raise ValueError(f"paired distances need sets of equal size, got {len(A)} and {len(B)}")
    idx = np.arange(len(A), dtype=np.int64)
    return _chamfer_values(A, B, idx, idx, resolve_backend(backend, device, use="matrix"), device, 4096, False)


def _approx_numba(xyz1_set, xyz2_set, rows, cols, chunk_pairs, progress) -> np.ndarray:
    """approxmatch / N of xyz1 = xyz1_set[rows[k]] onto xyz2 = xyz2_set[cols[k]], numba, CPU."""
    from pointcloud_sivae.ops._emd_kernels import approxmatch_rows

    axis = longest_axis(xyz1_set, xyz2_set)
    X1 = kernel_clouds(xyz1_set, axis)
    X2 = X1 if xyz2_set is xyz1_set else kernel_clouds(xyz2_set, axis)
    levels = np.asarray(POINTFLOW_LEVELS, np.float32)
    values = np.empty(len(rows), dtype=np.float64)
    for s in _chunks(len(rows), chunk_pairs, "EMD", progress):
        approxmatch_rows(X1, X2, rows[s : s + chunk_pairs], cols[s : s + chunk_pairs], levels,
                         values[s : s + chunk_pairs])
    return values


def _approx_numba_both(clouds, rows, cols, chunk_pairs, progress) -> tuple[np.ndarray, np.ndarray]:
    """Both orders of every listed pair of one set, numba: (approxmatch of clouds[rows[k]] onto
    clouds[cols[k]], and of clouds[cols[k]] onto clouds[rows[k]]), each / N. One weight
    computation serves both, about 2/3 of the time of two single-order runs."""
    from pointcloud_sivae.ops._emd_kernels import approxmatch_both_rows

    X = kernel_clouds(clouds, longest_axis(clouds))
    levels = np.asarray(POINTFLOW_LEVELS, np.float32)
    fwd, rev = np.empty(len(rows)), np.empty(len(rows))
    for s in _chunks(len(rows), chunk_pairs, "EMD", progress):
        approxmatch_both_rows(X, rows[s : s + chunk_pairs], cols[s : s + chunk_pairs], levels,
                              fwd[s : s + chunk_pairs], rev[s : s + chunk_pairs])
    return fwd, rev


def _approx_torch(xyz1_set, xyz2_set, rows, cols, device, progress) -> np.ndarray:
    """The same with :func:`emd_approx`, in chunks of pairs sized to the device's free memory."""
    n = xyz1_set.shape[1]
    per_pair = 5 * n * n * 4  # d2, match, two weight temporaries and the product, float32
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        chunk = int(max(1, min(256, 0.5 * free // per_pair)))
    else:
        chunk = 1  # measured fastest on the CPU
    a_d, b_d = torch.from_numpy(xyz1_set).to(device), torch.from_numpy(xyz2_set).to(device)
    values = np.empty(len(rows), dtype=np.float64)
    with torch.no_grad():
        for s in _chunks(len(rows), chunk, "EMD", progress):
            r = torch.from_numpy(rows[s : s + chunk]).to(device)
            c = torch.from_numpy(cols[s : s + chunk]).to(device)
            values[s : s + chunk] = emd_approx(a_d[r], b_d[c]).double().cpu().numpy()
    return values


def _emd_values(xyz1_set, xyz2_set, rows, cols, method, backend, device, progress) -> np.ndarray:
    """EMD of every listed pair: xyz1 = xyz1_set[rows[k]], xyz2 = xyz2_set[cols[k]]."""
    if method == "exact":
        values = np.empty(len(rows), dtype=np.float64)
        for k in tqdm(range(len(rows)), desc="exact EMD", disable=not progress, leave=False):
            values[k] = emd_exact(xyz1_set[rows[k]], xyz2_set[cols[k]])
        return values
    if resolve_emd_backend(backend, device) == "numba":
        return _approx_numba(xyz1_set, xyz2_set, rows, cols, 512, progress)
    return _approx_torch(xyz1_set, xyz2_set, rows, cols, device, progress)


def _check_emd_inputs(A, B, method):
    if method not in EMD_METHODS:
        raise ValueError(f"unknown EMD method {method!r}; expected one of {EMD_METHODS}")
    A = as_clouds(A, "A")
    B = None if B is None else as_clouds(B, "B")
    if B is not None and B.shape[1] != A.shape[1]:
        raise ValueError(f"EMD needs equal point counts, got {A.shape[1]} and {B.shape[1]}")
    return A, B


def pairwise_emd(A, B=None, *, method: str = "approx", backend: str = "auto", device="cpu",
                 progress: bool = False) -> np.ndarray:
    """Matrix of EMDs between every cloud of ``A`` and every cloud of ``B`` (equal sizes).

    Entry ``[a, b]`` matches ``xyz1 = B[b]`` onto ``xyz2 = A[a]``. That is PointFlow's
    order, which matters for approxmatch (not symmetric): with ``D_sr = pairwise_emd(S, R)``
    every entry is PointFlow's ``M_rs`` entry (reference as xyz1), and the row minima
    of ``pairwise_emd(S)`` are the column minima of PointFlow's ``M_ss`` that its 1-NNA
    takes. For ``A`` against itself approxmatch computes every ordered pair (the
    diagonal is 0); exact EMD is symmetric and computes the upper triangle.

    Args:
        A: (P, N, 3) clouds. B: (Q, N, 3) clouds, or None for ``A`` against itself.
        method: ``approx`` (PointFlow's approxmatch, :func:`emd_approx`) or ``exact``
            (optimal assignment, scipy, CPU; slow: for small sets and references).
        backend: approxmatch on ``auto`` (numba on the CPU, torch on CUDA), ``numba`` or ``torch``.
        device: where the torch backend runs.

    Returns:
        (P, Q) float64 matrix, Euclidean, mean over points, input units.

    Raises:
        ValueError: bad clouds, different point counts, unknown method or backend.
    """
    A, B_ = _check_emd_inputs(A, B, method)
    device = torch.device(device)
    n_b = None if B_ is None else len(B_)
    if method == "approx" and B_ is None and resolve_emd_backend(backend, device) == "numba":
        rows, cols = _pairs(len(A), None)  # each unordered pair once, both orders from one pass
        fwd, rev = _approx_numba_both(A, rows, cols, 512, progress)
        out = np.zeros((len(A), len(A)), dtype=np.float64)
        out[cols, rows] = fwd  # [q, p]: xyz1 = A[p] onto xyz2 = A[q]
        out[rows, cols] = rev
        return out
    if method == "approx" and B_ is None:
        rows, cols = _ordered_pairs(len(A))
    else:
        rows, cols = _pairs(len(A), n_b)
    other = A if B_ is None else B_
    values = _emd_values(other, A, cols, rows, method, backend, device, progress)
    out = np.zeros((len(A), len(other)), dtype=np.float64)
    out[rows, cols] = values
    if B_ is None and method == "exact":
        out[cols, rows] = values
    return out


def paired_emd(A, B, *, method: str = "approx", backend: str = "auto", device="cpu") -> np.ndarray:
    """EMD of each pair, ``xyz1 = B[i]`` matched onto ``xyz2 = A[i]``: (P,) float64, Euclidean,
    mean over points. With ``A`` the inputs and ``B`` their reconstructions this is
    PointFlow's ``EMD_CD(reconstructions, inputs)`` order.

    Raises:
        ValueError: bad clouds, different set sizes or point counts, unknown method or backend.
    """
    A, B = _check_emd_inputs(A, B, method)
    if len(A) != len(B):
        raise ValueError(f"paired distances need sets of equal size, got {len(A)} and {len(B)}")
    idx = np.arange(len(A), dtype=np.int64)
    return _emd_values(B, A, idx, idx, method, backend, torch.device(device), False)
