"""Chamfer distance between batches of point clouds, with interchangeable backends.

A backend only finds nearest-neighbour *indices* (no gradient); the squared
distances are then recomputed from the gathered neighbours with autograd. The
gradient is therefore exact (the gradient of a min is the gradient at its argmin)
and memory stays O(B * N) for the backward pass whatever the backend.

Backends:

* ``torch``: pure PyTorch, chunked over query points so at most
  ``max_elements`` squared distances exist at once (no ``B x N x M`` blow-up).
* ``numba``: a CPU kernel with the query points in SIMD lanes (``_nn_kernels.py``).
* ``keops``: pykeops ``LazyTensor`` argmin (CPU or CUDA), when installed.
* ``pytorch3d``: ``pytorch3d.ops.knn_points``, when installed.

:func:`resolve_backend` is the one rule for ``backend="auto"`` (numba on the CPU;
keops, then pytorch3d, then torch on a GPU for the loss; torch for matrices on a GPU
and for kNN on features) and checks explicit names; the trainer records what ran.
"""

from __future__ import annotations

import functools
import warnings

import torch

BACKENDS = ("torch", "numba", "keops", "pytorch3d")
CHOICES = ("auto", *BACKENDS)  # what every --chamfer-backend accepts
DEFAULT_MAX_ELEMENTS = 2**25  # squared distances held at once by the torch backend (128 MiB fp32)


def _validate(x: torch.Tensor, y: torch.Tensor) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape (B, N, 3), got {type(t).__name__}")
        if t.dim() != 3 or t.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.shape[1] == 0:
            raise ValueError(f"{name} has no points (shape {tuple(t.shape)})")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same batch size, got {x.shape[0]} and {y.shape[0]}")
    if x.device != y.device or x.dtype != y.dtype:
        raise ValueError(f"x and y must share device and dtype, got {x.device}/{x.dtype} and {y.device}/{y.dtype}")


@functools.cache
def _keops_usable() -> str | None:
    """None when KeOps imports and runs a tiny argmin; else the reason it cannot."""
    try:
        _nn_keops(torch.zeros(1, 2, 3), torch.ones(1, 2, 3))
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None


def _pytorch3d_importable() -> bool:
    try:
        import pytorch3d.ops  # noqa: F401
    except ImportError:
        return False
    return True


USES = {  # what each use can run; explicit names outside its set are refused
    "loss": BACKENDS,  # the training loss and every chamfer_distance call
    "matrix": BACKENDS,  # matrices of distances between sets (metrics, validation)
    "knn": ("torch", "keops", "pytorch3d"),  # k nearest neighbours on D-dim features (DGCNN)
}


def resolve_backend(backend: str = "auto", device="cpu", use: str = "loss") -> str:
    """The one rule for which Chamfer / nearest-neighbour backend runs.

    ``auto``:

    * ``loss``: the numba kernel on the CPU (the fastest here, ``bench/bench_distances.py``);
      on a GPU KeOps (probed once, which compiles its kernel on first use; an installed
      but failing KeOps is skipped with a warning naming the error), then pytorch3d, then torch;
    * ``matrix``: numba on the CPU, torch on a GPU (pairs batched by the matrix code);
    * ``knn``: torch (on learned 64-256-dim features the distances are a matrix multiply,
      where it beat KeOps on the dev CPU).

    Args:
        backend: ``auto`` or one of :data:`BACKENDS`.
        device: where the tensors live.
        use: one of :data:`USES`.

    Returns:
        The backend's name.

    Raises:
        ValueError: unknown backend or use, a backend the use cannot run, or numba on a GPU.
    """
    if use not in USES:
        raise ValueError(f"unknown use {use!r}; expected one of {tuple(USES)}")
    device = torch.device(device)
    if backend != "auto":
        if backend not in USES[use]:
            what = {"loss": "Chamfer backend", "matrix": "Chamfer matrix backend", "knn": "kNN backend"}[use]
            raise ValueError(f"unknown {what} {backend!r}; expected 'auto' or one of {USES[use]}")
        if backend == "numba" and device.type != "cpu":
            raise ValueError(f"the numba Chamfer backend runs on the CPU only, not {device}; use --device cpu or "
                             "another backend (keops, pytorch3d, torch)")
        return backend
    if use == "knn":
        return "torch"
    if device.type == "cpu":
        return "numba"
    if use == "matrix":
        return "torch"
    try:
        import pykeops  # noqa: F401
    except ImportError:
        pass
    else:
        reason = _keops_usable()
        if reason is None:
            return "keops"
        warnings.warn(f"pykeops is installed but unusable ({reason}); Chamfer backend 'auto' skips it", stacklevel=2)
    if _pytorch3d_importable():
        return "pytorch3d"
    return "torch"


def _nn_torch(x: torch.Tensor, y: torch.Tensor, max_elements: int = DEFAULT_MAX_ELEMENTS):
    """Both nearest-neighbour index maps, chunked over the points of x."""
    B, N, _ = x.shape
    M = y.shape[1]
    center = x.mean(dim=1, keepdim=True)  # distances are translation-invariant; centring limits fp32 cancellation
    x, y = x - center, y - center
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    yt = y.transpose(1, 2)
    chunk = max(1, max_elements // max(1, B * M))
    idx_xy = torch.empty(B, N, dtype=torch.long, device=x.device)
    best_yx = torch.full((B, M), float("inf"), dtype=x.dtype, device=x.device)
    idx_yx = torch.zeros(B, M, dtype=torch.long, device=x.device)
    for start in range(0, N, chunk):
        stop = min(N, start + chunk)
        d = torch.baddbmm(y2[:, None, :], x[:, start:stop], yt, alpha=-2.0).add_(x2[:, start:stop, None])
        idx_xy[:, start:stop] = d.argmin(dim=2)
        col_min, col_arg = d.min(dim=1)
        better = col_min < best_yx
        best_yx = torch.where(better, col_min, best_yx)
        idx_yx = torch.where(better, col_arg + start, idx_yx)
    return idx_xy, idx_yx


def _nn_keops(x: torch.Tensor, y: torch.Tensor):
    try:
        from pykeops.torch import LazyTensor
    except ImportError as exc:
        raise ImportError("Chamfer backend 'keops' needs pykeops: pip install 'pointcloud-sivae[keops]'") from exc
    x_i = LazyTensor(x.contiguous()[:, :, None, :])
    y_j = LazyTensor(y.contiguous()[:, None, :, :])
    d = ((x_i - y_j) ** 2).sum(-1)
    return d.argmin(dim=2)[..., 0].long(), d.argmin(dim=1)[..., 0].long()


def _nn_pytorch3d(x: torch.Tensor, y: torch.Tensor):
    try:
        from pytorch3d.ops import knn_points
    except ImportError as exc:
        raise ImportError("Chamfer backend 'pytorch3d' needs pytorch3d installed (see its install guide)") from exc
    return knn_points(x, y, K=1).idx[..., 0], knn_points(y, x, K=1).idx[..., 0]


def _nn_numba(x: torch.Tensor, y: torch.Tensor):
    if x.device.type != "cpu":
        raise ValueError("the numba nearest-neighbour backend runs on the CPU; use keops, pytorch3d or torch on "
                         f"{x.device}")
    from pointcloud_sivae.ops._nn_kernels import nearest_both

    X = x.float().transpose(1, 2).contiguous().numpy()
    Y = y.float().transpose(1, 2).contiguous().numpy()
    idx_xy = torch.empty(x.shape[0], x.shape[1], dtype=torch.int64)
    idx_yx = torch.empty(y.shape[0], y.shape[1], dtype=torch.int64)
    nearest_both(X, Y, idx_xy.numpy(), idx_yx.numpy())
    return idx_xy, idx_yx


_NN = {"torch": _nn_torch, "numba": _nn_numba, "keops": _nn_keops, "pytorch3d": _nn_pytorch3d}


def nearest_neighbors(x: torch.Tensor, y: torch.Tensor, backend: str = "auto"):
    """Nearest-neighbour indices in both directions.

    Args:
        x: (B, N, 3) float tensor. y: (B, M, 3) float tensor, same device and dtype.
        backend: ``auto`` or one of :data:`BACKENDS`.

    Returns:
        ``idx_xy`` (B, N) int64, index in y of the nearest point to each point of x,
        and ``idx_yx`` (B, M) int64, the converse. No gradient.

    Raises:
        ValueError: bad shapes, dtypes or devices, or an unknown backend.
        ImportError: the named backend is not installed (names the extra).
    """
    _validate(x, y)
    return _nearest(x, y, resolve_backend(backend, x.device))


def _nearest(x: torch.Tensor, y: torch.Tensor, backend: str):
    with torch.no_grad():
        return _NN[backend](x.detach(), y.detach())


def sq_dist_to_neighbors(points: torch.Tensor, others: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, N) squared L2 distance from each point to ``others[idx]``, differentiable in both."""
    nn = torch.gather(others, 1, idx[..., None].expand(-1, -1, 3))
    return ((points - nn) ** 2).sum(-1)


class Chamfer:
    """The Chamfer distance with its nearest-neighbour backend resolved once (:func:`resolve_backend`).

    ``Chamfer(x, y, point_reduction=...)`` is :func:`chamfer_distance` on that backend; ``name``
    says which backend runs (for ``run_info.json`` and result files).

    Args:
        backend: ``auto`` or one of :data:`BACKENDS`. device: where the clouds live.
        use: ``loss`` (training and per-pair distances) or ``matrix`` (metrics; see :data:`USES`).

    Raises:
        ValueError: an unknown backend, or one the device cannot run.
    """

    def __init__(self, backend: str = "auto", device="cpu", use: str = "loss"):
        self.name = resolve_backend(backend, device, use=use)

    def __repr__(self) -> str:
        return f"Chamfer({self.name!r})"

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, point_reduction: str = "mean") -> torch.Tensor:
        if point_reduction not in ("mean", "sum"):
            raise ValueError(f"point_reduction must be 'mean' or 'sum', got {point_reduction!r}")
        half = (torch.float16, torch.bfloat16)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and (x.dtype in half or y.dtype in half):
            x, y = x.float(), y.float()  # mixed precision: distances and their gradients in float32
        _validate(x, y)
        with torch.autocast(x.device.type, enabled=False):
            idx_xy, idx_yx = _nearest(x, y, self.name)
            d_xy = sq_dist_to_neighbors(x, y, idx_xy)
            d_yx = sq_dist_to_neighbors(y, x, idx_yx)
        if point_reduction == "mean":
            return d_xy.mean(1) + d_yx.mean(1)
        return d_xy.sum(1) + d_yx.sum(1)


def chamfer_distance(
    x: torch.Tensor, y: torch.Tensor, *, point_reduction: str = "mean", backend: str = "auto"
) -> torch.Tensor:
    """Chamfer distance of each pair of clouds (squared L2).

    ``CD(X, Y) = red_x min_y ||x - y||^2 + red_y min_x ||x - y||^2`` with ``red`` the
    mean over points (PointFlow / latent_3d_points convention, used by every metric)
    or the sum (the Soft-IntroVAE 3D training loss, paired with ``s = 1/(3N)``).
    A caller that computes many distances resolves the backend once with :class:`Chamfer`.

    Args:
        x: (B, N, 3) float tensor. y: (B, M, 3) float tensor, same device and dtype.
        point_reduction: ``"mean"`` or ``"sum"`` over the points of each direction.
        backend: ``auto`` or one of :data:`BACKENDS` (nearest-neighbour search only).

    Returns:
        (B,) tensor, squared distance units of the input; differentiable in x and y.

    Raises:
        ValueError: bad shapes, dtypes, devices, reduction or backend name.
        ImportError: the named backend is not installed.

    Source: Fan et al., CVPR 2017; Achlioptas et al., ICML 2018 (mean convention).
    """
    if not isinstance(x, torch.Tensor):
        _validate(x, y)  # raises, naming what x is
    return Chamfer(backend, x.device)(x, y, point_reduction=point_reduction)


def knn_indices(points: torch.Tensor, k: int, backend: str = "auto",
                max_elements: int = DEFAULT_MAX_ELEMENTS) -> torch.Tensor:
    """The ``k`` nearest neighbours of every point within its own cloud (itself included).

    Works in any feature dimension (DGCNN builds graphs on learned features).

    Args:
        points: (B, N, D) float tensor.
        k: neighbours per point, ``1 <= k <= N``.
        backend: ``torch`` (chunked ``baddbmm`` + ``topk``, memory bounded by ``max_elements``;
            what ``auto`` means here: on learned 64-256-dim features the distances are a matrix
            multiply, where it beat KeOps on the dev CPU), ``keops`` (``argKmin``) or
            ``pytorch3d`` (``knn_points``).

    Returns:
        (B, N, k) int64 indices into the cloud, nearest first. No gradient.

    Raises:
        ValueError: ``points`` not (B, N, D) or ``k`` out of range.
        ImportError: the named backend is not installed.
    """
    if points.dim() != 3:
        raise ValueError(f"expected (B, N, D) points, got shape {tuple(points.shape)}")
    B, N, _ = points.shape
    if not 1 <= k <= N:
        raise ValueError(f"k must be in [1, {N}] for clouds of {N} points, got {k}")
    backend = resolve_backend(backend, points.device, use="knn")
    x = points.detach()
    with torch.no_grad():
        if backend == "keops":
            from pykeops.torch import LazyTensor

            x = x.contiguous()
            d = ((LazyTensor(x[:, :, None, :]) - LazyTensor(x[:, None, :, :])) ** 2).sum(-1)
            return d.argKmin(k, dim=2).long()
        if backend == "pytorch3d":
            from pytorch3d.ops import knn_points

            return knn_points(x, x, K=k).idx
        x = x - x.mean(dim=1, keepdim=True)
        x2 = (x * x).sum(-1)
        xt = x.transpose(1, 2)
        chunk = max(1, max_elements // max(1, B * N))
        out = torch.empty(B, N, k, dtype=torch.long, device=x.device)
        for start in range(0, N, chunk):
            stop = min(N, start + chunk)
            d = torch.baddbmm(x2[:, None, :], x[:, start:stop], xt, alpha=-2.0).add_(x2[:, start:stop, None])
            out[:, start:stop] = d.topk(k, dim=2, largest=False).indices
        return out
