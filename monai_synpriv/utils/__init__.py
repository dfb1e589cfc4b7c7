"""Utilities: atomic writes, checkpoints, distributed (torchrun) helpers."""

from .checkpoints import find_latest_checkpoint
from .distributed import init_distributed, is_rank0, rank, replica_report, unwrap
from .io import atomic_path, require_file, sha256_file, write_json_atomic
from .mlflow_log import log_mlflow_run

__all__ = [
    "atomic_path",
    "find_latest_checkpoint",
    "init_distributed",
    "is_rank0",
    "log_mlflow_run",
    "rank",
    "replica_report",
    "require_file",
    "sha256_file",
    "unwrap",
    "write_json_atomic",
]
