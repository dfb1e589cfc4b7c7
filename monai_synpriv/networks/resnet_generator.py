"""The CycleGAN ResNet generator (Johnson et al. 2016, as used by Zhu et al. 2017), for 2D and 3D."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from torch import nn

__all__ = ["CycleGANResNetGenerator", "reflection_pad", "output_activation"]

_REFLECTION_PAD = {1: nn.ReflectionPad1d, 2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}


def reflection_pad(spatial_dims: int, padding: int) -> nn.Module:
    """Reflection padding for ``spatial_dims`` (1, 2 or 3) dimensions."""
    if spatial_dims not in _REFLECTION_PAD:
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
    return _REFLECTION_PAD[spatial_dims](padding)


def output_activation(name: str | None) -> nn.Module:
    """The generator's last activation: ``"sigmoid"`` for images in [0, 1], ``"tanh"`` for [-1, 1], or None."""
    if name is None or str(name).lower() in ("none", "identity", ""):
        return nn.Identity()
    name = str(name).lower()
    if name not in ("sigmoid", "tanh"):
        raise ValueError(f"output_act must be 'sigmoid', 'tanh' or None, got {name!r}.")
    return get_act_layer(name)


class _ResidualBlock(nn.Module):
    """pad -> conv3 -> norm -> ReLU [-> dropout] -> pad -> conv3 -> norm, plus the identity."""

    def __init__(self, spatial_dims: int, channels: int, norm: str | tuple, bias: bool, dropout: float) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        layers: list[nn.Module] = [
            reflection_pad(spatial_dims, 1),
            conv(channels, channels, kernel_size=3, bias=bias),
            get_norm_layer(norm, spatial_dims, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            reflection_pad(spatial_dims, 1),
            conv(channels, channels, kernel_size=3, bias=bias),
            get_norm_layer(norm, spatial_dims, channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class CycleGANResNetGenerator(nn.Module):
    """
    ResNet generator of CycleGAN: a 7-wide stem, ``num_downsamplings`` strided convolutions, ``num_res_blocks``
    residual blocks, as many up-samplings (transposed convolutions, or resize + convolution with
    ``upsample="resize"``), and a 7-wide head. Reflection padding everywhere, instance
    normalisation by default (so a batch can mix samples without changing any one result).

    Reference defaults (Zhu et al. 2017): ``channels=64``, ``num_res_blocks=9`` at 256 px, 6 at 128 px and below.

    Example::

        # 2D, single-channel MRI slices in [0, 1]
        net = CycleGANResNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, num_res_blocks=6)
        # 3D patches
        net3d = CycleGANResNetGenerator(spatial_dims=3, in_channels=1, out_channels=1, channels=16)

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: channels of the source-domain image.
        out_channels: channels of the target-domain image.
        channels: width of the first layer (``ngf``); doubled at each down-sampling.
        num_res_blocks: residual blocks at the bottleneck.
        num_downsamplings: strided convolutions (each halves every spatial size). Input sizes must be divisible
            by ``2 ** num_downsamplings``.
        norm: normalisation, any MONAI norm name or ``(name, args)``; default instance norm without affine.
        dropout: dropout inside residual blocks (the reference uses 0 for CycleGAN).
        output_act: ``"sigmoid"`` (images in [0, 1], default), ``"tanh"`` (images in [-1, 1]) or None.
        upsample: ``"transpose"`` (the reference: stride-2 transposed convolutions, which leave a checkerboard
            pattern where their kernels overlap unevenly) or ``"resize"`` (nearest-neighbour x2, then a
            reflection-padded 3-wide convolution: no uneven overlap, Odena et al. 2016). Same parameter count; the
            state-dict keys of the two differ.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        num_res_blocks: int = 9,
        num_downsamplings: int = 2,
        norm: str | tuple = ("instance", {"affine": False}),
        dropout: float = 0.0,
        output_act: str | None = "sigmoid",
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if upsample not in ("transpose", "resize"):
            raise ValueError(f"upsample must be 'transpose' or 'resize', got {upsample!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("channels", channels)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}.")
        if num_res_blocks < 0 or num_downsamplings < 0:
            raise ValueError(
                f"num_res_blocks and num_downsamplings must be >= 0, got {num_res_blocks} and {num_downsamplings}."
            )
        self.spatial_dims = spatial_dims
        self.divisor = 2**num_downsamplings
        # instance norm without affine has no shift: convolutions keep their bias (as in the reference)
        norm_name = norm[0] if isinstance(norm, (tuple, list)) else norm
        bias = str(norm_name).lower() == "instance"
        conv = Conv[Conv.CONV, spatial_dims]
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]

        layers: list[nn.Module] = [
            reflection_pad(spatial_dims, 3),
            conv(in_channels, channels, kernel_size=7, bias=bias),
            get_norm_layer(norm, spatial_dims, channels),
            nn.ReLU(inplace=True),
        ]
        ch = channels
        for _ in range(num_downsamplings):
            layers += [
                conv(ch, ch * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                get_norm_layer(norm, spatial_dims, ch * 2),
                nn.ReLU(inplace=True),
            ]
            ch *= 2
        layers += [_ResidualBlock(spatial_dims, ch, norm, bias, dropout) for _ in range(num_res_blocks)]
        for _ in range(num_downsamplings):
            if upsample == "transpose":
                up: list[nn.Module] = [
                    conv_t(ch, ch // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias)
                ]
            else:
                up = [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    reflection_pad(spatial_dims, 1),
                    conv(ch, ch // 2, kernel_size=3, bias=bias),
                ]
            layers += [
                *up,
                get_norm_layer(norm, spatial_dims, ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [
            reflection_pad(spatial_dims, 3),
            conv(ch, out_channels, kernel_size=7),
            output_activation(output_act),
        ]
        self.model = nn.Sequential(*layers)
        self.num_downsamplings = num_downsamplings
        self.num_res_blocks = num_res_blocks

    def default_nce_layers(self) -> list[int]:
        """Indices into ``self.model`` whose outputs CUT's PatchNCE loss reads by default: the padded input, the first
        down-sampling convolution, the second down-sampling's normalisation and two residual blocks, the points of
        the reference's ``nce_layers = 0,4,8,12,16`` for the 9-block generator (the residual points are clipped to
        the blocks this generator has)."""
        first_res = 4 + 3 * self.num_downsamplings
        last_res = first_res + self.num_res_blocks - 1
        layers = [0]
        for down in range(min(self.num_downsamplings, 2)):
            layers.append(4 + 4 * down)
        if self.num_res_blocks:
            layers += sorted({min(first_res + 2, last_res), min(first_res + 6, last_res)})
        return layers

    @torch.jit.unused
    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """The outputs of ``self.model[i]`` for every ``i`` in ``layers`` (ascending, unique), running only as far as
        the deepest one: the encoder features of CUT's PatchNCE loss."""
        self._check_size(x)
        if not layers or sorted(set(layers)) != list(layers) or layers[0] < 0 or layers[-1] >= len(self.model):
            raise ValueError(
                f"layers must be unique ascending indices in [0, {len(self.model) - 1}], got {list(layers)}."
            )
        feats, wanted = [], set(layers)
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in wanted:
                feats.append(x)
            if i == layers[-1]:
                break
        return feats

    @torch.jit.unused
    def feature_channels(self, layers: list[int]) -> list[int]:
        """Channel count of each feature map :meth:`encode` returns for ``layers`` (read from a tiny forward pass)."""
        param = next(self.parameters())
        size = max(self.divisor * 2, 8)
        x = torch.zeros(1, self.model[1].in_channels, *([size] * self.spatial_dims), device=param.device)
        with torch.no_grad():
            return [int(f.shape[1]) for f in self.encode(x, layers)]

    def _check_size(self, x: torch.Tensor) -> None:
        for size in x.shape[2:]:
            if size % self.divisor != 0:
                raise ValueError(
                    f"CycleGANResNetGenerator: spatial size {list(x.shape[2:])} must be divisible by "
                    f"{self.divisor} (2 ** num_downsamplings); pad or resize the input (e.g. DivisiblePadd)."
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` of shape (B, in_channels, *spatial); every spatial size divisible by ``self.divisor``."""
        self._check_size(x)
        return self.model(x)
