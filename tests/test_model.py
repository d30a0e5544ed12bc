import numpy as np
import pytest
import torch

from pointcloud_sivae.models.vae import SoftIntroVAE
from pointcloud_sivae.training.steps import frozen_batchnorm_stats


def small_model(**kw):
    torch.manual_seed(0)
    return SoftIntroVAE(z_dim=8, num_points=64, encoder_channels=(16, 32), encoder_fc=32, decoder_widths=(32, 64),
                        **kw)


def test_shapes_channels_last():
    m = small_model()
    x = torch.rand(5, 100, 3)  # the encoder accepts any number of points
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 8)
    assert m.decode(mu).shape == (5, 64, 3)
    z = m.sample_prior(1000)
    assert z.shape == (1000, 8) and abs(z.std().item() - 0.2) < 0.01


def test_encoder_is_permutation_invariant():
    m = small_model().eval()
    x = torch.rand(2, 50, 3)
    torch.testing.assert_close(m.encode(x)[0], m.encode(x[:, torch.randperm(50)])[0])


def test_encode_refuses_channels_first():
    import pytest

    with pytest.raises(ValueError, match=r"expected clouds of shape \(B, N, 3\), got \(2, 3, 50\)"):
        small_model().encode(torch.rand(2, 3, 50))


def test_frozen_batchnorm_stats_normalises_with_batch_stats_but_keeps_running_stats():
    m = small_model()
    x = torch.rand(4, 30, 3) * 3 + 1
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k or "num_batches" in k}
    with frozen_batchnorm_stats(m.encoder):
        inside = m.encode(x)[0]
    after = {k: v for k, v in m.state_dict().items() if k in before}
    assert all(torch.equal(before[k], after[k]) for k in before)
    outside = m.encode(x)[0]  # normal training pass: same output, running stats move
    torch.testing.assert_close(inside, outside)
    moved = [k for k in before if "running_mean" in k and not torch.equal(before[k], m.state_dict()[k])]
    assert moved


@pytest.mark.parametrize("backend", ["torch", "keops"])
def test_knn_indices_match_brute_force(backend):
    from pointcloud_sivae.ops.chamfer import knn_indices

    if backend == "keops":
        pytest.importorskip("pykeops")
    g = torch.Generator().manual_seed(0)
    for dim in (3, 64):
        pts = torch.randn(2, 150, dim, generator=g)
        idx = knn_indices(pts, 7, backend=backend)
        d = torch.cdist(pts.double(), pts.double())
        expected = d.topk(7, dim=2, largest=False).indices
        assert idx.shape == (2, 150, 7)
        assert torch.equal(idx[..., 0], torch.arange(150).expand(2, -1))  # each point is its own nearest
        assert torch.equal(idx.sort(-1).values, expected.sort(-1).values)
    with pytest.raises(ValueError, match=r"k must be in \[1, 150\]"):
        knn_indices(pts, 151)


def test_dgcnn_encoder_trains_and_round_trips(airplanes_256, tmp_path):
    pytest.importorskip("torch_geometric")
    from pointcloud_sivae.runs.checkpoint import load_model
    from pointcloud_sivae.training.checkpoint import save_checkpoint
    from pointcloud_sivae.training.trainer import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(airplanes_256, tmp_path, "dgcnn", epochs=1)
    cfg.model.encoder, cfg.model.knn_k = "dgcnn", 8
    cfg.train.val_every = cfg.train.vis_every = 100
    t = Trainer.new_run(cfg)
    before = {k: v.clone() for k, v in t.model.encoder.state_dict().items()}
    terms = t.train_step(t.train_points[:4], "soft-intro")
    assert all(np.isfinite(v) for v in terms.values())
    changed = [k for k, v in t.model.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("convs.0") for k in changed) and any(k.startswith("embed") for k in changed)
    save_checkpoint(t.state_dict(), tmp_path / "dgcnn.pt")
    model, state = load_model(tmp_path / "dgcnn.pt", "cpu")
    assert state["config"]["model"]["encoder"] == "dgcnn"
    x = t.train_points[:3]
    t.model.eval()
    torch.testing.assert_close(model.encode(x)[0], t.model.encode(x)[0])


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder 'pointnet2'; use pointnet or dgcnn"):
        SoftIntroVAE(num_points=16, encoder="pointnet2")


def test_refine_latents_finds_closer_latents_without_touching_the_decoder():
    from pointcloud_sivae.models.latent import refine_latents
    from pointcloud_sivae.ops.chamfer import Chamfer

    m = small_model().eval()
    weights = [p.detach().clone() for p in m.parameters()]
    target = torch.rand(6, 64, 3) - 0.5
    with torch.no_grad():
        z0 = m.encode(target)[0]
    z0_copy = z0.clone()
    chamfer = Chamfer("torch")
    d0 = chamfer(m.decode(z0), target).detach()
    z, d = refine_latents(m.decode, target, z0, chamfer, steps=40, lr=0.05)
    assert z.shape == z0.shape and d.shape == (6,) and torch.equal(z0, z0_copy)
    assert torch.allclose(d, chamfer(m.decode(z), target).detach(), rtol=1e-5)  # d belongs to the z returned
    assert (d <= d0).all() and d.mean() < 0.9 * d0.mean()  # descent makes progress on every run's batch
    assert all(p.grad is None for p in m.parameters())
    assert all(torch.equal(p, w) for p, w in zip(m.parameters(), weights))
    z_same, d_same = refine_latents(m.decode, target, z0, chamfer, steps=0)
    assert torch.equal(z_same, z0) and torch.allclose(d_same, d0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        refine_latents(m.decode, target, z0, chamfer, steps=-1)
    with pytest.raises(ValueError, match="same M"):
        refine_latents(m.decode, target[:3], z0, chamfer, steps=1)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_weight_decay_is_decoupled_and_off_by_default(weight_decay):
    from pointcloud_sivae.runs.config import OptimConfig
    from pointcloud_sivae.training.steps import Learner

    assert OptimConfig().weight_decay == 0.0  # the official optimiser: plain Adam
    m = small_model()
    learner = Learner.with_adam(m, OptimConfig(weight_decay=weight_decay, lr_d=1e-2), dist=None, where=None)
    kind = torch.optim.AdamW if weight_decay else torch.optim.Adam
    assert type(learner.opt_e) is kind and type(learner.opt_d) is kind
    w = next(m.decoder.parameters())
    before = w.detach().clone()
    for p in m.decoder.parameters():
        p.grad = torch.zeros_like(p)  # no loss gradient: only the decay moves a weight
    learner.opt_d.step()
    assert torch.allclose(w.detach(), before * (1 - 1e-2 * weight_decay))
