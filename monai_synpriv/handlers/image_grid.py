"""``TranslationGridSaver``: a picture of what the translator is doing, every few epochs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from monai.utils import IgniteInfo, min_version, optional_import

from ..utils.distributed import is_rank0
from ..visualize import save_image_grid

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["TranslationGridSaver"]

_TITLES = {
    "real_a": "A",
    "fake_b": "G(A)",
    "rec_a": "F(G(A))",
    "real_b": "B",
    "fake_a": "F(B)",
    "rec_b": "G(F(B))",
    "image": "input",
    "pred": "synthetic",
    "label": "real",
    "baseline": "baseline",
}


class TranslationGridSaver:
    """
    Save a PNG grid at the end of every ``interval`` epochs (trainers: samples of the epoch's last iteration) or at
    the end of a run (evaluators, ``epoch_level=False``: one sample from each of ``max_samples`` iterations spread over
    the whole run): one row per sample, one column per key of ``engine.state.output``. Writes
    ``<output_dir>/<prefix>_epoch<N>.png`` and ``<output_dir>/<prefix>_latest.png`` atomically; 3D images show their
    middle slice. Attach :class:`MLflowExtrasHandler` to log them to MLflow.

    Args:
        output_dir: folder of the PNGs.
        keys: output keys to show, in column order (default: the CycleGAN cycle A -> B -> A and B -> A -> B).
        max_samples: rows at most.
        interval: every how many epochs.
        prefix: file name prefix.
        epoch_level: save at ``EPOCH_COMPLETED`` (trainers) or only at ``COMPLETED`` (evaluators).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        keys: Sequence[str] = ("real_a", "fake_b", "rec_a", "real_b", "fake_a", "rec_b"),
        max_samples: int = 4,
        interval: int = 1,
        prefix: str = "translation",
        epoch_level: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.keys = list(keys)
        self.max_samples = max_samples
        self.interval = max(1, int(interval))
        self.prefix = prefix
        self.epoch_level = epoch_level
        self.saved: list[str] = []
        self._collected: list[tuple[int, dict]] = []

    def attach(self, engine: Engine) -> None:
        if self.epoch_level:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        else:
            engine.add_event_handler(Events.STARTED, lambda e: self._collected.clear())
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
            engine.add_event_handler(Events.COMPLETED, self)

    def _samples(self, output) -> list[dict]:
        samples = output if isinstance(output, list) else _decollate(output)
        return [s for s in samples if isinstance(s, dict) and all(k in s for k in self.keys)]

    def _collect(self, engine: Engine) -> None:
        """Keep the first sample of each iteration (thinned to stay small), to show the whole run at the end."""
        samples = self._samples(engine.state.output) if engine.state.output is not None else []
        if samples:
            keep = {
                k: samples[0][k].detach().cpu() if hasattr(samples[0][k], "detach") else samples[0][k]
                for k in self.keys
            }
            self._collected.append((engine.state.iteration, keep))
            if len(self._collected) > 8 * self.max_samples:
                self._collected = self._collected[::2]

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():  # under torchrun only rank 0 writes files
            return
        if not self.epoch_level and self._collected:
            idx = np.linspace(0, len(self._collected) - 1, min(self.max_samples, len(self._collected)))
            samples = [self._collected[int(round(i))][1] for i in idx]
        else:
            if engine.state.output is None:
                return
            samples = self._samples(engine.state.output)[: self.max_samples]
        if not samples:
            raise KeyError(f"TranslationGridSaver: engine output lacks some of the keys {self.keys}.")
        rows = [[s[k] for k in self.keys] for s in samples]
        titles = [_TITLES.get(k, k) for k in self.keys]
        tag = f"epoch{engine.state.epoch:03d}" if self.epoch_level else "final"
        # an evaluator's single pass is not a training epoch: say how many samples the grid was drawn from instead
        title = (
            f"{self.prefix}, epoch {engine.state.epoch}"
            if self.epoch_level
            else f"{self.prefix}, {len(samples)} samples spread over {engine.state.iteration} iterations"
        )
        path = save_image_grid(rows, self.output_dir / f"{self.prefix}_{tag}.png", column_titles=titles, title=title)
        save_image_grid(rows, self.output_dir / f"{self.prefix}_latest.png", column_titles=titles, title=title)
        self.saved.append(path)


def _decollate(batch: dict) -> list[dict]:
    n = next(len(v) for v in batch.values() if hasattr(v, "shape") and len(getattr(v, "shape", ())) > 0)
    return [{k: v[i] for k, v in batch.items() if hasattr(v, "shape") and len(v.shape) > 0} for i in range(n)]
