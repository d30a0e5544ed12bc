"""The command-line vocabulary shared by every command: one definition per option.

An option that means one thing is defined here once and spelled the same in every
command (``--checkpoint``, ``--device``, ``--chamfer-backend``, ``--progress``,
``--verbose``, ``--protocol``, ``--emd``...); each command adds what is its own.
``tests/test_cli_help.py`` checks that every ``--help`` usage line runs as printed.
"""

from __future__ import annotations

import argparse
import math
import sys

from pointcloud_sivae.runs.checkpoint import CheckpointError, error_detail
from pointcloud_sivae.ops.chamfer import CHOICES as CHAMFER_CHOICES
from pointcloud_sivae.utils.render import RenderError

SPLITS = ("train", "val", "test")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def bounded_int(low: int, high: int | None = None):
    """An argparse ``type`` for integers in ``[low, high]``: another value is a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be >= {low}" + (f" and <= {high}" if high is not None else "")
                                             + f", got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


MAX_SEED = 2**63 - 1  # every seed of every command: 0 ... the largest a torch generator and numpy both take


def seed_int(text: str) -> int:
    """An argparse ``type`` for a seed: an integer in ``[0, MAX_SEED]``, one rule for every command."""
    return bounded_int(0, MAX_SEED)(text)


seed_int.__name__ = "seed"


def bounded_float(low: float, high: float | None = None, *, open_low: bool = False):
    """An argparse ``type`` for finite numbers in ``[low, high]`` (``(low, high]`` with ``open_low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if open_low else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            rng = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {rng}, got {text}")
        return value

    parse.__name__ = f"number >= {low:g}"
    return parse


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) for argparse."""
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


parse_bool.__name__ = "true or false"


def add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="run folder (runs/<run>: its checkpoints/last.pt) or a checkpoint .pt file")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")


def add_run_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="prepared data root of the run's category (default: the one it trained on)")


def add_category(p: argparse.ArgumentParser, what: str) -> None:
    """``--category``: one category of a model trained on several (``what`` it selects)."""
    p.add_argument("--category", help=f"for a model trained on several categories: {what} (default: all of its "
                                      "categories); a one-category model takes its own category or none")


def add_chamfer_backend(p: argparse.ArgumentParser, what: str) -> None:
    """``--chamfer-backend``: which nearest-neighbour search computes ``what``."""
    p.add_argument("--chamfer-backend", default="auto", choices=CHAMFER_CHOICES,
                   help=f"nearest-neighbour search of {what}: auto (numba on CPU; on CUDA KeOps, pytorch3d, then "
                        "torch for losses, torch for matrices) (default: auto)")


def add_progress(p: argparse.ArgumentParser, default: bool) -> None:
    p.add_argument("--progress", type=parse_bool, default=default, metavar="{true,false}",
                   help=f"tqdm progress bars (default: {str(default).lower()})")


def add_verbose(p: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """``--verbose``; on a subcommand its default is suppressed so that the flag given before the
    subcommand is not reset by the subcommand's default."""
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS if subcommand else False,
                   help="print the underlying details of an error")


def add_protocol(p: argparse.ArgumentParser, default: str = "pointflow") -> None:
    from pointcloud_sivae.metrics.protocols import PROTOCOLS

    p.add_argument("--protocol", choices=PROTOCOLS, default=default,
                   help="frame the metrics are computed in: pointflow (de-normalised source frame), norm_box "
                        f"(each cloud in [-1, 1]^3, DPM/LION), none (the model frame) (default: {default})")


def add_emd(p: argparse.ArgumentParser, default: str = "approx") -> None:
    p.add_argument("--emd", choices=("approx", "exact", "none"), default=default,
                   help="EMD: approx (PointFlow's approxmatch), exact (Hungarian), or none for Chamfer metrics and "
                        f"JSD only (default: {default})")


def add_num_importance(p: argparse.ArgumentParser, default: int, low: int = 0) -> None:
    p.add_argument("--num-importance", type=bounded_int(low), default=default,
                   help=f"K importance samples per shape for log p(x), >= {low}"
                        + (" (0 skips the likelihood columns)" if low == 0 else "") + f" (default: {default})")


def add_sampler(p: argparse.ArgumentParser) -> None:
    """``--sampler``, ``--gmm-components`` and ``--temperature``: where the latent codes of generated
    clouds come from (:class:`~pointcloud_sivae.models.latent_density.Sampler`)."""
    from pointcloud_sivae.models.latent_density import DEFAULT_GMM_COMPONENTS, DEFAULT_SAMPLER, MAX_TEMPERATURE, SAMPLERS

    p.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER,
                   help="latent codes of generated clouds: prior (the model's N(0, prior_std^2 I)), gmm (a Gaussian "
                        "mixture fitted to the posterior means of the training split after training, Ghosh et al. "
                        "2020), gmm-aggregate (the same mixture fitted to draws from the training posteriors "
                        "q(z|x), the aggregated posterior) or aggregated-posterior (that density itself: a "
                        "training shape at random, then a draw from its posterior; no fit) "
                        f"(default: {DEFAULT_SAMPLER})")
    p.add_argument("--gmm-components", type=bounded_int(1), default=None,
                   help="components of the --sampler gmm / gmm-aggregate mixture (full covariances), >= 1; refused "
                        f"with the other samplers (default: {DEFAULT_GMM_COMPONENTS})")
    p.add_argument("--temperature", type=bounded_float(0.0, MAX_TEMPERATURE, open_low=True), default=1.0,
                   help="--sampler prior only: draw codes from N(0, (T prior_std)^2 I), the prior's standard deviation "
                        f"scaled by T in (0, {MAX_TEMPERATURE:g}] (Glow's sampling temperature; below 1, nearer the "
                        "prior's mode) (default: 1)")


def command_parser(prog: str, description: str, add_options) -> argparse.ArgumentParser:
    """The parser of ``prog`` with the options ``add_options(parser)`` adds (a command that is also
    a subcommand elsewhere adds the same options there)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_options(p)
    return p


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options of the checkpoint-driven commands (sample, reconstruct, interpolate)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_checkpoint(p)
    p.add_argument("--out", required=True, help="output folder (created)")
    add_device(p)
    add_run_data_root(p)
    add_verbose(p)
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
    except OSError as exc:  # an --out under a file, no permission, a full disk, a name too long
        where = f"cannot write {exc.filename}: " if exc.filename else "cannot write: "
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
