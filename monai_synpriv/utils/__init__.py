"""Utilities: atomic writes, checkpoints, distributed (torchrun) helpers, mixed precision."""

from .checkpoints import find_latest_checkpoint
from .distributed import init_distributed, is_rank0, rank, replica_report, unwrap
from .io import atomic_path, require_file, sha256_file, write_json_atomic
from .mlflow_log import log_mlflow_run
from .weights import (
    architecture_path,
    check_architecture,
    load_network_weights,
    read_architecture,
    read_state_dict,
    write_architecture,
)
from .precision import (
    Precision,
    autocast,
    cpu_bf16_units,
    make_grad_scaler,
    memory_format_for,
    resolve_precision,
    to_device,
)

__all__ = [
    "architecture_path",
    "check_architecture",
    "load_network_weights",
    "read_architecture",
    "read_state_dict",
    "write_architecture",
    "Precision",
    "atomic_path",
    "autocast",
    "cpu_bf16_units",
    "find_latest_checkpoint",
    "init_distributed",
    "is_rank0",
    "log_mlflow_run",
    "make_grad_scaler",
    "memory_format_for",
    "rank",
    "replica_report",
    "require_file",
    "resolve_precision",
    "sha256_file",
    "to_device",
    "unwrap",
    "write_json_atomic",
]
