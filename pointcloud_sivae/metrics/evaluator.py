"""Generation and reconstruction evaluation: distance matrices once, every metric from them."""

from __future__ import annotations

import time

import numpy as np

from pointcloud_sivae.data.normalization import EvaluationFrame
from pointcloud_sivae.metrics.distances import paired_chamfer, paired_emd, pairwise_chamfer, pairwise_emd
from pointcloud_sivae.metrics.generation import by_category, generation_metrics, set_diversity
from pointcloud_sivae.metrics.jsd import jsd_between_sets, jsd_convention, outside_fraction
from pointcloud_sivae.metrics.novelty import novelty_metrics
from pointcloud_sivae.metrics.protocols import apply_protocol
from pointcloud_sivae.ops.chamfer import resolve_backend
from pointcloud_sivae.ops.emd import resolve_emd_backend

# Display scale of each metric: shown value = raw value x scale (PointFlow tables: MMD-CD x10^3,
# MMD-EMD x10^2, COV and 1-NNA in %). JSON keeps raw values; its "units" says the scale.
DISPLAY = {
    "MMD-CD": (1e3, "x10^3"), "COV-CD": (100.0, "%"), "1-NNA-CD": (100.0, "%"),
    "MMD-EMD": (1e2, "x10^2"), "COV-EMD": (100.0, "%"), "1-NNA-EMD": (100.0, "%"),
    "JSD": (1.0, ""), "CD": (1e4, "x10^4"), "EMD": (1e2, "x10^2"), "diversity-CD": (1.0, "ratio"),
    "train-distance-ratio": (1.0, "ratio"), "copy-share": (100.0, "%"), "nn-train-ratio": (1.0, "ratio"),
}
EMD_NAMES = {"approx": "approxmatch as PointFlow's CUDA kernel (levels -4^7 ... -4^-1; entry [a, b] matches "
                       "xyz1 = the column cloud onto xyz2 = the row cloud, PointFlow's M_rs order)",
             "exact": "exact assignment (scipy linear_sum_assignment)"}


class GenerationEvaluator:
    """Scores sets of generated clouds against one reference set.

    The reference-against-reference matrices are computed once and reused for every
    sample set (e.g. every seed).

    Args:
        reference: (R, N, 3) clouds in the prepared (model) frame.
        normalization: the manifest's ``normalization`` block.
        protocol: see :mod:`pointcloud_sivae.metrics.protocols`.
        emd: ``approx``, ``exact`` or ``none`` (Chamfer metrics and JSD only).
        chamfer_backend, emd_backend, device: where the distance matrices are computed.
        jsd_allow_outside: compute JSD even when more than 1 % of the points of a set lie
            outside the grid's ball (otherwise :class:`eval.jsd.JSDFrameError`).
        train: (T, N, 3) training clouds (model frame), or None. Given, every table also holds the
            copying statistics of :mod:`pointcloud_sivae.metrics.novelty` (Chamfer distance):
            whether the samples are new shapes, typical shapes or copies of the training set.
        reference_labels, categories: (R,) int category index of every reference cloud and the K
            names, for a reference set of several categories: each call then also leaves
            :func:`~pointcloud_sivae.metrics.generation.by_category` (MMD, COV per category, the share
            of samples nearest each) in ``last_by_category``.
    """

    def __init__(self, reference, normalization: dict, *, protocol: str = "pointflow", emd: str = "approx",
                 chamfer_backend: str = "auto", emd_backend: str = "auto", device="cpu", progress: bool = False,
                 jsd_allow_outside: bool = False, train=None, reference_labels=None, categories=None):
        import torch

        if emd not in ("approx", "exact", "none"):
            raise ValueError(f"--emd must be approx, exact or none, got {emd!r}")
        self.normalization, self.protocol, self.emd = normalization, protocol, emd
        self.device = torch.device(device)
        self.chamfer_backend = resolve_backend(chamfer_backend, self.device, use="matrix")
        self.emd_backend = resolve_emd_backend(emd_backend, self.device)
        self.jsd_allow_outside = jsd_allow_outside
        self.jsd_outside: dict[str, float] = {}
        self.progress = progress
        self.reference_raw = np.asarray(reference, np.float32)
        _check_set_size(len(self.reference_raw), "reference clouds", "score a split or file with more shapes")
        self.reference = apply_protocol(self.reference_raw, protocol, normalization)
        self._ref_matrices: dict[str, np.ndarray] = {}
        self.train = None if train is None else apply_protocol(np.asarray(train, np.float32), protocol, normalization)
        self._D_rt: np.ndarray | None = None  # reference-against-training Chamfer matrix, computed once
        self.timings: dict[str, float] = {}
        several = categories is not None and len(categories) > 1
        self.reference_labels = np.asarray(reference_labels) if several else None
        self.categories = list(categories) if several else None
        self.last_by_category: dict[str, dict[str, float]] = {}

    def _matrix(self, kind: str, A, B=None) -> np.ndarray:
        t0 = time.perf_counter()
        if kind == "CD":
            out = pairwise_chamfer(A, B, backend=self.chamfer_backend, device=self.device, progress=self.progress)
        else:
            out = pairwise_emd(A, B, method=self.emd, backend=self.emd_backend, device=self.device,
                               progress=self.progress)
        self.timings[f"{kind}_matrices_s"] = self.timings.get(f"{kind}_matrices_s", 0.0) + time.perf_counter() - t0
        return out

    def distance_implementations(self) -> dict:
        impl = {"chamfer": f"{self.chamfer_backend} (squared L2, mean over points)"}
        if self.emd != "none":
            impl["emd"] = EMD_NAMES[self.emd] + " (Euclidean, mean over points)"
            if self.emd == "approx":
                impl["emd"] += f", {self.emd_backend}"
        impl["jsd"] = jsd_convention()
        if self.jsd_outside:
            impl["jsd"]["outside_ball_fraction"] = dict(self.jsd_outside)
        return impl

    def __call__(self, sample) -> dict[str, float]:
        """Metrics of one generated set (S, N, 3), model frame; raw values (fractions, distances).

        ``diversity-CD`` is the mean pairwise Chamfer distance within S over that within R
        (1 for a set as varied as the reference, near 0 for one shape repeated). With a training
        set, ``train-distance-ratio``, ``copy-share`` and ``nn-train-ratio``
        (:func:`~pointcloud_sivae.metrics.novelty.novelty_metrics`, Chamfer distance)."""
        _check_set_size(len(sample), "generated clouds", "draw more samples (--num-samples)")
        self.last_by_category = {}
        S = apply_protocol(sample, self.protocol, self.normalization)
        out: dict[str, float] = {}
        for kind in ("CD", "EMD") if self.emd != "none" else ("CD",):
            if kind not in self._ref_matrices:
                self._ref_matrices[kind] = self._matrix(kind, self.reference)
            D_rr = self._ref_matrices[kind]
            D_sr, D_ss = self._matrix(kind, S, self.reference), self._matrix(kind, S)
            out.update(generation_metrics(D_ss, D_sr, D_rr, kind))
            if self.categories is not None:
                for name, row in by_category(D_sr, self.reference_labels, self.categories, kind).items():
                    if kind != "CD":  # the samples are classified by their nearest reference under the Chamfer distance
                        row = {k: v for k, v in row.items() if k.endswith(kind)}
                    self.last_by_category.setdefault(name, {}).update(row)
            if kind == "CD":  # mode collapse, which MMD hides: mean pairwise CD of S over that of R
                out["diversity-CD"] = set_diversity(D_ss) / set_diversity(D_rr)
                if self.train is not None:  # new shapes, typical shapes or copies
                    if self._D_rt is None:
                        self._D_rt = self._matrix("CD", self.reference, self.train)
                    out.update(novelty_metrics(self._matrix("CD", S, self.train), self._D_rt, D_sr, D_rr))
        t0 = time.perf_counter()
        frame = EvaluationFrame.of(self.normalization)  # JSD: the evaluation frame, whatever the protocol
        gen, ref = frame.to_evaluation(sample), frame.to_evaluation(self.reference_raw)
        self.jsd_outside = {"sample": max(outside_fraction(gen), self.jsd_outside.get("sample", 0.0)),
                            "reference": outside_fraction(ref)}  # the sample's: the largest over calls (seeds)
        out["JSD"] = jsd_between_sets(gen, ref, allow_outside=self.jsd_allow_outside)
        self.timings["JSD_s"] = self.timings.get("JSD_s", 0.0) + time.perf_counter() - t0
        return out


MIN_SET_SIZE = 2  # 1-NNA leaves one cloud out, diversity and the copying statistics need pairs


def _check_set_size(n: int, what: str, remedy: str) -> None:
    """A set metric on a set too small to define it is an error, never NaN or a perfect score."""
    if n < MIN_SET_SIZE:
        raise ValueError(f"the generation metrics need at least {MIN_SET_SIZE} {what}, got {n} (1-NNA leaves one out, "
                         f"diversity needs pairs; with one cloud each, 1-NNA reads 0 % and COV 100 %): {remedy}")


def reconstruction_metrics(inputs, reconstructions, normalization: dict, *, protocol: str = "pointflow",
                           emd: str = "approx", chamfer_backend: str = "auto", emd_backend: str = "auto",
                           device="cpu") -> dict:
    """Mean and std over shapes of CD and EMD between each input and its reconstruction.

    Args:
        inputs, reconstructions: (M, N, 3) clouds in the model frame, paired by index.

    Returns:
        ``{"CD": {"mean", "std"}, "EMD": {...}, "per_shape": {"CD": [...], "EMD": [...]}}``.
    """
    import torch

    device = torch.device(device)
    A = apply_protocol(inputs, protocol, normalization)
    B = apply_protocol(reconstructions, protocol, normalization)
    per = {"CD": paired_chamfer(A, B, backend=chamfer_backend, device=device)}
    if emd != "none":
        per["EMD"] = paired_emd(A, B, method=emd, backend=emd_backend, device=device)
    out = {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in per.items()}
    out["per_shape"] = {k: v.tolist() for k, v in per.items()}
    return out


def summarize(per_seed: list[dict[str, float]], keys=None) -> dict[str, dict[str, float]]:
    """Mean and (population) std over seeds of every metric (or of ``keys``), in the order of the first."""
    keys = per_seed[0].keys() if keys is None else [k for k in per_seed[0] if k in keys]
    return {k: {"mean": float(np.mean([r[k] for r in per_seed])), "std": float(np.std([r[k] for r in per_seed]))}
            for k in keys}
