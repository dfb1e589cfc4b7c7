"""Probes of frozen representations: linear (logistic regression), the TriDeNT MLP head and k-NN, with metrics."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from monai.utils import optional_import
from torch import nn
from tqdm.auto import tqdm

sk_linear, _ = optional_import("sklearn.linear_model")
sk_neighbors, _ = optional_import("sklearn.neighbors")
sk_metrics, _ = optional_import("sklearn.metrics")
sk_pre, _ = optional_import("sklearn.preprocessing")

__all__ = [
    "extract_features",
    "linear_probe",
    "knn_probe",
    "mlp_probe",
    "classification_metrics",
    "error_reduction",
]


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    image_key: str = "image",
    label_key: str = "label",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of a *frozen* encoder (eval mode: batch-norm uses its running statistics) and the labels."""
    encoder = encoder.to(device).eval()
    feats, labels = [], []
    for batch in tqdm(loader, desc="features", disable=not progress, leave=False):
        x = batch[image_key]
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        feats.append(encoder(x.to(device)).float().flatten(1).cpu())
        labels.append(torch.as_tensor(batch[label_key]).view(-1).cpu())
    return torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(int)


def linear_probe(train_x, train_y, test_x, c: float = 1.0, max_iter: int = 2000, seed: int = 0) -> np.ndarray:
    """Multinomial logistic regression on standardised features; returns the predicted test labels."""
    scaler = sk_pre.StandardScaler().fit(train_x)
    clf = sk_linear.LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(train_x), train_y)
    return clf.predict(scaler.transform(test_x))


def knn_probe(train_x, train_y, test_x, k: int = 20) -> np.ndarray:
    """Cosine k-nearest-neighbour vote (distance-weighted); returns the predicted test labels."""
    clf = sk_neighbors.KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", weights="distance")
    return clf.fit(train_x, train_y).predict(test_x)


def mlp_probe(
    train_x,
    train_y,
    test_x,
    num_classes: int | None = None,
    hidden: int = 256,
    epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The TriDeNT authors' head on frozen features: ``BN -> Linear(hidden) -> ReLU -> BN -> Linear(C)``, Adam,
    cross-entropy, ``epochs`` passes; returns the predicted test labels.

    After training, the batch norms' statistics are recomputed in one pass over the training features with the
    final weights: the running average alone (momentum 0.1) of a small probe set (one batch per epoch, 30 epochs)
    stays a few percent short of the real mean of raw encoder features, and every test image fell in one class.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    c = int(num_classes or int(y.max()) + 1)
    head = nn.Sequential(
        nn.BatchNorm1d(x.shape[1]),
        nn.Linear(x.shape[1], hidden),
        nn.ReLU(),
        nn.BatchNorm1d(hidden),
        nn.Linear(hidden, c),
    ).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    n = len(x)
    for _ in range(epochs):
        head.train()
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            opt.zero_grad()
            loss_fn(head(x[idx].to(device)), y[idx].to(device)).backward()
            opt.step()
    _recalibrate_batch_norm(head, x, batch_size, device)
    head.eval()
    with torch.no_grad():
        return head(torch.as_tensor(np.asarray(test_x), dtype=torch.float32, device=device)).argmax(1).cpu().numpy()


def _recalibrate_batch_norm(head: nn.Module, x: torch.Tensor, batch_size: int, device) -> None:
    """Set every batch norm's running statistics to the exact (cumulative) ones of ``x`` under the current weights."""
    norms = [m for m in head.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass below
    head.train()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            if len(x[start : start + batch_size]) >= 2:
                head(x[start : start + batch_size].to(device))


def classification_metrics(y_true, y_pred, num_classes: int | None = None) -> dict:
    """Accuracy, balanced accuracy, error, the majority-class rate of ``y_true`` and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need as many predictions as labels (> 0), got {len(y_pred)} and {len(y_true)}.")
    labels = list(range(num_classes)) if num_classes else sorted(set(y_true) | set(y_pred))
    acc = float(np.mean(y_true == y_pred))
    return {
        "accuracy": acc,
        "balanced_accuracy": float(sk_metrics.balanced_accuracy_score(y_true, y_pred)),
        "error": 1.0 - acc,
        "majority_rate": float(np.bincount(y_true).max() / len(y_true)),
        "confusion_matrix": sk_metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def error_reduction(accuracy_baseline: float, accuracy_method: float) -> float:
    """``(1 - acc_baseline) / (1 - acc_method)``: how many times fewer errors the method makes (> 1: better).
    A perfect method gives ``inf``."""
    err_m = 1.0 - accuracy_method
    return float("inf") if err_m == 0 else (1.0 - accuracy_baseline) / err_m
