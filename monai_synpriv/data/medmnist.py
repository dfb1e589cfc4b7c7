"""MedMNIST arrays (``.npz`` with ``train_images``, ``train_labels``, ``val_*``, ``test_*``) as image files and a
datalist, so that MONAI readers and the bundles treat them like any user data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..utils.io import atomic_path
from .datalist import write_datalist

__all__ = ["prepare_medmnist"]

_SECTIONS = {"train": "training", "val": "validation", "test": "test"}


def prepare_medmnist(npz_path: str | os.PathLike, cache_dir: str | os.PathLike) -> str:
    """Write every image of a MedMNIST ``.npz`` (2D or 3D, 8-bit) as a float NIfTI in [0, 1] under ``cache_dir`` and
    return a datalist JSON with ``training``/``validation``/``test`` sections of ``{"image", "label"}`` (the official
    splits). A second call reuses the files.

    Raises:
        FileNotFoundError: the file is missing. KeyError: it lacks a MedMNIST key.
    """
    src = Path(npz_path)
    if not src.is_file():
        raise FileNotFoundError(f"MedMNIST file not found: {src} (see docs/data.md).")
    cache = Path(cache_dir)
    out_json = cache / f"{src.stem}_datalist.json"
    params = {"source": str(src.resolve()), "size": src.stat().st_size}
    if out_json.is_file() and json.loads(out_json.read_text()).get("params") == params:
        return str(out_json)
    data = np.load(src)
    sections: dict = {"params": params}
    for split, section in _SECTIONS.items():
        for key in (f"{split}_images", f"{split}_labels"):
            if key not in data:
                raise KeyError(f"{src} has no {key!r}: not a MedMNIST file (keys: {sorted(data.keys())}).")
        images, labels = data[f"{split}_images"], data[f"{split}_labels"].reshape(len(data[f"{split}_images"]), -1)
        entries = []
        for i, (img, lab) in enumerate(zip(images, labels)):
            path = cache / src.stem / split / f"{split}_{i:05d}.nii.gz"
            if not path.is_file():
                with atomic_path(path) as tmp:
                    nib.save(nib.Nifti1Image(img.astype(np.float32) / 255.0, np.eye(4)), tmp)
            entries.append({"image": os.path.relpath(path, cache), "label": int(lab[0])})
        sections[section] = entries
    sections["classes"] = [str(c) for c in sorted({e["label"] for e in sections["training"]})]
    return write_datalist(out_json, sections)
