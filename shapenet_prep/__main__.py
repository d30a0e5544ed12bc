"""``python -m shapenet_prep``: prepare a ShapeNet category for training and evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pointcloud_sivae.normalization import NORMALIZATIONS
from shapenet_prep.errors import MalformedShapeError
from shapenet_prep.prepare import FORMATS, PrepareOptions, prepare_category


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shapenet_prep",
        description="Prepare a ShapeNet category: fixed-size clouds, seeded split, normalisation, manifest.",
    )
    p.add_argument("--format", choices=sorted(FORMATS), default="shapenetpart", help="source release format")
    p.add_argument("--source", type=Path, required=True, help="release root holding one folder per synset")
    p.add_argument("--category", required=True, help="category name or synset id, e.g. airplane or 02691156")
    p.add_argument("--out", type=Path, default=Path("data/shapenet"), help="prepared data root")
    p.add_argument("--num-points", type=int, default=2048, help="points per cloud (uniform random subset)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="none")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="malformed source file: report and skip it, or stop with nothing written")
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared category")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = PrepareOptions(
        source=args.source, category=args.category, out=args.out, format=args.format,
        num_points=args.num_points, normalization=args.normalization, split_seed=args.split_seed,
        split_fractions=tuple(args.split), on_error=args.on_error, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    try:
        prepare_category(opts)
    except (ValueError, FileNotFoundError, FileExistsError, MalformedShapeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
