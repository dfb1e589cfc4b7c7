"""Networks (``nn.Module`` s only, no training logic)."""

from .autoencoder import ContrastiveAutoEncoder, LatentClassifier, LatentEncoder
from .dual_encoder import DualEncoder, MLPProjection
from .mae import MAE_POOLING, MAEEmbedder, MixedPrecisionMaskedAutoEncoderViT, patchify, unpatchify
from .multibranch import (
    RESNET_FEATURES,
    MultiBranchSSLNet,
    ProjectionHead,
    build_multibranch_resnet,
    make_resnet_encoder,
)
from .patch_sampler import PatchSampleMLP
from .resnet_generator import CycleGANResNetGenerator
from .text_encoder import TEXT_POOLING, BertTextEncoder, default_pretrained_text_dir
from .unet_generator import Pix2PixUNetGenerator

__all__ = [
    "BertTextEncoder",
    "ContrastiveAutoEncoder",
    "CycleGANResNetGenerator",
    "DualEncoder",
    "LatentClassifier",
    "LatentEncoder",
    "MAEEmbedder",
    "MixedPrecisionMaskedAutoEncoderViT",
    "MAE_POOLING",
    "MLPProjection",
    "MultiBranchSSLNet",
    "PatchSampleMLP",
    "Pix2PixUNetGenerator",
    "ProjectionHead",
    "RESNET_FEATURES",
    "TEXT_POOLING",
    "build_multibranch_resnet",
    "default_pretrained_text_dir",
    "make_resnet_encoder",
    "patchify",
    "unpatchify",
]
