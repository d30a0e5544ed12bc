"""The fully connected decoder of the Soft-IntroVAE 3D model: (B, Z) latents -> (B, N, 3) clouds."""

from __future__ import annotations

import torch
from torch import nn


class FCDecoder(nn.Module):
    """Fully connected decoder ``z -> widths... -> N * 3`` with ReLU; outputs (B, N, 3)."""

    def __init__(self, z_dim: int, num_points: int, widths=(64, 128, 512, 1024)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = z_dim
        for w in widths:
            layers += [nn.Linear(c_in, w), nn.ReLU(inplace=True)]
            c_in = w
        layers.append(nn.Linear(c_in, num_points * 3))
        self.net = nn.Sequential(*layers)
        self.num_points = num_points

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], self.num_points, 3)
