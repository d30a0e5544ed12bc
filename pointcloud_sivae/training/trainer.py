"""The training loop: ``Trainer.fit`` runs epochs of :mod:`~pointcloud_sivae.training.steps`, validates,
logs and writes checkpoints.

Reading order: :meth:`Trainer.__init__` builds the data, model, optimisers and the
methods' objectives; :meth:`Trainer.fit` is a loop of :meth:`Trainer.train_epoch` (one
step function per batch, then the learning-rate schedules) and :meth:`Trainer.finish_epoch`
(health, validation, visuals, the ``metrics.jsonl`` line, checkpoints). The first
``warmup_epochs`` epochs (exactly that many) train a plain VAE.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pointcloud_sivae.data.normalization import EvaluationFrame
from pointcloud_sivae.data.prepared import fixed_subsets, load_categories, mean_diagonal, random_subsets
from pointcloud_sivae.metrics.distances import compile_kernels
from pointcloud_sivae.models.vae import SoftIntroVAE
from pointcloud_sivae.ops.chamfer import Chamfer, resolve_backend
from pointcloud_sivae.runs.checkpoint import CheckpointError, run_dir_of
from pointcloud_sivae.training.checkpoint import config_changes, resume_state, resumed_config
from pointcloud_sivae.runs.config import RunConfig, build_objectives, config_for_data, data_fingerprint, points_used
from pointcloud_sivae.training.distributed import (DistContext, first_rank_first, reduce_terms, share_cores, shard_rows,
                                                   synchronise_batchnorm)
from pointcloud_sivae.training.health import HealthMonitor
from pointcloud_sivae.training.logs import NullWriter, log_step, make_writer, summary_line
from pointcloud_sivae.training.run_folder import RunFolder, new_run_dir
from pointcloud_sivae.training.steps import STEPS, Learner, Step, compiled_backward_keeps_graph
from pointcloud_sivae.training.validation import Validator
from pointcloud_sivae.utils.runtime import native_bf16, select_device


class Trainer:
    """Owns the model, optimisers, data and run folder; ``fit()`` trains. Build with :meth:`new_run`
    or :meth:`resume`; ``cfg`` is not changed (the run's resolved config is ``trainer.cfg``)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, state: dict | None = None, dist_ctx: DistContext | None = None):
        self.folder, self.dist = RunFolder(run_dir), dist_ctx or DistContext()
        self.run_dir = self.folder.path
        share_cores(self.dist)
        self.device = select_device(cfg.train.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        torch.manual_seed(cfg.train.seed)
        train = load_categories(cfg.data.data_root, cfg.data.category, "train")
        if len(train.ids) < 2:
            raise ValueError(f"the train split has {len(train.ids)} shape(s); at least 2 are needed (BatchNorm)")
        self.manifest = train.manifest
        self.cfg = cfg = config_for_data(cfg, self.manifest["num_points"], mean_diagonal(train.points))
        M, seed = cfg.model.num_points, cfg.data.subset_seed
        val = load_categories(cfg.data.data_root, cfg.data.category, "val", num_points=M, subset_seed=seed)
        self.categories = train.categories  # one, or several trained on their union
        self.train_labels, self.val_labels = train.labels.to(self.device), val.labels.to(self.device)
        self.train_points = train.points.to(self.device)  # every prepared point: steps draw subsets of M
        self.train_fixed = fixed_subsets(self.train_points, train.ids, M, seed)  # diagnostics on train shapes
        self.val_points = val.points.to(self.device)  # the fixed subsets of M points

        self.model = SoftIntroVAE(**dataclasses.asdict(cfg.model)).to(self.device)
        if self.dist.enabled and cfg.train.sync_batchnorm:
            synchronise_batchnorm(self.model.encoder)  # BatchNorm statistics of the global batch
        if cfg.train.compile:  # in place: parameter names and checkpoints are unchanged
            self.model.encoder.compile()
            self.model.decoder.compile()
        if cfg.train.amp == "bf16" and not native_bf16(self.device) and self.dist.is_main:
            print(f"note: --amp bf16 on {self.device}, which has no bf16 instructions: autocast is emulated, about 3x "
                  "slower than float32 on a CPU without AVX512-BF16 or AMX; --amp auto picks float32 here",
                  file=sys.stderr)
        self.learner = Learner.with_adam(self.model, cfg.optim, self.dist, self._where)
        self.opt_e, self.opt_d = self.learner.opt_e, self.learner.opt_d
        self.chamfer = Chamfer(cfg.loss.chamfer_backend, self.device)  # the training loss and val reconstructions
        self.matrix_backend = resolve_backend(cfg.loss.chamfer_backend, self.device, use="matrix")  # val metrics
        first_rank_first(self.dist, lambda: compile_kernels(self.chamfer, self.matrix_backend, self.device))
        self.objectives = build_objectives(cfg, self.chamfer)  # every method's, by name
        self.health = HealthMonitor(cfg.train.health_epochs, cfg.loss.method, self.objectives["vae"].s)
        t = cfg.train
        self.validator = Validator(self.val_points, self.train_fixed, EvaluationFrame.of(self.manifest["normalization"]),
                                   seed=t.seed, chamfer=self.chamfer, matrix_backend=self.matrix_backend,
                                   jsd_factor=t.jsd_sample_factor, generation_metrics=t.val_generation_metrics,
                                   num_vis=t.num_vis, val_labels=self.val_labels, categories=self.categories)
        self.epoch, self.global_step = 0, 0  # completed epochs and steps
        self.best = {"epoch": None, "val_jsd": None, "val_chamfer": None}
        self.last_val: dict[str, float] = {}  # the latest validation of this session
        if state is not None:
            self._load_state(state)

    @classmethod
    def new_run(cls, cfg: RunConfig, dist_ctx: DistContext | None = None) -> "Trainer":
        """Start a run in ``<out_dir>/<run_name>`` (a fresh folder; :func:`new_run_dir`)."""
        cfg, run_dir = new_run_dir(cfg, dist_ctx or DistContext())
        trainer = cls(cfg, run_dir, dist_ctx=dist_ctx)
        trainer._start_session(resumed_from=None)
        return trainer

    @classmethod
    def resume(cls, path: str | Path, overrides: dict[str, object] | None = None,
               dist_ctx: DistContext | None = None) -> "Trainer":
        """Continue a run from its last checkpoint (or a given ``.pt``); only
        :data:`~pointcloud_sivae.runs.config.RESUMABLE_OVERRIDES` may differ from the saved config.

        Raises:
            CheckpointError: missing/unreadable checkpoint, a flag that conflicts with the saved
                config, a ``config.json`` that disagrees with the checkpoint, nothing left to train,
                or prepared data that changed since the checkpoint.
        """
        ckpt_path, state, cfg = resume_state(path, overrides or {})
        trainer = cls(cfg, run_dir_of(ckpt_path), state=state, dist_ctx=dist_ctx)
        changed = config_changes(resumed_config(state["config"], {}, where=str(ckpt_path)).to_dict(),
                                 trainer.cfg.to_dict())
        trainer._start_session(resumed_from=str(ckpt_path), changed=changed)
        return trainer

    def _start_session(self, resumed_from: str | None, changed: dict | None = None) -> None:
        """Check the folder and add this session to ``run_info.json``; a new run writes ``config.json``
        and ``manifest.json``, a resumed one never rewrites what the run was (its changed options are
        the session's ``changed``)."""
        if not self.dist.is_main:
            return
        self.folder.check(int(1.1 * 3 * sum(p.numel() * p.element_size() for p in self.model.parameters())))
        if resumed_from is None:
            self.folder.write_run_files(self.cfg.to_dict(), self.manifest)
        several = {} if len(self.categories) == 1 else {"categories": {
            name: {"train": int((self.train_labels == k).sum()), "val": int((self.val_labels == k).sum())}
            for k, name in enumerate(self.categories)}, "category_sampling": self.cfg.data.category_sampling}
        self.folder.add_session({
            "device": str(self.device), "precision": "bf16 autocast" if self.bf16 else "float32",
            "chamfer_backend": self.chamfer.name,
            "validation_chamfer_backend": self.matrix_backend, "processes": self.dist.world_size,
            "points": points_used(self.cfg, self.manifest["num_points"]), "resumed_from": resumed_from,
            "start_epoch": self.epoch, "changed": changed or {},
            "batch_size_used": min(self.cfg.optim.batch_size, len(self.train_points)),
            "validation": "every {} epochs".format(self.cfg.train.val_every) if len(self.val_points) else
                          "none: the val split is empty", **several})
        if self.cfg.optim.batch_size > len(self.train_points):
            print(f"note: --batch-size {self.cfg.optim.batch_size} is larger than the training split "
                  f"({len(self.train_points)} shapes): every epoch is one batch of {len(self.train_points)} "
                  "(run_info.json: batch_size_used)", file=sys.stderr)
        if not len(self.val_points):
            print(f"warning: the val split of {self.cfg.data.data_root}/{'+'.join(self.categories)} is empty: nothing is "
                  "validated, no best.pt is kept and the health diagnostics of validation are missing", file=sys.stderr)
        self.folder.keep_metrics_until(self.epoch)  # epochs after the checkpoint are trained again

    def _load_state(self, state: dict) -> None:
        saved, now = data_fingerprint(state["manifest"]), data_fingerprint(self.manifest)
        changed = [k for k in saved if saved[k] != now[k]]
        if changed:
            raise CheckpointError(f"the prepared data under {self.cfg.data.data_root} differs from the checkpoint's "
                                  f"({', '.join(changed)}); restore the data the run was trained on, or start a new run")
        try:
            self.learner.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit the configured model: {exc}") from None
        self.epoch, self.global_step, self.best = int(state["epoch"]), int(state["global_step"]), dict(state["best"])
        self.health.load_state_dict(state.get("health"))
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def state_dict(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return {**self.learner.state_dict(), "epoch": self.epoch, "global_step": self.global_step, "best": self.best,
                "health": self.health.state_dict(), "rng": {"torch": torch.get_rng_state(), "cuda": cuda},
                "config": self.cfg.to_dict(), "manifest": self.manifest}

    def _where(self) -> tuple[str, str]:
        last = self.folder.checkpoints / "last.pt"
        return (f"epoch {self.epoch + 1}, step {self.global_step + 1}",
                f"The last good checkpoint {last} (epoch {self.epoch}) is intact" if last.exists()
                else "No checkpoint was written yet")

    # ----- the loop ----------------------------------------------------------------------------

    def fit(self) -> list[dict]:
        """Train from the current epoch to ``optim.epochs``; returns this session's epoch records (the
        ``metrics.jsonl`` lines). ``checkpoints/last.pt`` is replaced atomically after every epoch;
        ``best.pt`` keeps the epoch of lowest val JSD (ties: lower val Chamfer distance)."""
        main = self.dist.is_main  # rank 0 alone logs, validates and writes checkpoints
        writer = make_writer(self.run_dir, purge_step=self.global_step + 1) if main else NullWriter()
        remaining = max(0, self.cfg.optim.epochs - self.epoch) * len(self.batches(1))
        bar = tqdm(total=remaining, disable=not (self.cfg.train.progress and main), unit="step", dynamic_ncols=True)
        if main:
            print(("training " + self._describe()) if self.epoch == 0 else
                  f"resuming {self.run_dir} after epoch {self.epoch} (step {self.global_step})", file=sys.stderr)
        records = []
        try:
            while self.epoch < self.cfg.optim.epochs:
                records.append(self.train_epoch(self.epoch + 1, writer, bar))
                if main:
                    self.finish_epoch(records[-1], writer)
        finally:
            bar.close()
            writer.close()
            if main:
                self.folder.remove_temporaries()
                self.folder.unlock()  # the session is over: the folder may be resumed at once
        return records

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """This epoch's global batches: a permutation seeded by (seed, epoch), the same in every process,
        so resuming is exact with any number of processes. A final batch smaller than two shapes
        (BatchNorm) or than the number of processes is dropped."""
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
        if len(self.categories) > 1 and self.cfg.data.category_sampling == "balanced":
            perm = balanced_order(self.train_labels.cpu(), len(self.categories), g).to(self.device)
        else:
            perm = torch.randperm(self.train_points.shape[0], generator=g).to(self.device)
        return [b for b in perm.split(self.cfg.optim.batch_size) if len(b) >= max(2, self.dist.world_size)]

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """The (B, M, 3) clouds of the global batch ``idx``: all prepared points, or (M below the prepared
        count) a fresh uniform subset of M points of every cloud drawn by a generator seeded by (seed,
        step), so a resumed run draws the same subsets; or each cloud's fixed subset (``train_subsets``)."""
        if self.cfg.data.train_subsets == "fixed":
            return self.train_fixed[idx]
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + self.global_step + 104729)
        return random_subsets(self.train_points[idx], self.cfg.model.num_points, g)

    def method_for_epoch(self, epoch: int) -> str:
        """``"vae"`` for epochs 1..warmup_epochs (1-based), the configured ``loss.method`` after."""
        return "vae" if epoch <= self.cfg.optim.warmup_epochs else self.cfg.loss.method

    def train_epoch(self, epoch: int, writer, bar) -> dict:
        """The epoch's steps (the first also measures the encoder's gradients), then the learning-rate
        schedules; returns the epoch's record: every logged term's mean, learning rates, time."""
        method, sums, counts, t0 = self.method_for_epoch(epoch), {}, {}, time.perf_counter()
        for i, idx in enumerate(self.batches(epoch)):
            t_step, x = time.perf_counter(), self.batch(idx)
            terms = self.train_step(x, method, diagnose=i == 0)
            dt = time.perf_counter() - t_step  # train_step ends in a device sync
            self.global_step += 1
            for k, v in terms.items():
                sums[k], counts[k] = sums.get(k, 0.0) + v, counts.get(k, 0) + 1
            if self.global_step % self.cfg.train.log_every == 0:
                log_step(writer, self.global_step, terms, self.opt_e, self.opt_d, dt, len(x))
            bar.update(1)
            bar.set_postfix(ep=epoch, **{k: f"{terms[k]:.3g}" for k in ("rec", "kl_real", "kl_gap") if k in terms},
                            refresh=False)  # only the terms this phase has
        lrs = self.learner.end_epoch()
        self.epoch = epoch
        return {"epoch": epoch, "global_step": self.global_step, "method": method,
                **{k: v / counts[k] for k, v in sums.items()}, **lrs, "epoch_time_s": time.perf_counter() - t0}

    def train_step(self, x: torch.Tensor, method: str, diagnose: bool = False) -> dict[str, float]:
        """One optimisation step of ``method`` on a (B, N, 3) global batch; returns the logged terms as
        floats (global-batch means; ``*_min`` terms: global-batch minima).

        Raises:
            ValueError: an unknown method. NonFiniteLossError: a loss is not finite.
        """
        if method not in STEPS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(STEPS)}")
        n = x.shape[0]
        noise = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed * 1_000_003 + self.global_step + 7919)
        rows = shard_rows(n, self.dist)
        step = Step(noise=noise, batch_size=n, rows=rows, share=(rows.stop - rows.start) / n, diagnose=diagnose)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16), \
                compiled_backward_keeps_graph(self.cfg.train.compile):
            terms = STEPS[method](self.learner, self.objectives[method], x[rows], step)
        return reduce_terms(terms, step.share, self.dist)

    def finish_epoch(self, record: dict, writer) -> None:
        """Rank 0 after an epoch: health warnings, validation (and the best epoch), visuals, the
        ``metrics.jsonl`` line, the checkpoints."""
        epoch, t = record["epoch"], self.cfg.train
        for message in self.health.update(record, dataclasses.asdict(self.cfg.loss)):
            print(f"\nwarning (epoch {epoch}): {message}", file=sys.stderr)
            record.setdefault("warnings", []).append(message)
            writer.add_text("health/warning", message, self.global_step)
        for k in [k for k in record if k.startswith("grad_")]:
            writer.add_scalar(f"health/{k}", record[k], self.global_step)
        last_epoch = epoch == self.cfg.optim.epochs
        if epoch % t.val_every == 0 or last_epoch:
            self.last_val = val = self.validator(self.model)
            record.update(val)
            for k, v in val.items():
                writer.add_scalar(f"val/{k.removeprefix('val_')}", v, self.global_step)
            best = self.best["val_jsd"]
            if "val_jsd" in val and (best is None or (val["val_jsd"], val["val_chamfer"]) < (best, self.best["val_chamfer"])):
                self.best = {"epoch": epoch, "val_jsd": val["val_jsd"], "val_chamfer": val["val_chamfer"]}
        if epoch % t.vis_every == 0 or last_epoch:
            self.validator.log_visuals(self.model, writer, self.global_step)
        self.folder.append_metrics(record)
        state = self.state_dict()
        self.folder.save(state, "last")
        if self.best["epoch"] == epoch:
            self.folder.save(state, "best")
        writer.flush()

    @property
    def bf16(self) -> bool:
        """Whether the networks run under bf16 autocast: ``train.amp`` bf16, or auto on a device that
        computes bf16 in hardware (:func:`~pointcloud_sivae.utils.runtime.native_bf16`)."""
        return self.cfg.train.amp == "bf16" or (self.cfg.train.amp == "auto" and native_bf16(self.device))

    def _describe(self) -> str:
        c, M, N = self.cfg, self.cfg.model.num_points, self.manifest["num_points"]
        points = f"{M} points" if M == N else f"{M} of {N} points: a {c.data.train_subsets} subset per step, a fixed one for val"
        return (f"{'+'.join(self.categories)} on {self.device} ({len(self.train_points)} train / {len(self.val_points)} val shapes, "
                f"{points}), {'bf16 autocast' if self.bf16 else 'float32'}, Chamfer backend {self.chamfer.name}; "
                f"{self.dist.world_size} process(es); run folder "
                f"{self.run_dir}")

    def summary(self) -> str:
        """One line on the finished run (:func:`~pointcloud_sivae.training.logs.summary_line`)."""
        return summary_line(self.best, self.last_val)


def balanced_order(labels: torch.Tensor, num_categories: int, generator: torch.Generator) -> torch.Tensor:
    """An epoch's order of training shapes in which every category has an equal share: ``len(labels)``
    indices, ``len(labels) / K`` of each category (the remainder to the first ones), each category's
    drawn as successive permutations of its shapes (a small category's shapes come again, a large
    one's only in part), then shuffled together.

    Args:
        labels: (M,) int64 category index of every training shape; num_categories: K.
        generator: a CPU generator seeded by (seed, epoch).

    Returns:
        (M,) int64 indices into the training shapes.
    """
    total, order = len(labels), []
    for k in range(num_categories):
        members = (labels == k).nonzero().flatten()
        want = total // num_categories + (1 if k < total % num_categories else 0)
        rounds = -(-want // len(members))
        drawn = torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(rounds)])
        order.append(drawn[:want])
    order = torch.cat(order)
    return order[torch.randperm(total, generator=generator)]
