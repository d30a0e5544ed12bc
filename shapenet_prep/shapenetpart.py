"""Reader for the ShapeNetPart "normal" release (Yi et al., SIGGRAPH Asia 2016).

Layout ``<source>/<synset>/<model_id>.txt`` (the folder
``shapenetcore_partanno_segmentation_benchmark_v0_normal`` as downloaded), one point
per line, 7 whitespace-separated columns ``x y z nx ny nz part_label``, a varying
number of points per shape. Only ``xyz`` is kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shapenet_prep.common import Sampling, ShapeRef, read_text_table, subsample
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
    data = read_text_table(path, NUM_COLUMNS, delimiter=None, table=f"{NUM_COLUMNS}-column numeric table",
                           columns="x y z nx ny nz part")
    xyz = data[:, :3]
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        raise MalformedShapeError(path, f"{bad} point(s) with NaN or infinite coordinates")
    return xyz


def load(ref: ShapeRef, s: Sampling):
    """A uniform random subset of the shape's points (no normals: xyz only is kept)."""
    return subsample(read_points(ref.path), s.num_points, s.seed, ref.model_id, ref.path)
