"""Out-of-distribution scoring: likelihood scores of an in-distribution split and another set, AUROC per score.

    python -m eval ood --checkpoint runs/<airplane run> --ood-data data/onet256 --ood-category bench

Each shape gets the scores of :func:`pointcloud_sivae.likelihood.score_clouds`. Every
score has a direction fixed in advance (never chosen after seeing the data):
a low ``log p(x)`` or ELBO, or a high reconstruction Chamfer distance or KL, means
"more anomalous". AUROC is that of telling the OOD set from the in-distribution
split (1.0 perfect, 0.5 chance). Source: Daniel & Tamar, CVPR 2021, section 5.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from pointcloud_sivae.cli import bounded_float
from pointcloud_sivae.data.normalization import EvaluationFrame
from pointcloud_sivae.data.prepared import load_manifest
from pointcloud_sivae.inference import Inference
from pointcloud_sivae.likelihood import fit_obs_std, score_clouds
from pointcloud_sivae.runs.checkpoint import run_dir_of
from pointcloud_sivae.utils.runtime import provenance, write_json

# score -> (label, +1 if higher means more anomalous, -1 if lower does)
SCORES = {
    "log_px_iw": ("importance-weighted log p(x) [nats]", -1),
    "elbo": ("ELBO [nats]", -1),
    "rec_chamfer": ("reconstruction Chamfer distance (model frame)", +1),
    "kl": ("KL(q(z|x) || p(z)) [nats]", +1),
}


def load_ood_set(inf, root: str, category: str, split: str) -> tuple[np.ndarray, list[str], str]:
    """Clouds of another prepared set in the model's frame, their ids and how the frame was matched.

    Args:
        inf: an :class:`~pointcloud_sivae.inference.Inference`.
        split: ``train``, ``val``, ``test`` or ``all`` (the three concatenated).

    Raises:
        ValueError: fewer points per cloud than the model's (names the prep flag to use).
    """
    splits = ("train", "val", "test") if split == "all" else (split,)
    parts = [inf.split(s, root, category) for s in splits]  # the model's point count, fixed subsets
    parts = [p for p in parts if len(p.ids)]
    if not parts:
        raise ValueError(f"the {split} split of {category} under {root} is empty")
    points = np.concatenate([p.points.numpy() for p in parts])
    ids = [i for p in parts for i in p.ids]
    norm = parts[0].manifest["normalization"]
    if norm == inf.normalization:
        return points, ids, f"same normalisation as the model's data ({norm['method']}): used as prepared"
    converted = inf.frame.to_model(EvaluationFrame.of(norm).to_evaluation(points))
    return converted, ids, (f"normalisation {norm['method']} differs from the model's "
                            f"({inf.normalization['method']}): mapped to the evaluation frame, then into the model's")


def score_set(inf, points: np.ndarray, *, obs_std: float, num_samples: int, seed: int,
              batch_size: int = 16, chamfer_backend: str = "auto") -> dict[str, np.ndarray]:
    x = torch.from_numpy(np.asarray(points, np.float32)).to(inf.device)
    return score_clouds(inf.model, x, obs_std=obs_std, num_samples=num_samples, seed=seed, batch_size=batch_size,
                        chamfer_backend=chamfer_backend)


def obs_std_arg(text: str):
    """argparse ``type`` of ``--obs-std``: ``auto``, or a finite number > 0."""
    if text == "auto":
        return text
    return bounded_float(0, open_low=True)(text)


obs_std_arg.__name__ = "auto or a number > 0"


def resolve_obs_std(inf, value, fit_points: np.ndarray) -> tuple[float, str]:
    """``auto`` -> maximum-likelihood ``sigma`` on ``fit_points``; otherwise the given number (> 0)."""
    if value == "auto":
        x = torch.from_numpy(np.asarray(fit_points, np.float32)).to(inf.device)
        return fit_obs_std(inf.model, x), "maximum likelihood on the training split's posterior-mean reconstructions"
    return float(value), "given on the command line"


def auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """Area under the ROC curve of telling out-of-distribution from in-distribution data
    (``sklearn.metrics.roc_auc_score``, OOD labelled 1).

    Higher scores must mean "more anomalous". Equals ``P(s_out > s_in) + 1/2 P(s_out = s_in)``
    over all pairs, so ties count one half: 1.0 separates perfectly, 0.5 is chance.

    Args:
        scores_in, scores_out: 1-D arrays of anomaly scores, non-empty and finite.

    Raises:
        ValueError: empty or non-finite scores.

    Source: Hanley & McNeil, Radiology 1982 (AUC as the Mann-Whitney statistic).
    """
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(scores_in, np.float64).ravel(), np.asarray(scores_out, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"AUROC needs scores for both sets, got {a.size} in-distribution and {b.size} OOD")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("AUROC scores contain NaN or infinite values")
    return float(roc_auc_score(np.r_[np.zeros(a.size), np.ones(b.size)], np.r_[a, b]))


def aurocs(scores_in: dict[str, np.ndarray], scores_out: dict[str, np.ndarray]) -> dict[str, float]:
    """AUROC of each score in :data:`SCORES`, with its fixed direction."""
    return {k: auroc(sign * scores_in[k], sign * scores_out[k]) for k, (_, sign) in SCORES.items()}


def plot_histograms(scores_in, scores_out, results: dict[str, float], names: tuple[str, str], path) -> None:
    """One panel per score: overlaid histograms of both sets, AUROC in the title; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 3.4))
    for ax, (key, (label, _)) in zip(axes, SCORES.items()):
        a, b = scores_in[key], scores_out[key]
        bins = np.histogram_bin_edges(np.concatenate([a, b]), bins=30)
        ax.hist(a, bins=bins, alpha=0.6, label=f"{names[0]} (n={len(a)})", color="tab:blue")
        ax.hist(b, bins=bins, alpha=0.6, label=f"{names[1]} (n={len(b)})", color="tab:orange")
        ax.set_title(f"{key}: AUROC {results[key]:.3f}", fontsize=10)
        ax.set_xlabel(label, fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_ood(args) -> dict:
    t0 = time.perf_counter()
    inf = Inference(args.checkpoint, args.device, args.data_root)
    category = inf.category_key(args.category) or "+".join(inf.categories)
    run_dir = run_dir_of(inf.checkpoint)
    in_split = inf.split(args.in_split, category=args.category).nonempty()
    ood_points, ood_ids, frame_note = load_ood_set(inf, args.ood_data, args.ood_category, args.ood_split)
    ood_name = load_manifest(args.ood_data, args.ood_category)["category"]
    obs_std, obs_how = resolve_obs_std(inf, args.obs_std, inf.split("train", category=args.category).points.numpy())
    print(f"observation model: Gaussian mixture, sigma {obs_std:.5g} ({obs_how}); {frame_note}", file=sys.stderr)
    kw = {"obs_std": obs_std, "num_samples": args.num_importance, "seed": args.seed,
          "chamfer_backend": args.chamfer_backend}
    probe = score_set(inf, in_split.points.numpy()[:1], **{**kw, "num_samples": 1})  # one shape, before the work
    bad = [k for k, v in probe.items() if not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"--obs-std {obs_std:g} makes the {', '.join(bad)} score(s) of an in-distribution shape "
                         "infinite or NaN (the observation model's density underflows): give a larger --obs-std, "
                         "or auto")
    s_in = score_set(inf, in_split.points.numpy(), **kw)
    s_out = score_set(inf, ood_points, **kw)
    results = aurocs(s_in, s_out)
    names = (f"{category} {args.in_split}", f"{ood_name} {args.ood_split}")
    out_dir = args.out or run_dir / "eval" / f"ood_{ood_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_histograms(s_in, s_out, results, names, out_dir / "ood_histograms.png")
    lines = [f"OOD: {names[0]} (n={len(in_split.ids)}) vs {names[1]} (n={len(ood_ids)}), K={args.num_importance}",
             f"{'score':<12} {'mean in':>12} {'mean OOD':>12} {'AUROC':>7}  anomalous when", "-" * 62]
    for k, (_, sign) in SCORES.items():
        lines.append(f"{k:<12} {s_in[k].mean():>12.5g} {s_out[k].mean():>12.5g} {results[k]:>7.3f}  "
                     + ("low" if sign < 0 else "high"))
    print("\n".join(lines))
    result = {**provenance(), "kind": "ood", "checkpoint": str(inf.checkpoint), "epoch": inf.state["epoch"],
              "method": inf.config["loss"].get("method", "soft-intro"),
              "in_distribution": {"category": category, "data_root": str(inf.data_root), "split": args.in_split,
                                  "num_shapes": len(in_split.ids)},
              "ood": {"category": ood_name, "data_root": str(args.ood_data), "split": args.ood_split,
                      "num_shapes": len(ood_ids), "frame": frame_note},
              "observation_model": {"kind": "isotropic Gaussian mixture centred at the decoded points, "
                                            "points i.i.d.", "obs_std": obs_std, "obs_std_from": obs_how},
              "num_importance_samples": args.num_importance, "seed": args.seed,
              "score_directions": {k: ("low" if sign < 0 else "high") + " = anomalous" for k, (_, sign) in
                                   SCORES.items()},
              "auroc": results,
              "summary": {k: {"in_mean": float(s_in[k].mean()), "in_std": float(s_in[k].std()),
                              "ood_mean": float(s_out[k].mean()), "ood_std": float(s_out[k].std())}
                          for k in SCORES},
              "scores": {"in": {"ids": in_split.ids, **{k: v.tolist() for k, v in s_in.items()}},
                         "ood": {"ids": ood_ids, **{k: v.tolist() for k, v in s_out.items()}}},
              "histograms": str(out_dir / "ood_histograms.png")}
    result["run_time_s"] = round(time.perf_counter() - t0, 3)
    write_json(result, out_dir / "ood.json")
    return result
