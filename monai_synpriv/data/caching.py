"""One switch between MONAI's in-memory and on-disk caches of preprocessed training data."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.data.utils import json_hashing, pickle_hashing
from monai.transforms import Compose

__all__ = ["cached_dataset"]


def _transform_hashing(transforms) -> bytes:
    """Hash of the deterministic transforms (their classes and settings); transforms that cannot be pickled (local
    lambdas) fall back to their class names and ``repr``."""
    try:
        return pickle_hashing(transforms)
    except Exception:
        warnings.warn("cached_dataset: a transform cannot be pickled; the on-disk cache is keyed by class names only.")
        return json_hashing([f"{type(t).__module__}.{type(t).__qualname__}" for t in transforms])


def cached_dataset(
    data: Sequence,
    transform: Callable,
    cache_dir: str | os.PathLike | None = None,
    cache_rate: float = 1.0,
    num_workers: int | None = 1,
    progress: bool = False,
) -> Dataset:
    """
    The dataset a training config wants for its (deterministic part of the) preprocessing:

    - ``cache_dir`` given: MONAI's :class:`~monai.data.PersistentDataset`. Preprocessed items are stored under
      ``cache_dir`` and reused by later runs and other processes (large sets, 3D volumes, several bundles or seeds
      on the same data). The cache key hashes both the datalist entry and the deterministic transforms, so a change
      of image size or normalisation does not reuse stale items.
    - otherwise: :class:`~monai.data.CacheDataset` (in memory; ``cache_rate`` 0 loads lazily, which is faster when a
      short run sees only part of a large set).

    Transforms after the first random one run at every access in both cases. A ``Compose`` is flattened first
    (``Compose.flatten()``): the bundles chain ``Compose([@load, @views])``, and MONAI counts a nested ``Compose`` as
    random, which would cache nothing and load and preprocess every image at every access.
    """
    if isinstance(transform, Compose):
        transform = transform.flatten()
    if cache_dir is not None:
        return PersistentDataset(data=data, transform=transform, cache_dir=cache_dir, hash_transform=_transform_hashing)
    return CacheDataset(
        data=data, transform=transform, cache_rate=cache_rate, num_workers=num_workers, progress=progress
    )
