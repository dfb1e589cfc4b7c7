"""Foreground SSIM and the metrics JSON's baseline pairing."""

import json

import pytest
import torch
from monai.metrics import SSIMMetric

from monai_synpriv.handlers import MetricsJSONWriter
from monai_synpriv.metrics import ForegroundSSIMMetric


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_foreground_ssim_ignores_the_background(spatial_dims):
    torch.manual_seed(0)
    size, inner = [48] * spatial_dims, (slice(None), slice(None)) + (slice(12, 36),) * spatial_dims
    real, fake = torch.zeros(2, 1, *size), torch.zeros(2, 1, *size)
    real[inner] = torch.rand_like(real[inner]) * 0.8 + 0.1
    fake[inner] = torch.rand_like(fake[inner]) * 0.8 + 0.1  # same range, no structure in common
    whole = SSIMMetric(spatial_dims, win_size=7)(fake, real).mean()
    fg = ForegroundSSIMMetric(spatial_dims, win_size=7)(fake, real).mean()
    # the matching black background lifts the whole-frame score (measured 0.70 vs 0.20 in 2D, 0.83 vs 0.27 in 3D;
    # the foreground windows at the border still see some background)
    assert fg < 0.35 and whole > 2 * fg
    assert torch.allclose(ForegroundSSIMMetric(spatial_dims, win_size=7)(real, real), torch.ones(2, 1))
    # no foreground -> NaN, skipped by the reduction
    metric = ForegroundSSIMMetric(spatial_dims, win_size=7)
    metric(fake, torch.zeros_like(real))
    metric(real, real)
    assert metric.aggregate().item() == pytest.approx(1.0)


def test_metrics_json_pairs_each_metric_with_its_own_baseline(tmp_path):
    class _Engine:
        class state:  # noqa: N801
            metrics = {"ssim": 0.5, "fg_ssim": 0.3, "baseline_hist_ssim": 0.6, "baseline_hist_fg_ssim": 0.2,
                       "mae": 0.1, "baseline_linear_mae": 0.2}  # fmt: skip
            iteration = 3

    MetricsJSONWriter(tmp_path / "m.json")(_Engine)
    comparison = json.loads((tmp_path / "m.json").read_text())["comparison"]
    assert set(comparison) == {"ssim_vs_baseline_hist_ssim", "fg_ssim_vs_baseline_hist_fg_ssim", "mae_vs_baseline_linear_mae"}
    assert comparison["fg_ssim_vs_baseline_hist_fg_ssim"]["method_better"] is True
    assert comparison["ssim_vs_baseline_hist_ssim"]["method_better"] is False
    assert comparison["mae_vs_baseline_linear_mae"]["method_better"] is True


def test_frechet_report_separates_contrasts_on_real_slices(slice_datalist):
    """On the real slices (T1c and FLAIR of the training subjects): FLAIR is far closer to the other half of the FLAIR
    slices than T1c is, the floor (real vs real) is the smallest, and the feature space is the same in every call."""
    from monai_synpriv.data import load_image_list
    from monai_synpriv.evaluation import FixedRandomFeatures, translation_frechet_report

    flair_items = load_image_list(slice_datalist, key="B", section="training_b", source_key="B")[::3]
    flair, subjects = [i["B"] for i in flair_items], [i["subject"] for i in flair_items]
    t1c = [i["A"] for i in load_image_list(slice_datalist, key="A", section="training_a", source_key="A")][::3]
    wrong = translation_frechet_report(t1c, flair, untranslated=flair[::-1], image_size=64)
    assert wrong["floor_split"] == "by image"
    assert wrong["fd_floor"] < 0.5 * wrong["fd_synthetic"], wrong  # T1c is not FLAIR
    assert wrong["fd_untranslated"] < 0.5 * wrong["fd_synthetic"], wrong  # FLAIR itself is
    # halves of whole subjects: a floor that counts the between-subject spread (here larger than the T1c/FLAIR gap
    # at 30 images of 3 subjects, which is why the report says which split it used)
    by_subject = translation_frechet_report(t1c, flair, image_size=64, real_groups=subjects)
    assert by_subject["floor_split"] == "by subject" and by_subject["fd_floor"] > wrong["fd_floor"]
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(FixedRandomFeatures()(x), FixedRandomFeatures()(x))
