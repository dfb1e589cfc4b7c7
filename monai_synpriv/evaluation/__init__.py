"""Evaluation of learned representations: probes, clustering and their metrics."""

from .clustering import (
    CLUSTER_METHODS,
    FEATURE_NORMALIZATIONS,
    ClusterModel,
    cluster_accuracy,
    clustering_metrics,
    fit_clusters,
    hungarian_mapping,
    normalize_features,
)
from .generative import density_coverage, frechet_distance, knn_radii, precision_recall
from .paired_stats import paired_comparison, verdict
from .probes import classification_metrics, error_reduction, extract_features, knn_probe, linear_probe, mlp_probe
from .translation_fd import FixedRandomFeatures, image_features, translation_frechet_report
from .translation_table import translation_report
from .retrieval import TIE_RULES, image_text_agreement, retrieval_ranks, retrieval_recall, similarity_matrix

__all__ = [
    "CLUSTER_METHODS",
    "FixedRandomFeatures",
    "image_features",
    "translation_frechet_report",
    "translation_report",
    "ClusterModel",
    "FEATURE_NORMALIZATIONS",
    "TIE_RULES",
    "classification_metrics",
    "cluster_accuracy",
    "clustering_metrics",
    "density_coverage",
    "error_reduction",
    "extract_features",
    "fit_clusters",
    "frechet_distance",
    "hungarian_mapping",
    "image_text_agreement",
    "knn_probe",
    "knn_radii",
    "linear_probe",
    "mlp_probe",
    "normalize_features",
    "paired_comparison",
    "precision_recall",
    "retrieval_ranks",
    "retrieval_recall",
    "similarity_matrix",
    "verdict",
]
