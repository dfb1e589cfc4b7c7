"""A user's labelled images as one checked datalist: read from a datalist JSON, a CSV or a folder with a labels CSV,
split by subject (patient), with content-identical files across splits removed.

The pipeline's downstream set goes through :func:`prepare_labelled_datalist`, whichever data it is (the shipped
brain-tumour set is one adapter on top of it), so that a hospital's export is read by the same code as ours.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
import numpy as np

from .datalist import IMAGE_SUFFIXES, write_datalist

__all__ = ["datalist_content_digest", "file_sha256", "read_labelled_entries", "split_by_subject", "drop_identical_across_splits",
           "prepare_labelled_datalist"]

_SECTIONS = ("training", "validation", "test")


def file_sha256(path: str | os.PathLike, _memo: dict[tuple[str, int, int], str] = {}) -> str:  # noqa: B006
    """SHA-256 of a file's content, memoised on (path, size, mtime) within the process."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _memo[key] = h.hexdigest()
    return _memo[key]


def datalist_content_digest(path: str | os.PathLike) -> str:
    """SHA-256 over (path, size, content hash) of every existing image file a datalist JSON lists (string values
    with an image suffix, relative ones against the JSON's folder): it changes when a listed image is replaced under
    the same path, which the JSON's own hash does not see."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    files: set[str] = set()

    def walk(v: object) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v.lower().endswith(IMAGE_SUFFIXES):
            p = v if os.path.isabs(v) else str(path.parent / v)
            if os.path.isfile(p):
                files.add(p)

    walk({k: v for k, v in data.items() if k != "dropped"} if isinstance(data, dict) else data)
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{f}\0{os.path.getsize(f)}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def _read_csv(path: Path, base: Path, image_key: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or image_key not in reader.fieldnames:
            raise KeyError(f"{path}: no column {image_key!r} (columns: {reader.fieldnames}); set image_key.")
        rows = []
        for i, row in enumerate(reader, start=2):  # line 1 is the header
            p = row[image_key]
            rows.append({**row, image_key: p if os.path.isabs(p) else str(base / p), "_origin": f"{path} line {i}"})
    return rows


def read_labelled_entries(
    datalist: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    labels_csv: str | os.PathLike | None = None,
    image_key: str = "image",
) -> tuple[list[dict], dict[str, list[dict]] | None]:
    """
    Read labelled entries from ``datalist`` (a JSON with ``training``/``validation``/``test`` sections or a list, or
    a CSV; relative paths against its folder) or from ``folder`` + ``labels_csv`` (image paths relative to the
    folder). Every entry gets ``_origin`` (file and line or section index) for error messages.

    Returns:
        ``(entries, given_sections)``: all entries, and the JSON's own sections when it has a ``test`` section
        (the user's split is then kept), else None.

    Raises:
        ValueError: neither or both of ``datalist`` and ``folder`` given, or an unreadable file.
        FileNotFoundError: a missing datalist, folder or listed image (the file and line are named).
    """
    if (datalist is None) == (folder is None):
        raise ValueError("give either 'datalist' (a JSON or CSV) or 'folder' with 'labels_csv', not both or neither.")
    given = None
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}.")
        if labels_csv is None:
            raise ValueError(f"folder {folder} needs 'labels_csv' (one row per image: path, label, subject).")
        labels_csv = Path(labels_csv)
        if not labels_csv.is_file():
            raise FileNotFoundError(f"labels CSV not found: {labels_csv}.")
        entries = _read_csv(labels_csv, folder, image_key)
    else:
        path = Path(datalist)  # type: ignore[arg-type]
        if not path.is_file():
            raise FileNotFoundError(f"datalist not found: {path}.")
        if path.suffix.lower() == ".csv":
            entries = _read_csv(path, path.parent, image_key)
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"datalist {path} is not valid JSON: {e}") from e
            if isinstance(data, list):
                data = {"training": data}
            sections = [s for s in _SECTIONS if isinstance(data.get(s), list)]
            if not sections:
                raise ValueError(f"datalist {path} has none of the sections {list(_SECTIONS)} (or is not a list).")
            entries, given = [], {}
            for s in sections:
                items = []
                for i, it in enumerate(data[s]):
                    it = {image_key: it} if isinstance(it, str) else dict(it)
                    v = it.get(image_key)
                    if isinstance(v, str) and not os.path.isabs(v):
                        it[image_key] = str(path.parent / v)
                    items.append({**it, "_origin": f"{path} {s}[{i}]"})
                given[s] = items
                entries += items
            if "test" not in given:
                given = None
    for e in entries:
        if image_key not in e:
            raise KeyError(f"{e['_origin']}: no {image_key!r} (keys: {sorted(k for k in e if k != '_origin')}).")
        if not Path(e[image_key]).is_file():
            raise FileNotFoundError(f"{e['_origin']}: image {e[image_key]} not found.")
    if not entries:
        raise ValueError(f"no labelled images in {datalist or labels_csv}.")
    return entries, given


def _labels(entries: list[dict], label_key: str, class_names: Sequence[str] | None) -> list[str]:
    """Integer labels in place (``label``) and the class names in label order."""
    for e in entries:
        if label_key not in e or e[label_key] in (None, ""):
            raise KeyError(f"{e['_origin']}: no label {label_key!r}; set label_key to the column that holds it.")
    raw = [e[label_key] for e in entries]
    as_int = []
    for v in raw:
        try:
            as_int.append(int(v) if not isinstance(v, bool) and str(v).strip().lstrip("-").isdigit() else None)
        except (TypeError, ValueError):
            as_int.append(None)
    if all(i is not None for i in as_int):  # integer labels: class i is class_names[i] (default its number)
        k = max(as_int) + 1  # type: ignore[type-var]
        names = list(class_names) if class_names else [str(i) for i in range(k)]
        for e, i in zip(entries, as_int):
            if not 0 <= i < len(names):  # type: ignore[operator]
                raise ValueError(f"{e['_origin']}: label {i} is out of range for class_names {names}.")
            e["label"], e["class"] = i, names[i]  # type: ignore[index]
        return names
    names = list(class_names) if class_names else sorted({str(v) for v in raw})
    index = {n: i for i, n in enumerate(names)}
    for e, v in zip(entries, raw):
        if str(v) not in index:
            raise ValueError(f"{e['_origin']}: class {v!r} is not one of class_names {names}.")
        e["label"], e["class"] = index[str(v)], str(v)
    return names


def split_by_subject(
    entries: list[dict],
    subject_key: str | None,
    fractions: dict[str, float],
    seed: int = 0,
) -> dict[str, list[dict]]:
    """
    Split ``entries`` into sections with the given ``fractions`` (e.g. ``{"validation": 0.1, "test": 0.2}``, the rest
    is ``training``), by subject: all images of a subject land in one section. Subjects are stratified by their most
    frequent label. Without ``subject_key`` every image is its own subject.

    Raises:
        KeyError: an entry without ``subject_key`` (named).
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for i, e in enumerate(entries):
        if subject_key is None:
            sid = f"image{i}"
        else:
            if e.get(subject_key) in (None, ""):
                raise KeyError(f"{e['_origin']}: no subject id {subject_key!r}; every image needs one for the split.")
            sid = str(e[subject_key])
        e["subject"] = sid
        groups[sid].append(e)
    by_class: dict[int, list[str]] = defaultdict(list)
    for sid in sorted(groups):
        labels = [e["label"] for e in groups[sid]]
        by_class[max(set(labels), key=labels.count)].append(sid)
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict]] = {"training": [], **{s: [] for s in fractions}}
    for c in sorted(by_class):
        sids = [by_class[c][j] for j in rng.permutation(len(by_class[c]))]
        start = 0
        for section, frac in fractions.items():
            n = int(round(frac * len(sids)))
            for sid in sids[start : start + n]:
                out[section] += groups[sid]
            start += n
        for sid in sids[start:]:
            out["training"] += groups[sid]
    return out


def drop_identical_across_splits(
    sections: dict[str, list[dict]], image_key: str = "image", order: Sequence[str] = _SECTIONS
) -> dict[str, list[str]]:
    """Remove from each later section (``order``) every entry whose file content equals a file of an earlier one
    (a duplicate in the test set of a training image is a leak). Returns the dropped paths per section."""
    seen: set[str] = set()
    dropped: dict[str, list[str]] = {}
    for section in order:
        keep, gone = [], []
        for e in sections.get(section, []):
            h = file_sha256(e[image_key])
            (gone if h in seen and section != order[0] else keep).append(e)
        seen |= {file_sha256(e[image_key]) for e in keep}
        if section in sections:
            sections[section] = keep
        if gone:
            dropped[section] = [e[image_key] for e in gone]
    return dropped


def prepare_labelled_datalist(
    out_json: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    labels_csv: str | os.PathLike | None = None,
    image_key: str = "image",
    label_key: str = "label",
    subject_key: str | None = None,
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    extra_keys: Sequence[str] = (),
) -> str:
    """
    Write the checked labelled datalist ``out_json`` and return its path.

    Sections ``training``, ``validation`` (when ``val_fraction`` > 0) and ``test``: the user's own sections when
    the JSON has a ``test`` section (validation is then split from training when it has none), else a split by
    ``subject_key`` (stratified, seeded). Entries are ``{"image": absolute path, "label": int, "class": name,
    "subject": id}`` plus ``extra_keys``. Also ``classes`` (names in label order), ``dropped`` (content-identical
    files removed from later splits) and ``params`` (what the split depends on, ``split_level``).

    Raises:
        ValueError: bad fractions, an unknown class, or a split that would leave a class empty (the split, class and
            the counts are named). KeyError / FileNotFoundError: a missing column, subject id or image (named).
    """
    for name, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= v < 1:
            raise ValueError(f"{name} must be in [0, 1), got {v}.")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}.")
    entries, given = read_labelled_entries(datalist, folder, labels_csv, image_key)
    names = _labels(entries, label_key, class_names)
    if given is not None:
        sections = {s: v for s, v in given.items() if v}
        if subject_key is not None:
            for e in entries:
                if e.get(subject_key) in (None, ""):
                    raise KeyError(f"{e['_origin']}: no subject id {subject_key!r}.")
                e["subject"] = str(e[subject_key])
        if "validation" not in sections and val_fraction > 0:
            frac = {"validation": val_fraction}  # of the given training section
            sections = {**split_by_subject(sections["training"], subject_key, frac, seed), "test": sections["test"]}
        overlap = (
            {e["subject"] for e in sections.get("training", [])} & {e["subject"] for e in sections["test"]}
            if subject_key is not None
            else set()
        )
        if overlap:
            raise ValueError(
                f"datalist {datalist}: subject(s) {sorted(overlap)[:5]} appear in both 'training' and 'test': a "
                "patient's images must stay in one split (remove the test section to let the pipeline split by "
                f"{subject_key!r})."
            )
    else:
        frac = {k: v for k, v in (("validation", val_fraction), ("test", test_fraction)) if v > 0}
        sections = split_by_subject(entries, subject_key, frac, seed)
    dropped = drop_identical_across_splits(sections, image_key)
    source = str(Path(datalist or labels_csv).resolve())  # type: ignore[arg-type]
    for section in ("training", "test"):
        present = {e["label"] for e in sections.get(section, [])}
        missing = [n for i, n in enumerate(names) if i not in present]
        if missing:
            counts = {s: len(v) for s, v in sections.items()}
            raise ValueError(
                f"{source}: the {section!r} split would have no image of class(es) {missing} (split sizes {counts}, "
                f"{len({e.get('subject') for e in entries})} subjects). Add images of that class, change "
                "test_fraction, or drop the class from class_names."
            )
    # "subject" only when the data has subject ids (image-level split ids mean nothing); every section then has the
    # same keys, which MONAI's collate needs when a probe batches images of two sections together
    keep = ("label", "class", *(("subject",) if subject_key is not None else ()), *extra_keys)

    def clean(e: dict) -> dict:
        return {"image": str(Path(e[image_key]).resolve()), **{k: e[k] for k in keep if k in e}}

    out = {s: [clean(e) for e in sections[s]] for s in _SECTIONS if s in sections}
    return write_datalist(
        out_json,
        {
            **out,
            "classes": names,
            "dropped": {"identical_to_earlier_split": dropped},
            "params": {
                "source": source,
                "split_level": "subject" if subject_key else "image",
                "subject_key": subject_key,
                "split": "given" if given is not None else "seeded",
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
                "seed": seed,
            },
        },
    )
