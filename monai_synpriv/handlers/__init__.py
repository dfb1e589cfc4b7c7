"""Ignite handlers (attach to any MONAI engine)."""

from .atomic_checkpoint import AtomicCheckpointSaver, AtomicDiskSaver
from .cluster_assignment import ClusterAssignmentWriter
from .clustering_evaluation import ClusteringEvaluationHandler
from .embedding_writer import EmbeddingWriter
from .collapse_monitor import EmbeddingCollapseMonitor, effective_rank, embedding_std
from .image_grid import TranslationGridSaver
from .mae_grid import MAEReconstructionGrid, mae_reconstruction_rows
from .metrics_json import MetricsJSONWriter
from .mlflow_extras import MLflowExtrasHandler, find_mlflow_handler
from .probe_evaluation import ProbeEvaluationHandler
from .resilient_mlflow import ResilientMlflowClient, ResilientMLFlowHandler

__all__ = [
    "MAEReconstructionGrid",
    "mae_reconstruction_rows",
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "ClusterAssignmentWriter",
    "ClusteringEvaluationHandler",
    "EmbeddingCollapseMonitor",
    "EmbeddingWriter",
    "MLflowExtrasHandler",
    "MetricsJSONWriter",
    "ProbeEvaluationHandler",
    "ResilientMLFlowHandler",
    "ResilientMlflowClient",
    "TranslationGridSaver",
    "effective_rank",
    "embedding_std",
    "find_mlflow_handler",
]
