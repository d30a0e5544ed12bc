"""``python -m pointcloud_sivae.sweep``: train a grid of settings x seeds, score each run on the val split,
tabulate and choose (:mod:`pointcloud_sivae.experiments.sweep`).

    python -m pointcloud_sivae.sweep --data-root data/mn40_2048 --epochs 400 --seeds 0 1 \\
        --cell "beta_neg=128" --cell "beta_neg=512" --set num_points=256 --jobs 2 --out runs/sweep
"""

from __future__ import annotations

import sys
from pathlib import Path

from pointcloud_sivae.cli import add_emd, add_num_importance, add_protocol, command_parser, run
from pointcloud_sivae.compare import add_training_options
from pointcloud_sivae.experiments.compare import COLUMNS
from pointcloud_sivae.experiments.sweep import run_sweep

HELP = "train a grid of settings x seeds, score each on the val split, tabulate"


def add_sweep_options(c) -> None:
    c.add_argument("--out", type=Path, required=True, help="output folder (cells/, sweep.md, sweep.json)")
    c.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a training config field and its values (repeatable; cells are the product)")
    c.add_argument("--cell", action="append", default=[], metavar="KEY=V[;KEY=V...]",
                   help="one cell given in full, e.g. --cell 'beta_rec=20;warmup_epochs=20' (repeatable; added to "
                        "the product of --grid; a value may hold commas, e.g. decoder_widths=256,512,1024)")
    c.add_argument("--methods", nargs="+", default=["soft-intro"],
                   help="methods trained in every cell: soft-intro, vae, intro (default: soft-intro)")
    add_training_options(c)
    c.add_argument("--checkpoint-choice", choices=("best", "last"), default="last",
                   help="last: the final epoch (default); best: lowest validation JSD")
    add_protocol(c, "none")
    add_emd(c, "none")
    add_num_importance(c, 0)
    c.add_argument("--select", choices=sorted(k for k in COLUMNS if k != "train-time"), default="score",
                   help="val metric that chooses the cell (default: score = COV-CD - |1-NNA-CD - 50 %%|); cells of "
                        "an introspective method whose runs do not all keep a positive kl-gap are not eligible")


def build_parser():
    return command_parser("python -m pointcloud_sivae.sweep", HELP, add_sweep_options)


def main(argv: list[str] | None = None) -> int:
    return run(run_sweep, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
