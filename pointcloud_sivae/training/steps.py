"""One optimisation step per method, each read top to bottom as its paper's Algorithm 1.

A step takes the run's :class:`Learner` (model, optimisers, process group), the method's
objective (:mod:`pointcloud_sivae.objectives`: weights, ``s``, ``c``, losses), a (B, N, 3)
batch (this process's shard) and the step's :class:`Step` (its seeded noise), updates the
networks and returns the logged terms as 0-d tensors. What is frozen and what is detached
is written where it happens:

* ``frozen(module)``: the module's parameters get no gradient (``requires_grad=False``);
* ``frozen_batchnorm_stats(encoder)``: the encoder still normalises each batch with its own
  statistics, but generated batches do not move the running statistics that evaluation
  uses; only the real batch of the encoder step does. (The public reference lets
  reconstructed and generated batches move them too, in both steps.)

Under ``torchrun`` each process back-propagates its shard's loss times its share of the
global batch and the gradients are summed (:mod:`pointcloud_sivae.training.distributed`).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from pointcloud_sivae.models.vae import SoftIntroVAE, reparameterize
from pointcloud_sivae.objectives import IntroObjective, SoftIntroObjective, VAEObjective
from pointcloud_sivae.training.distributed import DistContext, sum_gradients, sum_tensor
from pointcloud_sivae.training.health import gradient_diagnostics


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the optimiser step."""


@dataclass(frozen=True)
class Learner:
    """What every step of a run updates and where: built once by the trainer.

    Attributes:
        model: the networks. opt_e, opt_d: the encoder's and the decoder's Adam; sched_e,
            sched_d: their learning-rate schedules (stepped once per epoch).
        dist: this process's place in the process group.
        where: ``where()`` says, for an error message, where the run is (``"epoch E, step S"``) and
            what its last checkpoint holds.
    """

    model: SoftIntroVAE
    opt_e: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_e: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    dist: DistContext
    where: Callable[[], tuple[str, str]]

    @classmethod
    def with_adam(cls, model: SoftIntroVAE, optim, dist: DistContext, where) -> "Learner":
        """Adam for the encoder and for the decoder with ``optim``'s (an ``OptimConfig``) rates and
        betas (AdamW with its ``weight_decay`` when that is above 0), each with its MultiStepLR schedule."""
        o = optim
        if o.weight_decay > 0:
            adam = functools.partial(torch.optim.AdamW, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        else:
            adam = functools.partial(torch.optim.Adam, betas=(o.beta1, o.beta2))
        opt_e = adam(model.encoder.parameters(), lr=o.lr_e)
        opt_d = adam(model.decoder.parameters(), lr=o.lr_d)
        schedule = [torch.optim.lr_scheduler.MultiStepLR(opt, list(o.milestones), gamma=o.lr_gamma) for opt in (opt_e, opt_d)]
        return cls(model, opt_e, opt_d, *schedule, dist, where)

    def check(self, which: str, loss: torch.Tensor, terms: dict) -> None:
        """Raise :class:`NonFiniteLossError`, in every process at once, when ``loss`` is not finite."""
        finite = torch.isfinite(loss.detach()).float()
        if self.dist.enabled:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() == 1.0:
            return
        shown = ", ".join(f"{k}={float(v.detach().mean()):.4g}" for k, v in terms.items())
        location, checkpoint = self.where()
        raise NonFiniteLossError(
            f"non-finite {which} loss at {location} ({shown}). Likely causes: beta_neg too low for this data (the KL "
            f"of generated clouds explodes), a learning rate too high, or non-finite input clouds. {checkpoint}; start "
            "a new run with a lower --lr-e/--lr-d or a higher --beta-neg.")

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer_e": self.opt_e.state_dict(),
                "optimizer_d": self.opt_d.state_dict(), "scheduler_e": self.sched_e.state_dict(),
                "scheduler_d": self.sched_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for obj, key in ((self.opt_e, "optimizer_e"), (self.opt_d, "optimizer_d"), (self.sched_e, "scheduler_e"),
                         (self.sched_d, "scheduler_d")):
            obj.load_state_dict(state[key])

    def end_epoch(self) -> dict[str, float]:
        """Step both learning-rate schedules; returns the new rates ``lr_e``, ``lr_d``."""
        self.sched_e.step()
        self.sched_d.step()
        return {"lr_e": self.opt_e.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"]}


@dataclass(frozen=True)
class Step:
    """What the passes of one step share: a value, made anew for every step.

    Attributes:
        noise: generator of the step's latent noise, seeded by (seed, step).
        batch_size: shapes in the global batch (all processes).
        rows: this process's rows of the global batch.
        share: this process's fraction of the global batch (its weight in batch means).
        diagnose: also measure the encoder gradient of each loss term (the first step of an epoch).
    """

    noise: torch.Generator
    batch_size: int
    rows: slice
    share: float
    diagnose: bool = False

    def randn(self, z_dim: int, device) -> torch.Tensor:
        """Standard normal (global batch, Z) noise from the step's generator; this process's rows."""
        return torch.randn(self.batch_size, z_dim, generator=self.noise, device=device)[self.rows]


def posterior_sample(mu: torch.Tensor, logvar: torch.Tensor, step: Step) -> torch.Tensor:
    """``z ~ q(z|x)`` in float32 (also under bf16 autocast), with the step's noise."""
    mu, logvar = mu.float(), logvar.float()
    return reparameterize(mu, logvar, step.randn(mu.shape[1], mu.device))


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Within the block ``module``'s parameters get no gradient; gradients still flow through it."""
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in module.parameters():
            p.requires_grad_(True)


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module):
    """Within the block, BatchNorm layers still normalise with batch statistics but leave their
    running statistics untouched (momentum 0, ``num_batches_tracked`` restored)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def compiled_backward_keeps_graph(compiled: bool):
    """A context for a step of ``torch.compile``'d networks: within it their graphs may be
    back-propagated more than once (``retain_graph=True``), as the diagnosed step's
    :func:`~pointcloud_sivae.training.health.gradient_diagnostics` does before the update.
    AOTAutograd otherwise donates saved buffers to the first backward and the second one
    raises ("compiled with non-empty donated buffers"). Networks compile at their first call,
    so every training call must run inside it; a no-op when ``compiled`` is false."""
    return torch._functorch.config.patch(donated_buffer=False) if compiled else contextlib.nullcontext()


def update(learner: Learner, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor, step: Step) -> None:
    """Back-propagate ``loss`` into ``module`` (:func:`backward`) and step ``opt``."""
    opt.zero_grad(set_to_none=True)
    backward(learner, module, loss, step)
    opt.step()


def backward(learner: Learner, module: nn.Module, loss: torch.Tensor, step: Step) -> None:
    """Back-propagate this shard's share of the global batch loss and sum ``module``'s gradients over
    processes. Weighting the loss (not the gradient) keeps the paths through the synchronised
    BatchNorm statistics, which reach every process's inputs, weighted correctly."""
    (loss * step.share if learner.dist.enabled else loss).backward()
    sum_gradients(module, learner.dist)


def vae_step(learner: Learner, obj: VAEObjective, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
    """One joint encoder + decoder update on the negative ELBO ``s (b_rec L_r(x) + b_kl KL(x))``."""
    m = learner.model
    mu, logvar = m.encode(x)
    rec = m.decode(posterior_sample(mu, logvar, step))
    rec_real, kl_real = obj.rec(x, rec), obj.kl(mu, logvar)
    loss = obj.loss(rec_real, kl_real)
    learner.check("VAE", loss, {"rec": rec_real, "kl_real": kl_real})
    learner.opt_e.zero_grad(set_to_none=True)
    learner.opt_d.zero_grad(set_to_none=True)
    backward(learner, m, loss, step)
    learner.opt_e.step()
    learner.opt_d.step()
    return {"rec": rec_real.mean(), "kl_real": kl_real.mean(), "loss_e": loss, "loss_d": loss}


def soft_intro_step(learner: Learner, obj: SoftIntroObjective, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
    """The Soft-IntroVAE update (Daniel & Tamar, CVPR 2021, Algorithm 1): the encoder, then the decoder."""
    m = learner.model
    z_prior = m.prior_std * step.randn(m.z_dim, x.device)  # z_f ~ p(z), shared by both steps

    # ----- encoder step: the decoder is frozen; x_r and x_f are constants (detached) -----
    with frozen(m.decoder):
        mu, logvar, z, rec, fake = _real_and_fake(m, x, z_prior, step)
        rec_real, kl_real = obj.rec(x, rec), obj.kl(mu, logvar)
        rec = rec.detach()
        mu_r, lv_r, mu_f, lv_f = _reencode(m, rec, fake)
        kl_rec, kl_fake = obj.kl(mu_r, lv_r), obj.kl(mu_f, lv_f)
        rec_rec = obj.rec(rec, m.decode(posterior_sample(mu_r, lv_r, step)))
        rec_fake = obj.rec(fake, m.decode(posterior_sample(mu_f, lv_f, step)))
        loss_e, parts, split = obj.encoder_loss(rec_real, kl_real, rec_rec, kl_rec, rec_fake, kl_fake)
        learner.check("encoder", loss_e, {"rec": rec_real, "kl_real": kl_real, "kl_rec": kl_rec, "kl_fake": kl_fake,
                                          "rec_rec": rec_rec, "rec_fake": rec_fake})
        terms = _encoder_terms(learner, step, rec_real, kl_real, kl_rec, kl_fake, loss_e, parts, split)
        update(learner, learner.opt_e, m.encoder, loss_e, step)

    # ----- decoder step: the encoder is frozen; x_r and x_f reach the decoder through their re-encodings -----
    with frozen(m.encoder):
        fake = m.decode(z_prior)
        rec = m.decode(z.detach())
        rec_real = obj.rec(x, rec)
        mu_r, lv_r, mu_f, lv_f = _reencode(m, rec, fake)
        kl_rec, kl_fake = obj.kl(mu_r, lv_r), obj.kl(mu_f, lv_f)
        z_r = posterior_sample(mu_r, lv_r, step).detach()  # the re-decodings: constant latents and targets
        z_f = posterior_sample(mu_f, lv_f, step).detach()
        rec_rec, rec_fake = obj.rec(rec.detach(), m.decode(z_r)), obj.rec(fake.detach(), m.decode(z_f))
        rep_fake = obj.repulsion(fake) if obj.beta_repulsion > 0 else None  # the clumps of x_f (off by default)
        loss_d = obj.decoder_loss(rec_real, kl_rec, kl_fake, rec_rec, rec_fake, rep_fake)
        learner.check("decoder", loss_d, {"rec": rec_real, "kl_rec": kl_rec, "kl_fake": kl_fake})
        update(learner, learner.opt_d, m.decoder, loss_d, step)
    return {**terms, "loss_d": loss_d, **({"repulsion_fake": rep_fake.mean()} if rep_fake is not None else {})}


def intro_step(learner: Learner, obj: IntroObjective, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
    """The IntroVAE update (Huang et al., NeurIPS 2018, Algorithm 1): the encoder, then the decoder,
    frozen and detached as in :func:`soft_intro_step`, without re-decodings."""
    m = learner.model
    z_prior = m.prior_std * step.randn(m.z_dim, x.device)
    with frozen(m.decoder):  # the encoder step: x_r and x_f detached
        mu, logvar, z, rec, fake = _real_and_fake(m, x, z_prior, step)
        rec_real, kl_real = obj.rec(x, rec), obj.kl(mu, logvar)
        kls = [obj.kl(*p) for p in _pairs(_reencode(m, rec.detach(), fake))]
        loss_e, parts, split = obj.encoder_loss(rec_real, kl_real, *kls)
        learner.check("encoder", loss_e, {"rec": rec_real, "kl_real": kl_real, "kl_rec": kls[0], "kl_fake": kls[1]})
        terms = _encoder_terms(learner, step, rec_real, kl_real, *kls, loss_e, parts, split)
        update(learner, learner.opt_e, m.encoder, loss_e, step)
    with frozen(m.encoder):  # the decoder step: x_r and x_f carry gradients through their re-encodings
        rec_real = obj.rec(x, rec := m.decode(z.detach()))
        kls = [obj.kl(*p) for p in _pairs(_reencode(m, rec, m.decode(z_prior)))]
        loss_d = obj.decoder_loss(rec_real, *kls)
        learner.check("decoder", loss_d, {"rec": rec_real, "kl_rec": kls[0], "kl_fake": kls[1]})
        update(learner, learner.opt_d, m.decoder, loss_d, step)
    return {**terms, "loss_d": loss_d}


def _real_and_fake(m: SoftIntroVAE, x: torch.Tensor, z_prior: torch.Tensor, step: Step):
    """The encoder step's forward passes: the real batch's posterior, a sample ``z`` of it and its
    reconstruction (with gradients), and the fakes ``D(z_prior)`` (without)."""
    mu, logvar = m.encode(x)  # the only pass that moves BatchNorm running statistics
    z = posterior_sample(mu, logvar, step)
    rec = m.decode(z)
    with torch.no_grad():
        fake = m.decode(z_prior)
    return mu, logvar, z, rec, fake


def _pairs(flat):
    return (flat[0], flat[1]), (flat[2], flat[3])


def _reencode(m: SoftIntroVAE, rec: torch.Tensor, fake: torch.Tensor):
    """Posteriors of reconstructed and generated clouds; they do not move BatchNorm's running statistics."""
    with frozen_batchnorm_stats(m.encoder):
        mu_r, lv_r = m.encode(rec)
        mu_f, lv_f = m.encode(fake)
    return mu_r, lv_r, mu_f, lv_f


def _encoder_terms(learner: Learner, step: Step, rec_real, kl_real, kl_rec, kl_fake, loss_e, parts, split) -> dict:
    """The encoder step's logged terms: batch means, the loss's parts, the global-batch medians of the KLs
    and, on a diagnosed step, the encoder gradient of each loss term (before the update)."""
    if step.diagnose:
        params = [p for p in learner.model.encoder.parameters() if p.requires_grad]
        weighted = {k: v * step.share for k, v in split.items()} if learner.dist.enabled else split
        parts = {**parts, **gradient_diagnostics(weighted, params, reduce=lambda g: sum_tensor(g, learner.dist))}
    terms = {"rec": rec_real.mean(), "kl_real": kl_real.mean(), "kl_rec": kl_rec.mean(), "kl_fake": kl_fake.mean(),
             **parts, "loss_e": loss_e, "kl_real_median": _global_median(kl_real, step, learner.dist),
             "kl_fake_median": _global_median(kl_fake, step, learner.dist)}
    terms["kl_gap"] = terms["kl_fake"] - terms["kl_real"]
    return terms


def _global_median(values: torch.Tensor, step: Step, dist: DistContext) -> torch.Tensor:
    """The median over the global batch of this process's per-shape ``values`` (B_shard,)."""
    if not dist.enabled:
        return values.detach().median()
    full = values.new_zeros(step.batch_size)
    full[step.rows] = values.detach()
    return sum_tensor(full, dist).median()


STEPS = {"vae": vae_step, "soft-intro": soft_intro_step, "intro": intro_step}
