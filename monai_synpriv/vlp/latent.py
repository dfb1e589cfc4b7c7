"""Latent diffusion for the caption-conditioned generator, with MONAI's ``AutoencoderKL`` as the first stage.

On this CPU a diffusion step on 16 x 16 x 3 latents costs a twentieth of one on 64 px images
(``benchmarks/generator_design.py``, docs/benchmarks.md), so the generator of issue 20 diffuses latents:

1. ``configs/train_autoencoder.json`` trains the autoencoder on the training images and, at its end,
   :func:`write_latent_record` writes ``<autoencoder_dir>/autoencoder.json`` beside its weights: the scale factor
   that gives the latents unit variance (Rombach et al. 2022), the latent shape, the settings and the weights' SHA-256.
2. ``configs/train_latent.json`` (after ``train.json``) trains the UNet on the scaled latents of the same images,
   encoded once and cached (:class:`EncodeLatentd`, the posterior mean); :func:`read_latent_record` refuses a record
   of other settings or of replaced weights before any work.
3. Generation (``generate.json`` after both) samples latents and decodes them (:class:`LatentDecoder`). The DDIM
   sampler clips its ``x0`` prediction to the record's ``latent_min``/``latent_max`` (the range of the scaled
   training latents), not to MONAI's default [-1, 1]: the scaled latents are not centred (channel means 0.57, 0.65
   and 1.82 over the first 64 px run's training latents) and [-1, 1] pinned the third channel at or below 1. A record without the range samples unclipped.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor
from torch import nn

from ..utils import read_state_dict
from ..utils.io import sha256_file, write_json_atomic

__all__ = [
    "AUTOENCODER_RECORD",
    "AUTOENCODER_WEIGHTS",
    "EncodeLatentd",
    "LatentDecoder",
    "latent_scale_factor",
    "load_autoencoder",
    "read_latent_record",
    "write_latent_record",
]

#: file names in the autoencoder's folder
AUTOENCODER_WEIGHTS = "autoencoder.pt"
AUTOENCODER_RECORD = "autoencoder.json"


def load_autoencoder(
    network: nn.Module,
    autoencoder_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    settings: Mapping[str, Any] | None = None,
) -> nn.Module:
    """``network`` with the trained weights of ``autoencoder_dir``, frozen, in eval mode, on ``device``. With
    ``settings``, the folder's record is checked first (:func:`read_latent_record`), so a network built with other
    settings is refused by name rather than by a tensor-shape mismatch.

    Raises:
        FileNotFoundError: no weights there (says how to train them).
        ValueError: the record's settings or weights do not match.
    """
    if settings is not None:
        read_latent_record(autoencoder_dir, settings)
    path = Path(autoencoder_dir) / AUTOENCODER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"autoencoder weights {path} not found: train the first stage with configs/train_autoencoder.json "
            "(same ckpt_dir / autoencoder_dir) before latent diffusion."
        )
    network.load_state_dict(read_state_dict(path, map_location=device))
    network = network.to(device).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return network


@torch.no_grad()
def _encode_mean(autoencoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    z_mu, _ = autoencoder.encode(images)
    return z_mu.float()


@torch.no_grad()
def latent_statistics(
    autoencoder: nn.Module,
    dataset: Sequence[Mapping[str, Any]],
    device: str | torch.device = "cpu",
    key: str = "image",
    batch_size: int = 32,
) -> dict[str, Any]:
    """The latents of every item of ``dataset`` (items with a C x H x W tensor under ``key``), measured once:

    - ``scale_factor``: ``1 / std`` of the latent means (one number, as in LDM);
    - ``latent_shape``: C' x h x w;
    - ``latent_min``, ``latent_max``: the range of the *scaled* latents, which a sampler can clip its ``x0`` prediction
      to (MONAI's schedulers clip to [-1, 1] by default, which suits images, not latents: the scaled latents are not
      centred, and a channel may lie entirely above 1);
    - ``latent_channel_mean``, ``latent_channel_std``: per channel, scaled (recorded for the reader).

    Raises:
        ValueError: an empty dataset or a collapsed encoder (zero spread).
    """
    autoencoder = autoencoder.to(device).eval()
    latents = []
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        batch = torch.stack([torch.as_tensor(dataset[i][key]) for i in range(start, stop)])
        latents.append(_encode_mean(autoencoder, batch.float().to(device)).cpu())
    if not latents:
        raise ValueError("latent_statistics: the dataset is empty (no image to encode).")
    z = torch.cat(latents)
    std = float(z.std())
    if not std > 0:
        raise ValueError(f"the autoencoder's latents have standard deviation {std}: a collapsed or untrained encoder.")
    scaled = z / std
    dims = [0, *range(2, scaled.ndim)]
    return {
        "scale_factor": 1.0 / std,
        "latent_shape": list(z.shape[1:]),
        "latent_min": float(scaled.min()),
        "latent_max": float(scaled.max()),
        "latent_channel_mean": [float(v) for v in scaled.mean(dim=dims)],
        "latent_channel_std": [float(v) for v in scaled.std(dim=dims)],
    }


def latent_scale_factor(
    autoencoder: nn.Module,
    dataset: Sequence[Mapping[str, Any]],
    device: str | torch.device = "cpu",
    key: str = "image",
    batch_size: int = 32,
) -> tuple[float, list[int]]:
    """``1 / std`` of the latent means of every item of ``dataset`` (items with a C x H x W tensor under ``key``),
    and the latent shape (C x h x w); :func:`latent_statistics` has the rest."""
    stats = latent_statistics(autoencoder, dataset, device, key, batch_size)
    return stats["scale_factor"], stats["latent_shape"]


def write_latent_record(
    autoencoder: nn.Module,
    dataset: Sequence[Mapping[str, Any]],
    autoencoder_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    settings: Mapping[str, Any] | None = None,
    key: str = "image",
) -> dict[str, Any]:
    """Measure the latents of ``dataset`` (the training images: :func:`latent_statistics`, the scale factor and the
    scaled latents' range among them) and write ``<autoencoder_dir>/autoencoder.json`` (atomically) with them, the
    number of images, ``settings`` and the SHA-256 of the saved weights. Returns the record.

    Calling it again on the same weights and images rewrites the same record (the encoder's posterior mean is
    deterministic); that is how a record written before ``latent_min``/``latent_max`` existed gets them."""
    weights = Path(autoencoder_dir) / AUTOENCODER_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the autoencoder training did not save its final weights.")
    record = {
        **latent_statistics(autoencoder, dataset, device, key),
        "n_images": len(dataset),
        "autoencoder_sha256": sha256_file(weights),
        "settings": dict(settings or {}),
    }
    write_json_atomic(Path(autoencoder_dir) / AUTOENCODER_RECORD, record)
    return record


def read_latent_record(autoencoder_dir: str | os.PathLike, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The autoencoder's record, checked: it exists, its weights are the ones it measured, and it was made with
    ``settings`` (the keys given).

    Raises:
        FileNotFoundError: no record (says how to make one).
        ValueError: the weights were replaced after the record, or other settings (named, old and new).
    """
    folder = Path(autoencoder_dir)
    path = folder / AUTOENCODER_RECORD
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: train the autoencoder with configs/train_autoencoder.json first (it writes the "
            "record with the latents' scale factor at its end)."
        )
    import json

    record = json.loads(path.read_text())
    weights = folder / AUTOENCODER_WEIGHTS
    if not weights.is_file() or sha256_file(weights) != record.get("autoencoder_sha256"):
        raise ValueError(
            f"{weights} is not the autoencoder {path} was measured on (missing or replaced): re-run "
            "configs/train_autoencoder.json to write a new record."
        )
    old = record.get("settings", {})
    clash = {k: (old.get(k), v) for k, v in (settings or {}).items() if old.get(k) != v}
    if clash:
        raise ValueError(
            f"the autoencoder in {folder} was trained with other settings {clash} (trained, asked): use the same "
            "overrides as its training, or train one for these."
        )
    return record


class EncodeLatentd(MapTransform):
    """
    Replace the C x H x W image under each key by its scaled latent (the ``AutoencoderKL`` posterior mean times
    ``scale_factor``), C' x h x w, as a plain tensor. Deterministic: put it last in a cached chain, so the encoder
    runs once per image. The chain must be flat (``Compose.flatten()``): MONAI's ``CacheDataset`` and
    ``PersistentDataset`` cache up to the first random transform, and a nested ``Compose`` counts as random.

    Args:
        keys: image keys.
        autoencoder: a trained, frozen ``AutoencoderKL`` (:func:`load_autoencoder`).
        scale_factor: the record's ``scale_factor``.
        device: where to encode.
        allow_missing_keys: don't raise for a missing key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        autoencoder: nn.Module,
        scale_factor: float,
        device: str | torch.device = "cpu",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.autoencoder, self.scale_factor, self.device = autoencoder, float(scale_factor), device

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = torch.as_tensor(d[key]).float()
            if img.ndim != 3:
                raise ValueError(f"EncodeLatentd: {key!r} must be one C x H x W image, got shape {tuple(img.shape)}.")
            z = _encode_mean(self.autoencoder, img[None].to(self.device))[0].cpu()
            # a plain tensor: a MetaTensor latent would route every UNet operation through __torch_function__
            d[key] = convert_to_tensor(z * self.scale_factor, track_meta=False)
        return d


class LatentDecoder:
    """
    Sampled latents (B x C' x h x w, scaled) -> images in the autoencoder's training range, for generation: the
    autoencoder's decoder on ``latents / scale_factor``, fp32, without gradients.

    Args:
        autoencoder: the trained ``AutoencoderKL``.
        scale_factor: the record's ``scale_factor``.
        checkpoint_sha256: the record's ``autoencoder_sha256``: recorded with the generated images, so a resume with
            another autoencoder is refused.
    """

    def __init__(self, autoencoder: nn.Module, scale_factor: float, checkpoint_sha256: str | None = None) -> None:
        self.autoencoder, self.scale_factor = autoencoder, float(scale_factor)
        self.settings = {"autoencoder_sha256": checkpoint_sha256, "latent_scale_factor": self.scale_factor}

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        param = next(self.autoencoder.parameters())
        out = self.autoencoder.decode(latents.to(param.device, param.dtype) / self.scale_factor)
        return out.float().to(latents.device)
