"""Evaluation of learned representations: probes and metrics."""

from .probes import classification_metrics, error_reduction, extract_features, knn_probe, linear_probe, mlp_probe

__all__ = ["classification_metrics", "error_reduction", "extract_features", "knn_probe", "linear_probe", "mlp_probe"]
