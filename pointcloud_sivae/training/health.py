"""Is the introspective game being played? Diagnostics of the Soft-IntroVAE's health.

Two failure modes are silent in the losses and show only in generated samples:

* **saturated exponential terms.** The encoder's adversarial gradient on a batch carries
  a factor ``exp(-a)``, ``a = 2 s (b_rec L_r + b_neg KL)``. Once ``a`` is above about 15
  for every shape of the batch (``exp(-15) = 3e-7``), that batch teaches the encoder
  nothing and the method is a VAE that costs more;
* **a negative KL gap.** The health signal of the paper's code: the KL of generated data
  should stay above the KL of real data. When it stays below, the encoder does not tell
  generated from real data apart.

:class:`HealthMonitor` watches the per-epoch means and warns once per condition, naming
the flag to change and its value; :func:`gradient_diagnostics` measures how much each term
of the encoder's loss pulls on it; :func:`active_units` is a validation diagnostic of
posterior collapse (mode collapse: :func:`pointcloud_sivae.metrics.generation.set_diversity`).
"""

from __future__ import annotations

import math

import torch

SATURATED_EXPONENT = 15.0  # exp(-15) = 3.1e-7: the exponential term's gradient is gone


class HealthMonitor:
    """Counts consecutive unhealthy epochs; each warning fires once per run.

    Args:
        epochs: K, the number of consecutive epochs a condition must hold before it warns.
        method: the run's ``loss.method``; exponents are watched for ``soft-intro``, the
            KL gap for ``soft-intro`` and ``intro``.
        scale: the objective's ``s``; with it a warning names the value to give the flag it
            names (the ``--beta-neg`` whose equilibrium puts KL(fake) 25 % above KL(real), or
            whose exponents come back near 5).
    """

    def __init__(self, epochs: int, method: str, scale: float | None = None):
        self.epochs = epochs
        self.method = method
        self.scale = scale  # s = 1/(3 N_ref): turns the equilibrium into a b_neg to suggest
        self.streaks = {"saturated": 0, "kl_gap": 0}
        self.warned: list[str] = []

    def update(self, record: dict, weights: dict) -> list[str]:
        """Feed one epoch's record (epoch means); returns the warnings raised now (maybe none).

        Args:
            record: holds ``exponent_{rec,fake}_min`` and ``kl_gap`` where the method logs them.
            weights: the loss config as a dict (for the values quoted in the message).
        """
        if record.get("method") == "vae":  # warm-up epochs: no game to watch
            return []
        a_fake, a_rec = record.get("exponent_fake_min"), record.get("exponent_rec_min")
        saturated = a_fake is not None and min(a_fake, a_rec) > SATURATED_EXPONENT
        gap = record.get("kl_gap")
        self.streaks["saturated"] = self.streaks["saturated"] + 1 if saturated else 0
        self.streaks["kl_gap"] = self.streaks["kl_gap"] + 1 if gap is not None and gap < 0 else 0
        out = []
        if self.streaks["saturated"] >= self.epochs and "saturated" not in self.warned:
            self.warned.append("saturated")
            out.append(
                f"the exponential terms have been saturated for {self.epochs} epochs (min exponent "
                f"2s(b_rec L_r + b_neg KL): fake {a_fake:.1f}, rec {a_rec:.1f}, above {SATURATED_EXPONENT:g}; "
                f"exp(-a) < 3e-7): the encoder gets no adversarial gradient. {self._saturated_lever(record, weights)}")
        if self.streaks["kl_gap"] >= self.epochs and "kl_gap" not in self.warned:
            self.warned.append("kl_gap")
            out.append(f"KL(fake) has stayed below KL(real) for {self.epochs} epochs (kl_gap {gap:.3g} nats): the "
                       f"encoder does not tell generated from real data apart. {self._kl_gap_lever(record, weights)}")
        return out

    def _saturated_lever(self, record: dict, weights: dict) -> str:
        """Which flag to turn, and to what, when the exponents stay above 15."""
        b_neg, b_rec = weights["beta_neg"], weights["beta_rec"]
        kl_fake = record.get("kl_fake")
        if not self.scale or not kl_fake:
            return (f"Lower --beta-neg (now {b_neg:g}) or --beta-rec (now {b_rec:g}), or check --scale-points "
                    f"(now {weights['scale_points']}) and --frame-diagonal (now {weights.get('frame_diagonal')}).")
        kl_part = 2 * self.scale * b_neg * kl_fake
        rec_part = record["exponent_fake_mean"] - kl_part
        if rec_part > 10:
            return (f"The reconstruction part of the exponent alone is {rec_part:.1f}: lower --beta-rec (now "
                    f"{b_rec:g}) to about {b_rec * 3 / rec_part:.3g}, or check --frame-diagonal (now "
                    f"{weights.get('frame_diagonal')}) and --scale-points (now {weights['scale_points']}).")
        return (f"The KL part of the exponent is {kl_part:.1f} at KL(fake) {kl_fake:.0f} nats: lower --beta-neg from "
                f"{b_neg:g} to about {5 / (2 * self.scale * kl_fake):.0f} (KL part near 5).")

    def _kl_gap_lever(self, record: dict, weights: dict) -> str:
        """Which flag to turn, and to what, when KL(fake) stays below KL(real)."""
        if self.method != "soft-intro":
            return f"Raise --intro-margin (now {weights['intro_margin']:g}) above KL(real) ({record['kl_real']:.0f} nats)."
        b_neg, b_kl = weights["beta_neg"], weights["beta_kl"]
        kl_star, kl_real = record.get("kl_fake_equilibrium"), record["kl_real"]
        if kl_star is None or not self.scale:
            return f"Lower --beta-neg (now {b_neg:g}) or --beta-kl (now {b_kl:g})."
        a_star = record["exponent_equilibrium"]
        rec_part = a_star - 2 * self.scale * b_neg * kl_star  # 2 s b_rec L_r(x_f), measured
        target = 1.25 * kl_real
        b_new = beta_neg_for(target, rec_part, self.scale, b_kl)
        head = (f"The encoder's equilibrium exponent a* = ln(b_neg / 2 b_kl) = {a_star:.2f} puts KL(fake) at about "
                f"{kl_star:.0f} nats, below KL(real) {kl_real:.0f}: ")
        if b_new is not None:
            return head + (f"lower --beta-neg from {b_neg:g} to about {b_new:.0f} (equilibrium KL(fake) near "
                           f"{target:.0f} nats), or lower --beta-kl (now {b_kl:g}).")
        b_kl_new = b_neg / 2 * math.exp(-(rec_part + 2 * self.scale * b_neg * target))
        return head + (f"no --beta-neg gets it to {target:.0f} nats, as the fakes' reconstruction part of the exponent "
                       f"({rec_part:.2f}) caps it; lower --beta-kl from {b_kl:g} to about {b_kl_new:.3g}, or "
                       f"--beta-rec (now {weights['beta_rec']:g}).")

    def state_dict(self) -> dict:
        return {"streaks": dict(self.streaks), "warned": list(self.warned)}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.streaks.update(state["streaks"])
            self.warned = list(state["warned"])


def gradient_diagnostics(parts: dict[str, torch.Tensor], params: list[torch.Tensor],
                         reduce=None) -> dict[str, torch.Tensor]:
    """How much each term of the encoder's loss pulls on the encoder, and in which direction.

    Args:
        parts: the encoder loss split into terms that sum to it: ``real`` (the real batch's
            weighted ELBO) and the adversarial terms (Soft-IntroVAE: ``exp_rec``, ``exp_fake``,
            the two ``1/4 mean exp(-a)`` terms; IntroVAE: the weighted hinges), each a scalar
            with a graph to ``params``.
        params: the encoder's parameters.
        reduce: applied to each flattened gradient (under torchrun: the sum over processes).

    Returns:
        Detached scalars: ``grad_norm_<part>`` for each part, ``grad_norm_adversarial`` (of the
        adversarial terms' sum), ``grad_ratio`` (adversarial over real: below about 0.5 the
        game barely moves the encoder) and ``grad_cosine`` (between the real and the
        adversarial gradient; negative: the terms pull against each other, as the game
        intends).
    """
    flats = {}
    for name, term in parts.items():
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                          for g, p in zip(grads, params)])
        flats[name] = reduce(flat) if reduce is not None else flat
    real = flats.pop("real")
    adversarial = torch.stack(list(flats.values())).sum(0)
    out = {f"grad_norm_{name}": g.norm() for name, g in flats.items()}
    n_real, n_adv = real.norm(), adversarial.norm()
    out.update(grad_norm_real=n_real, grad_norm_adversarial=n_adv, grad_ratio=n_adv / n_real.clamp_min(1e-30),
               grad_cosine=(real @ adversarial) / (n_real * n_adv).clamp_min(1e-30))
    return out


def equilibrium_kl(beta_neg: float, rec_fake_part: float, scale: float, beta_kl: float) -> float:
    """KL(fake) at the encoder's equilibrium, nats: ``(ln(b_neg/(2 b_kl)) - r) / (2 s b_neg)`` with
    ``r = 2 s b_rec L_r(x_f)`` the reconstruction part of the fake exponent
    (:func:`~pointcloud_sivae.objectives.equilibrium_exponent`)."""
    return (math.log(beta_neg / (2 * beta_kl)) - rec_fake_part) / (2 * scale * beta_neg)


def beta_neg_for(kl_target: float, rec_fake_part: float, scale: float, beta_kl: float) -> float | None:
    """The largest ``b_neg`` whose equilibrium KL(fake) (:func:`equilibrium_kl`) is at least
    ``kl_target`` nats, or ``None`` when none is: the equilibrium KL peaks at ``b_neg = 2 b_kl
    e^(r+1)`` and falls beyond it; solved by bisection there."""
    def kl_star(b: float) -> float:
        return equilibrium_kl(b, rec_fake_part, scale, beta_kl)

    lo = 2 * beta_kl * math.exp(rec_fake_part + 1)  # the maximum of kl_star
    if kl_star(lo) < kl_target:
        return None
    hi = lo
    while kl_star(hi) >= kl_target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kl_star(mid) >= kl_target else (lo, mid)
    return lo


def active_units(mu: torch.Tensor, prior_std: float, threshold: float = 0.01) -> dict[str, int]:
    """Active latent units: dimensions whose posterior mean varies over the data.

    Unit ``u`` is active when ``Var_x(E_q(z|x)[z_u]) > threshold`` (Burda et al.). Burda's
    threshold 0.01 is stated for a unit-variance prior; with prior ``N(0, sigma_p^2 I)``
    the same rule in the prior's units is ``threshold * sigma_p^2``. Both counts are given.

    Args:
        mu: (M, Z) posterior means of M shapes (M >= 2).
        prior_std: sigma_p.
        threshold: 0.01.

    Returns:
        ``{"active_units": count at threshold * sigma_p^2, "active_units_abs": count at threshold}``.

    Source: Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016, sec. 5.2.
    """
    var = mu.double().var(dim=0)
    return {"active_units": int((var > threshold * prior_std**2).sum()),
            "active_units_abs": int((var > threshold).sum())}
