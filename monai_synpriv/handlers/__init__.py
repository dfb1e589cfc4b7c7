"""Ignite handlers (attach to any MONAI engine)."""

from .image_grid import TranslationGridSaver
from .metrics_json import MetricsJSONWriter
from .mlflow_extras import MLflowExtrasHandler, find_mlflow_handler

__all__ = ["MLflowExtrasHandler", "MetricsJSONWriter", "TranslationGridSaver", "find_mlflow_handler"]
