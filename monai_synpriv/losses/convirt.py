"""``ConVIRTLoss``: the bidirectional image-text InfoNCE of ConVIRT (Zhang et al. 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConVIRTLoss"]


class ConVIRTLoss(nn.Module):
    """
    Bidirectional InfoNCE over a batch of B (image, text) pairs: with L2-normalised embeddings ``u`` (images) and
    ``v`` (texts) and temperature ``tau``,

    ``l_i2t = CE(u v^T / tau, diag)``, ``l_t2i = CE(v u^T / tau, diag)``,
    ``loss = w l_i2t + (1 - w) l_t2i`` (ConVIRT: ``tau = 0.1``, ``w = 0.75``).

    The other B - 1 texts of the batch are the negatives of an image (and vice versa); a caption repeated within a
    batch is then a false negative, which ConVIRT accepts.

    Args:
        temperature: fixed temperature, used when ``forward`` gets none (a learnable one lives in the network:
            :class:`~monai_synpriv.networks.DualEncoder` with ``learn_temperature=True``).
        image_to_text_weight: ``w``, the weight of the image-to-text term.
    """

    def __init__(self, temperature: float = 0.1, image_to_text_weight: float = 0.75) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        if not 0.0 <= image_to_text_weight <= 1.0:
            raise ValueError(f"image_to_text_weight must be in [0, 1], got {image_to_text_weight}.")
        self.temperature = float(temperature)
        self.image_to_text_weight = float(image_to_text_weight)

    def terms(
        self, image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float | torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"total", "image_to_text", "text_to_image"}``."""
        if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
            raise ValueError(
                f"ConVIRTLoss needs two B x D embeddings of one shape, got {tuple(image_emb.shape)} and "
                f"{tuple(text_emb.shape)}."
            )
        if image_emb.shape[0] < 2:
            raise ValueError("ConVIRTLoss needs at least 2 pairs per batch (the others are the negatives).")
        tau = self.temperature if temperature is None else temperature
        u, v = F.normalize(image_emb.float(), dim=1), F.normalize(text_emb.float(), dim=1)
        logits = u @ v.T / tau
        target = torch.arange(u.shape[0], device=u.device)
        i2t, t2i = F.cross_entropy(logits, target), F.cross_entropy(logits.T, target)
        w = self.image_to_text_weight
        return {"total": w * i2t + (1.0 - w) * t2i, "image_to_text": i2t, "text_to_image": t2i}

    def forward(
        self, image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float | torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.terms(image_emb, text_emb, temperature)["total"]
