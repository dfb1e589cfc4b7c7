import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from monai_synpriv.evaluation import (
    classification_metrics,
    error_reduction,
    extract_features,
    knn_probe,
    linear_probe,
    mlp_probe,
)


def test_metrics_against_sklearn_and_by_hand():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 1, 0, 1, 1, 0])
    m = classification_metrics(y, p, num_classes=3)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["error"] == pytest.approx(2 / 6)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["confusion_matrix"] == confusion_matrix(y, p, labels=[0, 1, 2]).tolist()
    assert m["majority_rate"] == pytest.approx(0.5)
    everything_majority = classification_metrics(y, np.zeros(6, int), num_classes=3)
    assert everything_majority["balanced_accuracy"] == pytest.approx(1 / 3)
    assert error_reduction(0.8, 0.95) == pytest.approx(4.0)
    assert error_reduction(0.9, 1.0) == float("inf")
    with pytest.raises(ValueError):
        classification_metrics([], [])


def test_probes_on_real_breastmnist_pixels_beat_majority():
    from conftest import DATA, require

    d = np.load(require(DATA / "medmnist" / "breastmnist.npz"))
    tr_x = d["train_images"].reshape(len(d["train_images"]), -1) / 255.0
    te_x = d["test_images"].reshape(len(d["test_images"]), -1) / 255.0
    tr_y, te_y = d["train_labels"].ravel(), d["test_labels"].ravel()
    majority = classification_metrics(te_y, np.full_like(te_y, np.bincount(tr_y).argmax()))["accuracy"]
    for name, pred in (
        ("linear", linear_probe(tr_x, tr_y, te_x, c=0.1)),
        ("knn", knn_probe(tr_x, tr_y, te_x, k=10)),
        ("mlp", mlp_probe(tr_x, tr_y, te_x, epochs=30)),
    ):
        acc = classification_metrics(te_y, pred)["accuracy"]
        assert acc > majority + 0.03, f"{name} probe {acc:.3f} vs majority {majority:.3f}"


def test_extract_features_freezes_batchnorm():
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    before = enc[2].running_mean.clone()
    loader = [{"image": torch.rand(5, 1, 2, 2), "label": torch.arange(5)}]
    x, y = extract_features(enc, loader, progress=False)
    assert x.shape == (5, 3) and y.tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(enc[2].running_mean, before), "features must come from the frozen encoder"


def test_mlp_probe_on_a_small_set_of_offset_features():
    """A small probe set (one batch per epoch) of raw, far-from-zero features, as a random encoder gives them: the
    head's batch-norm statistics must be those of the data, or every test point falls in one class (it did: the
    running average after 30 steps was 4 % short of a mean 500x the class spread)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32))
    y = np.repeat(np.arange(4), 60)
    x = 500.0 + centres[y] + 0.3 * rng.normal(size=(240, 32))
    y_test = np.repeat(np.arange(4), 30)
    x_test = 500.0 + centres[y_test] + 0.3 * rng.normal(size=(120, 32))
    acc = classification_metrics(y_test, mlp_probe(x, y, x_test, epochs=30))["accuracy"]
    assert acc > 0.9, acc
