"""The ex-post Gaussian-mixture samplers (``--sampler gmm``, ``gmm-aggregate``), the aggregated posterior
itself (``aggregated-posterior``), the prior's temperature, and the copying statistics that every
generation table carries (new shapes, typical shapes or copies)."""

import argparse
import json

import numpy as np
import pytest
import torch

from eval.__main__ import main as eval_main
from pointcloud_sivae.cli import add_sampler
from pointcloud_sivae.inference import Inference
from pointcloud_sivae.metrics.distances import pairwise_chamfer
from pointcloud_sivae.metrics.evaluator import GenerationEvaluator
from pointcloud_sivae.metrics.novelty import novelty_metrics
from pointcloud_sivae.models.latent_density import AggregatedPosterior, PosteriorGMM, Sampler, posterior_draws


def _two_clusters(n: int = 400, z: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.normal(-2.0, 0.1, (n // 4, z))  # a quarter of the codes here
    b = rng.normal(3.0, 0.3, (n - n // 4, z))
    return np.concatenate([a, b])


def test_the_mixture_recovers_two_clusters_and_samples_them_by_weight():
    gmm = PosteriorGMM.fit(_two_clusters(), 2)
    order = np.argsort(gmm.means[:, 0])
    np.testing.assert_allclose(gmm.weights[order], [0.25, 0.75], atol=1e-6)
    np.testing.assert_allclose(gmm.means[order, 0], [-2.0, 3.0], atol=0.05)
    z = gmm.sample(4000, seed=1)
    assert z.shape == (4000, 4) and z.dtype == torch.float32
    near_a = (z[:, 0] < 0.5).float().mean().item()
    assert near_a == pytest.approx(0.25, abs=0.03)
    assert z[z[:, 0] > 0.5, 0].std().item() == pytest.approx(0.3, rel=0.1)  # the component's own spread


def test_a_seed_fixes_the_draws():
    gmm = PosteriorGMM.fit(_two_clusters(), 3)
    torch.testing.assert_close(gmm.sample(10, seed=5), gmm.sample(10, seed=5))
    assert not torch.equal(gmm.sample(10, seed=5), gmm.sample(10, seed=6))


def test_bad_fits_are_refused():
    with pytest.raises(ValueError, match="lower --gmm-components"):
        PosteriorGMM.fit(np.zeros((5, 3)), 6)
    with pytest.raises(ValueError, match=r"finite \(M, Z\)"):
        PosteriorGMM.fit(np.full((5, 3), np.nan), 1)


def test_posterior_draws_follow_each_posterior_and_add_its_variance_to_the_means_spread():
    rng = np.random.default_rng(0)
    mu = torch.from_numpy(rng.normal(0.0, 0.5, (300, 3)))
    logvar = torch.log(torch.tensor([0.04, 0.25, 1.0], dtype=torch.float64)).expand(300, 3)
    z = posterior_draws(mu, logvar, draws=200, seed=3)
    assert z.shape == (300 * 200, 3) and z.dtype == torch.float64
    per_shape = z.reshape(300, 200, 3)
    np.testing.assert_allclose(per_shape.mean(1), mu, atol=0.3)  # 200 draws: 3.5 standard errors of std 1
    np.testing.assert_allclose((per_shape - mu[:, None]).std((0, 1)), [0.2, 0.5, 1.0], rtol=0.02)
    # the law of total variance: Cov(mu) + E[sigma^2] per dimension
    np.testing.assert_allclose(z.var(0), mu.var(0) + logvar[0].exp(), rtol=0.03)
    torch.testing.assert_close(posterior_draws(mu, logvar, 2, seed=3), posterior_draws(mu, logvar, 2, seed=3))
    assert not torch.equal(posterior_draws(mu, logvar, 2, seed=3), posterior_draws(mu, logvar, 2, seed=4))
    with pytest.raises(ValueError, match=r"both be \(M, Z\)"):
        posterior_draws(mu, logvar[:, :2])
    with pytest.raises(ValueError, match="at least 1"):
        posterior_draws(mu, logvar, draws=0)
    with pytest.raises(ValueError, match="finite"):  # the same checks as AggregatedPosterior.of
        posterior_draws(mu, torch.full_like(logvar, float("nan")))
    with pytest.raises(ValueError, match="M >= 1"):
        posterior_draws(mu[:0], logvar[:0])


def test_the_aggregated_posterior_picks_shapes_uniformly_and_draws_from_their_posteriors():
    mu = torch.tensor([[-3.0, 0.0], [0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    logvar = torch.log(torch.tensor([[0.01, 0.04], [0.04, 0.01], [0.09, 0.25]], dtype=torch.float64))
    q = AggregatedPosterior.of(mu, logvar)
    z = q.sample(6000, seed=2)
    assert z.shape == (6000, 2) and z.dtype == torch.float32
    shape = torch.bucketize(z[:, 0].contiguous(), torch.tensor([-1.5, 1.5]))  # which posterior each draw came from
    np.testing.assert_allclose(torch.bincount(shape, minlength=3).numpy() / 6000, [1 / 3] * 3, atol=0.025)
    for i in range(3):
        mine = z[shape == i].double()
        np.testing.assert_allclose(mine.mean(0), mu[i], atol=0.03)
        np.testing.assert_allclose(mine.std(0), logvar[i].mul(0.5).exp(), rtol=0.08)
    torch.testing.assert_close(q.sample(5, seed=7), q.sample(5, seed=7))
    assert not torch.equal(q.sample(5, seed=7), q.sample(5, seed=8))
    with pytest.raises(ValueError, match=r"both be \(M, Z\) with M >= 1"):
        AggregatedPosterior.of(mu, logvar[:, :1])
    with pytest.raises(ValueError, match="finite"):
        AggregatedPosterior.of(mu, torch.full_like(logvar, float("nan")))


def test_inference_draws_codes_from_the_prior_or_the_mixture(trained_run):
    inf = Inference(trained_run, "cpu")
    prior = inf.latents(6, seed=0)
    torch.testing.assert_close(prior, inf.prior(6, 0))
    z = inf.latents(6, seed=0, sampler=Sampler("gmm", 2))
    assert z.shape == (6, inf.model.z_dim)
    mu = inf.encode(inf.split("train").points.numpy()).numpy()
    # the mixture's codes lie where the training posterior means are (spread by reg_covar's 0.01 std here,
    # after one epoch), not at the prior's scale (std 0.2)
    assert np.abs(z.numpy() - mu.mean(0)).max() < 0.06 and prior.std().item() > 0.15
    assert inf.posterior_gmm(2) is inf.posterior_gmm(2)  # fitted once
    with pytest.raises(ValueError, match="not a mixture sampler"):
        inf.posterior_gmm(2, "prior")


def test_the_aggregate_mixture_holds_the_posterior_variance_that_the_means_mixture_leaves_out(trained_run):
    inf = Inference(trained_run, "cpu")
    mu, logvar = inf.model.posteriors(torch.from_numpy(inf.split("train").nonempty().points.numpy()))
    means, aggregate = inf.posterior_gmm(1, "gmm"), inf.posterior_gmm(1, "gmm-aggregate")
    assert aggregate is inf.posterior_gmm(1, "gmm-aggregate") and aggregate is not means
    cov = lambda g: (g.cholesky[0] @ g.cholesky[0].T).diagonal()  # noqa: E731
    # one component: the means' covariance, plus the posteriors' mean variance (10 draws per shape)
    np.testing.assert_allclose(cov(means), mu.double().var(0, correction=0) + 1e-4, rtol=1e-6)
    expected = mu.double().var(0) + logvar.double().exp().mean(0) + 1e-4
    assert abs(cov(aggregate).sum() / expected.sum().item() - 1) < 0.1
    z = inf.latents(4, seed=0, sampler=Sampler("gmm-aggregate", 1))
    assert z.shape == (4, inf.model.z_dim) and z.dtype == torch.float32


def test_generation_command_with_the_mixture(trained_run, tmp_path):
    assert eval_main(["generation", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "6",
                      "--sampler", "gmm", "--gmm-components", "3", "--emd", "none", "--device", "cpu",
                      "--progress", "false"]) == 0
    r = json.loads((trained_run / "eval" / "generation_val_pointflow_gmm3.json").read_text())
    assert r["sampler"] == "gmm" and r["gmm_components"] == 3 and 0 < r["metrics"]["COV-CD"]["mean"] <= 1
    assert r["num_train"] > 0 and "Meehan" in r["copying"] and 0 <= r["metrics"]["copy-share"]["mean"] <= 1
    assert r["metrics"]["train-distance-ratio"]["mean"] > 0 and r["metrics"]["nn-train-ratio"]["mean"] > 0
    assert eval_main(["generation", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "6",
                      "--sampler", "gmm-aggregate", "--gmm-components", "2", "--emd", "none", "--device", "cpu",
                      "--progress", "false"]) == 0
    r = json.loads((trained_run / "eval" / "generation_val_pointflow_gmmagg2.json").read_text())
    assert r["sampler"] == "gmm-aggregate" and r["gmm_components"] == 2 and "draws per shape" in r["gmm"]
    assert eval_main(["generation", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "6",
                      "--sampler", "aggregated-posterior", "--emd", "none", "--device", "cpu",
                      "--progress", "false"]) == 0
    r = json.loads((trained_run / "eval" / "generation_val_pointflow_aggpost.json").read_text())
    assert r["sampler"] == "aggregated-posterior" and "gmm_components" not in r
    assert "uniformly at random" in r["aggregated_posterior"] and 0 < r["metrics"]["COV-CD"]["mean"] <= 1


def test_inference_samples_the_aggregated_posterior_of_its_training_shapes(trained_run):
    inf = Inference(trained_run, "cpu")
    mu, logvar = inf.model.posteriors(torch.from_numpy(inf.split("train").nonempty().points.numpy()))
    torch.testing.assert_close(inf.train_posteriors(), (mu, logvar))
    assert inf.train_posteriors() is inf.train_posteriors() and inf.aggregated_posterior() is inf.aggregated_posterior()
    z = inf.latents(200, seed=0, sampler=Sampler("aggregated-posterior", 999))  # components: not used
    assert z.shape == (200, inf.model.z_dim) and z.dtype == torch.float32
    torch.testing.assert_close(z, AggregatedPosterior.of(mu, logvar).sample(200, seed=0))
    assert not torch.equal(z, inf.latents(200, seed=1, sampler=Sampler("aggregated-posterior")))


def _blobs(rng, n: int, base: np.ndarray, spread: float = 0.25) -> np.ndarray:
    """``n`` clouds drawn as the data set's shapes are: a common base shape stretched along each axis
    by a random factor (about 1 +- ``spread``), its points jittered a little."""
    stretch = rng.normal(1.0, spread, size=(n, 1, 3))
    return (base * stretch + 0.01 * rng.normal(size=(n, 64, 3))).astype(np.float32)


def _copying(sample, train, ref) -> dict[str, float]:
    ev = GenerationEvaluator(ref, {"method": "none"}, protocol="none", emd="none", chamfer_backend="numba",
                             jsd_allow_outside=True, train=train)
    return ev(sample)


def test_the_copying_statistics_tell_copies_new_and_typical_shapes_apart():
    rng = np.random.default_rng(0)
    base = rng.uniform(-0.5, 0.5, size=(1, 64, 3))
    train, ref = _blobs(rng, 200, base), _blobs(rng, 100, base)
    copies = train[:100] + 1e-3 * rng.normal(size=(100, 64, 3)).astype(np.float32)
    new = _blobs(rng, 100, base)
    typical = _blobs(rng, 100, base, spread=0.05)  # shapes near the mean shape, the dense middle of the data
    c, n, t = _copying(copies, train, ref), _copying(new, train, ref), _copying(typical, train, ref)
    assert c["train-distance-ratio"] < 0.05 and c["copy-share"] == 1.0 and c["nn-train-ratio"] < 0.05
    assert 0.75 < n["train-distance-ratio"] < 1.3 and n["copy-share"] <= 0.2 and 0.75 < n["nn-train-ratio"] < 1.35
    # typical shapes: nearer the training set than new shapes are, but no nearer it than the held-out set
    assert t["train-distance-ratio"] < 0.8 and t["nn-train-ratio"] > 0.7 and t["COV-CD"] < n["COV-CD"] / 2


def test_the_copying_statistics_from_their_matrices():
    D_rt = np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0], [4.0, 7.0]])  # held-out: nearest train 1, 2, 3, 4
    D_rr = np.array([[0, 2, 2, 2], [2, 0, 2, 2], [2, 2, 0, 2], [2, 2, 2, 0.0]])  # nearest other: 2 each
    D_st = np.array([[0.5, 9.0], [1.0, 9.0], [5.0, 9.0]])  # nearest train 0.5, 1, 5: median 1
    D_sr = np.array([[1.0, 3, 3, 3], [2.0, 3, 3, 3], [2.5, 3, 3, 3]])
    m = novelty_metrics(D_st, D_rt, D_sr, D_rr)
    assert m["train-distance-ratio"] == pytest.approx(1.0 / 2.5)  # median 1 over the held-out median 2.5
    assert m["copy-share"] == pytest.approx(2 / 3)  # 0.5 and 1 lie below the held-out 10 % quantile, 1.3
    assert m["nn-train-ratio"] == pytest.approx(0.5 / 1.25)  # median(0.5, 0.5, 2) over median(.5, 1, 1.5, 2)
    with pytest.raises(ValueError, match="at least 2 reference shapes"):
        novelty_metrics(D_st[:, :1], D_rt[:1, :1], D_sr[:, :1], D_rr[:1, :1])
    with pytest.raises(ValueError, match="shapes disagree"):
        novelty_metrics(D_st, D_rt[:, :1], D_sr, D_rr)


def test_the_evaluator_computes_the_training_matrix_once_and_in_the_protocols_frame():
    rng = np.random.default_rng(1)
    base = rng.uniform(-0.5, 0.5, size=(1, 64, 3))
    train, ref, sample = _blobs(rng, 12, base), _blobs(rng, 8, base), _blobs(rng, 8, base)
    ev = GenerationEvaluator(ref, {"method": "none"}, protocol="none", emd="none", chamfer_backend="numba",
                             jsd_allow_outside=True, train=train)
    first = ev(sample)
    D_rt = ev._D_rt
    assert ev(sample) == first and ev._D_rt is D_rt
    expected = novelty_metrics(pairwise_chamfer(sample, train, backend="numba"),
                               pairwise_chamfer(ref, train, backend="numba"),
                               pairwise_chamfer(sample, ref, backend="numba"), pairwise_chamfer(ref, backend="numba"))
    assert {k: first[k] for k in expected} == pytest.approx(expected)
    assert "copy-share" not in GenerationEvaluator(ref, {"method": "none"}, protocol="none", emd="none",
                                                   chamfer_backend="numba", jsd_allow_outside=True)(sample)


def test_commands_without_sampler_options_get_the_cli_defaults():
    p = argparse.ArgumentParser()
    add_sampler(p)
    assert Sampler.of(argparse.Namespace()) == Sampler.of(p.parse_args([])) == Sampler("prior", 10, 1.0)  # a sweep's
    assert Sampler.of(p.parse_args(["--sampler", "gmm", "--gmm-components", "30"])) == Sampler("gmm", 30)
    assert Sampler.of(p.parse_args(["--sampler", "gmm-aggregate"])) == Sampler("gmm-aggregate", 10)
    assert Sampler.of(p.parse_args(["--sampler", "aggregated-posterior"])) == Sampler("aggregated-posterior", 10)
    assert Sampler.of(p.parse_args(["--temperature", "0.7"])) == Sampler("prior", 10, 0.7)
    assert Sampler().record() == {"sampler": "prior"} and Sampler(temperature=0.5).record()["temperature"] == 0.5
    assert set(Sampler("aggregated-posterior").record()) == {"sampler", "aggregated_posterior"}
    assert Sampler("aggregated-posterior").label == "aggregated-posterior" and Sampler("gmm", 3).label == "gmm 3"
    assert Sampler(temperature=0.7).label == "prior T=0.7" and Sampler().label == "prior"
    assert [Sampler().file_tag, Sampler(temperature=0.7).file_tag, Sampler("gmm-aggregate", 100).file_tag] == \
        ["", "_T0.7", "_gmmagg100"]
    assert "posterior means" in Sampler("gmm").record()["gmm"]
    assert "aggregated" in Sampler("gmm-aggregate", 3).record()["gmm"]
    for s in (Sampler(), Sampler(temperature=0.7), Sampler("gmm", 30), Sampler("gmm-aggregate", 100),
              Sampler("aggregated-posterior")):  # a result file's record names its sampler again
        assert Sampler.of_record(s.record()) == s
    assert Sampler.of_record({}) == Sampler()  # result files from before the sampler options: the prior
    assert [Sampler().text, Sampler(temperature=0.7).text] == ["prior samples", "prior samples at temperature 0.7"]
    assert Sampler("gmm-aggregate", 100).text.startswith("codes from a 100-component Gaussian mixture")
    assert Sampler("aggregated-posterior").text.startswith("codes from the aggregated posterior")
    for bad in (["--temperature", "0"], ["--temperature", "-1"], ["--temperature", "nan"], ["--temperature", "1e9"],
                ["--gmm-components", "0"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    for name in ("prior", "aggregated-posterior"):  # an option that would do nothing is refused (issue 43)
        with pytest.raises(ValueError, match=f"got --sampler {name} with --gmm-components 30; drop one"):
            Sampler.of(p.parse_args(["--sampler", name, "--gmm-components", "30"]))


def test_a_sampler_that_cannot_be_drawn_is_refused_with_what_to_change():
    with pytest.raises(ValueError, match="unknown sampler 'flow'"):
        Sampler("flow")
    with pytest.raises(ValueError, match="applies to --sampler prior only"):
        Sampler("gmm-aggregate", 100, 0.7)
    for t in (0.0, -0.5, 4.5, 1e9, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"must be in \(0, 4\]"):
            Sampler(temperature=t)
    assert Sampler(temperature=4.0).temperature == 4.0
    with pytest.raises(ValueError, match="at least 1"):
        Sampler("gmm", 0)


def test_the_prior_at_temperature_t_scales_the_same_draws_by_t(trained_run, tmp_path):
    """Glow's temperature: z ~ N(0, (T sigma_p)^2 I); with one seed the codes are T times the T = 1 codes,
    so the decoded clouds change with T alone."""
    inf = Inference(trained_run, "cpu")
    z1 = inf.latents(64, seed=3)
    z_half = inf.latents(64, seed=3, sampler=Sampler(temperature=0.5))
    torch.testing.assert_close(z_half, 0.5 * z1, rtol=0, atol=0)
    assert abs(z_half.std().item() / (0.5 * inf.model.prior_std) - 1) < 0.05
    assert eval_main(["generation", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "6",
                      "--temperature", "0.5", "--emd", "none", "--device", "cpu", "--progress", "false"]) == 0
    r = json.loads((trained_run / "eval" / "generation_val_pointflow_T0.5.json").read_text())
    assert r["sampler"] == "prior" and r["temperature"] == 0.5 and 0 < r["metrics"]["COV-CD"]["mean"] <= 1
    assert eval_main(["generation", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "6",
                      "--sampler", "gmm", "--temperature", "0.5", "--emd", "none", "--device", "cpu",
                      "--progress", "false"]) != 0
