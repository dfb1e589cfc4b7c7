"""Frozen text embeddings as conditions: a callable for batches of captions and its dict transform ``EmbedTextd``."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from torch import nn

__all__ = ["TextConditioner", "EmbedTextd"]


class TextConditioner:
    """
    Captions -> B x 1 x D cross-attention context from a frozen text encoder (the pooled sentence embedding as one
    context token, L2-normalised by default so that its scale does not depend on the caption).

    Embeddings are cached per caption string, so a caption shared by several images is encoded once.

    Args:
        encoder: a text encoder, e.g. :class:`monai_synpriv.networks.BertTextEncoder` (put in eval mode, no grad).
        tokenizer: a :class:`monai_synpriv.data.TextTokenizer` (or a callable with the same signature).
        max_length: longest tokenised caption; longer ones are handled per ``truncation``.
        truncation: ``"truncate"`` (cut, documented) or ``"error"``.
        normalize: L2-normalise the embedding.
        device: where the encoder runs.
        batch_size: captions per encoder call.
    """

    def __init__(
        self,
        encoder: nn.Module,
        tokenizer,
        max_length: int = 64,
        truncation: str = "truncate",
        normalize: bool = True,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        self.encoder = encoder.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.normalize = normalize
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def context_dim(self) -> int:
        """Size D of the context token."""
        return int(getattr(self.encoder, "out_features", 0) or getattr(self.encoder, "hidden_size"))

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], names: Sequence[str] | None = None) -> torch.Tensor:
        """B x 1 x D contexts (on CPU) for ``texts``; ``names`` (e.g. image paths) go into error messages."""
        todo = [i for i, t in enumerate(texts) if not isinstance(t, str) or t not in self._cache]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            tokens = self.tokenizer(
                [texts[i] for i in chunk],
                max_length=self.max_length,
                truncation=self.truncation,
                names=[names[i] for i in chunk] if names is not None else None,
            )
            emb = self.encoder(tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))
            emb = emb.float()
            if self.normalize:
                emb = nn.functional.normalize(emb, dim=-1)
            for i, e in zip(chunk, emb.cpu()):
                self._cache[texts[i]] = e
        return torch.stack([self._cache[t] for t in texts]).unsqueeze(1)


class EmbedTextd(MapTransform):
    """
    Dict wrapper of :class:`TextConditioner`: adds ``output_key`` (1 x D, the context of one item) from the caption
    under ``keys``. Put it before any random transform so that ``CacheDataset`` caches the result.

    Args:
        keys: the caption key (one).
        conditioner: the :class:`TextConditioner`.
        output_key: key of the context.
        name_key: key used to name the item in error messages (e.g. ``"image"``).
    """

    def __init__(
        self,
        keys: KeysCollection,
        conditioner: TextConditioner,
        output_key: str = "context",
        name_key: str | None = "image",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"EmbedTextd embeds one caption key, got {self.keys}.")
        self.conditioner = conditioner
        self.output_key = output_key
        self.name_key = name_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            name = f"{key!r} of {d.get(self.name_key)}" if self.name_key and self.name_key in d else repr(key)
            d[self.output_key] = self.conditioner([d[key]], names=[name])[0]
        return d
