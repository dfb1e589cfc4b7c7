"""The patch-sampling projection head of contrastive unpaired translation (CUT, Park et al. 2020), 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PatchSampleMLP"]


class PatchSampleMLP(nn.Module):
    """
    Samples the same spatial locations from each of several feature maps and projects every sampled feature vector
    through a two-layer MLP of its own (one per feature map), then L2-normalises it: the ``H`` of CUT's PatchNCE loss.

    Locations are drawn without replacement over all spatial positions (pixels in 2D, voxels in 3D), the same for
    every image of the batch; pass the returned ``patch_ids`` back to sample the same locations from a second set of
    feature maps (the translated image's, for the positives of PatchNCE).

    Example::

        g = CycleGANResNetGenerator(2, 1, 1, channels=32, num_res_blocks=6)
        layers = g.default_nce_layers()
        head = PatchSampleMLP(g.feature_channels(layers))
        k, ids = head(g.encode(real_a, layers), num_patches=256)
        q, _ = head(g.encode(fake_b, layers), patch_ids=ids)  # q[i], k[i]: (B * 256, 256)

    Args:
        in_channels: channel count of each feature map, in the order they will be given.
        hidden_channels: width of both MLP layers (reference 256).
        use_mlp: False skips the MLP (features are only sampled and normalised).
    """

    def __init__(self, in_channels: Sequence[int], hidden_channels: int = 256, use_mlp: bool = True) -> None:
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        if not in_channels or min(in_channels) < 1:
            raise ValueError(f"in_channels must be a non-empty list of positive channel counts, got {in_channels}.")
        if hidden_channels < 1:
            raise ValueError(f"hidden_channels must be positive, got {hidden_channels}.")
        self.in_channels = in_channels
        self.use_mlp = use_mlp
        self.mlps = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(c, hidden_channels), nn.ReLU(inplace=True), nn.Linear(hidden_channels, hidden_channels))
                if use_mlp
                else nn.Identity()
                for c in in_channels
            ]
        )

    def forward(
        self,
        features: Sequence[torch.Tensor],
        num_patches: int = 256,
        patch_ids: Sequence[torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            features: feature maps of shape (B, C_i, *spatial_i), one per ``in_channels`` entry.
            num_patches: locations drawn per map (all of them if the map has fewer; ignored with ``patch_ids``).
            patch_ids: the flat location indices to take from each map (as returned by an earlier call).

        Returns:
            ``(samples, patch_ids)``: ``samples[i]`` of shape (B * P_i, hidden_channels) (``C_i`` without the MLP),
            unit L2 norm, batch-major (the P_i locations of the first image first); ``patch_ids[i]`` of shape (P_i,).
        """
        if len(features) != len(self.mlps):
            raise ValueError(f"PatchSampleMLP was built for {len(self.mlps)} feature maps, got {len(features)}.")
        if patch_ids is not None and len(patch_ids) != len(features):
            raise ValueError(f"patch_ids holds {len(patch_ids)} index sets for {len(features)} feature maps.")
        if patch_ids is None and num_patches < 1:
            raise ValueError(f"num_patches must be positive, got {num_patches}.")
        samples, ids_out = [], []
        for i, (feat, mlp) in enumerate(zip(features, self.mlps)):
            if feat.shape[1] != self.in_channels[i]:
                raise ValueError(f"feature map {i} has {feat.shape[1]} channels, expected {self.in_channels[i]}.")
            flat = feat.flatten(2).transpose(1, 2)  # (B, N, C)
            if patch_ids is None:
                ids = torch.randperm(flat.shape[1], device=feat.device)[: min(num_patches, flat.shape[1])]
            else:
                ids = patch_ids[i].to(feat.device)
            x = mlp(flat[:, ids, :].flatten(0, 1))
            samples.append(F.normalize(x.float(), dim=1, eps=1e-7))
            ids_out.append(ids)
        return samples, ids_out
