"""Writing images atomically to paths carried in the data dictionary."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch

from monai.config import KeysCollection
from monai.data.image_writer import NibabelWriter, PILWriter
from monai.transforms import MapTransform

from ..utils.io import atomic_path

__all__ = ["SaveToPathd", "write_image"]

_PIL_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def write_image(img: torch.Tensor, path: str, meta: Mapping | None = None) -> str:
    """Write a channel-first image atomically: NIfTI (``.nii``/``.nii.gz``, float32, keeping ``meta['affine']``,
    no resampling) or an 8-bit picture (``.png``/``.jpg``..., values in [0, 1] scaled to 0-255)."""
    name = path.lower()
    meta = dict(meta or getattr(img, "meta", {}) or {})
    data = img.detach().cpu() if isinstance(img, torch.Tensor) else torch.as_tensor(np.asarray(img))
    if name.endswith(_PIL_EXT):
        writer = PILWriter(output_dtype=np.uint8, scale=255)
        writer.set_data_array(data, channel_dim=0)
        writer.set_metadata(meta, resample=False)
    elif name.endswith((".nii", ".nii.gz")):
        writer = NibabelWriter(output_dtype=np.float32)
        writer.set_data_array(data, channel_dim=0)
        writer.set_metadata(meta, resample=False)
    else:
        raise ValueError(f"unsupported output format for {path}: use .nii.gz, .nii or .png.")
    with atomic_path(path) as tmp:
        writer.write(tmp)
    return path


class SaveToPathd(MapTransform):
    """
    Write ``data[key]`` to the path held in ``data[path_key]`` (atomically: a temporary file renamed into place, so
    an interrupted run never leaves a truncated output that a re-run would skip). The image's own meta data
    (affine) is written with it, or that of ``meta_key`` (e.g. the inverted input) when given.

    Args:
        keys: image keys to write (usually ``"pred"``).
        path_key: key holding the destination path.
        meta_key: key of the image whose meta data (affine) to write; default the written image's own.
    """

    def __init__(self, keys: KeysCollection, path_key: str, meta_key: str | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.path_key = path_key
        self.meta_key = meta_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if self.path_key not in d:
            raise KeyError(f"SaveToPathd: no destination path under key {self.path_key!r} (keys: {sorted(map(str, d))}).")
        for key in self.key_iterator(d):
            meta = getattr(d[self.meta_key], "meta", None) if self.meta_key else None
            Path(d[self.path_key]).parent.mkdir(parents=True, exist_ok=True)
            write_image(d[key], str(d[self.path_key]), meta)
        return d
