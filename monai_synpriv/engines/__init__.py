"""MONAI ``Trainer`` subclasses on one mixed-precision base (:class:`MixedPrecisionTrainer`): image translation (CycleGAN, CUT/FastCUT, pix2pix), multi-branch self-supervised learning and the
contrastive autoencoder."""

from .autoencoder_trainer import ContrastiveAutoEncoderTrainer
from .base import MixedPrecisionTrainer, PrepareBatchKeys, TranslationTrainerBase
from .cut_trainer import CUTTrainer
from .cyclegan_trainer import CycleGANTrainer
from .diffusion import ConditionDropoutPrepareBatch
from .image_pool import ImagePool
from .image_text_trainer import ImageTextTrainer
from .keys import TranslationIterationEvents, TranslationKeys
from .lr_schedule import ConstantThenLinearDecay
from .pix2pix_trainer import Pix2PixTrainer
from .ssl_trainer import MultiBranchSSLTrainer
from .supervised_trainer import MixedPrecisionSupervisedTrainer
from .utils import image_as_target

__all__ = [
    "CUTTrainer",
    "ConditionDropoutPrepareBatch",
    "ConstantThenLinearDecay",
    "ContrastiveAutoEncoderTrainer",
    "CycleGANTrainer",
    "ImagePool",
    "ImageTextTrainer",
    "MixedPrecisionSupervisedTrainer",
    "MixedPrecisionTrainer",
    "MultiBranchSSLTrainer",
    "Pix2PixTrainer",
    "PrepareBatchKeys",
    "TranslationIterationEvents",
    "TranslationKeys",
    "TranslationTrainerBase",
    "image_as_target",
]
