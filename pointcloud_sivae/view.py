"""``python -m pointcloud_sivae.view``: the open3d viewer for interpolations, samples and reconstructions.

    python -m pointcloud_sivae.view interp/                     # interactive window
    python -m pointcloud_sivae.view interp/ --headless --out frames/   # PNG per frame, no display

Reads ``clouds.npz`` written by ``interpolate``, ``sample`` or ``reconstruct``.
A frame is one cloud (interpolation step, sample) or an input beside its
reconstruction. Keys in the window:

    Space  play / pause          Right or N  next frame      Left or P  previous frame
    Home   first frame           Q or Esc    quit
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from pointcloud_sivae.cli import add_verbose, bounded_float, run
from pointcloud_sivae.utils.arrays import ArrayFileError, check_clouds, load_arrays
from pointcloud_sivae.utils.render import (
    ROLE_COLORS,
    HeadlessRenderer,
    RenderError,
    configure_view,
    framing_points,
    import_open3d,
    make_point_cloud,
    save_png,
    side_by_side_offsets,
)

KEY_SPACE, KEY_RIGHT, KEY_LEFT, KEY_HOME = 32, 262, 263, 268


class Sequence:
    """The frames of a ``clouds.npz``: each frame is a list of (points, colour, offset).

    Raises:
        ValueError: missing file, or no known arrays in it.
    """

    def __init__(self, folder: str | Path):
        path = Path(folder)
        path = path / "clouds.npz" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(f"{path} not found; write one with python -m pointcloud_sivae.interpolate "
                             "(or sample / reconstruct)")
        arrays = load_arrays(path, "clouds.npz")
        if not isinstance(arrays, dict):
            raise ArrayFileError(path, "a .npy array where a clouds.npz archive was expected")
        for key in ("input", "reconstruction", "interpolation", "sample"):
            if key in arrays:
                arrays[key] = check_clouds(arrays[key], f"{path} ['{key}']")
        self.path = path
        if "input" in arrays and "reconstruction" in arrays:
            offs = side_by_side_offsets(2)
            self.frames = [[(a, ROLE_COLORS["real"], offs[0]), (b, ROLE_COLORS["reconstruction"], offs[1])]
                           for a, b in zip(arrays["input"], arrays["reconstruction"])]
            self.kind = "reconstruction"
        elif "interpolation" in arrays or "sample" in arrays:
            self.kind = "interpolation" if "interpolation" in arrays else "sample"
            role = "interpolation" if self.kind == "interpolation" else "generated"
            self.frames = [[(c, ROLE_COLORS[role], (0.0, 0.0, 0.0))] for c in arrays[self.kind]]
        else:
            raise ValueError(f"{path} holds none of interpolation, sample, input+reconstruction (found {list(arrays)})")
        clouds = np.concatenate([np.asarray(c) for frame in self.frames for c, _, _ in frame])
        self.extent = float(np.abs(clouds).max()) * 1.05

    def render_headless(self, out: Path) -> list[Path]:
        """Render every frame to ``out/frame_<k>.png``; returns the paths."""
        paths = []
        with HeadlessRenderer(width=360 if self.kind == "reconstruction" else 480) as r:
            for k, frame in enumerate(self.frames):  # pairs: each cloud alone, the same camera (render_row)
                img = r.render_row([c for c, _, _ in frame], [col for _, col, _ in frame], self.extent)
                paths.append(out / f"frame_{k:03d}.png")
                save_png(paths[-1], img)
        return paths


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Player:
    """Interactive open3d window playing a :class:`Sequence` (see the module docstring for keys)."""

    def __init__(self, seq: Sequence, fps: float = 6.0):
        if not _has_display():
            raise RenderError("no display for an interactive window (DISPLAY is not set); run with --headless "
                              "--out <folder> to render PNG frames instead")
        o3d = import_open3d()
        self.seq, self.interval, self.index, self.playing, self.last = seq, 1.0 / fps, 0, True, time.time()
        self.vis = o3d.visualization.VisualizerWithKeyCallback()
        if not self.vis.create_window(window_name=f"pointcloud-sivae: {seq.path}", width=960, height=720):
            raise RenderError("cannot open an OpenGL window on this display")
        offsets = [off for _, _, off in seq.frames[0]]
        self.vis.add_geometry(framing_points(seq.extent, offsets))
        self.clouds = [make_point_cloud(c + np.asarray(off), col) for c, col, off in seq.frames[0]]
        for pc in self.clouds:
            self.vis.add_geometry(pc, reset_bounding_box=False)
        configure_view(self.vis, max(len(c) for c, _, _ in seq.frames[0]), parallel=len(seq.frames[0]) > 1)
        for key, fn in ((KEY_SPACE, self._toggle), (KEY_RIGHT, self._next), (ord("N"), self._next),
                        (KEY_LEFT, self._prev), (ord("P"), self._prev), (KEY_HOME, self._first),
                        (ord("Q"), self._quit)):
            self.vis.register_key_callback(key, fn)
        self.vis.register_animation_callback(self._tick)
        print("keys: Space play/pause, Right/N next, Left/P previous, Home first, Q/Esc quit", file=sys.stderr)

    def _show(self, index: int) -> bool:
        self.index = index % len(self.seq.frames)
        for pc, (c, col, off) in zip(self.clouds, self.seq.frames[self.index]):
            fresh = make_point_cloud(c + np.asarray(off), col)
            pc.points, pc.colors = fresh.points, fresh.colors
            self.vis.update_geometry(pc)
        return True

    def _toggle(self, vis):
        self.playing = not self.playing
        return False

    def _next(self, vis):
        self.playing = False
        return self._show(self.index + 1)

    def _prev(self, vis):
        self.playing = False
        return self._show(self.index - 1)

    def _first(self, vis):
        return self._show(0)

    def _quit(self, vis):
        vis.close()
        return False

    def _tick(self, vis):
        if self.playing and time.time() - self.last >= self.interval:
            self.last = time.time()
            return self._show(self.index + 1)
        return False

    def run(self) -> None:
        self.vis.run()
        self.vis.destroy_window()


def view(args) -> None:
    seq = Sequence(args.path)
    if args.headless:
        if not args.out:
            raise ValueError("--headless needs --out <folder> for the PNG frames")
        paths = seq.render_headless(Path(args.out))
        print(f"rendered {len(paths)} frames to {args.out}", file=sys.stderr)
    else:
        Player(seq, args.fps).run()


def build_parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m pointcloud_sivae.view", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("path", help="folder (or .npz) written by interpolate, sample or reconstruct")
    p.add_argument("--headless", action="store_true", help="render PNG frames instead of opening a window")
    p.add_argument("--out", help="folder for --headless frames")
    p.add_argument("--fps", type=bounded_float(0, 120, open_low=True), default=6.0,
                   help="playback speed, frames per second, > 0 and <= 120 (default: 6)")
    add_verbose(p)
    return p


def main(argv=None) -> int:
    return run(view, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
