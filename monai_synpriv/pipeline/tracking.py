"""MLflow lineage for the pipeline: one parent run, one nested run per stage.

MONAI's ``MLFlowHandler`` logs into the newest *unfinished* run of its experiment that has its ``run_name``. The
tracker therefore creates each stage's run first (nested under the parent, with lineage tags) and hands its name to
the bundle (``run_name``): the bundle's own handler then logs into that run and closes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.utils import optional_import, path_to_uri

mlflow, _ = optional_import("mlflow")

__all__ = ["PARENT_TAG", "PipelineTracker", "TAG_PREFIX"]

#: MLflow's own tag that nests a run under another in the UI.
PARENT_TAG = "mlflow.parentRunId"
#: Prefix of the pipeline's lineage tags (``synpriv.stage``, ``synpriv.translator_run_id``, ...).
TAG_PREFIX = "synpriv."


class PipelineTracker:
    """
    Creates and finds the pipeline's MLflow runs.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///...`` embedded store or ``http://host:port`` server).
        experiment_name: experiment holding the parent and every stage run.
        artifact_location: where a new experiment keeps artifacts. Default for an embedded SQLite store: ``mlruns/``
            beside the database file (as MONAI's ``MLFlowHandler`` does), so that moving the run folder moves its
            pictures with it; MLflow's own default would be ``./mlruns`` of whatever folder the process started in.
            Other URIs: MLflow's choice (the server's artifact root).
    """

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None) -> None:
        if artifact_location is None and tracking_uri.startswith("sqlite:///"):
            artifact_location = path_to_uri(Path(tracking_uri[len("sqlite:///") :]).parent / "mlruns")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = (
            exp.experiment_id
            if exp is not None
            else self.client.create_experiment(experiment_name, artifact_location=artifact_location)
        )
        self.parent_id: str | None = None

    def _alive(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            run = self.client.get_run(run_id)
        except Exception:  # deleted store entries, another store: a fresh run is made instead
            return False
        return run.info.lifecycle_stage == "active" and run.info.experiment_id == self.experiment_id

    def start_parent(self, run_name: str, run_id: str | None = None, tags: Mapping[str, Any] | None = None) -> str:
        """Open the parent run: ``run_id`` (a previous invocation's parent, re-opened so that skipped stages stay
        nested under it) when it still exists in this experiment, otherwise a new run called ``run_name``."""
        if self._alive(run_id):
            self.client.update_run(run_id, status="RUNNING")
            self.parent_id = run_id
        else:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags or {}))
            self.parent_id = run.info.run_id
        return self.parent_id

    def stage_run(
        self, stage: str, run_id: str | None = None, tags: Mapping[str, Any] | None = None, reopen: bool = False
    ) -> tuple[str, str]:
        """A stage's nested run, re-used when ``run_id`` is unfinished (a resumed stage logs into the same run), or
        whatever its status with ``reopen`` (a stage that runs every time, such as ``prepare``, keeps one run).

        Returns:
            ``(run_id, run_name)``: pass ``run_name`` to the bundle so that its ``MLFlowHandler`` picks this run.
        """
        if self.parent_id is None:
            raise RuntimeError("start_parent() must be called before stage runs are created.")
        if self._alive(run_id):
            run = self.client.get_run(run_id)
            if reopen or run.info.status != "FINISHED":
                self.client.update_run(run_id, status="RUNNING")
                return run_id, run.info.run_name
        name = f"{stage}@{self.parent_id[:8]}-{int(time.time() * 1000) % 10**8:08d}"
        all_tags = {
            PARENT_TAG: self.parent_id,
            f"{TAG_PREFIX}stage": stage,
            **{k: str(v) for k, v in (tags or {}).items()},
        }
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id, name

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Lineage tags on a run (values stored as strings)."""
        for k, v in tags.items():
            self.client.set_tag(run_id, k, str(v))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log parameters that the run does not hold yet (MLflow refuses to change a logged parameter)."""
        have = self.client.get_run(run_id).data.params
        for k, v in params.items():
            if k not in have:
                self.client.log_param(run_id, k, str(v)[:6000])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log numeric metrics in one batch."""
        ms = [mlflow.entities.Metric(k, float(v), int(time.time() * 1000), step) for k, v in metrics.items()]
        for i in range(0, len(ms), 500):  # MLflow's batch limit is 1000 metrics
            self.client.log_batch(run_id, metrics=ms[i : i + 500])

    def log_artifact(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file or a folder into the run's artifacts."""
        if os.path.isdir(path):
            self.client.log_artifacts(run_id, str(path), artifact_path)
        elif os.path.isfile(path):
            self.client.log_artifact(run_id, str(path), artifact_path)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run (``FINISHED`` or ``FAILED``), if the bundle's handler has not already."""
        if self.client.get_run(run_id).info.status != status:
            self.client.set_terminated(run_id, status=status)

    def metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of every metric of a run."""
        return dict(self.client.get_run(run_id).data.metrics)
