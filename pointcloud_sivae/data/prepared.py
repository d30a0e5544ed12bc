"""Reading prepared datasets (written by ``python -m shapenet_prep``)."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pointcloud_sivae.data.categories import dataset_category
from pointcloud_sivae.utils.arrays import ArrayFileError, cloud_array, load_arrays

PREP_HINT = (
    "prepare it with: python -m shapenet_prep --format shapenetpart "
    "--source <ShapeNetPart root, e.g. ../shared/data/shapenetpart> --category {category} --out {root}"
)


class MissingDataError(FileNotFoundError):
    """The prepared dataset is not there; the message says how to prepare it."""


class PreparedDataError(ValueError):
    """The prepared data is damaged or inconsistent; the message names the file and how to prepare it again."""


@dataclass
class PreparedSplit:
    """One split of a prepared category.

    Attributes:
        points: (M, N, 3) float32 tensor, normalised as ``manifest['normalization']`` says.
        ids: M model ids.
        shift: (M, 3) float32, scale: (M,) float32: per-cloud normalisation
            (``source = points * scale + shift``).
        manifest: the category's manifest.
        subset: ``None`` when the clouds hold every prepared point; else how the fixed
            subset of ``num_points`` was drawn (:func:`fixed_subsets`), for result files.
        labels: (M,) int64 tensor, each cloud's index in ``categories``.
        categories: the canonical category names the split holds (one, or several for a
            multi-category run: :func:`load_categories`).
    """

    points: torch.Tensor
    ids: list[str]
    shift: torch.Tensor
    scale: torch.Tensor
    manifest: dict
    subset: dict | None = None
    path: Path | None = None
    labels: torch.Tensor | None = None
    categories: list[str] | None = None

    def __post_init__(self):
        if self.labels is None:
            self.labels = torch.zeros(len(self.ids), dtype=torch.long)
        if self.categories is None:
            self.categories = [self.manifest["category"]]

    def of_category(self, category: str) -> "PreparedSplit":
        """The clouds of one of the split's categories (a name, alias or synset), as a split of its own.

        Raises:
            ValueError: the split holds no such category (names the ones it holds).
        """
        name = dataset_category(category)
        if name not in self.categories:
            raise ValueError(f"category {name!r} is not one this run was trained on ({', '.join(self.categories)}); "
                             f"choose one of them with --category")
        if self.categories == [name]:
            return self
        k = self.categories.index(name)
        keep = (self.labels == k).nonzero().flatten()
        manifest = self.manifest.get("per_category", {}).get(name, self.manifest)
        return PreparedSplit(points=self.points[keep], ids=[self.ids[i] for i in keep.tolist()],
                             shift=self.shift[keep], scale=self.scale[keep], manifest=manifest, subset=self.subset,
                             path=self.path, labels=torch.zeros(len(keep), dtype=torch.long), categories=[name])

    def nonempty(self) -> "PreparedSplit":
        """This split, when it holds shapes.

        Raises:
            ValueError: it holds none (names the split and where the counts are).
        """
        if not self.ids:
            split = self.path.stem if self.path else "requested"
            raise ValueError(f"the {split} split of {self.path.parent if self.path else 'the data'} holds no shapes "
                             f"(counts in its manifest.json); choose another --split, or prepare the data with a "
                             f"positive --split-fractions share for {split}")
        return self


def shape_rng(seed: int, model_id: str) -> np.random.Generator:
    """A generator seeded by ``(seed, crc32(model_id))``: a shape's points do not depend on other shapes."""
    return np.random.default_rng([seed, zlib.crc32(model_id.encode())])


SUBSET_RULE = ("per cloud, a uniform random subset without replacement drawn by numpy's default_rng([seed, "
               "crc32(model id)]).choice(N, M): the same points in every command, whatever else is in the split")


def fixed_subsets(points: torch.Tensor, ids: list[str], num_points: int, seed: int) -> torch.Tensor:
    """The fixed evaluation subset of each cloud: PointFlow's ``te_sample_size`` convention.

    Args:
        points: (M, N, 3) clouds; ids: their M model ids.
        num_points: points kept per cloud, ``1 <= num_points <= N``.
        seed: the run's ``data.subset_seed``.

    Returns:
        (M, num_points, 3) tensor, the rows chosen by :data:`SUBSET_RULE` (``points`` itself when
        ``num_points == N``).

    Raises:
        ValueError: ``num_points`` outside ``[1, N]``.
    """
    n = points.shape[1]
    if not 1 <= num_points <= n:
        raise ValueError(f"cannot take {num_points} points per cloud from clouds of {n} points")
    if num_points == n:
        return points
    idx = np.stack([shape_rng(seed, i).choice(n, size=num_points, replace=False) for i in ids])
    return torch.gather(points, 1, torch.from_numpy(idx).to(points.device)[..., None].expand(-1, -1, 3))


def mean_diagonal(points: torch.Tensor) -> float:
    """Mean bounding-box diagonal of (M, N, 3) clouds, in their units: the length unit of the
    frame-invariant Chamfer terms (:func:`~pointcloud_sivae.objectives.objective_scales`).

    Raises:
        ValueError: no clouds, or clouds of zero extent.
    """
    if points.ndim != 3 or points.shape[0] == 0:
        raise ValueError(f"expected (M, N, 3) clouds with M >= 1, got shape {tuple(points.shape)}")
    extent = points.double().amax(dim=1) - points.double().amin(dim=1)
    d = float(extent.norm(dim=1).mean())
    if not d > 0:
        raise ValueError("the clouds have no extent (every point equal): cannot measure the frame's diagonal")
    return d


def random_subsets(points: torch.Tensor, num_points: int, generator: torch.Generator) -> torch.Tensor:
    """A fresh uniform random subset of ``num_points`` points of every cloud (without replacement):
    PointFlow's ``tr_sample_size`` convention, drawn anew at every training step.

    Args:
        points: (B, N, 3) clouds; num_points: ``1 <= num_points <= N``.
        generator: a CPU generator (the trainer seeds it by seed and step, so a resumed run
            draws the same subsets).

    Returns:
        (B, num_points, 3) tensor on ``points``' device.
    """
    b, n, _ = points.shape
    if num_points == n:
        return points
    idx = torch.rand(b, n, generator=generator).argsort(dim=1)[:, :num_points].to(points.device)
    return torch.gather(points, 1, idx[..., None].expand(-1, -1, 3))


def category_dir(root: str | Path, category: str) -> Path:
    """``<root>/<canonical category>``; raises ``ValueError`` for an unknown category."""
    return Path(root) / dataset_category(category)


def load_manifest(root: str | Path, category: str) -> dict:
    """Read ``<root>/<category>/manifest.json``.

    Raises:
        ValueError: unknown category (lists valid ones).
        MissingDataError: no prepared data there (says which command prepares it).
        PreparedDataError: the manifest is not valid JSON, or lacks what a manifest holds.
    """
    path = category_dir(root, category) / "manifest.json"
    if not path.is_file():
        name = dataset_category(category)
        raise MissingDataError(f"no prepared data for {name!r}: {path} not found; "
                               + PREP_HINT.format(category=name, root=root))
    again = PREP_HINT.format(category=dataset_category(category), root=root) + " --overwrite"
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PreparedDataError(f"{path} is damaged: not valid JSON ({exc}); {again}") from None
    missing = [k for k in MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise PreparedDataError(f"{path} is damaged: it lacks {', '.join(missing)}; {again}")
    return manifest


MANIFEST_KEYS = ("category", "num_points", "normalization", "splits")


def file_record(path: Path) -> dict:
    """What a prepared file's manifest entry records: its size and SHA-256, checked on every load."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def verify_file(path: Path, manifest: dict) -> str | None:
    """Why ``path`` differs from what ``manifest["files"]`` recorded when it was prepared, or None
    (also None for manifests written before the record existed)."""
    want = manifest.get("files", {}).get(path.name)
    if want is None:
        return None
    got = {"bytes": path.stat().st_size} if path.stat().st_size != want["bytes"] else file_record(path)
    if got["bytes"] != want["bytes"]:
        return f"{got['bytes']} bytes where {want['bytes']} were written"
    if got["sha256"] != want["sha256"]:
        return "its SHA-256 differs from the one recorded when it was prepared"
    return None


def load_split(root: str | Path, category: str, split: str, num_points: int | None = None,
               subset_seed: int = 0, asked_by: str | None = None) -> PreparedSplit:
    """Load one split (``train``, ``val`` or ``test``) of a prepared category, checked against its
    manifest (size and SHA-256 of the file, ids, shapes, finite coordinates).

    Args:
        num_points: points per cloud wanted (a model's N); fewer than prepared gives every
            cloud its fixed subset (:func:`fixed_subsets`, seeded by ``subset_seed``). ``None``:
            all prepared points.
        asked_by: who wants ``num_points``, for the error when the data has fewer.

    Raises:
        ValueError: unknown category or split name, or more points wanted than prepared.
        MissingDataError: the category or split file is missing.
        PreparedDataError: the file or the manifest is damaged, or they disagree (names the file).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    manifest = load_manifest(root, category)
    path = category_dir(root, category) / f"{split}.npz"
    again = PREP_HINT.format(category=manifest["category"], root=root) + " --overwrite"
    if not path.is_file():
        raise MissingDataError(f"{path} not found; the prepared data is incomplete, {again}")
    damage = verify_file(path, manifest)
    if damage:
        raise PreparedDataError(f"{path} is damaged: {damage}; {again}")
    try:
        z = load_arrays(path, "prepared split")
    except ArrayFileError as exc:
        raise PreparedDataError(f"{exc}; the prepared data is damaged, {again}") from None
    absent = [k for k in ("points", "ids", "shift", "scale") if not isinstance(z, dict) or k not in z]
    if absent:
        found = sorted(z) if isinstance(z, dict) else "one array"
        raise PreparedDataError(f"{path} has no {', '.join(repr(k) for k in absent)} array (found {found}); {again}")
    try:
        points = cloud_array(z["points"], path, "points")
    except ArrayFileError as exc:
        raise PreparedDataError(f"{exc}; {again}") from None
    if points.ndim != 3 or points.shape[2] != 3:
        raise PreparedDataError(f"{path}: 'points' must be clouds of shape (M, N, 3), got {points.shape}; {again}")
    ids = [str(i) for i in z["ids"]]
    listed = manifest["splits"].get(split, [])
    if len(ids) != len(points):
        raise PreparedDataError(f"{path} holds {len(points)} clouds but {len(ids)} ids; {again}")
    if ids != list(listed):
        raise PreparedDataError(f"{path} holds {len(points)} clouds but manifest.json lists {len(listed)} {split} "
                                f"ids{' (others)' if len(listed) == len(ids) else ''}; the two disagree: {again}")
    bad = ~np.isfinite(points).all(axis=(1, 2))
    if bad.any():
        raise PreparedDataError(f"{path} holds {int(bad.sum())} cloud(s) with NaN or infinite coordinates "
                                f"(e.g. {[i for i, b in zip(ids, bad) if b][:5]}); the prepared data is damaged: {again}")
    shift, scale = z["shift"].astype(np.float32), z["scale"].astype(np.float32)
    subset = None
    if num_points is not None and num_points != points.shape[1]:
        check_point_count(num_points, points.shape[1], f"{path.parent}", asked_by)
        subset = {"num_points": num_points, "of": int(points.shape[1]), "seed": subset_seed, "rule": SUBSET_RULE}
    pts = torch.from_numpy(points)
    return PreparedSplit(points=fixed_subsets(pts, ids, num_points, subset_seed) if subset else pts, ids=ids,
                         shift=torch.from_numpy(shift), scale=torch.from_numpy(scale), manifest=manifest,
                         subset=subset, path=path)


def check_point_count(wanted: int, prepared: int, where: str, asked_by: str | None = None) -> None:
    """Raise a one-line ``ValueError`` when ``wanted`` points per cloud exceed the ``prepared`` count.

    Args:
        asked_by: who wants them, for the message (default ``--num-points <wanted>``).
    """
    if wanted > prepared:
        asked_by = asked_by or f"--num-points {wanted}"
        raise ValueError(f"{asked_by} needs {wanted} points per cloud, but the data prepared under {where} has "
                         f"{prepared}; use at most {prepared}, or prepare the data again with python -m "
                         f"shapenet_prep ... --num-points {wanted}")


def category_names(category: str | list[str] | tuple[str, ...]) -> list[str]:
    """The canonical names of a run's ``data.category``: one name, or a list of them.

    Raises:
        ValueError: an unknown name, no name, or one category named twice (``plane airplane``).
    """
    names = [dataset_category(c) for c in ([category] if isinstance(category, str) else list(category))]
    if not names:
        raise ValueError("no category given; name one or several, e.g. --category airplane bench")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"category {', '.join(twice)} is named twice in {' '.join(map(str, category))}; "
                         "name each category once")
    return names


def combined_manifest(root: str | Path, names: list[str]) -> dict:
    """One manifest for several prepared categories under ``root``: their names, the shared point count
    and normalisation, the splits' ids in category order, and every category's own manifest
    (``per_category``).

    Raises:
        MissingDataError: a category has no prepared data under ``root`` (names it and how to prepare it).
        ValueError: the categories were prepared with different point counts or normalisations.
    """
    manifests = {n: load_manifest(root, n) for n in names}
    if len(names) == 1:
        return manifests[names[0]]
    counts = {n: m["num_points"] for n, m in manifests.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"the categories under {root} were prepared with different point counts "
                         f"({', '.join(f'{n}: {c}' for n, c in counts.items())}); prepare them with the same "
                         "python -m shapenet_prep --num-points")
    norms = {n: m["normalization"] for n, m in manifests.items()}
    first = norms[names[0]]
    if any(v != first for v in norms.values()):
        shown = ", ".join(f"{n}: {v.get('method')}" for n, v in norms.items())
        own = "; each with its own global statistics" if first.get("method") == "global" else ""
        raise ValueError(f"the categories under {root} were normalised differently ({shown}{own}): one model needs "
                         "one frame. Prepare them with the same per-shape --normalization (unit_sphere, bbox) or none")
    return {"category": list(names), "num_points": counts[names[0]], "normalization": first,
            "splits": {s: [i for n in names for i in manifests[n]["splits"].get(s, [])] for s in ("train", "val", "test")},
            "split_seed": [manifests[n].get("split_seed") for n in names],
            "counts": {n: {s: len(manifests[n]["splits"].get(s, [])) for s in ("train", "val", "test")} for n in names},
            "per_category": manifests}


def load_categories(root: str | Path, category: str | list[str], split: str, num_points: int | None = None,
                    subset_seed: int = 0, asked_by: str | None = None) -> PreparedSplit:
    """One split of one or several prepared categories (``<root>/<category>/``), concatenated in the order
    given: what a multi-category run trains on. One category is exactly :func:`load_split`. Each cloud
    keeps its own normalisation (``shift``, ``scale``) and fixed subset (seeded by its id), so a
    category's clouds are the same as in a run of that category alone.

    Returns:
        A :class:`PreparedSplit` with ``labels`` (M,) and ``categories``; its ``manifest`` is
        :func:`combined_manifest`.

    Raises:
        ValueError, MissingDataError, PreparedDataError: as :func:`load_split`, for the category named,
            and :func:`category_names`' and :func:`combined_manifest`'s errors.
    """
    names = category_names(category)
    if len(names) == 1:
        return load_split(root, names[0], split, num_points, subset_seed, asked_by)
    manifest = combined_manifest(root, names)
    parts = [load_split(root, n, split, num_points, subset_seed, asked_by) for n in names]
    return PreparedSplit(points=torch.cat([p.points for p in parts]), ids=[i for p in parts for i in p.ids],
                         shift=torch.cat([p.shift for p in parts]), scale=torch.cat([p.scale for p in parts]),
                         manifest=manifest, subset=parts[0].subset, path=parts[0].path.parent.parent / split,
                         labels=torch.cat([torch.full((len(p.ids),), k, dtype=torch.long) for k, p in enumerate(parts)]),
                         categories=names)
