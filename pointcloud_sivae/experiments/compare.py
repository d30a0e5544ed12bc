"""Method comparisons (``python -m pointcloud_sivae.compare``): train several methods with the same
budget and seeds, score each, tabulate.

    python -m pointcloud_sivae.compare --data-root data/shapenet256 --epochs 150 --seeds 0 1 2 \\
        --set beta_rec=640 --set intro_beta=640 --out runs/compare

For every (method, seed) a run ``<out>/runs/<method>-seed<seed>`` is trained with the
same config, epochs and seed (a finished run is reused, an interrupted one resumed),
then its checkpoint (``best.pt``, chosen on validation JSD, or ``last.pt``) is scored on
the test split (or ``--split val``): the generation table of :mod:`pointcloud_sivae.metrics.evaluator`
(|S| = |R| samples seeded by the run's seed, from the prior or a ``--sampler`` mixture) with the samples'
copying statistics against the training split (:mod:`pointcloud_sivae.metrics.novelty`:
``train-distance-ratio``, ``copy-share``, ``nn-train-ratio``), reconstruction CD/EMD of posterior means, and the test
ELBO and importance-weighted ``log p(x)`` of :mod:`pointcloud_sivae.likelihood`.
``comparison.json`` and ``comparison.md`` hold per-run numbers, mean and std over
seeds, training time, and the best method per metric with its margin.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from pointcloud_sivae.data.prepared import load_split
from pointcloud_sivae.inference import Inference
from pointcloud_sivae.likelihood import fit_obs_std, score_clouds
from pointcloud_sivae.metrics.evaluator import DISPLAY, GenerationEvaluator, reconstruction_metrics, summarize
from pointcloud_sivae.metrics.protocols import apply_protocol
from pointcloud_sivae.models.latent_density import Sampler
from pointcloud_sivae.runs.checkpoint import load_checkpoint
from pointcloud_sivae.training.checkpoint import resumed_config
from pointcloud_sivae.runs.config import FLAG_SECTION, METHODS, config_for_data, resolve_config
from pointcloud_sivae.utils.runtime import die_with_parent, provenance, write_json

# metric -> (direction, display scale, unit). direction: "min", "max", "half" (closest to 50 %), "one" (closest to 1)
# or "tenth" (closest to 10 %, the held-out shapes' copy-share).
COLUMNS = {
    "1-NNA-CD": ("half",) + DISPLAY["1-NNA-CD"], "1-NNA-EMD": ("half",) + DISPLAY["1-NNA-EMD"],
    "MMD-CD": ("min",) + DISPLAY["MMD-CD"], "MMD-EMD": ("min",) + DISPLAY["MMD-EMD"],
    "COV-CD": ("max",) + DISPLAY["COV-CD"], "COV-EMD": ("max",) + DISPLAY["COV-EMD"],
    "JSD": ("min",) + DISPLAY["JSD"], "diversity-CD": ("one",) + DISPLAY["diversity-CD"],
    "rec-CD": ("min",) + DISPLAY["CD"], "rec-EMD": ("min",) + DISPLAY["EMD"],
    "ELBO": ("max", 1.0, "nats"), "log-p(x)-IW": ("max", 1.0, "nats"),
    "score": ("max", 100.0, "points"),  # COV-CD - |1-NNA-CD - 50 %|: coverage and fidelity together
    # new shapes, typical shapes or copies (metrics.novelty): held-out shapes have 1, 10 % and 1
    "train-distance-ratio": ("one",) + DISPLAY["train-distance-ratio"],
    "copy-share": ("tenth",) + DISPLAY["copy-share"], "nn-train-ratio": ("one",) + DISPLAY["nn-train-ratio"],
    "kl-gap": ("max", 1.0, "nats"), "grad-ratio": ("max", 1.0, "ratio"), "rec/nn-other": ("min", 1.0, "ratio"),
    "train-rec/nn-other": ("min", 1.0, "ratio"), "train-time": ("min", 1.0, "s"),
}
# Training health, read from the run's metrics.jsonl: means over the second half of its introspective
# epochs (kl-gap: KL(fake) - KL(real); grad-ratio: encoder gradient norm of the adversarial terms over that
# of the real ELBO) and its last validation (rec/nn-other: val reconstruction CD over the distance from a val
# shape to its nearest other val shape; train-rec/nn-other: the same for as many training shapes, so the two
# differ by the generalisation gap alone).
DIRECTION_TEXT = {"min": "lower is better", "max": "higher is better", "half": "closest to 50 % is better",
                  "one": "closest to 1 is better", "tenth": "closest to 10 % (the held-out shapes') is better"}


def badness(direction: str, value: float) -> float:
    """How far ``value`` is from the best, for a metric of ``direction`` (a key of :data:`DIRECTION_TEXT`)."""
    return {"min": value, "max": -value, "half": abs(value - 0.5), "one": abs(value - 1.0),
            "tenth": abs(value - 0.1)}[direction]


def _train_config(args, method: str, seed: int):
    flags: dict[str, object] = {}
    for item in args.overrides:
        only, colon, rest = item.partition(":")
        if colon and "=" not in only:  # METHOD:KEY=VALUE applies to that method's runs only
            if only not in METHODS:
                raise ValueError(f"--set {item!r}: {only!r} is not a method ({', '.join(METHODS)})")
            if only != method:
                continue
            item = rest
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or key not in FLAG_SECTION:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY a training config field "
                             f"(e.g. beta_rec=640); valid keys: {sorted(FLAG_SECTION)}")
        if key in ("method", "seed", "epochs", "run_name", "out_dir", "data_root", "category"):
            raise ValueError(f"--set {key}=...: the comparison sets {key} itself; use its own option")
        flags[key] = value
    if method != "soft-intro" and "beta_repulsion" not in flags:
        # The repulsion penalty is a term of the Soft-IntroVAE decoder step (a preset's, e.g. mn40-256):
        # the baselines train without it, as their objectives have no such step.
        flags["beta_repulsion"] = 0.0
    flags.update(method=method, seed=seed, epochs=args.epochs, run_name=f"{method}-seed{seed}",
                 out_dir=str(args.out / "runs"), data_root=args.data_root, category=args.category,
                 device=args.device, progress=args.progress)
    cfg = resolve_config(args.config, flags, getattr(args, "preset", None))
    if method != "soft-intro" and cfg.loss.beta_repulsion > 0:
        raise ValueError(f"--set beta_repulsion={cfg.loss.beta_repulsion} reaches the {method} runs, whose "
                         f"objective has no decoder step for it; set it for soft-intro only "
                         f"(--set soft-intro:beta_repulsion=...)")
    return cfg


def train_one(args, method: str, seed: int) -> tuple[Path, float]:
    """Train (or reuse / resume) one run; returns its folder and its training time in seconds
    (sum of the epochs' training loops, across sessions)."""
    from pointcloud_sivae.training.trainer import Trainer  # only the processes that train load it

    cfg = _train_config(args, method, seed)
    run_dir = Path(cfg.train.out_dir) / cfg.train.run_name
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        state = load_checkpoint(last)
        saved = resumed_config(state["config"], {"epochs": args.epochs}, where=str(last)).to_dict()
        wanted = config_for_data(cfg, state["manifest"]["num_points"], saved["loss"]["frame_diagonal"]).to_dict()
        if any(saved[k] != wanted[k] for k in ("model", "loss", "optim")):
            raise ValueError(f"{run_dir} holds a run with another config; choose another --out or remove it")
        if state["epoch"] < args.epochs:
            print(f"[compare] resuming {run_dir} at epoch {state['epoch']}", file=sys.stderr)
            Trainer.resume(run_dir, {"epochs": args.epochs, "device": args.device}).fit()
        else:
            print(f"[compare] reusing finished run {run_dir}", file=sys.stderr)
    else:
        print(f"[compare] training {method} seed {seed} for {args.epochs} epochs -> {run_dir}", file=sys.stderr)
        Trainer.new_run(cfg).fit()
    records = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    return run_dir, float(sum(r["epoch_time_s"] for r in records))


def _one_thread(parent: int) -> None:
    """Worker initialiser: one torch and one numba thread, so J workers share J cores without
    oversubscription (numba's parallel Chamfer kernel spins a thread per core otherwise); the
    worker ends with its parent, even a killed one."""
    import numba

    die_with_parent(parent)
    torch.set_num_threads(1)
    numba.set_num_threads(1)


def _train_job(args, method: str, seed: int) -> tuple[str, float]:
    torch.manual_seed(seed)
    run_dir, train_time = train_one(args, method, seed)
    return str(run_dir), train_time


def train_all(jobs: list[tuple], n_jobs: int = 1) -> dict[tuple, tuple[str, float]]:
    """Train ``(args, method, seed)`` jobs, ``n_jobs`` at once in worker processes (one thread
    each) or one after the other in this process; returns ``{(id(args), method, seed): (run
    folder, training time)}``. A worker's error is raised here."""
    out: dict[tuple, tuple[str, float]] = {}
    if n_jobs <= 1:
        for a, m, s in jobs:
            out[(id(a), m, s)] = _train_job(a, m, s)
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn"), initializer=_one_thread,
                             initargs=(os.getpid(),)) as pool:
        futures = {(id(a), m, s): pool.submit(_train_job, a, m, s) for a, m, s in jobs}
        for key, fut in futures.items():
            out[key] = fut.result()
    return out


def score_run(args, run_dir: Path, seed: int, ev_cache: dict) -> dict[str, float]:
    """Metrics of one run's chosen checkpoint on ``args.split`` (raw values); the likelihood
    columns are skipped when ``args.num_importance`` is 0."""

    inf = Inference(run_dir / "checkpoints" / f"{args.checkpoint_choice}.pt", args.device)
    test = inf.split(getattr(args, "split", "test"))
    ref = test.points.numpy()
    norm = test.manifest["normalization"]
    backend = getattr(args, "score_chamfer_backend", "auto")
    if "ev" not in ev_cache:  # reference matrices shared by every run
        ev_cache["ev"] = GenerationEvaluator(ref, norm, protocol=args.protocol, emd=args.emd, device=inf.device,
                                             chamfer_backend=backend, jsd_allow_outside=True,  # strays count
                                             train=inf.training_clouds())
    ev = ev_cache["ev"]
    sample = inf.decode(inf.latents(len(ref), seed, Sampler.of(args)))
    out = dict(ev(sample))
    rec = reconstruction_metrics(ref, inf.decode(inf.encode(ref)), norm, protocol=args.protocol, emd=args.emd,
                                 chamfer_backend=backend, device=inf.device)
    out["rec-CD"] = rec["CD"]["mean"]
    if "EMD" in rec:
        out["rec-EMD"] = rec["EMD"]["mean"]
    out["epoch"] = inf.state["epoch"]
    out["score"] = out["COV-CD"] - abs(out["1-NNA-CD"] - 0.5)
    out.update(training_health(run_dir / "metrics.jsonl"))
    if args.num_importance == 0:
        return out
    train_x = inf.split("train").points.to(inf.device)
    obs_std = fit_obs_std(inf.model, train_x)
    s = score_clouds(inf.model, test.points.to(inf.device), obs_std=obs_std, num_samples=args.num_importance,
                     seed=seed, chamfer_backend=backend)
    out.update({"ELBO": float(s["elbo"].mean()), "log-p(x)-IW": float(s["log_px_iw"].mean()),
                "obs_std": obs_std, "epoch": inf.state["epoch"]})
    return out


def training_health(metrics_path: Path) -> dict[str, float]:
    """``kl-gap`` and ``grad-ratio`` (means over the second half of the introspective epochs; absent for a
    VAE), ``rec/nn-other`` and ``train-rec/nn-other`` (last validation) of a run's ``metrics.jsonl``."""
    records = [json.loads(ln) for ln in metrics_path.read_text().splitlines() if ln]
    game = [r for r in records if r.get("method") != "vae" and "kl_gap" in r]
    out: dict[str, float] = {}
    if game:
        half = game[len(game) // 2:]
        out["kl-gap"] = sum(r["kl_gap"] for r in half) / len(half)
        diagnosed = [r for r in half if "grad_norm_real" in r]
        if diagnosed:
            out["grad-ratio"] = (sum(r["grad_norm_adversarial"] for r in diagnosed)
                                 / sum(r["grad_norm_real"] for r in diagnosed))
    validated = [r for r in records if "val_nn_other_cd" in r]
    if validated:
        out["rec/nn-other"] = validated[-1]["val_chamfer"] / validated[-1]["val_nn_other_cd"]
        if "train_nn_other_cd" in validated[-1]:
            out["train-rec/nn-other"] = validated[-1]["train_chamfer"] / validated[-1]["train_nn_other_cd"]
    return out


def best_per_metric(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict]:
    """For each metric: the best method, the runner-up, the margin between their means, and
    whether it exceeds the sum of their standard deviations over seeds (a clear win)."""
    methods = list(summary)
    out = {}
    for metric, (direction, *_rest) in COLUMNS.items():
        have = [m for m in methods if metric in summary[m]]
        if len(have) < 2:
            continue

        def off(m, metric=metric, direction=direction):
            return badness(direction, summary[m][metric]["mean"])

        ranked = sorted(have, key=off)
        a, b = summary[ranked[0]][metric], summary[ranked[1]][metric]
        out[metric] = {"best": ranked[0], "runner_up": ranked[1], "margin": abs(off(ranked[1]) - off(ranked[0])),
                       "clear": abs(off(ranked[1]) - off(ranked[0])) > (a["std"] + b["std"]) * (1 + 1e-6) + 1e-12,
                       "direction": DIRECTION_TEXT[direction]}
    return out


def to_markdown(result: dict) -> str:
    summary, best = result["summary"], result["best"]
    methods = list(summary)
    head = (f"# Method comparison: {result['category']}, {result['num_points']} points\n\n"
            f"Same budget for every method: {result['epochs']} epochs, seeds {result['seeds']}, training config "
            f"below; checkpoint `{result['checkpoint_choice']}.pt`. {result.get('split', 'test').capitalize()} split: "
            f"|R| = {result['num_reference']}, "
            f"|S| = |R| samples per run ({Sampler.of_record(result).text}), protocol `{result['protocol']}` "
            f"(data normalisation `{result['data_normalization']['method']}`), Chamfer "
            f"{result['distance_implementations']['chamfer']}"
            + (f", EMD {result['distance_implementations']['emd']}" if "emd" in result['distance_implementations']
               else "") + ". Values are mean ± std over seeds.\n\n")
    lines = ["| metric | unit | " + " | ".join(methods) + " | best (margin; clear = margin > sum of stds) |",
             "|---|---|" + "---|" * len(methods) + "---|"]
    for metric, (direction, scale, unit) in COLUMNS.items():
        if not any(metric in summary[m] for m in methods):
            continue
        cells = []
        for m in methods:
            v = summary[m].get(metric)
            std = 0.0 if v is None or abs(v["std"]) < 1e-12 else v["std"]  # float noise of equal values
            cells.append("—" if v is None else f"{v['mean'] * scale:.4g} ± {std * scale:.2g}")
        b = best.get(metric)
        if not b:
            verdict = ""
        elif b["margin"] == 0:
            verdict = f"tie ({b['best']}, {b['runner_up']})"
        else:
            verdict = (f"{b['best']} (by {b['margin'] * scale:.3g}{' ' + unit if unit in ('nats', 's') else ''}; "
                       f"{'clear' if b['clear'] else 'within spread'})")
        arrow = {"min": "↓", "max": "↑", "half": "→50%", "one": "→1", "tenth": "→10%"}[direction]
        lines.append(f"| {metric} {arrow} | {unit} | " + " | ".join(cells) + f" | {verdict} |")
    per = result.get("train_configs") or {methods[0]: result["train_config"]}
    tail = "".join(f"\n* `{m}`: loss `{json.dumps({k: v for k, v in c['loss'].items() if k != 'method'})}`, "
                   f"warm-up {c['optim']['warmup_epochs']} epochs, z {c['model']['z_dim']}, "
                   f"encoder order {c['model'].get('encoder_order')}, pooling {c['model'].get('encoder_pool', 'max')}"
                   for m, c in per.items())
    return head + "\n".join(lines) + f"\n\nTraining configuration per method (every seed the same):{tail}\n"


def _check_protocol(args) -> None:

    test = load_split(args.data_root, args.category, "test")
    if len(test.ids) < 2:
        raise ValueError(f"the test split under {args.data_root} has {len(test.ids)} shape(s); at least 2 are needed")
    apply_protocol(test.points[:1].numpy(), args.protocol, test.manifest["normalization"])


def run_compare(args) -> dict:

    t0 = time.perf_counter()
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    for method in args.methods:  # flags and config file checked before anything runs
        _train_config(args, method, args.seeds[0])
    _check_protocol(args)  # before hours of training, not after
    Sampler.of(args)  # ... and the sampler's options
    args.out.mkdir(parents=True, exist_ok=True)
    per_run: dict[str, list[dict]] = {m: [] for m in args.methods}
    ev_cache: dict = {}
    trained = train_all([(args, m, s) for m in args.methods for s in args.seeds], getattr(args, "jobs", 1))
    for method in args.methods:
        for seed in args.seeds:
            run_dir, train_time = trained[(id(args), method, seed)]
            scores = score_run(args, Path(run_dir), seed, ev_cache)
            scores["train-time"] = train_time
            per_run[method].append({"seed": seed, "run": str(run_dir), **scores})
            print(f"[compare] {method} seed {seed}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, float)), file=sys.stderr)
    summary = {m: summarize(runs, COLUMNS) for m, runs in per_run.items()}
    ev = ev_cache["ev"]
    cfg = _train_config(args, args.methods[0], args.seeds[0]).to_dict()
    result = {
        **provenance(), "kind": "compare", "category": args.category, "data_root": args.data_root,
        "methods": args.methods, "seeds": args.seeds, "epochs": args.epochs,
        "checkpoint_choice": args.checkpoint_choice, "protocol": args.protocol,
        "data_normalization": ev.normalization, "num_reference": int(len(ev.reference)),
        "num_points": int(ev.reference.shape[1]), "distance_implementations": ev.distance_implementations(),
        "split": getattr(args, "split", "test"),
        **Sampler.of(args).record(),
        "num_importance_samples": args.num_importance,
        "observation_model": "Gaussian mixture at the decoded points, sigma fitted per run on its training split",
        "units": {k: (unit or "raw") for k, (_, _, unit) in COLUMNS.items()},
        "values_are": "raw (fractions, distances in the protocol's frame); the markdown applies the display units",
        "train_config": {k: v for k, v in cfg.items() if k in ("model", "loss", "optim")},
        "train_configs": {m: {k: v for k, v in _train_config(args, m, args.seeds[0]).to_dict().items()
                              if k in ("model", "loss", "optim")} for m in args.methods},
        "summary": summary, "best": best_per_metric(summary), "per_run": per_run,
    }
    result["run_time_s"] = round(time.perf_counter() - t0, 3)
    markdown = to_markdown(result)
    (args.out / "comparison.md").write_text(markdown)
    write_json(result, args.out / "comparison.json")
    print(markdown)
    return result
