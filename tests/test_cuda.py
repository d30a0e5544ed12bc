"""The GPU paths against the CPU ones: the training Chamfer kernels, the metric matrices, the
networks, and a short training run on CUDA whose checkpoint resumes and samples on the CPU.

Skipped where no CUDA device is present (CI has none); on a GPU machine: ``pytest tests/test_cuda.py``.
"""
import json

import numpy as np
import pytest
import torch

from pointcloud_sivae.metrics.distances import pairwise_chamfer, pairwise_emd
from pointcloud_sivae.ops.chamfer import chamfer_distance
from pointcloud_sivae.training.trainer import Trainer

from .conftest import installed_chamfer_backends, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here (CI has none); these tests check the GPU paths")


CUDA_BACKENDS = [b for b in installed_chamfer_backends() if b != "numba"]  # numba runs on the CPU only


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_training_chamfer_on_cuda_matches_numba_on_the_cpu(backend):
    """Forward (both reductions) and gradient, float32 on CUDA against float64 numba on the CPU."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 2048, 3, generator=g) - 0.5
    y0 = torch.rand(4, 1500, 3, generator=g) - 0.5
    for reduction in ("mean", "sum"):
        want = chamfer_distance(x0.double(), y0.double(), point_reduction=reduction, backend="numba")
        got = chamfer_distance(x0.cuda(), y0.cuda(), point_reduction=reduction, backend=backend)
        assert got.device.type == "cuda" and got.dtype == torch.float32
        np.testing.assert_allclose(got.cpu().double().numpy(), want.numpy(), rtol=1e-4)
    grads = []
    for dev, dtype, name in (("cuda", torch.float32, backend), ("cpu", torch.float64, "numba")):
        x = x0.to(dev, dtype).detach().clone().requires_grad_()
        y = y0.to(dev, dtype).detach().clone().requires_grad_()
        w = torch.tensor([1.0, 2.0, 0.5, 3.0], device=dev, dtype=dtype)
        (chamfer_distance(x, y, point_reduction="sum", backend=name) * w).sum().backward()
        grads.append((x.grad.cpu().double(), y.grad.cpu().double()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
        assert b.abs().sum() > 0


def test_metric_matrices_on_cuda_match_the_cpu(airplanes_2048):
    """Chamfer and approxmatch EMD matrices (both argument orders, and a self-matrix) at 2048 points:
    the torch kernels on CUDA against the numba kernels on the CPU."""
    A, B = airplanes_2048[:10], airplanes_2048[10:16]
    np.testing.assert_allclose(pairwise_chamfer(A, B, device="cuda"), pairwise_chamfer(A, B), rtol=1e-4)
    np.testing.assert_allclose(pairwise_chamfer(A, device="cuda"), pairwise_chamfer(A), rtol=1e-4, atol=1e-12)
    S, R = A[:4], B[:3]
    np.testing.assert_allclose(pairwise_emd(S, R, device="cuda"), pairwise_emd(S, R), rtol=1e-4)
    gpu_self, cpu_self = pairwise_emd(S, device="cuda"), pairwise_emd(S)
    np.testing.assert_allclose(gpu_self, cpu_self, rtol=1e-4)
    assert not np.allclose(gpu_self, gpu_self.T, rtol=1e-4)  # approxmatch is not symmetric, on CUDA too


def test_networks_on_cuda_compute_what_they_compute_on_the_cpu(airplanes_256, tmp_path):
    """The same weights (initialised on the CPU, then moved) give the same posterior and decoded
    clouds on both devices, and a Soft-IntroVAE step on CUDA returns finite terms."""
    torch.manual_seed(0)
    cpu = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "cpu"))
    cfg = tiny_config(airplanes_256, tmp_path, "cuda")
    cfg.train.device = "cuda"
    torch.manual_seed(0)
    gpu = Trainer.new_run(cfg)
    assert next(gpu.model.parameters()).device.type == "cuda"
    state = cpu.model.state_dict()
    assert all(torch.equal(v, gpu.model.state_dict()[k].cpu()) for k, v in state.items())
    cpu.model.eval(), gpu.model.eval()
    x = cpu.val_points[:8]
    with torch.no_grad():
        mu_c, logvar_c = cpu.model.encoder(x)
        mu_g, logvar_g = gpu.model.encoder(x.cuda())
        torch.testing.assert_close(mu_g.cpu(), mu_c, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logvar_g.cpu(), logvar_c, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(gpu.model.decoder(mu_c.cuda()).cpu(), cpu.model.decoder(mu_c),
                                   rtol=1e-4, atol=1e-5)
    gpu.model.train()
    terms = gpu.train_step(gpu.train_points[:16], "soft-intro")
    assert all(np.isfinite(v) for v in terms.values()) and terms["rec"] > 0


def test_training_on_cuda_resumes_and_samples_on_the_cpu(airplanes_256, tmp_path):
    from pointcloud_sivae.inference import Inference

    cfg = tiny_config(airplanes_256, tmp_path, "run", epochs=2)
    cfg.train.device, cfg.loss.chamfer_backend = "cuda", "auto"
    Trainer.new_run(cfg).fit()
    run = tmp_path / "run"
    info = json.loads((run / "run_info.json").read_text())["sessions"][0]
    assert info["device"].startswith("cuda") and info["chamfer_backend"] in CUDA_BACKENDS
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["rec"]) and 0 < r["val_chamfer"] < 0.1 for r in records)
    resumed = Trainer.resume(run, {"epochs": 3, "device": "cpu"}).fit()  # the CUDA checkpoint, on the CPU
    assert [r["epoch"] for r in resumed] == [3]
    inf = Inference(run, device="cpu")
    clouds = inf.decode(inf.latents(4, seed=0))
    assert clouds.shape == (4, 256, 3) and np.isfinite(clouds).all()
