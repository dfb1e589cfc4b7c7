"""Clustering of latent features and its metrics (monai_synpriv.evaluation.clustering).

Every metric is checked against scikit-learn or a value worked out by hand / by brute force over all one-to-one
cluster -> class mappings; fit_clusters against well-separated blobs and the nearest-centre / sklearn GMM posterior;
the saved ClusterModel by a JSON round trip; bad input by the error it must raise."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import warnings

import numpy as np
import pytest
from conftest import DATA, require
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score, balanced_accuracy_score, normalized_mutual_info_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from monai_synpriv.evaluation.clustering import (
    ClusterModel,
    cluster_accuracy,
    clustering_metrics,
    fit_clusters,
    hungarian_mapping,
    normalize_features,
)

METRIC_KEYS = {
    "accuracy",
    "balanced_accuracy",
    "nmi",
    "ari",
    "silhouette",
    "n_clusters_used",
    "largest_cluster_fraction",
    "majority_rate",
    "n",
}


# ----------------------------------------------------------------------------------------------------------------------
# helpers


def brute_force_accuracy(y, c) -> float:
    """Best accuracy over every one-to-one (partial) cluster -> class mapping; unmatched clusters are errors."""
    y, c = np.asarray(y), np.asarray(c)
    clusters, classes = np.unique(c), np.unique(y)
    counts = {(k, j): int(np.sum((c == k) & (y == j))) for k in clusters for j in classes}
    best = 0
    if len(clusters) >= len(classes):  # choose which cluster each class gets
        for chosen in itertools.permutations(clusters, len(classes)):
            best = max(best, sum(counts[k, j] for k, j in zip(chosen, classes)))
    else:  # choose which class each cluster gets
        for chosen in itertools.permutations(classes, len(clusters)):
            best = max(best, sum(counts[k, j] for k, j in zip(clusters, chosen)))
    return best / len(y)


def map_by_hand(c, mapping, unmatched=-999) -> np.ndarray:
    return np.array([mapping.get(int(k), unmatched) for k in c])


def sk_balanced_accuracy(y, pred) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" for unmatched clusters
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y, pred))


def random_labels(rng, n, k, ids=None, low=0) -> np.ndarray:
    """n labels over k (non-contiguous) ids in [low, 50), every id used at least once when n >= k."""
    ids = np.asarray(ids if ids is not None else rng.choice(np.arange(low, 50), size=k, replace=False))
    lab = np.concatenate([np.arange(min(n, k)), rng.integers(0, k, n - min(n, k))])
    return ids[rng.permutation(lab)]


def blobs(n_per=60, d=2, sep=10.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0] * d, [sep] + [0.0] * (d - 1), [0.0, sep] + [0.0] * (d - 2)])
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centers])
    y = np.repeat(np.arange(3), n_per)
    perm = rng.permutation(len(x))
    return x[perm], y[perm]


# ----------------------------------------------------------------------------------------------------------------------
# 1. each metric against sklearn / by hand


def test_accuracy_hand_computed_example():
    y = [0, 0, 0, 1, 1, 2]
    c = [1, 1, 0, 0, 0, 2]
    # contingency: cluster 1 -> class 0 twice; cluster 0 -> class 0 once, class 1 twice; cluster 2 -> class 2 once.
    # best one-to-one mapping: 1 -> 0, 0 -> 1, 2 -> 2, right on 2 + 2 + 1 = 5 of 6 samples (only the 3rd is wrong).
    assert hungarian_mapping(y, c) == {1: 0, 0: 1, 2: 2}
    assert cluster_accuracy(y, c) == pytest.approx(5 / 6)
    m = clustering_metrics(y, c)
    assert set(m) == METRIC_KEYS
    assert m["accuracy"] == pytest.approx(5 / 6)
    # recalls: class 0 2/3, class 1 2/2, class 2 1/1
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert m["n"] == 6 and m["n_clusters_used"] == 3
    assert m["largest_cluster_fraction"] == pytest.approx(3 / 6)
    assert m["majority_rate"] == pytest.approx(3 / 6)


def test_accuracy_hand_computed_more_and_fewer_clusters_than_classes():
    # more clusters than classes: clusters 0 and 1 both hold class 0, only one of them can map to it
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(3 / 4)
    mapping = hungarian_mapping([0, 0, 1, 1], [0, 1, 2, 2])
    assert len(mapping) == 2 and mapping[2] == 1 and sorted(mapping.values()) == [0, 1]
    # fewer clusters than classes: cluster 0 holds classes 0 and 1, one of those classes gets no cluster
    assert cluster_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]) == pytest.approx(4 / 6)
    mapping = hungarian_mapping([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1])
    assert mapping[1] == 2 and mapping[0] in (0, 1) and len(mapping) == 2


@pytest.mark.parametrize("n_classes,n_clusters", [(3, 3), (2, 5), (4, 6), (5, 2), (6, 3), (1, 4), (4, 1)])
def test_accuracy_equals_brute_force_over_permutations(n_classes, n_clusters):
    rng = np.random.default_rng(100 * n_classes + n_clusters)
    for _ in range(8):
        n = int(rng.integers(max(n_classes, n_clusters), 40))
        y = random_labels(rng, n, n_classes)
        c = random_labels(rng, n, n_clusters, low=-3)
        expected = brute_force_accuracy(y, c)
        assert cluster_accuracy(y, c) == pytest.approx(expected)
        assert clustering_metrics(y, c)["accuracy"] == pytest.approx(expected)
        mapping = hungarian_mapping(y, c)
        # one-to-one, between existing ids, and as large as it can be
        assert len(mapping) == min(n_classes, n_clusters)
        assert len(set(mapping.values())) == len(mapping)
        assert set(mapping) <= set(c.tolist()) and set(mapping.values()) <= set(y.tolist())
        assert np.mean(map_by_hand(c, mapping) == y) == pytest.approx(expected)


def test_balanced_accuracy_equals_sklearn_on_mapped_predictions():
    rng = np.random.default_rng(1)
    for n_classes, n_clusters in [(3, 3), (2, 4), (4, 2), (5, 5)]:
        for _ in range(5):
            n = int(rng.integers(20, 80))
            y = random_labels(rng, n, n_classes)
            c = random_labels(rng, n, n_clusters, low=-3)
            pred = map_by_hand(c, hungarian_mapping(y, c))
            assert clustering_metrics(y, c)["balanced_accuracy"] == pytest.approx(sk_balanced_accuracy(y, pred))


def test_nmi_and_ari_equal_sklearn_on_random_labelings():
    rng = np.random.default_rng(2)
    for _ in range(20):
        n = int(rng.integers(10, 200))
        y = random_labels(rng, n, int(rng.integers(2, 6)))
        c = random_labels(rng, n, int(rng.integers(1, 8)), low=-3)
        m = clustering_metrics(y, c)
        assert m["nmi"] == pytest.approx(normalized_mutual_info_score(y, c), abs=1e-12)
        assert m["ari"] == pytest.approx(adjusted_rand_score(y, c), abs=1e-12)
    # and they do measure agreement: a perfect (renamed) clustering scores 1
    y = random_labels(rng, 50, 3, ids=[0, 1, 2])
    m = clustering_metrics(y, 7 - 2 * y)
    assert m["nmi"] == pytest.approx(1.0) and m["ari"] == pytest.approx(1.0) and m["accuracy"] == 1.0


def test_silhouette_equals_sklearn():
    rng = np.random.default_rng(3)
    for n, d, k in [(60, 2, 2), (200, 5, 4), (400, 3, 3)]:
        x = rng.normal(size=(n, d))
        c = random_labels(rng, n, k)
        y = random_labels(rng, n, 2)
        m = clustering_metrics(y, c, features=x)
        assert m["silhouette"] == pytest.approx(silhouette_score(x, c), abs=1e-10)
    # features with trailing dimensions are flattened per sample
    x = rng.normal(size=(80, 2, 3))
    c = random_labels(rng, 80, 3)
    m = clustering_metrics(np.zeros(80, dtype=int), c, features=x)
    assert m["silhouette"] == pytest.approx(silhouette_score(x.reshape(80, -1), c), abs=1e-10)
    # well-separated clusters score near 1, and no features means no silhouette
    xb, yb = blobs()
    assert clustering_metrics(yb, yb, features=xb)["silhouette"] > 0.7
    assert np.isnan(clustering_metrics(yb, yb)["silhouette"])


# ----------------------------------------------------------------------------------------------------------------------
# 2. a degenerate run scores as such


def test_single_cluster_run_is_visible_as_degenerate():
    rng = np.random.default_rng(4)
    y = rng.permutation(np.array([0] * 73 + [1] * 20 + [2] * 7))
    c = np.full(100, 5)
    m = clustering_metrics(y, c, features=rng.normal(size=(100, 4)))
    assert m["majority_rate"] == pytest.approx(0.73)
    assert m["accuracy"] == pytest.approx(m["majority_rate"])  # deceptively high ...
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)  # ... but balanced accuracy is chance
    assert m["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert m["ari"] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(m["silhouette"])
    assert m["n_clusters_used"] == 1
    assert m["largest_cluster_fraction"] == 1.0
    assert m["n"] == 100


def test_n_clusters_used_and_largest_fraction_count_clusters():
    y = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    c = [9, 9, 9, 9, 9, 9, 4, 4, 2, 2]
    m = clustering_metrics(y, c)
    assert m["n_clusters_used"] == 3
    assert m["largest_cluster_fraction"] == pytest.approx(0.6)
    assert m["majority_rate"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------------------------------
# 3. renaming clusters changes nothing


def test_metrics_invariant_to_renaming_clusters():
    rng = np.random.default_rng(5)
    for n_classes, n_clusters in [(3, 3), (2, 5), (4, 2)]:
        n = 120
        x = rng.normal(size=(n, 3))
        y = random_labels(rng, n, n_classes)
        c = random_labels(rng, n, n_clusters, ids=np.arange(n_clusters))
        new_ids = rng.choice(np.array([-1, 3, 17, 42, 99, 1000, 7]), size=n_clusters, replace=False)
        renamed = new_ids[c]
        a = clustering_metrics(y, c, features=x)
        b = clustering_metrics(y, renamed, features=x)
        assert set(a) == set(b) == METRIC_KEYS
        for key in METRIC_KEYS:
            assert a[key] == pytest.approx(b[key], abs=1e-12, nan_ok=True), key
        assert cluster_accuracy(y, renamed) == pytest.approx(cluster_accuracy(y, c))
        # the mapping is renamed with the clusters
        ma, mb = hungarian_mapping(y, c), hungarian_mapping(y, renamed)
        assert np.array_equal(map_by_hand(c, ma), map_by_hand(renamed, mb))


# ----------------------------------------------------------------------------------------------------------------------
# 4. a fixed mapping applied to another set


def test_fixed_mapping_fitted_on_one_set_applied_to_another():
    y_train = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    c_train = np.array([5, 5, 5, 8, 8, 8, 3, 3])
    mapping = hungarian_mapping(y_train, c_train)
    assert mapping == {5: 0, 8: 1, 3: 2}
    # on the test set clusters 5 and 8 swapped their classes and cluster 4 is new (not in the mapping)
    y_test = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0, 1])
    c_test = np.array([8, 8, 5, 5, 5, 3, 3, 4, 4, 4])
    fixed = clustering_metrics(y_test, c_test, mapping=mapping)
    pred = map_by_hand(c_test, mapping)  # [1, 1, 0, 0, 0, 2, 2, wrong, wrong, wrong]
    assert fixed["accuracy"] == pytest.approx(np.mean(pred == y_test)) == pytest.approx(2 / 10)
    # recalls: class 0 0/3, class 1 0/4, class 2 2/3
    assert fixed["balanced_accuracy"] == pytest.approx((0 + 0 + 2 / 3) / 3)
    assert fixed["balanced_accuracy"] == pytest.approx(sk_balanced_accuracy(y_test, pred))
    # the best mapping on the test set itself is much better: the fixed mapping really was used
    best = clustering_metrics(y_test, c_test)
    assert best["accuracy"] == pytest.approx(brute_force_accuracy(y_test, c_test)) == pytest.approx(7 / 10)
    # mapping-free metrics do not depend on it
    for key in ("nmi", "ari", "n_clusters_used", "largest_cluster_fraction", "majority_rate", "n"):
        assert fixed[key] == best[key]
    # keys as read back from JSON (strings) work the same
    str_keys = clustering_metrics(y_test, c_test, mapping={str(k): v for k, v in mapping.items()})
    assert str_keys["accuracy"] == fixed["accuracy"]


def test_clusters_missing_from_mapping_count_as_errors():
    y = np.array([0, 0, 1, 1, 2, 2])
    c = np.array([0, 0, 1, 1, 2, 2])
    assert clustering_metrics(y, c, mapping={0: 0, 1: 1, 2: 2})["accuracy"] == 1.0
    m = clustering_metrics(y, c, mapping={0: 0, 1: 1})  # cluster 2 unmatched
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert clustering_metrics(y, c, mapping={})["accuracy"] == 0.0


def test_unmatched_cluster_is_an_error_even_when_a_class_is_labelled_minus_one():
    # class ids are arbitrary integers; an unmatched cluster must not be scored right for class -1
    y = np.array([-1, -1, 0, 0])
    c = np.array([5, 5, 0, 0])
    assert clustering_metrics(y, c, mapping={0: 0})["accuracy"] == pytest.approx(0.5)
    # more clusters than classes, class -1 present: the extra cluster (1) must count as wrong
    y = np.array([-1, -1, 0, 0, 0, 0])
    c = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(y, c) == pytest.approx(brute_force_accuracy(y, c)) == pytest.approx(4 / 6)


# ----------------------------------------------------------------------------------------------------------------------
# 5. fit_clusters


def test_kmeans_selects_three_blobs_by_silhouette():
    x, y = blobs(seed=10)
    model = fit_clusters(x, "kmeans", n_clusters=None, k_range=range(2, 7))
    assert model.method == "kmeans" and model.n_clusters == 3 and model.centers.shape == (3, 2)
    assert model.selection["criterion"] == "silhouette" and model.selection["chosen"] == 3
    scores = model.selection["scores"]
    assert set(scores) == {"2", "3", "4", "5", "6"}
    assert max(scores, key=scores.get) == "3"
    clusters, dist = model.predict(x)
    assert cluster_accuracy(y, clusters) == 1.0
    assert clustering_metrics(y, clusters, features=x)["silhouette"] == pytest.approx(scores["3"], abs=1e-9)
    # predict is the nearest centre and the confidence its distance
    new = np.random.default_rng(11).uniform(-5, 15, size=(300, 2))
    clusters, dist = model.predict(new)
    d = np.linalg.norm(new[:, None, :] - model.centers[None], axis=-1)
    assert np.array_equal(clusters, d.argmin(1))
    np.testing.assert_allclose(dist, d.min(1), rtol=1e-10)


def test_gmm_selects_three_blobs_by_bic_and_matches_sklearn_posteriors():
    x, y = blobs(seed=20)
    model = fit_clusters(x, "gmm", n_clusters=None, k_range=range(2, 7))
    assert model.method == "gmm" and model.n_clusters == 3
    assert model.covariances.shape == (3, 2, 2) and model.weights.shape == (3,)
    assert model.selection["criterion"] == "bic" and model.selection["chosen"] == 3
    scores = model.selection["scores"]
    assert min(scores, key=scores.get) == "3"
    clusters, post = model.predict(x)
    assert cluster_accuracy(y, clusters) == 1.0

    gm = GaussianMixture(n_components=3, covariance_type="full")
    gm.means_, gm.covariances_, gm.weights_ = model.centers, model.covariances, model.weights
    gm.precisions_cholesky_ = _compute_precision_cholesky(model.covariances, "full")
    # points between the blobs, where the posteriors are far from 0/1
    new = np.random.default_rng(21).uniform(-4, 14, size=(400, 2))
    clusters, post = model.predict(new)
    proba = gm.predict_proba(new)
    assert proba.max(1).min() < 0.9  # the comparison is not only on certain points
    assert np.array_equal(clusters, proba.argmax(1))
    np.testing.assert_allclose(post, proba.max(1), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(logsumexp(model.log_likelihoods(new), axis=1), gm.score_samples(new), rtol=1e-10)


def test_fixed_number_of_clusters_and_gmm_by_silhouette():
    x, y = blobs(seed=30)
    model = fit_clusters(x, "kmeans", n_clusters=2)
    assert model.n_clusters == 2 and model.selection == {}
    model = fit_clusters(x, "gmm", k_range=(2, 3), criterion="silhouette")
    assert model.selection["criterion"] == "silhouette" and model.selection["chosen"] == 3
    assert cluster_accuracy(y, model.predict(x)[0]) == 1.0


def test_standardize_predict_on_raw_equals_predict_on_transformed():
    rng = np.random.default_rng(40)
    # two groups apart in feature 0 (unit scale); feature 1 is pure noise on a scale of 1000
    y = np.repeat([0, 1], 100)
    x = np.stack([np.where(y == 1, 10.0, 0.0) + rng.normal(size=200), 1000.0 * rng.normal(size=200)], 1)
    model = fit_clusters(x, "kmeans", n_clusters=2, normalization="standardize")
    assert model.normalization == "standardize"
    np.testing.assert_allclose(model.mean, x.mean(0))
    np.testing.assert_allclose(model.scale, x.std(0))
    z = model.transform(x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-10)
    assert cluster_accuracy(y, model.predict(x)[0]) == 1.0  # standardised, the informative feature wins
    assert cluster_accuracy(y, fit_clusters(x, "kmeans", n_clusters=2).predict(x)[0]) < 0.8  # raw, the noise wins
    # new data is transformed with the statistics of the fitting set, not its own
    new = rng.normal(size=(50, 2)) * [3.0, 500.0] + [5.0, 100.0]
    np.testing.assert_allclose(model.transform(new), (new - x.mean(0)) / x.std(0))
    plain = dataclasses.replace(model, normalization="none", mean=None, scale=None)
    for a, b in zip(model.predict(new), plain.predict(model.transform(new))):
        np.testing.assert_allclose(a, b)
    # the same for a GMM
    gmm = fit_clusters(x, "gmm", n_clusters=2, normalization="standardize")
    plain = dataclasses.replace(gmm, normalization="none", mean=None, scale=None)
    for a, b in zip(gmm.predict(new), plain.predict(gmm.transform(new))):
        np.testing.assert_allclose(a, b)


def test_l2_normalization_gives_unit_rows_and_scale_free_predictions():
    rng = np.random.default_rng(50)
    x = rng.normal(size=(120, 4)) + 3 * rng.integers(0, 3, size=(120, 1))
    x[0] = 0.0  # a zero row must not become NaN
    z, mean, scale = normalize_features(x, "l2")
    assert mean is None and scale is None
    np.testing.assert_allclose(np.linalg.norm(z[1:], axis=1), 1.0)
    assert np.all(np.isfinite(z)) and np.all(z[0] == 0)
    model = fit_clusters(x, "kmeans", n_clusters=3, normalization="l2")
    np.testing.assert_allclose(np.linalg.norm(model.transform(x[1:]), axis=1), 1.0)
    scales = rng.uniform(0.1, 50, size=(119, 1))
    assert np.array_equal(model.predict(x[1:])[0], model.predict(x[1:] * scales)[0])
    # none leaves features alone (as float64), an unknown normalisation is refused
    z, _, _ = normalize_features(x.astype(np.float32), "none")
    assert z.dtype == np.float64 and np.array_equal(z, x.astype(np.float32).astype(np.float64))
    with pytest.raises(ValueError, match="unknown feature normalization 'whiten'"):
        normalize_features(x, "whiten")


# ----------------------------------------------------------------------------------------------------------------------
# 6. save / load


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_save_load_round_trip(tmp_path, method):
    x, y = blobs(seed=60)
    model = fit_clusters(x, method, k_range=(2, 3), normalization="standardize")
    model.mapping = hungarian_mapping(y, model.predict(x)[0])
    model.class_names = ["benign", "malignant", "normal"]
    path = tmp_path / "sub" / "clusters.json"
    path.parent.mkdir()
    assert model.save(path) == str(path)
    loaded = ClusterModel.load(path)
    assert loaded.method == method and loaded.normalization == "standardize"
    assert loaded.mapping == model.mapping and all(isinstance(k, int) for k in loaded.mapping)
    assert loaded.class_names == model.class_names
    assert loaded.selection == model.selection
    np.testing.assert_array_equal(loaded.centers, model.centers)
    np.testing.assert_array_equal(loaded.mean, model.mean)
    np.testing.assert_array_equal(loaded.scale, model.scale)
    new = np.random.default_rng(61).uniform(-4, 14, size=(200, 2))
    for a, b in zip(model.predict(new), loaded.predict(new)):
        np.testing.assert_array_equal(a, b)
    clusters = loaded.predict(x)[0]
    names = loaded.class_of(clusters)
    assert names == [model.class_names[c] for c in y.tolist()]


def test_class_of_unmatched_cluster_is_empty():
    model = ClusterModel("kmeans", np.zeros((3, 2)), mapping={0: 1, 1: 0}, class_names=["benign", "malignant"])
    assert model.class_of(np.array([0, 1, 2, 0])) == ["malignant", "benign", "", "malignant"]
    model.class_names = []
    assert model.class_of([0, 1, 2]) == ["1", "0", ""]


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "clusters.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        ClusterModel.load(path)


@pytest.mark.parametrize(
    "content",
    [{"centers": [[0.0]]}, {"method": "dbscan", "centers": [[0.0]]}, {"method": "kmeans"}, {"accuracy": 0.5}],
    ids=["no-method", "unknown-method", "no-centers", "metrics-json"],
)
def test_load_json_that_is_not_a_cluster_model(tmp_path, content):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        ClusterModel.load(path)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"kmeans"', "null"], ids=["list", "string", "null"])
def test_load_json_that_is_not_an_object_names_the_file(tmp_path, text):
    path = tmp_path / "other.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        ClusterModel.load(path)


def test_load_file_that_is_not_json_names_the_file(tmp_path):
    path = tmp_path / "clusters.json"
    path.write_text("this is not json")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        ClusterModel.load(path)


# ----------------------------------------------------------------------------------------------------------------------
# 7. bad input


def test_unknown_method_is_named():
    x, _ = blobs(n_per=10)
    with pytest.raises(ValueError, match="unknown clustering method 'dbscan'"):
        fit_clusters(x, "dbscan", n_clusters=3)


def test_bic_with_kmeans_and_unknown_criterion_are_refused():
    x, _ = blobs(n_per=10)
    with pytest.raises(ValueError, match="criterion 'bic' is not available for 'kmeans'"):
        fit_clusters(x, "kmeans", criterion="bic")
    with pytest.raises(ValueError, match="criterion 'aic' is not available for 'gmm'"):
        fit_clusters(x, "gmm", criterion="aic")


def test_more_clusters_than_samples_is_refused():
    x = np.random.default_rng(70).normal(size=(5, 2))
    with pytest.raises(ValueError, match=r"cannot fit 6 clusters to 5 samples"):
        fit_clusters(x, "kmeans", n_clusters=6)
    with pytest.raises(ValueError, match=r"no candidate in k_range \[5, 8\] lies in 2..4 for 5 samples"):
        fit_clusters(x, "gmm", k_range=(5, 8))
    # when choosing, candidates a score cannot rank (k >= n) are left out rather than crashing
    assert fit_clusters(x, "kmeans", k_range=(2, 3, 4, 5)).n_clusters in (2, 3, 4)
    with pytest.raises(ValueError, match=r"cannot fit 0 clusters"):
        fit_clusters(x, "kmeans", n_clusters=0)
    with pytest.raises(ValueError, match=r"features must be \(n, d\)"):
        fit_clusters(x[:, 0], "kmeans", n_clusters=2)


@pytest.mark.parametrize("normalization", ["none", "standardize", "l2"])
@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_predict_features_of_wrong_dimension(method, normalization):
    rng = np.random.default_rng(75)
    standardize = normalization == "standardize"
    model = ClusterModel(
        method,
        rng.normal(size=(3, 3)),
        covariances=np.stack([np.eye(3)] * 3) if method == "gmm" else None,
        weights=np.full(3, 1 / 3) if method == "gmm" else None,
        normalization=normalization,
        mean=rng.normal(size=3) if standardize else None,
        scale=rng.uniform(1, 2, size=3) if standardize else None,
    )
    assert model.predict(rng.normal(size=(4, 3)))[0].shape == (4,)  # the right dimension works
    with pytest.raises(ValueError, match=r"do not match the cluster model \(3-dimensional\)"):
        model.predict(np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"do not match the cluster model \(3-dimensional\)"):
        model.predict(np.zeros((4, 2)))


def test_non_integer_labels_are_refused():
    with pytest.raises(ValueError, match=r"y_true must hold integer labels.*0\.5"):
        clustering_metrics([0, 0.5, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"clusters must hold integer labels"):
        cluster_accuracy([0, 1, 1], [0, 1.5, 1])
    with pytest.raises(ValueError, match=r"clusters must hold integer labels"):
        hungarian_mapping([0, 1, 1], [0, np.nan, 1])
    with pytest.raises(ValueError, match=r"y_true must be one integer per sample"):
        clustering_metrics(np.zeros((3, 2)), [0, 1, 1])
    # integer-valued floats and (n, 1) label columns are fine
    assert cluster_accuracy(np.array([[0.0], [1.0], [1.0]]), [3, 4, 4]) == 1.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="need as many cluster labels as class labels"):
        clustering_metrics([0, 1, 0, 1], [0, 1, 0])
    with pytest.raises(ValueError, match="need as many cluster labels as class labels"):
        cluster_accuracy([0, 1, 0, 1], [0, 1, 0])
    with pytest.raises(ValueError, match="need as many cluster labels as class labels"):
        hungarian_mapping([0, 1], [0, 1, 0])
    with pytest.raises(ValueError, match=r"\(> 0\)"):
        hungarian_mapping([], [])


def test_mismatched_lengths_with_a_fixed_mapping_are_refused():
    with pytest.raises(ValueError, match="need as many cluster labels as class labels"):
        clustering_metrics([0, 1, 0, 1], [0, 1, 0], mapping={0: 0, 1: 1})


def test_features_with_the_wrong_number_of_rows_are_refused():
    rng = np.random.default_rng(80)
    y = rng.integers(0, 2, 200)
    c = rng.integers(0, 2, 200)
    # 100 rows of 4 features hold as many numbers as 200 rows of 2: must not be silently reshaped
    with pytest.raises(ValueError):
        clustering_metrics(y, c, features=rng.normal(size=(100, 4)))


# ----------------------------------------------------------------------------------------------------------------------
# real embeddings: raw BreastMNIST pixels


def test_breastmnist_pixels_kmeans_metrics_match_sklearn_and_brute_force():
    d = np.load(require(DATA / "medmnist" / "breastmnist.npz"))
    x = d["train_images"].reshape(len(d["train_images"]), -1).astype(np.float64) / 255.0
    y = d["train_labels"].reshape(-1).astype(int)
    assert x.shape == (546, 784) and set(np.unique(y).tolist()) == {0, 1}
    model = fit_clusters(x, "kmeans", n_clusters=2, seed=0)
    clusters, _ = model.predict(x)
    assert len(np.unique(clusters)) == 2
    m = clustering_metrics(d["train_labels"], clusters, features=x)
    assert m["n"] == 546
    assert m["nmi"] == pytest.approx(normalized_mutual_info_score(y, clusters), abs=1e-12)
    assert m["ari"] == pytest.approx(adjusted_rand_score(y, clusters), abs=1e-12)
    assert m["silhouette"] == pytest.approx(silhouette_score(x, clusters), abs=1e-10)
    assert m["accuracy"] == pytest.approx(brute_force_accuracy(y, clusters))
    assert m["majority_rate"] == pytest.approx(np.bincount(y).max() / len(y))
    pred = map_by_hand(clusters, hungarian_mapping(y, clusters))
    assert m["balanced_accuracy"] == pytest.approx(sk_balanced_accuracy(y, pred))
