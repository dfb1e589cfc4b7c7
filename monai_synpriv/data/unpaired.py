"""Unpaired sampling of two domains for CycleGAN-style training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data.utils import set_rnd
from monai.transforms import Randomizable
from torch.utils.data import Dataset

__all__ = ["UnpairedDataset"]


class UnpairedDataset(Randomizable, Dataset):
    """
    Draws item ``i`` of domain A with a *random* item of domain B, so that no fixed pairing is ever learned (the
    CycleGAN "unaligned" sampling). Its length is the larger of the two; the smaller domain wraps around for A.
    Both datasets return dicts (e.g. MONAI ``Dataset`` / ``CacheDataset`` with per-domain transforms keyed
    ``"A"`` and ``"B"``); the result is their union. When both return lists of samples (patch samplers such as
    ``RandSpatialCropSamplesd``), they are merged pairwise.

    Args:
        dataset_a: domain A dataset.
        dataset_b: domain B dataset.
        seed: seed of the B sampler (MONAI's ``DataLoader`` re-seeds it per worker).
    """

    def __init__(self, dataset_a: Dataset, dataset_b: Dataset, seed: int = 0) -> None:
        for name, ds in (("dataset_a", dataset_a), ("dataset_b", dataset_b)):
            if len(ds) == 0:  # type: ignore[arg-type]
                raise ValueError(f"UnpairedDataset: {name} is empty.")
        self.dataset_a, self.dataset_b = dataset_a, dataset_b
        self.set_random_state(seed)

    def set_random_state(self, seed: int | None = None, state=None) -> UnpairedDataset:
        """Seed the B sampler and, with ``seed``, the random transforms of both domains (MONAI's ``DataLoader``
        calls this per worker; without it every worker would replay the same augmentations)."""
        super().set_random_state(seed, state)
        if seed is not None:
            set_rnd(self.dataset_a, seed + 1)
            set_rnd(self.dataset_b, seed + 2)
        return self

    def __len__(self) -> int:
        return max(len(self.dataset_a), len(self.dataset_b))  # type: ignore[arg-type]

    def randomize(self, data=None) -> int:
        return int(self.R.randint(len(self.dataset_b)))  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        a = self.dataset_a[index % len(self.dataset_a)]  # type: ignore[arg-type]
        b = self.dataset_b[self.randomize()]
        if isinstance(a, Sequence) and isinstance(b, Sequence) and not isinstance(a, dict):
            if len(a) != len(b):
                raise ValueError(f"UnpairedDataset: A gives {len(a)} samples per item, B gives {len(b)}.")
            return [self._merge(x, y) for x, y in zip(a, b)]
        return self._merge(a, b)

    @staticmethod
    def _merge(a: dict, b: dict) -> dict:
        """Union of the two dicts; a non-image field present in both (subject, slice, crop coordinates...) is kept
        from A and B's copy is stored as ``<field>_b``. Two *images* under one key are an error."""
        out = dict(a)
        for k, v in b.items():
            if k not in out:
                out[k] = v
            elif isinstance(v, torch.Tensor) and v.ndim > 1 and isinstance(out[k], torch.Tensor) and out[k].ndim > 1:
                raise KeyError(f"UnpairedDataset: both domains hold an image under {k!r}; key them 'A' and 'B'.")
            else:
                out[f"{k}_b"] = v
        return out
