"""What every command needs from its surroundings: the device, the code's revision, the
provenance fields of a result file, and writes that are never half-done.

The lowest layer of the package: it imports nothing from it, so training, inference,
preprocessing (``shapenet_prep``) and evaluation (``eval``) all use it without
loading each other.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import BinaryIO, Callable

import torch


def select_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises:
        ValueError: CUDA requested but not available, or an unknown device string.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {name} requested but CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda}); use --device cpu or --device auto"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


@cache
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA device with bf16 support, or a CPU with
    AVX512-BF16 or AMX instructions. Elsewhere bf16 autocast is emulated and slower than float32 (3.3x
    per epoch of the preset on a 2-core Xeon without them, docs/results.md, stage 26)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(probe() for probe in probes if probe is not None)
    return False


def git_revision() -> str:
    """The commit of the checkout this code runs from, or ``unknown`` (not a git checkout, no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def provenance() -> dict:
    """The command line, the UTC time and the git revision, for every result file."""
    return {"command": sys.argv, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_revision": git_revision()}


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """Write a file through ``write(f)`` on a temporary file in the same folder, flushed to
    disk (``durable``: ``fsync``; caches that can be rebuilt skip it), then renamed over
    ``path``: a crash or an error leaves the previous file (or none) and no temporary.
    Temporaries are named ``.<name>.<random>.tmp``.

    Raises:
        OSError: the folder cannot be created or written (the temporary is removed), or ``path`` is a
            directory (``IsADirectoryError`` naming it, not the temporary).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "it is a directory; give a file name, e.g. "
                                f"{path / 'result.json'}", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(result: dict, out: str | Path, announce: bool = True) -> None:
    """Write ``result`` as indented JSON to ``out`` atomically (see :func:`atomic_write`)."""
    text = (json.dumps(result, indent=2) + "\n").encode()
    atomic_write(out, lambda f: f.write(text))
    if announce:
        print(f"wrote {out}", file=sys.stderr)


def die_with_parent(parent: int) -> None:
    """Make this (worker) process end when process ``parent`` ends, even when ``parent`` is killed
    with SIGKILL and cannot clean up: on Linux the kernel sends SIGTERM on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread checks the parent every half
    second. Pass it as a process pool's ``initializer`` with ``initargs=(os.getpid(),)``."""
    import signal
    import threading
    import time

    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watcher below does it

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before the kernel was told
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
