"""Result files of the evaluation commands: provenance fields and atomic JSON writes."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path


def provenance() -> dict:
    """The command line, the UTC time and the git revision, for every result file."""
    from pointcloud_sivae.train import _git_revision

    return {"command": sys.argv, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_revision": _git_revision()}


def write_json(result: dict, out: Path) -> None:
    """Write ``result`` to ``out`` through a temporary file and a rename (never half-written)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}", file=sys.stderr)
