"""ShapeNet preprocessing: turn a ShapeNet release into a prepared dataset.

A prepared dataset for one category is a folder ``<out>/<category>/`` holding
``train.npz``, ``val.npz``, ``test.npz`` (arrays ``points`` (M, N, 3) float32,
normalised; ``ids`` (M,) str; ``shift`` (M, 3) and ``scale`` (M,) float32, the
normalisation of each cloud) and ``manifest.json`` (source, format, split seed and
membership, points per cloud, normalisation, counts, skipped files).
"""

from shapenet_prep.errors import MalformedShapeError
from shapenet_prep.prepare import PrepareOptions, prepare_category

__all__ = ["MalformedShapeError", "PrepareOptions", "prepare_category"]
