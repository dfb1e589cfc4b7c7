"""Intensity transforms: percentile normalisation over the foreground."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor

__all__ = [
    "AsGrayscale",
    "AsGrayscaled",
    "ForegroundPercentileNormalize",
    "ForegroundPercentileNormalized",
    "IntensityMatch",
    "IntensityMatchd",
]


class ForegroundPercentileNormalize(Transform):
    """
    Map the ``lower``..``upper`` percentiles of the *foreground* intensities (voxels above ``threshold``) to
    ``b_min``..``b_max``, optionally clipping. Background stays at ``b_min`` when it sits at or below the threshold.

    Unlike ``monai.transforms.ScaleIntensityRangePercentiles``, the percentiles ignore background: in a
    skull-stripped brain MRI most voxels are zero, and percentiles over the whole volume would depend on the field
    of view rather than on the tissue. Apply it to a whole volume (per-volume normalisation) before slicing.

    Args:
        lower: lower percentile of the foreground (0-100).
        upper: upper percentile of the foreground (0-100).
        b_min: output value of the lower percentile.
        b_max: output value of the upper percentile.
        clip: clip the output to [b_min, b_max].
        threshold: voxels strictly above it are foreground.
        channel_wise: compute percentiles per channel.

    Raises:
        ValueError: when the image is constant, has no foreground, or contains NaN/Inf (an error instead of a silent
            division by zero later on).
    """

    def __init__(
        self,
        lower: float = 0.5,
        upper: float = 99.5,
        b_min: float = 0.0,
        b_max: float = 1.0,
        clip: bool = True,
        threshold: float = 0.0,
        channel_wise: bool = False,
    ) -> None:
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        self.lower, self.upper = lower, upper
        self.b_min, self.b_max = b_min, b_max
        self.clip = clip
        self.threshold = threshold
        self.channel_wise = channel_wise

    def _normalize(self, img: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(img).all():
            raise ValueError("image contains NaN or Inf values.")
        fg = img[img > self.threshold]
        if fg.numel() == 0:
            raise ValueError(f"image has no foreground above threshold={self.threshold}.")
        lo, hi = (float(v) for v in np.percentile(fg.detach().float().cpu().numpy(), [self.lower, self.upper]))
        if hi <= lo:
            raise ValueError(f"image foreground is constant ({lo}): cannot normalise.")
        out = (img - lo) / (hi - lo) * (self.b_max - self.b_min) + self.b_min
        out = torch.where(img > self.threshold, out, torch.full_like(out, self.b_min))
        if self.clip:
            out = out.clamp(self.b_min, self.b_max)
        return out

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        img_t = convert_to_tensor(img, track_meta=True, dtype=torch.float32)
        if self.channel_wise:
            return torch.stack([self._normalize(c) for c in img_t])
        return self._normalize(img_t)


class ForegroundPercentileNormalized(MapTransform):
    """Dictionary wrapper of :class:`ForegroundPercentileNormalize`; errors name the key and the file."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = ForegroundPercentileNormalize(**kwargs)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                d[key] = self.normalizer(d[key])
            except ValueError as e:
                source = getattr(d[key], "meta", {}).get("filename_or_obj", "<in-memory image>")
                raise ValueError(f"ForegroundPercentileNormalized: key {key!r}, file {source}: {e}") from e
        return d


class IntensityMatch(Transform):
    """
    Match an image's intensities to a reference image over the foreground (voxels above ``threshold`` in each):
    ``"linear"`` matches mean and standard deviation, ``"histogram"`` maps quantiles onto quantiles. Background
    stays at the reference's background value. Used as the trivial translation baseline ("the input itself,
    intensity-matched to the target").
    """

    def __init__(self, method: str = "histogram", threshold: float = 0.0, n_quantiles: int = 256) -> None:
        if method not in ("linear", "histogram"):
            raise ValueError(f"method must be 'linear' or 'histogram', got {method!r}.")
        self.method = method
        self.threshold = threshold
        self.n_quantiles = n_quantiles

    def __call__(self, img: NdarrayOrTensor, reference: NdarrayOrTensor) -> torch.Tensor:
        x = convert_to_tensor(img, track_meta=True, dtype=torch.float32)
        ref = convert_to_tensor(reference, track_meta=False, dtype=torch.float32)
        fx, fr = x > self.threshold, ref > self.threshold
        out = torch.zeros_like(x)
        if not fx.any() or not fr.any():
            return out
        src, tgt = x[fx], ref[fr]
        if self.method == "linear":
            std = src.std() if src.numel() > 1 else src.new_tensor(0.0)
            scale = tgt.std() / std if std > 0 else src.new_tensor(0.0)
            mapped = (src - src.mean()) * scale + tgt.mean()
        else:  # quantile mapping on the host (runs once per image in evaluation, never in training)
            s_np, t_np = src.detach().cpu().numpy(), tgt.detach().cpu().numpy()
            q = np.linspace(0, 100, self.n_quantiles)
            mapped = torch.from_numpy(np.interp(s_np, np.percentile(s_np, q), np.percentile(t_np, q))).float()
        out[fx] = mapped.to(device=out.device, dtype=out.dtype)
        return out


class IntensityMatchd(MapTransform):
    """Dictionary wrapper of :class:`IntensityMatch`: ``data[output_key] = match(data[key], data[reference_key])``."""

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str,
        output_key: str = "baseline",
        method: str = "histogram",
        threshold: float = 0.0,
    ) -> None:
        super().__init__(keys)
        self.reference_key = reference_key
        self.output_key = output_key
        self.matcher = IntensityMatch(method, threshold)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.matcher(d[key], d[self.reference_key])
        return d


class AsGrayscale(Transform):
    """Reduce a channel-first RGB(A) picture to one channel (ITU-R BT.601 luma); single-channel input is returned
    unchanged. For collections that mix greyscale and RGB files of the same modality (e.g. exported JPEGs)."""

    weights = (0.299, 0.587, 0.114)

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        x = convert_to_tensor(img, track_meta=True, dtype=torch.float32)
        if x.shape[0] == 1:
            return x
        if x.shape[0] not in (3, 4):
            raise ValueError(f"AsGrayscale expects 1, 3 or 4 channels, got shape {tuple(x.shape)}.")
        w = torch.tensor(self.weights, dtype=x.dtype).view(3, *([1] * (x.ndim - 1)))
        return (x[:3] * w).sum(dim=0, keepdim=True)


class AsGrayscaled(MapTransform):
    """Dictionary wrapper of :class:`AsGrayscale`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = AsGrayscale()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
