"""Are generated shapes new, typical or copies? Distances to the training set against those of
held-out shapes.

MMD, COV and 1-NNA compare samples with a reference (held-out) set only, so a model that copies its
training shapes scores like real data, and one that draws typical, averaged shapes scores *better*
than real data on MMD-CD (METHOD.md, section 3). The statistics here put the training set beside the
reference set. Each is a function of precomputed Chamfer-distance matrices, as the metrics of
:mod:`pointcloud_sivae.metrics.generation` are:

* ``train-distance-ratio``: the median over samples of the distance to the nearest training shape,
  over the same median for the held-out shapes. Below 1: nearer the training set than new shapes of
  the data are (copies, or typical shapes); about 1: as near as new shapes; above 1: farther (shapes
  unlike the data). The comparison of Meehan, Chaudhuri & Dasgupta's data-copying test.
* ``copy-share``: the share of samples nearer a training shape than the nearest
  :data:`COPY_QUANTILE` (10 %) of held-out shapes are; 0.10 for a set drawn like the held-out
  shapes, near 1 for copies.
* ``nn-train-ratio``: the median over samples of (distance to the nearest training shape) /
  (distance to the nearest reference shape), over the same median for the reference shapes (each
  against the *other* reference shapes): the ratio of ratios. Copies are far below 1 (near a
  training shape, not nearer the held-out ones); averaged shapes stay near 1 (near every shape,
  training and held-out alike) while their ``train-distance-ratio`` falls below 1.

Read together: new shapes have all three about as held-out shapes do (1, 10 %, 1); typical
shapes have ``train-distance-ratio`` below 1 with ``nn-train-ratio`` about 1 and low coverage;
copies have ``copy-share`` far above 10 % and ``nn-train-ratio`` far below 1.

Source: Meehan, Chaudhuri & Dasgupta, "A Non-Parametric Test to Detect Data-Copying in Generative
Models", AISTATS 2020 (sample and held-out distances to the training set, compared; here by their
medians and a tail share instead of the test's cell-wise Mann-Whitney statistic).
"""

from __future__ import annotations

import numpy as np

from pointcloud_sivae.metrics.generation import _check

COPY_QUANTILE = 0.1  # copy-share: nearer the training set than this quantile of the held-out shapes
NOVELTY_KEYS = ("train-distance-ratio", "copy-share", "nn-train-ratio")
COPYING_TEXT = ("Chamfer distances to the training split: train-distance-ratio = median over samples of the distance "
                "to the nearest training shape / the same median for the reference shapes (Meehan et al., AISTATS "
                "2020; below 1: nearer the training set than new shapes are); copy-share = share of samples nearer a "
                "training shape than the nearest 10 % of reference shapes are (0.10 for shapes like the reference); "
                "nn-train-ratio = median over samples of (distance to nearest training / to nearest reference shape) "
                "over the same for the reference shapes (copies: far below 1; averaged shapes: about 1)")


def novelty_metrics(D_st: np.ndarray, D_rt: np.ndarray, D_sr: np.ndarray, D_rr: np.ndarray) -> dict[str, float]:
    """``train-distance-ratio``, ``copy-share`` and ``nn-train-ratio`` of a sample set (module docstring).

    Args:
        D_st: (S, T) distances from the samples to the training shapes.
        D_rt: (R, T) distances from the reference (held-out) shapes to the training shapes.
        D_sr: (S, R) samples to reference shapes. D_rr: (R, R) within the reference set.
            Any one distance (the package uses the Chamfer distance); S >= 1, R >= 2, T >= 1.

    Returns:
        The three statistics, raw (ratios; ``copy-share`` a fraction in [0, 1]).

    Raises:
        ValueError: a matrix that is empty, not finite, or of a shape that disagrees with the others;
            fewer than 2 reference shapes (a held-out shape's nearest *other* one is undefined).
    """
    D_st, D_rt, D_sr, D_rr = (_check(D, name) for D, name in ((D_st, "D_st"), (D_rt, "D_rt"), (D_sr, "D_sr"),
                                                               (D_rr, "D_rr")))
    (n_s, n_t), n_r = D_st.shape, D_rr.shape[0]
    if D_rt.shape != (n_r, n_t) or D_sr.shape != (n_s, n_r) or D_rr.shape != (n_r, n_r):
        raise ValueError(f"shapes disagree: D_st {D_st.shape}, D_rt {D_rt.shape}, D_sr {D_sr.shape}, D_rr {D_rr.shape}")
    if n_r < 2:
        raise ValueError("the copying statistics need at least 2 reference shapes (each held-out shape is compared "
                         f"with its nearest other one), got {n_r}")
    to_train_s, to_train_r = D_st.min(axis=1), D_rt.min(axis=1)
    to_other_r = (D_rr + np.diag(np.full(n_r, np.inf))).min(axis=1)
    tiny = 1e-30  # a sample equal to a cloud: its ratio is large or small, never a division by zero
    held_out_ratio = np.median(to_train_r / np.maximum(to_other_r, tiny))
    return {
        "train-distance-ratio": float(np.median(to_train_s) / max(np.median(to_train_r), tiny)),
        "copy-share": float(np.mean(to_train_s < np.quantile(to_train_r, COPY_QUANTILE))),
        "nn-train-ratio": float(np.median(to_train_s / np.maximum(D_sr.min(axis=1), tiny)) / max(held_out_ratio, tiny)),
    }
