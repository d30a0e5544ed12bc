import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from pointcloud_sivae.objectives import (
    gaussian_kl,
    intro_decoder_loss,
    intro_encoder_loss,
    soft_intro_decoder_loss,
    soft_intro_encoder_loss,
    vae_loss,
)


@pytest.mark.parametrize("prior_std", [1.0, 0.2])
def test_gaussian_kl_matches_torch_distributions(prior_std):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 7, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), prior_std)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar, prior_std), ref)


def test_gaussian_kl_is_zero_at_the_prior():
    mu = torch.zeros(2, 4)
    logvar = torch.full((2, 4), 2 * math.log(0.2))
    torch.testing.assert_close(gaussian_kl(mu, logvar, 0.2), torch.zeros(2), atol=1e-6, rtol=0)


def test_gaussian_kl_refuses_bad_input():
    with pytest.raises(ValueError, match=r"mu and logvar must both be \(B, Z\)"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="prior_std must be positive"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)


# A tiny case computed by hand: B = 2, s = 0.1, b_rec = 2, b_kl = 1, b_neg = 4, gamma_r = 0.5.
T = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
REC_REAL, KL_REAL = T(2.0, 4.0), T(1.0, 3.0)  # means 3, 2
REC_REC, KL_REC = T(3.0, 1.0), T(0.5, 0.0)
REC_FAKE, KL_FAKE = T(4.0, 2.0), T(0.25, 0.75)
W = dict(scale=0.1, beta_rec=2.0, beta_kl=1.0)


def test_encoder_objective_by_hand():
    loss, parts = soft_intro_encoder_loss(REC_REAL, KL_REAL, REC_REC, KL_REC, REC_FAKE, KL_FAKE, beta_neg=4.0, **W)
    real = 0.1 * (2 * 3 + 1 * 2)  # 0.8
    # exp(-2 s (b_rec L_r + b_neg KL)) per shape: rec: 2*3+4*0.5 = 8, 2*1+0 = 2; fake: 8+1 = 9, 4+3 = 7
    e_rec = (math.exp(-0.2 * 8) + math.exp(-0.2 * 2)) / 2
    e_fake = (math.exp(-0.2 * 9) + math.exp(-0.2 * 7)) / 2
    assert parts["real"].item() == pytest.approx(real)
    assert parts["expelbo_rec"].item() == pytest.approx(e_rec)
    assert parts["expelbo_fake"].item() == pytest.approx(e_fake)
    assert loss.item() == pytest.approx(real + 0.25 * (e_rec + e_fake))
    assert loss.item() == pytest.approx(0.8 + 0.25 * (0.436108 + 0.205948), abs=1e-6)  # 0.960514


def test_decoder_objective_by_hand():
    loss = soft_intro_decoder_loss(REC_REAL, KL_REC, KL_FAKE, REC_REC, REC_FAKE, gamma_r=0.5, **W)
    # s * (b_rec * 3 + b_kl/2 * (0.25 + 0.5) + gamma_r * b_rec/2 * (2 + 3)) = 0.1 * (6 + 0.375 + 2.5)
    assert loss.item() == pytest.approx(0.8875)


def test_vae_objective_by_hand():
    assert vae_loss(REC_REAL, KL_REAL, **W).item() == pytest.approx(0.1 * (2 * 3 + 2))


def test_encoder_objective_gradient_signs():
    """Lowering the energy of generated data must raise L_E: the exp terms push it up."""
    kl_fake = KL_FAKE.clone().requires_grad_()
    rec_real = REC_REAL.clone().requires_grad_()
    loss, _ = soft_intro_encoder_loss(rec_real, KL_REAL, REC_REC, KL_REC, REC_FAKE, kl_fake, beta_neg=4.0, **W)
    loss.backward()
    assert torch.all(kl_fake.grad < 0) and torch.all(rec_real.grad > 0)


def test_intro_objectives_by_hand():
    rec_real, kl_real = torch.tensor([2.0, 4.0]), torch.tensor([10.0, 30.0])
    kl_rec, kl_fake = torch.tensor([50.0, 120.0]), torch.tensor([90.0, 100.0])
    loss, parts = intro_encoder_loss(rec_real, kl_real, kl_rec, kl_fake, margin=110.0, alpha=0.25, beta=2.0)
    # hinges: rec [60, 0] -> 30; fake [20, 10] -> 15; L_E = 20 + 0.25 * 45 + 2 * 3
    assert float(parts["hinge_rec"]) == 30.0 and float(parts["hinge_fake"]) == 15.0
    assert float(loss) == pytest.approx(20.0 + 11.25 + 6.0)
    # L_D = 0.25 * (85 + 95) + 2 * 3
    assert float(intro_decoder_loss(rec_real, kl_rec, kl_fake, alpha=0.25, beta=2.0)) == pytest.approx(51.0)


def test_intro_hinge_has_no_gradient_beyond_the_margin():
    kl = torch.tensor([200.0, 50.0], requires_grad=True)
    loss, _ = intro_encoder_loss(torch.zeros(2), torch.zeros(2), kl, torch.full((2,), 500.0),
                                 margin=110.0, alpha=1.0, beta=1.0)
    loss.backward()
    assert kl.grad.tolist() == [0.0, -0.5]  # only the shape below the margin is pushed up
