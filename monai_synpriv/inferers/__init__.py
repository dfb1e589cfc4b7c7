"""Inferers: MONAI inferers at one precision setting on CPU or CUDA."""

from .autocast_inferer import AutocastInferer

__all__ = ["AutocastInferer"]
