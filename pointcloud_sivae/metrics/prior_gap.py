"""How far the aggregated posterior is from the prior: where the decoder was trained against where
prior samples land.

A VAE's decoder is trained on codes of the aggregated posterior ``q(z) = (1/M) sum_i q(z|x_i)`` of
its M training shapes; prior samples ``z ~ p(z) = N(0, sigma_p^2 I)`` decode well only where the two
overlap. When the posterior codes fill a small part of the prior ("holes in the prior", Rosca,
Lakshminarayanan & Mohamed 2018), prior samples land where no real shape was ever decoded. The
figures here measure that overlap from the encoder's posteriors alone (no decoding), so that
training can log them every validation and ``eval prior-gap`` can put them beside the samples.

All inputs are latent codes in latent units (the prior's std is ``sigma_p``); every figure is a
float.
"""

from __future__ import annotations

import math

import torch

from pointcloud_sivae.models.latent_density import posterior_draws

VARIANCE_SHARE = 0.9  # active_dims_90: principal directions holding this share of the posterior means' variance
MASS_QUANTILE = 0.05  # prior_mass_share: the density level below which 5 % of held-out shapes' codes fall
GAP_KEYS = ("active_dims_90", "aggregate_std_ratio", "posterior_std_ratio", "mean_norm_ratio", "kl_aggregate",
            "kl_posterior", "prior_mass_share")


def _check(mu: torch.Tensor, logvar: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if mu.dim() != 2 or mu.shape != logvar.shape or len(mu) == 0:
        raise ValueError(f"{name}: mu and logvar must both be (M, Z) with M >= 1, got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    mu, logvar = mu.detach().cpu().double(), logvar.detach().cpu().double()
    if not (mu.isfinite().all() and logvar.isfinite().all()):
        raise ValueError(f"{name}: the posterior means and log-variances must be finite")
    return mu, logvar


def log_aggregate_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
                          exclude_own: bool = False, chunk: int = 64) -> torch.Tensor:
    """``log q(z)`` of the aggregated posterior ``q = (1/M) sum_i N(mu_i, diag exp(logvar_i))``.

    Args:
        z: (K, Z) codes. mu, logvar: (M, Z) posteriors (float64 on the CPU, as :func:`prior_gap` passes them).
        exclude_own: z holds ``K = M * d`` draws, ``d`` per shape in shape order (as
            :func:`~pointcloud_sivae.models.latent_density.posterior_draws` returns them); each is scored under the other M - 1 shapes' mixture
            (leave-one-out), so that a training shape's own posterior does not count as overlap.
        chunk: codes per block; a block holds a (chunk, M, Z) float64 array (64 x 1024 x 128: 67 MB,
            what a validation of 1024 training shapes needs).

    Returns:
        (K,) float64 log densities, nats.
    """
    M, Z = mu.shape
    inv_var = (-logvar).exp()
    log_norm = -0.5 * (logvar.sum(1) + Z * math.log(2 * math.pi))  # (M,)
    out = []
    per_shape = len(z) // M if exclude_own else 0
    for start in range(0, len(z), chunk):
        zc = z[start:start + chunk].double()
        sq = ((zc[:, None, :] - mu[None]) ** 2 * inv_var[None]).sum(-1)  # (k, M)
        logp = log_norm[None] - 0.5 * sq
        if exclude_own:
            own = torch.arange(start, start + len(zc)) // per_shape
            logp[torch.arange(len(zc)), own] = -math.inf
        out.append(torch.logsumexp(logp, dim=1) - math.log(M - 1 if exclude_own else M))
    return torch.cat(out)


def prior_gap(mu: torch.Tensor, logvar: torch.Tensor, prior_std: float, *, held_out: tuple | None = None,
              num_draws: int = 1000, seed: int = 0) -> dict[str, float]:
    """The gap between the aggregated posterior of M training shapes and the prior ``N(0, sigma_p^2 I)``.

    Args:
        mu, logvar: (M, Z) posteriors of the training shapes, M >= 2.
        prior_std: sigma_p > 0.
        held_out: ``(mu, logvar)`` of held-out (val) shapes, or None: then the training shapes
            themselves, each scored without its own posterior (leave-one-out).
        num_draws: prior draws and aggregated-posterior draws of the Monte-Carlo estimates.
        seed: fixes every draw.

    Returns:
        ``active_dims_90``: principal directions holding 90 % of the posterior means' variance (of Z);
        ``aggregate_std_ratio``: the aggregated posterior's std along those directions (means'
        variance plus the mean posterior variance, law of total variance) over sigma_p, root mean
        square (1 when the codes the decoder reads spread as the prior does);
        ``posterior_std_ratio``: the median posterior std over sigma_p;
        ``mean_norm_ratio``: mean ||mu_i|| over a prior code's mean norm, E||z|| = sigma_p sqrt(2)
        Gamma((Z+1)/2) / Gamma(Z/2);
        ``kl_aggregate``: KL(q(z) || p(z)) in nats, Monte-Carlo over ``num_draws`` draws of q, with
        q's density the mixture itself (Hoffman & Johnson's "ELBO surgery" term; between
        ``kl_posterior`` - log M and ``kl_posterior``, up to Monte-Carlo noise); ``kl_posterior``: the
        mean KL(q(z|x) || p(z)) of the training shapes, closed form (the mutual information
        I(x; z) <= log M plus ``kl_aggregate``);
        ``prior_mass_share``: the share of prior draws where the aggregated posterior's density is
        at least that of the 5 % least likely held-out shapes' codes (one draw of each held-out
        posterior): the part of the prior where a real new shape's code could lie.

    Raises:
        ValueError: posteriors that are not finite (M, Z) pairs, M < 2, a held-out set of another
            Z, or a non-positive ``prior_std`` or ``num_draws``.

    Source: Hoffman & Johnson, "ELBO surgery", NIPS 2016 Workshop on Advances in Approximate Bayesian
    Inference (KL(q(z) || p(z)) and the mutual information); Rosca, Lakshminarayanan & Mohamed,
    "Distribution Matching in Variational Inference", 2018 (the prior holes this measures).
    """
    mu, logvar = _check(mu, logvar, "training posteriors")
    if len(mu) < 2:
        raise ValueError(f"the gap needs the posteriors of at least 2 training shapes, got {len(mu)}")
    if not prior_std > 0 or num_draws < 1:
        raise ValueError(f"prior_std and num_draws must be positive, got {prior_std} and {num_draws}")
    M, Z = mu.shape
    g = torch.Generator().manual_seed(seed)
    # the spread: principal directions of the posterior means, and the aggregate's std along them
    centred = mu - mu.mean(0)
    cov_mu = centred.T @ centred / (M - 1)
    eigval, eigvec = torch.linalg.eigh(cov_mu)
    eigval, eigvec = eigval.flip(0).clamp_min(0), eigvec.flip(1)
    k = int((eigval.cumsum(0) / eigval.sum().clamp_min(1e-300) < VARIANCE_SHARE).sum()) + 1
    mean_var = logvar.exp().mean(0)  # E_x[sigma^2(x)], diagonal
    along = eigval[:k] + (eigvec[:, :k] ** 2 * mean_var[:, None]).sum(0)  # aggregate variance on each direction
    std = (0.5 * logvar).exp()
    prior_norm = prior_std * math.sqrt(2) * math.exp(math.lgamma((Z + 1) / 2) - math.lgamma(Z / 2))
    # KL(q(z) || p(z)) by Monte Carlo over draws of q
    shapes = torch.randint(M, (num_draws,), generator=g)
    zq = mu[shapes] + std[shapes] * torch.randn((num_draws, Z), generator=g, dtype=torch.float64)
    log_prior = (-0.5 * (zq / prior_std) ** 2).sum(1) - Z * math.log(prior_std * math.sqrt(2 * math.pi))
    kl_agg = float((log_aggregate_density(zq, mu, logvar) - log_prior).mean())
    kl_post = float(0.5 * ((mu ** 2 + logvar.exp()) / prior_std ** 2 - 1 - logvar + 2 * math.log(prior_std)).sum(1).mean())
    # the prior's share where held-out codes could lie
    if held_out is None:
        level_codes = posterior_draws(mu, logvar, 1, generator=g)
        levels = log_aggregate_density(level_codes, mu, logvar, exclude_own=True)
    else:
        h_mu, h_logvar = _check(*held_out, "held-out posteriors")
        if h_mu.shape[1] != Z:
            raise ValueError(f"held-out posteriors have {h_mu.shape[1]} latent dimensions, the training ones {Z}")
        levels = log_aggregate_density(posterior_draws(h_mu, h_logvar, 1, generator=g), mu, logvar)
    zp = prior_std * torch.randn((num_draws, Z), generator=g, dtype=torch.float64)
    threshold = torch.quantile(levels, MASS_QUANTILE)
    return {
        "active_dims_90": float(k),
        "aggregate_std_ratio": float(along.mean().sqrt() / prior_std),
        "posterior_std_ratio": float(std.median() / prior_std),
        "mean_norm_ratio": float(mu.norm(dim=1).mean() / prior_norm),
        "kl_aggregate": kl_agg,
        "kl_posterior": kl_post,
        "prior_mass_share": float((log_aggregate_density(zp, mu, logvar) >= threshold).double().mean()),
    }
