"""Build a prepared dataset for one category: read or sample, split, normalise, write.

Stages:

1. **List** the source shapes (``FORMATS``), with the release's official split when
   it has one (PC15k folders, ONet ``.lst`` files, HDF5 file names).
2. **Load** each shape into a fixed-size cloud, in parallel worker processes with a
   progress bar. Each result is cached as ``<out>/.cache/<category>/<key>/<id>.npz``
   (or ``<id>.err`` holding the reason it cannot be used), written atomically; the
   key hashes the source and the sampling options. A killed run resumes where it
   stopped; broken shapes are not retried unless ``retry_failed``.
3. **Split** (official if every usable shape has one, else a seeded permutation of
   the sorted ids cut by fractions), **normalise** (``pointcloud_sivae.data.normalization``,
   the one implementation shared with training and evaluation) and **write**
   ``{train,val,test}.npz``, ``manifest.json`` and ``skipped.txt`` into a temporary
   folder renamed into place.

A rerun with the same options finds the finished dataset and does nothing.
Point selection: meshes are sampled on the surface (``meshes.py``); point-cloud
releases give a uniform random subset without replacement; both are seeded per
shape by ``(split_seed, crc32(model_id))``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pointcloud_sivae.data.categories import canonical_category, synset_of
from pointcloud_sivae.data.normalization import NORMALIZATIONS, fit_global_stats, normalization_params, normalize
from pointcloud_sivae.data.prepared import file_record, verify_file
from pointcloud_sivae.utils.runtime import atomic_write, die_with_parent, provenance
from shapenet_prep import meshes, modelnet40, shapenetpart
from shapenet_prep.common import DEFAULT_NUM_POINTS, Sampling, ShapeRef
from shapenet_prep.errors import MalformedShapeError
from shapenet_prep.pointclouds import HDF5, L3DP, PC15k, ONet

MANIFEST_VERSION = 2
SPLITS = ("train", "val", "test")
FORMATS = {"shapenetpart": shapenetpart, "mesh": meshes, "pc15k": PC15k, "l3dp": L3DP, "onet": ONet, "hdf5": HDF5,
           "modelnet40": modelnet40}
SAMPLING_METHODS = ("uniform", "poisson")


@dataclass
class PrepareOptions:
    """What to prepare; see ``python -m shapenet_prep --help`` for each field."""

    source: Path
    category: str
    out: Path = Path("data/shapenet")
    format: str = "shapenetpart"
    num_points: int = DEFAULT_NUM_POINTS
    normalization: str = "none"
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    on_error: str = "skip"  # "skip": report and skip a malformed shape; "fail": stop, nothing written
    overwrite: bool = False
    sampling: str = "uniform"  # meshes only: "uniform" (area-weighted) or "poisson"
    normals: bool = False  # also store per-point normals (meshes, onet)
    h5_label: int | None = None  # hdf5 only: keep shapes with this label
    workers: int = 1
    retry_failed: bool = False
    progress: bool = True
    log: object = field(default=None, repr=False)  # text stream for reports; None = sys.stderr

    def recorded(self) -> dict:
        """The options that define the dataset (a rerun with equal ones is a no-op)."""
        return {"format": self.format, "source": str(Path(self.source).resolve()), "num_points": self.num_points,
                "normalization": self.normalization, "split_seed": self.split_seed,
                "split_fractions": list(self.split_fractions), "sampling": self.sampling, "normals": self.normals,
                "h5_label": self.h5_label}


def _validate(opts: PrepareOptions) -> None:
    if opts.format not in FORMATS:
        raise ValueError(f"unknown --format {opts.format!r}; supported: {sorted(FORMATS)}")
    if opts.normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown --normalization {opts.normalization!r}; expected one of {NORMALIZATIONS}")
    if opts.on_error not in ("skip", "fail"):
        raise ValueError(f"--on-error must be 'skip' or 'fail', got {opts.on_error!r}")
    if opts.sampling not in SAMPLING_METHODS:
        raise ValueError(f"--sampling must be one of {SAMPLING_METHODS}, got {opts.sampling!r}")
    if opts.num_points < 1:
        raise ValueError(f"--num-points must be positive, got {opts.num_points}")
    if opts.workers < 1:
        raise ValueError(f"--workers must be positive, got {opts.workers}")
    fr = opts.split_fractions
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"--split-fractions needs three non-negative fractions summing to 1, got {list(fr)}")
    if opts.normals and opts.format not in ("mesh", "onet", "modelnet40"):
        raise ValueError(f"--normals is available for the mesh, onet and modelnet40 formats, not {opts.format!r}")


def split_ids(ids: list[str], fractions, seed: int) -> dict[str, list[str]]:
    """Deterministic seeded split of model ids into train/val/test (sorted within each)."""
    ordered = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_val = int(round(fractions[1] * len(ordered)))
    n_test = int(round(fractions[2] * len(ordered)))
    n_train = len(ordered) - n_val - n_test
    cuts = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
    return {name: sorted(ordered[i] for i in idx) for name, idx in cuts.items()}


# ----- stage 2: per-shape work, cached -------------------------------------------------------

def _cache_dir(opts: PrepareOptions, category: str) -> Path:
    rec = opts.recorded()
    key = {k: rec[k] for k in ("format", "source", "num_points", "split_seed", "sampling", "normals", "h5_label")}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(opts.out) / ".cache" / category / f"{opts.format}-{opts.num_points}-{digest}"


def _work(fmt: str, ref: ShapeRef, sampling: Sampling, cache: Path) -> tuple[str, str | None]:
    """Load one shape into the cache; returns ``(model_id, reason or None)``. Runs in a worker."""
    try:
        points, normals = FORMATS[fmt].load(ref, sampling)
    except Exception as exc:  # noqa: BLE001 - one broken file never stops a category: recorded and skipped
        if isinstance(exc, MalformedShapeError):
            path, reason = exc.path, exc.reason
        else:  # an error no reader foresaw: named, never with a library's advice to load pickles
            detail = "it holds Python objects, which are never unpickled" if "pickle" in str(exc) else str(exc)
            path, reason = str(ref.path), f"cannot be read ({type(exc).__name__}: {detail})"
        record = f"{path}\t{reason}".encode()
        atomic_write(cache / f"{ref.model_id}.err", lambda f: f.write(record), durable=False)
        return ref.model_id, f"{path}: {reason}"
    arrays = {"points": points} if normals is None else {"points": points, "normals": normals}
    atomic_write(cache / f"{ref.model_id}.npz", lambda f: np.savez(f, **arrays), durable=False)  # a cache
    return ref.model_id, None


def _load_all(opts: PrepareOptions, category: str, refs: list[ShapeRef]):
    cache = _cache_dir(opts, category)
    cache.mkdir(parents=True, exist_ok=True)
    sampling = Sampling(opts.num_points, opts.split_seed, opts.sampling, opts.normals)
    if opts.retry_failed:
        for err in cache.glob("*.err"):
            err.unlink()
    todo = [r for r in refs if not (cache / f"{r.model_id}.npz").exists() and not (cache / f"{r.model_id}.err").exists()]
    bar = tqdm(total=len(refs), initial=len(refs) - len(todo), desc=f"{category}", unit="shape",
               disable=not opts.progress)

    def check(reason):
        bar.update(1)
        if reason and opts.on_error == "fail":
            raise MalformedShapeError(*reason.split(": ", 1)) if ": " in reason else MalformedShapeError(reason, "")

    try:
        if opts.workers == 1 or len(todo) < 2:
            for r in todo:
                check(_work(opts.format, r, sampling, cache)[1])
        else:
            with ProcessPoolExecutor(max_workers=opts.workers, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:  # workers end with a killed parent
                futures = [pool.submit(_work, opts.format, r, sampling, cache) for r in todo]
                try:
                    for fut in as_completed(futures):
                        check(fut.result()[1])
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    except MalformedShapeError as exc:
        raise MalformedShapeError(exc.path, exc.reason + " (run with --on-error skip to skip it)") from None
    finally:
        bar.close()

    clouds, normals, skipped = {}, {}, []
    for r in refs:
        err = cache / f"{r.model_id}.err"
        if err.exists():
            path, reason = err.read_text().split("\t", 1)
            if opts.on_error == "fail":
                raise MalformedShapeError(path, reason + " (run with --on-error skip to skip it)")
            skipped.append({"id": r.model_id, "file": path, "reason": reason})
            continue
        with np.load(cache / f"{r.model_id}.npz") as z:
            clouds[r.model_id] = z["points"]
            if "normals" in z.files:
                normals[r.model_id] = z["normals"]
    return clouds, normals, skipped


# ----- stage 3: split, normalise, write ------------------------------------------------------

def _splits(refs: list[ShapeRef], usable: list[str], opts: PrepareOptions) -> tuple[dict, str, dict]:
    """The split of the usable shapes: ``(splits, summary, origin per split)``.

    * every usable shape has an official split and all three are present: the release's;
    * no shape has one: a seeded split of all shapes by ``split_fractions``;
    * the release gives some splits but not all (ModelNet40 has no val list; a copy may
      lack its test list): the splits it gives are kept, and each missing one is carved,
      seeded, from the shapes of the official train split plus any shape no list names,
      in the proportions of ``split_fractions`` (train keeps the rest).
    """
    usable_set = set(usable)
    official = {r.model_id: r.split for r in refs if r.model_id in usable_set}
    given = {sp for sp in official.values() if sp}
    if usable and all(official.values()) and given == set(SPLITS):
        return ({s: sorted(i for i, sp in official.items() if sp == s) for s in SPLITS}, "official (from the release)",
                {s: "official (from the release)" for s in SPLITS})
    if not given or given == set(SPLITS):  # nothing official, or some shapes unlisted: seeded for all
        return (split_ids(usable, opts.split_fractions, opts.split_seed), "seeded",
                {s: f"seeded (split_seed {opts.split_seed}, fractions {list(opts.split_fractions)})" for s in SPLITS})
    missing = [s for s in SPLITS if s not in given]
    pool = sorted(i for i, sp in official.items() if sp in (None, "train"))
    fr = dict(zip(SPLITS, opts.split_fractions))
    share = fr["train"] + sum(fr[s] for s in missing)
    carved = split_ids(pool, (fr["train"] / share, *(fr[s] / share if s in missing else 0.0 for s in ("val", "test"))),
                       opts.split_seed)
    splits = {s: carved[s] if s in missing or s == "train" else sorted(i for i, sp in official.items() if sp == s)
              for s in SPLITS}
    unlisted = sum(1 for sp in official.values() if sp is None)
    pool_text = "the official train split" + (f" and {unlisted} unlisted shape(s)" if unlisted else "")
    origin = {s: (f"seeded: carved from {pool_text} (split_seed {opts.split_seed}, fraction "
                  f"{fr[s] / share:.4f} of {len(pool)}); the release has no {s} list" if s in missing else
                  "official (from the release)" if s != "train" else
                  f"official (from the release), less the shapes carved out for {' and '.join(missing)}")
              for s in SPLITS}
    return splits, f"official {'/'.join(sorted(given))}, seeded {'/'.join(missing)}", origin


def _write_atomically(target: Path, arrays: dict[str, dict], manifest: dict, report: str, overwrite: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for split, data in arrays.items():
            np.savez(tmp / f"{split}.npz", **data)
        manifest["files"] = {f"{split}.npz": file_record(tmp / f"{split}.npz") for split in arrays}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / "skipped.txt").write_text(report)
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


def _resolve_category(opts: PrepareOptions) -> tuple[str, str | None, dict]:
    """``(folder name, ShapeNet synset or None, release fields for the manifest)``.

    ModelNet40 (its text release, or an HDF5 release with ``shape_names.txt``) names classes,
    not synsets: the class is checked against the release's list. Everything else is ShapeNet.
    """
    if opts.format == "modelnet40":
        category = modelnet40.check_class(opts.source, opts.category)
        return category, None, modelnet40.release_info(opts.source, category)
    if opts.format == "hdf5" and HDF5.shape_names(opts.source) is not None:
        names, path = HDF5.shape_names(opts.source)
        label = opts.h5_label if opts.h5_label is not None else HDF5.label_of(opts.source, opts.category)
        category = names[label] if opts.h5_label is None else opts.category.strip().lower()
        return category, None, {"collection": "ModelNet40" if len(names) == 40 else "labelled HDF5",
                                "class": category, "class_names_from": str(path), "h5_label_used": label}
    category = canonical_category(opts.category)
    return category, synset_of(category), {"collection": "ShapeNet"}


def _existing_manifest(target: Path) -> dict:
    try:
        manifest = json.loads((target / "manifest.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileExistsError(f"{target / 'manifest.json'} is damaged (not valid JSON: {exc}); pass --overwrite to "
                              "prepare the category again") from None
    if not isinstance(manifest, dict):
        raise FileExistsError(f"{target / 'manifest.json'} is damaged (not a manifest); pass --overwrite to prepare "
                              "the category again")
    return manifest


def _damaged_files(target: Path, manifest: dict) -> dict[str, str]:
    """The prepared files that are missing or differ from what the manifest recorded, with why."""
    out = {}
    for split in SPLITS:
        path = target / f"{split}.npz"
        why = "missing" if not path.is_file() else verify_file(path, manifest)
        if why:
            out[path.name] = why
    return out


def _first_of_each_id(refs: list) -> tuple[list, list[dict]]:
    """The shapes with their first file for each model id (in the release's listing order: train,
    val, test for split folders), and a skip record for every other file with that id, saying
    where the id was kept: a prepared split holds each shape once, and a file found is either
    prepared or listed as skipped with its reason (never dropped by a later file of the same id)."""
    kept: dict[str, object] = {}
    duplicates = []
    for r in refs:
        first = kept.setdefault(r.model_id, r)
        if first is not r:
            where = f" ({first.split} split)" if first.split else ""
            duplicates.append({"id": r.model_id, "file": str(r.path) + (f"[{r.index}]" if r.index is not None else ""),
                               "reason": f"duplicate model id: the shape {r.model_id} is also at {first.path}{where}, "
                                         "which is the one prepared"})
    return [r for r in refs if kept[r.model_id] is r], duplicates


def prepare_category(opts: PrepareOptions) -> dict:
    """Prepare one category; returns the manifest written to ``<out>/<category>/manifest.json``.

    Raises:
        ValueError: bad options or unknown category (the message lists valid ones).
        FileNotFoundError: the source folder for the category is missing.
        FileExistsError: the output exists with other options and ``overwrite`` is false.
        MalformedShapeError: a malformed shape with ``on_error="fail"``, or no usable shape.
    """
    _validate(opts)
    log = opts.log or sys.stderr
    category, synset, release = _resolve_category(opts)
    target = Path(opts.out) / category
    overwrite = opts.overwrite
    if (target / "manifest.json").exists() and not overwrite:
        existing = _existing_manifest(target)
        if existing.get("options") != opts.recorded():
            raise FileExistsError(f"{target} already exists with other options; pass --overwrite to replace it")
        damaged = _damaged_files(target, existing)
        if not damaged:
            print(f"{target} is already prepared with these options; nothing to do", file=log)
            return existing
        for name, why in damaged.items():
            print(f"{target / name} is damaged ({why}); preparing {category} again", file=log)
        overwrite = True
    refs = FORMATS[opts.format].list_shapes(Path(opts.source), synset, h5_label=opts.h5_label, category=category)
    if not refs:
        raise FileNotFoundError(f"no shapes found for {category} ({synset}) under {opts.source}")

    found = len(refs)
    refs, duplicates = _first_of_each_id(refs)
    clouds, normals, skipped = _load_all(opts, category, refs)
    skipped = duplicates + skipped
    for s in skipped:
        print(f"skipped {s['file']}: {s['reason']}", file=log)
    if not clouds:
        raise MalformedShapeError(opts.source, f"none of the {len(refs)} shapes could be used")
    splits, split_source, split_origin = _splits(refs, list(clouds), opts)

    raw = {s: np.stack([clouds[i] for i in ids]) if ids else np.zeros((0, opts.num_points, 3), np.float32)
           for s, ids in splits.items()}
    norm_block: dict = {"method": opts.normalization}
    stats = None
    if opts.normalization == "global":
        if not len(raw["train"]):
            raise ValueError("normalization 'global' needs a non-empty train split")
        stats = fit_global_stats(raw["train"])
        norm_block.update(global_mean=list(stats.mean), global_std=stats.std, fit_on="train")
    arrays = {}
    for s, pts in raw.items():
        shift, scale = normalization_params(pts, opts.normalization, stats) if len(pts) else (
            np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
        arrays[s] = {"points": normalize(pts, shift, scale).astype(np.float32),
                     "ids": np.array(splits[s], dtype=str), "shift": shift, "scale": scale}
        if normals:  # rotation-free normalisations leave normal directions unchanged
            arrays[s]["normals"] = np.stack([normals[i] for i in splits[s]]) if splits[s] else np.zeros((0, opts.num_points, 3), np.float32)

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "category": category,
        "synset": synset,
        **release,
        "source": str(Path(opts.source).resolve()),
        "format": opts.format,
        "num_points": opts.num_points,
        "point_selection": ("surface sampling: " + ("area-weighted uniform" if opts.sampling == "uniform"
                            else "Poisson-disk") if opts.format == "mesh" else
                            "uniform random subset without replacement") +
                           "; per-shape generator seeded by (split_seed, crc32(model_id))",
        "normals": bool(normals),
        "normalization": norm_block,
        "split_seed": opts.split_seed,
        "split_fractions": list(opts.split_fractions),
        "split_source": split_source,
        "split_origin": split_origin,
        "splits": splits,
        "counts": {**{s: len(ids) for s, ids in splits.items()}, "found": found, "skipped": len(skipped)},
        "skipped": skipped,
        "options": opts.recorded(),
        "created": provenance()["created"],
    }
    report = "".join(f"{s['id']}\t{s['file']}\t{s['reason']}\n" for s in skipped)
    _write_atomically(target, arrays, manifest, report, overwrite)
    c = manifest["counts"]
    for split in SPLITS:
        if not c[split]:
            print(f"warning: the {split} split is empty (0 of {len(clouds)} shapes): " + (
                "nothing can be validated or scored on it; use --split-fractions with a positive share for it"
                if split != "train" else "nothing can be trained on it"), file=log)
    print(f"prepared {category} ({synset or release['collection']}) in {target}: train {c['train']}, val {c['val']}, test {c['test']} "
          f"({split_source} split), {opts.num_points} points per cloud, normalization {opts.normalization}; "
          f"{c['skipped']} of {c['found']} source shapes skipped" + (f" (listed in {target / 'skipped.txt'})"
                                                                     if skipped else ""), file=log)
    return manifest
