"""Tokenizing the text of a data dictionary (captions, reports) into fixed-length id tensors."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..data.text import TRUNCATION_MODES, TextTokenizer

__all__ = ["TokenizeTextd"]


def _image_path(d: Mapping[Hashable, Any]) -> str | None:
    """The item's image path (a string, or the file name recorded in a loaded image's meta data), if any."""
    image = d.get("image")
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    meta = getattr(image, "meta", None)
    if isinstance(meta, Mapping) and meta.get("filename_or_obj"):
        return str(meta["filename_or_obj"])
    return None


class TokenizeTextd(MapTransform):
    """
    Tokenize the text at each key into ``data[f"{key}_ids"]`` and ``data[f"{key}_mask"]``: 1-D ``torch.long``
    tensors of length ``max_length`` (right-padded with the tokenizer's padding id, mask 0 there), so that the default
    collation stacks them into ``B x max_length`` batches.

    Args:
        keys: the text key(s), e.g. ``"text"``.
        tokenizer: a :class:`~monai_synpriv.data.text.TextTokenizer`, or the path of a ``tokenizer.json`` (or of a
            folder holding one) to load.
        max_length: tokens per text, special tokens included.
        truncation: ``"truncate"`` cuts a longer text (keeping its final ``[SEP]``), ``"error"`` raises.
        ids_suffix: suffix of the output key of the ids.
        mask_suffix: suffix of the output key of the attention mask.
        allow_missing_keys: skip keys absent from the data instead of raising.

    Raises:
        ValueError: (when called) a text is not a string, is empty, or, with ``truncation="error"``, is too long;
            the message names the key and the item's ``image`` path when there is one.
    """

    def __init__(
        self,
        keys: KeysCollection,
        tokenizer: TextTokenizer | str | os.PathLike,
        max_length: int = 64,
        truncation: str = "truncate",
        ids_suffix: str = "_ids",
        mask_suffix: str = "_mask",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {truncation!r}.")
        self.tokenizer = tokenizer if isinstance(tokenizer, TextTokenizer) else TextTokenizer.from_file(tokenizer)
        self.max_length = int(max_length)
        self.truncation = truncation
        self.ids_suffix = ids_suffix
        self.mask_suffix = mask_suffix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _image_path(d)
        for key in self.key_iterator(d):
            name = f"at key {key!r}" + (f" of {image}" if image else "")
            out = self.tokenizer([d[key]], max_length=self.max_length, truncation=self.truncation, names=[name])
            ids = torch.full((self.max_length,), self.tokenizer.pad_id, dtype=torch.long)
            mask = torch.zeros(self.max_length, dtype=torch.long)
            n = out["input_ids"].shape[1]
            ids[:n], mask[:n] = out["input_ids"][0], out["attention_mask"][0]
            d[f"{key}{self.ids_suffix}"] = ids
            d[f"{key}{self.mask_suffix}"] = mask
        return d
