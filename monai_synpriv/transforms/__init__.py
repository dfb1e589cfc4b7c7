"""Array transforms and their dictionary wrappers (``...d``)."""

from .checks import (
    ON_BAD_INPUT,
    CheckImageContent,
    CheckImageContentd,
    ImageContentError,
    filter_bad_images,
    image_content_problem,
)
from .intensity import (
    AsGrayscale,
    AsGrayscaled,
    ForegroundPercentileNormalize,
    ForegroundPercentileNormalized,
    IntensityMatch,
    IntensityMatchd,
)
from .io import SaveToPathd, write_image
from .pairs import MatchPairGrid, MatchPairGridd, PairGridError, pair_grid_problem
from .text import TokenizeTextd
from .text_embedding import EmbedTextd, TextConditioner
from .views import RandInvertd, SynthesizePrivilegedd, multiview_transforms, view_augmentations

__all__ = [
    "AsGrayscale",
    "AsGrayscaled",
    "CheckImageContent",
    "CheckImageContentd",
    "EmbedTextd",
    "ForegroundPercentileNormalize",
    "ForegroundPercentileNormalized",
    "ImageContentError",
    "IntensityMatch",
    "IntensityMatchd",
    "MatchPairGrid",
    "MatchPairGridd",
    "ON_BAD_INPUT",
    "PairGridError",
    "RandInvertd",
    "SaveToPathd",
    "SynthesizePrivilegedd",
    "TextConditioner",
    "TokenizeTextd",
    "filter_bad_images",
    "image_content_problem",
    "multiview_transforms",
    "pair_grid_problem",
    "view_augmentations",
    "write_image",
]
