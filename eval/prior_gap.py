"""``python -m eval prior-gap``: how far the aggregated posterior is from the prior, and how the prior's
samples degrade with their code's distance from the codes of real shapes.

Two tables: the gap of :func:`pointcloud_sivae.metrics.prior_gap.prior_gap` (the training shapes'
posteriors against the prior, the split's shapes as held-out codes), and the prior's samples in
quartiles of their code's distance to the nearest training posterior (in that posterior's standard
deviations, RMS over the latent dimensions: about 1 for a draw of it), each quartile with its samples' median Chamfer distance to the nearest training shape
over that of the split's shapes (the ``train-distance-ratio`` of
:mod:`pointcloud_sivae.metrics.novelty`: about 1 where samples lie as near the data as new real
shapes do, far above 1 where they decode to shapes unlike any). One draw of each of the split's
posteriors gives the distance at which real new shapes' codes lie.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from eval.generation import _checkpoint_context
from pointcloud_sivae.metrics.distances import pairwise_chamfer
from pointcloud_sivae.metrics.prior_gap import prior_gap
from pointcloud_sivae.models.latent_density import posterior_draws
from pointcloud_sivae.utils.runtime import provenance, write_json

GAP_TEXT = {
    "active_dims_90": "principal directions holding 90 % of the posterior means' variance",
    "aggregate_std_ratio": "aggregated posterior's std along them / prior std (1: as wide as the prior)",
    "posterior_std_ratio": "median posterior std / prior std",
    "mean_norm_ratio": "mean norm of a posterior mean / of a prior code",
    "kl_aggregate": "KL(q(z) || p(z)), nats (Monte Carlo; 0: the prior is the aggregated posterior)",
    "kl_posterior": "mean KL(q(z|x) || p(z)) of the training shapes, nats",
    "prior_mass_share": "share of prior codes where a held-out shape's code could lie (95 % level)",
}


def posterior_distance(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 64) -> np.ndarray:
    """Each code's distance to the nearest training posterior, in that posterior's standard deviations:
    ``min_i sqrt(mean_k ((z_k - mu_ik) / sigma_ik)^2)``, about 1 for a draw of a posterior (in every
    dimension, the ones the decoder ignores included), larger where no training shape's posterior
    reaches. (K, Z) codes, (M, Z) posteriors -> (K,) float64."""
    mu, inv_std = mu.double().cpu(), (-0.5 * logvar.double().cpu()).exp()
    out = []
    for part in z.double().cpu().split(chunk):
        sq = (((part[:, None, :] - mu[None]) * inv_std[None]) ** 2).mean(-1)  # (k, M)
        out.append(sq.min(dim=1).values.sqrt())
    return torch.cat(out).numpy()


def code_distance_table(dist: np.ndarray, to_train: np.ndarray, held_out_to_train: float,
                        quantiles: int = 4) -> list[dict]:
    """The prior's samples in ``quantiles`` bins of their code's :func:`posterior_distance`.

    Args:
        dist: (S,) each prior code's distance to the nearest training posterior.
        to_train: (S,) each sample's Chamfer distance to its nearest training shape.
        held_out_to_train: the median of the same distance for the held-out shapes.

    Returns:
        One row per bin: ``distance_from``, ``distance_to`` (posterior stds), ``samples`` and
        ``train_distance_ratio`` (the bin's median ``to_train`` over ``held_out_to_train``).
    """
    edges = np.quantile(dist, np.linspace(0, 1, quantiles + 1))
    rows = []
    for b in range(quantiles):
        inside = (dist >= edges[b]) & ((dist < edges[b + 1]) if b < quantiles - 1 else (dist <= edges[b + 1]))
        rows.append({"distance_from": float(edges[b]), "distance_to": float(edges[b + 1]), "samples": int(inside.sum()),
                     "train_distance_ratio": float(np.median(to_train[inside]) / held_out_to_train)})
    return rows


def run_prior_gap(args) -> dict:
    t0 = time.perf_counter()
    inf, split, run_dir = _checkpoint_context(args)
    train = inf.training_clouds(args.category)
    if train is None or len(train) < 2:
        raise ValueError(f"the prior gap needs at least 2 training shapes in {inf.data_root}; prepare the run's data "
                         "with a train split")
    mu, logvar = inf.train_posteriors(args.category)
    ref = split.points.numpy()
    held_mu, held_logvar = inf.model.posteriors(torch.from_numpy(ref).to(inf.device))
    sigma_p = inf.model.prior_std
    gap = prior_gap(mu, logvar, sigma_p, held_out=(held_mu, held_logvar), num_draws=args.num_draws, seed=args.seed)
    z = inf.prior(args.num_samples, args.seed)
    to_train = pairwise_chamfer(inf.decode(z), train, backend=args.chamfer_backend, device=inf.device).min(axis=1)
    ref_to_train = float(np.median(pairwise_chamfer(ref, train, backend=args.chamfer_backend,
                                                    device=inf.device).min(axis=1)))
    rows = code_distance_table(posterior_distance(z, mu, logvar), to_train, ref_to_train)
    held_draws = posterior_draws(held_mu, held_logvar, 1, seed=args.seed)  # one draw each, as a prior code is a draw
    held_dist = posterior_distance(held_draws, mu, logvar)
    print(f"prior gap: {inf.category_key(args.category) or '+'.join(inf.categories)}, training posteriors ({len(mu)} shapes, z_dim {mu.shape[1]}, "
          f"prior std {sigma_p:g}) against the prior; held-out codes: the {args.split} split ({len(ref)} shapes)")
    for k, v in gap.items():
        print(f"  {k:<20} {v:>9.3f}  {GAP_TEXT[k]}")
    print(f"\nprior samples ({args.num_samples}, seed {args.seed}) by their code's distance to the nearest training "
          f"posterior, in its stds (RMS over dimensions; 1: a draw of that posterior; a draw of each {args.split} "
          f"shape's posterior lies at {float(np.median(held_dist)):.2f} as the median); train-distance-ratio: the "
          f"samples' median Chamfer distance to the nearest training shape over that of the {args.split} shapes "
          "(1: as near as new real shapes)")
    print(f"  {'distance':>15}  {'samples':>7}  train-distance-ratio")
    for r in rows:
        print(f"  {r['distance_from']:>6.2f} – {r['distance_to']:<6.2f}  {r['samples']:>7}  {r['train_distance_ratio']:.2f}")
    result = {**provenance(), "kind": "prior-gap", "checkpoint": str(inf.checkpoint),
              "epoch": inf.state["epoch"], "category": inf.category_key(args.category) or inf.config["data"]["category"],
              "split": args.split,
              "num_train": len(mu), "num_held_out": len(ref), "z_dim": int(mu.shape[1]), "prior_std": sigma_p,
              "num_draws": args.num_draws, "num_samples": args.num_samples, "seed": args.seed,
              "gap": gap, "gap_text": GAP_TEXT,
              "held_out_code_distance_median": float(np.median(held_dist)),
              "prior_samples_by_code_distance": rows,
              "distance_units": "code distances: to the nearest training posterior, in its standard deviations (RMS "
                                "over latent dimensions); Chamfer distance squared L2, mean over points, model frame"}
    result["run_time_s"] = round(time.perf_counter() - t0, 3)
    write_json(result, args.out or run_dir / "eval" / f"prior_gap_{args.split}.json")
    print(f"written: {args.out or run_dir / 'eval' / f'prior_gap_{args.split}.json'}", file=sys.stderr)
    return result
