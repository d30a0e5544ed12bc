"""Pieces shared by every format reader."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointcloud_sivae.data.prepared import shape_rng  # noqa: F401 (the readers take it from here)
from pointcloud_sivae.utils.arrays import ArrayFileError, load_arrays
from shapenet_prep.errors import MalformedShapeError


@dataclass(frozen=True)
class ShapeRef:
    """One source shape: its id, where it is, and its official split when the release has one."""

    model_id: str
    path: Path
    split: str | None = None  # "train" / "val" / "test" from the release, else None
    index: int | None = None  # row in a multi-shape file (HDF5)


DEFAULT_NUM_POINTS = 2048  # points per prepared cloud, the field's standard (PointFlow, DPM, LION)


@dataclass(frozen=True)
class Sampling:
    """How a shape becomes a fixed-size cloud."""

    num_points: int = DEFAULT_NUM_POINTS
    seed: int = 0
    method: str = "uniform"  # meshes: "uniform" (area-weighted) or "poisson"
    normals: bool = False


def subsample(points: np.ndarray, num_points: int, seed: int, model_id: str, path=None,
              normals: np.ndarray | None = None):
    """Uniform random subset of ``num_points`` rows, without replacement (normals alongside).

    Raises:
        MalformedShapeError: fewer points than requested, or non-finite coordinates.
    """
    points = real_array(points, path or model_id, "the point array")
    if points.ndim != 2 or points.shape[1] != 3:
        raise MalformedShapeError(path or model_id, f"expected an (N, 3) array of points, got shape {points.shape}")
    if points.shape[0] < num_points:
        raise MalformedShapeError(path or model_id,
                                  f"only {points.shape[0]} points, fewer than --num-points {num_points}")
    if not np.isfinite(points).all():
        raise MalformedShapeError(path or model_id, "NaN or infinite coordinates")
    idx = shape_rng(seed, model_id).choice(points.shape[0], size=num_points, replace=False)
    return points[idx].astype(np.float32), None if normals is None else np.asarray(normals)[idx].astype(np.float32)


def read_text_table(path, num_columns: int, *, delimiter: str | None, table: str, columns: str) -> np.ndarray:
    """A text file of numbers, one point a line, as a (P, num_columns) float64 array.

    Args:
        delimiter: ``None`` for whitespace, ``","`` for comma-separated.
        table, columns: how messages name the expected table and its columns.

    Raises:
        MalformedShapeError: unreadable or empty file, a line with another column count, or
            non-numeric text (numpy names the line).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on empty input; reported below
            data = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, ndmin=2)
    except ValueError as exc:
        raise MalformedShapeError(path, f"not a {table}: {exc}") from None
    except OSError as exc:
        raise MalformedShapeError(path, f"cannot be read: {exc}") from None
    if data.size == 0:
        raise MalformedShapeError(path, "empty file (no points)")
    if data.shape[1] != num_columns:
        raise MalformedShapeError(path, f"expected {num_columns} columns ({columns}), found {data.shape[1]}")
    return data


def real_array(arr, path, what: str) -> np.ndarray:
    """``arr`` as a float64 array when it holds real numbers (float, integer or bool dtype).

    Raises:
        MalformedShapeError: a string, object, complex or structured dtype (naming it).
    """
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiub":
        kind = {"c": "complex numbers", "U": "text", "S": "bytes", "O": "Python objects", "V": "a structured record"}
        raise MalformedShapeError(path, f"{what} holds {kind.get(arr.dtype.kind, arr.dtype.name)} "
                                        f"(dtype {arr.dtype}), not real coordinates")
    return arr.astype(np.float64, copy=False)


def read_numpy(path, what: str = ".npy"):
    """The arrays of a ``.npz`` (a dict) or the array of a ``.npy``, every way a file can be broken a
    :class:`MalformedShapeError` in our words (:func:`pointcloud_sivae.utils.arrays.load_arrays`)."""
    try:
        return load_arrays(path, what)
    except ArrayFileError as exc:
        raise MalformedShapeError(exc.path, exc.reason) from None


def split_from_name(name: str) -> str | None:
    """``train``/``val``/``test`` when a file or folder name says so (e.g. ``ply_data_test0.h5``)."""
    low = name.lower()
    for split, keys in (("train", ("train",)), ("val", ("val",)), ("test", ("test",))):
        if any(k in low for k in keys):
            return split
    return None


def require_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        parent = folder.parent
        present = sorted(p.name for p in parent.iterdir())[:10] if parent.is_dir() else []
        raise FileNotFoundError(f"{what} folder {folder} not found (found in {parent}: {present or 'nothing'})")
    return folder
