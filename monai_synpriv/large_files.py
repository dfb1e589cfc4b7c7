"""``large_files.yml`` for a trained bundle: how model-zoo ships weights that do not live in the repository.

A bundle is shared without its weights; model-zoo's ``large_files.yml`` tells ``python -m monai.bundle
download_large_files`` where each weights file is hosted and its hash, and zoo's CI accepts a bundle whose
``models/model.pt`` is listed there. Our bundles have no hosted weights, so the file cannot ship with them; once a site
has trained a bundle and put its ``models/`` folder somewhere reachable (a web server, an object store, a shared
drive as ``file://``), :func:`write_large_files` writes the matching ``large_files.yml``::

    python -m monai_synpriv.cli large-files bundles/multimodal_ssl --url-base https://host/site/multimodal_ssl

Each listed file ``models/<name>`` is expected at ``<url-base>/models/<name>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .utils.io import atomic_path

__all__ = ["DEFAULT_LARGE_FILES", "write_large_files"]

#: the weights and the architecture record beside them (the latter listed when it exists)
DEFAULT_LARGE_FILES = ("models/model.pt", "models/model.network.json")


def _digest(path: Path, hash_type: str) -> str:
    h = hashlib.new(hash_type)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_large_files(
    bundle_dir: str | os.PathLike,
    url_base: str,
    files: Sequence[str] = DEFAULT_LARGE_FILES,
    hash_type: str = "sha256",
    name: str = "large_files.yml",
) -> Path:
    """Write ``<bundle_dir>/<name>`` listing the bundle's weights with their URL and hash (atomically).

    Args:
        bundle_dir: the trained bundle (its ``models/model.pt`` must exist).
        url_base: where the bundle's folder tree is hosted; ``models/model.pt`` is ``<url_base>/models/model.pt``.
        files: bundle-relative paths to list; ``models/model.pt`` is required, the others are listed when present.
        hash_type: ``md5``, ``sha1``, ``sha256`` or ``sha512`` (what MONAI's ``check_hash`` verifies).
        name: the file name (model-zoo looks for ``large_files.{yml,yaml,json}``).

    Returns:
        The path of the written file.

    Raises:
        FileNotFoundError: the bundle has no ``models/model.pt`` (train it first), naming the path.
        ValueError: an unsupported ``hash_type`` or an empty ``url_base``.
    """
    root = Path(bundle_dir)
    if hash_type not in ("md5", "sha1", "sha256", "sha512"):
        raise ValueError(f"hash_type must be md5, sha1, sha256 or sha512, got {hash_type!r}.")
    if not url_base:
        raise ValueError("url_base is empty: give the address where the bundle's models/ folder is hosted.")
    weights = root / "models" / "model.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: train the bundle (or copy its weights there) before listing them.")
    lines = ["# written by monai_synpriv.large_files: python -m monai.bundle download_large_files fetches these", "large_files:"]
    for rel in files:
        path = root / rel
        if not path.is_file():
            continue
        url = f"{url_base.rstrip('/')}/{rel}"
        lines += [
            f"  - path: {json.dumps(rel)}",
            f"    url: {json.dumps(url)}",
            f"    hash_val: {json.dumps(_digest(path, hash_type))}",
            f"    hash_type: {json.dumps(hash_type)}",
        ]
    out = root / name
    with atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return out
