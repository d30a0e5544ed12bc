"""The DGCNN encoder (EdgeConv on kNN graphs): (B, N, 3) clouds -> posterior ``mu``, ``logvar``."""

from __future__ import annotations

import torch
from torch import nn

from pointcloud_sivae.ops.chamfer import knn_indices


class DGCNNEncoder(nn.Module):
    """DGCNN: EdgeConv layers on k-nearest-neighbour graphs rebuilt in each layer's feature
    space, a shared layer on the concatenated features, max-pool, MLP heads.

    ``forward`` maps (B, N, 3) clouds to posterior ``mu`` and ``logvar``, each (B, Z).
    The EdgeConv layers are torch-geometric's (``aggr="max"``, message
    ``h([x_i, x_j - x_i])``); the graphs come from :func:`pointcloud_sivae.ops.chamfer.knn_indices`
    (KeOps when installed, chunked torch otherwise), not from torch-cluster.
    BatchNorm statistics are per process under ``torchrun`` (only the PointNet encoder
    synchronises them).

    Raises:
        ImportError: torch-geometric is not installed (``pip install 'pointcloud-sivae[graph]'``).

    Source: Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", ACM TOG 2019.
    """

    def __init__(self, z_dim: int, k: int = 20, channels=(64, 64, 128, 256), emb: int = 512, fc: int = 256):
        super().__init__()
        try:
            from torch_geometric.nn import EdgeConv
        except ImportError as exc:
            raise ImportError("the dgcnn encoder needs torch-geometric: pip install 'pointcloud-sivae[graph]'") from exc
        self.k = k
        self.convs = nn.ModuleList()
        c_in = 3
        for c_out in channels:
            mlp = nn.Sequential(nn.Linear(2 * c_in, c_out, bias=False), nn.BatchNorm1d(c_out), nn.LeakyReLU(0.2))
            self.convs.append(EdgeConv(mlp, aggr="max"))
            c_in = c_out
        self.embed = nn.Sequential(nn.Linear(sum(channels), emb, bias=False), nn.BatchNorm1d(emb), nn.LeakyReLU(0.2))
        self.fc = nn.Sequential(nn.Linear(emb, fc), nn.ReLU(inplace=True))
        self.mu = nn.Linear(fc, z_dim)
        self.logvar = nn.Linear(fc, z_dim)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = points.shape
        k = min(self.k, n)
        offsets = (torch.arange(b, device=points.device) * n).view(b, 1, 1)
        centres = torch.arange(b * n, device=points.device).repeat_interleave(k)
        h = points.reshape(b * n, 3)
        feats = []
        for conv in self.convs:
            nbrs = (knn_indices(h.view(b, n, -1), k) + offsets).reshape(-1)
            h = conv(h, torch.stack([nbrs, centres]))  # edges j -> i: messages from neighbours to centres
            feats.append(h)
        h = self.embed(torch.cat(feats, dim=1))
        h = self.fc(h.view(b, n, -1).max(dim=1).values)
        return self.mu(h), self.logvar(h)
