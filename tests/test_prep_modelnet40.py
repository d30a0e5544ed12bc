"""ModelNet40: the PointNet++ text release (real airplanes and fixtures) and the HDF5 release."""

import numpy as np
import pytest

from pointcloud_sivae.data.categories import MODELNET40_CLASSES
from pointcloud_sivae.data.prepared import load_split
from shapenet_prep import PrepareOptions, prepare_category
from shapenet_prep.__main__ import main as prep_main

from .conftest import SHARED_DATA

MN40 = SHARED_DATA / "modelnet40" / "modelnet40_normal_resampled"


def _opts(source, out, **kw):
    kw.setdefault("num_points", 64)
    kw.setdefault("progress", False)
    kw.setdefault("format", "modelnet40")
    return PrepareOptions(source=source, category=kw.pop("category", "airplane"), out=out, **kw)


def _load(out, category, split):
    with np.load(out / category / f"{split}.npz") as z:
        return {k: z[k] for k in z.files}


def _table(rng, n=100):
    xyz = rng.uniform(-1, 1, (n, 3))
    nrm = rng.normal(size=(n, 3))
    return np.hstack([xyz, nrm / np.linalg.norm(nrm, axis=1, keepdims=True)])


def _write(path, rows):
    path.write_text("".join(",".join(f"{v:.6f}" for v in r) + "\n" for r in rows))


@pytest.fixture
def release(tmp_path):
    """A small release: 10 good airplanes (1-6 train-listed, 7-10 test-listed), 5 broken ones, 2 chairs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "modelnet40_normal_resampled"
    (root / "airplane").mkdir(parents=True)
    (root / "chair").mkdir()
    for i in range(1, 11):
        _write(root / "airplane" / f"airplane_{i:04d}.txt", _table(rng))
    for i in range(1, 3):
        _write(root / "chair" / f"chair_{i:04d}.txt", _table(rng))
    bad = root / "airplane"
    (bad / "airplane_0011.txt").write_text("".join("0.1,0.2,0.3,0,0\n" for _ in range(100)))  # 5 columns
    (bad / "airplane_0012.txt").write_text("x,y,z,nx,ny,nz\n" + "0.1,0.2,0.3,0,0,1\n" * 99)  # a text header
    rows = _table(rng)
    rows[5, 1] = np.nan
    _write(bad / "airplane_0013.txt", rows)  # NaN
    _write(bad / "airplane_0014.txt", _table(rng, 10))  # too few points
    (bad / "airplane_0015.txt").write_text("")  # empty
    (root / "modelnet40_shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    (root / "modelnet40_train.txt").write_text(
        "\n".join([f"airplane_{i:04d}" for i in (1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15)] + ["chair_0001"]) + "\n")
    (root / "modelnet40_test.txt").write_text("\n".join(f"airplane_{i:04d}" for i in range(7, 11)) + "\nchair_0002\n")
    return root


def test_bad_files_are_skipped_with_their_reason(release, tmp_path):
    m = prepare_category(_opts(release, tmp_path / "out"))
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {f"airplane_{i:04d}" for i in range(11, 16)}
    assert "comma-separated" in reasons["airplane_0011"] or "columns" in reasons["airplane_0011"]
    assert "comma-separated" in reasons["airplane_0012"]
    assert "NaN" in reasons["airplane_0013"]
    assert "only 10 points" in reasons["airplane_0014"]
    assert "empty" in reasons["airplane_0015"]
    assert (tmp_path / "out" / "airplane" / "skipped.txt").read_text().count("\n") == 5
    # official train and test kept, val carved from the train-listed shapes
    assert m["splits"]["test"] == [f"airplane_{i:04d}" for i in range(7, 11)]
    assert set(m["splits"]["train"]) | set(m["splits"]["val"]) == {f"airplane_{i:04d}" for i in range(1, 7)}
    assert len(m["splits"]["val"]) == 1  # round(0.15 / 0.85 * 6)
    assert m["split_origin"]["test"].startswith("official")
    assert "carved from the official train split" in m["split_origin"]["val"]
    assert m["collection"] == "ModelNet40" and m["synset"] is None
    assert m["split_lists"]["train"].endswith("modelnet40_train.txt")


def test_points_and_normals_are_rows_of_the_source(release, tmp_path):
    prepare_category(_opts(release, tmp_path / "out", normals=True))
    data = _load(tmp_path / "out", "airplane", "test")
    src = np.loadtxt(release / "airplane" / f"{data['ids'][0]}.txt", delimiter=",").astype(np.float32)
    rows = {tuple(r) for r in src}
    got = np.concatenate([data["points"][0], data["normals"][0]], axis=1)
    assert len(got) == 64 and all(tuple(r) in rows for r in got)
    assert len({tuple(r) for r in got}) == 64  # without replacement


def test_a_missing_test_list_is_carved_and_recorded(release, tmp_path):
    (release / "modelnet40_test.txt").unlink()
    m = prepare_category(_opts(release, tmp_path / "out"))
    assert m["split_lists"]["test"] is None
    good = {f"airplane_{i:04d}" for i in range(1, 11)}
    assert set(sum(m["splits"].values(), [])) == good
    assert {s: len(v) for s, v in m["splits"].items()} == {"train": 6, "val": 2, "test": 2}  # 7-10 unlisted
    assert "the release has no test list" in m["split_origin"]["test"]
    assert "4 unlisted shape(s)" in m["split_origin"]["test"]
    assert "less the shapes carved out for val and test" in m["split_origin"]["train"]


def test_no_lists_and_no_class_file(release, tmp_path):
    for f in ("modelnet40_train.txt", "modelnet40_test.txt", "modelnet40_shape_names.txt"):
        (release / f).unlink()
    m = prepare_category(_opts(release, tmp_path / "out"))
    assert m["split_source"] == "seeded" and m["split_lists"] == {"train": None, "test": None}
    assert "built-in list" in m["class_names_from"]
    assert sum(m["counts"][s] for s in ("train", "val", "test")) == 10


def test_unknown_class_lists_the_forty(release, tmp_path, capsys):
    assert prep_main(["--format", "modelnet40", "--source", str(release), "--category", "aeroplane",
                      "--out", str(tmp_path / "o"), "--progress", "false"]) == 2
    err = capsys.readouterr().err
    assert "unknown ModelNet40 class 'aeroplane'" in err and "night_stand" in err and "xbox" in err


def test_workers_rerun_and_a_modelnet_only_class(release, tmp_path):
    a = prepare_category(_opts(release, tmp_path / "a", workers=2))
    b = prepare_category(_opts(release, tmp_path / "b", workers=1))
    assert a["splits"] == b["splits"]
    assert np.array_equal(_load(tmp_path / "a", "airplane", "train")["points"],
                          _load(tmp_path / "b", "airplane", "train")["points"])
    log = []
    prepare_category(_opts(release, tmp_path / "a", workers=2, log=type("L", (), {"write": log.append})()))
    assert "nothing to do" in "".join(log)
    # a class ModelNet40 has and ShapeNet has not: prepared and read back by the trainer's loader
    (release / "night_stand").mkdir()
    rng = np.random.default_rng(5)
    for i in range(1, 5):
        _write(release / "night_stand" / f"night_stand_{i:04d}.txt", _table(rng))
    prepare_category(_opts(release, tmp_path / "a", category="night_stand", split_fractions=(0.5, 0.25, 0.25)))
    assert load_split(tmp_path / "a", "night_stand", "train").points.shape == (2, 64, 3)


def test_hdf5_release_picks_the_label_by_class_name(tmp_path):
    import h5py

    rng = np.random.default_rng(1)
    src = tmp_path / "modelnet40_ply_hdf5_2048"
    src.mkdir()
    labels = np.array([0, 8, 0, 8, 0, 0, 8, 0])  # airplane = 0, chair = 8
    for name in ("ply_data_train0", "ply_data_test0"):
        with h5py.File(src / f"{name}.h5", "w") as h:
            h["data"] = rng.uniform(-1, 1, (8, 128, 3)).astype(np.float32)
            h["label"] = labels[:, None].astype(np.uint8)
    (src / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    m = prepare_category(_opts(src, tmp_path / "out", format="hdf5", category="chair"))
    assert m["h5_label_used"] == 8 and m["collection"] == "ModelNet40" and m["category"] == "chair"
    assert m["counts"]["found"] == 6 and m["splits"]["test"] == [f"ply_data_test0_{i:05d}" for i in (1, 3, 6)]
    assert len(m["splits"]["val"]) == 1 and "carved" in m["split_origin"]["val"]
    with pytest.raises(ValueError, match="unknown class 'chiar'.*night_stand"):
        prepare_category(_opts(src, tmp_path / "out2", format="hdf5", category="chiar"))


def test_real_modelnet40_airplanes(tmp_path):
    if not (MN40 / "airplane").is_dir():
        pytest.skip(f"real ModelNet40 airplanes not found at {MN40} (../shared/data is absent)")
    m = prepare_category(_opts(MN40, tmp_path / "out", num_points=2048, workers=2, normals=True))
    assert m["counts"] == {"train": 438, "val": 94, "test": 94, "found": 626, "skipped": 0}
    assert m["split_lists"]["test"] is None and "no test list" in m["split_origin"]["test"]
    test = _load(tmp_path / "out", "airplane", "test")
    src = np.loadtxt(MN40 / "airplane" / f"{test['ids'][0]}.txt", delimiter=",").astype(np.float32)
    rows = {tuple(r) for r in src}
    assert all(tuple(r) in rows for r in np.concatenate([test["points"][0], test["normals"][0]], axis=1))
    radius = np.linalg.norm(test["points"], axis=2).max(axis=1)
    assert radius.max() < 1.01 and radius.min() > 0.9  # the release's unit sphere (6-digit text)
