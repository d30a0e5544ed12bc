import numpy as np
import pytest
from scipy.stats import entropy

from eval.jsd import jensen_shannon_divergence, jsd_between_sets, occupancy_histogram, unit_cube_grid


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


def test_errors():
    with pytest.raises(ValueError, match="must have shape"):
        occupancy_histogram(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_divergence(np.array([1.0, -1.0]), np.array([1.0, 1.0]))
    with pytest.warns(UserWarning, match="outside the JSD grid"):
        occupancy_histogram(np.full((1, 4, 3), 2.0))
