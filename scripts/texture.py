"""Where a model's point texture comes from, and how close a reconstruction can get at N points.

For each run folder: the point spacing (mean and coefficient of variation,
:func:`pointcloud_sivae.metrics.generation.point_spacing`) of the val clouds, of the run's
reconstructions of them (posterior means) and of as many prior samples (seed 1). Then, once, the
sampling floor of ``rec/nn-other``: the Chamfer distance from each val cloud's fixed N-point subset
(the one validation uses) to an independent random N-point subset, and to a farthest-point
N-point subset, of the same prepared cloud, over the mean distance of the fixed subsets to the
nearest other val shape (the quantity of ``val_nn_other_cd``). A reconstruction that recovered the
shape exactly but placed its points as a random surface sample would score the first ratio.

Usage (figures in docs/results.md, issue 23)::

    .venv/bin/python scripts/texture.py runs/<run> [runs/<run> ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pointcloud_sivae.data.prepared import fixed_subsets, load_split
from pointcloud_sivae.inference import Inference
from pointcloud_sivae.metrics.distances import pairwise_chamfer
from pointcloud_sivae.metrics.generation import nearest_other, point_spacing
from pointcloud_sivae.ops.chamfer import chamfer_distance


def farthest_points(cloud: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` points of a (P, 3) cloud by farthest-point sampling from a seeded random start."""
    chosen = [int(np.random.default_rng(seed).integers(len(cloud)))]
    dist = np.full(len(cloud), np.inf)
    for _ in range(k - 1):
        dist = np.minimum(dist, ((cloud - cloud[chosen[-1]]) ** 2).sum(1))
        chosen.append(int(dist.argmax()))
    return cloud[chosen]


def show(name: str, s: dict[str, float]) -> str:
    return f"{name} {1e3 * s['spacing']:.1f}e-3 / cv {s['spacing_cv']:.2f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (their checkpoints/last.pt)")
    args = ap.parse_args(argv)
    for run in args.runs:
        inf = Inference(Path(run) / "checkpoints" / "last.pt", "cpu")
        val = inf.split("val").points.numpy()
        rec = inf.decode(inf.encode(val))
        samples = inf.decode(inf.prior(len(val), 1))
        print(f"{run}: " + "; ".join(show(n, point_spacing(c)) for n, c in
                                      (("val", val), ("reconstructions", rec), ("samples", samples))))
    # the floor, on the last run's data and point count
    fixed = torch.from_numpy(val)
    dense = load_split(inf.data_root, inf.config["data"]["category"], "val")
    n = fixed.shape[1]
    nn_other = nearest_other(pairwise_chamfer(fixed))  # as validation computes val_nn_other_cd
    # another seed of the same subset rule: an independent random subset of every cloud
    random_subset = fixed_subsets(dense.points, dense.ids, n, inf.config["data"].get("subset_seed", 0) + 1)
    even = torch.from_numpy(np.stack([farthest_points(c, n) for c in dense.points.numpy()]))
    for name, other in (("random", random_subset), ("farthest-point", even)):
        cd = float(chamfer_distance(fixed, other).mean())
        print(f"floor: CD(fixed subset, {name} {n}-point subset of the same {dense.points.shape[1]}-point cloud) "
              f"{cd:.3e} / nn-other {nn_other:.3e} = {cd / nn_other:.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
