"""Reading and writing point clouds as PLY (binary, float32) and sets of clouds as NPZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_ply(path: str | Path, points: np.ndarray) -> None:
    """Write one (N, 3) cloud as a binary little-endian PLY with float32 x, y, z.

    Raises:
        ValueError: points not shaped (N, 3).
    """
    import trimesh

    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"a PLY cloud must be (N, 3), got {points.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    trimesh.PointCloud(points).export(str(path), file_type="ply", encoding="binary")


def read_points(path: str | Path) -> np.ndarray:
    """Read a cloud from ``.ply`` (vertices), ``.npy`` (N, 3), ``.xyz``/``.txt`` (first 3 columns).

    Returns:
        (N, 3) float32 array.

    Raises:
        ValueError: missing or unreadable file, unsupported extension, or not (N, 3).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"point-cloud file {path} not found")
    try:
        if path.suffix == ".ply":
            pts = np.asarray(trimesh.load(str(path), process=False).vertices)
        elif path.suffix == ".npy":
            pts = np.load(path, allow_pickle=False)
        elif path.suffix in (".xyz", ".txt"):
            pts = np.loadtxt(path, ndmin=2)[:, :3]
        else:
            raise ValueError(f"{path}: expected .ply, .npy, .xyz or .txt")
    except (OSError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"cannot read a point cloud from {path}: {exc}") from None
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError(f"{path}: expected an (N, 3) point cloud, got shape {pts.shape}")
    return pts.astype(np.float32)
