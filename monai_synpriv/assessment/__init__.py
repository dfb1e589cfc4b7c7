"""Data assessment: which unlabelled images to label first (EXAMINE) and the baselines it is compared with."""

from .embedding import (
    EncoderBundle,
    UntrainedEncoderWarning,
    embed_items,
    find_bundle_config,
    load_state_dict_file,
    save_embeddings,
    write_embeddings,
)
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
from .report import ExamineAssessment, NetworkEncoder, write_ranking_csv
from .selection import SELECTION_ENDS, k_center_greedy, select_random, select_top, select_weighted

__all__ = [
    "ExamineAssessment",
    "NetworkEncoder",
    "write_ranking_csv",
    "EncoderBundle",
    "UntrainedEncoderWarning",
    "embed_items",
    "find_bundle_config",
    "load_state_dict_file",
    "save_embeddings",
    "write_embeddings",
    "EXAMINE_METHODS",
    "ExamineResult",
    "ExamineScorer",
    "brute_force_msv",
    "examine_scores",
    "examine_transform",
    "iter_chunks",
    "preprocess_embeddings",
    "SELECTION_ENDS",
    "k_center_greedy",
    "select_random",
    "select_top",
    "select_weighted",
]
