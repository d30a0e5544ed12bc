"""Reading NumPy files that may be damaged, and checking point clouds, in one line of our own words.

Every command that reads arrays a user (or a damaged disk) hands it goes through here: an empty,
truncated or foreign file, a pickle, a missing array, a wrong shape or a NaN is an
:class:`ArrayFileError` that names the file and what is wrong, never numpy's or zipfile's text
(nor numpy's advice to allow pickles).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


class ArrayFileError(ValueError):
    """A file of arrays that cannot be used: the message names the file and the reason."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def load_arrays(path, what: str = "NumPy file") -> dict[str, np.ndarray] | np.ndarray:
    """The arrays of a ``.npz`` (a dict, every array read now) or the array of a ``.npy``.

    Raises:
        ArrayFileError: a missing, empty, truncated or foreign file, or arrays of Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise ArrayFileError(path, f"{what} not found")
    if path.stat().st_size == 0:
        raise ArrayFileError(path, f"empty file (0 bytes), not a {what}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if not (magic.startswith(b"\x93NUMPY") or magic.startswith(b"PK")):
        raise ArrayFileError(path, f"not a NumPy {what} (it starts with {magic!r}, not a .npy or .npz header)")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                return {k: data[k] for k in data.files}
        return data
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise ArrayFileError(path, "it holds Python objects, which are never unpickled") from None
        raise ArrayFileError(path, f"not a valid {what} ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ArrayFileError(path, f"unreadable or truncated {what} ({type(exc).__name__}: {exc})") from None


def cloud_array(arr, path, key: str | None = None) -> np.ndarray:
    """``arr`` as a float32 array of real coordinates.

    Raises:
        ArrayFileError: text, complex or object data, naming ``path`` (and ``key``).
    """
    arr = np.asarray(arr)
    where = f"{path}" + (f" ['{key}']" if key else "")
    if arr.dtype.kind not in "fiub":
        raise ArrayFileError(where, f"holds {arr.dtype} data, not real coordinates")
    return arr.astype(np.float32, copy=False)


def check_finite(points: np.ndarray, path) -> None:
    """Raise naming the first cloud and point with a NaN or infinite coordinate.

    Args:
        points: (N, 3) or (M, N, 3) coordinates.
    """
    bad = ~np.isfinite(points).all(axis=-1)
    if bad.any():
        first = np.argwhere(bad)[0]
        where = f"point {first[0]}" if points.ndim == 2 else f"cloud {first[0]}, point {first[1]}"
        raise ArrayFileError(path, f"{where} has a NaN or infinite coordinate; clean the file first")


def check_clouds(points: np.ndarray, path, *, one: bool = False) -> np.ndarray:
    """Check a set of clouds (M, N, 3) (or, with ``one``, one cloud (N, 3)) and return it.

    Raises:
        ArrayFileError: another shape (named, with what was expected), an empty set or cloud,
            or a NaN or infinite coordinate (the first one named).
    """
    points = cloud_array(points, path)
    if one:
        if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
            raise ArrayFileError(path, f"expected one cloud of shape (N, 3) with N > 0, got shape {points.shape}")
    else:
        if points.ndim == 2 and points.shape[1] == 3:
            raise ArrayFileError(path, f"holds one cloud {points.shape}, not a set of clouds (M, N, 3); stack "
                                       "several clouds into one array")
        if points.ndim != 3 or points.shape[2] != 3:
            raise ArrayFileError(path, f"expected clouds of shape (M, N, 3), got shape {points.shape}")
        if points.shape[0] == 0 or points.shape[1] == 0:
            raise ArrayFileError(path, f"holds no clouds (shape {points.shape})")
    check_finite(points, path)
    return points
