"""Label-efficiency curves: budgets, strategy checks, the one-class fallback, summaries and the plot."""

from __future__ import annotations

import numpy as np
import pytest

from monai_synpriv.evaluation.label_efficiency import (
    budget_sizes,
    label_efficiency,
    plot_label_efficiency,
    summarize_label_efficiency,
)


def _blobs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 5)) + 3.0 * y[:, None]
    return x, y


def test_budget_sizes():
    assert budget_sizes(546, [0.01, 0.02, 0.05, 0.1, 0.2]) == [5, 11, 27, 55, 109]
    assert budget_sizes(10, [0.01, 1.0]) == [1, 10]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        budget_sizes(10, [0.0])


def test_curves_rows_summary_and_plot(tmp_path):
    train_x, train_y = _blobs(200, 0)
    test_x, test_y = _blobs(100, 1)
    one_class = np.flatnonzero(train_y == 0)
    strategies = {
        "first": (lambda k, r: np.arange(k), 1),
        "random": (lambda k, r: np.random.default_rng(r).permutation(200)[:k], 3),
        "one_class": (lambda k, r: one_class[:k], 1),
    }
    rows = label_efficiency(train_x, train_y, test_x, test_y, [0.05, 0.2], strategies, progress=False)
    assert len(rows) == (1 + 3 + 1) * 2
    assert {r["k"] for r in rows} == {10, 40}
    # separable blobs: 40 labelled images of both classes give a near-perfect probe
    assert all(r["accuracy"] > 0.9 for r in rows if r["strategy"] == "random" and r["k"] == 40)
    # one class labelled: the probe can only predict that class
    for r in rows:
        if r["strategy"] == "one_class":
            assert r["classes_labelled"] == 1
            assert r["accuracy"] == pytest.approx(np.mean(test_y == 0))
    summary = summarize_label_efficiency(rows)
    cell = summary["random"][0.2]
    values = [r["accuracy"] for r in rows if r["strategy"] == "random" and r["k"] == 40]
    assert cell["n"] == 3 and cell["k"] == 40
    assert cell["mean"] == pytest.approx(np.mean(values)) and cell["std"] == pytest.approx(np.std(values))
    path = plot_label_efficiency(summary, tmp_path / "curve.png", full_pool=0.99, title="blobs")
    assert (tmp_path / "curve.png").stat().st_size > 5000 and path.endswith("curve.png")


def test_bad_strategies_are_named():
    x, y = _blobs(50, 2)
    for bad in (lambda k, r: np.zeros(k, int), lambda k, r: np.arange(k + 1), lambda k, r: np.arange(k) + 49):
        with pytest.raises(ValueError, match="strategy 'bad'"):
            label_efficiency(x, y, x, y, [0.1], {"bad": (bad, 1)}, progress=False)
