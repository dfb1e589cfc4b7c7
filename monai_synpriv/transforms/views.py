"""Views for multi-branch self-supervised learning: independent per-branch augmentation and on-the-fly
synthesis of the privileged modality with a frozen translator."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import (
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    RandomizableTransform,
    RandRotated,
    RandScaleCropd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Resized,
    Transform,
)
from monai.utils import convert_to_tensor
from torch import nn

__all__ = ["RandInvertd", "SynthesizePrivilegedd", "multiview_transforms", "view_augmentations"]


class RandInvertd(RandomizableTransform, MapTransform):
    """With probability ``prob``, invert intensities inside ``[0, 1]`` images: ``x -> 1 - x`` on the foreground
    (voxels above ``threshold``), background kept. An optional augmentation for contrast-agnostic features."""

    def __init__(
        self, keys: KeysCollection, prob: float = 0.1, threshold: float = 0.0, allow_missing_keys: bool = False
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.threshold = threshold

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            x = convert_to_tensor(d[key], track_meta=True)
            d[key] = torch.where(x > self.threshold, 1.0 - x, x)
        return d


def view_augmentations(
    key: str,
    spatial_size: Sequence[int],
    crop_scale: tuple[float, float] = (0.5, 1.0),
    flip_prob: float = 0.5,
    rotate_range: float = 0.26,
    rotate_prob: float = 0.5,
    gamma: tuple[float, float] = (0.7, 1.5),
    contrast_prob: float = 0.8,
    intensity_prob: float = 0.5,
    invert_prob: float = 0.0,
) -> list[Transform]:
    """
    The augmentation chain of one branch, as MONAI dictionary transforms on ``key`` (build one chain per branch so
    that every branch draws its own random parameters): random-scale crop then resize to ``spatial_size`` (MONAI's
    random resized crop), flip, small rotation (radians, around every axis), gamma contrast, intensity scale and
    shift, and optional inversion (:class:`RandInvertd`).
    """
    dims = len(spatial_size)
    lo, hi = crop_scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}.")
    chain: list[Transform] = [
        RandScaleCropd(key, roi_scale=lo, max_roi_scale=hi, random_size=True),
        Resized(key, spatial_size=spatial_size, mode="bilinear" if dims == 2 else "trilinear", anti_aliasing=False),
        RandFlipd(key, prob=flip_prob, spatial_axis=0),
    ]
    if rotate_prob > 0:
        angles = (
            {"range_x": rotate_range} if dims == 2 else dict.fromkeys(("range_x", "range_y", "range_z"), rotate_range)
        )
        chain.append(RandRotated(key, prob=rotate_prob, padding_mode="zeros", **angles))
    chain += [
        RandAdjustContrastd(key, prob=contrast_prob, gamma=gamma),
        RandScaleIntensityd(key, factors=0.1, prob=intensity_prob),
        RandShiftIntensityd(key, offsets=0.05, prob=intensity_prob),
    ]
    if invert_prob > 0:
        chain.append(RandInvertd(key, prob=invert_prob))
    return chain


class SynthesizePrivilegedd(MapTransform):
    """
    Add the privileged modality to a sample by running a *frozen* translator on its primary image:
    ``data[output_key] = generator(data[key])``. Put it before the first random transform of a ``CacheDataset`` to
    synthesise every image once and keep it cached (the "generated once" mode), or in a plain ``Dataset`` to
    synthesise on the fly. The generator runs on ``device`` in eval mode without gradients; the output comes back to
    the input's device with the input's meta data.

    Args:
        keys: the primary image key (one).
        output_key: where to store the synthetic image.
        generator: the translator (e.g. ``CycleGANResNetGenerator`` loaded from the translator bundle).
        checkpoint: optional state-dict file to load into ``generator``.
        device: where to run it (default: the generator's device).
        divisor: inputs are zero-padded to a multiple of this (the ResNet generator needs 4) and cropped back.
    """

    def __init__(
        self,
        keys: KeysCollection,
        generator: nn.Module,
        output_key: str = "privileged",
        checkpoint: str | None = None,
        device: torch.device | str | None = None,
        divisor: int = 4,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"SynthesizePrivilegedd takes one primary key, got {self.keys}.")
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            generator.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        self.device = torch.device(device) if device is not None else next(generator.parameters()).device
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.output_key = output_key
        self.divisor = divisor

    @torch.no_grad()
    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        key = self.keys[0]
        x = convert_to_tensor(d[key], track_meta=True, dtype=torch.float32)
        plain = x.as_tensor() if hasattr(x, "as_tensor") else x
        spatial = plain.shape[1:]
        pads = [(-s) % self.divisor for s in spatial]
        padding = [p for pad in reversed(pads) for p in (0, pad)]
        inp = torch.nn.functional.pad(plain, padding)[None].to(self.device)
        out = self.generator(inp)[0].to(plain.device)
        out = out[(slice(None), *[slice(0, s) for s in spatial])]
        d[self.output_key] = x.clone().copy_(out) if out.shape == x.shape else out
        return d


def multiview_transforms(
    branch_keys: Sequence[str],
    spatial_size: Sequence[int],
    primary_key: str = "image",
    **augmentation,
) -> list[Transform]:
    """
    The view-making part of an SSL pipeline: every branch key missing from the data is a copy of ``primary_key``
    (e.g. ``["image", "image_2", "privileged"]``: ``image_2`` is a second view of the primary image), then each
    branch gets its own augmentation chain (:func:`view_augmentations`, keyword arguments passed on), so that the
    branches are augmented independently after pairing.
    """
    from monai.transforms import CopyItemsd

    keys = list(branch_keys)
    if primary_key not in keys:
        raise ValueError(f"branch_keys {keys} must include the primary key {primary_key!r}.")
    copies = [k for k in keys if k != primary_key and k.startswith(f"{primary_key}_")]
    chain: list[Transform] = [CopyItemsd(primary_key, times=len(copies), names=copies)] if copies else []
    for k in keys:
        chain += view_augmentations(k, spatial_size, **augmentation)
    return chain
