"""The generator's judge (issue 20): a modality/region classifier trained on real MedPix images only, and the
agreement of its predictions with the caption's own attributes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, require

MEDPIX = DATA / "medpix2_subset"


@pytest.fixture(scope="module")
def medpix():
    """48 real training and 16 real test items of the MedPix subset (evenly spaced), the bundle's image loading at
    64 px, and the number of classes per attribute."""
    from monai.transforms import Compose, EnsureTyped, LoadImaged, ResizeWithPadOrCropd, Resized, ScaleIntensityd

    from monai_synpriv.data import prepare_medpix_datalist
    from monai_synpriv.transforms import AsGrayscaled

    full = prepare_medpix_datalist(require(MEDPIX))
    pick = {s: [full[s][int(i * len(full[s]) / n)] for i in range(n)] for s, n in (("training", 48), ("test", 16))}
    load = Compose([
        LoadImaged("image", reader="PILReader", image_only=True, ensure_channel_first=True),
        AsGrayscaled("image"),
        EnsureTyped("image", dtype=torch.float32, track_meta=False),
        Resized("image", spatial_size=64, size_mode="longest", mode="area"),
        ResizeWithPadOrCropd("image", spatial_size=(64, 64)),
        ScaleIntensityd("image", minv=0.0, maxv=1.0),
    ])  # fmt: skip
    classes = {k: len(full["label_names"][k]) for k in ("modality", "region")}
    return pick, load, classes


def test_judge_training_on_real_images_lowers_its_loss(medpix):
    from monai_synpriv.vlp import train_judge

    items, load, classes = medpix
    judge, losses = train_judge(items["training"], load, classes, epochs=4, batch_size=16, lr=3e-3, seed=0)
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses
    assert not judge.training and set(judge.heads) == {"modality", "region"}
    assert judge.heads["region"].out_features == classes["region"] >= 2


def test_judge_agreement_counts_matches_with_the_captions_labels(medpix):
    """A judge whose heads always answer class 1: its agreement is exactly the share of items labelled 1, on the real
    images and on "synthetic" ones, whose labels are taken from the real item of the same caption."""
    from monai_synpriv.vlp import AttributeJudge, judge_agreement, judge_report

    items, load, classes = medpix
    judge = AttributeJudge(classes)
    with torch.no_grad():
        for head in judge.heads.values():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[1] = 1.0
    test = items["test"]
    expected = {k: float(np.mean([it[k] == 1 for it in test])) for k in classes}
    assert judge_agreement(judge, test, load) == pytest.approx(expected)
    # synthetic images of the test captions (here: the training images, with wrong labels of their own)
    synthetic = [{"image": it["image"], "text": t["text"], "modality": 99, "region": 99}
                 for it, t in zip(items["training"][:16], test)]  # fmt: skip
    report = judge_report(judge, test, synthetic, load)
    for k in classes:
        assert report[f"judge_real_{k}_accuracy"] == pytest.approx(expected[k])
        assert report[f"judge_synthetic_{k}_agreement"] == pytest.approx(expected[k])  # labels from the captions
        counts = np.bincount([it[k] for it in test])
        assert report[f"judge_chance_{k}"] == pytest.approx(counts.max() / counts.sum())
    with pytest.raises(ValueError, match="pair them 1:1"):
        judge_report(judge, test, synthetic[:3], load)
    with pytest.raises(ValueError, match="no integer 'region' label"):
        judge_agreement(judge, [{"image": test[0]["image"], "modality": 0}], load)


def test_judge_cli_scores_synthetic_images_and_reuses_its_weights(tmp_path):
    """The command line on the real MedPix subset: real test images passed off as the "synthetic" images of their own
    captions must agree with the captions exactly as often as the judge is right on the real images; the saved judge
    gives the same numbers without training; bad requests fail before any training."""
    import json

    from monai_synpriv.data import prepare_medpix_datalist
    from monai_synpriv.utils.io import sha256_file
    from monai_synpriv.vlp.judge import main as judge_main

    test = prepare_medpix_datalist(require(MEDPIX))["test"]
    syn = tmp_path / "synthetic_datalist.json"
    syn.write_text(json.dumps({"test": [{"image": it["image"], "text": it["text"], "source_image": it["image"]}
                                        for it in test]}))  # fmt: skip
    common = ["--data_root", str(DATA), "--synthetic_datalist", str(syn), "--image_size", "32"]
    out = tmp_path / "judge"
    assert judge_main([*common, "--epochs", "1", "--output", str(out)]) == 0
    first = json.loads((out / "judge_metrics.json").read_text())
    m = first["metrics"]
    for k in ("modality", "region"):
        assert m[f"judge_synthetic_{k}_agreement"] == m[f"judge_real_{k}_accuracy"]
        assert 0.0 < m[f"judge_chance_{k}"] < 1.0
    assert first["synthetic_sha256"] == sha256_file(syn) and first["n_test"] == len(test)
    assert len(first["train_loss_per_epoch"]) == 1 and (out / "judge.pt").is_file()
    again = tmp_path / "again"
    assert judge_main([*common, "--judge_ckpt", str(out / "judge.pt"), "--output", str(again)]) == 0
    second = json.loads((again / "judge_metrics.json").read_text())
    assert second["metrics"] == pytest.approx(m) and second["train_loss_per_epoch"] == []
    assert not (again / "judge.pt").exists()  # nothing trained, nothing saved
    with pytest.raises(ValueError, match="must not include the judged section"):
        judge_main([*common, "--section", "training", "--output", str(tmp_path / "x")])
    with pytest.raises(FileNotFoundError, match="judge_ckpt"):
        judge_main([*common, "--judge_ckpt", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "y")])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
