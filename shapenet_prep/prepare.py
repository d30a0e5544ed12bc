"""Build a prepared dataset for one category: read, subsample, split, normalise, write.

Points per cloud are chosen as a uniform random subset *without replacement* of the
source points (a fresh generator per shape seeded by ``(split_seed, crc32(model_id))``,
so a shape's points do not depend on which other shapes are present). Uniform
subsampling keeps the surface density of the release; farthest-point sampling would
not. Shapes with fewer source points than requested are malformed, never padded.

The split is a seeded permutation of the sorted model ids, cut by fractions
(train, val, test), so it is deterministic and recorded in the manifest.

Output is written to a temporary folder beside the target and renamed into place at
the end: an interrupted or failed run leaves no half-written dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pointcloud_sivae.categories import canonical_category, synset_of
from pointcloud_sivae.normalization import (
    NORMALIZATIONS,
    fit_global_stats,
    normalization_params,
    normalize,
)
from shapenet_prep import shapenetpart
from shapenet_prep.errors import MalformedShapeError

MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")
FORMATS = {"shapenetpart": shapenetpart}


@dataclass
class PrepareOptions:
    """What to prepare; see ``python -m shapenet_prep --help`` for each field."""

    source: Path
    category: str
    out: Path = Path("data/shapenet")
    format: str = "shapenetpart"
    num_points: int = 2048
    normalization: str = "none"
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    on_error: str = "skip"  # "skip": report and skip a malformed shape; "fail": stop
    overwrite: bool = False
    progress: bool = True
    log: object = field(default=None, repr=False)  # text stream for reports; None = sys.stderr


def _validate(opts: PrepareOptions) -> None:
    if opts.format not in FORMATS:
        raise ValueError(f"unknown --format {opts.format!r}; supported: {sorted(FORMATS)}")
    if opts.normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown --normalization {opts.normalization!r}; expected one of {NORMALIZATIONS}")
    if opts.on_error not in ("skip", "fail"):
        raise ValueError(f"--on-error must be 'skip' or 'fail', got {opts.on_error!r}")
    if opts.num_points < 1:
        raise ValueError(f"--num-points must be positive, got {opts.num_points}")
    fr = opts.split_fractions
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"--split needs three non-negative fractions summing to 1, got {fr}")


def subsample(points: np.ndarray, num_points: int, seed: int, model_id: str) -> np.ndarray:
    """Uniform random subset of ``num_points`` rows, without replacement.

    Args:
        points: (P, 3) float array with P >= num_points.
        seed, model_id: seed the per-shape generator with ``(seed, crc32(model_id))``.

    Returns:
        (num_points, 3) float32 array.
    """
    rng = np.random.default_rng([seed, zlib.crc32(model_id.encode())])
    idx = rng.choice(points.shape[0], size=num_points, replace=False)
    return points[idx].astype(np.float32)


def split_ids(ids: list[str], fractions, seed: int) -> dict[str, list[str]]:
    """Deterministic seeded split of model ids into train/val/test (sorted within each)."""
    ordered = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_val = int(round(fractions[1] * len(ordered)))
    n_test = int(round(fractions[2] * len(ordered)))
    n_train = len(ordered) - n_val - n_test
    cuts = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
    return {name: sorted(ordered[i] for i in idx) for name, idx in cuts.items()}


def _read_all(opts: PrepareOptions, shapes, reader):
    clouds: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    for model_id, path in tqdm(shapes, desc="reading", unit="shape", disable=not opts.progress):
        try:
            pts = reader.read_points(path)
            if pts.shape[0] < opts.num_points:
                raise MalformedShapeError(
                    path, f"only {pts.shape[0]} points, fewer than --num-points {opts.num_points}"
                )
        except MalformedShapeError as exc:
            if opts.on_error == "fail":
                raise MalformedShapeError(exc.path, exc.reason + " (run with --on-error skip to skip it)") from None
            skipped.append({"file": exc.path, "reason": exc.reason})
            print(f"skipped {exc.path}: {exc.reason}", file=opts.log)
            continue
        clouds[model_id] = subsample(pts, opts.num_points, opts.split_seed, model_id)
    return clouds, skipped


def _write_atomically(target: Path, arrays: dict[str, dict], manifest: dict, overwrite: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for split, data in arrays.items():
            np.savez(tmp / f"{split}.npz", **data)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} already exists; pass --overwrite to replace it")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def prepare_category(opts: PrepareOptions) -> dict:
    """Prepare one category; returns the manifest written to ``<out>/<category>/manifest.json``.

    Raises:
        ValueError: bad options or unknown category (the message lists valid ones).
        FileNotFoundError: the source folder for the category is missing.
        FileExistsError: the output exists and ``overwrite`` is false.
        MalformedShapeError: a malformed shape with ``on_error="fail"``, or no
            usable shape at all.
    """
    _validate(opts)
    if opts.log is None:
        opts.log = sys.stderr
    category = canonical_category(opts.category)
    synset = synset_of(category)
    target = Path(opts.out) / category
    if target.exists() and not opts.overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite to replace it")
    reader = FORMATS[opts.format]
    shapes = reader.list_shapes(Path(opts.source), synset)
    if not shapes:
        raise FileNotFoundError(f"no shapes found for {category} ({synset}) under {opts.source}")

    clouds, skipped = _read_all(opts, shapes, reader)
    if not clouds:
        raise MalformedShapeError(opts.source, f"none of the {len(shapes)} shapes could be used")
    splits = split_ids(list(clouds), opts.split_fractions, opts.split_seed)

    raw = {s: np.stack([clouds[i] for i in ids]) if ids else np.zeros((0, opts.num_points, 3), np.float32)
           for s, ids in splits.items()}
    norm_block: dict = {"method": opts.normalization}
    stats = None
    if opts.normalization == "global":
        stats = fit_global_stats(raw["train"])
        norm_block.update(global_mean=list(stats.mean), global_std=stats.std, fit_on="train")
    arrays = {}
    for s, pts in raw.items():
        shift, scale = normalization_params(pts, opts.normalization, stats) if len(pts) else (
            np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
        arrays[s] = {
            "points": normalize(pts, shift, scale).astype(np.float32),
            "ids": np.array(splits[s], dtype=str),
            "shift": shift,
            "scale": scale,
        }

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "category": category,
        "synset": synset,
        "source": str(Path(opts.source).resolve()),
        "format": opts.format,
        "num_points": opts.num_points,
        "point_selection": "uniform random subset without replacement; "
        "per-shape generator seeded by (split_seed, crc32(model_id))",
        "normalization": norm_block,
        "split_seed": opts.split_seed,
        "split_fractions": list(opts.split_fractions),
        "splits": splits,
        "counts": {**{s: len(ids) for s, ids in splits.items()}, "found": len(shapes), "skipped": len(skipped)},
        "skipped": skipped,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_atomically(target, arrays, manifest, opts.overwrite)
    c = manifest["counts"]
    print(
        f"prepared {category} ({synset}) in {target}: train {c['train']}, val {c['val']}, test {c['test']}, "
        f"{opts.num_points} points per cloud, normalization {opts.normalization}; "
        f"{c['skipped']} of {c['found']} source files skipped",
        file=opts.log,
    )
    return manifest
