"""DICOM series as volumes (monai_synpriv.data.dicom), on real data.

The real multi-slice series: a crop of two real BraTS MR volumes of ../shared/data/mri_brain_multicontrast (T1c and
FLAIR, voxel-aligned) written out as DICOM series with pydicom (the header of the real pydicom_MR_small.dcm as
template, extensionless shuffled file names, two series in one folder, an axial and a sagittal stack, uncompressed,
RLE Lossless and JPEG 2000 Lossless), read back and compared voxel for voxel and affine for affine with the NIfTI;
and pydicom's bundled real CT series (dicomdirtests: 16x16 downsampled clinical CT with HU rescaling).
"""

from __future__ import annotations

import copy
import io
import json
import os
import random
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from conftest import DATA, REPO, require
from monai.transforms import LoadImage, LoadImaged, Orientation
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from monai_synpriv.data.dicom import (
    DicomSeriesError,
    DicomSeriesReader,
    dicom_series_datalist,
    find_dicom_series,
    is_dicom_file,
    load_dicom_series,
)

warnings.filterwarnings("ignore", message="builtin type .* has no __module__", category=DeprecationWarning)

MR_TEMPLATE = DATA / "misc_3d" / "pydicom_MR_small.dcm"
SUBJECT = DATA / "mri_brain_multicontrast" / "BraTS-GLI-00001-000"
RAS_SUBJECT = DATA / "mri_brain_multicontrast" / "BraTS-MET-00110-000"  # stored RAS: another orientation
READER = "monai_synpriv.data.dicom.DicomSeriesReader"  # the LoadImaged reader setting of the 3D bundles
BACKENDS = ("itk", "pydicom")
PYDICOM_TESTS = Path(pydicom.__file__).parent / "data" / "test_files"
CT5N = PYDICOM_TESTS / "dicomdirtests" / "98892001" / "CT5N"  # 5 slices of a real CT, RescaleIntercept -1024


def crop(path: Path, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """A box of a real NIfTI volume and the affine of that box (RAS)."""
    img = nib.load(str(path))
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    return np.asarray(img.dataobj[box]), img.affine @ shift


def write_series(
    folder: Path,
    volume: np.ndarray,
    affine: np.ndarray,
    description: str,
    prefix: str = "",
    seed: int = 0,
    syntaxes: tuple = (ExplicitVRLittleEndian,),
) -> tuple[str, list[Path]]:
    """Write ``volume`` (column, row, slice), whose voxels ``affine`` maps to RAS, as one DICOM MR series: one
    extensionless file per slice, written in shuffled order under shuffled names, slice ``k`` in transfer syntax
    ``syntaxes[k % len(syntaxes)]``. Returns the SeriesInstanceUID and the files in slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    dc, dr = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    template = pydicom.dcmread(MR_TEMPLATE)
    uid, study = generate_uid(), generate_uid()
    unsigned = any(s != ExplicitVRLittleEndian for s in syntaxes)  # JPEG 2000 via Pillow: unsigned samples
    n = volume.shape[2]
    names = [f"{prefix}{x:08X}" for x in random.Random(seed).sample(range(16**7), n)]  # no extension
    files = {}
    for k in random.Random(seed + 1).sample(range(n), n):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID, ds.StudyInstanceUID = uid, study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesDescription, ds.PatientID, ds.InstanceNumber = description, "synpriv-test", k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in lps[:3, :3] @ [0, 0, k] + lps[:3, 3]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*(lps[:3, 0] / dc), *(lps[:3, 1] / dr))]
        ds.PixelSpacing = [f"{dr:.6f}", f"{dc:.6f}"]
        ds.SliceThickness = f"{np.linalg.norm(lps[:3, 2]):.6f}"
        pixels = np.ascontiguousarray(volume[:, :, k].T)  # rows x columns
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelRepresentation = 0 if unsigned else 1
        pixels = pixels.astype(np.uint16 if unsigned else np.int16)
        for tag in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            del ds[tag]
        syntax = syntaxes[k % len(syntaxes)]
        if syntax == RLELossless:
            ds.compress(RLELossless, pixels)
        elif syntax == JPEG2000Lossless:
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
            ds.PixelData = encapsulate([buf.getvalue()])
            ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
            ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        else:
            ds.PixelData = pixels.tobytes()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        files[k] = folder / names[k]
        ds.save_as(files[k], enforce_file_format=True)
    return uid, [files[k] for k in range(n)]


@pytest.fixture(scope="module")
def mr() -> dict:
    """Real T1c and FLAIR crops (voxel-aligned, 160 x 180 x 24 at 1 mm) and their affine."""
    require(SUBJECT)
    require(MR_TEMPLATE)
    box = (slice(40, 200), slice(30, 210), slice(60, 84))
    t1c, affine = crop(SUBJECT / "t1c.nii.gz", box)
    t2f, _ = crop(SUBJECT / "t2f.nii.gz", box)
    return {"t1c": t1c, "t2f": t2f, "affine": affine, "box": box}


@pytest.fixture(scope="module")
def tree(tmp_path_factory, mr) -> dict:
    """``one/``: the T1c series alone; ``two/``: T1c and FLAIR series in one folder, with a text file and a DICOMDIR."""
    root = tmp_path_factory.mktemp("dicom")
    uid_one, files_one = write_series(root / "one", mr["t1c"], mr["affine"], "t1c")
    uid_a, files_a = write_series(root / "two", mr["t1c"], mr["affine"], "t1c", prefix="A", seed=3)
    uid_b, files_b = write_series(root / "two", mr["t2f"], mr["affine"], "t2_flair", prefix="B", seed=4)
    (root / "two" / "README").write_text("not an image\n")
    shutil.copy(PYDICOM_TESTS / "dicomdirtests" / "DICOMDIR", root / "two" / "DICOMDIR")  # DICOM, not an image
    return {
        "root": root,
        "one": root / "one",
        "two": root / "two",
        "files_one": files_one,
        "uid_one": uid_one,
        "uid_a": uid_a,
        "files_a": files_a,
        "uid_b": uid_b,
        "files_b": files_b,
    }


def small_series(folder: Path, mr: dict, n: int = 8) -> list[Path]:
    """A small real series (48 x 40 x n of the T1c) for the error cases."""
    return write_series(folder, mr["t1c"][60:108, 70:110, :n], mr["affine"], "small")[1]


def test_is_dicom_file_reads_the_header_not_the_name(tmp_path, tree):
    assert is_dicom_file(tree["files_one"][0]) and tree["files_one"][0].suffix == ""
    assert is_dicom_file(require(DATA / "misc_3d" / "pydicom_CT_small.dcm"))
    assert not is_dicom_file(SUBJECT / "t1c.nii.gz")
    assert not is_dicom_file(tree["two"] / "README")
    assert not is_dicom_file(tree["one"])  # a folder
    assert not is_dicom_file(tmp_path / "missing")
    fake = tmp_path / "fake.dcm"  # the extension alone is not enough
    fake.write_bytes(b"\0" * 200)
    assert not is_dicom_file(fake)


def test_find_dicom_series_splits_by_uid_and_orders_by_position(tree):
    found = find_dicom_series(tree["root"])
    assert sorted(s.series_uid for s in found) == sorted([tree["uid_one"], tree["uid_a"], tree["uid_b"]])
    in_two = {s.series_uid: s for s in find_dicom_series(tree["two"])}
    assert set(in_two) == {tree["uid_a"], tree["uid_b"]}  # README and DICOMDIR left out
    a, b = in_two[tree["uid_a"]], in_two[tree["uid_b"]]
    assert (a.series_description, b.series_description) == ("t1c", "t2_flair")
    assert (a.modality, a.patient_id, a.num_slices, a.rows, a.columns) == ("MR", "synpriv-test", 24, 180, 160)
    assert a.folder == str(tree["two"])
    # slice order is the position order, not the (shuffled) name order
    assert list(a.files) == [str(f) for f in tree["files_a"]]
    assert list(a.files) != sorted(a.files)
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in a.files]
    assert z == sorted(z) and len(set(z)) == 24
    assert json.loads(json.dumps(a.to_dict()))["num_slices"] == 24
    assert find_dicom_series(tree["root"], recursive=False) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_axial_series_matches_the_nifti(tree, mr, backend):
    img = load_dicom_series(tree["one"], backend=backend)
    assert tuple(img.shape) == mr["t1c"].shape == (160, 180, 24)
    np.testing.assert_array_equal(img.numpy(), mr["t1c"])
    np.testing.assert_allclose(img.affine.numpy(), mr["affine"], atol=1e-4)
    assert img.meta["series_instance_uid"] == tree["uid_one"] and img.meta["num_slices"] == 24
    np.testing.assert_allclose(img.pixdim.numpy(), [1.0, 1.0, 1.0], atol=1e-5)
    # the same series from its files in any order, and from its DicomSeries
    shuffled = random.Random(0).sample([str(f) for f in tree["files_one"]], 24)
    np.testing.assert_array_equal(load_dicom_series(shuffled, backend=backend).numpy(), mr["t1c"])
    (series,) = find_dicom_series(tree["one"])
    np.testing.assert_array_equal(load_dicom_series(series, backend=backend).numpy(), mr["t1c"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sagittal_series_of_a_ras_volume_matches_the_nifti(tmp_path, backend):
    """Slices along x, rows running head to foot, from the RAS-stored subject: orientation and order are read right."""
    require(RAS_SUBJECT)
    volume, affine = crop(RAS_SUBJECT / "t1c.nii.gz", (slice(100, 112), slice(40, 200), slice(20, 140)))
    flip = np.eye(4)
    flip[2, 2], flip[2, 3] = -1, volume.shape[2] - 1
    sagittal = volume[:, :, ::-1].transpose(1, 2, 0)  # columns: y, rows: -z, slices: x
    write_series(tmp_path / "sag", sagittal, (affine @ flip)[:, [1, 2, 0, 3]], "sagittal")
    img = load_dicom_series(tmp_path / "sag", backend=backend, ensure_channel_first=True)
    assert tuple(img.shape) == (1, 160, 120, 12)
    ras = Orientation("RAS")(img)
    np.testing.assert_array_equal(ras[0].numpy(), volume)
    np.testing.assert_allclose(ras.affine.numpy(), affine, atol=1e-4)


def test_plain_loadimaged_reads_a_one_series_folder_with_itk(tree, mr):
    """What MONAI does already: LoadImaged without a reader gives a folder to ITKReader, which reads its one series
    (extensionless files, slice order from the positions). A bundle entry may point at such a folder as it is."""
    img = LoadImaged("image", image_only=True)({"image": str(tree["one"])})["image"]
    np.testing.assert_array_equal(img.numpy(), mr["t1c"])
    np.testing.assert_allclose(img.affine.numpy(), mr["affine"], atol=1e-4)


def test_loadimaged_reader_setting_reads_series_files_and_other_images(tmp_path, tree, mr):
    load = LoadImaged("image", reader=READER, image_only=True, ensure_channel_first=True)
    entries = dicom_series_datalist(tree["root"])
    by_uid = {e["series_uid"]: e for e in entries}
    assert by_uid[tree["uid_one"]]["image"] == str(tree["one"])  # alone in its folder: the folder
    assert by_uid[tree["uid_a"]]["image"] == [str(f) for f in tree["files_a"]]  # shares a folder: its files
    for uid, expected in ((tree["uid_one"], mr["t1c"]), (tree["uid_a"], mr["t1c"]), (tree["uid_b"], mr["t2f"])):
        img = load(by_uid[uid])["image"]
        assert tuple(img.shape) == (1, *expected.shape)
        np.testing.assert_array_equal(img[0].numpy(), expected)
        np.testing.assert_allclose(img.affine.numpy(), mr["affine"], atol=1e-4)
    # other inputs are read as LoadImaged reads them without the setting: a NIfTI file, a single DICOM file
    nifti = SUBJECT / "t2f.nii.gz"
    np.testing.assert_array_equal(
        load({"image": str(nifti)})["image"].numpy(), LoadImage(ensure_channel_first=True)(nifti).numpy()
    )
    single = load({"image": str(tree["files_one"][5])})["image"]
    np.testing.assert_array_equal(np.squeeze(single.numpy()), mr["t1c"][:, :, 5])
    # a folder of two series is an error listing both, not (as MONAI's ITKReader does) the first series alone
    with pytest.raises(DicomSeriesError, match="holds 2 DICOM series") as err:
        load({"image": str(tree["two"])})
    assert tree["uid_a"] in str(err.value) and tree["uid_b"] in str(err.value) and "t2_flair" in str(err.value)
    only_b = LoadImaged("image", reader=DicomSeriesReader(series_uid=tree["uid_b"]), image_only=True)
    np.testing.assert_array_equal(only_b({"image": str(tree["two"])})["image"].numpy(), mr["t2f"])


def test_dicom_series_datalist_entries_and_json(tmp_path, tree):
    shutil.copy(require(DATA / "misc_3d" / "pydicom_CT_small.dcm"), tree["root"] / "ct_slice.dcm")
    try:
        entries = dicom_series_datalist(tree["root"], key="A")
        assert len(entries) == 4
        single = next(e for e in entries if e["num_slices"] == 1)
        assert single["A"] == str(tree["root"] / "ct_slice.dcm") and single["modality"] == "CT"
        assert len(dicom_series_datalist(tree["root"], min_slices=2)) == 3
    finally:
        os.remove(tree["root"] / "ct_slice.dcm")
    from monai_synpriv.data.datalist import load_datalist_section, write_datalist

    path = write_datalist(tmp_path / "series.json", {"training": entries})
    assert load_datalist_section(path, "training") == entries


@pytest.mark.parametrize("backend", BACKENDS)
def test_compressed_series_rle_and_jpeg2000(tmp_path, mr, backend):
    volume = np.clip(mr["t1c"][:, :, :8], 0, None)
    write_series(
        tmp_path / "c",
        volume,
        mr["affine"],
        "compressed",
        syntaxes=(RLELossless, JPEG2000Lossless, ExplicitVRLittleEndian),
    )
    syntaxes = {
        pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID for f in (tmp_path / "c").iterdir()
    }
    assert syntaxes == {RLELossless, JPEG2000Lossless, ExplicitVRLittleEndian}
    img = load_dicom_series(tmp_path / "c", backend=backend)
    np.testing.assert_array_equal(img.numpy(), volume)
    np.testing.assert_allclose(img.affine.numpy(), mr["affine"], atol=1e-4)


def test_jpeg_ls_series_needs_itk(tmp_path):
    """A real JPEG-LS lossless MR slice (pydicom's test file) as a 3-slice series: GDCM decodes it, pydicom here has
    no JPEG-LS plugin and names the file and the fix."""
    source = pydicom.dcmread(PYDICOM_TESTS / "MR_small_jpeg_ls_lossless.dcm")
    reference = pydicom.dcmread(PYDICOM_TESTS / "MR_small.dcm").pixel_array
    uid = generate_uid()
    for k in range(3):
        ds = copy.deepcopy(source)
        ds.SeriesInstanceUID, ds.InstanceNumber = uid, k + 1
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        ds.save_as(tmp_path / f"slice{k}", enforce_file_format=True)
    img = load_dicom_series(tmp_path, backend="itk", dtype=None)
    for k in range(3):
        np.testing.assert_array_equal(img[..., k].numpy().T, reference)
    assert img.pixdim[2] == pytest.approx(2.0)
    try:
        decodable = pydicom.dcmread(tmp_path / "slice0").pixel_array is not None
    except Exception:
        decodable = False
    if not decodable:
        with pytest.raises(DicomSeriesError, match=r"slice0.*JPEG-LS.*install a pydicom decoder"):
            load_dicom_series(tmp_path, backend="pydicom")


def test_tilted_stack_keeps_its_shear_in_both_backends(tmp_path, mr):
    """Slice origins moving 0.5 mm in y per 1 mm slice (a gantry-tilted CT): ITK alone would put the slices along
    the normal 1.118 mm apart; the affine's slice axis comes from the positions instead, for both backends."""
    files = small_series(tmp_path / "s", mr)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.5 * k, z]
        ds.save_as(f)
    images = [load_dicom_series(tmp_path / "s", backend=b) for b in BACKENDS]
    for img in images:
        np.testing.assert_allclose(img.affine[:3, 2].numpy(), [0.0, -0.5, 1.0], atol=1e-4)  # RAS: y flips sign
        np.testing.assert_allclose(img.affine[:3, :2].numpy(), mr["affine"][:3, :2], atol=1e-4)
    np.testing.assert_array_equal(images[0].numpy(), images[1].numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_slice_is_named(tmp_path, mr, backend):
    files = small_series(tmp_path / "s", mr)
    data = files[3].read_bytes()
    files[3].write_bytes(data[: len(data) - 1000])  # pixel data cut short: the header still reads
    with pytest.raises(DicomSeriesError, match=f"cannot read the pixels of {files[3]}"):
        load_dicom_series(tmp_path / "s", backend=backend)
    # through the bundles' reader setting too: LoadImage must not fall back to ITK, which would drop the slice
    with pytest.raises(DicomSeriesError, match=str(files[3])):
        LoadImaged("image", reader=READER)({"image": str(tmp_path / "s")})


def test_truncated_header_is_named(tmp_path, mr):
    files = small_series(tmp_path / "s", mr)
    files[2].write_bytes(files[2].read_bytes()[:400])  # the magic and file meta survive, the image header does not
    with pytest.raises(DicomSeriesError, match=f"{files[2]} is a DICOM image .* truncated or corrupt"):
        find_dicom_series(tmp_path)
    with pytest.raises(DicomSeriesError, match=str(files[2])):
        LoadImaged("image", reader=READER)({"image": str(tmp_path / "s")})


def _edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for name, value in changes.items():
        if value is None:
            delattr(ds, name)
        else:
            setattr(ds, name, value)
    ds.save_as(path)


def test_inconsistent_slices_are_named(tmp_path, mr):
    def fresh(name: str) -> list[Path]:
        return small_series(tmp_path / name, mr)

    files = fresh("size")
    odd = write_series(tmp_path / "odd", mr["t1c"][60:100, 70:110, 3:4], mr["affine"], "x")[1][0]
    ds = pydicom.dcmread(odd)
    ref = pydicom.dcmread(files[3])
    ds.SeriesInstanceUID, ds.ImagePositionPatient = ref.SeriesInstanceUID, ref.ImagePositionPatient
    ds.save_as(files[3])  # a 40 x 40 slice among 48 x 40 ones
    with pytest.raises(DicomSeriesError, match=rf"{files[3]} has Rows x Columns \(40, 40\)"):
        load_dicom_series(tmp_path / "size")

    files = fresh("nopos")
    _edit(files[5], ImagePositionPatient=None)
    with pytest.raises(DicomSeriesError, match=f"{files[5]} .* has no ImagePositionPatient"):
        load_dicom_series(tmp_path / "nopos")

    files = fresh("gap")
    os.remove(files[4])  # a slice missing: uneven spacing, named by its neighbours
    with pytest.raises(DicomSeriesError, match=f"uneven slice spacing .* 2 mm between {files[3]} and {files[5]}"):
        load_dicom_series(tmp_path / "gap", backend="pydicom")

    files = fresh("dup")
    shutil.copy(files[6], tmp_path / "dup" / "copy")
    _edit(tmp_path / "dup" / "copy", SOPInstanceUID=generate_uid())
    with pytest.raises(DicomSeriesError, match="lie at the same position"):
        load_dicom_series(tmp_path / "dup")

    files = fresh("tilt")
    _edit(files[1], ImageOrientationPatient=[1, 0, 0, 0, 0.8, 0.6])
    with pytest.raises(DicomSeriesError, match=f"{files[1]} has ImageOrientationPatient"):
        load_dicom_series(tmp_path / "tilt")

    (tmp_path / "README").write_text("not an image\n")
    with pytest.raises(DicomSeriesError, match="README is not a DICOM file"):
        load_dicom_series([str(files[0]), str(files[2]), str(tmp_path / "README")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_ct_series(backend):
    """pydicom's real CT series (5 slices, InstanceNumber 6..10 running feet-ward): HU via the rescale, slices in
    position order, and the same volume as MONAI's own ITKReader reading the folder."""
    if not CT5N.is_dir():
        pytest.fail(f"pydicom's test series {CT5N} is missing: reinstall pydicom (its wheel ships it).")
    img = load_dicom_series(CT5N, backend=backend)
    assert tuple(img.shape) == (16, 16, 5)
    np.testing.assert_allclose(img.pixdim.numpy(), [0.488281, 0.488281, 2.5], rtol=1e-5)
    (series,) = find_dicom_series(CT5N)
    assert [os.path.basename(f) for f in series.files] == ["3353", "3023", "2693", "2392", "2062"]
    assert series.modality == "CT" and series.series_description == "SmartScore - Gated 0.5 sec"
    raw = np.stack([pydicom.dcmread(f).pixel_array.T for f in series.files], axis=-1)
    np.testing.assert_allclose(img.numpy(), raw - 1024.0)  # RescaleIntercept -1024: Hounsfield units
    monai_itk = LoadImage(reader="ITKReader")(str(CT5N))
    np.testing.assert_allclose(img.numpy(), monai_itk.numpy())
    np.testing.assert_allclose(img.affine.numpy(), monai_itk.affine.numpy(), atol=1e-4)


def test_real_multi_stack_series_are_errors():
    """Real series that are not one volume: a 2-slice scout in two planes, an oblique radial MR stack, a CT series
    with a 200 mm gap."""
    tests = PYDICOM_TESTS / "dicomdirtests"
    with pytest.raises(DicomSeriesError, match="ImageOrientationPatient"):
        load_dicom_series(tests / "98892001" / "CT2N")
    with pytest.raises(DicomSeriesError, match="ImageOrientationPatient"):
        load_dicom_series(tests / "98892003" / "MR700")
    with pytest.raises(DicomSeriesError, match="uneven slice spacing"):
        load_dicom_series(tests / "77654033" / "CT2")
    found = find_dicom_series(tests / "98892003")
    assert len(found) == 7 and {s.modality for s in found} == {"MR"}  # MR1: 3 one-file series; MR2: 2 x 3


def test_3d_bundle_preprocessing_reads_a_series_folder(tmp_path, tree, mr):
    """The translator's 3D preprocessing with the reader setting: a series folder gives the same tensor as the
    same volume saved as NIfTI."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(REPO / "bundles" / "unpaired_translator" / "configs" / "inference_3d.json")
    parser["image_keys"] = ["image"]
    steps = parser["preprocessing"]["transforms"]
    (load,) = [t for t in steps if t.get("_target_") == "LoadImaged"]
    load["reader"] = READER
    pipeline = parser.get_parsed_content("preprocessing", instantiate=True)
    nifti = tmp_path / "t1c.nii.gz"
    nib.save(nib.Nifti1Image(mr["t1c"], mr["affine"]), str(nifti))
    from_series = pipeline({"image": str(tree["one"])})["image"]
    from_nifti = pipeline({"image": str(nifti)})["image"]
    assert from_series.shape == from_nifti.shape and from_series.shape[0] == 1 and from_series.ndim == 4
    torch.testing.assert_close(from_series, from_nifti)


def test_datalist_text_values_are_not_taken_for_series_folders(tmp_path):
    """A caption longer than a file name may be (the VLP datalists) and other text stay text: resolving relative series
    folders must not trip over ``OSError: File name too long``."""
    from monai_synpriv.data import load_datalist_section

    caption = "PA chest radiograph demonstrates left lung volume loss. " * 10
    (tmp_path / "a.png").write_bytes(b"")
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"training": [{"image": "a.png", "text": caption, "tags": ["CT", caption]}]}))
    (item,) = load_datalist_section(path)
    assert item == {"image": str(tmp_path / "a.png"), "text": caption, "tags": ["CT", caption]}
