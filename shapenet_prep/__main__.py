"""``python -m shapenet_prep``: prepare a ShapeNet category for training and evaluation."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pointcloud_sivae.runs.checkpoint import error_detail
from pointcloud_sivae.cli import add_progress, add_verbose, bounded_float, bounded_int, seed_int
from pointcloud_sivae.data.normalization import NORMALIZATIONS
from shapenet_prep.common import DEFAULT_NUM_POINTS
from shapenet_prep.errors import MalformedShapeError
from shapenet_prep.prepare import FORMATS, SAMPLING_METHODS, PrepareOptions, prepare_category


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shapenet_prep",
        description="Prepare a ShapeNet category: fixed-size clouds, seeded split, normalisation, manifest.",
    )
    p.add_argument("--format", choices=sorted(FORMATS), default="shapenetpart",
                   help="mesh: ShapeNetCore v1/v2 meshes; shapenetpart: .txt; pc15k: PointFlow .npy; "
                        "l3dp: latent_3d_points .ply; onet: Occupancy Networks pointcloud.npz; hdf5: data/label .h5 "
                        "(ModelNet40's modelnet40_ply_hdf5_2048 included); modelnet40: PointNet++ "
                        "modelnet40_normal_resampled .txt")
    p.add_argument("--source", type=Path, required=True,
                   help="release root holding one folder per synset (modelnet40: one folder per class; "
                        "hdf5: a .h5 file or a folder of them)")
    p.add_argument("--category", required=True, nargs="+",
                   help="category names or synset ids, e.g. airplane 03001627 (modelnet40, or hdf5 with a "
                        "shape_names.txt: class names, e.g. airplane night_stand)")
    p.add_argument("--out", type=Path, default=Path("data/shapenet"), help="prepared data root")
    p.add_argument("--num-points", type=bounded_int(1), default=DEFAULT_NUM_POINTS,
                   help=f"points per cloud, >= 1 (uniform random subset) (default: {DEFAULT_NUM_POINTS})")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="none",
                   help="none (source units), unit_sphere or bbox (per shape), global (training-set mean and "
                        "one std, PointFlow) (default: none)")
    p.add_argument("--split-seed", type=seed_int, default=0,
                   help="seed of the split and of each shape's point subset, >= 0 (default: 0)")
    p.add_argument("--split-fractions", type=bounded_float(0, 1), nargs=3, default=(0.7, 0.15, 0.15),
                   metavar=("TRAIN", "VAL", "TEST"),
                   help="fractions in [0, 1] of a seeded split (summing to 1), used where the release has no split "
                        "(default: 0.7 0.15 0.15)")
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="malformed source file: report and skip it, or stop with nothing written")
    p.add_argument("--sampling", choices=SAMPLING_METHODS, default="uniform",
                   help="meshes: area-weighted uniform surface samples, or Poisson-disk")
    p.add_argument("--normals", action="store_true", help="also store per-point normals (mesh, onet, modelnet40)")
    p.add_argument("--h5-label", type=bounded_int(0), help="hdf5: keep only shapes with this label, >= 0")
    p.add_argument("--workers", type=bounded_int(1), default=max(1, (os.cpu_count() or 1)),
                   help="parallel worker processes, >= 1 (default: the number of CPUs)")
    p.add_argument("--retry-failed", action="store_true", help="retry shapes that failed in an earlier run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared category")
    add_progress(p, True)
    add_verbose(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for category in args.category:
            prepare_category(PrepareOptions(
                source=args.source, category=category, out=args.out, format=args.format,
                num_points=args.num_points, normalization=args.normalization, split_seed=args.split_seed,
                split_fractions=tuple(args.split_fractions), on_error=args.on_error, overwrite=args.overwrite,
                sampling=args.sampling, normals=args.normals, h5_label=args.h5_label, workers=args.workers,
                retry_failed=args.retry_failed, progress=args.progress,
            ))
    except (ValueError, FileNotFoundError, FileExistsError, MalformedShapeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.verbose and error_detail(exc):
            print(error_detail(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # --out under a file, no permission, a full disk: the path and the cause
        print(f"error: cannot write {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
