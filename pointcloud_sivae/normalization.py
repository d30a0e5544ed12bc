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


def evaluation_frame_params(manifest_normalization: dict) -> tuple[list[float], float]:
    """Shift (3,) and scale that bring normalised clouds into the evaluation frame.

    Used for real and generated clouds alike, so both are scored in one frame.
    The evaluation frame is where shapes fit the unit cube, as the JSD grid of
    Achlioptas et al. (ICML 2018) assumes: the source coordinates for ``none``
    and ``global`` (ShapeNet clouds lie within about +-0.5), and radius / half-side
    0.5 for the per-shape methods, whose source frame is lost for a generated cloud.

    Args:
        manifest_normalization: the ``normalization`` block of a prepared manifest.

    Returns:
        ``(shift, scale)`` with ``frame = points * scale + shift``.
    """
    method = manifest_normalization["method"]
    if method == "none":
        return [0.0, 0.0, 0.0], 1.0
    if method == "global":
        return list(manifest_normalization["global_mean"]), float(manifest_normalization["global_std"])
    if method in ("unit_sphere", "bbox"):
        return [0.0, 0.0, 0.0], 0.5
    raise ValueError(f"unknown normalization {method!r}; expected one of {NORMALIZATIONS}")


def to_evaluation_frame(points, manifest_normalization: dict) -> np.ndarray:
    """Normalised clouds (..., N, 3) in the evaluation frame (see :func:`evaluation_frame_params`); float32."""
    shift, scale = evaluation_frame_params(manifest_normalization)
    return (np.asarray(points, np.float32) * np.float32(scale) + np.asarray(shift, np.float32)).astype(np.float32)
