"""``python -m pointcloud_sivae.train``: train a Soft-IntroVAE (or a baseline) on a prepared category.

    python -m pointcloud_sivae.train --category airplane --data-root data/shapenet
    python -m pointcloud_sivae.train --resume runs/<run>

The trainer is :class:`pointcloud_sivae.training.trainer.Trainer`; one step of each method is in
:mod:`pointcloud_sivae.training.steps`, its arithmetic in :mod:`pointcloud_sivae.objectives`.
"""

from __future__ import annotations

import argparse
import sys

from pointcloud_sivae.cli import add_verbose
from pointcloud_sivae.runs.checkpoint import CheckpointError, error_detail
from pointcloud_sivae.runs.config import add_config_flags, explicit_flags, list_presets, resolve_config
from pointcloud_sivae.training.distributed import (end_with_launcher, exit_worker, init_from_env, is_peer_failure,
                                                   launched_by_torchrun, leave)
from pointcloud_sivae.training.steps import NonFiniteLossError
from pointcloud_sivae.training.trainer import Trainer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pointcloud_sivae.train",
        description="Train a Soft-IntroVAE on a prepared ShapeNet category "
        "(prepare it first with python -m shapenet_prep).",
    )
    p.add_argument("--config", help="JSON or TOML file with [model] [loss] [optim] [data] [train] tables")
    p.add_argument("--resume", metavar="RUN", help="run folder (runs/<run>) or checkpoint .pt to continue")
    p.add_argument("--preset", help="named settings shipped with the package, applied before --config and flags "
                                    "(see --list-presets)")
    p.add_argument("--list-presets", action="store_true", help="print the presets and what each is for, then exit")
    add_verbose(p)
    add_config_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_presets:
        for name, text in list_presets().items():
            print(f"{name}: {text}")
        return 0
    flags = explicit_flags(args)
    trainer, finished = None, False
    end_with_launcher()
    try:
        ctx = init_from_env(flags.get("device", "auto"))
        if args.resume:
            if args.config or args.preset:
                raise CheckpointError("--config and --preset cannot be combined with --resume: a resumed run "
                                      "keeps its config")
            placed = [f"--{k.replace('_', '-')}" for k in ("out_dir", "run_name") if k in flags]
            if placed:
                raise CheckpointError(f"{' and '.join(placed)} cannot be combined with --resume: a resumed run stays "
                                      f"in its folder ({args.resume}); to continue it elsewhere, copy that folder "
                                      "and resume the copy")
            trainer = Trainer.resume(args.resume, flags, dist_ctx=ctx)
        else:
            trainer = Trainer.new_run(resolve_config(args.config, flags, args.preset), dist_ctx=ctx)
        trainer.fit()
        finished = True
    except (ValueError, FileNotFoundError, FileExistsError, NonFiniteLossError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.verbose and error_detail(exc):
            print(error_detail(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system error not foreseen above (a full disk): one line, path and cause
        last = trainer.folder.checkpoints / "last.pt" if trainer is not None else None
        print(f"error: {exc.filename or trainer.run_dir if trainer else ''}: {exc.strerror or exc}"
              + (f"; the last good checkpoint {last} is intact: free some space, then resume with --resume "
                 f"{trainer.run_dir}" if last is not None and last.exists() else ""), file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not is_peer_failure(exc):
            raise
        where = trainer.run_dir if trainer is not None else "the run folder"
        print(f"error: another process of this run ended ({str(exc).splitlines()[0][:120]}); this one stops too. "
              f"Resume with: torchrun --nproc_per_node=N -m pointcloud_sivae.train --resume {where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if trainer is not None:
            print(f"\ninterrupted; continue with: python -m pointcloud_sivae.train --resume {trainer.run_dir} "
                  f"(restarts after epoch {trainer.epoch}, the last checkpoint)", file=sys.stderr)
        return 130
    finally:
        leave(finished)
    if trainer.dist.is_main:
        print(f"done: {trainer.run_dir} ({trainer.summary()})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    code = main()
    if launched_by_torchrun():
        exit_worker(code)
    sys.exit(code)
