"""A judge of synthetic images that does not depend on the generator: does the image show what the caption says?

A small classifier trained on **real** training images only predicts the MedPix attributes of an image: modality
(CT/MR) and body region (the ``location_category`` values, ``label_names["region"]`` of
:func:`~monai_synpriv.data.prepare_medpix_datalist`). On images generated from test captions, its agreement with the
caption's own attributes says whether the generator draws the right kind of image; its accuracy on the real test
images is the ceiling to read that agreement against, and the majority-class rate is chance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from torch import nn

from ..networks import make_resnet_encoder
from ..networks.multibranch import RESNET_FEATURES
from ..utils.precision import autocast

__all__ = ["ATTRIBUTES", "AttributeJudge", "judge_agreement", "judge_report", "train_judge"]

#: the attributes the judge predicts, as keys of the MedPix datalist items
ATTRIBUTES = ("modality", "region")


class AttributeJudge(nn.Module):
    """A MONAI ResNet encoder (random initialisation) with one linear head per attribute.

    Args:
        num_classes: classes per attribute, e.g. ``{"modality": 2, "region": 9}``.
        spatial_dims: 2 for slices.
        in_channels: image channels.
        depth: ResNet depth (10, 18, 34, 50).
    """

    def __init__(self, num_classes: Mapping[str, int], spatial_dims: int = 2, in_channels: int = 1, depth: int = 10):
        super().__init__()
        if not num_classes or any(int(n) < 2 for n in num_classes.values()):
            raise ValueError(f"every attribute needs at least 2 classes, got {dict(num_classes)}.")
        self.encoder = make_resnet_encoder(spatial_dims, in_channels, depth)
        self.heads = nn.ModuleDict({k: nn.Linear(RESNET_FEATURES[depth], int(n)) for k, n in num_classes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.encoder(x)
        return {k: head(f) for k, head in self.heads.items()}


def _loader(items: Sequence[Mapping[str, Any]], preprocessing: Callable, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(Dataset(list(items), preprocessing), batch_size=batch_size, shuffle=shuffle, num_workers=0)


def _images(batch: Mapping[str, Any], device: str | torch.device) -> torch.Tensor:
    x = batch["image"]
    return (x.as_tensor() if hasattr(x, "as_tensor") else x).to(device).float()


def _labels(items: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    missing = [i for i, it in enumerate(items) if not isinstance(it.get(key), int)]
    if missing:
        raise ValueError(f"item {missing[0]} ({items[missing[0]].get('image')}) has no integer {key!r} label.")
    return np.asarray([it[key] for it in items])


def train_judge(
    items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    num_classes: Mapping[str, int],
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    depth: int = 10,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    seed: int = 0,
) -> tuple[AttributeJudge, list[float]]:
    """Train an :class:`AttributeJudge` on real labelled images (``preprocessing`` loads ``item["image"]`` as a
    C x H x W tensor), with the summed cross-entropy of its heads, Adam and a cosine schedule, under ``precision``
    (``auto``: bf16 autocast on CPU and CUDA). Returns the judge (in eval mode) and the mean loss of every epoch."""
    for key in num_classes:
        _labels(items, key)  # every item labelled, before any training
    torch.manual_seed(seed)
    judge = AttributeJudge(num_classes, depth=depth).to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    loader = _loader(items, preprocessing, batch_size, shuffle=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
    losses = []
    judge.train()
    for _ in range(epochs):
        total, n = 0.0, 0
        for batch in loader:
            x = _images(batch, device)
            with autocast(device, precision):
                logits = judge(x)
            loss = sum(
                nn.functional.cross_entropy(logits[k].float(), torch.as_tensor(batch[k]).long().to(device))
                for k in num_classes
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(x), n + len(x)
        losses.append(total / max(1, n))
    return judge.eval(), losses


@torch.no_grad()
def predict_attributes(
    judge: AttributeJudge,
    items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """The judge's predicted class per attribute for every item, in order."""
    judge = judge.to(device).eval()
    out: dict[str, list[np.ndarray]] = {k: [] for k in judge.heads}
    for batch in _loader(items, preprocessing, batch_size, shuffle=False):
        logits = judge(_images(batch, device))
        for k, v in logits.items():
            out[k].append(v.argmax(1).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def judge_agreement(
    judge: AttributeJudge,
    items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Per attribute, the fraction of ``items`` whose predicted class equals the item's own label (for synthetic
    items: the label of the real item whose caption generated them)."""
    if not items:
        raise ValueError("no items to judge.")
    pred = predict_attributes(judge, items, preprocessing, batch_size, device)
    return {k: float((pred[k] == _labels(items, k)).mean()) for k in pred}


def judge_report(
    judge: AttributeJudge,
    real_items: Sequence[Mapping[str, Any]],
    synthetic_items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """The judge on real test images and on the synthetic images of the same captions (``synthetic_items[i]``
    generated from ``real_items[i]``'s caption: its labels are copied from it), with chance (the majority-class
    rate of the real items) per attribute: ``judge_real_<attr>_accuracy``, ``judge_synthetic_<attr>_agreement``,
    ``judge_chance_<attr>``."""
    if len(real_items) != len(synthetic_items):
        raise ValueError(f"{len(synthetic_items)} synthetic items for {len(real_items)} real ones; pair them 1:1.")
    labelled = [{**s, **{k: r[k] for k in judge.heads}} for s, r in zip(synthetic_items, real_items)]
    real = judge_agreement(judge, real_items, preprocessing, batch_size, device)
    syn = judge_agreement(judge, labelled, preprocessing, batch_size, device)
    out: dict[str, float] = {}
    for k in judge.heads:
        counts = np.bincount(_labels(real_items, k))
        out[f"judge_real_{k}_accuracy"] = real[k]
        out[f"judge_synthetic_{k}_agreement"] = syn[k]
        out[f"judge_chance_{k}"] = float(counts.max() / counts.sum()) if counts.sum() else math.nan
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monai_synpriv.vlp.judge``: train the judge on the real MedPix training and validation images and
    write ``judge_metrics.json`` (its accuracy on the real test images, chance, and with ``--synthetic_datalist`` its
    agreement on the synthetic images generated from the test captions) and its weights ``judge.pt``.

    ``--judge_ckpt`` reuses a judge trained before (its ``judge.pt``) instead of training one, so that several
    generators are scored by the very same judge."""
    import argparse
    import json
    import os
    from pathlib import Path

    from monai.transforms import Compose, EnsureTyped, LoadImaged, ResizeWithPadOrCropd, Resized, ScaleIntensityd

    from ..data import prepare_medpix_datalist
    from ..transforms import AsGrayscaled
    from ..utils.io import atomic_path, sha256_file, write_json_atomic
    from .data import load_pairs, pair_synthetic_with_real

    p = argparse.ArgumentParser(prog="python -m monai_synpriv.vlp.judge", description=main.__doc__.split("\n\n")[0])
    p.add_argument("--data_root", default=os.path.join("..", "shared", "data"), help="folder holding medpix2_subset")
    p.add_argument("--synthetic_datalist", default=None, help="synthetic_datalist.json of text_to_image_diffusion")
    p.add_argument("--section", default="test", help="the captions' section to judge (default test)")
    p.add_argument(
        "--train_sections",
        nargs="+",
        default=["training", "validation"],
        help="real sections the judge trains on (never --section; default training and validation)",
    )
    p.add_argument("--output", default="runs/vlp_judge", help="folder of judge_metrics.json")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge_ckpt", default=None, help="judge.pt of an earlier call: judge with it, train nothing")
    a = p.parse_args(argv)
    if a.judge_ckpt and not Path(a.judge_ckpt).is_file():
        raise FileNotFoundError(f"--judge_ckpt {a.judge_ckpt} not found (judge.pt of an earlier judge run).")
    data = prepare_medpix_datalist(Path(a.data_root) / "medpix2_subset")
    load = Compose([
        LoadImaged("image", reader="PILReader", image_only=True, ensure_channel_first=True),
        AsGrayscaled("image"),
        EnsureTyped("image", dtype=torch.float32, track_meta=False),
        Resized("image", spatial_size=a.image_size, size_mode="longest", mode="area"),
        ResizeWithPadOrCropd("image", spatial_size=(a.image_size, a.image_size)),
        ScaleIntensityd("image", minv=0.0, maxv=1.0),
    ])  # fmt: skip
    if a.section in a.train_sections:
        raise ValueError(f"--train_sections {a.train_sections} must not include the judged section {a.section!r}.")
    train_items = [it for sec in a.train_sections for it in data[sec]]
    real = data[a.section]
    synthetic = None
    if a.synthetic_datalist:  # checked before training
        synthetic, real = pair_synthetic_with_real(load_pairs(a.synthetic_datalist, a.section), real)
    classes = {k: len(data["label_names"][k]) for k in ATTRIBUTES}
    if a.judge_ckpt:
        judge, losses = AttributeJudge(classes), []
        judge.load_state_dict(torch.load(a.judge_ckpt, map_location="cpu", weights_only=True))
        judge.eval()
    else:
        judge, losses = train_judge(train_items, load, classes, epochs=a.epochs, seed=a.seed)
    metrics = judge_report(judge, real, synthetic if synthetic is not None else real, load)
    if synthetic is None:
        metrics = {k: v for k, v in metrics.items() if not k.startswith("judge_synthetic_")}
    out = {
        "metrics": metrics,
        "train_loss_per_epoch": losses,
        "n_training": len(train_items),
        f"n_{a.section}": len(real),
        "args": vars(a),
        # which images were judged: a re-run for another generator's images is told apart by this
        "synthetic_sha256": sha256_file(a.synthetic_datalist) if a.synthetic_datalist else None,
    }
    Path(a.output).mkdir(parents=True, exist_ok=True)
    if not a.judge_ckpt:
        with atomic_path(Path(a.output) / "judge.pt") as tmp:
            torch.save(judge.state_dict(), tmp)
    write_json_atomic(Path(a.output) / "judge_metrics.json", out)
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
