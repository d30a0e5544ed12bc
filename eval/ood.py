"""Out-of-distribution scoring: likelihood scores of an in-distribution split and another set, AUROC per score.

    python -m eval ood --checkpoint runs/<airplane run> --ood-data data/onet256 --ood-category bench

Each shape gets the scores of :func:`pointcloud_sivae.likelihood.score_clouds`. Every
score has a direction fixed in advance (never chosen after seeing the data):
a low ``log p(x)`` or ELBO, or a high reconstruction Chamfer distance or KL, means
"more anomalous". AUROC is that of telling the OOD set from the in-distribution
split (1.0 perfect, 0.5 chance). Source: Daniel & Tamar, CVPR 2021, section 5.
"""

from __future__ import annotations

import numpy as np
import torch

from pointcloud_sivae.metrics import auroc
from pointcloud_sivae.likelihood import fit_obs_std, score_clouds
from pointcloud_sivae.normalization import EvaluationFrame

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


def resolve_obs_std(inf, value: str, fit_points: np.ndarray) -> tuple[float, str]:
    """``auto`` -> maximum-likelihood ``sigma`` on ``fit_points``; otherwise the given positive number."""
    if value == "auto":
        x = torch.from_numpy(np.asarray(fit_points, np.float32)).to(inf.device)
        return fit_obs_std(inf.model, x), "maximum likelihood on the training split's posterior-mean reconstructions"
    try:
        sigma = float(value)
    except ValueError:
        sigma = -1.0
    if not sigma > 0:
        raise ValueError(f"--obs-std must be 'auto' or a positive number, got {value!r}")
    return sigma, "given on the command line"


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
