"""A docs figure of written clouds (``sample``, ``interpolate``, ``reconstruct`` output) in two views.

    python scripts/figure_views.py runs/<run>/interpolation --out docs/figure.png [--azimuth 135 --tilt 20]

First the package's camera (front-left, slightly above, y up, as every PNG it writes), then the
same clouds turned by ``--azimuth`` degrees about the up axis and ``--tilt`` degrees towards a view
from above (:func:`pointcloud_sivae.utils.render.turned`), for shapes that one view shows edge-on
(ShapeNet's benches seen along their length, airplanes seen from the side). Clouds are read from
the folder's ``clouds.npz`` (the first array, up to ``--num``), in the evaluation frame; each view in
rows of ``--per-row``, readable at a web page's width.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pointcloud_sivae.cli import bounded_int  # noqa: E402
from pointcloud_sivae.utils.render import render_frames, save_png, tile, turned  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="output folder of sample, interpolate or reconstruct (clouds.npz)")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--num", type=bounded_int(1), default=10, help="clouds per row, >= 1 (default: 10)")
    p.add_argument("--per-row", type=bounded_int(1), default=5, help="clouds per row (default: 5)")
    p.add_argument("--views", choices=("both", "second"), default="both", help="both views, or the turned one")
    p.add_argument("--azimuth", type=float, default=135.0, help="second view: degrees about the up axis")
    p.add_argument("--tilt", type=float, default=20.0, help="second view: degrees towards a view from above")
    p.add_argument("--role", default="interpolation", help="colour: real, reconstruction, generated, interpolation")
    args = p.parse_args(argv)
    with np.load(args.folder / "clouds.npz") as z:
        key = next(k for k in z.files if k != "names")
        clouds = z[key][: args.num]
    views = ([clouds] if args.views == "both" else []) + [turned(clouds, args.azimuth, args.tilt)]
    save_png(args.out, np.concatenate([tile(render_frames(c, role=args.role), args.per_row) for c in views], axis=0))
    print(f"wrote {args.out} ({len(clouds)} clouds of {args.folder / 'clouds.npz'}: {key}, {len(views)} view(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
