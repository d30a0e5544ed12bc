"""Evaluations of a trained model on a prepared split, and of two sets of clouds given as files.

* ``generation``: MMD, COV and 1-NNA (Chamfer distance, EMD), JSD, the diversity ratio and the copying
  statistics (:mod:`pointcloud_sivae.metrics.novelty`: new shapes, typical shapes or copies of the
  training split) of generated samples (prior, or an ex-post mixture) against a split, over sample seeds;
* ``reconstruction``: Chamfer distance and EMD between each shape of a split and the decoding of
  its posterior mean;
* ``sets``: the generation table of two files of clouds.

The metrics are :mod:`pointcloud_sivae.metrics`; each command prints a table and writes a JSON
file that states the protocol, normalisation, |S|, |R|, points per cloud, seeds and distance
implementations beside the numbers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from eval.tables import format_table, result_header
from pointcloud_sivae.inference import Inference
from pointcloud_sivae.metrics.evaluator import DISPLAY, GenerationEvaluator, reconstruction_metrics, summarize
from pointcloud_sivae.metrics.novelty import COPYING_TEXT
from pointcloud_sivae.models.latent_density import Sampler
from pointcloud_sivae.runs.checkpoint import run_dir_of
from pointcloud_sivae.utils.arrays import ArrayFileError, check_clouds, load_arrays
from pointcloud_sivae.utils.runtime import select_device, write_json


def read_clouds(path: Path) -> np.ndarray:
    """(M, N, 3) float32 clouds from a .npy array or a .npz holding ``points``, checked.

    Raises:
        ValueError: a missing, empty, truncated or foreign file, no ``points`` array, another shape,
            or a NaN or infinite coordinate (the first one named), each naming the file.
    """
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file")
    arrays = load_arrays(path, path.suffix + " file")
    if isinstance(arrays, dict):
        if "points" not in arrays:
            raise ArrayFileError(path, f"no 'points' array (found {sorted(arrays)})")
        arrays = arrays["points"]
    return check_clouds(arrays, path)


def _checkpoint_context(args):
    """The model of a checkpoint (``Inference``), the split to score and the run folder."""
    inf = Inference(args.checkpoint, args.device, args.data_root)
    return inf, inf.split(args.split, category=getattr(args, "category", None)).nonempty(), run_dir_of(inf.checkpoint)


def report_copying(summary: dict, split: str, hint: str = "the run's training split holds no shape") -> None:
    """One line under a generation table that reads the copying statistics (or says why they are absent)."""
    if "train-distance-ratio" not in summary:
        print(f"copying statistics: not computed, no training shapes to compare the samples with ({hint})")
        return
    ratio, share, nn = (summary[k]["mean"] for k in ("train-distance-ratio", "copy-share", "nn-train-ratio"))
    print(f"copying: the samples' median distance to the nearest training shape is {ratio:.2f} x that of the {split} "
          f"shapes, {share:.0%} of them are nearer a training shape than the nearest 10 % of {split} shapes are "
          f"(copies: far above 10 %), nn-train-ratio {nn:.2f} (copies: far below 1; {split} shapes: 1)")


def report_by_category(per_seed: list[dict[str, dict]], split: str) -> dict[str, dict]:
    """Print the union's table split by category (MMD and COV restricted to each category's references,
    and the share of the samples nearest each, against the category's share of the references), mean
    over seeds; returns it as ``{category: {metric: {"mean", "std"}}}``."""
    names = list(per_seed[0])
    table = {name: summarize([seed[name] for seed in per_seed]) for name in names}
    metrics = [k for k in table[names[0]] if k not in ("reference-share",)]
    print(f"by category ({split} references of each; samples classified by their nearest {split} shape, Chamfer):")
    print(f"  {'category':<14}" + "".join(f"{k:>16}" for k in metrics) + f"{'reference-share':>17}")
    for name in names:
        row = table[name]
        cells = [f"{row[k]['mean'] * DISPLAY.get(k, (100.0, ''))[0]:>13.2f} {DISPLAY.get(k, (100.0, '%'))[1] or '%':<2}"
                 for k in metrics]
        print(f"  {name:<14}" + "".join(cells) + f"{row['reference-share']['mean'] * 100:>15.1f} %")
    return table


def _report_jsd_outside(ev: GenerationEvaluator) -> None:
    """One line under the table when points lay outside the JSD grid's ball (the JSON keeps the fractions)."""
    parts = [f"{frac:.2%} of the {name} points" for name, frac in ev.jsd_outside.items() if frac > 0]
    if parts:
        print(f"JSD: {' and '.join(parts)} lie outside the grid's ball of radius 0.5 and count at their nearest "
              "cell (distance_implementations.jsd.outside_ball_fraction in the JSON)")


def run_generation(args) -> dict:
    t0 = time.perf_counter()
    inf, split, run_dir = _checkpoint_context(args)
    ref = split.points.numpy()
    n_s = args.num_samples or len(ref)
    category = inf.category_key(args.category)  # None: every category of the model
    ev = GenerationEvaluator(ref, split.manifest["normalization"], protocol=args.protocol, emd=args.emd,
                             chamfer_backend=args.chamfer_backend, emd_backend=args.emd_backend, device=inf.device,
                             progress=args.progress, jsd_allow_outside=args.jsd_allow_outside,
                             train=inf.training_clouds(category), reference_labels=split.labels.numpy(),
                             categories=split.categories)
    sampler, per_seed, by_category = Sampler.of(args), [], []
    for seed in args.seeds:
        metrics = ev(inf.decode(inf.latents(n_s, seed, sampler, category)))
        per_seed.append(metrics)
        by_category.append(ev.last_by_category)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.5g}" for k, v in metrics.items()), file=sys.stderr)
    summary = summarize(per_seed)
    named = category or "+".join(inf.categories)
    print(format_table(summary, f"generation: {named} {args.split}, "
                                f"protocol {args.protocol}, |S|={n_s}, |R|={len(ref)}, seeds {args.seeds}, "
                                f"sampler {sampler.label}"))
    report_copying(summary, args.split)
    _report_jsd_outside(ev)
    per_category = report_by_category(by_category, args.split) if split.categories and len(split.categories) > 1 else None
    result = {**result_header(args, t0), "kind": "generation", "checkpoint": str(inf.checkpoint),
              "epoch": inf.state["epoch"], "category": category or inf.config["data"]["category"],
              "split": args.split, **({"by_category": per_category} if per_category else {}),
              "data_normalization": split.manifest["normalization"], "num_samples": n_s,
              "num_reference": len(ref), "num_points": int(ref.shape[1]), "point_subset": split.subset,
              "seeds": args.seeds,
              **sampler.record(),
              "prior_std": inf.model.prior_std, "distance_implementations": ev.distance_implementations(),
              "num_train": 0 if ev.train is None else len(ev.train), "copying": COPYING_TEXT,
              "metrics": summary, "per_seed": per_seed, "timings": ev.timings}
    result["run_time_s"] = round(time.perf_counter() - t0, 3)
    write_json(result, args.out or run_dir / "eval" / f"generation_{args.split}_{args.protocol}{sampler.file_tag}.json")
    return result


def run_reconstruction(args) -> dict:
    t0 = time.perf_counter()
    inf, split, run_dir = _checkpoint_context(args)
    rec = inf.decode(inf.encode(split.points.numpy()))
    res = reconstruction_metrics(split.points.numpy(), rec, split.manifest["normalization"], protocol=args.protocol,
                                 emd=args.emd, chamfer_backend=args.chamfer_backend, emd_backend=args.emd_backend,
                                 device=inf.device)
    print(format_table({k: res[k] for k in ("CD", "EMD") if k in res},
                       f"reconstruction: {args.split}, protocol {args.protocol}, {len(rec)} shapes "
                       "(posterior means), mean ± std over shapes"))
    result = {**result_header(args, t0), "kind": "reconstruction", "checkpoint": str(inf.checkpoint),
              "epoch": inf.state["epoch"],
              "split": args.split, "data_normalization": split.manifest["normalization"],
              "num_shapes": len(rec), "num_points": int(rec.shape[1]), "point_subset": split.subset,
              "ids": split.ids,
              "reconstruction": "decoder(posterior mean)", **res}
    write_json(result, args.out or run_dir / "eval" / f"reconstruction_{args.split}_{args.protocol}.json")
    return result


def run_sets(args) -> dict:
    t0 = time.perf_counter()
    sample, ref = read_clouds(args.sample), read_clouds(args.reference)
    train = read_clouds(args.train) if args.train else None
    if train is not None and train.shape[1] != ref.shape[1]:
        raise ValueError(f"mismatched point counts: --train {args.train} holds {train.shape[1]}-point clouds, "
                         f"{args.reference} {ref.shape[1]}-point clouds; subsample the larger set first")
    if sample.shape[1] != ref.shape[1]:
        raise ValueError(f"mismatched point counts: {args.sample} holds {sample.shape[1]}-point clouds, "
                         f"{args.reference} {ref.shape[1]}-point clouds; the metrics compare sets of equal-size "
                         "clouds (EMD needs it, and Chamfer distances at different counts differ by their sampling "
                         "floor): subsample the larger set first")
    normalization = {"method": args.input_normalization}  # the files' frame; JSD maps it to PointFlow's
    ev = GenerationEvaluator(ref, normalization, protocol=args.protocol, emd=args.emd,
                             chamfer_backend=args.chamfer_backend, emd_backend=args.emd_backend,
                             device=select_device(args.device), progress=args.progress,
                             jsd_allow_outside=args.jsd_allow_outside, train=train)
    metrics = ev(sample)
    summary = summarize([metrics])
    print(format_table(summary, f"sets: {args.sample} vs {args.reference}, protocol {args.protocol}, "
                                f"|S|={len(sample)}, |R|={len(ref)}"))
    report_copying(summary, "reference", hint="pass --train with the model's training clouds")
    _report_jsd_outside(ev)
    result = {**result_header(args, t0), "kind": "sets", "sample": str(args.sample), "reference": str(args.reference),
              "train": str(args.train) if args.train else None, "num_train": 0 if train is None else len(train),
              "copying": COPYING_TEXT if train is not None else "not computed: no --train clouds",
              "input_normalization": args.input_normalization,
              "num_samples": len(sample), "num_reference": len(ref), "num_points": int(ref.shape[1]),
              "distance_implementations": ev.distance_implementations(), "metrics": summary,
              "timings": ev.timings}
    write_json(result, args.out or Path("eval_results") / f"sets_{args.sample.stem}_vs_{args.reference.stem}.json")
    return result
