"""Every source format, on the real meshes/benches and on fixtures the tests write (broken ones included)."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from pointcloud_sivae.utils.ply import write_ply
from shapenet_prep import PrepareOptions, prepare_category

from .conftest import SHARED_DATA

MESHES = SHARED_DATA / "meshes"
ONET = SHARED_DATA / "onet"


def _load(out, category, split="train"):
    with np.load(out / category / f"{split}.npz") as z:
        return {k: z[k] for k in z.files}


def _opts(source, out, fmt, **kw):
    kw.setdefault("num_points", 256)
    kw.setdefault("progress", False)
    return PrepareOptions(source=source, category=kw.pop("category", "bench"), out=out, format=fmt, **kw)


@pytest.fixture
def mesh_source(tmp_path):
    """ShapeNetCore-style folder: the two real meshes in the v2 and v1 layouts, plus broken ones."""
    if not MESHES.is_dir():
        pytest.skip(f"real meshes not found at {MESHES} (../shared/data is absent)")
    root = tmp_path / "ShapeNetCore" / "02828884"
    for name, mesh in (("v2a", "a"), ("v2b", "b")):
        (root / name / "models").mkdir(parents=True)
        shutil.copy(MESHES / f"{mesh}_model_normalized.obj", root / name / "models" / "model_normalized.obj")
    (root / "v1a").mkdir()
    shutil.copy(MESHES / "a_model_normalized.obj", root / "v1a" / "model.obj")
    broken = {
        "truncated": "v 0 0 0\nv 1 0 0\nv 0 1\nf 1 2 ",
        "nan": "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
        "empty": "",
        "flat": "v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n",
    }
    for name, text in broken.items():
        (root / name / "models").mkdir(parents=True)
        (root / name / "models" / "model_normalized.obj").write_text(text)
    (root / "nomesh").mkdir()
    return tmp_path / "ShapeNetCore"


def test_meshes_v1_v2_sampled_on_the_surface_with_broken_ones_reported(mesh_source, tmp_path):
    m = prepare_category(_opts(mesh_source, tmp_path / "out", "mesh", normals=True, split_fractions=(1.0, 0.0, 0.0)))
    assert m["splits"]["train"] == ["v1a", "v2a", "v2b"] and m["split_source"] == "seeded"
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"truncated", "nan", "empty", "flat", "nomesh"}
    assert "non-finite" in reasons["nan"] and "zero surface area" in reasons["flat"]
    assert "missing" in reasons["nomesh"]
    assert "empty" in reasons["empty"] or "unreadable" in reasons["empty"]
    assert (tmp_path / "out" / "bench" / "skipped.txt").read_text().count("\n") == 5
    data = _load(tmp_path / "out", "bench")
    mesh = trimesh.load(MESHES / "a_model_normalized.obj", force="mesh", process=False, skip_materials=True)
    pts = data["points"][data["ids"].tolist().index("v2a")]
    _, dist, _ = trimesh.proximity.closest_point(mesh, pts)
    assert dist.max() < 1e-5  # every sample lies on the surface
    np.testing.assert_allclose(np.linalg.norm(data["normals"], axis=2), 1.0, atol=1e-5)


def _two_squares(path, big=3.0):
    """Two disjoint unit/big squares (area 1 and big^2... here 1 and `big`) in one OBJ."""
    s = np.sqrt(big)
    v = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (5, 0, 0), (5 + s, 0, 0), (5 + s, s, 0), (5, s, 0)]
    f = [(1, 2, 3), (1, 3, 4), (5, 6, 7), (5, 7, 8)]
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"v {a} {b} {c}\n" for a, b, c in v) + "".join(f"f {a} {b} {c}\n" for a, b, c in f))


@pytest.mark.parametrize("method", ["uniform", "poisson"])
def test_samples_are_spread_by_area(tmp_path, method):
    _two_squares(tmp_path / "src" / "02828884" / "sq" / "models" / "model_normalized.obj")
    prepare_category(_opts(tmp_path / "src", tmp_path / "out", "mesh", num_points=4000, sampling=method,
                           split_fractions=(1.0, 0.0, 0.0)))
    pts = _load(tmp_path / "out", "bench")["points"][0]
    frac_big = (pts[:, 0] > 3).mean()
    assert frac_big == pytest.approx(0.75, abs=0.03)  # area 3 of 4
    assert np.all(np.abs(pts[:, 2]) < 1e-6)
    if method == "poisson":  # blue noise: no two points closer than a fraction of the spacing
        from scipy.spatial import cKDTree

        d, _ = cKDTree(pts).query(pts, k=2)
        assert d[:, 1].min() > 0.2 * np.sqrt(4.0 / 4000)


def test_pc15k_keeps_the_official_split_and_reports_bad_arrays(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "PC15k" / "02691156"
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            np.save(root / split / f"{split}{i}.npy", rng.uniform(-0.4, 0.4, (1000, 3)).astype(np.float32))
    np.save(root / "train" / "bad.npy", np.zeros((1000, 2), np.float32))
    (root / "test" / "junk.npy").write_bytes(b"not numpy")
    m = prepare_category(_opts(tmp_path / "PC15k", tmp_path / "out", "pc15k", category="airplane"))
    assert m["split_source"].startswith("official")
    assert m["splits"]["val"] == ["val0", "val1"] and m["splits"]["test"] == ["test0", "test1"]
    assert {s["id"] for s in m["skipped"]} == {"bad", "junk"}
    src = np.load(root / "val" / "val0.npy")
    got = _load(tmp_path / "out", "airplane", "val")["points"][0]
    assert {tuple(p) for p in got} <= {tuple(p) for p in src}


def test_pc15k_ids_in_several_splits_are_prepared_once_and_the_others_reported(tmp_path):
    """Issue 43: the same 4 ids under train/, val/ and test/ left train and val empty, 8 files unreported."""
    rng = np.random.default_rng(0)
    root = tmp_path / "PC15k" / "02691156"
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
        for i in range(4):
            np.save(root / split / f"shape{i}.npy", rng.uniform(-0.4, 0.4, (1000, 3)).astype(np.float32))
    log = io.StringIO()
    m = prepare_category(_opts(tmp_path / "PC15k", tmp_path / "out", "pc15k", category="airplane", log=log))
    prepared = sorted(i for ids in m["splits"].values() for i in ids)
    assert prepared == [f"shape{i}" for i in range(4)] and m["counts"]["found"] == 12 and m["counts"]["skipped"] == 8
    assert all("duplicate model id" in s["reason"] and "train split" in s["reason"] for s in m["skipped"])
    assert {Path(s["file"]).parent.name for s in m["skipped"]} == {"val", "test"}
    assert "8 of 12 source shapes skipped" in log.getvalue()
    src = np.load(root / "train" / "shape0.npy")  # the kept file is the train one
    split = next(s for s, ids in m["splits"].items() if "shape0" in ids)
    got = _load(tmp_path / "out", "airplane", split)
    assert {tuple(p) for p in got["points"][list(got["ids"]).index("shape0")]} <= {tuple(p) for p in src}


def test_latent_3d_points_ply(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        write_ply(tmp_path / "l3dp" / "02691156" / f"s{i}.ply", rng.uniform(-0.4, 0.4, (2048, 3)).astype(np.float32))
    (tmp_path / "l3dp" / "02691156" / "broken.ply").write_text("ply\nformat ascii 1.0\nelement vertex 5\n")
    m = prepare_category(_opts(tmp_path / "l3dp", tmp_path / "out", "l3dp", category="airplane",
                               num_points=2048, split_fractions=(1.0, 0.0, 0.0)))
    assert m["counts"]["train"] == 3 and [s["id"] for s in m["skipped"]] == ["broken"]
    src = np.asarray(trimesh.load(tmp_path / "l3dp" / "02691156" / "s0.ply").vertices, np.float32)
    got = _load(tmp_path / "out", "airplane")["points"][0]
    assert sorted(map(tuple, got)) == sorted(map(tuple, src))  # all 2048 points, reordered


def test_onet_real_benches_and_list_splits(tmp_path):
    if not ONET.is_dir():
        pytest.skip(f"ONet benches not found at {ONET} (../shared/data is absent)")
    m = prepare_category(_opts(ONET, tmp_path / "out", "onet", num_points=2048, normals=True))
    assert m["counts"]["found"] == 20 and m["counts"]["skipped"] == 0 and m["split_source"] == "seeded"
    data = _load(tmp_path / "out", "bench")
    first = data["ids"][0]
    with np.load(ONET / "02828884" / first / "pointcloud.npz") as z:
        src = z["points"].astype(np.float32)
    assert {tuple(p) for p in data["points"][0]} <= {tuple(p) for p in src}
    assert data["normals"].shape == data["points"].shape
    # a copy with .lst files: the official split is honoured
    root = tmp_path / "onet" / "02828884"
    ids = sorted(p.name for p in (ONET / "02828884").iterdir())[:4]
    for i in ids:
        (root / i).mkdir(parents=True)
        shutil.copy(ONET / "02828884" / i / "pointcloud.npz", root / i / "pointcloud.npz")
    (root / "train.lst").write_text("\n".join(ids[:2]))
    (root / "val.lst").write_text(ids[2])
    (root / "test.lst").write_text(ids[3])
    m = prepare_category(_opts(tmp_path / "onet", tmp_path / "out2", "onet"))
    assert m["split_source"].startswith("official") and m["splits"]["test"] == [ids[3]]


def test_hdf5_bundles(tmp_path):
    import h5py

    rng = np.random.default_rng(2)
    for name in ("ply_data_train0", "ply_data_test0"):
        with h5py.File(tmp_path / f"{name}.h5", "w") as h:
            h["data"] = rng.uniform(-0.4, 0.4, (6, 300, 3)).astype(np.float32)
            h["label"] = np.array([0, 1, 0, 1, 0, 1])[:, None]
    with h5py.File(tmp_path / "ply_data_val0.h5", "w") as h:
        h["data"] = np.zeros((2, 300, 2), np.float32)  # wrong shape
        h["label"] = np.zeros((2, 1))
    m = prepare_category(_opts(tmp_path, tmp_path / "out", "hdf5", category="airplane", h5_label=0))
    assert m["counts"]["found"] == 8 and m["counts"]["test"] == 3  # 3 + 3 + 2 label-0
    assert m["counts"]["skipped"] == 2 and all("expected (P, 3+)" in s["reason"] for s in m["skipped"])
    # every val shape is broken: val is carved from the train file's shapes, and the manifest says so
    assert sorted(m["splits"]["train"] + m["splits"]["val"]) == [
        "ply_data_train0_00000", "ply_data_train0_00002", "ply_data_train0_00004"]
    assert len(m["splits"]["val"]) == 1 and "carved" in m["split_origin"]["val"]
    with pytest.raises(ValueError, match="--h5-label 7: no shape of .* has this label; the labels present are 0, 1"):
        prepare_category(_opts(tmp_path, tmp_path / "out7", "hdf5", category="airplane", h5_label=7))


def test_resumable_parallel_and_deterministic(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "pc" / "02691156" / "train"
    root.mkdir(parents=True)
    for i in range(12):
        np.save(root / f"s{i:02d}.npy", rng.uniform(-0.4, 0.4, (500, 3)).astype(np.float32))
    a = _opts(tmp_path / "pc", tmp_path / "a", "pc15k", category="airplane", workers=2)
    prepare_category(a)
    b = _opts(tmp_path / "pc", tmp_path / "b", "pc15k", category="airplane", workers=1)
    prepare_category(b)
    assert np.array_equal(_load(tmp_path / "a", "airplane")["points"], _load(tmp_path / "b", "airplane")["points"])
    # a "killed" run: the dataset is gone, half the cache remains; the rerun only does the rest
    cache = next((tmp_path / "a" / ".cache" / "airplane").iterdir())
    shutil.rmtree(tmp_path / "a" / "airplane")
    for f in sorted(cache.glob("*.npz"))[6:]:
        f.unlink()
    kept = {f.name: f.stat().st_mtime_ns for f in cache.glob("*.npz")}
    prepare_category(a)
    assert all(cache.joinpath(n).stat().st_mtime_ns == t for n, t in kept.items())
    assert len(list(cache.glob("*.npz"))) == 12
    assert np.array_equal(_load(tmp_path / "a", "airplane")["points"], _load(tmp_path / "b", "airplane")["points"])


def test_trainer_accepts_a_dataset_prepared_from_meshes(mesh_source, tmp_path):
    from pointcloud_sivae.training.trainer import Trainer

    from .conftest import tiny_config

    for k in range(3):  # more shapes from the same real meshes
        shutil.copytree(mesh_source / "02828884" / "v2a", mesh_source / "02828884" / f"copy{k}")
    prepare_category(_opts(mesh_source, tmp_path / "data", "mesh", num_points=128, split_fractions=(0.6, 0.4, 0.0)))
    cfg = tiny_config(tmp_path / "data", tmp_path / "runs", "mesh", epochs=1)
    cfg.data.category = "bench"
    cfg.train.val_generation_metrics = False
    history = Trainer.new_run(cfg).fit()
    assert history and all(np.isfinite(h["loss_e"]) for h in history)
