"""The architecture of a network, stored with its weights, and weights loading that says what does not fit.

A bundle's ``models/model.pt`` is a plain state dict (what model-zoo's ``ckpt_export`` and MONAI's
``CheckpointLoader`` load into ``network_def``). It does not say which architecture it was trained with, so weights of
a ResNet-10 given to a config that builds a ResNet-18 used to end in a long list of missing keys. The training
bundles now write ``models/model.network.json`` beside it (:func:`write_architecture`, through
:class:`monai_synpriv.handlers.AtomicCheckpointSaver`'s ``architecture``): the config keys that define the network and
their values. Inference configs call :func:`check_architecture` (or :func:`load_network_weights`) before loading, and
a mismatch stops with the overrides to pass (``--depth 10``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .io import write_json_atomic

__all__ = [
    "architecture_path",
    "check_architecture",
    "load_network_weights",
    "read_architecture",
    "read_state_dict",
    "write_architecture",
]


def architecture_path(ckpt_path: str | os.PathLike) -> Path:
    """``models/model.pt`` -> ``models/model.network.json``."""
    p = Path(ckpt_path)
    return p.with_name(f"{p.stem}.network.json")


def _plain(value: Any) -> Any:
    """JSON-comparable form of a config value (tuples -> lists, tensors/numpy scalars -> Python numbers)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def write_architecture(ckpt_path: str | os.PathLike, architecture: Mapping[str, Any]) -> Path:
    """Write ``architecture`` (config key -> value) atomically beside ``ckpt_path``; returns the JSON's path."""
    path = architecture_path(ckpt_path)
    write_json_atomic(path, {"weights": Path(ckpt_path).name, "architecture": _plain(dict(architecture))})
    return path


def read_architecture(ckpt_path: str | os.PathLike) -> dict[str, Any] | None:
    """The architecture stored beside ``ckpt_path``, or None when there is none (weights from elsewhere)."""
    path = architecture_path(ckpt_path)
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text())["architecture"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not an architecture record written with the weights ({e}).") from e


def check_architecture(ckpt_path: str | os.PathLike, architecture: Mapping[str, Any]) -> None:
    """Refuse weights trained with another architecture than the config's ``architecture`` builds.

    Only keys present in both the stored record and ``architecture`` are compared; without a record (weights from
    another source) nothing is checked here and :func:`load_network_weights` compares the tensors instead.

    Raises:
        ValueError: naming the checkpoint, each differing key with both values, and the overrides to pass.
    """
    stored = read_architecture(ckpt_path)
    if stored is None:
        return
    current = _plain(dict(architecture))
    differ = {k: (stored[k], current[k]) for k in stored.keys() & current.keys() if stored[k] != current[k]}
    if differ:
        keys = sorted(differ)
        detail = ", ".join(f"{k}={differ[k][0]!r} (config: {differ[k][1]!r})" for k in keys)
        fix = " ".join(f"--{k} {json.dumps(differ[k][0]).replace(' ', '')}" for k in keys)
        raise ValueError(
            f"{ckpt_path} was trained with another network: {detail}, as recorded in {architecture_path(ckpt_path)}. "
            f"Pass {fix} to use these weights."
        )


def read_state_dict(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A plain state dict from ``path`` (``weights_only``; unwraps ``{"model": ...}``, ``{"network": ...}``,
    ``{"state_dict": ...}`` as MONAI's ``CheckpointSaver`` and other trainers write them)."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict):
        for key in ("model", "network", "state_dict"):
            if key in state and isinstance(state[key], dict):
                return state[key]
    return state


def load_network_weights(
    network: nn.Module,
    ckpt_path: str | os.PathLike,
    architecture: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Load ``ckpt_path`` (a state dict, or one under ``model``/``network``/``state_dict``) into ``network``.

    Args:
        network: the config's ``network_def`` (or the module built from it).
        ckpt_path: the weights file.
        architecture: the config keys that define ``network`` and their values (checked against the record stored
            with the weights, :func:`check_architecture`).
        map_location: where the tensors go.

    Returns:
        ``network``, with the weights loaded.

    Raises:
        ValueError: the record says another architecture, or the tensors do not fit (missing or unexpected names,
            other shapes), naming the first few of each.
    """
    if architecture is not None:
        check_architecture(ckpt_path, architecture)
    state = read_state_dict(ckpt_path, map_location=map_location)
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own.keys() & state.keys() if tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for what, names in (("missing from the weights", missing), ("not in the network", unexpected)):
            if names:
                parts.append(f"{len(names)} tensor(s) {what} (e.g. {', '.join(names[:3])})")
        if shapes:
            k = sorted(shapes)[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: weights {tuple(state[k].shape)}, network {tuple(own[k].shape)})"
            )
        raise ValueError(
            f"{ckpt_path} does not fit the config's network: {'; '.join(parts)}. The weights were trained with another "
            "architecture: pass the training's network overrides (depth, channels, sizes) to this config."
        )
    network.load_state_dict(state)
    return network
