"""Non-finite and constant input images: refused naming the file, or skipped with a logged reason (``on_bad_input``).

The transform on small tensors and a real MRI slice; the configs' wiring (the check right after loading, before any
intensity transform); then the translator's and the multimodal SSL encoder's inference run as users run them
(``python -m monai.bundle run``) on a folder holding real MRI slices, one with NaN voxels and one constant.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE, MULTICONTRAST, REPO, bundle, expr, require
from monai.data import MetaTensor

from monai_synpriv.transforms import (
    CheckImageContent,
    CheckImageContentd,
    ImageContentError,
    filter_bad_images,
    image_content_problem,
)

SSL = REPO / "bundles" / "multimodal_ssl"
TINY = ["--ngf", "4", "--num_res_blocks", "1", "--image_size", "[32,32]"]
SSL_TINY = ["--depth", "10", "--image_size", "[32,32]", "--precision", "fp32"]

#: (bundle, configs merged in order) of every config that loads images for inference or embedding
CONFIGS = {
    "unpaired_translator/inference.json": ("unpaired_translator", ["inference.json"]),
    "unpaired_translator/inference_3d.json": ("unpaired_translator", ["inference.json", "inference_3d.json"]),
    "unpaired_translator/inference_pix2pix.json": ("unpaired_translator", ["inference.json", "inference_pix2pix.json"]),
    "multimodal_ssl/inference.json": ("multimodal_ssl", ["inference.json"]),
    "mae_pretraining/inference.json": ("mae_pretraining", ["inference.json"]),
    "contrastive_ae_clustering/inference.json": ("contrastive_ae_clustering", ["inference.json"]),
}
#: the one entry per bundle whose ``items`` screens the inputs
SCREENED = [
    "unpaired_translator",
    "multimodal_ssl",
    "mae_pretraining",
    "contrastive_ae_clustering",
    "examine_assessment",
]


def _image(array, name: str = "/data/subject_07/scan.nii.gz") -> MetaTensor:
    return MetaTensor(torch.as_tensor(array), meta={"filename_or_obj": name})


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda x: x.view(-1)[:12].fill_(float("nan")), "contains 12 NaN and 0 infinite voxels (of 1024)"),
        (lambda x: x.view(-1)[5:8].fill_(-float("inf")), "contains 0 NaN and 3 infinite voxels (of 1024)"),
        (lambda x: x.fill_(0.0), "is constant: every voxel is 0.0"),
        (lambda x: x.fill_(417.0), "is constant: every voxel is 417.0"),
    ],
    ids=["nan", "inf", "zeros", "constant"],
)
def test_bad_content_is_refused_naming_key_file_problem_and_remedy(make, expected):
    x = torch.rand(1, 32, 32)
    make(x)
    img = _image(x)
    with pytest.raises(ImageContentError) as err:
        CheckImageContentd("image")({"image": img, "label": 3})
    message = str(err.value)
    assert message.startswith(f"CheckImageContentd: key 'image': /data/subject_07/scan.nii.gz {expected}."), message
    assert "--on_bad_input skip" in message  # how to proceed
    with pytest.raises(ValueError, match=re.escape(f"scan.nii.gz {expected}.")):
        CheckImageContent()(img)  # the array transform; a ValueError like MONAI's own refusals


def test_integer_constant_and_empty_images_and_in_memory_naming():
    assert image_content_problem(np.zeros((1, 4, 4), np.int16)) == "is constant: every voxel is 0.0"
    assert image_content_problem(np.zeros((1, 0, 4), np.float32)) == "has no voxels (shape (1, 0, 4))"
    assert image_content_problem(np.arange(16, dtype=np.uint8).reshape(1, 4, 4)) is None
    with pytest.raises(ImageContentError, match=r"^<in-memory image> is constant"):
        CheckImageContent()(torch.ones(1, 3, 3))


def _real_slice(index: int = 77) -> tuple[np.ndarray, np.ndarray]:
    """A real axial T1c slice (BraTS-GLI-00001-000) scaled to [0, 1], as the translator's inputs are, and its affine."""
    vol = nib.load(require(MULTICONTRAST / "BraTS-GLI-00001-000" / "t1c.nii.gz"))
    arr = np.asarray(vol.dataobj[:, :, index], dtype=np.float32).clip(0, None)
    return arr / arr.max(), vol.affine


def test_a_real_image_passes_unchanged_through_the_load_pipeline(tmp_path):
    from monai.transforms import Compose, LoadImaged

    arr, affine = _real_slice()
    nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / "t1c_077.nii.gz"))
    load = LoadImaged("image", image_only=True, ensure_channel_first=True)
    loaded = load({"image": str(tmp_path / "t1c_077.nii.gz")})
    out = CheckImageContentd("image")(loaded)
    assert out["image"] is loaded["image"]  # the same object: no copy, no conversion, meta data kept
    pipeline = Compose([load, CheckImageContentd("image")])
    again = pipeline({"image": str(tmp_path / "t1c_077.nii.gz")})["image"]
    np.testing.assert_array_equal(np.asarray(again[0]), arr)
    assert again.meta["filename_or_obj"].endswith("t1c_077.nii.gz")
    assert CheckImageContent()(loaded["image"]) is loaded["image"]


@pytest.fixture(scope="module")
def slice_folder(tmp_path_factory) -> dict[str, Path]:
    """Real T1c slices as a user's input folder: two good ones, one with 12 NaN voxels, one constant (zeros)."""
    folder = tmp_path_factory.mktemp("bad_inputs") / "inputs"
    folder.mkdir()
    good, affine = _real_slice(77)
    other, _ = _real_slice(90)
    nan = good.copy()
    nan[100:103, 100:104] = np.nan
    files = {"good": folder / "a_good.nii.gz", "nan": folder / "b_nan.nii.gz", "other": folder / "c_good.nii.gz"}
    files["zero"] = folder / "d_zero.nii.gz"
    for key, arr in (("good", good), ("nan", nan), ("other", other), ("zero", np.zeros_like(good))):
        nib.save(nib.Nifti1Image(arr, affine), str(files[key]))
    return files


def test_filter_bad_images_skips_with_logged_reasons_or_lists_every_bad_file(slice_folder, caplog):
    items = [{"image": str(slice_folder[k]), "label": i} for i, k in enumerate(("good", "nan", "other", "zero"))]
    with caplog.at_level(logging.WARNING, logger="monai_synpriv.transforms.checks"):
        kept = filter_bad_images(items, "image", on_bad_input="skip", name="input")
    assert [it["label"] for it in kept] == [0, 2] and kept[0] is items[0]
    log = caplog.text
    assert f"{slice_folder['nan']} contains 12 NaN and 0 infinite voxels (of 57600)" in log
    assert f"{slice_folder['zero']} is constant: every voxel is 0.0" in log
    assert "left out 2 of 4 input(s)" in log

    with pytest.raises(ImageContentError) as err:
        filter_bad_images(items, "image", on_bad_input="error", name="input_datalist")
    message = str(err.value)
    assert message.startswith("input_datalist: 2 of 4 input(s) cannot be used")
    assert f"entry 1, key 'image': {slice_folder['nan']} contains 12 NaN" in message
    assert f"entry 3, key 'image': {slice_folder['zero']} is constant" in message
    assert "--on_bad_input skip" in message
    assert filter_bad_images(items[::2], "image") == items[::2]  # nothing bad: everything, in order
    with pytest.raises(ImageContentError, match="all 2 input"):
        filter_bad_images(items[1::2], "image", on_bad_input="skip")
    with pytest.raises(ValueError, match=r"on_bad_input must be one of \('error', 'skip'\), got 'ignore'"):
        filter_bad_images(items, "image", on_bad_input="ignore")
    with pytest.raises(ValueError, match="entry 0 has no key 'label_image'"):
        filter_bad_images(items, ["image", "label_image"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_inference_config_checks_right_after_loading(name):
    """The check follows LoadImaged directly (before grayscale, clipping, orientation or intensity scaling) on the same
    keys, and resolves to the transform."""
    from monai.bundle import ConfigParser

    bundle_name, files = CONFIGS[name]
    root = REPO / "bundles" / bundle_name
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f) for f in files])
    parser["bundle_root"] = str(root)
    transforms = parser["preprocessing"]["transforms"]
    targets = [t["_target_"] for t in transforms]
    load = targets.index("LoadImaged")
    assert targets[load + 1] == "monai_synpriv.transforms.CheckImageContentd", targets
    assert transforms[load + 1]["keys"] == transforms[load]["keys"]
    assert parser.get_parsed_content("on_bad_input") == "error"
    assert isinstance(parser.get_parsed_content("preprocessing").transforms[load + 1], CheckImageContentd)


@pytest.mark.parametrize("bundle_name", SCREENED)
def test_every_bundle_screens_its_inputs_and_documents_the_option(bundle_name):
    root = REPO / "bundles" / bundle_name
    config = json.loads((root / "configs" / "inference.json").read_text())
    assert config["on_bad_input"] == "error"
    screened = [k for k, v in config.items() if isinstance(v, str) and "filter_bad_images(" in v]
    assert screened == ["items"] and "on_bad_input=@on_bad_input" in config["items"]
    assert "`on_bad_input`" in (root / "docs" / "README.md").read_text()


def _translate(folder: Path, out: Path, ckpt_dir: Path, *extra: str, check: bool = True):
    return bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        "--bundle_root",
        str(BUNDLE),
        *TINY,
        "--ckpt_dir",
        str(ckpt_dir),
        "--output_dir",
        expr(out),
        "--input_datalist",
        str(folder),
        "--input_key",
        "image",
        *extra,
        check=check,
    )


def test_translator_inference_refuses_or_skips_bad_inputs(slice_folder, tmp_path):
    """The hand-found bug: a NaN input volume gave a NaN output without a word. Now the default refuses the run
    naming the file before writing anything; ``--on_bad_input skip`` translates only the good images and logs why."""
    from monai_synpriv.networks import CycleGANResNetGenerator

    torch.manual_seed(0)  # an untrained generator of the bundle's TINY architecture: the checks do not need a good one
    (tmp_path / "models").mkdir()
    net = CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1, upsample="resize")
    torch.save(net.state_dict(), tmp_path / "models" / "model.pt")
    folder = slice_folder["good"].parent

    proc = _translate(folder, tmp_path / "refused", tmp_path / "models", check=False)
    assert proc.returncode != 0
    assert f"{slice_folder['nan']} contains 12 NaN and 0 infinite voxels" in proc.stderr, proc.stderr[-3000:]
    assert f"{slice_folder['zero']} is constant: every voxel is 0.0" in proc.stderr
    assert "--on_bad_input skip" in proc.stderr
    written = [p for p in (tmp_path / "refused").rglob("*") if p.is_file()]
    assert not written, f"the refused run wrote {written}"

    proc = _translate(folder, tmp_path / "skipped", tmp_path / "models", "--on_bad_input", "skip")
    log = proc.stdout + proc.stderr
    assert f"skipping input entry 1, key 'image': {slice_folder['nan']} contains 12 NaN" in log
    assert f"skipping input entry 3, key 'image': {slice_folder['zero']} is constant" in log
    synthetic = tmp_path / "skipped" / "synthetic"
    paired = json.loads((synthetic / "paired_datalist.json").read_text())
    assert [Path(e["image"]).name for e in paired["training"]] == ["a_good.nii.gz", "c_good.nii.gz"]
    assert paired["missing"] == 0
    outputs = sorted(p.name for p in synthetic.rglob("*.nii.gz"))
    assert outputs == ["a_good.nii.gz", "c_good.nii.gz"], outputs  # nothing for the bad inputs
    for e in paired["training"]:
        data = nib.load(e["privileged"]).get_fdata()
        assert data.shape == (240, 240) and np.isfinite(data).all() and data.std() > 0


def _embed(folder: Path, out: Path, ckpt: Path, *extra: str, check: bool = True):
    return bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        "--bundle_root",
        str(SSL),
        *SSL_TINY,
        "--ckpt_path",
        str(ckpt),
        "--input",
        str(folder),
        "--output_dir",
        expr(out),
        *extra,
        cwd=SSL,
        check=check,
    )


def test_ssl_embedding_refuses_or_skips_bad_inputs(slice_folder, tmp_path):
    """The encoder-bundle inference: refused naming the files; skipped, the table and the embeddings hold the good
    images only, each row the embedding of its own image."""
    from monai_synpriv.assessment import EncoderBundle
    from monai_synpriv.networks import make_resnet_encoder

    torch.manual_seed(0)
    ckpt = tmp_path / "encoder.pt"
    torch.save(make_resnet_encoder(2, 1, 10).state_dict(), ckpt)
    folder = slice_folder["good"].parent

    proc = _embed(folder, tmp_path / "refused", ckpt, check=False)
    assert proc.returncode != 0
    assert f"{slice_folder['nan']} contains 12 NaN and 0 infinite voxels" in proc.stderr, proc.stderr[-3000:]
    assert f"{slice_folder['zero']} is constant" in proc.stderr
    assert not (tmp_path / "refused" / "embeddings.npy").exists()

    proc = _embed(folder, tmp_path / "skipped", ckpt, "--on_bad_input", "skip")
    log = proc.stdout + proc.stderr
    assert f"{slice_folder['nan']} contains 12 NaN" in log and f"{slice_folder['zero']} is constant" in log
    with open(tmp_path / "skipped" / "embeddings.csv") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["image"]).name for r in rows] == ["a_good.nii.gz", "c_good.nii.gz"]
    emb = np.load(tmp_path / "skipped" / "embeddings.npy")
    encoder = EncoderBundle(SSL, overrides={"depth": 10, "image_size": [32, 32], "ckpt_path": str(ckpt)})
    expected = encoder.embed([slice_folder["good"], slice_folder["other"]])
    assert emb.shape == (2, 512) and np.isfinite(emb).all()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-5)
