"""The pipeline's stages as data: what each one reads, writes and runs (the runner decides whether to run it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STAGES", "Stage", "stage_group"]

#: the stage groups in order (``--until`` takes one of them; ``ssl`` = every SSL training and evaluation)
STAGES = ("prepare", "translator_train", "translator_evaluate", "synthesis", "ssl", "report")


def stage_group(key: str) -> str:
    """The entry of :data:`STAGES` a stage key belongs to (``ssl_train/<arm>/seed0`` -> ``ssl``)."""
    head = key.split("/")[0]
    return "ssl" if head.startswith("ssl_") else head


@dataclass(frozen=True)
class Stage:
    """One step of the experiment.

    Args:
        key: unique name (``translator_train``, ``ssl_train/<arm>/seed<k>``, ...): the state entry, the MLflow
            stage tag and the progress line.
        run: does the work; returns the stage's MLflow run id (or None).
        outputs: files that exist once the stage is done (all present + unchanged inputs = skipped on a re-run).
        inputs: files whose content the result depends on (a datalist JSON also covers the images it lists); a
            change reruns the stage.
        clean: folders deleted before a finished stage runs again (else an old checkpoint would be resumed).
        always: run every time (cheap stages that read the user's files directly: ``prepare``).
    """

    key: str
    run: Callable[[], str | None]
    outputs: tuple[Path, ...] = ()
    inputs: tuple[Path, ...] = ()
    clean: tuple[Path, ...] = ()
    always: bool = False

    @property
    def group(self) -> str:
        return stage_group(self.key)
