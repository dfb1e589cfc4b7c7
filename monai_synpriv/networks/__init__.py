"""Networks (``nn.Module`` s only, no training logic)."""

from .resnet_generator import CycleGANResNetGenerator
from .unet_generator import Pix2PixUNetGenerator

__all__ = ["CycleGANResNetGenerator", "Pix2PixUNetGenerator"]
