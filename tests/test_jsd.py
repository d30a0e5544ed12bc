import numpy as np
import pytest
from scipy.stats import entropy

from scipy.spatial import cKDTree

from pointcloud_sivae.metrics.jsd import (
    JSDFrameError,
    jensen_shannon_divergence,
    jsd_between_sets,
    jsd_convention,
    occupancy_histogram,
    outside_fraction,
    unit_cube_grid,
)
from tests.pointflow_reference import pointflow_counts, pointflow_grid, pointflow_jsd


def reference_jsd(sample, ref, resolution=8):
    """latent_3d_points' algorithm, written as loops with brute-force nearest grid cells."""
    grid = []
    spacing = 1.0 / (resolution - 1)
    for i in range(resolution):
        for j in range(resolution):
            for k in range(resolution):
                p = np.array([i, j, k]) * spacing - 0.5
                if np.linalg.norm(p) <= 0.5:
                    grid.append(p)
    grid = np.array(grid)

    def counts(clouds):
        c = np.zeros(len(grid))
        for cloud in clouds:
            for p in cloud:
                c[np.argmin(((grid - p) ** 2).sum(1))] += 1
        return c

    P, Q = counts(sample), counts(ref)
    P, Q = P / P.sum(), Q / Q.sum()
    return entropy((P + Q) / 2, base=2) - (entropy(P, base=2) + entropy(Q, base=2)) / 2


def test_grid_matches_latent_3d_points():
    g = unit_cube_grid(28, clip_sphere=False)
    assert g.shape == (28**3, 3) and g.min() == -0.5 and g.max() == 0.5
    assert len(unit_cube_grid(28)) < 28**3 and np.linalg.norm(unit_cube_grid(28), axis=1).max() <= 0.5


def test_against_loop_reference_on_random_sets():
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.28, 0.28, (4, 60, 3))
    b = rng.normal(0, 0.15, (5, 60, 3)).clip(-0.35, 0.35)
    assert jsd_between_sets(a, b, resolution=8) == pytest.approx(reference_jsd(a, b), abs=1e-12)


def test_known_answers():
    rng = np.random.default_rng(1)
    a = rng.uniform(-0.28, 0.28, (3, 500, 3))
    assert jsd_between_sets(a, a.copy()) == 0.0
    left = rng.uniform(-0.28, -0.2, (2, 100, 3))
    right = rng.uniform(0.2, 0.28, (2, 100, 3))
    assert jsd_between_sets(left, right) == pytest.approx(1.0)  # disjoint supports: the base-2 maximum
    assert jsd_between_sets(a, left) == pytest.approx(jsd_between_sets(left, a))


def test_histogram_counts_every_point():
    clouds = np.random.default_rng(2).uniform(-0.28, 0.28, (3, 100, 3))
    assert occupancy_histogram(clouds).sum() == 300


def test_grid_is_pointflows_float32_grid():
    np.testing.assert_array_equal(unit_cube_grid(28), pointflow_grid(28))
    assert unit_cube_grid(28).dtype == np.float32 and len(unit_cube_grid(28)) == 10144


def test_constructed_boundary_points_go_where_pointflow_puts_them():
    """Points on cell boundaries (a coordinate at 0.0, or midway between two centres in one,
    two or three coordinates) are equidistant from 2-8 centres: sklearn's tie rule decides."""
    rng = np.random.default_rng(3)
    ticks = np.unique(unit_cube_grid(28, clip_sphere=False)[:, 0]).astype(np.float64)
    mids = ((ticks[:-1] + ticks[1:]) / 2).astype(np.float32)
    mids = mids[np.abs(mids) < 0.28]  # inside the ball whatever the other coordinates
    pts = rng.uniform(-0.3, 0.3, (3000, 3)).astype(np.float32)
    for i, p in enumerate(pts):
        p[rng.choice(3, 1 + i % 3, replace=False)] = rng.choice(mids, 1 + i % 3)
    pts[:300, 2] = 0.0  # as in real ShapeNet clouds
    clouds = pts.reshape(10, 300, 3)
    np.testing.assert_array_equal(occupancy_histogram(clouds), pointflow_counts(clouds))
    # the case has teeth: a float64 grid with cKDTree (our former rule) assigns some of them elsewhere
    grid64 = np.stack(np.meshgrid(*(np.arange(28) / 27 - 0.5,) * 3, indexing="ij"), -1).reshape(-1, 3)
    grid64 = grid64[np.linalg.norm(grid64, axis=1) <= 0.5]
    former = np.bincount(cKDTree(grid64).query(pts)[1], minlength=len(grid64))
    assert np.abs(former - pointflow_counts(clouds)).sum() > 0


def test_equals_pointflow_on_real_airplanes_with_boundary_points(airplanes_2048):
    """30 against 30 real airplanes at 2048 points, PointFlow's frame (the issue's case:
    our former JSD gave 0.0822044, PointFlow's code 0.0822766)."""
    sample, ref = airplanes_2048[:30], airplanes_2048[30:60]
    assert (sample == 0.0).any() and (ref == 0.0).any()  # coordinates on the cell boundary at 0
    assert jsd_between_sets(sample, ref) == pytest.approx(pointflow_jsd(sample, ref), abs=1e-9)


def test_clouds_outside_the_ball_are_an_error_unless_allowed(airplanes_2048):
    unit_sphere = airplanes_2048[:4] / np.linalg.norm(airplanes_2048[:4], axis=2).max(1)[:, None, None]
    with pytest.raises(JSDFrameError, match=r"outside the JSD grid's ball of radius 0.5.*--input-normalization"):
        jsd_between_sets(unit_sphere, airplanes_2048[4:8])
    with pytest.raises(JSDFrameError, match="reference clouds"):
        jsd_between_sets(airplanes_2048[4:8], unit_sphere)
    value = jsd_between_sets(unit_sphere, airplanes_2048[4:8], allow_outside=True)  # counted, reported by callers
    assert 0 < value <= 1 and outside_fraction(unit_sphere) > 0.01
    assert jsd_between_sets(unit_sphere * 0.5, airplanes_2048[4:8]) < value  # in the frame: no error


def test_convention_is_recorded():
    conv = jsd_convention()
    assert "sklearn NearestNeighbors" in conv["assignment"] and "10144 cells" in conv["grid"]


def test_errors():
    with pytest.raises(ValueError, match="must have shape"):
        occupancy_histogram(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_divergence(np.array([1.0, -1.0]), np.array([1.0, 1.0]))
    with pytest.raises(JSDFrameError):
        occupancy_histogram(np.full((1, 4, 3), 2.0))
    assert occupancy_histogram(np.full((1, 4, 3), 2.0), allow_outside=True).sum() == 4
