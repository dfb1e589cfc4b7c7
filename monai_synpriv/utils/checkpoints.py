"""Finding checkpoints to resume from."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .io import remove_atomic_leftovers

__all__ = ["find_latest_checkpoint"]

_EPOCH = re.compile(r"epoch=(\d+)")


def find_latest_checkpoint(
    ckpt_dir: str | os.PathLike, prefix: str = "checkpoint", remove_leftovers: bool = True
) -> str | None:
    """
    The checkpoint of the highest epoch in ``ckpt_dir`` written by MONAI's ``CheckpointSaver``
    (``<prefix>_epoch=N.pt``), or None when there is none. The bundles' ``resume_ckpt`` calls it at start-up.

    Args:
        ckpt_dir: the checkpoint folder (missing: None).
        prefix: the checkpoint files' prefix.
        remove_leftovers: first delete the hidden temporary ``.pt`` files that a process killed while saving left
            behind (:class:`monai_synpriv.handlers.AtomicDiskSaver` writes ``.<name>.<8 random>.pt``, then renames it;
            only names of exactly that pattern are removed, each one logged), so that they do not pile up over kills
            and resumes. Call it before this run's trainer saves anything (as the bundles do).
    """
    d = Path(ckpt_dir)
    if not d.is_dir():
        return None
    if remove_leftovers:
        remove_atomic_leftovers(d, suffix=".pt", what="checkpoint save")
    found = []
    for p in d.glob(f"{prefix}*.pt"):
        m = _EPOCH.search(p.name)
        if m:
            found.append((int(m.group(1)), str(p)))
    return max(found)[1] if found else None
