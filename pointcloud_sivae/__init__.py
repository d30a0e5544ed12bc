"""Soft-IntroVAE for 3D point clouds (Daniel & Tamar, CVPR 2021).

Public tensors are channels-last ``(B, N, 3)`` float32 clouds.
"""

__version__ = "0.1.0"
