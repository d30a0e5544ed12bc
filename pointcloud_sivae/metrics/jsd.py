"""Jensen-Shannon divergence between the occupancy histograms of two sets of clouds.

The histogram is PointFlow's (``entropy_of_occupancy_grid``, from latent_3d_points):
float32 centres of a 28^3 grid over ``[-0.5, 0.5]^3``, only those within the ball of
radius 0.5, and every point counted at its nearest centre as sklearn's
``NearestNeighbors(n_neighbors=1)`` finds it. A point on a cell boundary (a coordinate
of exactly 0.0 at resolution 28, frequent in real ShapeNet data) is equidistant from
two centres; sklearn's KD-tree breaks that tie by its traversal order, which no
simple rule reproduces (lowest index, cKDTree: each differs on some ties), so the
assignment here is sklearn's own, called the same way.
"""

from __future__ import annotations

from functools import cache

import numpy as np

BALL_BOUND = 0.5 + 1e-3  # PointFlow's "bound = 0.5 + epsilon", epsilon = 10e-4
MAX_OUTSIDE = 0.01  # above this fraction of points outside the ball, the clouds are in another frame


class JSDFrameError(ValueError):
    """The clouds are not in the JSD grid's frame (too many points outside the ball of radius 0.5)."""


@cache
def unit_cube_grid(resolution: int = 28, clip_sphere: bool = True) -> np.ndarray:
    """Centres ``i / (resolution - 1) - 0.5`` of a ``resolution^3`` grid, rounded to float32 as
    PointFlow stores them, optionally only those with float32 norm <= 0.5; (G, 3) float32.

    Source: Achlioptas et al., ICML 2018, ``latent_3d_points`` ``unit_cube_grid_point_cloud``
    (as in PointFlow's ``evaluation_metrics.py``).
    """
    spacing = 1.0 / float(resolution - 1)
    ticks = (np.arange(resolution) * spacing - 0.5).astype(np.float32)  # float64 products, stored float32
    grid = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 3)
    if clip_sphere:
        grid = grid[np.linalg.norm(grid, axis=1) <= 0.5]
    grid.setflags(write=False)
    return grid


@cache
def _nearest_cell_index(resolution: int, clip_sphere: bool):
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=1).fit(unit_cube_grid(resolution, clip_sphere))


def outside_fraction(clouds: np.ndarray) -> float:
    """Fraction of the points of (M, N, 3) clouds farther than ``0.5 + 1e-3`` from the origin."""
    pts = np.asarray(clouds, np.float32).reshape(-1, 3)
    return float((np.linalg.norm(pts, axis=1) > BALL_BOUND).mean())


def occupancy_histogram(clouds: np.ndarray, resolution: int = 28, clip_sphere: bool = True,
                        allow_outside: bool = False, name: str = "clouds") -> np.ndarray:
    """Number of points of all clouds whose nearest grid centre is each centre.

    Args:
        clouds: (M, N, 3) float array in PointFlow's frame (shapes within the unit cube,
            the grid's ball of radius 0.5); computed in float32, as PointFlow's clouds are.
        allow_outside: count points outside the ball at their nearest centre even when
            more than 1 % of them are outside (no error; callers report :func:`outside_fraction`
            once, in their results).
        name: what the clouds are, for the error message.

    Returns:
        (G,) float64 counts; G = 10144 cells for resolution 28 in the ball.

    Raises:
        ValueError: wrong shape or non-finite coordinates.
        JSDFrameError: more than 1 % of the points lie outside the ball of radius 0.5
            (``0.5 + 1e-3``, PointFlow's bound) and ``allow_outside`` is False.
    """
    clouds = np.asarray(clouds, dtype=np.float32)
    if clouds.ndim != 3 or clouds.shape[-1] != 3:
        raise ValueError(f"clouds must have shape (M, N, 3), got {clouds.shape}")
    pts = clouds.reshape(-1, 3)
    if not np.isfinite(pts).all():
        raise ValueError("clouds contain NaN or infinite coordinates")
    outside = outside_fraction(clouds) if clip_sphere else float((np.abs(pts).max(axis=1) > BALL_BOUND).mean())
    if outside > MAX_OUTSIDE and not allow_outside:
        radius = float(np.linalg.norm(pts, axis=1).max())
        raise JSDFrameError(
            f"{outside:.1%} of the points of the {name} lie outside the JSD grid's ball of radius 0.5 "
            f"(largest radius {radius:.3g}). JSD is computed in PointFlow's frame, where shapes fit the unit "
            "cube: clouds normalised to the unit sphere or to [-1, 1]^3 must be scaled by 0.5 first "
            "('eval sets --input-normalization unit_sphere' does it; data prepared by shapenet_prep is brought "
            "to this frame by its manifest). Pass --jsd-allow-outside to count those points at their nearest "
            "cell anyway.")
    _, idx = _nearest_cell_index(resolution, clip_sphere).kneighbors(pts)
    return np.bincount(idx[:, 0], minlength=len(unit_cube_grid(resolution, clip_sphere))).astype(np.float64)


def jensen_shannon_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Base-2 JSD of two non-negative histograms (normalised here): ``H(M) - (H(P) + H(Q)) / 2``
    with ``M = (P + Q) / 2``, computed as PointFlow does (scipy's ``entropy``); in [0, 1].

    Raises:
        ValueError: negative entries, different lengths or an all-zero histogram.
    """
    from scipy.stats import entropy

    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in length: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() == 0 or q.sum() == 0:
        raise ValueError("histograms must be non-negative and not all zero")
    p, q = p / p.sum(), q / q.sum()
    return float(entropy((p + q) / 2.0, base=2) - (entropy(p, base=2) + entropy(q, base=2)) / 2.0)


def jsd_between_sets(sample: np.ndarray, reference: np.ndarray, resolution: int = 28,
                     allow_outside: bool = False) -> float:
    """JSD between the occupancy histograms of all points of two sets of clouds.

    Args:
        sample: (S, N, 3), reference: (R, N', 3) float arrays in PointFlow's frame.
        resolution: grid cells per axis over ``[-0.5, 0.5]^3``, restricted to the ball
            of radius 0.5.
        allow_outside: see :func:`occupancy_histogram`.

    Returns:
        Base-2 JSD in [0, 1] (0: identical histograms).

    Raises:
        JSDFrameError: either set has more than 1 % of its points outside the ball.

    Source: Achlioptas et al., "Learning Representations and Generative Models for 3D
    Point Clouds", ICML 2018 (``jsd_between_point_cloud_sets``, as used by PointFlow).
    """
    return jensen_shannon_divergence(
        occupancy_histogram(sample, resolution, allow_outside=allow_outside, name="generated clouds"),
        occupancy_histogram(reference, resolution, allow_outside=allow_outside, name="reference clouds"),
    )


def jsd_convention(resolution: int = 28) -> dict:
    """How JSD was computed, for result files."""
    import sklearn

    return {"grid": f"{resolution}^3 float32 centres i/{resolution - 1} - 0.5 within the ball of radius 0.5 "
                    f"({len(unit_cube_grid(resolution))} cells), PointFlow / latent_3d_points",
            "assignment": f"nearest centre by sklearn NearestNeighbors(n_neighbors=1) (KD-tree), sklearn "
                          f"{sklearn.__version__}: boundary ties broken as PointFlow's code breaks them",
            "histogram": "points per cell over all clouds of a set, normalised",
            "divergence": "H((P+Q)/2) - (H(P) + H(Q))/2, base 2 (scipy entropy)",
            "frame": "PointFlow's (shapes within the unit cube); more than 1 % of points outside the ball "
                     f"(radius > {BALL_BOUND}) is an error unless --jsd-allow-outside"}
