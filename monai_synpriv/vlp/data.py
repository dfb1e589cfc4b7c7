"""(image, text) pairs for vision-language pre-training: read, checked before any long work starts."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.datalist import load_datalist_section

__all__ = ["load_pairs", "load_pair_sources", "pair_synthetic_with_real"]


def load_pairs(
    datalist: str | os.PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    sections: str | Sequence[str] = ("training",),
    image_key: str = "image",
    text_key: str = "text",
    max_items: int | None = None,
) -> list[dict]:
    """The items of ``sections`` of a datalist (path, loaded dict or a list of items), each checked and tagged with
    its ``section`` (kept when already there: synthetic pairs remember the section of their caption).

    ``max_items`` keeps that many, evenly spaced (deterministic; for quick runs and tests).

    Raises:
        KeyError: a section or key is missing (named).
        FileNotFoundError: an image file is missing (named, with the item's index).
        ValueError: a caption is empty or not text (names the image), or no items at all.
    """
    sections = [sections] if isinstance(sections, str) else list(sections)
    if isinstance(datalist, (str, os.PathLike)):
        path = Path(datalist)
        if not path.is_file():
            raise FileNotFoundError(f"datalist {path} not found.")
        items = [{**it, "section": it.get("section", s)} for s in sections for it in load_datalist_section(path, s)]
        origin = f"datalist {path}"
    elif isinstance(datalist, Mapping):
        missing = [s for s in sections if s not in datalist]
        if missing:
            raise KeyError(f"datalist has no section(s) {missing}; sections: {sorted(datalist)}.")
        items = [{**it, "section": it.get("section", s)} for s in sections for it in datalist[s]]
        origin = "the datalist"
    else:
        items = [dict(it) for it in datalist]
        origin = "the item list"
    if not items:
        raise ValueError(f"{origin}: no items in {sections}.")
    for i, it in enumerate(items):
        for key in (image_key, text_key):
            if key not in it:
                raise KeyError(f"{origin}: item {i} has no key {key!r} (keys: {sorted(it)}).")
        if not Path(it[image_key]).is_file():
            raise FileNotFoundError(f"{origin}: item {i}: image {it[image_key]} not found.")
        text = it[text_key]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{origin}: item {i} ({it[image_key]}): empty caption {text_key!r}: {json.dumps(text)}.")
    if max_items is not None and 0 < max_items < len(items):
        step = len(items) / max_items
        items = [items[int(i * step)] for i in range(max_items)]
    return items


def load_pair_sources(
    sources: Sequence[tuple[str | os.PathLike | Mapping[str, Any], str | Sequence[str]]],
    max_items: int | None = None,
    image_key: str = "image",
    text_key: str = "text",
) -> list[dict]:
    """Pairs from several datalists, concatenated: ``sources`` is a list of ``(datalist, sections)`` (e.g. the real
    MedPix pairs and a synthetic datalist); ``max_items`` applies to each source. Items keep only the keys that every
    item has (synthetic items carry ``source_image``/``index``, real ones do not), so that batches collate."""
    if not sources:
        raise ValueError("no (datalist, sections) sources given.")
    out: list[dict] = []
    for src in sources:
        if not isinstance(src, (list, tuple)) or len(src) != 2:
            raise ValueError(f"each source must be (datalist, sections), got {src!r}.")
        out += load_pairs(src[0], src[1], image_key=image_key, text_key=text_key, max_items=max_items)
    common = set.intersection(*(set(it) for it in out))
    return [{k: v for k, v in it.items() if k in common} for it in out]


def pair_synthetic_with_real(
    synthetic_items: Sequence[Mapping[str, Any]], real_items: Sequence[Mapping[str, Any]], image_key: str = "image"
) -> tuple[list[dict], list[dict]]:
    """The synthetic items generated from ``real_items`` (matched by ``source_image``), aligned 1:1 with them.

    Raises:
        ValueError: a real item has no synthetic counterpart (names it) — generate for its section first.
    """
    by_source = {str(it.get("source_image")): dict(it) for it in synthetic_items}
    syn, real = [], []
    for it in real_items:
        match = by_source.get(str(it[image_key]))
        if match is None:
            raise ValueError(f"no synthetic image was generated from {it[image_key]}; generate for its section.")
        syn.append(match)
        real.append(dict(it))
    return syn, real
