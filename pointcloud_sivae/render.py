"""Rendering choices for static images of clouds (TensorBoard grids, figures).

One place for camera, colours and point size. ShapeNet clouds are y-up; the
camera looks from the front-left, slightly above.
"""

from __future__ import annotations

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
