"""Named normalisation protocols of the metrics; they live in :mod:`pointcloud_sivae.protocols`."""

from pointcloud_sivae.protocols import PROTOCOLS, apply_protocol

__all__ = ["PROTOCOLS", "apply_protocol"]
