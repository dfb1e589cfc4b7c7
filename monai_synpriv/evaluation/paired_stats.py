"""Paired-by-seed comparison of two arms: the mean accuracy difference and the error reduction, with 95 % intervals.

Two arms trained and probed under the same seed share the seed's data order, initialisation and probe subsets, so
their per-seed results are paired: the interval is a Student-t interval over the per-seed differences (not over the
two arms' spreads separately). The error reduction ``(1 - acc_base) / (1 - acc_arm)`` is summarised by its geometric
mean over seeds, with the t-interval of the per-seed log ratios transformed back. A result is worded as an effect only
when the difference's interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["paired_comparison", "verdict"]


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    from scipy import stats

    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def verdict(low: float, high: float, n: int) -> str:
    """``"better"``/``"worse"`` when the difference's interval excludes zero, ``"no effect shown"`` when it includes
    it, ``"one seed: no interval"`` below two seeds."""
    if n < 2 or math.isnan(low) or math.isnan(high):
        return "one seed: no interval"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no effect shown"


def paired_comparison(
    accuracy_arm: Sequence[float], accuracy_base: Sequence[float], confidence: float = 0.95
) -> dict[str, float | int | str]:
    """Compare an arm with a baseline seed by seed.

    Args:
        accuracy_arm: the arm's accuracy for each seed.
        accuracy_base: the baseline's accuracy for the same seeds, in the same order.
        confidence: the intervals' level.

    Returns:
        ``n_seeds``, ``diff_mean`` (arm - base), ``diff_ci_low``/``diff_ci_high``, ``er`` (geometric mean of the
        per-seed error reductions; ``inf`` when the arm made no error in some seed), ``er_ci_low``/``er_ci_high``
        (NaN below two seeds or with an infinite ratio), and ``verdict`` (:func:`verdict`).

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    a = np.asarray(accuracy_arm, dtype=float)
    b = np.asarray(accuracy_base, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired comparison needs the same seeds on both sides, got {len(a)} and {len(b)} values.")
    diff, low, high = _t_interval(a - b, confidence)
    err_a, err_b = 1.0 - a, 1.0 - b
    if (err_a <= 0).any() or (err_b <= 0).any():
        er, er_low, er_high = float("inf") if (err_a <= 0).any() else 0.0, float("nan"), float("nan")
    else:
        log_mean, log_low, log_high = _t_interval(np.log(err_b / err_a), confidence)
        er, er_low, er_high = math.exp(log_mean), math.exp(log_low), math.exp(log_high)
    return {
        "n_seeds": int(len(a)),
        "diff_mean": diff,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "er": er,
        "er_ci_low": er_low,
        "er_ci_high": er_high,
        "verdict": verdict(low, high, len(a)),
    }
