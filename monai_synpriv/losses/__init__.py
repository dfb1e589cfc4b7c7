"""Losses. Adversarial terms reuse MONAI's ``PatchAdversarialLoss``, Barlow Twins MONAI's ``BarlowTwinsLoss``."""

from .adversarial import DiscriminatorLoss, last_output, make_adversarial_loss
from .autoencoder import AutoencoderKLLoss, ContrastiveAutoEncoderLoss, gaussian_kl
from .contrastive import CrossViewInfoNCELoss, MultiBranchBarlowTwinsLoss
from .convirt import ConVIRTLoss
from .cyclegan import CycleGANGeneratorLoss
from .mae import MaskedPatchLoss
from .patchnce import CUTGeneratorLoss, PatchNCELoss
from .pix2pix import Pix2PixGeneratorLoss
from .structure import MINDStructureLoss, mind_descriptor
from .vicreg import MultiBranchVICRegLoss, vicreg_terms

__all__ = [
    "AutoencoderKLLoss",
    "CUTGeneratorLoss",
    "ConVIRTLoss",
    "ContrastiveAutoEncoderLoss",
    "CrossViewInfoNCELoss",
    "CycleGANGeneratorLoss",
    "DiscriminatorLoss",
    "MINDStructureLoss",
    "MaskedPatchLoss",
    "MultiBranchBarlowTwinsLoss",
    "MultiBranchVICRegLoss",
    "PatchNCELoss",
    "Pix2PixGeneratorLoss",
    "gaussian_kl",
    "last_output",
    "make_adversarial_loss",
    "mind_descriptor",
    "vicreg_terms",
]
