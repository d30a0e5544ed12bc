"""The PointNet encoder of the Soft-IntroVAE 3D model: (B, N, 3) clouds -> posterior ``mu``, ``logvar``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_ORDERS = ("relu-bn", "bn-relu")


class PointNetEncoder(nn.Module):
    """PointNet: shared per-point MLP (1x1 Conv1d, ReLU and BatchNorm), max-pool, MLP heads.

    ``forward`` maps (B, N, 3) clouds to posterior ``mu`` and ``logvar``, each (B, Z).

    ``order`` is the order within each per-point layer: ``"relu-bn"`` is the official
    Soft-IntroVAE 3D encoder's (``Conv1d -> ReLU -> BatchNorm1d``, its ``models/vae.py``,
    inherited from 3D-AAE); ``"bn-relu"`` is PointNet's own (``Conv1d -> BatchNorm1d ->
    ReLU``), this package's encoder before the option existed. Both hold the same
    parameters under the same names, so a checkpoint's ``encoder_order`` alone says which
    function its weights were trained for.

    The per-point layers are stored as the reference's ``Conv1d(kernel_size=1)`` and
    ``BatchNorm1d`` (same parameters and checkpoints) but run channels-last on the
    (B*N, C) matrix of all points: one matrix multiply per layer, BatchNorm statistics
    over all B*N points exactly as the (B, C, N) layout computes them, an in-place
    ReLU, and a max-pool whose backward scatters through the argmax indices instead of
    comparing every activation with the maximum. Same function, fewer memory passes.
    Under ``torchrun`` the trainer swaps the BatchNorm layers for ones whose statistics
    cover every process (same parameters and buffers); this module does not know.

    Source: Qi et al., "PointNet", CVPR 2017; widths of the Soft-IntroVAE 3D reference.
    """

    def __init__(self, z_dim: int, channels=(64, 128, 256, 256, 512), fc: int = 256, order: str = "relu-bn"):
        super().__init__()
        if order not in ENCODER_ORDERS:
            raise ValueError(f"unknown encoder_order {order!r}; use one of {', '.join(ENCODER_ORDERS)}")
        self.order = order
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [nn.Conv1d(c_in, c_out, kernel_size=1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_in, fc), nn.ReLU(inplace=True))
        self.mu = nn.Linear(fc, z_dim)
        self.logvar = nn.Linear(fc, z_dim)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = points.shape
        h = points.reshape(b * n, 3)
        layers = list(self.features)
        relu_first = self.order == "relu-bn"
        for conv, bn in zip(layers[0::3], layers[1::3]):
            h = F.linear(h, conv.weight.squeeze(-1), conv.bias)
            if relu_first:
                h = torch.relu_(h)
            h = bn(h)
            if not relu_first:
                h = torch.relu_(h)
        h = self.fc(h.view(b, n, -1).max(dim=1).values)
        return self.mu(h), self.logvar(h)
