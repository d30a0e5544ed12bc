"""The objectives of the three methods: pure functions of per-shape tensors, and one class per method.

No module, optimiser or ``.backward()`` here: :mod:`pointcloud_sivae.training.steps`
decides what is frozen and detached; this module only does the arithmetic of
docs/method.md. Each method's class (:class:`VAEObjective`, :class:`SoftIntroObjective`,
:class:`IntroObjective`) owns its weights, the scale ``s`` and the factor ``c`` of
``L_r``, and gives the encoder and decoder losses of its paper's Algorithm 1.
Inputs are per-shape values of shape (B,); ``rec_*`` are reconstruction losses
(Chamfer distance summed over points, rescaled to ``N_ref`` points and to the
official frame, see :func:`objective_scales`) and ``kl_*`` are KL divergences to the prior, summed over
latent dimensions.
"""

from __future__ import annotations

import math

import torch

from pointcloud_sivae.ops.chamfer import knn_indices, sq_dist_to_neighbors


def objective_scales(num_points: int, scale_points: int = 2048, frame_diagonal: float = 1.0) -> tuple[float, float]:
    """``(s, c)``: the objective's scale ``s`` and the factor ``c`` that turns a Chamfer
    distance summed over ``num_points`` points (squared L2, in the model frame) into ``L_r``,
    so that the weights mean the official objective at any point count and in any frame.

    **Point count.** The reference sets ``s = 1 / (3 N)`` and ``L_r = sum CD`` (both
    directions summed over the N points). With ``m = L_r / N`` the per-point mean Chamfer
    distance, which does not grow with N, its terms are

        s b_rec L_r = b_rec m / 3              (independent of N)
        s b_kl KL   = b_kl KL / (3 N)          (shrinks as 1/N)
        2 s (b_rec L_r + b_neg KL) = 2 b_rec m / 3 + 2 b_neg KL / (3 N)

    so the same ``b_kl`` and ``b_neg`` weigh the KL terms 8 times more at N = 256 than at
    the N = 2048 the official 3D weights were tuned for. A fixed reference count ``N_ref``
    (``loss.scale_points``) with ``s = 1 / (3 N_ref)`` and ``L_r = (N_ref / N) sum CD =
    N_ref m`` keeps the balance of the reference at ``N_ref`` points at every N.

    **Frame.** A squared distance scales with the square of the unit of length: the same
    shapes in the unit sphere have Chamfer distances about 6 times those of the official
    frame, where every shape has a unit bounding-box diagonal (latent_3d_points' clouds of
    ShapeNetCore's ``model_normalized`` meshes), so the same ``b_rec`` would weigh
    reconstruction 6 times more. Measuring lengths in units of ``D``, the mean bounding-box
    diagonal of the training shapes in the model frame (``loss.frame_diagonal``), divides
    every Chamfer value by ``D^2``: the objective of the data as if rescaled to the official
    frame. ``D`` is 1 in that frame (0.99 for ShapeNetPart's airplanes), 2.5 for ModelNet40
    airplanes in the unit sphere.

    Together ``c = N_ref / (N D^2)``. At ``N = N_ref`` and ``D = 1`` both factors are the
    reference's exactly (``c = 1``).

    Args:
        num_points: points per cloud N (> 0).
        scale_points: the reference count ``N_ref`` (> 0); 2048 for the official 3D weights.
        frame_diagonal: ``D`` (> 0), model-frame units; 1 keeps the model frame's lengths.

    Returns:
        ``(s, c)``, floats: ``s = 1 / (3 N_ref)`` and ``c = N_ref / (N D^2)``.

    Raises:
        ValueError: a non-positive count or diagonal.

    Source: Daniel & Tamar, "Soft-IntroVAE", CVPR 2021 (s = 1/input dimension, official 3D
    config at 2048 points in the unit-diagonal frame); the rescaling to N_ref and D is this
    package's (docs/method.md).
    """
    if num_points < 1 or scale_points < 1:
        raise ValueError(f"point counts must be positive, got num_points={num_points}, scale_points={scale_points}")
    if not frame_diagonal > 0:
        raise ValueError(f"frame_diagonal must be positive, got {frame_diagonal}")
    return 1.0 / (3 * scale_points), scale_points / num_points / frame_diagonal**2


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


def equilibrium_exponent(beta_neg: float, beta_kl: float) -> float:
    """``a* = ln(b_neg / (2 b_kl))``: the exponent at which the encoder stops raising KL(fake).

    One more nat of KL(x_f) changes ``1/4 exp(-a)``, ``a = 2 s (b_rec L_r + b_neg KL)``, by
    ``-(s b_neg / 2) exp(-a)``; one more nat of KL(x) costs ``s b_kl``. The encoder gains from
    pushing KL(fake) up while ``exp(-a) > 2 b_kl / b_neg``, so its equilibrium exponent is
    ``a*`` and there ``expelbo_fake = exp(-a*) = 2 b_kl / b_neg``. The matching KL(fake) is
    ``(a* - 2 s b_rec L_r(x_f)) / (2 s b_neg)``: when it is below KL(real), the encoder's
    optimum scores fakes as *more* likely than real data and the game is off.

    Raises:
        ValueError: non-positive weights.

    Source: this package's reading of Daniel & Tamar, CVPR 2021, eq. (6) (docs/method.md).
    """
    if beta_neg <= 0 or beta_kl <= 0:
        raise ValueError(f"beta_neg and beta_kl must be positive, got {beta_neg} and {beta_kl}")
    return math.log(beta_neg / (2.0 * beta_kl))


def repulsion_penalty(clouds: torch.Tensor, radius: float = 0.5) -> torch.Tensor:
    """How clumped each cloud is: the mean over its points of ``relu(1 - d_i^2 / h^2)^2``, where
    ``d_i`` is a point's distance to its nearest other point of the same cloud and
    ``h = radius * sqrt(mean_i d_i^2)`` is set by the cloud itself (a constant: no gradient).

    A point at least ``h`` from every other point costs nothing; two coincident points cost 1
    each. Only points closer than ``radius`` times the cloud's own (root-mean-square) spacing
    are pushed apart, so the value is the same in any frame, at any scale and any point count
    (0 to 1, dimensionless), and an evenly spread cloud costs 0. It is a hinge form of the
    repulsion loss of Yu et al., "PU-Net: Point Cloud Upsampling Network", CVPR 2018 (eq. 4),
    whose kernel width there is a fixed length; here it is relative to the cloud (issue 23:
    prior samples of the introspective models are clumped, reconstructions are not).

    Args:
        clouds: (B, N, 3) float, N >= 2; computed in float32.
        radius: ``h`` in units of the cloud's RMS nearest-neighbour distance (> 0).

    Returns:
        (B,) float32 penalty per cloud, in [0, 1].

    Raises:
        ValueError: ``clouds`` not (B, N >= 2, 3), or ``radius`` not positive.
    """
    if clouds.ndim != 3 or clouds.shape[2] != 3 or clouds.shape[1] < 2:
        raise ValueError(f"repulsion_penalty needs clouds of shape (B, N >= 2, 3), got {tuple(clouds.shape)}")
    if not radius > 0:
        raise ValueError(f"repulsion radius must be positive, got {radius}")
    x = clouds.float()
    with torch.autocast(x.device.type, enabled=False):  # distances in float32, as the Chamfer distance's
        two = knn_indices(x, 2)  # (B, N, 2): the point itself and its nearest other, in either order on a tie
        self_index = torch.arange(x.shape[1], device=x.device)
        nearest = torch.where(two[..., 0] == self_index, two[..., 1], two[..., 0])
        nn2 = sq_dist_to_neighbors(x, x, nearest)  # (B, N) squared; no sqrt: finite gradients
    h2 = radius**2 * nn2.detach().mean(dim=1, keepdim=True).clamp_min(1e-20)
    return torch.relu(1 - nn2 / h2).pow(2).mean(dim=1)


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
        scale: ``s = 1 / (3 N_ref)`` (:func:`objective_scales`); beta_rec, beta_kl,
            beta_neg: the paper's weights.

    Returns:
        The scalar loss and its terms: ``real``; ``expelbo_rec``, ``expelbo_fake``, the
        batch means of ``exp(-a)``; the exponents ``a = 2 s (b_rec L_r + b_neg KL)``
        of each batch, ``exponent_{rec,fake}_{mean,min}`` (detached); the encoder's
        equilibrium ``exponent_equilibrium`` (:func:`equilibrium_exponent`) and the KL(fake)
        it implies at this batch's ``L_r(x_f)``, ``kl_fake_equilibrium`` (nats). The
        exponential term's gradient carries a factor ``exp(-a)``: a minimum exponent above
        about 15 (``exp(-15) = 3e-7``) means the batch gives the encoder no gradient.

    Source: Daniel & Tamar, "Soft-IntroVAE", CVPR 2021, eq. (6) and Algorithm 1.
    """
    real = scale * (beta_rec * rec_real.mean() + beta_kl * kl_real.mean())
    a_rec = 2.0 * scale * (beta_rec * rec_rec + beta_neg * kl_rec)
    a_fake = 2.0 * scale * (beta_rec * rec_fake + beta_neg * kl_fake)
    expelbo_rec = torch.exp(-a_rec).mean()
    expelbo_fake = torch.exp(-a_fake).mean()
    loss = real + 0.25 * (expelbo_rec + expelbo_fake)
    a_rec, a_fake = a_rec.detach(), a_fake.detach()
    a_star = equilibrium_exponent(beta_neg, beta_kl) if beta_neg > 0 and beta_kl > 0 else float("nan")
    kl_fake_star = (a_star - 2.0 * scale * beta_rec * rec_fake.detach().mean()) / (2.0 * scale * beta_neg)
    return loss, {"real": real, "expelbo_rec": expelbo_rec, "expelbo_fake": expelbo_fake,
                  "exponent_rec_mean": a_rec.mean(), "exponent_rec_min": a_rec.min(),
                  "exponent_fake_mean": a_fake.mean(), "exponent_fake_min": a_fake.min(),
                  "exponent_equilibrium": torch.full_like(a_fake.mean(), a_star),
                  "kl_fake_equilibrium": kl_fake_star}


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


# ----- the methods: their weights, scales and losses -----


class Objective:
    """What every method's step computes: ``L_r`` and the KL with the run's scales.

    Owns the objective's scale ``s`` and the factor ``c`` of ``L_r = c * (Chamfer distance
    summed over points)`` (:func:`objective_scales`: point count and frame), the prior's
    ``sigma_p`` and the Chamfer op (its backend resolved once). The subclasses add their
    weights and the encoder/decoder losses of their paper's Algorithm 1.

    Args:
        num_points: N, points per cloud of the model. scale_points: N_ref. frame_diagonal: D.
        prior_std: sigma_p. chamfer: a :class:`~pointcloud_sivae.ops.chamfer.Chamfer`.
    """

    name = ""

    def __init__(self, *, num_points: int, scale_points: int, frame_diagonal: float, prior_std: float, chamfer):
        self.s, self.c = objective_scales(num_points, scale_points, frame_diagonal)
        self.prior_std = prior_std
        self.chamfer = chamfer

    def rec(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``L_r`` of each pair of clouds (B,): ``c`` times the Chamfer distance summed over points."""
        d = self.chamfer(x, y, point_reduction="sum")
        return d if self.c == 1.0 else d * self.c

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``KL(q(z|x) || p(z))`` (B,), nats, in float32 (also under bf16 autocast)."""
        return gaussian_kl(mu.float(), logvar.float(), self.prior_std)


class VAEObjective(Objective):
    """The VAE: one joint step on ``s (b_rec L_r(x) + b_kl KL(x))`` (also every method's warm-up)."""

    name = "vae"

    def __init__(self, *, beta_rec: float, beta_kl: float, **scales):
        super().__init__(**scales)
        self.beta_rec, self.beta_kl = beta_rec, beta_kl

    def loss(self, rec_real: torch.Tensor, kl_real: torch.Tensor) -> torch.Tensor:
        return vae_loss(rec_real, kl_real, scale=self.s, beta_rec=self.beta_rec, beta_kl=self.beta_kl)


class SoftIntroObjective(Objective):
    """Soft-IntroVAE (Daniel & Tamar, CVPR 2021): the exponential ELBO of generated data, with the
    reconstruction terms of re-decoded reconstructions and fakes (weight ``gamma_r`` in the decoder)."""

    name = "soft-intro"

    def __init__(self, *, beta_rec: float, beta_kl: float, beta_neg: float, gamma_r: float,
                 beta_repulsion: float = 0.0, repulsion_radius: float = 0.5, **scales):
        super().__init__(**scales)
        self.beta_rec, self.beta_kl, self.beta_neg, self.gamma_r = beta_rec, beta_kl, beta_neg, gamma_r
        self.beta_repulsion, self.repulsion_radius = beta_repulsion, repulsion_radius

    def repulsion(self, fake: torch.Tensor) -> torch.Tensor:
        """:func:`repulsion_penalty` of the generated clouds (B,) with the run's radius."""
        return repulsion_penalty(fake, self.repulsion_radius)

    def encoder_loss(self, rec_real, kl_real, rec_rec, kl_rec, rec_fake, kl_fake):
        """:func:`soft_intro_encoder_loss`; returns the loss, its logged terms and the loss split into
        ``real`` and the two exponential terms (for the gradient diagnostics)."""
        loss, parts = soft_intro_encoder_loss(rec_real, kl_real, rec_rec, kl_rec, rec_fake, kl_fake, scale=self.s,
                                              beta_rec=self.beta_rec, beta_kl=self.beta_kl, beta_neg=self.beta_neg)
        split = {"real": parts.pop("real"), "exp_rec": 0.25 * parts["expelbo_rec"],
                 "exp_fake": 0.25 * parts["expelbo_fake"]}
        return loss, parts, split

    def decoder_loss(self, rec_real, kl_rec, kl_fake, rec_rec, rec_fake, rep_fake=None) -> torch.Tensor:
        """:func:`soft_intro_decoder_loss`, plus ``b_rep`` times the batch mean of ``rep_fake`` (the
        generated clouds' :meth:`repulsion`; this package's option, off by default) when given."""
        loss = soft_intro_decoder_loss(rec_real, kl_rec, kl_fake, rec_rec, rec_fake, scale=self.s,
                                       beta_rec=self.beta_rec, beta_kl=self.beta_kl, gamma_r=self.gamma_r)
        return loss if rep_fake is None else loss + self.beta_repulsion * rep_fake.mean()


class IntroObjective(Objective):
    """IntroVAE (Huang et al., NeurIPS 2018): a hinge on the KL of generated data (margin in nats)."""

    name = "intro"

    def __init__(self, *, margin: float, alpha: float, beta: float, **scales):
        super().__init__(**scales)
        self.margin, self.alpha, self.beta = margin, alpha, beta

    def encoder_loss(self, rec_real, kl_real, kl_rec, kl_fake):
        """:func:`intro_encoder_loss`; returns the loss, its logged terms and its split into ``real``
        and the two weighted hinges."""
        loss, parts = intro_encoder_loss(rec_real, kl_real, kl_rec, kl_fake, margin=self.margin, alpha=self.alpha,
                                         beta=self.beta)
        split = {"real": kl_real.mean() + self.beta * rec_real.mean(),
                 "hinge_rec": self.alpha * parts["hinge_rec"], "hinge_fake": self.alpha * parts["hinge_fake"]}
        return loss, parts, split

    def decoder_loss(self, rec_real, kl_rec, kl_fake) -> torch.Tensor:
        return intro_decoder_loss(rec_real, kl_rec, kl_fake, alpha=self.alpha, beta=self.beta)
