import json

import numpy as np
import pytest

from pointcloud_sivae.data.normalization import denormalize
from shapenet_prep import MalformedShapeError, PrepareOptions, prepare_category
from shapenet_prep.__main__ import main as prep_main

from .conftest import AIRPLANE_TXT, SHAPENETPART, require_shared_airplanes


def _load(root, split):
    with np.load(root / "airplane" / f"{split}.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def real_2048(tmp_path_factory):
    require_shared_airplanes()
    root = tmp_path_factory.mktemp("real2048")
    manifest = prepare_category(PrepareOptions(source=SHAPENETPART, category="airplane", out=root, progress=False))
    return root, manifest


def test_real_airplanes_manifest_and_arrays(real_2048):
    root, m = real_2048
    assert m["synset"] == "02691156" and m["format"] == "shapenetpart" and m["num_points"] == 2048
    assert m["counts"] == {"train": 85, "val": 18, "test": 18, "found": 121, "skipped": 0}
    assert m["normalization"] == {"method": "none"} and m["split_seed"] == 0
    ids = [set(m["splits"][s]) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == {p.stem for p in AIRPLANE_TXT.glob("*.txt")}
    assert json.loads((root / "airplane" / "manifest.json").read_text()) == m
    for split in ("train", "val", "test"):
        arr = _load(root, split)
        assert arr["points"].shape == (m["counts"][split], 2048, 3) and arr["points"].dtype == np.float32
        assert list(arr["ids"]) == m["splits"][split]


def test_points_are_distinct_rows_of_the_source_file(real_2048):
    root, _ = real_2048
    arr = _load(root, "val")
    src = np.loadtxt(AIRPLANE_TXT / f"{arr['ids'][0]}.txt")[:, :3].astype(np.float32)
    pts = arr["points"][0]
    rows = {tuple(r) for r in src}
    assert all(tuple(p) in rows for p in pts)
    assert len({tuple(p) for p in pts}) == 2048  # drawn without replacement


def test_split_and_points_are_deterministic(real_2048, tmp_path):
    root, m = real_2048
    m2 = prepare_category(PrepareOptions(source=SHAPENETPART, category="02691156", out=tmp_path, progress=False))
    assert m2["splits"] == m["splits"]
    assert np.array_equal(_load(root, "train")["points"], _load(tmp_path, "train")["points"])
    m3 = prepare_category(PrepareOptions(source=SHAPENETPART, category="airplane", out=tmp_path / "s1",
                                         split_seed=1, progress=False, num_points=64))
    assert m3["splits"] != m["splits"]


@pytest.mark.parametrize("method", ["unit_sphere", "bbox", "global"])
def test_normalizations_on_real_airplanes(real_2048, tmp_path, method):
    raw_root, _ = real_2048
    m = prepare_category(PrepareOptions(source=SHAPENETPART, category="airplane", out=tmp_path,
                                        normalization=method, progress=False))
    arr, raw = _load(tmp_path, "train"), _load(raw_root, "train")
    pts = arr["points"]
    if method == "unit_sphere":
        np.testing.assert_allclose(np.linalg.norm(pts, axis=2).max(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(pts.mean(1), 0.0, atol=1e-5)
    elif method == "bbox":
        np.testing.assert_allclose(np.abs(pts).max(axis=(1, 2)), 1.0, rtol=1e-5)
        np.testing.assert_allclose((pts.max(1) + pts.min(1)) / 2, 0.0, atol=1e-5)
    else:
        flat = raw["points"].reshape(-1, 3).astype(np.float64)
        np.testing.assert_allclose(m["normalization"]["global_mean"], flat.mean(0), rtol=1e-6, atol=1e-9)
        assert m["normalization"]["global_std"] == pytest.approx(flat.reshape(-1).std(), rel=1e-6)
        assert m["normalization"]["fit_on"] == "train"
        np.testing.assert_allclose(pts.reshape(-1, 3).mean(0), 0.0, atol=1e-4)  # per-axis mean removed
        # PointFlow's scalar std is over raw coordinates, so the normalised std is slightly below 1
        expected = np.sqrt(((flat - flat.mean(0)) ** 2).mean()) / flat.reshape(-1).std()
        assert pts.reshape(-1).std() == pytest.approx(expected, rel=1e-4) and expected < 1
    back = denormalize(pts, arr["shift"], arr["scale"])
    np.testing.assert_allclose(back, raw["points"], atol=1e-6)


def _write_cloud(path, n, rng):
    data = np.column_stack([rng.uniform(-0.4, 0.4, (n, 6)), rng.integers(0, 4, n)])
    np.savetxt(path, data, fmt="%.6f")


@pytest.fixture
def broken_source(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "src" / "02691156"
    folder.mkdir(parents=True)
    for i in range(6):
        _write_cloud(folder / f"good{i}.txt", 300, rng)
    (folder / "empty.txt").write_text("")
    (folder / "columns.txt").write_text("0 0 0 0 0 1 0\n" * 150 + "0 0 0 0 0 1\n" * 150)
    (folder / "text.txt").write_text("0 0 0 0 0 1 0\n" * 299 + "0 zero 0 0 0 1 0\n")
    (folder / "nan.txt").write_text("0.1 0.2 0.3 0 0 1 0\n" * 299 + "nan 0 0 0 0 1 0\n")
    _write_cloud(folder / "small.txt", 100, rng)
    return tmp_path / "src"


def test_malformed_files_are_reported_and_skipped(broken_source, tmp_path, capsys):
    m = prepare_category(PrepareOptions(source=broken_source, category="airplane", out=tmp_path / "out",
                                        num_points=256, progress=False))
    reasons = {s["file"].rsplit("/", 1)[1]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"empty.txt", "columns.txt", "text.txt", "nan.txt", "small.txt"}
    assert "empty" in reasons["empty.txt"]
    assert "7-column" in reasons["columns.txt"] and "7-column" in reasons["text.txt"]
    assert "NaN" in reasons["nan.txt"]
    assert "only 100 points" in reasons["small.txt"]
    assert m["counts"]["found"] == 11 and m["counts"]["skipped"] == 5
    assert sum(m["counts"][s] for s in ("train", "val", "test")) == 6
    err = capsys.readouterr().err
    assert "skipped" in err and "small.txt" in err


def test_fail_mode_refuses_and_writes_nothing(broken_source, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(MalformedShapeError, match=r"\.txt: .*--on-error skip"):
        prepare_category(PrepareOptions(source=broken_source, category="airplane", out=out,
                                        num_points=256, on_error="fail", progress=False))
    assert not (out / "airplane").exists()  # no dataset, not even a partial one
    assert not [p for p in out.iterdir() if p.name != ".cache"]  # only the per-shape cache


def test_rerun_is_a_no_op_and_other_options_need_overwrite(broken_source, tmp_path, capsys):
    opts = PrepareOptions(source=broken_source, category="airplane", out=tmp_path / "o", num_points=64, progress=False)
    first = prepare_category(opts)
    stamp = (tmp_path / "o" / "airplane" / "train.npz").stat().st_mtime_ns
    assert prepare_category(opts) == first
    assert "nothing to do" in capsys.readouterr().err
    assert (tmp_path / "o" / "airplane" / "train.npz").stat().st_mtime_ns == stamp
    opts.num_points = 32
    with pytest.raises(FileExistsError, match="other options; pass --overwrite"):
        prepare_category(opts)
    opts.overwrite = True
    assert prepare_category(opts)["num_points"] == 32
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [".cache", "airplane"]  # no temp or backup left
    report = (tmp_path / "o" / "airplane" / "skipped.txt").read_text()
    assert "empty.txt" in report and "NaN" in report


def test_cli_reports_errors_clearly(tmp_path, capsys):
    assert prep_main(["--source", str(tmp_path), "--category", "airplan", "--out", str(tmp_path / "o")]) == 2
    assert "valid categories are" in capsys.readouterr().err
    assert prep_main(["--source", str(tmp_path), "--category", "bench", "--out", str(tmp_path / "o")]) == 2
    assert "02828884" in capsys.readouterr().err
