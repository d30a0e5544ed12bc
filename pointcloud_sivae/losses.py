"""The Soft-IntroVAE objectives as pure functions of per-shape tensors.

No module, optimiser or ``.backward()`` here: the trainer decides what is frozen
and detached, these functions only do the arithmetic of METHOD.md section 1.
Inputs are per-shape values of shape (B,); ``rec_*`` are reconstruction losses
(Chamfer distance, summed over points in the trainer) and ``kl_*`` are KL
divergences to the prior, summed over latent dimensions.
"""

from __future__ import annotations

import math

import torch


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, prior_std: float = 1.0) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, prior_std^2 I))`` per sample.

    Args:
        mu, logvar: (B, Z) float tensors, posterior mean and log-variance.
        prior_std: standard deviation ``sigma_p`` of the isotropic Gaussian prior.

    Returns:
        (B,) tensor in nats, summed over the Z latent dimensions.

    Raises:
        ValueError: mismatched shapes or a non-positive ``prior_std``.

    Source: closed form of the Gaussian KL; Kingma & Welling, ICLR 2014 (appendix B),
    generalised to a prior of variance ``sigma_p^2``.
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"mu and logvar must both be (B, Z), got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    if prior_std <= 0:
        raise ValueError(f"prior_std must be positive, got {prior_std}")
    log_prior_var = 2.0 * math.log(prior_std)
    prior_var = prior_std**2
    per_dim = (logvar.exp() + mu.pow(2)) / prior_var - 1.0 - logvar + log_prior_var
    return 0.5 * per_dim.sum(dim=1)


def vae_loss(rec_real: torch.Tensor, kl_real: torch.Tensor, *, scale: float, beta_rec: float, beta_kl: float):
    """Plain VAE (negative, weighted ELBO) loss, used for warm-up epochs.

    ``L = s * (b_rec * mean L_r(x) + b_kl * mean KL(x))``.

    Returns:
        Scalar loss tensor.
    """
    return scale * (beta_rec * rec_real.mean() + beta_kl * kl_real.mean())


def soft_intro_encoder_loss(
    rec_real: torch.Tensor,
    kl_real: torch.Tensor,
    rec_rec: torch.Tensor,
    kl_rec: torch.Tensor,
    rec_fake: torch.Tensor,
    kl_fake: torch.Tensor,
    *,
    scale: float,
    beta_rec: float,
    beta_kl: float,
    beta_neg: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Soft-IntroVAE encoder objective.

    ``L_E = s (b_rec L_r(x) + b_kl KL(x))
    + 1/4 mean exp(-2 s (b_rec L_r(x_r) + b_neg KL(x_r)))
    + 1/4 mean exp(-2 s (b_rec L_r(x_f) + b_neg KL(x_f)))``,
    where ``L_r(x_r)``, ``KL(x_r)`` are the reconstruction loss and KL of the
    re-encoded reconstruction, and likewise for the fake batch ``x_f``.

    Args:
        rec_real, kl_real: (B,) reconstruction loss and KL of the real batch.
        rec_rec, kl_rec: (B,) the same for the (detached) reconstructions.
        rec_fake, kl_fake: (B,) the same for the (detached) prior samples.
        scale: ``s = 1 / (3 N)``; beta_rec, beta_kl, beta_neg: the paper's weights.

    Returns:
        The scalar loss and its terms (``real``, ``expelbo_rec``, ``expelbo_fake``),
        each the batch mean of ``exp(...)`` for the two exponential terms.

    Source: Daniel & Tamar, "Soft-IntroVAE", CVPR 2021, eq. (6) and Algorithm 1.
    """
    real = scale * (beta_rec * rec_real.mean() + beta_kl * kl_real.mean())
    expelbo_rec = torch.exp(-2.0 * scale * (beta_rec * rec_rec + beta_neg * kl_rec)).mean()
    expelbo_fake = torch.exp(-2.0 * scale * (beta_rec * rec_fake + beta_neg * kl_fake)).mean()
    loss = real + 0.25 * (expelbo_rec + expelbo_fake)
    return loss, {"real": real, "expelbo_rec": expelbo_rec, "expelbo_fake": expelbo_fake}


def soft_intro_decoder_loss(
    rec_real: torch.Tensor,
    kl_rec: torch.Tensor,
    kl_fake: torch.Tensor,
    rec_rec: torch.Tensor,
    rec_fake: torch.Tensor,
    *,
    scale: float,
    beta_rec: float,
    beta_kl: float,
    gamma_r: float,
) -> torch.Tensor:
    """Soft-IntroVAE decoder objective.

    ``L_D = s (b_rec L_r(x) + b_kl/2 (KL(x_r) + KL(x_f))
    + gamma_r b_rec/2 (L_r(x_r) + L_r(x_f)))``, all batch means.

    Args:
        rec_real: (B,) reconstruction loss of the real batch.
        kl_rec, kl_fake: (B,) KL of the re-encoded reconstructions and prior samples.
        rec_rec, rec_fake: (B,) their reconstruction losses.
        scale, beta_rec, beta_kl, gamma_r: ``s = 1/(3N)`` and the paper's weights.

    Returns:
        Scalar loss tensor.

    Source: Daniel & Tamar, "Soft-IntroVAE", CVPR 2021, eq. (7) and Algorithm 1.
    """
    return scale * (
        beta_rec * rec_real.mean()
        + beta_kl * 0.5 * (kl_rec.mean() + kl_fake.mean())
        + gamma_r * beta_rec * 0.5 * (rec_rec.mean() + rec_fake.mean())
    )


def intro_encoder_loss(
    rec_real: torch.Tensor,
    kl_real: torch.Tensor,
    kl_rec: torch.Tensor,
    kl_fake: torch.Tensor,
    *,
    margin: float,
    alpha: float,
    beta: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """IntroVAE encoder objective (hinge on the KL of generated data).

    ``L_E = KL(x) + alpha ([m - KL(x_r)]^+ + [m - KL(x_f)]^+) + beta L_r(x)``, batch means,
    where ``KL(x_r)``, ``KL(x_f)`` are KLs of the re-encoded (detached) reconstructions
    and prior samples. The encoder pushes the KL of generated data up to the margin
    ``m`` (nats) and no further.

    Args:
        rec_real, kl_real: (B,) reconstruction loss and KL of the real batch.
        kl_rec, kl_fake: (B,) KL of the re-encoded reconstructions and prior samples.
        margin: ``m`` in nats; alpha: weight of the adversarial terms; beta: weight of ``L_r``.

    Returns:
        The scalar loss and its terms (``hinge_rec``, ``hinge_fake``: batch means of the hinges).

    Source: Huang et al., "IntroVAE", NeurIPS 2018, eq. (11) and Algorithm 1.
    """
    hinge_rec = torch.relu(margin - kl_rec).mean()
    hinge_fake = torch.relu(margin - kl_fake).mean()
    loss = kl_real.mean() + alpha * (hinge_rec + hinge_fake) + beta * rec_real.mean()
    return loss, {"hinge_rec": hinge_rec, "hinge_fake": hinge_fake}


def intro_decoder_loss(
    rec_real: torch.Tensor, kl_rec: torch.Tensor, kl_fake: torch.Tensor, *, alpha: float, beta: float
) -> torch.Tensor:
    """IntroVAE decoder (generator) objective.

    ``L_D = alpha (KL(x_r) + KL(x_f)) + beta L_r(x)``, batch means; ``KL(x_r)``, ``KL(x_f)``
    carry gradients into the decoder through the frozen encoder.

    Args:
        rec_real: (B,) reconstruction loss of the real batch.
        kl_rec, kl_fake: (B,) KL of the re-encoded reconstructions and prior samples.

    Returns:
        Scalar loss tensor.

    Source: Huang et al., "IntroVAE", NeurIPS 2018, eq. (12) and Algorithm 1.
    """
    return alpha * (kl_rec.mean() + kl_fake.mean()) + beta * rec_real.mean()
