"""SSIM averaged over the foreground only: the whole-frame mean counts every background window, where a black
synthetic image matches a black real one perfectly and inflates the score."""

from __future__ import annotations

import torch
from monai.metrics import SSIMMetric
from monai.metrics.regression import compute_ssim_and_cs

__all__ = ["ForegroundSSIMMetric"]


class ForegroundSSIMMetric(SSIMMetric):
    """
    MONAI's :class:`~monai.metrics.SSIMMetric`, with the SSIM map averaged over the windows whose centre lies in the
    reference image's foreground (``y > threshold``, any channel) instead of over the whole frame. Same arguments and
    the same Gaussian window as ``SSIMMetric``; a drop-in ``metric_fn`` of MONAI's ``IgniteMetricHandler``. An image
    without foreground gives NaN, which MONAI's reduction skips.

    Example::

        metric = ForegroundSSIMMetric(spatial_dims=2, data_range=1.0)
        metric(y_pred=synthetic, y=real)   # (B, 1) per image
        metric.aggregate()                 # mean over the images with foreground

    Args:
        spatial_dims: 2 or 3.
        threshold: reference intensities above it are foreground (0 for skull-stripped MRI in [0, 1]).
        kwargs: :class:`~monai.metrics.SSIMMetric`'s ``data_range``, ``kernel_type``, ``win_size``, ``kernel_sigma``,
            ``k1``, ``k2``, ``reduction``, ``get_not_nans``.
    """

    def __init__(self, spatial_dims: int, threshold: float = 0.0, **kwargs) -> None:
        super().__init__(spatial_dims=spatial_dims, **kwargs)
        self.threshold = float(threshold)

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y_pred.ndim != self.spatial_dims + 2 or y_pred.shape != y.shape:
            raise ValueError(
                f"ForegroundSSIMMetric: y_pred {list(y_pred.shape)} and y {list(y.shape)} must both be "
                f"(B, C, *spatial) with {self.spatial_dims} spatial dimensions."
            )
        ssim_map, _ = compute_ssim_and_cs(
            y_pred=y_pred,
            y=y,
            spatial_dims=self.spatial_dims,
            data_range=self.data_range,
            kernel_type=self.kernel_type,
            kernel_size=self.kernel_size,
            kernel_sigma=self.kernel_sigma,
            k1=self.k1,
            k2=self.k2,
        )
        # the map is "valid"-convolved: window i is centred on voxel i + (k - 1) // 2 of the input
        mask = (y > self.threshold).any(dim=1, keepdim=True)
        for axis, k in enumerate(self.kernel_size):
            mask = mask.narrow(axis + 2, (k - 1) // 2, ssim_map.shape[axis + 2])
        mask = mask.expand_as(ssim_map).float()
        total = (ssim_map * mask).flatten(1).sum(dim=1, keepdim=True)
        count = mask.flatten(1).sum(dim=1, keepdim=True)
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
