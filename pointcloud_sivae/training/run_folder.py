"""The run folder: what a run writes beside its weights, and how it writes them.

``runs/<run>/`` holds ``config.json``, ``manifest.json`` (the data's), ``run_info.json``
(one entry per session: command, revision, device, backends, processes, points),
``metrics.jsonl`` (one line per epoch), the TensorBoard events and ``checkpoints/``
(``last.pt`` after every epoch, ``best.pt``), each checkpoint written atomically.
"""

from __future__ import annotations

import copy
import datetime as _dt
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from pointcloud_sivae.data.prepared import category_names
from pointcloud_sivae.training.checkpoint import remove_stale_temporaries, save_checkpoint
from pointcloud_sivae.runs.config import RunConfig
from pointcloud_sivae.training.distributed import DistContext
from pointcloud_sivae.utils.runtime import provenance


NAME_MAX = 255  # bytes in one file or folder name (Linux and macOS file systems)


class RunFolderError(ValueError):
    """The run folder cannot be written (permissions, a file in the way, a full disk)."""


def new_run_dir(cfg: RunConfig, dist: DistContext) -> tuple[RunConfig, Path]:
    """The config of a new run (a new object: canonical category, its run name) and its folder
    ``<out_dir>/<run_name>``; the name defaults to ``<category>-<timestamp>``, rank 0's in every process.

    Raises:
        FileExistsError: the folder already holds a run (the message says how to resume it).
    """
    cfg = copy.deepcopy(cfg)
    names = category_names(cfg.data.category)
    cfg.data.category = names[0] if len(names) == 1 else names
    name = cfg.train.run_name or f"{'+'.join(names)}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if dist.enabled:  # one name for all processes: rank 0's
        box = [name]
        torch.distributed.broadcast_object_list(box, src=0)
        name = box[0]
    longest = max(name.split("/"), key=lambda part: len(part.encode()))
    if len(longest.encode()) > NAME_MAX:
        raise ValueError(f"--run-name {longest[:40]}... is {len(longest.encode())} bytes long; a folder name holds at "
                         f"most {NAME_MAX}: choose a shorter --run-name")
    cfg.train.run_name = name
    run_dir = Path(cfg.train.out_dir) / name
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise FileExistsError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another "
                              "--run-name")
    if dist.enabled:
        torch.distributed.barrier()  # every process checks for an existing run before rank 0 writes one
    return cfg, run_dir


class RunFolder:
    """Writes one run's files into ``path``."""

    LOCK_NAME = ".lock"  # held (flock) by the process that trains in the folder; the kernel frees it when it dies

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.metrics = self.path / "metrics.jsonl"
        self._lock = None  # the open lock file, while this process trains here

    def check(self, checkpoint_bytes: int) -> None:
        """Before any training: the folder can be created and written, no other process trains in it
        (:meth:`lock`), and it has room for two checkpoints of ``checkpoint_bytes`` (a written one is
        replaced atomically). Removes temporaries a killed checkpoint write left.

        Raises:
            RunFolderError: naming the path and the cause.
        """
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            probe = self.checkpoints / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise RunFolderError(f"cannot write the run folder {self.path}: {exc.strerror or exc} "
                                 f"({exc.filename or self.checkpoints}); choose another --out-dir or fix its "
                                 "permissions") from None
        self.lock()
        need, free = 2 * checkpoint_bytes, shutil.disk_usage(self.checkpoints).free
        if free < need:
            raise RunFolderError(f"not enough free space for checkpoints in {self.checkpoints}: {free / 2**20:.1f} "
                                 f"MiB free, {need / 2**20:.1f} MiB needed; free some space or choose another "
                                 "--out-dir")
        removed = remove_stale_temporaries(self.checkpoints)
        if removed:
            print(f"removed {len(removed)} temporary file(s) left by an interrupted checkpoint write in "
                  f"{self.checkpoints}", file=sys.stderr)

    def lock(self) -> None:
        """Hold the folder's lock for the rest of this process (an advisory ``flock`` on ``.lock``, which
        the kernel releases when the process ends, killed or not: a dead run never blocks its own
        ``--resume``). Two trainings in one folder would write every epoch twice into ``metrics.jsonl``
        and whichever checkpoint came last.

        Raises:
            RunFolderError: another live process holds it (its pid named).
        """
        if self._lock is not None:
            return
        handle = open(self.path / self.LOCK_NAME, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderError(f"{self.path} is in use: another training process (pid {holder}) is writing this "
                                 "run; wait for it to end (then --resume it), or choose another --run-name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        """Release the lock of :meth:`lock` (the end of a training session)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write_run_files(self, config: dict, manifest: dict) -> None:
        """Write what the run is: ``config.json`` and ``manifest.json`` (once, when it starts)."""
        (self.path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (self.path / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    def add_session(self, session: dict) -> None:
        """Add ``session`` (with its provenance) to ``run_info.json``."""
        info_path = self.path / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {"sessions": []}
        origin = provenance()  # the fields every result file carries; a session says "started"
        info["sessions"].append({"started": origin["created"], "command": origin["command"],
                                 "git_revision": origin["git_revision"], "torch": torch.__version__, **session})
        info_path.write_text(json.dumps(info, indent=2) + "\n")

    def keep_metrics_until(self, epoch: int) -> None:
        """``metrics.jsonl`` keeps the epochs up to ``epoch`` (a checkpoint's; later ones are retrained)."""
        if self.metrics.exists():
            keep = [ln for ln in self.metrics.read_text().splitlines() if ln and json.loads(ln)["epoch"] <= epoch]
            self.metrics.write_text("".join(ln + "\n" for ln in keep))

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")

    def save(self, state: dict, name: str) -> None:
        """Write ``checkpoints/<name>.pt`` atomically.

        Raises:
            RunFolderError: the write failed; the message says whether ``last.pt`` is intact.
        """
        path, last = self.checkpoints / f"{name}.pt", self.checkpoints / "last.pt"
        try:
            save_checkpoint(state, path)
        except OSError as exc:
            raise RunFolderError(
                f"cannot write checkpoint {path}: {exc.strerror or exc}; "
                + (f"the last good checkpoint {last} is intact (resume with --resume {self.path} once there "
                   "is room)" if last.exists() else "no checkpoint was written yet")) from None

    def remove_temporaries(self) -> None:
        if self.checkpoints.is_dir():
            remove_stale_temporaries(self.checkpoints)
