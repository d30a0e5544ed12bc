"""Rendering choices for every image of clouds: TensorBoard grids (matplotlib),
headless PNG strips and GIFs and the interactive viewer (open3d).

One place for camera, colours, point size and image size. ShapeNet clouds are
y-up; both renderers look from the front-left, slightly above, at a fixed cube
of half-width ``extent`` so that frames of a sequence share one scale.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

ELEVATION_DEG = 20.0
AZIMUTH_DEG = -50.0
POINT_SIZE = 1.5
ROW_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # one colour per row
CELL_INCHES = 2.2
ZOOM = 1.6  # matplotlib's 3D axes leave a wide margin around the cube
DPI = 80


def render_grid(rows: list[np.ndarray], row_titles: list[str], extent: float = 0.5) -> np.ndarray:
    """Render clouds as an image grid, one row per group.

    Args:
        rows: list of (K, N, 3) float arrays (same K), y-up coordinates.
        row_titles: one title per row, e.g. ``["real", "reconstruction", "generated"]``.
        extent: half-width of the plotted cube, in the clouds' units.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = rows[0].shape[0]
    fig = plt.figure(figsize=(CELL_INCHES * k, CELL_INCHES * len(rows)), dpi=DPI)
    for r, (clouds, title) in enumerate(zip(rows, row_titles)):
        for c in range(k):
            ax = fig.add_subplot(len(rows), k, r * k + c + 1, projection="3d")
            p = clouds[c]
            # matplotlib's z axis is up: plot (x, z, y) so ShapeNet's y-up stands upright
            ax.scatter(p[:, 0], p[:, 2], p[:, 1], s=POINT_SIZE, c=ROW_COLORS[r % len(ROW_COLORS)], linewidths=0)
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_zlim(-extent, extent)
            ax.view_init(elev=ELEVATION_DEG, azim=AZIMUTH_DEG)
            ax.set_box_aspect((1, 1, 1), zoom=ZOOM)
            ax.set_axis_off()
            if c == 0:
                ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0, hspace=0.05)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def point_colors(n_points: int, row: int) -> np.ndarray:
    """(n_points, 3) uint8 colours for TensorBoard ``add_mesh``, matching :func:`render_grid`."""
    hexcol = ROW_COLORS[row % len(ROW_COLORS)].lstrip("#")
    rgb = [int(hexcol[i : i + 2], 16) for i in (0, 2, 4)]
    return np.tile(np.array(rgb, dtype=np.uint8), (n_points, 1))


# ----- open3d (headless PNG/GIF and the interactive viewer) -----------------------------------

ROLE_COLORS = {  # RGB in [0, 1], the same hues as ROW_COLORS
    "real": (0.12, 0.47, 0.71),
    "reconstruction": (1.0, 0.50, 0.05),
    "generated": (0.17, 0.63, 0.17),
    "interpolation": (0.58, 0.40, 0.74),
}
BACKGROUND = (1.0, 1.0, 1.0)
O3D_POINT_SIZE = 3.0  # pixels for a 2048-point cloud; sparser clouds get larger points


def point_size_for(num_points: int) -> float:
    """Point size keeping the rendered coverage of a cloud roughly independent of its point count."""
    return float(np.clip(O3D_POINT_SIZE * np.sqrt(2048 / max(num_points, 1)), 2.0, 8.0))
O3D_FRONT = (-0.6, 0.45, -0.66)  # direction from the scene centre towards the camera
O3D_UP = (0.0, 1.0, 0.0)
O3D_ZOOM = 0.42
IMAGE_WIDTH, IMAGE_HEIGHT = 480, 360
PAIR_SPACING = 1.1  # distance between side-by-side clouds (input | reconstruction), cloud units


def side_by_side_offsets(count: int, spacing: float = PAIR_SPACING) -> list[tuple[float, float, float]]:
    """Offsets placing ``count`` clouds left to right *on screen* (along the camera's right vector)."""
    front, up = np.asarray(O3D_FRONT, float), np.asarray(O3D_UP, float)
    right = np.cross(up, front)
    right /= np.linalg.norm(right)
    return [tuple(right * spacing * (k - (count - 1) / 2)) for k in range(count)]
GIF_FRAME_MS = 120


class RenderError(RuntimeError):
    """No way to render: no display for a window, or no headless OpenGL (EGL) backend."""


def import_open3d():
    """Import open3d, or raise ``ImportError`` naming the extra and the system library."""
    try:
        import open3d
    except ImportError as exc:
        raise ImportError("the viewer needs open3d: pip install 'pointcloud-sivae[viewer]'") from exc
    except OSError as exc:  # e.g. libusb-1.0.so.0 missing
        raise ImportError(f"open3d is installed but cannot load a system library ({exc}); on Debian/Ubuntu: "
                          "apt-get install libusb-1.0-0 libegl1 libgl1 (scripts/setup.sh does this)") from exc
    return open3d


SHADE_RANGE = (0.55, 1.0)  # brightness from the lowest to the highest point (depth cue)


def make_point_cloud(points: np.ndarray, color=ROLE_COLORS["real"], shade: bool = True):
    """An open3d ``PointCloud`` of (N, 3) points in one hue, shaded by height (y) when ``shade``."""
    o3d = import_open3d()
    points = np.asarray(points, dtype=np.float64)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if shade and len(points) > 1 and np.ptp(points[:, 1]) > 0:
        h = (points[:, 1] - points[:, 1].min()) / np.ptp(points[:, 1])
        k = SHADE_RANGE[0] + (SHADE_RANGE[1] - SHADE_RANGE[0]) * h
        pc.colors = o3d.utility.Vector3dVector(np.clip(k[:, None] * np.asarray(color)[None], 0, 1))
    else:
        pc.paint_uniform_color(color)
    return pc


def framing_points(extent: float, offsets=((0.0, 0.0, 0.0),)):
    """Corners of the cube(s) of half-width ``extent`` in the background colour: invisible,
    they fix the camera's framing so every frame of a sequence has the same scale."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * extent
    pts = np.concatenate([corners + np.asarray(o) for o in offsets])
    return make_point_cloud(pts, BACKGROUND, shade=False)


PARALLEL_FOV_DEG = 5.0  # open3d's narrowest field of view: a near-parallel projection
PERSPECTIVE_FOV_DEG = 60.0  # open3d's default field of view


def configure_view(vis, num_points: int = 2048, parallel: bool = False) -> None:
    """Apply the shared render options and camera to an open3d ``Visualizer``.

    ``parallel``: narrow the field of view to open3d's minimum (5 degrees), so that clouds placed side
    by side in one scene are seen from (nearly) the same direction; with the default perspective
    camera, a cloud left of centre is seen from its right and one right of centre from its left, so
    one cloud shown twice looks like two differently posed shapes."""
    opt = vis.get_render_option()
    opt.point_size = point_size_for(num_points)
    opt.background_color = np.asarray(BACKGROUND)
    opt.light_on = False  # flat colours: points read the same from every side
    ctr = vis.get_view_control()
    fov = PARALLEL_FOV_DEG if parallel else PERSPECTIVE_FOV_DEG  # set both ways: one window renders many frames
    ctr.change_field_of_view(step=fov - ctr.get_field_of_view())
    ctr.set_front(O3D_FRONT)
    ctr.set_up(O3D_UP)
    ctr.set_lookat((0.0, 0.0, 0.0))
    ctr.set_zoom(O3D_ZOOM)


class HeadlessRenderer:
    """Renders clouds to images without a display (open3d, EGL offscreen when there is no display).

    Use as a context manager; one hidden window is reused for every frame.

    Raises:
        ImportError: open3d missing (names the extra) or a system library missing.
        RenderError: no headless OpenGL backend either.
    """

    def __init__(self, width: int = IMAGE_WIDTH, height: int = IMAGE_HEIGHT):
        if not os.environ.get("XDG_RUNTIME_DIR"):  # Mesa's EGL complains without one
            os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="xdg-")
        o3d = import_open3d()
        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        self.vis = o3d.visualization.Visualizer()
        if not self.vis.create_window(visible=False, width=width, height=height):
            raise RenderError("cannot render: no display and no headless OpenGL backend (EGL); install Mesa "
                              "(apt-get install libegl1 libgl1 libgl1-mesa-dri) or run where a display is available")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.vis is not None:
            self.vis.destroy_window()
            self.vis = None

    def render(self, clouds: list[np.ndarray], colors: list, extent: float = 0.5, offsets=None) -> np.ndarray:
        """Render one or more (N, 3) clouds (each shifted by its offset) into one (H, W, 3) uint8 image.

        Several clouds share one scene, seen with a near-parallel projection (:func:`configure_view`);
        for pictures that compare clouds, :meth:`render_row` is exact."""
        offsets = offsets or [(0.0, 0.0, 0.0)] * len(clouds)
        self.vis.clear_geometries()
        self.vis.add_geometry(framing_points(extent, offsets), reset_bounding_box=True)
        for pts, color, off in zip(clouds, colors, offsets):
            self.vis.add_geometry(make_point_cloud(np.asarray(pts) + np.asarray(off), color), reset_bounding_box=False)
        configure_view(self.vis, max(len(c) for c in clouds), parallel=len(clouds) > 1)
        self.vis.poll_events()
        self.vis.update_renderer()
        img = np.asarray(self.vis.capture_screen_float_buffer(do_render=True))
        return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


    def render_row(self, clouds: list[np.ndarray], colors: list, extent: float = 0.5) -> np.ndarray:
        """(N, 3) clouds side by side, each rendered alone with the same camera and framing: every cloud is
        seen from the same direction, and one cloud shown twice gives two equal images. (H, K * W, 3) uint8."""
        return strip([self.render([c], [color], extent) for c, color in zip(clouds, colors)])


def turned(clouds: np.ndarray, azimuth_deg: float, tilt_deg: float) -> np.ndarray:
    """Clouds (..., N, 3) turned for a second view with the same camera: first by ``azimuth_deg`` about
    the up axis (y), then by ``tilt_deg`` about the camera's horizontal axis (positive: the camera
    looks from higher up). Same dtype; the shapes themselves are unchanged."""
    def about(axis, deg):
        axis, t = np.asarray(axis, float) / np.linalg.norm(axis), np.radians(deg)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k

    right = np.cross(O3D_UP, O3D_FRONT)
    R = about(right, tilt_deg) @ about(O3D_UP, azimuth_deg)
    return (np.asarray(clouds) @ R.T).astype(np.asarray(clouds).dtype)


def render_frames(clouds: np.ndarray, role: str = "interpolation", extent: float = 0.5) -> list[np.ndarray]:
    """Headless open3d render of each cloud of a (K, N, 3) sequence: K (H, W, 3) uint8 images."""
    with HeadlessRenderer() as r:
        return [r.render([c], [ROLE_COLORS[role]], extent) for c in clouds]


def strip(images: list[np.ndarray]) -> np.ndarray:
    """Images side by side: (H, sum W, 3)."""
    return np.concatenate(images, axis=1)


def tile(images: list[np.ndarray], per_row: int = 4) -> np.ndarray:
    """Equal-size images in rows of ``per_row`` (the last row padded with the background): a picture that
    stays readable at a web page's width (one row of eight 480-px renders shrinks each to 110 px)."""
    blank = np.full_like(images[0], 255)
    rows = [images[i:i + per_row] for i in range(0, len(images), per_row)]
    if len(images) > per_row:
        rows[-1] = rows[-1] + [blank] * (per_row - len(rows[-1]))
    return np.concatenate([strip(r) for r in rows], axis=0)


def save_png(path: str | Path, image: np.ndarray) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def save_gif(path: str | Path, frames: list[np.ndarray], frame_ms: int = GIF_FRAME_MS, bounce: bool = True) -> None:
    """Animated GIF, looping forever; ``bounce`` plays the sequence forth and back."""
    from PIL import Image

    seq = frames + frames[-2:0:-1] if bounce and len(frames) > 2 else frames
    images = [Image.fromarray(f) for f in seq]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
