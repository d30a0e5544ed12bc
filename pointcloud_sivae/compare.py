"""``python -m pointcloud_sivae.compare``: train soft-intro / vae / intro with one budget and seeds, score
each run on the test split (or val), tabulate (:mod:`pointcloud_sivae.experiments.compare`).

    python -m pointcloud_sivae.compare --data-root data/mn40_2048 --epochs 400 --seeds 0 1 2 \\
        --set num_points=256 --out runs/compare
"""

from __future__ import annotations

import sys
from pathlib import Path

from pointcloud_sivae.cli import (
    CHAMFER_CHOICES,
    add_device,
    add_emd,
    add_num_importance,
    add_progress,
    add_protocol,
    add_sampler,
    add_verbose,
    bounded_int,
    command_parser,
    run,
    seed_int,
)
from pointcloud_sivae.experiments.compare import run_compare

HELP = "train soft-intro / vae / intro with one budget and seeds, score each, tabulate"


def add_training_options(c) -> None:
    """The options that say how and where every run of ``compare`` and ``sweep`` is trained."""
    c.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2],
                   help="training seeds of every method and cell (default: 0 1 2)")
    c.add_argument("--epochs", type=bounded_int(1), required=True, help="training epochs of every run (the budget)")
    c.add_argument("--data-root", default="data/shapenet", help="prepared data root (default: data/shapenet)")
    c.add_argument("--category", default="airplane", help="category or ModelNet40 class (default: airplane)")
    c.add_argument("--config", help="JSON/TOML training config shared by every run")
    c.add_argument("--preset", help="training preset shared by every run (applied before --config and --set)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training config field for every run, e.g. --set beta_rec=640, or for one method's runs, "
                        "e.g. --set vae:beta_kl=2 (repeatable)")
    add_device(c)
    add_progress(c, False)
    c.add_argument("--jobs", type=bounded_int(1), default=1,
                   help="runs trained at once (worker processes, 1 thread each), >= 1 (default: 1)")
    add_verbose(c)


def add_compare_options(c) -> None:
    c.add_argument("--out", type=Path, required=True, help="output folder (runs, comparison.md/.json)")
    c.add_argument("--methods", nargs="+", default=["soft-intro", "vae", "intro"],
                   help="methods to train: soft-intro, vae, intro (default: all three)")
    add_training_options(c)
    c.add_argument("--checkpoint-choice", choices=("best", "last"), default="best",
                   help="best: lowest validation JSD (default); last: the final epoch")
    add_protocol(c)
    add_emd(c)
    add_num_importance(c, 16)
    c.add_argument("--score-chamfer-backend", default="auto", choices=CHAMFER_CHOICES,
                   help="Chamfer backend of the scoring (matrices, reconstruction, likelihood); training uses "
                        "--set chamfer_backend=... (default: auto)")
    c.add_argument("--split", choices=("test", "val"), default="test",
                   help="split every run is scored on (choose settings on val, score the chosen one on test once)")
    add_sampler(c)


def build_parser():
    return command_parser("python -m pointcloud_sivae.compare", HELP, add_compare_options)


def main(argv: list[str] | None = None) -> int:
    return run(run_compare, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
