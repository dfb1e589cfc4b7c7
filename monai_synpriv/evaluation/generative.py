"""Distribution metrics of generated samples in a feature space: the Frechet distance (FID when the features come
from Inception; MONAI's :class:`~monai.metrics.FIDMetric` does the work), improved precision / recall (Kynkaanniemi
et al., NeurIPS 2019) and density / coverage (Naeem et al., ICML 2020), both from exact k-nearest-neighbour balls.

All functions are pure: they take (samples, features) numpy arrays or torch tensors and return plain Python floats."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import FIDMetric
from scipy.spatial.distance import cdist

__all__ = ["density_coverage", "frechet_distance", "knn_radii", "precision_recall"]

#: rows of the query set per block of the pairwise distance matrix (bounds memory at ~block * n * 8 bytes)
_BLOCK = 2048


def _features(x, name: str, min_rows: int = 1) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}.")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {arr.shape[0]} (shape {arr.shape}).")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {arr.shape}).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf).")
    return arr


def _pair(real_feats, fake_feats, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    real = _features(real_feats, "real_feats", min_rows)
    fake = _features(fake_feats, "fake_feats", min_rows)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real_feats and fake_feats must share the feature size, got shapes {real.shape} and {fake.shape}."
        )
    return real, fake


def frechet_distance(real_feats, fake_feats) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID for Inception features):
    ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with unbiased (N - 1) covariances.

    Computed by :class:`monai.metrics.FIDMetric` in float64 (a single feature is handled by the same formula in
    closed form, since MONAI's covariance helper squeezes a 1x1 matrix to a scalar). Rounding can make the result of
    identical sets a tiny negative number; it is clamped at 0.

    Args:
        real_feats: (N, D) features of real images (numpy or torch).
        fake_feats: (M, D) features of generated images.

    Returns:
        the distance, a float >= 0.

    Raises:
        ValueError: either set with fewer than 2 rows, unequal feature sizes, non-2-D or non-finite input.
    """
    real, fake = _pair(real_feats, fake_feats, min_rows=2)
    if real.shape[1] == 1:
        var_r, var_f = real[:, 0].var(ddof=1), fake[:, 0].var(ddof=1)
        value = (real.mean() - fake.mean()) ** 2 + var_r + var_f - 2.0 * np.sqrt(var_r * var_f)
    else:
        value = FIDMetric()(torch.from_numpy(fake), torch.from_numpy(real)).item()
    return float(max(value, 0.0))


def knn_radii(feats, k: int) -> np.ndarray:
    """Distance of every row to its k-th nearest neighbour in the same set, the row itself excluded (exact,
    Euclidean). Duplicated rows are distinct neighbours at distance 0."""
    x = _features(feats, "feats", min_rows=k + 1)
    radii = np.empty(len(x))
    for start in range(0, len(x), _BLOCK):
        d = cdist(x[start : start + _BLOCK], x)
        # the k+1-th smallest distance: the row's own 0 is one of the k+1 smallest whatever the order of ties
        radii[start : start + _BLOCK] = np.partition(d, k, axis=1)[:, k]
    return radii


def _ball_counts(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each query, the number of balls ``B(centre, radius)`` (closed) that contain it."""
    counts = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), _BLOCK):
        d = cdist(queries[start : start + _BLOCK], centres)
        counts[start : start + _BLOCK] = (d <= radii[None, :]).sum(1)
    return counts


def _check_k(k: int, real: np.ndarray, fake: np.ndarray | None = None) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    for name, x in (("real_feats", real), ("fake_feats", fake)):
        if x is not None and len(x) <= k:
            raise ValueError(f"k={k} needs more than k rows in {name}, got {len(x)}.")


def precision_recall(real_feats, fake_feats, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, https://arxiv.org/abs/1904.06991).

    Each sample gets a ball reaching its k-th nearest neighbour within its own set (the sample itself excluded); the
    union of a set's balls estimates its manifold. Precision = fraction of fake samples inside at least one real ball
    (fidelity); recall = fraction of real samples inside at least one fake ball (diversity). Balls are closed
    (``distance <= radius``); distances are exact Euclidean in float64.

    Args:
        real_feats: (N, D) real features (numpy or torch), N > k.
        fake_feats: (M, D) generated features, M > k.
        k: the neighbour defining the radius (the paper uses 3).

    Returns:
        ``{"precision": ..., "recall": ...}`` in [0, 1].

    Raises:
        ValueError: k < 1, a set with k rows or fewer, unequal feature sizes, non-2-D or non-finite input.
    """
    real, fake = _pair(real_feats, fake_feats, min_rows=1)
    _check_k(k, real, fake)
    precision = np.mean(_ball_counts(fake, real, knn_radii(real, k)) > 0)
    recall = np.mean(_ball_counts(real, fake, knn_radii(fake, k)) > 0)
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real_feats, fake_feats, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020, https://arxiv.org/abs/2002.09797), from the real k-NN balls only
    (closed balls, exact distances, the sample itself excluded from its neighbours).

    density = (1 / (k M)) * sum over fake samples of the number of real balls containing it (1 on average when the
    fake set matches the real distribution; can exceed 1); coverage = fraction of real samples whose ball contains at
    least one fake sample.

    Args:
        real_feats: (N, D) real features (numpy or torch), N > k.
        fake_feats: (M, D) generated features, M >= 1.
        k: the neighbour defining the radius (the paper uses 5).

    Returns:
        ``{"density": ..., "coverage": ...}``.

    Raises:
        ValueError: k < 1, k >= N, unequal feature sizes, non-2-D or non-finite input.
    """
    real, fake = _pair(real_feats, fake_feats, min_rows=1)
    _check_k(k, real)
    radii = knn_radii(real, k)
    density = _ball_counts(fake, real, radii).sum() / (k * len(fake))
    covered = np.zeros(len(real), dtype=bool)
    for start in range(0, len(fake), _BLOCK):
        covered |= (cdist(fake[start : start + _BLOCK], real) <= radii[None, :]).any(0)
    return {"density": float(density), "coverage": float(covered.mean())}
