"""The observation model, the ELBO and importance-weighted bounds, and AUROC."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from eval.ood import auroc
from pointcloud_sivae.likelihood import (
    fit_obs_std,
    importance_log_weights,
    log_likelihood_bounds,
    mixture_log_likelihood,
    score_clouds,
)


def test_mixture_log_likelihood_matches_scipy():
    rng = np.random.default_rng(0)
    x, y, sigma = rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 5, 3)), 0.3
    ours = mixture_log_likelihood(torch.from_numpy(x), torch.from_numpy(y), sigma).numpy()
    for b in range(2):
        dens = np.stack([multivariate_normal(y[b, j], sigma**2 * np.eye(3)).logpdf(x[b]) for j in range(5)])
        expected = (logsumexp(dens, axis=0) - math.log(5)).sum()
        assert ours[b] == pytest.approx(expected, rel=1e-10)
    perm = torch.randperm(7)  # a set density: the order of the points does not matter
    again = mixture_log_likelihood(torch.from_numpy(x[:, perm.numpy()]), torch.from_numpy(y[:, ::-1].copy()), sigma)
    np.testing.assert_allclose(again.numpy(), ours, rtol=1e-12)


def test_mixture_log_likelihood_refuses_bad_input():
    with pytest.raises(ValueError, match="obs_std must be positive"):
        mixture_log_likelihood(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), 0.0)
    with pytest.raises(ValueError, match=r"expected x \(B, N, 3\)"):
        mixture_log_likelihood(torch.zeros(1, 4, 2), torch.zeros(1, 4, 3), 0.1)


def _linear_gaussian(x, prior_std=0.7, obs_std=0.5):
    """p(z) = N(0, sp^2 I), p(x|z) = N(x; z, so^2 I): exact posterior and marginal."""
    sp2, so2 = prior_std**2, obs_std**2
    post_mu = sp2 / (sp2 + so2) * x
    post_var = sp2 * so2 / (sp2 + so2)
    log_px = multivariate_normal(np.zeros(x.shape[1]), (sp2 + so2) * np.eye(x.shape[1])).logpdf(x.numpy())

    def log_lik(z):
        return -0.5 * (((x - z) / obs_std) ** 2 + math.log(2 * math.pi * so2)).sum(-1)

    return post_mu, post_var, np.atleast_1d(log_px), log_lik


def test_bounds_are_exact_at_the_true_posterior_and_ordered_elsewhere():
    torch.manual_seed(0)
    x = torch.randn(6, 4, dtype=torch.float64)
    post_mu, post_var, log_px, log_lik = _linear_gaussian(x)
    logvar = torch.full_like(x, math.log(post_var))
    g = torch.Generator().manual_seed(1)
    elbo, iw = log_likelihood_bounds(importance_log_weights(log_lik, post_mu, logvar, 0.7, 32, g))
    np.testing.assert_allclose(elbo.numpy(), log_px, rtol=1e-10)  # constant weights: every bound is log p(x)
    np.testing.assert_allclose(iw.numpy(), log_px, rtol=1e-10)

    gaps = []
    for shift in (1.0, 0.5, 0.25, 0.1, 0.0):  # the posterior approaches the true one
        g = torch.Generator().manual_seed(2)
        log_w = importance_log_weights(log_lik, post_mu + shift, logvar + shift, 0.7, 256, g)
        elbo, iw = log_likelihood_bounds(log_w)
        assert (iw >= elbo - 1e-9).all()  # Jensen, with the same samples
        assert (iw.numpy() <= log_px + 0.05).all()  # a lower bound up to Monte Carlo error
        assert (log_px - iw.numpy()).mean() < (log_px - elbo.numpy()).mean()  # IW is the tighter one
        gaps.append(float((iw - elbo).mean()))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] == pytest.approx(0.0, abs=1e-9)


def test_more_importance_samples_tighten_the_bound():
    torch.manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64)
    post_mu, post_var, log_px, log_lik = _linear_gaussian(x)
    logvar = torch.full_like(x, math.log(post_var) + 1.0)  # too wide a posterior
    errors = []
    for k in (1, 16, 256):
        _, iw = log_likelihood_bounds(importance_log_weights(log_lik, post_mu, logvar, 0.7, k,
                                                             torch.Generator().manual_seed(3)))
        errors.append(float((log_px - iw.numpy()).mean()))
    assert errors[0] > errors[1] > errors[2] > -0.01


def test_importance_weights_refuse_bad_arguments():
    with pytest.raises(ValueError, match="num_samples must be at least 1"):
        importance_log_weights(lambda z: z.sum(-1), torch.zeros(1, 2), torch.zeros(1, 2), 1.0, 0)


def test_scores_of_a_trained_model_on_real_airplanes(trained_run, airplanes_256):
    from pointcloud_sivae.data.prepared import load_split
    from pointcloud_sivae.inference import Inference

    inf = Inference(trained_run, "cpu")
    test = load_split(airplanes_256, "airplane", "test").points
    sigma = fit_obs_std(inf.model, load_split(airplanes_256, "airplane", "train").points)
    recs = inf.model.decode(inf.model.encode(test)[0]).detach()

    def fit(s):
        return float(mixture_log_likelihood(test, recs, s).sum())
    assert fit(sigma) >= max(fit(sigma * 1.3), fit(sigma / 1.3))  # a maximum, up to the train/test shift
    s = score_clouds(inf.model, test, obs_std=sigma, num_samples=8, seed=0)
    assert set(s) == {"log_px_iw", "elbo", "kl", "rec_chamfer"}
    assert all(v.shape == (18,) and np.isfinite(v).all() for v in s.values())
    assert (s["log_px_iw"] >= s["elbo"]).all() and (s["kl"] > 0).all() and (s["rec_chamfer"] > 0).all()
    again = score_clouds(inf.model, test, obs_std=sigma, num_samples=8, seed=0)
    np.testing.assert_array_equal(again["log_px_iw"], s["log_px_iw"])  # seeded


def test_auroc_known_answers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 200), rng.normal(10, 1, 150)
    assert auroc(a, b) == 1.0 and auroc(b, a) == 0.0
    assert auroc(a, a) == pytest.approx(0.5, abs=1e-12)  # all ties count one half (sklearn: to rounding)
    x, y = rng.normal(size=40).round(1), rng.normal(0.5, 1, size=30).round(1)  # with ties
    pairs = (y[None, :] > x[:, None]).mean() + 0.5 * (y[None, :] == x[:, None]).mean()
    assert auroc(x, y) == pytest.approx(pairs, rel=1e-12)
    with pytest.raises(ValueError, match="needs scores for both sets"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        auroc([np.nan], [1.0])
