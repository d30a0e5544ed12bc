"""Benchmark: the generation metric table (MMD, COV, 1-NNA with CD [and EMD], JSD) on real airplanes.

Measured side by side in one run:

* ours: ``pointcloud_sivae.metrics.evaluator.GenerationEvaluator`` (each matrix once, symmetric matrices
  as upper triangles, numba Chamfer kernel on CPU / torch on CUDA);
* naive: the public PointFlow scheme, ``_pairwise_EMD_CD_``: a loop over clouds,
  each against batches of the other set, Chamfer via three ``bmm`` and full N x M
  matrices, and full ``M_rs``, ``M_rr``, ``M_ss``. Its time is measured on
  ``--naive-rows`` rows and extrapolated linearly to the full matrices (stated);
* EMD per pair on ``--emd-pairs`` pairs, side by side: scipy exact assignment, the
  batched torch approxmatch (PointFlow's kernel in torch ops, one pair per call as
  on the CPU), and the numba approxmatch (one pair per call, 1 thread; and all pairs
  in one parallel call, per pair); approxmatch's relative deviation from exact;
* the EMD half of a ``--emd-table`` + ``--emd-table`` table (MMD, COV, 1-NNA under
  EMD: D_sr, D_ss and D_rr, every ordered pair as PointFlow computes them; on the CPU
  the self-matrices get both orders of a pair from one pass), timed end to end with
  the default backend.

Clouds: the 121 ShapeNetPart airplanes, each resampled to 2048 points with
different seeds to reach |S| + |R| clouds (real surfaces, distinct samples).

    python bench/bench_eval.py                      # CPU: CD table, 150 + 150
    python bench/bench_eval.py --device cuda --num 405 --emd approx
    python bench/bench_eval.py --emd-table 100      # CPU: the 100 + 100 EMD table (about 8 min)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import real_clouds  # noqa: E402
from bench.naive_step import reference_chamfer  # noqa: E402
from pointcloud_sivae.metrics.distances import pairwise_emd  # noqa: E402
from pointcloud_sivae.ops.emd import emd_approx, emd_exact  # noqa: E402
from pointcloud_sivae.metrics.evaluator import GenerationEvaluator  # noqa: E402
from pointcloud_sivae.utils.runtime import select_device  # noqa: E402


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


def emd_per_pair(sample, ref, pairs: int, device) -> list[tuple[str, float, str]]:
    """Rows (implementation, median ms per pair, deviation from exact) on pairs (sample[k], ref[k])."""
    from pointcloud_sivae.ops._emd_kernels import approxmatch_rows
    from pointcloud_sivae.ops.emd import POINTFLOW_LEVELS, kernel_clouds

    exact, t_exact = [], []
    for k in range(pairs):
        t = time.perf_counter()
        exact.append(emd_exact(ref[k], sample[k]))
        t_exact.append(time.perf_counter() - t)

    def deviation(values):
        rel = [(v - e) / e for v, e in zip(values, exact)]
        return f"{statistics.median(rel):+.1%}"

    rows = [("exact assignment (scipy linear_sum_assignment)", statistics.median(t_exact) * 1e3, "0")]
    t_torch, v_torch = [], []
    with torch.no_grad():
        for k in range(pairs):
            x, y = torch.from_numpy(ref[k : k + 1]).to(device), torch.from_numpy(sample[k : k + 1]).to(device)
            emd_approx(x, y)  # warm-up
            t = time.perf_counter()
            v_torch.append(emd_approx(x, y).item())
            t_torch.append(time.perf_counter() - t)
    rows.append((f"approxmatch, torch ({device.type}, 1 pair per call)", statistics.median(t_torch) * 1e3,
                 deviation(v_torch)))
    if device.type == "cpu":
        X1, X2 = kernel_clouds(ref[:pairs], 2), kernel_clouds(sample[:pairs], 2)
        levels = np.asarray(POINTFLOW_LEVELS, np.float32)
        idx = np.arange(pairs, dtype=np.int64)
        out = np.empty(pairs)
        approxmatch_rows(X1, X2, idx[:1], idx[:1], levels, out[:1])  # compile / load the cache
        t_one = []
        for k in range(pairs):
            t = time.perf_counter()
            approxmatch_rows(X1, X2, idx[k : k + 1], idx[k : k + 1], levels, out[k : k + 1])
            t_one.append(time.perf_counter() - t)
        rows.append(("approxmatch, numba (1 pair per call, 1 thread)", statistics.median(t_one) * 1e3,
                     deviation(out)))
        t_all = []
        for _ in range(3):
            t = time.perf_counter()
            approxmatch_rows(X1, X2, idx, idx, levels, out)
            t_all.append((time.perf_counter() - t) / pairs)
        rows.append((f"approxmatch, numba ({pairs} pairs per call, {numba.get_num_threads()} threads)",
                     statistics.median(t_all) * 1e3, deviation(out)))
        from pointcloud_sivae.ops._emd_kernels import approxmatch_both_rows

        both = kernel_clouds(np.concatenate([ref[:pairs], sample[:pairs]]), 2)
        fwd, rev = np.empty(pairs), np.empty(pairs)
        t_both = []
        for _ in range(3):  # pair k = (ref[k], sample[k]) of one set: both orders per call, as self-matrices run
            t = time.perf_counter()
            approxmatch_both_rows(both, idx, idx + pairs, levels, fwd, rev)
            t_both.append((time.perf_counter() - t) / (2 * pairs))
        rows.append((f"approxmatch, numba, both orders per call ({numba.get_num_threads()} threads; per order)",
                     statistics.median(t_both) * 1e3, deviation(fwd)))
        gap = max(abs(a - b) / b for a, b in zip(out, v_torch))
        print(f"numba vs torch approxmatch: largest relative difference {gap:.1e}", file=sys.stderr)
    return rows


def emd_table(sample, ref, n: int, device) -> dict:
    """Seconds for the three EMD matrices of an n + n table, default backend for ``device``."""
    from pointcloud_sivae.ops.emd import resolve_emd_backend

    S, R = sample[:n], ref[:n]
    pairwise_emd(S[:2], R[:2], device=device)  # warm-up
    t = time.perf_counter()
    pairwise_emd(S, R, device=device)
    pairwise_emd(S, device=device)
    pairwise_emd(R, device=device)
    return {"seconds": time.perf_counter() - t, "pairs": n * n + 2 * n * (n - 1),
            "backend": resolve_emd_backend("auto", device)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--num", type=int, default=None, help="|S| = |R| (default 150 on CPU, 405 on CUDA)")
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--emd", choices=("none", "approx"), default=None, help="default: none on CPU, approx on CUDA")
    p.add_argument("--naive-rows", type=int, default=4)
    p.add_argument("--naive-batch", type=int, default=32)
    p.add_argument("--emd-pairs", type=int, default=8, help="pairs timed per EMD implementation")
    p.add_argument("--emd-table", type=int, default=0,
                   help="also time the EMD half of an N + N table (0: skip; 100 is ModelNet40's test split)")
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

    emd_rows = emd_per_pair(sample, ref, args.emd_pairs, device)
    table = emd_table(sample, ref, args.emd_table, device) if args.emd_table else None

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
    print(f"\nEMD per {args.num_points}-point pair, {args.emd_pairs} real pairs (medians):")
    print(f"{'implementation':<52} {'ms/pair':>10} {'vs exact':>9}")
    for name_, ms, rel in emd_rows:
        print(f"{name_:<52} {ms:>10.1f} {rel:>9}")
    if table:
        print(f"\nEMD half of a {args.emd_table} + {args.emd_table} table (D_sr, D_ss, D_rr; "
              f"{table['pairs']} pairs, {table['backend']}): {table['seconds']:.1f} s, "
              f"{table['seconds'] / table['pairs'] * 1e3:.2f} ms/pair")
    print("metrics: " + ", ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
