"""A corpus of bad inputs and faults, one table: every case ends in a clear one-line error (exit 2) or a
reported skip; none prints a traceback, none exits 0 having done nothing.

Each case builds what it needs in a temporary folder (damaged prepared data, bad files, a trained run)
and runs a command in-process through its ``main``; the table says what the user must read. Cases
marked ``issue`` are the ones issue 25 listed; the others are more of the same kinds.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from eval.__main__ import main as eval_main
from pointcloud_sivae import compare, interpolate, reconstruct, sample, sweep, train, view
from shapenet_prep.__main__ import main as prep_main

from .conftest import REPO, SHAPENETPART, tiny_config

COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": train.main, "eval": eval_main, "reconstruct": reconstruct.main, "interpolate": interpolate.main,
    "sample": sample.main, "view": view.main, "prep": prep_main, "compare": compare.main, "sweep": sweep.main}


@dataclass
class World:
    """What a case may use: a copy of the prepared airplanes, a trained run on them, a scratch folder."""

    tmp: Path
    data: Path  # prepared root (category airplane, 256 points), a copy the case may damage
    run: Path  # a run trained one epoch on ``data``, a copy the case may damage

    @property
    def category(self) -> Path:
        return self.data / "airplane"

    def cloud(self, name: str, points: np.ndarray) -> str:
        np.save(self.tmp / name, points)
        return str(self.tmp / name)

    def good_cloud(self) -> np.ndarray:
        with np.load(self.category / "test.npz") as z:
            return z["points"][0]


@dataclass
class Case:
    id: str
    command: str
    argv: Callable[[World], list[str]]  # builds what it needs, returns the command's arguments
    says: str  # what the one-line error (or the report) must contain
    outcome: str = "error"  # error: exit 2 with one line; skip: exit 0 and the skip reported
    issue: bool = False


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _empty_file(w: World, name: str) -> str:
    (w.tmp / name).write_bytes(b"")
    return str(w.tmp / name)


def _rewrite_npz(path: Path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        arrays.pop(k)
    np.savez(path, **arrays)


def _manifest(w: World, edit: Callable[[dict], object]) -> None:
    path = w.category / "manifest.json"
    m = json.loads(path.read_text())
    out = edit(m)
    path.write_text(json.dumps(m if out is None else out))


def _train(w: World, *extra: str) -> list[str]:
    return ["--data-root", str(w.data), "--out-dir", str(w.tmp / "runs"), "--run-name", "r", "--epochs", "1",
            "--z-dim", "8", "--batch-size", "16", "--device", "cpu", "--chamfer-backend", "torch",
            "--progress", "false", *extra]


def _empty_split(w: World, split: str) -> None:
    _rewrite_npz(w.category / f"{split}.npz", points=np.zeros((0, 256, 3), np.float32), ids=np.array([], dtype=str),
                 shift=np.zeros((0, 3), np.float32), scale=np.zeros(0, np.float32))
    _manifest(w, lambda m: m["splits"].__setitem__(split, []))
    _manifest(w, lambda m: m.pop("files", None) and None)


def _damaged_checkpoint(w: World, data: bytes | None = None) -> list[str]:
    last = w.run / "checkpoints" / "last.pt"
    if data is None:
        _truncate(last)
    else:
        last.write_bytes(data)
    return ["--checkpoint", str(w.run), "--out", str(w.tmp / "o"), "--device", "cpu"]


CASES = [
    # ----- damaged prepared data (issue 25: tracebacks and silent cases) -----
    Case("train-on-truncated-train-npz", "train", lambda w: (_truncate(w.category / "train.npz"), _train(w))[-1],
         "train.npz", issue=True),
    Case("eval-reconstruction-on-truncated-train-npz", "eval",
         lambda w: (_truncate(w.category / "train.npz"),
                    ["reconstruction", "--checkpoint", str(w.run), "--split", "train", "--device", "cpu",
                     "--emd", "none", "--out", str(w.tmp / "r.json")])[1], "train.npz", issue=True),
    Case("prep-rerun-over-truncated-train-npz", "prep",
         lambda w: (_truncate(w.category / "train.npz"),
                    ["--source", str(SHAPENETPART), "--category", "airplane", "--out", str(w.data), "--num-points",
                     "256", "--progress", "false", "--workers", "1"])[1],
         "train.npz is damaged", outcome="skip", issue=True),
    Case("manifest-ids-disagree-with-arrays", "train",
         lambda w: (_manifest(w, lambda m: m["splits"].__setitem__("train", m["splits"]["train"][:40])), _train(w))[-1],
         "train.npz holds 85 clouds but manifest.json lists 40", issue=True),
    Case("corrupted-manifest-json", "train",
         lambda w: ((w.category / "manifest.json").write_text('{"category": "air\x01plane"'), _train(w))[-1],
         "manifest.json", issue=True),
    Case("garbage-val-npz", "train", lambda w: ((w.category / "val.npz").write_bytes(b"not an archive" * 50),
                                               _train(w))[-1], "val.npz"),
    Case("val-npz-without-points", "train", lambda w: (_rewrite_npz(w.category / "val.npz", points=None),
                                                       _manifest(w, lambda m: m.pop("files", None) and None),
                                                       _train(w))[-1], "no 'points' array"),
    Case("train-points-of-two-coordinates", "train",
         lambda w: (_rewrite_npz(w.category / "train.npz", points=np.zeros((85, 256, 2), np.float32)),
                    _manifest(w, lambda m: m.pop("files", None) and None), _train(w))[-1], "(M, N, 3)"),
    Case("train-ids-fewer-than-clouds", "train",
         lambda w: (_rewrite_npz(w.category / "train.npz", ids=np.array(["a"] * 10)),
                    _manifest(w, lambda m: m.pop("files", None) and None), _train(w))[-1],
         "train.npz holds 85 clouds but 10 ids"),
    Case("manifest-json-is-a-list", "train",
         lambda w: ((w.category / "manifest.json").write_text("[1, 2]"), _train(w))[-1], "manifest.json"),
    Case("manifest-without-num-points", "train",
         lambda w: (_manifest(w, lambda m: m.pop("num_points") and None), _train(w))[-1], "manifest.json"),
    Case("damaged-array-same-size", "train",
         lambda w: (w.category.joinpath("val.npz").write_bytes(
             bytearray(b ^ 0xFF if i == 2000 else b for i, b in enumerate(w.category.joinpath("val.npz").read_bytes()))),
             _train(w))[-1], "val.npz"),
    # ----- empty splits -----
    Case("reconstruct-empty-val-split", "reconstruct",
         lambda w: (_empty_split(w, "val"), ["--checkpoint", str(w.run), "--split", "val", "--out", str(w.tmp / "o"),
                                             "--device", "cpu", "--no-render"])[1], "the val split", issue=True),
    Case("eval-reconstruction-empty-test-split", "eval",
         lambda w: (_empty_split(w, "test"), ["reconstruction", "--checkpoint", str(w.run), "--split", "test",
                                              "--device", "cpu", "--emd", "none"])[1], "the test split", issue=True),
    Case("eval-generation-empty-test-split", "eval",
         lambda w: (_empty_split(w, "test"), ["generation", "--checkpoint", str(w.run), "--split", "test",
                                              "--device", "cpu", "--emd", "none"])[1], "the test split"),
    Case("train-without-val-says-so", "train", lambda w: (_empty_split(w, "val"), _train(w))[-1],
         "the val split of", outcome="skip", issue=True),
    # ----- user clouds -----
    Case("reconstruct-empty-npy", "reconstruct",
         lambda w: ["--checkpoint", str(w.run), "--files", _empty_file(w, "empty.npy"), "--out", str(w.tmp / "o"),
                    "--device", "cpu", "--no-render"], "empty.npy", issue=True),
    Case("reconstruct-good-and-empty-npy", "reconstruct",
         lambda w: ["--checkpoint", str(w.run), "--files", w.cloud("ok256.npy", w.good_cloud()),
                    _empty_file(w, "empty.npy"),
                    "--out", str(w.tmp / "o"), "--device", "cpu", "--no-render"], "empty.npy", issue=True),
    Case("eval-sets-zero-byte-sample", "eval",
         lambda w: ["sets", "--sample", _empty_file(w, "zero.npy"),
                    "--reference", str(w.category / "val.npz"), "--emd", "none"], "zero.npy", issue=True),
    Case("interpolate-from-nan-cloud", "interpolate",
         lambda w: ["--checkpoint", str(w.run), "--from", w.cloud("nan256.npy", np.where(
             np.arange(256)[:, None] == 7, np.nan, w.good_cloud())), "--to", "prior:1", "--out", str(w.tmp / "o"),
             "--device", "cpu", "--no-render"], "nan256.npy: point 7 has a NaN or infinite coordinate", issue=True),
    Case("reconstruct-inf-cloud", "reconstruct",
         lambda w: ["--checkpoint", str(w.run), "--files", w.cloud("inf.npy", np.where(
             np.arange(256)[:, None] == 3, np.inf, w.good_cloud())), "--out", str(w.tmp / "o"), "--device", "cpu",
             "--no-render"], "inf.npy: point 3 has a NaN or infinite coordinate"),
    Case("eval-sets-nan-in-reference", "eval",
         lambda w: ["sets", "--sample", str(w.category / "val.npz"), "--reference",
                    w.cloud("ref.npy", np.where(np.arange(256)[None, :, None] == 5, np.nan,
                                                np.stack([w.good_cloud()] * 4))), "--emd", "none"],
         "ref.npy: cloud 0, point 5 has a NaN or infinite coordinate", issue=True),
    Case("eval-sets-two-coordinates", "eval",
         lambda w: ["sets", "--sample", w.cloud("flat.npy", np.zeros((4, 256, 2), np.float32)), "--reference",
                    str(w.category / "val.npz"), "--emd", "none"], "flat.npy: expected clouds of shape (M, N, 3)",
         issue=True),
    Case("eval-sets-one-cloud-not-a-set", "eval",
         lambda w: ["sets", "--sample", w.cloud("one.npy", w.good_cloud()), "--reference",
                    str(w.category / "val.npz"), "--emd", "none"], "one.npy: holds one cloud (256, 3), not a set",
         issue=True),
    Case("interpolate-two-column-xyz", "interpolate",
         lambda w: ["--checkpoint", str(w.run), "--from",
                    (np.savetxt(w.tmp / "two.xyz", np.zeros((256, 2))) or str(w.tmp / "two.xyz")), "--to", "prior:1",
                    "--out", str(w.tmp / "o"), "--device", "cpu", "--no-render"], "two.xyz"),
    Case("interpolate-garbage-ply", "interpolate",
         lambda w: ["--checkpoint", str(w.run), "--from",
                    ((w.tmp / "junk.ply").write_bytes(b"ply\nformat nonsense\n") and str(w.tmp / "junk.ply")),
                    "--to", "prior:1", "--out", str(w.tmp / "o"), "--device", "cpu", "--no-render"], "junk.ply"),
    Case("reconstruct-unsupported-extension", "reconstruct",
         lambda w: ["--checkpoint", str(w.run), "--files", ((w.tmp / "a.obj").write_text("v 0 0 0\n") and
                                                            str(w.tmp / "a.obj")),
                    "--out", str(w.tmp / "o"), "--device", "cpu", "--no-render"], "a.obj"),
    Case("reconstruct-missing-file", "reconstruct",
         lambda w: ["--checkpoint", str(w.run), "--files", str(w.tmp / "nothing.npy"), "--out", str(w.tmp / "o"),
                    "--device", "cpu", "--no-render"], "nothing.npy"),
    Case("eval-sets-npz-without-points", "eval",
         lambda w: ["sets", "--sample", str(_npz(w.tmp / "x.npz", clouds=np.zeros((2, 4, 3)))), "--reference",
                    str(w.category / "val.npz"), "--emd", "none"], "no 'points' array"),
    Case("eval-sets-pickled-objects", "eval",
         lambda w: ["sets", "--sample", (np.save(w.tmp / "obj.npy", np.array([None, 1], dtype=object),
                                                 allow_pickle=True) or str(w.tmp / "obj.npy")),
                    "--reference", str(w.category / "val.npz"), "--emd", "none"], "obj.npy"),
    Case("view-truncated-clouds-npz", "view",
         lambda w: [str(_truncate(_npz(w.tmp / "clouds.npz", interpolation=np.zeros((3, 64, 3), np.float32),
                                       names=np.array(["a", "b", "c"])))), "--headless", "--out", str(w.tmp / "f")],
         "clouds.npz", issue=True),
    Case("view-nan-clouds", "view",
         lambda w: [str(_npz(w.tmp / "clouds.npz", interpolation=np.full((3, 64, 3), np.nan, np.float32),
                            names=np.array(["a", "b", "c"]))), "--headless", "--out", str(w.tmp / "f")],
         "NaN or infinite"),
    # ----- checkpoints -----
    Case("truncated-checkpoint", "sample", lambda w: _damaged_checkpoint(w), "last.pt", issue=True),
    Case("random-bytes-checkpoint", "sample", lambda w: _damaged_checkpoint(w, bytes(range(256)) * 40),
         "not a PyTorch checkpoint file", issue=True),
    Case("truncated-checkpoint-resume", "train",
         lambda w: (_truncate(w.run / "checkpoints" / "last.pt"), ["--resume", str(w.run)])[1], "last.pt"),
    # ----- resume must not change what the run was -----
    Case("resume-with-fewer-epochs", "train", lambda w: ["--resume", str(w.run), "--epochs", "1"],
         "has trained 1 epoch(s); --epochs 1 leaves nothing to train", issue=True),
    Case("resume-with-config-json-disagreeing", "train",
         lambda w: ((w.run / "config.json").write_text(json.dumps(
             {**json.loads((w.run / "config.json").read_text()),
              "model": {**json.loads((w.run / "config.json").read_text())["model"], "z_dim": 128}})),
             ["--resume", str(w.run), "--epochs", "2"])[1], "model.z_dim", issue=True),
    # ----- numeric flags -----
    Case("train-beta1-one", "train", lambda w: _train(w, "--beta1", "1"), "optim.beta1 = 1.0 is out of range"),
    Case("train-learning-rate-zero", "train", lambda w: _train(w, "--lr-e", "0"), "optim.lr_e = 0.0 is out of range"),
    Case("train-milestones-not-increasing", "train", lambda w: _train(w, "--milestones", "300,100"),
         "optim.milestones"),
    Case("train-lr-gamma-zero", "train", lambda w: _train(w, "--lr-gamma", "0"), "optim.lr_gamma = 0.0 is out of range"),
    Case("train-nan-beta-neg", "train", lambda w: _train(w, "--beta-neg", "nan"), "loss.beta_neg"),
    Case("eval-ood-negative-obs-std", "eval",
         lambda w: ["ood", "--checkpoint", str(w.run), "--ood-data", str(w.data), "--ood-category", "airplane",
                    "--obs-std", "-1", "--device", "cpu"], "--obs-std"),
    Case("eval-ood-missing-data", "eval",
         lambda w: ["ood", "--checkpoint", str(w.run), "--ood-data", str(w.tmp / "none"), "--ood-category",
                    "bench", "--device", "cpu"], "no prepared data"),
    Case("prep-fractions-not-summing-to-one", "prep",
         lambda w: ["--source", str(SHAPENETPART), "--category", "airplane", "--out", str(w.tmp / "p"),
                    "--split-fractions", "0.5", "0.5", "0.5", "--progress", "false"], "summing to 1"),
    Case("prep-missing-source", "prep",
         lambda w: ["--source", str(w.tmp / "nowhere"), "--category", "airplane", "--out", str(w.tmp / "p"),
                    "--progress", "false"], "nowhere"),
    Case("compare-negative-learning-rate", "compare",
         lambda w: ["--data-root", str(w.data), "--epochs", "1", "--seeds", "0", "--out", str(w.tmp / "c"),
                    "--set", "lr_e=-1"], "optim.lr_e = -1.0 is out of range"),
    Case("sweep-unknown-grid-key", "sweep",
         lambda w: ["--data-root", str(w.data), "--epochs", "1", "--out", str(w.tmp / "s"), "--grid", "zzz=1,2"],
         "--grid zzz=1,2: zzz is not a training config field", issue=True),
    Case("sweep-cell-without-value", "sweep",
         lambda w: ["--data-root", str(w.data), "--epochs", "1", "--out", str(w.tmp / "s"), "--cell", "beta_neg"],
         "expected KEY=V"),
    Case("train-config-yaml", "train", lambda w: ((w.tmp / "c.yaml").write_text("a: 1"), _train(w, "--config",
                                                                                       str(w.tmp / "c.yaml")))[1],
         "expected a .json or .toml file"),
    Case("train-config-bad-toml", "train", lambda w: ((w.tmp / "c.toml").write_text("[model\nz_dim = "),
                                                      _train(w, "--config", str(w.tmp / "c.toml")))[1],
         "cannot be parsed"),
    # ----- issue 43 -----
    Case("train-batch-larger-than-the-split", "train", lambda w: _train(w, "--batch-size", "100000"),
         "is larger than the training split", outcome="skip"),
    Case("eval-ood-tiny-obs-std", "eval",
         lambda w: ["ood", "--checkpoint", str(w.run), "--ood-data", str(w.data), "--ood-category", "airplane",
                    "--obs-std", "1e-30", "--num-importance", "2", "--device", "cpu"],
         "--obs-std 1e-30 makes the"),
    Case("train-run-name-too-long", "train", lambda w: _train(w, "--run-name", "r" * 300),
         "is 300 bytes long; a folder name holds at most 255"),
    Case("eval-generation-out-is-a-directory", "eval",
         lambda w: ["generation", "--checkpoint", str(w.run), "--emd", "none", "--device", "cpu", "--out", str(w.tmp)],
         "it is a directory; give a file name"),
    Case("interpolate-negative-prior-seed", "interpolate",
         lambda w: ["--checkpoint", str(w.run), "--from", "prior:-5", "--to", "prior:1", "--out", str(w.tmp / "i"),
                    "--device", "cpu"], "'prior:-5': expected prior:<seed>, a seed must be >= 0"),
    Case("sample-huge-seed", "sample",
         lambda w: ["--checkpoint", str(w.run), "--seed", str(2**64), "--out", str(w.tmp / "s"), "--device", "cpu"],
         f"--seed: must be >= 0 and <= {2**63 - 1}"),
    Case("train-huge-seed", "train", lambda w: _train(w, "--seed", str(2**64)), "train.seed"),
    Case("eval-generation-one-sample", "eval",
         lambda w: ["generation", "--checkpoint", str(w.run), "--num-samples", "1", "--device", "cpu"],
         "--num-samples: must be >= 2"),
    Case("eval-sets-one-sample", "eval",
         lambda w: ["sets", "--sample", w.cloud("one.npy", w.good_cloud()[None]), "--reference",
                    str(w.category / "test.npz"), "--emd", "none", "--device", "cpu"],
         "need at least 2 generated clouds, got 1"),
    Case("eval-sets-one-reference", "eval",
         lambda w: ["sets", "--sample", str(w.category / "test.npz"), "--reference",
                    w.cloud("one.npy", w.good_cloud()[None]), "--emd", "none", "--device", "cpu"],
         "need at least 2 reference clouds, got 1"),
    Case("train-config-json-list", "train", lambda w: ((w.tmp / "c.json").write_text("[1, 2]"),
                                                       _train(w, "--config", str(w.tmp / "c.json")))[1],
         "the top level must be a table of sections"),
    Case("train-config-binary", "train", lambda w: ((w.tmp / "c.json").write_bytes(bytes(range(128, 256))),
                                                    _train(w, "--config", str(w.tmp / "c.json")))[1],
         "is not UTF-8 text"),
    Case("resume-with-config-json-unknown-key", "train",
         lambda w: ((w.run / "config.json").write_text(json.dumps(
             {**json.loads((w.run / "config.json").read_text()),
              "model": {**json.loads((w.run / "config.json").read_text())["model"], "zdim": 3}})),
             ["--resume", str(w.run), "--epochs", "2"])[1], "model.zdim, which no run config has"),
    Case("resume-with-config-json-unknown-section", "train",
         lambda w: ((w.run / "config.json").write_text(json.dumps(
             {**json.loads((w.run / "config.json").read_text()), "extra": {"a": 1}})),
             ["--resume", str(w.run), "--epochs", "2"])[1], "[extra], which no run config has"),
]


@pytest.fixture(scope="module")
def trained(airplanes_256, tmp_path_factory) -> Path:
    from pointcloud_sivae.training.trainer import Trainer

    out = tmp_path_factory.mktemp("corpus-run")
    cfg = tiny_config(airplanes_256, out, "run", epochs=1)
    cfg.model.z_dim = 8
    Trainer.new_run(cfg).fit()
    return out / "run"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case, airplanes_256, trained, tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(airplanes_256, data)
    shutil.copytree(trained, run)
    cfg = json.loads((run / "config.json").read_text())  # the copy's run reads the copy's data
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["data"]["data_root"] = cfg["data"]["data_root"] = str(data)
    torch.save(state, run / "checkpoints" / "last.pt")
    (run / "config.json").write_text(json.dumps(cfg))
    world = World(tmp=tmp_path, data=data, run=run)
    argv = case.argv(world)
    capsys.readouterr()
    try:
        rc = COMMANDS[case.command](argv)
    except SystemExit as exc:  # argparse's usage errors: exit 2 with one line of its own
        rc = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    if case.outcome == "error":
        assert rc == 2, (rc, err[-2000:])
        lines = [ln for ln in err.splitlines() if ln.startswith("error:") or ": error:" in ln]
        assert len(lines) == 1, err[-2000:]
        assert case.says in lines[0], (case.says, lines[0])
    else:
        assert rc == 0, err[-2000:]
        assert case.says in err, err[-2000:]


def test_the_corpus_covers_the_issue_and_as_many_more():
    listed = [c for c in CASES if c.issue]
    assert len(listed) >= 21 and len(CASES) - len(listed) >= len(listed)


def test_a_resume_never_rewrites_config_json_and_records_each_session(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = (run / "config.json").read_text()
    assert train.main(["--resume", str(run), "--epochs", "2", "--progress", "false", "--val-every", "5"]) == 0
    assert (run / "config.json").read_text() == before
    sessions = json.loads((run / "run_info.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0]["changed"] == {}
    assert sessions[1]["changed"] == {"optim.epochs": [1, 2], "train.val_every": [1, 5]}
    assert sessions[1]["resumed_from"].endswith("last.pt") and sessions[1]["start_epoch"] == 1


def test_prep_warns_when_a_split_is_empty(tmp_path, capsys):
    from shapenet_prep import PrepareOptions, prepare_category

    prepare_category(PrepareOptions(source=SHAPENETPART, category="airplane", out=tmp_path, num_points=64,
                                    progress=False, split_fractions=(1.0, 0.0, 0.0), workers=1))
    err = capsys.readouterr().err
    assert "warning: the val split is empty" in err and "warning: the test split is empty" in err


def test_a_damaged_array_is_found_on_load_and_on_rerun(airplanes_256, tmp_path, capsys):
    from pointcloud_sivae.data.prepared import PreparedDataError, load_split

    data = tmp_path / "data"
    shutil.copytree(airplanes_256, data)
    manifest = json.loads((data / "airplane" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"train.npz", "val.npz", "test.npz"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in manifest["files"].values())
    _truncate(data / "airplane" / "test.npz")
    with pytest.raises(PreparedDataError, match=r"test\.npz .*damaged.*--overwrite"):
        load_split(data, "airplane", "test")
    load_split(data, "airplane", "train")  # the others still load


def test_no_worker_outlives_a_killed_shapenet_prep(tmp_path):
    """SIGKILL the parent mid-run: its worker processes end within a few seconds."""
    import os

    src = tmp_path / "src" / "02691156"
    src.mkdir(parents=True)
    for f in sorted((SHAPENETPART / "02691156").glob("*.txt")):
        for k in range(4):  # enough work to be mid-run when killed
            shutil.copy(f, src / f"{f.stem}_{k}.txt")
    cmd = [sys.executable, "-m", "shapenet_prep", "--source", str(tmp_path / "src"), "--category", "airplane",
           "--out", str(tmp_path / "out"), "--workers", "2", "--progress", "false"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    children: list[int] = []
    while time.time() < deadline and not children:
        time.sleep(0.2)
        children = _children(proc.pid)
    assert children, "the workers never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children), "worker processes outlived their killed parent"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_full_disk_under_tensorboard_is_one_line(airplanes_256, tmp_path, capsys, monkeypatch):
    """The event writer's thread fails (no space left): no traceback from the thread, one line that says
    the last checkpoint is intact."""
    from tensorboard.summary.writer import record_writer

    calls = {"n": 0}
    original = record_writer.RecordWriter.write

    def write(self, data):
        calls["n"] += 1
        if calls["n"] > 300:  # after the first epochs' events and checkpoints
            raise OSError(28, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    argv = ["--data-root", str(airplanes_256), "--out-dir", str(tmp_path), "--run-name", "full", "--epochs", "30",
            "--z-dim", "8", "--batch-size", "16", "--device", "cpu", "--chamfer-backend", "torch", "--progress",
            "false", "--val-every", "100", "--vis-every", "100"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("No space left on device") == 1, err[-3000:]
    assert "the last good checkpoint" in err and "is intact" in err
