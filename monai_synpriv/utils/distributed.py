"""Helpers for ``torchrun`` runs of the bundles (``multi_gpu_train.json`` overlays): process-group set-up, rank
checks, unwrapping ``DistributedDataParallel`` and a replica-consistency report."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .io import write_json_atomic

__all__ = ["init_distributed", "is_rank0", "rank", "replica_report", "unwrap"]


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_rank0() -> bool:
    """True on the process that writes files, checkpoints and MLflow records."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> torch.device:
    """
    Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...),
    once; NCCL on GPUs, gloo on CPU unless ``backend`` says otherwise. Returns this process's device (``cuda:<local
    rank>`` or ``cpu``).

    Raises:
        RuntimeError: the environment variables of ``torchrun`` are missing (the overlay was run without it).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError(
            "multi_gpu_train.json needs the process-group environment that torchrun sets (RANK, WORLD_SIZE, ...): "
            "run `torchrun --nproc_per_node=<N> -m monai.bundle run --config_file \"['configs/train.json',"
            "'configs/multi_gpu_train.json']\" ...`."
        )
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"))
    if cuda:
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The network inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper, else the module itself."""
    return (
        module.module
        if isinstance(module, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel))
        else module
    )


def _flat_params(modules: Mapping[str, torch.nn.Module]) -> torch.Tensor:
    return torch.cat([p.detach().float().reshape(-1).cpu() for m in modules.values() for p in unwrap(m).parameters()])


def replica_report(
    modules: Mapping[str, torch.nn.Module], path: str | os.PathLike, metrics: Mapping[str, Any] | None = None
) -> dict:
    """
    Check that every rank ends with the same weights (and, given ``metrics``, the same reduced metrics): all ranks
    gather their flattened parameters; rank 0 writes ``{"world_size", "max_abs_param_diff", "param_checksums",
    "metrics_per_rank"}`` to ``path`` (atomically) and every rank returns it. Outside a process group it reports the
    single process.
    """
    flat = _flat_params(modules)
    metrics = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (flat, metrics))
    else:
        world, gathered = 1, [(flat, metrics)]
    ref = gathered[0][0]
    report = {
        "world_size": world,
        "max_abs_param_diff": max(float((g[0] - ref).abs().max()) for g in gathered),
        "param_checksums": [float(g[0].double().sum()) for g in gathered],
        "metrics_per_rank": [g[1] for g in gathered],
    }
    if is_rank0():
        write_json_atomic(Path(path), report)
    return report
