"""Benchmark: preprocessing throughput on the real data (meshes per second per worker).

The two real ShapeNetCore.v2 meshes are copied into a ShapeNetCore-style folder
(``--copies`` shapes in all, alternating the two) and prepared with 1 and with
``--workers`` processes, from a cold cache each time; the 20 ONet benches are
timed the same way, and so are the 626 ModelNet40 airplanes (``.txt``). Prints a table of shapes/s and shapes/s per worker.

    python bench/bench_prep.py [--copies 60] [--workers 2] [--num-points 2048]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shapenet_prep import PrepareOptions, prepare_category  # noqa: E402


def timed_prepare(**kw) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        prepare_category(PrepareOptions(out=Path(out), progress=False, log=io.StringIO(), **kw))
        return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, default=60)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = p.parse_args()
    if not (args.data / "meshes").is_dir():
        print(f"bench needs the real meshes at {args.data / 'meshes'} (pass --data)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ShapeNetCore" / "02691156"
        for k in range(args.copies):
            d = root / f"m{k:04d}" / "models"
            d.mkdir(parents=True)
            shutil.copy(args.data / "meshes" / f"{'ab'[k % 2]}_model_normalized.obj", d / "model_normalized.obj")
        for sampling in ("uniform", "poisson"):
            for workers in sorted({1, args.workers}):
                dt = timed_prepare(source=root.parent, category="airplane", format="mesh", num_points=args.num_points,
                                   sampling=sampling, workers=workers)
                rows.append((f"meshes ({sampling})", workers, args.copies, dt))
        if (args.data / "onet").is_dir():
            for workers in sorted({1, args.workers}):
                dt = timed_prepare(source=args.data / "onet", category="bench", format="onet",
                                   num_points=args.num_points, workers=workers)
                rows.append(("ONet pointcloud.npz", workers, 20, dt))
        mn40 = args.data / "modelnet40" / "modelnet40_normal_resampled"
        if (mn40 / "airplane").is_dir():
            count = len(list((mn40 / "airplane").glob("airplane_*.txt")))
            for workers in sorted({1, args.workers}):
                dt = timed_prepare(source=mn40, category="airplane", format="modelnet40",
                                   num_points=args.num_points, workers=workers)
                rows.append(("ModelNet40 .txt", workers, count, dt))
    print(f"\n{os.cpu_count()} CPUs; {args.num_points} points per shape; cold cache each run")
    print(f"{'source':<22} {'workers':>7} {'shapes':>7} {'seconds':>8} {'shapes/s':>9} {'per worker':>10}")
    for name, w, n, dt in rows:
        print(f"{name:<22} {w:>7} {n:>7} {dt:>8.2f} {n / dt:>9.1f} {n / dt / w:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
