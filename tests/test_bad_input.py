"""Bad input files: each is skipped with its reason, in our words, and the good shapes beside it are kept."""

import json
import shutil

import numpy as np
import pytest

from shapenet_prep import PrepareOptions, prepare_category

from .conftest import SHARED_DATA

ONET = SHARED_DATA / "onet" / "02828884"


def _prepare(source, out, fmt, category, **kw):
    return prepare_category(PrepareOptions(source=source, category=category, out=out, format=fmt, num_points=64,
                                           progress=False, split_fractions=(1.0, 0.0, 0.0), **kw))


def _reasons(manifest):
    return {s["id"]: s["reason"] for s in manifest["skipped"]}


def _no_unsafe_advice(reasons):
    assert not any("allow_pickle" in r for r in reasons.values()), reasons


def test_onet_folder_with_broken_archives(tmp_path):
    if not ONET.is_dir():
        pytest.skip(f"ONet benches not found at {ONET} (../shared/data is absent)")
    root = tmp_path / "onet" / "02828884"
    good = sorted(p.name for p in ONET.iterdir())[:3]
    for name in good:
        (root / name).mkdir(parents=True)
        shutil.copy(ONET / name / "pointcloud.npz", root / name / "pointcloud.npz")
    real = (ONET / good[0] / "pointcloud.npz").read_bytes()
    bad = {
        "empty": b"",
        "truncated": real[: len(real) // 2],
        "garbage": b"this is not a zip archive" * 10,
    }
    for name, data in bad.items():
        (root / name).mkdir()
        (root / name / "pointcloud.npz").write_bytes(data)
    arrays = {
        "nopoints": {"normals": np.zeros((100, 3))},
        "complex": {"points": np.zeros((100, 3), np.complex64)},
        "text": {"points": np.full((100, 3), "x")},
        "objects": {"points": np.array([None] * 300, dtype=object).reshape(100, 3)},
    }
    for name, arrs in arrays.items():
        (root / name).mkdir()
        np.savez(root / name / "pointcloud.npz", **arrs)
    m = _prepare(tmp_path / "onet", tmp_path / "out", "onet", "bench")
    assert m["splits"]["train"] == good
    r = _reasons(m)
    assert set(r) == set(bad) | set(arrays)
    assert "empty file (0 bytes)" in r["empty"]
    assert "truncated" in r["truncated"] or "unreadable" in r["truncated"]
    assert "no 'points' array" in r["nopoints"]
    assert "complex numbers" in r["complex"] and "text" in r["text"]
    assert "never unpickled" in r["objects"] and "not a NumPy pointcloud.npz" in r["garbage"]
    _no_unsafe_advice(r)
    again = _prepare(tmp_path / "onet", tmp_path / "out2", "onet", "bench")  # a rerun does not crash either
    assert again["splits"]["train"] == good


def test_pc15k_folder_with_broken_arrays(tmp_path):
    root = tmp_path / "pc" / "02691156" / "train"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(root / f"good{i}.npy", rng.uniform(-0.5, 0.5, (200, 3)).astype(np.float32))
    (root / "empty.npy").write_bytes(b"")
    (root / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(root / "text.npy", np.full((200, 3), "a"))
    np.save(root / "complex.npy", np.ones((200, 3), np.complex128))
    np.save(root / "objects.npy", np.array([None] * 600, dtype=object).reshape(200, 3), allow_pickle=True)
    m = _prepare(tmp_path / "pc", tmp_path / "out", "pc15k", "airplane", split_seed=0)
    assert sorted(sum(m["splits"].values(), [])) == ["good0", "good1", "good2"]
    r = _reasons(m)
    assert set(r) == {"empty", "garbage", "text", "complex", "objects"}
    assert "empty file (0 bytes)" in r["empty"] and "text" in r["text"] and "complex numbers" in r["complex"]
    assert "never unpickled" in r["objects"] and "not a valid .npy" in r["garbage"]
    _no_unsafe_advice(r)


def test_hdf5_folder_with_broken_files_keeps_the_good_file(tmp_path):
    import h5py

    src = tmp_path / "h5"
    src.mkdir()
    rng = np.random.default_rng(1)
    with h5py.File(src / "good_train0.h5", "w") as h:
        h["data"] = rng.uniform(-0.5, 0.5, (4, 128, 3)).astype(np.float32)
        h["label"] = np.zeros((4, 1))
    with h5py.File(src / "group.h5", "w") as h:
        h.create_group("data")
    with h5py.File(src / "scalar.h5", "w") as h:
        h["data"] = 3.0
    with h5py.File(src / "nodata.h5", "w") as h:
        h["points"] = np.zeros((2, 128, 3))
    (src / "garbage.h5").write_bytes(b"not hdf5 at all" * 20)
    (src / "empty.h5").write_bytes(b"")
    m = _prepare(src, tmp_path / "out", "hdf5", "airplane")
    assert sorted(sum(m["splits"].values(), [])) == [f"good_train0_{i:05d}" for i in range(4)]
    r = _reasons(m)
    assert set(r) == {"group", "scalar", "nodata", "garbage", "empty"}
    assert "'data' is a group" in r["group"] and "'data' is a scalar" in r["scalar"]
    assert "no 'data' array" in r["nodata"] and "not a readable HDF5" in r["garbage"]
    assert "empty file (0 bytes)" in r["empty"]


def test_obj_face_index_zero_and_a_file_cut_mid_line(tmp_path):
    root = tmp_path / "mesh" / "02828884"
    good = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n"
    cases = {"good": good, "zero": good.replace("f 1 2 3", "f 0 1 2"), "cut": good + "f 1 2",
             "beyond": good + "f 1 2 9\n"}
    for name, text in cases.items():
        (root / name / "models").mkdir(parents=True)
        (root / name / "models" / "model_normalized.obj").write_text(text)
    m = _prepare(tmp_path / "mesh", tmp_path / "out", "mesh", "bench")
    assert m["splits"]["train"] == ["good"]
    r = _reasons(m)
    assert "face index 0 (OBJ vertex indices start at 1)" in r["zero"]
    assert "truncated file" in r["cut"] and "cut mid-record" in r["cut"]
    assert "face index 9 but only 4 vertices" in r["beyond"]


# ----- commands and run folders ------------------------------------------------------------

def test_eval_sets_refuses_mixed_point_counts(tmp_path, capsys):
    from eval.__main__ import main as eval_main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.uniform(-0.4, 0.4, (4, 512, 3)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.uniform(-0.4, 0.4, (4, 256, 3)).astype(np.float32))
    assert eval_main(["sets", "--sample", str(tmp_path / "a.npy"), "--reference", str(tmp_path / "b.npy"),
                      "--emd", "none", "--out", str(tmp_path / "o.json")]) == 2
    assert "mismatched point counts" in capsys.readouterr().err and not (tmp_path / "o.json").exists()


def test_checkpoint_errors_are_one_line_of_ours(tmp_path):
    import torch

    from pointcloud_sivae.runs.checkpoint import CheckpointError, load_checkpoint

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt: the file is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"thing": _Foreign()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "foreign.pt")
    msg = str(info.value)
    assert "is not loaded" in msg and "weights_only" not in msg and "\n" not in msg
    (tmp_path / "junk.pt").write_bytes(b"junk" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*junk.pt: "):
        load_checkpoint(tmp_path / "junk.pt")


class _Foreign:  # a pickled object of a class: the kind of file weights_only refuses
    pass


def test_run_folder_under_a_file_is_refused_before_training(airplanes_256, tmp_path, capsys):
    from pointcloud_sivae.train import main

    (tmp_path / "afile").write_text("x")
    assert main(["--data-root", str(airplanes_256), "--out-dir", str(tmp_path / "afile"), "--device", "cpu",
                 "--epochs", "1", "--z-dim", "8", "--progress", "false"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the run folder" in err and "Traceback" not in err


def test_full_disk_is_refused_before_training_and_mid_run_keeps_the_last_checkpoint(airplanes_256, tmp_path,
                                                                                  monkeypatch):
    import shutil as _shutil
    from collections import namedtuple

    import pointcloud_sivae.training.run_folder as folder_mod
    from pointcloud_sivae.runs.checkpoint import load_checkpoint
    from pointcloud_sivae.training.trainer import Trainer

    from .conftest import tiny_config

    usage = namedtuple("usage", "total used free")
    real_usage = _shutil.disk_usage
    monkeypatch.setattr(folder_mod.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(folder_mod.RunFolderError, match="not enough free space for checkpoints"):
        Trainer.new_run(tiny_config(airplanes_256, tmp_path, "full", epochs=1))
    assert not (tmp_path / "full" / "metrics.jsonl").exists()
    monkeypatch.setattr(folder_mod.shutil, "disk_usage", real_usage)
    trainer = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "mid", epochs=3))
    calls = {"n": 0}
    real_save = folder_mod.save_checkpoint

    def save(state, path):
        calls["n"] += 1
        if state["epoch"] == 2:
            raise OSError(28, "No space left on device")
        real_save(state, path)

    monkeypatch.setattr(folder_mod, "save_checkpoint", save)
    with pytest.raises(folder_mod.RunFolderError, match="No space left on device; the last good checkpoint .* intact"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "mid")["epoch"] == 1


def test_stale_checkpoint_temporaries_are_removed_on_resume(airplanes_256, tmp_path, capsys):
    from pointcloud_sivae.training.trainer import Trainer

    from .conftest import tiny_config

    Trainer.new_run(tiny_config(airplanes_256, tmp_path, "r", epochs=1)).fit()
    stale = tmp_path / "r" / "checkpoints" / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    Trainer.resume(tmp_path / "r", {"epochs": 2})
    assert not stale.exists() and "removed 1 temporary file" in capsys.readouterr().err


def test_prepared_data_with_nan_is_refused_when_loaded(airplanes_256, tmp_path):
    from pointcloud_sivae.data.prepared import load_split

    root = tmp_path / "copy"
    shutil.copytree(airplanes_256, root)
    path = root / "airplane" / "val.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["points"][2, 5, 1] = np.nan
    np.savez(path, **arrays)
    manifest = json.loads((root / "airplane" / "manifest.json").read_text())
    manifest.pop("files")  # a manifest from before the files were recorded: the coordinates are still checked
    (root / "airplane" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"val.npz holds 1 cloud\(s\) with NaN or infinite coordinates"):
        load_split(root, "airplane", "val")


def test_resume_after_a_milestone_and_a_validation_epoch_is_bit_exact(airplanes_256, tmp_path):
    import torch

    from pointcloud_sivae.training.trainer import Trainer

    from .conftest import tiny_config

    def cfg(name, epochs):
        c = tiny_config(airplanes_256, tmp_path, name, epochs=epochs)
        c.optim.milestones, c.train.val_every, c.train.vis_every = (2,), 2, 10
        return c

    full = Trainer.new_run(cfg("full", 4))
    full.fit()
    Trainer.new_run(cfg("cut", 3)).fit()  # stops after the milestone (epoch 2) and the validation of epoch 2
    resumed = Trainer.resume(tmp_path / "cut", {"epochs": 4})
    assert resumed.opt_e.param_groups[0]["lr"] == pytest.approx(2.5e-4)  # the milestone survived the resume
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_prepare_and_eval_outputs_under_a_file_are_one_line(airplanes_256, tmp_path, capsys):
    from eval.__main__ import main as eval_main
    from shapenet_prep.__main__ import main as prep_main

    from .conftest import SHAPENETPART

    (tmp_path / "afile").write_text("x")
    if SHAPENETPART.is_dir():
        assert prep_main(["--source", str(SHAPENETPART), "--category", "airplane", "--num-points", "64",
                          "--out", str(tmp_path / "afile" / "out"), "--progress", "false"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.uniform(-0.28, 0.28, (3, 64, 3)).astype(np.float32))  # inside the JSD ball
    assert eval_main(["sets", "--sample", str(tmp_path / "a.npy"), "--reference", str(tmp_path / "a.npy"),
                      "--emd", "none", "--out", str(tmp_path / "afile" / "o.json"), "--progress", "false"]) == 2
    err = capsys.readouterr().err
    assert "error: cannot write" in err and "afile" in err and "Traceback" not in err


def test_a_foreign_checkpoint_is_one_line_and_verbose_adds_details(tmp_path, capsys):
    import torch

    from pointcloud_sivae.sample import main as sample_main

    torch.save({"thing": _Foreign()}, tmp_path / "foreign.pt")
    assert sample_main(["--checkpoint", str(tmp_path / "foreign.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not loaded" in err and "weights_only" not in err
    assert sample_main(["--checkpoint", str(tmp_path / "foreign.pt"), "--out", str(tmp_path / "o"),
                        "--verbose"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") > 1 and "weights_only=False" not in err
