"""``ClusterAssignmentWriter``: assign new images to the clusters of a saved cluster model and write a CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from ..evaluation.clustering import ClusterModel
from ..utils.io import atomic_path

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["ClusterAssignmentWriter"]


#: how a missing cluster model is produced (the end of :meth:`ClusterAssignmentWriter.load`'s error)
DEFAULT_HINT = (
    "it is written by the clustering evaluation (ClusteringEvaluationHandler; in the contrastive_ae_clustering "
    "bundle: run configs/evaluate.json after training, with the same ckpt_dir), or set cluster_model to the file"
)


class ClusterAssignmentWriter:
    """
    Attach to an evaluator whose network maps an image to its latent (``pred``). At the end of the run, every image
    is assigned to a cluster of ``cluster_model`` (the ``cluster_model.json`` written by
    :class:`ClusteringEvaluationHandler`) and ``output_csv`` is written atomically with one row per image:
    ``image`` (the datalist path), ``cluster``, ``class`` (the class the cluster was matched to, empty for an
    unmatched cluster) and ``confidence`` (distance to the centroid for k-means, posterior probability for a GMM).

    The model is read by :meth:`load`, which the engine's ``STARTED`` event calls if nothing did before, so a missing
    or mismatched file fails before any image is loaded; building the handler reads nothing (a workflow can be
    built, and its properties checked, before the clusters are fitted). A bundle calls :meth:`load` first thing in
    its ``run``.

    Args:
        cluster_model: path of the cluster model JSON.
        output_csv: where to write the assignments.
        path_key: the datalist field holding each image's path.
        hint: how to produce a missing ``cluster_model`` (the end of the error message).
    """

    def __init__(
        self,
        cluster_model: str | os.PathLike,
        output_csv: str | os.PathLike,
        path_key: str = "path",
        hint: str = DEFAULT_HINT,
    ) -> None:
        self.cluster_model = Path(cluster_model)
        self.output_csv = Path(output_csv)
        self.path_key = path_key
        self.hint = hint
        self.model: ClusterModel | None = None
        self.rows: list[dict] = []
        self._feats: list[np.ndarray] = []
        self._paths: list[str] = []

    def load(self) -> ClusterModel:
        """Read ``cluster_model`` (once).

        Raises:
            FileNotFoundError: no such file (the message names it and how to produce it).
            ValueError: not a cluster model.
        """
        if self.model is None:
            if not self.cluster_model.is_file():
                raise FileNotFoundError(f"cluster model not found: {self.cluster_model}: {self.hint}.")
            self.model = ClusterModel.load(self.cluster_model)
        return self.model

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _start(self, engine: Engine) -> None:
        self.load()
        self._reset(engine)

    def _reset(self, engine: Engine) -> None:
        self._feats, self._paths = [], []

    def _collect(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if not isinstance(output, list) or not isinstance(batch, list):
            raise TypeError("ClusterAssignmentWriter needs a decollating evaluator (decollate=True).")
        for b, o in zip(batch, output):
            if self.path_key not in b:
                raise KeyError(f"ClusterAssignmentWriter: datalist entries need a {self.path_key!r} field.")
            self._feats.append(torch.as_tensor(o["pred"]).detach().float().flatten().cpu().numpy())
            self._paths.append(str(b[self.path_key]))

    def __call__(self, engine: Engine) -> None:
        if not self._feats:
            raise ValueError("ClusterAssignmentWriter: no images were processed.")
        model = self.load()
        clusters, confidence = model.predict(np.stack(self._feats))
        classes = model.class_of(clusters)
        self.rows = [
            {"image": p, "cluster": int(c), "class": k, "confidence": f"{float(v):.6g}"}
            for p, c, k, v in zip(self._paths, clusters, classes, confidence)
        ]
        with atomic_path(self.output_csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["image", "cluster", "class", "confidence"])
            writer.writeheader()
            writer.writerows(self.rows)
        counts = np.bincount(clusters, minlength=model.n_clusters)
        for c, n in enumerate(counts):
            engine.state.metrics[f"cluster_{c}_count"] = int(n)
