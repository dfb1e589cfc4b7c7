"""The public 4-class brain-tumour MRI set (Kaggle "Brain Tumor MRI Dataset"): the downstream labelled task.

Layout: ``<dataset_dir>/brain_tumor_mri_224.tar`` (``Training|Testing/<class>/*.jpg``, 224 px JPEG, mixed grey and
RGB) and ``index.csv`` (split, label, path, md5, ..., ``identical_in_other_split``). 216 Testing files are
byte-identical to Training files: they are dropped here so that the test split is honest. The set carries no patient
identifiers, so a patient-level split is impossible; exact duplicates across splits are the leakage that can be
removed (documented in ``docs/data.md``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np

from .datalist import write_datalist

__all__ = ["BRAIN_TUMOR_CLASSES", "prepare_brain_tumor_mri"]

BRAIN_TUMOR_CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _extract(tar_path: Path, dest: Path) -> None:
    """Extract the JPEGs once; the folder appears only when complete (extracted beside it, then renamed)."""
    if dest.is_dir():
        return
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tar_path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg", ".png"))]
        for m in members:
            if os.path.isabs(m.name) or ".." in Path(m.name).parts:
                raise ValueError(f"{tar_path}: refusing the unsafe member path {m.name!r}.")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(tmp, members=members, filter="data")
        else:
            tar.extractall(tmp, members=members)
    os.replace(tmp, dest)


def prepare_brain_tumor_mri(
    dataset_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    val_fraction: float = 0.1,
    seed: int = 0,
    drop_leaked: bool = True,
) -> str:
    """
    Build the labelled datalist of the brain-tumour set and return its path.

    Sections: ``training`` and ``validation`` (a stratified, seeded split of the official Training folder),
    ``test`` (the official Testing folder without the files identical to a Training file when ``drop_leaked``),
    ``classes``, ``params`` and ``dropped``. Entries are ``{"image": path, "label": int, "class": name}`` with paths
    relative to the JSON. Images are extracted once under ``cache_dir/images``.

    Raises:
        FileNotFoundError: the tar or the index is missing.
    """
    root, cache = Path(dataset_dir), Path(cache_dir)
    tar_path, index_path = root / "brain_tumor_mri_224.tar", root / "index.csv"
    for p in (tar_path, index_path):
        if not p.is_file():
            raise FileNotFoundError(f"brain-tumour MRI set incomplete: {p} not found (see docs/data.md).")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    params = {
        "dataset_dir": str(root.resolve()),
        "val_fraction": val_fraction,
        "seed": seed,
        "drop_leaked": drop_leaked,
    }
    out_json = cache / "brain_tumor_mri_datalist.json"
    if out_json.is_file():
        try:
            if json.loads(out_json.read_text())["params"] == params:
                return str(out_json)
        except (KeyError, ValueError):
            pass
    _extract(tar_path, cache / "images")
    with open(index_path, newline="") as f:
        rows = list(csv.DictReader(f))
    label_of = {c: i for i, c in enumerate(BRAIN_TUMOR_CLASSES)}
    train, test, dropped = [], [], []
    for row in rows:
        if row["label"] not in label_of:
            raise ValueError(f"{index_path}: unknown class {row['label']!r} for {row['path']}.")
        entry = {"image": os.path.join("images", row["path"]), "label": label_of[row["label"]], "class": row["label"]}
        if not (cache / entry["image"]).is_file():
            raise FileNotFoundError(f"{row['path']} is listed in {index_path} but not in {tar_path}.")
        if row["split"] == "Testing":
            if drop_leaked and row["identical_in_other_split"] == "1":
                dropped.append(row["path"])
            else:
                test.append(entry)
        else:
            train.append(entry)
    rng = np.random.default_rng(seed)
    training, validation = [], []
    for c in range(len(BRAIN_TUMOR_CLASSES)):  # stratified
        members = [e for e in train if e["label"] == c]
        order = rng.permutation(len(members))
        n_val = int(round(val_fraction * len(members)))
        validation += [members[i] for i in order[:n_val]]
        training += [members[i] for i in order[n_val:]]
    return write_datalist(
        out_json,
        {
            "training": training,
            "validation": validation,
            "test": test,
            "classes": list(BRAIN_TUMOR_CLASSES),
            "dropped": {"identical_to_training": dropped},
            "params": params,
        },
    )
