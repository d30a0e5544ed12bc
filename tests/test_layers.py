"""The package's layers: what imports what, one frame object, one Chamfer backend rule, no config mutation."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcloud_sivae.ops.chamfer import resolve_backend
from pointcloud_sivae.data.normalization import EvaluationFrame

REPO = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


# The layers, lowest first: a module may import from its own layer and the layers below, never above.
LAYERS = [
    ("utils", ["pointcloud_sivae.utils"]),
    ("data, ops", ["pointcloud_sivae.data", "pointcloud_sivae.ops"]),
    ("metrics, models", ["pointcloud_sivae.metrics", "pointcloud_sivae.models"]),
    ("objectives", ["pointcloud_sivae.objectives", "pointcloud_sivae.likelihood"]),
    ("runs", ["pointcloud_sivae.runs"]),
    ("training", ["pointcloud_sivae.training"]),
    ("inference", ["pointcloud_sivae.inference"]),
    ("experiments", ["pointcloud_sivae.experiments"]),
    ("commands", ["pointcloud_sivae.cli", "pointcloud_sivae.train", "pointcloud_sivae.sample",
                  "pointcloud_sivae.reconstruct", "pointcloud_sivae.interpolate", "pointcloud_sivae.view",
                  "pointcloud_sivae.compare", "pointcloud_sivae.sweep"]),
    ("applications", ["eval", "shapenet_prep"]),
]


def _layer(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def _modules():
    for package in ("pointcloud_sivae", "eval", "shapenet_prep"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_every_module_has_a_layer_and_no_import_runs_up():
    """Imports inside functions count too: a lazy import is still an arrow."""
    for module, path in _modules():
        if module == "pointcloud_sivae":
            continue
        own = _layer(module)
        assert own is not None, f"{module} is in no layer of LAYERS"
        for imported in _imported_modules(path):
            theirs = _layer(imported)
            if imported.startswith(("pointcloud_sivae", "eval", "shapenet_prep")) and imported != "pointcloud_sivae":
                assert theirs is not None, f"{module} imports {imported}, which is in no layer"
                assert theirs <= own, f"{module} ({LAYERS[own][0]}) imports {imported} ({LAYERS[theirs][0]})"


# What uses a trained model reads its checkpoint and rebuilds it with nothing of the trainer.
READERS = ["pointcloud_sivae.inference", "pointcloud_sivae.sample", "pointcloud_sivae.reconstruct",
           "pointcloud_sivae.interpolate", "pointcloud_sivae.view", "eval"]


def test_a_model_for_sampling_needs_nothing_of_the_trainer():
    """Issue 42, item 6: checkpoints are read and models rebuilt below ``training/``."""
    for module, path in _modules():
        if any(module == r or module.startswith(r + ".") for r in READERS):
            up = sorted(m for m in _imported_modules(path) if m.startswith("pointcloud_sivae.training"))
            assert not up, f"{module} imports {up}: read checkpoints with pointcloud_sivae.runs"


def test_no_module_only_re_exports():
    """Every module defines something (a function, a class or a constant) or runs a command."""
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        defines = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign,
                                                           ast.If))]
        only_doc = all(isinstance(n, ast.Expr) for n in tree.body)  # a package's docstring
        assert defines or only_doc, f"{module} only imports"


@pytest.mark.parametrize("module", ["pointcloud_sivae.sample", "pointcloud_sivae.reconstruct",
                                    "pointcloud_sivae.interpolate", "pointcloud_sivae.view", "eval.__main__",
                                    "shapenet_prep.__main__"])
def test_commands_that_do_not_train_do_not_load_the_trainer(module):
    code = f"import sys, {module}; print('pointcloud_sivae.training.trainer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("norm", [{"method": "none"}, {"method": "unit_sphere"}, {"method": "bbox"},
                                  {"method": "global", "global_mean": [0.1, -0.2, 0.05], "global_std": 0.3}])
def test_evaluation_frame_round_trip_in_numpy_and_torch(norm):
    rng = np.random.default_rng(0)
    model = rng.normal(0, 0.3, (3, 50, 3)).astype(np.float32)
    if norm["method"] in ("unit_sphere", "bbox"):  # model-frame clouds of a per-shape method are normalised
        from pointcloud_sivae.data.normalization import normalization_params, normalize

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

    from pointcloud_sivae.training.trainer import Trainer

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


def test_experiment_runners_live_on_the_training_side_and_not_in_eval():
    for cmd in (["-m", "pointcloud_sivae.compare", "--help"], ["-m", "pointcloud_sivae.sweep", "--help"]):
        out = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0 and "--epochs" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "eval", "compare", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice: 'compare'" in out.stderr


