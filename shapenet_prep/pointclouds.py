"""Readers for the community's point-cloud releases.

* ``pc15k``: PointFlow ShapeNetCore.v2.PC15k, ``<synset>/{train,val,test}/<id>.npy``
  (15000 x 3); its official split is kept.
* ``l3dp``: latent_3d_points ``shape_net_core_uniform_samples_2048/<synset>/<id>.ply``.
* ``onet``: Occupancy Networks ``<synset>/<id>/pointcloud.npz`` (``points``, ``normals``,
  float16); ``<synset>/{train,val,test}.lst`` are honoured when present.
* ``hdf5``: ``.h5`` bundles holding ``data`` (M, P, 3+) and ``label`` (M,) arrays (a file,
  or every ``.h5`` in a folder); the split comes from the file name when it says one;
  ``--h5-label`` keeps one label value. Where a ``shape_names.txt`` lies beside the files
  (ModelNet40's ``modelnet40_ply_hdf5_2048``), ``--category`` names the class and its
  label is its line in that file.

Each ``load`` returns a uniform random subset (without replacement) of the release's
points, seeded per shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shapenet_prep.common import (
    Sampling,
    ShapeRef,
    read_numpy,
    real_array,
    require_dir,
    split_from_name,
    subsample,
)
from shapenet_prep.errors import MalformedShapeError


class PC15k:
    @staticmethod
    def list_shapes(source: Path, synset: str, **_) -> list[ShapeRef]:
        folder = require_dir(Path(source) / synset, f"PC15k synset {synset}")
        return sorted((ShapeRef(p.stem, p, split) for split in ("train", "val", "test")
                       for p in (folder / split).glob("*.npy")), key=lambda r: r.model_id)

    @staticmethod
    def load(ref: ShapeRef, s: Sampling):
        pts = read_numpy(ref.path, ".npy")
        if not isinstance(pts, np.ndarray):
            raise MalformedShapeError(ref.path, "an .npz archive where a .npy array was expected")
        return subsample(real_array(pts, ref.path, "the array"), s.num_points, s.seed, ref.model_id, ref.path)


class L3DP:
    @staticmethod
    def list_shapes(source: Path, synset: str, **_) -> list[ShapeRef]:
        folder = require_dir(Path(source) / synset, f"latent_3d_points synset {synset}")
        return [ShapeRef(p.stem, p) for p in sorted(folder.glob("*.ply"))]

    @staticmethod
    def load(ref: ShapeRef, s: Sampling):
        import trimesh

        try:
            pts = np.asarray(trimesh.load(str(ref.path), process=False).vertices)
        except Exception as exc:  # noqa: BLE001 - reported with the file name
            raise MalformedShapeError(ref.path, f"unreadable PLY ({type(exc).__name__}: {exc})") from None
        return subsample(pts, s.num_points, s.seed, ref.model_id, ref.path)


class ONet:
    @staticmethod
    def list_shapes(source: Path, synset: str, **_) -> list[ShapeRef]:
        folder = require_dir(Path(source) / synset, f"Occupancy Networks synset {synset}")
        official = {}
        for split in ("train", "val", "test"):
            lst = folder / f"{split}.lst"
            if lst.is_file():
                official.update({line.strip(): split for line in lst.read_text().split() if line.strip()})
        return [ShapeRef(d.name, d / "pointcloud.npz", official.get(d.name))
                for d in sorted(p for p in folder.iterdir() if p.is_dir())]

    @staticmethod
    def load(ref: ShapeRef, s: Sampling):
        z = read_numpy(ref.path, "pointcloud.npz")
        if isinstance(z, np.ndarray):
            raise MalformedShapeError(ref.path, "a .npy array where a pointcloud.npz archive was expected")
        if "points" not in z:
            raise MalformedShapeError(ref.path, f"no 'points' array (found {sorted(z)})")
        pts = real_array(z["points"], ref.path, "'points'")
        normals = real_array(z["normals"], ref.path, "'normals'") if s.normals and "normals" in z else None
        if s.normals and normals is None:
            raise MalformedShapeError(ref.path, "no 'normals' array but --normals was asked for")
        return subsample(pts, s.num_points, s.seed, ref.model_id, ref.path, normals)


class HDF5:
    @staticmethod
    def shape_names(source: Path) -> tuple[list[str], Path] | None:
        """The class names of a labelled release (``shape_names.txt`` beside the ``.h5`` files,
        as in ModelNet40's ``modelnet40_ply_hdf5_2048``), or None when there is no such file."""
        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        path = folder / "shape_names.txt"
        if not path.is_file():
            return None
        return [line.strip() for line in path.read_text().splitlines() if line.strip()], path

    @staticmethod
    def label_of(source: Path, category: str) -> int:
        """The label of class ``category`` in ``shape_names.txt`` (its line number, from 0).

        Raises:
            ValueError: the class is not in the file; the message lists the classes.
        """
        names, path = HDF5.shape_names(source)
        key = category.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in names:
            raise ValueError(f"unknown class {category!r}: {path} lists {', '.join(names)}")
        return names.index(key)

    @staticmethod
    def list_shapes(source: Path, synset: str, h5_label: int | None = None, category: str = "",
                    **_) -> list[ShapeRef]:
        source = Path(source)
        if h5_label is None and HDF5.shape_names(source) is not None:
            h5_label = HDF5.label_of(source, category)  # --category airplane picks the label by name
        files = [source] if source.is_file() else sorted(source.glob("*.h5")) + sorted(source.glob("*.hdf5"))
        if not files:
            raise FileNotFoundError(f"no .h5 files at {source}")
        refs, seen, broken = [], set(), 0
        for f in files:
            try:
                labels, count = HDF5._contents(f)
            except MalformedShapeError:  # the whole file is skipped; load() gives the reason
                refs.append(ShapeRef(f.stem, f, split_from_name(f.stem), None))
                broken += 1
                continue
            if labels is not None:
                seen.update(int(v) for v in np.unique(labels))
            for i in range(count):
                if h5_label is None or (labels is not None and int(labels[i]) == h5_label):
                    refs.append(ShapeRef(f"{f.stem}_{i:05d}", f, split_from_name(f.stem), i))
        if h5_label is not None and len(refs) == broken:
            present = ", ".join(map(str, sorted(seen))) or "none (the files hold no 'label' array)"
            raise ValueError(f"--h5-label {h5_label}: no shape of {source} has this label; the labels present are "
                             f"{present}")
        return refs

    @staticmethod
    def _contents(path: Path) -> tuple[np.ndarray | None, int]:
        """``(labels or None, number of shapes)`` of one file.

        Raises:
            MalformedShapeError: not HDF5, no ``data``, ``data`` a group or a scalar.
        """
        import h5py

        if path.stat().st_size == 0:
            raise MalformedShapeError(path, "empty file (0 bytes), not HDF5")
        try:
            with h5py.File(path, "r") as h:
                if "data" not in h:
                    raise MalformedShapeError(path, f"no 'data' array (found {list(h.keys())})")
                data = h["data"]
                if not isinstance(data, h5py.Dataset):
                    raise MalformedShapeError(path, "'data' is a group, not an array of shapes")
                if data.ndim == 0:
                    raise MalformedShapeError(path, "'data' is a scalar, not an (M, P, 3+) array of shapes")
                labels = None
                if "label" in h and isinstance(h["label"], h5py.Dataset) and h["label"].ndim > 0:
                    labels = np.asarray(h["label"]).reshape(-1)
                return labels, data.shape[0]
        except OSError as exc:
            raise MalformedShapeError(path, f"not a readable HDF5 file ({exc})") from None

    @staticmethod
    def load(ref: ShapeRef, s: Sampling):
        import h5py

        if ref.index is None:  # a file that cannot be listed: say why
            HDF5._contents(ref.path)
            raise MalformedShapeError(ref.path, "no shapes could be listed")
        try:
            with h5py.File(ref.path, "r") as h:
                row = np.asarray(h["data"][ref.index])
        except (OSError, KeyError) as exc:
            raise MalformedShapeError(ref.path, f"shape {ref.index}: unreadable ({type(exc).__name__}: {exc})") from None
        if row.ndim != 2 or row.shape[1] < 3:
            raise MalformedShapeError(ref.path, f"shape {ref.index}: expected (P, 3+) points, got {row.shape}")
        return subsample(real_array(row[:, :3], ref.path, f"shape {ref.index}"), s.num_points, s.seed,
                         ref.model_id, ref.path)
