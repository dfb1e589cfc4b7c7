"""Finding checkpoints to resume from."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["find_latest_checkpoint"]

_EPOCH = re.compile(r"epoch=(\d+)")


def find_latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> str | None:
    """The checkpoint of the highest epoch in ``ckpt_dir`` written by MONAI's ``CheckpointSaver``
    (``<prefix>_epoch=N.pt``), or None when there is none."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return None
    found = []
    for p in d.glob(f"{prefix}*.pt"):
        m = _EPOCH.search(p.name)
        if m:
            found.append((int(m.group(1)), str(p)))
    return max(found)[1] if found else None
