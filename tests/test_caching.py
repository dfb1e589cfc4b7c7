"""cached_dataset: in-memory by default, on disk with a cache folder, keyed by the preprocessing too."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import CacheDataset, PersistentDataset
from monai.transforms import Compose, Lambdad, RandFlipd, Resized

from monai_synpriv.data import cached_dataset


def _items(n: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    # numpy, like file paths, hashes the same in every process (in-memory torch tensors do not)
    return [{"image": rng.random((1, 16, 16)).astype(np.float32), "id": i} for i in range(n)]


def test_memory_cache_by_default():
    ds = cached_dataset(_items(), Compose([Resized("image", (8, 8))]))
    assert isinstance(ds, CacheDataset)
    assert ds[0]["image"].shape == (1, 8, 8)


CALLS: list[int] = []


def _count(x):
    CALLS.append(1)
    return x


def pipeline(size: int) -> Compose:
    return Compose([Lambdad("image", _count), Resized("image", (size, size))])


def test_disk_cache_is_reused_and_keyed_by_the_transforms(tmp_path):
    CALLS.clear()
    calls = CALLS

    ds = cached_dataset(_items(), pipeline(8), cache_dir=tmp_path)
    assert isinstance(ds, PersistentDataset)
    first = [ds[i]["image"] for i in range(4)]
    n_files = len(list(tmp_path.glob("*.pt")))
    assert n_files == 4 and len(calls) == 4
    again = cached_dataset(_items(), pipeline(8), cache_dir=tmp_path)  # a later run: read from disk
    assert all(torch.equal(a, again[i]["image"]) for i, a in enumerate(first)) and len(calls) == 4
    other = cached_dataset(_items(), pipeline(4), cache_dir=tmp_path)  # another image size: not the stale items
    assert other[0]["image"].shape == (1, 4, 4)
    assert len(list(tmp_path.glob("*.pt"))) == n_files + 1


def test_nested_compose_caches_its_deterministic_part(tmp_path):
    """The bundles' chain, Compose([load, views]) with a random view after a deterministic load: the load runs once
    per item (in memory and on disk), the random part at every access. MONAI alone caches nothing here (a nested
    Compose counts as random)."""
    for cache_dir in (None, tmp_path):
        CALLS.clear()
        chain = Compose([pipeline(8), Compose([RandFlipd("image", prob=0.5, spatial_axis=0)])])
        ds = cached_dataset(_items(), chain, cache_dir=cache_dir)
        for _ in range(3):
            assert all(ds[i]["image"].shape == (1, 8, 8) for i in range(4))
        assert len(CALLS) == 4, (cache_dir, len(CALLS))
    CALLS.clear()
    unflattened = CacheDataset(_items(), Compose([pipeline(8), Compose([RandFlipd("image", prob=0.5)])]))
    _ = [unflattened[i] for _ in range(2) for i in range(4)]
    assert len(CALLS) == 2 * 4  # MONAI's own behaviour: nothing cached, every access loads again
