"""``python -m pointcloud_sivae.train``: train a Soft-IntroVAE on a prepared ShapeNet category.

Each step runs the encoder step, then the decoder step (Daniel & Tamar, CVPR 2021,
Algorithm 1; docs/method.md):

* **Encoder step**: the decoder is frozen (``requires_grad=False``); the
  reconstructions ``x_r`` and prior samples ``x_f`` are detached before they are
  re-encoded; only the encoder's Adam steps.
* **Decoder step**: the encoder is frozen; ``x_r = D(z.detach())`` and
  ``x_f = D(z_f)`` carry gradients into the decoder through their re-encodings
  (KL terms); their re-decodings use detached latents and detached targets, as in
  the reference; only the decoder's Adam steps.

BatchNorm (encoder only): every batch, real or generated, is normalised with its
own batch statistics in training, so the encoder sees both kinds the same way;
the *running* statistics are updated by the real batch of the encoder step alone
(:func:`~pointcloud_sivae.model.frozen_batchnorm_stats` around every other
encoder pass), so evaluation, which uses them, reflects real data. The public
reference updates them with real, reconstructed and fake batches, in both steps.

Reconstruction loss: Chamfer distance *summed* over points (both directions),
squared L2, rescaled to ``N_ref = loss.scale_points`` points and to lengths in units of
``D = loss.frame_diagonal`` (the training shapes' mean bounding-box diagonal), with
``s = 1 / (3 N_ref)`` (:func:`~pointcloud_sivae.losses.objective_scales`): at N = N_ref =
2048 and D = 1 exactly the reference's ``s = 1/(3N)`` and summed Chamfer, and at any
other N and in any frame the same balance of reconstruction, KL and exponential terms.
The logged ``rec`` is this ``L_r``.
Validation reports the *mean* convention (PointFlow), in the evaluation frame.

Health diagnostics (TensorBoard and ``metrics.jsonl``): the exponents
``2 s (b_rec L_r + b_neg KL)`` of the reconstructed and generated batches (mean and
min) and the KL gap every step; at each validation the diversity of prior samples
(mean pairwise Chamfer distance) beside the val split's, the active latent units
(Burda et al. 2016), and the val reconstruction Chamfer distance beside the mean
distance from a val shape to its nearest other val shape. A warning is printed and
logged once when the exponential terms stay saturated, or the KL gap stays negative,
for ``train.health_epochs`` epochs.

The first ``warmup_epochs`` epochs (exactly that many) train a plain VAE.

Baselines (``--method``), same model, data, logging and checkpoints:

* ``vae``: one joint step on ``s (b_rec L_r(x) + b_kl KL(x))``.
* ``intro`` (IntroVAE, Huang et al., NeurIPS 2018): the same encoder-then-decoder
  structure, freezing and detaching as above, with the hinge objectives of
  :func:`~pointcloud_sivae.losses.intro_encoder_loss` (margin ``intro_margin``
  nats, weights ``intro_alpha``, ``intro_beta``); no re-decodings are needed.

Reading order: :meth:`Trainer.fit` is a loop of :meth:`~Trainer._train_epoch` (steps,
then schedules) and :meth:`~Trainer._finish_epoch` (health, validation, visuals,
metrics line, checkpoints). :meth:`~Trainer.train_step` looks the method up once in
:data:`OBJECTIVES` (which step runs, which losses) and passes a :class:`StepState`
(the step's noise, shard and weight) to every pass; the resolved config is a new
object (:func:`config_for_data`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as _dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pointcloud_sivae.jsd import jsd_between_sets, outside_fraction
from pointcloud_sivae.metrics import generation_metrics
from pointcloud_sivae.categories import dataset_category
from pointcloud_sivae.chamfer import chamfer_distance, resolve_backend
from pointcloud_sivae.checkpoint import (
    CheckpointError,
    error_detail,
    load_checkpoint,
    remove_stale_temporaries,
    resolve_checkpoint_path,
    run_dir_of,
    save_checkpoint,
)
from pointcloud_sivae.config import (
    FLAG_SECTION,
    RESUMABLE_OVERRIDES,
    RunConfig,
    add_config_flags,
    explicit_flags,
    list_presets,
    resolve_config,
    set_field,
    upgrade_stored_config,
)
from pointcloud_sivae.data import (
    SUBSET_RULE,
    check_point_count,
    fixed_subsets,
    load_split,
    mean_diagonal,
    random_subsets,
)
from pointcloud_sivae.distances import pairwise_chamfer
from pointcloud_sivae.distributed import (
    DistContext,
    init_from_env,
    leave,
    reduce_weighted,
    shard_rows,
    sum_gradients,
    sum_tensor,
)
from pointcloud_sivae.health import HealthMonitor, active_units, gradient_diagnostics, nearest_other, set_diversity
from pointcloud_sivae.latent import interpolate
from pointcloud_sivae.losses import (
    gaussian_kl,
    intro_decoder_loss,
    objective_scales,
    intro_encoder_loss,
    soft_intro_decoder_loss,
    soft_intro_encoder_loss,
    vae_loss,
)
from pointcloud_sivae.model import SoftIntroVAE, frozen_batchnorm_stats
from pointcloud_sivae.normalization import EvaluationFrame
from pointcloud_sivae.render import point_colors, render_grid
from pointcloud_sivae.runtime import provenance, select_device
from pointcloud_sivae.tb import NullWriter, make_writer



class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the optimiser step."""


class RunFolderError(ValueError):
    """The run folder cannot be written (permissions, a file in the way, a full disk)."""


def _checkpoint_bytes(model: nn.Module) -> int:
    """About what one checkpoint takes: the weights and the two Adam moments, plus 10 %."""
    return int(1.1 * 3 * sum(p.numel() * p.element_size() for p in model.parameters()))


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def config_for_data(cfg: RunConfig, data_num_points: int, data_diagonal: float) -> RunConfig:
    """The run's config for its prepared data: a new object (``cfg`` is unchanged) with the
    fields that are measured on the data set: ``model.num_points`` (0: every prepared point;
    fewer train on PointFlow's random subsets, fresh per cloud per step, and validate on fixed
    ones) and ``loss.frame_diagonal`` (0: ``data_diagonal``, the mean bounding-box diagonal of
    the training shapes).

    Raises:
        ValueError: ``cfg`` asks for more points than the data has.
    """
    check_point_count(cfg.model.num_points, data_num_points, f"{cfg.data.data_root}/{cfg.data.category}")
    cfg = copy.deepcopy(cfg)
    cfg.model.num_points = cfg.model.num_points or data_num_points
    cfg.loss.frame_diagonal = cfg.loss.frame_diagonal or data_diagonal
    return cfg


def _data_fingerprint(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in ("category", "num_points", "normalization", "splits", "split_seed")}


@dataclasses.dataclass(frozen=True)
class StepState:
    """What the passes of one optimisation step share, made by ``Trainer._begin_step``.

    Attributes:
        noise: generator of the step's latent noise, seeded by (seed, step).
        batch_size: shapes in the global batch (all processes).
        rows: this process's rows of the global batch.
        share: this process's fraction of the global batch (its weight in batch means).
        diagnose: measure the encoder gradient of each loss term (the first step of an epoch).
    """

    noise: torch.Generator
    batch_size: int
    rows: slice
    share: float
    diagnose: bool = False


class Objective:
    """A training method: which step runs (``step``) and, for the introspective methods, the
    encoder and decoder losses (``losses.py``). ``cycles()`` computes the soft-intro
    reconstruction terms of reconstructed and generated clouds when a loss needs them.
    ``encoder_loss`` returns the loss, its logged terms, and the loss split into ``real`` and
    its adversarial terms (for :func:`~pointcloud_sivae.health.gradient_diagnostics`)."""

    step = "_introspective_step"

    def encoder_loss(self, trainer, rec_real, kl_real, kl_rec, kl_fake, cycles, checked):
        raise NotImplementedError

    def decoder_loss(self, trainer, rec_real, kl_rec, kl_fake, cycles):
        raise NotImplementedError


class VAEObjective(Objective):
    """The VAE's ELBO: one joint step (the warm-up epochs of every method, and ``vae``)."""

    step = "_vae_step"


class SoftIntroObjective(Objective):
    """Soft-IntroVAE (Daniel & Tamar, CVPR 2021): the exponential ELBO of fakes, with cycle terms."""

    def encoder_loss(self, trainer, rec_real, kl_real, kl_rec, kl_fake, cycles, checked):
        L = trainer.cfg.loss
        rec_rec, rec_fake = cycles()
        checked.update(rec_rec=rec_rec, rec_fake=rec_fake)
        loss, parts = soft_intro_encoder_loss(rec_real, kl_real, rec_rec, kl_rec, rec_fake, kl_fake,
                                              scale=trainer.scale, beta_rec=L.beta_rec, beta_kl=L.beta_kl,
                                              beta_neg=L.beta_neg)
        split = {"real": parts.pop("real"), "exp_rec": 0.25 * parts["expelbo_rec"],
                 "exp_fake": 0.25 * parts["expelbo_fake"]}
        return loss, parts, split

    def decoder_loss(self, trainer, rec_real, kl_rec, kl_fake, cycles):
        L = trainer.cfg.loss
        rec_rec, rec_fake = cycles()
        return soft_intro_decoder_loss(rec_real, kl_rec, kl_fake, rec_rec, rec_fake, scale=trainer.scale,
                                       beta_rec=L.beta_rec, beta_kl=L.beta_kl, gamma_r=L.gamma_r)


class IntroObjective(Objective):
    """IntroVAE (Huang et al., NeurIPS 2018): the hinge on the KL of fakes."""

    def encoder_loss(self, trainer, rec_real, kl_real, kl_rec, kl_fake, cycles, checked):
        L = trainer.cfg.loss
        loss, parts = intro_encoder_loss(rec_real, kl_real, kl_rec, kl_fake, margin=L.intro_margin,
                                         alpha=L.intro_alpha, beta=L.intro_beta)
        split = {"real": kl_real.mean() + L.intro_beta * rec_real.mean(),
                 "hinge_rec": L.intro_alpha * parts["hinge_rec"], "hinge_fake": L.intro_alpha * parts["hinge_fake"]}
        return loss, parts, split

    def decoder_loss(self, trainer, rec_real, kl_rec, kl_fake, cycles):
        L = trainer.cfg.loss
        return intro_decoder_loss(rec_real, kl_rec, kl_fake, alpha=L.intro_alpha, beta=L.intro_beta)


OBJECTIVES: dict[str, Objective] = {"soft-intro": SoftIntroObjective(), "vae": VAEObjective(),
                                    "intro": IntroObjective()}


class Trainer:
    """Owns the model, optimisers, data and run folder; ``fit()`` trains.

    Build with :meth:`new_run` or :meth:`resume`.
    """

    def __init__(self, cfg: RunConfig, run_dir: Path, state: dict | None = None, dist_ctx: DistContext | None = None):
        self.run_dir = Path(run_dir)
        self.dist = dist_ctx or DistContext()
        self.device = select_device(cfg.train.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        torch.manual_seed(cfg.train.seed)
        self.backend = resolve_backend(cfg.loss.chamfer_backend, self.device)  # the training loss
        self.matrix_backend = resolve_backend(cfg.loss.chamfer_backend, self.device, use="matrix")  # validation

        train = load_split(cfg.data.data_root, cfg.data.category, "train")
        self.manifest = train.manifest
        if len(train.ids) < 2:
            raise ValueError(f"the train split has {len(train.ids)} shape(s); at least 2 are needed (BatchNorm)")
        self.cfg = cfg = config_for_data(cfg, self.manifest["num_points"], mean_diagonal(train.points))  # a new object
        M, seed = cfg.model.num_points, cfg.data.subset_seed
        val = load_split(cfg.data.data_root, cfg.data.category, "val", num_points=M, subset_seed=seed)
        self.train_points = train.points.to(self.device)  # every prepared point: steps draw subsets of M
        self.train_fixed = fixed_subsets(self.train_points, train.ids, M, seed)  # diagnostics on train shapes
        self.val_points = val.points.to(self.device)  # the fixed subsets of M points
        self.frame = EvaluationFrame.of(self.manifest["normalization"])  # model frame <-> evaluation frame

        self.model = SoftIntroVAE(cfg.model).to(self.device)
        self.model.encoder.sync_batchnorm = self.dist.enabled
        if cfg.train.compile:  # in place: parameter names and checkpoints are unchanged
            self.model.encoder.compile()
            self.model.decoder.compile()
        o = cfg.optim
        self.opt_e = torch.optim.Adam(self.model.encoder.parameters(), lr=o.lr_e, betas=(o.beta1, o.beta2))
        self.opt_d = torch.optim.Adam(self.model.decoder.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2))
        self.sched_e = torch.optim.lr_scheduler.MultiStepLR(self.opt_e, list(o.milestones), gamma=o.lr_gamma)
        self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, list(o.milestones), gamma=o.lr_gamma)
        # s = 1 / (3 N_ref), L_r = N_ref / (N D^2) * summed Chamfer: the official objective at any N, in any frame
        self.scale, self.rec_factor = objective_scales(cfg.model.num_points, cfg.loss.scale_points,
                                                       cfg.loss.frame_diagonal)
        self.health = HealthMonitor(cfg.train.health_epochs, cfg.loss.method, self.scale)
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.best = {"epoch": None, "val_jsd": None, "val_chamfer": None}
        self.history: list[dict] = []
        self.last_val: dict[str, float] = {}  # the latest validation of this session
        self._val_D_rr = None  # val-against-val Chamfer matrix, computed at the first validation
        if state is not None:
            self._load_state(state)

    # ----- construction ------------------------------------------------------------------

    @classmethod
    def new_run(cls, cfg: RunConfig, dist_ctx: DistContext | None = None) -> "Trainer":
        """Start a run in ``<out_dir>/<run_name>`` (a fresh folder). ``cfg`` is not changed: the
        run's config (canonical category, its name) is a new object, ``trainer.cfg``."""
        cfg = copy.deepcopy(cfg)
        cfg.data.category = dataset_category(cfg.data.category)
        name = cfg.train.run_name or f"{cfg.data.category}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        if dist_ctx is not None and dist_ctx.enabled:  # one name for all processes: rank 0's
            box = [name]
            torch.distributed.broadcast_object_list(box, src=0)
            name = box[0]
        cfg.train.run_name = name
        run_dir = Path(cfg.train.out_dir) / name
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise FileExistsError(f"{run_dir} already holds a run; resume it with --resume {run_dir} "
                                  "or choose another --run-name")
        if dist_ctx is not None and dist_ctx.enabled:
            torch.distributed.barrier()  # every process checks for an existing run before rank 0 writes one
        trainer = cls(cfg, run_dir, dist_ctx=dist_ctx)
        trainer._write_run_files(resumed_from=None)
        trainer._drop_metrics_after_checkpoint()  # a folder a killed run left before its first checkpoint
        return trainer

    @classmethod
    def resume(cls, path: str | Path, overrides: dict[str, object] | None = None,
               dist_ctx: DistContext | None = None) -> "Trainer":
        """Continue a run from its last checkpoint (or a given ``.pt``).

        Only :data:`~pointcloud_sivae.config.RESUMABLE_OVERRIDES` may change; any
        other flag must equal the saved value.

        Raises:
            CheckpointError: missing/unreadable checkpoint, a flag that conflicts with
                the saved config, or prepared data that changed since the checkpoint.
        """
        ckpt_path = resolve_checkpoint_path(path)
        state = load_checkpoint(ckpt_path)
        state["config"], notes = upgrade_stored_config(state["config"], where=str(ckpt_path))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        try:
            cfg = RunConfig.from_dict(state["config"], where=f"config stored in {ckpt_path}")
        except ValueError as exc:
            raise CheckpointError(f"incompatible checkpoint: {exc}") from None
        conflicts = []
        for key, value in (overrides or {}).items():
            section = FLAG_SECTION[key]
            saved = getattr(getattr(cfg, section), key)
            set_field(cfg, section, key, value, where="command line")
            if key not in RESUMABLE_OVERRIDES and getattr(getattr(cfg, section), key) != saved:
                conflicts.append(f"--{key.replace('_', '-')} {value} (checkpoint: {saved})")
        if conflicts:
            raise CheckpointError(
                f"incompatible with the checkpoint's config: {', '.join(conflicts)}. A resumed run keeps its "
                f"config (only {sorted(RESUMABLE_OVERRIDES)} may change); start a new run instead"
            )
        run_dir = run_dir_of(ckpt_path)
        trainer = cls(cfg, run_dir, state=state, dist_ctx=dist_ctx)
        trainer._write_run_files(resumed_from=str(ckpt_path))
        trainer._drop_metrics_after_checkpoint()
        return trainer

    def _load_state(self, state: dict) -> None:
        saved, now = _data_fingerprint(state["manifest"]), _data_fingerprint(self.manifest)
        changed = [k for k in saved if saved[k] != now[k]]
        if changed:
            raise CheckpointError(
                f"the prepared data under {self.cfg.data.data_root} differs from the checkpoint's "
                f"({', '.join(changed)}); restore the data the run was trained on, or start a new run"
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit the configured model: {exc}") from None
        self.opt_e.load_state_dict(state["optimizer_e"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        self.sched_e.load_state_dict(state["scheduler_e"])
        self.sched_d.load_state_dict(state["scheduler_d"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.best = dict(state["best"])
        self.health.load_state_dict(state.get("health"))
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer_e": self.opt_e.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "scheduler_e": self.sched_e.state_dict(),
            "scheduler_d": self.sched_d.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best": self.best,
            "health": self.health.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
            "config": self.cfg.to_dict(),
            "manifest": self.manifest,
        }

    def _check_run_folder(self) -> None:
        """Before any training: the run folder can be created and written, and has room for a
        checkpoint (a written one is replaced atomically, so two must fit for a moment).

        Raises:
            RunFolderError: naming the path and the cause.
        """
        ckpt_dir = self.run_dir / "checkpoints"
        try:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            probe = ckpt_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise RunFolderError(f"cannot write the run folder {self.run_dir}: {exc.strerror or exc} "
                                 f"({exc.filename or ckpt_dir}); choose another --out-dir or fix its "
                                 "permissions") from None
        need, free = 2 * _checkpoint_bytes(self.model), shutil.disk_usage(ckpt_dir).free
        if free < need:
            raise RunFolderError(f"not enough free space for checkpoints in {ckpt_dir}: {free / 2**20:.1f} MiB "
                                 f"free, {need / 2**20:.1f} MiB needed; free some space or choose another --out-dir")
        removed = remove_stale_temporaries(ckpt_dir)
        if removed:
            print(f"removed {len(removed)} temporary file(s) left by an interrupted checkpoint write in {ckpt_dir}",
                  file=sys.stderr)

    def _save(self, state: dict, path: Path) -> None:
        try:
            save_checkpoint(state, path)
        except OSError as exc:
            last = path.parent / "last.pt"
            raise RunFolderError(
                f"cannot write checkpoint {path}: {exc.strerror or exc}; "
                + (f"the last good checkpoint {last} is intact (resume with --resume {self.run_dir} once there "
                   "is room)" if last.exists() else "no checkpoint was written yet")) from None

    def _write_run_files(self, resumed_from: str | None) -> None:
        if not self.dist.is_main:
            return
        self._check_run_folder()
        (self.run_dir / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        (self.run_dir / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")
        info_path = self.run_dir / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {"sessions": []}
        origin = provenance()  # the fields every result file carries; a session says "started"
        info["sessions"].append({
            "started": origin["created"],
            "command": origin["command"],
            "git_revision": origin["git_revision"],
            "torch": torch.__version__,
            "device": str(self.device),
            "chamfer_backend": self.backend,
            "validation_chamfer_backend": self.matrix_backend,
            "processes": self.dist.world_size,
            "points": self._points_used(),
            "resumed_from": resumed_from,
            "start_epoch": self.epoch,
        })
        info_path.write_text(json.dumps(info, indent=2) + "\n")

    def _points_used(self) -> dict:
        """How many points each cloud has, and which of them each use takes (for ``run_info.json``)."""
        M, N = self.cfg.model.num_points, self.manifest["num_points"]
        if M == N:
            return {"prepared": N, "model": M, "train": "all", "validation": "all"}
        return {"prepared": N, "model": M,
                "train": (f"a fresh uniform subset of {M} per cloud per step (generator seeded by seed and step)"
                          if self.cfg.data.train_subsets == "fresh" else "the fixed subset of each cloud (as validation)"),
                "validation": f"a fixed subset of {M} per cloud, seed data.subset_seed = {self.cfg.data.subset_seed}: "
                              + SUBSET_RULE}

    def _drop_metrics_after_checkpoint(self) -> None:
        """On resume: ``metrics.jsonl`` keeps the epochs up to the checkpoint's, which are retrained otherwise."""
        metrics = self.run_dir / "metrics.jsonl"
        if self.dist.is_main and metrics.exists():
            keep = [ln for ln in metrics.read_text().splitlines() if ln and json.loads(ln)["epoch"] <= self.epoch]
            metrics.write_text("".join(ln + "\n" for ln in keep))

    # ----- one step ----------------------------------------------------------------------

    def _chamfer(self, a, b):
        """``L_r``: Chamfer distance summed over points, rescaled to ``scale_points`` points; (B,)."""
        d = chamfer_distance(a, b, point_reduction="sum", backend=self.backend)
        return d if self.rec_factor == 1.0 else d * self.rec_factor

    def _kl(self, mu, logvar):
        return gaussian_kl(mu.float(), logvar.float(), self.cfg.model.prior_std)

    def _check_finite(self, which: str, loss: torch.Tensor, terms: dict) -> None:
        finite = torch.isfinite(loss.detach()).float()
        if self.dist.enabled:  # every process stops together
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() == 1.0:
            return
        shown = ", ".join(f"{k}={float(v.detach().mean()):.4g}" for k, v in terms.items())
        last = self.run_dir / "checkpoints" / "last.pt"
        raise NonFiniteLossError(
            f"non-finite {which} loss at epoch {self.epoch + 1}, step {self.global_step + 1} ({shown}). "
            "Likely causes: beta_neg too low for this data (the KL of generated clouds explodes), "
            "a learning rate too high, or non-finite input clouds. "
            + (f"The last good checkpoint {last} (epoch {self.epoch}) is intact; "
               if last.exists() else "No checkpoint was written yet; ")
            + "start a new run with a lower --lr-e/--lr-d or a higher --beta-neg."
        )

    def _vae_step(self, x: torch.Tensor, step: StepState, objective: Objective) -> dict[str, torch.Tensor]:
        """One joint encoder + decoder update of the VAE objective (warm-up epochs and ``vae``)."""
        L = self.cfg.loss
        mu, logvar = self.model.encode(x)
        rec = self.model.decode(self._reparam(mu, logvar, step))
        rec_real, kl_real = self._chamfer(x, rec), self._kl(mu, logvar)
        loss = vae_loss(rec_real, kl_real, scale=self.scale, beta_rec=L.beta_rec, beta_kl=L.beta_kl)
        self._check_finite("VAE", loss, {"rec": rec_real, "kl_real": kl_real})
        self.opt_e.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        self._backward(loss, step)
        sum_gradients(self.model, self.dist)
        self.opt_e.step()
        self.opt_d.step()
        return {"rec": rec_real.mean(), "kl_real": kl_real.mean(), "loss_e": loss, "loss_d": loss}

    def _introspective_step(self, x: torch.Tensor, step: StepState, objective: Objective) -> dict[str, torch.Tensor]:
        """The encoder update, then the decoder update, of ``soft-intro`` or ``intro``: they share
        the prior latents and the real batch's latents."""
        z_prior = self.cfg.model.prior_std * self._global_randn(step)
        z, terms = self._encoder_step(x, z_prior, step, objective)
        terms["loss_d"] = self._decoder_step(x, z, z_prior, step, objective)
        return terms

    def _cycle(self, points: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, step: StepState) -> torch.Tensor:
        """``L_r`` of ``points`` against the decoding of a posterior sample: the soft-intro cycle terms."""
        return self._chamfer(points, self.model.decode(self._reparam(mu, logvar, step)))

    def _encoder_step(self, x: torch.Tensor, z_prior: torch.Tensor, step: StepState, objective: Objective):
        """Encoder update; returns the detached latents of ``x`` (reused by the decoder step) and
        the logged terms."""
        m = self.model
        _set_requires_grad(m.decoder, False)
        try:
            mu, logvar = m.encode(x)  # the only pass that updates BatchNorm running statistics
            z = self._reparam(mu, logvar, step)
            rec = m.decode(z)
            with torch.no_grad():
                fake = m.decode(z_prior)
            rec_real, kl_real = self._chamfer(x, rec), self._kl(mu, logvar)
            rec_d = rec.detach()
            with frozen_batchnorm_stats(m.encoder):
                mu_r, lv_r = m.encode(rec_d)
                mu_f, lv_f = m.encode(fake)
            kl_rec, kl_fake = self._kl(mu_r, lv_r), self._kl(mu_f, lv_f)
            checked = {"rec": rec_real, "kl_real": kl_real, "kl_rec": kl_rec, "kl_fake": kl_fake}
            cycles = (lambda: (self._cycle(rec_d, mu_r, lv_r, step), self._cycle(fake, mu_f, lv_f, step)))
            loss, parts, split = objective.encoder_loss(self, rec_real, kl_real, kl_rec, kl_fake, cycles, checked)
            self._check_finite("encoder", loss, checked)
            if step.diagnose:
                parts.update(self._gradient_diagnostics(split, step))
            self.opt_e.zero_grad(set_to_none=True)
            self._backward(loss, step)
            sum_gradients(m.encoder, self.dist)
            self.opt_e.step()
        finally:
            _set_requires_grad(m.decoder, True)
        terms = {"rec": rec_real.mean(), "kl_real": kl_real.mean(), "kl_rec": kl_rec.mean(),
                 "kl_fake": kl_fake.mean(), **parts, "loss_e": loss, "kl_real_median": self._global_median(kl_real, step),
                 "kl_fake_median": self._global_median(kl_fake, step)}
        terms["kl_gap"] = terms["kl_fake"] - terms["kl_real"]
        return z.detach(), terms

    def _decoder_step(self, x: torch.Tensor, z: torch.Tensor, z_prior: torch.Tensor, step: StepState,
                      objective: Objective) -> torch.Tensor:
        """Decoder update; returns the loss."""
        m = self.model
        _set_requires_grad(m.encoder, False)
        try:
            fake = m.decode(z_prior)
            rec = m.decode(z)
            rec_real = self._chamfer(x, rec)
            with frozen_batchnorm_stats(m.encoder):
                mu_r, lv_r = m.encode(rec)
                mu_f, lv_f = m.encode(fake)
            kl_rec, kl_fake = self._kl(mu_r, lv_r), self._kl(mu_f, lv_f)

            def cycles():  # the posterior samples are constants of the decoder's loss
                z_r = self._reparam(mu_r, lv_r, step).detach()
                z_f = self._reparam(mu_f, lv_f, step).detach()
                return self._chamfer(rec.detach(), m.decode(z_r)), self._chamfer(fake.detach(), m.decode(z_f))

            loss = objective.decoder_loss(self, rec_real, kl_rec, kl_fake, cycles)
            self._check_finite("decoder", loss, {"rec": rec_real, "kl_rec": kl_rec, "kl_fake": kl_fake})
            self.opt_d.zero_grad(set_to_none=True)
            self._backward(loss, step)
            sum_gradients(m.decoder, self.dist)
            self.opt_d.step()
        finally:
            _set_requires_grad(m.encoder, True)
        return loss

    def train_step(self, x: torch.Tensor, method: str, diagnose: bool = False) -> dict[str, float]:
        """One optimisation step on a (B, N, 3) batch; returns the logged terms as floats.

        Args:
            method: ``"soft-intro"`` or ``"intro"`` (encoder step, then decoder step, sharing
                the prior latents and the real batch's latents), or ``"vae"`` (one joint step).
        """
        if method not in OBJECTIVES:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(OBJECTIVES)}")
        objective = OBJECTIVES[method]  # the one place the method is looked at
        step = self._begin_step(x.shape[0], diagnose)
        x = x[step.rows]
        amp = self.cfg.train.amp == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            terms = getattr(self, objective.step)(x, step, objective)
        names = [k for k in terms if not k.endswith("_min")]
        values = reduce_weighted(torch.stack([terms[k].detach().float() for k in names]), step.share, self.dist)
        out = dict(zip(names, values.tolist()))  # one device sync
        mins = [k for k in terms if k.endswith("_min")]
        if mins:  # minima of the global batch, not a weighted mean of the shards' minima
            low = torch.stack([terms[k].detach().float() for k in mins])
            if self.dist.enabled:
                torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
            out.update(zip(mins, low.tolist()))
        return out

    def _begin_step(self, n: int, diagnose: bool = False) -> StepState:
        """The state of a step on a global batch of ``n`` shapes.

        The step's noise comes from a generator seeded by (seed, step), drawn for the
        global batch, so every process (and a resumed run) draws the same values."""
        noise = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed * 1_000_003 + self.global_step + 7919)
        rows = shard_rows(n, self.dist)
        return StepState(noise=noise, batch_size=n, rows=rows, share=(rows.stop - rows.start) / n, diagnose=diagnose)

    def _global_median(self, values: torch.Tensor, step: StepState) -> torch.Tensor:
        """The median over the global batch of this process's per-shape ``values`` (B_shard,)."""
        if not self.dist.enabled:
            return values.detach().median()
        full = values.new_zeros(step.batch_size)
        full[step.rows] = values.detach()
        return sum_tensor(full, self.dist).median()

    def _gradient_diagnostics(self, split: dict[str, torch.Tensor], step: StepState) -> dict[str, torch.Tensor]:
        """The encoder gradient of each term of its loss (norms, ratio, cosine), over the global batch."""
        params = [p for p in self.model.encoder.parameters() if p.requires_grad]
        weighted = {k: v * step.share for k, v in split.items()} if self.dist.enabled else split
        return gradient_diagnostics(weighted, params, reduce=lambda g: sum_tensor(g, self.dist))

    def _backward(self, loss: torch.Tensor, step: StepState) -> None:
        """Back-propagate this shard's share of the global batch loss. Weighting the loss (not
        the gradient) keeps the paths through the synchronised BatchNorm statistics, which
        reach every process's inputs, weighted correctly."""
        (loss * step.share if self.dist.enabled else loss).backward()

    def _global_randn(self, step: StepState) -> torch.Tensor:
        """Standard normal (global batch, Z) noise from the step's generator; this process's rows."""
        eps = torch.randn(step.batch_size, self.cfg.model.z_dim, generator=step.noise, device=self.device)
        return eps[step.rows]

    def _reparam(self, mu: torch.Tensor, logvar: torch.Tensor, step: StepState) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps`` from the step's global-batch noise."""
        mu, logvar = mu.float(), logvar.float()  # float32 latents under bf16 autocast too
        return mu + (0.5 * logvar).exp() * self._global_randn(step)

    # ----- epochs, validation, logging ---------------------------------------------------

    def _batches(self, epoch: int):
        """This epoch's global batches: a permutation seeded by (seed, epoch), the same in every
        process, so resuming is exact with any number of processes. A final batch smaller than
        two shapes (BatchNorm) or than the number of processes is dropped."""
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.train_points.shape[0], generator=g).to(self.device)
        return [b for b in perm.split(self.cfg.optim.batch_size) if len(b) >= max(2, self.dist.world_size)]

    def _batch(self, idx: torch.Tensor) -> torch.Tensor:
        """The clouds of the global batch ``idx``, (B, M, 3): all prepared points, or (M below the
        prepared count) a fresh uniform subset of M points of each cloud, drawn for the global
        batch by a generator seeded by (seed, step), so a resumed run draws the same subsets."""
        if self.cfg.data.train_subsets == "fixed":
            return self.train_fixed[idx]
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + self.global_step + 104729)
        return random_subsets(self.train_points[idx], self.cfg.model.num_points, g)

    def method_for_epoch(self, epoch: int) -> str:
        """``"vae"`` for epochs 1..warmup_epochs (1-based), the configured ``loss.method`` after."""
        return "vae" if epoch <= self.cfg.optim.warmup_epochs else self.cfg.loss.method

    @torch.no_grad()
    def _decode_prior(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(seed)
        return self.model.decode_chunked(self.model.sample_prior(n, generator=g))

    @torch.no_grad()
    def _reconstruct(self, points: torch.Tensor) -> torch.Tensor:
        """Decode the posterior means (deterministic reconstructions)."""
        return self.model.decode_chunked(self.model.posterior_means(points))

    def validate(self) -> dict[str, float]:
        """Val reconstruction Chamfer distance (mean convention, squared L2, evaluation
        frame, posterior means), JSD of ``jsd_sample_factor * |val|`` prior samples
        (fixed seed) against the val split, and MMD-CD, COV-CD, 1-NNA-CD of the first
        ``|val|`` of those samples (``val_generation_metrics``).

        Collapse diagnostics, same frame: ``val_sample_diversity_cd`` (mean pairwise
        Chamfer distance of those |val| samples) beside ``val_data_diversity_cd`` (the
        same for the val split; a ratio far below 1 is mode collapse, which MMD hides),
        ``val_nn_other_cd`` (mean distance from a val shape to its nearest other val shape:
        a ``val_chamfer`` no lower than it means the decoder ignores the latent, posterior
        collapse), and ``active_units`` of the train split's posterior means."""
        if len(self.val_points) == 0:
            return {}
        self.model.eval()
        try:
            real = self.frame.to_evaluation(self.val_points)
            rec = self.frame.to_evaluation(self._reconstruct(self.val_points))
            cd = chamfer_distance(real, rec, point_reduction="mean", backend=self.backend).mean().item()
            gen = self.frame.to_evaluation(self._decode_prior(self.cfg.train.jsd_sample_factor * len(real),
                                                    self.cfg.train.seed + 1))
            real_np, gen_np = real.cpu().numpy(), gen.cpu().numpy()
            out = {"val_chamfer": cd, "val_jsd": jsd_between_sets(gen_np, real_np, allow_outside=True),
                   "val_jsd_outside": outside_fraction(gen_np)}  # strays counted at their nearest cell
            if len(real_np) >= 2:
                out.update(self._val_generation_metrics(gen_np[: len(real_np)], real_np))
            mu = torch.cat([self.model.encode(c)[0] for c in self.train_fixed[:1024].split(256)])
            out.update(active_units(mu, self.cfg.model.prior_std))
        finally:
            self.model.train()
        return out

    @torch.no_grad()
    def _val_generation_metrics(self, sample, reference) -> dict[str, float]:
        """Diversity of |val| prior samples and of the val split, the val split's nearest-other
        distance, and (``val_generation_metrics``) MMD-CD, COV-CD and 1-NNA-CD of the samples
        against the val split (evaluation frame); the val-against-val matrix is computed once."""
        backend = self.matrix_backend
        if self._val_D_rr is None:
            self._val_D_rr = pairwise_chamfer(reference, backend=backend, device=self.device)
        D_ss = pairwise_chamfer(sample, backend=backend, device=self.device)
        out = {"val_sample_diversity_cd": set_diversity(D_ss), "val_data_diversity_cd": set_diversity(self._val_D_rr),
               "val_nn_other_cd": nearest_other(self._val_D_rr)}
        if self.cfg.train.val_generation_metrics:
            D_sr = pairwise_chamfer(sample, reference, backend=backend, device=self.device)
            table = generation_metrics(D_ss, D_sr, self._val_D_rr, "CD")  # val_mmd_cd, val_cov_cd, val_1nna_cd
            out.update({"val_" + k.lower().replace("1-nna", "1nna").replace("-", "_"): v for k, v in table.items()})
        return out

    def _log_visuals(self, writer) -> None:
        source = self.val_points if len(self.val_points) else self.train_fixed
        k = min(self.cfg.train.num_vis, len(source))
        self.model.eval()
        try:
            real = self.frame.to_evaluation(source[:k])
            rec = self.frame.to_evaluation(self._reconstruct(source[:k]))
            gen = self.frame.to_evaluation(self._decode_prior(k, self.cfg.train.seed + 2))
        finally:
            self.model.train()
        rows = [real.cpu().numpy(), rec.cpu().numpy(), gen.cpu().numpy()]
        names = ["real", "reconstruction", "generated"]
        for r, (name, clouds) in enumerate(zip(names, rows)):
            colors = np.broadcast_to(point_colors(clouds.shape[1], r), clouds.shape).copy()
            writer.add_mesh(f"clouds/{name}", vertices=torch.from_numpy(clouds),
                            colors=torch.from_numpy(colors), global_step=self.global_step)
        writer.add_image("clouds/grid", render_grid(rows, names), self.global_step, dataformats="HWC")
        if len(source) >= 2:
            writer.add_image("interpolation/strip", self._interpolation_strip(source[0], source[1]),
                             self.global_step, dataformats="HWC")

    @torch.no_grad()
    def _interpolation_strip(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8) -> np.ndarray:
        """Slerp between the posterior means of two shapes, rendered as one row (matplotlib)."""
        self.model.eval()
        try:
            mu = self.model.encode(torch.stack([a, b]))[0]
            clouds = self.frame.to_evaluation(self.model.decode(interpolate(mu[0], mu[1], steps, "slerp")))
        finally:
            self.model.train()
        return render_grid([clouds.cpu().numpy()], ["slerp: val shape 0 -> val shape 1"])

    def summary(self) -> str:
        """One line on the finished run: the best epoch, and what its last validation counted
        outside the JSD grid (reported here once, recorded per validation in ``metrics.jsonl``)."""
        best = self.best
        if best["epoch"] is None:
            return "no validation ran: the val split is empty"
        text = f"best epoch {best['epoch']}, val JSD {best['val_jsd']:.4g}, val Chamfer {best['val_chamfer']:.4g}"
        outside = self.last_val.get("val_jsd_outside", 0.0)
        if outside > 0:
            text += (f"; at the last validation {outside:.2%} of the generated points lay outside the JSD grid's "
                     "ball and counted at their nearest cell")
        return text

    def _is_better(self, val: dict) -> bool:
        if "val_jsd" not in val:
            return False
        if self.best["val_jsd"] is None:
            return True
        return (val["val_jsd"], val["val_chamfer"]) < (self.best["val_jsd"], self.best["val_chamfer"])

    def fit(self) -> list[dict]:
        """Train from the current epoch to ``optim.epochs``; returns the per-step history.

        After each epoch the checkpoint ``checkpoints/last.pt`` is replaced atomically;
        ``checkpoints/best.pt`` keeps the epoch with the lowest validation JSD (ties:
        lower validation Chamfer distance).
        """
        main = self.dist.is_main  # rank 0 alone logs, validates and writes checkpoints
        writer = make_writer(self.run_dir, purge_step=self.global_step + 1) if main else NullWriter()
        bar = self._progress_bar(enabled=main)
        if main:
            self._announce()
        try:
            while self.epoch < self.cfg.optim.epochs:
                record = self._train_epoch(self.epoch + 1, writer, bar)
                if main:
                    self._finish_epoch(record, writer)
        finally:
            bar.close()
            writer.close()
            if main and (self.run_dir / "checkpoints").is_dir():
                remove_stale_temporaries(self.run_dir / "checkpoints")
        return self.history

    def _progress_bar(self, enabled: bool):
        remaining = max(0, self.cfg.optim.epochs - self.epoch) * len(self._batches(1))
        return tqdm(total=remaining, disable=not (self.cfg.train.progress and enabled), unit="step",
                    dynamic_ncols=True)

    def _points_text(self) -> str:
        M, N = self.cfg.model.num_points, self.manifest["num_points"]
        return f"{M} points" if M == N else f"{M} of {N} points: a {self.cfg.data.train_subsets} subset per step, a fixed one for val"

    def _announce(self) -> None:
        cfg = self.cfg
        if self.epoch == 0:
            print(f"training {cfg.data.category} on {self.device} ({len(self.train_points)} train / "
                  f"{len(self.val_points)} val shapes, {self._points_text()}), Chamfer backend "
                  f"{self.backend}; {self.dist.world_size} process(es); run folder {self.run_dir}", file=sys.stderr)
        else:
            print(f"resuming {self.run_dir} after epoch {self.epoch} (step {self.global_step})", file=sys.stderr)

    def _train_epoch(self, epoch: int, writer, bar) -> dict:
        """The steps of one epoch, then the learning-rate schedules; returns the epoch's record
        (the mean of every logged term, learning rates, time)."""
        method = self.method_for_epoch(epoch)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        t_epoch = time.perf_counter()
        for i, idx in enumerate(self._batches(epoch)):  # the first step also measures the encoder's gradients
            for k, v in self._logged_step(self._batch(idx), method, epoch, writer, bar, diagnose=i == 0).items():
                sums[k], counts[k] = sums.get(k, 0.0) + v, counts.get(k, 0) + 1
        self.sched_e.step()
        self.sched_d.step()
        self.epoch = epoch
        return {"epoch": epoch, "global_step": self.global_step, "method": method,
                **{k: v / counts[k] for k, v in sums.items()},
                "lr_e": self.opt_e.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
                "epoch_time_s": time.perf_counter() - t_epoch}

    def _logged_step(self, x: torch.Tensor, method: str, epoch: int, writer, bar,
                     diagnose: bool = False) -> dict[str, float]:
        """:meth:`train_step`, counted, kept in the history, logged every ``log_every`` steps."""
        t0 = time.perf_counter()
        terms = self.train_step(x, method, diagnose)
        dt = time.perf_counter() - t0  # train_step ends in a device sync
        self.global_step += 1
        self.history.append({"epoch": epoch, "step": self.global_step, **terms})
        if self.global_step % self.cfg.train.log_every == 0:
            for k, v in terms.items():
                if not k.startswith("grad_"):  # gradient diagnostics: once per epoch, under health/
                    writer.add_scalar(f"loss/{k}", v, self.global_step)
            writer.add_scalar("lr/encoder", self.opt_e.param_groups[0]["lr"], self.global_step)
            writer.add_scalar("lr/decoder", self.opt_d.param_groups[0]["lr"], self.global_step)
            writer.add_scalar("perf/step_time_s", dt, self.global_step)
            writer.add_scalar("perf/shapes_per_s", len(x) / dt, self.global_step)
        bar.update(1)
        shown = {k: f"{terms[k]:.3g}" for k in ("rec", "kl_real", "kl_gap") if k in terms}  # this phase's terms
        bar.set_postfix(ep=epoch, **shown, refresh=False)
        return terms

    def _finish_epoch(self, record: dict, writer) -> None:
        """Rank 0 after an epoch: health warnings, validation (and the best epoch), visuals,
        the ``metrics.jsonl`` line, the checkpoints."""
        epoch, cfg = record["epoch"], self.cfg
        for message in self.health.update(record, dataclasses.asdict(cfg.loss)):
            print(f"\nwarning (epoch {epoch}): {message}", file=sys.stderr)
            record.setdefault("warnings", []).append(message)
            writer.add_text("health/warning", message, self.global_step)
        for k in [k for k in record if k.startswith("grad_")]:
            writer.add_scalar(f"health/{k}", record[k], self.global_step)
        last_epoch = epoch == cfg.optim.epochs
        if epoch % cfg.train.val_every == 0 or last_epoch:
            val = self.validate()
            self.last_val = val
            record.update(val)
            for k, v in val.items():
                writer.add_scalar(f"val/{k.removeprefix('val_')}", v, self.global_step)
            if self._is_better(val):
                self.best = {"epoch": epoch, "val_jsd": val["val_jsd"], "val_chamfer": val["val_chamfer"]}
        if epoch % cfg.train.vis_every == 0 or last_epoch:
            self._log_visuals(writer)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        state = self.state_dict()
        self._save(state, self.run_dir / "checkpoints" / "last.pt")
        if self.best["epoch"] == epoch:
            self._save(state, self.run_dir / "checkpoints" / "best.pt")
        writer.flush()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pointcloud_sivae.train",
        description="Train a Soft-IntroVAE on a prepared ShapeNet category "
        "(prepare it first with python -m shapenet_prep).",
    )
    p.add_argument("--config", help="JSON or TOML file with [model] [loss] [optim] [data] [train] tables")
    p.add_argument("--resume", metavar="RUN", help="run folder (runs/<run>) or checkpoint .pt to continue")
    p.add_argument("--preset", help="named settings shipped with the package, applied before --config and flags "
                                    "(see --list-presets)")
    p.add_argument("--list-presets", action="store_true", help="print the presets and what each is for, then exit")
    p.add_argument("--verbose", action="store_true", help="print the underlying details of an error")
    add_config_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_presets:
        for name, text in list_presets().items():
            print(f"{name}: {text}")
        return 0
    flags = explicit_flags(args)
    trainer, finished = None, False
    try:
        ctx = init_from_env(flags.get("device", "auto"))
        if args.resume:
            if args.config or args.preset:
                raise CheckpointError("--config and --preset cannot be combined with --resume: a resumed run "
                                      "keeps its config")
            placed = [f"--{k.replace('_', '-')}" for k in ("out_dir", "run_name") if k in flags]
            if placed:
                raise CheckpointError(f"{' and '.join(placed)} cannot be combined with --resume: a resumed run stays "
                                      f"in its folder ({args.resume}); to continue it elsewhere, copy that folder "
                                      "and resume the copy")
            trainer = Trainer.resume(args.resume, flags, dist_ctx=ctx)
        else:
            trainer = Trainer.new_run(resolve_config(args.config, flags, args.preset), dist_ctx=ctx)
        trainer.fit()
        finished = True
    except (ValueError, FileNotFoundError, FileExistsError, NonFiniteLossError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.verbose and error_detail(exc):
            print(error_detail(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system error not foreseen above: one line, path and cause
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if trainer is not None:
            print(f"\ninterrupted; continue with: python -m pointcloud_sivae.train --resume {trainer.run_dir} "
                  f"(restarts after epoch {trainer.epoch}, the last checkpoint)", file=sys.stderr)
        return 130
    finally:
        leave(finished)
    if trainer.dist.is_main:
        print(f"done: {trainer.run_dir} ({trainer.summary()})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
