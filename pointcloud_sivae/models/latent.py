"""Paths in latent space between two codes (pure tensor functions)."""

from __future__ import annotations

import torch

PATHS = ("slerp", "linear")


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, path: str = "slerp") -> torch.Tensor:
    """Latents along a path from ``z0`` to ``z1``, both endpoints included exactly.

    Args:
        z0, z1: (Z,) float tensors.
        steps: number of latents K >= 2 (``t = 0, 1/(K-1), ..., 1``).
        path: ``slerp`` (spherical: constant angular speed, keeps the norm typical of a
            Gaussian prior; falls back to linear for (anti)parallel codes) or ``linear``.

    Returns:
        (K, Z) tensor; row 0 equals ``z0`` and row K-1 equals ``z1``.

    Raises:
        ValueError: shapes differ, ``steps < 2`` or an unknown path.

    Source: Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985;
    White, "Sampling Generative Networks", 2016 (slerp for latent spaces).
    """
    if z0.shape != z1.shape or z0.dim() != 1:
        raise ValueError(f"z0 and z1 must both be (Z,) vectors, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; expected one of {PATHS}")
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device=z0.device)[:, None]
    a, b = z0.double(), z1.double()
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if path == "linear" or torch.sin(theta).abs() < 1e-6:
        w0, w1 = 1.0 - t, t
    else:
        w0, w1 = torch.sin((1.0 - t) * theta) / torch.sin(theta), torch.sin(t * theta) / torch.sin(theta)
    out = (w0 * a + w1 * b).to(z0.dtype)
    out[0], out[-1] = z0, z1  # exact endpoints whatever the rounding
    return out
