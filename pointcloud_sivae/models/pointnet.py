"""The PointNet encoder of the Soft-IntroVAE 3D model: (B, N, 3) clouds -> posterior ``mu``, ``logvar``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_ORDERS = ("relu-bn", "bn-relu")
ENCODER_POOLS = ("max", "max-mean")


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

    ``pool`` is the symmetric function over points: ``"max"`` (PointNet's and the reference's)
    or ``"max-mean"``, the max- and mean-pooled features concatenated (the ``fc`` layer then
    takes twice the channels). A max-pool sees only each channel's extreme point, so it
    is blind to how the other points are spread: a cloud and the same cloud with points
    piled onto its extremes map to the same posterior. The mean depends on every point's
    share, so an encoder with it can tell uneven point density (clumps) from an even one.

    Raises:
        ValueError: an unknown ``order`` or ``pool``.

    Source: Qi et al., "PointNet", CVPR 2017 (max-pool; its ablation of symmetric functions
    includes average pooling); widths of the Soft-IntroVAE 3D reference.
    """

    def __init__(self, z_dim: int, channels=(64, 128, 256, 256, 512), fc: int = 256, order: str = "relu-bn",
                 pool: str = "max"):
        super().__init__()
        if order not in ENCODER_ORDERS:
            raise ValueError(f"unknown encoder_order {order!r}; use one of {', '.join(ENCODER_ORDERS)}")
        if pool not in ENCODER_POOLS:
            raise ValueError(f"unknown encoder_pool {pool!r}; use one of {', '.join(ENCODER_POOLS)}")
        self.order, self.pool = order, pool
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [nn.Conv1d(c_in, c_out, kernel_size=1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_in * (2 if pool == "max-mean" else 1), fc), nn.ReLU(inplace=True))
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
        h = h.view(b, n, -1)
        pooled = h.max(dim=1).values
        if self.pool == "max-mean":
            pooled = torch.cat([pooled, h.mean(dim=1)], dim=1)
        h = self.fc(pooled)
        return self.mu(h), self.logvar(h)
