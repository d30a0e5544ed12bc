"""``python -m pointcloud_sivae.reconstruct``: reconstruct shapes of a prepared split or files.

    python -m pointcloud_sivae.reconstruct --checkpoint runs/<run> --split test --limit 8 --out rec/
    python -m pointcloud_sivae.reconstruct --checkpoint runs/<run> --files a.ply b.ply --out rec/

Reconstruction = decoder(posterior mean). Writes ``clouds.npz`` (``input``,
``reconstruction``), PLY files, ``meta.json`` (with each shape's Chamfer distance)
and, unless ``--no-render``, ``pairs.png`` (input beside reconstruction).

``--refine-steps K`` also decodes the best latent that K Adam steps on z find for each shape, the
decoder fixed (``refined`` in ``clouds.npz``, its distances in ``meta.json``): what is left of the
reconstruction error then is the decoder's, the rest is the encoder's amortisation gap
(:func:`~pointcloud_sivae.models.latent.refine_latents`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from pointcloud_sivae.cli import SPLITS, add_category, add_chamfer_backend, base_parser, bounded_float, bounded_int, run
from pointcloud_sivae.models.latent import refine_latents
from pointcloud_sivae.ops.chamfer import Chamfer, resolve_backend
from pointcloud_sivae.metrics.distances import paired_chamfer
from pointcloud_sivae.inference import Inference, write_clouds
from pointcloud_sivae.utils.render import ROLE_COLORS, HeadlessRenderer, save_png

def reconstruct(args) -> None:
    inf = Inference(args.checkpoint, args.device, args.data_root)
    if args.files:
        labels, shapes = zip(*(inf.shape(f, resample=args.resample) for f in args.files))
        model_in = np.stack(shapes)
    else:
        split = inf.split(args.split, category=args.category).nonempty()
        ids = args.ids or split.ids[: args.limit]
        missing = [i for i in ids if i not in split.ids]
        if missing:
            raise ValueError(f"ids not in the {args.split} split: {missing[:5]} (see the manifest's splits)")
        labels = ids
        model_in = split.points[[split.ids.index(i) for i in ids]].numpy()
    mu = inf.encode(model_in)
    inputs, recs = inf.frame.to_evaluation(model_in), inf.frame.to_evaluation(inf.decode(mu))
    cd = paired_chamfer(inputs, recs, backend=args.chamfer_backend, device=inf.device)
    units = "squared L2, mean over points, evaluation frame"
    backend = resolve_backend(args.chamfer_backend, inf.device, use="matrix")
    clouds = {"input": inputs, "reconstruction": recs}
    meta = {"kind": "reconstruction", "checkpoint": str(inf.checkpoint), "epoch": inf.state["epoch"],
            "shapes": list(labels), "reconstruction": "decoder(posterior mean)",
            "chamfer_distance": {"values": cd.tolist(), "units": units, "backend": backend},
            "normalization": inf.normalization}
    if args.refine_steps:
        target = torch.from_numpy(np.asarray(model_in, np.float32)).to(inf.device)
        z, _ = refine_latents(inf.model.decode, target, mu, Chamfer(args.chamfer_backend, inf.device),
                              steps=args.refine_steps, lr=args.refine_lr)
        clouds["refined"] = inf.frame.to_evaluation(inf.decode(z))
        cd_refined = paired_chamfer(inputs, clouds["refined"], backend=args.chamfer_backend, device=inf.device)
        meta["refined"] = {
            "reconstruction": f"decoder(best latent of {args.refine_steps} Adam steps on z from the posterior mean, "
                              f"lr {args.refine_lr}); the rest of the error is the decoder's, the difference the "
                              "encoder's amortisation gap (Cremer et al. 2018)",
            "chamfer_distance": {"values": cd_refined.tolist(), "units": units, "backend": backend}}
    out = Path(args.out)
    names = [f"{k:03d}" for k in range(len(labels))]
    write_clouds(out, clouds, names, meta)
    if not args.no_render:
        with HeadlessRenderer(width=360) as r:  # each cloud alone, the same camera: pairs seen from one direction
            rows = [r.render_row([a, b], [ROLE_COLORS["real"], ROLE_COLORS["reconstruction"]])
                    for a, b in zip(inputs[:6], recs[:6])]
        save_png(out / "pairs.png", np.concatenate(rows, axis=0))
    refined = f", {cd_refined.mean():.4g} with refined latents" if args.refine_steps else ""
    print(f"reconstructed {len(labels)} shapes into {out} (mean Chamfer distance {cd.mean():.4g}{refined})",
          file=sys.stderr)


def build_parser():
    p = base_parser("python -m pointcloud_sivae.reconstruct", "Reconstruct shapes with a trained checkpoint.")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="split whose shapes are reconstructed (default: test)")
    add_category(p, "reconstruct that category's shapes of --split")
    p.add_argument("--ids", nargs="+", help="model ids in the split (default: the first --limit)")
    p.add_argument("--limit", type=bounded_int(1), default=8, help="shapes to reconstruct without --ids, >= 1 "
                                                                  "(default: 8)")
    p.add_argument("--files", nargs="+", help="point-cloud files (.ply .npy .xyz .txt) in source units")
    p.add_argument("--resample", action="store_true", help="subsample files with more points than the model's N")
    p.add_argument("--refine-steps", type=bounded_int(0), default=0,
                   help="also decode each shape's best latent after this many Adam steps on z with the decoder "
                        "fixed, started at the posterior mean (the encoder's amortisation gap), >= 0 (default: 0)")
    p.add_argument("--refine-lr", type=bounded_float(0, open_low=True), default=1e-2,
                   help="Adam learning rate of --refine-steps, in latent units, > 0 (default: 0.01)")
    p.add_argument("--no-render", action="store_true", help="skip pairs.png (no open3d needed)")
    add_chamfer_backend(p, "the per-shape Chamfer distance")
    return p


def main(argv=None) -> int:
    return run(reconstruct, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
