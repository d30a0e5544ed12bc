"""``python -m eval {generation,reconstruction,sets,ood,prior-gap}``: the field's metric tables.

    python -m eval generation --checkpoint runs/<run> --split test --seeds 0 1 2
    python -m eval reconstruction --checkpoint runs/<run> --split test
    python -m eval sets --sample gen.npy --reference ref.npy --protocol norm_box
    python -m eval ood --checkpoint runs/<run> --ood-data data/onet256 --ood-category bench
    python -m eval prior-gap --checkpoint runs/<run> --split val

Each prints a table and writes a JSON file (default under ``<run>/eval/``) that states
the protocol, normalisation, |S|, |R|, points per cloud, seeds, distance
implementations, units and run time next to the numbers. The commands are in
:mod:`eval.generation` and :mod:`eval.ood`; the metrics in :mod:`pointcloud_sivae.metrics`.
Experiments that train runs are ``python -m pointcloud_sivae.compare`` and ``.sweep``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.generation import run_generation, run_reconstruction, run_sets
from eval.ood import obs_std_arg, run_ood
from eval.prior_gap import run_prior_gap
from pointcloud_sivae.cli import (
    SPLITS,
    add_category,
    add_chamfer_backend,
    add_checkpoint,
    add_device,
    add_emd,
    add_num_importance,
    add_progress,
    add_protocol,
    add_run_data_root,
    add_sampler,
    add_verbose,
    bounded_int,
    run,
    seed_int,
)

COMMANDS = {"generation": run_generation, "reconstruction": run_reconstruction, "sets": run_sets, "ood": run_ood,
            "prior-gap": run_prior_gap}


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


def _checkpoint_command(sub, name: str, help: str, split_help: str) -> argparse.ArgumentParser:
    """A subcommand that scores a checkpoint on a split of its prepared data."""
    p = sub.add_parser(name, help=help)
    add_checkpoint(p)
    p.add_argument("--split", default="test", choices=SPLITS, help=f"{split_help} (default: test)")
    add_run_data_root(p)
    add_category(p, f"that category's {split_help}" + (", scored against samples of a mixture fitted to its "
                    "training posteriors" if name == "generation" else ""))
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__.splitlines()[0])
    add_verbose(p)
    sub = p.add_subparsers(dest="command", required=True)
    g = _checkpoint_command(sub, "generation", "MMD, COV, 1-NNA (CD, EMD) and JSD of generated samples vs a split",
                            "reference split R")
    g.add_argument("--num-samples", type=bounded_int(2), help="|S|, >= 2 (default |R|, the PointFlow protocol)")
    g.add_argument("--seeds", type=seed_int, nargs="+", default=[0],
                   help="sample seeds, >= 0; the table gives mean and std over them (default: 0)")
    add_sampler(g)
    _metric_options(g, "<run>/eval/generation_<split>_<protocol>.json, with _gmm<K> for --sampler gmm, "
                       "_gmmagg<K> for gmm-aggregate, _aggpost for aggregated-posterior, _T<T> for a prior temperature")
    r = _checkpoint_command(sub, "reconstruction", "CD and EMD between a split and its reconstructions",
                            "split reconstructed from its posterior means")
    _metric_options(r, "<run>/eval/reconstruction_<split>_<protocol>.json")
    s = sub.add_parser("sets", help="the generation table for two sets of clouds given as files")
    s.add_argument("--sample", type=Path, required=True, help=".npy (M, N, 3) or .npz with 'points'")
    s.add_argument("--reference", type=Path, required=True, help="reference set R, same formats as --sample")
    s.add_argument("--train", type=Path,
                   help="the model's training clouds, same formats and frame: the table then holds the copying "
                        "statistics (new shapes, typical shapes or copies of them)")
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
    add_category(o, "that category's shapes as the in-distribution split")
    o.add_argument("--ood-data", required=True, help="prepared data root of the other set")
    o.add_argument("--ood-category", required=True, help="category name or synset under --ood-data")
    o.add_argument("--ood-split", default="all", choices=("all", *SPLITS),
                   help="split(s) of the other set that are scored (default: all)")
    add_num_importance(o, 64, low=1)
    o.add_argument("--obs-std", default="auto", type=obs_std_arg,
                   help="sigma of the Gaussian-mixture observation model (model frame), > 0, or auto: "
                        "maximum likelihood on the training split (default: auto)")
    o.add_argument("--seed", type=seed_int, default=0, help="seed of the importance samples, >= 0 (default: 0)")
    add_device(o)
    add_chamfer_backend(o, "the reconstruction Chamfer score")
    o.add_argument("--out", type=Path, help="folder for ood.json and ood_histograms.png "
                                            "(default: <run>/eval/ood_<category>)")
    add_verbose(o, subcommand=True)
    pg = _checkpoint_command(sub, "prior-gap", "how far the aggregated posterior is from the prior, and the prior's "
                                               "samples by their code's distance from real shapes' codes",
                             "held-out shapes (their codes and Chamfer distances)")
    pg.add_argument("--num-samples", type=bounded_int(4), default=400,
                    help="prior samples decoded for the distance table, >= 4 (default: 400)")
    pg.add_argument("--num-draws", type=bounded_int(1), default=2000,
                    help="Monte-Carlo draws of the KL and prior-mass estimates, >= 1 (default: 2000)")
    pg.add_argument("--seed", type=seed_int, default=0, help="seed of every draw, >= 0 (default: 0)")
    add_device(pg)
    add_chamfer_backend(pg, "the distances to the training shapes")
    pg.add_argument("--out", type=Path, help="output JSON file (default: <run>/eval/prior_gap_<split>.json)")
    add_verbose(pg, subcommand=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
