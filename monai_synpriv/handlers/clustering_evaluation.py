"""``ClusteringEvaluationHandler``: cluster the latents of a frozen encoder, score the clusters against expert classes
next to a raw-pixel k-means baseline, and draw what the clusters and the decoder look like."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from ..evaluation.clustering import (
    CLUSTER_METHODS,
    FEATURE_NORMALIZATIONS,
    ClusterModel,
    clustering_metrics,
    fit_clusters,
    hungarian_mapping,
)
from ..utils.distributed import unwrap
from ..utils.io import write_json_atomic
from ..visualize import save_figure, save_image_grid

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["ClusteringEvaluationHandler"]

#: metrics copied into ``engine.state.metrics`` (and so into MLflow) for each scored feature set
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "nmi", "ari", "silhouette", "n_clusters_used")


def _json_safe(value):
    """NaN (an undefined silhouette) as JSON null, so that the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


class ClusteringEvaluationHandler:
    """
    Attach to an evaluator whose network maps an image to its latent (``pred``, e.g.
    :class:`~monai_synpriv.networks.LatentEncoder`) and whose datalist entries carry ``label`` and a ``split_key``
    field. At the end of the evaluation epoch:

    1. fit k-means or a GMM (:func:`~monai_synpriv.evaluation.fit_clusters`) on the ``fit_split`` latents, labels
       unused; the number of clusters is ``n_clusters`` or chosen in ``k_range`` by silhouette / BIC;
    2. assign the ``test_split`` latents, and score both splits (:func:`~monai_synpriv.evaluation.clustering_metrics`:
       Hungarian accuracy, balanced accuracy, NMI, ARI, silhouette); the same clustering of the raw pixels of the
       same images is the baseline (``raw_pixel_baseline``);
    3. write ``clustering_metrics.json``, ``cluster_model.json`` (the fitted model with the Hungarian cluster -> class
       mapping of the fit split, what the bundle's inference applies; also to ``model_path`` when given) and
       ``engine.state.metrics``
       (``test_<metric>``, ``fit_<metric>``, ``raw_pixel_test_<metric>``) so that MONAI's MLflow handler logs them;
    4. draw ``cluster_montage.png`` and ``embedding.png`` (t-SNE of test latents by cluster and by class) and, given
       the ``autoencoder``, ``reconstructions.png``, ``samples.png`` (decoded draws from each cluster's latent
       Gaussian, or the VAE prior) and ``interpolations.png`` (decoded straight lines between latents of test images
       of different clusters: the paper's data-augmentation use).

    Args:
        output_dir: where the files go.
        class_names: class names in label order.
        method: ``kmeans`` or ``gmm``.
        n_clusters: number of clusters (None: choose in ``k_range``).
        k_range: candidates when choosing.
        criterion: ``silhouette`` or ``bic`` (None: the method's default).
        normalization: latent normalisation before clustering (``none``, ``standardize``, ``l2``).
        split_key, fit_split, test_split: which entries fit the clusters and which are scored.
        raw_pixel_baseline: also cluster the raw pixels.
        autoencoder: the :class:`~monai_synpriv.networks.ContrastiveAutoEncoder` (for the decoder pictures).
        variational_prior: samples from ``N(0, I)`` (VAE) instead of each cluster's latent Gaussian.
        embedding_plot: draw the t-SNE plot.
        orientation: how images are drawn (:func:`~monai_synpriv.visualize.save_image_grid`).
        per_cluster: images per row of the montage.
        seed: random state.
        model_path: a second place to save the fitted cluster model (the bundle's ``models/cluster_model.json``, next
            to ``model.pt``, where its inference reads it); the copy in ``output_dir`` is always written, the record of
            this evaluation that is logged with its other files.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        method: str = "kmeans",
        n_clusters: int | None = None,
        k_range: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
        criterion: str | None = None,
        normalization: str = "standardize",
        split_key: str = "split",
        fit_split: str = "training",
        test_split: str = "test",
        raw_pixel_baseline: bool = True,
        autoencoder: torch.nn.Module | None = None,
        variational_prior: bool = False,
        embedding_plot: bool = True,
        orientation: str = "picture",
        per_cluster: int = 10,
        seed: int = 0,
        model_path: str | os.PathLike | None = None,
    ) -> None:
        # checked here, so that a typo fails before the images are encoded
        if method not in CLUSTER_METHODS:
            raise ValueError(f"unknown cluster method {method!r}; choose from {list(CLUSTER_METHODS)}.")
        if normalization not in FEATURE_NORMALIZATIONS:
            raise ValueError(
                f"unknown feature normalization {normalization!r}; choose from {list(FEATURE_NORMALIZATIONS)}."
            )
        if criterion not in (None, "silhouette", "bic") or (criterion == "bic" and method != "gmm"):
            raise ValueError(f"criterion {criterion!r} is not available for {method!r} (kmeans: silhouette; gmm: bic).")
        if n_clusters is not None and n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1 or None (choose in k_range), got {n_clusters}.")
        if len(class_names) < 1:
            raise ValueError("class_names is empty: the datalist has no 'classes' entry; set class_names.")
        self.output_dir = Path(output_dir)
        self.class_names = [str(c) for c in class_names]
        self.method, self.n_clusters, self.k_range, self.criterion = method, n_clusters, list(k_range), criterion
        self.normalization = normalization
        self.split_key, self.fit_split, self.test_split = split_key, fit_split, test_split
        self.raw_pixel_baseline = raw_pixel_baseline
        self.autoencoder = autoencoder
        self.variational_prior = variational_prior
        self.embedding_plot, self.orientation, self.per_cluster, self.seed = (
            embedding_plot,
            orientation,
            per_cluster,
            seed,
        )
        self.model_path = None if model_path is None else Path(model_path)
        self.results: dict = {}
        self.model: ClusterModel | None = None
        self._reset(None)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        # at the end of the (single) evaluation epoch, before MLflow/stats handlers read ``state.metrics``
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _reset(self, engine: Engine | None) -> None:
        self._feats: list[np.ndarray] = []
        self._images: list[np.ndarray] = []
        self._labels: list[int] = []
        self._splits: list[str] = []

    def _collect(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if not isinstance(output, list) or not isinstance(batch, list):
            raise TypeError("ClusteringEvaluationHandler needs a decollating evaluator (decollate=True).")
        for b, o in zip(batch, output):
            for key in (self.split_key, "label", "image"):
                if key not in b:
                    raise KeyError(f"ClusteringEvaluationHandler: datalist entries need a {key!r} field.")
            self._feats.append(torch.as_tensor(o["pred"]).detach().float().flatten().cpu().numpy())
            self._images.append(torch.as_tensor(b["image"]).detach().float().cpu().numpy())
            self._labels.append(int(torch.as_tensor(b["label"]).item()))
            self._splits.append(str(b[self.split_key]))

    def __call__(self, engine: Engine) -> None:
        x, y, s = np.stack(self._feats), np.asarray(self._labels), np.asarray(self._splits)
        fit, test = s == self.fit_split, s == self.test_split
        if fit.sum() < 2 or test.sum() < 1:
            raise ValueError(
                f"need {self.fit_split!r} ({fit.sum()}) and {self.test_split!r} ({test.sum()}) samples to cluster."
            )
        n_classes = len(self.class_names)
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"labels must lie in 0..{n_classes - 1} ({self.class_names}), got {y.min()}..{y.max()}.")
        model = fit_clusters(
            x[fit], self.method, self.n_clusters, self.k_range, self.criterion, self.seed, self.normalization
        )
        fit_clusters_ = model.predict(x[fit])[0]
        model.mapping = hungarian_mapping(y[fit], fit_clusters_)
        model.class_names = self.class_names
        test_clusters = model.predict(x[test])[0]
        results: dict = {
            "method": self.method,
            "normalization": self.normalization,
            "n_clusters": model.n_clusters,
            "selection": model.selection,
            "class_names": self.class_names,
            "num_fit": int(fit.sum()),
            "num_test": int(test.sum()),
            "feature_dim": int(x.shape[1]),
            "latent": {
                "fit": clustering_metrics(y[fit], fit_clusters_, model.transform(x[fit])),
                "test": clustering_metrics(y[test], test_clusters, model.transform(x[test])),
            },
        }
        # the fit split's mapping applied to the test split: what a user of inference.json gets
        results["latent"]["test"]["accuracy_fit_mapping"] = clustering_metrics(
            y[test], test_clusters, mapping=model.mapping
        )["accuracy"]
        for split in ("fit", "test"):
            for k in SUMMARY_METRICS:
                engine.state.metrics[f"{split}_{k}"] = results["latent"][split][k]
        images = np.stack(self._images)
        if self.raw_pixel_baseline:
            pixels = images.reshape(len(images), -1)
            raw = fit_clusters(pixels[fit], self.method, model.n_clusters, seed=self.seed, normalization="none")
            raw_test = raw.predict(pixels[test])[0]
            results["raw_pixels"] = {"test": clustering_metrics(y[test], raw_test, pixels[test])}
            for k in SUMMARY_METRICS:
                engine.state.metrics[f"raw_pixel_test_{k}"] = results["raw_pixels"]["test"][k]
        self.model, self.results = model, results
        self.output_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.output_dir / "cluster_model.json")
        if self.model_path is not None:
            self.model_path.parent.mkdir(parents=True, exist_ok=True)
            model.save(self.model_path)
        write_json_atomic(self.output_dir / "clustering_metrics.json", _json_safe(results))
        self._montage(images[test], y[test], test_clusters, model)
        if self.embedding_plot:
            self._embedding(model.transform(x[test]), y[test], test_clusters)
        if self.autoencoder is not None:
            self._decoder_pictures(images[test], x[fit], fit_clusters_, test_clusters, model)

    # pictures -------------------------------------------------------------------------------------------------
    def _montage(self, images: np.ndarray, y: np.ndarray, clusters: np.ndarray, model: ClusterModel) -> None:
        rng = np.random.default_rng(self.seed)
        rows, titles = [], []
        for c in range(model.n_clusters):
            members = np.flatnonzero(clusters == c)
            pick = rng.permutation(members)[: self.per_cluster]
            rows.append([images[i] for i in pick] or [np.zeros_like(images[0])])
            counts = np.bincount(y[members], minlength=len(self.class_names)) if len(members) else []
            mix = ", ".join(f"{self.class_names[k]} {n}" for k, n in enumerate(counts) if n)
            mapped = self.class_names[model.mapping[c]] if c in model.mapping else "-"
            titles.append(f"cluster {c} -> {mapped}\n{mix}")
        save_image_grid(
            rows,
            self.output_dir / "cluster_montage.png",
            row_titles=titles,
            title="test images by cluster (random members; row label: mapped class, true classes)",
            orientation=self.orientation,
            vmin=None,
            vmax=None,
        )

    def _embedding(self, feats: np.ndarray, y: np.ndarray, clusters: np.ndarray) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.manifold import TSNE

        idx = np.random.default_rng(self.seed).permutation(len(feats))[:2000]
        if len(idx) < 5:
            return
        xy = TSNE(n_components=2, perplexity=min(30, len(idx) - 1), random_state=self.seed, init="pca").fit_transform(
            feats[idx]
        )
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        for ax, lab, names, title in (
            (axes[0], clusters[idx], [f"cluster {c}" for c in range(clusters.max() + 1)], "by cluster"),
            (axes[1], y[idx], self.class_names, "by expert class"),
        ):
            for c, name in enumerate(names):
                sel = lab == c
                if sel.any():
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=6, label=name)
            ax.legend(fontsize=7, markerscale=2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"t-SNE of latents (test split), {title}")
        save_figure(fig, self.output_dir / "embedding.png")

    @torch.no_grad()
    def _decoder_pictures(
        self,
        test_images: np.ndarray,
        fit_raw: np.ndarray,
        fit_clusters_: np.ndarray,
        test_clusters: np.ndarray,
        model: ClusterModel,
    ) -> None:
        net = unwrap(self.autoencoder)
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        gen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        n = min(8, len(test_images))
        pick = rng.permutation(len(test_images))[:n]
        inputs = torch.as_tensor(test_images[pick], device=device)
        recon = net(inputs)[0].cpu()
        save_image_grid(
            [list(inputs.cpu()), list(recon)],
            self.output_dir / "reconstructions.png",
            row_titles=["input", "reconstruction"],
            title="test images and their reconstructions",
            orientation=self.orientation,
        )
        rows, titles = [], []
        if self.variational_prior:
            rows.append(list(net.sample(self.per_cluster, generator=gen).cpu()))
            titles.append("prior N(0, I)")
        for c in range(model.n_clusters):  # each cluster's latent Gaussian (raw latent space)
            members = fit_raw[fit_clusters_ == c]
            if len(members) < 2:
                continue
            mean, std = members.mean(0), members.std(0)
            rows.append(list(net.sample(self.per_cluster, generator=gen, mean=mean, std=std).cpu()))
            mapped = self.class_names[model.mapping[c]] if c in model.mapping else "-"
            titles.append(f"cluster {c} -> {mapped}")
        if rows:
            save_image_grid(
                rows,
                self.output_dir / "samples.png",
                row_titles=titles,
                title="decoded latent samples",
                orientation=self.orientation,
            )
        # interpolations between test images of different clusters
        rows, titles = [], []
        steps = torch.linspace(0, 1, 8)
        for _ in range(4):
            a = int(rng.integers(len(test_images)))
            others = np.flatnonzero(test_clusters != test_clusters[a])
            if not len(others):
                break
            b = int(rng.choice(others))
            pair = torch.as_tensor(test_images[[a, b]], device=device)
            mu = net.encode(pair)[0]
            z = torch.stack([(1 - t) * mu[0] + t * mu[1] for t in steps.to(device)])
            rows.append([pair[0].cpu(), *list(net.decode(z).cpu()), pair[1].cpu()])
            titles.append(f"cluster {test_clusters[a]} -> {test_clusters[b]}")
        if rows:
            save_image_grid(
                rows,
                self.output_dir / "interpolations.png",
                row_titles=titles,
                column_titles=["image A", *[f"t={t:.2f}" for t in steps.tolist()], "image B"],
                title="latent interpolations (decoded), between test images of different clusters",
                orientation=self.orientation,
            )
        net.train(was_training)
