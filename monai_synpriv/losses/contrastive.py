"""Multi-branch contrastive losses: cross-view InfoNCE and pairwise Barlow Twins (MONAI's)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import BarlowTwinsLoss
from torch import nn

__all__ = ["CrossViewInfoNCELoss", "MultiBranchBarlowTwinsLoss"]


def _check(embeddings: Sequence[torch.Tensor], name: str) -> list[torch.Tensor]:
    z = list(embeddings)
    if len(z) < 2:
        raise ValueError(f"{name} needs at least 2 branches, got {len(z)}.")
    if len({tuple(t.shape) for t in z}) != 1 or z[0].ndim != 2:
        raise ValueError(
            f"{name}: all branch embeddings must share one (B, D) shape, got {[tuple(t.shape) for t in z]}."
        )
    return z


class CrossViewInfoNCELoss(nn.Module):
    """
    N-branch InfoNCE with negatives across views only: for every ordered pair of branches (i, j), sample ``b`` of
    branch i must pick sample ``b`` of branch j among all B samples of branch j, with cosine similarity divided by
    ``temperature`` as logits (cross-entropy). The loss is the mean over the N(N-1) ordered pairs. With two branches
    this is the symmetric CLIP/ConVIRT-style loss (SimCLR without within-view negatives).

    Args:
        temperature: softmax temperature (TriDeNT default 0.5).
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = temperature

    def forward(self, embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
        z = [F.normalize(t, dim=1) for t in _check(embeddings, "CrossViewInfoNCELoss")]
        target = torch.arange(z[0].shape[0], device=z[0].device)
        losses = [F.cross_entropy(a @ b.T / self.temperature, target) for a, b in itertools.permutations(z, 2)]
        return torch.stack(losses).mean()


class MultiBranchBarlowTwinsLoss(nn.Module):
    """MONAI's ``BarlowTwinsLoss`` averaged over the unordered pairs of branches (two branches: exactly MONAI's)."""

    def __init__(self, lambd: float = 5e-3) -> None:
        super().__init__()
        self.pair_loss = BarlowTwinsLoss(lambd=lambd)

    def forward(self, embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
        z = _check(embeddings, "MultiBranchBarlowTwinsLoss")
        return torch.stack([self.pair_loss(a, b) for a, b in itertools.combinations(z, 2)]).mean()
