"""Label-efficiency curves: probe accuracy against the number of labelled images, per selection strategy."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .probes import classification_metrics, linear_probe

__all__ = ["budget_sizes", "label_efficiency", "plot_label_efficiency", "summarize_label_efficiency"]

#: a strategy maps (budget k, repeat index) to the indices of the pool images to label
Strategy = Callable[[int, int], Sequence[int]]


def budget_sizes(n_pool: int, fractions: Sequence[float]) -> list[int]:
    """``round(f * n_pool)`` for each fraction, at least 1 and at most ``n_pool``.

    Raises:
        ValueError: for a fraction outside ``(0, 1]``.
    """
    out = []
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"budget fractions must be in (0, 1], got {f}.")
        out.append(int(min(n_pool, max(1, round(f * n_pool)))))
    return out


def _probe_on_subset(train_x, train_y, test_x, test_y, idx: np.ndarray, seed: int) -> dict:
    """Linear probe on the labelled subset; one class only: predict that class (what a probe can do)."""
    y = train_y[idx]
    classes = np.unique(y)
    if len(classes) == 1:
        pred = np.full(len(test_y), classes[0])
    else:
        pred = linear_probe(train_x[idx], y, test_x, seed=seed)
    metrics = classification_metrics(test_y, pred)
    metrics["classes_labelled"] = int(len(classes))
    return metrics


def label_efficiency(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    fractions: Sequence[float],
    strategies: Mapping[str, tuple[Strategy, int]],
    progress: bool = True,
) -> list[dict]:
    """Probe accuracy for every strategy, budget and repeat.

    Args:
        train_x, train_y: embeddings and labels of the unlabelled pool (labels are read only for the picked images).
        test_x, test_y: held-out test embeddings and labels.
        fractions: budgets as fractions of the pool.
        strategies: name -> (strategy, repeats); a deterministic strategy has 1 repeat, random >= 5.
        progress: show a progress bar.

    Returns:
        one row per (strategy, budget, repeat): ``strategy, fraction, k, repeat`` and the test metrics
        (``accuracy``, ``balanced_accuracy`` ...), ``classes_labelled``.

    Raises:
        ValueError: if a strategy returns a wrong number of indices, duplicates, or indices outside the pool.
    """
    from tqdm import tqdm

    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    n = len(train_x)
    sizes = budget_sizes(n, fractions)
    jobs = [
        (name, f, k, r) for name, (_, reps) in strategies.items() for f, k in zip(fractions, sizes) for r in range(reps)
    ]
    rows = []
    for name, f, k, r in tqdm(jobs, desc="label efficiency", disable=not progress, leave=False):
        idx = np.asarray(strategies[name][0](k, r), dtype=int)
        if len(idx) != k or len(np.unique(idx)) != k or idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"strategy {name!r} returned {len(idx)} indices for k={k} (distinct, within 0..{n - 1}).")
        metrics = _probe_on_subset(train_x, train_y, test_x, test_y, idx, seed=r)
        rows.append({"strategy": name, "fraction": float(f), "k": int(k), "repeat": int(r), **metrics})
    return rows


def summarize_label_efficiency(rows: Sequence[dict], metric: str = "accuracy") -> dict:
    """strategy -> fraction -> ``{"k", "mean", "std", "n"}`` of ``metric`` over repeats."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["strategy"], {}).setdefault(row["fraction"], {"k": row["k"], "values": []})
        out[row["strategy"]][row["fraction"]]["values"].append(row[metric])
    for per_f in out.values():
        for cell in per_f.values():
            v = np.asarray(cell.pop("values"), dtype=float)
            cell.update(mean=float(v.mean()), std=float(v.std()), n=int(len(v)))
    return out


def plot_label_efficiency(
    summary: Mapping[str, Mapping[float, Mapping]],
    path: str | os.PathLike,
    metric: str = "accuracy",
    title: str | None = None,
    full_pool: float | None = None,
) -> str:
    """Plot ``metric`` against the number of labelled images (log x), one line per strategy with +-1 s.d. bands;
    ``full_pool`` draws the probe trained on the whole pool as a dashed line. Saved atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..visualize import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, per_f in summary.items():
        fs = sorted(per_f)
        k = np.array([per_f[f]["k"] for f in fs])
        mean = np.array([per_f[f]["mean"] for f in fs])
        std = np.array([per_f[f]["std"] for f in fs])
        (line,) = ax.plot(k, mean, marker="o", label=name)
        if np.any(std > 0):
            ax.fill_between(k, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    if full_pool is not None:
        ax.axhline(full_pool, color="grey", linestyle="--", label="all pool labels")
    ax.set_xscale("log")
    ax.set_xlabel("labelled images (log scale)")
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = save_figure(fig, path)
    plt.close(fig)
    return path
