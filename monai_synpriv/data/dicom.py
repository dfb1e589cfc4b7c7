"""DICOM series as volumes: find the series of a folder, order their slices, check them and read each as one 3D image.

What MONAI already does, and what this module adds (MONAI 1.6):

- ``LoadImage``/``LoadImaged`` without a reader give a *folder* to :class:`monai.data.ITKReader`, which reads the one
  DICOM series in it with GDCM: files are recognised by content (no extension needed), slices are ordered along the
  slice normal, compressed transfer syntaxes that GDCM decodes are read, and the affine is right. That covers a folder
  holding exactly one intact series. It does not cover: a folder of several series (ITK warns and reads only the
  first one), a list of files (both MONAI DICOM readers stack a list as channels, not as slices), a corrupt or
  truncated slice (GDCM leaves it out of the series and returns a volume one slice short, with an uneven spacing),
  or slices of different sizes or positions (no check). :class:`monai.data.PydicomReader` given a folder mixes the
  slices of all its series, orders them by ``InstanceNumber`` only and skips slices it cannot parse.
- Here: :func:`find_dicom_series` lists the series below a folder (split by ``SeriesInstanceUID``, files recognised
  by their header, slices ordered by ``ImagePositionPatient`` along the slice normal); :func:`load_dicom_series`
  checks one series slice by slice (sizes, orientation, pixel spacing, positions, even spacing) and reads it with
  MONAI's ``ITKReader`` (default: ITK's series reader over the ordered file list, so GDCM's decoders apply) or
  ``PydicomReader`` (slice by slice); every error names the file at fault. :class:`DicomSeriesReader` is the same as a
  MONAI ``ImageReader``: ``LoadImaged(keys, reader="monai_synpriv.data.dicom.DicomSeriesReader")`` reads a datalist
  entry that is a series folder or the list of a series' files, and anything else (NIfTI, PNG, a single DICOM file)
  as ``LoadImaged`` would without it. :func:`dicom_series_datalist` gives one datalist entry per series.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike
from monai.data import ImageReader, ITKReader, PydicomReader
from monai.data.utils import affine_to_spacing
from monai.utils import ensure_tuple, optional_import

from .checks import InputDataError

itk, has_itk = optional_import("itk", allow_namespace_pkg=True)
pydicom, has_pydicom = optional_import("pydicom")

__all__ = [
    "DICOM_MAGIC",
    "DicomSeries",
    "DicomSeriesError",
    "DicomSeriesReader",
    "DicomSlice",
    "dicom_series_datalist",
    "find_dicom_series",
    "group_dicom_series",
    "is_dicom_file",
    "load_dicom_series",
]

logger = logging.getLogger(__name__)

#: a DICOM Part 10 file: a 128-byte preamble, then these 4 bytes
DICOM_MAGIC = b"DICM"
_PREAMBLE = 128
#: tolerances: orientation cosines, relative pixel spacing, slice position (mm)
_ORIENTATION_TOL = 1e-3
_SPACING_RTOL = 1e-3
_POSITION_TOL = 1e-3


class DicomSeriesError(InputDataError):
    """A DICOM series that cannot be read as one volume; the message names the file(s) at fault and what to do."""


def is_dicom_file(path: PathLike) -> bool:
    """Whether ``path`` is a DICOM Part 10 file: the 128-byte preamble followed by ``b"DICM"``, whatever the file's
    name or extension (PACS exports often have none). Reads 132 bytes; a folder, a missing or an unreadable file gives
    ``False``. Files written without the preamble (raw datasets, old ACR-NEMA) are not recognised."""
    try:
        with open(path, "rb") as f:
            f.seek(_PREAMBLE)
            return f.read(len(DICOM_MAGIC)) == DICOM_MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class DicomSlice:
    """The header fields of one DICOM file that ordering and checking a series need (read without the pixels)."""

    path: str
    instance_number: int | None
    position: tuple[float, float, float] | None  # ImagePositionPatient, mm (LPS)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row then column direction cosines
    pixel_spacing: tuple[float, float] | None  # PixelSpacing: between rows, between columns (mm)
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int | None
    pixel_representation: int | None
    frames: int
    rescale: tuple[float, float]  # RescaleSlope, RescaleIntercept
    transfer_syntax: str


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series: its ``SeriesInstanceUID``, its files ordered along the slice normal and a few header fields.

    ``files`` are ordered by ``ImagePositionPatient`` projected on the slice normal (ascending, as ITK orders them),
    by ``InstanceNumber`` where a slice has no position or orientation. ``slices`` holds the per-file header fields
    used for the order and the checks of :func:`load_dicom_series`.
    """

    series_uid: str
    files: tuple[str, ...]
    modality: str = ""
    series_description: str = ""
    patient_id: str = ""
    study_uid: str = ""
    series_number: int | None = None
    rows: int = 0
    columns: int = 0
    slices: tuple[DicomSlice, ...] = field(default=(), repr=False, compare=False)

    @property
    def num_slices(self) -> int:
        """The number of files (slices) of the series."""
        return len(self.files)

    @property
    def folder(self) -> str | None:
        """The folder that directly holds every file of the series, ``None`` when they are spread over several."""
        parents = {os.path.dirname(os.path.normpath(f)) for f in self.files}
        return parents.pop() if len(parents) == 1 else None

    def to_dict(self) -> dict:
        """The series as plain, JSON-serialisable fields (without the per-slice headers)."""
        return {
            "series_uid": self.series_uid,
            "files": list(self.files),
            "modality": self.modality,
            "series_description": self.series_description,
            "patient_id": self.patient_id,
            "study_uid": self.study_uid,
            "series_number": self.series_number,
            "rows": self.rows,
            "columns": self.columns,
            "num_slices": self.num_slices,
        }

    def describe(self) -> str:
        """One line for messages: UID, modality, description, size and where the files are."""
        where = self.folder or f"{os.path.dirname(self.files[0])} and other folders"
        desc = f" {self.series_description!r}" if self.series_description else ""
        return (
            f"{self.series_uid} ({self.modality or '?'}{desc}, {self.num_slices} file(s) of "
            f"{self.rows}x{self.columns}, in {where})"
        )


def _require_pydicom() -> None:
    if not has_pydicom:
        raise ImportError("reading DICOM headers needs pydicom: pip install pydicom.")


def _floats(ds: Any, keyword: str, n: int, path: str) -> tuple[float, ...] | None:
    """``keyword`` of ``ds`` as ``n`` finite floats; ``None`` when absent or empty."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise DicomSeriesError(f"{path}: {keyword} {value!r} is not {n} numbers ({e}); the header is corrupt.") from e
    if len(out) != n or not np.isfinite(out).all():
        raise DicomSeriesError(f"{path}: {keyword} {value!r} is not {n} finite numbers; the header is corrupt.")
    return out


def _int(ds: Any, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _sop_class_name(ds: Any) -> str:
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return getattr(uid, "name", str(uid or ""))


def _read_header(path: str) -> tuple[Any, DicomSlice] | None:
    """The dataset (no pixels) and slice fields of one DICOM file; ``None`` for a DICOM file that is not an image
    (DICOMDIR, structured report, presentation state, ...).

    Raises:
        DicomSeriesError: the header cannot be parsed, or an image's header lacks what a slice needs (truncated file).
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:
        raise DicomSeriesError(
            f"cannot read the DICOM header of {path}: {_short(e)}. The file is truncated or corrupt: re-export it, or "
            "remove it from the folder."
        ) from e
    sop = _sop_class_name(ds)
    missing = [k for k in ("SeriesInstanceUID", "Rows", "Columns") if ds.get(k) in (None, "")]
    if missing:
        if "Image Storage" in sop:
            raise DicomSeriesError(
                f"{path} is a DICOM image ({sop}) but its header has no {', '.join(missing)}: the file is truncated "
                "or corrupt. Re-export it, or remove it from the folder."
            )
        logger.debug("%s: not an image (%s), skipped.", path, sop or "no SOP class")
        return None
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None)
    slope = _floats(ds, "RescaleSlope", 1, path)
    intercept = _floats(ds, "RescaleIntercept", 1, path)
    slc = DicomSlice(
        path=path,
        instance_number=_int(ds, "InstanceNumber"),
        position=_floats(ds, "ImagePositionPatient", 3, path),  # type: ignore[arg-type]
        orientation=_floats(ds, "ImageOrientationPatient", 6, path),
        pixel_spacing=_floats(ds, "PixelSpacing", 2, path),  # type: ignore[arg-type]
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) or 1,
        bits_allocated=_int(ds, "BitsAllocated"),
        pixel_representation=_int(ds, "PixelRepresentation"),
        frames=_int(ds, "NumberOfFrames", 1) or 1,
        rescale=(slope[0] if slope else 1.0, intercept[0] if intercept else 0.0),
        transfer_syntax=getattr(ts, "name", str(ts or "")),
    )
    return ds, slc


def _normal(orientation: Sequence[float]) -> np.ndarray:
    return np.cross(np.asarray(orientation[:3], dtype=float), np.asarray(orientation[3:6], dtype=float))


def _order(slices: Sequence[DicomSlice]) -> list[DicomSlice]:
    """Slices along the normal of the first slice's orientation (ascending ImagePositionPatient . normal), or by
    InstanceNumber when a slice has no position or orientation; ties by InstanceNumber, then path."""
    inf = float("inf")
    if all(s.position is not None and s.orientation is not None for s in slices):
        normal = _normal(slices[0].orientation)  # type: ignore[arg-type]
        return sorted(
            slices,
            key=lambda s: (
                float(np.dot(s.position, normal)),
                s.instance_number if s.instance_number is not None else inf,
                s.path,
            ),
        )
    return sorted(slices, key=lambda s: (s.instance_number if s.instance_number is not None else inf, s.path))


def group_dicom_series(paths: Iterable[PathLike]) -> list[DicomSeries]:
    """Group DICOM files into series by ``SeriesInstanceUID``. Files are recognised by their header
    (:func:`is_dicom_file`); other files, and DICOM files that are not images (DICOMDIR, reports), are left out. Only
    headers are read.

    Returns:
        the series sorted by patient, study, series number and UID, each with its files ordered along the slice normal.

    Raises:
        DicomSeriesError: naming a DICOM file whose header cannot be read or is incomplete (truncated or corrupt).
    """
    _require_pydicom()
    groups: dict[str, list[tuple[Any, DicomSlice]]] = {}
    for p in paths:
        path = str(p)
        if not is_dicom_file(path):
            continue
        read = _read_header(path)
        if read is not None:
            groups.setdefault(str(read[0].SeriesInstanceUID), []).append(read)
    series = []
    for uid, members in groups.items():
        ds = members[0][0]
        ordered = _order([m[1] for m in members])
        series.append(
            DicomSeries(
                series_uid=uid,
                files=tuple(s.path for s in ordered),
                modality=str(ds.get("Modality", "") or ""),
                series_description=str(ds.get("SeriesDescription", "") or ""),
                patient_id=str(ds.get("PatientID", "") or ""),
                study_uid=str(ds.get("StudyInstanceUID", "") or ""),
                series_number=_int(ds, "SeriesNumber"),
                rows=ordered[0].rows,
                columns=ordered[0].columns,
                slices=tuple(ordered),
            )
        )
    inf = float("inf")
    return sorted(
        series,
        key=lambda s: (
            s.patient_id,
            s.study_uid,
            s.series_number if s.series_number is not None else inf,
            s.series_uid,
        ),
    )


def _list_files(folder: Path, recursive: bool) -> list[str]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if recursive and not d.startswith("."))
        files += [os.path.join(dirpath, n) for n in sorted(filenames) if not n.startswith(".")]
    no_magic = [f for f in files if f.lower().endswith(".dcm") and not is_dicom_file(f)]
    if no_magic:
        warnings.warn(
            f"{len(no_magic)} file(s) under {folder} named *.dcm lack the DICOM preamble and 'DICM' magic (e.g. "
            f"{no_magic[0]}) and are left out of the series: re-export them as DICOM Part 10 files.",
            stacklevel=3,
        )
    return files


def find_dicom_series(folder: PathLike, recursive: bool = True) -> list[DicomSeries]:
    """The DICOM series below ``folder``, split by ``SeriesInstanceUID`` (one folder may hold several series, and a
    series may span sub-folders). Files are recognised by their header whatever their extension; hidden files and
    folders are skipped, links to folders are not followed. Only headers are read (``stop_before_pixels``).

    Args:
        folder: the folder to search.
        recursive: also search the sub-folders.

    Returns:
        the series (see :class:`DicomSeries`), each with its files ordered along the slice normal; empty when the
        folder holds no DICOM image.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
        DicomSeriesError: naming a DICOM file whose header cannot be read or is incomplete (truncated or corrupt).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"DICOM folder {folder} does not exist or is not a folder.")
    return group_dicom_series(_list_files(folder, recursive))


def _check_slices(series: DicomSeries, spacing_tolerance: float) -> np.ndarray | None:
    """Check that the slices of ``series`` make one volume; return the vector from one slice to the next (LPS, mm),
    ``None`` for a single file.

    Raises:
        DicomSeriesError: naming the file(s) at fault.
    """
    slices = series.slices
    if len(slices) < 2:
        return None
    first = slices[0]
    uid = series.series_uid
    for s in slices:
        if s.frames > 1:
            raise DicomSeriesError(
                f"{s.path} holds {s.frames} frames but is one of {len(slices)} files of series {uid}: a multi-frame "
                "file is a volume on its own; read that file alone."
            )
        for name, a, b in (
            ("Rows x Columns", (s.rows, s.columns), (first.rows, first.columns)),
            ("SamplesPerPixel", s.samples_per_pixel, first.samples_per_pixel),
            ("BitsAllocated", s.bits_allocated, first.bits_allocated),
            ("PixelRepresentation", s.pixel_representation, first.pixel_representation),
        ):
            if a != b:
                raise DicomSeriesError(
                    f"{s.path} has {name} {a} but {first.path} (another slice of series {uid}) has {b}: not slices "
                    "of one volume. Remove the odd file, or split the series."
                )
        for name, value in (("ImagePositionPatient", s.position), ("ImageOrientationPatient", s.orientation)):
            if value is None:
                raise DicomSeriesError(
                    f"{s.path} (series {uid}) has no {name}: the slice spacing and the volume's geometry cannot be "
                    "derived. Add the tag, or read the files as separate 2D images."
                )
        orientation, reference = np.asarray(s.orientation), np.asarray(first.orientation)
        if np.abs(orientation - reference).max() > _ORIENTATION_TOL:
            raise DicomSeriesError(
                f"{s.path} has ImageOrientationPatient {orientation.tolist()} but {first.path} has "
                f"{reference.tolist()} (series {uid}): the slices are not parallel (a localizer, or several stacks in "
                "one series). Split the series or remove the odd files."
            )
        if (s.pixel_spacing is None) != (first.pixel_spacing is None) or (
            s.pixel_spacing is not None and not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=_SPACING_RTOL)
        ):
            raise DicomSeriesError(
                f"{s.path} has PixelSpacing {s.pixel_spacing} but {first.path} has {first.pixel_spacing} "
                f"(series {uid}): not slices of one volume."
            )
    normal = _normal(first.orientation)  # type: ignore[arg-type]
    depth = np.array([np.dot(s.position, normal) for s in slices])  # type: ignore[arg-type]
    gaps = np.diff(depth)
    for i in np.flatnonzero(gaps < _POSITION_TOL):
        raise DicomSeriesError(
            f"{slices[i].path} and {slices[i + 1].path} lie at the same position in series {uid}: a duplicate file, "
            "or several stacks (echoes, time points) in one series. Remove the duplicates or split the series."
        )
    step = (depth[-1] - depth[0]) / (len(slices) - 1)
    i = int(np.argmax(np.abs(gaps - step)))
    if abs(gaps[i] - step) > spacing_tolerance * step:
        raise DicomSeriesError(
            f"uneven slice spacing in series {uid}: {gaps[i]:.4g} mm between {slices[i].path} and "
            f"{slices[i + 1].path}, {step:.4g} mm on average: a slice is missing (unreadable or not exported) or "
            f"the spacing varies. Re-export the series, or raise spacing_tolerance (now {spacing_tolerance}) if the "
            "variation is expected."
        )
    return (np.asarray(slices[-1].position) - np.asarray(first.position)) / (len(slices) - 1)


def _short(err: BaseException, limit: int = 400) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."


class _SeriesRequest:
    """What :meth:`DicomSeriesReader.read` hands to ``get_data`` for a series: a folder or a file list (unchecked)."""

    def __init__(self, folder: str | None = None, files: Sequence[str] = ()) -> None:
        self.folder = folder
        self.files = list(files)


class _Delegated:
    """A non-series input read by one of MONAI's default readers."""

    def __init__(self, reader: ImageReader, obj: Any) -> None:
        self.reader = reader
        self.obj = obj


class DicomSeriesReader(ImageReader):
    """
    A MONAI ``ImageReader`` that reads a DICOM series as one 3D image: from a folder (the series of the DICOM files
    directly in it, as MONAI's DICOM readers read a folder) or from a list of the series' files (in any order; MONAI's
    readers stack a list as channels). Any other input, NIfTI, PNG, a single DICOM file (2D or multi-frame) or a list
    of non-DICOM images, is read by the reader ``LoadImage`` would choose without this one, so that a datalist can mix
    series and files::

        LoadImaged(keys="image", reader="monai_synpriv.data.dicom.DicomSeriesReader", ensure_channel_first=True)

    Files are recognised by their header, whatever their extension. Before any pixel is decoded the series is checked
    (one series only, same size, orientation and pixel spacing, distinct and evenly spaced positions); a slice that
    cannot be read or decoded is named. Errors are raised by ``get_data``, which ``LoadImage`` does not catch: they
    reach the user instead of letting ``LoadImage`` fall back to another reader (MONAI's ``ITKReader`` would read the
    folder anyway, leaving out the corrupt slice).

    The array is indexed (column, row, slice), the affine maps it to RAS world coordinates (LPS with
    ``affine_lps_to_ras=False``), as ``ITKReader`` and ``NibabelReader`` give them. Slices are ordered along the slice
    normal (ascending ``ImagePositionPatient``), as ITK orders a series folder.

    Args:
        series_uid: the ``SeriesInstanceUID`` to read from a folder holding several series; by default a folder must
            hold one.
        backend: ``"itk"``: ITK's series reader over the ordered files, then :class:`monai.data.ITKReader` for the
            array, affine and metadata (GDCM decodes JPEG baseline/lossless, JPEG-LS, JPEG 2000 and RLE);
            ``"pydicom"``: :class:`monai.data.PydicomReader` slice by slice (decoders: pydicom's plugins installed, RLE
            built in, JPEG/JPEG 2000 with Pillow); ``"auto"``: ITK where it is installed.
        spacing_tolerance: the largest deviation of one slice gap from the mean gap, as a fraction of the mean.
        affine_lps_to_ras: give the affine in RAS (MONAI's and NIfTI's convention) rather than DICOM's LPS.
    """

    def __init__(
        self,
        series_uid: str | None = None,
        backend: str = "auto",
        spacing_tolerance: float = 0.05,
        affine_lps_to_ras: bool = True,
    ) -> None:
        super().__init__()
        if backend not in ("auto", "itk", "pydicom"):
            raise ValueError(f"DicomSeriesReader: backend must be 'auto', 'itk' or 'pydicom', got {backend!r}.")
        if backend == "auto":
            backend = "itk" if has_itk else "pydicom"
        if backend == "itk" and not has_itk:
            raise ImportError("DicomSeriesReader(backend='itk') needs ITK: pip install itk-io (or backend='pydicom').")
        self.series_uid = series_uid
        self.backend = backend
        self.spacing_tolerance = float(spacing_tolerance)
        self.affine_lps_to_ras = affine_lps_to_ras
        self._defaults: list[ImageReader] | None = None

    # --- MONAI's ImageReader API ---------------------------------------------------------------------------------

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether ``filename`` is a folder or holds a DICOM file (by header): what this reader reads as a series."""
        names = [f"{n}" for n in ensure_tuple(filename)]
        return any(os.path.isdir(n) or is_dicom_file(n) for n in names)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> Any:
        """Classify ``data`` (cheap): a folder, or a list holding a folder or a DICOM file, is a series, checked and
        read by :meth:`get_data`; anything else is read now by the reader ``LoadImage`` would choose without this
        one. ``kwargs`` go to that reader."""
        names = [f"{n}" for n in ensure_tuple(data)]
        if len(names) == 1 and os.path.isdir(names[0]):
            return _SeriesRequest(folder=names[0])
        if len(names) > 1 and any(os.path.isdir(n) or is_dicom_file(n) for n in names):
            return _SeriesRequest(files=names)
        reader = self._default_reader(names)
        return _Delegated(reader, reader.read(names[0] if len(names) == 1 else names, **kwargs))

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """The array and metadata of what :meth:`read` returned: a series is resolved, checked and decoded here.

        Raises:
            DicomSeriesError: naming the folder or the file(s) at fault.
        """
        if isinstance(img, _Delegated):
            return img.reader.get_data(img.obj)
        if not isinstance(img, _SeriesRequest):
            raise TypeError(f"DicomSeriesReader.get_data expects what its read() returned, got {type(img).__name__}.")
        return self.read_series(self.resolve(img.folder if img.folder is not None else img.files))

    # --- series ------------------------------------------------------------------------------------------------------

    def resolve(self, source: PathLike | Sequence[PathLike] | DicomSeries) -> DicomSeries:
        """The one series that ``source`` (a folder, a list of files or a :class:`DicomSeries`) denotes.

        Raises:
            DicomSeriesError: the source holds no DICOM image, several series (listed) without ``series_uid``, or
                a file that is not a DICOM image (named).
        """
        if isinstance(source, DicomSeries):
            return source
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            where = f"folder {source}"
            found = find_dicom_series(source, recursive=False)
        else:
            files = [f"{f}" for f in ensure_tuple(source)]
            where = f"the list of {len(files)} file(s) starting {files[0]}" if files else "an empty file list"
            for f in files:
                if os.path.isdir(f):
                    raise DicomSeriesError(f"{f} is a folder, in {where}: give one series folder, or a list of files.")
                if not os.path.isfile(f):
                    raise DicomSeriesError(f"DICOM file not found: {f} (in {where}).")
                if not is_dicom_file(f):
                    raise DicomSeriesError(
                        f"{f} is not a DICOM file (no 128-byte preamble + 'DICM' magic), in {where}: remove it from "
                        "the list."
                    )
            found = group_dicom_series(files)
            listed = {f for s in found for f in s.files}
            for f in files:
                if f not in listed:
                    raise DicomSeriesError(
                        f"{f} is a DICOM file but not an image (in {where}): remove it from the list."
                    )
        if self.series_uid is not None:
            chosen = [s for s in found if s.series_uid == self.series_uid]
            if not chosen:
                raise DicomSeriesError(
                    f"{where} has no series {self.series_uid}; it holds: "
                    + ("; ".join(s.describe() for s in found) or "no DICOM image")
                    + "."
                )
            return chosen[0]
        if not found:
            raise DicomSeriesError(
                f"{where} holds no DICOM image file (recognised by the 128-byte preamble + 'DICM' magic, whatever the "
                "extension; sub-folders are not read: point at the folder of one series, or list the series with "
                "monai_synpriv.data.dicom.find_dicom_series)."
            )
        if len(found) > 1:
            raise DicomSeriesError(
                f"{where} holds {len(found)} DICOM series: "
                + "; ".join(s.describe() for s in found)
                + ". Point each datalist entry at one series (its folder, or the list of its files: "
                "monai_synpriv.data.dicom.dicom_series_datalist builds such entries), or choose one with "
                "DicomSeriesReader(series_uid=...)."
            )
        return found[0]

    def read_series(self, series: DicomSeries) -> tuple[np.ndarray, dict]:
        """Check ``series`` and decode it: the (column, row, slice) array and MONAI metadata (affine, spacing,
        spatial shape, plus ``series_instance_uid``, ``modality``, ``series_description``, ``num_slices``).

        Raises:
            DicomSeriesError: naming the file(s) at fault.
        """
        step = _check_slices(series, self.spacing_tolerance)
        if self.backend == "itk":
            array, meta = self._read_itk(series)
        else:
            array, meta = self._read_pydicom(series)
        if step is not None:
            # the slice axis from the positions: ITK keeps the normal's direction and the origins' distance, which
            # differ from the true geometry when the stack is sheared (gantry-tilted CT); the same for both backends
            affine = np.array(meta["affine"], dtype=np.float64)
            affine[:3, 2] = step * (np.array([-1.0, -1.0, 1.0]) if self.affine_lps_to_ras else 1.0)
            meta.update(affine=affine, original_affine=affine.copy(), spacing=affine_to_spacing(affine, r=3))
        read = int(meta["spatial_shape"][2]) if len(meta["spatial_shape"]) > 2 else 1
        if series.num_slices > 1 and read != series.num_slices:
            raise DicomSeriesError(
                f"series {series.describe()}: {self.backend} read {read} slices from {series.num_slices} files."
            )
        meta.update(
            series_instance_uid=series.series_uid,
            modality=series.modality,
            series_description=series.series_description,
            num_slices=series.num_slices,
        )
        return array, meta

    def _read_itk(self, series: DicomSeries) -> tuple[np.ndarray, dict]:
        files = list(series.files)
        # one pixel type for all slices: float when the slices are rescaled differently (PET, some CT)
        pixel_type = itk.F if len({s.rescale for s in series.slices}) > 1 else None
        try:
            image = itk.imread(files if len(files) > 1 else files[0], pixel_type, imageio=itk.GDCMImageIO.New())
        except Exception as e:
            for f in files:  # which file fails on its own
                try:
                    itk.imread(f, imageio=itk.GDCMImageIO.New())
                except Exception as ef:
                    raise DicomSeriesError(self._decode_message(f, series, ef)) from ef
            raise DicomSeriesError(f"ITK could not read series {series.describe()}: {_short(e)}") from e
        array, meta = ITKReader(affine_lps_to_ras=self.affine_lps_to_ras).get_data(image)
        return np.array(array), meta  # a copy: ITKReader's array is a view of ITK's buffer

    def _read_pydicom(self, series: DicomSeries) -> tuple[np.ndarray, dict]:
        reader = PydicomReader(affine_lps_to_ras=self.affine_lps_to_ras)
        arrays, meta = [], {}
        for i, f in enumerate(series.files):
            try:
                array, slice_meta = reader.get_data(reader.read(f))
            except Exception as e:
                raise DicomSeriesError(self._decode_message(f, series, e)) from e
            arrays.append(array)
            if i == 0:
                meta = slice_meta
        if len(arrays) == 1:  # one file: PydicomReader's own result (a 2D slice or a multi-frame volume)
            return arrays[0], meta
        volume = np.stack(arrays, axis=2)  # (column, row, slice), then the colour channel if any; affine: read_series
        meta.update(
            spatial_shape=np.asarray(volume.shape[:3]), original_channel_dim=float("nan") if volume.ndim == 3 else -1
        )
        return volume, meta

    def _decode_message(self, path: str, series: DicomSeries, err: BaseException) -> str:
        ts = next((s.transfer_syntax for s in series.slices if s.path == path), "")
        hint = (
            " If the transfer syntax is not supported, install a pydicom decoder (pylibjpeg-libjpeg, pyjpegls, "
            "pylibjpeg-openjpeg or python-gdcm) or use backend='itk'."
            if self.backend == "pydicom"
            else ""
        )
        return (
            f"cannot read the pixels of {path} (slice of series {series.series_uid}"
            f"{', transfer syntax ' + ts if ts else ''}) with {self.backend}: {_short(err)}. If the file is truncated "
            f"or corrupt, re-export the series (without the file, the volume has a gap).{hint}"
        )

    def _default_reader(self, names: list[str]) -> ImageReader:
        """The reader ``LoadImage`` chooses by itself for ``names`` (its registered default readers, last first)."""
        if self._defaults is None:
            from monai.transforms import LoadImage

            self._defaults = LoadImage(image_only=True).readers
        for reader in self._defaults[::-1]:
            if reader.verify_suffix(names if len(names) > 1 else names[0]):
                return reader
        raise RuntimeError(f"no MONAI image reader can read {names[0] if len(names) == 1 else names}.")


def load_dicom_series(
    source: PathLike | Sequence[PathLike] | DicomSeries,
    series_uid: str | None = None,
    backend: str = "auto",
    spacing_tolerance: float = 0.05,
    affine_lps_to_ras: bool = True,
    ensure_channel_first: bool = False,
    dtype: Any = np.float32,
):
    """Read one DICOM series as a 3D ``MetaTensor`` with its affine (RAS by default), through MONAI's ``LoadImage``
    with a :class:`DicomSeriesReader` (see there for the checks and the backends).

    Args:
        source: a folder (the series of the DICOM files directly in it), the list of a series' files (any order, any
            extension), or a :class:`DicomSeries` from :func:`find_dicom_series`.
        series_uid: the series to read from a folder holding several.
        backend: ``"auto"`` (ITK where installed), ``"itk"`` or ``"pydicom"``.
        spacing_tolerance: the largest deviation of one slice gap from the mean gap, as a fraction of the mean.
        affine_lps_to_ras: RAS affine (MONAI, NIfTI) rather than DICOM's LPS.
        ensure_channel_first: add a channel dimension first.
        dtype: the array's type (``None``: as stored, rescaled).

    Raises:
        DicomSeriesError: naming the folder or file(s) at fault: no or several series, an unreadable or corrupt slice,
            slices of different size, orientation or pixel spacing, a missing position, duplicate or uneven positions.
    """
    from monai.transforms import LoadImage

    reader = DicomSeriesReader(series_uid, backend, spacing_tolerance, affine_lps_to_ras)
    if isinstance(source, DicomSeries):
        source = source.files if source.num_slices > 1 else source.files[0]
    # the runtime reader of LoadImage: its errors are not caught, and the result is what LoadImaged gives a bundle
    return LoadImage(image_only=True, dtype=dtype, ensure_channel_first=ensure_channel_first)(source, reader=reader)


def dicom_series_datalist(
    source: PathLike | Sequence[DicomSeries],
    key: str = "image",
    recursive: bool = True,
    min_slices: int = 1,
) -> list[dict]:
    """One datalist entry per DICOM series, for ``LoadImaged(reader="monai_synpriv.data.dicom.DicomSeriesReader")``.

    Each entry's ``key`` is the series' folder when the series is the only one whose files lie directly in that folder
    (short, and plain ``LoadImaged`` reads such a folder too), else the list of its files in slice order; a
    one-file series (a 2D image, a multi-frame file) gives the file itself. Entries also carry ``series_uid``,
    ``modality``, ``series_description``, ``patient_id`` (identifying: keep such datalists private) and
    ``num_slices``.

    Args:
        source: a folder to search (see :func:`find_dicom_series`), or series already found.
        key: the key of the image in each entry.
        recursive: search the sub-folders of a folder ``source``.
        min_slices: leave out the series with fewer files (e.g. 2 for volumes only).
    """
    series = find_dicom_series(source, recursive) if isinstance(source, (str, os.PathLike)) else list(source)
    per_folder: dict[str, int] = {}
    for s in series:
        for d in {os.path.dirname(os.path.normpath(f)) for f in s.files}:
            per_folder[d] = per_folder.get(d, 0) + 1
    out = []
    for s in series:
        if s.num_slices < min_slices:
            continue
        folder = s.folder
        if s.num_slices == 1:
            value: Any = s.files[0]
        elif folder is not None and per_folder.get(folder) == 1:
            value = folder
        else:
            value = list(s.files)
        out.append(
            {
                key: value,
                "series_uid": s.series_uid,
                "modality": s.modality,
                "series_description": s.series_description,
                "patient_id": s.patient_id,
                "num_slices": s.num_slices,
            }
        )
    return out
