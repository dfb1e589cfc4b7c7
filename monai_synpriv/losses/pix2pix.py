"""The pix2pix generator objective: conditional adversarial + L1."""

from __future__ import annotations

import torch
from torch import nn

from .adversarial import last_output, make_adversarial_loss

__all__ = ["Pix2PixGeneratorLoss"]


class Pix2PixGeneratorLoss(nn.Module):
    """``adv(D(a, G(a))) + lambda_l1 * |G(a) - b|_1`` (Isola et al. 2017; reference ``lambda_l1 = 100``).

    Args:
        lambda_l1: weight of the L1 term.
        criterion: adversarial criterion (``"least_squares"``, ``"bce"`` (the reference's vanilla GAN), ``"hinge"``).
    """

    def __init__(self, lambda_l1: float = 100.0, criterion: str = "least_squares") -> None:
        super().__init__()
        if lambda_l1 < 0:
            raise ValueError(f"lambda_l1 must be >= 0, got {lambda_l1}.")
        self.lambda_l1 = float(lambda_l1)
        self.adversarial = make_adversarial_loss(criterion)
        self.l1 = nn.L1Loss()

    def forward(self, fake_logits: torch.Tensor | list, fake: torch.Tensor, target: torch.Tensor) -> dict:
        """Returns ``gan``, ``l1`` (weighted) and ``total``."""
        gan = self.adversarial(last_output(fake_logits), target_is_real=True, for_discriminator=False)
        l1 = self.lambda_l1 * self.l1(fake, target)
        return {"gan": gan, "l1": l1, "total": gan + l1}
