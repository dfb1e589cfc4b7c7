"""EXAMINE: score unlabelled images by how much each one carries the dominant direction of the embeddings.

Huang, Lei and Li (2022, arXiv 2209.14434). Stack the embeddings of ``n`` images into ``X`` (``n x d``). The
marginal singular value of row ``i`` is ``MSV_i = s1(X) - s1(X without row i) >= 0``; the EXAMINE score is an
exponential (monotone) transform of it, so a top-k ranking by score is the ranking by ``MSV``.

The exact leave-one-out value needs no ``n`` SVDs. With ``G = X^T X = V diag(l) V^T`` (``l`` descending) and
``z_i = V^T x_i``, removing row ``i`` is the rank-one downdate ``G - x_i x_i^T``, whose largest eigenvalue is
``l_1 - delta_i`` where ``delta_i`` in ``[0, l_1 - l_2]`` is the root of the secular equation

    phi(delta) = delta * (1 + sum_{j>=2} z_ij^2 / (g_j - delta)) - z_i1^2 = 0,    g_j = l_1 - l_j.

``phi`` is increasing and convex on ``[0, g_2)``, so Newton's method started right of the root decreases
monotonically onto it (quadratically near it). The start solves the equation with the first pole exact and the
others frozen at ``delta = 0``: that root is an upper bound, closer than any fixed bracket even when ``l_1`` and
``l_2`` nearly coincide. Directions far below the top (``g_j >= separation * g_2``) enter through per-sample
power moments ``sum_j z_ij^2 g_j^-(p+1)`` (a geometric series in ``delta / g_j``), so each Newton step costs
``O(n k)`` for the ``k`` near-top directions instead of ``O(n d)``. Working in ``delta = l_1 - m`` and
``MSV = delta / (s1 + sqrt(l_1 - delta))`` avoids the cancellation of ``s1 - s1'``.

``n >> d`` uses the ``d x d`` covariance (and can stream rows from disk: memory ``O(d^2 + chunk_size * d)`` plus
the scores);
``d >> n`` uses the ``n x n`` Gram matrix instead, where ``z_ij = U_ij sqrt(l_j)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "EXAMINE_METHODS",
    "ExamineResult",
    "ExamineScorer",
    "brute_force_msv",
    "examine_scores",
    "examine_transform",
    "iter_chunks",
    "preprocess_embeddings",
]

EXAMINE_METHODS = ("exact", "first_order")


@dataclass
class ExamineResult:
    """Scores of one EXAMINE run.

    Attributes:
        msv: ``(n,)`` marginal change of the largest singular value when each row is removed (``>= 0``).
        scores: ``(n,)`` EXAMINE scores, ``exp((msv - max(msv)) / (temperature * mean(msv)))``: in ``[0, 1]``,
            non-decreasing in ``msv``; higher means label first. An outlier or a small temperature can underflow
            many scores to 0, so rank and select with ``ranking`` or ``msv``, and sample with ``log_scores``.
        ranking: ``(n,)`` row indices, highest MSV first (ties keep the input order).
        singular_value: ``s1(X)`` of the preprocessed embeddings.
        method: ``"exact"`` or ``"first_order"``.
        info: solver details (eigen-directions solved exactly, Newton iterations, moments used).
        temperature: the temperature of ``scores``.
    """

    msv: np.ndarray
    scores: np.ndarray
    ranking: np.ndarray
    singular_value: float
    method: str
    info: dict = field(default_factory=dict)
    temperature: float = 1.0

    @property
    def log_scores(self) -> np.ndarray:
        """``log(scores)`` without underflow: ``(msv - max(msv)) / (temperature * mean(msv))`` (0 for the best)."""
        scale = float(np.mean(self.msv)) if self.msv.size else 0.0
        if scale <= 0:
            return np.zeros_like(self.msv)
        return (self.msv - self.msv.max()) / (self.temperature * scale)


def examine_transform(msv: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Exponential transform of marginal singular values into EXAMINE scores.

    ``exp((msv - max) / (temperature * mean(msv)))``: the largest score is 1; dividing by the mean makes the
    temperature free of the embeddings' scale. The paper does not publish its exact form; any monotone transform
    leaves a top-k ranking unchanged and only matters for sums or sampling (``scores / scores.sum()``).

    Args:
        msv: marginal singular values (``>= 0``).
        temperature: positive; small values concentrate the mass on the top-ranked samples.

    Raises:
        ValueError: if ``temperature`` is not a positive finite number.
    """
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not (math.isfinite(float(temperature)) and float(temperature) > 0)
    ):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}.")
    msv = np.asarray(msv, dtype=np.float64)
    if msv.size == 0:
        return msv.copy()
    scale = float(np.mean(msv))
    if scale <= 0:
        return np.ones_like(msv)
    return np.exp((msv - msv.max()) / (temperature * scale))


def preprocess_embeddings(
    x: np.ndarray, center: bool = False, l2_normalize: bool = False, mean: np.ndarray | None = None
) -> np.ndarray:
    """L2-normalise rows (first) and/or subtract the mean row, in float64.

    Args:
        x: ``(n, d)`` embeddings.
        center: subtract ``mean`` (the mean of ``x`` when not given).
        l2_normalize: divide each row by its Euclidean norm (zero rows stay zero).
        mean: the mean row to subtract, e.g. of the whole set when ``x`` is one chunk of it.
    """
    x = np.asarray(x, dtype=np.float64)
    if l2_normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    if center:
        x = x - (x.mean(axis=0) if mean is None else mean)
    return x


def _validate(x: np.ndarray, name: str = "embeddings") -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {tuple(x.shape)}.")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 rows and 1 column to score, got shape {tuple(x.shape)}.")


def _check_finite(rows: np.ndarray, start: int) -> None:
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise ValueError(f"embeddings row {start + int(np.argmax(bad))} has a non-finite value (NaN or inf).")


def iter_chunks(x: np.ndarray, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, rows)`` blocks of ``x`` (works on ``np.memmap`` without loading the whole array)."""
    for start in range(0, x.shape[0], chunk_size):
        yield start, np.asarray(x[start : start + chunk_size])


def _start_bound(w: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Upper bound of each root: the equation with the second pole exact and every other term frozen at 0.

    Args:
        w: ``(m, d)`` squared coordinates ``z_ij^2`` on all eigen-directions (descending eigenvalues).
        gaps: ``(d,)`` ``l_1 - l_j`` (ascending, ``gaps[0] == 0``, ``gaps[1] > 0``).
    """
    g2 = gaps[1]
    tied = (gaps <= g2).astype(float)  # directions tied with the second one belong to the second pole
    tied[0] = 0.0
    inv_far = np.zeros_like(gaps)
    far = gaps > g2
    inv_far[far] = 1.0 / gaps[far]
    w1 = w[:, 0]
    w2 = w @ tied
    c = w @ inv_far
    a = 1.0 + c
    b = a * g2 + w1 + w2
    disc = np.sqrt(np.maximum(b * b - 4.0 * a * w1 * g2, 0.0))
    delta = 2.0 * w1 * g2 / (b + disc)
    # the root lies strictly below the second pole when the row has weight on it
    return np.where(w2 > 0, np.minimum(delta, g2 * (1.0 - 4 * np.finfo(float).eps)), np.minimum(delta, g2))


def _solve_downdate(
    w: np.ndarray,
    gaps: np.ndarray,
    moments: np.ndarray | None,
    delta: np.ndarray,
    max_iter: int = 100,
    tail_ref: float = 1.0,
) -> tuple[np.ndarray, int]:
    """Largest-eigenvalue decrease ``delta`` of each rank-one downdate, by Newton's method from the right.

    Args:
        w: ``(m, k)`` squared coordinates on the ``k`` near-top eigenvectors (column 0 = the top one).
        gaps: ``(k,)`` ``l_1 - l_j`` for those directions (``gaps[0] == 0``, ascending, ``gaps[1] > 0``).
        moments: ``(m, P)`` tail moments ``sum_{j>=k} z_j^2 (tail_ref / g_j)^(p+1)``, or None when every direction
            is in ``w``. Valid while ``delta <= gaps[k] / separation``, which the start guarantees.
        delta: ``(m,)`` start, an upper bound of the root (:func:`_start_bound`).
        max_iter: Newton iterations at most.
        tail_ref: the reference gap of ``moments`` (the nearest tail gap).

    Returns:
        ``delta`` (``(m,)``, in ``[0, gaps[1]]``) and the number of Newton iterations used.
    """
    delta = delta.copy()
    w1 = w[:, 0]
    wp, gp = w[:, 1:], gaps[None, 1:]
    active = np.flatnonzero((w1 > 0) & (delta > 0))
    iterations = 0
    while active.size and iterations < max_iter:
        iterations += 1
        d = delta[active]
        # sum_{j>=2} w_j / (g_j - delta) and its derivative; poles with no weight contribute nothing
        wj = wp[active]
        denom = gp - d[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(wj > 0, wj / denom, 0.0)
            value = t.sum(axis=1)
            deriv = np.where(wj > 0, t / denom, 0.0).sum(axis=1)
        if moments is not None:  # far tail: (1/ref) sum_p a_p t^p with t = delta / ref <= 1 / separation
            a = moments[active]
            t = d / tail_ref
            powers = t[:, None] ** np.arange(a.shape[1])[None, :]
            value += (a * powers).sum(axis=1) / tail_ref
            deriv += (a[:, 1:] * np.arange(1, a.shape[1])[None, :] * powers[:, :-1]).sum(axis=1) / tail_ref**2
        phi = d * (1.0 + value) - w1[active]
        step = phi / (1.0 + value + d * deriv)
        new = np.clip(d - step, 0.0, d)  # monotone from the right: never move up, never below zero
        delta[active] = new
        # stop where the step no longer changes delta at float64 resolution, or the root is reached
        done = (np.abs(d - new) <= 4 * np.finfo(float).eps * d) | (phi <= 0)
        active = active[~done]
    return delta, iterations


class ExamineScorer:
    """Exact (or first-order) EXAMINE scores of embeddings held in memory or streamed from disk.

    Example::

        scorer = ExamineScorer(center=False, l2_normalize=True)
        result = scorer.score(np.load("embeddings.npy", mmap_mode="r"))   # streams 8,192 rows at a time
        top = result.ranking[:100]                                         # label these first

    Args:
        method: ``"exact"`` (secular-equation solve, error ~1e-12) or ``"first_order"``
            (``(v_1^T x_i)^2 / (2 s1)``, the derivative of ``s1`` for a small row).
        center: subtract the mean embedding of the whole set before scoring (rows are then scored as they are:
            the mean is not recomputed without row ``i``).
        l2_normalize: divide every embedding by its norm (applied before centring).
        temperature: temperature of the exponential transform (see :func:`examine_transform`).
        chunk_size: rows per block when streaming (memory ``O(d^2 + chunk_size * d)`` plus the scores).
        separation: directions with ``l_1 - l_j >= separation * (l_1 - l_2)`` are summarised by power moments;
            the series error is at most ``separation^-moments`` of the tail's contribution.
        moments: number of power moments of the far tail.
        gram: ``"auto"`` uses the ``n x n`` Gram matrix when ``n < d`` and the array is in memory; ``"always"`` /
            ``"never"`` force the choice.

    Raises:
        ValueError: for an unknown method or gram option, or non-positive temperature, chunk size, separation
            or moments.
    """

    def __init__(
        self,
        method: str = "exact",
        center: bool = False,
        l2_normalize: bool = False,
        temperature: float = 1.0,
        chunk_size: int = 8192,
        separation: float = 8.0,
        moments: int = 14,
        gram: str = "auto",
    ) -> None:
        if method not in EXAMINE_METHODS:
            raise ValueError(f"method must be one of {EXAMINE_METHODS}, got {method!r}.")
        if gram not in ("auto", "always", "never"):
            raise ValueError(f"gram must be 'auto', 'always' or 'never', got {gram!r}.")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        if not separation > 1:
            raise ValueError(f"separation must be > 1 (the far tail must be far), got {separation!r}.")
        if int(moments) < 1:
            raise ValueError(f"moments must be a positive integer, got {moments!r}.")
        examine_transform(np.zeros(1), temperature)  # validates the temperature now, not after the long work
        self.method = method
        self.center = bool(center)
        self.l2_normalize = bool(l2_normalize)
        self.temperature = float(temperature)
        self.chunk_size = int(chunk_size)
        self.separation = float(separation)
        self.moments = int(moments)
        self.gram = gram

    # -- statistics -------------------------------------------------------------------------------------------
    def _mean(self, x: np.ndarray) -> np.ndarray | None:
        if not self.center:
            return None
        total = np.zeros(x.shape[1])
        for start, rows in iter_chunks(x, self.chunk_size):
            _check_finite(rows, start)
            total += preprocess_embeddings(rows, l2_normalize=self.l2_normalize).sum(axis=0)
        return total / x.shape[0]

    def _prep(self, rows: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
        return preprocess_embeddings(rows, center=self.center, l2_normalize=self.l2_normalize, mean=mean)

    def covariance(self, x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
        """``X^T X`` of the preprocessed rows, accumulated block by block in float64."""
        g = np.zeros((x.shape[1], x.shape[1]))
        for start, rows in iter_chunks(x, self.chunk_size):
            _check_finite(rows, start)  # the raw rows: normalising or centring would hide or spread a NaN
            r = self._prep(rows, mean)
            g += r.T @ r
        return g

    # -- scoring ----------------------------------------------------------------------------------------------
    def _score_rows(self, z: np.ndarray, gaps: np.ndarray, s1: float) -> tuple[np.ndarray, int, int]:
        """MSV of rows given their coordinates ``z`` on all eigen-directions (descending eigenvalues).

        Returns:
            the MSV, the Newton iterations used, and the most eigen-directions solved exactly for a row.
        """
        m, d = z.shape
        if s1 <= 0:
            return np.zeros(m), 0, 0
        if self.method == "first_order":
            return z[:, 0] ** 2 / (2.0 * s1), 0, 1
        if d == 1 or gaps[1] <= 0:  # one direction: the row is all on it; a repeated top cannot drop
            delta = z[:, 0] ** 2 if d == 1 else np.zeros(m)
            return delta / (s1 + np.sqrt(np.maximum(s1 * s1 - delta, 0.0))), 0, 1
        # work in units of l1 = s1^2 so that neither tiny nor huge embeddings underflow or overflow
        zu = z / s1
        w = zu * zu
        gaps = gaps / (s1 * s1)
        delta = _start_bound(w, gaps)
        # directions with gap >= separation * (start bound) enter through moments: the iterates stay below the
        # bound, so the series ratio stays <= 1 / separation. Rows are grouped by a power-of-two count of exact
        # directions, so one far-reaching row does not make the whole block expensive.
        min_k = max(2, int(np.count_nonzero(gaps <= gaps[1])))
        need = np.maximum(np.searchsorted(gaps, self.separation * delta, side="left"), min_k)
        bucket = np.minimum(2 ** np.ceil(np.log2(need)).astype(int), d)
        iterations, widest = 0, 0
        buckets = np.unique(bucket)
        for k in buckets:
            rows = np.flatnonzero(bucket == k) if len(buckets) > 1 else slice(None)
            moments, ref = None, 1.0
            if k < d:
                # moments relative to the nearest tail gap: (ref / g_j)^(p+1) <= 1, no overflow
                ref = float(gaps[k])
                powers = (ref / gaps[k:])[:, None] ** np.arange(1, self.moments + 1)[None, :]
                moments = w[rows, k:] @ powers
            delta[rows], it = _solve_downdate(w[rows, :k], gaps[:k], moments, delta[rows], tail_ref=ref)
            iterations, widest = max(iterations, it), max(widest, int(k))
        msv = s1 * delta / (1.0 + np.sqrt(np.maximum(1.0 - delta, 0.0)))
        return msv, iterations, widest

    def score(self, embeddings: np.ndarray | str | Path, progress: bool = False) -> ExamineResult:
        """Score every row of ``embeddings``.

        Args:
            embeddings: ``(n, d)`` array, ``np.memmap``, or the path of a ``.npy`` file (memory-mapped and
                streamed in ``chunk_size`` blocks).
            progress: show a progress bar over the blocks.

        Raises:
            FileNotFoundError: if a path is given that does not exist.
            ValueError: for a non-2-D array, fewer than 2 rows, or non-finite values (with the first bad row).
        """
        if isinstance(embeddings, (str, Path)):
            path = Path(embeddings)
            if not path.is_file():
                raise FileNotFoundError(f"embeddings file not found: {path}")
            x = np.load(path, mmap_mode="r")
        else:
            x = embeddings if isinstance(embeddings, np.ndarray) else np.asarray(embeddings)
        _validate(x)
        n, d = x.shape
        use_gram = self.gram == "always" or (self.gram == "auto" and n < d and not isinstance(x, np.memmap))
        mean = self._mean(x)
        if use_gram:
            _check_finite(np.asarray(x), 0)
            xp = self._prep(np.asarray(x), mean)
            eigvals, u = np.linalg.eigh(xp @ xp.T)
            eigvals, u = np.maximum(eigvals[::-1], 0.0), u[:, ::-1]
            s1 = math.sqrt(eigvals[0])
            gaps = eigvals[0] - eigvals
            z = u * np.sqrt(eigvals)[None, :]
            msv, iterations, widest = self._score_rows(z, gaps, s1)
            blocks = 1
        else:
            eigvals, v = np.linalg.eigh(self.covariance(x, mean))
            eigvals, v = np.maximum(eigvals[::-1], 0.0), np.ascontiguousarray(v[:, ::-1])
            s1 = math.sqrt(eigvals[0])
            gaps = eigvals[0] - eigvals
            msv = np.empty(n)
            iterations, widest = 0, 0
            chunks: Iterable = iter_chunks(x, self.chunk_size)
            if progress:
                from monai.utils import optional_import

                tqdm, has_tqdm = optional_import("tqdm", name="tqdm")
                if has_tqdm:
                    chunks = tqdm(chunks, total=math.ceil(n / self.chunk_size), desc="EXAMINE")
            blocks = 0
            # first order needs the top direction only
            proj = v[:, :1] if self.method == "first_order" else v
            for start, rows in chunks:
                z = self._prep(rows, mean) @ proj
                msv[start : start + len(rows)], it, wd = self._score_rows(z, gaps, s1)
                iterations, widest = max(iterations, it), max(widest, wd)
                blocks += 1
        if not np.isfinite(msv).all():
            raise FloatingPointError(
                f"EXAMINE produced {int((~np.isfinite(msv)).sum())} non-finite scores (s1 = {s1:.3g}); please report "
                "this with the embeddings' shape and scale."
            )
        msv = np.maximum(msv, 0.0)
        scores = examine_transform(msv, self.temperature)
        ranking = np.argsort(-msv, kind="stable")
        info = {
            "n": n,
            "d": d,
            "exact_directions": widest,
            "tail_moments": self.moments if widest < len(eigvals) and self.method == "exact" else 0,
            "newton_iterations": iterations,
            "gram": bool(use_gram),
            "blocks": blocks,
            "top_eigenvalue_gap": float(gaps[1]) if len(gaps) > 1 else 0.0,
        }
        return ExamineResult(
            msv=msv,
            scores=scores,
            ranking=ranking,
            singular_value=s1,
            method=self.method,
            info=info,
            temperature=self.temperature,
        )


def examine_scores(
    embeddings: np.ndarray | str | Path,
    center: bool = False,
    l2_normalize: bool = False,
    method: str = "exact",
    temperature: float = 1.0,
    **kwargs,
) -> ExamineResult:
    """EXAMINE scores of ``embeddings`` (array, memmap or ``.npy`` path); see :class:`ExamineScorer`."""
    scorer = ExamineScorer(method=method, center=center, l2_normalize=l2_normalize, temperature=temperature, **kwargs)
    return scorer.score(embeddings)


def brute_force_msv(embeddings: np.ndarray, center: bool = False, l2_normalize: bool = False) -> np.ndarray:
    """Reference: ``s1(X) - s1(X without row i)`` by one SVD per row (``O(n^2 d min(n, d))``; tests only)."""
    x = preprocess_embeddings(embeddings, center=center, l2_normalize=l2_normalize)
    _validate(x)
    s1 = np.linalg.svd(x, compute_uv=False)[0]
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = s1 - np.linalg.svd(np.delete(x, i, axis=0), compute_uv=False)[0]
    return out
