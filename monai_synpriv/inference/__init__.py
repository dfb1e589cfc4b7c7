"""Translating datasets into the privileged modality and writing paired datalists."""

from .paired_datalist import check_provenance, default_output_ext, pending_items, plan_outputs, write_paired_datalist

__all__ = ["check_provenance", "default_output_ext", "pending_items", "plan_outputs", "write_paired_datalist"]
