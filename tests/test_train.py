import json

import pytest
import torch

from pointcloud_sivae.runs.checkpoint import CheckpointError, load_checkpoint

from pointcloud_sivae.training.checkpoint import save_checkpoint
from pointcloud_sivae.data.prepared import MissingDataError
from pointcloud_sivae.utils.runtime import select_device
from pointcloud_sivae.train import main
from pointcloud_sivae.training.steps import NonFiniteLossError
from pointcloud_sivae.training.trainer import Trainer

from .conftest import tiny_config


@pytest.fixture
def trainer(airplanes_256, tmp_path):
    torch.manual_seed(0)
    return Trainer.new_run(tiny_config(airplanes_256, tmp_path, "unit"))


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return {k for k in a if torch.equal(a[k], b[k])}


def _grads(module):
    return {k: None if p.grad is None else p.grad.clone() for k, p in module.named_parameters()}


def _spy_updates(trainer, seen: dict) -> None:
    """Record both networks' weights and gradients when each optimiser steps, and the weights after."""
    m = trainer.model
    for name, opt in (("encoder", trainer.opt_e), ("decoder", trainer.opt_d)):
        def step(*args, _original=opt.step, _name=name, **kwargs):
            seen[_name] = (_params(m.encoder), _params(m.decoder), _grads(m.encoder), _grads(m.decoder))
            out = _original(*args, **kwargs)
            seen[f"after {_name}"] = (_params(m.encoder), _params(m.decoder))
            return out

        opt.step = step


@pytest.mark.parametrize("method", ["soft-intro", "intro"])
def test_each_update_moves_its_network_only(trainer, method):
    """The encoder update: the decoder frozen (no gradient, unchanged), the real batch moves BatchNorm's
    running statistics. The decoder update: the encoder, its gradients and its running statistics unchanged."""
    seen: dict = {}
    _spy_updates(trainer, seen)
    enc0, dec0 = _params(trainer.model.encoder), _params(trainer.model.decoder)
    trainer.train_step(trainer.train_points[:8], method)
    enc_at_e, dec_at_e, enc_grad_e, dec_grad_e = seen["encoder"]
    assert _same(dec0, dec_at_e) == set(dec0) and all(g is None for g in dec_grad_e.values())
    assert any("running_mean" in k for k in set(enc0) - _same(enc0, enc_at_e))  # the real batch's statistics
    enc_after_e, _ = seen["after encoder"]
    assert any(k.endswith("weight") for k in set(enc0) - _same(enc0, enc_after_e))
    enc_at_d, _, enc_grad_d, _ = seen["decoder"]
    assert _same(enc_after_e, enc_at_d) == set(enc0)  # weights and running statistics
    assert all(torch.equal(enc_grad_e[k], enc_grad_d[k]) for k in enc_grad_e)  # no gradient reached the encoder
    _, dec_after_d = seen["after decoder"]
    assert not _same(dec0, dec_after_d)
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_train_step_terms_and_kl_gap(trainer):
    terms = trainer.train_step(trainer.train_points[:8], "soft-intro")
    assert set(terms) == {"rec", "kl_real", "kl_rec", "kl_fake", "kl_gap", "expelbo_rec", "expelbo_fake",
                          "exponent_rec_mean", "exponent_rec_min", "exponent_fake_mean", "exponent_fake_min",
                          "exponent_equilibrium", "kl_fake_equilibrium", "kl_real_median", "kl_fake_median",
                          "loss_e", "loss_d"}
    assert terms["kl_gap"] == pytest.approx(terms["kl_fake"] - terms["kl_real"])
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    assert 0 <= terms["expelbo_rec"] <= 1 and terms["rec"] > 0  # exp(-2s(...)) may underflow at init


def test_intro_and_vae_step_terms(trainer):
    intro = trainer.train_step(trainer.train_points[:8], "intro")
    assert set(intro) == {"rec", "kl_real", "kl_rec", "kl_fake", "kl_gap", "hinge_rec", "hinge_fake",
                          "kl_real_median", "kl_fake_median", "loss_e", "loss_d"}
    margin = trainer.cfg.loss.intro_margin
    for which in ("rec", "fake"):  # mean of the hinges >= the hinge of the mean KL (Jensen)
        assert intro[f"hinge_{which}"] >= max(0.0, margin - intro[f"kl_{which}"]) - 1e-4
    vae = trainer.train_step(trainer.train_points[:8], "vae")
    assert set(vae) == {"rec", "kl_real", "loss_e", "loss_d"}
    with pytest.raises(ValueError, match="unknown method 'gan'"):
        trainer.train_step(trainer.train_points[:8], "gan")


@pytest.mark.parametrize("method", ["vae", "intro"])
def test_configured_method_trains_after_warmup(airplanes_256, tmp_path, method):
    cfg = tiny_config(airplanes_256, tmp_path, method, epochs=2)
    cfg.loss.method, cfg.optim.warmup_epochs = method, 1
    t = Trainer.new_run(cfg)
    assert [t.method_for_epoch(e) for e in (1, 2)] == ["vae", method]
    t.fit()
    records = [json.loads(ln) for ln in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["vae", method]
    assert json.loads((t.run_dir / "config.json").read_text())["loss"]["method"] == method


def test_unknown_method_is_a_clear_error(airplanes_256, tmp_path, capsys):
    rc = main(["--data-root", str(airplanes_256), "--out-dir", str(tmp_path), "--method", "introvae"])
    assert rc == 2
    assert "unknown method 'introvae'; choose one of soft-intro, vae, intro" in capsys.readouterr().err


def test_warmup_counts_exactly(airplanes_256, tmp_path):
    cfg = tiny_config(airplanes_256, tmp_path, "warm", epochs=2)
    cfg.optim.warmup_epochs = 1
    t = Trainer.new_run(cfg)
    assert [t.method_for_epoch(e) for e in (1, 2, 3)] == ["vae", "soft-intro", "soft-intro"]
    records = t.fit()
    assert [r["epoch"] for r in records] == [1, 2]
    assert "expelbo_rec" not in records[0] and "expelbo_rec" in records[1]


def test_smoke_training_on_real_airplanes(airplanes_256, tmp_path):
    """A few steps on the real airplanes at 256 points on CPU: files, scalars, images, learning."""
    cfg = tiny_config(airplanes_256, tmp_path, "smoke", epochs=3)
    cfg.train.vis_every = 3
    returned = Trainer.new_run(cfg).fit()
    run = tmp_path / "smoke"
    assert {p.name for p in run.iterdir()} >= {"config.json", "manifest.json", "run_info.json", "metrics.jsonl",
                                               "checkpoints"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["rec"] < 0.7 * records[0]["rec"]  # reconstruction improves within 3 epochs
    assert all(0 <= r["val_jsd"] <= 1 and 0 < r["val_chamfer"] < 0.1 for r in records)
    assert all(0 < r["val_mmd_cd"] < 0.1 and 0 < r["val_cov_cd"] <= 1 and 0.5 <= r["val_1nna_cd"] <= 1
               for r in records)
    assert returned == records and records[-1]["global_step"] == 3 * 6  # 85 shapes, batch 16: 5 batches of 16, 1 of 5
    state = load_checkpoint(run)
    assert state["epoch"] == 3 and state["config"]["model"]["num_points"] == 256
    from pointcloud_sivae.data.prepared import load_split, mean_diagonal

    measured = mean_diagonal(load_split(airplanes_256, "airplane", "train").points)  # the frame's unit, recorded
    assert state["config"]["loss"]["frame_diagonal"] == measured and 0.9 < measured < 1.0  # ShapeNetPart: ~unit
    assert (run / "checkpoints" / "best.pt").is_file()
    info = json.loads((run / "run_info.json").read_text())
    assert info["sessions"][0]["chamfer_backend"] == "torch"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss/rec", "loss/kl_real", "loss/kl_rec", "loss/kl_fake", "loss/kl_gap", "loss/expelbo_rec",
                "loss/expelbo_fake", "loss/loss_e", "loss/loss_d", "lr/encoder", "lr/decoder",
                "perf/step_time_s", "perf/shapes_per_s", "val/chamfer", "val/jsd", "val/mmd_cd", "val/cov_cd",
                "val/1nna_cd"):
        assert tag in tags["scalars"], tag
    assert len(acc.Scalars("loss/rec")) == 18
    assert "clouds/grid" in tags["images"] and "interpolation/strip" in tags["images"]
    assert any(t.startswith("clouds/real") for t in tags["tensors"])  # add_mesh point-cloud summaries
    image = acc.Images("clouds/grid")[0]
    assert image.width > 200 and image.height > 200


def _without_times(records):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in records]


def test_resume_reproduces_an_uninterrupted_run(airplanes_256, tmp_path):
    full = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "full", epochs=2)).fit()
    Trainer.new_run(tiny_config(airplanes_256, tmp_path, "cut", epochs=1)).fit()
    resumed = Trainer.resume(tmp_path / "cut", {"epochs": 2}).fit()
    assert _without_times(resumed) == _without_times(full[1:])  # bitwise-identical epoch means
    a, b = load_checkpoint(tmp_path / "full")["model"], load_checkpoint(tmp_path / "cut")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # and weights
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(airplanes_256, tmp_path, monkeypatch):
    t = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "nan", epochs=3))
    objective = t.objectives["soft-intro"]
    original = objective.rec

    def poisoned(a, b):
        out = original(a, b)
        return out * float("nan") if t.epoch >= 1 else out

    monkeypatch.setattr(objective, "rec", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"non-finite encoder loss at epoch 2, step 7 .*beta_neg"):
        t.fit()
    state = load_checkpoint(tmp_path / "nan")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_missing_data_says_how_to_prepare(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "nothing", tmp_path, "x")
    with pytest.raises(MissingDataError, match=r"no prepared data for 'airplane'.*python -m shapenet_prep"):
        Trainer.new_run(cfg)
    assert main(["--data-root", str(tmp_path / "nothing"), "--device", "cpu"]) == 2
    assert "python -m shapenet_prep --format shapenetpart" in capsys.readouterr().err


def test_unknown_category_lists_valid_ones(tmp_path, capsys):
    assert main(["--category", "airplan", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a ShapeNetCore category (airplane, bag" in err and "nor a ModelNet40 class (airplane, bathtub" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_requested_but_absent():
    with pytest.raises(ValueError, match="--device cuda requested but CUDA is not available.*--device cpu"):
        select_device("cuda")
    assert select_device("auto") == torch.device("cpu")


def test_more_points_than_prepared_is_a_one_line_error(airplanes_256, tmp_path, capsys):
    argv = ["--data-root", str(airplanes_256), "--out-dir", str(tmp_path), "--num-points", "512", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--num-points 512 needs 512 points per cloud, but the data prepared under" in err
    assert not any(tmp_path.iterdir())


def test_fewer_points_train_on_fresh_subsets_and_validate_on_fixed_ones(airplanes_256, tmp_path):
    """PointFlow's convention: M < N prepared points gives a new random subset of every cloud at
    every step, and one fixed, seeded subset per val/test cloud; a resumed run is bit-exact."""
    from pointcloud_sivae.data.prepared import fixed_subsets, load_split

    cfg = tiny_config(airplanes_256, tmp_path, "full", epochs=2)
    cfg.model.num_points = 64
    full = Trainer.new_run(cfg)
    idx = full.batches(1)[0]
    first, again = full.batch(idx), full.batch(idx)
    full.global_step += 1
    second = full.batch(idx)
    full.global_step -= 1
    assert first.shape == (len(idx), 64, 3) and torch.equal(first, again) and not torch.equal(first, second)
    dense = full.train_points[idx]  # every subset point is one of the cloud's prepared points
    assert (first[:, :, None, :] == dense[:, None, :, :]).all(-1).any(-1).all()

    val = load_split(airplanes_256, "airplane", "val")
    assert full.val_points.shape[1] == 64
    torch.testing.assert_close(full.val_points, fixed_subsets(val.points, val.ids, 64, seed=0), rtol=0, atol=0)
    later = fixed_subsets(val.points[3:], val.ids[3:], 64, seed=0)  # a cloud's subset ignores the other clouds
    torch.testing.assert_close(later, full.val_points[3:], rtol=0, atol=0)
    info = json.loads((tmp_path / "full" / "run_info.json").read_text())["sessions"][0]["points"]
    assert info["prepared"] == 256 and info["model"] == 64 and "fixed subset" in info["validation"]

    fixed_cfg = tiny_config(airplanes_256, tmp_path, "fixed", epochs=1)
    fixed_cfg.model.num_points, fixed_cfg.data.train_subsets = 64, "fixed"
    fixed = Trainer.new_run(fixed_cfg)  # each cloud's fixed subset at every step, as if prepared at 64 points
    assert torch.equal(fixed.batch(idx), fixed.train_fixed[idx])

    records = full.fit()
    cut_cfg = tiny_config(airplanes_256, tmp_path, "cut", epochs=1)
    cut_cfg.model.num_points = 64
    Trainer.new_run(cut_cfg).fit()
    resumed = Trainer.resume(tmp_path / "cut", {"epochs": 2}).fit()
    assert _without_times(resumed) == _without_times(records[1:])  # bitwise-identical epoch means
    state = load_checkpoint(tmp_path / "cut")
    assert state["config"]["model"]["num_points"] == 64 and state["manifest"]["num_points"] == 256


def test_incompatible_checkpoints(airplanes_256, tmp_path):
    Trainer.new_run(tiny_config(airplanes_256, tmp_path, "ck", epochs=1)).fit()
    with pytest.raises(CheckpointError, match=r"incompatible with the checkpoint's config: --z-dim 32 \(checkpoint: 16\)"):
        Trainer.resume(tmp_path / "ck", {"z_dim": "32", "epochs": "2"})
    assert Trainer.resume(tmp_path / "ck", {"category": "plane", "epochs": "2"}).epoch == 1  # an alias is no conflict
    state = load_checkpoint(tmp_path / "ck")
    state["config"]["model"]["z_dim"] = 8  # weights for z_dim 16 under a config that says 8
    state.pop("checkpoint_version")
    save_checkpoint(state, tmp_path / "bad" / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="checkpoint weights do not fit the configured model"):
        Trainer.resume(tmp_path / "bad", {"epochs": "2"})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        Trainer.resume(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Trainer.resume(tmp_path / "nowhere")
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer.new_run(tiny_config(airplanes_256, tmp_path, "ck", epochs=1))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c" / "last.pt"
    save_checkpoint({"model": {}, "config": {}, "epoch": 1, "global_step": 3}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"model": {}, "config": {}, "epoch": 2, "global_step": 6}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


def test_cli_killed_mid_run_resumes_from_last_checkpoint(airplanes_256, tmp_path):
    """A second start in the folder of a run in progress is refused (before its first checkpoint, too);
    kill the real command (SIGKILL) once a checkpoint exists, then --resume to the end: the dead run's
    lock does not block it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pointcloud_sivae.training.run_folder import RunFolder, RunFolderError

    from .conftest import REPO

    run = tmp_path / "killed"
    args = [sys.executable, "-m", "pointcloud_sivae.train", "--data-root", str(airplanes_256), "--z-dim", "16",
            "--batch-size", "16", "--chamfer-backend", "torch", "--device", "cpu", "--out-dir", str(tmp_path),
            "--run-name", "killed", "--val-every", "100", "--vis-every", "100", "--progress", "false"]
    proc = subprocess.Popen(args + ["--epochs", "400"], cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    lock = run / ".lock"
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    with pytest.raises(RunFolderError, match=f"is in use: another training process \\(pid {proc.pid}\\)"):
        RunFolder(run).lock()  # from its start on, before any checkpoint: no second process trains here
    while not (run / "checkpoints" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(args[:3] + ["--resume", str(run), "--epochs", "400"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 2 and f"is in use: another training process (pid {proc.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(run)["epoch"]
    assert 1 <= killed_at < 400
    done = subprocess.run(args[:3] + ["--resume", str(run), "--epochs", str(killed_at + 2)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} after epoch {killed_at}" in done.stderr
    epochs = [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, killed_at + 3))
    assert load_checkpoint(run)["epoch"] == killed_at + 2


def test_bf16_autocast_step_keeps_losses_in_float32(trainer):
    trainer.cfg.train.amp = "bf16"
    x = trainer.train_points[:8]
    ref = Trainer(trainer.cfg, trainer.run_dir)  # same seed: same initial weights
    ref.cfg = tiny_config(trainer.cfg.data.data_root, trainer.run_dir.parent, "unit")
    a = trainer.train_step(x, "soft-intro")
    b = ref.train_step(x, "soft-intro")
    assert all(torch.isfinite(torch.tensor(v)) for v in a.values())
    assert a["rec"] == pytest.approx(b["rec"], rel=0.05) and a["kl_real"] == pytest.approx(b["kl_real"], rel=0.05)
    from pointcloud_sivae.runs.config import RunConfig, set_field

    with pytest.raises(ValueError, match="use off, bf16 or auto"):
        set_field(RunConfig(), "train", "amp", "fp16")


def test_amp_auto_takes_bf16_only_where_the_device_computes_it(trainer, monkeypatch):
    import pointcloud_sivae.training.trainer as trainer_module

    trainer.cfg.train.amp = "auto"
    for native in (True, False):
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device, native=native: native)
        assert trainer.bf16 is native and ("bf16 autocast" if native else "float32") in trainer._describe()
    trainer.cfg.train.amp = "bf16"
    assert trainer.bf16  # asked for, it is used even where it is emulated (with a note at the start)
    trainer.cfg.train.amp = "off"
    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: True)
    assert not trainer.bf16


@pytest.mark.parametrize("method", ["soft-intro", "intro"])
def test_gradient_diagnostics_measure_without_changing_the_step(airplanes_256, tmp_path, method):
    """The diagnosed step (the first of each epoch) updates the weights exactly as an undiagnosed one."""
    a = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "a"))
    b = Trainer.new_run(tiny_config(airplanes_256, tmp_path, "b"))
    x = a.train_points[:16]
    plain, diagnosed = a.train_step(x, method), b.train_step(x, method, diagnose=True)
    for k, v in _params(a.model).items():
        assert torch.equal(v, _params(b.model)[k]), k
    assert not any(k.startswith("grad_") for k in plain)
    adversarial = ("exp_rec", "exp_fake") if method == "soft-intro" else ("hinge_rec", "hinge_fake")
    assert {f"grad_norm_{p}" for p in ("real", "adversarial", *adversarial)} <= diagnosed.keys()
    assert diagnosed["grad_norm_real"] > 0 and -1 <= diagnosed["grad_cosine"] <= 1


def test_compiled_networks_take_the_diagnosed_step(airplanes_256, tmp_path, monkeypatch):
    """``--compile true``: the diagnosed step back-propagates the compiled encoder's graph once per
    loss term; AOTAutograd's donated buffers used to make the second backward raise. The networks
    compile with the ``aot_eager`` backend here (the same AOTAutograd graphs, no C++ build)."""
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compile_module(self, backend="aot_eager"))
    torch._dynamo.reset()
    try:
        cfg = tiny_config(airplanes_256, tmp_path, "compiled")
        cfg.train.compile = True
        trainer = Trainer.new_run(cfg)
        x = trainer.train_points[:16]
        for diagnose in (False, True, True):
            terms = trainer.train_step(x, "soft-intro", diagnose=diagnose)
    finally:
        torch._dynamo.reset()  # no compiled graphs outlive the test, even a failed one
    assert terms["grad_norm_real"] > 0 and -1 <= terms["grad_cosine"] <= 1
