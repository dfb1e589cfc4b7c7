"""Synthetic images for vision-language pre-training (Liu et al. 2023): pairs, generation, evaluation.

The pieces live where their kind lives (``networks.BertTextEncoder`` / ``networks.DualEncoder``,
``losses.ConVIRTLoss``, ``engines.ConditionDropoutPrepareBatch``, ``transforms.TextConditioner``); this package holds
what is specific to the method: reading (image, text) pairs, generating synthetic pairs and evaluating a dual encoder.
"""

from .data import load_pair_sources, load_pairs, pair_synthetic_with_real
from .evaluation import (
    embed_images,
    embed_pairs,
    embed_texts,
    evaluate_and_log,
    evaluate_dual_encoder,
    evaluate_generator,
    probe_scores,
    save_caption_grid,
)
from .generation import (
    GENERATION_SETTINGS,
    CaptionSamplingPrepareBatch,
    GuidedSamplingInferer,
    PretrainedTextConditioner,
    SyntheticPairWriter,
    generate_synthetic_pairs,
    sample_images,
)
from .judge import AttributeJudge, judge_agreement, judge_report, train_judge
from .latent import (
    EncodeLatentd,
    LatentDecoder,
    latent_scale_factor,
    latent_statistics,
    load_autoencoder,
    read_latent_record,
    write_latent_record,
)
from .text import TEXT_ENCODER_KINDS, build_text_encoder, build_tokenizer

__all__ = [
    "AttributeJudge",
    "EncodeLatentd",
    "LatentDecoder",
    "latent_scale_factor",
    "latent_statistics",
    "load_autoencoder",
    "read_latent_record",
    "write_latent_record",
    "judge_agreement",
    "judge_report",
    "train_judge",
    "embed_images",
    "embed_pairs",
    "embed_texts",
    "evaluate_and_log",
    "evaluate_dual_encoder",
    "evaluate_generator",
    "probe_scores",
    "CaptionSamplingPrepareBatch",
    "GENERATION_SETTINGS",
    "GuidedSamplingInferer",
    "PretrainedTextConditioner",
    "SyntheticPairWriter",
    "TEXT_ENCODER_KINDS",
    "build_text_encoder",
    "build_tokenizer",
    "generate_synthetic_pairs",
    "load_pair_sources",
    "load_pairs",
    "pair_synthetic_with_real",
    "sample_images",
    "save_caption_grid",
]
