"""``python -m pointcloud_sivae.interpolate``: decode a path in latent space between two shapes.

    python -m pointcloud_sivae.interpolate --checkpoint runs/<run> --from <id|file|prior:SEED> \\
        --to <id|file|prior:SEED> --steps 8 --path slerp --out interp/

Endpoints: a dataset id (``<category>:<id>`` for a model of several categories, e.g.
``--from airplane:<id> --to car:<id>``, the authors' demo) or a file is encoded to its posterior
mean; ``prior:SEED`` is a latent drawn from the prior with that seed. Writes ``clouds.npz``
(``interpolation`` (K, N, 3), ``t``), ``interpolation_<k>.ply``, ``meta.json``,
and (headless open3d, unless ``--no-render``) ``strip.png`` (one row), ``grid.png`` (rows of 4 or
5, readable at a web page's width) and ``interpolation.gif``.
Open the result with ``python -m pointcloud_sivae.view interp/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from pointcloud_sivae.cli import base_parser, bounded_int, run, seed_int
from pointcloud_sivae.inference import Inference, write_clouds
from pointcloud_sivae.models.latent import PATHS, interpolate
from pointcloud_sivae.utils.render import render_frames, save_gif, save_png, strip, tile


def endpoint(inf: Inference, spec: str, resample: bool) -> tuple[str, torch.Tensor]:
    """Latent (Z,) of an endpoint spec: ``prior:SEED``, a dataset id or a file."""
    if spec.startswith("prior:"):
        try:
            seed = seed_int(spec.split(":", 1)[1])
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{spec!r}: expected prior:<seed>, a seed {exc}") from None
        return spec, inf.prior(1, seed)[0]
    label, pts = inf.shape(spec, resample=resample)
    return label, inf.encode(pts[None])[0]


def run_interpolation(args) -> None:
    inf = Inference(args.checkpoint, args.device, args.data_root)
    (a_label, z0), (b_label, z1) = endpoint(inf, args.source, args.resample), endpoint(inf, args.target, args.resample)
    z = interpolate(z0, z1, args.steps, args.path)
    clouds = inf.frame.to_evaluation(inf.decode(z))
    t = np.linspace(0.0, 1.0, args.steps)
    out = Path(args.out)
    write_clouds(out, {"interpolation": clouds}, [f"{k:02d}" for k in range(args.steps)], {
        "kind": "interpolation", "checkpoint": str(inf.checkpoint), "epoch": inf.state["epoch"],
        "from": a_label, "to": b_label, "path": args.path, "steps": args.steps, "t": t.tolist(),
        "endpoints": "posterior means of shapes; prior:SEED latents as drawn", "normalization": inf.normalization})
    np.savez(out / "latents.npz", z=z.cpu().numpy(), t=t)
    if not args.no_render:
        frames = render_frames(clouds)
        save_png(out / "strip.png", strip(frames))
        save_png(out / "grid.png", tile(frames, per_row=5 if len(frames) % 5 == 0 else 4))  # readable at page width
        save_gif(out / "interpolation.gif", frames)
    print(f"wrote a {args.steps}-step {args.path} interpolation {a_label} -> {b_label} to {out}", file=sys.stderr)


def build_parser():
    p = base_parser("python -m pointcloud_sivae.interpolate", "Interpolate between two shapes in latent space.")
    p.add_argument("--from", dest="source", required=True,
                   help="dataset id (any split; CATEGORY:ID for a model of several categories), point-cloud file or "
                        "prior:SEED")
    p.add_argument("--to", dest="target", required=True, help="as --from, e.g. car:<id> from airplane:<id>")
    p.add_argument("--steps", type=bounded_int(2), default=8, help="clouds along the path, ends included, >= 2 "
                                                                  "(default: 8)")
    p.add_argument("--path", choices=PATHS, default="slerp",
                   help="latent path between the posterior means (default: slerp)")
    p.add_argument("--resample", action="store_true", help="subsample files with more points than the model's N")
    p.add_argument("--no-render", action="store_true", help="skip strip.png and the GIF (no open3d needed)")
    return p


def main(argv=None) -> int:
    return run(run_interpolation, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
