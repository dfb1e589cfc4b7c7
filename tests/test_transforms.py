import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

from monai_synpriv.transforms import (
    ForegroundPercentileNormalize,
    ForegroundPercentileNormalized,
    IntensityMatch,
    SaveToPathd,
)


def test_foreground_percentiles_ignore_background():
    fg = torch.linspace(10, 110, 101)
    img = torch.cat([torch.zeros(1000), fg]).view(1, -1)
    out = ForegroundPercentileNormalize(lower=0, upper=100)(img)
    assert float(out[0, :1000].abs().max()) == 0.0  # background stays at b_min
    assert float(out[0, 1000]) == pytest.approx(0.0) and float(out[0, -1]) == pytest.approx(1.0)
    assert float(out[0, 1050]) == pytest.approx(0.5)
    # whole-volume percentiles (MONAI's ScaleIntensityRangePercentiles) would depend on the background share
    out2 = ForegroundPercentileNormalize(lower=0, upper=100)(torch.cat([torch.zeros(5), fg]).view(1, -1))
    torch.testing.assert_close(out2[0, 5:], out[0, 1000:])


def test_normalize_errors_name_key_and_file():
    with pytest.raises(ValueError, match="NaN"):
        ForegroundPercentileNormalize()(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="constant"):
        ForegroundPercentileNormalize()(torch.full((1, 4, 4), 3.0))
    img = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/data/empty.nii.gz"})
    with pytest.raises(ValueError, match=r"key 'image', file /data/empty.nii.gz: .*no foreground"):
        ForegroundPercentileNormalized(keys="image")({"image": img})


def test_as_grayscale():
    from monai_synpriv.transforms import AsGrayscale

    rgb = torch.zeros(3, 2, 2)
    rgb[0] = 1.0  # pure red
    out = AsGrayscale()(rgb)
    assert out.shape == (1, 2, 2) and float(out.max()) == pytest.approx(0.299)
    single = torch.rand(1, 2, 2)
    assert torch.equal(AsGrayscale()(single), single)
    with pytest.raises(ValueError, match="channels"):
        AsGrayscale()(torch.rand(2, 2, 2))


def test_intensity_match():
    x = torch.zeros(1, 8, 8)
    x[0, 2:6, 2:6] = torch.linspace(1, 2, 16).view(4, 4)
    ref = torch.zeros(1, 8, 8)
    ref[0, 1:7, 1:7] = torch.linspace(5, 9, 36).view(6, 6)
    lin = IntensityMatch("linear")(x, ref)
    fg = lin[x > 0]
    assert float(fg.mean()) == pytest.approx(float(ref[ref > 0].mean()), rel=1e-5)
    assert float(fg.std()) == pytest.approx(float(ref[ref > 0].std()), rel=1e-4)
    assert float(lin[x == 0].abs().max()) == 0.0
    hist = IntensityMatch("histogram")(x, ref)
    assert float(hist[x > 0].min()) == pytest.approx(5.0) and float(hist[x > 0].max()) == pytest.approx(9.0)
    order = torch.argsort(x[x > 0])
    assert torch.all(torch.diff(hist[x > 0][order]) >= 0), "histogram matching must be monotone"


def test_save_to_path_keeps_affine_and_is_atomic(tmp_path):
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    affine[:3, 3] = [-10, 20, 5]
    img = MetaTensor(torch.rand(1, 12, 10), affine=torch.as_tensor(affine))
    dest = tmp_path / "out" / "case_syn.nii.gz"
    SaveToPathd(keys="pred", path_key="dest")({"pred": img, "dest": str(dest)})
    saved = nib.load(str(dest))
    assert saved.shape == (12, 10)
    np.testing.assert_allclose(saved.affine, affine)
    np.testing.assert_allclose(saved.get_fdata(), img[0].numpy(), rtol=1e-6)
    assert [p.name for p in dest.parent.iterdir()] == ["case_syn.nii.gz"], "no temporary file may be left behind"
    png = tmp_path / "pic.png"
    SaveToPathd(keys="pred", path_key="dest")({"pred": img, "dest": str(png)})
    back = LoadImage(image_only=True)(str(png))
    assert back.shape == (12, 10)
    np.testing.assert_allclose(np.asarray(back) / 255.0, img[0].numpy(), atol=1 / 255 + 1e-6)
    with pytest.raises(KeyError, match="dest"):
        SaveToPathd(keys="pred", path_key="dest")({"pred": img})
