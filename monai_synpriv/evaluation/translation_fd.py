"""How far synthetic target-contrast images are from real ones when no aligned target exists: the Frechet distance
between their feature distributions, calibrated by the distance between two halves of the real images.

No pretrained feature network can be downloaded here, so the feature space is a *fixed* randomly initialised 2D
ResNet-18 (seeded; the same weights on every machine and run), global-average-pooled at every stage, plus a
16-bin foreground intensity histogram, projected by a fixed random orthonormal matrix to 64 dimensions (so that a
few hundred images give a full-rank covariance). Random convolutional features are a weaker but stable embedding for
distribution comparison (Naeem et al. 2020 use them for precision/recall); the real-vs-real floor and the
untranslated-input reference make the number readable: a translator is good when its distance approaches the floor
and is far below the input's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.networks.nets import resnet18
from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Resize, ScaleIntensityRangePercentiles
from tqdm.auto import tqdm

from ..transforms import AsGrayscale
from .generative import frechet_distance

__all__ = ["FixedRandomFeatures", "image_features", "translation_frechet_report"]


class FixedRandomFeatures(torch.nn.Module):
    """A seeded, randomly initialised MONAI ResNet-18 (2D, one channel): the mean of each stage's feature map
    (64 + 128 + 256 + 512 values), each stage standardised, and a 16-bin histogram of the foreground (> 0)
    intensities; 976 values projected to ``out_features`` by a fixed random orthonormal matrix, times 100 (so that
    the distances are of order 1).

    Args:
        seed: the weights' and the projection's seed (0 by default: every report uses the same feature space).
        out_features: dimensions kept (at most 976).
    """

    def __init__(self, seed: int = 0, out_features: int = 64) -> None:
        super().__init__()
        if not 1 <= out_features <= 976:
            raise ValueError(f"out_features must be between 1 and 976, got {out_features}.")
        gen = torch.Generator().manual_seed(seed)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.net = resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False).eval()
        torch.random.set_rng_state(state)
        q, _ = torch.linalg.qr(torch.randn(976, out_features, generator=gen))
        self.register_buffer("projection", q)
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) images in [0, 1] -> (B, out_features) features."""
        n = self.net
        h = n.act(n.bn1(n.conv1(x)))
        h = n.maxpool(h) if not n.no_max_pool else h
        pooled = []
        for stage in (n.layer1, n.layer2, n.layer3, n.layer4):
            h = stage(h)
            m = h.mean(dim=(2, 3))
            pooled.append(m / m.norm(dim=1, keepdim=True).clamp_min(1e-8))  # each stage weighs the same
        hist = torch.stack([torch.histc(img[img > 0], bins=16, min=0.0, max=1.0) for img in x])
        hist = hist / hist.sum(dim=1, keepdim=True).clamp_min(1)
        return 100.0 * (torch.cat(pooled + [hist], dim=1) @ self.projection)  # x100: distances of order 1


def image_features(
    paths: Sequence[str],
    extractor: torch.nn.Module | None = None,
    image_size: int = 128,
    batch_size: int = 32,
    desc: str = "features",
) -> np.ndarray:
    """Features of the images at ``paths`` (NIfTI, PNG, JPEG, ...): grey, foreground percentiles 0.5-99.5 to [0, 1]
    (as the slice cache normalises volumes), resized to ``image_size`` square.

    Raises:
        ValueError: no paths; a file that cannot be read is named by MONAI's reader error.
    """
    if not paths:
        raise ValueError("image_features needs at least one image path.")
    extractor = FixedRandomFeatures() if extractor is None else extractor
    load = Compose(
        [
            LoadImage(image_only=True),
            EnsureChannelFirst(),
            AsGrayscale(),
            ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True),
            Resize((image_size, image_size), mode="bilinear", anti_aliasing=True),
        ]
    )
    feats = []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, leave=False):
        batch = []
        for p in paths[start : start + batch_size]:
            try:
                batch.append(torch.as_tensor(load(p)).float())
            except Exception as e:
                raise ValueError(f"cannot read {p} for the Frechet distance: {e}") from e
        feats.append(extractor(torch.stack(batch)).double().numpy())
    return np.concatenate(feats)


def translation_frechet_report(
    synthetic: Sequence[str],
    real: Sequence[str],
    untranslated: Sequence[str] | None = None,
    seed: int = 0,
    image_size: int = 128,
    real_groups: Sequence[str] | None = None,
) -> dict[str, float | int]:
    """
    Frechet distances in the fixed feature space, all at equal sample sizes (the distance is biased by the number
    of samples, so every set is subsampled to half the real images): ``fd_synthetic`` (synthetic vs real half B),
    ``fd_floor`` (real half A vs real half B: what two samples of the real distribution score) and, with
    ``untranslated`` (the translator's inputs), ``fd_untranslated``. Also ``fd_ratio`` = synthetic / untranslated.

    Args:
        synthetic: paths of synthetic target-contrast images.
        real: paths of real target-contrast images (at least 4), e.g. the slices of the multi-contrast subjects.
        untranslated: paths of the source images the synthetic ones were made from.
        seed: the random halving and subsampling.
        real_groups: the subject of each real image: the halves are then made of whole subjects (neighbouring slices
            of one subject are near-duplicates, so a split by slice gives an optimistic floor).
    """
    if len(real) < 4:
        raise ValueError(f"need at least 4 real images to split into halves, got {len(real)}.")
    if real_groups is not None and len(real_groups) != len(real):
        raise ValueError(f"real_groups has {len(real_groups)} entries for {len(real)} real images.")
    rng = np.random.default_rng(seed)
    extractor = FixedRandomFeatures()
    real_f = image_features(list(real), extractor, image_size, desc="real features")
    if real_groups is None:
        order = rng.permutation(len(real_f))
        first, second = order[: len(order) // 2], order[len(order) // 2 :]
    else:
        groups = sorted(set(real_groups))
        if len(groups) < 2:
            raise ValueError(f"real_groups must name at least 2 subjects to split by, got {groups}.")
        picked = set(rng.permutation(groups)[: len(groups) // 2].tolist())
        first = np.array([i for i, g in enumerate(real_groups) if g in picked])
        second = np.array([i for i, g in enumerate(real_groups) if g not in picked])
    half = min(len(first), len(second))
    real_a, real_b = real_f[rng.permutation(first)[:half]], real_f[rng.permutation(second)[:half]]

    def sub(paths: Sequence[str], desc: str) -> np.ndarray:
        idx = rng.permutation(len(paths))[: min(half, len(paths))]
        return image_features([paths[i] for i in idx], extractor, image_size, desc=desc)

    syn_f = sub(list(synthetic), "synthetic features")
    report: dict[str, float | int] = {
        "fd_synthetic": frechet_distance(real_b, syn_f),
        "fd_floor": frechet_distance(real_b, real_a),
        "n_per_set": int(min(half, len(syn_f))),
        "floor_split": "by subject" if real_groups is not None else "by image",
    }
    if untranslated:
        report["fd_untranslated"] = frechet_distance(real_b, sub(list(untranslated), "input features"))
        report["fd_ratio"] = report["fd_synthetic"] / max(report["fd_untranslated"], 1e-12)
    return report
