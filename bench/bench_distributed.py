"""Benchmark: does multi-process training pay on this machine? One process against ``torchrun``.

Trains the same run (the main job's preset ``mn40-256``: ModelNet40 airplanes, 256 of 2048
points, bf16, batch 32) for ``--epochs`` Soft-IntroVAE epochs with 1 process and with
``torchrun --standalone --nproc_per_node=K`` (BatchNorm statistics per process, the default, and
of the global batch, ``--sync-batchnorm true``), in one run of this script, and prints a table: the
median epoch time of each (the first epoch, which pays for compilation and caches, left out), the
ratio, and whether either printed a deprecation warning. Each process gets ``cores / K`` threads
(:func:`pointcloud_sivae.training.distributed.share_cores`).

    python bench/bench_distributed.py --data-root data/mn40_2048 [--epochs 5] [--nproc 2]

The data must be prepared first (``bash scripts/train_airplanes.sh`` does it, or
``python -m shapenet_prep --format modelnet40 ... --num-points 2048 --normalization unit_sphere``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(data_root: str, out: Path, name: str, epochs: int, nproc: int, sync_bn: bool = False) -> tuple[list[float], str]:
    flags = ["--preset", "mn40-256", "--data-root", data_root, "--category", "airplane", "--epochs", str(epochs),
             "--val-every", "1000", "--vis-every", "1000", "--out-dir", str(out), "--run-name", name,
             "--progress", "false", "--sync-batchnorm", "true" if sync_bn else "false"]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [sys.executable])
    proc = subprocess.run(launcher + ["-m", "pointcloud_sivae.train", *flags], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    records = [json.loads(ln) for ln in (out / name / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch_time_s"] for r in records], proc.stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="data/mn40_2048", help="prepared ModelNet40 airplanes (2048 points)")
    p.add_argument("--epochs", type=int, default=5, help="Soft-IntroVAE epochs per run, >= 2 (default: 5)")
    p.add_argument("--nproc", type=int, default=2, help="processes of the torchrun run (default: 2)")
    args = p.parse_args()
    rows = [(1, "-", False), (args.nproc, "per process (default)", False), (args.nproc, "global (--sync-batchnorm)", True)]
    with tempfile.TemporaryDirectory() as tmp:
        timed = [run(args.data_root, Path(tmp), f"run{i}", args.epochs, n, sync) for i, (n, _, sync) in enumerate(rows)]
    m1 = statistics.median(timed[0][0][1:])
    cpu = platform.processor() or platform.machine()
    print(f"{os.cpu_count()} cores ({cpu}), {args.epochs} Soft-IntroVAE epochs of 14 steps, median of epochs 2..")
    print("| processes | BatchNorm statistics | median epoch s | epoch times s | vs 1 process | deprecation warnings |")
    print("|---|---|---|---|---|---|")
    for (n, bn, _), (times, err) in zip(rows, timed):
        print(f"| {n} | {bn} | {statistics.median(times[1:]):.2f} | {', '.join(f'{t:.2f}' for t in times)} | "
              f"{statistics.median(times[1:]) / m1:.2f}x | {'yes' if 'deprecated' in err else 'none'} |")
    print(f"\nratio of the default {args.nproc}-process run {statistics.median(timed[1][0][1:]) / m1:.2f} "
          "(target: within 1.3)")

if __name__ == "__main__":
    main()
