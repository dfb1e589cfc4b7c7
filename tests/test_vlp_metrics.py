"""Vision-language evaluation metrics (monai_synpriv.evaluation.retrieval / generative).

Retrieval is checked on a 4x4 matrix ranked by hand in both directions, against brute force over every order of the
tied candidates, and on the edge cases (identity, constant matrix, duplicate captions, non-square input); the Frechet
distance against the closed form on data whose sample moments are known exactly; precision / recall and density /
coverage on constructed sets and against a brute-force loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from monai_synpriv.evaluation.generative import density_coverage, frechet_distance, knn_radii, precision_recall
from monai_synpriv.evaluation.retrieval import (
    image_text_agreement,
    retrieval_ranks,
    retrieval_recall,
    similarity_matrix,
)

# ---------------------------------------------------------------------------------------------------------------------
# retrieval

#: image i (row) vs text j (column); the true pairs are on the diagonal
HAND = np.array(
    [
        [0.9, 0.1, 0.2, 0.3],  # i2t: 0.9 is the best -> rank 1
        [0.8, 0.5, 0.6, 0.1],  # 0.8, 0.6 above 0.5 -> rank 3
        [0.1, 0.2, 0.3, 0.4],  # 0.4 above 0.3 -> rank 2
        [0.7, 0.6, 0.5, 0.4],  # three above 0.4 -> rank 4
    ]
)
# t2i (columns): col 0 -> 1; col 1: 0.6 above 0.5 -> 2; col 2: 0.6, 0.5 above 0.3 -> 3;
# col 3: 0.4 (image 2) ties the true 0.4 -> 2 pessimistic, 1.5 expected


def test_similarity_matrix_cosine_numpy_and_torch():
    img = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    txt = np.array([[2.0, 0.0], [0.0, 5.0]])
    expected = np.array([[1.0, 0.0], [np.sqrt(0.5), np.sqrt(0.5)], [0.0, 0.0]])
    np.testing.assert_allclose(similarity_matrix(img, txt), expected, atol=1e-12)
    out = similarity_matrix(torch.tensor(img, dtype=torch.float32, requires_grad=True), torch.tensor(txt))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="feature size"):
        similarity_matrix(img, np.ones((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        similarity_matrix(img[0], txt)


def test_retrieval_hand_computed_4x4():
    i2t, t2i = retrieval_ranks(HAND)
    np.testing.assert_array_equal(i2t, [1, 3, 2, 4])
    np.testing.assert_array_equal(t2i, [1, 2, 3, 2])
    r = retrieval_recall(HAND, k=(1, 2, 3))
    assert list(r) == [
        "i2t_R@1", "i2t_R@2", "i2t_R@3", "t2i_R@1", "t2i_R@2", "t2i_R@3", "i2t_median_rank", "t2i_median_rank"
    ]  # fmt: skip
    assert r["i2t_R@1"] == 0.25 and r["i2t_R@2"] == 0.5 and r["i2t_R@3"] == 0.75
    assert r["t2i_R@1"] == 0.25 and r["t2i_R@2"] == 0.75 and r["t2i_R@3"] == 1.0
    assert r["i2t_median_rank"] == 2.5 and r["t2i_median_rank"] == 2.0
    # expected tie rule: only column 3 has a tie (one wrong, one correct) -> rank 1.5, P(R@1) = 1/2
    e = retrieval_recall(HAND, k=(1, 2), ties="expected")
    assert e["t2i_R@1"] == pytest.approx(0.375) and e["t2i_R@2"] == pytest.approx(0.75)
    assert e["t2i_median_rank"] == pytest.approx(1.75) and e["i2t_R@1"] == 0.25
    # torch input, a single int k
    assert retrieval_recall(torch.tensor(HAND), k=1) == {
        "i2t_R@1": 0.25, "t2i_R@1": 0.25, "i2t_median_rank": 2.5, "t2i_median_rank": 2.0
    }  # fmt: skip


def test_retrieval_identity_is_perfect_default_keys():
    r = retrieval_recall(np.eye(12))
    assert set(r) == {f"{d}_R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)} | {
        "i2t_median_rank",
        "t2i_median_rank",
    }
    assert all(r[f"{d}_R@{k}"] == 1.0 for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert r["i2t_median_rank"] == r["t2i_median_rank"] == 1.0


def test_retrieval_constant_matrix_is_not_perfect():
    n = 10
    const = np.full((n, n), 0.3)
    r = retrieval_recall(const, k=(1, 5, 10))
    # pessimistic: every wrong candidate ties the true one and counts above it -> worst rank n, at most chance
    for d in ("i2t", "t2i"):
        assert r[f"{d}_R@1"] == 0.0 and r[f"{d}_R@5"] == 0.0 and r[f"{d}_R@10"] == 1.0
        assert r[f"{d}_median_rank"] == n
        assert r[f"{d}_R@1"] <= 1 / n and r[f"{d}_R@5"] <= 5 / n
    e = retrieval_recall(const, k=(1, 5, 10), ties="expected")  # exactly chance
    for d in ("i2t", "t2i"):
        assert e[f"{d}_R@1"] == pytest.approx(0.1) and e[f"{d}_R@5"] == pytest.approx(0.5)
        assert e[f"{d}_R@10"] == pytest.approx(1.0) and e[f"{d}_median_rank"] == pytest.approx((n + 1) / 2)


def test_retrieval_text_groups_duplicate_caption():
    # texts 0 and 1 are the same caption (same embedding); images 0 and 1 come from the same case
    e1, e2, e3 = np.eye(3)
    img = np.stack([e1, e1 + 0.1 * e3, e2])
    txt = np.stack([e1, e1, e2])
    sim = similarity_matrix(img, txt)
    plain = retrieval_recall(sim, k=(1, 2))
    # image 0: text 1 ties its true text 0 -> pessimistic rank 2; same for image 1 (texts 0 and 1 tie)
    assert plain["i2t_R@1"] == pytest.approx(1 / 3) and plain["i2t_R@2"] == 1.0
    # text 1: image 0 (cosine 1) beats its true image 1 (cosine 0.995) -> rank 2; texts 0 and 2 rank 1
    assert plain["t2i_R@1"] == pytest.approx(2 / 3)
    grouped = retrieval_recall(sim, k=(1, 2), text_groups=["a lesion", "a lesion", "no lesion"])
    assert grouped["i2t_R@1"] == 1.0 and grouped["t2i_R@1"] == 1.0
    assert grouped["i2t_median_rank"] == grouped["t2i_median_rank"] == 1.0
    # a group does not rescue a real miss: image 2 prefers the wrong caption
    sim2 = sim.copy()
    sim2[2] = [0.9, 0.9, 0.1]
    assert retrieval_recall(sim2, k=1, text_groups=["a", "a", "b"])["i2t_R@1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one entry per row"):
        retrieval_recall(sim, text_groups=["a", "b"])


def _brute_ranks(sim, groups, order):
    """1-based rank of the first correct candidate per row, ties broken by ``order`` (a column permutation)."""
    n = len(sim)
    pos = np.empty(n, dtype=int)
    pos[list(order)] = np.arange(n)
    ranks = []
    for i in range(n):
        ranking = sorted(range(n), key=lambda j: (-sim[i, j], pos[j]))
        ranks.append(1 + next(r for r, j in enumerate(ranking) if j == i or groups[j] == groups[i]))
    return np.array(ranks, dtype=float)


@pytest.mark.parametrize("use_groups", [False, True])
def test_retrieval_matches_brute_force_over_tie_orders(use_groups):
    rng = np.random.default_rng(0)
    n = 6
    sim = rng.integers(0, 3, size=(n, n)).astype(float)  # many ties
    groups = [0, 0, 1, 2, 2, 2] if use_groups else list(range(n))
    tg = groups if use_groups else None
    per_order = {
        d: np.stack([_brute_ranks(s, groups, o) for o in itertools.permutations(range(n))])
        for d, s in (("i2t", sim), ("t2i", sim.T))
    }
    exp = retrieval_recall(sim, k=(1, 2, 3, 6), text_groups=tg, ties="expected")
    pes = retrieval_recall(sim, k=(1, 2, 3, 6), text_groups=tg)
    ranks_p = dict(zip(("i2t", "t2i"), retrieval_ranks(sim, text_groups=tg)))
    ranks_e = dict(zip(("i2t", "t2i"), retrieval_ranks(sim, text_groups=tg, ties="expected")))
    for d, ranks in per_order.items():
        np.testing.assert_allclose(ranks_e[d], ranks.mean(0))  # expectation over uniformly random tie orders
        np.testing.assert_array_equal(ranks_p[d], ranks.max(0))  # pessimistic = the worst order
        for k in (1, 2, 3, 6):
            assert exp[f"{d}_R@{k}"] == pytest.approx(np.mean(ranks <= k))
            assert pes[f"{d}_R@{k}"] == pytest.approx(np.mean(ranks.max(0) <= k))
        assert pes[f"{d}_median_rank"] == np.median(ranks.max(0))


def test_retrieval_bad_input():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        retrieval_recall(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="3 images vs 4 texts"):
        retrieval_ranks(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="k must be"):
        retrieval_recall(np.eye(3), k=(0, 1))
    with pytest.raises(ValueError, match="tie rule"):
        retrieval_recall(np.eye(3), ties="random")
    with pytest.raises(ValueError, match="non-finite"):
        retrieval_recall(np.full((2, 2), np.nan))


def test_image_text_agreement():
    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    sim = similarity_matrix(img, txt)
    out = image_text_agreement(img, txt)
    off = ~np.eye(7, dtype=bool)
    i2t = np.mean([sim[i, i] > sim[i, j] for i in range(7) for j in range(7) if i != j])
    t2i = np.mean([sim[j, j] > sim[i, j] for j in range(7) for i in range(7) if i != j])
    assert out["pair_cosine"] == pytest.approx(np.trace(sim) / 7)
    assert out["other_cosine"] == pytest.approx(sim[off].mean())
    assert out["i2t_auc"] == pytest.approx(i2t) and out["t2i_auc"] == pytest.approx(t2i) and out["n_pairs"] == 7
    # matched pairs: cosine 1 and AUC 1; constant embeddings: ties count 1/2 -> chance
    perfect = image_text_agreement(torch.eye(4), torch.eye(4) * 3)
    assert perfect["pair_cosine"] == pytest.approx(1.0) and perfect["i2t_auc"] == perfect["t2i_auc"] == 1.0
    const = image_text_agreement(np.ones((5, 3)), np.ones((5, 3)))
    assert const["i2t_auc"] == const["t2i_auc"] == 0.5
    # same-caption rows are not negatives: with groups the duplicate no longer counts as a tie
    e1, e2 = np.eye(2)
    grouped = image_text_agreement(np.stack([e1, e1, e2]), np.stack([e1, e1, e2]), text_groups=["a", "a", "b"])
    assert grouped["i2t_auc"] == 1.0
    assert image_text_agreement(np.stack([e1, e1, e2]), np.stack([e1, e1, e2]))["i2t_auc"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="paired row by row"):
        image_text_agreement(np.ones((3, 2)), np.ones((4, 2)))


# ---------------------------------------------------------------------------------------------------------------------
# Frechet distance


def _factorial(mean, scales):
    """2^D points mean +/- scale per axis (full factorial): sample mean = mean, unbiased covariance exactly
    diag(scale^2 * 2^D / (2^D - 1))."""
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=len(scales))))
    return np.asarray(mean) + signs * np.asarray(scales)


def test_frechet_distance_closed_form_diagonal():
    mu1, s1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 2.0, 0.5])
    mu2, s2 = np.array([1.0, 1.0, 0.0]), np.array([3.0, 0.5, 0.5])
    a, b = _factorial(mu1, s1), _factorial(mu2, s2)
    var1, var2 = s1**2 * 8 / 7, s2**2 * 8 / 7
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(torch.tensor(a, dtype=torch.float32), torch.tensor(b)) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_general_and_self():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 0.5
    # independent closed form: Tr((S1 S2)^(1/2)) = sum of the square roots of the (real, >= 0) eigenvalues of S1 S2
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None)).sum()
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a) >= 0.0
    # a single feature: the 1-D formula
    x, y = rng.normal(size=(50, 1)), 2 + 3 * rng.normal(size=(40, 1))
    sx, sy = x.std(ddof=1), y.std(ddof=1)
    assert frechet_distance(x, y) == pytest.approx((x.mean() - y.mean()) ** 2 + (sx - sy) ** 2)


def test_frechet_distance_bad_input():
    with pytest.raises(ValueError, match="real_feats needs at least 2 rows"):
        frechet_distance(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="fake_feats needs at least 2 rows"):
        frechet_distance(np.ones((5, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"feature size.*\(5, 3\).*\(5, 4\)"):
        frechet_distance(np.ones((5, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="2-D"):
        frechet_distance(np.ones((5, 3, 2)), np.ones((5, 3)))


# ---------------------------------------------------------------------------------------------------------------------
# precision / recall, density / coverage


def _brute_precision_recall(real, fake, k):
    def radii(x):
        return np.array([np.sort([np.linalg.norm(p - q) for jj, q in enumerate(x) if jj != ii])[k - 1]
                         for ii, p in enumerate(x)])  # fmt: skip

    rr, rf = radii(real), radii(fake)
    precision = np.mean([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, rr)) for f in fake])
    recall = np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake, rf)) for r in real])
    return precision, recall


def test_knn_radii_excludes_self():
    x = np.array([[0.0], [1.0], [3.0], [3.0]])
    np.testing.assert_allclose(knn_radii(x, 1), [1.0, 1.0, 0.0, 0.0])  # duplicates are neighbours at distance 0
    np.testing.assert_allclose(knn_radii(x, 2), [3.0, 2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="at least 4 rows"):
        knn_radii(x[:3], 3)


def test_precision_recall_identical_far_and_half_modes():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(60, 4))
    assert precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}
    # two well-separated modes; the fake set covers only the first one
    mode_a, mode_b = rng.normal(size=(40, 4)), rng.normal(size=(40, 4)) + 50.0
    real2 = np.concatenate([mode_a, mode_b])
    assert precision_recall(real2, mode_a.copy()) == {"precision": 1.0, "recall": 0.5}
    fresh = precision_recall(real2, rng.normal(size=(40, 4)), k=3)  # new samples of mode a
    assert fresh["precision"] >= 0.9 and 0.4 <= fresh["recall"] <= 0.5
    # torch input
    assert precision_recall(torch.tensor(real2), torch.tensor(mode_a)) == {"precision": 1.0, "recall": 0.5}


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(25, 3)), 0.7 * rng.normal(size=(20, 3)) + 0.8
    for k in (1, 3, 5):
        p, r = _brute_precision_recall(real, fake, k)
        out = precision_recall(real, fake, k=k)
        assert out["precision"] == pytest.approx(p) and out["recall"] == pytest.approx(r)
    with pytest.raises(ValueError, match="more than k rows in fake_feats"):
        precision_recall(real, fake[:3], k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        precision_recall(real, fake, k=0)
    with pytest.raises(ValueError, match="feature size"):
        precision_recall(real, fake[:, :2])


def test_density_coverage():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(50, 3))
    # identical sets (no ties): each real point lies in its own ball and its k neighbours' -> density (k + 1) / k
    out = density_coverage(real, real.copy(), k=5)
    assert out["coverage"] == 1.0 and out["density"] == pytest.approx(6 / 5)
    assert density_coverage(real, real + 100.0) == {"density": 0.0, "coverage": 0.0}
    # brute force
    fake = rng.normal(size=(30, 3)) + 0.5
    k = 4
    radii = np.array([np.sort(np.linalg.norm(real - p, axis=1))[k] for p in real])
    inside = np.linalg.norm(fake[:, None] - real[None], axis=2) <= radii[None]
    out = density_coverage(real, fake, k=k)
    assert out["density"] == pytest.approx(inside.sum() / (k * len(fake)))
    assert out["coverage"] == pytest.approx(inside.any(0).mean())
    with pytest.raises(ValueError, match="more than k rows in real_feats"):
        density_coverage(real[:5], fake, k=5)
