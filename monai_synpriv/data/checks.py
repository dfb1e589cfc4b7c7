"""Checks of input images before any long work starts: every problem names the file and the key at fault."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.transforms import LoadImage
from tqdm.auto import tqdm

__all__ = ["InputDataError", "check_images", "check_translation_inputs"]


class InputDataError(ValueError):
    """Bad input data (missing file, wrong channels or dimensions, NaN, constant image, empty list)."""


def check_images(
    items: Sequence[dict],
    key: str,
    spatial_dims: int | None = None,
    channels: int | None = None,
    check_values: bool = True,
    max_checked: int | None = None,
    name: str = "",
    progress: bool = True,
    hint: str = "",
) -> dict:
    """
    Check ``items[*][key]``: the list is not empty, every file exists, and (for up to ``max_checked`` files, all by
    default) the image loads, has ``spatial_dims`` spatial dimensions and ``channels`` channels (after MONAI's
    channel-first convention), and has finite, non-constant values.

    ``hint`` is appended to a spatial-dimension error (e.g. which config handles the other case).

    Returns:
        a summary: ``{"count", "spatial_dims", "channels", "shape"}`` of the first image.

    Raises:
        InputDataError: naming the datalist ``name``, the key and the file at fault.
    """
    where = f"{name} " if name else ""
    if not items:
        raise InputDataError(f"{where}datalist is empty: no images under key {key!r}.")
    for i, item in enumerate(items):
        if key not in item:
            raise InputDataError(f"{where}entry {i} has no key {key!r} (keys: {sorted(item)}).")
        path = item[key]
        if isinstance(path, str) and not os.path.exists(path):
            raise InputDataError(f"{where}key {key!r}: file not found: {path}")
    # a DICOM series (folder or file list) as one volume, anything else as plain LoadImage: as the configs' LoadImaged
    loader = LoadImage(image_only=True, ensure_channel_first=True, reader="monai_synpriv.data.dicom.DicomSeriesReader")
    n = len(items) if max_checked is None else min(len(items), max_checked)
    summary: dict = {"count": len(items)}
    for item in tqdm(items[:n], desc=f"checking {name or key}", disable=not progress, leave=False):
        path = item[key]
        try:
            img = loader(path)
        except Exception as e:  # the reader's own message, with the file named
            raise InputDataError(f"{where}key {key!r}: cannot read {path}: {e}") from e
        sd, ch = img.ndim - 1, int(img.shape[0])
        if spatial_dims is not None and sd != spatial_dims:
            raise InputDataError(
                f"{where}key {key!r}: {path} has {sd} spatial dimensions (shape {tuple(img.shape)}), "
                f"expected {spatial_dims}.{' ' + hint if hint else ''}"
            )
        if channels is not None and ch != channels:
            raise InputDataError(
                f"{where}key {key!r}: {path} has {ch} channel(s) (shape {tuple(img.shape)}), expected {channels}."
            )
        if check_values:
            arr = np.asarray(img)
            if not np.isfinite(arr).all():
                raise InputDataError(f"{where}key {key!r}: {path} contains NaN or Inf values.")
            if arr.size == 0 or float(arr.max()) == float(arr.min()):
                raise InputDataError(f"{where}key {key!r}: {path} is constant (value {float(arr.flat[0])}).")
        if "shape" not in summary:
            summary.update(spatial_dims=sd, channels=ch, shape=tuple(img.shape))
    return summary


def check_translation_inputs(
    items_a: Sequence[dict],
    items_b: Sequence[dict],
    key_a: str = "A",
    key_b: str = "B",
    spatial_dims: int | None = None,
    channels_a: int | None = None,
    channels_b: int | None = None,
    max_checked: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Check both domains of a translation task (see :func:`check_images`) and that they have the same number of
    spatial dimensions. Returns the lists unchanged, so a config can wrap its datalists in it."""
    sa = check_images(items_a, key_a, spatial_dims, channels_a, max_checked=max_checked, name="domain A")
    sb = check_images(items_b, key_b, spatial_dims, channels_b, max_checked=max_checked, name="domain B")
    if sa["spatial_dims"] != sb["spatial_dims"]:
        raise InputDataError(
            f"domain A ({key_a!r}, e.g. {items_a[0][key_a]}) is {sa['spatial_dims']}D but domain B ({key_b!r}, "
            f"e.g. {items_b[0][key_b]}) is {sb['spatial_dims']}D: both domains need the same spatial dimensions."
        )
    return list(items_a), list(items_b)
