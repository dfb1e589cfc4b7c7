"""Pairs on different voxel grids: a real T1c/T2w pair with the T2w moved to a coarser, shifted grid is resampled
back onto the T1c's grid by the affines, trains in the 3D SSL bundle, and pairs that no affine relates are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, bundle, expr, require

SSL = REPO / "bundles" / "multimodal_ssl"
SUBJECT = "BraTS-GLI-00001-000"
#: the moved T2w grid: 2 x 2 x 3 mm voxels, origin shifted by these millimetres (world, RAS)
SHIFT_MM = (11.0, -9.0, 6.0)


def _corr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    x, y = a[mask].double(), b[mask].double()
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])


@pytest.fixture(scope="module")
def pair(tmp_path_factory, multicontrast_dir):
    """(T1c path, original T2w path, path of the T2w resampled to 2 x 2 x 3 mm with its origin shifted)."""
    import nibabel as nib
    from monai.transforms import LoadImage, SpatialResample

    t1c = require(multicontrast_dir / SUBJECT / "t1c.nii.gz")
    t2w = require(multicontrast_dir / SUBJECT / "t2w.nii.gz")
    img = LoadImage(image_only=True, ensure_channel_first=True)(t2w)
    affine = img.affine.numpy().copy()
    coarse = affine.copy()
    coarse[:3, :3] = affine[:3, :3] @ np.diag([2.0, 2.0, 3.0])
    coarse[:3, 3] += SHIFT_MM
    moved = SpatialResample(mode="bilinear", padding_mode="zeros")(
        img.float(), dst_affine=torch.as_tensor(coarse), spatial_size=(120, 120, 52)
    )
    out = tmp_path_factory.mktemp("pair") / "t2w_2x2x3_shifted.nii.gz"
    nib.save(nib.Nifti1Image(moved[0].numpy().astype(np.float32), coarse), out)
    return t1c, t2w, out


def test_resampling_puts_the_privileged_image_back_on_the_primary_grid(pair):
    from monai.transforms import LoadImaged, Resized

    from monai_synpriv.transforms import MatchPairGridd

    t1c, t2w, moved = pair
    load = LoadImaged(["image", "privileged", "truth"], image_only=True, ensure_channel_first=True)
    d = load({"image": str(t1c), "privileged": str(moved), "truth": str(t2w)})
    assert d["privileged"].shape[1:] == (120, 120, 52)  # really on another grid before the step
    out = MatchPairGridd("privileged", key_dst="image")(d)
    priv, prim, truth = out["privileged"], out["image"], out["truth"]
    assert priv.shape == prim.shape
    assert torch.allclose(priv.affine, prim.affine, atol=1e-4)
    assert str(priv.meta["filename_or_obj"]) == str(moved) and str(priv.meta["matched_to"]) == str(t1c)
    brain = truth > 0
    assert _corr(priv, truth, brain) > 0.9
    # what one box over the unresampled pair shows: the moved array stretched to the primary's shape
    naive = Resized("privileged", spatial_size=prim.shape[1:], mode="trilinear")({"privileged": d["privileged"]})
    assert _corr(naive["privileged"], truth, brain) < 0.6
    # an aligned pair passes through untouched (no interpolation)
    same = MatchPairGridd("truth", key_dst="image")(load({"image": str(t1c), "privileged": str(t2w), "truth": str(t2w)}))
    assert torch.equal(same["truth"].as_tensor(), truth.as_tensor())


def test_ssl_3d_load_resamples_and_one_pair_trains(pair, tmp_path):
    from monai.bundle import ConfigParser

    t1c, t2w, moved = pair
    datalist = tmp_path / "one_pair.json"
    datalist.write_text(json.dumps({"training": [{"image": str(t1c), "privileged": str(moved), "subject": SUBJECT}]}))
    # the bundle's own loading transforms put both images on one grid before they are cropped with one box
    parser = ConfigParser()
    parser.read_config([SSL / "configs" / "train.json", SSL / "configs" / "train_3d.json"])
    parser.update({"bundle_root": str(SSL), "datalist": str(datalist), "patch_size": [24, 24, 24]})
    load = parser.get_parsed_content("train#load")
    names = [type(t).__name__ for t in load.transforms]
    assert names.index("MatchPairGridd") == names.index("LoadImaged") + 1
    head = load.transforms[: names.index("CropForegroundd") + 1]
    from monai.transforms import Compose

    got = Compose(head)({"image": str(t1c), "privileged": str(moved)})
    truth = Compose(head)({"image": str(t1c), "privileged": str(t2w)})["privileged"]
    assert got["privileged"].shape == got["image"].shape == truth.shape
    assert _corr(got["privileged"], truth, truth > 0.05) > 0.9

    # one tiny training step through `python -m monai.bundle run` on the one-pair datalist: it used to end in
    # "NotComputableError: Average must have at least one example" (1 pair < batch_size 2 with drop_last)
    proc = bundle(
        "run",
        "--config_file",
        "['configs/train.json','configs/train_3d.json']",
        "--bundle_root",
        str(SSL),
        "--projector_dims",
        "[16,16]",
        "--image_size",
        "[16,16,16]",
        "--patch_size",
        "[24,24,24]",
        "--max_epochs",
        "1",
        "--epoch_length",
        "1",
        "--datalist",
        str(datalist),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        expr(tmp_path / "train"),
        cwd=SSL,
    )
    log = proc.stdout + proc.stderr
    assert "NotComputableError" not in log and "Epoch[1] Complete" in log
    assert (tmp_path / "models" / "model.pt").is_file()


def test_pictures_of_different_sizes_without_affines_are_refused(tmp_path, multicontrast_dir):
    import nibabel as nib
    from monai.transforms import LoadImaged
    from PIL import Image

    from monai_synpriv.transforms import MatchPairGridd, PairGridError

    vol = np.asarray(nib.load(require(multicontrast_dir / SUBJECT / "t1c.nii.gz")).dataobj)[:, :, 80].astype(float)
    pic = (255 * vol / vol.max()).astype(np.uint8)
    a, b = tmp_path / "t1c_slice.png", tmp_path / "t2w_slice_small.png"
    Image.fromarray(pic).save(a)
    Image.fromarray(pic[20:200, 30:190]).save(b)
    d = LoadImaged(["A", "B"], image_only=True, ensure_channel_first=True)({"A": str(a), "B": str(b)})
    with pytest.raises(PairGridError) as err:
        MatchPairGridd("B", key_dst="A")(d)
    message = str(err.value)
    assert str(a) in message and str(b) in message and "no affine relates them" in message
    assert "Register the pair" in message
    # the same pictures at one size are a valid (aligned) pair
    Image.fromarray(pic).save(b)
    d = LoadImaged(["A", "B"], image_only=True, ensure_channel_first=True)({"A": str(a), "B": str(b)})
    assert torch.equal(MatchPairGridd("B", key_dst="A")(d)["B"], d["B"])


def test_3d_translator_scoring_resamples_the_target_onto_the_input_grid(pair):
    from monai.bundle import ConfigParser

    t1c, t2w, moved = pair
    translator = REPO / "bundles" / "unpaired_translator"
    parser = ConfigParser()
    parser.read_config([translator / "configs" / n for n in ("inference.json", "inference_3d.json", "evaluate.json")])
    parser.update({"bundle_root": str(translator)})
    pre = parser.get_parsed_content("preprocessing")
    names = [type(t).__name__ for t in pre.transforms]
    assert "MatchPairGridd" in names and names.index("MatchPairGridd") < names.index("Spacingd")
    got = pre({"image": str(t1c), "label": str(moved)})
    truth = pre({"image": str(t1c), "label": str(t2w)})["label"]
    assert got["label"].shape == got["image"].shape == truth.shape
    assert _corr(got["label"], truth, truth > 0.05) > 0.9
