"""One translator checkpoint per output folder: a provenance manifest, a lock against concurrent runs."""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils.io import FolderLock, remove_atomic_leftovers, sha256_file, write_json_atomic

__all__ = ["LOCK_FILE", "MANIFEST", "acquire_output_lock", "check_provenance", "release_output_lock"]

logger = logging.getLogger(__name__)

#: the provenance record of an output folder (also marks it as an output folder for folder listings:
#: :data:`monai_synpriv.data.datalist.OUTPUT_FOLDER_MARKERS`)
MANIFEST = "translator_manifest.json"
#: the lock file of a run writing into an output folder (hidden: folder listings skip it)
LOCK_FILE = ".translator.lock"
#: the paired datalist's default name inside the output folder (``paired_datalist_path`` of inference.json)
DATALIST = "paired_datalist.json"
_EXAMPLES = 3

#: the locks this process holds, by output folder
_LOCKS: dict[str, FolderLock] = {}


def _key(output_dir: str | os.PathLike) -> str:
    return os.path.abspath(output_dir)


def acquire_output_lock(output_dir: str | os.PathLike, purpose: str = "") -> FolderLock:
    """
    Lock ``output_dir`` (``<output_dir>/.translator.lock``: :class:`monai_synpriv.utils.io.FolderLock`) for this
    process until :func:`release_output_lock` or the interpreter's exit. Re-entrant within the process: a run that
    failed in this process and is started again in it keeps the lock.

    Raises:
        FolderLockedError: another live process writes into ``output_dir``.
    """
    key = _key(output_dir)
    lock = _LOCKS.get(key)
    if lock is None or not lock.held:
        lock = FolderLock(key, name=LOCK_FILE, purpose=purpose).acquire()
        _LOCKS[key] = lock
    return lock


def release_output_lock(output_dir: str | os.PathLike) -> bool:
    """Release this process's lock on ``output_dir`` (inference.json's ``finalize``); False when it held none."""
    lock = _LOCKS.pop(_key(output_dir), None)
    if lock is None or not lock.held:
        return False
    lock.release()
    return True


def _files(root: Path) -> set[str]:
    """Paths (relative to ``root``, POSIX separators) of the visible files below ``root``, but its manifest."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                found.add((Path(dirpath) / name).relative_to(root).as_posix())
    found.discard(MANIFEST)
    return found


def _inside(root: Path, path: str | os.PathLike) -> str | None:
    """``path`` relative to ``root`` (POSIX separators), None when it lies outside ``root``."""
    rel = os.path.relpath(os.path.abspath(path), root)
    return None if rel == os.curdir or rel.startswith(os.pardir) or os.path.isabs(rel) else Path(rel).as_posix()


def _examples(names: set[str]) -> str:
    shown = sorted(names)[:_EXAMPLES]
    return ", ".join(shown) + (f" and {len(names) - len(shown)} more" if len(names) > len(shown) else "")


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{path} is not a readable translator manifest ({e}): restore it, or delete the folder's outputs (or use "
            "another --output_dir) and translate again."
        ) from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a translator manifest (a JSON object): restore it, or use another output_dir.")
    return data


def _remove_empty_dirs(root: Path) -> None:
    for dirpath, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):
        if Path(dirpath) != root:
            try:
                os.rmdir(dirpath)
            except OSError:  # not empty
                pass


def check_provenance(
    output_dir: str | os.PathLike,
    checkpoint: str | os.PathLike,
    items: Sequence[Mapping[str, Any]] = (),
    output_key: str = "privileged",
    overwrite: bool = False,
    datalist: str | os.PathLike | None = None,
    lock: bool = True,
) -> dict:
    """
    Make sure that every file in ``output_dir`` comes from ``checkpoint`` (compared by SHA-256 content, not by path)
    before a run writes into it or skips the outputs it finds there, so that one folder never mixes the outputs of two
    translators. Call it before any work (inference.json's ``initialize``).

    ``output_dir/translator_manifest.json`` records the checkpoint (path and SHA-256) and every output path the runs
    with it planned (written before the first output, so a killed run is covered too). Then:

    - an empty folder (hidden files aside), or a folder whose manifest names ``checkpoint``'s content and lists all
      its files: the run goes on and translates only what is missing (idempotent re-runs, after a kill too);
    - a folder with files written by another checkpoint, or with files that no manifest accounts for: refused with a
      ``RuntimeError`` naming the folder, both checkpoints and the fix; unless ``overwrite=True``, which first deletes
      the outputs the manifest records, the planned outputs of ``items`` and the paired datalist, and then translates
      everything again (files that are none of these are never deleted: the run is refused, naming them).

    The lock (``lock=True``): ``output_dir/.translator.lock`` (pid and host of this process) is taken first and held
    until :func:`release_output_lock` (inference.json's ``finalize``) or the interpreter's exit, also after an error;
    a second run into the same folder meanwhile is refused, a lock left by a killed run is taken over. It is released
    at once when this check refuses the run. Hidden temporary files left by a killed run's atomic writes
    (:func:`monai_synpriv.utils.io.remove_atomic_leftovers`) are removed under the lock.

    Args:
        output_dir: the folder of the synthetic images (``synthetic_dir``).
        checkpoint: the translator checkpoint of this run.
        items: the planned items (:func:`plan_outputs`): ``output_key`` holds each output path.
        output_key: the key of the output path in ``items``.
        overwrite: delete the folder's old outputs first and translate everything again.
        datalist: the paired datalist this run writes (default ``output_dir/paired_datalist.json``).
        lock: take the folder's lock.

    Returns:
        the manifest written (atomically).

    Raises:
        RuntimeError: the folder holds outputs of another checkpoint, or files no manifest accounts for.
        FolderLockedError: another live process writes into the folder (a ``RuntimeError`` as well).
        ValueError: the folder's manifest is unreadable.
    """
    out = Path(_key(output_dir))
    if lock:
        acquire_output_lock(out, purpose=f"translating with {os.path.abspath(checkpoint)}")
    try:
        return _check(out, checkpoint, items, output_key, overwrite, datalist)
    except BaseException:
        if lock:
            release_output_lock(out)
        raise


def _check(
    out: Path,
    checkpoint: str | os.PathLike,
    items: Sequence[Mapping[str, Any]],
    output_key: str,
    overwrite: bool,
    datalist: str | os.PathLike | None,
) -> dict:
    digest = sha256_file(checkpoint)
    ckpt = os.path.abspath(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest(out / MANIFEST)
    planned = {rel for it in items if (rel := _inside(out, it[output_key])) is not None}
    datalist_rel = _inside(out, datalist if datalist is not None else out / DATALIST)
    bookkeeping = {datalist_rel} - {None}
    files = _files(out)
    recorded = {o for o in (previous or {}).get("outputs") or [] if isinstance(o, str)}
    same = previous is not None and previous.get("checkpoint_sha256") == digest
    known = recorded | planned | bookkeeping
    this = f"{ckpt} (sha256 {digest[:12]}...)"
    fix = "Use another --output_dir (or --synthetic_dir), or --overwrite True to delete the old outputs first."
    if same and not overwrite:
        unknown = files - known
        if unknown:
            raise RuntimeError(
                f"{out} holds {len(unknown)} file(s) that its {MANIFEST} does not list as outputs of {this}: "
                f"{_examples(unknown)}. They may come from another translator checkpoint, and a re-run would keep "
                f"them beside its own outputs. {fix}"
            )
    elif files and not overwrite:
        if previous is not None:
            old = f"{previous.get('checkpoint')} (sha256 {str(previous.get('checkpoint_sha256'))[:12]}...)"
            raise RuntimeError(
                f"{out} holds {len(files)} file(s) written by another translator checkpoint, {old}, not {this}: "
                f"translating into it would mix the outputs of two translators. {fix}"
            )
        raise RuntimeError(
            f"{out} holds {len(files)} file(s) ({_examples(files)}) but no {MANIFEST}, so which translator checkpoint "
            f"wrote them is unknown: translating {this} into it could mix the outputs of two translators. {fix}"
        )
    elif files:  # overwrite: clear the old outputs first, never a file no manifest accounts for
        unknown = files - known
        if unknown:
            raise RuntimeError(
                f"--overwrite deletes only the outputs recorded in {out / MANIFEST} and those this run plans, but "
                f"{out} also holds {len(unknown)} other file(s): {_examples(unknown)}. Move or delete them yourself, "
                "or use another --output_dir."
            )
        for rel in sorted(files):
            os.remove(out / rel)
        _remove_empty_dirs(out)
        written_by = previous.get("checkpoint") if previous else "an unrecorded checkpoint"
        logger.warning(f"overwrite: deleted {len(files)} file(s) of {written_by} from {out} before translating {ckpt}.")
    # ours (the folder is locked and its content accounted for): hidden temporary files of a killed run's writes
    remove_atomic_leftovers(out, recursive=True, what="write of an interrupted translation")
    keep = same and not overwrite
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest = {
        "checkpoint": ckpt,
        "checkpoint_sha256": digest,
        "created": previous.get("created", now) if keep and previous else now,
        "updated": now,
        "datalist": datalist_rel,
        "outputs": sorted((recorded if keep else set()) | planned),
    }
    write_json_atomic(out / MANIFEST, manifest)
    return manifest
