"""Multi-branch self-supervised networks: Siamese, privileged Siamese, TriDeNT and wider variants by index lists."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import resnet
from torch import nn

__all__ = ["ProjectionHead", "MultiBranchSSLNet", "RESNET_FEATURES", "make_resnet_encoder", "build_multibranch_resnet"]

#: pooled feature size of MONAI's ResNets
RESNET_FEATURES = {10: 512, 18: 512, 34: 512, 50: 2048, 101: 2048, 152: 2048, 200: 2048}


class ProjectionHead(nn.Module):
    """MLP projector: ``(Linear -> BatchNorm1d -> ReLU) x (len(dims) - 1)`` then ``Linear`` (VICReg/TriDeNT uses
    8192-8192-8192 after a ResNet-50; smaller for CPU runs).

    Args:
        in_features: encoder feature size.
        dims: output sizes of the layers; the last one is the embedding size.
    """

    def __init__(self, in_features: int, dims: Sequence[int] = (2048, 2048, 2048)) -> None:
        super().__init__()
        if not dims:
            raise ValueError("ProjectionHead needs at least one layer size in dims.")
        layers: list[nn.Module] = []
        prev = in_features
        for i, d in enumerate(dims):
            layers.append(nn.Linear(prev, d, bias=i == len(dims) - 1))
            if i < len(dims) - 1:
                layers += [nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
            prev = d
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiBranchSSLNet(nn.Module):
    """
    N branches, each made of an encoder and a projector chosen by index; branches with equal indices share weights.

    =====================  ===================  ======================
    variant                ``encoder_indices``  ``projector_indices``
    =====================  ===================  ======================
    Siamese (one modality)  ``[0, 0]``           ``[0, 0]``
    privileged Siamese      ``[0, 1]``           ``[0, 1]``
    TriDeNT                 ``[0, 0, 1]``        ``[0, 0, 1]``
    =====================  ===================  ======================

    Branch 0 is the primary modality: :meth:`encode` runs its encoder, the only part kept after training. Branches
    that share an encoder (or projector) and receive inputs of one shape run as **one batched forward pass** (their
    batch-norm statistics are then computed over all of them together, as in the two-view SimCLR/VICReg practice).

    Args:
        encoders: the distinct encoders (each maps an image batch to B x F features).
        projectors: the distinct projectors (B x F -> B x D; every branch must end in the same D).
        encoder_indices: encoder of each branch.
        projector_indices: projector of each branch; default ``encoder_indices``.
    """

    def __init__(
        self,
        encoders: Sequence[nn.Module],
        projectors: Sequence[nn.Module],
        encoder_indices: Sequence[int],
        projector_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        encoder_indices = [int(i) for i in encoder_indices]
        projector_indices = encoder_indices if projector_indices is None else [int(i) for i in projector_indices]
        if len(encoder_indices) < 2:
            raise ValueError(
                f"a multi-branch network needs at least 2 branches, got encoder_indices={encoder_indices}."
            )
        if len(projector_indices) != len(encoder_indices):
            raise ValueError(
                f"encoder_indices {encoder_indices} and projector_indices {projector_indices} differ in length."
            )
        for name, idx, mods in (("encoder", encoder_indices, encoders), ("projector", projector_indices, projectors)):
            if sorted(set(idx)) != list(range(len(mods))):
                raise ValueError(
                    f"{name}_indices {idx} must use each of the {len(mods)} {name}(s) (indices 0..{len(mods) - 1})."
                )
        self.encoders = nn.ModuleList(encoders)
        self.projectors = nn.ModuleList(projectors)
        self.encoder_indices = encoder_indices
        self.projector_indices = projector_indices

    @property
    def num_branches(self) -> int:
        return len(self.encoder_indices)

    @property
    def primary_encoder(self) -> nn.Module:
        """The encoder of branch 0 (what is exported for downstream use)."""
        return self.encoders[self.encoder_indices[0]]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of primary-modality images (the representation the probe evaluates)."""
        return self.primary_encoder(x)

    @staticmethod
    def _grouped(modules: nn.ModuleList, indices: Sequence[int], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Apply ``modules[indices[k]]`` to ``inputs[k]``, one batched call per module and input shape."""
        outputs: list[torch.Tensor | None] = [None] * len(inputs)
        groups: dict[tuple, list[int]] = {}
        for k, (m, x) in enumerate(zip(indices, inputs)):
            groups.setdefault((m, tuple(x.shape[1:])), []).append(k)
        for (m, _), members in groups.items():
            if len(members) == 1:
                outputs[members[0]] = modules[m](inputs[members[0]])
                continue
            sizes = [inputs[k].shape[0] for k in members]
            for k, y in zip(members, modules[m](torch.cat([inputs[k] for k in members])).split(sizes)):
                outputs[k] = y
        return outputs  # type: ignore[return-value]

    def forward(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Embeddings of each branch's view (a list of N tensors B x D)."""
        if len(views) != self.num_branches:
            raise ValueError(f"expected {self.num_branches} views (one per branch), got {len(views)}.")
        features = self._grouped(self.encoders, self.encoder_indices, views)
        return self._grouped(self.projectors, self.projector_indices, features)


def make_resnet_encoder(spatial_dims: int, in_channels: int, depth: int = 18) -> nn.Module:
    """A MONAI ResNet (random initialisation) returning globally pooled features (``feed_forward=False``)."""
    if depth not in RESNET_FEATURES:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_FEATURES)}, got {depth}.")
    return getattr(resnet, f"resnet{depth}")(
        spatial_dims=spatial_dims, n_input_channels=in_channels, feed_forward=False
    )


def build_multibranch_resnet(
    spatial_dims: int,
    encoder_indices: Sequence[int],
    projector_indices: Sequence[int] | None = None,
    in_channels: int | Sequence[int] = 1,
    depth: int = 18,
    projector_dims: Sequence[int] = (2048, 2048, 2048),
) -> MultiBranchSSLNet:
    """A :class:`MultiBranchSSLNet` of MONAI ResNets and MLP projectors. ``in_channels`` may be given per encoder
    (e.g. ``[1, 3]`` for a grey primary and an RGB privileged modality)."""
    projector_indices = list(encoder_indices) if projector_indices is None else list(projector_indices)
    n_enc, n_proj = len(set(encoder_indices)), len(set(projector_indices))
    channels = [in_channels] * n_enc if isinstance(in_channels, int) else list(in_channels)
    if len(channels) != n_enc:
        raise ValueError(f"in_channels {in_channels} must give one value per encoder ({n_enc}).")
    encoders = [make_resnet_encoder(spatial_dims, c, depth) for c in channels]
    projectors = [ProjectionHead(RESNET_FEATURES[depth], projector_dims) for _ in range(n_proj)]
    return MultiBranchSSLNet(encoders, projectors, encoder_indices, projector_indices)
