"""Ignite handlers (attach to any MONAI engine)."""

from .collapse_monitor import EmbeddingCollapseMonitor, effective_rank, embedding_std
from .image_grid import TranslationGridSaver
from .metrics_json import MetricsJSONWriter
from .mlflow_extras import MLflowExtrasHandler, find_mlflow_handler
from .probe_evaluation import ProbeEvaluationHandler

__all__ = [
    "EmbeddingCollapseMonitor",
    "MLflowExtrasHandler",
    "MetricsJSONWriter",
    "ProbeEvaluationHandler",
    "TranslationGridSaver",
    "effective_rank",
    "embedding_std",
    "find_mlflow_handler",
]
