"""Shared command-line pieces of the inference commands (sample, reconstruct, interpolate)."""

from __future__ import annotations

import argparse
import sys

from pointcloud_sivae.checkpoint import CheckpointError, error_detail
from pointcloud_sivae.render import RenderError


def bounded_int(low: int):
    """An argparse ``type`` for integers ``>= low``: a smaller value is a usage error naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--checkpoint", required=True, help="run folder (runs/<run>, its last.pt) or a checkpoint .pt")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--data-root", help="prepared data root for dataset ids (default: the run's)")
    p.add_argument("--verbose", action="store_true", help="print the underlying details of an error")
    return p


def run(fn, args) -> int:
    """Call ``fn(args)``; print known errors as one clear line and return 2."""
    try:
        fn(args)
    except (ValueError, FileNotFoundError, CheckpointError, ImportError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "verbose", False) and error_detail(exc):
            print(error_detail(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # an --out under a file, no permission, a full disk
        print(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def run_subcommand(name: str, add_parser, fn, argv: list[str] | None = None) -> int:
    """``python -m pointcloud_sivae.<name>``: the parser that ``add_parser`` adds to a subcommand
    table (the one ``python -m eval <name>`` uses too), parsed and run with :func:`run`."""
    p = argparse.ArgumentParser(prog="python -m pointcloud_sivae")
    add_parser(p.add_subparsers(dest="command", required=True))
    return run(fn, p.parse_args([name, *(sys.argv[1:] if argv is None else argv)]))
