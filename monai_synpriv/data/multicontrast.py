"""The public multi-contrast brain MRI set (BraTS 2023 / TCGA-LGG, 4 subjects x {t1n, t1c, t2w, t2f}).

Layout: ``<dataset_dir>/<subject>/{t1n,t1c,t2w,t2f}.nii.gz``, voxel-aligned within a subject. See ``docs/data.md``
for where it comes from. These helpers build *subject-split* datalists for translation between two contrasts:
training subjects give unpaired A and B lists, held-out subjects give aligned (A, B) pairs for scoring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm.auto import tqdm

from .datalist import write_datalist
from .slices import load_normalized_volume, save_slice, select_slices

__all__ = [
    "authentic_pairs_datalist",
    "CONTRASTS",
    "list_subjects",
    "split_subjects",
    "multicontrast_volume_datalist",
    "prepare_multicontrast_slices",
]

CONTRASTS = ("t1n", "t1c", "t2w", "t2f")


def list_subjects(dataset_dir: str | os.PathLike, contrasts: tuple[str, ...] = CONTRASTS) -> list[str]:
    """Subjects (sorted folder names) that have every one of ``contrasts``.

    Raises:
        FileNotFoundError: the folder is missing or holds no complete subject.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"multi-contrast MRI folder {root} not found; expected <subject>/{{{','.join(contrasts)}}}.nii.gz "
            "(see docs/data.md), or set dataset_dir in the config."
        )
    subjects = sorted(
        d.name for d in root.iterdir() if d.is_dir() and all((d / f"{c}.nii.gz").is_file() for c in contrasts)
    )
    if not subjects:
        raise FileNotFoundError(f"{root} holds no subject folder with all of {contrasts} as <contrast>.nii.gz.")
    return subjects


def split_subjects(
    subjects: list[str], heldout: list[str] | None = None, n_heldout: int = 1, require_train: bool = True
):
    """Split by subject: ``heldout`` names them, else the last ``n_heldout`` in sorted order are held out.

    ``require_train=False`` (inference and scoring, which only read the held-out pairs) lets every subject be held
    out, e.g. the one new subject of a user's own folder."""
    spare = 1 if require_train else 0
    if heldout:
        unknown = sorted(set(heldout) - set(subjects))
        if unknown:
            raise ValueError(f"held-out subject(s) {unknown} not in the dataset (subjects: {subjects}).")
        train = [s for s in subjects if s not in heldout]
        test = [s for s in subjects if s in heldout]
    else:
        if not 0 < n_heldout <= len(subjects) - spare:
            raise ValueError(
                f"n_heldout must be between 1 and {len(subjects) - spare} for the {len(subjects)} subject(s) "
                f"{subjects}, got {n_heldout}."
            )
        train, test = subjects[:-n_heldout], subjects[-n_heldout:]
    if not train and require_train:
        raise ValueError(
            f"no training subject left after holding out {test}: hold out fewer subjects (training needs at least one)."
        )
    return train, test


def multicontrast_volume_datalist(
    dataset_dir: str | os.PathLike,
    contrast_a: str = "t1c",
    contrast_b: str = "t2f",
    heldout: list[str] | None = None,
    n_heldout: int = 1,
    key_a: str = "A",
    key_b: str = "B",
    require_train: bool = True,
) -> dict[str, list[dict]]:
    """Volume-level datalist (3D translation): ``training_a``/``training_b`` from the training subjects (used
    unpaired), ``validation`` = aligned pairs of the held-out subjects (``require_train``: see
    :func:`split_subjects`)."""
    for c in (contrast_a, contrast_b):
        if c not in CONTRASTS:
            raise ValueError(f"unknown contrast {c!r}; choose from {CONTRASTS}.")
    root = Path(dataset_dir)
    train, test = split_subjects(list_subjects(root, (contrast_a, contrast_b)), heldout, n_heldout, require_train)

    def path(s: str, c: str) -> str:
        return str(root / s / f"{c}.nii.gz")

    return {
        "training_a": [{key_a: path(s, contrast_a), "subject": s} for s in train],
        "training_b": [{key_b: path(s, contrast_b), "subject": s} for s in train],
        "validation": [{key_a: path(s, contrast_a), key_b: path(s, contrast_b), "subject": s} for s in test],
    }


def prepare_multicontrast_slices(
    dataset_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    contrast_a: str = "t1c",
    contrast_b: str = "t2f",
    heldout: list[str] | None = None,
    n_heldout: int = 1,
    axis: int = 2,
    min_foreground: float = 0.1,
    key_a: str = "A",
    key_b: str = "B",
    require_train: bool = True,
) -> str:
    """
    Build the 2D translation datalist from the multi-contrast volumes and return its path.

    Every volume is reoriented to RAS, clipped at 0 and normalised per volume (foreground 0.5-99.5 percentiles to
    [0, 1]); axial slices (``axis=2``) where both contrasts have at least ``min_foreground`` brain are written as 2D
    NIfTI under ``cache_dir``. The datalist has ``training_a`` and ``training_b`` (training subjects, used unpaired),
    ``validation`` (aligned pairs of the held-out subjects, never seen in training) and ``params``; paths are relative
    to the JSON (read it with :func:`load_image_list` / :func:`load_datalist_section`). A second call with the same
    parameters reuses the cache. ``require_train=False`` (what inference and scoring pass) allows holding out every
    subject, e.g. to score one new subject (:func:`split_subjects`).
    """
    cache = Path(cache_dir)
    out_json = cache / f"translation_{contrast_a}_to_{contrast_b}_axis{axis}.json"
    root = Path(dataset_dir)
    subjects = list_subjects(root, (contrast_a, contrast_b))
    train, test = split_subjects(subjects, heldout, n_heldout, require_train)
    params = {
        "dataset_dir": str(root.resolve()),
        "contrast_a": contrast_a,
        "contrast_b": contrast_b,
        "train_subjects": train,
        "heldout_subjects": test,
        "axis": axis,
        "min_foreground": min_foreground,
        "key_a": key_a,
        "key_b": key_b,
        "normalisation": "RAS; clip<0; foreground percentiles 0.5-99.5 -> [0,1] per volume",
    }
    if out_json.is_file():
        try:
            if json.loads(out_json.read_text())["params"] == params:
                return str(out_json)
        except (KeyError, ValueError, TypeError):
            pass  # stale or foreign file: rebuild
    sections: dict = {"training_a": [], "training_b": [], "validation": [], "params": params}
    for subject in tqdm(subjects, desc="slicing volumes"):
        vol_a = load_normalized_volume(root / subject / f"{contrast_a}.nii.gz")
        vol_b = load_normalized_volume(root / subject / f"{contrast_b}.nii.gz")
        if vol_a.shape != vol_b.shape:
            raise ValueError(
                f"subject {subject}: {root / subject / f'{contrast_a}.nii.gz'} {tuple(vol_a.shape)} and "
                f"{root / subject / f'{contrast_b}.nii.gz'} {tuple(vol_b.shape)} are not voxel-aligned, so their "
                "slices cannot be paired by index. Resample the second onto the first's grid (e.g. "
                "monai_synpriv.transforms.MatchPairGridd, or register them) before slicing, or train on the volumes "
                "(the 3D configs resample pairs by their affines)."
            )
        for idx in select_slices([vol_a, vol_b], axis=axis, min_foreground=min_foreground):
            pa = save_slice(vol_a, idx, cache / subject / contrast_a / f"{subject}_{contrast_a}_{idx:03d}.nii.gz", axis)
            pb = save_slice(vol_b, idx, cache / subject / contrast_b / f"{subject}_{contrast_b}_{idx:03d}.nii.gz", axis)
            pa, pb = os.path.relpath(pa, cache), os.path.relpath(pb, cache)  # portable: relative to the JSON
            if subject in train:
                sections["training_a"].append({key_a: pa, "subject": subject, "slice": idx})
                sections["training_b"].append({key_b: pb, "subject": subject, "slice": idx})
            else:
                sections["validation"].append({key_a: pa, key_b: pb, "subject": subject, "slice": idx})
    return write_datalist(out_json, sections)


def authentic_pairs_datalist(
    prepared_datalist: str | os.PathLike,
    out_path: str | os.PathLike,
    section: str = "training",
    primary_key: str = "image",
    privileged_key: str = "privileged",
) -> str:
    """Turn the slice datalist of :func:`prepare_multicontrast_slices` into a *paired* datalist of real
    (primary, privileged) slices of the training subjects, in the format the translator's inference writes
    (``{"training": [{"image", "privileged", "subject", "slice"}]}``): the "authentic pairs" arm of the
    synthetic-privileged-information experiment. Held-out subjects are not included. Returns the path."""
    from .datalist import load_image_list, pair_datalists

    src = Path(prepared_datalist)
    params = json.loads(src.read_text())["params"]
    a = load_image_list(src, key=primary_key, section="training_a", source_key=params["key_a"])
    b = load_image_list(src, key=privileged_key, section="training_b", source_key=params["key_b"])
    pairs = pair_datalists(a, b, on=("subject", "slice"))
    for p in pairs:  # absolute: the new JSON lives elsewhere than the slice datalist
        p[primary_key], p[privileged_key] = os.path.abspath(p[primary_key]), os.path.abspath(p[privileged_key])
    return write_datalist(
        out_path,
        {
            section: pairs,
            "keys": {"primary": primary_key, "privileged": privileged_key},
            "source": str(src),
            "params": params,
        },
    )
