"""Validation during training, and the clouds and images it logs to TensorBoard.

Every number is in the evaluation frame (:class:`~pointcloud_sivae.data.normalization.EvaluationFrame`)
and uses the metrics of :mod:`pointcloud_sivae.metrics`, the same code ``eval`` runs.
"""

from __future__ import annotations

import numpy as np
import torch

from pointcloud_sivae.data.normalization import EvaluationFrame
from pointcloud_sivae.metrics.distances import pairwise_chamfer
from pointcloud_sivae.metrics.generation import (by_category, generation_metrics, nearest_other, point_spacing,
                                                 set_diversity)
from pointcloud_sivae.metrics.jsd import jsd_between_sets, outside_fraction
from pointcloud_sivae.metrics.prior_gap import prior_gap
from pointcloud_sivae.models.latent import interpolate
from pointcloud_sivae.models.vae import SoftIntroVAE
from pointcloud_sivae.ops.chamfer import Chamfer
from pointcloud_sivae.training.health import active_units
from pointcloud_sivae.utils.render import point_colors, render_grid


class Validator:
    """Scores a model on the val split (and draws what TensorBoard shows).

    Args:
        val: (V, N, 3) val clouds (model frame; the fixed subsets at the model's N).
        train: (T, N, 3) training clouds (their fixed subsets), for active units and, without
            a val split, the logged clouds.
        frame: the data's evaluation frame. seed: the run's seed (fixed prior samples).
        chamfer: the run's Chamfer op (reconstruction distance); matrix_backend: the backend of
            the distance matrices (resolved once by the trainer).
        jsd_factor: JSD uses ``jsd_factor * V`` prior samples. generation_metrics: also MMD-CD,
            COV-CD and 1-NNA-CD of V samples (cost ~ V^2). num_vis: clouds per logged row.
        val_labels: (V,) int64 category index of every val cloud; categories: their names. With
            several, the reconstruction distance, MMD-CD and COV-CD are also reported per category
            (``val_chamfer/<name>``, ...) with the share of prior samples nearest each
            (``val_prior_share/<name>``).
    """

    def __init__(self, val: torch.Tensor, train: torch.Tensor, frame: EvaluationFrame, *, seed: int,
                 chamfer: Chamfer, matrix_backend: str, jsd_factor: int, generation_metrics: bool, num_vis: int,
                 val_labels: torch.Tensor | None = None, categories: list[str] | None = None):
        self.val, self.train, self.frame, self.seed = val, train, frame, seed
        self.categories = categories or ["all"]
        self.val_labels = (val_labels if val_labels is not None else torch.zeros(len(val), dtype=torch.long)).cpu()
        self.chamfer, self.matrix_backend = chamfer, matrix_backend
        self.jsd_factor, self.generation_metrics, self.num_vis = jsd_factor, generation_metrics, num_vis
        self._D_rr = None  # val-against-val Chamfer matrix, computed at the first validation
        self._train_nn_other = None  # nearest-other distance within the first |val| training clouds, likewise
        self._spacing_rr = None  # the val split's point spacing, likewise

    @torch.no_grad()
    def __call__(self, model: SoftIntroVAE) -> dict[str, float]:
        """Val reconstruction Chamfer distance (mean convention, squared L2, posterior means), JSD of
        ``jsd_factor * |val|`` prior samples (fixed seed) against the val split and the share of their
        points outside the JSD grid's ball (counted at their nearest cell), the set diagnostics of
        :meth:`set_metrics`, ``active_units`` of the training shapes' posterior means, the gap between
        their aggregated posterior and the prior (``latent_*``: :func:`~pointcloud_sivae.metrics.prior_gap.prior_gap`,
        the val shapes as held-out codes, 500 draws), and the same
        reconstruction distance on the first |val| training clouds (``train_chamfer``) beside their
        nearest-other distance (``train_nn_other_cd``, among those |val| clouds): against the val
        pair, the decoder's and encoder's generalisation gap at the same set size."""
        if len(self.val) == 0:
            return {}
        model.eval()
        try:
            real, per_shape = self.reconstruction(model, self.val, per_shape=True)
            gen = self.frame.to_evaluation(prior_clouds(model, self.jsd_factor * len(real), self.seed + 1))
            real_np, gen_np = real.cpu().numpy(), gen.cpu().numpy()
            out = {"val_chamfer": per_shape.mean().item(),
                   "val_jsd": jsd_between_sets(gen_np, real_np, allow_outside=True),
                   "val_jsd_outside": outside_fraction(gen_np)}
            if len(self.categories) > 1:
                for k, name in enumerate(self.categories):
                    if (self.val_labels == k).any():
                        out[f"val_chamfer/{name}"] = per_shape[self.val_labels.to(per_shape.device) == k].mean().item()
            if len(real_np) >= 2:
                out.update(self.set_metrics(gen_np[: len(real_np)], real_np))
                out.update(self.train_reconstruction(model, len(real_np)))
            mu, logvar = model.posteriors(self.train[:1024])
            out.update(active_units(mu, model.prior_std))
            if len(mu) >= 2:
                gap = prior_gap(mu, logvar, model.prior_std, held_out=model.posteriors(self.val), num_draws=500,
                                seed=self.seed)
                out.update({f"latent_{k}": v for k, v in gap.items()})
        finally:
            model.train()
        return out

    def train_reconstruction(self, model: SoftIntroVAE, n: int) -> dict[str, float]:
        """``train_chamfer`` (reconstruction CD of the first ``n`` training clouds, as ``val_chamfer``) and
        ``train_nn_other_cd`` (their mean distance to the nearest other of those ``n``); empty with
        fewer than two training clouds."""
        train = self.train[:n]
        if len(train) < 2:
            return {}
        real, cd = self.reconstruction(model, train)
        if self._train_nn_other is None:
            D = pairwise_chamfer(real.cpu().numpy(), backend=self.matrix_backend, device=self.val.device)
            self._train_nn_other = nearest_other(D)
        return {"train_chamfer": cd, "train_nn_other_cd": self._train_nn_other}

    def reconstruction(self, model: SoftIntroVAE, clouds: torch.Tensor, per_shape: bool = False):
        """``clouds`` (model frame) in the evaluation frame, and their mean reconstruction Chamfer
        distance (posterior means; mean convention, squared L2, evaluation frame): a float, or with
        ``per_shape`` the (M,) tensor of every cloud's."""
        real = self.frame.to_evaluation(clouds)
        rec = self.frame.to_evaluation(model.decode_chunked(model.posterior_means(clouds)))
        cd = self.chamfer(real, rec, point_reduction="mean")
        return real, (cd if per_shape else cd.mean().item())

    def set_metrics(self, sample: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """Diversity of the samples and of the val split (mean pairwise Chamfer distance; a ratio far
        below 1 is mode collapse, which MMD hides), the val split's mean distance to the nearest other
        val shape (a ``val_chamfer`` no lower means the decoder ignores the latent), the point spacing
        of samples and val clouds and its coefficient of variation (:func:`point_spacing`: the
        texture 1-NNA sees) and, with
        ``generation_metrics``, MMD-CD, COV-CD and 1-NNA-CD of the samples against the val split."""
        device = self.val.device
        if self._D_rr is None:
            self._D_rr = pairwise_chamfer(reference, backend=self.matrix_backend, device=device)
        D_ss = pairwise_chamfer(sample, backend=self.matrix_backend, device=device)
        out = {"val_sample_diversity_cd": set_diversity(D_ss), "val_data_diversity_cd": set_diversity(self._D_rr),
               "val_nn_other_cd": nearest_other(self._D_rr)}
        if self._spacing_rr is None:
            self._spacing_rr = point_spacing(reference)
        spacing_ss = point_spacing(sample)
        out.update({"val_sample_spacing": spacing_ss["spacing"], "val_sample_spacing_cv": spacing_ss["spacing_cv"],
                    "val_data_spacing": self._spacing_rr["spacing"],
                    "val_data_spacing_cv": self._spacing_rr["spacing_cv"]})
        if self.generation_metrics:
            D_sr = pairwise_chamfer(sample, reference, backend=self.matrix_backend, device=device)
            table = generation_metrics(D_ss, D_sr, self._D_rr, "CD")  # val_mmd_cd, val_cov_cd, val_1nna_cd
            out.update({"val_" + k.lower().replace("1-nna", "1nna").replace("-", "_"): v for k, v in table.items()})
            if len(self.categories) > 1:
                for name, row in by_category(D_sr, self.val_labels[: len(reference)].numpy(), self.categories).items():
                    out.update({f"val_mmd_cd/{name}": row["MMD-CD"], f"val_cov_cd/{name}": row["COV-CD"],
                                f"val_prior_share/{name}": row["nearest-share"]})
        return out

    def shown_rows(self, n: int, of_val: bool) -> torch.Tensor:
        """The rows of the logged clouds: ``0, 1, 2, ...`` for one category; with several (val clouds),
        the categories' clouds in turn (first of each, then second of each, ...)."""
        if len(self.categories) == 1 or not of_val:
            return torch.arange(n)
        members = [(self.val_labels == k).nonzero().flatten().tolist() for k in range(len(self.categories))]
        order = [m[i] for i in range(max(map(len, members))) for m in members if i < len(m)]
        return torch.tensor(order)

    @torch.no_grad()
    def log_visuals(self, model: SoftIntroVAE, writer, global_step: int) -> None:
        """Real, reconstructed and generated clouds (point-cloud summaries and a rendered grid) and a
        slerp strip between the first two shapes (with several categories: the shapes are taken from
        the categories in turn, so the strip goes from the first category to the second)."""
        source = self.val if len(self.val) else self.train
        k = min(self.num_vis, len(source))
        shown = self.shown_rows(len(source), source is self.val)[:max(k, 2)]
        model.eval()
        try:
            real = self.frame.to_evaluation(source[shown[:k]])
            rec = self.frame.to_evaluation(model.decode_chunked(model.posterior_means(source[shown[:k]])))
            gen = self.frame.to_evaluation(prior_clouds(model, k, self.seed + 2))
            strip = None
            if len(source) >= 2:
                mu = model.encode(source[shown[:2]])[0]
                strip = self.frame.to_evaluation(model.decode(interpolate(mu[0], mu[1], 8, "slerp")))
        finally:
            model.train()
        rows = [real.cpu().numpy(), rec.cpu().numpy(), gen.cpu().numpy()]
        names = ["real", "reconstruction", "generated"]
        for r, (name, clouds) in enumerate(zip(names, rows)):
            colors = np.broadcast_to(point_colors(clouds.shape[1], r), clouds.shape).copy()
            writer.add_mesh(f"clouds/{name}", vertices=torch.from_numpy(clouds), colors=torch.from_numpy(colors),
                            global_step=global_step)
        writer.add_image("clouds/grid", render_grid(rows, names), global_step, dataformats="HWC")
        if strip is not None:
            ends = ("val shape 0", "val shape 1") if len(self.categories) == 1 else tuple(
                f"a val {c}" for c in self.categories[:2])
            writer.add_image("interpolation/strip", render_grid([strip.cpu().numpy()],
                                                                [f"slerp: {ends[0]} -> {ends[1]}"]),
                             global_step, dataformats="HWC")


def prior_clouds(model: SoftIntroVAE, n: int, seed: int) -> torch.Tensor:
    """``n`` decoded prior samples (model frame) from a generator seeded by ``seed``."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    return model.decode_chunked(model.sample_prior(n, generator=g))
