"""The gap between the aggregated posterior and the prior (``metrics.prior_gap``), on posteriors whose
answer is known."""

import math

import pytest
import torch

from pointcloud_sivae.metrics.prior_gap import log_aggregate_density, prior_gap

M, Z, SIGMA_P = 400, 32, 0.2


def _matched():
    """Posteriors whose aggregate is the prior itself: means of std 0.3 sigma_p, posterior std
    sqrt(1 - 0.09) sigma_p (the law of total variance)."""
    g = torch.Generator().manual_seed(0)
    mu = 0.3 * SIGMA_P * torch.randn(M, Z, generator=g)
    return mu, torch.full((M, Z), 2 * math.log(SIGMA_P * math.sqrt(1 - 0.09)))


def _gapped():
    """Codes spread over 5 dimensions at twice the prior's std, with narrow posteriors: a hole-ridden prior."""
    g = torch.Generator().manual_seed(1)
    mu = torch.zeros(M, Z)
    mu[:, :5] = 2 * SIGMA_P * torch.randn(M, 5, generator=g)
    return mu, torch.full((M, Z), 2 * math.log(0.25 * SIGMA_P))


def test_posteriors_that_aggregate_to_the_prior_show_no_gap():
    gap = prior_gap(*_matched(), SIGMA_P)
    assert gap["aggregate_std_ratio"] == pytest.approx(1.0, abs=0.02)
    assert gap["posterior_std_ratio"] == pytest.approx(math.sqrt(0.91))
    assert abs(gap["kl_aggregate"]) < 0.1 and gap["prior_mass_share"] > 0.9
    assert gap["active_dims_90"] > 0.8 * Z  # isotropic means: the variance is spread over every dimension


def test_a_gapped_aggregate_shows_its_spread_its_divergence_and_the_prior_it_leaves_empty():
    mu, logvar = _gapped()
    gap = prior_gap(mu, logvar, SIGMA_P)
    assert gap["active_dims_90"] == 5 and gap["aggregate_std_ratio"] == pytest.approx(2.0, rel=0.1)
    assert gap["posterior_std_ratio"] == pytest.approx(0.25)
    assert gap["kl_posterior"] - math.log(M) - 0.5 <= gap["kl_aggregate"] <= gap["kl_posterior"] + 0.5  # ELBO surgery
    assert gap["kl_aggregate"] > 10 and gap["prior_mass_share"] < 0.01
    held_out = prior_gap(mu, logvar, SIGMA_P, held_out=(mu[:50] + 0.01, logvar[:50]))
    assert held_out["prior_mass_share"] < 0.01 and held_out["kl_aggregate"] == gap["kl_aggregate"]  # same seed


def test_the_aggregate_density_is_the_mixture_and_leaves_each_shape_out_when_asked():
    mu, logvar = torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.log(torch.tensor([[0.25], [0.25]],
                                                                                              dtype=torch.float64))
    z = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    normal = lambda x, m: math.exp(-0.5 * (x - m) ** 2 / 0.25) / math.sqrt(2 * math.pi * 0.25)  # noqa: E731
    expected = [math.log(0.5 * (normal(0, 0) + normal(0, 1))), math.log(0.5 * (normal(1, 0) + normal(1, 1)))]
    torch.testing.assert_close(log_aggregate_density(z, mu, logvar), torch.tensor(expected, dtype=torch.float64))
    loo = [math.log(normal(0, 1)), math.log(normal(1, 0))]  # each draw under the other shape only
    torch.testing.assert_close(log_aggregate_density(z, mu, logvar, exclude_own=True),
                               torch.tensor(loo, dtype=torch.float64))


def test_bad_posteriors_are_named():
    mu, logvar = _matched()
    with pytest.raises(ValueError, match="at least 2 training shapes"):
        prior_gap(mu[:1], logvar[:1], SIGMA_P)
    with pytest.raises(ValueError, match="must be finite"):
        prior_gap(torch.full_like(mu, float("nan")), logvar, SIGMA_P)
    with pytest.raises(ValueError, match="held-out posteriors have 3 latent dimensions"):
        prior_gap(mu, logvar, SIGMA_P, held_out=(mu[:4, :3], logvar[:4, :3]))
    with pytest.raises(ValueError, match="prior_std and num_draws must be positive"):
        prior_gap(mu, logvar, 0.0)


def test_the_prior_gap_command_writes_both_tables(trained_run, tmp_path, capsys):
    import json

    from eval.__main__ import main as eval_main

    out = tmp_path / "gap.json"
    assert eval_main(["prior-gap", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "8",
                      "--num-draws", "50", "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["kind"] == "prior-gap" and set(r["gap"]) == set(r["gap_text"]) and r["num_samples"] == 8
    rows = r["prior_samples_by_code_distance"]
    assert sum(row["samples"] for row in rows) == 8 and all(row["train_distance_ratio"] > 0 for row in rows)
    assert [row["distance_from"] for row in rows] == sorted(row["distance_from"] for row in rows)
    printed = capsys.readouterr().out
    assert "KL(q(z) || p(z))" in printed and "train-distance-ratio" in printed
