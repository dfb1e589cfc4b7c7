"""``DualEncoder``: an image encoder and a text encoder projected into one embedding space (ConVIRT, CLIP)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DualEncoder", "MLPProjection"]


class MLPProjection(nn.Module):
    """ConVIRT's projection: ``Linear -> ReLU -> Linear``."""

    def __init__(self, in_features: int, out_features: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or in_features
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DualEncoder(nn.Module):
    """
    Image encoder (e.g. a MONAI ResNet with ``feed_forward=False``) and text encoder
    (:class:`~monai_synpriv.networks.BertTextEncoder`), each followed by an MLP projection to ``embed_dim``;
    ``forward(image, input_ids, attention_mask)`` returns the two L2-normalised embeddings (B x ``embed_dim``).
    :meth:`encode_image` gives the image encoder's features, which probes and downstream tasks use.

    Args:
        image_encoder: images -> B x ``image_features``.
        text_encoder: (input_ids, attention_mask) -> B x ``text_features``.
        image_features: size of the image features.
        text_features: size of the text features (default: ``text_encoder.out_features``).
        embed_dim: joint embedding size (ConVIRT: 512).
        temperature: initial (or fixed) softmax temperature.
        learn_temperature: learn ``log(1 / temperature)`` (CLIP) instead of keeping it fixed (ConVIRT).
        trainable_text_layers: ``None`` trains the whole text encoder; ``k`` freezes its embeddings and all but its
            last ``k`` transformer layers (0: frozen; ConVIRT freezes the lower half of its BERT).
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        image_features: int,
        text_features: int | None = None,
        embed_dim: int = 512,
        temperature: float = 0.1,
        learn_temperature: bool = False,
        trainable_text_layers: int | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        text_features = text_features or int(getattr(text_encoder, "out_features"))
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = MLPProjection(image_features, embed_dim)
        self.text_projection = MLPProjection(text_features, embed_dim)
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)
        self.learn_temperature = learn_temperature
        self.trainable_text_layers = trainable_text_layers
        if trainable_text_layers is not None:
            self._freeze_text(trainable_text_layers)

    def _freeze_text(self, k: int) -> None:
        layers = getattr(getattr(self.text_encoder, "layers", None), "layers", None)
        if layers is None:
            raise ValueError("trainable_text_layers needs a BertTextEncoder-like text encoder (layers.layers).")
        if not 0 <= k <= len(layers):
            raise ValueError(f"trainable_text_layers must be in [0, {len(layers)}], got {k}.")
        self.text_encoder.requires_grad_(False)
        for layer in list(layers)[len(layers) - k :]:
            layer.requires_grad_(True)

    def train(self, mode: bool = True) -> DualEncoder:
        super().train(mode)
        if self.trainable_text_layers is not None:  # frozen parts keep their dropout off: fixed features
            self.text_encoder.eval()
            layers = list(self.text_encoder.layers.layers)
            for layer in layers[len(layers) - self.trainable_text_layers :]:
                layer.train(mode)
        return self

    @property
    def temperature(self) -> torch.Tensor:
        """The current softmax temperature (clamped to >= 0.01 as CLIP does)."""
        return torch.exp(-self.log_logit_scale.clamp(max=math.log(100.0)))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image features before the projection (for probes and transfer)."""
        return self.image_encoder(image)

    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        """L2-normalised joint-space image embedding."""
        return F.normalize(self.image_projection(self.encode_image(image)), dim=-1)

    def embed_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised joint-space text embedding."""
        return F.normalize(self.text_projection(self.text_encoder(input_ids, attention_mask)), dim=-1)

    def forward(
        self, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_image(image), self.embed_text(input_ids, attention_mask)
