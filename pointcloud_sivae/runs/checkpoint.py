"""Reading checkpoints: loaded safely (``weights_only=True``) and the model rebuilt from the file alone.

A checkpoint is a dict of tensors and plain Python values only: model and both
optimiser/scheduler states, epoch and step counters, RNG states, the resolved
config and the data manifest. The trainer writes them
(:mod:`pointcloud_sivae.training.checkpoint`); sampling, evaluation and the viewer read them
from here, with nothing of the trainer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from pointcloud_sivae.models.vae import SoftIntroVAE
from pointcloud_sivae.runs.config import RunConfig, upgrade_stored_config

CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("checkpoint_version", "model", "config", "epoch", "global_step")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or incompatible; the message says which in one line.
    ``detail`` keeps the underlying library's text for ``--verbose``."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder means its ``checkpoints/last.pt``; a file path is used as is.

    Raises:
        CheckpointError: nothing to load there.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass a run folder (runs/<run>) or a .pt file")
    return path


def error_detail(exc: BaseException) -> str:
    """The underlying text of an error (for ``--verbose``), never advice to load unsafely."""
    lines = [ln for ln in getattr(exc, "detail", "").splitlines() if "weights_only=False" not in ln]
    return "\n".join(lines)


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint file: ``<run>`` for ``<run>/checkpoints/x.pt``, else its folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint safely (``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: missing or unreadable file, or not a checkpoint of this package.
    """
    path = resolve_checkpoint_path(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes)")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint file (it starts with "
                              f"{magic!r}, not a zip archive's header)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised in one line of our own, the file named
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            raise CheckpointError(
                f"cannot read checkpoint {path}: it holds Python objects other than tensors and plain values, so "
                "it is not a pointcloud-sivae checkpoint and is not loaded (code inside such a file could run)",
                detail=text) from None
        if "zip archive" in text or "central directory" in text or "miniz" in text or "EOF" in text:
            raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated or damaged (its zip "
                                  "archive cannot be read); use another checkpoint of the run (best.pt) or train "
                                  "again", detail=text) from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {first}", detail=text) from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a pointcloud-sivae checkpoint (missing {missing})")
    if state["checkpoint_version"] != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state['checkpoint_version']}, this package reads {CHECKPOINT_VERSION}"
        )
    return state


def load_model(path: str | Path, device="cpu"):
    """Rebuild the model of a checkpoint from the checkpoint alone, in eval mode.

    Args:
        path: a run folder (its ``checkpoints/last.pt``) or a ``.pt`` file.

    Returns:
        ``(model, state)``: the :class:`~pointcloud_sivae.models.vae.SoftIntroVAE` on
        ``device`` and the checkpoint dict (config, manifest, epoch, ...).

    Raises:
        CheckpointError: unreadable checkpoint or weights that do not fit its config.
    """
    state = load_checkpoint(path)
    try:
        state["config"], _ = upgrade_stored_config(state["config"], where=str(path))
        cfg = RunConfig.from_dict(state["config"], where=f"config stored in {path}")
        model = SoftIntroVAE(**dataclasses.asdict(cfg.model))
        model.load_state_dict(state["model"])
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"incompatible checkpoint {path}: {exc}") from None
    return model.to(device).eval(), state


