"""Atomic file writing: a reader never sees a half-written file, a crash never destroys the previous one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "require_file", "sha256_file", "write_json_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path`` (same suffixes, so writers pick the right format); on success it is
    renamed onto ``path`` (atomic on POSIX), on failure it is removed and ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600: give the file the permissions a plain open() would
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on disk before it replaces the previous version
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int = 2) -> str:
    """Write ``data`` as JSON to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, default=str)
            f.write("\n")
    return str(path)


def require_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return ``path`` if it is a file, else raise ``FileNotFoundError`` naming ``what`` and the path."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return str(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (identifies a checkpoint in provenance records)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
