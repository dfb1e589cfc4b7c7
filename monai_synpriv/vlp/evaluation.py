"""Evaluation of a dual encoder and of a text-to-image generator.

- :func:`evaluate_dual_encoder`: image-to-text and text-to-image retrieval on the test split (recall at 1/5/10;
  identical captions count as the same text), linear probes of the image encoder's features on real labels with
  all and with a fraction of the training labels, and transfer of the same probe to another labelled set.
- :func:`evaluate_generator`: Frechet distance, precision/recall and density/coverage of synthetic against real
  images in the feature space of an image encoder trained on real pairs, and image-text agreement of (synthetic
  image, caption) pairs as that real-data model measures it, next to the same numbers for the real images.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..evaluation.generative import density_coverage, frechet_distance, precision_recall
from ..evaluation.probes import classification_metrics, linear_probe
from ..evaluation.retrieval import image_text_agreement, retrieval_recall, similarity_matrix
from ..utils.io import write_json_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "embed_images",
    "embed_pairs",
    "embed_texts",
    "evaluate_and_log",
    "evaluate_dual_encoder",
    "evaluate_generator",
    "probe_scores",
    "save_caption_grid",
]


@torch.no_grad()
def embed_images(
    network: torch.nn.Module,
    items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    image_key: str = "image",
    desc: str = "images",
) -> tuple[np.ndarray, np.ndarray]:
    """Image-encoder features (B x F, before the projection) and joint-space embeddings of ``items``."""
    network = network.to(device).eval()
    loader = DataLoader(Dataset(list(items), preprocessing), batch_size=batch_size, shuffle=False, num_workers=0)
    feats, embs = [], []
    for batch in tqdm(loader, desc=desc, leave=False):
        x = batch[image_key]
        x = (x.as_tensor() if hasattr(x, "as_tensor") else x).to(device)
        f = network.encode_image(x)
        feats.append(f.float().cpu())
        embs.append(torch.nn.functional.normalize(network.image_projection(f), dim=-1).float().cpu())
    return torch.cat(feats).numpy(), torch.cat(embs).numpy()


@torch.no_grad()
def embed_texts(
    network: torch.nn.Module,
    texts: Sequence[str],
    tokenizer,
    max_length: int = 128,
    truncation: str = "truncate",
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> np.ndarray:
    """Joint-space text embeddings (N x E)."""
    network = network.to(device).eval()
    out = []
    for s in range(0, len(texts), batch_size):
        tok = tokenizer(list(texts[s : s + batch_size]), max_length=max_length, truncation=truncation)
        out.append(network.embed_text(tok["input_ids"].to(device), tok["attention_mask"].to(device)).float().cpu())
    return torch.cat(out).numpy()


def embed_pairs(
    network: torch.nn.Module,
    items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    tokenizer,
    max_length: int = 128,
    truncation: str = "truncate",
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    text_key: str = "text",
) -> dict[str, np.ndarray]:
    """``{"features", "image_emb", "text_emb"}`` of (image, text) items."""
    feats, img = embed_images(network, items, preprocessing, device, batch_size)
    txt = embed_texts(network, [it[text_key] for it in items], tokenizer, max_length, truncation, device, batch_size)
    return {"features": feats, "image_emb": img, "text_emb": txt}


def probe_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    fractions: Sequence[float] = (1.0,),
    seed: int = 0,
) -> dict[str, float]:
    """Linear-probe accuracy and balanced accuracy with each fraction of the training labels (seeded subsample,
    at least one example of every class kept when the fraction allows)."""
    out: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    for frac in fractions:
        n = len(train_y)
        if frac >= 1.0:
            idx = np.arange(n)
        else:
            k = max(int(round(frac * n)), len(np.unique(train_y)))
            first = [int(rng.choice(np.flatnonzero(train_y == c))) for c in np.unique(train_y)]
            rest = rng.permutation(np.setdiff1d(np.arange(n), first))[: max(0, k - len(first))]
            idx = np.concatenate([first, rest]).astype(int)
        if len(np.unique(train_y[idx])) < 2:
            logger.warning(f"probe with {frac:.0%} of the labels skipped: its {len(idx)} examples hold one class.")
            continue
        pred = linear_probe(train_x[idx], train_y[idx], test_x, seed=seed)
        m = classification_metrics(test_y, pred)
        tag = f"{int(round(frac * 100))}pct"
        out[f"acc_{tag}"] = float(m["accuracy"])
        out[f"bacc_{tag}"] = float(m["balanced_accuracy"])
    return out


def evaluate_dual_encoder(
    network: torch.nn.Module,
    tokenizer,
    datalist: Mapping[str, Any],
    preprocessing: Callable,
    output_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    label_names: Sequence[str] = ("modality", "region", "plane"),
    probe_train_sections: Sequence[str] = ("training", "validation"),
    test_section: str = "test",
    label_fractions: Sequence[float] = (0.1, 1.0),
    transfer_items: Sequence[Mapping[str, Any]] | None = None,
    transfer_name: str = "brain_tumor",
    max_length: int = 128,
    truncation: str = "truncate",
    batch_size: int = 64,
    ks: Sequence[int] = (1, 5, 10),
    seed: int = 0,
) -> dict[str, float]:
    """Retrieval on ``test_section`` and linear probes of the image encoder; writes ``metrics.json`` if
    ``output_dir`` is given and returns the flat metrics.

    Args:
        network: a :class:`~monai_synpriv.networks.DualEncoder` (weights loaded).
        tokenizer: its tokenizer.
        datalist: the real pairs, with ``label_names`` labels (``prepare_medpix_datalist``).
        preprocessing: evaluation transform (loads ``image``; no augmentation).
        output_dir: where ``metrics.json`` goes.
        device: where to run.
        label_names: integer labels of the items to probe.
        probe_train_sections: sections the probes train on (the test section is held out, split by case).
        test_section: the held-out section (retrieval and probe test).
        label_fractions: fractions of the probe's training labels (the paper: 1 %, 10 %, 100 % of far larger sets;
            1 % of the 529 MedPix training pairs would be 5 images, so the bundle uses 10 % and 100 %).
        transfer_items: another labelled set (``label`` and ``split`` in ``{"training", "test"}``, as
            ``probe_items`` gives), probed with the same image features.
        transfer_name: its name in the metric keys.
        max_length, truncation: tokenisation of the captions.
        batch_size: images per forward pass.
        ks: recall cut-offs.
        seed: probe seed.
    """
    train_items = [it for s in probe_train_sections for it in datalist[s]]
    test_items = list(datalist[test_section])
    test = embed_pairs(network, test_items, preprocessing, tokenizer, max_length, truncation, device, batch_size)
    groups = [" ".join(it["text"].lower().split()) for it in test_items]
    sim = similarity_matrix(test["image_emb"], test["text_emb"])
    metrics = {k: float(v) for k, v in retrieval_recall(sim, k=ks, text_groups=groups).items()}
    train_feats, _ = embed_images(network, train_items, preprocessing, device, batch_size, desc="probe images")
    for name in label_names:
        ytr = np.array([it[name] for it in train_items])
        yte = np.array([it[name] for it in test_items])
        scores = probe_scores(train_feats, ytr, test["features"], yte, label_fractions, seed)
        metrics.update({f"probe_{name}_{k}": v for k, v in scores.items()})
    if transfer_items:
        tr = [it for it in transfer_items if it.get("split") != "test"]
        te = [it for it in transfer_items if it.get("split") == "test"]
        if not tr or not te:
            raise ValueError(f"transfer_items need 'split' entries for training and 'test' (got {len(tr)}/{len(te)}).")
        ftr, _ = embed_images(network, tr, preprocessing, device, batch_size, desc=f"{transfer_name} train")
        fte, _ = embed_images(network, te, preprocessing, device, batch_size, desc=f"{transfer_name} test")
        ytr, yte = np.array([it["label"] for it in tr]), np.array([it["label"] for it in te])
        scores = probe_scores(ftr, ytr, fte, yte, label_fractions, seed)
        metrics.update({f"transfer_{transfer_name}_{k}": v for k, v in scores.items()})
    metrics["n_test_pairs"] = float(len(test_items))
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(output_dir) / "metrics.json", metrics)
    return metrics


def evaluate_generator(
    real_network: torch.nn.Module,
    tokenizer,
    synthetic_items: Sequence[Mapping[str, Any]],
    real_items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    output_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    max_length: int = 128,
    truncation: str = "truncate",
    batch_size: int = 64,
    k: int = 3,
    grid_rows: int = 8,
) -> dict[str, float]:
    """Quality of synthetic images against real ones, measured by a dual encoder trained on real pairs.

    ``synthetic_items[i]`` must be generated from the caption of ``real_items[i]`` (``source_image`` names it), so
    that the agreement numbers compare the same captions with synthetic and with real images. Writes
    ``generator_metrics.json`` and ``caption_grid.png`` (caption, synthetic, real) when ``output_dir`` is given.
    """
    if len(synthetic_items) != len(real_items):
        raise ValueError(f"{len(synthetic_items)} synthetic items for {len(real_items)} real ones; pair them 1:1.")
    for i, (s, r) in enumerate(zip(synthetic_items, real_items)):
        if s.get("source_image") not in (None, r["image"]) or s["text"] != r["text"]:
            raise ValueError(f"synthetic item {i} ({s['image']}) was not generated from real item {r['image']}.")
    syn = embed_pairs(
        real_network, synthetic_items, preprocessing, tokenizer, max_length, truncation, device, batch_size
    )
    real = embed_pairs(real_network, real_items, preprocessing, tokenizer, max_length, truncation, device, batch_size)
    # the encoder's 512 features outnumber the few hundred test images (rank-deficient covariances, biased upwards):
    # the distance in the lower-dimensional joint embedding space is reported next to it
    metrics: dict[str, float] = {
        "frechet_distance": frechet_distance(real["features"], syn["features"]),
        "frechet_distance_embedding": frechet_distance(real["image_emb"], syn["image_emb"]),
    }
    metrics.update({k_: float(v) for k_, v in precision_recall(real["features"], syn["features"], k=k).items()})
    metrics.update({k_: float(v) for k_, v in density_coverage(real["features"], syn["features"], k=max(k, 5)).items()})
    groups = [" ".join(it["text"].lower().split()) for it in real_items]
    for tag, emb in (("synthetic", syn), ("real", real)):
        agree = image_text_agreement(emb["image_emb"], emb["text_emb"], text_groups=groups)
        metrics[f"{tag}_pair_cosine"] = float(agree["pair_cosine"])
        metrics[f"{tag}_i2t_auc"] = float(agree["i2t_auc"])
        rec = retrieval_recall(similarity_matrix(emb["image_emb"], emb["text_emb"]), k=(1, 5, 10), text_groups=groups)
        metrics[f"{tag}_i2t_R@10"] = float(rec["i2t_R@10"])
    metrics["n_pairs"] = float(len(real_items))
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "generator_metrics.json", metrics)
        save_caption_grid(synthetic_items, real_items, preprocessing, out / "caption_grid.png", rows=grid_rows)
    return metrics


def save_caption_grid(
    synthetic_items: Sequence[Mapping[str, Any]],
    real_items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    path: str | os.PathLike,
    rows: int = 8,
) -> str:
    """A figure of ``rows`` evenly spaced pairs: the caption, the image synthesised from it, the real image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..visualize import save_figure, to_display

    n = min(rows, len(real_items))
    picks = np.linspace(0, len(real_items) - 1, n).astype(int) if n else []
    fig, axes = plt.subplots(n, 3, figsize=(9, 2.4 * n), squeeze=False, gridspec_kw={"width_ratios": [2.2, 1, 1]})
    for r, i in enumerate(picks):
        syn, real = preprocessing(dict(synthetic_items[i])), preprocessing(dict(real_items[i]))
        axes[r][0].text(0, 0.5, textwrap.fill(real_items[i]["text"][:300], 48), va="center", fontsize=7)
        axes[r][0].axis("off")
        for c, img in ((1, syn["image"]), (2, real["image"])):
            # PIL-read PNGs are (columns, rows) in MONAI's convention: transpose to show them as pictures
            axes[r][c].imshow(to_display(img).T, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        if r == 0:
            axes[r][0].set_title("caption (real)", fontsize=9)
            axes[r][1].set_title("synthetic", fontsize=9)
            axes[r][2].set_title("real", fontsize=9)
    return save_figure(fig, path, dpi=100)


def evaluate_and_log(
    network: torch.nn.Module,
    tokenizer,
    datalist: Mapping[str, Any],
    preprocessing: Callable,
    output_dir: str | os.PathLike,
    tracking_uri: str | None = None,
    experiment_name: str = "vision_language_pretraining",
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """:func:`evaluate_dual_encoder`, then the metrics and ``metrics.json`` logged as one MLflow run (SQLite by
    default: the bundle passes ``sqlite:///<output_dir>/mlruns.db``)."""
    from ..utils.mlflow_log import log_mlflow_run

    metrics = evaluate_dual_encoder(network, tokenizer, datalist, preprocessing, output_dir, **kwargs)
    run_id = log_mlflow_run(
        tracking_uri,
        experiment_name,
        run_name,
        params=params,
        metrics=metrics,
        files=[Path(output_dir) / "metrics.json"],
        artifact_path="evaluation",
        artifact_root=output_dir,
        tags={"method": "convirt", "stage": "evaluate"},
    )
    if run_id:
        write_json_atomic(Path(output_dir) / "metrics.json", {**metrics, "mlflow_run_id": run_id})
    return metrics
