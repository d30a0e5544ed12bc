"""Reading and writing point clouds as PLY (binary, float32) and sets of clouds as NPZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointcloud_sivae.utils.arrays import ArrayFileError, check_clouds, load_arrays


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
        ValueError: missing or unreadable file, unsupported extension, not (N, 3), or a NaN or
            infinite coordinate (the first one named).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"point-cloud file {path} not found")
    if path.suffix == ".npy":
        pts = load_arrays(path, ".npy file")
    elif path.suffix in (".ply", ".xyz", ".txt"):
        try:
            if path.suffix == ".ply":
                pts = np.asarray(trimesh.load(str(path), process=False).vertices)
            else:
                pts = np.loadtxt(path, ndmin=2)
                if pts.shape[1] not in (3, 6, 7):  # x y z, with normals, with a label
                    raise ValueError(f"{pts.shape[1]} columns per line; expected x y z (and optional normals)")
                pts = pts[:, :3]
        except Exception as exc:  # noqa: BLE001 - trimesh and numpy raise many kinds; one line, the file named
            raise ArrayFileError(path, f"cannot read a point cloud ({type(exc).__name__}: {exc})") from None
    else:
        raise ArrayFileError(path, "expected a .ply, .npy, .xyz or .txt file")
    return check_clouds(pts, path, one=True)
