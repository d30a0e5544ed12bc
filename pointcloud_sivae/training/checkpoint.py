"""Writing checkpoints (atomically) and resuming a run from one; reading them is
:mod:`pointcloud_sivae.runs.checkpoint`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from pointcloud_sivae.runs.checkpoint import (CHECKPOINT_VERSION, CheckpointError, load_checkpoint,
                                              resolve_checkpoint_path, run_dir_of)
from pointcloud_sivae.runs.config import FIELDS, FLAG_SECTION, RESUMABLE_OVERRIDES, RunConfig, set_field, upgrade_stored_config
from pointcloud_sivae.utils.runtime import atomic_write


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder,
    flushed to disk, then renamed over the target. A crash leaves the previous file."""
    atomic_write(path, lambda f: torch.save({"checkpoint_version": CHECKPOINT_VERSION, **state}, f))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files that a write killed mid-way left in ``folder``;
    returns what was removed. Only call it when no write is in progress there."""
    removed = []
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def resumed_config(stored: dict, overrides: dict[str, object], *, where: str) -> RunConfig:
    """The config of a resumed run: the stored one (upgraded, notes printed) with the flags of
    :data:`RESUMABLE_OVERRIDES` applied.

    Raises:
        CheckpointError: the stored config is not valid, or another flag differs from it.
    """
    stored, notes = upgrade_stored_config(stored, where=where)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        cfg = RunConfig.from_dict(stored, where=f"config stored in {where}")
    except ValueError as exc:
        raise CheckpointError(f"incompatible checkpoint: {exc}") from None
    conflicts = []
    for key, value in overrides.items():
        section = FLAG_SECTION[key]
        saved = getattr(getattr(cfg, section), key)
        set_field(cfg, section, key, value, where="command line")
        if key not in RESUMABLE_OVERRIDES and getattr(getattr(cfg, section), key) != saved:
            conflicts.append(f"--{key.replace('_', '-')} {value} (checkpoint: {saved})")
    if conflicts:
        raise CheckpointError(f"incompatible with the checkpoint's config: {', '.join(conflicts)}. A resumed run keeps "
                              f"its config (only {sorted(RESUMABLE_OVERRIDES)} may change); start a new run instead")
    return cfg


def config_changes(before: dict, after: dict) -> dict[str, list]:
    """``{"section.key": [before, after]}`` for every field two config dicts disagree on."""
    return {f"{section}.{key}": [before[section].get(key), value]
            for section in after for key, value in after[section].items()
            if before.get(section, {}).get(key) != value}


def check_run_config(run_dir: Path, stored: dict, where: str) -> None:
    """The run folder's ``config.json`` (what the run was) must agree with the checkpoint it resumes,
    except in the fields a resume may change.

    Raises:
        CheckpointError: naming the fields that differ, and both values, or the sections and keys of
            ``config.json`` that no run config has (an edit that would otherwise be ignored).
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    try:
        written, _ = upgrade_stored_config(json.loads(path.read_text()), where=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); restore it, or resume a copy of {where} in a new "
                              "folder") from None
    unknown = [f"[{section}]" for section in written if section not in FIELDS] + [
        f"{section}.{key}" for section, values in written.items() if section in FIELDS and isinstance(values, dict)
        for key in values if key not in FIELDS[section]]
    if unknown:
        raise CheckpointError(f"{path} holds {', '.join(unknown)}, which no run config has (an edit that would be "
                              "ignored); remove it, or pass a changed setting as a flag to --resume")
    stored = json.loads(json.dumps(stored))  # as JSON holds it: tuples are lists
    differ = {k: v for k, v in config_changes(written, stored).items() if k.split(".")[1] not in RESUMABLE_OVERRIDES}
    if differ:
        shown = ", ".join(f"{k} = {a!r} in config.json but {b!r} in the checkpoint" for k, (a, b) in differ.items())
        raise CheckpointError(f"{path} and {where} disagree ({shown}): the folder does not hold one run; restore "
                              "config.json, or resume a copy of the checkpoint in a new folder")


def resume_state(path: str | Path, overrides: dict[str, object]):
    """What a resume starts from: ``(checkpoint path, checkpoint state, the run's config with
    overrides)`` for a run folder or a ``.pt``.

    Raises:
        CheckpointError: missing/unreadable checkpoint, a flag that conflicts with the saved config
            (only :data:`~pointcloud_sivae.runs.config.RESUMABLE_OVERRIDES` may differ), a
            ``config.json`` that disagrees with the checkpoint, or ``--epochs`` that leaves nothing to train.
    """
    ckpt_path = resolve_checkpoint_path(path)
    state = load_checkpoint(ckpt_path)
    cfg = resumed_config(state["config"], overrides, where=str(ckpt_path))
    check_run_config(run_dir_of(ckpt_path), cfg.to_dict(), str(ckpt_path))
    if int(state["epoch"]) >= cfg.optim.epochs:
        raise CheckpointError(f"{run_dir_of(ckpt_path)} has trained {state['epoch']} epoch(s); --epochs "
                              f"{cfg.optim.epochs} leaves nothing to train: give --epochs above {state['epoch']} "
                              "to continue it")
    return ckpt_path, state, cfg
