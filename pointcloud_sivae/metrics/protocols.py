"""Named normalisation protocols applied to clouds before the metrics (docs/metrics.md).

Numbers from different protocols are not comparable; every result records its protocol.

* ``pointflow``: PointFlow / PVD / LION. Clouds are de-normalised to the source
  frame: the training-set global mean/std is undone (``global``), or nothing is done
  (``none``). Data prepared with a per-shape normalisation cannot be de-normalised
  for generated clouds, so this protocol refuses it.
* ``norm_box``: DPM / LION. Each cloud, generated or real, is scaled independently
  to its bounding box ``[-1, 1]^3``.
* ``none``: the clouds as the model sees them (the prepared, normalised frame).
"""

from __future__ import annotations

import numpy as np

from pointcloud_sivae.data.normalization import EvaluationFrame, normalization_params, normalize

PROTOCOLS = ("pointflow", "norm_box", "none")


def apply_protocol(clouds: np.ndarray, protocol: str, normalization: dict) -> np.ndarray:
    """Bring model-frame clouds into the frame a protocol scores them in.

    Args:
        clouds: (M, N, 3) float array in the prepared (normalised) frame.
        protocol: one of :data:`PROTOCOLS`.
        normalization: the ``normalization`` block of the data manifest.

    Returns:
        (M, N, 3) float32 array.

    Raises:
        ValueError: unknown protocol, or ``pointflow`` on per-shape-normalised data.
    """
    clouds = np.asarray(clouds, dtype=np.float32)
    if protocol == "none":
        return clouds
    if protocol == "norm_box":
        shift, scale = normalization_params(clouds, "bbox")
        return normalize(clouds, shift, scale).astype(np.float32)
    if protocol == "pointflow":
        if normalization["method"] not in ("none", "global"):
            raise ValueError(
                f"protocol 'pointflow' de-normalises with the data's global statistics, but the data was "
                f"prepared with per-shape normalization {normalization['method']!r}; use --protocol norm_box "
                "or none, or prepare the data with --normalization global or none"
            )
        return EvaluationFrame.of(normalization).to_evaluation(clouds)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
