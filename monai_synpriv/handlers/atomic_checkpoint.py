"""MONAI's ``CheckpointSaver`` with atomic writes: a kill mid-save never leaves a truncated checkpoint behind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.handlers import CheckpointSaver
from monai.utils import IgniteInfo, min_version, optional_import

from ..utils.io import atomic_path

BaseSaveHandler, _ = optional_import(
    "ignite.handlers.checkpoint", IgniteInfo.OPT_IMPORT_VERSION, min_version, "BaseSaveHandler"
)
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

__all__ = ["AtomicCheckpointSaver", "AtomicDiskSaver"]


class AtomicDiskSaver(BaseSaveHandler):
    """
    An ignite save handler that writes each checkpoint to a temporary file in the same folder, flushes it to disk and
    renames it onto its final name (:func:`monai_synpriv.utils.atomic_path`), on rank 0 only. A process killed while
    saving leaves the previous checkpoint intact and, at worst, a hidden temporary file (``.<name>.<random>.pt``)
    that checkpoint discovery ignores and the next start-up deletes
    (:func:`monai_synpriv.utils.find_latest_checkpoint`, the bundles' ``resume_ckpt``).

    Why not ``ignite.handlers.DiskSaver(atomic=True)``: ignite 0.5.5's also writes to a temporary file and renames it,
    but never calls ``fsync`` (a power loss after the rename can leave an empty checkpoint), cannot keep a fixed
    file name such as ``model.pt``, raises on ``remove`` of a file that is already gone, and by default refuses a
    folder that already holds ``.pt`` files (``require_empty``), which is every resume.

    Args:
        dirname: folder of the checkpoints (created if needed).
        filename: a fixed file name (e.g. ``model.pt``) instead of the name ignite proposes.
        architecture: written beside every file saved, as ``<stem>.network.json``
            (:func:`monai_synpriv.utils.write_architecture`), so that the record always describes the weights next
            to it, whether they were saved at the end of training or when it stopped on an error.
    """

    def __init__(
        self, dirname: str | os.PathLike, filename: str | None = None, architecture: Mapping[str, Any] | None = None
    ) -> None:
        self.dirname = Path(dirname)
        self.dirname.mkdir(parents=True, exist_ok=True)
        self.filename = filename
        self.architecture = dict(architecture) if architecture is not None else None

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != 0:
            return
        path = self.dirname / (self.filename or filename)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
        if self.architecture is not None:
            from ..utils.weights import write_architecture

            write_architecture(path, self.architecture)

    def remove(self, filename: str) -> None:
        if idist.get_rank() == 0:
            (self.dirname / (self.filename or filename)).unlink(missing_ok=True)


class AtomicCheckpointSaver(CheckpointSaver):
    """
    :class:`monai.handlers.CheckpointSaver` (same arguments, same file names, same resume behaviour through
    ``CheckpointLoader``) whose files are written atomically by :class:`AtomicDiskSaver`. MONAI's own saver writes in
    place, so a kill during ``torch.save`` can leave a truncated ``checkpoint_epoch=N.pt`` that a resume would then
    fail to load.

    Args:
        save_dir, save_dict, args, kwargs: those of :class:`monai.handlers.CheckpointSaver`.
        architecture: the config keys that define the saved network and their values (e.g. ``{"depth": 18}``),
            written beside the final file (at the end of training, or when it stops on an error) as
            ``<final stem>.network.json`` (:func:`monai_synpriv.utils.write_architecture`) so that inference can refuse weights of another architecture by name (:func:`monai_synpriv.utils.check_architecture`).
    """

    def __init__(
        self, save_dir: str, save_dict: dict, *args: Any, architecture: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        # created here, race-free: under torchrun every rank builds the saver and ignite's mkdir is not exist_ok
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(save_dir, save_dict, *args, **kwargs)
        for ckpt in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if ckpt is not None:
                fixed = getattr(ckpt.save_handler, "filename", None)
                record = architecture if ckpt is self._final_checkpoint else None
                ckpt.save_handler = AtomicDiskSaver(self.save_dir, filename=fixed, architecture=record)
