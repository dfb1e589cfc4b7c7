"""The main job on a hospital's own data: part of the shared brain MRI exported the way a hospital would have it
(images in an unrelated flat layout, a labels CSV with patient ids, a separate folder of unpaired T2w slices, no
authentic pairs, no aligned pairs for scoring), run through the README's main command with a user profile."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DATA, MULTICONTRAST, REPO, require

from monai_synpriv.data import load_image_list, prepare_brain_tumor_mri, prepare_multicontrast_slices
from monai_synpriv.pipeline import SynPrivPipeline, load_profile

PATIENTS_PER_CLASS = 10
IMAGES_PER_PATIENT = 2
DUPLICATES = 8  # exact copies of earlier images, filed under new patient ids (a re-export, a second referral)


def _sha(p: str | Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _export(root: Path, cache: Path) -> dict:
    """Write the hospital's export under ``root`` and return the user profile (paths relative to ``root``)."""
    official = json.loads(Path(prepare_brain_tumor_mri(DATA / "brain_tumor_mri_4class", cache / "bt")).read_text())
    scans = root / "export" / "pacs_dump"
    scans.mkdir(parents=True)
    rows, n = [], 0
    for label, name in enumerate(official["classes"]):
        members = [e for e in official["training"] if e["label"] == label][: PATIENTS_PER_CLASS * IMAGES_PER_PATIENT]
        for i, e in enumerate(members):
            n += 1
            dst = scans / f"IMG{n:05d}.jpg"
            shutil.copyfile(cache / "bt" / e["image"], dst)
            rows.append({"file": dst.name, "diagnosis": name, "patient_id": f"P{label}{i // IMAGES_PER_PATIENT:03d}"})
    for j in range(DUPLICATES):  # the same file content as an earlier image, another patient id
        src = rows[j * 9]
        n += 1
        shutil.copyfile(scans / src["file"], scans / f"IMG{n:05d}.jpg")
        rows.append({"file": f"IMG{n:05d}.jpg", "diagnosis": src["diagnosis"], "patient_id": f"R{j:03d}"})
    with open(root / "export" / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["patient_id", "diagnosis", "file"])
        w.writeheader()
        w.writerows(rows)
    slices = prepare_multicontrast_slices(MULTICONTRAST, cache / "mc", contrast_a="t1c", contrast_b="t2w")
    t2 = root / "research_t2w"
    t2.mkdir()
    for k, it in enumerate(load_image_list(slices, section="training_b", source_key="B", max_items=60)):
        shutil.copyfile(it["image"], t2 / f"t2_{k:03d}.nii.gz")
    tiny = load_profile("tiny")
    return {
        "description": "A hospital's export: flat image folder, labels CSV with patient ids, unpaired T2w folder.",
        "seeds": [0],
        "arms": ["siamese", "privileged_siamese_synthetic", "privileged_siamese_authentic"],
        "random_init_baseline": False,
        "data": {
            "downstream": {
                "folder": "export/pacs_dump",
                "labels_csv": "export/labels.csv",
                "image_key": "file",
                "label_key": "diagnosis",
                "subject_key": "patient_id",
                "val_fraction": 0.1,
                "test_fraction": 0.3,
            },
            "privileged": {"folder": "research_t2w"},
            "contrast_a": "t1c",
            "contrast_b": "t2w",
        },
        **{k: tiny[k] for k in ("translator_net", "translator_train", "synthesis", "ssl_train", "ssl_evaluate")},
    }


@pytest.fixture(scope="module")
def hospital(tmp_path_factory):
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    require(MULTICONTRAST)
    base = tmp_path_factory.mktemp("hospital")
    root = base / "data"
    profile = _export(root, base / "prep_cache")
    profile_path = base / "my_site.json"
    profile_path.write_text(json.dumps(profile, indent=1))
    out = base / "run"
    env = dict(os.environ, PROFILE=str(profile_path), OUT=str(out), DATA=str(root), PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        ["bash", "scripts/run_pipeline.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode:
        raise AssertionError(f"pipeline failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return {"root": root, "out": out, "profile": profile_path, "stdout": proc.stdout}


def test_hospital_export_runs_and_the_report_says_what_ran(hospital):
    out, stdout = hospital["out"], hospital["stdout"]
    assert "arms ['privileged_siamese_authentic'] not run" in stdout  # said once
    assert stdout.count("not run") == 1
    assert "the translator is not scored" in stdout
    state = json.loads((out / "pipeline_state.json").read_text())
    assert "translator_evaluate" not in state["stages"]
    assert not (out / "ssl" / "privileged_siamese_authentic").exists()
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["arms"] == ["siamese", "privileged_siamese_synthetic"]
    assert results["data"]["source"] == "user" and results["data"]["split_level"] == "subject"
    assert results["data"]["classes"] == ["glioma", "meningioma", "notumor", "pituitary"]  # read from the CSV
    md = (out / "report" / "results.md").read_text()
    assert "split by subject (`patient_id`)" in md
    assert "No authentic pairs in the data: arms privileged_siamese_authentic not run." in md
    assert "No paired_evaluation data" in md
    assert "privileged_siamese_authentic |" not in md  # no row for an arm that did not run
    # the synthetic T2w was made for the user's training images and the probe scored the user's test split
    paired = json.loads((out / "synthesis" / "privileged" / "paired_datalist.json").read_text())
    assert all(Path(it["image"]).parent == hospital["root"] / "export" / "pacs_dump" for it in paired["training"])
    probe = json.loads((out / "ssl" / "siamese" / "seed0" / "evaluate" / "probes" / "probe_metrics.json").read_text())
    assert int(probe["num_test"]) == results["counts"]["downstream_test"]


def test_split_is_by_patient_and_duplicates_are_removed(hospital):
    out = hospital["out"]
    down = json.loads((out / "cache" / "datalists" / "downstream.json").read_text())
    patients = {s: {e["subject"] for e in down[s]} for s in ("training", "validation", "test")}
    assert not patients["training"] & patients["test"] and not patients["training"] & patients["validation"]
    assert not patients["validation"] & patients["test"]
    train_hashes = {_sha(e["image"]) for e in down["training"]}
    later = down["validation"] + down["test"]
    assert not any(_sha(e["image"]) in train_hashes for e in later)  # no leak left
    dropped = down["dropped"]["identical_to_earlier_split"]
    n_dropped = sum(len(v) for v in dropped.values())
    # every dropped file is a copy of a file kept in an earlier split; our export made DUPLICATES copies
    kept = train_hashes | {_sha(e["image"]) for e in down["validation"]}
    assert 0 < n_dropped <= DUPLICATES
    assert all(_sha(p) in kept for v in dropped.values() for p in v)
    total = PATIENTS_PER_CLASS * IMAGES_PER_PATIENT * 4 + DUPLICATES
    assert sum(len(down[s]) for s in ("training", "validation", "test")) + n_dropped == total
    md = (out / "report" / "results.md").read_text()
    assert f"({n_dropped} in all)" in md
    for s in ("training", "test"):  # every class in training and test
        assert {e["class"] for e in down[s]} == set(down["classes"]), s


def test_replacing_an_image_under_the_same_path_invalidates_what_used_it(hospital):
    out, root = hospital["out"], hospital["root"]
    state = json.loads((out / "pipeline_state.json").read_text())
    down = out / "cache" / "datalists" / "downstream.json"
    recorded = state["stages"]["translator_train"]["inputs"]
    assert recorded == SynPrivPipeline._fingerprint([down, out / "cache" / "datalists" / "privileged.json"])
    first = json.loads(down.read_text())["training"][0]["image"]
    other = json.loads(down.read_text())["training"][1]["image"]
    shutil.copyfile(other, first)  # the same path, new content
    fp = SynPrivPipeline._fingerprint([down, out / "cache" / "datalists" / "privileged.json"])
    assert fp[str(down)] == recorded[str(down)]  # the datalist's own bytes did not change...
    assert fp != recorded  # ...but what it lists did: translator_train (and all after it) would run again


def test_user_profile_errors_name_the_key(tmp_path, hospital):
    prof = json.loads(hospital["profile"].read_text())
    for change, msg in (
        ({"downstream": {**prof["data"]["downstream"], "subject_col": "x"}}, r"subject_col.*data\.downstream"),
        ({"privileged": None}, "privileged"),
        ({"multicontrast_dir": "mri_brain_multicontrast"}, "mixes"),
    ):
        data = {**prof["data"], **change}
        if change.get("privileged", 0) is None:
            data.pop("privileged")
        with pytest.raises(ValueError, match=msg):
            load_profile({**prof, "data": data})
    missing = {**prof, "data": {**prof["data"], "privileged": {"folder": "no_such_folder"}}}
    with pytest.raises(FileNotFoundError, match=r"data\.privileged\.folder.*no_such_folder"):
        SynPrivPipeline(missing, tmp_path / "out", data_root=hospital["root"])
    assert not (tmp_path / "out").exists()
