"""JSD between occupancy histograms, as PointFlow computes it; it lives in :mod:`pointcloud_sivae.jsd`,
the layer that training validation shares with evaluation."""

from pointcloud_sivae.jsd import (
    JSDFrameError,
    jensen_shannon_divergence,
    jsd_between_sets,
    jsd_convention,
    occupancy_histogram,
    outside_fraction,
    unit_cube_grid,
)

__all__ = ["JSDFrameError", "jensen_shannon_divergence", "jsd_between_sets", "jsd_convention",
           "occupancy_histogram", "outside_fraction", "unit_cube_grid"]
