"""Datalists: lists of dicts of file paths, from a folder or a MONAI/Decathlon-style datalist JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..utils.io import write_json_atomic

__all__ = [
    "IMAGE_SUFFIXES",
    "datalist_classes",
    "folder_to_datalist",
    "load_datalist_section",
    "load_image_list",
    "pair_datalists",
    "write_datalist",
]

#: file name endings read as images (NIfTI, DICOM, PNG/JPEG, MetaImage, NRRD)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".mha", ".mhd", ".nrrd", ".tif", ".tiff")


def _is_image(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and not name.startswith(".") and name.endswith(IMAGE_SUFFIXES)


def folder_to_datalist(folder: str | os.PathLike, key: str = "image", recursive: bool = True) -> list[dict]:
    """Every image file under ``folder`` (sorted), as ``[{key: path}, ...]``."""
    folder = Path(folder)
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if _is_image(p))
    return [{key: str(p)} for p in files]


def load_datalist_section(path: str | os.PathLike, section: str = "training", base_dir: str | None = None) -> list:
    """Read ``section`` of a datalist JSON. Relative paths in string values are resolved against ``base_dir``
    (default: the JSON's folder), as MONAI's ``load_decathlon_datalist`` does."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"datalist {path} is not valid JSON: {e}") from e
    if section not in data:
        raise KeyError(f"datalist {path} has no section {section!r}; sections: {sorted(data)}.")
    items = data[section]
    if not isinstance(items, list):
        raise ValueError(f"datalist {path}: section {section!r} must be a list, got {type(items).__name__}.")
    base = Path(base_dir) if base_dir is not None else path.parent
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"image": item}
        if not isinstance(item, dict):
            raise ValueError(f"datalist {path}: {section}[{i}] must be a dict or a path, got {item!r}.")
        out.append({k: _resolve(v, base) for k, v in item.items()})
    return out


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value.lower().endswith(IMAGE_SUFFIXES) and not os.path.isabs(value):
        return str(base / value)
    return value


def load_image_list(
    source: str | os.PathLike | list,
    key: str = "image",
    section: str = "training",
    source_key: str = "image",
    base_dir: str | None = None,
    max_items: int | None = None,
) -> list[dict]:
    """
    One domain's images as ``[{key: path, ...}, ...]`` from any of:

    - a folder (every NIfTI/DICOM/PNG/JPEG/... file below it, sorted);
    - a datalist JSON (``section`` of it; each entry's ``source_key`` becomes ``key``, other fields are kept);
    - an already loaded list of dicts or paths.

    ``max_items`` keeps that many entries, evenly spaced over the list (deterministic; for quick runs and tests).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: nothing found (an empty datalist is an error, not an empty training run).
    """
    if isinstance(source, (list, tuple)):
        items = [{source_key: s} if isinstance(s, str) else dict(s) for s in source]
        origin = "the given list"
    else:
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"datalist source {p} does not exist (a folder of images or a datalist JSON).")
        if p.is_dir():
            items = folder_to_datalist(p, key=source_key)
            origin = f"folder {p}"
        else:
            items = load_datalist_section(p, section, base_dir)
            origin = f"datalist {p} section {section!r}"
    out = []
    for i, item in enumerate(items):
        if source_key not in item:
            raise KeyError(f"{origin}: entry {i} has no key {source_key!r} (keys: {sorted(item)}).")
        new = {k: v for k, v in item.items() if k != source_key}
        new[key] = item[source_key]
        out.append(new)
    if not out:
        raise ValueError(f"{origin} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    if max_items is not None and 0 < max_items < len(out):
        step = len(out) / max_items
        out = [out[int(i * step)] for i in range(max_items)]
    return out


def write_datalist(path: str | os.PathLike, sections: dict[str, Any]) -> str:
    """Write a datalist JSON atomically (sections such as ``training``, ``validation``, plus any metadata)."""
    return write_json_atomic(path, sections)


def pair_datalists(items_a: list[dict], items_b: list[dict], on: tuple[str, ...] | list[str] = ("subject", "slice")):
    """Join two domains' lists into aligned pairs on the fields ``on`` (e.g. subject and slice index), for paired
    (pix2pix) training on co-registered data. Entries without a partner are dropped; no pair is an error."""
    on = tuple(on)

    def join_key(item: dict, i: int, side: str) -> tuple:
        missing = [k for k in on if k not in item]
        if missing:
            raise ValueError(
                f"pair_datalists: {side} entry {i} ({item}) lacks the join field(s) {missing}; "
                "paired training needs entries that say which images belong together."
            )
        return tuple(item[k] for k in on)

    index: dict[tuple, dict] = {}
    for i, b in enumerate(items_b):
        key = join_key(b, i, "B")
        if key in index:
            raise ValueError(f"pair_datalists: two B entries share {dict(zip(on, key))}: {index[key]} and {b}.")
        index[key] = b
    pairs = []
    for i, a in enumerate(items_a):
        b = index.get(join_key(a, i, "A"))
        if b is not None:
            merged = dict(a)
            merged.update({k: v for k, v in b.items() if k not in on})
            pairs.append(merged)
    if not pairs:
        raise ValueError(f"no entries of the two datalists match on {on}: they are not paired data.")
    return pairs


def probe_items(
    datalist: str | os.PathLike,
    train_section: str = "training",
    test_section: str = "test",
    max_train: int | None = None,
    max_test: int | None = None,
    label_key: str = "label",
    num_classes: int | None = None,
) -> list[dict]:
    """Labelled entries for probe evaluation: ``train_section`` and ``test_section`` of a datalist JSON, each entry
    tagged ``split`` (its section name), optionally subsampled evenly. Labels must be integers (in
    ``0..num_classes-1`` when ``num_classes`` is given).

    Raises:
        ValueError: an empty section, or an entry without an integer label (the file and entry are named).
    """
    out = []
    for section, limit in ((train_section, max_train), (test_section, max_test)):
        items = load_image_list(datalist, key="image", section=section, max_items=limit)
        for i, item in enumerate(items):
            label = item.get(label_key)
            if num_classes is not None and isinstance(label, int) and not 0 <= label < num_classes:
                raise ValueError(
                    f"datalist {datalist} section {section!r} entry {i} ({item.get('image')}): label {label} is out "
                    f"of range 0..{num_classes - 1}."
                )
            if isinstance(label, bool) or not isinstance(label, int):
                raise ValueError(
                    f"datalist {datalist} section {section!r} entry {i}: {label_key!r} must be an "
                    f"integer class index, got {label!r}."
                )
            out.append({**item, "split": section})
    return out


def datalist_classes(datalist: str | os.PathLike) -> list[str]:
    """The ``classes`` entry of a datalist JSON (class names in label order).

    Raises:
        FileNotFoundError: no such file. KeyError: the datalist has no ``classes`` (the file is named).
    """
    p = Path(datalist)
    if not p.is_file():
        raise FileNotFoundError(f"datalist not found: {p}.")
    classes = json.loads(p.read_text()).get("classes")
    if not classes:
        raise KeyError(f"datalist {p} has no 'classes' list (class names in label order); add one or set class_names.")
    return [str(c) for c in classes]
