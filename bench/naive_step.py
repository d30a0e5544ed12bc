"""The Soft-IntroVAE step computed the way the public reference code computes it (benchmark baseline).

Same model, same objective as :class:`pointcloud_sivae.training.trainer.Trainer`, but with the
reference's implementation choices, so that the benchmark measures the cost of
those choices and nothing else:

* Chamfer distance from three ``bmm`` Gram matrices ``x x^T``, ``y y^T``, ``x y^T``
  (B x N x N each) and a dense (B, N, M) distance tensor that autograd keeps;
* the encoder in the (B, C, N) Conv1d layout with ``amax`` pooling, in the reference's
  layer order ``Conv1d -> ReLU -> BatchNorm1d`` (the trainer's default ``encoder_order``);
* every pass recomputed: the prior samples are decoded twice, the reconstruction is
  re-sampled and re-decoded in the decoder step, ``model(x)`` re-decodes in the
  encoder step;
* BatchNorm running statistics updated by every pass (as the reference does).

The loss lines that use the wrong tensor in the reference (``loss_rec.sum``) are
written correctly here: the bug changes the objective, not the cost.
"""

from __future__ import annotations

import math

import torch

from pointcloud_sivae.models.vae import reparameterize
from pointcloud_sivae.objectives import gaussian_kl


def reference_chamfer(x: torch.Tensor, y: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Chamfer distance (B,) via dense bmm Gram matrices, as the public reference codes compute it:
    ``sum`` over points (Soft-IntroVAE's ``ChamferLoss``) or ``mean`` (PointFlow's ``distChamfer``)."""
    xx = torch.bmm(x, x.transpose(2, 1))
    yy = torch.bmm(y, y.transpose(2, 1))
    zz = torch.bmm(x, y.transpose(2, 1))
    ix = torch.arange(x.shape[1], device=x.device)
    iy = torch.arange(y.shape[1], device=y.device)
    rx = xx[:, ix, ix].unsqueeze(1).expand_as(zz.transpose(2, 1))
    ry = yy[:, iy, iy].unsqueeze(1).expand_as(zz)
    P = rx.transpose(2, 1) + ry - 2 * zz
    if reduction == "mean":
        return P.min(1)[0].mean(1) + P.min(2)[0].mean(1)
    return P.min(1)[0].sum(1) + P.min(2)[0].sum(1)


class NaiveStep:
    """One reference-style step on a trainer's model and optimisers: ``step(x)``."""

    def __init__(self, trainer):
        self.t = trainer
        self.m = trainer.model
        self.L = trainer.cfg.loss
        scales = trainer.objectives["vae"]  # the run's s and c (every method's are the same)
        self.scale = scales.s
        self.c = scales.c  # L_r = c * summed Chamfer (point count and frame)

    def encode(self, x):
        """The reference's encoder: ``Conv1d -> ReLU -> BatchNorm1d`` per layer in the (B, C, N)
        layout (its ``models/vae.py``), then ``amax`` pooling and the heads."""
        enc = self.m.encoder
        h = x.transpose(1, 2)
        layers = list(enc.features)
        for conv, bn in zip(layers[0::3], layers[1::3]):
            h = bn(torch.relu(conv(h)))
        h = enc.fc(h.amax(dim=2))
        return enc.mu(h), enc.logvar(h)

    def kl(self, mu, logvar):
        return gaussian_kl(mu, logvar, self.m.prior_std)

    def step(self, x: torch.Tensor) -> float:
        m, L, s = self.m, self.L, self.scale
        noise = m.prior_std * torch.randn(x.shape[0], m.z_dim, device=x.device)
        # ----- encoder -----
        for p in m.encoder.parameters():
            p.requires_grad_(True)
        for p in m.decoder.parameters():
            p.requires_grad_(False)
        fake = m.decode(noise)
        mu, logvar = self.encode(x)
        x_rec = m.decode(reparameterize(mu, logvar, torch.randn_like(mu)))
        loss_rec = self.c * reference_chamfer(x, x_rec).mean()
        kl_real = self.kl(mu, logvar).mean()
        mu_r, lv_r = self.encode(x_rec.detach())
        rec_rec = m.decode(reparameterize(mu_r, lv_r, torch.randn_like(mu)))
        mu_f, lv_f = self.encode(fake.detach())
        rec_fake = m.decode(reparameterize(mu_f, lv_f, torch.randn_like(mu)))
        kl_rec, kl_fake = self.kl(mu_r, lv_r), self.kl(mu_f, lv_f)
        rr = self.c * reference_chamfer(x_rec.detach(), rec_rec)
        rf = self.c * reference_chamfer(fake, rec_fake)
        expelbo_rec = torch.exp(-2 * s * (L.beta_rec * rr + L.beta_neg * kl_rec)).mean()
        expelbo_fake = torch.exp(-2 * s * (L.beta_rec * rf + L.beta_neg * kl_fake)).mean()
        loss_e = s * L.beta_rec * loss_rec + s * L.beta_kl * kl_real + 0.25 * (expelbo_rec + expelbo_fake)
        self.t.opt_e.zero_grad()
        loss_e.backward()
        self.t.opt_e.step()
        # ----- decoder -----
        for p in m.encoder.parameters():
            p.requires_grad_(False)
        for p in m.decoder.parameters():
            p.requires_grad_(True)
        fake = m.decode(noise)
        with torch.no_grad():
            z = reparameterize(mu.detach(), logvar.detach(), torch.randn_like(mu))
        rec = m.decode(z)
        loss_rec = self.c * reference_chamfer(x, rec).mean()
        mu_r, lv_r = self.encode(rec)
        mu_f, lv_f = self.encode(fake)
        rec_rec = m.decode(reparameterize(mu_r, lv_r, torch.randn_like(mu)).detach())
        rec_fake = m.decode(reparameterize(mu_f, lv_f, torch.randn_like(mu)).detach())
        loss_rr = self.c * reference_chamfer(rec.detach(), rec_rec).mean()
        loss_rf = self.c * reference_chamfer(fake.detach(), rec_fake).mean()
        loss_d = s * (L.beta_rec * loss_rec + L.beta_kl * 0.5 * (self.kl(mu_r, lv_r).mean() + self.kl(mu_f, lv_f).mean())
                      + L.gamma_r * 0.5 * L.beta_rec * (loss_rr + loss_rf))
        self.t.opt_d.zero_grad()
        loss_d.backward()
        self.t.opt_d.step()
        for p in m.encoder.parameters():
            p.requires_grad_(True)
        value = float(loss_d.detach())
        if not math.isfinite(value):
            raise RuntimeError("naive step produced a non-finite loss")
        return value
