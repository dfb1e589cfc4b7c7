"""Image-text retrieval metrics for paired embeddings (a ConVIRT-style dual encoder): the cosine similarity matrix,
Recall@K and median rank in both directions (image -> text, text -> image), with optional groups of interchangeable
texts (identical captions shared by several images of one case), and the agreement of synthetic image-caption pairs
under a model trained on real data (mean paired cosine and an exact AUC against every other text).

All functions are pure: they take numpy arrays or torch tensors and return numpy arrays / plain Python floats."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
from scipy.special import gammaln

__all__ = ["TIE_RULES", "image_text_agreement", "retrieval_ranks", "retrieval_recall", "similarity_matrix"]

#: how equal scores are ranked: ``pessimistic`` puts every wrong candidate whose score equals the best correct one
#: above it (a deterministic worst case); ``expected`` averages over a uniformly random order of the tied candidates
#: (Recall@K is then the exact probability, the rank its expectation), so a constant matrix scores exactly chance.
TIE_RULES = ("pessimistic", "expected")


def _as_2d_float(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf).")
    return arr


def similarity_matrix(image_emb, text_emb) -> np.ndarray:
    """Cosine similarity of every image embedding with every text embedding.

    Args:
        image_emb: (N, D) image embeddings, numpy array or torch tensor (any float dtype, any device).
        text_emb: (M, D) text embeddings.

    Returns:
        float64 array (N, M); entry ``[i, j]`` is the cosine of image ``i`` and text ``j``. Both sets are
        L2-normalised first (a zero vector stays zero, so its similarities are 0).

    Raises:
        ValueError: inputs that are not 2-D, hold NaN/inf, or differ in feature size.
    """
    img = _as_2d_float(image_emb, "image_emb")
    txt = _as_2d_float(text_emb, "text_emb")
    if img.shape[1] != txt.shape[1]:
        raise ValueError(f"image_emb and text_emb must share the feature size, got shapes {img.shape} and {txt.shape}.")
    img = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
    return img @ txt.T


def _square_similarity(similarity) -> np.ndarray:
    if isinstance(similarity, torch.Tensor):
        similarity = similarity.detach().to("cpu", torch.float64).numpy()
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] == 0:
        raise ValueError(
            f"similarity must be a non-empty square (images, texts) matrix with the true pairs on the diagonal, "
            f"got shape {sim.shape} ({sim.shape[0] if sim.ndim >= 1 else 0} images vs "
            f"{sim.shape[1] if sim.ndim >= 2 else 0} texts)."
        )
    if not np.all(np.isfinite(sim)):
        raise ValueError("similarity holds non-finite values (NaN or inf).")
    return sim


def _correct_mask(n: int, text_groups: Sequence[Hashable] | None) -> np.ndarray:
    """(n, n) boolean mask of the correct matches: the diagonal, plus every pair sharing a group."""
    if text_groups is None:
        return np.eye(n, dtype=bool)
    groups = list(text_groups)
    if len(groups) != n:
        raise ValueError(f"text_groups must have one entry per row ({n}), got {len(groups)}.")
    codes: dict[Hashable, int] = {}
    ids = np.array([codes.setdefault(g, len(codes)) for g in groups])
    return (ids[:, None] == ids[None, :]) | np.eye(n, dtype=bool)


def _tie_counts(sim: np.ndarray, correct: np.ndarray, tie_tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query row: wrong candidates strictly above the best correct score, wrong candidates tied with it, and
    correct candidates tied with it (at least 1)."""
    best = np.where(correct, sim, -np.inf).max(axis=1, keepdims=True)
    above = sim > best + tie_tol
    tied = ~above & (sim >= best - tie_tol)
    wrong = ~correct
    return (above & wrong).sum(1), (tied & wrong).sum(1), (tied & correct).sum(1)


def retrieval_ranks(
    similarity, text_groups: Sequence[Hashable] | None = None, ties: str = "pessimistic", tie_tol: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of the first correct match for every query, both directions.

    Args:
        similarity: square (N, N) scores, ``similarity[i, j]`` = image ``i`` vs text ``j``; the true pair is ``(i, i)``.
        text_groups: optional group per row (e.g. the caption string or case id); items of equal group are correct
            matches of one another too.
        ties: a :data:`TIE_RULES` entry. ``pessimistic``: rank = 1 + number of wrong candidates scoring at least the
            best correct one. ``expected``: rank = 1 + (wrong strictly above) + (wrong tied) / (correct tied + 1),
            the mean rank under a random order of the ties.
        tie_tol: scores within this absolute distance of the best correct score count as ties (0: exact equality).

    Returns:
        ``(i2t_ranks, t2i_ranks)``, float64 arrays of length N (integers under ``pessimistic``).
    """
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose from {list(TIE_RULES)}.")
    sim = _square_similarity(similarity)
    correct = _correct_mask(len(sim), text_groups)
    out = []
    for s in (sim, sim.T):  # the group mask is symmetric, so it serves both directions
        above, tied_wrong, tied_correct = _tie_counts(s, correct, tie_tol)
        if ties == "pessimistic":
            out.append((1 + above + tied_wrong).astype(np.float64))
        else:
            out.append(1 + above + tied_wrong / (tied_correct + 1.0))
    return out[0], out[1]


def _recall_at_k_expected(above: np.ndarray, m: np.ndarray, c: np.ndarray, k: int) -> float:
    """Mean over queries of P(rank <= k) under a uniformly random order of the tied candidates.

    With ``m`` wrong and ``c`` correct candidates tied, the number X of wrong ones placed before the first correct one
    has P(X >= x) = C(m + c - x, c) / C(m + c, c); rank = 1 + above + X."""
    t = k - 1 - above  # rank <= k  <=>  X <= t
    x = np.clip(t + 1, 0, m)
    log_tail = gammaln(m + c - x + 1) - gammaln(m - x + 1) - gammaln(m + c + 1) + gammaln(m + 1)
    prob = np.where(t < 0, 0.0, np.where(t >= m, 1.0, 1.0 - np.exp(log_tail)))
    return float(prob.mean())


def retrieval_recall(
    similarity,
    k: Sequence[int] | int = (1, 5, 10),
    text_groups: Sequence[Hashable] | None = None,
    ties: str = "pessimistic",
    tie_tol: float = 0.0,
) -> dict[str, float]:
    """Recall@K and median rank for image -> text and text -> image retrieval.

    A query is a hit at K when its first correct match ranks within the top K (1-based ranks). The true pair of image
    ``i`` is text ``i``; with ``text_groups`` every text of the same group is correct too (and for text -> image every
    image of the same group), so duplicate captions do not make R@1 ambiguous.

    Ties are ranked deterministically by the ``pessimistic`` rule (default): a wrong candidate whose score equals the
    best correct one counts as ranked above it. A constant matrix therefore gets the worst rank N for every query
    (R@K = 0 for K < N, never a perfect score). ``ties="expected"`` instead gives the exact expectation under a random
    order of the tied candidates, i.e. exactly chance level (R@K = K/N) for a constant matrix.

    Args:
        similarity: square (N, N) scores (numpy or torch), ``similarity[i, j]`` = image ``i`` vs text ``j``.
        k: the cut-offs K (positive integers; K >= N gives 1).
        text_groups: optional hashable group per row (caption string, case id...).
        ties: a :data:`TIE_RULES` entry.
        tie_tol: scores within this absolute distance of the best correct score count as ties.

    Returns:
        ``{"i2t_R@1": ..., "i2t_R@5": ..., "t2i_R@1": ..., ..., "i2t_median_rank": ..., "t2i_median_rank": ...}``;
        recalls are fractions in [0, 1].

    Raises:
        ValueError: a non-square / empty / non-finite matrix, bad ``k``, ``text_groups`` of the wrong length, or an
            unknown tie rule.
    """
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose from {list(TIE_RULES)}.")
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1 for v in ks):
        raise ValueError(f"k must be positive integers, got {k!r}.")
    sim = _square_similarity(similarity)
    correct = _correct_mask(len(sim), text_groups)
    out: dict[str, float] = {}
    medians: dict[str, float] = {}
    for name, s in (("i2t", sim), ("t2i", sim.T)):
        above, tied_wrong, tied_correct = _tie_counts(s, correct, tie_tol)
        if ties == "pessimistic":
            ranks = 1.0 + above + tied_wrong
            for v in ks:
                out[f"{name}_R@{int(v)}"] = float(np.mean(ranks <= v))
        else:
            ranks = 1 + above + tied_wrong / (tied_correct + 1.0)
            for v in ks:
                out[f"{name}_R@{int(v)}"] = _recall_at_k_expected(above, tied_wrong, tied_correct, int(v))
        medians[f"{name}_median_rank"] = float(np.median(ranks))
    return {**out, **medians}


def image_text_agreement(image_emb, text_emb, text_groups: Sequence[Hashable] | None = None) -> dict[str, float]:
    """How well paired images and texts agree under an embedding model, e.g. synthetic images vs the captions they
    were generated from, embedded by a dual encoder trained on real data.

    The AUC is exact: over every query row and every *other* candidate (same-group candidates are left out when
    ``text_groups`` is given), the fraction where the true pair scores higher, ties counting 1/2 (so unrelated or
    constant embeddings give 0.5).

    Args:
        image_emb: (N, D) image embeddings (numpy or torch); row ``i`` pairs with text row ``i``.
        text_emb: (N, D) text embeddings.
        text_groups: optional group per row; candidates sharing the query's group are not used as negatives.

    Returns:
        ``{"pair_cosine": mean cosine of the true pairs, "other_cosine": mean cosine of the negative pairs,
        "i2t_auc": P(image i closer to its text than to another text), "t2i_auc": P(text i closer to its image than
        to another image), "n_pairs": N}``. Both AUCs are NaN when no negative exists (N = 1 or a single group).

    Raises:
        ValueError: unequal row counts or feature sizes, non-2-D or non-finite input.
    """
    sim = similarity_matrix(image_emb, text_emb)
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(
            f"image_emb and text_emb must be paired row by row, got {sim.shape[0]} images and {sim.shape[1]} texts."
        )
    n = len(sim)
    if n == 0:
        raise ValueError("image_text_agreement needs at least one pair.")
    negative = ~_correct_mask(n, text_groups)
    diag = np.diag(sim)
    out = {"pair_cosine": float(diag.mean())}
    n_neg = int(negative.sum())
    out["other_cosine"] = float(sim[negative].mean()) if n_neg else float("nan")
    for name, s in (("i2t", sim), ("t2i", sim.T)):
        d = diag[:, None]
        wins = ((d > s) & negative).sum() + 0.5 * ((d == s) & negative).sum()
        out[f"{name}_auc"] = float(wins / n_neg) if n_neg else float("nan")
    out["n_pairs"] = n
    return out
