"""Datalists: lists of dicts of file paths, from a folder or a MONAI/Decathlon-style datalist JSON."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from ..utils.io import write_json_atomic
from .dicom import dicom_series_datalist, group_dicom_series, is_dicom_file

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_FOLDER_MARKERS",
    "datalist_classes",
    "folder_to_datalist",
    "load_datalist_section",
    "load_image_list",
    "pair_datalists",
    "write_datalist",
]

#: file name endings read as images (NIfTI, DICOM, PNG/JPEG, MetaImage, NRRD)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".mha", ".mhd", ".nrrd", ".tif", ".tiff")


#: files that mark a folder as the output of one of our workflows (the translator's provenance manifest): a folder
#: listing skips the sub-folders holding one, so that outputs written inside an input folder are not read back as input
OUTPUT_FOLDER_MARKERS = ("translator_manifest.json",)


def _is_image(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and not name.startswith(".") and name.endswith(IMAGE_SUFFIXES)


def _maybe_dicom(p: Path) -> bool:
    """A ``.dcm`` file, or a visible file without a known image suffix (PACS exports have none), that holds the DICOM
    magic. NIfTI, PNG, ... files are not opened."""
    name = p.name.lower()
    if name.startswith(".") or (name.endswith(IMAGE_SUFFIXES) and not name.endswith(".dcm")):
        return False
    return p.is_file() and is_dicom_file(p)


def _skipped(sub: Path, exclude: set[str]) -> bool:
    """Whether a folder listing leaves out the sub-folder ``sub``: a link, an excluded or an output folder."""
    if sub.is_symlink() or os.path.abspath(sub) in exclude:
        return True
    return any((sub / marker).is_file() for marker in OUTPUT_FOLDER_MARKERS)


def folder_to_datalist(
    folder: str | os.PathLike,
    key: str = "image",
    recursive: bool = True,
    exclude: str | os.PathLike | list | tuple = (),
    dicom_series: bool = True,
) -> list[dict]:
    """
    Every image file under ``folder`` (sorted), as ``[{key: path}, ...]``. Hidden files are skipped and symbolic links
    to folders are not followed. Output folders below ``folder`` are left out with everything under them: the
    sub-folders holding one of :data:`OUTPUT_FOLDER_MARKERS` (e.g. the translator's ``translator_manifest.json``,
    written before its first output) and those in ``exclude``, so that an output folder placed inside the input
    folder is not read back as input on the next run. ``folder`` itself is always listed, even when it is an output
    folder.

    DICOM files are recognised by their header, with or without the ``.dcm`` extension, and grouped by
    ``SeriesInstanceUID`` (:func:`monai_synpriv.data.dicom.dicom_series_datalist`): a series of several slices is one
    entry, its folder when it is alone there, else the list of its files in slice order (read them with
    ``LoadImaged(reader="monai_synpriv.data.dicom.DicomSeriesReader")``); a one-file series is the file. Entries of a
    series also carry ``series_uid``, ``modality``, ``series_description``, ``patient_id`` and ``num_slices``.

    Args:
        folder: the folder to list.
        key: the key of each entry.
        recursive: also list the sub-folders.
        exclude: folders (with everything below them) to leave out, e.g. this run's own output folder.
        dicom_series: group DICOM slices into series; ``False``: one entry per ``.dcm`` file (2D slices).

    Raises:
        DicomSeriesError: naming a DICOM file whose header is truncated or corrupt.
    """
    folder = Path(folder)
    skip = {os.path.abspath(p) for p in ([exclude] if isinstance(exclude, (str, os.PathLike)) else exclude)}
    files, dicom = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if recursive and not _skipped(Path(dirpath) / d, skip)]
        for p in (Path(dirpath) / n for n in filenames):
            if dicom_series and _maybe_dicom(p):
                dicom.append(p)
            elif _is_image(p):
                files.append(p)
    items = [{key: str(p)} for p in files]
    if dicom:
        items += dicom_series_datalist(group_dicom_series(sorted(dicom)), key=key)
    return sorted(items, key=lambda item: item[key] if isinstance(item[key], str) else item[key][0])


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


def _is_series_folder(path: Path) -> bool:
    """A folder that directly holds a DICOM file (among its first 64 entries): a DICOM series given by its folder.
    Any other string value (a caption, a class name) is no path: an over-long name or one the file system refuses is
    simply not a folder."""
    try:
        return path.is_dir() and any(is_dicom_file(p) for p in itertools.islice(path.iterdir(), 64))
    except (OSError, ValueError):  # ENAMETOOLONG, embedded NUL, permission denied
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value):
        if value.lower().endswith(IMAGE_SUFFIXES) or _is_series_folder(base / value):
            return str(base / value)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, str) and not os.path.isabs(v) and _is_file(base / v) for v in value)
        and is_dicom_file(base / value[0])
    ):
        return [str(base / v) for v in value]  # a DICOM series as the list of its (relative, extensionless) files
    return value


def load_image_list(
    source: str | os.PathLike | list,
    key: str = "image",
    section: str = "training",
    source_key: str = "image",
    base_dir: str | None = None,
    max_items: int | None = None,
    exclude: str | os.PathLike | list | tuple = (),
) -> list[dict]:
    """
    One domain's images as ``[{key: path, ...}, ...]`` from any of:

    - a folder (every NIfTI/DICOM/PNG/JPEG/... file below it, sorted, without the output folders inside it and
      those in ``exclude``: :func:`folder_to_datalist`);
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
            items = folder_to_datalist(p, key=source_key, exclude=exclude)
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
