"""How many pre-training steps make the single-modality Siamese encoder beat a random-init one? (issue 19)

A fast stand-in for the SSL bundle, for choosing a profile's ``ssl_train`` budget before spending it on every arm:
the same network (``build_multibranch_resnet``, ResNet-10, 512-512-512 projector), loss (VICReg, official
normalisation), optimiser (Adam, weight decay 1e-6, gradient clip 1), warm-up + cosine schedule and bf16 autocast as
``bundles/multimodal_ssl/configs/train.json``, on the downstream training images preprocessed like the bundle
(grey, foreground-percentile normalised, 72 px for training, 64 px for probing). Only the augmentation differs: the
same families and ranges as :func:`monai_synpriv.transforms.view_augmentations` (random-scale crop to 64 px, flip,
rotation, gamma, intensity scale and shift), drawn per image but applied to the whole batch on tensors, which is faster
than the bundle's per-image MONAI transforms. Probes: logistic regression and k-NN (the bundle's
``linear_probe``/``knn_probe``) on 1,000 evenly spaced labelled training images and on stratified 1 % and 10 % subsets
of them, scored on the whole test split; the random-init encoder of the same seed is probed the same way.

    python benchmarks/ssl_protocol_trial.py --datalist runs/pipeline_quick/cache/datalists/downstream.json \
        --steps 100 --seed 0

Each run appends one JSON line to ``benchmarks/results/ssl_protocol_trial.jsonl`` (``--results``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def preprocess(datalist: Path, cache: Path) -> dict[str, np.ndarray]:
    """The training (72 px) and probe (64 px) arrays of the datalist's ``training`` and ``test`` sections, cached."""
    from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized
    from tqdm import tqdm

    from monai_synpriv.data.dicom import DicomSeriesReader
    from monai_synpriv.transforms import AsGrayscaled, ForegroundPercentileNormalized

    path = cache / "ssl_protocol_arrays.npz"
    if path.is_file():
        return dict(np.load(path))
    d = json.loads(datalist.read_text())
    load = Compose([
        LoadImaged("image", reader=DicomSeriesReader, image_only=True, ensure_channel_first=True),
        AsGrayscaled("image"),
        ForegroundPercentileNormalized("image"),
        EnsureTyped("image", dtype=torch.float32, track_meta=False),
    ])  # fmt: skip
    out: dict[str, list] = {k: [] for k in ("train72", "train64", "ytrain", "test64", "ytest")}
    for section, prefix in (("training", "train"), ("test", "test")):
        for item in tqdm(d[section], desc=f"preprocessing {section}"):
            x = load({"image": item["image"]})["image"]
            if prefix == "train":
                out["train72"].append(Resized("image", (72, 72), anti_aliasing=True)({"image": x})["image"].numpy())
            out[f"{prefix}64"].append(Resized("image", (64, 64), anti_aliasing=True)({"image": x})["image"].numpy())
            out[f"y{prefix}"].append(int(item["label"]))
    arrays = {k: np.stack(v) if k.startswith(("train", "test")) else np.asarray(v) for k, v in out.items()}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def batch_views(x: torch.Tensor, size: int, scale: tuple[float, float], rotate: float) -> torch.Tensor:
    """One augmented view per image: random-scale crop + flip + rotation in one resampling, then gamma (p 0.8),
    intensity scale +-0.1 and shift +-0.05 (p 0.5), the ranges of ``view_augmentations`` (which rotates half of the
    views; here every view gets an angle in +-``rotate``)."""
    n = x.shape[0]
    side = torch.empty(n).uniform_(*scale).sqrt()
    angle = torch.empty(n).uniform_(-rotate, rotate)
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    tx, ty = ((torch.rand(n) * 2 - 1) * (1 - side) for _ in range(2))
    cos, sin = torch.cos(angle) * side, torch.sin(angle) * side
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    y = F.grid_sample(x, F.affine_grid(theta, [n, 1, size, size], align_corners=False), align_corners=False)
    gamma = torch.where(torch.rand(n) < 0.8, torch.empty(n).uniform_(0.7, 1.5), torch.ones(n)).view(n, 1, 1, 1)
    y = y.clamp(0).pow(gamma)
    on = (torch.rand(n) < 0.5).float().view(n, 1, 1, 1)
    return y * (1 + on * torch.empty(n, 1, 1, 1).uniform_(-0.1, 0.1)) + on * torch.empty(n, 1, 1, 1).uniform_(-0.05, 0.05)


def probe(encoder: torch.nn.Module, arrays: dict[str, np.ndarray], max_train: int) -> dict[str, float]:
    from monai_synpriv.evaluation.probes import knn_probe, linear_probe

    def features(x: np.ndarray) -> np.ndarray:
        encoder.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.cat([encoder(torch.from_numpy(x[i : i + 256])).float() for i in range(0, len(x), 256)]).numpy()

    sel = np.linspace(0, len(arrays["ytrain"]) - 1, max_train).round().astype(int)
    ftr, ytr = features(arrays["train64"])[sel], arrays["ytrain"][sel]
    fte, yte = features(arrays["test64"]), arrays["ytest"]
    rng, out = np.random.RandomState(0), {}
    for frac in (0.01, 0.1, 1.0):
        sub = np.arange(len(sel)) if frac == 1 else np.concatenate([
            rng.permutation(np.flatnonzero(ytr == c))[: max(1, int(round(frac * (ytr == c).sum())))] for c in np.unique(ytr)
        ])  # fmt: skip
        tag = f"{frac * 100:g}pct"
        out[f"linear_{tag}"] = float((linear_probe(ftr[sub], ytr[sub], fte) == yte).mean())
        out[f"knn_{tag}"] = float((knn_probe(ftr[sub], ytr[sub], fte, k=min(20, len(sub))) == yte).mean())
    return out


def main() -> None:
    from monai_synpriv.losses import MultiBranchVICRegLoss
    from monai_synpriv.networks import build_multibranch_resnet, make_resnet_encoder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datalist", type=Path, required=True, help="the pipeline's cache/datalists/downstream.json")
    p.add_argument("--cache", type=Path, default=REPO / "runs" / "ssl_protocol_cache")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "ssl_protocol_trial.jsonl")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--crop_scale", type=float, nargs=2, default=(0.5, 1.0))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_train", type=int, default=1000)
    p.add_argument("--no_random_init", action="store_true", help="skip the random-init probe (already measured)")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    arrays = preprocess(a.datalist, a.cache)
    x72 = torch.from_numpy(arrays["train72"])
    net = build_multibranch_resnet(2, [0, 0], depth=10, projector_dims=[512, 512, 512])
    loss_fn = MultiBranchVICRegLoss(normalization="official")
    opt = torch.optim.Adam(net.parameters(), a.lr, weight_decay=1e-6)
    warm = int(0.1 * a.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda i: (i + 1) / max(1, warm) if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, a.steps - warm))),
    )
    start = time.time()
    net.train()
    for _ in range(a.steps):
        x = x72[torch.randint(0, len(x72), (a.batch_size,))]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net([batch_views(x, 64, a.crop_scale, 0.26), batch_views(x, 64, a.crop_scale, 0.26)])
        loss = loss_fn(out)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
    row = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "train_seconds": round(time.time() - start, 1),
        "siamese": probe(net.primary_encoder, arrays, a.max_train),
    }
    if not a.no_random_init:
        torch.manual_seed(a.seed)
        row["random_init"] = probe(make_resnet_encoder(2, 1, 10), arrays, a.max_train)
    print(json.dumps(row))
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
