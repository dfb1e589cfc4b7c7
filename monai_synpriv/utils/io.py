"""Atomic file writing: a reader never sees a half-written file, a crash never destroys the previous one."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ATOMIC_TEMP_PATTERN",
    "FolderLock",
    "FolderLockedError",
    "atomic_path",
    "is_atomic_temp",
    "remove_atomic_leftovers",
    "require_file",
    "sha256_file",
    "write_json_atomic",
]

logger = logging.getLogger(__name__)

#: the name :func:`atomic_path` gives its temporary file for ``<stem>.<suffixes>``: ``.<stem>.<8 random>.<suffixes>``
#: (``tempfile.mkstemp``'s 8 characters from ``[a-z0-9_]``; ``.tmp`` when the target has no suffix)
ATOMIC_TEMP_PATTERN = re.compile(r"\.(?P<stem>[^.]+)\.(?P<random>[a-z0-9_]{8})(?P<suffix>(?:\.[^.]+)+)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path`` (same suffixes, so writers pick the right format); on success it is
    renamed onto ``path`` (atomic on POSIX), on failure it is removed and ``path`` is left untouched.

    Only a process killed while inside the block (``SIGKILL``, power loss) leaves the temporary file behind; its name
    matches :data:`ATOMIC_TEMP_PATTERN` and :func:`remove_atomic_leftovers` removes it."""
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


def is_atomic_temp(name: str, suffix: str | None = None) -> bool:
    """Whether the file name ``name`` is that of a temporary file of :func:`atomic_path` (:data:`ATOMIC_TEMP_PATTERN`),
    optionally only for targets ending with ``suffix`` (e.g. ``".pt"``)."""
    m = ATOMIC_TEMP_PATTERN.fullmatch(name)
    return m is not None and (suffix is None or m.group("suffix").endswith(suffix))


def remove_atomic_leftovers(
    folder: str | os.PathLike, suffix: str | None = None, recursive: bool = False, what: str = "atomic write"
) -> list[str]:
    """
    Remove the temporary files that :func:`atomic_path` left in ``folder`` when its process was killed mid-write
    (only names matching :data:`ATOMIC_TEMP_PATTERN`, optionally only for targets ending with ``suffix``; nothing
    else is touched), logging each removed file. Call it only when no other process writes into ``folder``: a
    temporary file of a write in progress looks the same.

    Args:
        folder: the folder to clean; a missing folder has nothing to clean.
        suffix: only temporary files of targets ending with this (e.g. ``".pt"`` for checkpoints).
        recursive: also clean the sub-folders (symbolic links to folders are not followed).
        what: what the interrupted writes were, for the log message (e.g. ``"checkpoint save"``).

    Returns:
        the removed paths, sorted.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if not recursive:
            dirnames.clear()
        found += [Path(dirpath) / n for n in filenames if is_atomic_temp(n, suffix)]
    removed = []
    for path in sorted(found):
        if path.is_symlink() or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):  # another rank/process removed it first
            size = path.stat().st_size
            path.unlink()
            removed.append(str(path))
            logger.warning(f"removed {path} ({size} bytes): temporary file of an interrupted {what}.")
    return removed


#: lock files held by :class:`FolderLock` objects of this process
_HELD: set[str] = set()


class FolderLockedError(RuntimeError):
    """Another live process holds a :class:`FolderLock` on the folder."""


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), None where unknown: a pid that a new
    process reused after the lock's owner died has another start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


class FolderLock:
    """
    An exclusive, inter-process lock on a folder: the file ``<folder>/<name>`` records the owner's pid, host, process
    start time and ``purpose``, and is locked with ``fcntl.flock``, which the operating system releases when the owner
    dies, however it dies. A lock file left by a dead owner (``SIGKILL``, power loss) is taken over, with a warning
    naming it. Where the file system has no ``flock``, the owner counts as dead when it ran on this host and its pid
    is gone (or now belongs to a process started later); the lock of another host is then never taken over.
    :meth:`release` (also called at interpreter exit, on success and on error) deletes the file.

    Within one process the lock is not re-entrant: a second :class:`FolderLock` on the same folder is refused.

    Example::

        with FolderLock(output_dir, purpose="translation with model.pt"):
            ...  # a second process on output_dir raises FolderLockedError naming this pid and host

    Args:
        folder: the folder to lock (created if needed).
        name: the lock file's name inside ``folder`` (hidden, so folder listings skip it).
        purpose: recorded in the lock file and shown to a process that is refused.
    """

    def __init__(self, folder: str | os.PathLike, name: str = ".synpriv.lock", purpose: str = "") -> None:
        self.folder = Path(folder).absolute()
        self.path = self.folder / name
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    @staticmethod
    def _read(fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
        try:
            record = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = {"unreadable": raw[:200].decode("utf-8", "replace")}
        return record if isinstance(record, dict) else {"unreadable": str(record)[:200]}

    def _describe(self, record: dict) -> str:
        if not record:
            return "another process (which has not written its pid yet)"
        if "pid" not in record:
            return f"an unknown process (lock file content: {record.get('unreadable', record)!r})"
        text = f"pid {record['pid']} on host {record.get('host', '?')} since {record.get('since', '?')}"
        return text + (f" ({record['purpose']})" if record.get("purpose") else "")

    def _refuse(self, record: dict, why: str) -> FolderLockedError:
        return FolderLockedError(
            f"{self.folder} is locked by {self._describe(record)}: {why} Wait for that run to end, or use another "
            f"folder; if no such run is going on any more, delete {self.path} and run again."
        )

    def acquire(self) -> FolderLock:
        """Take the lock (a no-op when this object holds it already).

        Raises:
            FolderLockedError: a live process (this one included, through another :class:`FolderLock`) holds it.
        """
        if self._fd is not None:
            return self
        if str(self.path) in _HELD:
            raise FolderLockedError(
                f"{self.folder} is locked already by this process (pid {os.getpid()}): release that lock first, or "
                "use another folder."
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX
            fcntl = None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                flocked = False
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        flocked = True
                    except BlockingIOError:
                        raise self._refuse(self._read(fd), "two runs must not write into one folder at once.") from None
                    except OSError as e:  # the file system has no flock (some network file systems)
                        logger.debug(f"{self.path}: no flock on this file system ({e}); using the pid and host")
                try:
                    same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same_file = False
                if not same_file:  # its owner released (deleted) it between our open and flock: lock the new one
                    os.close(fd)
                    continue
                previous = self._read(fd)
                if previous and not flocked:
                    if previous.get("host") != socket.gethostname():
                        raise self._refuse(previous, "this host cannot tell whether that run is still going.")
                    pid = previous.get("pid")
                    if not isinstance(pid, int) or pid <= 0 or _pid_alive(pid, previous.get("start")):
                        raise self._refuse(previous, "two runs must not write into one folder at once.")
                if previous:
                    logger.warning(
                        f"{self.path}: taking over the stale lock of {self._describe(previous)}, which ended without "
                        "releasing it."
                    )
                record = {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "start": _process_start(os.getpid()),
                    "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "purpose": self.purpose,
                }
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            _HELD.add(str(self.path))
            atexit.register(self.release)
            return self

    def release(self) -> None:
        """Delete the lock file and unlock (a no-op when this object does not hold the lock)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        atexit.unregister(self.release)
        _HELD.discard(str(self.path))
        try:
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:  # still ours: delete before unlocking
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
