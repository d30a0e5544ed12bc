"""Per-shape log-likelihood estimates of a trained model: the ELBO and the importance-weighted bound.

**Observation model.** A Chamfer loss is not a normalised density, so ``log p(x)``
needs a stated ``p(x | z)``. Here a cloud ``X = {x_i}, i = 1..N`` is N i.i.d. draws
from the equal-weight isotropic Gaussian mixture centred at the decoded points
``Y = D(z) = {y_j}, j = 1..M``::

    log p(X | z) = sum_i log( (1/M) sum_j N(x_i; y_j, sigma^2 I_3) )

a proper density on R^(N x 3) for any ``sigma > 0``, independent of the order of
the points. For small ``sigma`` it tends to ``-(1/(2 sigma^2)) sum_i min_j
||x_i - y_j||^2 + const``: the one-sided Chamfer term the model was trained with.
``sigma`` (model-frame units) is a parameter; :func:`fit_obs_std` sets it by
maximum likelihood on the posterior-mean reconstructions of a split (the training
split, by default, in the commands).

**Estimates.** With ``z_k ~ q(z | x)``, ``k = 1..K`` and
``log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)``:

* ELBO ``= (1/K) sum_k log w_k`` (Monte Carlo, the same samples);
* importance-weighted bound ``log p_K(x) = log (1/K) sum_k w_k`` (Burda et al.,
  ICLR 2016), ``ELBO <= log p_K(x) <= log p(x)`` in expectation, tight as
  ``q`` approaches the true posterior or ``K`` grows. Computed from the same
  ``log w`` it is never below this ELBO (Jensen).

Both are in nats per shape. Source: Daniel & Tamar, CVPR 2021, section 5 (OOD
detection with the importance-weighted ``log p(x)``); Burda, Grosse & Salakhutdinov,
"Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from pointcloud_sivae.models.vae import reparameterize
from pointcloud_sivae.objectives import gaussian_kl
from pointcloud_sivae.ops.chamfer import chamfer_distance

LOG_2PI = math.log(2.0 * math.pi)


def mixture_log_likelihood(x: torch.Tensor, y: torch.Tensor, obs_std: float, chunk: int = 16) -> torch.Tensor:
    """``log p(X | Y)`` of the Gaussian-mixture observation model, per cloud.

    Args:
        x: (B, N, 3) observed clouds; y: (B, M, 3) decoded clouds (mixture centres).
        obs_std: ``sigma`` > 0, in the clouds' units.
        chunk: clouds per block (memory ``chunk * N * M`` floats).

    Returns:
        (B,) tensor in nats, the dtype of ``x``.

    Raises:
        ValueError: shapes that are not (B, N, 3) / (B, M, 3) with equal B, or ``obs_std <= 0``.
    """
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != 3 or y.shape[2] != 3:
        raise ValueError(f"expected x (B, N, 3) and y (B, M, 3), got {tuple(x.shape)} and {tuple(y.shape)}")
    if not obs_std > 0:
        raise ValueError(f"obs_std must be positive, got {obs_std}")
    n, m = x.shape[1], y.shape[1]
    const = -n * math.log(m) - 1.5 * n * (LOG_2PI + 2.0 * math.log(obs_std))
    out = []
    for xs, ys in zip(x.split(chunk), y.split(chunk)):
        d2 = (xs.pow(2).sum(-1, keepdim=True) - 2 * xs @ ys.transpose(1, 2) + ys.pow(2).sum(-1).unsqueeze(1))
        d2 = d2.clamp_min_(0.0)
        out.append(torch.logsumexp(d2.mul_(-0.5 / obs_std**2), dim=2).sum(dim=1))
    return torch.cat(out) + const


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last dimension: (B, Z) -> (B,)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def importance_log_weights(
    log_likelihood: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    prior_std: float,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)`` for ``z_k ~ q(z | x)``.

    Args:
        log_likelihood: maps latents (B, Z) to ``log p(x | z)`` (B,) for the B shapes.
        mu, logvar: (B, Z) posterior parameters.
        prior_std: ``sigma_p`` of the prior ``N(0, sigma_p^2 I)``.
        num_samples: K >= 1.
        generator: for reproducible ``z_k``.

    Returns:
        (K, B) tensor of log-weights in nats.

    Raises:
        ValueError: ``num_samples < 1`` or ``prior_std <= 0``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    if not prior_std > 0:
        raise ValueError(f"prior_std must be positive, got {prior_std}")
    prior_logvar = torch.full_like(mu, 2.0 * math.log(prior_std))
    rows = []
    for _ in range(num_samples):
        z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype))
        rows.append(log_likelihood(z) + gaussian_log_density(z, torch.zeros_like(mu), prior_logvar)
                    - gaussian_log_density(z, mu, logvar))
    return torch.stack(rows)


def log_likelihood_bounds(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ELBO, importance-weighted ``log p_K(x)``) from (K, B) log-weights; each (B,), nats."""
    k = log_w.shape[0]
    return log_w.mean(0), torch.logsumexp(log_w, dim=0) - math.log(k)


@torch.no_grad()
def fit_obs_std(model, points: torch.Tensor, batch_size: int = 64) -> float:
    """Maximum-likelihood ``sigma`` of the observation model on posterior-mean reconstructions.

    Maximises ``sum_shapes log p(X | D(mu(X)))`` over ``log sigma`` (bounded scalar
    search, scipy), with the model in eval mode.

    Args:
        model: a :class:`~pointcloud_sivae.models.vae.SoftIntroVAE`.
        points: (M, N, 3) model-frame clouds.

    Returns:
        ``sigma`` in model-frame units.
    """
    from scipy.optimize import minimize_scalar

    was_training = model.training
    model.eval()
    try:
        recs = torch.cat([model.decode(model.encode(c)[0]) for c in points.split(batch_size)])
    finally:
        model.train(was_training)

    def negative(log_sigma: float) -> float:
        return -float(mixture_log_likelihood(points, recs, math.exp(log_sigma)).double().sum())

    res = minimize_scalar(negative, bounds=(math.log(1e-4), math.log(1.0)), method="bounded",
                          options={"xatol": 1e-3})
    return float(math.exp(res.x))


@torch.no_grad()
def score_clouds(
    model,
    points: torch.Tensor,
    *,
    obs_std: float,
    num_samples: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    chamfer_backend: str = "auto",
) -> dict[str, np.ndarray]:
    """Per-shape likelihood scores of model-frame clouds under a trained model (eval mode).

    Args:
        model: a :class:`~pointcloud_sivae.models.vae.SoftIntroVAE`.
        points: (M, N, 3) float32 clouds, in the frame the model was trained in.
        obs_std: ``sigma`` of the observation model (see the module docstring).
        num_samples: K importance samples per shape.
        batch_size: shapes per block.
        seed: seeds the importance samples.
        chamfer_backend: of the reconstruction Chamfer distance
            (:func:`~pointcloud_sivae.ops.chamfer.resolve_backend`).

    Returns:
        ``{"log_px_iw": (M,), "elbo": (M,), "kl": (M,), "rec_chamfer": (M,)}`` float64 arrays:
        the importance-weighted ``log p(x)`` and the ELBO (nats), the KL of the posterior
        to the prior (nats), and the Chamfer distance of the posterior-mean reconstruction
        (squared L2, mean over points, model frame).
    """

    was_training = model.training
    model.eval()
    g = torch.Generator(device=points.device).manual_seed(seed)
    prior_std = model.prior_std
    out: dict[str, list] = {"log_px_iw": [], "elbo": [], "kl": [], "rec_chamfer": []}
    try:
        for x in points.split(batch_size):
            mu, logvar = model.encode(x)
            log_w = importance_log_weights(
                lambda z, x=x: mixture_log_likelihood(x, model.decode(z), obs_std), mu, logvar, prior_std,
                num_samples, g)
            elbo, iw = log_likelihood_bounds(log_w.double())
            out["elbo"].append(elbo)
            out["log_px_iw"].append(iw)
            out["kl"].append(gaussian_kl(mu, logvar, prior_std).double())
            out["rec_chamfer"].append(chamfer_distance(x, model.decode(mu), point_reduction="mean",
                                                  backend=chamfer_backend).double())
    finally:
        model.train(was_training)
    return {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
