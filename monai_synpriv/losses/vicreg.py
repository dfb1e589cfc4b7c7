"""N-branch VICReg (Bardes et al. 2022), generalised to N branches as in TriDeNT (Farndale et al.)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiBranchVICRegLoss", "vicreg_terms"]


def _off_diagonal_sq_sum(c: torch.Tensor) -> torch.Tensor:
    return c.pow(2).sum() - torch.diagonal(c).pow(2).sum()


def vicreg_terms(z: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance hinge ``mean_d relu(1 - sqrt(Var_b z + eps))`` and covariance ``sum_{i != j} C_ij^2 / D`` of one
    branch's embeddings ``z`` (B x D), with the unbiased covariance ``C = z_c^T z_c / (B - 1)``."""
    b, d = z.shape
    zc = z - z.mean(dim=0)
    std = torch.sqrt(zc.var(dim=0) + eps)
    variance = F.relu(1.0 - std).mean()
    cov = zc.T @ zc / (b - 1)
    return variance, _off_diagonal_sq_sum(cov) / d


class MultiBranchVICRegLoss(nn.Module):
    """
    VICReg over N branch embeddings ``Z_1..Z_N`` (each B x D)::

        L = w_inv * I + w_var * V + w_cov * C

    - ``normalization="official"`` (default): ``I`` = mean of ``MSE(Z_i, Z_j)`` over unordered pairs, ``V`` = mean over
      branches of the variance hinge, ``C`` = sum over branches of the covariance term. With two branches this is
      exactly facebookresearch/vicreg.
    - ``normalization="authors"``: the TriDeNT authors' variant: ``I`` sums over *ordered* pairs (each pair counted
      twice), ``V`` and ``C`` are summed over branches.

    ``forward`` returns the total; :meth:`terms` returns ``invariance``, ``variance``, ``covariance`` and ``total``.

    Args:
        inv_weight, var_weight, cov_weight: weights (reference 25, 25, 1).
        normalization: ``"official"`` or ``"authors"``.
        eps: added to the variance before the square root (official 1e-4).
    """

    def __init__(
        self,
        inv_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        normalization: str = "official",
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        if normalization not in ("official", "authors"):
            raise ValueError(f"normalization must be 'official' or 'authors', got {normalization!r}.")
        self.inv_weight, self.var_weight, self.cov_weight = inv_weight, var_weight, cov_weight
        self.normalization = normalization
        self.eps = eps

    def terms(self, embeddings: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        z = list(embeddings)
        if len(z) < 2:
            raise ValueError(f"VICReg needs at least 2 branches, got {len(z)}.")
        shapes = {tuple(t.shape) for t in z}
        if len(shapes) != 1 or len(z[0].shape) != 2:
            raise ValueError(f"all branch embeddings must share one (B, D) shape, got {[tuple(t.shape) for t in z]}.")
        if z[0].shape[0] < 2:
            raise ValueError("VICReg needs a batch of at least 2 samples (variance and covariance over the batch).")
        pairs = [F.mse_loss(a, b) for a, b in itertools.combinations(z, 2)]
        var_cov = [vicreg_terms(t, self.eps) for t in z]
        if self.normalization == "official":
            invariance = torch.stack(pairs).mean()
            variance = torch.stack([v for v, _ in var_cov]).mean()
        else:
            invariance = 2 * torch.stack(pairs).sum()
            variance = torch.stack([v for v, _ in var_cov]).sum()
        covariance = torch.stack([c for _, c in var_cov]).sum()
        total = self.inv_weight * invariance + self.var_weight * variance + self.cov_weight * covariance
        return {"invariance": invariance, "variance": variance, "covariance": covariance, "total": total}

    def forward(self, embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.terms(embeddings)["total"]
