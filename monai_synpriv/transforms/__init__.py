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
from .text import TokenizeTextd
from .text_embedding import EmbedTextd, TextConditioner
from .views import RandInvertd, SynthesizePrivilegedd, multiview_transforms, view_augmentations

__all__ = [
    "AsGrayscale",
    "AsGrayscaled",
    "EmbedTextd",
    "ForegroundPercentileNormalize",
    "ForegroundPercentileNormalized",
    "IntensityMatch",
    "IntensityMatchd",
    "RandInvertd",
    "SaveToPathd",
    "SynthesizePrivilegedd",
    "TextConditioner",
    "TokenizeTextd",
    "multiview_transforms",
    "view_augmentations",
    "write_image",
]
