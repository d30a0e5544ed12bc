"""Reader for ModelNet40's PointNet++ release ``modelnet40_normal_resampled`` (Wu et al., CVPR 2015;
resampled by Qi et al., NeurIPS 2017).

Layout of ``<source>`` (the folder ``modelnet40_normal_resampled`` as downloaded):

* ``<class>/<class>_<NNNN>.txt``: one point per line, 6 comma-separated columns
  ``x,y,z,nx,ny,nz`` (10,000 points per shape in the release), each shape centred and
  scaled to the unit sphere;
* ``modelnet40_shape_names.txt``: the 40 class names, one a line;
* ``modelnet40_train.txt`` / ``modelnet40_test.txt``: the official split, one shape name
  (``airplane_0001``) a line, for all 40 classes.

ModelNet40 has no validation split, and a copy may lack a list file. The reader marks
each shape with the list that names it (or none); ``prepare`` then keeps every split a
list gives and carves the missing ones from the shapes present with the seeded split,
recording in the manifest which split came from where (``split_origin``).

ModelNet40 is a different CAD collection from ShapeNet: its airplanes are not ShapeNet's
airplanes, and the prepared folder says ``"collection": "ModelNet40"`` in its manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointcloud_sivae.data.categories import MODELNET40_CLASSES
from shapenet_prep.common import Sampling, ShapeRef, read_text_table, require_dir, subsample
from shapenet_prep.errors import MalformedShapeError

NUM_COLUMNS = 6
SHAPE_NAMES = "modelnet40_shape_names.txt"
SPLIT_LISTS = {"train": "modelnet40_train.txt", "test": "modelnet40_test.txt"}


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def class_names(source: Path) -> tuple[list[str], str]:
    """The release's class names and where they came from (its file, or the built-in list of 40)."""
    path = Path(source) / SHAPE_NAMES
    if path.is_file():
        return _read_list(path), str(path.resolve())
    return list(MODELNET40_CLASSES), f"built-in list of the 40 ModelNet40 classes ({SHAPE_NAMES} not found)"


def check_class(source: Path, name: str) -> str:
    """The ModelNet40 class named ``name`` (case-insensitive, ``-``/space read as ``_``).

    Raises:
        ValueError: not a class of the release; the message lists the 40 classes.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    names, where = class_names(source)
    if key not in names:
        raise ValueError(f"unknown ModelNet40 class {name!r}; the classes ({where}) are: {', '.join(names)}")
    return key


def release_info(source: Path, category: str) -> dict:
    """What the manifest records of the release: collection, class list and split lists found."""
    _, names_from = class_names(source)
    lists = {split: (str((Path(source) / f).resolve()) if (Path(source) / f).is_file() else None)
             for split, f in SPLIT_LISTS.items()}
    return {"collection": "ModelNet40", "class": category, "class_names_from": names_from, "split_lists": lists}


def list_shapes(source: Path, synset: str | None = None, category: str = "", **_) -> list[ShapeRef]:
    """Every ``<class>/<class>_NNNN.txt`` of one class, sorted, with its official split (or None).

    Raises:
        FileNotFoundError: ``<source>/<class>`` does not exist (the message lists what does).
    """
    folder = require_dir(Path(source) / category, f"ModelNet40 class {category!r}")
    official: dict[str, str] = {}
    for split, fname in SPLIT_LISTS.items():
        path = Path(source) / fname
        if path.is_file():
            official.update({n: split for n in _read_list(path) if n.startswith(f"{category}_")})
    return [ShapeRef(p.stem, p, official.get(p.stem)) for p in sorted(folder.glob(f"{category}_*.txt"))]


def read_table(path: Path) -> np.ndarray:
    """Read one ``x,y,z,nx,ny,nz`` file.

    Returns:
        (P, 6) float64 array: xyz (unit sphere, source units) and unit normals.

    Raises:
        MalformedShapeError: unreadable or empty file, a line without 6 comma-separated
            numbers, non-numeric text, or non-finite values.
    """
    data = read_text_table(path, NUM_COLUMNS, delimiter=",", table=f"table of {NUM_COLUMNS} comma-separated numbers",
                           columns="x,y,z,nx,ny,nz")
    bad = ~np.isfinite(data).all(axis=1)
    if bad.any():
        raise MalformedShapeError(path, f"{int(bad.sum())} line(s) with NaN or infinite values")
    return data


def load(ref: ShapeRef, s: Sampling):
    """A uniform random subset of the shape's points (with its normals when ``s.normals``)."""
    data = read_table(ref.path)
    return subsample(data[:, :3], s.num_points, s.seed, ref.model_id, ref.path,
                     data[:, 3:] if s.normals else None)
