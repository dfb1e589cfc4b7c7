"""Embed images with an encoder bundle: the input of EXAMINE scoring (no MONAI Label needed here).

The encoder-bundle contract: ``<bundle>/configs/inference.json`` (or ``.yaml``) defines

- ``network_def``: an ``nn.Module`` mapping an image batch ``(B, C, *spatial)`` to embeddings ``(B, D)``;
- ``preprocessing``: a MONAI ``Compose`` of dictionary transforms on the key ``"image"`` whose value is a file path
  (it loads the image and brings it to the network's size);

and ``<bundle>/models/model.pt`` holds a plain ``state_dict`` of ``network_def``. Without that file the encoder keeps
its initial weights (seeded, so that two processes embed alike) and a loud warning says the scores come from an
untrained network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.utils import convert_to_tensor

__all__ = ["EncoderBundle", "UntrainedEncoderWarning", "find_bundle_config"]

logger = logging.getLogger(__name__)

CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")


class UntrainedEncoderWarning(UserWarning):
    """The encoder bundle has no ``models/model.pt``: embeddings come from initial (random) weights."""


def find_bundle_config(bundle_dir: str | os.PathLike, names: Sequence[str] = CONFIG_NAMES) -> Path:
    """The first of ``configs/<name>`` that exists in ``bundle_dir``.

    Raises:
        FileNotFoundError: the folder or every candidate config is missing.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"bundle folder not found: {root}")
    for name in names:
        if (root / "configs" / name).is_file():
            return root / "configs" / name
    raise FileNotFoundError(f"{root} is not a usable bundle: none of configs/{{{','.join(names)}}} exists.")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class EncoderBundle:
    """An encoder bundle loaded for embedding: its ``preprocessing`` and ``network_def`` (+ ``models/model.pt``).

    Args:
        bundle_dir: the bundle folder.
        weights: state-dict file; default ``<bundle_dir>/models/model.pt`` (optional: see the module docstring).
        device: torch device for the network.
        overrides: config ids to set before parsing (e.g. ``{"image_size": [64, 64]}``).
        seed: seeds the initial weights, used only when there is no weights file.
        image_key: the key ``preprocessing`` reads and writes.

    Raises:
        FileNotFoundError: no inference config, or ``weights`` given explicitly but missing.
        KeyError: the config lacks ``network_def`` or ``preprocessing``.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        overrides: dict[str, Any] | None = None,
        seed: int = 0,
        image_key: str = "image",
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        self.config_path = find_bundle_config(self.bundle_dir)
        self.device = torch.device(device)
        self.image_key = image_key
        self.overrides = dict(overrides or {})
        self.seed = seed
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f"encoder weights not found: {weights}")
        self.weights_path = Path(weights) if weights is not None else self.bundle_dir / "models" / "model.pt"
        self.trained = self.weights_path.is_file()

        parser = ConfigParser()
        parser.read_config(str(self.config_path))
        parser["bundle_root"] = str(self.bundle_dir)
        for k, v in self.overrides.items():
            parser[k] = v
        for key in ("network_def", "preprocessing"):
            if key not in parser:
                raise KeyError(
                    f"{self.config_path} defines no '{key}': an encoder bundle needs 'network_def' (images -> "
                    "(B, D) embeddings) and 'preprocessing' (dict transforms loading the 'image' path)."
                )
        self.preprocessing = parser.get_parsed_content("preprocessing")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = parser.get_parsed_content("network_def")
        if not isinstance(network, torch.nn.Module):
            raise TypeError(f"{self.config_path}: network_def must be an nn.Module, got {type(network).__name__}.")
        if self.trained:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
            try:
                network.load_state_dict(state)
            except (RuntimeError, AttributeError, TypeError) as e:
                raise RuntimeError(
                    f"{self.weights_path} is not a plain state_dict of {self.config_path}'s network_def: {e}"
                ) from e
            self.weights_sha256 = _sha256(self.weights_path)
        else:
            self.weights_sha256 = None
            msg = (
                f"ENCODER BUNDLE {self.bundle_dir} HAS NO WEIGHTS ({self.weights_path} not found): embedding with the "
                f"network's INITIAL (random, seed {seed}) weights. EXAMINE scores from an untrained encoder only "
                "reflect raw image statistics; train the encoder bundle first for meaningful scores."
            )
            logger.warning(msg)
            warnings.warn(msg, UntrainedEncoderWarning, stacklevel=2)
        self.network = network.to(self.device).eval()

    def fingerprint(self) -> str:
        """Identifies what the embeddings depend on: the config text, the weights (or the seed) and the overrides."""
        h = hashlib.sha256()
        h.update(self.config_path.read_bytes())
        h.update((self.weights_sha256 or f"untrained-seed{self.seed}").encode())
        h.update(json.dumps(self.overrides, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """One preprocessed image ``(C, *spatial)`` as a plain tensor."""
        out = self.preprocessing({self.image_key: str(path)})
        if isinstance(out, list):  # a multi-sample transform: the contract wants one image per file
            raise ValueError(f"{self.config_path}: preprocessing returned {len(out)} samples for {path}; expected one.")
        return convert_to_tensor(out[self.image_key], track_meta=False, dtype=torch.float32)

    @torch.no_grad()
    def embed(self, paths: Sequence[str | os.PathLike], batch_size: int = 16) -> np.ndarray:
        """Embeddings ``(n, D)`` (float64) of the images at ``paths``, in that order.

        Raises:
            ValueError: the network does not return one ``D``-vector per image, or returns non-finite values.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        chunks = []
        for start in range(0, len(paths), batch_size):
            batch_paths = paths[start : start + batch_size]
            images = [self.load(p) for p in batch_paths]
            shapes = {tuple(x.shape) for x in images}
            if len(shapes) != 1:
                raise ValueError(
                    f"{self.config_path}: preprocessing gives images of different shapes {sorted(shapes)}; it must "
                    "bring every image to the network's size (and channel count)."
                )
            out = self.network(torch.stack(images).to(self.device))
            if isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(images):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"{self.config_path}: network_def must map (B, C, *spatial) to (B, D) embeddings; "
                    f"got {shape} for a batch of {len(images)}."
                )
            chunks.append(out.detach().to("cpu", torch.float64).numpy())
        if not chunks:
            return np.zeros((0, 0))
        emb = np.concatenate(chunks)
        if not np.isfinite(emb).all():
            raise ValueError(f"{self.config_path}: the encoder returned non-finite embeddings.")
        return emb
