from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHAPENETPART = SHARED_DATA / "shapenetpart"
AIRPLANE_TXT = SHAPENETPART / "02691156"


def installed_chamfer_backends() -> list[str]:
    """The Chamfer backends (:data:`pointcloud_sivae.ops.chamfer.BACKENDS`) usable here: torch and numba
    (core dependencies) always, keops and pytorch3d when their packages import."""
    from pointcloud_sivae.ops.chamfer import BACKENDS

    def installed(backend: str) -> bool:
        if backend in ("torch", "numba"):
            return True
        try:
            __import__({"keops": "pykeops", "pytorch3d": "pytorch3d"}[backend])
        except ImportError:
            return False
        return True

    return [b for b in BACKENDS if installed(b)]


def require_shared_airplanes():
    if not AIRPLANE_TXT.is_dir():
        pytest.skip(f"real ShapeNetPart airplanes not found at {AIRPLANE_TXT} (../shared/data is absent)")


@pytest.fixture(scope="session")
def airplanes_256(tmp_path_factory) -> Path:
    """Real airplanes prepared at 256 points; returns the data root."""
    require_shared_airplanes()
    from shapenet_prep import PrepareOptions, prepare_category

    root = tmp_path_factory.mktemp("prepared")
    prepare_category(PrepareOptions(source=SHAPENETPART, category="airplane", out=root,
                                    num_points=256, progress=False))
    return root


def tiny_config(data_root: Path, out_dir: Path, name: str, epochs: int = 2):
    """A small, fast run on CPU: z_dim 16, batch 16, torch Chamfer backend."""
    from pointcloud_sivae.runs.config import RunConfig

    cfg = RunConfig()
    cfg.data.data_root = str(data_root)
    cfg.model.z_dim = 16
    cfg.optim.epochs = epochs
    cfg.optim.batch_size = 16
    cfg.loss.chamfer_backend = "torch"
    cfg.train.device = "cpu"
    cfg.train.out_dir = str(out_dir)
    cfg.train.run_name = name
    cfg.train.progress = False
    cfg.train.val_every = 1
    cfg.train.vis_every = 2
    return cfg



@pytest.fixture(scope="session")
def trained_run(airplanes_256, tmp_path_factory) -> Path:
    """A run trained for one epoch on the real airplanes at 256 points; returns its folder."""
    from pointcloud_sivae.training.trainer import Trainer

    out = tmp_path_factory.mktemp("trained")
    Trainer.new_run(tiny_config(airplanes_256, out, "run", epochs=1)).fit()
    return out / "run"


@pytest.fixture(scope="session")
def airplanes_2048():
    """60 real ShapeNetPart airplanes at 2048 points, in the source frame (PointFlow's frame for
    JSD: shapes within the unit cube); (60, 2048, 3) float32."""
    require_shared_airplanes()
    import numpy as np

    from shapenet_prep import shapenetpart
    from shapenet_prep.common import Sampling

    refs = shapenetpart.list_shapes(SHAPENETPART, "02691156")[:60]
    return np.stack([shapenetpart.load(r, Sampling(2048, seed=0))[0] for r in refs]).astype(np.float32)
