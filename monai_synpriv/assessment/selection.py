"""Baselines that EXAMINE is compared with in the label-efficiency experiment: which ``k`` images to label.

* :func:`select_top`: the ``k`` highest (or lowest) scores, e.g. of EXAMINE.
* :func:`select_random`: ``k`` images uniformly at random.
* :func:`k_center_greedy`: the core-set (diversity) baseline of Sener and Savarese (2018, "Active learning for
  convolutional neural networks: a core-set approach"): start from one point and repeatedly add the point farthest
  from the selected set, a 2-approximation of the minimax facility location (k-center) problem.

All three return row indices in selection order, and their prefixes are nested: the first ``k`` of a selection of
``k' > k`` is the selection of ``k`` (same scores or seed). A label-efficiency curve can therefore select once for
the largest budget and slice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SELECTION_ENDS", "k_center_greedy", "select_random", "select_top", "select_weighted"]

SELECTION_ENDS = ("top", "bottom")


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__} {k!r}.")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of samples n={n}.")
    return int(k)


def select_top(scores: np.ndarray | Sequence[float], k: int, end: str = "top") -> np.ndarray:
    """Indices of the ``k`` highest (``end="top"``) or lowest (``end="bottom"``) scores.

    Args:
        scores: ``(n,)`` scores; for EXAMINE pass :attr:`ExamineResult.msv` (``.scores`` can underflow to ties
            at 0 when one image dominates or the temperature is small).
        k: number of indices to return, ``1 <= k <= n``.
        end: ``"top"`` (highest first) or ``"bottom"`` (lowest first).

    Returns:
        ``(k,)`` int64 indices, best first; ties keep the input order (stable sort).

    Raises:
        ValueError: for a non-1-D or empty ``scores``, NaN scores, ``k`` out of range or an unknown ``end``.
    """
    if end not in SELECTION_ENDS:
        raise ValueError(f"end must be one of {SELECTION_ENDS}, got {end!r}.")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {scores.shape}.")
    nan = np.isnan(scores)
    if nan.any():
        raise ValueError(f"scores contain NaN (first at index {int(np.argmax(nan))}).")
    k = _check_k(k, scores.size)
    order = np.argsort(-scores if end == "top" else scores, kind="stable")
    return order[:k].astype(np.int64)


def select_random(n: int, k: int, seed: int | None = 0) -> np.ndarray:
    """``k`` distinct indices out of ``range(n)``, uniformly at random.

    The indices are the first ``k`` of a permutation drawn with ``numpy.random.default_rng(seed)``, so for one seed
    a smaller budget is a prefix of a larger one.

    Args:
        n: number of samples.
        k: number of indices, ``1 <= k <= n``.
        seed: seed of the generator (None: fresh entropy, not reproducible).

    Returns:
        ``(k,)`` int64 indices in draw order.

    Raises:
        ValueError: for ``n < 1`` or ``k`` out of range.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    k = _check_k(k, int(n))
    return np.random.default_rng(seed).permutation(int(n))[:k].astype(np.int64)


def select_weighted(
    weights: np.ndarray | Sequence[float], k: int, seed: int | None = 0, log: bool = False
) -> np.ndarray:
    """``k`` distinct indices drawn without replacement with probability proportional to ``weights``.

    With EXAMINE scores as weights this samples the pool by score (the use the exponential transform and its
    temperature are for) instead of taking the top of the ranking. Drawn by the Gumbel-top-k trick: the ``k``
    largest ``log(w) + Gumbel`` keys, so for one seed a smaller budget is a prefix of a larger one.

    Args:
        weights: ``(n,)`` non-negative, finite, at least ``k`` of them positive; with ``log=True``, log-weights
            (finite, e.g. :attr:`ExamineResult.log_scores`, which never underflow).
        k: number of indices, ``1 <= k <= n``.
        seed: seed of the generator.
        log: ``weights`` are log-weights.

    Returns:
        ``(k,)`` int64 indices in draw order.

    Raises:
        ValueError: for negative or non-finite weights, fewer than ``k`` positive weights, or ``k`` out of range.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}.")
    if log:
        if not np.isfinite(w).all():
            raise ValueError("log-weights must be finite.")
        k = _check_k(k, w.size)
        log_w = w
    else:
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative.")
        k = _check_k(k, w.size)
        if np.count_nonzero(w) < k:
            raise ValueError(f"only {np.count_nonzero(w)} weights are positive: cannot draw {k} distinct indices.")
        with np.errstate(divide="ignore"):
            log_w = np.log(w)
    with np.errstate(invalid="ignore"):
        keys = log_w + np.random.default_rng(seed).gumbel(size=w.size)
    order = np.argsort(-keys, kind="stable")
    return order[:k].astype(np.int64)


def k_center_greedy(
    embeddings: np.ndarray,
    k: int,
    seed: int | None = 0,
    initial: int | None = None,
    already_selected: Sequence[int] | np.ndarray | None = None,
    metric: str = "euclidean",
    return_radius: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Core-set selection by greedy k-center (farthest-point traversal), Sener and Savarese (2018).

    Start from one point, then repeatedly add the point whose distance to its nearest selected point is largest.
    Each step is one matrix-vector product (``||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c``) and an update of the
    ``(n,)`` vector of distances to the nearest selected point: ``O(n k d)`` time and ``O(n)`` memory besides the
    embeddings (and their float64 copy when they are not float64 already).

    Args:
        embeddings: ``(n, d)`` array.
        k: number of points to select, ``1 <= k <= n - len(already_selected)``.
        seed: when neither ``initial`` nor ``already_selected`` is given, the first point is drawn uniformly with
            ``numpy.random.default_rng(seed).integers(n)``. Everything after the first point is deterministic
            (ties go to the lowest index).
        initial: index of the first point (counted in ``k``); overrides ``seed``.
        already_selected: indices already labelled: the greedy starts from their distances and returns ``k`` new
            points (none of these); overrides ``seed``. Cannot be combined with ``initial``.
        metric: ``"euclidean"``, or ``"cosine"`` (Euclidean on L2-normalised rows, the same order as cosine
            distance; zero rows stay at the origin).
        return_radius: also return the covering radius after each selection.

    Returns:
        ``(k,)`` int64 indices in selection order (a prefix of the order is the selection for a smaller ``k``),
        and, with ``return_radius``, ``(k,)`` float64 radii: ``radius[t]`` is the largest distance from any point
        to its nearest selected point (``already_selected`` included) once ``t + 1`` points are selected;
        non-increasing.

    Raises:
        ValueError: for a non-2-D or non-finite ``embeddings``, ``k`` out of range, an ``initial`` or
            ``already_selected`` index out of range, both given, or an unknown ``metric``.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"embeddings must be a non-empty 2-D array (n_samples, n_features), got shape {x.shape}.")
    x = np.ascontiguousarray(x, dtype=np.float64)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"embeddings row {int(np.argmin(finite))} has a non-finite value (NaN or inf).")
    n = x.shape[0]
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    if initial is not None and already_selected is not None:
        raise ValueError("give either initial or already_selected, not both.")
    prior = np.zeros(0, dtype=np.int64)
    if already_selected is not None:
        prior = np.unique(np.asarray(already_selected, dtype=np.int64).ravel())
        if prior.size and (prior.min() < 0 or prior.max() >= n):
            raise ValueError(f"already_selected has indices outside [0, {n}).")
    k = _check_k(k, n - prior.size)
    if initial is not None:
        if isinstance(initial, bool) or not isinstance(initial, (int, np.integer)) or not 0 <= initial < n:
            raise ValueError(f"initial must be an index in [0, {n}), got {initial!r}.")

    sq = np.einsum("ij,ij->i", x, x)
    min_d2 = np.full(n, np.inf)

    def add(c: int) -> None:
        d2 = sq + sq[c] - 2.0 * (x @ x[c])
        np.minimum(min_d2, np.maximum(d2, 0.0), out=min_d2)
        min_d2[c] = -1.0  # selected: never chosen again, even among exact duplicates

    for c in prior:
        add(int(c))
    selected = np.empty(k, dtype=np.int64)
    radius = np.empty(k)
    for t in range(k):
        if t == 0 and prior.size == 0:
            c = int(initial) if initial is not None else int(np.random.default_rng(seed).integers(n))
        else:
            c = int(np.argmax(min_d2))
        selected[t] = c
        add(c)
        radius[t] = np.sqrt(max(float(min_d2.max()), 0.0))
    return (selected, radius) if return_radius else selected
