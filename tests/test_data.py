import json
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from monai_synpriv.data import (
    InputDataError,
    UnpairedDataset,
    check_translation_inputs,
    list_subjects,
    load_image_list,
    multicontrast_volume_datalist,
    pair_datalists,
)


def _nifti(path, arr, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(arr, dtype=np.float32), np.eye(4) if affine is None else affine), str(path))
    return str(path)


def test_load_image_list_from_folder_json_and_errors(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    _nifti(tmp_path / "a" / "x1.nii.gz", np.random.rand(8, 8))
    _nifti(tmp_path / "a" / "sub" / "x2.nii.gz", np.random.rand(8, 8))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    items = load_image_list(tmp_path / "a", key="A")
    assert [i["A"] for i in items] == sorted(
        [str(tmp_path / "a" / "x1.nii.gz"), str(tmp_path / "a" / "sub" / "x2.nii.gz")]
    )
    dl = tmp_path / "list.json"
    dl.write_text(json.dumps({"training": [{"image": "a/x1.nii.gz", "label": 3}]}))
    items = load_image_list(dl, key="A")
    assert items == [{"A": str(tmp_path / "a" / "x1.nii.gz"), "label": 3}]
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        load_image_list(tmp_path / "does_not_exist")
    with pytest.raises(KeyError, match="validation"):
        load_image_list(dl, section="validation")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        load_image_list(tmp_path / "empty")
    assert len(load_image_list([f"p{i}.png" for i in range(10)], max_items=3)) == 3


def test_check_translation_inputs_reports_the_file_at_fault(tmp_path):
    good = [{"A": _nifti(tmp_path / f"a{i}.nii.gz", np.random.rand(8, 8))} for i in range(2)]
    good_b = [{"B": _nifti(tmp_path / f"b{i}.nii.gz", np.random.rand(8, 8))} for i in range(2)]
    assert check_translation_inputs(good, good_b, spatial_dims=2, channels_a=1, channels_b=1) == (good, good_b)

    with pytest.raises(InputDataError, match="empty"):
        check_translation_inputs([], good_b)
    with pytest.raises(InputDataError, match=r"file not found: .*missing.nii.gz"):
        check_translation_inputs(good + [{"A": str(tmp_path / "missing.nii.gz")}], good_b)
    nan = np.random.rand(8, 8)
    nan[0, 0] = np.nan
    with pytest.raises(InputDataError, match=r"nan.nii.gz contains NaN"):
        check_translation_inputs([{"A": _nifti(tmp_path / "nan.nii.gz", nan)}], good_b)
    with pytest.raises(InputDataError, match=r"flat.nii.gz is constant"):
        check_translation_inputs(good, [{"B": _nifti(tmp_path / "flat.nii.gz", np.full((8, 8), 7.0))}])
    rgb = tmp_path / "rgb.png"
    Image.fromarray((np.random.rand(8, 8, 3) * 255).astype(np.uint8)).save(rgb)
    with pytest.raises(InputDataError, match=r"rgb.png has 3 channel"):
        check_translation_inputs([{"A": str(rgb)}], good_b, channels_a=1)
    vol = [{"B": _nifti(tmp_path / "vol.nii.gz", np.random.rand(8, 8, 8))}]
    with pytest.raises(InputDataError, match=r"2D but domain B .* 3D"):
        check_translation_inputs(good, vol)


def test_multicontrast_slices_split_by_subject(slice_datalist, multicontrast_dir):
    data = json.loads(slice_datalist.read_text())
    params = data["params"]
    assert len(params["heldout_subjects"]) == 1
    train_subjects = {i["subject"] for i in data["training_a"]} | {i["subject"] for i in data["training_b"]}
    val_subjects = {i["subject"] for i in data["validation"]}
    assert train_subjects == set(params["train_subjects"]) and len(train_subjects) == 3
    assert not train_subjects & val_subjects, "a held-out subject leaked into training"
    assert len(data["training_a"]) > 200 and len(data["validation"]) > 50
    a = load_image_list(slice_datalist, key="A", section="training_a", source_key="A")
    img = nib.load(a[0]["A"])
    arr = img.get_fdata()
    assert arr.ndim == 2 and arr.min() >= 0 and arr.max() <= 1 and (arr > 0).mean() >= 0.1
    # every subject comes out in one orientation (BraTS-MET is stored RAS, the others LPS)
    codes = {
        nib.aff2axcodes(
            nib.load(load_image_list(slice_datalist, key="A", section="training_a", source_key="A")[i]["A"]).affine
        )
        for i in (0, -1)
    }
    assert codes == {("R", "A", "S")}


def test_prepared_slices_reuse_cache(slice_datalist, multicontrast_dir):
    from monai_synpriv.data import prepare_multicontrast_slices

    before = slice_datalist.stat().st_mtime_ns
    assert prepare_multicontrast_slices(multicontrast_dir, slice_datalist.parent) == str(slice_datalist)
    assert slice_datalist.stat().st_mtime_ns == before


def test_volume_datalist_and_pairing(multicontrast_dir):
    subjects = list_subjects(multicontrast_dir)
    assert len(subjects) == 4
    dl = multicontrast_volume_datalist(multicontrast_dir, heldout=[subjects[0]])
    assert [i["subject"] for i in dl["validation"]] == [subjects[0]]
    assert subjects[0] not in {i["subject"] for i in dl["training_a"]}
    with pytest.raises(ValueError, match="not in the dataset"):
        multicontrast_volume_datalist(multicontrast_dir, heldout=["nobody"])
    pairs = pair_datalists(dl["training_a"], dl["training_b"], on=["subject"])
    assert all(p["A"].endswith("t1c.nii.gz") and p["B"].endswith("t2f.nii.gz") for p in pairs)


def test_unpaired_dataset_draws_b_at_random():
    a = [{"A": i} for i in range(5)]
    b = [{"B": 100 + i} for i in range(3)]
    ds = UnpairedDataset(a, b, seed=1)
    assert len(ds) == 5
    draws = [ds[0]["B"] for _ in range(30)]
    assert len(set(draws)) > 1, "B must not be tied to A's index"
    assert ds[4]["A"] == 4
    with pytest.raises(ValueError, match="empty"):
        UnpairedDataset([], b)


def test_dicom_and_mha_files_are_accepted(tmp_path):
    """Users' own data: DICOM files and ITK MetaImage, read by MONAI's readers, pass the input checks."""
    import shutil

    from conftest import DATA, require

    from monai_synpriv.data import check_images

    folder = tmp_path / "dicom"
    folder.mkdir()
    for name in ("pydicom_CT_small.dcm", "pydicom_MR_small.dcm"):
        shutil.copy(require(DATA / "misc_3d" / name), folder / name)
    items = load_image_list(folder, key="A")
    assert [p["A"].rsplit("/", 1)[-1] for p in items] == ["pydicom_CT_small.dcm", "pydicom_MR_small.dcm"]
    summary = check_images(items, "A", channels=1, progress=False)
    assert summary["count"] == 2 and summary["channels"] == 1 and summary["spatial_dims"] in (2, 3)
    mha = require(DATA / "misc_3d" / "monai_CT_2D_head_fixed.mha")
    summary = check_images([{"A": str(mha)}], "A", spatial_dims=2, progress=False)
    assert summary["spatial_dims"] == 2


def test_pair_datalists_refuses_ambiguous_pairs():
    a = [{"A": "a1", "subject": "s1", "slice": 1}, {"A": "a2", "subject": "s1", "slice": 2}]
    b = [{"B": "b2", "subject": "s1", "slice": 2}, {"B": "b1", "subject": "s1", "slice": 1}]
    assert [(p["A"], p["B"]) for p in pair_datalists(a, b)] == [("a1", "b1"), ("a2", "b2")]
    with pytest.raises(ValueError, match=r"A entry 0 .* lacks the join field\(s\) \['subject', 'slice'\]"):
        pair_datalists([{"A": "a1"}], b)
    with pytest.raises(ValueError, match="two B entries share"):
        pair_datalists(a, b + [{"B": "b1bis", "subject": "s1", "slice": 1}])


def test_unpaired_dataset_seeds_each_domains_augmentation():
    from monai.data import Dataset
    from monai.transforms import RandGaussianNoised

    def make(seed):
        a = Dataset([{"A": np.zeros((1, 4, 4), np.float32)}], RandGaussianNoised("A", prob=1.0))
        b = Dataset([{"B": np.zeros((1, 4, 4), np.float32)}], RandGaussianNoised("B", prob=1.0))
        return UnpairedDataset(a, b, seed=seed)

    x, y, z = make(1)[0], make(1)[0], make(2)[0]
    np.testing.assert_array_equal(np.asarray(x["A"]), np.asarray(y["A"]))
    assert not np.array_equal(np.asarray(x["A"]), np.asarray(z["A"])), "worker seeds must reach the transforms"
    assert not np.array_equal(np.asarray(x["A"]), np.asarray(x["B"])), "the two domains need different streams"


def test_brain_tumor_datalist_drops_leaked_test_files(tmp_path_factory):
    import csv

    from conftest import DATA, require

    from monai_synpriv.data import BRAIN_TUMOR_CLASSES, load_datalist_section, prepare_brain_tumor_mri

    root = require(DATA / "brain_tumor_mri_4class")
    cache = tmp_path_factory.mktemp("brain_tumor")
    path = prepare_brain_tumor_mri(root, cache)
    data = json.loads(open(path).read())
    rows = list(csv.DictReader(open(root / "index.csv")))
    leaked = {r["path"] for r in rows if r["split"] == "Testing" and r["identical_in_other_split"] == "1"}
    assert len(leaked) == 216 and set(data["dropped"]["identical_to_training"]) == leaked
    test = load_datalist_section(path, "test")
    assert len(test) == 1311 - 216
    train_md5 = {r["md5"] for r in rows if r["split"] == "Training"}
    test_md5 = {r["md5"] for r in rows if r["split"] == "Testing" and r["path"] not in leaked}
    assert not train_md5 & test_md5, "a test image is byte-identical to a training image"
    assert len(data["training"]) + len(data["validation"]) == 5708
    assert data["classes"] == list(BRAIN_TUMOR_CLASSES)
    assert {e["label"] for e in test} == {0, 1, 2, 3}
    assert all(os.path.isfile(e["image"]) for e in test[:20])
    # validation keeps the class balance of training (stratified)
    frac = [sum(e["label"] == c for e in data["validation"]) / len(data["validation"]) for c in range(4)]
    frac_tr = [sum(e["label"] == c for e in data["training"]) / len(data["training"]) for c in range(4)]
    assert np.allclose(frac, frac_tr, atol=0.01)
    mtime = os.stat(path).st_mtime_ns
    assert prepare_brain_tumor_mri(root, cache) == path and os.stat(path).st_mtime_ns == mtime


def test_prepare_medmnist_writes_official_splits(tmp_path):
    from conftest import DATA, require

    from monai_synpriv.data import prepare_medmnist

    npz = require(DATA / "medmnist" / "breastmnist.npz")
    path = prepare_medmnist(npz, tmp_path)
    data = json.loads(open(path).read())
    assert [len(data[s]) for s in ("training", "validation", "test")] == [546, 78, 156]
    ref = np.load(npz)
    first = load_image_list(path, key="image", section="test")[0]
    img = nib.load(first["image"]).get_fdata()
    np.testing.assert_allclose(img, ref["test_images"][0] / 255.0, atol=1e-6)
    assert first["label"] == int(ref["test_labels"][0][0])
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        prepare_medmnist(tmp_path / "nothing.npz", tmp_path)


def test_split_subjects_holds_out_every_subject_only_for_scoring():
    from monai_synpriv.data import split_subjects

    with pytest.raises(ValueError, match="no training subject left"):
        split_subjects(["s1"], heldout=["s1"])
    with pytest.raises(ValueError, match=r"between 1 and 0 for the 1 subject\(s\) \['s1'\]"):
        split_subjects(["s1"])
    assert split_subjects(["s1"], require_train=False) == ([], ["s1"])
    assert split_subjects(["s1", "s2"], n_heldout=2, require_train=False) == ([], ["s1", "s2"])
