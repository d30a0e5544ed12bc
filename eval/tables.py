"""The tables ``eval`` prints and the header of the JSON files it writes."""

from __future__ import annotations

import time

from pointcloud_sivae.metrics.evaluator import DISPLAY
from pointcloud_sivae.utils.runtime import provenance

DISPLAY_SCALE = {k: unit or "x1" for k, (_, unit) in DISPLAY.items()}
VALUES_ARE = ("raw: Chamfer distance squared L2 and EMD Euclidean, both mean over points in the protocol's "
              "frame; COV and 1-NNA as fractions in [0, 1]; JSD base-2 in [0, 1]")


def result_header(args, t0: float) -> dict:
    return {**provenance(), "protocol": args.protocol, "values_are": VALUES_ARE, "display_scale": DISPLAY_SCALE,
            "run_time_s": round(time.perf_counter() - t0, 3)}


def format_table(summary: dict[str, dict[str, float]], title: str) -> str:
    """A readable terminal table: metric, value in the field's display units, unit."""
    width = max([len("metric"), *map(len, summary)])
    lines = [title, f"{'metric':<{width}} {'value':>20}  unit", "-" * (width + 30)]
    for k, v in summary.items():
        scale, unit = DISPLAY.get(k, (1.0, ""))
        value = f"{v['mean'] * scale:.4f}" + (f" ± {v['std'] * scale:.4f}" if v.get("std") else "")
        lines.append(f"{k:<{width}} {value:>20}  {unit}")
    return "\n".join(lines)
