"""Selection baselines for the label-efficiency experiment (``monai_synpriv.assessment.selection``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from monai_synpriv.assessment import k_center_greedy, select_random, select_top


def _pairwise(x: np.ndarray) -> np.ndarray:
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def _brute_force_greedy(x: np.ndarray, k: int, first: int | None, prior=()) -> tuple[list[int], list[float]]:
    """Farthest-point traversal straight from the definition, on the full distance matrix."""
    dist = _pairwise(x)
    chosen = list(prior)
    new, radii = [], []
    for t in range(k):
        if t == 0 and not chosen:
            c = first
        else:
            to_set = dist[:, chosen].min(axis=1)
            to_set[chosen] = -1
            c = int(np.argmax(to_set))
        chosen.append(c)
        new.append(c)
        radii.append(float(dist[:, chosen].min(axis=1).max()))
    return new, radii


# -- k-center greedy -------------------------------------------------------------------------------------------


def test_k_center_hand_computed_on_a_line():
    # points 0, 1, 2, 10, 11 from 0: farthest is 11 (index 4); then 2 (distance 2); then 1 and 10 tie at 1: the lowest
    # index (1) wins; then 10; covering radii 11, 2, 1, 1, 0
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    sel, radius = k_center_greedy(x, 5, initial=0, return_radius=True)
    np.testing.assert_array_equal(sel, [0, 4, 2, 1, 3])
    np.testing.assert_allclose(radius, [11.0, 2.0, 1.0, 1.0, 0.0], atol=1e-12)
    assert sel.dtype == np.int64


def test_k_center_hand_computed_square():
    # corners of a 2 x 2 square and its centre, from corner 0: the opposite corner 3 (2 sqrt 2) first, then corners 1
    # and 2 (both at 2 from the set: index order), the centre last (sqrt 2 from every corner)
    x = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    sel, radius = k_center_greedy(x, 5, initial=0, return_radius=True)
    np.testing.assert_array_equal(sel, [0, 3, 1, 2, 4])
    np.testing.assert_allclose(radius, [2 * np.sqrt(2), 2.0, 2.0, np.sqrt(2), 0.0], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_equals_brute_force_greedy(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((150, 6)) * np.array([5, 3, 2, 1, 1, 0.5]) + 1.0
    sel, radius = k_center_greedy(x, 40, seed=seed, return_radius=True)
    first = int(np.random.default_rng(seed).integers(150))  # the documented seeded start
    assert sel[0] == first
    ref_sel, ref_radius = _brute_force_greedy(x, 40, first)
    np.testing.assert_array_equal(sel, ref_sel)
    np.testing.assert_allclose(radius, ref_radius, rtol=1e-10)
    assert (np.diff(radius) <= 0).all(), "covering radius must not increase"
    assert len(set(sel.tolist())) == 40


def test_k_center_already_selected_equals_brute_force():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 4))
    prior = [5, 17, 99]
    sel, radius = k_center_greedy(x, 20, already_selected=prior, return_radius=True)
    ref_sel, ref_radius = _brute_force_greedy(x, 20, None, prior=prior)
    np.testing.assert_array_equal(sel, ref_sel)
    np.testing.assert_allclose(radius, ref_radius, rtol=1e-10)
    assert not set(prior) & set(sel.tolist())
    # the seed plays no part once there is an already selected set
    np.testing.assert_array_equal(k_center_greedy(x, 20, seed=123, already_selected=prior), sel)


def test_k_center_deterministic_per_seed_and_nested():
    x = np.random.default_rng(4).standard_normal((300, 8)).astype(np.float32)
    a = k_center_greedy(x, 30, seed=7)
    np.testing.assert_array_equal(a, k_center_greedy(x, 30, seed=7))
    np.testing.assert_array_equal(k_center_greedy(x, 10, seed=7), a[:10])  # smaller budget = prefix
    starts = {int(k_center_greedy(x, 1, seed=s)[0]) for s in range(10)}
    assert len(starts) > 1, "the seed must choose the start"
    np.testing.assert_array_equal(k_center_greedy(x, 5, initial=42)[:1], [42])


def test_k_center_no_duplicates_with_duplicated_rows():
    base = np.random.default_rng(5).standard_normal((10, 3))
    x = np.vstack([base, base, base[:4]])  # 24 rows, 10 distinct points
    sel, radius = k_center_greedy(x, 24, seed=0, return_radius=True)
    assert sorted(sel.tolist()) == list(range(24))
    # the 10 distinct points come first; after them the covering radius is zero
    assert len({tuple(x[i]) for i in sel[:10]}) == 10
    np.testing.assert_allclose(radius[9:], 0.0, atol=1e-6)
    assert (np.diff(radius) <= 0).all()


def test_k_center_is_a_two_approximation():
    x = np.random.default_rng(6).standard_normal((12, 2))
    dist = _pairwise(x)
    optimum = min(dist[:, list(c)].min(axis=1).max() for c in itertools.combinations(range(12), 3))
    for start in range(12):
        _, radius = k_center_greedy(x, 3, initial=start, return_radius=True)
        assert optimum - 1e-12 <= radius[-1] <= 2 * optimum + 1e-12


def test_k_center_cosine_is_euclidean_on_normalised_rows():
    x = np.random.default_rng(7).standard_normal((80, 5)) + 0.5
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sel = k_center_greedy(x * 3.0, 15, initial=3, metric="cosine")
    np.testing.assert_array_equal(sel, _brute_force_greedy(unit, 15, 3)[0])
    np.testing.assert_array_equal(sel, k_center_greedy(unit, 15, initial=3))


def test_k_center_errors():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="larger than the number of samples"):
        k_center_greedy(x, 6)
    with pytest.raises(ValueError, match="at least 1"):
        k_center_greedy(x, 0)
    with pytest.raises(TypeError, match="integer"):
        k_center_greedy(x, 2.5)
    with pytest.raises(ValueError, match="larger than the number of samples n=3"):
        k_center_greedy(x, 4, already_selected=[0, 1])
    with pytest.raises(ValueError, match="initial must be an index"):
        k_center_greedy(x, 2, initial=5)
    with pytest.raises(ValueError, match="not both"):
        k_center_greedy(x, 2, initial=0, already_selected=[1])
    with pytest.raises(ValueError, match="outside"):
        k_center_greedy(x, 2, already_selected=[7])
    with pytest.raises(ValueError, match="metric"):
        k_center_greedy(x, 2, metric="manhattan")
    with pytest.raises(ValueError, match="2-D"):
        k_center_greedy(np.zeros(5), 2)
    bad = np.ones((5, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        k_center_greedy(bad, 2)


# -- top-k and random --------------------------------------------------------------------------------------------


def test_select_top_and_bottom():
    scores = np.array([0.5, 2.0, 0.5, -1.0, 3.0, 2.0])
    np.testing.assert_array_equal(select_top(scores, 3), [4, 1, 5])  # ties keep input order
    np.testing.assert_array_equal(select_top(scores, 3, end="bottom"), [3, 0, 2])
    np.testing.assert_array_equal(select_top(scores.tolist(), 6), [4, 1, 5, 0, 2, 3])
    assert select_top(scores, 1).dtype == np.int64


def test_select_top_errors():
    with pytest.raises(ValueError, match="end must be one of"):
        select_top([1.0, 2.0], 1, end="middle")
    with pytest.raises(ValueError, match="larger than the number of samples"):
        select_top([1.0, 2.0], 3)
    with pytest.raises(ValueError, match="at least 1"):
        select_top([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="NaN .*index 1"):
        select_top([1.0, np.nan], 1)
    with pytest.raises(ValueError, match="1-D"):
        select_top(np.ones((2, 2)), 1)


def test_select_random():
    a = select_random(1000, 100, seed=3)
    assert a.dtype == np.int64 and len(set(a.tolist())) == 100 and a.min() >= 0 and a.max() < 1000
    np.testing.assert_array_equal(a, select_random(1000, 100, seed=3))
    np.testing.assert_array_equal(select_random(1000, 10, seed=3), a[:10])  # nested budgets
    assert not np.array_equal(a, select_random(1000, 100, seed=4))
    assert sorted(select_random(7, 7, seed=0).tolist()) == list(range(7))
    with pytest.raises(ValueError, match="larger than the number of samples"):
        select_random(5, 6)
    with pytest.raises(ValueError, match="at least 1"):
        select_random(5, 0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        select_random(0, 1)


def test_select_weighted_follows_the_weights_and_nests():
    from monai_synpriv.assessment import select_weighted

    w = np.array([0.0, 1.0, 1.0, 8.0])
    draws = [select_weighted(w, 1, seed=s)[0] for s in range(2000)]
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq[0] == 0 and freq[3] == pytest.approx(0.8, abs=0.03) and freq[1] == pytest.approx(0.1, abs=0.03)
    big = select_weighted(np.arange(1.0, 51.0), 20, seed=3)
    assert len(set(big.tolist())) == 20 and np.array_equal(select_weighted(np.arange(1.0, 51.0), 5, seed=3), big[:5])
    with pytest.raises(ValueError, match="positive"):
        select_weighted(w, 4)
    with pytest.raises(ValueError, match="non-negative"):
        select_weighted([1.0, -1.0], 1)
