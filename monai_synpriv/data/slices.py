"""2D slices from 3D volumes: consistent orientation, per-volume normalisation, empty slices filtered out."""

from __future__ import annotations

import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Compose, LoadImage, Orientation, ThresholdIntensity

from ..transforms import ForegroundPercentileNormalize
from ..utils.io import atomic_path

__all__ = ["load_normalized_volume", "foreground_fraction", "select_slices", "save_slice"]


def load_normalized_volume(
    path: str | os.PathLike,
    axcodes: str = "RAS",
    lower: float = 0.5,
    upper: float = 99.5,
) -> torch.Tensor:
    """Load a volume channel-first, reorient it to ``axcodes`` (so that LPS and RAS files agree), clip negative
    values (interpolation artefacts) at 0 and map the foreground's ``lower``..``upper`` percentiles to [0, 1].

    Raises:
        ValueError: naming ``path`` when the volume is not 3D, or is NaN/constant/empty.
    """
    try:
        img = Compose(
            [
                LoadImage(image_only=True, ensure_channel_first=True),
                Orientation(axcodes=axcodes),
                ThresholdIntensity(threshold=0.0, above=True, cval=0.0),
            ]
        )(str(path))
    except Exception as e:
        raise ValueError(f"cannot read volume {path}: {e}") from e
    if img.ndim != 4:
        raise ValueError(f"{path}: expected a 3D volume, got shape {tuple(img.shape)} (channel first).")
    try:
        return ForegroundPercentileNormalize(lower=lower, upper=upper)(img)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def foreground_fraction(volume: torch.Tensor, axis: int = 2, threshold: float = 0.0) -> np.ndarray:
    """Fraction of foreground voxels in each slice along spatial ``axis`` of a channel-first volume."""
    fg = (volume > threshold).any(dim=0)  # over channels
    dims = tuple(d for d in range(3) if d != axis)
    return fg.float().mean(dim=dims).cpu().numpy()


def select_slices(volumes: Sequence[torch.Tensor], axis: int = 2, min_foreground: float = 0.05) -> list[int]:
    """Indices of slices whose foreground fraction is at least ``min_foreground`` in every one of ``volumes``
    (co-registered contrasts of one subject), so that empty slices are dropped and pairs stay aligned."""
    fractions = np.stack([foreground_fraction(v, axis) for v in volumes])
    return [int(i) for i in np.nonzero((fractions >= min_foreground).all(axis=0))[0]]


def save_slice(volume: torch.Tensor, index: int, path: str | os.PathLike, axis: int = 2) -> str:
    """Write slice ``index`` (along ``axis``) of a channel-first single-channel volume as a 2D float32 NIfTI whose
    affine places it where it lay in the volume. Written atomically."""
    arr = np.take(volume[0].cpu().numpy(), index, axis=axis).astype(np.float32)
    affine = np.asarray(getattr(volume, "affine", np.eye(4)), dtype=np.float64)
    shift = np.eye(4)
    shift[axis, 3] = index
    others = [d for d in range(3) if d != axis]
    placed = (affine @ shift)[:, [*others, axis, 3]]  # the 2D array's axes first, the sliced axis third
    with atomic_path(path) as tmp:
        nib.save(nib.Nifti1Image(arr, placed), tmp)
    return str(path)
