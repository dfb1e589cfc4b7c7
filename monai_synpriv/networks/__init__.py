"""Networks (``nn.Module`` s only, no training logic)."""

from .autoencoder import ContrastiveAutoEncoder, LatentClassifier, LatentEncoder
from .mae import MAE_POOLING, MAEEmbedder, patchify, unpatchify
from .multibranch import (
    RESNET_FEATURES,
    MultiBranchSSLNet,
    ProjectionHead,
    build_multibranch_resnet,
    make_resnet_encoder,
)
from .resnet_generator import CycleGANResNetGenerator
from .unet_generator import Pix2PixUNetGenerator

__all__ = [
    "MAE_POOLING",
    "MAEEmbedder",
    "RESNET_FEATURES",
    "ContrastiveAutoEncoder",
    "CycleGANResNetGenerator",
    "LatentClassifier",
    "LatentEncoder",
    "MultiBranchSSLNet",
    "Pix2PixUNetGenerator",
    "ProjectionHead",
    "build_multibranch_resnet",
    "make_resnet_encoder",
    "patchify",
    "unpatchify",
]
