"""Side-by-side prior samples of several checkpoints, beside real shapes of a split (a docs figure).

    python scripts/figure_samples.py --out docs/samples_256.png --split test \\
        --run "soft-intro=runs/a" --run "vae=runs/b" [--num 8] [--seed 0]

Row 1: the first ``--num`` shapes of the split; then one row of prior samples (seed
``--seed``) per run, all in the evaluation frame (radius 0.5 for unit-sphere data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pointcloud_sivae.cli import bounded_int  # noqa: E402
from pointcloud_sivae.inference import Inference  # noqa: E402
from pointcloud_sivae.utils.render import render_grid, save_png  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, metavar="NAME=RUN",
                   help="row title and run folder (or .pt), repeatable")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split of the real row")
    p.add_argument("--num", type=bounded_int(1), default=8, help="clouds per row, >= 1 (default: 8)")
    p.add_argument("--seed", type=bounded_int(0), default=0, help="prior-sample seed, >= 0 (default: 0)")
    args = p.parse_args(argv)
    rows, titles = [], []
    for item in args.run:
        name, _, path = item.partition("=")
        inf = Inference(path, "cpu")
        if not rows:
            real = inf.split(args.split).points[: args.num].numpy()
            rows.append(inf.frame.to_evaluation(real))
            titles.append(f"real ({args.split})")
        rows.append(inf.frame.to_evaluation(inf.decode(inf.prior(args.num, args.seed))))
        titles.append(f"{name} samples")
    save_png(args.out, render_grid(rows, titles))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
