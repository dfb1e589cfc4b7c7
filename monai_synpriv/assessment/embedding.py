"""Embed images with any encoder bundle, for EXAMINE and the label-efficiency experiment.

Encoder-bundle contract (the MAE bundle and the multimodal SSL bundle satisfy it): a config (by default
``configs/inference.json``) that defines

- ``network_def``: an ``nn.Module`` mapping an image batch ``(B, C, *spatial)`` to embeddings ``(B, D)``;
- ``preprocessing``: a MONAI ``Compose`` of dict transforms reading key ``"image"`` (a file path) into a tensor;
- ``ckpt_path`` (optional; default ``<bundle>/models/model.pt``): a plain state dict of ``network_def`` (a
  ``{"model": state_dict}`` wrapper is accepted too).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from torch import nn

__all__ = ["EncoderBundle", "embed_items", "load_encoder_bundle", "load_state_dict_file", "write_embeddings"]

logger = logging.getLogger(__name__)


@dataclass
class EncoderBundle:
    """An encoder read from a bundle: the network (weights loaded, eval mode), its preprocessing and provenance."""

    network: nn.Module
    preprocessing: Any
    bundle_dir: str
    config_files: list[str]
    ckpt_path: str | None
    trained: bool


def load_state_dict_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A plain state dict from ``path`` (unwraps ``{"model": ...}`` / ``{"network": ...}`` checkpoints)."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict):
        for key in ("model", "network", "state_dict"):
            if key in state and isinstance(state[key], dict):
                return state[key]
    return state


def load_encoder_bundle(
    bundle_dir: str | os.PathLike,
    config_file: str | list[str] = "configs/inference.json",
    overrides: dict | None = None,
    device: str | torch.device = "cpu",
    require_weights: bool = True,
) -> EncoderBundle:
    """Instantiate ``network_def`` and ``preprocessing`` of an encoder bundle and load its weights.

    Args:
        bundle_dir: the bundle's root folder.
        config_file: config path(s) relative to ``bundle_dir`` (or absolute), merged in order.
        overrides: config ids to override (``bundle_root`` is set to ``bundle_dir`` unless given).
        device: where the network goes.
        require_weights: raise when the checkpoint is missing; with False, warn and keep the initial weights.

    Raises:
        FileNotFoundError: the bundle, a config file or (``require_weights``) the checkpoint does not exist.
        KeyError: the config lacks ``network_def`` or ``preprocessing``.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"encoder bundle folder not found: {root}")
    files = [config_file] if isinstance(config_file, (str, os.PathLike)) else list(config_file)
    paths = [str(p if Path(p).is_absolute() else root / p) for p in files]
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"encoder bundle config not found: {p}")
    parser = ConfigParser()
    parser.read_config(paths if len(paths) > 1 else paths[0])
    parser["bundle_root"] = str(root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    for key in ("network_def", "preprocessing"):
        if key not in parser:
            raise KeyError(
                f"encoder bundle {root} ({', '.join(files)}) defines no {key!r}: an encoder bundle needs "
                "'network_def' (images -> (B, D) embeddings) and 'preprocessing' (dict transforms on 'image')."
            )
    ckpt = parser.get_parsed_content("ckpt_path") if "ckpt_path" in parser else str(root / "models" / "model.pt")
    if ckpt is not None and not Path(ckpt).is_file():
        if require_weights:
            raise FileNotFoundError(
                f"encoder weights not found: {ckpt} (train the bundle first, set ckpt_path, or pass "
                "require_weights=False to embed with untrained weights)."
            )
        logger.warning("encoder weights %s not found: embedding with the UNTRAINED network of %s", ckpt, root)
        ckpt = None
    network = parser.get_parsed_content("network_def", instantiate=True)
    if ckpt is not None:
        network.load_state_dict(load_state_dict_file(ckpt))
    network = network.to(device).eval()
    preprocessing = parser.get_parsed_content("preprocessing", instantiate=True)
    return EncoderBundle(network, preprocessing, str(root), paths, ckpt, ckpt is not None)


@torch.no_grad()
def embed_items(
    network: nn.Module,
    items: list[dict],
    preprocessing: Any,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
    image_key: str = "image",
    amp: bool = False,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings ``(n, D)`` (float32, in ``items`` order) of every image, with the network in eval mode.

    Raises:
        ValueError: if the network does not return one vector per image.
    """
    from tqdm import tqdm

    device = torch.device(device)
    network = network.to(device).eval()
    loader = DataLoader(Dataset(items, transform=preprocessing), batch_size=batch_size, num_workers=num_workers)
    out = []
    for batch in tqdm(loader, desc="embedding", disable=not progress, leave=False):
        x = batch[image_key]
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            emb = network(x.to(device))
        if isinstance(emb, (tuple, list)):
            raise ValueError("the encoder returned a tuple: an encoder bundle's network_def must return (B, D).")
        out.append(emb.float().flatten(1).cpu())
    return torch.cat(out).numpy()


def write_embeddings(
    network: nn.Module,
    items: list[dict],
    preprocessing: Any,
    output_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    image_key: str = "image",
    amp: bool = False,
    prefix: str = "embeddings",
) -> dict[str, str]:
    """Embed ``items`` and write ``<prefix>.npy`` (float32, ``(n, D)``) and ``<prefix>.csv`` (row, image and the
    items' scalar fields such as ``label``), both atomically; returns their paths."""
    import csv

    from ..utils.io import atomic_path

    emb = embed_items(network, items, preprocessing, device=device, batch_size=batch_size, image_key=image_key, amp=amp)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    npy, table = out / f"{prefix}.npy", out / f"{prefix}.csv"
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, emb)
    extra = [k for k in items[0] if k != image_key and isinstance(items[0][k], (int, float, str))]
    with atomic_path(table) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["row", image_key, *extra])
            for i, item in enumerate(items):
                writer.writerow([i, item[image_key], *(item.get(k, "") for k in extra)])
    logger.info("wrote %d embeddings of length %d to %s", emb.shape[0], emb.shape[1], npy)
    return {"embeddings": str(npy), "index": str(table)}
