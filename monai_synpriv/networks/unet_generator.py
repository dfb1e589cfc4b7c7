"""The pix2pix U-Net generator (Isola et al. 2017), for 2D and 3D."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_norm_layer
from torch import nn

from .resnet_generator import output_activation

__all__ = ["Pix2PixUNetGenerator"]


class Pix2PixUNetGenerator(nn.Module):
    """
    The pix2pix U-Net: ``num_downs`` 4-wide stride-2 convolutions down to a 1-voxel bottleneck at the reference
    size (256 px with ``num_downs=8``), mirrored by transposed convolutions, with skip connections between
    each pair. LeakyReLU(0.2) on the way down, ReLU on the way up, dropout in the up-blocks of the
    ``num_downs - 5`` extra ``8 * channels`` levels around the innermost one (3 at the reference ``num_downs=8``,
    none below 6).

    Widths follow the reference: ``channels * (1, 2, 4, 8, 8, ...)``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the source image.
        out_channels: channels of the target image.
        channels: width of the outermost layer (``ngf``).
        num_downs: number of down-samplings; spatial sizes must be divisible by ``2 ** num_downs``.
        norm: normalisation for inner layers (default batch norm, as in pix2pix; instance norm also works).
        dropout: dropout of those up-blocks (reference 0.5).
        output_act: ``"sigmoid"`` (default, images in [0, 1]), ``"tanh"`` or None.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        num_downs: int = 8,
        norm: str | tuple = "batch",
        dropout: float = 0.5,
        output_act: str | None = "sigmoid",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_downs < 1:
            raise ValueError(f"num_downs must be >= 1, got {num_downs}.")
        self.divisor = 2**num_downs
        conv = Conv[Conv.CONV, spatial_dims]
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]
        norm_name = norm[0] if isinstance(norm, (tuple, list)) else norm
        bias = str(norm_name).lower() == "instance"
        widths = [channels * min(2**i, 8) for i in range(num_downs)]

        down: list[nn.Module] = []
        for i in range(num_downs):
            c_in = in_channels if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers.append(conv(c_in, widths[i], kernel_size=4, stride=2, padding=1, bias=bias))
            if 0 < i < num_downs - 1:  # neither outermost nor innermost
                layers.append(get_norm_layer(norm, spatial_dims, widths[i]))
            down.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(down)

        up: list[nn.Module] = []
        for i in reversed(range(num_downs)):
            c_in = widths[i] if i == num_downs - 1 else widths[i] * 2  # innermost has no skip to concatenate
            layers = [nn.ReLU(inplace=False)]
            if i == 0:
                layers += [
                    conv_t(c_in, out_channels, kernel_size=4, stride=2, padding=1),
                    output_activation(output_act),
                ]
            else:
                layers += [
                    conv_t(c_in, widths[i - 1], kernel_size=4, stride=2, padding=1, bias=bias),
                    get_norm_layer(norm, spatial_dims, widths[i - 1]),
                ]
                if dropout > 0 and 4 <= i <= num_downs - 2:  # the reference's extra ngf*8 blocks (not innermost)
                    layers.append(nn.Dropout(dropout))
            up.append(nn.Sequential(*layers))
        self.up = nn.ModuleList(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (B, in_channels, *spatial); every spatial size divisible by ``self.divisor``."""
        for size in x.shape[2:]:
            if size % self.divisor != 0:
                raise ValueError(
                    f"Pix2PixUNetGenerator: spatial size {list(x.shape[2:])} must be divisible by {self.divisor} "
                    "(2 ** num_downs); pad or resize the input, or lower num_downs."
                )
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        n = len(skips)
        for i, block in enumerate(self.up):
            if i > 0:
                x = torch.cat([x, skips[n - 1 - i]], dim=1)
            x = block(x)
        return x
