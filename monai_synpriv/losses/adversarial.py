"""Discriminator and generator adversarial terms built on MONAI's ``PatchAdversarialLoss``."""

from __future__ import annotations

import torch
from monai.losses import PatchAdversarialLoss
from torch import nn

__all__ = ["DiscriminatorLoss", "make_adversarial_loss", "last_output"]


class _DeviceTargetAdversarialLoss(PatchAdversarialLoss):
    """MONAI's ``PatchAdversarialLoss`` with its target tensors made directly on the input's device: the parent
    builds them on the host and copies them over, a blocking host-device synchronisation per call on CUDA (six per
    CycleGAN iteration)."""

    def get_target_tensor(self, input: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        return torch.full_like(input, self.real_label if target_is_real else self.fake_label).requires_grad_(False)

    def get_zero_tensor(self, input: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(input).requires_grad_(False)


def make_adversarial_loss(criterion: str = "least_squares") -> PatchAdversarialLoss:
    """MONAI's ``PatchAdversarialLoss`` set up as in CycleGAN/pix2pix.

    For ``"least_squares"`` the discriminator's raw output is compared with 1 (real) or 0 (fake) by an MSE (LSGAN),
    without the leaky-ReLU MONAI otherwise puts in front of it. Targets are created on the input's device.
    """
    return _DeviceTargetAdversarialLoss(criterion=criterion, no_activation_leastsq=True)


def last_output(logits: torch.Tensor | list | tuple) -> torch.Tensor:
    """MONAI's ``PatchDiscriminator`` returns every intermediate feature map; the prediction is the last one."""
    return logits[-1] if isinstance(logits, (list, tuple)) else logits


class DiscriminatorLoss(nn.Module):
    """``weight * (adv(D(real), real) + adv(D(fake), fake))``: the discriminator's loss (weight 0.5 in CycleGAN,
    so the discriminator learns at half the generator's rate).

    Args:
        criterion: ``"least_squares"`` (default, LSGAN), ``"bce"`` or ``"hinge"``.
        weight: factor on the sum of the real and fake terms.
    """

    def __init__(self, criterion: str = "least_squares", weight: float = 0.5) -> None:
        super().__init__()
        self.adversarial = make_adversarial_loss(criterion)
        self.weight = weight

    def forward(self, real_logits: torch.Tensor | list, fake_logits: torch.Tensor | list) -> torch.Tensor:
        real = self.adversarial(last_output(real_logits), target_is_real=True, for_discriminator=True)
        fake = self.adversarial(last_output(fake_logits), target_is_real=False, for_discriminator=True)
        return self.weight * (real + fake)
