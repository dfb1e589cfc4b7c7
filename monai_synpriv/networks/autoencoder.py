"""Autoencoders with a contrastive projection head on the latent (Ferrante et al. 2022), 2D and 3D, built on MONAI's
``VarAutoEncoder``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import VarAutoEncoder
from torch import nn

from .multibranch import ProjectionHead

__all__ = ["ContrastiveAutoEncoder", "LatentClassifier", "LatentEncoder"]


class ContrastiveAutoEncoder(nn.Module):
    """
    A convolutional autoencoder (``variational=False``) or VAE (``variational=True``) with a flat latent of
    ``latent_size`` and an MLP projection head on it, for reconstruction + NT-Xent training
    (:class:`~monai_synpriv.losses.ContrastiveAutoEncoderLoss`). The encoder/decoder are MONAI's ``VarAutoEncoder``
    (strided convolutions, a linear bottleneck, transposed convolutions, sigmoid output for ``[0, 1]`` images);
    the deterministic autoencoder uses its mean branch only.

    ``forward(x)`` returns ``(reconstruction, mu, logvar, z)``: ``z`` is a reparameterised sample in training mode
    for the VAE and ``mu`` otherwise (``logvar`` is None for the deterministic autoencoder). Clustering uses ``mu``
    (:meth:`encode`, or :class:`LatentEncoder` in an evaluator). Both modules compile with ``torch.jit.script``.

    Args:
        spatial_dims: 2 or 3.
        in_shape: ``(channels, *spatial)`` of the input, e.g. ``(1, 28, 28)``; every spatial size must be divisible by
            the product of ``strides``.
        latent_size: size of the latent (the paper's companion code: 50).
        channels: channels of the encoder's convolutions, one per stride.
        strides: their strides.
        projection_dims: the projection head's layer sizes (last: the contrastive embedding size).
        variational: a VAE (KL term, latent sampling) instead of a deterministic autoencoder.
        num_res_units: residual units per convolution block (MONAI's).
        norm: normalisation of the convolution blocks.

    Example::

        net = ContrastiveAutoEncoder(spatial_dims=3, in_shape=(1, 28, 28, 28), latent_size=50)
        recon, mu, logvar, z = net(torch.rand(4, 1, 28, 28, 28))
    """

    def __init__(
        self,
        spatial_dims: int,
        in_shape: Sequence[int],
        latent_size: int = 50,
        channels: Sequence[int] = (32, 64, 128),
        strides: Sequence[int] = (2, 2, 1),
        projection_dims: Sequence[int] = (128, 64),
        variational: bool = False,
        num_res_units: int = 1,
        norm: str | tuple = "BATCH",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) != spatial_dims + 1:
            raise ValueError(
                f"in_shape must be (channels, *spatial) with {spatial_dims} spatial sizes, got {in_shape}."
            )
        if len(channels) != len(strides):
            raise ValueError(f"channels {list(channels)} and strides {list(strides)} must have the same length.")
        factor = 1
        for s in strides:
            factor *= int(s)
        bad = [s for s in in_shape[1:] if s % factor]
        if bad:
            raise ValueError(
                f"spatial size {in_shape[1:]} must be divisible by the product of strides {list(strides)} = {factor}; "
                "resize the images (image_size) or change the strides."
            )
        if latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {latent_size}.")
        self.spatial_dims, self.in_shape, self.latent_size = spatial_dims, in_shape, latent_size
        self.variational = variational
        self.autoencoder = VarAutoEncoder(
            spatial_dims=spatial_dims,
            in_shape=in_shape,
            out_channels=in_shape[0],
            latent_size=latent_size,
            channels=channels,
            strides=strides,
            num_res_units=num_res_units,
            norm=norm,
            use_sigmoid=True,
            use_mean_at_inference=True,
        )
        if not variational:  # the deterministic autoencoder has no variance branch
            self.autoencoder.logvar = nn.Identity()
        self.projector = ProjectionHead(latent_size, projection_dims)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mu, logvar)`` of a batch (``logvar`` None for the deterministic autoencoder)."""
        h = self.autoencoder.intermediate(self.autoencoder.encode(x)).flatten(1)
        mu = self.autoencoder.mu(h)
        logvar: torch.Tensor | None = None
        if self.variational:
            logvar = self.autoencoder.logvar(h)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images from latents (sigmoid output in ``[0, 1]``)."""
        return self.autoencoder.decode_forward(z, use_sigmoid=True)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """The contrastive embedding of latents."""
        return self.projector(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu
        if self.training and logvar is not None:  # the VAE in training mode (logvar is None for the autoencoder)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar, z

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean=None, std=None) -> torch.Tensor:
        """Decode ``n`` latents drawn from ``N(mean, std^2)`` (default: the VAE prior ``N(0, I)``; for the
        deterministic autoencoder pass the mean and standard deviation of real latents)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_size, generator=generator).to(device)
        if std is not None:
            z = z * torch.as_tensor(std, dtype=z.dtype, device=device)
        if mean is not None:
            z = z + torch.as_tensor(mean, dtype=z.dtype, device=device)
        return self.decode(z)


class LatentEncoder(nn.Module):
    """The encoder half of a :class:`ContrastiveAutoEncoder` as a plain ``image -> mu`` module: what an evaluator, an
    inference run or an export needs (the ``network_def`` of the bundle's ``inference.json``). Shares the
    autoencoder's weights, and TorchScript-compiles (``torch.jit.script``) to the same output.

    It holds the autoencoder's own submodules under their own names, so that its state dict *is* the autoencoder's:
    the ``model.pt`` that training saves (a :class:`ContrastiveAutoEncoder` state dict) loads into it strictly, and a
    state dict saved from it loads back into the autoencoder. The decoder and the projection head come along unused.

    Example::

        encoder = LatentEncoder(ContrastiveAutoEncoder(spatial_dims=2, in_shape=(1, 28, 28)))
        encoder.load_state_dict(torch.load("models/model.pt", weights_only=True))
        mu = encoder.eval()(torch.rand(4, 1, 28, 28))  # (4, 50)
    """

    def __init__(self, autoencoder: ContrastiveAutoEncoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder.autoencoder
        self.projector = autoencoder.projector
        self.latent_size = autoencoder.latent_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ContrastiveAutoEncoder.encode's mu, on the same modules
        h = self.autoencoder.intermediate(self.autoencoder.encode(x)).flatten(1)
        return self.autoencoder.mu(h)


class LatentClassifier(nn.Module):
    """The same encoder with a linear classifier on ``mu``: the supervised upper reference, trained with labels
    under the same budget (MONAI's ``SupervisedTrainer`` with cross-entropy); its latents are clustered like the
    others."""

    def __init__(self, autoencoder: ContrastiveAutoEncoder, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        self.autoencoder = autoencoder
        self.classifier = nn.Linear(autoencoder.latent_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.autoencoder.encode(x)[0])
