"""The main job: the synthetic-privileged-information experiment end to end (translator -> synthesis -> SSL arms ->
probes -> report), driving the bundles through ``monai.bundle``'s Python API with one MLflow parent run.

Run it with ``python -m monai_synpriv.pipeline --profile quick`` (see ``--help``)."""

from .arms import ARMS, RANDOM_INIT, Arm, get_arms
from .layout import RunLayout
from .profile import load_profile, profile_digest
from .report import markdown_table, summarize, write_report
from .runner import PipelineError, SynPrivPipeline, default_bundles_dir, default_data_root
from .stages import STAGES, Stage
from .tracking import PipelineTracker

__all__ = [
    "ARMS",
    "Arm",
    "PipelineError",
    "PipelineTracker",
    "RANDOM_INIT",
    "RunLayout",
    "STAGES",
    "Stage",
    "SynPrivPipeline",
    "default_bundles_dir",
    "default_data_root",
    "get_arms",
    "load_profile",
    "markdown_table",
    "profile_digest",
    "summarize",
    "write_report",
]
