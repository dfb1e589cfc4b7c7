"""Translating datasets into the privileged modality and writing paired datalists."""

from .paired_datalist import default_output_ext, pending_items, plan_outputs, write_paired_datalist
from .provenance import LOCK_FILE, MANIFEST, acquire_output_lock, check_provenance, release_output_lock

__all__ = [
    "LOCK_FILE",
    "MANIFEST",
    "acquire_output_lock",
    "check_provenance",
    "default_output_ext",
    "pending_items",
    "plan_outputs",
    "release_output_lock",
    "write_paired_datalist",
]
