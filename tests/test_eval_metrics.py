import numpy as np
import pytest

from pointcloud_sivae.metrics.distances import pairwise_chamfer, pairwise_emd
from pointcloud_sivae.metrics.generation import coverage, mmd, one_nn_accuracy


def brute_mmd(D):
    return np.mean([min(D[s, r] for s in range(D.shape[0])) for r in range(D.shape[1])])


def brute_cov(D):
    hit = set()
    for s in range(D.shape[0]):
        best = min(range(D.shape[1]), key=lambda r: (D[s, r], r))
        hit.add(best)
    return len(hit) / D.shape[1]


def brute_1nna(D_ss, D_sr, D_rr):
    n_s, n_r = D_sr.shape
    clouds = [("s", i) for i in range(n_s)] + [("r", j) for j in range(n_r)]

    def dist(a, b):
        (ka, ia), (kb, ib) = a, b
        if ka == kb == "s":
            return D_ss[ia, ib]
        if ka == kb == "r":
            return D_rr[ia, ib]
        return D_sr[ia, ib] if ka == "s" else D_sr[ib, ia]

    score = 0.0
    for a in clouds:
        others = [b for b in clouds if b != a]
        best = min(dist(a, b) for b in others)
        nearest = [b for b in others if dist(a, b) == best]
        score += sum(b[0] == a[0] for b in nearest) / len(nearest)
    return score / len(clouds)


def random_matrices(seed, n_s=7, n_r=5):
    rng = np.random.default_rng(seed)
    S, R = rng.random((n_s, 2)), rng.random((n_r, 2))
    d = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)  # noqa: E731
    return d(S, S), d(S, R), d(R, R)


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force_on_random_matrices(seed):
    D_ss, D_sr, D_rr = random_matrices(seed)
    assert mmd(D_sr) == pytest.approx(brute_mmd(D_sr))
    assert coverage(D_sr) == pytest.approx(brute_cov(D_sr))
    assert one_nn_accuracy(D_ss, D_sr, D_rr) == pytest.approx(brute_1nna(D_ss, D_sr, D_rr))


def test_tie_rule_on_integer_distances():
    rng = np.random.default_rng(0)
    S, R = rng.integers(0, 3, (6, 1)).astype(float), rng.integers(0, 3, (6, 1)).astype(float)
    d = lambda a, b: np.abs(a - b.T)  # noqa: E731 - many exact ties
    assert one_nn_accuracy(d(S, S), d(S, R), d(R, R)) == pytest.approx(brute_1nna(d(S, S), d(S, R), d(R, R)))


def test_known_answers_on_real_clouds(airplanes_256):
    pts = np.load(airplanes_256 / "airplane" / "train.npz")["points"][:12]
    D = pairwise_chamfer(pts)
    # a set against itself: MMD 0, COV 100%
    assert mmd(D) == 0.0 and coverage(D) == 1.0
    # a set against an exact copy: each cloud's nearest other is its twin in the other set -> 1-NNA 0
    assert one_nn_accuracy(D, D, D) == 0.0
    # two far-apart sets: 1-NNA 100%
    far = pts + np.array([10.0, 0, 0], dtype=np.float32)
    D_sr = pairwise_chamfer(far, pts)
    assert one_nn_accuracy(pairwise_chamfer(far), D_sr, D) == 1.0
    assert coverage(D_sr) < 1.0 or len(pts) == 1


def test_emd_matrix_known_answers(airplanes_256):
    pts = np.load(airplanes_256 / "airplane" / "val.npz")["points"][:4, :64]
    D = pairwise_emd(pts, method="exact")
    assert np.all(np.diag(D) == 0) and np.allclose(D, D.T)
    shifted = pts + np.array([0, 0.5, 0], dtype=np.float32)
    np.testing.assert_allclose(np.diag(pairwise_emd(pts, shifted, method="exact")), 0.5, rtol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="non-empty 2-D"):
        mmd(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        coverage(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="shapes disagree"):
        one_nn_accuracy(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))
