"""Synthetic images for vision-language pre-training (Liu et al. 2023): pairs, generation, evaluation.

The pieces live where their kind lives (``networks.BertTextEncoder`` / ``networks.DualEncoder``,
``losses.ConVIRTLoss``, ``engines.ConditionDropoutPrepareBatch``, ``transforms.TextConditioner``); this package holds
what is specific to the method: reading (image, text) pairs, generating synthetic pairs and evaluating a dual encoder.
"""

from .data import load_pairs
from .generation import GENERATION_SETTINGS, generate_synthetic_pairs, sample_images

__all__ = ["GENERATION_SETTINGS", "generate_synthetic_pairs", "load_pairs", "sample_images"]
