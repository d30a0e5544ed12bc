"""ShapeNetCore meshes: v2 ``<synset>/<id>/models/model_normalized.obj`` or v1 ``<synset>/<id>/model.obj``.

Loaded with trimesh: scenes are merged into one mesh, materials are skipped (a
missing ``.mtl`` or texture is no error). Points are sampled on the surface:

* ``uniform`` (default): area-weighted uniform sampling (trimesh ``sample_surface``),
  the way the 2048-point and 15k-point releases were made;
* ``poisson``: Poisson-disk (trimesh ``sample_surface_even``): the radius starts at
  ``sqrt(area / (pi N))`` and shrinks until at least N points fit, then N are drawn.

Optional normals are the normals of the sampled faces.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from shapenet_prep.common import Sampling, ShapeRef, require_dir, shape_rng
from shapenet_prep.errors import MalformedShapeError

LAYOUTS = (("v2", Path("models") / "model_normalized.obj"), ("v1", Path("model.obj")))


def list_shapes(source: Path, synset: str, **_) -> list[ShapeRef]:
    folder = require_dir(Path(source) / synset, f"ShapeNetCore synset {synset}")
    refs = []
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for _, rel in LAYOUTS:
            if (model_dir / rel).is_file():
                refs.append(ShapeRef(model_dir.name, model_dir / rel))
                break
        else:  # listed so that the report names it
            refs.append(ShapeRef(model_dir.name, model_dir / LAYOUTS[0][1]))
    return refs


def check_obj_text(path: Path) -> None:
    """Checks trimesh does not make: OBJ face indices (1-based; 0 is invalid, negatives count
    back from the last vertex) within the vertex count, and a last line cut mid-record.

    Raises:
        MalformedShapeError: naming the line and what is wrong with it.
    """
    text = Path(path).read_text(errors="replace")
    lines = text.splitlines()
    n_vertices = 0
    for k, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            n_vertices += 1
        elif parts[0] == "f":
            for token in parts[1:]:
                head = token.split("/", 1)[0]
                try:
                    index = int(head)
                except ValueError:
                    raise MalformedShapeError(path, f"line {k}: face entry {token!r} is not a vertex index") from None
                if index == 0:
                    raise MalformedShapeError(path, f"line {k}: face index 0 (OBJ vertex indices start at 1)")
                if abs(index) > n_vertices:
                    raise MalformedShapeError(path, f"line {k}: face index {index} but only {n_vertices} vertices "
                                                    "precede it")
    if lines and not text.endswith("\n"):
        parts = lines[-1].split()
        if parts and ((parts[0] == "v" and len(parts) < 4) or (parts[0] == "f" and len(parts) < 4)):
            raise MalformedShapeError(path, f"truncated file: the last line ({lines[-1].strip()!r}, line "
                                            f"{len(lines)}) is cut mid-record")


def load_mesh(path: Path):
    """Load a mesh file as one ``trimesh.Trimesh`` and check it can be sampled.

    Raises:
        MalformedShapeError: missing/unreadable file, no faces, non-finite vertices,
            zero surface area.
    """
    import trimesh

    if not Path(path).is_file():
        raise MalformedShapeError(path, "mesh file missing (neither v2 models/model_normalized.obj nor v1 model.obj)")
    if Path(path).suffix.lower() == ".obj":
        check_obj_text(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mesh = trimesh.load(str(path), force="mesh", process=False, skip_materials=True)
    except Exception as exc:  # noqa: BLE001 - trimesh raises many types for broken files; reported with the name
        raise MalformedShapeError(path, f"unreadable mesh ({type(exc).__name__}: {exc})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise MalformedShapeError(path, "empty mesh (no faces)")
    if not np.isfinite(mesh.vertices).all():
        raise MalformedShapeError(path, "non-finite vertex coordinates")
    if not np.isfinite(mesh.area) or mesh.area <= 0:
        raise MalformedShapeError(path, "zero surface area (degenerate faces only)")
    return mesh


def _poisson(mesh, n: int, seed: int):
    import trimesh

    radius = np.sqrt(mesh.area / (np.pi * n))
    for _ in range(12):
        pts, faces = trimesh.sample.sample_surface_even(mesh, 3 * n, radius=radius, seed=seed)
        if len(pts) >= n:
            return pts, faces
        radius *= 0.75
    raise MalformedShapeError("mesh", f"Poisson-disk sampling could not place {n} points")


def load(ref: ShapeRef, s: Sampling):
    """(N, 3) float32 surface samples (and (N, 3) normals when asked)."""
    import trimesh

    mesh = load_mesh(ref.path)
    rng = shape_rng(s.seed, ref.model_id)
    seed = int(rng.integers(2**31))
    if s.method == "poisson":
        try:
            pts, faces = _poisson(mesh, s.num_points, seed)
        except MalformedShapeError as exc:
            raise MalformedShapeError(ref.path, exc.reason) from None
        keep = rng.choice(len(pts), s.num_points, replace=False)
        pts, faces = pts[keep], faces[keep]
    else:
        pts, faces = trimesh.sample.sample_surface(mesh, s.num_points, seed=seed)
    if not np.isfinite(pts).all():
        raise MalformedShapeError(ref.path, "sampling produced non-finite points (degenerate faces)")
    normals = mesh.face_normals[faces].astype(np.float32) if s.normals else None
    return pts.astype(np.float32), normals
