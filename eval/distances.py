"""Chamfer and EMD matrices of sets of clouds; they live in :mod:`pointcloud_sivae.distances`,
the layer that training validation shares with evaluation."""

from pointcloud_sivae.distances import (
    EMD_BACKENDS,
    EMD_METHODS,
    POINTFLOW_LEVELS,
    as_clouds,
    emd_approx,
    emd_exact,
    paired_chamfer,
    paired_emd,
    pairwise_chamfer,
    pairwise_emd,
    resolve_emd_backend,
)

__all__ = ["EMD_BACKENDS", "EMD_METHODS", "POINTFLOW_LEVELS", "as_clouds", "emd_approx", "emd_exact",
           "paired_chamfer", "paired_emd", "pairwise_chamfer", "pairwise_emd", "resolve_emd_backend"]
