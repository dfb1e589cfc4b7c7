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
from .views import RandInvertd, SynthesizePrivilegedd, multiview_transforms, view_augmentations

__all__ = [
    "AsGrayscale",
    "AsGrayscaled",
    "ForegroundPercentileNormalize",
    "ForegroundPercentileNormalized",
    "IntensityMatch",
    "IntensityMatchd",
    "RandInvertd",
    "SaveToPathd",
    "SynthesizePrivilegedd",
    "multiview_transforms",
    "view_augmentations",
    "write_image",
]
