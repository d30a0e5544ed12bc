"""Samplers of latent codes: the prior, or a density fitted to the posterior means after training.

A VAE's decoder is trained on codes of the aggregated posterior ``q(z) = mean_x q(z|x)``; where
that leaves parts of the prior without mass (the "prior hole"), prior samples decode to poor
shapes although reconstructions are good. Ex-post density estimation fits a Gaussian mixture to
the posterior means of the training set and samples it instead (Ghosh et al., "From Variational to
Deterministic Autoencoders", ICLR 2020, section 4; 10 full-covariance components there). The
fit is scikit-learn's ``GaussianMixture``; sampling is done here, so that a seed fixes the draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SAMPLERS = ("prior", "gmm")
DEFAULT_SAMPLER = "prior"  # the commands' --sampler default
DEFAULT_GMM_COMPONENTS = 10  # --gmm-components: Ghosh et al.'s count, and stage 7's val choice (docs/results.md)
REG_COVAR = 1e-4  # added to each covariance's diagonal: 0.25 % of the variance of the package's prior (std 0.2)


def sampler_of(args) -> tuple[str, int]:
    """``(sampler, gmm_components)`` of a command's parsed arguments; the defaults where the command
    has no sampler options (a sweep scores prior samples)."""
    return (getattr(args, "sampler", DEFAULT_SAMPLER), getattr(args, "gmm_components", DEFAULT_GMM_COMPONENTS))


def sampler_record(sampler: str, components: int) -> dict:
    """What a result file says of its sampler: ``{"sampler": ...}``, and for ``gmm`` its component
    count and how the mixture was fitted."""
    if sampler != "gmm":
        return {"sampler": sampler}
    return {"sampler": sampler, "gmm_components": components,
            "gmm": f"full covariances, reg_covar {REG_COVAR:g}, fitted to the posterior means of the train split "
                   "(Ghosh et al., ICLR 2020)"}


@dataclass(frozen=True)
class PosteriorGMM:
    """A Gaussian mixture over latent codes, fitted to posterior means.

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
            codes: (M, Z) posterior means of the training shapes.
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
