"""Datalists, public-set readers, input checks and unpaired sampling."""

from .brain_tumor import BRAIN_TUMOR_CLASSES, prepare_brain_tumor_mri
from .caching import cached_dataset
from .checks import InputDataError, check_images, check_translation_inputs
from .datalist import (
    IMAGE_SUFFIXES,
    datalist_classes,
    folder_to_datalist,
    load_datalist_section,
    load_image_list,
    pair_datalists,
    probe_items,
    write_datalist,
)
from .dicom import (
    DicomSeries,
    DicomSeriesError,
    DicomSeriesReader,
    dicom_series_datalist,
    find_dicom_series,
    group_dicom_series,
    is_dicom_file,
    load_dicom_series,
)
from .labelled import (
    datalist_content_digest,
    drop_identical_across_splits,
    file_sha256,
    prepare_labelled_datalist,
    read_labelled_entries,
    split_by_subject,
)
from .medmnist import prepare_medmnist
from .medpix import MEDPIX_LABELS, MEDPIX_PLANES, MEDPIX_SOURCE, prepare_medpix_datalist
from .multicontrast import (
    CONTRASTS,
    authentic_pairs_datalist,
    list_subjects,
    multicontrast_volume_datalist,
    prepare_multicontrast_slices,
    split_subjects,
)
from .slices import foreground_fraction, load_normalized_volume, save_slice, select_slices
from .text import SPECIAL_TOKENS, TRUNCATION_MODES, TextTokenizer, read_iu_xray_reports, text_corpus
from .unpaired import UnpairedDataset

__all__ = [
    "BRAIN_TUMOR_CLASSES",
    "CONTRASTS",
    "DicomSeries",
    "DicomSeriesError",
    "DicomSeriesReader",
    "IMAGE_SUFFIXES",
    "InputDataError",
    "MEDPIX_LABELS",
    "MEDPIX_PLANES",
    "MEDPIX_SOURCE",
    "SPECIAL_TOKENS",
    "TRUNCATION_MODES",
    "TextTokenizer",
    "UnpairedDataset",
    "authentic_pairs_datalist",
    "cached_dataset",
    "check_images",
    "check_translation_inputs",
    "datalist_classes",
    "datalist_content_digest",
    "dicom_series_datalist",
    "drop_identical_across_splits",
    "file_sha256",
    "find_dicom_series",
    "folder_to_datalist",
    "foreground_fraction",
    "group_dicom_series",
    "is_dicom_file",
    "list_subjects",
    "load_datalist_section",
    "load_dicom_series",
    "load_image_list",
    "load_normalized_volume",
    "multicontrast_volume_datalist",
    "pair_datalists",
    "prepare_brain_tumor_mri",
    "prepare_labelled_datalist",
    "prepare_medmnist",
    "prepare_medpix_datalist",
    "prepare_multicontrast_slices",
    "probe_items",
    "read_iu_xray_reports",
    "read_labelled_entries",
    "split_by_subject",
    "save_slice",
    "select_slices",
    "split_subjects",
    "text_corpus",
    "write_datalist",
]
