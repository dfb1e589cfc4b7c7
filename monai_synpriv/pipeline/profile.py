"""Pipeline profiles (``configs/pipeline/<name>.json``): what runs, at which scale, with which bundle overrides."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..locations import profiles_dir
from .arms import get_arms
from .sources import check_data_section

__all__ = [
    "PROFILE_KEYS",
    "TRANSLATOR_CONFIGS",
    "apply_overrides",
    "default_profile_dir",
    "load_profile",
    "parse_override",
    "profile_digest",
]

#: Every key a profile may hold; sections ending in an override dict are passed to the bundle as is.
PROFILE_KEYS = {
    "description": "free text",
    "seeds": "SSL and probe seeds (one SSL run per arm and seed)",
    "arms": "arms of the experiment matrix (see monai_synpriv.pipeline.arms.ARMS)",
    "random_init_baseline": "also probe a randomly initialised encoder per seed",
    "embedding_plot_seeds": "seeds whose evaluations draw a t-SNE plot",
    "data": "the data: the user's (downstream, privileged, authentic_pairs, paired_evaluation; see "
    "monai_synpriv.pipeline.sources) or the public sets (multicontrast_dir, downstream_dir); contrast_a, contrast_b, "
    "max_downstream; paths relative to the data root or absolute",
    "translator_method": "the unpaired translator: cyclegan (train.json, the default), cut (+ train_cut.json) or "
    "fastcut (+ train_cut.json + train_fastcut.json)",
    "translator_train": "overrides of bundles/unpaired_translator/configs/train.json (and of the method's overlays)",
    "translator_net": "generator overrides shared by the translator's train, evaluate and inference configs",
    "translator_evaluate": "overrides of the translator's evaluation on the held-out multi-contrast subject",
    "synthesis": "overrides of bundles/unpaired_translator/configs/inference.json for the downstream set",
    "ssl_train": "overrides of bundles/multimodal_ssl/configs/train.json (same for every arm: the same budget)",
    "ssl_evaluate": "overrides of bundles/multimodal_ssl/configs/evaluate.json",
}

#: The translator bundle's training configs of each ``translator_method`` (later files override earlier ones).
TRANSLATOR_CONFIGS = {
    "cyclegan": ("train.json",),
    "cut": ("train.json", "train_cut.json"),
    "fastcut": ("train.json", "train_cut.json", "train_fastcut.json"),
}


def default_profile_dir() -> Path:
    """The pipeline profiles: ``configs/pipeline`` of a source checkout, the copy shipped in the package, or
    ``$SYNPRIV_PROFILES`` (:func:`monai_synpriv.locations.profiles_dir`)."""
    return profiles_dir()


def parse_override(text: str) -> tuple[str, Any]:
    """
    Parse one command-line override ``KEY=VALUE``: the value is read as JSON (``5``, ``[0, 1]``, ``null``,
    ``{"a": 1}``) and otherwise kept as a string (``data.contrast_b=t2f``).

    Raises:
        ValueError: no ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"profile override {text!r} must read KEY=VALUE, e.g. data.contrast_b=t2f or seeds=[0,1].")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def apply_overrides(profile: dict[str, Any], overrides: dict[str, Any], origin: str = "profile") -> dict[str, Any]:
    """
    Return a copy of ``profile`` with ``overrides`` set: ``"seeds"`` replaces a top-level key, ``"data.contrast_b"``
    sets ``contrast_b`` in the ``data`` section (only the first ``.`` splits, so a bundle override such as
    ``"translator_train.checkpoint_saver#n_saved"`` keeps its own key). The result is checked by :func:`load_profile`.

    Raises:
        ValueError: a key outside :data:`PROFILE_KEYS`, or a section key on a key that is not a section.
    """
    prof = copy.deepcopy(profile)
    for key, value in overrides.items():
        section, dot, sub = key.partition(".")
        if section not in PROFILE_KEYS or section == "description":
            raise ValueError(
                f"{origin}: override {key!r}: unknown key {section!r}; a profile may hold {sorted(PROFILE_KEYS)}."
            )
        if not dot:
            prof[section] = copy.deepcopy(value)
            continue
        target = prof.setdefault(section, {})
        if not isinstance(target, dict) or not sub:
            raise ValueError(
                f"{origin}: override {key!r}: {section!r} is not a section of overrides (use {section}=...)."
            )
        target[sub] = copy.deepcopy(value)
    return prof


def load_profile(profile: str | os.PathLike | dict, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    Load and check a profile: a name under ``configs/pipeline`` (``quick``, ``full``, ``tiny``), a JSON path or a
    dict. Missing optional keys get their defaults.

    Args:
        profile: the profile's name, path or content.
        overrides: keys to set before the checks (:func:`apply_overrides`), e.g. ``{"data.contrast_b": "t2f"}`` to
            make FLAIR the privileged modality. They enter the profile digest like any other value, so a run folder
            made without them is not silently reused.

    Raises:
        FileNotFoundError: no such profile (the available ones are listed).
        ValueError: an unknown key, an unknown arm, no seeds, or a section that is not a dict (the key is named).
    """
    if isinstance(profile, dict):
        prof, origin = copy.deepcopy(profile), "the given profile"
    else:
        path = Path(profile)
        if not path.suffix:
            path = default_profile_dir() / f"{profile}.json"
        if not path.is_file():
            known = sorted(p.stem for p in default_profile_dir().glob("*.json"))
            raise FileNotFoundError(f"pipeline profile {profile!r} not found ({path}); available: {known}.")
        prof, origin = json.loads(path.read_text()), str(path)
        prof.setdefault("name", path.stem)
    if overrides:
        prof = apply_overrides(prof, overrides, origin)
    unknown = sorted(set(prof) - set(PROFILE_KEYS) - {"name"})
    if unknown:
        raise ValueError(f"{origin}: unknown key(s) {unknown}; a profile may hold {sorted(PROFILE_KEYS)}.")
    seeds = prof.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"{origin}: 'seeds' must be a non-empty list of integers, got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{origin}: 'seeds' repeats a seed: {seeds}.")
    get_arms(prof.get("arms", []))
    for key in (
        "data",
        "translator_train",
        "translator_net",
        "translator_evaluate",
        "synthesis",
        "ssl_train",
        "ssl_evaluate",
    ):
        if not isinstance(prof.setdefault(key, {}), dict):
            raise ValueError(f"{origin}: {key!r} must be a dict of overrides, got {type(prof[key]).__name__}.")
    method = prof.setdefault("translator_method", "cyclegan")
    if method not in TRANSLATOR_CONFIGS:
        raise ValueError(f"{origin}: unknown 'translator_method' {method!r}; choose one of {sorted(TRANSLATOR_CONFIGS)}.")
    prof["data"] = check_data_section(prof["data"], origin)
    steps = prof["ssl_train"].get("epoch_length")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(
            f"{origin}: 'ssl_train' must set 'epoch_length' (steps per epoch, an integer >= 1), got {steps!r}: every "
            "arm then trains for max_epochs x epoch_length steps of the same batch size (the same budget), whatever "
            "the size of its pre-training set."
        )
    prof.setdefault("random_init_baseline", True)
    prof.setdefault("embedding_plot_seeds", seeds[:1])
    prof.setdefault("name", "custom")
    return prof


def profile_digest(profile: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """A short hash of everything in the profile that changes results (``description``, ``name`` and the choice of
    plotted seeds excluded), plus ``extra`` (e.g. the data paths and the bundle configs' hashes)."""
    core = {k: v for k, v in profile.items() if k not in ("description", "name", "embedding_plot_seeds")}
    core["extra"] = extra or {}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:12]
