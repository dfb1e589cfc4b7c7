"""Data assessment: which unlabelled images to label first (EXAMINE) and the baselines it is compared with."""

from .examine import (
    EXAMINE_METHODS,
    ExamineResult,
    ExamineScorer,
    brute_force_msv,
    examine_scores,
    examine_transform,
    iter_chunks,
    preprocess_embeddings,
)

__all__ = [
    "EXAMINE_METHODS",
    "ExamineResult",
    "ExamineScorer",
    "brute_force_msv",
    "examine_scores",
    "examine_transform",
    "iter_chunks",
    "preprocess_embeddings",
]
