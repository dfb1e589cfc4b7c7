"""Writing images atomically to paths carried in the data dictionary."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data.image_writer import PILWriter
from monai.transforms import MapTransform

from ..utils.io import atomic_path

__all__ = ["SaveToPathd", "write_image"]

_PIL_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _ras_affine(meta: Mapping, spatial_rank: int) -> np.ndarray:
    """The image's affine as a 4x4 RAS matrix (MONAI keeps ITK-read images in LPS; NIfTI files are RAS)."""
    affine = meta.get("affine")
    affine = np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).cpu(), dtype=np.float64)
    if affine.shape != (4, 4):  # a 2D affine (3x3): embed it
        full = np.eye(4)
        r = affine.shape[0] - 1
        full[:r, :r], full[:r, 3] = affine[:r, :r], affine[:r, r]
        affine = full
    if str(meta.get("space", "RAS")).upper() == "LPS":
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return affine


def write_image(img: torch.Tensor, path: str, meta: Mapping | None = None) -> str:
    """Write a channel-first image atomically, as it is (no resampling): NIfTI (``.nii``/``.nii.gz``, float32,
    with ``meta['affine']``) or an 8-bit picture (``.png``/``.jpg``..., values in [0, 1] scaled to 0-255)."""
    name = path.lower()
    meta = dict(meta or getattr(img, "meta", {}) or {})
    data = img.detach().cpu() if isinstance(img, torch.Tensor) else torch.as_tensor(np.asarray(img))
    data = data.as_tensor() if hasattr(data, "as_tensor") else data
    if name.endswith(_PIL_EXT):
        writer = PILWriter(output_dtype=np.uint8, scale=255)
        writer.set_data_array(data, channel_dim=0)
        writer.set_metadata({"spatial_shape": tuple(data.shape[1:])}, resample=False)
        with atomic_path(path) as tmp:
            writer.write(tmp)
    elif name.endswith((".nii", ".nii.gz")):
        arr = data.numpy().astype(np.float32)
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)  # channels last, as NIfTI expects
        with atomic_path(path) as tmp:
            nib.save(nib.Nifti1Image(arr, _ras_affine(meta, data.ndim - 1)), tmp)
    else:
        raise ValueError(f"unsupported output format for {path}: use .nii.gz, .nii or .png.")
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

    def __init__(
        self, keys: KeysCollection, path_key: str, meta_key: str | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.path_key = path_key
        self.meta_key = meta_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if self.path_key not in d:
            raise KeyError(
                f"SaveToPathd: no destination path under key {self.path_key!r} (keys: {sorted(map(str, d))})."
            )
        for key in self.key_iterator(d):
            meta = getattr(d[self.meta_key], "meta", None) if self.meta_key else None
            Path(d[self.path_key]).parent.mkdir(parents=True, exist_ok=True)
            write_image(d[key], str(d[self.path_key]), meta)
        return d
