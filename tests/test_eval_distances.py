import itertools

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from tests.pointflow_reference import approxmatch_cost

from pointcloud_sivae.ops._emd_kernels import exp_flushed
from pointcloud_sivae.metrics.distances import paired_chamfer, paired_emd, pairwise_chamfer, pairwise_emd
from pointcloud_sivae.ops.emd import POINTFLOW_LEVELS, emd_approx, emd_exact


def kdtree_cd(a, b):
    return (cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean()


@pytest.fixture(scope="module")
def real(airplanes_256):
    return np.load(airplanes_256 / "airplane" / "train.npz")["points"]


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_chamfer_matrix_matches_kdtree(backend, real):
    rng = np.random.default_rng(0)
    rand = rng.uniform(-0.5, 0.5, (5, 300, 3)).astype(np.float32)
    for A, B in ((real[:6], real[6:10]), (rand, rng.uniform(-0.5, 0.5, (3, 200, 3)).astype(np.float32))):
        D = pairwise_chamfer(A, B, backend=backend)
        ref = np.array([[kdtree_cd(a, b) for b in B] for a in A])
        np.testing.assert_allclose(D, ref, rtol=1e-5)


def test_symmetric_matrix_equals_full_matrix(real):
    A = real[:9]
    full = pairwise_chamfer(A, A.copy())
    sym = pairwise_chamfer(A)
    np.testing.assert_allclose(sym, full, rtol=1e-6, atol=1e-12)
    assert np.all(np.diag(sym) == 0)


def test_chunking_and_backends_agree(real):
    A, B = real[:7], real[7:12]
    ref = pairwise_chamfer(A, B, backend="numba")
    np.testing.assert_allclose(pairwise_chamfer(A, B, backend="numba", chunk_pairs=3), ref)
    np.testing.assert_allclose(pairwise_chamfer(A, B, backend="torch", chunk_pairs=2), ref, rtol=1e-5)
    np.testing.assert_allclose(paired_chamfer(A[:5], B), np.diag(ref[:5]), rtol=1e-6)


def test_emd_exact_hand_solvable_case():
    x = np.array([[0, 0, 0], [1, 0, 0]], float)
    y = np.array([[1, 0, 0], [0, 0, 0.5]], float)
    # x0 -> y1 (0.5) and x1 -> y0 (0) beat x0 -> y0 (1) and x1 -> y1 (1.118)
    assert emd_exact(x, y) == pytest.approx(0.25)


def test_emd_exact_matches_all_permutations():
    rng = np.random.default_rng(1)
    x, y = rng.random((6, 3)), rng.random((6, 3))
    brute = min(np.mean([np.linalg.norm(x[i] - y[p[i]]) for i in range(6)]) for p in itertools.permutations(range(6)))
    assert emd_exact(x, y) == pytest.approx(brute)


def test_emd_approx_within_documented_tolerance_of_exact(real):
    """approxmatch is never below exact EMD and, on real airplanes at 256 points, within +50%
    (measured: +12% to +30%; see docs/benchmarks.md)."""
    x, y = torch.from_numpy(real[:6]), torch.from_numpy(real[6:12])
    approx = emd_approx(x, y).numpy()
    exact = np.array([emd_exact(real[i], real[6 + i]) for i in range(6)])
    assert np.all(approx >= exact * (1 - 1e-4))
    assert np.all(approx <= 1.5 * exact)
    # a cloud against itself: small but not 0, since the schedule stops at level -1/4
    # (measured at 256 points: 0.0003-0.0012, 2.5 % of the smallest EMD between two shapes)
    assert emd_approx(x, x).max().item() < 0.05 * exact.min()


def test_approxmatch_schedule_is_pointflows():
    """approxmatch.cu: for (int j=7; j>-2; j--) level = -powf(4, j); the j == -2 branch (level 0) never runs."""
    assert POINTFLOW_LEVELS == tuple(-(4.0**j) for j in (7, 6, 5, 4, 3, 2, 1, 0, -1))
    assert 0.0 not in POINTFLOW_LEVELS


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_approxmatch_equals_the_cuda_kernel_transcription(backend, real, airplanes_2048):
    """Both backends against the line-by-line float32 transcription of PointFlow's kernels,
    on real pairs at 256 points and one pair at 2048 (measured: within 2e-6 relative)."""
    cases = [(real[i], real[i + 3]) for i in range(3)] + [(airplanes_2048[0], airplanes_2048[1])]
    for xyz1, xyz2 in cases:
        want = approxmatch_cost(xyz1, xyz2)
        got = pairwise_emd(xyz2[None], xyz1[None], backend=backend)[0, 0]  # [a, b]: xyz1 = B[b] onto xyz2 = A[a]
        assert got == pytest.approx(want, rel=1e-5)


def test_emd_matrices_follow_pointflows_argument_order(real):
    """approxmatch is not symmetric; entry [s, r] of D_sr is PointFlow's M_rs[r, s] (reference as xyz1)."""
    S, R = real[:3], real[3:5]
    D = pairwise_emd(S, R)
    for s, r in itertools.product(range(3), range(2)):
        assert D[s, r] == pytest.approx(approxmatch_cost(R[r], S[s]), rel=1e-5)
    D_ss = pairwise_emd(S)
    assert np.all(np.diag(D_ss) == 0)
    for a, b in itertools.permutations(range(3), 2):
        assert D_ss[a, b] == pytest.approx(approxmatch_cost(S[b], S[a]), rel=1e-5)
    assert not np.allclose(D_ss, D_ss.T, rtol=1e-4)  # both orders were computed
    np.testing.assert_allclose(pairwise_emd(S, backend="torch"), D_ss, rtol=1e-5)


def test_both_orders_in_one_pass_equal_two_single_passes(real, airplanes_2048):
    """The self-matrix kernel (one weight computation for a -> b and b -> a) against the single-order kernel."""
    from pointcloud_sivae.ops._emd_kernels import approxmatch_both_rows, approxmatch_rows
    from pointcloud_sivae.ops.emd import kernel_clouds

    levels = np.asarray(POINTFLOW_LEVELS, np.float32)
    for clouds in (real[:4], airplanes_2048[:2]):
        X = kernel_clouds(clouds, 2)
        rows, cols = np.triu_indices(len(clouds), k=1)
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)
        fwd, rev, one, other = (np.empty(len(rows)) for _ in range(4))
        approxmatch_both_rows(X, rows, cols, levels, fwd, rev)
        approxmatch_rows(X, X, rows, cols, levels, one)
        approxmatch_rows(X, X, cols, rows, levels, other)
        np.testing.assert_allclose(fwd, one, rtol=1e-5)
        np.testing.assert_allclose(rev, other, rtol=1e-5)
        assert not np.allclose(fwd, rev, rtol=1e-4)


def test_numba_exp_matches_float32_exp_and_flushes():
    t = -np.linspace(0, 100, 200001).astype(np.float32)
    got, want = exp_flushed(t), np.exp(t.astype(np.float64))
    normal = want >= 2.0**-125
    np.testing.assert_allclose(got[normal], want[normal], rtol=2e-7)
    assert np.all(got[t <= -88] == 0) and np.all(got >= 0)


def test_emd_matrices_and_paired(real):
    A = real[:3, :128]
    D = pairwise_emd(A, method="exact")
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0) and np.all(D[~np.eye(3, dtype=bool)] > 0)
    np.testing.assert_allclose(paired_emd(A, A[::-1].copy(), method="exact"),
                               [pairwise_emd(A[i : i + 1], A[2 - i : 3 - i], method="exact")[0, 0] for i in range(3)])
    np.testing.assert_allclose(paired_emd(A, A[::-1].copy()), np.diag(pairwise_emd(A, A[::-1].copy())), rtol=1e-6)


def test_errors(real):
    with pytest.raises(ValueError, match=r"must have shape \(M, N, 3\)"):
        pairwise_chamfer(real[0])
    with pytest.raises(ValueError, match="NaN"):
        pairwise_chamfer(np.full((1, 4, 3), np.nan))
    with pytest.raises(ValueError, match="equal size"):
        emd_exact(real[0], real[1][:100])
    with pytest.raises(ValueError, match="equal point counts"):
        pairwise_emd(real[:2], real[:2, :100])
    with pytest.raises(ValueError, match="unknown EMD method"):
        pairwise_emd(real[:2], method="sinkhorn")
    with pytest.raises(ValueError, match="unknown approxmatch backend"):
        pairwise_emd(real[:2], backend="cuda")
    with pytest.raises(ValueError, match="unknown Chamfer matrix backend"):
        pairwise_chamfer(real[:2], backend="fast")
    with pytest.raises(ValueError, match="equal size"):
        paired_chamfer(real[:2], real[:3])
