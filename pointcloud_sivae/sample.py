"""``python -m pointcloud_sivae.sample``: draw clouds from a trained checkpoint (its prior, at ``--temperature``, or a ``--sampler`` density).

    python -m pointcloud_sivae.sample --checkpoint runs/<run> -n 16 --seed 0 --out samples/

Writes ``clouds.npz`` (``sample`` (n, N, 3), evaluation frame), ``sample_<k>.ply``,
``meta.json`` and, unless ``--no-render``, ``samples.png`` (headless open3d).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pointcloud_sivae.cli import add_category, add_sampler, base_parser, bounded_int, run, seed_int
from pointcloud_sivae.inference import Inference, write_clouds
from pointcloud_sivae.models.latent_density import Sampler
from pointcloud_sivae.utils.render import ROLE_COLORS, HeadlessRenderer, save_png, tile


def sample(args) -> None:
    inf = Inference(args.checkpoint, args.device, args.data_root)
    if args.num < 1:
        raise ValueError(f"-n must be positive, got {args.num}")
    sampler = Sampler.of(args)
    clouds = inf.frame.to_evaluation(inf.decode(inf.latents(args.num, args.seed, sampler, args.category)))
    names = [f"{k:03d}" for k in range(args.num)]
    out = Path(args.out)
    write_clouds(out, {"sample": clouds}, names, {
        "kind": "sample", "checkpoint": str(inf.checkpoint), "epoch": inf.state["epoch"], "seed": args.seed,
        "category": args.category and inf.category_key(args.category) or inf.config["data"]["category"],
        **sampler.record(),
        "prior_std": inf.model.prior_std, "num_points": inf.num_points, "frame": "output (evaluation) frame",
        "normalization": inf.normalization})
    if not args.no_render:
        with HeadlessRenderer() as r:
            save_png(out / "samples.png", tile([r.render([c], [ROLE_COLORS["generated"]]) for c in clouds[:8]]))
    print(f"wrote {args.num} samples to {out}", file=sys.stderr)


def build_parser():
    p = base_parser("python -m pointcloud_sivae.sample", "Draw clouds from a trained checkpoint: its prior, or an "
                    "ex-post Gaussian mixture of its training posterior means.")
    p.add_argument("-n", "--num", type=bounded_int(1), default=16, help="clouds to draw, >= 1 (default: 16)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the samples, >= 0 (default: 0)")
    add_sampler(p)
    add_category(p, "draw that category's shapes, from the --sampler mixture fitted to its training posteriors")
    p.add_argument("--no-render", action="store_true", help="skip the PNG (no open3d needed)")
    return p


def main(argv=None) -> int:
    return run(sample, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
