"""Benchmark: Chamfer distance backends against this machine's arithmetic floor.

Measured side by side in one run, on real airplane clouds (ShapeNetPart, resampled):

* the matrix-multiply peak (float32 ``mm`` of 4096 x 4096, median GFLOP/s): the
  rate the arithmetic below could run at;
* training Chamfer (``pointcloud_sivae.ops.chamfer``: nearest-neighbour search by the
  backend, then exact distances by gather) forward and forward + backward on
  B x N x N, for each installed backend (torch, keops, pytorch3d), plus the
  reference's dense ``bmm`` formulation;
* the evaluation matrix (``eval.distances.pairwise_chamfer``, all pairs of P clouds)
  for each backend (numba, torch, keops).

**The floor.** A Chamfer distance must look at every (x, y) pair: B x N x M squared
distances at 8 flops each (3 subtractions, 3 multiplications, 2 additions; the
expanded form ``|x|^2 + |y|^2 - 2 x.y`` costs the same) and 2 comparisons (a
minimum in each direction). The table counts 8 flops per pair and reports GFLOP/s
and the fraction of the measured ``mm`` peak. Backends that search each direction
separately (KeOps, pytorch3d, torch chunks) do the 8 flops twice per pair; the count
does not credit them for it, so "% of peak" is the useful rate.

    python bench/bench_distances.py [--device cpu|cuda] [--batch 32] [--num-points 2048] [--pairs-clouds 40]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import matmul_peak, real_clouds, timed  # noqa: E402
from bench.naive_step import reference_chamfer  # noqa: E402
from pointcloud_sivae.metrics.distances import pairwise_chamfer  # noqa: E402
from pointcloud_sivae.ops.chamfer import BACKENDS, chamfer_distance  # noqa: E402
from pointcloud_sivae.utils.runtime import select_device  # noqa: E402

FLOPS_PER_PAIR = 8


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--pairs-clouds", type=int, default=40, help="P clouds for the all-pairs matrix")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "shapenetpart")
    args = p.parse_args()
    device = select_device(args.device)
    if not (args.source / "02691156").is_dir():
        print(f"needs the ShapeNetPart airplanes at {args.source} (pass --source)", file=sys.stderr)
        return 2
    clouds = real_clouds(args.source, max(2 * args.batch, args.pairs_clouds), args.num_points)
    x = torch.from_numpy(clouds[: args.batch]).to(device)
    y = torch.from_numpy(clouds[args.batch: 2 * args.batch]).to(device)
    peak = matmul_peak(device)
    rows = []
    pairs_train = args.batch * args.num_points * args.num_points

    for backend in BACKENDS + ("bmm (reference)",):
        if backend == "bmm (reference)":
            fwd = lambda: reference_chamfer(x, y)  # noqa: E731

            def fb():
                xa = x.clone().requires_grad_()
                reference_chamfer(xa, y).sum().backward()
        else:
            try:
                chamfer_distance(x[:1, :8], y[:1, :8], backend=backend)
            except ImportError as exc:
                rows.append((f"train CD {args.batch}x{args.num_points}^2", backend, None, None, str(exc).split(";")[0]))
                continue
            fwd = lambda b=backend: chamfer_distance(x, y, backend=b)  # noqa: E731

            def fb(b=backend):
                xa = x.clone().requires_grad_()
                chamfer_distance(xa, y, backend=b).sum().backward()
        for what, fn in (("forward", fwd), ("forward+backward", fb)):
            t = timed(fn, args.repeats, device)
            rows.append((f"train CD {what} {args.batch}x{args.num_points}^2", backend, t, pairs_train, ""))

    P = args.pairs_clouds
    A = clouds[:P]
    pairs_eval = P * (P - 1) // 2 * args.num_points * args.num_points  # upper triangle
    for backend in ("numba", "torch", "keops"):
        if backend == "numba" and device.type == "cuda":
            continue
        try:
            pairwise_chamfer(A[:2], backend=backend, device=device)
        except ImportError as exc:
            rows.append((f"eval all pairs of {P}", backend, None, None, str(exc).split(";")[0]))
            continue
        t = timed(lambda b=backend: pairwise_chamfer(A, backend=b, device=device), max(3, args.repeats // 2), device)
        rows.append((f"eval CD matrix, {P} clouds x{args.num_points}", backend, t, pairs_eval, ""))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    print(f"\ndevice: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"measured float32 mm peak: {peak:.1f} GFLOP/s; floor = {FLOPS_PER_PAIR} flops per (x, y) pair at that peak")
    print(f"{'what':<44} {'backend':<16} {'median s':>9} {'floor s':>8} {'GFLOP/s':>8} {'% peak':>7} {'runs':>5}")
    for what, backend, t, pairs, note in rows:
        if t is None:
            print(f"{what:<44} {backend:<16} {'—':>9}  not installed: {note}")
            continue
        med = statistics.median(t)
        flops = FLOPS_PER_PAIR * pairs
        floor = flops / (peak * 1e9)
        print(f"{what:<44} {backend:<16} {med:>9.4f} {floor:>8.4f} {flops / med / 1e9:>8.1f} "
              f"{100 * floor / med:>6.1f}% {len(t):>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
