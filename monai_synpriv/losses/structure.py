"""A modality-independent structure-preservation loss: MIND descriptors (Heinrich et al. 2012), 2D and 3D."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["mind_descriptor", "MINDStructureLoss"]

_AVG_POOL = {2: F.avg_pool2d, 3: F.avg_pool3d}


def _shift(x: torch.Tensor, axis: int, offset: int) -> torch.Tensor:
    """``x`` moved by ``offset`` voxels along spatial ``axis`` (0-based), edges replicated."""
    spatial = x.ndim - 2
    pad = [0] * (2 * spatial)
    # F.pad lists the last dimension first
    pos = 2 * (spatial - 1 - axis)
    pad[pos if offset > 0 else pos + 1] = abs(offset)
    padded = F.pad(x, pad, mode="replicate")
    dim = axis + 2
    start = 0 if offset > 0 else abs(offset)
    return padded.narrow(dim, start, x.shape[dim])


def mind_descriptor(image: torch.Tensor, radius: int = 1, dilation: int = 2, eps: float = 1e-6) -> torch.Tensor:
    """
    MIND with the 2 * spatial_dims neighbourhood (left/right along every axis, ``dilation`` voxels away)::

        D(x, r) = box_{2 radius + 1}( (I(x) - I(x + r))^2 )
        V(x)    = mean_r D(x, r)
        MIND(x, r) = exp(-D(x, r) / V(x)) / max_r exp(-D(x, r) / V(x))

    Args:
        image: (B, C, *spatial), 2D or 3D; channels are averaged first.

    Returns:
        descriptors of shape (B, 2 * spatial_dims, *spatial), in (0, 1].
    """
    spatial = image.ndim - 2
    if spatial not in _AVG_POOL:
        raise ValueError(f"mind_descriptor needs a (B, C, H, W) or (B, C, D, H, W) image, got shape {list(image.shape)}.")
    if radius < 0 or dilation < 1:
        raise ValueError(f"radius must be >= 0 and dilation >= 1, got {radius} and {dilation}.")
    x = image.float().mean(dim=1, keepdim=True)
    k = 2 * radius + 1
    dists = []
    for axis in range(spatial):
        for sign in (1, -1):
            sq = (x - _shift(x, axis, sign * dilation)) ** 2
            if radius:
                sq = _AVG_POOL[spatial](F.pad(sq, [radius] * (2 * spatial), mode="replicate"), k, stride=1)
            dists.append(sq)
    d = torch.cat(dists, dim=1)
    v = d.mean(dim=1, keepdim=True).clamp_min(eps)
    # v floored at a fraction of its mean over the image, so that flat regions do not amplify noise
    v = torch.maximum(v, 1e-3 * v.flatten(1).mean(dim=1).view(-1, *([1] * (v.ndim - 1))))
    mind = torch.exp(-d / v)
    return mind / mind.amax(dim=1, keepdim=True).clamp_min(eps)


class MINDStructureLoss(nn.Module):
    """
    ``mean |MIND(source) - MIND(translated)|``: penalises a translation that moves or invents edges, whatever the
    contrast change (MIND compares each voxel with its neighbours only, so it is modality-independent). Used as the
    optional structure term of :class:`~monai_synpriv.losses.CycleGANGeneratorLoss` and
    :class:`~monai_synpriv.losses.CUTGeneratorLoss`.

    Args:
        radius: half-size of the box over which squared differences are summed (1: 3x3 or 3x3x3).
        dilation: distance of the neighbours.
    """

    def __init__(self, radius: int = 1, dilation: int = 2) -> None:
        super().__init__()
        if radius < 0 or dilation < 1:
            raise ValueError(f"radius must be >= 0 and dilation >= 1, got {radius} and {dilation}.")
        self.radius, self.dilation = int(radius), int(dilation)

    def forward(self, source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
        if source.shape[0] != translated.shape[0] or source.shape[2:] != translated.shape[2:]:
            raise ValueError(
                f"source {list(source.shape)} and translated {list(translated.shape)} must share batch and spatial sizes."
            )
        return F.l1_loss(
            mind_descriptor(translated, self.radius, self.dilation), mind_descriptor(source, self.radius, self.dilation)
        )
