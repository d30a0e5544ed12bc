"""Reader for the ShapeNetPart "normal" release (Yi et al., SIGGRAPH Asia 2016).

Layout ``<source>/<synset>/<model_id>.txt`` (the folder
``shapenetcore_partanno_segmentation_benchmark_v0_normal`` as downloaded), one point
per line, 7 whitespace-separated columns ``x y z nx ny nz part_label``, a varying
number of points per shape. Only ``xyz`` is kept.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from shapenet_prep.common import Sampling, ShapeRef, subsample
from shapenet_prep.errors import MalformedShapeError

NUM_COLUMNS = 7


def list_shapes(source: Path, synset: str, **_) -> list[ShapeRef]:
    """Every ``.txt`` shape of a synset, sorted by id (the release has no split files).

    Raises:
        FileNotFoundError: ``<source>/<synset>`` does not exist; the message lists
            the synset folders that do.
    """
    folder = Path(source) / synset
    if not folder.is_dir():
        present = sorted(p.name for p in Path(source).iterdir() if p.is_dir()) if Path(source).is_dir() else []
        raise FileNotFoundError(
            f"ShapeNetPart folder {folder} not found; --source must contain one folder per synset "
            f"(found: {present or 'nothing'})"
        )
    return [ShapeRef(p.stem, p) for p in sorted(folder.glob("*.txt"))]


def read_points(path: Path) -> np.ndarray:
    """Read the xyz coordinates of one ShapeNetPart shape.

    Returns:
        (P, 3) float64 array, source units.

    Raises:
        MalformedShapeError: unreadable or empty file, a line without exactly 7
            columns, non-numeric text, or non-finite coordinates.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on empty input; reported below
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:  # wrong column count or non-numeric text (numpy names the line)
        raise MalformedShapeError(path, f"not a 7-column numeric table: {exc}") from None
    except OSError as exc:
        raise MalformedShapeError(path, f"cannot be read: {exc}") from None
    if data.size == 0:
        raise MalformedShapeError(path, "empty file (no points)")
    if data.shape[1] != NUM_COLUMNS:
        raise MalformedShapeError(
            path, f"expected {NUM_COLUMNS} columns (x y z nx ny nz part), found {data.shape[1]}"
        )
    xyz = data[:, :3]
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        raise MalformedShapeError(path, f"{bad} point(s) with NaN or infinite coordinates")
    return xyz


def load(ref: ShapeRef, s: Sampling):
    """A uniform random subset of the shape's points (no normals: xyz only is kept)."""
    return subsample(read_points(ref.path), s.num_points, s.seed, ref.model_id, ref.path)
