"""Losses. Adversarial terms reuse MONAI's ``PatchAdversarialLoss``."""

from .adversarial import DiscriminatorLoss, last_output, make_adversarial_loss
from .cyclegan import CycleGANGeneratorLoss
from .pix2pix import Pix2PixGeneratorLoss

__all__ = ["CycleGANGeneratorLoss", "DiscriminatorLoss", "Pix2PixGeneratorLoss", "last_output", "make_adversarial_loss"]
