"""Refusing images whose content no model output can be trusted on: non-finite (NaN/Inf) or constant voxels.

:class:`CheckImageContentd` goes right after ``LoadImaged`` in a preprocessing list, before any intensity transform:
scaling a constant image divides by zero (0 or NaN out), and clipping or thresholding turns NaN into ordinary values
that hide the fault. It returns the image unchanged or raises :class:`ImageContentError` naming the file.

:func:`filter_bad_images` screens a whole datalist the same way before a run starts, which is how the inference and
embedding configs implement their ``on_bad_input`` option: ``"error"`` stops the run, listing every bad file, before any
output is written; ``"skip"`` logs each bad file with its reason and leaves it out of the list that the run iterates
over, so it is absent from every output, manifest, paired datalist or embedding table the run writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import convert_to_tensor

__all__ = [
    "ON_BAD_INPUT",
    "CheckImageContent",
    "CheckImageContentd",
    "ImageContentError",
    "filter_bad_images",
    "image_content_problem",
]

logger = logging.getLogger(__name__)

#: the values of the configs' ``on_bad_input`` option
ON_BAD_INPUT = ("error", "skip")

#: how to proceed, appended to every refusal
DEFAULT_HINT = (
    "Fix or remove the file; the inference and embedding configs can instead leave such inputs out, each one logged, "
    "with --on_bad_input skip."
)

#: most bad files one error message lists
_MAX_LISTED = 10


class ImageContentError(ValueError):
    """An image is unusable as a model input: it holds NaN/Inf voxels, is constant, or has no voxels."""


def image_content_problem(img: NdarrayOrTensor) -> str | None:
    """What makes ``img`` unusable as a model input, as the end of a sentence naming it, or None when it is usable.

    Args:
        img: an image of any shape and dtype (array or tensor).

    Returns:
        ``"contains 12 NaN and 0 infinite voxels (of 4096)"``, ``"is constant: every voxel is 0.0"``,
        ``"has no voxels (shape (1, 0, 4))"``, or None.
    """
    x = convert_to_tensor(img, track_meta=False)
    if x.numel() == 0:
        return f"has no voxels (shape {tuple(x.shape)})"
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if x.is_floating_point() or x.is_complex():
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        if n_nan or n_inf:
            return f"contains {n_nan} NaN and {n_inf} infinite voxels (of {x.numel()})"
    lo, hi = x.min(), x.max()
    if lo == hi:
        return f"is constant: every voxel is {float(lo)}"
    return None


def _source(img: Any) -> str:
    """The file an image was loaded from (its MetaTensor ``filename_or_obj``), or ``<in-memory image>``."""
    meta = getattr(img, "meta", None) or {}
    name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    return str(name) if name else "<in-memory image>"


class CheckImageContent(Transform):
    """
    Refuse an image whose content makes any model output meaningless: NaN or infinite voxels, a constant image (every
    voxel the same, e.g. an empty slice or a failed export) or an image without voxels. A usable image is returned
    unchanged (the same object, meta data included).

    Place it right after loading, before any intensity scaling or clipping: scaling a constant image gives 0 or NaN
    and thresholding replaces NaN, so a later check could not see the fault or its cause.

    Args:
        hint: how to proceed, appended to the error message.

    Raises:
        ImageContentError: naming the file (the MetaTensor's ``filename_or_obj``) and what is wrong with it.
    """

    def __init__(self, hint: str = DEFAULT_HINT) -> None:
        self.hint = hint

    def __call__(self, img: NdarrayOrTensor, source: str | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: the image to check.
            source: how the error names the image; default the file in its meta data.
        """
        problem = image_content_problem(img)
        if problem is not None:
            raise ImageContentError(f"{source or _source(img)} {problem}.{' ' + self.hint if self.hint else ''}")
        return img


class CheckImageContentd(MapTransform):
    """
    Dictionary wrapper of :class:`CheckImageContent`: the images under ``keys`` pass unchanged or the transform raises
    an :class:`ImageContentError` naming the key, the file and what is wrong, e.g. ``CheckImageContentd: key 'image':
    /data/scan.nii.gz contains 12 NaN and 0 infinite voxels (of 4096). Fix or remove the file; ...``.

    Args:
        keys: image keys to check.
        hint: how to proceed, appended to the error message.
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(self, keys: KeysCollection, hint: str = DEFAULT_HINT, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckImageContent(hint)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            self.checker(d[key], source=f"{type(self).__name__}: key {key!r}: {_source(d[key])}")
        return d


def filter_bad_images(
    items: Sequence[Mapping[str, Any]],
    keys: str | Sequence[str] = "image",
    on_bad_input: str = "error",
    name: str = "",
    hint: str = DEFAULT_HINT,
    progress: bool = False,
) -> list:
    """
    Screen the images of a datalist with :func:`image_content_problem` before a run: every item's ``keys`` are loaded
    (``LoadImage(image_only=True, ensure_channel_first=True)``, as the configs' ``LoadImaged``) and checked.

    - ``on_bad_input="error"``: after looking at every item, raise if any is bad, listing the files and reasons.
    - ``on_bad_input="skip"``: log a warning per bad item (its entry, files and reasons) and a summary, and return the
      other items, in order. The caller iterates over the result, so a skipped item is absent from everything the
      run writes.

    Args:
        items: datalist entries holding image paths (or arrays) under ``keys``.
        keys: the image key(s) to check in every item; an item is bad when one of its images is.
        on_bad_input: ``"error"`` or ``"skip"``.
        name: what messages call the datalist (e.g. ``"input_datalist"``).
        hint: how to proceed, appended to the error.
        progress: show a progress bar.

    Returns:
        The usable items (the same dicts), in their order; all of them when none is bad.

    Raises:
        ValueError: ``on_bad_input`` is neither value, an item lacks a key, or a file cannot be read.
        ImageContentError: ``"error"`` and at least one bad image; or ``"skip"`` and every item is bad.
    """
    if on_bad_input not in ON_BAD_INPUT:
        raise ValueError(f"on_bad_input must be one of {ON_BAD_INPUT}, got {on_bad_input!r}.")
    from tqdm.auto import tqdm

    where = f"{name}: " if name else ""
    keys = [keys] if isinstance(keys, str) else list(keys)
    # a DICOM series (folder or file list) as one volume, anything else as plain LoadImage: as the configs' LoadImaged
    loader = LoadImage(image_only=True, ensure_channel_first=True, reader="monai_synpriv.data.dicom.DicomSeriesReader")
    kept, bad = [], []
    for i, item in enumerate(tqdm(items, desc=f"checking {name or 'inputs'}", disable=not progress, leave=False)):
        reasons = []
        for key in keys:
            if key not in item:
                raise ValueError(f"{where}entry {i} has no key {key!r} (keys: {sorted(map(str, item))}).")
            value = item[key]
            is_paths = isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value)
            if isinstance(value, (str, os.PathLike)) or (is_paths and len(value) > 0):  # file, folder, series files
                try:
                    img = loader(value)
                except Exception as e:  # the reader's own message, with the file named
                    raise ValueError(f"{where}key {key!r}: cannot read {value}: {e}") from e
            else:
                img = value
            problem = image_content_problem(img)
            if problem is not None:
                source = value if isinstance(value, (str, os.PathLike)) or is_paths else _source(img)
                reasons.append(f"key {key!r}: {source} {problem}")
        if not reasons:
            kept.append(item)
            continue
        bad.append(f"entry {i}, " + "; ".join(reasons))
        if on_bad_input == "skip":
            logger.warning("%sskipping input %s (on_bad_input='skip').", where, bad[-1])
    if bad and on_bad_input == "error":
        listed = "\n  ".join(bad[:_MAX_LISTED])
        if len(bad) > _MAX_LISTED:
            listed += f"\n  ... and {len(bad) - _MAX_LISTED} more"
        raise ImageContentError(f"{where}{len(bad)} of {len(items)} input(s) cannot be used:\n  {listed}\n{hint}")
    if bad:
        logger.warning(
            "%sleft out %d of %d input(s) with unusable content; %d remain.", where, len(bad), len(items), len(kept)
        )
        if not kept:
            raise ImageContentError(
                f"{where}all {len(items)} input(s) have unusable content (see the warnings above): nothing is left to "
                "process. Fix the files or give other inputs."
            )
    return kept
