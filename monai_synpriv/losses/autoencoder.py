"""Autoencoder losses: the contrastive autoencoder's (Ferrante et al. 2022: reconstruction + weighted NT-Xent, + KL for
a VAE) and MONAI ``AutoencoderKL``'s (reconstruction + KL, the first stage of latent diffusion)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss
from torch import nn

__all__ = ["AutoencoderKLLoss", "ContrastiveAutoEncoderLoss", "gaussian_kl"]


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the latent and averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


class ContrastiveAutoEncoderLoss(nn.Module):
    """
    ``reconstruction_weight * recon + contrastive_weight * NT-Xent + kl_weight * KL`` over two augmented views.

    - ``recon``: each view against its own reconstruction, mean squared error (``"mse"``) or binary cross-entropy
      (``"bce"``, for ``[0, 1]`` images such as masks), averaged over pixels and views;
    - NT-Xent: MONAI's ``ContrastiveLoss`` (SimCLR) between the projections of the two views, temperature
      ``temperature``; ``contrastive_weight=0`` gives the plain autoencoder baseline;
    - KL: :func:`gaussian_kl` of each view's posterior, averaged over views (VAE only; skipped when ``logvar`` is
      None).

    :meth:`terms` returns every term and ``total``; ``forward`` returns ``total``.
    """

    def __init__(
        self,
        reconstruction_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        kl_weight: float = 1e-3,
        temperature: float = 0.5,
        reconstruction: str = "mse",
    ) -> None:
        super().__init__()
        for name, w in (
            ("reconstruction_weight", reconstruction_weight),
            ("contrastive_weight", contrastive_weight),
            ("kl_weight", kl_weight),
        ):
            if w < 0:
                raise ValueError(f"{name} must be >= 0, got {w}.")
        if reconstruction not in ("mse", "bce"):
            raise ValueError(f"reconstruction must be 'mse' or 'bce', got {reconstruction!r}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.reconstruction_weight = reconstruction_weight
        self.contrastive_weight = contrastive_weight
        self.kl_weight = kl_weight
        self.reconstruction = reconstruction
        self.nt_xent = ContrastiveLoss(temperature=temperature)

    def _recon(self, rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.reconstruction == "bce":
            return F.binary_cross_entropy(rec.clamp(1e-6, 1 - 1e-6), target.clamp(0, 1))
        return F.mse_loss(rec, target)

    def terms(
        self,
        views: Sequence[torch.Tensor],
        reconstructions: Sequence[torch.Tensor],
        projections: Sequence[torch.Tensor],
        mus: Sequence[torch.Tensor] = (),
        logvars: Sequence[torch.Tensor | None] = (),
    ) -> dict[str, torch.Tensor]:
        """Every term for two views: ``reconstruction``, ``contrastive``, ``kl`` and ``total``."""
        if len(views) != 2 or len(reconstructions) != 2 or len(projections) != 2:
            raise ValueError(
                f"ContrastiveAutoEncoderLoss takes two views, got {len(views)} views, {len(reconstructions)} "
                f"reconstructions and {len(projections)} projections."
            )
        recon = torch.stack([self._recon(r, v) for r, v in zip(reconstructions, views)]).mean()
        zero = recon.new_zeros(())
        contrastive = self.nt_xent(projections[0], projections[1]) if self.contrastive_weight > 0 else zero
        kls = [gaussian_kl(m, lv) for m, lv in zip(mus, logvars) if lv is not None]
        kl = torch.stack(kls).mean() if kls else zero
        total = self.reconstruction_weight * recon + self.contrastive_weight * contrastive
        if kls and self.kl_weight > 0:
            total = total + self.kl_weight * kl
        return {"total": total, "reconstruction": recon, "contrastive": contrastive, "kl": kl}

    def forward(self, views, reconstructions, projections, mus=(), logvars=()) -> torch.Tensor:
        return self.terms(views, reconstructions, projections, mus, logvars)["total"]


class AutoencoderKLLoss(nn.Module):
    """
    The loss of MONAI's ``AutoencoderKL`` (Rombach et al. 2022, the first stage of latent diffusion):
    ``reconstruction + kl_weight * KL(N(z_mu, z_sigma^2) || N(0, I))``, from the network's output tuple
    ``(reconstruction, z_mu, z_sigma)`` and the input image as target.

    The reconstruction is the mean absolute (``"l1"``, as in latent diffusion) or squared (``"mse"``) error per
    pixel; the KL is :func:`gaussian_kl` over every latent element, averaged over the batch. A small ``kl_weight``
    (1e-6, MONAI's tutorials) keeps the latents near a unit Gaussian without blurring the reconstruction.
    """

    def __init__(self, kl_weight: float = 1e-6, reconstruction: str = "l1") -> None:
        super().__init__()
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}.")
        if reconstruction not in ("l1", "mse"):
            raise ValueError(f"reconstruction must be 'l1' or 'mse', got {reconstruction!r}.")
        self.kl_weight, self.reconstruction = float(kl_weight), reconstruction

    def forward(self, output: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, (tuple, list)) or len(output) != 3:
            raise TypeError("AutoencoderKLLoss expects the (reconstruction, z_mu, z_sigma) output of AutoencoderKL.")
        recon, mu, sigma = output
        diff = recon - target
        rec = diff.abs().mean() if self.reconstruction == "l1" else diff.pow(2).mean()
        if self.kl_weight == 0:
            return rec
        logvar = 2.0 * sigma.clamp_min(1e-12).log()
        return rec + self.kl_weight * gaussian_kl(mu.flatten(1), logvar.flatten(1))
