"""MONAI ``Trainer`` subclasses for image translation."""

from .base import TranslationTrainerBase
from .cyclegan_trainer import CycleGANTrainer
from .image_pool import ImagePool
from .keys import TranslationIterationEvents, TranslationKeys
from .lr_schedule import ConstantThenLinearDecay
from .pix2pix_trainer import Pix2PixTrainer

__all__ = [
    "ConstantThenLinearDecay",
    "CycleGANTrainer",
    "ImagePool",
    "Pix2PixTrainer",
    "TranslationIterationEvents",
    "TranslationKeys",
    "TranslationTrainerBase",
]
