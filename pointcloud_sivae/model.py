"""PointNet encoder, fully connected decoder and the Soft-IntroVAE wrapper.

The modules hold parameters only: no losses, no optimisers (see ``losses.py`` and
``train.py``). Public tensors are channels-last ``(B, N, 3)`` float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pointcloud_sivae.fields import option


ENCODERS = ("pointnet", "dgcnn")


@dataclass
class ModelConfig:
    z_dim: int = option(128, "latent size Z (dimensions of z)", min=1)
    num_points: int = option(0, "points per cloud N the decoder outputs, at most the prepared count (fewer: "
                             "PointFlow's random subsets, fresh per training step, fixed for val/test); 0 means "
                             "the prepared count", min=0)
    encoder_channels: tuple[int, ...] = option((64, 128, 256, 256, 512),
                                               "widths of the PointNet per-point 1x1 Conv1d layers", min=1)
    encoder_fc: int = option(256, "width of the Linear layer after max-pooling", min=1)
    decoder_widths: tuple[int, ...] = option((64, 128, 512, 1024), "hidden widths of the fully connected decoder",
                                             min=1)
    prior_std: float = option(0.2, "sigma_p of the prior N(0, sigma_p^2 I), > 0", min=1e-6)
    encoder: str = option("pointnet", "pointnet, or dgcnn (EdgeConv on kNN graphs; needs the [graph] extra)",
                          choices=ENCODERS)
    knn_k: int = option(20, "DGCNN: neighbours per point", min=1)
    encoder_order: str = option("relu-bn", "PointNet layer order: relu-bn (official Soft-IntroVAE: Conv, ReLU, "
                                "BatchNorm) or bn-relu (PointNet: Conv, BatchNorm, ReLU)",
                                choices=("relu-bn", "bn-relu"))


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
        self.sync_batchnorm = False  # set by the trainer under torchrun: statistics over all processes

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = points.shape
        h = points.reshape(b * n, 3)
        layers = list(self.features)
        relu_first = self.order == "relu-bn"
        for conv, bn in zip(layers[0::3], layers[1::3]):
            h = F.linear(h, conv.weight.squeeze(-1), conv.bias)
            if relu_first:
                h = torch.relu_(h)
            if self.sync_batchnorm and self.training:
                from pointcloud_sivae.distributed import sync_batch_norm

                h = sync_batch_norm(bn, h)
            else:
                h = bn(h)
            if not relu_first:
                h = torch.relu_(h)
        h = self.fc(h.view(b, n, -1).max(dim=1).values)
        return self.mu(h), self.logvar(h)


class DGCNNEncoder(nn.Module):
    """DGCNN: EdgeConv layers on k-nearest-neighbour graphs rebuilt in each layer's feature
    space, a shared layer on the concatenated features, max-pool, MLP heads.

    ``forward`` maps (B, N, 3) clouds to posterior ``mu`` and ``logvar``, each (B, Z).
    The EdgeConv layers are torch-geometric's (``aggr="max"``, message
    ``h([x_i, x_j - x_i])``); the graphs come from :func:`pointcloud_sivae.chamfer.knn_indices`
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
        from pointcloud_sivae.chamfer import knn_indices

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


class SoftIntroVAE(nn.Module):
    """Encoder ``q(z|x) = N(mu(x), diag(exp(logvar(x))))``, decoder ``D(z)``, prior ``N(0, sigma_p^2 I)``.

    Source: Daniel & Tamar, "Soft-IntroVAE", CVPR 2021 (3D point-cloud model).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.encoder == "pointnet":
            self.encoder = PointNetEncoder(config.z_dim, config.encoder_channels, config.encoder_fc,
                                           config.encoder_order)
        elif config.encoder == "dgcnn":
            self.encoder = DGCNNEncoder(config.z_dim, k=config.knn_k, fc=config.encoder_fc)
        else:
            raise ValueError(f"unknown encoder {config.encoder!r}; use pointnet or dgcnn")
        self.decoder = FCDecoder(config.z_dim, config.num_points, config.decoder_widths)

    def encode(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, 3) clouds -> posterior ``mu``, ``logvar`` (B, Z).

        Raises:
            ValueError: input not shaped (B, N, 3).
        """
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected clouds of shape (B, N, 3), got {tuple(points.shape)}")
        return self.encoder(points)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, Z) latents -> (B, num_points, 3) clouds."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``; (B, Z)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * logvar).exp() * eps

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents from the prior ``N(0, sigma_p^2 I)``; (n, Z) on the model's device."""
        p = next(self.parameters())
        return self.config.prior_std * torch.randn(
            n, self.config.z_dim, generator=generator, device=p.device, dtype=p.dtype
        )

    @torch.no_grad()
    def posterior_means(self, points: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Posterior means (M, Z) of (M, N, 3) clouds, ``chunk`` clouds at a time; no gradient."""
        return torch.cat([self.encode(c)[0] for c in points.split(chunk)])

    @torch.no_grad()
    def decode_chunked(self, z: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Clouds (M, N, 3) of latents (M, Z), ``chunk`` latents at a time; no gradient."""
        p = next(self.parameters())
        return torch.cat([self.decode(c.to(p.device)) for c in z.split(chunk)])

    def forward(self, points: torch.Tensor):
        """Encode, sample the posterior, decode: returns ``mu, logvar, z, reconstruction``."""
        mu, logvar = self.encode(points)
        z = self.reparameterize(mu, logvar)
        return mu, logvar, z, self.decode(z)


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module):
    """Within the block, BatchNorm layers still normalise with batch statistics but
    leave their running statistics untouched (momentum 0).

    The trainer runs reconstructed and generated batches through the encoder inside
    this block, so running statistics (used at evaluation) describe real data only,
    while real and generated batches are normalised the same way during training.
    """
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
