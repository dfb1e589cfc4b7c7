"""Where the pipeline's data comes from: the ``data`` section of a profile, turned into four checked datalists.

Every stage after ``prepare`` reads only these files, under ``<output>/cache/datalists/``:

- ``downstream.json``: the labelled primary-modality images (``training``/``validation``/``test``, split by subject,
  content-identical files across splits dropped; :func:`monai_synpriv.data.prepare_labelled_datalist`);
- ``privileged.json``: unpaired images of the privileged modality (``training``), for the translator;
- ``authentic_pairs.json`` (optional): aligned (primary, privileged) pairs (``training``), for the authentic arms;
- ``paired_evaluation.json`` (optional): aligned pairs held out for scoring the translator (``validation``, keys
  ``A``/``B``).

Two sources write them. **User data** (a hospital's own): a ``data`` section with ``downstream`` (required) and
``privileged`` (required), ``authentic_pairs`` and ``paired_evaluation`` (optional). **The public sets** shipped
beside the repository (no ``downstream`` key: the quick/full/tiny profiles) are one adapter that exports the
brain-tumour set and the multi-contrast MRI into exactly the same datalists, through the same code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..data import (
    authentic_pairs_datalist,
    load_image_list,
    prepare_brain_tumor_mri,
    prepare_labelled_datalist,
    prepare_multicontrast_slices,
    write_datalist,
)

__all__ = [
    "DATA_KEYS",
    "USER_SECTIONS",
    "check_data_section",
    "data_source",
    "prepare_data",
    "source_paths",
]

#: keys of a profile's ``data`` section, either source
COMMON_KEYS = {"contrast_a": "name of the primary modality", "contrast_b": "name of the privileged modality",
               "max_downstream": "keep this many downstream training images (evenly spaced; None: all)"}
#: the public-set adapter's keys (paths relative to the data root)
PUBLIC_KEYS = {"multicontrast_dir": "mri_brain_multicontrast", "downstream_dir": "brain_tumor_mri_4class"}
#: the user-data sections and the keys each accepts
USER_SECTIONS: dict[str, dict[str, str]] = {
    "downstream": {
        "datalist": "labelled images: a JSON (training/validation/test sections, or a list) or a CSV",
        "folder": "instead of datalist: a folder of images, with labels_csv",
        "labels_csv": "with folder: a CSV whose image column is relative to the folder",
        "image_key": "image path column/key (default image)",
        "label_key": "label column/key (default label): class names or integers",
        "subject_key": "subject/patient id column/key used for every split (default: none, split by image)",
        "class_names": "class names in label order (default: read from the data)",
        "val_fraction": "fraction of subjects for validation (default 0.1)",
        "test_fraction": "fraction of subjects for test (default 0.2; ignored when the JSON has a test section)",
        "seed": "split seed (default 0)",
    },
    "privileged": {
        "datalist": "unpaired privileged-modality images: a datalist JSON",
        "folder": "or a folder (every image below it)",
        "section": "datalist section (default training)",
        "image_key": "image key (default image)",
    },
    "authentic_pairs": {
        "datalist": "aligned (primary, privileged) pairs: a datalist JSON",
        "section": "datalist section (default training)",
        "image_key": "primary image key (default image)",
        "privileged_key": "privileged image key (default privileged)",
    },
    "paired_evaluation": {
        "datalist": "aligned pairs held out for translator scoring: a datalist JSON",
        "section": "datalist section (default validation)",
        "image_key": "primary image key (default image)",
        "privileged_key": "privileged image key (default privileged)",
    },
}
DATA_KEYS = {**COMMON_KEYS, **PUBLIC_KEYS, **{k: "see USER_SECTIONS" for k in USER_SECTIONS}}
_COMMON_DEFAULTS = {"contrast_a": "t1c", "contrast_b": "t2w", "max_downstream": None}


def data_source(data: dict[str, Any]) -> str:
    """``"user"`` when the section describes the user's data (it has ``downstream``), else ``"public"``."""
    return "user" if "downstream" in data else "public"


def check_data_section(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """Check a profile's ``data`` section and fill its defaults.

    Raises:
        ValueError: an unknown key (anywhere in it, named with its section), public and user keys mixed, a user
            section that is not a dict, or a missing required section or path.
    """
    bad = sorted(set(data) - set(DATA_KEYS))
    if bad:
        raise ValueError(f"{origin}: unknown 'data' key(s) {bad}; allowed: {sorted(DATA_KEYS)}.")
    out = {**_COMMON_DEFAULTS, **data}
    if data_source(data) == "public":
        extra = sorted(set(data) & set(USER_SECTIONS))
        if extra:
            raise ValueError(f"{origin}: 'data' has {extra} but no 'downstream': user data needs 'downstream'.")
        return {**PUBLIC_KEYS, **out}
    mixed = sorted(set(data) & set(PUBLIC_KEYS))
    if mixed:
        raise ValueError(f"{origin}: 'data' mixes the public sets' {mixed} with user sections; give one or the other.")
    if "privileged" not in data:
        raise ValueError(
            f"{origin}: 'data' needs 'privileged' (unpaired images of the privileged modality, a folder or a "
            "datalist) to train the translator."
        )
    for section, keys in USER_SECTIONS.items():
        if section not in data:
            continue
        spec = data[section]
        if not isinstance(spec, dict):
            raise ValueError(f"{origin}: data.{section} must be a dict, got {spec!r}.")
        unknown = sorted(set(spec) - set(keys))
        if unknown:
            raise ValueError(f"{origin}: unknown key(s) {unknown} in data.{section}; allowed: {sorted(keys)}.")
        if section == "downstream":
            if ("datalist" in spec) == ("folder" in spec) or ("folder" in spec and "labels_csv" not in spec):
                raise ValueError(
                    f"{origin}: data.downstream needs 'datalist' (JSON or CSV), or 'folder' with 'labels_csv'."
                )
        elif section == "privileged":
            if ("datalist" in spec) == ("folder" in spec):
                raise ValueError(f"{origin}: data.privileged needs one of 'datalist' or 'folder'.")
        elif "datalist" not in spec:
            raise ValueError(f"{origin}: data.{section} needs 'datalist'.")
    return out


def source_paths(data: dict[str, Any], data_root: Path) -> dict[str, Path]:
    """Every file or folder the data section names, resolved (relative paths against ``data_root``), keyed
    ``<section>.<key>``."""

    def resolve(p: str) -> Path:
        return Path(p) if os.path.isabs(p) else data_root / p

    if data_source(data) == "public":
        return {k: resolve(data[k]) for k in PUBLIC_KEYS}
    return {
        f"{s}.{k}": resolve(data[s][k])
        for s in USER_SECTIONS
        if s in data
        for k in ("datalist", "folder", "labels_csv")
        if k in data[s]
    }


def _pairs(src: Path, section: str, key_a: str, key_b: str, out_a: str, out_b: str) -> list[dict]:
    """Aligned pairs of a datalist, renamed to ``out_a``/``out_b`` (other fields kept)."""
    items = load_image_list(src, key=out_b, section=section, source_key=key_b)
    items = load_image_list(items, key=out_a, source_key=key_a)
    for i, it in enumerate(items):
        for k in (out_a, out_b):
            if not Path(it[k]).is_file():
                raise FileNotFoundError(f"datalist {src} {section}[{i}]: image {it[k]} not found.")
        it[out_a], it[out_b] = str(Path(it[out_a]).resolve()), str(Path(it[out_b]).resolve())
    return items


def _prepare_user(data: dict[str, Any], paths: dict[str, Path], out: Path) -> dict[str, str | None]:
    ds = data["downstream"]
    downstream = prepare_labelled_datalist(
        out / "downstream.json",
        datalist=paths.get("downstream.datalist"),
        folder=paths.get("downstream.folder"),
        labels_csv=paths.get("downstream.labels_csv"),
        **{k: ds[k] for k in ("image_key", "label_key", "subject_key", "class_names", "val_fraction",
                              "test_fraction", "seed") if k in ds},
    )
    pv = data["privileged"]
    src = paths.get("privileged.datalist") or paths["privileged.folder"]
    items = load_image_list(src, key="image", section=pv.get("section", "training"), source_key=pv.get("image_key",
                                                                                                       "image"))
    for i, it in enumerate(items):
        if not Path(it["image"]).is_file():
            raise FileNotFoundError(f"privileged images {src} entry {i}: {it['image']} not found.")
        it["image"] = str(Path(it["image"]).resolve())
    privileged = write_datalist(out / "privileged.json", {"training": items, "params": {"source": str(src)}})
    result: dict[str, str | None] = {"downstream": downstream, "privileged": privileged}
    for name, section, out_keys, default_section in (
        ("authentic_pairs", "training", ("image", "privileged"), "training"),
        ("paired_evaluation", "validation", ("A", "B"), "validation"),
    ):
        spec = data.get(name)
        if spec is None:
            result[name] = None
            continue
        src = paths[f"{name}.datalist"]
        pairs = _pairs(src, spec.get("section", default_section), spec.get("image_key", "image"),
                       spec.get("privileged_key", "privileged"), *out_keys)
        result[name] = write_datalist(out / f"{name}.json", {section: pairs, "params": {"source": str(src)}})
    return result


def _prepare_public(data: dict[str, Any], paths: dict[str, Path], cache: Path, out: Path) -> dict[str, str | None]:
    """The shipped public sets, exported as user data would be and read by the same code."""
    # the brain-tumour set's official Training/Testing split, as a datalist JSON with a test section; validation,
    # labels and leak removal (by content) are then the user path's
    official = prepare_brain_tumor_mri(paths["downstream_dir"], cache / "brain_tumor_mri", val_fraction=0.0,
                                       drop_leaked=False)
    classes = json.loads(Path(official).read_text())["classes"]
    downstream = prepare_labelled_datalist(
        out / "downstream.json", datalist=official, label_key="class", class_names=classes, val_fraction=0.1
    )
    slices = Path(prepare_multicontrast_slices(paths["multicontrast_dir"], cache, contrast_a=data["contrast_a"],
                                               contrast_b=data["contrast_b"]))
    privileged = [
        {"image": str(Path(it["image"]).resolve()), "subject": it["subject"], "slice": it["slice"]}
        for it in load_image_list(slices, key="image", section="training_b", source_key="B")
    ]
    authentic = authentic_pairs_datalist(slices, cache / f"authentic_pairs_{data['contrast_a']}_{data['contrast_b']}.json")
    return {
        "downstream": downstream,
        "privileged": write_datalist(out / "privileged.json", {"training": privileged, "params": {"source": str(slices)}}),
        "authentic_pairs": write_datalist(
            out / "authentic_pairs.json",
            {"training": _pairs(Path(authentic), "training", "image", "privileged", "image", "privileged"),
             "params": {"source": authentic}},
        ),
        "paired_evaluation": write_datalist(
            out / "paired_evaluation.json",
            {"validation": _pairs(slices, "validation", "A", "B", "A", "B"), "params": {"source": str(slices)}},
        ),
    }


def prepare_data(data: dict[str, Any], data_root: Path, cache: Path) -> dict[str, str | None]:
    """Write the four datalists under ``cache/datalists`` (None for an optional one that is not given) and return
    their paths."""
    paths = source_paths(data, data_root)
    out = cache / "datalists"
    if data_source(data) == "user":
        return _prepare_user(data, paths, out)
    return _prepare_public(data, paths, cache, out)
