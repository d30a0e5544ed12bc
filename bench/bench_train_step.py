"""Benchmark: one full Soft-IntroVAE training step and the Chamfer distance, on this machine.

Prints a table of medians (and min/max) over repeated runs, all measured in one run:

* the full step (encoder step + decoder step, batch B x N, reference model) per
  available Chamfer backend, with shapes/s;
* Chamfer distance forward + backward for each available backend.

Uses the real ShapeNetPart airplanes (prepared into a temporary folder).

    python bench/bench_train_step.py [--device cpu|cuda] [--repeats 5] [--source ../shared/data/shapenetpart]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pointcloud_sivae.chamfer import BACKENDS, chamfer_distance  # noqa: E402
from pointcloud_sivae.config import RunConfig  # noqa: E402
from pointcloud_sivae.train import Trainer, select_device  # noqa: E402
from shapenet_prep import PrepareOptions, prepare_category  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def usable_backends(device) -> list[str]:
    out = []
    for b in BACKENDS:
        try:
            chamfer_distance(torch.rand(1, 8, 3, device=device), torch.rand(1, 8, 3, device=device), backend=b)
        except ImportError:
            continue
        out.append(b)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "shapenetpart")
    args = p.parse_args()
    device = select_device(args.device)
    if not (args.source / "02691156").is_dir():
        print(f"bench needs the ShapeNetPart airplanes at {args.source} (pass --source)", file=sys.stderr)
        return 2
    backends = usable_backends(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prepare_category(PrepareOptions(source=args.source, category="airplane", out=Path(tmp) / "data",
                                        num_points=args.num_points, progress=False, log=io.StringIO()))
        for backend in backends:
            cfg = RunConfig()
            cfg.data.data_root = str(Path(tmp) / "data")
            cfg.loss.chamfer_backend = backend
            cfg.train.device = str(device)
            cfg.train.out_dir = tmp
            cfg.train.run_name = f"bench-{backend}"
            trainer = Trainer.new_run(cfg)
            x = trainer.train_points[: args.batch_size]
            t = timed(lambda t=trainer, x=x: t.train_step(x, "soft-intro"), args.repeats, device)
            rows.append((f"Soft-IntroVAE step {len(x)}x{args.num_points}", backend, t, len(x)))
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.rand(args.batch_size, args.num_points, 3, device=device, generator=g) - 0.5
        b = torch.rand(args.batch_size, args.num_points, 3, device=device, generator=g) - 0.5
        for backend in backends:
            def cd_fwd_bwd(backend=backend):
                xa = a.clone().requires_grad_()
                chamfer_distance(xa, b, point_reduction="sum", backend=backend).sum().backward()
            t = timed(cd_fwd_bwd, max(10, args.repeats), device)
            rows.append((f"Chamfer fwd+bwd {args.batch_size}x{args.num_points}", backend, t, args.batch_size))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"\ndevice: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'what':<34} {'backend':<10} {'median s':>9} {'min s':>8} {'max s':>8} {'shapes/s':>9} {'runs':>5}")
    for what, backend, t, n in rows:
        med = statistics.median(t)
        print(f"{what:<34} {backend:<10} {med:>9.3f} {min(t):>8.3f} {max(t):>8.3f} {n / med:>9.1f} {len(t):>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
