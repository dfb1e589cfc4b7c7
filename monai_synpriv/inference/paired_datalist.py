"""Planning translation outputs and writing the paired datalist that the SSL bundle consumes."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils.io import write_json_atomic
from .provenance import MANIFEST, check_provenance  # noqa: F401  (they lived here: old imports keep working)

__all__ = ["check_provenance", "default_output_ext", "pending_items", "plan_outputs", "write_paired_datalist"]

_NIFTI = (".nii.gz", ".nii")


def default_output_ext(path: str) -> str:
    """PNG for 2D pictures (PNG/JPEG/TIFF/BMP inputs), NIfTI for everything else (NIfTI, DICOM, MHA, NRRD)."""
    return ".png" if path.lower().endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")) else ".nii.gz"


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in _NIFTI:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def plan_outputs(
    items: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    key: str = "image",
    output_key: str = "privileged",
    output_ext: str | None = None,
    postfix: str = "",
) -> list[dict]:
    """
    Give every input item the path of its synthetic image under ``output_key``: the input's folder structure below
    the inputs' common folder is mirrored under ``output_dir`` (so equal file names in different subject folders do
    not collide), with ``postfix`` and ``output_ext`` (default: :func:`default_output_ext`).

    Raises:
        ValueError: an empty list, an item without ``key``, two inputs mapping to one output, or an input inside
            ``output_dir`` (its output would overwrite it or be read back as input).
    """
    if not items:
        raise ValueError("nothing to translate: the input datalist is empty.")
    for i, item in enumerate(items):
        if key not in item:
            raise ValueError(f"input entry {i} has no key {key!r} (keys: {sorted(item)}).")
    paths = [os.path.abspath(str(it[key])) for it in items]
    out_root = os.path.abspath(output_dir)
    inside = [p for p in paths if os.path.commonpath([p, out_root]) == out_root]
    if inside:
        raise ValueError(
            f"{len(inside)} input(s) lie inside the output folder {out_root} (e.g. {inside[0]}): the outputs would "
            "overwrite or mix with the inputs. Set output_dir (or synthetic_dir) to a folder that holds no input."
        )
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    out, seen = [], {}
    for item, path in zip(items, paths):
        rel_dir = os.path.relpath(os.path.dirname(path), root)
        ext = output_ext or default_output_ext(path)
        dest = str(Path(output_dir).absolute() / rel_dir / f"{_stem(path)}{postfix}{ext}")
        if dest in seen:
            raise ValueError(f"inputs {seen[dest]} and {path} would both be written to {dest}.")
        seen[dest] = path
        new = dict(item)
        new[key] = path
        new[output_key] = os.path.normpath(dest)
        out.append(new)
    return out


def pending_items(items: Sequence[Mapping[str, Any]], output_key: str = "privileged") -> list[dict]:
    """Items whose output file does not exist yet (a re-run translates only these)."""
    return [dict(it) for it in items if not os.path.exists(it[output_key])]


def write_paired_datalist(
    items: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    key: str = "image",
    output_key: str = "privileged",
    section: str = "training",
    translator: Mapping[str, Any] | None = None,
) -> str:
    """
    Write ``{section: [{key: primary, output_key: synthetic, ...}], "translator": {...}}`` atomically, listing
    only items whose synthetic image exists. ``translator`` records provenance: checkpoint, MLflow run id, config.

    Raises:
        RuntimeError: no synthetic image exists at all.
    """
    done = [dict(it) for it in items if os.path.exists(it[output_key])]
    if not done:
        raise RuntimeError(f"no synthetic image under {output_key!r} exists; nothing to write to {path}.")
    record = {
        section: done,
        "translator": dict(translator or {}),
        "keys": {"primary": key, "privileged": output_key},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "missing": len(items) - len(done),
    }
    return write_json_atomic(path, record)
