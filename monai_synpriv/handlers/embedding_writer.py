"""``EmbeddingWriter``: collect an encoder evaluator's outputs and write ``embeddings.npy`` + ``embeddings.csv``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["EmbeddingWriter"]


def _pred(output: Any) -> torch.Tensor:
    """``(B, D)`` from an evaluator's output: a dict with ``pred`` (``decollate=False``) or a list of them."""
    if isinstance(output, Mapping):
        return torch.as_tensor(output["pred"])
    if isinstance(output, Sequence) and output and isinstance(output[0], Mapping):
        return torch.stack([torch.as_tensor(o["pred"]) for o in output])
    raise TypeError(f"EmbeddingWriter: cannot read 'pred' from an engine output of type {type(output).__name__}.")


class EmbeddingWriter:
    """
    Attach to a MONAI evaluator whose network maps each image to one embedding (``pred`` of shape ``(B, D)``) and
    whose loader visits ``items`` in order (``shuffle=False``). At the end of the run it writes ``<prefix>.npy``
    (float32, ``(n, D)``, row ``i`` = ``items[i]``) and ``<prefix>.csv`` (row, image and the items' scalar fields such
    as ``label``) atomically under ``output_dir``, as :func:`monai_synpriv.assessment.write_embeddings` does.

    This is the ``run`` of the encoder bundles' ``inference.json`` (multimodal SSL, MAE, vision-language): the
    bundle's ``evaluator`` drives it, so MONAI Label and model-zoo's tools see the usual inference properties.

    Args:
        items: the datalist entries the evaluator's dataset holds, in order.
        output_dir: where the files go.
        image_key: the items' image (path) key, the CSV's second column.
        prefix: the files' name stem.
        output_transform: maps ``engine.state.output`` to the ``(B, D)`` embeddings (default: its ``pred``).

    Raises (at the end of the run):
        ValueError: an embedding that is not finite (naming the image), or a count different from ``items``.
    """

    def __init__(
        self,
        items: Sequence[Mapping[str, Any]],
        output_dir: str | os.PathLike,
        image_key: str = "image",
        prefix: str = "embeddings",
        output_transform: Callable[[Any], torch.Tensor] = _pred,
    ) -> None:
        self.items = items
        self.output_dir = output_dir
        self.image_key = image_key
        self.prefix = prefix
        self.output_transform = output_transform
        self.embeddings: np.ndarray | None = None
        self.paths: dict[str, str] = {}
        self._chunks: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._chunks = []

    def _collect(self, engine: Engine) -> None:
        pred = self.output_transform(engine.state.output).detach().float().cpu()
        self._chunks.append(pred.reshape(pred.shape[0], -1).numpy())

    def __call__(self, engine: Engine) -> None:
        from ..assessment.embedding import save_embeddings

        emb = np.concatenate(self._chunks) if self._chunks else np.zeros((0, 0), np.float32)
        bad = np.flatnonzero(~np.isfinite(emb).all(axis=1)) if emb.size else []
        if len(bad):
            first = self.items[int(bad[0])][self.image_key] if int(bad[0]) < len(self.items) else f"row {int(bad[0])}"
            raise ValueError(f"EmbeddingWriter: {len(bad)} non-finite embedding(s), the first for {first}.")
        self.embeddings = emb
        self.paths = save_embeddings(emb, list(self.items), self.output_dir, image_key=self.image_key, prefix=self.prefix)
