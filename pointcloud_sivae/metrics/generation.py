"""Generation metrics as small functions of precomputed distance matrices: MMD, COV, 1-NNA, and the
diversity of a set (its mean pairwise distance; the mean distance to the nearest other member).

Definitions and units follow PointFlow's ``evaluation_metrics.py`` (Yang et al.,
ICCV 2019) and Achlioptas et al. (ICML 2018); docs/metrics.md. ``D_sr`` has
one row per generated cloud (S) and one column per reference cloud (R).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _check(D: np.ndarray, name: str) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or 0 in D.shape:
        raise ValueError(f"{name} must be a non-empty 2-D distance matrix, got shape {D.shape}")
    if not np.isfinite(D).all():
        raise ValueError(f"{name} contains NaN or infinite distances")
    return D


def mmd(D_sr: np.ndarray) -> float:
    """Minimum matching distance: ``(1/|R|) sum_r min_s D(s, r)`` (lower is better).

    Source: Achlioptas et al., ICML 2018; PointFlow ``lgan_mmd_cov`` (``lgan_mmd``).
    """
    return float(_check(D_sr, "D_sr").min(axis=0).mean())


def coverage(D_sr: np.ndarray) -> float:
    """Coverage: fraction of references that are the nearest reference of some sample,
    ``|{argmin_r D(s, r) : s in S}| / |R|``, in [0, 1] (higher is better). Ties in the
    argmin go to the lowest reference index.

    Source: Achlioptas et al., ICML 2018; PointFlow ``lgan_mmd_cov`` (``lgan_cov``).
    """
    D = _check(D_sr, "D_sr")
    return float(len(np.unique(D.argmin(axis=1))) / D.shape[1])


def one_nn_accuracy(D_ss: np.ndarray, D_sr: np.ndarray, D_rr: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy of telling S from R in ``S u R``, in [0, 1].

    Each cloud is classified by the set of its nearest other cloud; 0.5 is ideal (the
    sets cannot be told apart), 1.0 worst. Tie rule: when several clouds are nearest
    at the same distance, the cloud counts as correct by the fraction of them that
    come from its own set (so an even tie counts half), independent of ordering.

    Args:
        D_ss: (S, S), D_sr: (S, R), D_rr: (R, R) distance matrices.

    Source: Lopez-Paz & Oquab, ICLR 2017; PointFlow ``knn`` with k = 1.
    """
    D_ss, D_sr, D_rr = _check(D_ss, "D_ss"), _check(D_sr, "D_sr"), _check(D_rr, "D_rr")
    n_s, n_r = D_sr.shape
    if D_ss.shape != (n_s, n_s) or D_rr.shape != (n_r, n_r):
        raise ValueError(f"shapes disagree: D_ss {D_ss.shape}, D_sr {D_sr.shape}, D_rr {D_rr.shape}")
    M = np.block([[D_ss, D_sr], [D_sr.T, D_rr]])
    np.fill_diagonal(M, np.inf)
    label = np.r_[np.zeros(n_s, bool), np.ones(n_r, bool)]
    nearest = M == M.min(axis=1, keepdims=True)
    same = (nearest & (label[None, :] == label[:, None])).sum(1) / nearest.sum(1)
    return float(same.mean())


def generation_metrics(D_ss: np.ndarray, D_sr: np.ndarray, D_rr: np.ndarray, kind: str) -> dict[str, float]:
    """``MMD-<kind>``, ``COV-<kind>`` and ``1-NNA-<kind>`` of one distance (``CD`` or ``EMD``)
    from its three matrices: the generation table's columns, raw values."""
    return {f"MMD-{kind}": mmd(D_sr), f"COV-{kind}": coverage(D_sr),
            f"1-NNA-{kind}": one_nn_accuracy(D_ss, D_sr, D_rr)}


def by_category(D_sr: np.ndarray, labels: np.ndarray, names: list[str], kind: str = "CD") -> dict[str, dict]:
    """A multi-category reference set's MMD and COV restricted to each category, and where the samples
    fall: the union's metrics split by the references' categories (they add up to the union's).

    Args:
        D_sr: (S, R) distances of the samples to the references; labels: (R,) int category index of
            every reference; names: the K category names; kind: ``CD`` or ``EMD`` (the keys' suffix).

    Returns:
        ``{name: {"MMD-<kind>": mean over the category's references of the distance to the nearest
        sample, "COV-<kind>": share of the category's references that are the nearest reference
        (among all R) of some sample, in [0, 1], "nearest-share": share of the samples whose
        nearest reference is of the category, "reference-share": the category's share of R}}``;
        a category without references is left out.
    """
    D, labels = _check(D_sr, "D_sr"), np.asarray(labels)
    if labels.shape != (D.shape[1],):
        raise ValueError(f"labels must give one category per reference ({D.shape[1]}), got shape {labels.shape}")
    nearest = D.argmin(axis=1)
    out = {}
    for k, name in enumerate(names):
        refs = np.flatnonzero(labels == k)
        if len(refs):
            out[name] = {f"MMD-{kind}": float(D[:, refs].min(axis=0).mean()),
                         f"COV-{kind}": float(np.isin(refs, nearest).mean()),
                         "nearest-share": float((labels[nearest] == k).mean()),
                         "reference-share": len(refs) / D.shape[1]}
    return out


def set_diversity(D: np.ndarray) -> float:
    """Mean pairwise distance within a set, from its (M, M) distance matrix (diagonal excluded)."""
    m = D.shape[0]
    return float((D.sum() - np.trace(D)) / (m * (m - 1)))


def nearest_other(D: np.ndarray) -> float:
    """Mean over shapes of the distance to the nearest *other* shape of the set, from (M, M) ``D``."""
    off = D + np.diag(np.full(D.shape[0], np.inf))
    return float(off.min(axis=1).mean())


def point_spacing(clouds: np.ndarray) -> dict[str, float]:
    """How evenly each cloud places its points: the texture a 1-NN classifier sees when samples
    and data have similar shapes (issue 23's measurement).

    Every cloud is centred on its mean and scaled to radius 0.5 (its farthest point), so the
    figures compare clouds of any frame and size; then each point's Euclidean distance to its
    nearest other point of the same cloud is taken.

    Args:
        clouds: (M, N, 3) float, N >= 2.

    Returns:
        ``spacing``: the mean nearest-neighbour distance over all points (radius-0.5 units; for
        uniform points on a surface it falls as N^-1/2); ``spacing_cv``: the mean over clouds of
        its coefficient of variation (std / mean within a cloud): clumps and stray points raise
        it, a blurred, spread-out cloud lowers it.

    Raises:
        ValueError: ``clouds`` is not (M, N, 3) with M >= 1 and N >= 2.
    """
    x = np.asarray(clouds, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"point_spacing needs clouds of shape (M, N >= 2, 3), got {x.shape}")
    x = x - x.mean(axis=1, keepdims=True)
    radius = np.linalg.norm(x, axis=2).max(axis=1)
    x = x * (0.5 / np.maximum(radius, 1e-12))[:, None, None]
    means, cvs = [], []
    for c in x:
        nn = cKDTree(c).query(c, k=2)[0][:, 1]  # the nearest point other than itself
        means.append(nn.mean())
        cvs.append(nn.std() / max(nn.mean(), 1e-12))
    return {"spacing": float(np.mean(means)), "spacing_cv": float(np.mean(cvs))}
