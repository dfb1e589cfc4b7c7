"""Array transforms and their dictionary wrappers (``...d``)."""

from .intensity import ForegroundPercentileNormalize, ForegroundPercentileNormalized

__all__ = ["ForegroundPercentileNormalize", "ForegroundPercentileNormalized"]
