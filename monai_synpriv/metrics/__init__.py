"""Metrics that MONAI does not have, on MONAI's metric classes."""

from .foreground_ssim import ForegroundSSIMMetric

__all__ = ["ForegroundSSIMMetric"]
