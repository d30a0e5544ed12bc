"""Sweeps (``python -m pointcloud_sivae.sweep``): a grid of training settings times seeds, scored on the
val split.

    python -m pointcloud_sivae.sweep --data-root data/mn40_256 --epochs 100 --seeds 0 1 2 \\
        --grid beta_neg=64,256,1024 --grid beta_kl=0.5,1 --methods soft-intro --out runs/sweep

Every cell of the Cartesian product of the ``--grid`` values is a set of training config
fields on top of ``--config`` and ``--set``; for each cell, method and seed a run
``<out>/cells/<cell>/runs/<method>-seed<seed>`` is trained (a finished run is reused, an
interrupted one resumed) and its checkpoint is scored on the **val** split, never the
test split: the generation table (MMD, COV, 1-NNA with Chamfer distance, JSD, the
diversity ratio), reconstruction CD and, with ``--num-importance K``, the ELBO and IW
``log p(x)``. ``sweep.md`` / ``sweep.json`` hold per-run values and mean ± std over seeds
per cell and method, and the cell chosen by ``--select`` (default 1-NNA-CD, closest to
50 %). The chosen configuration is then scored once on the test split with
``python -m pointcloud_sivae.compare``; the command to do so is printed.

``--jobs J`` trains J runs at once in worker processes (one thread each), the way to use
the cores of a small machine: at 256 points a PointNet step does not spread over threads.
"""

from __future__ import annotations

import copy
import itertools
import sys
import time
from pathlib import Path


from pointcloud_sivae.experiments.compare import (
    COLUMNS,
    DIRECTION_TEXT,
    _check_protocol,
    badness,
    _train_config,
    score_run,
    train_all,
)
from pointcloud_sivae.metrics.evaluator import summarize
from pointcloud_sivae.runs.config import FLAG_SECTION
from pointcloud_sivae.utils.runtime import provenance, write_json


def parse_grid(items: list[str]) -> list[dict[str, str]]:
    """``["a=1,2", "b=x"]`` -> ``[{"a": "1", "b": "x"}, {"a": "2", "b": "x"}]`` (product, in order).

    Raises:
        ValueError: an item without ``=``, a key given twice, or an empty value list.
    """
    keys, values = [], []
    for item in items:
        key, sep, vals = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        vs = [v.strip() for v in vals.split(",") if v.strip()]
        if not sep or not vs:
            raise ValueError(f"--grid {item!r}: expected KEY=V1,V2,... (e.g. beta_neg=64,256)")
        if key in keys:
            raise ValueError(f"--grid {key} given twice; list all its values in one --grid")
        keys.append(key)
        values.append(vs)
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)] if keys else [{}]


def parse_cells(items: list[str]) -> list[dict[str, str]]:
    """``["a=1;b=x,y"]`` -> ``[{"a": "1", "b": "x,y"}]``: cells given in full.

    Raises:
        ValueError: a part without ``=`` or a key given twice in one cell.
    """
    cells = []
    for item in items:
        cell: dict[str, str] = {}
        for part in filter(None, (x.strip() for x in item.split(";"))):
            key, sep, value = part.partition("=")
            key = key.strip().lstrip("-").replace("-", "_")
            if not sep or not value.strip():
                raise ValueError(f"--cell {item!r}: expected KEY=V[;KEY=V...] (e.g. 'beta_rec=20;warmup_epochs=20')")
            if key in cell:
                raise ValueError(f"--cell {item!r}: {key} given twice")
            cell[key] = value.strip()
        cells.append(cell)
    return cells


def cell_name(cell: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in cell.items()) or "base"


def _cell_args(args, cell: dict[str, str]):
    a = copy.copy(args)
    a.overrides = list(args.overrides) + [f"{k}={v}" for k, v in cell.items()]
    a.out = args.out / "cells" / cell_name(cell)
    a.split = "val"
    return a


def run_sweep(args) -> dict:
    t0 = time.perf_counter()
    cells = (parse_grid(args.grid) if args.grid or not args.cell else []) + parse_cells(args.cell)
    for flag, items in (("--grid", args.grid), ("--cell", args.cell)):
        for item in items:
            for key in (parse_grid([item])[0] if flag == "--grid" else parse_cells([item])[0]):
                if key not in FLAG_SECTION:
                    raise ValueError(f"{flag} {item}: {key} is not a training config field; valid keys: "
                                     f"{', '.join(sorted(FLAG_SECTION))}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be positive, got {args.jobs}")
    jobs = [(cell, method, seed) for cell in cells for method in args.methods for seed in args.seeds]
    for cell in cells:  # every cell's flags, for every method, checked before anything trains
        for method in args.methods:
            _train_config(_cell_args(args, cell), method, args.seeds[0])
    _check_protocol(args)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"[sweep] {len(cells)} cell(s) x {len(args.methods)} method(s) x {len(args.seeds)} seed(s) = "
          f"{len(jobs)} runs of {args.epochs} epochs -> {args.out}", file=sys.stderr)
    cell_args = {cell_name(c): _cell_args(args, c) for c in cells}
    done = train_all([(cell_args[cell_name(c)], m, s) for c, m, s in jobs], args.jobs)
    trained = {(cell_name(c), m, s): done[(id(cell_args[cell_name(c)]), m, s)] for c, m, s in jobs}
    per_run: dict[str, dict[str, list[dict]]] = {}
    ev_cache: dict = {}
    for cell, method, seed in jobs:
        run_dir, train_time = trained[(cell_name(cell), method, seed)]
        scores = score_run(cell_args[cell_name(cell)], Path(run_dir), seed, ev_cache)
        scores["train-time"] = train_time
        per_run.setdefault(cell_name(cell), {}).setdefault(method, []).append({"seed": seed, "run": str(run_dir),
                                                                                 **scores})
        print(f"[sweep] {cell_name(cell)} {method} seed {seed} (val): " + ", ".join(
            f"{k} {v:.4g}" for k, v in scores.items() if k in COLUMNS), file=sys.stderr)
    summary = {c: {m: summarize(runs, COLUMNS) for m, runs in by_method.items()} for c, by_method in per_run.items()}
    direction = COLUMNS[args.select][0]
    def eligible(c: str, m: str) -> bool:  # an introspective method must keep its game on in every run
        return all(r.get("kl-gap", 1.0) > 0 for r in per_run[c][m])

    candidates = [(c, m) for c in summary for m in summary[c] if args.select in summary[c][m]]
    ranked = sorted([cm for cm in candidates if eligible(*cm)] or candidates,
                    key=lambda cm: badness(direction, summary[cm[0]][cm[1]][args.select]["mean"]))
    chosen = {"cell": ranked[0][0], "method": ranked[0][1], "metric": args.select,
              "direction": DIRECTION_TEXT[direction], "eligible": eligible(*ranked[0]),
              "ranking": [f"{c} {m}" for c, m in ranked], **summary[ranked[0][0]][ranked[0][1]][args.select]}
    ev = ev_cache["ev"]
    result = {
        **provenance(), "kind": "sweep", "split": "val", "category": args.category, "data_root": args.data_root,
        "grid": args.grid, "cells": [cell_name(c) for c in cells], "methods": args.methods, "seeds": args.seeds,
        "epochs": args.epochs, "base_overrides": args.overrides, "checkpoint_choice": args.checkpoint_choice,
        "protocol": args.protocol, "num_reference": int(len(ev.reference)), "num_points": int(ev.reference.shape[1]),
        "distance_implementations": ev.distance_implementations(), "selection": chosen,
        "values_are": "raw (fractions, distances in the protocol's frame); the markdown applies the display units",
        "summary": summary, "per_run": per_run, "run_time_s": round(time.perf_counter() - t0, 3),
    }
    result["test_command"] = final_test_command(args, chosen, {cell_name(c): c for c in cells}[chosen["cell"]])
    markdown = to_markdown(result)
    (args.out / "sweep.md").write_text(markdown)
    write_json(result, args.out / "sweep.json")
    print(markdown)
    return result


def final_test_command(args, chosen: dict, cell: dict[str, str]) -> str:
    """The ``python -m pointcloud_sivae.compare`` call that scores the chosen cell on the test split once."""
    sets = list(args.overrides) + [f"{k}={v}" for k, v in cell.items()]
    return (f"python -m pointcloud_sivae.compare --data-root {args.data_root} --category {args.category} --epochs {args.epochs} "
            f"--seeds {' '.join(map(str, args.seeds))} --methods {chosen['method']} "
            + (f"--preset {args.preset} " if args.preset else "") + (f"--config {args.config} " if args.config else "")
            + " ".join(f"--set {s}" for s in sets)
            + f" --checkpoint-choice {args.checkpoint_choice} --protocol {args.protocol} --emd {args.emd}"
            + f" --out {args.out / 'test'}")


def to_markdown(result: dict) -> str:
    summary = result["summary"]
    metrics = [k for k in COLUMNS if any(k in summary[c][m] for c in summary for m in summary[c])]
    head = (f"# Sweep on the val split: {result['category']}, {result['num_points']} points\n\n"
            f"{len(result['cells'])} cell(s), methods {result['methods']}, seeds {result['seeds']}, "
            f"{result['epochs']} epochs each; common settings `{' '.join(result['base_overrides']) or 'none'}`; "
            f"checkpoint `{result['checkpoint_choice']}.pt`; |R| = |S| = {result['num_reference']} val shapes, "
            f"protocol `{result['protocol']}`, Chamfer {result['distance_implementations']['chamfer']}. "
            "Values are mean ± std over seeds.\n\n")
    lines = ["| cell | method | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for c, by_method in summary.items():
        for m, vals in by_method.items():
            cells = []
            for k in metrics:
                _, scale, _ = COLUMNS[k]
                v = vals.get(k)
                cells.append("—" if v is None else f"{v['mean'] * scale:.4g} ± {v['std'] * scale:.2g}")
            lines.append(f"| `{c}` | {m} | " + " | ".join(cells) + " |")
    units = ", ".join(f"{k} {COLUMNS[k][2]}" for k in metrics if COLUMNS[k][2])
    s = result["selection"]
    return (head + "\n".join(lines) + f"\n\nUnits: {units}.\n\nChosen on val by {s['metric']} ({s['direction']}): "
            f"`{s['cell']}`, {s['method']}. Score it once on the test split with:\n\n    {result['test_command']}\n")
