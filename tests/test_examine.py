"""EXAMINE scores (``monai_synpriv.assessment.examine``) against brute-force leave-one-out SVDs.

The reference in every accuracy test is ``s1(X) - s1(X without row i)`` from one ``np.linalg.svd`` per row, computed
here (``_loo_svd``) independently of the module, on the same preprocessing. The issue's bound is a maximum absolute
error of 1e-8; where the scores themselves are that small (near-degenerate top eigenvalue) the error is also bounded
relative to the largest score, so that a solver that ignored the second eigen-direction would fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import DATA, require

from monai_synpriv.assessment import (
    ExamineResult,
    ExamineScorer,
    brute_force_msv,
    examine_scores,
    examine_transform,
    iter_chunks,
    preprocess_embeddings,
)

TOL = 1e-8  # the bound on the maximum absolute error


def _loo_svd(x: np.ndarray, rows=None, center: bool = False, l2_normalize: bool = False) -> np.ndarray:
    """Brute force: s1(X) - s1(X without row i) by SVD, after the given preprocessing (done here, not by the module)."""
    x = np.asarray(x, dtype=np.float64)
    if l2_normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0)
    if center:
        x = x - x.mean(axis=0)
    rows = range(len(x)) if rows is None else rows
    s1 = np.linalg.svd(x, compute_uv=False)[0]
    return np.array([s1 - np.linalg.svd(np.delete(x, i, axis=0), compute_uv=False)[0] for i in rows])


def _orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def _with_spectrum(rng: np.random.Generator, n: int, s: np.ndarray) -> np.ndarray:
    """X = Q diag(s) R: orthonormal columns Q (n x d) and a random rotation R (d x d), singular values exactly s."""
    d = len(s)
    return _orthonormal(rng, n, d) @ np.diag(s) @ _orthonormal(rng, d, d)


def _assert_matches(msv: np.ndarray, ref: np.ndarray, rel: float | None = None) -> None:
    err = float(np.max(np.abs(msv - ref)))
    assert err <= TOL, f"max abs error {err:.3e} > {TOL}"
    if rel is not None:
        assert err <= rel * float(np.max(np.abs(ref))), f"max abs error {err:.3e} vs largest MSV {np.max(ref):.3e}"


# -- exactness on random embeddings ------------------------------------------------------------------------------


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("l2_normalize", [False, True])
def test_exact_equals_brute_force_n_much_larger_than_d(center, l2_normalize):
    rng = np.random.default_rng(0)
    # decaying spectrum + a mean offset, like ReLU features: many directions, some far (tail moments) and some near
    x = np.abs(rng.standard_normal((300, 24))) * np.linspace(2.0, 0.2, 24) + 0.5
    result = examine_scores(x, center=center, l2_normalize=l2_normalize)
    assert isinstance(result, ExamineResult) and result.method == "exact"
    assert not result.info["gram"]
    ref = _loo_svd(x, center=center, l2_normalize=l2_normalize)
    _assert_matches(result.msv, ref, rel=1e-10)
    assert (result.msv >= 0).all()
    xp = preprocess_embeddings(x, center=center, l2_normalize=l2_normalize)
    assert result.singular_value == pytest.approx(np.linalg.svd(xp, compute_uv=False)[0], rel=1e-12)


@pytest.mark.parametrize("gram", ["auto", "always", "never"])
@pytest.mark.parametrize("center,l2_normalize", [(False, False), (True, False), (True, True)])
def test_exact_equals_brute_force_d_much_larger_than_n(gram, center, l2_normalize):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 300)) + 0.3 * rng.standard_normal(300)
    result = examine_scores(x, center=center, l2_normalize=l2_normalize, gram=gram)
    assert result.info["gram"] is (gram != "never"), "auto must use the n x n Gram matrix when n < d"
    _assert_matches(result.msv, _loo_svd(x, center=center, l2_normalize=l2_normalize), rel=1e-10)


def test_gram_always_on_tall_matrix():
    x = np.random.default_rng(2).standard_normal((60, 5))
    a = examine_scores(x, gram="always")
    b = examine_scores(x, gram="never")
    assert a.info["gram"] and not b.info["gram"]
    np.testing.assert_allclose(a.msv, b.msv, rtol=0, atol=1e-12)
    _assert_matches(a.msv, _loo_svd(x), rel=1e-10)


def test_hand_computed_example_and_zero_projection():
    # G = diag(9, 2): s1 = 3. Without row 0: G = diag(0, 2), s1 = sqrt(2). Rows 1, 2 are orthogonal to the top
    # direction: removing one leaves s1 = 3, MSV = 0.
    x = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    result = examine_scores(x)
    np.testing.assert_allclose(result.msv, [3 - math.sqrt(2), 0.0, 0.0], atol=1e-14)
    assert result.singular_value == pytest.approx(3.0)
    np.testing.assert_array_equal(result.ranking, [0, 1, 2])  # ties keep the input order
    np.testing.assert_allclose(brute_force_msv(x), [3 - math.sqrt(2), 0.0, 0.0], atol=1e-14)


def test_rows_with_zero_projection_on_top_direction_score_zero():
    rng = np.random.default_rng(3)
    x = np.zeros((60, 6))
    x[:20, 0] = 10 * rng.standard_normal(20)  # top direction e1
    x[20:, 1:] = rng.standard_normal((40, 5))  # orthogonal to it
    result = examine_scores(x)
    assert np.max(np.abs(result.msv[20:])) <= 1e-12
    assert (result.msv[:20] > 0).all()
    _assert_matches(result.msv, _loo_svd(x), rel=1e-10)
    assert set(result.ranking[:20].tolist()) == set(range(20))


def test_duplicated_rows():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((100, 8)) + 1.0
    x = np.vstack([base, base[:10], base[:3], base[[5] * 4]])  # doubles, triples and a row five times
    result = examine_scores(x)
    _assert_matches(result.msv, _loo_svd(x), rel=1e-10)
    np.testing.assert_allclose(result.msv[100:110], result.msv[:10], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.msv[113:], result.msv[5], rtol=1e-12)


def test_one_dominant_row_and_its_duplicate():
    # the root of the secular equation lies next to the second pole: the hardest case for the solver
    rng = np.random.default_rng(5)
    x = rng.standard_normal((100, 10))
    x[7] = 50 * rng.standard_normal(10)
    _assert_matches(examine_scores(x).msv, _loo_svd(x), rel=1e-12)
    x[8] = x[7]
    _assert_matches(examine_scores(x).msv, _loo_svd(x), rel=1e-12)


def test_all_rows_identical():
    x = np.tile([[1.0, -2.0, 0.5]], (5, 1))  # rank one: s1 = sqrt(5)|x|, without a row sqrt(4)|x|
    norm = np.linalg.norm(x[0])
    np.testing.assert_allclose(examine_scores(x).msv, (math.sqrt(5) - 2) * norm, rtol=1e-12)


@pytest.mark.parametrize("rel_gap", [1e-9, 1e-8, 1e-7, 1e-6])
def test_near_degenerate_top_eigenvalue(rel_gap):
    rng = np.random.default_rng(6)
    s = np.linspace(20.0, 2.0, 12)
    s[1] = s[0] * math.sqrt(1 - rel_gap)  # l2 = l1 (1 - rel_gap)
    x = _with_spectrum(rng, 150, s)
    result = examine_scores(x)
    assert result.info["top_eigenvalue_gap"] == pytest.approx(rel_gap * s[0] ** 2, rel=1e-3)
    ref = _loo_svd(x)
    # MSV <= (l1 - l2) / (2 s') is tiny here: bound the error against the largest score too
    _assert_matches(result.msv, ref, rel=1e-4)
    assert result.msv.max() <= rel_gap * s[0] ** 2 / (2 * s[1]) * (1 + 1e-6)
    # first order ignores the second direction and overshoots by orders of magnitude: this is what is tested
    first = examine_scores(x, method="first_order").msv
    assert first.max() > 10 * ref.max()


def test_cluster_of_near_degenerate_eigenvalues():
    rng = np.random.default_rng(7)
    s = np.linspace(30.0, 3.0, 20)
    s[1:8] = s[0] * np.sqrt(1 - 1e-7 * np.arange(1, 8))
    x = _with_spectrum(rng, 200, s)
    _assert_matches(examine_scores(x).msv, _loo_svd(x), rel=1e-4)


def test_exactly_repeated_top_eigenvalue_gives_zero():
    # s1 = s2: removing any row leaves s1 (interlacing), every MSV is 0 up to rounding
    rng = np.random.default_rng(8)
    s = np.array([10.0, 10.0, 7.0, 3.0, 1.0, 0.5])
    x = _with_spectrum(rng, 80, s)
    result = examine_scores(x)
    assert result.msv.max() <= 1e-12 * s[0]
    _assert_matches(result.msv, _loo_svd(x))


def test_rank_deficient():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((100, 3)) @ rng.standard_normal((3, 12))  # rank 3 in 12 dimensions
    for center in (False, True):
        _assert_matches(examine_scores(x, center=center).msv, _loo_svd(x, center=center), rel=1e-10)
    wide = x[:8]  # 8 x 12 of rank 3: the Gram path, with zero eigenvalues
    assert examine_scores(wide).info["gram"]
    _assert_matches(examine_scores(wide).msv, _loo_svd(wide), rel=1e-10)
    xt = wide.T.copy()  # 12 x 8 of rank 3
    _assert_matches(examine_scores(xt).msv, _loo_svd(xt), rel=1e-10)


def test_single_feature():
    x = np.random.default_rng(10).standard_normal((50, 1))
    norm2 = float(np.sum(x**2))
    expected = math.sqrt(norm2) - np.sqrt(norm2 - x[:, 0] ** 2)
    result = examine_scores(x)
    np.testing.assert_allclose(result.msv, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(result.ranking, np.argsort(-np.abs(x[:, 0]), kind="stable"))


def test_all_zero_embeddings():
    result = examine_scores(np.zeros((5, 3)))
    np.testing.assert_array_equal(result.msv, 0.0)
    np.testing.assert_array_equal(result.scores, 1.0)
    np.testing.assert_array_equal(result.ranking, np.arange(5))


def test_solver_options_do_not_change_the_result():
    rng = np.random.default_rng(11)
    x = np.abs(rng.standard_normal((400, 48))) * np.linspace(1.0, 0.05, 48) ** 2 + 0.2
    ref = examine_scores(x, separation=1e6).msv  # every direction solved exactly
    for kwargs in ({}, {"separation": 2.0, "moments": 30}, {"separation": 16.0, "moments": 8}):
        np.testing.assert_allclose(examine_scores(x, **kwargs).msv, ref, rtol=1e-9, atol=1e-13)
    rows = list(range(0, 400, 20)) + [int(np.argmax(ref))]
    _assert_matches(ref[rows], _loo_svd(x, rows=rows), rel=1e-10)


def test_brute_force_reference_matches_independent_loop():
    x = np.random.default_rng(12).standard_normal((30, 4)) + 1
    for kwargs in ({}, {"center": True}, {"l2_normalize": True}, {"center": True, "l2_normalize": True}):
        np.testing.assert_allclose(brute_force_msv(x, **kwargs), _loo_svd(x, **kwargs), atol=1e-14)


# -- preprocessing ---------------------------------------------------------------------------------------------


def test_preprocess_embeddings():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    l2 = preprocess_embeddings(x, l2_normalize=True)
    assert l2.dtype == np.float64
    np.testing.assert_allclose(l2, [[0.6, 0.8], [0, 0], [1, 0]], atol=1e-7)
    both = preprocess_embeddings(x, center=True, l2_normalize=True)  # normalise first, then centre
    np.testing.assert_allclose(both, l2 - l2.mean(axis=0), atol=1e-7)
    np.testing.assert_allclose(preprocess_embeddings(x, center=True, mean=np.ones(2)), x - 1.0, atol=1e-7)


# -- streaming ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("center,l2_normalize", [(False, False), (True, False), (True, True)])
def test_streaming_from_npy_matches_in_memory(tmp_path, center, l2_normalize):
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((203, 16)) * np.linspace(3, 0.3, 16) + 2.0).astype(np.float32)
    path = tmp_path / "emb.npy"
    np.save(path, x)
    kwargs = dict(center=center, l2_normalize=l2_normalize)
    memory = examine_scores(x, **kwargs)
    from_path = examine_scores(path, chunk_size=7, **kwargs)
    from_str = examine_scores(str(path), chunk_size=50, **kwargs)
    from_memmap = ExamineScorer(chunk_size=7, **kwargs).score(np.load(path, mmap_mode="r"))
    assert memory.info["blocks"] == 1 and from_path.info["blocks"] == math.ceil(203 / 7)
    for streamed in (from_path, from_str, from_memmap):
        np.testing.assert_allclose(streamed.msv, memory.msv, rtol=1e-9, atol=1e-14)
        np.testing.assert_array_equal(streamed.ranking[:20], memory.ranking[:20])
    # with centring, the mean subtracted from every chunk is that of the whole file
    _assert_matches(from_path.msv, _loo_svd(x, **kwargs), rel=1e-9)


def test_streaming_wide_memmap_uses_covariance(tmp_path):
    x = np.random.default_rng(14).standard_normal((30, 80))
    np.save(tmp_path / "wide.npy", x)
    result = examine_scores(tmp_path / "wide.npy", chunk_size=4, center=True)
    assert not result.info["gram"], "a memmap is streamed: no n x n Gram matrix"
    _assert_matches(result.msv, _loo_svd(x, center=True), rel=1e-10)


def test_iter_chunks_covers_every_row_once():
    x = np.arange(23 * 2).reshape(23, 2)
    chunks = list(iter_chunks(x, 5))
    assert [s for s, _ in chunks] == [0, 5, 10, 15, 20]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), x)


# -- first-order approximation -------------------------------------------------------------------------------------


def test_first_order_formula():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((120, 10)) + 0.5
    for center in (False, True):
        xp = preprocess_embeddings(x, center=center)
        _, s, vt = np.linalg.svd(xp, full_matrices=False)
        result = examine_scores(x, method="first_order", center=center)
        assert result.method == "first_order"
        np.testing.assert_allclose(result.msv, (xp @ vt[0]) ** 2 / (2 * s[0]), rtol=1e-10, atol=1e-15)


def test_first_order_is_the_small_row_limit_of_exact():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((200, 12)) + 0.3
    ratios = []
    for t in (1e-1, 1e-2, 1e-3):
        xt = x.copy()
        xt[0] *= t  # shrink one row: exact -> first order with relative error O(t^2)
        exact = examine_scores(xt).msv[0]
        first = examine_scores(xt, method="first_order").msv[0]
        ratios.append(abs(first / exact - 1))
    assert ratios[1] < 0.05 * ratios[0] and ratios[2] < 0.05 * ratios[1] + 1e-9
    assert ratios[2] < 1e-5
    # on many rows that are each small against the whole, the two rank alike
    exact, first = examine_scores(x).msv, examine_scores(x, method="first_order").msv
    assert _spearman(exact, first) > 0.99
    np.testing.assert_allclose(first, exact, rtol=0.2)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# -- exponential transform -------------------------------------------------------------------------------------


def test_transform_values():
    msv = np.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(examine_transform(msv), np.exp((msv - 3.0) / (4.0 / 3.0)))
    np.testing.assert_allclose(examine_transform(msv, 0.5), np.exp((msv - 3.0) / (0.5 * 4.0 / 3.0)))
    # free of the embeddings' scale
    np.testing.assert_allclose(examine_transform(1e-6 * msv, 2.0), examine_transform(msv, 2.0))
    np.testing.assert_array_equal(examine_transform(np.zeros(4)), 1.0)
    assert examine_transform(np.array([])).size == 0


def test_temperature_keeps_ranking_and_concentrates():
    x = np.abs(np.random.default_rng(17).standard_normal((500, 20))) * np.linspace(1, 0.1, 20)
    top_share, entropy = [], []
    rankings = []
    for temperature in (4.0, 1.0, 0.5, 0.25):
        result = examine_scores(x, temperature=temperature)
        s = result.scores
        assert ((s > 0) & (s <= 1)).all() and s.max() == 1.0
        assert s[result.ranking[0]] == 1.0
        assert (np.diff(s[result.ranking]) <= 0).all(), "scores must be monotone in MSV"
        rankings.append(result.ranking)
        p = s / s.sum()
        top_share.append(np.sort(p)[::-1][:50].sum())
        entropy.append(-(p * np.log(p)).sum())
    for ranking in rankings[1:]:
        np.testing.assert_array_equal(ranking, rankings[0])
    assert all(a < b for a, b in zip(top_share, top_share[1:])), top_share
    assert all(a > b for a, b in zip(entropy, entropy[1:])), entropy


def test_ranking_by_score_equals_ranking_by_msv():
    """The transform is monotone: sorting the scores (where they do not underflow) or their logarithms gives the
    MSV ranking, for every temperature, also with one dominant image."""
    x = np.random.default_rng(5).standard_normal((400, 12))
    x[7] *= 30.0  # one image carries the top direction: its MSV is ~1000x the mean
    for temperature in (5.0, 1.0, 0.1):
        result = examine_scores(x, temperature=temperature)
        order_msv = np.argsort(-result.msv, kind="stable")
        np.testing.assert_array_equal(result.ranking, order_msv)
        np.testing.assert_array_equal(np.argsort(-result.log_scores, kind="stable"), order_msv)
        np.testing.assert_allclose(np.exp(result.log_scores), result.scores, rtol=1e-12, atol=0)
        positive = result.scores > 0
        kept = order_msv[positive[order_msv]]  # the scores that did not underflow keep the MSV order strictly
        assert (np.diff(result.scores[kept]) < 0).all()
    assert (result.scores == 0).sum() > 100  # at T = 0.1 most scores underflow: why selection uses msv / log_scores


def test_tiny_and_huge_embeddings_are_scored_exactly():
    x = np.random.default_rng(6).standard_normal((120, 16))
    reference = _loo_svd(x)
    for scale in (1e-30, 1e-12, 1e12, 1e100):
        msv = examine_scores(x * scale).msv
        assert np.isfinite(msv).all()
        assert np.abs(msv / scale - reference).max() <= 1e-10, scale


# -- real embeddings -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def breast_images() -> np.ndarray:
    data = np.load(require(DATA / "medmnist" / "breastmnist.npz"))
    return data["train_images"][:400].astype(np.float32) / 255.0  # real ultrasound images, 28 x 28


@pytest.fixture(scope="module")
def breast_embeddings(breast_images) -> np.ndarray:
    """A fixed-seed MONAI ResNet-10 (2D, widths / 4) embeds 400 real ultrasound images into 128 ReLU features."""
    import torch
    from monai.networks.nets import resnet10

    torch.manual_seed(0)
    net = resnet10(spatial_dims=2, n_input_channels=1, feed_forward=False, widen_factor=0.25).eval()
    with torch.no_grad():
        emb = net(torch.from_numpy(breast_images)[:, None]).numpy()
    assert emb.shape == (400, 128)
    return emb


@pytest.mark.parametrize("center,l2_normalize", [(False, False), (True, False), (False, True)])
def test_real_embeddings_match_brute_force(breast_embeddings, center, l2_normalize):
    result = examine_scores(breast_embeddings, center=center, l2_normalize=l2_normalize)
    rng = np.random.default_rng(18)
    rows = np.unique(np.concatenate([result.ranking[:10], result.ranking[-5:], rng.choice(400, 25, replace=False)]))
    ref = _loo_svd(breast_embeddings, rows=rows, center=center, l2_normalize=l2_normalize)
    _assert_matches(result.msv[rows], ref, rel=1e-9)
    # top-k by score is top-k by MSV
    np.testing.assert_array_equal(np.argsort(-result.scores, kind="stable")[:10], result.ranking[:10])


def test_real_pixels_wide_gram_path(breast_images):
    x = breast_images[:100].reshape(100, -1)  # 100 images x 784 pixels: d > n
    for center, l2_normalize in ((False, False), (True, True)):
        result = examine_scores(x, center=center, l2_normalize=l2_normalize)
        assert result.info["gram"]
        rows = np.unique(np.concatenate([result.ranking[:10], np.arange(0, 100, 7)]))
        ref = _loo_svd(x, rows=rows, center=center, l2_normalize=l2_normalize)
        _assert_matches(result.msv[rows], ref, rel=1e-10)


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"center": True},
        {"l2_normalize": True},
        {"center": True, "l2_normalize": True},
        {"gram": "always"},
        {"gram": "always", "center": True},
    ],
)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_row_is_named(kwargs, bad):
    x = np.random.default_rng(19).standard_normal((50, 8))
    x[23, 2] = bad
    with pytest.raises(ValueError, match=r"row 23 .*non-finite"):
        examine_scores(x, **kwargs)


def test_non_finite_row_is_named_when_streaming(tmp_path):
    x = np.random.default_rng(20).standard_normal((50, 8))
    x[23, 2] = np.nan
    np.save(tmp_path / "bad.npy", x)
    with pytest.raises(ValueError, match=r"row 23 "):
        examine_scores(tmp_path / "bad.npy", chunk_size=5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(5), r"2-D array .*\(5,\)"),
        (np.zeros((2, 3, 4)), r"2-D array"),
        (np.zeros((1, 4)), r"at least 2 rows"),
        (np.zeros((3, 0)), r"at least 2 rows and 1 column"),
    ],
)
def test_bad_shapes(bad, message):
    with pytest.raises(ValueError, match=message):
        examine_scores(bad)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        examine_scores(tmp_path / "missing.npy")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "svd"}, "method must be one of"),
        ({"temperature": 0.0}, "temperature must be a positive"),
        ({"temperature": -1.0}, "temperature must be a positive"),
        ({"temperature": float("nan")}, "temperature must be a positive"),
        ({"temperature": float("inf")}, "temperature must be a positive"),
        ({"gram": "sometimes"}, "gram must be"),
        ({"chunk_size": 0}, "chunk_size must be"),
        ({"separation": 1.0}, "separation must be"),
        ({"moments": 0}, "moments must be"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExamineScorer(**kwargs)
    with pytest.raises(ValueError, match=message):
        examine_scores(np.ones((4, 2)), **kwargs)
    if "temperature" in kwargs:
        with pytest.raises(ValueError, match=message):
            examine_transform(np.ones(3), kwargs["temperature"])


def test_numpy_scalar_temperature_is_accepted():
    x = np.random.default_rng(21).standard_normal((20, 3))
    for temperature in (np.float32(0.5), np.int64(2)):
        assert examine_scores(x, temperature=temperature).scores.max() == 1.0
