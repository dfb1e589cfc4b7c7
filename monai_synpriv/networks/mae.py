"""Masked-autoencoder pieces around MONAI's ``MaskedAutoEncoderViT``: patch targets and an embedding head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import MaskedAutoEncoderViT
from monai.utils import ensure_tuple_rep

__all__ = ["MAE_POOLING", "MAEEmbedder", "MixedPrecisionMaskedAutoEncoderViT", "patchify", "unpatchify"]

MAE_POOLING = ("mean", "cls", "mean_cls")


def patchify(images: torch.Tensor, patch_size: Sequence[int] | int) -> torch.Tensor:
    """Cut channel-first images into the patch vectors ``MaskedAutoEncoderViT`` predicts.

    Tokens follow the order of MONAI's ``PatchEmbeddingBlock`` (row-major over the patch grid); each vector holds
    the patch's voxels (row-major) with the channel last, ``prod(patch_size) * C`` values.

    Args:
        images: ``(B, C, *spatial)`` with 2 or 3 spatial dimensions.
        patch_size: one size for every axis, or one per spatial axis.

    Returns:
        ``(B, n_patches, prod(patch_size) * C)``.

    Raises:
        ValueError: if a spatial size is not divisible by the patch size.
    """
    spatial_dims = images.ndim - 2
    if spatial_dims not in (2, 3):
        raise ValueError(f"images must be (B, C, H, W) or (B, C, H, W, D), got shape {tuple(images.shape)}.")
    patch = ensure_tuple_rep(patch_size, spatial_dims)
    b, c, *spatial = images.shape
    for size, p in zip(spatial, patch):
        if size % p:
            raise ValueError(f"image size {tuple(spatial)} is not divisible by patch_size {patch}.")
    grid = [s // p for s, p in zip(spatial, patch)]
    shape = [b, c]
    for g, p in zip(grid, patch):
        shape += [g, p]
    x = images.reshape(shape)
    # (B, C, g1, p1, g2, p2[, g3, p3]) -> (B, g1, g2[, g3], p1, p2[, p3], C)
    grid_axes = [2 + 2 * i for i in range(spatial_dims)]
    patch_axes = [3 + 2 * i for i in range(spatial_dims)]
    x = x.permute(0, *grid_axes, *patch_axes, 1)
    n_patches = 1
    for g in grid:
        n_patches *= g
    return x.reshape(b, n_patches, -1)


def unpatchify(patches: torch.Tensor, patch_size: Sequence[int] | int, spatial_size: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, n_patches, prod(patch_size) * C)`` back to ``(B, C, *spatial_size)``."""
    spatial_dims = len(spatial_size)
    patch = ensure_tuple_rep(patch_size, spatial_dims)
    grid = [s // p for s, p in zip(spatial_size, patch)]
    b, n, length = patches.shape
    n_expected = 1
    for g in grid:
        n_expected *= g
    volume = 1
    for p in patch:
        volume *= p
    if n != n_expected or length % volume:
        raise ValueError(f"{n} patches of {length} values do not tile {tuple(spatial_size)} with patch_size {patch}.")
    c = length // volume
    x = patches.reshape(b, *grid, *patch, c)
    # (B, g1, g2[, g3], p1, p2[, p3], C) -> (B, C, g1, p1, g2, p2[, g3, p3])
    order = [0, 1 + 2 * spatial_dims]
    for i in range(spatial_dims):
        order += [1 + i, 1 + spatial_dims + i]
    return x.permute(*order).reshape(b, c, *spatial_size)


class MixedPrecisionMaskedAutoEncoderViT(MaskedAutoEncoderViT):
    """MONAI's ``MaskedAutoEncoderViT`` (same arguments, same state dict) that also runs under ``torch.autocast``.

    MONAI 1.6.1's forward writes the decoder embedding of the visible tokens into a copy of the fp32 mask token with
    an index assignment, which fails under autocast ("Index put requires the source and destination dtypes match",
    bf16 on CPU as fp16 on CUDA). Here the visible tokens are cast to the mask token's dtype first; everything else
    is MONAI's forward.
    """

    def forward(self, x: torch.Tensor, masking_ratio: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patch_embedding(x)
        x, selected_indices, mask = self._masking(x, masking_ratio=masking_ratio)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.decoder_embed(self.blocks(x))
        tokens = self.mask_tokens.repeat(x.shape[0], mask.shape[1], 1)
        tokens[torch.arange(x.shape[0]).unsqueeze(-1), selected_indices] = x[:, 1:, :].to(tokens.dtype)
        x = torch.cat([x[:, :1, :].to(tokens.dtype), tokens + self.decoder_pos_embedding], dim=1)
        x = self.decoder_pred(self.decoder_blocks(x))
        return x[:, 1:, :], mask


class MAEEmbedder(MaskedAutoEncoderViT):
    """A ``MaskedAutoEncoderViT`` whose forward returns one embedding per image: the encoder without masking.

    It has the same parameters (and state-dict keys) as the ``MaskedAutoEncoderViT`` it was trained as, so a
    pre-training checkpoint loads into it unchanged. The decoder is kept (unused) for that reason.

    Args:
        pooling: ``"mean"`` (average of the patch tokens, the default: it uses every patch), ``"cls"`` (the class
            token) or ``"mean_cls"`` (both, concatenated: ``2 * hidden_size`` features).
        kwargs: the arguments of ``monai.networks.nets.MaskedAutoEncoderViT``.

    Example::

        mae = MaskedAutoEncoderViT(in_channels=1, img_size=64, patch_size=8, spatial_dims=2, ...)  # trained
        embedder = MAEEmbedder(in_channels=1, img_size=64, patch_size=8, spatial_dims=2, ...)
        embedder.load_state_dict(mae.state_dict())
        features = embedder(images)  # (B, hidden_size)
    """

    def __init__(self, pooling: str = "mean", **kwargs) -> None:
        if pooling not in MAE_POOLING:
            raise ValueError(f"pooling must be one of {MAE_POOLING}, got {pooling!r}.")
        super().__init__(**kwargs)
        self.pooling = pooling

    @property
    def out_features(self) -> int:
        """Embedding length."""
        hidden = self.cls_token.shape[-1]
        return 2 * hidden if self.pooling == "mean_cls" else hidden

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the encoder, class token first: ``(B, 1 + n_patches, hidden_size)``."""
        tokens = self.patch_embedding(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return self.blocks(torch.cat((cls, tokens), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tokens = self.encode(x)
        if self.pooling == "cls":
            return tokens[:, 0]
        mean = tokens[:, 1:].mean(dim=1)
        return mean if self.pooling == "mean" else torch.cat((mean, tokens[:, 0]), dim=1)
