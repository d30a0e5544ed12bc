import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from pointcloud_sivae.ops.chamfer import _nn_torch, chamfer_distance, nearest_neighbors, resolve_backend

from .conftest import AIRPLANE_TXT, installed_chamfer_backends, require_shared_airplanes


AVAILABLE = installed_chamfer_backends()


def kdtree_chamfer(x, y, reduction="mean"):
    """Reference: exact nearest neighbours with scipy's cKDTree, float64."""
    out = []
    for a, b in zip(x.double().numpy(), y.double().numpy()):
        d_ab, _ = cKDTree(b).query(a)
        d_ba, _ = cKDTree(a).query(b)
        red = np.mean if reduction == "mean" else np.sum
        out.append(red(d_ab**2) + red(d_ba**2))
    return np.array(out)


def dense_chamfer(x, y, reduction="mean"):
    """Reference with autograd: the full B x N x M matrix, float64."""
    d = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)
    a, b = d.min(2).values, d.min(1).values
    return (a.mean(1) + b.mean(1)) if reduction == "mean" else (a.sum(1) + b.sum(1))


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_kdtree_on_random_clouds(backend, reduction, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 300, 3, generator=g, dtype=dtype) - 0.5
    y = torch.rand(3, 200, 3, generator=g, dtype=dtype) - 0.5
    got = chamfer_distance(x, y, point_reduction=reduction, backend=backend)
    assert got.shape == (3,) and got.dtype == dtype
    np.testing.assert_allclose(got.double().numpy(), kdtree_chamfer(x, y, reduction), rtol=1e-5)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_gradient_matches_dense_autograd(backend):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 120, 3, generator=g, dtype=torch.float64)
    y0 = torch.rand(2, 90, 3, generator=g, dtype=torch.float64)
    grads = []
    for fn in (lambda a, b: chamfer_distance(a, b, point_reduction="sum", backend=backend), 
               lambda a, b: dense_chamfer(a, b, "sum")):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        w = torch.tensor([1.0, 2.0], dtype=torch.float64)
        (fn(x, y) * w).sum().backward()
        grads.append((x.grad, y.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    assert grads[0][0].abs().sum() > 0


def test_torch_backend_chunking_gives_the_same_neighbours():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 257, 3, generator=g)
    y = torch.rand(2, 101, 3, generator=g)
    full = _nn_torch(x, y, max_elements=2**30)
    tiny = _nn_torch(x, y, max_elements=7)  # one query point per chunk
    assert torch.equal(full[0], tiny[0]) and torch.equal(full[1], tiny[1])
    ref = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    assert torch.equal(full[0], ref.argmin(2)) and torch.equal(full[1], ref.argmin(1))


def test_real_airplane_two_resamplings_match_kdtree():
    require_shared_airplanes()
    pts = np.loadtxt(sorted(AIRPLANE_TXT.glob("*.txt"))[0])[:, :3]
    rng = np.random.default_rng(0)
    a = pts[rng.choice(len(pts), 2048, replace=False)]
    b = pts[rng.choice(len(pts), 2048, replace=False)]
    x, y = torch.tensor(a[None], dtype=torch.float32), torch.tensor(b[None], dtype=torch.float32)
    ref = kdtree_chamfer(x, y)
    for backend in AVAILABLE:
        np.testing.assert_allclose(chamfer_distance(x, y, backend=backend).double().numpy(), ref, rtol=1e-4)
    assert 1e-5 < ref[0] < 1e-3  # same surface, different samples: small but non-zero


@pytest.mark.skipif(len(AVAILABLE) < 2, reason="only the torch backend is installed")
def test_backends_agree_forward_and_backward():
    g = torch.Generator().manual_seed(3)
    x0, y0 = torch.rand(4, 512, 3, generator=g), torch.rand(4, 400, 3, generator=g)
    outs = {}
    for backend in AVAILABLE:
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        cd = chamfer_distance(x, y, point_reduction="sum", backend=backend)
        cd.sum().backward()
        outs[backend] = (cd.detach(), x.grad, y.grad)
    for backend in AVAILABLE[1:]:
        for a, b in zip(outs["torch"], outs[backend]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_resolve_backend_names_what_runs():
    assert resolve_backend("auto") == "numba"  # the fastest on the CPU (bench/bench_distances.py)
    assert resolve_backend("auto", "cpu") == "numba"
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="unknown Chamfer backend 'cuda'"):
        resolve_backend("cuda")


def test_identical_clouds_have_zero_distance():
    x = torch.rand(2, 64, 3)
    assert torch.all(chamfer_distance(x, x.clone(), backend="torch") == 0)


@pytest.mark.parametrize("x,y,msg", [
    (torch.zeros(2, 10, 2), torch.zeros(2, 10, 3), r"x must have shape \(B, N, 3\), got \(2, 10, 2\)"),
    (torch.zeros(2, 10, 3), torch.zeros(3, 10, 3), "same batch size, got 2 and 3"),
    (torch.zeros(2, 0, 3), torch.zeros(2, 10, 3), "x has no points"),
    (torch.zeros(2, 10, 3, dtype=torch.long), torch.zeros(2, 10, 3), "floating-point"),
    (torch.zeros(1, 4, 3), torch.zeros(1, 4, 3, dtype=torch.float64), "share device and dtype"),
])
def test_invalid_inputs_are_refused(x, y, msg):
    with pytest.raises(ValueError, match=msg):
        nearest_neighbors(x, y, backend="torch")


def test_invalid_reduction_is_refused():
    with pytest.raises(ValueError, match="point_reduction must be 'mean' or 'sum'"):
        chamfer_distance(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), point_reduction="max")
