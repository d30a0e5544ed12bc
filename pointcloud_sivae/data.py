"""Reading prepared datasets (written by ``python -m shapenet_prep``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pointcloud_sivae.categories import dataset_category

PREP_HINT = (
    "prepare it with: python -m shapenet_prep --format shapenetpart "
    "--source <ShapeNetPart root, e.g. ../shared/data/shapenetpart> --category {category} --out {root}"
)


class MissingDataError(FileNotFoundError):
    """The prepared dataset is not there; the message says how to prepare it."""


@dataclass
class PreparedSplit:
    """One split of a prepared category.

    Attributes:
        points: (M, N, 3) float32 tensor, normalised as ``manifest['normalization']`` says.
        ids: M model ids.
        shift: (M, 3) float32, scale: (M,) float32: per-cloud normalisation
            (``source = points * scale + shift``).
        manifest: the category's manifest.
    """

    points: torch.Tensor
    ids: list[str]
    shift: torch.Tensor
    scale: torch.Tensor
    manifest: dict


def category_dir(root: str | Path, category: str) -> Path:
    """``<root>/<canonical category>``; raises ``ValueError`` for an unknown category."""
    return Path(root) / dataset_category(category)


def load_manifest(root: str | Path, category: str) -> dict:
    """Read ``<root>/<category>/manifest.json``.

    Raises:
        ValueError: unknown category (lists valid ones).
        MissingDataError: no prepared data there (says which command prepares it).
    """
    path = category_dir(root, category) / "manifest.json"
    if not path.is_file():
        name = dataset_category(category)
        raise MissingDataError(f"no prepared data for {name!r}: {path} not found; "
                               + PREP_HINT.format(category=name, root=root))
    return json.loads(path.read_text())


def load_split(root: str | Path, category: str, split: str) -> PreparedSplit:
    """Load one split (``train``, ``val`` or ``test``) of a prepared category.

    Raises:
        ValueError: unknown category or split name.
        MissingDataError: the category or split file is missing.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    manifest = load_manifest(root, category)
    path = category_dir(root, category) / f"{split}.npz"
    if not path.is_file():
        raise MissingDataError(f"{path} not found; the prepared data is incomplete, "
                               + PREP_HINT.format(category=manifest["category"], root=root) + " --overwrite")
    with np.load(path, allow_pickle=False) as z:
        points = z["points"].astype(np.float32)
        bad = ~np.isfinite(points).all(axis=(1, 2)) if points.ndim == 3 else np.ones(1, bool)
        if bad.any():
            ids = [str(i) for i in np.asarray(z["ids"])[bad][:5]] if points.ndim == 3 else []
            raise ValueError(f"{path} holds {int(bad.sum())} cloud(s) with NaN or infinite coordinates "
                             f"(e.g. {ids}); the prepared data is damaged: "
                             + PREP_HINT.format(category=manifest["category"], root=root) + " --overwrite")
        return PreparedSplit(
            points=torch.from_numpy(points),
            ids=[str(i) for i in z["ids"]],
            shift=torch.from_numpy(z["shift"].astype(np.float32)),
            scale=torch.from_numpy(z["scale"].astype(np.float32)),
            manifest=manifest,
        )
