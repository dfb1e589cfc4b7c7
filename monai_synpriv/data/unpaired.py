"""Unpaired sampling of two domains for CycleGAN-style training."""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset

from monai.transforms import Randomizable

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
        clash = (set(a) & set(b)) - {"subject", "slice"}
        if clash:
            raise KeyError(f"UnpairedDataset: both domains use the key(s) {sorted(clash)}; key them 'A' and 'B'.")
        out = dict(a)
        out.update({k: v for k, v in b.items() if k not in ("subject", "slice")})
        return out
