"""The package's layers: what imports what, one frame object, one Chamfer backend rule, no config mutation."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcloud_sivae.chamfer import resolve_backend
from pointcloud_sivae.normalization import EvaluationFrame

REPO = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("package", ["pointcloud_sivae", "shapenet_prep"])
def test_no_import_runs_up_to_eval(package):
    for path in sorted((REPO / package).glob("*.py")):
        up = {m for m in _imported_modules(path) if m == "eval" or m.startswith("eval.")}
        assert not up, f"{path.relative_to(REPO)} imports {sorted(up)}"


@pytest.mark.parametrize("module", ["pointcloud_sivae.sample", "pointcloud_sivae.reconstruct",
                                    "pointcloud_sivae.interpolate", "pointcloud_sivae.view", "eval.__main__",
                                    "shapenet_prep.__main__"])
def test_commands_that_do_not_train_do_not_load_the_trainer(module):
    code = f"import sys, {module}; print('pointcloud_sivae.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("norm", [{"method": "none"}, {"method": "unit_sphere"}, {"method": "bbox"},
                                  {"method": "global", "global_mean": [0.1, -0.2, 0.05], "global_std": 0.3}])
def test_evaluation_frame_round_trip_in_numpy_and_torch(norm):
    rng = np.random.default_rng(0)
    model = rng.normal(0, 0.3, (3, 50, 3)).astype(np.float32)
    if norm["method"] in ("unit_sphere", "bbox"):  # model-frame clouds of a per-shape method are normalised
        from pointcloud_sivae.normalization import normalization_params, normalize

        model = normalize(model, *normalization_params(model, norm["method"])).astype(np.float32)
    frame = EvaluationFrame.of(norm)
    ev = frame.to_evaluation(model)
    assert ev.dtype == np.float32
    np.testing.assert_allclose(frame.to_model(ev), model, atol=1e-5)
    t = frame.to_evaluation(torch.from_numpy(model))
    assert isinstance(t, torch.Tensor) and torch.equal(t, torch.from_numpy(ev))
    np.testing.assert_allclose(frame.to_model(t).numpy(), model, atol=1e-5)
    if norm["method"] in ("unit_sphere", "bbox"):
        assert frame.scale == 0.5
    with pytest.raises(ValueError, match="unknown normalization"):
        EvaluationFrame.of({"method": "zscore"})


def test_one_chamfer_backend_rule():
    assert resolve_backend("auto", "cpu", "loss") == "numba"
    assert resolve_backend("auto", "cpu", "matrix") == "numba"
    assert resolve_backend("auto", "cpu", "knn") == "torch"
    assert resolve_backend("keops", "cpu", "matrix") == "keops"
    with pytest.raises(ValueError, match="unknown kNN backend 'numba'"):
        resolve_backend("numba", "cpu", "knn")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        resolve_backend("numba", "cuda", "matrix")
    with pytest.raises(ValueError, match="unknown use"):
        resolve_backend("auto", "cpu", "eval")


def test_trainer_leaves_the_given_config_alone_and_records_the_validation_backend(airplanes_256, tmp_path):
    import json

    from pointcloud_sivae.train import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(airplanes_256, tmp_path, "layers", epochs=1)
    cfg.model.num_points = 0
    before = cfg.to_dict()
    trainer = Trainer.new_run(cfg)
    assert cfg.to_dict() == before  # the resolved config is a new object
    assert trainer.cfg.model.num_points == 256 and trainer.cfg is not cfg
    session = json.loads((trainer.run_dir / "run_info.json").read_text())["sessions"][-1]
    want = resolve_backend(cfg.loss.chamfer_backend, "cpu", "matrix")  # the flag, honoured (tiny_config: torch)
    assert session["validation_chamfer_backend"] == want == trainer.matrix_backend


def test_experiment_runners_live_on_the_training_side_with_eval_aliases():
    for cmd in (["-m", "pointcloud_sivae.compare", "--help"], ["-m", "pointcloud_sivae.sweep", "--help"],
                ["-m", "eval", "compare", "--help"], ["-m", "eval", "sweep", "--help"]):
        out = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0 and "--epochs" in out.stdout, out.stderr
