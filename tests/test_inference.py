import json

import pytest
import torch

from monai_synpriv.inference import check_provenance, pending_items, plan_outputs, write_paired_datalist


def test_plan_outputs_mirrors_folders_and_skips_done(tmp_path):
    items = [{"image": str(tmp_path / "in" / s / "scan.nii.gz"), "label": i} for i, s in enumerate(("p1", "p2"))]
    items.append({"image": str(tmp_path / "in" / "p3" / "photo.jpg"), "label": 2})
    planned = plan_outputs(items, tmp_path / "out", postfix="_syn")
    assert [p["privileged"] for p in planned] == [
        str(tmp_path / "out" / "p1" / "scan_syn.nii.gz"),
        str(tmp_path / "out" / "p2" / "scan_syn.nii.gz"),
        str(tmp_path / "out" / "p3" / "photo_syn.png"),
    ]
    assert [p["label"] for p in planned] == [0, 1, 2]
    (tmp_path / "out" / "p1").mkdir(parents=True)
    (tmp_path / "out" / "p1" / "scan_syn.nii.gz").write_bytes(b"x")
    assert [p["label"] for p in pending_items(planned)] == [1, 2]
    path = write_paired_datalist(planned, tmp_path / "paired.json", translator={"mlflow_run_id": "r1"})
    data = json.loads(open(path).read())
    assert len(data["training"]) == 1 and data["missing"] == 2 and data["translator"]["mlflow_run_id"] == "r1"
    with pytest.raises(ValueError, match="empty"):
        plan_outputs([], tmp_path)
    with pytest.raises(ValueError, match="would both be written"):
        plan_outputs([{"image": "/a/x.nii.gz"}, {"image": "/a/x.nii"}], tmp_path)


def test_provenance_guards_against_a_retrained_translator(tmp_path):
    ckpt1, ckpt2 = tmp_path / "m1.pt", tmp_path / "m2.pt"
    torch.save({"w": torch.zeros(1)}, ckpt1)
    torch.save({"w": torch.ones(1)}, ckpt2)
    out = tmp_path / "syn"
    items = [{"image": "x", "privileged": str(out / "x.nii.gz")}]
    check_provenance(out, ckpt1, items)
    (out / "x.nii.gz").write_bytes(b"old")
    check_provenance(out, ckpt1, items)  # same checkpoint: fine, output kept
    assert (out / "x.nii.gz").exists()
    with pytest.raises(RuntimeError, match="another translator checkpoint"):
        check_provenance(out, ckpt2, items)
    check_provenance(out, ckpt2, items, overwrite=True)
    assert not (out / "x.nii.gz").exists(), "stale output must be removed so that it is translated again"
