"""Multi-branch SSL losses against direct formulas on small tensors."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import BarlowTwinsLoss

from monai_synpriv.losses import CrossViewInfoNCELoss, MultiBranchBarlowTwinsLoss, MultiBranchVICRegLoss


def reference_vicreg(x, y, sim=25.0, std=25.0, cov=1.0):
    """Written independently after facebookresearch/vicreg's main_vicreg.py (two branches)."""
    n, d = x.shape
    repr_loss = ((x - y) ** 2).mean()
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(torch.clamp(1 - std_x, min=0)) / 2 + torch.mean(torch.clamp(1 - std_y, min=0)) / 2
    cov_x = (x.T @ x) / (n - 1)
    cov_y = (y.T @ y) / (n - 1)
    off = ~torch.eye(d, dtype=torch.bool)
    cov_loss = cov_x[off].pow(2).sum() / d + cov_y[off].pow(2).sum() / d
    return sim * repr_loss + std * std_loss + cov * cov_loss


def branch_terms(z, eps=1e-4):
    b, d = z.shape
    var = sum(max(0.0, 1 - math.sqrt(float(z[:, j].var()) + eps)) for j in range(d)) / d
    zc = z - z.mean(0)
    c = zc.T @ zc / (b - 1)
    cov = sum(float(c[i, j]) ** 2 for i in range(d) for j in range(d) if i != j) / d
    return var, cov


def test_two_branch_vicreg_equals_reference():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5) * 0.3, torch.randn(8, 5) * 2
    torch.testing.assert_close(MultiBranchVICRegLoss()([x, y]), reference_vicreg(x, y), rtol=1e-5, atol=1e-6)


def test_three_branch_vicreg_by_hand_both_normalisations():
    torch.manual_seed(1)
    z = [torch.randn(6, 4) * s for s in (0.2, 1.0, 3.0)]
    pairs = [float(((a - b) ** 2).mean()) for a, b in itertools.combinations(z, 2)]
    terms = [branch_terms(t) for t in z]
    official = MultiBranchVICRegLoss().terms(z)
    assert float(official["invariance"]) == pytest.approx(sum(pairs) / 3, rel=1e-5)
    assert float(official["variance"]) == pytest.approx(sum(v for v, _ in terms) / 3, rel=1e-5)
    assert float(official["covariance"]) == pytest.approx(sum(c for _, c in terms), rel=1e-5)
    authors = MultiBranchVICRegLoss(normalization="authors").terms(z)
    assert float(authors["invariance"]) == pytest.approx(2 * sum(pairs), rel=1e-5)
    assert float(authors["variance"]) == pytest.approx(sum(v for v, _ in terms), rel=1e-5)
    expected = 25 * 2 * sum(pairs) + 25 * sum(v for v, _ in terms) + sum(c for _, c in terms)
    assert float(authors["total"]) == pytest.approx(expected, rel=1e-5)


def test_vicreg_rejects_bad_branches():
    with pytest.raises(ValueError, match="at least 2 branches"):
        MultiBranchVICRegLoss()([torch.randn(4, 3)])
    with pytest.raises(ValueError, match="share one"):
        MultiBranchVICRegLoss()([torch.randn(4, 3), torch.randn(4, 2)])
    with pytest.raises(ValueError, match="normalization"):
        MultiBranchVICRegLoss(normalization="other")


def test_cross_view_infonce_by_hand():
    torch.manual_seed(2)
    z = [torch.randn(4, 3) for _ in range(3)]
    tau = 0.5
    n = [F.normalize(t, dim=1) for t in z]
    total, count = 0.0, 0
    for i, j in itertools.permutations(range(3), 2):
        for b in range(4):
            logits = [float(n[i][b] @ n[j][k]) / tau for k in range(4)]
            total += -(logits[b] - math.log(sum(math.exp(v) for v in logits)))
        count += 4
    assert float(CrossViewInfoNCELoss(tau)(z)) == pytest.approx(total / count, rel=1e-5)
    aligned = torch.eye(4)
    assert float(CrossViewInfoNCELoss(0.05)([aligned, aligned])) < 1e-6  # perfect alignment: ~0


def test_multibranch_barlow_twins_reuses_monai():
    torch.manual_seed(3)
    x, y, w = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 4)
    monai_loss = BarlowTwinsLoss(lambd=5e-3)
    torch.testing.assert_close(MultiBranchBarlowTwinsLoss()([x, y]), monai_loss(x, y))
    expected = (monai_loss(x, y) + monai_loss(x, w) + monai_loss(y, w)) / 3
    torch.testing.assert_close(MultiBranchBarlowTwinsLoss()([x, y, w]), expected)
