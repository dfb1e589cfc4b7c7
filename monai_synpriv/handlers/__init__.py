"""Ignite handlers (attach to any MONAI engine)."""

from .image_grid import TranslationGridSaver
from .metrics_json import MetricsJSONWriter
from .mlflow_artifacts import MLflowArtifactLogger, find_mlflow_handler

__all__ = ["MLflowArtifactLogger", "MetricsJSONWriter", "TranslationGridSaver", "find_mlflow_handler"]
