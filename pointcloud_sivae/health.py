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
the flag to change. :func:`active_units` and :func:`set_diversity` are validation
diagnostics of posterior and mode collapse.
"""

from __future__ import annotations

import numpy as np
import torch

SATURATED_EXPONENT = 15.0  # exp(-15) = 3.1e-7: the exponential term's gradient is gone


class HealthMonitor:
    """Counts consecutive unhealthy epochs; each warning fires once per run.

    Args:
        epochs: K, the number of consecutive epochs a condition must hold before it warns.
        method: the run's ``loss.method``; exponents are watched for ``soft-intro``, the
            KL gap for ``soft-intro`` and ``intro``.
    """

    def __init__(self, epochs: int, method: str):
        self.epochs = epochs
        self.method = method
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
                f"exp(-a) < 3e-7): the encoder gets no adversarial gradient. Lower --beta-neg (now "
                f"{weights['beta_neg']:g}) or --beta-rec (now {weights['beta_rec']:g}), or check --scale-points "
                f"(now {weights['scale_points']}).")
        if self.streaks["kl_gap"] >= self.epochs and "kl_gap" not in self.warned:
            self.warned.append("kl_gap")
            flag = ("--beta-neg (now {:g}) or lower --beta-kl (now {:g})".format(weights["beta_neg"], weights["beta_kl"])
                    if self.method == "soft-intro" else f"--intro-margin (now {weights['intro_margin']:g})")
            out.append(
                f"KL(fake) has stayed below KL(real) for {self.epochs} epochs (kl_gap {gap:.3g} nats): the "
                f"encoder does not tell generated from real data apart. Raise {flag}.")
        return out

    def state_dict(self) -> dict:
        return {"streaks": dict(self.streaks), "warned": list(self.warned)}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.streaks.update(state["streaks"])
            self.warned = list(state["warned"])


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


def set_diversity(D: np.ndarray) -> float:
    """Mean pairwise distance within a set, from its (M, M) distance matrix (diagonal excluded)."""
    m = D.shape[0]
    return float((D.sum() - np.trace(D)) / (m * (m - 1)))


def nearest_other(D: np.ndarray) -> float:
    """Mean over shapes of the distance to the nearest *other* shape of the set, from (M, M) ``D``."""
    off = D + np.diag(np.full(D.shape[0], np.inf))
    return float(off.min(axis=1).mean())
