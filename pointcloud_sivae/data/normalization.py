"""The one normalisation of point clouds, shared by preprocessing, training and evaluation.

Every method maps a cloud ``P`` to ``(P - shift) / scale`` with a per-cloud ``shift``
(3,) and ``scale`` (scalar); :func:`denormalize` inverts it. Preprocessing stores
``shift`` and ``scale`` of every cloud, and the manifest names the method, so any
consumer can return to the source coordinates.

Methods (docs/frames.md):

* ``none``: identity (the Soft-IntroVAE 3D reference trains on raw ShapeNet clouds).
* ``unit_sphere``: per shape, centroid to the origin, farthest point at radius 1.
* ``bbox``: per shape, bounding-box centre to the origin, longest half-side 1
  (DPM / LION "norm_box": the cloud fits ``[-1, 1]^3``).
* ``global``: PointFlow: one mean per axis and one scalar std over *all training*
  points, applied to every split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMALIZATIONS = ("none", "unit_sphere", "bbox", "global")


@dataclass(frozen=True)
class GlobalStats:
    """PointFlow global statistics: per-axis mean (3,) and one scalar std, source units."""

    mean: tuple[float, float, float]
    std: float


def fit_global_stats(train_points: np.ndarray) -> GlobalStats:
    """Fit PointFlow's global normalisation on the training clouds.

    Args:
        train_points: (M, N, 3) float array, source units.

    Returns:
        Per-axis mean over all M*N points and the std over all 3*M*N coordinates
        (PointFlow ``normalize_std_per_axis=False``).

    Source: Yang et al., "PointFlow", ICCV 2019, ``datasets.py``.
    """
    flat = np.asarray(train_points, dtype=np.float64).reshape(-1, 3)
    mean = flat.mean(axis=0)
    std = float(flat.reshape(-1).std())
    return GlobalStats(mean=tuple(float(v) for v in mean), std=std)


def normalization_params(
    points: np.ndarray, method: str, global_stats: GlobalStats | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cloud ``shift`` and ``scale`` of a normalisation method.

    Args:
        points: (M, N, 3) float array, source units.
        method: one of :data:`NORMALIZATIONS`.
        global_stats: required for ``global`` (fit on the training split).

    Returns:
        ``shift`` (M, 3) float32 and ``scale`` (M,) float32, with
        ``normalized = (points - shift[:, None]) / scale[:, None, None]``.

    Raises:
        ValueError: unknown method, missing ``global_stats``, or a degenerate
            cloud (all points equal) that cannot be scaled.
    """
    points = np.asarray(points, dtype=np.float64)
    M = points.shape[0]
    if method == "none":
        shift, scale = np.zeros((M, 3)), np.ones(M)
    elif method == "unit_sphere":
        shift = points.mean(axis=1)
        scale = np.linalg.norm(points - shift[:, None], axis=2).max(axis=1)
    elif method == "bbox":
        lo, hi = points.min(axis=1), points.max(axis=1)
        shift = (lo + hi) / 2
        scale = (hi - lo).max(axis=1) / 2
    elif method == "global":
        if global_stats is None:
            raise ValueError("normalization 'global' needs global_stats fit on the training split")
        shift = np.tile(np.asarray(global_stats.mean), (M, 1))
        scale = np.full(M, global_stats.std)
    else:
        raise ValueError(f"unknown normalization {method!r}; expected one of {NORMALIZATIONS}")
    if np.any(scale <= 0):
        raise ValueError(f"normalization {method!r}: a cloud has zero extent and cannot be scaled")
    return shift.astype(np.float32), scale.astype(np.float32)


def normalize(points, shift, scale):
    """``(points - shift) / scale`` for (M, N, 3) points, (M, 3) shift, (M,) scale.

    Works on numpy arrays and torch tensors alike (all three of one kind).
    """
    return (points - shift[:, None, :]) / scale[:, None, None]


def denormalize(points, shift, scale):
    """Inverse of :func:`normalize`: ``points * scale + shift`` (numpy or torch)."""
    return points * scale[:, None, None] + shift[:, None, :]


@dataclass(frozen=True)
class EvaluationFrame:
    """The two frames of a prepared data set and the map between them (docs/frames.md).

    * **model frame**: the prepared, normalised clouds the model trains on and outputs;
    * **evaluation frame**: ``model * scale + shift``, where shapes fit the unit cube, as
      the JSD grid of Achlioptas et al. (ICML 2018) assumes: the source coordinates for
      ``none`` and ``global`` (ShapeNet clouds lie within about +-0.5), and radius /
      half-side 0.5 for the per-shape methods, whose source frame is lost for a
      generated cloud. Real and generated clouds are scored in the same frame.

    Build it with :meth:`of` from a manifest's ``normalization`` block. Both maps take
    numpy arrays (returned as float32) or torch tensors (kept on their device and dtype).
    """

    method: str
    shift: tuple[float, float, float]
    scale: float

    @classmethod
    def of(cls, manifest_normalization: dict) -> EvaluationFrame:
        """The frame of a manifest's ``normalization`` block.

        Raises:
            ValueError: unknown normalisation method.
        """
        method = manifest_normalization["method"]
        if method == "none":
            return cls(method, (0.0, 0.0, 0.0), 1.0)
        if method == "global":
            return cls(method, tuple(float(v) for v in manifest_normalization["global_mean"]),
                       float(manifest_normalization["global_std"]))
        if method in ("unit_sphere", "bbox"):
            return cls(method, (0.0, 0.0, 0.0), 0.5)
        raise ValueError(f"unknown normalization {method!r}; expected one of {NORMALIZATIONS}")

    def to_evaluation(self, points):
        """Model-frame clouds (..., N, 3) in the evaluation frame."""
        if _is_tensor(points):
            import torch

            return points * self.scale + torch.tensor(self.shift, dtype=points.dtype, device=points.device)
        return (np.asarray(points, np.float32) * np.float32(self.scale)
                + np.asarray(self.shift, np.float32)).astype(np.float32)

    def to_model(self, points):
        """Clouds (M, N, 3) in the evaluation frame, or in any frame for the per-shape methods
        (each cloud is normalised on its own, as preprocessing does), in the model frame."""
        if self.method in ("unit_sphere", "bbox"):
            if _is_tensor(points):
                shift, scale = normalization_params(points.detach().cpu().numpy(), self.method)
                return normalize(points, *(_as_tensor_like(v, points) for v in (shift, scale)))
            points = np.asarray(points, np.float32)
            shift, scale = normalization_params(points, self.method)
            return normalize(points, shift, scale).astype(np.float32)
        if _is_tensor(points):
            import torch

            return (points - torch.tensor(self.shift, dtype=points.dtype, device=points.device)) / self.scale
        return (np.asarray(points, np.float32) - np.asarray(self.shift, np.float32)) / np.float32(self.scale)


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


def _as_tensor_like(values: np.ndarray, like):
    import torch

    return torch.from_numpy(values).to(device=like.device, dtype=like.dtype)
