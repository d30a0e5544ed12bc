"""The repulsion penalty of generated clouds (``loss.beta_repulsion``): its values, invariances, gradient
and its place in the Soft-IntroVAE decoder step."""

import pytest
import torch

from pointcloud_sivae.objectives import repulsion_penalty
from pointcloud_sivae.runs.config import RunConfig, build_objectives
from pointcloud_sivae.training.trainer import Trainer

from .conftest import tiny_config


def _grid(n: int = 8) -> torch.Tensor:
    """(1, n*n, 3): an even square grid, every point 1/n from its nearest neighbours."""
    u = torch.arange(n, dtype=torch.float32) / n
    gx, gy = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten(), torch.zeros(n * n)], dim=1)[None]


def test_an_even_cloud_costs_nothing_and_coincident_points_cost_one():
    grid = _grid()
    assert repulsion_penalty(grid).item() == 0.0  # every d_i equals the RMS spacing: none below h
    clumped = grid.clone()
    clumped[0, 1] = clumped[0, 0]  # two coincident points; the rest unchanged
    # the coincident pair costs 1 each; no other point's nearest neighbour comes closer than h = 0.5 RMS
    assert repulsion_penalty(clumped).item() == pytest.approx(2 / 64, rel=1e-5)


def test_the_same_in_any_frame_scale_order_and_count():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 200, 3, generator=g)
    base = repulsion_penalty(x)
    assert ((base > 0) & (base < 1)).all()  # random points: some pairs closer than half the spacing
    moved = 7.5 * x + torch.tensor([1.0, -2.0, 3.0])
    torch.testing.assert_close(repulsion_penalty(moved), base, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(repulsion_penalty(x[:, torch.randperm(200, generator=g)]), base)
    # per cloud: a batch gives each cloud's own value
    torch.testing.assert_close(repulsion_penalty(x[1:2]), base[1:2])


def test_the_gradient_pushes_close_points_apart_and_is_finite_on_duplicates():
    x = _grid()
    x[0, 1] = x[0, 0] + torch.tensor([1e-3, 0.0, 0.0])
    x[0, 2] = x[0, 0]  # an exact duplicate of point 0 as well
    x.requires_grad_(True)
    repulsion_penalty(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    step = -x.grad[0]
    assert step[1, 0] > 0  # point 1 moves away from point 0 (in +x)
    assert torch.count_nonzero(step.abs().sum(1)) <= 3  # only the clumped points move
    assert repulsion_penalty((x - 1e-2 * x.grad).detach()) < repulsion_penalty(x.detach())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(B, N >= 2, 3\)"):
        repulsion_penalty(torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match="radius must be positive"):
        repulsion_penalty(torch.zeros(2, 4, 3), radius=0)


def test_the_decoder_loss_adds_the_weighted_batch_mean():
    cfg = RunConfig()
    cfg.loss.beta_repulsion, cfg.loss.frame_diagonal = 0.25, 1.0
    cfg.model.num_points = 256
    obj = build_objectives(cfg, chamfer=None)["soft-intro"]
    args = [torch.rand(4) for _ in range(5)]
    rep = torch.tensor([0.1, 0.2, 0.3, 0.4])
    torch.testing.assert_close(obj.decoder_loss(*args, rep), obj.decoder_loss(*args) + 0.25 * 0.25)
    cfg.loss.method = "vae"
    with pytest.raises(ValueError, match="Soft-IntroVAE decoder step only"):
        build_objectives(cfg, chamfer=None)


def test_the_step_logs_the_penalty_only_when_it_is_on(airplanes_256, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(airplanes_256, tmp_path, "rep")
    cfg.loss.beta_repulsion = 0.5
    trainer = Trainer.new_run(cfg)
    terms = trainer.train_step(trainer.train_points[:8], "soft-intro")
    assert 0 < terms["repulsion_fake"] < 1
    off = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "off"))
    assert "repulsion_fake" not in off.train_step(off.train_points[:8], "soft-intro")


def test_bf16_autocast_leaves_the_distances_in_float32():
    """The trainer runs the step under bf16 autocast (``amp = bf16``, the main job's preset); the
    penalty's nearest-neighbour search and distances must not follow it."""
    x = torch.rand(4, 256, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_amp = repulsion_penalty(x)
    assert under_amp.dtype == torch.float32
    torch.testing.assert_close(under_amp, repulsion_penalty(x))
