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
from .probes import classification_metrics, error_reduction, extract_features, knn_probe, linear_probe, mlp_probe

__all__ = [
    "CLUSTER_METHODS",
    "FEATURE_NORMALIZATIONS",
    "ClusterModel",
    "classification_metrics",
    "cluster_accuracy",
    "clustering_metrics",
    "error_reduction",
    "extract_features",
    "fit_clusters",
    "hungarian_mapping",
    "knn_probe",
    "linear_probe",
    "mlp_probe",
    "normalize_features",
]
