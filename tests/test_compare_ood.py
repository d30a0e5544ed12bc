"""The comparison and OOD commands, end to end on the real data at 256 points."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from eval.__main__ import main as eval_main
from pointcloud_sivae.compare import main as compare_main
from pointcloud_sivae.experiments.compare import _train_config, best_per_metric
from eval.ood import auroc

from .conftest import SHARED_DATA

ONET = SHARED_DATA / "onet"


@pytest.fixture(scope="module")
def benches_256(tmp_path_factory):
    """The 20 real ONet benches at 256 points, unit-sphere normalised (a different frame from the model's)."""
    if not (ONET / "02828884").is_dir():
        pytest.skip(f"real ONet benches not found at {ONET} (../shared/data is absent)")
    from shapenet_prep import PrepareOptions, prepare_category

    root = tmp_path_factory.mktemp("benches")
    prepare_category(PrepareOptions(source=ONET, category="bench", out=root, format="onet", num_points=256,
                                    normalization="unit_sphere", progress=False))
    return root


def test_ood_command_scores_airplanes_against_benches(trained_run, benches_256, tmp_path, capsys):
    out = tmp_path / "ood"
    assert eval_main(["ood", "--checkpoint", str(trained_run), "--ood-data", str(benches_256),
                      "--ood-category", "bench", "--num-importance", "4", "--device", "cpu",
                      "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "AUROC" in table and "log_px_iw" in table
    r = json.loads((out / "ood.json").read_text())
    assert r["in_distribution"]["num_shapes"] == 18 and r["ood"]["num_shapes"] == 20
    assert "differs from the model's" in r["ood"]["frame"]  # unit_sphere benches mapped into the 'none' frame
    assert r["observation_model"]["obs_std"] > 0 and "maximum likelihood" in r["observation_model"]["obs_std_from"]
    assert set(r["auroc"]) == {"log_px_iw", "elbo", "rec_chamfer", "kl"}
    s_in, s_out = r["scores"]["in"], r["scores"]["ood"]
    assert len(s_in["ids"]) == 18 and len(s_out["log_px_iw"]) == 20
    assert all(a >= b - 1e-9 for a, b in zip(s_in["log_px_iw"], s_in["elbo"]))
    # the reported AUROC is the one of the saved scores with the stated direction
    assert r["auroc"]["log_px_iw"] == pytest.approx(auroc(-np.array(s_in["log_px_iw"]), -np.array(s_out["log_px_iw"])))
    assert r["auroc"]["rec_chamfer"] == pytest.approx(auroc(s_in["rec_chamfer"], s_out["rec_chamfer"]))
    assert (out / "ood_histograms.png").stat().st_size > 10_000


def test_ood_command_refuses_a_different_point_count(trained_run, tmp_path, capsys):
    if not (ONET / "02828884").is_dir():
        pytest.skip(f"real ONet benches not found at {ONET}")
    from shapenet_prep import PrepareOptions, prepare_category

    prepare_category(PrepareOptions(source=ONET, category="bench", out=tmp_path, format="onet", num_points=128,
                                    progress=False))
    assert eval_main(["ood", "--checkpoint", str(trained_run), "--ood-data", str(tmp_path),
                      "--ood-category", "bench", "--device", "cpu", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "the model of" in err and "needs 256 points per cloud, but the data prepared under" in err
    assert "has 128; use at most 128, or prepare the data again with" in err


def test_compare_command_trains_scores_and_reuses(airplanes_256, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["--data-root", str(airplanes_256), "--methods", "soft-intro", "vae", "--seeds", "0",
            "--epochs", "1", "--emd", "none", "--num-importance", "2", "--device", "cpu", "--out", str(out),
            "--set", "z_dim=16", "--set", "batch_size=16", "--set", "chamfer_backend=torch"]
    assert compare_main(argv) == 0
    r = json.loads((out / "comparison.json").read_text())
    assert r["methods"] == ["soft-intro", "vae"] and r["epochs"] == 1 and r["num_reference"] == 18
    assert r["train_config"]["model"]["z_dim"] == 16
    for m in ("soft-intro", "vae"):
        run = r["per_run"][m][0]
        assert run["epoch"] == 1 and run["train-time"] > 0 and run["log-p(x)-IW"] >= run["ELBO"] - 1e-9
        assert set(r["summary"][m]) >= {"MMD-CD", "COV-CD", "1-NNA-CD", "JSD", "rec-CD", "ELBO", "log-p(x)-IW"}
        cfg = json.loads((out / "runs" / f"{m}-seed0" / "config.json").read_text())
        assert cfg["loss"]["method"] == m and cfg["optim"]["epochs"] == 1
    md = (out / "comparison.md").read_text()
    assert "| metric | unit | soft-intro | vae |" in md and "1-NNA-CD" in md
    assert r["train_configs"]["vae"]["loss"]["method"] == "vae" and "* `soft-intro`: loss" in md
    capsys.readouterr()
    assert compare_main(argv) == 0  # a second call reuses the finished runs
    assert capsys.readouterr().err.count("reusing finished run") == 2
    again = json.loads((out / "comparison.json").read_text())
    assert again["per_run"]["vae"][0]["train-time"] == r["per_run"]["vae"][0]["train-time"]
    assert compare_main(argv[:-2] + ["--set", "beta_rec=5"]) == 2  # a different config in the same folder
    assert "holds a run with another config" in capsys.readouterr().err


def test_best_per_metric_directions():
    summary = {"a": {"MMD-CD": {"mean": 1.0, "std": 0.1}, "1-NNA-CD": {"mean": 0.9, "std": 0.0},
                     "COV-CD": {"mean": 0.4, "std": 0.05}},
               "b": {"MMD-CD": {"mean": 2.0, "std": 0.1}, "1-NNA-CD": {"mean": 0.45, "std": 0.0},
                     "COV-CD": {"mean": 0.42, "std": 0.05}}}
    best = best_per_metric(summary)
    assert best["MMD-CD"]["best"] == "a" and best["MMD-CD"]["clear"]
    assert best["1-NNA-CD"]["best"] == "b" and best["1-NNA-CD"]["margin"] == pytest.approx(0.35)
    assert best["COV-CD"]["best"] == "b" and not best["COV-CD"]["clear"]


def test_compare_refuses_unknown_methods_and_keys(tmp_path, capsys):
    assert compare_main(["--out", str(tmp_path), "--epochs", "1", "--methods", "gan"]) == 2
    assert "unknown method(s) ['gan']" in capsys.readouterr().err
    assert compare_main(["--out", str(tmp_path), "--epochs", "1", "--set", "lr=1"]) == 2
    assert "expected KEY=VALUE with KEY a training config field" in capsys.readouterr().err
    assert compare_main(["--out", str(tmp_path), "--epochs", "1", "--set", "gan:beta_kl=2"]) == 2
    assert "'gan' is not a method" in capsys.readouterr().err


def test_compare_checks_the_protocol_before_training(airplanes_256, tmp_path, capsys):
    import shapenet_prep

    root = tmp_path / "sphere"
    shapenet_prep.prepare_category(shapenet_prep.PrepareOptions(
        source=SHARED_DATA / "shapenetpart", category="airplane", out=root, num_points=64,
        normalization="unit_sphere", progress=False))
    assert compare_main(["--out", str(tmp_path / "c"), "--epochs", "1", "--data-root", str(root)]) == 2
    assert "use --protocol norm_box or none" in capsys.readouterr().err
    assert not (tmp_path / "c" / "runs").exists()  # nothing trained


def _compare_args(root, out, overrides, preset=None) -> SimpleNamespace:
    """The parsed arguments of `compare` that `_train_config` reads."""
    return SimpleNamespace(overrides=list(overrides), epochs=1, out=out, data_root=str(root), category="airplane",
                           device="cpu", progress=False, config=None, preset=preset)


def test_compare_per_method_settings(airplanes_256, tmp_path):
    args = _compare_args(airplanes_256, tmp_path, ["vae:beta_kl=2", "soft-intro:warmup_epochs=3", "z_dim=16"])
    vae, si = _train_config(args, "vae", 0), _train_config(args, "soft-intro", 0)
    assert (vae.loss.beta_kl, vae.optim.warmup_epochs, vae.model.z_dim) == (2.0, 0, 16)
    assert (si.loss.beta_kl, si.optim.warmup_epochs, si.model.z_dim) == (1.0, 3, 16)


def test_compare_baselines_train_without_the_presets_repulsion(airplanes_256, tmp_path):
    """mn40-256's repulsion penalty is a Soft-IntroVAE decoder-step term: the VAE and IntroVAE runs of
    `compare --preset mn40-256` train without it; asking for it in their runs is refused up front."""
    def args(*overrides):
        return _compare_args(airplanes_256, tmp_path, overrides, preset="mn40-256")

    assert _train_config(args(), "soft-intro", 0).loss.beta_repulsion == 0.0025
    assert _train_config(args(), "vae", 0).loss.beta_repulsion == 0.0
    assert _train_config(args(), "intro", 0).loss.beta_repulsion == 0.0
    assert _train_config(args("soft-intro:beta_repulsion=0.02"), "soft-intro", 0).loss.beta_repulsion == 0.02
    with pytest.raises(ValueError, match="reaches the vae runs.*soft-intro:beta_repulsion"):
        _train_config(args("beta_repulsion=0.02"), "vae", 0)
