"""Jensen-Shannon divergence between the occupancy histograms of two sets of clouds."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
from scipy.spatial import cKDTree


@cache
def unit_cube_grid(resolution: int = 28, clip_sphere: bool = True) -> np.ndarray:
    """Centres of a ``resolution^3`` grid spanning ``[-0.5, 0.5]^3`` (spacing ``1/(resolution-1)``),
    optionally only those within the ball of radius 0.5; (G, 3) float64.

    Source: Achlioptas et al., ICML 2018, ``latent_3d_points`` ``unit_cube_grid_point_cloud``.
    """
    ticks = np.arange(resolution) / (resolution - 1) - 0.5
    grid = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 3)
    if clip_sphere:
        grid = grid[np.linalg.norm(grid, axis=1) <= 0.5]
    return grid


def occupancy_histogram(clouds: np.ndarray, resolution: int = 28, clip_sphere: bool = True) -> np.ndarray:
    """Number of points of all clouds whose nearest grid centre is each centre.

    Args:
        clouds: (M, N, 3) float array in the evaluation frame (shapes within the unit
            cube); points outside still count at their nearest centre, with a warning.

    Returns:
        (G,) float64 counts.
    """
    clouds = np.asarray(clouds, dtype=np.float64)
    if clouds.ndim != 3 or clouds.shape[-1] != 3:
        raise ValueError(f"clouds must have shape (M, N, 3), got {clouds.shape}")
    pts = clouds.reshape(-1, 3)
    if not np.isfinite(pts).all():
        raise ValueError("clouds contain NaN or infinite coordinates")
    bound = 0.5 + 1e-3
    outside = (np.linalg.norm(pts, axis=1) > bound) if clip_sphere else (np.abs(pts).max(axis=1) > bound)
    if outside.any():
        warnings.warn(f"{outside.mean():.2%} of points lie outside the JSD grid's "
                      f"{'ball' if clip_sphere else 'cube'} of radius 0.5; they count at the nearest cell", stacklevel=2)
    grid = unit_cube_grid(resolution, clip_sphere)
    _, idx = cKDTree(grid).query(pts)
    return np.bincount(idx, minlength=len(grid)).astype(np.float64)


def jensen_shannon_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Base-2 JSD of two non-negative histograms (normalised here); in [0, 1].

    Raises:
        ValueError: negative entries, different lengths or an all-zero histogram.
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in length: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() == 0 or q.sum() == 0:
        raise ValueError("histograms must be non-negative and not all zero")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def _kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return max(0.0, 0.5 * _kl(p, m) + 0.5 * _kl(q, m))


def jsd_between_sets(sample: np.ndarray, reference: np.ndarray, resolution: int = 28) -> float:
    """JSD between the occupancy histograms of all points of two sets of clouds.

    Args:
        sample: (S, N, 3), reference: (R, N', 3) float arrays in the evaluation frame.
        resolution: grid cells per axis over ``[-0.5, 0.5]^3``, restricted to the ball
            of radius 0.5.

    Returns:
        Base-2 JSD in [0, 1] (0: identical histograms).

    Source: Achlioptas et al., "Learning Representations and Generative Models for 3D
    Point Clouds", ICML 2018 (``jsd_between_point_cloud_sets``, as used by PointFlow).
    """
    return jensen_shannon_divergence(
        occupancy_histogram(sample, resolution), occupancy_histogram(reference, resolution)
    )
