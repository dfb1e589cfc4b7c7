"""The user's labelled images: reading (JSON, CSV, folder + labels CSV), the split by subject, leak removal and the
errors that name the file, line, key or class at fault."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_synpriv.data import datalist_content_digest, prepare_labelled_datalist, split_by_subject


def _image(path: Path, seed: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
    return str(path)


def _csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _site(tmp_path: Path, patients: int = 10, per_patient: int = 3, classes=("benign", "malignant")) -> list[dict]:
    rows, k = [], 0
    for c in classes:
        for p in range(patients):
            for _ in range(per_patient):
                k += 1
                _image(tmp_path / "img" / f"{k}.png", k)
                rows.append({"path": f"{k}.png", "dx": c, "mrn": f"{c[0]}{p}"})
    return rows


def test_split_keeps_each_patient_in_one_split_and_is_seeded(tmp_path):
    rows = _site(tmp_path)
    labels = _csv(tmp_path / "labels.csv", rows)
    kw = dict(folder=tmp_path / "img", labels_csv=labels, image_key="path", label_key="dx", subject_key="mrn")
    a = json.loads(Path(prepare_labelled_datalist(tmp_path / "a.json", **kw)).read_text())
    b = json.loads(Path(prepare_labelled_datalist(tmp_path / "b.json", **kw)).read_text())
    c = json.loads(Path(prepare_labelled_datalist(tmp_path / "c.json", seed=1, **kw)).read_text())
    assert a["training"] == b["training"] and a["test"] == b["test"]  # same seed, same split
    assert a["test"] != c["test"]
    owner = {}
    for s in ("training", "validation", "test"):
        for e in a[s]:
            assert owner.setdefault(e["subject"], s) == s, e  # a patient never spans two splits
            assert Path(e["image"]).is_absolute() and Path(e["image"]).is_file()
    assert a["classes"] == ["benign", "malignant"] and {e["label"] for e in a["test"]} == {0, 1}
    # 20 patients, stratified: 2 of 10 per class to test (0.2), 1 per class to validation (0.1)
    assert len({e["subject"] for e in a["test"]}) == 4 and len({e["subject"] for e in a["validation"]}) == 2
    assert a["params"]["split_level"] == "subject"


def test_identical_files_across_splits_are_dropped_and_counted(tmp_path):
    imgs = [_image(tmp_path / f"{i}.png", i) for i in range(6)]
    copy = tmp_path / "copy_of_0.png"
    copy.write_bytes(Path(imgs[0]).read_bytes())  # the same scan exported twice under another name
    datalist = {
        "training": [{"image": f"{i}.png", "label": i % 2} for i in range(4)],
        "test": [{"image": "4.png", "label": 0}, {"image": "5.png", "label": 1}, {"image": copy.name, "label": 0}],
    }
    (tmp_path / "dl.json").write_text(json.dumps(datalist))
    out = json.loads(Path(prepare_labelled_datalist(tmp_path / "o.json", datalist=tmp_path / "dl.json",
                                                    val_fraction=0.0)).read_text())
    assert out["dropped"]["identical_to_earlier_split"] == {"test": [str(copy)]}
    assert [e["image"] for e in out["test"]] == imgs[4:]
    assert len(out["training"]) == 4  # the original stays where it was


def test_errors_name_the_file_line_key_or_class(tmp_path):
    rows = _site(tmp_path, patients=4, per_patient=1)
    folder = tmp_path / "img"
    bad = _csv(tmp_path / "bad.csv", rows[:3] + [{"path": "missing.png", "dx": "benign", "mrn": "z"}] + rows[3:])
    with pytest.raises(FileNotFoundError, match=r"bad\.csv line 5: image .*missing\.png not found"):
        prepare_labelled_datalist(tmp_path / "o.json", folder=folder, labels_csv=bad, image_key="path", label_key="dx")
    good = _csv(tmp_path / "good.csv", rows)
    with pytest.raises(KeyError, match=r"no column 'image'"):
        prepare_labelled_datalist(tmp_path / "o.json", folder=folder, labels_csv=good)
    with pytest.raises(ValueError, match=r"good\.csv line 2: class 'benign' is not one of class_names"):
        prepare_labelled_datalist(
            tmp_path / "o.json", folder=folder, labels_csv=good, image_key="path", label_key="dx",
            class_names=["normal", "malignant"],
        )
    with pytest.raises(KeyError, match=r"no subject id 'site_id'"):
        prepare_labelled_datalist(
            tmp_path / "o.json", folder=folder, labels_csv=good, image_key="path", label_key="dx", subject_key="site_id"
        )
    # a class with one patient cannot be in both training and test: refused, with the counts
    one = _csv(tmp_path / "one.csv", rows + [{"path": rows[0]["path"], "dx": "rare", "mrn": "r0"}])
    with pytest.raises(ValueError, match=r"'(training|test)' split would have no image of class\(es\) \['rare'\]"):
        prepare_labelled_datalist(
            tmp_path / "o.json", folder=folder, labels_csv=one, image_key="path", label_key="dx", subject_key="mrn"
        )
    assert not (tmp_path / "o.json").exists()  # nothing written on error


def test_given_sections_are_kept_and_a_patient_in_both_is_refused(tmp_path):
    a, b, c = (_image(tmp_path / f"{i}.png", i) for i in range(3))
    d = _image(tmp_path / "3.png", 3)
    datalist = {
        "training": [{"image": "0.png", "label": 0, "pid": "p1"}, {"image": "1.png", "label": 1, "pid": "p2"}],
        "test": [{"image": "2.png", "label": 0, "pid": "p3"}, {"image": "3.png", "label": 1, "pid": "p4"}],
    }
    (tmp_path / "dl.json").write_text(json.dumps(datalist))
    out = json.loads(
        Path(
            prepare_labelled_datalist(tmp_path / "o.json", datalist=tmp_path / "dl.json", subject_key="pid",
                                      class_names=["no", "yes"], val_fraction=0.0)
        ).read_text()
    )
    assert [e["image"] for e in out["test"]] == [c, d] and [e["image"] for e in out["training"]] == [a, b]
    assert out["classes"] == ["no", "yes"] and out["params"]["split"] == "given"
    datalist["test"][0]["pid"] = "p1"
    (tmp_path / "dl.json").write_text(json.dumps(datalist))
    with pytest.raises(ValueError, match=r"\['p1'\] appear in both 'training' and 'test'"):
        prepare_labelled_datalist(tmp_path / "o2.json", datalist=tmp_path / "dl.json", subject_key="pid",
                                  val_fraction=0.0)


def test_split_by_subject_without_subject_key_splits_images():
    entries = [{"label": i % 2, "_origin": str(i)} for i in range(20)]
    out = split_by_subject(entries, None, {"test": 0.3}, seed=0)
    assert len(out["test"]) == 6 and len(out["training"]) == 14
    assert len({e["subject"] for e in out["test"] + out["training"]}) == 20


def test_content_digest_sees_a_replaced_image(tmp_path):
    p = _image(tmp_path / "a.png", 0)
    _image(tmp_path / "b.png", 1)
    (tmp_path / "dl.json").write_text(json.dumps({"training": [{"image": "a.png"}, {"image": "b.png"}]}))
    before = datalist_content_digest(tmp_path / "dl.json")
    assert datalist_content_digest(tmp_path / "dl.json") == before
    _image(Path(p), 7)  # same path, new pixels
    assert datalist_content_digest(tmp_path / "dl.json") != before


def test_every_section_has_the_same_keys(tmp_path):
    """A given test section beside a seeded validation split, with and without subject ids: every entry of every
    section has the same keys (a probe batches images of two sections; MONAI's collate fails on a missing key)."""
    for i in range(8):
        _image(tmp_path / f"{i}.png", i)
    datalist = {
        "training": [{"image": f"{i}.png", "label": i % 2, "pid": f"p{i}"} for i in range(6)],
        "test": [{"image": f"{i}.png", "label": i % 2, "pid": f"p{i}"} for i in (6, 7)],
    }
    (tmp_path / "dl.json").write_text(json.dumps(datalist))
    for subject_key, expected in ((None, {"image", "label", "class"}), ("pid", {"image", "label", "class", "subject"})):
        out = json.loads(
            Path(
                prepare_labelled_datalist(tmp_path / f"o_{subject_key}.json", datalist=tmp_path / "dl.json",
                                          subject_key=subject_key, val_fraction=0.3)
            ).read_text()
        )
        assert set(out) >= {"training", "validation", "test"}
        keys = {tuple(sorted(e)) for s in ("training", "validation", "test") for e in out[s]}
        assert keys == {tuple(sorted(expected))}, (subject_key, keys)
