import json

import numpy as np
import pytest

from eval.__main__ import main as eval_main
from pointcloud_sivae.metrics.protocols import apply_protocol


def test_generation_command_writes_protocol_and_numbers(trained_run, tmp_path, capsys):
    out = tmp_path / "gen.json"
    assert eval_main(["generation", "--checkpoint", str(trained_run), "--split", "val", "--num-samples", "6",
                      "--seeds", "0", "1", "--device", "cpu", "--progress", "false", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "MMD-CD" in table and "1-NNA-EMD" in table and "x10^3" in table
    r = json.loads(out.read_text())
    assert r["protocol"] == "pointflow" and r["num_samples"] == 6 and r["num_reference"] == 18
    assert r["num_points"] == 256 and r["seeds"] == [0, 1] and r["epoch"] == 1 and r["prior_std"] == 0.2
    assert set(r["metrics"]) == {"MMD-CD", "COV-CD", "1-NNA-CD", "MMD-EMD", "COV-EMD", "1-NNA-EMD", "JSD", "diversity-CD",
                                 "train-distance-ratio", "copy-share", "nn-train-ratio"}  # and how new the samples are
    assert 0 <= r["metrics"]["copy-share"]["mean"] <= 1 and r["num_train"] > 0
    assert r["data_normalization"] == {"method": "none"}
    assert "approxmatch" in r["distance_implementations"]["emd"]
    assert "numba" in r["distance_implementations"]["chamfer"]
    for v in r["metrics"].values():
        assert set(v) == {"mean", "std"} and np.isfinite(v["mean"])
    assert 0.5 <= r["metrics"]["1-NNA-CD"]["mean"] <= 1.0 and 0 < r["metrics"]["COV-CD"]["mean"] <= 1.0
    assert len(r["per_seed"]) == 2 and r["run_time_s"] > 0 and "CD_matrices_s" in r["timings"]


def test_reconstruction_command(trained_run, tmp_path):
    out = tmp_path / "rec.json"
    assert eval_main(["reconstruction", "--checkpoint", str(trained_run), "--split", "test", "--emd", "exact",
                      "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["num_shapes"] == 18 and len(r["per_shape"]["CD"]) == 18 and len(r["ids"]) == 18
    assert 0 < r["CD"]["mean"] < 0.1 and 0 < r["EMD"]["mean"] < 0.5
    assert "exact" not in r["protocol"] and r["reconstruction"] == "decoder(posterior mean)"


def test_sets_command_known_answers(airplanes_256, tmp_path, capsys):
    pts = np.load(airplanes_256 / "airplane" / "val.npz")["points"][:8]
    np.save(tmp_path / "a.npy", pts)
    np.save(tmp_path / "far.npy", pts + np.float32(3.0))
    out = tmp_path / "same.json"
    assert eval_main(["sets", "--sample", str(tmp_path / "a.npy"), "--reference", str(airplanes_256 / "airplane" /
                      "val.npz"), "--emd", "none", "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["metrics"]
    assert r["MMD-CD"]["mean"] > 0 and r["COV-CD"]["mean"] == pytest.approx(8 / 18)
    assert eval_main(["sets", "--sample", str(tmp_path / "a.npy"), "--reference", str(tmp_path / "a.npy"),
                      "--emd", "exact", "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["metrics"]
    assert r["MMD-CD"]["mean"] == 0 and r["MMD-EMD"]["mean"] == 0 and r["COV-CD"]["mean"] == 1.0
    assert r["JSD"]["mean"] == 0 and r["1-NNA-CD"]["mean"] == 0.0
    far = ["sets", "--sample", str(tmp_path / "far.npy"), "--reference", str(tmp_path / "a.npy"),
           "--emd", "none", "--device", "cpu", "--out", str(out)]
    assert eval_main(far) == 2  # every point of the sample outside the JSD ball: an error, no number
    assert "--jsd-allow-outside" in capsys.readouterr().err
    assert eval_main(far + ["--jsd-allow-outside"]) == 0
    assert capsys.readouterr().out.count("JSD: 100.00% of the sample points lie outside the grid's ball") == 1
    result = json.loads(out.read_text())
    assert result["metrics"]["1-NNA-CD"]["mean"] == 1.0
    assert result["distance_implementations"]["jsd"]["outside_ball_fraction"]["sample"] == 1.0
    assert "sklearn NearestNeighbors" in result["distance_implementations"]["jsd"]["assignment"]


def test_sets_command_with_training_clouds_tells_copies(airplanes_256, tmp_path, capsys):
    train = np.load(airplanes_256 / "airplane" / "train.npz")["points"]
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "copies.npy", train[:18])
    ref, out = str(airplanes_256 / "airplane" / "val.npz"), tmp_path / "copies.json"
    base = ["sets", "--sample", str(tmp_path / "copies.npy"), "--reference", ref, "--emd", "none", "--device", "cpu"]
    assert eval_main(base + ["--train", str(tmp_path / "train.npy"), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["num_train"] == len(train) and "Meehan" in r["copying"]
    assert r["metrics"]["train-distance-ratio"]["mean"] == 0 and r["metrics"]["copy-share"]["mean"] == 1.0
    assert "100% of them are nearer a training shape" in capsys.readouterr().out
    assert eval_main(base + ["--out", str(out)]) == 0  # without --train: said, not silently left out
    assert "copy-share" not in json.loads(out.read_text())["metrics"]
    assert "pass --train" in capsys.readouterr().out
    np.save(tmp_path / "train64.npy", train[:, :64])
    assert eval_main(base + ["--train", str(tmp_path / "train64.npy"), "--out", str(out)]) == 2
    assert "--train" in capsys.readouterr().err


def test_sets_command_unit_sphere_inputs(airplanes_256, tmp_path, capsys):
    """Unit-sphere files put ~40 % of their points outside the JSD ball; naming their frame fixes it."""
    pts = np.load(airplanes_256 / "airplane" / "val.npz")["points"][:8]
    unit = pts / np.linalg.norm(pts, axis=2).max(1)[:, None, None]
    np.save(tmp_path / "s.npy", unit[:4])
    np.save(tmp_path / "r.npy", unit[4:])
    args = ["sets", "--sample", str(tmp_path / "s.npy"), "--reference", str(tmp_path / "r.npy"), "--emd", "none",
            "--device", "cpu", "--protocol", "none", "--out", str(tmp_path / "u.json")]
    assert eval_main(args) == 2
    assert "--input-normalization unit_sphere" in capsys.readouterr().err
    assert eval_main(args + ["--input-normalization", "unit_sphere"]) == 0
    result = json.loads((tmp_path / "u.json").read_text())
    assert result["input_normalization"] == "unit_sphere" and 0 < result["metrics"]["JSD"]["mean"] < 1


def test_protocols(airplanes_256):
    pts = np.load(airplanes_256 / "airplane" / "val.npz")["points"][:4]
    box = apply_protocol(pts, "norm_box", {"method": "none"})
    np.testing.assert_allclose(np.abs(box).max(axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.array_equal(apply_protocol(pts, "pointflow", {"method": "none"}), pts)
    glob = {"method": "global", "global_mean": [0.1, 0.2, 0.3], "global_std": 2.0}
    np.testing.assert_allclose(apply_protocol(pts, "pointflow", glob), pts * 2 + np.array([0.1, 0.2, 0.3]), atol=1e-6)
    with pytest.raises(ValueError, match="per-shape normalization 'unit_sphere'.*norm_box"):
        apply_protocol(pts, "pointflow", {"method": "unit_sphere"})


def test_command_errors(tmp_path, capsys):
    assert eval_main(["generation", "--checkpoint", str(tmp_path / "none"), "--device", "cpu"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("1")
    assert eval_main(["sets", "--sample", str(tmp_path / "x.txt"), "--reference", str(tmp_path / "x.txt")]) == 2
    assert "expected a .npy or .npz" in capsys.readouterr().err


def test_a_model_of_fewer_points_is_scored_on_the_runs_fixed_subsets(airplanes_256, tmp_path):
    """A 64-point model trained on 256-point data: every command takes the same fixed, seeded subset
    of each reference cloud (PointFlow's te_sample_size), recorded in the result."""
    from pointcloud_sivae.data.prepared import fixed_subsets, load_split
    from pointcloud_sivae.inference import Inference
    from pointcloud_sivae.training.trainer import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(airplanes_256, tmp_path, "m64", epochs=1)
    cfg.model.num_points, cfg.data.subset_seed = 64, 3
    Trainer.new_run(cfg).fit()
    run = tmp_path / "m64"
    out = tmp_path / "rec.json"
    assert eval_main(["reconstruction", "--checkpoint", str(run), "--split", "test", "--emd", "none",
                      "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["num_points"] == 64 and r["point_subset"]["of"] == 256 and r["point_subset"]["seed"] == 3
    test = load_split(airplanes_256, "airplane", "test")
    expected = fixed_subsets(test.points, test.ids, 64, seed=3)
    got = Inference(run, "cpu").split("test")
    assert got.ids == test.ids and np.array_equal(got.points.numpy(), expected.numpy())
