"""MedPix 2.0 subset: real CT/MR images with their captions, as a datalist of image-text pairs with labels."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .datalist import write_datalist

__all__ = ["MEDPIX_LABELS", "MEDPIX_PLANES", "MEDPIX_SOURCE", "prepare_medpix_datalist"]

#: the integer label fields of every item (names of the values in the datalist's ``label_names``)
MEDPIX_LABELS = ("modality", "region", "plane")
#: plane classes; every other upstream plane ("Transverse", "AP", "3D Reconstruction", ...) is "Other"
MEDPIX_PLANES = ("Axial", "Coronal", "Sagittal", "Other")
MEDPIX_MODALITIES = ("CT", "MR")
MEDPIX_SOURCE = (
    "MedPix 2.0 (CHILab1/MedPix-2.0 @ d3bc4315; images from NLM Open-i MedPix), Siragusa et al., "
    "Data Science and Engineering 2025, doi:10.1007/s41019-025-00297-8; research use only"
)

_SPLITS = {"train": "training", "dev": "validation", "test": "test"}
_COLUMNS = ("image", "U_id", "split", "type", "plane", "location_category", "caption", "case_findings")


def _collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def prepare_medpix_datalist(
    root: str | os.PathLike = "../shared/data/medpix2_subset", output: str | os.PathLike | None = None
) -> dict:
    """
    Build the image-text datalist of the MedPix 2.0 subset from ``root/pairs.tsv``.

    Splits follow the upstream case-level split: ``train`` -> ``training``, ``dev`` -> ``validation``, ``test`` ->
    ``test``. Each item is ``{"image": absolute path, "text": caption (whitespace collapsed), "case": U_id,
    "modality": int, "region": int, "plane": int, "findings": case findings}``; the integers index
    ``label_names[...]`` (modality CT/MR, region = sorted ``location_category`` values, plane
    Axial/Coronal/Sagittal/Other).

    Args:
        root: the ``medpix2_subset`` folder (``pairs.tsv`` and ``images/``).
        output: if given, the datalist JSON is also written there (atomically).

    Returns:
        ``{"name", "source", "label_names", "training", "validation", "test"}``.

    Raises:
        FileNotFoundError: ``pairs.tsv`` or an image is missing (the message names the file).
        ValueError: a column is missing, a caption is empty (names the image), a split or modality is unknown, or a
            case appears in two splits (leakage between training and evaluation).
    """
    root = Path(root).resolve()
    tsv = root / "pairs.tsv"
    if not tsv.is_file():
        raise FileNotFoundError(f"MedPix pairs file not found: {tsv}")
    with open(tsv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{tsv} lacks column(s) {', '.join(missing)} (has: {', '.join(reader.fieldnames or [])}).")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{tsv} holds no rows.")

    regions = sorted({_collapse(r["location_category"]) for r in rows})
    out: dict = {
        "name": "medpix2_subset",
        "source": MEDPIX_SOURCE,
        "label_names": {"modality": list(MEDPIX_MODALITIES), "region": regions, "plane": list(MEDPIX_PLANES)},
        **{section: [] for section in _SPLITS.values()},
    }
    case_split: dict[str, str] = {}
    for line, r in enumerate(rows, start=2):
        name = (r["image"] or "").strip()
        if not name:
            raise ValueError(f"{tsv} line {line}: empty image name.")
        image = root / "images" / name
        if not image.is_file():
            raise FileNotFoundError(f"MedPix image listed in {tsv} (line {line}) not found: {image}")
        text = _collapse(r["caption"])
        if not text:
            raise ValueError(f"MedPix image {name} ({tsv} line {line}) has an empty caption.")
        split = (r["split"] or "").strip()
        if split not in _SPLITS:
            raise ValueError(f"{tsv} line {line} ({name}): unknown split {split!r} (expected {', '.join(_SPLITS)}).")
        modality = (r["type"] or "").strip()
        if modality not in MEDPIX_MODALITIES:
            raise ValueError(f"{tsv} line {line} ({name}): unknown type {modality!r} (expected CT or MR).")
        case = (r["U_id"] or "").strip()
        if not case:
            raise ValueError(f"{tsv} line {line} ({name}): empty case id (U_id).")
        if case_split.setdefault(case, split) != split:
            raise ValueError(
                f"case {case} appears in both the {case_split[case]!r} and {split!r} splits ({name}): "
                "images of one case must stay in one split."
            )
        plane = (r["plane"] or "").strip()
        out[_SPLITS[split]].append(
            {
                "image": str(image),
                "text": text,
                "case": case,
                "modality": MEDPIX_MODALITIES.index(modality),
                "region": regions.index(_collapse(r["location_category"])),
                "plane": MEDPIX_PLANES.index(plane) if plane in MEDPIX_PLANES[:3] else len(MEDPIX_PLANES) - 1,
                "findings": _collapse(r["case_findings"]),
            }
        )
    if output is not None:
        write_datalist(output, out)
    return out
