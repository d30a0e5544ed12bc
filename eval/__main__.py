"""``python -m eval {generation,reconstruction,sets,ood,compare,sweep}``: the field's metric tables.

    python -m eval generation --checkpoint runs/<run> --split test --seeds 0 1 2
    python -m eval reconstruction --checkpoint runs/<run> --split test
    python -m eval sets --sample gen.npy --reference ref.npy --protocol norm_box
    python -m eval ood --checkpoint runs/<run> --ood-data data/onet256 --ood-category bench
    python -m eval compare --data-root data/shapenet256 --epochs 150 --seeds 0 1 2 --out runs/compare

``compare`` and ``sweep`` train runs: they are the experiment runners
``python -m pointcloud_sivae.compare`` and ``python -m pointcloud_sivae.sweep``, here as aliases.

Each prints a table and writes a JSON file (default under ``<run>/eval/``) that states
the protocol, normalisation, |S|, |R|, points per cloud, seeds, distance
implementations, units and run time next to the numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from pointcloud_sivae.checkpoint import CheckpointError, error_detail, run_dir_of
from pointcloud_sivae.cli import (
    SPLITS,
    add_chamfer_backend,
    add_checkpoint,
    add_device,
    add_emd,
    add_num_importance,
    add_progress,
    add_protocol,
    add_run_data_root,
    add_verbose,
    bounded_int,
)
from pointcloud_sivae.data import load_manifest
from pointcloud_sivae.evaluation import DISPLAY, GenerationEvaluator, format_table, reconstruction_metrics, summarize
from pointcloud_sivae.inference import Inference
from pointcloud_sivae.runtime import provenance, select_device, write_json

DISPLAY_SCALE = {k: unit or "x1" for k, (_, unit) in DISPLAY.items()}
VALUES_ARE = ("raw: Chamfer distance squared L2 and EMD Euclidean, both mean over points in the protocol's "
              "frame; COV and 1-NNA as fractions in [0, 1]; JSD base-2 in [0, 1]")


def _metric_options(p: argparse.ArgumentParser, out_default: str) -> None:
    """The options of every command that computes the metric table."""
    add_protocol(p)
    add_emd(p)
    add_chamfer_backend(p, "the distance matrices")
    p.add_argument("--emd-backend", default="auto", choices=("auto", "numba", "torch"),
                   help="approxmatch backend: auto (numba on CPU, batched torch on CUDA) (default: auto)")
    p.add_argument("--jsd-allow-outside", action="store_true",
                   help="compute JSD even when more than 1%% of the points of a set lie outside the grid's ball of "
                        "radius 0.5 (they count at their nearest cell); without it that is an error")
    add_device(p)
    p.add_argument("--out", type=Path, help=f"output JSON file (default: {out_default})")
    add_progress(p, True)
    add_verbose(p, subcommand=True)


def build_parser() -> argparse.ArgumentParser:
    from pointcloud_sivae.compare import COMPARE_HELP, add_compare_options
    from pointcloud_sivae.sweep import SWEEP_HELP, add_sweep_options

    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__.splitlines()[0])
    add_verbose(p)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generation", help="MMD, COV, 1-NNA (CD, EMD) and JSD of prior samples vs a split")
    add_checkpoint(g)
    g.add_argument("--split", default="test", choices=SPLITS, help="reference split R (default: test)")
    add_run_data_root(g)
    g.add_argument("--num-samples", type=bounded_int(1), help="|S|, >= 1 (default |R|, the PointFlow protocol)")
    g.add_argument("--seeds", type=bounded_int(0), nargs="+", default=[0],
                   help="prior-sample seeds, >= 0; the table gives mean and std over them (default: 0)")
    _metric_options(g, "<run>/eval/generation_<split>_<protocol>.json")
    r = sub.add_parser("reconstruction", help="CD and EMD between a split and its reconstructions")
    add_checkpoint(r)
    r.add_argument("--split", default="test", choices=SPLITS,
                   help="split reconstructed from its posterior means (default: test)")
    add_run_data_root(r)
    _metric_options(r, "<run>/eval/reconstruction_<split>_<protocol>.json")
    s = sub.add_parser("sets", help="the generation table for two sets of clouds given as files")
    s.add_argument("--sample", type=Path, required=True, help=".npy (M, N, 3) or .npz with 'points'")
    s.add_argument("--reference", type=Path, required=True, help="reference set R, same formats as --sample")
    s.add_argument("--input-normalization", default="none", choices=("none", "unit_sphere", "bbox"),
                   help="the frame both files are in: none (PointFlow's frame, shapes within the unit cube), "
                        "unit_sphere (radius 1) or bbox ([-1, 1]^3); JSD scales the latter two by 0.5 "
                        "(default: none)")
    _metric_options(s, "eval_results/sets_<sample>_vs_<reference>.json")
    o = sub.add_parser("ood", help="likelihood scores of a split and another prepared set; AUROC per score")
    add_checkpoint(o)
    o.add_argument("--in-split", default="test", choices=SPLITS,
                   help="in-distribution split of the model's own data (default: test)")
    add_run_data_root(o)
    o.add_argument("--ood-data", required=True, help="prepared data root of the other set")
    o.add_argument("--ood-category", required=True, help="category name or synset under --ood-data")
    o.add_argument("--ood-split", default="all", choices=("all", *SPLITS),
                   help="split(s) of the other set that are scored (default: all)")
    add_num_importance(o, 64, low=1)
    o.add_argument("--obs-std", default="auto",
                   help="sigma of the Gaussian-mixture observation model (model frame), > 0, or auto: "
                        "maximum likelihood on the training split (default: auto)")
    o.add_argument("--seed", type=bounded_int(0), default=0, help="seed of the importance samples, >= 0 (default: 0)")
    add_device(o)
    add_chamfer_backend(o, "the reconstruction Chamfer score")
    o.add_argument("--out", type=Path, help="folder for ood.json and ood_histograms.png "
                                            "(default: <run>/eval/ood_<category>)")
    add_verbose(o, subcommand=True)
    add_compare_options(sub.add_parser("compare", help=COMPARE_HELP + " (python -m pointcloud_sivae.compare)"))
    add_sweep_options(sub.add_parser("sweep", help=SWEEP_HELP + " (python -m pointcloud_sivae.sweep)"))
    return p


def read_clouds(path: Path) -> np.ndarray:
    """(M, N, 3) clouds from a .npy array or a .npz holding ``points``.

    Raises:
        ValueError: missing file, unsupported extension, or no ``points`` array.
    """
    if not path.is_file():
        raise ValueError(f"{path} not found")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "points" not in z.files:
                raise ValueError(f"{path} has no 'points' array (found {z.files})")
            return z["points"]
    raise ValueError(f"{path}: expected a .npy or .npz file")


def _checkpoint_context(args):
    """The model of a checkpoint (``Inference``), the split to score and the run folder."""
    inf = Inference(args.checkpoint, args.device, args.data_root)
    return inf, inf.split(args.split), run_dir_of(inf.checkpoint)


def _header(args, t0: float) -> dict:
    return {**provenance(), "protocol": args.protocol, "values_are": VALUES_ARE, "display_scale": DISPLAY_SCALE,
            "run_time_s": round(time.perf_counter() - t0, 3)}


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
    ev = GenerationEvaluator(ref, split.manifest["normalization"], protocol=args.protocol, emd=args.emd,
                             chamfer_backend=args.chamfer_backend, emd_backend=args.emd_backend, device=inf.device,
                             progress=args.progress, jsd_allow_outside=args.jsd_allow_outside)
    per_seed = []
    for seed in args.seeds:
        metrics = ev(inf.decode(inf.prior(n_s, seed)))
        per_seed.append(metrics)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.5g}" for k, v in metrics.items()), file=sys.stderr)
    summary = summarize(per_seed)
    print(format_table(summary, f"generation: {inf.config['data']['category']} {args.split}, "
                                f"protocol {args.protocol}, |S|={n_s}, |R|={len(ref)}, seeds {args.seeds}"))
    _report_jsd_outside(ev)
    result = {**_header(args, t0), "kind": "generation", "checkpoint": str(inf.checkpoint),
              "epoch": inf.state["epoch"], "category": inf.config["data"]["category"], "split": args.split,
              "data_normalization": split.manifest["normalization"], "num_samples": n_s,
              "num_reference": len(ref), "num_points": int(ref.shape[1]), "point_subset": split.subset,
              "seeds": args.seeds,
              "prior_std": inf.model.config.prior_std, "distance_implementations": ev.distance_implementations(),
              "metrics": summary, "per_seed": per_seed, "timings": ev.timings}
    result["run_time_s"] = round(time.perf_counter() - t0, 3)
    write_json(result, args.out or run_dir / "eval" / f"generation_{args.split}_{args.protocol}.json")
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
    result = {**_header(args, t0), "kind": "reconstruction", "checkpoint": str(inf.checkpoint),
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
    if sample.shape[1] != ref.shape[1]:
        raise ValueError(f"mismatched point counts: {args.sample} holds {sample.shape[1]}-point clouds, "
                         f"{args.reference} {ref.shape[1]}-point clouds; the metrics compare sets of equal-size "
                         "clouds (EMD needs it, and Chamfer distances at different counts differ by their sampling "
                         "floor): subsample the larger set first")
    normalization = {"method": args.input_normalization}  # the files' frame; JSD maps it to PointFlow's
    ev = GenerationEvaluator(ref, normalization, protocol=args.protocol, emd=args.emd,
                             chamfer_backend=args.chamfer_backend, emd_backend=args.emd_backend,
                             device=select_device(args.device), progress=args.progress,
                             jsd_allow_outside=args.jsd_allow_outside)
    metrics = ev(sample)
    summary = summarize([metrics])
    print(format_table(summary, f"sets: {args.sample} vs {args.reference}, protocol {args.protocol}, "
                                f"|S|={len(sample)}, |R|={len(ref)}"))
    _report_jsd_outside(ev)
    result = {**_header(args, t0), "kind": "sets", "sample": str(args.sample), "reference": str(args.reference),
              "input_normalization": args.input_normalization,
              "num_samples": len(sample), "num_reference": len(ref), "num_points": int(ref.shape[1]),
              "distance_implementations": ev.distance_implementations(), "metrics": summary,
              "timings": ev.timings}
    write_json(result, args.out or Path("eval_results") / f"sets_{args.sample.stem}_vs_{args.reference.stem}.json")
    return result


def run_ood(args) -> dict:
    from eval.ood import SCORES, aurocs, load_ood_set, plot_histograms, resolve_obs_std, score_set

    t0 = time.perf_counter()
    inf = Inference(args.checkpoint, args.device, args.data_root)
    category = inf.config["data"]["category"]
    run_dir = run_dir_of(inf.checkpoint)
    in_split = inf.split(args.in_split)
    ood_points, ood_ids, frame_note = load_ood_set(inf, args.ood_data, args.ood_category, args.ood_split)
    ood_name = load_manifest(args.ood_data, args.ood_category)["category"]
    obs_std, obs_how = resolve_obs_std(inf, args.obs_std, inf.split("train").points.numpy())
    print(f"observation model: Gaussian mixture, sigma {obs_std:.5g} ({obs_how}); {frame_note}", file=sys.stderr)
    kw = {"obs_std": obs_std, "num_samples": args.num_importance, "seed": args.seed,
          "chamfer_backend": args.chamfer_backend}
    s_in = score_set(inf, in_split.points.numpy(), **kw)
    s_out = score_set(inf, ood_points, **kw)
    results = aurocs(s_in, s_out)
    names = (f"{category} {args.in_split}", f"{ood_name} {args.ood_split}")
    out_dir = args.out or run_dir / "eval" / f"ood_{ood_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_histograms(s_in, s_out, results, names, out_dir / "ood_histograms.png")
    lines = [f"OOD: {names[0]} (n={len(in_split.ids)}) vs {names[1]} (n={len(ood_ids)}), K={args.num_importance}",
             f"{'score':<12} {'mean in':>12} {'mean OOD':>12} {'AUROC':>7}  anomalous when", "-" * 62]
    for k, (_, sign) in SCORES.items():
        lines.append(f"{k:<12} {s_in[k].mean():>12.5g} {s_out[k].mean():>12.5g} {results[k]:>7.3f}  "
                     + ("low" if sign < 0 else "high"))
    print("\n".join(lines))
    result = {**provenance(), "kind": "ood", "checkpoint": str(inf.checkpoint), "epoch": inf.state["epoch"],
              "method": inf.config["loss"].get("method", "soft-intro"),
              "in_distribution": {"category": category, "data_root": str(inf.data_root), "split": args.in_split,
                                  "num_shapes": len(in_split.ids)},
              "ood": {"category": ood_name, "data_root": str(args.ood_data), "split": args.ood_split,
                      "num_shapes": len(ood_ids), "frame": frame_note},
              "observation_model": {"kind": "isotropic Gaussian mixture centred at the decoded points, "
                                            "points i.i.d.", "obs_std": obs_std, "obs_std_from": obs_how},
              "num_importance_samples": args.num_importance, "seed": args.seed,
              "score_directions": {k: ("low" if sign < 0 else "high") + " = anomalous" for k, (_, sign) in
                                   SCORES.items()},
              "auroc": results,
              "summary": {k: {"in_mean": float(s_in[k].mean()), "in_std": float(s_in[k].std()),
                              "ood_mean": float(s_out[k].mean()), "ood_std": float(s_out[k].std())}
                          for k in SCORES},
              "scores": {"in": {"ids": in_split.ids, **{k: v.tolist() for k, v in s_in.items()}},
                         "ood": {"ids": ood_ids, **{k: v.tolist() for k, v in s_out.items()}}},
              "histograms": str(out_dir / "ood_histograms.png")}
    result["run_time_s"] = round(time.perf_counter() - t0, 3)
    write_json(result, out_dir / "ood.json")
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from pointcloud_sivae.compare import run_compare
        from pointcloud_sivae.sweep import run_sweep

        {"generation": run_generation, "reconstruction": run_reconstruction, "sets": run_sets, "ood": run_ood,
         "compare": run_compare, "sweep": run_sweep}[args.command](args)
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.verbose and error_detail(exc):
            print(error_detail(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # an output path under a file, no permission, a full disk
        print(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
