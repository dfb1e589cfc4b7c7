"""Clustering of latent features and its metrics: k-means / GMM (scikit-learn), the number of clusters given or
chosen by silhouette / BIC, cluster-to-class mapping by Hungarian matching (scipy), and clustering accuracy, NMI,
ARI, balanced accuracy and silhouette. A saved :class:`ClusterModel` assigns new images (the bundle's inference)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from monai.utils import optional_import

from ..utils.io import write_json_atomic

sk_cluster, _ = optional_import("sklearn.cluster")
sk_mixture, _ = optional_import("sklearn.mixture")
sk_metrics, _ = optional_import("sklearn.metrics")
linear_sum_assignment, _ = optional_import("scipy.optimize", name="linear_sum_assignment")

__all__ = [
    "CLUSTER_METHODS",
    "FEATURE_NORMALIZATIONS",
    "ClusterModel",
    "cluster_accuracy",
    "clustering_metrics",
    "fit_clusters",
    "hungarian_mapping",
    "normalize_features",
]

CLUSTER_METHODS = ("kmeans", "gmm")
#: feature normalisations before clustering: none, per-feature standardisation (statistics of the fitting set) and
#: L2 normalisation of each sample (clusters by angle, the geometry a contrastive loss shapes)
FEATURE_NORMALIZATIONS = ("none", "standardize", "l2")


def normalize_features(
    features: np.ndarray, normalization: str = "none", mean: np.ndarray | None = None, scale: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Apply a :data:`FEATURE_NORMALIZATIONS` entry; ``standardize`` fits ``mean``/``scale`` when they are None.
    Returns the features (float64) and the statistics."""
    if normalization not in FEATURE_NORMALIZATIONS:
        raise ValueError(
            f"unknown feature normalization {normalization!r}; choose from {list(FEATURE_NORMALIZATIONS)}."
        )
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(len(x), -1)
    if normalization == "standardize":
        if mean is None or scale is None:
            mean, scale = x.mean(0), x.std(0)
            scale = np.where(scale > 1e-12, scale, 1.0)
        x = (x - mean) / scale
    elif normalization == "l2":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x, mean, scale


def _as_labels(y, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        arr = arr.reshape(len(arr), -1)
        if arr.shape[1] != 1:
            raise ValueError(f"{name} must be one integer per sample, got shape {np.asarray(y).shape}.")
        arr = arr[:, 0]
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer labels, got values such as {arr[:3].tolist()}.")
        arr = arr.astype(int)
    return arr.astype(int)


def hungarian_mapping(y_true, clusters) -> dict[int, int]:
    """The one-to-one cluster -> class assignment that maximises the number of agreements (Hungarian algorithm on the
    contingency table). With more clusters than classes the extra clusters map to no class (absent from the dict);
    with fewer, some classes get no cluster."""
    y_true, clusters = _as_labels(y_true, "y_true"), _as_labels(clusters, "clusters")
    if len(y_true) != len(clusters) or len(y_true) == 0:
        raise ValueError(f"need as many cluster labels as class labels (> 0), got {len(clusters)} and {len(y_true)}.")
    cluster_ids, class_ids = np.unique(clusters), np.unique(y_true)
    counts = np.zeros((len(cluster_ids), len(class_ids)), dtype=np.int64)
    np.add.at(counts, (np.searchsorted(cluster_ids, clusters), np.searchsorted(class_ids, y_true)), 1)
    rows, cols = linear_sum_assignment(-counts)
    return {int(cluster_ids[r]): int(class_ids[c]) for r, c in zip(rows, cols)}


def _correct(y_true: np.ndarray, clusters: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Whether each sample's cluster maps to its class; a cluster missing from the mapping is always wrong (whatever
    the class ids, -1 included)."""
    matched = np.array([int(c) in mapping for c in clusters], dtype=bool)
    pred = np.array([mapping.get(int(c), 0) for c in clusters], dtype=int)
    return matched & (pred == y_true)


def cluster_accuracy(y_true, clusters) -> float:
    """Clustering accuracy: the fraction of samples whose cluster maps to their class under the best one-to-one
    mapping (Hungarian matching)."""
    y_true, clusters = _as_labels(y_true, "y_true"), _as_labels(clusters, "clusters")
    return float(np.mean(_correct(y_true, clusters, hungarian_mapping(y_true, clusters))))


def clustering_metrics(y_true, clusters, features: np.ndarray | None = None, mapping: dict | None = None) -> dict:
    """
    Every clustering metric of one labelled set.

    - ``accuracy``: clustering accuracy under ``mapping`` (default: the best one-to-one mapping on this set);
    - ``balanced_accuracy``: the mean per-class recall of the mapped predictions, so that a run that puts everything
      in one cluster scores ``1 / n_classes`` whatever the class balance;
    - ``nmi`` (arithmetic normalisation), ``ari``: scikit-learn's, independent of any mapping;
    - ``silhouette``: of ``features`` under the clusters (Euclidean; on a seeded random subsample of 5,000 for larger
      sets), NaN when fewer than 2 clusters are used or no features are given;
    - ``n_clusters_used``, ``largest_cluster_fraction`` and ``majority_rate``: a degenerate run is visible as such.

    Args:
        y_true: class labels (n,).
        clusters: cluster labels (n,).
        features: the clustered features (n, d) for the silhouette.
        mapping: cluster -> class mapping to use (e.g. the one fitted on the training set); clusters missing from it
            count as errors.
    """
    y_true, clusters = _as_labels(y_true, "y_true"), _as_labels(clusters, "clusters")
    if len(y_true) != len(clusters) or len(y_true) == 0:
        raise ValueError(f"need as many cluster labels as class labels (> 0), got {len(clusters)} and {len(y_true)}.")
    if features is not None and len(features) != len(clusters):
        raise ValueError(f"features have {len(features)} rows but there are {len(clusters)} cluster labels.")
    mapping = hungarian_mapping(y_true, clusters) if mapping is None else {int(k): int(v) for k, v in mapping.items()}
    correct = _correct(y_true, clusters, mapping)
    classes = np.unique(y_true)
    recalls = [float(np.mean(correct[y_true == c])) for c in classes]
    used = np.unique(clusters)
    silhouette = float("nan")
    if features is not None and 1 < len(used) < len(clusters):
        feats = np.asarray(features, dtype=np.float64).reshape(len(clusters), -1)
        silhouette = float(
            sk_metrics.silhouette_score(feats, clusters, sample_size=min(len(clusters), 5000), random_state=0)
        )
    return {
        "accuracy": float(np.mean(correct)),
        "balanced_accuracy": float(np.mean(recalls)),
        "nmi": float(sk_metrics.normalized_mutual_info_score(y_true, clusters)),
        "ari": float(sk_metrics.adjusted_rand_score(y_true, clusters)),
        "silhouette": silhouette,
        "n_clusters_used": int(len(used)),
        "largest_cluster_fraction": float(np.bincount(np.searchsorted(used, clusters)).max() / len(clusters)),
        "majority_rate": float(np.bincount(np.searchsorted(classes, y_true)).max() / len(y_true)),
        "n": int(len(y_true)),
    }


@dataclass
class ClusterModel:
    """A fitted clustering of latent features that can be saved as JSON and applied to new features.

    Attributes:
        method: ``kmeans`` or ``gmm``.
        centers: (k, d) centroids (k-means) or component means (GMM).
        covariances: (k, d, d) component covariances (GMM only).
        weights: (k,) component weights (GMM only).
        mapping: cluster -> class index (Hungarian, on the data it was fitted on), may be empty.
        class_names: names of the classes, in label order.
        selection: the model-selection scores per candidate number of clusters, when it was chosen.
        normalization: how raw features become the clustered ones (:data:`FEATURE_NORMALIZATIONS`); ``mean`` and
            ``scale`` hold the fitted statistics of ``standardize``.
    """

    method: str
    centers: np.ndarray
    covariances: np.ndarray | None = None
    weights: np.ndarray | None = None
    mapping: dict[int, int] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    selection: dict = field(default_factory=dict)
    normalization: str = "none"
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def n_clusters(self) -> int:
        return int(len(self.centers))

    def _check(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.centers.shape[1]:
            raise ValueError(
                f"features of shape {x.shape} do not match the cluster model ({self.centers.shape[1]}-dimensional)."
            )
        return x

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Raw features -> the space the clusters live in (the fitted normalisation)."""
        return normalize_features(features, self.normalization, self.mean, self.scale)[0]

    def log_likelihoods(self, features: np.ndarray) -> np.ndarray:
        """(n, k) log-density of each component (GMM, weights included) of *normalised* features."""
        x = self._check(features)
        out = np.empty((len(x), self.n_clusters))
        for j in range(self.n_clusters):
            cov = self.covariances[j]
            chol = np.linalg.cholesky(cov)
            diff = np.linalg.solve(chol, (x - self.centers[j]).T)
            maha = np.sum(diff**2, axis=0)
            logdet = 2.0 * np.sum(np.log(np.diag(chol)))
            out[:, j] = math.log(self.weights[j]) - 0.5 * (maha + logdet + x.shape[1] * math.log(2 * math.pi))
        return out

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster of each row of *raw* features (normalised here as at fitting) and a confidence: the distance to the
        nearest centroid (k-means) or the posterior probability of the chosen component (GMM)."""
        x = self._check(self.transform(self._check(features)))
        if self.method == "kmeans":
            d2 = ((x[:, None, :] - self.centers[None]) ** 2).sum(-1)
            idx = d2.argmin(1)
            return idx, np.sqrt(d2[np.arange(len(x)), idx])
        ll = self.log_likelihoods(x)
        idx = ll.argmax(1)
        post = np.exp(ll - ll.max(1, keepdims=True))
        post /= post.sum(1, keepdims=True)
        return idx, post[np.arange(len(x)), idx]

    def class_of(self, clusters: np.ndarray) -> list[str]:
        """The class name each cluster maps to ('' for an unmatched cluster)."""
        names = self.class_names

        def name(c: int) -> str:
            if c not in self.mapping:
                return ""
            k = self.mapping[c]
            return names[k] if 0 <= k < len(names) else str(k)

        return [name(int(c)) for c in clusters]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "centers": self.centers.tolist(),
            "covariances": None if self.covariances is None else self.covariances.tolist(),
            "weights": None if self.weights is None else self.weights.tolist(),
            "mapping": {str(k): int(v) for k, v in self.mapping.items()},
            "class_names": list(self.class_names),
            "selection": self.selection,
            "normalization": self.normalization,
            "mean": None if self.mean is None else self.mean.tolist(),
            "scale": None if self.scale is None else self.scale.tolist(),
        }

    def save(self, path: str | os.PathLike) -> str:
        """Write the model as JSON, atomically."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClusterModel:
        """Read a model written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file. ValueError: not a cluster model (the file is named).
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cluster model not found: {path} (run the bundle's evaluate.json first).")
        try:
            with open(path) as f:
                d = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a cluster model written by ClusterModel.save (not JSON: {e}).") from e
        if not isinstance(d, dict) or d.get("method") not in CLUSTER_METHODS or "centers" not in d:
            raise ValueError(f"{path} is not a cluster model written by ClusterModel.save.")
        return cls(
            method=d["method"],
            centers=np.asarray(d["centers"], dtype=np.float64),
            covariances=None if d.get("covariances") is None else np.asarray(d["covariances"], dtype=np.float64),
            weights=None if d.get("weights") is None else np.asarray(d["weights"], dtype=np.float64),
            mapping={int(k): int(v) for k, v in d.get("mapping", {}).items()},
            class_names=list(d.get("class_names", [])),
            selection=d.get("selection", {}),
            normalization=d.get("normalization", "none"),
            mean=None if d.get("mean") is None else np.asarray(d["mean"], dtype=np.float64),
            scale=None if d.get("scale") is None else np.asarray(d["scale"], dtype=np.float64),
        )


def _fit_one(x: np.ndarray, method: str, k: int, seed: int):
    if method == "kmeans":
        return sk_cluster.KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    return sk_mixture.GaussianMixture(
        n_components=k, covariance_type="full", reg_covar=1e-4, n_init=3, random_state=seed
    ).fit(x)


def fit_clusters(
    features: np.ndarray,
    method: str = "kmeans",
    n_clusters: int | None = None,
    k_range: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    criterion: str | None = None,
    seed: int = 0,
    normalization: str = "none",
) -> ClusterModel:
    """
    Fit k-means or a full-covariance GMM on features (n, d).

    Args:
        features: the latent features.
        method: ``kmeans`` or ``gmm``.
        n_clusters: the number of clusters; None chooses it in ``k_range`` by ``criterion``.
        k_range: candidate numbers of clusters.
        criterion: ``silhouette`` (highest; default for k-means) or ``bic`` (lowest; GMM only, its default).
        seed: random state.
        normalization: feature normalisation before clustering (kept in the model, applied by ``predict``).

    Raises:
        ValueError: an unknown method or criterion, or fewer samples than clusters.
    """
    if method not in CLUSTER_METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose from {list(CLUSTER_METHODS)}.")
    criterion = criterion or ("bic" if method == "gmm" else "silhouette")
    if criterion not in ("silhouette", "bic") or (criterion == "bic" and method != "gmm"):
        raise ValueError(
            f"criterion {criterion!r} is not available for {method!r} (k-means: silhouette; GMM: bic, silhouette)."
        )
    if np.asarray(features).ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {np.asarray(features).shape}.")
    x, mean, scale = normalize_features(features, normalization)
    norm = {"normalization": normalization, "mean": mean, "scale": scale}
    if n_clusters is not None:
        candidates = [int(n_clusters)]
        if candidates[0] < 1 or candidates[0] > len(x):
            raise ValueError(f"cannot fit {candidates[0]} clusters to {len(x)} samples.")
    else:  # a score needs 2 <= k <= n - 1
        candidates = sorted({int(k) for k in k_range if 2 <= int(k) < len(x)})
        if not candidates:
            raise ValueError(f"no candidate in k_range {list(k_range)} lies in 2..{len(x) - 1} for {len(x)} samples.")
    selection: dict = {}
    best, best_score = None, None
    for k in candidates:
        model = _fit_one(x, method, k, seed)
        if len(candidates) == 1:
            best = model
            break
        labels = model.predict(x)
        if criterion == "bic":
            score = float(model.bic(x))
            better = best_score is None or score < best_score
        else:
            score = (
                float(sk_metrics.silhouette_score(x, labels, sample_size=min(len(x), 5000), random_state=seed))
                if len(np.unique(labels)) > 1
                else -1.0
            )
            better = best_score is None or score > best_score
        selection[str(k)] = score
        if better:
            best, best_score = model, score
    if selection:
        selection = {"criterion": criterion, "scores": selection, "chosen": int(_n_components(best))}
    if method == "kmeans":
        return ClusterModel("kmeans", np.asarray(best.cluster_centers_, dtype=np.float64), selection=selection, **norm)
    return ClusterModel(
        "gmm",
        np.asarray(best.means_, dtype=np.float64),
        covariances=np.asarray(best.covariances_, dtype=np.float64),
        weights=np.asarray(best.weights_, dtype=np.float64),
        selection=selection,
        **norm,
    )


def _n_components(model) -> int:
    return int(getattr(model, "n_clusters", None) or model.n_components)
