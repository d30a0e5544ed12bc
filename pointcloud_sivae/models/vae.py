"""The Soft-IntroVAE model: an encoder, a decoder and the prior, with no loss, config or optimiser.

Public tensors are channels-last ``(B, N, 3)`` float32. The objectives are in
:mod:`pointcloud_sivae.objectives`; what is frozen and detached in a step is decided in
:mod:`pointcloud_sivae.training.steps`.
"""

from __future__ import annotations

import torch
from torch import nn

from pointcloud_sivae.models.decoder import FCDecoder
from pointcloud_sivae.models.pointnet import PointNetEncoder

ENCODERS = ("pointnet", "dgcnn")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps``: a posterior sample from standard normal ``eps``; (B, Z).

    Source: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """
    return mu + (0.5 * logvar).exp() * eps


class SoftIntroVAE(nn.Module):
    """Encoder ``q(z|x) = N(mu(x), diag(exp(logvar(x))))``, decoder ``D(z)``, prior ``N(0, sigma_p^2 I)``.

    The keyword arguments are those of the ``[model]`` config section
    (:class:`pointcloud_sivae.runs.config.ModelConfig`), so a model is rebuilt from a
    checkpoint's config with ``SoftIntroVAE(**config["model"])``.

    Args:
        z_dim: latent size Z. num_points: points N the decoder outputs (> 0).
        encoder: ``pointnet`` or ``dgcnn``; encoder_channels, encoder_fc, encoder_order,
            encoder_pool: the PointNet's widths, layer order and pooling; knn_k: DGCNN's neighbours.
        decoder_widths: hidden widths of the fully connected decoder.
        prior_std: ``sigma_p``.

    Raises:
        ValueError: an unknown encoder, layer order or pooling, or ``num_points`` < 1.

    Source: Daniel & Tamar, "Soft-IntroVAE", CVPR 2021 (3D point-cloud model).
    """

    def __init__(self, *, z_dim: int = 128, num_points: int, encoder: str = "pointnet",
                 encoder_channels=(64, 128, 256, 256, 512), encoder_fc: int = 256, encoder_order: str = "relu-bn",
                 encoder_pool: str = "max", knn_k: int = 20, decoder_widths=(64, 128, 512, 1024), prior_std: float = 0.2):
        super().__init__()
        if num_points < 1:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.z_dim, self.num_points, self.prior_std = z_dim, num_points, prior_std
        if encoder == "pointnet":
            self.encoder = PointNetEncoder(z_dim, encoder_channels, encoder_fc, encoder_order, encoder_pool)
        elif encoder == "dgcnn":
            if encoder_pool != "max":
                raise ValueError(f"encoder_pool {encoder_pool!r} is a PointNet option; the dgcnn encoder max-pools "
                                 "(leave encoder_pool at max)")
            from pointcloud_sivae.models.dgcnn import DGCNNEncoder  # torch-geometric only when asked for

            self.encoder = DGCNNEncoder(z_dim, k=knn_k, fc=encoder_fc)
        else:
            raise ValueError(f"unknown encoder {encoder!r}; use {' or '.join(ENCODERS)}")
        self.decoder = FCDecoder(z_dim, num_points, decoder_widths)

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

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents from the prior ``N(0, sigma_p^2 I)``; (n, Z) on the model's device."""
        p = next(self.parameters())
        return self.prior_std * torch.randn(n, self.z_dim, generator=generator, device=p.device, dtype=p.dtype)

    @torch.no_grad()
    def posterior_means(self, points: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Posterior means (M, Z) of (M, N, 3) clouds, ``chunk`` clouds at a time; no gradient."""
        return self.posteriors(points, chunk)[0]

    @torch.no_grad()
    def posteriors(self, points: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``mu``, ``logvar`` (M, Z) of (M, N, 3) clouds, ``chunk`` clouds at a time; no gradient."""
        parts = [self.encode(c) for c in points.split(chunk)]
        return torch.cat([m for m, _ in parts]), torch.cat([v for _, v in parts])

    @torch.no_grad()
    def decode_chunked(self, z: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Clouds (M, N, 3) of latents (M, Z), ``chunk`` latents at a time; no gradient."""
        p = next(self.parameters())
        return torch.cat([self.decode(c.to(p.device)) for c in z.split(chunk)])

    def forward(self, points: torch.Tensor, generator: torch.Generator | None = None):
        """Encode, sample the posterior, decode: returns ``mu, logvar, z, reconstruction``."""
        mu, logvar = self.encode(points)
        z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype))
        return mu, logvar, z, self.decode(z)
