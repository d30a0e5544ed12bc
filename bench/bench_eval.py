"""Benchmark: the generation metric table (MMD, COV, 1-NNA with CD [and EMD], JSD) on real airplanes.

Measured side by side in one run:

* ours: ``eval.evaluate.GenerationEvaluator`` (each matrix once, symmetric matrices
  as upper triangles, numba Chamfer kernel on CPU / torch on CUDA);
* naive: the public PointFlow scheme, ``_pairwise_EMD_CD_``: a loop over clouds,
  each against batches of the other set, Chamfer via three ``bmm`` and full N x M
  matrices, and full ``M_rs``, ``M_rr``, ``M_ss``. Its time is measured on
  ``--naive-rows`` rows and extrapolated linearly to the full matrices (stated);
* approxmatch EMD against exact EMD (optimal assignment) on ``--emd-pairs`` pairs:
  relative deviation and time per pair.

Clouds: the 121 ShapeNetPart airplanes, each resampled to 2048 points with
different seeds to reach |S| + |R| clouds (real surfaces, distinct samples).

    python bench/bench_eval.py                      # CPU: CD table, 150 + 150
    python bench/bench_eval.py --device cuda --num 405 --emd approx
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import real_clouds  # noqa: E402
from bench.naive_step import reference_chamfer  # noqa: E402
from eval.distances import emd_approx, emd_exact  # noqa: E402
from eval.evaluate import GenerationEvaluator  # noqa: E402
from pointcloud_sivae.train import select_device  # noqa: E402


def naive_rows_time(sample: torch.Tensor, ref: torch.Tensor, rows: int, batch: int, device) -> float:
    """Seconds per pair of the naive loop, measured on ``rows`` rows of M_rs."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(rows):
            for s in range(0, len(ref), batch):
                r = ref[s : s + batch]
                reference_chamfer(sample[i : i + 1].expand(len(r), -1, -1).contiguous(), r, "mean")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (rows * len(ref))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--num", type=int, default=None, help="|S| = |R| (default 150 on CPU, 405 on CUDA)")
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--emd", choices=("none", "approx"), default=None, help="default: none on CPU, approx on CUDA")
    p.add_argument("--naive-rows", type=int, default=4)
    p.add_argument("--naive-batch", type=int, default=32)
    p.add_argument("--emd-pairs", type=int, default=6)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "shapenetpart")
    args = p.parse_args()
    device = select_device(args.device)
    n = args.num or (150 if device.type == "cpu" else 405)
    emd = args.emd or ("none" if device.type == "cpu" else "approx")
    if not (args.source / "02691156").is_dir():
        print(f"bench needs the ShapeNetPart airplanes at {args.source} (pass --source)", file=sys.stderr)
        return 2
    clouds = real_clouds(args.source, 2 * n, args.num_points)
    sample, ref = clouds[:n], clouds[n:]

    # warm the numba kernel cache (compilation is not evaluation time)
    GenerationEvaluator(ref[:2], {"method": "none"}, emd="none", device=device)(sample[:2])
    t0 = time.perf_counter()
    ev = GenerationEvaluator(ref, {"method": "none"}, emd=emd, device=device)
    metrics = ev(sample)
    ours = time.perf_counter() - t0

    s_t, r_t = torch.from_numpy(sample).to(device), torch.from_numpy(ref).to(device)
    naive_rows_time(s_t, r_t, 1, args.naive_batch, device)  # warm-up
    per_pair = naive_rows_time(s_t, r_t, args.naive_rows, args.naive_batch, device)
    naive_pairs = n * n * 3  # full M_rs, M_rr, M_ss
    naive_total = per_pair * naive_pairs
    ours_pairs = n * n + 2 * (n * (n - 1) // 2)

    rel, t_exact, t_approx = [], [], []
    for k in range(args.emd_pairs):
        a, b = sample[k], ref[k]
        t = time.perf_counter()
        ex = emd_exact(a, b)
        t_exact.append(time.perf_counter() - t)
        x, y = torch.from_numpy(a[None]).to(device), torch.from_numpy(b[None]).to(device)
        t = time.perf_counter()
        ap = emd_approx(x, y).item()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_approx.append(time.perf_counter() - t)
        rel.append((ap - ex) / ex)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\ndevice {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"|S| = |R| = {n}, {args.num_points} points, real ShapeNetPart airplanes")
    print(f"{'what':<52} {'seconds':>10} {'pairs':>8} {'ms/pair':>8}")
    print(f"{'ours: full table (' + ('CD+EMD' if emd != 'none' else 'CD') + ', JSD)':<52} {ours:>10.2f} "
          f"{ours_pairs * (2 if emd != 'none' else 1):>8} {ours / ours_pairs * 1e3:>8.3f}")
    for k, v in ev.timings.items():
        print(f"{'  of which ' + k:<52} {v:>10.2f}")
    print(f"{'naive PointFlow bmm CD (extrapolated from ' + str(args.naive_rows) + ' rows)':<52} "
          f"{naive_total:>10.2f} {naive_pairs:>8} {per_pair * 1e3:>8.3f}")
    print(f"{'speed-up, CD table (naive / ours)':<52} {naive_total / ours:>10.1f}x")
    print(f"\napproxmatch vs exact EMD on {args.emd_pairs} real pairs: relative deviation median "
          f"{statistics.median(rel):+.1%} (min {min(rel):+.1%}, max {max(rel):+.1%}); "
          f"median s/pair: exact {statistics.median(t_exact):.2f}, approx {statistics.median(t_approx):.3f}")
    print("metrics: " + ", ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
