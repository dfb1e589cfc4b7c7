"""Embed images with any encoder bundle: for EXAMINE (assessment bundle, label-efficiency experiment, MONAI Label app).

Encoder-bundle contract (the MAE bundle satisfies it): a config (by default the first of
``configs/inference.{json,yaml,yml}``; several files are merged in order) that defines

- ``network_def``: an ``nn.Module`` mapping an image batch ``(B, C, *spatial)`` to embeddings ``(B, D)``;
- ``preprocessing``: a MONAI ``Compose`` of dict transforms reading key ``"image"`` (a file path) into one tensor of
  the network's size and channel count;
- ``ckpt_path`` (optional; default ``<bundle>/models/model.pt``): a state dict of ``network_def`` (a
  ``{"model": state_dict}`` wrapper is accepted too).

:class:`EncoderBundle` loads such a bundle. Without a weights file it either refuses (``require_weights``) or keeps
the network's initial weights, seeded so that two processes embed alike, and says loudly (an
:class:`UntrainedEncoderWarning` and a log warning) that the embeddings come from an untrained network.
Nothing here needs MONAI Label.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.utils import convert_to_tensor
from torch import nn

from ..utils.io import atomic_path, sha256_file
from ..utils.precision import autocast, to_device
from ..utils.weights import read_state_dict

__all__ = [
    "save_embeddings",
    "CONFIG_NAMES",
    "EncoderBundle",
    "UntrainedEncoderWarning",
    "embed_items",
    "find_bundle_config",
    "load_state_dict_file",
    "write_embeddings",
]

logger = logging.getLogger(__name__)

#: the inference config names :func:`find_bundle_config` looks for under ``configs/``, in this order
CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")


class UntrainedEncoderWarning(UserWarning):
    """The encoder bundle has no weights file: embeddings come from the network's initial (random) weights."""


def find_bundle_config(bundle_dir: str | os.PathLike, names: Sequence[str] = CONFIG_NAMES) -> Path:
    """The first of ``configs/<name>`` that exists in ``bundle_dir``.

    Args:
        bundle_dir: the bundle folder.
        names: candidate file names under ``configs/``, in order of preference.

    Returns:
        The path of the first existing candidate.

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


def load_state_dict_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A plain state dict from ``path``: :func:`monai_synpriv.utils.read_state_dict` (kept under this name for the
    bundle configs and callers that use it)."""
    return read_state_dict(path, map_location=map_location)


class _IndexedDataset(Dataset):
    """A MONAI ``Dataset`` whose samples are ``(index, transformed item)``, so errors can name the item's file."""

    def _transform(self, index: int) -> tuple[int, Any]:
        return index, super()._transform(index)


def _keep_list(batch: list) -> list:
    """DataLoader collate that keeps the samples as they are (the checks and the stacking happen in the loop)."""
    return batch


@torch.no_grad()
def embed_items(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    preprocessing: Any,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
    image_key: str = "image",
    precision: str = "fp32",
    progress: bool = True,
    dtype: Any = np.float32,
    source: str = "the encoder bundle",
) -> np.ndarray:
    """Embeddings ``(n, D)`` of every item's image, in ``items`` order, with the network in eval mode.

    Args:
        network: the encoder (``(B, C, *spatial)`` -> ``(B, D)``).
        items: dicts with ``image_key`` (a file path) and anything else ``preprocessing`` reads.
        preprocessing: callable mapping one item to a dict holding the image tensor under ``image_key``.
        device: where the network runs.
        batch_size: images per forward pass.
        num_workers: DataLoader worker processes for the preprocessing.
        image_key: the image key of the items and of the preprocessed samples.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (autocast of the forward pass, CPU or CUDA).
        progress: show a tqdm progress bar.
        dtype: numpy dtype of the result.
        source: what error messages name as the culprit (e.g. the bundle's config path).

    Returns:
        The embeddings; ``(0, 0)`` when ``items`` is empty.

    Raises:
        ValueError: ``batch_size`` < 1; an item without ``image_key``; preprocessing that returns several samples
            for one item or images of different shapes; a network that does not return one ``D``-vector per image;
            non-finite embeddings.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    items = list(items)
    for i, item in enumerate(items):
        if image_key not in item:
            raise ValueError(f"item {i} has no key {image_key!r} (keys: {sorted(item)}).")
    if not items:
        return np.zeros((0, 0), dtype=dtype)
    device = torch.device(device)
    network = to_device(network, device, precision).eval()  # channels_last for 2D convolutions in bf16 on CPU
    loader = DataLoader(
        _IndexedDataset(items, transform=preprocessing),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_keep_list,
    )
    chunks = []
    for batch in tqdm(loader, desc="embedding", disable=not progress, leave=False):
        images, rows = [], []
        for row, sample in batch:
            if isinstance(sample, list):  # a multi-sample transform: the contract wants one image per file
                raise ValueError(
                    f"{source}: preprocessing returned {len(sample)} samples for {items[row][image_key]}; an encoder "
                    "bundle's preprocessing must map one file to one image."
                )
            if not isinstance(sample, Mapping) or image_key not in sample:
                raise ValueError(
                    f"{source}: preprocessing of {items[row][image_key]} gave no {image_key!r} entry; it must be "
                    f"dict transforms that load key {image_key!r}."
                )
            images.append(convert_to_tensor(sample[image_key], track_meta=False, dtype=torch.float32))
            rows.append(row)
        shapes = {tuple(x.shape) for x in images}
        if len(shapes) != 1:
            first = {}
            for x, row in zip(images, rows):
                first.setdefault(tuple(x.shape), items[row][image_key])
            found = ", ".join(f"{shape} for {path}" for shape, path in first.items())
            raise ValueError(
                f"{source}: preprocessing gives images of different shapes ({found}); it must bring every image to "
                "the network's size and channel count."
            )
        with autocast(device, precision):
            out = network(torch.stack(images).to(device))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(images):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"{source}: network_def must map (B, C, *spatial) to (B, D) embeddings; got {got} for a batch of "
                f"{len(images)}."
            )
        chunks.append(out.detach().float().cpu().numpy().astype(dtype, copy=False))
    emb = np.concatenate(chunks)
    if not np.isfinite(emb).all():
        bad = int((~np.isfinite(emb)).any(axis=1).sum())
        raise ValueError(f"{source}: the encoder returned non-finite embeddings for {bad} of {len(emb)} images.")
    return emb


class _Encoder:
    """What :class:`EncoderBundle` and :class:`~monai_synpriv.assessment.NetworkEncoder` share: loading the weights
    into the network (or warning loudly that there are none) and embedding items with :func:`embed_items`.
    Subclasses set ``network``, ``preprocessing``, ``device``, ``image_key`` and ``source`` first."""

    def _load_weights(
        self, network: nn.Module, weights_path: Path | None, require_weights: bool, what: str, untrained: str
    ) -> nn.Module:
        """Load ``weights_path`` into ``network`` (set ``trained``, ``ckpt_path``, ``weights_sha256``); without the
        file raise (``require_weights``) or warn with ``untrained`` (an :class:`UntrainedEncoderWarning`).

        Raises:
            FileNotFoundError: no weights file while ``require_weights`` (``what`` says where it was expected).
            RuntimeError: the file is not a state dict of ``network``.
        """
        self.weights_path = weights_path
        self.trained = weights_path is not None and weights_path.is_file()
        if not self.trained and require_weights:
            raise FileNotFoundError(
                f"encoder weights not found: {weights_path} ({what}; train the encoder first, set ckpt_path, or allow "
                "untrained weights with require_weights=False)."
            )
        self.ckpt_path = str(weights_path) if self.trained else None
        self.weights_sha256: str | None = None
        if self.trained:
            try:
                network.load_state_dict(load_state_dict_file(weights_path, map_location="cpu"))
            except (RuntimeError, AttributeError, TypeError) as e:
                raise RuntimeError(f"{weights_path} is not a state dict of {self.source}: {e}") from e
            self.weights_sha256 = sha256_file(weights_path)
        else:
            logger.warning(untrained)
            warnings.warn(untrained, UntrainedEncoderWarning, stacklevel=3)
        return network.to(self.device).eval()

    def embed_items(
        self,
        items: Sequence[Mapping[str, Any]],
        batch_size: int = 64,
        num_workers: int = 0,
        precision: str = "fp32",
        progress: bool = True,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """Embeddings ``(n, D)`` of datalist items (dicts with ``image_key``), in order: :func:`embed_items`."""
        return embed_items(
            self.network,
            items,
            self.preprocessing,
            device=self.device,
            batch_size=batch_size,
            num_workers=num_workers,
            image_key=self.image_key,
            precision=precision,
            progress=progress,
            dtype=dtype,
            source=self.source,
        )

    def embed(self, paths: Sequence[str | os.PathLike], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Embeddings ``(n, D)`` (float64) of the images at ``paths``, in that order.

        Raises:
            ValueError: see :func:`embed_items`.
        """
        items = [{self.image_key: str(p)} for p in paths]
        return self.embed_items(items, batch_size=batch_size, progress=progress, dtype=np.float64)

    embed_paths = embed


class EncoderBundle(_Encoder):
    """An encoder bundle loaded for embedding: ``network`` (weights loaded, eval mode), ``preprocessing``, provenance.

    Weights come from, in order: ``weights``; the config's ``ckpt_path`` (after ``overrides``; ``null`` means none);
    ``<bundle_dir>/models/model.pt``. Without them the bundle refuses to load (``require_weights``) or keeps the
    network's initial weights, seeded with ``seed``, with a loud :class:`UntrainedEncoderWarning`.

    Attributes:
        network: the encoder on ``device``, in eval mode.
        preprocessing: the bundle's ``preprocessing`` transform.
        bundle_dir: the bundle folder (absolute).
        config_paths: the config files read, merged in order.
        config_files: the same, as strings.
        weights_path: the weights file loaded or looked for (None when the config sets ``ckpt_path`` to null).
        ckpt_path: the weights file loaded (as given), None when untrained.
        trained: whether weights were loaded.
        weights_sha256: SHA-256 of the weights file, None when untrained.

    Args:
        bundle_dir: the bundle folder.
        config_file: config path(s) relative to ``bundle_dir`` (or absolute), merged in order; default: the first
            of ``configs/inference.{json,yaml,yml}`` (:func:`find_bundle_config`).
        weights: state-dict file; overrides the config's ``ckpt_path`` (must exist when given).
        device: torch device for the network.
        overrides: config ids to set before parsing (e.g. ``{"image_size": [64, 64]}``); ``bundle_root`` is set to
            ``bundle_dir`` unless overridden here.
        require_weights: raise when there is no weights file (the default) instead of embedding with the
            seeded initial weights and an ``UntrainedEncoderWarning``.
        seed: seeds the network's initial weights (what an untrained encoder embeds with).
        image_key: the key ``preprocessing`` reads and writes.

    Raises:
        FileNotFoundError: no bundle folder or config file, ``weights`` given but missing, or no weights file while
            ``require_weights``.
        KeyError: the config lacks ``network_def`` or ``preprocessing``.
        TypeError: ``network_def`` is not an ``nn.Module``.
        RuntimeError: the weights file is not a state dict of ``network_def``.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        config_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        overrides: Mapping[str, Any] | None = None,
        require_weights: bool = True,
        seed: int = 0,
        image_key: str = "image",
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        if not self.bundle_dir.is_dir():
            raise FileNotFoundError(f"encoder bundle folder not found: {bundle_dir}")
        if config_file is None:
            self.config_paths = [find_bundle_config(self.bundle_dir)]
        else:
            files = [config_file] if isinstance(config_file, (str, os.PathLike)) else list(config_file)
            self.config_paths = [Path(f) if Path(f).is_absolute() else self.bundle_dir / f for f in files]
            for p in self.config_paths:
                if not p.is_file():
                    raise FileNotFoundError(f"encoder bundle config not found: {p}")
        self.config_files = [str(p) for p in self.config_paths]
        self.device = torch.device(device)
        self.image_key = image_key
        self.overrides = dict(overrides or {})
        self.seed = seed
        source = self.source

        parser = ConfigParser()
        parser.read_config(self.config_files if len(self.config_files) > 1 else self.config_files[0])
        parser["bundle_root"] = str(self.bundle_dir)
        for k, v in self.overrides.items():
            parser[k] = v
        for key in ("network_def", "preprocessing"):
            if key not in parser:
                raise KeyError(
                    f"{source} defines no {key!r}: an encoder bundle needs 'network_def' (images -> (B, D) "
                    f"embeddings) and 'preprocessing' (dict transforms loading the {image_key!r} path)."
                )

        if weights is not None:
            if not Path(weights).is_file():
                raise FileNotFoundError(f"encoder weights not found: {weights}")
            ckpt: str | None = str(weights)
        elif "ckpt_path" in parser:
            ckpt = parser.get_parsed_content("ckpt_path")
            ckpt = None if ckpt is None else str(ckpt)
        else:
            ckpt = str(self.bundle_dir / "models" / "model.pt")
        self.preprocessing = parser.get_parsed_content("preprocessing")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = parser.get_parsed_content("network_def")
        if not isinstance(network, nn.Module):
            raise TypeError(f"{source}: network_def must be an nn.Module, got {type(network).__name__}.")
        self.network = self._load_weights(
            network,
            Path(ckpt) if ckpt is not None else None,
            require_weights,
            what=f"config {source}",
            untrained=(
                f"ENCODER BUNDLE {self.bundle_dir} HAS NO WEIGHTS ({ckpt or 'ckpt_path is null'}): embedding with the "
                f"network's INITIAL (random, seed {seed}) weights. EXAMINE scores from an untrained encoder only "
                "reflect raw image statistics; train the encoder bundle first for meaningful scores."
            ),
        )

    @property
    def config_path(self) -> Path:
        """The (first) config file read."""
        return self.config_paths[0]

    @property
    def source(self) -> str:
        """The config file(s), as error messages name them."""
        return " + ".join(self.config_files)

    def fingerprint(self) -> str:
        """Identifies what the embeddings depend on: the config text, the weights (or the seed) and the overrides."""
        h = hashlib.sha256()
        for p in self.config_paths:
            h.update(p.read_bytes())
        h.update((self.weights_sha256 or f"untrained-seed{self.seed}").encode())
        h.update(json.dumps(self.overrides, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """One preprocessed image ``(C, *spatial)`` as a plain float32 tensor.

        Raises:
            ValueError: the preprocessing returns several samples for the file.
        """
        out = self.preprocessing({self.image_key: str(path)})
        if isinstance(out, list):
            raise ValueError(f"{self.source}: preprocessing returned {len(out)} samples for {path}; expected one.")
        return convert_to_tensor(out[self.image_key], track_meta=False, dtype=torch.float32)


def write_embeddings(
    network: nn.Module,
    items: list[dict],
    preprocessing: Any,
    output_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    image_key: str = "image",
    precision: str = "fp32",
    prefix: str = "embeddings",
) -> dict[str, str]:
    """Embed ``items`` and write ``<prefix>.npy`` (float32, ``(n, D)``) and ``<prefix>.csv`` (row, image and the
    items' scalar fields such as ``label``), both atomically.

    Args:
        network: the encoder.
        items: datalist entries with ``image_key``.
        preprocessing: the bundle's preprocessing.
        output_dir: where the files go.
        device: where the network runs.
        batch_size: images per forward pass.
        image_key: the image key of the items.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (autocast of the forward pass, CPU or CUDA).
        prefix: the files' name stem.

    Returns:
        ``{"embeddings": <npy path>, "index": <csv path>}``.
    """
    emb = embed_items(
        network, items, preprocessing, device=device, batch_size=batch_size, image_key=image_key, precision=precision
    )
    return save_embeddings(emb, items, output_dir, image_key=image_key, prefix=prefix)


def save_embeddings(
    embeddings: np.ndarray,
    items: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    image_key: str = "image",
    prefix: str = "embeddings",
) -> dict[str, str]:
    """Write ``<prefix>.npy`` (float32, ``(n, D)``) and ``<prefix>.csv`` (row, image and the items' scalar fields
    such as ``label``), both atomically: the files of :func:`write_embeddings` and of
    :class:`monai_synpriv.handlers.EmbeddingWriter`.

    Raises:
        ValueError: the number of embeddings is not the number of items.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.shape[0] != len(items):
        raise ValueError(f"{emb.shape[0]} embeddings for {len(items)} items: every item needs exactly one.")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    npy, table = out / f"{prefix}.npy", out / f"{prefix}.csv"
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, emb)
    extra = [k for k in items[0] if k != image_key and isinstance(items[0][k], (int, float, str))] if items else []
    with atomic_path(table) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["row", image_key, *extra])
            for i, item in enumerate(items):
                writer.writerow([i, item[image_key], *(item.get(k, "") for k in extra)])
    logger.info("wrote %d embeddings of length %d to %s", emb.shape[0], emb.shape[1] if emb.ndim == 2 else 0, npy)
    return {"embeddings": str(npy), "index": str(table)}
