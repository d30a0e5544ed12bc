"""Paths in latent space between two codes, and latents refined by gradient descent (tensor functions)."""

from __future__ import annotations

from typing import Callable

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


def refine_latents(decode: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, z0: torch.Tensor,
                   distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, steps: int,
                   lr: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """The best latents found by ``steps`` Adam steps on z that bring ``decode(z)`` closer to
    ``target``, the decoder fixed (no gradient reaches its weights).

    Started at the encoder's posterior means, the distance left after refinement against the
    encoder's own is the *amortisation gap*: how much of a reconstruction error is the encoder's
    and how much the decoder's (Cremer, Li & Duvenaud, "Inference Suboptimality in Variational
    Autoencoders", ICML 2018).

    Args:
        decode: maps (M, Z) latents to (M, N, 3) clouds (put a model with BatchNorm in eval mode first).
        target: (M, N', 3) float clouds, the frame ``decode`` writes.
        z0: (M, Z) starting latents (not modified).
        distance: per-pair distance of two cloud batches, (M,) (e.g. a Chamfer op).
        steps: Adam steps, >= 0. lr: Adam learning rate, in latent units.

    Returns:
        ``(z, d)``: (M, Z) latents and their (M,) distances, each shape's best over steps 0..steps
        (so no shape ends further than it started: ``d`` <= the distance at ``z0``).

    Raises:
        ValueError: ``steps < 0``, ``lr <= 0``, or ``z0`` and ``target`` with different batch sizes.
    """
    if steps < 0 or not lr > 0:
        raise ValueError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}")
    if z0.dim() != 2 or target.dim() != 3 or len(z0) != len(target):
        raise ValueError(f"z0 must be (M, Z) and target (M, N, 3) with the same M, got {tuple(z0.shape)} "
                         f"and {tuple(target.shape)}")
    z = z0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    best_z = z0.detach().clone()
    with torch.enable_grad():
        d = distance(decode(z), target)
        best_d = d.detach().clone()
        for _ in range(steps):
            (z.grad,) = torch.autograd.grad(d.sum(), z)
            optimizer.step()
            d = distance(decode(z), target)
            better = d.detach() < best_d
            best_d = torch.where(better, d.detach(), best_d)
            best_z[better] = z.detach()[better]
    return best_z, best_d
