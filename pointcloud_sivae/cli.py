"""Shared command-line pieces of the inference commands (sample, reconstruct, interpolate)."""

from __future__ import annotations

import argparse
import sys

from pointcloud_sivae.checkpoint import CheckpointError
from pointcloud_sivae.render import RenderError


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--checkpoint", required=True, help="run folder (runs/<run>) or checkpoint .pt")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", help="prepared data root for dataset ids (default: the run's)")
    return p


def run(fn, args) -> int:
    """Call ``fn(args)``; print known errors as one clear line and return 2."""
    try:
        fn(args)
    except (ValueError, FileNotFoundError, CheckpointError, ImportError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
