"""Masked-autoencoder reconstruction loss for MONAI's ``MaskedAutoEncoderViT``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.modules.loss import _Loss

from ..networks.mae import patchify

__all__ = ["MaskedPatchLoss"]


class MaskedPatchLoss(_Loss):
    """Mean squared error on the masked patches only (He et al., 2022).

    ``MaskedAutoEncoderViT`` returns ``(predicted_patches, mask)``; this loss compares the prediction with the
    image cut into the same patches (:func:`monai_synpriv.networks.patchify`) where ``mask == 1``. With
    ``SupervisedTrainer`` use the image as both input and target: ``loss_function(network(image), image)``.

    Args:
        patch_size: the network's patch size (an int or one per spatial axis).
        norm_pix_loss: normalise each target patch to zero mean and unit variance (the paper's better variant).
        eps: variance floor of ``norm_pix_loss``.
    """

    def __init__(self, patch_size: Sequence[int] | int, norm_pix_loss: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.norm_pix_loss = norm_pix_loss
        self.eps = eps

    def forward(self, output: tuple[torch.Tensor, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """
        Args:
            output: ``(pred, mask)`` from ``MaskedAutoEncoderViT``: ``(B, N, P)`` and ``(B, N)`` (1 = masked).
            images: the input images ``(B, C, *spatial)``.

        Raises:
            ValueError: if ``output`` is not a (pred, mask) pair or the shapes disagree with the patch size.
        """
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            raise ValueError("MaskedPatchLoss expects the (pred, mask) pair that MaskedAutoEncoderViT returns.")
        pred, mask = output
        target = patchify(images, self.patch_size)
        if pred.shape != target.shape:
            raise ValueError(
                f"predicted patches {tuple(pred.shape)} do not match the image cut into patches of {self.patch_size}: "
                f"{tuple(target.shape)}; check patch_size, in_channels and image size."
            )
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + self.eps) ** 0.5
        per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)
        mask = mask.to(per_patch.dtype)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
