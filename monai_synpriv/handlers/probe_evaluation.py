"""``ProbeEvaluationHandler``: what did the frozen encoder learn? Linear, MLP and k-NN probes at the end of a run."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from ..evaluation.probes import classification_metrics, error_reduction, knn_probe, linear_probe, mlp_probe
from ..utils.io import atomic_path, write_json_atomic

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["ProbeEvaluationHandler", "fraction_tag", "label_subset"]


def fraction_tag(fraction: float) -> str:
    """``0.01`` -> ``"labels1pct"``, ``0.1`` -> ``"labels10pct"``, ``0.005`` -> ``"labels0.5pct"`` (metric-name safe)."""
    return f"labels{float(fraction) * 100:g}pct"


def label_subset(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Positions of a stratified subset of ``labels``: ``round(fraction * n_c)`` of each class ``c`` (at least one),
    drawn with a generator seeded by ``(seed, fraction)``; sorted. The same labels in the same order give the same
    subset, whatever else differs (the arm, the SSL seed)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), int(round(float(fraction) * 1_000_000))])
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = int(min(len(idx), max(1, round(float(fraction) * len(idx)))))
        picked.append(rng.permutation(idx)[:n])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


class ProbeEvaluationHandler:
    """
    Attach to an evaluator whose network is the frozen primary encoder (``pred`` = features) and whose datalist
    holds a ``split_key`` field (``train_split`` items train the probes, ``test_split`` items score them). At the end
    of the evaluation epoch: fit each probe (``linear``, ``mlp`` — the TriDeNT head, ``knn``), then write

    - ``engine.state.metrics``: ``<probe>_accuracy``, ``<probe>_balanced_accuracy``, ``<probe>_error``,
      ``majority_rate`` and, given ``baseline_metrics``, ``<probe>_error_reduction_vs_<baseline_name>``
      (so that MONAI's MLflow handler logs them); for each label fraction ``f < 1`` the same probes trained on a
      fixed stratified subset of the training items, as ``<probe>_<metric>_labels<pct>pct`` (``linear_accuracy_labels1pct``);
    - ``<output_dir>/probe_metrics.json`` (with confusion matrices), ``confusion_<probe>.png`` and
      ``embedding_tsne.png`` (test features, coloured by class).

    Args:
        output_dir: where the JSON and pictures go.
        class_names: names of the classes, in label order.
        probes: which probes.
        baseline_metrics: ``probe_metrics.json`` of a baseline run (e.g. single-modality Siamese) to compute
            error-reduction ratios against.
        baseline_name: its name in the metric keys.
        mlp_epochs, knn_k, seed: probe settings.
        tsne: draw the embedding plot.
        label_fractions: fractions of the labelled training items the probes are also trained on (the label-scarce
            regime), each in ``(0, 1]``; ``1.0`` is the full set (always probed).
        subset_seed: seed of the subsets. They depend on it, the fraction and the training labels in datalist order
            only (not on ``seed``), so every arm and seed evaluated on one datalist gets the same subsets; the report
            checks this through ``subset_sha1``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        probes: Sequence[str] = ("linear", "mlp", "knn"),
        split_key: str = "split",
        train_split: str = "training",
        test_split: str = "test",
        baseline_metrics: str | os.PathLike | None = None,
        baseline_name: str = "baseline",
        mlp_epochs: int = 100,
        knn_k: int = 20,
        seed: int = 0,
        tsne: bool = True,
        label_fractions: Sequence[float] = (1.0,),
        subset_seed: int = 0,
    ) -> None:
        unknown = set(probes) - {"linear", "mlp", "knn"}
        if unknown:
            raise ValueError(f"unknown probe(s) {sorted(unknown)}; choose from linear, mlp, knn.")
        bad = [f for f in label_fractions if not 0 < float(f) <= 1]
        if bad:
            raise ValueError(f"label_fractions must lie in (0, 1], got {bad}.")
        self.label_fractions = sorted({float(f) for f in label_fractions if float(f) < 1})
        self.subset_seed = subset_seed
        self.output_dir = Path(output_dir)
        self.class_names = list(class_names)
        self.probes = list(probes)
        self.split_key, self.train_split, self.test_split = split_key, train_split, test_split
        self.baseline_metrics = baseline_metrics
        self.baseline_name = baseline_name
        self.mlp_epochs, self.knn_k, self.seed, self.tsne = mlp_epochs, knn_k, seed, tsne
        self.results: dict = {}
        self._feats: list[np.ndarray] = []
        self._labels: list[int] = []
        self._splits: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        # at the end of the (single) evaluation epoch, before MLflow/stats handlers read ``state.metrics``
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._feats, self._labels, self._splits = [], [], []

    def _collect(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if not isinstance(output, list) or not isinstance(batch, list):
            raise TypeError("ProbeEvaluationHandler needs a decollating evaluator (decollate=True).")
        for b, o in zip(batch, output):
            if self.split_key not in b:
                raise KeyError(f"ProbeEvaluationHandler: datalist entries need a {self.split_key!r} field.")
            self._feats.append(torch.as_tensor(o["pred"]).detach().float().flatten().cpu().numpy())
            self._labels.append(int(torch.as_tensor(o["label"]).item()))
            self._splits.append(str(b[self.split_key]))

    def __call__(self, engine: Engine) -> None:
        x, y, s = np.stack(self._feats), np.asarray(self._labels), np.asarray(self._splits)
        tr, te = s == self.train_split, s == self.test_split
        if tr.sum() < 2 or te.sum() < 1:
            raise ValueError(f"need training ({tr.sum()}) and test ({te.sum()}) samples for the probes.")
        if len(np.unique(y[tr])) < 2:
            raise ValueError("the probe training split holds a single class.")
        n_classes = len(self.class_names)
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"labels must lie in 0..{n_classes - 1} ({self.class_names}), got {y.min()}..{y.max()}.")
        baseline = json.loads(Path(self.baseline_metrics).read_text()) if self.baseline_metrics else None
        results = {
            "num_train": int(tr.sum()),
            "num_test": int(te.sum()),
            "feature_dim": int(x.shape[1]),
            "class_names": self.class_names,
            "probes": {},
        }
        for probe in self.probes:
            m = self._probe(probe, x[tr], y[tr], x[te], y[te], n_classes)
            results["probes"][probe] = m
            for k in ("accuracy", "balanced_accuracy", "error"):
                engine.state.metrics[f"{probe}_{k}"] = m[k]
            if baseline and probe in baseline.get("probes", {}):
                ratio = error_reduction(baseline["probes"][probe]["accuracy"], m["accuracy"])
                m[f"error_reduction_vs_{self.baseline_name}"] = ratio
                engine.state.metrics[f"{probe}_error_reduction_vs_{self.baseline_name}"] = ratio
            self._plot_confusion(np.asarray(m["confusion_matrix"]), probe)
        train_idx = np.flatnonzero(tr)
        results["label_fractions"] = {}
        for f in self.label_fractions:
            sub = train_idx[label_subset(y[tr], f, self.subset_seed)]
            entry = {
                "fraction": f,
                "num_labelled": int(len(sub)),
                "classes_labelled": int(len(np.unique(y[sub]))),
                "subset_sha1": hashlib.sha1(np.ascontiguousarray(sub, dtype=np.int64).tobytes()).hexdigest(),
                "probes": {},
            }
            for probe in self.probes:
                m = self._probe(probe, x[sub], y[sub], x[te], y[te], n_classes)
                entry["probes"][probe] = m
                for k in ("accuracy", "balanced_accuracy", "error"):
                    engine.state.metrics[f"{probe}_{k}_{fraction_tag(f)}"] = m[k]
            results["label_fractions"][fraction_tag(f)] = entry
        results["majority_rate"] = float(np.bincount(y[te], minlength=n_classes).max() / te.sum())
        engine.state.metrics["majority_rate"] = results["majority_rate"]
        self.results = results
        write_json_atomic(self.output_dir / "probe_metrics.json", results)
        if self.tsne:
            self._plot_embedding(x[te], y[te])

    def _probe(self, probe: str, train_x, train_y, test_x, test_y, n_classes: int) -> dict:
        if len(np.unique(train_y)) == 1:  # a tiny subset with one class: predicting it is all a probe can do
            pred = np.full(len(test_y), train_y[0])
        elif probe == "linear":
            pred = linear_probe(train_x, train_y, test_x, seed=self.seed)
        elif probe == "mlp":
            pred = mlp_probe(train_x, train_y, test_x, num_classes=n_classes, epochs=self.mlp_epochs, seed=self.seed)
        else:
            pred = knn_probe(train_x, train_y, test_x, k=self.knn_k)
        return classification_metrics(test_y, pred, num_classes=n_classes)

    def _plot_confusion(self, cm: np.ndarray, probe: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(self.class_names)), self.class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(self.class_names)), self.class_names, fontsize=8)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{probe} probe, test split")
        fig.tight_layout()
        with atomic_path(self.output_dir / f"confusion_{probe}.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)

    def _plot_embedding(self, x: np.ndarray, y: np.ndarray) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.manifold import TSNE

        rng = np.random.default_rng(self.seed)
        idx = rng.permutation(len(x))[:2000]
        if len(idx) < 5:
            return
        xy = TSNE(n_components=2, perplexity=min(30, len(idx) - 1), random_state=self.seed, init="pca").fit_transform(
            x[idx]
        )
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for c, name in enumerate(self.class_names):
            sel = y[idx] == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=6, label=name)
        ax.legend(fontsize=7, markerscale=2)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("t-SNE of frozen primary-encoder features (test split)")
        fig.tight_layout()
        with atomic_path(self.output_dir / "embedding_tsne.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
