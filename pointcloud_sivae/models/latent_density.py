"""Samplers of latent codes: the prior (at a temperature), or a density fitted to the posteriors after training.

A VAE's decoder is trained on codes of the aggregated posterior ``q(z) = mean_x q(z|x)``; where
that leaves parts of the prior without mass (the "prior hole"), prior samples decode to poor
shapes although reconstructions are good. Ex-post density estimation fits a Gaussian mixture to
the posterior means of the training set and samples it instead (Ghosh et al., "From Variational to
Deterministic Autoencoders", ICLR 2020, section 4; 10 full-covariance components there). The
fit is scikit-learn's ``GaussianMixture``; sampling is done here, so that a seed fixes the draws.

Ghosh et al. fit the means because their autoencoders are deterministic. A VAE's decoder is trained
on draws ``z ~ q(z|x) = N(mu(x), diag sigma^2(x))``, whose covariance over the training set is
``Cov(mu) + E[diag sigma^2]`` (the law of total variance), so a mixture of the means alone holds only
part of the aggregated posterior's spread. ``gmm-aggregate`` fits the same mixture to
:data:`AGGREGATE_DRAWS` draws from every training shape's posterior instead (docs/results.md,
stage 14). ``aggregated-posterior`` samples the aggregated posterior itself, with no fit: a training
shape uniformly at random, then a draw from its posterior (:class:`AggregatedPosterior`; the limit
of the ``gmm-aggregate`` mixtures as their component count grows, docs/results.md, stage 20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# The samplers that fit a mixture (and take --gmm-components), with the codes each is fitted to.
FITTED_TO = {"gmm": "posterior means", "gmm-aggregate": "posterior draws (the aggregated posterior)"}
MIXTURES = tuple(FITTED_TO)
AGGREGATED_POSTERIOR = "aggregated-posterior"  # q(z) = mean_x q(z|x) over the training shapes, sampled exactly
AGGREGATED_POSTERIOR_TEXT = ("the aggregated posterior of the train split: a training shape uniformly at random, "
                             "then a draw from its posterior q(z|x)")
SAMPLERS = ("prior", *MIXTURES, AGGREGATED_POSTERIOR)
DEFAULT_SAMPLER = "prior"  # the commands' --sampler default
DEFAULT_GMM_COMPONENTS = 10  # --gmm-components: Ghosh et al.'s count (the main job's gmm-aggregate takes 100, stage 20)
REG_COVAR = 1e-4  # added to each covariance's diagonal: 0.25 % of the variance of the package's prior (std 0.2)
AGGREGATE_DRAWS = 10  # gmm-aggregate: posterior draws per training shape that the mixture is fitted to
AGGREGATE_SEED = 0  # ... and the seed of those draws, so that a run's mixture is fixed
MAX_TEMPERATURE = 4.0  # beyond, prior codes lie 4+ prior stds out in every dimension: no code a decoder was trained on


@dataclass(frozen=True)
class Sampler:
    """Where the latent codes of generated clouds come from, as the commands' ``--sampler``,
    ``--gmm-components`` and ``--temperature`` give it.

    Attributes:
        name: one of :data:`SAMPLERS`.
        components: K of a ``gmm`` / ``gmm-aggregate`` mixture, >= 1 (unused by the other samplers).
        temperature: T > 0 of the prior: codes ``z ~ N(0, (T sigma_p)^2 I)``, the prior's standard
            deviation scaled by T (sampling "at temperature T", Kingma & Dhariwal, "Glow", NeurIPS 2018,
            section 5; Vahdat & Kautz, "NVAE", NeurIPS 2020). 1 is the model's own prior; below 1 the
            codes are drawn nearer the prior's mode. The same seed gives T times the codes of T = 1.

    Raises:
        ValueError: an unknown name, K < 1, T not a positive finite number, or T != 1 with a sampler
            other than the prior (a mixture's spread is fitted to the posteriors, not scaled).
    """

    name: str = DEFAULT_SAMPLER
    components: int = DEFAULT_GMM_COMPONENTS
    temperature: float = 1.0

    def __post_init__(self):
        if self.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.name!r}; choose one of {', '.join(SAMPLERS)}")
        if self.components < 1:
            raise ValueError(f"--gmm-components must be at least 1, got {self.components}")
        if not (math.isfinite(self.temperature) and 0 < self.temperature <= MAX_TEMPERATURE):
            raise ValueError(f"--temperature must be in (0, {MAX_TEMPERATURE:g}], got {self.temperature:g}: it scales "
                             "the prior's standard deviation, and codes further out lie where the decoder was never "
                             "trained (their clouds are no shapes)")
        if self.temperature != 1 and self.name != "prior":
            raise ValueError(f"--temperature scales the prior's standard deviation and applies to --sampler prior "
                             f"only, got --sampler {self.name} with --temperature {self.temperature:g}; drop one")

    @classmethod
    def of(cls, args) -> "Sampler":
        """The sampler of a command's parsed arguments; the defaults (the model's prior) where the
        command has no sampler options (a sweep scores prior samples).

        Raises:
            ValueError: ``--gmm-components`` given with a sampler that fits no mixture (it would do nothing),
                or a bad sampler (see the class)."""
        name, components = getattr(args, "sampler", DEFAULT_SAMPLER), getattr(args, "gmm_components", None)
        if components is not None and name not in MIXTURES:
            raise ValueError(f"--gmm-components sets the mixture of --sampler {' or '.join(MIXTURES)} only, got "
                             f"--sampler {name} with --gmm-components {components}; drop one")
        return cls(name, DEFAULT_GMM_COMPONENTS if components is None else components, getattr(args, "temperature", 1.0))

    @classmethod
    def of_record(cls, record: dict) -> "Sampler":
        """The sampler that a result file's :meth:`record` describes (a file without one: the prior)."""
        return cls(record.get("sampler", DEFAULT_SAMPLER), record.get("gmm_components", DEFAULT_GMM_COMPONENTS),
                   record.get("temperature", 1.0))

    @property
    def text(self) -> str:
        """How the codes are drawn, in words, for a table's caption."""
        if self.name == "prior":
            return f"prior samples at temperature {self.temperature:g}" if self.temperature != 1 else "prior samples"
        if self.name == AGGREGATED_POSTERIOR:
            return f"codes from {AGGREGATED_POSTERIOR_TEXT}"
        return (f"codes from a {self.components}-component Gaussian mixture fitted to the training split's "
                f"{FITTED_TO[self.name]}")

    @property
    def label(self) -> str:
        """In a few words, for tables: ``prior``, ``prior T=0.7``, ``gmm 10``, ``gmm-aggregate 100``."""
        if self.name in MIXTURES:
            return f"{self.name} {self.components}"
        return f"prior T={self.temperature:g}" if self.temperature != 1 else self.name

    @property
    def file_tag(self) -> str:
        """A suffix for result files: ``""`` (the prior), ``_T0.7``, ``_gmm10``, ``_gmmagg100``, ``_aggpost``."""
        tag = {"prior": "", "gmm": "_gmm", "gmm-aggregate": "_gmmagg", AGGREGATED_POSTERIOR: "_aggpost"}[self.name]
        if self.name in MIXTURES:
            tag += str(self.components)
        return tag + (f"_T{self.temperature:g}" if self.temperature != 1 else "")

    def record(self) -> dict:
        """What a result file says of it: ``{"sampler": ...}``; the prior's temperature when not 1, a
        mixture's component count and how it was fitted, what ``aggregated-posterior`` draws."""
        if self.name == AGGREGATED_POSTERIOR:
            return {"sampler": self.name, "aggregated_posterior": AGGREGATED_POSTERIOR_TEXT}
        if self.name not in MIXTURES:
            return {"sampler": self.name, **({"temperature": self.temperature} if self.temperature != 1 else {})}
        fitted_to = ("the posterior means of the train split (Ghosh et al., ICLR 2020)" if self.name == "gmm" else
                     f"{AGGREGATE_DRAWS} draws per shape from the posteriors q(z|x) of the train split (seed "
                     f"{AGGREGATE_SEED}): the aggregated posterior")
        return {"sampler": self.name, "gmm_components": self.components,
                "gmm": f"full covariances, reg_covar {REG_COVAR:g}, fitted to {fitted_to}"}


def _checked_posteriors(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``mu`` and ``logvar`` as float64 on the CPU, after checking that they are both finite (M, Z)
    with M >= 1 (raises ValueError otherwise)."""
    if mu.dim() != 2 or mu.shape != logvar.shape or len(mu) == 0:
        raise ValueError(f"mu and logvar must both be (M, Z) with M >= 1, got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    mu, logvar = mu.detach().cpu().double(), logvar.detach().cpu().double()
    if not (mu.isfinite().all() and logvar.isfinite().all()):
        raise ValueError("the posterior means and log-variances must be finite")
    return mu, logvar


def posterior_draws(mu: torch.Tensor, logvar: torch.Tensor, draws: int = AGGREGATE_DRAWS,
                    seed: int = AGGREGATE_SEED, generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes from the aggregated posterior of a set of shapes: ``draws`` samples of every posterior
    ``N(mu_i, diag exp(logvar_i))``, fixed by ``seed`` (Kingma & Welling's reparameterisation).

    Args:
        mu, logvar: (M, Z) posterior means and log-variances (latent units), as the encoder returns them.
        draws: samples per shape, >= 1.
        generator: a CPU generator to draw from (then ``seed`` is not used): a caller's stream of draws.

    Returns:
        (M * draws, Z) float64 codes on the CPU, shape by shape (``draws`` rows per shape).

    Raises:
        ValueError: ``mu`` and ``logvar`` not both finite (M, Z) with M >= 1, or ``draws`` < 1.
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    mu, logvar = _checked_posteriors(mu, logvar)
    std = (0.5 * logvar).exp()
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    eps = torch.randn((len(mu), draws, mu.shape[1]), generator=generator, dtype=torch.float64)
    return (mu[:, None] + std[:, None] * eps).reshape(-1, mu.shape[1])


@dataclass(frozen=True)
class PosteriorGMM:
    """A Gaussian mixture over latent codes, fitted to posterior means or to posterior draws.

    Attributes:
        weights: (K,) mixture weights, summing to 1. means: (K, Z). cholesky: (K, Z, Z) lower
            Cholesky factors of the component covariances (float64, latent units).
    """

    weights: np.ndarray
    means: np.ndarray
    cholesky: np.ndarray

    @classmethod
    def fit(cls, codes: np.ndarray | torch.Tensor, components: int, *, seed: int = 0,
            reg_covar: float = REG_COVAR) -> "PosteriorGMM":
        """Fit ``components`` full-covariance Gaussians to ``codes`` (EM, k-means initialisation).

        Args:
            codes: (M, Z) posterior means of the training shapes (``gmm``), or draws from their
                posteriors (``gmm-aggregate``, :func:`posterior_draws`).
            components: K, 1 <= K <= M.
            seed: the fit's ``random_state`` (k-means initialisation).
            reg_covar: added to every covariance's diagonal, latent units squared (> 0; default
                :data:`REG_COVAR`).

        Returns:
            The fitted mixture.

        Raises:
            ValueError: ``codes`` not a finite (M, Z) array, or K outside 1..M.
        """
        x = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
        if x.ndim != 2 or not np.isfinite(x).all():
            raise ValueError(f"codes must be a finite (M, Z) array, got shape {x.shape}")
        if not 1 <= components <= len(x):
            raise ValueError(f"a mixture of {components} components needs 1 to {len(x)} (the number of codes); "
                             "lower --gmm-components")
        if not reg_covar > 0:
            raise ValueError(f"reg_covar must be positive, got {reg_covar}")
        from sklearn.mixture import GaussianMixture

        g = GaussianMixture(components, covariance_type="full", reg_covar=reg_covar, random_state=seed,
                            n_init=1, max_iter=200).fit(x)
        return cls(g.weights_ / g.weights_.sum(), g.means_, np.linalg.cholesky(g.covariances_))

    @property
    def components(self) -> int:
        return len(self.weights)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` codes (n, Z), float32: a component by its weight, then its Gaussian; fixed by ``seed``."""
        rng = np.random.default_rng(seed)
        k = rng.choice(self.components, size=n, p=self.weights)
        eps = rng.standard_normal((n, self.means.shape[1]))
        z = self.means[k] + np.einsum("nij,nj->ni", self.cholesky[k], eps)
        return torch.from_numpy(z.astype(np.float32))


@dataclass(frozen=True)
class AggregatedPosterior:
    """The aggregated posterior ``q(z) = (1/M) sum_i N(mu_i, diag sigma_i^2)`` of M training shapes,
    the density of the codes a VAE's decoder is trained on (Makhzani et al., "Adversarial
    Autoencoders", 2016; Hoffman & Johnson, "ELBO surgery", 2016), sampled exactly: a shape
    uniformly at random, then a draw from its posterior.

    Attributes:
        mu: (M, Z) posterior means. std: (M, Z) posterior standard deviations (float64, latent units).
    """

    mu: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, mu: torch.Tensor, logvar: torch.Tensor) -> "AggregatedPosterior":
        """From the encoder's (M, Z) posterior means and log-variances.

        Raises:
            ValueError: ``mu`` and ``logvar`` not both (M, Z) with M >= 1, or not finite.
        """
        mu_, logvar_ = (t.numpy() for t in _checked_posteriors(mu, logvar))
        return cls(mu_, np.exp(0.5 * logvar_))

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` codes (n, Z), float32: a shape uniformly at random, then its posterior; fixed by ``seed``."""
        rng = np.random.default_rng(seed)
        i = rng.integers(len(self.mu), size=n)
        z = self.mu[i] + self.std[i] * rng.standard_normal((n, self.mu.shape[1]))
        return torch.from_numpy(z.astype(np.float32))
