"""Utilities: atomic writes, checkpoints, MLflow helpers."""

from .checkpoints import find_latest_checkpoint
from .io import atomic_path, require_file, sha256_file, write_json_atomic

__all__ = ["atomic_path", "find_latest_checkpoint", "require_file", "sha256_file", "write_json_atomic"]
