"""Array transforms and their dictionary wrappers (``...d``)."""

from .intensity import (
    AsGrayscale,
    AsGrayscaled,
    ForegroundPercentileNormalize,
    ForegroundPercentileNormalized,
    IntensityMatch,
    IntensityMatchd,
)
from .io import SaveToPathd, write_image

__all__ = [
    "AsGrayscale",
    "AsGrayscaled",
    "ForegroundPercentileNormalize",
    "ForegroundPercentileNormalized",
    "IntensityMatch",
    "IntensityMatchd",
    "SaveToPathd",
    "write_image",
]
